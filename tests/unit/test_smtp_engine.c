/*
 * Unit tests for the SMTP engine through its host API: suspension and the consumed
 * counts, byte-at-a-time equivalence, CRAM-MD5, NUL-safe AUTH events, bounded input.
 * (Reply texts per verb are covered by the conversation files.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deceive/auth_policy.h"
#include "proto/sasl.h"
#include "proto/smtp.h"
#include "fake_host.h"
#include "store/event.h"

static const char *domains[] = {"example.com"};

static void config(struct smtp_config *c, enum smtp_role role)
{
	memset(c, 0, sizeof(*c));
	c->hostname = "mail.example.com";
	c->local_domains = domains;
	c->n_local_domains = 1;
	c->role = role;
	c->tls_available = true;
	c->line_length_limit = 2048;
	c->message_size_limit = 10240000;
	c->recipient_limit = 1000;
	c->soft_error_limit = 10;
	c->hard_error_limit = 20;
	c->error_sleep_ms = 1000;
	c->auth_failure_delay_ms = 2000;
}

struct fix {
	struct smtp_config cfg;
	struct fake_host h;
	struct auth_policy *auth;
};

static void fix_start_limit(struct fix *f, enum smtp_role role, bool tls, size_t line_limit)
{
	static const char *acc[] = {"alice:alice-Secret-1", "tim:tanstaaftanstaaf"};
	config(&f->cfg, role);
	if (line_limit)
		f->cfg.line_length_limit = line_limit;
	f->auth = auth_static_new(acc, 2);
	f->cfg.auth = f->auth;
	f->cfg.cram_md5 = true;
	fake_host_init(&f->h, &smtp_engine);
	struct proto_peer peer = {.ip = "192.0.2.9", .port = 1234, .rdns = NULL};
	f->h.s = smtp_session_new(&f->cfg, &peer, tls, &fake_host_ops, &f->h);
	assert_non_null(f->h.s);
	if (tls)
		smtp_session_tls_started(f->h.s, "TLSv1.3", "TLS_AES_128_GCM_SHA256", 128);
	smtp_session_start(f->h.s);
}

static void fix_start(struct fix *f, enum smtp_role role, bool tls)
{
	fix_start_limit(f, role, tls, 0);
}

static void fix_end(struct fix *f)
{
	smtp_engine.destroy(f->h.s);
	f->h.s = NULL;
	assert_null(f->h.s);
	fake_host_free(&f->h);
	auth_policy_free(&f->auth);
}

static const char *out(struct fix *f)
{
	return f->h.out.data ? f->h.out.data : "";
}

static void test_commit_suspends(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	const char *in = "HELO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@example.com>\r\n"
			 "DATA\r\nhello\r\n.\r\nQUIT\r\n";
	size_t n = smtp_session_feed(f.h.s, in, strlen(in));
	/* Suspended at the end of DATA: QUIT is not consumed yet. */
	assert_int_equal(n, strlen(in) - strlen("QUIT\r\n"));
	assert_true(f.h.want_commit);
	assert_string_equal(smtp_session_state_name(f.h.s), "commit");
	/* While suspended, feed consumes nothing. */
	assert_int_equal(smtp_session_feed(f.h.s, "QUIT\r\n", 6), 0);
	struct proto_commit_result r = {.ok = true, .queue_id = "ABCDEF12345", .spool_name = "s",
				       .sha256 = "00", .size = 10};
	f.h.want_commit = false;
	smtp_session_committed(f.h.s, &r);
	assert_non_null(strstr(out(&f), "250 2.0.0 Ok: queued as ABCDEF12345\r\n"));
	assert_int_equal(smtp_session_feed(f.h.s, "QUIT\r\n", 6), 6);
	assert_true(f.h.closed);
	assert_string_equal(f.h.close_reason, "quit");
	struct proto_counters c;
	smtp_session_counters(f.h.s, &c);
	assert_int_equal(c.messages, 1);
	assert_int_equal(c.commands, 5);
	assert_int_equal(c.errors, 0);
	/* The message was written with CRLF and a Received header, without the dot. */
	assert_memory_equal(f.h.msg.data, "Received: from c (unknown [192.0.2.9])\r\n", 40);
	size_t ml = f.h.msg.len;
	assert_true(ml > 7);
	assert_memory_equal(f.h.msg.data + ml - 7, "hello\r\n", 7);
	fix_end(&f);
}

