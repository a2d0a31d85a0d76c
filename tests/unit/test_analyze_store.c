/*
 * test_analyze_store: analysis.db rows, idempotent re-analysis (byte-identical table
 * dumps), FTS5 search, campaigns (exact duplicate, personalised and reworded variants
 * join the representative's campaign; an unrelated mail and a chain of drifting
 * variants do not merge), and the analyzer process mode over spool/new.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "analyze/adb.h"
#include "analyze/analyze.h"
#include "analyze/analyzer.h"
#include "util/buf.h"

static char g_dir[256];

static int setup(void **state)
{
	snprintf(g_dir, sizeof(g_dir), "/tmp/mxb-test-adb-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char body_base[] =
	"Dear %s, your mailbox storage is almost full and will be suspended within 24 hours "
	"unless you verify your account now. Our security team detected unusual sign in "
	"activity on your profile from a new device. To keep receiving messages please confirm "
	"your identity using the secure portal below and update your password. Failure to "
	"complete this verification will result in permanent loss of all stored mail, contacts "
	"and documents. Thank you for your prompt attention to this important matter. Ref %d.";

static char *mail(const char *to, const char *name, const char *body_fmt, int ref,
		  const char *url)
{
	char body[4096], *m = NULL;
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	snprintf(body, sizeof(body), body_fmt, name, ref); /* test-local constant formats */
#pragma GCC diagnostic pop
	if (asprintf(&m,
		     "From: IT Desk <it@helpdesk.example.net>\r\nTo: %s <%s>\r\n"
		     "Subject: Mailbox notice %d\r\nMessage-ID: <%d@helpdesk.example.net>\r\n"
		     "Content-Type: text/plain\r\n\r\n%s\r\n%s\r\n",
		     name, to, ref, ref, body, url) < 0)
		return NULL;
	return m;
}

static int64_t store(struct adb *db, const char *m, int64_t *camp)
{
	struct analysis *a = analyze_message(m, strlen(m), NULL, NULL);
	assert_non_null(a);
	int64_t id = adb_store_c(db, a, "test", camp);
	analysis_free(&a);
	assert_true(id > 0);
	return id;
}

static void dump(sqlite3 *db, struct buf *out)
{
	static const char *const q[] = {
		"SELECT * FROM messages ORDER BY id", "SELECT * FROM parts ORDER BY 1,2",
		"SELECT * FROM links ORDER BY 1,2", "SELECT * FROM recipients ORDER BY 1,2",
		"SELECT * FROM attachments ORDER BY 1,2", "SELECT * FROM findings ORDER BY 1,2",
		"SELECT * FROM campaigns ORDER BY id", "SELECT * FROM campaign_lsh ORDER BY 1,2,3",
		"SELECT * FROM campaign_keys ORDER BY 1,2",
		"SELECT rowid, subject, body FROM message_text ORDER BY rowid"};
	for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, q[i], -1, &st, NULL), SQLITE_OK);
		while (sqlite3_step(st) == SQLITE_ROW)
			for (int c = 0; c < sqlite3_column_count(st); c++) {
				const void *b = sqlite3_column_blob(st, c);
				buf_append(out, b ? b : "", (size_t)sqlite3_column_bytes(st, c));
				buf_putc(out, '|');
			}
		sqlite3_finalize(st);
		buf_putc(out, '\n');
	}
}

