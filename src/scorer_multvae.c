/*
 * scorer_multvae.c - serving a MultVAE model: inner products, and an
 * encoder for ad-hoc histories
 *
 * A stored MultVAE's 'user' rows are [h3(mu(x_u)), 1] and its 'item' rows
 * are the output layer's rows with the output bias last (multvae.c), so
 * everything a stored user asks is the inner-product scorer's.  What is
 * MultVAE's own is a history that belongs to no stored user
 * (dsl.recommend_for_items, dsl.evaluate_histories): it goes through the
 * encoder and the decoder's first layer exactly as a training user's
 * history does when the 'user' rows are written (no dropout, z = mu):
 *
 *   h1 = tanh(b1 + |x|^-1/2 sum_{i in x} W1_i),  mu = (h1 W2 + b2)[0..L),
 *   user = [tanh(mu W3 + b3), 1]
 *
 * The encoder's parts ('enc_in' rows by item id, 'enc_in_bias', 'enc_out',
 * 'enc_out_bias', 'dec_in', 'dec_in_bias') are read with the model; enc_in
 * is kept as compressed rows (its stored entries only), the rest dense.
 * The shared copy of a model (serve_shared.h) holds the inner-product
 * state, then the encoder's arrays.
 */
#include "postgres.h"

#include <math.h>

#include "miscadmin.h"

#include "model_cache.h"
#include "scorer.h"
#include "spvec.h"

typedef struct VaeEncoder
{
	int			H;				/* hidden units: the model's dim - 1 */
	int			L;				/* latent units */
	int64	   *row_ptr;		/* enc_in: n_items + 1 offsets */
	uint16	   *col;
	float	   *val;
	int64		nnz;
	int64		cap;
	float	   *b1;				/* H */
	float	   *w2;				/* H x 2L */
	float	   *b2;				/* 2L */
	float	   *w3;				/* L x H */
	float	   *b3;				/* H */
} VaeEncoder;

/* reading one part: where its rows go */
typedef struct PartRead
{
	ServeModel *m;
	VaeEncoder *enc;
	const char *part;
	int64		want_rows;		/* rows it must have */
	int			dim;			/* their dimension (first row's for -1) */
	float	   *dense;			/* dense parts: want_rows x dim, allocated at
								 * the first row */
	float	  **out;
	int32	   *idx;			/* one row's indices */
} PartRead;

static void
corrupt(const ServeModel *m, const char *part, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("part \"%s\" of model \"%s\" %s", part, m->name, what)));
}

/* a row of a dense part: entity ids 0 .. want_rows - 1 */
static void
dense_row(void *arg, int64 n, int64 id, const SpVec *v)
{
	PartRead   *r = (PartRead *) arg;

	if (n < 0)
		return;
	if (id != n || n >= r->want_rows)
		corrupt(r->m, r->part, "has rows other than the model's own 0 .. n-1");
	if (r->dense == NULL)
	{
		r->dim = spvec_dim(v);
		r->dense = MemoryContextAllocHuge(r->m->cxt,
										  sizeof(float) * r->want_rows * r->dim);
	}
	spvec_to_dense(v, r->dense + (Size) n * r->dim);
}

/* a dense part of `rows` rows of *dim (-1: any, then set to theirs) */
static float *
read_dense(ServeModel *m, VaeEncoder *enc, const char *part, int64 rows, int *dim)
{
	PartRead	r = {m, enc, part, rows, *dim, NULL, NULL, NULL};
	int64		got = serve_scan_part_dim(m, part, *dim, dense_row, &r);

	if (got != rows)
		corrupt(m, part, "does not have the rows its model type stores");
	*dim = r.dim;
	return r.dense;
}

/* a row of enc_in: the item of the same index, its stored entries */
static void
enc_in_row(void *arg, int64 n, int64 id, const SpVec *v)
{
	PartRead   *r = (PartRead *) arg;
	VaeEncoder *e = r->enc;
	int			nz;

	if (n < 0)
		return;
	if (n >= r->m->n_items || id != r->m->item_ids[n])
		corrupt(r->m, r->part, "does not have one row per item of the model");
	nz = spvec_nnz(v);
	if (e->nnz + nz > e->cap)
	{
		int64		cap = Max(e->cap * 2, e->nnz + nz);

		e->col = repalloc_huge(e->col, sizeof(uint16) * cap);
		e->val = repalloc_huge(e->val, sizeof(float) * cap);
		e->cap = cap;
	}
	spvec_indices(v, r->idx);
	for (int k = 0; k < nz; k++)
		e->col[e->nnz + k] = (uint16) r->idx[k];
	memcpy(e->val + e->nnz, spvec_values(v), sizeof(float) * nz);
	e->nnz += nz;
	e->row_ptr[n + 1] = e->nnz;
}

