/*
 * cmd_show: `mxbait show SESSION|QUEUEID`: a session's transcript or a captured
 * message.
 *
 * A session shows every one of its events in order, one per line (time, event id,
 * key=value fields).  A message shows its envelope, where it is stored, whether the
 * file still matches its recorded SHA-256, then its header and text.  Everything that
 * came from the network is escaped: each byte outside printable ASCII as \xHH, lines
 * cut at 200 characters and the text at 64 KiB unless --full.  --json gives the events
 * as stored, or the message with its text as a JSON string.
 *
 * A message also shows its analysis (links, recipients, senders, attachments, campaign,
 * findings) when <data_dir>/analysis.db holds it: that file is ATTACHed to the
 * query_only connection, so nothing is written; a missing file, an older schema or a
 * message not analysed yet is not an error ("analysis": null in --json).
 */
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "query/query.h"
#include "query/spoolfile.h"
#include "query/table.h"
#include "store/event.h"

static const char usage[] = "[OPTIONS] [--full] SESSION|QUEUEID";

#define SHOW_TEXT_MAX (64 * 1024)
#define SHOW_LINE_MAX 200
#define SHOW_ROWS_MAX 100 /* links, recipients... listed without --full */

static bool common_key(const char *k)
{
	static const char *const common[] = {"event", "ts", "session", "src_ip", "src_port",
					     "proto"};
	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		if (!strcmp(k, common[i]))
			return true;
	return false;
}

static bool exists(sqlite3 *db, const char *sql, const char *arg)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, arg, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

static int show_session(sqlite3 *db, const struct cli_opts *o, const char *sid)
{
	struct buf b;
	buf_init(&b, 0);
	sqlite3_stmt *st = NULL;
	int rc;
	if (o->json) {
		struct query_db q = {.db = db, .data_dir = o->data_dir};
		struct buf err;
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		int status = query_session_events(&q, sid, &w, &err);
		return cli_print_query(status == QUERY_NOT_FOUND ? QUERY_OK : status, &b, &err,
				       "show");
	}
	/* Header: the session summary. */
	rc = sqlite3_prepare_v2(db, "SELECT src_ip, src_port, proto, started_us, duration_ms,"
				    " reason FROM sessions WHERE session = ?1", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		char t[40];
		cli_fmt_time(sqlite3_column_int64(st, 3), t, sizeof(t));
		buf_puts(&b, "session ");
		term_escape(&b, sid, strlen(sid), 0);
		buf_puts(&b, " from ");
		term_escape(&b, (const char *)sqlite3_column_text(st, 0),
			    (size_t)sqlite3_column_bytes(st, 0), 64);
		buf_printf(&b, " port %d on ", sqlite3_column_int(st, 1));
		term_escape(&b, (const char *)sqlite3_column_text(st, 2),
			    (size_t)sqlite3_column_bytes(st, 2), 16);
		buf_printf(&b, ", started %s UTC", t);
		if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
			long long ms = sqlite3_column_int64(st, 4);
			buf_printf(&b, ", lasted %lld.%03llds, ended: ", ms / 1000, ms % 1000);
			term_escape(&b, (const char *)sqlite3_column_text(st, 5),
				    (size_t)sqlite3_column_bytes(st, 5), 32);
		} else {
			buf_puts(&b, ", still open");
		}
		buf_putc(&b, '\n');
	}
	sqlite3_finalize(st);
	st = NULL;

	/* Each event's fields in the order they were written. */
	rc = sqlite3_prepare_v2(db,
				"SELECT e.id, e.ts_us, e.event, j.key, j.type, j.atom, j.value"
				" FROM events e, json_each(e.json) j WHERE e.session = ?1"
				" ORDER BY e.id, j.id",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	int64_t cur = -1;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(st, 0);
		if (id != cur) {
			if (cur >= 0)
				buf_putc(&b, '\n');
			cur = id;
			int64_t us = sqlite3_column_int64(st, 1);
			char t[40];
			mxb_format_ts(us, t, sizeof(t));
			/* HH:MM:SS.uuuuuu from the RFC 3339 form. */
			buf_printf(&b, "%.15s  ", t + 11);
			const char *name = (const char *)sqlite3_column_text(st, 2);
			size_t nl = (size_t)sqlite3_column_bytes(st, 2);
			size_t before = b.len;
			term_escape(&b, name, nl, 16);
			for (size_t pad = b.len - before; pad < 16; pad++)
				buf_putc(&b, ' ');
		}
		const char *key = (const char *)sqlite3_column_text(st, 3);
		if (!key || common_key(key))
			continue;
		const char *type = (const char *)sqlite3_column_text(st, 4);
		buf_putc(&b, ' ');
		term_escape(&b, key, strlen(key), 32);
		buf_putc(&b, '=');
		if (type && !strcmp(type, "text")) {
			buf_putc(&b, '"');
			term_escape(&b, (const char *)sqlite3_column_text(st, 5),
				    (size_t)sqlite3_column_bytes(st, 5), SHOW_LINE_MAX);
			buf_putc(&b, '"');
		} else if (type && (!strcmp(type, "array") || !strcmp(type, "object"))) {
			term_escape(&b, (const char *)sqlite3_column_text(st, 6),
				    (size_t)sqlite3_column_bytes(st, 6), SHOW_LINE_MAX);
		} else if (type && !strcmp(type, "null")) {
			buf_puts(&b, "null");
		} else if (type && !strcmp(type, "true")) {
			buf_puts(&b, "true");
		} else if (type && !strcmp(type, "false")) {
			buf_puts(&b, "false");
		} else {
			term_escape(&b, (const char *)sqlite3_column_text(st, 5),
				    (size_t)sqlite3_column_bytes(st, 5), 40);
		}
	}
	if (cur >= 0)
		buf_putc(&b, '\n');
	if (rc != SQLITE_DONE)
		goto fail;
	fwrite(b.data, 1, b.len, stdout);
	sqlite3_finalize(st);
	buf_free(&b);
	return 0;
