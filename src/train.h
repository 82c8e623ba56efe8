/*
 * train.h - what the parts of dsl.train() share
 *
 * dsl.train() is three jobs in three files:
 *
 *   train_args.c   its arguments and options: parsing, validation with
 *                  errors naming the bad value, and the hyperparameters JSON
 *                  that records what was used;
 *   train.c        the training itself: budget, epochs, validation, the
 *                  stopping rule and the refit;
 *   train_store.c  the model's name (lock, replace rules) and storage in
 *                  dsl.models, dsl.parameters and dsl.seen_items.
 */
#ifndef DSL_TRAIN_H
#define DSL_TRAIN_H

#include "fmgr.h"
#include "utils/jsonb.h"

#include "dsl_engine.h"
#include "interactions.h"
#include "model_ops.h"

/* dsl.train's arguments and options, validated, and what training decided */
typedef struct TrainArgs
{
	char	   *name;
	Oid			source;
	char	   *user_col;
	char	   *item_col;
	char	   *model_type;
	int			dim;
	double		density;
	int			epochs;			/* 0: until validation stops improving */
	int			batch_size;		/* 0 until the model type chose one */
	double		lr;
	double		reg;
	double		update_ratio;
	int64		update_interval;	/* 0: the model type's default */
	char	   *growth;
	char	   *prune;
	char	   *schedule;
	char	   *sparsity;
	int64		seed;
	bool		replace;
	Jsonb	   *options;
	Oid			validation;
	int			eval_every;		/* 0: every epoch, or at schedule ends */
	int			patience;
	int			k;
	/* from options */
	double		init_std;
	double		lr_min;
	double		beta1;
	double		beta2;
	double		eps;
	double		update_ratio_min;
	int			max_epochs;		/* epochs => NULL: at most this many */
	double		max_seconds;	/* epochs => NULL: and at most this long */
	double		holdout;		/* epochs => NULL without validation: the
								 * share of each user's pairs held out */
	int			holdout_users;	/* ... from at most this many users */
	bool		refit;			/* ... then train again on every pair */
	/* what training decided, for the hyperparameters JSON */
	int			refit_epochs;	/* what the refit ran: the chosen epochs */
	int64		held_pairs;		/* what the hold-out took: pairs, users */
	int			held_users;
	int64		interval;		/* optimizer steps between DSL rounds */
	int64		total_steps;	/* the stored model's schedule length */
	/* the model type */
	const ModelOps *ops;
	void	   *model_opts;		/* its options struct */
	TrainParams params;			/* what it sees */
} TrainArgs;

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

/* train_args.c */
extern void dsl_train_parse_args(FunctionCallInfo fcinfo, TrainArgs *a);
extern char *dsl_train_hyperparams_json(const TrainArgs *a);

/* train_store.c */
extern int64 dsl_train_claim_name(const TrainArgs *a, Oid *owner);
extern void dsl_train_store(const TrainArgs *a, int64 old_id, Oid old_owner,
							const Interactions *d, void *state,
							SparseTensor *const *tensors, int n_tensors,
							const TrainOutcome *o);

#endif							/* DSL_TRAIN_H */
