/*
 * dense_block.h - the small dense products of MultVAE's output layer
 *
 *   dense_block_gemm   c (+)= a b,  a m x k, b k x n, c m x n
 *
 * b and c are row-major (row strides ldb, ldc); a is given by its two
 * strides, a(i, p) = a[i * a_rs + p * a_ks], one of them 1, so that the
 * transposed block of a row-major matrix is passed as it lies.  With
 * accumulate the product is added to c, else c is overwritten.
 *
 * The output layer multiplies 64 rows of W4 at a time with a batch's
 * activations, three ways a step: m, n and k are 64 or the hidden width,
 * which OpenBLAS's kernels run well below their peak.  On a CPU with
 * AVX-512F (chosen at run time, never at build time) a register-tiled kernel
 * computes them: six rows by 64 columns of c in 24 vector registers, one
 * broadcast of a and four loads of b's row per p, b read where it lies (no
 * packing).  Elsewhere cblas_sgemm does.  Either way a machine always sums
 * the same way, whatever the number of threads.
 */
#ifndef DSL_DENSE_BLOCK_H
#define DSL_DENSE_BLOCK_H

#include "postgres.h"

/* choose the kernel (from the backend, before worker threads use it) */
extern void dense_block_prepare(void);

/* whether the AVX-512 kernel is the one chosen (for tests and docs) */
extern bool dense_block_avx512(void);

/* force the cblas path (true) or the CPU's choice (false): unit checks */
extern void dense_block_force_blas(bool on);

extern void dense_block_gemm(int m, int n, int k,
							 const float *a, Size a_rs, Size a_ks,
							 const float *b, Size ldb,
							 float *c, Size ldc, bool accumulate);

#endif							/* DSL_DENSE_BLOCK_H */
