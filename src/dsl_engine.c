/*
 * dsl_engine.c - step counting, the update-ratio schedule and prune/regrow
 */
#include "postgres.h"

#include <math.h>

#include "dsl_engine.h"
#include "dsl_rec.h"

void
dsl_tensor_budgets(const TensorShape *shapes, int n_tensors, double density,
				   int64 *budgets)
{
	int			order[DSL_MAX_TENSORS];
	bool		dense[DSL_MAX_TENSORS];
	int64		total = 0,
				held = 0,
				budget;
	double		rest;

	Assert(n_tensors <= DSL_MAX_TENSORS);
	for (int i = 0; i < n_tensors; i++)
	{
		int			j = i;

		total += (int64) shapes[i].rows * shapes[i].cols;
		dense[i] = false;
		/* insertion sort by size, ties in registration order */
		while (j > 0 && (int64) shapes[order[j - 1]].rows * shapes[order[j - 1]].cols >
			   (int64) shapes[i].rows * shapes[i].cols)
		{
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	budget = (int64) rint(density * (double) total);
	for (int k = 0; k < n_tensors; k++)
	{
		int64		size = (int64) shapes[order[k]].rows * shapes[order[k]].cols;

		if (density < 1.0 && held + size > budget / DSL_DENSE_SHARE)
			break;
		dense[order[k]] = true;
		held += size;
	}
	/* with no tensor dense, exactly the uniform rule */
	if (held == 0)
		rest = density;
	else
		rest = total > held ? Min(1.0, (double) (budget - held) / (double) (total - held)) : 1.0;
	for (int i = 0; i < n_tensors; i++)
		budgets[i] = dense[i] ? (int64) shapes[i].rows * shapes[i].cols :
			sparse_tensor_budget(shapes[i].rows, shapes[i].cols, rest);
}

void
dsl_engine_init(DslEngine *e, const DslConfig *cfg, const int64 *budgets,
				int n_tensors)
{
	memset(e, 0, sizeof(DslEngine));
	Assert(n_tensors <= DSL_MAX_TENSORS);
	e->n_planned = n_tensors;
	memcpy(e->budgets, budgets, sizeof(int64) * n_tensors);
	e->cfg = *cfg;
	e->adam = cfg->adam;
	e->bc1 = 1.0f;
	e->bc2 = 1.0f;
	e->pool = worker_pool_create(dsl_threads, CurrentMemoryContext);
}

SparseTensor *
dsl_engine_add_tensor(DslEngine *e, const char *name, int n_rows, int dim)
{
	SparseTensor *t;

	if (e->n_tensors >= e->n_planned)
		elog(ERROR, "dsl_rec: tensor \"%s\" has no budget", name);
	if (e->budgets[e->n_tensors] > (int64) n_rows * dim)
		elog(ERROR, "dsl_rec: tensor \"%s\" is smaller than its budget", name);
	/* each tensor draws its mask and values from its own stream */
	t = sparse_tensor_create(name, n_rows, dim, e->budgets[e->n_tensors],
							 e->cfg.init_std, e->cfg.seed, (uint64) e->n_tensors + 1);
	e->tensors[e->n_tensors++] = t;
	return t;
}

void
dsl_engine_begin_step(DslEngine *e)
{
	e->step++;
	e->adam.lr = (float) dsl_engine_lr(e, e->step);
	e->bc1 = (float) (1.0 - pow(e->cfg.adam.beta1, (double) e->step));
	e->bc2 = (float) (1.0 - pow(e->cfg.adam.beta2, (double) e->step));
}

double
dsl_engine_ratio(const DslEngine *e, int64 t)
{
	const DslConfig *c = &e->cfg;
	double		frac;

	if (c->schedule == SCHEDULE_CONSTANT)
		return c->update_ratio;
	frac = c->total_steps > 0 ? Min(1.0, (double) t / (double) c->total_steps) : 1.0;
	return c->update_ratio_min +
		(c->update_ratio - c->update_ratio_min) * (1.0 + cos(M_PI * frac)) / 2.0;
}

void
dsl_engine_set_horizon(DslEngine *e, int64 total_steps)
{
	e->cfg.total_steps = total_steps;
}

double
dsl_engine_lr(const DslEngine *e, int64 t)
{
	const DslConfig *c = &e->cfg;
	double		frac;

	if (c->lr_min >= c->adam.lr)
		return c->adam.lr;
	/* step 1 runs at the full lr, step total_steps + 1 at lr_min */
	frac = c->total_steps > 0 ? Min(1.0, (double) (t - 1) / (double) c->total_steps) : 1.0;
	return c->lr_min + (c->adam.lr - c->lr_min) * (1.0 + cos(M_PI * frac)) / 2.0;
}

int64
dsl_engine_steps_to_update(const DslEngine *e)
{
	const DslConfig *c = &e->cfg;
	int64		next;

	if (!c->dynamic || c->density >= 1.0 || c->update_interval <= 0 || e->step <= 0)
		return -1;
	next = (e->step + c->update_interval - 1) / c->update_interval * c->update_interval;
	return next < c->total_steps ? next - e->step : -1;
}

bool
dsl_engine_in_growth_window(const DslEngine *e, int window)
{
	int64		left;

	if (window <= 1 || e->cfg.growth != GROWTH_GRADIENT)
		return false;
	left = dsl_engine_steps_to_update(e);
	return left >= 0 && left < window;
}

bool
dsl_engine_update_due(const DslEngine *e)
{
	return dsl_engine_steps_to_update(e) == 0;
}

void
dsl_engine_update(DslEngine *e, const TensorGrad *grads)
{
	double		zeta = dsl_engine_ratio(e, e->step);

	e->rounds++;
	for (int i = 0; i < e->n_tensors; i++)
	{
		SparseTensor *t = e->tensors[i];
		int64		n = (int64) ceil(zeta * (double) t->budget);

		/* never more than the inactive positions can absorb */
		n = Min(n, t->budget);
		sparse_tensor_prune_regrow(t, n, e->cfg.growth, grads ? &grads[i] : NULL,
								   e->cfg.seed ^ ((uint64) i << 56),
								   (uint64) e->rounds, e->pool);
		if (t->budget < t->total)
			e->pruned += n;
	}
}

int64
dsl_engine_active(const DslEngine *e)
{
	int64		n = 0;

	for (int i = 0; i < e->n_tensors; i++)
		n += e->tensors[i]->row_ptr[e->tensors[i]->n_rows];
	return n;
}

int64
dsl_engine_total(const DslEngine *e)
{
	int64		n = 0;

	for (int i = 0; i < e->n_tensors; i++)
		n += e->tensors[i]->total;
	return n;
}

/* the entries a round of tensor t may prune, at the schedule's largest zeta */
static int64
max_update_entries(const DslConfig *cfg, int64 budget)
{
	double		zeta = cfg->schedule == SCHEDULE_CONSTANT ? cfg->update_ratio :
		Max(cfg->update_ratio, cfg->update_ratio_min);

	return Min((int64) ceil(zeta * (double) budget), budget);
}

/*
 * Tensors are created one after another (each one's temporaries beside the
 * state of those before), and rounds run one tensor at a time beside the
 * state of all: the peak is the largest of these moments.
 */
Size
dsl_engine_estimate_bytes(const DslConfig *cfg, const TensorShape *shapes,
						  const int64 *budgets, int n_tensors)
{
	Size		held = worker_pool_bytes();
	Size		peak = held;
	int			n_parts = worker_pool_threads(dsl_threads);
	bool		rounds = cfg->dynamic && cfg->density < 1.0 && cfg->update_interval > 0;

	for (int i = 0; i < n_tensors; i++)
	{
		const TensorShape *sh = &shapes[i];
		int64		budget = budgets[i];

		peak = Max(peak, held + sparse_tensor_create_bytes(sh->rows, sh->cols, budget));
		held += sparse_tensor_state_bytes(sh->rows, sh->cols, budget);
	}
	peak = Max(peak, held);
	for (int i = 0; i < n_tensors && rounds; i++)
	{
		const TensorShape *sh = &shapes[i];
		int64		budget = budgets[i];

		peak = Max(peak, held +
				   sparse_tensor_round_bytes(sh->rows, sh->cols, budget,
											 max_update_entries(cfg, budget),
											 n_parts));
	}
	return peak;
}

Size
dsl_engine_estimate_snapshot_bytes(const TensorShape *shapes,
								   const int64 *budgets, int n_tensors)
{
	Size		n = 0;

	for (int i = 0; i < n_tensors; i++)
		n += sparse_tensor_copy_bytes(shapes[i].rows, shapes[i].cols, budgets[i]);
	return n;
}
