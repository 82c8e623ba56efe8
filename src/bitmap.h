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
 * Take the set bits of b[0 .. n_words) in ascending order, clearing them:
 * the k-th set position i gets slot_of[i] = k, rows[k] = i and count[k] = 0.
 * Returns how many there were.  The rows a mini-batch touches are numbered
 * so, in the order in which passes over whole tables visit them.
 */
static inline int
bits_take_numbered(uint64 *b, int64 n_words, int32 *slot_of, int32 *rows, int32 *count)
{
	int			n = 0;

	for (int64 w = 0; w < n_words; w++)
	{
		uint64		word = b[w];

		b[w] = 0;
		while (word)
		{
			int32		i = (int32) (w * 64 + __builtin_ctzll(word));

			word &= word - 1;
			slot_of[i] = n;
			rows[n] = i;
			count[n] = 0;
			n++;
		}
	}
	return n;
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
