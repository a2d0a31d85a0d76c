/*
 * db: schema, forward migrations and open helpers (see db.h).
 *
 * Promises: a migration step runs in one transaction together with the user_version
 * bump, so a crash leaves the database at a whole version; a database with a newer
 * version is refused before anything is written to it.
 */
#include "store/db.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "deceive/deception.h"

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

	/* 2 -> 3: accounts of the credential policy (deceive/deception.h), saved by
	 * eventstore_save_account() and loaded at start by db_load_accounts(). */
	"CREATE TABLE accounts ("
	" username TEXT PRIMARY KEY,"  /* canonical form */
	" password TEXT,"              /* NULL until cracked */
	" failures INTEGER NOT NULL DEFAULT 0,"
	" threshold INTEGER NOT NULL DEFAULT 0,"
	" cracked_us INTEGER NOT NULL DEFAULT 0,"
	" fixed INTEGER NOT NULL DEFAULT 0,"
	" updated_us INTEGER NOT NULL DEFAULT 0);",

	/* 3 -> 4: brute-force intelligence, maintained by the writer from auth, rcpt and
	 * vrfy events (so `mxbait creds` / `mxbait attackers` never scan the raw events),
	 * backfilled here from the events already stored.  prefix is mxb_prefix(src_ip):
	 * the /24 (IPv4) or /48 (IPv6) in canonical text.  A probe is an RCPT or VRFY/EXPN
	 * of a session that had not authenticated (successfully) before it: the writer
	 * tests sessions.auth_user IS NULL, i.e. no earlier successful auth event with a
	 * username, which is what the backfill tests. */
	"CREATE TABLE auth_attempts ("
	" id INTEGER PRIMARY KEY,"
	" ts_us INTEGER NOT NULL,"
	" session TEXT,"
	" src_ip TEXT,"
	" prefix TEXT,"
	" proto TEXT,"
	" mechanism TEXT,"
	" username TEXT,"
	" password TEXT,"
	" success INTEGER NOT NULL DEFAULT 0,"
	" result TEXT);"
	"CREATE INDEX auth_attempts_username ON auth_attempts(username);"
	"CREATE INDEX auth_attempts_src_ip ON auth_attempts(src_ip);"
	"CREATE INDEX auth_attempts_prefix ON auth_attempts(prefix);"
	"CREATE INDEX auth_attempts_ts ON auth_attempts(ts_us);"
	"CREATE TABLE probes ("
	" id INTEGER PRIMARY KEY,"
	" ts_us INTEGER NOT NULL,"
	" session TEXT,"
	" src_ip TEXT,"
	" prefix TEXT,"
	" proto TEXT,"
	" kind TEXT NOT NULL,"         /* rcpt, vrfy, expn */
	" address TEXT,"
	" accepted INTEGER NOT NULL DEFAULT 0,"
	" reply INTEGER);"
	"CREATE INDEX probes_address ON probes(address);"
	"CREATE INDEX probes_src_ip ON probes(src_ip);"
	"CREATE INDEX probes_prefix ON probes(prefix);"
	"CREATE INDEX probes_ts ON probes(ts_us);"
	"CREATE INDEX messages_auth_user ON messages(auth_user);"
	"INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto, mechanism, username,"
	" password, success, result)"
	" SELECT ts_us, session, src_ip, mxb_prefix(src_ip), proto,"
	" json_extract(json, '$.mechanism'), json_extract(json, '$.username'),"
	" json_extract(json, '$.password'), coalesce(json_extract(json, '$.success'), 0),"
	" json_extract(json, '$.result')"
	" FROM events WHERE event = 'auth' ORDER BY id;"
	"INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address, accepted,"
	" reply)"
	" SELECT e.ts_us, e.session, e.src_ip, mxb_prefix(e.src_ip), e.proto,"
	" CASE e.event WHEN 'rcpt' THEN 'rcpt'"
	"  ELSE lower(coalesce(json_extract(e.json, '$.verb'), 'vrfy')) END,"
	" CASE e.event WHEN 'rcpt' THEN json_extract(e.json, '$.recipient')"
	"  ELSE json_extract(e.json, '$.argument') END,"
	" CASE e.event WHEN 'rcpt' THEN coalesce(json_extract(e.json, '$.accepted'), 0)"
	"  ELSE coalesce(json_extract(e.json, '$.reply') BETWEEN 200 AND 299, 0) END,"
	" json_extract(e.json, '$.reply')"
	" FROM events e WHERE e.event IN ('rcpt', 'vrfy') AND NOT EXISTS ("
	"  SELECT 1 FROM events a WHERE a.session = e.session AND a.event = 'auth'"
	"  AND a.id < e.id AND json_extract(a.json, '$.success')"
	"  AND json_extract(a.json, '$.username') IS NOT NULL)"
	" ORDER BY e.id;",

	/* 4 -> 5: the guard (src/guard/, issue 9).  decisions is maintained by the event
	 * store from `decision` events (its one writer is the guard: what an operator asks
	 * with `mxbait decisions add|del|allow` reaches it as a request file); sessions
	 * gain the original destination of a connection diverted by NAT (SO_ORIGINAL_DST). */
	"CREATE TABLE decisions ("
	" id TEXT PRIMARY KEY,"
	" source TEXT NOT NULL,"       /* address or prefix, canonical (util/netaddr) */
	" action TEXT NOT NULL,"       /* delay, divert, ban, allow */
	" reason TEXT,"
	" origin TEXT,"
	" evidence TEXT,"              /* JSON array of ids */
	" created_us INTEGER NOT NULL,"
	" expires_us INTEGER NOT NULL DEFAULT 0," /* 0: never */
	" level INTEGER NOT NULL DEFAULT 0,"
	" ended_us INTEGER);"          /* set when removed before its time */
	"CREATE INDEX decisions_source ON decisions(source);"
	"CREATE INDEX decisions_expires ON decisions(expires_us);"
	"ALTER TABLE sessions ADD COLUMN orig_dst_ip TEXT;"
	"ALTER TABLE sessions ADD COLUMN orig_dst_port INTEGER;",

	/* 5 -> 6: spool files by name: the start-up reconciliation of spool/new with the
	 * messages table (store/reconcile.h) and retention (store/prune.h) look rows up by
	 * file name. */
	"CREATE INDEX IF NOT EXISTS messages_spool ON messages(spool);",

	/* 6 -> 7: no query reads events by address (the CLI, the web API and the guard use
	 * the src_ip indexes of sessions, auth_attempts and probes), and this one cost the
	 * writer a B-tree insert of a random key per event (~8% of its instructions on a
	 * guessing flood: docs/PERFORMANCE.md). */
	"DROP INDEX IF EXISTS events_src_ip;",

	/* 7 -> 8: why a guessed account not in the username list may be cracked
	 * (DECEPTION_PLAUSIBLE_* bits: probed by RCPT, tried from enough networks), so a
	 * restart in the middle of an attack does not forget it.  Rows saved before stay
	 * as they were: a cracked account stays cracked; a guessed one not in the list
	 * earns its plausibility again. */
	"ALTER TABLE accounts ADD COLUMN plausible INTEGER NOT NULL DEFAULT 0;",
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

