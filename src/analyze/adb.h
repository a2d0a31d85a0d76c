/*
 * adb: the analysis store, <data_dir>/analysis.db (SQLite, WAL).
 *
 * A file of its own so that the analyzer process never contends with the daemon's
 * event writer for mxbait.db's write lock; readers may ATTACH it.  Tables: messages,
 * parts, links, recipients, attachments, findings, campaigns (+ campaign_lsh,
 * campaign_keys), spool_done, and the FTS5 table message_text over subject and text;
 * views domains and recipient_domains.  Schema changes are numbered migrations.
 *
 * Promises: storing the same message again (same SHA-256) gives the same rows (same
 * ids, same campaign, same analyzed_at); each message is one transaction.
 */
#ifndef MXB_ANALYZE_ADB_H
#define MXB_ANALYZE_ADB_H

#include <stdbool.h>
#include <stdint.h>

struct adb;
struct analysis;
struct sqlite3;

#define ADB_FILE "analysis.db"
#define ADB_SCHEMA_VERSION 4

/* messages.analysis_json holds the whole analysis as `mxbait analyze` prints it (with
 * "source": null); messages.source is the spool file name (process mode) or the path
 * given to `mxbait analyze --store`.  For `mxbait show`: ATTACH analysis.db AS a;
 * SELECT analysis_json, (SELECT key FROM a.campaigns WHERE id = campaign_id)
 * FROM a.messages WHERE source = <spool name>. */

/* Open (creating and migrating) <data_dir>/analysis.db for writing. */
struct adb *adb_open(const char *data_dir, char **err_r);
/* Open read-only for the query commands; NULL with a message when absent. */
struct sqlite3 *adb_open_ro(const char *data_dir, char **err_r);
void adb_close(struct adb **db);
struct sqlite3 *adb_handle(struct adb *db);

/* Store one analysis; returns the message row id, or -1. campaign_r (optional)
 * receives the campaign row id. */
int64_t adb_store(struct adb *db, const struct analysis *a, const char *source);
int64_t adb_store_c(struct adb *db, const struct analysis *a, const char *source,
		    int64_t *campaign_r);

/* Spool progress for the analyzer process mode. */
bool adb_spool_done(struct adb *db, const char *name);
int adb_spool_mark(struct adb *db, const char *name, int64_t message);

#endif
