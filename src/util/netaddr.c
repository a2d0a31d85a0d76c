/*
 * netaddr: strict parsing, normalisation and matching of IP addresses and prefixes
 * (see netaddr.h for the promises).  inet_pton does the address syntax; this file adds
 * the prefix, the brackets, IPv4-mapped unmapping and host-bit clearing.
 */
#include "util/netaddr.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

unsigned netaddr_max_bits(const struct netaddr *a)
{
	return a->family == AF_INET ? 32 : 128;
}

/* Clear every bit past a->bits. */
static void clear_host_bits(struct netaddr *a)
{
	unsigned max = netaddr_max_bits(a);
	for (unsigned i = a->bits; i < max; i++)
		a->a[i / 8] &= (uint8_t)~(0x80u >> (i % 8));
	if (a->family == AF_INET)
		memset(a->a + 4, 0, 12);
}

/* ::ffff:a.b.c.d/N (N >= 96) is a.b.c.d/(N-96). */
static void unmap_v4(struct netaddr *a)
{
	if (a->family != AF_INET6 || a->bits < 96 || memcmp(a->a, v4_mapped, 12))
		return;
	memmove(a->a, a->a + 12, 4);
	memset(a->a + 4, 0, 12);
	a->family = AF_INET;
	a->bits = (uint8_t)(a->bits - 96);
}

static int parse_bits(const char *s, size_t len, unsigned max, unsigned *bits_r)
{
	if (len == 0 || len > 3 || (len > 1 && s[0] == '0'))
		return -1;
	unsigned v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*bits_r = v;
	return 0;
}

int netaddr_parse_n(const char *s, size_t len, struct netaddr *out)
{
	char tmp[INET6_ADDRSTRLEN + 1];
	const char *slash = memchr(s, '/', len);
	size_t alen = slash ? (size_t)(slash - s) : len;
	const char *addr = s;

	if (memchr(s, '\0', len))
		return -1;
	if (alen >= 2 && addr[0] == '[') {
		if (addr[alen - 1] != ']')
			return -1;
		addr++;
		alen -= 2;
	}
	if (alen == 0 || alen >= sizeof(tmp))
		return -1;
	memcpy(tmp, addr, alen);
	tmp[alen] = '\0';

	struct netaddr a;
	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, tmp, a.a) == 1) {
		a.family = AF_INET;
		a.bits = 32;
	} else if (inet_pton(AF_INET6, tmp, a.a) == 1) {
		/* a bracketed IPv4 address is not a thing */
		a.family = AF_INET6;
		a.bits = 128;
	} else {
		return -1;
	}
	if (addr != s && a.family == AF_INET)
		return -1;
	if (slash) {
		unsigned bits;
		if (parse_bits(slash + 1, (size_t)(s + len - slash - 1), a.bits, &bits))
			return -1;
		a.bits = (uint8_t)bits;
	}
	unmap_v4(&a);
	clear_host_bits(&a);
	*out = a;
	return 0;
}

int netaddr_parse(const char *s, struct netaddr *out)
{
	return netaddr_parse_n(s, strlen(s), out);
}

int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out)
{
	struct netaddr a;
	memset(&a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
		memcpy(a.a, &in->sin_addr, 4);
		a.family = AF_INET;
		a.bits = 32;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
		memcpy(a.a, &in6->sin6_addr, 16);
		a.family = AF_INET6;
		a.bits = 128;
		unmap_v4(&a);
	} else {
		return -1;
	}
	*out = a;
	return 0;
}

void netaddr_prefix(const struct netaddr *in, unsigned bits, struct netaddr *out)
{
	struct netaddr a = *in;
	if (bits < a.bits)
		a.bits = (uint8_t)bits;
	clear_host_bits(&a);
	*out = a;
}

