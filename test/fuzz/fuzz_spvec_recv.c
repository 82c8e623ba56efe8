/*
 * fuzz_spvec_recv.c - libFuzzer harness for the binary input of dsl.spvec
 *
 * Each input is the payload of one binary-format field, given to
 * spvec_recv(internal, oid, typmod) as a StringInfo (data[len] = '\0', as
 * the server provides it).  Properties checked:
 *
 * - no crash, sanitizer report, leak or failed Assert;
 * - every rejection is a user-facing ERROR (class 22, 54000, or 08P01 for
 *   a short message), never an elog() internal error;
 * - an accepted value is well formed (fz_check_valid); the binary format is
 *   canonical: spvec_send gives back exactly the bytes recv consumed;
 *   the text and binary round trips give identical bytes
 *   (fz_check_roundtrips);
 * - typmods as in fuzz_spvec_in.c, with the dim field of the header as one
 *   of the typmods tried on rejected input.
 *
 * Trailing bytes after a valid value are left unread by spvec_recv; the
 * server then rejects the field ("incorrect binary data format"), which is
 * not spvec_recv's business, so the value is checked all the same.
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

#include "port/pg_bswap.h"
#include "utils/memutils.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	StringInfoData buf;
	int32		typmod = fz_typmod_from_bytes(data, size);
	SpVec	   *v;
	SpVec	   *vt;
	bool		ok;

	if (size > (size_t) MaxAllocSize - 1)
		return 0;
	/* exactly size + 1 bytes, so that ASan sees any read past the end */
	buf.data = malloc(size + 1);
	if (buf.data == NULL)
		return 0;
	memcpy(buf.data, data, size);
	buf.data[size] = '\0';
	buf.len = (int) size;
	buf.maxlen = (int) size + 1;
	buf.cursor = 0;

	if (!fz_recv(&buf, -1, &v))
	{
		ShimError	e0;
		uint32		n32 = 0;
		int32		hdr_dim;

		if (size >= 4)
			memcpy(&n32, data, 4);
		hdr_dim = (int32) pg_ntoh32(n32);
		fz_save_error(&e0);
		ok = fz_recv(&buf, typmod, &vt);
		fz_check_typmod_failure(&e0, typmod, ok, "spvec_recv");
		if (hdr_dim >= 1 && hdr_dim <= SPVEC_MAX_DIM)
		{
			ok = fz_recv(&buf, hdr_dim, &vt);
			fz_check_typmod_failure(&e0, hdr_dim, ok, "spvec_recv, typmod = header dim");
		}
	}
	else
	{
		int			consumed = buf.cursor;
		bytea	   *b;

		fz_check_valid(v, "spvec_recv");

		b = fz_send(v);
		if (VARSIZE(b) - VARHDRSZ != (Size) consumed ||
			memcmp(VARDATA(b), data, consumed) != 0)
			shim_fail("spvec_send(spvec_recv(x)) differs from the %d bytes read", consumed);

		ok = fz_recv(&buf, v->dim, &vt);
		fz_check_typmod_result(v, v->dim, ok, vt, "spvec_recv, typmod = dim");
		if (v->dim < SPVEC_MAX_DIM)
		{
			ok = fz_recv(&buf, v->dim + 1, &vt);
			fz_check_typmod_result(v, v->dim + 1, ok, vt, "spvec_recv, typmod = dim + 1");
		}
		ok = fz_recv(&buf, typmod, &vt);
		fz_check_typmod_result(v, typmod, ok, vt, "spvec_recv, typmod from input");

		fz_check_roundtrips(v);
	}

	shim_reset();
	free(buf.data);
	return 0;
}
