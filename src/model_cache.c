/*
 * model_cache.c - per-backend cache of models loaded for serving
 *
 * Loading a model reads the dsl.parameters rows its scorer needs (the
 * scorer comes from the model's model_type: ModelOps.scorer, scorer.h; the
 * inner-product scorer reads every 'user' and 'item' row) and every
 * dsl.seen_items row of it; a stream of dsl.recommend() calls must not pay
 * that each time, so the result is kept in backend-local memory.
 *
 * Validity.  A model's rows are never changed in place by dsl_rec: training
 * and retraining insert a new dsl.models row with a new model_id (replace
 * deletes the old one, its parameters going by cascade).  Each lookup runs a
 * saved plan against dsl.models under the caller's snapshot and uses a cached
 * entry only if it was loaded from the very same row version (model_id and
 * the row's xmin, so an in-place UPDATE of the models row, or a dropped and
 * re-created extension whose sequence restarted, also forces a reload) by the
 * same role (rows are read with the caller's privileges, so one role never
 * gets what another role loaded).  Another session's committed retrain is
 * therefore picked up by the next statement, a dropped model is an error, and
 * a transaction that cannot see a newer model keeps using what it can see.
 *
 * One copy per server.  With dsl_rec preloaded, a version is loaded once
 * per server: the first backend that loads it copies it into shared memory
 * and every backend (itself included) maps that copy (serve_shared.h); the
 * entries below then hold the local part and the mapping.  The lookup above
 * comes first all the same, so the snapshot and the privileges of the
 * caller decide which version, if any, it may serve.
 *
 * Entries live in their own memory context under CacheMemoryContext.  While
 * a model is being loaded that context hangs under the caller's context, so
 * an error half-way frees it; it is moved under CacheMemoryContext only when
 * complete.  At most SERVE_CACHE_SIZE models are kept; the least recently
 * used one is dropped first, and a newer version of a model replaces the
 * older one at once.
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "dsl_rec.h"
#include "dsl_util.h"
#include "model_access.h"
#include "model_cache.h"
#include "model_ops.h"
#include "serve_shared.h"
#include "spvec.h"
#include "workers.h"

/* rows fetched from a cursor at a time while loading */
#define LOAD_BATCH 2048

static ServeModel *serve_cache[SERVE_CACHE_SIZE];
static uint64 serve_clock = 0;

/* saved plans, prepared on first use */
static SPIPlanPtr plan_lookup = NULL;
static SPIPlanPtr plan_params = NULL;
static SPIPlanPtr plan_seen = NULL;

static SPIPlanPtr
prepare_saved(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	return plan;
}

static void
prepare_plans(void)
{
	Oid			text_arg[1] = {TEXTOID};
	Oid			id_arg[1] = {INT8OID};
	Oid			part_args[2] = {INT8OID, TEXTOID};

	if (plan_lookup == NULL)
		plan_lookup = prepare_saved(
									"SELECT model_id, dim, xmin, model_type, n_users, n_items FROM dsl.models"
									" WHERE name OPERATOR(pg_catalog.=) $1",
									1, text_arg);
	if (plan_params == NULL)
		plan_params = prepare_saved(
									"SELECT entity_id, vec FROM dsl.parameters"
									" WHERE model_id OPERATOR(pg_catalog.=) $1"
									" AND part OPERATOR(pg_catalog.=) $2"
									" ORDER BY entity_id",
									2, part_args);
	if (plan_seen == NULL)
		plan_seen = prepare_saved(
								  "SELECT user_id, items FROM dsl.seen_items"
								  " WHERE model_id OPERATOR(pg_catalog.=) $1"
								  " ORDER BY user_id",
								  1, id_arg);
}

/*
 * The settings the load queries are planned and run under, whatever the
 * session's own: a model's rows come in key order from the primary key's
 * index, which no other plan beats for reading them all.  Without these,
 * once the table's statistics spread over many models, the planner chose a
 * bitmap scan and a sort of the 2M rows of a model, which doubled its
 * load; and JIT compiled the scan's expressions for 60-200 ms per load.
 * Undone by load_settings_end(), or by the abort of the (sub)transaction.
 */
