/*
 * serve_q8.c - an int8 copy of a served table (see serve_q8.h)
 */
#include "postgres.h"

#include <math.h>

#include "port/pg_bitutils.h"

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

/*
 * t (|t| <= 127 up to rounding) to the nearest int8, halves away from zero,
 * without a branch: the signs of a row's weights are random, and a branch
 * on them mispredicts every other time
 */
static inline int8
quantise(float t)
{
	float		r = t + copysignf(0.5f, t);

	r = r < -127.0f ? -127.0f : r;
	r = r > 127.0f ? 127.0f : r;
	return (int8) (int) r;
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
				double		v,
							d;

				row[c] = quantise(buf[c] * inv);
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
 * The query as x ~ sx xq (xq[0..dim-1] in [-127, 127]); *dx gets
 * |x - sx xq| and *xn |x|, both rounded up to floats.
 */
static void
quantise_query(const float *x, int dim, double x_norm, int8 *xq, float *sx, float *dx,
			   float *xn)
{
	float		mx = 0.0f;
	double		dx2 = 0.0;

	for (int c = 0; c < dim; c++)
		mx = Max(mx, fabsf(x[c]));
	*sx = mx / 127.0f;
	for (int c = 0; c < dim; c++)
	{
		double		v = 0.0,
					d;

		xq[c] = 0;
		if (*sx > 0.0f)
		{
			xq[c] = (int8) Max(-127.0, Min(127.0, rint((double) x[c] / *sx)));
			v = (double) *sx * xq[c];
		}
		d = (double) x[c] - v;
		dx2 += d * d;
	}
	*dx = float_up(sqrt(dx2));
	*xn = float_up(x_norm);
}

/*
 * x . w = sx s (xq . q) within dx |s q| + |x| (|w - s q| + the canonical
 * score's own rounding) (serve_q8.h): a row's interval from its integer
 * product dot, its scale and that bound term b.  These few float operations
 * err by less than 2^-21 (|a| + b), and 2^-20 (|a| + b) more covers it.
 */
static inline void
q8_interval(float sx, float scale, int32 dot, float b, float *lo, float *hi)
{
	float		a = sx * scale * (float) dot;

	b += 0x1p-20f * (fabsf(a) + b);
	*lo = a - b;
	*hi = a + b;
}

/* rows i0..i0+n-1's intervals, the bound's terms kept per row */
static inline void
bounds_row(const RowsQ8 *q, float sx, float dx, float xn, int i, int32 dot,
		   float *lo, float *hi)
{
	q8_interval(sx, q->scale[i], dot, dx * q->qnorm[i] + xn * q->err[i] + 1e-30f, lo, hi);
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
	float		sx,
				dx,
				xn;
	bool		wide = false;
	TopKNear	t;

	quantise_query(x, q->dim, x_norm, xq, &sx, &dx, &xn);

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
		topk_near_scan_interval(&t, lo, hi, i1 - i0, i0, NULL);
	}
	topk_near_offer_exact(&t, exact, arg, h);
	topk_near_free(&t);
	pfree(xq);
}

/* --- the int8 copy of a sparse table's slices ------------------------------------ */

#define SLICE SERVE_SLICE

/* groups of four entries of a slice's rows (the float form's width / 4) */
static int64
slice_groups(const ServeRows *r, int c)
{
	return ((r->slice[c + 1] - r->slice[c]) / SLICE + 3) / 4;
}

static Size
q8s_positions(const ServeRows *r)
{
	return (Size) serve_rows_slices(r) * SLICE;
}

static bool
q8s_vnni(void)
{
	static int	has = -1;

	if (has < 0)
		has = DSL_CPU_HAS("avx512f") && DSL_CPU_HAS("avx512bw") &&
			DSL_CPU_HAS("avx512vbmi") && DSL_CPU_HAS("avx512vnni");
	return has;
}

