/*
 * multvae_grad_check.c - MultVAE's gradients against central finite
 * differences of its loss
 *
 * Built with src/multvae.c itself (included below, so that its static step
 * functions are reachable), the engine, and the fuzz harnesses' shim for
 * palloc.  A small data set (users with histories of 2 to 6 of 11 items),
 * sparse masks (density 0.6) and dropout, the KL term weighted: one step
 * with the learning rate 0 keeps every tensor's dense gradient (as for a
 * DSL round), and each active weight is then moved by +-h with the same
 * dropout and eps draws to compare (L(w + h) - L(w - h)) / 2h with it.
 * Several sizes so that the output layer's blocks and the worker parts are
 * all exercised (items split over two threads, blocks shorter than
 * VAE_BLOCK and not); the logits over W4's stored entries.  Then two
 * trainings compared (compare_runs()): lazy against eager Adam for W1, and
 * the output layer by stored entries against densified sgemm.  The
 * float32 products unless named (dsl_rec.debug_bf16_products off): the
 * bfloat16 ones are checked once more within their rounding.
 */
#include "multvae.c"

#include <signal.h>
#include <stdio.h>

#include "mem_peak.h"
#include "backend_stubs.h"
#include "shim.h"

/* what multvae.c refers to beyond the engine (backend_stubs.c has the rest) */
const Scorer multvae_scorer;

void
dsl_blas_prepare(bool big)
{
	openblas_set_num_threads(1);
}

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

double
dsl_option_number(const char *key, const JsonbValue *v, double lo, bool lo_incl,
				  double hi, bool hi_incl, const char *valid)
{
	abort();
}

typedef struct Case
{
	int			n_users;
	int			n_items;
	int			dim;
	int			latent;
	double		density;
	double		dropout;
} Case;

static const Case cases[] = {
	{7, 11, 7, 3, 0.6, 0.3},
	{9, 150, 10, 4, 0.5, 0.5},	/* more than a block of items per part */
	{5, 13, 6, 2, 1.0, 0.0},
};

static Interactions *
make_data(const Case *c, DslRng *rng)
{
	Interactions *d = palloc0(sizeof(Interactions));
	int64		n = 0;

	d->n_users = c->n_users;
	d->n_items = c->n_items;
	d->ptr = palloc(sizeof(int64) * (c->n_users + 1));
	d->items = palloc(sizeof(int32) * c->n_users * c->n_items);
	for (int u = 0; u < c->n_users; u++)
	{
		int			want = 2 + (int) dsl_rng_below(rng, 5);

		d->ptr[u] = n;
		/* each item with probability want / n_items, at least one */
		for (int i = 0; i < c->n_items; i++)
			if (dsl_rng_below(rng, (uint64) c->n_items) < (uint64) want || (i == c->n_items - 1 && n == d->ptr[u]))
				d->items[n++] = i;
	}
	d->ptr[c->n_users] = n;
	d->n_pairs = n;
	return d;
}

/* the mean loss of the step's users, with the draws of `at` */
static double
loss_at(VaeState *s, const int32 *users, int n, const DslRng *at)
{
	int			used;
	double		l;

	s->rng = *at;
	s->w_live = false;			/* the caller moved a weight behind Adam's back */
	l = vae_step(s, users, n, false, &used);
	return l / used;
}

/*
 * With bf16 the output layer's products take bfloat16 operands
 * (dense_block_gemm_bf16, the logits too).  Finite differences cannot check
 * that step: the rounding of w +- h to 8 significant bits moves the loss by
 * as much as h does.  So its gradients are compared with the same step's in
 * float32 (the one checked against the finite differences), tensor by
 * tensor within a share of the tensor's largest entry.
 */
