/* test_prune: retention and budget deletions (store/prune.h), the maintenance job
 * (store/maint.h), the start-up reconciliation of spool/new with mxbait.db
 * (store/reconcile.h), against real databases: mxbait.db written by the event store,
 * analysis.db created by the analyzer's own adb_open(). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include "analyze/adb.h"
#include "deceive/deception.h"
#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "store/maint.h"
#include "store/prune.h"
#include "store/reconcile.h"
#include "store/spool.h"

#define DAY_US (86400LL * 1000000)

struct dirs {
	char dir[64], db[128], spool[128];
};

static void make_dirs(struct dirs *d)
{
	snprintf(d->dir, sizeof(d->dir), "/tmp/mxb-prune-XXXXXX");
	assert_non_null(mkdtemp(d->dir));
	snprintf(d->db, sizeof(d->db), "%s/mxbait.db", d->dir);
	snprintf(d->spool, sizeof(d->spool), "%s/spool", d->dir);
}

static void rm_dirs(struct dirs *d)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	assert_int_equal(system(cmd), 0);
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void exec(sqlite3 *db, const char *sql)
{
	char *em = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &em) != SQLITE_OK)
		fail_msg("%s: %s", sql, em);
}

/* A session at time t: connect, a failed AUTH with a password of pwlen bytes, an RCPT,
 * a message (spool file name), disconnect. */
static void session(struct eventstore *es, int n, int64_t t, size_t pwlen)
{
	char sid[24], name[64], user[32];
	snprintf(sid, sizeof(sid), "%016x", 0xa0000 + n);
	snprintf(name, sizeof(name), "%lld.M1P1Q%X.h", (long long)(t / 1000000), 0x1000 + n);
	snprintf(user, sizeof(user), "user%d", n);
	char *pw = malloc(pwlen + 1);
	assert_non_null(pw);
	memset(pw, 'p', pwlen);
	pw[pwlen] = '\0';
	struct mxb_event *e = mxb_event_new("connect");
	mxb_event_stamp(e, t, sid, "192.0.2.9", 1000, "smtp");
	mxb_event_str(e, "dst_ip", "192.0.2.1");
	mxb_event_int(e, "dst_port", 25);
	eventstore_submit(es, e);
	e = mxb_event_new("auth");
	mxb_event_stamp(e, t + 1, sid, "192.0.2.9", 1000, "smtp");
	mxb_event_str(e, "mechanism", "PLAIN");
	mxb_event_str(e, "username", user);
	mxb_event_str(e, "password", pw);
	mxb_event_null(e, "authzid");
	mxb_event_bool(e, "success", false);
	mxb_event_str(e, "result", "fail");
	eventstore_submit(es, e);
	e = mxb_event_new("rcpt");
	mxb_event_stamp(e, t + 2, sid, "192.0.2.9", 1000, "smtp");
	mxb_event_str(e, "recipient", "a@b.example");
	mxb_event_str(e, "params", "");
	mxb_event_bool(e, "accepted", true);
	mxb_event_int(e, "reply", 250);
	mxb_event_bool(e, "relay", false);
	eventstore_submit(es, e);
	e = mxb_event_new("message");
	mxb_event_stamp(e, t + 3, sid, "192.0.2.9", 1000, "smtp");
	mxb_event_str(e, "queue_id", name);
	mxb_event_str(e, "spool", name);
	mxb_event_str(e, "sha256", "00");
	mxb_event_int(e, "size", 1);
	mxb_event_str(e, "sender", "s@x");
	const char *r[] = {"a@b.example"};
	mxb_event_str_array(e, "recipients", r, 1);
	mxb_event_str(e, "method", "DATA");
	mxb_event_null(e, "auth_user");
	mxb_event_bool(e, "tls", false);
	eventstore_submit(es, e);
	e = mxb_event_new("disconnect");
	mxb_event_stamp(e, t + 4, sid, "192.0.2.9", 1000, "smtp");
	mxb_event_str(e, "reason", "quit");
	mxb_event_int(e, "duration_ms", 1);
	mxb_event_str(e, "state", "idle");
	mxb_event_int(e, "commands", 4);
	mxb_event_int(e, "errors", 0);
	mxb_event_int(e, "messages", 1);
	eventstore_submit(es, e);
	free(pw);
}

