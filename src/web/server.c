/*
 * server: the HTTP side of web.h on the daemon's event loop: listeners (TLS off
 * loopback), bounds, the worker pool, security headers, replies, and the live stream
 * of server-sent events.
 *
 * Threads: the loop thread owns every libevent object.  A GET of a cached aggregate
 * by a login already known is answered from the cache on the loop (a memcpy under a
 * briefly held mutex, web_api_fast); everything else is a job.  Workers take jobs from a
 * queue (mutex + condition) and put finished ones on a done list, then activate a
 * user event (libevent is thread-enabled by serve.c) that the loop handles by sending
 * the replies.  A request whose client left meanwhile is detached by libevent and
 * freed by the reply call, so a late reply is safe.
 *
 * Connection cap: libevent 2.1's evhttp has no connection limit of its own, so the
 * server counts connections itself: a connection is counted when libevent creates its
 * bufferevent (the bevcb), uncounted when it closes (a close callback set at its first
 * request) or, if it never sent a complete request, after web_timeout (evhttp closes
 * such a connection by then).  At the cap the listeners stop accepting (the kernel's
 * backlog holds the rest) until the count falls.  The estimate errs high, never low.
 */
#include "web/web.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "intel/allowlist.h"
#include "intel/intel_db.h"
#include "store/db.h"
#include "store/eventstore.h"
#include "web/api.h"
#include "web/auth.h"
#include "web/geoip.h"
#include "web/metrics.h"

#define QUEUE_MAX 256
#define HEADERS_MAX 8192
#define BODY_MAX 16384
#define SSE_MAX 32
#define SSE_TICK_MS 1000
#define SSE_LIFETIME_MS (5 * 60 * 1000) /* then the stream ends; EventSource reconnects */
#define CONN_SLOTS_MAX 10000

/* The one Content-Security-Policy of every reply: nothing but this origin's own
 * files, no inline script or style, Trusted Types required (so no string can become
 * HTML through a DOM sink), no framing, no forms, no base changes. */
#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " \
	    "connect-src 'self'; frame-src 'self'; base-uri 'none'; form-action 'none'; "   \
	    "frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'"
/* A captured message's HTML (the message view's frame): a sandbox (a unique origin,
 * no script, no forms, no popups, no top navigation) even when opened on its own, and
 * nothing fetched but inline styles and data: images; framed by this origin only. */
#define CSP_SANDBOXED "default-src 'none'; style-src 'unsafe-inline'; img-src data:; " \
		      "sandbox; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

struct listen_sock {
	struct evhttp_bound_socket *bound;
	struct evconnlistener *lev;
	bool tls, loopback;
};

struct sse_client {
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	int64_t until_ms;
	bool used;
};

struct web {
	struct event_base *base;
	const struct mxb_config *cfg;
	SSL_CTX *tls;
	/* one evhttp per kind of listener: plain (loopback) and TLS (everything else) */
	struct evhttp *http_plain, *http_tls;
	struct listen_sock socks[MXB_MAX_LISTEN];
	size_t n_socks;
	struct web_shared sh;
	struct web_auth *auth;
	struct metrics metrics;
	struct eventstore *es;
	struct allowlist allowlist;

	/* pool */
	pthread_t *threads;
	unsigned n_threads;
	pthread_t cache_thread;
	bool cache_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct web_job *queue, *queue_tail, *done;
	size_t n_queue;
	bool stop;
	struct event *done_ev;
	/* requests with a job in flight (the error callback must leave them alone) */
	struct evhttp_request **pending;
	size_t n_pending, alloc_pending;

	/* connection accounting (loop thread only) */
	struct evhttp_connection **conns;
	size_t n_conns;
	int64_t *fresh;   /* creation times of connections without a request yet */
	size_t n_fresh;
	bool paused;
	struct event *resume_ev;

