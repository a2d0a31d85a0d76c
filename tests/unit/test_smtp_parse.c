/* Unit tests for proto/smtp_parse: Postfix tokenizer, MAIL/RCPT/BDAT parsers, UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "proto/smtp_parse.h"

static size_t tok(const char *in, char *buf, size_t len, struct smtp_args *a)
{
	snprintf(buf, len, "%s", in);
	return smtp_tokenize(buf, a);
}

static void test_tokenize(void **state)
{
	char b[256];
	struct smtp_args a;
	assert_int_equal(tok("MAIL FROM:<a@b> SIZE=1", b, sizeof(b), &a), 4);
	assert_string_equal(a.tok[0].s, "MAIL");
	assert_int_equal(strcasecmp(a.tok[1].s, "from:"), 0);
	assert_string_equal(a.tok[2].s, "<a@b>");
	assert_string_equal(a.tok[3].s, "SIZE=1");
	assert_int_equal(tok("mail   from: <a b@c>  ", b, sizeof(b), &a), 3);
	assert_int_equal(strcasecmp(a.tok[1].s, "from:"), 0);
	assert_string_equal(a.tok[2].s, "<a b@c>");
	assert_false(a.tok[2].error);
	assert_int_equal(tok("RCPT TO:<a@b", b, sizeof(b), &a), 3);
	assert_true(a.tok[2].error);
	assert_int_equal(tok("VRFY \"x y\"", b, sizeof(b), &a), 2);
	assert_string_equal(a.tok[1].s, "\"x y\"");
	assert_int_equal(tok("", b, sizeof(b), &a), 0);
	assert_int_equal(tok(" \t ", b, sizeof(b), &a), 0);
	/* A colon elsewhere does not split. */
	assert_int_equal(tok("X-Header: v", b, sizeof(b), &a), 2);
	assert_string_equal(a.tok[0].s, "X-Header:");
	/* Token limit. */
	char many[400] = "";
	for (int i = 0; i < 100; i++)
		strcat(many, "a ");
	assert_int_equal(tok(many, b, sizeof(b), &a), SMTP_MAX_TOKENS);
	assert_true(a.truncated);
	/* Nested brackets and escapes. */
	assert_int_equal(tok("MAIL FROM:<\"a>b\"@c> x", b, sizeof(b), &a), 4);
	assert_string_equal(a.tok[2].s, "<\"a>b\"@c>");
	assert_int_equal(tok("a\\ b c", b, sizeof(b), &a), 2);
}

