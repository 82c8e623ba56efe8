/*
 * scorer_neumf.c - serving a NeuMF model: user representations against
 * precomputed item rows through the model's small MLP, and a fold-in for
 * ad-hoc histories
 *
 * A NeuMF score (neumf_net.h) is not an inner product of two stored rows,
 * so NeuMF has a scorer of its own.  Its parts in dsl.parameters (neumf.c
 * writes them; every row an spvec, missing entries zero):
 *
 *   'user', 'item'            p_u, q_i: GMF's embeddings, width g (the
 *                             model's dim); their ids are the index maps
 *   'mlp_user', 'mlp_item'    p'_u, q'_i: the MLP's embeddings, width dm,
 *                             with the same ids
 *   'mlp_w1_user', '_item'    W1u, W1i: dm rows 0 .. dm-1 of width w_1
 *   'mlp_b1'                  b_1: one row of width w_1
 *   'mlp_wN', 'mlp_bN'        N = 2 .. n_hidden: w_(N-1) rows of width w_N,
 *                             and one row of width w_N
 *   'out', 'out_bias'         h (width w_L) and b (width 1); GMF's
 *                             output weights h_g are 1 (neumf.c)
 *
 * Every width is derived from the stored rows and checked against the
 * others; a part that does not fit is ERRCODE_DATA_CORRUPTED naming it.
 *
 * The first hidden layer splits into a user half and an item half, so a
 * load derives once per model
 *
 *   user u  [p_u ; W1u^T p'_u]          item i  [q_i ; W1i^T q'_i + b_1]
 *
 * (rep = g + w_1 floats each, summed in double), and p, p' and q, q' are not
 * kept.  A stored user's representation is its row; what is left per
 * (user, item) pair is GMF's inner product and the small layers after the
 * first, which neumf_net_score() computes.  Its result for an item does not
 * depend on the other items of its batch, so it is the canonical score:
 * score_items, rank_items and rank_users all call it and agree bit for bit.
 *
 * rank_items scores the catalogue in chunks into a buffer on the stack and
 * offers each chunk to a heap (topk_scan), excluded items as NaN; a large
 * catalogue's chunks are shared by the worker threads (workers.h), each
 * with its own heap, merged at the end.  rank_users gives the threads tiles
 * of users to claim in rounds; a tile scores its users against one
 * cache-sized chunk of item rows after another, each user into its own
 * heap, so the item rows are read from memory once per tile, not once per
 * user.  The backend then emits the round's users in list order.  Neither
 * result depends on which thread scored what: the top k under the ranking
 * rule is unique.
 *
 * An ad-hoc history (dsl.recommend_for_items, dsl.evaluate_histories) is
 * folded in: with the item side fixed, the user's p and p' that best
 * explain the history are found by FOLD_STEPS steps of Adam on BPR, each
 * history item against an item drawn uniformly from the rest of the
 * catalogue, with an L2 penalty, from p = p' = 0:
 *
 *   L(p, p') = 1/P sum_(i, j) log(1 + exp(-(s(i) - s(j))))
 *              + lambda/2 (|p|^2 / (g sp^2) + |p'|^2 / (dm sm^2))
 *
 * P = min(max(|H|, FOLD_MIN_PAIRS), FOLD_MAX_PAIRS) pairs a step: the
 * history's items in turn (cycling through a long history from step to
 * step), each against a fresh negative.  sp and sm are the root mean square
 * coordinates of the stored users' p and p' (kept with the model), the
 * units of the penalty and of Adam's step (FOLD_LR sp, FOLD_LR sm), so the
 * settings do not depend on the scale training gave the embeddings.  The
 * negatives come from a generator seeded by the history, so the same
 * history always gives the same representation.  The gradient runs through
 * the relu layers down to the first layer's user half a = W1u^T p', then
 * p' gets W1u times it, p the sum of the item q's, weighted;
 * test/unit/neumf_fold_check.c checks it against finite differences.  The
 * result is the representation of the p, p' found, as for a stored user.
 * A step's pairs go in chunks of FOLD_CHUNK to the threads, each chunk with
 * its own gradient sums, added in chunk order: the same bits with one
 * thread or several.  Both the fold-in and rank_items use the backend's
 * serving pool (serve_worker_pool), whose threads outlive the call.
 *
 * The shared copy of a model (serve_shared.h) is the NeumfState, then its
 * arrays (users, items, their tiles, W1u, the later layers, h).
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "cpu.h"
#include "dsl_rec.h"
#include "model_cache.h"
#include "neumf_net.h"
#include "rng.h"
#include "scorer.h"
#include "spvec.h"
#include "topk.h"
#include "workers.h"

/*
 * rank_items: the items scored at a time (a buffer on the stack), the
 * chunks from which the threads share the catalogue (fewer are not worth
 * starting a thread for), and the chunks between two checks for interrupts
 */
#define SCORE_CHUNK 1024
#define PARALLEL_CHUNKS 8
#define ROUND_CHUNKS 64

/*
 * rank_users: the item rows a tile of users is scored against at a time
 * (bytes, so that they stay in the core's cache), the users of a tile, and
 * the tiles a round gives each thread (the work left when the last tile of
 * a round is claimed is at most one tile).
 */
#define CHUNK_BYTES (48 * 1024)
#define USER_TILE 8
#define TILES_PER_PART 4

/* the fold-in (see above) */
#define FOLD_STEPS 40
#define FOLD_MIN_PAIRS 32
#define FOLD_MAX_PAIRS 256
#define FOLD_LR 0.1
#define FOLD_LAMBDA 0.05
#define FOLD_BETA1 0.9
#define FOLD_BETA2 0.999
#define FOLD_EPS 1e-8
#define FOLD_SCALE 0.1			/* the units when every stored user is zero */
#define FOLD_STREAM 0x6e65756d66	/* the generator's stream: "neumf" */

/* what a load keeps of a model, in its memory context (or the shared copy) */
typedef struct NeumfState
{
	NeumfNet	net;			/* the layers after the first: pointers into
								 * the arrays below */
	int			dm;				/* width of the MLP embeddings p', q' */
	int			rep;			/* floats of a user or item row: g + w_1 */
	float		scale_p;		/* RMS coordinate of the stored p_u and of */
	float		scale_pm;		/* the stored p'_u: the fold-in's units */
	float	   *users;			/* n_users x rep: [p_u ; W1u^T p'_u] */
	float	   *items;			/* n_items x rep: [q_i ; W1i^T q'_i + b_1] */
	float	   *tiles;			/* the same, tiled for neumf_net_score_all */
	float	   *w1_user;		/* dm x w_1: W1u, for the fold-in */
	float	   *w[NEUMF_MAX_HIDDEN];	/* l >= 1: width[l-1] x width[l] */
	float	   *b[NEUMF_MAX_HIDDEN];	/* l >= 1: width[l] */
	float	   *h_mlp;			/* width[n_hidden - 1]: h_m */
	float	   *wt[NEUMF_MAX_HIDDEN];	/* l >= 1: w[l] transposed, for the
										 * fold-in (in m->cxt, also with a
										 * shared copy) */
} NeumfState;

