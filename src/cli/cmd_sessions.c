/*
 * cmd_sessions: `mxbait sessions [--ip IP]`: the most recent sessions, newest first.
 *
 * One row per connection: id, start, peer, listener, HELO, TLS, authenticated user,
 * commands, messages, duration and why it ended.  Attacker-chosen text (HELO, user)
 * is escaped and cut by the table.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "query/query.h"
#include "query/table.h"

static const char usage[] = "[OPTIONS] [--ip IP]";

/* The table's columns (--json: query_sessions, the API's shape). */
static const char sql[] =
	"SELECT session, started_us, src_ip, src_port, proto, helo, tls, auth_user, commands,"
	" messages, duration_ms, reason, ended_us, dst_port, errors, auth_attempts, mails,"
	" rcpts, offences, state"
	" FROM sessions WHERE (?1 IS NULL OR src_ip = ?1)"
	" ORDER BY started_us DESC, rowid DESC LIMIT ?2";

static const char *txt(sqlite3_stmt *st, int i, size_t *len)
{
	*len = (size_t)sqlite3_column_bytes(st, i);
	return (const char *)sqlite3_column_text(st, i);
}

int cmd_sessions(int argc, char **argv)
{
	const char *ip = NULL;
	const struct cli_option extra[] = {{"ip", true, &ip}, {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait sessions: unexpected argument '%s'\n", argv[o.argi]);
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
		int status = query_sessions(&q, ip, &pg, &w, &err);
		sqlite3_close(db);
		return cli_print_query(status, &b, &err, "sessions");
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (ip)
		sqlite3_bind_text(st, 1, ip, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, o.limit > 0 ? o.limit : -1);

	const char *heads[] = {"SESSION", "START (UTC)", "PEER", "PROTO", "HELO", "TLS",
			       "AUTH", "CMDS", "MSGS", "DURATION", "END"};
	struct table *t = table_new(11, heads);
	table_set_max(t, 2, 48);
	table_set_max(t, 4, 32);
	table_set_max(t, 5, 8);
	table_set_max(t, 6, 16);
	table_set_right(t, 7);
	table_set_right(t, 8);
	table_set_right(t, 9);
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		size_t len;
		const char *s;
		char tbuf[40];
		table_add_row(t);
		s = txt(st, 0, &len);
		table_cell(t, 0, s, len);
		cli_fmt_time(sqlite3_column_int64(st, 1), tbuf, sizeof(tbuf));
		table_cells(t, 1, tbuf);
		s = txt(st, 2, &len);
		/* IPv6 in brackets so the port reads unambiguously. */
		if (s && memchr(s, ':', len))
			table_cellf(t, 2, "[%.*s]:%d", (int)len, s, sqlite3_column_int(st, 3));
		else
			table_cellf(t, 2, "%.*s:%d", (int)len, s ? s : "", sqlite3_column_int(st, 3));
		s = txt(st, 4, &len);
		table_cell(t, 3, s, len);
		s = txt(st, 5, &len);
		table_cell(t, 4, s, len);
		s = txt(st, 6, &len);
		table_cell(t, 5, s, len);
		s = txt(st, 7, &len);
		table_cell(t, 6, s, len);
		table_cellf(t, 7, "%d", sqlite3_column_int(st, 8));
		table_cellf(t, 8, "%d", sqlite3_column_int(st, 9));
		if (sqlite3_column_type(st, 10) != SQLITE_NULL) {
			long long ms = sqlite3_column_int64(st, 10);
			table_cellf(t, 9, "%lld.%03llds", ms / 1000, ms % 1000);
		} else if (sqlite3_column_type(st, 12) == SQLITE_NULL) {
			table_cells(t, 9, "open");
		}
		s = txt(st, 11, &len);
		table_cell(t, 10, s, len);
	}
	if (rc != SQLITE_DONE)
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
	table_print(t, stdout);
	if (!table_rows(t))
		printf("(no sessions%s%s)\n", ip ? " from " : "", ip ? "that address" : "");
	table_free(&t);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc == SQLITE_DONE ? 0 : 1;
}
