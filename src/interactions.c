/*
 * interactions.c - scan (user, item) pairs from a table, view, materialized
 * view, partitioned or foreign table through SPI, and map ids to indices
 *
 * The one reader of (user, item) pairs: dsl.train's source and validation
 * relations and dsl.evaluate's test pairs are all read by
 * dsl_read_pair_ids(), and every function that takes (source, user_col,
 * item_col), dsl.split included, validates the columns with
 * dsl_check_source_column(), so a bad column gets one message and one
 * SQLSTATE whichever function it is passed to.
 */
#include "postgres.h"

#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "dsl_util.h"
#include "interactions.h"

#define FETCH_ROWS 10000

/*
 * Schema-qualified, quoted name of a relation; errors (42P01) when relid
 * names no relation.
 */
char *
dsl_relation_name(Oid relid)
{
	char	   *nsp = get_namespace_name(get_rel_namespace(relid));
	char	   *rel = get_rel_name(relid);

	if (nsp == NULL || rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(nsp, rel);
}

/*
 * Check that relid is something rows can be read from and that col names one
 * of its user columns with an integer type.  param is the SQL argument that
 * passed col (user_col, item_col), named in the messages.
 */
void
dsl_check_source_column(Oid relid, const char *col, const char *param)
{
	char		relkind = get_rel_relkind(relid);
	AttrNumber	attnum;
	Oid			typid;

	if (relkind != RELKIND_RELATION && relkind != RELKIND_VIEW &&
		relkind != RELKIND_MATVIEW && relkind != RELKIND_PARTITIONED_TABLE &&
		relkind != RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table, view, materialized view or foreign table",
						dsl_relation_name(relid))));

	if (col == NULL || col[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must name a column of \"%s\"", param, dsl_relation_name(relid))));

	attnum = get_attnum(relid, col);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" does not exist in \"%s\"", col, dsl_relation_name(relid)),
				 errhint("Pass the column name as %s => '...'; it is matched exactly, including case.",
						 param)));
	if (attnum < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s cannot be the system column \"%s\"", param, col)));

	typid = get_atttype(relid, attnum);
	if (typid != INT2OID && typid != INT4OID && typid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of \"%s\" has type %s, but %s must be smallint, integer or bigint",
						col, dsl_relation_name(relid), format_type_be(typid), param)));
}

/*
 * Read all non-NULL pairs into *out.  Memory comes from the caller's context;
 * the growing arrays are checked against mem_limit (named limit_name in the
 * error) as they grow.
 */
void
dsl_read_pair_ids(Oid relid, const char *user_col, const char *item_col,
				  Size mem_limit, const char *limit_name, PairIds *out)
{
	MemoryContext outer = CurrentMemoryContext;
	char	   *query;
	Portal		portal;
	int64		cap = 65536;

	dsl_check_source_column(relid, user_col, "user_col");
	dsl_check_source_column(relid, item_col, "item_col");

	memset(out, 0, sizeof(PairIds));
	out->u = palloc_extended(cap * sizeof(int64), MCXT_ALLOC_HUGE);
	out->i = palloc_extended(cap * sizeof(int64), MCXT_ALLOC_HUGE);

	query = psprintf("SELECT %s::pg_catalog.int8, %s::pg_catalog.int8 FROM %s",
					 quote_identifier(user_col), quote_identifier(item_col),
					 dsl_relation_name(relid));

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	portal = SPI_cursor_open_with_args(NULL, query, 0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;

		if (out->n + (int64) SPI_processed > cap)
		{
			MemoryContext old = MemoryContextSwitchTo(outer);
			int64		newcap = Max(cap * 2, out->n + (int64) SPI_processed);

			if ((Size) newcap * 2 * sizeof(int64) > mem_limit)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("reading \"%s\" needs more than %s = %zu kB",
								dsl_relation_name(relid), limit_name, mem_limit / 1024),
						 errdetail("More than %lld rows were read, 16 bytes each.",
								   (long long) out->n),
						 errhint("Raise %s for this session, e.g. SET %s = '2GB'.",
								 limit_name, limit_name)));
			out->u = repalloc_huge(out->u, newcap * sizeof(int64));
			out->i = repalloc_huge(out->i, newcap * sizeof(int64));
			cap = newcap;
			MemoryContextSwitchTo(old);
		}

		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			bool		nu,
						ni;
			Datum		du = SPI_getbinval(tup, desc, 1, &nu);
			Datum		di = SPI_getbinval(tup, desc, 2, &ni);

			out->n_rows++;
			if (nu || ni)
			{
				out->n_null++;
				continue;
			}
			out->u[out->n] = DatumGetInt64(du);
			out->i[out->n] = DatumGetInt64(di);
			out->n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
}

