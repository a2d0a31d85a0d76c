/*
 * indicator: incremental derivation of indicators from mxbait.db and analysis.db, the
 * confidence rules, and the ordered walk every export uses (see indicator.h).
 *
 * Derivation is set-based SQL over an id range of one source table per batch: group
 * the new rows by value, then one UPSERT adds the counts to the indicator (or creates
 * it), keeps the earliest first-seen and latest last-seen, and merges flags and
 * evidence with mxb_merge() (bounded).  Aggregates (a prefix from its IPs, a recipient
 * domain from its addresses) are recomputed for what the batch touched, then the
 * confidence of every touched row is recomputed from its counts: a pure function of
 * the row, so the result does not depend on how the work was split into batches.
 */
#include "intel/indicator.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "intel/allowlist.h"
#include "store/event.h"
#include "util/buf.h"

#define BATCH_ROWS 100000    /* event-table rows per transaction */
#define BATCH_MESSAGES 2000  /* analysed messages per transaction */
#define EVIDENCE_PER_BATCH 16
#define EVIDENCE_MAX 32

static const char *const kind_names[IND_KIND_COUNT] = {
	"ip", "prefix", "url", "domain", "sender", "sender_domain", "attachment", "recipient",
	"recipient_domain", "campaign",
};

const char *indicator_kind_name(enum ind_kind k)
{
	return k < IND_KIND_COUNT ? kind_names[k] : "?";
}

int indicator_kind_parse(const char *name)
{
	for (int i = 0; i < IND_KIND_COUNT; i++)
		if (!strcmp(kind_names[i], name))
			return i;
	return -1;
}

unsigned indicator_kinds_parse(const char *list, const char **bad_r)
{
	static char bad[64];
	unsigned mask = 0;
	const char *p = list;
	while (*p) {
		while (*p == ',' || *p == ' ')
			p++;
		size_t n = strcspn(p, ", ");
		if (!n)
			break;
		char name[64];
		snprintf(name, sizeof(name), "%.*s", (int)(n < 63 ? n : 63), p);
		int k = indicator_kind_parse(name);
		if (k < 0) {
			snprintf(bad, sizeof(bad), "%s", name);
			if (bad_r)
				*bad_r = bad;
			return 0;
		}
		mask |= IND_BIT(k);
		p += n;
	}
	if (!mask && bad_r)
		*bad_r = list;
	return mask;
}

bool indicator_has_flag(const struct indicator *ind, const char *flag)
{
	size_t fl = strlen(flag);
	for (const char *p = ind->flags ? ind->flags : ""; *p;) {
		size_t n = strcspn(p, " ");
		if (n == fl && !memcmp(p, flag, n))
			return true;
		p += n;
		while (*p == ' ')
			p++;
	}
	return false;
}

/* ---- derivation ---- */

/* Every source produces these columns, in this order. */
#define UPSERT_HEAD                                                                       \
	"INSERT INTO indicators(kind, value, parent, first_seen_us, last_seen_us, guesses," \
	" probes, messages, logins, flags, evidence, note, updated_us)"                     \
	" SELECT kind, value, parent, f, l, gu, pr, ms, lo, fl, ev, note, ?3 FROM ("
#define UPSERT_TAIL                                                                       \
	") WHERE value IS NOT NULL AND value != ''"                                         \
	" ON CONFLICT(kind, value, source) DO UPDATE SET"                                   \
	" parent = coalesce(excluded.parent, parent),"                                      \
	" first_seen_us = min(first_seen_us, excluded.first_seen_us),"                      \
	" last_seen_us = max(last_seen_us, excluded.last_seen_us),"                         \
	" guesses = guesses + excluded.guesses, probes = probes + excluded.probes,"         \
	" messages = messages + excluded.messages, logins = logins + excluded.logins,"      \
	" flags = mxb_merge(flags, excluded.flags, 64),"                                    \
	" evidence = mxb_merge(evidence, excluded.evidence, 32),"                           \
	" note = coalesce(note, excluded.note), updated_us = excluded.updated_us"

