/* test_cli: run the built `mxbait` binary (argv[1]) against a data directory made here
 * with the real event store and spool: tables, --json validity, escaping of attacker
 * bytes, message display caps, and the error messages and exit codes; creds and
 * attackers over a second data directory of brute-force events (exact figures). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "deceive/deception.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "store/spool.h"

static const char *mxbait;
static char data[64];    /* the data directory */
static char work[64];    /* scratch */
static char qid[24], qid_big[24];
static const char *sid = "0123456789abcdef";

struct run {
	int status;
	char *out;
	size_t out_len;
	char *err;
};

static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	assert_non_null(f);
	struct buf b;
	buf_init(&b, 0);
	char chunk[4096];
	size_t n;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		buf_append(&b, chunk, n);
	fclose(f);
	char *s = buf_steal(&b, len_r);
	if (!s) {
		s = strdup("");
		if (len_r)
			*len_r = 0;
	}
	return s;
}

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* Run mxbait with args (a shell-safe string: our own temp paths only). */
static struct run run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct run run(const char *fmt, ...)
{
	char args[1024], cmd[2048], o[128], e[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	snprintf(o, sizeof(o), "%s/out", work);
	snprintf(e, sizeof(e), "%s/err", work);
	snprintf(cmd, sizeof(cmd), "%s %s >%s 2>%s </dev/null", mxbait, args, o, e);
	int st = system(cmd);
	struct run r;
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	r.out = slurp(o, &r.out_len);
	r.err = slurp(e, NULL);
	/* Whatever the command, no raw attacker escape byte may reach the terminal. */
	assert_null(memchr(r.out, 0x1b, r.out_len));
	assert_null(strchr(r.err, 0x1b));
	return r;
}

static void expect_in(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

/* Evaluate a SQL expression over the JSON text ?1 (json_valid, json_extract...). */
static char *json_q(const char *json, const char *expr)
{
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	char sql[512];
	snprintf(sql, sizeof(sql), "SELECT %s", expr);
	sqlite3_stmt *st;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_text(st, 1, json, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *t = (const char *)sqlite3_column_text(st, 0);
	char *r = strdup(t ? t : "NULL");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return r;
}

static void expect_json(const char *json, const char *expr, const char *want)
{
	char *v = json_q(json, expr);
	if (strcmp(v, want))
		fail_msg("%s = %s, want %s, in:\n%s", expr, v, want, json);
	free(v);
}

static struct mxb_event *ev(const char *name, int64_t ts)
{
	struct mxb_event *e = mxb_event_new(name);
	mxb_event_stamp(e, ts, sid, "192.0.2.7", 40000, "smtp");
	return e;
}

static void on_done(void *arg, const struct spool_result *r)
{
	*(struct spool_result *)arg = *r;
}

/* Capture a message through the real spool of data dir d; returns its result. */
static struct spool_result capture_in(const char *d, const char *text, size_t len)
{
	char dir[128];
	snprintf(dir, sizeof(dir), "%s/spool", d);
	struct spool *sp = spool_open(dir, 0, "test.example", NULL, NULL);
	assert_non_null(sp);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, text, len), 0);
	struct spool_result r;
	memset(&r, 0, sizeof(r));
	spool_msg_commit(&m, on_done, &r);
	spool_close(&sp);
	assert_true(r.ok);
	return r;
}

static struct spool_result capture(const char *text, size_t len)
{
	return capture_in(data, text, len);
}

static void message_event(struct eventstore *es, const struct spool_result *r, int64_t ts,
			  const char *sender)
{
	struct mxb_event *e = ev("message", ts);
	mxb_event_str(e, "queue_id", r->queue_id);
	mxb_event_str(e, "spool", r->name);
	mxb_event_str(e, "sha256", r->sha256);
	mxb_event_int(e, "size", (int64_t)r->size);
	mxb_event_str(e, "sender", sender);
	const char *rc[] = {"alice@local.example", "bob@local.example"};
	mxb_event_str_array(e, "recipients", rc, 2);
	mxb_event_str(e, "method", "DATA");
	mxb_event_null(e, "auth_user");
	mxb_event_bool(e, "tls", false);
	eventstore_submit(es, e);
}

static int setup(void **state)
{
	snprintf(data, sizeof(data), "/tmp/mxb-cli-XXXXXX");
	assert_non_null(mkdtemp(data));
	snprintf(work, sizeof(work), "/tmp/mxb-cliw-XXXXXX");
	assert_non_null(mkdtemp(work));
	char db[128], jl[128];
	snprintf(db, sizeof(db), "%s/mxbait.db", data);
	snprintf(jl, sizeof(jl), "%s/events.jsonl", data);
	struct eventstore *es = eventstore_open(db, jl, NULL);
	assert_non_null(es);
	int64_t t0 = 1795000000000000; /* 2026-11-18 */
	struct mxb_event *e = ev("connect", t0);
	mxb_event_str(e, "dst_ip", "127.0.0.1");
	mxb_event_int(e, "dst_port", 2525);
	eventstore_submit(es, e);
	e = ev("helo", t0 + 1000);
	mxb_event_str(e, "verb", "EHLO");
	mxb_event_str(e, "name", "evil\x1b]0;owned\x07\xff");
	eventstore_submit(es, e);
	for (int ok = 0; ok < 2; ok++) {
		e = ev("auth", t0 + 2000 + ok);
		mxb_event_str(e, "mechanism", "LOGIN");
		mxb_event_str(e, "username", ok ? "admin" : "root");
		mxb_event_str(e, "password", "hunter2");
		mxb_event_null(e, "authzid");
		mxb_event_bool(e, "success", ok);
		mxb_event_str(e, "result", ok ? "ok" : "fail");
		eventstore_submit(es, e);
	}
	for (int i = 0; i < 2; i++) {
		e = ev("rcpt", t0 + 3000 + i);
		mxb_event_str(e, "recipient", i ? "x@foreign.example" : "alice@local.example");
		mxb_event_str(e, "params", "");
		mxb_event_bool(e, "accepted", !i);
		mxb_event_int(e, "reply", i ? 454 : 250);
		mxb_event_bool(e, "relay", i);
		eventstore_submit(es, e);
	}
	const char msg[] = "Received: from evil\r\n"
			   "Subject: Hello \x1b[2J world\r\n"
			   "\tfolded part\r\n"
			   "From: a@b.example\r\n"
			   "To: \"Bob \x1b[31mRed\" <bob@victim.example>\r\n"
			   "\r\n"
			   "Body line one \x1b[31mred\r\n"
			   "bell \x07 and \xc3\xa9\r\n"
			   "pay at hxxp://pay[.]evil.example/inv?id=1\x1b[2J now\r\n";
	struct spool_result r = capture(msg, sizeof(msg) - 1);
	snprintf(qid, sizeof(qid), "%s", r.queue_id);
	message_event(es, &r, t0 + 4000, "spammer@evil.example");
	/* A big message: 200 KB with a 1000-byte line. */
	struct buf big;
	buf_init(&big, 0);
	buf_puts(&big, "Subject: big\r\n\r\n");
	for (int i = 0; i < 1000; i++)
		buf_putc(&big, 'L');
	buf_puts(&big, "\r\n");
	for (int i = 0; i < 4000; i++) /* links for show's row cap */
		buf_printf(&big, "http://l%d.example.com/\r\n", i);
	while (big.len < 200 * 1024)
		buf_puts(&big, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n");
	buf_puts(&big, "THE-END\r\n");
	r = capture(big.data, big.len);
	buf_free(&big);
	snprintf(qid_big, sizeof(qid_big), "%s", r.queue_id);
	message_event(es, &r, t0 + 5000, "");
	e = ev("offence", t0 + 6000);
	mxb_event_str(e, "kind", "bare_lf");
	mxb_event_str(e, "detail", "DATA");
	eventstore_submit(es, e);
	e = ev("disconnect", t0 + 7000);
	mxb_event_str(e, "reason", "quit");
	mxb_event_int(e, "duration_ms", 1234);
	mxb_event_str(e, "state", "idle");
	mxb_event_int(e, "commands", 8);
	mxb_event_int(e, "errors", 1);
	mxb_event_int(e, "messages", 2);
	eventstore_submit(es, e);
	/* A second session from another address, still open. */
	e = mxb_event_new("connect");
	mxb_event_stamp(e, t0 + 8000, "fedcba9876543210", "2001:db8::1", 50000, "submission");
	mxb_event_str(e, "dst_ip", "::1");
	mxb_event_int(e, "dst_port", 2587);
	eventstore_submit(es, e);
	eventstore_close(&es);
	return 0;
}

static int teardown(void **state)
{
	char cmd[256];
	if (getenv("MXB_KEEP_TEST_DATA")) { /* for a look at the output by hand */
		fprintf(stderr, "# data dir kept: %s\n", data);
		return 0;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", data, work);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_stats(void **state)
{
	struct run r = run("stats -d %s", data);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "sessions");
	expect_in(r.out, "distinct IPs");
	expect_in(r.out, "bare_lf");
	expect_in(r.out, "quit");
	expect_in(r.out, "2026-11-");
	run_free(&r);
	r = run("stats --json -d %s", data);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_extract(?1, '$.sessions')", "2");
	expect_json(r.out, "json_extract(?1, '$.distinct_ips')", "2");
	expect_json(r.out, "json_extract(?1, '$.messages')", "2");
	expect_json(r.out, "json_extract(?1, '$.auth.ok')", "1");
	expect_json(r.out, "json_extract(?1, '$.auth.failed')", "1");
	expect_json(r.out, "json_extract(?1, '$.rcpt.accepted')", "1");
	expect_json(r.out, "json_extract(?1, '$.rcpt.denied')", "1");
	expect_json(r.out, "json_extract(?1, '$.offences.bare_lf')", "1");
	expect_json(r.out, "json_extract(?1, '$.disconnect_reasons.quit')", "1");
	expect_json(r.out, "json_extract(?1, '$.spool.files')", "2");
	expect_json(r.out, "json_extract(?1, '$.events_dropped')", "0");
	expect_json(r.out, "json_extract(?1, '$.first_event')", "2026-11-18T11:06:40.000000Z");
	run_free(&r);
}

static void test_sessions(void **state)
{
	struct run r = run("sessions -d %s", data);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "SESSION");
	expect_in(r.out, sid);
	expect_in(r.out, "192.0.2.7:40000");
	expect_in(r.out, "[2001:db8::1]:50000");
	expect_in(r.out, "evil\\x1B]0;owned\\x07\\xC3\\xBF"); /* escaped, U+00FF as UTF-8 */
	expect_in(r.out, "admin");
	expect_in(r.out, "1.234s");
	expect_in(r.out, "open");
	/* Newest first. */
	assert_true(strstr(r.out, "fedcba9876543210") < strstr(r.out, sid));
	run_free(&r);

	r = run("sessions --json -d %s", data);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_array_length(?1)", "2");
	expect_json(r.out, "json_extract(?1, '$[1].session')", sid);
	expect_json(r.out, "json_extract(?1, '$[1].helo')", "evil\x1b]0;owned\x07\xc3\xbf");
	expect_json(r.out, "json_extract(?1, '$[1].commands')", "8");
	expect_json(r.out, "json_extract(?1, '$[0].ended_us')", "NULL");
	run_free(&r);

	r = run("sessions --ip 192.0.2.7 --json -d %s", data);
	expect_json(r.out, "json_array_length(?1)", "1");
	run_free(&r);
	r = run("sessions -d %s --ip 198.51.100.1", data);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "(no sessions");
	run_free(&r);
	r = run("sessions -n 1 --json -d %s", data);
	expect_json(r.out, "json_array_length(?1)", "1");
	run_free(&r);
}

static void test_messages(void **state)
{
	struct run r = run("messages -d %s", data);
	assert_int_equal(r.status, 0);
	expect_in(r.out, qid);
	expect_in(r.out, qid_big);
	expect_in(r.out, "spammer@evil.example");
	expect_in(r.out, "<>");
	/* Subject unfolded and escaped. */
	expect_in(r.out, "Hello \\x1B[2J world folded part");
	expect_in(r.out, "big");
	run_free(&r);

	r = run("messages --json -d %s", data);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_array_length(?1)", "2");
	expect_json(r.out, "json_extract(?1, '$[1].queue_id')", qid);
	expect_json(r.out, "json_extract(?1, '$[1].subject')", "Hello \x1b[2J world folded part");
	expect_json(r.out, "json_extract(?1, '$[1].recipients[1]')", "bob@local.example");
	expect_json(r.out, "json_extract(?1, '$[1].n_rcpt')", "2");
	expect_json(r.out, "json_extract(?1, '$[0].sender')", "");
	run_free(&r);
}

static void test_show_message(void **state)
{
	struct run r = run("show -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "spammer@evil.example");
	expect_in(r.out, "alice@local.example");
	expect_in(r.out, "(file matches)");
	expect_in(r.out, "Body line one \\x1B[31mred");
	expect_in(r.out, "bell \\x07 and \\xC3\\xA9");
	expect_in(r.out, "Subject: Hello \\x1B[2J world");
	assert_null(strchr(r.out, '\a'));
	assert_null(strchr(r.out, '\r'));
	run_free(&r);

	r = run("show --json %s -d %s", qid, data);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_extract(?1, '$.sha256_ok')", "1");
	expect_json(r.out, "json_extract(?1, '$.truncated')", "0");
	expect_json(r.out, "instr(json_extract(?1, '$.text'), 'red') > 0", "1");
	run_free(&r);

	/* Capped by default: the long line is cut, the end is not shown. */
	r = run("show -d %s %s", data, qid_big);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "--full shows all");
	assert_null(strstr(r.out, "THE-END"));
	assert_true(r.out_len < 100 * 1024);
	char *l = strstr(r.out, "LLLL");
	assert_non_null(l);
	assert_true(strcspn(l, "\n") <= 200);
	run_free(&r);
	r = run("show --full -d %s %s", data, qid_big);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "THE-END");
	l = strstr(r.out, "LLLL");
	assert_true(strcspn(l, "\n") >= 1000);
	run_free(&r);
	r = run("show --json -d %s %s", data, qid_big);
	expect_json(r.out, "json_extract(?1, '$.truncated')", "1");
	run_free(&r);

