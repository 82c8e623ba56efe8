/*
 * serve_q8.c - an int8 copy of a served table (see serve_q8.h)
 */
#include "postgres.h"

#include <math.h>

#include "cpu.h"
#include "dsl_rec.h"
#include "serve_q8.h"
#include "serve_rows.h"
#include "topk.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

/* bytes per row are padded to this (one AVX2 register of int8) */
#define Q8_PAD 32

/*
 * Below this many bytes of float32 rows a scan reads from a core's share of
 * the cache anyway, and the copy would not pay for its bounds.
 */
#define Q8_MIN_FLOAT_BYTES (4.0 * 1024 * 1024)

static int
q8_width(int dim)
{
	return (dim + Q8_PAD - 1) / Q8_PAD * Q8_PAD;
}

bool
serve_q8_wanted(int n_rows, int dim, double form_bytes)
{
	double		row_bytes;

	if (n_rows <= 0 || dim <= 0)
		return false;
	if (dsl_serving_prescore == DSL_PRESCORE_ON)
		return true;
	if (dsl_serving_prescore == DSL_PRESCORE_OFF)
		return false;
	row_bytes = (double) q8_width(dim) + 3 * sizeof(float);
	return (double) n_rows * dim * sizeof(float) >= Q8_MIN_FLOAT_BYTES &&
		row_bytes * n_rows <= form_bytes / 2;
}

Size
serve_q8_bytes(int n_rows, int dim)
{
	return MAXALIGN((Size) n_rows * q8_width(dim)) +
		3 * MAXALIGN(sizeof(float) * (Size) n_rows);
}

/* the arrays at src (serve_q8_build() places them there too) */
Size
serve_q8_attach(RowsQ8 *q, int n_rows, int dim, const char *src)
{
	const char *start = src;

	q->n_rows = n_rows;
	q->dim = dim;
	q->width = q8_width(dim);
	q->q = (const int8 *) src;
	src += MAXALIGN((Size) n_rows * q->width);
	q->scale = (const float *) src;
	src += MAXALIGN(sizeof(float) * (Size) n_rows);
	q->qnorm = (const float *) src;
	src += MAXALIGN(sizeof(float) * (Size) n_rows);
	q->err = (const float *) src;
	src += MAXALIGN(sizeof(float) * (Size) n_rows);
	return src - start;
}

/* a float at least v (v >= 0, computed in double) */
static float
float_up(double v)
{
	float		f = (float) (v * (1.0 + 1e-6));

	return (double) f >= v ? f : nextafterf(f, INFINITY);
}

void
serve_q8_build(RowsQ8 *q, int n_rows, int dim,
			   void (*get) (const void *arg, int i, float *buf),
			   const void *arg, char *dst)
{
	float	   *buf = palloc(sizeof(float) * dim);
	int8	   *qw;
	float	   *scale,
			   *qnorm,
			   *err;

	serve_q8_attach(q, n_rows, dim, dst);
	qw = (int8 *) q->q;
	scale = (float *) q->scale;
	qnorm = (float *) q->qnorm;
	err = (float *) q->err;
	for (int i = 0; i < n_rows; i++)
	{
		int8	   *row = qw + (Size) i * q->width;
		float		mx = 0.0f;
		double		e2 = 0.0,
					n2 = 0.0,
					w2 = 0.0;

		get(arg, i, buf);
		for (int c = 0; c < dim; c++)
			w2 += (double) buf[c] * buf[c];
		/* four running maxima: one would be a chain of dependent compares */
		{
			float		m4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
			int			c = 0;

			for (; c + 4 <= dim; c += 4)
				for (int t = 0; t < 4; t++)
					m4[t] = Max(m4[t], fabsf(buf[c + t]));
			for (; c < dim; c++)
				m4[0] = Max(m4[0], fabsf(buf[c]));
			mx = Max(Max(m4[0], m4[1]), Max(m4[2], m4[3]));
		}
		scale[i] = mx / 127.0f;
		memset(row, 0, q->width);
		if (scale[i] > 0.0f)
		{
			/*
			 * Any rounding of buf / scale would do (the bounds below are
			 * those of the values stored): one reciprocal, not a division
			 * per coordinate, and rounding half away from zero by a
			 * truncating conversion, which baseline x86-64 has in an
			 * instruction (rintf is a call there).
			 */
			float		inv = 1.0f / scale[i];
			double		sc = scale[i];

			for (int c = 0; c < dim; c++)
			{
				float		x = buf[c] * inv;
				int			r = (int) (x >= 0.0f ? x + 0.5f : x - 0.5f);
				double		v,
							d;

				row[c] = (int8) Max(-127, Min(127, r));
				v = sc * row[c];
				d = (double) buf[c] - v;
				e2 += d * d;
				n2 += v * v;
			}
		}
		else
			for (int c = 0; c < dim; c++)
				e2 += (double) buf[c] * buf[c];
		qnorm[i] = float_up(sqrt(n2));
		/* |w - s q| and the row's share of topk_dot_bound(), per unit |x| */
		err[i] = float_up(sqrt(e2) + topk_dot_bound(dim, 1.0, sqrt(w2) * (1.0 + 1e-6)));
	}
	pfree(buf);
}