bool
serve_q8_slices_wanted(const ServeRows *r, double form_bytes)
{
	int64		entries = r->slice[serve_rows_slices(r)];

	if (r->n_rows <= 0 || entries <= 0 || r->dim > 64 ||
		serve_rows_col_bytes(r->dim) != 1)
		return false;
	if (dsl_serving_prescore == DSL_PRESCORE_ON)
		return true;
	if (dsl_serving_prescore == DSL_PRESCORE_OFF)
		return false;
	return q8s_vnni() && (double) entries * sizeof(float) >= Q8_MIN_FLOAT_BYTES &&
		(double) serve_q8_slices_bytes(r) <= form_bytes / 2;
}

Size
serve_q8_slices_bytes(const ServeRows *r)
{
	Size		groups = 0;

	for (int c = 0; c < serve_rows_slices(r); c++)
		groups += slice_groups(r, c);
	return MAXALIGN(sizeof(int64) * ((Size) serve_rows_slices(r) + 1)) +
		MAXALIGN(groups * 4 * SLICE) + 2 * MAXALIGN(sizeof(float) * q8s_positions(r)) +
		2 * MAXALIGN(sizeof(float) * (Size) serve_rows_slices(r));
}

Size
serve_q8_slices_attach(SlicesQ8 *q, const ServeRows *r, const char *src)
{
	const char *start = src;
	Size		per_pos = MAXALIGN(sizeof(float) * q8s_positions(r)),
				per_slice = MAXALIGN(sizeof(float) * (Size) serve_rows_slices(r));

	q->off = (const int64 *) src;
	src += MAXALIGN(sizeof(int64) * ((Size) serve_rows_slices(r) + 1));
	q->q = (const int8 *) src;
	src += MAXALIGN((Size) q->off[serve_rows_slices(r)]);
	q->scale = (const float *) src;
	q->qsum = (const int32 *) (src + per_pos);
	src += 2 * per_pos;
	q->qnorm = (const float *) src;
	q->err = (const float *) (src + per_slice);
	src += 2 * per_slice;
	return src - start;
}

/*
 * One slice's int8 copy: its rows' scales, then the entries quantised in
 * groups of four per row (qw: byte l * 4 + t of group g is entry 4 g + t of
 * row l, zero past the slice's width), and the bound's terms; qw, scale,
 * qsum, qnorm and err point at the slice's own.
 */
typedef void (*SliceBuildFn) (const ServeRows *r, int c, int8 *qw, float *scale,
							  int32 *qsum, float *qnorm, float *err);

/* the bound's terms of a slice from its rows' sums */
static void
slice_terms(const ServeRows *r, const double *e2, const double *n2, const double *w2,
			const int32 *sum, int32 *qsum, float *qnorm, float *err)
{
	*qnorm = 0.0f;
	*err = 0.0f;
	for (int l = 0; l < SLICE; l++)
	{
		*qnorm = Max(*qnorm, float_up(sqrt(n2[l])));
		*err = Max(*err, float_up(sqrt(e2[l]) +
								  topk_dot_bound(r->dim, 1.0, sqrt(w2[l]) * (1.0 + 1e-6))));
		qsum[l] = 128 * sum[l];
	}
}

static void
slices_build_default(const ServeRows *r, int c, int8 *qw, float *scale,
					 int32 *qsum, float *qnorm, float *err)
{
	const float *val = r->val + r->slice[c];
	int64		w = (r->slice[c + 1] - r->slice[c]) / SLICE;
	float		mx[SLICE] = {0};
	double		e2[SLICE] = {0},
				n2[SLICE] = {0},
				w2[SLICE] = {0};
	int32		sum[SLICE] = {0};
	float		inv[SLICE];

	/* entry j of lane l: val[j * SLICE + l] */
	for (int64 j = 0; j < w; j++)
		for (int l = 0; l < SLICE; l++)
			mx[l] = Max(mx[l], fabsf(val[j * SLICE + l]));
	for (int l = 0; l < SLICE; l++)
	{
		scale[l] = mx[l] / 127.0f;
		inv[l] = mx[l] > 0.0f ? 1.0f / scale[l] : 0.0f;
	}
	memset(qw, 0, (w + 3) / 4 * 4 * SLICE);
	for (int64 j = 0; j < w; j++)
	{
		for (int l = 0; l < SLICE; l++)
		{
			float		v = val[j * SLICE + l];
			int8		qv = quantise(v * inv[l]);
			double		sq = (double) scale[l] * qv,
						d = (double) v - sq;

			/* any rounding does: the bounds are those of the values kept */
			qw[(j / 4) * 4 * SLICE + l * 4 + j % 4] = qv;
			sum[l] += qv;
			e2[l] += d * d;
			n2[l] += sq * sq;
			w2[l] += (double) v * v;
		}
	}
	slice_terms(r, e2, n2, w2, sum, qsum, qnorm, err);
}

