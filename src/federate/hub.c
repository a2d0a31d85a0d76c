/*
 * hub: schema migrations and the sensor's pusher (see hub.h and docs/scaling.md).
 */
#include "federate/hub.h"

#include <errno.h>
#include <libpq-fe.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "store/db.h"
#include "store/event.h"
#include "util/buf.h"
#include "util/netaddr.h"

#define MIGRATION_LOCK 7306241409563L   /* pg_advisory_xact_lock key of migrations */
#define PARTITION_LOCK 7306241409564L   /* ... of partition creation */
#define CAMPAIGN_REFRESH_US (60 * 1000000LL)

static void set_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err_r, const char *fmt, ...)
{
	if (!err_r)
		return;
	free(*err_r);
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err_r, fmt, ap) < 0)
		*err_r = NULL;
	va_end(ap);
}

/* ---- schema ---- */

/* Step i takes the hub from version i to i+1.  Append only. */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE mxb_meta (key text PRIMARY KEY, value text NOT NULL);"
	"CREATE TABLE sensors ("
	" id text PRIMARY KEY,"
	" first_seen timestamptz NOT NULL DEFAULT now(),"
	" last_seen timestamptz NOT NULL DEFAULT now(),"
	" event_seq bigint NOT NULL DEFAULT 0,"    /* last mxbait.db events.id accepted */
	" events bigint NOT NULL DEFAULT 0,"
	" ind_cursor bigint NOT NULL DEFAULT 0,"   /* intel.db indicators.updated_us pushed */
	" camp_cursor bigint NOT NULL DEFAULT 0);" /* analysis.db campaigns.id pushed */
	"CREATE TABLE events ("
	" sensor text NOT NULL,"
	" seq bigint NOT NULL,"                    /* the event's id in the sensor's mxbait.db */
	" ts timestamptz NOT NULL,"
	" event text NOT NULL,"
	" session text,"
	" src_ip inet,"
	" src_port integer,"
	" proto text,"
	" username text,"                          /* auth events */
	" password text,"                          /* only with hub_share_passwords */
	" pw_hash text,"                           /* HMAC-SHA256 under mxb_meta.pw_key */
	" success boolean,"
	" PRIMARY KEY (sensor, seq, ts)"
	") PARTITION BY RANGE (ts);"
	"CREATE TABLE events_default PARTITION OF events DEFAULT;"
	"CREATE INDEX events_ts ON events USING brin (ts);"
	"CREATE TABLE indicators ("
	" sensor text NOT NULL, kind text NOT NULL, value text NOT NULL,"
	" confidence integer NOT NULL, guesses bigint NOT NULL, probes bigint NOT NULL,"
	" messages bigint NOT NULL, logins bigint NOT NULL, members bigint NOT NULL,"
	" flags text NOT NULL, first_seen timestamptz, last_seen timestamptz,"
	" PRIMARY KEY (sensor, kind, value));"
	"CREATE INDEX indicators_kind_value ON indicators (kind, value);"
	"CREATE TABLE campaigns ("
	" sensor text NOT NULL, key text NOT NULL, messages bigint NOT NULL DEFAULT 0,"
	" first_seen timestamptz, minhash bytea,"
	" PRIMARY KEY (sensor, key));",
};
#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int hub_schema_version(void)
{
	return N_MIGRATIONS;
}

