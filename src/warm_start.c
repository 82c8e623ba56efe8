/*
 * warm_start.c - dsl.train(warm_start => model): continue a stored model
 *
 * A continuation starts from a stored model's parameters instead of a
 * fresh initialisation, so that a model can follow a growing interactions
 * table at a fraction of the cost of training it again.
 *
 * The stored model is found and locked first, like a model being replaced:
 * the caller must own it (its rows shape the model the caller stores), and
 * its type, dim and density must be the call's.  Once the pairs are read,
 * they are compared with the stored model's dsl.seen_items (its training
 * pairs) to count what is new.  After the model type has created its
 * tensors, each row whose user or item the stored model has is replaced by
 * the stored row, pattern and weights; rows of new users and items are
 * folded in: they take the direction of their partners' stored rows (a new
 * user's items, a new item's users), so they start where the model already
 * puts what they interacted with; stored rows of users and items that are
 * no longer in the source are left out, as a training from scratch would.
 * Adam's moments start at zero: they are not stored.
 *
 * The tensors have grown, so their budgets are recomputed and made exact:
 * when the rows add up to more than the budget, the smallest-magnitude
 * entries of the new rows go first (then, if they are not enough, the
 * smallest stored ones); when they add up to less (entities left out,
 * stored weights that were exactly zero and so not stored), random inactive
 * entries are activated at zero, as a regrowth would.  The continuation's
 * own prune/regrow rounds then move the masks of the new rows.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "bitmap.h"
#include "sparse_tensor.h"
#include "dsl_rec.h"
#include "spvec.h"
#include "warm_start.h"

/* rows fetched from a cursor at a time */
#define WARM_FETCH 8192

Size
dsl_warm_start_bytes(const WarmStart *ws, const TensorShape *shapes,
					 const int64 *budgets, int n_tensors)
{
	Size		held = 0,
				peak = 0;
	int			widest = 1;

	for (int i = 0; i < n_tensors; i++)
	{
		int			rows = shapes[i].rows,
					dim = shapes[i].cols;
		int64		budget = budgets[i];
		Size		total = (Size) rows * dim;

		/* the stored rows (a margin for rounding), kept until all are loaded */
		held += (Size) rows * (sizeof(int64) + sizeof(int)) +
			(Size) (budget + dim) * (sizeof(uint16) + sizeof(float));
		/* one tensor's rebuild: candidates, flags, sort keys or bitmap */
		peak = Max(peak, (Size) (rows + 1) * sizeof(int64) +
				   (Size) (budget + dim) * (sizeof(uint16) + sizeof(float) + 2 * sizeof(bool) +
											sizeof(double)) +
				   total / 8);
		widest = Max(widest, dim);
	}
	/* fold-in: one accumulator row per new item */
	return held + peak + (Size) ws->new_items * widest * sizeof(float);
}

/* a stored model to continue that does not exist (for the caller) */
static void
no_such_model(const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" to continue (warm_start) does not exist", name)));
}