static bool
run_case(const Case *c, bool bf16)
{
	DslConfig	cfg;
	DslEngine	e;
	TensorShape shapes[DSL_MAX_TENSORS];
	VaeOptions	o;
	TrainParams p;
	VaeState   *s;
	Interactions *d;
	DslRng		rng,
				at;
	int32	   *users;
	float	   *grad[N_TENSORS];
	int			used,
				checked = 0,
				bad = 0;
	double		worst = 0;
	const float h = 1e-2f;

	dsl_threads = 2;
	dsl_debug_bf16_products = bf16;
	dsl_rng_seed(&rng, 11, (uint64) c->n_items);
	d = make_data(c, &rng);

	unit_grad_config(&cfg, c->density);

	vae_init_options(&o);
	o.latent = c->latent;
	o.dropout = c->dropout;
	o.anneal_cap = 0.5;
	o.anneal_steps = 10;
	memset(&p, 0, sizeof(p));
	p.dim = c->dim;
	p.batch_size = c->n_users;
	p.reg = 0;
	p.seed = 3;
	p.options = &o;
	uniform_engine(&e, &cfg, vae_tensor_shapes(d, &p, shapes), shapes);
	s = vae_create(&e, d, &p);
	s->lazy_w1 = false;			/* the same step is evaluated again and again */
	/* the logits over the stored entries, or (bf16) in bfloat16 */
	s->sparse_fwd = bf16 ? 0.0 : 1.1;

	/* weights large enough that tanh and the softmax are not flat */
	for (int t = 0; t < N_TENSORS; t++)
		for (int64 k = 0; k < e.tensors[t]->budget; k++)
			e.tensors[t]->w[k] = (float) (0.4 * dsl_rng_normal(&rng));

	/* step 4 of the schedule, lr 0: the weights do not move */
	unit_grad_step4(&e, &cfg);
	users = palloc(sizeof(int32) * c->n_users);
	for (int u = 0; u < c->n_users; u++)
		users[u] = c->n_users - 1 - u;

	at = s->rng;
	s->g_out = NULL;
	(void) vae_step(s, users, c->n_users, true, &used);

	/* the step's gradients, before the evaluations below overwrite them */
	for (int t = 0; t < N_TENSORS; t++)
	{
		SparseTensor *x = e.tensors[t];
		Size		n = (Size) x->n_rows * x->dim;

		grad[t] = palloc0(sizeof(float) * n);
		if (t == T_W4)
			memcpy(grad[t], s->g_out, sizeof(float) * n);
		else if (t == T_W1)
		{
			for (int r = 0; r < x->n_rows; r++)
				if (s->stamp_of[r] == s->stamp)
					memcpy(grad[t] + (Size) r * x->dim,
						   s->g1 + (Size) s->slot_of[r] * s->H, sizeof(float) * x->dim);
		}
		else
			memcpy(grad[t], s->g[t], sizeof(float) * n);
	}

	if (bf16)
	{
		/* the same step in float32, from the same draws */
		s->bf16 = false;
		s->rng = at;
		s->w_live = false;
		(void) vae_step(s, users, c->n_users, true, &used);
		for (int t = 0; t < N_TENSORS; t++)
		{
			SparseTensor *x = e.tensors[t];
			double		diff = 0,
						top = 0;

			for (int r = 0; r < x->n_rows; r++)
			{
				const float *ref = t == T_W4 ? s->g_out + (Size) r * x->dim :
				t == T_W1 ? (s->stamp_of[r] == s->stamp ?
							 s->g1 + (Size) s->slot_of[r] * s->H : NULL) :
				s->g[t] + (Size) r * x->dim;

				for (int64 k = x->row_ptr[r]; k < x->row_ptr[r + 1] && ref; k++)
				{
					double		g = grad[t][(Size) r * x->dim + x->col[k]];

					diff = Max(diff, fabs(g - ref[x->col[k]]));
					top = Max(top, fabs((double) ref[x->col[k]]));
					checked++;
				}
			}
			worst = Max(worst, diff / Max(top, 1e-30));
		}
	}

	for (int t = 0; t < N_TENSORS && !bf16; t++)
	{
		SparseTensor *x = e.tensors[t];

		for (int r = 0; r < x->n_rows; r++)
			for (int64 k = x->row_ptr[r]; k < x->row_ptr[r + 1]; k++)
			{
				int			col = x->col[k];
				float		w0 = x->w[k];
				double		lp,
							lm,
							fd,
							g,
							err;

				g = grad[t][(Size) r * x->dim + col];

				x->w[k] = w0 + h;
				lp = loss_at(s, users, c->n_users, &at);
				x->w[k] = w0 - h;
				lm = loss_at(s, users, c->n_users, &at);
				x->w[k] = w0;
				fd = (lp - lm) / (2.0 * h);
				err = fabs(fd - g) / (1e-2 + fabs(fd));
				worst = Max(worst, err);
				checked++;
				if (err > 2e-2)
				{
					if (bad < 5)
						printf("multvae_grad_check: tensor %s row %d col %d: gradient %.6g, finite difference %.6g\n",
							   x->name, r, col, g, fd);
					bad++;
				}
			}
	}
	/* a bfloat16 rounding moves an operand by up to 2^-8 = 3.9e-3 of it */
	if (bf16 && worst > 2e-2)
		bad++;
	if (bf16)
		printf("multvae_grad_check: bfloat16 products, users %d items %d dim %d latent %d "
			   "density %.1f dropout %.1f: %d weights, largest difference from float32 "
			   "%.2e of the tensor's largest gradient%s\n",
			   c->n_users, c->n_items, c->dim, c->latent, c->density, c->dropout,
			   checked, worst, bad ? " FAILED" : "");
	else
		printf("multvae_grad_check: users %d items %d dim %d latent %d density %.1f dropout %.1f: "
			   "%d weights, largest relative error %.2e%s\n",
			   c->n_users, c->n_items, c->dim, c->latent, c->density, c->dropout,
			   checked, worst, bad ? " FAILED" : "");
	dsl_debug_bf16_products = false;
	unit_run_reset_callbacks();
	shim_reset();
	return bad == 0;
}