static inline const NeumfState *
neumf_state(const ServeModel *m)
{
	return (const NeumfState *) m->scorer_state;
}

/*
 * Point the net at the state's arrays, and transpose the later layers'
 * weights into cxt (the fold-in's backward pass reads them by output unit).
 */
static void
net_bind(NeumfState *st, MemoryContext cxt)
{
	for (int l = 1; l < st->net.n_hidden; l++)
	{
		const int	w_in = st->net.width[l - 1];
		const int	w_out = st->net.width[l];

		st->net.w[l] = st->w[l];
		st->net.b[l] = st->b[l];
		st->wt[l] = MemoryContextAlloc(cxt, sizeof(float) * w_in * w_out);
		for (int k = 0; k < w_in; k++)
			for (int o = 0; o < w_out; o++)
				st->wt[l][o * w_in + k] = st->w[l][k * w_out + o];
	}
	st->net.h_mlp = st->h_mlp;
}


/*
 * Loading
 */

static void
corrupt(const ServeModel *m, const char *part, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("part \"%s\" of model \"%s\" %s", part, m->name, what)));
}

/*
 * Reading one part into dense rows, in the memory context that is current
 * when the scan starts (the rows arrive under the executor's).  They are
 * checked as they come, so a part far larger than the model's other parts
 * allow is refused at its first bad row.
 */
typedef struct PartRead
{
	ServeModel *m;
	const char *part;
	MemoryContext cxt;			/* where the rows go */
	int64		want_rows;		/* rows it must have; -1: any, up to max_rows */
	int64		max_rows;
	int			want_width;		/* their width; -1: the first row's, up to
								 * max_width */
	int			max_width;
	const int64 *ids;			/* the ids the rows must have (want_rows of
								 * them; NULL: 0 .. want_rows - 1) */
	const char *ids_of;			/* the part those ids come from */
	int64	  **take_ids;		/* or any ascending ids, collected here in
								 * m->cxt */
	int64		hint;			/* rows dsl.models gives for the part */
	int64		rows;			/* read so far */
	int			width;
	int64		cap;
	float	   *x;				/* rows x width */
} PartRead;

static void
part_row(void *arg, int64 n, int64 id, const SpVec *v)
{
	PartRead   *r = (PartRead *) arg;
	ServeModel *m = r->m;

	if (n < 0)
	{
		r->hint = id;
		return;
	}
	if (r->take_ids == NULL)
	{
		if (r->ids != NULL && (n >= r->want_rows || id < r->ids[n]))
			corrupt(m, r->part,
					psprintf("has a row for id %lld, which part \"%s\" does not have",
							 (long long) id, r->ids_of));
		if (r->ids != NULL && id > r->ids[n])
			corrupt(m, r->part,
					psprintf("has no row for id %lld of part \"%s\"",
							 (long long) r->ids[n], r->ids_of));
		if (r->ids == NULL && r->want_rows >= 0 && n >= r->want_rows)
			corrupt(m, r->part,
					psprintf("has more rows than the %lld the model's other parts need",
							 (long long) r->want_rows));
		if (r->ids == NULL && r->want_rows < 0 && n >= r->max_rows)
			corrupt(m, r->part,
					psprintf("has more rows than the %lld this version serves",
							 (long long) r->max_rows));
		if (r->ids == NULL && id != n)
			corrupt(m, r->part,
					psprintf("has a row %lld where row %lld was expected",
							 (long long) id, (long long) n));
	}
	if (n == 0)
	{
		/* the reader checks that every later row has this width */
		r->width = spvec_dim(v);
		if (r->want_width >= 0 && r->width != r->want_width)
			corrupt(m, r->part,
					psprintf("has rows of width %d where the model's other parts need %d",
							 r->width, r->want_width));
		if (r->want_width < 0 && r->width > r->max_width)
			corrupt(m, r->part,
					psprintf("has rows of width %d, more than the %d this version serves",
							 r->width, r->max_width));
	}
	if (n >= r->cap)
	{
		int64		cap = Max(Max(r->cap * 2, r->hint), Max(r->want_rows, 16));

		if (r->x == NULL)
			r->x = MemoryContextAllocHuge(r->cxt, sizeof(float) * cap * r->width);
		else
			r->x = repalloc_huge(r->x, sizeof(float) * cap * r->width);
		if (r->take_ids != NULL)
			*r->take_ids = *r->take_ids == NULL ?
				MemoryContextAllocHuge(m->cxt, sizeof(int64) * cap) :
				repalloc_huge(*r->take_ids, sizeof(int64) * cap);
		r->cap = cap;
	}
	if (r->take_ids != NULL)
		(*r->take_ids)[n] = id;
	spvec_to_dense(v, r->x + (Size) n * r->width);
	r->rows = n + 1;
}

/* read r's part; a part without rows is NULL, unless it may not be missing */
static float *
read_part(PartRead *r, bool optional)
{
	ServeModel *m = r->m;

	r->cxt = CurrentMemoryContext;
	r->rows = 0;
	r->width = r->want_width;
	serve_scan_part_dim(m, r->part, -1, part_row, r);
	if (r->rows == 0 && optional)
		return NULL;
	if (r->rows == 0 && r->want_rows != 0 && !(r->want_rows < 0 && r->take_ids))
		corrupt(m, r->part, "is missing");
	if (r->want_rows >= 0 && r->rows < r->want_rows)
	{
		if (r->ids != NULL)
			corrupt(m, r->part,
					psprintf("has no row for id %lld of part \"%s\"",
							 (long long) r->ids[r->rows], r->ids_of));
		corrupt(m, r->part,
				psprintf("has %lld rows where the model's other parts need %lld",
						 (long long) r->rows, (long long) r->want_rows));
	}
	return r->x;
}

/* a part of rows 0 .. rows-1 of width *width (-1: theirs, up to max_width) */
static float *
read_own(ServeModel *m, const char *part, int64 rows, int *width, int max_width,
		 bool optional)
{
	PartRead	r;
	float	   *x;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.part = part;
	r.want_rows = rows;
	r.max_rows = NEUMF_MAX_WIDTH;	/* rows of W1u, W1i: dm <= this */
	r.want_width = *width;
	r.max_width = max_width;
	x = read_part(&r, optional);
	*width = r.width;
	return x;
}

