/*
 * train.c - dsl.train(): train a model with DSL, one result row per epoch
 *
 * The arguments are checked (train_args.c) and the name claimed
 * (train_store.c) before anything is read.  Then the pairs are read, the
 * model budgeted against maintenance_work_mem and trained epoch by epoch,
 * validated when asked or, with epochs => NULL, on a hold-out of its own
 * until the stopping rule ends it; then, by default, a fresh model is
 * trained on every pair over the length the rule chose (the refit).  Only
 * a model that trained to the end is stored (train_store.c).
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "tcop/utility.h"
#include "utils/memutils.h"

#include "dsl_engine.h"
#include "dsl_rec.h"
#include "model_access.h"
#include "interactions.h"
#include "mem_peak.h"
#include "model.h"
#include "model_ops.h"
#include "train_args.h"
#include "train_store.h"
#include "warm_start.h"

/*
 * epochs => NULL: the schedules of lr and zeta first span DSL_AUTO_HORIZON
 * epochs (at most max_epochs); at the end of a schedule training goes on
 * over one twice as long while the best validation recall improved by more
 * than DSL_AUTO_MIN_GAIN (relative) on the previous schedule's
 * (docs/training.md, "Stopping rule").
 */
#define DSL_AUTO_MIN_GAIN 0.02
#define DSL_AUTO_HORIZON 30

/*
 * When the doubled schedule would end past max_seconds, the longest
 * schedule that ends within it is begun instead, if it adds at least a
 * quarter of the epochs run; it is planned on this share of the time left
 * (the epoch time is the first phase's mean, and the schedule ends with a
 * validation).
 */
#define DSL_AUTO_FIT_SHARE 0.9

/*
 * A sparse model (density < 1) is not stopped by that rule before a
 * schedule of this many epochs, or of its model type's own minimum
 * (ModelOps.sparse_min_epochs): its early schedules can gain little right
 * before a large gain, as exploration gets longer (measured: Last.fm,
 * d = 0.1, docs/training.md).  A dense model has no minimum unless its
 * model type sets one (ModelOps.dense_min_epochs).
 */
#define DSL_AUTO_SPARSE_MIN_EPOCHS 240

/* the minimum above for a's model type and density (0: none) */
static inline int
min_epochs(const TrainArgs *a)
{
	if (a->density >= 1.0)
		return a->ops->dense_min_epochs;
	return a->ops->sparse_min_epochs > 0 ? a->ops->sparse_min_epochs : DSL_AUTO_SPARSE_MIN_EPOCHS;
}

/* why min_epochs(a) kept a run going, for NOTICEs */
static char *
min_epochs_reason(const TrainArgs *a)
{
	if (a->density >= 1.0)
		return psprintf("a dense %s model trains at least %d epochs", a->ops->type, min_epochs(a));
	return psprintf("a sparse model trains at least %d epochs", min_epochs(a));
}

/* one dsl.train() call */
typedef struct Training
{
	TrainArgs	a;
	ReturnSetInfo *rsinfo;
	instr_time	t_start;
	double		sim_epoch_secs; /* > 0: the clock max_seconds bounds is
								 * simulated (dsl_rec.debug_epoch_seconds) */
	double		sim_clock;		/* its seconds since the call began */
	const Interactions *phase_pairs;	/* the pairs the model trains on */
	int			row0;			/* epochs the call ran before this model's
								 * first: its epoch e is result row row0 + e */
	Size		limit;			/* maintenance_work_mem in bytes */
	MemoryContext train_ctx;	/* everything of the call */
	MemoryContext phase_ctx;	/* the model of this phase */
	Interactions *data;			/* every pair of the source: stored as seen */
	Interactions *train;		/* the pairs trained on */
	MappedPairs *val;			/* validation pairs, or NULL */
	WarmStart  *ws;				/* the stored model continued, or NULL */
	DslConfig	cfg;
	DslEngine	engine;
	void	   *model;
	int			max_epochs;
	int64		horizon;		/* epochs of the current schedule */
	double		prev_best;		/* best validation recall of the schedules before */
	double		stop_gain;		/* the last schedule's gain, when it stopped */
	bool		stop_paid;		/* stopped by the time limit after a gain */
	bool		time_stopped;	/* the first phase hit max_seconds mid-way
								 * (its NOTICE says there is no refit) */
	double		stop_end;		/* > 0: stopped because the next schedule
								 * would end this many seconds after the
								 * call began, past max_seconds */
	int64		stop_next;		/* that schedule's epochs */
	double		epoch_secs;		/* training seconds of the first phase */
	double		best_recall;
	double		last_recall;	/* of the last validation */
	int			since_best;		/* evaluations since the best */
	SparseTensor *best[DSL_MAX_TENSORS];	/* weights of the best epoch */
	TrainOutcome out;
} Training;

static double
elapsed_since(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_DOUBLE(now);
}

/*
 * Seconds since the call began, on the clock that max_seconds bounds: the
 * wall clock, or with dsl_rec.debug_epoch_seconds one on which only epochs
 * take time.
 */
