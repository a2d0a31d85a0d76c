/*
 * cmd_attackers: `mxbait attackers`: who is attacking, per IP and per network
 * (/24 for IPv4, /48 for IPv6).
 *
 * Per row: AUTH attempts, distinct usernames tried, successful logins (cracked
 * accounts used), sessions, messages sent, enumeration probes (RCPT/VRFY/EXPN before
 * AUTH), first and last seen, protocols; networks also count their distinct IPs.
 * Ordered by attempts, then sessions.  --since limits every figure to recent rows.
 */
#include <sqlite3.h>
#include <stdio.h>

#include "cli/cli.h"
#include "query/attackers.h"
#include "store/db.h"
#include "store/event.h"

static const char usage[] = "[OPTIONS] [--top N] [--since DURATION]";

int cmd_attackers(int argc, char **argv)
{
	const char *top_s = NULL, *since_s = NULL;
	const struct cli_option extra[] = {
		{"top", true, &top_s}, {"since", true, &since_s}, {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait attackers: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	long top = o.limit_given ? o.limit : INTEL_DEFAULT_TOP;
	int64_t since = 0;
	if (top_s && intel_parse_count(top_s, 0, &top) < 0) {
		fprintf(stderr, "mxbait attackers: bad --top '%s' (a number >= 0)\n", top_s);
		return 2;
	}
	if (since_s && intel_parse_duration(since_s, &since) < 0) {
		fprintf(stderr, "mxbait attackers: bad --since '%s' (e.g. 90s, 30m, 24h, 7d)\n",
			since_s);
		return 2;
	}
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;
	if (db_register_functions(db) < 0) {
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	int64_t since_us = since ? mxb_now_us() - since : 0;
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	struct intel_out out;
	intel_begin(&out, db, o.json, since_us, top);
	query_attackers(&out);
	int status = intel_end(&out);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return status;
}
