/*
 * actions: the state changes of the web API, POST /api/v1/actions/NAME (docs/api.md),
 * for the admin role only (api.c has checked the role, the CSRF token and the origin
 * before anything here runs).
 *
 *   decision-allow     {"source", "for"?, "reason"?}  as `mxbait decisions allow`
 *   decision-release   {"source", "id"?}              as `mxbait decisions del`
 *   report-hold        {"id"}                         as `mxbait report hold`
 *   report-release     {"id", "to"?}                  as `mxbait report send [--to]`
 *   report-retry       {"id"}                         as `mxbait report retry`
 *
 * Bodies are JSON objects (Content-Type: application/json, which a cross-site form
 * cannot send without a preflight), parsed by jansson; an unknown key, a wrong type or
 * a bad value is 400 with a message.
 *
 * One writer each: decisions belong to the guard, which runs on the network loop; the
 * worker only checks the request and hands the change to the loop (web_api_loop), the
 * same guard_operator() that applies `mxbait decisions` request files, so the reply
 * says what happened (decided, already in force, nothing to release) instead of "a
 * request was queued".  Reports belong to the reporter process: a move is one write
 * transaction on intel.db that reads the state and changes it only from the states
 * the action applies to (report/outbox.h), and every transition of the reporter is
 * guarded by the state it expects, so the two cannot overwrite each other.
 *
 * Every action that changes something is logged (NOTICE) with the web user's name and
 * address (a decision by the guard, with its `decision` event; a report here).
 */
#include "web/api.h"

#include <errno.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "guard/guard.h"
#include "intel/decision.h"
#include "intel/intel_db.h"
#include "query/decisions.h"
#include "query/intel.h"
#include "query/reports.h"
#include "report/outbox.h"
#include "store/event.h"

struct web_loop_action {
	struct guard_request rq;
	char reason[DECISION_REASON_LEN];
	char expect_id[DECISION_ID_LEN];
	char by[200];
	char source[NETADDR_STRLEN];
};

void web_loop_action_free(struct web_loop_action **a)
{
	if (a) {
		free(*a);
		*a = NULL;
	}
}

static void reply_json(struct web_job *j, int status)
{
	j->status = status;
	j->kind = REPLY_BODY;
	j->content_type = "application/json; charset=utf-8";
	buf_putc(&j->body, '\n');
}

/* ---- the body ---- */

/* Parse the body as a JSON object whose keys are all in known; NULL after answering. */
static json_t *body_object(struct web_job *j, const char *const *known)
{
	const char *ct = j->content_type_in;
	if (!ct || strncasecmp(ct, "application/json", 16) || (ct[16] && ct[16] != ';' && ct[16] != ' ')) {
		web_job_error(j, 415, "the body must be JSON (Content-Type: application/json)");
		return NULL;
	}
	json_error_t e;
	json_t *o = j->body_in ? json_loadb(j->body_in, j->body_in_len, JSON_REJECT_DUPLICATES, &e)
			       : NULL;
	if (!o || !json_is_object(o)) {
		json_decref(o);
		web_job_error(j, 400, "the body is not a JSON object");
		return NULL;
	}
	const char *key;
	json_t *v;
	json_object_foreach(o, key, v) {
		bool ok = false;
		for (size_t i = 0; known[i]; i++)
			if (!strcmp(key, known[i]))
				ok = true;
		if (!ok) {
			char m[96];
			snprintf(m, sizeof(m), "unknown key '%.40s'", key);
			json_decref(o);
			web_job_error(j, 400, m);
			return NULL;
		}
	}
	return o;
}

/* A string member (absent or null: *out NULL, unless required); false after
 * answering 400. */
static bool member_str(struct web_job *j, json_t *o, const char *key, bool required,
		       size_t max, const char **out)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	if (!v || json_is_null(v)) {
		if (!required)
			return true;
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		bool clean = n > 0 && n <= max && strlen(s) == n;
		for (size_t i = 0; clean && i < n; i++)
			if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
				clean = false;
		if (clean) {
			*out = s;
			return true;
		}
	}
	char m[128];
	snprintf(m, sizeof(m), "%s %s (a string of 1 to %zu printable bytes)",
		 v && !json_is_null(v) ? "bad" : "missing", key, max);
	web_job_error(j, 400, m);
	return false;
}

static void who(const struct web_job *j, char *out, size_t n)
{
	snprintf(out, n, "web user %s from %s", j->user, j->peer[0] ? j->peer : "?");
}

/* ---- decisions (finished on the loop thread) ---- */

static bool guard_here(const struct web_shared *sh, struct web_job *j)
{
	if (sh->guard)
		return true;
	web_job_error(j, 409, "no guard runs in this daemon: decisions need one of "
			      "dovecot_policy_listen, postfix_policy_listen, watch_log_files, "
			      "watch_journal, divert (docs/deploy.md)");
	return false;
}

