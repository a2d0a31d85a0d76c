/*
 * test_web_auth: web credentials (src/web/auth.c): Basic with a crypt(3) hash, bearer
 * tokens by SHA-256, wrong and malformed headers, the per-IP failure limit, CSRF
 * tokens.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "web/auth.h"

/* openssl passwd -6 -salt saltsalt 'pa:ss w0rd' */
#define OPS_HASH "$6$saltsalt$lSwPx09USH0WNkYJOum0ZTI72dP1yNRM3XAjLPqIwMqIYCTy4n/emMOkjK9S0olVbM7b49PrWpu02Z5MXvMXC0"
/* printf %s tok-123 | sha256sum */
#define TOK_SHA "c8963414bf6c4c869eeac5f8a057c3dc574d422f1b108397b66f67bab3d2f981"

static struct web_auth *make(unsigned limit)
{
	char *entries[] = {(char *)"ops:read:" OPS_HASH, (char *)"bot:admin:sha256:" TOK_SHA};
	const char *why = NULL;
	struct web_auth *a = web_auth_new(entries, 2, limit, &why);
	assert_non_null(a);
	return a;
}

static void test_basic_and_bearer(void **state)
{
	(void)state;
	struct web_auth *a = make(10);
	char name[65];
	assert_true(web_auth_required(a));
	/* "ops:pa:ss w0rd": the password may hold a colon (the first one splits). */
	assert_int_equal(web_auth_check(a, "Basic b3BzOnBhOnNzIHcwcmQ=", name), WEB_ROLE_READ);
	assert_string_equal(name, "ops");
	/* Cached the second time: same answer. */
	assert_int_equal(web_auth_check(a, "Basic b3BzOnBhOnNzIHcwcmQ=", name), WEB_ROLE_READ);
	assert_int_equal(web_auth_check(a, "Bearer tok-123", name), WEB_ROLE_ADMIN);
	assert_string_equal(name, "bot");
	/* Wrong password, unknown user, wrong token, garbage, token as a password. */
	assert_int_equal(web_auth_check(a, "Basic b3BzOnBhOnNzIHcwcmU=", name), WEB_ROLE_NONE);
	assert_string_equal(name, "");
	assert_int_equal(web_auth_check(a, "Basic Ym9iOnBhOnNzIHcwcmQ=", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, "Bearer tok-124", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, "Bearer ", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, "Basic !!!!", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, "Basic b3Bz", name), WEB_ROLE_NONE); /* no colon */
	assert_int_equal(web_auth_check(a, "Basic Ym90OnRvay0xMjM=", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, "Digest x", name), WEB_ROLE_NONE);
	assert_int_equal(web_auth_check(a, NULL, name), WEB_ROLE_NONE);
	web_auth_free(&a);
	assert_null(a);
}

static void test_rate_limit(void **state)
{
	(void)state;
	struct web_auth *a = make(3);
	int64_t t = 1000000;
	for (int i = 0; i < 3; i++) {
		assert_false(web_auth_blocked(a, "192.0.2.1", t));
		web_auth_failed(a, "192.0.2.1", t);
	}
	assert_true(web_auth_blocked(a, "192.0.2.1", t + 1000));
	assert_false(web_auth_blocked(a, "192.0.2.2", t + 1000)); /* per address */
	assert_false(web_auth_blocked(a, "192.0.2.1", t + 61000)); /* the minute is over */
	web_auth_failed(a, "192.0.2.1", t + 61000);                 /* a new window */
	assert_false(web_auth_blocked(a, "192.0.2.1", t + 61000));
	/* Many addresses: the table stays bounded and keeps working. */
	char ip[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.%d", i >> 16 & 255, i >> 8 & 255, i & 255);
		web_auth_failed(a, ip, t + 62000);
	}
	for (int i = 0; i < 3; i++)
		web_auth_failed(a, "198.51.100.9", t + 62000);
	assert_true(web_auth_blocked(a, "198.51.100.9", t + 62000));
	web_auth_free(&a);
}

static void test_csrf(void **state)
{
	(void)state;
	struct web_auth *a = make(10);
	char tok[65], other[65];
	web_auth_csrf(a, "bot", tok);
	web_auth_csrf(a, "ops", other);
	assert_int_equal(strlen(tok), 64);
	assert_string_not_equal(tok, other);
	assert_true(web_auth_csrf_ok(a, "bot", tok));
	assert_false(web_auth_csrf_ok(a, "ops", tok));
	assert_false(web_auth_csrf_ok(a, "bot", NULL));
	assert_false(web_auth_csrf_ok(a, "bot", "00"));
	tok[0] = tok[0] == 'a' ? 'b' : 'a';
	assert_false(web_auth_csrf_ok(a, "bot", tok));
	/* Another process (key) gives other tokens. */
	struct web_auth *b = make(10);
	char tok2[65];
	web_auth_csrf(b, "bot", tok2);
	web_auth_csrf(a, "bot", tok);
	assert_string_not_equal(tok, tok2);
	web_auth_free(&a);
	web_auth_free(&b);
}

static void test_no_credentials(void **state)
{
	(void)state;
	const char *why = NULL;
	struct web_auth *a = web_auth_new(NULL, 0, 10, &why);
	char name[65];
	assert_non_null(a);
	assert_false(web_auth_required(a));
	assert_int_equal(web_auth_check(a, "Basic b3BzOnBhOnNzIHcwcmQ=", name), WEB_ROLE_NONE);
	web_auth_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_basic_and_bearer),
		cmocka_unit_test(test_rate_limit),
		cmocka_unit_test(test_csrf),
		cmocka_unit_test(test_no_credentials),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
