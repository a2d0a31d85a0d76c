/*
 * limits: admission control before a session exists (Postfix anvil's job).
 *
 * Counts live connections in total, per client address and per client network (the
 * /24 of an IPv4 address, the /48 of an IPv6 one: a botnet slice or a cloud tenant
 * rotating addresses), and connection attempts per address per minute.  limits_admit() says whether a new connection may have a
 * session; every attempt counts toward the rate (refused ones too, as anvil counts
 * them), only admitted ones hold a slot until limits_release().  Entries of addresses
 * with no live connection are dropped once their rate window is over, so memory is
 * bounded by live connections plus one minute of distinct addresses.  Times come from
 * the caller (milliseconds, monotonic), which keeps the module pure and testable.
 */
#ifndef MXB_CORE_LIMITS_H
#define MXB_CORE_LIMITS_H

#include <stddef.h>
#include <stdint.h>

enum limits_verdict {
	LIMITS_OK,
	LIMITS_TOTAL,  /* max_connections reached */
	LIMITS_PER_IP, /* max_connections_per_ip reached */
	LIMITS_RATE,   /* connection_rate_per_ip passed in this minute */
	LIMITS_PER_PREFIX, /* max_connections_per_prefix reached (/24, /48) */
};

struct limits;

/* 0 for per_ip or rate_per_min: no such limit.  max_total must be > 0. */
struct limits *limits_new(unsigned max_total, unsigned max_per_ip, unsigned rate_per_min);
void limits_free(struct limits **l);
/* Cap live connections per /24 (IPv4, IPv4-mapped IPv6) and /48 (IPv6); 0: none (the
 * default of limits_new).  Set before the first admit. */
void limits_set_per_prefix(struct limits *l, unsigned max_per_prefix);
/* New bounds (SIGHUP): live connections and counts are kept; a lower bound refuses
 * new connections until enough have ended. */
void limits_reconfigure(struct limits *l, unsigned max_total, unsigned max_per_ip,
			unsigned rate_per_min, unsigned max_per_prefix);
/* The prefix an address counts toward, as "203.0.113.0/24" or "2001:db8:1::/48".
 * Returns 0, or -1 when ip is not an address. */
int limits_prefix(const char *ip, char *out, size_t outlen);

enum limits_verdict limits_admit(struct limits *l, const char *ip, int64_t now_ms);
/* An admitted connection from ip ended. */
void limits_release(struct limits *l, const char *ip, int64_t now_ms);
/* Drop idle entries whose window is over (call now and then; admit also sweeps). */
void limits_sweep(struct limits *l, int64_t now_ms);

size_t limits_active(const struct limits *l);      /* live connections */
size_t limits_tracked(const struct limits *l);     /* addresses in the table */
unsigned limits_active_ip(const struct limits *l, const char *ip);
unsigned limits_active_prefix(const struct limits *l, const char *ip); /* ip's network */

/* Event-friendly word for a refusal: limit_connections, limit_per_ip, limit_rate,
 * limit_per_prefix. */
const char *limits_reason(enum limits_verdict v);

#endif
