/*
 * neumf_fold_check.c - the NeuMF fold-in's gradient against central finite
 * differences of its objective, and its forward pass against the served
 * score
 *
 * Built with src/scorer_neumf.c itself (included below, so that its static
 * fold-in functions are reachable), src/neumf_net.c, and the fuzz
 * harnesses' shim for palloc.  For several shapes of the MLP (one to four
 * hidden layers), random weights and random sparse embeddings:
 *
 *   - the item rows scorer_neumf.c derives, and its fold-in's forward pass,
 *     give the NeuMF score of the raw parameters (a plain reference in
 *     double below), as neumf_net_score() does;
 *   - every coordinate of the objective's gradient in p and p' (each body
 *     this CPU can run) is the central finite difference of the reference
 *     objective, in double;
 *   - the r-th item outside a history is the r-th one counted by hand;
 *   - a fold-in is deterministic, lowers the objective over all of the
 *     history's pairs from p = p' = 0, and puts the history's items above
 *     the rest on average.
 *
 * Then, for information, the time of one fold-in of a 50-item history for
 * the shape of the defaults on a Gowalla-sized catalogue (thread CPU time).
 */
#include "scorer_neumf.c"

#include <stdio.h>
#include <time.h>

#include "backend_stubs.h"
#include "shim.h"

/* what scorer_neumf.c refers to beyond the fold-in: never called here */
int64
serve_scan_part_dim(ServeModel *m, const char *part, int dim, ServePartRow row, void *arg)
{
	abort();
}

int
spvec_dim(const SpVec *v)
{
	abort();
}

void
spvec_to_dense(const SpVec *v, float *out)
{
	abort();
}

void
topk_scan(TopK *h, const float *scores, int n, int32 base)
{
	abort();
}

void
topk_offer(TopK *h, float score, int32 idx)
{
	abort();
}

int
topk_sort(TopK *h)
{
	abort();
}

WorkerPool *
worker_pool_create(int n_threads, MemoryContext owner)
{
	abort();
}

void
worker_pool_run(WorkerPool *pool, WorkerFn fn, void *arg)
{
	abort();
}

int
worker_pool_size(const WorkerPool *pool)
{
	abort();
}

WorkerPool *
serve_worker_pool(void)
{
	abort();
}

int
worker_pool_threads(int n_threads)
{
	return 1;
}

/* the fold-in's own context: the shim's one flat "context" */
MemoryContext
AllocSetContextCreateInternal(MemoryContext parent, const char *name,
							  Size minContextSize, Size initBlockSize,
							  Size maxBlockSize)
{
	return parent;
}

void
MemoryContextDelete(MemoryContext context)
{
}

void
MemoryContextReset(MemoryContext context)
{
	abort();
}

void *
MemoryContextAllocHuge(MemoryContext context, Size size)
{
	return palloc_extended(size, MCXT_ALLOC_HUGE);
}

/* a NeuMF model's raw parameters, and the state scorer_neumf.c serves */
typedef struct Model
{
	int			g;
	int			dm;
	int			n_hidden;
	int			width[NEUMF_MAX_HIDDEN];
	int			n_items;
	float	   *q;				/* n_items x g */
	float	   *qm;				/* n_items x dm */
	float	   *w1u;			/* dm x width[0] */
	float	   *w1i;
	float	   *b1;
	float	   *w[NEUMF_MAX_HIDDEN];
	float	   *b[NEUMF_MAX_HIDDEN];
	float	   *h_m;
	float		bias;
	NeumfState	st;
	ServeModel	m;
} Model;

static float
uniform(DslRng *rng, double scale)
{
	return (float) (scale * (2.0 * ((dsl_rng_next(rng) >> 11) * 0x1.0p-53) - 1.0));
}

