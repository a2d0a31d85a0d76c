/*
 * deception: accounts that attackers "crack" on the fly (see deception.h).
 *
 * Two open-addressing hash tables: the ranked password list (string -> rank) and the
 * accounts (canonical username -> account).  Both are sized once; the account table
 * never grows past max_accounts, so a flood of random usernames costs bounded memory.
 */
#include "deceive/deception.h"

#include <ctype.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USER_MAX 256

struct acct {
	struct deception_account pub;
	char *user;
	char *pass;
};

struct deception {
	struct auth_policy policy; /* first: the policy pointer is the object */
	/* password set */
	char **pw;         /* ranked, owned */
	size_t n_pw;
	size_t *pw_slots;  /* index+1 into pw, 0 empty */
	size_t pw_mask;
	/* accounts */
	struct acct **slots;
	size_t slot_mask;
	size_t n_accts;
	size_t max_accts;
	char **domains;
	size_t n_domains;
	unsigned fail_min, fail_max;
	uint8_t secret[32];
	int64_t (*now_us)(void);
	deception_save_fn save;
	void *save_ctx;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

static size_t pow2_at_least(size_t n)
{
	size_t p = 16;
	while (p < n)
		p <<= 1;
	return p;
}

static int64_t wall_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static long pw_rank(const struct deception *d, const char *pw)
{
	if (!d->n_pw)
		return -1;
	for (size_t i = hash_str(pw) & d->pw_mask;; i = (i + 1) & d->pw_mask) {
		size_t v = d->pw_slots[i];
		if (!v)
			return -1;
		if (!strcmp(d->pw[v - 1], pw))
			return (long)(v - 1);
	}
}

static struct acct **acct_slot(const struct deception *d, const char *user)
{
	for (size_t i = hash_str(user) & d->slot_mask;; i = (i + 1) & d->slot_mask) {
		struct acct **s = &d->slots[i];
		if (!*s || !strcmp((*s)->user, user))
			return s;
	}
}

static bool local_char(unsigned char c)
{
	return isalnum(c) || c == '.' || c == '_' || c == '-' || c == '+' || c == '%' ||
	       c == '=' || c == '\'';
}

static int canonical(const struct deception *d, const char *username, char *out,
		     size_t outlen)
{
	size_t len = strlen(username);
	if (len == 0 || len >= USER_MAX || len >= outlen)
		return -1;
	const char *at = strrchr(username, '@');
	size_t local_len = at ? (size_t)(at - username) : len;
	if (local_len == 0 || local_len > 64)
		return -1;
	for (size_t i = 0; i < local_len; i++)
		if (!local_char((unsigned char)username[i]))
			return -1;
	if (username[0] == '.' || username[local_len - 1] == '.')
		return -1;
	if (at) {
		const char *dom = at + 1;
		if (!*dom)
			return -1;
		for (const char *p = dom; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
				return -1;
		bool served = false;
		for (size_t i = 0; i < d->n_domains; i++)
			if (!strcasecmp(dom, d->domains[i]))
				served = true;
		if (!served && d->n_domains)
			return -1; /* someone else's address: never ours to crack */
		if (served)
			len = local_len;
	}
	for (size_t i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)username[i]);
	out[len] = '\0';
	return 0;
}

static unsigned threshold_for(const struct deception *d, const char *user)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	HMAC(EVP_sha256(), d->secret, sizeof(d->secret), (const unsigned char *)user,
	     strlen(user), mac, &maclen);
	uint32_t v = (uint32_t)mac[0] << 24 | (uint32_t)mac[1] << 16 | (uint32_t)mac[2] << 8 |
		     mac[3];
	unsigned span = d->fail_max - d->fail_min + 1;
	return d->fail_min + v % span;
}

static void acct_sync(struct acct *a)
{
	a->pub.username = a->user;
	a->pub.password = a->pass;
}

static struct acct *acct_get(struct deception *d, const char *user, bool create)
{
	struct acct **s = acct_slot(d, user);
	if (*s || !create)
		return *s;
	if (d->n_accts >= d->max_accts)
		return NULL;
	struct acct *a = calloc(1, sizeof(*a));
	if (!a || !(a->user = strdup(user))) {
		free(a);
		return NULL;
	}
	a->pub.threshold = threshold_for(d, user);
	acct_sync(a);
	*s = a;
	d->n_accts++;
	return a;
}

