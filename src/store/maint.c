/*
 * maint: disk budgets and retention of the daemon's storage, off the event loop (see
 * maint.h).
 *
 * Promises: the thread holds its own connections to mxbait.db and analysis.db (busy
 * timeout 10 s; every write transaction short, store/prune.h); it never deletes a
 * spool file behind the spool's back (spool_expire gives the space back); a failure
 * is logged and retried at the next pass, never fatal to the daemon; warnings are
 * rate-limited to one line a minute per budget.
 */
#include "store/maint.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <syslog.h>
#include <time.h>

#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "store/prune.h"
#include "store/reconcile.h"
#include "store/spool.h"

#define CHECK_MS 1000
#define RETENTION_EVERY_MS (3600 * 1000)
#define RESYNC_EVERY_MS (600 * 1000)
#define WARN_EVERY_MS (60 * 1000)
#define ADB_FILE_NAME "analysis.db"

/* What a budget deleted since its last warning line. */
struct budget_log {
	struct prune_counts c;
	int64_t last_ms;    /* when the last line was written; 0: never */
	bool pending;
	bool stuck_said;    /* "nothing left to prune" said already */
	bool vacuum_said;
};

struct store_maint {
	struct store_maint_config cfg;
	char *data_dir, *event_log, *db_path, *adb_path, *spool_dir;
	sqlite3 *db, *adb;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool kicked, stop;
	uint64_t full_requested, full_done;
	pthread_t thread;
	bool started;

	int64_t last_retention_ms, last_resync_ms;
	bool retention_ran;
	struct budget_log db_log, adb_log;
};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(struct store_maint *m, int prio, const char *f, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct store_maint *m, int prio, const char *f, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, f);
	vsnprintf(msg, sizeof(msg), f, ap);
	va_end(ap);
	if (m->cfg.log)
		m->cfg.log(m->cfg.log_ctx, prio, msg);
	else
		fprintf(stderr, "mxbait: %s\n", msg);
}

static void fmt_size(uint64_t b, char *out, size_t n)
{
	if (b >= 1024ULL * 1024 * 1024)
		snprintf(out, n, "%.1f GiB", (double)b / (1024.0 * 1024 * 1024));
	else if (b >= 1024 * 1024)
		snprintf(out, n, "%.1f MiB", (double)b / (1024.0 * 1024));
	else
		snprintf(out, n, "%.1f KiB", (double)b / 1024.0);
}

/* This connection's own transactions (the deletions) checkpoint the WAL at 1/8 of the
 * budget and cut it back to that. */
static void wal_bound(sqlite3 *db, uint64_t budget)
{
	if (!budget)
		return;
	struct prune_marks mk;
	prune_budget_marks(budget, &mk);
	uint64_t pages = mk.wal / 4096;
	if (pages < 16)
		pages = 16;
	if (pages > 1000)
		pages = 1000;
	char sql[128];
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=%llu; PRAGMA journal_size_limit=%llu",
		 (unsigned long long)pages, (unsigned long long)mk.wal);
	sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* Open analysis.db when it exists (the analyzer creates it); NULL otherwise. */
static sqlite3 *open_adb(struct store_maint *m)
{
	if (m->adb)
		return m->adb;
	struct stat st;
	if (stat(m->adb_path, &st) < 0)
		return NULL;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(m->adb_path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db, "PRAGMA secure_delete=FAST", NULL, NULL, NULL); /* see db.c */
	wal_bound(db, m->cfg.analysis_budget);
	m->adb = db;
	return db;
}

static void add_counts(struct prune_counts *a, const struct prune_counts *b)
{
	a->events += b->events;
	a->auth_attempts += b->auth_attempts;
	a->probes += b->probes;
	a->sessions += b->sessions;
	a->messages += b->messages;
	a->analysis_messages += b->analysis_messages;
	a->spool_done += b->spool_done;
	a->spool_files += b->spool_files;
	a->spool_bytes += b->spool_bytes;
}

static void flush_budget_log(struct store_maint *m, struct budget_log *l, const char *key,
			     const char *file, uint64_t budget, bool force)
{
	int64_t now = mono_ms();
	if (!l->pending || (!force && l->last_ms && now - l->last_ms < WARN_EVERY_MS))
		return;
	char b[32];
	fmt_size(budget, b, sizeof(b));
	if (l->c.analysis_messages)
		say(m, LOG_WARNING, "%s %s reached: deleted the oldest %lld analysed messages "
		    "to make room (raise %s to keep more)", key, b,
		    (long long)l->c.analysis_messages, key);
	else
		say(m, LOG_WARNING, "%s %s reached (%s): deleted the oldest %lld events, %lld "
		    "auth attempts, %lld probes, %lld sessions to make room; recording goes on "
		    "(raise %s to keep more)", key, b, file, (long long)l->c.events,
		    (long long)l->c.auth_attempts, (long long)l->c.probes,
		    (long long)l->c.sessions, key);
	memset(&l->c, 0, sizeof(l->c));
	l->pending = false;
	l->last_ms = now;
}