/* n values of scale, about a quarter of them zero with sparse */
static float *
random_floats(DslRng *rng, Size n, double scale, bool sparse)
{
	float	   *x = palloc(sizeof(float) * Max(n, 1));

	for (Size c = 0; c < n; c++)
		x[c] = sparse && dsl_rng_below(rng, 4) == 0 ? 0.0f : uniform(rng, scale);
	return x;
}

static void
make_model(Model *md, int g, int dm, const int *width, int n_hidden, int n_items,
		   uint64 seed)
{
	DslRng		rng;
	NeumfState *st = &md->st;

	memset(md, 0, sizeof(Model));
	dsl_rng_seed(&rng, seed, 1);
	md->g = g;
	md->dm = dm;
	md->n_hidden = n_hidden;
	md->n_items = n_items;
	for (int l = 0; l < n_hidden; l++)
		md->width[l] = width[l];
	md->q = random_floats(&rng, (Size) n_items * g, 0.5, true);
	md->qm = random_floats(&rng, (Size) n_items * dm, 0.5, true);
	md->w1u = random_floats(&rng, (Size) dm * width[0], 0.7, true);
	md->w1i = random_floats(&rng, (Size) dm * width[0], 0.7, true);
	md->b1 = random_floats(&rng, width[0], 0.2, false);
	for (int l = 1; l < n_hidden; l++)
	{
		md->w[l] = random_floats(&rng, (Size) width[l - 1] * width[l], 0.7, true);
		md->b[l] = random_floats(&rng, width[l], 0.2, false);
	}
	md->h_m = random_floats(&rng, width[n_hidden - 1], 1.0, false);
	md->bias = 0.125f;

	/* the state neumf_load() would build from these parts */
	st->net.gmf_dim = g;
	st->net.n_hidden = n_hidden;
	for (int l = 0; l < n_hidden; l++)
		st->net.width[l] = width[l];
	st->net.out_bias = md->bias;
	st->dm = dm;
	st->w1_user = md->w1u;
	for (int l = 1; l < n_hidden; l++)
	{
		st->w[l] = md->w[l];
		st->b[l] = md->b[l];
	}
	st->h_mlp = md->h_m;
	net_bind(st, CurrentMemoryContext);
	st->rep = neumf_rep_width(&st->net);
	st->scale_p = 0.3f;
	st->scale_pm = 0.2f;
	st->items = palloc(sizeof(float) * (Size) n_items * st->rep);
	for (int i = 0; i < n_items; i++)
		neumf_net_rep(&st->net, dm, md->w1i, md->b1, md->q + (Size) i * g,
					  md->qm + (Size) i * dm, st->items + (Size) i * st->rep);
	st->tiles = palloc(sizeof(float) * neumf_net_tiled_floats(&st->net, n_items));
	neumf_net_tile(&st->net, st->items, st->rep, n_items, st->tiles);
	md->m.n_items = n_items;
	md->m.scorer_state = st;
	md->m.user_dim = st->rep;
}

/* the NeuMF score of user (p, p') and item i from the raw parameters */
static double
ref_score(const Model *md, const double *p, const double *pm, int i)
{
	double		x[NEUMF_MAX_WIDTH];
	double		y[NEUMF_MAX_WIDTH];
	double		s = md->bias;
	int			w_in = md->width[0];

	for (int k = 0; k < md->g; k++)
		s += p[k] * md->q[(Size) i * md->g + k];
	for (int o = 0; o < w_in; o++)
	{
		double		v = md->b1[o];

		for (int k = 0; k < md->dm; k++)
			v += pm[k] * md->w1u[k * w_in + o] +
				md->qm[(Size) i * md->dm + k] * md->w1i[k * w_in + o];
		x[o] = v > 0 ? v : 0;
	}
	for (int l = 1; l < md->n_hidden; l++)
	{
		int			w_out = md->width[l];

		for (int o = 0; o < w_out; o++)
		{
			double		v = md->b[l][o];

			for (int k = 0; k < w_in; k++)
				v += x[k] * md->w[l][k * w_out + o];
			y[o] = v > 0 ? v : 0;
		}
		memcpy(x, y, sizeof(double) * w_out);
		w_in = w_out;
	}
	for (int k = 0; k < w_in; k++)
		s += md->h_m[k] * x[k];
	return s;
}

