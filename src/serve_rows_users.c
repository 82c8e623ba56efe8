/*
 * serve_rows_users.c - many users at once against a served embedding table
 * (dsl.recommend_all, dsl.evaluate): see serve_rows_rank_users() in
 * serve_rows.h
 *
 * Dense item rows go to topk_rank_users() (sgemm blocks).  Sparse ones are
 * scored where they are stored: tiles of TILE users, one tile per worker
 * thread, each against every stored entry (an entry adds its value times
 * the tile's weights of its column), so the time follows density; each
 * user's float32 scores go through a TopKNear (topk.h), and the few
 * candidates near its k-th score are then scored exactly in the backend.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "cpu.h"
#include "dsl_rec.h"
#include "serve_rows.h"
#include "workers.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

/* users scored together by the block kernel */
#define TILE 64

/*
 * One tile of users against sparse item rows: xt holds the users' rows
 * transposed (dim x TILE, zero columns past nu), so an item row's score for
 * all of them is the sum over its stored entries of val * xt[col]; each row
 * of TILE scores is compared with the users' admission thresholds and only
 * passes are looked at.  Rows are taken longest first (slice order
 * backwards): rows with more stored weights tend to score higher, so the
 * thresholds rise early and few later rows pass them (in slice order,
 * nearly every row raised them, and the heaps cost more than the kernel).
 */
typedef struct TileScan
{
	const ServeRows *items;
	const int32 *order;			/* slice position -> item index */
	const int32 *ulist;			/* the tile's users */
	int			nu;
	const IndexCSR *exclude;
	TopKNear   *near;			/* per user of the tile */
	float	   *floor;			/* TILE thresholds (+inf past nu) */
} TileScan;

static bool
is_excluded(const IndexCSR *ex, int32 user, int32 item)
{
	int64		lo = ex->ptr[user];
	int64		hi = ex->ptr[user + 1];

	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (ex->idx[mid] < item)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ex->ptr[user + 1] && ex->idx[lo] == item;
}

/* the users whose threshold the row at slice position p passed */
static void
tile_offer(TileScan *ts, int64 p, const float *acc, uint64 mask)
{
	int32		item = ts->order[p];

	while (mask)
	{
		int			u = __builtin_ctzll(mask);

		mask &= mask - 1;
		if (ts->exclude && is_excluded(ts->exclude, ts->ulist[u], item))
			continue;
		topk_near_offer(&ts->near[u], acc[u], item);
		ts->floor[u] = ts->near[u].floor;
	}
}

static void
tile_scan_default(TileScan *ts, const float *xt)
{
	const ServeRows *r = ts->items;
	float		acc[TILE];

	for (int c = serve_rows_slices(r) - 1; c >= 0; c--)
	{
		for (int l = SERVE_SLICE - 1; l >= 0; l--)
		{
			uint64		mask = 0;

			if ((int64) c * SERVE_SLICE + l >= r->n_rows)
				continue;

			memset(acc, 0, sizeof(acc));
			for (int64 e = r->slice[c] + l; e < r->slice[c + 1]; e += SERVE_SLICE)
			{
				const float *x = xt + (Size) serve_rows_col(r, e) * TILE;
				float		v = r->val[e];

				for (int u = 0; u < TILE; u++)
					acc[u] += v * x[u];
			}
			for (int u = 0; u < TILE; u++)
				mask |= (uint64) (acc[u] >= ts->floor[u]) << u;
			if (mask)
				tile_offer(ts, (int64) c * SERVE_SLICE + l, acc, mask);
		}
	}
}

#ifdef DSL_X86_DISPATCH
/* the same with AVX2: the TILE scores of a row in eight registers */
DSL_TARGET("avx2,fma")
static void
tile_scan_avx2(TileScan *ts, const float *xt)
{
	const ServeRows *r = ts->items;
	float		acc[TILE] __attribute__((aligned(32)));

	for (int c = serve_rows_slices(r) - 1; c >= 0; c--)
	{
		for (int l = SERVE_SLICE - 1; l >= 0; l--)
		{
			__m256		a[TILE / 8];
			uint64		mask = 0;

			if ((int64) c * SERVE_SLICE + l >= r->n_rows)
				continue;

			for (int t = 0; t < TILE / 8; t++)
				a[t] = _mm256_setzero_ps();
			for (int64 e = r->slice[c] + l; e < r->slice[c + 1]; e += SERVE_SLICE)
			{
				const float *x = xt + (Size) serve_rows_col(r, e) * TILE;
				__m256		v = _mm256_broadcast_ss(r->val + e);

				for (int t = 0; t < TILE / 8; t++)
					a[t] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + 8 * t), a[t]);
			}
			for (int t = 0; t < TILE / 8; t++)
				mask |= (uint64) _mm256_movemask_ps(
													_mm256_cmp_ps(a[t], _mm256_loadu_ps(ts->floor + 8 * t), _CMP_GE_OQ)) << (8 * t);
			if (mask)
			{
				for (int t = 0; t < TILE / 8; t++)
					_mm256_store_ps(acc + 8 * t, a[t]);
				tile_offer(ts, (int64) c * SERVE_SLICE + l, acc, mask);
			}
		}
	}
}
#endif

/* the canonical score of an item and a user row, for topk_near_finish() */
typedef struct TileExact
{
	const ServeRows *items;
	const float *user;
} TileExact;

static float
tile_exact(void *arg, int32 idx)
{
	const TileExact *a = (const TileExact *) arg;

	return serve_rows_dot(a->items, idx, a->user);
}

/* one round of tiles, one per worker thread */
typedef struct TileRound
{
	TileScan   *ts;				/* per part */
	float	  **xt;				/* per part: dim x TILE */
	int			n_tiles;		/* parts with a tile this round */
	int			kernel;
} TileRound;

