/*
 * hugepage.h - allocations for arrays read row by row in random order
 *
 * Embedding tables, their optimizer state and LightGCN's propagation
 * buffers are visited a row at a time in random order; with 4 kB pages
 * nearly every such visit misses the TLB.  These allocate in the current
 * memory context and ask the kernel for transparent huge pages (madvise
 * MADV_HUGEPAGE) before the first touch.  The advice is best effort: where
 * it is unavailable or refused nothing else changes.
 */
#ifndef DSL_HUGEPAGE_H
#define DSL_HUGEPAGE_H

#include "postgres.h"

#define DSL_HUGE_PAGE_BYTES ((Size) 2 * 1024 * 1024)

/* advise the 2 MB-aligned interior of [p, p + sz) */
extern void dsl_advise_huge_pages(void *p, Size sz);

/*
 * palloc_extended(Max(sz, 1), MCXT_ALLOC_HUGE), zeroed if asked, with its
 * interior advised; may be pfree'd.
 */
extern void *dsl_alloc_huge(Size sz, bool zero);

/*
 * sz bytes aligned to 64 bytes or, from DSL_HUGE_PAGE_BYTES on, to a huge
 * page and advised as a whole, for arrays that live as long as their
 * context: the pointer is inside the chunk and must not be pfree'd.
 * dsl_alloc_aligned_bytes(sz) is what it takes from the context.
 */
extern void *dsl_alloc_aligned(Size sz);
extern Size dsl_alloc_aligned_bytes(Size sz);

#endif							/* DSL_HUGEPAGE_H */
