/* Unit tests for deceive/deception: fail first, crack, one password forever, restarts,
 * garbage usernames, two sessions racing for one account, bounded memory, CRAM-MD5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "deceive/deception.h"

static const char *const pwlist[] = {"123456", "password", "qwerty", "letmein", "dragon"};
static const char *const domains[] = {"example.test"};

struct saved {
	char user[64];
	char pass[64];
	unsigned failures;
	int64_t cracked_us;
	int n_saves;
};
static struct saved store[16];
static int n_store;

static void save_hook(void *ctx, const struct deception_account *a)
{
	(void)ctx;
	int i;
	for (i = 0; i < n_store; i++)
		if (!strcmp(store[i].user, a->username))
			break;
	if (i == n_store) {
		if (n_store == (int)(sizeof(store) / sizeof(*store)))
			return; /* the tests that read the store use few accounts */
		n_store++;
	}
	snprintf(store[i].user, sizeof(store[i].user), "%s", a->username);
	snprintf(store[i].pass, sizeof(store[i].pass), "%s", a->password ? a->password : "");
	store[i].failures = a->failures;
	store[i].cracked_us = a->cracked_us;
	store[i].n_saves++;
}

static int64_t fake_now(void)
{
	return 1795762363000000LL;
}

static struct auth_policy *make(unsigned fmin, unsigned fmax, size_t max_accounts)
{
	struct deception_config cfg = {
		.passwords = pwlist, .n_passwords = 5, .top_n = 4,
		.fail_min = fmin, .fail_max = fmax,
		.domains = domains, .n_domains = 1,
		.max_accounts = max_accounts, .now_us = fake_now,
		.save = save_hook,
	};
	memset(cfg.secret, 7, sizeof(cfg.secret));
	return deception_new(&cfg);
}

static enum auth_verdict try(struct auth_policy *p, const char *user, const char *pw)
{
	struct auth_request r = {.proto = "smtp", .mechanism = "PLAIN", .src_ip = "192.0.2.1",
				 .username = user, .password = pw};
	return auth_policy_check(p, &r);
}

static int setup(void **state)
{
	n_store = 0;
	memset(store, 0, sizeof(store));
	return 0;
}

static void test_fails_first_then_cracks_then_only_that(void **state)
{
	struct auth_policy *p = make(3, 3, 0);
	/* list passwords fail until 3 failures were seen */
	assert_int_equal(try(p, "alice", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "alice", "nope"), AUTH_FAIL);
	assert_int_equal(try(p, "alice", "password"), AUTH_FAIL);
	/* not in the top 4: never cracks */
	assert_int_equal(try(p, "alice", "dragon"), AUTH_FAIL);
	assert_int_equal(try(p, "alice", "qwerty"), AUTH_OK);
	const struct deception_account *a = deception_lookup(p, "alice");
	assert_non_null(a);
	assert_string_equal(a->password, "qwerty");
	assert_int_equal(a->cracked_us, fake_now());
	/* one truth: the same password works again, every other one fails forever */
	assert_int_equal(try(p, "alice", "qwerty"), AUTH_OK);
	assert_int_equal(try(p, "alice", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "alice", "letmein"), AUTH_FAIL);
	/* the same account under another spelling */
	assert_int_equal(try(p, "Alice@EXAMPLE.test", "qwerty"), AUTH_OK);
	assert_int_equal(try(p, "ALICE", "password"), AUTH_FAIL);
	auth_policy_free(&p);
	assert_null(p);
}

static void test_thresholds_in_range_and_stable(void **state)
{
	struct auth_policy *p1 = make(2, 6, 0), *p2 = make(2, 6, 0);
	int seen[7] = {0};
	char name[32];
	for (int i = 0; i < 200; i++) {
		snprintf(name, sizeof(name), "user%d", i);
		try(p1, name, "x");
		try(p2, name, "x");
		const struct deception_account *a1 = deception_lookup(p1, name);
		const struct deception_account *a2 = deception_lookup(p2, name);
		assert_true(a1->threshold >= 2 && a1->threshold <= 6);
		assert_int_equal(a1->threshold, a2->threshold); /* same secret, same answer */
		seen[a1->threshold]++;
	}
	for (int t = 2; t <= 6; t++)
		assert_true(seen[t] > 0); /* it really varies from account to account */
	auth_policy_free(&p1);
	auth_policy_free(&p2);
}

static void test_survives_restart(void **state)
{
	struct auth_policy *p = make(1, 1, 0);
	assert_int_equal(try(p, "bob", "nope"), AUTH_FAIL);
	assert_int_equal(try(p, "bob", "letmein"), AUTH_OK);
	auth_policy_free(&p);
	assert_int_equal(n_store, 1);
	assert_string_equal(store[0].pass, "letmein");

	/* a new process: restore what was saved */
	p = make(1, 1, 0);
	struct deception_account a = {.username = store[0].user, .password = store[0].pass,
				      .failures = store[0].failures,
				      .cracked_us = store[0].cracked_us};
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(try(p, "bob", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "bob", "letmein"), AUTH_OK);
	auth_policy_free(&p);
}