static void save(struct deception *d, struct acct *a)
{
	acct_sync(a);
	if (d->save)
		d->save(d->save_ctx, &a->pub);
}

static bool secret_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la != lb)
		return false;
	return CRYPTO_memcmp(a, b, la) == 0;
}

static bool guess_matches(const struct auth_request *req, const char *password)
{
	if (req->cram_digest && req->cram_challenge) {
		char want[33];
		auth_cram_md5_digest(password, req->cram_challenge, want);
		return secret_equal(want, req->cram_digest);
	}
	return req->password && secret_equal(req->password, password);
}

/* For CRAM-MD5 the guess is hidden in a digest: find which list password it is. */
static const char *guess_from_list(const struct deception *d, const struct auth_request *req)
{
	if (!req->cram_digest) {
		if (!req->password || !*req->password || pw_rank(d, req->password) < 0)
			return NULL;
		return req->password;
	}
	for (size_t i = 0; i < d->n_pw; i++)
		if (guess_matches(req, d->pw[i]))
			return d->pw[i];
	return NULL;
}

static enum auth_verdict deception_check(struct auth_policy *p, const struct auth_request *req)
{
	struct deception *d = (struct deception *)p;
	char user[USER_MAX];
	if (!req->username || canonical(d, req->username, user, sizeof(user)) < 0)
		return AUTH_FAIL;
	struct acct *a = acct_get(d, user, true);
	if (!a)
		return AUTH_FAIL; /* table full: refuse, untracked */
	if (a->pass) {
		if (guess_matches(req, a->pass))
			return AUTH_OK;
		a->pub.failures++;
		save(d, a);
		return AUTH_FAIL;
	}
	if (a->pub.failures >= a->pub.threshold) {
		const char *hit = guess_from_list(d, req);
		if (hit && (a->pass = strdup(hit))) {
			a->pub.cracked_us = d->now_us();
			save(d, a);
			return AUTH_OK;
		}
	}
	a->pub.failures++;
	save(d, a);
	return AUTH_FAIL;
}

static void deception_destroy(struct auth_policy *p)
{
	struct deception *d = (struct deception *)p;
	for (size_t i = 0; i <= d->slot_mask; i++) {
		if (d->slots[i]) {
			free(d->slots[i]->user);
			free(d->slots[i]->pass);
			free(d->slots[i]);
		}
	}
	free(d->slots);
	for (size_t i = 0; i < d->n_pw; i++)
		free(d->pw[i]);
	free(d->pw);
	free(d->pw_slots);
	for (size_t i = 0; i < d->n_domains; i++)
		free(d->domains[i]);
	free(d->domains);
	free(d);
}

static char **copy_list(const char *const *src, size_t n, bool lower)
{
	char **dst = calloc(n ? n : 1, sizeof(*dst));
	if (!dst)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (!(dst[i] = strdup(src[i]))) {
			while (i--)
				free(dst[i]);
			free(dst);
			return NULL;
		}
		if (lower)
			for (char *c = dst[i]; *c; c++)
				*c = (char)tolower((unsigned char)*c);
	}
	return dst;
}

struct auth_policy *deception_new(const struct deception_config *cfg)
{
	struct deception *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->policy.check = deception_check;
	d->policy.destroy = deception_destroy;
	d->fail_min = cfg->fail_min;
	d->fail_max = cfg->fail_max < cfg->fail_min ? cfg->fail_min : cfg->fail_max;
	memcpy(d->secret, cfg->secret, sizeof(d->secret));
	d->now_us = cfg->now_us ? cfg->now_us : wall_now_us;
	d->save = cfg->save;
	d->save_ctx = cfg->save_ctx;
	d->max_accts = cfg->max_accounts ? cfg->max_accounts : 100000;
	d->slot_mask = pow2_at_least(d->max_accts * 2) - 1;
	d->slots = calloc(d->slot_mask + 1, sizeof(*d->slots));

