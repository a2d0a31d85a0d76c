/*
 * decisions: the decisions list and its one object shape (see decisions.h).
 *
 * Promises: values are bound, never pasted into SQL; a request file is read with
 * O_NOFOLLOW and a size bound, and only its known keys are used; the list is bounded
 * by its page.
 */
#include "query/decisions.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "intel/decision.h"
#include "util/netaddr.h"

#define REQUEST_DIR "guard-requests" /* guard.c's, where `mxbait decisions` writes */
#define REQUEST_MAX 4096
#define PENDING_MAX 1000             /* requests listed (the guard applies 256 a second) */

void query_decision_json(struct jw *w, const struct query_decision *d)
{
	jw_begin_object(w, NULL);
	jw_cstr(w, "id", d->id);
	jw_cstr(w, "source", d->source);
	jw_cstr(w, "action", d->action);
	jw_cstr(w, "reason", d->reason);
	jw_cstr(w, "origin", d->origin);
	if (d->evidence_json && d->evidence_json[0] == '[')
		jw_raw(w, "evidence", d->evidence_json, strlen(d->evidence_json));
	else
		jw_raw(w, "evidence", "[]", 2);
	jw_int(w, "created_us", d->created_us);
	jw_time(w, "created", d->created_us);
	if (d->expires_us)
		jw_int(w, "expires_us", d->expires_us);
	else
		jw_null(w, "expires_us");
	jw_time(w, "expires", d->expires_us);
	if (d->level >= 0)
		jw_int(w, "level", d->level);
	else
		jw_null(w, "level");
	jw_cstr(w, "state", d->state);
	if (d->ended_us)
		jw_int(w, "ended_us", d->ended_us);
	else
		jw_null(w, "ended_us");
	jw_time(w, "ended", d->ended_us);
	jw_cstr(w, "request", d->request);
	jw_cstr(w, "op", d->op);
	jw_end_object(w);
}

void query_decision_json_mem(struct jw *w, const struct decision *d, int64_t ended_us)
{
	char src[NETADDR_STRLEN];
	netaddr_format(&d->src, src, sizeof(src));
	struct buf ev;
	buf_init(&ev, 0);
	struct jw ew;
	jw_init(&ew, &ev);
	jw_begin_array(&ew, NULL);
	for (size_t i = 0; i < d->n_evidence && i < DECISION_EVIDENCE_MAX; i++)
		jw_cstr(&ew, NULL, d->evidence[i]);
	jw_end_array(&ew);
	struct query_decision q = {
		.id = d->id, .source = src, .action = decision_action_name(d->action),
		.reason = d->reason, .origin = d->origin, .evidence_json = ev.data,
		.created_us = d->created_us, .expires_us = d->expires_us, .ended_us = ended_us,
		.level = (long)d->level, .state = ended_us ? "removed" : "active",
	};
	query_decision_json(w, &q);
	buf_free(&ev);
}

/* The value of key in a request file's text (key=value lines) into out. */
static void request_field(const char *text, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	out[0] = '\0';
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		if (ll > kl && !memcmp(p, key, kl) && p[kl] == '=') {
			size_t vl = ll - kl - 1;
			if (vl >= outlen)
				vl = outlen - 1;
			memcpy(out, p + kl + 1, vl);
			out[vl] = '\0';
			return;
		}
		p += ll + (nl ? 1 : 0);
	}
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Requests not applied yet, oldest first (file names start with the time). */
static void list_pending(const char *data_dir, struct jw *w)
{
	if (!data_dir)
		return;
	struct buf dir;
	buf_init(&dir, 0);
	buf_printf(&dir, "%s/%s", data_dir, REQUEST_DIR);
	DIR *d = opendir(dir.data);
	char **names = NULL;
	size_t n = 0;
	struct dirent *de;
	while (d && (de = readdir(d)) && n < PENDING_MAX) {
		if (strncmp(de->d_name, "req-", 4))
			continue;
		char **nn = realloc(names, (n + 1) * sizeof(*names));
		if (!nn)
			break;
		names = nn;
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	if (d)
		closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), name_cmp);
	for (size_t i = 0; i < n; i++) {
		char text[REQUEST_MAX + 1] = "";
		struct buf p;
		buf_init(&p, 0);
		buf_printf(&p, "%s/%s", dir.data, names[i]);
		int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
		buf_free(&p);
		if (fd < 0)
			continue; /* applied meanwhile */
		ssize_t r = read(fd, text, REQUEST_MAX);
		close(fd);
		text[r > 0 ? r : 0] = '\0';
		char op[16], source[NETADDR_STRLEN + 8], action[16], reason[DECISION_REASON_LEN];
		request_field(text, "op", op, sizeof(op));
		request_field(text, "source", source, sizeof(source));
		request_field(text, "action", action, sizeof(action));
		request_field(text, "reason", reason, sizeof(reason));
		struct query_decision q = {
			.source = source, .action = *action ? action : NULL,
			.reason = *reason ? reason : NULL, .origin = "manual",
			.created_us = strtoll(names[i] + 4, NULL, 10), .level = -1,
			.state = "pending", .request = names[i], .op = op,
		};
		query_decision_json(w, &q);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	buf_free(&dir);
}

