/*
 * feed-verify: how fast a subscriber checks a peer's feed (docs/federation.md).
 * Built and run by bench/feed-verify.sh against the build's lib_federate_pure.
 *
 * Writes one segment of N entries (ip, url, domain and campaign entries with their
 * MinHash, as a sensor publishes them), then: signs it (the publisher's cost), and
 * verifies and parses it R times with a callback per entry (what `mxbait report`
 * does before importing), and verifies the signature alone.  Prints entries/s and
 * MB/s of each.  CPU time of this process (getrusage), not wall time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <sodium.h>

#include "federate/feed.h"

static double cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int count(void *ctx, const struct fed_entry *e)
{
	(void)e;
	(*(long *)ctx)++;
	return 0;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 20000;
	int rounds = argc > 2 ? atoi(argv[2]) : 20;
	if (sodium_init() < 0 || n < 1 || n > FEED_ENTRIES_MAX)
		return 1;
	struct fed_key k = {.has_secret = true};
	crypto_sign_keypair(k.pk, k.sk);
	fed_key_id(k.pk, k.id);
	double t0 = cpu();
	struct fed_writer *w = fed_writer_new(&k, 1, "0000000000000000000000000000000000000000000000000000000000000000", 1);
	struct fed_entry *e = calloc(1, sizeof(*e));
	for (long i = 0; i < n; i++) {
		memset(e, 0, sizeof(*e));
		e->expires_us = 1800000000000000LL;
		e->first_us = e->last_us = 1796000000000000LL + i;
		e->confidence = 60 + (int)(i % 40);
		switch (i % 10) {
		case 0: case 1: case 2: case 3: case 4: case 5:
			e->kind = FK_IP;
			snprintf(e->value, sizeof(e->value), "198.%ld.%ld.%ld", (i >> 16) & 255,
				 (i >> 8) & 255, i & 255);
			strcpy(e->flags, "guessing enumeration");
			e->guesses = i % 500;
			break;
		case 6: case 7:
			e->kind = FK_URL;
			snprintf(e->value, sizeof(e->value), "http://phish-%ld.example/login/verify?id=%ld",
				 i, i * 7);
			break;
		case 8:
			e->kind = FK_DOMAIN;
			snprintf(e->value, sizeof(e->value), "spam-%ld.example", i);
			break;
		default:
			e->kind = FK_CAMPAIGN;
			snprintf(e->value, sizeof(e->value), "C%012lx", i);
			e->has_minhash = true;
			for (int b = 0; b < FEED_MINHASH_BYTES; b++)
				e->minhash[b] = (uint8_t)(b * 31 + i);
		}
		if (fed_writer_add(w, e) != 0) {
			fprintf(stderr, "feed-verify: entry %ld refused (segment full?)\n", i);
			return 1;
		}
	}
	free(e);
	size_t len;
	char hash[FEED_HASH_HEX];
	char *seg = fed_writer_finish(&w, &len, hash);
	double t_write = cpu() - t0;
	long seen = 0;
	t0 = cpu();
	for (int r = 0; r < rounds; r++) {
		struct fed_segment_header h;
		if (fed_segment_parse(k.pk, seg, len, &h, count, &seen, NULL) != FED_OK)
			return 1;
	}
	double t_parse = cpu() - t0;
	t0 = cpu();
	const char *sig = strstr(seg, "\nsig:") + 1;
	for (int r = 0; r < rounds * 10; r++) {
		uint8_t s[64];
		size_t got;
		sodium_base642bin(s, 64, sig + 4, 88, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL);
		if (crypto_sign_verify_detached(s, (const unsigned char *)seg, (size_t)(sig - seg), k.pk))
			return 1;
	}
	double t_sig = (cpu() - t0) / 10;
	printf("segment: %ld entries, %.2f MB\n", n, len / 1e6);
	printf("write + sign:            %8.0f entries/s (%.3f s CPU)\n", n / t_write, t_write);
	printf("verify + parse + check:  %8.0f entries/s, %.1f MB/s (%d rounds, %.3f s CPU)\n",
	       seen / t_parse, rounds * len / 1e6 / t_parse, rounds, t_parse);
	printf("signature alone:         %8.0f entries/s, %.1f MB/s\n", n * rounds / t_sig,
	       rounds * len / 1e6 / t_sig);
	free(seg);
	return 0;
}
