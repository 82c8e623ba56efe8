/*
 * serve_rows.h - a served embedding table, dense or sparse
 *
 * The serving form of a stored part ('user', 'item') of a model: either a
 * dense row-major float matrix, or, when that is smaller (a DSL model at
 * low density), sliced rows: slices of 16 rows, each as wide as its
 * longest row, holding the stored entries' columns (one byte up to 256
 * columns, else two) and values side by side (serve_rows.c).  The sparse
 * form holds 5 bytes per stored weight (6 beyond 256 columns) plus the padding of the shorter rows of a slice and 8 bytes per
 * row (its position and the position's row), where the dense one holds 4 * dim per row, so a
 * model's serving memory follows its density (docs/serving.md).  Many users
 * at once are ranked by serve_rows_users.c.
 *
 * Scores are the same in both forms: the canonical score of a row and a
 * vector x is the float of the double sum of x[c] * row[c] in column order,
 * which is topk_dot(x, dense row) exactly (the terms a sparse row leaves out
 * are zeros, which do not change a double sum).  Catalogue scans compute
 * float32 scores first (cblas_sgemv, or a sparse kernel), or the bounds of
 * an int8 copy when the table has one (serve_q8.h: big tables), then score
 * exactly only the rows that can be among the k best.
 */
#ifndef DSL_SERVE_ROWS_H
#define DSL_SERVE_ROWS_H

#include "postgres.h"

#include "model.h"
#include "serve_q8.h"
#include "topk.h"

typedef struct ServeRows
{
	int			n_rows;
	int			dim;
	const float *dense;			/* n_rows x dim, or NULL: sparse */
	const int64 *slice;			/* sparse: ceil(n_rows / 16) + 1 offsets */
	const int32 *pos;			/* sparse: each row's position in the slices */
	const int32 *row;			/* sparse: the row at each position (pos's inverse) */
	const uint8 *col8;			/* sparse, dim <= 256: column of each entry */
	const uint16 *col16;		/* sparse, wider rows: column of each entry */
	const float *val;			/* sparse: its value (0: padding) */
	const double *norm;			/* Euclidean norm of each row */
	double		max_norm;
	struct RowsStage *stage;	/* sparse, just loaded: the rows as read */
	RowsQ8		q8;				/* dense: the int8 copy for scans (q8.q NULL:
								 * none) */
	bool		want_q8s;		/* sparse: the slices get an int8 copy */
	SlicesQ8	q8s;			/* which is here once written (q8s.q) */
} ServeRows;

struct ServeModel;

/*
 * Read part `part` of m from dsl.parameters (ascending entity_id, checked
 * like serve_scan_part()) into *rows, in m->cxt, sparse or dense as its
 * share of stored entries decides; the ids go to *ids_out.  Returns the
 * number of rows.  A part whose rows a query scans (scanned: the items)
 * gets the int8 copy when serve_q8_wanted().  A sparse part's entries are
 * placed later, once: serve_rows_write() writes them from the rows as read
 * straight into a copy (the model's shared copy), serve_rows_finish() into
 * arrays in cxt; until one of them has run, the rows cannot serve.
 */
extern int	serve_rows_load(struct ServeModel *m, const char *part, bool scanned,
							int64 **ids_out, ServeRows *rows);
extern void serve_rows_finish(ServeRows *r, MemoryContext cxt);

/* bytes of the arrays (the shared copy of a model), written at dst */
extern Size serve_rows_bytes(const ServeRows *r);
extern void serve_rows_write(const ServeRows *r, char *dst);

/* rows over such a copy at src (read-only), returns the bytes read */
extern Size serve_rows_attach(ServeRows *r, int n_rows, int dim, const char *src);

/* row i as dense floats in out (dim entries) */
extern void serve_rows_get(const ServeRows *r, int i, float *out);

/* the canonical score of row i and x (= topk_dot(x, dense row i)) */
extern float serve_rows_dot(const ServeRows *r, int i, const float *x);

/*
 * Offer every row's canonical score against x to h, or with cosine its
 * cosine (0 when a norm is 0); rows listed in exclude (sorted) and the row
 * self (-1: none) are skipped.  x_norm is |x|.
 */
extern void serve_rows_rank(const ServeRows *r, const float *x, double x_norm,
							bool cosine, const int32 *exclude, int64 n_exclude,
							int32 self, TopK *h);

/*
 * Rank every item row of items for each of users' rows list[0..n_list-1]
 * (exclude's row of the user left out when exclude is not NULL) and emit
 * each user's exact top k, as topk_rank_users() does: dense item rows by
 * sgemm blocks within mem_bytes, sparse ones by a kernel that scores tiles
 * of users against the stored entries only, so its time follows density.
 */
extern void serve_rows_rank_users(const ServeRows *users, const ServeRows *items,
								  const int32 *list, int n_list,
								  const IndexCSR *exclude, int k, Size mem_bytes,
								  TopKEmit emit, void *emit_arg);

/* the rows as an EmbeddingSource (sgemm blocks; sparse rows are filled) */
extern EmbeddingSource serve_rows_source(const ServeRows *r);

/* --- for the kernels over the sparse form (serve_rows.c, serve_rows_users.c) */

/* rows per slice of the sparse form (one AVX-512 register of floats) */
#define SERVE_SLICE 16

/* the widest rows whose entries' columns are single bytes */
#define SERVE_COL8_DIM 256

/* bytes of an entry's column in the sparse form of rows of dim columns */
static inline int
serve_rows_col_bytes(int dim)
{
	return dim <= SERVE_COL8_DIM ? 1 : 2;
}

/* the column of entry e of the sparse form */
static inline int
serve_rows_col(const ServeRows *r, int64 e)
{
	return r->col8 ? r->col8[e] : r->col16[e];
}

static inline int
serve_rows_slices(const ServeRows *r)
{
	return (r->n_rows + SERVE_SLICE - 1) / SERVE_SLICE;
}

/*
 * The sparse kernel to run (DSL_KERNEL_*): dsl_rec.debug_serving_kernel's
 * choice when this CPU has it, else the widest one the CPU has (AVX-512
 * only for dim <= 64).
 */
extern int	serve_rows_kernel(int dim);

#endif							/* DSL_SERVE_ROWS_H */
