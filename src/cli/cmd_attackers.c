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
#include "cli/intel.h"
#include "store/db.h"
#include "store/event.h"

static const char usage[] = "[OPTIONS] [--top N] [--since DURATION]";

/* KA: the key in auth_attempts/probes; KS: in sessions/messages (no prefix column). */
#define ATTACKERS_SQL(KA, KS, IPS)                                                            \
	"WITH a AS (SELECT " KA " AS k, count(*) AS attempts,"                             \
	" count(DISTINCT username) AS usernames, sum(success) AS successes,"               \
	" min(ts_us) AS f, max(ts_us) AS l FROM auth_attempts WHERE {+}ts_us >= ?1"           \
	" GROUP BY k),"                                                                    \
	" s AS (SELECT " KS " AS k, count(*) AS sessions, count(DISTINCT src_ip) AS ips,"  \
	" min(started_us) AS f, max(coalesce(ended_us, started_us)) AS l FROM sessions"    \
	" WHERE {+}started_us >= ?1 GROUP BY k),"                                             \
	" m AS (SELECT " KS " AS k, count(*) AS messages FROM messages WHERE {+}ts_us >= ?1"  \
	" GROUP BY k),"                                                                    \
	" p AS (SELECT " KA " AS k, count(*) AS probes, min(ts_us) AS f, max(ts_us) AS l"  \
	" FROM probes WHERE {+}ts_us >= ?1 GROUP BY k),"                                      \
	" pr AS (SELECT k, group_concat(proto, ',') AS protocols FROM (SELECT DISTINCT "   \
	KS " AS k, proto FROM sessions WHERE {+}started_us >= ?1 ORDER BY k, proto)"          \
	" GROUP BY k),"                                                                    \
	" keys AS (SELECT k FROM s UNION SELECT k FROM a UNION SELECT k FROM p)"           \
	" SELECT keys.k" IPS ", coalesce(a.attempts, 0) AS attempts,"                      \
	" coalesce(a.usernames, 0), coalesce(a.successes, 0),"                             \
	" coalesce(s.sessions, 0) AS sessions, coalesce(m.messages, 0),"                   \
	" coalesce(p.probes, 0),"                                                          \
	" min(coalesce(a.f, s.f, p.f), coalesce(s.f, a.f, p.f), coalesce(p.f, a.f, s.f)),"  \
	" max(coalesce(a.l, s.l, p.l), coalesce(s.l, a.l, p.l), coalesce(p.l, a.l, s.l)),"  \
	" pr.protocols"                                                                    \
	" FROM keys LEFT JOIN a ON a.k = keys.k LEFT JOIN s ON s.k = keys.k"               \
	" LEFT JOIN m ON m.k = keys.k LEFT JOIN p ON p.k = keys.k"                         \
	" LEFT JOIN pr ON pr.k = keys.k WHERE keys.k IS NOT NULL"                          \
	" ORDER BY attempts DESC, sessions DESC, keys.k LIMIT ?2"

static const char sql_ips[] = ATTACKERS_SQL("+src_ip", "+src_ip", "");
static const char sql_prefixes[] =
	ATTACKERS_SQL("+prefix", "mxb_prefix(src_ip)", ", coalesce(s.ips, 0)");

static const struct intel_col cols_ip[] = {
	{"IP", "ip", IK_TEXT, 40},              {"ATTEMPTS", "attempts", IK_INT, 0},
	{"USERNAMES", "usernames", IK_INT, 0},  {"OK", "successes", IK_INT, 0},
	{"SESSIONS", "sessions", IK_INT, 0},    {"MSGS", "messages", IK_INT, 0},
	{"PROBES", "probes", IK_INT, 0},        {"FIRST SEEN", "first_us", IK_TIME, 0},
	{"LAST SEEN", "last_us", IK_TIME, 0},   {"PROTOCOLS", "protocols", IK_TEXT, 40},
};
/* Networks also count their distinct IPs (that had sessions in the period). */
static const struct intel_col cols_prefix[] = {
	{"NETWORK", "prefix", IK_TEXT, 44},     {"IPS", "ips", IK_INT, 0},
	{"ATTEMPTS", "attempts", IK_INT, 0},    {"USERNAMES", "usernames", IK_INT, 0},
	{"OK", "successes", IK_INT, 0},         {"SESSIONS", "sessions", IK_INT, 0},
	{"MSGS", "messages", IK_INT, 0},        {"PROBES", "probes", IK_INT, 0},
	{"FIRST SEEN", "first_us", IK_TIME, 0}, {"LAST SEEN", "last_us", IK_TIME, 0},
	{"PROTOCOLS", "protocols", IK_TEXT, 40},
};

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
	intel_section(&out, "IPs", "ips", sql_ips, cols_ip, 10, NULL, 0, NULL, NULL);
	intel_section(&out, "networks (/24 IPv4, /48 IPv6)", "prefixes", sql_prefixes,
		      cols_prefix, 11, NULL, 0, NULL, NULL);
	int status = intel_end(&out);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return status;
}
