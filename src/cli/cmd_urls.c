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
#include "query/table.h"

int aq_run(const struct cli_opts *o, const char *cmd, const struct aq_def *d,
	   const char *const *params, size_t nparams)
{
	char *err = NULL;
	sqlite3 *db = adb_open_ro(o->data_dir, &err);
	if (!db) {
		fprintf(stderr, "mxbait %s: %s\n", cmd, err ? err : "cannot open analysis.db");
		free(err);
		return 1;
	}
	if (o->json) {
		struct query_db q = {.adb = db, .data_dir = o->data_dir};
		struct query_page pg = {.limit = o->limit};
		struct buf b, e;
		buf_init(&b, 0);
		buf_init(&e, 0);
		struct jw w;
		jw_init(&w, &b);
		int status = query_analysis(&q, d, params, nparams, &pg, &w, &e);
		sqlite3_close(db);
		return cli_print_query(status, &b, &e, cmd);
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, d->sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait %s: %s\n", cmd, sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_int64(st, 1, o->limit > 0 ? o->limit : -1);
	for (size_t i = 0; i < nparams; i++)
		if (params[i])
			sqlite3_bind_text(st, (int)i + 2, params[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, 0);
	const struct aq_col *cols = d->cols;
	size_t ncols = d->ncols;
	const char *heads[16];
	for (size_t i = 0; i < ncols && i < 16; i++)
		heads[i] = cols[i].head;
	struct table *t = table_new(ncols, heads);
	for (size_t i = 0; i < ncols; i++) {
		if (cols[i].max)
			table_set_max(t, i, cols[i].max);
		if (cols[i].right)
			table_set_right(t, i);
	}
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		table_add_row(t);
		for (size_t i = 0; i < ncols; i++) {
			const char *s = (const char *)sqlite3_column_text(st, (int)i);
			table_cell(t, i, s, (size_t)sqlite3_column_bytes(st, (int)i));
		}
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "mxbait %s: %s\n", cmd, sqlite3_errmsg(db));
	table_print(t, stdout);
	if (!table_rows(t))
		printf("(%s)\n", d->empty);
	table_free(&t);
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
	const char *params[] = {domain, flag};
	return aq_run(&o, "urls", &aq_urls, params, 2);
}
