/*
 * train_store.h - dsl.train()'s model name lock and storage
 */
#ifndef DSL_TRAIN_STORE_H
#define DSL_TRAIN_STORE_H

#include "dsl_engine.h"
#include "interactions.h"
#include "train_args.h"

/* how a training went: the columns of dsl.models that are not arguments */
typedef struct TrainOutcome
{
	int			epochs_run;
	int			best_epoch;		/* 0 without validation */
	double		final_loss;
	double		seconds;
	int64		active;
	int64		total;
	Size		peak_bytes;		/* dsl_mem_peak() of the training */
} TrainOutcome;

/*
 * Take the name lock and look at an existing model of that name; returns
 * its model_id (0 if none) and its owner.
 */
extern int64 dsl_train_claim_name(const TrainArgs *a, Oid *owner);

/*
 * store the trained model, replacing the model old_id (0: none); distributed:
 * the model tables are Citus reference tables (model_tables_write_begin)
 */
extern void dsl_train_store(const TrainArgs *a, int64 old_id, Oid old_owner,
							const Interactions *d, void *state,
							SparseTensor *const *tensors, int n_tensors,
							const TrainOutcome *o, bool distributed);

#endif							/* DSL_TRAIN_STORE_H */
