/*
 * neumf.c - NeuMF (He et al., WWW 2017) with DSL over every weight tensor
 *
 * The score of user u and item i (neumf_net.h):
 *
 *   s(u, i) = p_u . q_i + h . x_L + b,
 *   x_1 = relu(W1u^T p'_u + W1i^T q'_i + b_1),  x_l = relu(W_l^T x_(l-1) + b_l)
 *
 * GMF's embeddings p, q (dim wide), the MLP's p', q' (mlp_layers[0] / 2
 * wide), hidden layers of mlp_layers[1..] units.  GMF's output weights are
 * fixed at 1: learned ones are the same family of scores (they fold into
 * p), but the L2 term on p and q is then evaded by growing them, which
 * measurably overfits (docs/neumf.md).  All other weights and biases are
 * DSL tensors, each with its exact budget: the four embedding tables, the
 * output weights h and bias b, and every layer's weights and biases.
 *
 * Trained in the shared BPR loop (bpr.h) on every training pair once per
 * epoch: with loss "log" (the default, as in the NCF paper), the pointwise
 * -log sigmoid(s(u, i)) and -log sigmoid(-s(u, j)) for `negatives`
 * sampled items j; with "bpr", -log sigmoid(s(u, i) - s(u, j)) for one
 * sampled j (Gowalla: log better at every density; Last.fm: BPR, see
 * docs/neumf.md).  The L2 term reg/2 |row|^2 is MF's on the embedding rows a step
 * uses, once per triple (BPR) or per scored pair (log), and reg/2 |W|^2 on
 * the layers' weight matrices every step (is_layer_weight).  A step densifies the batch's embedding rows (batch_rows.h: rows
 * outside the batch follow dense Adam's trajectory) and the small dense
 * tensors, runs the layers as sgemm over the step's scored pairs, and
 * takes Adam on the rows it touched and on every dense tensor.  The
 * regrowth signal of a round is each tensor's gradient summed over the
 * growth_batches steps before it.  Validation ranks with the served score
 * (neumf_rank_users, through neumf_net_score), so a model is chosen by what
 * dsl.recommend will answer.  test/unit/neumf_grad_check.c checks every
 * gradient against finite differences of the loss.
 */
#include "postgres.h"

#include <limits.h>
#include <math.h>

#include <cblas.h>

#include "miscadmin.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"

#include "batch_rows.h"
#include "bitmap.h"
#include "bpr.h"
#include "dsl_rec.h"
#include "hugepage.h"
#include "mem_peak.h"
#include "model_ops.h"
#include "neumf_net.h"
#include "scorer.h"

/* the tensors, in registration order: the hidden layers' come last */
enum
{
	T_P, T_Q, T_PM, T_QM, T_OUT, T_OUT_BIAS, T_W1U, T_W1I, T_B1, T_W2,
	/* T_B2, T_W3, ... : T_W(l) = T_W2 + 2 (l - 2), T_B(l) = T_W(l) + 1 */
};
#define T_W(l) (T_W2 + 2 * ((l) - 2))
#define T_B(l) (T_W(l) + 1)
#define N_TENSORS(n_hidden) (T_W2 + 2 * ((n_hidden) - 1))

/*
 * The step's parallel phases work in chunks of a fixed size (run_chunks);
 * test/unit/neumf_grad_check.c builds with tiny ones to check the chunking.
 */
#ifndef NEUMF_CHUNK
#define NEUMF_CHUNK 256			/* slots or evaluations per chunk */
#endif
#ifndef NEUMF_COL_CHUNK
#define NEUMF_COL_CHUNK 16		/* columns per chunk of the first layer's weights */
#endif

static inline int
n_chunks(int n, int size)
{
	return (n + size - 1) / size;
}

typedef enum NeumfLoss
{
	NEUMF_LOSS_BPR,				/* pairwise: -log sigmoid(s(u,i) - s(u,j)) */
	NEUMF_LOSS_LOG				/* pointwise: -log sigmoid(s(u,i)), and
								 * -log sigmoid(-s(u,j)) per sampled j */
} NeumfLoss;

/* NeuMF's options (dsl.train's options jsonb) */
typedef struct NeumfOptions
{
	int			n_layers;		/* entries of mlp_layers: 2 .. */
	int			layers[NEUMF_MAX_HIDDEN + 1];	/* the MLP's input (2 x its
												 * embedding width), then its
												 * hidden layers' widths */
	NeumfLoss	loss;
	int			negatives;		/* sampled items per positive (log loss) */
	int			growth_batches; /* steps in the regrowth gradient; 0 until
								 * finish_options sets the default */
} NeumfOptions;

static void
neumf_init_options(void *opts)
{
	NeumfOptions *o = (NeumfOptions *) opts;

	o->n_layers = 4;
	o->layers[0] = 64;
	o->layers[1] = 32;
	o->layers[2] = 16;
	o->layers[3] = 8;
	o->loss = NEUMF_LOSS_LOG;
	o->negatives = 4;
	o->growth_batches = 0;
}

static void
bad_layers(const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid value for option mlp_layers: %s", why),
			 errdetail("mlp_layers is an array of 2 to %d integers: the MLP's input width (twice its embedding width, so even), then each hidden layer's width, from 1 to %d.",
					   NEUMF_MAX_HIDDEN + 1, NEUMF_MAX_WIDTH)));
}

/* mlp_layers: [input, hidden widths ...] */
static void
set_layers(NeumfOptions *o, const JsonbValue *value)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	int			n = 0;

	if (value->type != jbvBinary || !JsonContainerIsArray(value->val.binary.data) ||
		JsonContainerIsScalar(value->val.binary.data))
		bad_layers("not an array");
	it = JsonbIteratorInit(value->val.binary.data);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		double		x;

		if (tok != WJB_ELEM)
			continue;
		if (v.type != jbvNumeric)
			bad_layers("an element is not a number");
		x = DatumGetFloat8(DirectFunctionCall1(numeric_float8,
											   NumericGetDatum(v.val.numeric)));
		if (n > NEUMF_MAX_HIDDEN)
			bad_layers(psprintf("more than %d entries", NEUMF_MAX_HIDDEN + 1));
		if (isnan(x) || x != floor(x) || x < 1 ||
			x > (n == 0 ? 2 * NEUMF_MAX_WIDTH : NEUMF_MAX_WIDTH))
			bad_layers(psprintf("entry %d is %g", n + 1, x));
		o->layers[n++] = (int) x;
	}
	if (n < 2)
		bad_layers(psprintf("%d %s, not 2 or more", n, n == 1 ? "entry" : "entries"));
	if (o->layers[0] % 2 != 0)
		bad_layers(psprintf("the input width %d is odd", o->layers[0]));
	o->n_layers = n;
}

