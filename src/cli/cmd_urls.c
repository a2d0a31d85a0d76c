/*
 * cmd_urls: `mxbait urls`: the distinct normalised links seen in captured mail, most
 * widespread first, with their registrable domain, how many messages carried them and
 * their flags (ip, shortener, redirector, display_mismatch, ...).  Also home of
 * aq_run(), the shared query printer of the analysis commands (cmd_analysis.h).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/adb.h"
#include "cli/cmd_analysis.h"
#include "cli/table.h"

int aq_run(const struct cli_opts *o, const char *cmd, const char *sql,
	   const char *const *params, size_t nparams, const struct aq_col *cols, size_t ncols,
	   const char *empty)
{
	char *err = NULL;
	sqlite3 *db = adb_open_ro(o->data_dir, &err);
	if (!db) {
		fprintf(stderr, "mxbait %s: %s\n", cmd, err ? err : "cannot open analysis.db");
		free(err);
		return 1;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait %s: %s\n", cmd, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_int64(st, 1, o->limit > 0 ? o->limit : -1);
	for (size_t i = 0; i < nparams; i++)
		if (params[i])
			sqlite3_bind_text(st, (int)i + 2, params[i], -1, SQLITE_STATIC);
	struct buf b;
	struct jw w;
	struct table *t = NULL;
	buf_init(&b, 0);
	jw_init(&w, &b);
	if (o->json) {
		jw_begin_array(&w, NULL);
	} else {
		const char *heads[16];
		for (size_t i = 0; i < ncols && i < 16; i++)
			heads[i] = cols[i].head;
		t = table_new(ncols, heads);
		for (size_t i = 0; i < ncols; i++) {
			if (cols[i].max)
				table_set_max(t, i, cols[i].max);
			if (cols[i].right)
				table_set_right(t, i);
		}
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (o->json) {
			jw_begin_object(&w, NULL);
			for (size_t i = 0; i < ncols; i++)
				jw_col(&w, cols[i].json, st, (int)i);
			jw_end_object(&w);
			continue;
		}
		table_add_row(t);
		for (size_t i = 0; i < ncols; i++) {
			const char *s = (const char *)sqlite3_column_text(st, (int)i);
			table_cell(t, i, s, (size_t)sqlite3_column_bytes(st, (int)i));
		}
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "mxbait %s: %s\n", cmd, sqlite3_errmsg(db));
	if (o->json) {
		jw_end_array(&w);
		buf_putc(&b, '\n');
		fwrite(b.data, 1, b.len, stdout);
	} else {
		table_print(t, stdout);
		if (!table_rows(t))
			printf("(%s)\n", empty);
	}
	table_free(&t);
	buf_free(&b);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : 1;
}

static const char usage[] = "[OPTIONS] [--domain DOMAIN] [--flag FLAG]";

int cmd_urls(int argc, char **argv)
{
	const char *domain = NULL, *flag = NULL;
	const struct cli_option extra[] = {{"domain", true, &domain}, {"flag", true, &flag},
					   {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait urls: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	static const char sql[] =
		"SELECT l.url, l.domain, count(DISTINCT l.message) AS messages,"
		" group_concat(DISTINCT nullif(l.flag_names, '')) AS flags,"
		" datetime(min(m.analyzed_at), 'unixepoch') AS first_seen"
		" FROM links l JOIN messages m ON m.id = l.message"
		" WHERE (?2 IS NULL OR l.domain = lower(?2))"
		" AND (?3 IS NULL OR instr(',' || l.flag_names || ',', ',' || ?3 || ',') > 0)"
		" GROUP BY l.url ORDER BY messages DESC, l.url LIMIT ?1";
	static const struct aq_col cols[] = {{"URL", "url", 80, false},
					     {"DOMAIN", "domain", 32, false},
					     {"MSGS", "messages", 0, true},
					     {"FLAGS", "flags", 48, false},
					     {"FIRST SEEN (UTC)", "first_seen", 0, false}};
	const char *params[] = {domain, flag};
	return aq_run(&o, "urls", sql, params, 2, cols, 5, "no links");
}