fail:
	fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	buf_free(&b);
	return 1;
}

/* The message text, line by line, every line escaped and cut. */
static void print_text(struct buf *b, const char *s, size_t len, bool full)
{
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && s[eol] != '\n')
			eol++;
		size_t end = eol;
		if (end > i && s[end - 1] == '\r')
			end--;
		buf_puts(b, "  ");
		term_escape(b, s + i, end - i, full ? 0 : SHOW_LINE_MAX);
		buf_putc(b, '\n');
		i = eol + 1;
	}
}

/* Append column i escaped (max characters), "-" for NULL. */
static void put_col(struct buf *b, sqlite3_stmt *st, int i, size_t max)
{
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		buf_putc(b, '-');
	else
		term_escape(b, (const char *)sqlite3_column_text(st, i),
			    (size_t)sqlite3_column_bytes(st, i), max);
}

/* One section of the analysis: a heading with the row count, then each row of the query
 * (over the analysis JSON bound as ?1) through row_fn; without --full at most
 * SHOW_ROWS_MAX rows (a bought list has thousands of recipients). */
static void print_section(sqlite3 *db, struct buf *b, const char *json, const char *title,
			  const char *sql, void (*row_fn)(struct buf *, sqlite3_stmt *, bool),
			  bool full)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		buf_printf(b, "%s: (%s)\n", title, sqlite3_errmsg(db));
		return;
	}
	sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
	struct buf rows;
	buf_init(&rows, 0);
	unsigned n = 0;
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (full || n < SHOW_ROWS_MAX)
			row_fn(&rows, st, full);
		n++;
	}
	sqlite3_finalize(st);
	buf_printf(b, "%s (%u)\n", title, n);
	if (rows.len)
		buf_append(b, rows.data, rows.len);
	if (!full && n > SHOW_ROWS_MAX)
		buf_printf(b, "  [... %u more; --full shows all]\n", n - SHOW_ROWS_MAX);
	buf_free(&rows);
}