	/* live stream */
	struct sse_client sse[SSE_MAX];
	struct event *tick_ev;
	unsigned long long last_conn, last_auth, last_msg;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connection accounting ---- */

static size_t live_conns(struct web *w)
{
	int64_t now = mono_ms();
	size_t keep = 0;
	for (size_t i = 0; i < w->n_fresh; i++)
		if (now - w->fresh[i] <= (int64_t)w->cfg->web_timeout_ms + 1000)
			w->fresh[keep++] = w->fresh[i];
	w->n_fresh = keep;
	return w->n_conns + w->n_fresh;
}

static void set_accepting(struct web *w, bool on)
{
	if (on == !w->paused)
		return;
	for (size_t i = 0; i < w->n_socks; i++)
		if (w->socks[i].lev)
			(on ? evconnlistener_enable : evconnlistener_disable)(w->socks[i].lev);
	w->paused = !on;
	if (!on) {
		struct timeval tv = {1, 0};
		event_add(w->resume_ev, &tv);
	}
}

static void check_cap(struct web *w)
{
	set_accepting(w, live_conns(w) < w->cfg->web_max_connections);
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct web *w = arg;
	check_cap(w);
	if (w->paused) {
		struct timeval tv = {1, 0};
		event_add(w->resume_ev, &tv);
	}
}

static void conn_closed(struct evhttp_connection *evcon, void *arg);

static void sse_drop(struct web *w, struct evhttp_connection *evcon);

static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
	struct web *w = arg;
	for (size_t i = 0; i < w->n_conns; i++)
		if (w->conns[i] == evcon) {
			w->conns[i] = w->conns[--w->n_conns];
			break;
		}
	sse_drop(w, evcon);
	check_cap(w);
}

/* A connection's first request: from "fresh" to known, with a close callback. */
static void conn_seen(struct web *w, struct evhttp_connection *evcon)
{
	for (size_t i = 0; i < w->n_conns; i++)
		if (w->conns[i] == evcon)
			return;
	if (w->n_fresh)
		w->n_fresh--; /* any one: they only age */
	if (w->n_conns < CONN_SLOTS_MAX) {
		w->conns[w->n_conns++] = evcon;
		evhttp_connection_set_closecb(evcon, conn_closed, w);
	}
	check_cap(w);
}

static struct bufferevent *new_bev(struct event_base *base, void *arg, bool tls)
{
	struct web *w = arg;
	if (w->n_fresh < CONN_SLOTS_MAX)
		w->fresh[w->n_fresh++] = mono_ms();
	check_cap(w);
	if (!tls)
		return bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	SSL *ssl = SSL_new(w->tls);
	if (!ssl)
		return NULL; /* evhttp then makes a plain one: the handshake fails, closed */
	return bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

static struct bufferevent *bev_plain(struct event_base *base, void *arg)
{
	return new_bev(base, arg, false);
}

static struct bufferevent *bev_tls(struct event_base *base, void *arg)
{
	return new_bev(base, arg, true);
}

/* ---- replies ---- */

static void security_headers_for(struct evkeyvalq *h, bool tls, bool sandboxed)
{
	evhttp_add_header(h, "Content-Security-Policy", sandboxed ? CSP_SANDBOXED : CSP);
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(h, "X-Frame-Options", sandboxed ? "SAMEORIGIN" : "DENY");
	evhttp_add_header(h, "Referrer-Policy", "no-referrer");
	evhttp_add_header(h, "Cross-Origin-Opener-Policy", "same-origin");
	evhttp_add_header(h, "Cross-Origin-Resource-Policy", "same-origin");
	evhttp_add_header(h, "Permissions-Policy", "geolocation=(), camera=(), microphone=()");
	if (tls)
		evhttp_add_header(h, "Strict-Transport-Security", "max-age=31536000");
}

static void security_headers(struct evkeyvalq *h, bool tls)
{
	security_headers_for(h, tls, false);
}

static void pending_remove(struct web *w, struct evhttp_request *req)
{
	for (size_t i = 0; i < w->n_pending; i++)
		if (w->pending[i] == req) {
			w->pending[i] = w->pending[--w->n_pending];
			return;
		}
}

static bool pending_has(struct web *w, struct evhttp_request *req)
{
	for (size_t i = 0; i < w->n_pending; i++)
		if (w->pending[i] == req)
			return true;
	return false;
}

/* A reply straight from the loop (errors before any job). */
static void reply_now(struct web *w, struct evhttp_request *req, int status, const char *msg,
		      bool tls)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	security_headers(h, tls);
	evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	struct evbuffer *b = evbuffer_new();
	if (b)
		evbuffer_add_printf(b, "{\"error\":\"%s\"}\n", msg); /* msg: our constant */
	metrics_http(&w->metrics, status);
	evhttp_send_reply(req, status, NULL, b);
	if (b)
		evbuffer_free(b);
}

