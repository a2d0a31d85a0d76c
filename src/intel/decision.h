/*
 * decision: what mxbait decided to do about a source address or prefix (the "intel"
 * decision model of ../shared/DESIGN.md), kept in memory by its one owner, the guard.
 *
 * A decision names a source (an address or a prefix, util/netaddr), an action
 * (delay: the policy servers slow it down; divert: the kernel sends its new
 * connections to the honeypot; ban: the kernel drops them; allow: never acted on),
 * a reason and the ids of the evidence (observation or session ids, 16 hex), when it
 * was made and when it expires.  Promises:
 *  - escalation on repeat: every source remembers how often it was convicted (its
 *    level, kept after the decision expired); a repeat lasts duration * 2^level, capped
 *    at max_duration; a delay convicted again (level >= DECISION_DELAY_REPEATS)
 *    becomes a divert, and a divert repeated ban_after times (when ban_after > 0)
 *    becomes a ban;
 *  - no churn: asking again for a source that an active decision of the same or a
 *    stronger action already covers (itself or a prefix containing it) changes nothing
 *    and says so;
 *  - lookups find the strongest active decision covering an address (an allow that
 *    covers it wins over everything), in time proportional to the number of distinct
 *    prefix lengths in use, not to the number of decisions;
 *  - bounded: at most max_entries sources (active plus history); when full, the oldest
 *    history is forgotten first and a new decision is refused only if every entry is
 *    active.
 * Pure: no I/O, no clock (the caller passes "now"); the guard records and enforces.
 */
#ifndef MXB_INTEL_DECISION_H
#define MXB_INTEL_DECISION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/netaddr.h"

enum decision_action {
	DECISION_NONE = 0,
	DECISION_DELAY,
	DECISION_DIVERT,
	DECISION_BAN,
	DECISION_ALLOW,
};

#define DECISION_ID_LEN 17        /* 16 hex and NUL */
#define DECISION_EVIDENCE_MAX 8
#define DECISION_REASON_LEN 32
#define DECISION_ORIGIN_LEN 16
#define DECISION_DELAY_REPEATS 2  /* a third delay is a divert */

struct decision {
	char id[DECISION_ID_LEN];
	struct netaddr src;
	enum decision_action action;
	char reason[DECISION_REASON_LEN];  /* e.g. trap_credential, user_spray, manual */
	char origin[DECISION_ORIGIN_LEN];  /* guard, manual */
	char evidence[DECISION_EVIDENCE_MAX][DECISION_ID_LEN];
	size_t n_evidence;
	int64_t created_us;
	int64_t expires_us;                /* 0: never (allow without a duration) */
	unsigned level;                    /* convictions of this source before this one */
};

struct decision_policy {
	uint64_t duration_ms;      /* the first decision */
	uint64_t max_duration_ms;  /* cap of the escalated duration */
	unsigned ban_after;        /* diverts before a ban; 0 = never ban */
	size_t max_entries;        /* sources remembered (active and history) */
};

struct decision_table;

struct decision_table *decision_table_new(const struct decision_policy *p);
void decision_table_free(struct decision_table **t);

/* "divert" -> DECISION_DIVERT; NONE when unknown.  And back. */
enum decision_action decision_action_parse(const char *s);
const char *decision_action_name(enum decision_action a);
/* A fresh random id (16 lowercase hex). */
void decision_new_id(char id[DECISION_ID_LEN]);

enum decide_result {
	DECIDE_NEW = 1,       /* *out is a new decision (possibly escalated) */
	DECIDE_COVERED = 0,   /* an active decision already covers it: nothing changed */
	DECIDE_FULL = -1,     /* no room (every entry active) */
};

/* Decide action about src for reason.  duration_ms 0: the policy's escalated duration;
 * else exactly that (manual decisions); allow with duration_ms UINT64_MAX never
 * expires.  evidence: ids (each cut to 16 characters). */
enum decide_result decision_table_decide(struct decision_table *t, const struct netaddr *src,
					 enum decision_action action, const char *reason,
					 const char *origin, const char *const *evidence,
					 size_t n_evidence, uint64_t duration_ms, int64_t now_us,
					 struct decision *out);

/* The decision that applies to addr now: an active allow covering it, else the
 * strongest active decision covering it (ties: the most specific).  NULL: none.  The
 * pointer is valid until the table changes. */
const struct decision *decision_table_lookup(const struct decision_table *t,
					     const struct netaddr *addr, int64_t now_us);

/* The active decision about exactly src (not a covering prefix), or NULL. */
const struct decision *decision_table_get(const struct decision_table *t,
					  const struct netaddr *src, int64_t now_us);

/* End the active decision about exactly src now (its history stays).  Returns 0 with
 * a copy of it in *removed_r, -1 when there is none. */
int decision_table_remove(struct decision_table *t, const struct netaddr *src, int64_t now_us,
			  struct decision *removed_r);

/* Put back a decision loaded from the database (history included): an active one
 * becomes active again, an expired one only sets the level. */
void decision_table_restore(struct decision_table *t, const struct decision *d, int64_t now_us);

/* Call fn for every active decision (order unspecified); expired ones are moved to
 * history first.  Returns the number of active decisions. */
size_t decision_table_active(struct decision_table *t, int64_t now_us,
			     void (*fn)(void *arg, const struct decision *d), void *arg);

/* Counts for stats and tests. */
size_t decision_table_size(const struct decision_table *t);

#endif
