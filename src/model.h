/*
 * model.h - what training, serving and evaluation share about a trained model
 *
 * A trained model is, for ranking purposes, two embedding tables (users and
 * items, same dimension) whose inner product is the score, plus the training
 * interactions per user (to exclude already-seen items).  Entities are
 * identified in SQL by arbitrary bigint ids; internally by dense indices
 * 0..n-1 that are the rank of the id in ascending order (so the sorted id
 * array *is* the mapping).
 *
 * Embeddings are produced block-wise through EmbeddingSource so that callers
 * holding sparse parameters (training) never need a full dense copy, while
 * callers holding dense matrices (the serving cache) hand out pointers.
 */
#ifndef DSL_MODEL_H
#define DSL_MODEL_H

#include "postgres.h"

/*
 * A table of n_rows embeddings of dimension dim.  Exactly one of `dense`
 * (row-major n_rows x dim, owned by the provider) or `fill` is set.  fill()
 * writes rows [first, first + count) densely into out (count x dim) and must
 * not call PostgreSQL APIs (it may run in a worker thread).
 */
typedef struct EmbeddingSource
{
	int			n_rows;
	int			dim;
	const float *dense;
	void		(*fill) (void *arg, int first, int count, float *out);
	void	   *arg;
} EmbeddingSource;

/* An EmbeddingSource over a dense row-major n_rows x dim matrix. */
static inline EmbeddingSource
embedding_source_dense(const float *rows, int n_rows, int dim)
{
	EmbeddingSource s = {n_rows, dim, rows, NULL, NULL};

	return s;
}

/* An EmbeddingSource whose rows fill(arg, first, count, out) produces. */
static inline EmbeddingSource
embedding_source_fill(void (*fill) (void *arg, int first, int count, float *out),
					  void *arg, int n_rows, int dim)
{
	EmbeddingSource s = {n_rows, dim, NULL, fill, arg};

	return s;
}

/*
 * Compressed sparse rows of item indices per user index, each row sorted
 * ascending without duplicates.  ptr has n_rows + 1 entries.
 */
typedef struct IndexCSR
{
	int			n_rows;
	const int64 *ptr;
	const int32 *idx;
} IndexCSR;

/* Ranking metrics at a cut-off k, averaged over evaluated users. */
typedef struct EvalMetrics
{
	int			k;
	double		recall;
	double		ndcg;
	double		precision;
	double		hit_rate;
	double		mrr;
	double		recall_truncated;	/* hits / min(k, |test|) (MultVAE, DSL) */
	int64		users_evaluated;	/* model users with >= 1 test item */
	double		item_coverage;	/* distinct items recommended / n_items */
} EvalMetrics;

/*
 * Full-ranking evaluation (LightGCN/NGCF protocol): for every user u with
 * test->ptr[u+1] > test->ptr[u], score all items, drop seen[u], take the
 * top k (ties: lower item index first) and compare with test items.
 * test_total[u], when not NULL, is the number of test items of u including
 * ones unknown to the model (the recall denominator); otherwise the CSR row
 * length is used.  Users whose test_total is > 0 but whose known test row is
 * empty still count as evaluated (with zero hits).  Runs BLAS sgemm on blocks
 * bounded by mem_bytes and calls CHECK_FOR_INTERRUPTS between blocks.
 */
extern void dsl_evaluate_full(const EmbeddingSource *users,
							  const EmbeddingSource *items,
							  const IndexCSR *seen,
							  const IndexCSR *test,
							  const int32 *test_total,
							  int k, Size mem_bytes,
							  EvalMetrics *out);

/*
 * Ranks users[0..n_users-1] against all items, skipping exclude's row of
 * each user when exclude is not NULL, and emits each user's top k, best
 * first, from the calling backend (a Scorer's rank_users,
 * topk_rank_users() over embedding sources, a model type's validation).
 */
typedef void (*EvalRankFn) (void *arg, const int32 *users, int n_users,
							const IndexCSR *exclude, int k, Size mem_bytes,
							void (*emit) (void *arg, int32 user, const int32 *items,
										  const float *scores, int n),
							void *emit_arg);

/*
 * dsl_evaluate_full's metrics with any ranking: the users with test items
 * are ranked by rank(rank_arg, ...).
 */
extern void dsl_evaluate_ranked(int n_users, int n_items,
								const IndexCSR *seen,
								const IndexCSR *test,
								const int32 *test_total,
								int k, Size mem_bytes,
								EvalRankFn rank, void *rank_arg,
								EvalMetrics *out);

#endif							/* DSL_MODEL_H */
