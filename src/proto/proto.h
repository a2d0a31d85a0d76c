/*
 * proto: what every protocol engine (SMTP, IMAP, POP3) shares with its host.
 *
 * An engine is a pure state machine: bytes in through feed(), replies, events and
 * captured message bytes out through the host callbacks below.  The host (the
 * connection layer in src/core/conn.c, a fake in tests and fuzzers) owns sockets, TLS,
 * timers, the spool and the event store.  struct proto_engine is the vtable the host
 * drives, so one connection layer serves every line protocol, as curl's pingpong does.
 *
 * Flow control is the same for all engines: feed() consumes what it can and returns
 * the count; when the engine must wait (message commit, a delay, STARTTLS/STLS, close)
 * it stops consuming, says why through a callback, and the host feeds the rest again
 * after calling the matching resume entry.  Replies queued during one feed or resume
 * call leave in one write.  What the engines share in doing all this is one module,
 * session.h; each engine is smtp.h, imap.h or pop3.h and exports its struct
 * proto_engine (smtp_engine, imap_engine, pop3_engine).
 */
#ifndef MXB_PROTO_PROTO_H
#define MXB_PROTO_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mxb_event;

/* The peer as the host saw it (true address, never a client-supplied one). */
struct proto_peer {
	const char *ip;
	unsigned port;
	const char *rdns; /* verified reverse name, or NULL */
};

/* What the spool reports when a captured message is durable (or not). */
struct proto_commit_result {
	bool ok;
	bool no_space;
	const char *queue_id;
	const char *spool_name;
	const char *sha256;
	uint64_t size;
};

struct proto_host_ops {
	void (*send)(void *ctx, const char *data, size_t len);
	void (*event)(void *ctx, struct mxb_event *ev);
	int (*msg_open)(void *ctx, char *queue_id_r, size_t queue_id_len);
	int (*msg_write)(void *ctx, const char *data, size_t len);
	void (*msg_commit)(void *ctx);
	void (*msg_abort)(void *ctx);
	/* STARTTLS (SMTP, IMAP) or STLS (POP3): the "go ahead" reply is queued; the host
	 * flushes it, discards every byte received after the command (RFC 3207/2595
	 * plaintext injection), runs the handshake and calls tls_started. */
	void (*starttls)(void *ctx);
	void (*wait)(void *ctx, unsigned ms);
	void (*close)(void *ctx, const char *reason);
	int64_t (*now_us)(void *ctx); /* optional: NULL = system clock */
	/* Optional: every state change of the engine, "proto: what old -> new" (tests
	 * check transitions; the daemon logs them at debug level). */
	void (*trace)(void *ctx, const char *line);
};

struct proto_counters {
	unsigned commands;
	unsigned errors;
	unsigned messages;
};

/* The vtable a host drives.  cfg is the engine's own config struct. */
struct proto_engine {
	const char *name; /* "smtp", "imap", "pop3" */
	void *(*create)(const void *cfg, const struct proto_peer *peer, bool tls_active,
			const struct proto_host_ops *ops, void *ctx);
	void (*start)(void *session);                 /* queue the greeting */
	size_t (*feed)(void *session, const char *data, size_t len);
	void (*resume)(void *session);                /* after wait() */
	void (*committed)(void *session, const struct proto_commit_result *r);
	void (*tls_started)(void *session, const char *version, const char *cipher, int bits);
	void (*hangup)(void *session, const char *reason);
	const char *(*state_name)(const void *session);
	void (*counters)(const void *session, struct proto_counters *c_r);
	const char *(*auth_user)(const void *session);
	void (*destroy)(void *session);
};

#endif