/* Retention of mxbait.db: rows older than the cutoff go, table by table; a dry run
 * counts the same and deletes nothing; the accounts stay. */
static void test_db_before(void **state)
{
	struct dirs d;
	make_dirs(&d);
	struct eventstore *es = eventstore_open(d.db, NULL, NULL);
	assert_non_null(es);
	int64_t now = mxb_now_us();
	for (int i = 0; i < 30; i++) /* 10 old, 20 recent sessions */
		session(es, i, i < 10 ? now - 100 * DAY_US + i : now - DAY_US + i, 10);
	struct deception_account a = {"kept", "123456", 3, 3, 1, 0, 0, 0};
	eventstore_save_account(es, &a);
	assert_true(eventstore_flush(es));
	eventstore_close(&es);

	sqlite3 *db;
	char *err = NULL;
	assert_int_equal(db_open_existing_rw(d.db, &db, &err), DB_OK);
	struct prune_counts c = {0};
	assert_int_equal(prune_db_before(db, now - 90 * DAY_US, true, true, &c, &err), 0);
	assert_int_equal(c.events, 50);
	assert_int_equal(c.auth_attempts, 10);
	assert_int_equal(c.probes, 10);
	assert_int_equal(c.sessions, 10);
	assert_int_equal(c.messages, 10);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 150);
	memset(&c, 0, sizeof(c));
	assert_int_equal(prune_db_before(db, now - 90 * DAY_US, true, false, &c, &err), 0);
	assert_int_equal(c.events, 50);
	assert_int_equal(c.messages, 10);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 100);
	assert_int_equal(q_int(db, "SELECT min(ts_us) >= " "(SELECT max(ts_us) FROM events) - 2"
				   " * 86400000000 FROM events"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM auth_attempts"), 20);
	assert_int_equal(q_int(db, "SELECT count(*) FROM probes"), 20);
	assert_int_equal(q_int(db, "SELECT count(*) FROM sessions"), 20);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 20);
	assert_int_equal(q_int(db, "SELECT count(*) FROM accounts"), 1);
	/* Nothing older left: a second run deletes nothing. */
	memset(&c, 0, sizeof(c));
	assert_int_equal(prune_db_before(db, now - 90 * DAY_US, true, false, &c, &err), 0);
	assert_int_equal(c.events + c.auth_attempts + c.messages + c.sessions, 0);
	/* Without messages: their rows stay (they go with their spool files). */
	memset(&c, 0, sizeof(c));
	assert_int_equal(prune_db_before(db, now, false, false, &c, &err), 0);
	assert_int_equal(c.messages, 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 20);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM pragma_integrity_check"
				   " WHERE integrity_check != 'ok'"), 0);
	sqlite3_close(db);
	rm_dirs(&d);
}