/* runs in a worker thread (or the backend's): plain C only */
static void
tile_round_part(void *arg, int part, int n_parts)
{
	TileRound  *tr = (TileRound *) arg;

	(void) n_parts;
	if (part >= tr->n_tiles)
		return;
#ifdef DSL_X86_DISPATCH
	if (tr->kernel != DSL_KERNEL_SCALAR)
		tile_scan_avx2(&tr->ts[part], tr->xt[part]);
	else
#endif
		tile_scan_default(&tr->ts[part], tr->xt[part]);
}

void
serve_rows_rank_users(const ServeRows *users, const ServeRows *items,
					  const int32 *list, int n_list, const IndexCSR *exclude,
					  int k, Size mem_bytes, TopKEmit emit, void *emit_arg)
{
	int			dim = items->dim;
	int			kk;
	int			n_parts;
	const int32 *order;
	float	  **ub;
	TopK		out;
	TileRound	tr;
	WorkerPool *pool;
	MemoryContext cxt;
	MemoryContext oldcxt;

	if (n_list <= 0 || items->n_rows <= 0)
		return;
	kk = Min(k, items->n_rows);
	n_parts = worker_pool_threads(dsl_threads);

	/*
	 * Dense item rows: blocks of scores by sgemm.  So too when the tiles'
	 * heaps and candidates would not fit in mem_bytes (k near the size of a
	 * large catalogue): the blocks of sgemm shrink to fit.
	 */
	if (items->dense ||
		(Size) TILE * n_parts * topk_near_bytes(kk, items->n_rows) > mem_bytes)
	{
		EmbeddingSource us = serve_rows_source(users);
		EmbeddingSource is = serve_rows_source(items);

		topk_rank_users(&us, &is, list, n_list, exclude, k, mem_bytes, emit, emit_arg);
		return;
	}

	/* the pool goes with this context, also on error */
	cxt = AllocSetContextCreate(CurrentMemoryContext, "dsl_rec rank users",
								ALLOCSET_DEFAULT_SIZES);
	oldcxt = MemoryContextSwitchTo(cxt);
	pool = worker_pool_create(dsl_threads, cxt);
	n_parts = worker_pool_size(pool);

	order = items->row;
	tr.kernel = serve_rows_kernel(dim);
	tr.ts = palloc(sizeof(TileScan) * n_parts);
	tr.xt = palloc(sizeof(float *) * n_parts);
	ub = palloc(sizeof(float *) * n_parts);
	for (int p = 0; p < n_parts; p++)
	{
		TileScan   *ts = &tr.ts[p];

		ts->items = items;
		ts->order = order;
		ts->exclude = exclude;
		ts->near = palloc(sizeof(TopKNear) * TILE);
		ts->floor = palloc(sizeof(float) * TILE);
		for (int u = 0; u < TILE; u++)
			topk_near_init(&ts->near[u], kk, items->n_rows, true);
		tr.xt[p] = palloc(sizeof(float) * TILE * dim);
		ub[p] = palloc(sizeof(float) * TILE * dim);
	}
	topk_init(&out, kk, palloc(sizeof(float) * kk), palloc(sizeof(int32) * kk));
	/* emit() runs in the caller's context */
	MemoryContextSwitchTo(oldcxt);

	for (int u0 = 0; u0 < n_list; u0 += TILE * n_parts)
	{
		CHECK_FOR_INTERRUPTS();

		/* a tile of users per part: rows, transposed rows, bounds */
		tr.n_tiles = 0;
		for (int p = 0; p < n_parts && u0 + p * TILE < n_list; p++)
		{
			TileScan   *ts = &tr.ts[p];
			int			first = u0 + p * TILE;
			float	   *xt = tr.xt[p];

			ts->ulist = list + first;
			ts->nu = Min(TILE, n_list - first);
			memset(xt, 0, sizeof(float) * TILE * dim);
			for (int u = 0; u < TILE; u++)
			{
				float	   *row = ub[p] + (Size) u * dim;

				ts->floor[u] = INFINITY;
				if (u >= ts->nu)
					continue;
				serve_rows_get(users, ts->ulist[u], row);
				for (int d = 0; d < dim; d++)
					xt[(Size) d * TILE + u] = row[d];
				topk_near_reset(&ts->near[u],
								topk_dot_bound(dim, topk_norm(row, dim), items->max_norm));
				ts->floor[u] = ts->near[u].floor;
			}
			tr.n_tiles++;
		}

		worker_pool_run(pool, tile_round_part, &tr);

		/* in list order: the candidates scored exactly, then emitted */
		for (int p = 0; p < tr.n_tiles; p++)
		{
			TileScan   *ts = &tr.ts[p];

			for (int u = 0; u < ts->nu; u++)
			{
				const float *row = ub[p] + (Size) u * dim;
				int32		user = ts->ulist[u];
				int			n;

				out.n = 0;
				if (ts->near[u].overflow)
				{
					/* many equal scores: this user alone, exactly */
					int64		lo = exclude ? exclude->ptr[user] : 0;
					int64		hi = exclude ? exclude->ptr[user + 1] : 0;

					serve_rows_rank(items, row, topk_norm(row, dim), false,
									exclude ? exclude->idx + lo : NULL, hi - lo, -1, &out);
					n = topk_sort(&out);
				}
				else
				{
					TileExact	a = {items, row};

					n = topk_near_finish(&ts->near[u], tile_exact, &a, &out);
				}
				emit(emit_arg, user, out.idx, out.score, n);
			}
		}
	}

	MemoryContextDelete(cxt);
}
