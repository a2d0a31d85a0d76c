/*
 * creds: the sections of `mxbait creds` and of GET /api/v1/credentials (see creds.h):
 * what password guessers tried and what they got.
 *
 * Sections (tables, or one JSON object with an array per section):
 * - usernames: attempts, distinct IPs and passwords, successes, first/last seen,
 *   protocols, and the largest number of distinct IPs that tried it within any
 *   window (default 1h); DISTRIBUTED when that reaches min_ips (default 5): one
 *   account guessed from many addresses at once, a botnet rather than one client;
 * - passwords and username/password pairs;
 * - cracked accounts (the policy's accounts table): password, when, and what each
 *   sent: messages whose authenticated user is that account, recipients, the last
 *   message's time, recipient count and Subject;
 * - enumeration: addresses probed with RCPT/VRFY/EXPN by unauthenticated sessions,
 *   and the IPs probing.
 */
#include "query/creds.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query/spoolfile.h"

static const char sql_users[] =
	"SELECT username, count(*) AS attempts, count(DISTINCT src_ip) AS ips,"
	" count(DISTINCT password) AS passwords, sum(success) AS successes,"
	" min(ts_us) AS first_us, max(ts_us) AS last_us,"
	" (SELECT group_concat(proto, ',') FROM (SELECT DISTINCT proto FROM auth_attempts b"
	"  WHERE b.username = a.username AND +b.ts_us >= ?1 ORDER BY proto)) AS protocols"
	" FROM auth_attempts a WHERE +username IS NOT NULL AND {+}ts_us >= ?1"
	" GROUP BY +username ORDER BY attempts DESC, username LIMIT ?2";
