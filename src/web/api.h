/*
 * api: what a web worker thread does with one request: authentication, routing, the
 * JSON API (through src/query/, the CLI's own serializer), pages, /metrics.
 *
 * A job is a copy of everything the handler needs from the request (the loop thread
 * made it; the worker never touches libevent objects), and the reply it fills in.
 * Adding an endpoint (decisions, reports when those features exist) is one row in the
 * route table of api.c and one handler.
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
	char *authz, *csrf, *origin, *host, *sec_fetch_site;
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
	bool www_authenticate;
	struct buf body;
	int fd;                     /* REPLY_FILE */
	int64_t file_len;
	char user[65];
	enum web_role role;
};

/* What every worker shares (read-only after start, or internally locked). */
struct web_shared {
	const struct mxb_config *cfg;
	struct web_auth *auth;
	struct metrics *metrics;
	struct eventstore *es;
	char db_path[4096], adb_path[4096];
};

/* Per worker: its own read-only connections, opened on first use. */
struct web_worker_db {
	struct sqlite3 *db, *adb;
	int64_t deadline_ms; /* the SQL time limit of the current job */
};

void web_api_handle(const struct web_shared *sh, struct web_worker_db *wdb, struct web_job *j);
void web_worker_db_close(struct web_worker_db *wdb);

/* A JSON error body {"error": msg} with status. */
void web_job_error(struct web_job *j, int status, const char *msg);

#endif
