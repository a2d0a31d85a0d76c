/* auth: web credentials, constant-time checks, login cache, failure rate limit (see
 * auth.h). */
#include "web/auth.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CACHE_SLOTS 64
#define CACHE_TTL_MS (5 * 60 * 1000)
#define FAIL_SLOTS 1024
#define FAIL_WINDOW_MS 60000
#define AUTHZ_MAX 4096

struct cred {
	char name[65];
	enum web_role role;
	bool token;
	unsigned char sha[32]; /* token: SHA-256 of the token */
	char *hash;            /* password: the crypt(3) string */
};

struct cache_slot {
	unsigned char mac[32]; /* HMAC of the Authorization value */
	bool used;
	enum web_role role;
	char name[65];
	int64_t until_ms;
};

struct fail_slot {
	char ip[64];
	unsigned count;
	int64_t start_ms;
};

struct web_auth {
	struct cred *creds;
	size_t n;
	unsigned limit;
	unsigned char key[32]; /* cache MACs and CSRF tokens */
	pthread_mutex_t mu;
	struct cache_slot cache[CACHE_SLOTS];
	size_t cache_next;
	struct fail_slot fails[FAIL_SLOTS];
};

const char *web_role_name(enum web_role r)
{
	return r == WEB_ROLE_ADMIN ? "admin" : r == WEB_ROLE_READ ? "read"
	       : r == WEB_ROLE_FEED ? "feed" : "none";
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

struct web_auth *web_auth_new(char *const *entries, size_t n, unsigned failures_per_min,
			      const char **why)
{
	struct web_auth *a = calloc(1, sizeof(*a));
	if (!a || (n && !(a->creds = calloc(n, sizeof(*a->creds))))) {
		*why = "out of memory";
		free(a);
		return NULL;
	}
	pthread_mutex_init(&a->mu, NULL);
	a->limit = failures_per_min ? failures_per_min : 10;
	if (RAND_bytes(a->key, sizeof(a->key)) != 1) {
		*why = "no random bytes";
		web_auth_free(&a);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		const char *e = entries[i];
		const char *c1 = strchr(e, ':');
		const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		struct cred *c = &a->creds[a->n];
		if (!c1 || !c2 || c1 - e > 64) {
			*why = "malformed web_auth entry";
			web_auth_free(&a);
			return NULL;
		}
		memcpy(c->name, e, (size_t)(c1 - e));
		c->role = !strncmp(c1 + 1, "admin:", 6)  ? WEB_ROLE_ADMIN
			  : !strncmp(c1 + 1, "feed:", 5) ? WEB_ROLE_FEED
							 : WEB_ROLE_READ;
		const char *h = c2 + 1;
		if (!strncmp(h, "sha256:", 7) && strlen(h + 7) == 64) {
			c->token = true;
			for (int k = 0; k < 32; k++) {
				int hi = hexval(h[7 + 2 * k]), lo = hexval(h[8 + 2 * k]);
				if (hi < 0 || lo < 0) {
					*why = "bad sha256 hex";
					web_auth_free(&a);
					return NULL;
				}
				c->sha[k] = (unsigned char)(hi << 4 | lo);
			}
		} else if (!(c->hash = strdup(h))) {
			*why = "out of memory";
			web_auth_free(&a);
			return NULL;
		}
		a->n++;
	}
	return a;
}

void web_auth_free(struct web_auth **ap)
{
	struct web_auth *a = ap ? *ap : NULL;
	if (!a)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->creds[i].hash);
	free(a->creds);
	pthread_mutex_destroy(&a->mu);
	OPENSSL_cleanse(a, sizeof(*a));
	free(a);
	*ap = NULL;
}

bool web_auth_required(const struct web_auth *a)
{
	return a && a->n > 0;
}

static void mac_of(const struct web_auth *a, const char *s, unsigned char out[32])
{
	unsigned len = 32;
	HMAC(EVP_sha256(), a->key, sizeof(a->key), (const unsigned char *)s, strlen(s), out, &len);
}

