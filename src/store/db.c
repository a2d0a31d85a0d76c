/*
 * db: schema, forward migrations and open helpers (see db.h).
 *
 * Promises: a migration step runs in one transaction together with the user_version
 * bump, so a crash leaves the database at a whole version; a database with a newer
 * version is refused before anything is written to it.
 */
#include "store/db.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Step i takes version i to i+1.  Append only. */
static const char *const migrations[] = {
	/* 0 -> 1: raw events. */
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY,"
	" ts TEXT NOT NULL,"
	" ts_us INTEGER NOT NULL,"
	" event TEXT NOT NULL,"
	" session TEXT,"
	" src_ip TEXT,"
	" src_port INTEGER,"
	" proto TEXT,"
	" json TEXT NOT NULL);"
	"CREATE INDEX events_session ON events(session);"
	"CREATE INDEX events_event_ts ON events(event, ts_us);"
	"CREATE INDEX events_src_ip ON events(src_ip);",

	/* 1 -> 2: tables the writer maintains for the CLI, and counters. */
	"CREATE TABLE sessions ("
	" session TEXT PRIMARY KEY,"
	" proto TEXT,"
	" src_ip TEXT,"
	" src_port INTEGER,"
	" dst_ip TEXT,"
	" dst_port INTEGER,"
	" started_us INTEGER,"
	" ended_us INTEGER,"
	" duration_ms INTEGER,"
	" helo TEXT,"
	" tls TEXT,"            /* TLS version, NULL without TLS */
	" auth_user TEXT,"
	" auth_attempts INTEGER NOT NULL DEFAULT 0,"
	" mails INTEGER NOT NULL DEFAULT 0,"
	" rcpts INTEGER NOT NULL DEFAULT 0,"
	" commands INTEGER NOT NULL DEFAULT 0,"
	" errors INTEGER NOT NULL DEFAULT 0,"
	" messages INTEGER NOT NULL DEFAULT 0,"
	" offences INTEGER NOT NULL DEFAULT 0,"
	" state TEXT,"
	" reason TEXT);"
	"CREATE INDEX sessions_started ON sessions(started_us);"
	"CREATE INDEX sessions_src_ip ON sessions(src_ip);"
	"CREATE TABLE messages ("
	" id INTEGER PRIMARY KEY,"
	" queue_id TEXT NOT NULL,"
	" session TEXT,"
	" ts_us INTEGER NOT NULL,"
	" src_ip TEXT,"
	" spool TEXT,"
	" sha256 TEXT,"
	" size INTEGER,"
	" sender TEXT,"
	" recipients TEXT,"     /* JSON array */
	" n_rcpt INTEGER,"
	" method TEXT,"
	" auth_user TEXT,"
	" tls INTEGER);"
	"CREATE INDEX messages_queue_id ON messages(queue_id);"
	"CREATE INDEX messages_ts ON messages(ts_us);"
	"CREATE INDEX messages_session ON messages(session);"
	"CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, f);
	if (vasprintf(&s, f, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

static void set_err(char **err_r, char *msg)
{
	if (err_r)
		*err_r = msg;
	else
		free(msg);
}

int db_schema_version(void)
{
	return N_MIGRATIONS;
}

int db_user_version(sqlite3 *db, char **err_r)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	else
		set_err(err_r, fmt("%s", sqlite3_errmsg(db)));
	sqlite3_finalize(st);
	return v;
}

static bool has_table(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM sqlite_master WHERE type='table' AND name=?",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

/* NOTADB (garbage) and a foreign SQLite file are both "not ours". */
static enum db_status classify(sqlite3 *db, int rc)
{
	int e = sqlite3_extended_errcode(db);
	if (rc == SQLITE_NOTADB || e == SQLITE_NOTADB || rc == SQLITE_CORRUPT ||
	    (e & 0xff) == SQLITE_CORRUPT)
		return DB_NOT_OURS;
	return DB_ERROR;
}

enum db_status db_migrate(sqlite3 *db, int target, char **err_r)
{
	if (target < 0 || target > N_MIGRATIONS)
		target = N_MIGRATIONS;
	for (;;) {
		char *em = NULL;
		int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &em);
		if (rc != SQLITE_OK) {
			set_err(err_r, fmt("%s", em ? em : sqlite3_errstr(rc)));
			sqlite3_free(em);
			return classify(db, rc);
		}
		/* Read inside the transaction: another process may have migrated. */
		int v = db_user_version(db, err_r);
		if (v < 0) {
			enum db_status s = classify(db, SQLITE_ERROR);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return s;
		}
		if (v > N_MIGRATIONS) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			set_err(err_r, fmt("schema version %d is newer than this mxbait "
					   "supports (%d)", v, N_MIGRATIONS));
			return DB_TOO_NEW;
		}
		if (v == 0 && has_table(db, "events")) {
			/* Someone else's database that happens to have an events table. */
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			set_err(err_r, fmt("unknown schema (user_version 0 with tables)"));
			return DB_NOT_OURS;
		}
		if (v >= target) {
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			return DB_OK;
		}
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		rc = sqlite3_exec(db, migrations[v], NULL, NULL, &em);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, bump, NULL, NULL, &em);
		if (rc == SQLITE_OK)
			rc = sqlite3_exec(db, "COMMIT", NULL, NULL, &em);
		if (rc != SQLITE_OK) {
			set_err(err_r, fmt("migration to version %d failed: %s", v + 1,
					   em ? em : sqlite3_errstr(rc)));
			sqlite3_free(em);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return classify(db, rc);
		}
	}
}

