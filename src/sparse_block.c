/*
 * sparse_block.c - products of a block of a sparse tensor's rows with a
 * batch (see sparse_block.h)
 */
#include "postgres.h"

#include "cpu.h"
#include "sparse_block.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

/* --- plain C ----------------------------------------------------------------- */

static void
mul_default(const SparseTensor *t, int64 r0, int n, const float *x, int bs, float *out)
{
	for (int r = 0; r < n; r++)
	{
		float	   *o = out + (Size) r * bs;

		memset(o, 0, sizeof(float) * bs);
		for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
		{
			const float *xc = x + (Size) t->col[q] * bs;
			const float w = t->w[q];

			for (int b = 0; b < bs; b++)
				o[b] += w * xc[b];
		}
	}
}

static void
mul_t_default(const SparseTensor *t, int64 r0, int n, const float *g, int bs, float *dx)
{
	for (int r = 0; r < n; r++)
	{
		const float *gr = g + (Size) r * bs;

		for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
		{
			float	   *d = dx + (Size) t->col[q] * bs;
			const float w = t->w[q];

			for (int b = 0; b < bs; b++)
				d[b] += w * gr[b];
		}
	}
}

static void
grad_default(const SparseTensor *t, int64 r0, int n, const float *g, const float *x,
			 int bs, float *gp)
{
	int64		base = t->row_ptr[r0];

	for (int r = 0; r < n; r++)
	{
		const float *gr = g + (Size) r * bs;

		for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
		{
			const float *xc = x + (Size) t->col[q] * bs;
			float		s = 0.0f;

			for (int b = 0; b < bs; b++)
				s += gr[b] * xc[b];
			gp[q - base] = s;
		}
	}
}

/* --- AVX2 with FMA: slabs of 64 batch columns in eight registers, then 16 ---- */

#ifdef DSL_X86_DISPATCH

/* 64 consecutive floats in eight registers */
typedef struct Slab8
{
	__m256		v[8];
} Slab8;

DSL_TARGET("avx2,fma")
static inline Slab8
slab8_load(const float *p)
{
	Slab8		s;

	for (int k = 0; k < 8; k++)
		s.v[k] = _mm256_loadu_ps(p + 8 * k);
	return s;
}

DSL_TARGET("avx2,fma")
static void
mul_avx2(const SparseTensor *t, int64 r0, int n, const float *x, int bs, float *out)
{
	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		float	   *o = out + (Size) r * bs;
		int			b0 = 0;

		for (; b0 + 64 <= bs; b0 += 64)
		{
			__m256		a0 = _mm256_setzero_ps(),
						a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;

			for (int64 q = q0; q < q1; q++)
			{
				const float *h = x + (Size) t->col[q] * bs + b0;
				__m256		w = _mm256_broadcast_ss(t->w + q);

				a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h), a0);
				a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 8), a1);
				a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 16), a2);
				a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 24), a3);
				a4 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 32), a4);
				a5 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 40), a5);
				a6 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 48), a6);
				a7 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 56), a7);
			}
			_mm256_storeu_ps(o + b0, a0);
			_mm256_storeu_ps(o + b0 + 8, a1);
			_mm256_storeu_ps(o + b0 + 16, a2);
			_mm256_storeu_ps(o + b0 + 24, a3);
			_mm256_storeu_ps(o + b0 + 32, a4);
			_mm256_storeu_ps(o + b0 + 40, a5);
			_mm256_storeu_ps(o + b0 + 48, a6);
			_mm256_storeu_ps(o + b0 + 56, a7);
		}
		for (; b0 < bs; b0 += 16)
		{
			__m256		a0 = _mm256_setzero_ps(),
						a1 = a0;

			for (int64 q = q0; q < q1; q++)
			{
				const float *h = x + (Size) t->col[q] * bs + b0;
				__m256		w = _mm256_broadcast_ss(t->w + q);

				a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h), a0);
				a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(h + 8), a1);
			}
			_mm256_storeu_ps(o + b0, a0);
			_mm256_storeu_ps(o + b0 + 8, a1);
		}
	}
}

