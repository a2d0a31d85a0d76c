/*
 * pwhash: Dovecot's auth-policy password hash, computed the way Dovecot computes the
 * `pwhash` field of its policy requests (src/auth/auth-policy.c, Dovecot 2.2.27-2.4):
 *
 *   digest = MECH(nonce || username || NUL || password)
 *   truncated to its first TRUNCATE bits (0: the whole digest), right-aligned in
 *   ceil(TRUNCATE/8) bytes (Dovecot's buffer_truncate_rshift_bits), lowercase hex.
 *
 * username is the one Dovecot sends as `login` (%{requested_username}).  With the
 * same nonce, mechanism and truncation as Dovecot's auth_policy_hash_* settings, a
 * user and password the honeypot accepted can be recognised in a request without the
 * real server ever revealing a password.
 */
#ifndef MXB_GUARD_PWHASH_H
#define MXB_GUARD_PWHASH_H

#include <stddef.h>

/* The hex hash into out (>= 129 bytes).  Returns 0, or -1 for an unknown mechanism. */
int pwhash_dovecot(const char *mech, const char *nonce, unsigned truncate_bits,
		   const char *username, const char *password, char *out, size_t outlen);

#endif