static bool
neumf_set_option(void *opts, const char *key, const JsonbValue *value)
{
	NeumfOptions *o = (NeumfOptions *) opts;

	if (strcmp(key, "mlp_layers") == 0)
		set_layers(o, value);
	else if (strcmp(key, "loss") == 0)
	{
		char	   *s = value->type == jbvString ?
			pnstrdup(value->val.string.val, value->val.string.len) : NULL;

		if (s && strcmp(s, "bpr") == 0)
			o->loss = NEUMF_LOSS_BPR;
		else if (s && strcmp(s, "log") == 0)
			o->loss = NEUMF_LOSS_LOG;
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid value for option loss: %s",
							s ? s : "(not a string)"),
					 errdetail("Valid values: \"bpr\", \"log\".")));
	}
	else if (strcmp(key, "negatives") == 0)
		o->negatives = dsl_option_int(key, value, 1, 64);
	else if (strcmp(key, "growth_batches") == 0)
		o->growth_batches = dsl_option_int(key, value, 1, 1000000);
	else
		return false;
	return true;
}

static void
neumf_write_hyperparams(StringInfo s, const void *opts)
{
	const NeumfOptions *o = (const NeumfOptions *) opts;

	appendStringInfoString(s, ", \"mlp_layers\": [");
	for (int l = 0; l < o->n_layers; l++)
		appendStringInfo(s, "%s%d", l ? ", " : "", o->layers[l]);
	appendStringInfo(s, "], \"loss\": \"%s\", \"negatives\": %d, \"growth_batches\": %d",
					 o->loss == NEUMF_LOSS_BPR ? "bpr" : "log",
					 o->negatives, o->growth_batches);
}

/* the regrowth gradient: by default summed over the last epoch's steps */
static void
neumf_finish_options(void *opts, const TrainParams *p)
{
	NeumfOptions *o = (NeumfOptions *) opts;

	if (p->dim > NEUMF_MAX_WIDTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dim %d is too large for model_type neumf", p->dim),
				 errdetail("NeuMF's GMF embeddings are at most %d wide.", NEUMF_MAX_WIDTH)));
	if (o->growth_batches == 0)
		o->growth_batches = (int) Min(Min(p->steps_per_epoch, p->update_interval),
									  (int64) PG_INT32_MAX);
}

static int
neumf_tensor_shapes(const Interactions *d, const TrainParams *p, TensorShape *shapes)
{
	const NeumfOptions *o = (const NeumfOptions *) p->options;
	int			dm = o->layers[0] / 2;
	int			n_hidden = o->n_layers - 1;

	shapes[T_P] = (TensorShape) {d->n_users, p->dim};
	shapes[T_Q] = (TensorShape) {d->n_items, p->dim};
	shapes[T_PM] = (TensorShape) {d->n_users, dm};
	shapes[T_QM] = (TensorShape) {d->n_items, dm};
	shapes[T_OUT] = (TensorShape) {1, o->layers[n_hidden]};
	shapes[T_OUT_BIAS] = (TensorShape) {1, 1};
	shapes[T_W1U] = (TensorShape) {dm, o->layers[1]};
	shapes[T_W1I] = (TensorShape) {dm, o->layers[1]};
	shapes[T_B1] = (TensorShape) {1, o->layers[1]};
	for (int l = 2; l <= n_hidden; l++)
	{
		shapes[T_W(l)] = (TensorShape) {o->layers[l - 1], o->layers[l]};
		shapes[T_B(l)] = (TensorShape) {1, o->layers[l]};
	}
	return N_TENSORS(n_hidden);
}

static const StoredTensor neumf_tensor_parts[] = {
	{"user", ROWS_USERS},		/* GMF's embeddings are the 'user' and */
	{"item", ROWS_ITEMS},		/* 'item' parts */
	{"mlp_user", ROWS_USERS},
	{"mlp_item", ROWS_ITEMS},
	{"out", ROWS_OWN},
	{"out_bias", ROWS_OWN},
	{"mlp_w1_user", ROWS_OWN},
	{"mlp_w1_item", ROWS_OWN},
	{"mlp_b1", ROWS_OWN},
	{"mlp_w2", ROWS_OWN},
	{"mlp_b2", ROWS_OWN},
	{"mlp_w3", ROWS_OWN},
	{"mlp_b3", ROWS_OWN},
	{"mlp_w4", ROWS_OWN},
	{"mlp_b4", ROWS_OWN},
};

/*
 * ---------------------------------------------------------------------------
 * Training state
 * ---------------------------------------------------------------------------
 */

typedef struct NeumfState
{
	BprTrainer	bpr;			/* pairs, negatives, the epoch loop */
	DslEngine  *engine;
	const Interactions *data;
	int			n_tensors;
	int			g;				/* GMF width (dim) */
	int			dm;				/* MLP embedding width */
	int			n_hidden;
	int			width[NEUMF_MAX_HIDDEN];
	int			wmax;			/* the widest hidden layer */
	NeumfLoss	loss;
	int			negatives;		/* per positive: 1 for BPR */
	float		reg;
	int			growth_batches;
	AdamCatchUp cu;				/* idle embedding rows follow dense Adam */

	/* the batch's embedding rows: GMF's, and the MLP's by the same slots */
	BatchRows	users;
	BatchRows	users_m;
	BatchRows	items;
	BatchRows	items_m;

	/* the step: evaluations e = (user slot eu[e], item slot ei[e]) */
	int			ne;
	int			ecap;
	int32	   *eu;
	int32	   *ei;
	int32	   *negs;			/* negatives x batch: the sampled items */
	float	   *score;			/* ne: s(u, i) */
	float	   *cs;				/* ne: d loss / d s */
	double	   *eloss;			/* ne (log loss: the per-pair losses) */
	double	   *reg_slot[4];	/* per slot of users, users_m, items, items_m */
	double		layer_reg[1];	/* the layers' L2 term (adam_small) */

	/* the dense tensors (out, out_bias and the MLP's), densified per step */
	float	   *w[DSL_MAX_TENSORS];	/* by tensor index, T_OUT and above */
	float	   *gw[DSL_MAX_TENSORS];	/* their gradients */

	/* activations: x[l] is ne x width[l] (after relu); ua, ib: first layer's parts */
	float	   *x[NEUMF_MAX_HIDDEN];
	float	   *gx[2];			/* ping-pong: a layer's gradient, in blocks of
								 * NEUMF_CHUNK x wmax (phase_backward) */
	float	   *ua;				/* users cap x width[0]: W1u^T p'_u */
	float	   *ib;				/* items cap x width[0]: W1i^T q'_i + b1 */
	float	   *gua;
	float	   *gib;

	float	   *acc[DSL_MAX_TENSORS];	/* regrowth sums, during the window */

	/* the parallel phases (run_chunks) */
	int			claim;			/* the current run's next chunk */
	float	   *part;			/* per chunk of evaluations: partial sums */
	Size		part_len;		/* floats per chunk in part */
	int64		part_off[DSL_MAX_TENSORS];	/* offset by tensor; -1: none */

	/* validation (neumf_rank_users) */
	float	   *val_tiles;		/* the item rows, tiled (neumf_net.h) */
	float	   *val_w[DSL_MAX_TENSORS];
} NeumfState;

