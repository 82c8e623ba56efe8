/*
 * backend_stubs.c - see backend_stubs.h
 */
#include "postgres.h"

#include <signal.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "backend_stubs.h"
#include "dsl_rec.h"
#include "mem_peak.h"

int			dsl_threads = 1;
bool		dsl_debug_bf16_products = false;	/* float32 unless a check asks */
MemoryContext CurrentMemoryContext = NULL;
volatile sig_atomic_t InterruptPending = false;

void
ProcessInterrupts(void)
{
}

void
dsl_mem_note(void)
{
}

static MemoryContextCallback *reset_callbacks = NULL;

void
MemoryContextRegisterResetCallback(MemoryContext context, MemoryContextCallback *cb)
{
	cb->next = reset_callbacks;
	reset_callbacks = cb;
}

void
unit_run_reset_callbacks(void)
{
	while (reset_callbacks)
	{
		MemoryContextCallback *cb = reset_callbacks;

		reset_callbacks = cb->next;
		cb->func(cb->arg);
	}
}
