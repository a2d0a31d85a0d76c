/* Unit tests for deceive/deception: fail first, crack, one password forever, restarts,
 * garbage usernames, two sessions racing for one account, bounded memory (LRU eviction
 * of guessed accounts, expiry, cracked accounts kept), CRAM-MD5 (bounded candidates),
 * the SipHash-2-4 the table is keyed with, and the plausibility rule: a random name
 * never cracks however many guesses, a listed, RCPT-probed or widely tried one does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "deceive/deception.h"
#include "deceive/siphash.h"

static const char *const pwlist[] = {"123456", "password", "qwerty", "letmein", "dragon"};
static const char *const domains[] = {"example.test"};
/* The plausible names of these tests (the daemon's come from data/usernames.txt). */
static const char *const userlist[] = {
	"alice", "bob", "carol", "dave", "erin", "frank", "gina", "hank", "Info", "victim",
	"target", "slow", "quick", "new", "fresh", "stale", "owned", "owned1", "owned2",
	"owned3", "owned4", "owned5", "late", "guess0", "guess1", "guess2", "guess3",
	"guess4", "guess5", "guess6", "guess7", "guess8", "guess9"};
#define N_USERLIST (sizeof(userlist) / sizeof(userlist[0]))

struct saved {
	char user[64];
	char pass[64];
	unsigned failures;
	int64_t cracked_us;
	unsigned plausible;
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
	store[i].plausible = a->plausible;
	store[i].n_saves++;
}

#define T0 1795762363000000LL
static int64_t clock_us = T0;

static int64_t fake_now(void)
{
	return clock_us;
}

/* The daemon's defaults: the list, RCPT probing, 3 networks. */
static struct auth_policy *make_rule(unsigned fmin, unsigned fmax, size_t max_accounts,
				     unsigned sources, int rcpt)
{
	struct deception_config cfg = {
		.passwords = pwlist, .n_passwords = 5, .top_n = 4,
		.fail_min = fmin, .fail_max = fmax,
		.domains = domains, .n_domains = 1,
		.usernames = userlist, .n_usernames = N_USERLIST,
		.distinct_sources = sources, .rcpt_probed = rcpt,
		.max_accounts = max_accounts, .now_us = fake_now,
		.save = save_hook,
	};
	memset(cfg.secret, 7, sizeof(cfg.secret));
	return deception_new(&cfg);
}

static struct auth_policy *make(unsigned fmin, unsigned fmax, size_t max_accounts)
{
	return make_rule(fmin, fmax, max_accounts, 3, 1);
}

/* crack_distinct_sources = 1: every name is plausible (the table mechanics with
 * generated names; a configuration a canary catches, documented as such). */
static struct auth_policy *make_any(unsigned fmin, unsigned fmax, size_t max_accounts)
{
	return make_rule(fmin, fmax, max_accounts, 1, 1);
}

static enum auth_verdict try_from(struct auth_policy *p, const char *ip, const char *user,
				  const char *pw)
{
	struct auth_request r = {.proto = "smtp", .mechanism = "PLAIN", .src_ip = ip,
				 .username = user, .password = pw};
	return auth_policy_check(p, &r);
}

static enum auth_verdict try(struct auth_policy *p, const char *user, const char *pw)
{
	return try_from(p, "192.0.2.1", user, pw);
}

