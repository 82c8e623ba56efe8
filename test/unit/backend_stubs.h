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

extern void unit_run_reset_callbacks(void);

#endif							/* DSL_UNIT_BACKEND_STUBS_H */
