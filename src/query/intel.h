/*
 * intel: what `mxbait creds` and `mxbait attackers` (and their web API endpoints) share: the --since/--top/--window
 * option values, and printing one section of query rows either as a titled, escaped
 * table or as a JSON array under a key of the output object.
 *
 * Queries run over the brute-force tables the event writer maintains (auth_attempts,
 * probes; see docs/datamodel.md), never over the raw events, so they stay fast with
 * millions of attempts.  Every section's SQL gets ?1 = the --since bound in
 * microseconds (0 without --since) and ?2 = the row limit (-1: all).
 *
 * Plans: a whole-table GROUP BY is 3-5 times faster as one sequential scan than
 * through an index (a random row lookup per attempt), so the SQL writes "{+}" before
 * its time columns: without --since it becomes "+" (SQLite then ignores the time
 * index and scans), with --since it vanishes (the index finds the recent rows).
 * Grouping keys are written as +column for the same reason.
 */
#ifndef MXB_CLI_INTEL_H
#define MXB_CLI_INTEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "query/table.h"

struct sqlite3;
struct sqlite3_stmt;

#define INTEL_DEFAULT_TOP 10

/* "90s", "15m", "1h", "7d", "2w" or bare seconds; > 0.  Returns 0 or -1. */
int intel_parse_duration(const char *s, int64_t *us_r);
/* A count >= 0 (min 0 unless stated).  Returns 0 or -1. */
int intel_parse_count(const char *s, long min, long *v_r);

enum intel_kind {
	IK_TEXT, /* text (attacker bytes: escaped by the table / JSON writer) */
	IK_INT,  /* integer, right-aligned */
	IK_LIST, /* a comma-separated list (group_concat): text in the table, an array of
		  * strings in JSON */
	IK_TIME, /* microseconds: "YYYY-MM-DD HH:MM:SS" in the table; in JSON the integer
		  * under json and ISO 8601 UTC under iso */
};

struct intel_col {
	const char *head; /* table heading */
	const char *json; /* JSON key */
	enum intel_kind kind;
	size_t max;       /* widest table cell (0: the table's default) */
	const char *iso;  /* IK_TIME: JSON key of the same time in ISO 8601 (next to json) */
};

/* Output state of one command: a table per section on stdout, or one JSON object. */
struct intel_out {
	struct sqlite3 *db;
	bool json;
	struct buf buf;
	struct jw w;
	int64_t since_us;
	long top;
	int failed; /* a query failed (message printed) */
};

/* Per-row hook for columns computed outside SQL: called after the SQL columns are
 * set, with the table (cells from col0 on) or the JSON writer inside the row object. */
typedef void (*intel_row_fn)(void *ctx, struct sqlite3_stmt *st, struct table *t, size_t col0,
			     struct jw *w);

/* tmpl with every "{+}" replaced by "+" (since_us == 0) or "" (malloc'd). */
char *intel_sql(const char *tmpl, int64_t since_us);

void intel_begin(struct intel_out *o, struct sqlite3 *db, bool json, int64_t since_us, long top);
/* One section.  extra_heads: table headings of the hook's columns. */
void intel_section(struct intel_out *o, const char *title, const char *key, const char *sql,
		   const struct intel_col *cols, size_t ncols, const char *const *extra_heads,
		   size_t n_extra, intel_row_fn fn, void *ctx);
/* Prints the JSON object; returns the exit status (0, or 1 when a query failed). */
int intel_end(struct intel_out *o);
/* JSON mode without printing: closes the object and hands its text to the caller
 * (malloc'd, *len_r its length); returns -1 when a query failed (the text is still
 * valid JSON).  For the web API. */
int intel_finish(struct intel_out *o, char **json_r, size_t *len_r);

#endif
