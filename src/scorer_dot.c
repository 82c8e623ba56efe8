/*
 * scorer_dot.c - the inner-product scorer: score(u, i) = 'user' row of u .
 * 'item' row of i
 *
 * Serves every model type whose serving rows are embeddings (MF, LightGCN):
 * the 'user' and 'item' parts of dsl.parameters as served tables, dense or,
 * for a sparse model, compressed rows (serve_rows.h), in ascending id order,
 * with each row's norm.  The canonical score is topk_dot() of the dense
 * rows, which both forms compute exactly; catalogue scans score in float32
 * first and exactly near the k-th score (serve_rows_rank()), and so do
 * blocks of users (serve_rows_rank_users(): cblas_sgemm over dense rows, a
 * kernel over the stored entries of sparse ones).  An ad-hoc history is folded in
 * (fold_in.c).  See topk.h and docs/serving.md.
 */
#include "postgres.h"

#include "fold_in.h"
#include "model_cache.h"
#include "scorer.h"
#include "serve_rows.h"
#include "topk.h"

/* what dot_load() keeps of a model, in its memory context */
typedef struct DotState
{
	ServeRows	users;
	ServeRows	items;
	FoldIn	   *fold;			/* the fold-in's per-model part, at first use */
	void	   *extra;			/* a scorer built on this one: its own state */
} DotState;

static inline const DotState *
dot_state(const ServeModel *m)
{
	return (const DotState *) m->scorer_state;
}

/*
 * Read the 'user' and 'item' rows (they also define the id maps), each in
 * the form its share of stored entries calls for, with their norms: cosine
 * similarity and the error bound of the float32 scores need them.
 */
static void
dot_load(ServeModel *m)
{
	DotState   *st = MemoryContextAllocZero(m->cxt, sizeof(DotState));

	m->n_users = serve_rows_load(m, "user", false, &m->user_ids, &st->users);
	m->n_items = serve_rows_load(m, "item", true, &m->item_ids, &st->items);
	m->user_dim = m->dim;
	m->scorer_state = st;
}

/* the served tables in this backend's memory, when the model is not shared */
static void
dot_state_finish(ServeModel *m)
{
	DotState   *st = (DotState *) m->scorer_state;

	serve_rows_finish(&st->users, m->cxt);
	serve_rows_finish(&st->items, m->cxt);
}

void	  **
dot_scorer_extra(const ServeModel *m)
{
	return &((DotState *) m->scorer_state)->extra;
}

/* a stored user is its 'user' row */
static void
dot_user_vector(const ServeModel *m, int user, float *out)
{
	serve_rows_get(&dot_state(m)->users, user, out);
}

/*
 * An ad-hoc history: the user row that best explains it against the fixed
 * item rows (fold_in.h); the items' Gram matrix is derived at the first call
 * and kept with the model.
 */
static void
dot_history_vector(ServeModel *m, const int32 *items, int n, float *out)
{
	DotState   *st = (DotState *) m->scorer_state;

	if (st->fold == NULL)
		st->fold = fold_in_prepare(&st->items, m->cxt);
	fold_in_solve(st->fold, &st->items, items, n, out);
}

/* the whole catalogue for one user: float32 scores, exact near the k-th */
static void
dot_rank_items(const ServeModel *m, const float *user,
			   const int32 *exclude, int64 n_exclude, TopK *h)
{
	serve_rows_rank(&dot_state(m)->items, user, topk_norm(user, m->dim),
					false, exclude, n_exclude, -1, h);
}

/* the canonical score of each listed item */
static void
dot_score_items(const ServeModel *m, const float *user, const int32 *items,
				int n, float *scores)
{
	for (int c = 0; c < n; c++)
		scores[c] = serve_rows_dot(&dot_state(m)->items, items[c], user);
}

/* blocks of users: sgemm over dense item rows, a sparse kernel otherwise */
static void
dot_rank_users(const ServeModel *m, const int32 *users, int n_users,
			   const IndexCSR *exclude, int k, Size mem_bytes,
			   TopKEmit emit, void *emit_arg)
{
	const DotState *st = dot_state(m);

	serve_rows_rank_users(&st->users, &st->items, users, n_users, exclude, k,
						  mem_bytes, emit, emit_arg);
}

/* cosine (or inner product) of item rows, the item itself left out */
static void
dot_similar_items(const ServeModel *m, int item, bool cosine, TopK *h)
{
	const DotState *st = dot_state(m);
	float	   *q = palloc(sizeof(float) * m->dim);

	serve_rows_get(&st->items, item, q);
	serve_rows_rank(&st->items, q, st->items.norm[item], cosine, NULL, 0, item, h);
	pfree(q);
}

/* The shared copy of the state: the user rows, then the item rows. */
static Size
dot_state_bytes(const ServeModel *m)
{
	return serve_rows_bytes(&dot_state(m)->users) + serve_rows_bytes(&dot_state(m)->items);
}

static void
dot_state_write(const ServeModel *m, char *dst)
{
	serve_rows_write(&dot_state(m)->users, dst);
	serve_rows_write(&dot_state(m)->items, dst + serve_rows_bytes(&dot_state(m)->users));
}

static void
dot_state_attach(ServeModel *m, const char *src)
{
	DotState   *st = MemoryContextAllocZero(m->cxt, sizeof(DotState));

	src += serve_rows_attach(&st->users, m->n_users, m->dim, src);
	serve_rows_attach(&st->items, m->n_items, m->dim, src);
	m->scorer_state = st;
}

const Scorer dot_scorer = {
	.name = "inner_product",
	.load = dot_load,
	.state_finish = dot_state_finish,
	.user_vector = dot_user_vector,
	.history_vector = dot_history_vector,
	.rank_items = dot_rank_items,
	.score_items = dot_score_items,
	.rank_users = dot_rank_users,
	.similar_items = dot_similar_items,
	.state_bytes = dot_state_bytes,
	.state_write = dot_state_write,
	.state_attach = dot_state_attach,
};
