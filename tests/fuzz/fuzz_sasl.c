/*
 * libFuzzer target: SASL base64, the PLAIN / CRAM-MD5 message splits and the one
 * credential rule (sasl_cred_take).
 *
 * Input: first a limit (fuzz_limits.h): line_length_limit, within mxbait.conf's
 * bounds, which sets how long a SASL line may be as the SMTP engine sets it (the
 * larger of it and 12,288); the rest is the line, decoded as base64 and also split
 * as a decoded message.  The checks catch a decoder that does not round-trip, splits
 * that lose bytes, and a credential rule that takes a NUL or more than SASL_CRED_MAX
 * bytes, or copies something other than what it was given.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_limits.h"
#include "proto/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* What the rule must decide for one field. */
static int field_ok(const struct sasl_slice *f)
{
	return f->len <= SASL_CRED_MAX && (!f->len || !memchr(f->p, 0, f->len));
}

static void check_rule(const struct sasl_slice *z, const struct sasl_slice *u,
		       const struct sasl_slice *p)
{
	struct sasl_cred c;
	int want = field_ok(u) && (!p || field_ok(p)) && (!z || field_ok(z));
	int got = sasl_cred_take(z, u, p, &c);
	if (got != want)
		__builtin_trap();
	if (!got)
		return;
	if (strlen(c.user) != u->len || memcmp(c.user, u->p, u->len) != 0)
		__builtin_trap();
	if (p && (strlen(c.pass) != p->len || memcmp(c.pass, p->p, p->len) != 0))
		__builtin_trap();
	if (z && z->len && (strlen(c.authzid) != z->len || memcmp(c.authzid, z->p, z->len)))
		__builtin_trap();
	sasl_cred_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	size_t line = (size_t)fuzz_limit(&in, "line_length_limit", 2048);
	size_t cap = line > 12288 ? line : 12288; /* smtp.c: the SASL line bound */
	data = in.p;
	size = in.n < cap ? in.n : cap;
	size_t outcap = size / 4 * 3 + 3;
	unsigned char *out = malloc(outcap), *back = malloc(outcap);
	char *enc = malloc(4 * (outcap / 3 + 1) + 1);
	size_t n;
	if (out && back && enc &&
	    sasl_b64_decode((const char *)data, size, out, outcap, &n) == 0) {
		/* What decodes re-encodes and decodes to the same bytes. */
		size_t el = sasl_b64_encode(out, n, enc);
		size_t bn;
		if (sasl_b64_decode(enc, el, back, outcap, &bn) != 0 || bn != n ||
		    memcmp(out, back, n) != 0)
			__builtin_trap();
		/* a LOGIN answer is one field: user name or password */
		struct sasl_slice one = {(const char *)out, n}, user = {"u", 1};
		check_rule(NULL, &user, &one);
		check_rule(NULL, &one, NULL);
	}
	free(out);
	free(back);
	free(enc);
	struct sasl_slice z, u, p, d;
	if (sasl_plain_split(data, size, &z, &u, &p)) {
		if (z.len + u.len + p.len + 2 != size)
			__builtin_trap();
		check_rule(&z, &u, &p);
	}
	if (sasl_cram_split(data, size, &u, &d)) {
		if (d.len != 32 || u.len + 33 != size)
			__builtin_trap();
		check_rule(NULL, &u, NULL);
	}
	return 0;
}