/* --- the integer dot products of every row with xq ---------------------------- */

static void
dots_default(const RowsQ8 *q, const int8 *xq, int i0, int i1, int32 *out)
{
	for (int i = i0; i < i1; i++)
	{
		const int8 *row = q->q + (Size) i * q->width;
		int32		s = 0;

		for (int c = 0; c < q->width; c++)
			s += (int32) xq[c] * row[c];
		out[i - i0] = s;
	}
}

#ifdef DSL_X86_DISPATCH
/*
 * maddubs multiplies unsigned by signed bytes: |xq| by q with xq's sign, so
 * pairs sum to at most 2 * 127 * 127 < 2^15 (no saturation), then madd
 * widens them to int32.
 */
DSL_TARGET("avx2")
static void
dots_avx2(const RowsQ8 *q, const int8 *xq, int i0, int i1, int32 *out)
{
	const __m256i ones = _mm256_set1_epi16(1);

	for (int i = i0; i < i1; i++)
	{
		const int8 *row = q->q + (Size) i * q->width;
		__m256i		acc = _mm256_setzero_si256();
		__m128i		s;

		for (int c = 0; c < q->width; c += Q8_PAD)
		{
			__m256i		w = _mm256_loadu_si256((const __m256i *) (row + c));
			__m256i		x = _mm256_loadu_si256((const __m256i *) (xq + c));
			__m256i		p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x),
												 _mm256_sign_epi8(w, x));

			acc = _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
		}
		s = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
		s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
		out[i - i0] = _mm_cvtsi128_si32(s);
	}
}
#endif

/* rows of a block of the scan: their bounds stay in L1 */
#define Q8_BLOCK 1024

/*
 * x . w = sx s (xq . q) within dx |s q| + |x| (|w - s q| + the canonical
 * score's own rounding) (serve_q8.h), all kept per row: rows i0..i0+n-1's
 * intervals from their integer products dot[].  These few float operations
 * err by less than 2^-21 (|a| + b), and 2^-20 (|a| + b) more covers it.
 */
static inline void
bounds_row(const RowsQ8 *q, float sx, float dx, float xn, int i, int32 dot,
		   float *lo, float *hi)
{
	float		a = sx * q->scale[i] * (float) dot;
	float		b = dx * q->qnorm[i] + xn * q->err[i] + 1e-30f;

	b += 0x1p-20f * (fabsf(a) + b);
	*lo = a - b;
	*hi = a + b;
}

static void
bounds_default(const RowsQ8 *q, float sx, float dx, float xn, int i0, int n,
			   const int32 *dot, float *lo, float *hi)
{
	for (int j = 0; j < n; j++)
		bounds_row(q, sx, dx, xn, i0 + j, dot[j], lo + j, hi + j);
}

