/*
 * conn: one client connection hosting one protocol engine session (see conn.h).
 *
 * Life of a connection:
 *   accept -> limits -> [implicit TLS handshake] -> banner -> feed/suspend/resume ...
 *   -> conn_end() (client gone, timeout, shutdown) or engine close()
 *   -> conn_close(): the open message (if any) goes back to the spool, disconnect
 *      event, flush what is queued (bounded linger), then a deferred free.
 *   At daemon stop conn_server_teardown() ends every session before the spool closes
 *   and frees the connections after it, so no connection outlives the spool with a
 *   message of it.
 *
 * The engine may suspend (wait, commit, STARTTLS, close); while suspended nothing is
 * fed and client bytes wait in the bufferevent's input buffer, itself bounded by a
 * read high-watermark so a client cannot make us buffer more than INPUT_MAX.
 * Replies the engine queues during one call are gathered in c->out and handed to the
 * bufferevent in one piece, so a pipelined group (or a multi-line reply) leaves in
 * one write, as Postfix's do; output beyond OUTPUT_SOFT (an IMAP FETCH of a big
 * message) is handed over as it comes, in order.
 *
 * A reply is written straight to the socket (send(), or SSL_write() on the TLS
 * bufferevent's own socket BIO) when nothing is queued before it; only what the kernel
 * does not take goes to the bufferevent.  Queuing every reply would cost a pair of
 * epoll_ctl calls (the write event added, then removed once drained) and a loop turn
 * each.  TLS therefore sits directly on the socket (bufferevent_openssl_socket_new),
 * not as a filter over the plaintext socket bufferevent, whenever that one is empty
 * when TLS starts (always for implicit TLS; after STARTTLS once the 220 left).
 */
#include "core/conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>

#include "core/config.h"
#include "core/evlog.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/origdst.h"
#include "core/tls.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "store/spool.h"
#include "util/buf.h"

#define FEED_MAX (64 * 1024)       /* bytes handed to the engine per feed call */
#define INPUT_MAX (256 * 1024)     /* read high-watermark */
#define OUTPUT_SOFT (256 * 1024)   /* stop feeding until the client reads */
#define OUTPUT_RESUME (64 * 1024)
#define OUTPUT_HARD (1024 * 1024)  /* a client that will not read is dropped */
/* IMAP answers one FETCH with up to 64 MiB (the engine's bound: messages the client
 * APPENDed itself can be that big), so its connections may hold that much unread
 * before the client counts as not reading. */
#define IMAP_OUTPUT_HARD (72 * 1024 * 1024)
#define FEEDS_PER_RUN 16           /* then yield to other connections */
#define LINGER_MS 10000            /* at most this long to flush before closing */
#define DETAIL_MAX 200             /* offence detail bytes */

enum susp {
	SUSP_NONE,
	SUSP_WAIT,      /* engine asked for a timer */
	SUSP_COMMIT,    /* spool commit in flight */
	SUSP_STARTTLS,  /* 220 queued, handshake to start */
	SUSP_HANDSHAKE, /* TLS handshake running */
	SUSP_CLOSE,     /* engine asked to close */
};

struct conn {
	struct conn_server *srv;
	struct conn *prev, *next;
	enum mxb_role role;
	char id[17];
	char ip[64];
	unsigned port;
	char local_ip[64];
	unsigned local_port;
	char orig_ip[64];     /* before a NAT divert (core/origdst.h); "" when none */
	unsigned orig_port;
	int64_t start_us;

	struct bufferevent *sock_bev; /* the socket */
	struct bufferevent *bev;      /* top: sock_bev, or TLS (a filter over sock_bev, or
				       * on the socket itself with sock_bev gone) */
	const struct proto_engine *eng;
	void *s;                      /* the engine's session */
	struct spool_msg *msg;
	struct buf out;               /* replies of the current engine call */
	struct evbuffer_cb_entry *sock_out_entry;
	struct evbuffer_cb_entry *top_out_entry; /* the TLS filter's output, when there is one */
	size_t out_held;              /* bytes in this connection's output buffers */

	struct event *wait_ev, *session_ev, *handshake_ev, *linger_ev, *run_ev, *free_ev;

	enum susp susp;
	bool started;         /* banner queued */
	bool tls_implicit;    /* smtps: handshake before the banner */
	bool tls_on;
	bool tls_socket;      /* TLS on the socket itself: SSL_write reaches the kernel */
	bool eof;             /* the client closed its side */
	bool out_blocked;     /* waiting for the client to read */
	bool out_overflow;    /* one engine call queued more than OUTPUT_HARD */
	bool closing;         /* flushing before the free */
	bool dead;            /* disconnect recorded */
	bool free_scheduled;
	bool admitted;
	bool committing;
	bool logged_in;       /* the engine reported a user: post-login idle timeout */
	bool corked;          /* TCP_CORK set for this engine call's TLS records */
	uint64_t durable_wait; /* answers held until this account save is durable */
	void *gen;            /* settings generation the session's engine config is from */
	const char *pending_reason; /* conn_end() asked while a commit was in flight */
	const char *pending_engine;
	bool pending_flush;
	char close_reason[32];
	char end_state[32];   /* engine state before a hangup changed it */
};

static void conn_run(struct conn *c);
static void conn_tls_trim(struct conn *c);
static void conn_close(struct conn *c, const char *reason, bool flush);
static void conn_end(struct conn *c, const char *reason, const char *engine_reason,
		     bool flush);

const char *conn_role_name(enum mxb_role role)
{
	return mxb_role_name(role);
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_tv(unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	return tv;
}

static void make_id(char id[17])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char r[8];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		/* getrandom on Linux does not fail for 8 bytes once booted; be safe anyway */
		static uint64_t ctr;
		uint64_t v = (uint64_t)mxb_now_us() ^ (++ctr << 40);
		memcpy(r, &v, sizeof(r));
	}
	for (int i = 0; i < 8; i++) {
		id[2 * i] = hex[r[i] >> 4];
		id[2 * i + 1] = hex[r[i] & 15];
	}
	id[16] = '\0';
}