void
dsl_warm_start_peek(const char *name, char **type, int *dim, double *density,
					Jsonb **hyperparams)
{
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[1] = {CStringGetTextDatum(name)};
	Oid			types[1] = {TEXTOID};
	bool		isnull;

	SPI_connect();
	if (SPI_execute_with_args("SELECT model_type, dim, density, hyperparams FROM dsl.models "
							  "WHERE name OPERATOR(pg_catalog.=) $1",
							  1, types, args, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "dsl_rec: looking up model \"%s\" failed", name);
	if (SPI_processed == 0)
		no_such_model(name);
	*type = MemoryContextStrdup(caller,
								TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0],
																  SPI_tuptable->tupdesc, 1, &isnull)));
	*dim = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*density = DatumGetFloat8(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	{
		Datum		h = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
		MemoryContext old = MemoryContextSwitchTo(caller);

		*hyperparams = isnull ? NULL : DatumGetJsonbPCopy(h);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

WarmStart *
dsl_warm_start_open(const TrainArgs *a)
{
	WarmStart  *ws = palloc0(sizeof(WarmStart));
	MemoryContext caller = CurrentMemoryContext;
	Datum		args[2];
	Oid			types[2] = {TEXTOID, TEXTOID};
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	char	   *type;
	int			dim;
	double		density;

	ws->name = pstrdup(a->warm_start);
	args[0] = CStringGetTextDatum(a->warm_start);
	args[1] = CStringGetTextDatum("continue training from it");
	SPI_connect();

	/*
	 * Locked FOR UPDATE by dsl.lock_owned_model, which also checks that the
	 * caller is a member of the owner: a concurrent drop or replace waits
	 * for this transaction.  The schedule length to scale a continuation
	 * by: a continuation's own, copied from the model it continued, else
	 * the refit's length, else the epochs kept or run (less the reg
	 * trials run before the kept model's first, train.c).  A continuation
	 * with reg NULL keeps the stored model's reg.
	 */
	if (SPI_execute_with_args("SELECT (m).model_id, (m).model_type, (m).dim, (m).density, "
							  "COALESCE(((m).hyperparams OPERATOR(pg_catalog.->>) 'base_epochs')::pg_catalog.int4, "
							  "((m).hyperparams OPERATOR(pg_catalog.->>) 'refit_epochs')::pg_catalog.int4, "
							  "COALESCE((m).best_epoch, (m).epochs) OPERATOR(pg_catalog.-) "
							  "COALESCE(((m).hyperparams OPERATOR(pg_catalog.->>) 'trial_epochs')::pg_catalog.int4, 0)), "
							  "(m).n_users, (m).n_items, "
							  "((m).hyperparams OPERATOR(pg_catalog.->>) 'reg')::pg_catalog.float8 "
							  "FROM dsl.lock_owned_model($1, $2) AS m",
							  2, types, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "dsl_rec: looking up model \"%s\" failed", a->warm_start);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	ws->model_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	if (isnull)
		no_such_model(a->warm_start);
	type = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	dim = DatumGetInt32(SPI_getbinval(tup, desc, 3, &isnull));
	density = DatumGetFloat8(SPI_getbinval(tup, desc, 4, &isnull));
	ws->base_epochs = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
	ws->stored_users = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	ws->stored_items = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
	ws->reg = DatumGetFloat8(SPI_getbinval(tup, desc, 8, &isnull));
	if (isnull)
		ws->reg = -1;

	if (strcmp(type, a->model_type) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot continue model \"%s\" of model_type \"%s\" as model_type \"%s\"",
						a->warm_start, type, a->model_type),
				 errhint("Pass model_type => '%s', or train without warm_start.", type)));
	if (dim != a->dim)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot continue model \"%s\" of dim %d with dim %d",
						a->warm_start, dim, a->dim),
				 errhint("Pass dim => %d, or train without warm_start.", dim)));
	if (density != a->density)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot continue model \"%s\" of density %g with density %g",
						a->warm_start, density, a->density),
				 errhint("Pass density => %g, or train without warm_start.", density)));
	SPI_finish();
	MemoryContextSwitchTo(caller);
	return ws;
}

/* called for every row of a scan_rows query */
typedef void (*ScanRowFn) (HeapTuple tup, TupleDesc desc, void *arg);

/*
 * Run sql through a cursor, WARM_FETCH rows at a time, and call fn for every
 * row.  fn runs in a memory context that is reset after each batch (values
 * it detoasts go with it); what it keeps must live in memory allocated
 * before, which repalloc leaves in its own context.
 */
