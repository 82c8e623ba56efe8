/*
 * topk.h - scoring users against items and keeping the k best per user
 *
 * Two ways of scoring share one ranking rule: higher score first, equal
 * scores by lower item index (= lower item id, since dense indices are id
 * ranks).
 *
 * - One user at a time (dsl.recommend, dsl.score, dsl.similar_items):
 *   topk_dot() is the canonical score, a float inner product accumulated in
 *   double in one fixed routine, so every SQL function reports bit-identical
 *   scores for the same (user, item) and ranks by them.
 *   topk_offer_bounded() finds the canonical top k of a whole catalogue from
 *   float32 scores (one cblas_sgemv, or a sparse kernel: serve_rows.h) and
 *   exact rescoring of the few rows near the k-th.
 *
 * - Many users at a time (dsl.recommend_all, evaluation): topk_rank_users()
 *   scores a block of users against a block of items with one cblas_sgemm,
 *   masks excluded (seen) items and feeds each row into a bounded per-user
 *   heap whose current k-th score is a threshold most scores fail, so the
 *   scan costs little more than reading the block.  Blocks are sized from a
 *   memory budget; CHECK_FOR_INTERRUPTS() runs between blocks.  float32
 *   sgemm rounding can differ from topk_dot() in the last bit, so callers
 *   that report scores recompute them with topk_dot().
 */
#ifndef DSL_TOPK_H
#define DSL_TOPK_H

#include "postgres.h"

#include "model.h"

/*
 * A bounded heap of the k best (score, index) pairs seen so far.  The root is
 * the worst kept entry.  Storage is provided by the caller.
 */
typedef struct TopK
{
	int			k;				/* capacity, > 0 */
	int			n;				/* entries kept, <= k */
	float	   *score;
	int32	   *idx;
} TopK;

static inline void
topk_init(TopK *h, int k, float *score_buf, int32 *idx_buf)
{
	h->k = k;
	h->n = 0;
	h->score = score_buf;
	h->idx = idx_buf;
}

/* Is (s1, i1) ranked before (s2, i2)? */
static inline bool
topk_better(float s1, int32 i1, float s2, int32 i2)
{
	return s1 > s2 || (s1 == s2 && i1 < i2);
}

/* Offer a candidate in any index order; NaN scores are never kept. */
extern void topk_offer(TopK *h, float score, int32 idx);

/*
 * Offer scores[0..n-1] belonging to indices base..base+n-1, in increasing
 * index order (later indices of an equal score lose).  NaN marks an excluded
 * entry.
 */
extern void topk_scan(TopK *h, const float *scores, int n, int32 base);

/* Sort the kept entries best first, in place; returns how many there are. */
extern int	topk_sort(TopK *h);

/* The canonical score: inner product of two float vectors, summed in double. */
extern float topk_dot(const float *a, const float *b, int dim);

/*
 * Offer to h the canonical scores exact(arg, i) of rows 0..n-1, knowing
 * float32 approximations approx[i] within bound of them (NaN: the row is
 * left out).  The result is exactly that of offering every row's canonical
 * score, but only rows whose approximation is within twice the bound of the
 * k-th best approximation are scored exactly.
 */
extern void topk_offer_bounded(TopK *h, const float *approx, int n, double bound,
							   float (*exact) (void *arg, int i), void *arg);

/*
 * Called by topk_rank_users() once per ranked user, in the order of the user
 * list, from the calling backend (PostgreSQL calls are allowed).  items and
 * scores hold n (<= k) entries best first; scores are the sgemm values.
 */
typedef void (*TopKEmit) (void *arg, int32 user, const int32 *items,
						  const float *scores, int n);

/*
 * Rank all items for each of users_list[0..n_list-1] (indices into users,
 * any order), excluding exclude's row of the user when exclude is not NULL,
 * keep the k best and emit them.  Memory for blocks, scores and heaps stays
 * near mem_bytes (at least one user and a small item block are used whatever
 * the budget).
 */
extern void topk_rank_users(const EmbeddingSource *users,
							const EmbeddingSource *items,
							const int32 *users_list, int n_list,
							const IndexCSR *exclude,
							int k, Size mem_bytes,
							TopKEmit emit, void *emit_arg);

#endif							/* DSL_TOPK_H */
