/*
 * train_store.c - dsl.train()'s model name and storage
 *
 * The name is claimed first, before any data are read: a transaction-scoped
 * advisory lock turns a concurrent training of the same name into an
 * immediate, clear error, and an existing model of that name must be ours
 * and replace => true.  The model is stored only after training ended well,
 * in the caller's transaction: the previous version is deleted (keeping its
 * readers) and the new one inserted, so an error, a cancel or a crash
 * leaves the previous model intact.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_type.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "dsl_rec.h"
#include "spvec.h"
#include "train_store.h"

/* advisory lock class for "a model of this name is being trained" */
#define DSL_LOCK_CLASS 1146309714	/* "DSLR" */

/*
 * Take the name lock and look at an existing model of that name.  Returns
 * the existing model_id (0 if none) and its owner.
 */
int64
dsl_train_claim_name(const TrainArgs *a, Oid *owner)
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

/* dsl.spvec's type oid, for the arrays of vectors handed to INSERT */
static Oid
spvec_type_oid(void)
{
	List	   *names = list_make2(makeString("dsl"), makeString("spvec"));

	return LookupTypeNameOid(NULL, makeTypeNameFromNameList(names), false);
}

/*
 * Rows into a model table that is a Citus reference table
 * (model_tables_write_begin): Citus runs an INSERT ... SELECT into it as a
 * COPY into each copy of the table, and PostgreSQL refuses COPY FROM into a
 * table under row-level security, so there the rows go as multi-row
 * INSERT ... VALUES, which Citus sends on as INSERTs (with two-phase
 * commit).  head is "INSERT INTO table (columns)"; cols[c][r] is row r's
 * value of column c.
 */