bool netaddr_contains(const struct netaddr *net, const struct netaddr *addr)
{
	if (net->family != addr->family || addr->bits < net->bits)
		return false;
	unsigned full = net->bits / 8, rest = net->bits % 8;
	if (memcmp(net->a, addr->a, full))
		return false;
	if (rest) {
		uint8_t mask = (uint8_t)(0xffu << (8 - rest));
		if ((net->a[full] & mask) != (addr->a[full] & mask))
			return false;
	}
	return true;
}

bool netaddr_equal(const struct netaddr *x, const struct netaddr *y)
{
	return x->family == y->family && x->bits == y->bits && !memcmp(x->a, y->a, 16);
}

int netaddr_cmp(const struct netaddr *x, const struct netaddr *y)
{
	if (x->family != y->family)
		return x->family == AF_INET ? -1 : 1;
	int c = memcmp(x->a, y->a, 16);
	if (c)
		return c < 0 ? -1 : 1;
	return x->bits < y->bits ? -1 : x->bits > y->bits;
}

bool netaddr_is_host(const struct netaddr *a)
{
	return a->bits == netaddr_max_bits(a);
}

char *netaddr_format(const struct netaddr *a, char *buf, size_t len)
{
	char t[INET6_ADDRSTRLEN];
	if (!len)
		return buf;
	if (!inet_ntop(a->family, a->a, t, sizeof(t))) {
		buf[0] = '\0';
		return buf;
	}
	if (netaddr_is_host(a))
		snprintf(buf, len, "%s", t);
	else
		snprintf(buf, len, "%s/%u", t, a->bits);
	return buf;
}

void netset_init(struct netset *s)
{
	memset(s, 0, sizeof(*s));
}

void netset_free(struct netset *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

int netset_add(struct netset *s, const struct netaddr *a)
{
	for (size_t i = 0; i < s->n; i++)
		if (netaddr_equal(&s->v[i], a))
			return 0;
	if (s->n == s->alloc) {
		size_t n = s->alloc ? s->alloc * 2 : 8;
		struct netaddr *v = realloc(s->v, n * sizeof(*v));
		if (!v)
			return -1;
		s->v = v;
		s->alloc = n;
	}
	s->v[s->n++] = *a;
	return 0;
}

bool netset_contains(const struct netset *s, const struct netaddr *a)
{
	for (size_t i = 0; i < s->n; i++)
		if (netaddr_contains(&s->v[i], a))
			return true;
	return false;
}

static bool is_sep(char c)
{
	return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

int netset_parse_list(struct netset *s, const char *list, const char **bad_r,
		      size_t *bad_len_r)
{
	struct netset add;
	netset_init(&add);
	const char *p = list;
	while (*p) {
		while (*p && is_sep(*p))
			p++;
		const char *start = p;
		while (*p && !is_sep(*p))
			p++;
		if (p == start)
			break;
		struct netaddr a;
		if (netaddr_parse_n(start, (size_t)(p - start), &a) || netset_add(&add, &a)) {
			if (bad_r)
				*bad_r = start;
			if (bad_len_r)
				*bad_len_r = (size_t)(p - start);
			netset_free(&add);
			return -1;
		}
	}
	for (size_t i = 0; i < add.n; i++)
		if (netset_add(s, &add.v[i])) {
			if (bad_r)
				*bad_r = list;
			if (bad_len_r)
				*bad_len_r = 0;
			netset_free(&add);
			return -1;
		}
	netset_free(&add);
	return 0;
}

int netset_add_local_addresses(struct netset *s)
{
	struct netaddr a;
	if (netaddr_parse("127.0.0.0/8", &a) || netset_add(s, &a) ||
	    netaddr_parse("::1", &a) || netset_add(s, &a))
		return -1;
	struct ifaddrs *ifs;
	if (getifaddrs(&ifs))
		return -1;
	int rc = 0;
	for (struct ifaddrs *i = ifs; i; i = i->ifa_next) {
		if (!i->ifa_addr || netaddr_from_sockaddr(i->ifa_addr, &a))
			continue;
		if (netset_add(s, &a)) {
			rc = -1;
			break;
		}
	}
	freeifaddrs(ifs);
	return rc;
}
