/*
 * cmd_creds: `mxbait creds`: what password guessers tried and what they got.
 *
 * Sections (tables, or one JSON object with an array per section):
 * - usernames: attempts, distinct IPs and passwords, successes, first/last seen,
 *   protocols, and the largest number of distinct IPs that tried it within any
 *   --window (default 1h); DISTRIBUTED when that reaches --min-ips (default 5): one
 *   account guessed from many addresses at once, a botnet rather than one client;
 * - passwords and username/password pairs;
 * - cracked accounts (the policy's accounts table): password, when, and what each
 *   sent: messages whose authenticated user is that account, recipients, the last
 *   message's time, recipient count and Subject;
 * - enumeration: addresses probed with RCPT/VRFY/EXPN by unauthenticated sessions,
 *   and the IPs probing.
 * The window and threshold come from --window/--min-ips, else from the config file's
 * distributed_window/distributed_min_ips when -c is given, else 1h and 5.
 */
#include <sqlite3.h>
#include <stdlib.h>

#include "cli/cli.h"
#include "query/creds.h"
#include "store/event.h"

static const char usage[] =
	"[OPTIONS] [--top N] [--since DURATION] [--window DURATION] [--min-ips N]";

int cmd_creds(int argc, char **argv)
{
	const char *top_s = NULL, *since_s = NULL, *window_s = NULL, *min_ips_s = NULL;
	const struct cli_option extra[] = {{"top", true, &top_s},
					   {"since", true, &since_s},
					   {"window", true, &window_s},
					   {"min-ips", true, &min_ips_s},
					   {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait creds: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	long top = o.limit_given ? o.limit : INTEL_DEFAULT_TOP, min_ips = QUERY_CREDS_DEFAULT_MIN_IPS;
	int64_t since = 0, window = QUERY_CREDS_DEFAULT_WINDOW_US;
	if (o.distributed_window_ms)
		window = (int64_t)o.distributed_window_ms * 1000;
	if (o.distributed_min_ips)
		min_ips = o.distributed_min_ips;
	if (top_s && intel_parse_count(top_s, 0, &top) < 0) {
		fprintf(stderr, "mxbait creds: bad --top '%s' (a number >= 0)\n", top_s);
		return 2;
	}
	if (since_s && intel_parse_duration(since_s, &since) < 0) {
		fprintf(stderr, "mxbait creds: bad --since '%s' (e.g. 90s, 30m, 24h, 7d)\n",
			since_s);
		return 2;
	}
	if (window_s && intel_parse_duration(window_s, &window) < 0) {
		fprintf(stderr, "mxbait creds: bad --window '%s' (e.g. 90s, 30m, 1h, 1d)\n",
			window_s);
		return 2;
	}
	if (min_ips_s && intel_parse_count(min_ips_s, 1, &min_ips) < 0) {
		fprintf(stderr, "mxbait creds: bad --min-ips '%s' (a number >= 1)\n", min_ips_s);
		return 2;
	}
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;
	int64_t since_us = since ? mxb_now_us() - since : 0;

	struct query_creds_args qa = {.since_us = since_us, .window_us = window,
				      .min_ips = min_ips, .data_dir = o.data_dir};
	/* One read transaction: all sections from the same snapshot. */
	sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
	struct intel_out out;
	intel_begin(&out, db, o.json, since_us, top);
	if (query_creds(&out, &qa) < 0) {
		char *j = NULL;
		intel_finish(&out, &j, NULL);
		free(j);
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		sqlite3_close(db);
		return 1;
	}
	int status = intel_end(&out);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return status;
}