static void
scan_rows(const char *sql, int nargs, Oid *types, Datum *args, ScanRowFn fn, void *arg)
{
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext batch = AllocSetContextCreate(caller, "dsl_rec warm start batch",
												ALLOCSET_DEFAULT_SIZES);
	Portal		portal;

	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, sql, nargs, types, args, NULL, true,
									   CURSOR_OPT_NO_SCROLL);
	for (;;)
	{
		MemoryContext spi;

		SPI_cursor_fetch(portal, true, WARM_FETCH);
		if (SPI_processed == 0)
			break;
		spi = MemoryContextSwitchTo(batch);
		for (uint64 k = 0; k < SPI_processed; k++)
			fn(SPI_tuptable->vals[k], SPI_tuptable->tupdesc, arg);
		MemoryContextSwitchTo(spi);
		MemoryContextReset(batch);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(batch);
}

/*
 * The pairs of user row u of d whose item is in the ascending id array
 * b[0..nb); those items are marked known.
 */
static int64
count_known(const Interactions *d, int u, const int64 *b, int64 nb, bool *known)
{
	int64		i = d->ptr[u],
				e = d->ptr[u + 1],
				j = 0,
				n = 0;

	while (i < e && j < nb)
	{
		int64		id = d->item_ids[d->items[i]];

		if (id < b[j])
			i++;
		else if (id > b[j])
			j++;
		else
		{
			known[d->items[i]] = true;
			n++;
			i++;
			j++;
		}
	}
	return n;
}

/* what dsl_warm_start_compare counts, row by row of dsl.seen_items */
typedef struct CompareScan
{
	const Interactions *d;
	bool	   *known;			/* per item of d: the stored model had it */
	int64		known_pairs;
	int			known_users;
} CompareScan;

static void
compare_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	CompareScan *c = arg;
	bool		isnull;
	int			u = dsl_id_index(c->d->user_ids, c->d->n_users,
								 DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull)));
	ArrayType  *arr;

	if (u < 0)
		return;
	c->known_users++;
	arr = DatumGetArrayTypeP(SPI_getbinval(tup, desc, 2, &isnull));
	/* item indices ascend with item ids: a merge */
	c->known_pairs += count_known(c->d, u, (const int64 *) ARR_DATA_PTR(arr),
								  ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr)), c->known);
}

void
dsl_warm_start_compare(WarmStart *ws, const Interactions *d)
{
	Datum		args[1] = {Int64GetDatum(ws->model_id)};
	Oid			types[1] = {INT8OID};
	CompareScan c = {d, palloc0(sizeof(bool) * Max(d->n_items, 1)), 0, 0};
	int			known_items = 0;

	scan_rows("SELECT user_id, items FROM dsl.seen_items "
			  "WHERE model_id OPERATOR(pg_catalog.=) $1",
			  1, types, args, compare_row, &c);
	for (int i = 0; i < d->n_items; i++)
		known_items += c.known[i];
	pfree(c.known);
	ws->new_pairs = d->n_pairs - c.known_pairs;
	ws->new_users = d->n_users - c.known_users;
	ws->gone_users = ws->stored_users - c.known_users;
	ws->new_items = d->n_items - known_items;
	ws->gone_items = ws->stored_items - known_items;
}

/* an ascending array of ids, grown as rows come */
typedef struct IdScan
{
	int64	   *ids;
	int64		n;
	int64		cap;
} IdScan;

static void
id_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	IdScan	   *a = arg;
	bool		isnull;

	if (a->n == a->cap)
	{
		a->cap *= 2;
		a->ids = repalloc_huge(a->ids, sizeof(int64) * a->cap);
	}
	a->ids[a->n++] = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
}

/* the entity ids of a stored part, ascending (every model stores 'user' and 'item') */
static int64 *
stored_ids(const WarmStart *ws, const char *part, int64 *n)
{
	Datum		args[2] = {Int64GetDatum(ws->model_id), CStringGetTextDatum(part)};
	Oid			types[2] = {INT8OID, TEXTOID};
	IdScan		a = {palloc_extended(sizeof(int64) * 1024, MCXT_ALLOC_HUGE), 0, 1024};

	scan_rows("SELECT entity_id FROM dsl.parameters "
			  "WHERE model_id OPERATOR(pg_catalog.=) $1 "
			  "AND part OPERATOR(pg_catalog.=) $2 ORDER BY entity_id",
			  2, types, args, id_row, &a);
	*n = a.n;
	return a.ids;
}