static void sse_start(struct web *w, struct web_job *j);

static void send_job(struct web *w, struct web_job *j)
{
	struct evhttp_request *req = j->req;
	pending_remove(w, req);
	if (j->kind == REPLY_STREAM && j->status == 200) {
		sse_start(w, j);
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	security_headers_for(h, j->tls, j->sandboxed_html && j->status == 200);
	evhttp_add_header(h, "Content-Type", j->content_type ? j->content_type
							  : "application/json; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", j->cacheable ? "private, max-age=60" : "no-store");
	if (j->disposition)
		evhttp_add_header(h, "Content-Disposition", j->disposition);
	if (j->www_authenticate)
		evhttp_add_header(h, "WWW-Authenticate", "Basic realm=\"mxbait\", charset=\"UTF-8\"");
	if (j->status == 429)
		evhttp_add_header(h, "Retry-After", "60");
	if (j->status == 503)
		evhttp_add_header(h, "Retry-After", "5");
	if (j->age_s >= 0) {
		char age[24];
		snprintf(age, sizeof(age), "%ld", j->age_s);
		evhttp_add_header(h, "Age", age);
	}
	struct evbuffer *b = evbuffer_new();
	if (b) {
		if (j->kind == REPLY_FILE && j->fd >= 0) {
			/* evbuffer_add_file takes the descriptor (sendfile where it can). */
			if (evbuffer_add_file(b, j->fd, 0, j->file_len) == 0)
				j->fd = -1;
		} else if (j->body.len) {
			evbuffer_add(b, j->body.data, j->body.len);
		}
	}
	metrics_http(&w->metrics, j->status);
	evhttp_send_reply(req, j->status, j->reason, b);
	if (b)
		evbuffer_free(b);
}

static void job_free(struct web_job *j)
{
	if (!j)
		return;
	free(j->path);
	free(j->query);
	free(j->authz);
	free(j->csrf);
	free(j->origin);
	free(j->host);
	free(j->sec_fetch_site);
	free(j->content_type_in);
	free(j->body_in);
	web_loop_action_free(&j->loop);
	free(j->disposition);
	buf_free(&j->body);
	if (j->fd >= 0)
		close(j->fd);
	free(j);
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct web *w = arg;
	pthread_mutex_lock(&w->mu);
	struct web_job *list = w->done;
	w->done = NULL;
	pthread_mutex_unlock(&w->mu);
	/* The list is newest first: reverse to answer in order. */
	struct web_job *rev = NULL;
	while (list) {
		struct web_job *n = list->next;
		list->next = rev;
		rev = list;
		list = n;
	}
	while (rev) {
		struct web_job *n = rev->next;
		if (rev->loop) /* a decision action: the guard lives on this thread */
			web_api_loop(&w->sh, rev);
		send_job(w, rev);
		job_free(rev);
		rev = n;
	}
}

/* ---- workers ---- */

/* Below the network loop: when the two compete for a core, the sessions win. */
static void lower_priority(int nice)
{
	setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}

static void *cache_main(void *arg)
{
	lower_priority(15);
	return web_cache_thread(arg);
}

static void *worker_main(void *arg)
{
	struct web *w = arg;
	struct web_worker_db wdb = {.deadline_ms = INT64_MAX};
	lower_priority(10);
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->queue && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		struct web_job *j = w->queue;
		w->queue = j->next;
		if (!w->queue)
			w->queue_tail = NULL;
		w->n_queue--;
		pthread_mutex_unlock(&w->mu);

		web_api_handle(&w->sh, &wdb, j);

		pthread_mutex_lock(&w->mu);
		j->next = w->done;
		w->done = j;
		event_active(w->done_ev, EV_READ, 0);
	}
	pthread_mutex_unlock(&w->mu);
	web_worker_db_close(&wdb);
	return NULL;
}

/* ---- requests ---- */

static char *hdr_dup(struct evkeyvalq *h, const char *name)
{
	const char *v = evhttp_find_header(h, name);
	return v ? strdup(v) : NULL;
}