/* ---- events ---- */

static void conn_emit(struct conn *c, struct mxb_event *ev)
{
	mxb_event_stamp(ev, 0, c->id, c->ip, c->port, conn_role_name(c->role));
	evlog_event(ev); /* failed logins, a full spool: in the daemon log too */
	struct conn_server *srv = c->srv;
	if (srv->emit_hook)
		srv->emit_hook(srv->emit_arg, ev);
	else if (srv->events)
		eventstore_submit(srv->events, ev);
	else
		mxb_event_free(&ev);
}

static void emit_offence(struct conn *c, const char *kind, const char *detail, size_t len)
{
	struct mxb_event *ev = mxb_event_new("offence");
	if (!ev)
		return;
	mxb_event_str(ev, "kind", kind);
	mxb_event_strn(ev, "detail", detail, len > DETAIL_MAX ? DETAIL_MAX : len);
	conn_emit(c, ev);
}

static void emit_disconnect(struct conn *c, const char *reason)
{
	int64_t dur = (mxb_now_us() - c->start_us) / 1000;
	struct proto_counters k = { 0, 0, 0 };
	const char *state = "connected"; /* no session yet (refused): the engine's first state */
	if (c->s) {
		c->eng->counters(c->s, &k);
		state = c->end_state[0] ? c->end_state : c->eng->state_name(c->s);
	}
	struct mxb_event *ev = mxb_event_new("disconnect");
	if (ev) {
		mxb_event_str(ev, "reason", reason);
		mxb_event_int(ev, "duration_ms", dur < 0 ? 0 : dur);
		mxb_event_str(ev, "state", state);
		mxb_event_int(ev, "commands", k.commands);
		mxb_event_int(ev, "errors", k.errors);
		mxb_event_int(ev, "messages", k.messages);
		conn_emit(c, ev);
	}
	log_msg(LOG_INFO, c->id, "disconnect from %s[%u] reason=%s duration_ms=%lld state=%s "
		"commands=%u errors=%u messages=%u", c->ip, c->port, reason, (long long)dur,
		state, k.commands, k.errors, k.messages);
}

/* ---- output ---- */

static size_t out_pending(const struct conn *c)
{
	size_t n = 0;
	if (c->bev)
		n += evbuffer_get_length(bufferevent_get_output(c->bev));
	if (c->sock_bev && c->sock_bev != c->bev)
		n += evbuffer_get_length(bufferevent_get_output(c->sock_bev));
	return n;
}

static size_t output_hard(const struct conn *c)
{
	return mxb_role_family(c->role) == MXB_FAMILY_IMAP ? IMAP_OUTPUT_HARD : OUTPUT_HARD;
}

/* Too much unread output: this connection's own bound, or the daemon-wide budget
 * passed while this one holds more than an ordinary client ever needs. */
static bool output_over(const struct conn *c)
{
	size_t pending = out_pending(c);
	const struct conn_server *srv = c->srv;
	return pending > output_hard(c) ||
	       (srv->output_budget && srv->out_queued > srv->output_budget &&
		pending > OUTPUT_HARD);
}

/* Every byte added to or drained from a connection's output buffers, counted for
 * the daemon-wide output budget (evbuffer callbacks run at once, not deferred). */
static void out_count(struct conn *c, size_t added, size_t deleted)
{
	struct conn_server *srv = c->srv;
	c->out_held += added;
	srv->out_queued += added;
	if (deleted > c->out_held)
		deleted = c->out_held;
	c->out_held -= deleted;
	srv->out_queued -= deleted > srv->out_queued ? srv->out_queued : deleted;
}

static void top_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	out_count(arg, info->n_added, info->n_deleted);
}

/* ---- answers that wait for a durable account save ----
 *
 * The credential policy saves a newly cracked account from inside the engine call
 * that answers "235 Authentication successful" (IMAP "OK", POP3 "+OK").  An attacker
 * told so must find the account after a crash, so this connection's answers, that one
 * and every later one, stay in c->out and its input is not read until the event
 * store's writer has committed the save with synchronous=FULL (a few ms).  Engine calls
 * run one at a time on the loop thread, so a save number that advanced during a call
 * is that call's. */
static void durable_wake_cb(evutil_socket_t fd, short what, void *arg);

static void durable_notify(void *arg)
{
	event_active(arg, EV_READ, 0); /* writer thread: only wake the loop */
}

/* Called when the engine answers and after each engine call: hold this connection's
 * answers if the call queued a save that is not durable yet. */
static void durable_check(struct conn *c)
{
	struct conn_server *srv = c->srv;
	if (!srv->events)
		return;
	uint64_t queued = eventstore_durable_queued(srv->events);
	if (queued == srv->durable_seen)
		return;
	srv->durable_seen = queued;
	if (eventstore_durable_done(srv->events) >= queued)
		return;
	if (!srv->durable_ev) {
		srv->durable_ev = event_new(srv->base, -1, 0, durable_wake_cb, srv);
		if (!srv->durable_ev)
			return; /* cannot wait: answer at once, as before */
		eventstore_set_durable_notify(srv->events, durable_notify, srv->durable_ev);
	}
	if (!c->durable_wait)
		srv->n_durable_held++;
	c->durable_wait = queued;
}

static void conn_flush_out(struct conn *c);
static void conn_defer_run(struct conn *c);

static void durable_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn_server *srv = arg;
	if (!srv->n_durable_held || !srv->events)
		return;
	uint64_t done = eventstore_durable_done(srv->events);
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (!c->durable_wait || c->durable_wait > done)
			continue;
		c->durable_wait = 0;
		srv->n_durable_held--;
		if (c->dead)
			continue;
		conn_flush_out(c);
		if (!c->dead)
			conn_defer_run(c); /* read on, or act on what the engine asked */
	}
}