static int setup(void **state)
{
	clock_us = T0;
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
	/* guessed at, not cracked: VRFY does not confirm it yet */
	assert_false(auth_policy_has_user(p, "alice"));
	assert_int_equal(try(p, "alice", "qwerty"), AUTH_OK);
	/* cracked: it exists now, under every spelling (SMTP VRFY answers 252) */
	assert_true(auth_policy_has_user(p, "alice"));
	assert_true(auth_policy_has_user(p, "ALICE@example.test"));
	assert_false(auth_policy_has_user(p, "bob"));
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
	struct auth_policy *p = make_any(0, 0, 10);
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
	assert_true(auth_policy_has_user(p, "Alice")); /* a fixed account exists from the start */
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

/* A guessing flood never fills the table for good: the least recently guessed
 * account makes room, and a new name is tracked and cracked as usual. */
static void test_flood_evicts_least_recently_guessed(void **state)
{
	struct auth_policy *p = make(3, 3, 10);
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "guess%d", i);
		assert_int_equal(try(p, name, "x"), AUTH_FAIL);
	}
	/* guess0 is touched again: guess1 is now the least recently guessed */
	assert_int_equal(try(p, "guess0", "x"), AUTH_FAIL);
	assert_int_equal(try(p, "victim", "x"), AUTH_FAIL);
	assert_non_null(deception_lookup(p, "victim"));
	assert_non_null(deception_lookup(p, "guess0"));
	assert_null(deception_lookup(p, "guess1"));
	assert_non_null(deception_lookup(p, "guess2"));
	struct deception_stats st;
	deception_stats(p, &st);
	assert_int_equal(st.accounts, 10);
	assert_int_equal(st.evicted, 1);
	/* the victim goes on to be cracked, whatever the flood did before */
	for (int i = 0; i < 2; i++)
		assert_int_equal(try(p, "victim", "x"), AUTH_FAIL);
	assert_int_equal(try(p, "victim", "123456"), AUTH_OK);
	/* a flood of 10,000 more names keeps the table at its bound */
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "flood%d", i);
		try(p, name, "x");
	}
	deception_stats(p, &st);
	assert_int_equal(st.accounts, 10);
	assert_int_equal(st.cracked, 1);
	assert_int_equal(st.refused, 0);
	auth_policy_free(&p);
}

/* Cracked (and fixed) accounts survive any guessing flood; only when every slot is
 * cracked are new names refused untracked. */
static void test_cracked_never_evicted(void **state)
{
	struct auth_policy *p = make(0, 0, 5);
	assert_int_equal(try(p, "owned1", "123456"), AUTH_OK);
	assert_int_equal(try(p, "owned2", "qwerty"), AUTH_OK);
	char name[32];
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof(name), "flood%d", i);
		try(p, name, "not-listed");
	}
	assert_int_equal(try(p, "owned1", "123456"), AUTH_OK);
	assert_int_equal(try(p, "owned2", "qwerty"), AUTH_OK);
	assert_int_equal(try(p, "owned2", "123456"), AUTH_FAIL);
	/* fill the rest with cracks: now new names are refused */
	assert_int_equal(try(p, "owned3", "123456"), AUTH_OK);
	assert_int_equal(try(p, "owned4", "123456"), AUTH_OK);
	assert_int_equal(try(p, "owned5", "123456"), AUTH_OK);
	assert_int_equal(try(p, "late", "123456"), AUTH_FAIL);
	assert_null(deception_lookup(p, "late"));
	struct deception_stats st;
	deception_stats(p, &st);
	assert_int_equal(st.accounts, 5);
	assert_int_equal(st.cracked, 5);
	assert_true(st.refused >= 1);
	auth_policy_free(&p);
}

/* A guessed account untouched for account_expiry starts over; a saved one that old is
 * not restored; a cracked one never expires. */
