/*
 * detect: detection windows (see detect.h).
 *
 * One hash table of windows keyed by a short string ("u\0alice", "p\0alice\0hash",
 * "n\0198.51.100.0/24", "i\0203.0.113.7", ...).  A window is a small growable array of
 * entries (time, source, a 32-bit tag, observation id), at most its threshold long
 * (the oldest entry gives way); entries older than the window do not count and are
 * dropped when the window is touched.  Distinct counting is by source (spray, reuse,
 * prefix, domain windows) or by tag (the pair hash in a per-address window, so that one
 * retried password counts once).
 */
#include "guard/detect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define KEY_MAX 600
#define SUCCESS_WINDOW_US (24LL * 3600 * 1000000) /* logins that exempt a source */
#define KNOWN_TTL_US (30LL * 86400 * 1000000)     /* a known user is remembered */

struct entry {
	int64_t ts;
	struct netaddr ip;
	uint32_t tag;
	char id[DECISION_ID_LEN];
};

struct window {
	struct window *next;  /* hash chain */
	uint32_t hash;
	int64_t newest;
	struct entry *e;
	unsigned n, alloc, cap;
	bool tripped;         /* reached its threshold in this window */
	size_t klen;
	char key[];
};

struct detect {
	struct detect_config cfg;
	struct window **bucket;
	size_t n_buckets, n_windows;
	uint64_t dropped;
	int64_t last_full_sweep;
};

void convictions_reset(struct convictions *c)
{
	c->n = 0;
}

void convictions_free(struct convictions *c)
{
	free(c->v);
	memset(c, 0, sizeof(*c));
}

static struct conviction *conv_add(struct convictions *c, const struct netaddr *src,
				   enum decision_action act, const char *reason)
{
	if (c->n == c->alloc) {
		size_t na = c->alloc ? c->alloc * 2 : 16;
		struct conviction *v = realloc(c->v, na * sizeof(*v));
		if (!v)
			return NULL;
		c->v = v;
		c->alloc = na;
	}
	struct conviction *k = &c->v[c->n++];
	memset(k, 0, sizeof(*k));
	k->src = *src;
	k->action = act;
	k->reason = reason;
	return k;
}

static uint32_t fnv(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint32_t h = 2166136261u;
	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 16777619u;
	return h;
}

struct detect *detect_new(const struct detect_config *cfg)
{
	struct detect *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->cfg = *cfg;
	if (!d->cfg.max_keys)
		d->cfg.max_keys = 100000;
	if (!d->cfg.window_ms)
		d->cfg.window_ms = 3600000;
	d->n_buckets = 4096;
	while (d->n_buckets < d->cfg.max_keys && d->n_buckets < (1u << 22))
		d->n_buckets <<= 1;
	d->bucket = calloc(d->n_buckets, sizeof(*d->bucket));
	if (!d->bucket) {
		free(d);
		return NULL;
	}
	return d;
}

static void window_free(struct window *w)
{
	free(w->e);
	free(w);
}

void detect_free(struct detect **dp)
{
	struct detect *d = dp ? *dp : NULL;
	if (!d)
		return;
	for (size_t i = 0; i < d->n_buckets; i++) {
		struct window *w = d->bucket[i];
		while (w) {
			struct window *n = w->next;
			window_free(w);
			w = n;
		}
	}
	free(d->bucket);
	free(d);
	*dp = NULL;
}

/* Build "<kind>\0<a>[\0<b>]" into key; returns its length (0 when too long). */
static size_t make_key(char *key, char kind, const char *a, const char *b)
{
	size_t la = strlen(a), lb = b ? strlen(b) : 0;
	if (2 + la + (b ? lb + 1 : 0) > KEY_MAX)
		return 0;
	key[0] = kind;
	key[1] = '\0';
	memcpy(key + 2, a, la);
	size_t n = 2 + la;
	if (b) {
		key[n++] = '\0';
		memcpy(key + n, b, lb);
		n += lb;
	}
	return n;
}

static int64_t window_us(const struct detect *d)
{
	return (int64_t)d->cfg.window_ms * 1000;
}