static int
neumf_max_width(const NeumfState *s)
{
	int			m = 1;

	for (int l = 0; l < s->n_hidden; l++)
		m = Max(m, s->width[l]);
	return m;
}

/* evaluations a step holds at most: BPR 2 per pair, log 1 + negatives */
static int
eval_cap(const NeumfOptions *o, int batch)
{
	return batch * (o->loss == NEUMF_LOSS_BPR ? 2 : 1 + o->negatives);
}

/*
 * Where each chunk's partial sums of a tensor's gradient go (phase_backward):
 * the output layer's and the hidden layers' after the first, whose sums run
 * over the evaluations; -1 for the rest (off may be NULL).  Returns the
 * floats per chunk.
 */
static Size
part_layout(int n_tensors, const TensorShape *shapes, int64 *off)
{
	Size		len = 0;

	for (int t = 0; t < n_tensors; t++)
	{
		bool		summed = t == T_OUT || t == T_OUT_BIAS || t >= T_W2;

		if (off)
			off[t] = summed ? (int64) len : -1;
		if (summed)
			len += (Size) shapes[t].rows * shapes[t].cols;
	}
	return len;
}

static int64
neumf_steps_per_epoch(const Interactions *d, const TrainParams *p)
{
	return (d->n_pairs + p->batch_size - 1) / p->batch_size;
}

static Size
neumf_work_bytes(const Interactions *d, const TrainParams *p)
{
	const NeumfOptions *o = (const NeumfOptions *) p->options;
	int			batch = p->batch_size;
	int			ecap = eval_cap(o, batch);
	int			dm = o->layers[0] / 2;
	int			wsum = 0,
				wmax = 1;
	Size		rows,
				slots,
				evals,
				dense = 0;
	TensorShape shapes[DSL_MAX_TENSORS] = {{0}};
	int			n = neumf_tensor_shapes(d, p, shapes);

	for (int l = 1; l < o->n_layers; l++)
	{
		wsum += o->layers[l];
		wmax = Max(wmax, o->layers[l]);
	}
	/* slot_of, in_batch and last_step of the four tables */
	rows = (Size) 2 * (d->n_users + d->n_items) * (sizeof(int32) + 2 * sizeof(int64));
	slots = (Size) (batch + (ecap - batch)) * 2 * (p->dim + dm + o->layers[1]) * sizeof(float) * 2;
	evals = (Size) ecap * ((wsum + 2 * wmax + 2) * sizeof(float) + 2 * sizeof(int32) + sizeof(double));
	for (int t = T_OUT; t < n; t++)
		dense += (Size) 3 * shapes[t].rows * shapes[t].cols * sizeof(float);
	dense += part_layout(n, shapes, NULL) * n_chunks(ecap, NEUMF_CHUNK) * sizeof(float);
	/* the regrowth sums of a window are dense */
	if (o->growth_batches != 1)
		rows += (Size) (d->n_users + d->n_items) * (p->dim + dm) * sizeof(float);
	/* validation: the item rows, and their tiled copy */
	rows += (Size) 2 * (d->n_items + NEUMF_LANES) * (p->dim + o->layers[1]) * sizeof(float);
	return bpr_work_bytes(d, p) + rows + slots + evals + dense +
		(Size) o->negatives * batch * sizeof(int32);
}

static float *
alloc_floats(Size n)
{
	return palloc_extended(Max(n, 1) * sizeof(float), MCXT_ALLOC_HUGE);
}

/*
 * Initial values: embeddings N(0, init_std^2) as drawn by the engine (MF's),
 * the layers Xavier-normal (std sqrt(2 / (fan_in + fan_out))) scaled by
 * init_std / 0.1 so that init_std keeps a meaning, biases at zero.
 */
static void
scale_weights(SparseTensor *t, double fan_in, double fan_out, bool bias)
{
	float		f = bias ? 0.0f : (float) (sqrt(2.0 / (fan_in + fan_out)) / 0.1);

	for (int64 k = 0; k < t->budget; k++)
		t->w[k] *= f;
}

static void *
neumf_create(DslEngine *e, const Interactions *d, const TrainParams *p)
{
	NeumfState *s = palloc0(sizeof(NeumfState));
	const NeumfOptions *o = (const NeumfOptions *) p->options;
	TensorShape shapes[DSL_MAX_TENSORS] = {{0}};
	int			batch = p->batch_size;
	int			wmax;
	static const char *const names[] = {"gmf_user", "gmf_item", "mlp_user", "mlp_item",
		"out", "out_bias", "mlp_w1_user", "mlp_w1_item", "mlp_b1", "mlp_w2", "mlp_b2",
	"mlp_w3", "mlp_b3", "mlp_w4", "mlp_b4"};

	s->engine = e;
	s->data = d;
	s->g = p->dim;
	s->dm = o->layers[0] / 2;
	s->n_hidden = o->n_layers - 1;
	for (int l = 0; l < s->n_hidden; l++)
		s->width[l] = o->layers[l + 1];
	s->loss = o->loss;
	s->negatives = o->loss == NEUMF_LOSS_BPR ? 1 : o->negatives;
	s->reg = (float) p->reg;
	s->growth_batches = Max(1, o->growth_batches);
	wmax = neumf_max_width(s);
	s->wmax = wmax;

	s->n_tensors = neumf_tensor_shapes(d, p, shapes);
	for (int t = 0; t < s->n_tensors; t++)
		(void) dsl_engine_add_tensor(e, names[t], shapes[t].rows, shapes[t].cols);
	scale_weights(e->tensors[T_OUT], s->width[s->n_hidden - 1], 1, false);
	scale_weights(e->tensors[T_OUT_BIAS], 1, 1, true);
	scale_weights(e->tensors[T_W1U], 2 * s->dm, s->width[0], false);
	scale_weights(e->tensors[T_W1I], 2 * s->dm, s->width[0], false);
	scale_weights(e->tensors[T_B1], 1, 1, true);
	for (int l = 2; l <= s->n_hidden; l++)
	{
		scale_weights(e->tensors[T_W(l)], s->width[l - 2], s->width[l - 1], false);
		scale_weights(e->tensors[T_B(l)], 1, 1, true);
	}

	bpr_init(&s->bpr, e, d, p);
	batch_rows_init(&s->users, e->tensors[T_P], Min(batch, d->n_users));
	batch_rows_init_alias(&s->users_m, &s->users, e->tensors[T_PM]);
	batch_rows_init(&s->items, e->tensors[T_Q],
					(int) Min((int64) (1 + s->negatives) * batch, (int64) d->n_items));
	batch_rows_init_alias(&s->items_m, &s->items, e->tensors[T_QM]);
	adam_catchup_init(&s->cu, &e->cfg.adam);

	s->ecap = eval_cap(o, batch);
	s->eu = palloc(sizeof(int32) * s->ecap);
	s->ei = palloc(sizeof(int32) * s->ecap);
	s->negs = palloc(sizeof(int32) * (Size) s->negatives * batch);
	s->score = alloc_floats(s->ecap);
	s->cs = alloc_floats(s->ecap);
	s->eloss = palloc_extended(sizeof(double) * s->ecap, MCXT_ALLOC_HUGE);
	s->reg_slot[0] = palloc(sizeof(double) * s->users.cap);
	s->reg_slot[1] = palloc(sizeof(double) * s->users.cap);
	s->reg_slot[2] = palloc(sizeof(double) * s->items.cap);
	s->reg_slot[3] = palloc(sizeof(double) * s->items.cap);
	for (int t = T_OUT; t < s->n_tensors; t++)
	{
		s->w[t] = alloc_floats((Size) shapes[t].rows * shapes[t].cols);
		s->gw[t] = alloc_floats((Size) shapes[t].rows * shapes[t].cols);
	}
	for (int l = 0; l < s->n_hidden; l++)
		s->x[l] = alloc_floats((Size) s->ecap * s->width[l]);
	s->gx[0] = alloc_floats((Size) s->ecap * wmax);
	s->gx[1] = alloc_floats((Size) s->ecap * wmax);
	s->part_len = part_layout(s->n_tensors, shapes, s->part_off);
	s->part = alloc_floats(s->part_len * n_chunks(s->ecap, NEUMF_CHUNK));
	s->ua = alloc_floats((Size) s->users.cap * s->width[0]);
	s->gua = alloc_floats((Size) s->users.cap * s->width[0]);
	s->ib = alloc_floats((Size) s->items.cap * s->width[0]);
	s->gib = alloc_floats((Size) s->items.cap * s->width[0]);
	return s;
}

