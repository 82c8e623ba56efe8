/*
 * serve_rows.c - a served embedding table, dense or sparse (see serve_rows.h)
 */
#include "postgres.h"

#include <math.h>
#include <cblas.h>

#include "miscadmin.h"
#include "utils/memutils.h"

#include "cpu.h"
#include "dsl_rec.h"
#include "hugepage.h"
#include "model_cache.h"
#include "serve_rows.h"
#include "spvec.h"

#ifdef DSL_X86_DISPATCH
#include <immintrin.h>
#endif

#define SLICE SERVE_SLICE

/*
 * Rows read before deciding whether a part is dense enough to be read into
 * the dense form directly (a dense part read as entries first would need
 * 6 + 4 bytes a weight at its peak instead of 4).
 */
#define PROBE_ROWS 1024

/* what the row callback fills while a part is read */
typedef struct RowsLoad
{
	MemoryContext cxt;
	int			dim;
	int64		cap_rows;		/* rows the arrays below have room for */
	int64	   *ids;
	int64	   *ptr;			/* the entries read so far, as rows */
	uint16	   *col;
	float	   *val;
	int64		nnz;
	int64		cap;
	int32	   *idx;			/* scratch: one row's indices */
	float	   *dense;			/* once the probe found the part dense */
} RowsLoad;

/* the rows' places in the slices (slice_order()) */
typedef struct SliceOrder
{
	int32	   *order;			/* the row at each position */
	int32	   *width;			/* each slice's entries per row */
	int			n_slices;
	int32	   *mixed;			/* the slices whose rows differ in length
								 * (the only ones padded) */
	int			n_mixed;
} SliceOrder;

/* a sparse part as read, until its entries are written in slices */
typedef struct RowsStage
{
	RowsLoad	L;
	SliceOrder	so;
} RowsStage;

/*
 * Arrays of a served part: in cxt, advised to live on huge pages (their
 * first touch is most of a load's page faults, which cost a lot under
 * virtualisation).
 */
static void *
rows_alloc(MemoryContext cxt, Size sz)
{
	void	   *p = MemoryContextAllocHuge(cxt, Max(sz, 1));

	dsl_advise_huge_pages(p, sz);
	return p;
}

static void *
rows_realloc(void *p, Size sz)
{
	p = repalloc_huge(p, Max(sz, 1));
	dsl_advise_huge_pages(p, sz);
	return p;
}

/* row i of the entries read, expanded into the dense row out */
static void
expand_rows_at(const RowsLoad *L, int64 i, float *out)
{
	memset(out, 0, sizeof(float) * L->dim);
	for (int64 k = L->ptr[i]; k < L->ptr[i + 1]; k++)
		out[L->col[k]] = L->val[k];
}

/* rows [0, n) of the entries read, expanded into the dense rows out */
static void
expand_rows(const RowsLoad *L, int64 n, float *out)
{
	for (int64 i = 0; i < n; i++)
		expand_rows_at(L, i, out + (Size) i * L->dim);
}

/*
 * After PROBE_ROWS rows: when the entries read already
 * take at least the dense size of their rows, no sparse form can be
 * smaller, so the rest is read into the dense form directly.
 */
static void
probe_density(RowsLoad *L, int64 rows_read)
{
	if ((double) L->nnz * (sizeof(float) + serve_rows_col_bytes(L->dim)) <
		(double) rows_read * L->dim * sizeof(float))
	{
		/*
		 * Staying sparse: room for the expected entries now, while the
		 * arrays are small (growing them later copies them whole).
		 */
		double		want = (double) L->nnz / rows_read * L->cap_rows * 1.05 + 1024;

		if (want > L->cap && want < (double) L->cap_rows * L->dim + 1024)
		{
			L->cap = (int64) want;
			L->col = rows_realloc(L->col, sizeof(uint16) * L->cap);
			L->val = rows_realloc(L->val, sizeof(float) * L->cap);
		}
		return;
	}
	L->dense = rows_alloc(L->cxt, sizeof(float) * L->cap_rows * L->dim);
	expand_rows(L, rows_read, L->dense);
	pfree(L->ptr);
	pfree(L->col);
	pfree(L->val);
	L->ptr = NULL;
	L->col = NULL;
	L->val = NULL;
}

