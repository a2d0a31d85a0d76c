/* test_eventstore: submit/flush, derived tables, JSON-lines log, batching, drops,
 * migrations and refusals (too new, not a database); account saves and loads; the
 * brute-force tables (auth_attempts, probes), live and backfilled. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "deceive/deception.h"
#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"

struct paths {
	char dir[64];
	char db[128];
	char jsonl[128];
};

static void make_paths(struct paths *p)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/mxb-es-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->db, sizeof(p->db), "%s/mxbait.db", p->dir);
	snprintf(p->jsonl, sizeof(p->jsonl), "%s/events.jsonl", p->dir);
}

static void rm_paths(struct paths *p)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
	assert_int_equal(system(cmd), 0);
}

static struct mxb_event *ev(const char *name, const char *session, int64_t ts)
{
	struct mxb_event *e = mxb_event_new(name);
	assert_non_null(e);
	mxb_event_stamp(e, ts, session, "192.0.2.7", 40000, "smtp");
	return e;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		fail_msg("no row for %s: %s", sql, sqlite3_errmsg(db));
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *q_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const unsigned char *t = sqlite3_column_text(st, 0);
	char *r = t ? strdup((const char *)t) : NULL;
	sqlite3_finalize(st);
	return r;
}

static void submit_session(struct eventstore *es, const char *sid, int64_t t0)
{
	struct mxb_event *e = ev("connect", sid, t0);
	mxb_event_str(e, "dst_ip", "127.0.0.1");
	mxb_event_int(e, "dst_port", 2525);
	eventstore_submit(es, e);
	e = ev("helo", sid, t0 + 1);
	mxb_event_str(e, "verb", "EHLO");
	mxb_event_strn(e, "name", "evil\x1b[31m\xff\0x", 11);
	eventstore_submit(es, e);
	e = ev("tls", sid, t0 + 2);
	mxb_event_str(e, "mode", "starttls");
	mxb_event_str(e, "version", "TLSv1.3");
	mxb_event_str(e, "cipher", "TLS_AES_256_GCM_SHA384");
	mxb_event_int(e, "bits", 256);
	mxb_event_null(e, "sni");
	eventstore_submit(es, e);
	for (int ok = 0; ok < 2; ok++) {
		e = ev("auth", sid, t0 + 3 + ok);
		mxb_event_str(e, "mechanism", "PLAIN");
		mxb_event_str(e, "username", ok ? "admin" : "root");
		mxb_event_str(e, "password", ok ? "123456" : "toor");
		mxb_event_null(e, "authzid");
		mxb_event_bool(e, "success", ok);
		mxb_event_str(e, "result", ok ? "ok" : "fail");
		eventstore_submit(es, e);
	}
	e = ev("mail", sid, t0 + 5);
	mxb_event_str(e, "sender", "a@b.example");
	mxb_event_str(e, "params", "");
	mxb_event_null(e, "size");
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	eventstore_submit(es, e);
	for (int i = 0; i < 2; i++) {
		e = ev("rcpt", sid, t0 + 6 + i);
		mxb_event_str(e, "recipient", i ? "x@foreign.example" : "u@local.example");
		mxb_event_str(e, "params", "");
		mxb_event_bool(e, "accepted", !i);
		mxb_event_int(e, "reply", i ? 454 : 250);
		mxb_event_bool(e, "relay", i);
		eventstore_submit(es, e);
	}
	e = ev("message", sid, t0 + 8);
	mxb_event_str(e, "queue_id", "2DC1A11A199");
	mxb_event_str(e, "spool", "1.M2P3Q2DC1A11A199.h");
	mxb_event_str(e, "sha256", "00ff");
	mxb_event_int(e, "size", 1234);
	mxb_event_str(e, "sender", "a@b.example");
	const char *rc[] = {"u@local.example", "v@local.example"};
	mxb_event_str_array(e, "recipients", rc, 2);
	mxb_event_str(e, "method", "DATA");
	mxb_event_str(e, "auth_user", "admin");
	mxb_event_bool(e, "tls", true);
	eventstore_submit(es, e);
	e = ev("offence", sid, t0 + 9);
	mxb_event_str(e, "kind", "bare_lf");
	mxb_event_str(e, "detail", "x");
	eventstore_submit(es, e);
	e = ev("disconnect", sid, t0 + 10);
	mxb_event_str(e, "reason", "quit");
	mxb_event_int(e, "duration_ms", 42);
	mxb_event_str(e, "state", "idle");
	mxb_event_int(e, "commands", 9);
	mxb_event_int(e, "errors", 1);
	mxb_event_int(e, "messages", 1);
	eventstore_submit(es, e);
}

static void test_submit_flush_tables(void **state)
{
	struct paths p;
	make_paths(&p);
	char *err = NULL;
	struct eventstore *es = eventstore_open(p.db, p.jsonl, &err);
	if (!es)
		fail_msg("open: %s", err);
	submit_session(es, "0123456789abcdef", 1700000000000000);
	/* A session without disconnect yet: still listed. */
	struct mxb_event *e = ev("connect", "fedcba9876543210", 1700000001000000);
	mxb_event_str(e, "dst_ip", "127.0.0.1");
	mxb_event_int(e, "dst_port", 2525);
	eventstore_submit(es, e);
	eventstore_submit(es, NULL); /* harmless */
	eventstore_flush(es);

	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 12);
	assert_int_equal(q_int(db, "PRAGMA user_version"), db_schema_version());
	char *s = q_text(db, "PRAGMA journal_mode");
	assert_string_equal(s, "wal");
	free(s);
	/* Events in submission order, each row's json valid and consistent. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE json_valid(json) AND"
				   " json_extract(json,'$.event') = event AND"
				   " json_extract(json,'$.session') = session AND"
				   " json_extract(json,'$.ts') = ts"), 12);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events a JOIN events b ON b.id = a.id + 1"
				   " WHERE b.ts_us < a.ts_us AND a.session = b.session"), 0);
	/* sessions */
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions"), 2);
	const char *sid = "WHERE session = '0123456789abcdef'";
	char sql[256];
