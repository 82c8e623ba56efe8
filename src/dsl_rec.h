/*
 * dsl_rec.h - module-wide settings
 */
#ifndef DSL_REC_H
#define DSL_REC_H

#include <stdbool.h>

/* dsl_rec.threads: worker threads for training, evaluation and BLAS */
extern int	dsl_threads;

/* dsl_rec.progress: a NOTICE per training epoch */
extern bool dsl_progress;

/*
 * dsl_rec.debug_epoch_seconds: > 0 replaces the wall clock that max_seconds
 * bounds in dsl.train() by one that advances this much per epoch on the
 * training pairs (train.c), so that tests can reproduce its decisions
 */
extern double dsl_debug_epoch_seconds;
extern double dsl_debug_reg_trial_margin;	/* train.c's reg trials */

/*
 * dsl_rec.debug_bf16_products: MultVAE's training multiplies its output
 * layer in bfloat16 where the CPU has AVX512_BF16 (dense_block.h); off keeps
 * float32, for tests and comparisons
 */
extern bool dsl_debug_bf16_products;

/*
 * dsl_rec.debug_serving_kernel: which float32 kernel scores sparse served
 * rows (serve_rows.c): the best the CPU has, or a named one, for tests
 */
typedef enum DslServingKernel
{
	DSL_KERNEL_AUTO,
	DSL_KERNEL_SCALAR,
	DSL_KERNEL_AVX2,
	DSL_KERNEL_AVX512
} DslServingKernel;
extern int	dsl_serving_kernel;

/*
 * dsl_rec.debug_serving_prescore: whether a served table gets an int8 copy
 * for the first pass of its scans (serve_q8.h), when it is loaded: by its
 * size, always or never (for tests; results are the same)
 */
typedef enum DslServingPrescore
{
	DSL_PRESCORE_AUTO,
	DSL_PRESCORE_ON,
	DSL_PRESCORE_OFF
} DslServingPrescore;
extern int	dsl_serving_prescore;

/* set OpenBLAS's thread count before BLAS calls (big: dsl_rec.threads, else 1) */
extern void dsl_blas_prepare(bool big);

#endif							/* DSL_REC_H */
