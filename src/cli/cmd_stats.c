/*
 * cmd_stats: `mxbait stats`: totals over the whole database and the spool.
 *
 * Sessions, distinct IPs, messages and bytes, AUTH attempts (ok / failed), recipients
 * (accepted / denied), offences by kind, disconnect reasons, first and last event,
 * events dropped by an overloaded writer, and spool usage.  --json prints one object.
 */
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "store/db.h"

static const char usage[] = "[OPTIONS]";

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

struct spool_usage {
	uint64_t files, bytes, tmp_files;
	uint64_t disk_bytes; /* as spool_budget counts them: allocated blocks */
};

static void scan(const char *dir, uint64_t *files, uint64_t *bytes, uint64_t *disk)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			(*files)++;
			*bytes += (uint64_t)st.st_size;
			uint64_t alloc = (uint64_t)st.st_blocks * 512;
			*disk += alloc > (uint64_t)st.st_size ? alloc : (uint64_t)st.st_size;
		}
	}
	closedir(d);
}

static void spool_usage(const struct cli_opts *o, struct spool_usage *u)
{
	memset(u, 0, sizeof(*u));
	const char *subs[] = {"new", "cur"};
	for (size_t i = 0; i < 2; i++) {
		char *p = NULL;
		if (asprintf(&p, "%s/%s/%s", o->data_dir, MXB_SPOOL_DIR, subs[i]) < 0)
			continue;
		scan(p, &u->files, &u->bytes, &u->disk_bytes);
		free(p);
	}
	char *p = NULL;
	uint64_t tb = 0;
	if (asprintf(&p, "%s/%s/tmp", o->data_dir, MXB_SPOOL_DIR) >= 0)
		scan(p, &u->tmp_files, &tb, &u->disk_bytes);
	u->bytes += tb;
	free(p);
}

/* A "name count" grouping, e.g. offences by kind. */
static const char sql_offences[] =
	"SELECT coalesce(json_extract(json, '$.kind'), '?') AS k, count(*) FROM events"
	" WHERE event = 'offence' GROUP BY k ORDER BY count(*) DESC, k";
static const char sql_reasons[] =
	"SELECT coalesce(reason, '(open)') AS r, count(*) FROM sessions"
	" GROUP BY r ORDER BY count(*) DESC, r";

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

