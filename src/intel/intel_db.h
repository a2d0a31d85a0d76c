/*
 * intel_db: <data_dir>/intel.db, the database the reporter owns: indicators (derived
 * from mxbait.db and analysis.db), the outbox of rendered reports, the abuse-contact
 * cache, the opt-out list, per-recipient budgets and thinning state.
 *
 * Why a third file: mxbait.db has one writer (the daemon's event thread) and
 * analysis.db another (the analyzer); the reporter writes only here, so it never
 * contends for their write locks.  Both are ATTACHed to the same connection (as `ev`
 * and `an`) and only read; a missing one is simply not attached and its sources are
 * skipped.  intel.db uses synchronous=FULL: an outbox transition is on disk before the
 * reporter acts on it (see report/outbox.h for why that matters).
 *
 * Schema: PRAGMA user_version, steps appended in intel_db.c, never edited.
 */
#ifndef MXB_INTEL_INTEL_DB_H
#define MXB_INTEL_INTEL_DB_H

#include <stdbool.h>

struct sqlite3;

#define INTEL_DB_FILE "intel.db"

enum intel_db_sources {
	INTEL_HAS_EVENTS = 1,   /* mxbait.db attached as ev */
	INTEL_HAS_ANALYSIS = 2, /* analysis.db attached as an */
};

/* Open (creating and migrating) data_dir/intel.db; attach the two source databases
 * read-only when attach is true and they exist.  *sources_r gets INTEL_HAS_* bits.
 * NULL with *err_r set on failure. */
struct sqlite3 *intel_db_open(const char *data_dir, bool attach, int *sources_r,
			      char **err_r);
/* Existing intel.db opened query_only (the CLI's read path when it may not write);
 * NULL with *err_r when missing or foreign. */
struct sqlite3 *intel_db_open_ro(const char *data_dir, char **err_r);
int intel_db_schema_version(void);
/* The SQL helper functions every intel.db connection has (flags/evidence merging). */
int intel_db_register_functions(struct sqlite3 *db);

#endif
