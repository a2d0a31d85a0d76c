/*
 * decisions: the guard's decisions as JSON, one shape for `mxbait decisions list
 * --json`, GET /api/v1/decisions and the reply of the dashboard's decision actions,
 * whichever way a decision is known: a row of mxbait.db's decisions table (the event
 * store keeps it from `decision` events), an operator's request file the guard has not
 * applied yet (DATA_DIR/guard-requests/req-*), or the guard's decision in memory.
 *
 * An object: id (null for a request not applied yet), source, action, reason, origin,
 * evidence (array of ids), created_us/created, expires_us/expires (null: never),
 * level, state (active, expired, removed, pending), ended_us/ended (removed early),
 * request and op (a pending request's file and operation; null otherwise).  Reason
 * and evidence may carry attacker-influenced text: the JSON writer escapes it.
 */
#ifndef MXB_QUERY_DECISIONS_H
#define MXB_QUERY_DECISIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "query/query.h"

struct decision;

struct query_decision {
	const char *id;            /* NULL: a request not applied yet */
	const char *source, *action, *reason, *origin;
	const char *evidence_json; /* a JSON array as stored, or NULL: [] */
	int64_t created_us;
	int64_t expires_us;        /* 0: never */
	int64_t ended_us;          /* 0: not removed early */
	long level;                /* < 0: unknown (a pending request) */
	const char *state;
	const char *request, *op;  /* pending requests only */
};

void query_decision_json(struct jw *w, const struct query_decision *d);

/* The guard's in-memory decision in the same shape (state active, or removed when
 * ended_us is set). */
void query_decision_json_mem(struct jw *w, const struct decision *d, int64_t ended_us);

/* A JSON array of decisions, newest first: those in force at now_us (all: every one
 * ever made), and on the first page the requests not applied yet (q->data_dir's
 * guard-requests).  Keyset pagination (the cursor is the last row's created_us and
 * rowid). */
int query_decisions(const struct query_db *q, bool all, int64_t now_us, struct query_page *pg,
		    struct jw *w, struct buf *err);

/* Counts of the decisions in force at now_us by action (delay, divert, ban, allow),
 * for /metrics; -1 on a database error. */
int query_decisions_count(const struct query_db *q, int64_t now_us, int64_t counts_r[4]);

#endif
