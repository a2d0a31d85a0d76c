/*
 * api: what a web worker thread does with one request: authentication, routing, the
 * JSON API (through src/query/, the CLI's own serializer), pages, /metrics.
 *
 * A job is a copy of everything the handler needs from the request (the loop thread
 * made it; the worker never touches libevent objects), and the reply it fills in.
 * Adding an endpoint is one row in the route table of api.c and one handler; an
 * action is one row in the action table.
 *
 * Actions that change the guard's decisions run on the network loop, the guard's
 * thread (the guard is their one writer and is not thread-safe): the worker checks
 * the request and leaves the prepared change in job->loop; the loop thread applies it
 * (web_api_loop) just before it sends the reply.
 */
#ifndef MXB_WEB_API_H
#define MXB_WEB_API_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util/buf.h"
#include "web/auth.h"

struct evhttp_request;
struct sqlite3;
struct guard;
struct allowlist;
struct web_loop_action;
struct metrics;
struct eventstore;
struct mxb_config;

enum web_reply_kind { REPLY_BODY, REPLY_FILE, REPLY_STREAM };

struct web_job {
	struct web_job *next;
	/* request (copied on the loop) */
	struct evhttp_request *req; /* the loop's handle; never used by the worker */
	int method;                 /* EVHTTP_REQ_* */
	char *path;                 /* decoded path */
	char *query;                /* raw query string or NULL */
	char *authz, *csrf, *origin, *host, *sec_fetch_site, *content_type_in;
	char *body_in;              /* the request body (POST; at most 16 KiB), or NULL */
	size_t body_in_len;
	char peer[64];
	bool loopback;              /* the listener is on loopback */
	bool tls;
	int64_t started_ms;
	/* reply (filled by the worker) */
	int status;
	const char *reason;
	enum web_reply_kind kind;
	const char *content_type;
	char *disposition;          /* Content-Disposition, or NULL */
	bool cacheable;             /* static assets: may be cached briefly */
	bool sandboxed_html;        /* a message's HTML for the dashboard's frame: sent with
				     * its own CSP (sandbox, no script, no network) */
	bool www_authenticate;
	long age_s;                 /* from the cache: the Age header; -1 fresh */
	struct buf body;
	int fd;                     /* REPLY_FILE */
	int64_t file_len;
	char user[65];
	enum web_role role;
	struct web_loop_action *loop; /* set by the worker: web_api_loop() finishes the job */
};

/* What every worker shares (read-only after start, or internally locked). */
struct web_cache;

struct web_shared {
	const struct mxb_config *cfg;
	struct web_auth *auth;
	struct metrics *metrics;
	struct eventstore *es;
	char db_path[4096], adb_path[4096];
	struct web_cache *cache; /* the aggregates' replies (web_cache_new) */
	struct web_geoip *geoip; /* geoip_file, or NULL */
	struct guard *guard;     /* the guard of this daemon, or NULL (loop thread only) */
	struct allowlist *allowlist; /* marks allowlisted indicators (NULL: none) */
	char idb_path[4096];     /* intel.db */
};

/* Per worker: its own read-only connections, opened on first use. */
struct web_worker_db {
	struct sqlite3 *db, *adb, *idb;
	int64_t deadline_ms; /* the SQL time limit of the current job */
};

void web_api_handle(const struct web_shared *sh, struct web_worker_db *wdb, struct web_job *j);
/* POST /api/v1/actions/NAME (actions.c), after the role and CSRF checks. */
void web_action_run(const struct web_shared *sh, struct web_job *j, const char *name);
/* The loop thread's part of a job with j->loop set: apply it, fill the reply. */
void web_api_loop(const struct web_shared *sh, struct web_job *j);
void web_loop_action_free(struct web_loop_action **a);
/* The network loop's shortcut: a GET of a cached aggregate by a login already known
 * (or anonymous on loopback) is answered from the cache without a thread hop.  Never
 * computes a hash or runs SQL; true when j holds the reply. */
bool web_api_fast(const struct web_shared *sh, struct web_job *j);

/*
 * The cache of the aggregates (stats, timeseries, credentials, attackers, countries):
 * with a million events they take up to seconds of SQL, too slow for a dashboard that polls, and
 * costly for the two cores the mail sessions need.  A reply is kept per URL and served
 * while fresh (10 s, or five times what computing it cost, whichever is longer); a
 * stale one is still served at once and recomputed in the background by one low
 * priority thread, only for URLs asked for in the last minute.  The reply's Age header
 * says how old it is.
 */
struct web_cache *web_cache_new(void);
void web_cache_free(struct web_cache **c);
/* The refresher thread's body; returns when web_cache_stop() is called. */
void *web_cache_thread(void *shared);
void web_cache_stop(struct web_cache *c);
void web_worker_db_close(struct web_worker_db *wdb);

/* A JSON error body {"error": msg} with status. */
void web_job_error(struct web_job *j, int status, const char *msg);

#endif