DSL_TARGET("avx2,fma")
static void
mul_t_avx2(const SparseTensor *t, int64 r0, int n, const float *g, int bs, float *dx)
{
	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		const float *gr = g + (Size) r * bs;
		int			b0 = 0;

		/* the row's values of a slab of 64 batch columns in registers */
		for (; b0 + 64 <= bs; b0 += 64)
		{
			const Slab8 gs = slab8_load(gr + b0);

			for (int64 q = q0; q < q1; q++)
			{
				float	   *d = dx + (Size) t->col[q] * bs + b0;
				__m256		w = _mm256_broadcast_ss(t->w + q);

				for (int k = 0; k < 8; k++)
					_mm256_storeu_ps(d + 8 * k, _mm256_fmadd_ps(w, gs.v[k], _mm256_loadu_ps(d + 8 * k)));
			}
		}
		for (; b0 < bs; b0 += 16)
		{
			const __m256 g0 = _mm256_loadu_ps(gr + b0),
						g1 = _mm256_loadu_ps(gr + b0 + 8);

			for (int64 q = q0; q < q1; q++)
			{
				float	   *d = dx + (Size) t->col[q] * bs + b0;
				__m256		w = _mm256_broadcast_ss(t->w + q);

				_mm256_storeu_ps(d, _mm256_fmadd_ps(w, g0, _mm256_loadu_ps(d)));
				_mm256_storeu_ps(d + 8, _mm256_fmadd_ps(w, g1, _mm256_loadu_ps(d + 8)));
			}
		}
	}
}

/* the sum of a vector's eight lanes, in the order grad_default's tree uses */
DSL_TARGET("avx2,fma")
static inline float
hsum8(__m256 s)
{
	__m128		s4 = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));

	s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
	s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
	return _mm_cvtss_f32(s4);
}

DSL_TARGET("avx2,fma")
static void
grad_avx2(const SparseTensor *t, int64 r0, int n, const float *g, const float *x,
		  int bs, float *gp)
{
	const int64 base = t->row_ptr[r0];

	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		const float *gr = g + (Size) r * bs;
		int64		q = q0;

		if (bs == 64)
		{
			/* the row's 64 values in registers, two entries at a time */
			const Slab8 gs = slab8_load(gr);

			for (; q + 2 <= q1; q += 2)
			{
				const float *h = x + (Size) t->col[q] * bs,
						   *k = x + (Size) t->col[q + 1] * bs;
				__m256		s0 = _mm256_mul_ps(gs.v[0], _mm256_loadu_ps(h)),
							s1 = _mm256_mul_ps(gs.v[1], _mm256_loadu_ps(h + 8)),
							u0 = _mm256_mul_ps(gs.v[0], _mm256_loadu_ps(k)),
							u1 = _mm256_mul_ps(gs.v[1], _mm256_loadu_ps(k + 8));

				s0 = _mm256_fmadd_ps(gs.v[2], _mm256_loadu_ps(h + 16), s0);
				s1 = _mm256_fmadd_ps(gs.v[3], _mm256_loadu_ps(h + 24), s1);
				u0 = _mm256_fmadd_ps(gs.v[2], _mm256_loadu_ps(k + 16), u0);
				u1 = _mm256_fmadd_ps(gs.v[3], _mm256_loadu_ps(k + 24), u1);
				s0 = _mm256_fmadd_ps(gs.v[4], _mm256_loadu_ps(h + 32), s0);
				s1 = _mm256_fmadd_ps(gs.v[5], _mm256_loadu_ps(h + 40), s1);
				u0 = _mm256_fmadd_ps(gs.v[4], _mm256_loadu_ps(k + 32), u0);
				u1 = _mm256_fmadd_ps(gs.v[5], _mm256_loadu_ps(k + 40), u1);
				s0 = _mm256_fmadd_ps(gs.v[6], _mm256_loadu_ps(h + 48), s0);
				s1 = _mm256_fmadd_ps(gs.v[7], _mm256_loadu_ps(h + 56), s1);
				u0 = _mm256_fmadd_ps(gs.v[6], _mm256_loadu_ps(k + 48), u0);
				u1 = _mm256_fmadd_ps(gs.v[7], _mm256_loadu_ps(k + 56), u1);
				gp[q - base] = hsum8(_mm256_add_ps(s0, s1));
				gp[q + 1 - base] = hsum8(_mm256_add_ps(u0, u1));
			}
		}
		/* the rest (any batch width): the same sums, g read from memory */
		for (; q < q1; q++)
		{
			const float *h = x + (Size) t->col[q] * bs;
			__m256		s0 = _mm256_setzero_ps(),
						s1 = s0;

			for (int b = 0; b < bs; b += 16)
			{
				s0 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + b), _mm256_loadu_ps(h + b), s0);
				s1 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + b + 8), _mm256_loadu_ps(h + b + 8), s1);
			}
			gp[q - base] = hsum8(_mm256_add_ps(s0, s1));
		}
	}
}

