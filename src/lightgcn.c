/*
 * lightgcn.c - LightGCN (He et al., SIGIR 2020) on DSL-sparse ego embeddings
 *
 * Users and items are the nodes 0..n_users-1 and n_users..n-1 of the
 * bipartite interaction graph A = [[0, R], [R^T, 0]].  The ego (layer-0)
 * embeddings E0 are the DSL-sparse tensors "user_ego" and "item_ego"; the
 * final embeddings are the mean of E0 .. EL with E(l+1) = Â El and
 * Â = D^-1/2 A D^-1/2.  Training minimises BPR on the final embeddings of a
 * mini-batch plus reg/2 * (|u0|^2 + |i0|^2 + |j0|^2) on the ego rows, both
 * averaged over the batch, in the shared BPR loop (bpr.h) as MF, but with
 * each epoch's pairs drawn user first (a uniform user, then one of its
 * items, as the reference does: bpr_sample_by_user); negatives are drawn
 * from the epoch's stream, one pair after another.
 *
 * Propagation works in the scaled space Y = D^-1/2 E, where Â becomes
 * D^1/2 M D^-1/2 with M = D^-1 A: one layer is an unweighted sum of the
 * neighbours' rows times 1/degree, so the kernels read no edge weights.
 *
 *   forward   F = D^1/2 (Y0 + Y1 + ... + YL) / (L + 1),  Y(k) = M Y(k-1)
 *   backward  dE0 = D^1/2 H(L) / (L + 1),  H(k) = Z0 + M H(k-1),  H(0) = Z0,
 *             Z0 = D^-1/2 dLoss/dF   (Â is symmetric; Horner's rule)
 *
 * Per step only the rows that matter are computed: the loss needs the final
 * embeddings of the batch rows B only, so forward layer k is needed on the
 * rows within L - k hops of B (and B's rows are summed into F as they are
 * computed); dLoss/dF is zero outside B, so H(k) is non-zero only within k
 * hops of B and gathers only from rows within k - 1 hops.  This is exact
 * (no sampling of the graph, checked bit for bit against computing every
 * row); the hop distances come from a breadth-first pass per step.
 *
 * Each row is computed by one thread with its neighbours summed in
 * ascending order, so results do not depend on the number of threads.  The
 * last backward iteration is fused with the gradient of the L2 term, the
 * lazy Adam step on the row's active entries and the refresh of that row of
 * Y0 for the next step; a prune/regrow round invalidates Y0.
 *
 * Precision: training keeps Y0 and the layers Y(k), H(k) as bfloat16 rows
 * (a float32's exponent, 8 significant bits) and sums them in float32: a
 * layer reads every row of its input once per incident edge, from memory
 * rather than cache on Gowalla, so halving a row's bytes is what makes it
 * faster.  Rounding a row to bfloat16 changes its entries by at most 2^-8
 * relative; the sums, the final embeddings of the batch, the loss, the ego
 * gradient and Adam stay in float32.  Serving (the stored final
 * embeddings) propagates in float32 throughout.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "bitmap.h"
#include "bpr.h"
#include "cpu.h"
#include "dsl_rec.h"
#include "hugepage.h"
#include "model_ops.h"
#include "scorer.h"

#define LGCN_MAX_LAYERS 8
#define DIST_FAR 255			/* not within LGCN_MAX_LAYERS hops of the batch */
#define NB_ALL 255				/* gather from every neighbour */
#define CHUNK_ROWS 64			/* rows per unit of dynamically scheduled work */
#define PREFETCH_AHEAD 16		/* neighbour rows prefetched ahead */

/* eight floats, loadable from any 4-byte aligned address */
typedef float v8sf __attribute__((vector_size(32), aligned(4), may_alias));

/*
 * bfloat16: the upper half of a float32 (same exponent range, 8 significant
 * bits).  Training keeps its propagated rows in it (see "Precision" above).
 * v8su: eight 32-bit words, loadable from any 2-byte aligned address (a
 * bfloat16 row of odd width starts at one).
 */
typedef uint16 bf16;
typedef float f32;				/* names the float32 variant of a kernel */
typedef uint32 v8su __attribute__((vector_size(32), aligned(2), may_alias));

/* the bipartite graph as one symmetric CSR over users and items */
typedef struct LgcnGraph
{
	int			n;				/* nodes: users, then items */
	int			n_users;
	int32		max_deg;
	int64	   *ptr;			/* n + 1 */
	int32	   *adj;			/* neighbours of each node, ascending */
	float	   *inv_deg;		/* 1 / d */
	float	   *inv_sqrt;		/* d^-1/2 */
	float	   *sqrt_deg;		/* d^1/2 */
} LgcnGraph;

typedef enum PropMode
{
	PROP_PLAIN,					/* out = base + M in */
	PROP_SERVE_FINAL,			/* out = D^1/2 (base + M in) / (L + 1) */
	PROP_TRAIN_FINAL			/* that as the ego gradient, then Adam */
} PropMode;

/* one propagation step over the rows: out = base + M in (see PropMode) */
typedef struct PropJob
{
	const float *in;			/* NULL (and in16 NULL): M in is zero */
	const bf16 *in16;			/* in as bfloat16 (training), or NULL */
	float	   *out;
	bf16	   *out16;			/* write rows here as bfloat16 instead */
	const float *base_rows;		/* base of row r at r * dim, or NULL */
	const float *base_slots;	/* base of batch rows by slot, or NULL */
	float	   *acc_slots;		/* add batch rows' results here by slot */
	bool		use_dist;		/* restrict rows/neighbours by hop distance */
	int			row_lim;		/* rows with dist <= row_lim */
	int			nb_lim;			/* neighbours with dist <= nb_lim, or NB_ALL */
	bool		zero_rest;		/* write zero rows for dist > row_lim */
	bool		few_rows;		/* few rows qualify: prefetch within rows */
	PropMode	mode;
	bool		store_grad;		/* PROP_TRAIN_FINAL: keep gradient rows in out */
} PropJob;

