/*
 * interactions.h - reading (user, item) pairs from any relation
 *
 * Ids are arbitrary bigints; they are mapped to dense indices by their rank
 * in ascending order, so a sorted id array is the whole mapping.
 */
#ifndef DSL_INTERACTIONS_H
#define DSL_INTERACTIONS_H

#include "postgres.h"

#include "rng.h"

/* Training interactions: distinct pairs as CSR by user index */
typedef struct Interactions
{
	int			n_users;
	int			n_items;
	int64		n_pairs;		/* distinct pairs */
	int64	   *user_ids;		/* n_users, ascending */
	int64	   *item_ids;		/* n_items, ascending */
	int64	   *ptr;			/* n_users + 1 */
	int32	   *items;			/* n_pairs item indices, ascending per user */
	int64		n_rows;			/* rows read, including skipped ones */
	int64		n_null;			/* rows skipped for a NULL user or item */
	int64		n_duplicate;	/* rows that repeated an earlier pair */
} Interactions;

/* (user, item) id pairs as read from a relation, rows with a NULL dropped */
typedef struct PairIds
{
	int64	   *u;				/* n user ids, in scan order */
	int64	   *i;				/* n item ids */
	int64		n;				/* pairs kept (duplicates included) */
	int64		n_rows;			/* rows read, including skipped ones */
	int64		n_null;			/* rows skipped for a NULL user or item */
} PairIds;

/* Held-out pairs mapped onto a model's users and items */
typedef struct MappedPairs
{
	int64	   *ptr;			/* n_users + 1 (model users) */
	int32	   *items;			/* known item indices, ascending per user */
	int32	   *total;			/* per model user: test items incl. unknown */
	int64		n_rows;
	int64		n_null;
	int64		n_duplicate;
	int64		n_pairs;		/* distinct pairs */
	int64		users_unknown;	/* distinct users not in the model */
	int64		items_unknown;	/* distinct pairs whose item is unknown */
} MappedPairs;

/*
 * Check that relid can be scanned and that column `col` exists and has an
 * integer type; errors name the column and relation.  `param` is the name
 * of the SQL argument (user_col, item_col, ...) for the hint.
 */
extern void dsl_check_source_column(Oid relid, const char *col, const char *param);

/* schema-qualified, quoted name of a relation, for messages and queries */
extern char *dsl_relation_name(Oid relid);

extern Interactions *dsl_read_interactions(Oid relid, const char *user_col,
										   const char *item_col, Size mem_limit);

/*
 * Read every (user_col, item_col) pair of relid (columns checked with
 * dsl_check_source_column) into out, allocated in the current memory
 * context.  Errors (54000, naming the setting limit_name) when the pairs need
 * more than mem_limit bytes; SIZE_MAX means no limit.
 */
extern void dsl_read_pair_ids(Oid relid, const char *user_col, const char *item_col,
							  Size mem_limit, const char *limit_name, PairIds *out);
extern void dsl_free_pair_ids(PairIds *p);

/*
 * Pairs mapped onto a model's users and items (sorted id arrays): known items
 * per known user as CSR, distinct test items per user including unknown ones
 * (total), and the counts of what the model does not know.
 */
extern MappedPairs *dsl_map_pairs(const PairIds *pairs,
								  const int64 *user_ids, int n_users,
								  const int64 *item_ids, int n_items);

/* dsl_read_pair_ids() (limit named work_mem) followed by dsl_map_pairs() */
extern MappedPairs *dsl_read_mapped_pairs(Oid relid, const char *user_col,
										  const char *item_col,
										  const int64 *user_ids, int n_users,
										  const int64 *item_ids, int n_items,
										  Size mem_limit);

/* training part and held-out part of the pairs (dsl.train's stopping rule) */
extern void dsl_holdout_split(const Interactions *all, double frac, int max_users, uint64 seed,
							  Interactions **train, MappedPairs **val);

/* dense index of id in a sorted id array, or -1 */
static inline int
dsl_id_index(const int64 *ids, int n, int64 id)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ids[mid] < id)
			lo = mid + 1;
		else if (ids[mid] > id)
			hi = mid - 1;
		else
			return mid;
	}
	return -1;
}

/* whether x occurs in the ascending array a[0..n) */
static inline bool
dsl_sorted_contains(const int32 *a, int64 n, int32 x)
{
	int64		lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (a[mid] < x)
			lo = mid + 1;
		else if (a[mid] > x)
			hi = mid - 1;
		else
			return true;
	}
	return false;
}

/* whether user index u interacted with item index i in training */
static inline bool
dsl_user_has_item(const Interactions *d, int u, int32 i)
{
	return dsl_sorted_contains(d->items + d->ptr[u], d->ptr[u + 1] - d->ptr[u], i);
}

/* Fisher-Yates shuffle of n (user, item) index pairs stored as pairs[2 * p] */
static inline void
dsl_shuffle_pairs(int32 *pairs, int64 n, DslRng *rng)
{
	for (int64 p = n - 1; p > 0; p--)
	{
		int64		q = (int64) dsl_rng_below(rng, (uint64) p + 1);
		int32		tu = pairs[2 * p],
					ti = pairs[2 * p + 1];

		pairs[2 * p] = pairs[2 * q];
		pairs[2 * p + 1] = pairs[2 * q + 1];
		pairs[2 * q] = tu;
		pairs[2 * q + 1] = ti;
	}
}

#endif							/* DSL_INTERACTIONS_H */
