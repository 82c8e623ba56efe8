/*
 * engine_estimate_check.c - dsl_engine_estimate_bytes against the real
 * allocations
 *
 * Runs src/dsl_engine.c, sparse_tensor.c, prune_regrow.c, kselect.c and
 * workers.c outside a server, with test/fuzz/shim.c counting the bytes that
 * palloc & co. hand out.  For each case an engine is set up with its
 * tensors and put through prune/regrow rounds at the schedule's largest
 * update ratio (the second round prunes the zeros regrown by the first: the
 * most ties a selection sees); the peak of the live bytes from the engine's
 * creation on is compared with the estimate made beforehand.
 *
 * Tolerance: the estimate must not be below the peak, and may exceed it by
 * at most 1 % + 64 kB (it counts the largest possible tie list and
 * complement bitmap, which a run need not reach).  Bytes are counted as
 * requested: palloc's chunk headers and power-of-two rounding are not part
 * of either number.
 *
 * It also checks how dsl_tensor_budgets spreads a model's budget: the
 * smallest tensors dense within 1/DSL_DENSE_SHARE of the budget, the others
 * at one density, the sum within rounding of round(density x all weights).
 * Exit status 0 when every case passes.
 */
#include "postgres.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "dsl_engine.h"
#include "dsl_rec.h"
#include "mem_peak.h"
#include "rng.h"
#include "backend_stubs.h"
#include "shim.h"

typedef struct Case
{
	const char *name;
	int			n_tensors;
	TensorShape shapes[4];
	double		density;
	bool		dynamic;
	double		update_ratio;
	GrowthMode	growth;
	bool		sparse_grad;	/* gradient rows listed (MF) or all (LightGCN) */
	int			threads;
} Case;

static const Case cases[] = {
	{"mf-like d=0.5, 2 threads", 2, {{3000, 64}, {2000, 64}}, 0.5, true, 0.5, GROWTH_GRADIENT, true, 2},
	{"lightgcn-like d=0.2", 2, {{1500, 64}, {2500, 64}}, 0.2, true, 0.5, GROWTH_GRADIENT, false, 1},
	{"three tensors d=0.1, dim 48", 3, {{1000, 48}, {700, 48}, {50, 48}}, 0.1, true, 0.3, GROWTH_GRADIENT, true, 2},
	{"random growth d=0.9", 2, {{800, 32}, {1200, 32}}, 0.9, true, 0.5, GROWTH_RANDOM, false, 1},
	{"dense", 2, {{2000, 64}, {1000, 64}}, 1.0, true, 0.5, GROWTH_GRADIENT, false, 2},
	{"static d=0.3", 2, {{2000, 64}, {1000, 64}}, 0.3, false, 0.5, GROWTH_GRADIENT, false, 1},
	{"autoencoder-like shapes d=0.4", 4, {{2000, 120}, {120, 80}, {1, 120}, {2000, 1}}, 0.4, true, 0.5, GROWTH_GRADIENT, false, 2},
};

/* a gradient for every tensor: a third of the rows listed, or all rows */
static void
make_grads(const Case *c, TensorGrad *g, DslRng *rng)
{
	for (int i = 0; i < c->n_tensors; i++)
	{
		int			dim = c->shapes[i].cols;
		int			n = c->sparse_grad ? c->shapes[i].rows / 3 : c->shapes[i].rows;
		float	   *v = palloc(sizeof(float) * (Size) n * dim);
		int32	   *rows = NULL;

		for (Size k = 0; k < (Size) n * dim; k++)
			v[k] = (float) dsl_rng_normal(rng);
		if (c->sparse_grad)
		{
			rows = palloc(sizeof(int32) * n);
			for (int k = 0; k < n; k++)
				rows[k] = 3 * k;
		}
		g[i].n = n;
		g[i].rows = rows;
		g[i].g = v;
		g[i].consume = false;
	}
}

