/*
 * train_args.c - dsl.train()'s arguments and options
 *
 * Every argument and option is validated before anything is read or
 * locked; a bad one is an error naming it, the bad value and what is valid.
 * The common options are parsed here and every other key goes to the model
 * type's set_option.  What was used, defaults included, goes back to the
 * user as the model's hyperparameters JSON.
 */
#include "postgres.h"

#include <math.h>

#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

#include "dsl_rec.h"
#include "train_args.h"
#include "warm_start.h"

/* argument positions of dsl.train, as declared in SQL */
enum
{
	A_NAME, A_SOURCE, A_USER_COL, A_ITEM_COL, A_MODEL_TYPE, A_DIM, A_DENSITY,
	A_EPOCHS, A_BATCH, A_LR, A_REG, A_RATIO, A_INTERVAL, A_GROWTH, A_PRUNE,
	A_SCHEDULE, A_SPARSITY, A_SEED, A_REPLACE, A_OPTIONS, A_VALIDATION,
	A_EVAL_EVERY, A_PATIENCE, A_K, A_WARM_START, A_NARGS
};

/*
 * Version 0.1.0's dsl.train had no warm_start: one library serves both
 * versions of the SQL, so the last argument is read only when passed.
 */
#define A_NARGS_0_1 A_WARM_START

static const char *const arg_names[A_NARGS] = {
	"model_name", "source", "user_col", "item_col", "model_type", "dim", "density",
	"epochs", "batch_size", "lr", "reg", "update_ratio", "update_interval", "growth",
	"prune", "schedule", "sparsity", "seed", "replace", "options", "validation",
	"eval_every", "patience", "k", "warm_start"
};

/* a NULL argument that must not be NULL: an error naming it */
static void
require_arg(FunctionCallInfo fcinfo, int i)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", arg_names[i])));
}

/* the one message for a bad value: the name, the value, what is valid */
static void
bad_param(const char *name, const char *value, const char *valid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for %s: %s", name, value),
			 errdetail("Valid values: %s.", valid)));
}

/* v within lo..hi (each bound inclusive or not), finite */
static void
check_range_f(const char *name, double v, double lo, bool lo_incl, double hi, bool hi_incl,
			  const char *valid)
{
	if (isnan(v) || isinf(v) || (lo_incl ? v < lo : v <= lo) || (hi_incl ? v > hi : v >= hi))
		bad_param(name, psprintf("%g", v), valid);
}

/* v within [lo, hi] */
static void
check_range_i(const char *name, int64 v, int64 lo, int64 hi)
{
	if (v < lo || v > hi)
		bad_param(name, psprintf("%lld", (long long) v),
				  psprintf("integers from %lld to %lld", (long long) lo, (long long) hi));
}

/* v one of choices (NULL-terminated) */
static void
check_choice(const char *name, const char *v, const char *const *choices, const char *valid)
{
	for (int i = 0; choices[i]; i++)
		if (strcmp(v, choices[i]) == 0)
			return;
	bad_param(name, psprintf("\"%s\"", v), valid);
}

/* is key one of the comma-separated keys? */
static bool
key_listed(const char *keys, const char *key)
{
	size_t		n = strlen(key);

	for (const char *p = keys; (p = strstr(p, key)) != NULL; p += n)
		if ((p == keys || p[-1] == ' ' || p[-1] == ',') &&
			(p[n] == '\0' || p[n] == ','))
			return true;
	return false;
}

/*
 * A continuation: the stored model's options that shape its tensors (those
 * of its hyperparams that are the type's shape keys, JSON nulls left out),
 * before the call's options override them.
 */
static void
inherit_options(TrainArgs *a, Jsonb *hyper)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	int			depth = 0;

	if (!JB_ROOT_IS_OBJECT(hyper) || JB_ROOT_IS_SCALAR(hyper))
		return;
	it = JsonbIteratorInit(&hyper->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_BEGIN_OBJECT)
			depth++;
		else if (tok == WJB_END_OBJECT)
			depth--;
		else if (tok == WJB_KEY && depth == 1)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE && depth == 1 && v.type != jbvNull &&
				 key_listed(a->ops->shape_keys, key))
			(void) a->ops->set_option(a->model_opts, key, &v);
	}
}