/* Budget: the content is brought under the target by deleting the oldest rows first. */
static void test_db_to_size(void **state)
{
	struct dirs d;
	make_dirs(&d);
	struct eventstore *es = eventstore_open(d.db, NULL, NULL);
	assert_non_null(es);
	int64_t t0 = mxb_now_us() - DAY_US;
	for (int i = 0; i < 400; i++)
		session(es, i, t0 + i * 1000, 900); /* ~1 KB passwords */
	assert_true(eventstore_flush(es));
	eventstore_close(&es);
	sqlite3 *db;
	char *err = NULL;
	assert_int_equal(db_open_existing_rw(d.db, &db, &err), DB_OK);
	int64_t before = prune_content_bytes(db);
	assert_true(before > 1024 * 1024);
	struct prune_counts c = {0};
	int64_t target = before / 2;
	assert_int_equal(prune_db_to_size(db, target, &c, &err), 1);
	assert_true(prune_content_bytes(db) <= target);
	assert_true(c.events > 0 && c.auth_attempts > 0);
	/* Oldest first: what is left is the newest, contiguous. */
	assert_int_equal(q_int(db, "SELECT max(id) FROM events"), 2000);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"),
			 2001 - q_int(db, "SELECT min(id) FROM events"));
	assert_int_equal(q_int(db, "SELECT count(*) FROM auth_attempts WHERE username = 'user399'"),
			 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM auth_attempts WHERE username = 'user0'"),
			 0);
	/* A bounded run stops after its steps and says there is more (the writer goes on
	 * after its next batch). */
	memset(&c, 0, sizeof(c));
	int64_t left = q_int(db, "SELECT count(*) FROM events");
	assert_int_equal(prune_db_to_size_steps(db, 1, 1, &c, &err), 2);
	assert_true(c.events > 0 && c.events <= left && c.events <= PRUNE_CHUNK);
	/* messages are not pruned for space: the target cannot be met by them alone. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 400);
	memset(&c, 0, sizeof(c));
	assert_int_equal(prune_db_to_size(db, 1, &c, &err), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 400);
	/* The freed pages go back to the filesystem (auto_vacuum=INCREMENTAL). */
	struct stat st0, st1;
	assert_int_equal(stat(d.db, &st0), 0);
	exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_true(prune_shrink(db, d.db, 0) > 0);
	exec(db, "PRAGMA wal_checkpoint(TRUNCATE)");
	assert_int_equal(stat(d.db, &st1), 0);
	assert_true(st1.st_size < st0.st_size / 2);
	sqlite3_close(db);
	rm_dirs(&d);
}

static void budget_marks(void **state)
{
	struct prune_marks m;
	prune_budget_marks(1 << 20, &m);
	assert_int_equal(m.wal, 64 * 1024);
	assert_true(m.trigger + 4 * m.wal + 64 * 1024 <= 1 << 20);
	assert_true(m.target < m.trigger);
	prune_budget_marks(1ULL << 30, &m);
	assert_int_equal(m.wal, 4 * 1024 * 1024);
	assert_true(m.trigger > (1ULL << 30) / 100 * 98);
}

/* analysis.db with the analyzer's own schema: messages analysed before the cutoff go
 * with their rows in every table that has a message column; spool_done stays unless
 * asked by name; the budget deletes the oldest. */