static void group_json(sqlite3 *db, const char *sql, const char *key, struct jw *w)
{
	sqlite3_stmt *st = NULL;
	jw_begin_object(w, key);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			/* Keys are attacker-reachable text: json_append_string escapes. */
			const char *k = (const char *)sqlite3_column_text(st, 0);
			struct buf kb;
			buf_init(&kb, 0);
			buf_append(&kb, k ? k : "", k ? (size_t)sqlite3_column_bytes(st, 0) : 0);
			jw_int(w, kb.data ? kb.data : "", (long long)sqlite3_column_int64(st, 1));
			buf_free(&kb);
		}
	}
	sqlite3_finalize(st);
	jw_end_object(w);
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
	int64_t sessions = q_int(db, "SELECT count(*) FROM sessions");
	int64_t ips = q_int(db, "SELECT count(DISTINCT src_ip) FROM sessions");
	int64_t msgs = q_int(db, "SELECT count(*) FROM messages");
	int64_t bytes = q_int(db, "SELECT coalesce(sum(size), 0) FROM messages");
	int64_t auth_all = q_int(db, "SELECT count(*) FROM events WHERE event = 'auth'");
	int64_t auth_ok = q_int(db, "SELECT count(*) FROM events WHERE event = 'auth'"
				    " AND json_extract(json, '$.success') = 1");
	int64_t rcpt_all = q_int(db, "SELECT count(*) FROM events WHERE event = 'rcpt'");
	int64_t rcpt_ok = q_int(db, "SELECT count(*) FROM events WHERE event = 'rcpt'"
				    " AND json_extract(json, '$.accepted') = 1");
	int64_t events = q_int(db, "SELECT count(*) FROM events");
	int64_t first = q_int(db, "SELECT coalesce(min(ts_us), 0) FROM events");
	int64_t last = q_int(db, "SELECT coalesce(max(ts_us), 0) FROM events");
	int64_t dropped = db_counter_get(db, "events_dropped");
	struct spool_usage su;
	spool_usage(&o, &su);

	char t1[40], t2[40], sz[32];
	cli_fmt_time(first, t1, sizeof(t1));
	cli_fmt_time(last, t2, sizeof(t2));
	if (o.json) {
		struct buf b;
		buf_init(&b, 0);
		struct jw w;
		jw_init(&w, &b);
		jw_begin_object(&w, NULL);
		jw_int(&w, "sessions", sessions);
		jw_int(&w, "distinct_ips", ips);
		jw_int(&w, "messages", msgs);
		jw_int(&w, "message_bytes", bytes);
		jw_begin_object(&w, "auth");
		jw_int(&w, "ok", auth_ok);
		jw_int(&w, "failed", auth_all - auth_ok);
		jw_end_object(&w);
		jw_begin_object(&w, "rcpt");
		jw_int(&w, "accepted", rcpt_ok);
		jw_int(&w, "denied", rcpt_all - rcpt_ok);
		jw_end_object(&w);
		group_json(db, sql_offences, "offences", &w);
		group_json(db, sql_reasons, "disconnect_reasons", &w);
		jw_int(&w, "events", events);
		jw_int(&w, "events_dropped", dropped);
		if (first)
			jw_cstr(&w, "first_event", t1);
		else
			jw_null(&w, "first_event");
		if (last)
			jw_cstr(&w, "last_event", t2);
		else
			jw_null(&w, "last_event");
		jw_begin_object(&w, "spool");
		jw_int(&w, "files", (long long)su.files);
		jw_int(&w, "bytes", (long long)su.bytes);
		jw_int(&w, "disk_bytes", (long long)su.disk_bytes);
		jw_int(&w, "tmp_files", (long long)su.tmp_files);
		if (o.spool_budget)
			jw_int(&w, "budget", (long long)o.spool_budget);
		else
			jw_null(&w, "budget");
		jw_end_object(&w);
		jw_end_object(&w);
		buf_putc(&b, '\n');
		fwrite(b.data, 1, b.len, stdout);
		buf_free(&b);
	} else {
		const char *heads[] = {"", "", ""};
		struct table *t = table_new(3, heads);
		table_hide_header(t);
		table_set_right(t, 1);
		table_set_max(t, 2, 60);
#define ROW(label, fmt, ...) \
	(table_add_row(t), table_cells(t, 0, label), table_cellf(t, 1, fmt, __VA_ARGS__))
		ROW("sessions", "%lld", (long long)sessions);
		ROW("distinct IPs", "%lld", (long long)ips);
		cli_fmt_size((uint64_t)bytes, sz, sizeof(sz));
		ROW("messages", "%lld", (long long)msgs);
		table_cells(t, 2, sz);
		ROW("auth attempts", "%lld", (long long)auth_ok);
		table_cells(t, 2, "ok");
		ROW("", "%lld", (long long)(auth_all - auth_ok));
		table_cells(t, 2, "failed");
		ROW("recipients", "%lld", (long long)rcpt_ok);
		table_cells(t, 2, "accepted");
		ROW("", "%lld", (long long)(rcpt_all - rcpt_ok));
		table_cells(t, 2, "denied");
		group_table(db, sql_offences, "offences", t);
		group_table(db, sql_reasons, "disconnect reasons", t);
		ROW("events", "%lld", (long long)events);
		ROW("events dropped", "%lld", (long long)dropped);
		ROW("first event", "%s", "");
		table_cells(t, 2, t1);
		ROW("last event", "%s", "");
		table_cells(t, 2, t2);
		cli_fmt_size(su.bytes, sz, sizeof(sz));
		char budget[64] = "";
		if (o.spool_budget) {
			char bs[32];
			cli_fmt_size(o.spool_budget, bs, sizeof(bs));
			snprintf(budget, sizeof(budget), " (%.1f%% of %s on disk)",
				 100.0 * (double)su.disk_bytes / (double)o.spool_budget, bs);
		}
		ROW("spool", "%llu", (unsigned long long)su.files);
		table_cellf(t, 2, "files, %s%s", sz, budget);
#undef ROW
		table_print(t, stdout);
		table_free(&t);
	}
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return 0;
}
