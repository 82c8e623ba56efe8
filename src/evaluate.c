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
 * from any relation and evaluates a stored model through the serving cache,
 * ranking with the model's scorer (scorer.h).  Both share
 * dsl_evaluate_ranked(), which only needs a way to rank a list of users.
 */
#include "postgres.h"

#include <math.h>

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"

#include "dsl_util.h"
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
	double		recall_truncated;
	int64		users;
} EvalAcc;

/*
 * TopKEmit callback: add one user's metrics at k (its top-k items best first)
 * to the sums and mark the recommended items as covered.
 */
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
	acc->recall_truncated += (double) hits / Min(total, acc->k);
	acc->users++;
}

/*
 * The metrics of ranking n_users x n_items with rank(): the users with test
 * items are ranked against all items, their metrics summed by eval_emit().
 * Shared by training's validation (embedding sources) and dsl.evaluate (the
 * stored model's scorer), so both compute metrics one way.
 */
void
dsl_evaluate_ranked(int n_users, int n_items,
					const IndexCSR *seen,
					const IndexCSR *test,
					const int32 *test_total,
					int k, Size mem_bytes,
					EvalRankFn rank, void *rank_arg,
					EvalMetrics *out)
{
	EvalAcc		acc;
	int32	   *list;
	int			n_list = 0;
	double	   *idcg;
	int64		max_total = 0;
	int			n_idcg;
	int64		covered = 0;

	dsl_check_k(k);
	if (test->n_rows != n_users ||
		(seen != NULL && seen->n_rows != n_users))
		elog(ERROR, "evaluation rows do not match the %d users", n_users);

	memset(out, 0, sizeof(EvalMetrics));
	out->k = k;

	list = palloc(sizeof(int32) * Max(n_users, 1));
	for (int u = 0; u < n_users; u++)
	{
		int64		total = test_total ? test_total[u] : test->ptr[u + 1] - test->ptr[u];

		if (total > 0)
			list[n_list++] = u;
		max_total = Max(max_total, total);
	}
	if (n_list == 0 || n_items == 0)
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
	acc.covered = palloc0(sizeof(bool) * n_items);

	rank(rank_arg, list, n_list, seen, k, mem_bytes, eval_emit, &acc);

	for (int i = 0; i < n_items; i++)
		covered += acc.covered[i];
	out->users_evaluated = acc.users;
	if (acc.users > 0)
	{
		out->recall = acc.recall / acc.users;
		out->ndcg = acc.ndcg / acc.users;
		out->precision = acc.precision / acc.users;
		out->hit_rate = acc.hit_rate / acc.users;
		out->mrr = acc.mrr / acc.users;
		out->recall_truncated = acc.recall_truncated / acc.users;
	}
	out->item_coverage = (double) covered / n_items;

	pfree(acc.covered);
	pfree(idcg);
	pfree(list);
}

/* the user and item embeddings dsl_evaluate_full() ranks with */
typedef struct SourcePair
{
	const EmbeddingSource *users;
	const EmbeddingSource *items;
} SourcePair;

/* EvalRankFn over embedding sources: sgemm blocks by topk_rank_users() */
static void
rank_sources(void *arg, const int32 *users, int n_users,
			 const IndexCSR *exclude, int k, Size mem_bytes,
			 TopKEmit emit, void *emit_arg)
{
	SourcePair *sp = (SourcePair *) arg;

	topk_rank_users(sp->users, sp->items, users, n_users, exclude, k,
					mem_bytes, emit, emit_arg);
}

/* EvalRankFn of a served model: its scorer's rank_users */
static void
rank_served(void *arg, const int32 *users, int n_users,
			const IndexCSR *exclude, int k, Size mem_bytes,
			TopKEmit emit, void *emit_arg)
{
	const ServeModel *m = (const ServeModel *) arg;

	m->scorer->rank_users(m, users, n_users, exclude, k, mem_bytes,
						  emit, emit_arg);
}

/*
 * See model.h: the users with test items are ranked against all items in
 * sgemm blocks by topk_rank_users().
 */
void
dsl_evaluate_full(const EmbeddingSource *users,
				  const EmbeddingSource *items,
				  const IndexCSR *seen,
				  const IndexCSR *test,
				  const int32 *test_total,
				  int k, Size mem_bytes,
				  EvalMetrics *out)
{
	SourcePair	sp = {users, items};

	dsl_evaluate_ranked(users->n_rows, items->n_rows, seen, test, test_total,
						k, mem_bytes, rank_sources, &sp, out);
}