static void fill_adb(sqlite3 *a, int n, int64_t old_before, size_t text)
{
	char *body = malloc(text + 1);
	assert_non_null(body);
	memset(body, 'w', text);
	body[text] = '\0';
	for (int i = 1; i <= n; i++) {
		char sql[512];
		snprintf(sql, sizeof(sql),
			 "INSERT INTO messages(id, sha256, source, analyzed_at) VALUES(%d, 'h%d',"
			 " 'f%d', %lld); INSERT INTO parts(message, idx) VALUES(%d, 0);"
			 " INSERT INTO links(message, idx, url) VALUES(%d, 0, 'http://x/%d');"
			 " INSERT INTO findings(message, idx, kind) VALUES(%d, 0, 'k');"
			 " INSERT INTO spool_done VALUES('f%d', %d, 0);",
			 i, i, i, (long long)(i <= old_before ? 1000 : 4000000000LL), i, i, i, i, i,
			 i);
		exec(a, sql);
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(a, "INSERT INTO message_text(rowid, subject, body)"
						    " VALUES(?1, 's', ?2)", -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_int(st, 1, i);
		sqlite3_bind_text(st, 2, body, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
	}
	free(body);
}

static void test_adb(void **state)
{
	struct dirs d;
	make_dirs(&d);
	char *err = NULL;
	struct adb *adb = adb_open(d.dir, &err);
	if (!adb)
		fail_msg("%s", err);
	sqlite3 *a = adb_handle(adb);
	fill_adb(a, 50, 20, 100);
	struct prune_counts c = {0};
	/* analyzed_at 1000 s (1970) is old, 4e9 s (2096) is not. */
	int64_t cutoff = 2000000000LL * 1000000;
	assert_int_equal(prune_adb_before(a, cutoff, true, &c, &err), 0);
	assert_int_equal(c.analysis_messages, 20);
	assert_int_equal(q_int(a, "SELECT count(*) FROM messages"), 50);
	memset(&c, 0, sizeof(c));
	assert_int_equal(prune_adb_before(a, cutoff, false, &c, &err), 0);
	assert_int_equal(c.analysis_messages, 20);
	assert_int_equal(q_int(a, "SELECT count(*) FROM messages"), 30);
	assert_int_equal(q_int(a, "SELECT min(id) FROM messages"), 21);
	assert_int_equal(q_int(a, "SELECT count(*) FROM parts"), 30);
	assert_int_equal(q_int(a, "SELECT count(*) FROM links"), 30);
	assert_int_equal(q_int(a, "SELECT count(*) FROM findings"), 30);
	assert_int_equal(q_int(a, "SELECT count(*) FROM message_text"), 30);
	assert_int_equal(q_int(a, "SELECT count(*) FROM message_text WHERE message_text MATCH"
				   " 'wwww*'"), 30);
	/* spool_done stays: the analyzer must not read those files again. */
	assert_int_equal(q_int(a, "SELECT count(*) FROM spool_done"), 50);
	assert_int_equal(prune_adb_spool_done(a, "f3"), 0);
	assert_int_equal(q_int(a, "SELECT count(*) FROM spool_done"), 49);
	/* A table a later schema adds with a message column is pruned too. */
	exec(a, "CREATE TABLE later(message INTEGER, x); INSERT INTO later VALUES(21, 1),"
		" (50, 2)");
	memset(&c, 0, sizeof(c));
	int64_t live = prune_content_bytes(a);
	assert_true(live > 0);
	fill_adb(a, 0, 0, 0);
	/* An unreachable target: everything prunable goes, and it says so (0). */
	assert_int_equal(prune_adb_to_size(a, d.dir, 1, 0, &c, &err), 0);
	assert_int_equal(q_int(a, "SELECT count(*) FROM messages"), 0);
	assert_int_equal(q_int(a, "SELECT count(*) FROM later"), 0);
	adb_close(&adb);
	rm_dirs(&d);
}

/* Reconciliation: spool/new files without a row get one, with a message_recovered
 * event; the ones with a row are left alone; the client address is taken from the end
 * of our Received line only. */
static void put_file(const char *dir, const char *name, const char *text, int64_t mtime_s)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	struct timeval tv[2] = {{mtime_s, 250000}, {mtime_s, 250000}};
	assert_int_equal(utimes(p, tv), 0);
}

static void test_reconcile(void **state)
{
	struct dirs d;
	make_dirs(&d);
	char jsonl[160], newdir[160];
	snprintf(jsonl, sizeof(jsonl), "%s/events.jsonl", d.dir);
	struct spool *sp = spool_open(d.spool, 0, "h", NULL, NULL);
	assert_non_null(sp);
	spool_close(&sp);
	snprintf(newdir, sizeof(newdir), "%s/new", d.spool);
	struct eventstore *es = eventstore_open(d.db, jsonl, NULL);
	assert_non_null(es);
	int64_t t = 1790000000;
	session(es, 1, t * 1000000, 4); /* a row for 1790000000.M1P1Q1001.h */
	assert_true(eventstore_flush(es));
	put_file(newdir, "1790000000.M1P1Q1001.h", "indexed already\r\n", t);
	put_file(newdir, "1790000001.M123456P77Q2DC1A11A199.mail.example.test",
		 "Received: from evil (x [1.2.3.4]) (unknown [IPv6:2001:db8::7])\r\n"
		 "\tby mail.example.test (Postfix) with ESMTP id 2DC1A11A199\r\n\r\nbody\r\n",
		 t + 1);
	put_file(newdir, "not-ours", "Subject: appended\r\n\r\nx\r\n", t + 2);
	put_file(newdir, "1790000003.M1P1QBAD.h", "Received: from x (y [not an ip])\r\n", t + 3);
	char *err = NULL;
	assert_int_equal(store_reconcile(d.db, d.spool, es, &err), 3);
	assert_null(err);
	/* A second run finds nothing to do. */
	assert_int_equal(store_reconcile(d.db, d.spool, es, &err), 0);
	eventstore_close(&es);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 4);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE event ="
				   " 'message_recovered'"), 3);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages WHERE queue_id = '2DC1A11A199'"
				   " AND src_ip = '2001:db8::7' AND session IS NULL AND size = 131"
				   " AND ts_us = 1790000001250000 AND recipients = '[]'"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages WHERE spool = 'not-ours'"
				   " AND queue_id = '' AND src_ip IS NULL"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages WHERE queue_id = 'BAD'"
				   " AND src_ip IS NULL"), 1);
	/* The event carries the file's SHA-256 and capture time. */
	assert_int_equal(q_int(db, "SELECT count(*) FROM events WHERE event = 'message_recovered'"
				   " AND json_extract(json, '$.captured_ts') ="
				   " '2026-09-21T14:13:21.250000Z' AND"
				   " length(json_extract(json, '$.sha256')) = 64 AND session = ''"),
			 1);
	sqlite3_close(db);
	/* Nothing to reconcile without a spool. */
	char nodir[200];
	snprintf(nodir, sizeof(nodir), "%s/none", d.dir);
	es = eventstore_open(d.db, NULL, NULL);
	assert_int_equal(store_reconcile(d.db, nodir, es, &err), 0);
	eventstore_close(&es);
	rm_dirs(&d);
}