/* the fold-in's objective (scorer_neumf.c's header comment), in double */
static double
ref_objective(const Model *md, const double *p, const double *pm,
			  const int32 *pos, const int32 *neg, int n_pairs)
{
	const NeumfState *st = &md->st;
	double		loss = 0.0;
	double		np = 0.0;
	double		npm = 0.0;

	for (int t = 0; t < n_pairs; t++)
	{
		double		d = ref_score(md, p, pm, pos[t]) - ref_score(md, p, pm, neg[t]);

		loss += d >= 0 ? log1p(exp(-d)) : -d + log1p(exp(d));
	}
	for (int k = 0; k < md->g; k++)
		np += p[k] * p[k];
	for (int k = 0; k < md->dm; k++)
		npm += pm[k] * pm[k];
	return loss / n_pairs +
		0.5 * FOLD_LAMBDA * np / (md->g * (double) st->scale_p * st->scale_p) +
		0.5 * FOLD_LAMBDA * npm / (md->dm * (double) st->scale_pm * st->scale_pm);
}

typedef struct Shape
{
	int			g;
	int			dm;
	int			n_hidden;
	int			width[NEUMF_MAX_HIDDEN];
	int			n_items;
} Shape;

static const Shape shapes[] = {
	{5, 4, 3, {6, 5, 3}, 37},
	{3, 2, 1, {7}, 20},
	{6, 5, 4, {9, 8, 6, 4}, 50},
	{8, 8, 2, {16, 8}, 41},
};

