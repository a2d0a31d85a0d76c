/*
 * intel_db: schema, migrations, attachments and SQL helpers of intel.db (see
 * intel_db.h and docs/datamodel.md).
 *
 * Promises: a migration step and its user_version bump commit together; a newer
 * schema is refused before anything is written; the source databases are attached
 * only when the files exist (ATTACH would otherwise create an empty one) and are
 * never written through this connection.
 */
#include "intel/intel_db.h"

#include <errno.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "store/db.h"
#include "util/buf.h"

static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE indicators ("
	" id INTEGER PRIMARY KEY,"
	" kind TEXT NOT NULL,"            /* ip prefix url domain sender sender_domain
					   * attachment recipient recipient_domain campaign */
	" value TEXT NOT NULL,"
	" source TEXT NOT NULL DEFAULT 'local'," /* local | peer */
	" parent TEXT,"                  /* ip: its /24 or /48; recipient: its domain;
					   * url: its registrable domain */
	" first_seen_us INTEGER NOT NULL DEFAULT 0,"
	" last_seen_us INTEGER NOT NULL DEFAULT 0,"
	" guesses INTEGER NOT NULL DEFAULT 0," /* failed AUTH/LOGIN attempts */
	" probes INTEGER NOT NULL DEFAULT 0,"  /* unauthenticated RCPT/VRFY/EXPN */
	" messages INTEGER NOT NULL DEFAULT 0,"/* captured messages that carry it */
	" logins INTEGER NOT NULL DEFAULT 0,"  /* logins with a honeypot (trap) credential */
	" members INTEGER NOT NULL DEFAULT 0," /* prefix: IPs; recipient_domain: addresses */
	" confidence INTEGER NOT NULL DEFAULT 0,"
	" flags TEXT NOT NULL DEFAULT '',"     /* space-separated */
	" evidence TEXT NOT NULL DEFAULT '',"  /* space-separated refs, at most 32 */
	" note TEXT,"
	" updated_us INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE(kind, value, source));"
	"CREATE INDEX indicators_kind_conf ON indicators(kind, confidence);"
	"CREATE INDEX indicators_parent ON indicators(kind, parent);"
	"CREATE INDEX indicators_updated ON indicators(updated_us);"
	"CREATE TABLE cursors (name TEXT PRIMARY KEY, value INTEGER NOT NULL);"
	"CREATE TABLE outbox ("
	" id INTEGER PRIMARY KEY,"
	" key TEXT NOT NULL UNIQUE,"     /* idempotency key: hash of sink + subject */
	" sink TEXT NOT NULL,"           /* smtp abuseipdb spamhaus netcraft urlhaus webhook
					   * manual */
	" kind TEXT NOT NULL,"           /* arf xarf digest api manual */
	" subject TEXT NOT NULL,"        /* what is reported: an IP, URL, queue id, domain */
	" recipient TEXT,"               /* e-mail reports: the abuse contact */
	" contact_query TEXT,"           /* what to look the contact up for (ip:/domain:) */
	" title TEXT,"
	" payload BLOB,"                 /* the rendered report (.eml, JSON, form) */
	" content_type TEXT,"
	" incidents INTEGER NOT NULL DEFAULT 1,"
	" redacted INTEGER NOT NULL DEFAULT 0,"
	" victim_domains TEXT,"          /* never send this report to these domains */
	" created_us INTEGER NOT NULL,"
	" not_after_us INTEGER NOT NULL DEFAULT 0," /* expiry; 0 none */
	" state TEXT NOT NULL,"          /* see report/outbox.h */
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" next_attempt_us INTEGER NOT NULL DEFAULT 0,"
	" last_error TEXT,"
	" response TEXT,"
	" sent_us INTEGER NOT NULL DEFAULT 0,"
	" updated_us INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX outbox_state ON outbox(state, next_attempt_us);"
	"CREATE INDEX outbox_sink ON outbox(sink, state);"
	"CREATE TABLE contacts ("
	" query TEXT PRIMARY KEY,"       /* ip:ADDR or domain:NAME */
	" emails TEXT,"                  /* space-separated; empty: none found */
	" origin TEXT,"                  /* rdap abusix fallback config */
	" detail TEXT,"
	" fetched_us INTEGER NOT NULL,"
	" expires_us INTEGER NOT NULL);"
	"CREATE TABLE optout ("
	" address TEXT PRIMARY KEY,"     /* an address, or @domain for a whole domain */
	" added_us INTEGER NOT NULL,"
	" reason TEXT);"
	"CREATE TABLE budgets ("
	" recipient TEXT NOT NULL,"
	" day INTEGER NOT NULL,"         /* days since the epoch, UTC */
	" sent INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(recipient, day)) WITHOUT ROWID;"
	"CREATE TABLE thinning ("
	" key TEXT PRIMARY KEY,"         /* recipient + reported source */
	" incidents INTEGER NOT NULL DEFAULT 0," /* seen since the last quiet period */
	" reported INTEGER NOT NULL DEFAULT 0,"  /* of which a report was made */
	" last_us INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;",
	/* 1 -> 2: federation (src/federate/, docs/federation.md): the peers this sensor
	 * pulls, what each said (with who and when: provenance), its trap hashes for us,
	 * contradictions, security events, our own published segments, and consensus. */
	"CREATE TABLE peers ("
	" id TEXT PRIMARY KEY,"          /* key id: 16 hex of BLAKE2b(public key) */
	" key TEXT NOT NULL,"            /* ed25519:BASE64 */
	" url TEXT NOT NULL,"            /* base URL of the feed (.../feed/v1) */
	" name TEXT,"
	" trust REAL NOT NULL DEFAULT 1," /* the operator's weight, 0-10 */
	" contradictions INTEGER NOT NULL DEFAULT 0," /* each halves the weight */
	" pin TEXT,"                     /* TLS public key pin (sha256//BASE64) */
	" token_file TEXT,"              /* bearer token for the peer's web_auth */
	" added_us INTEGER NOT NULL,"
	" last_seq INTEGER NOT NULL DEFAULT 0," /* last segment accepted */
	" last_hash TEXT NOT NULL DEFAULT '',"  /* its SHA-256: the chain continues here */
	" manifest_us INTEGER NOT NULL DEFAULT 0," /* created time of the last manifest */
	" pulled_us INTEGER NOT NULL DEFAULT 0,"
	" next_pull_us INTEGER NOT NULL DEFAULT 0,"
	" status TEXT NOT NULL DEFAULT 'new'," /* new ok gap replay rollback signature error */
	" last_error TEXT,"
	" gaps INTEGER NOT NULL DEFAULT 0, replays INTEGER NOT NULL DEFAULT 0,"
	" rollbacks INTEGER NOT NULL DEFAULT 0, bad_signatures INTEGER NOT NULL DEFAULT 0,"
	" profile TEXT,"                 /* their trap profile (JSON), opened from a box */
	" traps_sent_us INTEGER NOT NULL DEFAULT 0," /* our trap hashes for them, last time */
	" traps_sent INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE peer_entries ("
	" peer TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
	" flags TEXT NOT NULL DEFAULT '',"
	" first_seen_us INTEGER NOT NULL DEFAULT 0, last_seen_us INTEGER NOT NULL DEFAULT 0,"
	" expires_us INTEGER NOT NULL,"
	" confidence INTEGER NOT NULL DEFAULT 0,"
	" guesses INTEGER NOT NULL DEFAULT 0, probes INTEGER NOT NULL DEFAULT 0,"
	" messages INTEGER NOT NULL DEFAULT 0, logins INTEGER NOT NULL DEFAULT 0,"
	" members INTEGER NOT NULL DEFAULT 0,"
	" minhash BLOB,"
	" seq INTEGER NOT NULL,"         /* the segment that said it */
	" received_us INTEGER NOT NULL,"
	" PRIMARY KEY(peer, kind, value)) WITHOUT ROWID;"
	"CREATE INDEX peer_entries_kv ON peer_entries(kind, value);"
	"CREATE INDEX peer_entries_expires ON peer_entries(expires_us);"
	"CREATE TABLE peer_traps ("
	" peer TEXT NOT NULL, tag TEXT NOT NULL, hash TEXT NOT NULL,"
	" expires_us INTEGER NOT NULL, seq INTEGER NOT NULL, received_us INTEGER NOT NULL,"
	" PRIMARY KEY(peer, tag, hash)) WITHOUT ROWID;"
	"CREATE TABLE peer_contradictions ("
	" peer TEXT NOT NULL, kind TEXT NOT NULL, value TEXT NOT NULL,"
	" seen_us INTEGER NOT NULL, reason TEXT,"
	" PRIMARY KEY(peer, kind, value)) WITHOUT ROWID;"
	"CREATE TABLE peer_log ("
	" id INTEGER PRIMARY KEY, ts_us INTEGER NOT NULL, peer TEXT NOT NULL,"
	" what TEXT NOT NULL,"           /* gap replay rollback signature malformed error */
	" detail TEXT);"
	"CREATE TABLE feed_segments ("
	" seq INTEGER PRIMARY KEY, hash TEXT NOT NULL, created_us INTEGER NOT NULL,"
	" entries INTEGER NOT NULL);"
	"CREATE TABLE consensus ("
	" kind TEXT NOT NULL, value TEXT NOT NULL,"
	" weight REAL NOT NULL, operators INTEGER NOT NULL,"
	" since_us INTEGER NOT NULL, acted_us INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY(kind, value)) WITHOUT ROWID;"
	/* a peer's campaign that is one of ours by MinHash (analysis.db campaigns) */
	"CREATE TABLE campaign_links ("
	" peer TEXT NOT NULL, key TEXT NOT NULL, local_key TEXT,"  /* NULL: none found */
	" similarity REAL NOT NULL DEFAULT 0, linked_us INTEGER NOT NULL,"
	" PRIMARY KEY(peer, key)) WITHOUT ROWID;",
};

