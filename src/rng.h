/*
 * rng.h - small deterministic pseudo-random generators
 *
 * Training must give identical results for the same seed on one machine, so
 * every random choice (initial masks, shuffles, negatives, regrowth ties)
 * draws from an explicitly seeded xoshiro256** stream, never from random().
 */
#ifndef DSL_RNG_H
#define DSL_RNG_H

#include <math.h>
#include <stdint.h>

typedef struct DslRng
{
	uint64_t	s[4];
} DslRng;

/* splitmix64: seeds the streams and serves as a stateless 64-bit mixer */
static inline uint64_t
dsl_mix64(uint64_t x)
{
	x += UINT64_C(0x9E3779B97F4A7C15);
	x = (x ^ (x >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94D049BB133111EB);
	return x ^ (x >> 31);
}

/* seed a stream from (seed, stream id) so independent uses never overlap */
static inline void
dsl_rng_seed(DslRng *r, uint64_t seed, uint64_t stream)
{
	uint64_t	x = dsl_mix64(seed ^ dsl_mix64(stream + 0x51ED27));

	for (int i = 0; i < 4; i++)
	{
		x = dsl_mix64(x);
		r->s[i] = x;
	}
}

static inline uint64_t
dsl_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t
dsl_rng_next(DslRng *r)
{
	uint64_t   *s = r->s;
	uint64_t	result = dsl_rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = dsl_rotl(s[3], 45);
	return result;
}

/* uniform integer in [0, n), n >= 1 (Lemire's multiply-shift, unbiased) */
static inline uint64_t
dsl_rng_below(DslRng *r, uint64_t n)
{
	uint64_t	x = dsl_rng_next(r);
	__uint128_t m = (__uint128_t) x * n;
	uint64_t	l = (uint64_t) m;

	if (l < n)
	{
		uint64_t	t = -n % n;

		while (l < t)
		{
			x = dsl_rng_next(r);
			m = (__uint128_t) x * n;
			l = (uint64_t) m;
		}
	}
	return (uint64_t) (m >> 64);
}

/* uniform float in [0, 1) with 24 random bits */
static inline float
dsl_rng_uniform(DslRng *r)
{
	return (float) (dsl_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* standard normal (Box-Muller; one of the pair is discarded for simplicity) */
static inline double
dsl_rng_normal(DslRng *r)
{
	double		u1 = ((double) (dsl_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
	double		u2 = (double) (dsl_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);

	return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

#endif							/* DSL_RNG_H */