static void test_guessed_accounts_expire(void **state)
{
	struct deception_config cfg = {
		.passwords = pwlist, .n_passwords = 5, .top_n = 4, .fail_min = 3, .fail_max = 3,
		.domains = domains, .n_domains = 1, .now_us = fake_now, .save = save_hook,
		.usernames = userlist, .n_usernames = N_USERLIST,
		.account_expiry_us = 3600LL * 1000000,
	};
	memset(cfg.secret, 7, sizeof(cfg.secret));
	struct auth_policy *p = deception_new(&cfg);
	for (int i = 0; i < 3; i++)
		assert_int_equal(try(p, "slow", "x"), AUTH_FAIL);
	assert_int_equal(deception_lookup(p, "slow")->failures, 3);
	assert_int_equal(try(p, "quick", "x"), AUTH_FAIL);
	clock_us += 3601LL * 1000000;
	/* an hour later: its three failures are forgotten, a list password fails again */
	assert_int_equal(try(p, "slow", "123456"), AUTH_FAIL);
	assert_int_equal(deception_lookup(p, "slow")->failures, 1);
	/* a new name frees the expired ones first ("quick" is gone) */
	assert_int_equal(try(p, "new", "x"), AUTH_FAIL);
	assert_null(deception_lookup(p, "quick"));
	struct deception_stats st;
	deception_stats(p, &st);
	assert_int_equal(st.expired, 2);
	assert_int_equal(st.evicted, 0);
	auth_policy_free(&p);

	p = deception_new(&cfg);
	struct deception_account old = {.username = "stale", .failures = 5,
					 .updated_us = clock_us - 7200LL * 1000000};
	struct deception_account fresh = {.username = "fresh", .failures = 5,
					  .updated_us = clock_us - 60LL * 1000000};
	struct deception_account owned = {.username = "owned", .password = "dragon",
					  .failures = 9, .cracked_us = T0,
					  .updated_us = clock_us - 9999LL * 3600 * 1000000};
	assert_int_equal(deception_restore(p, &old), 0);
	assert_int_equal(deception_restore(p, &fresh), 0);
	assert_int_equal(deception_restore(p, &owned), 0);
	assert_null(deception_lookup(p, "stale"));
	assert_int_equal(deception_lookup(p, "fresh")->failures, 5);
	assert_int_equal(try(p, "fresh", "123456"), AUTH_OK); /* past its threshold */
	assert_int_equal(try(p, "owned", "dragon"), AUTH_OK);
	clock_us += 1000LL * 86400 * 1000000;
	assert_int_equal(try(p, "owned", "dragon"), AUTH_OK);
	assert_int_equal(try(p, "fresh", "123456"), AUTH_OK);
	auth_policy_free(&p);
}

/* Restoring more saved accounts than fit (oldest save first) keeps every cracked one
 * and the most recently guessed ones. */
static void test_restore_keeps_cracked_and_newest(void **state)
{
	struct auth_policy *p = make(3, 3, 4);
	char name[32];
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "saved%d", i);
		struct deception_account a = {.username = name, .failures = 1,
					      .updated_us = clock_us - (10 - i) * 1000000LL};
		if (i == 2 || i == 5)
			a.password = "letmein";
		assert_int_equal(deception_restore(p, &a), 0);
	}
	assert_non_null(deception_lookup(p, "saved2"));
	assert_non_null(deception_lookup(p, "saved5"));
	assert_non_null(deception_lookup(p, "saved8"));
	assert_non_null(deception_lookup(p, "saved9"));
	assert_null(deception_lookup(p, "saved7"));
	assert_null(deception_lookup(p, "saved0"));
	assert_int_equal(try(p, "saved2", "letmein"), AUTH_OK);
	auth_policy_free(&p);
}

/* Insertions, evictions and lookups in any order agree with a model of the segmented
 * LRU (the table grows past its first size and removes without tombstones). */
static void test_table_churn(void **state)
{
	enum { MAX = 700, NAMES = 3000, STEPS = 40000 };
	struct auth_policy *p = make(1000, 1000, MAX); /* never cracks */
	/* the model: when each held name was last guessed (0: not held), and whether it
	 * was guessed more than once since it came in (established) */
	static int64_t last[NAMES];
	static bool established[NAMES];
	memset(last, 0, sizeof(last));
	memset(established, 0, sizeof(established));
	int held = 0;
	unsigned seed = 12345;
	char name[32];
	for (int step = 1; step <= STEPS; step++) {
		seed = seed * 1103515245u + 12345u;
		/* a few names come back often, most rarely: both lists see traffic */
		int k = (seed >> 8) % 4 == 0 ? (int)((seed >> 12) % 300)
					     : (int)((seed >> 12) % NAMES);
		snprintf(name, sizeof(name), "n%d", k);
		clock_us += 1;
		if (last[k]) {
			established[k] = true;
		} else {
			if (held == MAX) {
				int victim = -1;
				for (int pass = 0; pass < 2 && victim < 0; pass++)
					for (int i = 0; i < NAMES; i++)
						if (last[i] && established[i] == (pass == 1) &&
						    (victim < 0 || last[i] < last[victim]))
							victim = i;
				last[victim] = 0;
				established[victim] = false;
				held--;
			}
			held++;
		}
		last[k] = clock_us;
		assert_int_equal(try(p, name, "x"), AUTH_FAIL);
		if (step % 997 == 0) {
			for (int i = 0; i < NAMES; i++) {
				snprintf(name, sizeof(name), "n%d", i);
				assert_int_equal(deception_lookup(p, name) != NULL, last[i] != 0);
			}
		}
	}
	struct deception_stats st;
	deception_stats(p, &st);
	assert_int_equal(st.accounts, MAX);
	auth_policy_free(&p);
}