static void
load_row(void *arg, int64 n, int64 id, const SpVec *v)
{
	RowsLoad   *L = (RowsLoad *) arg;
	int			nz;
	const float *vals;

	if (n < 0)
	{
		/* id is the expected row count: size the arrays */
		L->cap_rows = Max(id, 16);
		L->ids = rows_alloc(L->cxt, sizeof(int64) * L->cap_rows);
		L->ptr = rows_alloc(L->cxt, sizeof(int64) * (L->cap_rows + 1));
		L->cap = L->cap_rows * 4;
		L->col = rows_alloc(L->cxt, sizeof(uint16) * L->cap);
		L->val = rows_alloc(L->cxt, sizeof(float) * L->cap);
		L->ptr[0] = 0;
		return;
	}
	if (n >= L->cap_rows)
	{
		/* more rows than dsl.models said */
		L->cap_rows *= 2;
		L->ids = rows_realloc(L->ids, sizeof(int64) * L->cap_rows);
		if (L->dense)
			L->dense = rows_realloc(L->dense, sizeof(float) * L->cap_rows * L->dim);
		else
			L->ptr = rows_realloc(L->ptr, sizeof(int64) * (L->cap_rows + 1));
	}
	L->ids[n] = id;
	if (L->dense)
	{
		spvec_to_dense(v, L->dense + (Size) n * L->dim);
		return;
	}
	nz = spvec_nnz(v);
	if (L->nnz + nz > L->cap)
	{
		while (L->nnz + nz > L->cap)
			L->cap *= 2;
		L->col = rows_realloc(L->col, sizeof(uint16) * L->cap);
		L->val = rows_realloc(L->val, sizeof(float) * L->cap);
	}
	spvec_indices(v, L->idx);
	vals = spvec_values(v);
	for (int k = 0; k < nz; k++)
	{
		L->col[L->nnz + k] = (uint16) L->idx[k];
		L->val[L->nnz + k] = vals[k];
	}
	L->nnz += nz;
	L->ptr[n + 1] = L->nnz;
	if (n + 1 == PROBE_ROWS)
		probe_density(L, n + 1);
}

/*
 * Euclidean norms of the rows (double sums in column order), from the rows
 * as read: a sparse row's stored entries ascend by column, and the zeros it
 * leaves out do not change the sum.
 */
static void
compute_norms(ServeRows *r, const RowsLoad *L, MemoryContext cxt)
{
	double	   *norm = rows_alloc(cxt, sizeof(double) * Max(r->n_rows, 1));

	r->max_norm = 0.0;
	for (int64 i = 0; i < r->n_rows; i++)
	{
		if (r->dense)
			norm[i] = topk_norm(r->dense + (Size) i * r->dim, r->dim);
		else
		{
			double		sq = 0.0;

			for (int64 k = L->ptr[i]; k < L->ptr[i + 1]; k++)
				sq += (double) L->val[k] * L->val[k];
			norm[i] = sqrt(sq);
		}
		r->max_norm = Max(r->max_norm, norm[i]);
	}
	r->norm = norm;
}

/*
 * The rows' places in slices: by number of stored entries, then by index
 * (a counting sort, the lengths being at most dim), so that the rows of a
 * slice are as long as each other and only the few slices where one length
 * ends and the next begins are padded.  Every slice but those holds 16
 * rows of one length read one after another, so fill_slices() writes the
 * rows in the order read into as many slices at a time as there are
 * lengths, which stay in the cache.  Allocated in the current context.
 */
static SliceOrder
slice_order(const RowsLoad *L, int64 n_rows, int dim)
{
	SliceOrder	so;
	int64	   *start = palloc0(sizeof(int64) * (dim + 2));
	int64	   *next = palloc(sizeof(int64) * (dim + 1));
	int			len = 0;

	so.n_slices = (int) ((n_rows + SLICE - 1) / SLICE);
	so.order = palloc_extended(sizeof(int32) * Max(n_rows, 1), MCXT_ALLOC_HUGE);
	so.width = palloc_extended(sizeof(int32) * Max(so.n_slices, 1), MCXT_ALLOC_HUGE);
	so.mixed = palloc(sizeof(int32) * (dim + 1));
	so.n_mixed = 0;
	for (int64 i = 0; i < n_rows; i++)
		start[L->ptr[i + 1] - L->ptr[i] + 1]++;
	for (int k = 1; k <= dim + 1; k++)
		start[k] += start[k - 1];
	/* start[k]: the first position of the rows of length k */
	memcpy(next, start, sizeof(int64) * (dim + 1));
	for (int64 i = 0; i < n_rows; i++)
		so.order[next[L->ptr[i + 1] - L->ptr[i]]++] = (int32) i;
	for (int c = 0; c < so.n_slices; c++)
	{
		int64		first = (int64) c * SLICE,
					last = Min(first + SLICE, n_rows) - 1;
		int			first_len;

		while (start[len + 1] <= first)
			len++;
		first_len = len;
		while (start[len + 1] <= last)
			len++;
		/* ascending lengths: a slice is as wide as its last row */
		so.width[c] = len;
		if (len != first_len || last - first + 1 < SLICE)
			so.mixed[so.n_mixed++] = c;
	}
	pfree(start);
	pfree(next);
	return so;
}