/*
 * dsl.check_id_columns(source, user_col, item_col): the checks of
 * dsl_check_source_column() for both columns, for dsl.split (PL/pgSQL).
 */
PG_FUNCTION_INFO_V1(dsl_check_id_columns);
Datum
dsl_check_id_columns(PG_FUNCTION_ARGS)
{
	dsl_arg_not_null(fcinfo, 0, "source");
	dsl_arg_not_null(fcinfo, 1, "user_col");
	dsl_arg_not_null(fcinfo, 2, "item_col");
	dsl_check_source_column(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(1)),
							"user_col");
	dsl_check_source_column(PG_GETARG_OID(0), text_to_cstring(PG_GETARG_TEXT_PP(2)),
							"item_col");
	PG_RETURN_VOID();
}

/* Free the arrays of a PairIds filled by dsl_read_pair_ids(). */
void
dsl_free_pair_ids(PairIds *p)
{
	pfree(p->u);
	pfree(p->i);
	p->u = p->i = NULL;
}

/* sorted distinct copy of ids[0..n) */
static int64 *
distinct_ids(const int64 *ids, int64 n, int64 *n_out)
{
	int64	   *s = palloc_extended(Max(n, 1) * sizeof(int64), MCXT_ALLOC_HUGE);

	memcpy(s, ids, n * sizeof(int64));
	*n_out = dsl_sort_unique_int64(s, n);
	return s;
}

/*
 * Build CSR rows from (row, col) index pairs (col == -1 entries skipped),
 * sorting and de-duplicating each row.  Returns the number of duplicates.
 */
