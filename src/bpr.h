/*
 * bpr.h - the training loop shared by the models that learn from sampled
 * negatives (MF, LightGCN; NeuMF is meant to use it too)
 *
 * Each epoch visits every distinct training pair (u, i) once, in a seeded
 * random order, in mini-batches of batch_size pairs; or, for a model that
 * asks (bpr_sample_by_user: LightGCN), it draws as many pairs user first,
 * the user uniformly among those with pairs, then one of that user's
 * items uniformly, as the LightGCN reference does.  For every pair an
 * item j the user has not interacted with is drawn uniformly, which gives a
 * triple (u, i, j); the loss of a triple is BPR's -log sigmoid(x) with
 * x = score(u, i) - score(u, j), averaged over the batch.  What a score is,
 * which rows a batch touches and how gradients reach the parameters is the
 * model's: it provides one optimizer step (BprModel.step) and what happens
 * at a DSL round (BprModel.round).  The layer provides
 *
 *   - the pairs and their order per epoch, and the epoch loop itself (the
 *     engine's step counter, interrupts, the loss sum, divergence, rounds);
 *   - negative sampling: bpr_sample_negatives draws in parallel chunks with
 *     streams of their own, so the draws do not depend on dsl_rec.threads
 *     (new models use it); bpr_draw_negative draws one from a given stream
 *     (LightGCN draws from the epoch's stream, one pair after another);
 *   - the loss of one triple from its score difference (bpr_pair_loss), or
 *     of one pair from its score for pointwise training (bpr_point_loss:
 *     the step then returns the number of pairs scored, positives and
 *     negatives, with their losses in loss[], which it may point at an
 *     array of its own);
 *   - for inner-product scores on per-slot rows: the scores phase
 *     (bpr_scores) and the triples' gradients by slot (bpr_accumulate_grads).
 *
 * Triples hold slots, not row ids: a model numbers the rows its batch
 * touches (its own scheme) and keeps their dense rows by slot.  Every
 * parallel phase splits work by slot or triple ranges and sums in triple
 * order, so results depend on the seed only.
 */
#ifndef DSL_BPR_H
#define DSL_BPR_H

#include "postgres.h"

#include <math.h>

#include "model_ops.h"
#include "rng.h"

/* arrays of L2 terms a step may report (bpr_train_epoch sums them) */
#define BPR_MAX_REG 5

/* one sampled triple, as slots of the batch's user and item rows */
typedef struct BprTriple
{
	int32		u;
	int32		i;
	int32		j;
} BprTriple;

typedef struct BprTrainer
{
	DslEngine  *engine;
	const Interactions *data;
	WorkerPool *pool;			/* the engine's */
	int			dim;
	int			batch_size;
	uint64		seed;
	DslRng		rng;			/* the epochs' pair order */
	int32	   *pairs;			/* (user, item) index pairs, shuffled per epoch */
	int32	   *pair_users;		/* bpr_sample_by_user: the users with pairs */
	int			n_pair_users;	/* ... and how many; 0: every pair once */

	/* the current step */
	const int32 *step_pairs;	/* its (user, item) pairs */
	int			nb;				/* pairs in the step */
	uint64		sample_key;		/* bpr_sample_negatives: the step's streams */
	int32	   *neg;			/* per pair: sampled negative, -1 if none */
	BprTriple  *trip;			/* the model fills trip[0..nt) */
	int			nt;
	float		inv_nb;			/* 1 / nt */
	const float *user_rows;		/* bpr_scores: user rows by slot (dim wide) */
	const float *item_rows;		/* bpr_scores: item rows by slot */
	float	   *coef;			/* per triple: d loss / d x */
	double	   *loss;			/* per triple: the loss */
	int			n_reg;			/* the step's L2 terms: arrays reg[0..n_reg), */
	const double *reg[BPR_MAX_REG];	/* reg[a][0..reg_n[a]) each (per slot) */
	int			reg_n[BPR_MAX_REG];
} BprTrainer;

/* what a model plugs into bpr_train_epoch */
typedef struct BprModel
{
	/*
	 * One optimizer step on pairs[0..nb) (the engine's step has begun):
	 * negatives, triples (trip, nt, inv_nb), forward, loss (coef, loss),
	 * backward and the Adam step; the L2 term of the step (per triple) in
	 * the arrays n_reg, reg, reg_n.  round_due: a DSL round follows this
	 * step.  Returns nt.
	 */
	int			(*step) (void *state, const int32 *pairs, int nb, bool round_due);

	/* the DSL round after a step (dsl_engine_update with its gradients) */
	void		(*round) (void *state);

	/* after an epoch's last step, or NULL */
	void		(*end_epoch) (void *state);
} BprModel;