	/* The analysis: absent until the analyzer has run (not an error), then shown with
	 * the message, attacker bytes escaped (run() rejects any raw ESC). */
	r = run("show -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "not analysed yet");
	run_free(&r);
	r = run("show --json -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_type(?1, '$.analysis')", "null");
	run_free(&r);
	r = run("analyze --store --quiet -d %s %s/spool/new", data, data);
	assert_int_equal(r.status, 0);
	run_free(&r);
	r = run("show -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "links (1)\n  http://pay.evil.example/inv?id=1\n");
	expect_in(r.out, "    raw   hxxp://pay[.]evil.example/inv?id=1\n");
	expect_in(r.out, "    where text  flags defanged\n");
	expect_in(r.out, "recipients (1)\n  bob@victim.example  (to)  \"Bob \\x1B[31mRed\"\n");
	expect_in(r.out, "attachments (0)\n");
	expect_in(r.out, "findings (0)\n");
	expect_in(r.out, "  from        a@b.example\n");
	expect_in(r.out, "  subject     Hello \\x1B[2J world\\x09folded part\n");
	expect_in(r.out, "  campaign    C");
	run_free(&r);
	r = run("show --json -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_array_length(?1, '$.analysis.links')", "1");
	expect_json(r.out, "json_extract(?1, '$.analysis.links[0].url')",
		    "http://pay.evil.example/inv?id=1");
	expect_json(r.out, "json_extract(?1, '$.analysis.links[0].raw')",
		    "hxxp://pay[.]evil.example/inv?id=1");
	expect_json(r.out, "json_extract(?1, '$.analysis.links[0].flags')", "[\"defanged\"]");
	expect_json(r.out, "json_extract(?1, '$.analysis.links[0].where')", "[\"text\"]");
	expect_json(r.out, "json_extract(?1, '$.analysis.recipients[0].name')",
		    "Bob \x1b[31mRed");
	expect_json(r.out, "json_extract(?1, '$.analysis.senders.from')", "a@b.example");
	expect_json(r.out, "json_extract(?1, '$.analysis.sha256') = json_extract(?1, '$.sha256')",
		    "1");
	expect_json(r.out, "json_extract(?1, '$.analysis.campaign.id') GLOB 'C[0-9a-f]*'", "1");
	run_free(&r);
	/* A campaign merged into another answers with the messages of the one it went
	 * into (campaigns.merged_into; the analyzer's merge moves the messages). */
	{
		char apath[4096];
		snprintf(apath, sizeof(apath), "%s/analysis.db", data);
		sqlite3 *adb;
		assert_int_equal(sqlite3_open(apath, &adb), SQLITE_OK);
		assert_int_equal(sqlite3_exec(adb,
			"INSERT INTO campaigns(key, rep_message, first_seen, subject, merged_into)"
			" SELECT 'Cmerged0001', rep_message, first_seen, subject, id FROM campaigns"
			" WHERE id = (SELECT campaign_id FROM messages WHERE id = 1)",
			NULL, NULL, NULL), SQLITE_OK);
		assert_int_equal(sqlite3_changes(adb), 1);
		sqlite3_close(adb);
	}
	r = run("campaigns --json -d %s Cmerged0001", data);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_array_length(?1)", "1");
	expect_json(r.out, "json_extract(?1, '$[0].message')", "1");
	run_free(&r);
	/* The other message is analysed too: 4000 links, listed up to 100 unless --full. */
	r = run("show --json -d %s %s", data, qid_big);
	expect_json(r.out, "json_type(?1, '$.analysis')", "object");
	expect_json(r.out, "json_array_length(?1, '$.analysis.links')", "4000");
	run_free(&r);
	r = run("show -d %s %s", data, qid_big);
	expect_in(r.out, "links (4000)\n");
	expect_in(r.out, "  [... 3900 more; --full shows all]\n");
	expect_in(r.out, "  http://l99.example.com/\n    raw   ");
	assert_null(strstr(r.out, "  http://l100.example.com/\n    raw   "));
	run_free(&r);
	r = run("show --full -d %s %s", data, qid_big);
	expect_in(r.out, "  http://l3999.example.com/\n    raw   ");
	run_free(&r);

	/* A changed file is flagged. */
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "cd %s/spool/new && for f in *; do echo tamper >> \"$f\"; done",
		 data);
	assert_int_equal(system(cmd), 0);
	r = run("show -d %s %s", data, qid);
	expect_in(r.out, "FILE DIFFERS");
	/* Its analysis (of the bytes as captured) is still found by spool file name. */
	expect_in(r.out, "links (1)");
	run_free(&r);
	/* An analysis.db that is not one is no analysis, not an error. */
	snprintf(cmd, sizeof(cmd), "mv %s/analysis.db %s/adb.keep && echo junk > %s/analysis.db",
		 data, work, data);
	assert_int_equal(system(cmd), 0);
	r = run("show --json -d %s %s", data, qid);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_type(?1, '$.analysis')", "null");
	run_free(&r);
	snprintf(cmd, sizeof(cmd), "rm -f %s/analysis.db* && mv %s/adb.keep %s/analysis.db",
		 data, work, data);
	assert_int_equal(system(cmd), 0);
}

static void test_show_session(void **state)
{
	struct run r = run("show -d %s %s", data, sid);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "session 0123456789abcdef from 192.0.2.7 port 40000");
	expect_in(r.out, "connect");
	expect_in(r.out, "name=\"evil\\x1B]0;owned\\x07\\xC3\\xBF\"");
	expect_in(r.out, "username=\"root\"");
	expect_in(r.out, "success=false");
	expect_in(r.out, "authzid=null");
	expect_in(r.out, "recipients=[\"alice@local.example\",\"bob@local.example\"]");
	expect_in(r.out, "reason=\"quit\"");
	/* One line per event, in order. */
	int lines = 0;
	for (const char *p = r.out; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 1 + 10);
	assert_true(strstr(r.out, " connect") < strstr(r.out, " disconnect"));
	run_free(&r);

