/*
 * mf.c - MF-BPR on DSL-sparse embedding tables
 *
 * Each epoch visits every distinct training pair once in a seeded random
 * order, pairs it with a uniformly sampled item the user has not interacted
 * with, and minimises the BPR loss -log sigmoid(u.i - u.j) plus
 * reg/2 * (|u|^2 + |i|^2 + |j|^2), both averaged over the mini-batch (the
 * LightGCN/DSL convention).  Rows touched by a mini-batch are densified into
 * per-batch buffers, gradients are accumulated densely per touched row, and
 * Adam updates the active entries of those rows.  Rows outside the batch
 * follow dense Adam's trajectory all the same (their momentum keeps moving
 * them): the idle steps are caught up when a row is next used, and for all
 * rows before a DSL round and at the end of every epoch (AdamCatchUp in
 * sparse_tensor.h).  The dense
 * row gradients double as the regrowth signal of a DSL round: summed over the
 * last growth_batches mini-batches before the round (see regrowth_window).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "dsl_rec.h"
#include "mf.h"
#include "rng.h"
#include "bitmap.h"
#include "mem_peak.h"
#include "workers.h"

/* MF's options (dsl.train's options jsonb) */
typedef struct MfOptions
{
	int			growth_batches; /* mini-batches in the regrowth gradient; 0
								 * until finish_options: the default */
} MfOptions;

/* per-tensor mini-batch workspace: touched rows and their dense buffers */
typedef struct BatchRows
{
	SparseTensor *t;
	int32	   *slot_of;		/* n_rows: slot in the current batch */
	uint64	   *in_batch;		/* n_rows bits: rows of the current batch */
	int32	   *rows;			/* slot -> row, ascending */
	int32	   *count;			/* slot -> occurrences in the batch */
	float	   *emb;			/* slot x dim dense embeddings */
	float	   *grad;			/* slot x dim dense gradients */
	int			n;				/* slots used */
	int			cap;
} BatchRows;

typedef struct Triple
{
	int32		u;
	int32		i;
	int32		j;
} Triple;

typedef struct MfState
{
	DslEngine  *engine;
	const Interactions *data;
	int			dim;
	int			batch_size;
	float		reg;
	DslRng		rng;
	int32	   *pairs;			/* (user, item) index pairs, shuffled per epoch */
	Triple	   *trip;
	BatchRows	users;
	BatchRows	items;
	WorkerPool *pool;
	uint64		seed;
	/* per-step values, filled by the parallel phases */
	const int32 *step_pairs;	/* (user, item) pairs of the step */
	uint64		sample_key;		/* random stream of the step's negatives */
	int			growth_batches; /* mini-batches in the regrowth gradient */
	float	   *acc[2];			/* users, items: regrowth gradient sums, dense,
								 * only during the growth_batches steps before
								 * a round; NULL otherwise */
	int			nb;				/* pairs in the step */
	int32	   *neg;			/* per pair: sampled negative, -1 if none */
	AdamCatchUp cu;				/* idle rows follow dense Adam's trajectory */
	int			nt;				/* triples in the step */
	float		inv_nb;
	float	   *coef;			/* per triple: d loss / d x */
	double	   *loss;			/* per triple: softplus(-x) */
	double	   *reg_user;		/* per slot: L2 loss term */
	double	   *reg_item;
} MfState;

/*
 * The largest power of two from 128 to 2048 that still gives an epoch of at
 * least 256 steps: small data sets need many more steps than epochs of 2048
 * pairs give them (docs/training.md, "Batch size").
 */
static int
mf_default_batch_size(const Interactions *data)
{
	int			b = 2048;

	while (b > 128 && data->n_pairs / b < 256)
		b /= 2;
	return b;
}

static int64
mf_steps_per_epoch(const Interactions *data, const TrainParams *p)
{
	return (data->n_pairs + p->batch_size - 1) / p->batch_size;
}

