/*
 * test_report: the ARF/XARF renderers with hostile messages (header injection through
 * a folded Subject, a message that contains the boundary, an encoded body hiding a
 * victim's address, a victim address in the sender, non-ASCII subjects), redaction as
 * a property over many generated messages, XARF JSON validity (SQLite's json_valid),
 * and the outbox's idempotency keys and state machine (claim, transmitting, finish,
 * crash recovery per sink kind); export_time against gmtime/strftime; which web-host
 * addresses the contact lookup may accuse.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "intel/intel_db.h"
#include "report/arf.h"
#include "report/contact.h"
#include "report/export.h"
#include "util/netaddr.h"
#include "report/outbox.h"
#include "report/sink.h"

static const uint8_t secret[32] = {1, 2, 3};
static const struct report_identity id = {.hostname = "sensor.example.net",
					  .from = "abuse-reports@sensor.example.net",
					  .org = "sensor.example.net",
					  .secret = secret,
					  .secret_len = sizeof(secret)};

static char *render(const char *msg, const char *const *victims, size_t nv, bool redact,
		    int *rc_r)
{
	struct arf_message m = {.queue_id = "4QABC1", .src_ip = "192.0.2.10", .src_port = 51234,
				.arrival_us = 1795745564000000LL, .mail_from = "billing@bank.test",
				.auth_user = "info", .rcpts = victims, .n_rcpts = nv, .msg = msg,
				.msg_len = strlen(msg), .incidents = 1, .redact = redact};
	struct buf out;
	buf_init(&out, 0);
	char *err = NULL;
	*rc_r = arf_render(&id, &m, "0123456789abcdef0123456789abcdef", 1795746000000000LL, &out,
			   &err);
	free(err);
	buf_putc(&out, 0);
	return buf_steal(&out, NULL);
}

/* The header names of the report's own header block, in order, joined by ','. */
static void header_names(const char *r, char *out, size_t outlen)
{
	size_t o = 0;
	out[0] = 0;
	for (const char *p = r; *p && !(p[0] == '\r' && p[1] == '\n');) {
		if (*p != ' ' && *p != '\t') {
			size_t n = strcspn(p, ":");
			o += (size_t)snprintf(out + o, outlen - o, "%s%.*s", o ? "," : "", (int)n, p);
		}
		p = strstr(p, "\r\n");
		if (!p)
			break;
		p += 2;
	}
}

static void test_arf_injection(void **state)
{
	(void)state;
	const char *victims[] = {"victim@corp.example"};
	int rc;
	char *r = render("From: x@y.test\r\nTo: victim@corp.example\r\nSubject: hi\r\n"
			 "\tBcc: everyone@corp.example\r\n\r\nbody\r\n--mxbait-0123456789abcdef01234567-0\r\n",
			 victims, 1, true, &rc);
	assert_int_equal(rc, 0);
	char names[512];
	header_names(r, names, sizeof(names));
	assert_string_equal(names, "From,Date,Message-ID,Auto-Submitted,MIME-Version,Subject,"
				   "Content-Type");
	assert_non_null(strstr(r, "Subject: FW: hi Bcc: everyone@corp.example\r\n"));
	/* the boundary that occurs in the message is not used */
	assert_non_null(strstr(r, "boundary=\"mxbait-0123456789abcdef01234567-1\""));
	assert_non_null(strstr(r, "\r\n--mxbait-0123456789abcdef01234567-1--\r\n"));
	assert_null(strcasestr(r, "victim@corp.example"));
	assert_non_null(strstr(r, "Content-Type: message/rfc822"));
	free(r);
	/* non-ASCII subject: one encoded word, nothing raw */
	r = render("Subject: caf\xc3\xa9\r\n\r\nx\r\n", victims, 1, true, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(r, "Subject: FW: =?utf-8?b?Y2Fmw6k=?=\r\n"));
	free(r);
}

