/*
 * smtp: the ESMTP server engine, a pure state machine.
 *
 * Bytes from the client go in through smtp_session_feed(); replies, events and message
 * bytes come out through the host callbacks of proto.h (struct proto_host_ops; what
 * each one means is said there and in session.h).  No sockets, no clocks, no disk inside:
 * the host (src/core/conn.c in the daemon, a fake in tests and fuzzers) owns those.
 * That is what makes every verb unit-testable and the whole engine fuzzable.
 *
 * Flow control: smtp_session_feed() consumes what it can and returns how many bytes it
 * took.  When the engine must wait (message commit, error sleep, auth failure delay,
 * STARTTLS, close) it stops consuming and says why through a host callback; the host
 * keeps the unconsumed bytes and feeds them again after it calls the matching
 * smtp_session_*() resume function.  All replies queued during one feed or resume call
 * belong to one pipelined group: the host writes them with a single write.
 *
 * Persona: every reply text, keyword order and limit behaviour is that of a stock
 * Debian 12 Postfix 3.7 (see docs/persona.md for the deliberate differences).
 */
#ifndef MXB_PROTO_SMTP_H
#define MXB_PROTO_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct mxb_event;
struct auth_policy;

enum smtp_role {
	SMTP_ROLE_MX,         /* port 25: no AUTH by default, STARTTLS offered */
	SMTP_ROLE_SUBMISSION, /* port 587: AUTH only after STARTTLS; MAIL needs TLS */
	SMTP_ROLE_SMTPS,      /* port 465: implicit TLS, AUTH offered */
};

/* Per-listener settings, read-only, owned by the caller and outliving the session. */
struct smtp_config {
	const char *hostname;               /* banner, EHLO, Received, 421 texts */
	const char *const *local_domains;   /* RCPT domains accepted (case-insensitive) */
	size_t n_local_domains;
	bool catch_all;                     /* accept RCPT for every domain, unauthenticated */
	enum smtp_role role;
	bool tls_available;                 /* STARTTLS may be offered (a cert is loaded) */
	bool vrfy_enabled;                  /* false: "502 5.5.1 VRFY command is disabled" */
	bool auth_on_mx;                    /* offer AUTH on the MX role too */
	bool cram_md5;                      /* offer CRAM-MD5 besides PLAIN and LOGIN */
	size_t line_length_limit;           /* Postfix line_length_limit, 2048 */
	uint64_t message_size_limit;        /* Postfix message_size_limit, 10240000 */
	unsigned recipient_limit;           /* smtpd_recipient_limit, 1000 */
	unsigned command_limit;             /* commands per session, then 421 and close */
	unsigned soft_error_limit;          /* smtpd_soft_error_limit, 10 */
	unsigned hard_error_limit;          /* smtpd_hard_error_limit, 20 */
	unsigned error_sleep_ms;            /* smtpd_error_sleep_time, 1 s */
	unsigned auth_failure_delay_ms;     /* delay before a failed AUTH answer */
	bool auth_failure_jitter;           /* ... timed as Dovecot's (session_failure_delay) */
	struct auth_policy *auth;           /* credential decisions; NULL: every AUTH fails */
};

struct smtp_session;

/* Create a session and queue the 220 banner.  tls_active: implicit TLS (465), in which
 * case the host gives the TLS facts with smtp_session_tls_started() before feeding. */
struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx);
void smtp_session_free(struct smtp_session **s);

/* Banner: queued by smtp_session_start() so an implicit-TLS host can call it after the
 * handshake. */
void smtp_session_start(struct smtp_session *s);

/* Feed client bytes; returns the number consumed (< len when the engine suspended). */
size_t smtp_session_feed(struct smtp_session *s, const char *data, size_t len);

/* Resume after wait(). */
void smtp_session_resume(struct smtp_session *s);
/* Resume after msg_commit(). */
void smtp_session_committed(struct smtp_session *s, const struct proto_commit_result *r);
/* Resume after starttls(): the handshake succeeded. */
void smtp_session_tls_started(struct smtp_session *s, const char *version,
			      const char *cipher, int bits);
/* The client went away or timed out (the engine aborts a message in progress and
 * records what it was doing); no reply is queued except for "timeout", where Postfix
 * says "421 4.4.2 <host> Error: timeout exceeded". */
void smtp_session_hangup(struct smtp_session *s, const char *reason);

/* What the session is doing, for the host's disconnect event. */
const char *smtp_session_state_name(const struct smtp_session *s);
/* Counters for the host's disconnect event: command lines received, 4xx/5xx replies
 * sent (Postfix's error count), messages captured. */
void smtp_session_counters(const struct smtp_session *s, struct proto_counters *c_r);
/* Authenticated user, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);

/* The engine for a connection host (proto.h); cfg is a struct smtp_config. */
extern const struct proto_engine smtp_engine;

#endif