static bool ok_cmd(PGresult *r)
{
	ExecStatusType s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

static int exec_ok(PGconn *c, const char *sql, char **err_r)
{
	PGresult *r = PQexec(c, sql);
	bool ok = ok_cmd(r);
	if (!ok)
		set_err(err_r, "%s", PQerrorMessage(c));
	PQclear(r);
	return ok ? 0 : -1;
}

int hub_migrate(PGconn *c, char **err_r)
{
	char sql[160];
	if (exec_ok(c, "BEGIN", err_r))
		return -1;
	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%ld)", MIGRATION_LOCK);
	if (exec_ok(c, sql, err_r) ||
	    exec_ok(c, "CREATE TABLE IF NOT EXISTS mxb_schema (version integer NOT NULL)", err_r))
		goto fail;
	PGresult *r = PQexec(c, "SELECT coalesce(max(version), 0) FROM mxb_schema");
	int v = ok_cmd(r) && PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : -1;
	PQclear(r);
	if (v < 0 || v > N_MIGRATIONS) {
		set_err(err_r, v < 0 ? "cannot read the hub's schema version"
				     : "the hub's schema is newer than this mxbait");
		goto fail;
	}
	for (; v < N_MIGRATIONS; v++) {
		snprintf(sql, sizeof(sql), "DELETE FROM mxb_schema; INSERT INTO mxb_schema VALUES (%d)",
			 v + 1);
		if (exec_ok(c, migrations[v], err_r) || exec_ok(c, sql, err_r))
			goto fail;
	}
	/* the key of password hashes: made once, by the first sensor */
	unsigned char key[32];
	char hex[65];
	RAND_bytes(key, sizeof(key));
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", key[i]);
	const char *pv[1] = {hex};
	r = PQexecParams(c, "INSERT INTO mxb_meta VALUES ('pw_key', $1) ON CONFLICT DO NOTHING", 1,
			 NULL, pv, NULL, NULL, 0);
	bool ok = ok_cmd(r);
	PQclear(r);
	if (!ok) {
		set_err(err_r, "%s", PQerrorMessage(c));
		goto fail;
	}
	return exec_ok(c, "COMMIT", err_r);
fail:
	PQclear(PQexec(c, "ROLLBACK"));
	return -1;
}

PGconn *hub_connect(const char *conninfo, bool migrate, char **err_r)
{
	if (!conninfo || !*conninfo) {
		set_err(err_r, "no hub_url configured");
		return NULL;
	}
	PGconn *c = PQconnectdb(conninfo);
	if (!c || PQstatus(c) != CONNECTION_OK) {
		set_err(err_r, "cannot connect to the hub: %s",
			c ? PQerrorMessage(c) : "out of memory");
		PQfinish(c);
		return NULL;
	}
	/* "already exists, skipping" notices of partition creation are not news */
	PQclear(PQexec(c, "SET application_name = 'mxbait'; SET client_min_messages = warning"));
	if (migrate && hub_migrate(c, err_r) != 0) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

const char *hub_sensor_name(const struct mxb_config *cfg)
{
	return cfg->hub_sensor && *cfg->hub_sensor ? cfg->hub_sensor : cfg->hostname;
}

/* ---- partitions ---- */

static int64_t day_of(int64_t ts_us)
{
	int64_t s = ts_us / 1000000;
	return (s >= 0 ? s : s - 86399) / 86400;
}

static void day_name(int64_t day, char *out, size_t outlen, char *date, size_t datelen)
{
	time_t t = (time_t)(day * 86400);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, outlen, "events_%Y%m%d", &tm);
	strftime(date, datelen, "%Y-%m-%d", &tm);
}

struct pusher {
	PGconn *c;
	const struct mxb_config *cfg;
	const char *sensor;
	char pw_key[65];
	int64_t days[64];          /* partitions known to exist (a small ring) */
	size_t n_days;
	int64_t camp_refresh_us;
};

static bool day_known(struct pusher *p, int64_t day)
{
	for (size_t i = 0; i < p->n_days && i < 64; i++)
		if (p->days[i] == day)
			return true;
	return false;
}

/* The day's partition, in a transaction of its own before the batch's, so the lock
 * it takes on the parent is never held while rows wait. */
static int ensure_day(struct pusher *p, int64_t day, char **err_r)
{
	if (day_known(p, day))
		return 0;
	/* a plausible range only: far past or future rows go to the default partition */
	int64_t today = day_of(mxb_now_us());
	if (day < today - 3650 || day > today + 2)
		return 0;
	char name[40], from[16], to[16], name2[40];
	day_name(day, name, sizeof(name), from, sizeof(from));
	day_name(day + 1, name2, sizeof(name2), to, sizeof(to));
	char sql[400];
	snprintf(sql, sizeof(sql),
		 "BEGIN; SELECT pg_advisory_xact_lock(%ld);"
		 " CREATE TABLE IF NOT EXISTS %s PARTITION OF events FOR VALUES FROM ('%s') TO ('%s');"
		 " COMMIT", PARTITION_LOCK, name, from, to);
	if (exec_ok(p->c, sql, err_r) != 0) {
		PQclear(PQexec(p->c, "ROLLBACK"));
		return -1;
	}
	p->days[p->n_days++ % 64] = day;
	return 0;
}