#ifdef DSL_X86_DISPATCH
/* floats 8..15 of a register (AVX-512F has no 32x8 extract) */
DSL_TARGET("avx512f")
static inline __m256
high_half(__m512 v)
{
	return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
}

/*
 * The same with AVX-512 (a slice's 16 rows are one register of floats, two
 * of doubles): the same operations lane by lane, and a group's four
 * entries of each row put side by side by byte unpacks.  Used where the
 * slices' scan runs its AVX-512 kernel (q8s_vnni()); the bytes it writes
 * are those of the plain C build.
 */
DSL_TARGET("avx512f,avx512bw")
static void
slices_build_avx512(const ServeRows *r, int c, int8 *qw, float *scale,
					int32 *qsum, float *qnorm, float *err)
{
	const float *val = r->val + r->slice[c];
	int64		w = (r->slice[c + 1] - r->slice[c]) / SLICE;
	const __m512i signmask = _mm512_set1_epi32((int) 0x80000000);
	const __m512 half = _mm512_set1_ps(0.5f),
				lim = _mm512_set1_ps(127.0f);
	__m512		mx = _mm512_setzero_ps(),
				sc,
				inv;
	__m512d		e2lo = _mm512_setzero_pd(),
				e2hi = _mm512_setzero_pd(),
				n2lo = _mm512_setzero_pd(),
				n2hi = _mm512_setzero_pd(),
				w2lo = _mm512_setzero_pd(),
				w2hi = _mm512_setzero_pd(),
				sclo,
				schi;
	__m512i		sum = _mm512_setzero_si512();
	double		e2[SLICE],
				n2[SLICE],
				w2[SLICE];
	int32		sumv[SLICE];

	for (int64 j = 0; j < w; j++)
		mx = _mm512_max_ps(mx, _mm512_abs_ps(_mm512_loadu_ps(val + j * SLICE)));
	sc = _mm512_div_ps(mx, lim);
	/* 1 / scale where the scale is positive, else 0 */
	inv = _mm512_maskz_div_ps(_mm512_cmp_ps_mask(mx, _mm512_setzero_ps(), _CMP_GT_OQ),
							  _mm512_set1_ps(1.0f), sc);
	_mm512_storeu_ps(scale, sc);
	sclo = _mm512_cvtps_pd(_mm512_castps512_ps256(sc));
	schi = _mm512_cvtps_pd(high_half(sc));
	for (int64 g = 0; g * 4 < w; g++)
	{
		__m128i		b[4];

		for (int t = 0; t < 4; t++)
		{
			__m512		v,
						rr;
			__m512i		qi;
			__m512d		vlo,
						vhi,
						sqlo,
						sqhi,
						dlo,
						dhi;

			if (g * 4 + t >= w)
			{
				b[t] = _mm_setzero_si128();
				continue;
			}
			v = _mm512_loadu_ps(val + (g * 4 + t) * SLICE);
			/* quantise(): t + copysign(0.5, t), clamped, truncated */
			rr = _mm512_mul_ps(v, inv);
			rr = _mm512_add_ps(rr, _mm512_castsi512_ps(
														_mm512_or_si512(_mm512_castps_si512(half),
																		_mm512_and_si512(_mm512_castps_si512(rr), signmask))));
			rr = _mm512_min_ps(_mm512_max_ps(rr, _mm512_sub_ps(_mm512_setzero_ps(), lim)), lim);
			qi = _mm512_cvttps_epi32(rr);
			b[t] = _mm512_cvtepi32_epi8(qi);
			sum = _mm512_add_epi32(sum, qi);
			vlo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
			vhi = _mm512_cvtps_pd(high_half(v));
			sqlo = _mm512_mul_pd(sclo, _mm512_cvtepi32_pd(_mm512_castsi512_si256(qi)));
			sqhi = _mm512_mul_pd(schi, _mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(qi, 1)));
			dlo = _mm512_sub_pd(vlo, sqlo);
			dhi = _mm512_sub_pd(vhi, sqhi);
			e2lo = _mm512_add_pd(e2lo, _mm512_mul_pd(dlo, dlo));
			e2hi = _mm512_add_pd(e2hi, _mm512_mul_pd(dhi, dhi));
			n2lo = _mm512_add_pd(n2lo, _mm512_mul_pd(sqlo, sqlo));
			n2hi = _mm512_add_pd(n2hi, _mm512_mul_pd(sqhi, sqhi));
			w2lo = _mm512_add_pd(w2lo, _mm512_mul_pd(vlo, vlo));
			w2hi = _mm512_add_pd(w2hi, _mm512_mul_pd(vhi, vhi));
		}
		{
			/* rows' bytes of entries t = 0..3 to each row's four side by side */
			__m128i		ab0 = _mm_unpacklo_epi8(b[0], b[1]),
						ab1 = _mm_unpackhi_epi8(b[0], b[1]),
						cd0 = _mm_unpacklo_epi8(b[2], b[3]),
						cd1 = _mm_unpackhi_epi8(b[2], b[3]);
			int8	   *dst = qw + g * 4 * SLICE;

			_mm_storeu_si128((__m128i *) dst, _mm_unpacklo_epi16(ab0, cd0));
			_mm_storeu_si128((__m128i *) (dst + 16), _mm_unpackhi_epi16(ab0, cd0));
			_mm_storeu_si128((__m128i *) (dst + 32), _mm_unpacklo_epi16(ab1, cd1));
			_mm_storeu_si128((__m128i *) (dst + 48), _mm_unpackhi_epi16(ab1, cd1));
		}
	}
	_mm512_storeu_pd(e2, e2lo);
	_mm512_storeu_pd(e2 + 8, e2hi);
	_mm512_storeu_pd(n2, n2lo);
	_mm512_storeu_pd(n2 + 8, n2hi);
	_mm512_storeu_pd(w2, w2lo);
	_mm512_storeu_pd(w2 + 8, w2hi);
	_mm512_storeu_si512(sumv, sum);
	slice_terms(r, e2, n2, w2, sumv, qsum, qnorm, err);
}
#endif