static double
train_clock(const Training *t)
{
	return t->sim_epoch_secs > 0 ? t->sim_clock : elapsed_since(t->t_start);
}

/*
 * One row of dsl.train's result: the epoch just trained, with its pruned and
 * regrown counts and, when it was evaluated, the validation metrics.
 */
static void
emit_epoch_row(ReturnSetInfo *rsinfo, const DslEngine *engine, double density,
			   int epoch, double loss, int64 pruned, double secs,
			   const EvalMetrics *m)
{
	Datum		values[10];
	bool		nulls[10] = {0};

	values[0] = Int32GetDatum(epoch);
	values[1] = Float8GetDatum(loss);
	values[2] = Int64GetDatum(dsl_engine_active(engine));
	values[3] = Int64GetDatum(dsl_engine_total(engine));
	values[4] = Float8GetDatum(engine->cfg.dynamic && density < 1 ?
							   dsl_engine_ratio(engine, engine->step) : 0.0);
	values[5] = Int64GetDatum(pruned);
	values[6] = Int64GetDatum(pruned);
	values[7] = Float8GetDatum(secs);
	values[8] = Float8GetDatum(m ? m->recall : 0);
	values[9] = Float8GetDatum(m ? m->ndcg : 0);
	nulls[8] = nulls[9] = (m == NULL);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* a NaN or infinite epoch loss ends the training with an error */
static void
check_diverged(const TrainArgs *a, int epoch, double loss)
{
	if (isnan(loss) || isinf(loss))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("training of model \"%s\" diverged at epoch %d: the loss is %s",
						a->name, epoch, isnan(loss) ? "NaN" : "infinite"),
				 errhint("Lower lr (now %g) or raise reg; nothing was stored.", a->lr)));
}

/*
 * A continuation (warm_start): what is new in the source, and, with epochs
 * => NULL, its length: the stored line's schedule length times the share of
 * pairs that are new, at least 2 epochs and at most that length, so that
 * its cost follows the growth (docs/lifecycle.md).
 */
static void
compare_with_continued(Training *t)
{
	TrainArgs  *a = &t->a;
	WarmStart  *ws = t->ws;

	dsl_warm_start_compare(ws, t->data);
	a->continued_from = ws->model_id;
	a->new_pairs = ws->new_pairs;
	a->base_epochs = ws->base_epochs;
	if (a->reg_default && ws->reg >= 0)
		a->reg = a->params.reg = ws->reg;	/* what the stored model chose */
	if (a->epochs == 0)
	{
		double		share = (double) ws->new_pairs / (double) Max(t->data->n_pairs, 1);

		a->epochs = (int) Min((double) Max(ws->base_epochs, 2),
							  Max(2.0, ceil(ws->base_epochs * share)));
	}
	if (a->keep_missing)
		dsl_warm_start_keep_missing(ws, t->data);
	ereport(NOTICE,
			(errmsg("model \"%s\": continuing model \"%s\" over %d epochs: %lld of %lld pairs are new (%.1f%%)",
					a->name, ws->name, a->epochs, (long long) ws->new_pairs,
					(long long) t->data->n_pairs,
					100.0 * ws->new_pairs / Max(t->data->n_pairs, 1)),
			 errdetail("%d new users and %d new items start from what they interacted with; %d users and %d items of model \"%s\" are no longer in the source and are %s.",
					   ws->new_users, ws->new_items, ws->gone_users, ws->gone_items,
					   ws->name, a->keep_missing ? "kept (option keep_missing)" : "left out")));
}

/*
 * Read the source's pairs and, with epochs => NULL and no validation
 * relation, hold out a seeded share of each user's pairs to validate on
 * (they are still stored as seen, so never recommended).
 */
static void
read_pairs(Training *t)
{
	TrainArgs  *a = &t->a;

	t->data = dsl_read_interactions(a->source, a->user_col, a->item_col, t->limit);
	if (t->data->n_null > 0)
		ereport(NOTICE,
				(errmsg("skipped %lld rows of \"%s\" with a NULL %s or %s",
						(long long) t->data->n_null, dsl_relation_name(a->source),
						a->user_col, a->item_col)));
	if (t->data->n_duplicate > 0)
		ereport(NOTICE,
				(errmsg("%lld duplicate (user, item) rows of \"%s\" were counted once",
						(long long) t->data->n_duplicate, dsl_relation_name(a->source))));

	t->train = t->data;
	if (t->ws)
		compare_with_continued(t);
	if (a->epochs == 0 && !OidIsValid(a->validation))
	{
		dsl_holdout_split(t->data, a->holdout, a->holdout_users, (uint64) a->seed,
						  &t->train, &t->val);
		a->held_pairs = t->val->n_pairs;
		for (int u = 0; u < t->data->n_users; u++)
			a->held_users += t->val->total[u] > 0;
	}
}

/*
 * What training on `pairs` over `epochs` epochs means in optimizer steps:
 * the model type's steps per epoch and DSL interval, and the engine's
 * configuration.
 */
