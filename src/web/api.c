/*
 * api: authentication, routing and the handlers of the web server, run on a worker
 * thread (see api.h and docs/api.md).
 *
 * Promises: a request is authorised before any handler runs; every parameter is
 * checked (an unknown one, a bad number or cursor is 400 with a message); JSON comes
 * from src/query/ (the CLI's serializer) and is never built from request text; a
 * message's raw bytes are served only as message/rfc822 with Content-Disposition:
 * attachment; the SQL of a request stops after 10 s (503).
 */
#include "web/api.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "analyze/analyze.h"
#include "core/config.h"
#include "federate/feed_path.h"
#include "query/attackers.h"
#include "query/creds.h"
#include "query/decisions.h"
#include "query/intel.h"
#include "query/query.h"
#include "query/reports.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"
#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "web/assets.h"
#include "web/geoip.h"
#include "web/metrics.h"

#define SQL_TIME_LIMIT_MS 10000
#define DEFAULT_LIMIT 50
#define MESSAGE_TEXT_MAX (256 * 1024) /* the message view's text; the rest: raw download */
#define HTML_MESSAGE_MAX (16 << 20)   /* bytes of a message parsed for its HTML view */
#define HTML_BODY_MAX (1 << 20)       /* bytes of HTML the view shows */
#define PARAMS_MAX 16

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void web_job_error(struct web_job *j, int status, const char *msg)
{
	j->status = status;
	j->kind = REPLY_BODY;
	j->content_type = "application/json; charset=utf-8";
	buf_reset(&j->body);
	struct jw w;
	jw_init(&w, &j->body);
	jw_begin_object(&w, NULL);
	jw_cstr(&w, "error", msg);
	jw_end_object(&w);
	buf_putc(&j->body, '\n');
}

/* ---- database connections of this worker ---- */

static int progress(void *arg)
{
	const struct web_worker_db *wdb = arg;
	return mono_ms() > wdb->deadline_ms; /* non-zero interrupts the statement */
}

void web_worker_db_close(struct web_worker_db *wdb)
{
	if (wdb->db)
		sqlite3_close(wdb->db);
	if (wdb->adb)
		sqlite3_close(wdb->adb);
	if (wdb->idb)
		sqlite3_close(wdb->idb);
	wdb->db = wdb->adb = wdb->idb = NULL;
}