typedef struct LgcnState LgcnState;

typedef void (*RowKernel) (LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi);

struct LgcnState
{
	BprTrainer	bpr;			/* pairs, negatives, triples, loss */
	DslEngine  *engine;
	MemoryContext mcxt;
	int			dim;
	int			layers;
	float		reg;
	LgcnGraph	g;

	/* batch rows (nodes) and their slots, numbered in ascending node order */
	int32	   *slot_of;		/* n: slot of node in the current batch */
	uint64	   *in_batch;		/* n bits: the step's nodes, while numbering */
	int32	   *slot_row;		/* slot -> node */
	int32	   *slot_count;		/* slot -> occurrences in the batch */
	int			n_slots;
	int			slot_cap;
	float	   *fin;			/* slot x dim: final embeddings */
	float	   *z0;				/* slot x dim: D^-1/2 dLoss/dF */
	double	   *reg_loss;		/* per slot: L2 term */

	/* dense per-step temporaries, n x dim each */
	bf16	   *y0;				/* D^-1/2 E0, valid while y0_valid */
	bool		y0_valid;
	float	   *buf[2];			/* serving; the round's ego gradient */
	bf16	   *hbuf[2];		/* training's layers, within buf[(L + 1) % 2] */
	float	   *serve_out;		/* serving embeddings, allocated on demand */
	uint8	   *dist;			/* hop distance from the batch rows */
	int64		ball[LGCN_MAX_LAYERS + 1];	/* rows with dist <= k */

	/* workers (the engine's pool) */
	int			n_parts;
	float	   *scratch;		/* n_parts x dim */
	float	   *grad_scratch;	/* n_parts x dim */
	float	   *row_scratch;	/* n_parts x dim: a row before bf16 rounding */
	int32	   *nbr_scratch;	/* n_parts x max_deg */
	int64	   *part_count;		/* n_parts */
	int64		next_chunk;		/* dynamic scheduling counter */
	RowKernel	kernel[2];		/* float32 input, bfloat16 input */

	/* arguments of the current parallel phase */
	PropJob		job;
	int			bfs_level;
	SparseTensor *const *dens_src;	/* densify: tensors */
	float	   *dens_out;
	bf16	   *dens_out16;		/* or here, as bfloat16 */
	bool		dens_scaled;	/* densify: times d^-1/2 */
};

/* ---------------------------------------------------------------------------
 * Options, sizes
 * ---------------------------------------------------------------------------
 */

/* LightGCN's options (dsl.train's options jsonb) */
typedef struct LgcnOptions
{
	int			layers;			/* propagation layers */
} LgcnOptions;

static void
lgcn_init_options(void *opts)
{
	((LgcnOptions *) opts)->layers = 3;
}

static bool
lgcn_set_option(void *opts, const char *key, const JsonbValue *value)
{
	if (strcmp(key, "layers") != 0)
		return false;
	((LgcnOptions *) opts)->layers = dsl_option_int(key, value, 0, LGCN_MAX_LAYERS);
	return true;
}

static void
lgcn_write_hyperparams(StringInfo s, const void *opts)
{
	appendStringInfo(s, ", \"layers\": %d", ((const LgcnOptions *) opts)->layers);
}

/* ego embeddings of the users and of the items */
static int
lgcn_tensor_shapes(const Interactions *d, const TrainParams *p, TensorShape *shapes)
{
	shapes[0] = (TensorShape) {d->n_users, p->dim};
	shapes[1] = (TensorShape) {d->n_items, p->dim};
	return 2;
}

/*
 * 16384 where the data hold at least that many users, else 8192; then
 * halved (down to 128) while an epoch would have fewer than 16 steps.
 * Every step propagates over (nearly) the whole graph, so an epoch costs
 * about its number of steps; with the default lr 0.02 large batches lose
 * little per epoch as long as a step holds about one pair per user or
 * fewer, so that a row's Adam updates per epoch do not fall with the batch
 * (docs/lightgcn.md, "Defaults").
 */
static int
lgcn_default_batch_size(const Interactions *data)
{
	int			b = data->n_users >= 16384 ? 16384 : 8192;

	while (b > 128 && data->n_pairs / b < 16)
		b /= 2;
	return b;
}

static int64
lgcn_steps_per_epoch(const Interactions *data, const TrainParams *p)
{
	return (data->n_pairs + p->batch_size - 1) / p->batch_size;
}

static int
lgcn_slot_cap(const Interactions *data, const TrainParams *p)
{
	return (int) Min((int64) 3 * p->batch_size, (int64) data->n_users + data->n_items);
}

static Size
lgcn_work_bytes(const Interactions *data, const TrainParams *p)
{
	Size		n = (Size) data->n_users + data->n_items;
	Size		dim = p->dim;
	Size		cap = lgcn_slot_cap(data, p);
	Size		max_rows = Max(data->n_users, data->n_items);
	Size		threads = Max(dsl_threads, 1);
	Size		graph = (n + 1) * sizeof(int64) + (Size) data->n_pairs * 2 * sizeof(int32) +
		n * 3 * sizeof(float);
	Size		dense = 3 * dsl_alloc_aligned_bytes(n * dim * sizeof(float)) +
		dsl_alloc_aligned_bytes(n * dim * sizeof(bf16));
	Size		slots = n * sizeof(int32) + BITS_WORDS(n) * sizeof(uint64) + n +
		cap * (2 * sizeof(int32) + sizeof(double) + 2 * dim * sizeof(float));
	Size		workers = threads * (3 * dim * sizeof(float) + max_rows * sizeof(int32) + sizeof(int64));

	/* the gradient-growth candidates of a prune/regrow round on dense rows */
	Size		update = max_rows * dim * (sizeof(float) + sizeof(int64));

	/* the users with pairs, for the epochs' draws (bpr_sample_by_user) */
	Size		sampler = bpr_by_user_bytes(data);

	return graph + bpr_work_bytes(data, p) + sampler + dense + slots + workers + update;
}

