/*
 * smtp: the ESMTP server engine, a pure state machine.
 *
 * Bytes from the client go in through smtp_session_feed(); replies, events and message
 * bytes come out through the host callbacks.  No sockets, no clocks, no disk inside:
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
	struct auth_policy *auth;           /* credential decisions; NULL: every AUTH fails */
};

/* The peer as the host saw it (true address, never a client-supplied one). */
struct smtp_peer {
	const char *ip;       /* textual address */
	unsigned port;
	const char *rdns;     /* verified reverse name, or NULL ("unknown") */
};

/* What the spool reports when a message is durably stored (or not). */
struct smtp_commit_result {
	bool ok;              /* false: answer 451 4.3.0 / 452 4.3.1 (see no_space) */
	bool no_space;        /* refusal because of the disk budget */
	const char *queue_id; /* Postfix-style short id, e.g. 2DC1A11A199 */
	const char *spool_name;
	const char *sha256;   /* hex */
	uint64_t size;        /* bytes on disk, Received header included */
};

/* Services the host gives the engine.  ctx is passed back to each. */
struct smtp_host_ops {
	/* Queue reply bytes for the client. */
	void (*send)(void *ctx, const char *data, size_t len);
	/* An event (the engine fills the specific fields; the host stamps the common ones
	 * and takes ownership). */
	void (*event)(void *ctx, struct mxb_event *ev);
	/* Start a message file and write its first bytes.  Returns 0, or -1 when the spool
	 * refuses (disk budget: the engine answers 452 4.3.1 Insufficient system storage).
	 * queue_id_r receives the Postfix-style queue id chosen for it (>= 16 bytes). */
	int (*msg_open)(void *ctx, char *queue_id_r, size_t queue_id_len);
	/* Append message bytes (already unstuffed, CRLF line ends).  -1: budget exhausted
	 * or I/O error; the engine keeps reading to the end of DATA, then refuses. */
	int (*msg_write)(void *ctx, const char *data, size_t len);
	/* The message is complete: make it durable.  The engine is suspended until the
	 * host calls smtp_session_committed(). */
	void (*msg_commit)(void *ctx);
	/* Forget the message being written (RSET, disconnect mid-DATA, refusal). */
	void (*msg_abort)(void *ctx);
	/* The engine queued "220 2.0.0 Ready to start TLS" and is suspended.  The host
	 * flushes, DISCARDS every byte the client sent after the STARTTLS line (RFC 3207
	 * plaintext injection), runs the handshake, then calls smtp_session_tls_started()
	 * or, on failure, drops the connection. */
	void (*starttls)(void *ctx);
	/* Suspend input for ms milliseconds (error sleep, auth failure delay), then call
	 * smtp_session_resume(). */
	void (*wait)(void *ctx, unsigned ms);
	/* Close after the queued replies are flushed.  reason is an event-friendly word:
	 * "quit", "too_many_errors", "command_limit", "protocol", ... */
	void (*close)(void *ctx, const char *reason);
	/* Optional (may be NULL): the wall clock in microseconds since the epoch, for the
	 * Received header date.  NULL: the engine reads the system clock.  Tests and
	 * fuzzers set it to get reproducible message bytes. */
	int64_t (*now_us)(void *ctx);
};

struct smtp_session;

/* Create a session and queue the 220 banner.  tls_active: implicit TLS (465), in which
 * case the host gives the TLS facts with smtp_session_tls_started() before feeding. */
struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
				      const struct smtp_peer *peer, bool tls_active,
				      const struct smtp_host_ops *ops, void *ctx);
void smtp_session_free(struct smtp_session **s);

/* Banner: queued by smtp_session_start() so an implicit-TLS host can call it after the
 * handshake. */
void smtp_session_start(struct smtp_session *s);

/* Feed client bytes; returns the number consumed (< len when the engine suspended). */
size_t smtp_session_feed(struct smtp_session *s, const char *data, size_t len);

/* Resume after wait(). */
void smtp_session_resume(struct smtp_session *s);
/* Resume after msg_commit(). */
void smtp_session_committed(struct smtp_session *s, const struct smtp_commit_result *r);
/* Resume after starttls(): the handshake succeeded. */
void smtp_session_tls_started(struct smtp_session *s, const char *version,
			      const char *cipher, int bits);
/* The client went away or timed out (the engine aborts a message in progress and
 * records what it was doing); no reply is queued except for "timeout", where Postfix
 * says "421 4.4.2 <host> Error: timeout exceeded". */
void smtp_session_hangup(struct smtp_session *s, const char *reason);

/* What the session is doing, for the host's disconnect event. */
const char *smtp_session_state_name(const struct smtp_session *s);
/* Counters for the host's disconnect event. */
struct smtp_counters {
	unsigned commands;  /* command lines received */
	unsigned errors;    /* 4xx/5xx replies sent (Postfix's error count) */
	unsigned messages;  /* messages captured */
};
void smtp_session_counters(const struct smtp_session *s, struct smtp_counters *c_r);
/* Authenticated user, or NULL. */
const char *smtp_session_auth_user(const struct smtp_session *s);

#endif
