/*
 * lgcn_grad_check.c - LightGCN's training gradient and serving embeddings
 * against a direct float64 computation
 *
 * Built with src/lightgcn.c itself (included below, so that its static step
 * and state are reachable), the BPR layer, the engine and the fuzz
 * harnesses' shim for palloc.  For small graphs, sparse and dense masks,
 * 1 to 3 layers and widths that cover every bfloat16 block of the kernels
 * (16, 32 and 64 columns, and tails), one step with the learning rate 0
 * keeps the ego gradient of every row (as for a DSL round).  The reference
 * here propagates the dense ego embeddings with Â = D^-1/2 A D^-1/2 in
 * float64 and takes the same triples' BPR loss plus the L2 term; each ego
 * entry, active or not, is moved by +-h in it, and (L(w + h) - L(w - h)) / 2h
 * is compared with the step's gradient.  Training propagates bfloat16 rows
 * (lightgcn.c, "Precision"), so the bound is relative to the largest
 * gradient entry of the case, 5e-3 (a bfloat16 rounding moves a value by
 * up to 2^-8 = 3.9e-3 of it; the float32 kernels were within 2e-7); the
 * step's loss is compared too.
 * Serving propagates float32 and must match the reference's final
 * embeddings to 1e-5.  Some cases train on a few pairs only, so the rows
 * beyond the batch's hop ball and the distance filters are exercised.
 */
#include "lightgcn.c"

#include <float.h>
#include <stdio.h>

#include "backend_stubs.h"
#include "shim.h"

/* what lightgcn.c refers to beyond the engine (backend_stubs.c has the rest) */
const Scorer dot_scorer;

/* option parsing and the hyperparameters' JSON are not exercised here */
void
appendStringInfo(StringInfo str, const char *fmt,...)
{
	abort();
}

int
dsl_option_int(const char *key, const JsonbValue *v, int lo, int hi)
{
	abort();
}

typedef struct Case
{
	int			n_users;
	int			n_items;
	int			dim;
	int			layers;
	double		density;
	double		reg;
	int			batch;			/* pairs in the step, 0: all */
} Case;

static const Case cases[] = {
	{8, 13, 40, 3, 0.5, 0.01, 0},	/* a 32-column block and an 8-column tail */
	{6, 9, 16, 2, 1.0, 0.0, 0},
	{7, 11, 69, 3, 0.3, 0.05, 0},	/* 64 + a 5-column tail */
	{5, 7, 6, 1, 0.6, 0.01, 0},	/* tail only */
	{30, 40, 48, 3, 0.5, 0.01, 3},	/* three pairs: most rows beyond a hop */
	{25, 30, 64, 2, 1.0, 0.001, 5},
};

/* 1 to 4 items a user, never all of them; every item has a user */
static Interactions *
make_data(const Case *c, DslRng *rng)
{
	Interactions *d = palloc0(sizeof(Interactions));
	bool	   *has = palloc0(sizeof(bool) * c->n_users * c->n_items);
	int64		n = 0;

	for (int u = 0; u < c->n_users; u++)
		for (int i = 0; i < c->n_items; i++)
			has[u * c->n_items + i] =
				dsl_rng_below(rng, (uint64) c->n_items) < 1 + (uint64) (u % 4);
	for (int i = 0; i < c->n_items; i++)
		has[(i % c->n_users) * c->n_items + i] = true;
	d->n_users = c->n_users;
	d->n_items = c->n_items;
	d->ptr = palloc(sizeof(int64) * (c->n_users + 1));
	d->items = palloc(sizeof(int32) * c->n_users * c->n_items);
	for (int u = 0; u < c->n_users; u++)
	{
		d->ptr[u] = n;
		for (int i = 0; i < c->n_items; i++)
			if (has[u * c->n_items + i])
				d->items[n++] = i;
		Assert(n - d->ptr[u] < c->n_items);
	}
	d->ptr[c->n_users] = n;
	d->n_pairs = n;
	return d;
}

/* the reference: the graph, the step's triples (nodes) and the ego rows */
typedef struct Ref
{
	const LgcnGraph *g;
	int			dim;
	int			layers;
	double		reg;
	int			nt;
	int32	   *tu,
			   *ti,
			   *tj;
	double	   *e0;				/* n x dim */
	double	   *fin;			/* n x dim: final embeddings */
	double	   *cur,
			   *nxt;			/* n x dim each */
} Ref;

