/*
 * train.c - dsl.train(): read interactions, train with DSL, store the model
 *
 * Everything happens in the caller's transaction: the previous model of the
 * same name is deleted and the new one inserted only after training ended
 * well, so an error, a cancel or a crash leaves the previous model intact.
 * A transaction-scoped advisory lock on the model name turns a concurrent
 * training of the same name into an immediate, clear error.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "portability/instr_time.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "dsl_engine.h"
#include "mem_peak.h"
#include "dsl_rec.h"
#include "interactions.h"
#include "model.h"
#include "model_ops.h"
#include "spvec.h"

/*
 * epochs => NULL: the schedules of lr and zeta first span DSL_AUTO_HORIZON
 * epochs (at most max_epochs); at the end of a schedule training goes on
 * over one twice as long while the best validation recall improved by more
 * than DSL_AUTO_MIN_GAIN (relative) on the previous schedule's
 * (docs/training.md, "Stopping rule").
 */
#define DSL_AUTO_MIN_GAIN 0.02
#define DSL_AUTO_HORIZON 30

/* advisory lock class for "a model of this name is being trained" */
#define DSL_LOCK_CLASS 1146309714	/* "DSLR" */

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
	int			batch_size;
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
	int			eval_every;
	int			patience;
	int			k;
	/* from options */
	double		init_std;
	double		lr_min;			/* < 0: lr / 100 */
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
	int			refit_epochs;	/* what the refit ran: the chosen epochs */
	int64		held_pairs;		/* what the hold-out took: pairs, users */
	int			held_users;
	const ModelOps *ops;
	void	   *model_opts;		/* the model type's options struct */
	TrainParams params;			/* what the model type sees */
} TrainArgs;

/* argument positions of dsl.train, as declared in SQL */
enum
{
	A_NAME, A_SOURCE, A_USER_COL, A_ITEM_COL, A_MODEL_TYPE, A_DIM, A_DENSITY,
	A_EPOCHS, A_BATCH, A_LR, A_REG, A_RATIO, A_INTERVAL, A_GROWTH, A_PRUNE,
	A_SCHEDULE, A_SPARSITY, A_SEED, A_REPLACE, A_OPTIONS, A_VALIDATION,
	A_EVAL_EVERY, A_PATIENCE, A_K, A_NARGS
};

static const char *const arg_names[A_NARGS] = {
	"model_name", "source", "user_col", "item_col", "model_type", "dim", "density",
	"epochs", "batch_size", "lr", "reg", "update_ratio", "update_interval", "growth",
	"prune", "schedule", "sparsity", "seed", "replace", "options", "validation",
	"eval_every", "patience", "k"
};

static void
require_arg(FunctionCallInfo fcinfo, int i)
{
	if (PG_ARGISNULL(i))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be NULL", arg_names[i])));
}

static void
bad_param(const char *name, const char *value, const char *valid)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for %s: %s", name, value),
			 errdetail("Valid values: %s.", valid)));
}

static void
check_range_f(const char *name, double v, double lo, bool lo_incl, double hi, bool hi_incl,
			  const char *valid)
{
	if (isnan(v) || isinf(v) || (lo_incl ? v < lo : v <= lo) || (hi_incl ? v > hi : v >= hi))
		bad_param(name, psprintf("%g", v), valid);
}

static void
check_range_i(const char *name, int64 v, int64 lo, int64 hi)
{
	if (v < lo || v > hi)
		bad_param(name, psprintf("%lld", (long long) v),
				  psprintf("integers from %lld to %lld", (long long) lo, (long long) hi));
}

static void
check_choice(const char *name, const char *v, const char *const *choices, const char *valid)
{
	for (int i = 0; choices[i]; i++)
		if (strcmp(v, choices[i]) == 0)
			return;
	bad_param(name, psprintf("\"%s\"", v), valid);
}