static void test_starttls_consumed(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_SUBMISSION, false);
	const char *in = "EHLO c\r\nSTARTTLS\r\nEHLO injected\r\n";
	size_t n = smtp_session_feed(f.h.s, in, strlen(in));
	assert_int_equal(n, strlen("EHLO c\r\nSTARTTLS\r\n"));
	assert_true(f.h.want_tls);
	assert_string_equal(smtp_session_state_name(f.h.s), "starttls");
	/* the rest is the host's to discard and record (one event: test_conn.c) */
	assert_false(fake_host_has_event(&f.h, "offence",
					 (const char *[]){"\"kind\":\"starttls_injection\"", NULL}));
	smtp_session_tls_started(f.h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	assert_string_equal(smtp_session_state_name(f.h.s), "connected");
	buf_reset(&f.h.out);
	assert_int_equal(smtp_session_feed(f.h.s, "EHLO c\r\n", 8), 8);
	assert_non_null(strstr(out(&f), "250-AUTH PLAIN LOGIN CRAM-MD5\r\n"));
	assert_null(strstr(out(&f), "STARTTLS"));
	fix_end(&f);
}

/* Whole sessions give the same replies fed at once or a byte at a time. */
static void run_bytes(const char *in, bool one_by_one, struct buf *result)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	if (one_by_one) {
		for (size_t i = 0; i < strlen(in) && !f.h.closed; i++)
			fake_host_drive(&f.h, in + i, 1);
	} else {
		fake_host_drive(&f.h, in, strlen(in));
	}
	buf_append(result, out(&f), f.h.out.len);
	buf_puts(result, "\n--msg--\n");
	buf_append(result, f.h.last_msg.data ? f.h.last_msg.data : "", f.h.last_msg.len);
	fix_end(&f);
}

static void test_byte_at_a_time(void **state)
{
	const char *in = "EHLO c\r\nMAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<x@example.com>\r\n"
			 "RCPT TO:<y@other.example>\r\nDATA\r\n..a\r\nb\nc\r\r\n.\r\n"
			 "MAIL FROM:<>\r\nRCPT TO:<z@example.com>\r\nBDAT 5\r\n12345BDAT 2 LAST\r\nxy"
			 "VRFY x\r\nNOOP\r\nQUIT\r\n";
	struct buf a, b;
	buf_init(&a, 0);
	buf_init(&b, 0);
	run_bytes(in, false, &a);
	run_bytes(in, true, &b);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.data, b.data, a.len);
	assert_non_null(strstr(a.data, "250 2.0.0 Ok: 7 bytes queued as"));
	buf_free(&a);
	buf_free(&b);
}

static void test_cram_md5(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_SMTPS, true);
	buf_reset(&f.h.out);
	fake_host_drive(&f.h, "AUTH CRAM-MD5\r\n", 15);
	const char *o = out(&f);
	assert_memory_equal(o, "334 ", 4);
	const char *eol = strstr(o, "\r\n");
	assert_non_null(eol);
	unsigned char chal[256];
	size_t cl;
	assert_int_equal(sasl_b64_decode(o + 4, (size_t)(eol - o - 4), chal, sizeof(chal) - 1, &cl), 0);
	chal[cl] = '\0';
	assert_int_equal(chal[0], '<');
	assert_non_null(strstr((char *)chal, "@mail.example.com>"));
	char digest[33], answer[128], b64[200];
	auth_cram_md5_digest("tanstaaftanstaaf", (char *)chal, digest);
	snprintf(answer, sizeof(answer), "tim %s", digest);
	sasl_b64_encode((unsigned char *)answer, strlen(answer), b64);
	strcat(b64, "\r\n");
	buf_reset(&f.h.out);
	fake_host_drive(&f.h, b64, strlen(b64));
	assert_string_equal(out(&f), "235 2.7.0 Authentication successful\r\n");
	assert_string_equal(smtp_session_auth_user(f.h.s), "tim");
	assert_true(fake_host_has_event(&f.h, "auth", (const char *[]){"\"mechanism\":\"CRAM-MD5\"",
		"\"username\":\"tim\"", "\"password\":null", "\"success\":true", NULL}));
	fix_end(&f);
}