static void durable_release(struct conn *c)
{
	if (c->durable_wait) {
		c->durable_wait = 0;
		c->srv->n_durable_held--;
	}
}

/* One TLS record: a write OpenSSL has to retry (WANT_WRITE) is retried by the
 * bufferevent with its first chunk, which then holds these same bytes at least. */
#define DIRECT_TLS_MAX 16384

/* Write what nothing is queued before straight to the socket; returns the bytes the
 * kernel took (0 when it would block, on an error, or when output is queued: order).
 * Errors are left for the bufferevent to meet and report with the rest. */
static size_t conn_write_direct(struct conn *c, const char *data, size_t len)
{
	if (!c->bev || c->free_scheduled || c->susp == SUSP_HANDSHAKE || out_pending(c) > 0)
		return 0;
	if (c->bev != c->sock_bev) {
		if (!c->tls_on || !c->tls_socket || len > DIRECT_TLS_MAX)
			return 0;
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
		int n = ssl ? SSL_write(ssl, data, (int)len) : 0;
		if (n <= 0) {
			/* WANT_WRITE: part of the record is out, the rest waits in OpenSSL;
			 * the bufferevent's SSL_write of the same bytes finishes it */
			ERR_clear_error();
			return 0;
		}
		return (size_t)n; /* all of it: no partial-write mode */
	}
	ssize_t n = send(bufferevent_getfd(c->bev), data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
	return n > 0 ? (size_t)n : 0;
}

/* Move the gathered replies to the socket or the bufferevent (no checks: may run
 * inside an engine call). */
static void conn_move_out(struct conn *c)
{
	if (c->durable_wait)
		return; /* held in c->out until the account save is durable */
	if (c->out.len && c->bev && !c->free_scheduled) {
		size_t sent = conn_write_direct(c, c->out.data, c->out.len);
		if (sent < c->out.len)
			evbuffer_add(bufferevent_get_output(c->bev), c->out.data + sent,
				     c->out.len - sent);
	}
	buf_reset(&c->out);
}

/* Hand the gathered replies to the bufferevent as one piece (after an engine call). */
static void conn_flush_out(struct conn *c)
{
	conn_move_out(c);
	if (!c->dead && (c->out_overflow || output_over(c))) {
		log_msg(LOG_WARNING, c->id, "output over %zu bytes (%zu queued for all "
			"clients): client does not read", out_pending(c), c->srv->out_queued);
		conn_close(c, "error", false);
	}
}

static void conn_set_timeouts(struct conn *c);

/* After every engine call: its replies leave in one piece, and a login (the engine now
 * names a user) switches IMAP and POP3 from the pre-login to the post-login idle
 * timeout, as Dovecot's login process hands over to imap/pop3. */
static void conn_after_engine(struct conn *c)
{
	durable_check(c);
	conn_flush_out(c);
	if (c->corked) {
		int zero = 0;
		c->corked = false;
		if (c->bev && bufferevent_getfd(c->bev) >= 0)
			setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_CORK, &zero,
				   sizeof(zero));
	}
	if (!c->dead && !c->logged_in && c->s && c->eng->auth_user(c->s)) {
		c->logged_in = true;
		if (c->bev && c->susp != SUSP_HANDSHAKE)
			conn_set_timeouts(c);
	}
}

/* ---- lifetime ---- */

static void conn_free(struct conn *c)
{
	struct conn_server *srv = c->srv;
	durable_release(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->n_conns--;
	if (c->admitted && srv->limits)
		limits_release(srv->limits, c->ip, mono_ms());
	struct event **evs[] = { &c->wait_ev, &c->session_ev, &c->handshake_ev, &c->linger_ev,
				 &c->run_ev, &c->free_ev };
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		if (*evs[i]) {
			event_free(*evs[i]);
			*evs[i] = NULL;
		}
	if (c->msg)
		spool_msg_abort(&c->msg);
	if (c->s)
		c->eng->destroy(c->s);
	c->s = NULL;
	if (c->gen && srv->gen_release)
		srv->gen_release(srv->gen_arg, c->gen);
	c->gen = NULL;
	if (c->sock_out_entry)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->sock_bev), c->sock_out_entry);
	if (c->top_out_entry)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->top_out_entry);
	out_count(c, 0, c->out_held); /* freed with the bufferevents below */
	if (c->bev)
		bufferevent_free(c->bev); /* frees sock_bev too when it is a filter */
	buf_free(&c->out);
	free(c);
}

static void conn_free_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	struct conn_server *srv = c->srv;
	conn_free(c);
	if (srv->on_freed)
		srv->on_freed(srv->on_freed_arg);
}

static void conn_schedule_free(struct conn *c)
{
	if (c->free_scheduled || c->committing)
		return; /* a commit in flight keeps us: its callback frees */
	c->free_scheduled = true;
	if (c->bev)
		bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_active(c->free_ev, EV_TIMEOUT, 1);
}

static void conn_linger_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_schedule_free(arg);
}

/* Record the disconnect and go away, after flushing queued output when flush. */
static void conn_close(struct conn *c, const char *reason, bool flush)
{
	if (c->dead)
		return;
	c->dead = true;
	/* Answers still held for a durable save are dropped with the session (the save
	 * was not confirmed: the client must not be told it succeeded). */
	if (c->durable_wait) {
		buf_reset(&c->out);
		durable_release(c);
	}
	/* A session that ended holds no message: whatever was open goes back to the
	 * spool now, not when the connection is freed after lingering (and never after
	 * the spool is gone: conn_server_teardown). */
	if (c->msg)
		spool_msg_abort(&c->msg);
	emit_disconnect(c, reason);
	if (c->wait_ev)
		event_del(c->wait_ev);
	if (c->session_ev)
		event_del(c->session_ev);
	if (c->handshake_ev)
		event_del(c->handshake_ev);
	if (c->run_ev)
		event_del(c->run_ev);
	conn_flush_out(c);
	if (flush && c->bev && out_pending(c) > 0) {
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		bufferevent_enable(c->bev, EV_WRITE);
		struct timeval tv = ms_tv(LINGER_MS);
		event_add(c->linger_ev, &tv);
		return;
	}
	conn_schedule_free(c);
}

