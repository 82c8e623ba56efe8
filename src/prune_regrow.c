/*
 * prune_regrow.c - one DSL round on a SparseTensor
 *
 * Magnitude prune, then gradient (or random) regrowth among the inactive
 * positions, then the compressed rows are rebuilt.  The round works on two
 * bitmaps of the positions (the pattern before and after) and selects with
 * radix histograms (kselect.h), so every temporary is O(bitmap) or
 * O(active entries), and every scan is linear.
 *
 * The scans are split over the worker pool by row ranges that start on a
 * bitmap word, so parts never write the same word; histograms are counted
 * per part and summed in part order, and ties are gathered in row order.
 * The result is therefore the same for any number of threads.  Workers get
 * everything preallocated: they never call PostgreSQL.
 */
#include "postgres.h"

#include "miscadmin.h"

#include "bitmap.h"
#include "kselect.h"
#include "mem_peak.h"
#include "sparse_tensor.h"
#include "workers.h"

#define MAX_PARTS 64

typedef struct RoundJob
{
	SparseTensor *t;
	const TensorGrad *grad;
	uint64	   *occ;			/* the pattern being built */
	uint64	   *old;			/* the pattern before the round */
	int			n_parts;
	int			row_lo[MAX_PARTS + 1];	/* part p: rows [row_lo[p], row_lo[p + 1]) */
	bool		shared_words;	/* gradient rows may share bitmap words */
	KSelect		ks;				/* merged counts */
	KSelect		pks[MAX_PARTS]; /* per-part counts */
	int64		n_cand[MAX_PARTS];	/* regrowth candidates per part */
	KSelectTie *ties;
	int64		tie_off[MAX_PARTS + 1];
	uint64		seed;
	uint64		tie_round;
	/* rebuild */
	int64		k_off[MAX_PARTS + 1];
	int64	   *row_ptr;		/* the new rows */
	uint16	   *col;
	uint16	   *src;			/* per new entry: its rank in the old row, or
								 * SRC_NEW */
	const float *gather_from;	/* scan_gather: old array -> gather_to */
	float	   *gather_to;
} RoundJob;

#define SRC_NEW 0xFFFF			/* dim <= DSL_MAX_DIM < SRC_NEW */

static void run_scan(RoundJob *j, WorkerPool *pool, WorkerFn fn);

static inline uint64
tie_hash(uint64 seed, uint64 round, int64 pos)
{
	return dsl_mix64(seed ^ dsl_mix64(round * UINT64CONST(0x9E37) + (uint64) pos));
}

/* [lo, hi) of the bitmap words covering the rows of a part */
static inline void
part_words(const RoundJob *j, int part, int64 *lo, int64 *hi)
{
	const SparseTensor *t = j->t;

	*lo = (int64) j->row_lo[part] * t->dim / 64;
	*hi = j->row_lo[part + 1] == t->n_rows ? BITS_WORDS(t->total) :
		(int64) j->row_lo[part + 1] * t->dim / 64;
}

/* the pattern as bitmaps: occ (to be edited) and old (kept) */
static void
scan_build(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const SparseTensor *t = j->t;
	int64		wlo,
				whi;

	part_words(j, part, &wlo, &whi);
	memset(j->occ + wlo, 0, (Size) (whi - wlo) * sizeof(uint64));
	for (int r = j->row_lo[part]; r < j->row_lo[part + 1]; r++)
	{
		int64		base = (int64) r * t->dim;

		for (int64 k = t->row_ptr[r]; k < t->row_ptr[r + 1]; k++)
			bit_set(j->occ, base + t->col[k]);
	}
	memcpy(j->old + wlo, j->occ + wlo, (Size) (whi - wlo) * sizeof(uint64));
}

static void
scan_prune_count(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const SparseTensor *t = j->t;
	KSelect    *ks = &j->pks[part];

	kselect_fork(&j->ks, ks);
	for (int64 k = t->row_ptr[j->row_lo[part]]; k < t->row_ptr[j->row_lo[part + 1]]; k++)
		kselect_add(ks, kselect_float_key(t->w[k]));
}

/* clear the active positions below the threshold, gather the ties */
static void
scan_prune_mark(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const SparseTensor *t = j->t;
	const uint32 thr = j->ks.thr;
	int64		n_tie = j->tie_off[part];

	for (int r = j->row_lo[part]; r < j->row_lo[part + 1]; r++)
	{
		int64		base = (int64) r * t->dim;

		for (int64 k = t->row_ptr[r]; k < t->row_ptr[r + 1]; k++)
		{
			uint32		key = kselect_float_key(t->w[k]);
			int64		pos = base + t->col[k];

			/* branch-free: early rounds prune a large random share */
			j->occ[pos >> 6] &= ~((uint64) (key < thr) << (pos & 63));
			if (unlikely(key == thr))
			{
				j->ties[n_tie].pos = pos;
				j->ties[n_tie].hash = tie_hash(j->seed, j->tie_round, pos);
				n_tie++;
			}
		}
	}
}