/* settings from options jsonb: common keys, then the model type's own */
static void
parse_options(TrainArgs *a)
{
	static const char *const common = "init_std, lr_min, adam_beta1, adam_beta2, adam_eps, update_ratio_min, max_epochs, max_seconds, holdout, holdout_users, refit, keep_missing";
	char	   *valid;
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;

	a->init_std = 0.1;
	a->lr_min = -1;
	a->beta1 = 0.9;
	a->beta2 = 0.999;
	a->eps = 1e-8;
	a->update_ratio_min = Min(0.005, a->update_ratio);
	a->max_epochs = 1000;
	a->max_seconds = 3600;
	a->holdout = 0.05;
	a->holdout_users = 10000;
	a->refit = true;
	valid = a->ops->option_keys[0] ? psprintf("%s, %s", common, a->ops->option_keys) : pstrdup(common);

	if (!JB_ROOT_IS_OBJECT(a->options) || JB_ROOT_IS_SCALAR(a->options))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("options must be a jsonb object"),
				 errdetail("Valid keys for model_type \"%s\": %s.", a->model_type, valid)));

	it = JsonbIteratorInit(&a->options->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE)
			continue;
		if (strcmp(key, "init_std") == 0)
		{
			a->init_std = dsl_option_float(key, &v);
			check_range_f("option init_std", a->init_std, 0, false, 10, true, "(0, 10]");
		}
		else if (strcmp(key, "lr_min") == 0)
		{
			a->lr_min = dsl_option_float(key, &v);
			check_range_f("option lr_min", a->lr_min, 0, true, a->lr, true,
						  psprintf("[0, %g] (up to lr)", a->lr));
		}
		else if (strcmp(key, "adam_beta1") == 0)
		{
			a->beta1 = dsl_option_float(key, &v);
			check_range_f("option adam_beta1", a->beta1, 0, true, 1, false, "[0, 1)");
		}
		else if (strcmp(key, "adam_beta2") == 0)
		{
			a->beta2 = dsl_option_float(key, &v);
			check_range_f("option adam_beta2", a->beta2, 0, true, 1, false, "[0, 1)");
		}
		else if (strcmp(key, "adam_eps") == 0)
		{
			a->eps = dsl_option_float(key, &v);
			check_range_f("option adam_eps", a->eps, 0, false, 1, true, "(0, 1]");
		}
		else if (strcmp(key, "max_epochs") == 0)
		{
			double		x = dsl_option_float(key, &v);

			if (!(x >= 1 && x <= 100000) || x != floor(x))
				bad_param("option max_epochs", psprintf("%g", x), "integers from 1 to 100000");
			a->max_epochs = (int) x;
		}
		else if (strcmp(key, "max_seconds") == 0)
		{
			a->max_seconds = dsl_option_float(key, &v);
			check_range_f("option max_seconds", a->max_seconds, 0, false, 1e9, true, "(0, 1e9]");
		}
		else if (strcmp(key, "holdout_users") == 0)
		{
			double		x = dsl_option_float(key, &v);

			if (!(x >= 1 && x <= PG_INT32_MAX) || x != floor(x))
				bad_param("option holdout_users", psprintf("%g", x), "integers from 1 to 2147483647");
			a->holdout_users = (int) x;
		}
		else if (strcmp(key, "refit") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"refit\" must be true or false")));
			a->refit = v.val.boolean;
		}
		else if (strcmp(key, "keep_missing") == 0)
		{
			if (v.type != jbvBool)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"keep_missing\" must be true or false")));
			if (!a->warm_start)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("option \"keep_missing\" applies to a continuation only"),
						 errhint("Pass warm_start => the model to continue, or leave the option out.")));
			a->keep_missing = v.val.boolean;
		}
		else if (strcmp(key, "holdout") == 0)
		{
			a->holdout = dsl_option_float(key, &v);
			check_range_f("option holdout", a->holdout, 0, false, 0.5, true, "(0, 0.5]");
		}
		else if (strcmp(key, "update_ratio_min") == 0)
		{
			a->update_ratio_min = dsl_option_float(key, &v);
			check_range_f("option update_ratio_min", a->update_ratio_min, 0, true,
						  a->update_ratio, true, "[0, update_ratio]");
		}
		else if (!a->ops->set_option(a->model_opts, key, &v))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown option \"%s\" for model_type \"%s\"", key, a->model_type),
					 errdetail("Valid keys: %s.", valid)));
	}
}