static void handle(struct evhttp_request *req, struct web *w, bool tls, bool loopback)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (!evhttp_request_get_uri(req)) {
		/* libevent's error callback (bad header, over-long body, a failed write):
		 * a request with a job in flight or a stream is answered by its owner. */
		if (pending_has(w, req))
			return;
		for (size_t i = 0; i < SSE_MAX; i++)
			if (w->sse[i].used && w->sse[i].req == req)
				return;
		reply_now(w, req, 400, "bad request", tls);
		return;
	}
	if (evcon)
		conn_seen(w, evcon);
	char *peer = NULL;
	ev_uint16_t port = 0;
	if (evcon)
		evhttp_connection_get_peer(evcon, &peer, &port);
	if (w->auth && peer && web_auth_blocked(w->auth, peer, mono_ms())) {
		atomic_fetch_add_explicit(&w->metrics.http_rate_limited, 1, memory_order_relaxed);
		struct evkeyvalq *h = evhttp_request_get_output_headers(req);
		evhttp_add_header(h, "Retry-After", "60");
		reply_now(w, req, 429, "too many failed logins: try again in a minute", tls);
		return;
	}
	const struct evhttp_uri *u = evhttp_request_get_evhttp_uri(req);
	const char *raw_path = u ? evhttp_uri_get_path(u) : NULL;
	size_t plen = 0;
	char *path = raw_path ? evhttp_uridecode(raw_path, 0, &plen) : NULL;
	if (!path || strlen(path) != plen || plen > 1024) {
		free(path);
		reply_now(w, req, 400, "bad path", tls);
		return;
	}
	struct web_job *j = calloc(1, sizeof(*j));
	if (!j) {
		free(path);
		reply_now(w, req, 503, "out of memory", tls);
		return;
	}
	j->fd = -1;
	buf_init(&j->body, 0);
	j->req = req;
	j->method = (int)evhttp_request_get_command(req);
	j->path = path;
	const char *q = u ? evhttp_uri_get_query(u) : NULL;
	j->query = q ? strdup(q) : NULL;
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	j->authz = hdr_dup(in, "Authorization");
	j->csrf = hdr_dup(in, "X-CSRF-Token");
	j->origin = hdr_dup(in, "Origin");
	j->host = hdr_dup(in, "Host");
	j->sec_fetch_site = hdr_dup(in, "Sec-Fetch-Site");
	if (j->method == EVHTTP_REQ_POST) {
		/* at most BODY_MAX bytes: evhttp refused a longer one (413) */
		struct evbuffer *ib = evhttp_request_get_input_buffer(req);
		size_t n = ib ? evbuffer_get_length(ib) : 0;
		j->content_type_in = hdr_dup(in, "Content-Type");
		if (n && (j->body_in = malloc(n + 1))) {
			evbuffer_copyout(ib, j->body_in, n);
			j->body_in[n] = '\0';
			j->body_in_len = n;
		}
	}
	snprintf(j->peer, sizeof(j->peer), "%s", peer ? peer : "");
	j->loopback = loopback;
	j->tls = tls;
	j->started_ms = mono_ms();
	if (web_api_fast(&w->sh, j)) {
		send_job(w, j);
		job_free(j);
		return;
	}
	pthread_mutex_lock(&w->mu);
	if (w->n_queue >= QUEUE_MAX || !w->n_threads) {
		pthread_mutex_unlock(&w->mu);
		job_free(j);
		reply_now(w, req, 503, "busy: try again", tls);
		return;
	}
	if (w->n_pending == w->alloc_pending) {
		size_t n = w->alloc_pending ? w->alloc_pending * 2 : 64;
		struct evhttp_request **p = realloc(w->pending, n * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&w->mu);
			job_free(j);
			reply_now(w, req, 503, "out of memory", tls);
			return;
		}
		w->pending = p;
		w->alloc_pending = n;
	}
	w->pending[w->n_pending++] = req;
	if (w->queue_tail)
		w->queue_tail->next = j;
	else
		w->queue = j;
	w->queue_tail = j;
	w->n_queue++;
	pthread_cond_signal(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

struct listener_ctx {
	struct web *w;
	bool tls, loopback;
};
/* Plain HTTP is only ever on loopback; TLS only off it (bind_one). */
static struct listener_ctx ctx_plain_lo, ctx_tls;

static void gencb(struct evhttp_request *req, void *arg)
{
	struct listener_ctx *c = arg;
	handle(req, c->w, c->tls, c->loopback);
}

/* ---- live stream (server-sent events) ---- */

static void sse_write(struct sse_client *c, const char *text)
{
	struct evbuffer *b = evbuffer_new();
	if (!b)
		return;
	evbuffer_add(b, text, strlen(text));
	evhttp_send_reply_chunk(c->req, b);
	evbuffer_free(b);
}

static void sse_end(struct sse_client *c)
{
	/* Detached (the client left): this frees the request; else it ends the reply. */
	evhttp_send_reply_end(c->req);
	memset(c, 0, sizeof(*c));
}

static void sse_drop(struct web *w, struct evhttp_connection *evcon)
{
	for (size_t i = 0; i < SSE_MAX; i++) {
		struct sse_client *c = &w->sse[i];
		if (c->used && c->evcon == evcon) {
			if (!evhttp_request_get_connection(c->req))
				evhttp_send_reply_end(c->req); /* frees the detached request */
			memset(c, 0, sizeof(*c));
		}
	}
}

static void sse_start(struct web *w, struct web_job *j)
{
	struct evhttp_request *req = j->req;
	struct sse_client *c = NULL;
	for (size_t i = 0; i < SSE_MAX && !c; i++)
		if (!w->sse[i].used)
			c = &w->sse[i];
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	if (!c || !evcon) {
		reply_now(w, req, 503, "too many live streams", j->tls);
		return;
	}
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	security_headers(h, j->tls);
	evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Accel-Buffering", "no");
	metrics_http(&w->metrics, 200);
	/* Longer than a stream lives: evhttp's read timeout must not cut it. */
	evhttp_connection_set_timeout(evcon, SSE_LIFETIME_MS / 1000 + 60);
	evhttp_send_reply_start(req, 200, "OK");
	c->used = true;
	c->req = req;
	c->evcon = evcon;
	c->until_ms = mono_ms() + SSE_LIFETIME_MS;
	sse_write(c, "retry: 2000\n\n");
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct web *w = arg;
	const struct metrics *m = &w->metrics;
	unsigned long long conn = 0, auth = 0, auth_ok = 0, open = 0;
	for (int r = 0; r < MXB_ROLE_COUNT; r++) {
		conn += atomic_load_explicit(&m->connections[r], memory_order_relaxed);
		open += metrics_open(m, (enum mxb_role)r);
		for (int i = 0; i < METRICS_AUTH_RESULTS; i++)
			auth += atomic_load_explicit(&m->auth[r][i], memory_order_relaxed);
		auth_ok += atomic_load_explicit(&m->auth[r][0], memory_order_relaxed);
	}
	unsigned long long msg = 0;
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		msg += atomic_load_explicit(&m->messages[r], memory_order_relaxed);
	char text[512];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	/* Only numbers: no attacker text travels on the stream. */
	snprintf(text, sizeof(text),
		 "event: tick\ndata: {\"t_us\":%lld,\"connections\":%llu,\"auth\":%llu,"
		 "\"auth_ok\":%llu,\"messages\":%llu,\"sessions_open\":%llu,"
		 "\"d_connections\":%llu,\"d_auth\":%llu,\"d_messages\":%llu}\n\n",
		 (long long)now.tv_sec * 1000000LL + now.tv_nsec / 1000, conn, auth, auth_ok, msg,
		 open, conn - w->last_conn, auth - w->last_auth, msg - w->last_msg);
	w->last_conn = conn;
	w->last_auth = auth;
	w->last_msg = msg;
	int64_t t = mono_ms();
	for (size_t i = 0; i < SSE_MAX; i++) {
		struct sse_client *c = &w->sse[i];
		if (!c->used)
			continue;
		if (!evhttp_request_get_connection(c->req) || t >= c->until_ms) {
			if (evhttp_request_get_connection(c->req))
				sse_write(c, "event: bye\ndata: {}\n\n");
			sse_end(c);
			continue;
		}
		sse_write(c, text);
	}
}

/* ---- life cycle ---- */

static int bind_one(struct web *w, const char *spec, char **err_r)
{
	struct sockaddr_storage ss;
	int len = 0;
	if (listener_parse_addr(spec, &ss, &len) != 0) {
		if (asprintf(err_r, "web_listen: bad address %s", spec) < 0)
			*err_r = NULL;
		return -1;
	}
	bool lo = config_listen_is_loopback(spec);
	/* TLS off loopback, always (the config parser made sure web_auth is set). */
	bool tls = !lo;
	struct evhttp *http = tls ? w->http_tls : w->http_plain;
	evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, (socklen_t)len) != 0 || listen(fd, 128) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (asprintf(err_r, "cannot listen on %s (web): %s", spec, strerror(e)) < 0)
			*err_r = NULL;
		return -1;
	}
	struct evhttp_bound_socket *bs = evhttp_accept_socket_with_handle(http, fd);
	if (!bs) {
		close(fd);
		if (asprintf(err_r, "cannot listen on %s (web)", spec) < 0)
			*err_r = NULL;
		return -1;
	}
	struct listen_sock *ls = &w->socks[w->n_socks++];
	ls->bound = bs;
	ls->lev = evhttp_bound_socket_get_listener(bs);
	ls->tls = tls;
	ls->loopback = lo;
	log_msg(LOG_INFO, NULL, "listening web on %s%s", spec, tls ? " (TLS)" : "");
	return 0;
}