#ifdef DSL_X86_DISPATCH
/* the same, 8 rows at a time (the operations and their order as above) */
DSL_TARGET("avx2")
static void
bounds_avx2(const RowsQ8 *q, float sx, float dx, float xn, int i0, int n,
			const int32 *dot, float *lo, float *hi)
{
	const __m256 vsx = _mm256_set1_ps(sx),
				vdx = _mm256_set1_ps(dx),
				vxn = _mm256_set1_ps(xn),
				tiny = _mm256_set1_ps(1e-30f),
				margin = _mm256_set1_ps(0x1p-20f),
				abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
	int			j = 0;

	for (; j + 8 <= n; j += 8)
	{
		__m256		a = _mm256_mul_ps(_mm256_mul_ps(vsx, _mm256_loadu_ps(q->scale + i0 + j)),
									  _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *) (dot + j))));
		__m256		b = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(vdx, _mm256_loadu_ps(q->qnorm + i0 + j)),
													_mm256_mul_ps(vxn, _mm256_loadu_ps(q->err + i0 + j))),
									  tiny);

		b = _mm256_add_ps(b, _mm256_mul_ps(margin, _mm256_add_ps(_mm256_and_ps(a, abs_mask), b)));
		_mm256_storeu_ps(lo + j, _mm256_sub_ps(a, b));
		_mm256_storeu_ps(hi + j, _mm256_add_ps(a, b));
	}
	for (; j < n; j++)
		bounds_row(q, sx, dx, xn, i0 + j, dot[j], lo + j, hi + j);
}
#endif

void
serve_q8_rank(const RowsQ8 *q, const float *x, double x_norm, const int32 *skip,
			  TopK *h, float (*exact) (void *arg, int32 i), void *arg)
{
	int8	   *xq = palloc0(q->width);
	int32		dot[Q8_BLOCK];
	float		lo[Q8_BLOCK],
				hi[Q8_BLOCK];
	float		mx = 0.0f,
				sx,
				dx,
				xn;
	double		dx2 = 0.0;
	bool		wide = false;
	TopKNear	t;

	/* x ~ sx xq, and |x - sx xq| */
	for (int c = 0; c < q->dim; c++)
		mx = Max(mx, fabsf(x[c]));
	sx = mx / 127.0f;
	for (int c = 0; c < q->dim; c++)
	{
		double		v = 0.0,
					d;

		if (sx > 0.0f)
		{
			double		r = rint((double) x[c] / sx);

			xq[c] = (int8) Max(-127.0, Min(127.0, r));
			v = (double) sx * xq[c];
		}
		d = (double) x[c] - v;
		dx2 += d * d;
	}
	dx = float_up(sqrt(dx2));
	xn = float_up(x_norm);

#ifdef DSL_X86_DISPATCH
	wide = serve_rows_kernel(q->dim) != DSL_KERNEL_SCALAR;
#endif
	topk_near_init(&t, h->k, q->n_rows, false);
	topk_near_reset(&t, 0.0);
	for (int i0 = 0; i0 < q->n_rows; i0 += Q8_BLOCK)
	{
		int			i1 = Min(i0 + Q8_BLOCK, q->n_rows);

#ifdef DSL_X86_DISPATCH
		if (wide)
		{
			dots_avx2(q, xq, i0, i1, dot);
			bounds_avx2(q, sx, dx, xn, i0, i1 - i0, dot, lo, hi);
		}
		else
#endif
		{
			dots_default(q, xq, i0, i1, dot);
			bounds_default(q, sx, dx, xn, i0, i1 - i0, dot, lo, hi);
		}
		for (; *skip < i1; skip++)
			lo[*skip - i0] = hi[*skip - i0] = NAN;
		topk_near_scan_interval(&t, lo, hi, i1 - i0, i0);
	}
	topk_near_offer_exact(&t, exact, arg, h);
	topk_near_free(&t);
	pfree(xq);
}