/* ev.auth_attempts (?1, ?2]: failed guesses and trap-credential logins per client. */
static const char sql_auth[] = UPSERT_HEAD
	"WITH n AS (SELECT id, ts_us, session, src_ip, success FROM ev.auth_attempts"
	"  WHERE id > ?1 AND id <= ?2 AND src_ip IS NOT NULL),"
	" e AS (SELECT v, group_concat('session:' || s, ' ') AS ev FROM ("
	"  SELECT src_ip AS v, session AS s,"
	"   row_number() OVER (PARTITION BY src_ip ORDER BY min(id)) AS rn"
	"  FROM n WHERE session IS NOT NULL GROUP BY src_ip, session) WHERE rn <= 16 GROUP BY v)"
	" SELECT 'ip' AS kind, n.src_ip AS value, mxb_prefix(n.src_ip) AS parent,"
	"  min(ts_us) AS f, max(ts_us) AS l, sum(success = 0) AS gu, 0 AS pr, 0 AS ms,"
	"  sum(success != 0) AS lo, '' AS fl, coalesce(e.ev, '') AS ev, NULL AS note"
	" FROM n LEFT JOIN e ON e.v = n.src_ip GROUP BY n.src_ip"
	UPSERT_TAIL;

static const char sql_probes[] = UPSERT_HEAD
	"WITH n AS (SELECT id, ts_us, session, src_ip FROM ev.probes"
	"  WHERE id > ?1 AND id <= ?2 AND src_ip IS NOT NULL),"
	" e AS (SELECT v, group_concat('session:' || s, ' ') AS ev FROM ("
	"  SELECT src_ip AS v, session AS s,"
	"   row_number() OVER (PARTITION BY src_ip ORDER BY min(id)) AS rn"
	"  FROM n WHERE session IS NOT NULL GROUP BY src_ip, session) WHERE rn <= 16 GROUP BY v)"
	" SELECT 'ip' AS kind, n.src_ip AS value, mxb_prefix(n.src_ip) AS parent,"
	"  min(ts_us) AS f, max(ts_us) AS l, 0 AS gu, count(*) AS pr, 0 AS ms, 0 AS lo,"
	"  '' AS fl, coalesce(e.ev, '') AS ev, NULL AS note"
	" FROM n LEFT JOIN e ON e.v = n.src_ip GROUP BY n.src_ip"
	UPSERT_TAIL;

/* Captured messages per submitting client (authenticated submission through a cracked
 * account, or mail to a trap address). */
static const char sql_messages[] = UPSERT_HEAD
	"WITH n AS (SELECT id, ts_us, queue_id, src_ip, auth_user FROM ev.messages"
	"  WHERE id > ?1 AND id <= ?2 AND src_ip IS NOT NULL),"
	" e AS (SELECT v, group_concat('msg:' || q, ' ') AS ev FROM ("
	"  SELECT src_ip AS v, queue_id AS q, row_number() OVER (PARTITION BY src_ip ORDER BY id) AS rn"
	"  FROM n) WHERE rn <= 16 GROUP BY v)"
	" SELECT 'ip' AS kind, n.src_ip AS value, mxb_prefix(n.src_ip) AS parent,"
	"  min(ts_us) AS f, max(ts_us) AS l, 0 AS gu, 0 AS pr, count(*) AS ms, 0 AS lo,"
	"  CASE WHEN max(auth_user IS NOT NULL) THEN 'submission' ELSE 'trap-mail' END AS fl,"
	"  coalesce(e.ev, '') AS ev, NULL AS note"
	" FROM n LEFT JOIN e ON e.v = n.src_ip GROUP BY n.src_ip"
	UPSERT_TAIL;

/* analysis.db: one statement per kind over the batch's messages (temp.batch_msg holds
 * id, evidence ref and arrival time of each). */
