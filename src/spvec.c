/*
 * spvec.c - the sparse vector type dsl.spvec
 *
 * Text format (compatible with pgvector's sparsevec): '{1:0.5,3:-2}/64',
 * 1-based indices, entries in any order on input, sorted and without zeros
 * on output.  Binary format (send/recv, also pgvector's): int32 dim, int32
 * nnz, int32 reserved (zero), nnz int32 0-based ascending indices, nnz
 * float4 non-zero values.  See spvec.h for the on-disk layout.
 *
 * Every way of making an spvec (text, binary, casts, C constructors) goes
 * through the same checks below and the same builder, so they all reject
 * the same values and produce identical bytes for equal vectors.
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "common/shortest_dec.h"
#include "libpq/pqformat.h"
#include "parser/scansup.h"
#include "port/pg_bswap.h"
#include "port/pg_bitutils.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/float.h"

#include "spvec.h"

/* Index set encodings, kept in the low bits of SpVec.flags */
#define SPVEC_FMT_INT32		0	/* int32 indices[nnz] */
#define SPVEC_FMT_UINT16	1	/* uint16 indices[nnz], only if dim <= 65536 */
#define SPVEC_FMT_BITMAP	2	/* ceil(dim / 8) bytes, bit i of byte i / 8 */
#define SPVEC_FMT_FULL		3	/* nnz == dim: nothing stored */
#define SPVEC_FMT_MASK		0x3

#define SPVEC_UINT16_MAX_DIM	65536

/* One entry of input that may come in any order */
typedef struct SpVecEntry
{
	int32		index;			/* 0-based */
	float4		value;
} SpVecEntry;

/*
 * Bytes taken by the index set in a given encoding.  Callers have checked
 * 1 <= dim <= SPVEC_MAX_DIM and 0 <= nnz <= dim, so nothing here overflows.
 */
static inline Size
spvec_index_bytes(int format, int dim, int nnz)
{
	switch (format)
	{
		case SPVEC_FMT_FULL:
			return 0;
		case SPVEC_FMT_BITMAP:
			return ((Size) dim + 7) / 8;
		case SPVEC_FMT_UINT16:
			return (Size) nnz * sizeof(uint16);
		default:
			return (Size) nnz * sizeof(int32);
	}
}

/*
 * The encoding used for (dim, nnz): the smallest one, ties going to the
 * earlier of full, bitmap, uint16, int32.  A pure function of dim and nnz.
 */
static inline int
spvec_choose_format(int dim, int nnz)
{
	Size		bitmap = spvec_index_bytes(SPVEC_FMT_BITMAP, dim, nnz);

	if (nnz == dim)
		return SPVEC_FMT_FULL;
	if (dim <= SPVEC_UINT16_MAX_DIM)
		return spvec_index_bytes(SPVEC_FMT_UINT16, dim, nnz) < bitmap ?
			SPVEC_FMT_UINT16 : SPVEC_FMT_BITMAP;
	return spvec_index_bytes(SPVEC_FMT_INT32, dim, nnz) < bitmap ?
		SPVEC_FMT_INT32 : SPVEC_FMT_BITMAP;
}

/*
 * Total varlena size of an spvec, with its bounds checked first so that the
 * arithmetic cannot overflow (at most 16 + 8 * SPVEC_MAX_DIM bytes).
 */
static inline Size
spvec_size(int dim, int nnz)
{
	Size		size;

	if (dim < 1 || dim > SPVEC_MAX_DIM || nnz < 0 || nnz > dim)
		elog(ERROR, "invalid spvec shape: dim %d, nnz %d", dim, nnz);

	size = offsetof(SpVec, values);
	size += (Size) nnz * sizeof(float4);
	size += spvec_index_bytes(spvec_choose_format(dim, nnz), dim, nnz);

	Assert(AllocSizeIsValid(size));
	return size;
}

/* Start of the index set */
static inline const char *
spvec_index_area(const SpVec *v)
{
	return (const char *) v->values + (Size) v->nnz * sizeof(float4);
}

/*
 * Returns the index encoding of a stored spvec after checking its header
 * against its size.  Only corrupted data can fail here.
 */
static int
spvec_format(const SpVec *v)
{
	int			format = v->flags & SPVEC_FMT_MASK;

	if (v->dim < 1 || v->dim > SPVEC_MAX_DIM || v->nnz < 0 || v->nnz > v->dim ||
		(v->flags & ~SPVEC_FMT_MASK) != 0 ||
		format != spvec_choose_format(v->dim, v->nnz) ||
		VARSIZE(v) != spvec_size(v->dim, v->nnz))
		elog(ERROR, "invalid spvec header: dim %d, nnz %d, flags %d, size %u",
			 v->dim, v->nnz, v->flags, (unsigned int) VARSIZE(v));
	return format;
}

/* ---------------------------------------------------------------------
 * Validation shared by every entry point
 * ---------------------------------------------------------------------
 */

