/*
 * cmd_decisions: `mxbait decisions [list|add|del|allow]`: the guard's decisions.
 *
 *   list [--all]                  decisions in force (--all: every one ever made), newest
 *                                 first, and operators' requests not yet applied
 *   add SOURCE [--action A] [--for DURATION] [--reason TEXT]
 *                                 divert (default), ban or delay SOURCE (an address or
 *                                 a prefix) for DURATION (default: decision_duration)
 *   del SOURCE                    end the decision about exactly SOURCE now
 *   allow SOURCE [--for DURATION] never act on SOURCE (default: until removed)
 *
 * The guard is the one writer of decisions: add, del and allow leave a small request
 * file in DATA_DIR/guard-requests/ (written to a temporary name, then renamed, so the
 * daemon never reads half of one); the running daemon applies it within a second and
 * records the decision (`decision` event, decisions table); a daemon started later
 * applies it at start.  list reads mxbait.db read-only.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <dirent.h>

#include "cli/cli.h"
#include "cli/intel.h"
#include "cli/table.h"
#include "intel/decision.h"
#include "query/decisions.h"
#include "store/db.h"
#include "store/event.h"
#include "util/buf.h"
#include "util/netaddr.h"

static const char usage[] =
	"[list [--all] | add SOURCE [--action divert|ban|delay] [--for DURATION] [--reason TEXT] "
	"| del SOURCE | allow SOURCE [--for DURATION]] [OPTIONS]";

#define REQUEST_DIR "guard-requests"

/* Write the request; prints what was asked.  Returns the exit status. */
static int write_request(const struct cli_opts *o, const char *op, const struct netaddr *src,
			 const char *action, long long duration_ms, const char *reason)
{
	char *dir = cli_data_path(o, REQUEST_DIR);
	char *data = cli_data_path(o, "");
	struct stat dst;
	if (stat(data, &dst) != 0 || !S_ISDIR(dst.st_mode)) {
		fprintf(stderr, "mxbait decisions: no data directory at %s: run mxbait serve "
				"first (or give -d/-c)\n", o->data_dir);
		free(dir);
		free(data);
		return 1;
	}
	if (mkdir(dir, 0700) == 0) {
		/* the daemon's account owns the data directory: it must read and delete here */
		if (chown(dir, dst.st_uid, dst.st_gid) != 0 && geteuid() == 0)
			fprintf(stderr, "mxbait decisions: cannot hand %s to the daemon's user: %s\n",
				dir, strerror(errno));
	} else if (errno != EEXIST) {
		fprintf(stderr, "mxbait decisions: cannot create %s: %s\n", dir, strerror(errno));
		free(dir);
		free(data);
		return 1;
	}
	char src_s[NETADDR_STRLEN];
	netaddr_format(src, src_s, sizeof(src_s));
	struct buf text, tmp, fin;
	buf_init(&text, 0);
	buf_init(&tmp, 0);
	buf_init(&fin, 0);
	buf_printf(&text, "op=%s\nsource=%s\n", op, src_s);
	if (action)
		buf_printf(&text, "action=%s\n", action);
	if (duration_ms)
		buf_printf(&text, "duration_ms=%lld\n", duration_ms);
	if (reason)
		buf_printf(&text, "reason=%s\n", reason);
	unsigned char r[6];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		memset(r, 0, sizeof(r));
	char name[64];
	snprintf(name, sizeof(name), "%lld-%02x%02x%02x%02x%02x%02x", (long long)mxb_now_us(), r[0],
		 r[1], r[2], r[3], r[4], r[5]);
	buf_printf(&tmp, "%s/tmp-%s", dir, name);
	buf_printf(&fin, "%s/req-%s", dir, name);
	int rc = 1;
	int fd = open(tmp.data, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, text.data, text.len) != (ssize_t)text.len || fsync(fd) != 0) {
		fprintf(stderr, "mxbait decisions: cannot write %s: %s\n", tmp.data, strerror(errno));
	} else if (fchown(fd, dst.st_uid, dst.st_gid) != 0 && geteuid() == 0) {
		fprintf(stderr, "mxbait decisions: cannot hand %s to the daemon's user: %s\n",
			tmp.data, strerror(errno));
	} else if (rename(tmp.data, fin.data) != 0) {
		fprintf(stderr, "mxbait decisions: cannot rename %s: %s\n", tmp.data, strerror(errno));
	} else {
		rc = 0;
	}
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp.data);
	else if (o->json)
		printf("{\"request\":\"req-%s\",\"op\":\"%s\",\"source\":\"%s\",\"action\":%s%s%s,"
		       "\"duration_ms\":%lld}\n", name, op, src_s, action ? "\"" : "",
		       action ? action : "null", action ? "\"" : "", duration_ms);
	else
		printf("requested: %s %s%s%s (the running mxbait serve applies it within a second; "
		       "see mxbait decisions list)\n", op, src_s, action ? " " : "",
		       action ? action : "");
	buf_free(&text);
	buf_free(&tmp);
	buf_free(&fin);
	free(dir);
	free(data);
	return rc;
}

