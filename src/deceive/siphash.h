/*
 * siphash: SipHash-2-4 (Aumasson and Bernstein, 2012), the keyed 64-bit hash for hash
 * tables whose keys an attacker chooses.
 *
 * With a secret 128-bit key, an attacker who does not know the key cannot pick
 * user names that all land in the same slots (hash flooding), which an unseeded hash
 * such as FNV allows in seconds.  Pure function, no allocation; checked against the
 * reference test vectors of the paper (tests/unit/test_deception.c).
 */
#ifndef MXB_DECEIVE_SIPHASH_H
#define MXB_DECEIVE_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 of in[0..len) under key (16 bytes), as the reference implementation's
 * 64-bit output read little-endian. */
uint64_t siphash24(const uint8_t key[16], const void *in, size_t len);

#endif