static void link_row(struct buf *b, sqlite3_stmt *st, bool full)
{
	size_t max = full ? 0 : SHOW_LINE_MAX;
	buf_puts(b, "  ");
	put_col(b, st, 1, max);
	buf_puts(b, "\n    raw   ");
	put_col(b, st, 0, max);
	buf_puts(b, "\n    where ");
	put_col(b, st, 2, 120);
	buf_puts(b, "  flags ");
	put_col(b, st, 3, 160);
	if (sqlite3_column_type(st, 4) != SQLITE_NULL) {
		buf_puts(b, "  shows ");
		put_col(b, st, 4, 120);
	}
	if (sqlite3_column_type(st, 5) != SQLITE_NULL) {
		buf_puts(b, "  unicode ");
		put_col(b, st, 5, 120);
	}
	buf_putc(b, '\n');
}

static void recipient_row(struct buf *b, sqlite3_stmt *st, bool full)
{
	buf_puts(b, "  ");
	put_col(b, st, 0, full ? 0 : SHOW_LINE_MAX);
	buf_puts(b, "  (");
	put_col(b, st, 2, 40);
	buf_putc(b, ')');
	if (sqlite3_column_type(st, 1) != SQLITE_NULL) {
		buf_puts(b, "  \"");
		put_col(b, st, 1, 80);
		buf_putc(b, '"');
	}
	buf_putc(b, '\n');
}

static void attachment_row(struct buf *b, sqlite3_stmt *st, bool full)
{
	buf_puts(b, "  ");
	put_col(b, st, 0, full ? 0 : SHOW_LINE_MAX);
	buf_puts(b, "\n    declared ");
	put_col(b, st, 1, 80);
	buf_puts(b, "  detected ");
	put_col(b, st, 2, 80);
	buf_puts(b, "  size ");
	put_col(b, st, 3, 20);
	buf_puts(b, "\n    sha256 ");
	put_col(b, st, 4, 64);
	buf_puts(b, "  md5 ");
	put_col(b, st, 5, 32);
	if (sqlite3_column_type(st, 6) != SQLITE_NULL) {
		buf_puts(b, "\n    members ");
		put_col(b, st, 6, full ? 0 : 4 * SHOW_LINE_MAX);
	}
	buf_putc(b, '\n');
}

static void finding_row(struct buf *b, sqlite3_stmt *st, bool full)
{
	buf_puts(b, "  ");
	put_col(b, st, 0, 40);
	buf_puts(b, "  ");
	put_col(b, st, 1, full ? 0 : SHOW_LINE_MAX);
	buf_putc(b, '\n');
}

/* The analysis for a terminal: every value escaped like the message itself.  SQLite's
 * JSON functions walk the analyzer's JSON, so there is one rendering of the facts. */
