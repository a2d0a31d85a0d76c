/*
 * query: the read side of mxbait's data, one serializer for the CLI's --json and the
 * web API (/api/v1/...), so both give the same shapes.
 *
 * Each function runs its SQL on read-only connections (struct query_db) and writes
 * JSON through jw; it never prints and never writes a database.  Times are both the
 * raw microseconds (`*_us`, as the CLI has always printed them, exact for sorting) and
 * ISO 8601 UTC text (`started`, `ts`, `first_seen`, ...).  Attacker bytes stay bytes:
 * the JSON writer escapes them; presentation (terminal, HTML) escapes again.
 *
 * Lists page with an opaque cursor (struct query_page): keyset pagination for the
 * time-ordered lists (sessions, messages, auth attempts: the cursor is the last row's
 * sort key, so pages stay right while rows are added), an offset for the aggregates.
 * A cursor that does not parse is QUERY_BAD_ARG.
 *
 * Thread-safety: none needed; each caller (a CLI command, a web worker thread) owns
 * its connections.
 */
#ifndef MXB_QUERY_QUERY_H
#define MXB_QUERY_QUERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query/jw.h"
#include "util/buf.h"

struct sqlite3;

struct query_db {
	struct sqlite3 *db;       /* mxbait.db, read-only, db_register_functions() done */
	struct sqlite3 *adb;      /* analysis.db, read-only; NULL when none exists yet */
	struct sqlite3 *idb;      /* intel.db (the reporter's), read-only; NULL when none */
	const char *data_dir;
	unsigned long long spool_budget; /* bytes; 0 when unknown */
};

enum query_status {
	QUERY_ERROR = -1,      /* SQL or I/O failure: message in err */
	QUERY_OK = 0,
	QUERY_NOT_FOUND = 1,   /* no such session / message / campaign */
	QUERY_BAD_ARG = 2,     /* a parameter (cursor, series, ...) is invalid: message in err */
	QUERY_NO_ANALYSIS = 3, /* analysis.db does not exist yet */
	QUERY_NO_INTEL = 4,    /* intel.db does not exist yet (no reporter has run) */
};

#define QUERY_PAGE_MAX 1000     /* largest page the API serves */
#define QUERY_CURSOR_MAX 64

struct query_page {
	long limit;              /* rows; <= 0: all (the CLI's -n 0) */
	const char *cursor;      /* NULL or "": the first page */
	char next[QUERY_CURSOR_MAX]; /* out: the cursor of the next page, "" at the end */
};

/* Cursors: "A.B", two decimal int64s (keyset: the last row's sort key), and "oN", an
 * offset (aggregate lists).  0, or -1 when c does not parse. */
int query_cursor_pair(const char *c, int64_t *a, int64_t *b);
int query_cursor_offset(const char *c, long *off);
static inline bool query_has_cursor(const struct query_page *pg)
{
	return pg && pg->cursor && pg->cursor[0];
}

/* ---- mxbait.db ---- */

/* Offence kinds and disconnect reasons by count (rows: name, count); shared with the
 * CLI's table. */
extern const char query_sql_offences[];
extern const char query_sql_refused[];
extern const char query_sql_reasons[];

struct query_spool_usage {
	uint64_t files, bytes, tmp_files;
};
/* Files and bytes in <data_dir>/spool/{new,cur} (+ tmp bytes; tmp_files counted). */
void query_spool_usage(const char *data_dir, struct query_spool_usage *u);

struct query_totals {
	int64_t sessions, ips, messages, message_bytes, auth_all, auth_ok, rcpt_all, rcpt_ok,
		events, first_us, last_us, dropped;
	struct query_spool_usage spool;
};
/* The totals of `mxbait stats` (the caller holds a read transaction). */
void query_totals(const struct query_db *q, struct query_totals *t);
/* GET /api/v1/stats == `mxbait stats --json`. */
int query_stats(const struct query_db *q, struct jw *w, struct buf *err);

/* GET /api/v1/sessions == `mxbait sessions --json` (an array; ip may be NULL). */
int query_sessions(const struct query_db *q, const char *ip, struct query_page *pg,
		   struct jw *w, struct buf *err);
/* GET /api/v1/sessions/ID == `mxbait show SESSION --json`: the session's events as
 * stored (the event contract, docs/events.md). */
int query_session_events(const struct query_db *q, const char *sid, struct jw *w,
			 struct buf *err);