/* settings from options jsonb: common keys, then the model type's own */
static void
parse_options(TrainArgs *a)
{
	static const char *const common = "init_std, lr_min, adam_beta1, adam_beta2, adam_eps, update_ratio_min, max_epochs, max_seconds, holdout, holdout_users, refit";
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

static void
parse_args(FunctionCallInfo fcinfo, TrainArgs *a)
{
	static const char *const growths[] = {"gradient", "random", NULL};
	static const char *const prunes[] = {"magnitude", NULL};
	static const char *const schedules[] = {"cosine", "constant", NULL};
	static const char *const sparsities[] = {"dynamic", "static", NULL};

	memset(a, 0, sizeof(TrainArgs));
	for (int i = 0; i < A_NARGS; i++)
		if (i != A_INTERVAL && i != A_VALIDATION && i != A_EPOCHS && i != A_BATCH &&
			i != A_EVAL_EVERY)
			require_arg(fcinfo, i);

	a->name = text_to_cstring(PG_GETARG_TEXT_PP(A_NAME));
	if (a->name[0] == '\0' || strlen(a->name) > 200)
		bad_param("model_name", psprintf("\"%s\"", a->name), "a non-empty name of at most 200 bytes");
	a->source = PG_GETARG_OID(A_SOURCE);
	a->user_col = text_to_cstring(PG_GETARG_TEXT_PP(A_USER_COL));
	a->item_col = text_to_cstring(PG_GETARG_TEXT_PP(A_ITEM_COL));
	a->model_type = text_to_cstring(PG_GETARG_TEXT_PP(A_MODEL_TYPE));
	a->ops = dsl_model_type_lookup(a->model_type);
	a->model_opts = palloc0(a->ops->options_size);
	a->ops->init_options(a->model_opts);

	a->dim = PG_GETARG_INT32(A_DIM);
	check_range_i("dim", a->dim, 1, DSL_MAX_DIM);
	a->density = PG_GETARG_FLOAT8(A_DENSITY);
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
	a->lr = PG_GETARG_FLOAT8(A_LR);
	check_range_f("lr", a->lr, 0, false, HUGE_VAL, false, "finite numbers > 0");
	a->reg = PG_GETARG_FLOAT8(A_REG);
	check_range_f("reg", a->reg, 0, true, HUGE_VAL, false, "finite numbers >= 0");
	a->update_ratio = PG_GETARG_FLOAT8(A_RATIO);
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
}

static char *
hyperparams_json(const TrainArgs *a, int64 interval, int64 total_steps)
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
					 a->update_ratio, a->update_ratio_min, (long long) interval,
					 (long long) total_steps);
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
	if (OidIsValid(a->validation))
	{
		appendStringInfoString(&s, ", \"validation\": ");
		escape_json(&s, dsl_relation_name(a->validation));
	}
	appendStringInfoChar(&s, '}');
	return s.data;
}

/*
 * Take the name lock and look at an existing model of that name.  Returns
 * the existing model_id (0 if none) and its owner.
 */
static int64
claim_model_name(const TrainArgs *a, Oid *owner)
{
	Datum		args[1];
	Oid			types[1] = {TEXTOID};
	int64		model_id = 0;
	bool		isnull;

	args[0] = CStringGetTextDatum(a->name);
	SPI_connect();
	if (SPI_execute_with_args("SELECT pg_catalog.pg_try_advisory_xact_lock("
							  CppAsString2(DSL_LOCK_CLASS) ", pg_catalog.hashtext($1))",
							  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "dsl_rec: advisory lock query failed");
	if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_LOCK_NOT_AVAILABLE),
				 errmsg("model \"%s\" is being trained by another session", a->name),
				 errhint("Wait for the other training to finish, or use another model name.")));

	/*
	 * Look, then lock: readers see a model row (row-level security) but may
	 * not lock it, and a model of another owner that is not shared with us
	 * is invisible, so its name is checked apart.
	 */
	for (int pass = 0; pass < 2; pass++)
	{
		if (SPI_execute_with_args(pass == 0 ?
								  "SELECT model_id, owner::pg_catalog.oid, "
								  "pg_catalog.pg_has_role(owner, 'MEMBER') "
								  "FROM dsl.models WHERE name OPERATOR(pg_catalog.=) $1" :
								  "SELECT model_id, owner::pg_catalog.oid, "
								  "pg_catalog.pg_has_role(owner, 'MEMBER') "
								  "FROM dsl.models WHERE name OPERATOR(pg_catalog.=) $1 FOR UPDATE",
								  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "dsl_rec: model lookup failed");
		if (SPI_processed == 0)
		{
			if (pass == 0)
			{
				if (SPI_execute_with_args("SELECT dsl.model_name_taken($1)",
										  1, types, args, NULL, false, 1) != SPI_OK_SELECT)
					elog(ERROR, "dsl_rec: model name lookup failed");
				if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
					ereport(ERROR,
							(errcode(ERRCODE_DUPLICATE_OBJECT),
							 errmsg("model name \"%s\" is taken by a model of another owner", a->name),
							 errhint("Choose another model name.")));
			}
			model_id = 0;
			break;
		}
		{
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;

			model_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			*owner = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
			if (!a->replace)
				ereport(ERROR,
						(errcode(ERRCODE_DUPLICATE_OBJECT),
						 errmsg("model \"%s\" already exists", a->name),
						 errhint("Use replace => true to retrain it, or dsl.drop_model(%s) first.",
								 quote_literal_cstr(a->name))));
			if (!DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull)))
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("must be owner of model \"%s\" to replace it", a->name)));
		}
	}
	SPI_finish();
	return model_id;
}

