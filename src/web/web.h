/*
 * web: the dashboard, the JSON API (/api/v1/..., docs/api.md) and Prometheus /metrics,
 * served by `mxbait serve` on its own event loop (libevent's evhttp).
 *
 * The loop only parses requests and writes replies: every request that reads the
 * disk (SQLite, the spool, the credential hashes) is a job for a small pool of worker
 * threads (web_threads) with read-only database connections, and the reply is sent
 * when the job is done, so the SMTP/IMAP/POP3 sessions on the same loop never wait on
 * a query.  Bounds: web_max_connections (accepting pauses at the cap), headers 8 KiB,
 * bodies 16 KiB, web_timeout for a request to arrive and its reply to leave, 256 jobs
 * queued (then 503), 10 s of SQL per request (then 503).
 *
 * Security: every reply carries a strict Content-Security-Policy (no inline script,
 * Trusted Types required, frame-ancestors 'none'), X-Content-Type-Options: nosniff,
 * Referrer-Policy: no-referrer; a listener off loopback speaks TLS only and requires
 * web_auth credentials (see auth.h); actions need the admin role and a CSRF token.
 *
 * Life cycle (as serve.c's privilege separation wants it): web_open() binds while
 * still privileged and starts no thread; web_start() starts the workers and hooks the
 * metrics into the event store once the daemon runs as its user; web_free() after the
 * loop stopped.
 */
#ifndef MXB_WEB_WEB_H
#define MXB_WEB_WEB_H

#include <openssl/ssl.h>

struct event_base;
struct mxb_config;
struct eventstore;
struct web;

/* NULL with *err_r NULL when web_listen is empty (no web server); NULL with *err_r
 * (malloc'd) when a socket cannot be bound.  tls: the daemon's TLS context, used by
 * listeners off loopback. */
struct web *web_open(struct event_base *base, const struct mxb_config *cfg, SSL_CTX *tls,
		     char **err_r);
/* The guard of this daemon (may be NULL), before web_start: the decision actions
 * are applied through it, on the loop thread. */
struct guard;
void web_set_guard(struct web *w, struct guard *g);
/* Start the workers; es (may be NULL) feeds /metrics and the live stream. */
int web_start(struct web *w, struct eventstore *es, char **err_r);
void web_free(struct web **w);

#endif
