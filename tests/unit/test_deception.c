/* Unit tests for deceive/deception: fail first, crack, one password forever, restarts,
 * garbage usernames, two sessions racing for one account, bounded memory (LRU eviction
 * of guessed accounts, expiry, cracked accounts kept), CRAM-MD5 (bounded candidates),
 * and the SipHash-2-4 the table is keyed with. */
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

#define T0 1795762363000000LL
static int64_t clock_us = T0;

static int64_t fake_now(void)
{
	return clock_us;
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
		.now_us = fake_now,
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
	struct auth_policy *probe = make(2, 6, 0);
	char name[32];
	int found = 0;
	for (int i = 0; i < 500 && !found; i++) {
		snprintf(name, sizeof(name), "th%d", i);
		try(probe, name, "x");
		found = deception_lookup(probe, name)->threshold == 6;
	}
	assert_true(found);
	auth_policy_free(&probe);
	struct auth_policy *p = make(2, 6, 0);
	struct deception_account a = {.username = name, .failures = 2, .threshold = 2,
				      .updated_us = clock_us};
	assert_int_equal(deception_restore(p, &a), 0);
	assert_int_equal(deception_lookup(p, name)->threshold, 2);
	assert_int_equal(try(p, name, "123456"), AUTH_OK);
	auth_policy_free(&p);
	p = make(2, 6, 0);
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
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
