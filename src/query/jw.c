/* jw: a small JSON writer over a buf (see jw.h). */
#include "query/jw.h"

#include <sqlite3.h>
#include <string.h>

#include "store/event.h"


void jw_init(struct jw *w, struct buf *out)
{
	memset(w, 0, sizeof(*w));
	w->out = out;
}

static void jw_sep(struct jw *w, const char *key)
{
	if (w->depth > 0 && w->depth < 32) {
		if (w->comma[w->depth])
			buf_putc(w->out, ',');
		w->comma[w->depth] = true;
	}
	if (key) {
		json_append_string(w->out, key, strlen(key));
		buf_putc(w->out, ':');
	}
}

static void jw_open(struct jw *w, const char *key, char c)
{
	jw_sep(w, key);
	buf_putc(w->out, c);
	w->depth++;
	if (w->depth < 32)
		w->comma[w->depth] = false;
}

static void jw_close(struct jw *w, char c)
{
	buf_putc(w->out, c);
	if (w->depth > 0)
		w->depth--;
}

void jw_begin_array(struct jw *w, const char *key)
{
	jw_open(w, key, '[');
}

void jw_end_array(struct jw *w)
{
	jw_close(w, ']');
}

void jw_begin_object(struct jw *w, const char *key)
{
	jw_open(w, key, '{');
}

void jw_end_object(struct jw *w)
{
	jw_close(w, '}');
}

void jw_str(struct jw *w, const char *key, const char *s, size_t len)
{
	jw_sep(w, key);
	if (s)
		json_append_string(w->out, s, len);
	else
		buf_puts(w->out, "null");
}

void jw_cstr(struct jw *w, const char *key, const char *s)
{
	jw_str(w, key, s, s ? strlen(s) : 0);
}

void jw_int(struct jw *w, const char *key, long long v)
{
	jw_sep(w, key);
	buf_printf(w->out, "%lld", v);
}

void jw_bool(struct jw *w, const char *key, bool v)
{
	jw_sep(w, key);
	buf_puts(w->out, v ? "true" : "false");
}

void jw_null(struct jw *w, const char *key)
{
	jw_sep(w, key);
	buf_puts(w->out, "null");
}

void jw_raw(struct jw *w, const char *key, const char *json, size_t len)
{
	jw_sep(w, key);
	if (json && len)
		buf_append(w->out, json, len);
	else
		buf_puts(w->out, "null");
}

void jw_col(struct jw *w, const char *key, struct sqlite3_stmt *st, int i)
{
	switch (sqlite3_column_type(st, i)) {
	case SQLITE_INTEGER:
		jw_int(w, key, (long long)sqlite3_column_int64(st, i));
		break;
	case SQLITE_FLOAT:
		jw_sep(w, key);
		buf_printf(w->out, "%.17g", sqlite3_column_double(st, i));
		break;
	case SQLITE_NULL:
		jw_null(w, key);
		break;
	default: {
		const char *s = (const char *)sqlite3_column_text(st, i);
		jw_str(w, key, s ? s : "", s ? (size_t)sqlite3_column_bytes(st, i) : 0);
	}
	}
}

void jw_time(struct jw *w, const char *key, int64_t ts_us)
{
	if (ts_us <= 0) {
		jw_null(w, key);
		return;
	}
	char t[40];
	mxb_format_ts(ts_us, t, sizeof(t));
	jw_cstr(w, key, t);
}

/* Is s[i, i+n) an item already seen before i? (Lists are short: quadratic is fine.) */
static bool seen_before(const char *s, size_t i, size_t n, char sep)
{
	for (size_t k = 0; k < i;) {
		const char *e = memchr(s + k, sep, i - k);
		size_t m = e ? (size_t)(e - (s + k)) : i - k;
		if (m == n && !memcmp(s + k, s + i, n))
			return true;
		k += m + 1;
	}
	return false;
}

void jw_list(struct jw *w, const char *key, const char *s, size_t len, char sep)
{
	jw_begin_array(w, key);
	for (size_t i = 0; s && i < len;) {
		const char *e = memchr(s + i, sep, len - i);
		size_t n = e ? (size_t)(e - (s + i)) : len - i;
		if (n && !seen_before(s, i, n, sep))
			jw_str(w, NULL, s + i, n);
		i += n + 1;
	}
	jw_end_array(w);
}