/*
 * Read and validate dsl.train's arguments, then its options: the common
 * keys, then the model type's own.  Nothing is read or locked yet.
 */
void
dsl_train_parse_args(FunctionCallInfo fcinfo, TrainArgs *a)
{
	static const char *const growths[] = {"gradient", "random", NULL};
	static const char *const prunes[] = {"magnitude", NULL};
	static const char *const schedules[] = {"cosine", "constant", NULL};
	static const char *const sparsities[] = {"dynamic", "static", NULL};
	char	   *stored_type = NULL;
	int			stored_dim = 0;
	double		stored_density = 0;
	Jsonb	   *stored_hyper = NULL;

	memset(a, 0, sizeof(TrainArgs));
	if (PG_NARGS() != A_NARGS && PG_NARGS() != A_NARGS_0_1)
		elog(ERROR, "dsl_rec: dsl.train() called with %d arguments", PG_NARGS());
	for (int i = 0; i < PG_NARGS(); i++)
		if (i != A_INTERVAL && i != A_VALIDATION && i != A_EPOCHS && i != A_BATCH &&
			i != A_LR && i != A_REG && i != A_EVAL_EVERY && i != A_RATIO &&
			i != A_WARM_START && i != A_MODEL_TYPE && i != A_DIM && i != A_DENSITY)
			require_arg(fcinfo, i);
	if (PG_NARGS() > A_WARM_START && !PG_ARGISNULL(A_WARM_START))
	{
		a->warm_start = text_to_cstring(PG_GETARG_TEXT_PP(A_WARM_START));
		if (a->warm_start[0] == '\0')
			bad_param("warm_start", "\"\"", "the name of a stored model, or NULL");
	}

	a->name = text_to_cstring(PG_GETARG_TEXT_PP(A_NAME));
	if (a->name[0] == '\0' || strlen(a->name) > 200)
		bad_param("model_name", psprintf("\"%s\"", a->name), "a non-empty name of at most 200 bytes");
	a->source = PG_GETARG_OID(A_SOURCE);
	a->user_col = text_to_cstring(PG_GETARG_TEXT_PP(A_USER_COL));
	a->item_col = text_to_cstring(PG_GETARG_TEXT_PP(A_ITEM_COL));
	/*
	 * model_type, dim and density NULL: a continuation's are the stored
	 * model's (dsl_warm_start_open checks them again under its lock), a
	 * fresh training's 'mf', the model type's default dim and 0.5.  So are
	 * a continuation's options that shape the tensors (ModelOps.shape_keys),
	 * unless options gives them.
	 */
	if (a->warm_start)
		dsl_warm_start_peek(a->warm_start, &stored_type, &stored_dim, &stored_density,
							&stored_hyper);
	a->model_type = !PG_ARGISNULL(A_MODEL_TYPE) ? text_to_cstring(PG_GETARG_TEXT_PP(A_MODEL_TYPE)) :
		stored_type ? stored_type : "mf";
	a->ops = dsl_model_type_lookup(a->model_type);
	a->model_opts = palloc0(a->ops->options_size);
	a->ops->init_options(a->model_opts);
	if (stored_hyper && strcmp(stored_type, a->model_type) == 0)
		inherit_options(a, stored_hyper);

	a->dim = !PG_ARGISNULL(A_DIM) ? PG_GETARG_INT32(A_DIM) :
		stored_type ? stored_dim : a->ops->default_dim;
	check_range_i("dim", a->dim, a->ops->min_dim, DSL_MAX_DIM);
	a->density = !PG_ARGISNULL(A_DENSITY) ? PG_GETARG_FLOAT8(A_DENSITY) :
		stored_type ? stored_density : 0.5;
	check_range_f("density", a->density, 0, false, 1, true, "(0, 1]");
	if (PG_ARGISNULL(A_EPOCHS))
		a->epochs = 0;
	else
	{
		a->epochs = PG_GETARG_INT32(A_EPOCHS);
		check_range_i("epochs", a->epochs, 1, 100000);
	}
	if (PG_ARGISNULL(A_BATCH))
		a->batch_size = 0;		/* the model type's choice, once the data are read */
	else
	{
		a->batch_size = PG_GETARG_INT32(A_BATCH);
		check_range_i("batch_size", a->batch_size, 1, 1000000);
	}
	/*
	 * lr and reg NULL: the model type's defaults (docs/training.md); a
	 * continuation's lr starts lower (docs/lifecycle.md)
	 */
	a->lr = !PG_ARGISNULL(A_LR) ? PG_GETARG_FLOAT8(A_LR) :
		a->ops->default_lr * (a->warm_start ? DSL_CONTINUE_LR_SCALE : 1.0);
	check_range_f("lr", a->lr, 0, false, HUGE_VAL, false, "finite numbers > 0");
	a->reg_default = PG_ARGISNULL(A_REG);
	a->reg = a->reg_default ? a->ops->default_reg : PG_GETARG_FLOAT8(A_REG);
	check_range_f("reg", a->reg, 0, true, HUGE_VAL, false, "finite numbers >= 0");
	/* update_ratio NULL: zeta_0 0.5, or a continuation's smaller one */
	a->update_ratio = !PG_ARGISNULL(A_RATIO) ? PG_GETARG_FLOAT8(A_RATIO) :
		a->warm_start ? DSL_CONTINUE_RATIO : 0.5;
	check_range_f("update_ratio", a->update_ratio, 0, true, 1, true, "[0, 1]");
	if (PG_ARGISNULL(A_INTERVAL))
		a->update_interval = 0;
	else
	{
		a->update_interval = PG_GETARG_INT32(A_INTERVAL);
		check_range_i("update_interval", a->update_interval, 1, PG_INT32_MAX);
	}
	a->growth = text_to_cstring(PG_GETARG_TEXT_PP(A_GROWTH));
	if (strcmp(a->growth, "momentum") == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("growth \"momentum\" is not supported"),
				 errdetail("dsl_rec keeps optimizer state for active weights only, so inactive weights have no momentum to rank by."),
				 errhint("Use growth => 'gradient' or 'random'.")));
	check_choice("growth", a->growth, growths, "gradient, random");
	a->prune = text_to_cstring(PG_GETARG_TEXT_PP(A_PRUNE));
	check_choice("prune", a->prune, prunes, "magnitude");
	a->schedule = text_to_cstring(PG_GETARG_TEXT_PP(A_SCHEDULE));
	check_choice("schedule", a->schedule, schedules, "cosine, constant");
	a->sparsity = text_to_cstring(PG_GETARG_TEXT_PP(A_SPARSITY));
	check_choice("sparsity", a->sparsity, sparsities, "dynamic, static");
	a->seed = PG_GETARG_INT64(A_SEED);
	a->replace = PG_GETARG_BOOL(A_REPLACE);
	a->options = PG_GETARG_JSONB_P(A_OPTIONS);
	a->validation = PG_ARGISNULL(A_VALIDATION) ? InvalidOid : PG_GETARG_OID(A_VALIDATION);
	if (PG_ARGISNULL(A_EVAL_EVERY))
		a->eval_every = 0;		/* every epoch, or with epochs NULL at schedule ends */
	else
	{
		a->eval_every = PG_GETARG_INT32(A_EVAL_EVERY);
		check_range_i("eval_every", a->eval_every, 1, 100000);
	}
	a->patience = PG_GETARG_INT32(A_PATIENCE);
	check_range_i("patience", a->patience, 0, 100000);
	a->k = PG_GETARG_INT32(A_K);
	check_range_i("k", a->k, 1, 10000);
	a->params.dim = a->dim;
	a->params.batch_size = a->batch_size;
	a->params.reg = a->reg;
	a->params.seed = (uint64) a->seed;
	a->params.options = a->model_opts;
	parse_options(a);
	if (a->lr_min < 0)
		a->lr_min = a->lr / 100;
	a->batch_default = a->batch_size == 0;
	a->model_opts_given = palloc(a->ops->options_size);
	memcpy(a->model_opts_given, a->model_opts, a->ops->options_size);
}