static struct evhttp *make_http(struct web *w, bool tls)
{
	struct evhttp *h = evhttp_new(w->base);
	if (!h)
		return NULL;
	evhttp_set_max_headers_size(h, HEADERS_MAX);
	evhttp_set_max_body_size(h, BODY_MAX);
	evhttp_set_timeout(h, (int)((w->cfg->web_timeout_ms + 999) / 1000));
	evhttp_set_allowed_methods(h, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST);
	evhttp_set_bevcb(h, tls ? bev_tls : bev_plain, w);
	return h;
}

struct web *web_open(struct event_base *base, const struct mxb_config *cfg, SSL_CTX *tls,
		     char **err_r)
{
	*err_r = NULL;
	if (!cfg->n_web_listen)
		return NULL;
	struct web *w = calloc(1, sizeof(*w));
	if (!w)
		goto oom;
	w->base = base;
	w->cfg = cfg;
	w->tls = tls;
	metrics_init(&w->metrics);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	const char *why = NULL;
	w->auth = web_auth_new(cfg->web_auth, cfg->n_web_auth, cfg->web_auth_failures, &why);
	w->conns = calloc(CONN_SLOTS_MAX, sizeof(*w->conns));
	w->fresh = calloc(CONN_SLOTS_MAX, sizeof(*w->fresh));
	w->http_plain = make_http(w, false);
	w->http_tls = make_http(w, true);
	w->done_ev = event_new(base, -1, 0, done_cb, w);
	w->resume_ev = evtimer_new(base, resume_cb, w);
	w->tick_ev = event_new(base, -1, EV_PERSIST, tick_cb, w);
	if (!w->auth || !w->conns || !w->fresh || !w->http_plain || !w->http_tls || !w->done_ev ||
	    !w->resume_ev || !w->tick_ev) {
		web_free(&w);
		goto oom;
	}
	ctx_plain_lo = (struct listener_ctx){w, false, true};
	ctx_tls = (struct listener_ctx){w, true, false};
	evhttp_set_gencb(w->http_plain, gencb, &ctx_plain_lo);
	evhttp_set_gencb(w->http_tls, gencb, &ctx_tls);
	for (size_t i = 0; i < cfg->n_web_listen; i++) {
		if (bind_one(w, cfg->web_listen[i], err_r) != 0) {
			web_free(&w);
			return NULL;
		}
	}
	w->sh.cfg = cfg;
	if (cfg->geoip_file && *cfg->geoip_file &&
	    !(w->sh.geoip = web_geoip_open(cfg->geoip_file, err_r))) {
		web_free(&w);
		return NULL;
	}
	w->sh.cache = web_cache_new();
	if (!w->sh.cache) {
		web_free(&w);
		goto oom;
	}
	w->sh.auth = w->auth;
	w->sh.metrics = &w->metrics;
	snprintf(w->sh.db_path, sizeof(w->sh.db_path), "%s/%s", cfg->data_dir, MXB_DB_FILE);
	snprintf(w->sh.adb_path, sizeof(w->sh.adb_path), "%s/analysis.db", cfg->data_dir);
	snprintf(w->sh.idb_path, sizeof(w->sh.idb_path), "%s/%s", cfg->data_dir, INTEL_DB_FILE);
	/* The indicators' allowlisted mark, as `mxbait indicators` shows it. */
	char *aerr = NULL;
	if (allowlist_init(&w->allowlist, cfg->allowlist_networks, cfg->allowlist_domains,
			   cfg->allowlist_own_addresses, &aerr) == 0) {
		w->sh.allowlist = &w->allowlist;
	} else {
		log_msg(LOG_WARNING, NULL, "web: allowlist: %s (indicators are not marked)",
			aerr ? aerr : "?");
		free(aerr);
	}
	return w;
oom:
	if (asprintf(err_r, "web: out of memory") < 0)
		*err_r = NULL;
	return NULL;
}