/* A flood of names tried once each cannot take away the failures of an account that
 * is being guessed at patiently (guessed twice, then once between floods): room is
 * made among the one-off names first. */
static void test_flood_spares_established(void **state)
{
	struct auth_policy *p = make(5, 5, 50);
	char name[32];
	assert_int_equal(try(p, "target", "x"), AUTH_FAIL);
	for (int round = 0; round < 4; round++) {
		assert_int_equal(try(p, "target", "x"), AUTH_FAIL);
		for (int i = 0; i < 1000; i++) { /* 1,000 one-off names between two guesses */
			snprintf(name, sizeof(name), "r%dn%d", round, i);
			try(p, name, "x");
		}
	}
	const struct deception_account *t = deception_lookup(p, "target");
	assert_non_null(t);
	assert_int_equal(t->failures, 5);
	assert_int_equal(try(p, "target", "123456"), AUTH_OK);
	auth_policy_free(&p);
}

/* CRAM-MD5 tries only the first CRAM_CANDIDATES list passwords. */
static void test_cram_md5_bounded_candidates(void **state)
{
	static char *big[CRAM_CANDIDATES + 50];
	char tmp[32];
	for (size_t i = 0; i < CRAM_CANDIDATES + 50; i++) {
		snprintf(tmp, sizeof(tmp), "pw%zu", i);
		big[i] = strdup(tmp);
	}
	struct deception_config cfg = {
		.passwords = (const char *const *)big, .n_passwords = CRAM_CANDIDATES + 50,
		.fail_min = 0, .fail_max = 0, .domains = domains, .n_domains = 1,
		.usernames = userlist, .n_usernames = N_USERLIST, .now_us = fake_now,
	};
	struct auth_policy *p = deception_new(&cfg);
	const char *chal = "<77.1795762363@mail.example.test>";
	char dig[33];
	/* past the candidates: not found in the digest, while PLAIN would crack it */
	snprintf(tmp, sizeof(tmp), "pw%d", CRAM_CANDIDATES + 10);
	auth_cram_md5_digest(tmp, chal, dig);
	struct auth_request r = {.mechanism = "CRAM-MD5", .username = "gina",
				 .cram_challenge = chal, .cram_digest = dig};
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	assert_int_equal(try(p, "hank", tmp), AUTH_OK);
	/* the last candidate is found */
	snprintf(tmp, sizeof(tmp), "pw%d", CRAM_CANDIDATES - 1);
	auth_cram_md5_digest(tmp, chal, dig);
	assert_int_equal(auth_policy_check(p, &r), AUTH_OK);
	assert_string_equal(deception_lookup(p, "gina")->password, tmp);
	/* and from then on CRAM-MD5 checks that one password only */
	auth_cram_md5_digest("pw0", chal, dig);
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	auth_policy_free(&p);
	for (size_t i = 0; i < CRAM_CANDIDATES + 50; i++)
		free(big[i]);
}

/* SipHash-2-4: the paper's test vectors (key 00..0f, message 00..len-1), and every
 * length up to 64 against OpenSSL's own SipHash. */
static void test_siphash_vectors(void **state)
{
	uint8_t key[16], msg[64];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	assert_true(siphash24(key, msg, 0) == 0x726fdb47dd0e0e31ULL);
	assert_true(siphash24(key, msg, 15) == 0xa129ca6149be45e5ULL);
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	assert_non_null(mac);
	size_t outsize = 8;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &outsize),
		OSSL_PARAM_construct_end(),
	};
	for (size_t len = 0; len <= 64; len++) {
		EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
		unsigned char out[8];
		size_t outl = 0;
		assert_true(EVP_MAC_init(c, key, sizeof(key), params));
		assert_true(EVP_MAC_update(c, msg, len));
		assert_true(EVP_MAC_final(c, out, &outl, sizeof(out)));
		assert_int_equal(outl, 8);
		uint64_t want = 0;
		for (int i = 0; i < 8; i++)
			want |= (uint64_t)out[i] << (8 * i);
		assert_true(siphash24(key, msg, len) == want);
		EVP_MAC_CTX_free(c);
	}
	EVP_MAC_free(mac);
}