/* Dimension must be 1..SPVEC_MAX_DIM; shown is the text to name, or NULL */
static void
spvec_check_dim(int64 dim, const char *shown)
{
	char		buf[MAXINT8LEN + 1];

	if (dim >= 1 && dim <= SPVEC_MAX_DIM)
		return;
	if (shown == NULL)
	{
		snprintf(buf, sizeof(buf), INT64_FORMAT, dim);
		shown = buf;
	}
	if (dim < 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("spvec must have at least 1 dimension, not %s", shown)));
	ereport(ERROR,
			(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			 errmsg("spvec dimension %s exceeds the limit of %d",
					shown, SPVEC_MAX_DIM)));
}

/*
 * Index must be in range: 1..dim for 1-based input (text, arrays), 0..dim-1
 * for 0-based input (binary, C callers).  shown is the text to name, or NULL.
 */
static void
spvec_check_index(int64 index, int dim, int base, const char *shown)
{
	char		buf[MAXINT8LEN + 1];

	if (index >= base && index < (int64) dim + base)
		return;
	if (shown == NULL)
	{
		snprintf(buf, sizeof(buf), INT64_FORMAT, index);
		shown = buf;
	}
	if (base == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("spvec index %s is out of range", shown),
				 errdetail("Indices are 0-based here and must be between 0 and %d.",
						   dim - 1)));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("spvec index %s is out of range", shown),
			 errdetail("Indices must be between 1 and %d, the number of dimensions.",
					   dim)));
}

/* Entry must be finite; index is named as the input numbers it */
static inline void
spvec_check_value(float4 value, int64 index)
{
	if (likely(!isinf(value) && !isnan(value)))
		return;
	if (isnan(value))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("NaN not allowed in spvec"),
				 errdetail("The value at index " INT64_FORMAT " is NaN.", index)));
	ereport(ERROR,
			(errcode(ERRCODE_DATA_EXCEPTION),
			 errmsg("infinite value not allowed in spvec"),
			 errdetail("The value at index " INT64_FORMAT " is %s.",
					   index, value > 0 ? "Infinity" : "-Infinity")));
}

/* A typmod (-1 = none) must match the dimension */
static inline void
spvec_check_typmod(int dim, int32 typmod)
{
	if (typmod != -1 && dim != typmod)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("expected %d dimensions, not %d", typmod, dim)));
}

/* Operands of a binary function must have the same dimension */
static inline void
spvec_check_same_dim(const SpVec *a, const SpVec *b)
{
	if (a->dim != b->dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("different spvec dimensions %d and %d", a->dim, b->dim)));
}

/* 0-based indices (binary input, C callers) must be in range and strictly ascending */
static void
spvec_check_ascending(int dim, int nnz, const int32 *idx)
{
	for (int i = 0; i < nnz; i++)
	{
		spvec_check_index(idx[i], dim, 0, NULL);
		if (i > 0 && idx[i] <= idx[i - 1])
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("spvec indices must be strictly ascending"),
					 errdetail("Index %d follows index %d (0-based).",
							   idx[i], idx[i - 1])));
	}
}

/* ---------------------------------------------------------------------
 * Building and decoding
 * ---------------------------------------------------------------------
 */

/*
 * Allocates an spvec from validated input: 1 <= dim <= SPVEC_MAX_DIM,
 * strictly ascending in-range 0-based indices, finite non-zero values.
 */
static SpVec *
spvec_build(int dim, int nnz, const int32 *idx, const float4 *vals)
{
	Size		size = spvec_size(dim, nnz);
	int			format = spvec_choose_format(dim, nnz);
	SpVec	   *v = (SpVec *) palloc0(size);
	char	   *area;

	SET_VARSIZE(v, size);
	v->dim = dim;
	v->nnz = nnz;
	v->flags = format;
	if (nnz > 0)
		memcpy(v->values, vals, (Size) nnz * sizeof(float4));

	area = (char *) spvec_index_area(v);
	switch (format)
	{
		case SPVEC_FMT_FULL:
			break;
		case SPVEC_FMT_BITMAP:
			{
				uint8	   *bm = (uint8 *) area;

				for (int i = 0; i < nnz; i++)
					bm[idx[i] >> 3] |= (uint8) (1 << (idx[i] & 7));
			}
			break;
		case SPVEC_FMT_UINT16:
			{
				uint16	   *ix = (uint16 *) area;

				for (int i = 0; i < nnz; i++)
					ix[i] = (uint16) idx[i];
			}
			break;
		default:
			if (nnz > 0)
				memcpy(area, idx, (Size) nnz * sizeof(int32));
			break;
	}
	return v;
}

/* Fails on a bitmap whose set bits disagree with nnz or run past dim */
static void spvec_bitmap_corrupt(const SpVec *v) pg_attribute_noreturn();

static void
spvec_bitmap_corrupt(const SpVec *v)
{
	elog(ERROR, "invalid spvec bitmap: dim %d, nnz %d", v->dim, v->nnz);
}

/* Checks the padding bits of the last bitmap byte (they must be clear) */
static inline void
spvec_check_bitmap_tail(const SpVec *v, const uint8 *bm)
{
	int			tail = v->dim & 7;

	if (tail != 0 && (bm[v->dim >> 3] >> tail) != 0)
		spvec_bitmap_corrupt(v);
}