void web_set_guard(struct web *w, struct guard *g)
{
	if (w)
		w->sh.guard = g;
}

int web_start(struct web *w, struct eventstore *es, char **err_r)
{
	*err_r = NULL;
	if (!w)
		return 0;
	w->es = es;
	w->sh.es = es;
	if (es)
		eventstore_set_observer(es, metrics_observe, &w->metrics);
	w->threads = calloc(w->cfg->web_threads, sizeof(*w->threads));
	if (!w->threads)
		return -1;
	int ce = pthread_create(&w->cache_thread, NULL, cache_main, &w->sh);
	if (ce) {
		if (asprintf(err_r, "web: cannot start the cache thread: %s", strerror(ce)) < 0)
			*err_r = NULL;
		return -1;
	}
	w->cache_started = true;
	for (unsigned i = 0; i < w->cfg->web_threads; i++) {
		int e = pthread_create(&w->threads[i], NULL, worker_main, w);
		if (e) {
			if (asprintf(err_r, "web: cannot start a worker thread: %s", strerror(e)) < 0)
				*err_r = NULL;
			return -1;
		}
		w->n_threads++;
	}
	struct timeval tv = {SSE_TICK_MS / 1000, (SSE_TICK_MS % 1000) * 1000};
	event_add(w->tick_ev, &tv);
	log_msg(LOG_INFO, NULL, "web: %zu listener(s), %u worker thread(s), %s", w->n_socks,
		w->n_threads, web_auth_required(w->auth) ? "login required" : "no login on loopback");
	return 0;
}

