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

/* set OpenBLAS's thread count before BLAS calls (big: dsl_rec.threads, else 1) */
extern void dsl_blas_prepare(bool big);

#endif							/* DSL_REC_H */
