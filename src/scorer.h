/*
 * scorer.h - how a model type's served model scores users against items
 *
 * Serving (recommend.c, evaluate.c) never assumes how a score is computed: it
 * asks the model's Scorer, which the serving cache resolves from the model's
 * model_type (ModelOps.scorer) when it loads the model.  A scorer loads what
 * its model type stored in dsl.parameters and answers these questions:
 *
 *   - user_vector: a stored user's representation, m->user_dim floats
 *     (for the inner-product scorer its 'user' row);
 *   - history_vector: the representation of an ad-hoc user given only a
 *     history of items (dsl.recommend_for_items): a fold-in for embedding
 *     models, an encoder for autoencoders; NULL when the type has none;
 *   - rank_items: one user representation against the whole catalogue
 *     (dsl.recommend);
 *   - score_items: one user representation against a list of items
 *     (dsl.score, candidate lists, and the canonical scores
 *     dsl.recommend_all reports);
 *   - rank_users: a block of users against all items (dsl.recommend_all,
 *     dsl.evaluate), emitting each user's top k through a TopKEmit;
 *   - similar_items: item-item similarity (dsl.similar_items), or NULL when
 *     the model type has none (the SQL function then fails with
 *     ERRCODE_FEATURE_NOT_SUPPORTED naming the model and its model_type).
 *
 * Whatever the scorer, the ranking rule is topk.h's (higher score first,
 * equal scores by lower item index), and score_items() is the canonical
 * score: rank_items() and rank_users() must rank exactly by it, and
 * rank_users() emits it, so dsl.score, dsl.recommend and dsl.recommend_all
 * agree (a faster approximation may choose the candidates when its error is
 * bounded: TopKNear, topk.h).
 *
 * Scorers run in the calling backend; they may use palloc, ereport and
 * CHECK_FOR_INTERRUPTS.  The inner-product scorer (scorer_dot.c) serves every
 * model type whose serving rows are 'user' and 'item' embeddings.
 */
#ifndef DSL_SCORER_H
#define DSL_SCORER_H

#include "postgres.h"

#include "model.h"
#include "topk.h"

struct ServeModel;

typedef struct Scorer
{
	const char *name;			/* for messages */

	/*
	 * Read what the model type stored from dsl.parameters (usually with
	 * serve_scan_part(), or serve_rows_load() for embedding tables), under the caller's SPI connection, into m->cxt:
	 * set m->n_users, m->user_ids, m->n_items, m->item_ids (ascending ids:
	 * the index maps), m->user_dim and m->scorer_state.  m->model_id, name,
	 * model_type and dim are set.  With state_write, the state may be left
	 * half built for state_write to complete in the shared copy; state_finish
	 * then completes it in m->cxt when the model is not shared.
	 */
	void		(*load) (struct ServeModel *m);
	void		(*state_finish) (struct ServeModel *m);

	/* out[0..m->user_dim-1] = the representation of user index `user` */
	void		(*user_vector) (const struct ServeModel *m, int user, float *out);

	/*
	 * out[0..m->user_dim-1] = the representation of a user whose history is
	 * items[0..n-1] (sorted, distinct item indices, n >= 1).  May keep what
	 * it derives once per model (in m->cxt, through m->scorer_state).  NULL:
	 * the model type cannot recommend for an ad-hoc history.
	 */
	void		(*history_vector) (struct ServeModel *m, const int32 *items,
								   int n, float *out);

	/*
	 * Offer every item's canonical score for the user representation `user`
	 * to h, except the items listed in exclude (sorted indices, n_exclude of
	 * them).
	 */
	void		(*rank_items) (const struct ServeModel *m, const float *user,
							   const int32 *exclude, int64 n_exclude, TopK *h);

	/* scores[c] = canonical score of representation `user` and item items[c] */
	void		(*score_items) (const struct ServeModel *m, const float *user,
								const int32 *items, int n, float *scores);

	/*
	 * Rank all items for each of users[0..n_users-1] (indices, any order),
	 * skipping exclude's row of the user when exclude is not NULL, and emit
	 * each user's k best (k <= n_items) best first, from the calling backend.
	 * Memory stays near mem_bytes.  The emitted scores are the ones ranked
	 * by, which need not be the canonical ones.
	 */
	void		(*rank_users) (const struct ServeModel *m,
							   const int32 *users, int n_users,
							   const IndexCSR *exclude, int k, Size mem_bytes,
							   TopKEmit emit, void *emit_arg);

	/*
	 * Offer every other item's similarity to item index `item` to h: the
	 * cosine of the item representations, or with cosine = false their inner
	 * product.  NULL: the model type has no item-item similarity.
	 */
	void		(*similar_items) (const struct ServeModel *m, int item,
								  bool cosine, TopK *h);

	/*
	 * The shared copy of a model (serve_shared.h): the bytes of the loaded
	 * state, its copy written at dst (MAXALIGNed), and m->scorer_state
	 * rebuilt over such a copy, which is shared and read-only, with anything
	 * else in m->cxt.  NULL: the type's models are kept per backend.
	 */
	Size		(*state_bytes) (const struct ServeModel *m);
	void		(*state_write) (const struct ServeModel *m, char *dst);
	void		(*state_attach) (struct ServeModel *m, const char *src);
} Scorer;

/* the inner-product scorer of 'user' x 'item' rows (scorer_dot.c) */
extern const Scorer dot_scorer;

/*
 * A scorer built on the inner-product one (its load() calls dot_scorer's,
 * its other callbacks mostly forward to dot_scorer's) keeps what is its own
 * through this pointer of the inner-product state, NULL until it sets it.
 */
extern void **dot_scorer_extra(const struct ServeModel *m);

/* MultVAE's: inner products, and its encoder for histories (scorer_multvae.c) */
extern const Scorer multvae_scorer;

/* NeuMF's: a user representation against item rows through the MLP (scorer_neumf.c) */
extern const Scorer neumf_scorer;

#endif							/* DSL_SCORER_H */
