/*
 * shim.h - the few backend services src/spvec.c needs, outside a server
 *
 * shim.c provides palloc & co. (malloc-based, tracked so that one input's
 * allocations can all be released like a memory context reset), the
 * ereport/elog machinery (an ERROR longjmps back to shim_try()), the
 * pq_getmsg and pq_send functions, StringInfo, pg_detoast_datum and a few
 * helpers.  See README.md for what is and is not emulated.
 */
#ifndef DSL_FUZZ_SHIM_H
#define DSL_FUZZ_SHIM_H

#include "postgres.h"

/* port.h maps these to pg_*; the harness and the shim use libc's */
#undef snprintf
#undef vsnprintf
#undef sprintf
#undef vsprintf
#undef fprintf
#undef vfprintf
#undef printf
#undef vprintf

/* The last ERROR caught by shim_try() */
typedef struct ShimError
{
	int			elevel;
	int			sqlerrcode;		/* ERRCODE_INTERNAL_ERROR for elog() */
	const char *filename;
	int			lineno;
	const char *funcname;
	char		message[1024];
	char		detail[1024];
	char		hint[512];
} ShimError;

extern ShimError shim_error;

/*
 * Runs fn(arg); returns true if it returned, false if it raised an ERROR
 * (then described by shim_error).  Calls may not be nested.
 */
extern bool shim_try(void (*fn) (void *arg), void *arg);

/* Frees every chunk still allocated by palloc & co.: end of one input */
extern void shim_reset(void);

/* Number of chunks currently allocated by palloc & co. */
extern size_t shim_live_chunks(void);

/*
 * Bytes currently allocated by palloc & co. (as requested, without
 * allocator overhead), and their peak since the previous call of
 * shim_take_peak_bytes, which restarts the peak from the live bytes.
 */
extern Size shim_live_bytes(void);
extern Size shim_take_peak_bytes(void);

/* SQLSTATE as 5 characters (static buffer) */
extern const char *shim_sqlstate(int sqlerrcode);

/* Reports a violated property (with the last error, if any) and aborts */
extern void shim_fail(const char *fmt,...) pg_attribute_printf(1, 2) pg_attribute_noreturn();

#endif							/* DSL_FUZZ_SHIM_H */
