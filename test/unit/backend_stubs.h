/*
 * backend_stubs.h - the backend globals and services the engine's files use,
 * for the unit checks that run them outside a server (with the fuzz shim's
 * palloc): dsl_threads (set it per case), no interrupts, no memory
 * accounting (the shim counts instead), and one flat "context" whose reset
 * callbacks (the worker pool's) unit_run_reset_callbacks() runs after a case.
 * Also the engine set-ups the checks share (uniform_engine, and the gradient
 * checks' unit_grad_config and unit_grad_step4).
 */
#ifndef DSL_UNIT_BACKEND_STUBS_H
#define DSL_UNIT_BACKEND_STUBS_H

#include "postgres.h"

#include <math.h>

#include "dsl_engine.h"

extern void unit_run_reset_callbacks(void);

/*
 * dsl_engine_init with every tensor at cfg->density, round(density x its
 * weights) entries: the layers sparse too, unlike dsl_tensor_budgets, so
 * that a check covers their sparse paths.
 */
static inline void
uniform_engine(DslEngine *e, const DslConfig *cfg, int n_tensors,
			   const TensorShape *shapes)
{
	int64		budgets[DSL_MAX_TENSORS];

	for (int i = 0; i < n_tensors; i++)
		budgets[i] = sparse_tensor_budget(shapes[i].rows, shapes[i].cols, cfg->density);
	dsl_engine_init(e, cfg, budgets, n_tensors);
}

/*
 * The settings of the gradient checks: density d, gradient growth, a cosine
 * schedule whose first round is far off, and Adam with lr 0, so that a
 * step keeps its gradients and moves no weight.
 */
static inline void
unit_grad_config(DslConfig *cfg, double density)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->density = density;
	cfg->dynamic = true;
	cfg->growth = GROWTH_GRADIENT;
	cfg->schedule = SCHEDULE_COSINE;
	cfg->update_ratio = 0.5;
	cfg->update_interval = 1000;
	cfg->total_steps = 1000;
	cfg->seed = 5;
	cfg->init_std = 0.1f;
	cfg->adam = (AdamConfig) {0.0f, 0.9f, 0.999f, 1e-8f};
}

/* the engine at step 4 of that schedule (Adam's bias corrections of it) */
static inline void
unit_grad_step4(DslEngine *e, const DslConfig *cfg)
{
	e->step = 4;
	e->adam = cfg->adam;
	e->bc1 = (float) (1.0 - pow(0.9, 4));
	e->bc2 = (float) (1.0 - pow(0.999, 4));
}

#endif							/* DSL_UNIT_BACKEND_STUBS_H */
