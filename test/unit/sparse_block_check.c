/*
 * sparse_block_check.c - the products of src/sparse_block.c against double
 * precision, on every kernel the CPU has (plain C, AVX2, AVX-512 for a batch
 * of 64): random blocks at densities from empty to full rows, blocks of 1,
 * 7 and 64 rows, batches of 16, 48, 64, 80 and 128, and the output layer's
 * width (601 columns)
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "sparse_block.h"

#undef printf

static int	failures = 0;

static float
draw(void)
{
	return (float) rand() / (float) RAND_MAX - 0.5f;
}

/* a tensor of n_rows x dim with entries kept at rate d (row 1 empty, row 2 full) */
static SparseTensor *
make_tensor(int n_rows, int dim, double d)
{
	SparseTensor *t = calloc(1, sizeof(SparseTensor));
	int64		q = 0;

	t->n_rows = n_rows;
	t->dim = dim;
	t->row_ptr = malloc(sizeof(int64) * (n_rows + 1));
	t->col = malloc(sizeof(uint16) * (Size) n_rows * dim);
	t->w = malloc(sizeof(float) * (Size) n_rows * dim);
	for (int r = 0; r < n_rows; r++)
	{
		t->row_ptr[r] = q;
		for (int c = 0; c < dim; c++)
		{
			bool		keep = r == 2 || (r != 1 && (double) rand() / RAND_MAX < d);

			if (keep)
			{
				t->col[q] = (uint16) c;
				t->w[q++] = draw();
			}
		}
	}
	t->row_ptr[n_rows] = q;
	t->budget = q;
	return t;
}

static void
report(const char *what, int level, int n, int bs, double d, double worst)
{
	/* float sums of at most 601 terms against double: relative to |terms| */
	if (worst > 1e-5)
	{
		printf("sparse_block_check: %s, level %d, rows %d, batch %d, density %.2f: "
			   "error %.3g\n", what, level, n, bs, d, worst);
		failures++;
	}
}

static void
check(int level, int n_rows, int n, int dim, int bs, double d)
{
	SparseTensor *t = make_tensor(n_rows, dim, d);
	const int64 r0 = n_rows - n;
	const int64 base = t->row_ptr[r0],
				nq = t->row_ptr[n_rows] - base;
	float	   *x = malloc(sizeof(float) * dim * bs),
			   *g = malloc(sizeof(float) * n * bs),
			   *out = malloc(sizeof(float) * n * bs),
			   *dx = malloc(sizeof(float) * dim * bs),
			   *dx0 = malloc(sizeof(float) * dim * bs),
			   *gp = malloc(sizeof(float) * (nq + 1));
	double	   *ref_t = malloc(sizeof(double) * dim * bs),
			   *mag_t = malloc(sizeof(double) * dim * bs);
	double		w_mul = 0,
				w_t = 0,
				w_g = 0;

	for (int k = 0; k < dim * bs; k++)
	{
		x[k] = draw();
		dx0[k] = dx[k] = draw();
	}
	for (int k = 0; k < n * bs; k++)
		g[k] = draw();
	/* garbage where the product must overwrite */
	for (int k = 0; k < n * bs; k++)
		out[k] = 1e30f;

	sparse_block_mul(t, r0, n, x, bs, out);
	sparse_block_mul_t(t, r0, n, g, bs, dx);
	sparse_block_grad(t, r0, n, g, x, bs, gp);

	for (int r = 0; r < n; r++)
	{
		for (int b = 0; b < bs; b++)
		{
			double		ref = 0,
						mag = 0;

			for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
			{
				double		v = (double) t->w[q] * x[(Size) t->col[q] * bs + b];

				ref += v;
				mag += fabs(v);
			}
			w_mul = fmax(w_mul, fabs(out[(Size) r * bs + b] - ref) / (mag + 1e-30));
		}
		for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
		{
			double		ref = 0,
						mag = 0;

			for (int b = 0; b < bs; b++)
			{
				double		v = (double) g[(Size) r * bs + b] * x[(Size) t->col[q] * bs + b];

				ref += v;
				mag += fabs(v);
			}
			w_g = fmax(w_g, fabs(gp[q - base] - ref) / (mag + 1e-30));
		}
	}
	for (int k = 0; k < dim * bs; k++)
	{
		ref_t[k] = dx0[k];
		mag_t[k] = fabs(dx0[k]);
	}
	for (int r = 0; r < n; r++)
		for (int64 q = t->row_ptr[r0 + r]; q < t->row_ptr[r0 + r + 1]; q++)
			for (int b = 0; b < bs; b++)
			{
				double		v = (double) t->w[q] * g[(Size) r * bs + b];

				ref_t[(Size) t->col[q] * bs + b] += v;
				mag_t[(Size) t->col[q] * bs + b] += fabs(v);
			}
	for (int k = 0; k < dim * bs; k++)
		w_t = fmax(w_t, fabs(dx[k] - ref_t[k]) / (mag_t[k] + 1e-30));
	report("sparse_block_mul", level, n, bs, d, w_mul);
	report("sparse_block_mul_t", level, n, bs, d, w_t);
	report("sparse_block_grad", level, n, bs, d, w_g);

	free(x);
	free(g);
	free(out);
	free(dx);
	free(dx0);
	free(gp);
	free(ref_t);
	free(mag_t);
	free(t->row_ptr);
	free(t->col);
	free(t->w);
	free(t);
}

int
main(void)
{
	const int	rows[] = {1, 7, 64};
	const int	batches[] = {16, 48, 64, 80, 128};
	const double densities[] = {0.0, 0.05, 0.5, 1.0};
	int			levels = 0;

	srand(7);
	for (int level = SB_PLAIN; level <= SB_AVX512; level++)
	{
		if (!sparse_block_force(level))
			continue;
		levels++;
		for (int i = 0; i < lengthof(rows); i++)
			for (int j = 0; j < lengthof(batches); j++)
				for (int k = 0; k < lengthof(densities); k++)
					check(level, rows[i] + 3, rows[i], 601, batches[j], densities[k]);
		check(level, 70, 64, 37, 64, 0.3);		/* a narrow tensor */
	}
	if (failures == 0)
		printf("sparse_block_check: %d kernel levels, every product within 1e-5\n", levels);
	return failures ? 1 : 0;
}