static int parse_source(const char *s, struct netaddr *a)
{
	if (!s || netaddr_parse(s, a) != 0) {
		fprintf(stderr, "mxbait decisions: '%s' is not an address or prefix (e.g. 203.0.113.7, "
				"198.51.100.0/24, 2001:db8::/48)\n", s ? s : "");
		return -1;
	}
	return 0;
}

/* Pending requests (not applied yet): one table line each. */
static void list_pending(const struct cli_opts *o, struct table *t)
{
	char *dir = cli_data_path(o, REQUEST_DIR);
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (strncmp(de->d_name, "req-", 4))
				continue;
			struct buf p;
			buf_init(&p, 0);
			buf_printf(&p, "%s/%s", dir, de->d_name);
			char text[1024] = "";
			int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			if (fd >= 0) {
				ssize_t n = read(fd, text, sizeof(text) - 1);
				text[n > 0 ? n : 0] = '\0';
				close(fd);
			}
			buf_free(&p);
			char op[16] = "", source[64] = "", action[16] = "";
			for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
				if (!strncmp(line, "op=", 3))
					snprintf(op, sizeof(op), "%s", line + 3);
				else if (!strncmp(line, "source=", 7))
					snprintf(source, sizeof(source), "%s", line + 7);
				else if (!strncmp(line, "action=", 7))
					snprintf(action, sizeof(action), "%s", line + 7);
			}
			table_add_row(t);
			table_cells(t, 0, source);
			table_cells(t, 1, *action ? action : op);
			table_cells(t, 2, "pending");
			table_cells(t, 5, de->d_name);
		}
		closedir(d);
	}
	free(dir);
}

static int cmd_list(const struct cli_opts *o, bool all)
{
	sqlite3 *db = cli_open_db(o);
	if (!db)
		return 1;
	int64_t now = mxb_now_us();
	if (o->json) {
		/* the API's serializer (query/decisions.h): GET /api/v1/decisions */
		struct query_db q = {.db = db, .data_dir = o->data_dir};
		struct query_page pg = {.limit = o->limit};
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		int status = query_decisions(&q, all, now, &pg, &w, &err);
		sqlite3_close(db);
		return cli_print_query(status, &b, &err, "decisions");
	}
	sqlite3_stmt *st = NULL;
	const char *sql =
		"SELECT id, source, action, reason, origin, evidence, created_us, expires_us, level,"
		" ended_us FROM decisions WHERE ?1 OR (ended_us IS NULL AND (expires_us = 0 OR"
		" expires_us > ?2)) ORDER BY created_us DESC, rowid DESC LIMIT ?3";
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait decisions: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	sqlite3_bind_int(st, 1, all);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, o->limit > 0 ? o->limit : -1);
	static const char *const heads[] = { "SOURCE", "ACTION", "STATE", "REASON", "EXPIRES",
					     "ID", "LEVEL", "EVIDENCE" };
	struct table *t = table_new(8, heads);
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t exp = sqlite3_column_int64(st, 7);
		bool ended = sqlite3_column_type(st, 9) != SQLITE_NULL;
		const char *state = ended ? "removed" : exp && exp <= now ? "expired" : "active";
		char when[40] = "never";
		if (exp)
			cli_fmt_time(exp, when, sizeof(when));
		table_add_row(t);
		table_cells(t, 0, (const char *)sqlite3_column_text(st, 1));
		table_cells(t, 1, (const char *)sqlite3_column_text(st, 2));
		table_cells(t, 2, state);
		table_cells(t, 3, (const char *)sqlite3_column_text(st, 3));
		table_cells(t, 4, when);
		table_cells(t, 5, (const char *)sqlite3_column_text(st, 0));
		table_cellf(t, 6, "%d", sqlite3_column_int(st, 8));
		const char *ev = (const char *)sqlite3_column_text(st, 5);
		table_cells(t, 7, ev ? ev : "");
		table_set_max(t, 7, 60);
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	list_pending(o, t);
	if (table_rows(t))
		table_print(t, stdout);
	else
		printf("no decisions in force\n");
	table_free(&t);
	return 0;
}