#define AN_SRC(kind_expr, value_expr, parent_expr, flags_expr, note_expr, from_where)     \
	UPSERT_HEAD                                                                         \
	"WITH r AS (SELECT " value_expr " AS v, " parent_expr " AS p, " flags_expr " AS fl0,"  \
	"  " note_expr " AS nt, b.ref AS ref, b.ts AS ts, b.id AS mid " from_where "),"     \
	" e AS (SELECT v, group_concat(ref, ' ') AS ev FROM (SELECT v, ref,"               \
	"  row_number() OVER (PARTITION BY v ORDER BY min(mid)) AS rn FROM r"               \
	"  GROUP BY v, ref) WHERE rn <= 16 GROUP BY v)"                                      \
	" SELECT " kind_expr " AS kind, r.v AS value, max(r.p) AS parent, min(ts) AS f,"    \
	"  max(ts) AS l, 0 AS gu, 0 AS pr, count(DISTINCT mid) AS ms, 0 AS lo,"               \
	"  coalesce(replace(group_concat(DISTINCT nullif(fl0, '')), ',', ' '), '') AS fl, coalesce(e.ev, '') AS ev,"    \
	"  max(nt) AS note"                                                                  \
	" FROM r LEFT JOIN e ON e.v = r.v GROUP BY r.v"                                      \
	UPSERT_TAIL

static const char *const sql_analysis[] = {
	/* spamvertised URLs (normalised, after unwrapping; wrappers are kept, flagged) */
	AN_SRC("'url'", "l.url", "l.domain",
	       "trim(replace(coalesce(l.flag_names, ''), ',', ' ') ||"
	       " CASE WHEN mxb_platform(l.domain) THEN ' platform' ELSE '' END)",
	       "NULL",
	       "FROM temp.batch_msg b JOIN an.links l ON l.message = b.id"),
	/* their registrable domains (not IP literals) */
	AN_SRC("'domain'", "l.domain", "NULL",
	       "trim(CASE WHEN l.flags & 1024 THEN 'shortener' ELSE '' END ||"
	       " CASE WHEN mxb_platform(l.domain) THEN ' platform' ELSE '' END ||"
	       " CASE WHEN l.flags & 32768 THEN ' mixed_script' ELSE '' END)",
	       "NULL",
	       "FROM temp.batch_msg b JOIN an.links l ON l.message = b.id"
	       " WHERE l.domain IS NOT NULL AND NOT (l.flags & 8)"),
	/* sender addresses: envelope and From (often forged: low confidence) */
	AN_SRC("'sender'", "lower(s.a)", "lower(substr(s.a, instr(s.a, '@') + 1))", "s.w", "NULL",
	       "FROM temp.batch_msg b JOIN (SELECT id, env_from AS a, 'envelope' AS w"
	       " FROM an.messages UNION ALL SELECT id, from_addr, 'from' FROM an.messages) s"
	       " ON s.id = b.id WHERE instr(s.a, '@') > 1"),
	AN_SRC("'sender_domain'", "lower(substr(s.a, instr(s.a, '@') + 1))", "NULL",
	       "CASE WHEN mxb_platform(lower(substr(s.a, instr(s.a, '@') + 1))) THEN 'platform'"
	       " ELSE '' END", "NULL",
	       "FROM temp.batch_msg b JOIN (SELECT id, env_from AS a FROM an.messages"
	       " UNION ALL SELECT id, from_addr FROM an.messages) s ON s.id = b.id"
	       " WHERE instr(s.a, '@') > 1"),
	/* attachments by SHA-256 (empty files say nothing) */
	AN_SRC("'attachment'", "a.sha256", "NULL", "''", "a.filename",
	       "FROM temp.batch_msg b JOIN an.attachments a ON a.message = b.id"
	       " WHERE a.size > 0 AND a.sha256 IS NOT NULL"),
	/* leaked recipient addresses (victims), grouped by domain below */
	AN_SRC("'recipient'", "r0.addr", "r0.domain", "''", "NULL",
	       "FROM temp.batch_msg b JOIN an.recipients r0 ON r0.message = b.id"),
	/* campaigns */
	AN_SRC("'campaign'", "c.key", "NULL", "''", "c.subject",
	       "FROM temp.batch_msg b JOIN an.messages m ON m.id = b.id"
	       " JOIN an.campaigns c ON c.id = m.campaign_id"),
};

