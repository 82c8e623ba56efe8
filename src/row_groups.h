/*
 * row_groups.h - a sparse tensor's rows as masks of groups of 16 columns
 *
 * A row of a SparseTensor stores its active columns in ascending order.  For
 * each group of 16 columns, a 16-bit mask of which are stored says where
 * that group's entries go in a dense vector: with AVX-512F one instruction
 * expands them into a vector of 16 (an axpy into a dense row) or compresses
 * a dense vector's 16 values at them (a gather), where the plain loop
 * handles one entry at a time through its column index (and densifying a
 * row writes each group once, where the loop clears the row first).
 *
 * The masks describe the tensor's pattern at one moment: row_groups_sync
 * rebuilds them when the tensor's layout counter has moved (a round, a warm
 * start).  Without AVX-512F nothing is allocated and the functions run the
 * plain loops; so do rows sparser than a quarter, where the loop is faster.
 * The masked axpy rounds each entry's product and sum once (FMA), the
 * plain loop twice where the build has no FMA: each is deterministic.
 */
#ifndef DSL_ROW_GROUPS_H
#define DSL_ROW_GROUPS_H

#include "postgres.h"

#include "sparse_tensor.h"

typedef struct RowGroups
{
	int			n_rows;
	int			n_groups;		/* ceil(dim / 16) */
	uint64		layout;			/* the tensor's layout they describe */
	uint16	   *mask;			/* n_rows x n_groups, or NULL: plain loops */
} RowGroups;

/* what row_groups_init allocates for an n_rows x dim tensor (at most) */
extern Size row_groups_bytes(int n_rows, int dim);

/* set up for t, in the backend (chooses the kernel; the masks follow at sync) */
extern void row_groups_init(RowGroups *g, const SparseTensor *t);
extern void row_groups_free(RowGroups *g);

/* rebuild the masks if t's pattern changed since (in the backend) */
extern void row_groups_sync(RowGroups *g, const SparseTensor *t);

/* y[c] += a * w for every stored entry (c, w) of row r */
extern void row_groups_axpy(const RowGroups *g, const SparseTensor *t, int r,
							float a, float *y);

/* out = row r as a dense vector of dim floats (zero where not stored) */
extern void row_groups_dense(const RowGroups *g, const SparseTensor *t, int r,
							 float *out);

/* packed[k] = x[c_k] for the row's k-th stored column c_k */
extern void row_groups_gather(const RowGroups *g, const SparseTensor *t, int r,
							  const float *x, float *packed);

#endif							/* DSL_ROW_GROUPS_H */