static void
insert_values(const char *head, int ncols, const Oid *types, int nrows, Datum **cols)
{
	const int	batch = 1024;

	for (int r0 = 0; r0 < nrows; r0 += batch)
	{
		int			n = Min(batch, nrows - r0);
		Oid		   *argtypes = palloc(sizeof(Oid) * n * ncols);
		Datum	   *args = palloc(sizeof(Datum) * n * ncols);
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfo(&sql, "%s VALUES ", head);
		for (int i = 0; i < n; i++)
		{
			appendStringInfoString(&sql, i ? ",(" : "(");
			for (int c = 0; c < ncols; c++)
			{
				int			a = i * ncols + c;

				appendStringInfo(&sql, c ? ",$%d" : "$%d", a + 1);
				argtypes[a] = types[c];
				args[a] = cols[c][r0 + i];
			}
			appendStringInfoChar(&sql, ')');
		}
		if (SPI_execute_with_args(sql.data, n * ncols, argtypes, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dsl_rec: inserting into a model table failed");
		pfree(sql.data);
		pfree(argtypes);
		pfree(args);
	}
}

/*
 * Insert one part's rows: entity ids and their vectors as spvec, taken from
 * a sparse tensor (exactly its active entries) or from an embedding source
 * (densified rows, zeros dropped), 8192 rows per INSERT.
 */
static void
store_part(int64 model_id, const char *part, const SparseTensor *t,
		   const EmbeddingSource *src, StoredRows rows_are, const Interactions *d,
		   Oid spvec_oid, bool values_form)
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

	plan = values_form ? NULL :
		SPI_prepare("INSERT INTO dsl.parameters (model_id, part, entity_id, vec) "
					"SELECT $1, $2, e, v FROM ROWS FROM (pg_catalog.unnest($3), pg_catalog.unnest($4)) AS x(e, v)",
					4, types);
	if (plan == NULL && !values_form)
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
		if (!values_form)
		{
			args[2] = PointerGetDatum(construct_array(eids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			args[3] = PointerGetDatum(construct_array(vecs, n, spvec_oid, -1, false, TYPALIGN_INT));
		}
		else
		{
			Oid			vtypes[4] = {INT8OID, TEXTOID, INT8OID, spvec_oid};
			Datum	   *mids = palloc(sizeof(Datum) * n);
			Datum	   *parts = palloc(sizeof(Datum) * n);
			Datum	   *vcols[4] = {mids, parts, eids, vecs};

			for (int i = 0; i < n; i++)
			{
				mids[i] = args[0];
				parts[i] = args[1];
			}
			insert_values("INSERT INTO dsl.parameters (model_id, part, entity_id, vec)",
						  4, vtypes, n, vcols);
		}
		MemoryContextSwitchTo(old);
		if (!values_form &&
			SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dsl_rec: inserting parameters failed");
		MemoryContextReset(tmp);
		CHECK_FOR_INTERRUPTS();
	}
	if (plan)
		SPI_freeplan(plan);
	MemoryContextDelete(tmp);
	pfree(idx);
	if (rows)
		pfree(rows);
}

static int
cmp_int64_datum(const void *a, const void *b)
{
	int64		x = DatumGetInt64(*(const Datum *) a);
	int64		y = DatumGetInt64(*(const Datum *) b);

	return (x > y) - (x < y);
}

/*
 * Insert every user's training items (all pairs of the source, the hold-out
 * included) as one sorted bigint[] row per user: what serving excludes.
 * Whole users, about 65536 pairs per INSERT.
 */
static void
store_seen(int64 model_id, const Interactions *d, bool values_form)
{
	const int64 chunk = 65536;
	Oid			types[3] = {INT8OID, INT8ARRAYOID, INT8ARRAYOID};
	SPIPlanPtr	plan;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec store",
											  ALLOCSET_DEFAULT_SIZES);
	int			u0 = 0;

	plan = values_form ? NULL :
		SPI_prepare("INSERT INTO dsl.seen_items (model_id, user_id, items) "
					"SELECT $1, u, pg_catalog.array_agg(i ORDER BY i) "
					"FROM ROWS FROM (pg_catalog.unnest($2), pg_catalog.unnest($3)) AS x(u, i) GROUP BY u",
					3, types);
	if (plan == NULL && !values_form)
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
		if (!values_form)
		{
			args[1] = PointerGetDatum(construct_array(us, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
			args[2] = PointerGetDatum(construct_array(is, (int) n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		}
		else
		{
			Oid			vtypes[3] = {INT8OID, INT8OID, INT8ARRAYOID};
			int			nu = u1 - u0;
			Datum	   *mids = palloc(sizeof(Datum) * nu);
			Datum	   *uids = palloc(sizeof(Datum) * nu);
			Datum	   *arrs = palloc(sizeof(Datum) * nu);
			Datum	   *vcols[3] = {mids, uids, arrs};

			k = 0;
			for (int u = u0; u < u1; u++)
			{
				int			m = (int) (d->ptr[u + 1] - d->ptr[u]);

				/* the user's items ascending, as array_agg(i ORDER BY i) */
				qsort(is + k, m, sizeof(Datum), cmp_int64_datum);
				mids[u - u0] = args[0];
				uids[u - u0] = Int64GetDatum(d->user_ids[u]);
				arrs[u - u0] = PointerGetDatum(construct_array(is + k, m, INT8OID, 8,
															   FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
				k += m;
			}
			insert_values("INSERT INTO dsl.seen_items (model_id, user_id, items)",
						  3, vtypes, nu, vcols);
		}
		MemoryContextSwitchTo(old);
		if (!values_form &&
			SPI_execute_plan(plan, args, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dsl_rec: inserting seen items failed");
		MemoryContextReset(tmp);
		CHECK_FOR_INTERRUPTS();
		u0 = u1;
	}
	if (plan)
		SPI_freeplan(plan);
	MemoryContextDelete(tmp);
}

/* one column of the dsl.models row being inserted */
typedef struct ModelColumn
{
	const char *name;
	Oid			type;
	Datum		value;
	bool		isnull;
	const char *expr;			/* its VALUES expression, %d the parameter
								 * number; NULL: the parameter itself */
} ModelColumn;

#define MODEL_COLUMNS 22

static void
set_column(ModelColumn *cols, int *n, const char *name, Oid type, Datum value,
		   bool isnull, const char *expr)
{
	Assert(*n < MODEL_COLUMNS);
	cols[*n].name = name;
	cols[*n].type = type;
	cols[*n].value = value;
	cols[*n].isnull = isnull;
	cols[*n].expr = expr;
	(*n)++;
}

/*
 * Insert the dsl.models row and return its model_id.  Each column is named
 * beside its value; the statement is built from that list.
 */
static int64
insert_model_row(const TrainArgs *a, const Interactions *d, const TrainOutcome *o,
				 Oid old_owner, Datum readers, bool no_readers)
{
	ModelColumn cols[MODEL_COLUMNS];
	Oid			types[MODEL_COLUMNS];
	Datum		args[MODEL_COLUMNS];
	char		nulls[MODEL_COLUMNS];
	StringInfoData names,
				values;
	int			n = 0;
	bool		isnull;

	set_column(cols, &n, "name", TEXTOID, CStringGetTextDatum(a->name), false, NULL);
	set_column(cols, &n, "model_type", TEXTOID, CStringGetTextDatum(a->model_type), false, NULL);
	set_column(cols, &n, "source", TEXTOID,
			   CStringGetTextDatum(dsl_relation_name(a->source)), false, NULL);
	set_column(cols, &n, "user_col", TEXTOID, CStringGetTextDatum(a->user_col), false, NULL);
	set_column(cols, &n, "item_col", TEXTOID, CStringGetTextDatum(a->item_col), false, NULL);
	set_column(cols, &n, "dim", INT4OID, Int32GetDatum(a->dim), false, NULL);
	set_column(cols, &n, "density", FLOAT8OID, Float8GetDatum(a->density), false, NULL);
	set_column(cols, &n, "hyperparams", TEXTOID,
			   CStringGetTextDatum(dsl_train_hyperparams_json(a)), false,
			   "$%d::pg_catalog.jsonb");
	set_column(cols, &n, "n_users", INT4OID, Int32GetDatum(d->n_users), false, NULL);
	set_column(cols, &n, "n_items", INT4OID, Int32GetDatum(d->n_items), false, NULL);
	set_column(cols, &n, "n_interactions", INT8OID, Int64GetDatum(d->n_pairs), false, NULL);
	set_column(cols, &n, "active_params", INT8OID, Int64GetDatum(o->active), false, NULL);
	set_column(cols, &n, "total_params", INT8OID, Int64GetDatum(o->total), false, NULL);
	set_column(cols, &n, "epochs", INT4OID, Int32GetDatum(o->epochs_run), false, NULL);
	set_column(cols, &n, "best_epoch", INT4OID, Int32GetDatum(o->best_epoch),
			   o->best_epoch == 0, NULL);
	set_column(cols, &n, "final_loss", FLOAT8OID, Float8GetDatum(o->final_loss), false, NULL);
	set_column(cols, &n, "train_seconds", FLOAT8OID, Float8GetDatum(o->seconds), false, NULL);
	/* a replaced model keeps its owner and readers */
	set_column(cols, &n, "owner", OIDOID, ObjectIdGetDatum(old_owner), !OidIsValid(old_owner),
			   "COALESCE($%d::pg_catalog.regrole, CURRENT_USER::pg_catalog.regrole)");
	set_column(cols, &n, "readers", REGROLEARRAYOID, readers, no_readers,
			   "COALESCE($%d, '{}')");
	set_column(cols, &n, "train_peak_bytes", INT8OID, Int64GetDatum((int64) o->peak_bytes),
			   false, NULL);
	/* only in a continuation: version 0.1.0's table lacks these columns */
	if (a->warm_start)
	{
		set_column(cols, &n, "continued_from", INT8OID, Int64GetDatum(a->continued_from),
				   false, NULL);
		set_column(cols, &n, "new_interactions", INT8OID, Int64GetDatum(a->new_pairs),
				   false, NULL);
	}

	initStringInfo(&names);
	initStringInfo(&values);
	for (int i = 0; i < n; i++)
	{
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", cols[i].name);
		if (i > 0)
			appendStringInfoString(&values, ", ");
		appendStringInfo(&values, cols[i].expr ? cols[i].expr : "$%d", i + 1);
		types[i] = cols[i].type;
		args[i] = cols[i].value;
		nulls[i] = cols[i].isnull ? 'n' : ' ';
	}
	if (SPI_execute_with_args(psprintf("INSERT INTO dsl.models (%s) VALUES (%s) RETURNING model_id",
									   names.data, values.data),
							  n, types, args, nulls, false, 1) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "dsl_rec: inserting the model failed");
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Store the trained model in the caller's transaction: replace the previous
 * version (old_id, 0 if none), then the serving rows, any parameters that
 * are not serving rows and every user's seen items.
 */
void
dsl_train_store(const TrainArgs *a, int64 old_id, Oid old_owner, const Interactions *d,
				void *state, SparseTensor *const *tensors, int n_tensors,
				const TrainOutcome *o, bool distributed)
{
	EmbeddingSource users,
				items;
	Datum		readers = (Datum) 0;
	bool		no_readers = true;
	int64		model_id;
	Oid			spvec_oid = spvec_type_oid();

	SPI_connect();
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
			readers = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
									&no_readers);
	}
	else
		old_owner = InvalidOid;
	model_id = insert_model_row(a, d, o, old_owner, readers, no_readers);

	/* the serving rows, then any parameters that are not serving rows */
	a->ops->serving(state, tensors, &users, &items);
	if (a->ops->tensor_parts == NULL)
	{
		/* the tensors are the serving embeddings: store them exactly */
		store_part(model_id, "user", tensors[0], NULL, ROWS_USERS, d, spvec_oid, distributed);
		store_part(model_id, "item", tensors[1], NULL, ROWS_ITEMS, d, spvec_oid, distributed);
	}
	else
	{
		/* a tensor stored as 'user' or 'item' replaces that serving part */
		bool		user_part = false,
					item_part = false;

		for (int i = 0; i < n_tensors; i++)
		{
			const char *part = a->ops->tensor_parts[i].part;

			user_part |= part && strcmp(part, "user") == 0;
			item_part |= part && strcmp(part, "item") == 0;
		}
		if (!user_part)
			store_part(model_id, "user", NULL, &users, ROWS_USERS, d, spvec_oid, distributed);
		if (!item_part)
			store_part(model_id, "item", NULL, &items, ROWS_ITEMS, d, spvec_oid, distributed);
		for (int i = 0; i < n_tensors; i++)
			if (a->ops->tensor_parts[i].part)
				store_part(model_id, a->ops->tensor_parts[i].part, tensors[i], NULL,
						   a->ops->tensor_parts[i].rows, d, spvec_oid, distributed);
	}
	store_seen(model_id, d, distributed);
	SPI_finish();
}