static void
set_schedule(Training *t, const Interactions *pairs, int64 epochs)
{
	TrainArgs  *a = &t->a;
	DslConfig  *cfg = &t->cfg;
	int64		steps_per_epoch = a->ops->steps_per_epoch(pairs, &a->params);

	a->params.update_interval = a->update_interval > 0 ? a->update_interval :
		steps_per_epoch * a->ops->default_interval_epochs;
	a->params.steps_per_epoch = steps_per_epoch;

	memset(cfg, 0, sizeof(DslConfig));
	cfg->density = a->density;
	cfg->dynamic = strcmp(a->sparsity, "dynamic") == 0;
	cfg->growth = strcmp(a->growth, "random") == 0 ? GROWTH_RANDOM : GROWTH_GRADIENT;
	cfg->schedule = strcmp(a->schedule, "constant") == 0 ? SCHEDULE_CONSTANT : SCHEDULE_COSINE;
	cfg->update_ratio = a->update_ratio;
	cfg->update_ratio_min = a->update_ratio_min;
	cfg->update_interval = a->params.update_interval;
	cfg->total_steps = steps_per_epoch * epochs;
	cfg->seed = (uint64) a->seed;
	cfg->init_std = (float) a->init_std;
	cfg->lr_min = a->lr_min;
	cfg->adam.lr = (float) a->lr;
	cfg->adam.beta1 = (float) a->beta1;
	cfg->adam.beta2 = (float) a->beta2;
	cfg->adam.eps = (float) a->eps;
}

/*
 * Everything that depends on the pairs trained on, from the arguments as
 * given: the batch size when the model type chooses it, the schedule, and
 * the model type's own data-dependent defaults.  The refit calls it again
 * for every pair, so that it trains exactly as dsl.train(epochs => its
 * length) on the same source would.
 */
static void
fit_to_pairs(Training *t, const Interactions *pairs, int64 epochs)
{
	TrainArgs  *a = &t->a;

	if (a->batch_default)
		a->batch_size = a->params.batch_size = a->ops->default_batch_size(pairs);
	memcpy(a->model_opts, a->model_opts_given, a->ops->options_size);
	set_schedule(t, pairs, epochs);
	if (a->ops->finish_options)
		a->ops->finish_options(a->model_opts, &a->params);
}

/*
 * The tensors of a model on `pairs`: their shapes and budgets (the spread of
 * dsl_tensor_budgets); returns how many.  What check_budget estimates and
 * start_model allocates.
 */
static int
plan_tensors(const Training *t, const Interactions *pairs,
			 TensorShape *shapes, int64 *budgets)
{
	int			n_tensors = t->a.ops->tensor_shapes(pairs, &t->a.params, shapes);

	dsl_tensor_budgets(shapes, n_tensors, t->cfg.density, budgets);
	return n_tensors;
}

/*
 * Budget the model before allocating it: the engine's own estimate of its
 * tensors and rounds, the model type's temporaries, a best-epoch snapshot
 * when validating, and the hold-out split's arrays.
 */
static void
check_budget(const Training *t)
{
	const TrainArgs *a = &t->a;
	TensorShape shapes[DSL_MAX_TENSORS];
	int64		budgets[DSL_MAX_TENSORS];
	int			n_tensors = plan_tensors(t, t->train, shapes, budgets);
	Size		need;

	need = a->ops->work_bytes(t->train, &a->params) +
		dsl_engine_estimate_bytes(&t->cfg, shapes, budgets, n_tensors);
	if (t->val != NULL || OidIsValid(a->validation))
		need += dsl_engine_estimate_snapshot_bytes(shapes, budgets, n_tensors);
	if (t->ws)					/* loading the stored model (warm_start.c) */
		need += dsl_warm_start_bytes(t->ws, shapes, budgets, n_tensors);
	if (t->train != t->data)	/* the hold-out split: both parts' items and offsets */
		need += (Size) t->data->n_pairs * 2 * sizeof(int32) +
			(Size) (t->data->n_users + 1) * 2 * sizeof(int64) +
			(Size) t->data->n_users * sizeof(int32);
	if (need > t->limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training model \"%s\" needs about %zu kB, more than maintenance_work_mem = %zu kB",
						a->name, need / 1024, t->limit / 1024),
				 errdetail("%d users and %d items at dim %d and density %g.",
						   t->data->n_users, t->data->n_items, a->dim, a->density),
				 errhint("Raise maintenance_work_mem for this session, e.g. SET maintenance_work_mem = '%zuMB'.",
						 need / (1024 * 1024) + 1)));
}

