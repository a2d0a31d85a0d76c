/*
 * decision: the in-memory decision table (see decision.h).
 *
 * Entries live in one array (grown up to max_entries) chained into a hash of their
 * source; an entry is either active (a decision in force) or history (the level of a
 * source whose decision ended).  Lookups of an address try each prefix length that
 * some active decision uses (a count per family and length says which), so a lookup
 * costs a handful of hash probes whatever the number of decisions.  Eviction of the
 * oldest history when full is a linear scan: it runs only when a new source is
 * convicted while the table is full, which is rare next to lookups.
 */
#include "intel/decision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#define NIL UINT32_MAX

struct entry {
	struct decision d;      /* d.src is the key; action NONE: history only */
	int64_t touched_us;     /* last decision or end: eviction order of history */
	uint32_t next;          /* hash chain */
	bool used;
};

struct decision_table {
	struct decision_policy pol;
	struct entry *e;
	size_t n, alloc;        /* e[0..n) ever used; free ones are !used */
	uint32_t free_head;     /* chain of free entries (through next) */
	uint32_t *bucket;
	size_t n_buckets;       /* power of two */
	size_t live;            /* used entries */
	unsigned plen[2][129];  /* active decisions per (family, prefix length) */
};

static int fam_index(const struct netaddr *a)
{
	return a->family == AF_INET6 ? 1 : 0;
}

static uint32_t hash_addr(const struct netaddr *a)
{
	uint32_t h = 2166136261u;
	h = (h ^ a->family) * 16777619u;
	h = (h ^ a->bits) * 16777619u;
	for (size_t i = 0; i < 16; i++)
		h = (h ^ a->a[i]) * 16777619u;
	return h;
}

enum decision_action decision_action_parse(const char *s)
{
	if (!s)
		return DECISION_NONE;
	if (!strcmp(s, "delay"))
		return DECISION_DELAY;
	if (!strcmp(s, "divert"))
		return DECISION_DIVERT;
	if (!strcmp(s, "ban"))
		return DECISION_BAN;
	if (!strcmp(s, "allow"))
		return DECISION_ALLOW;
	return DECISION_NONE;
}

const char *decision_action_name(enum decision_action a)
{
	switch (a) {
	case DECISION_DELAY: return "delay";
	case DECISION_DIVERT: return "divert";
	case DECISION_BAN: return "ban";
	case DECISION_ALLOW: return "allow";
	case DECISION_NONE: break;
	}
	return "none";
}

/* Ids need to be unique, not secret: a random seed (once per thread), then splitmix64
 * over a counter, so that an id costs no system call (the guard makes one per
 * observation, thousands a second). */
void decision_new_id(char id[DECISION_ID_LEN])
{
	static _Thread_local uint64_t seed, ctr;
	static const char hex[] = "0123456789abcdef";
	if (!seed && getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
		seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)&ctr;
	uint64_t z = seed + ++ctr * 0x9e3779b97f4a7c15ULL;
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	for (int i = 0; i < 16; i++)
		id[i] = hex[(z >> (60 - 4 * i)) & 15];
	id[16] = '\0';
}

struct decision_table *decision_table_new(const struct decision_policy *p)
{
	struct decision_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->pol = *p;
	if (!t->pol.max_entries)
		t->pol.max_entries = 100000;
	if (!t->pol.duration_ms)
		t->pol.duration_ms = 3600000;
	if (t->pol.max_duration_ms < t->pol.duration_ms)
		t->pol.max_duration_ms = t->pol.duration_ms;
	t->n_buckets = 1024;
	while (t->n_buckets < t->pol.max_entries && t->n_buckets < (1u << 24))
		t->n_buckets <<= 1;
	t->bucket = malloc(t->n_buckets * sizeof(*t->bucket));
	if (!t->bucket) {
		free(t);
		return NULL;
	}
	for (size_t i = 0; i < t->n_buckets; i++)
		t->bucket[i] = NIL;
	t->free_head = NIL;
	return t;
}

void decision_table_free(struct decision_table **tp)
{
	if (!tp || !*tp)
		return;
	free((*tp)->e);
	free((*tp)->bucket);
	free(*tp);
	*tp = NULL;
}

static struct entry *find(const struct decision_table *t, const struct netaddr *a)
{
	uint32_t i = t->bucket[hash_addr(a) & (t->n_buckets - 1)];
	while (i != NIL) {
		struct entry *e = &t->e[i];
		if (netaddr_equal(&e->d.src, a))
			return e;
		i = e->next;
	}
	return NULL;
}

