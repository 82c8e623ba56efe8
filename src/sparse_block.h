/*
 * sparse_block.h - products of a block of a sparse tensor's rows with a
 * batch, over the stored entries only
 *
 * A batch is held transposed: one row of bs floats per column of the
 * tensor (x[c * bs + b], bs a multiple of 16), as MultVAE's output layer
 * keeps h3 and the logits.  For rows [r0, r0 + n) of t:
 *
 *   sparse_block_mul     out[r][b]  = sum over stored (r, c, w): w x[c][b]
 *   sparse_block_mul_t   dx[c][b]  += sum over stored (r, c, w): w g[r][b]
 *   sparse_block_grad    gp[q]      = sum_b g[r][b] x[c][b] for each stored
 *                                     entry q = (r, c), in storage order
 *
 * (out and g are indexed from r0: row r at (r - r0) * bs.)  Their cost
 * follows the stored entries, where densifying the rows for sgemm costs what
 * a dense tensor does.  The kernel is chosen once per process from the CPU,
 * so a machine always sums the same way: plain C; AVX2 with FMA, a row's
 * sums (forward) or its batch values (backward) for 64 batch columns in
 * eight registers; AVX-512F for a batch of exactly 64 (MultVAE's default),
 * the same in four registers, the forward spreading a row's entries over
 * four sets of sums (entry q into set q mod 4, added at the end) so that
 * four FMA chains run at once instead of one.
 */
#ifndef DSL_SPARSE_BLOCK_H
#define DSL_SPARSE_BLOCK_H

#include "postgres.h"

#include "sparse_tensor.h"

/* the kernels, from the most portable */
#define SB_PLAIN	0			/* plain C */
#define SB_AVX2		1			/* AVX2 with FMA */
#define SB_AVX512	2			/* AVX-512F for a batch of 64, else AVX2 */

/* choose the kernel (from the backend, before worker threads use them) */
extern void sparse_block_prepare(void);

/* use a given level (unit checks); false if the CPU lacks it */
extern bool sparse_block_force(int level);

extern void sparse_block_mul(const SparseTensor *t, int64 r0, int n,
							 const float *x, int bs, float *out);
extern void sparse_block_mul_t(const SparseTensor *t, int64 r0, int n,
							   const float *g, int bs, float *dx);
extern void sparse_block_grad(const SparseTensor *t, int64 r0, int n,
							  const float *g, const float *x, int bs, float *gp);

#endif							/* DSL_SPARSE_BLOCK_H */