static Size
mf_work_bytes(const Interactions *data, const TrainParams *p)
{
	int			dim = p->dim;
	int			batch_size = p->batch_size;

	/* slot_of, in_batch and the rows' last Adam step (AdamCatchUp) */
	Size		rows = (Size) (data->n_users + data->n_items) * (2 * sizeof(int32) + sizeof(int64));
	Size		slots = (Size) 3 * batch_size * (2 * sizeof(int32) + 2 * dim * sizeof(float));

	/* the regrowth sums of a window are dense (see regrowth_window) */
	if (((const MfOptions *) p->options)->growth_batches > 1)
		rows += (Size) (data->n_users + data->n_items) * dim * sizeof(float);
	return rows + slots + (Size) data->n_pairs * 2 * sizeof(int32) +
		(Size) batch_size * sizeof(Triple);
}

static void
batch_rows_init(BatchRows *b, SparseTensor *t, int cap, int dim)
{
	b->t = t;
	b->slot_of = palloc_extended((Size) t->n_rows * sizeof(int32), MCXT_ALLOC_HUGE);
	b->in_batch = palloc0((Size) (t->n_rows + 63) / 64 * sizeof(uint64));
	b->rows = palloc((Size) cap * sizeof(int32));
	b->count = palloc((Size) cap * sizeof(int32));
	b->emb = palloc_extended((Size) cap * dim * sizeof(float), MCXT_ALLOC_HUGE);
	b->grad = palloc_extended((Size) cap * dim * sizeof(float), MCXT_ALLOC_HUGE);
	b->cap = cap;
	b->n = 0;
}

/*
 * Number the rows marked in in_batch in ascending order (so that the
 * densify and Adam loops walk the tensors upwards) and clear the marks.
 */
static void
batch_assign_slots(BatchRows *b)
{
	int			n_words = (b->t->n_rows + 63) / 64;
	int			n = 0;

	for (int w = 0; w < n_words; w++)
	{
		uint64		word = b->in_batch[w];

		b->in_batch[w] = 0;
		while (word)
		{
			int32		r = w * 64 + __builtin_ctzll(word);

			word &= word - 1;
			b->slot_of[r] = n;
			b->rows[n] = r;
			b->count[n] = 0;
			n++;
		}
	}
	b->n = n;
}

/*
 * Catch up the idle steps of slots [lo, hi) of the batch's rows (cu), then
 * densify them, prefetching a few rows ahead (weights and both moments:
 * the catch-up writes all three).
 */
static void
batch_densify(BatchRows *b, const AdamCatchUp *cu, int dim, int64 lo, int64 hi)
{
	const int	ahead = 8;

	for (int64 s = lo; s < Min(lo + 2 * ahead, hi); s++)
		sparse_tensor_prefetch_offsets(b->t, b->rows[s]);
	for (int64 s = lo; s < Min(lo + ahead, hi); s++)
		sparse_tensor_prefetch_row(b->t, b->rows[s], true);
	for (int64 s = lo; s < hi; s++)
	{
		if (s + 2 * ahead < hi)
			sparse_tensor_prefetch_offsets(b->t, b->rows[s + 2 * ahead]);
		if (s + ahead < hi)
			sparse_tensor_prefetch_row(b->t, b->rows[s + ahead], true);
		sparse_tensor_catch_up_row(b->t, b->rows[s], cu);
		sparse_tensor_row_dense(b->t, b->rows[s], b->emb + (Size) s * dim);
	}
}

