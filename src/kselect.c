/*
 * kselect.c - radix selection of the k smallest keys (see kselect.h)
 */
#include "postgres.h"

#include <math.h>

#include "kselect.h"

void
kselect_init(KSelect *ks)
{
	memset(ks, 0, sizeof(KSelect));
	ks->hist = palloc0(KSELECT_BUCKETS * sizeof(uint32));
}

void
kselect_reset(KSelect *ks)
{
	uint32	   *hist = ks->hist;

	memset(ks, 0, sizeof(KSelect));
	ks->hist = hist;
}

void
kselect_free(KSelect *ks)
{
	if (ks->hist)
		pfree(ks->hist);
	ks->hist = NULL;
}

void
kselect_fork(const KSelect *ks, KSelect *part)
{
	part->pass = ks->pass;
	part->bucket = ks->bucket;
	memset(part->hist, 0, KSELECT_BUCKETS * sizeof(uint32));
}

void
kselect_merge(KSelect *ks, const KSelect *parts, int n_parts)
{
	memset(ks->hist, 0, KSELECT_BUCKETS * sizeof(uint32));
	for (int p = 0; p < n_parts; p++)
		for (int b = 0; b < KSELECT_BUCKETS; b++)
			ks->hist[b] += parts[p].hist[b];
}

/*
 * Close a scan.  After the first, find the bucket holding the want-th
 * smallest key and ask for a second scan; after the second, the key itself.
 * want must be between 1 and the number of keys.
 */
bool
kselect_next_pass(KSelect *ks, int64 want)
{
	int64		acc = 0;
	uint32		b = 0;

	if (ks->pass == 0)
	{
		for (b = 0; b < KSELECT_BUCKETS; b++)
			ks->n += ks->hist[b];
		if (want < 1 || want > ks->n)
			elog(ERROR, "dsl_rec: cannot select %lld of %lld keys",
				 (long long) want, (long long) ks->n);
	}
	else
		Assert(ks->pass == 1);

	/* the bucket b where the count of keys up to b reaches want */
	for (b = 0; b < KSELECT_BUCKETS; b++)
	{
		if (ks->below + acc + ks->hist[b] >= want)
			break;
		acc += ks->hist[b];
	}
	Assert(b < KSELECT_BUCKETS);

	if (ks->pass == 0)
	{
		ks->bucket = b;
		ks->below = acc;
		memset(ks->hist, 0, KSELECT_BUCKETS * sizeof(uint32));
		ks->pass = 1;
		return true;
	}
	ks->thr = (ks->bucket << 16) | b;
	ks->below += acc;
	ks->n_eq = ks->hist[b];
	ks->pass = 2;
	return false;
}

static inline bool
tie_less(const KSelectTie *a, const KSelectTie *b)
{
	return a->hash < b->hash || (a->hash == b->hash && a->pos < b->pos);
}

static inline void
tie_swap(KSelectTie *a, KSelectTie *b)
{
	KSelectTie	t = *a;

	*a = *b;
	*b = t;
}

/* quickselect (Hoare partition, median of three): ties[0..m) are the m smallest */
void
kselect_ties(KSelectTie *ties, int64 n, int64 m)
{
	int64		lo = 0,
				hi = n - 1;

	if (m <= 0 || m >= n)
		return;
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;
		KSelectTie	x;
		int64		i = lo,
					j = hi;

		if (tie_less(&ties[mid], &ties[lo]))
			tie_swap(&ties[mid], &ties[lo]);
		if (tie_less(&ties[hi], &ties[lo]))
			tie_swap(&ties[hi], &ties[lo]);
		if (tie_less(&ties[hi], &ties[mid]))
			tie_swap(&ties[hi], &ties[mid]);
		x = ties[mid];
		while (i <= j)
		{
			while (tie_less(&ties[i], &x))
				i++;
			while (tie_less(&x, &ties[j]))
				j--;
			if (i <= j)
			{
				tie_swap(&ties[i], &ties[j]);
				i++;
				j--;
			}
		}
		/* [lo, j] <= x <= [i, hi]; elements between j and i equal x */
		if (m - 1 <= j)
			hi = j;
		else if (m - 1 >= i)
			lo = i;
		else
			return;
	}
}