/* the rows of a part of one row per entity of ids (n of them) */
static float *
read_entities(ServeModel *m, const char *part, const int64 *ids, int64 n,
			  const char *ids_of, int width)
{
	PartRead	r;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.part = part;
	r.want_rows = n;
	r.want_width = width;
	r.ids = ids;
	r.ids_of = ids_of;
	return read_part(&r, n == 0);
}

/* the rows of 'user' or 'item', whose ids become the index map */
static float *
read_index_part(ServeModel *m, const char *part, int width, int64 **ids, int *n)
{
	PartRead	r;
	float	   *x;

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.part = part;
	r.want_rows = -1;
	r.want_width = width;
	r.take_ids = ids;
	*ids = NULL;
	x = read_part(&r, false);
	if (*ids == NULL)
		*ids = MemoryContextAlloc(m->cxt, sizeof(int64));
	*n = (int) r.rows;
	return x;
}

/* a part that must not exist beside the others: the first row is an error */
typedef struct AbsentPart
{
	ServeModel *m;
	const char *part;
	const char *why;			/* the message's end */
} AbsentPart;

static void
absent_row(void *arg, int64 n, int64 id, const SpVec *v)
{
	AbsentPart *a = (AbsentPart *) arg;

	if (n >= 0)
		corrupt(a->m, a->part, a->why);
}

static void
check_absent(ServeModel *m, const char *part, const char *why)
{
	AbsentPart	a = {m, part, why};

	serve_scan_part_dim(m, part, -1, absent_row, &a);
}

/* root mean square of x[0..n) (0 for none) */
static float
rms(const float *x, Size n)
{
	double		s = 0.0;

	for (Size c = 0; c < n; c++)
		s += (double) x[c] * x[c];
	return n > 0 ? (float) sqrt(s / n) : 0.0f;
}

/* a copy of x[0..n) in m's context */
static float *
keep(const ServeModel *m, const float *x, Size n)
{
	float	   *c = MemoryContextAllocHuge(m->cxt, sizeof(float) * Max(n, 1));

	memcpy(c, x, sizeof(float) * n);
	return c;
}

/*
 * Read the parts, check that their widths agree, and derive the user and
 * item rows.  The small weight parts come first: they give the widths the
 * others are checked against.  Everything is read into a context of its
 * own, freed once what is kept has been copied or derived into m->cxt.
 */
static void
neumf_load(ServeModel *m)
{
	NeumfState *st = MemoryContextAllocZero(m->cxt, sizeof(NeumfState));
	NeumfNet   *net = &st->net;
	MemoryContext tmp = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec neumf load",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(tmp);
	const int	g = m->dim;
	PartRead	r;
	int			dm;
	int			w0;
	int			width;
	int			last;
	float	   *w1_item;
	float	   *b1;
	float	   *out;
	float	   *out_bias;
	float	   *p;
	float	   *pm;
	float	   *q;
	float	   *qm;

	neumf_net_prepare();
	net->gmf_dim = g;

	/* W1u gives dm (its rows) and w_1 (their width) */
	memset(&r, 0, sizeof(r));
	r.m = m;
	r.part = "mlp_w1_user";
	r.want_rows = -1;
	r.max_rows = NEUMF_MAX_WIDTH;
	r.want_width = -1;
	r.max_width = NEUMF_MAX_WIDTH;
	st->w1_user = read_part(&r, false);
	dm = st->dm = (int) r.rows;
	w0 = net->width[0] = r.width;
	st->w1_user = keep(m, st->w1_user, (Size) dm * w0);
	w1_item = read_own(m, "mlp_w1_item", dm, &w0, 0, false);
	b1 = read_own(m, "mlp_b1", 1, &w0, 0, false);

	/* the later layers: as many as there are 'mlp_wN' parts */
	net->n_hidden = 1;
	for (int l = 1; l < NEUMF_MAX_HIDDEN; l++)
	{
		char	   *wname = psprintf("mlp_w%d", l + 1);
		char	   *bname = psprintf("mlp_b%d", l + 1);
		float	   *w;
		float	   *b;

		width = -1;
		w = read_own(m, wname, net->width[l - 1], &width, NEUMF_MAX_WIDTH, true);
		if (w == NULL)
		{
			check_absent(m, bname, psprintf("exists, but part \"%s\" does not", wname));
			break;
		}
		b = read_own(m, bname, 1, &width, 0, false);
		net->width[l] = width;
		net->n_hidden = l + 1;
		st->w[l] = keep(m, w, (Size) net->width[l - 1] * width);
		st->b[l] = keep(m, b, width);
	}
	if (net->n_hidden == NEUMF_MAX_HIDDEN)
		check_absent(m, psprintf("mlp_w%d", NEUMF_MAX_HIDDEN + 1),
					 psprintf("exists, but this version of dsl_rec serves at most %d hidden layers",
							  NEUMF_MAX_HIDDEN));
	last = net->width[net->n_hidden - 1];

	/* the output layer: h (GMF's weights are 1) and b */
	width = last;
	out = read_own(m, "out", 1, &width, 0, false);
	width = 1;
	out_bias = read_own(m, "out_bias", 1, &width, 0, false);
	st->h_mlp = keep(m, out, last);
	net->out_bias = out_bias[0];
	net_bind(st, m->cxt);
	st->rep = neumf_rep_width(net);

	/* items (W1i and b_1 are last used here), then users and the fold-in's units */
	q = read_index_part(m, "item", g, &m->item_ids, &m->n_items);
	qm = read_entities(m, "mlp_item", m->item_ids, m->n_items, "item", dm);
	st->items = MemoryContextAllocHuge(m->cxt, sizeof(float) * Max((Size) m->n_items * st->rep, 1));
	for (int i = 0; i < m->n_items; i++)
	{
		if ((i & 4095) == 4095)
			CHECK_FOR_INTERRUPTS();
		neumf_net_rep(net, dm, w1_item, b1, q + (Size) i * g, qm + (Size) i * dm,
				 st->items + (Size) i * st->rep);
	}
	st->tiles = MemoryContextAllocHuge(m->cxt, sizeof(float) *
									   Max(neumf_net_tiled_floats(net, m->n_items), 1));
	neumf_net_tile(net, st->items, st->rep, m->n_items, st->tiles);
	MemoryContextReset(tmp);

	p = read_index_part(m, "user", g, &m->user_ids, &m->n_users);
	pm = read_entities(m, "mlp_user", m->user_ids, m->n_users, "user", dm);
	st->users = MemoryContextAllocHuge(m->cxt, sizeof(float) * Max((Size) m->n_users * st->rep, 1));
	for (int u = 0; u < m->n_users; u++)
	{
		if ((u & 4095) == 4095)
			CHECK_FOR_INTERRUPTS();
		neumf_net_rep(net, dm, st->w1_user, NULL, p + (Size) u * g,
				 pm + (Size) u * dm, st->users + (Size) u * st->rep);
	}
	st->scale_p = rms(p, (Size) m->n_users * g);
	st->scale_pm = rms(pm, (Size) m->n_users * dm);
	if (!(st->scale_p > 0))
		st->scale_p = FOLD_SCALE;
	if (!(st->scale_pm > 0))
		st->scale_pm = FOLD_SCALE;

	MemoryContextSwitchTo(old);
	MemoryContextDelete(tmp);
	m->user_dim = st->rep;
	m->scorer_state = st;
}


