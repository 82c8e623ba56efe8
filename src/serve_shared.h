/*
 * serve_shared.h - one copy per server of the models being served
 *
 * With dsl_rec in shared_preload_libraries, a model loaded for serving is
 * copied once into a dynamic shared memory segment and listed in a small
 * directory in the main shared memory; every other backend that serves the
 * same model version maps that segment instead of reading the rows again.
 * A backend still looks the model up under its own snapshot and privileges
 * first (model_cache.c): the directory is keyed by what that lookup returns,
 * dsl.models' model_id and the row's xmin, and a version's rows never
 * change, so whatever version a snapshot sees is what it serves.
 *
 * The directory holds at most SERVE_SHARED_SLOTS models and at most
 * dsl_rec.serving_shared_memory megabytes (0 turns sharing off).  Publishing
 * a model first evicts older versions of the same name, then the least
 * recently used entries until it fits; an evicted segment lives on until
 * the last backend that mapped it lets go.  Without the preload every
 * backend keeps its own copy, as before (a NOTICE says so once per backend).
 */
#ifndef DSL_SERVE_SHARED_H
#define DSL_SERVE_SHARED_H

#include "postgres.h"

#include "model_cache.h"

#define SERVE_SHARED_SLOTS 64

/* _PG_init: the GUC, and the shared directory when preloading */
extern void serve_shared_init(void);

/* whether this server shares served models (preloaded, limit above 0) */
extern bool serve_shared_enabled(void);

/*
 * The shared copy of version (model_id, xmin) mapped into a new ServeModel
 * whose context hangs under parent (identity fields left to the caller), or
 * NULL when there is none.
 */
extern ServeModel *serve_shared_attach(int64 model_id, TransactionId xmin,
									   const Scorer *scorer, MemoryContext parent);

/*
 * Copy the complete, locally loaded m into shared memory and list it.
 * Returns the mapped copy (as serve_shared_attach would), or NULL when it
 * is not shared: a scorer without state callbacks, a model larger than the
 * limit, a full directory, or a version this transaction created.
 */
extern ServeModel *serve_shared_publish(const ServeModel *m, const char *name,
										MemoryContext parent);

/*
 * A model was loaded into this backend alone: without the preload, say so
 * (a NOTICE, once per backend).
 */
extern void serve_shared_note_local(const char *name);

#endif							/* DSL_SERVE_SHARED_H */