static void test_arf_redaction_modes(void **state)
{
	(void)state;
	const char *victims[] = {"Victim@Corp.example", "two@corp.example"};
	int rc;
	/* base64 body could hide an address: only the (redacted) headers are attached */
	char *r = render("To: victim@corp.example\r\nContent-Transfer-Encoding: base64\r\n\r\n"
			 "dmljdGltQGNvcnAuZXhhbXBsZQ==\r\n", victims, 2, true, &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(r, "Content-Type: text/rfc822-headers"));
	assert_null(strstr(r, "dmljdGltQGNvcnAuZXhhbXBsZQ"));
	assert_null(strcasestr(r, "victim@corp.example"));
	assert_non_null(strstr(r, "Original-Rcpt-To: <redacted-"));
	free(r);
	/* without redaction the message is whole and the recipients are named */
	r = render("To: victim@corp.example\r\n\r\nhello victim@corp.example\r\n", victims, 2, false,
		   &rc);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(r, "Original-Rcpt-To: <Victim@Corp.example>"));
	assert_non_null(strstr(r, "hello victim@corp.example"));
	free(r);
	/* the same victim gets the same token across reports */
	char a[320], b[320];
	arf_redact_addr(&id, "victim@corp.example", a, sizeof(a));
	arf_redact_addr(&id, "VICTIM@corp.example", b, sizeof(b));
	assert_string_equal(a, b);
	assert_int_equal(strncmp(a, "redacted-", 9), 0);
	/* a victim address that is also in a field we cannot redact: refused */
	struct arf_message m = {.queue_id = "Q", .src_ip = "192.0.2.1", .arrival_us = 1,
				.mail_from = "victim@corp.example", .rcpts = victims, .n_rcpts = 2,
				.msg = "x\r\n\r\ny", .msg_len = 6, .incidents = 1, .redact = true};
	struct buf out;
	buf_init(&out, 0);
	char *err = NULL;
	assert_int_equal(arf_render(&id, &m, "k", 1, &out, &err), -1);
	assert_non_null(strstr(err, "redact"));
	assert_int_equal(out.len, 0);
	free(err);
	buf_free(&out);
}

/* Property: whatever the message, no victim address survives redaction. */
static void test_arf_redaction_property(void **state)
{
	(void)state;
	srand(7);
	static const char *const parts[] = {"To: ", "Cc: ", "\r\n", " ", "<", ">", ",", "\r\n\r\n",
					    "Subject: ", "\t", "=?utf-8?q?", "?=", "hello ",
					    "Content-Type: text/plain\r\n"};
	for (int iter = 0; iter < 2000; iter++) {
		char victims_s[4][64];
		const char *victims[4];
		int nv = 1 + rand() % 4;
		for (int k = 0; k < nv; k++) {
			snprintf(victims_s[k], sizeof(victims_s[k]), "%s%d@%s.example",
				 rand() % 2 ? "User" : "x.y", rand() % 100, rand() % 2 ? "corp" : "Mail");
			victims[k] = victims_s[k];
		}
		char msg[4096];
		size_t o = 0;
		for (int k = 0; k < 40 && o < sizeof(msg) - 200; k++) {
			const char *piece = rand() % 3 == 0 ? victims[rand() % nv] : parts[rand() % 14];
			char up[128];
			snprintf(up, sizeof(up), "%s", piece);
			if (rand() % 4 == 0)
				for (char *c = up; *c; c++)
					*c = (char)(rand() % 2 ? toupper((unsigned char)*c) : *c);
			o += (size_t)snprintf(msg + o, sizeof(msg) - o, "%s", up);
		}
		int rc;
		char *r = render(msg, victims, (size_t)nv, true, &rc);
		if (rc == 0)
			for (int k = 0; k < nv; k++)
				if (strcasestr(r, victims[k]))
					fail_msg("victim %s in the report of: %s", victims[k], msg);
		free(r);
	}
}