/*
 * ---------------------------------------------------------------------------
 * One step
 * ---------------------------------------------------------------------------
 */

/* densify the dense tensors (all rows) from `tensors` into w */
static void
densify_small(SparseTensor *const *tensors, int n_tensors, float **w)
{
	for (int t = T_OUT; t < n_tensors; t++)
		for (int r = 0; r < tensors[t]->n_rows; r++)
			sparse_tensor_row_dense(tensors[t], r, w[t] + (Size) r * tensors[t]->dim);
}

static void
phase_densify(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	int64		lo,
				hi;

	worker_share(s->users.n, part, n_parts, &lo, &hi);
	batch_densify(&s->users, &s->cu, lo, hi);
	batch_densify(&s->users_m, &s->cu, lo, hi);
	worker_share(s->items.n, part, n_parts, &lo, &hi);
	batch_densify(&s->items, &s->cu, lo, hi);
	batch_densify(&s->items_m, &s->cu, lo, hi);
}

static void
phase_adam(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	float		rs = s->reg * s->bpr.inv_nb;
	DslEngine  *e = s->engine;
	int64		lo,
				hi;

	worker_share(s->users.n, part, n_parts, &lo, &hi);
	batch_rows_adam(&s->users, e, rs, s->acc[T_P], s->reg_slot[0], lo, hi);
	batch_rows_adam(&s->users_m, e, rs, s->acc[T_PM], s->reg_slot[1], lo, hi);
	worker_share(s->items.n, part, n_parts, &lo, &hi);
	batch_rows_adam(&s->items, e, rs, s->acc[T_Q], s->reg_slot[2], lo, hi);
	batch_rows_adam(&s->items_m, e, rs, s->acc[T_QM], s->reg_slot[3], lo, hi);
}

/*
 * The step's evaluations: the pairs' users and items (and sampled items)
 * as slots, positives first; for BPR evaluation t + np is the negative of
 * positive t.  Returns the number of positives.
 */
static int
make_evaluations(NeumfState *s, const int32 *pairs, int nb)
{
	BprTrainer *b = &s->bpr;
	DslEngine  *e = s->engine;
	int			k = s->negatives;
	int			np = 0;

	for (int r = 0; r < k; r++)
	{
		bpr_sample_negatives(b, pairs, nb, (uint64) e->step * 64 + (uint64) r);
		memcpy(s->negs + (Size) r * nb, b->neg, sizeof(int32) * nb);
	}
	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;

		if (s->negs[t] < 0)
			continue;			/* the user has seen everything */
		bit_set(s->users.in_batch, pair[0]);
		bit_set(s->items.in_batch, pair[1]);
		for (int r = 0; r < k; r++)
			bit_set(s->items.in_batch, s->negs[(Size) r * nb + t]);
	}
	batch_assign_slots(&s->users);
	batch_assign_slots(&s->items);
	batch_rows_follow(&s->users_m, &s->users);
	batch_rows_follow(&s->items_m, &s->items);

	for (int t = 0; t < nb; t++)
		if (s->negs[t] >= 0)
			np++;
	s->ne = 0;
	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;
		int			u,
					e0 = s->ne;

		if (s->negs[t] < 0)
			continue;
		u = s->users.slot_of[pair[0]];
		s->eu[e0] = u;
		s->ei[e0] = s->items.slot_of[pair[1]];
		/* the L2 term counts a user once per triple (BPR) or per pair */
		s->users.count[u] += s->loss == NEUMF_LOSS_BPR ? 1 : 1 + k;
		s->items.count[s->ei[e0]]++;
		for (int r = 0; r < k; r++)
		{
			int			n = np + (e0 * k) + r;

			s->eu[n] = u;
			s->ei[n] = s->items.slot_of[s->negs[(Size) r * nb + t]];
			s->items.count[s->ei[n]]++;
		}
		s->ne++;
	}
	s->ne = np * (1 + k);		/* the positives, then their negatives */
	return np;
}

/* c[m x n] = a[m x k] b[k x n]: row-major sgemm */
static inline void
gemm_nn(int m, int n, int k, const float *a, const float *b, float *c)
{
	if (m > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k,
					1.0f, a, k, b, n, 0.0f, c, n);
}

/* c[k x n] = a[m x k]^T b[m x n] */
static inline void
gemm_tn(int m, int n, int k, const float *a, const float *b, float *c)
{
	if (m > 0)
		cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, n, m,
					1.0f, a, k, b, n, 0.0f, c, n);
	else
		memset(c, 0, sizeof(float) * k * n);
}

/* c[m x k] = a[m x n] b[k x n]^T */
static inline void
gemm_nt(int m, int n, int k, const float *a, const float *b, float *c)
{
	if (m > 0)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, k, n,
					1.0f, a, n, b, n, 0.0f, c, k);
}

