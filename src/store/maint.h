/*
 * maint: the daemon's storage maintenance job, a thread of its own (never the event
 * loop), with its own SQLite connections.
 *
 * Disk budgets (checked every second, and sooner when the event writer reports that
 * the log grew by a sixteenth of the database budget):
 *   mxbait.db    database_budget: the file, its -wal and -shm.  When the content passes
 *                3/4 of the budget the oldest rows are deleted (store/prune.h) down to
 *                5/8; the rest is room for the WAL (the writer checkpoints at 1/8 of the
 *                budget) and for what arrives between two checks.
 *   analysis.db  analysis_budget, the same way, oldest analysed messages first; the
 *                analyzer's WAL is checkpointed from here when it passes 1/8.
 *   events.jsonl event_log_budget: enforced by the writer itself
 *                (eventstore_set_log_budget: the log and its one old generation).
 * A budget reached is never a blind sensor: the oldest records go, new ones are still
 * written, and a warning is logged (at most one line a minute, with what was deleted).
 *
 * Retention (retention, e.g. 90 days; 0 = keep everything): once at start and then
 * every hour, spool files (new/ and cur/) last written before now - retention are
 * deleted through the spool (their space returns to spool_budget), then their
 * analysis.db spool_done rows, the mxbait.db rows older than that (events,
 * auth_attempts, probes, sessions, messages) and the analysis.db messages analysed
 * before it.  Every ten minutes the spool recounts its directories (spool_resync), so
 * files deleted by `mxbait prune` while the daemon runs free their space.
 *
 * At start (in store_maint_start, before the daemon serves) it indexes the spool files
 * a crash left without a database row (store/reconcile.h), and warns when the budgets
 * together exceed the space the filesystem has for them (the disk would fill before a
 * budget is reached).
 */
#ifndef MXB_STORE_MAINT_H
#define MXB_STORE_MAINT_H

#include <stdint.h>

struct eventstore;
struct spool;
struct store_maint;

struct store_maint_config {
	const char *data_dir;        /* mxbait.db and analysis.db live here */
	const char *event_log;       /* the JSON-lines log (NULL: none) */
	struct eventstore *es;       /* may be NULL (tests) */
	struct spool *spool;         /* may be NULL */
	uint64_t database_budget;    /* bytes; 0: none */
	uint64_t analysis_budget;
	uint64_t event_log_budget;
	uint64_t spool_budget;       /* only for the start-up space check */
	uint64_t retention_ms;       /* 0: keep everything */
	/* Where warnings and notes go (prio: LOG_WARNING, LOG_INFO from <syslog.h>);
	 * NULL: stderr. */
	void (*log)(void *ctx, int prio, const char *msg);
	void *log_ctx;
};

/* Reconcile the spool with mxbait.db (when es is given), then start the job (its
 * thread).  NULL with *err_r (malloc'd) on failure. */
struct store_maint *store_maint_start(const struct store_maint_config *cfg, char **err_r);
/* Look at the budgets now (thread-safe, never blocks). */
void store_maint_kick(struct store_maint *m);
/* Run one full pass now and wait for it (tests): budgets and retention. */
void store_maint_run_now(struct store_maint *m);
/* Stop the thread (waits for the pass in progress) and free everything. */
void store_maint_stop(struct store_maint **m);

#endif