static bool is_active(const struct entry *e, int64_t now_us)
{
	return e->d.action != DECISION_NONE && (e->d.expires_us == 0 || e->d.expires_us > now_us);
}

/* An active entry whose time is up becomes history (the caller may look at it). */
static void end_entry(struct decision_table *t, struct entry *e, int64_t at_us)
{
	if (e->d.action == DECISION_NONE)
		return;
	t->plen[fam_index(&e->d.src)][e->d.src.bits]--;
	e->d.action = DECISION_NONE;
	e->touched_us = at_us;
}

static void unlink_entry(struct decision_table *t, struct entry *e)
{
	uint32_t idx = (uint32_t)(e - t->e);
	uint32_t *pp = &t->bucket[hash_addr(&e->d.src) & (t->n_buckets - 1)];
	while (*pp != NIL && *pp != idx)
		pp = &t->e[*pp].next;
	if (*pp == idx)
		*pp = e->next;
	if (e->d.action != DECISION_NONE)
		t->plen[fam_index(&e->d.src)][e->d.src.bits]--;
	e->used = false;
	e->next = t->free_head;
	t->free_head = idx;
	t->live--;
}

/* Room for one more entry: a free slot, a new one, or the oldest history evicted. */
static struct entry *alloc_entry(struct decision_table *t, int64_t now_us)
{
	if (t->free_head == NIL && t->n >= t->pol.max_entries) {
		struct entry *oldest = NULL;
		for (size_t i = 0; i < t->n; i++) {
			struct entry *e = &t->e[i];
			if (!e->used)
				continue;
			if (is_active(e, now_us))
				continue;
			if (!oldest || e->touched_us < oldest->touched_us)
				oldest = e;
		}
		if (!oldest)
			return NULL;
		unlink_entry(t, oldest);
	}
	uint32_t idx;
	if (t->free_head != NIL) {
		idx = t->free_head;
		t->free_head = t->e[idx].next;
	} else {
		if (t->n == t->alloc) {
			size_t na = t->alloc ? t->alloc * 2 : 64;
			if (na > t->pol.max_entries)
				na = t->pol.max_entries;
			struct entry *ne = realloc(t->e, na * sizeof(*ne));
			if (!ne)
				return NULL;
			t->e = ne;
			t->alloc = na;
		}
		idx = (uint32_t)t->n++;
	}
	struct entry *e = &t->e[idx];
	memset(e, 0, sizeof(*e));
	e->used = true;
	t->live++;
	return e;
}

static struct entry *get_or_add(struct decision_table *t, const struct netaddr *src,
				int64_t now_us)
{
	struct entry *e = find(t, src);
	if (e)
		return e;
	e = alloc_entry(t, now_us);
	if (!e)
		return NULL;
	e->d.src = *src;
	e->d.action = DECISION_NONE;
	uint32_t b = hash_addr(src) & (t->n_buckets - 1);
	e->next = t->bucket[b];
	t->bucket[b] = (uint32_t)(e - t->e);
	return e;
}

static int strength(enum decision_action a)
{
	switch (a) {
	case DECISION_DELAY: return 1;
	case DECISION_DIVERT: return 2;
	case DECISION_BAN: return 3;
	case DECISION_ALLOW: return 4;
	case DECISION_NONE: break;
	}
	return 0;
}

/* The active entry covering addr with the given prefix length, expiring on the way. */
static const struct decision *covering(const struct decision_table *t,
				       const struct netaddr *addr, unsigned bits,
				       int64_t now_us)
{
	struct netaddr p;
	netaddr_prefix(addr, bits, &p);
	if (p.bits != bits)
		return NULL; /* addr is a shorter prefix than bits */
	struct entry *e = find(t, &p);
	if (!e || !is_active(e, now_us))
		return NULL;
	return &e->d;
}

const struct decision *decision_table_lookup(const struct decision_table *t,
					     const struct netaddr *addr, int64_t now_us)
{
	const struct decision *best = NULL;
	int fi = fam_index(addr);
	unsigned max = netaddr_max_bits(addr);
	/* most specific first, so that ties keep the most specific */
	for (int bits = (int)(addr->bits < max ? addr->bits : max); bits >= 0; bits--) {
		if (!t->plen[fi][bits])
			continue;
		const struct decision *d = covering(t, addr, (unsigned)bits, now_us);
		if (!d)
			continue;
		if (d->action == DECISION_ALLOW)
			return d;
		if (!best || strength(d->action) > strength(best->action))
			best = d;
	}
	return best;
}

const struct decision *decision_table_get(const struct decision_table *t,
					  const struct netaddr *src, int64_t now_us)
{
	struct entry *e = find(t, src);
	return e && is_active(e, now_us) ? &e->d : NULL;
}