static void check_db_budget(struct store_maint *m)
{
	uint64_t budget = m->cfg.database_budget;
	if (!budget || !m->db)
		return;
	struct prune_counts c = {0};
	bool stuck = false;
	if (m->cfg.es) {
		/* The event writer enforces it (eventstore_set_db_budget): report. */
		eventstore_take_pruned(m->cfg.es, &c, &stuck);
	} else {
		int64_t content = prune_content_bytes(m->db);
		struct prune_marks mk;
		prune_budget_marks(budget, &mk);
		if (content >= 0 && (uint64_t)content > mk.trigger) {
			char *err = NULL;
			int r = prune_db_to_size(m->db, (int64_t)mk.target, &c, &err);
			if (r < 0)
				say(m, LOG_WARNING, "database_budget: pruning %s: %s", m->db_path,
				    err ? err : "?");
			stuck = r == 0;
			free(err);
		}
	}
	if (stuck && !m->db_log.stuck_said) {
		char b[32];
		fmt_size(budget, b, sizeof(b));
		say(m, LOG_WARNING, "database_budget %s: %s holds more than that in rows that are "
		    "never pruned for space (messages, accounts): raise it", b, m->db_path);
		m->db_log.stuck_said = true;
	}
	add_counts(&m->db_log.c, &c);
	if (c.events || c.auth_attempts || c.probes || c.sessions)
		m->db_log.pending = true;
	flush_budget_log(m, &m->db_log, "database_budget", MXB_DB_FILE, budget, false);
	/* A file bigger than the budget allows (the budget was lowered): pages back. */
	struct prune_marks mk;
	prune_budget_marks(budget, &mk);
	struct stat st;
	if (stat(m->db_path, &st) == 0 && (uint64_t)st.st_size + 2 * mk.wal > budget) {
		if (prune_shrink(m->db, m->db_path, mk.trigger) == 0 && !m->db_log.vacuum_said) {
			say(m, LOG_WARNING, "%s is bigger than database_budget and cannot shrink "
			    "while it runs: stop mxbait and run mxbait prune --vacuum", m->db_path);
			m->db_log.vacuum_said = true;
		}
	}
}

static void check_adb_budget(struct store_maint *m)
{
	uint64_t budget = m->cfg.analysis_budget;
	if (!budget)
		return;
	sqlite3 *adb = open_adb(m);
	if (!adb)
		return;
	int64_t content = prune_content_bytes(adb);
	struct prune_marks mk;
	prune_budget_marks(budget, &mk);
	if (content >= 0 && (uint64_t)content > mk.trigger) {
		struct prune_counts c = {0};
		char *err = NULL;
		int r = prune_adb_to_size(adb, m->adb_path, (int64_t)mk.target, (int64_t)mk.wal,
					  &c, &err);
		if (r < 0)
			say(m, LOG_WARNING, "analysis_budget: pruning %s: %s", m->adb_path,
			    err ? err : "?");
		free(err);
		add_counts(&m->adb_log.c, &c);
		if (c.analysis_messages)
			m->adb_log.pending = true;
	}
	/* The analyzer checkpoints at SQLite's default (1000 pages); a WAL past the mark is
	 * checkpointed and cut back from here. */
	prune_wal_bound(adb, m->adb_path, (int64_t)mk.wal);
	struct stat st;
	flush_budget_log(m, &m->adb_log, "analysis_budget", ADB_FILE_NAME, budget, false);
	if (stat(m->adb_path, &st) == 0 && (uint64_t)st.st_size + 2 * mk.wal > budget &&
	    prune_shrink(adb, m->adb_path, mk.trigger) == 0 && !m->adb_log.vacuum_said) {
		say(m, LOG_WARNING, "%s is bigger than analysis_budget and cannot shrink while it "
		    "runs: stop mxbait and run mxbait prune --vacuum", m->adb_path);
		m->adb_log.vacuum_said = true;
	}
}