/* ---- text PostgreSQL accepts ---- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || s[0] > 0xf4)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
	    (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
		return 0; /* overlong, surrogates, above U+10FFFF */
	return n;
}

/* s as valid UTF-8 text: a byte that is not part of a valid sequence becomes the four
 * characters \xNN.  Attacker text (usernames, senders) may be any bytes; one bad byte
 * must never stop a sensor's stream (the hub's database is UTF8 and refuses it). */
static void pg_text(struct buf *b, const char *s, bool copy_escapes)
{
	for (const unsigned char *q = (const unsigned char *)s; *q;) {
		size_t n = utf8_len(q);
		if (n == 0) {
			if (copy_escapes)
				buf_printf(b, "\\\\x%02x", *q); /* COPY: a literal backslash */
			else
				buf_printf(b, "\\x%02x", *q);
			q++;
			continue;
		}
		if (copy_escapes && n == 1) {
			switch (*q) {
			case '\\': buf_puts(b, "\\\\"); break;
			case '\t': buf_puts(b, "\\t"); break;
			case '\n': buf_puts(b, "\\n"); break;
			case '\r': buf_puts(b, "\\r"); break;
			default:
				if (*q < 0x20 || *q == 0x7f)
					buf_printf(b, "\\%03o", *q);
				else
					buf_putc(b, (char)*q);
			}
		} else {
			buf_append(b, q, n);
		}
		q += n;
	}
}

/* ---- COPY text format ---- */

static void copy_field(struct buf *b, const char *s, bool last)
{
	if (!s)
		buf_puts(b, "\\N");
	else
		pg_text(b, s, true);
	buf_putc(b, last ? '\n' : '\t');
}

/* A malloc'd valid-UTF-8 copy of s (for query parameters). */
static char *pg_param(const char *s)
{
	struct buf b;
	buf_init(&b, 0);
	pg_text(&b, s ? s : "", false);
	return buf_steal(&b, NULL);
}

