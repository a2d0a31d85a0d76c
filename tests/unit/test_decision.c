/*
 * test_decision: the decision model (src/intel/decision.c): escalation on repeat,
 * expiry, no churn, prefixes covering addresses, allow winning, the bound.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "intel/decision.h"

#define S 1000000LL
#define H (3600 * S)

static struct netaddr A(const char *s)
{
	struct netaddr a;
	assert_int_equal(netaddr_parse(s, &a), 0);
	return a;
}

static struct decision_table *table(unsigned ban_after, size_t max)
{
	struct decision_policy p = { .duration_ms = 3600000, .max_duration_ms = 4 * 3600000ULL,
				     .ban_after = ban_after, .max_entries = max };
	struct decision_table *t = decision_table_new(&p);
	assert_non_null(t);
	return t;
}

static void test_escalation_and_expiry(void **state)
{
	(void)state;
	struct decision_table *t = table(0, 100);
	struct netaddr a = A("203.0.113.7");
	const char *ev[] = { "0123456789abcdef", "fedcba9876543210" };
	struct decision d;
	int64_t now = 1000 * H;
	assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "user_spray", "guard", ev,
					       2, 0, now, &d), DECIDE_NEW);
	assert_int_equal(d.action, DECISION_DIVERT);
	assert_int_equal(d.level, 0);
	assert_int_equal(d.expires_us - d.created_us, H);
	assert_int_equal(d.n_evidence, 2);
	assert_string_equal(d.evidence[1], "fedcba9876543210");
	assert_int_equal(strlen(d.id), 16);
	/* the same again while in force: nothing changes */
	assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "user_spray", "guard", ev,
					       1, 0, now + S, &d), DECIDE_COVERED);
	assert_int_equal(decision_table_decide(t, &a, DECISION_DELAY, "x", "guard", NULL, 0, 0,
					       now + S, &d), DECIDE_COVERED);
	assert_non_null(decision_table_lookup(t, &a, now + H - 1));
	/* expired: the kernel and the table agree it is gone */
	assert_null(decision_table_lookup(t, &a, now + H));
	assert_int_equal(decision_table_active(t, now + H, NULL, NULL), 0);
	/* a repeat lasts twice as long, then four times, capped at max */
	assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "user_spray", "guard", NULL,
					       0, 0, now + 2 * H, &d), DECIDE_NEW);
	assert_int_equal(d.level, 1);
	assert_int_equal(d.expires_us - d.created_us, 2 * H);
	assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "user_spray", "guard", NULL,
					       0, 0, now + 10 * H, &d), DECIDE_NEW);
	assert_int_equal(d.level, 2);
	assert_int_equal(d.expires_us - d.created_us, 4 * H);
	assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "user_spray", "guard", NULL,
					       0, 0, now + 20 * H, &d), DECIDE_NEW);
	assert_int_equal(d.level, 3);
	assert_int_equal(d.expires_us - d.created_us, 4 * H); /* the cap */
	decision_table_free(&t);
}

static void test_delay_becomes_divert_and_ban(void **state)
{
	(void)state;
	struct decision_table *t = table(2, 100);
	struct netaddr a = A("2001:db8::1");
	struct decision d;
	int64_t now = 0;
	for (int i = 0; i < DECISION_DELAY_REPEATS; i++) {
		assert_int_equal(decision_table_decide(t, &a, DECISION_DELAY, "known_user_failures",
						       "guard", NULL, 0, 0, now, &d), DECIDE_NEW);
		assert_int_equal(d.action, DECISION_DELAY);
		now += 10 * H;
	}
	/* a third delay is a divert; with ban_after 2, a divert at level >= 2 is a ban */
	assert_int_equal(decision_table_decide(t, &a, DECISION_DELAY, "known_user_failures",
					       "guard", NULL, 0, 0, now, &d), DECIDE_NEW);
	assert_int_equal(d.action, DECISION_BAN);
	/* a stronger action replaces a weaker one in force */
	struct netaddr b = A("198.51.100.9");
	assert_int_equal(decision_table_decide(t, &b, DECISION_DELAY, "r", "guard", NULL, 0, 0, 0,
					       &d), DECIDE_NEW);
	assert_int_equal(decision_table_decide(t, &b, DECISION_DIVERT, "r", "guard", NULL, 0, 0, S,
					       &d), DECIDE_NEW);
	assert_int_equal(decision_table_lookup(t, &b, 2 * S)->action, DECISION_DIVERT);
	decision_table_free(&t);
}

