/*
 * deception: the credential policy that lets password guessing succeed, believably.
 *
 * Only a plausible account can be cracked.  A username is plausible when it is
 *   - a fixed account from the config (which works with its password only);
 *   - in the plausible-usernames list (username_list: role mailboxes, admin names,
 *     common given names; data/usernames.txt);
 *   - a local part the attack itself enumerated: an unauthenticated RCPT TO in a
 *     served domain that SMTP accepted (deception_note_recipient through the
 *     policy's note_recipient; crack_rcpt_probed);
 *   - tried by distinct_sources different networks (IPv4 /24, IPv6 /64): the
 *     distributed attack (crack_distinct_sources; 1 makes every name plausible,
 *     which a canary detects; 0 turns the rule off).
 * A name that is none of these never logs in, however many guesses, on any protocol:
 * a honeypot detector that tries a random name ("xkwqpzmt") with the whole top list
 * is refused like on a real server.  Its guesses are still counted, so a name that
 * becomes plausible later (a third network tries it) cracks as if it had been all
 * along.
 *
 * A plausible username becomes a "cracked" account the first time a guess matches a
 * password from the ranked common-password list (top N), but only once that username
 * has already seen its own number of failed guesses (between fail_min and fail_max,
 * derived from a per-installation secret so that it is stable across restarts and
 * differs from account to account).  From then on that username logs in with that
 * password and no other, on every protocol and from every address; a second "correct"
 * password never exists.  Garbage usernames (control bytes, spaces, foreign domains,
 * over-long) never succeed.  Fixed accounts from the config always work with their
 * password only.  Accounts saved as cracked stay cracked, whatever the rule says now.
 *
 * Usernames are canonical: "Alice", "alice" and "alice@example.test" (a served domain)
 * are one account, as they would be on a Dovecot with system users.
 *
 * Decisions are in memory and synchronous.  Every change of an account (a failure
 * counted, a crack, a guessed account becoming plausible) is reported to the save hook
 * so that the host can persist it in the background; deception_restore() loads saved
 * accounts at start.  Saved with an account: why it is plausible (RCPT-probed, tried
 * from enough networks), not the networks themselves; a name only probed by RCPT and
 * never guessed is held in memory only.
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
 * cracked or fixed account is a new user name refused without being tracked.  Names
 * probed by RCPT live in the same table (on probation, with the same expiry); the
 * networks that guessed a name are at most distinct_sources keyed 32-bit hashes per
 * account, dropped once the name is plausible.
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
	unsigned plausible;     /* DECEPTION_PLAUSIBLE_* it earned (list membership is not
				 * saved: the list decides at every guess) */
};

/* Why a name not in the list is plausible (struct deception_account.plausible). */
#define DECEPTION_PLAUSIBLE_RCPT 1u    /* probed by RCPT TO */
#define DECEPTION_PLAUSIBLE_SOURCES 2u /* guessed from distinct_sources networks */
#define DECEPTION_MAX_SOURCES 16       /* bound of crack_distinct_sources */

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
	const char *const *usernames;  /* plausible local parts (case-insensitive) */
	size_t n_usernames;
	unsigned distinct_sources;     /* networks that make a name plausible (0: never,
					* 1: any name; at most DECEPTION_MAX_SOURCES) */
	int rcpt_probed;               /* names probed by RCPT TO are plausible */
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
	uint64_t implausible; /* guesses that matched the rule but the name was implausible */
};
void deception_stats(const struct auth_policy *p, struct deception_stats *st_r);

/* An unauthenticated RCPT TO accepted address (the attack enumerating): its local
 * part becomes plausible when it is in a served domain (rcpt_probed).  The same as the
 * policy's note_recipient. */
void deception_note_recipient(struct auth_policy *p, const char *address);

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

/* At most this many plausible usernames are read from username_list. */
#define DECEPTION_MAX_USERNAMES 100000
/* The list used when username_list cannot be read: data/usernames.txt itself, built
 * into the binary (src/deceive/embed_list.py), so that a build that is not installed
 * (`make run`) knows the same plausible names as the package. */
extern const char *const deception_builtin_usernames[];
extern const size_t deception_n_builtin_usernames;
void deception_list_free(char ***list);

#endif
