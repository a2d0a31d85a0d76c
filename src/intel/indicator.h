/*
 * indicator: the one model of "something seen doing harm" shared by exports, reports,
 * the guard and the dashboard (docs/datamodel.md, intel.db `indicators`).
 *
 * An indicator is (kind, value, source) with counts of what was seen (failed guesses,
 * enumeration probes, captured messages, logins with a trap credential), first/last
 * seen, up to 32 evidence references (session:S..., msg:QUEUEID, sha256:..., ip:...),
 * flags and a confidence 0-100 computed by documented rules (indicator.c, and the
 * table in docs/reporting.md).  source is "local" for what this sensor saw; "peer"
 * rows (federation) are never exported or reported by this module's callers.
 *
 * indicators_refresh() derives them incrementally: cursors in intel.db remember the
 * last row of each source table read (auth_attempts, probes, messages of mxbait.db;
 * messages of analysis.db), each batch is one transaction, so a crash redoes at most
 * one batch and a restart continues where it stopped.
 */
#ifndef MXB_INTEL_INDICATOR_H
#define MXB_INTEL_INDICATOR_H

#include <stdbool.h>
#include <stdint.h>

struct sqlite3;

enum ind_kind {
	IND_IP,
	IND_PREFIX,
	IND_URL,
	IND_DOMAIN,
	IND_SENDER,
	IND_SENDER_DOMAIN,
	IND_ATTACHMENT,
	IND_RECIPIENT,
	IND_RECIPIENT_DOMAIN,
	IND_CAMPAIGN,
	IND_KIND_COUNT
};
#define IND_BIT(k) (1u << (k))
/* Victims, never published in blocklists or feeds: leaked recipient addresses. */
#define IND_VICTIM_KINDS (IND_BIT(IND_RECIPIENT) | IND_BIT(IND_RECIPIENT_DOMAIN))

const char *indicator_kind_name(enum ind_kind k);
/* -1 when unknown. */
int indicator_kind_parse(const char *name);
/* "ip,prefix" -> bit mask; 0 with *bad_r pointing at the bad name on error. */
unsigned indicator_kinds_parse(const char *list, const char **bad_r);

struct indicator {
	int64_t id;
	enum ind_kind kind;
	const char *value;
	const char *source;   /* "local" | "peer" */
	const char *parent;   /* may be NULL */
	const char *flags;    /* space-separated, "" */
	const char *evidence; /* space-separated refs, "" */
	const char *note;     /* may be NULL */
	int64_t first_seen_us, last_seen_us;
	int64_t guesses, probes, messages, logins, members;
	int confidence;
	int64_t updated_us;   /* when the derivation last changed it */
};

/* Where the rows go: THE boundary against circular reporting (docs/federation.md).
 * What was learned from peers never leaves the operator: feeds, abuse reports,
 * submissions and the sharing formats (MISP, STIX, AbuseIPDB, CrowdSec, CSV) walk
 * with IND_SHARE, which returns source = 'local' rows only whatever include_peer
 * says; only the operator's own enforcement (firewall sets, Postfix maps, RPZ,
 * rbldnsd, plain lists, the CLI) may ask for consensus peer rows, with IND_SELF. */
enum indicator_purpose {
	IND_SHARE = 0,         /* the default: leaves the operator */
	IND_SELF,              /* stays with the operator */
};

struct indicator_filter {
	unsigned kinds;        /* IND_BIT mask; 0: every kind */
	int64_t since_us;      /* last seen at or after; 0: any */
	int min_confidence;    /* 0-100 */
	bool include_peer;     /* consensus peer rows too (only with IND_SELF) */
	enum indicator_purpose purpose;
	int64_t updated_after_us; /* changed by a derivation after this; 0: any */
	long limit;            /* 0: all */
};

struct intel_refresh_stats {
	long auth_rows, probe_rows, message_rows, analysis_messages;
	long touched;          /* indicators inserted or updated */
};

/* Catch up with the attached sources (intel_db_open's bits).  Returns 0, or -1 with
 * *err_r.  Safe to run from several processes: each batch takes intel.db's write
 * lock and re-reads its cursor inside the transaction. */
int indicators_refresh(struct sqlite3 *db, int sources, struct intel_refresh_stats *st,
		       char **err_r);

/* Calls fn for each indicator matching f, in a stable order (kind, then value).
 * The strings live until fn returns.  fn returning non-zero stops the walk (returned).
 * Returns 0, fn's value, or -1 on a database error. */
typedef int (*indicator_fn)(void *ctx, const struct indicator *ind);
int indicators_each(struct sqlite3 *db, const struct indicator_filter *f, indicator_fn fn,
		    void *ctx);

/* Does the space-separated list contain the token? */
bool indicator_has_flag(const struct indicator *ind, const char *flag);

/* A named position in intel.db's cursors table (how far a pass has read: the
 * indicator derivation, the feed publisher): 0 when never set.  set: 0 or -1. */
int64_t intel_cursor_get(struct sqlite3 *db, const char *name);
int intel_cursor_set(struct sqlite3 *db, const char *name, int64_t v);

#endif
