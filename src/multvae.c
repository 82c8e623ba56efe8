/*
 * multvae.c - MultVAE (Liang et al., WWW 2018) on DSL-sparse weight tensors
 *
 * A user is her history x (a 0/1 row over the catalogue).  Training, per
 * mini-batch of users:
 *
 *   h1     = tanh(drop(x / |x|) W1 + b1)          W1: n_items x H (rows: items)
 *   mu, lv = h1 W2 + b2                           W2: H x 2L
 *   z      = mu + eps * exp(lv / 2)               eps ~ N(0, 1)
 *   h3     = tanh(z W3 + b3)                      W3: L x H
 *   logits = [h3, 1] W4^T                         W4: n_items x (H + 1)
 *   loss   = mean over users of
 *            -sum_i x_i log_softmax(logits)_i + beta * KL(N(mu, e^lv) | N(0, I))
 *
 * with dropout drop() of rate `dropout` on the normalised input (kept
 * entries scaled by 1 / (1 - dropout)) and the KL weight beta rising
 * linearly from 0 to anneal_cap over anneal_steps optimizer steps (default:
 * the first two thirds of the schedule), then constant.  W4's last column is
 * the output bias, so an item's row of W4 is its serving row and a user's
 * serving row is [h3(mu), 1] (no dropout, z = mu): recommend, score,
 * evaluate and ORDER BY <#> rank by the decoder's logits exactly.
 *
 * All seven tensors (W1, b1, W2, b2, W3, b3, W4 with its bias column) are
 * DSL tensors: active entries only, each with its exact budget.  The output
 * layer dominates (n_items x (H + 1), and every step touches all of it):
 * its items are split into VAE_CHUNKS fixed chunks shared out over the
 * worker pool, and each worker densifies VAE_BLOCK rows of W4 at a time
 * into a small buffer and multiplies them in that thread (dense_block.h:
 * an AVX-512 kernel where the CPU has one, else sgemm; h3 and the logits
 * are kept transposed, one row of batch floats per hidden unit or item),
 * so that memory follows the density while the products run at dense
 * speed (their cost is the dense one at any density).  The
 * input layer is a gather-sum of the kept items' rows.  The small middle
 * layers are densified per step and multiplied with BLAS.  Adam updates
 * every active entry every step, as dense Adam would (rows without a
 * gradient still move by their momentum).  A DSL round regrows by the
 * dense gradient of the step before it.  Partial sums are per chunk and
 * added in chunk order: results depend on the seed, not on the threads.
 * test/unit/multvae_grad_check.c checks every gradient against finite
 * differences of the loss.
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include <cblas.h>

#include "miscadmin.h"

#include "dsl_rec.h"
#include "hugepage.h"
#include "model_ops.h"
#include "scorer.h"
#include "dense_block.h"
#include "mem_peak.h"
#include "row_groups.h"
#include "sparse_block.h"

/* the tensors, in registration order */
enum
{
	T_W1, T_B1, T_W2, T_B2, T_W3, T_B3, T_W4, N_TENSORS
};

/* batch rows are padded to a multiple of this many floats */
#define VAE_PAD 16
/* W4's rows densified at a time for the output layer's products */
#define VAE_BLOCK 64
/*
 * The output layer's items are split into this many chunks, whatever the
 * number of threads: partial sums are kept per chunk and added in chunk
 * order, so that results depend on the seed only.
 */
#define VAE_CHUNKS 16
/*
 * The middle layers' products are split into this many column chunks, run
 * by the workers; fixed for the same reason
 */
#define VAE_MID_CHUNKS 8
/*
 * A block of W4 sparser than this is multiplied over its stored entries
 * (sparse_block.h) rather than densified for dense_block_gemm: in the
 * forward product, and below the second bound in the backward ones too
 * (measured crossovers on the ML-1M shapes, docs/multvae.md); a round's
 * step keeps the dense backward, which gives the whole gradient
 */
#define VAE_SPARSE_FWD 0.3
#define VAE_SPARSE_BWD 0.25
/* the same against the bfloat16 products, twice as fast as float32's */
#define VAE_SPARSE_FWD_BF16 0.2
#define VAE_SPARSE_BWD_BF16 0.125
/*
 * growth_batches NULL: the output layer's regrowth gradient is summed over
 * this many steps before a round (at most the interval; regrowth_window)
 */
#define VAE_GROWTH_BATCHES 64

/* MultVAE's options (dsl.train's options jsonb) */
typedef struct VaeOptions
{
	int			latent;			/* L, the latent dimension */
	double		dropout;		/* input dropout rate, [0, 1) */
	double		anneal_cap;		/* the KL weight's final value */
	int64		anneal_steps;	/* steps to reach it; 0: 2/3 of the schedule */
	int			growth_batches; /* steps in W4's regrowth gradient; 0 until
								 * finish_options sets the default */
} VaeOptions;

typedef struct VaeState
{
	DslEngine  *engine;
	const Interactions *data;
	WorkerPool *pool;
	int			n_parts;
	MemoryContext mcxt;
	int			H;				/* hidden width (dim - 1) */
	int			L;				/* latent width */
	int			D;				/* dim: H + 1, W4's width */
	int			n_items;
	int			batch;			/* users per step (cap) */
	int			bs;				/* padded row length of the transposed arrays */
	float		reg;
	float		dropout;
	double		anneal_cap;
	int64		anneal_steps;
	DslRng		rng;			/* user order, dropout, eps */
	int32	   *order;			/* users, shuffled per epoch */

	/* the current step */
	int			nb;				/* users in it (with at least one item) */
	int32	   *users;			/* [batch] */
	float	   *val;			/* [batch] the input value of a kept item */
	int64	   *in_ptr;			/* [batch + 1] offsets into in_item */
	int32	   *in_item;		/* kept items */
	int64		in_cap;
	float	   *h1;				/* [batch x H] */
	float	   *enc;			/* [batch x 2L]: mu, lv */
	float	   *eps;			/* [batch x L] */
	float	   *z;				/* [batch x L] */
	float	   *h3;				/* [bs x D] the decoder's hidden units, and a
								 * last column of ones (users) or zeros */
	float	   *h3t;			/* [D x bs] h3 transposed, last row ones */
	float	   *logt;			/* [n_items x bs] logits, then their gradient */
	float	   *pmax;			/* [VAE_CHUNKS x bs] per-chunk maxima, then sums */
	float	   *mx;				/* [bs] per user: max logit */
	float	   *coef;			/* [bs] */
	double	   *kl;				/* [batch] */
	float	   *dh3t;			/* [VAE_CHUNKS x D x bs] per-chunk d loss / d h3 */
	float	   *dh3;			/* [batch x H] */
	float	   *dz;				/* [batch x L] */
	float	   *denc;			/* [batch x 2L] */
	float	   *dh1;			/* [batch x H] */
	float	   *scratch;		/* [n_parts x sw] one row per part */
	int			sw;				/* Max(D, 2L) */
	float	   *wblock;			/* [n_parts x VAE_BLOCK x D] W4 rows, dense */
	float	   *gblock;			/* [n_parts x VAE_BLOCK x D] their gradient */

	/*
	 * The output layer's products in bfloat16 (dense_block_gemm_bf16), when
	 * bf16: the operands packed as word pairs along their sums
	 */
	bool		bf16;
	int			dw;				/* (D + 1) / 2: words of a row of D values */
	uint32	   *h3t_w;			/* [dw x bs] h3t's rows paired (down users) */
	uint32	   *h3_w;			/* [bs / 2 x D] h3's rows paired */
	uint32	   *wrow_w;			/* [n_parts x VAE_BLOCK x dw] W4's block, rows */
	uint32	   *wpair_w;		/* [n_parts x VAE_BLOCK / 2 x D] its rows paired */
	uint32	   *grow_w;			/* [n_parts x VAE_BLOCK x bs / 2] G's rows */
	uint32	   *gpair_w;		/* [n_parts x VAE_BLOCK / 2 x bs] its rows paired */
	bool		round_due;
	int			growth_batches; /* steps in W4's regrowth gradient */
	bool		sum_g_out;		/* this step adds W4's gradient to g_out */
	float	   *g_out;			/* [n_items x D] W4's dense gradient, summed
								 * over the steps of the regrowth window, or
								 * the round step's alone */

	/* the middle layers densified, and their gradients */
	float	   *w[N_TENSORS];	/* dense copies of tensors 1..5 */
	int			claim;			/* the current run's next chunk (vae_run) */
	double		sparse_fwd;		/* VAE_SPARSE_FWD, VAE_SPARSE_BWD (a test */
	double		sparse_bwd;		/* may force either path) */
	bool		w_live;			/* w holds the live tensors' weights (Adam
								 * keeps it so; a round or serving does not) */
	float	   *g[N_TENSORS];	/* their gradients (dense, whole tensor) */

	/* W1's rows touched by the step's inputs */
	int32	   *slot_of;		/* [n_items] */
	int32	   *stamp_of;		/* [n_items] */
	int32		stamp;
	int32	   *slot_row;		/* [slot_cap] */
	int64	   *slot_ptr;		/* [slot_cap + 1] its batch users, offsets */
	int32	   *slot_user;		/* [in_cap] the users (batch rows), ascending */
	int			n_slots;
	int64		slot_cap;
	float	   *g1;				/* [slot_cap x H] */
	RowGroups	w1_groups;		/* W1's and W4's rows as column-group masks */
	RowGroups	w4_groups;
	float	   *packed;			/* [n_parts x D] a row's gradient, packed */

	/*
	 * With reg 0 a row of W1 outside the step's inputs has a zero gradient:
	 * it is caught up (AdamCatchUp) when next used, before a round and at
	 * the epoch's end, instead of being stepped every step
	 */
	bool		lazy_w1;
	AdamCatchUp cu;

	float	   *serve_users;	/* [n_users x D] (serving) */
} VaeState;

