/*
 * kselect.h - the k smallest of a stream of 32-bit keys, by radix histogram
 *
 * Prune and regrow pick the n entries of smallest |w| or largest |g| among
 * millions.  Non-negative floats order like their bit patterns, so a key is
 * the float's bits (or their complement, to select the largest), and the
 * k-th smallest key is found with two counting scans of the keys (high 16
 * bits, then low 16 bits inside the chosen bucket) instead of sorting or
 * copying them.  The caller produces the keys from its own data in each
 * scan:
 *
 *		kselect_init(&ks);
 *		do
 *			for each candidate: kselect_add(&ks, key);
 *		while (kselect_next_pass(&ks, want));
 *
 * Afterwards every key < ks.thr is among the `want` smallest, and
 * want - ks.below of the ks.n_eq keys equal to ks.thr complete them; the
 * caller breaks those ties (kselect_ties).
 */
#ifndef DSL_KSELECT_H
#define DSL_KSELECT_H

#include "postgres.h"

#include <math.h>

#define KSELECT_BUCKETS 65536

typedef struct KSelect
{
	uint32	   *hist;			/* KSELECT_BUCKETS counters */
	int			pass;			/* 0: high halves, 1: low halves, 2: done */
	uint32		bucket;			/* high half chosen by pass 0 */
	int64		n;				/* keys seen by pass 0 */
	int64		below;			/* keys < bucket (then < thr) */
	uint32		thr;			/* result: the want-th smallest key */
	int64		n_eq;			/* result: keys equal to thr */
} KSelect;

extern void kselect_init(KSelect *ks);
extern void kselect_reset(KSelect *ks);	/* for a new selection */
extern bool kselect_next_pass(KSelect *ks, int64 want);
extern void kselect_free(KSelect *ks);

/*
 * Parallel scans: each part counts into its own KSelect (kselect_init'ed by
 * the caller), started with kselect_fork at the beginning of every scan (no
 * allocation: safe in a worker thread); kselect_merge sums the parts into
 * ks, in part order, before kselect_next_pass.  After the last pass a
 * part's count of keys equal to ks->thr is kselect_part_eq.
 */
extern void kselect_fork(const KSelect *ks, KSelect *part);
extern void kselect_merge(KSelect *ks, const KSelect *parts, int n_parts);

static inline int64
kselect_part_eq(const KSelect *part, const KSelect *ks)
{
	return part->hist[ks->thr & 0xFFFF];
}

static inline void
kselect_add(KSelect *ks, uint32 key)
{
	if (ks->pass == 0)
		ks->hist[key >> 16]++;
	else if ((key >> 16) == ks->bucket)
		ks->hist[key & 0xFFFF]++;
}

/* the ordering key of a magnitude: NaN counts as +infinity */
static inline uint32
kselect_float_key(float a)
{
	union
	{
		float		f;
		uint32		u;
	}			x;

	x.f = fabsf(a);
	return x.u > 0x7F800000 ? 0x7F800000 : x.u;
}

/*
 * Ties at the threshold are broken by a seeded hash of the position (then
 * by position): reproducible, and spread over the tensor instead of
 * favouring low rows.
 */
typedef struct KSelectTie
{
	uint64		hash;
	int64		pos;
} KSelectTie;

/* reorder ties[0..n) so that its m smallest (hash, pos) come first */
extern void kselect_ties(KSelectTie *ties, int64 n, int64 m);

#endif							/* DSL_KSELECT_H */
