/* Unit tests for deceive/auth_static: fixed accounts, CRAM-MD5 digests (RFC 2195). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "deceive/auth_policy.h"

static enum auth_verdict check(struct auth_policy *p, const char *u, const char *pw)
{
	struct auth_request r = {.proto = "smtp", .mechanism = "PLAIN", .src_ip = "192.0.2.1",
				 .username = u, .password = pw};
	return auth_policy_check(p, &r);
}

static void test_accounts(void **state)
{
	const char *acc[] = {"alice:alice-Secret-1", "bob:p:w", "broken-entry"};
	struct auth_policy *p = auth_static_new(acc, 3);
	assert_non_null(p);
	assert_int_equal(check(p, "alice", "alice-Secret-1"), AUTH_OK);
	assert_int_equal(check(p, "alice", "alice-Secret-"), AUTH_FAIL);
	assert_int_equal(check(p, "alice", "alice-Secret-12"), AUTH_FAIL);
	assert_int_equal(check(p, "Alice", "alice-Secret-1"), AUTH_FAIL);
	assert_int_equal(check(p, "bob", "p:w"), AUTH_OK);
	assert_int_equal(check(p, "broken-entry", ""), AUTH_FAIL);
	assert_int_equal(check(p, "", ""), AUTH_FAIL);
	struct auth_request nouser = {.mechanism = "PLAIN"};
	assert_int_equal(auth_policy_check(p, &nouser), AUTH_FAIL);
	auth_policy_free(&p);
	assert_null(p);
	auth_policy_free(&p); /* NULL is fine */
}

static void test_no_accounts(void **state)
{
	struct auth_policy *p = auth_static_new(NULL, 0);
	assert_int_equal(check(p, "alice", "alice-Secret-1"), AUTH_FAIL);
	auth_policy_free(&p);
	/* A NULL policy fails everything. */
	assert_int_equal(check(NULL, "alice", "x"), AUTH_FAIL);
}

static void test_cram_md5(void **state)
{
	/* RFC 2195 section 2 example. */
	char out[33];
	auth_cram_md5_digest("tanstaaftanstaaf",
			     "<1896.697170952@postoffice.reston.mci.net>", out);
	assert_string_equal(out, "b913a602c7eda7a495b4e6e7334d3890");
	const char *acc[] = {"tim:tanstaaftanstaaf"};
	struct auth_policy *p = auth_static_new(acc, 1);
	struct auth_request r = {.mechanism = "CRAM-MD5", .username = "tim",
				 .cram_challenge = "<1896.697170952@postoffice.reston.mci.net>",
				 .cram_digest = "b913a602c7eda7a495b4e6e7334d3890"};
	assert_int_equal(auth_policy_check(p, &r), AUTH_OK);
	r.cram_digest = "b913a602c7eda7a495b4e6e7334d3891";
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	r.cram_digest = "short";
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	auth_policy_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_accounts),
		cmocka_unit_test(test_no_accounts),
		cmocka_unit_test(test_cram_md5),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