static void test_campaigns_and_idempotence(void **state)
{
	char *err = NULL;
	struct adb *db = adb_open(g_dir, &err);
	assert_non_null(db);
	char *m1 = mail("alice@corp.example", "Alice", body_base, 1001, "http://verify-box.example.com/portal/a1");
	char *m1dup = mail("bob@corp.example", "Bob", body_base, 2002, "http://verify-box.example.com/portal/b2");
	/* reworded: a few words changed, a sentence dropped, another URL (no strong key) */
	char *m3 = mail("carol@other.example", "Carol",
			"Hello %s, your mailbox storage is nearly full and will be suspended within 48 "
			"hours unless you verify your account today. Our security team detected "
			"unusual sign in activity on your profile from a new device. To keep receiving "
			"messages please confirm your identity using the secure portal below and "
			"update your password. Thank you for your prompt attention. Ref %d.",
			3003, "http://other-host.example.org/x");
	char *m4 = mail("dave@corp.example", "Dave",
			"Hi %s, the quarterly invoice for your order is attached; payment terms are "
			"thirty days from the date shown. Contact accounts receivable with any "
			"questions about line items or delivery schedules. Order %d.",
			4004, "http://shop.example.net/orders");
	int64_t c1, c2, c3, c4;
	int64_t id1 = store(db, m1, &c1);
	store(db, m1dup, &c2);
	store(db, m3, &c3);
	store(db, m4, &c4);
	assert_int_equal(c1, c2); /* exact duplicate after normalisation */
	assert_int_equal(c1, c3); /* near duplicate (MinHash) */
	assert_true(c4 != c1);
	struct buf d1, d2;
	buf_init(&d1, 0);
	buf_init(&d2, 0);
	dump(adb_handle(db), &d1);
	/* re-analysis in another order gives the same rows */
	int64_t again;
	store(db, m4, &again);
	assert_int_equal(again, c4);
	assert_int_equal(store(db, m1, &again), id1);
	assert_int_equal(again, c1);
	store(db, m3, NULL);
	store(db, m1dup, NULL);
	dump(adb_handle(db), &d2);
	assert_int_equal(d1.len, d2.len);
	assert_memory_equal(d1.data, d2.data, d1.len);
	/* FTS over subject and text */
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(adb_handle(db),
					    "SELECT count(*) FROM message_text WHERE message_text "
					    "MATCH 'quarterly invoice'", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1);
	sqlite3_finalize(st);
	/* recipients and links are there */
	assert_int_equal(sqlite3_prepare_v2(adb_handle(db),
					    "SELECT count(*) FROM recipients WHERE domain='corp.example'",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3);
	sqlite3_finalize(st);
	buf_free(&d1);
	buf_free(&d2);
	free(m1);
	free(m1dup);
	free(m3);
	free(m4);
	adb_close(&db);
}

static const char long_text[] =
	"our records show that the shipment addressed to you could not be delivered because "
	"the customs declaration was incomplete and a handling fee remains unpaid at the "
	"regional depot where parcels wait for seven days before they return to the sender "
	"so please review the declaration form complete the missing fields and settle the "
	"outstanding amount through our payment page after which the courier schedules a "
	"new delivery window and sends a tracking number by text message to the phone "
	"listed on your profile while any questions about duties or taxes go to the "
	"support desk open every weekday morning";

static char *plain(const char *subject, const char *text, const char *url)
{
	char *m = NULL;
	if (asprintf(&m, "From: Courier <noreply@parcel.example.net>\r\nSubject: %s\r\n"
			 "Content-Type: text/plain\r\n\r\n%s\r\n%s\r\n", subject, text, url) < 0)
		return NULL;
	return m;
}

/* Rewording (every fifth word replaced: most 3-shingles broken, most words kept)
 * still joins through the word-set signature; and a message that carries campaign A's
 * spammed link with campaign B's text merges B into A, through the representatives,
 * with the reason recorded and B's id still answering. */
static void test_rewording_and_merge(void **state)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/merge", g_dir);
	mkdir(dir, 0700);
	struct adb *db = adb_open(dir, NULL);
	assert_non_null(db);
	/* the reworded copy */
	char reworded[2048];
	size_t o = 0;
	int w = 0;
	for (const char *p = long_text; *p;) {
		size_t n = strcspn(p, " ");
		if (++w % 5 == 0)
			o += (size_t)snprintf(reworded + o, sizeof(reworded) - o, "zq%cword ",
					      'a' + w % 26);
		else
			o += (size_t)snprintf(reworded + o, sizeof(reworded) - o, "%.*s ", (int)n, p);
		p += n;
		while (*p == ' ')
			p++;
	}
	char *a1 = plain("Parcel held", long_text, "http://parcel-fee.example.com/pay/771");
	char *r = plain("Parcel held again", reworded, "");
	char *b1 = plain("Invoice", "Hi, the quarterly invoice for your order is attached; payment "
			 "terms are thirty days from the date shown. Contact accounts receivable "
			 "with any questions about line items or delivery schedules.",
			 "http://invoices-b.example.org/view/1");
	char *m = plain("Invoice", "Hi, the quarterly invoice for your order is attached; payment "
			"terms are thirty days from the date shown. Contact accounts receivable "
			"with any questions about line items or delivery schedules. Thanks.",
			"http://parcel-fee.example.com/pay/772");
	int64_t ca, cr, cb, cm;
	store(db, a1, &ca);
	int64_t rid = store(db, r, &cr);
	int64_t bid = store(db, b1, &cb);
	store(db, m, &cm);
	sqlite3 *h = adb_handle(db);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT minhash, minhash_w FROM messages WHERE id IN"
					    " (1, ?1) ORDER BY id", -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, rid);
	uint64_t s3[2][AN_MINHASH], sw[2][AN_MINHASH];
	for (int k = 0; k < 2; k++) {
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		memcpy(s3[k], sqlite3_column_blob(st, 0), sizeof(s3[k]));
		memcpy(sw[k], sqlite3_column_blob(st, 1), sizeof(sw[k]));
	}
	sqlite3_finalize(st);
	/* the reworded copy is below the shingle threshold: the word set carried it */
	assert_true(an_minhash_similarity(s3[0], s3[1]) < 0.3);
	assert_true(an_minhash_similarity(sw[0], sw[1]) >= 0.55);
	assert_int_equal(cr, ca);
	assert_true(cb != ca);
	assert_int_equal(cm, ca); /* A is older: B merges into it */
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT campaign_id FROM messages WHERE id=?1", -1,
					    &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, bid);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), ca);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT campaign, into_campaign, reason FROM"
					    " campaign_merges", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), cb);
	assert_int_equal(sqlite3_column_int64(st, 1), ca);
	assert_non_null(strstr((const char *)sqlite3_column_text(st, 2), "content"));
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(h, "SELECT merged_into FROM campaigns WHERE id=?1", -1,
					    &st, NULL), SQLITE_OK);
	sqlite3_bind_int64(st, 1, cb);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), ca);
	sqlite3_finalize(st);
	/* a later copy of B's text alone now lands in A (B's rep left the index) */
	char *b2 = plain("Invoice", "Hi, the quarterly invoice for your order is attached; payment "
			 "terms are thirty days from the date shown. Contact accounts receivable "
			 "with any questions about line items or delivery schedules!", "");
	int64_t cb2;
	store(db, b2, &cb2);
	assert_int_equal(cb2, ca);
	free(a1);
	free(r);
	free(b1);
	free(m);
	free(b2);
	adb_close(&db);
}

