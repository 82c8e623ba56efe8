/*
 * fuzz_common.c - calling the spvec entry points and checking properties
 * shared by the two harnesses
 */
#include "fuzz_common.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fmgr.h"
#include "libpq/pqformat.h"

/* The SQL-callable functions under test (PG_FUNCTION_INFO_V1 in spvec.c) */
extern Datum spvec_in(PG_FUNCTION_ARGS);
extern Datum spvec_out(PG_FUNCTION_ARGS);
extern Datum spvec_recv(PG_FUNCTION_ARGS);
extern Datum spvec_send(PG_FUNCTION_ARGS);

/*
 * The on-disk index set encodings, as documented in spvec.h and numbered in
 * spvec.c.  Recomputed here independently: the encoding is part of the
 * on-disk format, so a change is worth a failing fuzz smoke test.
 */
#define FZ_FMT_INT32	0
#define FZ_FMT_UINT16	1
#define FZ_FMT_BITMAP	2
#define FZ_FMT_FULL		3

/* ---------------------------------------------------------------------
 * Calling the functions
 * ---------------------------------------------------------------------
 */

typedef struct FzCall
{
	Datum		arg;			/* cstring, StringInfo or spvec */
	int32		typmod;
	Datum		result;
	PGFunction	fn;
	int			nargs;
} FzCall;