static int
round_up(int n, int m)
{
	return (n + m - 1) / m * m;
}

/* ---------------------------------------------------------------------------
 * Options
 * ---------------------------------------------------------------------------
 */

static void
vae_init_options(void *opts)
{
	VaeOptions *o = (VaeOptions *) opts;

	o->latent = 200;
	o->dropout = 0.5;
	o->anneal_cap = 0.2;
	o->anneal_steps = 0;
	o->growth_batches = 0;
}

static bool
vae_set_option(void *opts, const char *key, const JsonbValue *value)
{
	VaeOptions *o = (VaeOptions *) opts;

	if (strcmp(key, "latent") == 0)
		o->latent = dsl_option_int(key, value, 1, DSL_MAX_DIM / 2);
	else if (strcmp(key, "dropout") == 0)
		o->dropout = dsl_option_number(key, value, 0, true, 1, false, "[0, 1)");
	else if (strcmp(key, "anneal_cap") == 0)
		o->anneal_cap = dsl_option_number(key, value, 0, true, 100, true, "[0, 100]");
	else if (strcmp(key, "anneal_steps") == 0)
		o->anneal_steps = dsl_option_int(key, value, 1, INT_MAX);
	else if (strcmp(key, "growth_batches") == 0)
		o->growth_batches = dsl_option_int(key, value, 1, 1000000);
	else
		return false;
	return true;
}

static void
vae_write_hyperparams(StringInfo s, const void *opts)
{
	const VaeOptions *o = (const VaeOptions *) opts;

	appendStringInfo(s, ", \"latent\": %d, \"dropout\": %.17g, \"anneal_cap\": %.17g",
					 o->latent, o->dropout, o->anneal_cap);
	/* null: two thirds of the schedule */
	if (o->anneal_steps > 0)
		appendStringInfo(s, ", \"anneal_steps\": %lld", (long long) o->anneal_steps);
	else
		appendStringInfoString(s, ", \"anneal_steps\": null");
	appendStringInfo(s, ", \"growth_batches\": %d", o->growth_batches);
}

/* W4's regrowth window: VAE_GROWTH_BATCHES steps, at most the interval */
static void
vae_finish_options(void *opts, const TrainParams *p)
{
	VaeOptions *o = (VaeOptions *) opts;

	if (o->growth_batches == 0)
		o->growth_batches = (int) Min((int64) VAE_GROWTH_BATCHES,
									  Max(p->update_interval, (int64) 1));
}

/*
 * 64 users, halved while an epoch would have fewer than 32 steps (down to
 * 16): Adam needs steps (the reference takes 16 users a step), and each
 * step costs a pass over every active entry (docs/multvae.md, "Options and
 * defaults").
 */
static int
vae_default_batch_size(const Interactions *d)
{
	int			b = 64;

	while (b > 16 && d->n_users / b < 32)
		b /= 2;
	return b;
}

static int64
vae_steps_per_epoch(const Interactions *d, const TrainParams *p)
{
	return (d->n_users + p->batch_size - 1) / p->batch_size;
}

static int
vae_tensor_shapes(const Interactions *d, const TrainParams *p, TensorShape *shapes)
{
	int			H = p->dim - 1;
	int			L = ((const VaeOptions *) p->options)->latent;

	shapes[T_W1] = (TensorShape) {d->n_items, H};
	shapes[T_B1] = (TensorShape) {1, H};
	shapes[T_W2] = (TensorShape) {H, 2 * L};
	shapes[T_B2] = (TensorShape) {1, 2 * L};
	shapes[T_W3] = (TensorShape) {L, H};
	shapes[T_B3] = (TensorShape) {1, H};
	shapes[T_W4] = (TensorShape) {d->n_items, p->dim};
	return N_TENSORS;
}

static int
cmp_int64_desc(const void *a, const void *b)
{
	int64		x = *(const int64 *) a,
				y = *(const int64 *) b;

	return (x < y) - (x > y);
}

/* the most pairs one step can hold: the `batch` longest histories' */
static int64
vae_batch_pairs(const Interactions *d, int batch)
{
	int64	   *len = palloc_extended(sizeof(int64) * Max(d->n_users, 1), MCXT_ALLOC_HUGE);
	int64		cap = 0;
	int			n = d->n_users;

	for (int u = 0; u < n; u++)
		len[u] = d->ptr[u + 1] - d->ptr[u];
	qsort(len, n, sizeof(int64), cmp_int64_desc);
	for (int k = 0; k < Min(batch, n); k++)
		cap += len[k];
	pfree(len);
	return Max(cap, 1);
}

static Size
vae_work_bytes(const Interactions *d, const TrainParams *p)
{
	int			H = p->dim - 1,
				D = p->dim,
				L = ((const VaeOptions *) p->options)->latent,
				B = p->batch_size,
				bs = round_up(B, VAE_PAD),
				parts = worker_pool_threads(dsl_threads);
	int64		pairs = vae_batch_pairs(d, B);
	Size		n = 0;

	n += (Size) d->n_users * sizeof(int32);	/* order */
	n += (Size) B * (sizeof(int32) + sizeof(float) + sizeof(int64) + sizeof(double));
	n += (Size) pairs * 2 * sizeof(int32);	/* in_item, slot_user */
	n += (Size) B * (3 * H + 5 * L + H) * sizeof(float);	/* h1 enc eps z h3 dh3 dz denc
															 * dh1 */
	n += (Size) B * H * sizeof(float);
	n += (Size) D * bs * sizeof(float); /* h3t */
	n += (Size) d->n_items * bs * sizeof(float);	/* logt */
	n += (Size) (VAE_CHUNKS + 3) * bs * sizeof(float);
	n += (Size) VAE_CHUNKS * D * bs * sizeof(float);	/* dh3t */
	n += (Size) parts * (Max(D, 2 * L) + 2 * VAE_BLOCK * D) * sizeof(float);
	/* bfloat16 operands (dense_block_gemm_bf16) */
	n += (Size) ((D + 1) / 2 * bs + bs / 2 * D) * sizeof(uint32);
	n += (Size) parts * VAE_BLOCK * ((D + 1) / 2 + D / 2 + 1 + bs) * sizeof(uint32);
	n += 2 * (Size) (H + 2 * H * L + 2 * L + L * H + H) * sizeof(float);	/* w, g */
	n += (Size) d->n_items * 2 * sizeof(int32);
	/* W1's rows a step touches: at most the items of its pairs */
	n += (Size) Min(pairs, (int64) d->n_items) * (sizeof(int32) + sizeof(int64) + H * sizeof(float));
	n += (Size) d->n_items * D * sizeof(float); /* g_out, during a round */
	n += (Size) d->n_users * D * sizeof(float); /* serving rows */
	n += (Size) d->n_items * sizeof(int64); /* W1's last steps */
	n += row_groups_bytes(d->n_items, H) + row_groups_bytes(d->n_items, D) +
		(Size) parts * D * sizeof(float);
	return n;
}