static Oid
spvec_type_oid(void)
{
	List	   *names = list_make2(makeString("dsl"), makeString("spvec"));

	return LookupTypeNameOid(NULL, makeTypeNameFromNameList(names), false);
}

/*
 * Insert one part's rows: entity ids and their vectors as spvec, taken from
 * a sparse tensor (exactly its active entries) or from an embedding source
 * (densified rows, zeros dropped), 8192 rows per INSERT.
 */
static void
store_part(int64 model_id, const char *part, const SparseTensor *t,
		   const EmbeddingSource *src, StoredRows rows_are, const Interactions *d,
		   Oid spvec_oid)
{
	const int64 *ids = rows_are == ROWS_USERS ? d->user_ids :
		rows_are == ROWS_ITEMS ? d->item_ids : NULL;
	const int	chunk = 8192;
	int			n_rows = t ? t->n_rows : src->n_rows;
	int			dim = t ? t->dim : src->dim;
	Oid			types[4] = {INT8OID, TEXTOID, INT8ARRAYOID, get_array_type(spvec_oid)};
	SPIPlanPtr	plan;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec store",
											  ALLOCSET_DEFAULT_SIZES);
	int32	   *idx = palloc(sizeof(int32) * dim);
	float	   *rows = src ? palloc_extended((Size) chunk * dim * sizeof(float), MCXT_ALLOC_HUGE) : NULL;

	plan = SPI_prepare("INSERT INTO dsl.parameters (model_id, part, entity_id, vec) "
					   "SELECT $1, $2, e, v FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS x(e, v)",
					   4, types);
	if (plan == NULL)
		elog(ERROR, "dsl_rec: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	for (int r0 = 0; r0 < n_rows; r0 += chunk)
	{
		int			n = Min(chunk, n_rows - r0);
		MemoryContext old = MemoryContextSwitchTo(tmp);
		Datum	   *eids = palloc(sizeof(Datum) * n);
		Datum	   *vecs = palloc(sizeof(Datum) * n);
		Datum		args[4];

		if (src && src->dense == NULL)
			src->fill(src->arg, r0, n, rows);
		for (int i = 0; i < n; i++)
		{
			int			r = r0 + i;

			eids[i] = Int64GetDatum(ids ? ids[r] : (int64) r);
			if (t)
			{
				int64		b = t->row_ptr[r];
				int			nnz = (int) (t->row_ptr[r + 1] - b);

				for (int c = 0; c < nnz; c++)
					idx[c] = t->col[b + c];
				vecs[i] = PointerGetDatum(spvec_from_sparse(dim, nnz, idx, t->w + b));
			}
			else
			{
				const float *x = src->dense ? src->dense + (Size) r * dim : rows + (Size) i * dim;

				vecs[i] = PointerGetDatum(spvec_from_dense(x, dim));
			}
		}
		args[0] = Int64GetDatum(model_id);
		args[1] = CStringGetTextDatum(part);
		args[2] = PointerGetDatum(construct_array(eids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[3] = PointerGetDatum(construct_array(vecs, n, spvec_oid, -1, false, TYPALIGN_INT));
		MemoryContextSwitchTo(old);
		if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dsl_rec: inserting parameters failed");
		MemoryContextReset(tmp);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freeplan(plan);
	MemoryContextDelete(tmp);
	pfree(idx);
	if (rows)
		pfree(rows);
}

static void
store_seen(int64 model_id, const Interactions *d)
{
	const int64 chunk = 65536;
	Oid			types[3] = {INT8OID, INT8ARRAYOID, INT8ARRAYOID};
	SPIPlanPtr	plan;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec store",
											  ALLOCSET_DEFAULT_SIZES);
	int			u0 = 0;

	plan = SPI_prepare("INSERT INTO dsl.seen_items (model_id, user_id, items) "
					   "SELECT $1, u, pg_catalog.array_agg(i ORDER BY i) "
					   "FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS x(u, i) GROUP BY u",
					   3, types);
	if (plan == NULL)
		elog(ERROR, "dsl_rec: SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	while (u0 < d->n_users)
	{
		int			u1 = u0;
		int64		n;
		MemoryContext old;
		Datum	   *us,
				   *is;
		Datum		args[3];
		int64		k = 0;

		/* whole users, about `chunk` pairs at a time */
		while (u1 < d->n_users && (u1 == u0 || d->ptr[u1 + 1] - d->ptr[u0] <= chunk))
			u1++;
		n = d->ptr[u1] - d->ptr[u0];
		old = MemoryContextSwitchTo(tmp);
		us = palloc_extended(sizeof(Datum) * n, MCXT_ALLOC_HUGE);
		is = palloc_extended(sizeof(Datum) * n, MCXT_ALLOC_HUGE);
		for (int u = u0; u < u1; u++)
			for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
			{
				us[k] = Int64GetDatum(d->user_ids[u]);
				is[k] = Int64GetDatum(d->item_ids[d->items[p]]);
				k++;
			}
		args[0] = Int64GetDatum(model_id);
		args[1] = PointerGetDatum(construct_array(us, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		args[2] = PointerGetDatum(construct_array(is, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		MemoryContextSwitchTo(old);
		if (SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dsl_rec: inserting seen items failed");
		MemoryContextReset(tmp);
		CHECK_FOR_INTERRUPTS();
		u0 = u1;
	}
	SPI_freeplan(plan);
	MemoryContextDelete(tmp);
}

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

static void
store_model(const TrainArgs *a, int64 old_id, Oid old_owner, const Interactions *d,
			void *state, SparseTensor *const *tensors, int n_tensors,
			const char *hyper, const TrainOutcome *o)
{
	EmbeddingSource users,
				items;
	Oid			types[20] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT4OID,
		FLOAT8OID, TEXTOID, INT4OID, INT4OID, INT8OID, INT8OID, INT8OID, INT4OID,
	INT4OID, FLOAT8OID, FLOAT8OID, OIDOID, REGROLEARRAYOID, INT8OID};
	Datum		args[20];
	char		nulls[20];
	int64		model_id;
	bool		isnull;
	Oid			spvec_oid = spvec_type_oid();

	SPI_connect();
	memset(nulls, ' ', sizeof(nulls));
	args[18] = (Datum) 0;
	nulls[18] = 'n';
	if (old_id != 0)
	{
		Datum		del[1] = {Int64GetDatum(old_id)};
		Oid			delt[1] = {INT8OID};

		/* the new version keeps the readers of the old one */
		if (SPI_execute_with_args("DELETE FROM dsl.models WHERE model_id OPERATOR(pg_catalog.=) $1 "
								  "RETURNING readers",
								  1, delt, del, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
			elog(ERROR, "dsl_rec: deleting the previous model failed");
		if (SPI_processed == 1)
			args[18] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									 &isnull);
		nulls[18] = (SPI_processed == 1 && !isnull) ? ' ' : 'n';
	}

	args[0] = CStringGetTextDatum(a->name);
	args[1] = CStringGetTextDatum(a->model_type);
	args[2] = CStringGetTextDatum(dsl_relation_name(a->source));
	args[3] = CStringGetTextDatum(a->user_col);
	args[4] = CStringGetTextDatum(a->item_col);
	args[5] = Int32GetDatum(a->dim);
	args[6] = Float8GetDatum(a->density);
	args[7] = CStringGetTextDatum(hyper);
	args[8] = Int32GetDatum(d->n_users);
	args[9] = Int32GetDatum(d->n_items);
	args[10] = Int64GetDatum(d->n_pairs);
	args[11] = Int64GetDatum(o->active);
	args[12] = Int64GetDatum(o->total);
	args[13] = Int32GetDatum(o->epochs_run);
	args[14] = Int32GetDatum(o->best_epoch);
	if (o->best_epoch == 0)
		nulls[14] = 'n';
	args[15] = Float8GetDatum(o->final_loss);
	args[16] = Float8GetDatum(o->seconds);
	args[17] = ObjectIdGetDatum(old_owner);
	if (old_id == 0)
		nulls[17] = 'n';
	args[19] = Int64GetDatum((int64) o->peak_bytes);

	if (SPI_execute_with_args("INSERT INTO dsl.models (name, model_type, source, user_col, item_col, "
							  "dim, density, hyperparams, n_users, n_items, n_interactions, "
							  "active_params, total_params, epochs, best_epoch, final_loss, "
							  "train_seconds, owner, readers, train_peak_bytes) "
							  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8::pg_catalog.jsonb, $9, $10, "
							  "$11, $12, $13, $14, $15, $16, $17, "
							  "COALESCE($18::pg_catalog.regrole, CURRENT_USER::pg_catalog.regrole), "
							  "COALESCE($19, '{}'), $20) "
							  "RETURNING model_id",
							  20, types, args, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "dsl_rec: inserting the model failed");
	model_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* the serving rows, then any parameters that are not serving rows */
	a->ops->serving(state, tensors, &users, &items);
	if (a->ops->tensor_parts == NULL)
	{
		/* the tensors are the serving embeddings: store them exactly */
		store_part(model_id, "user", tensors[0], NULL, ROWS_USERS, d, spvec_oid);
		store_part(model_id, "item", tensors[1], NULL, ROWS_ITEMS, d, spvec_oid);
	}
	else
	{
		store_part(model_id, "user", NULL, &users, ROWS_USERS, d, spvec_oid);
		store_part(model_id, "item", NULL, &items, ROWS_ITEMS, d, spvec_oid);
		for (int i = 0; i < n_tensors; i++)
			if (a->ops->tensor_parts[i].part)
				store_part(model_id, a->ops->tensor_parts[i].part, tensors[i], NULL,
						   a->ops->tensor_parts[i].rows, d, spvec_oid);
	}
	store_seen(model_id, d);
	SPI_finish();
}

static double
elapsed_since(instr_time start)
{
	instr_time	now;

	INSTR_TIME_SET_CURRENT(now);
	INSTR_TIME_SUBTRACT(now, start);
	return INSTR_TIME_GET_DOUBLE(now);
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

PG_FUNCTION_INFO_V1(dsl_train);

/* dsl.train(...): train a model, store it, return one row per epoch */
Datum
dsl_train(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TrainArgs	a;
	MemoryContext train_ctx,
				phase_ctx,
				old_ctx;
	Interactions *data;			/* every pair of the source: stored as seen */
	Interactions *train;		/* the pairs trained on */
	MappedPairs *val = NULL;
	int			max_epochs;
	int64		horizon;
	double		prev_best = 0;	/* best validation recall of the schedules before */
	double		stop_gain = 0;
	DslConfig	cfg;
	DslEngine	engine;
	void	   *model;
	int64		old_id;
	Oid			old_owner = InvalidOid;
	int64		steps_per_epoch,
				interval;
	Size		need;
	int			rows[DSL_MAX_TENSORS];
	int			n_tensors;
	Size		limit = (Size) maintenance_work_mem * 1024;
	SparseTensor *best[DSL_MAX_TENSORS] = {0};
	double		best_recall = -1;
	int			since_best = 0;
	TrainOutcome out = {0};
	instr_time	t_start;

	PreventCommandIfReadOnly("dsl.train()");
	InitMaterializedSRF(fcinfo, 0);
	memset(&a, 0, sizeof(a));
	parse_args(fcinfo, &a);
	INSTR_TIME_SET_CURRENT(t_start);

	old_id = claim_model_name(&a, &old_owner);

	train_ctx = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec training",
									  ALLOCSET_DEFAULT_SIZES);
	old_ctx = MemoryContextSwitchTo(train_ctx);
	dsl_mem_track(train_ctx);

	data = dsl_read_interactions(a.source, a.user_col, a.item_col, limit);
	if (data->n_null > 0)
		ereport(NOTICE,
				(errmsg("skipped %lld rows of \"%s\" with a NULL %s or %s",
						(long long) data->n_null, dsl_relation_name(a.source),
						a.user_col, a.item_col)));
	if (data->n_duplicate > 0)
		ereport(NOTICE,
				(errmsg("%lld duplicate (user, item) rows of \"%s\" were counted once",
						(long long) data->n_duplicate, dsl_relation_name(a.source))));

	/*
	 * epochs => NULL: train until validation recall stops improving.  With
	 * no validation relation, a seeded share of each user's pairs is held
	 * out for it (and still stored as seen, so never recommended).
	 */
	train = data;
	if (a.epochs == 0 && !OidIsValid(a.validation))
	{
		dsl_holdout_split(data, a.holdout, a.holdout_users, (uint64) a.seed, &train, &val);
		a.held_pairs = val->n_pairs;
		for (int u = 0; u < data->n_users; u++)
			a.held_users += val->total[u] > 0;
	}
	max_epochs = a.epochs > 0 ? a.epochs : a.max_epochs;

	if (a.batch_size == 0)
		a.batch_size = a.params.batch_size = a.ops->default_batch_size(train);
	steps_per_epoch = a.ops->steps_per_epoch(train, &a.params);
	interval = a.update_interval > 0 ? a.update_interval :
		steps_per_epoch * a.ops->default_interval_epochs;
	a.params.steps_per_epoch = steps_per_epoch;
	a.params.update_interval = interval;
	if (a.ops->finish_options)
		a.ops->finish_options(a.model_opts, &a.params);

	memset(&cfg, 0, sizeof(cfg));
	cfg.density = a.density;
	cfg.dynamic = strcmp(a.sparsity, "dynamic") == 0;
	cfg.growth = strcmp(a.growth, "random") == 0 ? GROWTH_RANDOM : GROWTH_GRADIENT;
	cfg.schedule = strcmp(a.schedule, "constant") == 0 ? SCHEDULE_CONSTANT : SCHEDULE_COSINE;
	cfg.update_ratio = a.update_ratio;
	cfg.update_ratio_min = a.update_ratio_min;
	cfg.update_interval = interval;
	/*
	 * The zeta schedule's horizon: the epochs asked for, or, when the
	 * stopping rule decides, DSL_AUTO_HORIZON epochs (see docs/training.md).
	 */
	horizon = a.epochs > 0 ? a.epochs : Min(max_epochs, DSL_AUTO_HORIZON);
	cfg.total_steps = steps_per_epoch * horizon;
	cfg.seed = (uint64) a.seed;
	cfg.init_std = (float) a.init_std;
	cfg.lr_min = a.lr_min;
	cfg.adam.lr = (float) a.lr;
	cfg.adam.beta1 = (float) a.beta1;
	cfg.adam.beta2 = (float) a.beta2;
	cfg.adam.eps = (float) a.eps;
	/*
	 * Budget the model before allocating it: the engine's own estimate of
	 * its tensors and rounds, the model type's temporaries, a best-epoch
	 * snapshot when validating, and the hold-out split's arrays.
	 */
	n_tensors = a.ops->tensor_rows(train, &a.params, rows);
	need = a.ops->work_bytes(train, &a.params) +
		dsl_engine_estimate_bytes(&cfg, rows, n_tensors, a.dim);
	if (val != NULL || OidIsValid(a.validation))
		need += dsl_engine_estimate_snapshot_bytes(rows, n_tensors, a.dim, a.density);
	if (train != data)			/* the hold-out split: both parts' items and offsets */
		need += (Size) data->n_pairs * 2 * sizeof(int32) +
			(Size) (data->n_users + 1) * 2 * sizeof(int64) + (Size) data->n_users * sizeof(int32);
	if (need > limit)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("training model \"%s\" needs about %zu kB, more than maintenance_work_mem = %zu kB",
						a.name, need / 1024, limit / 1024),
				 errdetail("%d users and %d items at dim %d and density %g.",
						   data->n_users, data->n_items, a.dim, a.density),
				 errhint("Raise maintenance_work_mem for this session, e.g. SET maintenance_work_mem = '%zuMB'.",
						 need / (1024 * 1024) + 1)));

	/* the model of this phase, deleted (threads joined) before a refit */
	phase_ctx = AllocSetContextCreate(train_ctx, "dsl_rec model", ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(phase_ctx);
	dsl_engine_init(&engine, &cfg);
	model = a.ops->create(&engine, train, &a.params);

	if (OidIsValid(a.validation))
		val = dsl_read_mapped_pairs(a.validation, a.user_col, a.item_col,
									data->user_ids, data->n_users,
									data->item_ids, data->n_items,
									(Size) work_mem * 1024 + limit);

	out.total = dsl_engine_total(&engine);
	dsl_mem_note();
	for (int epoch = 1; epoch <= max_epochs; epoch++)
	{
		instr_time	t_epoch;
		int64		pruned_before = engine.pruned;
		double		loss;
		double		secs;
		EvalMetrics m;
		bool		evaluated = false;
		bool		time_up;
		bool		stop = false;

		INSTR_TIME_SET_CURRENT(t_epoch);
		loss = a.ops->train_epoch(model);
		secs = elapsed_since(t_epoch);
		dsl_mem_note();
		check_diverged(&a, epoch, loss);
		out.active = dsl_engine_active(&engine);
		out.epochs_run = epoch;
		out.final_loss = loss;

		time_up = a.epochs == 0 && elapsed_since(t_start) >= a.max_seconds;
		if (val != NULL && (epoch == max_epochs || time_up ||
							(a.eval_every > 0 && epoch % a.eval_every == 0) ||
							(a.eval_every == 0 && a.epochs > 0) ||
							(a.epochs == 0 && epoch == horizon)))
		{
			EmbeddingSource us,
						is;
			IndexCSR	seen = {train->n_users, train->ptr, train->items};
			IndexCSR	test = {data->n_users, val->ptr, val->items};

			a.ops->serving(model, engine.tensors, &us, &is);
			/* blocks of at most 64 MB (or work_mem if larger), not the whole budget */
			dsl_evaluate_full(&us, &is, &seen, &test, val->total, a.k,
							  Min(limit, Max((Size) work_mem * 1024, (Size) 64 * 1024 * 1024)),
							  &m);
			evaluated = true;
			if (m.recall > best_recall)
			{
				best_recall = m.recall;
				out.best_epoch = epoch;
				since_best = 0;
				for (int i = 0; i < engine.n_tensors; i++)
				{
					if (best[i])
						sparse_tensor_free(best[i]);
					best[i] = sparse_tensor_copy_weights(engine.tensors[i]);
				}
			}
			else if (!time_up && a.patience > 0 && ++since_best >= a.patience &&
					 epoch < max_epochs)
				stop = true;	/* patience given: the old-style rule */

			/*
			 * epochs => NULL: at the end of each schedule, go on over one
			 * twice as long (redrawn, so lr and zeta rise again to where that
			 * schedule would be) while a schedule's best validation recall
			 * beat the previous one's by DSL_AUTO_MIN_GAIN; otherwise stop.
			 */
			if (a.epochs == 0 && !stop && !time_up && epoch == horizon && epoch < max_epochs)
			{
				if (best_recall > prev_best * (1.0 + DSL_AUTO_MIN_GAIN))
				{
					ereport(NOTICE,
							(errmsg("model \"%s\": validation recall@%d %.4f after a schedule of %d epochs%s; continuing over one of %lld epochs",
									a.name, a.k, best_recall, epoch,
									prev_best > 0 ? psprintf(" (%.4f after the one before)", prev_best) : "",
									(long long) Min((int64) max_epochs, horizon * 2))));
					prev_best = best_recall;
					horizon = Min((int64) max_epochs, horizon * 2);
					dsl_engine_set_horizon(&engine, steps_per_epoch * horizon);
				}
				else
				{
					stop = true;
					stop_gain = prev_best > 0 ? best_recall / prev_best - 1.0 : 0.0;
				}
			}
		}

		emit_epoch_row(rsinfo, &engine, a.density, epoch, loss,
					   engine.pruned - pruned_before, secs, evaluated ? &m : NULL);

		if (!dsl_progress)
			;
		else if (evaluated)
			ereport(NOTICE,
					(errmsg("model \"%s\" epoch %d/%d: loss %.5f, recall@%d %.4f, ndcg@%d %.4f, %.2f s",
							a.name, epoch, max_epochs, loss, a.k, m.recall, a.k, m.ndcg, secs)));
		else
			ereport(NOTICE,
					(errmsg("model \"%s\" epoch %d/%d: loss %.5f, active %lld of %lld, %.2f s",
							a.name, epoch, max_epochs, loss, (long long) out.active,
							(long long) out.total, secs)));
		if (time_up)
		{
			ereport(NOTICE,
					(errmsg("model \"%s\": stopping at the time limit of %g s (option max_seconds); keeping epoch %d",
							a.name, a.max_seconds, out.best_epoch)));
			break;
		}
		if (stop)
		{
			if (a.patience > 0 && since_best >= a.patience)
				ereport(NOTICE,
						(errmsg("model \"%s\": stopping early, no improvement in %d evaluations; keeping epoch %d",
								a.name, a.patience, out.best_epoch)));
			else
				ereport(NOTICE,
						(errmsg("model \"%s\": stopping after %d epochs: the last schedule improved validation recall@%d by %.1f%% (less than %g%%); keeping epoch %d",
								a.name, epoch, a.k, 100.0 * stop_gain,
								100.0 * DSL_AUTO_MIN_GAIN, out.best_epoch)));
			break;
		}
	}
	/*
	 * The stopping rule chose a length on its own hold-out: train again from
	 * scratch on every pair over one schedule of that length and keep that
	 * model (docs/training.md, "Refit").  Not after the time limit.
	 */
	if (a.epochs == 0 && train != data && a.refit && out.best_epoch > 0 &&
		elapsed_since(t_start) < a.max_seconds)
	{
		int			first = out.epochs_run + 1;

		a.refit_epochs = out.best_epoch;
		MemoryContextSwitchTo(train_ctx);
		MemoryContextDelete(phase_ctx);
		memset(best, 0, sizeof(best));
		phase_ctx = AllocSetContextCreate(train_ctx, "dsl_rec model", ALLOCSET_DEFAULT_SIZES);
		MemoryContextSwitchTo(phase_ctx);

		steps_per_epoch = a.ops->steps_per_epoch(data, &a.params);
		if (a.update_interval == 0)
			interval = steps_per_epoch * a.ops->default_interval_epochs;
		a.params.steps_per_epoch = steps_per_epoch;
		a.params.update_interval = interval;
		cfg.update_interval = interval;
		cfg.total_steps = steps_per_epoch * a.refit_epochs;
		dsl_engine_init(&engine, &cfg);
		model = a.ops->create(&engine, data, &a.params);
		ereport(NOTICE,
				(errmsg("model \"%s\": refitting on all %lld pairs over %d epochs (epochs %d to %d), the length validation chose",
						a.name, (long long) data->n_pairs, a.refit_epochs, first,
						first + a.refit_epochs - 1),
				 errhint("options => '{\"refit\": false}' keeps the model of epoch %d instead.",
						 out.best_epoch)));
		for (int epoch = first; epoch < first + a.refit_epochs; epoch++)
		{
			instr_time	t_epoch;
			int64		pruned_before = engine.pruned;
			double		loss;
			double		secs;

			INSTR_TIME_SET_CURRENT(t_epoch);
			loss = a.ops->train_epoch(model);
			secs = elapsed_since(t_epoch);
			dsl_mem_note();
			check_diverged(&a, epoch, loss);
			emit_epoch_row(rsinfo, &engine, a.density, epoch, loss,
						   engine.pruned - pruned_before, secs, NULL);
			if (dsl_progress)
				ereport(NOTICE,
						(errmsg("model \"%s\" refit epoch %d/%d: loss %.5f, %.2f s",
								a.name, epoch - first + 1, a.refit_epochs, loss, secs)));
			out.epochs_run = epoch;
			out.final_loss = loss;
			out.active = dsl_engine_active(&engine);
		}
		out.best_epoch = out.epochs_run;	/* the stored model: the refit's last */
	}
	out.seconds = elapsed_since(t_start);
	out.peak_bytes = dsl_mem_peak();

	{
		SparseTensor *keep[DSL_MAX_TENSORS];
		char	   *hyper = hyperparams_json(&a, interval, engine.cfg.total_steps);

		for (int i = 0; i < engine.n_tensors; i++)
			keep[i] = (out.best_epoch > 0 && best[i]) ? best[i] : engine.tensors[i];
		store_model(&a, old_id, old_owner, data, model, keep, engine.n_tensors, hyper, &out);
	}

	MemoryContextSwitchTo(old_ctx);
	MemoryContextDelete(train_ctx);
	PG_RETURN_NULL();
}
