/*
 * dense_block_check.c - dense_block_gemm (src/dense_block.c) against a
 * double-precision product, on the CPU's kernel and on the BLAS path, for
 * the three ways MultVAE's output layer calls it and for edge shapes (rows
 * not a multiple of the tile, columns not a multiple of 64, k of 1); and
 * the bfloat16 products where the CPU has them: the packing and the kernel
 * against a double-precision product of the operands rounded to bfloat16
 * (so only float32 summation may differ), and within bfloat16's rounding
 * of the exact product
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dense_block.h"

#undef printf

static int	failures = 0;

static float
draw(void)
{
	return (float) rand() / (float) RAND_MAX - 0.5f;
}

/* one product c (+)= a b with a given by strides; compared element-wise */
static void
check(const char *what, int m, int n, int k, bool a_trans, bool accumulate)
{
	Size		a_rs = a_trans ? 1 : (Size) k + 3,
				a_ks = a_trans ? (Size) m + 5 : 1,
				ldb = (Size) n + 2,
				ldc = (Size) n + 7;
	float	   *a = malloc(sizeof(float) * (a_trans ? a_ks * k : a_rs * m));
	float	   *b = malloc(sizeof(float) * ldb * k);
	float	   *c = malloc(sizeof(float) * ldc * m);
	float	   *c0 = malloc(sizeof(float) * ldc * m);
	double		worst = 0;

	for (Size q = 0; q < (a_trans ? a_ks * k : a_rs * m); q++)
		a[q] = draw();
	for (Size q = 0; q < ldb * k; q++)
		b[q] = draw();
	for (Size q = 0; q < ldc * m; q++)
		c0[q] = c[q] = draw();
	dense_block_gemm(m, n, k, a, a_rs, a_ks, b, ldb, c, ldc, accumulate);
	for (int i = 0; i < m; i++)
	{
		for (int j = 0; j < n; j++)
		{
			double		ref = accumulate ? c0[(Size) i * ldc + j] : 0,
						mag = fabs(ref);

			for (int p = 0; p < k; p++)
			{
				double		x = (double) a[i * a_rs + p * a_ks] * b[(Size) p * ldb + j];

				ref += x;
				mag += fabs(x);
			}
			worst = fmax(worst, fabs(c[(Size) i * ldc + j] - ref) / (mag + 1e-30));
		}
		/* the padding between rows of c is untouched */
		for (Size j = n; j < ldc && i < m - 1; j++)
			if (c[(Size) i * ldc + j] != c0[(Size) i * ldc + j])
			{
				printf("FAIL %s %dx%dx%d: wrote past column %d\n", what, m, n, k, n);
				failures++;
				break;
			}
	}
	if (worst > 1e-6)
	{
		printf("FAIL %s %dx%dx%d%s%s: relative error %g\n", what, m, n, k,
			   a_trans ? " a^T" : "", accumulate ? " +=" : "", worst);
		failures++;
	}
	free(a);
	free(b);
	free(c);
	free(c0);
}