struct opener {
	char dir[300];
	int ok;
};

static void *open_one(void *arg)
{
	struct opener *o = arg;
	char *err = NULL;
	struct adb *db = adb_open(o->dir, &err);
	o->ok = db != NULL;
	if (!db)
		fprintf(stderr, "adb_open: %s\n", err ? err : "?");
	free(err);
	adb_close(&db);
	return NULL;
}

/* Two analyzers opening a new file at once (serve's child and `analyze --daemon`)
 * both migrate it without running a step twice. */
static void test_concurrent_migration(void **state)
{
	for (int round = 0; round < 20; round++) {
		struct opener o[2];
		pthread_t th[2];
		for (int k = 0; k < 2; k++) {
			snprintf(o[k].dir, sizeof(o[k].dir), "%s/race%d", g_dir, round);
			mkdir(o[k].dir, 0700);
			assert_int_equal(pthread_create(&th[k], NULL, open_one, &o[k]), 0);
		}
		for (int k = 0; k < 2; k++) {
			pthread_join(th[k], NULL);
			assert_true(o[k].ok);
		}
	}
}

/* Variants drifting a little each step: with comparison against the representative
 * (not any member), the far end of the chain does not join the first campaign. */
static void test_no_chaining(void **state)
{
	char dir[300];
	snprintf(dir, sizeof(dir), "%s/chain", g_dir);
	mkdir(dir, 0700);
	struct adb *db = adb_open(dir, NULL);
	assert_non_null(db);
	static const char *const words[] = {
		"alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
		"juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo",
		"sierra", "tango", "uniform", "victor", "whiskey", "xray", "yankee", "zulu"};
	int64_t first = -1, last = -1;
	for (int step = 0; step < 8; step++) {
		struct buf b;
		buf_init(&b, 0);
		buf_puts(&b, "From: x@example.com\r\nSubject: s\r\n\r\n");
		/* a window of 40 words sliding by 8 each step */
		for (int k = 0; k < 40; k++)
			buf_printf(&b, "%s%d ", words[(k + step * 8) % 26], (k + step * 8) / 26 % 7);
		/* digits are dropped by normalisation; make words distinct by suffix letters */
		for (size_t i = 0; i < b.len; i++)
			if (b.data[i] >= '0' && b.data[i] <= '9')
				b.data[i] = (char)('a' + (b.data[i] - '0'));
		int64_t c;
		store(db, b.data, &c);
		if (step == 0)
			first = c;
		last = c;
		buf_free(&b);
	}
	assert_true(first != last);
	adb_close(&db);
}

