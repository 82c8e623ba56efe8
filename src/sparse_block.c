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

		for (int b0 = 0; b0 < bs; b0 += 16)
		{
			__m256		g0 = _mm256_loadu_ps(gr + b0),
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

DSL_TARGET("avx2,fma")
static void
grad_avx2(const SparseTensor *t, int64 r0, int n, const float *g, const float *x,
		  int bs, float *gp)
{
	int64		base = t->row_ptr[r0];

	for (int r = 0; r < n; r++)
	{
		const int64 q0 = t->row_ptr[r0 + r],
					q1 = t->row_ptr[r0 + r + 1];
		const float *gr = g + (Size) r * bs;

		for (int64 q = q0; q < q1; q++)
		{
			const float *h = x + (Size) t->col[q] * bs;
			__m256		s0 = _mm256_setzero_ps(),
						s1 = s0;
			__m128		s4;

			for (int b = 0; b < bs; b += 16)
			{
				s0 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + b), _mm256_loadu_ps(h + b), s0);
				s1 = _mm256_fmadd_ps(_mm256_loadu_ps(gr + b + 8), _mm256_loadu_ps(h + b + 8), s1);
			}
			s0 = _mm256_add_ps(s0, s1);
			s4 = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
			s4 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
			s4 = _mm_add_ss(s4, _mm_movehdup_ps(s4));
			gp[q - base] = _mm_cvtss_f32(s4);
		}
	}
}
#endif

/* --- dispatch ------------------------------------------------------------------ */

static void (*mul_fn) (const SparseTensor *, int64, int, const float *, int, float *);
static void (*mul_t_fn) (const SparseTensor *, int64, int, const float *, int, float *);
static void (*grad_fn) (const SparseTensor *, int64, int, const float *, const float *,
						int, float *);

void
sparse_block_prepare(void)
{
	if (mul_fn)
		return;
	mul_t_fn = mul_t_default;
	grad_fn = grad_default;
	mul_fn = mul_default;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
	{
		mul_t_fn = mul_t_avx2;
		grad_fn = grad_avx2;
		mul_fn = mul_avx2;
	}
#endif
}

void
sparse_block_mul(const SparseTensor *t, int64 r0, int n, const float *x, int bs, float *out)
{
	Assert(mul_fn && bs % 16 == 0);
	mul_fn(t, r0, n, x, bs, out);
}

void
sparse_block_mul_t(const SparseTensor *t, int64 r0, int n, const float *g, int bs, float *dx)
{
	Assert(mul_t_fn && bs % 16 == 0);
	mul_t_fn(t, r0, n, g, bs, dx);
}

void
sparse_block_grad(const SparseTensor *t, int64 r0, int n, const float *g, const float *x,
				  int bs, float *gp)
{
	Assert(grad_fn && bs % 16 == 0);
	grad_fn(t, r0, n, g, x, bs, gp);
}
