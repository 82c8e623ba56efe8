/*
 * recommend.c - serving: dsl.recommend, dsl.score, dsl.recommend_all,
 * dsl.similar_items, dsl.recommend_for_items
 *
 * All four rank by the model's scorer (scorer.h, resolved from its
 * model_type by the per-backend cache, model_cache.c): highest score first,
 * equal scores by lower item id.  Reported scores are the scorer's canonical
 * ones (score_items; for the inner-product scorer topk_dot() of the 'user'
 * and 'item' rows), so dsl.score(), dsl.recommend() and dsl.recommend_all()
 * report the same number for the same pair.  dsl.similar_items needs the
 * scorer's item-item similarity, which a model type may lack.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "dsl_util.h"
#include "interactions.h"
#include "model_cache.h"
#include "topk.h"

/*
 * Map a bigint[] of item ids to the sorted, distinct indices of the items the
 * model knows.  *n_given counts the non-NULL elements, *n_unknown those the
 * model does not know (both may be NULL).
 */
static int32 *
id_array_indices(const ServeModel *m, ArrayType *arr, int *n_out,
				 int *n_given, int *n_unknown)
{
	Datum	   *elems;
	bool	   *nulls;
	int			nel;
	int32	   *out;
	int			n = 0;
	int			given = 0;

	deconstruct_array(arr, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &nulls, &nel);
	out = palloc(sizeof(int32) * Max(nel, 1));
	for (int e = 0; e < nel; e++)
	{
		int			i;

		if (nulls[e])
			continue;
		given++;
		i = serve_item_index(m, DatumGetInt64(elems[e]));
		if (i >= 0)
			out[n++] = i;
	}
	if (n_given)
		*n_given = given;
	if (n_unknown)
		*n_unknown = given - n;
	n = (int) dsl_sort_unique_int32(out, n);
	pfree(elems);
	pfree(nulls);
	*n_out = n;
	return out;
}

/* candidate lists: NULL elements and unknown ids are ignored */
static int32 *
candidate_indices(const ServeModel *m, ArrayType *arr, int *n_out)
{
	return id_array_indices(m, arr, n_out, NULL, NULL);
}

