/*
 * userip: logged-in sessions per (service, user, address), see userip.h.
 *
 * A small chained hash table of "service\n user\n address" keys (user names may hold
 * any printable byte but no newline: the engines pass their canonical, printable
 * names).  Dovecot keeps this count in anvil, across its imap/pop3 processes; here the
 * sessions share one process, so a table with a mutex is the whole of it.
 */
#include "proto/userip.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USERIP_BUCKETS 1024
#define USERIP_KEY_MAX 512

struct userip_entry {
	struct userip_entry *next;
	unsigned count;
	char key[];
};

static struct userip_entry *buckets[USERIP_BUCKETS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static size_t make_key(char *out, const char *service, const char *user, const char *ip)
{
	int n = snprintf(out, USERIP_KEY_MAX, "%s\n%s\n%s", service ? service : "",
			 user ? user : "", ip ? ip : "");
	return n < 0 ? 0 : (size_t)n < USERIP_KEY_MAX ? (size_t)n : USERIP_KEY_MAX - 1;
}

static unsigned bucket_of(const char *key)
{
	uint64_t h = 1469598103934665603ULL;
	for (const unsigned char *p = (const unsigned char *)key; *p; p++) {
		h ^= *p;
		h *= 1099511628211ULL;
	}
	return (unsigned)(h % USERIP_BUCKETS);
}

static struct userip_entry **find(const char *key)
{
	struct userip_entry **pp = &buckets[bucket_of(key)];
	while (*pp && strcmp((*pp)->key, key) != 0)
		pp = &(*pp)->next;
	return pp;
}

bool userip_acquire(const char *service, const char *user, const char *ip, unsigned limit)
{
	if (limit == 0)
		return true;
	char key[USERIP_KEY_MAX];
	size_t len = make_key(key, service, user, ip);
	bool ok = false;
	pthread_mutex_lock(&lock);
	struct userip_entry **pp = find(key);
	if (*pp) {
		if ((*pp)->count < limit) {
			(*pp)->count++;
			ok = true;
		}
	} else {
		struct userip_entry *e = malloc(sizeof(*e) + len + 1);
		if (e) {
			memcpy(e->key, key, len + 1);
			e->count = 1;
			e->next = NULL;
			*pp = e;
			ok = true;
		}
		/* (out of memory: refused, as an anvil lookup failure refuses in Dovecot) */
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void userip_release(const char *service, const char *user, const char *ip)
{
	char key[USERIP_KEY_MAX];
	make_key(key, service, user, ip);
	pthread_mutex_lock(&lock);
	struct userip_entry **pp = find(key);
	if (*pp && --(*pp)->count == 0) {
		struct userip_entry *e = *pp;
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&lock);
}

unsigned userip_count(const char *service, const char *user, const char *ip)
{
	char key[USERIP_KEY_MAX];
	make_key(key, service, user, ip);
	pthread_mutex_lock(&lock);
	struct userip_entry **pp = find(key);
	unsigned n = *pp ? (*pp)->count : 0;
	pthread_mutex_unlock(&lock);
	return n;
}
