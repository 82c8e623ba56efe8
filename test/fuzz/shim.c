/*
 * shim.c - minimal stand-ins for the backend symbols src/spvec.c links
 * against, so that it can run inside a libFuzzer process.
 *
 * Faithful where spvec.c's behaviour depends on it (the same semantics and
 * error conditions as PostgreSQL 15's versions): palloc & co. (size limits,
 * MCXT_ALLOC_* flags), StringInfo growth, pq_getmsgint/pq_getmsgfloat4
 * (including "insufficient data left in message"), pq_send*,
 * pq_begintypsend/pq_endtypsend, scanner_isspace, pg_ultoa_n,
 * pg_detoast_datum for untoasted and short-header values.
 *
 * Simplified: there are no memory contexts (one flat list of chunks, freed
 * by shim_reset()), error messages are formatted with libc's vsnprintf and
 * never translated, non-ERROR reports are formatted and dropped, FATAL and
 * PANIC abort, and the array functions spvec.c links for its casts abort
 * (they are not fuzzed).  float_to_shortest_decimal_bufn, hash_bytes and
 * pg_qsort are PostgreSQL's own, from libpgcommon/libpgport (see Makefile).
 */
#include "shim.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fmgr.h"
#include "lib/stringinfo.h"
#include "libpq/pqformat.h"
#include "parser/scansup.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* ---------------------------------------------------------------------
 * Failing loudly
 * ---------------------------------------------------------------------
 */

ShimError	shim_error;

const char *
shim_sqlstate(int sqlerrcode)
{
	static char buf[6];

	for (int i = 0; i < 5; i++)
	{
		buf[i] = PGUNSIXBIT(sqlerrcode);
		sqlerrcode >>= 6;
	}
	buf[5] = '\0';
	return buf;
}

void
shim_fail(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "\n==== spvec fuzz property violated: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	if (shim_error.message[0] != '\0')
		fprintf(stderr, "==== last ERROR: [%s] %s%s%s (%s:%d %s)\n",
				shim_sqlstate(shim_error.sqlerrcode), shim_error.message,
				shim_error.detail[0] ? " DETAIL: " : "", shim_error.detail,
				shim_error.filename ? shim_error.filename : "?",
				shim_error.lineno,
				shim_error.funcname ? shim_error.funcname : "?");
	abort();
}

void
ExceptionalCondition(const char *conditionName, const char *errorType,
					 const char *fileName, int lineNumber)
{
	fprintf(stderr, "TRAP: %s(\"%s\", File: \"%s\", Line: %d)\n",
			errorType ? errorType : "?", conditionName ? conditionName : "?",
			fileName ? fileName : "?", lineNumber);
	abort();
}

/* ---------------------------------------------------------------------
 * palloc & co.: malloc, one chunk per allocation (so ASan's redzones sit
 * exactly around what the caller asked for), tracked in a flat table.
 * Non-zeroed memory is filled with a byte that changes at every call, so
 * that output depending on uninitialised bytes breaks the round trips.
 * ---------------------------------------------------------------------
 */

typedef struct ShimChunk
{
	void	   *ptr;
	Size		size;
} ShimChunk;

static ShimChunk *chunks;
static size_t nchunks;
static size_t maxchunks;
static Size live_bytes;			/* sum of the live chunks' sizes */
static Size peak_bytes;			/* the most live_bytes since shim_reset_peak */
static unsigned int fill_counter;

/*
 * Only the first 64 kB are filled: spvec_recv allocates 8 MB for a header
 * claiming a million entries, and filling all of it would dominate the
 * run time (ASan's own malloc fill stops at 4 kB).
 */
#define SHIM_FILL_MAX	65536

static void
shim_fill(char *p, Size size)
{
	memset(p, (unsigned char) (0xA5 + 61 * fill_counter++), Min(size, SHIM_FILL_MAX));
}

