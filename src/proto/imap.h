/*
 * imap: the IMAP4rev1 server engine (RFC 3501 + the extensions Dovecot 2.3 advertises
 * that a client may rely on: IDLE, NAMESPACE, ID, UIDPLUS, LITERAL+, ENABLE, SASL-IR,
 * UNSELECT, MOVE, SPECIAL-USE, and the common forms of ESEARCH, SORT and THREAD), a pure
 * state machine like the SMTP engine.
 *
 * Bytes from the client go in through imap_session_feed(); replies, events and the
 * bytes of APPENDed messages come out through the host callbacks of proto.h.  No
 * sockets, no clocks (ops->now_us), no disk inside.  The engine suspends (stops
 * consuming input) for the failed-login delay (ops->wait), an APPEND being made
 * durable (ops->msg_commit until imap_session_committed()), STARTTLS (ops->starttls
 * until imap_session_tls_started()) and close; the host feeds the rest afterwards.
 *
 * Persona: a stock Debian 12 Dovecot 2.3.19 (imap-login before authentication, imap
 * after), byte for byte as recorded in shared/persona/transcripts/imap*.txt; the
 * deliberate differences are listed in docs/persona.md.  A cracked account sees the
 * generated mailbox of deceive/mailbox.h; changes live only as long as the session.
 *
 * Bounds: command lines (line_length_limit; 8192 before login as imap-login), literals
 * (line_length_limit for ordinary arguments, literal_max for an APPEND message),
 * argument count and nesting (imap_parse.h), bad commands (3 before login, as
 * imap-login; bad_command_limit in a row after it); output goes to the host as it
 * grows (every 256 KiB) and one FETCH produces at most about 64 MiB.  An idle session
 * holds about a kilobyte: the parsed command and big buffers exist only while used.
 *
 * Memory an authenticated client can make the session hold is charged, before it is
 * allocated, to session_memory and to the daemon-wide budget `memory`: an APPEND
 * literal while it is received and parsed (twice its announced size), and what the
 * session's mailbox holds beyond the generated one (APPENDed messages, and an entry
 * cost per message APPENDed or copied: COPY and MOVE share the bytes).  Over either,
 * the APPEND or COPY is answered NO [OVERQUOTA] as a full Dovecot mailbox is: a
 * synchronizing literal before "+ OK" (the client never sends it), a LITERAL+ one after
 * its bytes were read and dropped; an APPEND refused so is recorded as
 * message_rejected with reason "quota".
 */
#ifndef MXB_PROTO_IMAP_H
#define MXB_PROTO_IMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

struct auth_policy;
struct budget;

/* Per-listener settings, read-only, owned by the caller and outliving the session.
 * Zero values mean the documented default. */
struct imap_config {
	const char *hostname;           /* the server's name (mailbox generation) */
	const char *domain;             /* the served mail domain (addresses, canonical user) */
	bool implicit_tls;              /* port 993: no STARTTLS, no LOGINDISABLED */
	bool tls_available;             /* STARTTLS may be offered (a cert is loaded) */
	struct auth_policy *auth;       /* credential decisions; NULL: every login fails */
	const uint8_t *secret;          /* 32 bytes for mailbox_generate (NULL: zeros) */
	size_t line_length_limit;       /* imap_max_line_length, 65536 */
	size_t literal_max;             /* largest APPEND message, 10 MiB */
	size_t session_memory;          /* bytes one session may hold for the client (see
					 * above), 32 MiB */
	struct budget *memory;          /* the same for all sessions together (mutable,
					 * owned by the host); NULL: no daemon-wide bound */
	unsigned bad_command_limit;     /* after login, BAD replies in a row: 20 */
	unsigned auth_failure_delay_ms; /* auth_failure_delay, 2000 */
	bool auth_failure_jitter;       /* ... timed as Dovecot's (session_failure_delay) */
	bool login_latency;             /* greeting after Dovecot's login-process latency */
	unsigned max_userip;            /* mail_max_userip_connections (10); 0: none */
	unsigned auth_penalty_max_ms;   /* cap of the growing per-session penalty before
					 * each attempt after a failure (anvil-like, 4 s,
					 * 8 s, ...); 15000; UINT32_MAX disables it */
};

struct imap_session;

/* Create a session.  tls_active: implicit TLS (993); the greeting is queued by
 * imap_session_start(). */
struct imap_session *imap_session_new(const struct imap_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx);
void imap_session_free(struct imap_session **s);

/* Queue the "* OK [CAPABILITY ...] Dovecot (Debian) ready." greeting. */
void imap_session_start(struct imap_session *s);

/* Feed client bytes; returns the number consumed (< len when the engine suspended). */
size_t imap_session_feed(struct imap_session *s, const char *data, size_t len);

/* Resume after ops->wait(). */
void imap_session_resume(struct imap_session *s);
/* Resume after ops->msg_commit() (APPEND). */
void imap_session_committed(struct imap_session *s, const struct proto_commit_result *r);
/* Resume after ops->starttls(): the handshake succeeded. */
void imap_session_tls_started(struct imap_session *s, const char *version,
			      const char *cipher, int bits);
/* The session ends from outside: "client_closed", "error", "timeout" (Dovecot's
 * "* BYE Disconnected for inactivity." is sent) or "shutdown" ("* BYE Server shutting
 * down.").  During an APPEND commit the message is still recorded when committed()
 * comes. */
void imap_session_hangup(struct imap_session *s, const char *reason);

/* "not_authenticated", "authenticated", "selected", "auth" (SASL exchange), "idle",
 * "append", "starttls", "logout", "closed". */
const char *imap_session_state_name(const struct imap_session *s);
void imap_session_counters(const struct imap_session *s, struct proto_counters *c_r);
/* Logged-in user (as the client sent it, printable), or NULL. */
const char *imap_session_auth_user(const struct imap_session *s);

/* The engine for a connection host. */
extern const struct proto_engine imap_engine;

#endif