/* GET /api/v1/messages == `mxbait messages --json`. */
int query_messages(const struct query_db *q, struct query_page *pg, struct jw *w,
		   struct buf *err);
/* GET /api/v1/messages/QUEUEID == `mxbait show QUEUEID --json`: envelope, file check,
 * the first text_max bytes of the message as a JSON string (0: all), its analysis. */
int query_message(const struct query_db *q, const char *qid, size_t text_max, struct jw *w,
		  struct buf *err);
/* The spool path of a message (malloc'd) and its recorded size, for the raw download;
 * QUERY_NOT_FOUND when the row or the file is gone. */
int query_message_file(const struct query_db *q, const char *qid, char **path_r,
		       int64_t *size_r);
/* GET /api/v1/auth-attempts: one row per AUTH attempt, newest first (ip and username
 * NULL: all). */
int query_auth_attempts(const struct query_db *q, const char *ip, const char *username,
			struct query_page *pg, struct jw *w, struct buf *err);

/* Time series: counts per step for the overview's charts. */
enum query_series {
	QS_AUTH,     /* auth attempts (ok and failed) */
	QS_SESSIONS, /* sessions started (connections) */
	QS_MESSAGES, /* captured messages */
	QS_SOURCES,  /* distinct source IPs of the sessions started */
	QS_COUNT,
};
/* "auth", "sessions", "messages", "sources"; -1 for anything else. */
int query_series_parse(const char *name);
/* GET /api/v1/timeseries: {"series","step_s","from","to","points":[{"t","t_us",...}]}
 * covering [from_us, to_us) in steps of step_us (at most 2000 points). */
int query_timeseries(const struct query_db *q, int series, int64_t from_us, int64_t to_us,
		     int64_t step_us, struct jw *w, struct buf *err);

/* Countries: the caller's lookup (libmaxminddb in the web server) names the country of
 * an address: true with iso (2 letters + NUL) and name set, false when unknown. */
typedef bool (*query_geo_fn)(void *ctx, const char *ip, char iso[3], char *name,
			     size_t name_len);
/* GET /api/v1/countries: {"countries": [{"country", "name", "ips", "sessions",
 * "attempts"}]} by attempts then sessions; addresses without a country count under
 * "country": null.  At most top countries (<= 0: all). */
int query_countries(const struct query_db *q, int64_t since_us, long top, query_geo_fn fn,
		    void *ctx, struct jw *w, struct buf *err);

/* ---- analysis.db (the analyzer's) ---- */

struct aq_col {
	const char *head; /* table heading */
	const char *json; /* JSON key */
	size_t max;       /* widest table cell, 0: table default */
	bool right;       /* right-aligned (numbers) */
	char list;        /* a list joined by this character: a JSON array; 0: a value */
};
struct aq_def {
	const char *sql;  /* ?1 limit, ?2.. text parameters, ?9 offset */
	const struct aq_col *cols;
	size_t ncols;
	const char *empty; /* the CLI's "(no links)" text */
	/* NULL, or the same query for an analysis.db older than the columns sql reads
	 * (tried when sql does not prepare: the analyzer migrates the file only when it
	 * next starts, and the readers must not fail in between). */
	const char *sql_old;
};
extern const struct aq_def aq_urls, aq_domains, aq_recipients, aq_recipient_domains,
	aq_campaigns, aq_campaign_messages;

/* Rows of d over analysis.db as a JSON array of objects (params[i] binds ?i+2; NULL
 * binds NULL).  `mxbait urls|domains|recipients|campaigns --json` and the API's
 * /links, /domains, /recipients, /campaigns. */
int query_analysis(const struct query_db *q, const struct aq_def *d,
		   const char *const *params, size_t nparams, struct query_page *pg,
		   struct jw *w, struct buf *err);

/* The analysis of a message (the analyzer's JSON with campaign.id), malloc'd, or NULL;
 * by SHA-256, else by spool file name.  Uses q->adb, or ATTACHes
 * <data_dir>/analysis.db to q->db when q->adb is NULL. */
char *query_load_analysis(const struct query_db *q, const char *spool, const char *sha);

/* Read up to max bytes of a file (0: all) into out; total size in *size_r and the
 * SHA-256 of the whole file in hex.  0, or -1 (errno) when it cannot be read. */
int query_read_file(const char *path, size_t max, struct buf *out, uint64_t *size_r,
		    char sha_r[65]);

#endif
