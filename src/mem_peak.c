/*
 * mem_peak.c - peak memory of a training (see mem_peak.h)
 */
#include "postgres.h"

#include "utils/memutils.h"

#include "mem_peak.h"

static MemoryContext tracked = NULL;
static Size peak = 0;

static void
untrack(void *arg)
{
	if (tracked == (MemoryContext) arg)
		tracked = NULL;
}

void
dsl_mem_track(MemoryContext ctx)
{
	MemoryContextCallback *cb = MemoryContextAlloc(ctx, sizeof(MemoryContextCallback));

	cb->func = untrack;
	cb->arg = ctx;
	MemoryContextRegisterResetCallback(ctx, cb);
	tracked = ctx;
	peak = 0;
	dsl_mem_note();
}

void
dsl_mem_note(void)
{
	if (tracked != NULL)
		peak = Max(peak, MemoryContextMemAllocated(tracked, true));
}

Size
dsl_mem_peak(void)
{
	return peak;
}