static size_t
shim_find_chunk(void *ptr, const char *what)
{
	/* most frees concern recent allocations: search from the end */
	for (size_t i = nchunks; i-- > 0;)
		if (chunks[i].ptr == ptr)
			return i;
	shim_fail("%s(%p): not a live palloc'd chunk", what, ptr);
}

static void *
shim_alloc(Size size, int flags)
{
	void	   *p;

	if ((flags & MCXT_ALLOC_HUGE) ? !AllocHugeSizeIsValid(size) :
		!AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);

	if (nchunks == maxchunks)
	{
		size_t		newmax = maxchunks ? maxchunks * 2 : 256;
		ShimChunk  *n = realloc(chunks, newmax * sizeof(ShimChunk));

		if (n == NULL)
			shim_fail("out of memory for the chunk table");
		chunks = n;
		maxchunks = newmax;
	}

	p = malloc(size);
	if (p == NULL && size == 0)
		p = malloc(1);
	if (p == NULL)
	{
		if (flags & MCXT_ALLOC_NO_OOM)
			return NULL;
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	}
	if (flags & MCXT_ALLOC_ZERO)
		memset(p, 0, size);
	else
		shim_fill(p, size);

	chunks[nchunks].ptr = p;
	chunks[nchunks].size = size;
	nchunks++;
	live_bytes += size;
	peak_bytes = Max(peak_bytes, live_bytes);
	return p;
}

void *
palloc(Size size)
{
	return shim_alloc(size, 0);
}

void *
palloc0(Size size)
{
	return shim_alloc(size, MCXT_ALLOC_ZERO);
}

void *
palloc_extended(Size size, int flags)
{
	return shim_alloc(size, flags);
}

void *
MemoryContextAlloc(MemoryContext context, Size size)
{
	return shim_alloc(size, 0);
}