static bool cache_lookup(struct web_auth *a, const unsigned char mac[32], enum web_role *role_r,
			 char name_r[65])
{
	bool hit = false;
	int64_t now = mono_ms();
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < CACHE_SLOTS; i++) {
		struct cache_slot *s = &a->cache[i];
		if (s->used && s->until_ms > now && !CRYPTO_memcmp(s->mac, mac, 32)) {
			*role_r = s->role;
			memcpy(name_r, s->name, 65);
			hit = true;
		}
	}
	pthread_mutex_unlock(&a->mu);
	return hit;
}

static void cache_store(struct web_auth *a, const unsigned char mac[32], enum web_role role,
			const char *name)
{
	pthread_mutex_lock(&a->mu);
	struct cache_slot *s = &a->cache[a->cache_next++ % CACHE_SLOTS];
	memcpy(s->mac, mac, 32);
	s->used = true;
	s->role = role;
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->until_ms = mono_ms() + CACHE_TTL_MS;
	pthread_mutex_unlock(&a->mu);
}

/* Base64 (RFC 4648) into out; returns the length or -1. */
static int b64_decode(const char *in, unsigned char *out, size_t outlen)
{
	size_t len = strlen(in);
	if (len % 4 || len / 4 * 3 > outlen)
		return -1;
	int n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
	if (n < 0)
		return -1;
	if (len >= 1 && in[len - 1] == '=')
		n--;
	if (len >= 2 && in[len - 2] == '=')
		n--;
	return n;
}

static enum web_role check_bearer(struct web_auth *a, const char *token, char name_r[65])
{
	unsigned char d[32];
	unsigned dl = 0;
	EVP_Digest(token, strlen(token), d, &dl, EVP_sha256(), NULL);
	enum web_role role = WEB_ROLE_NONE;
	for (size_t i = 0; i < a->n; i++) {
		/* Every entry, each compared in constant time. */
		bool eq = a->creds[i].token && !CRYPTO_memcmp(d, a->creds[i].sha, 32);
		if (eq && role == WEB_ROLE_NONE) {
			role = a->creds[i].role;
			memcpy(name_r, a->creds[i].name, 65);
		}
	}
	return role;
}

static enum web_role check_basic(struct web_auth *a, const char *b64, char name_r[65])
{
	unsigned char dec[1024];
	int n = b64_decode(b64, dec, sizeof(dec) - 1);
	if (n <= 0)
		return WEB_ROLE_NONE;
	dec[n] = '\0';
	char *colon = memchr(dec, ':', (size_t)n);
	if (!colon || memchr(dec, '\0', (size_t)n))
		return WEB_ROLE_NONE;
	*colon = '\0';
	const char *user = (const char *)dec, *pass = colon + 1;
	const struct cred *match = NULL;
	size_t ul = strlen(user);
	for (size_t i = 0; i < a->n; i++) {
		const struct cred *c = &a->creds[i];
		size_t cl = strlen(c->name);
		bool eq = !c->token && cl == ul && !CRYPTO_memcmp(c->name, user, ul);
		if (eq && !match)
			match = c;
	}
	/* struct crypt_data is large (32 KiB+): on the heap, not a worker's stack. */
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	if (!cd)
		return WEB_ROLE_NONE;
	/* An unknown user costs one crypt() with a configured hash's own method and cost,
	 * so the time taken does not say whether the name exists. */
	const char *want = match ? match->hash : NULL;
	for (size_t i = 0; !want && i < a->n; i++)
		if (!a->creds[i].token)
			want = a->creds[i].hash;
	if (!want) {
		free(cd);
		return WEB_ROLE_NONE; /* tokens only: no password can match */
	}
	/* crypt_rn (libxcrypt): NULL on failure; and not the sanitizers' crypt_r
	 * interceptor, which would hide the library from an --as-needed link. */
	const char *got = crypt_rn(pass, want, cd, (int)sizeof(*cd));
	bool ok = got && got[0] != '*' && strlen(got) == strlen(want) &&
		  !CRYPTO_memcmp(got, want, strlen(want));
	OPENSSL_cleanse(cd, sizeof(*cd));
	free(cd);
	OPENSSL_cleanse(dec, sizeof(dec));
	if (!ok || !match)
		return WEB_ROLE_NONE;
	memcpy(name_r, match->name, 65);
	return match->role;
}