/* The maintenance job: retention at its first pass (spool files, their spool_done
 * rows, old rows of both databases) and the analysis budget. */
static void test_maint(void **state)
{
	struct dirs d;
	make_dirs(&d);
	struct spool *sp = spool_open(d.spool, 0, "h", NULL, NULL);
	assert_non_null(sp);
	spool_close(&sp);
	struct eventstore *es = eventstore_open(d.db, NULL, NULL);
	assert_non_null(es);
	int64_t now = mxb_now_us();
	session(es, 1, now - 100 * DAY_US, 4);
	session(es, 2, now - 1000000, 4);
	assert_true(eventstore_flush(es));
	eventstore_close(&es);
	char newdir[160];
	snprintf(newdir, sizeof(newdir), "%s/new", d.spool);
	put_file(newdir, "old", "x", (now - 100 * DAY_US) / 1000000);
	put_file(newdir, "new", "y", now / 1000000);
	char *err = NULL;
	struct adb *adb = adb_open(d.dir, &err);
	assert_non_null(adb);
	exec(adb_handle(adb), "INSERT INTO spool_done VALUES('old', 1, 0),('new', 2, 0)");
	fill_adb(adb_handle(adb), 40, 0, 20000); /* recent, ~800 KB of text */
	adb_close(&adb);
	struct store_maint_config cfg = {
		.data_dir = d.dir, .analysis_budget = 1024 * 1024, .retention_ms = 90ULL * 86400000,
	};
	struct store_maint *m = store_maint_start(&cfg, &err);
	if (!m)
		fail_msg("%s", err);
	store_maint_run_now(m);
	store_maint_stop(&m);
	char p[200];
	snprintf(p, sizeof(p), "%s/old", newdir);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/new", newdir);
	assert_int_equal(access(p, F_OK), 0);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(d.db, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM messages"), 1);
	assert_int_equal(q_int(db, "SELECT count(*) FROM events"), 5);
	sqlite3_close(db);
	char ap[200];
	snprintf(ap, sizeof(ap), "%s/analysis.db", d.dir);
	assert_int_equal(sqlite3_open(ap, &db), SQLITE_OK);
	assert_int_equal(q_int(db, "SELECT count(*) FROM spool_done WHERE name = 'old'"), 0);
	assert_int_equal(q_int(db, "SELECT count(*) FROM spool_done WHERE name = 'new'"), 1);
	/* The budget: content under its trigger, the newest messages kept. */
	struct prune_marks mk;
	prune_budget_marks(1024 * 1024, &mk);
	assert_true(prune_content_bytes(db) <= (int64_t)mk.trigger);
	int64_t left = q_int(db, "SELECT count(*) FROM messages");
	assert_true(left > 0 && left < 40);
	assert_int_equal(q_int(db, "SELECT max(id) FROM messages"), 40);
	sqlite3_close(db);
	rm_dirs(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_db_before),
		cmocka_unit_test(test_db_to_size),
		cmocka_unit_test(budget_marks),
		cmocka_unit_test(test_adb),
		cmocka_unit_test(test_reconcile),
		cmocka_unit_test(test_maint),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
