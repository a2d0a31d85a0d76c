/*
 * session: what every protocol engine (SMTP, IMAP, POP3) does the same way, once.
 *
 * Each engine embeds a struct session and leaves to it:
 *   - output: replies are gathered in out during a step and handed to the host
 *     (ops->send) when the step ends, in one piece, or in pieces of out_flush_at for
 *     big answers (an IMAP FETCH, pipelined RETRs); bounded by out's cap;
 *   - suspension and resume: a step may hold its replies for a delay (error sleep,
 *     failed-login delay: ops->wait), hand over to STARTTLS/STLS (ops->starttls), wait
 *     for a commit (ops->msg_commit), or close after the replies are flushed; the host
 *     feeds the unconsumed bytes again after the matching resume;
 *   - the feed loop: session_feed() hands the engine's step function one piece of
 *     input at a time and ends each step, so every engine stops consuming at the same
 *     points for the same reasons;
 *   - line framing (session_frame): LF-terminated lines, CR removed, bare LF and NUL
 *     noticed, a length bound with the engine's choice of what happens past it;
 *   - counters (commands, errors, messages) and offences, some recorded once;
 *   - the credential check (session_auth_check over sasl.h's sasl_check): the one
 *     rule, the policy, the auth event with every byte the client sent;
 *   - tracing: every state change of an engine goes through its one state function,
 *     which calls session_trace() (the host's optional ops->trace sees "old -> new").
 *
 * Protocol code never sees a socket: the host (src/core/conn.c, the fake host of the
 * tests and fuzzers) owns sockets, TLS, timers, the spool and the event store.
 */
#ifndef MXB_PROTO_SESSION_H
#define MXB_PROTO_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "deceive/auth_policy.h"
#include "proto/proto.h"
#include "proto/proto_event.h"
#include "proto/sasl.h"
#include "util/buf.h"

struct mxb_event;

enum session_susp {
	SESSION_RUN,    /* consuming input */
	SESSION_WAIT,   /* ops->wait until session_resume() */
	SESSION_COMMIT, /* ops->msg_commit until the engine's committed() */
	SESSION_TLS,    /* ops->starttls until the engine's tls_started() */
	SESSION_CLOSED, /* ops->close was called, or the host hung up */
};

struct session {
	const char *proto;             /* "smtp", "imap", "pop3": traces */
	const struct proto_host_ops *ops;
	void *ctx;
	char peer_ip[64];
	enum session_susp susp;

	struct buf out;                /* replies of the current step */
	size_t out_flush_at;           /* hand out over in pieces past this (0: never) */
	unsigned delay_ms;             /* hold this step's replies this long */
	const char *close_reason;      /* close once the replies are out */

	const char *feed_pos, *feed_end; /* during session_feed(): unread input */

	unsigned commands;
	unsigned errors;
	unsigned messages;
	unsigned once;                 /* offences recorded once (engine's bits) */
};

void session_init(struct session *s, const char *proto, const struct proto_peer *peer,
		  const struct proto_host_ops *ops, void *ctx, size_t out_cap);
void session_free(struct session *s);

