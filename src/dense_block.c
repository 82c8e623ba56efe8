/*
 * dense_block.c - the small dense products of MultVAE's output layer
 * (see dense_block.h)
 */
#include "postgres.h"

#include <cblas.h>

#include "cpu.h"
#include "dense_block.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

/* rows of c per tile; 4 vectors of 16 floats are its 64 columns */
#define TILE_ROWS 6
#define TILE_COLS 64

/* --- BLAS --------------------------------------------------------------------- */

static void
gemm_blas(int m, int n, int k, const float *a, Size a_rs, Size a_ks,
		  const float *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	bool		ta = a_ks != 1;

	Assert(a_ks == 1 || a_rs == 1);
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, CblasNoTrans,
				m, n, k, 1.0f, a, (int) (ta ? a_ks : a_rs), b, (int) ldb,
				accumulate ? 1.0f : 0.0f, c, (int) ldc);
}

/* --- AVX-512F ------------------------------------------------------------------ */

#ifdef DSL_X86_DISPATCH

/* the full tile: TILE_ROWS x TILE_COLS of c, held in 24 registers */
DSL_TARGET("avx512f")
static void
tile_full(int k, const float *a, Size a_rs, Size a_ks, const float *b, Size ldb,
		  float *c, Size ldc, bool accumulate)
{
	__m512		acc[TILE_ROWS][4];

	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
			acc[r][q] = _mm512_setzero_ps();
	for (int p = 0; p < k; p++)
	{
		const float *bp = b + (Size) p * ldb;
		const float *ap = a + (Size) p * a_ks;
		__m512		b0 = _mm512_loadu_ps(bp),
					b1 = _mm512_loadu_ps(bp + 16),
					b2 = _mm512_loadu_ps(bp + 32),
					b3 = _mm512_loadu_ps(bp + 48);

		for (int r = 0; r < TILE_ROWS; r++)
		{
			__m512		x = _mm512_set1_ps(ap[r * a_rs]);

			acc[r][0] = _mm512_fmadd_ps(x, b0, acc[r][0]);
			acc[r][1] = _mm512_fmadd_ps(x, b1, acc[r][1]);
			acc[r][2] = _mm512_fmadd_ps(x, b2, acc[r][2]);
			acc[r][3] = _mm512_fmadd_ps(x, b3, acc[r][3]);
		}
	}
	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
		{
			float	   *cp = c + (Size) r * ldc + 16 * q;
			__m512		v = acc[r][q];

			if (accumulate)
				v = _mm512_add_ps(v, _mm512_loadu_ps(cp));
			_mm512_storeu_ps(cp, v);
		}
}

/*
 * An edge tile: rows < TILE_ROWS, cols < TILE_COLS (masked loads and
 * stores), summed in the same order as a full one.  Kept apart from
 * tile_full on purpose: there every bound is a constant, which is what lets
 * the compiler keep its 24 accumulators in registers.
 */
DSL_TARGET("avx512f")
static void
tile_edge(int rows, int cols, int k, const float *a, Size a_rs, Size a_ks,
		  const float *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	__m512		acc[TILE_ROWS][4];
	__mmask16	mask[4];

	for (int q = 0; q < 4; q++)
	{
		int			left = cols - 16 * q;

		mask[q] = left >= 16 ? (__mmask16) 0xFFFF :
			left <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << left) - 1);
	}
	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
			acc[r][q] = _mm512_setzero_ps();
	for (int p = 0; p < k; p++)
	{
		const float *bp = b + (Size) p * ldb;
		const float *ap = a + (Size) p * a_ks;
		__m512		bv[4];

		for (int q = 0; q < 4; q++)
			bv[q] = _mm512_maskz_loadu_ps(mask[q], bp + 16 * q);
		for (int r = 0; r < rows; r++)
		{
			__m512		x = _mm512_set1_ps(ap[r * a_rs]);

			for (int q = 0; q < 4; q++)
				acc[r][q] = _mm512_fmadd_ps(x, bv[q], acc[r][q]);
		}
	}
	for (int r = 0; r < rows; r++)
		for (int q = 0; q < 4; q++)
		{
			float	   *cp = c + (Size) r * ldc + 16 * q;
			__m512		v = acc[r][q];

			if (mask[q] == 0)
				continue;
			if (accumulate)
				v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[q], cp));
			_mm512_mask_storeu_ps(cp, mask[q], v);
		}
}

