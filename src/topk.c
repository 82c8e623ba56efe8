/*
 * topk.c - block scoring with BLAS and bounded top-k heaps
 *
 * See topk.h for the ranking rule.  The heaps keep their worst entry at the
 * root, so "does this score get in?" is one comparison with the root; for a
 * full catalogue scan nearly every score fails it, and topk_scan() tests a
 * chunk of scores at once (SSE2 comparisons on x86-64) before looking at
 * single entries.
 */
#include "postgres.h"

#include <math.h>

#include <cblas.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "miscadmin.h"

#include "dsl_rec.h"
#include "topk.h"

/* scores tested together by topk_scan() before single entries are looked at */
#define SCAN_CHUNK		16

/*
 * Does any of c[0..SCAN_CHUNK-1] reach f?  NaN never does.  A chunk that
 * passes is looked at entry by entry, with the caller's own comparison.
 * Independent comparisons: a running max over the chunk was one chain of
 * dependent instructions, a tenth of a sparse catalogue's scan.
 */
static inline bool
chunk_any_reaches(const float *c, float f)
{
#ifdef __SSE2__
	__m128		fv = _mm_set1_ps(f);

	StaticAssertStmt(SCAN_CHUNK == 16, "chunk_any_reaches() compares 16 floats");
	return _mm_movemask_ps(_mm_or_ps(_mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(c), fv),
											   _mm_cmpge_ps(_mm_loadu_ps(c + 4), fv)),
									 _mm_or_ps(_mm_cmpge_ps(_mm_loadu_ps(c + 8), fv),
											   _mm_cmpge_ps(_mm_loadu_ps(c + 12), fv)))) != 0;
#else
	int			any = 0;

	for (int x = 0; x < SCAN_CHUNK; x++)
		any |= c[x] >= f;
	return any != 0;
#endif
}

/* block shape limits for topk_rank_users() */
#define ITEM_BLOCK_MAX	4096
#define ITEM_BLOCK_MIN	64
#define USER_BLOCK_MAX	1024
#define USER_BLOCK_GOOD 32

/* sift the entry at position i towards the leaves */
static void
topk_sift_down(TopK *h, int i)
{
	float		s = h->score[i];
	int32		x = h->idx[i];

	for (;;)
	{
		int			c = 2 * i + 1;

		if (c >= h->n)
			break;
		/* pick the worse child */
		if (c + 1 < h->n &&
			topk_better(h->score[c], h->idx[c], h->score[c + 1], h->idx[c + 1]))
			c++;
		/* stop when the worse child is not worse than the moving entry */
		if (!topk_better(s, x, h->score[c], h->idx[c]))
			break;
		h->score[i] = h->score[c];
		h->idx[i] = h->idx[c];
		i = c;
	}
	h->score[i] = s;
	h->idx[i] = x;
}

/* add an entry to a heap that is not full */
static void
topk_push(TopK *h, float s, int32 x)
{
	int			i = h->n++;

	while (i > 0)
	{
		int			p = (i - 1) / 2;

		/* the root side holds the worse entries */
		if (!topk_better(h->score[p], h->idx[p], s, x))
			break;
		h->score[i] = h->score[p];
		h->idx[i] = h->idx[p];
		i = p;
	}
	h->score[i] = s;
	h->idx[i] = x;
}

/* replace the worst entry of a full heap by a better one */
static inline void
topk_replace_root(TopK *h, float s, int32 x)
{
	h->score[0] = s;
	h->idx[0] = x;
	topk_sift_down(h, 0);
}

void
topk_offer(TopK *h, float score, int32 idx)
{
	if (isnan(score))
		return;
	if (h->n < h->k)
		topk_push(h, score, idx);
	else if (topk_better(score, idx, h->score[0], h->idx[0]))
		topk_replace_root(h, score, idx);
}