void web_free(struct web **wp)
{
	struct web *w = wp ? *wp : NULL;
	if (!w)
		return;
	if (w->es)
		eventstore_set_observer(w->es, NULL, NULL);
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
	for (unsigned i = 0; i < w->n_threads; i++)
		pthread_join(w->threads[i], NULL);
	free(w->threads);
	if (w->cache_started) {
		web_cache_stop(w->sh.cache);
		pthread_join(w->cache_thread, NULL);
	}
	web_cache_free(&w->sh.cache);
	web_geoip_close(&w->sh.geoip);
	if (w->sh.allowlist)
		allowlist_free(w->sh.allowlist);
	/* Jobs never started, and finished ones never sent: the requests go with evhttp. */
	while (w->queue) {
		struct web_job *n = w->queue->next;
		job_free(w->queue);
		w->queue = n;
	}
	while (w->done) {
		struct web_job *n = w->done->next;
		job_free(w->done);
		w->done = n;
	}
	/* End the streams first: evhttp_free must not meet a half-sent reply of ours. */
	for (size_t i = 0; i < SSE_MAX; i++)
		if (w->sse[i].used) {
			if (w->sse[i].evcon && evhttp_request_get_connection(w->sse[i].req))
				evhttp_connection_set_closecb(w->sse[i].evcon, NULL, NULL);
			sse_end(&w->sse[i]);
		}
	for (size_t i = 0; i < w->n_conns; i++)
		evhttp_connection_set_closecb(w->conns[i], NULL, NULL);
	if (w->http_plain)
		evhttp_free(w->http_plain);
	if (w->http_tls)
		evhttp_free(w->http_tls);
	if (w->done_ev)
		event_free(w->done_ev);
	if (w->resume_ev)
		event_free(w->resume_ev);
	if (w->tick_ev)
		event_free(w->tick_ev);
	web_auth_free(&w->auth);
	free(w->conns);
	free(w->fresh);
	free(w->pending);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cv);
	free(w);
	*wp = NULL;
}