static void
gemm_avx512(int m, int n, int k, const float *a, Size a_rs, Size a_ks,
			const float *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	for (int j = 0; j < n; j += TILE_COLS)
	{
		int			cols = Min(TILE_COLS, n - j);

		for (int i = 0; i < m; i += TILE_ROWS)
		{
			int			rows = Min(TILE_ROWS, m - i);
			const float *ai = a + (Size) i * a_rs;
			float	   *ci = c + (Size) i * ldc + j;

			if (rows == TILE_ROWS && cols == TILE_COLS)
				tile_full(k, ai, a_rs, a_ks, b + j, ldb, ci, ldc, accumulate);
			else
				tile_edge(rows, cols, k, ai, a_rs, a_ks, b + j, ldb, ci, ldc,
						  accumulate);
		}
	}
}

/* --- AVX512_BF16 ----------------------------------------------------------------- */

/*
 * Word-packed bfloat16 operands: a 32-bit word holds two values that are
 * adjacent in the sum, the first in its low half, so that one
 * vdpbf16ps multiplies 16 pairs and adds both products to 16 float sums.
 */

/*
 * x's first n floats as (n + 1) / 2 words, rounded to nearest even (an odd
 * n's last word has a zero high half: the masked load reads zeros there)
 */
DSL_TARGET("avx512f,avx512bf16")
static inline void
pack_run(const float *x, int n, uint32 *out)
{
	int			q = 0;

	for (; q + 32 <= n; q += 32)
	{
		__m512bh	v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + q + 16),
											_mm512_loadu_ps(x + q));

		_mm512_storeu_si512(out + q / 2, (__m512i) v);
	}
	if (q < n)
	{
		int			left = n - q;
		__mmask16	m0 = left >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << left) - 1),
					m1 = left <= 16 ? 0 : (__mmask16) ((1u << (left - 16)) - 1);
		__m512bh	v = _mm512_cvtne2ps_pbh(_mm512_maskz_loadu_ps(m1, x + q + 16),
											_mm512_maskz_loadu_ps(m0, x + q));

		_mm512_mask_storeu_epi32(out + q / 2,
								 (__mmask16) ((1u << ((left + 1) / 2)) - 1),
								 (__m512i) v);
	}
}

DSL_TARGET("avx512f,avx512bf16")
static void
pack_rows_bf16(int m, int k, const float *x, Size ldx, uint32 *out, Size ldo)
{
	for (int i = 0; i < m; i++)
		pack_run(x + (Size) i * ldx, k, out + (Size) i * ldo);
}

/*
 * Rows 2q and 2q + 1 converted together (cvtne2ps: the first row's 16
 * values, then the second's) and interleaved by one 16-bit permutation
 */
DSL_TARGET("avx512f,avx512bw,avx512bf16")
static void
pack_pairs_bf16(int k, int n, const float *x, Size ldx, uint32 *out, Size ldo)
{
	const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12,
												27, 11, 26, 10, 25, 9, 24, 8,
												23, 7, 22, 6, 21, 5, 20, 4,
												19, 3, 18, 2, 17, 1, 16, 0);

	for (int p = 0; p < k; p += 2)
	{
		const float *x0 = x + (Size) p * ldx,
				   *x1 = p + 1 < k ? x0 + ldx : NULL;
		uint32	   *o = out + (Size) (p / 2) * ldo;
		int			j = 0;

		if (x1)
			for (; j + 16 <= n; j += 16)
			{
				__m512bh	v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(x1 + j),
													_mm512_loadu_ps(x0 + j));

				_mm512_storeu_si512(o + j, _mm512_permutexvar_epi16(interleave, (__m512i) v));
			}
		for (; j < n; j += 16)
		{
			int			left = n - j;
			__mmask16	m = left >= 16 ? (__mmask16) 0xFFFF : (__mmask16) ((1u << left) - 1);
			__m512		a = _mm512_maskz_loadu_ps(m, x0 + j),
						b = x1 ? _mm512_maskz_loadu_ps(m, x1 + j) : _mm512_setzero_ps();

			_mm512_mask_storeu_epi32(o + j, m,
									 _mm512_permutexvar_epi16(interleave,
															  (__m512i) _mm512_cvtne2ps_pbh(b, a)));
		}
	}
}

