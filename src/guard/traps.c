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
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "guard/pwhash.h"

#define USER_MAX 256
#define N_BUCKETS 65536

struct cred {
	struct cred *next;
	char *user;
	char *password;
};

struct peer_hash {
	struct peer_hash *next;
	char tag[33];
	char hash[129];
};

struct traps {
	char **domains;
	size_t n_domains;
	char **users;
	size_t n_users;
	struct cred *bucket[N_BUCKETS];
	size_t n_creds;
	struct peer_hash **peer;     /* N_BUCKETS chains by tag, allocated on first use */
	size_t n_peer;
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
	traps_set_peer(t, "", 0);
	free(t->peer);
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
	if (t->n_peer && nonce) {
		char tag[33];
		traps_peer_tag(nonce, u, tag);
		for (const struct peer_hash *p = t->peer[fnv(tag) & (N_BUCKETS - 1)]; p; p = p->next)
			if (!strcmp(p->tag, tag) && strlen(p->hash) == hl && !strcasecmp(p->hash, pwhash))
				return true;
	}
	return false;
}

void traps_peer_tag(const char *nonce, const char *canonical_user, char tag[33])
{
	static const char ctx[] = "mxbait-trap-user";
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int ml = 0;
	size_t ul = strlen(canonical_user);
	unsigned char *msg = malloc(sizeof(ctx) + ul);
	tag[0] = '\0';
	if (!msg)
		return;
	memcpy(msg, ctx, sizeof(ctx)); /* with its NUL */
	memcpy(msg + sizeof(ctx), canonical_user, ul);
	if (HMAC(EVP_sha256(), nonce, (int)strlen(nonce), msg, sizeof(ctx) + ul, mac, &ml) && ml >= 16) {
		static const char hex[] = "0123456789abcdef";
		for (int i = 0; i < 16; i++) {
			tag[2 * i] = hex[mac[i] >> 4];
			tag[2 * i + 1] = hex[mac[i] & 15];
		}
		tag[32] = '\0';
	}
	free(msg);
}

static bool hex_token(const char *s, size_t n, size_t min, size_t max)
{
	if (n < min || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

size_t traps_set_peer(struct traps *t, const char *text, size_t len)
{
	if (t->peer) {
		for (size_t i = 0; i < N_BUCKETS; i++) {
			struct peer_hash *p = t->peer[i];
			while (p) {
				struct peer_hash *n = p->next;
				free(p);
				p = n;
			}
			t->peer[i] = NULL;
		}
	}
	t->n_peer = 0;
	if (!len)
		return 0;
	if (!t->peer && !(t->peer = calloc(N_BUCKETS, sizeof(*t->peer))))
		return 0;
	for (size_t i = 0; i < len && t->n_peer < TRAPS_MAX;) {
		const char *line = text + i;
		const char *nl = memchr(line, '\n', len - i);
		size_t ll = nl ? (size_t)(nl - line) : len - i;
		i += ll + 1;
		const char *sp = memchr(line, ' ', ll);
		if (!sp)
			continue;
		size_t tl = (size_t)(sp - line), hl = ll - tl - 1;
		if (!hex_token(line, tl, 32, 32) || !hex_token(sp + 1, hl, 2, 128))
			continue;
		struct peer_hash *p = calloc(1, sizeof(*p));
		if (!p)
			break;
		memcpy(p->tag, line, 32);
		memcpy(p->hash, sp + 1, hl);
		uint32_t b = fnv(p->tag) & (N_BUCKETS - 1);
		p->next = t->peer[b];
		t->peer[b] = p;
		t->n_peer++;
	}
	return t->n_peer;
}

size_t traps_peer_count(const struct traps *t)
{
	return t->n_peer;
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
