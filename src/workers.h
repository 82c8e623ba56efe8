/*
 * workers.h - a small pool of worker threads for data-parallel loops
 *
 * Worker threads run plain C only: no palloc, no ereport, no
 * CHECK_FOR_INTERRUPTS, no PostgreSQL API at all.  All signals are blocked
 * in them so that the backend's handlers keep running in the main thread.
 * The pool is owned by a memory context and shut down when that context is
 * reset or deleted, so an error or cancel never leaves threads behind.
 */
#ifndef DSL_WORKERS_H
#define DSL_WORKERS_H

#include "postgres.h"

typedef void (*WorkerFn) (void *arg, int part, int n_parts);

typedef struct WorkerPool WorkerPool;

/* a pool with n_threads - 1 extra threads (the caller is part 0) */
extern WorkerPool *worker_pool_create(int n_threads, MemoryContext owner);

/* run fn(arg, part, n) for part = 0..n-1 in parallel and wait for all */
extern void worker_pool_run(WorkerPool *pool, WorkerFn fn, void *arg);

extern int	worker_pool_size(const WorkerPool *pool);

/*
 * For memory estimates: the threads worker_pool_create(n_threads) gives
 * (when the system creates them all), and the bytes it allocates.
 */
extern int	worker_pool_threads(int n_threads);
extern Size worker_pool_bytes(void);

/*
 * Dynamic scheduling: the parts of a run take chunks 0, 1, ... from a shared
 * counter (set to 0 before the run) until they draw one >= the number of
 * chunks.  What a chunk computes must not depend on the part that takes it.
 */
static inline int
worker_claim(int *counter)
{
	return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

/* the [lo, hi) share of part out of n_parts for n items */
static inline void
worker_share(int64 n, int part, int n_parts, int64 *lo, int64 *hi)
{
	*lo = n * part / n_parts;
	*hi = n * (part + 1) / n_parts;
}

#endif							/* DSL_WORKERS_H */