/* A restore keeps the saved threshold while it fits crack_after_failures (no HMAC per
 * account at start); one outside the range is derived again. */
static void test_restore_uses_saved_threshold(void **state)
{
	struct auth_policy *probe = make_any(2, 6, 0);
	char name[32];
	int found = 0;
	for (int i = 0; i < 500 && !found; i++) {
		snprintf(name, sizeof(name), "th%d", i);
		try(probe, name, "x");
		found = deception_lookup(probe, name)->threshold == 6;
	}
	assert_true(found);
	auth_policy_free(&probe);
	struct auth_policy *p = make_any(2, 6, 0);
	struct deception_account a = {.username = name, .failures = 2, .threshold = 2,
				      .updated_us = clock_us};
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(deception_lookup(p, name)->threshold, 2);
	assert_int_equal(try(p, name, "123456"), AUTH_OK);
	auth_policy_free(&p);
	p = make_any(2, 6, 0);
	a.threshold = 9; /* out of range: derived again */
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(deception_lookup(p, name)->threshold, 6);
	assert_int_equal(try(p, name, "123456"), AUTH_FAIL);
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


/* ---- the plausibility rule ---- */

/* A canary: a random name with every list password, many times, over PLAIN and
 * CRAM-MD5, from many addresses of one /24 and one /64, never logs in. */
static void test_random_name_never_cracks(void **state)
{
	struct auth_policy *p = make(0, 2, 0);
	char ip[64];
	for (int round = 0; round < 50; round++)
		for (size_t i = 0; i < 5; i++) {
			snprintf(ip, sizeof(ip), "192.0.2.%d", 1 + (round * 5 + (int)i) % 250);
			assert_int_equal(try_from(p, ip, "xkwqpzmt", pwlist[i]), AUTH_FAIL);
			snprintf(ip, sizeof(ip), "2001:db8:1:2::%x", round * 5 + (int)i + 1);
			assert_int_equal(try_from(p, ip, "xkwqpzmt@example.test", pwlist[i]),
					 AUTH_FAIL);
		}
	const struct deception_account *a = deception_lookup(p, "xkwqpzmt");
	assert_non_null(a);
	assert_int_equal(a->failures, 500); /* every guess counted */
	assert_null(a->password);
	assert_int_equal(a->plausible, 0);
	assert_false(auth_policy_has_user(p, "xkwqpzmt"));
	const char *chal = "<1.2@mail.example.test>";
	char dig[33];
	auth_cram_md5_digest("123456", chal, dig);
	struct auth_request r = {.mechanism = "CRAM-MD5", .username = "xkwqpzmt",
				 .src_ip = "192.0.2.7", .cram_challenge = chal, .cram_digest = dig};
	assert_int_equal(auth_policy_check(p, &r), AUTH_FAIL);
	/* an IPv4-mapped address is its IPv4 /24: still the same network */
	assert_int_equal(try_from(p, "::ffff:192.0.2.99", "xkwqpzmt", "123456"), AUTH_FAIL);
	struct deception_stats st;
	deception_stats(p, &st);
	assert_true(st.implausible >= 400);
	assert_int_equal(st.cracked, 0);
	auth_policy_free(&p);
}

/* A listed name (any case, with the served domain) cracks as before. */
static void test_listed_name_cracks(void **state)
{
	struct auth_policy *p = make(2, 2, 0);
	assert_int_equal(try(p, "info", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "INFO@example.test", "qwerty"), AUTH_FAIL);
	assert_int_equal(try(p, "Info", "password"), AUTH_OK);
	assert_int_equal(try(p, "info@EXAMPLE.TEST", "password"), AUTH_OK);
	/* the same spelling elsewhere is someone else's address, never ours */
	assert_int_equal(try(p, "info@other.example", "password"), AUTH_FAIL);
	auth_policy_free(&p);
}

/* A name the attacker enumerated with RCPT TO in a served domain becomes plausible;
 * one in another domain, or with crack_rcpt_probed off, does not. */
static void test_rcpt_probed_name_cracks(void **state)
{
	struct auth_policy *p = make(1, 1, 0);
	assert_int_equal(try(p, "zq7cust", "x"), AUTH_FAIL);
	assert_int_equal(try(p, "zq7cust", "123456"), AUTH_FAIL); /* not plausible yet */
	auth_policy_note_recipient(p, "zq7cust@other.example");
	assert_int_equal(try(p, "zq7cust", "123456"), AUTH_FAIL);
	auth_policy_note_recipient(p, "ZQ7cust@Example.Test");
	assert_int_equal(deception_lookup(p, "zq7cust")->plausible, DECEPTION_PLAUSIBLE_RCPT);
	assert_int_equal(try(p, "zq7cust", "123456"), AUTH_OK);
	assert_int_equal(try(p, "zq7cust", "qwerty"), AUTH_FAIL);
	/* probed first, guessed after: the same */
	auth_policy_note_recipient(p, "k.hoffmann@example.test");
	assert_int_equal(try(p, "k.hoffmann", "x"), AUTH_FAIL);
	assert_int_equal(try(p, "k.hoffmann@example.test", "letmein"), AUTH_OK);
	/* a listed name is not held for a probe (it needs none) */
	auth_policy_note_recipient(p, "bob@example.test");
	assert_null(deception_lookup(p, "bob"));
	/* garbage is ignored */
	auth_policy_note_recipient(p, "a b@example.test");
	auth_policy_note_recipient(p, "@example.test");
	auth_policy_note_recipient(p, "");
	auth_policy_free(&p);

	p = make_rule(1, 1, 0, 3, 0);
	auth_policy_note_recipient(p, "zq7cust@example.test");
	assert_int_equal(try(p, "zq7cust", "x"), AUTH_FAIL);
	assert_int_equal(try(p, "zq7cust", "123456"), AUTH_FAIL);
	auth_policy_free(&p);
}

/* Tried from three networks (/24, /64): plausible.  From any number of addresses in
 * one network, or from two networks: not. */
static void test_distinct_networks(void **state)
{
	struct auth_policy *p = make(1, 1, 0);
	assert_int_equal(try_from(p, "198.51.100.1", "qq1", "x"), AUTH_FAIL);
	for (int i = 2; i < 200; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "198.51.100.%d", i);
		assert_int_equal(try_from(p, ip, "qq1", "123456"), AUTH_FAIL);
	}
	assert_int_equal(try_from(p, "203.0.113.5", "qq1", "123456"), AUTH_FAIL); /* 2nd */
	assert_int_equal(try_from(p, "203.0.113.6", "qq1", "123456"), AUTH_FAIL);
	assert_int_equal(deception_lookup(p, "qq1")->plausible, 0);
	assert_int_equal(try_from(p, "192.0.2.77", "qq1", "123456"), AUTH_OK); /* 3rd */
	assert_int_equal(deception_lookup(p, "qq1")->plausible, DECEPTION_PLAUSIBLE_SOURCES);
	/* IPv6: a /64 is one network, whatever its interface ids */
	assert_int_equal(try_from(p, "2001:db8:a::1", "qq6", "x"), AUTH_FAIL);
	assert_int_equal(try_from(p, "2001:db8:a::2", "qq6", "123456"), AUTH_FAIL);
	assert_int_equal(try_from(p, "2001:db8:a:0:ffff::9", "qq6", "123456"), AUTH_FAIL);
	assert_int_equal(try_from(p, "2001:db8:b::1", "qq6", "123456"), AUTH_FAIL);
	assert_int_equal(try_from(p, "2001:db8:c::1", "qq6", "123456"), AUTH_OK);
	/* no address (a host that has none to give): never counted */
	assert_int_equal(try_from(p, NULL, "qq0", "x"), AUTH_FAIL);
	assert_int_equal(try_from(p, "not-an-ip", "qq0", "123456"), AUTH_FAIL);
	assert_int_equal(try_from(p, "", "qq0", "123456"), AUTH_FAIL);
	assert_int_equal(try_from(p, "192.0.2.1", "qq0", "123456"), AUTH_FAIL);
	auth_policy_free(&p);

	/* 0 turns the rule off: a thousand networks do not make a name plausible */
	p = make_rule(0, 0, 0, 0, 1);
	for (int i = 0; i < 1000; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.%d.%d.1", i / 256, i % 256);
		assert_int_equal(try_from(p, ip, "qq2", "123456"), AUTH_FAIL);
	}
	auth_policy_free(&p);
	/* the bound: 16 networks */
	p = make_rule(0, 0, 0, 16, 1);
	for (int i = 0; i < 15; i++) {
		char ip[32];
		snprintf(ip, sizeof(ip), "10.0.%d.1", i);
		assert_int_equal(try_from(p, ip, "qq3", "123456"), AUTH_FAIL);
	}
	assert_int_equal(try_from(p, "10.0.15.1", "qq3", "123456"), AUTH_OK);
	auth_policy_free(&p);
}

