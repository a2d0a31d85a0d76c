/*
 * cmd_messages: `mxbait messages`: the most recent captured messages, newest first.
 *
 * Queue id, time, session, peer, envelope sender, recipient count, size, and the
 * Subject read from the stored file's header (RFC 2047 words left encoded; every
 * byte escaped by the table).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "query/spoolfile.h"
#include "query/query.h"
#include "query/table.h"

static const char usage[] = "[OPTIONS]";

static const char sql[] =
	"SELECT queue_id, ts_us, session, src_ip, sender, n_rcpt, size, spool, sha256,"
	" recipients, method, auth_user, tls"
	" FROM messages ORDER BY ts_us DESC, id DESC LIMIT ?1";

static const char *txt(sqlite3_stmt *st, int i, size_t *len)
{
	*len = (size_t)sqlite3_column_bytes(st, i);
	return (const char *)sqlite3_column_text(st, i);
}

int cmd_messages(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_parse_common(argc, argv, usage, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait messages: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;
	if (o.json) {
		struct query_db q = {.db = db, .data_dir = o.data_dir};
		struct query_page pg = {.limit = o.limit};
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		int status = query_messages(&q, &pg, &w, &err);
		sqlite3_close(db);
		return cli_print_query(status, &b, &err, "messages");
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_int64(st, 1, o.limit > 0 ? o.limit : -1);

	struct buf subj;
	buf_init(&subj, 0);
	const char *heads[] = {"QUEUE ID", "TIME (UTC)", "SESSION", "PEER", "SENDER",
			       "RCPT", "SIZE", "SUBJECT"};
	struct table *t = table_new(8, heads);
	table_set_max(t, 3, 40);
	table_set_max(t, 4, 32);
	table_set_max(t, 7, 60);
	table_set_right(t, 5);
	table_set_right(t, 6);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len;
		const char *s;
		buf_reset(&subj);
		char *path = spoolfile_path(o.data_dir, (const char *)sqlite3_column_text(st, 7));
		int have_subj = path ? spoolfile_subject(path, &subj) : -1;
		char tbuf[40], sz[32];
		table_add_row(t);
		s = txt(st, 0, &len);
		table_cell(t, 0, s, len);
		cli_fmt_time(sqlite3_column_int64(st, 1), tbuf, sizeof(tbuf));
		table_cells(t, 1, tbuf);
		s = txt(st, 2, &len);
		table_cell(t, 2, s, len);
		s = txt(st, 3, &len);
		table_cell(t, 3, s, len);
		s = txt(st, 4, &len);
		if (s && len == 0)
			table_cells(t, 4, "<>");
		else
			table_cell(t, 4, s, len);
		table_cellf(t, 5, "%d", sqlite3_column_int(st, 5));
		cli_fmt_size((uint64_t)sqlite3_column_int64(st, 6), sz, sizeof(sz));
		table_cells(t, 6, sz);
		if (have_subj == 1)
			table_cell(t, 7, subj.data, subj.len);
		else if (!path)
			table_cells(t, 7, "(file gone)");
		free(path);
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
	table_print(t, stdout);
	if (!table_rows(t))
		printf("(no messages)\n");
	table_free(&t);
	buf_free(&subj);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : 1;
}