static uint64_t escalated_ms(const struct decision_policy *p, unsigned level)
{
	uint64_t d = p->duration_ms;
	for (unsigned i = 0; i < level && d < p->max_duration_ms; i++)
		d *= 2;
	return d > p->max_duration_ms ? p->max_duration_ms : d;
}

enum decide_result decision_table_decide(struct decision_table *t, const struct netaddr *src,
					 enum decision_action action, const char *reason,
					 const char *origin, const char *const *evidence,
					 size_t n_evidence, uint64_t duration_ms, int64_t now_us,
					 struct decision *out)
{
	if (action == DECISION_NONE)
		return DECIDE_COVERED;
	bool manual = duration_ms != 0;
	if (!manual) {
		/* Already covered by something at least as strong (or allowed): no churn. */
		const struct decision *cur = decision_table_lookup(t, src, now_us);
		if (cur && (cur->action == DECISION_ALLOW || strength(cur->action) >= strength(action)))
			return DECIDE_COVERED;
	}
	struct entry *e = get_or_add(t, src, now_us);
	if (!e)
		return DECIDE_FULL;
	unsigned level = e->d.level;
	if (e->d.action != DECISION_NONE) {
		/* a weaker decision in force is replaced; a repeat counts */
		end_entry(t, e, now_us);
	}
	if (!manual && e->touched_us)
		level++; /* convicted before */
	enum decision_action act = action;
	if (!manual) {
		if (act == DECISION_DELAY && level >= DECISION_DELAY_REPEATS)
			act = DECISION_DIVERT;
		if (act == DECISION_DIVERT && t->pol.ban_after && level >= t->pol.ban_after)
			act = DECISION_BAN;
	}
	struct decision *d = &e->d;
	memset(d->evidence, 0, sizeof(d->evidence));
	decision_new_id(d->id);
	d->src = *src;
	d->action = act;
	snprintf(d->reason, sizeof(d->reason), "%s", reason ? reason : "");
	snprintf(d->origin, sizeof(d->origin), "%s", origin ? origin : "guard");
	d->n_evidence = 0;
	for (size_t i = 0; i < n_evidence && d->n_evidence < DECISION_EVIDENCE_MAX; i++) {
		if (!evidence[i] || !*evidence[i])
			continue;
		snprintf(d->evidence[d->n_evidence++], DECISION_ID_LEN, "%s", evidence[i]);
	}
	d->created_us = now_us;
	uint64_t ms = manual ? duration_ms : escalated_ms(&t->pol, level);
	d->expires_us = ms == UINT64_MAX ? 0 : now_us + (int64_t)ms * 1000;
	d->level = level;
	e->touched_us = now_us;
	t->plen[fam_index(src)][src->bits]++;
	if (out)
		*out = *d;
	return DECIDE_NEW;
}

int decision_table_remove(struct decision_table *t, const struct netaddr *src, int64_t now_us,
			  struct decision *removed_r)
{
	struct entry *e = find(t, src);
	if (!e || !is_active(e, now_us))
		return -1;
	if (removed_r)
		*removed_r = e->d;
	end_entry(t, e, now_us);
	return 0;
}

void decision_table_restore(struct decision_table *t, const struct decision *d, int64_t now_us)
{
	struct entry *e = get_or_add(t, &d->src, now_us);
	if (!e)
		return;
	if (e->d.action != DECISION_NONE && e->d.created_us > d->created_us)
		return; /* a newer one is already in force */
	if (e->d.action != DECISION_NONE)
		end_entry(t, e, now_us);
	bool active = d->action != DECISION_NONE && (d->expires_us == 0 || d->expires_us > now_us);
	unsigned level = d->level > e->d.level ? d->level : e->d.level;
	if (active) {
		e->d = *d;
		e->d.level = level;
		t->plen[fam_index(&d->src)][d->src.bits]++;
	} else {
		e->d.level = level;
	}
	e->touched_us = d->created_us ? d->created_us : now_us;
}

size_t decision_table_active(struct decision_table *t, int64_t now_us,
			     void (*fn)(void *arg, const struct decision *d), void *arg)
{
	size_t n = 0;
	for (size_t i = 0; i < t->n; i++) {
		struct entry *e = &t->e[i];
		if (!e->used || e->d.action == DECISION_NONE)
			continue;
		if (!is_active(e, now_us)) {
			end_entry(t, e, e->d.expires_us);
			continue;
		}
		n++;
		if (fn)
			fn(arg, &e->d);
	}
	return n;
}

size_t decision_table_size(const struct decision_table *t)
{
	return t->live;
}