/* what two runs of compare_runs() share */
typedef struct RunSpec
{
	double		density;
	int			interval;		/* steps between rounds */
	int			batch;
	double		reg;
	uint64		data_seed;
} RunSpec;

/*
 * 3 epochs of training from the same seeds, once with tweak(s, 0) and once
 * with tweak(s, 1) after vae_create(): the weights must agree within 1e-4 of
 * the largest.
 */
static bool
compare_runs(const Case *c, const RunSpec *r, void (*tweak) (VaeState *s, int variant),
			 const char *what)
{
	float	   *w[2][N_TENSORS];
	int64		budget[N_TENSORS];
	double		worst = 0,
				wmax = 0;
	DslRng		rng;
	Interactions *d;

	dsl_threads = 2;
	dsl_rng_seed(&rng, r->data_seed, (uint64) c->n_items);
	d = make_data(c, &rng);
	for (int variant = 0; variant < 2; variant++)
	{
		DslConfig	cfg;
		DslEngine	e;
		TensorShape shapes[DSL_MAX_TENSORS];
		VaeOptions	o;
		TrainParams p;
		VaeState   *s;

		memset(&cfg, 0, sizeof(cfg));
		cfg.density = r->density;
		cfg.dynamic = true;
		cfg.growth = GROWTH_GRADIENT;
		cfg.schedule = SCHEDULE_COSINE;
		cfg.update_ratio = 0.3;
		cfg.update_interval = r->interval;
		cfg.total_steps = 3 * ((c->n_users + r->batch - 1) / r->batch);
		cfg.seed = 5;
		cfg.init_std = 0.1f;
		cfg.adam = (AdamConfig) {0.01f, 0.9f, 0.999f, 1e-8f};
		cfg.lr_min = 0.0001;
		vae_init_options(&o);
		o.latent = c->latent;
		o.dropout = c->dropout;
		memset(&p, 0, sizeof(p));
		p.dim = c->dim;
		p.batch_size = r->batch;
		p.reg = r->reg;
		p.seed = 3;
		p.options = &o;
		uniform_engine(&e, &cfg, vae_tensor_shapes(d, &p, shapes), shapes);
		s = vae_create(&e, d, &p);
		tweak(s, variant);
		for (int ep = 0; ep < 3; ep++)
			(void) vae_train_epoch(s);
		for (int t = 0; t < N_TENSORS; t++)
		{
			budget[t] = e.tensors[t]->budget;
			w[variant][t] = palloc(sizeof(float) * budget[t]);
			memcpy(w[variant][t], e.tensors[t]->w, sizeof(float) * budget[t]);
		}
		unit_run_reset_callbacks();
	}
	for (int t = 0; t < N_TENSORS; t++)
		for (int64 k = 0; k < budget[t]; k++)
		{
			worst = Max(worst, fabs(w[0][t][k] - w[1][t][k]));
			wmax = Max(wmax, fabs(w[0][t][k]));
		}
	printf("multvae_grad_check: %s, users %d items %d reg %g: "
		   "largest difference %.2e of max |w| %.3f%s\n", what, c->n_users, c->n_items,
		   r->reg, worst, wmax, worst <= 1e-4 * wmax ? "" : " FAILED");
	shim_reset();
	return worst <= 1e-4 * wmax;
}