static void run_retention(struct store_maint *m)
{
	if (!m->cfg.retention_ms)
		return;
	int64_t cutoff = mxb_now_us() - (int64_t)m->cfg.retention_ms * 1000;
	struct prune_counts c = {0};
	struct prune_names nm = {.c = &c};
	long files = m->cfg.spool ? spool_expire(m->cfg.spool, cutoff, prune_names_add, &nm)
				  : spool_dir_expire(m->spool_dir, cutoff, false, prune_names_add, &nm);
	if (files < 0)
		say(m, LOG_WARNING, "retention: spool %s: %s", m->spool_dir, strerror(errno));
	sqlite3 *adb = open_adb(m);
	prune_names_forget(adb, &nm); /* in transactions of a chunk each */
	prune_names_free(&nm);
	char *err = NULL;
	if (m->db && prune_db_before(m->db, cutoff, true, false, &c, &err) < 0)
		say(m, LOG_WARNING, "retention: %s: %s", m->db_path, err ? err : "?");
	free(err);
	err = NULL;
	if (adb && prune_adb_before(adb, cutoff, false, &c, &err) < 0)
		say(m, LOG_WARNING, "retention: %s: %s", m->adb_path, err ? err : "?");
	free(err);
	if (c.events || c.auth_attempts || c.probes || c.sessions || c.messages ||
	    c.analysis_messages || c.spool_files) {
		char ts[40];
		mxb_format_ts(cutoff, ts, sizeof(ts));
		say(m, LOG_INFO, "retention: deleted what is older than %s: %lld spool files, "
		    "%lld messages, %lld events, %lld auth attempts, %lld probes, %lld sessions, "
		    "%lld analysed messages", ts, (long long)c.spool_files,
		    (long long)c.messages, (long long)c.events, (long long)c.auth_attempts,
		    (long long)c.probes, (long long)c.sessions, (long long)c.analysis_messages);
	}
}

static void pass(struct store_maint *m, bool full)
{
	int64_t now = mono_ms();
	check_db_budget(m);
	check_adb_budget(m);
	if (full || !m->retention_ran || now - m->last_retention_ms >= RETENTION_EVERY_MS) {
		run_retention(m);
		m->retention_ran = true;
		m->last_retention_ms = now;
	}
	if (m->cfg.spool && (full || now - m->last_resync_ms >= RESYNC_EVERY_MS)) {
		spool_resync(m->cfg.spool);
		m->last_resync_ms = now;
	}
}

static void *maint_thread(void *arg)
{
	struct store_maint *m = arg;
	pthread_setname_np(pthread_self(), "mxb-maint");
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		if (!m->kicked && m->full_requested == m->full_done) {
			struct timespec dl;
			clock_gettime(CLOCK_MONOTONIC, &dl);
			dl.tv_sec += CHECK_MS / 1000;
			pthread_cond_timedwait(&m->cv, &m->mu, &dl);
		}
		if (m->stop)
			break;
		uint64_t want = m->full_requested;
		bool full = want != m->full_done;
		m->kicked = false;
		pthread_mutex_unlock(&m->mu);
		pass(m, full);
		pthread_mutex_lock(&m->mu);
		m->full_done = want;
		pthread_cond_broadcast(&m->cv);
	}
	pthread_mutex_unlock(&m->mu);
	flush_budget_log(m, &m->db_log, "database_budget", MXB_DB_FILE, m->cfg.database_budget,
			 true);
	flush_budget_log(m, &m->adb_log, "analysis_budget", ADB_FILE_NAME,
			 m->cfg.analysis_budget, true);
	return NULL;
}

