/*
 * backend_stubs.h - the backend globals and services the engine's files use,
 * for the unit checks that run them outside a server (with the fuzz shim's
 * palloc): dsl_threads (set it per case), no interrupts, no memory
 * accounting (the shim counts instead), and one flat "context" whose reset
 * callbacks (the worker pool's) unit_run_reset_callbacks() runs after a case.
 */
#ifndef DSL_UNIT_BACKEND_STUBS_H
#define DSL_UNIT_BACKEND_STUBS_H

#include "postgres.h"

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

#endif							/* DSL_UNIT_BACKEND_STUBS_H */