static void *
mf_create(DslEngine *engine, const Interactions *data, const TrainParams *p)
{
	MfState    *s = palloc0(sizeof(MfState));
	int			dim = p->dim;
	int			batch_size = p->batch_size;
	double		reg = p->reg;
	uint64		seed = p->seed;
	SparseTensor *U,
			   *I;

	s->engine = engine;
	s->data = data;
	s->dim = dim;
	s->batch_size = batch_size;
	s->reg = (float) reg;
	dsl_rng_seed(&s->rng, seed, 0x3F);

	U = dsl_engine_add_tensor(engine, "user", data->n_users, dim);
	I = dsl_engine_add_tensor(engine, "item", data->n_items, dim);

	s->pairs = palloc_extended((Size) data->n_pairs * 2 * sizeof(int32), MCXT_ALLOC_HUGE);
	for (int u = 0; u < data->n_users; u++)
		for (int64 p = data->ptr[u]; p < data->ptr[u + 1]; p++)
		{
			s->pairs[2 * p] = u;
			s->pairs[2 * p + 1] = data->items[p];
		}
	s->trip = palloc_extended((Size) batch_size * sizeof(Triple), MCXT_ALLOC_HUGE);
	batch_rows_init(&s->users, U, Min(batch_size, data->n_users), dim);
	batch_rows_init(&s->items, I, (int) Min((int64) 2 * batch_size, (int64) data->n_items), dim);
	s->coef = palloc_extended((Size) batch_size * sizeof(float), MCXT_ALLOC_HUGE);
	s->loss = palloc_extended((Size) batch_size * sizeof(double), MCXT_ALLOC_HUGE);
	s->reg_user = palloc_extended((Size) s->users.cap * sizeof(double), MCXT_ALLOC_HUGE);
	s->reg_item = palloc_extended((Size) s->items.cap * sizeof(double), MCXT_ALLOC_HUGE);
	s->neg = palloc_extended((Size) batch_size * sizeof(int32), MCXT_ALLOC_HUGE);
	s->growth_batches = Max(1, ((const MfOptions *) p->options)->growth_batches);
	/* dense Adam's trajectory for rows outside the batch (AdamCatchUp) */
	adam_catchup_init(&s->cu, &engine->cfg.adam);
	U->last_step = palloc_extended((Size) U->n_rows * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	I->last_step = palloc_extended((Size) I->n_rows * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	s->seed = seed;
	s->pool = worker_pool_create(dsl_threads, CurrentMemoryContext);
	engine->pool = s->pool;
	return s;
}

static inline float
dot_diff(const float *u, const float *a, const float *b, int dim)
{
	float		s = 0;

	for (int c = 0; c < dim; c++)
		s += u[c] * (a[c] - b[c]);
	return s;
}

/* numerically stable log(1 + exp(x)) */
static inline double
softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/*
 * The parallel phases of a step (sample, densify, scores, grads + Adam).
 * Work is split by slot or triple ranges and every sum is taken in the same
 * order whatever the number of threads, so results depend on the seed only,
 * not on dsl_rec.threads.
 *
 * Negative sampling: a uniformly drawn item the user has not interacted
 * with.  The step's pairs are cut into a fixed number of chunks, each with
 * its own random stream keyed by (seed, step, chunk), so the draws do not
 * depend on how many threads share the chunks.
 */
#define SAMPLE_CHUNKS 8

static void
phase_sample(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	const Interactions *d = s->data;

	for (int c = part; c < SAMPLE_CHUNKS; c += n_parts)
	{
		DslRng		rng;
		int64		lo,
					hi;

		worker_share(s->nb, c, SAMPLE_CHUNKS, &lo, &hi);
		dsl_rng_seed(&rng, s->seed, (s->sample_key << 4) | (uint64) c);
		for (int64 t = lo; t < hi; t++)
		{
			const int32 *pair = s->step_pairs + 2 * t;
			int32		u = pair[0];
			int32		j;

			/* the user's offsets 8 pairs ahead, then its item list 4 ahead */
			if (t + 8 < hi)
				__builtin_prefetch(&d->ptr[pair[16]]);
			if (t + 4 < hi)
			{
				const int64 *up = &d->ptr[pair[8]];

				prefetch_span(d->items, up[0], Min(up[1], up[0] + 32), sizeof(int32), false);
			}
			if (d->ptr[u + 1] - d->ptr[u] >= d->n_items)
			{
				s->neg[t] = -1;
				continue;
			}
			do
				j = (int32) dsl_rng_below(&rng, (uint64) d->n_items);
			while (dsl_user_has_item(d, u, j));
			s->neg[t] = j;
		}
	}
}

static void
phase_densify(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	int64		lo,
				hi;

	worker_share(s->users.n, part, n_parts, &lo, &hi);
	batch_densify(&s->users, &s->cu, s->dim, lo, hi);
	worker_share(s->items.n, part, n_parts, &lo, &hi);
	batch_densify(&s->items, &s->cu, s->dim, lo, hi);
}

static void
phase_scores(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	const int	dim = s->dim;
	int64		lo,
				hi;

	worker_share(s->nt, part, n_parts, &lo, &hi);
	for (int64 t = lo; t < hi; t++)
	{
		const float *eu = s->users.emb + (Size) s->trip[t].u * dim;
		const float *ei = s->items.emb + (Size) s->trip[t].i * dim;
		const float *ej = s->items.emb + (Size) s->trip[t].j * dim;
		float		x = dot_diff(eu, ei, ej, dim);

		/* d/dx of -log sigmoid(x) is -sigmoid(-x) */
		s->coef[t] = -s->inv_nb / (1.0f + expf(x));
		s->loss[t] = softplus(-(double) x);
	}
}

/* add the L2 term to slots [lo, hi) of b, then take the Adam step */
static void
adam_rows(MfState *s, BatchRows *b, float *acc, double *reg_out, int64 lo, int64 hi)
{
	const int	ahead = 4;
	const int	dim = s->dim;
	DslEngine  *e = s->engine;
	const float reg_scale = s->reg * s->inv_nb;

	for (int64 k = lo; k < hi; k++)
	{
		float	   *g = b->grad + (Size) k * dim;
		const float *x = b->emb + (Size) k * dim;
		float		coef = reg_scale * (float) b->count[k];
		double		sq = 0;

		if (k + ahead < hi)
		{
			sparse_tensor_prefetch_row(b->t, b->rows[k + ahead], true);
			if (acc)
				prefetch_span(acc + (Size) b->rows[k + ahead] * dim, 0, dim,
							  sizeof(float), true);
		}
		for (int c = 0; c < dim; c++)
		{
			g[c] += coef * x[c];
			sq += (double) x[c] * x[c];
		}
		reg_out[k] = 0.5 * coef * sq;
		if (acc)
		{
			float	   *restrict a = acc + (Size) b->rows[k] * dim;

			for (int c = 0; c < dim; c++)
				a[c] += g[c];
		}
		sparse_tensor_adam_row(b->t, b->rows[k], g, &e->adam, e->bc1, e->bc2);
		b->t->last_step[b->rows[k]] = e->step;
	}
}

static void
phase_grads(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	const int	dim = s->dim;
	int64		ulo,
				uhi,
				ilo,
				ihi;

	worker_share(s->users.n, part, n_parts, &ulo, &uhi);
	worker_share(s->items.n, part, n_parts, &ilo, &ihi);
	memset(s->users.grad + (Size) ulo * dim, 0, (Size) (uhi - ulo) * dim * sizeof(float));
	memset(s->items.grad + (Size) ilo * dim, 0, (Size) (ihi - ilo) * dim * sizeof(float));

	/* each part accumulates into its own rows only, in triple order */
	for (int t = 0; t < s->nt; t++)
	{
		const Triple *tr = &s->trip[t];
		const float c = s->coef[t];
		const float *restrict eu = s->users.emb + (Size) tr->u * dim;

		if (tr->u >= ulo && tr->u < uhi)
		{
			const float *restrict ei = s->items.emb + (Size) tr->i * dim;
			const float *restrict ej = s->items.emb + (Size) tr->j * dim;
			float	   *restrict gu = s->users.grad + (Size) tr->u * dim;

			for (int k = 0; k < dim; k++)
				gu[k] += c * (ei[k] - ej[k]);
		}
		if (tr->i >= ilo && tr->i < ihi)
		{
			float	   *restrict gi = s->items.grad + (Size) tr->i * dim;

			for (int k = 0; k < dim; k++)
				gi[k] += c * eu[k];
		}
		if (tr->j >= ilo && tr->j < ihi)
		{
			float	   *restrict gj = s->items.grad + (Size) tr->j * dim;

			for (int k = 0; k < dim; k++)
				gj[k] -= c * eu[k];
		}
	}

	adam_rows(s, &s->users, s->acc[0], s->reg_user, ulo, uhi);
	adam_rows(s, &s->items, s->acc[1], s->reg_item, ilo, ihi);
}

/*
 * One mini-batch over pairs[0..nb): negatives, batch slots, densify, scores,
 * gradients and the Adam step.  Returns the number of triples.
 */
static int
run_step(MfState *s, const int32 *pairs, int nb, uint64 sample_key)
{
	int			nt = 0;

	s->step_pairs = pairs;
	s->sample_key = sample_key;
	s->nb = nb;

	/* negatives in parallel, then the batch slots of the rows touched */
	worker_pool_run(s->pool, phase_sample, s);
	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;

		if (s->neg[t] < 0)
			continue;			/* the user has seen everything */
		bit_set(s->users.in_batch, pair[0]);
		bit_set(s->items.in_batch, pair[1]);
		bit_set(s->items.in_batch, s->neg[t]);
	}
	batch_assign_slots(&s->users);
	batch_assign_slots(&s->items);
	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;
		Triple	   *tr = &s->trip[nt];

		if (s->neg[t] < 0)
			continue;
		tr->u = s->users.slot_of[pair[0]];
		tr->i = s->items.slot_of[pair[1]];
		tr->j = s->items.slot_of[s->neg[t]];
		s->users.count[tr->u]++;
		s->items.count[tr->i]++;
		s->items.count[tr->j]++;
		nt++;
	}
	if (nt == 0)
		return 0;
	s->nt = nt;
	s->inv_nb = 1.0f / (float) nt;

	worker_pool_run(s->pool, phase_densify, s);
	worker_pool_run(s->pool, phase_scores, s);
	worker_pool_run(s->pool, phase_grads, s);
	return nt;
}

