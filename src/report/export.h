/*
 * export: indicators into the files defenders already consume (docs/reporting.md,
 * "Exports").  One function per format, one walk over intel.db each, in the stable
 * order of indicators_each() (kind, then value): the same data gives the same bytes,
 * apart from the generation time written in headers.
 *
 * Every format applies, in this order: the kinds it can carry (a format refuses a
 * kind it cannot express), --kind, --since, the confidence floor, then the
 * allowlist (allowlist_refuses(): never exported, whatever the floor).  Victims'
 * addresses (recipient kinds) are exported only by plain and csv and only when asked
 * for by --kind; feeds (MISP, STIX) never carry them.
 *
 * Output goes to a FILE (stdout) or, with out_path, to a temporary file renamed over
 * out_path when complete (a reader never sees half a file); misp-feed, fail2ban and
 * crowdsec write a directory (out_path required).
 */
#ifndef MXB_REPORT_EXPORT_H
#define MXB_REPORT_EXPORT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct sqlite3;
struct allowlist;

enum export_format {
	EXP_NFT,
	EXP_IPSET,
	EXP_POSTFIX_CIDR,
	EXP_POSTFIX_ACCESS,
	EXP_PLAIN,
	EXP_CSV,
	EXP_RPZ,
	EXP_RBLDNSD,
	EXP_MISP_FEED,
	EXP_STIX,
	EXP_ABUSEIPDB_CSV,
	EXP_FAIL2BAN,
	EXP_CROWDSEC,
	EXP_FORMAT_COUNT
};

/* -1 when unknown. */
int export_format_parse(const char *name);
const char *export_format_name(enum export_format f);
/* The format names, comma-separated, for usage texts. */
const char *export_format_list(void);

struct export_opts {
	enum export_format format;
	unsigned kinds;            /* IND_BIT mask; 0: the format's default kinds */
	int64_t since_us;          /* last seen at or after (absolute); 0 any */
	int min_confidence;
	const struct allowlist *allowlist;
	const char *hostname;      /* sensor name (zone origins, feed identity) */
	const char *out_path;      /* NULL: write to out */
	FILE *out;
	const char *data_dir;      /* fail2ban/crowdsec: where events.jsonl lives */
	const char *event_log;     /* its path (NULL: data_dir/events.jsonl) */
	int64_t now_us;            /* generation time (0: now) */
	bool include_peer;         /* consensus peer rows too: only the operator's own
				    * enforcement formats take them (export_keeps_peer) */
};

/* May format f carry what was learned from peers (the operator's own enforcement:
 * nft, ipset, Postfix maps, plain, RPZ, rbldnsd)?  Never the sharing formats. */
bool export_keeps_peer(enum export_format f);

struct export_stats {
	long written;              /* entries written */
	long refused;              /* dropped by the allowlist */
	long skipped;              /* not expressible in the format (e.g. IPv6 in ip4set) */
};

/* Returns 0, or -1 with *err_r. */
int export_run(struct sqlite3 *db, const struct export_opts *o, struct export_stats *st,
	       char **err_r);

/* Helpers shared with the report renderers. */
/* RFC 4122 version 5 UUID (SHA-1) of name in namespace ns (36 chars + NUL). */
void export_uuid5(const uint8_t ns[16], const char *name, size_t len, char out[37]);
/* RFC 3339 UTC: "2026-11-27T03:12:44.000Z" (millis) when millis, else "...44Z". */
void export_time(int64_t us, bool millis, char *out, size_t outlen);

#endif