static int64
build_csr(int n_rows, const int32 *row, const int32 *col, int64 n,
		  int64 **ptr_out, int32 **idx_out, int64 *nnz_out)
{
	int64	   *ptr = palloc_extended((n_rows + 1) * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	int64	   *fill;
	int32	   *idx;
	int64		total = 0,
				dup = 0,
				k = 0;

	for (int64 p = 0; p < n; p++)
		if (row[p] >= 0 && col[p] >= 0)
			ptr[row[p] + 1]++;
	for (int r = 0; r < n_rows; r++)
		ptr[r + 1] += ptr[r];
	total = ptr[n_rows];
	idx = palloc_extended(Max(total, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	fill = palloc_extended((n_rows + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	memcpy(fill, ptr, (n_rows + 1) * sizeof(int64));
	for (int64 p = 0; p < n; p++)
		if (row[p] >= 0 && col[p] >= 0)
			idx[fill[row[p]]++] = col[p];

	/* sort and dedupe each row, compacting in place */
	for (int r = 0; r < n_rows; r++)
	{
		int64		b = ptr[r],
					e = ptr[r + 1];
		int64		len = e - b;
		int64		u = dsl_sort_unique_int32(idx + b, len);

		dup += len - u;
		memmove(idx + k, idx + b, u * sizeof(int32));
		ptr[r] = k;
		k += u;
		if ((r & 0xFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ptr[n_rows] = k;
	pfree(fill);
	*ptr_out = ptr;
	*idx_out = idx;
	*nnz_out = k;
	return dup;
}

/*
 * Training interactions: every non-NULL pair of the relation, ids mapped to
 * their ranks, distinct pairs as CSR by user.  Errors when no pair is left.
 */
Interactions *
dsl_read_interactions(Oid relid, const char *user_col, const char *item_col,
					  Size mem_limit)
{
	Interactions *in = palloc0(sizeof(Interactions));
	PairIds		rp;
	int64		nu,
				ni;
	int32	   *ru,
			   *ri;

	dsl_read_pair_ids(relid, user_col, item_col, mem_limit, "maintenance_work_mem", &rp);
	in->n_rows = rp.n_rows;
	in->n_null = rp.n_null;
	if (rp.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("\"%s\" has no interactions to train on", dsl_relation_name(relid)),
				 errdetail("%lld rows were read, %lld of them with a NULL user or item.",
						   (long long) rp.n_rows, (long long) rp.n_null)));

	in->user_ids = distinct_ids(rp.u, rp.n, &nu);
	in->item_ids = distinct_ids(rp.i, rp.n, &ni);
	if (nu > PG_INT32_MAX / 2 || ni > PG_INT32_MAX / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many distinct users (%lld) or items (%lld)",
						(long long) nu, (long long) ni)));
	in->n_users = (int) nu;
	in->n_items = (int) ni;

	ru = palloc_extended(rp.n * sizeof(int32), MCXT_ALLOC_HUGE);
	ri = palloc_extended(rp.n * sizeof(int32), MCXT_ALLOC_HUGE);
	for (int64 p = 0; p < rp.n; p++)
	{
		ru[p] = dsl_id_index(in->user_ids, in->n_users, rp.u[p]);
		ri[p] = dsl_id_index(in->item_ids, in->n_items, rp.i[p]);
		if ((p & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	dsl_free_pair_ids(&rp);

	in->n_duplicate = build_csr(in->n_users, ru, ri, rp.n, &in->ptr, &in->items,
								&in->n_pairs);
	pfree(ru);
	pfree(ri);
	return in;
}

/*
 * Map pairs read by dsl_read_pair_ids() onto the users and items of a model
 * (sorted id arrays): the known items of each known user as CSR rows, each
 * user's number of distinct test items including unknown ones (the recall
 * denominator), and counts of what the model does not know.
 */
MappedPairs *
dsl_map_pairs(const PairIds *rp, const int64 *user_ids, int n_users,
			  const int64 *item_ids, int n_items)
{
	MappedPairs *mp = palloc0(sizeof(MappedPairs));
	int32	   *ru,
			   *ri;
	int32	   *ri_all;
	int64	   *unk_users;
	int64		n_unk = 0;
	int64	   *tptr;
	int32	   *tidx;
	int64		tn;

	mp->n_rows = rp->n_rows;
	mp->n_null = rp->n_null;

	ru = palloc_extended(Max(rp->n, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	ri = palloc_extended(Max(rp->n, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	ri_all = palloc_extended(Max(rp->n, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	unk_users = palloc_extended(Max(rp->n, 1) * sizeof(int64), MCXT_ALLOC_HUGE);

	/*
	 * Unknown items still count (they are relevant but can never be hit):
	 * give each distinct unknown item a pseudo index past n_items so that
	 * duplicates collapse in the CSR below.
	 */
	{
		int64		n_unk_items;
		int64	   *unk_ids;
		int64		cnt = 0;

		for (int64 p = 0; p < rp->n; p++)
			if (dsl_id_index(item_ids, n_items, rp->i[p]) < 0)
				unk_users[cnt++] = rp->i[p];
		unk_ids = distinct_ids(unk_users, cnt, &n_unk_items);
		for (int64 p = 0; p < rp->n; p++)
		{
			int			u = dsl_id_index(user_ids, n_users, rp->u[p]);
			int			i = dsl_id_index(item_ids, n_items, rp->i[p]);

			ru[p] = u;
			ri[p] = i;
			ri_all[p] = i >= 0 ? i : n_items + dsl_id_index(unk_ids, (int) n_unk_items, rp->i[p]);
			if (u < 0)
				unk_users[n_unk++] = rp->u[p];
			if ((p & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
		pfree(unk_ids);
	}
	pfree(distinct_ids(unk_users, n_unk, &mp->users_unknown));

	/* all distinct test items per known user, unknown ones included */
	mp->n_duplicate = build_csr(n_users, ru, ri_all, rp->n, &tptr, &tidx, &tn);
	mp->total = palloc_extended(Max(n_users, 1) * sizeof(int32), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int u = 0; u < n_users; u++)
	{
		mp->total[u] = (int32) (tptr[u + 1] - tptr[u]);
		for (int64 k = tptr[u]; k < tptr[u + 1]; k++)
			if (tidx[k] >= n_items)
				mp->items_unknown++;
	}
	pfree(tptr);
	pfree(tidx);
	mp->n_pairs = tn;

	/* the known items only, for ranking */
	build_csr(n_users, ru, ri, rp->n, &mp->ptr, &mp->items, &tn);

	pfree(ru);
	pfree(ri);
	pfree(ri_all);
	pfree(unk_users);
	return mp;
}

/* dsl_read_pair_ids() under work_mem's name, then dsl_map_pairs() */
MappedPairs *
dsl_read_mapped_pairs(Oid relid, const char *user_col, const char *item_col,
					  const int64 *user_ids, int n_users,
					  const int64 *item_ids, int n_items, Size mem_limit)
{
	PairIds		rp;
	MappedPairs *mp;

	dsl_read_pair_ids(relid, user_col, item_col, mem_limit, "work_mem", &rp);
	mp = dsl_map_pairs(&rp, user_ids, n_users, item_ids, n_items);
	dsl_free_pair_ids(&rp);
	return mp;
}

/*
 * Split the training pairs into a training part and a held-out validation
 * part for the stopping rule of dsl.train(epochs => NULL).  Pairs are held
 * out from at most max_users users with two or more pairs (all of them when
 * there are no more, else a uniform sample of exactly max_users), so the
 * cost of a validation is bounded; the other users keep all their pairs.
 * A sampled user keeps at least one training pair; of its n pairs,
 * floor(frac * n + x) with x uniform in [0, 1) (at most n - 1) are held
 * out, chosen uniformly, so the expected held-out share is frac for every
 * sampled user.  All draws come from seed.  The training part shares the id arrays of `all`; the held-out
 * pairs come back as MappedPairs over the same users and items.
 */
void
dsl_holdout_split(const Interactions *all, double frac, int max_users, uint64 seed,
				  Interactions **train_out, MappedPairs **val_out)
{
	DslRng		pick_users;
	int64		eligible = 0;
	int64		wanted;
	Interactions *tr = palloc0(sizeof(Interactions));
	MappedPairs *va = palloc0(sizeof(MappedPairs));
	DslRng		rng;
	int32	   *pick;			/* one user's positions, then held items */
	bool	   *held;
	int64		n_held = 0;
	int64		max_n = 0;

	dsl_rng_seed(&rng, seed, 0x401D);
	dsl_rng_seed(&pick_users, seed, 0x401E);
	for (int u = 0; u < all->n_users; u++)
	{
		max_n = Max(max_n, all->ptr[u + 1] - all->ptr[u]);
		if (all->ptr[u + 1] - all->ptr[u] >= 2)
			eligible++;
	}
	wanted = Min(eligible, (int64) max_users);
	pick = palloc_extended(Max(max_n, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	held = palloc(Max(max_n, 1) * sizeof(bool));

	*tr = *all;
	tr->ptr = palloc_extended((Size) (all->n_users + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	tr->items = palloc_extended(Max(all->n_pairs, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	va->ptr = palloc_extended((Size) (all->n_users + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	va->total = palloc_extended(Max(all->n_users, 1) * sizeof(int32), MCXT_ALLOC_HUGE);
	va->items = palloc_extended(Max(all->n_pairs, 1) * sizeof(int32), MCXT_ALLOC_HUGE);

	tr->ptr[0] = va->ptr[0] = 0;
	for (int u = 0; u < all->n_users; u++)
	{
		int64		b = all->ptr[u],
					n = all->ptr[u + 1] - b;
		int64		h = 0;
		int64		nt = tr->ptr[u],
					nv = 0;

		/* selection sampling: exactly `wanted` of the eligible users */
		if (n >= 2)
		{
			if (wanted > 0 &&
				(wanted == eligible ||
				 dsl_rng_below(&pick_users, (uint64) eligible) < (uint64) wanted))
			{
				h = (int64) floor(frac * (double) n + dsl_rng_uniform(&rng));
				h = Min(h, n - 1);
				wanted--;
			}
			eligible--;
		}
		memset(held, 0, n * sizeof(bool));
		/* h positions without replacement (partial Fisher-Yates) */
		for (int64 k = 0; k < n; k++)
			pick[k] = (int32) k;
		for (int64 k = 0; k < h; k++)
		{
			int64		q = k + (int64) dsl_rng_below(&rng, (uint64) (n - k));
			int32		tmp = pick[k];

			pick[k] = pick[q];
			pick[q] = tmp;
			held[pick[k]] = true;
		}
		/*
		 * Both parts stay ascending: walk the user's items in order (pick[]
		 * is free again and collects the held-out ones).
		 */
		for (int64 k = 0; k < n; k++)
		{
			if (held[k])
				pick[nv++] = all->items[b + k];
			else
				tr->items[nt++] = all->items[b + k];
		}
		tr->ptr[u + 1] = nt;
		memcpy(va->items + n_held, pick, h * sizeof(int32));
		va->total[u] = (int32) h;
		n_held += h;
		va->ptr[u + 1] = n_held;
	}
	tr->n_pairs = tr->ptr[all->n_users];
	va->n_pairs = va->n_rows = n_held;
	pfree(pick);
	pfree(held);
	*train_out = tr;
	*val_out = va;
}
