/*
 * deception-table: what a guessing flood does to the deception policy's account table
 * (src/deceive/deception.c), measured on the policy itself, no network.  Prints figures;
 * not a test.  Built and run by bench/deception-table.sh against any source tree (so
 * the same program measures the code before and after a change):
 *
 *   cc -O2 -D_GNU_SOURCE -I SRC/src -o /tmp/dt bench/deception-table.c \
 *      SRC/src/deceive/deception.c SRC/src/deceive/auth_static.c SRC/src/util/buf.c -lcrypto
 *   /tmp/dt [PASSWORD_LIST]
 *
 * Three phases, each with the daemon's defaults (max_accounts 100000, a crack after 2-6
 * failures, the top 1000 passwords of the list):
 *   1. flood:   100,000 distinct guessed user names, one wrong guess each; then a new
 *               user name guesses list passwords: is it ever tracked (and cracked)?
 *   2. collide: 120,000 user names chosen so that the unseeded FNV-1a hash of the old
 *               table puts them all in one small run of slots (found by brute force,
 *               timed), guessed once each; then CPU per further attempt, against the
 *               same number of random names.  A keyed hash (SipHash) defeats the choice.
 *   3. restart: the 100,000 accounts saved by phase 2 (every tenth one cracked)
 *               restored into a new policy, timed (what `mxbait serve` does at start
 *               after reading them from mxbait.db).
 *   4. cram:    CRAM-MD5 guesses (wrong ones) at accounts past their threshold: CPU
 *               per attempt, which the policy spends finding the guess among the
 *               list passwords (on the daemon's event loop).
 * CPU is CLOCK_PROCESS_CPUTIME_ID; one run, no warm-up beyond the phases themselves.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deceive/deception.h"

#define MAX_ACCOUNTS 100000
#define COLLIDE_N 120000
#define MEASURE_N 5000

static double cpu_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double wall_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* Saved account states (the save hook), latest per name. */
struct saved {
	char *user, *pass;
	unsigned failures;
	int64_t cracked_us;
};
static struct saved *saved;
static size_t n_saved, alloc_saved;
static int saving;

static void save_hook(void *ctx, const struct deception_account *a)
{
	(void)ctx;
	if (!saving)
		return;
	/* the bench saves each name once or twice in a row: look only at the last one */
	if (n_saved && !strcmp(saved[n_saved - 1].user, a->username)) {
		struct saved *s = &saved[n_saved - 1];
		s->failures = a->failures;
		s->cracked_us = a->cracked_us;
		if (a->password && !s->pass)
			s->pass = strdup(a->password);
		return;
	}
	if (n_saved == alloc_saved) {
		alloc_saved = alloc_saved ? alloc_saved * 2 : 1024;
		saved = realloc(saved, alloc_saved * sizeof(*saved));
		if (!saved)
			abort();
	}
	saved[n_saved++] = (struct saved){strdup(a->username),
					  a->password ? strdup(a->password) : NULL,
					  a->failures, a->cracked_us};
}

static char **pw;
static size_t n_pw;

static struct auth_policy *policy(void)
{
	struct deception_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.passwords = (const char *const *)pw;
	cfg.n_passwords = n_pw;
	cfg.top_n = 1000;
	cfg.fail_min = 2;
	cfg.fail_max = 6;
	static const char *const domains[] = {"example.test"};
	cfg.domains = domains;
	cfg.n_domains = 1;
	for (size_t i = 0; i < sizeof(cfg.secret); i++)
		cfg.secret[i] = (uint8_t)(i * 37 + 11);
	cfg.max_accounts = MAX_ACCOUNTS;
#ifdef DECEPTION_MAX_SOURCES
	/* Every name plausible (crack_distinct_sources = 1): the phases measure the table
	 * with made-up names ("victim", every tenth colliding name cracked), not the
	 * plausibility rule, and a tree before the rule behaves this way. */
	cfg.distinct_sources = 1;
#endif
	cfg.save = save_hook;
	struct auth_policy *p = deception_new(&cfg);
	if (!p) {
		fprintf(stderr, "deception_new failed\n");
		exit(1);
	}
	return p;
}