/* Something outside the engine ends the session: the client left, a timeout, a
 * shutdown.  The engine hears of it (and may queue a last reply, e.g. the 421 of a
 * timeout); a commit in flight is waited for first, so a message the client fully
 * sent is still recorded. */
static void conn_end(struct conn *c, const char *reason, const char *engine_reason,
		     bool flush)
{
	if (c->dead)
		return;
	if (c->committing) {
		if (!c->pending_reason) {
			c->pending_reason = reason;
			c->pending_engine = engine_reason;
			c->pending_flush = flush;
		}
		return;
	}
	if (c->s && c->started && c->susp != SUSP_CLOSE) {
		/* the disconnect event tells what the client was doing, not "closed" */
		snprintf(c->end_state, sizeof(c->end_state), "%s", c->eng->state_name(c->s));
		c->eng->hangup(c->s, engine_reason);
	}
	conn_close(c, reason, flush);
}

static void conn_defer_run(struct conn *c)
{
	if (!c->dead && c->run_ev)
		event_active(c->run_ev, EV_TIMEOUT, 1);
}

static void conn_run_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_run(arg);
	conn_tls_trim(arg);
}

/* ---- engine host services ---- */

static void op_send(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;
	if (c->dead || c->out_overflow)
		return;
	durable_check(c);
	/* IMAP and POP3 under TLS: each send is a TLS record of its own, as Dovecot's
	 * login processes write; the engines choose where one ends (docs/persona.md,
	 * write boundaries).  The socket is corked until the engine call ends, so the
	 * records still leave in one segment: a client that reads once gets the whole
	 * answer, as it does from Dovecot (hydra's IMAP STARTTLS read the CAPABILITY
	 * answer's tagged line as the STARTTLS reply when the two came apart).  SMTP's
	 * replies of one engine call, and plaintext, leave in one write. */
	if (c->out.len && c->tls_on && !c->durable_wait &&
	    mxb_role_family(c->role) != MXB_FAMILY_SMTP) {
		if (!c->corked && c->bev) {
			int one = 1;
			c->corked = setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_CORK,
					       &one, sizeof(one)) == 0;
		}
		conn_move_out(c);
	}
	if (c->out.len + len > OUTPUT_SOFT && !c->durable_wait) {
		/* a big answer: what is gathered goes first, big pieces go straight on */
		conn_move_out(c);
		if (len > OUTPUT_SOFT) {
			if (c->bev && !c->free_scheduled)
				evbuffer_add(bufferevent_get_output(c->bev), data, len);
			if (output_over(c))
				c->out_overflow = true; /* conn_flush_out() drops the client */
			return;
		}
		if (output_over(c)) {
			c->out_overflow = true;
			return;
		}
	}
	if (buf_append(&c->out, data, len) != 0)
		c->out_overflow = true; /* conn_flush_out() drops the client */
}

static void op_event(void *ctx, struct mxb_event *ev)
{
	conn_emit(ctx, ev);
}

static int op_msg_open(void *ctx, char *queue_id_r, size_t queue_id_len)
{
	struct conn *c = ctx;
	if (c->msg)
		spool_msg_abort(&c->msg);
	if (!c->srv->spool)
		return -1;
	c->msg = spool_msg_begin(c->srv->spool, queue_id_r, queue_id_len);
	if (!c->msg) {
		/* one warning per interval comes from the message_rejected event (evlog) */
		log_msg(LOG_DEBUG, c->id, "spool refuses a message: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static int op_msg_write(void *ctx, const char *data, size_t len)
{
	struct conn *c = ctx;
	if (!c->msg)
		return -1;
	return spool_msg_write(c->msg, data, len);
}

static void commit_done(void *arg, const struct spool_result *r)
{
	struct conn *c = arg;
	c->committing = false;
	if (c->dead) { /* only when forced down (conn_free_all) */
		conn_schedule_free(c);
		return;
	}
	struct proto_commit_result res = {
		.ok = r->ok,
		.no_space = r->no_space,
		.queue_id = r->queue_id,
		.spool_name = r->name,
		.sha256 = r->sha256,
		.size = r->size,
	};
	if (c->susp == SUSP_COMMIT)
		c->susp = SUSP_NONE;
	c->eng->committed(c->s, &res);
	conn_after_engine(c);
	if (c->pending_reason) {
		conn_end(c, c->pending_reason, c->pending_engine, c->pending_flush);
		return;
	}
	conn_defer_run(c);
}

static void commit_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct spool_result r;
	memset(&r, 0, sizeof(r));
	commit_done(arg, &r);
}

static void op_msg_commit(void *ctx)
{
	struct conn *c = ctx;
	c->susp = SUSP_COMMIT;
	c->committing = true;
	if (c->msg) {
		spool_msg_commit(&c->msg, commit_done, c);
		return;
	}
	/* Nothing open: answer the failure from the loop, never re-entering the engine. */
	struct timeval zero = { 0, 0 };
	if (event_base_once(c->srv->base, -1, EV_TIMEOUT, commit_fail_cb, c, &zero) != 0)
		abort(); /* cannot happen short of memory exhaustion */
}

static void op_msg_abort(void *ctx)
{
	struct conn *c = ctx;
	if (c->msg)
		spool_msg_abort(&c->msg);
}

static void op_starttls(void *ctx)
{
	struct conn *c = ctx;
	c->susp = SUSP_STARTTLS;
}

static void conn_wait_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->dead || c->susp != SUSP_WAIT)
		return;
	c->susp = SUSP_NONE;
	c->eng->resume(c->s);
	conn_after_engine(c);
	conn_run(c);
	conn_tls_trim(c);
}

static void op_wait(void *ctx, unsigned ms)
{
	struct conn *c = ctx;
	c->susp = SUSP_WAIT;
	struct timeval tv = ms_tv(ms);
	evtimer_add(c->wait_ev, &tv);
}