/* f rounded to bfloat16 (nearest even), as a float */
static float
round_bf16(float f)
{
	uint32		u;

	memcpy(&u, &f, sizeof(u));
	u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16;
	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * c (+)= a b through dense_block_pack_* and dense_block_gemm_bf16: a packed
 * along its rows (a_trans false) or down the columns of its transpose, as
 * MultVAE's output layer packs W4's block both ways
 */
static void
check_bf16(int m, int n, int k, bool a_trans, bool accumulate)
{
	int			kp = (k + 1) / 2;
	Size		lda = a_trans ? (Size) m + 5 : (Size) k + 3,
				ldb = (Size) n + 2,
				ldc = (Size) n + 7,
				lda_w = a_trans ? (Size) m + 1 : (Size) kp + 2,
				ldb_w = (Size) n + 3;
	Size		na = a_trans ? lda * k : lda * m;
	float	   *a = malloc(sizeof(float) * na);
	float	   *b = malloc(sizeof(float) * ldb * k);
	float	   *c = malloc(sizeof(float) * ldc * m);
	float	   *c0 = malloc(sizeof(float) * ldc * m);
	uint32	   *aw = malloc(sizeof(uint32) * (a_trans ? lda_w * kp : lda_w * m));
	uint32	   *bw = malloc(sizeof(uint32) * ldb_w * kp);
	double		worst_rounded = 0,
				worst_exact = 0;

	for (Size q = 0; q < na; q++)
		a[q] = draw();
	for (Size q = 0; q < ldb * k; q++)
		b[q] = draw();
	for (Size q = 0; q < ldc * m; q++)
		c0[q] = c[q] = draw();
	if (a_trans)
		dense_block_pack_pairs(k, m, a, lda, aw, lda_w);
	else
		dense_block_pack_rows(m, k, a, lda, aw, lda_w);
	dense_block_pack_pairs(k, n, b, ldb, bw, ldb_w);
	dense_block_gemm_bf16(m, n, kp, aw, a_trans ? 1 : lda_w, a_trans ? lda_w : 1,
						  bw, ldb_w, c, ldc, accumulate);
	for (int i = 0; i < m; i++)
	{
		for (int j = 0; j < n; j++)
		{
			double		base = accumulate ? c0[(Size) i * ldc + j] : 0,
						rounded = base,
						exact = base,
						mag = fabs(base);

			for (int p = 0; p < k; p++)
			{
				float		x = a_trans ? a[(Size) p * lda + i] : a[(Size) i * lda + p],
							y = b[(Size) p * ldb + j];

				rounded += (double) round_bf16(x) * round_bf16(y);
				exact += (double) x * y;
				mag += fabs((double) x * y);
			}
			worst_rounded = fmax(worst_rounded,
								 fabs(c[(Size) i * ldc + j] - rounded) / (mag + 1e-30));
			worst_exact = fmax(worst_exact,
							   fabs(c[(Size) i * ldc + j] - exact) / (mag + 1e-30));
		}
		for (Size j = n; j < ldc && i < m - 1; j++)
			if (c[(Size) i * ldc + j] != c0[(Size) i * ldc + j])
			{
				printf("FAIL bf16 %dx%dx%d: wrote past column %d\n", m, n, k, n);
				failures++;
				break;
			}
	}
	/*
	 * float32 sums of the rounded operands; a rounding to bfloat16 (8
	 * significant bits) moves a value by at most 2^-8 of it, a product of
	 * two rounded values by about 2^-7
	 */
	if (worst_rounded > 1e-6 || worst_exact > 1.0 / 128)
	{
		printf("FAIL bf16 %dx%dx%d%s%s: relative error %g (rounded operands), %g (exact)\n",
			   m, n, k, a_trans ? " a^T" : "", accumulate ? " +=" : "",
			   worst_rounded, worst_exact);
		failures++;
	}
	free(a);
	free(b);
	free(c);
	free(c0);
	free(aw);
	free(bw);
}

static void
check_all(const char *what)
{
	int			rows[] = {64, 37, 6, 7, 1, 600};
	int			cols[] = {64, 16, 48, 80, 601, 1};
	int			ks[] = {601, 64, 1, 13};

	for (int x = 0; x < 6; x++)
		for (int y = 0; y < 6; y++)
			for (int z = 0; z < 4; z++)
				for (int t = 0; t < 2; t++)
					for (int acc = 0; acc < 2; acc++)
						check(what, rows[x], cols[y], ks[z], t, acc);
}

int
main(void)
{
	srand(7);
	dense_block_prepare();
	printf("dense_block: CPU kernel %s\n", dense_block_avx512() ? "AVX-512F" : "BLAS");
	check_all("cpu");
	if (dense_block_bf16())
	{
		int			rows[] = {64, 37, 6, 7, 1, 601};
		int			cols[] = {64, 16, 48, 80, 601, 1, 33};
		int			ks[] = {601, 64, 1, 13, 32, 33, 2};

		printf("dense_block: bfloat16 products (AVX512_BF16)\n");
		for (int x = 0; x < 6; x++)
			for (int y = 0; y < 7; y++)
				for (int z = 0; z < 7; z++)
					for (int t = 0; t < 2; t++)
						for (int acc = 0; acc < 2; acc++)
							check_bf16(rows[x], cols[y], ks[z], t, acc);
	}
	else
		printf("dense_block: no AVX512_BF16 on this CPU, bfloat16 products not checked\n");
	dense_block_force_float32(true);
	if (dense_block_bf16())
	{
		printf("FAIL dense_block_force_float32 left bfloat16 on\n");
		failures++;
	}
	dense_block_force_blas(true);
	check_all("blas");
	if (failures)
	{
		printf("dense_block_check: %d failures\n", failures);
		return 1;
	}
	printf("dense_block_check: ok\n");
	return 0;
}