/*
 * Scoring
 */

/* a stored user is its row */
static void
neumf_user_vector(const ServeModel *m, int user, float *out)
{
	const NeumfState *st = neumf_state(m);

	memcpy(out, st->users + (Size) user * st->rep, sizeof(float) * st->rep);
}

/* the canonical score of each listed item */
static void
neumf_score_items(const ServeModel *m, const float *user, const int32 *items,
				  int n, float *scores)
{
	const NeumfState *st = neumf_state(m);

	if (n > 0)
		neumf_net_score(&st->net, user, st->tiles, items, n, scores);
}

/*
 * Items lo .. lo+n-1's scores, the excluded ones (those of exclude[*e ..
 * end), sorted) set to NaN, offered to h; *e moves past them.  Plain C.
 */
static void
scan_chunk(const NeumfState *st, const float *user, int lo, int n,
		   const int32 *exclude, int64 *e, int64 end, float *buf, TopK *h)
{
	Assert(lo % NEUMF_LANES == 0);
	neumf_net_score_all(&st->net, user,
						st->tiles + (Size) (lo / NEUMF_LANES) * st->rep * NEUMF_LANES,
						n, buf);
	for (; *e < end && exclude[*e] < lo + n; (*e)++)
		if (exclude[*e] >= lo)
			buf[exclude[*e] - lo] = NAN;
	topk_scan(h, buf, n, lo);
}

