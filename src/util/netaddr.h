/*
 * netaddr: IP addresses and prefixes (IPv4 and IPv6), and sets of them.
 *
 * One representation for every module that names an attacker's network (limits,
 * the guard's trusted networks and decisions, indicators, exports): a family, a
 * prefix length and 16 bytes in network order.  Promises:
 *  - parsing is strict: an address ("192.0.2.1", "2001:db8::1", "[2001:db8::1]"),
 *    optionally followed by "/BITS" (0-32 for IPv4, 0-128 for IPv6, decimal, no sign,
 *    no leading zeros beyond "0"); anything else (host names, ports, ranges, trailing
 *    bytes, embedded NULs via the length) is refused;
 *  - an IPv4-mapped IPv6 address (::ffff:a.b.c.d, with a prefix of 96 or more) is the
 *    IPv4 address it maps: a client seen through a dual-stack socket and the same client
 *    in an IPv4 log line compare equal;
 *  - host bits beyond the prefix are cleared, so "192.0.2.77/24" is 192.0.2.0/24 and
 *    two spellings of one network are netaddr_equal();
 *  - formatting is canonical (inet_ntop; "/BITS" only when shorter than the address).
 * Nothing here allocates except netset, whose memory grows with what is added.
 */
#ifndef MXB_UTIL_NETADDR_H
#define MXB_UTIL_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128" and its NUL fit. */
#define NETADDR_STRLEN 52

struct netaddr {
	uint8_t family;  /* AF_INET or AF_INET6 */
	uint8_t bits;    /* prefix length: 32 (IPv4) or 128 (IPv6) for a single address */
	uint8_t a[16];   /* network order; IPv4 uses a[0..3], the rest is zero */
};

/* Parse s (NUL-terminated).  Returns 0, or -1 when s is not an address or prefix. */
int netaddr_parse(const char *s, struct netaddr *out);
/* The same over len bytes (no NUL needed; a NUL inside refuses). */
int netaddr_parse_n(const char *s, size_t len, struct netaddr *out);
/* The address of an AF_INET/AF_INET6 socket address (mapped IPv4 unmapped); -1 else. */
int netaddr_from_sockaddr(const struct sockaddr *sa, struct netaddr *out);
/* in's network of length bits (bits larger than in's own prefix keeps in's). */
void netaddr_prefix(const struct netaddr *in, unsigned bits, struct netaddr *out);
/* Whether addr (an address or a prefix) lies inside net. */
bool netaddr_contains(const struct netaddr *net, const struct netaddr *addr);
bool netaddr_equal(const struct netaddr *x, const struct netaddr *y);
/* Total order: IPv4 before IPv6, then by bytes, then shorter prefix first. */
int netaddr_cmp(const struct netaddr *x, const struct netaddr *y);
/* A single address (not a shorter prefix). */
bool netaddr_is_host(const struct netaddr *a);
/* Canonical text into buf (NETADDR_STRLEN is always enough).  Returns buf. */
char *netaddr_format(const struct netaddr *a, char *buf, size_t len);
/* The full-length width of a's family: 32 or 128. */
unsigned netaddr_max_bits(const struct netaddr *a);

/* A set of addresses and prefixes; lookup is linear in the number of entries, which
 * suits configured lists (trusted networks, allowlists) of up to a few thousand. */
struct netset {
	struct netaddr *v;
	size_t n, alloc;
};

void netset_init(struct netset *s);
void netset_free(struct netset *s);
/* Add one entry (duplicates are kept once).  Returns 0, or -1 when out of memory. */
int netset_add(struct netset *s, const struct netaddr *a);
/* Whether any entry contains a. */
bool netset_contains(const struct netset *s, const struct netaddr *a);
/* Add every item of a list separated by commas and/or white space.  Returns 0, or -1
 * with *bad_r (when not NULL) pointing at the first bad item inside list and *bad_len_r
 * its length; nothing is added then. */
int netset_parse_list(struct netset *s, const char *list, const char **bad_r,
		      size_t *bad_len_r);
/* Loopback (127.0.0.0/8, ::1) and every address of this host's interfaces
 * (getifaddrs).  Returns 0, or -1 when the interfaces cannot be read. */
int netset_add_local_addresses(struct netset *s);

#endif