static enum auth_verdict guess(struct auth_policy *p, const char *user, const char *pass)
{
	struct auth_request r = {.proto = "smtp", .mechanism = "PLAIN", .src_ip = "192.0.2.7",
				 .username = user, .password = pass};
	return auth_policy_check(p, &r);
}

static void name_of(char *out, size_t len, const char *prefix, uint64_t n)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char tmp[32];
	size_t k = 0;
	do {
		tmp[k++] = digits[n % 36];
		n /= 36;
	} while (n);
	size_t o = (size_t)snprintf(out, len, "%s", prefix);
	while (k && o + 1 < len)
		out[o++] = tmp[--k];
	out[o] = '\0';
}

/* Names whose FNV-1a lands in the first `window` slots of the old table (slot mask
 * 2^18 - 1 for max_accounts 100000). */
static char (*colliding(size_t n, uint64_t window, double *secs_r))[16]
{
	char (*names)[16] = calloc(n, sizeof(*names));
	if (!names)
		abort();
	double t0 = wall_s();
	size_t got = 0;
	for (uint64_t i = 0; got < n; i++) {
		char nm[16];
		name_of(nm, sizeof(nm), "c", i);
		if ((fnv1a(nm) & ((1u << 18) - 1)) < window)
			memcpy(names[got++], nm, sizeof(nm));
	}
	*secs_r = wall_s() - t0;
	return names;
}

/* CPU milliseconds per attempt over m more wrong guesses on the names of the flood
 * (what the attacker who made them keeps doing). */
static double per_attempt_ms(struct auth_policy *p, char (*names)[16], size_t n, size_t m)
{
	double c0 = cpu_s();
	for (size_t i = 0; i < m; i++)
		guess(p, names[(i * 7919) % n], "not-in-the-list");
	return (cpu_s() - c0) * 1000.0 / (double)m;
}

static void load_list(const char *path)
{
	FILE *f = path ? fopen(path, "r") : NULL;
	size_t alloc = 1024;
	pw = calloc(alloc, sizeof(*pw));
	char line[256];
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (!line[0] || line[0] == '#')
			continue;
		if (n_pw == alloc)
			pw = realloc(pw, (alloc *= 2) * sizeof(*pw));
		pw[n_pw++] = strdup(line);
	}
	if (f)
		fclose(f);
	if (!n_pw) /* no list: 1000 made-up ones, "123456" first */
		for (n_pw = 0; n_pw < 1000; n_pw++) {
			char b[32];
			snprintf(b, sizeof(b), n_pw ? "pw%zu" : "123456", n_pw);
			pw[n_pw] = strdup(b);
		}
}

