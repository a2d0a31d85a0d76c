/*
 * test_limits: admission control (src/core/limits.c): total, per-IP and per-minute
 * limits, release, window roll-over and the memory bound (idle entries swept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "core/limits.h"
#include "core/log.h"

static void test_per_ip(void **state)
{
	(void)state;
	struct limits *l = limits_new(100, 2, 0);
	assert_int_equal(limits_admit(l, "192.0.2.1", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "192.0.2.1", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "192.0.2.1", 0), LIMITS_PER_IP);
	assert_int_equal(limits_admit(l, "192.0.2.2", 0), LIMITS_OK);
	assert_int_equal(limits_active(l), 3);
	assert_int_equal(limits_active_ip(l, "192.0.2.1"), 2);
	limits_release(l, "192.0.2.1", 1);
	assert_int_equal(limits_admit(l, "192.0.2.1", 2), LIMITS_OK);
	assert_string_equal(limits_reason(LIMITS_PER_IP), "limit_per_ip");
	limits_free(&l);
	assert_null(l);
}

static void test_total(void **state)
{
	(void)state;
	struct limits *l = limits_new(3, 0, 0);
	assert_int_equal(limits_admit(l, "::1", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "::2", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "::3", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "::4", 0), LIMITS_TOTAL);
	limits_release(l, "::2", 0);
	assert_int_equal(limits_admit(l, "::4", 0), LIMITS_OK);
	/* releasing an unknown or idle address changes nothing */
	limits_release(l, "::99", 0);
	assert_int_equal(limits_active(l), 3);
	assert_string_equal(limits_reason(LIMITS_TOTAL), "limit_connections");
	limits_free(&l);
}

static void test_rate(void **state)
{
	(void)state;
	struct limits *l = limits_new(100, 0, 3);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(limits_admit(l, "198.51.100.7", i * 1000), LIMITS_OK);
		limits_release(l, "198.51.100.7", i * 1000);
	}
	assert_int_equal(limits_admit(l, "198.51.100.7", 5000), LIMITS_RATE);
	/* refused attempts count too (anvil counts every connect) */
	assert_int_equal(limits_admit(l, "198.51.100.7", 6000), LIMITS_RATE);
	/* another address is not affected */
	assert_int_equal(limits_admit(l, "198.51.100.8", 6000), LIMITS_OK);
	/* next window */
	assert_int_equal(limits_admit(l, "198.51.100.7", 60000), LIMITS_OK);
	assert_string_equal(limits_reason(LIMITS_RATE), "limit_rate");
	limits_free(&l);
}

static void test_sweep_bounds_memory(void **state)
{
	(void)state;
	struct limits *l = limits_new(100000, 0, 10);
	char ip[64];
	for (int i = 0; i < 5000; i++) {
		snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
		assert_int_equal(limits_admit(l, ip, 0), LIMITS_OK);
		if (i % 2)
			limits_release(l, ip, 0);
	}
	assert_int_equal(limits_tracked(l), 5000);
	limits_sweep(l, 30000);
	assert_int_equal(limits_tracked(l), 5000); /* window not over */
	limits_sweep(l, 60000);
	assert_int_equal(limits_tracked(l), 2500); /* only live ones remain */
	assert_int_equal(limits_active(l), 2500);
	limits_free(&l);
}

/* /24 and /48 caps: neighbours share a budget, other networks do not; releases give
 * it back; v4-mapped IPv6 counts as IPv4; idle prefix entries are swept. */
static void test_per_prefix(void **state)
{
	(void)state;
	char pfx[64];
	assert_int_equal(limits_prefix("203.0.113.77", pfx, sizeof(pfx)), 0);
	assert_string_equal(pfx, "203.0.113.0/24");
	assert_int_equal(limits_prefix("::ffff:203.0.113.9", pfx, sizeof(pfx)), 0);
	assert_string_equal(pfx, "203.0.113.0/24");
	assert_int_equal(limits_prefix("2001:db8:1:2:3::4", pfx, sizeof(pfx)), 0);
	assert_string_equal(pfx, "2001:db8:1::/48");
	assert_int_equal(limits_prefix("not-an-ip", pfx, sizeof(pfx)), -1);

	struct limits *l = limits_new(100, 0, 0);
	limits_set_per_prefix(l, 2);
	assert_int_equal(limits_admit(l, "198.51.100.1", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "198.51.100.2", 0), LIMITS_OK);
	assert_int_equal(limits_admit(l, "198.51.100.3", 0), LIMITS_PER_PREFIX);
	assert_int_equal(limits_admit(l, "::ffff:198.51.100.4", 0), LIMITS_PER_PREFIX);
	assert_int_equal(limits_admit(l, "198.51.101.1", 0), LIMITS_OK);
	assert_int_equal(limits_active_prefix(l, "198.51.100.200"), 2);
	assert_string_equal(limits_reason(LIMITS_PER_PREFIX), "limit_per_prefix");
	limits_release(l, "198.51.100.1", 10);
	assert_int_equal(limits_admit(l, "198.51.100.3", 20), LIMITS_OK);
	assert_int_equal(limits_admit(l, "2001:db8:5:1::1", 20), LIMITS_OK);
	assert_int_equal(limits_admit(l, "2001:db8:5:2::1", 20), LIMITS_OK);
	assert_int_equal(limits_admit(l, "2001:db8:5:ffff::9", 20), LIMITS_PER_PREFIX);
	assert_int_equal(limits_admit(l, "2001:db8:6::1", 20), LIMITS_OK);
	assert_int_equal(limits_active(l), 6);
	/* everything released: a window later nothing is tracked */
	const char *ips[] = { "198.51.100.2", "198.51.100.3", "198.51.101.1", "2001:db8:5:1::1",
			      "2001:db8:5:2::1", "2001:db8:6::1" };
	for (size_t i = 0; i < 6; i++)
		limits_release(l, ips[i], 30);
	assert_int_equal(limits_active(l), 0);
	assert_int_equal(limits_active_prefix(l, "198.51.100.1"), 0);
	limits_sweep(l, 200000);
	assert_int_equal(limits_tracked(l), 0);
	limits_free(&l);
}

static void test_log_escape(void **state)
{
	(void)state;
	char out[16];
	assert_string_equal(log_escape(out, sizeof(out), "ab\r\n", 4), "ab\\x0d\\x0a");
	assert_string_equal(log_escape(out, sizeof(out), "q\"\\", 3), "q\\\"\\\\");
	assert_string_equal(log_escape(out, sizeof(out), "0123456789abcdefgh", 18), "0123456789ab...");
	assert_string_equal(log_escape(out, sizeof(out), "\x1b\x1b\x1b\x1b", 4), "\\x1b\\x1b\\x1b...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_per_ip),
		cmocka_unit_test(test_total),
		cmocka_unit_test(test_rate),
		cmocka_unit_test(test_sweep_bounds_memory),
		cmocka_unit_test(test_per_prefix),
		cmocka_unit_test(test_log_escape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