#define SESS(col) (snprintf(sql, sizeof(sql), "SELECT %s FROM sessions %s", col, sid), sql)
	s = q_text(db, SESS("tls"));
	assert_string_equal(s, "TLSv1.3");
	free(s);
	s = q_text(db, SESS("auth_user"));
	assert_string_equal(s, "admin");
	free(s);
	s = q_text(db, SESS("reason"));
	assert_string_equal(s, "quit");
	free(s);
	s = q_text(db, SESS("proto"));
	assert_string_equal(s, "smtp");
	free(s);
	assert_int_equal(q_int(db, SESS("auth_attempts")), 2);
	assert_int_equal(q_int(db, SESS("rcpts")), 2);
	assert_int_equal(q_int(db, SESS("mails")), 1);
	assert_int_equal(q_int(db, SESS("messages")), 1);
	assert_int_equal(q_int(db, SESS("offences")), 1);
	assert_int_equal(q_int(db, SESS("commands")), 9);
	assert_int_equal(q_int(db, SESS("errors")), 1);
	assert_int_equal(q_int(db, SESS("duration_ms")), 42);
	assert_int_equal(q_int(db, SESS("dst_port")), 2525);
	assert_int_equal(q_int(db, SESS("started_us")), 1700000000000000);
	assert_int_equal(q_int(db, SESS("ended_us")), 1700000000000010);
	assert_int_equal(q_int(db, SESS("src_port")), 40000);
	/* The hostile HELO survives as text: ESC kept (the CLI escapes it on output),
	 * the invalid 0xFF becomes U+00FF (2 bytes), SQLite's json_extract stops a
	 * string at \u0000 (the events row keeps the whole JSON). */
	assert_int_equal(q_int(db, SESS("length(CAST(helo AS BLOB))")), 11);
	assert_int_equal(q_int(db, "SELECT ended_us IS NULL FROM sessions WHERE session ="
				   " 'fedcba9876543210'"), 1);
	/* messages */
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 1);
	s = q_text(db, "SELECT queue_id || '|' || session || '|' || spool || '|' || size || '|' ||"
		       " sender || '|' || recipients || '|' || n_rcpt || '|' || method || '|' ||"
		       " auth_user || '|' || tls || '|' || src_ip FROM messages");
	assert_string_equal(s, "2DC1A11A199|0123456789abcdef|1.M2P3Q2DC1A11A199.h|1234|"
			       "a@b.example|[\"u@local.example\",\"v@local.example\"]|2|DATA|"
			       "admin|1|192.0.2.7");
	free(s);
	sqlite3_close(db);

	/* JSON lines: one per event, all valid, same order as the table. */
	FILE *f = fopen(p.jsonl, "r");
	assert_non_null(f);
	sqlite3 *mem;
	assert_int_equal(sqlite3_open(":memory:", &mem), SQLITE_OK);
	char line[4096];
	int n = 0;
	const char *order[] = {"connect", "helo", "tls", "auth", "auth", "mail", "rcpt",
			       "rcpt", "message", "offence", "disconnect", "connect"};
	while (fgets(line, sizeof(line), f)) {
		size_t len = strlen(line);
		assert_true(len > 0 && line[len - 1] == '\n');
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(mem, "SELECT json_valid(?1), json_extract(?1, '$.event')",
						    -1, &st, NULL), SQLITE_OK);
		sqlite3_bind_text(st, 1, line, (int)len - 1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 1);
		assert_true(n < 12);
		assert_string_equal((const char *)sqlite3_column_text(st, 1), order[n]);
		sqlite3_finalize(st);
		/* No raw control byte reaches the log. */
		for (size_t i = 0; i + 1 < len; i++)
			assert_true((unsigned char)line[i] >= 0x20);
		n++;
	}
	fclose(f);
	sqlite3_close(mem);
	assert_int_equal(n, 12);

	struct eventstore_stats stt;
	eventstore_get_stats(es, &stt);
	assert_int_equal(stt.submitted, 12);
	assert_int_equal(stt.written, 12);
	assert_int_equal(stt.dropped, 0);
	assert_int_equal(stt.failed, 0);
	eventstore_close(&es);
	assert_null(es);
	eventstore_close(&es);
	rm_paths(&p);
}

struct thr_arg {
	struct eventstore *es;
	int id;
	int n;
};

static void *submitter(void *a)
{
	struct thr_arg *t = a;
	for (int i = 0; i < t->n; i++) {
		char sid[24];
		snprintf(sid, sizeof(sid), "%016x", t->id * 100000 + i);
		struct mxb_event *e = ev("offence", sid, 0);
		mxb_event_str(e, "kind", "unknown_command");
		mxb_event_str(e, "detail", "GET / HTTP/1.0");
		eventstore_submit(t->es, e);
	}
	return NULL;
}

/* Concurrent submitters; batches are much fewer than events. */
static void test_threads_batches(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, p.jsonl, NULL);
	assert_non_null(es);
	pthread_t th[4];
	struct thr_arg ta[4];
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct thr_arg){es, i + 1, 1000};
		pthread_create(&th[i], NULL, submitter, &ta[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	eventstore_flush(es);
	struct eventstore_stats st;
	eventstore_get_stats(es, &st);
	assert_int_equal(st.written, 4000);
	printf("# 4000 events in %llu batches\n", st.batches);
	assert_true(st.batches < 400);
	assert_true(st.batches >= 4000 / 512);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 4000);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions"), 4000);
	assert_int_equal(q_int(db, "SELECT sum(offences) FROM sessions"), 4000);
	sqlite3_close(db);
	eventstore_close(&es);
	rm_paths(&p);
}

/* Past the queue bound events are dropped, counted, and the count is stored. */
static void test_drops_counted(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	eventstore_set_queue_limit(es, 10);
	for (int i = 0; i < 1000; i++)
		eventstore_submit(es, ev("offence", "0000000000000001", 0));
	eventstore_flush(es);
	struct eventstore_stats st;
	eventstore_get_stats(es, &st);
	assert_int_equal(st.submitted, 1000);
	assert_true(st.dropped > 0);
	assert_int_equal(st.written + st.dropped, 1000);
	eventstore_close(&es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), (int64_t)st.written);
	assert_int_equal(db_counter_get(db, "events_dropped"), (int64_t)st.dropped);
	sqlite3_close(db);
	rm_paths(&p);
}

/* A version-1 database (events only) is migrated forward, keeping its rows; so is an
 * empty file. */