/* the checks above for one shape and each body of fold_chunk */
static bool
check_shape(const Shape *sh, uint64 seed)
{
	Model		md;
	NeumfState *st = &md.st;
	DslRng		rng;
	FoldWork	fw;
	FoldStep	fs;
	const int	n_pairs = 9;
	int32		pos[9];
	int32		neg[9];
	double	   *p = palloc(sizeof(double) * sh->g);
	double	   *pm = palloc(sizeof(double) * sh->dm);
	float	   *pf = palloc(sizeof(float) * sh->g);
	float	   *pmf = palloc(sizeof(float) * sh->dm);
	float	   *grad_p = palloc(sizeof(float) * sh->g);
	float	   *grad_pm = palloc(sizeof(float) * sh->dm);
	float	   *scores = palloc(sizeof(float) * sh->n_items);
	double		worst_score = 0.0;
	double		worst_grad = 0.0;
	double		gmax = 0.0;
	bool		ok = true;
	FoldChunkFn bodies[2] = {fold_chunk_base, NULL};
	const char *names[2] = {"base", "avx2"};

#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
		bodies[1] = fold_chunk_avx2;
#endif
	make_model(&md, sh->g, sh->dm, sh->width, sh->n_hidden, sh->n_items, seed);
	dsl_rng_seed(&rng, seed, 2);
	for (int k = 0; k < sh->g; k++)
		pf[k] = uniform(&rng, 0.6);
	for (int k = 0; k < sh->dm; k++)
		pmf[k] = uniform(&rng, 0.6);
	for (int k = 0; k < sh->g; k++)
		p[k] = pf[k];
	for (int k = 0; k < sh->dm; k++)
		pm[k] = pmf[k];
	for (int t = 0; t < n_pairs; t++)
	{
		pos[t] = (int32) dsl_rng_below(&rng, sh->n_items);
		neg[t] = (int32) dsl_rng_below(&rng, sh->n_items);
	}
	fold_work_init(st, &fw);

	/* the derived rows and the fold-in's forward pass give the score */
	neumf_net_rep(&st->net, st->dm, st->w1_user, NULL, pf, pmf, fw.rep);
	neumf_net_prepare();
	neumf_net_score_all(&st->net, fw.rep, st->tiles, sh->n_items, scores);
	for (int i = 0; i < sh->n_items; i++)
	{
		double		ref = ref_score(&md, p, pm, i);
		double		fwd = fold_forward(st, fw.rep, st->items + (Size) i * st->rep, fw.act[0]);

		worst_score = Max(worst_score, fabs(scores[i] - ref) / (1 + fabs(ref)));
		worst_score = Max(worst_score, fabs(fwd - ref) / (1 + fabs(ref)));
	}
	if (worst_score > 1e-5)
		ok = false;

	/* the gradient, coordinate by coordinate */
	for (int b = 0; b < 2; b++)
	{
		double		loss;
		double		ref;

		if (bodies[b] == NULL)
			continue;
		fold_chunk = bodies[b];
		fold_step_init(st, &fs, pos, neg, n_pairs, &fw, NULL);
		loss = fold_step(&fs, pf, pmf, grad_p, grad_pm);
		ref = ref_objective(&md, p, pm, pos, neg, n_pairs);
		if (fabs(loss - ref) > 1e-5 * (1 + fabs(ref)))
		{
			printf("neumf_fold_check: %s: objective %.9g, reference %.9g\n",
				   names[b], loss, ref);
			ok = false;
		}
		for (int c = 0; c < sh->g + sh->dm; c++)
		{
			double	   *x = c < sh->g ? &p[c] : &pm[c - sh->g];
			double		an = c < sh->g ? grad_p[c] : grad_pm[c - sh->g];
			double		x0 = *x;
			double		h = 1e-6;
			double		up,
						down,
						fd;

			*x = x0 + h;
			up = ref_objective(&md, p, pm, pos, neg, n_pairs);
			*x = x0 - h;
			down = ref_objective(&md, p, pm, pos, neg, n_pairs);
			*x = x0;
			fd = (up - down) / (2 * h);
			gmax = Max(gmax, fabs(fd));
			worst_grad = Max(worst_grad, fabs(an - fd));
			if (fabs(an - fd) > 1e-4 * (1e-2 + fabs(fd)))
			{
				printf("neumf_fold_check: %s: %s[%d]: gradient %.8g, finite difference %.8g\n",
					   names[b], c < sh->g ? "p" : "p'", c < sh->g ? c : c - sh->g, an, fd);
				ok = false;
			}
		}
	}
	printf("neumf_fold_check: g %d dm %d hidden %d (%d", sh->g, sh->dm, sh->n_hidden,
		   sh->width[0]);
	for (int l = 1; l < sh->n_hidden; l++)
		printf(" %d", sh->width[l]);
	printf("): score off by %.1e, gradient by %.1e of max %.3f%s\n",
		   worst_score, worst_grad, gmax, ok ? "" : " FAILED");
	return ok;
}

/* the r-th non-history item, against counting */
static bool
check_nth_other(void)
{
	const int32 hist[] = {0, 1, 5, 6, 7, 12, 19};
	const int	n = lengthof(hist);
	const int	n_items = 20;
	int			r = 0;

	for (int i = 0; i < n_items; i++)
	{
		bool		in = false;

		for (int c = 0; c < n; c++)
			in |= hist[c] == i;
		if (in)
			continue;
		if (fold_nth_other(hist, n, r) != i)
		{
			printf("neumf_fold_check: item %d outside the history is %d, not %d FAILED\n",
				   r, fold_nth_other(hist, n, r), i);
			return false;
		}
		r++;
	}
	printf("neumf_fold_check: the %d items outside a history of %d counted right\n", r, n);
	return true;
}

/*
 * A fold-in: deterministic, a lower objective (over every pair of a history
 * item and another item, in double) than at p = p' = 0, and the history's
 * items above the others on average.
 */
