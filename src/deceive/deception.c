/*
 * deception: accounts that attackers "crack" on the fly (see deception.h).
 *
 * Two open-addressing hash tables with linear probing, both hashed with SipHash-2-4
 * under keys derived from the installation secret: the ranked password list (string
 * -> rank, built once) and the accounts (canonical username -> account).  The account
 * table grows by doubling up to twice max_accounts slots (load at most 1/2) and removes
 * with backward shifting (no tombstones), so a lookup costs a few probes whatever names
 * an attacker sends.  Guessed accounts sit on one of two LRU lists (newest first), as
 * a segmented LRU does: a name guessed once is "on probation", one guessed again is
 * "established"; room is made from the probation list first, so a flood of names
 * each tried once churns only among themselves while an account under a patient,
 * focused attack keeps its failures.  Cracked and fixed accounts are on neither list
 * and are never removed.
 *
 * Plausibility (deception.h): the username list is a third hash set like the password
 * list; the networks that guessed a name are keyed 32-bit hashes of their /24 or /64,
 * the first held in the account, the others in a small array allocated on the second
 * network and freed once the name is plausible.
 */
#include "deceive/deception.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deceive/siphash.h"

#define USER_MAX 256
#define TABLE_MIN 1024                               /* initial account slots */
#define DEFAULT_MAX_ACCOUNTS 100000
#define DEFAULT_EXPIRY_US (7LL * 86400 * 1000000)  /* account_expiry = 7d */
#define EXPIRE_PER_CALL 64  /* expired guessed accounts freed per new name, at most */
enum { SEG_PROBATION, SEG_ESTABLISHED, N_SEGS };

struct acct {
	struct deception_account pub;
	uint64_t hash;
	struct acct *newer, *older; /* LRU of guessed accounts; both NULL otherwise */
	bool on_lru;
	uint8_t seg;                /* its LRU list: SEG_PROBATION or SEG_ESTABLISHED */
	uint8_t n_src;              /* networks that guessed it: src_first, then src[] */
	uint32_t src_first;         /* keyed hash of the first one */
	uint32_t *src;              /* the others (distinct_sources - 1 slots, lazily) */
	char *pass;
	char user[];                /* canonical user name */
};

/* A set of strings (open addressing, SipHash-keyed): rank of an entry, or -1. */
struct strset {
	char **s;       /* in list order, owned */
	size_t n;
	size_t *slots;  /* index+1 into s, 0 empty */
	size_t mask;
	const uint8_t *key;
};

struct deception {
	struct auth_policy policy; /* first: the policy pointer is the object */
	uint8_t table_key[16];     /* SipHash keys, derived from the secret */
	uint8_t pw_key[16];
	struct strset pwset;       /* ranked password list */
	struct strset users;       /* plausible local parts, lower case */
	unsigned distinct_sources;
	bool rcpt_probed;
	uint64_t implausible;
	/* CRAM-MD5: HMAC-MD5 keyed with each of the first CRAM_CANDIDATES passwords */
	EVP_MAC_CTX **cram;
	size_t n_cram;
	/* accounts */
	struct acct **slots;
	size_t slot_mask;
	size_t n_accts, n_pinned; /* pinned: cracked or fixed */
	size_t max_accts, max_slots;
	struct acct *lru_newest[N_SEGS], *lru_oldest[N_SEGS];
	int64_t expiry_us;
	uint64_t evicted, expired, refused;
	char **domains;
	size_t n_domains;
	unsigned fail_min, fail_max;
	uint8_t secret[32];
	int64_t (*now_us)(void);
	deception_save_fn save;
	void *save_ctx;
};

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

static long strset_rank(const struct strset *set, const char *str)
{
	if (!set->n)
		return -1;
	for (size_t i = siphash24(set->key, str, strlen(str)) & set->mask;;
	     i = (i + 1) & set->mask) {
		size_t v = set->slots[i];
		if (!v)
			return -1;
		if (!strcmp(set->s[v - 1], str))
			return (long)(v - 1);
	}
}

/* Fill set from list[0..n) (empty and duplicate entries skipped; lower: lower-cased).
 * -1 on allocation failure (the set is then freed by strset_free). */