/* Aggregates recomputed for what a batch touched: a prefix from its IPs, a recipient
 * domain from its addresses.  Values replace (not add to) the aggregate's. */
static const char sql_prefixes[] =
	"INSERT INTO indicators(kind, value, first_seen_us, last_seen_us, guesses, probes,"
	" messages, logins, members, flags, evidence, updated_us)"
	" SELECT 'prefix', parent, min(first_seen_us), max(last_seen_us), sum(guesses),"
	"  sum(probes), sum(messages), sum(logins), count(*), '',"
	"  (SELECT group_concat('ip:' || value, ' ') FROM (SELECT value FROM indicators i2"
	"   WHERE i2.kind = 'ip' AND i2.source = 'local' AND i2.parent = i.parent"
	"   ORDER BY last_seen_us DESC LIMIT 32)), ?1"
	" FROM indicators i WHERE kind = 'ip' AND source = 'local' AND parent IN ("
	"  SELECT parent FROM indicators WHERE kind = 'ip' AND updated_us = ?1)"
	" GROUP BY parent"
	" ON CONFLICT(kind, value, source) DO UPDATE SET first_seen_us = excluded.first_seen_us,"
	" last_seen_us = excluded.last_seen_us, guesses = excluded.guesses,"
	" probes = excluded.probes, messages = excluded.messages, logins = excluded.logins,"
	" members = excluded.members, evidence = excluded.evidence, updated_us = ?1";

static const char sql_recipient_domains[] =
	"INSERT INTO indicators(kind, value, first_seen_us, last_seen_us, messages, members,"
	" flags, evidence, updated_us)"
	" SELECT 'recipient_domain', parent, min(first_seen_us), max(last_seen_us),"
	"  sum(messages), count(*), '', '', ?1"
	" FROM indicators i WHERE kind = 'recipient' AND source = 'local' AND parent IN ("
	"  SELECT parent FROM indicators WHERE kind = 'recipient' AND updated_us = ?1)"
	" GROUP BY parent"
	" ON CONFLICT(kind, value, source) DO UPDATE SET first_seen_us = excluded.first_seen_us,"
	" last_seen_us = excluded.last_seen_us, messages = excluded.messages,"
	" members = excluded.members, updated_us = ?1";

/* The confidence rules (documented in docs/reporting.md, "Indicators"), and the
 * activity flags of client addresses.  A pure function of the row's counts. */
