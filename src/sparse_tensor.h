/*
 * sparse_tensor.h - a masked parameter tensor that stores active entries only
 *
 * A tensor of n_rows x dim weights of which exactly `budget` entries are
 * active.  Active entries are kept row by row (compressed sparse rows, column
 * indices ascending) together with their Adam moments, so parameter and
 * optimizer memory scale with the density, not with n_rows * dim.  Inactive
 * weights are exactly zero by construction.
 */
#ifndef DSL_SPARSE_TENSOR_H
#define DSL_SPARSE_TENSOR_H

#include "postgres.h"

#include "hugepage.h"		/* the arrays are dsl_alloc_huge'd */
#include "rng.h"
#include "workers.h"

/* largest embedding/row width a tensor may have (dsl.train's dim limit) */
#define DSL_MAX_DIM 1024

typedef struct SparseTensor
{
	char		name[NAMEDATALEN];
	int			n_rows;
	int			dim;
	int64		total;			/* n_rows * dim */
	int64		budget;			/* active entries, constant for life */
	uint64		layout;			/* changes whenever row_ptr or col do (a round,
								 * a warm start): caches of the pattern
								 * compare it */
	int64	   *row_ptr;		/* n_rows + 1 offsets into the arrays below */
	uint16	   *col;			/* column of each active entry */
	float	   *w;				/* weights */
	float	   *m;				/* Adam first moments */
	float	   *v;				/* Adam second moments */
	int64	   *last_step;		/* per row: step of its last Adam update, when
								 * idle rows are caught up (AdamCatchUp); NULL
								 * otherwise */
} SparseTensor;

/*
 * Dense gradient rows handed to a prune/regrow update: rows[k] is the tensor
 * row whose full (dim-long) gradient is g[k * dim ...], or, with rows NULL,
 * row k itself (a gradient of the whole tensor, n = n_rows).  Rows not
 * listed have a zero gradient.
 */
typedef struct TensorGrad
{
	int			n;
	const int32 *rows;
	const float *g;
	bool		consume;		/* g was palloc'd for this update alone: the
								 * update frees it once the regrown entries
								 * are chosen (before rebuilding the rows) */
} TensorGrad;

/* Adam settings shared by all tensors of one training run */
typedef struct AdamConfig
{
	float		lr;
	float		beta1;
	float		beta2;
	float		eps;
} AdamConfig;

/*
 * Memory arithmetic for the budget check, derived from the allocations below
 * (each must change with them; test/unit/engine_estimate_check.c compares
 * them with what the code really allocates):
 *   budget      active entries of an n_rows x dim tensor at a density
 *   state       what a tensor holds for life (struct, rows, columns,
 *               weights, both Adam moments)
 *   create      the most sparse_tensor_create holds at once, state included
 *   copy        a sparse_tensor_copy_weights snapshot
 *   round       the most a prune/regrow round of n_update entries holds on
 *               top of the state, with n_parts scan parts (prune_regrow.c)
 */
extern int64 sparse_tensor_budget(int n_rows, int dim, double density);
extern Size sparse_tensor_state_bytes(int n_rows, int dim, int64 budget);
extern Size sparse_tensor_create_bytes(int n_rows, int dim, int64 budget);
extern Size sparse_tensor_copy_bytes(int n_rows, int dim, int64 budget);
extern Size sparse_tensor_round_bytes(int n_rows, int dim, int64 budget,
									  int64 n_update, int n_parts);

extern SparseTensor *sparse_tensor_create(const char *name, int n_rows, int dim,
										  int64 budget, float init_std,
										  uint64 seed, uint64 stream);
extern void sparse_tensor_free(SparseTensor *t);
extern SparseTensor *sparse_tensor_copy_weights(const SparseTensor *t);

/* out[dim] = row r, zeros at inactive positions */
static inline void
sparse_tensor_row_dense(const SparseTensor *t, int r, float *out)
{
	int64		b = t->row_ptr[r],
				e = t->row_ptr[r + 1];

	if (e - b == t->dim)
	{
		memcpy(out, t->w + b, sizeof(float) * t->dim);
		return;
	}
	memset(out, 0, sizeof(float) * t->dim);
	for (int64 k = b; k < e; k++)
		out[t->col[k]] = t->w[k];
}

/*
 * Ask the CPU to fetch row r's entries (stage 2) or its offsets (stage 1)
 * ahead of use: rows are visited in random order, so without this every row
 * is a chain of cache misses.
 */
static inline void
sparse_tensor_prefetch_offsets(const SparseTensor *t, int r)
{
	__builtin_prefetch(&t->row_ptr[r]);
}

/* prefetch every cache line of a[b..e) (elements of size sz) */
static inline void
prefetch_span(const void *a, int64 b, int64 e, Size sz, bool for_write)
{
	uintptr_t	lo = ((uintptr_t) a + (uintptr_t) (b * sz)) & ~(uintptr_t) 63;
	uintptr_t	hi = (uintptr_t) a + (uintptr_t) (e * sz) - 1;

	if (e <= b)
		return;
	for (uintptr_t p = lo; p <= hi; p += 64)
	{
		if (for_write)
			__builtin_prefetch((const void *) p, 1);
		else
			__builtin_prefetch((const void *) p, 0);
	}
}

