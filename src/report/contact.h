/*
 * contact: where an abuse report about a network or a domain goes, found once and
 * cached in intel.db (`contacts`) for report_contact_cache (7 days; a negative answer
 * too, so a network without an abuse contact is not asked again at every pass).
 *
 * Order: RDAP (RFC 9082/9083) at the server IANA's bootstrap files name (RFC 9224;
 * ipv4.json, ipv6.json, dns.json fetched from report_rdap_bootstrap_url and cached in
 * DATA_DIR/rdap/ for a week), the response's entities walked at every depth for the
 * "abuse" role (for a gTLD domain that is the registrar's abuse entity) and its jCard
 * e-mail; then, for an address, the Abusix Abuse Contact DB (DNS TXT of the reversed
 * address under abuse-contacts.abusix.zone; the resolver may be pinned with
 * report_dns_server); then, for a domain, abuse@domain (RFC 2142).
 *
 * Only the reporter calls this (it is network access), and only with
 * report_contact_lookup = yes; otherwise reports wait in `addressing` until an
 * operator gives the address (`mxbait report send ID --to ADDR`).
 */
#ifndef MXB_REPORT_CONTACT_H
#define MXB_REPORT_CONTACT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/buf.h"

struct sqlite3;
struct allowlist;
struct netaddr;

struct contact_ctx {
	struct sqlite3 *db;
	const char *data_dir;
	const char *bootstrap_url;
	const char *ca_file;
	const char *dns_server;  /* "" / NULL: the system resolver */
	const struct allowlist *al; /* its networks are never looked up as a web host */
	bool abusix;
	int64_t cache_us;
	bool online;
};

/* query: "ip:ADDR", "domain:NAME", or "host:NAME" (the web host of a spamvertised URL:
 * NAME's A/AAAA records, at most 4, through the same resolver; each public address
 * that the allowlist does not cover is looked up as "ip:ADDR" and the contacts are
 * merged; cached under "host:NAME" with origin "dns ADDR...").  Returns 1 with the addresses (space-separated)
 * in emails, 0 when none exists (cached), -1 when it cannot be known now (offline,
 * network error: try later); *why_r (static text) says what happened. */
int contact_resolve(struct contact_ctx *c, const char *query, int64_t now_us, struct buf *emails,
		    const char **why_r);
/* Global unicast: not private, loopback, link-local, shared (100.64/10), multicast,
 * reserved or unspecified; IPv6 only 2000::/3.  Only such an address of a web host is
 * looked up or accused. */
bool contact_address_public(const struct netaddr *a);
/* Store an answer (also used by tests and `report send --to`). */
int contact_store(struct sqlite3 *db, const char *query, const char *emails, const char *origin,
		  int64_t now_us, int64_t ttl_us);

#endif
