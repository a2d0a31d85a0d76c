/*
 * prune: retention and disk budgets of mxbait.db and analysis.db (see prune.h).
 *
 * Promises: each DELETE touches at most PRUNE_CHUNK rows and commits before the next,
 * with the write lock taken up front (BEGIN IMMEDIATE, so a busy database is waited
 * for with the connection's busy timeout rather than failing half-way); a failure
 * leaves what was committed so far, which is a consistent database; the oldest rows
 * go first.
 */
#include "store/prune.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void set_err(char **err_r, sqlite3 *db, const char *what)
{
	if (!err_r)
		return;
	free(*err_r);
	*err_r = NULL;
	if (asprintf(err_r, "%s: %s", what, db ? sqlite3_errmsg(db) : "?") < 0)
		*err_r = NULL;
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

/* One integer from sql with ?1 = a (when the statement has it); dflt when no row or
 * NULL, -2 on error. */
static int64_t q_int(sqlite3 *db, const char *sql, int64_t a, int64_t dflt)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		return -2;
	if (sqlite3_bind_parameter_count(st) >= 1)
		sqlite3_bind_int64(st, 1, a);
	int64_t v = dflt;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	else if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		v = -2;
	sqlite3_finalize(st);
	return v;
}

/* Run a DELETE with ?1 = bound and ?2 = PRUNE_CHUNK until it deletes fewer rows than
 * that, one transaction per run; adds the rows deleted to *n. */
static int delete_chunked(sqlite3 *db, const char *sql, int64_t bound, int64_t *n,
			  char **err_r)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		set_err(err_r, db, "prune");
		return -1;
	}
	/* Inside the caller's transaction (a budget step): one statement, no commits. */
	if (!sqlite3_get_autocommit(db)) {
		sqlite3_bind_int64(st, 1, bound);
		sqlite3_bind_int(st, 2, INT32_MAX);
		int rc = sqlite3_step(st);
		*n += sqlite3_changes(db);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			set_err(err_r, db, "prune");
			return -1;
		}
		return 0;
	}
	for (;;) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			set_err(err_r, db, "prune");
			sqlite3_finalize(st);
			return -1;
		}
		sqlite3_bind_int64(st, 1, bound);
		sqlite3_bind_int(st, 2, PRUNE_CHUNK);
		int rc = sqlite3_step(st);
		sqlite3_reset(st);
		int changed = sqlite3_changes(db);
		if (rc != SQLITE_DONE ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			set_err(err_r, db, "prune");
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			sqlite3_finalize(st);
			return -1;
		}
		*n += changed;
		if (changed < PRUNE_CHUNK)
			break;
	}
	sqlite3_finalize(st);
	return 0;
}

/* ---- mxbait.db ---- */

/* The first event id that stays: the first stamped at or after cutoff_us. */
static int64_t events_boundary(sqlite3 *db, int64_t cutoff_us)
{
	int64_t b = q_int(db, "SELECT id FROM events WHERE ts_us >= ?1 ORDER BY id LIMIT 1",
			  cutoff_us, -1);
	if (b == -1)
		b = q_int(db, "SELECT coalesce(max(id), 0) + 1 FROM events", 0, 1);
	return b;
}

struct table_rule {
	const char *table, *count_sql, *delete_sql;
	size_t off; /* in struct prune_counts */
};

static const struct table_rule db_rules[] = {
	{"auth_attempts", "SELECT count(*) FROM auth_attempts WHERE ts_us < ?1",
	 "DELETE FROM auth_attempts WHERE id IN (SELECT id FROM auth_attempts"
	 " WHERE ts_us < ?1 LIMIT ?2)",
	 offsetof(struct prune_counts, auth_attempts)},
	{"probes", "SELECT count(*) FROM probes WHERE ts_us < ?1",
	 "DELETE FROM probes WHERE id IN (SELECT id FROM probes WHERE ts_us < ?1 LIMIT ?2)",
	 offsetof(struct prune_counts, probes)},
	{"sessions", "SELECT count(*) FROM sessions WHERE started_us < ?1",
	 "DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions"
	 " WHERE started_us < ?1 LIMIT ?2)",
	 offsetof(struct prune_counts, sessions)},
};

static const struct table_rule messages_rule = {
	"messages", "SELECT count(*) FROM messages WHERE ts_us < ?1",
	"DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE ts_us < ?1 LIMIT ?2)",
	offsetof(struct prune_counts, messages)};

