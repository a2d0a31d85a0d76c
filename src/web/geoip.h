/*
 * geoip: the country of an address from a MaxMind DB file (geoip_file: GeoLite2-Country,
 * DB-IP country lite, or any mmdb with country.iso_code), through libmaxminddb.
 *
 * Opened once (memory-mapped) before privileges are dropped; lookups are read-only and
 * safe from any thread.  Used only to count attackers per country: nothing is looked
 * up over the network.
 */
#ifndef MXB_WEB_GEOIP_H
#define MXB_WEB_GEOIP_H

#include <stdbool.h>
#include <stddef.h>

struct web_geoip;

/* NULL with *err_r (malloc'd) when the file is not a usable MaxMind DB. */
struct web_geoip *web_geoip_open(const char *path, char **err_r);
void web_geoip_close(struct web_geoip **g);
/* query_geo_fn: true with iso ("NL") and name ("Netherlands", or iso when the file
 * has no English name) for an address the file knows. */
bool web_geoip_lookup(void *g, const char *ip, char iso[3], char *name, size_t name_len);

#endif