/*
 * Regrowth candidates: the inactive positions (clear bits) of the gradient
 * rows of grad indexes [lo, hi) with a non-zero gradient; the key is the
 * complemented magnitude, so that the largest come first.
 */
#define GRAD_CANDIDATES(j, lo, hi, body) \
	for (int64 i_ = (lo); i_ < (hi); i_++) \
	{ \
		const int	dim_ = (j)->t->dim; \
		int32		row_ = (j)->grad->rows ? (j)->grad->rows[i_] : (int32) i_; \
		int64		gbase_ = (int64) row_ * dim_; \
		const float *g_ = (j)->grad->g + (Size) i_ * dim_; \
		FOR_ROW_BITS((j)->occ, row_, dim_, true, c_, \
		{ \
			int64		pos pg_attribute_unused() = gbase_ + c_; \
			uint32		key; \
			if (g_[c_] == 0) \
				continue; \
			key = ~kselect_float_key(g_[c_]); \
			body; \
		}); \
	}

static void
scan_grow_count(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	KSelect    *ks = &j->pks[part];
	int64		lo,
				hi,
				n = 0;

	worker_share(j->grad->n, part, n_parts, &lo, &hi);
	kselect_fork(&j->ks, ks);
	GRAD_CANDIDATES(j, lo, hi, kselect_add(ks, key); n++);
	j->n_cand[part] = n;
}

/* set the candidates above the threshold, gather the ties */
static void
scan_grow_mark(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const uint32 thr = j->ks.thr;
	int64		n_tie,
				lo,
				hi;

	if (j->shared_words)
	{
		/* rows of different parts may share a word: one part does it all */
		if (part != 0)
			return;
		lo = 0;
		hi = j->grad->n;
		n_tie = 0;
	}
	else
	{
		worker_share(j->grad->n, part, n_parts, &lo, &hi);
		n_tie = j->tie_off[part];
	}
	GRAD_CANDIDATES(j, lo, hi,
	{
		if (key < thr)
			bit_set(j->occ, pos);
		else if (unlikely(key == thr))
		{
			j->ties[n_tie].pos = pos;
			j->ties[n_tie].hash = tie_hash(j->seed, j->tie_round, pos);
			n_tie++;
		}
	});
}

/* active entries per part after the round, for the rebuild's offsets */
static void
scan_rebuild_count(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	int64		wlo,
				whi,
				n = 0;

	part_words(j, part, &wlo, &whi);
	for (int64 w = wlo; w < whi; w++)
		n += __builtin_popcountll(j->occ[w]);
	j->k_off[part + 1] = n;
}

/*
 * The new pattern of a part's rows: columns, and where each entry comes
 * from (its rank among the row's old entries, by popcount over the old
 * bits, or SRC_NEW).  No data-dependent branch.
 */
static void
scan_rebuild_index(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const SparseTensor *t = j->t;
	const int	dim = t->dim;
	int64		k = j->k_off[part];

	for (int r = j->row_lo[part]; r < j->row_lo[part + 1]; r++)
	{
		int64		base = (int64) r * dim;
		int			rank0 = 0;	/* old entries of the row before the chunk */

		j->row_ptr[r] = k;
		for (int64 p = base; p < base + dim;)
		{
			int			span = (int) Min((int64) (64 - (p & 63)), base + dim - p);
			uint64		nw = bit_word(j->occ, p, span);
			uint64		ow = bit_word(j->old, p, span);
			int			at = (int) (p - base);

			while (nw)
			{
				int			b = __builtin_ctzll(nw);
				bool		kept = (ow >> b) & 1;
				int			rank = rank0 + __builtin_popcountll(ow & ((UINT64CONST(1) << b) - 1));

				nw &= nw - 1;
				j->col[k] = (uint16) (at + b);
				j->src[k] = kept ? (uint16) rank : SRC_NEW;
				k++;
			}
			rank0 += __builtin_popcountll(ow);
			p += span;
		}
	}
}

