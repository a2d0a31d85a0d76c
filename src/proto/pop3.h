/*
 * pop3: the POP3 engine (RFC 1939, CAPA RFC 2449, STLS RFC 2595, AUTH RFC 5034) with
 * the persona of a stock Debian 12 Dovecot 2.3 (pop3-login, then the pop3 process).
 *
 * Pure state machine on the proto.h contract: bytes in through pop3_session_feed(),
 * replies, events and host requests (wait, STLS, close) out through struct
 * proto_host_ops.  It never sees a socket and never sleeps: a failed login is
 * answered after ops->wait(auth_failure_delay_ms) and resume().
 *
 * Credentials go through the shared auth_policy (proto "pop3" or "pop3s", mechanism
 * "USER", "PLAIN" or "LOGIN"), one `auth` event per attempt.  A logged-in user sees
 * the INBOX of mailbox_generate(canonical username, domain, hostname, secret): the
 * same messages IMAP shows.  DELE marks messages for this session only; QUIT's UPDATE
 * state deletes nothing that another session would miss.
 *
 * Everything an attacker controls is bounded: command lines (pre-login
 * line_length_limit, 8192 for SASL, 4096 after login; over-long is answered like
 * Dovecot and the connection closed), consecutive bad commands, commands per session.
 * After STLS's "+OK Begin TLS negotiation now." the engine consumes nothing more;
 * after tls_started it holds no buffered input (RFC 2595 injection: the host throws
 * away whatever arrived before the handshake).
 */
#ifndef MXB_PROTO_POP3_H
#define MXB_PROTO_POP3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct auth_policy;

struct pop3_config {
	const char *hostname;            /* Received headers of the generated mail */
	const char *domain;              /* the user's domain in the generated mail */
	bool implicit_tls;               /* 995: TLS from the first byte; proto "pop3s" */
	bool tls_available;              /* STLS offered on 110 (a certificate is loaded) */
	bool allow_plaintext;            /* Dovecot disable_plaintext_auth=no (or a
					  * "secured" peer): USER/PLAIN/LOGIN without TLS */
	struct auth_policy *auth;        /* NULL: every login fails */
	const uint8_t *secret;           /* 32 bytes, mailbox generation; NULL: zeros */
	/* Canonical username for the mailbox (deception_canonical with the policy);
	 * NULL: lower case, "@domain" stripped.  Returns -1 for garbage. */
	int (*canonical)(const struct auth_policy *p, const char *username, char *out,
			 size_t outlen);
	size_t line_length_limit;        /* pre-login command line; 0: 1024 (Dovecot) */
	unsigned bad_command_limit;      /* consecutive bad commands before login; 0: 3 */
	unsigned bad_command_limit_auth; /* consecutive bad commands after login; 0: 20 */
	unsigned command_limit;          /* commands per session; 0: no limit */
	unsigned auth_failure_delay_ms;  /* Dovecot auth_failure_delay (2 s) */
	bool auth_failure_jitter;        /* ... timed as Dovecot's (session_failure_delay) */
	bool login_latency;              /* greeting after Dovecot's login-process latency */
	unsigned max_userip;             /* mail_max_userip_connections (10); 0: none */
	bool auth_penalty;               /* Dovecot's growing auth penalty, per session:
					  * 4, 8, 15 s before the 2nd, 3rd, 4th+ attempt */
};

struct pop3_session;

struct pop3_session *pop3_session_new(const struct pop3_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx);
void pop3_session_free(struct pop3_session **s);
/* Greeting: "+OK Dovecot (Debian) ready." */
void pop3_session_start(struct pop3_session *s);
/* Feed client bytes; returns how many were consumed (< len when suspended). */
size_t pop3_session_feed(struct pop3_session *s, const char *data, size_t len);
/* After ops->wait(). */
void pop3_session_resume(struct pop3_session *s);
/* After ops->starttls(): the handshake succeeded. */
void pop3_session_tls_started(struct pop3_session *s, const char *version,
			      const char *cipher, int bits);
/* The client went away (or the host gives up): no UPDATE state, nothing sent. */
void pop3_session_hangup(struct pop3_session *s, const char *reason);

/* "authorization", "auth" (SASL exchange), "transaction", "starttls", "wait",
 * "closed". */
const char *pop3_session_state_name(const struct pop3_session *s);
void pop3_session_counters(const struct pop3_session *s, struct proto_counters *c_r);
/* Canonical user once logged in, else NULL. */
const char *pop3_session_auth_user(const struct pop3_session *s);

/* The engine for struct proto_engine hosts; cfg is a struct pop3_config. */
extern const struct proto_engine pop3_engine;

#endif