static bool
check_fold_in(void)
{
	const int	width[3] = {8, 6, 4};
	const int	n_items = 200;
	Model		md;
	NeumfState *st = &md.st;
	int32		hist[12];
	int			n = 0;
	float	   *pf = palloc(sizeof(float) * 6);
	float	   *pmf = palloc(sizeof(float) * 5);
	float	   *out = palloc(sizeof(float) * 64);
	float	   *again = palloc(sizeof(float) * 64);
	float	   *scores = palloc(sizeof(float) * n_items);
	int32	   *pos = palloc(sizeof(int32) * 12 * n_items);
	int32	   *neg = palloc(sizeof(int32) * 12 * n_items);
	double		p[6] = {0};
	double		pm[5] = {0};
	int			n_pairs = 0;
	double		at_zero;
	double		found;
	double		in_mean = 0.0;
	double		out_mean = 0.0;
	bool		same;
	bool		ok;

	make_model(&md, 6, 5, width, 3, n_items, 11);
	for (int i = 3; i < n_items && n < 12; i += 17)
		hist[n++] = i;
	neumf_history_vector(&md.m, hist, n, out);
	neumf_history_vector(&md.m, hist, n, again);
	same = memcmp(out, again, sizeof(float) * st->rep) == 0;

	for (int c = 0; c < n; c++)
		for (int i = 0, h = 0; i < n_items; i++)
		{
			if (h < n && hist[h] == i)
			{
				h++;
				continue;
			}
			pos[n_pairs] = hist[c];
			neg[n_pairs++] = i;
		}
	at_zero = ref_objective(&md, p, pm, pos, neg, n_pairs);
	fold_in(st, n_items, hist, n, pf, pmf);
	for (int k = 0; k < 6; k++)
		p[k] = pf[k];
	for (int k = 0; k < 5; k++)
		pm[k] = pmf[k];
	found = ref_objective(&md, p, pm, pos, neg, n_pairs);

	neumf_net_score_all(&st->net, out, st->tiles, n_items, scores);
	for (int i = 0, h = 0; i < n_items; i++)
	{
		if (h < n && hist[h] == i)
		{
			in_mean += scores[i] / n;
			h++;
		}
		else
			out_mean += scores[i] / (n_items - n);
	}
	ok = same && found < at_zero && in_mean > out_mean;
	printf("neumf_fold_check: fold-in of %d items: %s, objective %.4f (%.4f at zero), "
		   "their mean score %.3f against %.3f%s\n",
		   n, same ? "deterministic" : "NOT deterministic", found, at_zero,
		   in_mean, out_mean, ok ? "" : " FAILED");
	return ok;
}

/* for information: a 50-item fold-in at the defaults' shape, Gowalla-sized */
static void
time_fold_in(void)
{
	const int	width[3] = {32, 16, 8};
	Model		md;
	int32		hist[50];
	float	   *out = palloc(sizeof(float) * 128);
	struct timespec t0,
				t1;
	const int	reps = 50;

	make_model(&md, 64, 32, width, 3, 40981, 5);
	for (int c = 0; c < 50; c++)
		hist[c] = c * 811 + 7;
	fold_prepare();
	neumf_history_vector(&md.m, hist, 50, out);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
	for (int r = 0; r < reps; r++)
	{
		hist[0] = r;
		neumf_history_vector(&md.m, hist, 50, out);
	}
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
	printf("neumf_fold_check: a fold-in of 50 items (g 64, dm 32, hidden 32 16 8, 40981 items): %.2f ms CPU\n",
		   ((t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6) / reps);
}

int
main(void)
{
	bool		ok = true;

	for (int s = 0; s < (int) lengthof(shapes); s++)
		ok &= check_shape(&shapes[s], 100 + s);
	ok &= check_nth_other();
	ok &= check_fold_in();
	shim_reset();
	time_fold_in();
	shim_reset();
	return ok ? 0 : 1;
}
