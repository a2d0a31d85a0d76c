/*
 * traps: trap user names and credentials (see traps.h).  A chained hash table of
 * canonical user names, each with its trap passwords.
 */
#include "guard/traps.h"

#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "guard/pwhash.h"

#define USER_MAX 256
#define N_BUCKETS 65536

struct cred {
	struct cred *next;
	char *user;
	char *password;
};

struct traps {
	char **domains;
	size_t n_domains;
	char **users;
	size_t n_users;
	struct cred *bucket[N_BUCKETS];
	size_t n_creds;
};

static uint32_t fnv(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static char **dup_list(const char *const *v, size_t n)
{
	char **o = calloc(n + 1, sizeof(*o));
	for (size_t i = 0; o && i < n; i++)
		if (!(o[i] = strdup(v[i])))
			return o; /* partial: the rest stays NULL, skipped */
	return o;
}

int traps_canonical(const struct traps *t, const char *username, char *out, size_t outlen)
{
	size_t len = strlen(username);
	if (len == 0 || len >= outlen || len >= USER_MAX)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)username[i];
		if (c < 0x20 || c == 0x7f)
			return -1;
		out[i] = (char)tolower(c);
	}
	out[len] = '\0';
	char *at = strrchr(out, '@');
	if (at && t) {
		for (size_t i = 0; i < t->n_domains; i++)
			if (t->domains[i] && !strcasecmp(at + 1, t->domains[i])) {
				*at = '\0';
				break;
			}
	}
	return out[0] ? 0 : -1;
}

struct traps *traps_new(const char *const *domains, size_t n_domains,
			const char *const *users, size_t n_users)
{
	struct traps *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->domains = dup_list(domains, n_domains);
	t->n_domains = n_domains;
	t->users = calloc(n_users + 1, sizeof(char *));
	if (!t->domains || !t->users) {
		traps_free(&t);
		return NULL;
	}
	for (size_t i = 0; i < n_users; i++) {
		char c[USER_MAX];
		if (traps_canonical(t, users[i], c, sizeof(c)) == 0 && (t->users[t->n_users] = strdup(c)))
			t->n_users++;
	}
	return t;
}

void traps_free(struct traps **tp)
{
	struct traps *t = tp ? *tp : NULL;
	if (!t)
		return;
	for (size_t i = 0; t->domains && i < t->n_domains; i++)
		free(t->domains[i]);
	free(t->domains);
	for (size_t i = 0; t->users && i < t->n_users; i++)
		free(t->users[i]);
	free(t->users);
	for (size_t i = 0; i < N_BUCKETS; i++) {
		struct cred *c = t->bucket[i];
		while (c) {
			struct cred *n = c->next;
			OPENSSL_cleanse(c->password, strlen(c->password));
			free(c->user);
			free(c->password);
			free(c);
			c = n;
		}
	}
	free(t);
	*tp = NULL;
}

int traps_add_credential(struct traps *t, const char *username, const char *password)
{
	char u[USER_MAX];
	if (!username || !password || !*password || traps_canonical(t, username, u, sizeof(u)))
		return -1;
	uint32_t b = fnv(u) & (N_BUCKETS - 1);
	for (struct cred *c = t->bucket[b]; c; c = c->next)
		if (!strcmp(c->user, u) && !strcmp(c->password, password))
			return 0;
	if (t->n_creds >= TRAPS_MAX)
		return -1;
	struct cred *c = calloc(1, sizeof(*c));
	if (!c || !(c->user = strdup(u)) || !(c->password = strdup(password))) {
		if (c) {
			free(c->user);
			free(c);
		}
		return -1;
	}
	c->next = t->bucket[b];
	t->bucket[b] = c;
	t->n_creds++;
	return 0;
}

bool traps_user(const struct traps *t, const char *username)
{
	char u[USER_MAX];
	if (!username || traps_canonical(t, username, u, sizeof(u)))
		return false;
	for (size_t i = 0; i < t->n_users; i++)
		if (!strcmp(t->users[i], u))
			return true;
	return false;
}

bool traps_credential(const struct traps *t, const char *login, const char *pwhash,
		      const char *mech, const char *nonce, unsigned truncate_bits)
{
	char u[USER_MAX];
	if (!login || !pwhash || !*pwhash || traps_canonical(t, login, u, sizeof(u)))
		return false;
	size_t hl = strlen(pwhash);
	for (const struct cred *c = t->bucket[fnv(u) & (N_BUCKETS - 1)]; c; c = c->next) {
		if (strcmp(c->user, u))
			continue;
		char h[160];
		/* Dovecot hashes the login as it sent it */
		if (pwhash_dovecot(mech, nonce, truncate_bits, login, c->password, h, sizeof(h)))
			continue;
		if (strlen(h) == hl && !strcasecmp(h, pwhash))
			return true;
	}
	return false;
}

bool traps_credential_plain(const struct traps *t, const char *username, const char *password)
{
	char u[USER_MAX];
	if (!username || !password || traps_canonical(t, username, u, sizeof(u)))
		return false;
	for (const struct cred *c = t->bucket[fnv(u) & (N_BUCKETS - 1)]; c; c = c->next)
		if (!strcmp(c->user, u) && !strcmp(c->password, password))
			return true;
	return false;
}

size_t traps_count(const struct traps *t)
{
	return t->n_creds;
}
