/*
 * warm_start.h - dsl.train(warm_start => model): continue a stored model
 */
#ifndef DSL_WARM_START_H
#define DSL_WARM_START_H

#include "dsl_engine.h"
#include "interactions.h"
#include "train_args.h"

/* the stored model a training continues, and what it found */
typedef struct WarmStart
{
	char	   *name;
	int64		model_id;
	int			base_epochs;	/* the schedule length of the last training
								 * that did not continue another */
	int64		new_pairs;		/* source pairs the stored model did not
								 * train on */
	double		reg;			/* the reg it trained with, or -1 */
	int			stored_users;	/* its users and items */
	int			stored_items;
	int			new_users;		/* users of the source it does not have */
	int			gone_users;		/* its users no longer in the source */
	int			new_items;		/* the same for items */
	int			gone_items;
	int			kept_users;		/* keep_missing: gone ones given rows */
	int			kept_items;
} WarmStart;

/*
 * The model_type, dim, density and hyperparams of the stored model `name`,
 * as the caller sees it, for the arguments and options left out; an error
 * if there is none.
 */
extern void dsl_warm_start_peek(const char *name, char **type, int *dim, double *density,
								Jsonb **hyperparams);

/*
 * Find and lock the stored model named a->warm_start (the caller must own
 * it), check that it can be continued with the arguments in a, and read
 * its schedule length.  Before any pairs are read.
 */
extern WarmStart *dsl_warm_start_open(const TrainArgs *a);

/* count the pairs, users and items of d the stored model did not have */
extern void dsl_warm_start_compare(WarmStart *ws, const Interactions *d);

/*
 * keep_missing: add the stored model's users and items that d does not
 * have to d, with no pairs, so that their rows are loaded and trained on
 * (items as negatives) within the grown budgets.  After
 * dsl_warm_start_compare.
 */
extern void dsl_warm_start_keep_missing(WarmStart *ws, Interactions *d);

/*
 * Bytes a warm start holds at most on top of the fresh tensors (after
 * dsl_warm_start_compare).
 */
extern Size dsl_warm_start_bytes(const WarmStart *ws, const TensorShape *shapes,
								 const int64 *budgets, int n_tensors);

/*
 * Overwrite the rows of the engine's freshly created tensors with the
 * stored rows of the same users and items, keeping each tensor's budget
 * exact.  Right after the model type's create.
 */
extern void dsl_warm_start_load(WarmStart *ws, DslEngine *e, const ModelOps *ops,
								const Interactions *d, uint64 seed);

#endif							/* DSL_WARM_START_H */
