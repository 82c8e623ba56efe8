/*
 * mf.c - MF-BPR on DSL-sparse embedding tables
 *
 * Trained with the shared BPR loop (bpr.h): each epoch visits every
 * distinct training pair once in a seeded random order, pairs it with a
 * uniformly sampled item the user has not interacted with, and minimises the
 * BPR loss -log sigmoid(u.i - u.j) plus reg/2 * (|u|^2 + |i|^2 + |j|^2),
 * both averaged over the mini-batch (the LightGCN/DSL convention).  Rows
 * touched by a mini-batch are densified into per-batch buffers, gradients
 * are accumulated densely per touched row, and Adam updates the active
 * entries of those rows.  Rows outside the batch follow dense Adam's
 * trajectory all the same (their momentum keeps moving them): the idle
 * steps are caught up when a row is next used, and for all rows before a
 * DSL round and at the end of every epoch (AdamCatchUp in sparse_tensor.h).
 * The dense row gradients double as the regrowth signal of a DSL round:
 * summed over the last growth_batches mini-batches before the round (see
 * regrowth_window).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "batch_rows.h"
#include "bitmap.h"
#include "bpr.h"
#include "hugepage.h"
#include "mem_peak.h"
#include "model_ops.h"
#include "scorer.h"

/* MF's options (dsl.train's options jsonb) */
typedef struct MfOptions
{
	int			growth_batches; /* mini-batches in the regrowth gradient; 0
								 * until finish_options: the default */
} MfOptions;

typedef struct MfState
{
	BprTrainer	bpr;			/* pairs, negatives, triples, loss */
	DslEngine  *engine;
	int			dim;
	float		reg;
	BatchRows	users;
	BatchRows	items;
	int			growth_batches; /* mini-batches in the regrowth gradient */
	float	   *acc[2];			/* users, items: regrowth gradient sums, dense,
								 * only during the growth_batches steps before
								 * a round; NULL otherwise */
	AdamCatchUp cu;				/* idle rows follow dense Adam's trajectory */
	double	   *reg_user;		/* per slot: L2 loss term */
	double	   *reg_item;
} MfState;

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
		(Size) batch_size * sizeof(BprTriple);
}

/*
 * A user and an item tensor, the BPR layer, the batch workspaces (their
 * dense rows are what the BPR scores read) and the rows' last Adam steps.
 */
static void *
mf_create(DslEngine *engine, const Interactions *data, const TrainParams *p)
{
	MfState    *s = palloc0(sizeof(MfState));
	int			dim = p->dim;
	int			batch_size = p->batch_size;
	SparseTensor *U,
			   *I;

	s->engine = engine;
	s->dim = dim;
	s->reg = (float) p->reg;

	U = dsl_engine_add_tensor(engine, "user", data->n_users, dim);
	I = dsl_engine_add_tensor(engine, "item", data->n_items, dim);

	bpr_init(&s->bpr, engine, data, p);
	batch_rows_init(&s->users, U, Min(batch_size, data->n_users));
	batch_rows_init(&s->items, I, (int) Min((int64) 2 * batch_size, (int64) data->n_items));
	s->bpr.user_rows = s->users.emb;
	s->bpr.item_rows = s->items.emb;
	s->reg_user = palloc_extended((Size) s->users.cap * sizeof(double), MCXT_ALLOC_HUGE);
	s->reg_item = palloc_extended((Size) s->items.cap * sizeof(double), MCXT_ALLOC_HUGE);
	s->growth_batches = Max(1, ((const MfOptions *) p->options)->growth_batches);
	/* dense Adam's trajectory for rows outside the batch (AdamCatchUp) */
	adam_catchup_init(&s->cu, &engine->cfg.adam);
	return s;
}

/*
 * The parallel phases of a step (densify, grads + Adam; negatives and
 * scores are the BPR layer's).  Work is split by slot ranges and every sum
 * is taken in the same order whatever the number of threads, so results
 * depend on the seed only, not on dsl_rec.threads.
 */
static void
phase_densify(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	int64		lo,
				hi;

	worker_share(s->users.n, part, n_parts, &lo, &hi);
	batch_densify(&s->users, &s->cu, lo, hi);
	worker_share(s->items.n, part, n_parts, &lo, &hi);
	batch_densify(&s->items, &s->cu, lo, hi);
}

/* the gradients of the part's user and item slots, their L2 term and Adam */
static void
phase_grads(void *arg, int part, int n_parts)
{
	MfState    *s = (MfState *) arg;
	int64		ulo,
				uhi,
				ilo,
				ihi;

	worker_share(s->users.n, part, n_parts, &ulo, &uhi);
	worker_share(s->items.n, part, n_parts, &ilo, &ihi);
	/* each part accumulates into its own rows only, in triple order */
	bpr_accumulate_grads(&s->bpr, s->users.grad, s->items.grad, ulo, uhi, ilo, ihi);

	batch_rows_adam(&s->users, s->engine, s->reg * s->bpr.inv_nb, s->acc[0],
					s->reg_user, ulo, uhi);
	batch_rows_adam(&s->items, s->engine, s->reg * s->bpr.inv_nb, s->acc[1],
					s->reg_item, ilo, ihi);
}