static void pw_hash(const char *key, const char *pw, char out[65])
{
	unsigned char mac[32];
	unsigned int ml = 0;
	HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)pw, strlen(pw), mac, &ml);
	for (int i = 0; i < 16; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

static void ts_text(int64_t us, char *out, size_t outlen)
{
	time_t s = (time_t)(us / 1000000);
	struct tm tm;
	gmtime_r(&s, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%06d+00", base, (int)(((us % 1000000) + 1000000) % 1000000));
}

static int64_t hub_seq(struct pusher *p, const char *col, bool lock, char **err_r)
{
	char sql[200];
	snprintf(sql, sizeof(sql), "SELECT %s FROM sensors WHERE id = $1%s", col,
		 lock ? " FOR UPDATE" : "");
	const char *pv[1] = {p->sensor};
	PGresult *r = PQexecParams(p->c, sql, 1, NULL, pv, NULL, NULL, 0);
	int64_t v = -1;
	if (ok_cmd(r) && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		set_err(err_r, "%s", PQerrorMessage(p->c));
	PQclear(r);
	return v;
}

/* One batch of events: 1 rows sent, 0 nothing new, -1 error. */
static int push_events(struct pusher *p, sqlite3 *db, struct hub_push_stats *st, char **err_r)
{
	/* the position at the hub, read without a lock first to prepare partitions */
	int64_t seq = hub_seq(p, "event_seq", false, err_r);
	if (seq < 0)
		return -1;
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT id, ts_us, event, session, src_ip, src_port, proto,"
			       " CASE WHEN event = 'auth' THEN json_extract(json, '$.username') END,"
			       " CASE WHEN event = 'auth' THEN json_extract(json, '$.password') END,"
			       " CASE WHEN event = 'auth' THEN json_extract(json, '$.success') END"
			       " FROM events WHERE id > ?1 ORDER BY id LIMIT ?2", -1, &q, NULL) !=
	    SQLITE_OK) {
		set_err(err_r, "mxbait.db: %s", sqlite3_errmsg(db));
		return -1;
	}
	sqlite3_bind_int64(q, 1, seq);
	sqlite3_bind_int64(q, 2, p->cfg->hub_batch);
	struct buf b;
	buf_init(&b, 0);
	long n = 0;
	int64_t last = seq, min_day = INT64_MAX, max_day = INT64_MIN, missing = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(q, 0), ts = sqlite3_column_int64(q, 1);
		/* ids are dense: a hole means rows the sensor pruned (retention,
		 * database_budget) before they reached the hub; they are gone for good */
		if (id > last + 1)
			missing += id - last - 1;
		char num[32], tss[48], port[16], hash[65];
		snprintf(num, sizeof(num), "%lld", (long long)id);
		ts_text(ts, tss, sizeof(tss));
		int64_t d = day_of(ts);
		min_day = d < min_day ? d : min_day;
		max_day = d > max_day ? d : max_day;
		copy_field(&b, p->sensor, false);
		copy_field(&b, num, false);
		copy_field(&b, tss, false);
		copy_field(&b, (const char *)sqlite3_column_text(q, 2), false);
		copy_field(&b, (const char *)sqlite3_column_text(q, 3), false);
		/* an address PostgreSQL's inet accepts, or nothing */
		const char *ip = (const char *)sqlite3_column_text(q, 4);
		struct netaddr na;
		copy_field(&b, ip && netaddr_parse(ip, &na) == 0 ? ip : NULL, false);
		snprintf(port, sizeof(port), "%d", sqlite3_column_int(q, 5));
		copy_field(&b, sqlite3_column_type(q, 5) == SQLITE_NULL ? NULL : port, false);
		copy_field(&b, (const char *)sqlite3_column_text(q, 6), false);
		copy_field(&b, (const char *)sqlite3_column_text(q, 7), false);
		const char *pw = (const char *)sqlite3_column_text(q, 8);
		copy_field(&b, pw && p->cfg->hub_share_passwords ? pw : NULL, false);
		if (pw)
			pw_hash(p->pw_key, pw, hash);
		copy_field(&b, pw ? hash : NULL, false);
		copy_field(&b, sqlite3_column_type(q, 9) == SQLITE_NULL ? NULL
			       : sqlite3_column_int(q, 9) ? "t" : "f", true);
		last = id;
		n++;
	}
	sqlite3_finalize(q);
	if (n == 0) {
		buf_free(&b);
		return 0;
	}
	for (int64_t d = min_day; d <= max_day && d - min_day < 64; d++)
		if (ensure_day(p, d, err_r) != 0) {
			buf_free(&b);
			return -1;
		}
	ensure_day(p, day_of(mxb_now_us()) + 1, err_r); /* tomorrow, ahead of time */
	/* the batch: position re-read under its row lock, rows, position, one commit */
	if (exec_ok(p->c, "BEGIN", err_r) != 0) {
		buf_free(&b);
		return -1;
	}
	int64_t locked = hub_seq(p, "event_seq", true, err_r);
	if (locked != seq) {
		/* another pusher of this sensor moved it: start again from there */
		PQclear(PQexec(p->c, "ROLLBACK"));
		buf_free(&b);
		if (locked < 0)
			return -1;
		set_err(err_r, "sensor %s: position moved (%lld -> %lld): another pusher?", p->sensor,
			(long long)seq, (long long)locked);
		return -1;
	}
	PGresult *r = PQexec(p->c, "COPY events (sensor, seq, ts, event, session, src_ip, src_port,"
				   " proto, username, password, pw_hash, success) FROM STDIN");
	bool ok = PQresultStatus(r) == PGRES_COPY_IN;
	PQclear(r);
	for (size_t off = 0; ok && off < b.len;) {
		size_t chunk = b.len - off > 65536 ? 65536 : b.len - off;
		ok = PQputCopyData(p->c, b.data + off, (int)chunk) == 1;
		off += chunk;
	}
	if (PQputCopyEnd(p->c, ok ? NULL : "aborted") != 1)
		ok = false;
	while ((r = PQgetResult(p->c))) {
		if (PQresultStatus(r) != PGRES_COMMAND_OK)
			ok = false;
		PQclear(r);
	}
	buf_free(&b);
	if (ok) {
		char lastv[32], nv[32];
		snprintf(lastv, sizeof(lastv), "%lld", (long long)last);
		snprintf(nv, sizeof(nv), "%ld", n);
		const char *pv[3] = {p->sensor, lastv, nv};
		r = PQexecParams(p->c, "UPDATE sensors SET event_seq = $2, events = events + $3,"
				       " last_seen = now() WHERE id = $1", 3, NULL, pv, NULL, NULL, 0);
		ok = ok_cmd(r);
		PQclear(r);
	}
	if (!ok || exec_ok(p->c, "COMMIT", err_r) != 0) {
		if (!ok)
			set_err(err_r, "%s", PQerrorMessage(p->c));
		PQclear(PQexec(p->c, "ROLLBACK"));
		return -1;
	}
	st->events += n;
	st->batches++;
	if (missing) {
		st->missing += missing;
		fprintf(stderr, "mxbait hub: sensor %s: %lld events were pruned from mxbait.db "
			"(retention, database_budget) before they reached the hub\n", p->sensor,
			(long long)missing);
	}
	return 1;
}

