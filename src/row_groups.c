/*
 * row_groups.c - a sparse tensor's rows as masks of groups of 16 columns
 * (see row_groups.h)
 */
#include "postgres.h"

#include "cpu.h"
#include "hugepage.h"
#include "row_groups.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

/* rows holding fewer than dim / ROW_GROUPS_MIN entries take the plain loops */
#define ROW_GROUPS_MIN 4

static int	use_groups = -1;	/* the CPU has AVX-512F (chosen once) */

Size
row_groups_bytes(int n_rows, int dim)
{
	return (Size) n_rows * ((dim + 15) / 16) * sizeof(uint16);
}

void
row_groups_init(RowGroups *g, const SparseTensor *t)
{
	if (use_groups < 0)
		use_groups = DSL_CPU_HAS("avx512f") ? 1 : 0;
	memset(g, 0, sizeof(RowGroups));
	g->n_rows = t->n_rows;
	g->n_groups = (t->dim + 15) / 16;
	if (use_groups)
		g->mask = dsl_alloc_huge(Max(row_groups_bytes(t->n_rows, t->dim), 1), false);
	/* t->layout starts at 1: the first sync builds */
}

void
row_groups_free(RowGroups *g)
{
	if (g->mask)
		pfree(g->mask);
	g->mask = NULL;
}

void
row_groups_sync(RowGroups *g, const SparseTensor *t)
{
	if (g->mask == NULL || g->layout == t->layout)
		return;
	Assert(g->n_rows == t->n_rows && g->n_groups == (t->dim + 15) / 16);
	memset(g->mask, 0, row_groups_bytes(g->n_rows, t->dim));
	for (int r = 0; r < t->n_rows; r++)
	{
		uint16	   *m = g->mask + (Size) r * g->n_groups;

		for (int64 q = t->row_ptr[r]; q < t->row_ptr[r + 1]; q++)
			m[t->col[q] >> 4] |= (uint16) (1u << (t->col[q] & 15));
	}
	g->layout = t->layout;
}

/* whether row r (of n entries) goes through its masks */
static inline bool
by_groups(const RowGroups *g, const SparseTensor *t, int64 n)
{
	Assert(g->mask == NULL || g->layout == t->layout);
	return g->mask != NULL && n * ROW_GROUPS_MIN >= t->dim;
}

#ifdef DSL_X86_DISPATCH

/* lanes of the last group that exist: dim's remainder, or all 16 */
static inline __mmask16
last_lanes(int dim)
{
	return (__mmask16) ((dim & 15) ? (1u << (dim & 15)) - 1 : 0xFFFF);
}

DSL_TARGET("avx512f,popcnt")
static void
axpy_groups(const uint16 *m, int n_groups, int dim, const float *w, float a, float *y)
{
	const __m512 va = _mm512_set1_ps(a);

	for (int j = 0; j < n_groups; j++)
	{
		const __mmask16 k = m[j];
		const int	n = __builtin_popcount(k);
		const __mmask16 lanes = j == n_groups - 1 ? last_lanes(dim) : 0xFFFF;
		__m512		x;

		if (n == 0)
			continue;
		/* the group's n weights, loaded without touching what follows */
		x = _mm512_maskz_expand_ps(k, _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), w));
		_mm512_mask_storeu_ps(y + 16 * j, lanes,
							  _mm512_fmadd_ps(va, x, _mm512_maskz_loadu_ps(lanes, y + 16 * j)));
		w += n;
	}
}

DSL_TARGET("avx512f,popcnt")
static void
dense_groups(const uint16 *m, int n_groups, int dim, const float *w, float *out)
{
	for (int j = 0; j < n_groups; j++)
	{
		const __mmask16 k = m[j];
		const int	n = __builtin_popcount(k);
		const __mmask16 lanes = j == n_groups - 1 ? last_lanes(dim) : 0xFFFF;

		_mm512_mask_storeu_ps(out + 16 * j, lanes,
							  _mm512_maskz_expand_ps(k, _mm512_maskz_loadu_ps((__mmask16) ((1u << n) - 1), w)));
		w += n;
	}
}

DSL_TARGET("avx512f,popcnt")
static void
gather_groups(const uint16 *m, int n_groups, int dim, const float *x, float *packed)
{
	for (int j = 0; j < n_groups; j++)
	{
		const __mmask16 k = m[j];
		const int	n = __builtin_popcount(k);
		const __mmask16 lanes = j == n_groups - 1 ? last_lanes(dim) : 0xFFFF;

		if (n == 0)
			continue;
		_mm512_mask_storeu_ps(packed, (__mmask16) ((1u << n) - 1),
							  _mm512_maskz_compress_ps(k, _mm512_maskz_loadu_ps(lanes, x + 16 * j)));
		packed += n;
	}
}
#endif

void
row_groups_axpy(const RowGroups *g, const SparseTensor *t, int r, float a, float *y)
{
	const int64 q0 = t->row_ptr[r],
				q1 = t->row_ptr[r + 1];

#ifdef DSL_X86_DISPATCH
	if (by_groups(g, t, q1 - q0))
	{
		axpy_groups(g->mask + (Size) r * g->n_groups, g->n_groups, t->dim, t->w + q0, a, y);
		return;
	}
#endif
	for (int64 q = q0; q < q1; q++)
		y[t->col[q]] += a * t->w[q];
}

void
row_groups_dense(const RowGroups *g, const SparseTensor *t, int r, float *out)
{
#ifdef DSL_X86_DISPATCH
	const int64 q0 = t->row_ptr[r];

	if (by_groups(g, t, t->row_ptr[r + 1] - q0))
	{
		dense_groups(g->mask + (Size) r * g->n_groups, g->n_groups, t->dim, t->w + q0, out);
		return;
	}
#endif
	sparse_tensor_row_dense(t, r, out);
}

void
row_groups_gather(const RowGroups *g, const SparseTensor *t, int r, const float *x,
				  float *packed)
{
	const int64 q0 = t->row_ptr[r],
				q1 = t->row_ptr[r + 1];

#ifdef DSL_X86_DISPATCH
	if (by_groups(g, t, q1 - q0))
	{
		gather_groups(g->mask + (Size) r * g->n_groups, g->n_groups, t->dim, x, packed);
		return;
	}
#endif
	for (int64 q = q0; q < q1; q++)
		packed[q - q0] = x[t->col[q]];
}