static inline float
relu(float v)
{
	return v > 0 ? v : 0;
}

/*
 * The step's layers run on the worker pool in chunks of a fixed size
 * (worker_claim), each chunk a few single-threaded sgemm calls.  A chunk's
 * rows and its partial sums do not depend on the number of threads, and
 * the partial sums are added in chunk order, so the model does not either.
 */
static void
run_chunks(NeumfState *s, WorkerFn fn)
{
	s->claim = 0;
	worker_pool_run(s->bpr.pool, fn, s);
}

/* chunk c of the batch's slots, users' chunks first: its side and rows */
static void
slot_chunk(const NeumfState *s, int c, bool *item, int *r0, int *r1)
{
	int			nu = n_chunks(s->users.n, NEUMF_CHUNK);

	*item = c >= nu;
	*r0 = (*item ? c - nu : c) * NEUMF_CHUNK;
	*r1 = Min(*item ? s->items.n : s->users.n, *r0 + NEUMF_CHUNK);
}

/*
 * Row e of a layer's gradient `width` wide in gx[buf]: a chunk keeps its
 * rows of every layer in its own block (NEUMF_CHUNK x wmax from its first
 * evaluation on), since the widths differ from layer to layer and rows at
 * e x width would run into the next chunk's.
 */
static inline float *
grad_row(const NeumfState *s, int buf, int e, int width)
{
	return s->gx[buf] + (Size) (e - e % NEUMF_CHUNK) * s->wmax +
		(Size) (e % NEUMF_CHUNK) * width;
}

/* the first layer's parts: ua = p' W1u, ib = q' W1i + b_1, by chunks of slots */
static void
phase_first(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	const int	w0 = s->width[0],
				nu = n_chunks(s->users.n, NEUMF_CHUNK),
				ni = n_chunks(s->items.n, NEUMF_CHUNK);

	for (int c; (c = worker_claim(&s->claim)) < nu + ni;)
	{
		bool		item;
		int			r0,
					r1;
		const float *emb;
		float	   *out;

		slot_chunk(s, c, &item, &r0, &r1);
		emb = (item ? s->items_m.emb : s->users_m.emb) + (Size) r0 * s->dm;
		out = (item ? s->ib : s->ua) + (Size) r0 * w0;
		gemm_nn(r1 - r0, w0, s->dm, emb, s->w[item ? T_W1I : T_W1U], out);
		if (item)
			for (int r = 0; r < r1 - r0; r++)
				for (int o = 0; o < w0; o++)
					out[(Size) r * w0 + o] += s->w[T_B1][o];
	}
}

/*
 * Scores of a chunk of the step's evaluations from the batch's first-layer
 * parts and the densified layers: x[0] = relu(ua[u] + ib[i]), x[l] =
 * relu(x[l-1] W_l + b_l), s = p . q + h . x[L-1] + b.
 */
static void
phase_forward(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	const int	g = s->g,
				w0 = s->width[0],
				L = s->n_hidden,
				ne = s->ne;
	const float *hm = s->w[T_OUT];
	const float bout = s->w[T_OUT_BIAS][0];

	for (int c; (c = worker_claim(&s->claim)) < n_chunks(ne, NEUMF_CHUNK);)
	{
		const int	e0 = c * NEUMF_CHUNK,
					e1 = Min(ne, e0 + NEUMF_CHUNK);

		for (int e = e0; e < e1; e++)
		{
			const float *a = s->ua + (Size) s->eu[e] * w0;
			const float *bb = s->ib + (Size) s->ei[e] * w0;
			float	   *x = s->x[0] + (Size) e * w0;

			for (int o = 0; o < w0; o++)
				x[o] = relu(a[o] + bb[o]);
		}
		for (int l = 1; l < L; l++)
		{
			const int	wi = s->width[l - 1],
						wo = s->width[l];
			const float *bias = s->w[T_B(l + 1)];
			float	   *x = s->x[l] + (Size) e0 * wo;

			gemm_nn(e1 - e0, wo, wi, s->x[l - 1] + (Size) e0 * wi, s->w[T_W(l + 1)], x);
			for (Size k = 0; k < (Size) (e1 - e0) * wo; k++)
				x[k] = relu(x[k] + bias[k % wo]);
		}
		for (int e = e0; e < e1; e++)
		{
			const float *p = s->users.emb + (Size) s->eu[e] * g;
			const float *q = s->items.emb + (Size) s->ei[e] * g;
			const float *x = s->x[L - 1] + (Size) e * s->width[L - 1];
			float		v = bout;

			for (int k = 0; k < g; k++)
				v += p[k] * q[k];
			for (int k = 0; k < s->width[L - 1]; k++)
				v += hm[k] * x[k];
			s->score[e] = v;
		}
	}
}

/* the step's scores: the first layer's parts, then every evaluation */
static void
forward(NeumfState *s)
{
	dsl_blas_prepare(false);
	run_chunks(s, phase_first);
	run_chunks(s, phase_forward);
}

/* the loss of each evaluation and its derivative cs by the score */
static void
losses(NeumfState *s, int np)
{
	BprTrainer *b = &s->bpr;

	if (s->loss == NEUMF_LOSS_BPR)
	{
		b->inv_nb = 1.0f / (float) np;
		for (int t = 0; t < np; t++)
		{
			float		c;

			bpr_pair_loss(s->score[t] - s->score[np + t], b->inv_nb, &c, &s->eloss[t]);
			s->cs[t] = c;
			s->cs[np + t] = -c;
		}
	}
	else
	{
		b->inv_nb = 1.0f / (float) s->ne;
		for (int e = 0; e < s->ne; e++)
			bpr_point_loss(s->score[e], e < np, b->inv_nb, &s->cs[e], &s->eloss[e]);
	}
	b->loss = s->eloss;
}

/*
 * Backward through the output layer and the hidden layers for a chunk of
 * evaluations: the gradient of x[0] in gx[(L - 1) % 2], and the chunk's
 * partial sums of the output layer's and hidden layers' gradients in its
 * slice of s->part (offsets part_off, by tensor); rows by grad_row.
 */