/* one state array into the new rows: survivors keep their value, new are 0 */
static void
scan_gather(void *arg, int part, int n_parts)
{
	RoundJob   *j = (RoundJob *) arg;
	const int64 *old_ptr = j->t->row_ptr;
	const float *from = j->gather_from;

	for (int r = j->row_lo[part]; r < j->row_lo[part + 1]; r++)
	{
		const float *row = from + old_ptr[r];

		for (int64 k = j->row_ptr[r]; k < j->row_ptr[r + 1]; k++)
		{
			uint16		sr = j->src[k];

			j->gather_to[k] = sr != SRC_NEW ? row[sr] : 0.0f;
		}
	}
}

/*
 * Replace *arr by its new-row version, one array at a time, so that a
 * round holds the old state plus one new array, not two copies of it.
 */
static void
rebuild_array(RoundJob *j, WorkerPool *pool, float **arr)
{
	j->gather_from = *arr;
	j->gather_to = dsl_alloc_huge((Size) j->t->budget * sizeof(float), false);
	run_scan(j, pool, scan_gather);
	dsl_mem_note();
	pfree(*arr);
	*arr = j->gather_to;
}

/* a gradient handed over with `consume` is freed as soon as it is used */
static void
release_grad(const TensorGrad *grad)
{
	if (grad != NULL && grad->consume && grad->g != NULL)
		pfree(unconstify(float *, grad->g));
}

static void
run_scan(RoundJob *j, WorkerPool *pool, WorkerFn fn)
{
	if (j->n_parts > 1)
		worker_pool_run(pool, fn, j);
	else
		fn(j, 0, 1);
}

/*
 * One counting selection over the parts: the `want` smallest keys of the
 * scan.  Leaves the threshold in j->ks and the ties' offsets per part.
 */
static void
select_parts(RoundJob *j, WorkerPool *pool, WorkerFn count, int64 want)
{
	bool		more;

	do
	{
		kselect_merge(&j->ks, j->pks, j->n_parts);
		more = kselect_next_pass(&j->ks, want);
		CHECK_FOR_INTERRUPTS();
		if (more)
			run_scan(j, pool, count);
	} while (more);

	j->tie_off[0] = 0;
	for (int p = 0; p < j->n_parts; p++)
		j->tie_off[p + 1] = j->tie_off[p] + kselect_part_eq(&j->pks[p], &j->ks);
	Assert(j->tie_off[j->n_parts] == j->ks.n_eq);
	j->ties = dsl_alloc_huge((Size) Max(j->ks.n_eq, 1) * sizeof(KSelectTie), false);
}

/* pick m of the gathered ties by hash and set (or clear) their bits */
static void
apply_ties(RoundJob *j, int64 m, bool set)
{
	kselect_ties(j->ties, j->ks.n_eq, m);
	for (int64 i = 0; i < m; i++)
	{
		if (set)
			bit_set(j->occ, j->ties[i].pos);
		else
			bit_clear(j->occ, j->ties[i].pos);
	}
	pfree(j->ties);
	j->ties = NULL;
}

/*
 * The most a round holds besides the tensor's own state, from the
 * allocations of sparse_tensor_prune_regrow: the job, the histograms (one
 * per part and the merged one) and the two bitmaps throughout, and on top
 * of them the largest of
 *   - the ties of a selection (n_update entries at most: a threshold ties
 *     more only when more than n_update weights share one magnitude, which
 *     in practice means the zeros regrown by the round before, at most its
 *     n_update),
 *   - the complement bitmap of random regrowth (when the free positions
 *     can be fewer than twice those drawn),
 *   - the rebuild: new offsets and columns, the source ranks and one new
 *     state array at a time (rebuild_array).
 */
Size
sparse_tensor_round_bytes(int n_rows, int dim, int64 budget, int64 n_update,
						  int n_parts)
{
	int64		total = (int64) n_rows * dim;
	Size		bitmap = Max(BITS_WORDS(total) * sizeof(uint64), 1);
	Size		ties;
	Size		excl;
	Size		rebuild = Max((Size) (n_rows + 1) * sizeof(int64), 1) +
		2 * Max((Size) budget * sizeof(uint16), 1) +
		Max((Size) budget * sizeof(float), 1);

	if (n_update <= 0 || budget >= total)
		return 0;				/* the round returns at once */
	n_update = Min(n_update, budget);
	ties = (Size) Max(n_update, 1) * sizeof(KSelectTie);
	excl = n_update > total - budget ? bitmap : 0;
	if (n_parts < 1 || n_parts > MAX_PARTS)
		n_parts = 1;			/* as the round decides from its pool */
	return sizeof(RoundJob) + (Size) (n_parts + 1) * KSELECT_BUCKETS * sizeof(uint32) +
		2 * bitmap + Max(Max(ties, excl), rebuild);
}