static int apply_rule(sqlite3 *db, const struct table_rule *r, int64_t cutoff_us,
		      bool dry_run, struct prune_counts *c, char **err_r)
{
	if (!has_table(db, r->table))
		return 0;
	int64_t *n = (int64_t *)(void *)((char *)c + r->off);
	if (dry_run) {
		int64_t k = q_int(db, r->count_sql, cutoff_us, 0);
		if (k < 0) {
			set_err(err_r, db, r->table);
			return -1;
		}
		*n += k;
		return 0;
	}
	return delete_chunked(db, r->delete_sql, cutoff_us, n, err_r);
}

int prune_db_before(sqlite3 *db, int64_t cutoff_us, bool with_messages, bool dry_run,
		    struct prune_counts *c, char **err_r)
{
	int64_t b = events_boundary(db, cutoff_us);
	if (b < 0) {
		set_err(err_r, db, "events");
		return -1;
	}
	if (dry_run) {
		int64_t k = q_int(db, "SELECT count(*) FROM events WHERE id < ?1", b, 0);
		if (k < 0) {
			set_err(err_r, db, "events");
			return -1;
		}
		c->events += k;
	} else if (delete_chunked(db, "DELETE FROM events WHERE id IN (SELECT id FROM events"
				      " WHERE id < ?1 ORDER BY id LIMIT ?2)",
				  b, &c->events, err_r) < 0) {
		return -1;
	}
	for (size_t i = 0; i < sizeof(db_rules) / sizeof(db_rules[0]); i++)
		if (apply_rule(db, &db_rules[i], cutoff_us, dry_run, c, err_r) < 0)
			return -1;
	if (with_messages && apply_rule(db, &messages_rule, cutoff_us, dry_run, c, err_r) < 0)
		return -1;
	return 0;
}

void prune_budget_marks(uint64_t budget, struct prune_marks *m)
{
	m->wal = budget / 16 < 4 * 1024 * 1024 ? budget / 16 : 4 * 1024 * 1024;
	uint64_t margin = 4 * m->wal + 64 * 1024;
	m->trigger = budget > margin ? budget - margin : budget / 2;
	m->target = m->trigger > budget / 8 ? m->trigger - budget / 8 : m->trigger / 2;
}

int64_t prune_content_bytes(sqlite3 *db)
{
	int64_t pages = q_int(db, "PRAGMA page_count", 0, -1);
	int64_t free_pages = q_int(db, "PRAGMA freelist_count", 0, -1);
	int64_t size = q_int(db, "PRAGMA page_size", 0, -1);
	if (pages < 0 || free_pages < 0 || size <= 0)
		return -1;
	return (pages - free_pages) * size;
}

/* The time before which lie the oldest events whose removal should bring the content
 * from live down to target: that share of the events (estimated from their ids, which
 * grow by one per event), at least one, at most PRUNE_CHUNK. */
static int64_t db_chunk_cutoff(sqlite3 *db, int64_t live, int64_t target)
{
	int64_t lo = q_int(db, "SELECT min(id) FROM events", 0, -1);
	int64_t hi = q_int(db, "SELECT max(id) FROM events", 0, -1);
	if (lo < 0 || hi < lo)
		return INT64_MAX; /* no events: everything prunable that exists */
	double share = live > 0 ? (double)(live - target) / (double)live : 1.0;
	int64_t n = (int64_t)((double)(hi - lo + 1) * share * 1.1) + 1;
	if (n > PRUNE_CHUNK)
		n = PRUNE_CHUNK;
	int64_t t = q_int(db, "SELECT ts_us FROM events ORDER BY id LIMIT 1 OFFSET ?1", n, -1);
	return t >= 0 ? t : INT64_MAX;
}

int prune_wal_bound(sqlite3 *db, const char *db_path, int64_t wal_max)
{
	if (wal_max <= 0 || !db_path)
		return 0;
	char wal[4096];
	snprintf(wal, sizeof(wal), "%s-wal", db_path);
	struct stat st;
	if (stat(wal, &st) < 0 || st.st_size <= wal_max)
		return 0;
	return sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) ==
			       SQLITE_OK
		       ? 1
		       : 0;
}

int prune_db_to_size(sqlite3 *db, int64_t target, struct prune_counts *c, char **err_r)
{
	return prune_db_to_size_steps(db, target, 0, c, err_r);
}

int prune_db_to_size_steps(sqlite3 *db, int64_t target, int max_steps, struct prune_counts *c,
			   char **err_r)
{
	for (int step = 0;; step++) {
		if (max_steps > 0 && step >= max_steps)
			return 2;
		int64_t live = prune_content_bytes(db);
		if (live < 0) {
			set_err(err_r, db, "page_count");
			return -1;
		}
		if (live <= target)
			return 1;
		/* One step, one transaction: at most PRUNE_CHUNK events and their rows. */
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			set_err(err_r, db, "prune");
			return -1;
		}
		int64_t cutoff = db_chunk_cutoff(db, live, target);
		struct prune_counts before = *c;
		if (prune_db_before(db, cutoff, false, false, c, err_r) < 0 ||
		    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			if (err_r && !*err_r)
				set_err(err_r, db, "prune");
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			*c = before;
			return -1;
		}
		bool deleted = c->events != before.events ||
			       c->auth_attempts != before.auth_attempts ||
			       c->probes != before.probes || c->sessions != before.sessions;
		if (!deleted)
			return prune_content_bytes(db) <= target ? 1 : 0;
	}
}