/* bytes of the sparse form of the rows read, in slice order */
static double
sliced_bytes(const SliceOrder *so, int64 n_rows, int dim)
{
	double		entries = 0;

	for (int c = 0; c < so->n_slices; c++)
		entries += (double) so->width[c] * SLICE;
	return entries * (sizeof(float) + serve_rows_col_bytes(dim)) +
		(double) (n_rows / SLICE + 2) * sizeof(int64) + (double) n_rows * 2 * sizeof(int32);
}

/*
 * The sparse form: the rows in slice order (slice_order()) cut into slices
 * of SLICE rows, each slice as wide as its longest row, entries stored
 * column by column of the slice (entry j of its 16 rows side by side),
 * shorter rows padded with zeros in column 0; pos[i] is row i's position
 * and row[p] the row at position p.  A kernel then scores 16 rows at once
 * without per-row branches or horizontal sums, and a row's entries are
 * still in ascending column order, the padding zeros last (they change
 * neither a row nor its sums).
 *
 * plan_slices() sets the slice offsets and positions; the entries are
 * written later by fill_slices(), straight into the shared copy when the
 * model is shared (serve_rows_write()), else into arrays of the backend
 * (serve_rows_finish()): the entries are copied once either way.
 */
static void
plan_slices(ServeRows *r, const SliceOrder *so, MemoryContext cxt)
{
	int64		n = r->n_rows;
	int64	   *slice = rows_alloc(cxt, sizeof(int64) * (so->n_slices + 1));
	int32	   *pos = rows_alloc(cxt, sizeof(int32) * Max(n, 1));
	int32	   *row = rows_alloc(cxt, sizeof(int32) * Max(n, 1));

	slice[0] = 0;
	for (int c = 0; c < so->n_slices; c++)
		slice[c + 1] = slice[c] + (int64) so->width[c] * SLICE;
	for (int64 p = 0; p < n; p++)
		pos[so->order[p]] = (int32) p;
	memcpy(row, so->order, sizeof(int32) * n);
	r->slice = slice;
	r->pos = pos;
	r->row = row;
}

/*
 * Bytes of a sparse form's column array: one-byte columns have zeroed slack
 * after the last entry, which the int8 copy's kernel reads in whole groups
 * (serve_q8.c)
 */
static Size
col_array_bytes(int dim, int64 total)
{
	return serve_rows_col_bytes(dim) * (Size) total +
		(serve_rows_col_bytes(dim) == 1 ? SERVE_Q8_COL_SLACK : 0);
}

/*
 * Entry j of a slice's 16 rows side by side: the rows, taken in the order
 * read (the stage is read once, in order), each copied to every 16th place
 * of its slice; the rows of one length fill their slices one after another,
 * so the few slices being filled stay in the cache (slice_order()).  The
 * slices that are padded (where one length ends, and a last one not full)
 * are zeroed first, and then the columns' slack (col_array_bytes()).
 */
static void
fill_slices(const ServeRows *r, const RowsStage *st, void *col, float *val)
{
	const RowsLoad *L = &st->L;
	int64		n = r->n_rows;
	int			cb = serve_rows_col_bytes(r->dim);
	uint8	   *col8 = cb == 1 ? col : NULL;
	uint16	   *col16 = col8 ? NULL : col;
	Size		used = cb * (Size) r->slice[serve_rows_slices(r)];

	for (int k = 0; k < st->so.n_mixed; k++)
	{
		int			c = st->so.mixed[k];
		int64		e0 = r->slice[c],
					e1 = r->slice[c + 1];

		memset(val + e0, 0, sizeof(float) * (e1 - e0));
		memset((char *) col + cb * e0, 0, cb * (e1 - e0));
	}
	memset((char *) col + used, 0, col_array_bytes(r->dim, r->slice[serve_rows_slices(r)]) - used);

	for (int64 i = 0; i < n; i++)
	{
		int32		p = r->pos[i];
		int64		e0 = r->slice[p / SLICE] + p % SLICE;
		int64		first = L->ptr[i];
		int64		len = L->ptr[i + 1] - first;
		const uint16 *sc = L->col + first;
		const float *sv = L->val + first;
		float	   *dv = val + e0;

		if (col8)
		{
			uint8	   *dc = col8 + e0;

			for (int64 j = 0; j < len; j++)
			{
				dc[j * SLICE] = (uint8) sc[j];
				dv[j * SLICE] = sv[j];
			}
		}
		else
		{
			uint16	   *dc = col16 + e0;

			for (int64 j = 0; j < len; j++)
			{
				dc[j * SLICE] = sc[j];
				dv[j * SLICE] = sv[j];
			}
		}
	}
}