void
spvec_indices(const SpVec *v, int32 *out)
{
	int			dim = v->dim;
	int			nnz = v->nnz;
	const char *area = spvec_index_area(v);

	switch (spvec_format(v))
	{
		case SPVEC_FMT_FULL:
			for (int i = 0; i < nnz; i++)
				out[i] = i;
			break;
		case SPVEC_FMT_BITMAP:
			{
				const uint8 *bm = (const uint8 *) area;
				int			nbytes = (dim + 7) / 8;
				int			k = 0;

				spvec_check_bitmap_tail(v, bm);
				/* eight bytes at a time: bit b of byte j is index 8 j + b */
				for (int j = 0; j < nbytes; j += 8)
				{
					uint64		b = 0;

					if (nbytes - j >= 8)
					{
						memcpy(&b, bm + j, 8);
#ifdef WORDS_BIGENDIAN
						b = pg_bswap64(b);
#endif
					}
					else
						for (int t = nbytes - j - 1; t >= 0; t--)
							b = (b << 8) | bm[j + t];
					while (b != 0)
					{
						if (unlikely(k >= nnz))
							spvec_bitmap_corrupt(v);
						out[k++] = j * 8 + pg_rightmost_one_pos64(b);
						b &= b - 1;
					}
				}
				if (k != nnz)
					spvec_bitmap_corrupt(v);
			}
			break;
		case SPVEC_FMT_UINT16:
			{
				const uint16 *ix = (const uint16 *) area;

				for (int i = 0; i < nnz; i++)
					out[i] = ix[i];
			}
			break;
		default:
			memcpy(out, area, (Size) nnz * sizeof(int32));
			break;
	}
}

/*
 * The 0-based indices of v: a pointer into v itself when they are stored
 * as int32, otherwise a palloc'd decoded copy (*copied is set).
 */
static const int32 *
spvec_indices_view(const SpVec *v, bool *copied)
{
	int32	   *out;

	if (spvec_format(v) == SPVEC_FMT_INT32)
	{
		*copied = false;
		return (const int32 *) spvec_index_area(v);
	}
	out = palloc(Max(v->nnz, 1) * sizeof(int32));
	spvec_indices(v, out);
	*copied = true;
	return out;
}

int
spvec_dim(const SpVec *v)
{
	return v->dim;
}

int
spvec_nnz(const SpVec *v)
{
	return v->nnz;
}

void
spvec_to_dense(const SpVec *v, float *out)
{
	int			dim = v->dim;
	int			nnz = v->nnz;
	const float4 *vals = v->values;
	const char *area = spvec_index_area(v);
	int			format = spvec_format(v);

	if (format == SPVEC_FMT_FULL)
	{
		memcpy(out, vals, (Size) dim * sizeof(float));
		return;
	}
	memset(out, 0, (Size) dim * sizeof(float));

	switch (format)
	{
		case SPVEC_FMT_BITMAP:
			{
				const uint8 *bm = (const uint8 *) area;
				int			nbytes = (dim + 7) / 8;
				int			k = 0;

				spvec_check_bitmap_tail(v, bm);
				for (int j = 0; j < nbytes; j++)
				{
					uint32		b = bm[j];
					float	   *base = out + j * 8;

					while (b != 0)
					{
						if (unlikely(k >= nnz))
							spvec_bitmap_corrupt(v);
						base[pg_rightmost_one_pos32(b)] = vals[k++];
						b &= b - 1;
					}
				}
				if (k != nnz)
					spvec_bitmap_corrupt(v);
			}
			break;
		case SPVEC_FMT_UINT16:
			{
				const uint16 *ix = (const uint16 *) area;

				for (int i = 0; i < nnz; i++)
				{
					if (unlikely(ix[i] >= dim))
						elog(ERROR, "invalid spvec index %d", ix[i]);
					out[ix[i]] = vals[i];
				}
			}
			break;
		default:
			{
				const int32 *ix = (const int32 *) area;

				for (int i = 0; i < nnz; i++)
				{
					if (unlikely((uint32) ix[i] >= (uint32) dim))
						elog(ERROR, "invalid spvec index %d", ix[i]);
					out[ix[i]] = vals[i];
				}
			}
			break;
	}
}

SpVec *
spvec_from_dense(const float *x, int dim)
{
	int			nnz = 0;
	int32	   *idx;
	float4	   *vals;
	SpVec	   *v;

	spvec_check_dim(dim, NULL);
	for (int i = 0; i < dim; i++)
	{
		spvec_check_value(x[i], (int64) i + 1);
		if (x[i] != 0)
			nnz++;
	}

	idx = palloc(Max(nnz, 1) * sizeof(int32));
	vals = palloc(Max(nnz, 1) * sizeof(float4));
	nnz = 0;
	for (int i = 0; i < dim; i++)
	{
		if (x[i] != 0)
		{
			idx[nnz] = i;
			vals[nnz] = x[i];
			nnz++;
		}
	}
	v = spvec_build(dim, nnz, idx, vals);
	pfree(idx);
	pfree(vals);
	return v;
}

/* Rejects an entry count that cannot fit dim dimensions */
static void
spvec_check_nnz(int64 nnz, int dim)
{
	if (nnz < 0 || nnz > dim)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("spvec entry count " INT64_FORMAT " is out of range", nnz),
				 errdetail("The number of entries must be between 0 and the number of dimensions, %d.",
						   dim)));
}

