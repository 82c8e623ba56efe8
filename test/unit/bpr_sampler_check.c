/*
 * bpr_sampler_check.c - the pairs of a BPR epoch (bpr_epoch_pairs)
 *
 * Built with src/bpr.c, the engine and the fuzz harnesses' shim for palloc.
 * On skewed data (user 0 holds most pairs, the others one to three each,
 * and some users none):
 *   - every pair once: an epoch is a permutation of the pairs;
 *   - user first (bpr_sample_by_user, LightGCN's): an epoch draws n_pairs
 *     real pairs, never from a user without pairs; each user with pairs is
 *     drawn about n_pairs / users times (within 5 standard deviations of
 *     the binomial count), and user 0's items about equally often (within
 *     5 standard deviations), where the pair order gives user 0 most of
 *     the epoch;
 *   - both are the same for the same seed, and epochs differ.
 */
#include "postgres.h"

#include <math.h>
#include <stdio.h>

#include "backend_stubs.h"
#include "bpr.h"
#include "shim.h"

#define N_USERS 60
#define N_ITEMS 500
#define HEAVY_ITEMS 400			/* user 0's items */

static Interactions *
make_data(void)
{
	Interactions *d = palloc0(sizeof(Interactions));
	int64		n = 0;

	d->n_users = N_USERS;
	d->n_items = N_ITEMS;
	d->ptr = palloc(sizeof(int64) * (N_USERS + 1));
	d->items = palloc(sizeof(int32) * (HEAVY_ITEMS + 3 * N_USERS));
	for (int u = 0; u < N_USERS; u++)
	{
		/* user 0: HEAVY_ITEMS items; every seventh user none; others 1-3 */
		int			k = u == 0 ? HEAVY_ITEMS : u % 7 == 0 ? 0 : 1 + u % 3;

		d->ptr[u] = n;
		for (int i = 0; i < k; i++)
			d->items[n++] = u == 0 ? i : (u * 13 + i * 101) % N_ITEMS;
	}
	d->ptr[N_USERS] = n;
	d->n_pairs = n;
	return d;
}

static void
trainer(BprTrainer *b, DslEngine *e, const Interactions *d, bool by_user)
{
	TrainParams p;

	memset(&p, 0, sizeof(p));
	p.dim = 4;
	p.batch_size = 16;
	p.seed = 7;
	bpr_init(b, e, d, &p);
	if (by_user)
		bpr_sample_by_user(b);
}

/* the position of pair (u, i) in d, or -1 when it is not a pair */
static int64
pair_pos(const Interactions *d, int32 u, int32 i)
{
	if (u < 0 || u >= d->n_users)
		return -1;
	for (int64 k = d->ptr[u]; k < d->ptr[u + 1]; k++)
		if (d->items[k] == i)
			return k;
	return -1;
}

int
main(void)
{
	Interactions *d = make_data();
	const int64 n = d->n_pairs;
	DslEngine	e;
	BprTrainer	b,
				b2;
	int			failed = 0;
	int64	   *per_user = palloc0(sizeof(int64) * N_USERS);
	int64	   *per_item = palloc0(sizeof(int64) * N_ITEMS);
	int			users_with_pairs = 0;
	const int	epochs = 200;
	double		worst_user = 0,
				worst_item = 0;
	bool		all_real = true,
				same_seed = true,
				epochs_differ = false,
				permutation = true;
	int64		heavy_share_pairs = 0;

	memset(&e, 0, sizeof(e));
	for (int u = 0; u < N_USERS; u++)
		users_with_pairs += d->ptr[u + 1] > d->ptr[u];

	/* every pair once: each epoch a permutation of the pairs */
	trainer(&b, &e, d, false);
	for (int ep = 0; ep < 3; ep++)
	{
		bool	   *seen = palloc0(sizeof(bool) * n);

		bpr_epoch_pairs(&b);
		for (int64 k = 0; k < n; k++)
		{
			int32		u = b.pairs[2 * k];
			int64		at = pair_pos(d, u, b.pairs[2 * k + 1]);

			if (at < 0 || seen[at])
				permutation = false;
			else
				seen[at] = true;
			heavy_share_pairs += u == 0;
		}
		pfree(seen);
	}

	/* user first: counts over many epochs */
	trainer(&b, &e, d, true);
	trainer(&b2, &e, d, true);
	for (int ep = 0; ep < epochs; ep++)
	{
		int32	   *prev = ep == 1 ? memcpy(palloc(sizeof(int32) * 2 * n), b.pairs,
											sizeof(int32) * 2 * n) : NULL;

		bpr_epoch_pairs(&b);
		bpr_epoch_pairs(&b2);
		if (memcmp(b.pairs, b2.pairs, sizeof(int32) * 2 * n) != 0)
			same_seed = false;
		if (prev && memcmp(prev, b.pairs, sizeof(int32) * 2 * n) != 0)
			epochs_differ = true;
		for (int64 k = 0; k < n; k++)
		{
			int32		u = b.pairs[2 * k];
			int32		i = b.pairs[2 * k + 1];

			if (pair_pos(d, u, i) < 0)
				all_real = false;
			else
			{
				per_user[u]++;
				if (u == 0)
					per_item[i]++;
			}
		}
	}

	for (int u = 0; u < N_USERS; u++)
	{
		bool		has = d->ptr[u + 1] > d->ptr[u];
		double		pr = 1.0 / users_with_pairs;
		double		draws = (double) epochs * n;
		double		want = has ? draws * pr : 0;
		double		sd = sqrt(draws * pr * (1 - pr));

		if (!has && per_user[u] != 0)
			all_real = false;
		if (has)
			worst_user = Max(worst_user, fabs(per_user[u] - want) / sd);
	}
	for (int i = 0; i < HEAVY_ITEMS; i++)
	{
		double		pr = 1.0 / HEAVY_ITEMS;
		double		draws = (double) per_user[0];
		double		sd = sqrt(draws * pr * (1 - pr));

		worst_item = Max(worst_item, fabs(per_item[i] - draws * pr) / sd);
	}

	printf("bpr_sampler_check: every pair once: %s, user 0's share %.3f of the pairs; "
		   "user first over %d epochs: real pairs %s, users with pairs %d, user 0's share %.4f "
		   "(1/%d = %.4f), largest user deviation %.2f sd, of user 0's items %.2f sd; "
		   "same seed %s, epochs differ %s\n",
		   permutation ? "a permutation" : "NOT a permutation",
		   (double) heavy_share_pairs / (3.0 * n), epochs, all_real ? "yes" : "NO",
		   users_with_pairs, (double) per_user[0] / ((double) epochs * n), users_with_pairs,
		   1.0 / users_with_pairs, worst_user, worst_item,
		   same_seed ? "the same" : "DIFFERENT", epochs_differ ? "yes" : "NO");
	if (!permutation || !all_real || worst_user > 5 || worst_item > 5 || !same_seed ||
		!epochs_differ)
		failed = 1;
	printf("bpr_sampler_check: %s\n", failed ? "FAILED" : "ok");
	return failed;
}