/* ---- analysis.db ---- */

/* Delete analysis messages with id < bound (and everything that hangs off them),
 * at most PRUNE_CHUNK messages per transaction.  children: the tables with a `message`
 * column other than spool_done. */
static int adb_delete_below(sqlite3 *adb, int64_t bound, struct prune_counts *c,
			    char **err_r)
{
	/* The child tables, found rather than listed: a later analysis schema adds its own. */
	char *children[32];
	size_t nch = 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(adb,
			       "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p"
			       " WHERE m.type = 'table' AND p.name = 'message'"
			       " AND m.name NOT IN ('spool_done', 'messages')"
			       " AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name",
			       -1, &st, NULL) != SQLITE_OK) {
		set_err(err_r, adb, "analysis.db");
		return -1;
	}
	while (sqlite3_step(st) == SQLITE_ROW && nch < 32) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		if (name && (children[nch] = strdup(name)))
			nch++;
	}
	sqlite3_finalize(st);
	bool fts = has_table(adb, "message_text");
	int rc = 0;
	for (;;) {
		/* This chunk: the messages below the id of the (CHUNK+1)-th oldest, or bound. */
		int64_t upto = q_int(adb, "SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET ?1",
				     PRUNE_CHUNK, INT64_MAX);
		if (upto < -1) {
			set_err(err_r, adb, "analysis.db");
			rc = -1;
			break;
		}
		if (upto > bound)
			upto = bound;
		if (sqlite3_exec(adb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
			set_err(err_r, adb, "analysis.db");
			rc = -1;
			break;
		}
		bool ok = true;
		for (size_t i = 0; ok && i < nch; i++) {
			char *sql = sqlite3_mprintf("DELETE FROM \"%w\" WHERE message < ?1",
						    children[i]);
			ok = sql && sqlite3_prepare_v2(adb, sql, -1, &st, NULL) == SQLITE_OK;
			sqlite3_free(sql);
			if (ok) {
				sqlite3_bind_int64(st, 1, upto);
				ok = sqlite3_step(st) == SQLITE_DONE;
			}
			sqlite3_finalize(st);
			st = NULL;
		}
		if (ok && fts)
			ok = q_int(adb, "DELETE FROM message_text WHERE rowid < ?1", upto, 0) != -2;
		int64_t gone = 0;
		if (ok) {
			ok = q_int(adb, "DELETE FROM messages WHERE id < ?1", upto, 0) != -2;
			gone = sqlite3_changes(adb);
		}
		if (!ok || sqlite3_exec(adb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			set_err(err_r, adb, "analysis.db");
			sqlite3_exec(adb, "ROLLBACK", NULL, NULL, NULL);
			rc = -1;
			break;
		}
		c->analysis_messages += gone;
		if (upto >= bound || gone == 0)
			break;
	}
	for (size_t i = 0; i < nch; i++)
		free(children[i]);
	return rc;
}

int prune_adb_before(sqlite3 *adb, int64_t cutoff_us, bool dry_run, struct prune_counts *c,
		     char **err_r)
{
	if (!has_table(adb, "messages"))
		return 0;
	/* analyzed_at is in seconds; the first message that stays, by position. */
	int64_t cutoff_s = cutoff_us / 1000000;
	int64_t b = q_int(adb, "SELECT id FROM messages WHERE analyzed_at >= ?1 ORDER BY id"
			       " LIMIT 1", cutoff_s, -1);
	if (b == -1)
		b = q_int(adb, "SELECT coalesce(max(id), 0) + 1 FROM messages", 0, 1);
	if (b < 0) {
		set_err(err_r, adb, "analysis.db");
		return -1;
	}
	if (dry_run) {
		int64_t k = q_int(adb, "SELECT count(*) FROM messages WHERE id < ?1", b, 0);
		if (k < 0) {
			set_err(err_r, adb, "analysis.db");
			return -1;
		}
		c->analysis_messages += k;
		return 0;
	}
	return adb_delete_below(adb, b, c, err_r);
}

int prune_adb_to_size(sqlite3 *adb, const char *db_path, int64_t target, int64_t wal_max,
		      struct prune_counts *c, char **err_r)
{
	if (!has_table(adb, "messages"))
		return 1;
	for (;;) {
		prune_wal_bound(adb, db_path, wal_max);
		int64_t live = prune_content_bytes(adb);
		if (live < 0) {
			set_err(err_r, adb, "analysis.db");
			return -1;
		}
		if (live <= target)
			return 1;
		/* The share of the messages that should bring live down to target. */
		int64_t lo = q_int(adb, "SELECT min(id) FROM messages", 0, -1);
		int64_t hi = q_int(adb, "SELECT max(id) FROM messages", 0, -1);
		double share = (double)(live - target) / (double)live;
		int64_t n = lo >= 0 && hi >= lo ? (int64_t)((double)(hi - lo + 1) * share * 1.1) + 1
						: 1;
		if (n > PRUNE_CHUNK / 10)
			n = PRUNE_CHUNK / 10;
		int64_t upto = q_int(adb, "SELECT id FROM messages ORDER BY id LIMIT 1 OFFSET ?1",
				     n, -1);
		if (upto == -1) /* fewer than that: all of them */
			upto = q_int(adb, "SELECT coalesce(max(id), 0) + 1 FROM messages", 0, 1);
		int64_t before = c->analysis_messages;
		if (adb_delete_below(adb, upto, c, err_r) < 0)
			return -1;
		if (c->analysis_messages == before)
			return prune_content_bytes(adb) <= target ? 1 : 0;
	}
}

int prune_adb_spool_done(sqlite3 *adb, const char *name)
{
	if (!has_table(adb, "spool_done"))
		return 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(adb, "DELETE FROM spool_done WHERE name = ?1", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(st);
	return rc;
}

/* ---- disk ---- */

static uint64_t file_disk_bytes(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return 0;
	uint64_t alloc = (uint64_t)st.st_blocks * 512;
	return alloc > (uint64_t)st.st_size ? alloc : (uint64_t)st.st_size;
}

uint64_t prune_disk_bytes(const char *db_path)
{
	char p[4096];
	uint64_t total = file_disk_bytes(db_path);
	snprintf(p, sizeof(p), "%s-wal", db_path);
	total += file_disk_bytes(p);
	snprintf(p, sizeof(p), "%s-shm", db_path);
	total += file_disk_bytes(p);
	return total;
}

int64_t prune_shrink(sqlite3 *db, const char *db_path, uint64_t max_bytes)
{
	if (q_int(db, "PRAGMA auto_vacuum", 0, 0) != 2)
		return 0;
	struct stat st;
	if (stat(db_path, &st) < 0 || (uint64_t)st.st_size <= max_bytes)
		return 0;
	int64_t free_pages = q_int(db, "PRAGMA freelist_count", 0, 0);
	int64_t page = q_int(db, "PRAGMA page_size", 0, 4096);
	if (free_pages <= 0 || page <= 0)
		return 0;
	int64_t want = ((int64_t)st.st_size - (int64_t)max_bytes + page - 1) / page;
	if (want > free_pages)
		want = free_pages;
	int64_t done = 0;
	/* In steps, each its own short write transaction. */
	while (done < want) {
		int64_t step = want - done > 1000 ? 1000 : want - done;
		char sql[64];
		snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%lld)", (long long)step);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
			break;
		done += step;
	}
	return done;
}

void prune_names_add(void *ctx, const char *sub, const char *name, uint64_t bytes)
{
	(void)sub;
	struct prune_names *nm = ctx;
	nm->c->spool_files++;
	nm->c->spool_bytes += bytes;
	if (nm->n == nm->alloc) {
		size_t a = nm->alloc ? nm->alloc * 2 : 256;
		char **v = realloc(nm->v, a * sizeof(*v));
		if (!v)
			return; /* the file is gone; analysis.db keeps a stale name, harmless */
		nm->v = v;
		nm->alloc = a;
	}
	if ((nm->v[nm->n] = strdup(name)))
		nm->n++;
}

void prune_names_forget(struct sqlite3 *adb, const struct prune_names *nm)
{
	if (!adb)
		return;
	for (size_t i = 0; i < nm->n; i += PRUNE_CHUNK) {
		if (sqlite3_exec(adb, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return;
		for (size_t k = i; k < nm->n && k < i + PRUNE_CHUNK; k++)
			if (prune_adb_spool_done(adb, nm->v[k]) == 0)
				nm->c->spool_done += sqlite3_changes(adb);
		sqlite3_exec(adb, "COMMIT", NULL, NULL, NULL);
	}
}

void prune_names_free(struct prune_names *nm)
{
	for (size_t i = 0; i < nm->n; i++)
		free(nm->v[i]);
	free(nm->v);
	nm->v = NULL;
	nm->n = nm->alloc = 0;
}