static int
load_settings_begin(void)
{
	static const char *const set[][2] = {
		{"enable_indexscan", "on"}, {"enable_sort", "off"},
		{"enable_bitmapscan", "off"}, {"enable_seqscan", "off"}, {"jit", "off"}
	};
	int			nest = NewGUCNestLevel();

	/* GUC_ACTION_SAVE: allowed in parallel mode too (a leader's) */
	for (int i = 0; i < lengthof(set); i++)
		(void) set_config_option(set[i][0], set[i][1], PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

static void
load_settings_end(int nest)
{
	AtEOXact_GUC(true, nest);
}

/* what the rows of a part are handed to, as the executor produces them */
typedef struct PartDest
{
	DestReceiver pub;
	ServeModel *m;
	const char *part;
	ServePartRow row;
	void	   *arg;
	int			dim;			/* the rows' dimension; -1: the first row's */
	int64		n;
	int64		last_id;
	MemoryContext rowcxt;		/* detoasted vectors, reset every LOAD_BATCH */
} PartDest;

static bool
part_receive(TupleTableSlot *slot, DestReceiver *self)
{
	PartDest   *d = (PartDest *) self;
	MemoryContext oldcxt;
	int64		id;
	SpVec	   *v;

	slot_getallattrs(slot);
	if (slot->tts_isnull[0] || slot->tts_isnull[1])
		elog(ERROR, "%s row of model \"%s\" is null", d->part, d->m->name);
	id = DatumGetInt64(slot->tts_values[0]);
	if (d->n > 0 && id <= d->last_id)
		elog(ERROR, "%s rows of model \"%s\" are not in ascending id order",
			 d->part, d->m->name);
	oldcxt = MemoryContextSwitchTo(d->rowcxt);
	v = DatumGetSpVecP(slot->tts_values[1]);
	MemoryContextSwitchTo(oldcxt);
	if (d->dim < 0)
		d->dim = spvec_dim(v);
	if (spvec_dim(v) != d->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("%s %lld of model \"%s\" has dimension %d, but the %s has dimension %d",
						d->part, (long long) id, d->m->name, spvec_dim(v),
						d->dim == d->m->dim ? "model" : "part", d->dim)));
	if (d->n >= PG_INT32_MAX / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model \"%s\" has too many %s rows to serve",
						d->m->name, d->part)));
	d->row(d->arg, d->n, id, v);
	d->last_id = id;
	d->n++;
	if (d->n % LOAD_BATCH == 0)
	{
		MemoryContextReset(d->rowcxt);
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

static void
part_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
}

static void
part_shutdown(DestReceiver *self)
{
}

static void
part_destroy(DestReceiver *self)
{
}

/*
 * See model_cache.h: scorers load their parts through this one reader, so
 * every part gets the same checks (ascending ids, dimension).  Rows go
 * from the executor straight to the callback (a DestReceiver: no copy of
 * each tuple into an SPI tuple table, no count(*) first); the callback is
 * told the row count dsl.models gives for the part, as a hint.  What is
 * left per row is the index scan's own cost (docs/serving.md).
 */
int64
serve_scan_part(ServeModel *m, const char *part, ServePartRow row, void *arg)
{
	return serve_scan_part_dim(m, part, m->dim, row, arg);
}

int64
serve_scan_part_dim(ServeModel *m, const char *part, int dim, ServePartRow row, void *arg)
{
	PartDest	d;
	SPIExecuteOptions opts;
	ParamListInfo params = makeParamList(2);
	int64		hint = 0;
	int			nest;

	if (strcmp(part, "user") == 0)
		hint = m->stored_users;
	else if (strcmp(part, "item") == 0)
		hint = m->stored_items;
	row(arg, -1, Max(hint, 0), NULL);

	params->params[0].value = Int64GetDatum(m->model_id);
	params->params[0].isnull = false;
	params->params[0].pflags = PARAM_FLAG_CONST;
	params->params[0].ptype = INT8OID;
	params->params[1].value = CStringGetTextDatum(part);
	params->params[1].isnull = false;
	params->params[1].pflags = PARAM_FLAG_CONST;
	params->params[1].ptype = TEXTOID;

	memset(&d, 0, sizeof(d));
	d.pub.receiveSlot = part_receive;
	d.pub.rStartup = part_startup;
	d.pub.rShutdown = part_shutdown;
	d.pub.rDestroy = part_destroy;
	d.pub.mydest = DestNone;
	d.m = m;
	d.part = part;
	d.row = row;
	d.arg = arg;
	d.dim = dim;
	/* a batch of vectors fits in the first block: no malloc per batch */
	d.rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec model rows",
									 0, 1024 * 1024, 1024 * 1024);

	memset(&opts, 0, sizeof(opts));
	opts.params = params;
	opts.read_only = true;
	opts.dest = (DestReceiver *) &d;
	/* a SELECT into a DestNone receiver reports SPI_OK_UTILITY */
	nest = load_settings_begin();
	if (SPI_execute_plan_extended(plan_params, &opts) < 0)
		elog(ERROR, "could not read the %s rows of model \"%s\"", part, m->name);
	load_settings_end(nest);
	MemoryContextDelete(d.rowcxt);
	return d.n;
}

