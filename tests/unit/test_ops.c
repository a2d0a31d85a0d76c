/*
 * test_ops: the operations helpers: log timestamps and rate limit (core/log), reading
 * an event's fields back for the daemon log (core/evlog), the configuration keys of
 * reload (config_key_equal/copy, RELOAD_RESTART_KEYS) and the `log` key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "core/config.h"
#include "core/evlog.h"
#include "core/log.h"
#include "core/reload.h"
#include "store/event.h"

static void test_rfc3339(void **state)
{
	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	char ts[64];
	log_rfc3339(1747735872123456LL, ts, sizeof(ts)); /* 2025-05-20T10:11:12.123456Z */
	assert_string_equal(ts, "2025-05-20T10:11:12.123456+00:00");
	setenv("TZ", "EST5", 1); /* no DST rule: always -05:00 */
	tzset();
	log_rfc3339(1747735872000001LL, ts, sizeof(ts));
	assert_string_equal(ts, "2025-05-20T05:11:12.000001-05:00");
	unsetenv("TZ");
	tzset();
}

static void test_ratelimit(void **state)
{
	(void)state;
	struct log_ratelimit rl = { 0 };
	unsigned long more = 99;
	assert_true(log_ratelimit(&rl, 1000, 60000, &more));
	assert_int_equal(more, 0);
	for (int i = 0; i < 5; i++)
		assert_false(log_ratelimit(&rl, 1000 + i * 1000, 60000, &more));
	assert_true(log_ratelimit(&rl, 61000, 60000, &more));
	assert_int_equal(more, 5);
	assert_false(log_ratelimit(&rl, 61001, 60000, &more));
}

static void test_evlog_field(void **state)
{
	(void)state;
	struct mxb_event *ev = mxb_event_new("auth");
	const char user[] = "bo\"b\\,\"success\":true\n\xff\x01";
	mxb_event_str(ev, "mechanism", "LOGIN");
	mxb_event_strn(ev, "username", user, sizeof(user) - 1);
	const char *arr[] = { "a\"]", "b" };
	mxb_event_str_array(ev, "list", arr, 2);
	mxb_event_null(ev, "password");
	mxb_event_bool(ev, "success", false);
	mxb_event_int(ev, "n", -42);
	struct buf b;
	buf_init(&b, 0);
	assert_int_equal(evlog_field(ev, "username", &b), 1);
	assert_int_equal(b.len, sizeof(user) - 1);
	assert_memory_equal(b.data, user, b.len); /* the bytes as sent, \u00XX undone */
	buf_reset(&b);
	assert_int_equal(evlog_field(ev, "success", &b), 2);
	assert_int_equal(b.len, 5);
	assert_memory_equal(b.data, "false", 5);
	buf_reset(&b);
	assert_int_equal(evlog_field(ev, "n", &b), 2);
	assert_memory_equal(b.data, "-42", 3);
	buf_reset(&b);
	assert_int_equal(evlog_field(ev, "password", &b), 2);
	buf_reset(&b);
	assert_int_equal(evlog_field(ev, "nothing", &b), 0);
	buf_free(&b);
	mxb_event_free(&ev);
}

static void test_log_key(void **state)
{
	(void)state;
	struct mxb_config c;
	char *err = NULL;
	config_defaults(&c);
	assert_string_equal(c.log, "stderr");
	const char ok[] = "log = syslog\n";
	assert_int_equal(config_parse(&c, "t.conf", ok, sizeof(ok) - 1, &err), 0);
	assert_string_equal(c.log, "syslog");
	assert_int_equal(config_key_line(&c, "log"), 1);
	config_free(&c);
	config_defaults(&c);
	const char bad[] = "\nlog = relative/file.log\n";
	assert_int_equal(config_parse(&c, "t.conf", bad, sizeof(bad) - 1, &err), -1);
	assert_string_equal(err, "t.conf:2: log: expected stderr, syslog or an absolute file name");
	free(err);
	err = NULL;
	config_free(&c);
}

static void test_key_equal_copy(void **state)
{
	(void)state;
	struct mxb_config a, b;
	char *err = NULL;
	config_defaults(&a);
	config_defaults(&b);
	const char ta[] = "local_domains = a.example, b.example\nsmtp_listen = 127.0.0.1:2600\n"
			  "message_size_limit = 2m\ncrack_after_failures = 3-4\n";
	const char tb[] = "local_domains = a.example\nsmtp_listen = 127.0.0.1:2601\n"
			  "message_size_limit = 2m\ncrack_after_failures = 3-5\n";
	assert_int_equal(config_parse(&a, "a", ta, sizeof(ta) - 1, &err), 0);
	assert_int_equal(config_parse(&b, "b", tb, sizeof(tb) - 1, &err), 0);
	assert_false(config_key_equal(&a, &b, "local_domains"));
	assert_false(config_key_equal(&a, &b, "smtp_listen"));
	assert_true(config_key_equal(&a, &b, "message_size_limit"));
	assert_false(config_key_equal(&a, &b, "crack_after_failures"));
	assert_true(config_key_equal(&a, &b, "no_such_key"));
	config_key_copy(&b, &a, "local_domains");
	config_key_copy(&b, &a, "smtp_listen");
	config_key_copy(&b, &a, "crack_after_failures");
	assert_true(config_key_equal(&a, &b, "local_domains"));
	assert_true(config_key_equal(&a, &b, "smtp_listen"));
	assert_true(config_key_equal(&a, &b, "crack_after_failures"));
	assert_int_equal(b.n_local_domains, 2);
	assert_string_equal(b.local_domains[1], "b.example");
	assert_int_equal(b.crack_fail_max, 4);
	config_free(&a); /* b's copies are its own */
	assert_string_equal(b.smtp_listen[0], "127.0.0.1:2600");
	config_free(&b);
}

/* Every restart-only key of reload.h is a key of the table (a typo there would make a
 * restart-only setting silently reloadable). */
static void test_restart_keys_exist(void **state)
{
	(void)state;
	static const char *const rk[] = { RELOAD_RESTART_KEYS };
	for (size_t i = 0; i < sizeof(rk) / sizeof(rk[0]); i++) {
		bool found = false;
		for (size_t k = 0; config_key_name(k); k++)
			found = found || !strcmp(config_key_name(k), rk[i]);
		if (!found)
			fail_msg("RELOAD_RESTART_KEYS names %s, which is not a key", rk[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc3339),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_evlog_field),
		cmocka_unit_test(test_log_key),
		cmocka_unit_test(test_key_equal_copy),
		cmocka_unit_test(test_restart_keys_exist),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