int query_decisions(const struct query_db *q, bool all, int64_t now_us, struct query_page *pg,
		    struct jw *w, struct buf *err)
{
	static const char sql[] =
		"SELECT id, source, action, reason, origin, evidence, created_us, expires_us,"
		" level, ended_us, rowid FROM decisions"
		" WHERE (?1 OR (ended_us IS NULL AND (expires_us = 0 OR expires_us > ?2)))"
		" AND (?4 IS NULL OR (created_us, rowid) < (?4, ?5))"
		" ORDER BY created_us DESC, rowid DESC LIMIT ?3";
	int64_t ca = 0, cb = 0;
	if (query_has_cursor(pg) && query_cursor_pair(pg->cursor, &ca, &cb) < 0) {
		buf_puts(err, "bad cursor");
		return QUERY_BAD_ARG;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK) {
		buf_puts(err, sqlite3_errmsg(q->db));
		return QUERY_ERROR;
	}
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	sqlite3_bind_int(st, 1, all);
	sqlite3_bind_int64(st, 2, now_us);
	sqlite3_bind_int64(st, 3, limit > 0 ? limit + 1 : -1);
	if (query_has_cursor(pg)) {
		sqlite3_bind_int64(st, 4, ca);
		sqlite3_bind_int64(st, 5, cb);
	}
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	int64_t last_a = 0, last_b = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "%" PRId64 ".%" PRId64, last_a, last_b);
			break;
		}
		int64_t exp = sqlite3_column_int64(st, 7);
		bool ended = sqlite3_column_type(st, 9) != SQLITE_NULL;
		struct query_decision d = {
			.id = (const char *)sqlite3_column_text(st, 0),
			.source = (const char *)sqlite3_column_text(st, 1),
			.action = (const char *)sqlite3_column_text(st, 2),
			.reason = (const char *)sqlite3_column_text(st, 3),
			.origin = (const char *)sqlite3_column_text(st, 4),
			.evidence_json = (const char *)sqlite3_column_text(st, 5),
			.created_us = sqlite3_column_int64(st, 6),
			.expires_us = exp,
			.ended_us = ended ? sqlite3_column_int64(st, 9) : 0,
			.level = sqlite3_column_int(st, 8),
			.state = ended ? "removed" : exp && exp <= now_us ? "expired" : "active",
		};
		query_decision_json(w, &d);
		last_a = d.created_us;
		last_b = sqlite3_column_int64(st, 10);
		n++;
	}
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		buf_puts(err, sqlite3_errmsg(q->db));
	sqlite3_finalize(st);
	if (ok && !query_has_cursor(pg))
		list_pending(q->data_dir, w);
	jw_end_array(w);
	return ok ? QUERY_OK : QUERY_ERROR;
}

int query_decisions_count(const struct query_db *q, int64_t now_us, int64_t counts_r[4])
{
	static const char *const names[4] = {"delay", "divert", "ban", "allow"};
	memset(counts_r, 0, 4 * sizeof(*counts_r));
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, "SELECT action, count(*) FROM decisions WHERE ended_us IS NULL"
				      " AND (expires_us = 0 OR expires_us > ?1) GROUP BY action",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, now_us);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *a = (const char *)sqlite3_column_text(st, 0);
		for (int i = 0; a && i < 4; i++)
			if (!strcmp(a, names[i]))
				counts_r[i] = sqlite3_column_int64(st, 1);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : -1;
}
