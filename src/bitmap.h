/*
 * bitmap.h - one bit per position of a tensor (row-major, n_rows x dim)
 *
 * The masks of a prune/regrow round live in such bitmaps: 1/32 of a dense
 * float tensor.  Row r covers positions [r * dim, (r + 1) * dim), which need
 * not start on a word boundary when dim is not a multiple of 64.
 */
#ifndef DSL_BITMAP_H
#define DSL_BITMAP_H

#include "postgres.h"

#define BITS_WORDS(n) (((n) + 63) / 64)

static inline bool
bit_get(const uint64 *b, int64 i)
{
	return (b[i >> 6] >> (i & 63)) & 1;
}

static inline void
bit_set(uint64 *b, int64 i)
{
	b[i >> 6] |= UINT64CONST(1) << (i & 63);
}

static inline void
bit_clear(uint64 *b, int64 i)
{
	b[i >> 6] &= ~(UINT64CONST(1) << (i & 63));
}

/* the span bits from position p on (span <= 64 - p % 64), shifted to bit 0 */
static inline uint64
bit_word(const uint64 *b, int64 p, int span)
{
	uint64		w = b[p >> 6] >> (p & 63);

	return span < 64 ? w & ((UINT64CONST(1) << span) - 1) : w;
}

/*
 * Run body for every column c of row r whose bit is set (or clear, when
 * inverted), in column order.  Words are scanned with count-trailing-zeros,
 * so there is no per-position branch to mispredict.  body may `continue`.
 */
#define FOR_ROW_BITS(bits, r, dim, inverted, c, body) \
	do { \
		int64		base_ = (int64) (r) * (dim); \
		int64		end_ = base_ + (dim); \
		for (int64 p_ = base_; p_ < end_;) \
		{ \
			int			span_ = (int) Min((int64) (64 - (p_ & 63)), end_ - p_); \
			uint64		word_ = bit_word((bits), p_, span_); \
			int64		at_ = p_ - base_; \
			if (inverted) \
				word_ = ~word_ & (span_ < 64 ? (UINT64CONST(1) << span_) - 1 : ~UINT64CONST(0)); \
			p_ += span_; \
			while (word_) \
			{ \
				int			c = (int) at_ + __builtin_ctzll(word_); \
				word_ &= word_ - 1; \
				body; \
			} \
		} \
	} while (0)

#endif							/* DSL_BITMAP_H */