static int open_dbs(const struct web_shared *sh, struct web_worker_db *wdb, char **err_r)
{
	if (!wdb->db) {
		sqlite3 *db = NULL;
		if (db_open_ro(sh->db_path, &db, err_r) != DB_OK)
			return -1;
		db_register_functions(db);
		sqlite3_progress_handler(db, 10000, progress, wdb);
		wdb->db = db;
	}
	if (!wdb->adb) {
		/* analysis.db appears when the analyzer stores its first message: looked for
		 * again on every request until then.  READWRITE without CREATE, then
		 * query_only (a WAL reader may need to create the -shm file). */
		struct stat st;
		sqlite3 *adb = NULL;
		if (stat(sh->adb_path, &st) == 0) {
			if (sqlite3_open_v2(sh->adb_path, &adb, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
				sqlite3_close(adb);
				adb = NULL;
				if (sqlite3_open_v2(sh->adb_path, &adb, SQLITE_OPEN_READONLY, NULL) !=
				    SQLITE_OK) {
					sqlite3_close(adb);
					adb = NULL;
				}
			}
		}
		if (adb) {
			sqlite3_busy_timeout(adb, 5000);
			sqlite3_exec(adb, "PRAGMA query_only=1", NULL, NULL, NULL);
			sqlite3_progress_handler(adb, 10000, progress, wdb);
			/* Not ready yet (no tables) counts as absent. */
			if (sqlite3_exec(adb, "SELECT 1 FROM messages LIMIT 0", NULL, NULL, NULL) ==
			    SQLITE_OK)
				wdb->adb = adb;
			else
				sqlite3_close(adb);
		}
	}
	if (!wdb->idb) {
		/* intel.db appears when the reporter (or `mxbait indicators`) first runs:
		 * looked for again until then, never created here. */
		struct stat st;
		char *e = NULL;
		sqlite3 *idb = stat(sh->idb_path, &st) == 0 ? intel_db_open_ro(sh->cfg->data_dir, &e)
							     : NULL;
		free(e);
		if (idb) {
			sqlite3_busy_timeout(idb, 5000);
			sqlite3_progress_handler(idb, 10000, progress, wdb);
			wdb->idb = idb;
		}
	}
	return 0;
}

/* ---- parameters ---- */

struct params {
	struct evkeyvalq kv;
	bool parsed;
};

static const char *param(struct params *p, const char *name)
{
	return p->parsed ? evhttp_find_header(&p->kv, name) : NULL;
}

/* Every parameter must be one the endpoint knows (a typo is an error, not ignored). */
static bool params_known(struct web_job *j, struct params *p, const char *const *known)
{
	if (!p->parsed)
		return true;
	for (struct evkeyval *kv = p->kv.tqh_first; kv; kv = kv->next.tqe_next) {
		bool ok = false;
		for (size_t i = 0; known && known[i]; i++)
			if (!strcmp(kv->key, known[i]))
				ok = true;
		if (!ok) {
			struct buf m;
			buf_init(&m, 0);
			buf_puts(&m, "unknown parameter '");
			/* Shown as JSON text by the writer; cut to keep the reply small. */
			buf_append(&m, kv->key, strnlen(kv->key, 40));
			buf_puts(&m, "'");
			web_job_error(j, 400, m.data);
			buf_free(&m);
			return false;
		}
	}
	return true;
}

static bool param_long(struct web_job *j, struct params *p, const char *name, long min,
		       long max, long *v)
{
	const char *s = param(p, name);
	if (!s)
		return true;
	long x;
	if (intel_parse_count(s, min, &x) < 0 || x > max) {
		char m[128];
		snprintf(m, sizeof(m), "bad %s (a whole number from %ld to %ld)", name, min, max);
		web_job_error(j, 400, m);
		return false;
	}
	*v = x;
	return true;
}

static bool param_duration(struct web_job *j, struct params *p, const char *name, int64_t *us)
{
	const char *s = param(p, name);
	if (!s)
		return true;
	if (intel_parse_duration(s, us) < 0) {
		char m[128];
		snprintf(m, sizeof(m), "bad %s (a duration: 90s, 30m, 24h, 7d, 2w)", name);
		web_job_error(j, 400, m);
		return false;
	}
	return true;
}

static bool param_text(struct web_job *j, struct params *p, const char *name, size_t max,
		       const char **v)
{
	const char *s = param(p, name);
	if (!s)
		return true;
	if (!*s || strlen(s) > max) {
		char m[128];
		snprintf(m, sizeof(m), "bad %s (1 to %zu bytes)", name, max);
		web_job_error(j, 400, m);
		return false;
	}
	*v = s;
	return true;
}

/* ---- replies ---- */

static void json_reply(struct web_job *j)
{
	j->status = 200;
	j->content_type = "application/json; charset=utf-8";
	buf_putc(&j->body, '\n');
}

static void query_failed(struct web_job *j, int status, struct buf *err)
{
	if (status == QUERY_BAD_ARG)
		web_job_error(j, 400, err->data ? err->data : "bad parameter");
	else if (status == QUERY_NOT_FOUND)
		web_job_error(j, 404, "not found");
	else if (err->data && strstr(err->data, "interrupt"))
		web_job_error(j, 503, "the query took too long");
	else
		web_job_error(j, 500, "query failed");
}

/* A list page: {"data": [...], "next_cursor": "..."|null}. */
struct page_out {
	struct jw w;
	struct buf inner;
};

static void page_begin(struct page_out *po)
{
	buf_init(&po->inner, 0);
	jw_init(&po->w, &po->inner);
}

static void page_end(struct web_job *j, struct page_out *po, int status, struct buf *err,
		     const struct query_page *pg)
{
	if (status == QUERY_NO_ANALYSIS || status == QUERY_NO_INTEL) {
		/* Nothing analysed or reported yet: an empty list, not an error. */
		buf_reset(&po->inner);
		buf_puts(&po->inner, "[]");
		status = QUERY_OK;
	}
	if (status != QUERY_OK) {
		query_failed(j, status, err);
		buf_free(&po->inner);
		return;
	}
	struct jw w;
	buf_reset(&j->body);
	jw_init(&w, &j->body);
	jw_begin_object(&w, NULL);
	jw_raw(&w, "data", po->inner.data, po->inner.len);
	if (pg && pg->next[0])
		jw_cstr(&w, "next_cursor", pg->next);
	else
		jw_null(&w, "next_cursor");
	jw_end_object(&w);
	buf_free(&po->inner);
	json_reply(j);
}

static bool page_params(struct web_job *j, struct params *p, struct query_page *pg)
{
	long limit = DEFAULT_LIMIT;
	if (!param_long(j, p, "limit", 1, QUERY_PAGE_MAX, &limit))
		return false;
	pg->limit = limit;
	pg->cursor = NULL;
	return param_text(j, p, "cursor", QUERY_CURSOR_MAX - 1, &pg->cursor);
}

/* ---- handlers ---- */

struct ctx {
	const struct web_shared *sh;
	struct web_worker_db *wdb;
	struct query_db q;
	struct params *p;
	const char *arg;  /* the {id} of the path, decoded */
	const char *arg2; /* what follows it ("raw") */
};

static void h_stats(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {NULL};
	if (!params_known(j, c->p, known))
		return;
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st = query_stats(&c->q, &w, &err);
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void h_timeseries(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"series", "since", "step", NULL};
	if (!params_known(j, c->p, known))
		return;
	const char *name = param(c->p, "series");
	int series = query_series_parse(name ? name : "auth");
	if (series < 0) {
		web_job_error(j, 400, "bad series (auth, sessions, messages or sources)");
		return;
	}
	int64_t since = 3600LL * 1000000, step = 60LL * 1000000;
	if (!param_duration(j, c->p, "since", &since) || !param_duration(j, c->p, "step", &step))
		return;
	int64_t now = mxb_now_us();
	/* Aligned on the step, so successive polls show the same buckets. */
	int64_t to = (now / step + 1) * step, from = to - ((since + step - 1) / step) * step;
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st = query_timeseries(&c->q, series, from, to, step, &w, &err);
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void h_sessions(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"ip", "limit", "cursor", NULL};
	struct query_page pg = {0};
	const char *ip = NULL;
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg) ||
	    !param_text(j, c->p, "ip", 63, &ip))
		return;
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_sessions(&c->q, ip, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void h_session(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {NULL};
	if (!params_known(j, c->p, known))
		return;
	if (c->arg2) {
		web_job_error(j, 404, "no such endpoint");
		return;
	}
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st = query_session_events(&c->q, c->arg, &w, &err);
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void h_messages(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"limit", "cursor", NULL};
	struct query_page pg = {0};
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg))
		return;
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_messages(&c->q, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void h_message_raw(struct web_job *j, struct ctx *c)
{
	char *path = NULL;
	int64_t size = 0;
	int st = query_message_file(&c->q, c->arg, &path, &size);
	if (st != QUERY_OK) {
		web_job_error(j, st == QUERY_NOT_FOUND ? 404 : 500,
			      st == QUERY_NOT_FOUND ? "no such message (or its file is gone)"
						    : "query failed");
		free(path);
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	free(path);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		web_job_error(j, 404, "the message file is gone");
		return;
	}
	j->fd = fd;
	j->file_len = sb.st_size;
	j->kind = REPLY_FILE;
	j->status = 200;
	j->content_type = "message/rfc822";
	/* The queue id is [0-9A-F] in practice, but it came from the database: only
	 * [A-Za-z0-9] make it into the file name. */
	char name[80];
	size_t n = 0;
	for (const char *s = c->arg; *s && n < 40; s++)
		if ((*s >= '0' && *s <= '9') || (*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z'))
			name[n++] = *s;
	name[n] = '\0';
	if (asprintf(&j->disposition, "attachment; filename=\"mxbait-%s.eml\"",
		     n ? name : "message") < 0)
		j->disposition = NULL;
}

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

/* The message's HTML body for the message view's sandboxed frame (server.c sends it
 * with its own CSP: sandbox, no script, no network).  The rest of the dashboard never
 * renders attacker HTML. */
static void h_message_html(struct web_job *j, struct ctx *c)
{
	char *path = NULL;
	int64_t size = 0;
	int st = query_message_file(&c->q, c->arg, &path, &size);
	if (st != QUERY_OK) {
		free(path);
		web_job_error(j, st == QUERY_NOT_FOUND ? 404 : 500,
			      st == QUERY_NOT_FOUND ? "no such message (or its file is gone)"
						    : "query failed");
		return;
	}
	struct buf raw;
	buf_init(&raw, 0);
	uint64_t total = 0;
	char sha[65];
	int rc = query_read_file(path, HTML_MESSAGE_MAX, &raw, &total, sha);
	free(path);
	if (rc < 0) {
		buf_free(&raw);
		web_job_error(j, 404, "the message file is gone");
		return;
	}
	pthread_once(&mime_once, analyze_mime_init);
	bool cut = false;
	buf_reset(&j->body);
	rc = analyze_html_body(raw.data ? raw.data : "", raw.len, HTML_BODY_MAX, &j->body, &cut);
	buf_free(&raw);
	if (rc <= 0) {
		web_job_error(j, 404, "the message has no HTML part");
		return;
	}
	j->status = 200;
	j->content_type = "text/html; charset=utf-8";
	j->sandboxed_html = true;
}

static void h_message(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {NULL};
	if (!params_known(j, c->p, known))
		return;
	if (c->arg2 && !strcmp(c->arg2, "raw")) {
		h_message_raw(j, c);
		return;
	}
	if (c->arg2 && !strcmp(c->arg2, "html")) {
		h_message_html(j, c);
		return;
	}
	if (c->arg2) {
		web_job_error(j, 404, "no such endpoint");
		return;
	}
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st = query_message(&c->q, c->arg, MESSAGE_TEXT_MAX, &w, &err);
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void h_auth_attempts(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"ip", "username", "limit", "cursor", NULL};
	struct query_page pg = {0};
	const char *ip = NULL, *user = NULL;
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg) ||
	    !param_text(j, c->p, "ip", 63, &ip) || !param_text(j, c->p, "username", 512, &user))
		return;
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_auth_attempts(&c->q, ip, user, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void intel_reply(struct web_job *j, struct intel_out *out)
{
	char *json = NULL;
	size_t len = 0;
	int rc = intel_finish(out, &json, &len);
	if (rc < 0 || !json) {
		free(json);
		web_job_error(j, 500, "query failed");
		return;
	}
	buf_reset(&j->body);
	buf_append(&j->body, json, len);
	free(json);
	json_reply(j);
}

static void h_credentials(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"since", "top", "window", "min_ips", NULL};
	const struct mxb_config *cfg = c->sh->cfg;
	long top = INTEL_DEFAULT_TOP, min_ips = cfg->distributed_min_ips;
	int64_t since = 0, window = (int64_t)cfg->distributed_window_ms * 1000;
	if (!params_known(j, c->p, known) || !param_duration(j, c->p, "since", &since) ||
	    !param_long(j, c->p, "top", 1, QUERY_PAGE_MAX, &top) ||
	    !param_duration(j, c->p, "window", &window) ||
	    !param_long(j, c->p, "min_ips", 1, 1000000, &min_ips))
		return;
	int64_t since_us = since ? mxb_now_us() - since : 0;
	struct query_creds_args a = {.since_us = since_us, .window_us = window, .min_ips = min_ips,
				     .data_dir = cfg->data_dir};
	struct intel_out out;
	intel_begin(&out, c->q.db, true, since_us, top);
	if (query_creds(&out, &a) < 0) {
		char *x = NULL;
		intel_finish(&out, &x, NULL);
		free(x);
		web_job_error(j, 500, "query failed");
		return;
	}
	intel_reply(j, &out);
}

static void h_attackers(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"since", "top", NULL};
	long top = INTEL_DEFAULT_TOP;
	int64_t since = 0;
	if (!params_known(j, c->p, known) || !param_duration(j, c->p, "since", &since) ||
	    !param_long(j, c->p, "top", 1, QUERY_PAGE_MAX, &top))
		return;
	int64_t since_us = since ? mxb_now_us() - since : 0;
	struct intel_out out;
	intel_begin(&out, c->q.db, true, since_us, top);
	query_attackers(&out);
	intel_reply(j, &out);
}

static void h_countries(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"since", "top", NULL};
	long top = 0;
	int64_t since = 0;
	if (!params_known(j, c->p, known) || !param_duration(j, c->p, "since", &since) ||
	    !param_long(j, c->p, "top", 1, QUERY_PAGE_MAX, &top))
		return;
	if (!c->sh->geoip) {
		web_job_error(j, 404, "no geoip_file configured");
		return;
	}
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st = query_countries(&c->q, since ? mxb_now_us() - since : 0, top, web_geoip_lookup,
				 c->sh->geoip, &w, &err);
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void analysis_list(struct web_job *j, struct ctx *c, const struct aq_def *d,
			  const char *const *params, size_t n)
{
	struct query_page pg = {0};
	if (!page_params(j, c->p, &pg))
		return;
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_analysis(&c->q, d, params, n, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void h_links(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"domain", "flag", "limit", "cursor", NULL};
	const char *domain = NULL, *flag = NULL;
	if (!params_known(j, c->p, known) || !param_text(j, c->p, "domain", 255, &domain) ||
	    !param_text(j, c->p, "flag", 64, &flag))
		return;
	const char *params[] = {domain, flag};
	analysis_list(j, c, &aq_urls, params, 2);
}

static void h_domains(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"limit", "cursor", NULL};
	if (params_known(j, c->p, known))
		analysis_list(j, c, &aq_domains, NULL, 0);
}

static void h_recipients(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"domain", "by", "limit", "cursor", NULL};
	const char *domain = NULL, *by = NULL;
	if (!params_known(j, c->p, known) || !param_text(j, c->p, "domain", 255, &domain) ||
	    !param_text(j, c->p, "by", 16, &by))
		return;
	if (by && strcmp(by, "domain") && strcmp(by, "address")) {
		web_job_error(j, 400, "bad by (address or domain)");
		return;
	}
	if (by && !strcmp(by, "domain")) {
		analysis_list(j, c, &aq_recipient_domains, NULL, 0);
		return;
	}
	const char *params[] = {domain};
	analysis_list(j, c, &aq_recipients, params, 1);
}