/* the inner-product rows, then the encoder */
static void
vae_load(ServeModel *m)
{
	VaeEncoder *e;
	PartRead	r;
	MemoryContext old;
	int			H = m->dim - 1;
	int			L2,
				dim;

	dot_scorer.load(m);
	if (H < 1)
		corrupt(m, "item", "is narrower than a MultVAE's rows");
	old = MemoryContextSwitchTo(m->cxt);
	e = palloc0(sizeof(VaeEncoder));
	e->H = H;
	e->row_ptr = palloc0(sizeof(int64) * (m->n_items + 1));
	e->cap = Max((int64) m->n_items * 8, 64);
	e->col = palloc_extended(sizeof(uint16) * e->cap, MCXT_ALLOC_HUGE);
	e->val = palloc_extended(sizeof(float) * e->cap, MCXT_ALLOC_HUGE);
	MemoryContextSwitchTo(old);

	memset(&r, 0, sizeof(r));
	r.m = m;
	r.enc = e;
	r.part = "enc_in";
	r.idx = palloc(sizeof(int32) * H);
	if (serve_scan_part_dim(m, "enc_in", H, enc_in_row, &r) != m->n_items)
		corrupt(m, "enc_in", "does not have one row per item of the model");
	pfree(r.idx);

	dim = H;
	e->b1 = read_dense(m, e, "enc_in_bias", 1, &dim);
	/* the latent width: half of the encoder output's */
	L2 = -1;
	e->b2 = read_dense(m, e, "enc_out_bias", 1, &L2);
	if (L2 < 2 || L2 % 2 != 0)
		corrupt(m, "enc_out_bias", "is not twice a latent width wide");
	e->L = L2 / 2;
	e->w2 = read_dense(m, e, "enc_out", H, &L2);
	dim = H;
	e->w3 = read_dense(m, e, "dec_in", e->L, &dim);
	e->b3 = read_dense(m, e, "dec_in_bias", 1, &dim);
	*dot_scorer_extra(m) = e;
}

/* [h3(mu), 1] for the history items[0..n) */
static void
vae_history_vector(ServeModel *m, const int32 *items, int n, float *out)
{
	const VaeEncoder *e = (const VaeEncoder *) *dot_scorer_extra(m);
	const int	H = e->H,
				L = e->L;
	float	   *h1 = palloc(sizeof(float) * H);
	float	   *mu = palloc(sizeof(float) * L);
	float		scale = (float) (1.0 / sqrt((double) n));

	memcpy(h1, e->b1, sizeof(float) * H);
	for (int k = 0; k < n; k++)
	{
		int32		i = items[k];

		for (int64 q = e->row_ptr[i]; q < e->row_ptr[i + 1]; q++)
			h1[e->col[q]] += scale * e->val[q];
	}
	for (int c = 0; c < H; c++)
		h1[c] = tanhf(h1[c]);
	for (int l = 0; l < L; l++)
		mu[l] = e->b2[l];
	for (int c = 0; c < H; c++)
	{
		const float *w = e->w2 + (Size) c * 2 * L;

		for (int l = 0; l < L; l++)
			mu[l] += h1[c] * w[l];
	}
	memcpy(out, e->b3, sizeof(float) * H);
	for (int l = 0; l < L; l++)
	{
		const float *w = e->w3 + (Size) l * H;

		for (int c = 0; c < H; c++)
			out[c] += mu[l] * w[c];
	}
	for (int c = 0; c < H; c++)
		out[c] = tanhf(out[c]);
	out[H] = 1.0f;
	pfree(h1);
	pfree(mu);
}

/* the rest is the inner-product scorer's */
static void
vae_state_finish(ServeModel *m)
{
	dot_scorer.state_finish(m);
}

static void
vae_user_vector(const ServeModel *m, int user, float *out)
{
	dot_scorer.user_vector(m, user, out);
}

static void
vae_rank_items(const ServeModel *m, const float *user,
			   const int32 *exclude, int64 n_exclude, TopK *h)
{
	dot_scorer.rank_items(m, user, exclude, n_exclude, h);
}

