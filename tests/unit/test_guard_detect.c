/*
 * test_guard_detect: the guard's pure parts: Dovecot's policy password hash
 * (guard/pwhash.c; vectors from an independent implementation of Dovecot's documented
 * algorithm, and the real Dovecot is compared in tests/integration/test_guard.py),
 * trap credentials and user names (guard/traps.c) and the detection windows
 * (guard/detect.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "guard/detect.h"
#include "guard/pwhash.h"
#include "guard/traps.h"

#define S 1000000LL

static struct netaddr A(const char *s)
{
	struct netaddr a;
	assert_int_equal(netaddr_parse(s, &a), 0);
	return a;
}

static void test_pwhash(void **state)
{
	(void)state;
	char h[200];
	assert_int_equal(pwhash_dovecot("sha256", "nonce-1", 12, "alice", "secret", h, sizeof(h)), 0);
	assert_string_equal(h, "0a63");
	assert_int_equal(pwhash_dovecot("sha256", "nonce-1", 0, "alice", "secret", h, sizeof(h)), 0);
	assert_string_equal(h, "a638c51aa2465e70eb23b1100b5747921368d3c43e7ee3c361b135327788c862");
	assert_int_equal(pwhash_dovecot("sha1", "xyz", 20, "bob@example.test", "hunter2", h,
					sizeof(h)), 0);
	assert_string_equal(h, "07d414");
	assert_int_equal(pwhash_dovecot("sha512", "n", 16, "", "", h, sizeof(h)), 0);
	assert_string_equal(h, "a7c4");
	assert_int_equal(pwhash_dovecot("md5", "n", 8, "u", "p", h, sizeof(h)), 0);
	assert_string_equal(h, "5c");
	/* more bits than the digest has: the whole digest (Dovecot's no-op) */
	assert_int_equal(pwhash_dovecot("md5", "n", 512, "u", "p", h, sizeof(h)), 0);
	assert_int_equal(strlen(h), 32);
	assert_int_equal(pwhash_dovecot("nope", "n", 8, "u", "p", h, sizeof(h)), -1);
}

static void test_traps(void **state)
{
	(void)state;
	const char *domains[] = { "example.test" };
	const char *users[] = { "Admin", "test@example.test" };
	struct traps *t = traps_new(domains, 1, users, 2);
	assert_non_null(t);
	assert_true(traps_user(t, "admin"));
	assert_true(traps_user(t, "ADMIN@example.test"));
	assert_true(traps_user(t, "test"));
	assert_false(traps_user(t, "admin@other.example"));
	assert_false(traps_user(t, "alice"));
	assert_int_equal(traps_add_credential(t, "Alice@example.test", "secret"), 0);
	assert_int_equal(traps_add_credential(t, "alice", "secret"), 0); /* the same one */
	assert_int_equal(traps_count(t), 1);
	assert_int_equal(traps_add_credential(t, "bad\001user", "x"), -1);
	/* Dovecot hashed the login as it was sent: "alice" */
	assert_true(traps_credential(t, "alice", "0a63", "sha256", "nonce-1", 12));
	assert_true(traps_credential(t, "alice", "0A63", "sha256", "nonce-1", 12));
	assert_false(traps_credential(t, "alice", "0a64", "sha256", "nonce-1", 12));
	assert_false(traps_credential(t, "alice", "0a63", "sha256", "other", 12));
	assert_false(traps_credential(t, "bob", "0a63", "sha256", "nonce-1", 12));
	assert_true(traps_credential_plain(t, "ALICE", "secret"));
	assert_false(traps_credential_plain(t, "alice", "Secret"));
	traps_free(&t);
	assert_null(t);
}