/*
 * Triples of the step's pairs with a negative, as slots of the batch's user
 * and item rows (numbered in ascending row order); returns their number.
 */
static int
mf_triples(MfState *s, const int32 *pairs, int nb)
{
	BprTrainer *b = &s->bpr;

	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;

		if (b->neg[t] < 0)
			continue;			/* the user has seen everything */
		bit_set(s->users.in_batch, pair[0]);
		bit_set(s->items.in_batch, pair[1]);
		bit_set(s->items.in_batch, b->neg[t]);
	}
	batch_assign_slots(&s->users);
	batch_assign_slots(&s->items);
	return bpr_triples(b, pairs, nb, s->users.slot_of, s->items.slot_of,
					   s->users.count, s->items.count);
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

	if (!dsl_engine_in_growth_window(e, s->growth_batches) || s->acc[0] != NULL)
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
		g[0].n = s->bpr.data->n_users;
		g[1].n = s->bpr.data->n_items;
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
		sparse_tensor_catch_up_all(s->engine->tensors[k], &s->cu, s->engine->pool);
}

/*
 * One optimizer step (BprModel.step): the rows of the batch are caught up to
 * the step before this one; negatives in parallel, then the batch slots of
 * the rows touched, densify, scores, gradients and the Adam step.
 */
static int
mf_step(void *state, const int32 *pairs, int nb, bool round_due)
{
	MfState    *s = (MfState *) state;
	BprTrainer *b = &s->bpr;
	DslEngine  *e = s->engine;
	int			nt;

	adam_catchup_set_lr(&s->cu, e->step, e->adam.lr);
	adam_catchup_advance(&s->cu, e->step - 1);
	regrowth_window(s);

	bpr_sample_negatives(b, pairs, nb, (uint64) e->step);
	nt = mf_triples(s, pairs, nb);
	if (nt == 0)
		return 0;
	b->nt = nt;
	b->inv_nb = 1.0f / (float) nt;

	worker_pool_run(b->pool, phase_densify, s);
	bpr_scores(b);
	worker_pool_run(b->pool, phase_grads, s);

	b->n_reg = 2;
	b->reg[0] = s->reg_user;
	b->reg_n[0] = s->users.n;
	b->reg[1] = s->reg_item;
	b->reg_n[1] = s->items.n;
	return nt;
}

/* a DSL round (BprModel.round): every row caught up first */
static void
mf_round(void *state)
{
	MfState    *s = (MfState *) state;

	catch_up_all(s);
	regrowth_round(s);
}

/* every row caught up at the epoch's end, for evaluation and storage */
static void
mf_end_epoch(void *state)
{
	catch_up_all((MfState *) state);
}

static const BprModel mf_bpr = {
	.step = mf_step,
	.round = mf_round,
	.end_epoch = mf_end_epoch,
};

static double
mf_train_epoch(void *state)
{
	MfState    *s = (MfState *) state;

	return bpr_train_epoch(&s->bpr, &mf_bpr, s);
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
mf_tensor_shapes(const Interactions *d, const TrainParams *p, TensorShape *shapes)
{
	shapes[0] = (TensorShape) {d->n_users, p->dim};
	shapes[1] = (TensorShape) {d->n_items, p->dim};
	return 2;
}

/* halve_reg (train.c): the L2 coefficient of the next steps */
static void
mf_set_reg(void *state, double reg)
{
	((MfState *) state)->reg = (float) reg;
}

const ModelOps mf_ops = {
	.type = "mf",
	.option_keys = "growth_batches",
	.shape_keys = "",
	.options_size = sizeof(MfOptions),
	.default_dim = 64,
	.min_dim = 1,
	.default_interval_epochs = 2,
	.default_lr = 0.005,
	.default_reg = 0.01,
	.init_options = mf_init_options,
	.set_option = mf_set_option,
	.finish_options = mf_finish_options,
	.write_hyperparams = mf_write_hyperparams,
	.tensor_shapes = mf_tensor_shapes,
	.work_bytes = mf_work_bytes,
	.default_batch_size = bpr_default_batch_size,
	.steps_per_epoch = mf_steps_per_epoch,
	.create = mf_create,
	.train_epoch = mf_train_epoch,
	.set_reg = mf_set_reg,
	.serving = mf_serving,
	.tensor_parts = NULL,
	.scorer = &dot_scorer,
};