void
sparse_tensor_prune_regrow(SparseTensor *t, int64 n_update, GrowthMode growth,
						   const TensorGrad *grad, uint64 seed, uint64 round,
						   WorkerPool *pool)
{
	RoundJob   *j;
	int64		nnz = t->budget;
	int64		grown = 0;
	int			unit;

	n_update = Min(n_update, nnz);
	if (n_update <= 0 || nnz >= t->total)
	{
		release_grad(grad);
		return;
	}

	j = palloc0(sizeof(RoundJob));
	j->t = t;
	j->seed = seed;
	/* a pool larger than MAX_PARTS would run parts we have no room for */
	j->n_parts = pool && worker_pool_size(pool) <= MAX_PARTS ? worker_pool_size(pool) : 1;

	/* row ranges of the parts start on a bitmap word */
	unit = 64;
	while (unit > 1 && ((int64) unit / 2 * t->dim) % 64 == 0)
		unit /= 2;
	for (int p = 0; p <= j->n_parts; p++)
	{
		int64		r = (int64) t->n_rows * p / j->n_parts;

		j->row_lo[p] = p == j->n_parts ? t->n_rows : (int) (r / unit * unit);
	}
	for (int p = 0; p < j->n_parts; p++)
		kselect_init(&j->pks[p]);
	kselect_init(&j->ks);
	j->occ = dsl_alloc_huge(BITS_WORDS(t->total) * sizeof(uint64), false);
	j->old = dsl_alloc_huge(BITS_WORDS(t->total) * sizeof(uint64), false);

	run_scan(j, pool, scan_build);

	/* prune: clear the n_update active positions of smallest |w| */
	j->tie_round = round * 2;
	run_scan(j, pool, scan_prune_count);
	select_parts(j, pool, scan_prune_count, n_update);
	run_scan(j, pool, scan_prune_mark);
	apply_ties(j, n_update - j->ks.below, false);
	CHECK_FOR_INTERRUPTS();

	/* regrow by gradient: the inactive positions with largest |g| > 0 */
	if (growth == GROWTH_GRADIENT && grad != NULL && grad->n > 0)
	{
		int64		n_cand = 0;

		j->grad = grad;
		j->shared_words = t->dim % 64 != 0;
		j->tie_round = round * 2 + 1;
		kselect_reset(&j->ks);
		run_scan(j, pool, scan_grow_count);
		for (int p = 0; p < j->n_parts; p++)
			n_cand += j->n_cand[p];
		grown = Min(n_cand, n_update);
		if (grown > 0)
		{
			select_parts(j, pool, scan_grow_count, grown);
			run_scan(j, pool, scan_grow_mark);
			apply_ties(j, grown - j->ks.below, true);
		}
	}

	release_grad(grad);			/* chosen: the rebuild does not need it */

	/* the rest (random growth, or zero gradients): uniformly among the free */
	if (grown < n_update)
	{
		int64		free = t->total - (nnz - n_update) - grown;
		DslRng		rng;

		dsl_rng_seed(&rng, seed, UINT64CONST(0x5EED0000) + round);
		sparse_tensor_choose_random_free(j->occ, t->total, free, n_update - grown, &rng);
	}
	CHECK_FOR_INTERRUPTS();

	/* rebuild the rows */
	run_scan(j, pool, scan_rebuild_count);
	j->k_off[0] = 0;
	for (int p = 0; p < j->n_parts; p++)
		j->k_off[p + 1] += j->k_off[p];
	if (j->k_off[j->n_parts] != nnz)
		elog(ERROR, "dsl_rec: tensor \"%s\" has %lld active entries after update, budget is %lld",
			 t->name, (long long) j->k_off[j->n_parts], (long long) nnz);
	j->row_ptr = dsl_alloc_huge((Size) (t->n_rows + 1) * sizeof(int64), false);
	j->col = dsl_alloc_huge((Size) nnz * sizeof(uint16), false);
	j->src = dsl_alloc_huge((Size) nnz * sizeof(uint16), false);
	run_scan(j, pool, scan_rebuild_index);
	j->row_ptr[t->n_rows] = nnz;
	rebuild_array(j, pool, &t->w);
	rebuild_array(j, pool, &t->m);
	rebuild_array(j, pool, &t->v);
	pfree(j->src);
	pfree(t->col);
	pfree(t->row_ptr);
	t->col = j->col;
	t->row_ptr = j->row_ptr;
	t->layout++;

	pfree(j->occ);
	pfree(j->old);
	for (int p = 0; p < j->n_parts; p++)
		kselect_free(&j->pks[p]);
	kselect_free(&j->ks);
	pfree(j);
}