/* Local indicators changed since the hub's cursor (intel.db, when the reporter runs). */
static int push_indicators(struct pusher *p, const char *data_dir, struct hub_push_stats *st,
			   char **err_r)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/intel.db", data_dir);
	struct stat sb;
	if (stat(path, &sb) != 0)
		return 0;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return 0;
	}
	sqlite3_busy_timeout(db, 5000);
	int64_t cur = hub_seq(p, "ind_cursor", false, err_r);
	int rc = cur < 0 ? -1 : 0;
	sqlite3_stmt *q = NULL;
	if (rc == 0 &&
	    sqlite3_prepare_v2(db, "SELECT kind, value, confidence, guesses, probes, messages, logins,"
				   " members, flags, first_seen_us, last_seen_us, updated_us"
				   " FROM indicators WHERE source = 'local' AND updated_us > ?1"
				   " AND (?2 OR kind NOT IN ('recipient', 'recipient_domain'))"
				   " ORDER BY updated_us LIMIT 5000", -1, &q, NULL) != SQLITE_OK)
		rc = 0; /* an intel.db without the table yet */
	while (rc == 0 && q) {
		sqlite3_reset(q);
		sqlite3_bind_int64(q, 1, cur);
		sqlite3_bind_int(q, 2, p->cfg->feed_share_victims);
		struct buf sql;
		buf_init(&sql, 0);
		buf_puts(&sql, "INSERT INTO indicators (sensor, kind, value, confidence, guesses,"
			       " probes, messages, logins, members, flags, first_seen, last_seen)"
			       " VALUES ");
		const char **vals = NULL;
		size_t nv = 0, rows = 0;
		int64_t maxu = cur;
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char **nvv = realloc(vals, (nv + 12) * sizeof(*vals));
			if (!nvv)
				break;
			vals = nvv;
			buf_printf(&sql, "%s($%zu", rows ? "," : "", nv + 1);
			for (int k = 2; k <= 12; k++)
				buf_printf(&sql, ",$%zu%s", nv + (size_t)k,
					   k == 11 || k == 12 ? "::timestamptz" : "");
			buf_putc(&sql, ')');
			vals[nv++] = p->sensor;
			for (int k = 0; k < 9; k++)
				vals[nv++] = pg_param((const char *)sqlite3_column_text(q, k));
			char t1[48], t2[48];
			ts_text(sqlite3_column_int64(q, 9), t1, sizeof(t1));
			ts_text(sqlite3_column_int64(q, 10), t2, sizeof(t2));
			vals[nv++] = strdup(t1);
			vals[nv++] = strdup(t2);
			int64_t u = sqlite3_column_int64(q, 11);
			maxu = u > maxu ? u : maxu;
			rows++;
		}
		if (rows) {
			buf_puts(&sql, " ON CONFLICT (sensor, kind, value) DO UPDATE SET"
				       " confidence = excluded.confidence, guesses = excluded.guesses,"
				       " probes = excluded.probes, messages = excluded.messages,"
				       " logins = excluded.logins, members = excluded.members,"
				       " flags = excluded.flags, first_seen = excluded.first_seen,"
				       " last_seen = excluded.last_seen");
			char cv[32];
			snprintf(cv, sizeof(cv), "%lld", (long long)maxu);
			const char *pv[2] = {p->sensor, cv};
			rc = exec_ok(p->c, "BEGIN", err_r);
			PGresult *r = rc ? NULL : PQexecParams(p->c, sql.data, (int)nv, NULL, vals, NULL,
								NULL, 0);
			if (r && !ok_cmd(r)) {
				set_err(err_r, "%s", PQerrorMessage(p->c));
				rc = -1;
			}
			PQclear(r);
			if (rc == 0) {
				r = PQexecParams(p->c, "UPDATE sensors SET ind_cursor = $2 WHERE id = $1",
						 2, NULL, pv, NULL, NULL, 0);
				rc = ok_cmd(r) ? 0 : -1;
				PQclear(r);
			}
			rc = rc == 0 ? exec_ok(p->c, "COMMIT", err_r) : -1;
			if (rc)
				PQclear(PQexec(p->c, "ROLLBACK"));
			else
				st->indicators += (long)rows;
			cur = maxu;
		}
		for (size_t i = 0; i < nv; i++)
			if (i % 12)
				free((char *)vals[i]);
		free(vals);
		buf_free(&sql);
		if (rows < 5000)
			break;
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	return rc;
}