/* the full tile in bfloat16 pairs: as tile_full, a pair of terms per step */
DSL_TARGET("avx512f,avx512bf16")
static void
tile_full_bf16(int kp, const uint32 *a, Size a_rs, Size a_ks, const uint32 *b,
			   Size ldb, float *c, Size ldc, bool accumulate)
{
	__m512		acc[TILE_ROWS][4];

	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
			acc[r][q] = _mm512_setzero_ps();
	for (int p = 0; p < kp; p++)
	{
		const uint32 *bp = b + (Size) p * ldb;
		const uint32 *ap = a + (Size) p * a_ks;
		__m512bh	b0 = (__m512bh) _mm512_loadu_si512(bp),
					b1 = (__m512bh) _mm512_loadu_si512(bp + 16),
					b2 = (__m512bh) _mm512_loadu_si512(bp + 32),
					b3 = (__m512bh) _mm512_loadu_si512(bp + 48);

		for (int r = 0; r < TILE_ROWS; r++)
		{
			__m512bh	x = (__m512bh) _mm512_set1_epi32((int) ap[r * a_rs]);

			acc[r][0] = _mm512_dpbf16_ps(acc[r][0], x, b0);
			acc[r][1] = _mm512_dpbf16_ps(acc[r][1], x, b1);
			acc[r][2] = _mm512_dpbf16_ps(acc[r][2], x, b2);
			acc[r][3] = _mm512_dpbf16_ps(acc[r][3], x, b3);
		}
	}
	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
		{
			float	   *cp = c + (Size) r * ldc + 16 * q;
			__m512		v = acc[r][q];

			if (accumulate)
				v = _mm512_add_ps(v, _mm512_loadu_ps(cp));
			_mm512_storeu_ps(cp, v);
		}
}

/* an edge tile in bfloat16 pairs (see tile_edge) */
DSL_TARGET("avx512f,avx512bf16")
static void
tile_edge_bf16(int rows, int cols, int kp, const uint32 *a, Size a_rs, Size a_ks,
			   const uint32 *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	__m512		acc[TILE_ROWS][4];
	__mmask16	mask[4];

	for (int q = 0; q < 4; q++)
	{
		int			left = cols - 16 * q;

		mask[q] = left >= 16 ? (__mmask16) 0xFFFF :
			left <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << left) - 1);
	}
	for (int r = 0; r < TILE_ROWS; r++)
		for (int q = 0; q < 4; q++)
			acc[r][q] = _mm512_setzero_ps();
	for (int p = 0; p < kp; p++)
	{
		const uint32 *bp = b + (Size) p * ldb;
		const uint32 *ap = a + (Size) p * a_ks;
		__m512bh	bv[4];

		for (int q = 0; q < 4; q++)
			bv[q] = (__m512bh) _mm512_maskz_loadu_epi32(mask[q], bp + 16 * q);
		for (int r = 0; r < rows; r++)
		{
			__m512bh	x = (__m512bh) _mm512_set1_epi32((int) ap[r * a_rs]);

			for (int q = 0; q < 4; q++)
				acc[r][q] = _mm512_dpbf16_ps(acc[r][q], x, bv[q]);
		}
	}
	for (int r = 0; r < rows; r++)
		for (int q = 0; q < 4; q++)
		{
			float	   *cp = c + (Size) r * ldc + 16 * q;
			__m512		v = acc[r][q];

			if (mask[q] == 0)
				continue;
			if (accumulate)
				v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask[q], cp));
			_mm512_mask_storeu_ps(cp, mask[q], v);
		}
}

