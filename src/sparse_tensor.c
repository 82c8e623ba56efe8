/*
 * sparse_tensor.c - masked parameter tensors holding active entries only:
 * creation with an exact random budget, copies, dense row access and the
 * Adam step on active entries.  The DSL round is in prune_regrow.c.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "bitmap.h"
#include "cpu.h"
#include "sparse_tensor.h"

/* the Adam kernel for this CPU (see adam_span_choose) */
typedef void (*AdamSpanFn) (float *restrict w, float *restrict m, float *restrict v,
							const float *restrict g, int n, float b1, float b2,
							float eps, float step, float inv_bc2);

static AdamSpanFn adam_span;
static AdamSpanFn adam_span_choose(void);

/* Max(sz, 1): what dsl_alloc_huge asks palloc for */
#define HUGE_ALLOC_BYTES(sz) ((Size) Max((Size) (sz), (Size) 1))

/* active entries at a density: rounded, and at least one in a non-empty tensor */
int64
sparse_tensor_budget(int n_rows, int dim, double density)
{
	int64		total = (int64) n_rows * dim;
	int64		budget = (int64) rint(density * (double) total);

	if (budget < 1 && total > 0)
		budget = 1;
	return budget;
}

/* the struct, row_ptr, col, w, m and v of sparse_tensor_create */
Size
sparse_tensor_state_bytes(int n_rows, int dim, int64 budget)
{
	return sizeof(SparseTensor) +
		HUGE_ALLOC_BYTES((Size) (n_rows + 1) * sizeof(int64)) +
		HUGE_ALLOC_BYTES((Size) budget * sizeof(uint16)) +
		3 * HUGE_ALLOC_BYTES((Size) budget * sizeof(float));
}

/*
 * The state plus the position bitmap sparse_tensor_create draws the mask
 * in, and, when the mask is drawn by its complement (more than half of the
 * positions active), the complement's bitmap before the arrays exist.
 */
Size
sparse_tensor_create_bytes(int n_rows, int dim, int64 budget)
{
	int64		total = (int64) n_rows * dim;
	Size		bitmap = HUGE_ALLOC_BYTES(BITS_WORDS(total) * sizeof(uint64));
	Size		excl = budget > total / 2 ? bitmap : 0;

	return bitmap + Max(sparse_tensor_state_bytes(n_rows, dim, budget),
						sizeof(SparseTensor) + excl);
}

/* the struct, row_ptr, col and w of sparse_tensor_copy_weights */
Size
sparse_tensor_copy_bytes(int n_rows, int dim, int64 budget)
{
	return sizeof(SparseTensor) +
		HUGE_ALLOC_BYTES((Size) (n_rows + 1) * sizeof(int64)) +
		HUGE_ALLOC_BYTES((Size) budget * sizeof(uint16)) +
		HUGE_ALLOC_BYTES((Size) budget * sizeof(float));
}

/*
 * Mark `need` positions chosen uniformly at random among the clear bits of
 * occ (which has `free` clear bits among `total`).  When more than half of
 * the free positions are wanted, the complement is sampled instead, so
 * rejection sampling always accepts at least half of the free draws.
 */