static void h_campaigns(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"limit", "cursor", NULL};
	if (!params_known(j, c->p, known))
		return;
	if (c->arg2) {
		web_job_error(j, 404, "no such endpoint");
		return;
	}
	if (c->arg) {
		const char *params[] = {c->arg};
		analysis_list(j, c, &aq_campaign_messages, params, 1);
		return;
	}
	analysis_list(j, c, &aq_campaigns, NULL, 0);
}

/* A yes/no parameter: 1/0, true/false, yes/no. */
static bool param_bool(struct web_job *j, struct params *p, const char *name, bool *v)
{
	const char *s = param(p, name);
	if (!s)
		return true;
	if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "yes")) {
		*v = true;
	} else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "no")) {
		*v = false;
	} else {
		char m[96];
		snprintf(m, sizeof(m), "bad %s (true or false)", name);
		web_job_error(j, 400, m);
		return false;
	}
	return true;
}

static void h_decisions(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"all", "limit", "cursor", NULL};
	struct query_page pg = {0};
	bool all = false;
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg) ||
	    !param_bool(j, c->p, "all", &all))
		return;
	if (c->arg) {
		web_job_error(j, 404, "no such endpoint");
		return;
	}
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_decisions(&c->q, all, mxb_now_us(), &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

/* One report: /reports/ID, /reports/ID/payload, and /reports/stats. */
static void h_report(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {NULL};
	if (!params_known(j, c->p, known))
		return;
	struct buf err;
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &j->body);
	int st;
	if (!strcmp(c->arg, "stats") && !c->arg2) {
		st = query_report_stats(&c->q, &w, &err);
		if (st == QUERY_NO_INTEL) {
			buf_puts(&j->body, "{}");
			st = QUERY_OK;
		}
	} else {
		long id = 0;
		if (intel_parse_count(c->arg, 1, &id) < 0 ||
		    (c->arg2 && strcmp(c->arg2, "payload"))) {
			buf_free(&err);
			web_job_error(j, 404, "no such endpoint");
			return;
		}
		if (c->arg2) {
			/* The rendered report, byte for byte as a sink sends it: a download (an
			 * .eml or JSON), never a page: its text is attacker-derived. */
			st = query_report_payload(&c->q, id, &j->body, &err);
			if (st == QUERY_OK) {
				j->status = 200;
				j->content_type = "application/octet-stream";
				if (asprintf(&j->disposition, "attachment; filename=\"mxbait-report-%ld\"",
					     id) < 0)
					j->disposition = NULL;
				buf_free(&err);
				return;
			}
		} else {
			st = query_report(&c->q, id, &w, &err);
		}
		if (st == QUERY_NO_INTEL)
			st = QUERY_NOT_FOUND;
	}
	if (st == QUERY_OK)
		json_reply(j);
	else
		query_failed(j, st, &err);
	buf_free(&err);
}

