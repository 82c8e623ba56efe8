/*
 * neumf_net.h - the NeuMF score of a user against items, as served
 *
 * NeuMF (He et al., WWW 2017) scores a user u and an item i by
 *
 *   s(u, i) = p_u . q_i + h . x_L + b
 *
 * with p, q the GMF embeddings (GMF's output weights are fixed at 1: see
 * neumf.c) and x_L the last hidden layer of an MLP over
 * [p'_u ; q'_i]: x_1 = relu(W1u^T p'_u + W1i^T q'_i + b_1), then
 * x_l = relu(W_l^T x_(l-1) + b_l).  The first layer splits into a user part
 * and an item part, so serving (scorer_neumf.c) and training's validation
 * (neumf.c) precompute
 *
 *   user representation  [p_u ; W1u^T p'_u]                    (rep floats)
 *   item row             [q_i ; W1i^T q'_i + b_1]               (rep floats)
 *
 * with rep = gmf_dim + width[0], and what is left per (user, item) is
 * GMF's inner product and the small layers after the first.
 * The item rows are kept in tiles of NEUMF_LANES items (neumf_net_tile:
 * element k of the tile's items side by side), and the network runs on a
 * tile's items at once, each item in its own SIMD lane, so the arithmetic
 * of an item's score does not depend on which other items share its tile:
 * the score of a (user, item) pair is the same whichever call computes it,
 * a whole-catalogue scan (neumf_net_score_all) or a list (neumf_net_score):
 * the canonical score scorer.h asks for.  One copy of the body is chosen
 * per process from the CPU (cpu.h); the copies may differ in the last bits
 * (FMA).
 */
#ifndef DSL_NEUMF_NET_H
#define DSL_NEUMF_NET_H

#include "postgres.h"

#define NEUMF_MAX_HIDDEN 4		/* hidden layers of the MLP */
#define NEUMF_MAX_WIDTH 512		/* units of a hidden layer, and GMF's width */
#define NEUMF_LANES 16			/* items scored side by side */
#define NEUMF_MAX_REP (2 * NEUMF_MAX_WIDTH)	/* GMF's width + the first layer's */

typedef struct NeumfNet
{
	int			gmf_dim;		/* GMF embedding width */
	int			n_hidden;		/* 1 .. NEUMF_MAX_HIDDEN */
	int			width[NEUMF_MAX_HIDDEN];	/* units of each hidden layer */
	const float *w[NEUMF_MAX_HIDDEN];	/* l >= 1: width[l-1] x width[l],
										 * row-major (w[0] unused: the first
										 * layer is in the representations) */
	const float *b[NEUMF_MAX_HIDDEN];	/* l >= 1: width[l] biases */
	const float *h_mlp;			/* output weights of the last hidden layer (h) */
	float		out_bias;
} NeumfNet;

/* floats of a user representation and of an item row */
static inline int
neumf_rep_width(const NeumfNet *net)
{
	return net->gmf_dim + net->width[0];
}

/*
 * Choose the body for this CPU: call in the backend (not in a worker thread)
 * before neumf_net_score, which worker threads may then call.
 */
extern void neumf_net_prepare(void);

/*
 * A row of the representations: [e ; W1^T em (+ bias)], with W1 = w1 (dm x
 * width[0]) and bias NULL for a user ([p_u ; W1u^T p'_u]), or W1i and b_1
 * for an item.  Summed in double over the non-zero entries of em in
 * ascending order, so every caller derives the same floats.
 */
extern void neumf_net_rep(const NeumfNet *net, int dm, const float *w1,
						  const float *bias, const float *e, const float *em,
						  float *out);

/* floats of the tiled form of n item rows */
static inline Size
neumf_net_tiled_floats(const NeumfNet *net, int n)
{
	return (Size) ((n + NEUMF_LANES - 1) / NEUMF_LANES) * neumf_rep_width(net) * NEUMF_LANES;
}

/*
 * The tiled form of item rows rows[i * ld .. + rep), i < n, into tiled
 * (neumf_net_tiled_floats floats): lane c of tile t is item
 * NEUMF_LANES t + c, the lanes past n zeros.
 */
extern void neumf_net_tile(const NeumfNet *net, const float *rows, Size ld,
						   int n, float *tiled);

/*
 * scores[i] = s(user, item i) for every item i < n of the tiled rows.  Plain
 * C (no palloc): worker threads may call it.
 */
extern void neumf_net_score_all(const NeumfNet *net, const float *user,
								const float *tiled, int n, float *scores);

/* scores[c] = s(user, item items[c]) for c < n: the same values */
extern void neumf_net_score(const NeumfNet *net, const float *user,
							const float *tiled, const int32 *items, int n,
							float *scores);

#endif							/* DSL_NEUMF_NET_H */
