/*
 * lightgcn.h - LightGCN trained with BPR on DSL-sparse ego embeddings
 *
 * The model is exposed as lightgcn_ops (model_ops.h); nothing else is public.
 */
#ifndef DSL_LIGHTGCN_H
#define DSL_LIGHTGCN_H

#include "model_ops.h"

extern const ModelOps lightgcn_ops;

#endif							/* DSL_LIGHTGCN_H */
