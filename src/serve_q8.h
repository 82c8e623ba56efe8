/*
 * serve_q8.h - an int8 copy of a served table, for the first pass of a scan
 *
 * A catalogue scan (serve_rows_rank()) reads every row once per query, so
 * its time follows the bytes it reads: 4 * dim per row in float32 (98 MB for
 * 41 k items of 601), more than the caches hold.  This copy keeps each row
 * as int8 with a scale (w ~ scale * q, q in [-127, 127]): a quarter of the
 * bytes.  The query vector is quantised too (x ~ sx * xq), and the first
 * pass computes the integer dot products xq . q exactly.  Each row's score
 * then lies within a bound of x . w that the copy makes exact:
 *
 *   x . w = (sx xq) . (s q) + (x - sx xq) . (s q) + x . (w - s q)
 *   |x . w - sx s (xq . q)| <= |x - sx xq| |s q| + |x| |w - s q|
 *
 * (Cauchy-Schwarz), where |s q| and |w - s q| are kept per row (rounded up)
 * and |x - sx xq| is computed per query; the canonical score's own rounding
 * adds topk_dot_bound(), whose row term is kept with |w - s q|, and the
 * float arithmetic of the bounds a margin of their own.  The
 * exact top k is then found among the rows whose upper bound reaches the
 * k-th best lower bound (topk_near_offer_interval()), scored exactly from the
 * float32 rows.  Results are the same with or without the copy.
 */
#ifndef DSL_SERVE_Q8_H
#define DSL_SERVE_Q8_H

#include "postgres.h"

#include "topk.h"

typedef struct RowsQ8
{
	int			n_rows;
	int			dim;
	int			width;			/* bytes per row: dim rounded up to 32 */
	const int8 *q;				/* n_rows x width, zero padded */
	const float *scale;			/* per row */
	const float *qnorm;			/* per row: |s q|, rounded up */
	const float *err;			/* per row: |w - s q| + the score's rounding
								 * per unit |x|, rounded up */
} RowsQ8;

/*
 * The int8 copy of a table served sparse (serve_rows.h's slices, dim <= 64
 * and one-byte columns): each stored value as int8 with a scale per row,
 * for the same first pass as the dense copy (x quantised too, exact integer
 * products, the same bound), over the stored entries only.  A slice's
 * entries go in groups of four per row: byte g * 64 + l * 4 + t holds entry
 * 4 g + t of its row l (zero past the row's end), which is what AVX-512
 * VNNI's four-byte dot products sum, and the columns are looked up with
 * one AVX-512 VBMI byte permute of the quantised x.  About a byte an entry
 * (the float form reads five) and 8 bytes a slice position; the bound's
 * per-row terms are kept per slice (their largest), which widens a row's
 * interval a little and halves what a scan reads besides the entries.
 */
typedef struct SlicesQ8
{
	const int64 *off;			/* per slice: its first byte in q */
	const int8 *q;				/* the groups of every slice */
	const float *scale;			/* per slice position */
	const int32 *qsum;			/* 128 * the sum of q, per position */
	const float *qnorm;			/* per slice: the largest |s q| of its rows,
								 * rounded up */
	const float *err;			/* per slice: the largest |w - s q| + score
								 * rounding per unit |x| of its rows */
} SlicesQ8;

struct ServeRows;

/*
 * Whether sparse rows r (slices planned) whose served form takes form_bytes
 * should get the copy: dsl_rec.debug_serving_prescore's choice where the
 * rows fit it (dim <= 64), or with 'auto' when this CPU has AVX-512 VBMI and
 * VNNI, the values would not sit in a core's cache share, and the copy is
 * at most half the form's bytes.
 */
extern bool serve_q8_slices_wanted(const struct ServeRows *r, double form_bytes);
extern Size serve_q8_slices_bytes(const struct ServeRows *r);

/* the copy of r's slices (their values and columns in place) into dst */
extern void serve_q8_slices_build(SlicesQ8 *q, const struct ServeRows *r, char *dst);
/* the copy at src for r (its slices attached), returns its bytes */
extern Size serve_q8_slices_attach(SlicesQ8 *q, const struct ServeRows *r, const char *src);

/* bytes the slices' one-byte columns need after their last entry */
#define SERVE_Q8_COL_SLACK 64

/*
 * serve_q8_rank() for sparse rows r with their int8 copy r->q8s; skip holds
 * slice positions.
 */
extern void serve_q8_slices_rank(const struct ServeRows *r, const float *x, double x_norm,
								 const int32 *skip, TopK *h,
								 float (*exact) (void *arg, int32 i), void *arg);

/*
 * Whether a table of n_rows x dim whose served form takes form_bytes should
 * get a copy: dsl_rec.debug_serving_prescore's choice, or with 'auto' when
 * its float32 rows would not sit in a core's cache share and the copy reads
 * at most half the bytes of the form.
 */
extern bool serve_q8_wanted(int n_rows, int dim, double form_bytes);

/* bytes of the copy, written or attached at one place */
extern Size serve_q8_bytes(int n_rows, int dim);

/*
 * Quantise the rows into dst (serve_q8_bytes()): get(arg, i, buf) writes row
 * i's dim floats into buf; the copy's arrays point into dst.
 */
extern void serve_q8_build(RowsQ8 *q, int n_rows, int dim,
						   void (*get) (const void *arg, int i, float *buf),
						   const void *arg, char *dst);

/* the copy at src (serve_q8_build()'s dst), returns its bytes */
extern Size serve_q8_attach(RowsQ8 *q, int n_rows, int dim, const char *src);

/*
 * Offer to h the canonical score exact(arg, i) of every row that can be
 * among the k best against x (x_norm |x|): rows are read in blocks, each
 * row's interval [lo, hi] around its score computed from the copy, and only
 * the rows whose hi reaches the k-th best lo (TopKNear) are scored exactly.
 * skip lists the rows to leave out, ascending, ended by PG_INT32_MAX.
 */
extern void serve_q8_rank(const RowsQ8 *q, const float *x, double x_norm, const int32 *skip,
						  TopK *h, float (*exact) (void *arg, int32 i), void *arg);

#endif							/* DSL_SERVE_Q8_H */