/* the rows as read, given back */
static void
free_stage(RowsStage *st)
{
	pfree(st->so.order);
	pfree(st->so.width);
	pfree(st->so.mixed);
	pfree(st->L.ptr);
	pfree(st->L.col);
	pfree(st->L.val);
	pfree(st);
}

/* a row of a part being loaded: the dense rows, or the entries as read */
typedef struct LoadedRow
{
	const ServeRows *r;
	const RowsLoad *L;
} LoadedRow;

static void
get_loaded_row(const void *arg, int i, float *out)
{
	const LoadedRow *lr = (const LoadedRow *) arg;

	if (lr->r->dense)
		memcpy(out, lr->r->dense + (Size) i * lr->r->dim, sizeof(float) * lr->r->dim);
	else
		expand_rows_at(lr->L, i, out);
}

int
serve_rows_load(ServeModel *m, const char *part, bool scanned, int64 **ids_out,
				ServeRows *rows)
{
	RowsLoad	L;
	int64		n;
	int			dim = m->dim;

	memset(&L, 0, sizeof(L));
	L.cxt = m->cxt;
	L.dim = dim;
	L.idx = palloc(sizeof(int32) * dim);
	n = serve_scan_part(m, part, load_row, &L);
	pfree(L.idx);

	memset(rows, 0, sizeof(ServeRows));
	rows->n_rows = (int) n;
	rows->dim = dim;
	if (L.dense)
	{
		/* dsl.models said more rows than there are: give the rest back */
		if (n < L.cap_rows)
			L.dense = rows_realloc(L.dense, sizeof(float) * Max(n, 1) * dim);
		rows->dense = L.dense;
	}
	else
	{
		SliceOrder	so = slice_order(&L, n, dim);

		if (sliced_bytes(&so, n, dim) < (double) n * dim * sizeof(float) && dim <= PG_UINT16_MAX)
		{
			/* the entries are placed by serve_rows_write() or _finish() */
			RowsStage  *st = MemoryContextAlloc(m->cxt, sizeof(RowsStage));

			st->L = L;
			st->so = so;
			rows->stage = st;
			plan_slices(rows, &so, m->cxt);
		}
		else
		{
			float	   *dense = rows_alloc(m->cxt, sizeof(float) * Max(n, 1) * dim);

			expand_rows(&L, n, dense);
			rows->dense = dense;
			pfree(so.order);
			pfree(so.width);
			pfree(so.mixed);
			pfree(L.ptr);
			pfree(L.col);
			pfree(L.val);
		}
	}
	/* from the dense rows, or the staged entries (still held) */
	compute_norms(rows, &L, m->cxt);
	/*
	 * A scanned part's int8 copy: the slices' own (built with them, by
	 * serve_rows_write() or _finish()) where it applies, else one row by row
	 */
	if (scanned && rows->stage)
		rows->want_q8s = serve_q8_slices_wanted(rows, (double) serve_rows_bytes(rows));
	if (scanned && !rows->want_q8s &&
		serve_q8_wanted(rows->n_rows, dim, (double) serve_rows_bytes(rows)))
	{
		char	   *q8 = rows_alloc(m->cxt, serve_q8_bytes(rows->n_rows, dim));
		LoadedRow	lr = {rows, &L};

		serve_q8_build(&rows->q8, rows->n_rows, dim, get_loaded_row, &lr, q8);
	}
	*ids_out = L.ids;
	return (int) n;
}

void
serve_rows_finish(ServeRows *r, MemoryContext cxt)
{
	int64		total;
	void	   *col;
	float	   *val;

	if (r->stage == NULL)
		return;
	total = r->slice[serve_rows_slices(r)];
	col = rows_alloc(cxt, col_array_bytes(r->dim, Max(total, 1)));
	val = rows_alloc(cxt, sizeof(float) * Max(total, 1));
	fill_slices(r, r->stage, col, val);
	if (serve_rows_col_bytes(r->dim) == 1)
		r->col8 = col;
	else
		r->col16 = col;
	r->val = val;
	if (r->want_q8s)
		serve_q8_slices_build(&r->q8s, r, rows_alloc(cxt, serve_q8_slices_bytes(r)));
	free_stage(r->stage);
	r->stage = NULL;
}

/* --- the shared copy: norms, then the dense matrix or slices, values, columns --- */