static void print_analysis(sqlite3 *db, struct buf *b, const char *json, bool full)
{
	buf_puts(b, "\nanalysis\n");
	sqlite3_stmt *st = NULL;
	static const struct {
		const char *label, *path;
	} one[] = {{"campaign", "$.campaign.id"},
		   {"from", "$.senders.from"},
		   {"from name", "$.senders.from_name"},
		   {"env from", "$.senders.envelope_from"},
		   {"reply-to", "$.senders.reply_to"},
		   {"return-path", "$.senders.return_path"},
		   {"msgid dom", "$.senders.message_id_domain"},
		   {"x-mailer", "$.senders.x_mailer"},
		   {"user-agent", "$.senders.user_agent"},
		   {"client ip", "$.senders.client_ip"},
		   {"helo", "$.senders.helo"},
		   {"auth user", "$.senders.auth_user"},
		   {"subject", "$.headers.subject"}};
	if (sqlite3_prepare_v2(db, "SELECT json_extract(?1, ?2)", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
		for (size_t i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
			sqlite3_bind_text(st, 2, one[i].path, -1, SQLITE_STATIC);
			if (sqlite3_step(st) == SQLITE_ROW) {
				buf_printf(b, "  %-12s", one[i].label);
				put_col(b, st, 0, full ? 0 : SHOW_LINE_MAX);
				buf_putc(b, '\n');
			}
			sqlite3_reset(st);
		}
	}
	sqlite3_finalize(st);
	print_section(db, b, json, "links",
		      "SELECT json_extract(l.value, '$.raw'), json_extract(l.value, '$.url'),"
		      " (SELECT group_concat(w.value, ',') FROM json_each(l.value, '$.where') w),"
		      " (SELECT group_concat(f.value, ',') FROM json_each(l.value, '$.flags') f),"
		      " json_extract(l.value, '$.display_host'),"
		      " json_extract(l.value, '$.host_unicode')"
		      " FROM json_each(?1, '$.links') l ORDER BY l.key",
		      link_row, full);
	print_section(db, b, json, "recipients",
		      "SELECT json_extract(r.value, '$.addr'), json_extract(r.value, '$.name'),"
		      " (SELECT group_concat(s.value, ',') FROM json_each(r.value, '$.from') s)"
		      " FROM json_each(?1, '$.recipients') r ORDER BY r.key",
		      recipient_row, full);
	print_section(db, b, json, "attachments",
		      "SELECT coalesce(json_extract(a.value, '$.filename'), '(no name)'),"
		      " json_extract(a.value, '$.declared_type'),"
		      " json_extract(a.value, '$.detected_type'), json_extract(a.value, '$.size'),"
		      " json_extract(a.value, '$.sha256'), json_extract(a.value, '$.md5'),"
		      " (SELECT group_concat(m.value, ', ') FROM json_each(a.value, '$.members') m)"
		      " FROM json_each(?1, '$.attachments') a ORDER BY a.key",
		      attachment_row, full);
	print_section(db, b, json, "findings",
		      "SELECT json_extract(f.value, '$.kind'), json_extract(f.value, '$.detail')"
		      " FROM json_each(?1, '$.findings') f ORDER BY f.key",
		      finding_row, full);
}

static int show_message(sqlite3 *db, const struct cli_opts *o, const char *qid, bool full)
{
	struct query_db q = {.db = db, .data_dir = o->data_dir};
	if (o->json) {
		struct buf jb, err;
		buf_init(&jb, 0);
		buf_init(&err, 0);
		struct jw jwr;
		jw_init(&jwr, &jb);
		int status = query_message(&q, qid, full ? 0 : SHOW_TEXT_MAX, &jwr, &err);
		if (status == QUERY_NOT_FOUND) {
			fprintf(stderr, "mxbait: no message %s\n", qid);
			buf_free(&jb);
			buf_free(&err);
			return 1;
		}
		return cli_print_query(status, &jb, &err, "show");
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT queue_id, ts_us, session, src_ip, sender, recipients,"
				    " size, sha256, spool, method, auth_user, tls FROM messages"
				    " WHERE queue_id = ?1 ORDER BY id DESC LIMIT 1",
				    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_finalize(st);
		fprintf(stderr, "mxbait: no message %s\n", qid);
		return 1;
	}
	const char *spool = (const char *)sqlite3_column_text(st, 8);
	char *path = spoolfile_path(o->data_dir, spool);
	struct buf text, b;
	buf_init(&text, 0);
	buf_init(&b, 0);
	uint64_t fsize = 0;
	char sha[65] = "";
	int rr = path ? query_read_file(path, full ? 0 : SHOW_TEXT_MAX, &text, &fsize, sha) : -1;
	const char *want_sha = (const char *)sqlite3_column_text(st, 7);
	bool sha_ok = rr == 0 && want_sha && !strcmp(want_sha, sha);
	bool cut = rr == 0 && fsize > text.len;
	char *analysis = query_load_analysis(&q, spool, want_sha);
	{
		char t[40], sz[32];
		const struct {
			const char *label;
			int col;
		} env[] = {{"queue id", 0}, {"session", 2}, {"peer", 3}, {"sender", 4},
			   {"recipients", 5}, {"method", 9}, {"auth user", 10}};
		for (size_t i = 0; i < sizeof(env) / sizeof(env[0]); i++) {
			buf_printf(&b, "%-12s", env[i].label);
			if (sqlite3_column_type(st, env[i].col) == SQLITE_NULL)
				buf_putc(&b, '-');
			else
				term_escape(&b, (const char *)sqlite3_column_text(st, env[i].col),
					    (size_t)sqlite3_column_bytes(st, env[i].col),
					    full ? 0 : 4 * SHOW_LINE_MAX);
			buf_putc(&b, '\n');
			if (i == 0) {
				cli_fmt_time(sqlite3_column_int64(st, 1), t, sizeof(t));
				buf_printf(&b, "%-12s%s UTC\n", "time", t);
			}
		}
		buf_printf(&b, "%-12s%s\n", "tls", sqlite3_column_int(st, 11) ? "yes" : "no");
		cli_fmt_size((uint64_t)sqlite3_column_int64(st, 6), sz, sizeof(sz));
		buf_printf(&b, "%-12s%lld bytes (%s)\n", "size",
			   (long long)sqlite3_column_int64(st, 6), sz);
		buf_printf(&b, "%-12s", "sha256");
		term_escape(&b, want_sha ? want_sha : "-", want_sha ? strlen(want_sha) : 1, 80);
		buf_printf(&b, "%s\n", rr != 0 ? "" : sha_ok ? " (file matches)"
							  : " (FILE DIFFERS)");
		buf_printf(&b, "%-12s", "stored");
		if (path)
			term_escape(&b, path, strlen(path), 0);
		else
			buf_puts(&b, "(file not found in the spool)");
		buf_putc(&b, '\n');
		if (analysis)
			print_analysis(db, &b, analysis, full);
		else
			buf_printf(&b, "%-12s%s\n", "analysis", "- (not analysed yet)");
		if (rr == 0) {
			buf_puts(&b, "\n");
			print_text(&b, text.data ? text.data : "", text.len, full);
			if (cut)
				buf_printf(&b, "[... %llu more bytes; --full shows all]\n",
					   (unsigned long long)(fsize - text.len));
		}
	}
	fwrite(b.data, 1, b.len, stdout);
	buf_free(&b);
	buf_free(&text);
	free(analysis);
	free(path);
	sqlite3_finalize(st);
	return 0;
}

int cmd_show(int argc, char **argv)
{
	const char *full = NULL;
	const struct cli_option extra[] = {{"full", false, &full}, {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi >= argc)
		return cli_missing_arg("show", usage, "SESSION or QUEUEID");
	if (o.argi + 1 < argc) {
		fprintf(stderr, "mxbait show: one SESSION or QUEUEID, not '%s'\n",
			argv[o.argi + 1]);
		return 2;
	}
	const char *id = argv[o.argi];
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;
	int ret;
	if (exists(db, "SELECT 1 FROM sessions WHERE session = ?1", id) ||
	    exists(db, "SELECT 1 FROM events WHERE session = ?1 LIMIT 1", id)) {
		ret = show_session(db, &o, id);
	} else if (exists(db, "SELECT 1 FROM messages WHERE queue_id = ?1", id)) {
		ret = show_message(db, &o, id, full != NULL);
	} else {
		struct buf e;
		buf_init(&e, 0);
		term_escape(&e, id, strlen(id), 64);
		fprintf(stderr, "mxbait: no session or message '%s'\n", e.data ? e.data : "");
		buf_free(&e);
		ret = 1;
	}
	sqlite3_close(db);
	return ret;
}