static bool stale(const struct detect *d, const struct window *w, int64_t now_us)
{
	int64_t keep = w->key[0] == 'k' ? KNOWN_TTL_US
		       : w->key[0] == 's' ? SUCCESS_WINDOW_US : window_us(d);
	return w->newest < now_us - keep;
}

size_t detect_sweep(struct detect *d, int64_t now_us)
{
	for (size_t i = 0; i < d->n_buckets; i++) {
		struct window **pp = &d->bucket[i];
		while (*pp) {
			struct window *w = *pp;
			if (stale(d, w, now_us)) {
				*pp = w->next;
				window_free(w);
				d->n_windows--;
			} else {
				pp = &w->next;
			}
		}
	}
	d->last_full_sweep = now_us;
	return d->n_windows;
}

/* The window of key, created with capacity cap when create.  NULL when absent or
 * when the bound is reached (counted). */
static struct window *get_window(struct detect *d, const char *key, size_t klen, unsigned cap,
				 bool create, int64_t now_us)
{
	uint32_t h = fnv(key, klen);
	struct window *w = d->bucket[h & (d->n_buckets - 1)];
	for (; w; w = w->next)
		if (w->hash == h && w->klen == klen && !memcmp(w->key, key, klen))
			return w;
	if (!create)
		return NULL;
	if (d->n_windows >= d->cfg.max_keys) {
		/* at most one full sweep a second: stale windows make room */
		if (now_us - d->last_full_sweep >= 1000000)
			detect_sweep(d, now_us);
		if (d->n_windows >= d->cfg.max_keys) {
			d->dropped++;
			return NULL;
		}
	}
	w = calloc(1, sizeof(*w) + klen);
	if (!w) {
		d->dropped++;
		return NULL;
	}
	memcpy(w->key, key, klen);
	w->klen = klen;
	w->hash = h;
	w->cap = cap ? cap : 1;
	w->next = d->bucket[h & (d->n_buckets - 1)];
	d->bucket[h & (d->n_buckets - 1)] = w;
	d->n_windows++;
	return w;
}

/* Drop entries older than the window. */
static void prune(struct window *w, int64_t since)
{
	unsigned k = 0;
	for (unsigned i = 0; i < w->n; i++)
		if (w->e[i].ts >= since)
			w->e[k++] = w->e[i];
	w->n = k;
	if (!k)
		w->tripped = false;
}

enum distinct { BY_SOURCE, BY_TAG, BY_NONE };

/* Add an observation; returns the count of distinct entries in the window. */
static unsigned window_add(struct window *w, const struct netaddr *ip, uint32_t tag,
			   const char *id, enum distinct by, int64_t now_us, int64_t win_us)
{
	prune(w, now_us - win_us);
	w->newest = now_us;
	for (unsigned i = 0; by != BY_NONE && i < w->n; i++) {
		bool same = by == BY_SOURCE ? netaddr_equal(&w->e[i].ip, ip) : w->e[i].tag == tag;
		if (same) {
			w->e[i].ts = now_us; /* seen again: counts once */
			return w->n;
		}
	}
	if (w->n == w->cap) {
		memmove(w->e, w->e + 1, (w->n - 1) * sizeof(*w->e));
		w->n--;
	}
	if (w->n == w->alloc) {
		unsigned na = w->alloc ? w->alloc * 2 : 4;
		if (na > w->cap)
			na = w->cap;
		struct entry *ne = realloc(w->e, na * sizeof(*ne));
		if (!ne)
			return w->n;
		w->e = ne;
		w->alloc = na;
	}
	struct entry *e = &w->e[w->n++];
	e->ts = now_us;
	e->ip = *ip;
	e->tag = tag;
	snprintf(e->id, sizeof(e->id), "%s", id ? id : "");
	return w->n;
}