	r = run("show --json -d %s %s", data, sid);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_valid(?1)", "1");
	expect_json(r.out, "json_array_length(?1)", "10");
	expect_json(r.out, "json_extract(?1, '$[1].name')", "evil\x1b]0;owned\x07\xc3\xbf");
	run_free(&r);
}

static void test_errors(void **state)
{
	struct run r = run("stats -d %s/nope", work);
	assert_int_equal(r.status, 1);
	char want[512];
	snprintf(want, sizeof(want), "mxbait: no data directory at %s/nope (run `mxbait serve` "
				     "first, or use -d DIR)\n", work);
	assert_string_equal(r.err, want);
	run_free(&r);

	/* Directory without a database. */
	r = run("sessions -d %s", work);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "no database at");
	run_free(&r);

	/* Not a database. */
	char path[256];
	snprintf(path, sizeof(path), "%s/bad", work);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/bad/mxbait.db", work);
	FILE *f = fopen(path, "w");
	for (int i = 0; i < 200; i++)
		fputs("this is not sqlite\n", f);
	fclose(f);
	r = run("messages -d %s/bad", work);
	assert_int_equal(r.status, 1);
	snprintf(want, sizeof(want), "mxbait: %s is not an mxbait database: file is not a database\n",
		 path);
	assert_string_equal(r.err, want);
	run_free(&r);

	/* Schema too new. */
	sqlite3 *db;
	unlink(path);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_exec(db, "CREATE TABLE events(x); PRAGMA user_version = 99", NULL, NULL, NULL);
	sqlite3_close(db);
	r = run("show -d %s/bad 0123", work);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "schema version 99 is newer than this mxbait supports");
	run_free(&r);

	/* Usage errors: 2. */
	r = run("show -d %s", data);
	assert_int_equal(r.status, 2);
	expect_in(r.err, "missing SESSION or QUEUEID");
	run_free(&r);
	r = run("sessions --limit abc -d %s", data);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("stats --nonsense");
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("stats -d %s extra", data);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("frobnicate");
	assert_int_equal(r.status, 2);
	run_free(&r);
	/* --help: usage on stdout, exit 0. */
	r = run("sessions --help");
	assert_int_equal(r.status, 0);
	expect_in(r.out, "usage: mxbait sessions");
	expect_in(r.out, "--ip IP");
	run_free(&r);

	/* Unknown id. */
	r = run("show -d %s NOSUCHID", data);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "no session or message 'NOSUCHID'");
	run_free(&r);
}

