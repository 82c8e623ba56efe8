/*
 * evaluate.c - full-ranking evaluation (LightGCN / NGCF protocol)
 *
 * For every test user: score all items, drop the user's training items, take
 * the top K (ties: lower item index first) and compare with the user's test
 * items.  Recall@K = hits / |test|, Precision@K = hits / K, NDCG@K with
 * binary relevance and IDCG over min(K, |test|) ideal hits, Hit@K = any hit,
 * MRR@K = 1 / rank of the first hit (0 without one), each averaged over the
 * evaluated users; item coverage = distinct items in any evaluated user's
 * top K / number of items.
 *
 * dsl_evaluate_full() is the C entry point (training calls it for validation
 * with embeddings densified block by block); dsl.evaluate() reads test pairs
 * from any relation and evaluates a stored model through the serving cache.
 */
#include "postgres.h"

#include <math.h>

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "interactions.h"
#include "model.h"
#include "model_cache.h"
#include "topk.h"

/* metric sums while users are emitted by topk_rank_users() */
typedef struct EvalAcc
{
	const IndexCSR *test;
	const int32 *test_total;
	int			k;
	const double *idcg;			/* idcg[n] = ideal DCG of n hits */
	bool	   *covered;		/* per item: in someone's top k */
	double		recall;
	double		ndcg;
	double		precision;
	double		hit_rate;
	double		mrr;
	int64		users;
} EvalAcc;

static void
eval_emit(void *arg, int32 user, const int32 *items, const float *scores, int n)
{
	EvalAcc    *acc = (EvalAcc *) arg;
	const int32 *row = acc->test->idx + acc->test->ptr[user];
	int64		row_len = acc->test->ptr[user + 1] - acc->test->ptr[user];
	int64		total = acc->test_total ? acc->test_total[user] : row_len;
	int			hits = 0;
	int			first = 0;
	double		dcg = 0.0;

	(void) scores;				/* only the order matters here */
	for (int r = 0; r < n; r++)
	{
		acc->covered[items[r]] = true;
		if (dsl_sorted_contains(row, row_len, items[r]))
		{
			hits++;
			dcg += 1.0 / log2(r + 2.0);
			if (first == 0)
				first = r + 1;
		}
	}
	acc->recall += (double) hits / total;
	acc->precision += (double) hits / acc->k;
	acc->ndcg += dcg / acc->idcg[Min(total, acc->k)];
	acc->hit_rate += hits > 0 ? 1.0 : 0.0;
	acc->mrr += first > 0 ? 1.0 / first : 0.0;
	acc->users++;
}