#define N_MIGRATIONS ((int)(sizeof(migrations) / sizeof(migrations[0])))

int intel_db_schema_version(void)
{
	return N_MIGRATIONS;
}

static void set_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err_r, const char *fmt, ...)
{
	if (!err_r)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err_r, fmt, ap) < 0)
		*err_r = NULL;
	va_end(ap);
}

/* mxb_merge(a, b, max): the space-separated tokens of a, then those of b not in a,
 * at most max tokens.  Bounded so a busy attacker cannot grow a row without end. */
static void sql_merge(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *a = (const char *)sqlite3_value_text(argv[0]);
	const char *b = (const char *)sqlite3_value_text(argv[1]);
	int max = argc > 2 ? sqlite3_value_int(argv[2]) : 32;
	struct buf out;
	buf_init(&out, 0);
	int n = 0;
	const char *srcs[2] = {a ? a : "", b ? b : ""};
	for (int s = 0; s < 2 && n < max; s++) {
		const char *p = srcs[s];
		while (*p && n < max) {
			while (*p == ' ')
				p++;
			size_t len = strcspn(p, " ");
			if (!len)
				break;
			/* already present? (as a whole token) */
			bool dup = false;
			for (const char *q = out.data; q && *q;) {
				size_t ql = strcspn(q, " ");
				if (ql == len && !memcmp(q, p, len)) {
					dup = true;
					break;
				}
				q += ql;
				while (*q == ' ')
					q++;
			}
			if (!dup) {
				if (out.len)
					buf_putc(&out, ' ');
				buf_append(&out, p, len);
				n++;
			}
			p += len;
		}
	}
	sqlite3_result_text(ctx, out.data ? out.data : "", (int)out.len, SQLITE_TRANSIENT);
	buf_free(&out);
}