static void test_garbage_never_succeeds(void **state)
{
	struct auth_policy *p = make(0, 0, 0);
	const char *bad[] = {"", "a b", "root\r\n", "x@other.example", "' OR 1=1 --",
			     ".alice", "alice.", "@example.test", "user@", "\x01\x02",
			     "\xc3\xa9t\xc3\xa9"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		for (int k = 0; k < 3; k++)
			assert_int_equal(try(p, bad[i], "123456"), AUTH_FAIL);
		assert_null(deception_lookup(p, bad[i]));
	}
	char longname[300];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(try(p, longname, "123456"), AUTH_FAIL);
	/* threshold 0: a plausible user cracks at the first list password */
	assert_int_equal(try(p, "carol", "123456"), AUTH_OK);
	/* empty passwords never crack */
	assert_int_equal(try(p, "dave", ""), AUTH_FAIL);
	auth_policy_free(&p);
}

static void test_two_sessions_race_for_one_account(void **state)
{
	struct auth_policy *p = make(2, 2, 0);
	/* two attackers interleave guesses on the same account */
	assert_int_equal(try(p, "erin", "aaa"), AUTH_FAIL);        /* A */
	assert_int_equal(try(p, "erin@example.test", "bbb"), AUTH_FAIL); /* B */
	assert_int_equal(try(p, "erin", "password"), AUTH_OK);     /* A wins */
	assert_int_equal(try(p, "erin", "123456"), AUTH_FAIL);     /* B's list hit: too late */
	assert_int_equal(try(p, "erin@example.test", "password"), AUTH_OK);
	auth_policy_free(&p);
}

static void test_bounded_accounts(void **state)
{
	struct auth_policy *p = make(0, 0, 10);
	char name[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "flood%d", i);
		enum auth_verdict v = try(p, name, "123456");
		assert_int_equal(v, i < 10 ? AUTH_OK : AUTH_FAIL);
	}
	assert_null(deception_lookup(p, "flood500"));
	auth_policy_free(&p);
}

static void test_fixed_accounts(void **state)
{
	static const char *const fixed[] = {"alice:alice-Secret-1", "broken"};
	struct deception_config cfg = {.passwords = pwlist, .n_passwords = 5, .fail_min = 0,
				       .fail_max = 0, .domains = domains, .n_domains = 1,
				       .fixed = fixed, .n_fixed = 2};
	struct auth_policy *p = deception_new(&cfg);
	assert_int_equal(try(p, "alice", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "alice@example.test", "alice-Secret-1"), AUTH_OK);
	/* restore cannot override a fixed account */
	struct deception_account a = {.username = "alice", .password = "hijack"};
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(try(p, "alice", "hijack"), AUTH_FAIL);
	auth_policy_free(&p);
}

static void test_cram_md5(void **state)
{
	struct auth_policy *p = make(1, 1, 0);
	const char *chal = "<1896.697170952@mail.example.test>";
	char dig[33];
	auth_cram_md5_digest("nope", chal, dig);
	struct auth_request r = {.mechanism = "CRAM-MD5", .username = "frank",
				 .cram_challenge = chal, .cram_digest = dig};
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	auth_cram_md5_digest("qwerty", chal, dig);
	assert_int_equal(auth_policy_check(p, &r), AUTH_OK);
	assert_string_equal(deception_lookup(p, "frank")->password, "qwerty");
	assert_int_equal(try(p, "frank", "qwerty"), AUTH_OK);
	/* RFC 2195's own example */
	auth_cram_md5_digest("tanstaaftanstaaf", "<1896.697170952@postoffice.reston.mci.net>", dig);
	assert_string_equal(dig, "b913a602c7eda7a495b4e6e7334d3890");
	auth_policy_free(&p);
}

static void test_list_load(void **state)
{
	char path[] = "/tmp/mxb-pwlist-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "#!comment: header\n123456\n\npassword\r\nqwerty\nlast-no-newline";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	char **list = NULL;
	assert_int_equal(deception_list_load(path, 0, &list), 4);
	assert_string_equal(list[0], "123456");
	assert_string_equal(list[1], "password");
	assert_string_equal(list[3], "last-no-newline");
	assert_null(list[4]);
	deception_list_free(&list);
	assert_int_equal(deception_list_load(path, 2, &list), 2);
	deception_list_free(&list);
	unlink(path);
	assert_int_equal(deception_list_load("/nonexistent/list", 0, &list), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_fails_first_then_cracks_then_only_that, setup),
		cmocka_unit_test_setup(test_thresholds_in_range_and_stable, setup),
		cmocka_unit_test_setup(test_survives_restart, setup),
		cmocka_unit_test_setup(test_garbage_never_succeeds, setup),
		cmocka_unit_test_setup(test_two_sessions_race_for_one_account, setup),
		cmocka_unit_test_setup(test_bounded_accounts, setup),
		cmocka_unit_test_setup(test_fixed_accounts, setup),
		cmocka_unit_test_setup(test_cram_md5, setup),
		cmocka_unit_test_setup(test_list_load, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
