/*
 * row_groups_check.c - src/row_groups.c against the plain loops over column
 * indices: the axpy within one rounding of each sum (the masked path fuses
 * the product and the sum), the gather and the densified row exactly, for
 * widths around the 16-column groups (1, 15, 16, 17, 600, 601) at densities
 * from empty rows to full ones; and that the masks follow the tensor when
 * its layout counter moves
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "row_groups.h"

#undef printf

static int	failures = 0;

/* rows of dim columns kept at rate d (row 0 empty, row 1 full) */
static void
fill(SparseTensor *t, double d)
{
	int64		q = 0;

	for (int r = 0; r < t->n_rows; r++)
	{
		t->row_ptr[r] = q;
		for (int c = 0; c < t->dim; c++)
			if (r == 1 || (r != 0 && (double) rand() / RAND_MAX < d))
			{
				t->col[q] = (uint16) c;
				t->w[q++] = (float) rand() / (float) RAND_MAX - 0.5f;
			}
	}
	t->row_ptr[t->n_rows] = q;
	t->layout++;
}

static void
check(int dim, double d)
{
	SparseTensor t = {0};
	RowGroups	g;
	float	   *x = malloc(sizeof(float) * dim),
			   *y0 = malloc(sizeof(float) * dim),
			   *y1 = malloc(sizeof(float) * dim),
			   *p0 = malloc(sizeof(float) * dim),
			   *p1 = malloc(sizeof(float) * dim),
			   *d0 = malloc(sizeof(float) * dim),
			   *d1 = malloc(sizeof(float) * dim);

	t.n_rows = 40;
	t.dim = dim;
	t.row_ptr = malloc(sizeof(int64) * (t.n_rows + 1));
	t.col = malloc(sizeof(uint16) * t.n_rows * dim);
	t.w = malloc(sizeof(float) * t.n_rows * dim);
	t.layout = 1;
	row_groups_init(&g, &t);
	/* twice: the second pattern must replace the first one's masks */
	for (int round = 0; round < 2; round++)
	{
		fill(&t, round ? 1.0 - d : d);
		row_groups_sync(&g, &t);
		for (int r = 0; r < t.n_rows; r++)
		{
			const int64 q0 = t.row_ptr[r],
						q1 = t.row_ptr[r + 1];
			const float a = 0.37f * (r + 1);

			for (int c = 0; c < dim; c++)
			{
				x[c] = (float) rand() / (float) RAND_MAX;
				y0[c] = y1[c] = (float) c / 7.0f;
			}
			for (int64 q = q0; q < q1; q++)
			{
				volatile float prod = a * t.w[q];	/* rounded, then added */

				y0[t.col[q]] += prod;
				p0[q - q0] = x[t.col[q]];
			}
			row_groups_axpy(&g, &t, r, a, y1);
			row_groups_gather(&g, &t, r, x, p1);
			sparse_tensor_row_dense(&t, r, d0);
			for (int c = 0; c < dim; c++)
				d1[c] = 1e30f;	/* every column must be written */
			row_groups_dense(&g, &t, r, d1);
			int			c = 0;

			/* |y| >= c / 7 and a product below 0.37 * 41 / 2: 2^-23 of both */
			while (c < dim && fabsf(y0[c] - y1[c]) <= 1.2e-7f * (fabsf(y0[c]) + 8.0f))
				c++;
			if (c < dim || memcmp(p0, p1, sizeof(float) * (q1 - q0)) != 0 ||
				memcmp(d0, d1, sizeof(float) * dim) != 0)
			{
				printf("row_groups_check: dim %d, density %.2f, pattern %d, row %d (%lld entries) differs: axpy column %d (%.9g, %.9g)\n",
					   dim, d, round, r, (long long) (q1 - q0), c, c < dim ? y0[c] : 0, c < dim ? y1[c] : 0);
				failures++;
				break;
			}
		}
	}
	row_groups_free(&g);
	free(t.row_ptr);
	free(t.col);
	free(t.w);
	free(x);
	free(y0);
	free(y1);
	free(p0);
	free(p1);
	free(d0);
	free(d1);
}

int
main(void)
{
	const int	dims[] = {1, 15, 16, 17, 600, 601};
	const double densities[] = {0.0, 0.1, 0.3, 0.5, 0.9};

	srand(11);
	for (int i = 0; i < lengthof(dims); i++)
		for (int k = 0; k < lengthof(densities); k++)
			check(dims[i], densities[k]);
	if (failures == 0)
		printf("row_groups_check: axpy, gather and densify equal the plain loops (%s)\n",
			   __builtin_cpu_supports("avx512f") ? "AVX-512F masks" : "no AVX-512F: plain loops only");
	return failures ? 1 : 0;
}