static void test_migration(void **state)
{
	struct paths p;
	make_paths(&p);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(db_migrate(db, 1, NULL), DB_OK);
	assert_int_equal(db_user_version(db, NULL), 1);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO events(ts, ts_us, event, json) VALUES"
					  " ('t', 1, 'connect', '{}')", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	/* A reader refuses the old schema with advice. */
	char *err = NULL;
	assert_int_equal(db_open_ro(p.db, &db, &err), DB_TOO_OLD);
	assert_non_null(strstr(err, "older"));
	free(err);
	struct eventstore *es = eventstore_open(p.db, NULL, &err);
	if (!es)
		fail_msg("%s", err);
	eventstore_close(&es);
	assert_int_equal(db_open_ro(p.db, &db, NULL), DB_OK);
	assert_int_equal(db_user_version(db, NULL), db_schema_version());
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions"), 0);
	/* query_only: the reader cannot write. */
	assert_int_not_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	/* Reopen is a no-op. */
	es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	eventstore_close(&es);
	unlink(p.db);

	/* An empty file is a fresh database. */
	FILE *f = fopen(p.db, "w");
	fclose(f);
	es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	eventstore_close(&es);
	rm_paths(&p);
}

static void test_refusals(void **state)
{
	struct paths p;
	make_paths(&p);
	sqlite3 *db;
	char *err = NULL;
	/* Too new. */
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE events(x); PRAGMA user_version = 99",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_null(eventstore_open(p.db, NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "newer"));
	free(err);
	err = NULL;
	assert_int_equal(db_open_ro(p.db, &db, &err), DB_TOO_NEW);
	assert_non_null(strstr(err, "schema version 99 is newer"));
	free(err);
	/* Untouched. */
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "PRAGMA user_version"), 99);
	sqlite3_close(db);
	unlink(p.db);

	/* Not a database at all. */
	FILE *f = fopen(p.db, "w");
	for (int i = 0; i < 4096; i++)
		fputc("garbage!"[i % 8], f);
	fclose(f);
	err = NULL;
	assert_null(eventstore_open(p.db, NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "is not an mxbait database: file is not a database"));
	free(err);
	err = NULL;
	assert_int_equal(db_open_ro(p.db, &db, &err), DB_NOT_OURS);
	assert_non_null(strstr(err, "is not an mxbait database: file is not a database"));
	free(err);
	unlink(p.db);

	/* A foreign SQLite database. */
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	err = NULL;
	assert_int_equal(db_open_ro(p.db, &db, &err), DB_NOT_OURS);
	assert_non_null(strstr(err, "no mxbait schema"));
	free(err);
	unlink(p.db);

	/* Missing. */
	err = NULL;
	assert_int_equal(db_open_ro(p.db, &db, &err), DB_MISSING);
	free(err);

	/* JSON-lines log that cannot be opened. */
	err = NULL;
	assert_null(eventstore_open(p.db, "/nonexistent-dir/x.jsonl", &err));
	assert_non_null(strstr(err, "/nonexistent-dir/x.jsonl"));
	free(err);
	/* Database in a missing directory. */
	err = NULL;
	assert_null(eventstore_open("/nonexistent-dir/m.db", NULL, &err));
	assert_non_null(err);
	free(err);
	rm_paths(&p);
}

/* close commits what is still queued, without a flush. */
static void test_close_drains(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, p.jsonl, NULL);
	for (int i = 0; i < 700; i++)
		eventstore_submit(es, ev("offence", "0000000000000002", 0));
	eventstore_close(&es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 700);
	sqlite3_close(db);
	rm_paths(&p);
}

static int64_t mono_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Submit never waits for the disk: with the database write-locked by another
 * connection, 5000 submits still return at once; the events land once it is free. */