/* ---------------------------------------------------------------------------
 * Setup
 * ---------------------------------------------------------------------------
 */

/*
 * A float array in the current context, 64-byte aligned; from 2 MB on
 * aligned to and advised as huge pages (hugepage.h): the propagation reads
 * rows of them in random order, and with 4 kB pages nearly every such read
 * misses the TLB (measured: a layer takes ~1.7x as long on Gowalla).
 */
static float *
alloc_rows(Size n_floats)
{
	return (float *) dsl_alloc_aligned(n_floats * sizeof(float));
}

/* both directions of the interactions, degrees and their normalisers */
static void
graph_build(LgcnGraph *g, const Interactions *d)
{
	int			nu = d->n_users;
	int			n = d->n_users + d->n_items;
	int64		e = d->n_pairs;
	int64	   *fill;

	g->n = n;
	g->n_users = nu;
	g->ptr = palloc_extended((Size) (n + 1) * sizeof(int64), MCXT_ALLOC_HUGE);
	g->adj = palloc_extended((Size) Max(2 * e, 1) * sizeof(int32), MCXT_ALLOC_HUGE);

	/* user rows: the training CSR with items offset by n_users */
	for (int u = 0; u <= nu; u++)
		g->ptr[u] = d->ptr[u];
	for (int64 p = 0; p < e; p++)
		g->adj[p] = nu + d->items[p];

	/* item rows: the transpose, filled in user order so each row ascends */
	fill = palloc_extended((Size) (d->n_items + 1) * sizeof(int64), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	for (int64 p = 0; p < e; p++)
		fill[d->items[p] + 1]++;
	for (int i = 0; i < d->n_items; i++)
		fill[i + 1] += fill[i];
	for (int i = 0; i <= d->n_items; i++)
		g->ptr[nu + i] = e + fill[i];
	for (int u = 0; u < nu; u++)
		for (int64 p = d->ptr[u]; p < d->ptr[u + 1]; p++)
			g->adj[e + fill[d->items[p]]++] = u;
	pfree(fill);

	g->inv_deg = palloc_extended((Size) Max(n, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	g->inv_sqrt = palloc_extended((Size) Max(n, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	g->sqrt_deg = palloc_extended((Size) Max(n, 1) * sizeof(float), MCXT_ALLOC_HUGE);
	g->max_deg = 1;
	for (int r = 0; r < n; r++)
	{
		int64		deg = g->ptr[r + 1] - g->ptr[r];

		/* every id comes from a pair, so deg >= 1; guard anyway */
		g->inv_deg[r] = deg > 0 ? (float) (1.0 / (double) deg) : 0.0f;
		g->inv_sqrt[r] = deg > 0 ? (float) (1.0 / sqrt((double) deg)) : 0.0f;
		g->sqrt_deg[r] = (float) sqrt((double) deg);
		g->max_deg = (int32) Max((int64) g->max_deg, deg);
	}
}

static void *
lgcn_create(DslEngine *engine, const Interactions *data, const TrainParams *p)
{
	LgcnState  *s = palloc0(sizeof(LgcnState));
	int			dim = p->dim;
	int			n = data->n_users + data->n_items;

	s->engine = engine;
	s->mcxt = CurrentMemoryContext;
	s->dim = dim;
	s->layers = ((const LgcnOptions *) p->options)->layers;
	s->reg = (float) p->reg;

	dsl_engine_add_tensor(engine, "user_ego", data->n_users, dim);
	dsl_engine_add_tensor(engine, "item_ego", data->n_items, dim);

	graph_build(&s->g, data);

	bpr_init(&s->bpr, engine, data, p);
	bpr_sample_by_user(&s->bpr);	/* +4.4 % on Gowalla: docs/lightgcn.md */

	s->slot_cap = lgcn_slot_cap(data, p);
	s->slot_of = palloc_extended((Size) n * sizeof(int32), MCXT_ALLOC_HUGE);
	s->in_batch = palloc0((Size) BITS_WORDS(n) * sizeof(uint64));
	s->slot_row = palloc_extended((Size) s->slot_cap * sizeof(int32), MCXT_ALLOC_HUGE);
	s->slot_count = palloc_extended((Size) s->slot_cap * sizeof(int32), MCXT_ALLOC_HUGE);
	s->reg_loss = palloc_extended((Size) s->slot_cap * sizeof(double), MCXT_ALLOC_HUGE);
	s->fin = alloc_rows((Size) s->slot_cap * dim);
	s->z0 = alloc_rows((Size) s->slot_cap * dim);
	s->bpr.user_rows = s->bpr.item_rows = s->fin;

	s->y0 = (bf16 *) dsl_alloc_aligned((Size) n * dim * sizeof(bf16));
	s->buf[0] = alloc_rows((Size) n * dim);
	s->buf[1] = alloc_rows((Size) n * dim);
	/* the round reads buf[L % 2], serving overwrites both between steps */
	s->hbuf[0] = (bf16 *) s->buf[(s->layers + 1) % 2];
	s->hbuf[1] = s->hbuf[0] + (Size) n * dim;
	s->dist = palloc_extended((Size) n, MCXT_ALLOC_HUGE);

	s->n_parts = worker_pool_size(engine->pool);
	s->scratch = alloc_rows((Size) s->n_parts * dim);
	s->grad_scratch = alloc_rows((Size) s->n_parts * dim);
	s->row_scratch = alloc_rows((Size) s->n_parts * dim);
	s->nbr_scratch = palloc_extended((Size) s->n_parts * s->g.max_deg * sizeof(int32), MCXT_ALLOC_HUGE);
	s->part_count = palloc0((Size) s->n_parts * sizeof(int64));
	s->kernel[0] = s->kernel[1] = NULL; /* chosen on first use, see
										 * pick_kernels */
	return s;
}

/* ---------------------------------------------------------------------------
 * Kernels (plain C; they run in worker threads)
 * ---------------------------------------------------------------------------
 */

#define LGCN_INLINE static inline __attribute__((always_inline))

/*
 * bfloat16 rows.  Widening to float32 is exact, narrowing rounds to
 * nearest even.  Columns [0, 16 * floor(dim / 16)) are stored in blocks of
 * 16 whose 32-bit word k holds column k in its low half and column k + 8
 * in its high half, so one 32-byte load gives both halves of a block as
 * floats with a shift and a mask (no shuffles); the last dim % 16 columns
 * follow in order.
 */
#define BF16_PAIRED(dim) ((dim) & ~15)
#define BF16_HIGH 0xFFFF0000u

LGCN_INLINE float
bf16_to_float(bf16 h)
{
	uint32		u = (uint32) h << 16;
	float		f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/*
 * The bits of float32 values (a uint32 or a v8su) rounded to bfloat16 to
 * nearest even, in their high halves
 */
#define bf16_round_bits(u) ((u) + 0x7FFF + (((u) >> 16) & 1))

LGCN_INLINE bf16
float_to_bf16(float f)
{
	uint32		u;

	memcpy(&u, &f, sizeof(u));
	return (bf16) (bf16_round_bits(u) >> 16);
}

/* out[0 .. dim) = in[0 .. dim) as a bfloat16 row */
LGCN_INLINE void
row_to_bf16(bf16 *restrict out, const float *restrict in, int dim)
{
	int			k = 0;

	for (; k < BF16_PAIRED(dim); k += 16)
	{
		v8su		lo = *(const v8su *) (in + k);
		v8su		hi = *(const v8su *) (in + k + 8);

		*(v8su *) (out + k) = (bf16_round_bits(lo) >> 16) | (bf16_round_bits(hi) & BF16_HIGH);
	}
	for (; k < dim; k++)
		out[k] = float_to_bf16(in[k]);
}

LGCN_INLINE void
row_from_bf16(float *restrict out, const bf16 *restrict in, int dim)
{
	int			k = 0;

	for (; k < BF16_PAIRED(dim); k += 16)
	{
		v8su		w = *(const v8su *) (in + k);

		*(v8sf *) (out + k) = (v8sf) (w << 16);
		*(v8sf *) (out + k + 8) = (v8sf) (w & BF16_HIGH);
	}
	for (; k < dim; k++)
		out[k] = bf16_to_float(in[k]);
}

/*
 * out[col .. col + W) = scale * sum of in[list[k]][col .. col + W), with the
 * accumulators in registers (float32 whatever the type of in).  Rows
 * list[k + PREFETCH_AHEAD] are prefetched while k + PREFETCH_AHEAD <
 * pf_limit (the list may continue past cnt into the next rows of a chunk,
 * which are about to be read too).  ADD_T adds W values at x to acc.
 */
#define DEFINE_GATHER_BLOCK(T, W) \
LGCN_INLINE void \
gather_block_##T##_##W(float *restrict out, const T *restrict in, const int32 *list, \
				 int64 cnt, int64 pf_limit, int dim, int col, float scale) \
{ \
	v8sf		acc[(W) / 8]; \
	\
	for (int b = 0; b < (W) / 8; b++) \
		acc[b] = (v8sf) {0}; \
	for (int64 k = 0; k < cnt; k++) \
	{ \
		const T *x = in + (Size) list[k] * dim + col; \
		\
		if (k + PREFETCH_AHEAD < pf_limit) \
		{ \
			const char *pf = (const char *) (in + (Size) list[k + PREFETCH_AHEAD] * dim + col); \
			\
			for (int l = 0; l < (W) * (int) sizeof(T); l += 64) \
				__builtin_prefetch(pf + l); \
		} \
		ADD_##T(acc, x, W); \
	} \
	for (int b = 0; b < (W) / 8; b++) \
		*(v8sf *) (out + col + 8 * b) = acc[b] * scale; \
}

/* float32: eight values a vector */
#define ADD_f32(acc, x, W) \
	for (int b = 0; b < (W) / 8; b++) \
		acc[b] += *(const v8sf *) ((x) + 8 * b)

/* bfloat16, W a multiple of 16 in the paired layout: 16 values a load */
#define ADD_bf16(acc, x, W) \
	for (int b = 0; b < (W) / 16; b++) \
	{ \
		v8su		w_ = *(const v8su *) ((x) + 16 * b); \
		\
		acc[2 * b] += (v8sf) (w_ << 16); \
		acc[2 * b + 1] += (v8sf) (w_ & BF16_HIGH); \
	}

DEFINE_GATHER_BLOCK(f32, 64)
DEFINE_GATHER_BLOCK(f32, 32)
DEFINE_GATHER_BLOCK(f32, 16)
DEFINE_GATHER_BLOCK(f32, 8)
DEFINE_GATHER_BLOCK(bf16, 64)
DEFINE_GATHER_BLOCK(bf16, 32)
DEFINE_GATHER_BLOCK(bf16, 16)

/* out[0 .. dim) = scale * sum over the listed rows of in */
LGCN_INLINE void
gather_rows_f32(float *restrict out, const float *restrict in, const int32 *list,
				int64 cnt, int64 pf_limit, int dim, float scale)
{
	int			col = 0;

	for (; col + 64 <= dim; col += 64)
		gather_block_f32_64(out, in, list, cnt, pf_limit, dim, col, scale);
	if (col + 32 <= dim)
	{
		gather_block_f32_32(out, in, list, cnt, pf_limit, dim, col, scale);
		col += 32;
	}
	if (col + 16 <= dim)
	{
		gather_block_f32_16(out, in, list, cnt, pf_limit, dim, col, scale);
		col += 16;
	}
	if (col + 8 <= dim)
	{
		gather_block_f32_8(out, in, list, cnt, pf_limit, dim, col, scale);
		col += 8;
	}
	for (; col < dim; col++)
	{
		float		acc = 0;

		for (int64 k = 0; k < cnt; k++)
			acc += in[(Size) list[k] * dim + col];
		out[col] = acc * scale;
	}
}

/* the same for bfloat16 rows; out is in column order */
LGCN_INLINE void
gather_rows_bf16(float *restrict out, const bf16 *restrict in, const int32 *list,
				 int64 cnt, int64 pf_limit, int dim, float scale)
{
	const int	paired = BF16_PAIRED(dim);
	int			col = 0;

	for (; col + 64 <= paired; col += 64)
		gather_block_bf16_64(out, in, list, cnt, pf_limit, dim, col, scale);
	if (col + 32 <= paired)
	{
		gather_block_bf16_32(out, in, list, cnt, pf_limit, dim, col, scale);
		col += 32;
	}
	if (col + 16 <= paired)
	{
		gather_block_bf16_16(out, in, list, cnt, pf_limit, dim, col, scale);
		col += 16;
	}
	for (; col < dim; col++)
	{
		float		acc = 0;

		for (int64 k = 0; k < cnt; k++)
			acc += bf16_to_float(in[(Size) list[k] * dim + col]);
		out[col] = acc * scale;
	}
}

/* gather_rows_* of j's input: bfloat16 rows when `half`, else float32 */
LGCN_INLINE void
gather_in(const PropJob *j, const bool half, float *restrict out, const int32 *list,
		  int64 cnt, int64 pf_limit, int dim, float scale)
{
	if (half)
		gather_rows_bf16(out, j->in16, list, cnt, pf_limit, dim, scale);
	else
		gather_rows_f32(out, j->in, list, cnt, pf_limit, dim, scale);
}

/*
 * The tail of the last backward iteration for node r: h holds H(L) of the
 * row; turn it into the ego gradient D^1/2 H(L) / (L + 1), add the L2 term
 * for batch rows, take the Adam step on the row's active entries and
 * refresh the row of y0 for the next step.
 */
LGCN_INLINE void
train_final_row(LgcnState *s, int part, int r, int dist, float *restrict h)
{
	const int	dim = s->dim;
	DslEngine  *e = s->engine;
	SparseTensor *t = r < s->g.n_users ? e->tensors[0] : e->tensors[1];
	int			row = r < s->g.n_users ? r : r - s->g.n_users;
	const float c = s->g.sqrt_deg[r] / (float) (s->layers + 1);
	const float is = s->g.inv_sqrt[r];
	float	   *restrict x = s->scratch + (Size) part * dim;

	for (int k = 0; k < dim; k++)
		h[k] *= c;
	if (dist == 0)
	{
		int32		slot = s->slot_of[r];
		float		coef = s->reg * s->bpr.inv_nb * (float) s->slot_count[slot];
		double		sq = 0;

		sparse_tensor_row_dense(t, row, x);
		for (int k = 0; k < dim; k++)
		{
			h[k] += coef * x[k];
			sq += (double) x[k] * x[k];
		}
		s->reg_loss[slot] = 0.5 * coef * sq;
	}
	sparse_tensor_adam_row(t, row, h, &e->adam, e->bc1, e->bc2);
	sparse_tensor_row_dense(t, row, x);
	for (int k = 0; k < dim; k++)
		x[k] *= is;
	row_to_bf16(s->y0 + (Size) r * dim, x, dim);
}

/*
 * One propagation step (see PropJob) over rows [lo, hi); `half` (a
 * constant in each caller) says that the input rows are j->in16.
 */
LGCN_INLINE void
prop_rows_body(LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi,
			   const bool half)
{
	const LgcnGraph *g = &s->g;
	const int	dim = s->dim;
	const uint8 *dist = j->use_dist ? s->dist : NULL;
	int32	   *nbr = s->nbr_scratch + (Size) part * g->max_deg;
	const float post = 1.0f / (float) (s->layers + 1);
	const bool	no_in = half ? j->in16 == NULL : j->in == NULL;

	for (int64 r = lo; r < hi; r++)
	{
		int			dr = dist ? dist[r] : 0;
		float	   *restrict o;
		const float *base = NULL;

		/* a gradient row nobody reads later stays in a cached scratch row */
		if (j->mode == PROP_TRAIN_FINAL && !j->store_grad)
			o = s->grad_scratch + (Size) part * dim;
		else if (j->out16)
			o = s->row_scratch + (Size) part * dim;
		else
			o = j->out + (Size) r * dim;

		if (dr > j->row_lim)
		{
			if (j->zero_rest || (j->mode == PROP_TRAIN_FINAL && j->store_grad))
			{
				if (j->out16)
					memset(j->out16 + (Size) r * dim, 0, sizeof(bf16) * dim);
				else
					memset(o, 0, sizeof(float) * dim);
			}
			continue;
		}

		if (no_in)
			memset(o, 0, sizeof(float) * dim);
		else if (dist && j->nb_lim != NB_ALL)
		{
			/* only neighbours whose rows of `in` are valid (non-zero) */
			int64		cnt = 0;

			for (int64 k = g->ptr[r]; k < g->ptr[r + 1]; k++)
			{
				int32		c = g->adj[k];

				nbr[cnt] = c;
				cnt += dist[c] <= j->nb_lim;
			}
			gather_in(j, half, o, nbr, cnt, cnt, dim, g->inv_deg[r]);
		}
		else
		{
			int64		cnt = g->ptr[r + 1] - g->ptr[r];
			int64		pf = j->few_rows ? cnt : g->ptr[hi] - g->ptr[r];

			/* prefetch into the next rows' neighbours, unless they are skipped */
			gather_in(j, half, o, g->adj + g->ptr[r], cnt, pf, dim, g->inv_deg[r]);
		}

		if (j->base_rows)
			base = j->base_rows + (Size) r * dim;
		else if (j->base_slots && dr == 0 && dist)
			base = j->base_slots + (Size) s->slot_of[r] * dim;
		if (base)
			for (int k = 0; k < dim; k++)
				o[k] += base[k];
		if (j->acc_slots && dr == 0 && dist)
		{
			float	   *restrict a = j->acc_slots + (Size) s->slot_of[r] * dim;

			for (int k = 0; k < dim; k++)
				a[k] += o[k];
		}

		if (j->mode == PROP_SERVE_FINAL)
		{
			float		c = g->sqrt_deg[r] * post;

			for (int k = 0; k < dim; k++)
				o[k] *= c;
		}
		else if (j->mode == PROP_TRAIN_FINAL)
			train_final_row(s, part, (int) r, dr, o);
		else if (j->out16)
			row_to_bf16(j->out16 + (Size) r * dim, o, dim);
	}
}

static void
prop_rows_default(LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi)
{
	prop_rows_body(s, j, part, lo, hi, false);
}

static void
prop_rows_default_bf16(LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi)
{
	prop_rows_body(s, j, part, lo, hi, true);
}

#ifdef DSL_X86_DISPATCH
/* the same code compiled for AVX2 + FMA, chosen at run time (cpu.h) */
DSL_TARGET("avx2,fma")
static void
prop_rows_avx2(LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi)
{
	prop_rows_body(s, j, part, lo, hi, false);
}

DSL_TARGET("avx2,fma")
static void
prop_rows_avx2_bf16(LgcnState *s, const PropJob *j, int part, int64 lo, int64 hi)
{
	prop_rows_body(s, j, part, lo, hi, true);
}
#endif

/* kernel[0] for float32 input rows, kernel[1] for bfloat16 */
static void
pick_kernels(RowKernel *kernel)
{
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
	{
		kernel[0] = prop_rows_avx2;
		kernel[1] = prop_rows_avx2_bf16;
		return;
	}
#endif
	kernel[0] = prop_rows_default;
	kernel[1] = prop_rows_default_bf16;
}

/* next [lo, hi) chunk of the node rows, false when all are taken */
static inline bool
next_chunk(LgcnState *s, int64 *lo, int64 *hi)
{
	int64		c = __atomic_fetch_add(&s->next_chunk, 1, __ATOMIC_RELAXED);

	*lo = c * CHUNK_ROWS;
	if (*lo >= s->g.n)
		return false;
	*hi = Min(*lo + CHUNK_ROWS, (int64) s->g.n);
	return true;
}

static void
phase_prop(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	int64		lo,
				hi;

	RowKernel	kernel = s->kernel[s->job.in16 != NULL];

	while (next_chunk(s, &lo, &hi))
		kernel(s, &s->job, part, lo, hi);
}

/* dens_out[r] = row r of the ego tensors, times d^-1/2 when dens_scaled */
static void
phase_densify(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	const int	dim = s->dim;
	const int	nu = s->g.n_users;
	int64		lo,
				hi;

	while (next_chunk(s, &lo, &hi))
	{
		for (int64 r = lo; r < hi; r++)
		{
			float	   *y = s->dens_out16 ? s->row_scratch + (Size) part * dim :
				s->dens_out + (Size) r * dim;

			if (r < nu)
				sparse_tensor_row_dense(s->dens_src[0], (int) r, y);
			else
				sparse_tensor_row_dense(s->dens_src[1], (int) (r - nu), y);
			if (s->dens_scaled)
			{
				float		c = s->g.inv_sqrt[r];

				for (int k = 0; k < dim; k++)
					y[k] *= c;
			}
			if (s->dens_out16)
				row_to_bf16(s->dens_out16 + (Size) r * dim, y, dim);
		}
	}
}

/* rows not yet reached with a neighbour at distance bfs_level get level + 1 */
static void
phase_bfs(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	const LgcnGraph *g = &s->g;
	const uint8 level = (uint8) s->bfs_level;
	uint8	   *dist = s->dist;
	int64		found = 0;
	int64		lo,
				hi;

	/*
	 * Other threads may set rows to level + 1 meanwhile; such rows never
	 * equal `level`, so the outcome does not depend on timing.  Relaxed
	 * atomics make the concurrent byte accesses well defined.
	 */
	while (next_chunk(s, &lo, &hi))
	{
		for (int64 r = lo; r < hi; r++)
		{
			if (__atomic_load_n(&dist[r], __ATOMIC_RELAXED) != DIST_FAR)
				continue;
			for (int64 k = g->ptr[r]; k < g->ptr[r + 1]; k++)
				if (__atomic_load_n(&dist[g->adj[k]], __ATOMIC_RELAXED) == level)
				{
					__atomic_store_n(&dist[r], (uint8) (level + 1), __ATOMIC_RELAXED);
					found++;
					break;
				}
		}
	}
	s->part_count[part] = found;
}

/* fin = Y0 of the batch rows, by slot (the forward adds Y1 .. YL) */
static void
phase_slot_init(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	const int	dim = s->dim;
	int64		lo,
				hi;

	worker_share(s->n_slots, part, n_parts, &lo, &hi);
	for (int64 k = lo; k < hi; k++)
		row_from_bf16(s->fin + (Size) k * dim, s->y0 + (Size) s->slot_row[k] * dim, dim);
}

/* final embeddings of the batch rows: D^1/2 (Y0 + .. + YL) / (L + 1) */
static void
phase_slot_final(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	const int	dim = s->dim;
	const float post = 1.0f / (float) (s->layers + 1);
	int64		lo,
				hi;

	worker_share(s->n_slots, part, n_parts, &lo, &hi);
	for (int64 k = lo; k < hi; k++)
	{
		float	   *f = s->fin + (Size) k * dim;
		float		c = s->g.sqrt_deg[s->slot_row[k]] * post;

		for (int i = 0; i < dim; i++)
			f[i] *= c;
	}
}

/*
 * dLoss/dF per slot, accumulated in triple order by the part owning the
 * slot, then scaled to Z0 = D^-1/2 dLoss/dF.  With layers > 0, Z0 is also
 * scattered into buf[0] as H0 of the backward Horner iterations.
 */
static void
phase_slot_grads(void *arg, int part, int n_parts)
{
	LgcnState  *s = (LgcnState *) arg;
	const int	dim = s->dim;
	int64		lo,
				hi;

	worker_share(s->n_slots, part, n_parts, &lo, &hi);
	bpr_accumulate_grads(&s->bpr, s->z0, s->z0, lo, hi, lo, hi);
	for (int64 k = lo; k < hi; k++)
	{
		int32		r = s->slot_row[k];
		float	   *restrict z = s->z0 + (Size) k * dim;
		float		is = s->g.inv_sqrt[r];

		for (int i = 0; i < dim; i++)
			z[i] *= is;
		if (s->layers > 0)
			row_to_bf16(s->hbuf[0] + (Size) r * dim, z, dim);
	}
}

/* ---------------------------------------------------------------------------
 * Driving the phases (main thread)
 * ---------------------------------------------------------------------------
 */

static void
run_rows(LgcnState *s, WorkerFn fn)
{
	s->next_chunk = 0;
	worker_pool_run(s->bpr.pool, fn, s);
}

static void
run_prop(LgcnState *s, const PropJob *j)
{
	if (s->kernel[0] == NULL)
		pick_kernels(s->kernel);
	s->job = *j;
	run_rows(s, phase_prop);
	CHECK_FOR_INTERRUPTS();
}

static void
densify(LgcnState *s, SparseTensor *const *tensors, float *out, bf16 *out16,
		bool scaled)
{
	s->dens_src = tensors;
	s->dens_out = out;
	s->dens_out16 = out16;
	s->dens_scaled = scaled;
	run_rows(s, phase_densify);
	CHECK_FOR_INTERRUPTS();
}

/* hop distances of all nodes from the batch rows, up to `layers` hops */
static void
compute_dist(LgcnState *s)
{
	memset(s->dist, DIST_FAR, s->g.n);
	for (int k = 0; k < s->n_slots; k++)
		s->dist[s->slot_row[k]] = 0;
	s->ball[0] = s->n_slots;
	for (int level = 0; level < s->layers; level++)
	{
		int64		found = 0;

		if (s->ball[level] == s->g.n)
		{
			s->ball[level + 1] = s->g.n;
			continue;
		}
		s->bfs_level = level;
		run_rows(s, phase_bfs);
		for (int p = 0; p < s->n_parts; p++)
			found += s->part_count[p];
		s->ball[level + 1] = s->ball[level] + found;
	}
}

/* forward, loss gradient, backward and Adam for the sampled triples */
static void
lgcn_step(LgcnState *s, bool store_grad)
{
	const int	L = s->layers;
	const bf16 *prev;
	PropJob		j;
	bool		zero_fill[LGCN_MAX_LAYERS + 1];

	if (!s->y0_valid)
	{
		densify(s, s->engine->tensors, NULL, s->y0, true);
		s->y0_valid = true;
	}
	compute_dist(s);

	/*
	 * Forward: Y(k) = M Y(k-1) is needed within L - k hops of the batch;
	 * the batch rows' Y(k) are summed into fin as they are computed.
	 */
	worker_pool_run(s->bpr.pool, phase_slot_init, s);
	prev = s->y0;
	for (int k = 1; k <= L; k++)
	{
		memset(&j, 0, sizeof(j));
		j.in16 = prev;
		j.out16 = s->hbuf[(k - 1) % 2];
		j.acc_slots = s->fin;
		j.use_dist = true;
		j.row_lim = L - k;
		j.nb_lim = NB_ALL;
		j.few_rows = s->ball[L - k] * 2 < s->g.n;
		j.mode = PROP_PLAIN;
		run_prop(s, &j);
		prev = j.out16;
	}
	worker_pool_run(s->bpr.pool, phase_slot_final, s);
	bpr_scores(&s->bpr);

	/*
	 * Backward iteration k reads H(k-1), which is zero beyond k - 1 hops.
	 * When most rows are within k - 1 hops, the rows beyond are written as
	 * zeros and all neighbours are summed (same result: adding +0 changes
	 * nothing); otherwise each row's neighbours are filtered by distance.
	 */
	for (int k = 1; k <= L; k++)
		zero_fill[k] = s->ball[k - 1] * 2 >= s->g.n;
	if (L > 0 && zero_fill[1])
		memset(s->hbuf[0], 0, sizeof(bf16) * s->dim * s->g.n);
	worker_pool_run(s->bpr.pool, phase_slot_grads, s);

	/* backward: iteration k is non-zero within k hops of the batch */
	prev = s->hbuf[0];
	for (int k = (L > 0 ? 1 : 0); k <= L; k++)
	{
		memset(&j, 0, sizeof(j));
		j.in16 = k > 0 ? prev : NULL;
		if (k < L)
			j.out16 = s->hbuf[k % 2];
		else
			j.out = s->buf[L % 2];	/* float32: lgcn_round reads it */
		j.base_slots = s->z0;
		j.use_dist = true;
		j.row_lim = k;
		j.nb_lim = (k == 0 || zero_fill[k]) ? NB_ALL : k - 1;
		j.zero_rest = k < L && zero_fill[k + 1];
		j.few_rows = s->ball[k] * 2 < s->g.n;
		j.mode = k == L ? PROP_TRAIN_FINAL : PROP_PLAIN;
		j.store_grad = store_grad;
		run_prop(s, &j);
		prev = j.out16;
	}
}

/*
 * One optimizer step (BprModel.step): a negative per pair from the epoch's
 * stream, the batch rows numbered in ascending node order, the triples,
 * then forward, loss, backward and Adam (lgcn_step), keeping the ego
 * gradient when a round is due.  The propagation visits rows in node order
 * and reads or adds the per-slot rows (fin, z0) of the batch rows among
 * them, so numbering slots the same way makes those reads sequential
 * (numbered as first seen in the triples, they were random reads of up to
 * 3 * batch_size rows, out of cache at large batches).
 */
static int
lgcn_bpr_step(void *state, const int32 *pairs, int nb, bool round_due)
{
	LgcnState  *s = (LgcnState *) state;
	BprTrainer *b = &s->bpr;
	const Interactions *d = b->data;
	const int	nu = d->n_users;
	int32	   *neg = b->neg;
	int			nt;

	for (int t = 0; t < nb; t++)
	{
		const int32 *pair = pairs + 2 * t;

		neg[t] = bpr_draw_negative(d, pair[0], &b->rng);
		if (neg[t] < 0)
			continue;			/* the user has seen everything */
		bit_set(s->in_batch, pair[0]);
		bit_set(s->in_batch, nu + pair[1]);
		bit_set(s->in_batch, nu + neg[t]);
	}

	s->n_slots = bits_take_numbered(s->in_batch, BITS_WORDS(s->g.n), s->slot_of, s->slot_row,
									s->slot_count);

	nt = bpr_triples(b, pairs, nb, s->slot_of, s->slot_of + nu, s->slot_count, s->slot_count);
	b->nt = nt;
	if (nt == 0)
		return 0;
	b->inv_nb = 1.0f / (float) nt;

	lgcn_step(s, round_due);

	b->n_reg = 1;
	b->reg[0] = s->reg_loss;
	b->reg_n[0] = s->n_slots;
	return nt;
}

/*
 * A DSL round (BprModel.round) with the ego gradient of every row that the
 * step kept, zero outside the L-hop ball; Y0 is recomputed after it.  A
 * step without triples kept no gradient: no round then.
 */
static void
lgcn_round(void *state)
{
	LgcnState  *s = (LgcnState *) state;
	const float *gbuf = s->buf[s->layers % 2];
	TensorGrad	g[2];

	if (s->bpr.nt == 0)
		return;
	g[0].n = s->g.n_users;
	g[0].rows = NULL;			/* every row, in order */
	g[0].g = gbuf;
	g[1].n = s->g.n - s->g.n_users;
	g[1].rows = NULL;
	g[1].g = gbuf + (Size) s->g.n_users * s->dim;
	g[0].consume = g[1].consume = false;	/* the propagation buffer */
	dsl_engine_update(s->engine, g);
	s->y0_valid = false;
}

static const BprModel lgcn_bpr = {
	.step = lgcn_bpr_step,
	.round = lgcn_round,
	.end_epoch = NULL,
};

static double
lgcn_train_epoch(void *state)
{
	LgcnState  *s = (LgcnState *) state;

	return bpr_train_epoch(&s->bpr, &lgcn_bpr, s);
}

/*
 * Final embeddings of all users and items from the given ego tensors (live
 * or a snapshot): Horner over all rows into serve_out, with buf[0] holding
 * D^-1/2 E0 and buf[1] the other half of the ping-pong.  y0 is untouched.
 */
static void
lgcn_serving(void *state, SparseTensor *const *tensors,
			 EmbeddingSource *users, EmbeddingSource *items)
{
	LgcnState  *s = (LgcnState *) state;
	const int	L = s->layers;
	const int	dim = s->dim;

	if (s->serve_out == NULL)
	{
		MemoryContext old = MemoryContextSwitchTo(s->mcxt);

		s->serve_out = alloc_rows((Size) s->g.n * dim);
		MemoryContextSwitchTo(old);
	}

	if (L == 0)
		densify(s, tensors, s->serve_out, NULL, false);
	else
	{
		const float *prev = s->buf[0];
		PropJob		j;

		densify(s, tensors, s->buf[0], NULL, true);
		for (int k = 1; k <= L; k++)
		{
			memset(&j, 0, sizeof(j));
			j.in = prev;
			/* alternate so that the last iteration writes serve_out */
			j.out = (L - k) % 2 == 0 ? s->serve_out : s->buf[1];
			j.base_rows = s->buf[0];
			j.use_dist = false;
			j.row_lim = 0;
			j.nb_lim = NB_ALL;
			j.mode = k == L ? PROP_SERVE_FINAL : PROP_PLAIN;
			run_prop(s, &j);
			prev = j.out;
		}
	}

	*users = embedding_source_dense(s->serve_out, s->g.n_users, dim);
	*items = embedding_source_dense(s->serve_out + (Size) s->g.n_users * dim,
									s->g.n - s->g.n_users, dim);
}

static const StoredTensor lgcn_tensor_parts[] = {
	{"user_ego", ROWS_USERS},
	{"item_ego", ROWS_ITEMS},
};

const ModelOps lightgcn_ops = {
	.type = "lightgcn",
	.option_keys = "layers",
	.shape_keys = "layers",
	.options_size = sizeof(LgcnOptions),
	.default_dim = 64,
	.min_dim = 1,
	.default_interval_epochs = 1,
	.default_lr = 0.02,
	.default_reg = 1e-3,
	.sparse_min_epochs = 480,	/* validation can stall over a whole 240-epoch
								 * schedule before a large gain (docs/lightgcn.md) */
	.dense_min_epochs = 480,	/* Last.fm's dense model stopped after 60 */
	.n_reg_choices = 2,			/* the paper's 1e-4 wins on Gowalla (d >= 0.5) only */
	.reg_choices = {1e-3, 1e-4},
	.init_options = lgcn_init_options,
	.set_option = lgcn_set_option,
	.finish_options = NULL,
	.write_hyperparams = lgcn_write_hyperparams,
	.tensor_shapes = lgcn_tensor_shapes,
	.work_bytes = lgcn_work_bytes,
	.default_batch_size = lgcn_default_batch_size,
	.steps_per_epoch = lgcn_steps_per_epoch,
	.create = lgcn_create,
	.train_epoch = lgcn_train_epoch,
	.serving = lgcn_serving,
	.tensor_parts = lgcn_tensor_parts,
	.scorer = &dot_scorer,
};