static void
fz_call(void *a)
{
	FzCall	   *c = (FzCall *) a;
	LOCAL_FCINFO(fcinfo, 3);

	InitFunctionCallInfoData(*fcinfo, NULL, c->nargs, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = c->arg;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = ObjectIdGetDatum(InvalidOid);	/* typioparam */
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = Int32GetDatum(c->typmod);
	fcinfo->args[2].isnull = false;
	c->result = c->fn(fcinfo);
	if (fcinfo->isnull)
		shim_fail("function returned NULL");
	if (DatumGetPointer(c->result) == NULL)
		shim_fail("function returned a NULL pointer");
}

/* An input function's ERROR must be a user-facing one */
static void
fz_check_user_error(const char *what, bool binary)
{
	int			code = shim_error.sqlerrcode;

	if (code == ERRCODE_INTERNAL_ERROR)
		shim_fail("%s: internal error (elog) reached from input", what);
	if (ERRCODE_TO_CATEGORY(code) == ERRCODE_DATA_EXCEPTION ||
		code == ERRCODE_PROGRAM_LIMIT_EXCEEDED)
		return;
	if (binary && code == ERRCODE_PROTOCOL_VIOLATION)
		return;					/* "insufficient data left in message" */
	shim_fail("%s: unexpected SQLSTATE %s", what, shim_sqlstate(code));
}

bool
fz_in(const char *text, int32 typmod, SpVec **out)
{
	FzCall		c = {CStringGetDatum(text), typmod, 0, spvec_in, 3};

	*out = NULL;
	if (!shim_try(fz_call, &c))
	{
		fz_check_user_error("spvec_in", false);
		return false;
	}
	*out = (SpVec *) DatumGetPointer(c.result);
	return true;
}

bool
fz_recv(StringInfo buf, int32 typmod, SpVec **out)
{
	FzCall		c = {PointerGetDatum(buf), typmod, 0, spvec_recv, 3};

	*out = NULL;
	buf->cursor = 0;
	if (!shim_try(fz_call, &c))
	{
		fz_check_user_error("spvec_recv", true);
		return false;
	}
	*out = (SpVec *) DatumGetPointer(c.result);
	return true;
}

char *
fz_out(SpVec *v)
{
	FzCall		c = {PointerGetDatum(v), -1, 0, spvec_out, 1};

	if (!shim_try(fz_call, &c))
		shim_fail("spvec_out failed on a valid spvec");
	return DatumGetCString(c.result);
}

bytea *
fz_send(SpVec *v)
{
	FzCall		c = {PointerGetDatum(v), -1, 0, spvec_send, 1};

	if (!shim_try(fz_call, &c))
		shim_fail("spvec_send failed on a valid spvec");
	return (bytea *) DatumGetPointer(c.result);
}

/* ---------------------------------------------------------------------
 * Properties
 * ---------------------------------------------------------------------
 */

typedef struct FzDecode
{
	const SpVec *v;
	int32	   *idx;
	float	   *dense;
} FzDecode;

static void
fz_call_indices(void *a)
{
	FzDecode   *d = (FzDecode *) a;

	spvec_indices(d->v, d->idx);
}

static void
fz_call_to_dense(void *a)
{
	FzDecode   *d = (FzDecode *) a;

	spvec_to_dense(d->v, d->dense);
}

/* Smallest encoding, ties to the earlier of full, bitmap, uint16, int32 */
static int
fz_expected_format(int dim, int nnz, Size *bytes)
{
	Size		cost[4];
	static const int order[4] = {FZ_FMT_FULL, FZ_FMT_BITMAP, FZ_FMT_UINT16, FZ_FMT_INT32};
	int			best = -1;

	cost[FZ_FMT_FULL] = nnz == dim ? 0 : SIZE_MAX;
	cost[FZ_FMT_BITMAP] = ((Size) dim + 7) / 8;
	cost[FZ_FMT_UINT16] = dim <= 65536 ? (Size) nnz * 2 : SIZE_MAX;
	cost[FZ_FMT_INT32] = (Size) nnz * 4;
	for (int i = 0; i < 4; i++)
		if (best < 0 || cost[order[i]] < cost[best])
			best = order[i];
	*bytes = cost[best];
	return best;
}

void
fz_check_valid(const SpVec *v, const char *what)
{
	int			dim = v->dim;
	int			nnz = v->nnz;
	Size		bytes;
	int			format;
	const char *area;
	int32	   *idx;
	FzDecode	d;

	if (VARATT_IS_EXTENDED(v))
		shim_fail("%s: result has a short or toast header", what);
	if (dim < 1 || dim > SPVEC_MAX_DIM || nnz < 0 || nnz > dim)
		shim_fail("%s: bad shape dim %d nnz %d", what, dim, nnz);
	format = fz_expected_format(dim, nnz, &bytes);
	if (v->flags != format)
		shim_fail("%s: flags %d, expected format %d for dim %d nnz %d",
				  what, v->flags, format, dim, nnz);
	if (VARSIZE(v) != offsetof(SpVec, values) + (Size) nnz * 4 + bytes)
		shim_fail("%s: size %u, expected %zu for dim %d nnz %d", what,
				  (unsigned int) VARSIZE(v),
				  offsetof(SpVec, values) + (Size) nnz * 4 + bytes, dim, nnz);
	for (int i = 0; i < nnz; i++)
		if (!isfinite(v->values[i]) || v->values[i] == 0)
			shim_fail("%s: stored value %d is %g", what, i, v->values[i]);

	/* spvec_indices against an independent decoding of the index set */
	idx = palloc(Max(nnz, 1) * sizeof(int32));
	d.v = v;
	d.idx = idx;
	if (!shim_try(fz_call_indices, &d))
		shim_fail("%s: spvec_indices failed on a fresh value", what);
	area = (const char *) v->values + (Size) nnz * 4;
	if (format == FZ_FMT_BITMAP)
	{
		const uint8 *bm = (const uint8 *) area;
		int			k = 0;

		for (int j = 0; j < ((dim + 7) & ~7); j++)
		{
			if (!(bm[j >> 3] & (1 << (j & 7))))
				continue;
			if (j >= dim)
				shim_fail("%s: bitmap bit %d set, dim %d", what, j, dim);
			if (k >= nnz)
				shim_fail("%s: bitmap has more than nnz %d bits", what, nnz);
			if (idx[k] != j)
				shim_fail("%s: spvec_indices gives %d at %d, the bitmap %d",
						  what, idx[k], k, j);
			k++;
		}
		if (k != nnz)
			shim_fail("%s: bitmap has %d bits, nnz %d", what, k, nnz);
	}
	for (int i = 0; i < nnz; i++)
	{
		int32		expect;

		if (format == FZ_FMT_FULL)
			expect = i;
		else if (format == FZ_FMT_UINT16)
		{
			uint16		x;

			memcpy(&x, area + (Size) i * 2, 2);
			expect = x;
		}
		else if (format == FZ_FMT_INT32)
			memcpy(&expect, area + (Size) i * 4, 4);
		else
			expect = idx[i];	/* checked above */
		if (idx[i] != expect)
			shim_fail("%s: spvec_indices gives %d at %d, the stored set %d",
					  what, idx[i], i, expect);
		if (idx[i] < 0 || idx[i] >= dim || (i > 0 && idx[i] <= idx[i - 1]))
			shim_fail("%s: index %d at %d is out of range or order", what, idx[i], i);
	}

	/*
	 * spvec_to_dense agrees.  Past 65536 dimensions (where the int32
	 * encoding lives) only for one dim in 61: a dense copy is 4 bytes per
	 * dimension, and would halve the speed of the binary harness.
	 */
	if (dim <= 65536 || dim % 61 == 0)
	{
		int			nonzero = 0;

		d.dense = palloc((Size) dim * sizeof(float));
		if (!shim_try(fz_call_to_dense, &d))
			shim_fail("%s: spvec_to_dense failed on a fresh value", what);
		for (int i = 0; i < nnz; i++)
			if (memcmp(&d.dense[idx[i]], &v->values[i], sizeof(float)) != 0)
				shim_fail("%s: spvec_to_dense disagrees at index %d", what, idx[i]);
		for (int j = 0; j < dim; j++)
			nonzero += d.dense[j] != 0;
		if (nonzero != nnz)
			shim_fail("%s: spvec_to_dense has %d non-zeros, nnz %d", what, nonzero, nnz);
		pfree(d.dense);
	}
	pfree(idx);
}

void
fz_check_same(const SpVec *a, const SpVec *b, const char *what)
{
	if (VARSIZE(a) != VARSIZE(b) || memcmp(a, b, VARSIZE(a)) != 0)
		shim_fail("%s: different bytes (sizes %u and %u, dims %d and %d, nnz %d and %d)",
				  what, (unsigned int) VARSIZE(a), (unsigned int) VARSIZE(b),
				  a->dim, b->dim, a->nnz, b->nnz);
}

char *
fz_check_roundtrips(const SpVec *v)
{
	char	   *out = fz_out((SpVec *) v);
	char	   *out2;
	SpVec	   *v2;
	bytea	   *b;
	bytea	   *b2;
	StringInfoData s;

	/* text: canonical characters only, re-parses to the same bytes */
	if (out[0] != '{' || strspn(out, "0123456789{}/:,.e+-") != strlen(out))
		shim_fail("spvec_out gave a non-canonical text \"%s\"", out);
	if (!fz_in(out, -1, &v2))
		shim_fail("spvec_in rejects spvec_out's \"%s\"", out);
	fz_check_same(v, v2, "text round trip");
	out2 = fz_out(v2);
	if (strcmp(out, out2) != 0)
		shim_fail("spvec_out not a fixed point: \"%s\" then \"%s\"", out, out2);
	if (!fz_in(out, v->dim, &v2))
		shim_fail("spvec_in(\"%s\", typmod %d) fails", out, v->dim);
	fz_check_same(v, v2, "text round trip with typmod");

	/* binary: dim, nnz, 0, indices, values; recv gives the same bytes */
	b = fz_send((SpVec *) v);
	if (VARATT_IS_EXTENDED(b) ||
		VARSIZE(b) != VARHDRSZ + 12 + (Size) v->nnz * 8)
		shim_fail("spvec_send: %u bytes for nnz %d", (unsigned int) VARSIZE(b), v->nnz);
	s.len = VARSIZE(b) - VARHDRSZ;
	s.maxlen = s.len + 1;
	s.data = palloc(s.maxlen);
	memcpy(s.data, VARDATA(b), s.len);
	s.data[s.len] = '\0';
	s.cursor = 0;
	if (!fz_recv(&s, -1, &v2))
		shim_fail("spvec_recv rejects spvec_send's output");
	if (s.cursor != s.len)
		shim_fail("spvec_recv read %d of spvec_send's %d bytes", s.cursor, s.len);
	fz_check_same(v, v2, "binary round trip");
	b2 = fz_send(v2);
	if (VARSIZE(b) != VARSIZE(b2) || memcmp(b, b2, VARSIZE(b)) != 0)
		shim_fail("spvec_send not a fixed point");

	return out;
}

int32
fz_typmod_from_bytes(const uint8_t *data, size_t size)
{
	uint32		x = 0;

	for (size_t i = 0; i < size && i < 4; i++)
		x |= (uint32) data[i] << (8 * i);
	return (int32) (1 + x % SPVEC_MAX_DIM);
}

void
fz_save_error(ShimError *dst)
{
	*dst = shim_error;
}

/* Is the last error the typmod mismatch for typmod (and dim, if >= 1)? */
static bool
fz_is_typmod_error(int32 typmod, int dim)
{
	char		expect[64];

	if (shim_error.sqlerrcode != ERRCODE_DATA_EXCEPTION)
		return false;
	if (dim >= 1)
		snprintf(expect, sizeof(expect), "expected %d dimensions, not %d", typmod, dim);
	else
		snprintf(expect, sizeof(expect), "expected %d dimensions, not ", typmod);
	return dim >= 1 ? strcmp(shim_error.message, expect) == 0 :
		strncmp(shim_error.message, expect, strlen(expect)) == 0;
}

void
fz_check_typmod_failure(const ShimError *e0, int32 typmod, bool ok,
						const char *what)
{
	if (ok)
		shim_fail("%s: invalid without typmod ([%s] %s) but valid with typmod %d",
				  what, shim_sqlstate(e0->sqlerrcode), e0->message, typmod);
	if (fz_is_typmod_error(typmod, 0))
		return;
	if (shim_error.sqlerrcode != e0->sqlerrcode ||
		strcmp(shim_error.message, e0->message) != 0 ||
		strcmp(shim_error.detail, e0->detail) != 0)
		shim_fail("%s: typmod %d changed the error from [%s] %s",
				  what, typmod, shim_sqlstate(e0->sqlerrcode), e0->message);
}

void
fz_check_typmod_result(const SpVec *v, int32 typmod, bool ok, const SpVec *vt,
					   const char *what)
{
	if (typmod == v->dim)
	{
		if (!ok)
			shim_fail("%s: dim %d but typmod %d rejects it", what, v->dim, typmod);
		fz_check_same(v, vt, what);
		return;
	}
	if (ok)
		shim_fail("%s: dim %d accepted with typmod %d", what, v->dim, typmod);
	if (!fz_is_typmod_error(typmod, v->dim))
		shim_fail("%s: dim %d with typmod %d: not the typmod error", what, v->dim, typmod);
}
