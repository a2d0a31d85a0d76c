/*
 * reports: the outbox and the indicators of intel.db as JSON (see reports.h).
 *
 * Promises: values are bound, never pasted into SQL; lists are bounded by their page;
 * a failure leaves valid JSON in w only on QUERY_OK.
 */
#include "query/reports.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "intel/allowlist.h"
#include "intel/indicator.h"

const char *const query_report_states[] = {
	"addressing", "queued", "held", "manual", "sending", "transmitting", "sent",
	"duplicate", "rejected", "failed", "expired", "unknown", NULL};

static int sql_fail(sqlite3 *db, struct buf *err)
{
	buf_puts(err, sqlite3_errmsg(db));
	return QUERY_ERROR;
}

/* "iN": a keyset cursor on one integer id (newest first: rows below N). */
static int cursor_id(const char *c, int64_t *id)
{
	if (c[0] != 'i' || !(c[1] >= '0' && c[1] <= '9'))
		return -1;
	char *end;
	long long v = strtoll(c + 1, &end, 10);
	if (*end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

int query_reports(const struct query_db *q, const char *state, const char *sink,
		  struct query_page *pg, struct jw *w, struct buf *err)
{
	int64_t below = 0;
	if (query_has_cursor(pg) && cursor_id(pg->cursor, &below) < 0) {
		buf_puts(err, "bad cursor");
		return QUERY_BAD_ARG;
	}
	if (!q->idb)
		return QUERY_NO_INTEL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->idb,
			       "SELECT id, state, sink, kind, subject, recipient, title, incidents,"
			       " attempts, created_us, sent_us, last_error FROM outbox"
			       " WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR sink = ?2)"
			       " AND (?4 = 0 OR id < ?4) ORDER BY id DESC LIMIT ?3",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q->idb, err);
	if (state)
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	if (sink)
		sqlite3_bind_text(st, 2, sink, -1, SQLITE_STATIC);
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	sqlite3_bind_int64(st, 3, limit > 0 ? limit + 1 : -1);
	sqlite3_bind_int64(st, 4, below);
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	int64_t last = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "i%" PRId64, last);
			break;
		}
		jw_begin_object(w, NULL);
		jw_int(w, "id", sqlite3_column_int64(st, 0));
		jw_col(w, "state", st, 1);
		jw_col(w, "sink", st, 2);
		jw_col(w, "kind", st, 3);
		jw_col(w, "subject", st, 4);
		jw_col(w, "recipient", st, 5);
		jw_col(w, "title", st, 6);
		jw_int(w, "incidents", sqlite3_column_int64(st, 7));
		jw_int(w, "attempts", sqlite3_column_int64(st, 8));
		jw_int(w, "created_us", sqlite3_column_int64(st, 9));
		jw_time(w, "created", sqlite3_column_int64(st, 9));
		jw_int(w, "sent_us", sqlite3_column_int64(st, 10));
		jw_time(w, "sent", sqlite3_column_int64(st, 10));
		jw_col(w, "last_error", st, 11);
		jw_end_object(w);
		last = sqlite3_column_int64(st, 0);
		n++;
	}
	jw_end_array(w);
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		sql_fail(q->idb, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}

int query_report(const struct query_db *q, int64_t id, struct jw *w, struct buf *err)
{
	if (!q->idb)
		return QUERY_NO_INTEL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->idb,
			       "SELECT id, key, state, sink, kind, subject, recipient, contact_query,"
			       " title, content_type, incidents, redacted, victim_domains, created_us,"
			       " not_after_us, attempts, next_attempt_us, last_error, response,"
			       " sent_us, length(payload), updated_us FROM outbox WHERE id = ?1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q->idb, err);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		if (rc == SQLITE_DONE)
			return QUERY_NOT_FOUND;
		return sql_fail(q->idb, err);
	}
	static const char *const text_cols[] = {"key", "state", "sink", "kind", "subject",
						"recipient", "contact_query", "title",
						"content_type"};
	jw_begin_object(w, NULL);
	jw_int(w, "id", sqlite3_column_int64(st, 0));
	for (int c = 1; c <= 9; c++)
		jw_col(w, text_cols[c - 1], st, c);
	jw_int(w, "incidents", sqlite3_column_int64(st, 10));
	jw_bool(w, "redacted", sqlite3_column_int(st, 11) != 0);
	jw_list(w, "victim_domains", (const char *)sqlite3_column_text(st, 12),
		(size_t)sqlite3_column_bytes(st, 12), ' ');
	jw_int(w, "created_us", sqlite3_column_int64(st, 13));
	jw_time(w, "created", sqlite3_column_int64(st, 13));
	jw_int(w, "not_after_us", sqlite3_column_int64(st, 14));
	jw_time(w, "not_after", sqlite3_column_int64(st, 14));
	jw_int(w, "attempts", sqlite3_column_int64(st, 15));
	jw_int(w, "next_attempt_us", sqlite3_column_int64(st, 16));
	jw_time(w, "next_attempt", sqlite3_column_int64(st, 16));
	jw_col(w, "last_error", st, 17);
	jw_col(w, "response", st, 18);
	jw_int(w, "sent_us", sqlite3_column_int64(st, 19));
	jw_time(w, "sent", sqlite3_column_int64(st, 19));
	jw_int(w, "updated_us", sqlite3_column_int64(st, 21));
	jw_time(w, "updated", sqlite3_column_int64(st, 21));
	jw_int(w, "payload_bytes", sqlite3_column_int64(st, 20));
	jw_end_object(w);
	sqlite3_finalize(st);
	return QUERY_OK;
}