/*
 * The ascending union of a[0..na) and b[0..nb); map[i] (if map) is the
 * position of a[i] in it.
 */
static int64 *
merge_ids(const int64 *a, int64 na, const int64 *b, int64 nb, int64 *n, int32 *map)
{
	int64	   *out = palloc_extended(sizeof(int64) * Max(na + nb, 1), MCXT_ALLOC_HUGE);
	int64		i = 0,
				j = 0,
				k = 0;

	while (i < na || j < nb)
	{
		if (j >= nb || (i < na && a[i] <= b[j]))
		{
			if (j < nb && a[i] == b[j])
				j++;
			if (map)
				map[i] = (int32) k;
			out[k++] = a[i++];
		}
		else
			out[k++] = b[j++];
	}
	*n = k;
	return out;
}

void
dsl_warm_start_keep_missing(WarmStart *ws, Interactions *d)
{
	int64		n_su,
				n_si,
				n_u,
				n_i;
	int64	   *su = stored_ids(ws, "user", &n_su);
	int64	   *si = stored_ids(ws, "item", &n_si);
	int64	   *uids = merge_ids(d->user_ids, d->n_users, su, n_su, &n_u, NULL);
	int32	   *imap = palloc_extended(sizeof(int32) * Max(d->n_items, 1), MCXT_ALLOC_HUGE);
	int64	   *iids = merge_ids(d->item_ids, d->n_items, si, n_si, &n_i, imap);
	int64	   *ptr;
	int64		u = 0;

	if (n_u > PG_INT32_MAX || n_i > PG_INT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many users or items with those of model \"%s\" kept", ws->name)));
	/* users: the kept ones get empty pair ranges */
	ptr = palloc_extended(sizeof(int64) * (n_u + 1), MCXT_ALLOC_HUGE);
	for (int64 k = 0; k < n_u; k++)
	{
		ptr[k] = d->ptr[u];
		if (u < d->n_users && d->user_ids[u] == uids[k])
			u++;
	}
	ptr[n_u] = d->n_pairs;
	/* items: indices move up past the kept ones, in the same order */
	for (int64 p = 0; p < d->n_pairs; p++)
		d->items[p] = imap[d->items[p]];
	ws->kept_users = (int) (n_u - d->n_users);
	ws->kept_items = (int) (n_i - d->n_items);
	d->user_ids = uids;
	d->ptr = ptr;
	d->n_users = (int) n_u;
	d->item_ids = iids;
	d->n_items = (int) n_i;
	pfree(su);
	pfree(si);
	pfree(imap);
}

/* one tensor's rows as stored, in row order: the rows the data still have */
typedef struct StoredRowsOf
{
	int64	   *start;			/* per tensor row: first entry, or -1 */
	int		   *count;
	uint16	   *col;
	float	   *w;
	int64		n;				/* entries */
	int64		cap;
	int			rows;			/* rows loaded */
	int			left_out;		/* stored rows of entities not in the data */
} StoredRowsOf;

/* read_stored_rows' state, row by row of the part */
typedef struct RowScan
{
	const WarmStart *ws;
	const char *part;
	const int64 *ids;			/* the tensor's entity ids, or NULL: own rows */
	const SparseTensor *t;
	StoredRowsOf *s;
	int32	   *idx;			/* dim column indices of one row */
} RowScan;

