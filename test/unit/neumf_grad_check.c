/*
 * neumf_grad_check.c - NeuMF's gradients against central finite differences
 * of its loss, and its validation ranking against a direct forward pass
 *
 * Built with src/neumf.c itself (included below, so that its static step
 * functions are reachable), the BPR layer, the engine and the fuzz
 * harnesses' shim for palloc.  Small data sets, sparse masks, both losses
 * and several MLP shapes: one step with the learning rate 0 keeps every
 * gradient (the batch's embedding rows by slot, the dense tensors whole);
 * each active weight is then moved by +-h (smaller h when a relu switches
 * in between) and the step evaluated again at the same optimizer step (so with the same sampled negatives) to compare
 * (L(w + h) - L(w - h)) / 2h with it, L being the step's mean loss plus its
 * L2 term.  Then every (user, item) score of neumf_rank_users' kernel is
 * compared with the training forward pass of that pair.
 */
#include "neumf.c"

#include <float.h>
#include <stdio.h>

#include "mem_peak.h"
#include "backend_stubs.h"
#include "shim.h"

/* what neumf.c refers to beyond the engine (backend_stubs.c has the rest) */
const Scorer neumf_scorer;

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

void
appendStringInfoString(StringInfo str, const char *s)
{
	abort();
}

int
dsl_option_int(const char *key, const JsonbValue *v, int lo, int hi)
{
	abort();
}

JsonbIterator *
JsonbIteratorInit(JsonbContainer *container)
{
	abort();
}

JsonbIteratorToken
JsonbIteratorNext(JsonbIterator **it, JsonbValue *val, bool skipNested)
{
	abort();
}

Datum
DirectFunctionCall1Coll(PGFunction func, Oid collation, Datum arg1)
{
	abort();
}

Datum
numeric_float8(PG_FUNCTION_ARGS)
{
	abort();
}

typedef struct Case
{
	int			n_users;
	int			n_items;
	int			dim;
	int			n_layers;
	int			layers[NEUMF_MAX_HIDDEN + 1];
	NeumfLoss	loss;
	int			negatives;
	double		density;
	double		reg;
} Case;

static const Case cases[] = {
	{6, 13, 4, 4, {6, 5, 4, 3}, NEUMF_LOSS_BPR, 1, 0.6, 0.01},
	{7, 17, 5, 2, {4, 6}, NEUMF_LOSS_LOG, 3, 0.7, 0.05},
	{5, 11, 3, 5, {8, 7, 5, 4, 3}, NEUMF_LOSS_BPR, 1, 1.0, 0.0},
	{8, 19, 6, 3, {10, 8, 4}, NEUMF_LOSS_LOG, 2, 0.5, 0.0},
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
		d->ptr[u] = n;
		/* 2 to 5 items each, never all of them */
		for (int i = 0; i < c->n_items; i++)
			if (dsl_rng_below(rng, (uint64) c->n_items) < 2 + (uint64) (u % 4) ||
				(i == c->n_items - 1 && n == d->ptr[u]))
				d->items[n++] = i;
	}
	d->ptr[c->n_users] = n;
	d->n_pairs = n;
	return d;
}

/* the step's loss: its evaluations' mean loss plus its L2 term */
static double
loss_at(NeumfState *s, const int32 *pairs, int nb)
{
	BprTrainer *b = &s->bpr;
	int			n;
	double		l = 0;

	/* the same step again: its learning rate is recorded anew */
	s->cu.lr_known = s->engine->step - 1;
	n = neumf_step(s, pairs, nb, false);

	for (int t = 0; t < n; t++)
		l += b->loss[t];
	l /= n;
	for (int a = 0; a < b->n_reg; a++)
		for (int k = 0; k < b->reg_n[a]; k++)
			l += b->reg[a][k];
	return l;
}

/* the emitted top k of neumf_rank_users, checked against forward() */
typedef struct RankCheck
{
	NeumfState *s;
	int			checked;
	int			bad;
	double		worst;
} RankCheck;

static void
check_emit(void *arg, int32 user, const int32 *items, const float *scores, int n)
{
	RankCheck  *rc = (RankCheck *) arg;
	NeumfState *s = rc->s;

	for (int r = 0; r < n; r++)
	{
		double		err;

		/* one evaluation: this user and item as slots 0 */
		s->users.n = s->items.n = 1;
		s->users.rows[0] = user;
		s->items.rows[0] = items[r];
		sparse_tensor_row_dense(s->engine->tensors[T_P], user, s->users.emb);
		sparse_tensor_row_dense(s->engine->tensors[T_PM], user, s->users_m.emb);
		sparse_tensor_row_dense(s->engine->tensors[T_Q], items[r], s->items.emb);
		sparse_tensor_row_dense(s->engine->tensors[T_QM], items[r], s->items_m.emb);
		s->eu[0] = s->ei[0] = 0;
		s->ne = 1;
		densify_small(s->engine->tensors, s->n_tensors, s->w);
		forward(s);
		err = fabs(s->score[0] - scores[r]) / (1e-3 + fabs(s->score[0]));
		rc->worst = Max(rc->worst, err);
		rc->checked++;
		if (err > 1e-4)
			rc->bad++;
		if (r > 0 && topk_better(scores[r], items[r], scores[r - 1], items[r - 1]))
			rc->bad++;			/* not best first */
	}
}