void
dsl_evaluate_full(const EmbeddingSource *users,
				  const EmbeddingSource *items,
				  const IndexCSR *seen,
				  const IndexCSR *test,
				  const int32 *test_total,
				  int k, Size mem_bytes,
				  EvalMetrics *out)
{
	EvalAcc		acc;
	int32	   *list;
	int			n_list = 0;
	double	   *idcg;
	int64		max_total = 0;
	int			n_idcg;
	int64		covered = 0;

	if (k <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be positive, not %d", k)));
	if (test->n_rows != users->n_rows ||
		(seen != NULL && seen->n_rows != users->n_rows))
		elog(ERROR, "evaluation rows do not match the %d users", users->n_rows);

	memset(out, 0, sizeof(EvalMetrics));
	out->k = k;

	list = palloc(sizeof(int32) * Max(users->n_rows, 1));
	for (int u = 0; u < users->n_rows; u++)
	{
		int64		total = test_total ? test_total[u] : test->ptr[u + 1] - test->ptr[u];

		if (total > 0)
			list[n_list++] = u;
		max_total = Max(max_total, total);
	}
	if (n_list == 0 || items->n_rows == 0)
	{
		out->users_evaluated = n_list;
		pfree(list);
		return;
	}

	/* idcg[n] = ideal DCG of n hits, for n up to min(k, largest |test|) */
	n_idcg = (int) Min((int64) k, max_total);
	idcg = palloc(sizeof(double) * (n_idcg + 1));
	idcg[0] = 0.0;				/* never a divisor: evaluated users have tests */
	for (int r = 1; r <= n_idcg; r++)
		idcg[r] = idcg[r - 1] + 1.0 / log2(r + 1.0);

	memset(&acc, 0, sizeof(acc));
	acc.test = test;
	acc.test_total = test_total;
	acc.k = k;
	acc.idcg = idcg;
	acc.covered = palloc0(sizeof(bool) * items->n_rows);

	topk_rank_users(users, items, list, n_list, seen, k, mem_bytes,
					eval_emit, &acc);

	for (int i = 0; i < items->n_rows; i++)
		covered += acc.covered[i];
	out->users_evaluated = acc.users;
	if (acc.users > 0)
	{
		out->recall = acc.recall / acc.users;
		out->ndcg = acc.ndcg / acc.users;
		out->precision = acc.precision / acc.users;
		out->hit_rate = acc.hit_rate / acc.users;
		out->mrr = acc.mrr / acc.users;
	}
	out->item_coverage = (double) covered / items->n_rows;

	pfree(acc.covered);
	pfree(idcg);
	pfree(list);
}

/*
 * Look up column colname of relation relid and check it holds integers;
 * returns the column name quoted for SQL.
 */
static const char *
check_id_column(Oid relid, const char *colname, const char *role)
{
	HeapTuple	tup;
	Oid			typid;

	tup = SearchSysCacheAttName(relid, colname);
	if (!HeapTupleIsValid(tup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("column \"%s\" of relation \"%s\" does not exist",
						colname, get_rel_name(relid)),
				 errhint("Pass the %s column name as %s_col.", role, role)));
	typid = ((Form_pg_attribute) GETSTRUCT(tup))->atttypid;
	ReleaseSysCache(tup);
	if (typid != INT2OID && typid != INT4OID && typid != INT8OID)
		ereport(ERROR,
				(errcode(ERRCODE_DATATYPE_MISMATCH),
				 errmsg("column \"%s\" of relation \"%s\" is of type %s, not an integer type",
						colname, get_rel_name(relid), format_type_be(typid)),
				 errdetail("The %s column of the test pairs must be smallint, integer or bigint.",
						   role)));
	return quote_identifier(colname);
}

/* (user, item) test pair */
typedef struct TestPair
{
	int64		user;
	int64		item;
} TestPair;

static int
cmp_pair(const void *a, const void *b)
{
	const TestPair *x = (const TestPair *) a;
	const TestPair *y = (const TestPair *) b;

	if (x->user != y->user)
		return x->user < y->user ? -1 : 1;
	if (x->item != y->item)
		return x->item < y->item ? -1 : 1;
	return 0;
}

/*
 * Read the non-NULL (user, item) pairs of the relation, sorted and without
 * duplicates, into memory of the current context (allocated before
 * SPI_connect, so it outlives SPI_finish).
 */
static TestPair *
read_test_pairs(Oid relid, const char *ucol, const char *icol, int64 *n_out)
{
	StringInfoData sql;
	char	   *relname;
	char	   *nspname;
	SPIPlanPtr	plan;
	Portal		portal;
	TestPair   *pairs;
	int64		cap = 1024;
	int64		n = 0;
	int64		w;

	relname = get_rel_name(relid);
	nspname = relname ? get_namespace_name(get_rel_namespace(relid)) : NULL;
	if (relname == NULL || nspname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	initStringInfo(&sql);
	appendStringInfo(&sql,
					 "SELECT %s::pg_catalog.int8, %s::pg_catalog.int8 FROM %s"
					 " WHERE %s IS NOT NULL AND %s IS NOT NULL",
					 ucol, icol, quote_qualified_identifier(nspname, relname),
					 ucol, icol);

	pairs = palloc_extended(sizeof(TestPair) * cap, MCXT_ALLOC_HUGE);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	plan = SPI_prepare(sql.data, 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for \"%s\": %s",
			 sql.data, SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 8192);
		if (SPI_processed == 0)
			break;
		if (n + (int64) SPI_processed > cap)
		{
			while (n + (int64) SPI_processed > cap)
				cap *= 2;
			pairs = repalloc_huge(pairs, sizeof(TestPair) * cap);
		}
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			HeapTuple	tup = SPI_tuptable->vals[r];
			bool		isnull;

			pairs[n].user = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
			pairs[n].item = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
			n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();

	qsort(pairs, n, sizeof(TestPair), cmp_pair);
	w = 0;
	for (int64 i = 0; i < n; i++)
		if (w == 0 || cmp_pair(&pairs[i], &pairs[w - 1]) != 0)
			pairs[w++] = pairs[i];
	*n_out = w;
	pfree(sql.data);
	return pairs;
}

/* dsl.evaluate(model, test_source, user_col, item_col, k): metric rows */
PG_FUNCTION_INFO_V1(dsl_evaluate);
Datum
dsl_evaluate(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	Oid			relid;
	char	   *ucol;
	char	   *icol;
	int32		k;
	const char *ucol_q;
	const char *icol_q;
	TestPair   *pairs;
	int64		n_pairs;
	ServeModel *m;
	int64	   *ptr;
	int32	   *idx;
	int32	   *total;
	int64		n_idx = 0;
	int64		users_unknown = 0;
	EmbeddingSource us,
				is;
	IndexCSR	test;
	EvalMetrics res;
	int			last_u = -1;
	bool		have_users;
	static const char *const arg_names[] = {"model", "test_source", "user_col", "item_col", "k"};

	for (int a = 0; a < 5; a++)
		if (PG_ARGISNULL(a))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", arg_names[a])));
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	ucol = text_to_cstring(PG_GETARG_TEXT_PP(2));
	icol = text_to_cstring(PG_GETARG_TEXT_PP(3));
	k = PG_GETARG_INT32(4);
	if (get_rel_name(relid) == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));

	if (k <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be positive, not %d", k)));

	InitMaterializedSRF(fcinfo, 0);

	ucol_q = check_id_column(relid, ucol, "user");
	icol_q = check_id_column(relid, icol, "item");

	/* read the test pairs before touching the cache (see serve_model_get) */
	pairs = read_test_pairs(relid, ucol_q, icol_q, &n_pairs);
	m = serve_model_get(model);

	/* test CSR over the model's user indices; unknown items only counted */
	ptr = palloc(sizeof(int64) * (m->n_users + 1));
	idx = palloc_extended(sizeof(int32) * Max(n_pairs, 1), MCXT_ALLOC_HUGE);
	total = palloc0(sizeof(int32) * Max(m->n_users, 1));
	ptr[0] = 0;
	for (int64 p = 0; p < n_pairs;)
	{
		int64		uid = pairs[p].user;
		int			u = serve_user_index(m, uid);
		int64		q = p;

		if (u < 0)
		{
			users_unknown++;
			while (q < n_pairs && pairs[q].user == uid)
				q++;
			p = q;
			continue;
		}
		/* close the rows of users without test pairs, up to u */
		while (last_u < u - 1)
			ptr[++last_u + 1] = n_idx;
		for (; q < n_pairs && pairs[q].user == uid; q++)
		{
			int			i = serve_item_index(m, pairs[q].item);

			/* items ascend within a user, so the row comes out sorted */
			if (i >= 0)
				idx[n_idx++] = i;
			if (total[u] < PG_INT32_MAX)
				total[u]++;
		}
		ptr[u + 1] = n_idx;
		last_u = u;
		p = q;
	}
	while (last_u < m->n_users - 1)
		ptr[++last_u + 1] = n_idx;

	us = embedding_source_dense(m->user_emb, m->n_users, m->dim);
	is = embedding_source_dense(m->item_emb, m->n_items, m->dim);
	test.n_rows = m->n_users;
	test.ptr = ptr;
	test.idx = idx;

	dsl_evaluate_full(&us, &is, &m->seen, &test, total, k,
					  (Size) work_mem * 1024, &res);

	have_users = res.users_evaluated > 0;
	{
		const char *names[] = {"recall", "ndcg", "precision", "hit_rate", "mrr",
		"users_evaluated", "users_unknown", "item_coverage"};
		double		vals[8];
		bool		isnull[8] = {!have_users, !have_users, !have_users,
			!have_users, !have_users, false, false, false};

		vals[0] = res.recall;
		vals[1] = res.ndcg;
		vals[2] = res.precision;
		vals[3] = res.hit_rate;
		vals[4] = res.mrr;
		vals[5] = (double) res.users_evaluated;
		vals[6] = (double) users_unknown;
		vals[7] = res.item_coverage;

		for (int r = 0; r < 8; r++)
		{
			Datum		values[2];
			bool		nulls[2] = {false, isnull[r]};

			values[0] = CStringGetTextDatum(names[r]);
			values[1] = Float8GetDatum(vals[r]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
