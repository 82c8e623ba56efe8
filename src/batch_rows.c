/*
 * batch_rows.c - the rows of an embedding table that a mini-batch touches
 * (see batch_rows.h)
 */
#include "postgres.h"

#include "batch_rows.h"
#include "bitmap.h"

void
batch_rows_init(BatchRows *b, SparseTensor *t, int cap)
{
	b->t = t;
	b->slot_of = palloc_extended((Size) t->n_rows * sizeof(int32), MCXT_ALLOC_HUGE);
	b->in_batch = palloc0((Size) (t->n_rows + 63) / 64 * sizeof(uint64));
	b->rows = palloc((Size) cap * sizeof(int32));
	b->count = palloc((Size) cap * sizeof(int32));
	b->emb = palloc_extended((Size) cap * t->dim * sizeof(float), MCXT_ALLOC_HUGE);
	b->grad = palloc_extended((Size) cap * t->dim * sizeof(float), MCXT_ALLOC_HUGE);
	b->cap = cap;
	b->n = 0;
	/* the step each row was last updated at (AdamCatchUp) */
	t->last_step = palloc_extended((Size) t->n_rows * sizeof(int64),
								   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

void
batch_rows_init_alias(BatchRows *alias, const BatchRows *of, SparseTensor *t)
{
	Assert(t->n_rows == of->t->n_rows);
	alias->t = t;
	alias->slot_of = of->slot_of;
	alias->in_batch = of->in_batch;
	alias->rows = of->rows;
	alias->count = of->count;
	alias->emb = palloc_extended((Size) of->cap * t->dim * sizeof(float), MCXT_ALLOC_HUGE);
	alias->grad = palloc_extended((Size) of->cap * t->dim * sizeof(float), MCXT_ALLOC_HUGE);
	alias->cap = of->cap;
	alias->n = 0;
	t->last_step = palloc_extended((Size) t->n_rows * sizeof(int64),
								   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

void
batch_assign_slots(BatchRows *b)
{
	b->n = bits_take_numbered(b->in_batch, BITS_WORDS(b->t->n_rows), b->slot_of, b->rows, b->count);
}

/*
 * Prefetching a few rows ahead (weights and both moments: the catch-up
 * writes all three).
 */
void
batch_densify(BatchRows *b, const AdamCatchUp *cu, int64 lo, int64 hi)
{
	const int	ahead = 8;
	const int	dim = b->t->dim;

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

/*
 * Prefetching a few rows ahead (the row's entries and moments, and its
 * regrowth sum)
 */
void
batch_rows_adam(BatchRows *b, const DslEngine *e, float reg_scale, float *acc,
				double *reg_out, int64 lo, int64 hi)
{
	const int	ahead = 4;
	const int	dim = b->t->dim;

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