static void
stored_row(HeapTuple tup, TupleDesc desc, void *arg)
{
	RowScan    *rs = arg;
	StoredRowsOf *s = rs->s;
	const SparseTensor *t = rs->t;
	bool		isnull;
	int64		id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	int			r = rs->ids ? dsl_id_index(rs->ids, t->n_rows, id) :
		(id >= 0 && id < t->n_rows ? (int) id : -1);
	SpVec	   *v;
	int			nnz;

	if (r < 0)
	{
		s->left_out++;
		return;
	}
	v = DatumGetSpVecP(SPI_getbinval(tup, desc, 2, &isnull));
	if (spvec_dim(v) != t->dim || s->start[r] >= 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\": stored row %lld of part \"%s\" does not fit its model",
						rs->ws->name, (long long) id, rs->part),
				 errdetail("dim %d, expected %d%s.", spvec_dim(v), t->dim,
						   s->start[r] >= 0 ? "; the row is stored twice" : "")));
	nnz = spvec_nnz(v);
	spvec_indices(v, rs->idx);
	if (s->n + nnz > s->cap)
	{
		s->cap = Max(s->cap * 2, s->n + nnz);
		s->col = repalloc_huge(s->col, sizeof(uint16) * s->cap);
		s->w = repalloc_huge(s->w, sizeof(float) * s->cap);
	}
	s->start[r] = s->n;
	s->count[r] = nnz;
	for (int c = 0; c < nnz; c++)
	{
		s->col[s->n + c] = (uint16) rs->idx[c];
		s->w[s->n + c] = spvec_values(v)[c];
	}
	s->n += nnz;
	s->rows++;
}

static void
read_stored_rows(const WarmStart *ws, const char *part, const int64 *ids,
				 const SparseTensor *t, StoredRowsOf *s)
{
	Datum		args[2] = {Int64GetDatum(ws->model_id), CStringGetTextDatum(part)};
	Oid			types[2] = {INT8OID, TEXTOID};
	RowScan		rs = {ws, part, ids, t, s, palloc(sizeof(int32) * t->dim)};

	memset(s, 0, sizeof(StoredRowsOf));
	s->start = palloc_extended(sizeof(int64) * t->n_rows, MCXT_ALLOC_HUGE);
	s->count = palloc_extended(sizeof(int) * t->n_rows, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int r = 0; r < t->n_rows; r++)
		s->start[r] = -1;
	s->cap = Max(t->budget, 1024);
	s->col = palloc_extended(sizeof(uint16) * s->cap, MCXT_ALLOC_HUGE);
	s->w = palloc_extended(sizeof(float) * s->cap, MCXT_ALLOC_HUGE);

	scan_rows("SELECT entity_id, vec FROM dsl.parameters "
			  "WHERE model_id OPERATOR(pg_catalog.=) $1 "
			  "AND part OPERATOR(pg_catalog.=) $2",
			  2, types, args, stored_row, &rs);
	pfree(rs.idx);
}

/* qsort: doubles ascending */
static int
cmp_double(const void *a, const void *b)
{
	double		x = *(const double *) a,
				y = *(const double *) b;

	return x < y ? -1 : x > y;
}

/*
 * Mark for dropping the `count` entries of smallest magnitude among those
 * whose fresh[] flag is `which`; ties go in position order.
 */
static void
drop_smallest(const float *w, const bool *fresh, bool which, int64 n, int64 count,
			  bool *drop)
{
	double	   *key;
	int64		m = 0,
				below = 0,
				ties;
	double		thr;

	if (count <= 0)
		return;
	key = palloc_extended(sizeof(double) * n, MCXT_ALLOC_HUGE);
	for (int64 i = 0; i < n; i++)
		if (fresh[i] == which)
			key[m++] = fabs((double) w[i]);
	Assert(count <= m);
	qsort(key, m, sizeof(double), cmp_double);
	thr = key[count - 1];
	for (int64 i = 0; i < m; i++)
		below += key[i] < thr;
	ties = count - below;
	for (int64 i = 0; i < n; i++)
	{
		double		k;

		if (fresh[i] != which)
			continue;
		k = fabs((double) w[i]);
		if (k < thr || (k == thr && ties-- > 0))
			drop[i] = true;
	}
	pfree(key);
}