/* ---------------------------------------------------------------------------
 * Set-up
 * ---------------------------------------------------------------------------
 */

static float *
alloc_floats(Size n, bool zero)
{
	return dsl_alloc_huge(Max(n, 1) * sizeof(float), zero);
}

/*
 * Xavier's normal initialisation (std sqrt(2 / (fan_in + fan_out))), scaled
 * by init_std / 0.1 so that the common option keeps a meaning: the default
 * 0.1 is exactly Xavier's.  Biases start at a thousandth of that.
 */
static void
scale_init(SparseTensor *t, double fan_in, double fan_out, bool bias)
{
	double		want = sqrt(2.0 / (fan_in + fan_out)) * (bias ? 1e-3 : 1.0);
	float		f = (float) (want / 0.1);	/* t was drawn with init_std */

	for (int64 k = 0; k < t->budget; k++)
		t->w[k] *= f;
}

static void *
vae_create(DslEngine *e, const Interactions *d, const TrainParams *p)
{
	VaeState   *s = palloc0(sizeof(VaeState));
	const VaeOptions *o = (const VaeOptions *) p->options;
	int			H = p->dim - 1,
				L = o->latent,
				D = p->dim,
				B = p->batch_size;

	s->engine = e;
	s->data = d;
	s->pool = e->pool;
	s->n_parts = worker_pool_size(e->pool);
	s->mcxt = CurrentMemoryContext;
	s->H = H;
	s->L = L;
	s->D = D;
	s->n_items = d->n_items;
	s->batch = B;
	s->bs = round_up(B, VAE_PAD);
	s->reg = (float) p->reg;
	s->dropout = (float) o->dropout;
	s->anneal_cap = o->anneal_cap;
	s->anneal_steps = o->anneal_steps;
	s->growth_batches = Max(1, o->growth_batches);
	dsl_rng_seed(&s->rng, p->seed, 0x7661650000ULL);

	dsl_engine_add_tensor(e, "enc_in", d->n_items, H);
	dsl_engine_add_tensor(e, "enc_in_bias", 1, H);
	dsl_engine_add_tensor(e, "enc_out", H, 2 * L);
	dsl_engine_add_tensor(e, "enc_out_bias", 1, 2 * L);
	dsl_engine_add_tensor(e, "dec_in", L, H);
	dsl_engine_add_tensor(e, "dec_in_bias", 1, H);
	dsl_engine_add_tensor(e, "dec_out", d->n_items, D);
	scale_init(e->tensors[T_W1], d->n_items, H, false);
	scale_init(e->tensors[T_B1], d->n_items, H, true);
	scale_init(e->tensors[T_W2], H, 2 * L, false);
	scale_init(e->tensors[T_B2], H, 2 * L, true);
	scale_init(e->tensors[T_W3], L, H, false);
	scale_init(e->tensors[T_B3], L, H, true);
	scale_init(e->tensors[T_W4], H, d->n_items, false);

	s->order = palloc_extended(sizeof(int32) * Max(d->n_users, 1), MCXT_ALLOC_HUGE);
	for (int u = 0; u < d->n_users; u++)
		s->order[u] = u;
	s->users = palloc(sizeof(int32) * B);
	s->val = palloc(sizeof(float) * B);
	s->kl = palloc(sizeof(double) * B);
	s->in_ptr = palloc(sizeof(int64) * (B + 1));
	s->in_cap = vae_batch_pairs(d, B);
	s->in_item = palloc_extended(sizeof(int32) * s->in_cap, MCXT_ALLOC_HUGE);
	s->h1 = alloc_floats((Size) B * H, true);
	s->enc = alloc_floats((Size) B * 2 * L, true);
	s->eps = alloc_floats((Size) B * L, true);
	s->z = alloc_floats((Size) B * L, true);
	s->h3 = alloc_floats((Size) s->bs * D, true);
	s->h3t = alloc_floats((Size) D * s->bs, true);
	s->logt = alloc_floats((Size) d->n_items * s->bs, true);
	s->pmax = alloc_floats((Size) VAE_CHUNKS * s->bs, true);
	s->mx = alloc_floats(s->bs, true);
	s->coef = alloc_floats(s->bs, true);
	s->dh3t = alloc_floats((Size) VAE_CHUNKS * D * s->bs, true);
	s->dh3 = alloc_floats((Size) B * H, true);
	s->dz = alloc_floats((Size) B * L, true);
	s->denc = alloc_floats((Size) B * 2 * L, true);
	s->dh1 = alloc_floats((Size) B * H, true);
	s->sw = Max(D, 2 * L);
	s->scratch = alloc_floats((Size) s->n_parts * s->sw, true);
	s->wblock = alloc_floats((Size) s->n_parts * VAE_BLOCK * D, true);
	s->gblock = alloc_floats((Size) s->n_parts * VAE_BLOCK * D, true);
	s->bf16 = dsl_debug_bf16_products && dense_block_bf16();
	s->dw = (D + 1) / 2;
	if (s->bf16)
	{
		/* 32-bit words, as many as floats would be */
		StaticAssertStmt(sizeof(uint32) == sizeof(float), "a word per float");
		s->h3t_w = (uint32 *) alloc_floats((Size) s->dw * s->bs, true);
		s->h3_w = (uint32 *) alloc_floats((Size) s->bs / 2 * D, true);
		s->wrow_w = (uint32 *) alloc_floats((Size) s->n_parts * VAE_BLOCK * s->dw, true);
		s->wpair_w = (uint32 *) alloc_floats((Size) s->n_parts * VAE_BLOCK / 2 * D, true);
		s->grow_w = (uint32 *) alloc_floats((Size) s->n_parts * VAE_BLOCK * s->bs / 2, true);
		s->gpair_w = (uint32 *) alloc_floats((Size) s->n_parts * VAE_BLOCK / 2 * s->bs, true);
	}
	for (int t = T_B1; t <= T_B3; t++)
	{
		Size		n = (Size) e->tensors[t]->n_rows * e->tensors[t]->dim;

		s->w[t] = alloc_floats(n, true);
		s->g[t] = alloc_floats(n, true);
	}
	s->slot_of = palloc_extended(sizeof(int32) * Max(d->n_items, 1), MCXT_ALLOC_HUGE);
	s->stamp_of = palloc_extended(sizeof(int32) * Max(d->n_items, 1),
								  MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	s->slot_cap = Max(Min(s->in_cap, (int64) d->n_items), 1);
	s->slot_row = palloc_extended(sizeof(int32) * s->slot_cap, MCXT_ALLOC_HUGE);
	s->slot_ptr = palloc_extended(sizeof(int64) * (s->slot_cap + 1), MCXT_ALLOC_HUGE);
	s->slot_user = palloc_extended(sizeof(int32) * s->in_cap, MCXT_ALLOC_HUGE);
	s->g1 = alloc_floats((Size) s->slot_cap * H, true);
	s->packed = alloc_floats((Size) s->n_parts * D, false);
	row_groups_init(&s->w1_groups, e->tensors[T_W1]);
	row_groups_init(&s->w4_groups, e->tensors[T_W4]);
	s->sparse_fwd = s->bf16 ? VAE_SPARSE_FWD_BF16 : VAE_SPARSE_FWD;
	s->sparse_bwd = s->bf16 ? VAE_SPARSE_BWD_BF16 : VAE_SPARSE_BWD;
	sparse_block_prepare();
	dense_block_prepare();
	s->lazy_w1 = p->reg == 0;
	if (s->lazy_w1)
	{
		adam_catchup_init(&s->cu, &e->cfg.adam);
		e->tensors[T_W1]->last_step =
			palloc_extended(sizeof(int64) * Max(d->n_items, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	}
	return s;
}

/* ---------------------------------------------------------------------------
 * The output layer: items split over the pool (worker threads: plain C)
 * ---------------------------------------------------------------------------
 */

/* W4's rows [i0, i0 + n) densified into out (n x D) */
static void
densify_rows(const RowGroups *g, const SparseTensor *t, int64 i0, int n, float *out)
{
	for (int r = 0; r < n; r++)
		row_groups_dense(g, t, (int) (i0 + r), out + (Size) r * t->dim);
}

/* whether rows [i0, i0 + n) of t store less than a share `below` of theirs */
static inline bool
block_sparser(const SparseTensor *t, int64 i0, int n, double below)
{
	return (double) (t->row_ptr[i0 + n] - t->row_ptr[i0]) < below * n * t->dim;
}

/*
 * Rows [i0, i0 + n) of t as a dense n x dim block: the tensor's own storage
 * when they are all full (a dense tensor), else densified into buf
 */
static const float *
block_rows(const RowGroups *g, const SparseTensor *t, int64 i0, int n, float *buf)
{
	if (t->row_ptr[i0 + n] - t->row_ptr[i0] == (int64) n * t->dim)
		return t->w + t->row_ptr[i0];
	densify_rows(g, t, i0, n, buf);
	return buf;
}

/*
 * Logits of the part's items, a block of VAE_BLOCK rows at a time: the
 * block of W4 densified, times h3 (dense_block_gemm, in this worker), and
 * the part's maximum per user.
 */
static void
phase_out_forward(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const SparseTensor *t = s->engine->tensors[T_W4];
	const int	nb = s->nb,
				bs = s->bs,
				D = s->D;
	float	   *wb = s->wblock + (Size) part * VAE_BLOCK * D;
	uint32	   *ww = s->bf16 ? s->wrow_w + (Size) part * VAE_BLOCK * s->dw : NULL;

	for (int c; (c = worker_claim(&s->claim)) < VAE_CHUNKS;)
	{
		float	   *pm = s->pmax + (Size) c * bs;
		int64		lo,
					hi;

		worker_share(s->n_items, c, VAE_CHUNKS, &lo, &hi);
		for (int b = 0; b < nb; b++)
			pm[b] = -INFINITY;
		for (int64 i0 = lo; i0 < hi; i0 += VAE_BLOCK)
		{
			int			n = (int) Min((int64) VAE_BLOCK, hi - i0);

			if (block_sparser(t, i0, n, s->sparse_fwd))
				sparse_block_mul(t, i0, n, s->h3t, bs, s->logt + i0 * bs);
			else if (s->bf16)
			{
				dense_block_pack_rows(n, D, block_rows(&s->w4_groups, t, i0, n, wb), D,
									  ww, s->dw);
				dense_block_gemm_bf16(n, bs, s->dw, ww, s->dw, 1, s->h3t_w, bs,
									  s->logt + i0 * bs, bs, false);
			}
			else
				dense_block_gemm(n, bs, D, block_rows(&s->w4_groups, t, i0, n, wb), D, 1,
								 s->h3t, bs, s->logt + i0 * bs, bs, false);
			for (int64 i = i0; i < i0 + n; i++)
			{
				const float *l = s->logt + i * bs;

				for (int b = 0; b < nb; b++)
					pm[b] = Max(pm[b], l[b]);
			}
		}
	}
}

/* exp(logit - max) in place, and the part's sums per user */
static void
phase_out_exp(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	nb = s->nb,
				bs = s->bs;

	for (int c; (c = worker_claim(&s->claim)) < VAE_CHUNKS;)
	{
		float	   *ps = s->pmax + (Size) c * bs;
		int64		lo,
					hi;

		worker_share(s->n_items, c, VAE_CHUNKS, &lo, &hi);
		memset(ps, 0, sizeof(float) * bs);
		for (int64 i = lo; i < hi; i++)
		{
			float	   *restrict l = s->logt + i * bs;

			for (int b = 0; b < nb; b++)
			{
				l[b] = expf(l[b] - s->mx[b]);
				ps[b] += l[b];
			}
		}
	}
}

/* phase_out_backward's work on W4's rows [i0, i0 + n) */
static void
out_backward_block(VaeState *s, SparseTensor *t, const DslEngine *e, int part,
				   int64 i0, int n, float *dh, float *wb, float *gb, float *packed,
				   float reg)
{
	const int	nb = s->nb,
				bs = s->bs,
				D = s->D;
	float	   *g = s->logt + i0 * bs;
	const float *w;

	for (int r = 0; r < n; r++)
	{
		float	   *gr = g + (Size) r * bs;

		for (int b = 0; b < nb; b++)
			gr[b] *= s->coef[b];
		for (int b = nb; b < bs; b++)
			gr[b] = 0;
	}

	if (!s->round_due && !s->sum_g_out && block_sparser(t, i0, n, s->sparse_bwd))
	{
		/* W4^T G and the stored entries' gradients only, then Adam */
		int64		base = t->row_ptr[i0];

		sparse_block_mul_t(t, i0, n, g, bs, dh);
		sparse_block_grad(t, i0, n, g, s->h3t, bs, gb);
		for (int r = 0; r < n; r++)
		{
			int64		q0 = t->row_ptr[i0 + r],
						q1 = t->row_ptr[i0 + r + 1];
			float	   *gp = gb + (q0 - base);

			if (reg != 0)
				for (int64 q = q0; q < q1; q++)
					gp[q - q0] += reg * t->w[q];
			sparse_tensor_adam_row_packed(t, (int) (i0 + r), gp, &e->adam, e->bc1, e->bc2);
		}
		return;
	}

	w = block_rows(&s->w4_groups, t, i0, n, wb);

	/*
	 * The block's gradient is kept for the regrowth: added to the window's
	 * sum, or on a round step without a window computed in place there
	 */
	if (s->round_due && !s->sum_g_out)
		gb = s->g_out + i0 * D;
	if (s->bf16)
	{
		uint32	   *grow = s->grow_w + (Size) part * VAE_BLOCK * (bs / 2),
				   *gpair = s->gpair_w + (Size) part * (VAE_BLOCK / 2) * bs,
				   *wpair = s->wpair_w + (Size) part * (VAE_BLOCK / 2) * D;

		dense_block_pack_rows(n, bs, g, bs, grow, bs / 2);
		dense_block_gemm_bf16(n, D, bs / 2, grow, bs / 2, 1, s->h3_w, D, gb, D, false);
		dense_block_pack_pairs(n, bs, g, bs, gpair, bs);
		dense_block_pack_pairs(n, D, w, D, wpair, D);
		dense_block_gemm_bf16(D, bs, (n + 1) / 2, wpair, 1, D, gpair, bs, dh, bs, true);
	}
	else
	{
		dense_block_gemm(n, D, bs, g, bs, 1, s->h3, D, gb, D, false);
		dense_block_gemm(D, bs, n, w, 1, D, g, bs, dh, bs, true);
	}
	if (s->sum_g_out)
	{
		float	   *restrict sum = s->g_out + i0 * D;

		for (Size q = 0; q < (Size) n * D; q++)
			sum[q] += gb[q];
	}
	for (int r = 0; r < n; r++)
	{
		float	   *gr = gb + (Size) r * D;

		if (reg != 0)
		{
			/* the kept gradient stays the loss's: the L2 term in wb */
			float	   *x = wb + (Size) r * D;

			for (int c = 0; c < D; c++)
				x[c] = gr[c] + reg * w[(Size) r * D + c];
			gr = x;
		}
		if (t->row_ptr[i0 + r + 1] - t->row_ptr[i0 + r] < D)
		{
			/* the gradient at the row's stored columns */
			row_groups_gather(&s->w4_groups, t, (int) (i0 + r), gr, packed);
			gr = packed;
		}
		sparse_tensor_adam_row_packed(t, (int) (i0 + r), gr, &e->adam, e->bc1, e->bc2);
	}
}

/*
 * Backward through the part's items, block by block: the logits' gradient
 * G (coef times the shifted exps), W4's gradient G h3 and the part's share
 * of h3's gradient W4^T G (both dense_block_gemm, W4's block densified
 * again: it must be the weights before this step's update), then Adam on
 * the block's rows of W4; on a round step the block's dense gradient is
 * kept too.
 */
static void
phase_out_backward(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	SparseTensor *t = s->engine->tensors[T_W4];
	const DslEngine *e = s->engine;
	const int	bs = s->bs,
				D = s->D;
	float	   *wb = s->wblock + (Size) part * VAE_BLOCK * D;
	float	   *gb = s->gblock + (Size) part * VAE_BLOCK * D;
	const float reg = s->reg;

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_CHUNKS;)
	{
		float	   *dh = s->dh3t + (Size) ch * D * bs;
		int64		lo,
					hi;

		worker_share(s->n_items, ch, VAE_CHUNKS, &lo, &hi);
		memset(dh, 0, sizeof(float) * D * bs);
		for (int64 i0 = lo; i0 < hi; i0 += VAE_BLOCK)
			out_backward_block(s, t, e, part, i0, (int) Min((int64) VAE_BLOCK, hi - i0),
							   dh, wb, gb, s->packed + (Size) part * D, reg);
	}
}


/*
 * Adam on W1's rows [lo, hi) of the step's slots (lazy) or of all rows: the
 * step's gradient where it has one
 */
static void
in_adam_rows(VaeState *s, int part, int64 lo, int64 hi)
{
	SparseTensor *t = s->engine->tensors[T_W1];
	const DslEngine *e = s->engine;
	const int	H = s->H;
	float	   *restrict gr = s->scratch + (Size) part * s->sw;

	for (int64 q = lo; q < hi; q++)
	{
		int32		r = s->lazy_w1 ? s->slot_row[q] : (int32) q;
		float	   *restrict g = NULL;

		if (s->stamp_of[r] == s->stamp)
		{
			/* the row's gradient: its users' d h1, in batch order */
			int32		k = s->slot_of[r];

			g = s->g1 + (Size) k * H;
			memset(g, 0, sizeof(float) * H);
			for (int64 u = s->slot_ptr[k]; u < s->slot_ptr[k + 1]; u++)
			{
				int32		b = s->slot_user[u];
				const float v = s->val[b];
				const float *restrict dh = s->dh1 + (Size) b * H;

				for (int c = 0; c < H; c++)
					g[c] += v * dh[c];
			}
		}
		if (g == NULL && s->reg == 0)
		{
			memset(gr, 0, sizeof(float) * H);
			g = gr;
		}
		else if (s->reg != 0)
		{
			sparse_tensor_row_dense(t, (int) r, gr);
			for (int c = 0; c < H; c++)
				gr[c] = s->reg * gr[c] + (g ? g[c] : 0);
			g = gr;
		}
		if (t->row_ptr[r + 1] - t->row_ptr[r] < H)
		{
			/* the gradient at the row's stored columns */
			float	   *p = s->packed + (Size) part * s->D;

			row_groups_gather(&s->w1_groups, t, (int) r, g, p);
			g = p;
		}
		sparse_tensor_adam_row_packed(t, (int) r, g, &e->adam, e->bc1, e->bc2);
		if (s->lazy_w1)
			t->last_step[r] = e->step;
	}
}

/* catch up the step's rows of W1 (lazy) to the step before this one */
static void
phase_in_catch_up(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	SparseTensor *t = s->engine->tensors[T_W1];
	int64		lo,
				hi;

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_CHUNKS;)
	{
		worker_share(s->n_slots, ch, VAE_CHUNKS, &lo, &hi);
		for (int64 q = lo; q < hi; q++)
			sparse_tensor_catch_up_row(t, s->slot_row[q], &s->cu);
	}
}

/* every row of W1 (lazy) at the current step: before a round, at the end */
static void
catch_up_all(VaeState *s)
{
	if (!s->lazy_w1)
		return;
	adam_catchup_advance(&s->cu, s->engine->step);
	sparse_tensor_catch_up_all(s->engine->tensors[T_W1], &s->cu, s->engine->pool);
}

/* fn on the pool, its parts claiming chunks (s->claim) */
static void
vae_run(VaeState *s, WorkerFn fn)
{
	s->claim = 0;
	worker_pool_run(s->pool, fn, s);
}

/* h1 of a chunk's users: a sum of the kept items' rows of W1, then tanh */
static void
phase_in_forward(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const SparseTensor *t = s->engine->tensors[T_W1];
	const int	H = s->H;
	int64		lo,
				hi;

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		worker_share(s->nb, ch, VAE_MID_CHUNKS, &lo, &hi);
		for (int64 b = lo; b < hi; b++)
		{
			float	   *restrict h = s->h1 + b * H;
			const float v = s->val[b];

			memcpy(h, s->w[T_B1], sizeof(float) * H);
			for (int64 k = s->in_ptr[b]; k < s->in_ptr[b + 1]; k++)
			{
				int32		i = s->in_item[k];
				int64		q0 = t->row_ptr[i],
							q1 = t->row_ptr[i + 1];

				if (q1 - q0 == H)
				{
					/* a full row: contiguous */
					const float *restrict w = t->w + q0;

					for (int c = 0; c < H; c++)
						h[c] += v * w[c];
				}
				else
					row_groups_axpy(&s->w1_groups, t, i, v, h);
			}
			for (int c = 0; c < H; c++)
				h[c] = tanhf(h[c]);
		}
	}
}