void
topk_scan(TopK *h, const float *scores, int n, int32 base)
{
	int			j = 0;
	float		thr;

	/* until the heap is full, everything that is not excluded gets in */
	for (; j < n && h->n < h->k; j++)
		if (!isnan(scores[j]))
			topk_push(h, scores[j], base + j);
	if (j >= n)
		return;

	/*
	 * The heap is full: a later index must beat the root's score strictly.
	 * NaN compares false with everything, so excluded entries never pass.
	 */
	thr = h->score[0];
	for (; j + SCAN_CHUNK <= n; j += SCAN_CHUNK)
	{
		const float *c = scores + j;

		if (!chunk_any_reaches(c, thr))
			continue;
		for (int t = 0; t < SCAN_CHUNK; t++)
		{
			if (c[t] > thr)
			{
				topk_replace_root(h, c[t], base + j + t);
				thr = h->score[0];
			}
		}
	}
	for (; j < n; j++)
	{
		if (scores[j] > thr)
		{
			topk_replace_root(h, scores[j], base + j);
			thr = h->score[0];
		}
	}
}

int
topk_sort(TopK *h)
{
	int			n = h->n;

	/* heap sort: move the current worst to the end, shrink, repeat */
	while (h->n > 1)
	{
		int			last = h->n - 1;
		float		s = h->score[0];
		int32		x = h->idx[0];

		h->score[0] = h->score[last];
		h->idx[0] = h->idx[last];
		h->score[last] = s;
		h->idx[last] = x;
		h->n = last;
		topk_sift_down(h, 0);
	}
	h->n = n;
	return n;
}

/*
 * Never inlined: every caller runs the very same machine code, so equal
 * inputs give bit-identical scores whichever SQL function asks.
 */
pg_noinline float
topk_dot(const float *a, const float *b, int dim)
{
	double		s = 0.0;

	for (int i = 0; i < dim; i++)
		s += (double) a[i] * (double) b[i];
	return (float) s;
}

/*
 * The admission threshold of exact scoring, given a heap of the best float
 * approximations so far, each within bound of its canonical score: the
 * heap's rows have canonical scores of at least (k-th approximation -
 * bound), so a row needs an approximation of at least (k-th - 2 * bound) to
 * be in the canonical top k.  -inf while the heap holds fewer than k (every
 * row may be in), and when the scores overflow (rescore everything).
 */
static float
bounded_floor(const TopK *approx_heap, double bound)
{
	float		f;

	if (approx_heap->n < approx_heap->k)
		return -INFINITY;
	f = (float) ((double) approx_heap->score[0] - 2.0 * bound);
	return isfinite(f) ? f : -INFINITY;
}

/* one routine for every norm, like topk_dot() for scores */
pg_noinline double
topk_norm(const float *x, int dim)
{
	double		s = 0.0;

	for (int i = 0; i < dim; i++)
		s += (double) x[i] * x[i];
	return sqrt(s);
}

/*
 * Offer exact(arg, i) to h for every row whose test[i] reaches the floor
 * that the k best of ranks[] set with bound (bounded_floor()); NaN in test
 * (an excluded row) fails the comparison.
 */
static void
offer_above_floor(TopK *h, const float *ranks, const float *test, int n, double bound,
				  float (*exact) (void *arg, int i), void *arg)
{
	TopK		first;
	float		floor_score;

	topk_init(&first, h->k, palloc(sizeof(float) * h->k), palloc(sizeof(int32) * h->k));
	topk_scan(&first, ranks, n, 0);
	floor_score = bounded_floor(&first, bound);

	for (int i = 0; i < n; i++)
	{
		if (test[i] >= floor_score)
			topk_offer(h, exact(arg, i), i);
	}
	pfree(first.score);
	pfree(first.idx);
}

void
topk_offer_bounded(TopK *h, const float *approx, int n, double bound,
				   float (*exact) (void *arg, int i), void *arg)
{
	/* the k best float scores set the threshold */
	offer_above_floor(h, approx, approx, n, bound, exact, arg);
}

/* room for candidates: a few times k, but never more than can be offered */
static int
topk_near_cap(int k, int n_max)
{
	return Max(Min(Max(4 * k, 64), n_max), 1);
}

Size
topk_near_bytes(int k, int n_max)
{
	return sizeof(TopKNear) +
		(Size) (k + topk_near_cap(k, n_max)) * (sizeof(float) + sizeof(int32));
}