static void
phase_backward(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	const int	L = s->n_hidden,
				ne = s->ne,
				wl = s->width[L - 1];
	const float *hm = s->w[T_OUT];

	for (int c; (c = worker_claim(&s->claim)) < n_chunks(ne, NEUMF_CHUNK);)
	{
		const int	e0 = c * NEUMF_CHUNK,
					e1 = Min(ne, e0 + NEUMF_CHUNK),
					m = e1 - e0;
		float	   *pp = s->part + (Size) c * s->part_len;
		float	   *gout = pp + s->part_off[T_OUT];
		float		gb = 0;
		int			cur = 0;

		memset(gout, 0, sizeof(float) * wl);
		for (int e = e0; e < e1; e++)
		{
			const float ce = s->cs[e];
			const float *x = s->x[L - 1] + (Size) e * wl;
			float	   *gx = grad_row(s, 0, e, wl);

			for (int k = 0; k < wl; k++)
			{
				gout[k] += ce * x[k];
				gx[k] = x[k] > 0 ? ce * hm[k] : 0;
			}
			gb += ce;
		}
		pp[s->part_off[T_OUT_BIAS]] = gb;

		/* down the hidden layers: gx[cur] is x[l]'s gradient (relu's included) */
		for (int l = L - 1; l >= 1; l--)
		{
			const int	wi = s->width[l - 1],
						wo = s->width[l];
			const float *gcur = grad_row(s, cur, e0, wo);
			float	   *gnext = grad_row(s, 1 - cur, e0, wi);
			float	   *gbias = pp + s->part_off[T_B(l + 1)];
			const float *xin = s->x[l - 1] + (Size) e0 * wi;

			gemm_tn(m, wo, wi, xin, gcur, pp + s->part_off[T_W(l + 1)]);
			memset(gbias, 0, sizeof(float) * wo);
			for (int e = 0; e < m; e++)
				for (int o = 0; o < wo; o++)
					gbias[o] += gcur[(Size) e * wo + o];
			gemm_nt(m, wo, wi, gcur, s->w[T_W(l + 1)], gnext);
			for (Size k = 0; k < (Size) m * wi; k++)
				if (xin[k] <= 0)
					gnext[k] = 0;
			cur = 1 - cur;
		}
	}
}

/*
 * The first layer's weight gradients by chunks of columns (gW1u = p'^T
 * gua, gW1i = q'^T gib), and the MLP embeddings' gradients by chunks of
 * slots (gua W1u^T, gib W1i^T).
 */
static void
phase_first_back(void *arg, int part, int n_parts)
{
	NeumfState *s = (NeumfState *) arg;
	const int	w0 = s->width[0],
				dm = s->dm,
				ncol = n_chunks(w0, NEUMF_COL_CHUNK),
				nu = n_chunks(s->users.n, NEUMF_CHUNK),
				ni = n_chunks(s->items.n, NEUMF_CHUNK);

	for (int c; (c = worker_claim(&s->claim)) < 2 * ncol + nu + ni;)
	{
		if (c < 2 * ncol)
		{
			bool		item = c >= ncol;
			int			c0 = (item ? c - ncol : c) * NEUMF_COL_CHUNK,
						c1 = Min(w0, c0 + NEUMF_COL_CHUNK);
			int			n = item ? s->items.n : s->users.n;
			float	   *gw = s->gw[item ? T_W1I : T_W1U] + c0;

			if (n == 0)
				for (int r = 0; r < dm; r++)
					memset(gw + (Size) r * w0, 0, sizeof(float) * (c1 - c0));
			else
				cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, dm, c1 - c0, n,
							1.0f, item ? s->items_m.emb : s->users_m.emb, dm,
							(item ? s->gib : s->gua) + c0, w0, 0.0f, gw, w0);
		}
		else
		{
			bool		item;
			int			r0,
						r1;
			const float *ga;
			float	   *grad;

			slot_chunk(s, c - 2 * ncol, &item, &r0, &r1);
			ga = (item ? s->gib : s->gua) + (Size) r0 * w0;
			grad = (item ? s->items_m.grad : s->users_m.grad) + (Size) r0 * dm;
			gemm_nt(r1 - r0, w0, dm, ga, s->w[item ? T_W1I : T_W1U], grad);
		}
	}
}

/* gradients of every parameter the step touched, from cs */
static void
backward(NeumfState *s)
{
	const int	g = s->g,
				w0 = s->width[0],
				L = s->n_hidden,
				ne = s->ne,
				nc = n_chunks(ne, NEUMF_CHUNK);
	double		gb = 0;

	run_chunks(s, phase_backward);

	/* the chunks' partial sums, in chunk order */
	for (int t = T_OUT; t < s->n_tensors; t++)
	{
		Size		n = (Size) s->engine->tensors[t]->n_rows * s->engine->tensors[t]->dim;

		if (s->part_off[t] < 0 || t == T_OUT_BIAS)
			continue;
		memset(s->gw[t], 0, sizeof(float) * n);
		for (int c = 0; c < nc; c++)
		{
			const float *pp = s->part + (Size) c * s->part_len + s->part_off[t];

			for (Size k = 0; k < n; k++)
				s->gw[t][k] += pp[k];
		}
	}
	for (int c = 0; c < nc; c++)
		gb += s->part[(Size) c * s->part_len + s->part_off[T_OUT_BIAS]];
	/* BPR: the bias cancels out of every term; its sum here is rounding */
	s->gw[T_OUT_BIAS][0] = s->loss == NEUMF_LOSS_BPR ? 0.0f : (float) gb;

	/* GMF's embeddings */
	memset(s->users.grad, 0, sizeof(float) * s->users.n * g);
	memset(s->items.grad, 0, sizeof(float) * s->items.n * g);
	for (int e = 0; e < ne; e++)
	{
		const float c = s->cs[e];
		const float *p = s->users.emb + (Size) s->eu[e] * g;
		const float *q = s->items.emb + (Size) s->ei[e] * g;
		float	   *gp = s->users.grad + (Size) s->eu[e] * g;
		float	   *gq = s->items.grad + (Size) s->ei[e] * g;

		for (int k = 0; k < g; k++)
		{
			gp[k] += c * q[k];
			gq[k] += c * p[k];
		}
	}

	/* the first layer: its user and item parts, then the MLP embeddings */
	memset(s->gua, 0, sizeof(float) * s->users.n * w0);
	memset(s->gib, 0, sizeof(float) * s->items.n * w0);
	for (int e = 0; e < ne; e++)
	{
		const float *gx = grad_row(s, (L - 1) % 2, e, w0);
		float	   *ga = s->gua + (Size) s->eu[e] * w0;
		float	   *gi = s->gib + (Size) s->ei[e] * w0;

		for (int o = 0; o < w0; o++)
		{
			ga[o] += gx[o];
			gi[o] += gx[o];
		}
	}
	for (int o = 0; o < w0; o++)
		s->gw[T_B1][o] = 0;
	for (int i = 0; i < s->items.n; i++)
		for (int o = 0; o < w0; o++)
			s->gw[T_B1][o] += s->gib[(Size) i * w0 + o];
	run_chunks(s, phase_first_back);
}

/* Adam on every row of the dense tensors (their regrowth sums first) */
/*
 * The layers' weight matrices (not their biases, not the output weights)
 * take the L2 term reg/2 |W|^2 in every step: each of their weights is in
 * every scored pair.  Without it the MLP overfits: Gowalla, defaults, test
 * Recall@20 0.0921 -> 0.1500; Last.fm 0.1816 -> 0.2696 (docs/neumf.md).
 */
