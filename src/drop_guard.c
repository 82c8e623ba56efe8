/*
 * drop_guard.c - a plain DROP EXTENSION dsl_rec refuses while models exist
 *
 * Trained models are rows of dsl.models, dsl.parameters and dsl.seen_items,
 * and those tables are members of the extension: DROP EXTENSION dsl_rec,
 * even without CASCADE, would drop them and every model with them, because
 * PostgreSQL drops an extension's members as part of the extension.  What
 * PostgreSQL does elsewhere is to refuse a drop without CASCADE while
 * something depends on the object, with SQLSTATE 2BP01; models are data,
 * not objects, so no dependency records them.  This event trigger function
 * (ddl_command_start, tag DROP EXTENSION; src/sql/70_drop_guard.sql) makes
 * the same refusal: DROP EXTENSION naming dsl_rec without CASCADE fails
 * while dsl.models has rows, naming a few of them and what to do.
 *
 * The count must see every model.  The dropping role owns the extension
 * (usually a superuser, which row-level security does not apply to), but
 * the role that created it may since have lost its superuser attribute
 * (ALTER ROLE ... NOSUPERUSER), and the model tables FORCE row-level
 * security on their owner: counted as the caller, such a role would see
 * only its own models, count 0 and drop everyone's.  So the count runs as
 * the owner of dsl.models with SECURITY_NOFORCE_RLS, the way PostgreSQL's
 * foreign-key checks read a table (ri_triggers.c): a table owner is exempt
 * from its policies unless they are forced, and that flag turns forcing
 * off for these queries only (row_security = off then has nothing to
 * refuse).  To reveal nothing (the names of other roles' models) to a role
 * that may not drop the extension anyway, the guard steps aside for a
 * caller who does not own it, and DROP EXTENSION fails with its own "must
 * be owner" error.
 *
 * A training that commits while the DROP runs is counted too: the guard
 * locks dsl.models against writers before counting (count_models).
 *
 * DROP OWNED BY the extension's owner drops the extension too, members and
 * all, even without CASCADE: it is refused the same way (tag DROP OWNED).
 *
 * On a Citus coordinator, a DROP EXTENSION dsl_rec that goes ahead first
 * drops the shards of the model tables made reference tables by
 * dsl.enable_citus() (drop_citus_shards; docs/scale-out.md).
 *
 * Limits (docs/lifecycle.md): event triggers do not fire in single-user
 * mode, nor while session_replication_role is replica, nor once the
 * trigger is disabled with ALTER EVENT TRIGGER; DROP SCHEMA dsl CASCADE
 * and DROP DATABASE are other commands.
 */
#include "postgres.h"

#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#define DSL_EXTENSION_NAME "dsl_rec"

/* how many model names the error's detail lists */
#define DROP_GUARD_NAMES 3

/*
 * Whether a DROP OWNED statement without CASCADE names the role that owns
 * the extension ext_oid: it would drop the extension, and every model with
 * its member tables, as a plain DROP EXTENSION would.
 */
static bool
drops_owner_restrict(DropOwnedStmt *stmt, Oid ext_oid)
{
	Oid			owner;
	HeapTuple	tup;
	ListCell   *lc;

	if (stmt->behavior == DROP_CASCADE || !OidIsValid(ext_oid))
		return false;
	tup = SearchSysCache1(EXTENSIONOID, ObjectIdGetDatum(ext_oid));
	if (!HeapTupleIsValid(tup))
		return false;
	owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
	ReleaseSysCache(tup);
	foreach(lc, stmt->roles)
	{
		if (get_rolespec_oid((RoleSpec *) lfirst(lc), true) == owner)
			return true;
	}
	return false;
}

/* whether a DROP EXTENSION statement names dsl_rec (with or without CASCADE) */
static bool
drops_dsl_rec(Node *parsetree)
{
	DropStmt   *stmt;
	ListCell   *lc;

	if (parsetree == NULL || !IsA(parsetree, DropStmt))
		return false;
	stmt = (DropStmt *) parsetree;
	if (stmt->removeType != OBJECT_EXTENSION)
		return false;
	foreach(lc, stmt->objects)
	{
		Node	   *name = lfirst(lc);

		if (IsA(name, String) && strcmp(strVal(name), DSL_EXTENSION_NAME) == 0)
			return true;
	}
	return false;
}