/* Campaigns of analysis.db (their MinHash merges them across sensors at the hub):
 * new ones as they appear, every campaign's message count once a minute. */
static int push_campaigns(struct pusher *p, const char *data_dir, struct hub_push_stats *st,
			  char **err_r)
{
	char path[4200];
	snprintf(path, sizeof(path), "%s/analysis.db", data_dir);
	struct stat sb;
	if (stat(path, &sb) != 0)
		return 0;
	int64_t now = mxb_now_us();
	int64_t cur = hub_seq(p, "camp_cursor", false, err_r);
	if (cur < 0)
		return -1;
	bool refresh = now >= p->camp_refresh_us;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return 0;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *q = NULL;
	int rc = 0;
	if (sqlite3_prepare_v2(db, "SELECT c.id, c.key, c.first_seen, c.rep_minhash,"
				   " (SELECT count(*) FROM messages m WHERE m.campaign_id = c.id)"
				   " FROM campaigns c WHERE c.id > ?1 ORDER BY c.id LIMIT 2000", -1, &q,
			       NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return 0;
	}
	sqlite3_bind_int64(q, 1, refresh ? 0 : cur);
	int64_t maxid = cur;
	long rows = 0;
	if (exec_ok(p->c, "BEGIN", err_r) != 0) {
		sqlite3_finalize(q);
		sqlite3_close(db);
		return -1;
	}
	while (rc == 0 && sqlite3_step(q) == SQLITE_ROW) {
		char first[48], msgs[32];
		ts_text(sqlite3_column_int64(q, 2) * 1000000, first, sizeof(first));
		snprintf(msgs, sizeof(msgs), "%lld", (long long)sqlite3_column_int64(q, 4));
		const char *vals[5] = {p->sensor, (const char *)sqlite3_column_text(q, 1), msgs, first,
				       (const char *)sqlite3_column_blob(q, 3)};
		int lens[5] = {0, 0, 0, 0, sqlite3_column_bytes(q, 3)};
		int fmts[5] = {0, 0, 0, 0, 1};
		PGresult *r = PQexecParams(p->c,
					   "INSERT INTO campaigns (sensor, key, messages, first_seen, minhash)"
					   " VALUES ($1, $2, $3, $4::timestamptz, $5) ON CONFLICT (sensor, key)"
					   " DO UPDATE SET messages = excluded.messages,"
					   " minhash = coalesce(excluded.minhash, campaigns.minhash)",
					   5, NULL, vals, lens, fmts, 0);
		if (!ok_cmd(r)) {
			set_err(err_r, "%s", PQerrorMessage(p->c));
			rc = -1;
		}
		PQclear(r);
		int64_t id = sqlite3_column_int64(q, 0);
		maxid = id > maxid ? id : maxid;
		rows++;
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	if (rc == 0 && maxid > cur) {
		char cv[32];
		snprintf(cv, sizeof(cv), "%lld", (long long)maxid);
		const char *pv[2] = {p->sensor, cv};
		PGresult *r = PQexecParams(p->c, "UPDATE sensors SET camp_cursor = $2 WHERE id = $1", 2,
					   NULL, pv, NULL, NULL, 0);
		rc = ok_cmd(r) ? 0 : -1;
		PQclear(r);
	}
	if (rc == 0 && exec_ok(p->c, "COMMIT", err_r) == 0) {
		st->campaigns += rows;
		if (refresh)
			p->camp_refresh_us = now + CAMPAIGN_REFRESH_US;
		return 0;
	}
	PQclear(PQexec(p->c, "ROLLBACK"));
	return -1;
}

static int sensor_register(struct pusher *p, char **err_r)
{
	const char *pv[1] = {p->sensor};
	PGresult *r = PQexecParams(p->c, "INSERT INTO sensors (id) VALUES ($1) ON CONFLICT (id) DO"
					 " UPDATE SET last_seen = now()", 1, NULL, pv, NULL, NULL, 0);
	bool ok = ok_cmd(r);
	PQclear(r);
	r = ok ? PQexec(p->c, "SELECT value FROM mxb_meta WHERE key = 'pw_key'") : NULL;
	ok = ok && ok_cmd(r) && PQntuples(r) == 1 && strlen(PQgetvalue(r, 0, 0)) == 64;
	if (ok)
		snprintf(p->pw_key, sizeof(p->pw_key), "%s", PQgetvalue(r, 0, 0));
	else
		set_err(err_r, "cannot register the sensor: %s", PQerrorMessage(p->c));
	PQclear(r);
	return ok ? 0 : -1;
}

static void nap(volatile sig_atomic_t *stop, int64_t us)
{
	int64_t until = mxb_now_us() + us;
	while (!*stop && mxb_now_us() < until) {
		struct timespec ts = {0, 50 * 1000000L};
		nanosleep(&ts, NULL);
	}
}

int hub_push_run(const char *data_dir, const struct mxb_config *cfg, volatile sig_atomic_t *stop,
		 bool once, struct hub_push_stats *st)
{
	struct hub_push_stats dummy;
	if (!st)
		st = &dummy;
	memset(st, 0, sizeof(*st));
	if (!cfg->hub_url || !*cfg->hub_url) {
		fprintf(stderr, "mxbait hub: no hub_url in the configuration\n");
		return 1;
	}
	char path[4200];
	snprintf(path, sizeof(path), "%s/%s", data_dir, MXB_DB_FILE);
	struct pusher p = {.cfg = cfg, .sensor = hub_sensor_name(cfg)};
	sqlite3 *db = NULL;
	int64_t backoff = 1000000;
	char *err = NULL;
	bool logged_down = false;
	int64_t prune_at = 0;
	while (!*stop) {
		if (!db) {
			struct stat sb;
			if (stat(path, &sb) == 0 &&
			    sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
				sqlite3_busy_timeout(db, 10000);
			} else {
				sqlite3_close(db);
				db = NULL;
				if (once) {
					fprintf(stderr, "mxbait hub: no event store at %s\n", path);
					return 1;
				}
				nap(stop, 1000000);
				continue;
			}
		}
		if (!p.c) {
			p.c = hub_connect(cfg->hub_url, true, &err);
			if (p.c && sensor_register(&p, &err) != 0) {
				PQfinish(p.c);
				p.c = NULL;
			}
			if (!p.c) {
				if (!logged_down)
					fprintf(stderr, "mxbait hub: %s (retrying; events wait in mxbait.db)\n",
						err ? err : "hub down");
				logged_down = true;
				st->errors++;
				free(err);
				err = NULL;
				if (once)
					break;
				nap(stop, backoff);
				backoff = backoff * 2 > 30000000 ? 30000000 : backoff * 2;
				continue;
			}
			if (logged_down)
				fprintf(stderr, "mxbait hub: connected again; catching up from the hub's"
						" position\n");
			logged_down = false;
			backoff = 1000000;
			st->reconnects++;
			p.n_days = 0;
		}
		int r = push_events(&p, db, st, &err);
		if (r == 0 && push_indicators(&p, data_dir, st, &err) != 0)
			r = -1;
		if (r == 0 && push_campaigns(&p, data_dir, st, &err) != 0)
			r = -1;
		if (r < 0) {
			st->errors++;
			fprintf(stderr, "mxbait hub: %s\n", err ? err : "push failed");
			free(err);
			err = NULL;
			if (PQstatus(p.c) != CONNECTION_OK) {
				PQfinish(p.c);
				p.c = NULL;
			}
			if (once && !p.c)
				break;
			nap(stop, backoff);
			backoff = backoff * 2 > 30000000 ? 30000000 : backoff * 2;
			continue;
		}
		backoff = 1000000;
		if (r == 0 && cfg->hub_retention_days && mxb_now_us() >= prune_at) {
			/* retention: whichever pusher comes first each hour drops old days */
			char *perr = NULL;
			int dropped = hub_prune(p.c, cfg->hub_retention_days, &perr);
			if (dropped > 0)
				fprintf(stderr, "mxbait hub: %d daily partitions older than %u days"
						" dropped\n", dropped, cfg->hub_retention_days);
			free(perr);
			prune_at = mxb_now_us() + 3600 * 1000000LL;
		}
		if (r == 0) {
			if (once)
				break;
			nap(stop, (int64_t)cfg->hub_interval_ms * 1000);
		}
	}
	if (p.c && db) {
		int64_t seq = hub_seq(&p, "event_seq", false, &err);
		sqlite3_stmt *q = NULL;
		if (seq >= 0 && sqlite3_prepare_v2(db, "SELECT count(*) FROM events WHERE id > ?1", -1,
						   &q, NULL) == SQLITE_OK) {
			sqlite3_bind_int64(q, 1, seq);
			if (sqlite3_step(q) == SQLITE_ROW)
				st->lag_events = sqlite3_column_int64(q, 0);
		}
		sqlite3_finalize(q);
	}
	free(err);
	PQfinish(p.c);
	sqlite3_close(db);
	return 0;
}

int hub_prune(PGconn *c, unsigned days, char **err_r)
{
	if (days == 0)
		return 0;
	char cutoff[16], name[40];
	day_name(day_of(mxb_now_us()) - days, name, sizeof(name), cutoff, sizeof(cutoff));
	PGresult *r = PQexec(c, "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid ="
				" i.inhrelid JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname ="
				" 'events' AND c.relname ~ '^events_[0-9]{8}$' ORDER BY 1");
	if (!ok_cmd(r)) {
		set_err(err_r, "%s", PQerrorMessage(c));
		PQclear(r);
		return -1;
	}
	int dropped = 0;
	for (int i = 0; i < PQntuples(r); i++) {
		const char *rel = PQgetvalue(r, i, 0);
		if (strcmp(rel, name) >= 0)
			continue;
		char sql[120];
		snprintf(sql, sizeof(sql), "DROP TABLE %s", rel); /* a name matched above */
		if (exec_ok(c, sql, err_r) != 0)
			break;
		dropped++;
	}
	PQclear(r);
	return dropped;
}
