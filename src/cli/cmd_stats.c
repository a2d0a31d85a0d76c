/*
 * cmd_stats: `mxbait stats`: totals over the whole database and the spool.
 *
 * Sessions, distinct IPs, messages and bytes, AUTH attempts (ok / failed), recipients
 * (accepted / denied), offences by kind, disconnect reasons, first and last event,
 * events dropped by an overloaded writer, and spool usage.  --json prints one object.
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "query/query.h"
#include "query/table.h"
#include "store/db.h"

static const char usage[] = "[OPTIONS]";

static void group_table(sqlite3 *db, const char *sql, const char *title, struct table *t)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return;
	bool first = true;
	while (sqlite3_step(st) == SQLITE_ROW) {
		table_add_row(t);
		if (first)
			table_cells(t, 0, title);
		first = false;
		table_cell(t, 2, (const char *)sqlite3_column_text(st, 0),
			   (size_t)sqlite3_column_bytes(st, 0));
		table_cellf(t, 1, "%lld", (long long)sqlite3_column_int64(st, 1));
	}
	if (first) {
		table_add_row(t);
		table_cells(t, 0, title);
		table_cells(t, 1, "0");
	}
	sqlite3_finalize(st);
}

int cmd_stats(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_parse_common(argc, argv, usage, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait stats: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;

	/* One read transaction: all figures from the same snapshot. */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	struct query_db q = {.db = db, .data_dir = o.data_dir, .spool_budget = o.spool_budget};
	int status = 0;
	if (o.json) {
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		if (query_stats(&q, &w, &err) == QUERY_OK) {
			buf_putc(&b, '\n');
			fwrite(b.data, 1, b.len, stdout);
		} else {
			fprintf(stderr, "mxbait: %s\n", err.data ? err.data : "query failed");
			status = 1;
		}
		buf_free(&b);
		buf_free(&err);
	} else {
		struct query_totals tt;
		query_totals(&q, &tt);
		char t1[40], t2[40], sz[32];
		cli_fmt_time(tt.first_us, t1, sizeof(t1));
		cli_fmt_time(tt.last_us, t2, sizeof(t2));
		const char *heads[] = {"", "", ""};
		struct table *t = table_new(3, heads);
		table_hide_header(t);
		table_set_right(t, 1);
		table_set_max(t, 2, 60);
#define ROW(label, fmt, ...) \
	(table_add_row(t), table_cells(t, 0, label), table_cellf(t, 1, fmt, __VA_ARGS__))
		ROW("sessions", "%lld", (long long)tt.sessions);
		ROW("distinct IPs", "%lld", (long long)tt.ips);
		cli_fmt_size((uint64_t)tt.message_bytes, sz, sizeof(sz));
		ROW("messages", "%lld", (long long)tt.messages);
		table_cells(t, 2, sz);
		ROW("auth attempts", "%lld", (long long)tt.auth_ok);
		table_cells(t, 2, "ok");
		ROW("", "%lld", (long long)(tt.auth_all - tt.auth_ok));
		table_cells(t, 2, "failed");
		ROW("recipients", "%lld", (long long)tt.rcpt_ok);
		table_cells(t, 2, "accepted");
		ROW("", "%lld", (long long)(tt.rcpt_all - tt.rcpt_ok));
		table_cells(t, 2, "denied");
		group_table(db, query_sql_refused, "messages refused", t);
		group_table(db, query_sql_offences, "offences", t);
		group_table(db, query_sql_reasons, "disconnect reasons", t);
		ROW("events", "%lld", (long long)tt.events);
		ROW("events dropped", "%lld", (long long)tt.dropped);
		ROW("first event", "%s", "");
		table_cells(t, 2, t1);
		ROW("last event", "%s", "");
		table_cells(t, 2, t2);
		cli_fmt_size(tt.spool.bytes, sz, sizeof(sz));
		char budget[64] = "";
		if (o.spool_budget) {
			char bs[32];
			cli_fmt_size(o.spool_budget, bs, sizeof(bs));
			snprintf(budget, sizeof(budget), " of %s (%.1f%%)", bs,
				 100.0 * (double)tt.spool.bytes / (double)o.spool_budget);
		}
		ROW("spool", "%llu", (unsigned long long)tt.spool.files);
		table_cellf(t, 2, "files, %s%s", sz, budget);
#undef ROW
		table_print(t, stdout);
		table_free(&t);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return status;
}