/* more popular first, then lower index (= lower id) */
static int
cmp_popularity(const void *a, const void *b, void *arg)
{
	const int32 *pop = (const int32 *) arg;
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	if (pop[x] != pop[y])
		return pop[x] > pop[y] ? -1 : 1;
	return (x > y) - (x < y);
}

/*
 * Build the seen CSR from dsl.seen_items: item ids mapped to indices (ids the
 * model does not know are dropped), each row sorted without duplicates.
 * Rows of users without a 'user' row are ignored.  Then count popularity.
 */
static void
load_seen(ServeModel *m)
{
	Datum		args[1];
	bool		isnull;
	int64	   *ptr;
	int32	   *idx;
	int64		cap = 1024;
	int64		len = 0;
	int			next_user = 0;	/* rows of users before this are closed */
	int			nest;
	Portal		portal;
	MemoryContext rowcxt;
	MemoryContext oldcxt;

	ptr = MemoryContextAllocHuge(m->cxt, sizeof(int64) * (m->n_users + 1));
	idx = MemoryContextAllocHuge(m->cxt, sizeof(int32) * cap);
	ptr[0] = 0;

	args[0] = Int64GetDatum(m->model_id);
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec seen rows",
								   ALLOCSET_DEFAULT_SIZES);
	nest = load_settings_begin();
	portal = SPI_cursor_open(NULL, plan_seen, args, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, LOAD_BATCH);
		if (SPI_processed == 0)
			break;
		oldcxt = MemoryContextSwitchTo(rowcxt);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			int64		uid = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			ArrayType  *arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull));
			int			u = serve_user_index(m, uid);
			Datum	   *elems;
			bool	   *enulls;
			int			nel;
			int			nrow = 0;

			if (u < 0)
				continue;
			/* rows come in user_id order: users skipped so far have none */
			while (next_user < u)
				ptr[++next_user] = len;

			deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
							  TYPALIGN_DOUBLE, &elems, &enulls, &nel);
			if (len + nel > cap)
			{
				while (len + nel > cap)
					cap *= 2;
				idx = repalloc_huge(idx, sizeof(int32) * cap);
			}
			for (int e = 0; e < nel; e++)
			{
				int			i;

				if (enulls[e])
					continue;
				i = serve_item_index(m, DatumGetInt64(elems[e]));
				if (i >= 0)
					idx[len + nrow++] = i;
			}
			len += dsl_sort_unique_int32(idx + len, nrow);
			ptr[u + 1] = len;
			next_user = u + 1;
		}
		MemoryContextSwitchTo(oldcxt);
		MemoryContextReset(rowcxt);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	load_settings_end(nest);
	MemoryContextDelete(rowcxt);
	while (next_user < m->n_users)
		ptr[++next_user] = len;

	m->seen.n_rows = m->n_users;
	m->seen.ptr = ptr;
	m->seen.idx = idx;

	/* popularity: number of training users per item, and the order by it */
	m->popularity = MemoryContextAllocZero(m->cxt, sizeof(int32) * Max(m->n_items, 1));
	m->pop_order = MemoryContextAlloc(m->cxt, sizeof(int32) * Max(m->n_items, 1));
	for (int64 e = 0; e < len; e++)
		m->popularity[idx[e]]++;
	for (int i = 0; i < m->n_items; i++)
		m->pop_order[i] = i;
	qsort_arg(m->pop_order, m->n_items, sizeof(int32), cmp_popularity,
			  m->popularity);
}

static void
serve_entry_free(int slot)
{
	if (serve_cache[slot] != NULL)
	{
		MemoryContextDelete(serve_cache[slot]->cxt);
		serve_cache[slot] = NULL;
	}
}

/*
 * The scorer of model `name`'s model_type.  A type this library does not
 * know (a model stored by a newer version, restored into this one) or one
 * without a scorer cannot be served: an error naming the model and its type,
 * raised before anything is read.
 */
