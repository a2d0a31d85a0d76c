/*
 * sasl: decoders for the SASL mechanisms the honeypot speaks (PLAIN, LOGIN, CRAM-MD5).
 *
 * Pure functions over attacker bytes: strict base64 (RFC 4648 alphabet, padding only
 * at the end, the same character check as Postfix's Dovecot client), the RFC 4616
 * PLAIN split (authzid NUL authcid NUL passwd; any other byte allowed), and the
 * RFC 2195 CRAM-MD5 answer split.  Outputs are slices of caller buffers; nothing
 * allocates, and every output is bounded by the caller's capacity.
 */
#ifndef MXB_PROTO_SASL_H
#define MXB_PROTO_SASL_H

#include <stdbool.h>
#include <stddef.h>

/* Decode base64.  "=" alone (RFC 4954's empty response) decodes to nothing.
 * Returns 0, or -1 for bad characters, bad padding or a result over outcap. */
int sasl_b64_decode(const char *in, size_t inlen, unsigned char *out, size_t outcap,
		    size_t *outlen_r);
/* Encode base64 with padding; out needs 4 * ((inlen + 2) / 3) + 1 bytes. */
size_t sasl_b64_encode(const unsigned char *in, size_t inlen, char *out);

struct sasl_slice {
	const char *p;
	size_t len;
};

/* RFC 4616: message = [authzid] NUL authcid NUL passwd.  false unless there are
 * exactly two NULs. */
bool sasl_plain_split(const unsigned char *msg, size_t len, struct sasl_slice *authzid_r,
		      struct sasl_slice *authcid_r, struct sasl_slice *passwd_r);

/* RFC 2195: "username SP digest"; the digest is 32 lowercase hex digits. */
bool sasl_cram_split(const unsigned char *msg, size_t len, struct sasl_slice *user_r,
		     struct sasl_slice *digest_r);

#endif
