/*
 * intel: shared option parsing and section printing of `mxbait creds` and
 * `mxbait attackers`, and the JSON of their API endpoints (see intel.h).
 *
 * Promises: every text cell goes through the table's escaping (or the JSON writer),
 * a failing query prints one line on stderr and makes the exit status 1 but the other
 * sections are still printed, and rows are bounded by --top.
 */
#include "query/intel.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int intel_parse_duration(const char *s, int64_t *us_r)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || v <= 0 || s[0] == '-' || s[0] == '+')
		return -1;
	int64_t mult;
	if (!*end || !strcmp(end, "s"))
		mult = 1;
	else if (!strcmp(end, "m"))
		mult = 60;
	else if (!strcmp(end, "h"))
		mult = 3600;
	else if (!strcmp(end, "d"))
		mult = 86400;
	else if (!strcmp(end, "w"))
		mult = 7 * 86400;
	else
		return -1;
	/* At most ~100 years, so the microseconds never overflow. */
	if (v > 3200000000LL / mult)
		return -1;
	*us_r = (int64_t)v * mult * 1000000;
	return 0;
}

int intel_parse_count(const char *s, long min, long *v_r)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || s[0] == '+')
		return -1;
	*v_r = v;
	return 0;
}

char *intel_sql(const char *tmpl, int64_t since_us)
{
	struct buf b;
	buf_init(&b, 0);
	for (const char *p = tmpl; *p;) {
		const char *m = strstr(p, "{+}");
		size_t n = m ? (size_t)(m - p) : strlen(p);
		buf_append(&b, p, n);
		if (!m)
			break;
		if (!since_us)
			buf_putc(&b, '+');
		p = m + 3;
	}
	buf_putc(&b, 0);
	return buf_steal(&b, NULL);
}

void intel_begin(struct intel_out *o, sqlite3 *db, bool json, int64_t since_us, long top)
{
	memset(o, 0, sizeof(*o));
	o->db = db;
	o->json = json;
	o->since_us = since_us;
	o->top = top;
	buf_init(&o->buf, 0);
	jw_init(&o->w, &o->buf);
	if (json)
		jw_begin_object(&o->w, NULL);
}

void intel_section(struct intel_out *o, const char *title, const char *key, const char *sql,
		   const struct intel_col *cols, size_t ncols, const char *const *extra_heads,
		   size_t n_extra, intel_row_fn fn, void *ctx)
{
	sqlite3_stmt *st = NULL;
	char *text = intel_sql(sql, o->since_us);
	int prc = text ? sqlite3_prepare_v2(o->db, text, -1, &st, NULL) : SQLITE_NOMEM;
	free(text);
	if (prc != SQLITE_OK) {
		fprintf(stderr, "mxbait: %s: %s\n", key, sqlite3_errmsg(o->db));
		o->failed = 1;
		if (o->json) {
			jw_begin_array(&o->w, key);
			jw_end_array(&o->w);
		}
		return;
	}
	sqlite3_bind_int64(st, 1, o->since_us);
	sqlite3_bind_int64(st, 2, o->top > 0 ? o->top : -1);
	struct table *t = NULL;
	if (o->json) {
		jw_begin_array(&o->w, key);
	} else {
		const char *heads[24];
		size_t n = 0;
		for (size_t i = 0; i < ncols && n < 24; i++)
			heads[n++] = cols[i].head;
		for (size_t i = 0; i < n_extra && n < 24; i++)
			heads[n++] = extra_heads[i];
		t = table_new(n, heads);
		for (size_t i = 0; i < ncols && i < n; i++) {
			if (cols[i].max)
				table_set_max(t, i, cols[i].max);
			if (cols[i].kind == IK_INT)
				table_set_right(t, i);
		}
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (o->json)
			jw_begin_object(&o->w, NULL);
		else
			table_add_row(t);
		for (size_t i = 0; i < ncols; i++) {
			int c = (int)i;
			bool null = sqlite3_column_type(st, c) == SQLITE_NULL;
			if (o->json) {
				if (cols[i].kind == IK_LIST)
					jw_list(&o->w, cols[i].json,
						(const char *)sqlite3_column_text(st, c),
						(size_t)sqlite3_column_bytes(st, c), ',');
				else if (cols[i].kind == IK_TEXT || null)
					jw_col(&o->w, cols[i].json, st, c);
				else
					jw_int(&o->w, cols[i].json,
					       (long long)sqlite3_column_int64(st, c));
				if (cols[i].kind == IK_TIME && cols[i].iso)
					jw_time(&o->w, cols[i].iso,
						null ? 0 : sqlite3_column_int64(st, c));
				continue;
			}
			if (null)
				continue; /* "-" */
			if (cols[i].kind == IK_TIME) {
				char tb[40];
				cli_fmt_time(sqlite3_column_int64(st, c), tb, sizeof(tb));
				table_cells(t, i, tb);
			} else if (cols[i].kind == IK_INT) {
				table_cellf(t, i, "%lld", (long long)sqlite3_column_int64(st, c));
			} else {
				table_cell(t, i, (const char *)sqlite3_column_text(st, c),
					   (size_t)sqlite3_column_bytes(st, c));
			}
		}
		if (fn)
			fn(ctx, st, t, ncols, o->json ? &o->w : NULL);
		if (o->json)
			jw_end_object(&o->w);
	}
	if (rc != SQLITE_DONE) {
		fprintf(stderr, "mxbait: %s: %s\n", key, sqlite3_errmsg(o->db));
		o->failed = 1;
	}
	sqlite3_finalize(st);
	if (o->json) {
		jw_end_array(&o->w);
		return;
	}
	printf("%s:\n", title);
	if (table_rows(t))
		table_print(t, stdout);
	else
		printf("  (none)\n");
	printf("\n");
	table_free(&t);
}

int intel_finish(struct intel_out *o, char **json_r, size_t *len_r)
{
	jw_end_object(&o->w);
	*json_r = buf_steal(&o->buf, len_r);
	return o->failed ? -1 : 0;
}

int intel_end(struct intel_out *o)
{
	if (o->json) {
		jw_end_object(&o->w);
		buf_putc(&o->buf, '\n');
		fwrite(o->buf.data, 1, o->buf.len, stdout);
	}
	buf_free(&o->buf);
	fflush(stdout);
	return o->failed ? 1 : 0;
}
