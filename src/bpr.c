/*
 * bpr.c - the shared training loop over sampled negatives (see bpr.h)
 */
#include "postgres.h"

#include "miscadmin.h"

#include "bpr.h"

/*
 * The sampler's chunks: the step's pairs are cut into this many chunks,
 * each with its own stream, however many threads share them.
 */
#define SAMPLE_CHUNKS 8

/*
 * Small data sets need many more steps than epochs of 2048 pairs give them
 * (docs/training.md, "Batch size").
 */
int
bpr_default_batch_size(const Interactions *d)
{
	int			b = 2048;

	while (b > 128 && d->n_pairs / b < 256)
		b /= 2;
	return b;
}

Size
bpr_work_bytes(const Interactions *d, const TrainParams *p)
{
	return (Size) Max(d->n_pairs, 1) * 2 * sizeof(int32) +
		(Size) p->batch_size * (sizeof(BprTriple) + sizeof(float) +
								sizeof(double) + sizeof(int32));
}

void
bpr_init(BprTrainer *b, DslEngine *e, const Interactions *d, const TrainParams *p)
{
	memset(b, 0, sizeof(BprTrainer));
	b->engine = e;
	b->data = d;
	b->pool = e->pool;
	b->dim = p->dim;
	b->batch_size = p->batch_size;
	b->seed = p->seed;
	dsl_rng_seed(&b->rng, p->seed, 0x3F);

	b->pairs = palloc_extended((Size) Max(d->n_pairs, 1) * 2 * sizeof(int32), MCXT_ALLOC_HUGE);
	for (int u = 0; u < d->n_users; u++)
		for (int64 k = d->ptr[u]; k < d->ptr[u + 1]; k++)
		{
			b->pairs[2 * k] = u;
			b->pairs[2 * k + 1] = d->items[k];
		}
	b->trip = palloc_extended((Size) p->batch_size * sizeof(BprTriple), MCXT_ALLOC_HUGE);
	b->coef = palloc_extended((Size) p->batch_size * sizeof(float), MCXT_ALLOC_HUGE);
	b->loss = palloc_extended((Size) p->batch_size * sizeof(double), MCXT_ALLOC_HUGE);
	b->neg = palloc_extended((Size) p->batch_size * sizeof(int32), MCXT_ALLOC_HUGE);
}

Size
bpr_by_user_bytes(const Interactions *d)
{
	return (Size) Max(d->n_users, 1) * sizeof(int32);
}

void
bpr_sample_by_user(BprTrainer *b)
{
	const Interactions *d = b->data;

	b->pair_users = palloc_extended(bpr_by_user_bytes(d), MCXT_ALLOC_HUGE);
	b->n_pair_users = 0;
	for (int u = 0; u < d->n_users; u++)
		if (d->ptr[u + 1] > d->ptr[u])
			b->pair_users[b->n_pair_users++] = u;
}

/*
 * Every pair once in a fresh seeded order, or (by user) n_pairs draws of a
 * user with pairs, then one of its items, from the same stream
 */
void
bpr_epoch_pairs(BprTrainer *b)
{
	const Interactions *d = b->data;

	if (b->n_pair_users == 0)
	{
		dsl_shuffle_pairs(b->pairs, d->n_pairs, &b->rng);
		return;
	}
	for (int64 k = 0; k < d->n_pairs; k++)
	{
		int32		u = b->pair_users[dsl_rng_below(&b->rng, (uint64) b->n_pair_users)];
		int64		lo = d->ptr[u];

		b->pairs[2 * k] = u;
		b->pairs[2 * k + 1] = d->items[lo + (int64) dsl_rng_below(&b->rng, (uint64) (d->ptr[u + 1] - lo))];
	}
}

/*
 * The epoch's pairs (bpr_epoch_pairs); per mini-batch the model's step,
 * then the loss, then a DSL round when one is due after this step.
 */
double
bpr_train_epoch(BprTrainer *b, const BprModel *m, void *state)
{
	DslEngine  *e = b->engine;
	const int64 n = b->data->n_pairs;
	double		loss_sum = 0;
	int64		n_trip = 0;

	bpr_epoch_pairs(b);

	for (int64 b0 = 0; b0 < n; b0 += b->batch_size)
	{
		int			nb = (int) Min((int64) b->batch_size, n - b0);
		bool		due;
		int			nt;

		CHECK_FOR_INTERRUPTS();
		dsl_engine_begin_step(e);
		due = dsl_engine_update_due(e);
		b->n_reg = 0;
		nt = m->step(state, b->pairs + 2 * b0, nb, due);
		if (nt > 0)
		{
			double		batch_loss = 0;
			double		reg_loss = 0;

			/*
			 * The triples' losses, then the L2 terms: this order of the sums
			 * is part of the results (the loss columns of dsl.train).
			 */
			for (int t = 0; t < nt; t++)
				batch_loss += b->loss[t];
			for (int a = 0; a < b->n_reg; a++)
				for (int k = 0; k < b->reg_n[a]; k++)
					reg_loss += b->reg[a][k];
			loss_sum += batch_loss + reg_loss * nt;
			n_trip += nt;
			if (isnan(loss_sum) || isinf(loss_sum))
				return loss_sum;	/* diverged: the caller reports it */
		}
		if (due)
			m->round(state);
	}
	if (m->end_epoch)
		m->end_epoch(state);
	return n_trip > 0 ? loss_sum / (double) n_trip : 0.0;
}