	size_t n = cfg->n_passwords;
	if (cfg->top_n && cfg->top_n < n)
		n = cfg->top_n;
	d->pw = calloc(n ? n : 1, sizeof(*d->pw));
	d->pw_mask = pow2_at_least(n * 2) - 1;
	d->pw_slots = calloc(d->pw_mask + 1, sizeof(*d->pw_slots));
	d->domains = copy_list(cfg->domains, cfg->n_domains, true);
	d->n_domains = cfg->n_domains;
	if (!d->slots || !d->pw || !d->pw_slots || !d->domains) {
		if (!d->domains)
			d->n_domains = 0;
		deception_destroy(&d->policy);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!*cfg->passwords[i] || pw_rank(d, cfg->passwords[i]) >= 0)
			continue; /* skip empty and duplicate entries */
		if (!(d->pw[d->n_pw] = strdup(cfg->passwords[i]))) {
			deception_destroy(&d->policy);
			return NULL;
		}
		size_t j = hash_str(d->pw[d->n_pw]) & d->pw_mask;
		while (d->pw_slots[j])
			j = (j + 1) & d->pw_mask;
		d->pw_slots[j] = ++d->n_pw;
	}
	for (size_t i = 0; i < cfg->n_fixed; i++) {
		const char *colon = strchr(cfg->fixed[i], ':');
		char user[USER_MAX], raw[USER_MAX];
		if (!colon || (size_t)(colon - cfg->fixed[i]) >= sizeof(raw))
			continue;
		memcpy(raw, cfg->fixed[i], (size_t)(colon - cfg->fixed[i]));
		raw[colon - cfg->fixed[i]] = '\0';
		if (canonical(d, raw, user, sizeof(user)) < 0)
			continue;
		struct acct *a = acct_get(d, user, true);
		if (!a)
			continue;
		free(a->pass);
		a->pass = strdup(colon + 1);
		a->pub.fixed = 1;
		acct_sync(a);
	}
	return &d->policy;
}

int deception_restore(struct auth_policy *p, const struct deception_account *in)
{
	struct deception *d = (struct deception *)p;
	char user[USER_MAX];
	if (!in->username || canonical(d, in->username, user, sizeof(user)) < 0)
		return -1;
	struct acct *a = acct_get(d, user, true);
	if (!a)
		return -1;
	if (a->pub.fixed)
		return 0; /* the config wins over the saved state */
	a->pub.failures = in->failures;
	a->pub.cracked_us = in->cracked_us;
	if (in->password) {
		free(a->pass);
		if (!(a->pass = strdup(in->password)))
			return -1;
	}
	acct_sync(a);
	return 0;
}

int deception_canonical(const struct auth_policy *p, const char *username, char *out,
			size_t outlen)
{
	return canonical((const struct deception *)p, username, out, outlen);
}

const struct deception_account *deception_lookup(const struct auth_policy *p,
						 const char *username)
{
	const struct deception *d = (const struct deception *)p;
	char user[USER_MAX];
	if (canonical(d, username, user, sizeof(user)) < 0)
		return NULL;
	struct acct *a = *acct_slot(d, user);
	return a ? &a->pub : NULL;
}

long deception_list_load(const char *path, size_t max, char ***list_r)
{
	FILE *f = fopen(path, "r");
	if (!f)
		return -1;
	size_t n = 0, alloc = 256;
	char **list = calloc(alloc + 1, sizeof(*list));
	char line[512];
	while (list && (max == 0 || n < max) && fgets(line, sizeof(line), f)) {
		size_t len = strcspn(line, "\r\n");
		if (line[len] == '\0' && !feof(f)) {
			/* over-long line: skip the rest of it */
			int c;
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			continue;
		}
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		if (n == alloc) {
			char **nl = realloc(list, (alloc * 2 + 1) * sizeof(*list));
			if (!nl)
				break;
			list = nl;
			alloc *= 2;
		}
		if (!(list[n] = strdup(line)))
			break;
		list[++n] = NULL;
	}
	int err = ferror(f);
	fclose(f);
	if (!list || err) {
		deception_list_free(&list);
		errno = err ? EIO : ENOMEM;
		return -1;
	}
	*list_r = list;
	return (long)n;
}

void deception_list_free(char ***list)
{
	if (!list || !*list)
		return;
	for (char **p = *list; *p; p++)
		free(*p);
	free(*list);
	*list = NULL;
}
