/*
 * cmd_report: `mxbait report SUBCOMMAND`: the outbox and the reporter process.
 *
 *   report list [--state S] [--sink S]     the reports, newest first
 *   report show ID [--payload]             one report (--payload: the rendered bytes)
 *   report send ID... [--to ADDR]          release held/addressing reports for sending
 *                                          (--to: the recipient, skipping the lookup)
 *   report retry ID... | --all-failed      failed/unknown/expired/rejected -> queued
 *   report hold ID... | --all              queued/addressing -> held
 *   report optout ADDR|@DOMAIN [--remove] [--reason TEXT] | --list
 *   report stats                           sent/failed/... per sink (the metrics)
 *   report run                             one reporter pass in the foreground
 *   report --daemon                        the reporter process (until SIGTERM)
 *
 * Everything but run/--daemon works on intel.db alone, offline.  Output escapes every
 * attacker-derived string (table) or encodes it (--json).
 */
#include <errno.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "cli/table.h"
#include "core/privdrop.h"
#include "intel/intel_db.h"
#include "query/reports.h"
#include "report/outbox.h"
#include "report/reporter.h"
#include "report/sink.h"
#include "store/event.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

static const char usage[] =
	"list|show|send|retry|hold|optout|stats|run [OPTIONS] | --daemon [-c CONF]";

static sqlite3 *open_rw(const struct cli_opts *o)
{
	char *err = NULL;
	sqlite3 *db = intel_db_open(o->data_dir, false, NULL, &err);
	if (!db) {
		fprintf(stderr, "mxbait report: %s\n", err ? err : "cannot open intel.db");
		free(err);
	}
	return db;
}

static int parse_id(const char *s, int64_t *id)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v <= 0)
		return -1;
	*id = v;
	return 0;
}

/* --json: the API's serializer (query/reports.h), GET /api/v1/reports... */
static int print_json(sqlite3 *db, int status, struct buf *b, struct buf *err)
{
	sqlite3_close(db);
	return cli_print_query(status, b, err, "report");
}