/* --- AVX-512F, a batch of exactly 64 ------------------------------------------- */

/* 64 consecutive floats in four registers */
typedef struct Slab4
{
	__m512		v[4];
} Slab4;

DSL_TARGET("avx512f")
static inline Slab4
slab4_load(const float *p)
{
	Slab4		s;

	for (int k = 0; k < 4; k++)
		s.v[k] = _mm512_loadu_ps(p + 16 * k);
	return s;
}

DSL_TARGET("avx512f")
static void
mul_avx512(const SparseTensor *t, int64 r0, int n, const float *x, float *out)
{
	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		float	   *o = out + (Size) r * 64;
		__m512		a0 = _mm512_setzero_ps(),
					a1 = a0, a2 = a0, a3 = a0,
					b0 = a0, b1 = a0, b2 = a0, b3 = a0,
					c0 = a0, c1 = a0, c2 = a0, c3 = a0,
					d0 = a0, d1 = a0, d2 = a0, d3 = a0;
		int64		q = q0;

		for (; q + 4 <= q1; q += 4)
		{
			const float *h = x + (Size) t->col[q] * 64,
					   *i = x + (Size) t->col[q + 1] * 64,
					   *j = x + (Size) t->col[q + 2] * 64,
					   *k = x + (Size) t->col[q + 3] * 64;
			const __m512 wh = _mm512_set1_ps(t->w[q]),
						wi = _mm512_set1_ps(t->w[q + 1]),
						wj = _mm512_set1_ps(t->w[q + 2]),
						wk = _mm512_set1_ps(t->w[q + 3]);

			a0 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h), a0);
			a1 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 16), a1);
			a2 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 32), a2);
			a3 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 48), a3);
			b0 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(i), b0);
			b1 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(i + 16), b1);
			b2 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(i + 32), b2);
			b3 = _mm512_fmadd_ps(wi, _mm512_loadu_ps(i + 48), b3);
			c0 = _mm512_fmadd_ps(wj, _mm512_loadu_ps(j), c0);
			c1 = _mm512_fmadd_ps(wj, _mm512_loadu_ps(j + 16), c1);
			c2 = _mm512_fmadd_ps(wj, _mm512_loadu_ps(j + 32), c2);
			c3 = _mm512_fmadd_ps(wj, _mm512_loadu_ps(j + 48), c3);
			d0 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(k), d0);
			d1 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(k + 16), d1);
			d2 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(k + 32), d2);
			d3 = _mm512_fmadd_ps(wk, _mm512_loadu_ps(k + 48), d3);
		}
		for (; q < q1; q++)
		{
			const float *h = x + (Size) t->col[q] * 64;
			const __m512 wh = _mm512_set1_ps(t->w[q]);

			a0 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h), a0);
			a1 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 16), a1);
			a2 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 32), a2);
			a3 = _mm512_fmadd_ps(wh, _mm512_loadu_ps(h + 48), a3);
		}
		_mm512_storeu_ps(o, _mm512_add_ps(_mm512_add_ps(a0, b0), _mm512_add_ps(c0, d0)));
		_mm512_storeu_ps(o + 16, _mm512_add_ps(_mm512_add_ps(a1, b1), _mm512_add_ps(c1, d1)));
		_mm512_storeu_ps(o + 32, _mm512_add_ps(_mm512_add_ps(a2, b2), _mm512_add_ps(c2, d2)));
		_mm512_storeu_ps(o + 48, _mm512_add_ps(_mm512_add_ps(a3, b3), _mm512_add_ps(c3, d3)));
	}
}