/* ---- output ---- */
void session_out(struct session *s, const char *data, size_t len);
void session_puts(struct session *s, const char *str);
/* One line: fmt + CRLF. */
void session_printf(struct session *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hand what is gathered to the host now. */
void session_flush(struct session *s);
/* Big answers leave in pieces, unless the step's replies are being held. */
void session_flush_if_big(struct session *s);

/* ---- suspension ---- */
void session_hold(struct session *s, unsigned ms);
void session_close_after(struct session *s, const char *reason);
/* The one place the suspension changes (traced "suspension old -> new"). */
void session_suspend(struct session *s, enum session_susp why);
bool session_running(const struct session *s);
/* End of a step: STARTTLS hands over (replies flushed first), a commit lets the
 * replies so far leave, a delay holds them (ops->wait), a close flushes and closes,
 * else they leave. */
void session_end_step(struct session *s);
/* After ops->wait: false when the session was not waiting.  Closes when asked. */
bool session_resume(struct session *s);
/* The host ends the session: nothing more is sent except what the caller queues and
 * flushes itself (a timeout's 421 / BYE). */
void session_hangup(struct session *s);

/* Feed: calls step(engine, data, len) -> bytes consumed until the input is used up or
 * the session suspends; a step that held, closed or suspended is ended at once.
 * Returns the bytes consumed; what is gathered leaves at the end. */
typedef size_t (*session_step_fn)(void *engine, const char *data, size_t len);
size_t session_feed(struct session *s, void *engine, session_step_fn step, const char *data,
		    size_t len);
/* More client bytes already wait after the current line (pipelining, injection). */
bool session_more_input(const struct session *s);
const char *session_pending(const struct session *s, size_t *len_r);

/* ---- line framing ---- */
enum session_frame_mode {
	FRAME_SKIP, /* past the limit: keep the first limit bytes, drop the rest of the line
		     * (Postfix smtp_get SKIP); the line comes with overflow set */
	FRAME_STOP, /* past the limit: FRAME_TOO_LONG at once (Dovecot: buffer full) */
	FRAME_CUT,  /* past the limit: hand over a piece (a CR held back), then go on */
};
enum session_frame_result { FRAME_MORE, FRAME_LINE, FRAME_PIECE, FRAME_TOO_LONG };
struct session_framer {
	struct buf line;
	bool skipping;
	bool overflowed;
	size_t consume_next; /* a piece handed over (FRAME_CUT), dropped at the next call */
};
struct session_line {
	char *p;        /* NUL-terminated (the framer's buffer, valid until the next call) */
	size_t len;     /* without CR LF */
	bool bare_lf;   /* ended in LF without CR */
	bool overflow;  /* was longer than the limit */
};
void session_framer_init(struct session_framer *f, size_t cap);
void session_framer_reset(struct session_framer *f);
void session_framer_free(struct session_framer *f);
/* Take bytes into f; returns how many were consumed.  *res says whether a line (or a
 * piece, or an overflow) is ready in *line_r. */
size_t session_frame(struct session_framer *f, const char *data, size_t len, size_t limit,
		     enum session_frame_mode mode, struct session_line *line_r,
		     enum session_frame_result *res);

/* ---- events ---- */
void session_emit(struct session *s, struct mxb_event *ev);
void session_offence(struct session *s, const char *kind, const char *detail, size_t len);
void session_offence_once(struct session *s, unsigned bit, const char *kind,
			  const char *detail, size_t len);
void session_auth_event(struct session *s, const struct auth_ev *a);
void session_auth_event_simple(struct session *s, const char *mech, const char *result);
/* "proto: what old -> new" to the host's ops->trace, when it has one. */
void session_trace(struct session *s, const char *what, const char *old, const char *new_);

/* ---- credentials ---- */
struct session_cred {
	const char *proto;             /* for the policy: "smtp", "imaps", "pop3", ... */
	const char *mech;
	const struct sasl_slice *authzid; /* NULL: none */
	const struct sasl_slice *user;
	const struct sasl_slice *pass;    /* NULL: none (CRAM-MD5) */
	const char *cram_challenge, *cram_digest;
};
/* The one credential path of all three engines: sasl_check() (sasl.h: the rule, a
 * NUL byte or over SASL_CRED_MAX refused with *taken_r false and never shown to the
 * policy, then the policy) with the session's peer address.  On AUTH_OK *cred_r holds the copies (sasl_cred_free); otherwise it is
 * freed already.  The caller emits the event with session_cred_event(), after
 * choosing the result its persona reports. */
enum auth_verdict session_auth_check(struct session *s, struct auth_policy *policy,
				     const struct session_cred *c, struct sasl_cred *cred_r,
				     bool *taken_r);
void session_cred_event(struct session *s, const struct session_cred *c, bool success,
			const char *result);

/* ---- helpers ---- */
int64_t session_now_us(struct session *s);
/* The delay of a failed login as Dovecot 2.3's auth server gives it (docs/persona.md,
 * "Timing"): with dovecot_clock false (or base_ms not whole seconds), base_ms exactly;
 * with it, between base - 0.5 s and base, placed by the failure's position in its
 * wall-clock second and a 500 ms timer, plus 5-45 ms; for 2 s, 1.505-2.045 s (measured
 * on Debian's Dovecot 2.3.19: 1.507-2.045 s). */
unsigned session_failure_delay(struct session *s, unsigned base_ms, bool dovecot_clock);
/* The greeting (queued) leaves now, or, with login_latency, after the time Dovecot 2.3
 * takes to hand a new connection to a fresh login process (service_count = 1: one
 * process per connection): 20-65 ms, varied (measured on Debian's Dovecot 2.3.19 here:
 * 21-81 ms, median 38 ms; mxbait without it: 0.2-0.5 ms).  A host timer (ops->wait):
 * bytes the client sends meanwhile are read after the greeting, as Dovecot does. */
void session_greet(struct session *s, bool login_latency);
/* Header- and log-safe copy: control bytes become '?'. */
void session_printable(char *dst, size_t dstlen, const char *src, size_t len);
/* The strict base64 of Postfix's and Dovecot's SASL clients, then decode. */
bool session_b64_decode(const char *b64, size_t len, unsigned char *out, size_t cap,
			size_t *n_r);

#endif
