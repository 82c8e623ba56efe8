/*
 * dsl_util.h - small helpers shared by the reader, serving and evaluation
 *
 * Comparators and in-place sort-and-deduplicate for index and id arrays, and
 * the argument checks every SQL-callable C function of the serving side uses,
 * so that a NULL or a bad k is reported with one message and one SQLSTATE
 * whichever function receives it.
 */
#ifndef DSL_UTIL_H
#define DSL_UTIL_H

#include "postgres.h"

#include "fmgr.h"
#include "lib/qunique.h"

/* qsort comparator for int32 */
static inline int
cmp_int32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/* qsort comparator for int64 */
static inline int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* Sort a[0..n) ascending and drop repeats in place; returns the new length. */
static inline int64
dsl_sort_unique_int32(int32 *a, int64 n)
{
	if (n <= 1)
		return n;
	qsort(a, n, sizeof(int32), cmp_int32);
	return (int64) qunique(a, n, sizeof(int32), cmp_int32);
}

/* Sort a[0..n) ascending and drop repeats in place; returns the new length. */
static inline int64
dsl_sort_unique_int64(int64 *a, int64 n)
{
	if (n <= 1)
		return n;
	qsort(a, n, sizeof(int64), cmp_int64);
	return (int64) qunique(a, n, sizeof(int64), cmp_int64);
}

/* Error (22004) when argument argno, called name in SQL, is NULL. */
static inline void
dsl_arg_not_null(FunctionCallInfo fcinfo, int argno, const char *name)
{
	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("%s must not be null", name)));
}

/* Error (22023) unless the top-k size k is positive. */
static inline void
dsl_check_k(int32 k)
{
	if (k <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("k must be positive, not %d", k)));
}

#endif							/* DSL_UTIL_H */