static int json_valid(const char *j)
{
	sqlite3 *db;
	sqlite3_open(":memory:", &db);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT json_valid(?1), json_extract(?1, '$.type')", -1, &st, NULL);
	sqlite3_bind_text(st, 1, j, -1, SQLITE_STATIC);
	sqlite3_step(st);
	int v = sqlite3_column_int(st, 0) &&
		!strcmp((const char *)sqlite3_column_text(st, 1), "login_attack");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void test_xarf(void **state)
{
	(void)state;
	struct xarf_login l = {.src_ip = "2001:db8::7", .first_us = 1795745000000000LL,
			       .last_us = 1795745600000000LL, .attempts = 42, .logins = 1,
			       .protocols = "smtp imap", .log = "a \"quoted\" line\n\x01\n",
			       .confidence = 75};
	struct buf json, mail;
	buf_init(&json, 0);
	buf_init(&mail, 0);
	assert_int_equal(xarf_render_login(&id, &l, "key", 1795746000000000LL, &json, &mail), 0);
	buf_putc(&json, 0);
	assert_true(json_valid(json.data));
	assert_non_null(strstr(json.data, "\"xarf_version\":\"4.0.0\""));
	assert_non_null(strstr(json.data, "\"confidence\":0.75"));
	buf_putc(&mail, 0);
	assert_non_null(strstr(mail.data, "Feedback-Type: xarf\r\n"));
	assert_non_null(strstr(mail.data, "Content-Type: application/json; name=\"xarf.json\""));
	buf_free(&json);
	buf_free(&mail);
}

static void test_outbox_states(void **state)
{
	(void)state;
	char dir[] = "/tmp/mxb-test-outbox-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char *err = NULL;
	sqlite3 *db = intel_db_open(dir, false, NULL, &err);
	assert_non_null(db);
	char k1[33], k2[33], k3[33];
	outbox_key(k1, "smtp", "arf", "Q1", NULL);
	outbox_key(k2, "webhook", "ip", "ip:192.0.2.1", "2026-11-27");
	outbox_key(k3, "smtp", "arf", "Q1", NULL);
	assert_string_equal(k1, k3);
	assert_string_not_equal(k1, k2);
	struct outbox_item it = {.key = k1, .sink = "smtp", .kind = "arf", .subject = "Q1",
				 .recipient = "abuse@isp.test", .payload = "x", .payload_len = 1,
				 .created_us = 1, .state = "queued"};
	assert_int_equal(outbox_add(db, &it), 1);
	assert_int_equal(outbox_add(db, &it), 0); /* same key: kept once */
	it.key = k2;
	it.sink = "webhook";
	assert_int_equal(outbox_add(db, &it), 1);
	assert_int_equal(outbox_claim(db, 1, 10), 1);
	assert_int_equal(outbox_claim(db, 1, 10), 0); /* never twice */
	assert_int_equal(outbox_claim(db, 2, 10), 1);
	assert_int_equal(outbox_transmitting(db, 1), 0);
	assert_int_equal(outbox_transmitting(db, 2), 0);
	/* crash: smtp (no dedup) -> unknown; webhook (Idempotency-Key) -> queued */
	long rq = 0, un = 0;
	assert_int_equal(outbox_recover(db, sink_idempotent, &rq, &un), 0);
	assert_int_equal(rq, 1);
	assert_int_equal(un, 1);
	sqlite3_stmt *st;
	sqlite3_prepare_v2(db, "SELECT group_concat(state) FROM (SELECT state FROM outbox ORDER BY id)",
			   -1, &st, NULL);
	sqlite3_step(st);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "unknown,queued");
	sqlite3_finalize(st);
	/* claimed but nothing transmitted: requeued whatever the sink */
	assert_int_equal(outbox_claim(db, 2, 11), 1);
	assert_int_equal(outbox_recover(db, sink_idempotent, &rq, &un), 0);
	assert_int_equal(rq, 1);
	assert_int_equal(un, 0);
	/* finish only from sending/transmitting */
	assert_int_equal(outbox_claim(db, 2, 12), 1);
	assert_int_equal(outbox_finish(db, 2, "sent", NULL, "ok", 0, 13), 0);
	assert_int_equal(outbox_finish(db, 2, "failed", "late", NULL, 0, 14), 0);
	sqlite3_prepare_v2(db, "SELECT state, sent_us FROM outbox WHERE id = 2", -1, &st, NULL);
	sqlite3_step(st);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "sent");
	assert_int_equal(sqlite3_column_int64(st, 1), 13);
	sqlite3_finalize(st);
	/* operator moves */
	assert_int_equal(outbox_move(db, 1, "failed unknown", "queued"), 1);
	assert_int_equal(outbox_move(db, 2, "failed unknown", "queued"), 0);
	sqlite3_close(db);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_backoff(void **state)
{
	(void)state;
	for (int i = 0; i < 200; i++) {
		int64_t b1 = sink_backoff_us(1, 0);
		assert_true(b1 >= 30000000 && b1 < 90000000);
		int64_t b5 = sink_backoff_us(5, 0);
		assert_true(b5 >= 480000000 && b5 < 1440000000);
		int64_t cap = sink_backoff_us(30, 0);
		assert_true(cap <= (int64_t)(6 * 3600 * 1.5e6));
		int64_t ra = sink_backoff_us(1, 120);
		assert_true(ra >= 120000000 && ra < 132000000); /* never before it */
	}
}

