/*
 * neumf_net.c - the NeuMF score of a user against items (see neumf_net.h)
 *
 * A tile holds NEUMF_LANES items, element k of every item side by side
 * (rep rows of NEUMF_LANES floats), so each operation of the network is one
 * vector operation across the tile's items: GMF's inner product and every
 * layer accumulate over their inputs in ascending order within each lane,
 * in one register per output unit.
 */
#include "postgres.h"

#include "cpu.h"
#include "neumf_net.h"

/* NEUMF_LANES floats, loadable from any 4-byte aligned address */
typedef float lanes_t __attribute__((vector_size(NEUMF_LANES * sizeof(float)),
									 aligned(4), may_alias));

typedef int32 lanes_mask_t __attribute__((vector_size(NEUMF_LANES * sizeof(int32))));

/*
 * max(v, 0) in every lane (0 for NaN), v a variable (a macro: a function
 * taking vectors would change the ABI of the baseline copy)
 */
#define RELU_LANES(v) ((lanes_t) ((lanes_mask_t) (v) & ((v) > (lanes_t) {0})))

/* one tile: scores of its NEUMF_LANES items into out */
static inline __attribute__((always_inline)) void
score_tile(const NeumfNet *net, const float *user, const float *tile, float *out)
{
	lanes_t		xa[NEUMF_MAX_WIDTH];
	lanes_t		xb[NEUMF_MAX_WIDTH];
	lanes_t    *x = xa,
			   *y = xb;
	const lanes_t *t = (const lanes_t *) tile;
	const int	g = net->gmf_dim;
	int			w_in = net->width[0];
	lanes_t		gmf = {0},
				acc = {0};

	for (int k = 0; k < g; k++)
		gmf += user[k] * t[k];
	for (int k = 0; k < w_in; k++)
	{
		lanes_t		v = user[g + k] + t[g + k];

		x[k] = RELU_LANES(v);
	}
	for (int l = 1; l < net->n_hidden; l++)
	{
		const int	w_out = net->width[l];
		const float *w = net->w[l];
		lanes_t    *swap;

		for (int o = 0; o < w_out; o++)
		{
			lanes_t		a = {0};

			a += net->b[l][o];
			for (int k = 0; k < w_in; k++)
				a += x[k] * w[(Size) k * w_out + o];
			y[o] = RELU_LANES(a);
		}
		swap = x;
		x = y;
		y = swap;
		w_in = w_out;
	}
	for (int k = 0; k < w_in; k++)
		acc += x[k] * net->h_mlp[k];
	acc = gmf + acc + net->out_bias;
	memcpy(out, &acc, sizeof(acc));
}

static inline __attribute__((always_inline)) void
score_tiles_body(const NeumfNet *net, const float *user, const float *tiles,
				 int n_tiles, float *out)
{
	Size		stride = (Size) neumf_rep_width(net) * NEUMF_LANES;

	for (int t = 0; t < n_tiles; t++)
		score_tile(net, user, tiles + t * stride, out + (Size) t * NEUMF_LANES);
}

typedef void (*TilesFn) (const NeumfNet *net, const float *user,
						 const float *tiles, int n_tiles, float *out);

static void
tiles_base(const NeumfNet *net, const float *user, const float *tiles,
		   int n_tiles, float *out)
{
	score_tiles_body(net, user, tiles, n_tiles, out);
}

#ifdef DSL_X86_DISPATCH
DSL_TARGET("avx2,fma")
static void
tiles_avx2(const NeumfNet *net, const float *user, const float *tiles,
		   int n_tiles, float *out)
{
	score_tiles_body(net, user, tiles, n_tiles, out);
}

DSL_TARGET("avx512f,avx2,fma")
static void
tiles_avx512(const NeumfNet *net, const float *user, const float *tiles,
			 int n_tiles, float *out)
{
	score_tiles_body(net, user, tiles, n_tiles, out);
}
#endif

static TilesFn tiles_fn;

void
neumf_net_prepare(void)
{
	if (tiles_fn != NULL)
		return;
	tiles_fn = tiles_base;
#ifdef DSL_X86_DISPATCH
	if (DSL_CPU_HAS("avx512f"))
		tiles_fn = tiles_avx512;
	else if (DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma"))
		tiles_fn = tiles_avx2;
#endif
}

void
neumf_net_rep(const NeumfNet *net, int dm, const float *w1, const float *bias,
			  const float *e, const float *em, float *out)
{
	const int	g = net->gmf_dim;
	const int	w0 = net->width[0];
	double		acc[NEUMF_MAX_WIDTH];

	memcpy(out, e, sizeof(float) * g);
	for (int o = 0; o < w0; o++)
		acc[o] = bias ? bias[o] : 0.0;
	for (int k = 0; k < dm; k++)
	{
		const float *row = w1 + (Size) k * w0;
		double		x = em[k];

		if (x == 0)
			continue;
		for (int o = 0; o < w0; o++)
			acc[o] += x * row[o];
	}
	for (int o = 0; o < w0; o++)
		out[g + o] = (float) acc[o];
}

void
neumf_net_tile(const NeumfNet *net, const float *rows, Size ld, int n, float *tiled)
{
	const int	rep = neumf_rep_width(net);

	memset(tiled, 0, sizeof(float) * neumf_net_tiled_floats(net, n));
	for (int i = 0; i < n; i++)
	{
		float	   *t = tiled + (Size) (i / NEUMF_LANES) * rep * NEUMF_LANES + i % NEUMF_LANES;
		const float *r = rows + (Size) i * ld;

		for (int k = 0; k < rep; k++)
			t[(Size) k * NEUMF_LANES] = r[k];
	}
}

/* scores of items 0 .. n - 1: whole tiles, then the last one's live lanes */
void
neumf_net_score_all(const NeumfNet *net, const float *user, const float *tiled,
					int n, float *scores)
{
	int			full = n / NEUMF_LANES;
	float		last[NEUMF_LANES];

	Assert(tiles_fn != NULL);
	tiles_fn(net, user, tiled, full, scores);
	if (n > full * NEUMF_LANES)
	{
		tiles_fn(net, user, tiled + (Size) full * neumf_rep_width(net) * NEUMF_LANES,
				 1, last);
		memcpy(scores + (Size) full * NEUMF_LANES, last,
			   sizeof(float) * (n - full * NEUMF_LANES));
	}
}

/* scores of a list: its items gathered into tiles of their own */
void
neumf_net_score(const NeumfNet *net, const float *user, const float *tiled,
				const int32 *items, int n, float *scores)
{
	const int	rep = neumf_rep_width(net);
	float		tile[NEUMF_MAX_REP * NEUMF_LANES];
	float		out[NEUMF_LANES];

	Assert(tiles_fn != NULL);
	for (int lo = 0; lo < n; lo += NEUMF_LANES)
	{
		int			m = Min(NEUMF_LANES, n - lo);

		for (int c = 0; c < NEUMF_LANES; c++)
		{
			int32		i = items[lo + Min(c, m - 1)];
			const float *src = tiled + (Size) (i / NEUMF_LANES) * rep * NEUMF_LANES + i % NEUMF_LANES;

			for (int k = 0; k < rep; k++)
				tile[k * NEUMF_LANES + c] = src[(Size) k * NEUMF_LANES];
		}
		tiles_fn(net, user, tile, 1, out);
		memcpy(scores + lo, out, sizeof(float) * m);
	}
}
