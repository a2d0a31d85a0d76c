/*
 * auth_static: the auth_policy with fixed "user:password" accounts from the config.
 *
 * Lookups compare every account in constant time (CRYPTO_memcmp over equal-length
 * strings, lengths compared without early exit) so a probe cannot learn a user name
 * from timing.  CRAM-MD5 is checked by recomputing the HMAC-MD5 digest with the stored
 * password.  No account: every attempt fails (the default, a honeypot that only
 * records).
 */
#include "deceive/auth_policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

struct account {
	char *user;
	char *pass;
};

struct auth_static {
	struct auth_policy base; /* first: the policy pointer is the object pointer */
	struct account *acc;
	size_t n;
};

/* Constant time for a given pair of lengths' maximum: compares min(len) bytes and
 * folds the length difference in. */
static bool ct_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t n = la < lb ? la : lb;
	int diff = CRYPTO_memcmp(a, b, n);
	return (diff == 0) & (la == lb);
}

static enum auth_verdict static_check(struct auth_policy *p, const struct auth_request *req)
{
	struct auth_static *a = (struct auth_static *)p;
	bool ok = false;
	if (!req || !req->username)
		return AUTH_FAIL;
	for (size_t i = 0; i < a->n; i++) {
		bool user_ok = ct_equal(a->acc[i].user, req->username);
		bool pass_ok;
		if (req->cram_challenge && req->cram_digest) {
			char want[33];
			auth_cram_md5_digest(a->acc[i].pass, req->cram_challenge, want);
			pass_ok = ct_equal(want, req->cram_digest);
		} else {
			pass_ok = req->password && ct_equal(a->acc[i].pass, req->password);
		}
		ok |= user_ok & pass_ok;
	}
	return ok ? AUTH_OK : AUTH_FAIL;
}

/* "alice", "Alice" and "alice@any.domain" name the account alice. */
static bool static_has_user(struct auth_policy *p, const char *username)
{
	struct auth_static *a = (struct auth_static *)p;
	const char *at = strrchr(username, '@');
	size_t ul = at ? (size_t)(at - username) : strlen(username);
	for (size_t i = 0; i < a->n; i++) {
		const char *u = a->acc[i].user;
		if (strcasecmp(u, username) == 0 || (strlen(u) == ul && strncasecmp(u, username, ul) == 0))
			return true;
	}
	return false;
}

static void static_destroy(struct auth_policy *p)
{
	struct auth_static *a = (struct auth_static *)p;
	for (size_t i = 0; i < a->n; i++) {
		free(a->acc[i].user);
		if (a->acc[i].pass) {
			OPENSSL_cleanse(a->acc[i].pass, strlen(a->acc[i].pass));
			free(a->acc[i].pass);
		}
	}
	free(a->acc);
	free(a);
}

struct auth_policy *auth_static_new(const char *const *accounts, size_t n)
{
	struct auth_static *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->base.check = static_check;
	a->base.has_user = static_has_user;
	a->base.destroy = static_destroy;
	if (n > 0) {
		a->acc = calloc(n, sizeof(*a->acc));
		if (!a->acc) {
			free(a);
			return NULL;
		}
	}
	for (size_t i = 0; i < n; i++) {
		const char *colon = accounts[i] ? strchr(accounts[i], ':') : NULL;
		if (!colon)
			continue; /* malformed entries are skipped; config validation names them */
		struct account *ac = &a->acc[a->n];
		ac->user = strndup(accounts[i], (size_t)(colon - accounts[i]));
		ac->pass = strdup(colon + 1);
		if (!ac->user || !ac->pass) {
			free(ac->user);
			free(ac->pass);
			ac->user = ac->pass = NULL;
			static_destroy(&a->base);
			return NULL;
		}
		a->n++;
	}
	return &a->base;
}

void auth_policy_free(struct auth_policy **p)
{
	if (!p || !*p)
		return;
	if ((*p)->destroy)
		(*p)->destroy(*p);
	*p = NULL;
}

void auth_cram_md5_digest(const char *password, const char *challenge, char out[33])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hex[] = "0123456789abcdef";
	if (!HMAC(EVP_md5(), password, (int)strlen(password), (const unsigned char *)challenge,
		  strlen(challenge), md, &mdlen) || mdlen != 16) {
		memset(out, 0, 33);
		return;
	}
	for (unsigned i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
}