void
serve_q8_slices_build(SlicesQ8 *q, const ServeRows *r, char *dst)
{
	int64	   *off = (int64 *) dst;
	int8	   *qw;
	float	   *scale,
			   *qnorm,
			   *err;
	int32	   *qsum;
	SliceBuildFn build;

	/* the offsets first: attach() finds the rest from them */
	off[0] = 0;
	for (int c = 0; c < serve_rows_slices(r); c++)
		off[c + 1] = off[c] + slice_groups(r, c) * 4 * SLICE;
	serve_q8_slices_attach(q, r, dst);
	qw = (int8 *) q->q;
	scale = (float *) q->scale;
	qnorm = (float *) q->qnorm;
	err = (float *) q->err;
	qsum = (int32 *) q->qsum;
	/* the plain C build too when the scan is chosen to be (tests) */
	build = slices_build_default;
#ifdef DSL_X86_DISPATCH
	if (serve_rows_kernel(r->dim) == DSL_KERNEL_AVX512 && q8s_vnni())
		build = slices_build_avx512;
#endif
	for (int c = 0; c < serve_rows_slices(r); c++)
		build(r, c, qw + off[c], scale + c * SLICE, qsum + c * SLICE, qnorm + c, err + c);
}

/* what a slices scan needs of its query */
typedef struct SlicesQuery
{
	uint8		xu[64];			/* xq + 128 (128 past dim, where q is 0) */
	float		sx;				/* x ~ sx xq */
	float		dx;				/* |x - sx xq|, rounded up */
	float		xn;				/* |x|, rounded up */
} SlicesQuery;