static void test_analyzer_pass(void **state)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/ad", g_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/ad/spool", g_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/ad/spool/new", g_dir);
	mkdir(path, 0700);
	for (int i = 0; i < 3; i++) {
		char f[600];
		snprintf(f, sizeof(f), "%s/ad/spool/new/1700000000.M%dP1.host", g_dir, i);
		FILE *fp = fopen(f, "w");
		assert_non_null(fp);
		fprintf(fp, "Received: from helo%d.example (rdns [192.0.2.%d]) by mx\r\n"
			    "From: s@example.com\r\nTo: r%d@victims.example\r\nSubject: n%d\r\n\r\n"
			    "go to http://spool%d.example.com/\r\n", i, i + 1, i, i, i);
		fclose(fp);
	}
	char dd[512];
	snprintf(dd, sizeof(dd), "%s/ad", g_dir);
	assert_int_equal(analyzer_pass(dd, NULL), 3);
	assert_int_equal(analyzer_pass(dd, NULL), 0); /* recorded: not again */
	sqlite3 *db = adb_open_ro(dd, NULL);
	assert_non_null(db);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*), min(client_ip), min(helo) FROM messages",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 3);
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "192.0.2.1");
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "helo0.example");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* The envelope comes from the daemon's mxbait.db (messages + sessions) when recorded. */
static void test_envelope_from_daemon_db(void **state)
{
	char dd[512], path[700];
	snprintf(dd, sizeof(dd), "%s/env", g_dir);
	mkdir(dd, 0700);
	snprintf(path, sizeof(path), "%s/spool", dd);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/new", dd);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/mxbait.db", dd);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE sessions(session TEXT PRIMARY KEY, helo TEXT);"
		"CREATE TABLE messages(id INTEGER PRIMARY KEY, session TEXT, spool TEXT, sender TEXT,"
		" recipients TEXT, src_ip TEXT, auth_user TEXT);"
		"INSERT INTO sessions VALUES('S1', 'bot.example');"
		"INSERT INTO messages(session, spool, sender, recipients, src_ip, auth_user) VALUES("
		" 'S1', 'm1.host', 'Bounce@Spammer.example',"
		" '[\"one@leaked.example\",\"two@leaked.example\",\"x\\u0041y@leaked.example\"]',"
		" '198.51.100.7', 'info');", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	snprintf(path, sizeof(path), "%s/spool/new/m1.host", dd);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fputs("From: a@example.com\r\nTo: shown@example.org\r\nSubject: e\r\n\r\nbody\r\n", fp);
	fclose(fp);
	assert_int_equal(analyzer_pass(dd, NULL), 1);
	db = adb_open_ro(dd, NULL);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT analysis_json FROM messages", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_non_null(strstr((const char *)sqlite3_column_text(st, 0),
			       "\"envelope_from\":\"bounce@spammer.example\""));
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
		"SELECT env_from, client_ip, helo, auth_user, (SELECT group_concat(addr || ':' || src)"
		" FROM (SELECT addr, src FROM recipients ORDER BY addr)) FROM messages", -1, &st, NULL),
		SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "bounce@spammer.example");
	assert_string_equal((const char *)sqlite3_column_text(st, 1), "198.51.100.7");
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "bot.example");
	assert_string_equal((const char *)sqlite3_column_text(st, 3), "info");
	assert_string_equal((const char *)sqlite3_column_text(st, 4),
			    "one@leaked.example:1,shown@example.org:2,two@leaked.example:1,"
			    "xay@leaked.example:1");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Migrations: a fresh file is at ADB_SCHEMA_VERSION; a v1 file gains analysis_json and
 * loses its old-style MinHash signatures (v3: not comparable with h1 + k*h2); a file
 * from a newer mxbait is refused with a message. */