/*
 * The regrowth signal of a DSL round is the gradient summed over the last
 * growth_batches mini-batches before it, not the last one only: a mini-batch
 * touches a few thousand rows, so with the last one most inactive entries
 * would have a zero gradient and be regrown at random.  The sums are dense
 * (4 bytes per weight) and exist only from the first step of that window to
 * the round.  Called after dsl_engine_begin_step.
 */
static void
regrowth_window(MfState *s)
{
	DslEngine  *e = s->engine;
	int64		left;

	if (s->growth_batches <= 1 || e->cfg.growth != GROWTH_GRADIENT)
		return;
	left = dsl_engine_steps_to_update(e);
	if (left < 0 || left >= s->growth_batches || s->acc[0] != NULL)
		return;
	for (int k = 0; k < 2; k++)
	{
		SparseTensor *t = e->tensors[k];

		/* visited row by row in random order: ask for huge pages */
		s->acc[k] = dsl_alloc_huge((Size) t->n_rows * t->dim * sizeof(float), true);
	}
	dsl_mem_note();
}

/* a DSL round with the window's sums, or the last mini-batch's gradient */
static void
regrowth_round(MfState *s)
{
	TensorGrad	g[2];

	if (s->acc[0] != NULL)
	{
		g[0].n = s->data->n_users;
		g[1].n = s->data->n_items;
		for (int k = 0; k < 2; k++)
		{
			g[k].rows = NULL;	/* every row, in order */
			g[k].g = s->acc[k];
			g[k].consume = true;	/* freed by the round, before its rebuild */
			s->acc[k] = NULL;
		}
		dsl_engine_update(s->engine, g);
		return;
	}
	g[0].n = s->users.n;
	g[0].rows = s->users.rows;
	g[0].g = s->users.grad;
	g[1].n = s->items.n;
	g[1].rows = s->items.rows;
	g[1].g = s->items.grad;
	g[0].consume = g[1].consume = false;
	dsl_engine_update(s->engine, g);
}