static void test_submit_never_blocks(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, p.jsonl, NULL);
	assert_non_null(es);
	sqlite3 *locker;
	assert_int_equal(sqlite3_open(p.db, &locker), SQLITE_OK);
	assert_int_equal(sqlite3_exec(locker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	/* Let the writer start a batch and block on the lock. */
	eventstore_submit(es, ev("offence", "0000000000000003", 0));
	usleep(150 * 1000);
	int64_t t0 = mono_us();
	for (int i = 0; i < 5000; i++)
		eventstore_submit(es, ev("offence", "0000000000000003", 0));
	int64_t spent = mono_us() - t0;
	printf("# 5000 submits with the database locked: %lld us\n", (long long)spent);
	assert_true(spent < 1000 * 1000);
	usleep(200 * 1000);
	assert_int_equal(sqlite3_exec(locker, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(locker);
	eventstore_flush(es);
	struct eventstore_stats st;
	eventstore_get_stats(es, &st);
	assert_int_equal(st.written, 5001);
	assert_int_equal(st.failed, 0);
	eventstore_close(&es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 5001);
	sqlite3_close(db);
	rm_paths(&p);
}


/* ---- accounts (credential policy persistence) ---- */

struct loaded {
	int n;
	char user[8][64];
	char pass[8][64];
	bool has_pass[8];
	unsigned failures[8], threshold[8];
	int64_t cracked_us[8];
	int fixed[8];
	unsigned plausible[8];
	int64_t last_updated_us;
	int refuse_at; /* 1-based; 0: never */
};

/* Rows come oldest save first (updated_us ascending); they are kept here in username
 * order, which is what the assertions below read. */
static int collect(void *ctx, const struct deception_account *a)
{
	struct loaded *l = ctx;
	if (l->refuse_at && l->n + 1 == l->refuse_at)
		return -1;
	assert_true(l->n < 8);
	assert_true(a->updated_us >= l->last_updated_us);
	l->last_updated_us = a->updated_us;
	int i = l->n;
	while (i > 0 && strcmp(l->user[i - 1], a->username) > 0) {
		memcpy(l->user[i], l->user[i - 1], 64);
		memcpy(l->pass[i], l->pass[i - 1], 64);
		l->has_pass[i] = l->has_pass[i - 1];
		l->failures[i] = l->failures[i - 1];
		l->threshold[i] = l->threshold[i - 1];
		l->cracked_us[i] = l->cracked_us[i - 1];
		l->fixed[i] = l->fixed[i - 1];
		l->plausible[i] = l->plausible[i - 1];
		i--;
	}
	snprintf(l->user[i], 64, "%s", a->username);
	l->has_pass[i] = a->password != NULL;
	snprintf(l->pass[i], 64, "%s", a->password ? a->password : "");
	l->failures[i] = a->failures;
	l->threshold[i] = a->threshold;
	l->cracked_us[i] = a->cracked_us;
	l->fixed[i] = a->fixed;
	l->plausible[i] = a->plausible;
	l->n++;
	return 0;
}

static void save(struct eventstore *es, const char *user, const char *pass, unsigned failures,
		 unsigned threshold, int64_t cracked_us, int fixed)
{
	/* Strings from a stack buffer that is overwritten afterwards: the store copies. */
	char u[64], pw[64];
	snprintf(u, sizeof(u), "%s", user);
	snprintf(pw, sizeof(pw), "%s", pass ? pass : "");
	struct deception_account a = {u, pass ? pw : NULL, failures, threshold, cracked_us, fixed, 0, 0};
	eventstore_save_account(es, &a);
	memset(u, 'X', sizeof(u) - 1);
	memset(pw, 'X', sizeof(pw) - 1);
}

static void test_accounts_roundtrip(void **state)
{
	struct paths p;
	make_paths(&p);
	char *err = NULL;
	struct loaded l;
	/* No database yet: nothing to load, and nothing created. */
	memset(&l, 0, sizeof(l));
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), 0);
	assert_null(err);
	assert_int_equal(access(p.db, F_OK), -1);

	struct eventstore *es = eventstore_open(p.db, NULL, &err);
	if (!es)
		fail_msg("open: %s", err);
	/* Upsert: the latest save of a username wins. */
	save(es, "alice", NULL, 1, 4, 0, 0);
	save(es, "alice", NULL, 2, 4, 0, 0);
	save(es, "bob", NULL, 3, 5, 0, 0);
	save(es, "postmaster", "s3cret", 0, 0, 0, 1);
	save(es, "alice", NULL, 4, 4, 0, 0);
	/* Saves and events share batches and transactions. */
	eventstore_submit(es, ev("offence", "00000000000000aa", 0));
	/* Through the policy's hook type, as serve wires it. */
	deception_save_fn hook = eventstore_account_hook;
	/* why a guessed name may be cracked (migration 8) is saved with it */
	struct deception_account a4 = {"zed", NULL, 1, 2, 0, 0, 0, DECEPTION_PLAUSIBLE_RCPT};
	hook(es, &a4);
	save(es, "alice", "123456", 4, 4, 1795000000123456, 0);
	eventstore_save_account(es, NULL);  /* harmless */
	struct deception_account nameless = {NULL, NULL, 0, 0, 0, 0, 0, 0};
	eventstore_save_account(es, &nameless);
	eventstore_flush(es);

	memset(&l, 0, sizeof(l));
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), 4);
	assert_string_equal(l.user[0], "alice");
	assert_true(l.has_pass[0]);
	assert_string_equal(l.pass[0], "123456");
	assert_int_equal(l.failures[0], 4);
	assert_int_equal(l.threshold[0], 4);
	assert_int_equal(l.cracked_us[0], 1795000000123456);
	assert_int_equal(l.fixed[0], 0);
	assert_string_equal(l.user[1], "bob");
	assert_false(l.has_pass[1]);
	assert_int_equal(l.failures[1], 3);
	assert_int_equal(l.threshold[1], 5);
	assert_int_equal(l.cracked_us[1], 0);
	assert_string_equal(l.user[2], "postmaster");
	assert_string_equal(l.pass[2], "s3cret");
	assert_int_equal(l.fixed[2], 1);
	assert_string_equal(l.user[3], "zed");
	assert_int_equal(l.failures[3], 1);
	assert_int_equal(l.threshold[3], 2);
	assert_int_equal(l.plausible[3], DECEPTION_PLAUSIBLE_RCPT);
	assert_int_equal(l.plausible[1], 0);

	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM accounts"), 4);
	assert_int_equal(q_int(db, "SELECT count(*) FROM accounts WHERE updated_us > 1700000000000000"),
			 4);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 1);
	sqlite3_close(db);

	/* A bob crack after a restart: survives, and so does alice's. */
	eventstore_close(&es);
	es = eventstore_open(p.db, NULL, &err);
	assert_non_null(es);
	save(es, "bob", "password", 5, 5, 1795000000999999, 0);
	eventstore_close(&es); /* close commits without a flush */
	memset(&l, 0, sizeof(l));
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), 4);
	assert_string_equal(l.pass[0], "123456");
	assert_string_equal(l.pass[1], "password");
	assert_int_equal(l.cracked_us[1], 1795000000999999);

	/* The callback can refuse: loading stops with an error. */
	memset(&l, 0, sizeof(l));
	l.refuse_at = 2;
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), -1);
	assert_non_null(err);
	free(err);
	err = NULL;
	assert_int_equal(l.n, 1);

	/* A database from before the accounts table: nothing saved, not an error. */
	unlink(p.db);
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(db_migrate(db, 2, NULL), DB_OK);
	sqlite3_close(db);
	memset(&l, 0, sizeof(l));
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), 0);
	/* Newer than us, or garbage: errors. */
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), -1);
	assert_non_null(strstr(err, "newer"));
	free(err);
	err = NULL;
	unlink(p.db);
	FILE *f = fopen(p.db, "w");
	for (int i = 0; i < 4096; i++)
		fputc("garbage!"[i % 8], f);
	fclose(f);
	assert_int_equal(db_load_accounts(p.db, collect, &l, &err), -1);
	assert_non_null(err);
	free(err);
	rm_paths(&p);
}

struct acct_thr {
	struct eventstore *es;
	int id;
};

static void *account_saver(void *arg)
{
	struct acct_thr *t = arg;
	for (int i = 0; i < 500; i++) {
		char u[32];
		snprintf(u, sizeof(u), "user%d-%d", t->id, i);
		for (unsigned f = 1; f <= 3; f++)
			save(t->es, u, f == 3 ? "qwerty" : NULL, f, 3, f == 3 ? 1 : 0, 0);
	}
	return NULL;
}