static void
gemm_bf16(int m, int n, int kp, const uint32 *a, Size a_rs, Size a_ks,
		  const uint32 *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	for (int j = 0; j < n; j += TILE_COLS)
	{
		int			cols = Min(TILE_COLS, n - j);

		for (int i = 0; i < m; i += TILE_ROWS)
		{
			int			rows = Min(TILE_ROWS, m - i);
			const uint32 *ai = a + (Size) i * a_rs;
			float	   *ci = c + (Size) i * ldc + j;

			if (rows == TILE_ROWS && cols == TILE_COLS)
				tile_full_bf16(kp, ai, a_rs, a_ks, b + j, ldb, ci, ldc, accumulate);
			else
				tile_edge_bf16(rows, cols, kp, ai, a_rs, a_ks, b + j, ldb, ci, ldc,
							   accumulate);
		}
	}
}

#endif							/* DSL_X86_DISPATCH */

/* --- dispatch ------------------------------------------------------------------ */

typedef void (*GemmFn) (int, int, int, const float *, Size, Size,
						const float *, Size, float *, Size, bool);

static GemmFn gemm_fn;
static GemmFn gemm_cpu;			/* the CPU's choice, kept while forced */
static bool bf16_cpu;			/* the CPU has AVX512_BF16 */
static bool bf16_on;			/* and it is not forced off */

void
dense_block_prepare(void)
{
	if (gemm_fn)
		return;
	gemm_cpu = gemm_blas;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx512f"))
		gemm_cpu = gemm_avx512;
	bf16_cpu = DSL_CPU_HAS("avx512f") && DSL_CPU_HAS("avx512bw") &&
		DSL_CPU_HAS("avx512bf16");
#endif
	gemm_fn = gemm_cpu;
	bf16_on = bf16_cpu;
}

bool
dense_block_avx512(void)
{
	return gemm_fn != NULL && gemm_fn != gemm_blas;
}

void
dense_block_force_blas(bool on)
{
	dense_block_prepare();
	gemm_fn = on ? gemm_blas : gemm_cpu;
}

bool
dense_block_bf16(void)
{
	dense_block_prepare();
	return bf16_on;
}

void
dense_block_force_float32(bool on)
{
	dense_block_prepare();
	bf16_on = bf16_cpu && !on;
}

void
dense_block_pack_rows(int m, int k, const float *x, Size ldx, uint32 *out, Size ldo)
{
	Assert(bf16_on && ldo >= (Size) (k + 1) / 2);
#ifdef DSL_X86_DISPATCH
	pack_rows_bf16(m, k, x, ldx, out, ldo);
#endif
}

void
dense_block_pack_pairs(int k, int n, const float *x, Size ldx, uint32 *out, Size ldo)
{
	Assert(bf16_on && ldo >= (Size) n);
#ifdef DSL_X86_DISPATCH
	pack_pairs_bf16(k, n, x, ldx, out, ldo);
#endif
}

void
dense_block_gemm_bf16(int m, int n, int kp, const uint32 *a, Size a_rs, Size a_ks,
					  const uint32 *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	Assert(bf16_on);
	if (m <= 0 || n <= 0)
		return;
	if (kp <= 0)
	{
		if (!accumulate)
			for (int i = 0; i < m; i++)
				memset(c + (Size) i * ldc, 0, sizeof(float) * n);
		return;
	}
#ifdef DSL_X86_DISPATCH
	gemm_bf16(m, n, kp, a, a_rs, a_ks, b, ldb, c, ldc, accumulate);
#endif
}

void
dense_block_gemm(int m, int n, int k, const float *a, Size a_rs, Size a_ks,
				 const float *b, Size ldb, float *c, Size ldc, bool accumulate)
{
	Assert(gemm_fn != NULL);
	if (m <= 0 || n <= 0)
		return;
	if (k <= 0)
	{
		if (!accumulate)
			for (int i = 0; i < m; i++)
				memset(c + (Size) i * ldc, 0, sizeof(float) * n);
		return;
	}
	gemm_fn(m, n, k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate);
}