static void test_auth_nul_bytes(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_SMTPS, true);
	/* LOGIN password "pa\0ss\xff": every byte reaches the event. */
	char b64[64], line[160];
	sasl_b64_encode((const unsigned char *)"pa\0ss\xff", 6, b64);
	snprintf(line, sizeof(line), "AUTH LOGIN YWxpY2U=\r\n%s\r\n", b64);
	fake_host_drive(&f.h, line, strlen(line));
	assert_true(fake_host_has_event(&f.h, "auth", (const char *[]){
		"\"password\":\"pa\\u0000ss\\u00ff\"", "\"result\":\"malformed\"", NULL}));
	assert_null(smtp_session_auth_user(f.h.s));
	assert_int_equal(f.h.n_waits, 1);
	assert_int_equal(f.h.waits[0], 2000);
	fix_end(&f);
}

/* Regression (issue 7, one credential rule): the right password followed by a NUL and
 * more bytes is not that password.  SMTP used to cut at the NUL and log alice in. */
static void test_auth_password_with_nul_never_cut(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_SMTPS, true);
	static const char pw[] = "alice-Secret-1\0junk";
	char b64[64], line[160];
	sasl_b64_encode((const unsigned char *)pw, sizeof(pw) - 1, b64);
	snprintf(line, sizeof(line), "AUTH LOGIN YWxpY2U=\r\n%s\r\n", b64);
	fake_host_drive(&f.h, line, strlen(line));
	assert_null(smtp_session_auth_user(f.h.s));
	assert_non_null(strstr(out(&f), "535 5.7.8 Error: authentication failed: "
				     "(reason unavailable)\r\n"));
	assert_true(fake_host_has_event(&f.h, "auth", (const char *[]){
		"\"password\":\"alice-Secret-1\\u0000junk\"", "\"success\":false",
		"\"result\":\"malformed\"", NULL}));
	/* the same user name and password without the tail work */
	buf_reset(&f.h.out);
	sasl_b64_encode((const unsigned char *)pw, strlen(pw), b64);
	snprintf(line, sizeof(line), "AUTH LOGIN YWxpY2U=\r\n%s\r\n", b64);
	fake_host_drive(&f.h, line, strlen(line));
	assert_string_equal(smtp_session_auth_user(f.h.s), "alice");
	fix_end(&f);
}

/* Regression (issue 7): with line_length_limit >= 16384 an AUTH LOGIN password may
 * decode to exactly SASL_RESP_LIMIT (12,288) bytes; it used to be copied with its
 * terminating NUL into a 12,288-byte stack buffer.  Now the one credential rule
 * refuses it (over 8 KiB) like a wrong password, and the event keeps every byte. */
static void test_auth_login_password_at_sasl_limit(void **state)
{
	struct fix f;
	fix_start_limit(&f, SMTP_ROLE_SMTPS, true, 16384);
	size_t plen = 12288;
	unsigned char *pw = malloc(plen);
	memset(pw, 'p', plen);
	char *b64 = malloc(4 * ((plen + 2) / 3) + 1);
	size_t bl = sasl_b64_encode(pw, plen, b64);
	assert_int_equal(bl, 16384);
	struct buf in;
	buf_init(&in, 0);
	buf_puts(&in, "AUTH LOGIN YWxpY2U=\r\n");
	buf_append(&in, b64, bl);
	buf_puts(&in, "\n"); /* a bare LF: the line is exactly line_length_limit */
	fake_host_drive(&f.h, in.data, in.len);
	assert_non_null(strstr(out(&f), "535 5.7.8 Error: authentication failed: "
				     "(reason unavailable)\r\n"));
	assert_null(smtp_session_auth_user(f.h.s));
	assert_true(fake_host_has_event(&f.h, "auth", (const char *[]){
		"\"username\":\"alice\"", "\"result\":\"malformed\"", "pppppppppppppppp", NULL}));
	assert_int_equal(f.h.n_waits, 1); /* the failure delay, as for a wrong password */
	buf_free(&in);
	free(b64);
	free(pw);
	fix_end(&f);
}