static uint64_t file_bytes(const char *path)
{
	struct stat st;
	if (!path || stat(path, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

/* The budgets against the filesystem: warn when they cannot all be reached. */
static void check_space(struct store_maint *m)
{
	struct statvfs vfs;
	if (statvfs(m->data_dir, &vfs) < 0)
		return;
	uint64_t avail = (uint64_t)vfs.f_bavail * (vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize);
	const struct store_maint_config *c = &m->cfg;
	if (!c->database_budget || !c->analysis_budget || !c->spool_budget ||
	    (c->event_log && !c->event_log_budget)) {
		say(m, LOG_INFO, "a disk budget is 0 (no limit): the disk may fill");
		return;
	}
	uint64_t budgets = c->database_budget + c->analysis_budget + c->spool_budget +
			   (c->event_log ? c->event_log_budget : 0);
	/* What is already used counts towards its budget. */
	uint64_t used = prune_disk_bytes(m->db_path) + prune_disk_bytes(m->adb_path) +
			(c->spool ? spool_used(c->spool) : 0);
	if (c->event_log) {
		char old[4096];
		snprintf(old, sizeof(old), "%s.1", c->event_log);
		used += file_bytes(c->event_log) + file_bytes(old);
	}
	if (budgets > used && budgets - used > avail) {
		char b[32], a[32];
		fmt_size(budgets, b, sizeof(b));
		fmt_size(avail + used, a, sizeof(a));
		say(m, LOG_WARNING, "the disk budgets (spool, database, analysis, event log: %s) "
		    "exceed the %s the filesystem of %s has for them: it may fill before a "
		    "budget is reached; lower them", b, a, m->data_dir);
	}
}

struct store_maint *store_maint_start(const struct store_maint_config *cfg, char **err_r)
{
	struct store_maint *m = calloc(1, sizeof(*m));
	if (!m) {
		*err_r = strdup("maintenance: out of memory");
		return NULL;
	}
	m->cfg = *cfg;
	m->data_dir = strdup(cfg->data_dir);
	m->event_log = cfg->event_log ? strdup(cfg->event_log) : NULL;
	m->cfg.data_dir = m->data_dir;
	m->cfg.event_log = m->event_log;
	if (!m->data_dir || (cfg->event_log && !m->event_log) ||
	    asprintf(&m->db_path, "%s/%s", cfg->data_dir, MXB_DB_FILE) < 0 ||
	    asprintf(&m->adb_path, "%s/%s", cfg->data_dir, ADB_FILE_NAME) < 0 ||
	    asprintf(&m->spool_dir, "%s/%s", cfg->data_dir, MXB_SPOOL_DIR) < 0) {
		*err_r = strdup("maintenance: out of memory");
		store_maint_stop(&m);
		return NULL;
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (sqlite3_open_v2(m->db_path, &m->db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		if (asprintf(err_r, "maintenance: %s: %s", m->db_path,
			     m->db ? sqlite3_errmsg(m->db) : "cannot open") < 0)
			*err_r = NULL;
		store_maint_stop(&m);
		return NULL;
	}
	sqlite3_busy_timeout(m->db, 10000);
	sqlite3_exec(m->db, "PRAGMA secure_delete=FAST", NULL, NULL, NULL); /* see db.c */
	wal_bound(m->db, cfg->database_budget);
	if (cfg->es) {
		eventstore_set_log_budget(cfg->es, cfg->event_log_budget);
		eventstore_set_db_budget(cfg->es, cfg->database_budget);
	}
	if (cfg->es) {
		/* Before the daemon serves: what a crash left without a row (reconcile.h). */
		char *why = NULL;
		long n = store_reconcile(m->db_path, m->spool_dir, cfg->es, &why);
		if (n > 0)
			say(m, LOG_WARNING, "%ld spool files had no database row (a crash?): "
			    "indexed, event message_recovered", n);
		else if (n < 0)
			say(m, LOG_ERR, "indexing the spool: %s", why ? why : "?");
		free(why);
	}
	check_space(m);
	int e = pthread_create(&m->thread, NULL, maint_thread, m);
	if (e) {
		if (asprintf(err_r, "maintenance: cannot start its thread: %s", strerror(e)) < 0)
			*err_r = NULL;
		store_maint_stop(&m);
		return NULL;
	}
	m->started = true;
	return m;
}

void store_maint_kick(struct store_maint *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->mu);
	m->kicked = true;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
}

void store_maint_run_now(struct store_maint *m)
{
	if (!m || !m->started)
		return;
	pthread_mutex_lock(&m->mu);
	uint64_t want = ++m->full_requested;
	pthread_cond_signal(&m->cv);
	while (m->full_done < want && !m->stop)
		pthread_cond_wait(&m->cv, &m->mu);
	pthread_mutex_unlock(&m->mu);
}

void store_maint_stop(struct store_maint **mp)
{
	struct store_maint *m = mp ? *mp : NULL;
	if (!m)
		return;
	if (m->started) {
		pthread_mutex_lock(&m->mu);
		m->stop = true;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
		pthread_join(m->thread, NULL);
		pthread_mutex_destroy(&m->mu);
		pthread_cond_destroy(&m->cv);
	} else if (m->db_path) {
		pthread_mutex_destroy(&m->mu);
		pthread_cond_destroy(&m->cv);
	}
	sqlite3_close(m->db);
	sqlite3_close(m->adb);
	free(m->data_dir);
	free(m->event_log);
	free(m->db_path);
	free(m->adb_path);
	free(m->spool_dir);
	free(m);
	*mp = NULL;
}