static void op_close(void *ctx, const char *reason)
{
	struct conn *c = ctx;
	c->susp = SUSP_CLOSE;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason ? reason : "error");
}

/* The engine's state changes ("imap: state authenticated -> selected"), for debugging
 * a conversation from the daemon's log. */
static void op_trace(void *ctx, const char *line)
{
	struct conn *c = ctx;
	log_msg(LOG_DEBUG, c->id, "%s", line);
}

static const struct proto_host_ops conn_ops = {
	.send = op_send,
	.event = op_event,
	.msg_open = op_msg_open,
	.msg_write = op_msg_write,
	.msg_commit = op_msg_commit,
	.msg_abort = op_msg_abort,
	.starttls = op_starttls,
	.wait = op_wait,
	.close = op_close,
	.trace = op_trace,
};

/* ---- TLS ---- */

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);

/* SMTP: idle_timeout (Postfix smtpd_timeout).  IMAP and POP3: login_timeout until a
 * login (Dovecot's login processes: 3 min), then imap_idle_timeout (30 min, the RFC
 * 3501 autologout minimum Dovecot uses) or pop3_idle_timeout (10 min). */
static unsigned conn_idle_ms(const struct conn *c)
{
	const struct mxb_config *cfg = c->srv->cfg;
	switch (mxb_role_family(c->role)) {
	case MXB_FAMILY_IMAP:
		return c->logged_in ? cfg->imap_idle_timeout_ms : cfg->login_timeout_ms;
	case MXB_FAMILY_POP3:
		return c->logged_in ? cfg->pop3_idle_timeout_ms : cfg->login_timeout_ms;
	case MXB_FAMILY_SMTP:
		break;
	}
	return cfg->idle_timeout_ms;
}

static void conn_set_timeouts(struct conn *c)
{
	struct timeval idle = ms_tv(conn_idle_ms(c));
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_setwatermark(c->bev, EV_READ, 0, INPUT_MAX);
}

static void conn_handshake_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->dead || c->susp != SUSP_HANDSHAKE)
		return;
	struct mxb_event *ev = mxb_event_new("tls_error");
	if (ev) {
		mxb_event_str(ev, "mode", c->tls_implicit ? "implicit" : "starttls");
		mxb_event_str(ev, "reason", "timeout");
		conn_emit(c, ev);
	}
	conn_close(c, "tls_error", false);
}

static void profile_ctxs_free(struct conn_server *srv)
{
	for (size_t i = 0; i < sizeof(srv->profile_ctx) / sizeof(srv->profile_ctx[0]); i++) {
		SSL_CTX_free(srv->profile_ctx[i]); /* open sessions hold their own reference */
		srv->profile_ctx[i] = NULL;
	}
	srv->profile_base = NULL;
}

/* The context of the role's persona: Dovecot's TLS on IMAP and POP3, Postfix's on
 * the SMTP roles (docs/persona.md).  Made from ssl_ctx's certificate once per
 * certificate load; the certificate's own context if that fails. */
static SSL_CTX *role_ssl_ctx(struct conn *c)
{
	struct conn_server *srv = c->srv;
	if (srv->profile_base != srv->ssl_ctx)
		profile_ctxs_free(srv);
	srv->profile_base = srv->ssl_ctx;
	bool dovecot = mxb_role_family(c->role) != MXB_FAMILY_SMTP;
	enum tls_profile p = dovecot ? TLS_PROFILE_DOVECOT : TLS_PROFILE_POSTFIX;
	if (!srv->profile_ctx[p]) {
		char *err = NULL;
		srv->profile_ctx[p] = tls_ctx_for_profile(srv->ssl_ctx, p, &err);
		if (!srv->profile_ctx[p]) {
			log_msg(LOG_ERR, c->id, "TLS profile: %s", err ? err : "?");
			free(err);
			return srv->ssl_ctx;
		}
	}
	return srv->profile_ctx[p];
}

/* Start the server handshake: TLS on the socket itself when the plaintext
 * bufferevent holds nothing (its bytes would be lost with it), else a TLS filter over
 * it, which sends what it holds first. */