/* the first of exclude[0..n) (sorted) that is >= item */
static int64
exclude_from(const int32 *exclude, int64 n, int32 item)
{
	int64		lo = 0;
	int64		hi = n;

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (exclude[mid] < item)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* rank_items with threads: chunks of the catalogue claimed by the parts */
typedef struct RankItems
{
	const NeumfState *st;
	const float *user;
	const int32 *exclude;
	int64		n_exclude;
	int			n_items;
	int			first;			/* this round's chunks: first .. end-1 */
	int			end;
	TopK	   *heaps;			/* per part */
	int			next;			/* worker_claim() counter */
} RankItems;

/* runs in a worker thread (or the backend's): plain C only */
static void
rank_items_part(void *arg, int part, int n_parts)
{
	RankItems  *ri = (RankItems *) arg;
	float		buf[SCORE_CHUNK];
	int			c;

	(void) n_parts;
	while ((c = ri->first + worker_claim(&ri->next)) < ri->end)
	{
		int			lo = c * SCORE_CHUNK;
		int64		e = exclude_from(ri->exclude, ri->n_exclude, lo);

		scan_chunk(ri->st, ri->user, lo, Min(SCORE_CHUNK, ri->n_items - lo),
				   ri->exclude, &e, ri->n_exclude, buf, &ri->heaps[part]);
	}
}

/*
 * The whole catalogue for one user, a chunk at a time.  A catalogue of
 * PARALLEL_CHUNKS chunks or more is shared by dsl_rec.threads threads, each
 * keeping its own top k (of its chunks, in increasing order, as topk_scan
 * wants), in rounds of ROUND_CHUNKS chunks with a check for interrupts
 * between them; the threads' heaps are then offered to h.  The k best of
 * the union under the ranking rule are the k best of the catalogue, so the
 * result does not depend on which thread scored which chunk.
 */
static void
neumf_rank_items(const ServeModel *m, const float *user,
				 const int32 *exclude, int64 n_exclude, TopK *h)
{
	const NeumfState *st = neumf_state(m);
	int			n_chunks = (m->n_items + SCORE_CHUNK - 1) / SCORE_CHUNK;
	RankItems	ri;
	WorkerPool *pool;
	MemoryContext cxt;
	MemoryContext oldcxt;
	int			n_parts;

	if (n_chunks < PARALLEL_CHUNKS || worker_pool_threads(dsl_threads) < 2)
	{
		float		buf[SCORE_CHUNK];
		int64		e = 0;

		for (int lo = 0; lo < m->n_items; lo += SCORE_CHUNK)
		{
			CHECK_FOR_INTERRUPTS();
			scan_chunk(st, user, lo, Min(SCORE_CHUNK, m->n_items - lo),
					   exclude, &e, n_exclude, buf, h);
		}
		return;
	}

	cxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec neumf rank items",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	pool = serve_worker_pool();
	n_parts = worker_pool_size(pool);
	ri.st = st;
	ri.user = user;
	ri.exclude = exclude;
	ri.n_exclude = n_exclude;
	ri.n_items = m->n_items;
	ri.heaps = palloc(sizeof(TopK) * n_parts);
	for (int p = 0; p < n_parts; p++)
		topk_init(&ri.heaps[p], h->k, palloc(sizeof(float) * h->k),
				  palloc(sizeof(int32) * h->k));
	MemoryContextSwitchTo(oldcxt);

	for (ri.first = 0; ri.first < n_chunks; ri.first = ri.end)
	{
		CHECK_FOR_INTERRUPTS();
		ri.end = Min(ri.first + ROUND_CHUNKS, n_chunks);
		ri.next = 0;
		worker_pool_run(pool, rank_items_part, &ri);
	}
	for (int p = 0; p < n_parts; p++)
		for (int j = 0; j < ri.heaps[p].n; j++)
			topk_offer(h, ri.heaps[p].score[j], ri.heaps[p].idx[j]);
	MemoryContextDelete(cxt);
}

/* one round of rank_users: tiles of its users, claimed by the threads */
typedef struct RankRound
{
	const NeumfState *st;
	int			n_items;
	int			chunk;			/* items scored at a time */
	const IndexCSR *exclude;
	const int32 *users;			/* the round's users */
	int			n_users;
	int			tile;			/* users of a tile */
	TopK	   *heaps;			/* per user of the round */
	float	  **buf;			/* per part: chunk scores */
	int			next_tile;		/* worker_claim() counter */
} RankRound;

/* runs in a worker thread (or the backend's): plain C only */
static void
rank_round_part(void *arg, int part, int n_parts)
{
	RankRound  *rr = (RankRound *) arg;
	const NeumfState *st = rr->st;
	const IndexCSR *ex = rr->exclude;
	int			n_tiles = (rr->n_users + rr->tile - 1) / rr->tile;
	int			t;

	(void) n_parts;
	while ((t = worker_claim(&rr->next_tile)) < n_tiles)
	{
		int			first = t * rr->tile;
		int			nu = Min(rr->tile, rr->n_users - first);
		int64		cur[USER_TILE];

		for (int u = 0; u < nu; u++)
			cur[u] = ex ? ex->ptr[rr->users[first + u]] : 0;
		for (int lo = 0; lo < rr->n_items; lo += rr->chunk)
		{
			int			n = Min(rr->chunk, rr->n_items - lo);

			for (int u = 0; u < nu; u++)
			{
				int32		user = rr->users[first + u];

				scan_chunk(st, st->users + (Size) user * st->rep, lo, n,
						   ex ? ex->idx : NULL, &cur[u], ex ? ex->ptr[user + 1] : 0,
						   rr->buf[part], &rr->heaps[first + u]);
			}
		}
	}
}

/*
 * Every listed user's k best: rounds of up to TILES_PER_PART tiles of
 * USER_TILE users per thread, fewer users when their heaps would not fit
 * in mem_bytes (one per thread at least); each round's users are emitted in
 * list order once all are ranked.
 */
static void
neumf_rank_users(const ServeModel *m, const int32 *users, int n_users,
				 const IndexCSR *exclude, int k, Size mem_bytes,
				 TopKEmit emit, void *emit_arg)
{
	const NeumfState *st = neumf_state(m);
	RankRound	rr;
	WorkerPool *pool;
	MemoryContext cxt;
	MemoryContext oldcxt;
	int			n_parts;
	int			kk;
	int			per_round;
	Size		per_user;
	float	   *scores;
	int32	   *idx;

	if (n_users <= 0 || m->n_items <= 0)
		return;
	kk = Min(k, m->n_items);

	/* the pool goes with this context, also on error */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec neumf rank users",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	pool = worker_pool_create(dsl_threads, cxt);
	n_parts = worker_pool_size(pool);

	per_user = (Size) kk * (sizeof(float) + sizeof(int32)) + sizeof(TopK);
	per_round = (int) Min((Size) n_parts * TILES_PER_PART * USER_TILE,
						  Max(mem_bytes / per_user, (Size) n_parts));
	memset(&rr, 0, sizeof(rr));
	rr.st = st;
	rr.n_items = m->n_items;
	rr.chunk = Max(CHUNK_BYTES / (int) (sizeof(float) * st->rep) / NEUMF_LANES, 1) * NEUMF_LANES;
	rr.exclude = exclude;
	rr.tile = Max(1, Min(USER_TILE, per_round / (n_parts * TILES_PER_PART)));
	rr.heaps = palloc(sizeof(TopK) * per_round);
	scores = palloc_extended(sizeof(float) * kk * per_round, MCXT_ALLOC_HUGE);
	idx = palloc_extended(sizeof(int32) * kk * per_round, MCXT_ALLOC_HUGE);
	for (int u = 0; u < per_round; u++)
		topk_init(&rr.heaps[u], kk, scores + (Size) u * kk, idx + (Size) u * kk);
	rr.buf = palloc(sizeof(float *) * n_parts);
	for (int p = 0; p < n_parts; p++)
		rr.buf[p] = palloc(sizeof(float) * rr.chunk);
	/* emit() runs in the caller's context */
	MemoryContextSwitchTo(oldcxt);

	for (int u0 = 0; u0 < n_users; u0 += per_round)
	{
		CHECK_FOR_INTERRUPTS();
		rr.users = users + u0;
		rr.n_users = Min(per_round, n_users - u0);
		rr.next_tile = 0;
		for (int u = 0; u < rr.n_users; u++)
			rr.heaps[u].n = 0;

		worker_pool_run(pool, rank_round_part, &rr);

		for (int u = 0; u < rr.n_users; u++)
		{
			TopK	   *h = &rr.heaps[u];
			int			n = topk_sort(h);

			emit(emit_arg, rr.users[u], h->idx, h->score, n);
		}
	}

	MemoryContextDelete(cxt);
}


/*
 * The fold-in (see the file's header comment)
 */

/*
 * A step's pairs are taken in chunks of FOLD_CHUNK: each chunk sums its
 * pairs' gradients on its own, and the step adds the chunks' sums in chunk
 * order, so the threads that share a step's chunks (fold_in) give the same
 * bits as one thread.
 */
#define FOLD_CHUNK 8

/* scratch of one fold-in (of one thread of it) */
typedef struct FoldWork
{
	float	   *rep;			/* the representation of (p, p') */
	float	   *g_hp;			/* g: a chunk's dL/dp */
	float	   *g_a;			/* w_1: a chunk's dL/d(W1u^T p') */
	float	   *sum_hp;			/* the step's sums of the chunks' */
	float	   *sum_a;
	float	   *act[2];			/* the pair's activations, layer after layer */
	float	   *delta[2];		/* backward: two layers' gradients */
} FoldWork;

static void
fold_work_init(const NeumfState *st, FoldWork *fw)
{
	int			acts = 0;

	for (int l = 0; l < st->net.n_hidden; l++)
		acts += st->net.width[l];
	fw->rep = palloc(sizeof(float) * st->rep);
	fw->g_hp = palloc(sizeof(float) * Max(st->net.gmf_dim, 1));
	fw->g_a = palloc(sizeof(float) * st->net.width[0]);
	fw->sum_hp = palloc(sizeof(float) * Max(st->net.gmf_dim, 1));
	fw->sum_a = palloc(sizeof(float) * st->net.width[0]);
	for (int c = 0; c < 2; c++)
	{
		fw->act[c] = palloc(sizeof(float) * acts);
		fw->delta[c] = palloc(sizeof(float) * NEUMF_MAX_WIDTH);
	}
}

/*
 * s(rep, item row r), layer by layer, leaving each hidden layer's output in
 * act (width[0] floats, then width[1], ...) for fold_backward().
 */
static inline __attribute__((always_inline)) float
fold_forward(const NeumfState *st, const float *rep, const float *r, float *act)
{
	const NeumfNet *net = &st->net;
	const int	g = net->gmf_dim;
	float	   *x = act;
	float		s = 0.0f;

	for (int k = 0; k < g; k++)
		s += rep[k] * r[k];
	for (int o = 0; o < net->width[0]; o++)
	{
		float		v = rep[g + o] + r[g + o];

		x[o] = v > 0 ? v : 0;
	}
	for (int l = 1; l < net->n_hidden; l++)
	{
		const int	w_in = net->width[l - 1];
		const int	w_out = net->width[l];
		float	   *y = x + w_in;

		memcpy(y, net->b[l], sizeof(float) * w_out);
		for (int k = 0; k < w_in; k++)
		{
			const float *wk = net->w[l] + (Size) k * w_out;
			const float xk = x[k];

			if (xk == 0)
				continue;
			for (int o = 0; o < w_out; o++)
				y[o] += xk * wk[o];
		}
		for (int o = 0; o < w_out; o++)
			y[o] = y[o] > 0 ? y[o] : 0;
		x = y;
	}
	for (int k = 0; k < net->width[net->n_hidden - 1]; k++)
		s += net->h_mlp[k] * x[k];
	return s + net->out_bias;
}

/*
 * Add gamma times the gradient of s(rep, item row r) with respect to rep to
 * fw's accumulators, from the activations fold_forward() left in act: the
 * GMF half's is r's q, the first layer's user half's is the output
 * weights taken back through the relu layers (a unit that was off passes
 * nothing back).
 */
static inline __attribute__((always_inline)) void
fold_backward(const NeumfState *st, const float *r, const float *act,
			  float gamma, FoldWork *fw)
{
	const NeumfNet *net = &st->net;
	const int	g = net->gmf_dim;
	const int	L = net->n_hidden;
	float	   *d = fw->delta[0];
	float	   *dn = fw->delta[1];
	const float *x;
	int			off = 0;

	for (int l = 0; l < L - 1; l++)
		off += net->width[l];
	x = act + off;
	for (int o = 0; o < net->width[L - 1]; o++)
		d[o] = x[o] > 0 ? gamma * net->h_mlp[o] : 0.0f;
	for (int l = L - 1; l >= 1; l--)
	{
		const int	w_in = net->width[l - 1];
		const int	w_out = net->width[l];
		float	   *t;

		off -= w_in;
		x = act + off;
		memset(dn, 0, sizeof(float) * w_in);
		for (int o = 0; o < w_out; o++)
		{
			const float *wo = st->wt[l] + (Size) o * w_in;
			const float a = d[o];

			if (a == 0)
				continue;
			for (int k = 0; k < w_in; k++)
				dn[k] += a * wo[k];
		}
		for (int k = 0; k < w_in; k++)
			dn[k] = x[k] > 0 ? dn[k] : 0.0f;
		t = d;
		d = dn;
		dn = t;
	}
	for (int o = 0; o < net->width[0]; o++)
		fw->g_a[o] += d[o];
	for (int k = 0; k < g; k++)
		fw->g_hp[k] += gamma * r[k];
}

/*
 * Chunk `chunk` of a step's pairs (pos[t], neg[t]), t < n_pairs (item
 * indices), at the representation rep: its pairs' loss, returned, and their
 * gradient (each pair's weighted 1 / n_pairs) in fw->g_hp and fw->g_a.
 * Compiled twice (cpu.h), the copy for this CPU chosen by fold_prepare().
 */
typedef double (*FoldChunkFn) (const NeumfState *st, const float *rep,
							   const int32 *pos, const int32 *neg, int n_pairs,
							   int chunk, FoldWork *fw);

static inline __attribute__((always_inline)) double
fold_chunk_body(const NeumfState *st, const float *rep, const int32 *pos,
				const int32 *neg, int n_pairs, int chunk, FoldWork *fw)
{
	const int	t0 = chunk * FOLD_CHUNK;
	const int	t1 = Min(n_pairs, t0 + FOLD_CHUNK);
	double		loss = 0.0;

	memset(fw->g_hp, 0, sizeof(float) * st->net.gmf_dim);
	memset(fw->g_a, 0, sizeof(float) * st->net.width[0]);
	for (int t = t0; t < t1; t++)
	{
		const float *ri = st->items + (Size) pos[t] * st->rep;
		const float *rj = st->items + (Size) neg[t] * st->rep;
		double		d;
		double		c;

		/* the next negative's row is rarely in the cache: ask for it now */
		if (t + 1 < t1)
		{
			const char *next = (const char *) (st->items + (Size) neg[t + 1] * st->rep);

			for (Size b = 0; b < sizeof(float) * st->rep; b += 64)
				__builtin_prefetch(next + b);
		}
		d = (double) fold_forward(st, rep, ri, fw->act[0]) -
			fold_forward(st, rep, rj, fw->act[1]);
		/* log(1 + e^-d), and its derivative -1 / (1 + e^d), stably */
		c = d >= 0 ? exp(-d) / (1.0 + exp(-d)) : 1.0 / (1.0 + exp(d));
		loss += d >= 0 ? log1p(exp(-d)) : -d + log1p(exp(d));
		fold_backward(st, ri, fw->act[0], (float) (-c / n_pairs), fw);
		fold_backward(st, rj, fw->act[1], (float) (c / n_pairs), fw);
	}
	return loss;
}

static double
fold_chunk_base(const NeumfState *st, const float *rep, const int32 *pos,
				const int32 *neg, int n_pairs, int chunk, FoldWork *fw)
{
	return fold_chunk_body(st, rep, pos, neg, n_pairs, chunk, fw);
}

#ifdef DSL_X86_DISPATCH
DSL_TARGET("avx2,fma")
static double
fold_chunk_avx2(const NeumfState *st, const float *rep, const int32 *pos,
				const int32 *neg, int n_pairs, int chunk, FoldWork *fw)
{
	return fold_chunk_body(st, rep, pos, neg, n_pairs, chunk, fw);
}
#endif

static FoldChunkFn fold_chunk;

/* choose fold_chunk's copy: in the backend, before a fold-in */
static void
fold_prepare(void)
{
	if (fold_chunk != NULL)
		return;
	fold_chunk = fold_chunk_base;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
		fold_chunk = fold_chunk_avx2;
#endif
}

/* add a chunk's gradient sums (g_hp, g_a) into the step's */
static void
fold_add_chunk(const NeumfState *st, const float *g_hp, const float *g_a, FoldWork *fw)
{
	for (int k = 0; k < st->net.gmf_dim; k++)
		fw->sum_hp[k] += g_hp[k];
	for (int o = 0; o < st->net.width[0]; o++)
		fw->sum_a[o] += g_a[o];
}

/*
 * The objective's value at (p, p') from the pairs' loss (summed over the
 * chunks), and its gradient in grad_p (g) and grad_pm (dm) from the
 * step's sums in fw: the L2 terms added, p''s half taken back through
 * W1u.
 */
static double
fold_finish(const NeumfState *st, const float *p, const float *pm, double pair_loss,
			int n_pairs, const FoldWork *fw, float *grad_p, float *grad_pm)
{
	const int	g = st->net.gmf_dim;
	const int	w0 = st->net.width[0];
	const double l2_p = FOLD_LAMBDA / (g * (double) st->scale_p * st->scale_p);
	const double l2_pm = FOLD_LAMBDA / (st->dm * (double) st->scale_pm * st->scale_pm);
	double		loss = pair_loss / n_pairs;

	for (int k = 0; k < g; k++)
	{
		grad_p[k] = fw->sum_hp[k] + (float) (l2_p * p[k]);
		loss += 0.5 * l2_p * p[k] * p[k];
	}
	for (int k = 0; k < st->dm; k++)
	{
		const float *row = st->w1_user + (Size) k * w0;
		double		s = 0.0;

		for (int o = 0; o < w0; o++)
			s += (double) row[o] * fw->sum_a[o];
		grad_pm[k] = (float) (s + l2_pm * pm[k]);
		loss += 0.5 * l2_pm * pm[k] * pm[k];
	}
	return loss;
}

/*
 * The steps of a fold-in: a step's chunks go to the threads of pool (NULL:
 * this thread takes them all), each thread with its own scratch (act,
 * delta; part 0's is the caller's FoldWork, whose rep and sums the step
 * uses), each chunk with its own gradient sums and loss, added in chunk
 * order afterwards: the same bits whatever the number of threads.
 */
typedef struct FoldStep
{
	const NeumfState *st;
	const int32 *pos;
	const int32 *neg;
	int			n_pairs;
	WorkerPool *pool;
	int			next;			/* the chunks' claim counter */
	FoldWork   *fws;			/* one per thread */
	float	   *chunk_hp;		/* chunk c's: c x g */
	float	   *chunk_a;		/* c x w_1 */
	double	   *chunk_loss;
} FoldStep;

/* fs for steps over the pairs (pos[t], neg[t]), t < n_pairs, on pool */
static void
fold_step_init(const NeumfState *st, FoldStep *fs, const int32 *pos, const int32 *neg,
			   int n_pairs, FoldWork *fw, WorkerPool *pool)
{
	const int	n_chunks = (n_pairs + FOLD_CHUNK - 1) / FOLD_CHUNK;
	const int	n_parts = pool ? worker_pool_size(pool) : 1;

	fold_prepare();
	fs->st = st;
	fs->pos = pos;
	fs->neg = neg;
	fs->n_pairs = n_pairs;
	fs->pool = pool;
	fs->fws = palloc(sizeof(FoldWork) * n_parts);
	fs->fws[0] = *fw;
	for (int t = 1; t < n_parts; t++)
		fold_work_init(st, &fs->fws[t]);
	fs->chunk_hp = palloc(sizeof(float) * n_chunks * st->net.gmf_dim);
	fs->chunk_a = palloc(sizeof(float) * n_chunks * st->net.width[0]);
	fs->chunk_loss = palloc(sizeof(double) * n_chunks);
}

static void
fold_step_part(void *arg, int part, int n_parts)
{
	FoldStep   *fs = (FoldStep *) arg;
	const int	g = fs->st->net.gmf_dim;
	const int	w0 = fs->st->net.width[0];
	const int	n_chunks = (fs->n_pairs + FOLD_CHUNK - 1) / FOLD_CHUNK;
	FoldWork	fw = fs->fws[part];

	(void) n_parts;
	for (int c; (c = worker_claim(&fs->next)) < n_chunks;)
	{
		fw.g_hp = fs->chunk_hp + (Size) c * g;
		fw.g_a = fs->chunk_a + (Size) c * w0;
		fs->chunk_loss[c] = fold_chunk(fs->st, fs->fws[0].rep, fs->pos, fs->neg,
									   fs->n_pairs, c, &fw);
	}
}

/*
 * The fold-in's objective at (p, p') for fs's pairs, and its gradient in
 * grad_p and grad_pm
 */
static double
fold_step(FoldStep *fs, const float *p, const float *pm, float *grad_p, float *grad_pm)
{
	const NeumfState *st = fs->st;
	FoldWork   *fw = &fs->fws[0];
	double		pair_loss = 0.0;

	neumf_net_rep(&st->net, st->dm, st->w1_user, NULL, p, pm, fw->rep);
	fs->next = 0;
	if (fs->pool)
		worker_pool_run(fs->pool, fold_step_part, fs);
	else
		fold_step_part(fs, 0, 1);
	memset(fw->sum_hp, 0, sizeof(float) * st->net.gmf_dim);
	memset(fw->sum_a, 0, sizeof(float) * st->net.width[0]);
	for (int c = 0; c * FOLD_CHUNK < fs->n_pairs; c++)
	{
		pair_loss += fs->chunk_loss[c];
		fold_add_chunk(st, fs->chunk_hp + (Size) c * st->net.gmf_dim,
					   fs->chunk_a + (Size) c * st->net.width[0], fw);
	}
	return fold_finish(st, p, pm, pair_loss, fs->n_pairs, fw, grad_p, grad_pm);
}

/* the r-th item (from 0) that is not in hist[0..n) (sorted, distinct) */
static int32
fold_nth_other(const int32 *hist, int n, int64 r)
{
	int			lo = 0;
	int			hi = n;

	/* it is r + t, t the history items below it: those with hist[t] - t <= r */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (hist[mid] - mid <= r)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (int32) (r + lo);
}

/* one Adam step of x (n) along grad, step size lr, at step t (from 1) */
static void
fold_adam(float *x, const float *grad, float *mom, float *vel, int n, int t,
		  double lr)
{
	const double c1 = 1.0 - pow(FOLD_BETA1, t);
	const double c2 = 1.0 - pow(FOLD_BETA2, t);

	for (int k = 0; k < n; k++)
	{
		mom[k] = FOLD_BETA1 * mom[k] + (1 - FOLD_BETA1) * grad[k];
		vel[k] = FOLD_BETA2 * vel[k] + (1 - FOLD_BETA2) * grad[k] * grad[k];
		x[k] -= (float) (lr * (mom[k] / c1) / (sqrt(vel[k] / c2) + FOLD_EPS));
	}
}

/*
 * p (g floats) and p' (dm) for the history items[0..n) of a catalogue of
 * n_items: FOLD_STEPS steps of Adam from zero on the objective of the
 * header comment.
 */
static void
fold_in(const NeumfState *st, int n_items, const int32 *items, int n,
		float *p, float *pm)
{
	const int	g = st->net.gmf_dim;
	const int	dm = st->dm;
	const int	n_pairs = Min(Max(n, FOLD_MIN_PAIRS), FOLD_MAX_PAIRS);
	const int64 n_other = (int64) n_items - n;
	const double lr_p = FOLD_LR * st->scale_p;
	const double lr_pm = FOLD_LR * st->scale_pm;
	FoldWork	fw;
	DslRng		rng;
	uint64		seed = dsl_mix64((uint64) n);
	float	   *grad_p = palloc(sizeof(float) * g);
	float	   *grad_pm = palloc(sizeof(float) * dm);
	float	   *mom_p = palloc0(sizeof(float) * g);
	float	   *vel_p = palloc0(sizeof(float) * g);
	float	   *mom_pm = palloc0(sizeof(float) * dm);
	float	   *vel_pm = palloc0(sizeof(float) * dm);
	int32	   *pos = palloc(sizeof(int32) * n_pairs);
	int32	   *neg = palloc(sizeof(int32) * n_pairs);
	FoldStep	fs;

	memset(p, 0, sizeof(float) * g);
	memset(pm, 0, sizeof(float) * dm);
	/* a history that is the whole catalogue has nothing to be ranked above */
	if (n_other <= 0)
		return;

	fold_work_init(st, &fw);
	for (int c = 0; c < n; c++)
		seed = dsl_mix64(seed ^ (uint64) items[c]);
	dsl_rng_seed(&rng, seed, FOLD_STREAM);
	/* a history of two chunks or more: the chunks on the threads */
	fold_step_init(st, &fs, pos, neg, n_pairs, &fw,
				   n_pairs > FOLD_CHUNK && worker_pool_threads(dsl_threads) >= 2 ?
				   serve_worker_pool() : NULL);
	for (int step = 0; step < FOLD_STEPS; step++)
	{
		CHECK_FOR_INTERRUPTS();
		for (int t = 0; t < n_pairs; t++)
		{
			pos[t] = items[((int64) step * n_pairs + t) % n];
			neg[t] = fold_nth_other(items, n, (int64) dsl_rng_below(&rng, n_other));
		}
		(void) fold_step(&fs, p, pm, grad_p, grad_pm);
		fold_adam(p, grad_p, mom_p, vel_p, g, step + 1, lr_p);
		fold_adam(pm, grad_pm, mom_pm, vel_pm, dm, step + 1, lr_pm);
	}
}

/*
 * The representation of the user whose history is items[0..n): the p and
 * p' fold_in() finds, then [p ; W1u^T p'] as for a stored user.
 */
static void
neumf_history_vector(ServeModel *m, const int32 *items, int n, float *out)
{
	const NeumfState *st = neumf_state(m);
	/* dsl.evaluate_histories folds in user after user: nothing may stay */
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec neumf fold-in",
											  ALLOCSET_SMALL_SIZES);
	MemoryContext oldcxt = MemoryContextSwitchTo(cxt);
	float	   *p = palloc(sizeof(float) * st->net.gmf_dim);
	float	   *pm = palloc(sizeof(float) * st->dm);

	fold_in(st, m->n_items, items, n, p, pm);
	neumf_net_rep(&st->net, st->dm, st->w1_user, NULL, p, pm, out);
	MemoryContextSwitchTo(oldcxt);
	MemoryContextDelete(cxt);
}