static inline bool
is_layer_weight(int t)
{
	return t == T_W1U || t == T_W1I || (t >= T_W2 && (t - T_W2) % 2 == 0);
}

static void
adam_small(NeumfState *s)
{
	DslEngine  *e = s->engine;

	s->layer_reg[0] = 0;

	for (int t = T_OUT; t < s->n_tensors; t++)
	{
		SparseTensor *x = e->tensors[t];
		Size		n = (Size) x->n_rows * x->dim;

		if (is_layer_weight(t))
		{
			double		sq = 0;

			for (Size k = 0; k < n; k++)
			{
				s->gw[t][k] += s->reg * s->w[t][k];
				sq += (double) s->w[t][k] * s->w[t][k];
			}
			s->layer_reg[0] += 0.5 * s->reg * sq;
		}
		if (s->acc[t])
			for (Size k = 0; k < n; k++)
				s->acc[t][k] += s->gw[t][k];
		for (int r = 0; r < x->n_rows; r++)
			sparse_tensor_adam_row(x, r, s->gw[t] + (Size) r * x->dim,
								   &e->adam, e->bc1, e->bc2);
	}
}

/*
 * The regrowth signal of a round is every tensor's gradient summed over
 * the growth_batches steps before it (MF's rule: a mini-batch's gradient
 * touches few embedding rows).  The sums are dense and exist only during
 * that window.
 */
static void
alloc_sums(NeumfState *s)
{
	DslEngine  *e = s->engine;

	for (int t = 0; t < s->n_tensors; t++)
		s->acc[t] = dsl_alloc_huge((Size) e->tensors[t]->n_rows * e->tensors[t]->dim *
								   sizeof(float), true);
	dsl_mem_note();
}

static void
regrowth_window(NeumfState *s)
{
	if (dsl_engine_in_growth_window(s->engine, s->growth_batches) && s->acc[0] == NULL)
		alloc_sums(s);
}

static void
catch_up_all(NeumfState *s)
{
	static const int emb[] = {T_P, T_Q, T_PM, T_QM};

	adam_catchup_advance(&s->cu, s->engine->step);
	for (int k = 0; k < lengthof(emb); k++)
		sparse_tensor_catch_up_all(s->engine->tensors[emb[k]], &s->cu, s->engine->pool);
}

static int
neumf_step(void *state, const int32 *pairs, int nb, bool round_due)
{
	NeumfState *s = (NeumfState *) state;
	BprTrainer *b = &s->bpr;
	DslEngine  *e = s->engine;
	int			np;

	adam_catchup_set_lr(&s->cu, e->step, e->adam.lr);
	adam_catchup_advance(&s->cu, e->step - 1);
	regrowth_window(s);

	np = make_evaluations(s, pairs, nb);
	if (np == 0)
		return 0;
	worker_pool_run(b->pool, phase_densify, s);
	densify_small(e->tensors, s->n_tensors, s->w);
	forward(s);
	losses(s, np);
	backward(s);
	worker_pool_run(b->pool, phase_adam, s);
	adam_small(s);

	b->n_reg = 5;
	b->reg[4] = s->layer_reg;
	b->reg_n[4] = 1;
	b->reg[0] = s->reg_slot[0];
	b->reg[1] = s->reg_slot[1];
	b->reg[2] = s->reg_slot[2];
	b->reg[3] = s->reg_slot[3];
	b->reg_n[0] = b->reg_n[1] = s->users.n;
	b->reg_n[2] = b->reg_n[3] = s->items.n;
	return s->loss == NEUMF_LOSS_BPR ? np : s->ne;
}

/* a round with the window's sums (every tensor has one) */
static void
neumf_round(void *state)
{
	NeumfState *s = (NeumfState *) state;
	TensorGrad	g[DSL_MAX_TENSORS];

	catch_up_all(s);
	if (s->acc[0] == NULL)
	{
		/* a window of one step: that step's gradients */
		alloc_sums(s);
		for (int t = T_OUT; t < s->n_tensors; t++)
			memcpy(s->acc[t], s->gw[t], sizeof(float) *
				   s->engine->tensors[t]->n_rows * s->engine->tensors[t]->dim);
		for (int k = 0; k < 4; k++)
		{
			BatchRows  *br = k == 0 ? &s->users : k == 1 ? &s->items :
				k == 2 ? &s->users_m : &s->items_m;
			int			dim = br->t->dim;

			for (int i = 0; i < br->n; i++)
				memcpy(s->acc[k] + (Size) br->rows[i] * dim, br->grad + (Size) i * dim,
					   sizeof(float) * dim);
		}
	}
	for (int t = 0; t < s->n_tensors; t++)
	{
		g[t].n = s->engine->tensors[t]->n_rows;
		g[t].rows = NULL;
		g[t].g = s->acc[t];
		g[t].consume = true;
		s->acc[t] = NULL;
	}
	dsl_engine_update(s->engine, g);
}

static void
neumf_end_epoch(void *state)
{
	catch_up_all((NeumfState *) state);
}

static const BprModel neumf_bpr = {
	.step = neumf_step,
	.round = neumf_round,
	.end_epoch = neumf_end_epoch,
};

static double
neumf_train_epoch(void *state)
{
	NeumfState *s = (NeumfState *) state;

	return bpr_train_epoch(&s->bpr, &neumf_bpr, s);
}

/* GMF's tables: what train_store would store as 'user' and 'item' (it
 * stores the tensors themselves: tensor_parts) */
static void
neumf_serving(void *state, SparseTensor *const *tensors,
			  EmbeddingSource *users, EmbeddingSource *items)
{
	*users = embedding_source_fill(sparse_tensor_fill_rows, tensors[T_P],
								   tensors[T_P]->n_rows, tensors[T_P]->dim);
	*items = embedding_source_fill(sparse_tensor_fill_rows, tensors[T_Q],
								   tensors[T_Q]->n_rows, tensors[T_Q]->dim);
}

/*
 * ---------------------------------------------------------------------------
 * Validation: users ranked against every item by the served score
 * ---------------------------------------------------------------------------
 */

/* what the workers of a validation ranking share */
typedef struct RankJob
{
	NeumfState *s;
	NeumfNet	net;
	SparseTensor *const *tensors;
	const float *w1u;
	const int32 *users;
	int			n_users;
	const IndexCSR *exclude;
	int			k;
	int			rep;
	int32	   *top_idx;		/* n_users x k */
	float	   *top_score;
	int		   *top_n;
	float	  **buf;			/* per part: n_items scores, then k + k */
} RankJob;

/* the user representation [p_u ; W1u^T p'_u] of user row u */
static void
user_rep(const RankJob *j, int u, float *p, float *pm, float *rep)
{
	sparse_tensor_row_dense(j->tensors[T_P], u, p);
	sparse_tensor_row_dense(j->tensors[T_PM], u, pm);
	neumf_net_rep(&j->net, j->s->dm, j->w1u, NULL, p, pm, rep);
}

