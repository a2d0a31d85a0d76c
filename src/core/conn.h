/*
 * conn: one client connection, hosting one protocol engine session (SMTP, IMAP or
 * POP3, each driven through its struct proto_engine of proto/proto.h), in the TLS
 * profile of the role's persona (core/tls.h).
 *
 * The connection owns the socket (a libevent bufferevent, wrapped in an OpenSSL
 * filter for implicit TLS and after STARTTLS/STLS) and gives the engine its host
 * services (struct proto_host_ops): replies are gathered per engine call and leave in one write,
 * events get the common fields and go to the event store, message bytes go to the
 * spool, waits are timers, never sleeps.  It enforces the things the engine cannot
 * see: idle (per protocol, pre- and post-login), session and handshake timeouts,
 * bounded input and output buffers, the STARTTLS/STLS plaintext-injection defence
 * (RFC 3207 section 6, RFC 2595 section 3.1), and admission limits before any session.
 *
 * Lifetime: a connection is never freed inside one of its own callbacks; conn_close
 * marks it dead, gives back its open message and a deferred event frees it.  A
 * connection whose message commit is in flight stays allocated until the spool
 * reports back.  Nothing a connection holds outlives the spool (conn_server_teardown).
 */
#ifndef MXB_CORE_CONN_H
#define MXB_CORE_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/util.h>
#include <openssl/ssl.h>

#include "core/role.h"
#include "proto/proto.h"

struct event_base;
struct eventstore;
struct spool;
struct limits;
struct mxb_config;
struct mxb_event;
struct conn;

/* Everything the connections of one daemon share.  The caller fills the public part
 * and calls conn_server_init(). */
struct conn_server {
	struct event_base *base;
	const struct mxb_config *cfg;
	/* The engine of each role and its config (struct smtp_config, imap_config or
	 * pop3_config), owned by the caller.  A role without an engine refuses. */
	const struct proto_engine *engine[MXB_ROLE_COUNT];
	const void *engine_cfg[MXB_ROLE_COUNT];
	SSL_CTX *ssl_ctx;               /* NULL: no TLS (STARTTLS not offered, implicit
					 * TLS roles refused) */
	struct spool *spool;            /* NULL: every message is refused (tests) */
	struct eventstore *events;      /* NULL: events go to emit_hook or nowhere */
	struct limits *limits;          /* NULL: no admission limits */
	/* Tests: see every stamped event (the hook takes ownership). */
	void (*emit_hook)(void *arg, struct mxb_event *ev);
	void *emit_arg;
	/* Called (outside any connection callback) whenever a connection was freed. */
	void (*on_freed)(void *arg);
	void *on_freed_arg;
	/* Reload (SIGHUP): engine_cfg and cfg may be replaced while sessions live.  A new
	 * session holds what gen_hold() returns (the generation its engine config belongs
	 * to) and gives it back with gen_release() when it is freed.  NULL: no reload. */
	void *(*gen_hold)(void *arg);
	void (*gen_release)(void *arg, void *gen);
	void *gen_arg;
	/* Bytes of answers queued for clients, all connections together
	 * (output_memory_budget; 0: no bound).  Past it, a connection that adds output
	 * while it holds more than 1 MiB unread is dropped as a client that does not read
	 * (an IMAP FETCH of APPENDed mail, left unread by many sessions at once). */
	size_t output_budget;

	/* private */
	/* ssl_ctx's certificate in each role's TLS profile (tls.h): made at the first
	 * handshake after ssl_ctx was set or replaced by a reload */
	SSL_CTX *profile_base;
	SSL_CTX *profile_ctx[3];
	struct conn *conns;
	size_t n_conns;
	bool shutting_down;
	/* Answers held until an account save is durable (eventstore_durable_queued). */
	uint64_t durable_seen;       /* the last save number a connection was checked for */
	struct event *durable_ev;    /* woken by the event store's writer thread */
	size_t n_durable_held;
	size_t out_queued;     /* bytes in every connection's output buffers */
};

/* Role names as used in events and logs (mxb_role_name). */
const char *conn_role_name(enum mxb_role role);

/* Take an accepted socket (non-blocking).  peer/local addresses are textual. Applies
 * the admission limits; on refusal answers like the real server (Postfix's anvil for
 * SMTP, Dovecot's "Connection queue full" for IMAP and POP3; nothing on implicit TLS),
 * records connect and disconnect, and closes.  Always takes ownership of fd. */
void conn_accept(struct conn_server *srv, enum mxb_role role, evutil_socket_t fd,
		 const char *peer_ip, unsigned peer_port, const char *local_ip,
		 unsigned local_port);

/* Shut every connection down (disconnect reason "shutdown"). */
void conn_shutdown_all(struct conn_server *srv);
/* Free every connection now (after the loop stopped; commits in flight are given up). */
void conn_free_all(struct conn_server *srv);

/* Daemon stop, in the one order that keeps every pointer valid (the loop has
 * stopped): every session still open ends (disconnect "shutdown") and gives back the
 * message it has open; srv->spool is cleared, so no message can be opened any more;
 * *spool is closed (commits still queued complete inside, their sessions alive to
 * record them) and set to NULL; then every connection is freed.  spool may point to
 * NULL. */
void conn_server_teardown(struct conn_server *srv, struct spool **spool);

#endif