static void test_migrations(void **state)
{
	char dd[512], path[700];
	snprintf(dd, sizeof(dd), "%s/mig", g_dir);
	mkdir(dd, 0700);
	snprintf(path, sizeof(path), "%s/analysis.db", dd);
	sqlite3 *db;
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	/* a version-1 file, as the first release wrote it */
	assert_int_equal(sqlite3_exec(db,
		"CREATE TABLE schema_version(version INTEGER NOT NULL);"
		"INSERT INTO schema_version VALUES(1);"
		"CREATE TABLE messages(id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,"
		" minhash BLOB);"
		"CREATE TABLE campaigns(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
		" rep_message INTEGER NOT NULL, rep_minhash BLOB, first_seen INTEGER,"
		" subject TEXT);"
		"CREATE TABLE campaign_lsh(band INTEGER NOT NULL, hash INTEGER NOT NULL,"
		" campaign INTEGER NOT NULL, PRIMARY KEY(band, hash, campaign)) WITHOUT ROWID;"
		"INSERT INTO messages VALUES(1, 'ab', x'0102');"
		"INSERT INTO campaigns VALUES(1, 'Cabababababab', 1, x'0102', 0, 's');"
		"INSERT INTO campaign_lsh VALUES(0, 42, 1);"
		"CREATE TABLE attachments(message INTEGER NOT NULL, part INTEGER NOT NULL,"
		" filename TEXT, declared_type TEXT, detected_type TEXT, size INTEGER, sha256 TEXT,"
		" md5 TEXT, members TEXT, PRIMARY KEY(message, part));"
		"INSERT INTO attachments VALUES(1, 2, 'a.zip', NULL, NULL, 3, 'ff', 'ee', NULL);",
		NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	char *err = NULL;
	struct adb *a = adb_open(dd, &err);
	assert_non_null(a);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(adb_handle(a),
		"SELECT max(version), (SELECT count(*) FROM pragma_table_info('messages')"
		" WHERE name='analysis_json') FROM schema_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), ADB_SCHEMA_VERSION);
	assert_int_equal(sqlite3_column_int(st, 1), 1);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(adb_handle(a),
		"SELECT (SELECT count(*) FROM campaigns WHERE rep_minhash IS NULL),"
		" (SELECT count(*) FROM campaign_lsh), (SELECT count(*) FROM messages"
		" WHERE minhash IS NULL)", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 1); /* the campaign is kept */
	assert_int_equal(sqlite3_column_int(st, 1), 0);
	assert_int_equal(sqlite3_column_int(st, 2), 1);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_exec(adb_handle(a), "INSERT INTO schema_version VALUES(99)",
				      NULL, NULL, NULL), SQLITE_OK);
	/* v4: attachments keyed by position, the old rows kept */
	assert_int_equal(sqlite3_prepare_v2(adb_handle(a), "SELECT idx, part, filename FROM attachments",
					    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int(st, 0), 0);
	assert_int_equal(sqlite3_column_int(st, 1), 2);
	assert_string_equal((const char *)sqlite3_column_text(st, 2), "a.zip");
	sqlite3_finalize(st);
	adb_close(&a);
	a = adb_open(dd, &err);
	assert_null(a);
	assert_non_null(err);
	assert_non_null(strstr(err, "newer"));
	free(err);
}

static volatile sig_atomic_t g_stop;
static char g_run_dir[512];

static void *runner(void *arg)
{
	*(int *)arg = analyzer_run(g_run_dir, &g_stop);
	return NULL;
}

/* The process mode picks up a message that arrives while it runs, and stops on the
 * flag. */
static void test_analyzer_run_new_arrival(void **state)
{
	char path[700];
	snprintf(g_run_dir, sizeof(g_run_dir), "%s/run", g_dir);
	mkdir(g_run_dir, 0700);
	snprintf(path, sizeof(path), "%s/spool", g_run_dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/spool/new", g_run_dir);
	mkdir(path, 0700);
	pthread_t th;
	int rc = -99;
	g_stop = 0;
	assert_int_equal(pthread_create(&th, NULL, runner, &rc), 0);
	usleep(300 * 1000);
	char tmp[700];
	snprintf(tmp, sizeof(tmp), "%s/arrival.tmp", g_run_dir);
	snprintf(path, sizeof(path), "%s/spool/new/arrival.host", g_run_dir);
	FILE *fp = fopen(tmp, "w");
	assert_non_null(fp);
	fputs("From: a@example.com\r\nSubject: late\r\n\r\nhttp://late.example.com/\r\n", fp);
	fclose(fp);
	assert_int_equal(rename(tmp, path), 0); /* as the spool does: tmp -> new */
	int n = 0;
	for (int i = 0; i < 100 && n == 0; i++) {
		usleep(100 * 1000);
		sqlite3 *db = adb_open_ro(g_run_dir, NULL);
		if (!db)
			continue;
		sqlite3_stmt *st;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM spool_done", -1, &st, NULL) ==
		    SQLITE_OK) {
			if (sqlite3_step(st) == SQLITE_ROW)
				n = sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
		}
		sqlite3_close(db);
	}
	g_stop = 1;
	pthread_join(th, NULL);
	assert_int_equal(n, 1);
	assert_int_equal(rc, 0);
}

int main(void)
{
	analyze_global_init();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_campaigns_and_idempotence),
		cmocka_unit_test(test_rewording_and_merge),
		cmocka_unit_test(test_concurrent_migration),
		cmocka_unit_test(test_no_chaining),
		cmocka_unit_test(test_analyzer_pass),
		cmocka_unit_test(test_envelope_from_daemon_db),
		cmocka_unit_test(test_migrations),
		cmocka_unit_test(test_analyzer_run_new_arrival),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
