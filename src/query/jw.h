/*
 * jw: a small JSON writer over a buf, shared by the CLI's --json and the web API (one
 * serializer, so both give the same shapes).
 *
 * Promises: valid JSON whatever the bytes: every string (keys included) goes through
 * json_append_string (store/event.h), which escapes control characters and writes
 * bytes that are not UTF-8 as \u00XX escapes of the raw byte.  Times are RFC 3339 /
 * ISO 8601 UTC with microseconds ("2026-11-27T06:52:43.123456Z").
 */
#ifndef MXB_QUERY_JW_H
#define MXB_QUERY_JW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct sqlite3_stmt;

/* JSON writer over a buf (nesting deeper than 31 levels is not tracked). */
struct jw {
	struct buf *out;
	int depth;
	bool comma[32];
};
void jw_init(struct jw *w, struct buf *out);
/* key is NULL inside an array (and at top level). */
void jw_begin_array(struct jw *w, const char *key);
void jw_end_array(struct jw *w);
void jw_begin_object(struct jw *w, const char *key);
void jw_end_object(struct jw *w);
void jw_str(struct jw *w, const char *key, const char *s, size_t len); /* s NULL: null */
void jw_cstr(struct jw *w, const char *key, const char *s);
void jw_int(struct jw *w, const char *key, long long v);
void jw_bool(struct jw *w, const char *key, bool v);
void jw_null(struct jw *w, const char *key);
/* Already-valid JSON text (e.g. an array stored by the event store). */
void jw_raw(struct jw *w, const char *key, const char *json, size_t len);
/* Column i of a row, by its SQLite type (NULL, integer, real, text). */
void jw_col(struct jw *w, const char *key, struct sqlite3_stmt *st, int i);

/* A JSON array of the sep-separated items of s (len bytes; empty and repeated items
 * skipped; NULL s: an empty array). */
void jw_list(struct jw *w, const char *key, const char *s, size_t len, char sep);
/* An ISO 8601 UTC time from microseconds since the epoch; null for ts_us <= 0. */
void jw_time(struct jw *w, const char *key, int64_t ts_us);

#endif
