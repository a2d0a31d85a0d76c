/*
 * sasl: decoders for the SASL mechanisms the honeypot speaks (PLAIN, LOGIN, CRAM-MD5).
 *
 * Pure functions over attacker bytes: strict base64 (RFC 4648 alphabet, padding only
 * at the end, the same character check as Postfix's Dovecot client), the RFC 4616
 * PLAIN split (authzid NUL authcid NUL passwd; any other byte allowed), and the
 * RFC 2195 CRAM-MD5 answer split.  Outputs are slices of caller buffers; nothing
 * allocates, and every output is bounded by the caller's capacity.  And the one rule
 * every protocol applies to decoded credentials before asking the policy
 * (sasl_cred_take).
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

/*
 * The one credential rule of SMTP AUTH, IMAP LOGIN/AUTHENTICATE and POP3 USER/PASS/AUTH
 * (docs/persona.md, "Credentials"): a user name, password or authorization identity
 * that holds a NUL byte, or is longer than SASL_CRED_MAX bytes, is never shown to the
 * credential policy and never truncated into something the client did not send: the
 * attempt fails exactly as a wrong password does (same reply, same failure delay) and
 * its auth event says result "malformed", with every byte the client sent.
 */
#define SASL_CRED_MAX 8192

/* NUL-terminated copies of the fields, for the policy (auth_request). */
struct sasl_cred {
	char *user;
	char *pass;    /* NULL when no password was given (CRAM-MD5) */
	char *authzid; /* NULL when absent or empty */
};

/* Apply the rule: true and *c filled (free with sasl_cred_free), or false when the
 * credential is refused (or memory ran out) and *c holds nothing.  pass and authzid may
 * be NULL. */
bool sasl_cred_take(const struct sasl_slice *authzid, const struct sasl_slice *user,
		    const struct sasl_slice *pass, struct sasl_cred *c);
void sasl_cred_free(struct sasl_cred *c);

#endif