void *
MemoryContextAllocZero(MemoryContext context, Size size)
{
	return shim_alloc(size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocZeroAligned(MemoryContext context, Size size)
{
	return shim_alloc(size, MCXT_ALLOC_ZERO);
}

void *
MemoryContextAllocExtended(MemoryContext context, Size size, int flags)
{
	return shim_alloc(size, flags);
}

static void *
shim_realloc(void *pointer, Size size, bool huge)
{
	size_t		i;
	Size		old;
	void	   *p;

	if (huge ? !AllocHugeSizeIsValid(size) : !AllocSizeIsValid(size))
		elog(ERROR, "invalid memory alloc request size %zu", size);
	i = shim_find_chunk(pointer, "repalloc");
	old = chunks[i].size;
	p = realloc(pointer, size ? size : 1);
	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed on request of size %zu.", size)));
	if (size > old)
		shim_fill((char *) p + old, size - old);
	chunks[i].ptr = p;
	chunks[i].size = size;
	live_bytes = live_bytes - old + size;
	peak_bytes = Max(peak_bytes, live_bytes);
	return p;
}

void *
repalloc(void *pointer, Size size)
{
	return shim_realloc(pointer, size, false);
}

void *
repalloc_huge(void *pointer, Size size)
{
	return shim_realloc(pointer, size, true);
}

void
pfree(void *pointer)
{
	size_t		i = shim_find_chunk(pointer, "pfree");

	free(pointer);
	live_bytes -= chunks[i].size;
	chunks[i] = chunks[--nchunks];
}

void
shim_reset(void)
{
	for (size_t i = 0; i < nchunks; i++)
		free(chunks[i].ptr);
	nchunks = 0;
	live_bytes = 0;
}

size_t
shim_live_chunks(void)
{
	return nchunks;
}

Size
shim_live_bytes(void)
{
	return live_bytes;
}

/* the peak of shim_live_bytes() since the last call (or the start) */
Size
shim_take_peak_bytes(void)
{
	Size		peak = peak_bytes;

	peak_bytes = live_bytes;
	return peak;
}

char *
pstrdup(const char *in)
{
	size_t		len = strlen(in) + 1;
	char	   *out = palloc(len);

	memcpy(out, in, len);
	return out;
}

char *
pnstrdup(const char *in, Size size)
{
	char	   *out;

	size = strnlen(in, size);
	out = palloc(size + 1);
	memcpy(out, in, size);
	out[size] = '\0';
	return out;
}

char *
psprintf(const char *fmt,...)
{
	va_list		ap;
	int			n;
	char	   *out;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		elog(ERROR, "vsnprintf failed: %m with format string \"%s\"", fmt);
	out = palloc((Size) n + 1);
	va_start(ap, fmt);
	vsnprintf(out, (size_t) n + 1, fmt, ap);
	va_end(ap);
	return out;
}

/* PostgreSQL's printf replacements, as libc's (same output for %d %ld %s) */
int
pg_vsnprintf(char *str, size_t count, const char *fmt, va_list args)
{
	return vsnprintf(str, count, fmt, args);
}

int
pg_snprintf(char *str, size_t count, const char *fmt,...)
{
	va_list		ap;
	int			n;

	va_start(ap, fmt);
	n = vsnprintf(str, count, fmt, ap);
	va_end(ap);
	return n;
}

/* ---------------------------------------------------------------------
 * ereport / elog.  PostgreSQL 15's elog(elevel, ...) expands to
 * ereport(elevel, errmsg_internal(...)), and ereport() to
 * errstart[_cold]() && (errcode(), errmsg(), ...), errfinish().  The
 * message arguments are really formatted, so that a bad format argument
 * shows up under ASan.  An ERROR longjmps to shim_try(); lower levels
 * are dropped; FATAL and PANIC abort.
 * ---------------------------------------------------------------------
 */

static sigjmp_buf *error_jmp;
static ShimError building;

bool
errstart(int elevel, const char *domain)
{
	memset(&building, 0, sizeof(building));
	building.elevel = elevel;
	if (elevel >= ERROR)
		building.sqlerrcode = ERRCODE_INTERNAL_ERROR;
	else if (elevel >= WARNING)
		building.sqlerrcode = ERRCODE_WARNING;
	else
		building.sqlerrcode = ERRCODE_SUCCESSFUL_COMPLETION;
	return true;
}

bool
errstart_cold(int elevel, const char *domain)
{
	return errstart(elevel, domain);
}

bool
message_level_is_interesting(int elevel)
{
	return elevel >= ERROR;
}

int
errcode(int sqlerrcode)
{
	building.sqlerrcode = sqlerrcode;
	return 0;
}

#define SHIM_FORMAT(field) \
	do { \
		va_list		ap; \
		va_start(ap, fmt); \
		vsnprintf(building.field, sizeof(building.field), fmt, ap); \
		va_end(ap); \
	} while (0)

int
errmsg(const char *fmt,...)
{
	SHIM_FORMAT(message);
	return 0;
}

int
errmsg_internal(const char *fmt,...)
{
	SHIM_FORMAT(message);
	return 0;
}

int
errdetail(const char *fmt,...)
{
	SHIM_FORMAT(detail);
	return 0;
}

int
errdetail_internal(const char *fmt,...)
{
	SHIM_FORMAT(detail);
	return 0;
}

int
errhint(const char *fmt,...)
{
	SHIM_FORMAT(hint);
	return 0;
}

void
errfinish(const char *filename, int lineno, const char *funcname)
{
	building.filename = filename;
	building.lineno = lineno;
	building.funcname = funcname;

	if (building.elevel < ERROR)
		return;
	shim_error = building;
	if (building.elevel > ERROR)
		shim_fail("elevel %d (FATAL or PANIC) raised", building.elevel);
	if (error_jmp == NULL)
		shim_fail("ERROR raised outside shim_try()");
	siglongjmp(*error_jmp, 1);
}

bool
shim_try(void (*fn) (void *arg), void *arg)
{
	sigjmp_buf	jb;

	if (error_jmp != NULL)
		shim_fail("nested shim_try()");
	memset(&shim_error, 0, sizeof(shim_error));
	if (sigsetjmp(jb, 0) != 0)
	{
		error_jmp = NULL;
		return false;
	}
	error_jmp = &jb;
	fn(arg);
	error_jmp = NULL;
	return true;
}

/* ---------------------------------------------------------------------
 * fmgr: values made by the harness are never toasted, but may have a short
 * (1-byte) header, which pg_detoast_datum expands into a palloc'd copy.
 * ---------------------------------------------------------------------
 */

struct varlena *
pg_detoast_datum(struct varlena *datum)
{
	if (VARATT_IS_EXTENDED(datum))
	{
		Size		len;
		struct varlena *copy;

		if (!VARATT_IS_SHORT(datum))
			shim_fail("pg_detoast_datum: external or compressed datum");
		len = VARSIZE_SHORT(datum) - VARHDRSZ_SHORT;
		copy = palloc(len + VARHDRSZ);
		SET_VARSIZE(copy, len + VARHDRSZ);
		memcpy(VARDATA(copy), VARDATA_SHORT(datum), len);
		return copy;
	}
	return datum;
}

/* ---------------------------------------------------------------------
 * Small backend helpers (same results as PostgreSQL 15)
 * ---------------------------------------------------------------------
 */

/* parser/scansup.c: scan.l's {space}, which has no \v in PostgreSQL 15 */
bool
scanner_isspace(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f';
}

/* utils/adt/numutils.c: decimal digits of value, no terminator; the length */
int
pg_ultoa_n(uint32 value, char *a)
{
	char		tmp[10];
	int			n = 0;

	do
	{
		tmp[n++] = (char) ('0' + value % 10);
		value /= 10;
	} while (value != 0);
	for (int i = 0; i < n; i++)
		a[i] = tmp[n - 1 - i];
	return n;
}

/* ---------------------------------------------------------------------
 * lib/stringinfo.c
 * ---------------------------------------------------------------------
 */

void
initStringInfo(StringInfo str)
{
	int			size = 1024;	/* initial default buffer size */

	str->data = (char *) palloc(size);
	str->maxlen = size;
	resetStringInfo(str);
}

void
resetStringInfo(StringInfo str)
{
	str->data[0] = '\0';
	str->len = 0;
	str->cursor = 0;
}

void
enlargeStringInfo(StringInfo str, int needed)
{
	int			newlen;

	if (needed < 0)
		elog(ERROR, "invalid string enlargement request size: %d", needed);
	if (((Size) needed) >= (MaxAllocSize - (Size) str->len))
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("out of memory"),
				 errdetail("Cannot enlarge string buffer containing %d bytes by %d more bytes.",
						   str->len, needed)));

	needed += str->len + 1;		/* total space required now */
	if (needed <= str->maxlen)
		return;

	newlen = 2 * str->maxlen;
	while (needed > newlen)
		newlen = 2 * newlen;
	if (newlen > (int) MaxAllocSize)
		newlen = (int) MaxAllocSize;

	str->data = (char *) repalloc(str->data, newlen);
	str->maxlen = newlen;
}

