/*
 * model_cache.h - per-backend cache of models loaded for serving
 *
 * A served model is what its model type's scorer (scorer.h, resolved from
 * dsl.models.model_type) loaded from dsl.parameters, the sorted id arrays that
 * map ids to dense indices, the training items of every user as index lists
 * and the items in popularity order.  It is read once from dsl.parameters and
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
#include "scorer.h"
#include "spvec.h"

#define SERVE_CACHE_SIZE 4

typedef struct ServeModel
{
	/* identity: the entry is valid for exactly this models row and role */
	int64		model_id;
	TransactionId row_xmin;		/* xmin of the dsl.models row */
	Oid			role;			/* role whose privileges loaded the rows */
	char	   *name;
	char	   *model_type;		/* dsl.models.model_type */

	/* how scores are computed: the model type's scorer and what it loaded */
	const Scorer *scorer;
	void	   *scorer_state;

	int			dim;
	int64		stored_users;	/* dsl.models' n_users and n_items: size */
	int64		stored_items;	/* hints for loading, not trusted */
	int			user_dim;		/* floats in a user representation (Scorer) */
	int			n_users;
	int			n_items;
	int64	   *user_ids;		/* n_users, ascending */
	int64	   *item_ids;		/* n_items, ascending */
	IndexCSR	seen;			/* training items of each user, by index */
	int32	   *popularity;		/* per item: training users who saw it */
	int32	   *pop_order;		/* item indices, most popular first, ties by id */

	/* bookkeeping */
	MemoryContext cxt;			/* owns everything above, or with a shared
								 * copy the local part and the mapping */
	Size		shared_bytes;	/* size of the shared copy mapped; 0: local */
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

/* the backend's worker pool for serving calls, kept between calls */
struct WorkerPool;
extern struct WorkerPool *serve_worker_pool(void);

/*
 * For scorers' load(): every row of dsl.parameters part `part` of m, in
 * ascending entity_id order, through row(arg, n, id, v): first once with
 * n = -1 and id = the number of rows dsl.models gives for the part (a hint
 * to size arrays, 0 when unknown: the callback must take more rows or fewer;
 * v NULL), then for each row with n = 0, 1, ... and v valid until the call
 * returns.  Checks the order and the dimension; returns the number of rows.
 * Runs under the caller's SPI connection.
 */
typedef void (*ServePartRow) (void *arg, int64 n, int64 id, const SpVec *v);
extern int64 serve_scan_part(ServeModel *m, const char *part, ServePartRow row, void *arg);

/*
 * The same for a part whose rows have dimension dim instead of the model's,
 * or with dim -1 the first row's (all rows must have it).
 */
extern int64 serve_scan_part_dim(ServeModel *m, const char *part, int dim,
								 ServePartRow row, void *arg);

/*
 * Error out with ERRCODE_FEATURE_NOT_SUPPORTED: m's model type does not
 * provide `what` (an SQL function name).
 */
extern void serve_unsupported(const ServeModel *m, const char *what) pg_attribute_noreturn();

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

#endif							/* DSL_MODEL_CACHE_H */
