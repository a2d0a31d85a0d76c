/*
 * plan: what to report, rendered into the outbox (reporter.h runs it each pass).
 *
 *  - ARF per captured message, to the abuse contact of the submitting client's network
 *    (state addressing), thinned per source: every message of the first 10 from one
 *    source, then every 10th up to 100, every 100th up to 1000, every 1000th after,
 *    restarting after report_quiet_period without mail from it; the report carries
 *    Incidents = messages since the previous report (RFC 6650 9.5).
 *  - the same evidence once per spamvertised registrable domain, to its registrar's
 *    abuse contact (RDAP), when the domain's confidence reaches the floor; and once per
 *    host of a reportable link, to the network hosting it (contact query host:NAME,
 *    resolved by the reporter; ip:ADDR for an IP literal), not for platforms,
 *    shorteners, redirectors, allowlisted domains or private/allowlisted addresses.
 *  - XARF v4 login_attack, once per guessing client per UTC day (report_xarf).
 *  - API submissions for each configured sink: AbuseIPDB (attacking IPs, once a day),
 *    Spamhaus (spam sources, once), Netcraft (spamvertised URLs, once), URLhaus (URLs
 *    of executables and archives only, once), webhook (every indicator that reached the
 *    floor or changed, once a day).
 *  - a digest of leaked addresses per recipient domain to postmaster@ (opt-in,
 *    report_leak_digest), once a week.
 *  - "manual" entries for phishing URLs (PhishTank, Google Safe Browsing, SpamCop have
 *    no submission API open to us).
 * Nothing older than report_expiry is planned; nothing the allowlist refuses or below
 * export_min_confidence; only honeypot evidence exists here in the first place.
 */
#ifndef MXB_REPORT_PLAN_H
#define MXB_REPORT_PLAN_H

#include <stdint.h>

struct sqlite3;
struct mxb_config;
struct allowlist;
struct report_identity;
struct sinks;

struct plan_ctx {
	struct sqlite3 *db;
	int sources;               /* intel_db_open's bits */
	const struct mxb_config *cfg;
	const struct allowlist *al;
	const struct report_identity *id;
	const char *data_dir;
	const struct sinks *sinks;
	int64_t now_us;
};

struct plan_stats {
	long arf, registrar, webhost, xarf, api, digest, manual, thinned, skipped;
};

int plan_reports(struct plan_ctx *p, struct plan_stats *st, char **err_r);

#endif