static const Scorer *
serve_resolve_scorer(const char *name, const char *model_type)
{
	const ModelOps *ops = dsl_model_type_find(model_type);

	if (ops == NULL || ops->scorer == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("model \"%s\" has model_type \"%s\", which this version of dsl_rec cannot serve",
						name, model_type),
				 ops == NULL ?
				 errhint("dsl.model_types() lists the model types this version serves.") :
				 errdetail("The model type provides no scorer.")));
	if (ops->scorer->load == NULL || ops->scorer->user_vector == NULL ||
		ops->scorer->rank_items == NULL || ops->scorer->score_items == NULL ||
		ops->scorer->rank_users == NULL)
		elog(ERROR, "scorer \"%s\" of model_type \"%s\" is incomplete",
			 ops->scorer->name, model_type);
	return ops->scorer;
}

/* See model_cache.h: the one message for an operation a type lacks. */
void
serve_unsupported(const ServeModel *m, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			 errmsg("%s is not supported for model \"%s\" of model_type \"%s\"",
					what, m->name, m->model_type)));
	pg_unreachable();
}

/* the role, name and type of an entry (the shared part has none of them) */
static void
serve_set_identity(ServeModel *m, const char *name, const char *model_type)
{
	m->role = GetUserId();
	m->name = MemoryContextStrdup(m->cxt, name);
	m->model_type = MemoryContextStrdup(m->cxt, model_type);
	MemoryContextSetIdentifier(m->cxt, m->name);
}

/*
 * Load model (model_id, xmin) under the current SPI connection: the scorer
 * of its model_type reads its parameters (and sets the id maps), then the
 * training items and popularity, which every scorer shares, are read.
 */
static ServeModel *
serve_model_load(const char *name, const char *model_type, int64 model_id,
				 int dim, int64 stored_users, int64 stored_items,
				 TransactionId xmin, MemoryContext parent)
{
	MemoryContext cxt;
	ServeModel *m;
	const Scorer *scorer = serve_resolve_scorer(name, model_type);

	cxt = AllocSetContextCreate(parent, "dsl_rec served model",
								ALLOCSET_DEFAULT_SIZES);
	m = MemoryContextAllocZero(cxt, sizeof(ServeModel));
	m->cxt = cxt;
	m->model_id = model_id;
	m->row_xmin = xmin;
	m->scorer = scorer;
	m->dim = dim;
	m->stored_users = stored_users;
	m->stored_items = stored_items;
	serve_set_identity(m, name, model_type);

	scorer->load(m);
	load_seen(m);
	return m;
}

ServeModel *
serve_model_get(const char *name)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[1];
	bool		isnull;
	int64		model_id;
	int			dim;
	TransactionId xmin;
	SPITupleTable *found;
	Oid			role = GetUserId();
	ServeModel *m = NULL;
	int			slot = -1;
	int			guc_level = model_tables_read_begin();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	prepare_plans();

	args[0] = CStringGetTextDatum(name);
	if (SPI_execute_plan(plan_lookup, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up model \"%s\"", name);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", name)));
	found = SPI_tuptable;		/* kept until a load has read model_type */
	model_id = DatumGetInt64(SPI_getbinval(found->vals[0], found->tupdesc, 1, &isnull));
	dim = DatumGetInt32(SPI_getbinval(found->vals[0], found->tupdesc, 2, &isnull));
	xmin = DatumGetTransactionId(SPI_getbinval(found->vals[0], found->tupdesc, 3, &isnull));

	for (int s = 0; s < SERVE_CACHE_SIZE; s++)
	{
		ServeModel *c = serve_cache[s];

		if (c && c->model_id == model_id && c->row_xmin == xmin && c->role == role)
		{
			m = c;
			m->hits++;
			break;
		}
	}

	if (m == NULL)
	{
		/* only a load needs the type (its scorer); SPI_finish frees it */
		char	   *model_type = SPI_getvalue(found->vals[0], found->tupdesc, 4);
		const Scorer *scorer = serve_resolve_scorer(name, model_type);

		/* this server's shared copy of the version, or a load of it */
		m = serve_shared_attach(model_id, xmin, scorer, caller);
		if (m == NULL)
		{
			ServeModel *shared;

			int64		stored_users = DatumGetInt32(SPI_getbinval(found->vals[0], found->tupdesc, 5, &isnull));
			int64		stored_items = DatumGetInt32(SPI_getbinval(found->vals[0], found->tupdesc, 6, &isnull));

			m = serve_model_load(name, model_type, model_id, dim,
								 stored_users, stored_items, xmin, caller);
			shared = serve_shared_publish(m, name, caller);
			if (shared != NULL)
			{
				MemoryContextDelete(m->cxt);
				m = shared;
			}
			else
			{
				if (m->scorer->state_finish)
					m->scorer->state_finish(m);
				serve_shared_note_local(name);
			}
		}
		if (m->shared_bytes > 0)
			serve_set_identity(m, name, model_type);

		/* complete: drop older versions of this name, then the LRU entry */
		for (int s = 0; s < SERVE_CACHE_SIZE; s++)
		{
			ServeModel *c = serve_cache[s];

			if (c && c->role == role &&
				(c->model_id == model_id || strcmp(c->name, name) == 0))
				serve_entry_free(s);
		}
		for (int s = 0; s < SERVE_CACHE_SIZE; s++)
		{
			if (serve_cache[s] == NULL)
			{
				slot = s;
				break;
			}
			if (slot < 0 || serve_cache[s]->last_used < serve_cache[slot]->last_used)
				slot = s;
		}
		serve_entry_free(slot);
		if (CacheMemoryContext == NULL)
			CreateCacheMemoryContext();
		MemoryContextSetParent(m->cxt, CacheMemoryContext);
		serve_cache[slot] = m;
	}
	m->last_used = ++serve_clock;

	SPI_freetuptable(found);
	SPI_finish();
	model_tables_read_end(guc_level);
	return m;
}