void
topk_near_init(TopKNear *t, int k, int n_max, bool fixed)
{
	topk_init(&t->heap, k, palloc(sizeof(float) * k), palloc(sizeof(int32) * k));
	t->fixed = fixed;
	t->cap = topk_near_cap(k, n_max);
	t->cs = palloc(sizeof(float) * t->cap);
	t->ci = palloc(sizeof(int32) * t->cap);
	topk_near_reset(t, 0.0);
}

void
topk_near_reset(TopKNear *t, double bound)
{
	t->heap.n = 0;
	t->bound = bound;
	t->floor = -INFINITY;
	t->n = 0;
	t->overflow = false;
}

/* drop the candidates below the floor; grow when most of them are above */
static void
topk_near_compact(TopKNear *t)
{
	int			n = 0;

	for (int j = 0; j < t->n; j++)
	{
		if (t->cs[j] >= t->floor)
		{
			t->cs[n] = t->cs[j];
			t->ci[n] = t->ci[j];
			n++;
		}
	}
	t->n = n;
	if (t->fixed)
		t->overflow = n == t->cap;
	else if (n > t->cap / 2)
	{
		t->cap *= 2;
		t->cs = repalloc_huge(t->cs, sizeof(float) * t->cap);
		t->ci = repalloc_huge(t->ci, sizeof(int32) * t->cap);
	}
}

void
topk_near_offer_interval(TopKNear *t, float lo, float hi, int32 idx)
{
	/* NaN fails this too */
	if (!(hi >= t->floor) || t->overflow)
		return;
	if (t->n == t->cap)
	{
		topk_near_compact(t);
		if (t->overflow)
			return;
	}
	t->cs[t->n] = hi;
	t->ci[t->n] = idx;
	t->n++;
	topk_offer(&t->heap, lo, idx);
	t->floor = bounded_floor(&t->heap, t->bound);
}

/* an approximation is the interval [approx, approx]; the floor allows for its bound */
void
topk_near_offer(TopKNear *t, float approx, int32 idx)
{
	topk_near_offer_interval(t, approx, approx, idx);
}

void
topk_near_scan_interval(TopKNear *t, const float *lo, const float *hi, int n, int32 base,
						const int32 *map)
{
	int			j = 0;

	for (; j + SCAN_CHUNK <= n; j += SCAN_CHUNK)
	{
		const float *c = hi + j;

		if (!chunk_any_reaches(c, t->floor))
			continue;
		for (int x = 0; x < SCAN_CHUNK; x++)
			topk_near_offer_interval(t, lo[j + x], c[x], map ? map[j + x] : base + j + x);
	}
	for (; j < n; j++)
		topk_near_offer_interval(t, lo[j], hi[j], map ? map[j] : base + j);
}

void
topk_near_scan(TopKNear *t, const float *scores, int n, int32 base, const int32 *map)
{
	topk_near_scan_interval(t, scores, scores, n, base, map);
}

void
topk_near_offer_exact(TopKNear *t, float (*exact) (void *arg, int32 idx), void *arg,
					  TopK *h)
{
	for (int j = 0; j < t->n; j++)
		if (t->cs[j] >= t->floor)
			topk_offer(h, exact(arg, t->ci[j]), t->ci[j]);
}

int
topk_near_finish(TopKNear *t, float (*exact) (void *arg, int32 idx), void *arg,
				 TopK *out)
{
	topk_near_offer_exact(t, exact, arg, out);
	return topk_sort(out);
}

void
topk_near_free(TopKNear *t)
{
	pfree(t->heap.score);
	pfree(t->heap.idx);
	pfree(t->cs);
	pfree(t->ci);
}

