/*
 * auth_policy: the one place that decides whether a username/password works.
 *
 * Every protocol (SMTP AUTH, IMAP LOGIN/AUTHENTICATE, POP3 USER/PASS/AUTH) asks the
 * same policy, so an account looks the same everywhere.  The decision is
 * synchronous and cheap (memory lookups); persistence, if any, is the policy's own
 * business in the background.  Failure delays are not the policy's job: the protocol
 * engine asks its host for a timer.
 *
 * Implementations: auth_static (fixed accounts from the config only: tests, fuzzers)
 * and the deception policy the daemon runs (deception.h: plausible accounts cracked
 * on the fly).
 */
#ifndef MXB_DECEIVE_AUTH_POLICY_H
#define MXB_DECEIVE_AUTH_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_verdict {
	AUTH_OK,
	AUTH_FAIL,     /* wrong credentials */
	AUTH_TEMPFAIL, /* "454 4.7.0 Temporary authentication failure" */
};

struct auth_request {
	const char *proto;     /* "smtp", "submission", "smtps", "imap", ... */
	const char *mechanism; /* "PLAIN", "LOGIN", "CRAM-MD5", "USER" */
	const char *src_ip;
	const char *authzid;   /* may be NULL */
	const char *username;  /* decoded; may contain any byte except NUL */
	/* PLAIN/LOGIN/USER: the password. */
	const char *password;
	/* CRAM-MD5: the challenge we sent and the hex digest the client answered. */
	const char *cram_challenge;
	const char *cram_digest;
};

struct auth_policy {
	enum auth_verdict (*check)(struct auth_policy *p, const struct auth_request *req);
	/* Optional: true when username is an account that logs in now (a fixed account, or
	 * one an attacker cracked): what a stock server's VRFY would confirm. */
	bool (*has_user)(struct auth_policy *p, const char *username);
	/* Optional: an unauthenticated RCPT TO of a served domain accepted this address:
	 * the attack's own enumeration, which makes the name plausible (deception.h). */
	void (*note_recipient)(struct auth_policy *p, const char *address);
	/* Optional: when username came to log in (its crack time; for a fixed account
	 * its first login), microseconds since the epoch; 0 when unknown.  The generated
	 * mailbox dates its messages from it (mailbox.h). */
	int64_t (*account_since_us)(struct auth_policy *p, const char *username);
	void (*destroy)(struct auth_policy *p);
};

static inline enum auth_verdict auth_policy_check(struct auth_policy *p,
						  const struct auth_request *req)
{
	return p ? p->check(p, req) : AUTH_FAIL;
}

static inline bool auth_policy_has_user(struct auth_policy *p, const char *username)
{
	return p && p->has_user && username && p->has_user(p, username);
}
static inline void auth_policy_note_recipient(struct auth_policy *p, const char *address)
{
	if (p && p->note_recipient && address)
		p->note_recipient(p, address);
}

static inline int64_t auth_policy_account_since_us(struct auth_policy *p, const char *username)
{
	return p && p->account_since_us && username ? p->account_since_us(p, username) : 0;
}

/* Fixed accounts: "user:password" strings.  n may be 0 (every attempt fails). */
struct auth_policy *auth_static_new(const char *const *accounts, size_t n);
void auth_policy_free(struct auth_policy **p);

/* HMAC-MD5 of the challenge with the password, hex, as CRAM-MD5 (RFC 2195) expects.
 * out must hold 33 bytes.  Exposed so every policy checks CRAM-MD5 the same way. */
void auth_cram_md5_digest(const char *password, const char *challenge, char out[33]);

#endif
