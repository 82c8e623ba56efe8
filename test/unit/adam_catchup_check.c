/*
 * adam_catchup_check.c - lazy Adam plus catch-up must follow dense Adam
 *
 * Runs src/sparse_tensor.c outside a server (with test/fuzz/shim.c for
 * palloc and ereport).  Two copies of one sparse tensor are trained on the
 * same random mini-batches of rows and gradients, with a learning rate that
 * changes every step (a cosine, redrawn half-way as dsl.train's stopping
 * rule does):
 *   dense: every row takes an Adam step every step (zero gradient outside
 *          the batch), as PyTorch's Adam does;
 *   lazy:  only the batch's rows take a step, after being caught up to the
 *          step before (sparse_tensor_catch_up_row), and every row is caught
 *          up at the end (sparse_tensor_catch_up_all).
 * With eps -> 0 weights and both moments must agree to float rounding (the
 * largest weight difference below 1e-5 of the largest weight).  Idle steps
 * are caught up without eps (sparse_tensor.h), so with Adam's default eps
 * 1e-8 entries whose gradients are tiny move a little differently: there
 * the bound is 1e-3.  Row gaps of more than ADAM_CATCHUP_WINDOW steps (the
 * direct-sum path) occur on purpose.  Exit status 0 when they agree.
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "miscadmin.h"
#include "rng.h"
#include "sparse_tensor.h"
#include "workers.h"

#undef printf
#undef fprintf

/* sparse_tensor.c's only uses of the worker pool and of interrupts */
void
worker_pool_run(WorkerPool *pool, WorkerFn fn, void *arg)
{
	fn(arg, 0, 1);
}

volatile sig_atomic_t InterruptPending = false;

void
ProcessInterrupts(void)
{
}

static double
lr_at(int64 t, int64 total, double lr0, double lr_min)
{
	double		frac = Min(1.0, (double) (t - 1) / (double) total);

	return lr_min + (lr0 - lr_min) * (1.0 + cos(M_PI * frac)) / 2.0;
}

static int
run_case(int n_rows, int dim, double density, int steps, int batch_rows, float eps,
		 double bound, uint64 seed)
{
	int64		budget = sparse_tensor_budget(n_rows, dim, density);
	SparseTensor *dense = sparse_tensor_create("d", n_rows, dim, budget, 0.1f, seed, 1);
	SparseTensor *lazy = sparse_tensor_create("l", n_rows, dim, budget, 0.1f, seed, 1);
	AdamConfig	cfg = {0.01f, 0.9f, 0.999f, eps};
	AdamCatchUp cu;
	DslRng		rng;
	float	   *g = palloc(sizeof(float) * dim);
	float	   *zero = palloc0(sizeof(float) * dim);
	bool	   *in_batch = palloc(sizeof(bool) * n_rows);
	int64		total = steps;
	double		worst = 0,
				scale = 0;

	lazy->last_step = palloc0(sizeof(int64) * n_rows);
	adam_catchup_init(&cu, &cfg);
	dsl_rng_seed(&rng, seed, 99);
	for (int64 t = 1; t <= steps; t++)
	{
		AdamConfig	step_cfg = cfg;
		float		bc1 = (float) (1.0 - pow(cfg.beta1, (double) t));
		float		bc2 = (float) (1.0 - pow(cfg.beta2, (double) t));

		/* redraw the schedule twice as long half-way, as dsl.train does */
		if (t == steps / 2 + 1)
			total = 2 * steps;
		step_cfg.lr = (float) lr_at(t, total, cfg.lr, cfg.lr / 100);
		adam_catchup_set_lr(&cu, t, step_cfg.lr);
		adam_catchup_advance(&cu, t - 1);

		/* a batch: a few hot rows often, the rest rarely (long idle gaps) */
		memset(in_batch, 0, sizeof(bool) * n_rows);
		for (int k = 0; k < batch_rows; k++)
		{
			int			r = (dsl_rng_uniform(&rng) < 0.7f) ?
				(int) dsl_rng_below(&rng, 8) :
				(int) dsl_rng_below(&rng, (uint64) n_rows);

			in_batch[r] = true;
		}
		for (int r = 0; r < n_rows; r++)
		{
			if (in_batch[r])
			{
				for (int c = 0; c < dim; c++)
					g[c] = (float) (dsl_rng_normal(&rng) * 0.5);
				sparse_tensor_catch_up_row(lazy, r, &cu);
				sparse_tensor_adam_row(lazy, r, g, &step_cfg, bc1, bc2);
				lazy->last_step[r] = t;
				sparse_tensor_adam_row(dense, r, g, &step_cfg, bc1, bc2);
			}
			else
				sparse_tensor_adam_row(dense, r, zero, &step_cfg, bc1, bc2);
		}
	}
	adam_catchup_advance(&cu, steps);
	sparse_tensor_catch_up_all(lazy, &cu, NULL);

	for (int64 q = 0; q < dense->budget; q++)
		scale = Max(scale, fabs(dense->w[q]));
	for (int64 q = 0; q < dense->budget; q++)
	{
		double		dw = fabs(dense->w[q] - lazy->w[q]) / scale;
		double		dm = fabs(dense->m[q] - lazy->m[q]) / (fabs(dense->m[q]) + 1e-12);
		double		dv = fabs(dense->v[q] - lazy->v[q]) / (fabs(dense->v[q]) + 1e-20);

		worst = Max(worst, Max(dw, Max(dm * 1e-2, dv * 1e-2)));
	}
	printf("rows %d dim %d density %.2f steps %d eps %g: largest difference %.2e (bound %g) of max |w| %.3f\n",
		   n_rows, dim, density, steps, eps, worst, bound, scale);
	return worst < bound ? 0 : 1;
}

int
main(void)
{
	int			failed = 0;

	/* gaps up to hundreds of steps: both catch-up paths */
	failed += run_case(200, 16, 0.5, 600, 6, 1e-12f, 1e-5, 1);
	failed += run_case(200, 16, 0.5, 60, 6, 1e-12f, 1e-5, 4);
	failed += run_case(64, 8, 1.0, 1200, 3, 1e-12f, 1e-5, 2);
	failed += run_case(1000, 32, 0.2, 2000, 40, 1e-12f, 1e-5, 3);
	failed += run_case(200, 16, 0.5, 600, 6, 1e-8f, 1e-3, 1);
	printf(failed ? "adam_catchup_check: FAILED\n" : "adam_catchup_check: OK\n");
	return failed ? 1 : 0;
}
