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
 *   masks excluded (seen) items and feeds each row into a per-user TopKNear
 *   whose admission threshold most scores fail, so the scan costs little
 *   more than reading the block; the few candidates near each user's k-th
 *   score are then scored with topk_dot(), so the result is the canonical
 *   top k, as one user at a time.  Blocks are sized from a memory budget;
 *   CHECK_FOR_INTERRUPTS() runs between blocks.
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

/* The Euclidean norm of a float vector, summed in double. */
extern double topk_norm(const float *x, int dim);

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
 * The exact top k of a user from float32 scores that are within a known
 * bound of the canonical ones, offered one at a time in any order (a
 * catalogue scanned block by block, or in a kernel's own row order): the k
 * best approximations are kept in a heap, and every offer within twice the
 * bound of its k-th best as a candidate; at the end only the candidates
 * still within twice the bound of the final k-th best are scored exactly.
 * That is topk_offer_bounded()'s argument, for scores that do not come as
 * one array.  `floor` is the admission threshold (-inf until k approximations
 * are in): a score below it can never be in the exact top k, so a scan
 * tests it first.  Storage comes from CurrentMemoryContext at init.
 */
typedef struct TopKNear
{
	TopK		heap;			/* the k best approximations */
	double		bound;			/* of each approximation's error */
	float		floor;			/* offers below this are dropped */
	int			n;				/* candidates kept */
	int			cap;
	float	   *cs;				/* candidates' approximations */
	int32	   *ci;				/* and indices */
	bool		fixed;			/* never allocate (worker threads) */
	bool		overflow;		/* fixed, and more candidates than room */
} TopKNear;

/*
 * Storage for k, for at most n_max offers per user; with fixed, offers never
 * allocate (they may then run in a worker thread) and a user with more
 * candidates near its k-th score than fit (many equal scores) is marked
 * overflow: rank it another way.
 */
extern void topk_near_init(TopKNear *t, int k, int n_max, bool fixed);

/* the bytes topk_near_init() allocates at first */
extern Size topk_near_bytes(int k, int n_max);

/* start over for a new user whose approximations are within bound */
extern void topk_near_reset(TopKNear *t, double bound);

/* offer (approximation, index); NaN is never kept */
extern void topk_near_offer(TopKNear *t, float approx, int32 idx);
/*
 * offer scores[0..n-1] (NaN: left out), of indices base..base+n-1, or
 * map[0..n-1] when map is not NULL
 */
extern void topk_near_scan(TopKNear *t, const float *scores, int n, int32 base,
						   const int32 *map);
/*
 * With bound 0 (topk_near_reset()), a TopKNear also finds the rows that can
 * be among the k best from an interval per row, lo <= exact <= hi: its heap
 * keeps the k best lo (the floor is the k-th of them) and its candidates
 * are the rows whose hi reaches the floor.  NaN: the row is left out.
 */
extern void topk_near_offer_interval(TopKNear *t, float lo, float hi, int32 idx);
extern void topk_near_scan_interval(TopKNear *t, const float *lo, const float *hi, int n,
									int32 base, const int32 *map);

/*
 * The exact top k: exact(arg, idx) of each surviving candidate offered to
 * out (empty, capacity k), which is then sorted best first; returns its size.
 */
extern int	topk_near_finish(TopKNear *t, float (*exact) (void *arg, int32 idx),
							 void *arg, TopK *out);
/* the same offers to h (which may hold entries already), unsorted */
extern void topk_near_offer_exact(TopKNear *t, float (*exact) (void *arg, int32 idx),
								  void *arg, TopK *h);
/* give back what topk_near_init() allocated */
extern void topk_near_free(TopKNear *t);

/* The float32 error bound of a dim-term dot product of vectors of norms a, b */
static inline double
topk_dot_bound(int dim, double a, double b)
{
	/*
	 * A float dot product of dim terms, summed in any order, is within
	 * gamma_dim * sum |x_j * y_j| <= ~dim * 2^-24 * |x| * |y| of the exact
	 * one, and the canonical score is within 2^-24 of it after rounding;
	 * (dim + 8) * 2^-23 more than covers both.
	 */
	return (dim + 8) * 0x1p-23 * a * b + 1e-30;
}

/*
 * Called by topk_rank_users() once per ranked user, in the order of the user
 * list, from the calling backend (PostgreSQL calls are allowed).  items and
 * scores hold n (<= k) entries best first; scores are the canonical ones.
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