/*
 * Replace t's rows by the stored ones where there are, then make the
 * number of active entries t->budget again (see the header comment).
 */
static void
load_tensor(const WarmStart *ws, SparseTensor *t, const StoredRowsOf *s, uint64 seed,
			uint64 stream)
{
	int64		n_cand = 0;
	int64	   *ptr = palloc_extended(sizeof(int64) * (t->n_rows + 1), MCXT_ALLOC_HUGE);
	uint16	   *col;
	float	   *w;
	bool	   *fresh;
	bool	   *drop;
	uint64	   *added = NULL;
	int64		k = 0;

	/* the candidate rows: stored where there are, fresh elsewhere */
	for (int r = 0; r < t->n_rows; r++)
	{
		ptr[r] = n_cand;
		n_cand += s->start[r] >= 0 ? s->count[r] : t->row_ptr[r + 1] - t->row_ptr[r];
	}
	ptr[t->n_rows] = n_cand;
	col = palloc_extended(sizeof(uint16) * Max(n_cand, 1), MCXT_ALLOC_HUGE);
	w = palloc_extended(sizeof(float) * Max(n_cand, 1), MCXT_ALLOC_HUGE);
	fresh = palloc_extended(sizeof(bool) * Max(n_cand, 1), MCXT_ALLOC_HUGE);
	drop = palloc_extended(sizeof(bool) * Max(n_cand, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int r = 0; r < t->n_rows; r++)
	{
		bool		stored = s->start[r] >= 0;
		int64		b = stored ? s->start[r] : t->row_ptr[r];
		int64		n = ptr[r + 1] - ptr[r];

		memcpy(col + ptr[r], (stored ? s->col : t->col) + b, sizeof(uint16) * n);
		memcpy(w + ptr[r], (stored ? s->w : t->w) + b, sizeof(float) * n);
		memset(fresh + ptr[r], !stored, sizeof(bool) * n);
	}

	if (n_cand > t->budget)
	{
		/* too many: drop the smallest magnitudes, new rows' entries first */
		int64		excess = n_cand - t->budget;
		int64		n_fresh = 0;

		for (int64 i = 0; i < n_cand; i++)
			n_fresh += fresh[i];
		if (excess >= n_fresh)
		{
			for (int64 i = 0; i < n_cand; i++)
				drop[i] = fresh[i];
			drop_smallest(w, fresh, false, n_cand, excess - n_fresh, drop);
		}
		else
			drop_smallest(w, fresh, true, n_cand, excess, drop);
	}
	else if (n_cand < t->budget)
	{
		/* too few: activate random inactive entries at zero */
		DslRng		rng;

		added = dsl_alloc_huge(BITS_WORDS(t->total) * sizeof(uint64), true);
		for (int r = 0; r < t->n_rows; r++)
			for (int64 i = ptr[r]; i < ptr[r + 1]; i++)
				bit_set(added, (int64) r * t->dim + col[i]);
		dsl_rng_seed(&rng, seed ^ UINT64CONST(0x5741524d), stream);
		sparse_tensor_choose_random_free(added, t->total, t->total - n_cand,
										 t->budget - n_cand, &rng);
		for (int r = 0; r < t->n_rows; r++)
			for (int64 i = ptr[r]; i < ptr[r + 1]; i++)
				bit_clear(added, (int64) r * t->dim + col[i]);
	}

	/* write the rows back, columns ascending; moments at zero */
	for (int r = 0; r < t->n_rows; r++)
	{
		int64		i = ptr[r],
					e = ptr[r + 1];

		t->row_ptr[r] = k;
		for (int c = 0; c < t->dim; c++)
		{
			while (i < e && drop[i])
				i++;
			if (i < e && col[i] == c)
			{
				t->col[k] = (uint16) c;
				t->w[k++] = w[i++];
			}
			else if (added && bit_get(added, (int64) r * t->dim + c))
			{
				t->col[k] = (uint16) c;
				t->w[k++] = 0.0f;
			}
		}
		if ((r & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	t->row_ptr[t->n_rows] = k;
	t->layout++;
	if (k != t->budget)
		elog(ERROR, "dsl_rec: continuing model \"%s\": tensor \"%s\" has %lld active entries, budget %lld",
			 ws->name, t->name, (long long) k, (long long) t->budget);
	memset(t->m, 0, sizeof(float) * t->budget);
	memset(t->v, 0, sizeof(float) * t->budget);
	if (t->last_step)
		memset(t->last_step, 0, sizeof(int64) * t->n_rows);
	pfree(ptr);
	pfree(col);
	pfree(w);
	pfree(fresh);
	pfree(drop);
	if (added)
		pfree(added);
}

/* a column and its magnitude; sorted by magnitude, largest first, ties by column */
typedef struct MagCol
{
	float		mag;
	int			col;
} MagCol;

static int
cmp_magcol_desc(const void *a, const void *b)
{
	const MagCol *x = a,
			   *y = b;

	if (x->mag != y->mag)
		return x->mag > y->mag ? -1 : 1;
	return x->col - y->col;
}

/* acc[dim] += stored row r of s */
static inline void
add_stored_row(const StoredRowsOf *s, int r, float *acc)
{
	for (int64 k = s->start[r]; k < s->start[r] + s->count[r]; k++)
		acc[s->col[k]] += s->w[k];
}

/*
 * Give fresh row r of t (its entry count unchanged) the direction of acc:
 * its columns become the count largest of |acc|, its weights acc's there,
 * scaled to the L2 norm `norm`.  A zero acc leaves the row as it is.
 */
static void
set_row_from(SparseTensor *t, int r, const float *acc, double norm)
{
	int64		b = t->row_ptr[r];
	int			count = (int) (t->row_ptr[r + 1] - b);
	MagCol		order[DSL_MAX_DIM];
	bool		chosen[DSL_MAX_DIM] = {0};
	double		sq = 0;
	int			k = 0;

	if (count == 0)
		return;
	for (int c = 0; c < t->dim; c++)
	{
		order[c].mag = fabsf(acc[c]);
		order[c].col = c;
	}
	qsort(order, t->dim, sizeof(MagCol), cmp_magcol_desc);
	for (int i = 0; i < count; i++)
	{
		chosen[order[i].col] = true;
		sq += (double) acc[order[i].col] * acc[order[i].col];
	}
	if (sq <= 0)
		return;
	for (int c = 0; c < t->dim; c++)
	{
		if (!chosen[c])
			continue;
		t->col[b + k] = (uint16) c;
		t->w[b + k] = (float) (acc[c] * norm / sqrt(sq));
		k++;
	}
	t->layout++;
}

/* the mean L2 norm of the stored rows */
static double
mean_stored_norm(const StoredRowsOf *s, int n_rows)
{
	double		sum = 0;

	if (s->rows == 0)
		return 0;
	for (int r = 0; r < n_rows; r++)
	{
		double		sq = 0;

		if (s->start[r] < 0)
			continue;
		for (int64 k = s->start[r]; k < s->start[r] + s->count[r]; k++)
			sq += (double) s->w[k] * s->w[k];
		sum += sqrt(sq);
	}
	return sum / s->rows;
}

/*
 * Fold-in: a new user's fresh row takes the direction of the sum of the
 * stored rows of its items in the paired item tensor, a new item's that of
 * its users' rows, at the mean norm of the tensor's stored rows (so that the
 * next prune does not take the new rows first).  New users and items start
 * where the model already puts what they interacted with, instead of at
 * random; one with no stored partner (all its items new) stays random.
 */
static void
fold_in_new_rows(SparseTensor *t, const StoredRowsOf *s, bool users,
				 const StoredRowsOf *partner, const Interactions *d)
{
	double		norm = mean_stored_norm(s, t->n_rows);
	int			dim = t->dim;
	int			n_new = 0;

	if (norm <= 0 || partner->rows == 0)
		return;
	if (users)
	{
		float	   *acc = palloc(sizeof(float) * dim);

		for (int u = 0; u < t->n_rows; u++)
		{
			if (s->start[u] >= 0)
				continue;
			memset(acc, 0, sizeof(float) * dim);
			for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
				if (partner->start[d->items[p]] >= 0)
					add_stored_row(partner, d->items[p], acc);
			set_row_from(t, u, acc, norm);
			n_new++;
		}
		pfree(acc);
	}
	else
	{
		/* new items: their users' rows, summed in one pass over the pairs */
		int		   *slot = palloc(sizeof(int) * Max(t->n_rows, 1));
		float	   *acc;

		for (int i = 0; i < t->n_rows; i++)
			slot[i] = s->start[i] >= 0 ? -1 : n_new++;
		if (n_new > 0)
		{
			acc = palloc_extended(sizeof(float) * (Size) n_new * dim,
								  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
			for (int u = 0; u < d->n_users; u++)
			{
				if (partner->start[u] < 0)
					continue;
				for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
					if (slot[d->items[p]] >= 0)
						add_stored_row(partner, u, acc + (Size) slot[d->items[p]] * dim);
			}
			for (int i = 0; i < t->n_rows; i++)
				if (slot[i] >= 0)
					set_row_from(t, i, acc + (Size) slot[i] * dim, norm);
			pfree(acc);
		}
		pfree(slot);
	}
}

void
dsl_warm_start_load(WarmStart *ws, DslEngine *e, const ModelOps *ops,
					const Interactions *d, uint64 seed)
{
	StoredRowsOf s[DSL_MAX_TENSORS];
	StoredRows	kind[DSL_MAX_TENSORS];
	bool		stored[DSL_MAX_TENSORS];

	for (int i = 0; i < e->n_tensors; i++)
	{
		SparseTensor *t = e->tensors[i];
		const char *part;

		if (ops->tensor_parts)
		{
			part = ops->tensor_parts[i].part;
			kind[i] = ops->tensor_parts[i].rows;
		}
		else
		{
			/* the tensors are the serving rows (model_ops.h) */
			part = i == 0 ? "user" : "item";
			kind[i] = i == 0 ? ROWS_USERS : ROWS_ITEMS;
		}
		stored[i] = part != NULL;	/* not stored: stays fresh */
		if (stored[i])
			read_stored_rows(ws, part, kind[i] == ROWS_USERS ? d->user_ids :
							 kind[i] == ROWS_ITEMS ? d->item_ids : NULL, t, &s[i]);
	}

	/*
	 * The n-th user tensor pairs with the n-th item tensor (MF: user, item;
	 * LightGCN: the layer-0 embeddings): new rows of one are folded in from
	 * the other's stored rows, before either is rebuilt.
	 */
	for (int i = 0; i < e->n_tensors; i++)
	{
		int			ordinal = 0,
					j;

		if (!stored[i] || (kind[i] != ROWS_USERS && kind[i] != ROWS_ITEMS))
			continue;
		for (int k = 0; k < i; k++)
			ordinal += stored[k] && kind[k] == kind[i];
		for (j = 0; j < e->n_tensors; j++)
		{
			if (stored[j] && kind[j] != kind[i] &&
				(kind[j] == ROWS_USERS || kind[j] == ROWS_ITEMS) && ordinal-- == 0)
				break;
		}
		if (j < e->n_tensors)
			fold_in_new_rows(e->tensors[i], &s[i], kind[i] == ROWS_USERS, &s[j], d);
	}

	for (int i = 0; i < e->n_tensors; i++)
	{
		if (!stored[i])
			continue;
		load_tensor(ws, e->tensors[i], &s[i], seed, (uint64) i);
		pfree(s[i].start);
		pfree(s[i].count);
		pfree(s[i].col);
		pfree(s[i].w);
	}
}