void
appendBinaryStringInfo(StringInfo str, const char *data, int datalen)
{
	enlargeStringInfo(str, datalen);
	memcpy(str->data + str->len, data, datalen);
	str->len += datalen;
	str->data[str->len] = '\0';
}

void
appendStringInfoChar(StringInfo str, char ch)
{
	if (str->len + 1 >= str->maxlen)
		enlargeStringInfo(str, 1);
	str->data[str->len] = ch;
	str->len++;
	str->data[str->len] = '\0';
}

/* ---------------------------------------------------------------------
 * libpq/pqformat.c
 * ---------------------------------------------------------------------
 */

void
pq_copymsgbytes(StringInfo msg, char *buf, int datalen)
{
	if (datalen < 0 || datalen > (msg->len - msg->cursor))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("insufficient data left in message")));
	memcpy(buf, &msg->data[msg->cursor], datalen);
	msg->cursor += datalen;
}

int
pq_getmsgbyte(StringInfo msg)
{
	if (msg->cursor >= msg->len)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("no data left in message")));
	return (unsigned char) msg->data[msg->cursor++];
}

unsigned int
pq_getmsgint(StringInfo msg, int b)
{
	unsigned int result;
	unsigned char n8;
	uint16		n16;
	uint32		n32;

	switch (b)
	{
		case 1:
			pq_copymsgbytes(msg, (char *) &n8, 1);
			result = n8;
			break;
		case 2:
			pq_copymsgbytes(msg, (char *) &n16, 2);
			result = pg_ntoh16(n16);
			break;
		case 4:
			pq_copymsgbytes(msg, (char *) &n32, 4);
			result = pg_ntoh32(n32);
			break;
		default:
			elog(ERROR, "unsupported integer size %d", b);
			result = 0;			/* keep compiler quiet */
			break;
	}
	return result;
}