/* ---------------------------------------------------------------------------
 * The middle layers (n_items-free: batch x H x 2L products), in column
 * chunks: each chunk is one single-threaded sgemm on a column range of the
 * result, so the split is the same whatever the number of threads
 * ---------------------------------------------------------------------------
 */

/* C = op(A) op(B) (+ bias on every row), row major; m x n, inner k */
typedef struct MidGemm
{
	bool		ta,
				tb;
	int			m,
				n,
				k;
	const float *a;
	int			lda;
	const float *b;
	int			ldb;
	const float *bias;
	float	   *c;
	int			ldc;
} MidGemm;

/* chunk ch's columns [c0, c1) of n, cut at multiples of 16 */
static void
mid_cols(int n, int ch, int *c0, int *c1)
{
	int64		lo,
				hi;

	worker_share((n + 15) / 16, ch, VAE_MID_CHUNKS, &lo, &hi);
	*c0 = (int) Min((int64) n, lo * 16);
	*c1 = (int) Min((int64) n, hi * 16);
}

/* columns [c0, c1) of g's product */
static void
mid_gemm(const MidGemm *g, int c0, int c1)
{
	float		beta = 0.0f;

	if (c1 <= c0 || g->m == 0)
		return;
	if (g->bias)
	{
		for (int r = 0; r < g->m; r++)
			memcpy(g->c + (Size) r * g->ldc + c0, g->bias + c0, sizeof(float) * (c1 - c0));
		beta = 1.0f;
	}
	cblas_sgemm(CblasRowMajor, g->ta ? CblasTrans : CblasNoTrans,
				g->tb ? CblasTrans : CblasNoTrans, g->m, c1 - c0, g->k,
				1.0f, g->a, g->lda, g->tb ? g->b + (Size) c0 * g->ldb : g->b + c0,
				g->ldb, beta, g->c + c0, g->ldc);
}

