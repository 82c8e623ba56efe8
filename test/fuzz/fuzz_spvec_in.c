/*
 * fuzz_spvec_in.c - libFuzzer harness for the text input of dsl.spvec
 *
 * Each input is a C string (cut at its first NUL, as a cstring argument
 * would be) given to spvec_in(cstring, oid, typmod).  Properties checked:
 *
 * - no crash, sanitizer report, leak or failed Assert;
 * - every rejection is a user-facing ERROR (SQLSTATE class 22 or 54000),
 *   never an elog() internal error;
 * - an accepted value is well formed (fz_check_valid) and its text and
 *   binary round trips give identical bytes, the text output being a
 *   fixed point (fz_check_roundtrips);
 * - typmods: with typmod = dim the same bytes, with any other valid typmod
 *   (dim + 1 and one taken from the first input bytes) the "expected N
 *   dimensions" error; an input rejected without typmod is rejected with
 *   one too, with the same error or the typmod error.
 */
#include "fuzz_common.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exactly size + 1 bytes, so that ASan sees any read past the NUL */
	char	   *text = malloc(size + 1);
	int32		typmod = fz_typmod_from_bytes(data, size);
	SpVec	   *v;
	SpVec	   *vt;
	bool		ok;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	if (!fz_in(text, -1, &v))
	{
		ShimError	e0;

		fz_save_error(&e0);
		ok = fz_in(text, typmod, &vt);
		fz_check_typmod_failure(&e0, typmod, ok, "spvec_in");
	}
	else
	{
		fz_check_valid(v, "spvec_in");

		ok = fz_in(text, v->dim, &vt);
		fz_check_typmod_result(v, v->dim, ok, vt, "spvec_in, typmod = dim");
		if (v->dim < SPVEC_MAX_DIM)
		{
			ok = fz_in(text, v->dim + 1, &vt);
			fz_check_typmod_result(v, v->dim + 1, ok, vt, "spvec_in, typmod = dim + 1");
		}
		ok = fz_in(text, typmod, &vt);
		fz_check_typmod_result(v, typmod, ok, vt, "spvec_in, typmod from input");

		fz_check_roundtrips(v);
	}

	shim_reset();
	free(text);
	return 0;
}