static int report_list(const struct cli_opts *o, const char *state, const char *sink)
{
	sqlite3 *db = open_rw(o);
	if (!db)
		return 1;
	if (o->json) {
		struct query_db q = {.idb = db, .data_dir = o->data_dir};
		struct query_page pg = {.limit = o->limit};
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		return print_json(db, query_reports(&q, state, sink, &pg, &w, &err), &b, &err);
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "SELECT id, state, sink, kind, subject, recipient, title, incidents,"
				    " attempts, created_us, sent_us, last_error FROM outbox"
				    " WHERE (?1 IS NULL OR state = ?1) AND (?2 IS NULL OR sink = ?2)"
				    " ORDER BY id DESC LIMIT ?3",
				    -1, &st, NULL);
	if (rc != SQLITE_OK) {
		fprintf(stderr, "mxbait report: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	if (state)
		sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	if (sink)
		sqlite3_bind_text(st, 2, sink, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, o->limit > 0 ? o->limit : -1);
	static const char *const heads[] = {"ID", "STATE", "SINK", "KIND", "TO", "TITLE", "TRIES",
					    "CREATED", "ERROR"};
	struct table *t = table_new(9, heads);
	table_set_right(t, 0);
	table_set_max(t, 5, 60);
	table_set_max(t, 8, 40);
	while (sqlite3_step(st) == SQLITE_ROW) {
		table_add_row(t);
		table_cellf(t, 0, "%lld", (long long)sqlite3_column_int64(st, 0));
		for (int c = 1; c <= 3; c++)
			table_cells(t, (size_t)c, (const char *)sqlite3_column_text(st, c));
		table_cells(t, 4, (const char *)sqlite3_column_text(st, 5));
		table_cells(t, 5, (const char *)sqlite3_column_text(st, 6));
		table_cellf(t, 6, "%d", sqlite3_column_int(st, 8));
		char tb[40];
		cli_fmt_time(sqlite3_column_int64(st, 9), tb, sizeof(tb));
		table_cells(t, 7, tb);
		table_cells(t, 8, (const char *)sqlite3_column_text(st, 11));
	}
	sqlite3_finalize(st);
	if (table_rows(t))
		table_print(t, stdout);
	else
		printf("(no reports)\n");
	table_free(&t);
	sqlite3_close(db);
	return 0;
}

static int report_show(const struct cli_opts *o, const char *ids, bool payload)
{
	int64_t id;
	if (!ids || parse_id(ids, &id) < 0) {
		fprintf(stderr, "mxbait report show: expected a report id\n");
		return 2;
	}
	sqlite3 *db = open_rw(o);
	if (!db)
		return 1;
	if (o->json && !payload) {
		struct query_db q = {.idb = db, .data_dir = o->data_dir};
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		int status = query_report(&q, id, &w, &err);
		if (status == QUERY_NOT_FOUND) {
			buf_free(&b);
			buf_free(&err);
			sqlite3_close(db);
			fprintf(stderr, "mxbait report show: no report %lld\n", (long long)id);
			return 1;
		}
		return print_json(db, status, &b, &err);
	}
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, "SELECT id, key, state, sink, kind, subject, recipient, contact_query,"
			       " title, content_type, incidents, redacted, victim_domains, created_us,"
			       " not_after_us, attempts, next_attempt_us, last_error, response,"
			       " sent_us, payload FROM outbox WHERE id = ?1", -1, &st, NULL);
	sqlite3_bind_int64(st, 1, id);
	int rc = 0;
	if (!st || sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "mxbait report show: no report %lld\n", (long long)id);
		rc = 1;
	} else if (payload) {
		/* the rendered bytes, as the sink would send them (terminal-escaped unless
		 * stdout is not a terminal) */
		const void *p = sqlite3_column_blob(st, 20);
		size_t n = (size_t)sqlite3_column_bytes(st, 20);
		if (isatty(STDOUT_FILENO)) {
			struct buf b;
			buf_init(&b, 0);
			for (size_t i = 0; i < n;) {
				const char *s = (const char *)p + i;
				const char *nl = memchr(s, '\n', n - i);
				size_t ll = nl ? (size_t)(nl - s) : n - i;
				term_escape(&b, s, ll && s[ll - 1] == '\r' ? ll - 1 : ll, 0);
				buf_putc(&b, '\n');
				i += ll + 1;
			}
			fwrite(b.data, 1, b.len, stdout);
			buf_free(&b);
		} else if (n) {
			fwrite(p, 1, n, stdout);
		}
	} else {
		static const char *const names[] = {
			"id", "key", "state", "sink", "kind", "subject", "recipient", "contact_query",
			"title", "content_type", "incidents", "redacted", "victim_domains",
			"created_us", "not_after_us", "attempts", "next_attempt_us", "last_error",
			"response", "sent_us"};
		static const char *const h[] = {"", ""};
		struct table *t = table_new(2, h);
		table_hide_header(t);
		table_set_max(t, 1, 100);
		for (int c = 0; c < 20; c++) {
			table_add_row(t);
			table_cells(t, 0, names[c]);
			if (sqlite3_column_type(st, c) == SQLITE_NULL)
				continue;
			if ((c == 13 || c == 14 || c == 16 || c == 19) && sqlite3_column_int64(st, c)) {
				char tb[40];
				cli_fmt_time(sqlite3_column_int64(st, c), tb, sizeof(tb));
				table_cells(t, 1, tb);
			} else {
				table_cell(t, 1, (const char *)sqlite3_column_text(st, c),
					   (size_t)sqlite3_column_bytes(st, c));
			}
		}
		table_add_row(t);
		table_cells(t, 0, "payload");
		table_cellf(t, 1, "%d bytes (mxbait report show %lld --payload)",
			    sqlite3_column_bytes(st, 20), (long long)id);
		table_print(t, stdout);
		table_free(&t);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* Apply a state move to each id argument (or to every row in `from` with all). */
static int report_move(const struct cli_opts *o, char **argv, int argc, bool all, const char *from,
		    const char *to, const char *to_addr)
{
	sqlite3 *db = open_rw(o);
	if (!db)
		return 1;
	int rc = 0;
	long moved = 0;
	if (all) {
		sqlite3_stmt *st = NULL;
		sqlite3_prepare_v2(db, "SELECT id FROM outbox WHERE instr(' ' || ?1 || ' ',"
				       " ' ' || state || ' ') > 0", -1, &st, NULL);
		sqlite3_bind_text(st, 1, from, -1, SQLITE_STATIC);
		int64_t *ids = NULL;
		size_t n = 0;
		while (st && sqlite3_step(st) == SQLITE_ROW) {
			int64_t *ni = realloc(ids, (n + 1) * sizeof(*ids));
			if (!ni)
				break;
			ids = ni;
			ids[n++] = sqlite3_column_int64(st, 0);
		}
		sqlite3_finalize(st);
		for (size_t i = 0; i < n; i++)
			moved += outbox_move(db, ids[i], from, to) > 0;
		free(ids);
	}
	for (int i = 0; i < argc; i++) {
		int64_t id;
		if (parse_id(argv[i], &id) < 0) {
			fprintf(stderr, "mxbait report: bad report id '%s'\n", argv[i]);
			rc = 2;
			continue;
		}
		if (to_addr) {
			sqlite3_stmt *st = NULL;
			sqlite3_prepare_v2(db, "UPDATE outbox SET recipient = ?2 WHERE id = ?1 AND sink ="
					       " 'smtp'", -1, &st, NULL);
			sqlite3_bind_int64(st, 1, id);
			sqlite3_bind_text(st, 2, to_addr, -1, SQLITE_STATIC);
			sqlite3_step(st);
			sqlite3_finalize(st);
		}
		int n = outbox_move(db, id, from, to);
		if (n <= 0) {
			fprintf(stderr, "mxbait report: report %lld is not in a state this applies to "
					"(%s)\n", (long long)id, from);
			rc = rc ? rc : 1;
		}
		moved += n > 0;
	}
	printf("%ld report%s now %s\n", moved, moved == 1 ? "" : "s", to);
	sqlite3_close(db);
	return rc;
}

static int report_optout(const struct cli_opts *o, const char *addr, bool remove, bool list,
		      const char *reason)
{
	sqlite3 *db = open_rw(o);
	if (!db)
		return 1;
	int rc = 0;
	sqlite3_stmt *st = NULL;
	if (list || !addr) {
		sqlite3_prepare_v2(db, "SELECT address, added_us, reason FROM optout ORDER BY address",
				   -1, &st, NULL);
		struct buf b;
		struct jw w;
		buf_init(&b, 0);
		jw_init(&w, &b);
		static const char *const h[] = {"ADDRESS", "ADDED", "REASON"};
		struct table *t = o->json ? NULL : table_new(3, h);
		if (o->json)
			jw_begin_array(&w, NULL);
		while (st && sqlite3_step(st) == SQLITE_ROW) {
			if (o->json) {
				jw_begin_object(&w, NULL);
				jw_col(&w, "address", st, 0);
				jw_int(&w, "added_us", sqlite3_column_int64(st, 1));
				jw_col(&w, "reason", st, 2);
				jw_end_object(&w);
				continue;
			}
			table_add_row(t);
			table_cells(t, 0, (const char *)sqlite3_column_text(st, 0));
			char tb[40];
			cli_fmt_time(sqlite3_column_int64(st, 1), tb, sizeof(tb));
			table_cells(t, 1, tb);
			table_cells(t, 2, (const char *)sqlite3_column_text(st, 2));
		}
		if (o->json) {
			jw_end_array(&w);
			buf_putc(&b, '\n');
			fwrite(b.data, 1, b.len, stdout);
		} else {
			if (table_rows(t))
				table_print(t, stdout);
			else
				printf("(no opt-outs)\n");
			table_free(&t);
		}
		buf_free(&b);
	} else {
		/* an address, or @domain for all of a domain */
		const char *at = strchr(addr, '@');
		if (!at || strpbrk(addr, " \t\r\n<>,;\"") || strlen(addr) > 254 || !at[1]) {
			fprintf(stderr, "mxbait report optout: expected ADDRESS or @DOMAIN\n");
			sqlite3_close(db);
			return 2;
		}
		if (remove) {
			sqlite3_prepare_v2(db, "DELETE FROM optout WHERE address = lower(?1)", -1, &st,
					   NULL);
		} else {
			sqlite3_prepare_v2(db, "INSERT INTO optout(address, added_us, reason)"
					       " VALUES(lower(?1), ?2, ?3) ON CONFLICT(address) DO"
					       " UPDATE SET reason = excluded.reason", -1, &st, NULL);
			sqlite3_bind_int64(st, 2, mxb_now_us());
			if (reason)
				sqlite3_bind_text(st, 3, reason, -1, SQLITE_STATIC);
		}
		sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_DONE) {
			fprintf(stderr, "mxbait report optout: %s\n", sqlite3_errmsg(db));
			rc = 1;
		} else {
			printf("%s %s the opt-out list\n", addr, remove ? "removed from" : "added to");
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

static int report_stats(const struct cli_opts *o)
{
	sqlite3 *db = open_rw(o);
	if (!db)
		return 1;
	struct query_db q = {.idb = db, .data_dir = o->data_dir};
	struct buf b, err;
	buf_init(&b, 0);
	buf_init(&err, 0);
	struct jw w;
	jw_init(&w, &b);
	if (o->json)
		return print_json(db, query_report_stats(&q, &w, &err), &b, &err);
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db,
			   "SELECT sink, count(*), sum(state = 'sent'), sum(state = 'duplicate'),"
			   " sum(state IN ('failed', 'rejected')), sum(state = 'queued'),"
			   " sum(state = 'addressing'), sum(state = 'held'), sum(state = 'unknown'),"
			   " sum(state = 'expired'), sum(state = 'manual'), sum(attempts)"
			   " FROM outbox GROUP BY sink ORDER BY sink", -1, &st, NULL);
	static const char *const h[] = {"SINK", "TOTAL", "SENT", "DUPLICATE", "FAILED", "QUEUED",
					"ADDRESSING", "HELD", "UNKNOWN", "EXPIRED", "MANUAL",
					"ATTEMPTS"};
	struct table *t = table_new(12, h);
	while (st && sqlite3_step(st) == SQLITE_ROW) {
		table_add_row(t);
		table_cells(t, 0, (const char *)sqlite3_column_text(st, 0));
		for (int c = 1; c < 12; c++) {
			table_cellf(t, (size_t)c, "%lld", (long long)sqlite3_column_int64(st, c));
			table_set_right(t, (size_t)c);
		}
	}
	sqlite3_finalize(st);
	if (table_rows(t))
		table_print(t, stdout);
	else
		printf("(no reports)\n");
	table_free(&t);
	buf_free(&b);
	buf_free(&err);
	sqlite3_close(db);
	return 0;
}

static int report_run(const struct cli_opts *o, bool daemon)
{
	struct mxb_config cfg;
	if (intel_cli_config(o, &cfg)) {
		config_free(&cfg);
		return 1;
	}
	if (geteuid() == 0) {
		if (cfg.user && *cfg.user) {
			/* the reporter reads the daemon's data as its account, never as root */
			struct privdrop_user u;
			char *err = NULL;
			if (privdrop_lookup(cfg.user, &u, &err) < 0 || privdrop_become(&u, &err) < 0) {
				fprintf(stderr, "mxbait report: %s\n", err ? err : "cannot drop privileges");
				free(err);
				config_free(&cfg);
				return 1;
			}
		} else if (daemon) {
			fprintf(stderr, "mxbait report: warning: running as root (set `user` in the "
					"configuration)\n");
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct reporter_stats rs;
	int rc = reporter_run(o->data_dir, &cfg, &g_stop, !daemon, &rs);
	if (!daemon && rc == 0) {
		if (o->json)
			printf("{\"planned\":%ld,\"addressed\":%ld,\"sent\":%ld,\"duplicate\":%ld,"
			       "\"retried\":%ld,\"rejected\":%ld,\"failed\":%ld,\"expired\":%ld,"
			       "\"deferred\":%ld,\"recovered_requeued\":%ld,\"recovered_unknown\":%ld,"
			       "\"federation\":{\"published\":%ld,\"segments\":%ld,\"trap_hashes\":%ld,"
			       "\"pulled_segments\":%ld,\"imported\":%ld,\"refused\":%ld,"
			       "\"contradictions\":%ld,\"consensus\":%ld,\"decisions\":%ld}}\n",
			       rs.planned, rs.addressed, rs.sent, rs.duplicate, rs.retried, rs.rejected,
			       rs.failed, rs.expired, rs.deferred, rs.recovered_requeued,
			       rs.recovered_unknown, rs.fed_published, rs.fed_segments,
			       rs.fed_trap_hashes, rs.fed_pulled, rs.fed_imported, rs.fed_refused,
			       rs.fed_contradictions, rs.fed_consensus, rs.fed_decisions);
		else
			printf("planned %ld, addressed %ld, sent %ld, already known %ld, retry later %ld, "
			       "rejected %ld, failed %ld, expired %ld, deferred %ld\n",
			       rs.planned, rs.addressed, rs.sent, rs.duplicate, rs.retried, rs.rejected,
			       rs.failed, rs.expired, rs.deferred);
	}
	config_free(&cfg);
	return rc;
}

int cmd_report(int argc, char **argv)
{
	const char *state = NULL, *sink = NULL, *to = NULL, *payload = NULL, *all = NULL,
		   *remove = NULL, *list = NULL, *reason = NULL, *daemon = NULL, *failed = NULL;
	const struct cli_option extra[] = {
		{"state", true, &state},   {"sink", true, &sink},     {"to", true, &to},
		{"payload", false, &payload}, {"all", false, &all},   {"remove", false, &remove},
		{"list", false, &list},    {"reason", true, &reason}, {"daemon", false, &daemon},
		{"all-failed", false, &failed}, {NULL, false, NULL},
	};
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (daemon)
		return report_run(&o, true);
	if (o.argi >= argc)
		return cli_missing_arg("report", usage, "a subcommand");
	const char *sub = argv[o.argi];
	char **rest = argv + o.argi + 1;
	int nrest = argc - o.argi - 1;
	if (!o.limit_given)
		o.limit = 100;
	if (!strcmp(sub, "list"))
		return report_list(&o, state, sink);
	if (!strcmp(sub, "show"))
		return report_show(&o, nrest ? rest[0] : NULL, payload != NULL);
	if (!strcmp(sub, "send"))
		return report_move(&o, rest, nrest, all != NULL, "held addressing", "queued", to);
	if (!strcmp(sub, "retry"))
		return report_move(&o, rest, nrest, failed != NULL || all != NULL,
				"failed unknown expired rejected", "queued", NULL);
	if (!strcmp(sub, "hold"))
		return report_move(&o, rest, nrest, all != NULL, "queued addressing", "held", NULL);
	if (!strcmp(sub, "optout"))
		return report_optout(&o, nrest ? rest[0] : NULL, remove != NULL, list != NULL, reason);
	if (!strcmp(sub, "stats"))
		return report_stats(&o);
	if (!strcmp(sub, "run"))
		return report_run(&o, false);
	fprintf(stderr, "mxbait report: unknown subcommand '%s'\n", sub);
	return 2;
}