SpVec *
spvec_from_sparse(int dim, int nnz, const int32 *idx, const float *vals)
{
	int			kept = 0;
	int32	   *kidx;
	float4	   *kvals;
	SpVec	   *v;

	spvec_check_dim(dim, NULL);
	spvec_check_nnz(nnz, dim);
	spvec_check_ascending(dim, nnz, idx);
	for (int i = 0; i < nnz; i++)
	{
		spvec_check_value(vals[i], idx[i]);
		if (vals[i] != 0)
			kept++;
	}
	if (kept == nnz)
		return spvec_build(dim, nnz, idx, vals);

	kidx = palloc(Max(kept, 1) * sizeof(int32));
	kvals = palloc(Max(kept, 1) * sizeof(float4));
	kept = 0;
	for (int i = 0; i < nnz; i++)
	{
		if (vals[i] != 0)
		{
			kidx[kept] = idx[i];
			kvals[kept] = vals[i];
			kept++;
		}
	}
	v = spvec_build(dim, kept, kidx, kvals);
	pfree(kidx);
	pfree(kvals);
	return v;
}

static int
spvec_entry_cmp(const void *a, const void *b)
{
	int32		ia = ((const SpVecEntry *) a)->index;
	int32		ib = ((const SpVecEntry *) b)->index;

	return (ia > ib) - (ia < ib);
}

/*
 * Builds from entries in any order whose indices (0-based) and values were
 * already checked: sorts them, rejects duplicates, drops zeros.  Used by the
 * text input and spvec_from_arrays, which accept unsorted input.
 */
static SpVec *
spvec_from_entries(int dim, int n, SpVecEntry *entries)
{
	bool		sorted = true;
	int			kept = 0;
	int32	   *idx;
	float4	   *vals;
	SpVec	   *v;

	for (int i = 1; i < n && sorted; i++)
		sorted = entries[i].index > entries[i - 1].index;
	if (!sorted)
		qsort(entries, n, sizeof(SpVecEntry), spvec_entry_cmp);

	for (int i = 1; i < n; i++)
	{
		if (entries[i].index == entries[i - 1].index)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("spvec index %d appears more than once",
							entries[i].index + 1)));
	}

	idx = palloc(Max(n, 1) * sizeof(int32));
	vals = palloc(Max(n, 1) * sizeof(float4));
	for (int i = 0; i < n; i++)
	{
		if (entries[i].value != 0)
		{
			idx[kept] = entries[i].index;
			vals[kept] = entries[i].value;
			kept++;
		}
	}
	v = spvec_build(dim, kept, idx, vals);
	pfree(idx);
	pfree(vals);
	return v;
}

/* ---------------------------------------------------------------------
 * Text and binary I/O, typmod
 * ---------------------------------------------------------------------
 */

/* Reports a syntax error in spvec text with a sentence saying what was expected */
static void
spvec_syntax_error(const char *input, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid input syntax for type spvec: \"%s\"", input),
			 errdetail_internal("%s", detail)));
}

static inline const char *
skip_space(const char *p)
{
	while (scanner_isspace(*p))
		p++;
	return p;
}

/* Copies the text of a number token [start, end) for an error message */
static char *
token_text(const char *start, const char *end)
{
	return pnstrdup(start, end - start);
}

#define SPVEC_DETAIL_START		"The value must start with \"{\"."
#define SPVEC_DETAIL_ENTRY		"Each entry must have the form index:value, with an integer index."
#define SPVEC_DETAIL_SEPARATOR	"Entries must be separated by \",\" and the list closed by \"}\"."
#define SPVEC_DETAIL_UNCLOSED	"The value ends before the closing \"}\"."
#define SPVEC_DETAIL_DIM		"The closing \"}\" must be followed by \"/\" and the number of dimensions."
#define SPVEC_DETAIL_JUNK		"Nothing may follow the number of dimensions except whitespace."