int db_prefix(const char *ip, char *out, size_t outlen)
{
	unsigned char a[16];
	char txt[INET6_ADDRSTRLEN];
	if (!ip || outlen < 1)
		return -1;
	/* A scope (fe80::1%eth0) is not part of the network. */
	char tmp[INET6_ADDRSTRLEN + 1];
	size_t n = strcspn(ip, "%");
	if (n >= sizeof(tmp))
		return -1;
	memcpy(tmp, ip, n);
	tmp[n] = 0;
	if (inet_pton(AF_INET, tmp, a) == 1) {
		a[3] = 0;
	} else if (inet_pton(AF_INET6, tmp, a) == 1) {
		static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (!memcmp(a, v4mapped, 12)) {
			/* ::ffff:203.0.113.9 is an IPv4 peer on a dual-stack socket. */
			memmove(a, a + 12, 4);
			a[3] = 0;
		} else {
			memset(a + 6, 0, 10);
			if (!inet_ntop(AF_INET6, a, txt, sizeof(txt)))
				return -1;
			return snprintf(out, outlen, "%s/48", txt) < (int)outlen ? 0 : -1;
		}
	} else {
		return -1;
	}
	if (!inet_ntop(AF_INET, a, txt, sizeof(txt)))
		return -1;
	return snprintf(out, outlen, "%s/24", txt) < (int)outlen ? 0 : -1;
}

static void sql_prefix(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	const char *ip = (const char *)sqlite3_value_text(argv[0]);
	char out[INET6_ADDRSTRLEN + 8];
	if (ip && db_prefix(ip, out, sizeof(out)) == 0)
		sqlite3_result_text(ctx, out, -1, SQLITE_TRANSIENT);
	else
		sqlite3_result_null(ctx);
}

int db_register_functions(sqlite3 *db)
{
	return sqlite3_create_function(db, "mxb_prefix", 1,
				       SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
				       sql_prefix, NULL, NULL) == SQLITE_OK
		       ? 0
		       : -1;
}