static void test_prefix_allow_remove(void **state)
{
	(void)state;
	struct decision_table *t = table(0, 100);
	struct netaddr net = A("198.51.100.0/24"), in = A("198.51.100.77"), out = A("198.51.101.1");
	struct decision d;
	assert_int_equal(decision_table_decide(t, &net, DECISION_DIVERT, "prefix_failures", "guard",
					       NULL, 0, 0, 0, &d), DECIDE_NEW);
	assert_int_equal(decision_table_lookup(t, &in, S)->action, DECISION_DIVERT);
	assert_null(decision_table_lookup(t, &out, S));
	/* an address inside a diverted prefix is covered already */
	assert_int_equal(decision_table_decide(t, &in, DECISION_DIVERT, "ip_failures", "guard",
					       NULL, 0, 0, S, &d), DECIDE_COVERED);
	/* an operator's allow wins over the prefix, and is never overridden by detection */
	assert_int_equal(decision_table_decide(t, &in, DECISION_ALLOW, "manual", "manual", NULL, 0,
					       UINT64_MAX, 2 * S, &d), DECIDE_NEW);
	assert_int_equal(d.expires_us, 0);
	assert_int_equal(decision_table_lookup(t, &in, 3 * S)->action, DECISION_ALLOW);
	assert_int_equal(decision_table_decide(t, &in, DECISION_BAN, "x", "guard", NULL, 0, 0,
					       3 * S, &d), DECIDE_COVERED);
	assert_int_equal(decision_table_lookup(t, &in, 1000 * H)->action, DECISION_ALLOW);
	/* remove */
	assert_int_equal(decision_table_remove(t, &net, 4 * S, &d), 0);
	assert_int_equal(d.action, DECISION_DIVERT);
	assert_int_equal(decision_table_remove(t, &net, 4 * S, &d), -1);
	assert_null(decision_table_lookup(t, &out, 5 * S));
	decision_table_free(&t);
}

static void test_bound_and_restore(void **state)
{
	(void)state;
	struct decision_table *t = table(0, 3);
	struct decision d;
	char s[32];
	for (int i = 0; i < 3; i++) {
		snprintf(s, sizeof(s), "192.0.2.%d", i + 1);
		struct netaddr a = A(s);
		assert_int_equal(decision_table_decide(t, &a, DECISION_DIVERT, "r", "guard", NULL, 0,
						       0, 0, &d), DECIDE_NEW);
	}
	struct netaddr x = A("192.0.2.99");
	assert_int_equal(decision_table_decide(t, &x, DECISION_DIVERT, "r", "guard", NULL, 0, 0, S,
					       &d), DECIDE_FULL);
	/* once one has expired into history, its room is reused */
	assert_int_equal(decision_table_decide(t, &x, DECISION_DIVERT, "r", "guard", NULL, 0, 0,
					       2 * H, &d), DECIDE_NEW);
	assert_int_equal(decision_table_size(t), 3);
	decision_table_free(&t);

	/* restore: an active one is active again with its level; an expired one only
	 * leaves its level, so the next conviction escalates */
	t = table(0, 10);
	struct decision r;
	memset(&r, 0, sizeof(r));
	snprintf(r.id, sizeof(r.id), "00000000000000aa");
	r.src = A("203.0.113.1");
	r.action = DECISION_DIVERT;
	r.created_us = 0;
	r.expires_us = 10 * H;
	r.level = 3;
	decision_table_restore(t, &r, H);
	assert_string_equal(decision_table_lookup(t, &r.src, H)->id, "00000000000000aa");
	r.src = A("203.0.113.2");
	r.expires_us = H / 2;
	r.level = 1;
	decision_table_restore(t, &r, H);
	assert_null(decision_table_lookup(t, &r.src, H));
	assert_int_equal(decision_table_decide(t, &r.src, DECISION_DIVERT, "r", "guard", NULL, 0, 0,
					       2 * H, &d), DECIDE_NEW);
	assert_int_equal(d.level, 2);
	assert_int_equal(d.expires_us - d.created_us, 4 * H);
	assert_int_equal(decision_action_parse("ban"), DECISION_BAN);
	assert_string_equal(decision_action_name(DECISION_DELAY), "delay");
	assert_int_equal(decision_action_parse("nuke"), DECISION_NONE);
	decision_table_free(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_escalation_and_expiry),
		cmocka_unit_test(test_delay_becomes_divert_and_ban),
		cmocka_unit_test(test_prefix_allow_remove),
		cmocka_unit_test(test_bound_and_restore),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