/* export_time (no libc time zone code) gives what gmtime_r + strftime give. */
static void test_export_time(void **state)
{
	(void)state;
	static const int64_t samples[] = {0, 1, 999999, 1000000, 951782400123456LL /* 2000-02-29 */,
					  1795745564987654LL, 4102444799999999LL /* 2099-12-31 */,
					  1234567890000000LL};
	for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
		int64_t us = samples[i];
		time_t t = (time_t)(us / 1000000);
		struct tm tm;
		gmtime_r(&t, &tm);
		char want[40], want_ms[48], got[40];
		strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
		strftime(want_ms, sizeof(want_ms), "%Y-%m-%dT%H:%M:%S", &tm);
		snprintf(want_ms + strlen(want_ms), sizeof(want_ms) - strlen(want_ms), ".%03dZ",
			 (int)((us / 1000) % 1000));
		export_time(us, false, got, sizeof(got));
		assert_string_equal(got, want);
		export_time(us, true, got, sizeof(got));
		assert_string_equal(got, want_ms);
	}
	char small[8];
	export_time(0, false, small, sizeof(small)); /* cut, still terminated */
	assert_int_equal(strlen(small), 7);
	assert_int_equal(small[6], 'Z');
}

/* A web host's address is looked up (and its network told) only when it is global. */
static void test_web_host_addresses(void **state)
{
	(void)state;
	static const struct {
		const char *a;
		bool ok;
	} cases[] = {
		{"198.51.100.80", true}, {"8.8.8.8", true},        {"2001:db8::1", true},
		{"2a00:1450::1", true},   {"10.1.2.3", false},      {"127.0.0.1", false},
		{"172.16.0.1", false},    {"172.31.255.255", false}, {"172.32.0.1", true},
		{"192.168.1.1", false},   {"169.254.1.1", false},   {"100.64.0.1", false},
		{"100.128.0.1", true},    {"0.0.0.0", false},       {"224.0.0.1", false},
		{"255.255.255.255", false}, {"192.0.0.8", false},   {"::1", false},
		{"fe80::1", false},       {"fd00::1", false},       {"ff02::1", false},
		{"::ffff:10.0.0.1", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct netaddr a;
		assert_int_equal(netaddr_parse(cases[i].a, &a), 0);
		if (contact_address_public(&a) != cases[i].ok)
			fail_msg("%s: expected %s", cases[i].a, cases[i].ok ? "public" : "refused");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_arf_injection),
		cmocka_unit_test(test_arf_redaction_modes),
		cmocka_unit_test(test_arf_redaction_property),
		cmocka_unit_test(test_xarf),
		cmocka_unit_test(test_outbox_states),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_export_time),
		cmocka_unit_test(test_web_host_addresses),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
