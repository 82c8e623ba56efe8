/*
 * dsl_rec.h - module-wide settings
 */
#ifndef DSL_REC_H
#define DSL_REC_H

/* dsl_rec.threads: worker threads for training, evaluation and BLAS */
extern int	dsl_threads;

/* dsl_rec.progress: a NOTICE per training epoch */
extern bool dsl_progress;

/* set OpenBLAS's thread count from dsl_rec.threads before BLAS calls */
extern void dsl_blas_prepare(void);

#endif							/* DSL_REC_H */
