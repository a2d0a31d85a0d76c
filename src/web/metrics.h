/*
 * metrics: the daemon's counters for Prometheus (/metrics) and the dashboard's live
 * feed (server-sent events).
 *
 * metrics_observe() is the event store's observer (eventstore_set_observer): it sees
 * every event as it is submitted and counts it with relaxed atomics (any thread, no
 * lock, no allocation).  Counters run since the daemon started, as Prometheus expects
 * of a counter; totals over the whole history are the API's job (/api/v1/stats).
 * metrics_render() writes the text exposition format 0.0.4 with every name, unit and
 * HELP documented in docs/api.md; what needs the disk (spool and database bytes,
 * cracked accounts, analyzer lag) is read by the caller on a worker thread and passed
 * in struct metrics_disk.
 */
#ifndef MXB_WEB_METRICS_H
#define MXB_WEB_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/role.h"
#include "util/buf.h"

struct mxb_event;
struct eventstore_stats;

/* auth results of docs/events.md, in this order ("other" for anything new). */
#define METRICS_AUTH_RESULTS 8
/* message_rejected reasons + other. */
#define METRICS_REJECT_REASONS 6
/* disconnect reasons that are admission refusals. */
#define METRICS_REFUSALS 4
/* decision actions (delay, divert, ban, allow) and origins (guard, manual). */
#define METRICS_ACTIONS 4
#define METRICS_ORIGINS 2
/* the guard's answers: guard_auth (allow, delay, reject, none, other), guard_rcpt
 * (dunno, defer, reject, sleep, none, other). */
#define METRICS_GUARD_AUTH 5
#define METRICS_GUARD_RCPT 6
/* rows of mxbait_reports: (sink, state) pairs kept from intel.db. */
#define METRICS_REPORT_ROWS 256

struct metrics {
	int64_t start_us;
	atomic_ullong connections[MXB_ROLE_COUNT];
	atomic_ullong disconnects[MXB_ROLE_COUNT];
	atomic_ullong refused[MXB_ROLE_COUNT][METRICS_REFUSALS];
	atomic_ullong auth[MXB_ROLE_COUNT][METRICS_AUTH_RESULTS];
	atomic_ullong messages[MXB_ROLE_COUNT];
	atomic_ullong message_bytes;
	atomic_ullong rejected[METRICS_REJECT_REASONS];
	atomic_ullong offences;
	atomic_ullong rcpt_accepted, rcpt_denied;
	/* the guard: decisions made (op add) by action and origin; observations answered */
	atomic_ullong decisions[METRICS_ACTIONS][METRICS_ORIGINS];
	atomic_ullong decisions_removed;
	atomic_ullong guard_auth[METRICS_GUARD_AUTH];
	atomic_ullong guard_rcpt[METRICS_GUARD_RCPT];
	atomic_ullong guard_log;
	/* web server */
	atomic_ullong http_requests[6]; /* by status class: 1xx..5xx, index 0 unused */
	atomic_ullong http_auth_failures, http_rate_limited;
};

struct metrics_disk {
	bool ok;                 /* false: the database could not be read */
	uint64_t spool_bytes, spool_files, spool_budget;
	uint64_t db_bytes, analysis_db_bytes;
	int64_t accounts_cracked, accounts_fixed;
	int64_t analyzer_backlog;   /* files in spool/new not analysed yet */
	double analyzer_lag_s;      /* age of the oldest of them (0: none) */
	int64_t analysis_messages;
	/* decisions in force now (mxbait.db), by action; decisions_ok false: not read */
	bool decisions_ok;
	int64_t decisions_active[METRICS_ACTIONS];
	/* reports in intel.db by sink and state (intel false: no intel.db yet) */
	bool intel;
	struct metrics_report_row {
		char sink[24];
		char state[16];
		int64_t n;
	} reports[METRICS_REPORT_ROWS];
	size_t n_reports;
};

void metrics_init(struct metrics *m);
/* The event store's observer: ctx is the struct metrics. */
void metrics_observe(void *ctx, const struct mxb_event *ev);
/* Open sessions of a role (connections minus disconnects). */
uint64_t metrics_open(const struct metrics *m, enum mxb_role r);
void metrics_http(struct metrics *m, int status);

/* The exposition text. es may be NULL (no event store). */
void metrics_render(const struct metrics *m, const struct eventstore_stats *es,
		    const struct metrics_disk *d, struct buf *out);

/* A field of an event's JSON fragments: ,"key":VALUE; *val_r points at VALUE.
 * Returns its length (up to the next ',' or the end), or -1 when absent.  Safe
 * because keys are program constants and string values are JSON-escaped (a quote
 * inside a value is always \"). */
long metrics_event_field(const struct mxb_event *ev, const char *key, const char **val_r);

#endif