/* the bound's terms that a slice's rows share */
static inline float
slice_bterm(const SlicesQuery *x, const SlicesQ8 *q, int c)
{
	return x->dx * q->qnorm[c] + x->xn * q->err[c] + 1e-30f;
}

/*
 * The intervals of slices c0..c1-1 into lo and hi (position order from c0's
 * first): xq . q = xu . q - qsum; and per slice, in cand, the bits of its
 * rows whose hi reaches top_floor (the top-k's floor when the block began:
 * it only rises, so the rows left out could not get in).
 */
static void
slices_bounds_default(const ServeRows *r, const SlicesQuery *x, int c0, int c1,
					  float top_floor, float *lo, float *hi, uint16 *cand)
{
	const SlicesQ8 *q = &r->q8s;

	for (int c = c0; c < c1; c++)
	{
		int64		w = (r->slice[c + 1] - r->slice[c]) / SLICE;
		float		bterm = slice_bterm(x, q, c);

		for (int l = 0; l < SLICE; l++)
		{
			int32		s = 0;
			int			j = (c - c0) * SLICE + l;

			for (int64 e = 0; e < w; e++)
				s += (int32) x->xu[r->col8[r->slice[c] + e * SLICE + l]] *
					q->q[q->off[c] + (e / 4) * 4 * SLICE + l * 4 + e % 4];
			q8_interval(x->sx, q->scale[c * SLICE + l], s - q->qsum[c * SLICE + l], bterm,
						lo + j, hi + j);
		}
		cand[c - c0] = 0;
		for (int l = 0; l < SLICE; l++)
			if (hi[(c - c0) * SLICE + l] >= top_floor)
				cand[c - c0] |= (uint16) (1 << l);
	}
}

#ifdef DSL_X86_DISPATCH
/*
 * The same with AVX-512 VBMI and VNNI: a group's 64 columns (entries 4 g ..
 * 4 g + 3 of the 16 rows, as the float form stores them) are put in the
 * copy's order by one byte permute, look up their xu by another, and one
 * vpdpbusd adds each row's four products to its lane; the columns past a
 * row's width (the next slice's, or the slack after the last) meet zeros
 * in q.  The intervals follow in the same registers, with the same float
 * operations as q8_interval().
 */
