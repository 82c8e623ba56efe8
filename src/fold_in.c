/*
 * fold_in.c - a user row for an ad-hoc history (see fold_in.h)
 */
#include "postgres.h"

#include <math.h>
#include <cblas.h>

#include "miscadmin.h"

#include "dsl_rec.h"
#include "fold_in.h"

/* rows converted to double per cblas_dsyrk call */
#define FOLD_BLOCK 1024

/* the weights of fold_in.h, chosen by the grid in docs/serving.md */
#define FOLD_BETA 1.0
#define FOLD_LAMBDA 10.0

FoldIn *
fold_in_prepare(const ServeRows *items, MemoryContext cxt)
{
	int			n_items = items->n_rows;
	int			dim = items->dim;
	FoldIn	   *f = MemoryContextAllocZero(cxt, sizeof(FoldIn));
	double	   *block = palloc(sizeof(double) * FOLD_BLOCK * dim);
	double		tr = 0.0;

	f->dim = dim;
	f->gram = MemoryContextAllocZero(cxt, sizeof(double) * dim * dim);
	f->work = MemoryContextAlloc(cxt, sizeof(double) * (dim * dim + 2 * dim));
	f->row = MemoryContextAlloc(cxt, sizeof(float) * dim);

	dsl_blas_prepare(false);
	for (int lo = 0; lo < n_items; lo += FOLD_BLOCK)
	{
		int			nb = Min(FOLD_BLOCK, n_items - lo);

		CHECK_FOR_INTERRUPTS();
		for (int i = 0; i < nb; i++)
		{
			serve_rows_get(items, lo + i, f->row);
			for (int c = 0; c < dim; c++)
				block[(Size) i * dim + c] = f->row[c];
		}
		/* upper triangle of gram += block^T block */
		cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, nb,
					1.0, block, dim, 1.0, f->gram, dim);
	}
	pfree(block);

	for (int r = 0; r < dim; r++)
		for (int c = r; c < dim; c++)
		{
			double		g = n_items > 0 ? f->gram[r * dim + c] / n_items : 0.0;

			f->gram[r * dim + c] = g;
			f->gram[c * dim + r] = g;
		}
	for (int r = 0; r < dim; r++)
		tr += f->gram[r * dim + r];
	f->mean_sq = tr / dim;
	return f;
}

void
fold_in_solve(const FoldIn *f, const ServeRows *items, const int32 *hist, int n,
			  float *out)
{
	const int	dim = f->dim;
	double	   *a = f->work;
	double	   *b = a + dim * dim;
	double	   *y = b + dim;
	const double beta = FOLD_BETA;
	const double lambda = FOLD_LAMBDA;

	/* a = n (beta Gbar + lambda t I), b = 0 */
	for (int r = 0; r < dim; r++)
	{
		for (int c = 0; c < dim; c++)
			a[r * dim + c] = n * beta * f->gram[r * dim + c];
		a[r * dim + r] += n * lambda * f->mean_sq;
		b[r] = 0.0;
	}
	/* + the history's outer products (lower triangle) and sum */
	for (int h = 0; h < n; h++)
	{
		const float *q = f->row;

		serve_rows_get(items, hist[h], f->row);
		if ((h & 1023) == 1023)
			CHECK_FOR_INTERRUPTS();	/* a history may be the whole catalogue */
		for (int r = 0; r < dim; r++)
		{
			double		qr = q[r];

			b[r] += qr;
			for (int c = 0; c <= r; c++)
				a[r * dim + c] += qr * q[c];
		}
	}

	/* Cholesky a = L L^T in the lower triangle */
	for (int j = 0; j < dim; j++)
	{
		double		d = a[j * dim + j];

		for (int k = 0; k < j; k++)
			d -= a[j * dim + k] * a[j * dim + k];
		if (!(d > 1e-300))
		{
			memset(out, 0, sizeof(float) * dim);
			return;
		}
		d = sqrt(d);
		a[j * dim + j] = d;
		for (int i = j + 1; i < dim; i++)
		{
			double		s = a[i * dim + j];

			for (int k = 0; k < j; k++)
				s -= a[i * dim + k] * a[j * dim + k];
			a[i * dim + j] = s / d;
		}
	}
	/* L y = b, then L^T p = y */
	for (int i = 0; i < dim; i++)
	{
		double		s = b[i];

		for (int k = 0; k < i; k++)
			s -= a[i * dim + k] * y[k];
		y[i] = s / a[i * dim + i];
	}
	for (int i = dim - 1; i >= 0; i--)
	{
		double		s = y[i];

		for (int k = i + 1; k < dim; k++)
			s -= a[k * dim + i] * y[k];
		y[i] = s / a[i * dim + i];
	}
	for (int i = 0; i < dim; i++)
		out[i] = (float) y[i];
}