/*
 * Lazy Adam for W1 (reg 0: rows outside a step's inputs caught up when next
 * used, before a round and at the epoch's end) against Adam on every row
 * every step, with rounds: the same weights up to float rounding (the
 * catch-up leaves eps out of the idle steps; sparse_tensor.h).
 */
static void
eager_w1(VaeState *s, int variant)
{
	if (variant == 0)
		s->lazy_w1 = false;
}

/*
 * The output layer's products over its stored entries (sparse_block.h)
 * against its densified blocks through sgemm, every block one way and then
 * the other: the same weights up to float rounding; with and without the
 * L2 term, a batch of 80 (a 64-wide and a 16-wide slab).  Without rounds: a
 * round's step keeps the dense backward, and with rounds the float
 * differences may flip a tie among the smallest weights (run_case() checks
 * the sparse forward under a round's gradient).
 */
static void
sparse_products(VaeState *s, int variant)
{
	s->sparse_fwd = s->sparse_bwd = variant ? 1.1 : 0.0;
}

int
main(void)
{
	int			failed = 0;
	/* batches of 2: most rows of W1 idle at each step */
	const RunSpec lazy = {0.5, 4, 2, 0.0, 11};

	/* 400 users: 5 steps of 80 an epoch; 2 000 items, 16 chunks of 2 blocks */
	const Case	big = {400, 2000, 33, 4, 0.3, 0.5};
	const RunSpec sparse = {0.3, 1000, 80, 0.0, 13};
	const RunSpec sparse_reg = {0.3, 1000, 80, 0.01, 13};

	for (int i = 0; i < lengthof(cases); i++)
		if (!run_case(&cases[i], false))
			failed++;
	if (dense_block_bf16())
	{
		for (int i = 0; i < lengthof(cases); i++)
			if (!run_case(&cases[i], true))
				failed++;
	}
	else
		printf("multvae_grad_check: no AVX512_BF16 on this CPU, bfloat16 products not checked\n");
	if (!compare_runs(&cases[1], &lazy, eager_w1, "lazy W1 against every row every step"))
		failed++;
	if (!compare_runs(&big, &sparse, sparse_products,
					  "output layer by stored entries against densified sgemm") ||
		!compare_runs(&big, &sparse_reg, sparse_products,
					  "output layer by stored entries against densified sgemm"))
		failed++;
	return failed ? 1 : 0;
}
