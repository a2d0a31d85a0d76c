/* fuzz_feed: the feed parser (federate/feed.h) on any bytes.
 *
 * A fuzzer cannot forge Ed25519 signatures, so most inputs are signed here with a
 * fixed test key before they are parsed: that is what lets it reach the JSON and
 * value checks behind the signature (the first byte chooses: segment or manifest,
 * signed or as is).  Checks: the parser never reads outside its input, every entry
 * it hands out passes the same checks the writer applies (fed_value_ok on its value,
 * bounded strings), and a document that parsed re-parses identically. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "federate/feed.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t pk[32], sk[64];
static int ready;

static int check_entry(void *ctx, const struct fed_entry *e)
{
	size_t *n = ctx;
	if (e->kind >= FK_COUNT || strlen(e->value) > FEED_VALUE_MAX ||
	    !fed_value_ok(e->kind, e->value, strlen(e->value)) || strlen(e->flags) > FEED_FLAGS_MAX ||
	    e->confidence < 0 || e->confidence > 100)
		abort();
	(*n)++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready) {
		if (sodium_init() < 0)
			abort();
		uint8_t seed[32];
		memset(seed, 7, sizeof(seed));
		crypto_sign_seed_keypair(pk, sk, seed);
		ready = 1;
	}
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	char *doc = malloc(size + 200);
	memcpy(doc, data, size);
	size_t len = size;
	if (mode & 1) {
		/* sign the input as the publisher would */
		uint8_t sig[crypto_sign_BYTES];
		crypto_sign_detached(sig, NULL, (const unsigned char *)doc, len, sk);
		char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
		sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
		memcpy(doc + len, "sig:", 4);
		memcpy(doc + len + 4, b64, 88);
		doc[len + 92] = '\n';
		len += 93;
	}
	if (mode & 2) {
		struct fed_manifest *m = malloc(sizeof(*m));
		const char *why = NULL;
		if (fed_manifest_parse(pk, doc, len, m, &why) == FED_OK) {
			if (m->n_profiles > FEED_PROFILES_MAX || m->oldest > m->head)
				abort();
		}
		free(m);
	} else {
		struct fed_segment_header h;
		size_t n1 = 0, n2 = 0;
		const char *why = NULL;
		int rc = fed_segment_parse(pk, doc, len, &h, check_entry, &n1, &why);
		if (rc == FED_OK) {
			if (n1 != h.count || fed_segment_parse(pk, doc, len, &h, check_entry, &n2, &why) != FED_OK ||
			    n2 != n1)
				abort();
		} else if (n1 != 0) {
			abort(); /* nothing is handed out of a refused segment */
		}
	}
	free(doc);
	return 0;
}