enum web_role web_auth_check_cached(struct web_auth *a, const char *authz, char name_r[65])
{
	name_r[0] = '\0';
	if (!a || !authz || !a->n || strlen(authz) > AUTHZ_MAX)
		return WEB_ROLE_NONE;
	unsigned char mac[32];
	mac_of(a, authz, mac);
	enum web_role role;
	return cache_lookup(a, mac, &role, name_r) ? role : WEB_ROLE_NONE;
}

enum web_role web_auth_check(struct web_auth *a, const char *authz, char name_r[65])
{
	name_r[0] = '\0';
	if (!a || !authz || !a->n || strlen(authz) > AUTHZ_MAX)
		return WEB_ROLE_NONE;
	unsigned char mac[32];
	mac_of(a, authz, mac);
	enum web_role role;
	if (cache_lookup(a, mac, &role, name_r))
		return role;
	if (!strncasecmp(authz, "Bearer ", 7))
		role = check_bearer(a, authz + 7, name_r);
	else if (!strncasecmp(authz, "Basic ", 6))
		role = check_basic(a, authz + 6, name_r);
	else
		role = WEB_ROLE_NONE;
	if (role != WEB_ROLE_NONE)
		cache_store(a, mac, role, name_r);
	return role;
}

static struct fail_slot *fail_slot(struct web_auth *a, const char *ip, int64_t now, bool create)
{
	struct fail_slot *oldest = &a->fails[0];
	for (size_t i = 0; i < FAIL_SLOTS; i++) {
		struct fail_slot *f = &a->fails[i];
		if (f->ip[0] && !strcmp(f->ip, ip))
			return f;
		if (!f->ip[0] || f->start_ms < oldest->start_ms)
			oldest = f;
	}
	if (!create)
		return NULL;
	/* The table is full of recent failures: the oldest entry makes room. */
	memset(oldest, 0, sizeof(*oldest));
	snprintf(oldest->ip, sizeof(oldest->ip), "%s", ip);
	oldest->start_ms = now;
	return oldest;
}

bool web_auth_blocked(struct web_auth *a, const char *ip, int64_t now_ms)
{
	if (!a)
		return false;
	pthread_mutex_lock(&a->mu);
	struct fail_slot *f = fail_slot(a, ip, now_ms, false);
	bool blocked = f && now_ms - f->start_ms < FAIL_WINDOW_MS && f->count >= a->limit;
	pthread_mutex_unlock(&a->mu);
	return blocked;
}

void web_auth_failed(struct web_auth *a, const char *ip, int64_t now_ms)
{
	if (!a)
		return;
	pthread_mutex_lock(&a->mu);
	struct fail_slot *f = fail_slot(a, ip, now_ms, true);
	if (now_ms - f->start_ms >= FAIL_WINDOW_MS) {
		f->start_ms = now_ms;
		f->count = 0;
	}
	f->count++;
	pthread_mutex_unlock(&a->mu);
}

void web_auth_csrf(struct web_auth *a, const char *name, char out[65])
{
	unsigned char mac[32];
	struct {
		char tag[8];
		char name[65];
	} m;
	memset(&m, 0, sizeof(m));
	memcpy(m.tag, "csrf-v1", 8);
	snprintf(m.name, sizeof(m.name), "%s", name ? name : "");
	unsigned len = 32;
	HMAC(EVP_sha256(), a->key, sizeof(a->key), (const unsigned char *)&m, sizeof(m), mac, &len);
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
}

bool web_auth_csrf_ok(struct web_auth *a, const char *name, const char *token)
{
	if (!a || !token || strlen(token) != 64)
		return false;
	char want[65];
	web_auth_csrf(a, name, want);
	return !CRYPTO_memcmp(want, token, 64);
}