int main(int argc, char **argv)
{
	load_list(argc > 1 ? argv[1] : "/usr/share/nmap/nselib/data/passwords.lst");
	printf("passwords: %zu (top 1000 used), max_accounts %d, crack after 2-6 failures\n",
	       n_pw, MAX_ACCOUNTS);

	/* 1. flood */
	struct auth_policy *p = policy();
	double c0 = cpu_s();
	for (uint64_t i = 0; i < MAX_ACCOUNTS; i++) {
		char nm[24];
		name_of(nm, sizeof(nm), "flood", i);
		guess(p, nm, "not-in-the-list");
	}
	double flood_cpu = cpu_s() - c0;
	int cracked_at = 0;
	for (int i = 1; i <= 20 && !cracked_at; i++)
		if (guess(p, "victim", pw[0]) == AUTH_OK)
			cracked_at = i;
	const struct deception_account *v = deception_lookup(p, "victim");
	printf("flood:   %d distinct names guessed once (%.1f s CPU); then 'victim': %s, ",
	       MAX_ACCOUNTS, flood_cpu, v ? "tracked" : "NOT tracked (table full)");
	if (cracked_at)
		printf("cracked at its attempt %d\n", cracked_at);
	else
		printf("never cracked in 20 attempts\n");
	auth_policy_free(&p);

	/* 2. collide */
	double gen_s;
	char (*names)[16] = colliding(COLLIDE_N, 4096, &gen_s);
	printf("collide: %d names in one run of FNV-1a slots found in %.1f s\n", COLLIDE_N,
	       gen_s);
	p = policy();
	saving = 1;
	c0 = cpu_s();
	for (size_t i = 0; i < COLLIDE_N; i++) {
		/* every tenth name is guessed until it cracks (a cracked account saved) */
		if (i % 10 == 0)
			for (int k = 0; k < 8 && guess(p, names[i], pw[k % 3]) != AUTH_OK; k++)
				;
		else
			guess(p, names[i], "not-in-the-list");
	}
	double fill_cpu = cpu_s() - c0;
	saving = 0;
	double coll_ms = per_attempt_ms(p, names, COLLIDE_N, MEASURE_N);
	auth_policy_free(&p);
	printf("collide: filling took %.1f s CPU; then %.4f ms CPU per attempt\n", fill_cpu,
	       coll_ms);

	/* the same with random names */
	char (*rnd)[16] = calloc(COLLIDE_N, sizeof(*rnd));
	for (size_t i = 0; i < COLLIDE_N; i++)
		name_of(rnd[i], sizeof(rnd[i]), "r", (uint64_t)rand() * 7919u + i);
	p = policy();
	c0 = cpu_s();
	for (size_t i = 0; i < COLLIDE_N; i++)
		guess(p, rnd[i], "not-in-the-list");
	double rnd_fill = cpu_s() - c0;
	double rnd_ms = per_attempt_ms(p, rnd, COLLIDE_N, MEASURE_N);
	auth_policy_free(&p);
	printf("random:  filling took %.1f s CPU; then %.4f ms CPU per attempt\n", rnd_fill,
	       rnd_ms);

	/* 3. restart: restore what phase 2 saved (the first MAX_ACCOUNTS names saved) */
	size_t n_restore = n_saved < MAX_ACCOUNTS ? n_saved : MAX_ACCOUNTS;
	size_t n_cracked = 0;
	p = policy();
	double w0 = wall_s();
	c0 = cpu_s();
	for (size_t i = 0; i < n_restore; i++) {
		struct deception_account a;
		memset(&a, 0, sizeof(a));
		a.username = saved[i].user;
		a.password = saved[i].pass;
		a.failures = saved[i].failures;
		a.cracked_us = saved[i].cracked_us;
		n_cracked += saved[i].pass != NULL;
		deception_restore(p, &a);
	}
	double rs_cpu = cpu_s() - c0, rs_wall = wall_s() - w0;
	/* a cracked account still answers after the restore */
	int still = 0;
	for (size_t i = 0; i < n_restore && !still; i++)
		if (saved[i].pass)
			still = guess(p, saved[i].user, saved[i].pass) == AUTH_OK;
	auth_policy_free(&p);
	printf("restart: %zu saved accounts (%zu cracked) restored in %.2f s (%.2f s CPU); "
	       "a cracked one logs in after: %s\n", n_restore, n_cracked, rs_wall, rs_cpu,
	       still ? "yes" : "NO");
	/* 4. cram */
	p = policy();
	for (int i = 0; i < 6; i++)
		guess(p, "cramuser", "not-in-the-list"); /* past any threshold in 2-6 */
	char digest[33];
	const char *chal = "<1234.1795762363@mail.example.test>";
	auth_cram_md5_digest("not-in-the-list-either", chal, digest);
	struct auth_request cr = {.proto = "smtp", .mechanism = "CRAM-MD5",
				  .src_ip = "192.0.2.7", .username = "cramuser",
				  .cram_challenge = chal, .cram_digest = digest};
	c0 = cpu_s();
	for (int i = 0; i < 200; i++)
		auth_policy_check(p, &cr);
	double cram_ms = (cpu_s() - c0) * 1000.0 / 200;
	auth_policy_free(&p);
	printf("cram:    %.4f ms CPU per wrong CRAM-MD5 guess past the threshold\n", cram_ms);
	for (size_t i = 0; i < n_saved; i++) {
		free(saved[i].user);
		free(saved[i].pass);
	}
	free(saved);
	free(names);
	free(rnd);
	for (size_t i = 0; i < n_pw; i++)
		free(pw[i]);
	free(pw);
	return 0;
}