DSL_TARGET("avx512f")
static void
mul_t_avx512(const SparseTensor *t, int64 r0, int n, const float *g, float *dx)
{
	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		const float *gr = g + (Size) r * 64;
		const Slab4 gs = slab4_load(gr);

		for (int64 q = q0; q < q1; q++)
		{
			float	   *d = dx + (Size) t->col[q] * 64;
			const __m512 w = _mm512_set1_ps(t->w[q]);

			for (int k = 0; k < 4; k++)
				_mm512_storeu_ps(d + 16 * k, _mm512_fmadd_ps(w, gs.v[k], _mm512_loadu_ps(d + 16 * k)));
		}
	}
}

DSL_TARGET("avx512f")
static void
grad_avx512(const SparseTensor *t, int64 r0, int n, const float *g, const float *x, float *gp)
{
	const int64 base = t->row_ptr[r0];

	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		const float *gr = g + (Size) r * 64;
		const Slab4 gs = slab4_load(gr);

		for (int64 q = q0; q < q1; q++)
		{
			const float *h = x + (Size) t->col[q] * 64;
			__m512		s0 = _mm512_mul_ps(gs.v[0], _mm512_loadu_ps(h)),
						s1 = _mm512_mul_ps(gs.v[1], _mm512_loadu_ps(h + 16));

			s0 = _mm512_fmadd_ps(gs.v[2], _mm512_loadu_ps(h + 32), s0);
			s1 = _mm512_fmadd_ps(gs.v[3], _mm512_loadu_ps(h + 48), s1);
			gp[q - base] = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
		}
	}
}
#endif

/* --- dispatch ------------------------------------------------------------------ */

static int	best_level = -1;	/* the CPU's: SB_PLAIN, SB_AVX2 or SB_AVX512 */
static int	level;				/* the one in use */

void
sparse_block_prepare(void)
{
	if (best_level >= 0)
		return;
	best_level = SB_PLAIN;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
		best_level = DSL_CPU_HAS("avx512f") ? SB_AVX512 : SB_AVX2;
#endif
	level = best_level;
}

bool
sparse_block_force(int lvl)
{
	sparse_block_prepare();
	if (lvl < SB_PLAIN || lvl > best_level)
		return false;
	level = lvl;
	return true;
}

void
sparse_block_mul(const SparseTensor *t, int64 r0, int n, const float *x, int bs, float *out)
{
	Assert(best_level >= 0 && bs % 16 == 0);
#ifdef DSL_X86_DISPATCH
	if (level == SB_AVX512 && bs == 64)
		mul_avx512(t, r0, n, x, out);
	else if (level >= SB_AVX2)
		mul_avx2(t, r0, n, x, bs, out);
	else
#endif
		mul_default(t, r0, n, x, bs, out);
}

void
sparse_block_mul_t(const SparseTensor *t, int64 r0, int n, const float *g, int bs, float *dx)
{
	Assert(best_level >= 0 && bs % 16 == 0);
#ifdef DSL_X86_DISPATCH
	if (level == SB_AVX512 && bs == 64)
		mul_t_avx512(t, r0, n, g, dx);
	else if (level >= SB_AVX2)
		mul_t_avx2(t, r0, n, g, bs, dx);
	else
#endif
		mul_t_default(t, r0, n, g, bs, dx);
}

void
sparse_block_grad(const SparseTensor *t, int64 r0, int n, const float *g, const float *x,
				  int bs, float *gp)
{
	Assert(best_level >= 0 && bs % 16 == 0);
#ifdef DSL_X86_DISPATCH
	if (level == SB_AVX512 && bs == 64)
		grad_avx512(t, r0, n, g, x, gp);
	else if (level >= SB_AVX2)
		grad_avx2(t, r0, n, g, x, bs, gp);
	else
#endif
		grad_default(t, r0, n, g, x, bs, gp);
}