/* Regression (issue 7): the message event kept at most 1,024 recipients while
 * recipient_limit allows 100,000; the rest were silently lost.  Now every accepted
 * recipient is listed, and recipient_count says how many there were. */
static void test_message_event_lists_every_recipient(void **state)
{
	struct fix f;
	config(&f.cfg, SMTP_ROLE_MX);
	f.cfg.recipient_limit = 3000;
	f.auth = NULL;
	fake_host_init(&f.h, &smtp_engine);
	struct proto_peer peer = {.ip = "192.0.2.9", .port = 1234, .rdns = NULL};
	f.h.s = smtp_session_new(&f.cfg, &peer, false, &fake_host_ops, &f.h);
	smtp_session_start(f.h.s);
	struct buf in;
	buf_init(&in, 0);
	buf_puts(&in, "EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
	for (int i = 0; i < 2500; i++)
		buf_printf(&in, "RCPT TO:<user%d@example.com>\r\n", i);
	buf_puts(&in, "DATA\r\nhello\r\n.\r\n");
	fake_host_drive(&f.h, in.data, in.len);
	assert_non_null(strstr(out(&f), "250 2.0.0 Ok: queued as"));
	assert_true(fake_host_has_event(&f.h, "message", (const char *[]){
		"\"user0@example.com\"", "\"user1024@example.com\"", "\"user2499@example.com\"]",
		"\"recipient_count\":2500", NULL}));
	char why[256];
	assert_true(fake_host_check_schema(&f.h, why, sizeof(why)));
	buf_free(&in);
	fix_end(&f);
}

static void test_wait_suspends(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	f.cfg.soft_error_limit = 1;
	f.cfg.error_sleep_ms = 10;
	const char *in = "BAD\r\nNOOP\r\nNOOP\r\n";
	size_t n = smtp_session_feed(f.h.s, in, strlen(in));
	/* After one error, the next reply waits: feed stops after the NOOP line. */
	assert_int_equal(n, strlen("BAD\r\nNOOP\r\n"));
	assert_true(f.h.want_wait);
	assert_null(strstr(out(&f), "250 2.0.0 Ok"));
	f.h.want_wait = false;
	smtp_session_resume(f.h.s);
	assert_non_null(strstr(out(&f), "250 2.0.0 Ok\r\n"));
	fix_end(&f);
}

static void test_many_bad_commands(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	struct buf in;
	buf_init(&in, 0);
	for (int i = 0; i < 10000; i++)
		buf_puts(&in, "BOGUS\r\n");
	fake_host_drive(&f.h, in.data, in.len);
	assert_true(f.h.closed);
	assert_string_equal(f.h.close_reason, "too_many_errors");
	struct proto_counters c;
	smtp_session_counters(f.h.s, &c);
	assert_int_equal(c.commands, 20);
	assert_int_equal(c.errors, 20);
	/* Replies 11..20 waited, and the 421 waited once more after the 20th reply
	 * (Postfix sleeps before it too: it leaves error_sleep after the 20th). */
	assert_int_equal(f.h.n_waits, 11);
	assert_non_null(strstr(out(&f), "421 4.7.0 mail.example.com Error: too many errors\r\n"));
	buf_free(&in);
	fix_end(&f);
}

static void test_huge_line(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	size_t big = 1 << 20;
	char *line = malloc(big);
	memset(line, 'A', big);
	memcpy(line, "NOOP ", 5);
	/* 1 MB without a newline: all consumed, nothing answered yet, memory bounded. */
	assert_int_equal(smtp_session_feed(f.h.s, line, big), big);
	assert_int_equal(smtp_session_feed(f.h.s, "\r\n", 2), 2);
	assert_non_null(strstr(out(&f), "250 2.0.0 Ok\r\n"));
	assert_true(fake_host_has_event(&f.h, "offence", (const char *[]){"line_too_long", NULL}));
	/* The offence detail is cut to 200 bytes. */
	const char *d = strstr(f.h.events.data, "\"detail\":\"");
	assert_non_null(d);
	const char *end = strchr(d + 10, '"');
	assert_int_equal(end - (d + 10), 200);
	free(line);
	fix_end(&f);
}

static void test_hangup_mid_bdat(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	const char *in = "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.com>\r\nBDAT 100\r\nabc";
	fake_host_drive(&f.h, in, strlen(in));
	assert_string_equal(smtp_session_state_name(f.h.s), "bdat");
	assert_true(f.h.msg_open);
	smtp_session_hangup(f.h.s, "client_closed");
	assert_false(f.h.msg_open);
	assert_int_equal(f.h.msg_aborts, 1);
	assert_true(fake_host_has_event(&f.h, "message_rejected",
					(const char *[]){"\"reason\":\"hangup\"", "\"size\":3", NULL}));
	assert_string_equal(smtp_session_state_name(f.h.s), "closed");
	fix_end(&f);
}

static void test_free_aborts_open_message(void **state)
{
	struct fix f;
	fix_start(&f, SMTP_ROLE_MX, false);
	const char *in = "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.com>\r\nDATA\r\nabc\r\n";
	fake_host_drive(&f.h, in, strlen(in));
	assert_true(f.h.msg_open);
	smtp_engine.destroy(f.h.s);
	f.h.s = NULL;
	assert_false(f.h.msg_open);
	fake_host_free(&f.h);
	auth_policy_free(&f.auth);
}

/* The schema checker used by the conversations and the fuzzer can fail. */
static void test_schema_checker(void **state)
{
	struct fake_host h;
	char why[256];
	fake_host_init(&h, &smtp_engine);
	struct mxb_event *ev = mxb_event_new("helo");
	mxb_event_str(ev, "verb", "EHLO");
	mxb_event_str(ev, "name", "x");
	fake_host_ops.event(&h, ev);
	assert_true(fake_host_check_schema(&h, why, sizeof(why)));
	ev = mxb_event_new("helo");
	mxb_event_str(ev, "verb", "EHLO");
	fake_host_ops.event(&h, ev);
	assert_false(fake_host_check_schema(&h, why, sizeof(why)));
	assert_non_null(strstr(why, "missing"));
	buf_reset(&h.events);
	ev = mxb_event_new("mail");
	mxb_event_str(ev, "sender", "a");
	mxb_event_str(ev, "params", "");
	mxb_event_null(ev, "size");
	mxb_event_str(ev, "accepted", "yes"); /* wrong type */
	mxb_event_int(ev, "reply", 250);
	fake_host_ops.event(&h, ev);
	assert_false(fake_host_check_schema(&h, why, sizeof(why)));
	buf_reset(&h.events);
	ev = mxb_event_new("nonsense");
	fake_host_ops.event(&h, ev);
	assert_false(fake_host_check_schema(&h, why, sizeof(why)));
	buf_reset(&h.events);
	ev = mxb_event_new("offence");
	mxb_event_null(ev, "kind"); /* not nullable */
	mxb_event_str(ev, "detail", "");
	fake_host_ops.event(&h, ev);
	assert_false(fake_host_check_schema(&h, why, sizeof(why)));
	fake_host_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit_suspends),
		cmocka_unit_test(test_starttls_consumed),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_cram_md5),
		cmocka_unit_test(test_auth_nul_bytes),
		cmocka_unit_test(test_auth_login_password_at_sasl_limit),
		cmocka_unit_test(test_auth_password_with_nul_never_cut),
		cmocka_unit_test(test_message_event_lists_every_recipient),
		cmocka_unit_test(test_wait_suspends),
		cmocka_unit_test(test_many_bad_commands),
		cmocka_unit_test(test_huge_line),
		cmocka_unit_test(test_hangup_mid_bdat),
		cmocka_unit_test(test_free_aborts_open_message),
		cmocka_unit_test(test_schema_checker),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