/*
 * The backend's pool for serving calls (a recommend, a fold-in): made on
 * first use and kept, its threads asleep on the condition variable between
 * calls, so that a call that takes a few milliseconds does not also start
 * and join threads; made again when the thread count asked for changes.
 * It lives in its own child of TopMemoryContext, so the threads are joined
 * when the backend exits.  Only the backend's own thread may use it, one
 * job at a time, as any pool.
 */
WorkerPool *
serve_worker_pool(void)
{
	static MemoryContext cxt = NULL;
	static WorkerPool *pool = NULL;
	static int	asked = 0;
	int			n_threads = dsl_threads;

	if (pool != NULL && asked == n_threads)
		return pool;
	if (cxt != NULL)
		MemoryContextDelete(cxt);	/* joins the old threads */
	pool = NULL;
	cxt = AllocSetContextCreate(TopMemoryContext, "dsl_rec serving threads",
								ALLOCSET_SMALL_SIZES);
	pool = worker_pool_create(n_threads, cxt);
	asked = n_threads;
	return pool;
}

/* dsl.serving_cache(): the models this backend holds */
PG_FUNCTION_INFO_V1(dsl_serving_cache);
Datum
dsl_serving_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			order[SERVE_CACHE_SIZE];
	int			n = 0;

	InitMaterializedSRF(fcinfo, 0);

	/* most recently used first */
	for (int s = 0; s < SERVE_CACHE_SIZE; s++)
		if (serve_cache[s])
			order[n++] = s;
	for (int a = 1; a < n; a++)
		for (int b = a; b > 0 &&
			 serve_cache[order[b]]->last_used > serve_cache[order[b - 1]]->last_used; b--)
		{
			int			t = order[b];

			order[b] = order[b - 1];
			order[b - 1] = t;
		}

	for (int j = 0; j < n; j++)
	{
		ServeModel *m = serve_cache[order[j]];
		Datum		values[9];
		bool		nulls[9] = {0};

		values[0] = CStringGetTextDatum(m->name);
		values[1] = Int64GetDatum(m->model_id);
		values[2] = ObjectIdGetDatum(m->role);
		values[3] = Int32GetDatum(m->n_users);
		values[4] = Int32GetDatum(m->n_items);
		values[5] = Int32GetDatum(m->dim);
		values[6] = Int64GetDatum(m->hits);
		values[7] = Int64GetDatum((int64) (MemoryContextMemAllocated(m->cxt, true) +
										   m->shared_bytes));
		/*
		 * The 0.1.0 declaration has no shared column: a row takes as many
		 * values as the declared result has columns.
		 */
		values[8] = BoolGetDatum(m->shared_bytes > 0);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* dsl.serving_cache_reset(): forget every cached model; returns how many */
PG_FUNCTION_INFO_V1(dsl_serving_cache_reset);
Datum
dsl_serving_cache_reset(PG_FUNCTION_ARGS)
{
	int			n = 0;

	(void) fcinfo;				/* no arguments */
	for (int s = 0; s < SERVE_CACHE_SIZE; s++)
	{
		if (serve_cache[s])
			n++;
		serve_entry_free(s);
	}
	PG_RETURN_INT32(n);
}