/* -c FILE: data_dir from the config file. */
static void test_config(void **state)
{
	char conf[128];
	snprintf(conf, sizeof(conf), "%s/mxbait.conf", work);
	FILE *f = fopen(conf, "w");
	fprintf(f, "# test\ndata_dir = %s\nspool_budget = 1m\n", data);
	fclose(f);
	struct run r = run("stats --json -c %s", conf);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_extract(?1, '$.sessions')", "2");
	expect_json(r.out, "json_extract(?1, '$.spool.budget')", "1048576");
	run_free(&r);
	f = fopen(conf, "w");
	fprintf(f, "no_such_key = 1\n");
	fclose(f);
	r = run("stats -c %s", conf);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "no_such_key");
	run_free(&r);
}


/* ---- creds / attackers: brute-force intelligence over their own data dir ---- */

static char bf[64]; /* data dir of the brute-force tests */
static int64_t bf_base, bf_recent;
static unsigned bf_sid;

static const char *bf_session(char *out)
{
	snprintf(out, 24, "%016x", 0xbf000000u + bf_sid++);
	return out;
}

static void bf_auth(struct eventstore *es, const char *ses, const char *ip, const char *proto,
		    int64_t ts, const char *user, const char *pass, bool ok)
{
	struct mxb_event *e = mxb_event_new("auth");
	mxb_event_stamp(e, ts, ses, ip, 40000, proto);
	mxb_event_str(e, "mechanism", "PLAIN");
	mxb_event_str(e, "username", user);
	mxb_event_str(e, "password", pass);
	mxb_event_null(e, "authzid");
	mxb_event_bool(e, "success", ok);
	mxb_event_str(e, "result", ok ? "ok" : "fail");
	eventstore_submit(es, e);
}

