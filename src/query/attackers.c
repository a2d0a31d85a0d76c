/*
 * attackers: who is attacking, per IP and per network (/24 for IPv4, /48 for IPv6): the
 * one rendering of `mxbait attackers` and GET /api/v1/attackers (see attackers.h).
 *
 * Per row: AUTH attempts, distinct usernames tried, successful logins (cracked
 * accounts used), sessions, messages sent, enumeration probes (RCPT/VRFY/EXPN before
 * AUTH), first and last seen, protocols; networks also count their distinct IPs.
 * Ordered by attempts, then sessions.  since limits every figure to recent rows.
 */
#include "query/attackers.h"

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
	{"IP", "ip", IK_TEXT, 40, NULL},              {"ATTEMPTS", "attempts", IK_INT, 0, NULL},
	{"USERNAMES", "usernames", IK_INT, 0, NULL},  {"OK", "successes", IK_INT, 0, NULL},
	{"SESSIONS", "sessions", IK_INT, 0, NULL},    {"MSGS", "messages", IK_INT, 0, NULL},
	{"PROBES", "probes", IK_INT, 0, NULL},        {"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"},
	{"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},   {"PROTOCOLS", "protocols", IK_LIST, 40, NULL},
};
/* Networks also count their distinct IPs (that had sessions in the period). */
static const struct intel_col cols_prefix[] = {
	{"NETWORK", "prefix", IK_TEXT, 44, NULL},     {"IPS", "ips", IK_INT, 0, NULL},
	{"ATTEMPTS", "attempts", IK_INT, 0, NULL},    {"USERNAMES", "usernames", IK_INT, 0, NULL},
	{"OK", "successes", IK_INT, 0, NULL},         {"SESSIONS", "sessions", IK_INT, 0, NULL},
	{"MSGS", "messages", IK_INT, 0, NULL},        {"PROBES", "probes", IK_INT, 0, NULL},
	{"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"}, {"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},
	{"PROTOCOLS", "protocols", IK_LIST, 40, NULL},
};

void query_attackers(struct intel_out *out)
{
	intel_section(out, "IPs", "ips", sql_ips, cols_ip, 10, NULL, 0, NULL, NULL);
	intel_section(out, "networks (/24 IPv4, /48 IPv6)", "prefixes", sql_prefixes,
		      cols_prefix, 11, NULL, 0, NULL, NULL);
}