enum db_status db_migrate(sqlite3 *db, int target, char **err_r)
{
	/* The steps (backfills) and the writer use mxb_prefix(). */
	if (db_register_functions(db) < 0) {
		set_err(err_r, fmt("%s", sqlite3_errmsg(db)));
		return DB_ERROR;
	}
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
	/* NOMUTEX: the connection is used by one thread at a time (the event writer), so
	 * SQLite's per-call mutex is pure cost (about 2% of the writer's instructions). */
	int rc = sqlite3_open_v2(path, &db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		set_err(err_r, fmt("%s: %s", path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
		sqlite3_close(db);
		return DB_ERROR;
	}
	sqlite3_busy_timeout(db, 5000);
	/* journal_mode is the first real read: garbage shows up here.  auto_vacuum takes
	 * effect only on a database without tables yet (a new one): its pages freed by
	 * retention can then be given back to the filesystem (store/prune.h).  The WAL is
	 * cut back to 16 MiB after checkpoints, so a long reader cannot leave it big.
	 * secure_delete=FAST (Debian's SQLite defaults to ON): deleted rows are zeroed in
	 * their pages, but freed pages are not rewritten, so pruning a budget's worth of
	 * rows does not write that much again into the WAL. */
	char *em = NULL;
	rc = sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; PRAGMA journal_mode=WAL;"
			  " PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=16777216;"
			  " PRAGMA secure_delete=FAST;",
			  NULL, NULL, &em);
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

enum db_status db_open_existing_rw(const char *path, sqlite3 **db_r, char **err_r)
{
	sqlite3 *db = NULL;
	*db_r = NULL;
	enum db_status s = db_open_ro(path, &db, err_r);
	if (s != DB_OK)
		return s;
	/* db_open_ro checked the schema; this connection may write. */
	if (sqlite3_exec(db, "PRAGMA query_only=0", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_db_readonly(db, "main") == 1) {
		set_err(err_r, fmt("%s: cannot write it (permissions?)", path));
		sqlite3_close(db);
		return DB_ERROR;
	}
	sqlite3_busy_timeout(db, 10000);
	if (db_register_functions(db) < 0) {
		set_err(err_r, fmt("%s: %s", path, sqlite3_errmsg(db)));
		sqlite3_close(db);
		return DB_ERROR;
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

int db_load_accounts(const char *db_path, int (*fn)(void *ctx, const struct deception_account *a),
		     void *ctx, char **err_r)
{
	struct stat stb;
	if (err_r)
		*err_r = NULL;
	if (stat(db_path, &stb) < 0) {
		if (errno == ENOENT)
			return 0; /* first start: nothing saved yet */
		set_err(err_r, fmt("%s: %s", db_path, strerror(errno)));
		return -1;
	}
	sqlite3 *db = NULL;
	/* Read-write without CREATE (a WAL reader may need the -shm file), query_only. */
	int rc = sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		set_err(err_r, fmt("%s: %s", db_path, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)));
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
	char *why = NULL;
	int v = db_user_version(db, &why);
	int n = 0;
	sqlite3_stmt *st = NULL;
	if (v < 0) {
		set_err(err_r, fmt("%s: %s", db_path, why ? why : "?"));
		n = -1;
		goto out;
	}
	if (v > N_MIGRATIONS) {
		set_err(err_r, fmt("%s: schema version %d is newer than this mxbait supports (%d)",
				   db_path, v, N_MIGRATIONS));
		n = -1;
		goto out;
	}
	if (!has_table(db, "accounts"))
		goto out; /* an older schema: no account was ever saved */
	rc = sqlite3_prepare_v2(db,
				/* oldest save first: when more were saved than the policy
				 * holds, the most recently guessed ones are kept */
				"SELECT username, password, failures, threshold, cracked_us, fixed,"
				" updated_us, plausible FROM accounts WHERE username IS NOT NULL"
				" ORDER BY updated_us, username",
				-1, &st, NULL);
	if (rc != SQLITE_OK) {
		set_err(err_r, fmt("%s: %s", db_path, sqlite3_errmsg(db)));
		n = -1;
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t failures = sqlite3_column_int64(st, 2);
		int64_t threshold = sqlite3_column_int64(st, 3);
		struct deception_account a = {
			.username = (const char *)sqlite3_column_text(st, 0),
			.password = (const char *)sqlite3_column_text(st, 1),
			.failures = failures < 0 ? 0 : failures > UINT32_MAX ? UINT32_MAX
									     : (unsigned)failures,
			.threshold = threshold < 0 ? 0 : threshold > UINT32_MAX ? UINT32_MAX
										: (unsigned)threshold,
			.cracked_us = sqlite3_column_int64(st, 4),
			.fixed = sqlite3_column_int(st, 5) != 0,
			.updated_us = sqlite3_column_int64(st, 6),
			.plausible = (unsigned)sqlite3_column_int(st, 7),
		};
		if (!a.username)
			continue;
		if (fn && fn(ctx, &a) != 0) {
			set_err(err_r, fmt("%s: saved account refused by the policy", db_path));
			n = -1;
			goto out;
		}
		n++;
	}
	if (rc != SQLITE_DONE) {
		set_err(err_r, fmt("%s: %s", db_path, sqlite3_errmsg(db)));
		n = -1;
	}
out:
	free(why);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}