/*
 * The shared copy: the state, then its arrays, each MAXALIGNed
 */

#define MAX_ARRAYS (5 + 2 * NEUMF_MAX_HIDDEN)

/* st's arrays, in the shared copy's order: where each is, and its floats */
static int
state_arrays(const ServeModel *m, NeumfState *st, float **arr[], Size len[])
{
	const NeumfNet *net = &st->net;
	int			n = 0;

	arr[n] = &st->users;
	len[n++] = (Size) m->n_users * st->rep;
	arr[n] = &st->items;
	len[n++] = (Size) m->n_items * st->rep;
	arr[n] = &st->tiles;
	len[n++] = neumf_net_tiled_floats(net, m->n_items);
	arr[n] = &st->w1_user;
	len[n++] = (Size) st->dm * net->width[0];
	for (int l = 1; l < net->n_hidden; l++)
	{
		arr[n] = &st->w[l];
		len[n++] = (Size) net->width[l - 1] * net->width[l];
		arr[n] = &st->b[l];
		len[n++] = net->width[l];
	}
	arr[n] = &st->h_mlp;
	len[n++] = net->width[net->n_hidden - 1];
	return n;
}

static Size
neumf_state_bytes(const ServeModel *m)
{
	NeumfState	st = *neumf_state(m);
	float	  **arr[MAX_ARRAYS];
	Size		len[MAX_ARRAYS];
	int			n = state_arrays(m, &st, arr, len);
	Size		bytes = MAXALIGN(sizeof(NeumfState));

	for (int a = 0; a < n; a++)
		bytes += MAXALIGN(sizeof(float) * len[a]);
	return bytes;
}

