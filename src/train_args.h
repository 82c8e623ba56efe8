/*
 * train_args.h - dsl.train()'s arguments and options, once validated
 *
 * dsl.train() is three jobs in three files: train_args.c (arguments and
 * options: parsing, validation with errors naming the bad value, and the
 * hyperparameters JSON that records what was used), train.c (the training:
 * budget, epochs, validation, the stopping rule, the refit) and
 * train_store.c (the model's name lock and its storage).
 */
#ifndef DSL_TRAIN_ARGS_H
#define DSL_TRAIN_ARGS_H

#include "fmgr.h"
#include "utils/jsonb.h"

#include "model_ops.h"

/*
 * update_ratio NULL in a continuation (warm_start): zeta_0 of its own
 * cosine schedule, a tenth of a fresh training's 0.5, so that the new rows'
 * masks move but the stored model's settle (docs/lifecycle.md).
 */
#define DSL_CONTINUE_RATIO 0.05

/*
 * lr NULL in a continuation: the model type's default lr times this.  The
 * stored model has converged at the end of its own schedule; Adam's moments
 * start at zero, so its first steps move every touched weight by about lr:
 * a fresh training's lr undoes more than the new pairs teach (measured on
 * Gowalla, docs/lifecycle.md).
 */
#define DSL_CONTINUE_LR_SCALE 0.1

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
	bool		batch_default;	/* batch_size NULL: chosen per pairs trained on */
	double		lr;
	double		reg;
	bool		reg_default;	/* reg NULL: the model type chooses */
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
	char	   *warm_start;		/* the stored model to continue, or NULL */
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
	bool		keep_missing;	/* warm_start: keep the rows of users and
								 * items no longer in the source */
	/* what training decided, for the hyperparameters JSON */
	int			refit_epochs;	/* what the refit ran: the chosen epochs */
	int			n_reg_tried;	/* reg NULL: how many of ModelOps.reg_choices
								 * were tried (choose_reg) */
	double		reg_recall[DSL_MAX_REG_CHOICES];	/* ... their validation recall */
	int			trial_epochs;	/* epochs run before the kept model's first:
								 * the reg trials that did not go on */
	int			reg_halved_at;	/* > 0: reg was halved after this result
								 * row (train.c, halve_reg) */
	double		reg_before;		/* ... and was this before */
	int64		held_pairs;		/* what the hold-out took: pairs, users */
	int			held_users;
	int64		total_steps;	/* the stored model's schedule length */
	int64		continued_from; /* warm_start: the model_id continued */
	int64		new_pairs;		/* ... pairs of the source it had not seen */
	int			base_epochs;	/* ... the schedule length of the last
								 * training from scratch in its line */
	/* the model type */
	const ModelOps *ops;
	void	   *model_opts;		/* its options struct */
	void	   *model_opts_given;	/* ... as parsed, before defaults that
									 * depend on the pairs (finish_options) */
	TrainParams params;			/* what it sees */
} TrainArgs;

/*
 * Read and validate dsl.train's arguments, then its options (the common
 * keys, then the model type's own).
 */
extern void dsl_train_parse_args(FunctionCallInfo fcinfo, TrainArgs *a);

/* the hyperparameters JSON stored with the model */
extern char *dsl_train_hyperparams_json(const TrainArgs *a);

#endif							/* DSL_TRAIN_ARGS_H */