/* a new model on `pairs`, in a memory context of its own */
static void
start_model(Training *t, const Interactions *pairs)
{
	TensorShape shapes[DSL_MAX_TENSORS];
	int64		budgets[DSL_MAX_TENSORS];
	int			n_tensors;

	if (t->phase_ctx)
	{
		/* the previous model: its threads are joined when its context goes */
		MemoryContextSwitchTo(t->train_ctx);
		MemoryContextDelete(t->phase_ctx);
		memset(t->best, 0, sizeof(t->best));
	}
	t->phase_ctx = AllocSetContextCreate(t->train_ctx, "dsl_rec model", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(t->phase_ctx);
	t->phase_pairs = pairs;
	n_tensors = plan_tensors(t, pairs, shapes, budgets);
	dsl_engine_init(&t->engine, &t->cfg, budgets, n_tensors);
	t->model = t->a.ops->create(&t->engine, pairs, &t->a.params);
	if (t->ws)
		dsl_warm_start_load(t->ws, &t->engine, t->a.ops, pairs, t->cfg.seed);
}

/*
 * How much longer an epoch on `pairs` takes than one on the training pairs:
 * their ratio (the refit trains on every pair)
 */
static double
pairs_scale(const Training *t, const Interactions *pairs)
{
	return (double) pairs->n_pairs / (double) Max(t->train->n_pairs, 1);
}

/* train one epoch; the result row is the caller's */
static double
train_epoch(Training *t, int epoch, double *secs)
{
	instr_time	t_epoch;
	double		loss;

	INSTR_TIME_SET_CURRENT(t_epoch);
	loss = t->a.ops->train_epoch(t->model);
	*secs = elapsed_since(t_epoch);
	if (t->sim_epoch_secs > 0)
	{
		*secs = t->sim_epoch_secs * pairs_scale(t, t->phase_pairs);
		t->sim_clock += *secs;
	}
	t->epoch_secs += *secs;
	dsl_mem_note();
	check_diverged(&t->a, t->row0 + epoch, loss);
	t->out.active = dsl_engine_active(&t->engine);
	t->out.epochs_run = t->row0 + epoch;
	t->out.final_loss = loss;
	return loss;
}

/* whether the stopping rule ends with a refit on every pair */
static bool
refit_planned(const Training *t)
{
	return t->a.epochs == 0 && t->train != t->data && t->a.refit;
}

/*
 * Expected seconds of one epoch on `pairs`: the first phase's mean epoch
 * time, scaled by the number of pairs.
 */
static double
epoch_seconds(const Training *t, const Interactions *pairs)
{
	return t->epoch_secs / Max(t->out.epochs_run, 1) * pairs_scale(t, pairs);
}

/* a model type's own validation ranking (ModelOps.rank_users) */
typedef struct ValidationRank
{
	const ModelOps *ops;
	void	   *model;
	SparseTensor *const *tensors;
} ValidationRank;

static void
validation_rank(void *arg, const int32 *users, int n_users,
				const IndexCSR *exclude, int k, Size mem_bytes,
				TopKEmit emit, void *emit_arg)
{
	ValidationRank *vr = (ValidationRank *) arg;

	vr->ops->rank_users(vr->model, vr->tensors, users, n_users, exclude, k,
						mem_bytes, emit, emit_arg);
}

/* the best epoch, numbered as a result row (after any reg trials' rows) */
static inline int
kept_row(const Training *t)
{
	return t->row0 + t->out.best_epoch;
}

/*
 * After halve_reg, until a validation beats the best before it by
 * DSL_AUTO_MIN_GAIN: the kept epoch is still one trained with the reg before.
 */
static inline bool
halving_pending(const Training *t)
{
	return t->a.reg_halved_at > 0 && kept_row(t) <= t->a.reg_halved_at;
}

/* the reg the kept epoch was trained with */
static inline double
kept_reg(const Training *t)
{
	return halving_pending(t) ? t->a.reg_before : t->a.reg;
}

/* go on over a schedule of `next` epochs, redrawn from the start */
static void
begin_schedule(Training *t, int64 next)
{
	t->prev_best = t->best_recall;
	t->horizon = next;
	dsl_engine_set_horizon(&t->engine, t->a.params.steps_per_epoch * next);
}

/*
 * Whether a schedule that did not pay is followed by one with half the reg
 * (halve_reg): reg NULL under the stopping rule, a model type that can change
 * it (ModelOps.set_reg), once a call, not with patience, and only when a
 * whole doubled schedule fits within max_epochs and max_seconds.
 */
static bool
can_halve_reg(const Training *t, int epoch, int64 next, double end)
{
	const TrainArgs *a = &t->a;

	return a->reg_default && a->ops->set_reg != NULL && a->reg_halved_at == 0 &&
		a->patience == 0 && t->ws == NULL && a->reg > 0 &&
		next == 2 * (int64) epoch && end <= a->max_seconds;
}

/*
 * The doubled schedule that did not pay is the longest this reg makes worth
 * training; with less L2 a longer one may pay (dense MF on Gowalla: reg 0.01
 * stops after 60 epochs at 0.1433 test Recall@20, 0.005 pays up to 480 and
 * gives 0.1562; docs/training.md).  So go on over the next doubled schedule
 * with half the reg, but keep what it trains only if its validation recall
 * beats the best so far by DSL_AUTO_MIN_GAIN (validate); otherwise the
 * stopping rule ends the run with the earlier best, and the refit uses the
 * reg that best was trained with.
 */
static void
halve_reg(Training *t, int epoch, int64 next)
{
	TrainArgs  *a = &t->a;

	a->reg_before = a->reg;
	a->reg_halved_at = t->row0 + epoch;
	a->reg = a->params.reg = a->reg / 2;
	a->ops->set_reg(t->model, a->reg);
	ereport(NOTICE,
			(errmsg("model \"%s\": validation recall@%d %.4f after a schedule of %d epochs, less than %g%% above the best before it (%.4f); continuing over one of %lld epochs with reg halved to %g, kept only if validation recall beats %.4f",
					a->name, a->k, t->last_recall, epoch, 100.0 * DSL_AUTO_MIN_GAIN,
					t->prev_best, (long long) next, a->reg,
					t->best_recall * (1.0 + DSL_AUTO_MIN_GAIN))));
	begin_schedule(t, next);
}

/*
 * At the end of a schedule of the stopping rule (epochs => NULL): go on over
 * one twice as long (redrawn, so lr and zeta rise again to where that
 * schedule would be) while a schedule's best validation recall beat the
 * previous one's by DSL_AUTO_MIN_GAIN; otherwise stop.  max_seconds bounds
 * the whole call: a doubled schedule that would end past it is not begun,
 * but the longest that ends within it is, if long enough
 * (DSL_AUTO_FIT_SHARE).  The refit is not counted here: a longer schedule
 * gains more than a refit where time is short (large data, where the
 * hold-out is a small share of the pairs), and the refit runs afterwards
 * only if it fits.  Returns whether to stop.
 */
static bool
schedule_end(Training *t, int epoch)
{
	TrainArgs  *a = &t->a;
	int64		next = Min((int64) t->max_epochs, t->horizon * 2);
	double		now = train_clock(t);
	double		per_epoch = epoch_seconds(t, t->train);
	double		end = now + (next - epoch) * per_epoch;
	bool		paid = t->best_recall > t->prev_best * (1.0 + DSL_AUTO_MIN_GAIN);
	bool		too_soon = epoch < min_epochs(a);
	int64		fit = 0;

	if (end > a->max_seconds)
	{
		fit = epoch + (int64) floor(DSL_AUTO_FIT_SHARE * Max(a->max_seconds - now, 0.0) /
									Max(per_epoch, 1e-9));
		if (fit < epoch + (epoch + 3) / 4)
			fit = 0;			/* too short to be worth a schedule */
	}

	if (!paid && !too_soon)
	{
		if (can_halve_reg(t, epoch, next, end))
		{
			halve_reg(t, epoch, next);
			return false;
		}
		/* the last schedule did not pay (after halve_reg: its last recall) */
		t->stop_gain = t->prev_best > 0 ?
			Max(t->best_recall, t->last_recall) / t->prev_best - 1.0 : 0.0;
		return true;
	}
	if (end > a->max_seconds && fit == 0)
	{
		/* it paid (or was too soon), but the next would overrun */
		t->stop_end = end;
		t->stop_next = next;
		t->stop_paid = paid;
		return true;
	}
	if (fit > 0)
		next = fit;				/* the longest that ends in time */
	ereport(NOTICE,
			(errmsg("model \"%s\": validation recall@%d %.4f after a schedule of %d epochs%s; continuing over one of %lld epochs%s%s",
					a->name, a->k, t->last_recall, epoch,
					t->last_recall < t->best_recall ?
					psprintf(", below the best so far (%.4f, epoch %d)", t->best_recall,
							 kept_row(t)) :
					t->prev_best > 0 ? psprintf(" (the best before it %.4f)", t->prev_best) : "",
					(long long) next,
					fit > 0 ? psprintf(", the longest that ends within the time limit of %g s (option max_seconds)",
									   a->max_seconds) : "",
					paid ? "" : psprintf(" (%s)", min_epochs_reason(a)))));
	begin_schedule(t, next);
	return false;
}

/*
 * Validate the model after `epoch`, keep its weights if it is the best so
 * far, and apply the stopping rules; returns whether to stop.
 */
static bool
validate(Training *t, int epoch, bool time_up, EvalMetrics *m)
{
	TrainArgs  *a = &t->a;
	EmbeddingSource us,
				is;
	IndexCSR	seen = {t->train->n_users, t->train->ptr, t->train->items};
	IndexCSR	test = {t->data->n_users, t->val->ptr, t->val->items};
	bool		stop = false;

	/* blocks of at most 64 MB (or work_mem if larger), not the whole budget */
	Size		mem = Min(t->limit, Max((Size) work_mem * 1024, (Size) 64 * 1024 * 1024));

	if (a->ops->rank_users)
	{
		/* a score that is not an inner product: the model type ranks */
		ValidationRank vr = {a->ops, t->model, t->engine.tensors};

		dsl_evaluate_ranked(t->data->n_users, t->data->n_items, &seen, &test,
							t->val->total, a->k, mem, validation_rank, &vr, m);
	}
	else
	{
		a->ops->serving(t->model, t->engine.tensors, &us, &is);
		dsl_evaluate_full(&us, &is, &seen, &test, t->val->total, a->k, mem, m);
	}
	t->last_recall = m->recall;
	/* after halve_reg a new best must beat the one before by the margin */
	if (m->recall > t->best_recall * (halving_pending(t) ? 1.0 + DSL_AUTO_MIN_GAIN : 1.0))
	{
		t->best_recall = m->recall;
		t->out.best_epoch = epoch;
		t->since_best = 0;
		for (int i = 0; i < t->engine.n_tensors; i++)
		{
			if (t->best[i])
				sparse_tensor_free(t->best[i]);
			t->best[i] = sparse_tensor_copy_weights(t->engine.tensors[i]);
		}
	}
	else if (!time_up && a->patience > 0 && ++t->since_best >= a->patience &&
			 epoch < t->max_epochs)
		stop = true;			/* patience given: the old-style rule */

	if (a->epochs == 0 && !stop && !time_up && epoch == t->horizon && epoch < t->max_epochs)
		stop = schedule_end(t, epoch);
	return stop;
}

/* the NOTICE of a run that stopped after `epoch`, saying why */
static void
report_stop(const Training *t, int epoch)
{
	const TrainArgs *a = &t->a;
	int			row = t->row0 + epoch;
	int			kept = kept_row(t);

	if (t->stop_end > 0)
		ereport(NOTICE,
				(errmsg("model \"%s\": stopping after %d epochs: %s, but a schedule of %lld epochs would end about %.0f s after the call began, past the time limit of %g s (option max_seconds); keeping epoch %d",
						a->name, row,
						t->stop_paid ? "validation still improved" :
						min_epochs_reason(a),
						(long long) t->stop_next,
						t->stop_end, a->max_seconds, kept)));
	else if (a->patience > 0 && t->since_best >= a->patience)
		ereport(NOTICE,
				(errmsg("model \"%s\": stopping early, no improvement in %d evaluations; keeping epoch %d",
						a->name, a->patience, kept)));
	else
		ereport(NOTICE,
				(errmsg("model \"%s\": stopping after %d epochs: the last schedule improved validation recall@%d by %.1f%% (less than %g%%); keeping epoch %d%s",
						a->name, row, a->k, 100.0 * t->stop_gain,
						100.0 * DSL_AUTO_MIN_GAIN, kept,
						a->reg_halved_at > 0 ? psprintf(", trained with reg %g", kept_reg(t)) : "")));
}

/*
 * Train epochs first.. until epochs, the stopping rule, patience or the time
 * limit ends it, validating when there are validation pairs.
 */
static void
run_epochs(Training *t, int first)
{
	TrainArgs  *a = &t->a;

	for (int epoch = first; epoch <= t->max_epochs; epoch++)
	{
		int64		pruned_before = t->engine.pruned;
		double		secs;
		double		loss = train_epoch(t, epoch, &secs);
		EvalMetrics m;
		bool		evaluated = false;
		bool		time_up = a->epochs == 0 && train_clock(t) >= a->max_seconds;
		bool		stop = false;

		if (t->val != NULL && (epoch == t->max_epochs || time_up ||
							   (a->eval_every > 0 && epoch % a->eval_every == 0) ||
							   (a->eval_every == 0 && a->epochs > 0) ||
							   (a->epochs == 0 && epoch == t->horizon)))
		{
			stop = validate(t, epoch, time_up, &m);
			evaluated = true;
		}

		emit_epoch_row(t->rsinfo, &t->engine, a->density, t->row0 + epoch, loss,
					   t->engine.pruned - pruned_before, secs, evaluated ? &m : NULL);

		if (!dsl_progress)
			;
		else if (evaluated)
			ereport(NOTICE,
					(errmsg("model \"%s\" epoch %d/%d: loss %.5f, recall@%d %.4f, ndcg@%d %.4f, %.2f s",
							a->name, t->row0 + epoch, t->row0 + t->max_epochs, loss,
							a->k, m.recall, a->k, m.ndcg, secs)));
		else
			ereport(NOTICE,
					(errmsg("model \"%s\" epoch %d/%d: loss %.5f, active %lld of %lld, %.2f s",
							a->name, t->row0 + epoch, t->row0 + t->max_epochs, loss,
							(long long) t->out.active, (long long) t->out.total, secs)));
		if (time_up)
		{
			t->time_stopped = true;
			ereport(NOTICE,
					(errmsg("model \"%s\": stopping at the time limit of %g s (option max_seconds); keeping epoch %d%s",
							a->name, a->max_seconds, kept_row(t),
							refit_planned(t) ? ", without a refit" : "")));
			break;
		}
		if (stop)
		{
			report_stop(t, epoch);
			break;
		}
	}
}

/*
 * Whether this call tries the model type's reg choices (choose_reg): reg
 * NULL under the stopping rule, not with patience (which could end a trial
 * before its schedule does) and not in a continuation.
 */
static bool
reg_trial(const Training *t)
{
	const TrainArgs *a = &t->a;

	return a->epochs == 0 && a->reg_default && a->ops->n_reg_choices > 1 &&
		a->patience == 0 && t->val != NULL && t->ws == NULL;
}

/* a new model on the training pairs with this reg, validated afresh */
static void
start_with_reg(Training *t, double reg)
{
	t->a.reg = t->a.params.reg = reg;
	t->row0 = t->a.trial_epochs = t->out.epochs_run;
	start_model(t, t->train);
	t->best_recall = -1;
	t->since_best = 0;
	t->out.best_epoch = 0;
}

/*
 * Train the current model over the first schedule only, validating at its
 * end (the stopping rule's decision there is left to the caller).
 */
static void
run_first_schedule(Training *t)
{
	int			run_to = t->max_epochs;

	t->max_epochs = (int) t->horizon;
	run_epochs(t, 1);
	t->max_epochs = run_to;
}

/* "r with reg x, ..." of the reg trials so far, for a NOTICE */
static char *
reg_trials_text(const TrainArgs *a)
{
	StringInfoData s;

	initStringInfo(&s);
	for (int i = 0; i < a->n_reg_tried; i++)
		appendStringInfo(&s, "%s%.4f with reg %g", i > 0 ? ", " : "",
						 a->reg_recall[i], a->ops->reg_choices[i]);
	return s.data;
}

/*
 * reg NULL under the stopping rule, for a model type with reg choices
 * (ModelOps.reg_choices): train each over the first schedule, from the same
 * seed, and go on with the default (the first) unless another's validation
 * recall beats it by a margin (dsl_rec.debug_reg_trial_margin, 4 %), then
 * with the best of those.  The first schedule overrates the smaller reg on
 * sparse models: LightGCN, Gowalla d = 0.2, 0.0001 was 3.4 % ahead after
 * 30 epochs and 8.6 % behind at the end; at d = 1 and 0.5 it was 4.6 % to
 * 8.3 % ahead and won at the end (docs/lightgcn.md).  The last one
 * tried goes on where it is; an earlier one is trained again from the
 * start, which repeats its trial exactly.  Returns whether the run is over
 * (the time limit, or the stopping rule at the end of that schedule).
 */
static bool
choose_reg(Training *t)
{
	TrainArgs  *a = &t->a;
	const ModelOps *ops = a->ops;
	int			best = 0;

	for (int i = 0; i < ops->n_reg_choices; i++)
	{
		if (i > 0)
			start_with_reg(t, ops->reg_choices[i]);
		Assert(a->reg == ops->reg_choices[i]);	/* the first is default_reg */
		ereport(NOTICE,
				(errmsg("model \"%s\": trying reg %g over the first schedule (epochs %d to %d)",
						a->name, a->reg, t->row0 + 1, t->row0 + (int) t->horizon),
				 errhint("Pass reg to train with it alone.")));
		run_first_schedule(t);
		a->reg_recall[i] = t->best_recall;
		a->n_reg_tried = i + 1;
		if (t->time_stopped)
			return true;		/* this one is what there is */
		if (t->best_recall > a->reg_recall[best] &&
			t->best_recall >= a->reg_recall[0] * (1.0 + dsl_debug_reg_trial_margin))
			best = i;
	}

	if (best != a->n_reg_tried - 1)
	{
		start_with_reg(t, ops->reg_choices[best]);
		ereport(NOTICE,
				(errmsg("model \"%s\": validation recall@%d after %d epochs: %s; training with reg %g again from the start (epochs %d to %d)",
						a->name, a->k, (int) t->horizon, reg_trials_text(a), a->reg,
						t->row0 + 1, t->row0 + (int) t->horizon)));
		run_first_schedule(t);
		if (t->time_stopped)
			return true;
	}
	else
		ereport(NOTICE,
				(errmsg("model \"%s\": validation recall@%d after %d epochs: %s; going on with reg %g",
						a->name, a->k, (int) t->horizon, reg_trials_text(a), a->reg)));

	/* the end of the first schedule, as run_epochs would have met it */
	if ((int) t->horizon < t->max_epochs && schedule_end(t, (int) t->horizon))
	{
		report_stop(t, (int) t->horizon);
		return true;
	}
	return false;
}

/*
 * The stopping rule chose `length` epochs on its own hold-out: train again
 * from scratch on every pair over one schedule of that length and keep that
 * model (docs/training.md, "Refit").  Its epochs follow as result rows.
 */
static void
refit(Training *t, int length)
{
	TrainArgs  *a = &t->a;

	a->refit_epochs = length;
	fit_to_pairs(t, t->data, length);
	t->row0 = t->out.epochs_run;
	start_model(t, t->data);
	ereport(NOTICE,
			(errmsg("model \"%s\": refitting on all %lld pairs over %d epochs (epochs %d to %d), the length validation chose",
					a->name, (long long) t->data->n_pairs, length, t->row0 + 1,
					t->row0 + length),
			 errhint("options => '{\"refit\": false}' keeps the model of epoch %d instead.",
					 t->out.best_epoch)));
	for (int epoch = 1; epoch <= length; epoch++)
	{
		int64		pruned_before = t->engine.pruned;
		double		secs;
		double		loss = train_epoch(t, epoch, &secs);

		emit_epoch_row(t->rsinfo, &t->engine, a->density, t->row0 + epoch, loss,
					   t->engine.pruned - pruned_before, secs, NULL);
		if (dsl_progress)
			ereport(NOTICE,
					(errmsg("model \"%s\" refit epoch %d/%d: loss %.5f, %.2f s",
							a->name, epoch, length, loss, secs)));
	}
	t->out.best_epoch = t->out.epochs_run;	/* the stored model: the refit's last */
}

PG_FUNCTION_INFO_V1(dsl_train);

/* dsl.train(...): train a model, store it, return one row per epoch */
Datum
dsl_train(PG_FUNCTION_ARGS)
{
	Training   *t = palloc0(sizeof(Training));
	TrainArgs  *a = &t->a;
	MemoryContext old_ctx;
	int64		old_id;
	Oid			old_owner = InvalidOid;
	SparseTensor *keep[DSL_MAX_TENSORS];
	int			length;
	int			guc_level;
	bool		distributed;

	PreventCommandIfReadOnly("dsl.train()");
	InitMaterializedSRF(fcinfo, 0);
	t->rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	t->limit = (Size) maintenance_work_mem * 1024;
	t->best_recall = -1;
	dsl_train_parse_args(fcinfo, a);
	INSTR_TIME_SET_CURRENT(t->t_start);
	t->sim_epoch_secs = dsl_debug_epoch_seconds;
	guc_level = model_tables_write_begin(&distributed);

	old_id = dsl_train_claim_name(a, &old_owner);
	if (a->warm_start)
		t->ws = dsl_warm_start_open(a);

	t->train_ctx = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec training",
										 ALLOCSET_DEFAULT_SIZES);
	old_ctx = MemoryContextSwitchTo(t->train_ctx);
	dsl_mem_track(t->train_ctx);

	read_pairs(t);
	if (OidIsValid(a->validation))
		t->val = dsl_read_mapped_pairs(a->validation, a->user_col, a->item_col,
									   t->data->user_ids, t->data->n_users,
									   t->data->item_ids, t->data->n_items,
									   (Size) work_mem * 1024 + t->limit);
	t->max_epochs = a->epochs > 0 ? a->epochs : a->max_epochs;

	/*
	 * The zeta schedule's horizon: the epochs asked for, or, when the
	 * stopping rule decides, DSL_AUTO_HORIZON epochs (see docs/training.md).
	 */
	t->horizon = a->epochs > 0 ? a->epochs : Min(t->max_epochs, DSL_AUTO_HORIZON);
	fit_to_pairs(t, t->train, t->horizon);
	check_budget(t);

	start_model(t, t->train);
	t->out.total = dsl_engine_total(&t->engine);
	dsl_mem_note();
	if (!reg_trial(t) || !choose_reg(t))
		run_epochs(t, t->out.epochs_run - t->row0 + 1);

	/* the kept model's reg: what the refit trains with, and what is recorded */
	if (a->reg_halved_at > 0 && t->out.best_epoch > 0)
		a->reg = a->params.reg = kept_reg(t);

	/* the kept epoch: what a refit's length is, and as a result row */
	length = t->out.best_epoch;
	if (t->out.best_epoch > 0)
		t->out.best_epoch += t->row0;

	/*
	 * Not after the time limit stopped the first phase mid-way: that NOTICE
	 * said so.  A phase that ended on its own may still have used up the
	 * limit (its last validation can take it past): then the NOTICE below
	 * says why there is no refit.
	 */
	if (refit_planned(t) && length > 0 && !t->time_stopped)
	{
		double		end = train_clock(t) + length * epoch_seconds(t, t->data);

		if (end <= a->max_seconds)
			refit(t, length);
		else
			ereport(NOTICE,
					(errmsg_plural("model \"%s\": not refitting: %d epoch on all pairs would end about %.0f s after the call began, past the time limit of %g s (option max_seconds); keeping epoch %d",
								   "model \"%s\": not refitting: %d epochs on all pairs would end about %.0f s after the call began, past the time limit of %g s (option max_seconds); keeping epoch %d",
								   length,
								   a->name, length, end, a->max_seconds,
								   t->out.best_epoch)));
	}
	a->total_steps = t->engine.cfg.total_steps;
	t->out.seconds = elapsed_since(t->t_start);
	t->out.peak_bytes = dsl_mem_peak();

	for (int i = 0; i < t->engine.n_tensors; i++)
		keep[i] = (t->out.best_epoch > 0 && t->best[i]) ? t->best[i] : t->engine.tensors[i];
	dsl_train_store(a, old_id, old_owner, t->data, t->model, keep, t->engine.n_tensors,
					&t->out, distributed);
	model_tables_read_end(guc_level);

	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(t->train_ctx);
	PG_RETURN_NULL();
}
