/*
 * sparse_tensor.c - masked parameter tensors holding active entries only
 *
 * The prune/regrow update works on a bitmap of the n_rows * dim positions
 * (one bit per position, 1/32 of a dense float tensor) and then rebuilds the
 * compressed rows; every temporary is O(active entries) or O(bitmap).
 */
#include "postgres.h"

#include <math.h>
#include <sys/mman.h>

#include "miscadmin.h"

#include "sparse_tensor.h"

#define BITS_WORDS(n) (((n) + 63) / 64)

static inline bool
bit_get(const uint64 *b, int64 i)
{
	return (b[i >> 6] >> (i & 63)) & 1;
}

static inline void
bit_set(uint64 *b, int64 i)
{
	b[i >> 6] |= UINT64CONST(1) << (i & 63);
}

/*
 * Tensor arrays are visited one row at a time in random order, so with 4 kB
 * pages nearly every row visit is a TLB miss.  Ask for transparent huge
 * pages on the 2 MB-aligned interior of big arrays, before first touch.
 */
static void
advise_huge_pages(void *p, Size sz)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t huge = 2 * 1024 * 1024;
	uintptr_t	b = ((uintptr_t) p + huge - 1) & ~(huge - 1);
	uintptr_t	e = ((uintptr_t) p + sz) & ~(huge - 1);

	if (e > b)
		(void) madvise((void *) b, e - b, MADV_HUGEPAGE);
#endif
}

static void *
alloc_huge(Size sz)
{
	void	   *p = palloc_extended(Max(sz, 1), MCXT_ALLOC_HUGE);

	advise_huge_pages(p, sz);
	return p;
}

static void *
alloc_huge0(Size sz)
{
	void	   *p = palloc_extended(Max(sz, 1), MCXT_ALLOC_HUGE);

	advise_huge_pages(p, sz);
	memset(p, 0, Max(sz, 1));
	return p;
}

Size
sparse_tensor_state_bytes(int n_rows, int dim, int64 budget)
{
	/* row_ptr + col + w + m + v, plus the update-time bitmap and rebuild copy */
	Size		state = (Size) (n_rows + 1) * sizeof(int64) +
		(Size) budget * (sizeof(uint16) + 3 * sizeof(float));

	return state;
}

/*
 * Mark `need` positions chosen uniformly at random among the clear bits of
 * occ (which has `free` clear bits among `total`).  When more than half of
 * the free positions are wanted, the complement is sampled instead, so
 * rejection sampling always accepts at least half of the free draws.
 */