enum db_status db_open_rw(const char *path, sqlite3 **db_r, char **err_r)
{
	sqlite3 *db = NULL;
	char *why = NULL;
	*db_r = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	if (rc != SQLITE_OK) {
		set_err(err_r, fmt("%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
		sqlite3_close(db);
		return DB_ERROR;
	}
	sqlite3_busy_timeout(db, 5000);
	/* journal_mode is the first real read: garbage shows up here. */
	char *em = NULL;
	rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", NULL, NULL,
			  &em);
	if (rc != SQLITE_OK) {
		enum db_status s = classify(db, rc);
		if (s == DB_NOT_OURS)
			set_err(err_r, fmt("%s is not an mxbait database: %s", path,
					   em ? em : sqlite3_errstr(rc)));
		else
			set_err(err_r, fmt("%s: %s", path, em ? em : sqlite3_errstr(rc)));
		sqlite3_free(em);
		sqlite3_close(db);
		return s;
	}
	enum db_status s = db_migrate(db, -1, &why);
	if (s != DB_OK) {
		if (s == DB_NOT_OURS)
			set_err(err_r, fmt("%s is not an mxbait database: %s", path,
					   why ? why : "?"));
		else
			set_err(err_r, fmt("%s: %s", path, why ? why : "?"));
		free(why);
		sqlite3_close(db);
		return s;
	}
	*db_r = db;
	return DB_OK;
}

enum db_status db_open_ro(const char *path, sqlite3 **db_r, char **err_r)
{
	sqlite3 *db = NULL;
	char *why = NULL;
	struct stat st;
	*db_r = NULL;
	if (stat(path, &st) < 0) {
		set_err(err_r, fmt("%s: %s", path, strerror(errno)));
		return errno == ENOENT ? DB_MISSING : DB_ERROR;
	}
	/* READWRITE without CREATE, then query_only: a reader of a WAL database may need
	 * to create the -shm file, which a SQLITE_OPEN_READONLY handle cannot. */
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	}
	if (rc != SQLITE_OK) {
		set_err(err_r, fmt("%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
		sqlite3_close(db);
		return DB_ERROR;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
	int v = db_user_version(db, &why);
	enum db_status s = DB_OK;
	if (v < 0) {
		s = classify(db, SQLITE_ERROR);
		set_err(err_r, fmt(s == DB_NOT_OURS ? "%s is not an mxbait database: %s" : "%s: %s",
				   path, why ? why : "?"));
	} else if (v == 0 || !has_table(db, "events")) {
		s = DB_NOT_OURS;
		set_err(err_r, fmt("%s is not an mxbait database: no mxbait schema", path));
	} else if (v > N_MIGRATIONS) {
		s = DB_TOO_NEW;
		set_err(err_r, fmt("%s: schema version %d is newer than this mxbait supports "
				   "(%d); upgrade mxbait", path, v, N_MIGRATIONS));
	} else if (v < N_MIGRATIONS) {
		s = DB_TOO_OLD;
		set_err(err_r, fmt("%s: schema version %d is older than this mxbait's (%d); "
				   "start `mxbait serve` once to upgrade it", path, v, N_MIGRATIONS));
	}
	free(why);
	if (s != DB_OK) {
		sqlite3_close(db);
		return s;
	}
	*db_r = db;
	return DB_OK;
}

int db_counter_add(sqlite3 *db, const char *name, int64_t delta)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db,
				    "INSERT INTO counters(name, value) VALUES(?1, ?2) "
				    "ON CONFLICT(name) DO UPDATE SET value = value + ?2",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, delta);
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

int64_t db_counter_get(sqlite3 *db, const char *name)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, "SELECT value FROM counters WHERE name = ?", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return v;
}
