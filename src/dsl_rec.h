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

/* set OpenBLAS's thread count before BLAS calls (big: dsl_rec.threads, else 1) */
extern void dsl_blas_prepare(bool big);

#endif							/* DSL_REC_H */