static const char sql_confidence[] =
	"UPDATE indicators SET"
	" flags = mxb_merge(flags, trim("
	"  CASE WHEN kind IN ('ip', 'prefix') AND guesses > 0 THEN 'guessing ' ELSE '' END ||"
	"  CASE WHEN kind IN ('ip', 'prefix') AND probes > 0 THEN 'enumeration ' ELSE '' END ||"
	"  CASE WHEN kind IN ('ip', 'prefix') AND messages > 0 THEN 'spam ' ELSE '' END ||"
	"  CASE WHEN kind IN ('ip', 'prefix') AND logins > 0 THEN 'trap-credential' ELSE '' END),"
	"  64),"
	" confidence = CASE kind"
	"  WHEN 'ip' THEN max("
	"   CASE WHEN messages > 0 THEN 95 ELSE 0 END,"
	"   CASE WHEN logins > 0 THEN 90 ELSE 0 END,"
	"   CASE WHEN guesses >= 100 THEN 75 WHEN guesses >= 10 THEN 60"
	"        WHEN guesses >= 1 THEN 40 ELSE 0 END,"
	"   CASE WHEN probes >= 100 THEN 65 WHEN probes >= 10 THEN 50"
	"        WHEN probes >= 1 THEN 30 ELSE 0 END)"
	"  WHEN 'prefix' THEN CASE WHEN members >= 5 THEN 80 WHEN members >= 3 THEN 65"
	"   WHEN members = 2 THEN 50 ELSE 35 END"
	"  WHEN 'url' THEN CASE"
	"   WHEN ' ' || flags || ' ' LIKE '% platform %' OR ' ' || flags || ' ' LIKE '% redirector %'"
	"    THEN 10"
	"   WHEN ' ' || flags || ' ' LIKE '% shortener %' THEN 30 ELSE 80 END"
	"  WHEN 'domain' THEN CASE"
	"   WHEN ' ' || flags || ' ' LIKE '% platform %' THEN 10"
	"   WHEN ' ' || flags || ' ' LIKE '% shortener %' THEN 30"
	"   WHEN messages >= 2 THEN 80 ELSE 70 END"
	"  WHEN 'sender' THEN CASE WHEN messages >= 3 THEN 55 ELSE 40 END"
	"  WHEN 'sender_domain' THEN CASE"
	"   WHEN ' ' || flags || ' ' LIKE '% platform %' THEN 10"
	"   WHEN messages >= 3 THEN 55 ELSE 40 END"
	"  WHEN 'attachment' THEN 85"
	"  WHEN 'recipient' THEN 100"
	"  WHEN 'recipient_domain' THEN 100"
	"  WHEN 'campaign' THEN 80"
	"  ELSE confidence END"
	" WHERE updated_us = ?1";

static void set_err(char **err_r, sqlite3 *db, const char *what)
{
	if (err_r && asprintf(err_r, "%s: %s", what, sqlite3_errmsg(db)) < 0)
		*err_r = NULL;
}

static int exec1(sqlite3 *db, const char *sql, int64_t a, int64_t b, int64_t c, long *changes)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -1;
	int n = sqlite3_bind_parameter_count(st);
	if (n >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (n >= 2)
		sqlite3_bind_int64(st, 2, b);
	if (n >= 3)
		sqlite3_bind_int64(st, 3, c);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (changes && rc == SQLITE_DONE)
		*changes += sqlite3_changes(db);
	return rc == SQLITE_DONE ? 0 : -1;
}

static int64_t query_int(sqlite3 *db, const char *sql, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	int64_t v = dflt;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int64_t intel_cursor_get(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT value FROM cursors WHERE name = ?1", -1, &st, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}

int intel_cursor_set(sqlite3 *db, const char *name, int64_t v)
{
	sqlite3_stmt *st = NULL;
	int rc = -1;
	if (sqlite3_prepare_v2(db, "INSERT INTO cursors(name, value) VALUES(?1, ?2)"
				   " ON CONFLICT(name) DO UPDATE SET value = excluded.value",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, v);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	return rc;
}

/* A stamp no earlier batch used: the touched rows of this batch are exactly those
 * with updated_us == stamp. */
static int64_t batch_stamp(sqlite3 *db)
{
	int64_t now = mxb_now_us();
	int64_t last = query_int(db, "SELECT max(updated_us) FROM indicators", 0);
	return now > last ? now : last + 1;
}

static int finish_batch(sqlite3 *db, int64_t stamp, long *touched)
{
	if (exec1(db, sql_prefixes, stamp, 0, 0, NULL) < 0 ||
	    exec1(db, sql_recipient_domains, stamp, 0, 0, NULL) < 0 ||
	    exec1(db, sql_confidence, stamp, 0, 0, touched) < 0)
		return -1;
	return 0;
}

/* One batch of one event table; returns rows consumed (0: caught up), -1 on error. */
static long event_batch(sqlite3 *db, const char *cursor, const char *table, const char *sql,
			long *touched, char **err_r)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err_r, db, "intel.db");
		return -1;
	}
	int64_t lo = intel_cursor_get(db, cursor);
	char q[128];
	snprintf(q, sizeof(q), "SELECT max(id) FROM ev.%s", table);
	int64_t max = query_int(db, q, 0);
	if (max <= lo) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		return 0;
	}
	int64_t hi = max - lo > BATCH_ROWS ? lo + BATCH_ROWS : max;
	int64_t stamp = batch_stamp(db);
	if (exec1(db, sql, lo, hi, stamp, NULL) < 0 || finish_batch(db, stamp, touched) < 0 ||
	    intel_cursor_set(db, cursor, hi) < 0) {
		set_err(err_r, db, table);
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err_r, db, "commit");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return (long)(hi - lo);
}