Size
serve_rows_bytes(const ServeRows *r)
{
	Size		b = MAXALIGN(sizeof(double) * (2 + (Size) r->n_rows));
	int64		total;

	if (r->q8.q)
		b += serve_q8_bytes(r->n_rows, r->dim);
	if (r->dense)
		return b + MAXALIGN(sizeof(float) * (Size) r->n_rows * r->dim);
	total = r->slice[serve_rows_slices(r)];
	if (r->want_q8s)
		b += serve_q8_slices_bytes(r);
	return b + MAXALIGN(sizeof(int64) * ((Size) serve_rows_slices(r) + 1)) +
		2 * MAXALIGN(sizeof(int32) * (Size) r->n_rows) +
		MAXALIGN(sizeof(float) * total) + MAXALIGN(col_array_bytes(r->dim, total));
}

void
serve_rows_write(const ServeRows *r, char *dst)
{
	double	   *hdr = (double *) dst;
	int64		total;

	/*
	 * The first double says which form: the entries of the slices, or -1;
	 * the second which int8 copy there is: 1 the dense one (after the
	 * norms), 2 the slices' (after the columns), 0 none
	 */
	hdr[0] = r->dense ? -1.0 : (double) r->slice[serve_rows_slices(r)];
	hdr[1] = r->q8.q ? 1.0 : r->want_q8s ? 2.0 : 0.0;
	memcpy(hdr + 2, r->norm, sizeof(double) * r->n_rows);
	dst += MAXALIGN(sizeof(double) * (2 + (Size) r->n_rows));
	if (r->q8.q)
	{
		memcpy(dst, r->q8.q, serve_q8_bytes(r->n_rows, r->dim));
		dst += serve_q8_bytes(r->n_rows, r->dim);
	}
	if (r->dense)
	{
		memcpy(dst, r->dense, sizeof(float) * (Size) r->n_rows * r->dim);
		return;
	}
	total = r->slice[serve_rows_slices(r)];
	memcpy(dst, r->slice, sizeof(int64) * ((Size) serve_rows_slices(r) + 1));
	dst += MAXALIGN(sizeof(int64) * ((Size) serve_rows_slices(r) + 1));
	memcpy(dst, r->pos, sizeof(int32) * (Size) r->n_rows);
	dst += MAXALIGN(sizeof(int32) * (Size) r->n_rows);
	memcpy(dst, r->row, sizeof(int32) * (Size) r->n_rows);
	dst += MAXALIGN(sizeof(int32) * (Size) r->n_rows);
	if (r->stage)
	{
		/* the entries go from the rows as read to dst directly */
		ServeRows	v = *r;
		char	   *col = dst + MAXALIGN(sizeof(float) * total);

		fill_slices(r, r->stage, col, (float *) dst);
		if (r->want_q8s)
		{
			/* and the int8 copy from them */
			v.val = (const float *) dst;
			v.col8 = serve_rows_col_bytes(r->dim) == 1 ? (const uint8 *) col : NULL;
			v.col16 = v.col8 ? NULL : (const uint16 *) col;
			serve_q8_slices_build(&v.q8s, &v,
								  col + MAXALIGN(col_array_bytes(r->dim, total)));
		}
		return;
	}
	memcpy(dst, r->val, sizeof(float) * total);
	dst += MAXALIGN(sizeof(float) * total);
	memcpy(dst, r->col8 ? (const void *) r->col8 : (const void *) r->col16,
		   col_array_bytes(r->dim, total));
	dst += MAXALIGN(col_array_bytes(r->dim, total));
	if (r->want_q8s)
		memcpy(dst, r->q8s.off, serve_q8_slices_bytes(r));
}

Size
serve_rows_attach(ServeRows *r, int n_rows, int dim, const char *src)
{
	const char *start = src;
	const double *hdr = (const double *) src;
	double		form = hdr[0];

	memset(r, 0, sizeof(ServeRows));
	r->n_rows = n_rows;
	r->dim = dim;
	r->norm = hdr + 2;
	r->max_norm = 0.0;
	for (int i = 0; i < n_rows; i++)
		r->max_norm = Max(r->max_norm, r->norm[i]);
	src += MAXALIGN(sizeof(double) * (2 + (Size) n_rows));
	if (hdr[1] == 1.0)
		src += serve_q8_attach(&r->q8, n_rows, dim, src);
	if (form < 0)
	{
		r->dense = (const float *) src;
		return (src - start) + MAXALIGN(sizeof(float) * (Size) n_rows * dim);
	}
	r->slice = (const int64 *) src;
	src += MAXALIGN(sizeof(int64) * ((Size) serve_rows_slices(r) + 1));
	r->pos = (const int32 *) src;
	src += MAXALIGN(sizeof(int32) * (Size) n_rows);
	r->row = (const int32 *) src;
	src += MAXALIGN(sizeof(int32) * (Size) n_rows);
	r->val = (const float *) src;
	src += MAXALIGN(sizeof(float) * (Size) form);
	if (serve_rows_col_bytes(dim) == 1)
		r->col8 = (const uint8 *) src;
	else
		r->col16 = (const uint16 *) src;
	src += MAXALIGN(col_array_bytes(dim, (int64) form));
	if (hdr[1] == 2.0)
	{
		r->want_q8s = true;
		src += serve_q8_slices_attach(&r->q8s, r, src);
	}
	return src - start;
}

