/*
 * traps: what convicts at once (issue 9 item 4).
 *
 * Trap credentials are every user name and password the honeypot accepted (its
 * cracked and fixed accounts): their use against the real server, from any address,
 * is an attacker replaying what it "learnt".  The real server never shows a password:
 * a Dovecot policy request carries the keyed hash of the pair (guard/pwhash.h), so a
 * request matches a trap when the hash of (its login, a trap password of that user)
 * equals its pwhash.  Trap user names (guard_trap_users: role or non-existent
 * mailboxes) convict on any use.  User names compare in canonical form: lower case,
 * a served domain stripped (alice, Alice and alice@example.com are one user).
 * Bounded: at most TRAPS_MAX credentials (further ones are counted, not kept).
 * Peers' trap hashes (traps_set_peer) are matched by traps_credential too.
 */
#ifndef MXB_GUARD_TRAPS_H
#define MXB_GUARD_TRAPS_H

#include <stdbool.h>
#include <stddef.h>

#define TRAPS_MAX 200000

struct traps;

struct traps *traps_new(const char *const *domains, size_t n_domains,
			const char *const *users, size_t n_users);
void traps_free(struct traps **t);
/* Remember a pair the honeypot accepted (copied).  0, or -1 when full or garbage. */
int traps_add_credential(struct traps *t, const char *username, const char *password);
/* A trap user name (guard_trap_users)? */
bool traps_user(const struct traps *t, const char *username);
/* Does (login, pwhash) match a trap credential, hashed as Dovecot does? */
bool traps_credential(const struct traps *t, const char *login, const char *pwhash,
		      const char *mech, const char *nonce, unsigned truncate_bits);
/* Does (username, password) match one (log lines never have it; tests and the CLI)? */
bool traps_credential_plain(const struct traps *t, const char *username, const char *password);
size_t traps_count(const struct traps *t);

/* Peers' trap credentials (federation, docs/federation.md): never the pairs, only a
 * tag of the canonical user name and the pair's Dovecot hashes under OUR nonce, as a
 * peer computed them for us.  text: "TAG HASH" lines (the reporter's file
 * DATA_DIR/federate/peer-traps); replaces the previous set; bounded by TRAPS_MAX.
 * Returns the number kept. */
size_t traps_set_peer(struct traps *t, const char *text, size_t len);
size_t traps_peer_count(const struct traps *t);
/* The tag of a canonical user name: HMAC-SHA256 keyed with the Dovecot nonce over
 * "mxbait-trap-user" NUL user, first 16 bytes in lowercase hex (33 bytes with NUL). */
void traps_peer_tag(const char *nonce, const char *canonical_user, char tag[33]);
/* Canonical user name into out; -1 when empty, too long or with control bytes. */
int traps_canonical(const struct traps *t, const char *username, char *out, size_t outlen);

#endif