static void
choose_random_free(uint64 *occ, int64 total, int64 free, int64 need, DslRng *rng)
{
	int64		nwords = BITS_WORDS(total);

	Assert(need <= free);
	if (need == 0)
		return;
	if (need <= free / 2)
	{
		while (need > 0)
		{
			int64		pos = (int64) dsl_rng_below(rng, (uint64) total);

			if (!bit_get(occ, pos))
			{
				bit_set(occ, pos);
				need--;
			}
			if ((need & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}
	else
	{
		uint64	   *excl = alloc_huge(nwords * sizeof(uint64));
		int64		skip = free - need;

		memcpy(excl, occ, nwords * sizeof(uint64));
		while (skip > 0)
		{
			int64		pos = (int64) dsl_rng_below(rng, (uint64) total);

			if (!bit_get(excl, pos))
			{
				bit_set(excl, pos);
				skip--;
			}
		}
		/* every position clear in excl becomes active */
		for (int64 w = 0; w < nwords; w++)
			occ[w] |= ~excl[w];
		if (total % 64)
			occ[nwords - 1] &= (UINT64CONST(1) << (total % 64)) - 1;
		pfree(excl);
	}
}

SparseTensor *
sparse_tensor_create(const char *name, int n_rows, int dim, double density,
					 float init_std, uint64 seed, uint64 stream)
{
	SparseTensor *t = palloc0(sizeof(SparseTensor));
	int64		total = (int64) n_rows * dim;
	int64		budget = (int64) rint(density * (double) total);
	uint64	   *occ;
	DslRng		rng;
	int64		k = 0;

	strlcpy(t->name, name, NAMEDATALEN);
	t->n_rows = n_rows;
	t->dim = dim;
	t->total = total;
	if (budget < 1 && total > 0)
		budget = 1;
	t->budget = budget;

	dsl_rng_seed(&rng, seed, stream);
	occ = alloc_huge0(BITS_WORDS(total) * sizeof(uint64));
	choose_random_free(occ, total, total, budget, &rng);

	t->row_ptr = alloc_huge((Size) (n_rows + 1) * sizeof(int64));
	t->col = alloc_huge((Size) budget * sizeof(uint16));
	t->w = alloc_huge((Size) budget * sizeof(float));
	t->m = alloc_huge0((Size) budget * sizeof(float));
	t->v = alloc_huge0((Size) budget * sizeof(float));

	for (int r = 0; r < n_rows; r++)
	{
		int64		base = (int64) r * dim;

		t->row_ptr[r] = k;
		for (int c = 0; c < dim; c++)
		{
			if (bit_get(occ, base + c))
			{
				t->col[k] = (uint16) c;
				t->w[k] = (float) (dsl_rng_normal(&rng) * init_std);
				k++;
			}
		}
	}
	t->row_ptr[n_rows] = k;
	Assert(k == budget);
	pfree(occ);
	return t;
}

void
sparse_tensor_free(SparseTensor *t)
{
	if (t == NULL)
		return;
	pfree(t->row_ptr);
	pfree(t->col);
	pfree(t->w);
	if (t->m)
		pfree(t->m);
	if (t->v)
		pfree(t->v);
	pfree(t);
}

/* a copy of weights and pattern, without optimizer state (best-epoch snapshot) */
SparseTensor *
sparse_tensor_copy_weights(const SparseTensor *t)
{
	SparseTensor *c = palloc(sizeof(SparseTensor));

	memcpy(c, t, sizeof(SparseTensor));
	c->row_ptr = alloc_huge((Size) (t->n_rows + 1) * sizeof(int64));
	memcpy(c->row_ptr, t->row_ptr, (Size) (t->n_rows + 1) * sizeof(int64));
	c->col = alloc_huge((Size) t->budget * sizeof(uint16));
	memcpy(c->col, t->col, (Size) t->budget * sizeof(uint16));
	c->w = alloc_huge((Size) t->budget * sizeof(float));
	memcpy(c->w, t->w, (Size) t->budget * sizeof(float));
	c->m = NULL;
	c->v = NULL;
	return c;
}

void
sparse_tensor_fill_rows(void *arg, int first, int count, float *out)
{
	const SparseTensor *t = (const SparseTensor *) arg;

	for (int i = 0; i < count; i++)
		sparse_tensor_row_dense(t, first + i, out + (Size) i * t->dim);
}

void
sparse_tensor_adam_row(SparseTensor *t, int r, const float *g,
					   const AdamConfig *cfg, float bc1, float bc2)
{
	int64		b = t->row_ptr[r],
				e = t->row_ptr[r + 1];
	const float b1 = cfg->beta1,
				b2 = cfg->beta2,
				eps = cfg->eps;
	const float step = cfg->lr / bc1;
	const float inv_bc2 = 1.0f / bc2;
	const uint16 *col = t->col;
	float	   *w = t->w,
			   *m = t->m,
			   *v = t->v;

	if (e - b == t->dim)
	{
		/* a full row: no column indirection, so the loop vectorises */
		w += b;
		m += b;
		v += b;
		for (int c = 0; c < t->dim; c++)
		{
			float		gk = g[c];
			float		mk = b1 * m[c] + (1.0f - b1) * gk;
			float		vk = b2 * v[c] + (1.0f - b2) * gk * gk;

			m[c] = mk;
			v[c] = vk;
			w[c] -= step * mk / (sqrtf(vk * inv_bc2) + eps);
		}
		return;
	}
	for (int64 k = b; k < e; k++)
	{
		float		gk = g[col[k]];
		float		mk = b1 * m[k] + (1.0f - b1) * gk;
		float		vk = b2 * v[k] + (1.0f - b2) * gk * gk;

		m[k] = mk;
		v[k] = vk;
		w[k] -= step * mk / (sqrtf(vk * inv_bc2) + eps);
	}
}

/* ---------------------------------------------------------------------------
 * Selection
 * ---------------------------------------------------------------------------
 */

/* k-th smallest (0-based) of a[0..n), reordering a (Hoare quickselect) */
static float
select_kth(float *a, int64 n, int64 k)
{
	int64		lo = 0,
				hi = n - 1;

	while (lo < hi)
	{
		float		x;
		int64		i,
					j;
		int64		mid = lo + (hi - lo) / 2;

		/* median of three as pivot */
		if (a[mid] < a[lo])
		{
			float		tmp = a[mid];

			a[mid] = a[lo];
			a[lo] = tmp;
		}
		if (a[hi] < a[lo])
		{
			float		tmp = a[hi];

			a[hi] = a[lo];
			a[lo] = tmp;
		}
		if (a[hi] < a[mid])
		{
			float		tmp = a[hi];

			a[hi] = a[mid];
			a[mid] = tmp;
		}
		x = a[mid];
		i = lo;
		j = hi;
		while (i <= j)
		{
			while (a[i] < x)
				i++;
			while (a[j] > x)
				j--;
			if (i <= j)
			{
				float		tmp = a[i];

				a[i] = a[j];
				a[j] = tmp;
				i++;
				j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return a[k];
	}
	return a[k];
}

typedef struct TieEntry
{
	uint64		hash;
	int64		pos;
} TieEntry;

static int
tie_cmp(const void *a, const void *b)
{
	const TieEntry *x = a,
			   *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos ? 1 : 0);
}

static inline uint64
tie_hash(uint64 seed, uint64 round, int64 pos)
{
	return dsl_mix64(seed ^ dsl_mix64(round * UINT64CONST(0x9E37) + (uint64) pos));
}

/*
 * Given n keys and their positions, mark in `mark` the `want` positions with
 * the smallest keys (or largest, if largest), breaking ties by seeded hash.
 */
static void
mark_extreme(const float *keys, const int64 *pos, int64 n, int64 want,
			 bool largest, uint64 *mark, bool set, uint64 seed, uint64 round)
{
	float	   *tmp;
	float		thr;
	int64		strict = 0;
	int64		n_eq = 0;
	TieEntry   *ties;

	if (want <= 0)
		return;
	Assert(want <= n);

	tmp = alloc_huge((Size) n * sizeof(float));
	for (int64 i = 0; i < n; i++)
		tmp[i] = largest ? -keys[i] : keys[i];
	thr = select_kth(tmp, n, want - 1);
	pfree(tmp);

	for (int64 i = 0; i < n; i++)
	{
		float		k = largest ? -keys[i] : keys[i];

		if (k < thr)
			strict++;
		else if (k == thr)
			n_eq++;
	}
	ties = alloc_huge((Size) Max(n_eq, 1) * sizeof(TieEntry));
	n_eq = 0;
	for (int64 i = 0; i < n; i++)
	{
		float		k = largest ? -keys[i] : keys[i];

		if (k < thr || k == thr)
		{
			if (k == thr)
			{
				ties[n_eq].hash = tie_hash(seed, round, pos[i]);
				ties[n_eq].pos = pos[i];
				n_eq++;
				continue;
			}
			if (set)
				bit_set(mark, pos[i]);
			else
				mark[pos[i] >> 6] &= ~(UINT64CONST(1) << (pos[i] & 63));
		}
	}
	qsort(ties, n_eq, sizeof(TieEntry), tie_cmp);
	for (int64 i = 0; i < want - strict; i++)
	{
		int64		p = ties[i].pos;

		if (set)
			bit_set(mark, p);
		else
			mark[p >> 6] &= ~(UINT64CONST(1) << (p & 63));
	}
	pfree(ties);
}

int64
sparse_tensor_prune_regrow(SparseTensor *t, int64 n_update, GrowthMode growth,
						   const TensorGrad *grad, uint64 seed, uint64 round)
{
	int64		nwords = BITS_WORDS(t->total);
	int64		nnz = t->budget;
	uint64	   *occ;
	int64		grown = 0;
	int64		changed = 0;
	DslRng		rng;

	n_update = Min(n_update, nnz);
	if (n_update <= 0 || nnz >= t->total)
		return 0;

	occ = alloc_huge0(nwords * sizeof(uint64));

	/* the current pattern */
	for (int r = 0; r < t->n_rows; r++)
	{
		int64		base = (int64) r * t->dim;

		for (int64 k = t->row_ptr[r]; k < t->row_ptr[r + 1]; k++)
			bit_set(occ, base + t->col[k]);
	}

	/* prune: clear the n_update active positions of smallest |w| */
	{
		float	   *mag = alloc_huge((Size) nnz * sizeof(float));
		int64	   *pos = alloc_huge((Size) nnz * sizeof(int64));

		for (int r = 0; r < t->n_rows; r++)
		{
			int64		base = (int64) r * t->dim;

			for (int64 k = t->row_ptr[r]; k < t->row_ptr[r + 1]; k++)
			{
				/* a diverged (NaN) weight counts as huge: never a crash */
				mag[k] = isnan(t->w[k]) ? INFINITY : fabsf(t->w[k]);
				pos[k] = base + t->col[k];
			}
		}
		mark_extreme(mag, pos, nnz, n_update, false, occ, false, seed, round * 2);
		pfree(mag);
		pfree(pos);
	}
	CHECK_FOR_INTERRUPTS();

	/* regrow by gradient: the inactive positions with largest |g| > 0 */
	if (growth == GROWTH_GRADIENT && grad != NULL && grad->n > 0)
	{
		int64		cap = (int64) grad->n * t->dim;
		float	   *mag = alloc_huge((Size) cap * sizeof(float));
		int64	   *pos = alloc_huge((Size) cap * sizeof(int64));
		int64		n = 0;

		for (int i = 0; i < grad->n; i++)
		{
			int64		base = (int64) grad->rows[i] * t->dim;
			const float *g = grad->g + (Size) i * t->dim;

			for (int c = 0; c < t->dim; c++)
			{
				float		a = isnan(g[c]) ? INFINITY : fabsf(g[c]);

				if (a > 0 && !bit_get(occ, base + c))
				{
					mag[n] = a;
					pos[n] = base + c;
					n++;
				}
			}
		}
		grown = Min(n, n_update);
		mark_extreme(mag, pos, n, grown, true, occ, true, seed, round * 2 + 1);
		pfree(mag);
		pfree(pos);
	}

	/* the rest (random growth, or zero gradients): uniformly among the free */
	if (grown < n_update)
	{
		int64		free = t->total - (nnz - n_update) - grown;

		dsl_rng_seed(&rng, seed, UINT64CONST(0x5EED0000) + round);
		choose_random_free(occ, t->total, free, n_update - grown, &rng);
	}
	CHECK_FOR_INTERRUPTS();

	/* rebuild the rows: survivors keep their state, new entries start at 0 */
	{
		int64	   *row_ptr = alloc_huge((Size) (t->n_rows + 1) * sizeof(int64));
		uint16	   *col = alloc_huge((Size) nnz * sizeof(uint16));
		float	   *w = alloc_huge((Size) nnz * sizeof(float));
		float	   *m = alloc_huge((Size) nnz * sizeof(float));
		float	   *v = alloc_huge((Size) nnz * sizeof(float));
		int64		k = 0;

		for (int r = 0; r < t->n_rows; r++)
		{
			int64		base = (int64) r * t->dim;
			int64		o = t->row_ptr[r],
						oe = t->row_ptr[r + 1];

			row_ptr[r] = k;
			for (int c = 0; c < t->dim; c++)
			{
				if (!bit_get(occ, base + c))
					continue;
				while (o < oe && t->col[o] < c)
				{
					o++;
					changed++;	/* an old entry that did not survive */
				}
				col[k] = (uint16) c;
				if (o < oe && t->col[o] == c)
				{
					w[k] = t->w[o];
					m[k] = t->m[o];
					v[k] = t->v[o];
					o++;
				}
				else
				{
					w[k] = 0;
					m[k] = 0;
					v[k] = 0;
				}
				k++;
			}
			changed += oe - o;
		}
		row_ptr[t->n_rows] = k;
		if (k != nnz)
			elog(ERROR, "dsl_rec: tensor \"%s\" has %lld active entries after update, budget is %lld",
				 t->name, (long long) k, (long long) nnz);

		pfree(t->row_ptr);
		pfree(t->col);
		pfree(t->w);
		pfree(t->m);
		pfree(t->v);
		t->row_ptr = row_ptr;
		t->col = col;
		t->w = w;
		t->m = m;
		t->v = v;
	}
	pfree(occ);
	return changed;
}