/* fin = mean of E0 .. EL, E(k+1) = Â E(k) */
static void
ref_forward(Ref *r)
{
	const LgcnGraph *g = r->g;
	const int	n = g->n,
				dim = r->dim;

	memcpy(r->cur, r->e0, sizeof(double) * n * dim);
	memcpy(r->fin, r->e0, sizeof(double) * n * dim);
	for (int k = 0; k < r->layers; k++)
	{
		for (int a = 0; a < n; a++)
		{
			double	   *out = r->nxt + (Size) a * dim;

			memset(out, 0, sizeof(double) * dim);
			for (int64 q = g->ptr[a]; q < g->ptr[a + 1]; q++)
			{
				int			b = g->adj[q];
				double		w = 1.0 / sqrt((double) (g->ptr[a + 1] - g->ptr[a])) /
					sqrt((double) (g->ptr[b + 1] - g->ptr[b]));

				for (int c = 0; c < dim; c++)
					out[c] += w * r->cur[(Size) b * dim + c];
			}
		}
		memcpy(r->cur, r->nxt, sizeof(double) * n * dim);
		for (Size q = 0; q < (Size) n * dim; q++)
			r->fin[q] += r->cur[q];
	}
	for (Size q = 0; q < (Size) n * dim; q++)
		r->fin[q] /= r->layers + 1;
}

/* mean BPR loss of the triples plus reg/2 * mean of their ego rows' |.|^2 */
static double
ref_loss(Ref *r)
{
	const int	dim = r->dim;
	double		l = 0;

	ref_forward(r);
	for (int t = 0; t < r->nt; t++)
	{
		const double *u = r->fin + (Size) r->tu[t] * dim;
		const double *i = r->fin + (Size) r->ti[t] * dim;
		const double *j = r->fin + (Size) r->tj[t] * dim;
		double		x = 0,
					sq = 0;

		for (int c = 0; c < dim; c++)
		{
			double		u0 = r->e0[(Size) r->tu[t] * dim + c];
			double		i0 = r->e0[(Size) r->ti[t] * dim + c];
			double		j0 = r->e0[(Size) r->tj[t] * dim + c];

			x += u[c] * (i[c] - j[c]);
			sq += u0 * u0 + i0 * i0 + j0 * j0;
		}
		/* softplus(-x), stable */
		l += (x > 0 ? log1p(exp(-x)) : -x + log1p(exp(x))) + 0.5 * r->reg * sq;
	}
	return l / r->nt;
}