/* columns [c0, c1) of bias's gradient: the column sums of x[nb x ld] */
static void
col_sums(const float *x, int nb, int ld, int c0, int c1, float *out)
{
	memset(out + c0, 0, sizeof(float) * (c1 - c0));
	for (int b = 0; b < nb; b++)
		for (int c = c0; c < c1; c++)
			out[c] += x[(Size) b * ld + c];
}

/* the encoder's output: enc = h1 W2 + b2 (mu, log variance) */
static void
phase_enc(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	H = s->H,
				L2 = 2 * s->L;
	MidGemm		g = {false, false, s->nb, L2, H, s->h1, H, s->w[T_W2], L2,
	s->w[T_B2], s->enc, L2};

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		int			c0,
					c1;

		mid_cols(L2, ch, &c0, &c1);
		mid_gemm(&g, c0, c1);
	}
}

/* the decoder's hidden layer: h3 = tanh(z W3 + b3), and h3 transposed */
static void
phase_dec(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	H = s->H,
				L = s->L,
				nb = s->nb,
				bs = s->bs;
	MidGemm		g = {false, false, nb, H, L, s->z, L, s->w[T_W3], H,
	s->w[T_B3], s->h3, H + 1};

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		int			c0,
					c1;

		mid_cols(H, ch, &c0, &c1);
		mid_gemm(&g, c0, c1);
		for (int b = 0; b < nb; b++)
			for (int c = c0; c < c1; c++)
			{
				float		h = tanhf(s->h3[(Size) b * (H + 1) + c]);

				s->h3[(Size) b * (H + 1) + c] = h;
				s->h3t[(Size) c * bs + b] = h;
			}
		for (int c = c0; c < c1; c++)
			for (int b = nb; b < bs; b++)
			{
				s->h3t[(Size) c * bs + b] = 0;
				s->h3[(Size) b * (H + 1) + c] = 0;
			}
	}
}