/*
 * On a Citus coordinator where dsl.enable_citus() made the model tables
 * reference tables, dropping the extension makes Citus forget them but
 * leaves their shard tables, data included, on every node (Citus does not
 * drop the shards of an extension's tables).  So the shards go first, as
 * Citus' own drop trigger removes a dropped table's: citus_drop_all_shards
 * for each model table, in the DROP's transaction (a DROP that fails
 * afterwards takes it back).  Not on a worker: there the coordinator's DROP
 * arrives after it has done this.
 */
static void
drop_citus_shards(Oid ext_oid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(ext_oid)};

	if (!OidIsValid(get_extension_oid("citus", true)))
		return;
	if (SPI_execute_with_args("SELECT pg_catalog.citus_drop_all_shards(c.oid, n.nspname, c.relname) "
							  "FROM pg_catalog.pg_extension e "
							  "JOIN pg_catalog.pg_class c ON c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace "
							  "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
							  "JOIN pg_catalog.pg_dist_partition p ON p.logicalrelid OPERATOR(pg_catalog.=) c.oid "
							  "WHERE e.oid OPERATOR(pg_catalog.=) $1 AND pg_catalog.citus_is_coordinator() "
							  "ORDER BY c.relname DESC",	/* seen_items, parameters, models */
							  1, argtypes, args, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dsl_drop_guard: could not drop the model tables' Citus shards");
}

/* whether a DROP EXTENSION statement names dsl_rec without CASCADE */
static bool
drops_dsl_rec_restrict(Node *parsetree)
{
	if (parsetree == NULL)
		return false;
	if (IsA(parsetree, DropOwnedStmt))
		return drops_owner_restrict((DropOwnedStmt *) parsetree,
									get_extension_oid(DSL_EXTENSION_NAME, true));
	return drops_dsl_rec(parsetree) &&
		((DropStmt *) parsetree)->behavior != DROP_CASCADE;
}

/*
 * The models table of the extension and its owner: dsl.models, found
 * through the extension's schema rather than by a name that search_path
 * resolves.  InvalidOid if there is none.
 */
static Oid
models_table(Oid ext_oid, Oid *owner)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(ext_oid)};
	bool		isnull;

	if (SPI_execute_with_args("SELECT c.oid, c.relowner FROM pg_catalog.pg_extension e "
							  "JOIN pg_catalog.pg_class c "
							  "ON c.relnamespace OPERATOR(pg_catalog.=) e.extnamespace "
							  "WHERE e.oid OPERATOR(pg_catalog.=) $1 "
							  "AND c.relname OPERATOR(pg_catalog.=) 'models' "
							  "AND c.relkind OPERATOR(pg_catalog.=) 'r'",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "dsl_rec: could not look up the models table");
	if (SPI_processed != 1)
		return InvalidOid;
	*owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
											SPI_tuptable->tupdesc, 2, &isnull));
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
										  SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * Run a query of the guard's with the newest snapshot (see count_models);
 * its result is in SPI_tuptable.
 */