static void
phase_rank(void *arg, int part, int n_parts)
{
	RankJob    *j = (RankJob *) arg;
	const NeumfState *s = j->s;
	const int	n_items = s->data->n_items;
	float	   *scores = j->buf[part];
	float	   *hs = scores + n_items;
	int32	   *hi = (int32 *) (hs + j->k);
	float	   *p = (float *) (hi + j->k);
	float	   *pm = p + s->g;
	float	   *rep = pm + s->dm;
	int64		lo,
				up;

	worker_share(j->n_users, part, n_parts, &lo, &up);
	for (int64 n = lo; n < up; n++)
	{
		int			u = j->users[n];
		const int32 *ex = NULL;
		int64		n_ex = 0,
					x = 0;
		TopK		h;

		user_rep(j, u, p, pm, rep);
		neumf_net_score_all(&j->net, rep, s->val_tiles, n_items, scores);
		if (j->exclude)
		{
			ex = j->exclude->idx + j->exclude->ptr[u];
			n_ex = j->exclude->ptr[u + 1] - j->exclude->ptr[u];
		}
		topk_init(&h, j->k, hs, hi);
		for (int i = 0; i < n_items; i++)
		{
			while (x < n_ex && ex[x] < i)
				x++;
			if (x < n_ex && ex[x] == i)
				continue;
			topk_offer(&h, scores[i], i);
		}
		j->top_n[n] = topk_sort(&h);
		memcpy(j->top_idx + n * j->k, h.idx, sizeof(int32) * j->top_n[n]);
		memcpy(j->top_score + n * j->k, h.score, sizeof(float) * j->top_n[n]);
	}
}

/*
 * ModelOps.rank_users: the item rows [q_i ; W1i^T q'_i + b_1] of `tensors`
 * once (derived as the scorer derives them, so the scores are the served
 * ones bit for bit), then each user's scores through neumf_net_score, as
 * the served model scores (scorer_neumf.c); users shared out over the pool
 * in blocks, emitted in list order from the backend.
 */
static void
neumf_rank_users(void *state, SparseTensor *const *tensors,
				 const int32 *users, int n_users, const IndexCSR *exclude,
				 int k, Size mem_bytes, TopKEmit emit, void *emit_arg)
{
	NeumfState *s = (NeumfState *) state;
	DslEngine  *e = s->engine;
	const int	n_items = s->data->n_items;
	const int	g = s->g,
				w0 = s->width[0];
	int			n_parts = worker_pool_size(e->pool);
	int			block = 256;
	RankJob		j;
	float	   *q,
			   *qm,
			   *rows;

	neumf_net_prepare();
	memset(&j, 0, sizeof(j));
	j.s = s;
	j.tensors = tensors;
	j.exclude = exclude;
	j.k = k;
	j.rep = g + w0;

	/* the dense tensors as given (the live ones or a snapshot) */
	for (int t = T_OUT; t < s->n_tensors; t++)
		if (s->val_w[t] == NULL)
			s->val_w[t] = alloc_floats((Size) tensors[t]->n_rows * tensors[t]->dim);
	densify_small(tensors, s->n_tensors, s->val_w);
	j.w1u = s->val_w[T_W1U];
	j.net.gmf_dim = g;
	j.net.n_hidden = s->n_hidden;
	for (int l = 0; l < s->n_hidden; l++)
		j.net.width[l] = s->width[l];
	for (int l = 2; l <= s->n_hidden; l++)
	{
		j.net.w[l - 1] = s->val_w[T_W(l)];
		j.net.b[l - 1] = s->val_w[T_B(l)];
	}
	j.net.h_mlp = s->val_w[T_OUT];
	j.net.out_bias = s->val_w[T_OUT_BIAS][0];

	/* the item rows as the scorer derives them (neumf_net_rep), tiled */
	rows = alloc_floats((Size) n_items * j.rep);
	q = alloc_floats(g);
	qm = alloc_floats(s->dm);
	for (int i = 0; i < n_items; i++)
	{
		sparse_tensor_row_dense(tensors[T_Q], i, q);
		sparse_tensor_row_dense(tensors[T_QM], i, qm);
		neumf_net_rep(&j.net, s->dm, s->val_w[T_W1I], s->val_w[T_B1], q, qm,
					  rows + (Size) i * j.rep);
	}
	if (s->val_tiles == NULL)
		s->val_tiles = alloc_floats(neumf_net_tiled_floats(&j.net, n_items));
	neumf_net_tile(&j.net, rows, j.rep, n_items, s->val_tiles);
	pfree(q);
	pfree(qm);
	pfree(rows);

	j.buf = palloc(sizeof(float *) * n_parts);
	for (int p = 0; p < n_parts; p++)
		j.buf[p] = alloc_floats((Size) n_items + 2 * k + g + s->dm + j.rep);
	j.top_idx = palloc(sizeof(int32) * block * k);
	j.top_score = palloc(sizeof(float) * block * k);
	j.top_n = palloc(sizeof(int) * block);
	for (int lo = 0; lo < n_users; lo += block)
	{
		CHECK_FOR_INTERRUPTS();
		j.users = users + lo;
		j.n_users = Min(block, n_users - lo);
		worker_pool_run(e->pool, phase_rank, &j);
		for (int n = 0; n < j.n_users; n++)
			emit(emit_arg, j.users[n], j.top_idx + (Size) n * k,
				 j.top_score + (Size) n * k, j.top_n[n]);
	}
	for (int p = 0; p < n_parts; p++)
		pfree(j.buf[p]);
	pfree(j.buf);
	pfree(j.top_idx);
	pfree(j.top_score);
	pfree(j.top_n);
}

const ModelOps neumf_ops = {
	.type = "neumf",
	.option_keys = "mlp_layers, loss, negatives, growth_batches",
	.shape_keys = "mlp_layers",
	.options_size = sizeof(NeumfOptions),
	.default_dim = 64,
	.min_dim = 1,
	.default_interval_epochs = 2,
	.default_lr = 0.005,
	.default_reg = 0.01,
	.init_options = neumf_init_options,
	.set_option = neumf_set_option,
	.finish_options = neumf_finish_options,
	.write_hyperparams = neumf_write_hyperparams,
	.tensor_shapes = neumf_tensor_shapes,
	.work_bytes = neumf_work_bytes,
	.default_batch_size = bpr_default_batch_size,
	.steps_per_epoch = neumf_steps_per_epoch,
	.create = neumf_create,
	.train_epoch = neumf_train_epoch,
	.serving = neumf_serving,
	.rank_users = neumf_rank_users,
	.tensor_parts = neumf_tensor_parts,
	.scorer = &neumf_scorer,
};