static bool
run_case(const Case *c)
{
	DslConfig	cfg;
	DslEngine	e;
	TensorShape shapes[DSL_MAX_TENSORS];
	LgcnOptions o;
	TrainParams p;
	LgcnState  *s;
	Interactions *d;
	DslRng		rng;
	Ref			ref;
	EmbeddingSource users,
				items;
	const float *grad;
	int			n,
				nb,
				nt,
				checked = 0;
	double		gmax = 0,
				worst = 0,
				serve_worst = 0,
				step_loss = 0,
				ref_l,
				loss_err;
	float	   *row;
	const double h = 1e-5;
	bool		ok;

	dsl_threads = 2;
	dsl_rng_seed(&rng, 23, (uint64) c->n_items);
	d = make_data(c, &rng);
	n = c->n_users + c->n_items;
	nb = c->batch > 0 ? c->batch : (int) d->n_pairs;

	unit_grad_config(&cfg, c->density);

	lgcn_init_options(&o);
	o.layers = c->layers;
	memset(&p, 0, sizeof(p));
	p.dim = c->dim;
	p.batch_size = nb;
	p.reg = c->reg;
	p.seed = 3;
	p.options = &o;
	uniform_engine(&e, &cfg, lgcn_tensor_shapes(d, &p, shapes), shapes);
	s = lgcn_create(&e, d, &p);

	/* weights large enough that the scores are not all near 0 */
	for (int t = 0; t < 2; t++)
		for (int64 q = 0; q < e.tensors[t]->budget; q++)
			e.tensors[t]->w[q] = (float) (0.5 * dsl_rng_normal(&rng));

	/* step 4 of the schedule, lr 0: the weights do not move */
	unit_grad_step4(&e, &cfg);
	nt = lgcn_bpr_step(s, s->bpr.pairs, nb, true);
	grad = s->buf[s->layers % 2];
	for (int t = 0; t < nt; t++)
		step_loss += s->bpr.loss[t];
	for (int k = 0; k < s->n_slots; k++)
		step_loss += s->reg_loss[k] * nt;
	step_loss /= nt;

	/* the reference's triples and ego rows */
	ref.g = &s->g;
	ref.dim = c->dim;
	ref.layers = c->layers;
	ref.reg = c->reg;
	ref.nt = nt;
	ref.tu = palloc(sizeof(int32) * nt);
	ref.ti = palloc(sizeof(int32) * nt);
	ref.tj = palloc(sizeof(int32) * nt);
	for (int t = 0; t < nt; t++)
	{
		ref.tu[t] = s->slot_row[s->bpr.trip[t].u];
		ref.ti[t] = s->slot_row[s->bpr.trip[t].i];
		ref.tj[t] = s->slot_row[s->bpr.trip[t].j];
	}
	ref.e0 = palloc0(sizeof(double) * n * c->dim);
	ref.fin = palloc(sizeof(double) * n * c->dim);
	ref.cur = palloc(sizeof(double) * n * c->dim);
	ref.nxt = palloc(sizeof(double) * n * c->dim);
	row = palloc(sizeof(float) * c->dim);
	for (int a = 0; a < n; a++)
	{
		sparse_tensor_row_dense(e.tensors[a < c->n_users ? 0 : 1],
								a < c->n_users ? a : a - c->n_users, row);
		for (int k = 0; k < c->dim; k++)
			ref.e0[(Size) a * c->dim + k] = row[k];
	}
	ref_l = ref_loss(&ref);
	loss_err = fabs(ref_l - step_loss) / fabs(ref_l);

	/* every ego entry, active or not, against the central difference */
	for (Size q = 0; q < (Size) n * c->dim; q++)
		gmax = Max(gmax, fabs((double) grad[q]));
	for (Size q = 0; q < (Size) n * c->dim; q++)
	{
		double		w0 = ref.e0[q],
					lp,
					lm,
					fd,
					err;

		ref.e0[q] = w0 + h;
		lp = ref_loss(&ref);
		ref.e0[q] = w0 - h;
		lm = ref_loss(&ref);
		ref.e0[q] = w0;
		fd = (lp - lm) / (2 * h);
		err = fabs(fd - grad[q]) / gmax;
		worst = Max(worst, err);
		if (err > 5e-3 && worst == err)
			printf("lgcn_grad_check: node %d col %d: gradient %.6g, finite difference %.6g\n",
				   (int) (q / c->dim), (int) (q % c->dim), grad[q], fd);
		checked++;
	}

	/* serving: float32 propagation of the same ego rows */
	lgcn_serving(s, e.tensors, &users, &items);
	ref_forward(&ref);
	for (int a = 0; a < n; a++)
		for (int k = 0; k < c->dim; k++)
		{
			double		want = ref.fin[(Size) a * c->dim + k];
			float		got = a < c->n_users ?
				users.dense[(Size) a * c->dim + k] :
				items.dense[(Size) (a - c->n_users) * c->dim + k];

			serve_worst = Max(serve_worst, fabs(got - want) / (1e-3 + fabs(want)));
		}

	ok = gmax > 0 && worst <= 5e-3 && loss_err <= 5e-3 && serve_worst <= 1e-5;
	printf("lgcn_grad_check: users %d items %d dim %d layers %d density %.1f reg %g, "
		   "%d of %lld pairs: %d entries, largest error %.2e of the largest gradient; "
		   "loss %.2e; serving %.1e%s\n",
		   c->n_users, c->n_items, c->dim, c->layers, c->density, c->reg, nb,
		   (long long) d->n_pairs, checked, worst, loss_err, serve_worst,
		   ok ? "" : " FAILED");
	unit_run_reset_callbacks();
	shim_reset();
	return ok;
}

int
main(void)
{
	int			failed = 0;

	for (int i = 0; i < lengthof(cases); i++)
		if (!run_case(&cases[i]))
			failed++;
	return failed ? 1 : 0;
}