/* What made a name plausible is saved and restored; a cracked account saved before
 * the rule existed stays cracked; a guessed one saved without a reason does not crack
 * on its failures alone. */
static void test_plausible_survives_restart(void **state)
{
	struct auth_policy *p = make(3, 3, 0);
	auth_policy_note_recipient(p, "zz9@example.test");
	assert_int_equal(n_store, 0); /* probed only: memory, no row */
	assert_int_equal(try(p, "zz9", "x"), AUTH_FAIL);
	assert_int_equal(n_store, 1);
	assert_string_equal(store[0].user, "zz9");
	assert_int_equal(store[0].plausible, DECEPTION_PLAUSIBLE_RCPT);
	for (int i = 0; i < 3; i++)
		try_from(p, i == 0 ? "198.51.100.1" : i == 1 ? "203.0.113.1" : "192.0.2.200",
			 "yy8", "x");
	assert_int_equal(store[1].plausible, DECEPTION_PLAUSIBLE_SOURCES);
	auth_policy_free(&p);

	p = make(3, 3, 0);
	struct deception_account a = {.username = "zz9", .failures = 3,
				      .plausible = DECEPTION_PLAUSIBLE_RCPT, .updated_us = clock_us};
	assert_int_equal(deception_restore(p, &a), 0);
	struct deception_account b = {.username = "yy8", .failures = 3,
				      .plausible = DECEPTION_PLAUSIBLE_SOURCES,
				      .updated_us = clock_us};
	assert_int_equal(deception_restore(p, &b), 0);
	struct deception_account c = {.username = "ww7", .failures = 9, .updated_us = clock_us};
	assert_int_equal(deception_restore(p, &c), 0);
	struct deception_account old = {.username = "xkwqpzmt", .password = "dragon",
					.failures = 4, .cracked_us = T0 - 86400LL * 1000000,
					.updated_us = clock_us};
	assert_int_equal(deception_restore(p, &old), 0);
	assert_int_equal(try(p, "zz9", "123456"), AUTH_OK);
	assert_int_equal(try(p, "yy8", "123456"), AUTH_OK);
	assert_int_equal(try(p, "ww7", "123456"), AUTH_FAIL);
	assert_int_equal(try(p, "xkwqpzmt", "dragon"), AUTH_OK);
	assert_int_equal(try(p, "xkwqpzmt", "123456"), AUTH_FAIL);
	auth_policy_free(&p);
}