void
sparse_tensor_choose_random_free(uint64 *occ, int64 total, int64 free, int64 need,
								 DslRng *rng)
{
	int64		nwords = BITS_WORDS(total);

	Assert(need <= free);
	if (need == 0)
		return;
	if (need <= free / 2)
	{
		while (need > 0)
		{
			int64		pos = (int64) dsl_rng_below(rng, (uint64) total);

			if (!bit_get(occ, pos))
			{
				bit_set(occ, pos);
				need--;
			}
			if ((need & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}
	else
	{
		uint64	   *excl = dsl_alloc_huge(nwords * sizeof(uint64), false);
		int64		skip = free - need;

		memcpy(excl, occ, nwords * sizeof(uint64));
		while (skip > 0)
		{
			int64		pos = (int64) dsl_rng_below(rng, (uint64) total);

			if (!bit_get(excl, pos))
			{
				bit_set(excl, pos);
				skip--;
			}
		}
		/* every position clear in excl becomes active */
		for (int64 w = 0; w < nwords; w++)
			occ[w] |= ~excl[w];
		if (total % 64)
			occ[nwords - 1] &= (UINT64CONST(1) << (total % 64)) - 1;
		pfree(excl);
	}
}

SparseTensor *
sparse_tensor_create(const char *name, int n_rows, int dim, int64 budget,
					 float init_std, uint64 seed, uint64 stream)
{
	SparseTensor *t = palloc0(sizeof(SparseTensor));
	int64		total = (int64) n_rows * dim;
	uint64	   *occ;
	DslRng		rng;
	int64		k = 0;

	/* chosen here, in the backend, before any worker thread uses it */
	if (adam_span == NULL)
		adam_span = adam_span_choose();

	strlcpy(t->name, name, NAMEDATALEN);
	t->n_rows = n_rows;
	t->dim = dim;
	t->total = total;
	t->budget = budget;
	t->layout = 1;

	dsl_rng_seed(&rng, seed, stream);
	occ = dsl_alloc_huge(BITS_WORDS(total) * sizeof(uint64), true);
	sparse_tensor_choose_random_free(occ, total, total, budget, &rng);

	t->row_ptr = dsl_alloc_huge((Size) (n_rows + 1) * sizeof(int64), false);
	t->col = dsl_alloc_huge((Size) budget * sizeof(uint16), false);
	t->w = dsl_alloc_huge((Size) budget * sizeof(float), false);
	t->m = dsl_alloc_huge((Size) budget * sizeof(float), true);
	t->v = dsl_alloc_huge((Size) budget * sizeof(float), true);

	for (int r = 0; r < n_rows; r++)
	{
		int64		base = (int64) r * dim;

		t->row_ptr[r] = k;
		for (int c = 0; c < dim; c++)
		{
			if (bit_get(occ, base + c))
			{
				t->col[k] = (uint16) c;
				t->w[k] = (float) (dsl_rng_normal(&rng) * init_std);
				k++;
			}
		}
	}
	t->row_ptr[n_rows] = k;
	Assert(k == budget);
	pfree(occ);
	return t;
}

void
sparse_tensor_free(SparseTensor *t)
{
	if (t == NULL)
		return;
	pfree(t->row_ptr);
	pfree(t->col);
	pfree(t->w);
	if (t->m)
		pfree(t->m);
	if (t->v)
		pfree(t->v);
	if (t->last_step)
		pfree(t->last_step);
	pfree(t);
}

/* a copy of weights and pattern, without optimizer state (best-epoch snapshot) */
SparseTensor *
sparse_tensor_copy_weights(const SparseTensor *t)
{
	SparseTensor *c = palloc(sizeof(SparseTensor));

	memcpy(c, t, sizeof(SparseTensor));
	c->row_ptr = dsl_alloc_huge((Size) (t->n_rows + 1) * sizeof(int64), false);
	memcpy(c->row_ptr, t->row_ptr, (Size) (t->n_rows + 1) * sizeof(int64));
	c->col = dsl_alloc_huge((Size) t->budget * sizeof(uint16), false);
	memcpy(c->col, t->col, (Size) t->budget * sizeof(uint16));
	c->w = dsl_alloc_huge((Size) t->budget * sizeof(float), false);
	memcpy(c->w, t->w, (Size) t->budget * sizeof(float));
	c->m = NULL;
	c->v = NULL;
	c->last_step = NULL;
	return c;
}

void
sparse_tensor_fill_rows(void *arg, int first, int count, float *out)
{
	const SparseTensor *t = (const SparseTensor *) arg;

	for (int i = 0; i < count; i++)
		sparse_tensor_row_dense(t, first + i, out + (Size) i * t->dim);
}

/*
 * Adam on n contiguous entries.  Elementwise, so it vectorises; an AVX copy
 * (8 lanes instead of SSE's 4) is chosen at run time where the CPU has it.
 * No FMA is used, so both copies give bit-identical results.
 */
#define ADAM_SPAN_BODY \
	for (int c = 0; c < n; c++) \
	{ \
		float		gk = g[c]; \
		float		mk = b1 * m[c] + (1.0f - b1) * gk; \
		float		vk = b2 * v[c] + (1.0f - b2) * gk * gk; \
		m[c] = mk; \
		v[c] = vk; \
		w[c] -= step * mk / (sqrtf(vk * inv_bc2) + eps); \
	}

static void
adam_span_sse(float *restrict w, float *restrict m, float *restrict v,
			  const float *restrict g, int n, float b1, float b2, float eps,
			  float step, float inv_bc2)
{
	ADAM_SPAN_BODY
}

#ifdef DSL_X86_DISPATCH
DSL_TARGET("avx")
static void
adam_span_avx(float *restrict w, float *restrict m, float *restrict v,
			  const float *restrict g, int n, float b1, float b2, float eps,
			  float step, float inv_bc2)
{
	ADAM_SPAN_BODY
}
#endif

static AdamSpanFn
adam_span_choose(void)
{
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx"))
		return adam_span_avx;
#endif
	return adam_span_sse;
}

void
sparse_tensor_adam_row_packed(SparseTensor *t, int r, const float *g,
							  const AdamConfig *cfg, float bc1, float bc2)
{
	int64		b = t->row_ptr[r];

	adam_span(t->w + b, t->m + b, t->v + b, g, (int) (t->row_ptr[r + 1] - b),
			  cfg->beta1, cfg->beta2, cfg->eps, cfg->lr / bc1, 1.0f / bc2);
}

void
sparse_tensor_adam_row(SparseTensor *t, int r, const float *g,
					   const AdamConfig *cfg, float bc1, float bc2)
{
	int64		b = t->row_ptr[r];
	int			n = (int) (t->row_ptr[r + 1] - b);
	float		packed[DSL_MAX_DIM];

	if (n < t->dim)
	{
		/* gather the active columns' gradients so the update is contiguous */
		const uint16 *col = t->col + b;

		for (int k = 0; k < n; k++)
			packed[k] = g[col[k]];
		g = packed;
	}
	sparse_tensor_adam_row_packed(t, r, g, cfg, bc1, bc2);
}

/* bias-corrected step factor of step tau: sqrt(1 - b2^tau) / (1 - b1^tau) */
static double
catchup_factor(const AdamConfig *cfg, int64 tau)
{
	return sqrt(1.0 - pow(cfg->beta2, (double) tau)) / (1.0 - pow(cfg->beta1, (double) tau));
}

void
adam_catchup_init(AdamCatchUp *c, const AdamConfig *cfg)
{
	memset(c, 0, sizeof(*c));
	c->cfg = *cfg;
	c->rho = cfg->beta1 / sqrt(cfg->beta2);
	for (int k = 0; k <= ADAM_CATCHUP_WINDOW; k++)
	{
		c->b1k[k] = (float) pow(cfg->beta1, k);
		c->b2k[k] = (float) pow(cfg->beta2, k);
	}
}

void
adam_catchup_set_lr(AdamCatchUp *c, int64 t, float lr)
{
	Assert(t == c->lr_known + 1);
	if (t >= c->lr_cap)
	{
		int64		cap = Max(1024, c->lr_cap * 2);

		c->lr_of = c->lr_of == NULL ?
			palloc_extended((Size) cap * sizeof(float), MCXT_ALLOC_HUGE) :
			repalloc_huge(c->lr_of, (Size) cap * sizeof(float));
		c->lr_cap = cap;
	}
	c->lr_of[t] = lr;
	c->lr_known = t;
}

void
adam_catchup_advance(AdamCatchUp *c, int64 target)
{
	Assert(target <= c->lr_known);
	while (c->target < target)
	{
		double		f;
		double		rk;

		c->target++;
		f = c->lr_of[c->target] * catchup_factor(&c->cfg, c->target);
		/* coef_T[k] = coef_{T-1}[k-1] + lr rho^k f(T) */
		rk = pow(c->rho, ADAM_CATCHUP_WINDOW);
		for (int k = ADAM_CATCHUP_WINDOW; k >= 1; k--)
		{
			c->coef[k] = c->coef[k - 1] + rk * f;
			rk /= c->rho;
		}
		c->coef[0] = 0;
	}
}

void
sparse_tensor_catch_up_row(SparseTensor *t, int r, const AdamCatchUp *c)
{
	int64		k = c->target - t->last_step[r];
	int64		b = t->row_ptr[r],
				e = t->row_ptr[r + 1];
	float		coef,
				d1,
				d2;
	float	   *restrict w = t->w;
	float	   *restrict m = t->m;
	float	   *restrict v = t->v;

	if (k <= 0)
		return;
	t->last_step[r] = c->target;
	if (k <= ADAM_CATCHUP_WINDOW)
	{
		coef = (float) c->coef[k];
		d1 = c->b1k[k];
		d2 = c->b2k[k];
	}
	else
	{
		/*
		 * A long idle span: the first window's terms, summed directly.  The
		 * bias corrections' powers are stepped by one multiplication each,
		 * not recomputed with pow() per term: at an epoch's end most rows
		 * of a large table take this path.
		 */
		double		sum = 0,
					rs = 1;
		int64		t0 = c->target - k;
		double		p1 = pow(c->cfg.beta1, (double) t0);
		double		p2 = pow(c->cfg.beta2, (double) t0);

		for (int s = 1; s <= ADAM_CATCHUP_WINDOW; s++)
		{
			rs *= c->rho;
			p1 *= c->cfg.beta1;
			p2 *= c->cfg.beta2;
			sum += c->lr_of[t0 + s] * rs * sqrt(1.0 - p2) / (1.0 - p1);
		}
		coef = (float) sum;
		d1 = (float) pow(c->cfg.beta1, (double) k);
		d2 = (float) pow(c->cfg.beta2, (double) k);
	}
	for (int64 q = b; q < e; q++)
	{
		w[q] -= coef * m[q] / (sqrtf(v[q]) + c->cfg.eps);
		m[q] *= d1;
		v[q] *= d2;
	}
}

typedef struct CatchUpAll
{
	SparseTensor *t;
	const AdamCatchUp *c;
} CatchUpAll;

static void
catch_up_part(void *arg, int part, int n_parts)
{
	CatchUpAll *a = (CatchUpAll *) arg;
	int64		lo,
				hi;

	worker_share(a->t->n_rows, part, n_parts, &lo, &hi);
	for (int64 r = lo; r < hi; r++)
		sparse_tensor_catch_up_row(a->t, (int) r, a->c);
}

void
sparse_tensor_catch_up_all(SparseTensor *t, const AdamCatchUp *c, WorkerPool *pool)
{
	CatchUpAll	a = {t, c};

	if (t->last_step == NULL)
		return;
	if (pool)
		worker_pool_run(pool, catch_up_part, &a);
	else
		catch_up_part(&a, 0, 1);
}
