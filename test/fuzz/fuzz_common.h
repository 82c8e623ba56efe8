/*
 * fuzz_common.h - calling the spvec entry points and checking properties
 * shared by the two harnesses (fuzz_spvec_in.c, fuzz_spvec_recv.c)
 */
#ifndef DSL_FUZZ_COMMON_H
#define DSL_FUZZ_COMMON_H

#include "shim.h"

#include "lib/stringinfo.h"

#include "spvec.h"

/*
 * spvec_in(text, typmod) and spvec_recv(buf, typmod): true and *out on
 * success, false on ERROR (described by shim_error).  An ERROR that is not
 * a user-facing one (an elog(), SQLSTATE XX000, or an unexpected class)
 * aborts: bad input must be rejected by the input checks, not by an
 * internal consistency check.
 */
extern bool fz_in(const char *text, int32 typmod, SpVec **out);
extern bool fz_recv(StringInfo buf, int32 typmod, SpVec **out);

/* spvec_out / spvec_send of a valid spvec: must not fail */
extern char *fz_out(SpVec *v);
extern bytea *fz_send(SpVec *v);

/*
 * Checks that a value returned by an input function is well formed: shape,
 * canonical encoding of the index set (recomputed independently), indices
 * ascending and in range, values finite and non-zero, and that
 * spvec_indices / spvec_to_dense decode it consistently.
 */
extern void fz_check_valid(const SpVec *v, const char *what);

/* Aborts unless a and b have identical bytes */
extern void fz_check_same(const SpVec *a, const SpVec *b, const char *what);

/*
 * For a valid v: out -> in gives identical bytes and out is a fixed point;
 * send -> recv gives identical bytes and consumes the whole message, and
 * send(recv(send(v))) == send(v).  Returns the text output.
 */
extern char *fz_check_roundtrips(const SpVec *v);

/* First up to 4 bytes, little-endian, as a valid typmod 1..SPVEC_MAX_DIM */
extern int32 fz_typmod_from_bytes(const uint8_t *data, size_t size);

/* Copy of the last error, to compare two failures */
extern void fz_save_error(ShimError *dst);

/*
 * After input failed without typmod with error e0, the same input with
 * typmod t (result ok, error in shim_error) must also fail, either with the
 * same error or with the typmod mismatch error (checked in between).
 */
extern void fz_check_typmod_failure(const ShimError *e0, int32 typmod,
									bool ok, const char *what);

/*
 * After input succeeded without typmod giving v (typmod t's result is
 * ok/vt): ok iff t == dim, and then identical bytes; else the typmod error.
 */
extern void fz_check_typmod_result(const SpVec *v, int32 typmod, bool ok,
								   const SpVec *vt, const char *what);

#endif							/* DSL_FUZZ_COMMON_H */
