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