static void
run_latest(const char *sql)
{
	SPIPlanPtr	plan = SPI_prepare(sql, 0, NULL);

	if (plan == NULL ||
		SPI_execute_snapshot(plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot,
							 true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dsl_rec: drop guard query failed: %s", sql);
}

/*
 * Count the rows of the models table and list the first DROP_GUARD_NAMES
 * names in byte order into `names`: "a", "b" and "c" when that is all of
 * them, "a", "b", "c" when more follow.  -1 if the table is gone.
 *
 * Concurrency: a training that inserts its model while the DROP runs must
 * either be counted or fail.  The table is first locked in SHARE ROW
 * EXCLUSIVE mode, which waits for every transaction that has written to it
 * and keeps new writers out until this one ends (the DROP itself goes on to
 * lock it exclusively); the mode conflicts with itself, so two concurrent
 * DROPs queue here rather than deadlock later.  The rows are then read with
 * the newest snapshot, not the transaction's, so that also under
 * REPEATABLE READ the count includes what committed while we waited (and,
 * through its command id, what this transaction wrote).
 *
 * Row-level security: the queries run as the table's owner with
 * SECURITY_NOFORCE_RLS (see the top of the file).
 */
static int64
count_models(Oid relid, Oid owner, StringInfo names)
{
	char	   *table;
	Oid			save_userid;
	int			save_sec_context;
	int64		n;
	bool		isnull;

	LockRelationOid(relid, ShareRowExclusiveLock);
	/* a concurrent DROP EXTENSION ... CASCADE may have dropped it meanwhile */
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return -1;
	table = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									   get_rel_name(relid));

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(owner, save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION | SECURITY_NOFORCE_RLS);

	run_latest(psprintf("SELECT pg_catalog.count(*) FROM %s", table));
	n = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (n > 0)
	{
		run_latest(psprintf("SELECT m.name FROM %s m ORDER BY m.name COLLATE pg_catalog.\"C\" LIMIT %d",
							table, DROP_GUARD_NAMES));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			if (i > 0)
				appendStringInfoString(names, i + 1 < SPI_processed || n > DROP_GUARD_NAMES ?
									   ", " : " and ");
			appendStringInfo(names, "\"%s\"",
							 SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		}
	}

	SetUserIdAndSecContext(save_userid, save_sec_context);
	return n;
}

/*
 * Event trigger function (ddl_command_start, DROP EXTENSION): refuse a DROP
 * EXTENSION of dsl_rec without CASCADE while models are stored.
 */
PG_FUNCTION_INFO_V1(dsl_drop_guard);
Datum
dsl_drop_guard(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Oid			ext_oid;
	Oid			relid;
	Oid			owner = InvalidOid;
	int64		n;
	bool		restrict_drop;
	StringInfoData names;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		elog(ERROR, "dsl_drop_guard: not fired by the event trigger manager");
	trigdata = (EventTriggerData *) fcinfo->context;

	restrict_drop = drops_dsl_rec_restrict(trigdata->parsetree);
	if (!restrict_drop && !drops_dsl_rec(trigdata->parsetree))
		PG_RETURN_NULL();
	ext_oid = get_extension_oid(DSL_EXTENSION_NAME, true);
	/* not the owner: DROP EXTENSION refuses on its own, and nothing leaks */
	if (!OidIsValid(ext_oid) || !pg_extension_ownercheck(ext_oid, GetUserId()))
		PG_RETURN_NULL();

	initStringInfo(&names);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	n = 0;
	if (restrict_drop)
	{
		relid = models_table(ext_oid, &owner);
		n = OidIsValid(relid) ? count_models(relid, owner, &names) : 0;
	}
	/* the drop goes ahead: first the shards of Citus reference tables */
	if (n == 0 && drops_dsl_rec(trigdata->parsetree))
		drop_citus_shards(ext_oid);
	SPI_finish();

	if (n > 0)
		ereport(ERROR,
				(errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
				 errmsg_plural("cannot drop extension %s because it holds %lld trained model",
							   "cannot drop extension %s because it holds %lld trained models",
							   (unsigned long) n, DSL_EXTENSION_NAME, (long long) n),
				 n <= DROP_GUARD_NAMES ?
				 errdetail_plural("The model is %s.", "The models are %s.", (unsigned long) n,
								  names.data) :
				 errdetail("The models include %s and %lld more.", names.data,
						   (long long) (n - DROP_GUARD_NAMES)),
				 IsA(trigdata->parsetree, DropOwnedStmt) ?
				 errhint("DROP OWNED would drop extension %s, which the role owns. "
						 "Drop the models with dsl.drop_model() first, "
						 "or export them first with pg_dump --data-only --schema=dsl, "
						 "or use DROP OWNED ... CASCADE to drop the extension with every model.",
						 DSL_EXTENSION_NAME) :
				 errhint("Drop the models with dsl.drop_model() first, "
						 "or export them first with pg_dump --data-only --schema=dsl, "
						 "or use DROP EXTENSION %s CASCADE to drop the extension with every model.",
						 DSL_EXTENSION_NAME)));
	PG_RETURN_NULL();
}