/* d h3: the item chunks' shares of W4^T G summed in chunk order, tanh' */
static void
phase_bwd_h3(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	H = s->H,
				D = s->D,
				nb = s->nb,
				bs = s->bs;

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		int			c0,
					c1;

		mid_cols(H, ch, &c0, &c1);
		for (int c = c0; c < c1; c++)
		{
			float	   *restrict row = s->dh3t + (Size) c * bs;

			for (int k = 1; k < VAE_CHUNKS; k++)
			{
				const float *restrict src = s->dh3t + (Size) k * D * bs + (Size) c * bs;

				for (int b = 0; b < nb; b++)
					row[b] += src[b];
			}
			for (int b = 0; b < nb; b++)
			{
				float		h = s->h3[(Size) b * D + c];

				s->dh3[(Size) b * H + c] = row[b] * (1.0f - h * h);
			}
		}
	}
}

/* the decoder's hidden layer backward: W3's and b3's gradients, d z */
static void
phase_bwd_dec(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	H = s->H,
				L = s->L,
				nb = s->nb;
	MidGemm		gw = {true, false, L, H, nb, s->z, L, s->dh3, H, NULL, s->g[T_W3], H};
	MidGemm		gz = {false, true, nb, L, H, s->dh3, H, s->w[T_W3], H, NULL, s->dz, L};

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		int			c0,
					c1;

		mid_cols(H, ch, &c0, &c1);
		mid_gemm(&gw, c0, c1);
		col_sums(s->dh3, nb, H, c0, c1, s->g[T_B3]);
		mid_cols(L, ch, &c0, &c1);
		mid_gemm(&gz, c0, c1);
	}
}

/* the encoder backward: W2's and b2's gradients, d h1 through tanh', b1's */
static void
phase_bwd_enc(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	const int	H = s->H,
				L2 = 2 * s->L,
				nb = s->nb;
	MidGemm		gw = {true, false, H, L2, nb, s->h1, H, s->denc, L2, NULL, s->g[T_W2], L2};
	MidGemm		gh = {false, true, nb, H, L2, s->denc, L2, s->w[T_W2], L2, NULL, s->dh1, H};

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_MID_CHUNKS;)
	{
		int			c0,
					c1;

		mid_cols(L2, ch, &c0, &c1);
		mid_gemm(&gw, c0, c1);
		col_sums(s->denc, nb, L2, c0, c1, s->g[T_B2]);
		mid_cols(H, ch, &c0, &c1);
		mid_gemm(&gh, c0, c1);
		for (int b = 0; b < nb; b++)
			for (int c = c0; c < c1; c++)
			{
				float		h = s->h1[(Size) b * H + c];

				s->dh1[(Size) b * H + c] *= 1.0f - h * h;
			}
		col_sums(s->dh1, nb, H, c0, c1, s->g[T_B1]);
	}
}

/* rows of the middle layers, all together */
static int64
middle_rows(const VaeState *s)
{
	int64		total = 0;

	for (int t = T_B1; t <= T_B3; t++)
		total += s->engine->tensors[t]->n_rows;
	return total;
}

/*
 * Adam on the middle layers' rows [lo, hi) (numbered across the tensors;
 * with the L2 term when reg is set), each row then written back to its
 * dense copy
 */
static void
adam_middle(VaeState *s, int part, int64 lo, int64 hi)
{
	const DslEngine *e = s->engine;
	float	   *scratch = s->scratch + (Size) part * s->sw;
	int64		at = 0;

	for (int t = T_B1; t <= T_B3; t++)
	{
		SparseTensor *x = e->tensors[t];

		for (int r = 0; r < x->n_rows; r++, at++)
		{
			const float *gr = s->g[t] + (Size) r * x->dim;
			float	   *wr = s->w[t] + (Size) r * x->dim;

			if (at < lo || at >= hi)
				continue;
			if (s->reg != 0)
			{
				/* the kept gradient stays the loss's: the L2 term in scratch */
				for (int c = 0; c < x->dim; c++)
					scratch[c] = gr[c] + s->reg * wr[c];
				gr = scratch;
			}
			sparse_tensor_adam_row(x, r, gr, &e->adam, e->bc1, e->bc2);
			sparse_tensor_row_dense(x, r, wr);
		}
	}
}

/*
 * Adam on everything but the output layer (stepped in its backward): W1's
 * rows in VAE_CHUNKS chunks, then the middle layers' in VAE_MID_CHUNKS
 */
static void
phase_adam(void *arg, int part, int n_parts)
{
	VaeState   *s = (VaeState *) arg;
	int64		w1 = s->lazy_w1 ? s->n_slots : s->engine->tensors[T_W1]->n_rows,
				mid = middle_rows(s),
				lo,
				hi;

	for (int ch; (ch = worker_claim(&s->claim)) < VAE_CHUNKS + VAE_MID_CHUNKS;)
	{
		if (ch < VAE_CHUNKS)
		{
			worker_share(w1, ch, VAE_CHUNKS, &lo, &hi);
			in_adam_rows(s, part, lo, hi);
		}
		else
		{
			worker_share(mid, ch - VAE_CHUNKS, VAE_MID_CHUNKS, &lo, &hi);
			adam_middle(s, part, lo, hi);
		}
	}
}

/* ---------------------------------------------------------------------------
 * One step
 * ---------------------------------------------------------------------------
 */

