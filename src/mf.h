/*
 * mf.h - matrix factorisation trained with BPR on DSL-sparse embeddings
 */
#ifndef DSL_MF_H
#define DSL_MF_H

#include "dsl_engine.h"
#include "interactions.h"

typedef struct MfState MfState;

/* registers tensors "user" and "item" with the engine */
extern MfState *mf_create(DslEngine *engine, const Interactions *data,
						  int dim, int batch_size, double reg, uint64 seed);

/* bytes of per-batch temporaries and per-row bookkeeping, for the budget */
extern Size mf_work_bytes(const Interactions *data, int dim, int batch_size);

/* one pass over all training pairs; returns the mean BPR + L2 loss */
extern double mf_train_epoch(MfState *s);

extern int64 mf_steps_per_epoch(const Interactions *data, int batch_size);

#endif							/* DSL_MF_H */
