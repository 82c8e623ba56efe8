/*
 * dense_block_check.c - dense_block_gemm (src/dense_block.c) against a
 * double-precision product, on the CPU's kernel and on the BLAS path, for
 * the three ways MultVAE's output layer calls it and for edge shapes (rows
 * not a multiple of the tile, columns not a multiple of 64, k of 1)
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

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