static void bf_rcpt(struct eventstore *es, const char *ses, const char *ip, int64_t ts,
		    const char *rcpt, bool ok)
{
	struct mxb_event *e = mxb_event_new("rcpt");
	mxb_event_stamp(e, ts, ses, ip, 40000, "smtp");
	mxb_event_str(e, "recipient", rcpt);
	mxb_event_str(e, "params", "");
	mxb_event_bool(e, "accepted", ok);
	mxb_event_int(e, "reply", ok ? 250 : 550);
	mxb_event_bool(e, "relay", false);
	eventstore_submit(es, e);
}

static void bf_message(struct eventstore *es, const char *ses, const char *ip, int64_t ts,
		       const char *subject, size_t n_rcpt, const char *auth_user)
{
	char text[256];
	int n = snprintf(text, sizeof(text), "Subject: %s\r\nFrom: x@y.example\r\n\r\nbuy\r\n",
			 subject);
	struct spool_result r = capture_in(bf, text, (size_t)n);
	struct mxb_event *e = mxb_event_new("message");
	mxb_event_stamp(e, ts, ses, ip, 40000, "submission");
	mxb_event_str(e, "queue_id", r.queue_id);
	mxb_event_str(e, "spool", r.name);
	mxb_event_str(e, "sha256", r.sha256);
	mxb_event_int(e, "size", (int64_t)r.size);
	mxb_event_str(e, "sender", "x@y.example");
	const char *rc[] = {"v1@far.example", "v2@far.example", "v3@far.example"};
	mxb_event_str_array(e, "recipients", rc, n_rcpt);
	mxb_event_str(e, "method", "DATA");
	mxb_event_str(e, "auth_user", auth_user);
	mxb_event_bool(e, "tls", true);
	eventstore_submit(es, e);
}

#define MIN_US (60LL * 1000000)

/*
 * admin:   5 IPs of 198.51.100.0/24 within 20 minutes (distributed), the 5th guess
 *          (letmein) succeeds and that session sends 2 messages;
 * support: 5 IPs of 203.0.113.0/24, 40 minutes apart (5 IPs, but never more than 2
 *          within an hour: not distributed), always 123456;
 * info:    2 IPs of 2001:db8:aa::/48, 4 attempts (info123), 30 minutes ago;
 * probes:  192.0.2.50 (RCPT x3, VRFY) and 192.0.2.51 (RCPT) unauthenticated; an RCPT
 *          after admin's login is not a probe;
 * accounts: admin cracked, support counted only, postmaster fixed.
 */
