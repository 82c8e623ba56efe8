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

#endif							/* DSL_X86_DISPATCH */

/* --- dispatch ------------------------------------------------------------------ */

typedef void (*GemmFn) (int, int, int, const float *, Size, Size,
						const float *, Size, float *, Size, bool);

static GemmFn gemm_fn;
static GemmFn gemm_cpu;			/* the CPU's choice, kept while forced */

void
dense_block_prepare(void)
{
	if (gemm_fn)
		return;
	gemm_cpu = gemm_blas;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx512f"))
		gemm_cpu = gemm_avx512;
#endif
	gemm_fn = gemm_cpu;
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
