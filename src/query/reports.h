/*
 * reports: what intel.db (the reporter's database) holds, as JSON: the outbox of
 * rendered abuse reports and the indicators.  One serializer for `mxbait report
 * list|show|stats --json`, `mxbait indicators --json` and the web API's
 * /api/v1/reports and /api/v1/indicators.
 *
 * Every function reads q->idb only (never writes: the reporter process owns intel.db;
 * the operators' state moves are report/outbox.h's).  Subjects, titles, recipients,
 * errors, responses and indicator values are attacker-influenced text: the JSON writer
 * escapes it.  q->idb NULL is QUERY_NO_INTEL.
 */
#ifndef MXB_QUERY_REPORTS_H
#define MXB_QUERY_REPORTS_H

#include <stdint.h>

#include "query/query.h"

struct allowlist;
struct indicator_filter;

/* A JSON array of reports, newest first (state, sink: NULL for any).  Objects: id,
 * state, sink, kind, subject, recipient, title, incidents, attempts, created_us,
 * created, sent_us, sent, last_error.  Keyset pagination on the id. */
int query_reports(const struct query_db *q, const char *state, const char *sink,
		  struct query_page *pg, struct jw *w, struct buf *err);
/* One report (every column but the payload, whose size is payload_bytes);
 * QUERY_NOT_FOUND when there is none. */
int query_report(const struct query_db *q, int64_t id, struct jw *w, struct buf *err);
/* The rendered payload of a report (the bytes a sink sends) into out. */
int query_report_payload(const struct query_db *q, int64_t id, struct buf *out,
			 struct buf *err);
/* An object keyed by sink: total, sent, duplicate, failed, queued, addressing, held,
 * unknown, expired, manual, attempts. */
int query_report_stats(const struct query_db *q, struct jw *w, struct buf *err);

/* The outbox states, in the order of report/outbox.h, NULL-terminated (for /metrics). */
extern const char *const query_report_states[];

/* A JSON array of indicators in the stable export order (kind, value).  al marks
 * the allowlisted ones (may be NULL: none).  Offset pagination. */
int query_indicators(const struct query_db *q, const struct indicator_filter *f,
		     const struct allowlist *al, struct query_page *pg, struct jw *w,
		     struct buf *err);

#endif