static bool
run_case(const Case *c)
{
	DslConfig	cfg;
	DslEngine	e;
	TensorGrad	g[DSL_MAX_TENSORS];
	int64		budgets[DSL_MAX_TENSORS];
	DslRng		rng;
	Size		est,
				base,
				peak;
	double		slack;

	memset(&cfg, 0, sizeof(cfg));
	cfg.density = c->density;
	cfg.dynamic = c->dynamic;
	cfg.growth = c->growth;
	cfg.schedule = SCHEDULE_COSINE;
	cfg.update_ratio = c->update_ratio;
	cfg.update_ratio_min = 0;
	cfg.update_interval = 10;
	cfg.total_steps = 1000;
	cfg.seed = 42;
	cfg.init_std = 0.1f;
	cfg.adam = (AdamConfig) {0.01f, 0.9f, 0.999f, 1e-8f};
	dsl_threads = c->threads;

	dsl_rng_seed(&rng, 7, 1);
	make_grads(c, g, &rng);
	dsl_tensor_budgets(c->shapes, c->n_tensors, cfg.density, budgets);
	est = dsl_engine_estimate_bytes(&cfg, c->shapes, budgets, c->n_tensors);

	base = shim_live_bytes();
	(void) shim_take_peak_bytes();
	dsl_engine_init(&e, &cfg, budgets, c->n_tensors);
	for (int i = 0; i < c->n_tensors; i++)
		dsl_engine_add_tensor(&e, "t", c->shapes[i].rows, c->shapes[i].cols);
	/* at step 0 the cosine's zeta is update_ratio, its largest */
	if (c->dynamic)
		for (int r = 0; r < 3; r++)
			dsl_engine_update(&e, g);
	peak = shim_take_peak_bytes() - base;

	unit_run_reset_callbacks();
	shim_reset();

	slack = (double) est - (double) peak;
	printf("engine_estimate_check: %-32s estimate %10zu  peak %10zu  (%+.2f %%)\n",
		   c->name, est, peak, 100.0 * slack / (double) peak);
	return slack >= 0 && slack <= 0.01 * (double) peak + 65536;
}

typedef struct PlanCase
{
	const char *name;
	int			n_tensors;
	TensorShape shapes[DSL_MAX_TENSORS];
	double		density;
	int			n_dense;		/* the first n_dense tensors come out dense */
} PlanCase;

static const PlanCase plans[] = {
	/* NeuMF on Gowalla's shapes: the layers and biases dense */
	{"neumf-like d=0.2", 13, {{1, 8}, {1, 1}, {32, 32}, {32, 32}, {1, 32}, {32, 16}, {1, 16}, {16, 8}, {1, 8},
	 {29858, 64}, {40981, 64}, {29858, 32}, {40981, 32}}, 0.2, 9},
	/* two embedding tables: the uniform density */
	{"mf-like d=0.1", 2, {{3000, 64}, {2000, 64}}, 0.1, 0},
	/* 10 weights fit in 1/16 of the budget, the next 3200 do not */
	{"a tensor just over the share d=0.5", 3, {{1, 10}, {50, 64}, {1000, 64}}, 0.5, 1},
	{"dense", 3, {{1, 10}, {50, 64}, {1000, 64}}, 1.0, 3},
};

static bool
run_plan(const PlanCase *c)
{
	int64		budgets[DSL_MAX_TENSORS];
	int64		total = 0,
				sum = 0,
				held = 0,
				want;
	double		rest = -1;
	bool		ok = true;

	dsl_tensor_budgets(c->shapes, c->n_tensors, c->density, budgets);
	for (int i = 0; i < c->n_tensors; i++)
	{
		int64		size = (int64) c->shapes[i].rows * c->shapes[i].cols;

		total += size;
		sum += budgets[i];
		if (i < c->n_dense)
		{
			ok &= budgets[i] == size;
			held += size;
		}
	}
	want = (int64) rint(c->density * (double) total);
	ok &= held <= want / DSL_DENSE_SHARE || c->density >= 1.0;
	/* the others at one density (the model's when none is dense), not dense */
	if (c->n_dense < c->n_tensors)
		rest = held == 0 ? c->density : (double) (want - held) / (double) (total - held);
	for (int i = c->n_dense; i < c->n_tensors; i++)
		ok &= budgets[i] == sparse_tensor_budget(c->shapes[i].rows, c->shapes[i].cols, rest) &&
			budgets[i] < (int64) c->shapes[i].rows * c->shapes[i].cols;
	ok &= llabs(sum - want) <= c->n_tensors;
	printf("engine_estimate_check: budgets %-32s %s: %lld of %lld weights (want %lld), %d dense, the others at %.4f\n",
		   c->name, ok ? "ok" : "WRONG", (long long) sum, (long long) total, (long long) want,
		   c->n_dense, rest);
	return ok;
}

int
main(void)
{
	int			failed = 0;

	for (int i = 0; i < lengthof(cases); i++)
		if (!run_case(&cases[i]))
			failed++;
	for (int i = 0; i < lengthof(plans); i++)
		if (!run_plan(&plans[i]))
			failed++;
	if (failed)
	{
		printf("engine_estimate_check: %d case(s) outside the tolerance\n", failed);
		return 1;
	}
	return 0;
}
