/*
 * mem_peak.h - the peak memory a training holds, by internal accounting
 *
 * RSS mixes the training's own memory with the shared buffers the backend
 * touched, so dsl.train measures itself: the bytes allocated in its memory
 * context (MemoryContextMemAllocated, children included), sampled at the
 * points where it holds most (after setting up, when the regrowth sums are
 * allocated, inside a DSL round before its temporaries are freed, at the end
 * of every epoch).  Backend-local; only the backend thread calls it.
 */
#ifndef DSL_MEM_PEAK_H
#define DSL_MEM_PEAK_H

#include "postgres.h"

/* start measuring ctx (tracking ends by itself when ctx is deleted) */
extern void dsl_mem_track(MemoryContext ctx);

/* sample the tracked context now; a no-op when nothing is tracked */
extern void dsl_mem_note(void);

/* the largest sample since dsl_mem_track */
extern Size dsl_mem_peak(void);

#endif							/* DSL_MEM_PEAK_H */