static void add_evidence(struct conviction *k, const struct window *w)
{
	/* the newest ids first */
	for (unsigned i = w->n; i > 0 && k->n_evidence < DECISION_EVIDENCE_MAX; i--) {
		const char *id = w->e[i - 1].id;
		if (!*id)
			continue;
		bool dup = false;
		for (size_t j = 0; j < k->n_evidence; j++)
			dup |= !strcmp(k->evidence[j], id);
		if (!dup)
			snprintf(k->evidence[k->n_evidence++], DECISION_ID_LEN, "%s", id);
	}
}

static bool ip_in(const struct window *w, const struct netaddr *ip)
{
	for (unsigned i = 0; w && i < w->n; i++)
		if (netaddr_equal(&w->e[i].ip, ip))
			return true;
	return false;
}

/* Convict every source of w (except those in exempt), once each. */
static void convict_all(const struct window *w, const struct window *exempt,
			enum decision_action act, const char *reason, struct convictions *out)
{
	for (unsigned i = 0; i < w->n; i++) {
		if (ip_in(exempt, &w->e[i].ip))
			continue;
		bool dup = false;
		for (unsigned j = 0; j < i; j++)
			dup |= netaddr_equal(&w->e[j].ip, &w->e[i].ip);
		if (dup)
			continue;
		struct conviction *k = conv_add(out, &w->e[i].ip, act, reason);
		if (k)
			add_evidence(k, w);
	}
}

static void convict_one(const struct netaddr *ip, const struct window *w,
			enum decision_action act, const char *reason, struct convictions *out)
{
	struct conviction *k = conv_add(out, ip, act, reason);
	if (k)
		add_evidence(k, w);
}

int detect_user_known(const struct detect *d, const char *username)
{
	char key[KEY_MAX];
	size_t kl = username ? make_key(key, 'k', username, NULL) : 0;
	if (!kl)
		return -1;
	uint32_t h = fnv(key, kl);
	for (const struct window *w = d->bucket[h & (d->n_buckets - 1)]; w; w = w->next)
		if (w->hash == h && w->klen == kl && !memcmp(w->key, key, kl))
			return 1;
	return -1;
}

void detect_auth(struct detect *d, const struct detect_auth *a, int64_t now_us,
		 struct convictions *out)
{
	char key[KEY_MAX];
	char ipbuf[NETADDR_STRLEN];
	size_t kl;
	int64_t win = window_us(d);
	const char *user = a->username && *a->username ? a->username : NULL;
	netaddr_format(&a->ip, ipbuf, sizeof(ipbuf));

	if (a->success) {
		if (!user)
			return;
		struct window *w;
		if ((kl = make_key(key, 'k', user, NULL)) &&
		    (w = get_window(d, key, kl, 1, true, now_us)))
			window_add(w, &a->ip, 0, a->id, BY_NONE, now_us, KNOWN_TTL_US);
		if ((kl = make_key(key, 's', user, NULL)) &&
		    (w = get_window(d, key, kl, 64, true, now_us)))
			window_add(w, &a->ip, 0, a->id, BY_SOURCE, now_us, SUCCESS_WINDOW_US);
		return;
	}

	int known = a->user_known;
	if (known < 0 && user)
		known = detect_user_known(d, user) > 0 ? 1 : -1;
	/* one failed (user, password) from one source counts once; without the hash (log
	 * lines) every failure counts */
	uint32_t tag = fnv(user ? user : "", user ? strlen(user) : 0) ^
		       (a->pwhash ? fnv(a->pwhash, strlen(a->pwhash)) * 31u : 0);
	struct window *exempt = NULL;
	if (user && (kl = make_key(key, 's', user, NULL)))
		exempt = get_window(d, key, kl, 0, false, now_us);