/* bring every row to the current step (before a round, evaluation, storage) */
static void
catch_up_all(MfState *s)
{
	adam_catchup_advance(&s->cu, s->engine->step);
	for (int k = 0; k < s->engine->n_tensors; k++)
		sparse_tensor_catch_up_all(s->engine->tensors[k], &s->cu, s->pool);
}

static double
mf_train_epoch(void *state)
{
	MfState    *s = (MfState *) state;
	const Interactions *d = s->data;
	DslEngine  *e = s->engine;
	const int64 n = d->n_pairs;
	double		loss_sum = 0;
	int64		n_trip = 0;

	/* a fresh seeded order of the pairs */
	dsl_shuffle_pairs(s->pairs, n, &s->rng);

	for (int64 b0 = 0; b0 < n; b0 += s->batch_size)
	{
		int			nb = (int) Min((int64) s->batch_size, n - b0);
		int			nt;
		double		batch_loss = 0;
		double		reg_loss = 0;

		CHECK_FOR_INTERRUPTS();
		dsl_engine_begin_step(e);
		adam_catchup_set_lr(&s->cu, e->step, e->adam.lr);
		/* the batch's rows are caught up to the step before this one */
		adam_catchup_advance(&s->cu, e->step - 1);
		regrowth_window(s);
		nt = run_step(s, s->pairs + 2 * b0, nb, (uint64) e->step);
		if (nt > 0)
		{
			for (int t = 0; t < nt; t++)
				batch_loss += s->loss[t];
			for (int k = 0; k < s->users.n; k++)
				reg_loss += s->reg_user[k];
			for (int k = 0; k < s->items.n; k++)
				reg_loss += s->reg_item[k];
			loss_sum += batch_loss + reg_loss * nt;
			n_trip += nt;
			if (isnan(loss_sum) || isinf(loss_sum))
				return loss_sum;	/* diverged: the caller reports it */
		}

		if (dsl_engine_update_due(e))
		{
			catch_up_all(s);
			regrowth_round(s);
		}
	}
	catch_up_all(s);
	return n_trip > 0 ? loss_sum / (double) n_trip : 0.0;
}