/*
 * batch_size NULL: the largest power of two from 128 to 2048 that still
 * gives an epoch of at least 256 steps (docs/training.md, "Batch size")
 */
extern int	bpr_default_batch_size(const Interactions *d);

/* bytes bpr_init allocates (pairs and the per-step arrays) */
extern Size bpr_work_bytes(const Interactions *d, const TrainParams *p);

/* pairs, streams and per-step arrays; trains on the engine's pool */
extern void bpr_init(BprTrainer *b, DslEngine *e, const Interactions *d,
					 const TrainParams *p);

/*
 * Epochs draw their pairs user first (see the top of this file) instead of
 * visiting every pair once; call after bpr_init.
 */
extern void bpr_sample_by_user(BprTrainer *b);

/* bytes bpr_sample_by_user allocates (on top of bpr_work_bytes) */
extern Size bpr_by_user_bytes(const Interactions *d);

/* the next epoch's n_pairs pairs into pairs[], in the order of its steps */
extern void bpr_epoch_pairs(BprTrainer *b);

/* one epoch: returns the mean loss per triple (NaN/Inf when diverged) */
extern double bpr_train_epoch(BprTrainer *b, const BprModel *m, void *state);

/*
 * neg[t] for pairs[0..nb) on the pool: chunk c of the pairs draws from the
 * stream (seed, key, c), whatever the number of threads.
 */
extern void bpr_sample_negatives(BprTrainer *b, const int32 *pairs, int nb,
								 uint64 key);

/*
 * trip[0..nt) of the pairs with a negative (neg[t] >= 0), in pair order, as
 * slots: user_slot[user], item_slot[item]; each triple adds one to the
 * count of its three slots.  The rows must have been numbered already.
 * Returns nt.
 */
extern int	bpr_triples(BprTrainer *b, const int32 *pairs, int nb,
						const int32 *user_slot, const int32 *item_slot,
						int32 *user_count, int32 *item_count);

/* scores of trip[0..nt) by inner products of user_rows and item_rows */
extern void bpr_scores(BprTrainer *b);

/*
 * The triples' gradients with respect to the rows of bpr_scores: user slots
 * [ulo, uhi) into gu, item slots [ilo, ihi) into gi (zeroed first), summed
 * in triple order.  gu and gi may be one array (then with equal ranges).
 */
extern void bpr_accumulate_grads(const BprTrainer *b, float *gu, float *gi,
								 int64 ulo, int64 uhi, int64 ilo, int64 ihi);

/*
 * A uniformly drawn item user u has not interacted with, from rng; -1 (and
 * no draw) when u has interacted with every item.
 */
static inline int32
bpr_draw_negative(const Interactions *d, int32 u, DslRng *rng)
{
	int32		j;

	if (d->ptr[u + 1] - d->ptr[u] >= d->n_items)
		return -1;
	do
		j = (int32) dsl_rng_below(rng, (uint64) d->n_items);
	while (dsl_user_has_item(d, u, j));
	return j;
}

/* numerically stable log(1 + exp(x)) */
static inline double
bpr_softplus(double x)
{
	return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

/*
 * BPR on a triple with x = score(u, i) - score(u, j): loss -log sigmoid(x)
 * = softplus(-x), and the batch mean's derivative by x, -sigmoid(-x) / nt.
 */
static inline void
bpr_pair_loss(float x, float inv_nb, float *coef, double *loss)
{
	*coef = -inv_nb / (1.0f + expf(x));
	*loss = bpr_softplus(-(double) x);
}

/*
 * Pointwise (binary cross-entropy) on one pair scored x: -log sigmoid(x)
 * for a positive, -log sigmoid(-x) for a sampled negative, and the
 * derivative by x of the mean over n pairs (inv_n = 1 / n).
 */
static inline void
bpr_point_loss(float x, bool positive, float inv_n, float *coef, double *loss)
{
	if (positive)
	{
		*coef = -inv_n / (1.0f + expf(x));
		*loss = bpr_softplus(-(double) x);
	}
	else
	{
		*coef = inv_n / (1.0f + expf(-x));
		*loss = bpr_softplus((double) x);
	}
}

#endif							/* DSL_BPR_H */