static bool
run_case(const Case *c)
{
	DslConfig	cfg;
	DslEngine	e;
	TensorShape shapes[DSL_MAX_TENSORS];
	NeumfOptions o;
	TrainParams p;
	NeumfState *s;
	Interactions *d;
	DslRng		rng;
	float	   *grad[DSL_MAX_TENSORS];
	int32	   *users;
	int			checked = 0,
				bad = 0;
	double		worst = 0;
	const float h = 1e-3f;
	RankCheck	rc = {0};
	int			k = 5;

	dsl_threads = 2;
	dsl_rng_seed(&rng, 17, (uint64) c->n_items);
	d = make_data(c, &rng);

	unit_grad_config(&cfg, c->density);

	neumf_init_options(&o);
	o.n_layers = c->n_layers;
	memcpy(o.layers, c->layers, sizeof(c->layers));
	o.loss = c->loss;
	o.negatives = c->negatives;
	o.growth_batches = 1;
	memset(&p, 0, sizeof(p));
	p.dim = c->dim;
	p.batch_size = (int) d->n_pairs;
	p.reg = c->reg;
	p.seed = 3;
	p.options = &o;
	uniform_engine(&e, &cfg, neumf_tensor_shapes(d, &p, shapes), shapes);
	s = neumf_create(&e, d, &p);

	/* weights large enough that the relus are not all on or all off */
	for (int t = 0; t < s->n_tensors; t++)
		for (int64 q = 0; q < e.tensors[t]->budget; q++)
			e.tensors[t]->w[q] = (float) (0.5 * dsl_rng_normal(&rng));

	/* step 4 of the schedule, lr 0: the weights do not move */
	unit_grad_step4(&e, &cfg);
	adam_catchup_set_lr(&s->cu, 1, 0);
	adam_catchup_set_lr(&s->cu, 2, 0);
	adam_catchup_set_lr(&s->cu, 3, 0);
	(void) loss_at(s, s->bpr.pairs, (int) d->n_pairs);

	/* the step's gradients, before the evaluations below overwrite them */
	for (int t = 0; t < s->n_tensors; t++)
	{
		SparseTensor *x = e.tensors[t];
		Size		n = (Size) x->n_rows * x->dim;

		grad[t] = palloc0(sizeof(float) * n);
		if (t <= T_QM)
		{
			BatchRows  *br = t == T_P ? &s->users : t == T_Q ? &s->items :
				t == T_PM ? &s->users_m : &s->items_m;

			for (int i = 0; i < br->n; i++)
				memcpy(grad[t] + (Size) br->rows[i] * x->dim,
					   br->grad + (Size) i * x->dim, sizeof(float) * x->dim);
		}
		else
			memcpy(grad[t], s->gw[t], sizeof(float) * n);
	}

	for (int t = 0; t < s->n_tensors; t++)
	{
		SparseTensor *x = e.tensors[t];

		for (int r = 0; r < x->n_rows; r++)
			for (int64 q = x->row_ptr[r]; q < x->row_ptr[r + 1]; q++)
			{
				int			col = x->col[q];
				float		w0 = x->w[q];
				double		lp,
							lm,
							fd,
							g,
							err;

				g = grad[t][(Size) r * x->dim + col];
				err = DBL_MAX;

				/*
				 * A relu that switches within w +- h spoils the difference:
				 * a smaller h is tried before the gradient is called wrong.
				 */
				for (float hh = h; hh >= h / 16 && err > 2e-2; hh /= 4)
				{
					x->w[q] = w0 + hh;
					lp = loss_at(s, s->bpr.pairs, (int) d->n_pairs);
					x->w[q] = w0 - hh;
					lm = loss_at(s, s->bpr.pairs, (int) d->n_pairs);
					x->w[q] = w0;
					fd = (lp - lm) / (2.0 * hh);
					err = Min(err, fabs(fd - g) / (1e-2 + fabs(fd)));
				}
				worst = Max(worst, err);
				checked++;
				if (err > 2e-2)
				{
					if (bad < 5)
						printf("neumf_grad_check: tensor %s row %d col %d: gradient %.6g, finite difference %.6g\n",
							   x->name, r, col, g, fd);
					bad++;
				}
			}
	}

	/* validation ranking: every user's top k, scores as the forward pass's */
	users = palloc(sizeof(int32) * c->n_users);
	for (int u = 0; u < c->n_users; u++)
		users[u] = u;
	rc.s = s;
	neumf_rank_users(s, e.tensors, users, c->n_users, NULL, k, 0, check_emit, &rc);

	printf("neumf_grad_check: users %d items %d dim %d layers %d %s density %.1f reg %g: "
		   "%d weights, largest relative error %.2e; ranking %d scores, largest error %.1e%s\n",
		   c->n_users, c->n_items, c->dim, c->n_layers,
		   c->loss == NEUMF_LOSS_BPR ? "bpr" : "log", c->density, c->reg,
		   checked, worst, rc.checked, rc.worst, bad || rc.bad ? " FAILED" : "");
	unit_run_reset_callbacks();
	shim_reset();
	return bad == 0 && rc.bad == 0 && rc.checked == c->n_users * k;
}

int
main(void)
{
	int			failed = 0;

	neumf_net_prepare();
	for (int i = 0; i < lengthof(cases); i++)
		if (!run_case(&cases[i]))
			failed++;
	return failed ? 1 : 0;
}