static void h_reports(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"state", "sink", "limit", "cursor", NULL};
	struct query_page pg = {0};
	const char *state = NULL, *sink = NULL;
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg) ||
	    !param_text(j, c->p, "state", 16, &state) || !param_text(j, c->p, "sink", 16, &sink))
		return;
	if (state) {
		bool ok = false;
		for (size_t i = 0; query_report_states[i]; i++)
			if (!strcmp(state, query_report_states[i]))
				ok = true;
		if (!ok) {
			web_job_error(j, 400, "bad state (addressing, queued, held, manual, sending, "
					      "transmitting, sent, duplicate, rejected, failed, expired, "
					      "unknown)");
			return;
		}
	}
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_reports(&c->q, state, sink, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void h_indicators(struct web_job *j, struct ctx *c)
{
	static const char *const known[] = {"kind", "since", "min_confidence", "limit", "cursor",
					    NULL};
	struct query_page pg = {0};
	const char *kind = NULL;
	int64_t since = 0;
	long minc = 0;
	if (!params_known(j, c->p, known) || !page_params(j, c->p, &pg) ||
	    !param_text(j, c->p, "kind", 200, &kind) || !param_duration(j, c->p, "since", &since) ||
	    !param_long(j, c->p, "min_confidence", 0, 100, &minc))
		return;
	struct indicator_filter f = {.min_confidence = (int)minc};
	if (kind) {
		const char *bad = NULL;
		f.kinds = indicator_kinds_parse(kind, &bad);
		if (!f.kinds) {
			web_job_error(j, 400, "bad kind (ip, prefix, url, domain, sender, sender_domain, "
					      "attachment, recipient, recipient_domain, campaign)");
			return;
		}
	}
	if (since)
		f.since_us = mxb_now_us() - since;
	struct page_out po;
	struct buf err;
	buf_init(&err, 0);
	page_begin(&po);
	int st = query_indicators(&c->q, &f, c->sh->allowlist, &pg, &po.w, &err);
	page_end(j, &po, st, &err, &pg);
	buf_free(&err);
}

static void h_whoami(struct web_job *j, struct ctx *c)
{
	struct jw w;
	jw_init(&w, &j->body);
	jw_begin_object(&w, NULL);
	jw_cstr(&w, "user", j->user);
	jw_cstr(&w, "role", web_role_name(j->role));
	char csrf[65];
	web_auth_csrf(c->sh->auth, j->user, csrf);
	jw_cstr(&w, "csrf_token", j->role == WEB_ROLE_ADMIN ? csrf : NULL);
	jw_bool(&w, "geoip", c->sh->geoip != NULL);
	jw_bool(&w, "guard", c->sh->guard != NULL);
	jw_cstr(&w, "version", MXB_VERSION);
	jw_end_object(&w);
	json_reply(j);
}

/* What this server offers, so a client can find out which optional features
 * (decisions, reports) exist in this build. */
static void h_index(struct web_job *j, struct ctx *c);

static void h_metrics(struct web_job *j, struct ctx *c)
{
	struct metrics_disk d;
	memset(&d, 0, sizeof(d));
	const struct mxb_config *cfg = c->sh->cfg;
	d.spool_budget = cfg->spool_budget;
	struct query_spool_usage su;
	query_spool_usage(cfg->data_dir, &su);
	d.spool_bytes = su.bytes;
	d.spool_files = su.files;
	struct stat sb;
	char p[4200];
	const char *suffix[] = {"", "-wal"};
	for (int i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s%s", c->sh->db_path, suffix[i]);
		if (stat(p, &sb) == 0)
			d.db_bytes += (uint64_t)sb.st_size;
		snprintf(p, sizeof(p), "%s%s", c->sh->adb_path, suffix[i]);
		if (stat(p, &sb) == 0)
			d.analysis_db_bytes += (uint64_t)sb.st_size;
	}
	d.ok = true;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->q.db, "SELECT coalesce(sum(NOT fixed), 0), coalesce(sum(fixed), 0)"
					" FROM accounts WHERE password IS NOT NULL",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		d.accounts_cracked = sqlite3_column_int64(st, 0);
		d.accounts_fixed = sqlite3_column_int64(st, 1);
	} else {
		d.ok = false;
	}
	sqlite3_finalize(st);
	/* Analyzer lag: spool/new files without a spool_done row in analysis.db. */
	snprintf(p, sizeof(p), "%s/%s/new", cfg->data_dir, MXB_SPOOL_DIR);
	DIR *dir = opendir(p);
	sqlite3_stmt *done = NULL;
	if (c->q.adb) {
		sqlite3_prepare_v2(c->q.adb, "SELECT 1 FROM spool_done WHERE name = ?1", -1, &done,
				   NULL);
		sqlite3_stmt *cnt = NULL;
		if (sqlite3_prepare_v2(c->q.adb, "SELECT count(*) FROM messages", -1, &cnt, NULL) ==
			    SQLITE_OK &&
		    sqlite3_step(cnt) == SQLITE_ROW)
			d.analysis_messages = sqlite3_column_int64(cnt, 0);
		sqlite3_finalize(cnt);
	}
	time_t oldest = 0;
	struct dirent *de;
	while (dir && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		bool analysed = false;
		if (done) {
			sqlite3_reset(done);
			sqlite3_bind_text(done, 1, de->d_name, -1, SQLITE_STATIC);
			analysed = sqlite3_step(done) == SQLITE_ROW;
		}
		if (analysed || !cfg->analyzer)
			continue;
		d.analyzer_backlog++;
		if (fstatat(dirfd(dir), de->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
		    (!oldest || sb.st_mtime < oldest))
			oldest = sb.st_mtime;
	}
	if (dir)
		closedir(dir);
	sqlite3_finalize(done);
	if (oldest) {
		double lag = difftime(time(NULL), oldest);
		d.analyzer_lag_s = lag > 0 ? lag : 0;
	}
	d.decisions_ok = query_decisions_count(&c->q, mxb_now_us(), d.decisions_active) == 0;
	if (c->q.idb) {
		/* reports by sink and state; a sink name becomes a label value: only names
		 * of the reporter's form are taken */
		sqlite3_stmt *rs = NULL;
		if (sqlite3_prepare_v2(c->q.idb, "SELECT sink, state, count(*) FROM outbox"
						 " GROUP BY sink, state ORDER BY sink, state",
				       -1, &rs, NULL) == SQLITE_OK) {
			d.intel = true;
			while (sqlite3_step(rs) == SQLITE_ROW && d.n_reports < METRICS_REPORT_ROWS) {
				const char *sink = (const char *)sqlite3_column_text(rs, 0);
				const char *state = (const char *)sqlite3_column_text(rs, 1);
				struct metrics_report_row *row = &d.reports[d.n_reports];
				if (!sink || !state || strlen(sink) >= sizeof(row->sink) ||
				    strlen(state) >= sizeof(row->state) ||
				    strspn(sink, "abcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(sink))
					continue;
				snprintf(row->sink, sizeof(row->sink), "%s", sink);
				snprintf(row->state, sizeof(row->state), "%s", state);
				row->n = sqlite3_column_int64(rs, 2);
				d.n_reports++;
			}
		}
		sqlite3_finalize(rs);
	}
	struct eventstore_stats es;
	if (c->sh->es)
		eventstore_get_stats(c->sh->es, &es);
	metrics_render(c->sh->metrics, c->sh->es ? &es : NULL, &d, &j->body);
	j->status = 200;
	j->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void h_stream(struct web_job *j, struct ctx *c)
{
	(void)c;
	j->status = 200;
	j->kind = REPLY_STREAM;
}

/* Actions change state (allow an IP, release a decision, hold a report): POST, admin
 * role, CSRF token, same origin, all checked before this runs (actions.c). */
static void h_action(struct web_job *j, struct ctx *c)
{
	if (c->arg2) {
		web_job_error(j, 404, "no such action");
		return;
	}
	web_action_run(c->sh, j, c->arg);
}

struct route {
	int method;          /* EVHTTP_REQ_GET (HEAD too) or EVHTTP_REQ_POST */
	const char *prefix;  /* path, or prefix ending in '/' that takes an {id} */
	bool with_id;        /* the path continues with /{id}[/{sub}] */
	bool needs_db;
	bool action;         /* admin + CSRF */
	bool cached;         /* a whole-history aggregate: through the web cache */
	void (*fn)(struct web_job *j, struct ctx *c);
	const char *doc;     /* for GET /api/v1 */
};

static const struct route routes[] = {
	{EVHTTP_REQ_GET, "/api/v1", false, false, false, false, h_index, "this list"},
	{EVHTTP_REQ_GET, "/api/v1/whoami", false, false, false, false, h_whoami, "user, role, CSRF token"},
	{EVHTTP_REQ_GET, "/api/v1/stats", false, true, false, true, h_stats, "totals (mxbait stats)"},
	{EVHTTP_REQ_GET, "/api/v1/timeseries", false, true, false, true, h_timeseries,
	 "counts per step: series=auth|sessions|messages|sources, since, step"},
	{EVHTTP_REQ_GET, "/api/v1/sessions", false, true, false, false, h_sessions, "sessions (mxbait sessions)"},
	{EVHTTP_REQ_GET, "/api/v1/sessions", true, true, false, false, h_session, "a session's events"},
	{EVHTTP_REQ_GET, "/api/v1/messages", false, true, false, false, h_messages, "captured messages"},
	{EVHTTP_REQ_GET, "/api/v1/messages", true, true, false, false, h_message,
	 "a message (/raw: the bytes, message/rfc822; /html: its HTML body, sandboxed)"},
	{EVHTTP_REQ_GET, "/api/v1/auth-attempts", false, true, false, false, h_auth_attempts,
	 "AUTH attempts, newest first"},
	{EVHTTP_REQ_GET, "/api/v1/credentials", false, true, false, true, h_credentials,
	 "usernames, passwords, cracked accounts, enumeration (mxbait creds)"},
	{EVHTTP_REQ_GET, "/api/v1/attackers", false, true, false, true, h_attackers,
	 "IPs and networks (mxbait attackers)"},
	{EVHTTP_REQ_GET, "/api/v1/countries", false, true, false, true, h_countries,
	 "attackers per country (with geoip_file)"},
	{EVHTTP_REQ_GET, "/api/v1/links", false, true, false, false, h_links, "links in captured mail (mxbait urls)"},
	{EVHTTP_REQ_GET, "/api/v1/domains", false, true, false, false, h_domains, "link domains (mxbait domains)"},
	{EVHTTP_REQ_GET, "/api/v1/recipients", false, true, false, false, h_recipients,
	 "recipient addresses (mxbait recipients)"},
	{EVHTTP_REQ_GET, "/api/v1/campaigns", false, true, false, false, h_campaigns, "campaigns"},
	{EVHTTP_REQ_GET, "/api/v1/campaigns", true, true, false, false, h_campaigns, "a campaign's messages"},
	{EVHTTP_REQ_GET, "/api/v1/stream", false, false, false, false, h_stream,
	 "live counters (text/event-stream)"},
	{EVHTTP_REQ_GET, "/api/v1/decisions", false, true, false, false, h_decisions,
	 "the guard's decisions (mxbait decisions list)"},
	{EVHTTP_REQ_GET, "/api/v1/reports", false, true, false, false, h_reports,
	 "abuse reports in the outbox (mxbait report list)"},
	{EVHTTP_REQ_GET, "/api/v1/reports", true, true, false, false, h_report,
	 "a report (mxbait report show; /payload: its bytes), or /stats per sink"},
	{EVHTTP_REQ_GET, "/api/v1/indicators", false, true, false, false, h_indicators,
	 "indicators (mxbait indicators --no-update)"},
	{EVHTTP_REQ_POST, "/api/v1/actions", true, false, true, false, h_action,
	 "state changes (admin): decision-allow, decision-release, report-hold, "
	 "report-release, report-retry"},
	{EVHTTP_REQ_GET, "/metrics", false, true, false, false, h_metrics, "Prometheus metrics"},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

static void h_index(struct web_job *j, struct ctx *c)
{
	struct jw w;
	jw_init(&w, &j->body);
	jw_begin_object(&w, NULL);
	jw_cstr(&w, "version", "v1");
	jw_begin_array(&w, "endpoints");
	for (size_t i = 0; i < N_ROUTES; i++) {
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "method", routes[i].method == EVHTTP_REQ_POST ? "POST" : "GET");
		struct buf p;
		buf_init(&p, 0);
		buf_printf(&p, "%s%s", routes[i].prefix, routes[i].with_id ? "/{id}" : "");
		jw_cstr(&w, "path", p.data);
		buf_free(&p);
		jw_cstr(&w, "what", routes[i].doc);
		jw_end_object(&w);
	}
	jw_end_array(&w);
	jw_begin_array(&w, "features");
	jw_cstr(&w, NULL, "stats");
	jw_cstr(&w, NULL, "analysis");
	jw_cstr(&w, NULL, "decisions");
	jw_cstr(&w, NULL, "reports");
	jw_cstr(&w, NULL, "indicators");
	if (c->sh->geoip)
		jw_cstr(&w, NULL, "geoip");
	if (c->sh->guard)
		jw_cstr(&w, NULL, "guard");
	jw_end_array(&w);
	jw_end_object(&w);
	json_reply(j);
}

/* ---- static files ---- */

static bool serve_asset(struct web_job *j)
{
	const char *name = NULL;
	if (!strcmp(j->path, "/") || !strcmp(j->path, "/index.html"))
		name = "index.html";
	else if (!strncmp(j->path, "/static/", 8))
		name = j->path + 8;
	else if (!strcmp(j->path, "/favicon.ico") || !strcmp(j->path, "/favicon.svg"))
		name = "favicon.svg";
	if (!name)
		return false;
	for (size_t i = 0; i < web_n_assets; i++) {
		if (strcmp(web_assets[i].name, name))
			continue;
		buf_append(&j->body, web_assets[i].data, web_assets[i].len);
		j->status = 200;
		j->content_type = web_assets[i].type;
		j->cacheable = strcmp(name, "index.html") != 0;
		return true;
	}
	web_job_error(j, 404, "no such file");
	return true;
}

/* ---- the request ---- */

/* Same origin, as a browser tells it: Sec-Fetch-Site, else Origin against Host. */
static bool same_origin(const struct web_job *j)
{
	if (j->sec_fetch_site)
		return !strcmp(j->sec_fetch_site, "same-origin");
	if (!j->origin || !j->host)
		return !j->origin; /* no Origin: not a browser's cross-site request */
	const char *o = j->origin;
	if (!strncmp(o, "https://", 8))
		o += 8;
	else if (!strncmp(o, "http://", 7))
		o += 7;
	return !strcmp(o, j->host);
}

static bool authorise(const struct web_shared *sh, struct web_job *j)
{
	bool required = web_auth_required(sh->auth) || !j->loopback;
	if (j->authz && web_auth_required(sh->auth)) {
		j->role = web_auth_check(sh->auth, j->authz, j->user);
		if (j->role == WEB_ROLE_NONE) {
			web_auth_failed(sh->auth, j->peer, mono_ms());
			atomic_fetch_add_explicit(&sh->metrics->http_auth_failures, 1,
						  memory_order_relaxed);
			web_job_error(j, 401, "wrong credentials");
			j->www_authenticate = true;
			return false;
		}
		return true;
	}
	if (required) {
		web_job_error(j, 401, "login required");
		j->www_authenticate = true;
		return false;
	}
	j->role = WEB_ROLE_READ;
	snprintf(j->user, sizeof(j->user), "anonymous");
	return true;
}

/* Run route r for j (authorised already); rest: what follows the route's prefix. */
static void run_route(const struct web_shared *sh, struct web_worker_db *wdb, struct web_job *j,
		      const struct route *r, const char *rest, int64_t sql_limit_ms)
{
	/* {id}[/{sub}]: at most two segments. */
	char idbuf[256];
	const char *arg = NULL, *arg2 = NULL;
	if (rest) {
		size_t n = strcspn(rest, "/");
		if (n >= sizeof(idbuf)) {
			web_job_error(j, 400, "id too long");
			return;
		}
		memcpy(idbuf, rest, n);
		idbuf[n] = '\0';
		arg = idbuf;
		if (rest[n] == '/') {
			arg2 = rest + n + 1;
			if (!*arg2 || strchr(arg2, '/')) {
				web_job_error(j, 404, "no such endpoint");
				return;
			}
		}
	}
	struct params p;
	memset(&p, 0, sizeof(p));
	p.kv.tqh_first = NULL;
	p.kv.tqh_last = &p.kv.tqh_first;
	if (j->query && *j->query) {
		if (evhttp_parse_query_str(j->query, &p.kv) != 0) {
			evhttp_clear_headers(&p.kv);
			web_job_error(j, 400, "bad query string");
			return;
		}
		p.parsed = true;
		size_t n = 0;
		for (struct evkeyval *kv = p.kv.tqh_first; kv; kv = kv->next.tqe_next)
			n++;
		if (n > PARAMS_MAX) {
			evhttp_clear_headers(&p.kv);
			web_job_error(j, 400, "too many parameters");
			return;
		}
	}
	struct ctx c = {.sh = sh, .wdb = wdb, .p = &p, .arg = arg, .arg2 = arg2};
	bool in_tx = false;
	if (r->needs_db) {
		char *err = NULL;
		if (open_dbs(sh, wdb, &err) != 0) {
			free(err);
			evhttp_clear_headers(&p.kv);
			web_job_error(j, 503, "the database is not available yet");
			return;
		}
		wdb->deadline_ms = mono_ms() + sql_limit_ms;
		c.q = (struct query_db){.db = wdb->db, .adb = wdb->adb, .idb = wdb->idb,
					.data_dir = sh->cfg->data_dir,
					.spool_budget = sh->cfg->spool_budget};
		/* One snapshot per request. */
		in_tx = sqlite3_exec(wdb->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	}
	r->fn(j, &c);
	if (in_tx)
		sqlite3_exec(wdb->db, "COMMIT", NULL, NULL, NULL);
	if (r->needs_db)
		wdb->deadline_ms = INT64_MAX;
	evhttp_clear_headers(&p.kv);
}

/* ---- the cache of the aggregates ---- */

#define CACHE_ENTRIES 32
#define CACHE_TTL_MS 10000
#define CACHE_COST_FACTOR 5
#define CACHE_KEEP_MS 60000         /* refreshed while asked for within this */
#define CACHE_SQL_LIMIT_MS 120000   /* the refresher may take longer than a request */

struct cache_entry {
	char key[512];                  /* path?query */
	const struct route *route;
	char rest[256];
	bool has_rest;
	struct buf body;
	int status;
	int64_t computed_ms, requested_ms, cost_ms;
	bool stale_wanted;
};

struct web_cache {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct cache_entry e[CACHE_ENTRIES];
	bool stop;
};

struct web_cache *web_cache_new(void)
{
	struct web_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	return c;
}

void web_cache_free(struct web_cache **cp)
{
	struct web_cache *c = cp ? *cp : NULL;
	if (!c)
		return;
	for (size_t i = 0; i < CACHE_ENTRIES; i++)
		buf_free(&c->e[i].body);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	free(c);
	*cp = NULL;
}

void web_cache_stop(struct web_cache *c)
{
	pthread_mutex_lock(&c->mu);
	c->stop = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static int64_t entry_ttl(const struct cache_entry *e)
{
	int64_t t = e->cost_ms * CACHE_COST_FACTOR;
	return t > CACHE_TTL_MS ? t : CACHE_TTL_MS;
}

/* Serve j from the cache when there is an entry; true when served. */
static bool cache_serve(struct web_cache *c, struct web_job *j, const char *key)
{
	bool hit = false;
	int64_t now = mono_ms();
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < CACHE_ENTRIES && !hit; i++) {
		struct cache_entry *e = &c->e[i];
		if (!e->route || strcmp(e->key, key))
			continue;
		hit = true;
		e->requested_ms = now;
		buf_reset(&j->body);
		buf_append(&j->body, e->body.data, e->body.len);
		j->status = e->status;
		j->content_type = "application/json; charset=utf-8";
		j->age_s = (long)((now - e->computed_ms) / 1000);
		if (now - e->computed_ms >= entry_ttl(e) && !e->stale_wanted) {
			e->stale_wanted = true;
			pthread_cond_signal(&c->cv);
		}
	}
	pthread_mutex_unlock(&c->mu);
	return hit;
}

static void cache_store(struct web_cache *c, const char *key, const struct route *r,
			const char *rest, const struct web_job *j, int64_t cost_ms)
{
	if (j->status != 200)
		return; /* errors are not kept */
	int64_t now = mono_ms();
	pthread_mutex_lock(&c->mu);
	struct cache_entry *slot = NULL;
	for (size_t i = 0; i < CACHE_ENTRIES && !slot; i++)
		if (c->e[i].route && !strcmp(c->e[i].key, key))
			slot = &c->e[i];
	for (size_t i = 0; i < CACHE_ENTRIES && !slot; i++)
		if (!c->e[i].route)
			slot = &c->e[i];
	if (!slot) { /* full: the least recently asked for goes */
		slot = &c->e[0];
		for (size_t i = 1; i < CACHE_ENTRIES; i++)
			if (c->e[i].requested_ms < slot->requested_ms)
				slot = &c->e[i];
	}
	snprintf(slot->key, sizeof(slot->key), "%s", key);
	slot->route = r;
	slot->has_rest = rest != NULL;
	snprintf(slot->rest, sizeof(slot->rest), "%s", rest ? rest : "");
	buf_reset(&slot->body);
	buf_append(&slot->body, j->body.data, j->body.len);
	slot->status = j->status;
	slot->computed_ms = now;
	if (!slot->requested_ms)
		slot->requested_ms = now;
	slot->cost_ms = cost_ms;
	slot->stale_wanted = false;
	pthread_mutex_unlock(&c->mu);
}

void *web_cache_thread(void *arg)
{
	const struct web_shared *sh = arg;
	struct web_cache *c = sh->cache;
	struct web_worker_db wdb = {.deadline_ms = INT64_MAX};
	pthread_mutex_lock(&c->mu);
	while (!c->stop) {
		struct cache_entry *e = NULL;
		int64_t now = mono_ms();
		for (size_t i = 0; i < CACHE_ENTRIES && !e; i++)
			if (c->e[i].route && c->e[i].stale_wanted &&
			    now - c->e[i].requested_ms < CACHE_KEEP_MS)
				e = &c->e[i];
		if (!e) {
			pthread_cond_wait(&c->cv, &c->mu);
			continue;
		}
		/* Recompute outside the lock: the request is rebuilt from the key. */
		struct web_job j;
		memset(&j, 0, sizeof(j));
		j.fd = -1;
		j.age_s = -1;
		buf_init(&j.body, 0);
		char key[512], rest[256];
		snprintf(key, sizeof(key), "%s", e->key);
		snprintf(rest, sizeof(rest), "%s", e->rest);
		bool has_rest = e->has_rest;
		const struct route *r = e->route;
		pthread_mutex_unlock(&c->mu);
		char *q = strchr(key, '?');
		if (q)
			*q++ = '\0';
		j.path = key;
		j.query = q;
		j.method = EVHTTP_REQ_GET;
		j.role = WEB_ROLE_READ;
		int64_t t0 = mono_ms();
		run_route(sh, &wdb, &j, r, has_rest ? rest : NULL, CACHE_SQL_LIMIT_MS);
		if (q)
			q[-1] = '?';
		cache_store(c, key, r, has_rest ? rest : NULL, &j, mono_ms() - t0);
		buf_free(&j.body);
		pthread_mutex_lock(&c->mu);
		e->stale_wanted = false; /* also when the recompute failed: next request asks */
	}
	pthread_mutex_unlock(&c->mu);
	web_worker_db_close(&wdb);
	return NULL;
}

/* /feed/v1/...: this sensor's signed feed, files the reporter wrote (federate/). */
static void serve_feed(const struct web_shared *sh, struct web_job *j)
{
	char path[4400];
	if ((j->method != EVHTTP_REQ_GET && j->method != EVHTTP_REQ_HEAD) ||
	    fed_request_file(sh->cfg->data_dir, j->path, path, sizeof(path)) != 0) {
		web_job_error(j, 404, "no such feed file");
		return;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		if (fd >= 0)
			close(fd);
		web_job_error(j, 404, "no such feed file (feed_publish off, or pruned)");
		return;
	}
	j->fd = fd;
	j->file_len = sb.st_size;
	j->kind = REPLY_FILE;
	j->status = 200;
	j->content_type = "text/plain; charset=utf-8";
}

void web_api_handle(const struct web_shared *sh, struct web_worker_db *wdb, struct web_job *j)
{
	j->status = 500;
	j->kind = REPLY_BODY;
	j->age_s = -1;
	if (fed_is_feed_request(j->path)) {
		if (!sh->cfg->feed_public && !authorise(sh, j))
			return;
		serve_feed(sh, j);
		return;
	}
	if (!authorise(sh, j))
		return;
	if (j->role == WEB_ROLE_FEED) {
		web_job_error(j, 403, "this login may read /feed/v1/ only");
		return;
	}
	int method = j->method == EVHTTP_REQ_HEAD ? EVHTTP_REQ_GET : j->method;
	if (method == EVHTTP_REQ_GET && serve_asset(j))
		return;
	const struct route *r = NULL;
	const char *rest = NULL;
	bool path_known = false;
	for (size_t i = 0; i < N_ROUTES && !r; i++) {
		size_t pl = strlen(routes[i].prefix);
		if (strncmp(j->path, routes[i].prefix, pl))
			continue;
		const char *tail = j->path + pl;
		bool match = routes[i].with_id ? (tail[0] == '/' && tail[1]) : !tail[0];
		if (!match)
			continue;
		path_known = true;
		if (routes[i].method != method)
			continue;
		r = &routes[i];
		rest = routes[i].with_id ? tail + 1 : NULL;
	}
	if (!r) {
		web_job_error(j, path_known ? 405 : 404,
			      path_known ? "method not allowed" : "no such endpoint");
		return;
	}
	if (r->action) {
		if (j->role != WEB_ROLE_ADMIN) {
			web_job_error(j, 403, "this action needs the admin role");
			return;
		}
		if (!same_origin(j) || !web_auth_csrf_ok(sh->auth, j->user, j->csrf)) {
			web_job_error(j, 403, "missing or wrong X-CSRF-Token (GET /api/v1/whoami)");
			return;
		}
	}
	char key[512];
	bool cacheable = r->cached && sh->cache &&
			 snprintf(key, sizeof(key), "%s?%s", j->path, j->query ? j->query : "") <
				 (int)sizeof(key);
	if (cacheable && cache_serve(sh->cache, j, key))
		return;
	int64_t t0 = mono_ms();
	/* An aggregate's first computation may take the refresher's time: once done it is
	 * served from the cache. */
	run_route(sh, wdb, j, r, rest, cacheable ? CACHE_SQL_LIMIT_MS : SQL_TIME_LIMIT_MS);
	if (cacheable)
		cache_store(sh->cache, key, r, rest, j, mono_ms() - t0);
}

bool web_api_fast(const struct web_shared *sh, struct web_job *j)
{
	if ((j->method != EVHTTP_REQ_GET && j->method != EVHTTP_REQ_HEAD) || !sh->cache)
		return false;
	const struct route *r = NULL;
	for (size_t i = 0; i < N_ROUTES && !r; i++)
		if (routes[i].cached && !routes[i].with_id && routes[i].method == EVHTTP_REQ_GET &&
		    !strcmp(j->path, routes[i].prefix))
			r = &routes[i];
	if (!r)
		return false;
	if (web_auth_required(sh->auth) || !j->loopback) {
		if (!j->authz)
			return false; /* the worker answers 401 */
		j->role = web_auth_check_cached(sh->auth, j->authz, j->user);
		if (j->role == WEB_ROLE_NONE || j->role == WEB_ROLE_FEED)
			return false; /* unknown yet, or wrong: the worker checks the hash */
	} else {
		j->role = WEB_ROLE_READ;
		snprintf(j->user, sizeof(j->user), "anonymous");
	}
	char key[512];
	if (snprintf(key, sizeof(key), "%s?%s", j->path, j->query ? j->query : "") >=
	    (int)sizeof(key))
		return false;
	j->kind = REPLY_BODY;
	j->age_s = -1;
	return cache_serve(sh->cache, j, key);
}