int64
pq_getmsgint64(StringInfo msg)
{
	uint64		n64;

	pq_copymsgbytes(msg, (char *) &n64, sizeof(n64));
	return pg_ntoh64(n64);
}

float4
pq_getmsgfloat4(StringInfo msg)
{
	union
	{
		float4		f;
		uint32		i;
	}			swap;

	swap.i = pq_getmsgint(msg, 4);
	return swap.f;
}

float8
pq_getmsgfloat8(StringInfo msg)
{
	union
	{
		float8		f;
		int64		i;
	}			swap;

	swap.i = pq_getmsgint64(msg);
	return swap.f;
}

const char *
pq_getmsgbytes(StringInfo msg, int datalen)
{
	const char *result;

	if (datalen < 0 || datalen > (msg->len - msg->cursor))
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("insufficient data left in message")));
	result = &msg->data[msg->cursor];
	msg->cursor += datalen;
	return result;
}

void
pq_getmsgend(StringInfo msg)
{
	if (msg->cursor != msg->len)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("invalid message format")));
}

void
pq_sendbytes(StringInfo buf, const char *data, int datalen)
{
	/* use variant that maintains a trailing null-byte, out of caution */
	appendBinaryStringInfo(buf, data, datalen);
}

void
pq_sendfloat4(StringInfo buf, float4 f)
{
	union
	{
		float4		f;
		uint32		i;
	}			swap;

	swap.f = f;
	pq_sendint32(buf, swap.i);
}

void
pq_sendfloat8(StringInfo buf, float8 f)
{
	union
	{
		float8		f;
		int64		i;
	}			swap;

	swap.f = f;
	pq_sendint64(buf, swap.i);
}

void
pq_begintypsend(StringInfo buf)
{
	initStringInfo(buf);
	/* Reserve four bytes for the bytea length word */
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
	appendStringInfoCharMacro(buf, '\0');
}

bytea *
pq_endtypsend(StringInfo buf)
{
	bytea	   *result = (bytea *) buf->data;

	/* Insert correct length into bytea length word */
	Assert(buf->len >= VARHDRSZ);
	SET_VARSIZE(result, buf->len);
	return result;
}

/* ---------------------------------------------------------------------
 * Not emulated: used only by the array casts and typmod_in, not fuzzed
 * ---------------------------------------------------------------------
 */

int32 *
ArrayGetIntegerTypmods(ArrayType *arr, int *n)
{
	shim_fail("ArrayGetIntegerTypmods is not emulated");
}

int
ArrayGetNItems(int ndim, const int *dims)
{
	shim_fail("ArrayGetNItems is not emulated");
}

bool
array_contains_nulls(ArrayType *array)
{
	shim_fail("array_contains_nulls is not emulated");
}

ArrayType *
construct_array(Datum *elems, int nelems, Oid elmtype, int elmlen,
				bool elmbyval, char elmalign)
{
	shim_fail("construct_array is not emulated");
}