static void bf_fill(void)
{
	snprintf(bf, sizeof(bf), "/tmp/mxb-clibf-XXXXXX");
	assert_non_null(mkdtemp(bf));
	char db[128];
	snprintf(db, sizeof(db), "%s/mxbait.db", bf);
	struct eventstore *es = eventstore_open(db, NULL, NULL);
	assert_non_null(es);
	int64_t now = mxb_now_us();
	bf_base = now - 3 * 24 * 60 * MIN_US;
	bf_recent = now - 30 * MIN_US;
	char ses[24], ip[64];
	const char *pw[] = {"123456", "password", "admin", "qwerty", "letmein"};
	const char *protos[] = {"submission", "imap", "pop3", "submission", "submission"};
	for (int i = 0; i < 5; i++) {
		snprintf(ip, sizeof(ip), "198.51.100.%d", i + 1);
		bf_session(ses);
		int64_t t = bf_base + i * 5 * MIN_US;
		bf_auth(es, ses, ip, protos[i], t, "admin", pw[i], i == 4);
		if (i == 4) {
			bf_rcpt(es, ses, ip, t + 1000, "victim@far.example", true);
			bf_message(es, ses, ip, t + 2000, "first", 2, "admin");
			bf_message(es, ses, ip, t + 3000, "Cheap \x1b[5mpills", 3,
				   "Admin@local.example");
		}
	}
	for (int i = 0; i < 5; i++) {
		snprintf(ip, sizeof(ip), "203.0.113.%d", i + 1);
		bf_session(ses);
		bf_auth(es, ses, ip, "smtp", bf_base + 60 * MIN_US + i * 40 * MIN_US, "support",
			"123456", false);
	}
	/* 2001:db8:aa::1 in two sessions, 2001:db8:aa:1::2 in one. */
	bf_session(ses);
	bf_auth(es, ses, "2001:db8:aa::1", "pop3", bf_recent, "info", "info123", false);
	bf_auth(es, ses, "2001:db8:aa::1", "pop3", bf_recent + 1, "info", "info123", false);
	bf_session(ses);
	bf_auth(es, ses, "2001:db8:aa::1", "imaps", bf_recent + 2, "info", "info123", false);
	bf_session(ses);
	bf_auth(es, ses, "2001:db8:aa:1::2", "pop3", bf_recent + 3, "info", "info123", false);
	bf_session(ses);
	bf_rcpt(es, ses, "192.0.2.50", bf_base + 10, "alice@local.example", true);
	bf_rcpt(es, ses, "192.0.2.50", bf_base + 11, "bob@local.example", true);
	bf_rcpt(es, ses, "192.0.2.50", bf_base + 12, "nobody@local.example", false);
	struct mxb_event *e = mxb_event_new("vrfy");
	mxb_event_stamp(e, bf_base + 13, ses, "192.0.2.50", 40000, "smtp");
	mxb_event_str(e, "verb", "VRFY");
	mxb_event_str(e, "argument", "root");
	mxb_event_int(e, "reply", 252);
	eventstore_submit(es, e);
	bf_session(ses);
	bf_rcpt(es, ses, "192.0.2.51", bf_base + 20, "alice@local.example", true);

	struct deception_account a = {"admin", "letmein", 4, 4, bf_base + 20 * MIN_US, 0, 0, 0};
	eventstore_save_account(es, &a);
	a = (struct deception_account){"support", NULL, 5, 6, 0, 0, 0, 0};
	eventstore_save_account(es, &a);
	a = (struct deception_account){"postmaster", "fixedpw", 0, 0, 0, 1, 0, 0};
	eventstore_save_account(es, &a);
	eventstore_close(&es);
}

