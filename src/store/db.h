/*
 * db: the SQLite schema of mxbait, its forward migrations, and opening helpers shared
 * by the event store (writer) and the CLI (readers).
 *
 * The schema version is PRAGMA user_version.  Migrations are an ordered list of SQL
 * steps in db.c: step i brings the database from version i to i+1, each in its own
 * transaction.  Later modules append steps; a step is never edited once released.
 * A database newer than this program knows is refused, never touched.
 *
 * Data directory layout (names shared by serve, the store and the CLI):
 *   <data_dir>/mxbait.db      SQLite (WAL)
 *   <data_dir>/events.jsonl   JSON-lines event log
 *   <data_dir>/spool/         Maildir of captured messages (tmp/ new/ cur/)
 */
#ifndef MXB_STORE_DB_H
#define MXB_STORE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;

#define MXB_DB_FILE "mxbait.db"
#define MXB_JSONL_FILE "events.jsonl"
#define MXB_SPOOL_DIR "spool"

enum db_status {
	DB_OK = 0,
	DB_MISSING,  /* no such file (read-only open) */
	DB_NOT_OURS, /* not an SQLite file, or SQLite without the mxbait schema */
	DB_TOO_NEW,  /* user_version above db_schema_version() */
	DB_TOO_OLD,  /* read-only open of an older schema (serve migrates it) */
	DB_ERROR,    /* anything else (I/O, permissions, ...) */
};

/* The version this program's migrations lead to. */
int db_schema_version(void);

/* Open (creating if needed) for writing: WAL, synchronous=NORMAL, busy_timeout,
 * then migrate to the latest version.  The connection is opened without SQLite's
 * per-connection mutex: one thread at a time may use it.  On failure *err_r gets a
 * malloc'd message naming the file. */
enum db_status db_open_rw(const char *path, struct sqlite3 **db_r, char **err_r);

/* Open an existing database for reading (query_only) and check its version. */
enum db_status db_open_ro(const char *path, struct sqlite3 **db_r, char **err_r);
/* Open an existing database of exactly this program's schema for writing beside a
 * running daemon (mxbait prune): never creates or migrates; busy timeout 10 s. */
enum db_status db_open_existing_rw(const char *path, struct sqlite3 **db_r, char **err_r);

/* Apply the migrations from the current version up to target (-1: latest).  For
 * tests (building an old database) and db_open_rw. */
enum db_status db_migrate(struct sqlite3 *db, int target, char **err_r);

/* PRAGMA user_version; -1 on error (e.g. "file is not a database" in *err_r). */
int db_user_version(struct sqlite3 *db, char **err_r);

/* Register mxbait's SQL functions on a connection (db_migrate does it; readers that
 * use them call it): mxb_prefix(ip) is the network of an address as canonical text,
 * the /24 of an IPv4 address ("203.0.113.0/24", also for ::ffff:203.0.113.9) or the
 * /48 of an IPv6 address ("2001:db8:1::/48"); NULL for anything else. */
int db_register_functions(struct sqlite3 *db);
/* The same in C: 0, or -1 when ip is not an address (out gets nothing useful). */
int db_prefix(const char *ip, char *out, size_t outlen);

/* Load the saved accounts of the credential policy (deceive/deception.h), for start-up:
 * fn is called once per row of the accounts table, oldest save (updated_us) first, so
 * that a policy holding fewer keeps the most recent ones (the strings are
 * valid during the call only).  Returns the number of accounts passed to fn; 0 when the
 * database does not exist yet or predates the accounts table; -1 with *err_r (malloc'd)
 * on error, a database newer than this program, or when fn returns non-zero (loading
 * stops there).  Opens and closes its own read-only connection, so it may run before
 * or after eventstore_open(). */
struct deception_account;
int db_load_accounts(const char *db_path,
		     int (*fn)(void *ctx, const struct deception_account *a), void *ctx,
		     char **err_r);

/* Add delta to a named counter in the counters table (e.g. "events_dropped"). */
int db_counter_add(struct sqlite3 *db, const char *name, int64_t delta);
/* Read a counter; 0 when absent. */
int64_t db_counter_get(struct sqlite3 *db, const char *name);

#endif