/* copy rows list[0..n-1] of src into out, densely */
static void
gather_rows(const EmbeddingSource *src, const int32 *list, int n, float *out)
{
	int			dim = src->dim;
	int			i = 0;

	while (i < n)
	{
		/* a run of consecutive indices is one fill() call */
		int			run = 1;

		while (i + run < n && list[i + run] == list[i] + run)
			run++;
		if (src->dense)
			memcpy(out + (Size) i * dim, src->dense + (Size) list[i] * dim,
				   sizeof(float) * dim * run);
		else
			src->fill(src->arg, list[i], run, out + (Size) i * dim);
		i += run;
	}
}

/*
 * Choose the user block (rows of the score block) and item block (columns)
 * so that score block + user rows + heaps (+ item rows when they have to be
 * filled block by block) stay within mem bytes.
 */
static void
choose_blocks(int n_list, int n_items, int dim, int kk, bool items_resident,
			  Size mem, int *bu_out, int *bi_out)
{
	int			bi = Min(n_items, ITEM_BLOCK_MAX);
	Size		bu;

	for (;;)
	{
		Size		item_buf = items_resident ? 0 : (Size) bi * dim * sizeof(float);
		Size		per_user = (Size) dim * sizeof(float) +
			(Size) bi * sizeof(float) +
			topk_near_bytes(kk, n_items) + sizeof(int64);

		bu = mem > item_buf ? (mem - item_buf) / per_user : 0;
		if (bu >= USER_BLOCK_GOOD || bi <= ITEM_BLOCK_MIN)
			break;
		bi = Max(bi / 2, Min(n_items, ITEM_BLOCK_MIN));
	}
	bu = Max(bu, 1);
	bu = Min(bu, USER_BLOCK_MAX);
	bu = Min(bu, (Size) n_list);
	*bu_out = (int) bu;
	*bi_out = bi;
}

/* the canonical score of one user row and item idx, for topk_near_finish() */
typedef struct RankExact
{
	const EmbeddingSource *items;
	const float *item_all;		/* all item rows, or NULL: fill one */
	const float *user;
	float	   *row;			/* dim scratch entries */
} RankExact;

static float
rank_exact(void *arg, int32 idx)
{
	RankExact  *a = (RankExact *) arg;
	const float *row = a->row;

	if (a->item_all)
		row = a->item_all + (Size) idx * a->items->dim;
	else
		a->items->fill(a->items->arg, idx, 1, a->row);
	return topk_dot(a->user, row, a->items->dim);
}

/* the largest Euclidean norm of the rows (filled block by block into buf) */
static double
max_row_norm(const EmbeddingSource *src, const float *all, float *buf, int block)
{
	double		mx = 0.0;

	for (int i0 = 0; i0 < src->n_rows; i0 += block)
	{
		int			n = Min(block, src->n_rows - i0);
		const float *rows = all ? all + (Size) i0 * src->dim : buf;

		if (!all)
			src->fill(src->arg, i0, n, buf);
		for (int i = 0; i < n; i++)
			mx = Max(mx, topk_norm(rows + (Size) i * src->dim, src->dim));
	}
	return mx;
}