DSL_TARGET("avx512f,avx512bw,avx512vbmi,avx512vnni")
static void
slices_bounds_vnni(const ServeRows *r, const SlicesQuery *x, int c0, int c1,
				   float top_floor, float *lo, float *hi, uint16 *cand)
{
	const SlicesQ8 *q = &r->q8s;
	uint8		order[64];
	__m512i		to_rows,
				xv = _mm512_loadu_si512(x->xu);
	const __m512 sx = _mm512_set1_ps(x->sx),
				margin = _mm512_set1_ps(0x1p-20f),
				fv = _mm512_set1_ps(top_floor);

	/* byte l * 4 + t of a group is entry t of row l: column byte t * 16 + l */
	for (int l = 0; l < SLICE; l++)
		for (int t = 0; t < 4; t++)
			order[l * 4 + t] = (uint8) (t * SLICE + l);
	to_rows = _mm512_loadu_si512(order);
	for (int c = c0; c < c1; c++)
	{
		__m512i		acc = _mm512_setzero_si512();
		const uint8 *col = r->col8 + r->slice[c];
		const int8 *qg = q->q + q->off[c];
		int64		groups = (q->off[c + 1] - q->off[c]) / 64;
		__m512		a,
					b;

		for (int64 g = 0; g < groups; g++)
		{
			__m512i		cols = _mm512_permutexvar_epi8(to_rows, _mm512_loadu_si512(col + g * 64));

			acc = _mm512_dpbusd_epi32(acc, _mm512_permutexvar_epi8(cols, xv),
									  _mm512_loadu_si512(qg + g * 64));
		}
		acc = _mm512_sub_epi32(acc, _mm512_loadu_si512(q->qsum + (Size) c * SLICE));
		a = _mm512_mul_ps(_mm512_mul_ps(sx, _mm512_loadu_ps(q->scale + (Size) c * SLICE)),
						  _mm512_cvtepi32_ps(acc));
		b = _mm512_set1_ps(slice_bterm(x, q, c));
		b = _mm512_add_ps(b, _mm512_mul_ps(margin, _mm512_add_ps(_mm512_abs_ps(a), b)));
		_mm512_storeu_ps(lo + (c - c0) * SLICE, _mm512_sub_ps(a, b));
		b = _mm512_add_ps(a, b);
		_mm512_storeu_ps(hi + (c - c0) * SLICE, b);
		cand[c - c0] = _mm512_cmp_ps_mask(b, fv, _CMP_GE_OQ);
	}
}
#endif

/* slices of a block of the scan: 1024 positions, within L1 */
#define Q8S_BLOCK 64

void
serve_q8_slices_rank(const ServeRows *r, const float *x, double x_norm, const int32 *skip,
					 TopK *h, float (*exact) (void *arg, int32 i), void *arg)
{
	SlicesQuery qx;
	int8		xq[64];
	float		lo[Q8S_BLOCK * SLICE],
				hi[Q8S_BLOCK * SLICE];
	uint16		cand[Q8S_BLOCK];
	bool		vnni = false;
	TopKNear	t;

	/* xu = xq + 128, and 128 past dim (where q is 0) */
	quantise_query(x, r->dim, x_norm, xq, &qx.sx, &qx.dx, &qx.xn);
	memset(qx.xu, 128, sizeof(qx.xu));
	for (int c = 0; c < r->dim; c++)
		qx.xu[c] = (uint8) (xq[c] + 128);

#ifdef DSL_X86_DISPATCH
	vnni = serve_rows_kernel(r->dim) == DSL_KERNEL_AVX512 && q8s_vnni();
#endif
	topk_near_init(&t, h->k, r->n_rows, false);
	topk_near_reset(&t, 0.0);
	for (int c0 = 0; c0 < serve_rows_slices(r); c0 += Q8S_BLOCK)
	{
		int			c1 = Min(c0 + Q8S_BLOCK, serve_rows_slices(r));
		int32		p0 = c0 * SLICE,
					n = Min(c1 * SLICE, r->n_rows) - p0;

#ifdef DSL_X86_DISPATCH
		if (vnni)
			slices_bounds_vnni(r, &qx, c0, c1, t.floor, lo, hi, cand);
		else
#endif
			slices_bounds_default(r, &qx, c0, c1, t.floor, lo, hi, cand);
		/* skipped rows and the last slice's padding are no candidates */
		for (; *skip < p0 + n; skip++)
			cand[(*skip - p0) / SLICE] &= (uint16) ~(1 << ((*skip - p0) % SLICE));
		if (n < (c1 - c0) * SLICE)
			cand[n / SLICE] &= (uint16) ((1 << (n % SLICE)) - 1);
		for (int c = 0; c < c1 - c0; c++)
			for (uint32 m = cand[c]; m != 0; m &= m - 1)
			{
				int			j = c * SLICE + pg_rightmost_one_pos32(m);

				topk_near_offer_interval(&t, lo[j], hi[j], r->row[p0 + j]);
			}
	}
	topk_near_offer_exact(&t, exact, arg, h);
	topk_near_free(&t);
}