/* MF ranks with the parameters themselves */
static void
mf_serving(void *state, SparseTensor *const *tensors,
		   EmbeddingSource *users, EmbeddingSource *items)
{
	*users = embedding_source_fill(sparse_tensor_fill_rows, tensors[0],
								   tensors[0]->n_rows, tensors[0]->dim);
	*items = embedding_source_fill(sparse_tensor_fill_rows, tensors[1],
								   tensors[1]->n_rows, tensors[1]->dim);
}

static void
mf_init_options(void *opts)
{
	((MfOptions *) opts)->growth_batches = 0;
}

static bool
mf_set_option(void *opts, const char *key, const JsonbValue *value)
{
	if (strcmp(key, "growth_batches") != 0)
		return false;
	((MfOptions *) opts)->growth_batches = dsl_option_int(key, value, 1, 1000000);
	return true;
}

/* the regrowth gradient: by default summed over the last epoch's steps */
static void
mf_finish_options(void *opts, const TrainParams *p)
{
	MfOptions  *o = (MfOptions *) opts;

	if (o->growth_batches == 0)
		o->growth_batches = (int) Min(Min(p->steps_per_epoch, p->update_interval),
									  (int64) PG_INT32_MAX);
}

static void
mf_write_hyperparams(StringInfo s, const void *opts)
{
	appendStringInfo(s, ", \"growth_batches\": %d",
					 ((const MfOptions *) opts)->growth_batches);
}

/* a user table and an item table */
static int
mf_tensor_rows(const Interactions *d, const TrainParams *p, int *rows)
{
	rows[0] = d->n_users;
	rows[1] = d->n_items;
	return 2;
}

const ModelOps mf_ops = {
	.type = "mf",
	.option_keys = "growth_batches",
	.options_size = sizeof(MfOptions),
	.default_interval_epochs = 2,
	.init_options = mf_init_options,
	.set_option = mf_set_option,
	.finish_options = mf_finish_options,
	.write_hyperparams = mf_write_hyperparams,
	.tensor_rows = mf_tensor_rows,
	.work_bytes = mf_work_bytes,
	.default_batch_size = mf_default_batch_size,
	.steps_per_epoch = mf_steps_per_epoch,
	.create = mf_create,
	.train_epoch = mf_train_epoch,
	.serving = mf_serving,
	.tensor_parts = NULL,
};