static void test_header_and_utf8(void **state)
{
	assert_true(smtp_is_header_name("Subject:"));
	assert_true(smtp_is_header_name("Host:x"));
	assert_false(smtp_is_header_name(":x"));
	assert_false(smtp_is_header_name("MAIL"));
	assert_true(smtp_valid_utf8("caf\xc3\xa9", 5));
	assert_false(smtp_valid_utf8("\xff", 1));
	assert_false(smtp_valid_utf8("\xc3", 1));
	assert_false(smtp_valid_utf8("\xc0\x80", 2));       /* overlong */
	assert_false(smtp_valid_utf8("\xed\xa0\x80", 3));   /* surrogate */
	assert_true(smtp_valid_utf8("\xf0\x9f\x98\x80", 4)); /* emoji */
	assert_false(smtp_valid_utf8("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
}

static enum smtp_parse_result mail(const char *line, struct smtp_path_req *r, char *reply)
{
	static char b[2048];
	struct smtp_args a;
	snprintf(b, sizeof(b), "%s", line);
	smtp_tokenize(b, &a);
	struct smtp_parse_limits lim = {0};
	return smtp_parse_mail(&a, &lim, r, reply);
}

static enum smtp_parse_result rcpt(const char *line, bool utf8, struct smtp_path_req *r,
				   char *reply)
{
	static char b[2048];
	struct smtp_args a;
	snprintf(b, sizeof(b), "%s", line);
	smtp_tokenize(b, &a);
	struct smtp_parse_limits lim = {.smtputf8 = utf8};
	return smtp_parse_rcpt(&a, &lim, r, reply);
}

static void test_mail(void **state)
{
	struct smtp_path_req r;
	char reply[SMTP_REPLY_MAX];
	assert_int_equal(mail("MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME", &r, reply), SMTP_PARSE_OK);
	assert_string_equal(r.addr, "a@b");
	assert_true(r.has_size);
	assert_int_equal(r.size, 100);
	assert_int_equal(r.body, 8);
	assert_string_equal(r.params, "SIZE=100 BODY=8BITMIME");
	assert_int_equal(mail("MAIL FROM:<>", &r, reply), SMTP_PARSE_OK);
	assert_string_equal(r.addr, "");
	assert_int_equal(mail("MAIL FROM:a@b", &r, reply), SMTP_PARSE_OK);
	assert_string_equal(r.addr, "a@b");
	assert_int_equal(mail("MAIL FROM:<@x,@y:a@b>", &r, reply), SMTP_PARSE_OK);
	assert_string_equal(r.addr, "a@b");
	assert_int_equal(mail("MAIL TO:<a@b>", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.5.4 Syntax: MAIL FROM:<address>");
	assert_int_equal(mail("MAIL FROM:", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.5.4 Syntax: MAIL FROM:<address>");
	assert_int_equal(mail("MAIL FROM:<a@b", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.1.7 Bad sender address syntax");
	assert_int_equal(mail("MAIL FROM:<a\x01@b>", &r, reply), SMTP_PARSE_REJECT);
	assert_int_equal(mail("MAIL FROM:<a@b> FOO=BAR", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "555 5.5.4 Unsupported option: FOO=BAR");
	assert_int_equal(mail("MAIL FROM:<a@b> SIZE=", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.5.4 Bad message size syntax");
	assert_int_equal(mail("MAIL FROM:<a@b> SIZE=18446744073709551616", &r, reply),
			 SMTP_PARSE_LIMIT);
	assert_true(r.size_overflow);
	/* SIZE seen before a failing parameter is still reported (Postfix keeps it). */
	assert_int_equal(mail("MAIL FROM:<a@b> SIZE=77 NOPE", &r, reply), SMTP_PARSE_REJECT);
	assert_true(r.has_size);
	assert_int_equal(r.size, 77);
	assert_int_equal(mail("MAIL FROM:<\xc3\xa9@b>", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
	assert_int_equal(mail("MAIL FROM:<\xc3\xa9@b> smtputf8", &r, reply), SMTP_PARSE_OK);
	assert_true(r.smtputf8);
	assert_int_equal(mail("MAIL FROM:<a@b> RET=HDRS ENVID=x+2By", &r, reply), SMTP_PARSE_OK);
	assert_int_equal(mail("MAIL FROM:<a@b> ENVID=x+zz", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.5.4 Bad ENVID parameter syntax");
	assert_int_equal(mail("MAIL FROM:<a@b> RET=FULL RET=FULL", &r, reply), SMTP_PARSE_REJECT);
	assert_int_equal(mail("MAIL FROM:<a@b> AUTH=<>", &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "555 5.5.4 Unsupported option: AUTH=<>");
}

static void test_rcpt(void **state)
{
	struct smtp_path_req r;
	char reply[SMTP_REPLY_MAX];
	assert_int_equal(rcpt("RCPT TO:<a@b> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a@b", false,
			      &r, reply), SMTP_PARSE_OK);
	assert_true(r.has_notify);
	assert_true(r.has_orcpt);
	assert_int_equal(rcpt("RCPT TO:<>", false, &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "501 5.1.3 Bad recipient address syntax");
	assert_true(r.syntax_ok);
	assert_int_equal(rcpt("RCPT FROM:<a@b>", false, &r, reply), SMTP_PARSE_REJECT);
	assert_false(r.syntax_ok);
	assert_string_equal(reply, "501 5.5.4 Syntax: RCPT TO:<address>");
	assert_int_equal(rcpt("RCPT TO:<a@b> NOTIFY=NEVER,SUCCESS", false, &r, reply),
			 SMTP_PARSE_REJECT);
	assert_int_equal(rcpt("RCPT TO:<a@b> NOTIFY=SUCCESS,", false, &r, reply),
			 SMTP_PARSE_REJECT);
	assert_int_equal(rcpt("RCPT TO:<\xc3\xa9@b>", false, &r, reply), SMTP_PARSE_REJECT);
	assert_int_equal(rcpt("RCPT TO:<\xc3\xa9@b>", true, &r, reply), SMTP_PARSE_OK);
	assert_int_equal(rcpt("RCPT TO:<a@b> X=Y", false, &r, reply), SMTP_PARSE_REJECT);
	assert_string_equal(reply, "555 5.5.4 Unsupported option: X=Y");
	assert_string_equal(smtp_addr_domain("a@b@c"), "c");
	assert_null(smtp_addr_domain("postmaster"));
	assert_true(smtp_addr_is_postmaster("PostMaster@x"));
	assert_true(smtp_addr_is_postmaster("postmaster"));
	assert_false(smtp_addr_is_postmaster("postmaster2@x"));
	/* Sender-specified routing: relay attempts whatever the domain. */
	assert_true(smtp_addr_is_routed("a%b.example@example.com"));
	assert_true(smtp_addr_is_routed("\"a%b.example\""));
	assert_true(smtp_addr_is_routed("a@b.example@example.com"));
	assert_true(smtp_addr_is_routed("b.example!a"));
	assert_true(smtp_addr_is_routed("b.example!a@example.com"));
	assert_true(smtp_addr_is_routed("a\\@b@example.com"));
	assert_false(smtp_addr_is_routed("alice+tag@example.com"));
	assert_false(smtp_addr_is_routed("\"a b\"@example.com"));
	assert_false(smtp_addr_is_routed("postmaster"));
}

static enum smtp_parse_result bdat(const char *line, struct smtp_bdat_req *r, char *reply)
{
	static char b[256];
	struct smtp_args a;
	snprintf(b, sizeof(b), "%s", line);
	smtp_tokenize(b, &a);
	return smtp_parse_bdat(&a, r, reply);
}

static void test_bdat(void **state)
{
	struct smtp_bdat_req r;
	char reply[SMTP_REPLY_MAX];
	assert_int_equal(bdat("BDAT 10 LAST", &r, reply), SMTP_PARSE_OK);
	assert_int_equal(r.count, 10);
	assert_true(r.last);
	assert_int_equal(bdat("BDAT 0 last", &r, reply), SMTP_PARSE_OK);
	assert_int_equal(bdat("BDAT 5", &r, reply), SMTP_PARSE_OK);
	assert_false(r.last);
	const char *bad[] = {"BDAT", "BDAT xyz", "BDAT 5 FIRST", "BDAT -1", "BDAT 1 LAST x",
			     "BDAT +5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(bdat(bad[i], &r, reply), SMTP_PARSE_REJECT);
		assert_string_equal(reply, "521 5.5.4 Syntax: BDAT count [LAST]");
	}
	assert_int_equal(bdat("BDAT 99999999999999999999", &r, reply), SMTP_PARSE_LIMIT);
	assert_string_equal(reply, "552 5.3.4 Chunk exceeds message size limit");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tokenize),
		cmocka_unit_test(test_header_and_utf8),
		cmocka_unit_test(test_mail),
		cmocka_unit_test(test_rcpt),
		cmocka_unit_test(test_bdat),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