int intel_db_register_functions(sqlite3 *db)
{
	if (db_register_functions(db) < 0)
		return -1;
	int f = SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS;
	if (sqlite3_create_function(db, "mxb_merge", 3, f, NULL, sql_merge, NULL, NULL) !=
		    SQLITE_OK ||
	    sqlite3_create_function(db, "mxb_merge", 2, f, NULL, sql_merge, NULL, NULL) !=
		    SQLITE_OK)
		return -1;
	return 0;
}

static int user_version(sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	int v = -1;
	if (sqlite3_prepare_v2(db, "PRAGMA main.user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int migrate(sqlite3 *db, const char *path, char **err_r)
{
	for (;;) {
		char *em = NULL;
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, &em) != SQLITE_OK) {
			set_err(err_r, "%s: %s", path, em ? em : sqlite3_errmsg(db));
			sqlite3_free(em);
			return -1;
		}
		int v = user_version(db);
		if (v < 0 || v > N_MIGRATIONS) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			if (v < 0)
				set_err(err_r, "%s is not an mxbait intel database: %s", path,
					sqlite3_errmsg(db));
			else
				set_err(err_r, "%s: schema version %d is newer than this mxbait "
					       "supports (%d)", path, v, N_MIGRATIONS);
			return -1;
		}
		if (v == N_MIGRATIONS) {
			sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			return 0;
		}
		char bump[64];
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", v + 1);
		if (sqlite3_exec(db, migrations[v], NULL, NULL, &em) != SQLITE_OK ||
		    sqlite3_exec(db, bump, NULL, NULL, &em) != SQLITE_OK ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, &em) != SQLITE_OK) {
			set_err(err_r, "%s: migration to version %d failed: %s", path, v + 1,
				em ? em : sqlite3_errmsg(db));
			sqlite3_free(em);
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
}

static bool attach(sqlite3 *db, const char *data_dir, const char *file, const char *as)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", data_dir, file);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	sqlite3_stmt *s = NULL;
	char sql[64];
	snprintf(sql, sizeof(sql), "ATTACH DATABASE ?1 AS %s", as);
	bool ok = sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK;
	if (ok) {
		sqlite3_bind_text(s, 1, path, -1, SQLITE_TRANSIENT);
		ok = sqlite3_step(s) == SQLITE_DONE;
	}
	sqlite3_finalize(s);
	return ok;
}