static const struct intel_col cols_users[] = {
	{"USERNAME", "username", IK_TEXT, 32, NULL},  {"ATTEMPTS", "attempts", IK_INT, 0, NULL},
	{"IPS", "ips", IK_INT, 0, NULL},              {"PASSWORDS", "passwords", IK_INT, 0, NULL},
	{"OK", "successes", IK_INT, 0, NULL},         {"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"},
	{"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},   {"PROTOCOLS", "protocols", IK_LIST, 40, NULL},
};

static const char sql_passwords[] =
	"SELECT password, count(*) AS attempts, count(DISTINCT username) AS usernames,"
	" count(DISTINCT src_ip) AS ips, sum(success) AS successes,"
	" min(ts_us) AS first_us, max(ts_us) AS last_us"
	" FROM auth_attempts WHERE +password IS NOT NULL AND {+}ts_us >= ?1"
	" GROUP BY +password ORDER BY attempts DESC, password LIMIT ?2";
static const struct intel_col cols_passwords[] = {
	{"PASSWORD", "password", IK_TEXT, 32, NULL}, {"ATTEMPTS", "attempts", IK_INT, 0, NULL},
	{"USERNAMES", "usernames", IK_INT, 0, NULL}, {"IPS", "ips", IK_INT, 0, NULL},
	{"OK", "successes", IK_INT, 0, NULL},        {"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"},
	{"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},
};

static const char sql_pairs[] =
	"SELECT username, password, count(*) AS attempts, count(DISTINCT src_ip) AS ips,"
	" sum(success) AS successes, min(ts_us) AS first_us, max(ts_us) AS last_us"
	" FROM auth_attempts"
	" WHERE +username IS NOT NULL AND +password IS NOT NULL AND {+}ts_us >= ?1"
	" GROUP BY +username, +password ORDER BY attempts DESC, username, password LIMIT ?2";
static const struct intel_col cols_pairs[] = {
	{"USERNAME", "username", IK_TEXT, 32, NULL}, {"PASSWORD", "password", IK_TEXT, 32, NULL},
	{"ATTEMPTS", "attempts", IK_INT, 0, NULL},   {"IPS", "ips", IK_INT, 0, NULL},
	{"OK", "successes", IK_INT, 0, NULL},        {"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"},
	{"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},
};

/* The account a message was sent as: the policy's canonical name is the lower-cased
 * local part (only served domains can log in, and they are stripped). */
#define MSG_ACCOUNT                                                                 \
	"lower(CASE WHEN instr(auth_user, '@') > 0"                                 \
	" THEN substr(auth_user, 1, instr(auth_user, '@') - 1) ELSE auth_user END)"

static const char sql_cracked[] =
	"WITH m AS (SELECT " MSG_ACCOUNT " AS u, count(*) AS n, sum(n_rcpt) AS rcpts,"
	" max(ts_us) AS last_us FROM messages"
	" WHERE auth_user IS NOT NULL AND {+}ts_us >= ?1 GROUP BY u)"
	" SELECT a.username, a.password,"
	" CASE WHEN a.fixed THEN 'fixed' ELSE 'cracked' END AS kind,"
	" nullif(a.cracked_us, 0) AS cracked_us, a.failures,"
	" coalesce(m.n, 0) AS messages, coalesce(m.rcpts, 0) AS recipients,"
	" m.last_us AS last_message_us"
	" FROM accounts a LEFT JOIN m ON m.u = a.username"
	" WHERE a.password IS NOT NULL AND (a.fixed OR a.cracked_us >= ?1)"
	" ORDER BY a.cracked_us DESC, a.username LIMIT ?2";
static const struct intel_col cols_cracked[] = {
	{"USERNAME", "username", IK_TEXT, 32, NULL},    {"PASSWORD", "password", IK_TEXT, 32, NULL},
	{"KIND", "kind", IK_TEXT, 0, NULL},             {"CRACKED", "cracked_us", IK_TIME, 0, "cracked"},
	{"FAILURES", "failures", IK_INT, 0, NULL},      {"MSGS", "messages", IK_INT, 0, NULL},
	{"RCPTS", "recipients", IK_INT, 0, NULL},       {"LAST MSG", "last_message_us", IK_TIME, 0, "last_message"},
};

static const char sql_probed[] =
	"SELECT address, count(*) AS probes, count(DISTINCT src_ip) AS ips,"
	" sum(accepted) AS accepted,"
	" (SELECT group_concat(kind, ',') FROM (SELECT DISTINCT kind FROM probes b"
	"  WHERE b.address IS a.address AND +b.ts_us >= ?1 ORDER BY kind)) AS kinds,"
	" min(ts_us) AS first_us, max(ts_us) AS last_us"
	" FROM probes a WHERE {+}ts_us >= ?1"
	" GROUP BY +address ORDER BY probes DESC, address LIMIT ?2";
static const struct intel_col cols_probed[] = {
	{"ADDRESS", "address", IK_TEXT, 48, NULL},   {"PROBES", "probes", IK_INT, 0, NULL},
	{"IPS", "ips", IK_INT, 0, NULL},             {"ACCEPTED", "accepted", IK_INT, 0, NULL},
	{"KINDS", "kinds", IK_LIST, 0, NULL},        {"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"},
	{"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},
};

static const char sql_probers[] =
	"SELECT src_ip, count(*) AS probes, count(DISTINCT address) AS addresses,"
	" sum(kind <> 'rcpt') AS vrfy_expn, sum(accepted) AS accepted,"
	" count(DISTINCT session) AS sessions, min(ts_us) AS first_us, max(ts_us) AS last_us"
	" FROM probes WHERE {+}ts_us >= ?1"
	" GROUP BY +src_ip ORDER BY probes DESC, src_ip LIMIT ?2";
static const struct intel_col cols_probers[] = {
	{"IP", "ip", IK_TEXT, 40, NULL},             {"PROBES", "probes", IK_INT, 0, NULL},
	{"ADDRESSES", "addresses", IK_INT, 0, NULL}, {"VRFY/EXPN", "vrfy_expn", IK_INT, 0, NULL},
	{"ACCEPTED", "accepted", IK_INT, 0, NULL},   {"SESSIONS", "sessions", IK_INT, 0, NULL},
	{"FIRST SEEN", "first_us", IK_TIME, 0, "first_seen"}, {"LAST SEEN", "last_us", IK_TIME, 0, "last_seen"},
};

struct users_ctx {
	sqlite3_stmt *st; /* one username's attempts by time, with its IPs numbered */
	int64_t since_us, window_us;
	long min_ips;
	unsigned *counts;
	size_t n_counts;
	int failed;
};

/* The most distinct IPs seen within any window of window_us: a sliding window over
 * the username's attempts in time order, with a count per IP inside it. */
static long peak_ips(struct users_ctx *c, const char *user, size_t len)
{
	sqlite3_stmt *st = c->st;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, user, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->since_us);
	int64_t *ts = NULL;
	size_t *ip = NULL, n = 0, alloc = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == alloc) {
			alloc = alloc ? alloc * 2 : 256;
			int64_t *t2 = realloc(ts, alloc * sizeof(*ts));
			if (t2)
				ts = t2;
			size_t *i2 = realloc(ip, alloc * sizeof(*ip));
			if (i2)
				ip = i2;
			if (!t2 || !i2)
				abort(); /* a CLI out of memory has nothing better to do */
		}
		ts[n] = sqlite3_column_int64(st, 0);
		int64_t r = sqlite3_column_int64(st, 1);
		ip[n] = r > 0 ? (size_t)r - 1 : 0;
		if (ip[n] >= c->n_counts) {
			size_t m = ip[n] + 1 > c->n_counts * 2 ? ip[n] + 1 : c->n_counts * 2;
			unsigned *cn = realloc(c->counts, m * sizeof(*cn));
			if (!cn)
				abort();
			c->counts = cn;
			c->n_counts = m;
		}
		n++;
	}
	if (rc != SQLITE_DONE)
		c->failed = 1;
	sqlite3_reset(st);
	if (c->counts)
		memset(c->counts, 0, c->n_counts * sizeof(*c->counts));
	long distinct = 0, peak = 0;
	for (size_t right = 0, left = 0; right < n; right++) {
		if (c->counts[ip[right]]++ == 0)
			distinct++;
		while (ts[right] - ts[left] >= c->window_us)
			if (--c->counts[ip[left++]] == 0)
				distinct--;
		if (distinct > peak)
			peak = distinct;
	}
	free(ts);
	free(ip);
	return peak;
}

static void users_row(void *ctx, sqlite3_stmt *st, struct table *t, size_t col0, struct jw *w)
{
	struct users_ctx *c = ctx;
	long peak = peak_ips(c, (const char *)sqlite3_column_text(st, 0),
			     (size_t)sqlite3_column_bytes(st, 0));
	bool distributed = peak >= c->min_ips;
	if (w) {
		jw_int(w, "peak_ips", peak);
		jw_bool(w, "distributed", distributed);
		return;
	}
	table_cellf(t, col0, "%ld", peak);
	table_cells(t, col0 + 1, distributed ? "DISTRIBUTED" : "");
}

struct cracked_ctx {
	sqlite3_stmt *st; /* an account's last message */
	const char *data_dir;
	int64_t since_us;
};

static void cracked_row(void *ctx, sqlite3_stmt *row, struct table *t, size_t col0,
			struct jw *w)
{
	struct cracked_ctx *c = ctx;
	sqlite3_stmt *st = c->st;
	struct buf subj;
	buf_init(&subj, 0);
	bool have_msg = false, have_subj = false;
	long long rcpts = 0;
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, (const char *)sqlite3_column_text(row, 0),
			  sqlite3_column_bytes(row, 0), SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, c->since_us);
	if (sqlite3_step(st) == SQLITE_ROW) {
		have_msg = true;
		rcpts = sqlite3_column_int64(st, 1);
		const char *spool = (const char *)sqlite3_column_text(st, 0);
		char *path = spool ? spoolfile_path(c->data_dir, spool) : NULL;
		have_subj = path && spoolfile_subject(path, &subj) == 1;
		free(path);
	}
	sqlite3_reset(st);
	if (w) {
		if (have_msg)
			jw_int(w, "last_message_rcpts", rcpts);
		else
			jw_null(w, "last_message_rcpts");
		if (have_subj)
			jw_str(w, "last_subject", subj.data ? subj.data : "", subj.len);
		else
			jw_null(w, "last_subject");
	} else {
		if (have_msg)
			table_cellf(t, col0, "%lld", rcpts);
		if (have_subj)
			table_cell(t, col0 + 1, subj.data ? subj.data : "", subj.len);
	}
	buf_free(&subj);
}

