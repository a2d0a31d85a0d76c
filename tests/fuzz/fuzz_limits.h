/*
 * fuzz_limits: configuration taken from the fuzzer's input, within the bounds that
 * mxbait.conf accepts (config_key_range() of src/core/config.c).
 *
 * A protocol fuzzer starts its input with a block of FUZZ_LIMIT_BYTES bytes per limit
 * it varies.  Each limit reads two bytes: the top two bits choose the key's default
 * (00: so a block of zeros means "the daemon's defaults"), one of its bounds (01), a
 * power of two, or one less or one more (10: 16384, 4095, ...), or any value across
 * the range (11), and the rest picks which.  Edges and round numbers come up often,
 * which is where limits go wrong (a buffer sized from one limit and filled up to
 * another).  Header-only: each fuzzer includes it once.
 */
#ifndef MXB_TESTS_FUZZ_LIMITS_H
#define MXB_TESTS_FUZZ_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"

#define FUZZ_LIMIT_BYTES 2

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

static inline uint16_t fuzz_u16(struct fuzz_in *in)
{
	uint16_t v = 0;
	for (int i = 0; i < 2; i++) {
		v = (uint16_t)(v << 8);
		if (in->n) {
			v |= *in->p++;
			in->n--;
		}
	}
	return v;
}

/* A value for the numeric config key (bounds from config.c; default dflt). */
static inline uint64_t fuzz_limit(struct fuzz_in *in, const char *key, uint64_t dflt)
{
	uint64_t lo, hi;
	if (config_key_range(key, &lo, &hi) != 0)
		abort(); /* a fuzzer names a key config.c does not have */
	uint16_t v = fuzz_u16(in);
	uint64_t x;
	switch (v >> 14) {
	case 0:
		return dflt;
	case 1:
		return (v & 1) ? hi : lo;
	case 2: {
		unsigned shift = (v & 0x3f) % 63;
		x = (uint64_t)1 << shift;
		unsigned delta = (v >> 6) % 3;
		if (delta == 1)
			x -= 1;
		else if (delta == 2)
			x += 1;
		break;
	}
	default:
		x = lo + (uint64_t)((unsigned __int128)(v & 0x3fff) * (hi - lo) / 0x3fff);
		break;
	}
	return x < lo ? lo : x > hi ? hi : x;
}

#endif