static void
vae_score_items(const ServeModel *m, const float *user, const int32 *items,
				int n, float *scores)
{
	dot_scorer.score_items(m, user, items, n, scores);
}

static void
vae_rank_users(const ServeModel *m, const int32 *users, int n_users,
			   const IndexCSR *exclude, int k, Size mem_bytes,
			   TopKEmit emit, void *emit_arg)
{
	dot_scorer.rank_users(m, users, n_users, exclude, k, mem_bytes, emit, emit_arg);
}

static void
vae_similar_items(const ServeModel *m, int item, bool cosine, TopK *h)
{
	dot_scorer.similar_items(m, item, cosine, h);
}

/* the encoder's arrays, each MAXALIGNed, in this order */
static Size
encoder_bytes(const ServeModel *m, const VaeEncoder *e)
{
	int			H = e->H,
				L = e->L;

	return MAXALIGN(sizeof(int64) * (m->n_items + 1)) + MAXALIGN(sizeof(uint16) * e->nnz) +
		MAXALIGN(sizeof(float) * e->nnz) + MAXALIGN(sizeof(float) * H) +
		MAXALIGN(sizeof(float) * H * 2 * L) + MAXALIGN(sizeof(float) * 2 * L) +
		MAXALIGN(sizeof(float) * L * H) + MAXALIGN(sizeof(float) * H);
}

/* place (or, with copy, write) one array at *p and move past it */
static void *
place(char **p, const void *src, Size bytes, bool copy)
{
	void	   *at = *p;

	if (copy)
		memcpy(at, src, bytes);
	*p += MAXALIGN(bytes);
	return at;
}

/* lay the encoder's arrays out at p: write them, or point e at them */
static void
encoder_layout(const ServeModel *m, VaeEncoder *e, char *p, bool copy)
{
	int			H = e->H,
				L = e->L;

	e->row_ptr = place(&p, e->row_ptr, sizeof(int64) * (m->n_items + 1), copy);
	e->col = place(&p, e->col, sizeof(uint16) * e->nnz, copy);
	e->val = place(&p, e->val, sizeof(float) * e->nnz, copy);
	e->b1 = place(&p, e->b1, sizeof(float) * H, copy);
	e->w2 = place(&p, e->w2, sizeof(float) * H * 2 * L, copy);
	e->b2 = place(&p, e->b2, sizeof(float) * 2 * L, copy);
	e->w3 = place(&p, e->w3, sizeof(float) * L * H, copy);
	e->b3 = place(&p, e->b3, sizeof(float) * H, copy);
}

/* shared copy: the encoder's header, its arrays, then the inner-product state */
static Size
vae_state_bytes(const ServeModel *m)
{
	const VaeEncoder *e = (const VaeEncoder *) *dot_scorer_extra(m);

	return MAXALIGN(sizeof(VaeEncoder)) + encoder_bytes(m, e) + dot_scorer.state_bytes(m);
}

static void
vae_state_write(const ServeModel *m, char *dst)
{
	VaeEncoder	e = *(const VaeEncoder *) *dot_scorer_extra(m);

	memcpy(dst, &e, sizeof(VaeEncoder));	/* H, L and nnz are what matter */
	encoder_layout(m, &e, dst + MAXALIGN(sizeof(VaeEncoder)), true);
	dot_scorer.state_write(m, dst + MAXALIGN(sizeof(VaeEncoder)) + encoder_bytes(m, &e));
}

static void
vae_state_attach(ServeModel *m, const char *src)
{
	VaeEncoder *e = MemoryContextAlloc(m->cxt, sizeof(VaeEncoder));

	memcpy(e, src, sizeof(VaeEncoder));
	encoder_layout(m, e, unconstify(char *, src) + MAXALIGN(sizeof(VaeEncoder)), false);
	dot_scorer.state_attach(m, src + MAXALIGN(sizeof(VaeEncoder)) + encoder_bytes(m, e));
	*dot_scorer_extra(m) = e;
}

const Scorer multvae_scorer = {
	.name = "multvae",
	.load = vae_load,
	.state_finish = vae_state_finish,
	.user_vector = vae_user_vector,
	.history_vector = vae_history_vector,
	.rank_items = vae_rank_items,
	.score_items = vae_score_items,
	.rank_users = vae_rank_users,
	.similar_items = vae_similar_items,
	.state_bytes = vae_state_bytes,
	.state_write = vae_state_write,
	.state_attach = vae_state_attach,
};
