/*
 * model_ops.h - what a model type provides to dsl.train()
 *
 * train.c owns the arguments, the DSL engine, validation, early stopping and
 * storage; a model type owns its parameter tensors (registered with the
 * engine), its training step and how serving embeddings derive from its
 * parameters.  Adding a model type means one file with one ModelOps.
 */
#ifndef DSL_MODEL_OPS_H
#define DSL_MODEL_OPS_H

#include "dsl_engine.h"
#include "interactions.h"
#include "model.h"

/* a parameter tensor stored under a part name of its own */
typedef struct StoredTensor
{
	const char *part;			/* dsl.parameters.part, or NULL: not stored */
	bool		item_rows;		/* rows are items (else users) */
} StoredTensor;

/* settings shared by all model types, plus model-specific options */
typedef struct TrainParams
{
	int			dim;
	int			batch_size;
	double		reg;
	uint64		seed;
	/* model-specific (set through options jsonb) */
	int			layers;			/* lightgcn: propagation layers */
	int			growth_batches; /* mf: mini-batches in the regrowth gradient */
} TrainParams;

typedef struct ModelOps
{
	const char *type;			/* model_type in SQL */
	const char *option_keys;	/* model-specific option keys, for messages */
	int			default_interval_epochs;	/* update_interval NULL: this many
											 * epochs' steps between rounds */

	/* set a model-specific option; false if the key is not one of ours */
	bool		(*set_option) (TrainParams *p, const char *key, double value);

	/* bytes of per-step temporaries and bookkeeping, for the memory budget */
	Size		(*work_bytes) (const Interactions *d, const TrainParams *p);

	/* batch_size NULL: pairs per optimizer step for these training pairs */
	int			(*default_batch_size) (const Interactions *d);

	int64		(*steps_per_epoch) (const Interactions *d, const TrainParams *p);

	/* register tensors with the engine and set up training state */
	void	   *(*create) (DslEngine *e, const Interactions *d, const TrainParams *p);

	/* one epoch; returns the mean loss (NaN/Inf when training diverged) */
	double		(*train_epoch) (void *state);

	/*
	 * Serving embeddings (what recommend ranks with) computed from the given
	 * parameter tensors, which are the live ones or a best-epoch snapshot in
	 * the engine's registration order.  The sources stay valid until the
	 * next call or the end of training.
	 */
	void		(*serving) (void *state, SparseTensor *const *tensors,
							EmbeddingSource *users, EmbeddingSource *items);

	/*
	 * How the tensors themselves are stored, in registration order, or NULL
	 * when the serving rows ('user'/'item') already are the parameters (MF).
	 */
	const StoredTensor *tensor_parts;
} ModelOps;

extern const ModelOps mf_ops;

#endif							/* DSL_MODEL_OPS_H */