static struct web_loop_action *new_loop_action(struct web_job *j, json_t *o, const char *src)
{
	struct web_loop_action *a = calloc(1, sizeof(*a));
	if (!a) {
		json_decref(o);
		web_job_error(j, 503, "out of memory");
		return NULL;
	}
	if (netaddr_parse(src, &a->rq.src) != 0) {
		free(a);
		json_decref(o);
		web_job_error(j, 400, "bad source (an address or a prefix, e.g. 203.0.113.7 or "
				      "198.51.100.0/24)");
		return NULL;
	}
	netaddr_format(&a->rq.src, a->source, sizeof(a->source));
	who(j, a->by, sizeof(a->by));
	a->rq.by = a->by;
	return a;
}

static void act_decision_allow(const struct web_shared *sh, struct web_job *j)
{
	static const char *const known[] = {"source", "for", "reason", NULL};
	json_t *o = body_object(j, known);
	if (!o)
		return;
	const char *src, *dur, *reason;
	if (!member_str(j, o, "source", true, NETADDR_STRLEN, &src) ||
	    !member_str(j, o, "for", false, 16, &dur) ||
	    !member_str(j, o, "reason", false, DECISION_REASON_LEN - 1, &reason)) {
		json_decref(o);
		return;
	}
	int64_t us = 0;
	if (dur && (intel_parse_duration(dur, &us) < 0 || us <= 0)) {
		json_decref(o);
		web_job_error(j, 400, "bad for (a duration: 30m, 24h, 7d; absent: until released)");
		return;
	}
	if (!guard_here(sh, j)) {
		json_decref(o);
		return;
	}
	struct web_loop_action *a = new_loop_action(j, o, src);
	if (!a)
		return;
	a->rq.op = GUARD_OP_ALLOW;
	a->rq.duration_ms = dur ? us / 1000 : -1;
	snprintf(a->reason, sizeof(a->reason), "%s", reason ? reason : "manual");
	a->rq.reason = a->reason;
	json_decref(o);
	j->loop = a;
}

static void act_decision_release(const struct web_shared *sh, struct web_job *j)
{
	static const char *const known[] = {"source", "id", NULL};
	json_t *o = body_object(j, known);
	if (!o)
		return;
	const char *src, *id;
	if (!member_str(j, o, "source", true, NETADDR_STRLEN, &src) ||
	    !member_str(j, o, "id", false, DECISION_ID_LEN - 1, &id)) {
		json_decref(o);
		return;
	}
	if (!guard_here(sh, j)) {
		json_decref(o);
		return;
	}
	struct web_loop_action *a = new_loop_action(j, o, src);
	if (!a)
		return;
	a->rq.op = GUARD_OP_DEL;
	if (id) {
		snprintf(a->expect_id, sizeof(a->expect_id), "%s", id);
		a->rq.expect_id = a->expect_id;
	}
	json_decref(o);
	j->loop = a;
}

void web_api_loop(const struct web_shared *sh, struct web_job *j)
{
	struct web_loop_action *a = j->loop;
	buf_reset(&j->body);
	if (!sh->guard) {
		web_job_error(j, 409, "no guard runs in this daemon");
		return;
	}
	struct decision d;
	a->rq.now_us = mxb_now_us();
	/* (guard_operator logs the change with a->by, the web user's name) */
	enum guard_op_result r = guard_operator(sh->guard, &a->rq, &d);
	char m[200];
	switch (r) {
	case GUARD_OP_DONE:
	case GUARD_OP_UNCHANGED: {
		struct jw w;
		jw_init(&w, &j->body);
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "result", r == GUARD_OP_DONE ? "done" : "unchanged");
		if (d.id[0]) {
			struct buf one;
			buf_init(&one, 0);
			struct jw w1;
			jw_init(&w1, &one);
			query_decision_json_mem(&w1, &d, a->rq.op == GUARD_OP_DEL &&
							      r == GUARD_OP_DONE ? a->rq.now_us : 0);
			jw_raw(&w, "decision", one.data, one.len);
			buf_free(&one);
		} else {
			jw_null(&w, "decision");
		}
		jw_end_object(&w);
		reply_json(j, 200);
		return;
	}
	case GUARD_OP_NOT_FOUND:
		snprintf(m, sizeof(m), "no decision in force about exactly %s%s%s", a->source,
			 a->rq.expect_id ? " with id " : "", a->rq.expect_id ? a->expect_id : "");
		web_job_error(j, 404, m);
		return;
	case GUARD_OP_TRUSTED:
		snprintf(m, sizeof(m), "%s is a trusted network: never acted on", a->source);
		web_job_error(j, 409, m);
		return;
	case GUARD_OP_FULL:
		web_job_error(j, 503, "the decision table is full (guard_max_keys)");
		return;
	default:
		web_job_error(j, 400, "bad action");
		return;
	}
}