/* Four threads saving 6000 states of 2000 accounts: all land, latest state each. */
static void test_accounts_threads(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	pthread_t th[4];
	struct acct_thr ta[4];
	for (int i = 0; i < 4; i++) {
		ta[i] = (struct acct_thr){es, i};
		pthread_create(&th[i], NULL, account_saver, &ta[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	eventstore_flush(es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM accounts"), 2000);
	assert_int_equal(q_int(db, "SELECT count(*) FROM accounts WHERE password = 'qwerty'"
				   " AND failures = 3 AND cracked_us = 1"), 2000);
	sqlite3_close(db);
	eventstore_close(&es);
	rm_paths(&p);
}

/* ---- brute-force tables ---- */

static void auth_ev(struct eventstore *es, const char *sid, const char *ip, const char *proto,
		    int64_t ts, const char *mech, const char *user, const char *pass, bool ok)
{
	struct mxb_event *e = mxb_event_new("auth");
	mxb_event_stamp(e, ts, sid, ip, 50000, proto);
	mxb_event_str(e, "mechanism", mech);
	if (user)
		mxb_event_str(e, "username", user);
	else
		mxb_event_null(e, "username");
	if (pass)
		mxb_event_str(e, "password", pass);
	else
		mxb_event_null(e, "password");
	mxb_event_null(e, "authzid");
	mxb_event_bool(e, "success", ok);
	mxb_event_str(e, "result", ok ? "ok" : user ? "fail" : "aborted");
	eventstore_submit(es, e);
}

static void rcpt_ev(struct eventstore *es, const char *sid, const char *ip, int64_t ts,
		    const char *rcpt, bool ok)
{
	struct mxb_event *e = mxb_event_new("rcpt");
	mxb_event_stamp(e, ts, sid, ip, 50000, "smtp");
	mxb_event_str(e, "recipient", rcpt);
	mxb_event_str(e, "params", "");
	mxb_event_bool(e, "accepted", ok);
	mxb_event_int(e, "reply", ok ? 250 : 550);
	mxb_event_bool(e, "relay", false);
	eventstore_submit(es, e);
}

static void vrfy_ev(struct eventstore *es, const char *sid, const char *ip, int64_t ts,
		    const char *verb, const char *arg, int reply)
{
	struct mxb_event *e = mxb_event_new("vrfy");
	mxb_event_stamp(e, ts, sid, ip, 50000, "smtp");
	mxb_event_str(e, "verb", verb);
	mxb_event_str(e, "argument", arg);
	mxb_event_int(e, "reply", reply);
	eventstore_submit(es, e);
}

static void fill_bruteforce(struct eventstore *es)
{
	int64_t t = 1795000000000000;
	auth_ev(es, "a000000000000001", "203.0.113.9", "smtp", t + 1, "PLAIN", "admin", "123456",
		false);
	auth_ev(es, "a000000000000001", "203.0.113.9", "smtp", t + 2, "LOGIN", "admin", "admin",
		false);
	auth_ev(es, "a000000000000002", "203.0.113.200", "submission", t + 3, "PLAIN", "admin",
		"password", true);
	auth_ev(es, "a000000000000003", "2001:db8:1:2::5", "imap", t + 4, "LOGIN", "Info",
		"qwerty", false);
	auth_ev(es, "a000000000000004", "2001:db8:1:ffff::6", "pop3", t + 5, "USER", "info",
		"qwerty", false);
	auth_ev(es, "a000000000000005", "::ffff:198.51.100.77", "smtps", t + 6, "PLAIN", NULL,
		NULL, false);
	auth_ev(es, "a000000000000006", "fe80::1%eth0", "smtp", t + 7, "PLAIN", "x", "y", false);
	/* Probes: an unauthenticated session (RCPT, VRFY, EXPN)... */
	rcpt_ev(es, "b000000000000001", "192.0.2.10", t + 10, "alice@local.example", true);
	rcpt_ev(es, "b000000000000001", "192.0.2.10", t + 11, "nobody@local.example", false);
	vrfy_ev(es, "b000000000000001", "192.0.2.10", t + 12, "VRFY", "root", 252);
	vrfy_ev(es, "b000000000000001", "192.0.2.10", t + 13, "EXPN", "staff", 502);
	/* ...a session that fails AUTH is still unauthenticated; one that succeeds is not,
	 * from then on (its earlier RCPT was a probe). */
	auth_ev(es, "b000000000000002", "192.0.2.11", "submission", t + 20, "PLAIN", "bob",
		"bob", false);
	rcpt_ev(es, "b000000000000002", "192.0.2.11", t + 21, "carol@local.example", true);
	auth_ev(es, "b000000000000002", "192.0.2.11", "submission", t + 22, "PLAIN", "bob",
		"letmein", true);
	rcpt_ev(es, "b000000000000002", "192.0.2.11", t + 23, "victim@far.example", true);
	vrfy_ev(es, "b000000000000002", "192.0.2.11", t + 24, "VRFY", "dave", 252);
}

static const char dump_auth[] =
	"SELECT group_concat(r, char(10)) FROM (SELECT ts_us || '|' || session || '|' || src_ip"
	" || '|' || coalesce(prefix, 'NULL') || '|' || proto || '|' || mechanism || '|' ||"
	" coalesce(username, 'NULL') || '|' || coalesce(password, 'NULL') || '|' || success ||"
	" '|' || result AS r FROM auth_attempts ORDER BY id)";
static const char dump_probes[] =
	"SELECT group_concat(r, char(10)) FROM (SELECT ts_us || '|' || session || '|' || src_ip"
	" || '|' || prefix || '|' || proto || '|' || kind || '|' || address || '|' || accepted"
	" || '|' || reply AS r FROM probes ORDER BY id)";

static const char want_auth[] =
	"1795000000000001|a000000000000001|203.0.113.9|203.0.113.0/24|smtp|PLAIN|admin|123456|0|fail\n"
	"1795000000000002|a000000000000001|203.0.113.9|203.0.113.0/24|smtp|LOGIN|admin|admin|0|fail\n"
	"1795000000000003|a000000000000002|203.0.113.200|203.0.113.0/24|submission|PLAIN|admin|password|1|ok\n"
	"1795000000000004|a000000000000003|2001:db8:1:2::5|2001:db8:1::/48|imap|LOGIN|Info|qwerty|0|fail\n"
	"1795000000000005|a000000000000004|2001:db8:1:ffff::6|2001:db8:1::/48|pop3|USER|info|qwerty|0|fail\n"
	"1795000000000006|a000000000000005|::ffff:198.51.100.77|198.51.100.0/24|smtps|PLAIN|NULL|NULL|0|aborted\n"
	"1795000000000007|a000000000000006|fe80::1%eth0|fe80::/48|smtp|PLAIN|x|y|0|fail\n"
	"1795000000000020|b000000000000002|192.0.2.11|192.0.2.0/24|submission|PLAIN|bob|bob|0|fail\n"
	"1795000000000022|b000000000000002|192.0.2.11|192.0.2.0/24|submission|PLAIN|bob|letmein|1|ok";
static const char want_probes[] =
	"1795000000000010|b000000000000001|192.0.2.10|192.0.2.0/24|smtp|rcpt|alice@local.example|1|250\n"
	"1795000000000011|b000000000000001|192.0.2.10|192.0.2.0/24|smtp|rcpt|nobody@local.example|0|550\n"
	"1795000000000012|b000000000000001|192.0.2.10|192.0.2.0/24|smtp|vrfy|root|1|252\n"
	"1795000000000013|b000000000000001|192.0.2.10|192.0.2.0/24|smtp|expn|staff|0|502\n"
	"1795000000000021|b000000000000002|192.0.2.11|192.0.2.0/24|smtp|rcpt|carol@local.example|1|250";

static void expect_text(sqlite3 *db, const char *sql, const char *want)
{
	char *s = q_text(db, sql);
	if (!s || strcmp(s, want))
		fail_msg("got:\n%s\nwant:\n%s", s ? s : "NULL", want);
	free(s);
}

static void test_bruteforce_tables(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	fill_bruteforce(es);
	eventstore_flush(es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	expect_text(db, dump_auth, want_auth);
	expect_text(db, dump_probes, want_probes);
	/* The queries of `mxbait creds` use the indexes. */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT count(*) FROM"
					    " auth_attempts WHERE username = 'admin'",
					    -1, &st, NULL), SQLITE_OK);
	bool indexed = false;
	while (sqlite3_step(st) == SQLITE_ROW)
		indexed |= strstr((const char *)sqlite3_column_text(st, 3),
				  "auth_attempts_username") != NULL;
	sqlite3_finalize(st);
	assert_true(indexed);
	sqlite3_close(db);
	eventstore_close(&es);

	/* Backfill: an existing data directory from before the tables (version 3) gets
	 * exactly the rows the writer would have made. */
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	/* (and what later steps added: the guard's decisions, step 4 -> 5; why an account
	 * is plausible, step 7 -> 8) */
	assert_int_equal(sqlite3_exec(db, "DROP TABLE auth_attempts; DROP TABLE probes;"
					  " DROP INDEX messages_auth_user; DROP TABLE decisions;"
					  " ALTER TABLE sessions DROP COLUMN orig_dst_ip;"
					  " ALTER TABLE sessions DROP COLUMN orig_dst_port;"
					  " ALTER TABLE accounts DROP COLUMN plausible;"
					  " PRAGMA user_version = 3",
				      NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	eventstore_close(&es);
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "PRAGMA user_version"), db_schema_version());
	expect_text(db, dump_auth, want_auth);
	expect_text(db, dump_probes, want_probes);
	sqlite3_close(db);
	rm_paths(&p);
}

static void test_prefix(void **state)
{
	struct {
		const char *ip, *want;
	} cases[] = {
		{"203.0.113.9", "203.0.113.0/24"},
		{"10.1.2.255", "10.1.2.0/24"},
		{"::ffff:198.51.100.77", "198.51.100.0/24"},
		{"2001:db8::1", "2001:db8::/48"},
		{"2001:DB8:abcd:12::1", "2001:db8:abcd::/48"},
		{"::1", "::/48"},
		{"fe80::1%eth0", "fe80::/48"},
		{"not an ip", NULL},
		{"", NULL},
		{"1.2.3", NULL},
		{"1.2.3.4.5", NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char out[64];
		int r = db_prefix(cases[i].ip, out, sizeof(out));
		if (!cases[i].want) {
			assert_int_equal(r, -1);
			continue;
		}
		assert_int_equal(r, 0);
		assert_string_equal(out, cases[i].want);
	}
	char small[8];
	assert_int_equal(db_prefix("203.0.113.9", small, sizeof(small)), -1);
}

/* ---- the derived tables are defined by the event contract ---- */

/* Every derived row, recomputed from the stored event JSON with json_extract() (the
 * definition the writer had before it bound fields directly, and the one db.c's
 * backfill uses), must equal what the writer stored.  Returns the number of rows that
 * differ (printing the first of each table). */
static const char *const derived_checks[][2] = {
	{"auth_attempts",
	 "SELECT ts_us, session, src_ip, mxb_prefix(src_ip), proto,"
	 " json_extract(json, '$.mechanism'), json_extract(json, '$.username'),"
	 " json_extract(json, '$.password'), coalesce(json_extract(json, '$.success'), 0),"
	 " json_extract(json, '$.result') FROM events WHERE event = 'auth'"},
	{"probes",
	 "SELECT e.ts_us, e.session, e.src_ip, mxb_prefix(e.src_ip), e.proto,"
	 " CASE e.event WHEN 'rcpt' THEN 'rcpt'"
	 "  ELSE lower(coalesce(json_extract(e.json, '$.verb'), 'vrfy')) END,"
	 " CASE e.event WHEN 'rcpt' THEN json_extract(e.json, '$.recipient')"
	 "  ELSE json_extract(e.json, '$.argument') END,"
	 " CASE e.event WHEN 'rcpt' THEN coalesce(json_extract(e.json, '$.accepted'), 0)"
	 "  ELSE coalesce(json_extract(e.json, '$.reply') BETWEEN 200 AND 299, 0) END,"
	 " json_extract(e.json, '$.reply')"
	 " FROM events e WHERE e.event IN ('rcpt', 'vrfy') AND NOT EXISTS ("
	 "  SELECT 1 FROM events a WHERE a.session = e.session AND a.event = 'auth'"
	 "  AND a.id < e.id AND json_extract(a.json, '$.success')"
	 "  AND json_extract(a.json, '$.username') IS NOT NULL)"},
	{"messages",
	 "SELECT coalesce(json_extract(json, '$.queue_id'), ''), session, ts_us, src_ip,"
	 " json_extract(json, '$.spool'), json_extract(json, '$.sha256'),"
	 " json_extract(json, '$.size'), json_extract(json, '$.sender'),"
	 " json_extract(json, '$.recipients'),"
	 " coalesce(json_array_length(json, '$.recipients'), 0), json_extract(json, '$.method'),"
	 " json_extract(json, '$.auth_user'), json_extract(json, '$.tls')"
	 " FROM events WHERE event = 'message'"
	 " UNION ALL SELECT coalesce(json_extract(json, '$.queue_id'), ''), NULL,"
	 " unixepoch(json_extract(json, '$.captured_ts')) * 1000000"
	 " + CAST(substr(json_extract(json, '$.captured_ts'), 21, 6) AS INTEGER),"
	 " nullif(src_ip, ''), json_extract(json, '$.spool'), json_extract(json, '$.sha256'),"
	 " json_extract(json, '$.size'), NULL, '[]', 0, NULL, NULL, NULL"
	 " FROM events WHERE event = 'message_recovered'"},
	{"sessions",
	 "SELECT s.session, (SELECT proto FROM events WHERE session = s.session ORDER BY id"
	 " LIMIT 1), (SELECT src_ip FROM events WHERE session = s.session ORDER BY id LIMIT 1),"
	 " (SELECT json_extract(json, '$.dst_ip') FROM events WHERE session = s.session AND"
	 "  event = 'connect' ORDER BY id DESC LIMIT 1),"
	 " (SELECT json_extract(json, '$.dst_port') FROM events WHERE session = s.session AND"
	 "  event = 'connect' ORDER BY id DESC LIMIT 1),"
	 " coalesce((SELECT ts_us FROM events WHERE session = s.session AND event = 'connect'"
	 "  ORDER BY id DESC LIMIT 1), (SELECT ts_us FROM events WHERE session = s.session"
	 "  ORDER BY id LIMIT 1)),"
	 " (SELECT ts_us FROM events WHERE session = s.session AND event = 'disconnect'"
	 "  ORDER BY id DESC LIMIT 1),"
	 " (SELECT json_extract(json, '$.name') FROM events WHERE session = s.session AND"
	 "  event = 'helo' ORDER BY id DESC LIMIT 1),"
	 " (SELECT json_extract(json, '$.version') FROM events WHERE session = s.session AND"
	 "  event = 'tls' ORDER BY id DESC LIMIT 1),"
	 " (SELECT json_extract(json, '$.username') FROM events WHERE session = s.session AND"
	 "  event = 'auth' AND json_extract(json, '$.success') ORDER BY id DESC LIMIT 1),"
	 " (SELECT count(*) FROM events WHERE session = s.session AND event = 'auth'),"
	 " (SELECT count(*) FROM events WHERE session = s.session AND event = 'mail'),"
	 " (SELECT count(*) FROM events WHERE session = s.session AND event = 'rcpt'),"
	 " (SELECT count(*) FROM events WHERE session = s.session AND event = 'offence'),"
	 " (SELECT json_extract(json, '$.reason') FROM events WHERE session = s.session AND"
	 "  event = 'disconnect' ORDER BY id DESC LIMIT 1)"
	 " FROM sessions s"},
};
static const char *const derived_live[] = {
	"SELECT ts_us, session, src_ip, prefix, proto, mechanism, username, password, success,"
	" result FROM auth_attempts",
	"SELECT ts_us, session, src_ip, prefix, proto, kind, address, accepted, reply FROM probes",
	"SELECT queue_id, session, ts_us, src_ip, spool, sha256, size, sender, recipients,"
	" n_rcpt, method, auth_user, tls FROM messages",
	"SELECT session, proto, src_ip, dst_ip, dst_port, started_us, ended_us, helo, tls,"
	" auth_user, auth_attempts, mails, rcpts, offences, reason FROM sessions",
};

static int derived_differences(sqlite3 *db)
{
	assert_int_equal(db_register_functions(db), 0);
	int bad = 0;
	for (size_t i = 0; i < sizeof(derived_live) / sizeof(derived_live[0]); i++) {
		for (int dir = 0; dir < 2; dir++) {
			char *sql = sqlite3_mprintf("SELECT count(*), quote(group_concat(x, ' / '))"
						    " FROM (SELECT * FROM (SELECT * FROM (%s) EXCEPT"
						    " SELECT * FROM (%s)) LIMIT 1) AS t,"
						    " (SELECT 'row' AS x)",
						    dir ? derived_checks[i][1] : derived_live[i],
						    dir ? derived_live[i] : derived_checks[i][1]);
			sqlite3_stmt *st;
			if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
				fail_msg("%s: %s", derived_checks[i][0], sqlite3_errmsg(db));
			assert_int_equal(sqlite3_step(st), SQLITE_ROW);
			int n = sqlite3_column_int(st, 0);
			if (n)
				printf("# %s: a %s row differs\n", derived_checks[i][0],
				       dir ? "recomputed" : "live");
			bad += n;
			sqlite3_finalize(st);
			sqlite3_free(sql);
		}
	}
	return bad;
}

/* Hostile values in every derived column: NUL, invalid UTF-8, escapes, values past
 * the cut, nulls. */
static void fill_hostile(struct eventstore *es)
{
	int64_t t = 1796000000000000;
	const char *sid = "c000000000000001";
	char longv[3000];
	for (size_t i = 0; i < sizeof(longv); i++)
		longv[i] = (char)(1 + i % 250);
	struct mxb_event *e = ev("connect", sid, t);
	mxb_event_str(e, "dst_ip", "127.0.0.1");
	mxb_event_int(e, "dst_port", 25);
	eventstore_submit(es, e);
	e = ev("helo", sid, t + 1);
	mxb_event_str(e, "verb", "HELO");
	mxb_event_strn(e, "name", longv, sizeof(longv));
	eventstore_submit(es, e);
	e = ev("tls", sid, t + 2);
	mxb_event_str(e, "mode", "starttls");
	mxb_event_strn(e, "version", "TLS\0v1", 6);
	mxb_event_str(e, "cipher", "x");
	mxb_event_int(e, "bits", 0);
	mxb_event_null(e, "sni");
	eventstore_submit(es, e);
	e = ev("auth", sid, t + 3);
	mxb_event_str(e, "mechanism", "PLAIN");
	mxb_event_strn(e, "username", "ro\xffot\x01", 6);
	mxb_event_strn(e, "password", longv, sizeof(longv));
	mxb_event_strn(e, "authzid", "a\0b", 3);
	mxb_event_bool(e, "success", true);
	mxb_event_str(e, "result", "ok");
	eventstore_submit(es, e);
	e = ev("mail", sid, t + 4);
	mxb_event_strn(e, "sender", "\xc3\xa9\xe2\x82@x", 6);
	mxb_event_str(e, "params", "SIZE=1");
	mxb_event_int(e, "size", 1);
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	eventstore_submit(es, e);
	e = ev("rcpt", sid, t + 5);
	mxb_event_strn(e, "recipient", "v\"i\\c\nt\xfe@x", 10);
	mxb_event_str(e, "params", "");
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	mxb_event_bool(e, "relay", false);
	eventstore_submit(es, e);
	e = ev("vrfy", sid, t + 6);
	mxb_event_str(e, "verb", "EXPN");
	mxb_event_strn(e, "argument", longv, sizeof(longv));
	mxb_event_int(e, "reply", 502);
	eventstore_submit(es, e);
	e = ev("message", sid, t + 7);
	mxb_event_str(e, "queue_id", "ABC");
	mxb_event_str(e, "spool", "1.M1P1QABC.h");
	mxb_event_str(e, "sha256", "ff");
	mxb_event_int(e, "size", 3);
	mxb_event_strn(e, "sender", "s\0x", 3);
	const char *rc[] = {"a\xff@x", "b\"@x", "c@\x01"};
	mxb_event_str_array(e, "recipients", rc, 3);
	mxb_event_str(e, "method", "BDAT");
	mxb_event_strn(e, "auth_user", "ro\xffot\x01", 6);
	mxb_event_bool(e, "tls", false);
	eventstore_submit(es, e);
	e = ev("disconnect", sid, t + 8);
	mxb_event_strn(e, "reason", "quit\xff", 5);
	mxb_event_int(e, "duration_ms", 8);
	mxb_event_str(e, "state", "idle");
	mxb_event_int(e, "commands", 7);
	mxb_event_int(e, "errors", 0);
	mxb_event_int(e, "messages", 1);
	eventstore_submit(es, e);
	/* A message recovered at start (no session). */
	e = mxb_event_new("message_recovered");
	mxb_event_str(e, "queue_id", "DEF");
	mxb_event_str(e, "spool", "1.M2P1QDEF.h");
	mxb_event_str(e, "sha256", "ee");
	mxb_event_int(e, "size", 9);
	mxb_event_str(e, "captured_ts", "2026-11-27T06:52:43.123456Z");
	mxb_event_stamp(e, t + 9, "", "198.51.100.4", 0, "");
	eventstore_submit(es, e);
}

static void test_derived_match_contract(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, p.jsonl, NULL);
	assert_non_null(es);
	submit_session(es, "0123456789abcdef", 1700000000000000);
	fill_bruteforce(es);
	fill_hostile(es);
	assert_true(eventstore_flush(es));
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(derived_differences(db), 0);
	/* Something to compare: every table has rows, the long values were cut. */
	assert_true(q_int(db, "SELECT count(*) FROM auth_attempts") >= 10);
	assert_true(q_int(db, "SELECT count(*) FROM probes") >= 5);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 3);
	assert_int_equal(q_int(db, "SELECT max(length(CAST(password AS BLOB))) <= 2048"
				   " FROM auth_attempts"), 1);
	assert_int_equal(q_int(db, "SELECT ts_us FROM messages WHERE queue_id = 'DEF'"),
			 1795762363123456);
	/* The checker can fail: a changed derived value is found. */
	assert_int_equal(sqlite3_exec(db, "UPDATE auth_attempts SET password = 'x' WHERE id = 1",
				      NULL, NULL, NULL), SQLITE_OK);
	assert_true(derived_differences(db) > 0);
	sqlite3_close(db);
	eventstore_close(&es);
	rm_paths(&p);
}

/* The JSON-lines log under a budget: when the file would pass half of it, it becomes
 * <log>.1 (replacing the older one), so the two never hold more than the budget; every
 * event is in the database all the same. */
static void test_log_budget(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, p.jsonl, NULL);
	assert_non_null(es);
	const uint64_t budget = 64 * 1024;
	eventstore_set_log_budget(es, budget);
	char old[160];
	snprintf(old, sizeof(old), "%s.1", p.jsonl);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 100; i++)
			eventstore_submit(es, ev("offence", "0000000000000009", 0));
		assert_true(eventstore_flush(es));
		struct stat a, b;
		assert_int_equal(stat(p.jsonl, &a), 0);
		uint64_t total = (uint64_t)a.st_size + (stat(old, &b) == 0 ? (uint64_t)b.st_size : 0);
		if (total > budget)
			fail_msg("round %d: the log holds %llu bytes, budget %llu", round,
				 (unsigned long long)total, (unsigned long long)budget);
	}
	assert_int_equal(access(old, F_OK), 0);
	/* Reopen on request: after a rename (logrotate), a new file at the path. */
	char moved[160];
	snprintf(moved, sizeof(moved), "%s.moved", p.jsonl);
	assert_int_equal(rename(p.jsonl, moved), 0);
	eventstore_reopen_log(es);
	eventstore_submit(es, ev("offence", "0000000000000009", 0));
	assert_true(eventstore_flush(es));
	struct stat a;
	assert_int_equal(stat(p.jsonl, &a), 0);
	assert_true(a.st_size > 0);
	eventstore_close(&es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(p.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 2001);
	sqlite3_close(db);
	rm_paths(&p);
}

