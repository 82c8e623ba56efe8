/*
 * dsl_engine.h - the model-agnostic Dynamic Sparse Learning engine
 *
 * A model registers its parameter tensors; the engine owns their masks and
 * optimizer state, counts optimizer steps, and every update_interval steps
 * prunes the smallest-magnitude active weights of each tensor and regrows as
 * many inactive ones, with the cosine-decayed update ratio.  Models only
 * compute gradients (dense per touched row) and call the engine.
 */
#ifndef DSL_ENGINE_H
#define DSL_ENGINE_H

#include "sparse_tensor.h"

#define DSL_MAX_TENSORS 16

/* the shape of a tensor a model will register: rows x cols weights */
typedef struct TensorShape
{
	int			rows;
	int			cols;
} TensorShape;

typedef enum DslSchedule
{
	SCHEDULE_COSINE,
	SCHEDULE_CONSTANT
} DslSchedule;

typedef struct DslConfig
{
	double		density;		/* (0, 1] */
	bool		dynamic;		/* false: static random mask */
	GrowthMode	growth;
	DslSchedule schedule;
	double		update_ratio;	/* zeta_0 */
	double		update_ratio_min;	/* zeta at the end of a cosine schedule */
	int64		update_interval;	/* Delta T, in optimizer steps */
	int64		total_steps;	/* T, for the cosine schedule */
	uint64		seed;
	float		init_std;
	AdamConfig	adam;			/* adam.lr: the learning rate at the start */
	double		lr_min;			/* lr at the schedule's end (cosine, like zeta) */
} DslConfig;

typedef struct DslEngine
{
	DslConfig	cfg;
	int			n_planned;		/* tensors the budgets below are for */
	int64		budgets[DSL_MAX_TENSORS];	/* active entries of each */
	int			n_tensors;
	SparseTensor *tensors[DSL_MAX_TENSORS];
	int64		step;			/* optimizer steps taken */
	int64		rounds;			/* prune/regrow rounds done */
	int64		pruned;			/* entries pruned in all rounds so far */
	AdamConfig	adam;			/* Adam of the current step (its lr) */
	float		bc1;			/* Adam bias corrections of the current step */
	float		bc2;
	WorkerPool *pool;			/* dsl_rec.threads threads: the rounds' scans
								 * and the models' parallel phases */
} DslEngine;

/*
 * How a model's budget, round(density x all its weights), is spread over
 * its tensors (shapes in registration order): the smallest tensors are
 * dense as long as together they hold at most 1/DSL_DENSE_SHARE of the
 * budget, and the others share the rest at one density, each
 * round(that density x its weights) entries (at least one).  A layer's
 * weight enters every example's score, an embedding weight only its own
 * row's: the few weights of a model's layers and biases are worth more than
 * the same number of embedding entries (docs/training.md, "How the budget
 * is spread").  At density 1 every tensor is dense.
 */
#define DSL_DENSE_SHARE 16
extern void dsl_tensor_budgets(const TensorShape *shapes, int n_tensors,
							   double density, int64 *budgets);

/*
 * Set up an engine and its worker pool in the current memory context (the
 * pool's threads are joined when that context goes away; tensors and pool
 * are freed with it, there is no separate free).  budgets[i] is the number
 * of active entries of the i-th tensor the model will register (usually
 * from dsl_tensor_budgets).
 */
extern void dsl_engine_init(DslEngine *e, const DslConfig *cfg,
							const int64 *budgets, int n_tensors);
extern SparseTensor *dsl_engine_add_tensor(DslEngine *e, const char *name,
										   int n_rows, int dim);

/* begin an optimizer step: advances the step counter and bias corrections */
extern void dsl_engine_begin_step(DslEngine *e);

/* the update ratio zeta_t at step t */
extern double dsl_engine_ratio(const DslEngine *e, int64 t);

/* the learning rate of step t (t >= 1): cosine from adam.lr to lr_min */
extern double dsl_engine_lr(const DslEngine *e, int64 t);

/*
 * Redraw the schedules of zeta and lr over total_steps steps: from the next
 * step on they are where schedules of that length would be.
 */
extern void dsl_engine_set_horizon(DslEngine *e, int64 total_steps);

/* true when a prune/regrow round is due after the current step */
extern bool dsl_engine_update_due(const DslEngine *e);

/*
 * Optimizer steps from the current one to the next prune/regrow round (0:
 * a round is due after this step), or -1 when no round is coming.
 */
extern int64 dsl_engine_steps_to_update(const DslEngine *e);

/*
 * Whether the current step is one of the `window` steps before a round whose
 * gradients a model sums as the round's regrowth signal (gradient growth
 * only; a window of 1 is the round step's gradient alone: never)
 */
extern bool dsl_engine_in_growth_window(const DslEngine *e, int window);

/* run a prune/regrow round; grads[i] belongs to tensors[i] (may be NULL) */
extern void dsl_engine_update(DslEngine *e, const TensorGrad *grads);

extern int64 dsl_engine_active(const DslEngine *e);
extern int64 dsl_engine_total(const DslEngine *e);

/*
 * Before anything is allocated: the most memory an engine with config cfg
 * will hold for n_tensors tensors of the given shapes and budgets (those
 * dsl_engine_init will get): their weights, Adam moments and row/column
 * indices, the worker pool, and the temporaries of creating the tensors and
 * of the largest prune/regrow round, at dsl_rec.threads threads.  Model-side arrays (a model's own buffers, the
 * gradients it hands to a round, last_step) are not included.
 */
extern Size dsl_engine_estimate_bytes(const DslConfig *cfg,
									  const TensorShape *shapes,
									  const int64 *budgets, int n_tensors);

/* the bytes of a best-epoch snapshot of those tensors (weights only) */
extern Size dsl_engine_estimate_snapshot_bytes(const TensorShape *shapes,
											   const int64 *budgets, int n_tensors);

#endif							/* DSL_ENGINE_H */
