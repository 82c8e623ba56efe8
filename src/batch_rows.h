/*
 * batch_rows.h - the rows of an embedding table that a mini-batch touches
 *
 * Models that train embedding tables on sampled pairs (MF, NeuMF) number
 * the rows a mini-batch touches (its slots, in ascending row order), keep
 * them densely by slot while the step computes, and take the Adam step on
 * those rows only; rows outside the batch follow dense Adam's trajectory
 * through AdamCatchUp (sparse_tensor.h), caught up when next densified.
 * Two tables indexed alike (NeuMF's GMF and MLP embeddings of the same
 * users) share one numbering: the second is an alias of the first, with
 * dense rows of its own.
 */
#ifndef DSL_BATCH_ROWS_H
#define DSL_BATCH_ROWS_H

#include "postgres.h"

#include "dsl_engine.h"

typedef struct BatchRows
{
	SparseTensor *t;
	int32	   *slot_of;		/* n_rows: slot in the current batch */
	uint64	   *in_batch;		/* n_rows bits: rows of the current batch */
	int32	   *rows;			/* slot -> row, ascending */
	int32	   *count;			/* slot -> occurrences in the batch */
	float	   *emb;			/* slot x dim dense embeddings */
	float	   *grad;			/* slot x dim dense gradients */
	int			n;				/* slots used */
	int			cap;
} BatchRows;

/* workspace for at most cap rows of t per batch, with t->last_step */
extern void batch_rows_init(BatchRows *b, SparseTensor *t, int cap);

/*
 * Rows of t numbered like those of `of` (t has of->t's rows): shares its
 * marks, slots and counts; batch_assign_slots is called on `of` only and
 * `alias` copies n from it (batch_rows_follow).
 */
extern void batch_rows_init_alias(BatchRows *alias, const BatchRows *of,
								  SparseTensor *t);

static inline void
batch_rows_follow(BatchRows *alias, const BatchRows *of)
{
	alias->n = of->n;
}

/*
 * Number the rows marked in in_batch in ascending order (so that the
 * densify and Adam loops walk the tensors upwards), zero their counts and
 * clear the marks.
 */
extern void batch_assign_slots(BatchRows *b);

/*
 * Catch up the idle steps of slots [lo, hi) (cu), then densify them into
 * emb.  Plain C: runs in worker threads.
 */
extern void batch_densify(BatchRows *b, const AdamCatchUp *cu, int64 lo, int64 hi);

/*
 * The step's L2 term and Adam on slots [lo, hi): each slot's gradient gets
 * reg_scale * count * its row (reg_out[slot] = the term, reg_scale * count
 * / 2 * |row|^2), is added to the row's regrowth sum in acc (n_rows x dim,
 * when not NULL), and Adam updates the row's active entries at the
 * engine's current step (its last_step).  Plain C: runs in worker threads.
 */
extern void batch_rows_adam(BatchRows *b, const DslEngine *e, float reg_scale,
							float *acc, double *reg_out, int64 lo, int64 hi);

#endif							/* DSL_BATCH_ROWS_H */
