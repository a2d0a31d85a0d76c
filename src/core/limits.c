/*
 * limits: per-address connection counting and rate (see limits.h).
 *
 * A chained hash table keyed by the textual address with a per-process random seed
 * (addresses come from the kernel, but a seed costs nothing).  The rate is counted in
 * fixed one-minute windows per address, as Postfix's anvil does with its
 * anvil_rate_time_unit.  Prefixes (/24, /48) live in the same table under their
 * "network/len" text, which no address text can equal (it has a '/').
 */
#include "core/limits.h"

#include <arpa/inet.h>
#include <stdio.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define RATE_WINDOW_MS 60000
#define SWEEP_EVERY_MS 10000

struct ip_entry {
	struct ip_entry *next;
	unsigned active;
	unsigned attempts;      /* in the current window */
	int64_t window_start;
	char ip[64];
};

struct limits {
	unsigned max_total, max_per_ip, rate, max_per_prefix;
	size_t active;
	size_t n_entries;
	size_t n_buckets;
	struct ip_entry **buckets;
	uint64_t seed;
	int64_t last_sweep;
};

static uint64_t hash_ip(const struct limits *l, const char *ip)
{
	uint64_t h = 1469598103934665603ULL ^ l->seed;
	for (const unsigned char *p = (const unsigned char *)ip; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return h;
}

struct limits *limits_new(unsigned max_total, unsigned max_per_ip, unsigned rate_per_min)
{
	struct limits *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->max_total = max_total;
	l->max_per_ip = max_per_ip;
	l->rate = rate_per_min;
	l->n_buckets = 256;
	l->buckets = calloc(l->n_buckets, sizeof(*l->buckets));
	if (!l->buckets) {
		free(l);
		return NULL;
	}
	if (getrandom(&l->seed, sizeof(l->seed), GRND_NONBLOCK) != sizeof(l->seed))
		l->seed = (uint64_t)(uintptr_t)l;
	return l;
}

void limits_free(struct limits **lp)
{
	struct limits *l = *lp;
	if (!l)
		return;
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct ip_entry *e = l->buckets[i];
		while (e) {
			struct ip_entry *n = e->next;
			free(e);
			e = n;
		}
	}
	free(l->buckets);
	free(l);
	*lp = NULL;
}

static void grow(struct limits *l)
{
	size_t nb = l->n_buckets * 2;
	struct ip_entry **b = calloc(nb, sizeof(*b));
	if (!b)
		return; /* keep working with longer chains */
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct ip_entry *e = l->buckets[i];
		while (e) {
			struct ip_entry *n = e->next;
			size_t k = hash_ip(l, e->ip) & (nb - 1);
			e->next = b[k];
			b[k] = e;
			e = n;
		}
	}
	free(l->buckets);
	l->buckets = b;
	l->n_buckets = nb;
}

static struct ip_entry *lookup(struct limits *l, const char *ip, bool create, int64_t now)
{
	size_t k = hash_ip(l, ip) & (l->n_buckets - 1);
	for (struct ip_entry *e = l->buckets[k]; e; e = e->next)
		if (!strcmp(e->ip, ip))
			return e;
	if (!create)
		return NULL;
	struct ip_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	size_t len = strlen(ip);
	if (len >= sizeof(e->ip))
		len = sizeof(e->ip) - 1;
	memcpy(e->ip, ip, len);
	e->window_start = now;
	e->next = l->buckets[k];
	l->buckets[k] = e;
	if (++l->n_entries > l->n_buckets)
		grow(l);
	return e;
}

void limits_sweep(struct limits *l, int64_t now)
{
	l->last_sweep = now;
	for (size_t i = 0; i < l->n_buckets; i++) {
		struct ip_entry **pp = &l->buckets[i];
		while (*pp) {
			struct ip_entry *e = *pp;
			if (e->active == 0 && now - e->window_start >= RATE_WINDOW_MS) {
				*pp = e->next;
				free(e);
				l->n_entries--;
			} else {
				pp = &e->next;
			}
		}
	}
}

void limits_set_per_prefix(struct limits *l, unsigned max_per_prefix)
{
	l->max_per_prefix = max_per_prefix;
}