/*
 * The hyperparameters JSON stored with the model: every setting used,
 * defaults included, and what training decided (the interval, the
 * schedule's length, the hold-out, the refit).
 */
char *
dsl_train_hyperparams_json(const TrainArgs *a)
{
	StringInfoData s;

	initStringInfo(&s);
	appendStringInfo(&s,
					 "{\"dim\": %d, \"density\": %.17g, \"epochs\": %s, \"batch_size\": %d, "
					 "\"lr\": %.17g, \"reg\": %.17g, \"update_ratio\": %.17g, "
					 "\"update_ratio_min\": %.17g, \"update_interval\": %lld, "
					 "\"total_steps\": %lld, \"growth\": ",
					 a->dim, a->density,
					 a->epochs > 0 ? psprintf("%d", a->epochs) : "null",
					 a->batch_size, a->lr, a->reg,
					 a->update_ratio, a->update_ratio_min, (long long) a->params.update_interval,
					 (long long) a->total_steps);
	escape_json(&s, a->growth);
	appendStringInfoString(&s, ", \"prune\": ");
	escape_json(&s, a->prune);
	appendStringInfoString(&s, ", \"schedule\": ");
	escape_json(&s, a->schedule);
	appendStringInfoString(&s, ", \"sparsity\": ");
	escape_json(&s, a->sparsity);
	appendStringInfo(&s,
					 ", \"seed\": %lld, \"init_std\": %.17g, \"lr_min\": %.17g, \"adam_beta1\": %.17g, "
					 "\"adam_beta2\": %.17g, \"adam_eps\": %.17g, \"eval_every\": %s, "
					 "\"patience\": %d, \"k\": %d",
					 (long long) a->seed, a->init_std, a->lr_min, a->beta1, a->beta2, a->eps,
					 a->eval_every > 0 ? psprintf("%d", a->eval_every) : "null",
					 a->patience, a->k);
	a->ops->write_hyperparams(&s, a->model_opts);
	if (a->epochs == 0)
		appendStringInfo(&s, ", \"max_epochs\": %d, \"max_seconds\": %.17g",
						 a->max_epochs, a->max_seconds);
	if (a->epochs == 0 && !OidIsValid(a->validation))
		appendStringInfo(&s, ", \"holdout\": %.17g, \"holdout_users\": %d, "
						 "\"held_out_pairs\": %lld, \"held_out_users\": %d",
						 a->holdout, a->holdout_users, (long long) a->held_pairs,
						 a->held_users);
	if (a->epochs == 0 && !OidIsValid(a->validation))
		appendStringInfo(&s, ", \"refit\": %s, \"refit_epochs\": %s",
						 a->refit ? "true" : "false",
						 a->refit_epochs > 0 ? psprintf("%d", a->refit_epochs) : "null");
	if (a->n_reg_tried > 0)
	{
		appendStringInfoString(&s, ", \"reg_trials\": {");
		for (int i = 0; i < a->n_reg_tried; i++)
			appendStringInfo(&s, "%s\"%g\": %.17g", i > 0 ? ", " : "",
							 a->ops->reg_choices[i], a->reg_recall[i]);
		appendStringInfo(&s, "}, \"trial_epochs\": %d", a->trial_epochs);
	}
	if (a->reg_halved_at > 0)
		appendStringInfo(&s, ", \"reg_halved_at\": %d, \"reg_before\": %.17g",
						 a->reg_halved_at, a->reg_before);
	if (a->warm_start)
	{
		appendStringInfoString(&s, ", \"warm_start\": ");
		escape_json(&s, a->warm_start);
		appendStringInfo(&s, ", \"base_epochs\": %d, \"keep_missing\": %s", a->base_epochs,
						 a->keep_missing ? "true" : "false");
	}
	if (OidIsValid(a->validation))
	{
		appendStringInfoString(&s, ", \"validation\": ");
		escape_json(&s, dsl_relation_name(a->validation));
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}