static long analysis_batch(sqlite3 *db, bool have_events, long *touched, char **err_r)
{
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err_r, db, "intel.db");
		return -1;
	}
	int64_t lo = intel_cursor_get(db, "an_messages");
	int64_t max = query_int(db, "SELECT max(id) FROM an.messages", 0);
	if (max <= lo) {
		sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
		return 0;
	}
	/* At most BATCH_MESSAGES messages: the id of the last one in range. */
	char q[256];
	snprintf(q, sizeof(q), "SELECT max(id) FROM (SELECT id FROM an.messages WHERE id > %lld"
		 " ORDER BY id LIMIT %d)", (long long)lo, BATCH_MESSAGES);
	int64_t hi = query_int(db, q, max);
	int64_t stamp = batch_stamp(db);
	/* The batch: analysis id, evidence ref (the queue id when the daemon recorded the
	 * message, else its SHA-256) and arrival time (else analysis time). */
	const char *fill_ev =
		"INSERT INTO temp.batch_msg(id, ref, ts)"
		" SELECT m.id, coalesce('msg:' || q.queue_id, 'sha256:' || m.sha256),"
		"  coalesce(q.ts_us, m.analyzed_at * 1000000)"
		" FROM an.messages m LEFT JOIN (SELECT sha256, min(queue_id) AS queue_id,"
		"  min(ts_us) AS ts_us FROM ev.messages WHERE sha256 IN ("
		"   SELECT sha256 FROM an.messages WHERE id > ?1 AND id <= ?2) GROUP BY sha256) q"
		"  ON q.sha256 = m.sha256"
		" WHERE m.id > ?1 AND m.id <= ?2";
	const char *fill_an =
		"INSERT INTO temp.batch_msg(id, ref, ts)"
		" SELECT id, 'sha256:' || sha256, analyzed_at * 1000000 FROM an.messages"
		" WHERE id > ?1 AND id <= ?2";
	int rc = sqlite3_exec(db, "CREATE TEMP TABLE IF NOT EXISTS batch_msg(id INTEGER PRIMARY KEY,"
				  " ref TEXT, ts INTEGER); DELETE FROM temp.batch_msg;",
			      NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
	if (rc == 0)
		rc = exec1(db, have_events ? fill_ev : fill_an, lo, hi, 0, NULL);
	for (size_t i = 0; rc == 0 && i < sizeof(sql_analysis) / sizeof(sql_analysis[0]); i++)
		rc = exec1(db, sql_analysis[i], lo, hi, stamp, NULL);
	if (rc == 0)
		rc = finish_batch(db, stamp, touched);
	if (rc == 0)
		rc = intel_cursor_set(db, "an_messages", hi);
	if (rc < 0) {
		set_err(err_r, db, "analysis.db");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		set_err(err_r, db, "commit");
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return (long)query_int(db, "SELECT count(*) FROM temp.batch_msg", 0);
}

int indicators_refresh(sqlite3 *db, int sources, struct intel_refresh_stats *st, char **err_r)
{
	struct intel_refresh_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (err_r)
		*err_r = NULL;
	if (allowlist_register_sql(db) < 0) {
		set_err(err_r, db, "intel.db");
		return -1;
	}
	if (sources & 1) {
		const struct {
			const char *cursor, *table, *sql;
			long *count;
		} ev[] = {
			{"ev_auth", "auth_attempts", sql_auth, &st->auth_rows},
			{"ev_probes", "probes", sql_probes, &st->probe_rows},
			{"ev_messages", "messages", sql_messages, &st->message_rows},
		};
		for (size_t i = 0; i < sizeof(ev) / sizeof(ev[0]); i++) {
			long n;
			while ((n = event_batch(db, ev[i].cursor, ev[i].table, ev[i].sql, &st->touched,
						err_r)) > 0)
				*ev[i].count += n;
			if (n < 0)
				return -1;
		}
	}
	if (sources & 2) {
		long n;
		while ((n = analysis_batch(db, sources & 1, &st->touched, err_r)) > 0)
			st->analysis_messages += n;
		if (n < 0)
			return -1;
	}
	return 0;
}

/* ---- reading ---- */

int indicators_each(sqlite3 *db, const struct indicator_filter *f, indicator_fn fn, void *ctx)
{
	/* One query per kind, in the model's order, each walking the UNIQUE(kind, value,
	 * source) index: the stable order comes without a sort of the whole table.  The
	 * unary + keeps the planner off indicators_kind_conf (kind, confidence), which it
	 * would otherwise pick and then sort every row of the kind in a temporary B-tree
	 * (spilled to disk: 1 M rows cost more than the export itself). */
	struct buf q;
	buf_init(&q, 0);
	buf_puts(&q, "SELECT id, kind, value, source, parent, flags, evidence, note, first_seen_us,"
		     " last_seen_us, guesses, probes, messages, logins, members, confidence,"
		     " updated_us FROM indicators WHERE kind = ?4 AND +confidence >= ?1"
		     " AND +last_seen_us >= ?2 AND +updated_us > ?5");
	if (!f->include_peer || f->purpose != IND_SELF)
		buf_puts(&q, " AND source = 'local'");
	buf_puts(&q, " ORDER BY kind, value, source LIMIT ?3");
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, q.data, -1, &st, NULL);
	buf_free(&q);
	if (rc != SQLITE_OK)
		return -1;
	int ret = 0;
	long left = f->limit > 0 ? f->limit : -1;
	for (int k = 0; k < IND_KIND_COUNT && ret == 0 && left != 0; k++) {
		if (f->kinds && !(f->kinds & IND_BIT(k)))
			continue;
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, f->min_confidence);
		sqlite3_bind_int64(st, 2, f->since_us);
		sqlite3_bind_int64(st, 3, left);
		sqlite3_bind_text(st, 4, kind_names[k], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 5, f->updated_after_us > 0 ? f->updated_after_us : -1);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			struct indicator ind = {
				.id = sqlite3_column_int64(st, 0),
				.kind = (enum ind_kind)k,
				.value = (const char *)sqlite3_column_text(st, 2),
				.source = (const char *)sqlite3_column_text(st, 3),
				.parent = (const char *)sqlite3_column_text(st, 4),
				.flags = (const char *)sqlite3_column_text(st, 5),
				.evidence = (const char *)sqlite3_column_text(st, 6),
				.note = (const char *)sqlite3_column_text(st, 7),
				.first_seen_us = sqlite3_column_int64(st, 8),
				.last_seen_us = sqlite3_column_int64(st, 9),
				.guesses = sqlite3_column_int64(st, 10),
				.probes = sqlite3_column_int64(st, 11),
				.messages = sqlite3_column_int64(st, 12),
				.logins = sqlite3_column_int64(st, 13),
				.members = sqlite3_column_int64(st, 14),
				.confidence = sqlite3_column_int(st, 15),
				.updated_us = sqlite3_column_int64(st, 16),
			};
			if (!ind.value)
				continue;
			if (!ind.flags)
				ind.flags = "";
			if (!ind.evidence)
				ind.evidence = "";
			if (left > 0)
				left--;
			if ((ret = fn(ctx, &ind)) != 0)
				break;
		}
		if (ret == 0 && rc != SQLITE_DONE)
			ret = -1;
	}
	sqlite3_finalize(st);
	return ret;
}