int query_creds(struct intel_out *out, const struct query_creds_args *a)
{
	sqlite3 *db = out->db;
	int64_t since_us = a->since_us, window = a->window_us;
	long min_ips = a->min_ips;
	struct users_ctx uc = {.since_us = since_us, .window_us = window, .min_ips = min_ips};
	struct cracked_ctx cc = {.data_dir = a->data_dir, .since_us = since_us};
	if (sqlite3_prepare_v2(db,
			       "SELECT ts_us, dense_rank() OVER (ORDER BY src_ip) FROM auth_attempts"
			       " WHERE username = ?1 AND ts_us >= ?2 ORDER BY ts_us, id",
			       -1, &uc.st, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT spool, n_rcpt FROM messages WHERE auth_user IS NOT NULL"
			       " AND " MSG_ACCOUNT " = ?1 AND ts_us >= ?2"
			       " ORDER BY ts_us DESC, id DESC LIMIT 1",
			       -1, &cc.st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait: %s\n", sqlite3_errmsg(db));
		sqlite3_finalize(uc.st);
		return -1;
	}
	char title[128];
	char wtxt[32];
	int64_t ws = window / 1000000;
	if (ws % 86400 == 0)
		snprintf(wtxt, sizeof(wtxt), "%lldd", (long long)(ws / 86400));
	else if (ws % 3600 == 0)
		snprintf(wtxt, sizeof(wtxt), "%lldh", (long long)(ws / 3600));
	else if (ws % 60 == 0)
		snprintf(wtxt, sizeof(wtxt), "%lldm", (long long)(ws / 60));
	else
		snprintf(wtxt, sizeof(wtxt), "%llds", (long long)ws);
	snprintf(title, sizeof(title),
		 "usernames (PEAK IPS: most distinct IPs within %s; DISTRIBUTED: >= %ld)", wtxt,
		 min_ips);
	const char *user_heads[] = {"PEAK IPS", "FLAG"};
	intel_section(out, title, "usernames", sql_users, cols_users, 8, user_heads, 2, users_row,
		      &uc);
	intel_section(out, "passwords", "passwords", sql_passwords, cols_passwords, 7, NULL, 0,
		      NULL, NULL);
	intel_section(out, "username/password pairs", "pairs", sql_pairs, cols_pairs, 7, NULL, 0,
		      NULL, NULL);
	const char *cracked_heads[] = {"LAST RCPTS", "LAST SUBJECT"};
	intel_section(out, "cracked accounts (and what they sent)", "cracked", sql_cracked,
		      cols_cracked, 8, cracked_heads, 2, cracked_row, &cc);
	intel_section(out, "enumeration: probed addresses (RCPT/VRFY/EXPN before AUTH)",
		      "probed_addresses", sql_probed, cols_probed, 7, NULL, 0, NULL, NULL);
	intel_section(out, "enumeration: probing IPs", "probing_ips", sql_probers, cols_probers,
		      8, NULL, 0, NULL, NULL);
	if (out->json) {
		jw_begin_object(&out->w, "settings");
		jw_int(&out->w, "since_us", since_us);
		jw_time(&out->w, "since", since_us);
		jw_int(&out->w, "window_s", ws);
		jw_int(&out->w, "min_ips", min_ips);
		jw_int(&out->w, "top", out->top);
		jw_end_object(&out->w);
	}
	if (uc.failed) {
		fprintf(stderr, "mxbait: usernames: %s\n", sqlite3_errmsg(db));
		out->failed = 1;
	}
	sqlite3_finalize(uc.st);
	sqlite3_finalize(cc.st);
	free(uc.counts);
	return 0;
}