/*
 * Prefetch the lines row r's step will touch: weights and columns to read it
 * (densify), plus the Adam moments to update it (for_update).  Rows rarely
 * start on a cache-line boundary, so the spans are covered line by line.
 */
static inline void
sparse_tensor_prefetch_row(const SparseTensor *t, int r, bool for_update)
{
	int64		b = t->row_ptr[r],
				e = t->row_ptr[r + 1];

	prefetch_span(t->w, b, e, sizeof(float), for_update);
	prefetch_span(t->col, b, e, sizeof(uint16), false);
	if (for_update)
	{
		prefetch_span(t->m, b, e, sizeof(float), true);
		prefetch_span(t->v, b, e, sizeof(float), true);
	}
}

/* fill callback compatible with EmbeddingSource (model.h) */
extern void sparse_tensor_fill_rows(void *arg, int first, int count, float *out);

/*
 * One Adam step on the active entries of row r given its dense gradient g.
 * bc1/bc2 are the bias corrections 1 - beta^t of the current step.
 */
extern void sparse_tensor_adam_row(SparseTensor *t, int r, const float *g,
								   const AdamConfig *cfg, float bc1, float bc2);

/* the same given the gradients of row r's active entries only, in order */
extern void sparse_tensor_adam_row_packed(SparseTensor *t, int r, const float *g,
										  const AdamConfig *cfg, float bc1, float bc2);

/*
 * Dense Adam's trajectory at lazy Adam's cost.  With dense Adam a row that
 * is not in a mini-batch still moves: its gradient is zero, so m <- b1 m,
 * v <- b2 v and w moves by lr m_hat / (sqrt(v_hat) + eps) at every step.
 * Lazy Adam updates only the rows of the batch.  The idle steps are caught
 * up when the row is next used: after k idle steps ending at step T,
 *   w -= coef[k] * m / sqrt(v),  m *= b1^k,  v *= b2^k,
 *   coef[k] = sum_{s=1..k} lr(T-k+s) rho^s sqrt(1 - b2^(T-k+s)) / (1 - b1^(T-k+s)),
 * with rho = b1 / sqrt(b2) (eps is left out of the idle steps: next to
 * sqrt(v) of a row that was ever updated it is negligible).  coef[] for
 * target T follows from that for T - 1 in O(window) per step; idle spans
 * longer than the window are summed directly (their terms after the window
 * are below rho^window ~ 1e-12 of the first).  lr(t) is the learning rate
 * step t had (it follows a schedule), recorded step by step: 4 bytes a step.
 */
#define ADAM_CATCHUP_WINDOW 256

typedef struct AdamCatchUp
{
	AdamConfig	cfg;
	int64		target;			/* the step rows are caught up to */
	double		rho;
	double		coef[ADAM_CATCHUP_WINDOW + 1];
	float		b1k[ADAM_CATCHUP_WINDOW + 1];
	float		b2k[ADAM_CATCHUP_WINDOW + 1];
	float	   *lr_of;			/* lr_of[t]: the learning rate of step t */
	int64		lr_known;		/* steps 1..lr_known are recorded */
	int64		lr_cap;
} AdamCatchUp;

extern void adam_catchup_init(AdamCatchUp *c, const AdamConfig *cfg);
/* record the learning rate of step t (steps are recorded in order) */
extern void adam_catchup_set_lr(AdamCatchUp *c, int64 t, float lr);
/* move the target forward to step `target` (its lr recorded) */
extern void adam_catchup_advance(AdamCatchUp *c, int64 target);
/* bring row r from its last_step to c->target */
extern void sparse_tensor_catch_up_row(SparseTensor *t, int r, const AdamCatchUp *c);
/* every row of t, rows split over the pool (NULL: the caller only) */
extern void sparse_tensor_catch_up_all(SparseTensor *t, const AdamCatchUp *c,
									   WorkerPool *pool);

/*
 * Regrowth criterion.  There is no "momentum" mode: optimizer state exists
 * for active entries only, so an inactive entry has no momentum to rank by.
 */
typedef enum GrowthMode
{
	GROWTH_GRADIENT,
	GROWTH_RANDOM
} GrowthMode;

/*
 * Prune the n_update active entries of smallest magnitude and regrow as many
 * among the inactive ones (including the ones just pruned) by the growth
 * criterion; ties and zero scores are broken by a seeded hash.  Entries that
 * stay active keep weight and moments; newly active ones start at zero.
 * The number of active entries is unchanged.  The scans run on pool
 * (NULL: in the caller only); the result does not depend on it.
 * (prune_regrow.c)
 */
extern void sparse_tensor_prune_regrow(SparseTensor *t, int64 n_update,
									   GrowthMode growth, const TensorGrad *grad,
									   uint64 seed, uint64 round,
									   WorkerPool *pool);

/* mark `need` random clear bits of occ (shared with prune_regrow.c) */
extern void sparse_tensor_choose_random_free(uint64 *occ, int64 total, int64 free,
											 int64 need, DslRng *rng);

#endif							/* DSL_SPARSE_TENSOR_H */