PG_FUNCTION_INFO_V1(spvec_in);
/* Parses '{i:v,...}/dim' (1-based indices, any order, zeros dropped) */
Datum
spvec_in(PG_FUNCTION_ARGS)
{
	char	   *input = PG_GETARG_CSTRING(0);
	int32		typmod = PG_GETARG_INT32(2);
	const char *p = input;
	int			n = 0;
	int			cap = 16;
	int64	   *pidx = palloc(cap * sizeof(int64));	/* 1-based, unchecked */
	char	  **pidx_text = palloc(cap * sizeof(char *));
	float4	   *pval = palloc(cap * sizeof(float4));
	SpVecEntry *entries;
	int64		dim;
	char	   *end;
	const char *dim_start;

	p = skip_space(p);
	if (*p != '{')
		spvec_syntax_error(input, SPVEC_DETAIL_START);
	p = skip_space(p + 1);

	if (*p == '}')
		p++;
	else
	{
		for (;;)
		{
			int64		index;
			bool		index_overflow;
			float4		value;
			const char *start;

			/* index */
			p = skip_space(p);
			if (*p == '\0')
				spvec_syntax_error(input, SPVEC_DETAIL_UNCLOSED);
			start = p;
			errno = 0;
			index = strtoll(p, &end, 10);
			if (end == start)
				spvec_syntax_error(input, SPVEC_DETAIL_ENTRY);
			index_overflow = (errno == ERANGE);
			p = skip_space(end);
			if (*p != ':')
				spvec_syntax_error(input, *p == '\0' ? SPVEC_DETAIL_UNCLOSED : SPVEC_DETAIL_ENTRY);

			if (n == cap)
			{
				if (cap >= SPVEC_MAX_DIM)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("spvec cannot have more than %d entries",
									SPVEC_MAX_DIM)));
				cap *= 2;
				pidx = repalloc(pidx, cap * sizeof(int64));
				pidx_text = repalloc(pidx_text, cap * sizeof(char *));
				pval = repalloc(pval, cap * sizeof(float4));
			}
			pidx[n] = index;
			/* keep the text only when the number itself cannot be shown */
			pidx_text[n] = index_overflow ? token_text(start, end) : NULL;

			/* value */
			p = skip_space(p + 1);
			start = p;
			errno = 0;
			value = strtof(p, &end);
			if (end == start)
				spvec_syntax_error(input, *p == '\0' ? SPVEC_DETAIL_UNCLOSED : SPVEC_DETAIL_ENTRY);
			if (errno == ERANGE && (value == 0 || isinf(value)))
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("spvec value \"%s\" is out of range for type real",
								token_text(start, end))));
			spvec_check_value(value, index);
			pval[n] = value;
			n++;

			p = skip_space(end);
			if (*p == ',')
			{
				p++;
				continue;
			}
			if (*p == '}')
			{
				p++;
				break;
			}
			spvec_syntax_error(input, *p == '\0' ? SPVEC_DETAIL_UNCLOSED : SPVEC_DETAIL_SEPARATOR);
		}

	}

	/* "/dim" */
	p = skip_space(p);
	if (*p != '/')
		spvec_syntax_error(input, SPVEC_DETAIL_DIM);
	p = skip_space(p + 1);
	dim_start = p;
	errno = 0;
	dim = strtoll(p, &end, 10);
	if (end == dim_start)
		spvec_syntax_error(input, SPVEC_DETAIL_DIM);
	p = skip_space(end);
	if (*p != '\0')
		spvec_syntax_error(input, SPVEC_DETAIL_JUNK);
	spvec_check_dim(dim, errno == ERANGE ? token_text(dim_start, end) : NULL);
	spvec_check_typmod((int) dim, typmod);

	if (n == 0)
		PG_RETURN_SPVEC_P(spvec_build((int) dim, 0, NULL, NULL));

	entries = palloc(n * sizeof(SpVecEntry));
	for (int i = 0; i < n; i++)
	{
		spvec_check_index(pidx[i], (int) dim, 1, pidx_text[i]);
		entries[i].index = (int32) (pidx[i] - 1);
		entries[i].value = pval[i];
	}
	PG_RETURN_SPVEC_P(spvec_from_entries((int) dim, n, entries));
}

PG_FUNCTION_INFO_V1(spvec_out);
/* Prints '{i:v,...}/dim' with ascending 1-based indices and shortest exact floats */
Datum
spvec_out(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);
	int			nnz = v->nnz;
	bool		copied;
	const int32 *idx = spvec_indices_view(v, &copied);
	char	   *buf;
	char	   *p;

	/*
	 * Per entry: up to 7 digits of index (<= 1000000), ":", a float of at
	 * most FLOAT_SHORTEST_DECIMAL_LEN - 1 characters and ","; then "{}/",
	 * up to 7 digits of dim and the terminator.
	 */
	buf = palloc((Size) nnz * (7 + 1 + FLOAT_SHORTEST_DECIMAL_LEN) + 3 + 7 + 1);
	p = buf;
	*p++ = '{';
	for (int i = 0; i < nnz; i++)
	{
		if (i > 0)
			*p++ = ',';
		p += pg_ultoa_n((uint32) idx[i] + 1, p);
		*p++ = ':';
		p += float_to_shortest_decimal_bufn(v->values[i], p);
	}
	*p++ = '}';
	*p++ = '/';
	p += pg_ultoa_n((uint32) v->dim, p);
	*p = '\0';

	if (copied)
		pfree((void *) idx);
	PG_RETURN_CSTRING(buf);
}