/* --- kernels --------------------------------------------------------------- */

void
serve_rows_get(const ServeRows *r, int i, float *out)
{
	int64		e;

	if (r->dense)
	{
		memcpy(out, r->dense + (Size) i * r->dim, sizeof(float) * r->dim);
		return;
	}
	memset(out, 0, sizeof(float) * r->dim);
	/* += leaves column 0 alone where the padding (0 at column 0) is */
	for (e = r->slice[r->pos[i] / SLICE] + r->pos[i] % SLICE;
		 e < r->slice[r->pos[i] / SLICE + 1]; e += SLICE)
		out[serve_rows_col(r, e)] += r->val[e];
}

float
serve_rows_dot(const ServeRows *r, int i, const float *x)
{
	double		s = 0.0;

	if (r->dense)
		return topk_dot(x, r->dense + (Size) i * r->dim, r->dim);

	/*
	 * Stored columns ascend, the padding zeros come last: the same double
	 * sum as topk_dot's, its zero terms left out.
	 */
	for (int64 e = r->slice[r->pos[i] / SLICE] + r->pos[i] % SLICE;
		 e < r->slice[r->pos[i] / SLICE + 1]; e += SLICE)
		s += (double) x[serve_rows_col(r, e)] * (double) r->val[e];
	return (float) s;
}

/*
 * float32 scores of the sparse rows of slices c0..c1-1 against x, into out
 * (in position order, from c0's first: (c1 - c0) * SLICE of them)
 */
static void
approx_sparse_default(const ServeRows *r, const float *x, int c0, int c1, float *out)
{
	for (int c = c0; c < c1; c++)
	{
		float		acc[SLICE] = {0};

		for (int64 e = r->slice[c]; e < r->slice[c + 1]; e += SLICE)
			for (int l = 0; l < SLICE; l++)
				acc[l] += x[serve_rows_col(r, e + l)] * r->val[e + l];
		memcpy(out + (Size) (c - c0) * SLICE, acc, sizeof(acc));
	}
}

#ifdef DSL_X86_DISPATCH
/* the same with AVX2: 8 rows of a slice in the 8 lanes, x gathered by column */
DSL_TARGET("avx2,fma")
static void
approx_sparse_avx2(const ServeRows *r, const float *x, int c0, int c1, float *out)
{
	for (int c = c0; c < c1; c++)
	{
		__m256		lo = _mm256_setzero_ps();
		__m256		hi = _mm256_setzero_ps();

		for (int64 e = r->slice[c]; e < r->slice[c + 1]; e += SLICE)
		{
			__m256i		i0,
						i1;

			if (r->col8)
			{
				i0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (r->col8 + e)));
				i1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (r->col8 + e + 8)));
			}
			else
			{
				i0 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) (r->col16 + e)));
				i1 = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *) (r->col16 + e + 8)));
			}

			lo = _mm256_fmadd_ps(_mm256_i32gather_ps(x, i0, 4), _mm256_loadu_ps(r->val + e), lo);
			hi = _mm256_fmadd_ps(_mm256_i32gather_ps(x, i1, 4), _mm256_loadu_ps(r->val + e + 8), hi);
		}
		_mm256_storeu_ps(out + (Size) (c - c0) * SLICE, lo);
		_mm256_storeu_ps(out + (Size) (c - c0) * SLICE + 8, hi);
	}
}

/*
 * With AVX-512 and dim <= 64: x lives in four registers and a slice's 16
 * columns are looked up by two two-register permutes and a blend, no
 * gather (gathers are slow on the AMD cores this runs on).
 */