void limits_reconfigure(struct limits *l, unsigned max_total, unsigned max_per_ip,
			unsigned rate_per_min, unsigned max_per_prefix)
{
	if (max_total)
		l->max_total = max_total;
	l->max_per_ip = max_per_ip;
	l->rate = rate_per_min;
	l->max_per_prefix = max_per_prefix;
}

int limits_prefix(const char *ip, char *out, size_t outlen)
{
	unsigned char a[16];
	char t[INET6_ADDRSTRLEN];
	int n;
	if (inet_pton(AF_INET, ip, a) == 1) {
		a[3] = 0;
	} else if (inet_pton(AF_INET6, ip, a) == 1) {
		static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
		if (!memcmp(a, mapped, sizeof(mapped))) {
			memmove(a, a + 12, 4); /* ::ffff:a.b.c.d is an IPv4 client */
			a[3] = 0;
		} else {
			memset(a + 6, 0, 10);
			if (!inet_ntop(AF_INET6, a, t, sizeof(t)))
				return -1;
			n = snprintf(out, outlen, "%s/48", t);
			return n > 0 && (size_t)n < outlen ? 0 : -1;
		}
	} else {
		return -1;
	}
	if (!inet_ntop(AF_INET, a, t, sizeof(t)))
		return -1;
	n = snprintf(out, outlen, "%s/24", t);
	return n > 0 && (size_t)n < outlen ? 0 : -1;
}

/* The prefix entry of ip, or NULL (no prefix limit, not an address, no memory). */
static struct ip_entry *prefix_entry(struct limits *l, const char *ip, bool create,
				     int64_t now)
{
	char pfx[INET6_ADDRSTRLEN + 8];
	if (!l->max_per_prefix || limits_prefix(ip, pfx, sizeof(pfx)) != 0)
		return NULL;
	return lookup(l, pfx, create, now);
}

enum limits_verdict limits_admit(struct limits *l, const char *ip, int64_t now)
{
	if (now - l->last_sweep >= SWEEP_EVERY_MS)
		limits_sweep(l, now);
	if (l->active >= l->max_total)
		return LIMITS_TOTAL;
	struct ip_entry *e = lookup(l, ip, true, now);
	if (!e)
		return LIMITS_TOTAL; /* out of memory: refuse rather than track nothing */
	if (now - e->window_start >= RATE_WINDOW_MS) {
		e->window_start = now;
		e->attempts = 0;
	}
	if (e->attempts < UINT32_MAX)
		e->attempts++;
	if (l->max_per_ip && e->active >= l->max_per_ip)
		return LIMITS_PER_IP;
	if (l->rate && e->attempts > l->rate)
		return LIMITS_RATE;
	struct ip_entry *pe = prefix_entry(l, ip, true, now);
	if (pe) {
		pe->window_start = now; /* kept while used, swept a window after */
		if (pe->active >= l->max_per_prefix)
			return LIMITS_PER_PREFIX;
		pe->active++;
	}
	e->active++;
	l->active++;
	return LIMITS_OK;
}

void limits_release(struct limits *l, const char *ip, int64_t now)
{
	struct ip_entry *e = lookup(l, ip, false, now);
	if (!e || e->active == 0)
		return;
	e->active--;
	l->active--;
	struct ip_entry *pe = prefix_entry(l, ip, false, now);
	if (pe && pe->active)
		pe->active--;
}

unsigned limits_active_prefix(const struct limits *l, const char *ip)
{
	struct ip_entry *pe = prefix_entry((struct limits *)l, ip, false, 0);
	return pe ? pe->active : 0;
}

size_t limits_active(const struct limits *l)
{
	return l->active;
}

size_t limits_tracked(const struct limits *l)
{
	return l->n_entries;
}

unsigned limits_active_ip(const struct limits *l, const char *ip)
{
	struct ip_entry *e = lookup((struct limits *)l, ip, false, 0);
	return e ? e->active : 0;
}

const char *limits_reason(enum limits_verdict v)
{
	switch (v) {
	case LIMITS_TOTAL: return "limit_connections";
	case LIMITS_PER_IP: return "limit_per_ip";
	case LIMITS_RATE: return "limit_rate";
	case LIMITS_PER_PREFIX: return "limit_per_prefix";
	default: return "ok";
	}
}