/* Numbered durable saves: only the first save of a password counts, done catches up
 * after the commit, and the notify hook fires on the writer's progress. */
static atomic_int notified;
static void count_notify(void *ctx)
{
	(void)ctx;
	atomic_fetch_add(&notified, 1);
}

static void test_durable_numbers(void **state)
{
	(void)state;
	struct paths p;
	make_paths(&p);
	char *err = NULL;
	struct eventstore *es = eventstore_open(p.db, NULL, &err);
	assert_non_null(es);
	eventstore_set_durable_notify(es, count_notify, NULL);
	assert_int_equal(eventstore_durable_queued(es), 0);
	save(es, "alice", NULL, 1, 4, 0, 0);          /* a failure: nothing durable */
	eventstore_flush(es);
	assert_int_equal(eventstore_durable_queued(es), 0);
	save(es, "alice", "123456", 4, 4, 1795000000123456, 0); /* the crack */
	assert_int_equal(eventstore_durable_queued(es), 1);
	eventstore_flush(es);
	assert_int_equal(eventstore_durable_done(es), 1);
	assert_true(atomic_load(&notified) >= 1);
	save(es, "alice", "123456", 5, 4, 1795000000123456, 0); /* same pair: on disk */
	assert_int_equal(eventstore_durable_queued(es), 1);
	save(es, "bob", "password", 5, 5, 1795000000999999, 0);
	assert_int_equal(eventstore_durable_queued(es), 2);
	eventstore_set_durable_notify(es, NULL, NULL);
	int before = atomic_load(&notified);
	eventstore_flush(es);
	assert_int_equal(eventstore_durable_done(es), 2);
	assert_int_equal(atomic_load(&notified), before); /* removed: not called */
	eventstore_close(&es);
	assert_int_equal(eventstore_durable_queued(NULL), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_submit_flush_tables),
		cmocka_unit_test(test_threads_batches),
		cmocka_unit_test(test_drops_counted),
		cmocka_unit_test(test_migration),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_close_drains),
		cmocka_unit_test(test_submit_never_blocks),
		cmocka_unit_test(test_accounts_roundtrip),
		cmocka_unit_test(test_accounts_threads),
		cmocka_unit_test(test_bruteforce_tables),
		cmocka_unit_test(test_prefix),
		cmocka_unit_test(test_derived_match_contract),
		cmocka_unit_test(test_log_budget),
		cmocka_unit_test(test_durable_numbers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