DSL_TARGET("avx512f")
static void
approx_sparse_avx512(const ServeRows *r, const float *x, int c0, int c1, float *out)
{
	float		xp[64] __attribute__((aligned(64)));
	__m512		x0,
				x1,
				x2,
				x3;
	const __m512i bit5 = _mm512_set1_epi32(32);

	memset(xp, 0, sizeof(xp));
	memcpy(xp, x, sizeof(float) * r->dim);
	x0 = _mm512_load_ps(xp);
	x1 = _mm512_load_ps(xp + 16);
	x2 = _mm512_load_ps(xp + 32);
	x3 = _mm512_load_ps(xp + 48);
	for (int c = c0; c < c1; c++)
	{
		__m512		acc = _mm512_setzero_ps();

		for (int64 e = r->slice[c]; e < r->slice[c + 1]; e += SLICE)
		{
			__m512i		idx = r->col8 ?
				_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) (r->col8 + e))) :
				_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *) (r->col16 + e)));
			__m512		lo = _mm512_permutex2var_ps(x0, idx, x1);
			__m512		hi = _mm512_permutex2var_ps(x2, idx, x3);
			__m512		xv = _mm512_mask_blend_ps(_mm512_test_epi32_mask(idx, bit5), lo, hi);

			acc = _mm512_fmadd_ps(xv, _mm512_loadu_ps(r->val + e), acc);
		}
		_mm512_storeu_ps(out + (Size) (c - c0) * SLICE, acc);
	}
}
#endif

/*
 * Scratch for the float32 scores of a catalogue, kept for the backend's
 * life and grown as needed: a fresh allocation of megabytes per call costs
 * more in page faults than the scan itself.  which: 0 or 1.
 */
static float *
scratch(int which, Size n)
{
	static float *buf[2] = {NULL, NULL};
	static Size cap[2] = {0, 0};

	if (n > cap[which])
	{
		if (buf[which])
			pfree(buf[which]);
		buf[which] = MemoryContextAllocHuge(TopMemoryContext, sizeof(float) * n);
		cap[which] = n;
	}
	return buf[which];
}

/* see serve_rows.h */
int
serve_rows_kernel(int dim)
{
	static bool probed = false;
	static bool has_avx2 = false;
	static bool has_avx512 = false;
	int			k = dsl_serving_kernel;

	if (!probed)
	{
		has_avx2 = DSL_CPU_HAS("avx2") && DSL_CPU_HAS("fma");
		has_avx512 = DSL_CPU_HAS("avx512f");
		probed = true;
	}
	if (k == DSL_KERNEL_AUTO)
		k = has_avx512 && dim <= 64 ? DSL_KERNEL_AVX512 : DSL_KERNEL_AVX2;
	if (k == DSL_KERNEL_AVX512 && !(has_avx512 && dim <= 64))
		k = DSL_KERNEL_AVX2;
	if (k == DSL_KERNEL_AVX2 && !has_avx2)
		k = DSL_KERNEL_SCALAR;
	return k;
}

/* the sparse kernel of serve_rows_kernel()'s choice over slices c0..c1-1 */
static void
approx_sparse(const ServeRows *r, const float *x, int kernel, int c0, int c1, float *out)
{
#ifdef DSL_X86_DISPATCH
	if (kernel == DSL_KERNEL_AVX512)
		approx_sparse_avx512(r, x, c0, c1, out);
	else if (kernel == DSL_KERNEL_AVX2)
		approx_sparse_avx2(r, x, c0, c1, out);
	else
#endif
		approx_sparse_default(r, x, c0, c1, out);
}

/* float32 scores of every row against x (within the bound of the exact ones) */
static void
approx_scores(const ServeRows *r, const float *x, float *out)
{
	float	   *by_pos;

	if (r->dense)
	{
		dsl_blas_prepare(false);
		cblas_sgemv(CblasRowMajor, CblasNoTrans, r->n_rows, r->dim, 1.0f, r->dense,
					r->dim, x, 1, 0.0f, out, 1);
		return;
	}

	/* the kernels score in slice order; then each row takes its score */
	by_pos = scratch(1, (Size) serve_rows_slices(r) * SLICE);
	approx_sparse(r, x, serve_rows_kernel(r->dim), 0, serve_rows_slices(r), by_pos);
	for (int i = 0; i < r->n_rows; i++)
		out[i] = by_pos[r->pos[i]];
}

/* the exact score of a row for topk_offer_bounded() */
typedef struct ExactArg
{
	const ServeRows *r;
	const float *x;
	double		x_norm;
	bool		cosine;
} ExactArg;

static float
exact_score(void *arg, int i)
{
	const ExactArg *a = (const ExactArg *) arg;
	float		s = serve_rows_dot(a->r, i, a->x);

	if (a->cosine)
	{
		double		d = a->x_norm * a->r->norm[i];

		return d > 0.0 ? (float) (s / d) : 0.0f;
	}
	return s;
}

/* slices a sparse scan scores into one buffer (4096 floats: within L1) */
#define RANK_SLICES 256

static int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a,
				y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * The rows exclude[0..n_exclude-1] and self (-1: none) to leave out of a
 * scan, as positions in the scan's order (map[row], or the rows themselves
 * when map is NULL), ascending, ended by PG_INT32_MAX; palloc'd.
 */
