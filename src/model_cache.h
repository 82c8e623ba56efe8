/*
 * model_cache.h - per-backend cache of models loaded for serving
 *
 * A served model is its 'user' and 'item' embeddings densified into float
 * matrices (rows in ascending id order), the sorted id arrays that map ids
 * to row indices, the training items of every user as index lists and the
 * items in popularity order.  It is read once from dsl.parameters and
 * dsl.seen_items and kept in backend-local memory.
 *
 * Every lookup first asks dsl.models, under the caller's snapshot, for the
 * model's current model_id (and row version); a retrain or replace creates a
 * new model_id, so a stale entry is never used.  The cache holds at most
 * SERVE_CACHE_SIZE models and evicts the least recently used one.
 */
#ifndef DSL_MODEL_CACHE_H
#define DSL_MODEL_CACHE_H

#include "postgres.h"

#include "interactions.h"
#include "model.h"

#define SERVE_CACHE_SIZE 4

typedef struct ServeModel
{
	/* identity: the entry is valid for exactly this models row and role */
	int64		model_id;
	TransactionId row_xmin;		/* xmin of the dsl.models row */
	Oid			role;			/* role whose privileges loaded the rows */
	char	   *name;

	int			dim;
	int			n_users;
	int			n_items;
	int64	   *user_ids;		/* n_users, ascending */
	int64	   *item_ids;		/* n_items, ascending */
	float	   *user_emb;		/* n_users x dim, row-major */
	float	   *item_emb;		/* n_items x dim, row-major */
	IndexCSR	seen;			/* training items of each user, by index */
	int32	   *popularity;		/* per item: training users who saw it */
	int32	   *pop_order;		/* item indices, most popular first, ties by id */
	double	   *item_norm;		/* Euclidean norm of each item row */
	double		max_item_norm;

	/* bookkeeping */
	MemoryContext cxt;			/* owns everything above */
	uint64		last_used;
	int64		hits;			/* lookups answered without loading */
} ServeModel;

/*
 * Return the current model called name, loading it if needed.  Errors with
 * ERRCODE_UNDEFINED_OBJECT if there is none.  The result stays valid until
 * the next serve_model_get() call of this backend.  Uses SPI; the caller must
 * not be connected to SPI.
 */
extern ServeModel *serve_model_get(const char *name);

/* Dense index of an id, or -1 when the model does not know it. */
static inline int
serve_user_index(const ServeModel *m, int64 user_id)
{
	return dsl_id_index(m->user_ids, m->n_users, user_id);
}

static inline int
serve_item_index(const ServeModel *m, int64 item_id)
{
	return dsl_id_index(m->item_ids, m->n_items, item_id);
}

static inline const float *
serve_user_row(const ServeModel *m, int u)
{
	return m->user_emb + (Size) u * m->dim;
}

static inline const float *
serve_item_row(const ServeModel *m, int i)
{
	return m->item_emb + (Size) i * m->dim;
}

#endif							/* DSL_MODEL_CACHE_H */