void
topk_rank_users(const EmbeddingSource *users, const EmbeddingSource *items,
				const int32 *users_list, int n_list,
				const IndexCSR *exclude,
				int k, Size mem_bytes,
				TopKEmit emit, void *emit_arg)
{
	int			dim = users->dim;
	int			n_items = items->n_rows;
	int			kk;
	bool		items_resident;
	float	   *item_all = NULL;
	float	   *item_buf = NULL;
	float	   *ubuf;
	float	   *sbuf;
	TopKNear   *near;
	TopK		out;
	RankExact	ex;
	double		max_norm;
	int64	   *cursor;
	int			bu,
				bi;

	if (users->dim != items->dim)
		elog(ERROR, "user and item embeddings differ in dimension (%d, %d)",
			 users->dim, items->dim);
	if (k <= 0)
		elog(ERROR, "top-k size must be positive, not %d", k);
	if (n_list <= 0 || n_items <= 0)
		return;
	kk = Min(k, n_items);

	/*
	 * Item rows: use the dense matrix in place; densify all of them once if
	 * that takes at most half the budget; otherwise fill block by block.
	 */
	items_resident = items->dense != NULL;
	if (!items_resident &&
		(Size) n_items * dim * sizeof(float) <= mem_bytes / 2)
	{
		item_all = palloc_extended((Size) n_items * dim * sizeof(float),
								   MCXT_ALLOC_HUGE);
		items->fill(items->arg, 0, n_items, item_all);
		items_resident = true;
		mem_bytes -= (Size) n_items * dim * sizeof(float);
	}
	else if (items_resident)
		item_all = (float *) items->dense;

	choose_blocks(n_list, n_items, dim, kk, items_resident, mem_bytes, &bu, &bi);

	ubuf = palloc_extended((Size) bu * dim * sizeof(float), MCXT_ALLOC_HUGE);
	sbuf = palloc_extended((Size) bu * bi * sizeof(float), MCXT_ALLOC_HUGE);
	near = palloc(sizeof(TopKNear) * bu);
	for (int r = 0; r < bu; r++)
		topk_near_init(&near[r], kk, n_items, false);
	topk_init(&out, kk, palloc(sizeof(float) * kk), palloc(sizeof(int32) * kk));
	cursor = palloc(sizeof(int64) * bu);
	if (!items_resident)
		item_buf = palloc_extended((Size) bi * dim * sizeof(float), MCXT_ALLOC_HUGE);

	/* the float32 error bound of a score needs the largest item norm */
	max_norm = max_row_norm(items, item_all, item_buf, bi);
	ex.items = items;
	ex.item_all = item_all;
	ex.row = palloc(sizeof(float) * dim);

	for (int u0 = 0; u0 < n_list; u0 += bu)
	{
		int			nu = Min(bu, n_list - u0);
		const int32 *ulist = users_list + u0;

		gather_rows(users, ulist, nu, ubuf);
		for (int r = 0; r < nu; r++)
		{
			double		unorm = topk_norm(ubuf + (Size) r * dim, dim);

			topk_near_reset(&near[r], topk_dot_bound(dim, unorm, max_norm));
			cursor[r] = exclude ? exclude->ptr[ulist[r]] : 0;
		}

		for (int i0 = 0; i0 < n_items; i0 += bi)
		{
			int			ni = Min(bi, n_items - i0);
			const float *iblock;

			CHECK_FOR_INTERRUPTS();

			if (items_resident)
				iblock = item_all + (Size) i0 * dim;
			else
			{
				items->fill(items->arg, i0, ni, item_buf);
				iblock = item_buf;
			}

			/* scores(nu x ni) = U(nu x dim) * I(ni x dim)^T */
			dsl_blas_prepare(true);
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
						nu, ni, dim,
						1.0f, ubuf, dim, iblock, dim,
						0.0f, sbuf, ni);

			for (int r = 0; r < nu; r++)
			{
				float	   *row = sbuf + (Size) r * ni;

				/* mask this user's excluded items inside the block */
				if (exclude)
				{
					int64		end = exclude->ptr[ulist[r] + 1];
					int64		c = cursor[r];

					while (c < end && exclude->idx[c] < i0 + ni)
					{
						if (exclude->idx[c] >= i0)
							row[exclude->idx[c] - i0] = NAN;
						c++;
					}
					cursor[r] = c;
				}
				topk_near_scan(&near[r], row, ni, i0, NULL);
			}
		}

		/* the candidates near each user's k-th score, scored exactly */
		for (int r = 0; r < nu; r++)
		{
			int			n;

			ex.user = ubuf + (Size) r * dim;
			out.n = 0;
			n = topk_near_finish(&near[r], rank_exact, &ex, &out);
			emit(emit_arg, ulist[r], out.idx, out.score, n);
		}
	}

	pfree(ubuf);
	pfree(sbuf);
	for (int r = 0; r < bu; r++)
	{
		pfree(near[r].heap.score);
		pfree(near[r].heap.idx);
		pfree(near[r].cs);
		pfree(near[r].ci);
	}
	pfree(near);
	pfree(out.score);
	pfree(out.idx);
	pfree(ex.row);
	pfree(cursor);
	if (item_buf)
		pfree(item_buf);
	if (item_all && item_all != items->dense)
		pfree(item_all);
}