static int strset_build(struct strset *set, const uint8_t key[16], const char *const *list,
			size_t n, bool lower)
{
	set->key = key;
	set->s = calloc(n ? n : 1, sizeof(*set->s));
	set->mask = pow2_at_least(n * 2) - 1;
	set->slots = calloc(set->mask + 1, sizeof(*set->slots));
	if (!set->s || !set->slots)
		return -1;
	for (size_t i = 0; i < n; i++) {
		char *e = strdup(list[i]);
		if (!e)
			return -1;
		if (lower)
			for (char *c = e; *c; c++)
				*c = (char)tolower((unsigned char)*c);
		if (!*e || strset_rank(set, e) >= 0) {
			free(e);
			continue;
		}
		set->s[set->n] = e;
		size_t j = siphash24(key, e, strlen(e)) & set->mask;
		while (set->slots[j])
			j = (j + 1) & set->mask;
		set->slots[j] = ++set->n;
	}
	return 0;
}

static void strset_free(struct strset *set)
{
	for (size_t i = 0; i < set->n; i++)
		free(set->s[i]);
	free(set->s);
	free(set->slots);
	memset(set, 0, sizeof(*set));
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

/* ---- the account table ---- */

/* The slot holding user (hash h), or the empty slot where it would go. */
static size_t acct_find(const struct deception *d, const char *user, uint64_t h)
{
	for (size_t i = h & d->slot_mask;; i = (i + 1) & d->slot_mask) {
		const struct acct *a = d->slots[i];
		if (!a || (a->hash == h && !strcmp(a->user, user)))
			return i;
	}
}

/* Double the slots (rehash from the cached hashes).  -1 when out of memory. */
static int table_grow(struct deception *d)
{
	size_t n = (d->slot_mask + 1) * 2;
	struct acct **ns = calloc(n, sizeof(*ns));
	if (!ns)
		return -1;
	for (size_t i = 0; i <= d->slot_mask; i++) {
		struct acct *a = d->slots[i];
		if (!a)
			continue;
		size_t j = a->hash & (n - 1);
		while (ns[j])
			j = (j + 1) & (n - 1);
		ns[j] = a;
	}
	free(d->slots);
	d->slots = ns;
	d->slot_mask = n - 1;
	return 0;
}

/* Remove the entry at slot i, shifting later members of its run back so that every
 * entry stays reachable from its home slot (linear probing without tombstones). */
static void table_remove_at(struct deception *d, size_t i)
{
	size_t mask = d->slot_mask;
	d->slots[i] = NULL;
	for (size_t j = (i + 1) & mask; d->slots[j]; j = (j + 1) & mask) {
		size_t home = d->slots[j]->hash & mask;
		/* the entry at j may move to the hole at i unless its home lies in (i, j] */
		bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
		if (stays)
			continue;
		d->slots[i] = d->slots[j];
		d->slots[j] = NULL;
		i = j;
	}
}

static void lru_unlink(struct deception *d, struct acct *a)
{
	if (!a->on_lru)
		return;
	if (a->newer)
		a->newer->older = a->older;
	else
		d->lru_newest[a->seg] = a->older;
	if (a->older)
		a->older->newer = a->newer;
	else
		d->lru_oldest[a->seg] = a->newer;
	a->newer = a->older = NULL;
	a->on_lru = false;
}

/* a becomes the most recently guessed account of list seg. */
static void lru_push_newest(struct deception *d, struct acct *a, unsigned seg)
{
	lru_unlink(d, a);
	a->seg = (uint8_t)seg;
	a->older = d->lru_newest[seg];
	a->newer = NULL;
	if (d->lru_newest[seg])
		d->lru_newest[seg]->newer = a;
	else
		d->lru_oldest[seg] = a;
	d->lru_newest[seg] = a;
	a->on_lru = true;
}

/* The guessed account to drop first: the oldest on probation, else the oldest
 * established one (NULL: every account is cracked or fixed). */
static struct acct *lru_victim(const struct deception *d)
{
	return d->lru_oldest[SEG_PROBATION] ? d->lru_oldest[SEG_PROBATION]
					    : d->lru_oldest[SEG_ESTABLISHED];
}

/* The least recently guessed account of either list, if it is past account_expiry. */
static struct acct *lru_stale(const struct deception *d, int64_t now);

static void acct_free(struct acct *a)
{
	if (!a)
		return;
	if (a->pass)
		OPENSSL_cleanse(a->pass, strlen(a->pass));
	free(a->pass);
	free(a->src);
	free(a);
}

/* Forget a guessed account (it is on the LRU, never cracked or fixed). */
static void acct_drop(struct deception *d, struct acct *a)
{
	size_t i = acct_find(d, a->user, a->hash);
	if (d->slots[i] == a)
		table_remove_at(d, i);
	lru_unlink(d, a);
	d->n_accts--;
	acct_free(a);
}

/* A guessed account became cracked (or fixed): off the LRU, never evicted. */
static void acct_pin(struct deception *d, struct acct *a)
{
	if (a->on_lru) {
		lru_unlink(d, a);
		d->n_pinned++;
	}
}

static bool is_stale(const struct deception *d, const struct acct *a, int64_t now)
{
	return a->pub.updated_us && now - a->pub.updated_us > d->expiry_us;
}

static struct acct *lru_stale(const struct deception *d, int64_t now)
{
	for (unsigned seg = 0; seg < N_SEGS; seg++)
		if (d->lru_oldest[seg] && is_stale(d, d->lru_oldest[seg], now))
			return d->lru_oldest[seg];
	return NULL;
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

/* The account of user (canonical), created as a guessed account when create is set
 * (with *threshold, or the one derived from the secret when threshold is NULL).
 * Making room: expired guessed accounts go first, then the least recently guessed
 * one.  NULL when unknown (!create), out of memory, or every account is pinned. */
static struct acct *acct_get(struct deception *d, const char *user, bool create,
			     int64_t now, const unsigned *threshold)
{
	size_t ulen = strlen(user);
	uint64_t h = siphash24(d->table_key, user, ulen);
	size_t i = acct_find(d, user, h);
	if (d->slots[i] || !create)
		return d->slots[i];
	bool moved = false;
	struct acct *old;
	for (int k = 0; k < EXPIRE_PER_CALL && (old = lru_stale(d, now)); k++) {
		acct_drop(d, old);
		d->expired++;
		moved = true;
	}
	if (d->n_accts >= d->max_accts) {
		struct acct *victim = lru_victim(d);
		if (!victim) {
			d->refused++;
			return NULL;
		}
		acct_drop(d, victim);
		d->evicted++;
		moved = true;
	}
	if ((d->n_accts + 1) * 2 > d->slot_mask + 1 && d->slot_mask + 1 < d->max_slots) {
		if (table_grow(d) != 0)
			return NULL;
		moved = true;
	}
	if (moved)
		i = acct_find(d, user, h);
	struct acct *a = calloc(1, sizeof(*a) + ulen + 1);
	if (!a)
		return NULL;
	memcpy(a->user, user, ulen + 1);
	a->hash = h;
	a->pub.threshold = threshold ? *threshold : threshold_for(d, user);
	a->pub.updated_us = now;
	acct_sync(a);
	d->slots[i] = a;
	d->n_accts++;
	lru_push_newest(d, a, SEG_PROBATION);
	return a;
}

static void save(struct deception *d, struct acct *a)
{
	acct_sync(a);
	if (d->save)
		d->save(d->save_ctx, &a->pub);
}

/* ---- guesses ---- */

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

/* HMAC-MD5 of the challenge under candidate i, hex, from its prepared key. */
static bool cram_candidate_digest(const struct deception *d, size_t i, const char *challenge,
				  char out[33])
{
	EVP_MAC_CTX *c = EVP_MAC_CTX_dup(d->cram[i]);
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	bool ok = c && EVP_MAC_update(c, (const unsigned char *)challenge, strlen(challenge)) &&
		  EVP_MAC_final(c, mac, &maclen, sizeof(mac)) && maclen == 16;
	EVP_MAC_CTX_free(c);
	if (!ok)
		return false;
	static const char hex[] = "0123456789abcdef";
	for (size_t k = 0; k < 16; k++) {
		out[2 * k] = hex[mac[k] >> 4];
		out[2 * k + 1] = hex[mac[k] & 15];
	}
	out[32] = '\0';
	return true;
}

/* The list password the guess is (NULL: none).  For CRAM-MD5 the guess is hidden in a
 * digest: only the first n_cram list passwords are tried, from prepared keys. */
static const char *guess_from_list(const struct deception *d, const struct auth_request *req)
{
	if (!req->cram_digest) {
		if (!req->password || !*req->password || strset_rank(&d->pwset, req->password) < 0)
			return NULL;
		return req->password;
	}
	if (!req->cram_challenge)
		return NULL;
	for (size_t i = 0; i < d->n_cram; i++) {
		char want[33];
		if (cram_candidate_digest(d, i, req->cram_challenge, want) &&
		    secret_equal(want, req->cram_digest))
			return d->pwset.s[i];
	}
	return NULL;
}

/* ---- plausibility ---- */

/* Keyed 32-bit hash of the network of ip: its /24 (IPv4, IPv4-mapped IPv6 too) or its
 * /64 (IPv6).  false when ip is not an address (no network is counted). */
static bool source_hash(const struct deception *d, const char *ip, uint32_t *h_r)
{
	unsigned char a[16];
	unsigned char net[9];
	size_t len;
	if (!ip)
		return false;
	if (inet_pton(AF_INET, ip, a) == 1) {
		net[0] = 4;
		memcpy(net + 1, a, 3);
		len = 4;
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (!memcmp(a, mapped, sizeof(mapped))) {
			net[0] = 4;
			memcpy(net + 1, a + 12, 3);
			len = 4;
		} else {
			net[0] = 6;
			memcpy(net + 1, a, 8);
			len = 9;
		}
	} else {
		return false;
	}
	*h_r = (uint32_t)siphash24(d->table_key, net, len);
	return true;
}

/* The network of src_ip guessed at a: true when that makes distinct_sources networks
 * (the name is then plausible for good, and the hashes are dropped). */
static bool count_source(struct deception *d, struct acct *a, const char *src_ip)
{
	uint32_t h;
	if (!d->distinct_sources || !source_hash(d, src_ip, &h))
		return false;
	for (unsigned i = 0; i < a->n_src; i++)
		if ((i ? a->src[i - 1] : a->src_first) == h)
			return false;
	if ((unsigned)a->n_src + 1 >= d->distinct_sources) {
		free(a->src);
		a->src = NULL;
		a->n_src = 0;
		a->pub.plausible |= DECEPTION_PLAUSIBLE_SOURCES;
		return true;
	}
	if (a->n_src == 0) {
		a->src_first = h; /* most names are tried from one network: no allocation */
	} else {
		if (!a->src && !(a->src = calloc(d->distinct_sources - 1, sizeof(*a->src))))
			return false; /* out of memory: this network is not counted */
		a->src[a->n_src - 1] = h;
	}
	a->n_src++;
	return false;
}

static bool listed(const struct deception *d, const char *user)
{
	return strset_rank(&d->users, user) >= 0;
}

/* May a (guessed at from src_ip now) be cracked?  Counts the network first. */
static bool plausible(struct deception *d, struct acct *a, const char *src_ip)
{
	if (a->pub.plausible & (DECEPTION_PLAUSIBLE_RCPT | DECEPTION_PLAUSIBLE_SOURCES))
		return true;
	if (listed(d, a->user))
		return true;
	return count_source(d, a, src_ip);
}

/* A guessed account starts over: failures, and what made it plausible. */
static void acct_forget(struct acct *a)
{
	a->pub.failures = 0;
	a->pub.plausible = 0;
	free(a->src);
	a->src = NULL;
	a->n_src = 0;
}

static enum auth_verdict deception_check(struct auth_policy *p, const struct auth_request *req)
{
	struct deception *d = (struct deception *)p;
	char user[USER_MAX];
	if (!req->username || canonical(d, req->username, user, sizeof(user)) < 0)
		return AUTH_FAIL;
	int64_t now = d->now_us();
	struct acct *a = acct_get(d, user, true, now, NULL);
	if (!a)
		return AUTH_FAIL; /* every slot holds a cracked account: refuse, untracked */
	if (a->pass) {
		if (guess_matches(req, a->pass)) {
			if (!a->pub.cracked_us) {
				/* a fixed account's first login: what its mailbox dates from */
				a->pub.cracked_us = now;
				save(d, a);
			}
			return AUTH_OK;
		}
		a->pub.failures++;
		save(d, a);
		return AUTH_FAIL;
	}
	if (is_stale(d, a, now)) {
		/* untouched for account_expiry: the guessing starts over */
		acct_forget(a);
		d->expired++;
	}
	a->pub.updated_us = now;
	/* guessed at again: established (a flood of one-off names evicts others first) */
	lru_push_newest(d, a, a->pub.failures > 0 ? SEG_ESTABLISHED : SEG_PROBATION);
	bool may_crack = plausible(d, a, req->src_ip);
	if (a->pub.failures >= a->pub.threshold) {
		const char *hit = guess_from_list(d, req);
		if (hit && !may_crack)
			d->implausible++; /* a canary's list password: refused as by a real server */
		else if (hit && (a->pass = strdup(hit))) {
			a->pub.cracked_us = now;
			acct_pin(d, a);
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
	if (d->slots)
		for (size_t i = 0; i <= d->slot_mask; i++)
			acct_free(d->slots[i]);
	free(d->slots);
	for (size_t i = 0; i < d->n_cram; i++)
		EVP_MAC_CTX_free(d->cram[i]);
	free(d->cram);
	strset_free(&d->pwset);
	strset_free(&d->users);
	for (size_t i = 0; i < d->n_domains; i++)
		free(d->domains[i]);
	free(d->domains);
	OPENSSL_cleanse(d->secret, sizeof(d->secret));
	OPENSSL_cleanse(d->table_key, sizeof(d->table_key));
	OPENSSL_cleanse(d->pw_key, sizeof(d->pw_key));
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

/* The table keys: HMAC-SHA256(secret, label), so the secret itself never keys SipHash
 * and the two tables do not share a key. */
static int derive_keys(struct deception *d)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned maclen = 0;
	static const char label[] = "mxbait-deception-table-v1";
	if (!HMAC(EVP_sha256(), d->secret, sizeof(d->secret), (const unsigned char *)label,
		  sizeof(label) - 1, mac, &maclen) || maclen < 32)
		return -1;
	memcpy(d->table_key, mac, 16);
	memcpy(d->pw_key, mac + 16, 16);
	OPENSSL_cleanse(mac, sizeof(mac));
	return 0;
}

/* HMAC-MD5 contexts keyed with the first CRAM_CANDIDATES list passwords. */
static int cram_prepare(struct deception *d)
{
	size_t n = d->pwset.n < CRAM_CANDIDATES ? d->pwset.n : CRAM_CANDIDATES;
	d->cram = calloc(n ? n : 1, sizeof(*d->cram));
	if (!d->cram)
		return -1;
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (!mac)
		return -1;
	char digest[] = "MD5";
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
		OSSL_PARAM_construct_end(),
	};
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
		const char *pw = d->pwset.s[i];
		if (!c || !EVP_MAC_init(c, (const unsigned char *)pw, strlen(pw), params)) {
			EVP_MAC_CTX_free(c);
			rc = -1;
			break;
		}
		d->cram[d->n_cram++] = c;
	}
	EVP_MAC_free(mac);
	return rc;
}

/* A fixed account, or one cracked already: it "exists" (VRFY confirms it). */
static bool deception_has_user(struct auth_policy *p, const char *username)
{
	const struct deception_account *a = deception_lookup(p, username);
	return a && a->password;
}

static int64_t deception_since(struct auth_policy *p, const char *username)
{
	const struct deception_account *a = deception_lookup(p, username);
	return a && a->password ? a->cracked_us : 0;
}

static void deception_note(struct auth_policy *p, const char *address)
{
	deception_note_recipient(p, address);
}

struct auth_policy *deception_new(const struct deception_config *cfg)
{
	struct deception *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->policy.check = deception_check;
	d->policy.has_user = deception_has_user;
	d->policy.note_recipient = deception_note;
	d->policy.account_since_us = deception_since;
	d->policy.destroy = deception_destroy;
	d->distinct_sources = cfg->distinct_sources > DECEPTION_MAX_SOURCES
				      ? DECEPTION_MAX_SOURCES : cfg->distinct_sources;
	d->rcpt_probed = cfg->rcpt_probed != 0;
	d->fail_min = cfg->fail_min;
	d->fail_max = cfg->fail_max < cfg->fail_min ? cfg->fail_min : cfg->fail_max;
	memcpy(d->secret, cfg->secret, sizeof(d->secret));
	d->now_us = cfg->now_us ? cfg->now_us : wall_now_us;
	d->save = cfg->save;
	d->save_ctx = cfg->save_ctx;
	d->max_accts = cfg->max_accounts ? cfg->max_accounts : DEFAULT_MAX_ACCOUNTS;
	d->max_slots = pow2_at_least(d->max_accts * 2);
	d->expiry_us = cfg->account_expiry_us > 0 ? cfg->account_expiry_us : DEFAULT_EXPIRY_US;
	size_t first = TABLE_MIN < d->max_slots ? TABLE_MIN : d->max_slots;
	d->slot_mask = first - 1;
	d->slots = calloc(first, sizeof(*d->slots));

	size_t n = cfg->n_passwords;
	if (cfg->top_n && cfg->top_n < n)
		n = cfg->top_n;
	d->domains = copy_list(cfg->domains, cfg->n_domains, true);
	d->n_domains = cfg->n_domains;
	if (!d->slots || !d->domains || derive_keys(d) != 0) {
		if (!d->domains)
			d->n_domains = 0;
		deception_destroy(&d->policy);
		return NULL;
	}
	if (strset_build(&d->pwset, d->pw_key, cfg->passwords, n, false) != 0 ||
	    strset_build(&d->users, d->pw_key, cfg->usernames, cfg->n_usernames, true) != 0 ||
	    cram_prepare(d) != 0) {
		deception_destroy(&d->policy);
		return NULL;
	}
	int64_t now = d->now_us();
	for (size_t i = 0; i < cfg->n_fixed; i++) {
		const char *colon = strchr(cfg->fixed[i], ':');
		char user[USER_MAX], raw[USER_MAX];
		if (!colon || (size_t)(colon - cfg->fixed[i]) >= sizeof(raw))
			continue;
		memcpy(raw, cfg->fixed[i], (size_t)(colon - cfg->fixed[i]));
		raw[colon - cfg->fixed[i]] = '\0';
		if (canonical(d, raw, user, sizeof(user)) < 0)
			continue;
		struct acct *a = acct_get(d, user, true, now, NULL);
		if (!a)
			continue;
		free(a->pass);
		a->pass = strdup(colon + 1);
		a->pub.fixed = 1;
		acct_pin(d, a);
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
	int64_t now = d->now_us();
	if (!in->password && in->updated_us && now - in->updated_us > d->expiry_us)
		return 0; /* guessed long ago and never cracked: forgotten */
	/* the threshold saved with it was derived from the same secret: reuse it while
	 * it fits crack_after_failures (no HMAC per account at start) */
	bool saved_fits = in->threshold >= d->fail_min && in->threshold <= d->fail_max;
	struct acct *a = acct_get(d, user, true, now, saved_fits ? &in->threshold : NULL);
	if (!a)
		return -1;
	if (a->pub.fixed) {
		/* the config wins over the saved state, except for its first login */
		if (!a->pub.cracked_us && in->cracked_us > 0)
			a->pub.cracked_us = in->cracked_us;
		return 0;
	}
	a->pub.failures = in->failures;
	a->pub.cracked_us = in->cracked_us;
	a->pub.updated_us = in->updated_us ? in->updated_us : now;
	a->pub.plausible |= in->plausible & (DECEPTION_PLAUSIBLE_RCPT | DECEPTION_PLAUSIBLE_SOURCES);
	if (in->password) {
		free(a->pass);
		if (!(a->pass = strdup(in->password)))
			return -1;
		acct_pin(d, a);
	} else if (a->pass) {
		return 0; /* cracked already (a later row cannot undo a crack) */
	} else {
		lru_push_newest(d, a, a->pub.failures > 1 ? SEG_ESTABLISHED : SEG_PROBATION);
	}
	acct_sync(a);
	return 0;
}

void deception_stats(const struct auth_policy *p, struct deception_stats *st_r)
{
	const struct deception *d = (const struct deception *)p;
	memset(st_r, 0, sizeof(*st_r));
	st_r->accounts = d->n_accts;
	st_r->cracked = d->n_pinned;
	st_r->evicted = d->evicted;
	st_r->expired = d->expired;
	st_r->refused = d->refused;
	st_r->implausible = d->implausible;
}

void deception_note_recipient(struct auth_policy *p, const char *address)
{
	struct deception *d = (struct deception *)p;
	char user[USER_MAX];
	/* a served domain only (canonical refuses the others), and no name the list
	 * makes plausible already: nothing to hold for those */
	if (!d->rcpt_probed || !address || !strchr(address, '@') ||
	    canonical(d, address, user, sizeof(user)) < 0 || listed(d, user))
		return;
	/* canonical strips only a served domain: "x@other" kept its '@' */
	if (strchr(user, '@'))
		return;
	int64_t now = d->now_us();
	struct acct *a = acct_get(d, user, true, now, NULL);
	if (!a || a->pass || (a->pub.plausible & DECEPTION_PLAUSIBLE_RCPT))
		return;
	if (is_stale(d, a, now)) {
		acct_forget(a);
		d->expired++;
	}
	a->pub.plausible |= DECEPTION_PLAUSIBLE_RCPT;
	a->pub.updated_us = now;
	lru_push_newest(d, a, a->seg);
	/* a name being guessed at already is saved with its new reason; one only probed
	 * stays in memory (a spam run's recipients are not worth a database row each) */
	if (a->pub.failures)
		save(d, a);
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
	uint64_t h = siphash24(d->table_key, user, strlen(user));
	const struct acct *a = d->slots[acct_find(d, user, h)];
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
