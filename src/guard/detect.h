/*
 * detect: the guard's detection windows, beyond one IP (issue 9 item 3).
 *
 * Observations (a failed or successful login, an unknown recipient, a log offence)
 * go into sliding windows keyed by what the attacker cannot rotate: the user name,
 * the user+password pair (Dovecot's keyed hash), the /24 or /64, the target domain;
 * and by the source address.  When a window reaches its threshold the detector
 * convicts *every* source seen in it (a rotating pool is caught whole), with the ids
 * of the observations as evidence.  Rules and defaults (docs/configuration.md):
 *
 *   user_spray        one user name failing from >= user_min_ips addresses: divert all
 *                     (addresses that logged in as that user are left alone)
 *   credential_reuse  one user+password pair failing from >= pair_min_ips addresses:
 *                     divert all; for a user known to exist, delay (a roaming phone
 *                     with a stale password)
 *   ip_failures       >= ip_failures distinct failed pairs from one address for users
 *                     not known to exist: divert
 *   known_user_failures >= known_user_failures distinct failures for one existing
 *                     user from one address: delay (the user is protected, not punished)
 *   prefix_failures   >= prefix_min_ips failing addresses in one /24 or /64: divert
 *                     the prefix
 *   recipient_enumeration >= ip_unknown_rcpts unknown recipients from one address
 *   domain_enumeration    >= domain_unknown_rcpts unknown recipients of one domain
 *                     from >= 2 addresses: divert every address seen
 *   log_offences      >= ip_failures offences (postscreen, smtpd) from one address
 *
 * A repeated identical wrong password from one address counts once (as Dovecot's
 * penalty does), so a client retrying a stale password is not escalated.  Bounded:
 * at most max_keys windows (stale ones are swept; beyond that new keys are not
 * tracked and counted in dropped), each holding at most its threshold of entries.
 * Pure: no I/O, the caller passes the time.
 */
#ifndef MXB_GUARD_DETECT_H
#define MXB_GUARD_DETECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "intel/decision.h"
#include "util/netaddr.h"

struct detect_config {
	uint64_t window_ms;
	unsigned user_min_ips, pair_min_ips, ip_failures, known_user_failures, prefix_min_ips;
	unsigned ip_unknown_rcpts, domain_unknown_rcpts;
	size_t max_keys;
};

struct conviction {
	struct netaddr src;
	enum decision_action action;
	const char *reason; /* static string */
	char evidence[DECISION_EVIDENCE_MAX][DECISION_ID_LEN];
	size_t n_evidence;
};

struct convictions {
	struct conviction *v;
	size_t n, alloc;
};
void convictions_reset(struct convictions *c);
void convictions_free(struct convictions *c);

struct detect_auth {
	struct netaddr ip;
	const char *id;        /* observation id (16 hex) */
	const char *username;  /* NULL when unknown */
	const char *pwhash;    /* NULL when unknown (log lines) */
	bool success;
	int user_known;        /* 1 exists, 0 does not, -1 not known (the detector's own
				* knowledge of successful logins is added) */
};

struct detect;

struct detect *detect_new(const struct detect_config *cfg);
void detect_free(struct detect **d);

/* One authentication outcome.  Convictions are appended to out. */
void detect_auth(struct detect *d, const struct detect_auth *a, int64_t now_us,
		 struct convictions *out);
/* An unknown recipient (domain: the recipient's domain, may be NULL). */
void detect_rcpt_unknown(struct detect *d, const struct netaddr *ip, const char *id,
			 const char *domain, int64_t now_us, struct convictions *out);
/* A protocol offence seen in the logs. */
void detect_offence(struct detect *d, const struct netaddr *ip, const char *id,
		    int64_t now_us, struct convictions *out);
/* Whether username logged in successfully before (1) or not known (-1). */
int detect_user_known(const struct detect *d, const char *username);
/* Forget windows with nothing newer than the window.  Returns windows left. */
size_t detect_sweep(struct detect *d, int64_t now_us);
/* Observations not tracked because the key bound was reached. */
uint64_t detect_dropped(const struct detect *d);

#endif
