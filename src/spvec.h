/*
 * spvec.h - the sparse vector type dsl.spvec
 *
 * An spvec has a dimension dim (1..SPVEC_MAX_DIM) and nnz non-zero float4
 * entries at distinct indices.  Indices are 0-based in C and on the wire,
 * 1-based in the text format ('{1:0.5,3:-2}/64', as pgvector's sparsevec).
 *
 * On-disk layout (one varlena, 4-byte aligned):
 *
 *		int32	vl_len_				varlena header
 *		int32	dim
 *		int32	nnz
 *		int32	flags				SPVEC_FMT_* in the low bits, rest zero
 *		float4	values[nnz]			in ascending index order
 *		...		index set			encoding chosen by spvec_choose_format()
 *
 * The index set is stored in whichever encoding is smallest for (dim, nnz):
 * nothing at all when every entry is non-zero, a bitmap of ceil(dim / 8)
 * bytes, uint16 indices (dim <= 65536) or int32 indices.  The choice depends
 * only on dim and nnz, zeros are never stored and values are never NaN, so
 * equal vectors always have identical bytes.
 *
 * Only spvec.c looks inside the struct; the rest of the extension uses the
 * functions below.
 */
#ifndef DSL_SPVEC_H
#define DSL_SPVEC_H

#include "postgres.h"

#include "fmgr.h"

/* Largest dimension accepted anywhere (text, binary, typmod, casts) */
#define SPVEC_MAX_DIM	1000000

typedef struct SpVec
{
	int32		vl_len_;		/* varlena header (do not touch directly!) */
	int32		dim;			/* number of dimensions */
	int32		nnz;			/* number of stored (non-zero) entries */
	int32		flags;			/* SPVEC_FMT_* | reserved bits, always zero */
	float4		values[FLEXIBLE_ARRAY_MEMBER];	/* then the index set */
} SpVec;

#define DatumGetSpVecP(x)		((SpVec *) PG_DETOAST_DATUM(x))
#define PG_GETARG_SPVEC_P(n)	DatumGetSpVecP(PG_GETARG_DATUM(n))
#define PG_RETURN_SPVEC_P(x)	PG_RETURN_POINTER(x)

extern int	spvec_dim(const SpVec *v);
extern int	spvec_nnz(const SpVec *v);

/*
 * Build from a dense float array of length dim: zeros dropped; non-finite
 * values raise the usual error (naming the 1-based position)
 */
extern SpVec *spvec_from_dense(const float *x, int dim);

/* out[0..dim-1] = dense values (fills zeros itself) */
extern void spvec_to_dense(const SpVec *v, float *out);

/*
 * Build from sorted, strictly ascending 0-based indices and values (zeros
 * dropped); bad input raises the same errors as binary input
 */
extern SpVec *spvec_from_sparse(int dim, int nnz, const int32 *idx, const float *vals);

/* Values of the stored entries, in ascending index order (nnz of them) */
static inline const float4 *
spvec_values(const SpVec *v)
{
	return v->values;
}

/* Writes the nnz 0-based indices of the stored entries, ascending, to out */
extern void spvec_indices(const SpVec *v, int32 *out);

#endif							/* DSL_SPVEC_H */