static int conn_tls_begin(struct conn *c)
{
	SSL *ssl = SSL_new(role_ssl_ctx(c));
	if (!ssl)
		return -1;
	/* conn_write_direct() leaves a blocked write for the bufferevent to retry from its
	 * own copy of the bytes */
	SSL_set_mode(ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	struct bufferevent *f = NULL;
	struct evbuffer *sin = bufferevent_get_input(c->sock_bev);
	struct evbuffer *sout = bufferevent_get_output(c->sock_bev);
	if (evbuffer_get_length(sin) == 0 && evbuffer_get_length(sout) == 0) {
		evutil_socket_t fd = bufferevent_getfd(c->sock_bev);
		f = bufferevent_openssl_socket_new(c->srv->base, fd, ssl,
						   BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
		if (f) {
			/* OpenSSL writes each record of a flight (ServerHello, the
			 * encrypted handshake, the session tickets, then the banner) with its
			 * own write(): under Nagle the second waits for the client's delayed
			 * ACK, 40 ms per handshake (measured: 10,000 handshakes opened 10x
			 * slower).  The filter had gathered them into one writev. */
			int one = 1;
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			evbuffer_remove_cb_entry(sout, c->sock_out_entry);
			c->sock_out_entry = NULL;
			bufferevent_setfd(c->sock_bev, -1); /* the fd is the TLS layer's now */
			bufferevent_free(c->sock_bev);
			c->sock_bev = NULL;
			c->tls_socket = true;
		}
	} else {
		bufferevent_set_timeouts(c->sock_bev, NULL, NULL);
		f = bufferevent_openssl_filter_new(c->srv->base, c->sock_bev, ssl,
						   BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	}
	if (!f) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(f, 1);
	c->bev = f;
	c->top_out_entry = evbuffer_add_cb(bufferevent_get_output(f), top_out_cb, c);
	c->susp = SUSP_HANDSHAKE;
	bufferevent_setcb(f, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(f, EV_READ, 0, INPUT_MAX);
	bufferevent_enable(f, EV_READ | EV_WRITE);
	struct timeval tv = ms_tv(c->srv->cfg->tls_handshake_timeout_ms);
	evtimer_add(c->handshake_ev, &tv);
	return 0;
}

/* RFC 3207 section 6: whatever the client sent after STARTTLS, before the handshake,
 * is discarded (and recorded: it is an injection attempt or a broken client). */
static void conn_starttls(struct conn *c)
{
	conn_flush_out(c); /* the 220 goes out in plaintext ahead of any TLS record */
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t len = evbuffer_get_length(in);
	if (len) {
		size_t n = len > DETAIL_MAX ? DETAIL_MAX : len;
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		emit_offence(c, "starttls_injection", p, n);
		char esc[256];
		log_msg(LOG_INFO, c->id, "STARTTLS injection discarded bytes=%zu data=\"%s\"", len,
			log_escape(esc, sizeof(esc), p, n));
		evbuffer_drain(in, len);
	}
	if (!c->srv->ssl_ctx || conn_tls_begin(c) != 0) {
		conn_close(c, "error", true);
		return;
	}
}

static void conn_tls_done(struct conn *c)
{
	event_del(c->handshake_ev);
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	const char *version = SSL_get_version(ssl);
	const char *cipher = SSL_get_cipher_name(ssl);
	int bits = SSL_get_cipher_bits(ssl, NULL);
	const char *sni = tls_sni(ssl);
	struct mxb_event *ev = mxb_event_new("tls");
	if (ev) {
		mxb_event_str(ev, "mode", c->tls_implicit ? "implicit" : "starttls");
		mxb_event_str(ev, "version", version);
		mxb_event_str(ev, "cipher", cipher);
		mxb_event_int(ev, "bits", bits);
		if (sni)
			mxb_event_str(ev, "sni", sni);
		else
			mxb_event_null(ev, "sni");
		conn_emit(c, ev);
	}
	c->tls_on = true;
	c->susp = SUSP_NONE;
	conn_set_timeouts(c);
	c->eng->tls_started(c->s, version, cipher, bits);
	if (!c->started) {
		c->started = true;
		c->eng->start(c->s);
	}
	conn_after_engine(c);
	conn_run(c);
	conn_tls_trim(c);
}

static void conn_tls_failed(struct conn *c, const char *why)
{
	unsigned long err = bufferevent_get_openssl_error(c->bev);
	const char *reason = err ? ERR_reason_error_string(err) : NULL;
	while (bufferevent_get_openssl_error(c->bev))
		;
	ERR_clear_error();
	if (!reason)
		reason = why;
	struct mxb_event *ev = mxb_event_new("tls_error");
	if (ev) {
		mxb_event_str(ev, "mode", c->tls_implicit ? "implicit" : "starttls");
		mxb_event_str(ev, "reason", reason);
		conn_emit(c, ev);
	}
	log_msg(LOG_INFO, c->id, "TLS handshake failed: %s", reason);
	if (c->tls_socket) {
		/* OpenSSL read only what the handshake took (a plaintext EHLO on smtps: five
		 * bytes); the rest is dropped now, so the close sends a FIN as with the
		 * filter, which had read it all, not the RST of a socket closed unread */
		char junk[4096];
		evutil_socket_t fd = bufferevent_getfd(c->bev);
		for (int i = 0; i < 16 && fd >= 0 &&
				recv(fd, junk, sizeof(junk), MSG_DONTWAIT) > 0; i++)
			;
	}
	conn_close(c, "tls_error", true); /* let an alert record reach the client */
}

/* ---- input ---- */

static void conn_run(struct conn *c)
{
	int feeds = 0;
	while (!c->dead && c->susp == SUSP_NONE && !c->durable_wait) {
		if (c->out_blocked) {
			if (out_pending(c) > OUTPUT_RESUME)
				return; /* conn_writecb resumes */
			c->out_blocked = false;
		}
		struct evbuffer *in = bufferevent_get_input(c->bev);
		size_t avail = evbuffer_get_length(in);
		if (avail == 0)
			break;
		size_t n = avail > FEED_MAX ? FEED_MAX : avail;
		const char *p = (const char *)evbuffer_pullup(in, (ev_ssize_t)n);
		size_t used = c->eng->feed(c->s, p, n);
		if (used > n)
			used = n;
		evbuffer_drain(in, used);
		conn_after_engine(c);
		if (c->dead)
			return;
		if (used == 0 && c->susp == SUSP_NONE) {
			if (n >= FEED_MAX) {
				/* the engine takes no more and holds no line: cannot progress */
				log_msg(LOG_WARNING, c->id, "engine stalled with %zu bytes", avail);
				conn_end(c, "error", "error", true);
				return;
			}
			break; /* a partial line: wait for more */
		}
		if (out_pending(c) > OUTPUT_SOFT) {
			c->out_blocked = true;
			bufferevent_enable(c->bev, EV_WRITE);
			return;
		}
		if (++feeds >= FEEDS_PER_RUN) {
			conn_defer_run(c); /* be fair to the other connections */
			return;
		}
	}
	if (c->dead || c->durable_wait)
		return; /* durable_wake_cb runs the connection again */
	switch (c->susp) {
	case SUSP_STARTTLS:
		conn_starttls(c);
		return;
	case SUSP_CLOSE:
		conn_close(c, c->close_reason, true);
		return;
	case SUSP_NONE:
		if (c->eof)
			conn_end(c, "client_closed", "client_closed", true);
		return;
	default:
		return;
	}
}

/* An idle TLS connection keeps no record buffers: OpenSSL's read and write buffers
 * (17 KB each) are freed once nothing is pending and made again by the next record.
 * SSL_free_buffers() refuses while a record is half read or half written.  Only with
 * TLS on the socket: a filter reads again right after the callback (which is why
 * SSL_MODE_RELEASE_BUFFERS made the filter hold more, docs/PERFORMANCE.md). */
static void conn_tls_trim(struct conn *c)
{
	if (c->tls_socket && c->tls_on && !c->free_scheduled && c->bev && out_pending(c) == 0)
		SSL_free_buffers(bufferevent_openssl_get_ssl(c->bev));
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->dead)
		return;
	conn_run(c);
	conn_tls_trim(c);
}

static void conn_check_drained(struct conn *c)
{
	if (c->closing) {
		if (out_pending(c) == 0)
			conn_schedule_free(c);
		return;
	}
	if (c->out_blocked && out_pending(c) <= OUTPUT_RESUME)
		conn_defer_run(c);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_check_drained(arg);
	conn_tls_trim(arg);
}

/* Watches the socket's own output buffer: with a TLS filter on top, the filter's
 * write callback fires before the ciphertext has left. */
static void sock_out_cb(struct evbuffer *b, const struct evbuffer_cb_info *info, void *arg)
{
	(void)b;
	struct conn *c = arg;
	out_count(c, info->n_added, info->n_deleted);
	if (info->n_deleted && !c->free_scheduled)
		conn_check_drained(c);
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	struct conn *c = arg;
	if (c->free_scheduled)
		return;
	if (c->closing) {
		if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
			conn_schedule_free(c);
		return;
	}
	if (c->dead)
		return;
	if (c->susp == SUSP_HANDSHAKE) {
		if (what & BEV_EVENT_CONNECTED)
			conn_tls_done(c);
		else if (what & BEV_EVENT_EOF)
			conn_tls_failed(c, "eof");
		else if (what & BEV_EVENT_TIMEOUT)
			conn_tls_failed(c, "timeout");
		else if (what & BEV_EVENT_ERROR)
			conn_tls_failed(c, errno ? strerror(errno) : "error");
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		/* reading: the client said nothing for idle_timeout; writing: it reads nothing */
		conn_end(c, "idle_timeout", "timeout", (what & BEV_EVENT_READING) != 0);
		return;
	}
	if (what & BEV_EVENT_EOF) {
		/* Answer what it sent before closing (a half-close still reads). */
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		if (c->susp == SUSP_NONE)
			conn_run(c);
		return;
	}
	if (what & BEV_EVENT_ERROR) {
		c->eof = true;
		conn_end(c, "client_closed", "client_closed", false);
	}
}

static void conn_session_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct conn *c = arg;
	if (c->susp == SUSP_HANDSHAKE) {
		conn_close(c, "session_timeout", false);
		return;
	}
	conn_end(c, "session_timeout", "timeout", true);
}

/* ---- accept ---- */

static void emit_connect(struct conn *c)
{
	struct mxb_event *ev = mxb_event_new("connect");
	if (ev) {
		mxb_event_str(ev, "dst_ip", c->local_ip);
		mxb_event_int(ev, "dst_port", c->local_port);
		if (c->orig_ip[0]) {
			mxb_event_str(ev, "orig_dst_ip", c->orig_ip);
			mxb_event_int(ev, "orig_dst_port", c->orig_port);
		} else {
			mxb_event_null(ev, "orig_dst_ip");
			mxb_event_null(ev, "orig_dst_port");
		}
		conn_emit(c, ev);
	}
}

/* The refusal text of an over-limit (or shutting-down) connection, as the real server
 * of the protocol words it: Postfix smtpd's anvil answers for SMTP; Dovecot has no
 * pre-login per-address limit, and a login process that is full drops connections
 * with "Connection queue full" (client_destroy_oldest), so IMAP and POP3 say that.
 * Returns the length, 0 for none. */
static int refusal_text(const struct conn *c, enum limits_verdict v, bool shutdown,
			char *reply, size_t len)
{
	switch (mxb_role_family(c->role)) {
	case MXB_FAMILY_IMAP:
		return snprintf(reply, len, "* BYE %s\r\n",
				shutdown ? "Server shutting down." : "Connection queue full");
	case MXB_FAMILY_POP3:
		return snprintf(reply, len, "-ERR %s\r\n",
				shutdown ? "Server shutting down." : "Connection queue full");
	case MXB_FAMILY_SMTP:
		break;
	}
	if (v == LIMITS_TOTAL)
		return snprintf(reply, len, "421 4.3.2 All server ports are busy\r\n");
	return snprintf(reply, len, "421 4.7.0 %s Error: too many connections from %s\r\n",
			c->srv->cfg->hostname, c->ip);
}

/* Over a limit: answer like the real server, then hang up. */
static void conn_refuse(struct conn *c, evutil_socket_t fd, enum limits_verdict v,
			bool shutdown)
{
	const char *reason = shutdown ? "shutdown" : limits_reason(v);
	if (!mxb_role_implicit_tls(c->role)) {
		/* (on implicit TLS a reply would need a handshake first: the point of the
		 * limit is not to spend one, so the connection is just closed) */
		char reply[512];
		int n = refusal_text(c, v, shutdown, reply, sizeof(reply));
		if (n > 0 && (size_t)n < sizeof(reply)) {
			ssize_t w = send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)w; /* a fresh socket's buffer takes it; if not, nothing is lost */
		}
	}
	emit_disconnect(c, reason);
	evutil_closesocket(fd);
}

/* A client that talks before the banner could have reached it (a bot that does not
 * wait): postscreen's pregreet test, for free.  Looks without consuming. */
static void conn_check_pregreet(struct conn *c, evutil_socket_t fd)
{
	char peek[DETAIL_MAX];
	ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
	if (n > 0)
		emit_offence(c, "pregreet", peek, (size_t)n);
}

void conn_accept(struct conn_server *srv, enum mxb_role role, evutil_socket_t fd,
		 const char *peer_ip, unsigned peer_port, const char *local_ip,
		 unsigned local_port)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	c->srv = srv;
	c->role = role;
	make_id(c->id);
	snprintf(c->ip, sizeof(c->ip), "%s", peer_ip);
	c->port = peer_port;
	snprintf(c->local_ip, sizeof(c->local_ip), "%s", local_ip);
	c->local_port = local_port;
	c->start_us = mxb_now_us();
	buf_init(&c->out, OUTPUT_HARD);
	if (origdst_get(fd, c->orig_ip, sizeof(c->orig_ip), &c->orig_port) != 1)
		c->orig_ip[0] = '\0';
	emit_connect(c);
	if (c->orig_ip[0])
		log_msg(LOG_INFO, c->id, "connect from %s[%u] to %s %s:%u diverted from %s:%u",
			c->ip, c->port, conn_role_name(role), c->local_ip, c->local_port,
			c->orig_ip, c->orig_port);
	else
		log_msg(LOG_INFO, c->id, "connect from %s[%u] to %s %s:%u", c->ip, c->port,
			conn_role_name(role), c->local_ip, c->local_port);

	if (srv->shutting_down) {
		conn_refuse(c, fd, LIMITS_TOTAL, true);
		buf_free(&c->out);
		free(c);
		return;
	}
	if (srv->limits) {
		enum limits_verdict v = limits_admit(srv->limits, c->ip, mono_ms());
		if (v != LIMITS_OK) {
			conn_refuse(c, fd, v, false);
			buf_free(&c->out);
			free(c);
			return;
		}
		c->admitted = true;
	}
	c->eng = (unsigned)role < MXB_ROLE_COUNT ? srv->engine[role] : NULL;
	if (!c->eng || (mxb_role_implicit_tls(role) && !srv->ssl_ctx)) {
		emit_disconnect(c, "error");
		if (c->admitted)
			limits_release(srv->limits, c->ip, mono_ms());
		evutil_closesocket(fd);
		buf_free(&c->out);
		free(c);
		return;
	}

	/* Linked first, so that every failure below goes through conn_free(). */
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->n_conns++;

	if (!mxb_role_implicit_tls(role))
		conn_check_pregreet(c, fd);

	if (mxb_role_family(role) != MXB_FAMILY_SMTP) {
		/* IMAP and POP3 write each reply piece by itself (op_send), as Dovecot does
		 * with TCP_NODELAY set on uncork: under Nagle the second line of a reply
		 * would wait for the client's delayed ACK (up to 40 ms). */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	struct event_base *base = srv->base;
	c->sock_bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->bev = c->sock_bev;
	c->free_ev = event_new(base, -1, 0, conn_free_cb, c);
	c->run_ev = event_new(base, -1, 0, conn_run_cb, c);
	c->wait_ev = evtimer_new(base, conn_wait_cb, c);
	c->session_ev = evtimer_new(base, conn_session_timeout_cb, c);
	c->handshake_ev = evtimer_new(base, conn_handshake_timeout_cb, c);
	c->linger_ev = evtimer_new(base, conn_linger_cb, c);
	struct proto_peer peer = { .ip = c->ip, .port = c->port, .rdns = NULL };
	if (srv->gen_hold)
		c->gen = srv->gen_hold(srv->gen_arg);
	if (c->bev)
		c->s = c->eng->create(srv->engine_cfg[role], &peer, mxb_role_implicit_tls(role),
				      &conn_ops, c);
	if (!c->sock_bev || !c->free_ev || !c->run_ev || !c->wait_ev || !c->session_ev ||
	    !c->handshake_ev || !c->linger_ev || !c->s) {
		if (!c->sock_bev)
			evutil_closesocket(fd);
		log_msg(LOG_ERR, c->id, "out of memory setting up the connection");
		c->dead = true;
		emit_disconnect(c, "error");
		conn_free(c);
		return;
	}
	c->sock_out_entry = evbuffer_add_cb(bufferevent_get_output(c->sock_bev), sock_out_cb, c);
	struct timeval st = ms_tv(srv->cfg->session_timeout_ms);
	evtimer_add(c->session_ev, &st);

	if (mxb_role_implicit_tls(role)) {
		c->tls_implicit = true;
		if (conn_tls_begin(c) != 0)
			conn_close(c, "error", false);
		return;
	}
	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	conn_set_timeouts(c);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
	c->started = true;
	c->eng->start(c->s);
	conn_after_engine(c);
	conn_run(c); /* bytes may already wait (pregreet) */
}

void conn_shutdown_all(struct conn_server *srv)
{
	srv->shutting_down = true;
	for (struct conn *c = srv->conns; c; c = c->next) {
		if (c->susp == SUSP_HANDSHAKE)
			conn_close(c, "shutdown", false);
		else
			conn_end(c, "shutdown", "shutdown", true);
	}
}

void conn_free_all(struct conn_server *srv)
{
	srv->shutting_down = true;
	while (srv->conns) {
		struct conn *c = srv->conns;
		c->committing = false; /* the spool is closed: no callback will come */
		if (!c->dead) {
			c->dead = true;
			emit_disconnect(c, "shutdown");
		}
		conn_free(c);
	}
}

void conn_server_teardown(struct conn_server *srv, struct spool **spool)
{
	srv->shutting_down = true;
	/* 1. Every session still open ends, and with it any message it has open (a BDAT
	 *    without LAST, a DATA cut short).  A commit in flight is left to finish. */
	for (struct conn *c = srv->conns, *next; c; c = next) {
		next = c->next;
		if (!c->committing)
			conn_close(c, "shutdown", false);
	}
	/* 2. No connection can open a message any more; the spool completes what was
	 *    queued (its callbacks find their sessions alive and record the messages). */
	srv->spool = NULL;
	spool_close(spool);
	/* 3. Nothing a connection holds refers to the spool now. */
	conn_free_all(srv);
	profile_ctxs_free(srv);
	if (srv->durable_ev) {
		eventstore_set_durable_notify(srv->events, NULL, NULL); /* no wake after this */
		event_free(srv->durable_ev);
		srv->durable_ev = NULL;
	}
}
