/*
 * hugepage.c - huge-page friendly allocations (see hugepage.h)
 */
#include "postgres.h"

#include <sys/mman.h>

#include "hugepage.h"

/*
 * madvise works on whole pages: only the huge pages lying entirely inside
 * the block are advised, so that no neighbouring allocation is affected.
 */
void
dsl_advise_huge_pages(void *p, Size sz)
{
#ifdef MADV_HUGEPAGE
	const uintptr_t huge = DSL_HUGE_PAGE_BYTES;
	uintptr_t	b = ((uintptr_t) p + huge - 1) & ~(huge - 1);
	uintptr_t	e = ((uintptr_t) p + sz) & ~(huge - 1);

	if (e > b)
		(void) madvise((void *) b, e - b, MADV_HUGEPAGE);
#endif
}

void *
dsl_alloc_huge(Size sz, bool zero)
{
	void	   *p = palloc_extended(Max(sz, 1), MCXT_ALLOC_HUGE);

	dsl_advise_huge_pages(p, sz);
	if (zero)
		memset(p, 0, Max(sz, 1));
	return p;
}

/*
 * Small arrays get a cache-line start; big ones a huge-page start, so that
 * the whole array (not just its interior) can be advised.
 */
Size
dsl_alloc_aligned_bytes(Size sz)
{
	return sz < DSL_HUGE_PAGE_BYTES ? sz + 64 : sz + DSL_HUGE_PAGE_BYTES;
}

void *
dsl_alloc_aligned(Size sz)
{
	char	   *p = palloc_extended(dsl_alloc_aligned_bytes(sz), MCXT_ALLOC_HUGE);

	if (sz < DSL_HUGE_PAGE_BYTES)
		return (void *) TYPEALIGN(64, p);
	p = (char *) TYPEALIGN(DSL_HUGE_PAGE_BYTES, p);
	dsl_advise_huge_pages(p, sz);
	return p;
}