static struct detect *mk(unsigned user_ips, unsigned pair_ips, unsigned ip_fail,
			 unsigned known_fail, unsigned prefix_ips)
{
	struct detect_config c = {
		.window_ms = 600000, .user_min_ips = user_ips, .pair_min_ips = pair_ips,
		.ip_failures = ip_fail, .known_user_failures = known_fail,
		.prefix_min_ips = prefix_ips, .ip_unknown_rcpts = 3, .domain_unknown_rcpts = 4,
		.max_keys = 1000,
	};
	struct detect *d = detect_new(&c);
	assert_non_null(d);
	return d;
}

static void fail_from(struct detect *d, const char *ip, const char *user, const char *hash,
		      int64_t now, struct convictions *out)
{
	struct detect_auth a = { .ip = A(ip), .id = "00000000000000ff", .username = user,
				 .pwhash = hash, .user_known = -1 };
	detect_auth(d, &a, now, out);
}

static bool convicted(const struct convictions *c, const char *src, const char *reason,
		      enum decision_action act)
{
	struct netaddr a = A(src);
	for (size_t i = 0; i < c->n; i++)
		if (netaddr_equal(&c->v[i].src, &a) && !strcmp(c->v[i].reason, reason) &&
		    c->v[i].action == act)
			return true;
	return false;
}

/* One user name from rotating addresses: at the threshold every address seen is
 * convicted, not only the last (what CrowdSec #2237 gets wrong). */
static void test_user_spray(void **state)
{
	(void)state;
	struct detect *d = mk(4, 100, 100, 100, 100);
	struct convictions c = { 0 };
	char ip[32], h[8];
	for (int i = 1; i <= 3; i++) {
		snprintf(ip, sizeof(ip), "198.51.%d.7", i);
		snprintf(h, sizeof(h), "%03x", i);
		fail_from(d, ip, "info", h, i * S, &c);
	}
	assert_int_equal(c.n, 0);
	fail_from(d, "203.0.113.9", "info", "fff", 4 * S, &c);
	assert_int_equal(c.n, 4);
	assert_true(convicted(&c, "198.51.1.7", "user_spray", DECISION_DIVERT));
	assert_true(convicted(&c, "198.51.3.7", "user_spray", DECISION_DIVERT));
	assert_true(convicted(&c, "203.0.113.9", "user_spray", DECISION_DIVERT));
	assert_true(c.v[0].n_evidence >= 1);
	/* outside the window: a fresh start */
	convictions_reset(&c);
	fail_from(d, "192.0.2.1", "info", "aaa", 700 * S, &c);
	assert_int_equal(c.n, 0);
	/* a source that logged in as that user is never convicted for it */
	struct detect_auth ok = { .ip = A("192.0.2.50"), .id = "1", .username = "bob",
				  .success = true };
	detect_auth(d, &ok, 701 * S, &c);
	assert_int_equal(detect_user_known(d, "bob"), 1);
	assert_int_equal(detect_user_known(d, "carol"), -1);
	convictions_free(&c);
	detect_free(&d);
}

/* A stale password retried from one address counts once; distinct pairs count. */
static void test_ip_failures_and_retries(void **state)
{
	(void)state;
	struct detect *d = mk(100, 100, 3, 5, 100);
	struct convictions c = { 0 };
	for (int i = 0; i < 20; i++)
		fail_from(d, "192.0.2.10", "phone", "abc", i * S, &c);
	assert_int_equal(c.n, 0);
	fail_from(d, "192.0.2.10", "u1", "001", 30 * S, &c);
	fail_from(d, "192.0.2.10", "u2", "002", 31 * S, &c);
	assert_true(convicted(&c, "192.0.2.10", "ip_failures", DECISION_DIVERT));
	convictions_reset(&c);
	/* a user known to exist (logged in before): failures from one address are a delay */
	struct detect_auth ok = { .ip = A("192.0.2.60"), .id = "1", .username = "alice",
				  .success = true };
	detect_auth(d, &ok, 40 * S, &c);
	char h[8];
	for (int i = 0; i < 5; i++) {
		snprintf(h, sizeof(h), "%03x", i);
		fail_from(d, "192.0.2.61", "alice", h, (41 + i) * S, &c);
	}
	assert_true(convicted(&c, "192.0.2.61", "known_user_failures", DECISION_DELAY));
	assert_false(convicted(&c, "192.0.2.61", "ip_failures", DECISION_DIVERT));
	convictions_free(&c);
	detect_free(&d);
}