/* A probed or widely tried name untouched for account_expiry starts over: its reason
 * is forgotten with its failures. */
static void test_plausible_expires(void **state)
{
	struct auth_policy *p = make(0, 0, 0); /* 7 days */
	auth_policy_note_recipient(p, "vv1@example.test");
	clock_us += 8LL * 86400 * 1000000;
	assert_int_equal(try(p, "vv1", "123456"), AUTH_FAIL);
	assert_int_equal(deception_lookup(p, "vv1")->plausible, 0);
	auth_policy_free(&p);
}

/* Bounded state: RCPT probes of 20,000 names and guesses from 20,000 networks keep the
 * table at max_accounts; cracked accounts survive the flood. */
static void test_plausible_state_bounded(void **state)
{
	struct auth_policy *p = make(0, 0, 50);
	assert_int_equal(try(p, "alice", "123456"), AUTH_OK);
	char name[64], ip[32];
	for (int i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "probe%d@example.test", i);
		auth_policy_note_recipient(p, name);
		snprintf(ip, sizeof(ip), "10.%d.%d.1", (i / 256) % 256, i % 256);
		snprintf(name, sizeof(name), "wide%d", i % 100);
		try_from(p, ip, name, "x");
	}
	struct deception_stats st;
	deception_stats(p, &st);
	assert_int_equal(st.accounts, 50);
	assert_true(st.evicted > 0);
	assert_int_equal(try(p, "alice", "123456"), AUTH_OK);
	auth_policy_free(&p);
}

