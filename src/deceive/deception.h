/*
 * deception: the credential policy that lets password guessing succeed, believably.
 *
 * An unknown but plausible username becomes a "cracked" account the first time a guess
 * matches a password from the ranked common-password list (top N), but only once that
 * username has already seen its own number of failed guesses (between fail_min and
 * fail_max, derived from a per-installation secret so that it is stable across
 * restarts and differs from account to account).  From then on that username logs in
 * with that password and no other, on every protocol and from every address; a second
 * "correct" password never exists.  Garbage usernames (control bytes, spaces, foreign
 * domains, over-long) never succeed.  Fixed accounts from the config always work with
 * their password only.
 *
 * Usernames are canonical: "Alice", "alice" and "alice@example.test" (a served domain)
 * are one account, as they would be on a Dovecot with system users.
 *
 * Decisions are in memory and synchronous.  Every change of an account (a failure
 * counted, a crack) is reported to the save hook so that the host can persist it in
 * the background; deception_restore() loads saved accounts at start.
 *
 * Bounded state (attackers choose the user names): the table holds at most
 * max_accounts accounts and is a hash table keyed with SipHash-2-4 under a key derived
 * from the installation secret, so nobody outside can choose names that collide.
 * Accounts that were guessed at but never cracked are "guessed" accounts: they live in
 * least-recently-used order (a segmented LRU: names guessed only once are dropped
 * before names guessed again, so a flood of one-off names cannot push out an account
 * under a patient attack), one untouched for account_expiry starts over (its failures
 * forgotten), and when the table is full the least recently guessed one makes room
 * for a new name.  Cracked and fixed accounts are never evicted: a guessing flood
 * cannot take away what an attacker already "owns".  Only when every slot holds a
 * cracked or fixed account is a new user name refused without being tracked.
 *
 * CRAM-MD5 hides the guess in an HMAC: past an account's threshold the policy tries
 * only the first CRAM_CANDIDATES list passwords (HMAC-MD5 keys prepared once at
 * start), so one attempt costs a bounded number of HMACs, never one per list entry.
 */
#ifndef MXB_DECEIVE_DECEPTION_H
#define MXB_DECEIVE_DECEPTION_H

#include <stddef.h>
#include <stdint.h>

#include "deceive/auth_policy.h"

struct deception_account {
	const char *username;   /* canonical form */
	const char *password;   /* NULL until cracked (or the fixed password) */
	unsigned failures;      /* failed guesses seen */
	unsigned threshold;     /* failures needed before a list password cracks it */
	int64_t cracked_us;     /* when it was cracked, 0 if not */
	int fixed;              /* from the config */
	int64_t updated_us;     /* last guess at it (restore: when it was saved; 0 unknown) */
};

/* At most this many list passwords are tried against one CRAM-MD5 digest. */
#define CRAM_CANDIDATES 100

typedef void (*deception_save_fn)(void *ctx, const struct deception_account *a);

struct deception_config {
	const char *const *passwords;  /* ranked list, most common first */
	size_t n_passwords;
	size_t top_n;                  /* use only the first top_n (0: all) */
	unsigned fail_min, fail_max;   /* failures before a crack: [fail_min, fail_max] */
	const char *const *domains;    /* served domains (lower case) */
	size_t n_domains;
	const char *const *fixed;      /* "user:password" */
	size_t n_fixed;
	uint8_t secret[32];            /* per-installation key: thresholds, table hash */
	size_t max_accounts;           /* bound on accounts held (0: 100000) */
	int64_t account_expiry_us;     /* a guessed account untouched this long starts
					* over (0: 7 days) */
	int64_t (*now_us)(void);       /* clock (tests); NULL: wall clock */
	deception_save_fn save;        /* persistence hook, may be NULL */
	void *save_ctx;
};

/* Create the policy (it copies what it needs from cfg). NULL on allocation failure. */
struct auth_policy *deception_new(const struct deception_config *cfg);

/* Load a saved account (at start, before any check; oldest save first, so that the
 * most recent guessed accounts are the ones kept when there are more than fit).  A
 * guessed account saved longer than account_expiry ago is skipped.  Returns 0, or -1
 * when the account is refused (not plausible any more, or the table is full of cracked
 * accounts). */
int deception_restore(struct auth_policy *p, const struct deception_account *a);

struct deception_stats {
	size_t accounts;      /* held now */
	size_t cracked;       /* of which cracked or fixed */
	uint64_t evicted;     /* guessed accounts dropped to make room */
	uint64_t expired;     /* guessed accounts that started over after account_expiry */
	uint64_t refused;     /* new names not tracked: the table was full of cracked ones */
};
void deception_stats(const struct auth_policy *p, struct deception_stats *st_r);

/* Canonical username into out (size outlen): lower case, served domain stripped.
 * Returns -1 when the username is garbage (never succeeds). */
int deception_canonical(const struct auth_policy *p, const char *username, char *out,
			size_t outlen);

/* Look an account up by canonical or raw username (NULL if unknown). */
const struct deception_account *deception_lookup(const struct auth_policy *p,
						 const char *username);

/* Read a ranked password list file (one per line, '#' comment lines skipped, blank
 * lines skipped, at most max entries).  Returns the count, -1 on error; *list_r is a
 * NULL-terminated array freed with deception_list_free(). */
long deception_list_load(const char *path, size_t max, char ***list_r);
void deception_list_free(char ***list);

#endif