static void
densify_tensor(const SparseTensor *t, float *out)
{
	for (int r = 0; r < t->n_rows; r++)
		sparse_tensor_row_dense(t, r, out + (Size) r * t->dim);
}

/* the KL weight of step t */
static double
vae_beta(const VaeState *s, int64 t)
{
	double		steps = s->anneal_steps > 0 ? (double) s->anneal_steps :
		Max(1.0, (double) s->engine->cfg.total_steps * 2.0 / 3.0);

	return s->anneal_cap * Min(1.0, (double) t / steps);
}

/* the users' inputs: kept items and the value of each */
static void
build_inputs(VaeState *s, const int32 *users, int n)
{
	const Interactions *d = s->data;
	int64		k = 0;
	int			nb = 0;
	float		keep_scale = 1.0f / (1.0f - s->dropout);

	for (int q = 0; q < n; q++)
	{
		int32		u = users[q];
		int64		len = d->ptr[u + 1] - d->ptr[u];

		if (len == 0)
			continue;			/* nothing to reconstruct */
		s->users[nb] = u;
		s->val[nb] = (float) (1.0 / sqrt((double) len)) * keep_scale;
		s->in_ptr[nb] = k;
		for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
			if (s->dropout == 0 || dsl_rng_uniform(&s->rng) >= s->dropout)
				s->in_item[k++] = d->items[p];
		nb++;
	}
	s->in_ptr[nb] = k;
	s->nb = nb;
}

/* forward through the encoder and decoder to h3 (training: dropout, z drawn) */
static void
forward_h3(VaeState *s, bool sample)
{
	const int	nb = s->nb,
				L = s->L;

	/* W1's masks, for this forward and a training step's Adam */
	row_groups_sync(&s->w1_groups, s->engine->tensors[T_W1]);
	vae_run(s, phase_in_forward);
	dsl_blas_prepare(false);
	vae_run(s, phase_enc);
	for (int b = 0; b < nb; b++)
	{
		const float *mu = s->enc + (Size) b * 2 * L;
		const float *lv = mu + L;
		float	   *z = s->z + (Size) b * L;
		double		kl = 0;

		for (int l = 0; l < L; l++)
		{
			if (sample)
			{
				float		ep = (float) dsl_rng_normal(&s->rng);

				s->eps[(Size) b * L + l] = ep;
				z[l] = mu[l] + ep * expf(0.5f * lv[l]);
				kl += -0.5 * (1.0 + lv[l] - (double) mu[l] * mu[l] - exp(lv[l]));
			}
			else
				z[l] = mu[l];	/* serving: no loss, no KL */
		}
		s->kl[b] = kl;
	}
	vae_run(s, phase_dec);
}

/* the middle layers' dense copies from tensors (live or a snapshot) */
static void
densify_middle(VaeState *s, SparseTensor *const *tensors)
{
	for (int t = T_B1; t <= T_B3; t++)
		densify_tensor(tensors[t], s->w[t]);
}

/* W1's row slot for item i in this step */
static inline int32
input_slot(VaeState *s, int32 i)
{
	int32		k;

	if (s->stamp_of[i] == s->stamp)
		return s->slot_of[i];
	k = s->n_slots++;
	s->stamp_of[i] = s->stamp;
	s->slot_of[i] = k;
	s->slot_row[k] = i;
	s->slot_ptr[k + 1] = 0;
	return k;
}

/* one optimizer step on users[0..n); returns the summed loss of its users */
static double
vae_step(VaeState *s, const int32 *users, int n, bool round_due, int *n_used)
{
	const Interactions *d = s->data;
	DslEngine  *e = s->engine;
	const int	H = s->H,
				L = s->L,
				D = s->D,
				bs = s->bs;
	int			nb;
	double		beta = vae_beta(s, e->step);
	double		loss = 0;
	float		inv_nb;

	if (s->lazy_w1)
	{
		adam_catchup_set_lr(&s->cu, e->step, e->adam.lr);
		adam_catchup_advance(&s->cu, e->step - 1);
	}
	build_inputs(s, users, n);
	nb = *n_used = s->nb;
	if (nb == 0)
		return 0;
	inv_nb = 1.0f / (float) nb;
	s->round_due = round_due;

	/*
	 * The input rows of the step, numbered (slots) and, lazy, caught up to
	 * the step before this one before they are read; each slot's list of
	 * batch users for its gradient (phase_in_adam)
	 */
	s->stamp++;
	s->n_slots = 0;
	for (int64 k = 0; k < s->in_ptr[nb]; k++)
		s->slot_ptr[input_slot(s, s->in_item[k]) + 1]++;
	s->slot_ptr[0] = 0;
	for (int k = 0; k < s->n_slots; k++)
		s->slot_ptr[k + 1] += s->slot_ptr[k];
	for (int b = 0; b < nb; b++)
		for (int64 k = s->in_ptr[b]; k < s->in_ptr[b + 1]; k++)
		{
			int32		slot = s->slot_of[s->in_item[k]];

			/* slot_ptr[slot] runs ahead while filling, then is restored */
			s->slot_user[s->slot_ptr[slot]++] = b;
		}
	for (int k = s->n_slots; k > 0; k--)
		s->slot_ptr[k] = s->slot_ptr[k - 1];
	s->slot_ptr[0] = 0;
	if (s->lazy_w1)
		vae_run(s, phase_in_catch_up);

	/* forward */
	if (!s->w_live)
	{
		densify_middle(s, e->tensors);
		s->w_live = true;
	}
	forward_h3(s, true);
	for (int b = 0; b < bs; b++)
	{
		s->h3t[(Size) H * bs + b] = b < nb ? 1.0f : 0.0f;
		s->h3[(Size) b * D + H] = b < nb ? 1.0f : 0.0f;
	}
	if (s->bf16)
	{
		/* the step's h3, paired along the output layer's two sums over it */
		dense_block_pack_pairs(D, bs, s->h3t, bs, s->h3t_w, bs);
		dense_block_pack_pairs(bs, D, s->h3, D, s->h3_w, D);
	}
	/* W4's masks, for this step's forward and backward (no round between) */
	row_groups_sync(&s->w4_groups, e->tensors[T_W4]);
	vae_run(s, phase_out_forward);
	for (int b = 0; b < nb; b++)
	{
		float		m = -INFINITY;

		for (int c = 0; c < VAE_CHUNKS; c++)
			m = Max(m, s->pmax[(Size) c * bs + b]);
		s->mx[b] = m;
	}

	/* the positives' logits, before they become probabilities */
	for (int b = 0; b < nb; b++)
	{
		int32		u = s->users[b];
		double		pos = 0;

		for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
			pos += s->logt[(Size) d->items[p] * bs + b];
		s->coef[b] = (float) pos;	/* for the moment */
	}
	vae_run(s, phase_out_exp);
	for (int b = 0; b < nb; b++)
	{
		int32		u = s->users[b];
		double		len = (double) (d->ptr[u + 1] - d->ptr[u]);
		double		sum = 0;
		double		lse;

		for (int c = 0; c < VAE_CHUNKS; c++)
			sum += s->pmax[(Size) c * bs + b];
		lse = s->mx[b] + log(sum);
		loss += len * lse - s->coef[b] + beta * s->kl[b];
		/* d loss / d logit_i = (len softmax_i - x_i) / nb */
		s->coef[b] = (float) (len / (sum * nb));
		for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
			s->logt[(Size) d->items[p] * bs + b] -= (float) (sum / len);
	}

	/* backward through the output layer (and its Adam step) */
	if (round_due && s->g_out == NULL)
		s->g_out = dsl_alloc_huge((Size) s->n_items * D * sizeof(float), false);
	vae_run(s, phase_out_backward);
	vae_run(s, phase_bwd_h3);

	/* the decoder's hidden layer: W3, b3, then d z (BLAS set by forward_h3) */
	vae_run(s, phase_bwd_dec);

	/* the reparameterisation and the KL term */
	for (int b = 0; b < nb; b++)
	{
		const float *mu = s->enc + (Size) b * 2 * L;
		const float *lv = mu + L;
		float	   *dmu = s->denc + (Size) b * 2 * L;
		float	   *dlv = dmu + L;
		const float *dz = s->dz + (Size) b * L;
		const float bk = (float) beta * inv_nb;

		for (int l = 0; l < L; l++)
		{
			float		ev = expf(lv[l]);

			dmu[l] = dz[l] + bk * mu[l];
			dlv[l] = dz[l] * 0.5f * s->eps[(Size) b * L + l] * sqrtf(ev) +
				bk * 0.5f * (ev - 1.0f);
		}
	}

	/* the encoder: W2, b2, then d h1 and b1 */
	vae_run(s, phase_bwd_enc);

	/* Adam on the rest */
	vae_run(s, phase_adam);
	return loss;
}