/*
 * The rows of dsl.evaluate and dsl.evaluate_histories: the metrics (NULL
 * when no user was evaluated), users evaluated, a count of users left out
 * (named by the caller) and item coverage.
 */
static void
emit_metric_rows(ReturnSetInfo *rsinfo, const EvalMetrics *res,
				 const char *left_out_name, int64 left_out)
{
	bool		have_users = res->users_evaluated > 0;
	const char *names[] = {"recall", "ndcg", "precision", "hit_rate", "mrr",
		"recall_truncated", "users_evaluated", left_out_name, "item_coverage"};
	double		vals[9];
	bool		isnull[9] = {!have_users, !have_users, !have_users,
		!have_users, !have_users, !have_users, false, false, false};

	vals[0] = res->recall;
	vals[1] = res->ndcg;
	vals[2] = res->precision;
	vals[3] = res->hit_rate;
	vals[4] = res->mrr;
	vals[5] = res->recall_truncated;
	vals[6] = (double) res->users_evaluated;
	vals[7] = (double) left_out;
	vals[8] = res->item_coverage;

	for (int r = 0; r < 9; r++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, isnull[r]};

		values[0] = CStringGetTextDatum(names[r]);
		values[1] = Float8GetDatum(vals[r]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * dsl.evaluate(model, test_source, user_col, item_col, k): metric rows.  The
 * test pairs are read (interactions.c's reader, columns checked there) before
 * the model is fetched from the serving cache, so that a test source whose
 * rows come from other serving calls cannot evict the model while it is used.
 */
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
	PairIds		pairs;
	MappedPairs *mp;
	ServeModel *m;
	IndexCSR	test;
	EvalMetrics res;
	static const char *const arg_names[] = {"model", "test_source", "user_col", "item_col", "k"};

	for (int a = 0; a < 5; a++)
		dsl_arg_not_null(fcinfo, a, arg_names[a]);
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	relid = PG_GETARG_OID(1);
	ucol = text_to_cstring(PG_GETARG_TEXT_PP(2));
	icol = text_to_cstring(PG_GETARG_TEXT_PP(3));
	k = PG_GETARG_INT32(4);
	(void) dsl_relation_name(relid);	/* errors if there is no such relation */
	dsl_check_k(k);

	InitMaterializedSRF(fcinfo, 0);

	/* no memory cap on the test pairs, as for the model being evaluated */
	dsl_read_pair_ids(relid, ucol, icol, SIZE_MAX, "work_mem", &pairs);
	m = serve_model_get(model);
	mp = dsl_map_pairs(&pairs, m->user_ids, m->n_users, m->item_ids, m->n_items);
	dsl_free_pair_ids(&pairs);

	test.n_rows = m->n_users;
	test.ptr = mp->ptr;
	test.idx = mp->items;

	dsl_evaluate_ranked(m->n_users, m->n_items, &m->seen, &test, mp->total, k,
						(Size) work_mem * 1024, rank_served, m, &res);

	emit_metric_rows(rsinfo, &res, "users_unknown", mp->users_unknown);
	return (Datum) 0;
}

/* what rank_histories() needs: the model and each evaluated user's history */
typedef struct HistoryRank
{
	ServeModel *m;
	const IndexCSR *hist;		/* per evaluated user: known history items */
} HistoryRank;

/*
 * EvalRankFn of dsl.evaluate_histories: each user's history through the
 * scorer's history_vector (a fold-in for embedding models), ranked like
 * dsl.recommend_for_items (the history excluded, exact scores); a user
 * with no known history item gets the popular items, as there.
 */
static void
rank_histories(void *arg, const int32 *users, int n_users,
			   const IndexCSR *exclude, int k, Size mem_bytes,
			   TopKEmit emit, void *emit_arg)
{
	HistoryRank *hr = (HistoryRank *) arg;
	ServeModel *m = hr->m;
	float	   *uvec = palloc(sizeof(float) * Max(m->user_dim, 1));
	float	   *score = palloc(sizeof(float) * k);
	int32	   *idx = palloc(sizeof(int32) * k);
	float	   *pop_score = palloc0(sizeof(float) * k);	/* not ranked by */
	int			n_pop = Min(k, m->n_items);

	(void) exclude;				/* the history is what is excluded */
	(void) mem_bytes;			/* one user at a time */
	for (int j = 0; j < n_users; j++)
	{
		int32		u = users[j];
		const int32 *h = hr->hist->idx + hr->hist->ptr[u];
		int64		nh = hr->hist->ptr[u + 1] - hr->hist->ptr[u];
		TopK		heap;
		int			n;

		CHECK_FOR_INTERRUPTS();
		if (nh == 0)
		{
			emit(emit_arg, u, m->pop_order, pop_score, n_pop);
			continue;
		}
		topk_init(&heap, k, score, idx);
		m->scorer->history_vector(m, h, (int) nh, uvec);
		m->scorer->rank_items(m, uvec, h, nh, &heap);
		n = topk_sort(&heap);
		emit(emit_arg, u, heap.idx, heap.score, n);
	}
	pfree(uvec);
	pfree(score);
	pfree(idx);
	pfree(pop_score);
}

/*
 * dsl.evaluate_histories(model, history_source, test_source, user_col,
 * item_col, k): the metrics of dsl.evaluate for users given by a history
 * instead of by a stored row (strong generalization, the MultVAE protocol:
 * fold in part of each held-out user's items, predict the rest).  The users
 * are those of test_source, with ids of their own (they need not be users of
 * the model); each one's history is its pairs in history_source (items the
 * model does not know are ignored).  A test user without a known history
 * item is ranked with the popular items and counted in
 * users_without_history.
 */
PG_FUNCTION_INFO_V1(dsl_evaluate_histories);
Datum
dsl_evaluate_histories(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	Oid			hist_relid;
	Oid			test_relid;
	char	   *ucol;
	char	   *icol;
	int32		k;
	PairIds		hist_pairs;
	PairIds		test_pairs;
	int64	   *ids;
	int64		n_ids;
	MappedPairs *hp;
	MappedPairs *tp;
	ServeModel *m;
	IndexCSR	hist;
	IndexCSR	test;
	HistoryRank hr;
	EvalMetrics res;
	int64		without = 0;
	static const char *const arg_names[] = {"model", "history_source", "test_source",
	"user_col", "item_col", "k"};

	for (int a = 0; a < 6; a++)
		dsl_arg_not_null(fcinfo, a, arg_names[a]);
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	hist_relid = PG_GETARG_OID(1);
	test_relid = PG_GETARG_OID(2);
	ucol = text_to_cstring(PG_GETARG_TEXT_PP(3));
	icol = text_to_cstring(PG_GETARG_TEXT_PP(4));
	k = PG_GETARG_INT32(5);
	(void) dsl_relation_name(hist_relid);
	(void) dsl_relation_name(test_relid);
	dsl_check_k(k);

	InitMaterializedSRF(fcinfo, 0);

	/* both sources before the model, as dsl.evaluate reads its test pairs */
	dsl_read_pair_ids(hist_relid, ucol, icol, SIZE_MAX, "work_mem", &hist_pairs);
	dsl_read_pair_ids(test_relid, ucol, icol, SIZE_MAX, "work_mem", &test_pairs);
	m = serve_model_get(model);
	if (m->scorer->history_vector == NULL)
		serve_unsupported(m, "dsl.evaluate_histories");

	/* the evaluated users: those of the test pairs, by their own ids */
	ids = palloc_extended(sizeof(int64) * Max(test_pairs.n, 1), MCXT_ALLOC_HUGE);
	memcpy(ids, test_pairs.u, sizeof(int64) * test_pairs.n);
	n_ids = dsl_sort_unique_int64(ids, test_pairs.n);
	if (n_ids > PG_INT32_MAX / 2)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many test users: %lld", (long long) n_ids)));
	tp = dsl_map_pairs(&test_pairs, ids, (int) n_ids, m->item_ids, m->n_items);
	hp = dsl_map_pairs(&hist_pairs, ids, (int) n_ids, m->item_ids, m->n_items);
	dsl_free_pair_ids(&hist_pairs);
	dsl_free_pair_ids(&test_pairs);

	test.n_rows = hist.n_rows = (int) n_ids;
	test.ptr = tp->ptr;
	test.idx = tp->items;
	hist.ptr = hp->ptr;
	hist.idx = hp->items;
	for (int64 u = 0; u < n_ids; u++)
		if (hist.ptr[u + 1] == hist.ptr[u])
			without++;

	hr.m = m;
	hr.hist = &hist;
	dsl_evaluate_ranked((int) n_ids, m->n_items, NULL, &test, tp->total, k,
						(Size) work_mem * 1024, rank_histories, &hr, &res);

	emit_metric_rows(rsinfo, &res, "users_without_history", without);
	return (Datum) 0;
}
