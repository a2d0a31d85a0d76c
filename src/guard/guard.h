/*
 * guard: protecting the real Postfix + Dovecot (issue 9; docs/deploy.md).
 *
 * The guard sees the real server's logins and recipients live (Dovecot's auth-policy
 * hook, guard/dovecot_policy.h; Postfix's policy service, guard/postfix_policy.h) and
 * the rest in its logs (guard/logwatch.h); it convicts by traps (guard/traps.h) and by
 * windows beyond one IP (guard/detect.h); it is the one owner of the decisions
 * (intel/decision.h): it records each as a `decision` event (the event store keeps
 * the decisions table), answers the policy hooks from them, and has the kernel enforce
 * them through the privileged nft helper (guard/nft.h) when divert is on.
 *
 * Life: guard_new() as root (binds the policy sockets, forks the nft helper, opens
 * nothing else), then the daemon drops privileges, then guard_start() with the event
 * store (loads decisions and trap credentials from mxbait.db, reconciles the kernel's
 * sets, starts the log watch thread and the timers).  Everything else runs on the
 * event loop thread.  Trusted networks (trusted_networks, else loopback and this
 * host's addresses) are never acted on and never answered with anything but allow.
 * Without any guard key configured serve creates no guard at all.
 */
#ifndef MXB_GUARD_GUARD_H
#define MXB_GUARD_GUARD_H

#include <stdbool.h>
#include <stdint.h>

#include "intel/decision.h"
#include "util/netaddr.h"

struct event_base;
struct eventstore;
struct mxb_config;
struct deception_account;
struct guard;

/* Whether the configuration asks for any part of the guard. */
bool guard_configured(const struct mxb_config *cfg);

/* As root, before privileges drop.  NULL with *err_r on error. */
struct guard *guard_new(const struct mxb_config *cfg, struct event_base *base, char **err_r);
/* After the drop: db_path is mxbait.db, data_dir the data directory. */
int guard_start(struct guard *g, struct eventstore *es, const char *db_path,
		const char *data_dir, char **err_r);
/* The deception policy saved an account (its save hook): a cracked or fixed pair is a
 * trap credential from now on. */
void guard_account_saved(struct guard *g, const struct deception_account *a);
/* Stop the log watch and the helper; free. */
void guard_free(struct guard **g);

/* ---- observations (from the hooks and the log watch; loop thread) ---- */

enum guard_answer { GUARD_ALLOW, GUARD_DELAY, GUARD_REJECT };

struct guard_auth_obs {
	const char *origin;    /* dovecot_policy, postfix_log, dovecot_log */
	const char *stage;     /* allow, report, log */
	const char *service;   /* NULL when unknown */
	const char *username;  /* NULL when unknown */
	const char *pwhash;    /* NULL when unknown */
	struct netaddr ip;
	unsigned port;         /* 0: unknown */
	int success;           /* -1 unknown (allow stage), 0, 1 */
	int user_known;        /* -1 unknown, 0 no, 1 yes */
	unsigned count;        /* attempts this stands for (log lines: N attempts); 0 = 1 */
	bool record_only;      /* seen by a live hook already: record, do not count again */
};
/* Record and judge a login attempt; *delay_s_r gets the delay for GUARD_DELAY. */
enum guard_answer guard_auth(struct guard *g, const struct guard_auth_obs *o,
			     unsigned *delay_s_r);

struct guard_rcpt_obs {
	const char *origin;    /* postfix_policy, postfix_log */
	const char *recipient;
	const char *sender;    /* NULL when unknown */
	struct netaddr ip;
	unsigned port;
	int known;             /* -1 not known yet, 0 unknown recipient, 1 known */
	const char *answer;    /* the answer given (guard_rcpt_answer), NULL for log lines */
	bool record_only;      /* seen by a live hook already: record, do not count again */
};
/* Record (and judge) a recipient. */
void guard_rcpt(struct guard *g, const struct guard_rcpt_obs *o);
/* The Postfix policy action for a client now ("DUNNO", "DEFER ...", "REJECT ...",
 * static), and its short name for the event (dunno, defer, reject). */
const char *guard_rcpt_answer(struct guard *g, const struct netaddr *ip, const char **name_r);

/* A log offence (postscreen, smtpd): kind as in the guard_log event. */
void guard_offence(struct guard *g, const struct netaddr *ip, unsigned port, const char *kind,
		   const char *detail, size_t detail_len);

/* ---- operators: `mxbait decisions` (request files) and the web's actions (loop thread) ---- */

enum guard_op { GUARD_OP_ADD, GUARD_OP_DEL, GUARD_OP_ALLOW };

struct guard_request {
	enum guard_op op;
	struct netaddr src;           /* an address or a prefix, exactly */
	enum decision_action action;  /* GUARD_OP_ADD: delay, divert or ban */
	long long duration_ms;        /* 0: the default (decision_duration; allow: until
				       * removed); -1: until removed */
	const char *reason;           /* NULL or "": "manual" */
	const char *by;               /* who asked, for the log line (NULL: "an operator") */
	const char *expect_id;        /* GUARD_OP_DEL: only when the decision in force
				       * about src has this id (NULL: whichever) */
	int64_t now_us;               /* the time of the change (0: now) */
	const char *origin;           /* NULL: "manual"; "peers": federation consensus
				       * (never allows, never a trusted source, never
				       * replaces a local decision) */
};

enum guard_op_result {
	GUARD_OP_DONE,       /* decided (d_r: the new decision) or removed (d_r: the old one) */
	GUARD_OP_UNCHANGED,  /* the same manual decision, or one covering src, is in force
			      * (d_r: it, when found) */
	GUARD_OP_NOT_FOUND,  /* del: no decision in force about exactly src (or not expect_id) */
	GUARD_OP_TRUSTED,    /* trusted_networks covers src: never acted on */
	GUARD_OP_FULL,       /* the table is full (guard_max_keys) */
	GUARD_OP_BAD,        /* no such action */
};

/* Apply an operator's request the way the guard applies its own convictions: recorded
 * (a `decision` event, the decisions table), enforced, and logged with r->by.  The
 * one way decisions change from outside the guard: keeps the guard their one writer. */
enum guard_op_result guard_operator(struct guard *g, const struct guard_request *r,
				    struct decision *d_r);
const char *guard_op_result_name(enum guard_op_result r);

/* Is ip trusted (never acted on)? */
bool guard_trusted(const struct guard *g, const struct netaddr *ip);

#endif
