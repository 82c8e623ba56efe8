/*
 * model_access.c - the tests behind the model tables' row-level security
 *
 * The policies of dsl.models, dsl.parameters and dsl.seen_items
 * (src/sql/20_models.sql, docs/security.md) call these two functions
 * instead of holding subqueries, because Citus refuses to make a table
 * with a subquery in a policy a reference table (docs/scale-out.md), and
 * the model tables are reference tables on a Citus cluster.
 *
 * dsl.model_visible(model_id, owned) tells whether the calling role sees
 * the model row (owned = false: dsl.models' own read policy decides, i.e.
 * owner or reader) or is a member of its owner (owned = true).  A policy
 * calls it once per row, so the answer for the whole statement is worked
 * out at the first call: one query collects the ids the caller may see (or
 * owns) into a sorted array kept with the call site (fn_extra, which lives
 * as long as the expression), and each row is a binary search in it.  A
 * STABLE function may do that: within one statement the visible models do
 * not change.  Per row this costs a function call and a search whatever
 * the number of models and whatever plan reads the table, where the
 * subqueries cost an initPlan (reads) or a hashed subplan (writes).
 *
 * dsl.member_of_any(roles) is the reader half of dsl.models' read policy:
 * whether the calling role is a member (pg_has_role MEMBER) of any of the
 * roles in the model's readers array.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "dsl_util.h"
#include "model_access.h"

/* the model ids one call site may see, sorted */
typedef struct VisibleModels
{
	int64	   *ids;
	int			n;
} VisibleModels;

/* the sorted ids of the models the caller sees (or owns), in cxt */
static VisibleModels *
collect_visible(bool owned, MemoryContext cxt)
{
	VisibleModels *v = MemoryContextAllocZero(cxt, sizeof(VisibleModels));
	int			guc_level = model_tables_read_begin();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute(owned ?
					"SELECT m.model_id FROM dsl.models m "
					"WHERE pg_catalog.pg_has_role(m.owner, 'MEMBER')" :
					"SELECT m.model_id FROM dsl.models m",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read dsl.models");
	v->n = (int) SPI_processed;
	v->ids = MemoryContextAlloc(cxt, sizeof(int64) * Max(v->n, 1));
	for (int r = 0; r < v->n; r++)
	{
		bool		isnull;

		v->ids[r] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[r],
												SPI_tuptable->tupdesc, 1, &isnull));
	}
	SPI_finish();
	model_tables_read_end(guc_level);
	qsort(v->ids, v->n, sizeof(int64), cmp_int64);
	return v;
}

/* dsl.model_visible(model_id bigint, owned boolean) RETURNS boolean */
PG_FUNCTION_INFO_V1(dsl_model_visible);
Datum
dsl_model_visible(PG_FUNCTION_ARGS)
{
	int64		model_id = PG_GETARG_INT64(0);
	bool		owned = PG_GETARG_BOOL(1);
	VisibleModels *v = (VisibleModels *) fcinfo->flinfo->fn_extra;

	/* the owned flag is a constant of the policy: one list per call site */
	if (v == NULL)
	{
		v = collect_visible(owned, fcinfo->flinfo->fn_mcxt);
		fcinfo->flinfo->fn_extra = v;
	}
	PG_RETURN_BOOL(bsearch(&model_id, v->ids, v->n, sizeof(int64), cmp_int64) != NULL);
}

/* dsl.member_of_any(roles regrole[]) RETURNS boolean */
PG_FUNCTION_INFO_V1(dsl_member_of_any);
Datum
dsl_member_of_any(PG_FUNCTION_ARGS)
{
	ArrayType  *roles = PG_GETARG_ARRAYTYPE_P(0);
	Oid			me = GetUserId();
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(roles, REGROLEOID, sizeof(Oid), true, TYPALIGN_INT,
					  &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && is_member_of_role(me, DatumGetObjectId(elems[i])))
			PG_RETURN_BOOL(true);
	PG_RETURN_BOOL(false);
}

/*
 * Reading the model tables from inside a Citus task.
 *
 * On a Citus cluster the model tables are reference tables: every node
 * holds a full copy (a placement), and Citus plans a read of them as a
 * distributed query that it runs on the local placement.  A query Citus
 * has pushed down to a worker (SELECT ... FROM users u, LATERAL
 * dsl.recommend('m', u.user_id, 20) over a distributed users table) runs
 * dsl.recommend inside a task, and Citus refuses any distributed query
 * there unless citus.allow_nested_distributed_execution is on, because a
 * shard a nested query reads may move under it.  Reference-table
 * placements do not move, and these reads touch only the model tables, so
 * model_tables_read_begin turns the setting on for them (at a new GUC nest
 * level: model_tables_read_end, or an error, restores the caller's value).
 * Without Citus there is no such setting and nothing is done.
 */
int
model_tables_read_begin(void)
{
	int			level = NewGUCNestLevel();

	if (GetConfigOption("citus.allow_nested_distributed_execution", true, false) != NULL)
		(void) set_config_option("citus.allow_nested_distributed_execution", "on",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
model_tables_read_end(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * Whether the model tables are Citus reference tables (dsl.enable_citus()
 * has run in this database).  The caller is connected to SPI.
 */
static bool
model_tables_distributed(void)
{
	bool		isnull;

	if (!OidIsValid(get_extension_oid("citus", true)))
		return false;
	if (SPI_execute("SELECT EXISTS (SELECT FROM pg_catalog.pg_dist_partition "
					"WHERE logicalrelid OPERATOR(pg_catalog.=) 'dsl.parameters'::pg_catalog.regclass)",
					true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read pg_dist_partition");
	return DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * A training on a Citus coordinator reads its source, often a distributed
 * table, and then writes the model into the reference tables, all in one
 * transaction.  Citus refuses that write when the read used several
 * connections to a node ("cannot modify table ... because there was a
 * parallel operation on a distributed table"), so when the model tables
 * are reference tables the whole training runs with
 * citus.multi_shard_modify_mode = sequential: one connection per node, for
 * the read too, and writes its rows as INSERT ... VALUES (train_store.c):
 * *distributed says so.  Returns the GUC nest level for
 * model_tables_read_end.
 * A training on a worker is refused: it would draw a model id from the
 * worker's own sequence, which the coordinator's ids collide with.
 */
int
model_tables_write_begin(bool *distributed)
{
	int			level = NewGUCNestLevel();

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	*distributed = model_tables_distributed();
	if (*distributed)
	{
		bool		isnull;

		if (SPI_execute("SELECT pg_catalog.citus_is_coordinator()", true, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not call citus_is_coordinator()");
		if (!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("dsl.train() runs on the Citus coordinator, not on a worker"),
					 errdetail("The model tables are reference tables (dsl.enable_citus()), and model ids come from the coordinator's sequence."),
					 errhint("Call dsl.train() on the coordinator; it reads distributed tables from every node.")));
	}
	SPI_finish();
	if (*distributed)
		(void) set_config_option("citus.multi_shard_modify_mode", "sequential",
								 PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
	return level;
}
