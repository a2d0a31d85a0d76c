/*
 * prune: retention and disk budgets of the two databases, <data_dir>/mxbait.db and
 * <data_dir>/analysis.db, shared by the daemon's maintenance job (store/maint.h) and
 * `mxbait prune`.
 *
 * Every deletion runs in short transactions (BEGIN IMMEDIATE, at most `chunk` rows of
 * a table each), so the daemon's event writer and the analyzer, which write the same
 * files, wait a few milliseconds at a time, never the length of a whole prune.
 *
 * What "older" means, table by table (docs/datamodel.md, "Retention"):
 *   mxbait.db   events: by position, every event before the first one stamped at or
 *               after the cutoff (the log is in time order; a clock stepped back does
 *               not keep old rows alive); auth_attempts, probes: ts_us; sessions:
 *               started_us; messages: ts_us (capture time), only when asked (the
 *               caller deletes the spool files with them); accounts and counters are
 *               never pruned (the accounts are bounded by max_accounts).
 *   analysis.db messages: analyzed_at, with their rows in every table that has a
 *               `message` column (parts, links, recipients, attachments, findings, and
 *               whatever a later schema adds) and their text in message_text;
 *               spool_done rows only by name, for spool files that were deleted (a row
 *               kept for a file that is still there is what stops the analyzer from
 *               reading it again); campaigns stay (their representative's signature
 *               lives in the campaign row).
 *
 * Budgets: the content of a database ((page_count - freelist_count) * page_size) is
 * kept at or under a target by deleting its oldest rows; freed pages are reused by new
 * rows, so the file stops growing.  prune_*_to_size() do that.
 */
#ifndef MXB_STORE_PRUNE_H
#define MXB_STORE_PRUNE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;

#define PRUNE_CHUNK 2000 /* rows per transaction */

struct prune_counts {
	/* mxbait.db */
	int64_t events, auth_attempts, probes, sessions, messages;
	/* analysis.db */
	int64_t analysis_messages, spool_done;
	/* spool (filled by the callers that delete files) */
	int64_t spool_files;
	uint64_t spool_bytes;
};

/* Delete (or, with dry_run, count) the rows of mxbait.db older than cutoff_us
 * (microseconds since the epoch), messages rows too when with_messages.  0, or -1
 * with *err_r (malloc'd). */
int prune_db_before(struct sqlite3 *db, int64_t cutoff_us, bool with_messages, bool dry_run,
		    struct prune_counts *c, char **err_r);

/* Delete the oldest rows of mxbait.db (never messages, accounts or counters) until its
 * content is at most target bytes.  Returns 1 when the target was reached, 0 when
 * nothing prunable is left above it, -1 with *err_r on error.  The daemon's event
 * writer runs it itself (eventstore_set_db_budget): being the only writer of the
 * events, it cannot be outrun by them. */
int prune_db_to_size(struct sqlite3 *db, int64_t target, struct prune_counts *c,
		     char **err_r);
/* The same in at most max_steps steps (of up to PRUNE_CHUNK events each): returns 2
 * when it stopped there with more to do (the writer goes on after its next batch, so
 * events never wait for a whole prune after the budget was lowered). */
int prune_db_to_size_steps(struct sqlite3 *db, int64_t target, int max_steps,
			   struct prune_counts *c, char **err_r);

/* analysis.db: delete (or count) the messages analysed before cutoff_us with their
 * rows; 0 or -1 with *err_r.  A database without the analyzer's tables is left alone. */
int prune_adb_before(struct sqlite3 *adb, int64_t cutoff_us, bool dry_run,
		     struct prune_counts *c, char **err_r);
/* analysis.db: delete the oldest analysed messages until the content is at most target
 * bytes; 1, 0 or -1 as prune_db_to_size. */
int prune_adb_to_size(struct sqlite3 *adb, const char *db_path, int64_t target,
		      int64_t wal_max, struct prune_counts *c, char **err_r);
/* When db_path's WAL holds more than wal_max bytes: checkpoint it completely and
 * truncate it (waits, with the connection's busy timeout, for the writers and readers
 * of the moment).  Returns 1 when it did, 0 when not needed or not possible. */
int prune_wal_bound(struct sqlite3 *db, const char *db_path, int64_t wal_max);
/* analysis.db: forget that the spool file name was analysed (it was deleted).  0 or -1. */
int prune_adb_spool_done(struct sqlite3 *adb, const char *name);

/* The spool files a retention pass deleted (`mxbait prune` and the maintenance job):
 * prune_names_add is the spool_expire callback (spool.h) that counts each into
 * c->spool_files and c->spool_bytes and keeps its name; prune_names_forget then makes
 * analysis.db forget them, PRUNE_CHUNK names per transaction, adding to c->spool_done
 * (adb NULL: nothing to forget); prune_names_free releases the names. */
struct prune_names {
	char **v;
	size_t n, alloc;
	struct prune_counts *c;
};
void prune_names_add(void *ctx, const char *sub, const char *name, uint64_t bytes);
void prune_names_forget(struct sqlite3 *adb, const struct prune_names *nm);
void prune_names_free(struct prune_names *nm);

/* How a database budget is shared (the daemon's writer and maintenance job use it):
 * the WAL is checkpointed at wal (budget/16, at most 4 MiB) and a write transaction
 * adds about wal/2 at most; past trigger (the budget less 4 WALs and 64 KiB for the
 * -shm file and slack) the oldest rows are deleted down to target (trigger less
 * budget/8).  So the file, its WAL and -shm stay within the budget. */
struct prune_marks {
	uint64_t wal, trigger, target;
};
void prune_budget_marks(uint64_t budget, struct prune_marks *m);

/* The content of a database: (page_count - freelist_count) * page_size; -1 on error. */
int64_t prune_content_bytes(struct sqlite3 *db);
/* Disk space of a database: the file and its -wal and -shm, in allocated bytes. */
uint64_t prune_disk_bytes(const char *db_path);
/* Give free pages back to the filesystem while the file is bigger than max_bytes, when
 * the database was created with auto_vacuum=INCREMENTAL (new mxbait.db files are);
 * returns the pages freed, 0 when it cannot (a database without auto_vacuum needs a
 * VACUUM, which `mxbait prune --vacuum` does with the daemon stopped). */
int64_t prune_shrink(struct sqlite3 *db, const char *db_path, uint64_t max_bytes);

#endif