static void test_pair_prefix_rcpt(void **state)
{
	(void)state;
	struct detect *d = mk(100, 3, 100, 100, 4);
	struct convictions c = { 0 };
	fail_from(d, "203.0.113.1", "ghost", "777", S, &c);
	fail_from(d, "198.51.100.2", "ghost", "777", 2 * S, &c);
	assert_int_equal(c.n, 0);
	fail_from(d, "2001:db8:5::1", "ghost", "777", 3 * S, &c);
	assert_true(convicted(&c, "203.0.113.1", "credential_reuse", DECISION_DIVERT));
	assert_true(convicted(&c, "2001:db8:5::1", "credential_reuse", DECISION_DIVERT));
	convictions_reset(&c);
	/* four failing addresses of one /64: the prefix */
	char ip[64], u[16];
	for (int i = 1; i <= 4; i++) {
		snprintf(ip, sizeof(ip), "2001:db8:7:1::%d", i);
		snprintf(u, sizeof(u), "user%d", i);
		fail_from(d, ip, u, "1", (10 + i) * S, &c);
	}
	assert_true(convicted(&c, "2001:db8:7:1::/64", "prefix_failures", DECISION_DIVERT));
	convictions_reset(&c);
	/* unknown recipients: per address, and per domain from several addresses */
	struct netaddr a = A("192.0.2.77"), b = A("192.0.2.78");
	detect_rcpt_unknown(d, &a, "1", "example.test", 20 * S, &c);
	detect_rcpt_unknown(d, &a, "2", "example.test", 21 * S, &c);
	assert_int_equal(c.n, 0);
	detect_rcpt_unknown(d, &a, "3", "example.test", 22 * S, &c);
	assert_true(convicted(&c, "192.0.2.77", "recipient_enumeration", DECISION_DIVERT));
	convictions_reset(&c);
	detect_rcpt_unknown(d, &b, "4", "example.test", 23 * S, &c);
	assert_true(convicted(&c, "192.0.2.77", "domain_enumeration", DECISION_DIVERT));
	assert_true(convicted(&c, "192.0.2.78", "domain_enumeration", DECISION_DIVERT));
	convictions_reset(&c);
	struct netaddr o = A("192.0.2.90");
	for (int i = 0; i < 100; i++)
		detect_offence(d, &o, "5", (30 + i) * S, &c);
	assert_true(convicted(&c, "192.0.2.90", "log_offences", DECISION_DIVERT));
	convictions_free(&c);
	detect_free(&d);
}

static void test_bounds(void **state)
{
	(void)state;
	struct detect_config cfg = { .window_ms = 1000, .user_min_ips = 5, .pair_min_ips = 5,
				     .ip_failures = 5, .known_user_failures = 5,
				     .prefix_min_ips = 5, .ip_unknown_rcpts = 5,
				     .domain_unknown_rcpts = 5, .max_keys = 100 };
	struct detect *d = detect_new(&cfg);
	struct convictions c = { 0 };
	char ip[32], u[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 250, i % 250);
		snprintf(u, sizeof(u), "u%d", i);
		fail_from(d, ip, u, "1", S, &c);
	}
	assert_true(detect_dropped(d) > 0);
	/* stale windows are swept and make room again */
	assert_int_equal(detect_sweep(d, 100 * S), 0);
	fail_from(d, "192.0.2.1", "x", "1", 100 * S, &c);
	convictions_free(&c);
	detect_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pwhash),
		cmocka_unit_test(test_traps),
		cmocka_unit_test(test_user_spray),
		cmocka_unit_test(test_ip_failures_and_retries),
		cmocka_unit_test(test_pair_prefix_rcpt),
		cmocka_unit_test(test_bounds),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