/* cold start: the most popular training items, ties by lower id */
static void
emit_popular(const ServeModel *m, const int32 *cand, int n_cand, int k,
			 ReturnSetInfo *rsinfo)
{
	int			rank = 0;

	for (int p = 0; p < m->n_items && rank < k; p++)
	{
		int32		i = m->pop_order[p];
		Datum		values[4];
		bool		nulls[4] = {false, true, false, false};

		if (cand && !dsl_sorted_contains(cand, n_cand, i))
			continue;
		values[0] = Int64GetDatum(m->item_ids[i]);
		values[1] = (Datum) 0;
		values[2] = Int32GetDatum(++rank);
		values[3] = BoolGetDatum(true);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * The k best items for the user representation uvec, leaving out exclude
 * (sorted indices) and keeping only cand (sorted indices) when it is given.
 */
static void
emit_ranked(const ServeModel *m, const float *uvec, const int32 *cand,
			int n_cand, int k, const int32 *exclude, int64 n_exclude,
			ReturnSetInfo *rsinfo)
{
	int			cap = Max(Min(k, cand ? n_cand : m->n_items), 1);
	TopK		heap;
	int			n;

	topk_init(&heap, cap, palloc(sizeof(float) * cap), palloc(sizeof(int32) * cap));
	if (cand)
	{
		/* the candidates not excluded, scored together, offered in order */
		int32	   *keep = palloc(sizeof(int32) * Max(n_cand, 1));
		float	   *cscore = palloc(sizeof(float) * Max(n_cand, 1));
		int			nc = 0;

		for (int c = 0; c < n_cand; c++)
		{
			if (n_exclude > 0 && dsl_sorted_contains(exclude, n_exclude, cand[c]))
				continue;
			keep[nc++] = cand[c];
		}
		m->scorer->score_items(m, uvec, keep, nc, cscore);
		for (int c = 0; c < nc; c++)
			topk_offer(&heap, cscore[c], keep[c]);
	}
	else
		m->scorer->rank_items(m, uvec, exclude, n_exclude, &heap);

	n = topk_sort(&heap);
	for (int r = 0; r < n; r++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int64GetDatum(m->item_ids[heap.idx[r]]);
		values[1] = Float4GetDatum(heap.score[r]);
		values[2] = Int32GetDatum(r + 1);
		values[3] = BoolGetDatum(false);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * The arguments dsl.recommend and dsl.recommend_for_items share: model, k
 * and exclude_seen must not be NULL and k must be positive; the result set
 * is prepared.  False when argument 1 (the user, the history) is NULL: no
 * rows, as a strict function would give.
 */
static bool
recommend_args(FunctionCallInfo fcinfo, int32 *k, bool *exclude_seen)
{
	dsl_arg_not_null(fcinfo, 0, "model");
	dsl_arg_not_null(fcinfo, 2, "k");
	dsl_arg_not_null(fcinfo, 3, "exclude_seen");
	*k = PG_GETARG_INT32(2);
	dsl_check_k(*k);
	*exclude_seen = PG_GETARG_BOOL(3);

	InitMaterializedSRF(fcinfo, 0);
	return !PG_ARGISNULL(1);
}

/*
 * dsl.recommend(model, user_id, k, exclude_seen, candidates): the k best
 * items for one user, or the most popular items for a user the model does
 * not know (cold_start = true, score NULL).
 */
PG_FUNCTION_INFO_V1(dsl_recommend);
Datum
dsl_recommend(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	int64		user_id;
	int32		k;
	bool		exclude_seen;
	ServeModel *m;
	int32	   *cand = NULL;
	int			n_cand = 0;
	int			u;
	float	   *uvec;

	if (!recommend_args(fcinfo, &k, &exclude_seen))
		return (Datum) 0;
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	user_id = PG_GETARG_INT64(1);

	m = serve_model_get(model);
	if (!PG_ARGISNULL(4))
		cand = candidate_indices(m, PG_GETARG_ARRAYTYPE_P(4), &n_cand);

	u = serve_user_index(m, user_id);
	if (u < 0)
	{
		emit_popular(m, cand, n_cand, k, rsinfo);
		return (Datum) 0;
	}
	uvec = palloc(sizeof(float) * Max(m->user_dim, 1));
	m->scorer->user_vector(m, u, uvec);
	emit_ranked(m, uvec, cand, n_cand, k, m->seen.idx + m->seen.ptr[u],
				exclude_seen ? m->seen.ptr[u + 1] - m->seen.ptr[u] : 0, rsinfo);
	return (Datum) 0;
}

/*
 * dsl.recommend_for_items(model, items, k, exclude_seen, candidates): the k
 * best items for a history that belongs to no stored user, through the
 * model type's history_vector (a fold-in for embedding models).  The
 * history's items are left out with exclude_seen.  Item ids the model does
 * not know are ignored (a NOTICE counts them); a history with no known item
 * gets the most popular items, as a user the model does not know does.
 */
PG_FUNCTION_INFO_V1(dsl_recommend_for_items);
Datum
dsl_recommend_for_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	ArrayType  *arr;
	int32		k;
	bool		exclude_seen;
	ServeModel *m;
	int32	   *hist;
	int			n_hist;
	int			n_given;
	int			n_unknown;
	int32	   *cand = NULL;
	int			n_cand = 0;
	float	   *uvec;

	if (!recommend_args(fcinfo, &k, &exclude_seen))
		return (Datum) 0;
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	arr = PG_GETARG_ARRAYTYPE_P(1);

	m = serve_model_get(model);
	if (m->scorer->history_vector == NULL)
		serve_unsupported(m, "dsl.recommend_for_items");

	hist = id_array_indices(m, arr, &n_hist, &n_given, &n_unknown);
	if (n_unknown > 0)
		ereport(NOTICE,
				(errmsg("%d of the %d item ids given are not items of model \"%s\" and were ignored",
						n_unknown, n_given, m->name)));
	if (!PG_ARGISNULL(4))
		cand = candidate_indices(m, PG_GETARG_ARRAYTYPE_P(4), &n_cand);

	if (n_hist == 0)
	{
		/* nothing known to fold in: as for a user the model does not know */
		emit_popular(m, cand, n_cand, k, rsinfo);
		return (Datum) 0;
	}
	uvec = palloc(sizeof(float) * Max(m->user_dim, 1));
	m->scorer->history_vector(m, hist, n_hist, uvec);
	emit_ranked(m, uvec, cand, n_cand, k, hist, exclude_seen ? n_hist : 0, rsinfo);
	return (Datum) 0;
}

/* dsl.score(model, user_id, item_id): the score recommend ranks by, or NULL */
PG_FUNCTION_INFO_V1(dsl_score);
Datum
dsl_score(PG_FUNCTION_ARGS)
{
	char	   *model;
	ServeModel *m;
	int			u;
	int32		i;
	float		score;
	float	   *uvec;

	/* a NULL user or item is simply unknown; a NULL model is a mistake */
	dsl_arg_not_null(fcinfo, 0, "model");
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	m = serve_model_get(model);
	u = serve_user_index(m, PG_GETARG_INT64(1));
	i = serve_item_index(m, PG_GETARG_INT64(2));
	if (u < 0 || i < 0)
		PG_RETURN_NULL();
	uvec = palloc(sizeof(float) * Max(m->user_dim, 1));
	m->scorer->user_vector(m, u, uvec);
	m->scorer->score_items(m, uvec, &i, 1, &score);
	PG_RETURN_FLOAT4(score);
}

/* what recommend_all's emit callback needs */
typedef struct AllState
{
	ServeModel *m;
	ReturnSetInfo *rsinfo;
} AllState;

/*
 * One user's top k from the block pass: the scorer ranks exactly by the
 * canonical scores (scorer.h), so these are dsl.recommend's rows.
 */
static void
recommend_all_emit(void *arg, int32 user, const int32 *items,
				   const float *scores, int n)
{
	AllState   *st = (AllState *) arg;
	ServeModel *m = st->m;

	for (int r = 0; r < n; r++)
	{
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = Int64GetDatum(m->user_ids[user]);
		values[1] = Int64GetDatum(m->item_ids[items[r]]);
		values[2] = Float4GetDatum(scores[r]);
		values[3] = Int32GetDatum(r + 1);
		tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc,
							 values, nulls);
	}
}

/* dsl.recommend_all(model, k, exclude_seen): top k of every user */
PG_FUNCTION_INFO_V1(dsl_recommend_all);
Datum
dsl_recommend_all(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	int32		k;
	bool		exclude_seen;
	ServeModel *m;
	AllState	st;
	int32	   *list;
	int			kk;

	dsl_arg_not_null(fcinfo, 0, "model");
	dsl_arg_not_null(fcinfo, 1, "k");
	dsl_arg_not_null(fcinfo, 2, "exclude_seen");
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	k = PG_GETARG_INT32(1);
	exclude_seen = PG_GETARG_BOOL(2);

	dsl_check_k(k);
	InitMaterializedSRF(fcinfo, 0);

	m = serve_model_get(model);
	if (m->n_users == 0 || m->n_items == 0)
		return (Datum) 0;
	kk = Min(k, m->n_items);

	list = palloc(sizeof(int32) * m->n_users);
	for (int u = 0; u < m->n_users; u++)
		list[u] = u;

	st.m = m;
	st.rsinfo = rsinfo;

	m->scorer->rank_users(m, list, m->n_users,
						  exclude_seen ? &m->seen : NULL,
						  kk, (Size) work_mem * 1024,
						  recommend_all_emit, &st);
	return (Datum) 0;
}

/*
 * dsl.similar_items(model, item, k, measure): the k items most similar to
 * item by cosine of the item embeddings (or by inner product), excluding item
 * itself.  A zero vector has cosine 0 with everything.  A model type whose
 * scorer has no item-item similarity is an error (FEATURE_NOT_SUPPORTED),
 * also for items it does not know, so the answer does not depend on the id.
 */
PG_FUNCTION_INFO_V1(dsl_similar_items);
Datum
dsl_similar_items(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *model;
	int64		item_id;
	int32		k;
	char	   *measure;
	bool		cosine;
	ServeModel *m;
	int			q;
	TopK		heap;
	int			cap;
	int			n;

	dsl_arg_not_null(fcinfo, 0, "model");
	dsl_arg_not_null(fcinfo, 2, "k");
	dsl_arg_not_null(fcinfo, 3, "measure");
	if (PG_ARGISNULL(1))
	{
		/* a NULL item is unknown: no rows */
		InitMaterializedSRF(fcinfo, 0);
		PG_RETURN_NULL();
	}
	model = text_to_cstring(PG_GETARG_TEXT_PP(0));
	item_id = PG_GETARG_INT64(1);
	k = PG_GETARG_INT32(2);
	measure = text_to_cstring(PG_GETARG_TEXT_PP(3));
	dsl_check_k(k);
	if (strcmp(measure, "cosine") == 0)
		cosine = true;
	else if (strcmp(measure, "inner_product") == 0)
		cosine = false;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown similarity measure \"%s\"", measure),
				 errhint("Use \"cosine\" or \"inner_product\".")));

	InitMaterializedSRF(fcinfo, 0);

	m = serve_model_get(model);
	if (m->scorer->similar_items == NULL)
		serve_unsupported(m, "dsl.similar_items");
	q = serve_item_index(m, item_id);
	if (q < 0 || m->n_items < 2)
		return (Datum) 0;

	cap = Min(k, m->n_items - 1);
	topk_init(&heap, cap, palloc(sizeof(float) * cap), palloc(sizeof(int32) * cap));
	m->scorer->similar_items(m, q, cosine, &heap);
	n = topk_sort(&heap);
	for (int r = 0; r < n; r++)
	{
		Datum		values[3];
		bool		nulls[3] = {false, false, false};

		values[0] = Int64GetDatum(m->item_ids[heap.idx[r]]);
		values[1] = Float4GetDatum(heap.score[r]);
		values[2] = Int32GetDatum(r + 1);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}
