/*
 * mf.h - matrix factorisation trained with BPR on DSL-sparse embeddings
 *
 * The model is exposed as mf_ops (model_ops.h); nothing else is public.
 */
#ifndef DSL_MF_H
#define DSL_MF_H

#include "model_ops.h"

#endif							/* DSL_MF_H */