static bool has_table(sqlite3 *db, const char *schema, const char *table)
{
	char sql[160];
	snprintf(sql, sizeof(sql), "SELECT 1 FROM %s.sqlite_master WHERE type='table' AND name=?1",
		 schema);
	sqlite3_stmt *st = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
		yes = sqlite3_step(st) == SQLITE_ROW;
	}
	sqlite3_finalize(st);
	return yes;
}

sqlite3 *intel_db_open(const char *data_dir, bool want_attach, int *sources_r, char **err_r)
{
	char path[4096];
	sqlite3 *db = NULL;
	if (sources_r)
		*sources_r = 0;
	if (err_r)
		*err_r = NULL;
	snprintf(path, sizeof(path), "%s/%s", data_dir, INTEL_DB_FILE);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		set_err(err_r, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	char *em = NULL;
	if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", NULL, NULL,
			 &em) != SQLITE_OK) {
		set_err(err_r, "%s is not an mxbait intel database: %s", path,
			em ? em : sqlite3_errmsg(db));
		sqlite3_free(em);
		sqlite3_close(db);
		return NULL;
	}
	if (intel_db_register_functions(db) < 0 || migrate(db, path, err_r) < 0) {
		if (err_r && !*err_r)
			set_err(err_r, "%s: %s", path, sqlite3_errmsg(db));
		sqlite3_close(db);
		return NULL;
	}
	int src = 0;
	if (want_attach) {
		if (attach(db, data_dir, MXB_DB_FILE, "ev")) {
			if (has_table(db, "ev", "auth_attempts") && has_table(db, "ev", "probes"))
				src |= INTEL_HAS_EVENTS;
			else
				sqlite3_exec(db, "DETACH DATABASE ev", NULL, NULL, NULL);
		}
		if (attach(db, data_dir, "analysis.db", "an")) {
			if (has_table(db, "an", "links") && has_table(db, "an", "recipients"))
				src |= INTEL_HAS_ANALYSIS;
			else
				sqlite3_exec(db, "DETACH DATABASE an", NULL, NULL, NULL);
		}
	}
	if (sources_r)
		*sources_r = src;
	return db;
}

sqlite3 *intel_db_open_ro(const char *data_dir, char **err_r)
{
	char path[4096];
	struct stat st;
	sqlite3 *db = NULL;
	if (err_r)
		*err_r = NULL;
	snprintf(path, sizeof(path), "%s/%s", data_dir, INTEL_DB_FILE);
	if (stat(path, &st) < 0) {
		set_err(err_r, "no intel database at %s (run `mxbait indicators` or the "
			       "reporter first)", path);
		return NULL;
	}
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
			set_err(err_r, "%s: %s", path, db ? sqlite3_errmsg(db) : strerror(errno));
			sqlite3_close(db);
			return NULL;
		}
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
	intel_db_register_functions(db);
	int v = user_version(db);
	if (v <= 0 || !has_table(db, "main", "indicators")) {
		set_err(err_r, "%s is not an mxbait intel database", path);
		sqlite3_close(db);
		return NULL;
	}
	if (v > N_MIGRATIONS) {
		set_err(err_r, "%s: schema version %d is newer than this mxbait supports (%d)",
			path, v, N_MIGRATIONS);
		sqlite3_close(db);
		return NULL;
	}
	return db;
}