int query_report_payload(const struct query_db *q, int64_t id, struct buf *out, struct buf *err)
{
	if (!q->idb)
		return QUERY_NO_INTEL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->idb, "SELECT payload FROM outbox WHERE id = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return sql_fail(q->idb, err);
	sqlite3_bind_int64(st, 1, id);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const void *p = sqlite3_column_blob(st, 0);
		int n = sqlite3_column_bytes(st, 0);
		if (p && n > 0)
			buf_append(out, p, (size_t)n);
	}
	int ret = rc == SQLITE_ROW ? QUERY_OK : rc == SQLITE_DONE ? QUERY_NOT_FOUND
								  : sql_fail(q->idb, err);
	sqlite3_finalize(st);
	return ret;
}

int query_report_stats(const struct query_db *q, struct jw *w, struct buf *err)
{
	if (!q->idb)
		return QUERY_NO_INTEL;
	static const char *const cols[] = {"sink", "total", "sent", "duplicate", "failed",
					   "queued", "addressing", "held", "unknown", "expired",
					   "manual", "attempts"};
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->idb,
			       "SELECT sink, count(*), sum(state = 'sent'), sum(state = 'duplicate'),"
			       " sum(state IN ('failed', 'rejected')), sum(state = 'queued'),"
			       " sum(state = 'addressing'), sum(state = 'held'), sum(state = 'unknown'),"
			       " sum(state = 'expired'), sum(state = 'manual'), sum(attempts)"
			       " FROM outbox GROUP BY sink ORDER BY sink",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q->idb, err);
	jw_begin_object(w, NULL);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		jw_begin_object(w, (const char *)sqlite3_column_text(st, 0));
		for (int c = 1; c < 12; c++)
			jw_int(w, cols[c], sqlite3_column_int64(st, c));
		jw_end_object(w);
	}
	jw_end_object(w);
	bool ok = rc == SQLITE_DONE;
	if (!ok)
		sql_fail(q->idb, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}

/* ---- indicators ---- */

struct ind_walk {
	struct jw *w;
	const struct allowlist *al;
	long skip, left; /* rows to skip (the offset), rows still to write (-1: all) */
	bool more;       /* a row past the page exists */
};

static int ind_row(void *ctx, const struct indicator *ind)
{
	struct ind_walk *c = ctx;
	if (c->skip > 0) {
		c->skip--;
		return 0;
	}
	if (c->left == 0) {
		c->more = true;
		return 1; /* stop: the page is full */
	}
	if (c->left > 0)
		c->left--;
	struct jw *w = c->w;
	jw_begin_object(w, NULL);
	jw_cstr(w, "kind", indicator_kind_name(ind->kind));
	jw_cstr(w, "value", ind->value);
	jw_cstr(w, "source", ind->source);
	jw_cstr(w, "parent", ind->parent);
	jw_int(w, "confidence", ind->confidence);
	jw_int(w, "first_seen_us", ind->first_seen_us);
	jw_time(w, "first_seen", ind->first_seen_us);
	jw_int(w, "last_seen_us", ind->last_seen_us);
	jw_time(w, "last_seen", ind->last_seen_us);
	jw_int(w, "guesses", ind->guesses);
	jw_int(w, "probes", ind->probes);
	jw_int(w, "messages", ind->messages);
	jw_int(w, "logins", ind->logins);
	jw_int(w, "members", ind->members);
	jw_list(w, "flags", ind->flags, strlen(ind->flags), ' ');
	jw_list(w, "evidence", ind->evidence, strlen(ind->evidence), ' ');
	jw_cstr(w, "note", ind->note);
	jw_bool(w, "allowlisted", c->al && allowlist_refuses(c->al, ind));
	jw_end_object(w);
	return 0;
}

int query_indicators(const struct query_db *q, const struct indicator_filter *f,
		     const struct allowlist *al, struct query_page *pg, struct jw *w,
		     struct buf *err)
{
	long off = 0;
	if (query_has_cursor(pg) && query_cursor_offset(pg->cursor, &off) < 0) {
		buf_puts(err, "bad cursor");
		return QUERY_BAD_ARG;
	}
	if (!q->idb)
		return QUERY_NO_INTEL;
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	struct indicator_filter g = *f;
	/* One row past the page says whether there is a next one. */
	g.limit = limit > 0 ? off + limit + 1 : 0;
	struct ind_walk c = {.w = w, .al = al, .skip = off, .left = limit};
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc = indicators_each(q->idb, &g, ind_row, &c);
	jw_end_array(w);
	if (rc < 0)
		return sql_fail(q->idb, err);
	if (c.more && pg)
		snprintf(pg->next, sizeof(pg->next), "o%ld", off + limit);
	return QUERY_OK;
}
