/*
 * allowlist: what is never exported, published or reported, applied once at the
 * export/report boundary (../shared/DESIGN.md: "an allowlist ... applied at the
 * decision and export boundary, once").
 *
 * Three parts: configured networks (allowlist_networks, plus this host's own
 * addresses and loopback unless allowlist_own_addresses = no), configured domains
 * (allowlist_domains; a domain covers its subdomains), and a built-in list of big
 * platforms (webmail, social networks, CDNs, cloud storage) whose registrable domains
 * spam links to all the time without being the spammer's: links there are flagged
 * "platform" by the indicator derivation and get confidence 10, and the boundary
 * refuses them whatever the confidence floor.  Redirector wrappers (flag
 * "redirector": their targets are indicators of their own) and the domains of URL
 * shorteners (flag "shortener", set by the analyzer) are refused too; a shortened link
 * itself stays an indicator, flagged "shortener", confidence 30.
 *
 * An IP or prefix is refused when it lies inside an allowlisted network or contains
 * one (a /24 holding our own address is never exported); a URL by its host (name or
 * IP literal); a domain, sender address or sender domain by the domain.
 */
#ifndef MXB_INTEL_ALLOWLIST_H
#define MXB_INTEL_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "util/netaddr.h"

struct sqlite3;
struct indicator;

struct allowlist {
	struct netset nets;
	char **domains; /* sorted, lower-case, no trailing dot */
	size_t n_domains;
};

/* networks/domains: lists separated by commas and/or white space (NULL: none).
 * Returns 0, or -1 with *err_r naming the bad entry. */
int allowlist_init(struct allowlist *al, const char *networks, const char *domains,
		   bool own_addresses, char **err_r);
void allowlist_free(struct allowlist *al);

/* Built-in platform list: domain or one of its parents is listed. */
bool allowlist_is_platform(const char *domain);
/* Configured domains or platforms cover domain. */
bool allowlist_has_domain(const struct allowlist *al, const char *domain);
/* True when ind must never leave this sensor (export, feed, report). */
bool allowlist_refuses(const struct allowlist *al, const struct indicator *ind);
/* The host of an absolute URL into out (lower-case, brackets of IPv6 removed);
 * false when there is none. */
bool allowlist_url_host(const char *url, char *out, size_t outlen);

/* SQL function mxb_platform(domain) -> 0/1 on db. */
int allowlist_register_sql(struct sqlite3 *db);

#endif