/* The crack time is what the mailbox dates from; a fixed account's is its first login,
 * kept across a restart. */
static void test_account_since(void **state)
{
	static const char *const fixed[] = {"frank:frank-Secret-9"};
	struct deception_config cfg = {.passwords = pwlist, .n_passwords = 5, .fail_min = 0,
				       .fail_max = 0, .domains = domains, .n_domains = 1,
				       .usernames = userlist, .n_usernames = N_USERLIST,
				       .distinct_sources = 3, .rcpt_probed = 1,
				       .fixed = fixed, .n_fixed = 1, .now_us = fake_now,
				       .save = save_hook};
	memset(cfg.secret, 7, sizeof(cfg.secret));
	struct auth_policy *p = deception_new(&cfg);
	assert_int_equal(auth_policy_account_since_us(p, "frank"), 0);
	assert_int_equal(auth_policy_account_since_us(p, "bob"), 0);
	clock_us = T0 + 1000;
	assert_int_equal(try(p, "bob", "qwerty"), AUTH_OK);
	assert_int_equal(auth_policy_account_since_us(p, "BOB@example.test"), T0 + 1000);
	clock_us = T0 + 2000;
	assert_int_equal(try(p, "frank", "frank-Secret-9"), AUTH_OK);
	assert_int_equal(auth_policy_account_since_us(p, "frank"), T0 + 2000);
	clock_us = T0 + 3000;
	assert_int_equal(try(p, "frank", "frank-Secret-9"), AUTH_OK);
	assert_int_equal(auth_policy_account_since_us(p, "frank"), T0 + 2000);
	auth_policy_free(&p);
	/* the first login was saved; a new process restores it for the fixed account */
	int fi = -1;
	for (int i = 0; i < n_store; i++)
		if (!strcmp(store[i].user, "frank"))
			fi = i;
	assert_true(fi >= 0);
	assert_int_equal(store[fi].cracked_us, T0 + 2000);
	p = deception_new(&cfg);
	struct deception_account a = {.username = "frank", .password = store[fi].pass,
				      .cracked_us = store[fi].cracked_us, .fixed = 1};
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(auth_policy_account_since_us(p, "frank"), T0 + 2000);
	auth_policy_free(&p);
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
		cmocka_unit_test_setup(test_flood_evicts_least_recently_guessed, setup),
		cmocka_unit_test_setup(test_cracked_never_evicted, setup),
		cmocka_unit_test_setup(test_guessed_accounts_expire, setup),
		cmocka_unit_test_setup(test_restore_keeps_cracked_and_newest, setup),
		cmocka_unit_test_setup(test_table_churn, setup),
		cmocka_unit_test_setup(test_flood_spares_established, setup),
		cmocka_unit_test_setup(test_cram_md5_bounded_candidates, setup),
		cmocka_unit_test_setup(test_siphash_vectors, setup),
		cmocka_unit_test_setup(test_restore_uses_saved_threshold, setup),
		cmocka_unit_test_setup(test_random_name_never_cracks, setup),
		cmocka_unit_test_setup(test_listed_name_cracks, setup),
		cmocka_unit_test_setup(test_rcpt_probed_name_cracks, setup),
		cmocka_unit_test_setup(test_distinct_networks, setup),
		cmocka_unit_test_setup(test_plausible_survives_restart, setup),
		cmocka_unit_test_setup(test_plausible_expires, setup),
		cmocka_unit_test_setup(test_plausible_state_bounded, setup),
		cmocka_unit_test_setup(test_account_since, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