PG_FUNCTION_INFO_V1(spvec_recv);
/* Reads the binary format, checked as strictly as the text input */
Datum
spvec_recv(PG_FUNCTION_ARGS)
{
	StringInfo	buf = (StringInfo) PG_GETARG_POINTER(0);
	int32		typmod = PG_GETARG_INT32(2);
	int32		dim;
	int32		nnz;
	int32		reserved;
	int32	   *idx;
	float4	   *vals;
	SpVec	   *v;

	dim = pq_getmsgint(buf, sizeof(int32));
	nnz = pq_getmsgint(buf, sizeof(int32));
	reserved = pq_getmsgint(buf, sizeof(int32));

	spvec_check_dim(dim, NULL);
	spvec_check_typmod(dim, typmod);
	spvec_check_nnz(nnz, dim);
	if (reserved != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid reserved field %d in binary spvec", reserved),
				 errdetail("The reserved field must be zero.")));
	/* the message must hold what it claims before anything is allocated */
	if ((int64) nnz * 8 > (int64) (buf->len - buf->cursor))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("binary spvec claims %d entries but holds only %d bytes of them",
						nnz, buf->len - buf->cursor)));

	idx = palloc(Max(nnz, 1) * sizeof(int32));
	vals = palloc(Max(nnz, 1) * sizeof(float4));
	for (int i = 0; i < nnz; i++)
		idx[i] = pq_getmsgint(buf, sizeof(int32));
	spvec_check_ascending(dim, nnz, idx);
	for (int i = 0; i < nnz; i++)
	{
		vals[i] = pq_getmsgfloat4(buf);
		spvec_check_value(vals[i], idx[i]);
		if (vals[i] == 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("zero value at index %d in binary spvec", idx[i]),
					 errdetail("The binary format stores only non-zero entries.")));
	}

	v = spvec_build(dim, nnz, idx, vals);
	pfree(idx);
	pfree(vals);
	PG_RETURN_SPVEC_P(v);
}

PG_FUNCTION_INFO_V1(spvec_send);
/* Writes dim, nnz, a zero reserved word, 0-based indices, then values */
Datum
spvec_send(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);
	StringInfoData buf;
	bool		copied;
	const int32 *idx = spvec_indices_view(v, &copied);

	pq_begintypsend(&buf);
	pq_sendint32(&buf, v->dim);
	pq_sendint32(&buf, v->nnz);
	pq_sendint32(&buf, 0);
	for (int i = 0; i < v->nnz; i++)
		pq_sendint32(&buf, idx[i]);
	for (int i = 0; i < v->nnz; i++)
		pq_sendfloat4(&buf, v->values[i]);
	if (copied)
		pfree((void *) idx);
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

PG_FUNCTION_INFO_V1(spvec_typmod_in);
/* Accepts spvec(n) with 1 <= n <= SPVEC_MAX_DIM */
Datum
spvec_typmod_in(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32	   *mods;
	int			n;

	mods = ArrayGetIntegerTypmods(arr, &n);
	if (n != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid type modifier"),
				 errdetail("Type spvec takes exactly one modifier, the number of dimensions.")));
	if (mods[0] < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("dimensions for type spvec must be at least 1, not %d", mods[0])));
	if (mods[0] > SPVEC_MAX_DIM)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("spvec dimension %d exceeds the limit of %d",
						mods[0], SPVEC_MAX_DIM)));
	PG_RETURN_INT32(mods[0]);
}

PG_FUNCTION_INFO_V1(spvec_typmod_out);
/* Prints the type modifier as "(n)" */
Datum
spvec_typmod_out(PG_FUNCTION_ARGS)
{
	int32		typmod = PG_GETARG_INT32(0);

	PG_RETURN_CSTRING(typmod >= 0 ? psprintf("(%d)", typmod) : pstrdup(""));
}

PG_FUNCTION_INFO_V1(spvec_coerce);
/* Length-coercion cast: enforces the dimension of spvec(n) */
Datum
spvec_coerce(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	spvec_check_typmod(v->dim, PG_GETARG_INT32(1));
	PG_RETURN_SPVEC_P(v);
}

/* ---------------------------------------------------------------------
 * Casts and constructors
 * ---------------------------------------------------------------------
 */

/* ARR_DATA_PTR, spelled so that -Wextra (sign-compare) stays quiet */
static inline const char *
spvec_array_data(ArrayType *arr)
{
	Size		offset = ARR_HASNULL(arr) ? (Size) arr->dataoffset :
		ARR_OVERHEAD_NONULLS(ARR_NDIM(arr));

	return (const char *) arr + offset;
}

/*
 * Checks that an array is one-dimensional (or empty) and has no NULLs;
 * returns its length.
 */
static int
spvec_array_length(ArrayType *arr, const char *what)
{
	int			n;

	if (ARR_NDIM(arr) > 1)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("cannot use a %d-dimensional array as %s", ARR_NDIM(arr), what),
				 errdetail("Only one-dimensional arrays can be converted to spvec.")));
	if (array_contains_nulls(arr))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("array must not contain nulls"),
				 errdetail("NULL elements cannot be converted to spvec %s.", what)));
	n = ArrayGetNItems(ARR_NDIM(arr), ARR_DIMS(arr));
	return n;
}

PG_FUNCTION_INFO_V1(spvec_from_real_array);
/* Cast real[] -> spvec: dim is the array length, zeros dropped */
Datum
spvec_from_real_array(PG_FUNCTION_ARGS)
{
	ArrayType  *arr = PG_GETARG_ARRAYTYPE_P(0);
	int32		typmod = PG_GETARG_INT32(1);
	int			n = spvec_array_length(arr, "values");

	spvec_check_dim(n, NULL);
	spvec_check_typmod(n, typmod);
	PG_RETURN_SPVEC_P(spvec_from_dense((const float *) spvec_array_data(arr), n));
}

