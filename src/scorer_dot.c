/*
 * scorer_dot.c - the inner-product scorer: score(u, i) = 'user' row of u .
 * 'item' row of i
 *
 * Serves every model type whose serving rows are embeddings (MF, LightGCN):
 * the 'user' and 'item' parts of dsl.parameters densified into float matrices
 * (rows in ascending id order) plus each item row's norm.  The canonical
 * score is topk_dot(); catalogue scans use topk_rank_rows() (one cblas_sgemv,
 * exact rescoring near the k-th score, bounded by the norms), blocks of users
 * topk_rank_users() (cblas_sgemm).  An ad-hoc history is folded in
 * (fold_in.c).  See topk.h and docs/serving.md.
 */
#include "postgres.h"

#include <math.h>

#include "fold_in.h"
#include "model_cache.h"
#include "scorer.h"
#include "topk.h"

/* what dot_load() keeps of a model, in its memory context */
typedef struct DotState
{
	float	   *user_emb;		/* n_users x dim, row-major */
	float	   *item_emb;		/* n_items x dim, row-major */
	double	   *item_norm;		/* Euclidean norm of each item row */
	double		max_item_norm;
	FoldIn	   *fold;			/* the fold-in's per-model part, at first use */
} DotState;

static inline const DotState *
dot_state(const ServeModel *m)
{
	return (const DotState *) m->scorer_state;
}

static inline const float *
dot_user_row(const ServeModel *m, int u)
{
	return dot_state(m)->user_emb + (Size) u * m->dim;
}

static inline const float *
dot_item_row(const ServeModel *m, int i)
{
	return dot_state(m)->item_emb + (Size) i * m->dim;
}

/* Euclidean norm, in double */
static double
vector_norm(const float *x, int dim)
{
	double		s = 0.0;

	for (int d = 0; d < dim; d++)
		s += (double) x[d] * x[d];
	return sqrt(s);
}

/*
 * Read the 'user' and 'item' rows (they also define the id maps) and compute
 * the item norms once: cosine similarity and the error bound of the sgemv
 * scores of every later call need them.
 */
static void
dot_load(ServeModel *m)
{
	DotState   *st = MemoryContextAllocZero(m->cxt, sizeof(DotState));

	m->n_users = serve_load_part(m, "user", &m->user_ids, &st->user_emb);
	m->n_items = serve_load_part(m, "item", &m->item_ids, &st->item_emb);
	m->user_dim = m->dim;

	st->item_norm = MemoryContextAllocHuge(m->cxt, sizeof(double) * Max(m->n_items, 1));
	st->max_item_norm = 0.0;
	for (int i = 0; i < m->n_items; i++)
	{
		st->item_norm[i] = vector_norm(st->item_emb + (Size) i * m->dim, m->dim);
		st->max_item_norm = Max(st->max_item_norm, st->item_norm[i]);
	}
	m->scorer_state = st;
}

/* a stored user is its 'user' row */
static void
dot_user_vector(const ServeModel *m, int user, float *out)
{
	memcpy(out, dot_user_row(m, user), sizeof(float) * m->dim);
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
		st->fold = fold_in_prepare(st->item_emb, m->n_items, m->dim, m->cxt);
	fold_in_solve(st->fold, st->item_emb, items, n, out);
}

/* the whole catalogue for one user: sgemv plus exact rescoring near the k-th */
static void
dot_rank_items(const ServeModel *m, const float *user,
			   const int32 *exclude, int64 n_exclude, TopK *h)
{
	const DotState *st = dot_state(m);

	topk_rank_rows(st->item_emb, m->n_items, m->dim, user,
				   st->item_norm, st->max_item_norm, vector_norm(user, m->dim),
				   false, exclude, n_exclude, -1, h);
}

/* the canonical score, one topk_dot() per listed item */
static void
dot_score_items(const ServeModel *m, const float *user, const int32 *items,
				int n, float *scores)
{
	for (int c = 0; c < n; c++)
		scores[c] = topk_dot(user, dot_item_row(m, items[c]), m->dim);
}

/* blocks of users against blocks of items with sgemm, float32 scores */
static void
dot_rank_users(const ServeModel *m, const int32 *users, int n_users,
			   const IndexCSR *exclude, int k, Size mem_bytes,
			   TopKEmit emit, void *emit_arg)
{
	const DotState *st = dot_state(m);
	EmbeddingSource us = embedding_source_dense(st->user_emb, m->n_users, m->dim);
	EmbeddingSource is = embedding_source_dense(st->item_emb, m->n_items, m->dim);

	topk_rank_users(&us, &is, users, n_users, exclude, k, mem_bytes,
					emit, emit_arg);
}

/* cosine (or inner product) of item rows, the item itself left out */
static void
dot_similar_items(const ServeModel *m, int item, bool cosine, TopK *h)
{
	const DotState *st = dot_state(m);

	topk_rank_rows(st->item_emb, m->n_items, m->dim, dot_item_row(m, item),
				   st->item_norm, st->max_item_norm, st->item_norm[item],
				   cosine, NULL, 0, item, h);
}

/*
 * The shared copy of the state: the largest item norm, the item norms, then
 * the user and item rows.
 */
static Size
dot_state_bytes(const ServeModel *m)
{
	return sizeof(double) * (1 + (Size) m->n_items) +
		sizeof(float) * ((Size) m->n_users + m->n_items) * m->dim;
}

static void
dot_state_write(const ServeModel *m, char *dst)
{
	const DotState *st = dot_state(m);
	double	   *norms = (double *) dst;
	float	   *rows = (float *) (norms + 1 + m->n_items);

	norms[0] = st->max_item_norm;
	memcpy(norms + 1, st->item_norm, sizeof(double) * m->n_items);
	memcpy(rows, st->user_emb, sizeof(float) * m->n_users * m->dim);
	memcpy(rows + (Size) m->n_users * m->dim, st->item_emb,
		   sizeof(float) * m->n_items * m->dim);
}

static void
dot_state_attach(ServeModel *m, const char *src)
{
	DotState   *st = MemoryContextAllocZero(m->cxt, sizeof(DotState));
	const double *norms = (const double *) src;
	const float *rows = (const float *) (norms + 1 + m->n_items);

	st->max_item_norm = norms[0];
	st->item_norm = (double *) (norms + 1);
	st->user_emb = (float *) rows;
	st->item_emb = (float *) (rows + (Size) m->n_users * m->dim);
	m->scorer_state = st;
}

const Scorer dot_scorer = {
	.name = "inner_product",
	.load = dot_load,
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