static void
neumf_state_write(const ServeModel *m, char *dst)
{
	NeumfState	st = *neumf_state(m);
	float	  **arr[MAX_ARRAYS];
	Size		len[MAX_ARRAYS];
	int			n = state_arrays(m, &st, arr, len);
	char	   *p = dst + MAXALIGN(sizeof(NeumfState));

	memcpy(dst, &st, sizeof(NeumfState));	/* the widths are what matter */
	for (int a = 0; a < n; a++)
	{
		memcpy(p, *arr[a], sizeof(float) * len[a]);
		p += MAXALIGN(sizeof(float) * len[a]);
	}
}

static void
neumf_state_attach(ServeModel *m, const char *src)
{
	NeumfState *st = MemoryContextAlloc(m->cxt, sizeof(NeumfState));
	float	  **arr[MAX_ARRAYS];
	Size		len[MAX_ARRAYS];
	int			n;
	const char *p = src + MAXALIGN(sizeof(NeumfState));

	memcpy(st, src, sizeof(NeumfState));
	n = state_arrays(m, st, arr, len);
	for (int a = 0; a < n; a++)
	{
		*arr[a] = (float *) unconstify(char *, p);
		p += MAXALIGN(sizeof(float) * len[a]);
	}
	net_bind(st, m->cxt);
	neumf_net_prepare();
	m->scorer_state = st;
}

const Scorer neumf_scorer = {
	.name = "neumf",
	.load = neumf_load,
	.state_finish = NULL,
	.user_vector = neumf_user_vector,
	.history_vector = neumf_history_vector,
	.rank_items = neumf_rank_items,
	.score_items = neumf_score_items,
	.rank_users = neumf_rank_users,
	.similar_items = NULL,
	.state_bytes = neumf_state_bytes,
	.state_write = neumf_state_write,
	.state_attach = neumf_state_attach,
};