PG_FUNCTION_INFO_V1(spvec_to_real_array);
/* Cast spvec -> real[]: the dense values */
Datum
spvec_to_real_array(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);
	float4	   *dense = palloc((Size) v->dim * sizeof(float4));
	Datum	   *elems = palloc((Size) v->dim * sizeof(Datum));

	spvec_to_dense(v, dense);
	for (int i = 0; i < v->dim; i++)
		elems[i] = Float4GetDatum(dense[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, v->dim, FLOAT4OID,
										  sizeof(float4), true,
										  TYPALIGN_INT));
}

PG_FUNCTION_INFO_V1(spvec_from_arrays);
/* spvec_from_arrays(indices, values, dim): like the text input, 1-based */
Datum
spvec_from_arrays(PG_FUNCTION_ARGS)
{
	ArrayType  *iarr = PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *varr = PG_GETARG_ARRAYTYPE_P(1);
	int32		dim = PG_GETARG_INT32(2);
	int			n = spvec_array_length(iarr, "indices");
	int			nv = spvec_array_length(varr, "values");
	const int32 *ix;
	const float4 *vx;
	SpVecEntry *entries;

	spvec_check_dim(dim, NULL);
	if (n != nv)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("spvec_from_arrays needs as many values as indices"),
				 errdetail("The index array has %d elements and the value array has %d.",
						   n, nv)));
	spvec_check_nnz(n, dim);

	ix = (const int32 *) spvec_array_data(iarr);
	vx = (const float4 *) spvec_array_data(varr);
	entries = palloc(Max(n, 1) * sizeof(SpVecEntry));
	for (int i = 0; i < n; i++)
	{
		spvec_check_index(ix[i], dim, 1, NULL);
		spvec_check_value(vx[i], ix[i]);
		entries[i].index = ix[i] - 1;
		entries[i].value = vx[i];
	}
	PG_RETURN_SPVEC_P(spvec_from_entries(dim, n, entries));
}

/* ---------------------------------------------------------------------
 * Accessors, distances, equality
 * ---------------------------------------------------------------------
 */

PG_FUNCTION_INFO_V1(spvec_dims);
/* Number of dimensions */
Datum
spvec_dims(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	PG_RETURN_INT32(v->dim);
}

PG_FUNCTION_INFO_V1(spvec_nnz_sql);
/* Number of non-zero entries */
Datum
spvec_nnz_sql(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	PG_RETURN_INT32(v->nnz);
}

/* Sum of squares of the entries, in double */
static double
spvec_sum_squares(const SpVec *v)
{
	double		sum = 0.0;

	for (int i = 0; i < v->nnz; i++)
		sum += (double) v->values[i] * (double) v->values[i];
	return sum;
}

/*
 * One pass over two same-dimension vectors in index order: returns the dot
 * product times sign (+1 or -1) and, if dist2 is not NULL, the squared
 * Euclidean distance.  The sign is applied to each product rather than to
 * the sum so that vectors without common entries give +0, never -0.
 */
static double
spvec_merge(const SpVec *a, const SpVec *b, double sign, double *dist2)
{
	bool		copied_a;
	bool		copied_b;
	const int32 *ia = spvec_indices_view(a, &copied_a);
	const int32 *ib = spvec_indices_view(b, &copied_b);
	const float4 *va = a->values;
	const float4 *vb = b->values;
	int			na = a->nnz;
	int			nb = b->nnz;
	int			i = 0;
	int			j = 0;
	double		dot = 0.0;
	double		d2 = 0.0;

	while (i < na && j < nb)
	{
		if (ia[i] == ib[j])
		{
			double		x = va[i];
			double		y = vb[j];

			dot += sign * x * y;
			d2 += (x - y) * (x - y);
			i++;
			j++;
		}
		else if (ia[i] < ib[j])
		{
			d2 += (double) va[i] * (double) va[i];
			i++;
		}
		else
		{
			d2 += (double) vb[j] * (double) vb[j];
			j++;
		}
	}
	for (; i < na; i++)
		d2 += (double) va[i] * (double) va[i];
	for (; j < nb; j++)
		d2 += (double) vb[j] * (double) vb[j];

	if (copied_a)
		pfree((void *) ia);
	if (copied_b)
		pfree((void *) ib);
	if (dist2)
		*dist2 = d2;
	return dot;
}

PG_FUNCTION_INFO_V1(spvec_inner_product);
/* Inner product */
Datum
spvec_inner_product(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);

	spvec_check_same_dim(a, b);
	PG_RETURN_FLOAT8(spvec_merge(a, b, 1.0, NULL));
}

PG_FUNCTION_INFO_V1(spvec_negative_inner_product);
/* Negative inner product (the <#> operator: ascending order = largest product first) */
Datum
spvec_negative_inner_product(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);

	spvec_check_same_dim(a, b);
	PG_RETURN_FLOAT8(spvec_merge(a, b, -1.0, NULL));
}

PG_FUNCTION_INFO_V1(spvec_l2_norm);
/* Euclidean norm */
Datum
spvec_l2_norm(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	PG_RETURN_FLOAT8(sqrt(spvec_sum_squares(v)));
}

PG_FUNCTION_INFO_V1(spvec_l2_distance);
/* Euclidean distance */
Datum
spvec_l2_distance(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);
	double		d2;

	spvec_check_same_dim(a, b);
	(void) spvec_merge(a, b, 1.0, &d2);
	PG_RETURN_FLOAT8(sqrt(d2));
}