/* the chunks c = part, part + n_parts, ... of the step's pairs */
static void
phase_sample(void *arg, int part, int n_parts)
{
	BprTrainer *b = (BprTrainer *) arg;
	const Interactions *d = b->data;

	for (int c = part; c < SAMPLE_CHUNKS; c += n_parts)
	{
		DslRng		rng;
		int64		lo,
					hi;

		worker_share(b->nb, c, SAMPLE_CHUNKS, &lo, &hi);
		dsl_rng_seed(&rng, b->seed, (b->sample_key << 4) | (uint64) c);
		for (int64 t = lo; t < hi; t++)
		{
			const int32 *pair = b->step_pairs + 2 * t;

			/* the user's offsets 8 pairs ahead, then its item list 4 ahead */
			if (t + 8 < hi)
				__builtin_prefetch(&d->ptr[pair[16]]);
			if (t + 4 < hi)
			{
				const int64 *up = &d->ptr[pair[8]];

				prefetch_span(d->items, up[0], Min(up[1], up[0] + 32), sizeof(int32), false);
			}
			b->neg[t] = bpr_draw_negative(d, pair[0], &rng);
		}
	}
}

void
bpr_sample_negatives(BprTrainer *b, const int32 *pairs, int nb, uint64 key)
{
	b->step_pairs = pairs;
	b->nb = nb;
	b->sample_key = key;
	worker_pool_run(b->pool, phase_sample, b);
}

int
bpr_triples(BprTrainer *b, const int32 *pairs, int nb, const int32 *user_slot,
			const int32 *item_slot, int32 *user_count, int32 *item_count)
{
	int			nt = 0;

	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;
		BprTriple  *tr = &b->trip[nt];

		if (b->neg[t] < 0)
			continue;
		tr->u = user_slot[pair[0]];
		tr->i = item_slot[pair[1]];
		tr->j = item_slot[b->neg[t]];
		user_count[tr->u]++;
		item_count[tr->i]++;
		item_count[tr->j]++;
		nt++;
	}
	return nt;
}

static inline float
dot_diff(const float *u, const float *a, const float *b, int dim)
{
	float		s = 0;

	for (int c = 0; c < dim; c++)
		s += u[c] * (a[c] - b[c]);
	return s;
}

/* x = u . (i - j) per triple of the part's share, and its loss */
static void
phase_scores(void *arg, int part, int n_parts)
{
	BprTrainer *b = (BprTrainer *) arg;
	const int	dim = b->dim;
	int64		lo,
				hi;

	worker_share(b->nt, part, n_parts, &lo, &hi);
	for (int64 t = lo; t < hi; t++)
	{
		const float *eu = b->user_rows + (Size) b->trip[t].u * dim;
		const float *ei = b->item_rows + (Size) b->trip[t].i * dim;
		const float *ej = b->item_rows + (Size) b->trip[t].j * dim;

		bpr_pair_loss(dot_diff(eu, ei, ej, dim), b->inv_nb, &b->coef[t], &b->loss[t]);
	}
}

void
bpr_scores(BprTrainer *b)
{
	worker_pool_run(b->pool, phase_scores, b);
}

/*
 * d x / d u = i - j, d x / d i = u, d x / d j = -u, times the triple's
 * coef; a row's contributions are added in triple order by the one part
 * owning its slot.
 */
void
bpr_accumulate_grads(const BprTrainer *b, float *gu, float *gi,
					 int64 ulo, int64 uhi, int64 ilo, int64 ihi)
{
	const int	dim = b->dim;

	memset(gu + (Size) ulo * dim, 0, (Size) (uhi - ulo) * dim * sizeof(float));
	if (gi != gu)
		memset(gi + (Size) ilo * dim, 0, (Size) (ihi - ilo) * dim * sizeof(float));

	for (int t = 0; t < b->nt; t++)
	{
		const BprTriple *tr = &b->trip[t];
		const float c = b->coef[t];
		const float *restrict eu = b->user_rows + (Size) tr->u * dim;

		if (tr->u >= ulo && tr->u < uhi)
		{
			const float *restrict ei = b->item_rows + (Size) tr->i * dim;
			const float *restrict ej = b->item_rows + (Size) tr->j * dim;
			float	   *restrict g = gu + (Size) tr->u * dim;

			for (int k = 0; k < dim; k++)
				g[k] += c * (ei[k] - ej[k]);
		}
		if (tr->i >= ilo && tr->i < ihi)
		{
			float	   *restrict g = gi + (Size) tr->i * dim;

			for (int k = 0; k < dim; k++)
				g[k] += c * eu[k];
		}
		if (tr->j >= ilo && tr->j < ihi)
		{
			float	   *restrict g = gi + (Size) tr->j * dim;

			for (int k = 0; k < dim; k++)
				g[k] -= c * eu[k];
		}
	}
}