	/* per source */
	if (known > 0 && user) {
		if ((kl = make_key(key, 'K', ipbuf, user))) {
			struct window *w = get_window(d, key, kl, d->cfg.known_user_failures, true,
						      now_us);
			/* without a hash (log lines) every failure counts */
			if (w && window_add(w, &a->ip, tag, a->id, a->pwhash ? BY_TAG : BY_NONE,
					    now_us, win) >=
					 d->cfg.known_user_failures)
				convict_one(&a->ip, w, DECISION_DELAY, "known_user_failures", out);
		}
	} else if ((kl = make_key(key, 'i', ipbuf, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.ip_failures, true, now_us);
		if (w && window_add(w, &a->ip, tag, a->id, a->pwhash ? BY_TAG : BY_NONE, now_us,
				    win) >=
				 d->cfg.ip_failures)
			convict_one(&a->ip, w, DECISION_DIVERT, "ip_failures", out);
	}

	/* per user name, across sources */
	if (user && (kl = make_key(key, 'u', user, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.user_min_ips * 4, true, now_us);
		if (w && window_add(w, &a->ip, 0, a->id, BY_SOURCE, now_us, win) >=
				 d->cfg.user_min_ips) {
			/* distinct sources (the window may hold a source once) */
			convict_all(w, exempt, DECISION_DIVERT, "user_spray", out);
		}
	}

	/* per credential pair, across sources */
	if (user && a->pwhash && (kl = make_key(key, 'p', user, a->pwhash))) {
		struct window *w = get_window(d, key, kl, d->cfg.pair_min_ips * 4, true, now_us);
		if (w && window_add(w, &a->ip, 0, a->id, BY_SOURCE, now_us, win) >=
				 d->cfg.pair_min_ips)
			convict_all(w, exempt, known > 0 ? DECISION_DELAY : DECISION_DIVERT,
				    "credential_reuse", out);
	}

	/* per prefix: the network is decided about */
	struct netaddr pfx;
	netaddr_prefix(&a->ip, a->ip.family == AF_INET ? 24 : 64, &pfx);
	char pbuf[NETADDR_STRLEN];
	netaddr_format(&pfx, pbuf, sizeof(pbuf));
	if ((kl = make_key(key, 'n', pbuf, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.prefix_min_ips, true, now_us);
		if (w && window_add(w, &a->ip, 0, a->id, BY_SOURCE, now_us, win) >=
				 d->cfg.prefix_min_ips && !ip_in(exempt, &a->ip))
			convict_one(&pfx, w, DECISION_DIVERT, "prefix_failures", out);
	}
}

void detect_rcpt_unknown(struct detect *d, const struct netaddr *ip, const char *id,
			 const char *domain, int64_t now_us, struct convictions *out)
{
	char key[KEY_MAX];
	char ipbuf[NETADDR_STRLEN];
	size_t kl;
	int64_t win = window_us(d);
	netaddr_format(ip, ipbuf, sizeof(ipbuf));
	if ((kl = make_key(key, 'r', ipbuf, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.ip_unknown_rcpts, true, now_us);
		if (w && window_add(w, ip, 0, id, BY_NONE, now_us, win) >= d->cfg.ip_unknown_rcpts)
			convict_one(ip, w, DECISION_DIVERT, "recipient_enumeration", out);
	}
	if (domain && *domain && (kl = make_key(key, 'd', domain, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.domain_unknown_rcpts, true, now_us);
		if (!w)
			return;
		unsigned n = window_add(w, ip, 0, id, BY_NONE, now_us, win);
		bool several = false;
		for (unsigned i = 1; i < w->n && !several; i++)
			several = !netaddr_equal(&w->e[i].ip, &w->e[0].ip);
		if (n >= d->cfg.domain_unknown_rcpts && several)
			convict_all(w, NULL, DECISION_DIVERT, "domain_enumeration", out);
	}
}

void detect_offence(struct detect *d, const struct netaddr *ip, const char *id,
		    int64_t now_us, struct convictions *out)
{
	char key[KEY_MAX];
	char ipbuf[NETADDR_STRLEN];
	size_t kl;
	netaddr_format(ip, ipbuf, sizeof(ipbuf));
	if ((kl = make_key(key, 'o', ipbuf, NULL))) {
		struct window *w = get_window(d, key, kl, d->cfg.ip_failures, true, now_us);
		if (w && window_add(w, ip, 0, id, BY_NONE, now_us, window_us(d)) >=
				 d->cfg.ip_failures)
			convict_one(ip, w, DECISION_DIVERT, "log_offences", out);
	}
}

uint64_t detect_dropped(const struct detect *d)
{
	return d->dropped;
}
