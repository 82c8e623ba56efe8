/*
 * fold_in.h - a user row for an ad-hoc history against fixed item rows
 *
 * dsl.recommend_for_items asks an embedding model (MF, LightGCN) to rank
 * the catalogue for a history that belongs to no stored user: a new user,
 * an anonymous session, a what-if.  The user row is the one that best
 * explains the history with the item rows held fixed, a weighted ridge
 * regression in the manner of implicit-feedback ALS (Hu, Koren and Volinsky,
 * ICDM 2008): the history's items should score 1, every item of the
 * catalogue (the history included) should score near 0 with a small weight,
 * and the row is kept short:
 *
 *     p = argmin  1/n sum_{i in H} (1 - p.q_i)^2
 *                 + beta * 1/N sum_{all i} (p.q_i)^2  +  lambda * t * |p|^2
 *
 * n = |H|, N the catalogue's size, t = trace(Gbar) / dim the items' mean
 * squared coordinate, so beta and lambda are free of the embeddings' scale
 * and of the history's length (the same history twice gives the same row).
 * Solved exactly:
 *
 *     (sum_{i in H} q_i q_i^T + n beta Gbar + n lambda t I) p = sum_{i in H} q_i
 *
 * with Gbar = Q^T Q / N, the items' mean outer product, derived once per
 * served model (cblas_dsyrk over blocks of rows, in double) and a dim x dim
 * Cholesky solve per call.  The values of beta and lambda, and how they were
 * chosen, are in docs/serving.md.
 */
#ifndef DSL_FOLD_IN_H
#define DSL_FOLD_IN_H

#include "postgres.h"

#include "serve_rows.h"

typedef struct FoldIn
{
	int			dim;
	double	   *gram;			/* dim x dim, Q^T Q / N (both triangles) */
	double		mean_sq;		/* trace(gram) / dim */
	double	   *work;			/* dim x dim + 2 dim scratch for a solve */
	float	   *row;			/* dim scratch: one item row */
} FoldIn;

/*
 * The per-model part of a fold-in over the item rows, allocated in cxt.
 * Checks for interrupts between blocks of rows.
 */
extern FoldIn *fold_in_prepare(const ServeRows *items, MemoryContext cxt);

/*
 * out[0..dim-1] = the user row for the history hist[0..n-1] (item row
 * indices, n >= 1).  All zeros when the system is singular (every item row
 * zero).
 */
extern void fold_in_solve(const FoldIn *f, const ServeRows *items,
						  const int32 *hist, int n, float *out);

#endif							/* DSL_FOLD_IN_H */