int cmd_decisions(int argc, char **argv)
{
	const char *action = NULL, *for_s = NULL, *reason = NULL, *all_s = NULL;
	const struct cli_option extra[] = {
		{"action", true, &action}, {"for", true, &for_s}, {"reason", true, &reason},
		{"all", false, &all_s}, {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	const char *sub = o.argi < argc ? argv[o.argi] : "list";
	const char *arg = o.argi + 1 < argc ? argv[o.argi + 1] : NULL;
	if (o.argi + 2 < argc) {
		fprintf(stderr, "mxbait decisions: unexpected argument '%s'\n", argv[o.argi + 2]);
		return 2;
	}
	int64_t dur_us = 0;
	if (for_s && (intel_parse_duration(for_s, &dur_us) < 0 || dur_us <= 0)) {
		fprintf(stderr, "mxbait decisions: bad --for '%s' (e.g. 30m, 24h, 7d)\n", for_s);
		return 2;
	}
	if (reason) {
		for (const char *p = reason; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				fprintf(stderr, "mxbait decisions: --reason with control characters\n");
				return 2;
			}
		if (strlen(reason) >= DECISION_REASON_LEN) {
			fprintf(stderr, "mxbait decisions: --reason longer than %d bytes\n",
				DECISION_REASON_LEN - 1);
			return 2;
		}
	}
	long long dur_ms = dur_us / 1000;
	struct netaddr src;
	if (!strcmp(sub, "list")) {
		if (arg) {
			fprintf(stderr, "mxbait decisions: unexpected argument '%s'\n", arg);
			return 2;
		}
		return cmd_list(&o, all_s != NULL);
	}
	if (!strcmp(sub, "add")) {
		if (!arg)
			return cli_missing_arg("decisions", usage, "SOURCE");
		if (parse_source(arg, &src))
			return 2;
		enum decision_action a = decision_action_parse(action ? action : "divert");
		if (a == DECISION_NONE || a == DECISION_ALLOW) {
			fprintf(stderr, "mxbait decisions: --action is divert, ban or delay\n");
			return 2;
		}
		return write_request(&o, "add", &src, decision_action_name(a), dur_ms,
				     reason ? reason : "manual");
	}
	if (!strcmp(sub, "del") || !strcmp(sub, "allow")) {
		if (!arg)
			return cli_missing_arg("decisions", usage, "SOURCE");
		if (parse_source(arg, &src))
			return 2;
		if (action) {
			fprintf(stderr, "mxbait decisions: --action is for add\n");
			return 2;
		}
		if (!strcmp(sub, "del"))
			return write_request(&o, "del", &src, NULL, 0, NULL);
		return write_request(&o, "allow", &src, "allow", dur_ms ? dur_ms : -1,
				     reason ? reason : "manual");
	}
	fprintf(stderr, "mxbait decisions: unknown subcommand '%s' (list, add, del, allow)\n", sub);
	return 2;
}