/* ---- reports (on the worker: a transaction on intel.db) ---- */

static sqlite3 *intel_rw(const struct web_shared *sh, struct web_job *j)
{
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(sh->idb_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		web_job_error(j, 404, "no such report (no intel.db yet: the reporter has not run)");
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_exec(db, "PRAGMA synchronous=FULL", NULL, NULL, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v != intel_db_schema_version()) {
		sqlite3_close(db);
		web_job_error(j, 503, "intel.db is not at this mxbait's schema version (the reporter "
				      "migrates it when it starts)");
		return NULL;
	}
	return db;
}

struct report_action {
	const char *name, *from, *to, *verb;
};

static const struct report_action report_actions[] = {
	{"report-hold", "queued addressing", "held", "held"},
	{"report-release", "held addressing", "queued", "released"},
	{"report-retry", "failed unknown expired rejected", "queued", "queued again"},
};

static void act_report(const struct web_shared *sh, struct web_job *j,
		       const struct report_action *ra)
{
	bool release = !strcmp(ra->name, "report-release");
	static const char *const known_id[] = {"id", NULL};
	static const char *const known_to[] = {"id", "to", NULL};
	json_t *o = body_object(j, release ? known_to : known_id);
	if (!o)
		return;
	json_t *idv = json_object_get(o, "id");
	json_int_t id = idv && json_is_integer(idv) ? json_integer_value(idv) : 0;
	const char *to = NULL;
	if (id <= 0) {
		json_decref(o);
		web_job_error(j, 400, "bad id (a report id, a whole number)");
		return;
	}
	if (release) {
		if (!member_str(j, o, "to", false, 254, &to)) {
			json_decref(o);
			return;
		}
		const char *at = to ? strchr(to, '@') : NULL;
		if (to && (!at || at == to || !at[1] || strpbrk(to, " <>,;\"()[]\\"))) {
			json_decref(o);
			web_job_error(j, 400, "bad to (an e-mail address)");
			return;
		}
	}
	sqlite3 *db = intel_rw(sh, j);
	if (!db) {
		json_decref(o);
		return;
	}
	char old[16];
	int r = outbox_operator_move(db, (int64_t)id, ra->from, ra->to, to, old);
	char m[256];
	if (r == 1) {
		char by[200];
		who(j, by, sizeof(by));
		log_msg(LOG_NOTICE, NULL, "web: %s: report %lld %s (%s -> %s)%s%s", by,
			(long long)id, ra->verb, old, ra->to, to ? ", to " : "", to ? to : "");
		struct buf err;
		buf_init(&err, 0);
		buf_reset(&j->body);
		struct jw w;
		jw_init(&w, &j->body);
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "result", "done");
		jw_cstr(&w, "from", old);
		struct query_db q = {.idb = db};
		struct buf one;
		buf_init(&one, 0);
		struct jw w1;
		jw_init(&w1, &one);
		if (query_report(&q, (int64_t)id, &w1, &err) == QUERY_OK)
			jw_raw(&w, "report", one.data, one.len);
		else
			jw_null(&w, "report");
		jw_end_object(&w);
		buf_free(&one);
		buf_free(&err);
		reply_json(j, 200);
	} else if (r == 0) {
		snprintf(m, sizeof(m), "report %lld is %s: %s applies to %s", (long long)id, old,
			 ra->name + 7, ra->from);
		web_job_error(j, 409, m);
	} else if (r == -1) {
		snprintf(m, sizeof(m), "no report %lld", (long long)id);
		web_job_error(j, 404, m);
	} else {
		web_job_error(j, 503, "intel.db is busy (the reporter is writing): try again");
	}
	sqlite3_close(db);
	json_decref(o);
}

/* ---- the table ---- */

void web_action_run(const struct web_shared *sh, struct web_job *j, const char *name)
{
	if (!name) {
		web_job_error(j, 404, "no such action");
		return;
	}
	if (!strcmp(name, "decision-allow")) {
		act_decision_allow(sh, j);
		return;
	}
	if (!strcmp(name, "decision-release")) {
		act_decision_release(sh, j);
		return;
	}
	for (size_t i = 0; i < sizeof(report_actions) / sizeof(report_actions[0]); i++)
		if (!strcmp(name, report_actions[i].name)) {
			act_report(sh, j, &report_actions[i]);
			return;
		}
	web_job_error(j, 404, "no such action (decision-allow, decision-release, report-hold, "
			      "report-release, report-retry)");
}