PG_FUNCTION_INFO_V1(spvec_cosine_distance);
/* Cosine distance 1 - cos(a, b), in [0, 2]; NaN if either vector is zero */
Datum
spvec_cosine_distance(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);
	double		na;
	double		nb;
	double		similarity;

	spvec_check_same_dim(a, b);
	na = spvec_sum_squares(a);
	nb = spvec_sum_squares(b);
	if (na == 0 || nb == 0)
		PG_RETURN_FLOAT8(get_float8_nan());

	similarity = spvec_merge(a, b, 1.0, NULL) / (sqrt(na) * sqrt(nb));
	/* rounding can push |similarity| slightly above 1 */
	if (similarity > 1)
		similarity = 1;
	else if (similarity < -1)
		similarity = -1;
	PG_RETURN_FLOAT8(1 - similarity);
}

/* Equal vectors have identical bytes (see spvec.h) */
static bool
spvec_equal(const SpVec *a, const SpVec *b)
{
	return VARSIZE(a) == VARSIZE(b) &&
		memcmp((const char *) a + VARHDRSZ, (const char *) b + VARHDRSZ,
			   VARSIZE(a) - VARHDRSZ) == 0;
}

PG_FUNCTION_INFO_V1(spvec_eq);
/* Same dimension and same entries */
Datum
spvec_eq(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);

	PG_RETURN_BOOL(spvec_equal(a, b));
}

PG_FUNCTION_INFO_V1(spvec_ne);
/* Different dimension or different entries */
Datum
spvec_ne(PG_FUNCTION_ARGS)
{
	SpVec	   *a = PG_GETARG_SPVEC_P(0);
	SpVec	   *b = PG_GETARG_SPVEC_P(1);

	PG_RETURN_BOOL(!spvec_equal(a, b));
}

/*
 * Total order for btree (sorting, DISTINCT, unique indexes): by dimension,
 * then by the dense values compared position by position.  Returns 0 exactly
 * when spvec_equal() holds.
 */
static int
spvec_compare(const SpVec *a, const SpVec *b)
{
	bool		copied_a;
	bool		copied_b;
	const int32 *ia;
	const int32 *ib;
	int			i = 0;
	int			j = 0;
	int			result = 0;

	if (a->dim != b->dim)
		return a->dim < b->dim ? -1 : 1;

	ia = spvec_indices_view(a, &copied_a);
	ib = spvec_indices_view(b, &copied_b);
	while (result == 0 && (i < a->nnz || j < b->nnz))
	{
		int32		xa = i < a->nnz ? ia[i] : PG_INT32_MAX;
		int32		xb = j < b->nnz ? ib[j] : PG_INT32_MAX;
		float4		va = 0;
		float4		vb = 0;

		if (xa <= xb)
			va = a->values[i++];
		if (xb <= xa)
			vb = b->values[j++];
		if (va != vb)
			result = va < vb ? -1 : 1;
	}

	if (copied_a)
		pfree((void *) ia);
	if (copied_b)
		pfree((void *) ib);
	return result;
}

PG_FUNCTION_INFO_V1(spvec_cmp);
/* btree comparison: -1, 0 or 1 */
Datum
spvec_cmp(PG_FUNCTION_ARGS)
{
	PG_RETURN_INT32(spvec_compare(PG_GETARG_SPVEC_P(0), PG_GETARG_SPVEC_P(1)));
}

PG_FUNCTION_INFO_V1(spvec_lt);
/* Less than in the btree order */
Datum
spvec_lt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(spvec_compare(PG_GETARG_SPVEC_P(0), PG_GETARG_SPVEC_P(1)) < 0);
}

PG_FUNCTION_INFO_V1(spvec_le);
/* Less than or equal in the btree order */
Datum
spvec_le(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(spvec_compare(PG_GETARG_SPVEC_P(0), PG_GETARG_SPVEC_P(1)) <= 0);
}

PG_FUNCTION_INFO_V1(spvec_ge);
/* Greater than or equal in the btree order */
Datum
spvec_ge(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(spvec_compare(PG_GETARG_SPVEC_P(0), PG_GETARG_SPVEC_P(1)) >= 0);
}

PG_FUNCTION_INFO_V1(spvec_gt);
/* Greater than in the btree order */
Datum
spvec_gt(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(spvec_compare(PG_GETARG_SPVEC_P(0), PG_GETARG_SPVEC_P(1)) > 0);
}

PG_FUNCTION_INFO_V1(spvec_hash);
/* Hash of the canonical bytes, for hash joins and hash aggregation */
Datum
spvec_hash(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	return hash_any((const unsigned char *) v + VARHDRSZ, VARSIZE(v) - VARHDRSZ);
}

PG_FUNCTION_INFO_V1(spvec_hash_extended);
/* Seeded 64-bit hash of the canonical bytes */
Datum
spvec_hash_extended(PG_FUNCTION_ARGS)
{
	SpVec	   *v = PG_GETARG_SPVEC_P(0);

	return hash_any_extended((const unsigned char *) v + VARHDRSZ,
							 VARSIZE(v) - VARHDRSZ, PG_GETARG_INT64(1));
}
