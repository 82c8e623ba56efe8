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

/*
 * The same products with bfloat16 operands, summed in float32, on a CPU
 * with AVX512_BF16 and AVX512BW (vdpbf16ps: twice the multiply-adds of a
 * float32 FMA per instruction).  An operand is packed into 32-bit words, each holding two
 * values that are adjacent in the sum (the first in the low half, rounded
 * to nearest even; an odd count ends with a zero):
 *
 *   dense_block_pack_rows   out(i, q) = (x(i, 2q), x(i, 2q + 1)):
 *                           the m rows of x paired along a row (ldo words)
 *   dense_block_pack_pairs  out(q, j) = (x(2q, j), x(2q + 1, j)):
 *                           the k rows of x paired down a column (ldo words)
 *
 *   dense_block_gemm_bf16   c (+)= a b over kp pairs of terms: a(i, q) is
 *                           the word a[i * a_rs + q * a_ks], b(q, j) the
 *                           word b[q * ldb + j] (pairs packed down b's
 *                           columns)
 *
 * Only when dense_block_bf16() is true; results differ from the float32
 * products by the operands' rounding (8 significant bits).
 */
extern bool dense_block_bf16(void);

/* keep the float32 products even where bfloat16 is there (tests, A/B) */
extern void dense_block_force_float32(bool on);

extern void dense_block_pack_rows(int m, int k, const float *x, Size ldx,
								  uint32 *out, Size ldo);
extern void dense_block_pack_pairs(int k, int n, const float *x, Size ldx,
								   uint32 *out, Size ldo);
extern void dense_block_gemm_bf16(int m, int n, int kp,
								  const uint32 *a, Size a_rs, Size a_ks,
								  const uint32 *b, Size ldb,
								  float *c, Size ldc, bool accumulate);

#endif							/* DSL_DENSE_BLOCK_H */