static int32 *
skip_list(const int32 *exclude, int64 n_exclude, int32 self, const int32 *map)
{
	int32	   *skip = palloc(sizeof(int32) * (n_exclude + 2));
	int64		n = 0;

	for (int64 e = 0; e < n_exclude; e++)
		skip[n++] = map ? map[exclude[e]] : exclude[e];
	if (self >= 0)
		skip[n++] = map ? map[self] : self;
	if (map || self >= 0)
		qsort(skip, n, sizeof(int32), cmp_int32);
	skip[n] = PG_INT32_MAX;
	return skip;
}

/*
 * serve_rows_rank() of sparse rows by inner product: the kernel scores a
 * block of slices into a buffer that stays in L1, and each score that
 * reaches the running admission threshold (TopKNear) is offered with the
 * row at its position, so no catalogue-sized array of scores is written,
 * reordered into row order or scanned twice.
 */
static void
rank_sparse(const ServeRows *r, const float *x, double x_norm,
			const int32 *exclude, int64 n_exclude, int32 self, TopK *h, ExactArg *a)
{
	int			n_slices = serve_rows_slices(r);
	int			kernel = serve_rows_kernel(r->dim);
	float	   *buf = scratch(1, (Size) RANK_SLICES * SLICE);
	int32	   *skip = skip_list(exclude, n_exclude, self, r->pos);
	const int32 *s = skip;
	TopKNear	t;

	topk_near_init(&t, h->k, r->n_rows, false);
	topk_near_reset(&t, topk_dot_bound(r->dim, x_norm, r->max_norm));
	for (int c0 = 0; c0 < n_slices; c0 += RANK_SLICES)
	{
		int			c1 = Min(c0 + RANK_SLICES, n_slices);
		int32		p0 = c0 * SLICE,
					p1 = Min(c1 * SLICE, r->n_rows);

		approx_sparse(r, x, kernel, c0, c1, buf);
		for (; *s < p1; s++)
			buf[*s - p0] = NAN;
		topk_near_scan(&t, buf, p1 - p0, p0, r->row + p0);
	}
	topk_near_offer_exact(&t, exact_score, a, h);
	topk_near_free(&t);
	pfree(skip);
}

void
serve_rows_rank(const ServeRows *r, const float *x, double x_norm,
				bool cosine, const int32 *exclude, int64 n_exclude,
				int32 self, TopK *h)
{
	float	   *approx;
	ExactArg	a = {r, x, x_norm, cosine};
	double		bound;

	if (r->n_rows <= 0)
		return;
	if (r->q8.q && !cosine && dsl_serving_prescore != DSL_PRESCORE_OFF)
	{
		/* the int8 copy's bounds: exact scores where the k best can be */
		int32	   *skip = skip_list(exclude, n_exclude, self, NULL);

		serve_q8_rank(&r->q8, x, x_norm, skip, h, exact_score, &a);
		pfree(skip);
		return;
	}
	if (!r->dense && !cosine)
	{
		if (r->q8s.q && dsl_serving_prescore != DSL_PRESCORE_OFF)
		{
			/* the slices' int8 copy: exact scores where the k best can be */
			int32	   *skip = skip_list(exclude, n_exclude, self, r->pos);

			serve_q8_slices_rank(r, x, x_norm, skip, h, exact_score, &a);
			pfree(skip);
		}
		else
			rank_sparse(r, x, x_norm, exclude, n_exclude, self, h, &a);
		return;
	}
	approx = scratch(0, r->n_rows);
	approx_scores(r, x, approx);
	if (cosine)
	{
		for (int i = 0; i < r->n_rows; i++)
		{
			double		d = x_norm * r->norm[i];

			approx[i] = d > 0.0 ? (float) (approx[i] / d) : 0.0f;
		}
	}
	for (int64 e = 0; e < n_exclude; e++)
		approx[exclude[e]] = NAN;
	if (self >= 0)
		approx[self] = NAN;

	/* divided by |x| * |r|, the bound of a dot product covers cosines */
	bound = cosine ? topk_dot_bound(r->dim, 1.0, 1.0) :
		topk_dot_bound(r->dim, x_norm, r->max_norm);
	topk_offer_bounded(h, approx, r->n_rows, bound, exact_score, &a);
}

/* EmbeddingSource fill of sparse rows */
static void
fill_rows(void *arg, int first, int count, float *out)
{
	const ServeRows *r = (const ServeRows *) arg;

	for (int i = 0; i < count; i++)
		serve_rows_get(r, first + i, out + (Size) i * r->dim);
}

EmbeddingSource
serve_rows_source(const ServeRows *r)
{
	if (r->dense)
		return embedding_source_dense(r->dense, r->n_rows, r->dim);
	return embedding_source_fill(fill_rows, (void *) r, r->n_rows, r->dim);
}