static void bf_rm(void)
{
	char cmd[128];
	if (getenv("MXB_KEEP_TEST_DATA")) {
		fprintf(stderr, "# data dir kept: %s\n", bf);
		return;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", bf);
	assert_int_equal(system(cmd), 0);
}

static void expect_json_i(const char *json, const char *path, long long want)
{
	char expr[256], w[32];
	snprintf(expr, sizeof(expr), "json_extract(?1, '%s')", path);
	snprintf(w, sizeof(w), "%lld", want);
	expect_json(json, expr, w);
}

static void expect_json_s(const char *json, const char *path, const char *want)
{
	char expr[256];
	snprintf(expr, sizeof(expr), "json_extract(?1, '%s')", path);
	expect_json(json, expr, want);
}

static void test_creds(void **state)
{
	bf_fill();
	struct run r = run("creds --json -d %s", bf);
	assert_int_equal(r.status, 0);
	const char *j = r.out;
	expect_json(j, "json_valid(?1)", "1");
	/* usernames: admin and support tie on 5 attempts (name order), then info. */
	expect_json(j, "json_array_length(?1, '$.usernames')", "3");
	expect_json_s(j, "$.usernames[0].username", "admin");
	expect_json_i(j, "$.usernames[0].attempts", 5);
	expect_json_i(j, "$.usernames[0].ips", 5);
	expect_json_i(j, "$.usernames[0].passwords", 5);
	expect_json_i(j, "$.usernames[0].successes", 1);
	expect_json_i(j, "$.usernames[0].first_us", bf_base);
	expect_json_i(j, "$.usernames[0].last_us", bf_base + 20 * MIN_US);
	expect_json_s(j, "$.usernames[0].protocols", "[\"imap\",\"pop3\",\"submission\"]");
	expect_json_i(j, "$.usernames[0].peak_ips", 5);
	expect_json_i(j, "$.usernames[0].distributed", 1);
	expect_json_s(j, "$.usernames[1].username", "support");
	expect_json_i(j, "$.usernames[1].attempts", 5);
	expect_json_i(j, "$.usernames[1].ips", 5);
	expect_json_i(j, "$.usernames[1].passwords", 1);
	expect_json_i(j, "$.usernames[1].successes", 0);
	expect_json_s(j, "$.usernames[1].protocols", "[\"smtp\"]");
	expect_json_i(j, "$.usernames[1].peak_ips", 2);
	expect_json_i(j, "$.usernames[1].distributed", 0);
	expect_json_s(j, "$.usernames[2].username", "info");
	expect_json_i(j, "$.usernames[2].attempts", 4);
	expect_json_i(j, "$.usernames[2].ips", 2);
	expect_json_s(j, "$.usernames[2].protocols", "[\"imaps\",\"pop3\"]");
	expect_json_i(j, "$.usernames[2].peak_ips", 2);
	/* passwords */
	expect_json(j, "json_array_length(?1, '$.passwords')", "6");
	expect_json_s(j, "$.passwords[0].password", "123456");
	expect_json_i(j, "$.passwords[0].attempts", 6);
	expect_json_i(j, "$.passwords[0].usernames", 2);
	expect_json_i(j, "$.passwords[0].ips", 6);
	expect_json_s(j, "$.passwords[1].password", "info123");
	expect_json_i(j, "$.passwords[1].attempts", 4);
	expect_json_s(j, "$.passwords[3].password", "letmein");
	expect_json_i(j, "$.passwords[3].successes", 1);
	/* pairs */
	expect_json(j, "json_array_length(?1, '$.pairs')", "7");
	expect_json_s(j, "$.pairs[0].username", "support");
	expect_json_s(j, "$.pairs[0].password", "123456");
	expect_json_i(j, "$.pairs[0].attempts", 5);
	expect_json_s(j, "$.pairs[1].username", "info");
	expect_json_i(j, "$.pairs[1].attempts", 4);
	/* cracked accounts and what they sent (Admin@local.example is admin) */
	expect_json(j, "json_array_length(?1, '$.cracked')", "2");
	expect_json_s(j, "$.cracked[0].username", "admin");
	expect_json_s(j, "$.cracked[0].password", "letmein");
	expect_json_s(j, "$.cracked[0].kind", "cracked");
	expect_json_i(j, "$.cracked[0].cracked_us", bf_base + 20 * MIN_US);
	expect_json_i(j, "$.cracked[0].failures", 4);
	expect_json_i(j, "$.cracked[0].messages", 2);
	expect_json_i(j, "$.cracked[0].recipients", 5);
	expect_json_i(j, "$.cracked[0].last_message_us", bf_base + 20 * MIN_US + 3000);
	expect_json_i(j, "$.cracked[0].last_message_rcpts", 3);
	expect_json_s(j, "$.cracked[0].last_subject", "Cheap \x1b[5mpills");
	expect_json_s(j, "$.cracked[1].username", "postmaster");
	expect_json_s(j, "$.cracked[1].kind", "fixed");
	expect_json_s(j, "$.cracked[1].cracked_us", "NULL");
	expect_json_i(j, "$.cracked[1].messages", 0);
	expect_json_s(j, "$.cracked[1].last_subject", "NULL");
	/* enumeration */
	expect_json(j, "json_array_length(?1, '$.probed_addresses')", "4");
	expect_json_s(j, "$.probed_addresses[0].address", "alice@local.example");
	expect_json_i(j, "$.probed_addresses[0].probes", 2);
	expect_json_i(j, "$.probed_addresses[0].ips", 2);
	expect_json_i(j, "$.probed_addresses[0].accepted", 2);
	expect_json_s(j, "$.probed_addresses[2].address", "nobody@local.example");
	expect_json_i(j, "$.probed_addresses[2].accepted", 0);
	expect_json_s(j, "$.probed_addresses[3].address", "root");
	expect_json_s(j, "$.probed_addresses[3].kinds", "[\"vrfy\"]");
	expect_json(j, "json_array_length(?1, '$.probing_ips')", "2");
	expect_json_s(j, "$.probing_ips[0].ip", "192.0.2.50");
	expect_json_i(j, "$.probing_ips[0].probes", 4);
	expect_json_i(j, "$.probing_ips[0].addresses", 4);
	expect_json_i(j, "$.probing_ips[0].vrfy_expn", 1);
	expect_json_i(j, "$.probing_ips[0].accepted", 3);
	expect_json_i(j, "$.probing_ips[0].sessions", 1);
	expect_json_i(j, "$.probing_ips[1].probes", 1);
	expect_json(j, "instr(?1, 'victim') = 0", "1");
	expect_json_i(j, "$.settings.window_s", 3600);
	expect_json_i(j, "$.settings.min_ips", 5);
	run_free(&r);

	/* The window: support's 5 IPs fit in 3 hours. */
	r = run("creds --json --window 3h -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_json_i(r.out, "$.usernames[1].peak_ips", 5);
	expect_json_i(r.out, "$.usernames[1].distributed", 1);
	run_free(&r);
	/* The threshold. */
	r = run("creds --json --min-ips 6 -d %s", bf);
	expect_json_i(r.out, "$.usernames[0].distributed", 0);
	run_free(&r);
	/* --since: only info's attempts are recent; --top bounds every section. */
	r = run("creds --json --since 2h -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_array_length(?1, '$.usernames')", "1");
	expect_json_s(r.out, "$.usernames[0].username", "info");
	expect_json(r.out, "json_array_length(?1, '$.cracked')", "1"); /* postmaster (fixed) */
	expect_json(r.out, "json_array_length(?1, '$.probed_addresses')", "0");
	run_free(&r);
	r = run("creds --json --top 1 -d %s", bf);
	expect_json(r.out, "json_array_length(?1, '$.usernames')", "1");
	expect_json(r.out, "json_array_length(?1, '$.passwords')", "1");
	expect_json(r.out, "json_array_length(?1, '$.probing_ips')", "1");
	run_free(&r);

	/* The table: sections, the flag, escaped subject. */
	r = run("creds -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "usernames (PEAK IPS: most distinct IPs within 1h; DISTRIBUTED: >= 5):");
	expect_in(r.out, "passwords:");
	expect_in(r.out, "username/password pairs:");
	expect_in(r.out, "cracked accounts (and what they sent):");
	expect_in(r.out, "enumeration: probed addresses");
	expect_in(r.out, "enumeration: probing IPs:");
	const char *admin = strstr(r.out, "\nadmin ");
	assert_non_null(admin);
	char line[512];
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(admin + 1, "\n"), admin + 1);
	expect_in(line, "imap,pop3,submission");
	expect_in(line, "DISTRIBUTED");
	const char *support = strstr(r.out, "\nsupport ");
	snprintf(line, sizeof(line), "%.*s", (int)strcspn(support + 1, "\n"), support + 1);
	assert_null(strstr(line, "DISTRIBUTED"));
	expect_in(r.out, "Cheap \\x1B[5mpills");
	expect_in(r.out, "letmein");
	run_free(&r);
	r = run("creds --since 1m -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "passwords:\n  (none)\n");
	run_free(&r);

	/* Usage errors. */
	r = run("creds --since yesterday -d %s", bf);
	assert_int_equal(r.status, 2);
	expect_in(r.err, "bad --since 'yesterday'");
	run_free(&r);
	r = run("creds --min-ips 0 -d %s", bf);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("creds --top -1 -d %s", bf);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("creds --window 0 -d %s", bf);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("creds -d %s/nope", work);
	assert_int_equal(r.status, 1);
	expect_in(r.err, "no data directory");
	run_free(&r);
	r = run("creds --help");
	assert_int_equal(r.status, 0);
	expect_in(r.out, "--min-ips N");
	run_free(&r);
	bf_rm();
}

static void test_attackers(void **state)
{
	bf_fill();
	struct run r = run("attackers --json --top 0 -d %s", bf);
	assert_int_equal(r.status, 0);
	const char *j = r.out;
	expect_json(j, "json_valid(?1)", "1");
	/* 5 + 5 + 2 + 2 IPs; the IPv6 ones (2 attempts) first, then by sessions, IP. */
	expect_json(j, "json_array_length(?1, '$.ips')", "14");
	expect_json_s(j, "$.ips[0].ip", "2001:db8:aa::1");
	expect_json_i(j, "$.ips[0].attempts", 3);
	expect_json_i(j, "$.ips[0].usernames", 1);
	expect_json_i(j, "$.ips[0].sessions", 2);
	expect_json_s(j, "$.ips[0].protocols", "[\"imaps\",\"pop3\"]");
	expect_json_i(j, "$.ips[0].first_us", bf_recent);
	expect_json_i(j, "$.ips[0].last_us", bf_recent + 2);
	expect_json_s(j, "$.ips[1].ip", "198.51.100.1");
	expect_json_s(j, "$.ips[5].ip", "198.51.100.5");
	expect_json_i(j, "$.ips[5].successes", 1);
	expect_json_i(j, "$.ips[5].messages", 2);
	expect_json_i(j, "$.ips[5].probes", 0);
	expect_json_s(j, "$.ips[6].ip", "2001:db8:aa:1::2");
	expect_json_s(j, "$.ips[12].ip", "192.0.2.50");
	expect_json_i(j, "$.ips[12].attempts", 0);
	expect_json_i(j, "$.ips[12].probes", 4);
	expect_json_i(j, "$.ips[12].first_us", bf_base + 10);
	expect_json_i(j, "$.ips[12].last_us", bf_base + 13);
	/* networks */
	expect_json(j, "json_array_length(?1, '$.prefixes')", "4");
	expect_json_s(j, "$.prefixes[0].prefix", "198.51.100.0/24");
	expect_json_i(j, "$.prefixes[0].ips", 5);
	expect_json_i(j, "$.prefixes[0].attempts", 5);
	expect_json_i(j, "$.prefixes[0].usernames", 1);
	expect_json_i(j, "$.prefixes[0].successes", 1);
	expect_json_i(j, "$.prefixes[0].sessions", 5);
	expect_json_i(j, "$.prefixes[0].messages", 2);
	expect_json_s(j, "$.prefixes[0].protocols", "[\"imap\",\"pop3\",\"submission\"]");
	expect_json_s(j, "$.prefixes[1].prefix", "203.0.113.0/24");
	expect_json_s(j, "$.prefixes[2].prefix", "2001:db8:aa::/48");
	expect_json_i(j, "$.prefixes[2].ips", 2);
	expect_json_i(j, "$.prefixes[2].attempts", 4);
	expect_json_i(j, "$.prefixes[2].sessions", 3);
	expect_json_s(j, "$.prefixes[3].prefix", "192.0.2.0/24");
	expect_json_i(j, "$.prefixes[3].probes", 5);
	expect_json_i(j, "$.prefixes[3].sessions", 2);
	run_free(&r);

	r = run("attackers --json --since 2h -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_json(r.out, "json_array_length(?1, '$.ips')", "2");
	expect_json(r.out, "json_array_length(?1, '$.prefixes')", "1");
	run_free(&r);
	r = run("attackers --json -d %s", bf); /* default: 10 rows */
	expect_json(r.out, "json_array_length(?1, '$.ips')", "10");
	run_free(&r);
	r = run("attackers --json -n 3 -d %s", bf); /* -n is --top */
	expect_json(r.out, "json_array_length(?1, '$.ips')", "3");
	expect_json(r.out, "json_array_length(?1, '$.prefixes')", "3");
	run_free(&r);
	r = run("attackers --json -n 3 --top 2 -d %s", bf); /* --top wins */
	expect_json(r.out, "json_array_length(?1, '$.ips')", "2");
	run_free(&r);

	r = run("attackers -d %s", bf);
	assert_int_equal(r.status, 0);
	expect_in(r.out, "IPs:\nIP ");
	expect_in(r.out, "networks (/24 IPv4, /48 IPv6):\nNETWORK ");
	expect_in(r.out, "2001:db8:aa::/48");
	expect_in(r.out, "imap,pop3,submission");
	run_free(&r);
	r = run("attackers --since 5x -d %s", bf);
	assert_int_equal(r.status, 2);
	run_free(&r);
	r = run("attackers -d %s extra", bf);
	assert_int_equal(r.status, 2);
	run_free(&r);
	bf_rm();
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s PATH/TO/mxbait\n", argv[0]);
		return 2;
	}
	mxbait = argv[1];
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stats),
		cmocka_unit_test(test_sessions),
		cmocka_unit_test(test_messages),
		cmocka_unit_test(test_show_message),
		cmocka_unit_test(test_show_session),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_creds),
		cmocka_unit_test(test_attackers),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