/*
 * The output layer's regrowth signal is its gradient summed over the
 * growth_batches steps before a round, not the round step's alone: a step
 * of 64 users is a noisy sample of which output weights matter (Gowalla,
 * d = 0.2, 30 epochs: Recall@20 0.1510 with one step, 0.1540 with 16,
 * docs/multvae.md).  The steps of the window take the dense backward of
 * the output layer (its whole gradient) and add it to g_out, which exists
 * from the window's first step to the round, as it did for the round step
 * alone.  W1's rows and the middle layers regrow by the round step's
 * gradient (summing W1's over an epoch was measured too: no gain).  Called
 * after dsl_engine_begin_step.
 */
static void
regrowth_window(VaeState *s)
{
	s->sum_g_out = dsl_engine_in_growth_window(s->engine, s->growth_batches);
	if (s->sum_g_out && s->g_out == NULL)
	{
		s->g_out = dsl_alloc_huge((Size) s->n_items * s->D * sizeof(float), true);
		dsl_mem_note();
	}
}

/*
 * The DSL round after a step that kept its dense gradients (round_due): W1's
 * touched rows, the middle layers whole, W4 whole (summed over the window).
 */
static void
vae_round(VaeState *s)
{
	DslEngine  *e = s->engine;

	catch_up_all(s);
	if (s->nb > 0)
	{
		TensorGrad	g[N_TENSORS];

		memset(g, 0, sizeof(g));
		g[T_W1].n = s->n_slots;
		g[T_W1].rows = s->slot_row;
		g[T_W1].g = s->g1;
		for (int t = T_B1; t <= T_B3; t++)
		{
			g[t].n = e->tensors[t]->n_rows;
			g[t].g = s->g[t];
		}
		g[T_W4].n = s->n_items;
		g[T_W4].g = s->g_out;
		g[T_W4].consume = true;
		dsl_engine_update(e, g);
		s->g_out = NULL;
		s->w_live = false;		/* masks moved */
	}
	else if (s->g_out != NULL)
	{
		/* no round without users: the window's sum goes */
		pfree(s->g_out);
		s->g_out = NULL;
	}
}

static double
vae_train_epoch(void *state)
{
	VaeState   *s = (VaeState *) state;
	const int	n = s->data->n_users;
	double		loss = 0;
	int64		users = 0;

	/* Fisher-Yates with the state's stream */
	for (int i = n - 1; i > 0; i--)
	{
		int			j = (int) dsl_rng_below(&s->rng, (uint64) i + 1);
		int32		x = s->order[i];

		s->order[i] = s->order[j];
		s->order[j] = x;
	}
	for (int b0 = 0; b0 < n; b0 += s->batch)
	{
		int			nb = Min(s->batch, n - b0);
		int			used;
		bool		due;

		CHECK_FOR_INTERRUPTS();
		dsl_engine_begin_step(s->engine);
		regrowth_window(s);
		due = dsl_engine_update_due(s->engine);
		loss += vae_step(s, s->order + b0, nb, due, &used);
		users += used;
		if (isnan(loss) || isinf(loss))
			return loss;
		if (due)
			vae_round(s);
	}
	/* every row where dense Adam has it, for evaluation and storage */
	catch_up_all(s);
	return users > 0 ? loss / (double) users : 0.0;
}

/* ---------------------------------------------------------------------------
 * Serving: [h3(mu), 1] per user, W4's rows per item
 * ---------------------------------------------------------------------------
 */

static void
vae_serving(void *state, SparseTensor *const *tensors,
			EmbeddingSource *users, EmbeddingSource *items)
{
	VaeState   *s = (VaeState *) state;
	const Interactions *d = s->data;
	const int	H = s->H,
				D = s->D;
	SparseTensor *live[N_TENSORS];
	float		dropout = s->dropout;
	int32	   *ids = palloc(sizeof(int32) * s->batch);

	if (s->serve_users == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(s->mcxt);

		s->serve_users = alloc_floats((Size) d->n_users * D, false);
		MemoryContextSwitchTo(old);
	}

	/* the forward pass reads the engine's tensors: point them at these */
	memcpy(live, s->engine->tensors, sizeof(live));
	memcpy(s->engine->tensors, tensors, sizeof(live));
	densify_middle(s, tensors);
	s->w_live = false;
	s->dropout = 0;
	for (int u0 = 0; u0 < d->n_users; u0 += s->batch)
	{
		int			n = Min(s->batch, d->n_users - u0);
		int			k = 0;

		CHECK_FOR_INTERRUPTS();
		for (int q = 0; q < n; q++)
			ids[q] = u0 + q;
		build_inputs(s, ids, n);
		forward_h3(s, false);
		for (int q = 0; q < n; q++)
		{
			float	   *row = s->serve_users + (Size) (u0 + q) * D;
			int32		u = u0 + q;

			if (k < s->nb && s->users[k] == u)
			{
				memcpy(row, s->h3 + (Size) k * D, sizeof(float) * H);
				k++;
			}
			else
			{
				/*
				 * no history (a user kept by keep_missing): zeros, so that
				 * her scores are the output biases, a popularity ranking
				 */
				memset(row, 0, sizeof(float) * H);
			}
			row[H] = 1.0f;
		}
	}
	s->dropout = dropout;
	memcpy(s->engine->tensors, live, sizeof(live));
	pfree(ids);					/* (the next step densifies the live middle layers) */

	*users = embedding_source_dense(s->serve_users, d->n_users, D);
	*items = embedding_source_fill(sparse_tensor_fill_rows, tensors[T_W4],
								   tensors[T_W4]->n_rows, tensors[T_W4]->dim);
}

static const StoredTensor vae_tensor_parts[] = {
	{"enc_in", ROWS_ITEMS},
	{"enc_in_bias", ROWS_OWN},
	{"enc_out", ROWS_OWN},
	{"enc_out_bias", ROWS_OWN},
	{"dec_in", ROWS_OWN},
	{"dec_in_bias", ROWS_OWN},
	{"item", ROWS_ITEMS},		/* the output layer is the serving item rows */
};

const ModelOps multvae_ops = {
	.type = "multvae",
	.option_keys = "latent, dropout, anneal_cap, anneal_steps, growth_batches",
	.shape_keys = "latent",
	.options_size = sizeof(VaeOptions),
	.default_dim = 601,
	.min_dim = 2,
	.default_interval_epochs = 1,
	.default_lr = 1e-3,
	.default_reg = 0,
	.init_options = vae_init_options,
	.set_option = vae_set_option,
	.finish_options = vae_finish_options,
	.write_hyperparams = vae_write_hyperparams,
	.tensor_shapes = vae_tensor_shapes,
	.work_bytes = vae_work_bytes,
	.default_batch_size = vae_default_batch_size,
	.steps_per_epoch = vae_steps_per_epoch,
	.create = vae_create,
	.train_epoch = vae_train_epoch,
	.serving = vae_serving,
	.tensor_parts = vae_tensor_parts,
	.scorer = &multvae_scorer,
};
