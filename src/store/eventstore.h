/*
 * eventstore: where events go (SQLite, WAL mode, plus a JSON-lines log).
 *
 * eventstore_submit() is cheap, thread-safe and never blocks on disk: the event is put
 * on a queue that a writer thread drains, committing in batches (one SQLite
 * transaction and one write(2) to the JSON-lines log per batch, every ~50 ms or 512
 * events).  Besides the raw events table the writer maintains the tables derived from
 * the events (sessions, messages, auth_attempts, probes) that the CLI reads, binding
 * the event's fields directly.  The schema is versioned with PRAGMA user_version and
 * migrated forward on open (see store/db.h).  Account saves carrying a password are
 * committed at once with synchronous=FULL (a crash never forgets a cracked account).
 */
#ifndef MXB_STORE_EVENTSTORE_H
#define MXB_STORE_EVENTSTORE_H

#include <stdbool.h>
#include <stdint.h>

struct mxb_event;
struct eventstore;
struct deception_account;

/* db_path: the SQLite file; jsonl_path: the JSON-lines log (NULL: none). */
struct eventstore *eventstore_open(const char *db_path, const char *jsonl_path,
				   char **err_r);
/* Takes ownership of ev (stamped with the common fields). */
void eventstore_submit(struct eventstore *es, struct mxb_event *ev);
/* Save the state of a credential-policy account (deceive/deception.h: the policy's
 * save hook).  Copies the fields (the strings too) and queues them like an event:
 * thread-safe, never blocks on disk.  The writer upserts the accounts table (by
 * username; the latest save wins, updated_us = the time of this call) in the same
 * transaction as the events of its batch.  Load them back with db_load_accounts(). */
void eventstore_save_account(struct eventstore *es, const struct deception_account *a);
/* The same with the signature of the policy's save hook (deception_save_fn):
 * cfg.save = eventstore_account_hook, cfg.save_ctx = es. */
void eventstore_account_hook(void *es, const struct deception_account *a);
/* Saves that must be durable at once (the first save of a cracked or fixed account's
 * password) are numbered in the order they were queued.  A host that must not answer
 * before such a save is on disk (a client told "235 Authentication successful" must
 * find the account after a crash) remembers eventstore_durable_queued() after the call
 * that made the save and holds its answer until eventstore_durable_done() reaches it.
 * "Done" means the writer finished with the save: committed with synchronous=FULL, or
 * given up on (a failed transaction is logged; the policy still holds the account), or
 * the writer stopped; so no host waits forever.  The notify function (NULL: none) is
 * called on the writer thread, with the store's lock held, whenever done advances: it
 * must only wake the host's loop (event_active()).  Set it from the loop thread; setting
 * NULL guarantees no call after the return. */
/* Test hook: MXBAIT_TEST_DURABLE_DELAY_MS=N in the environment makes the writer sleep N
 * ms before committing a batch with such a save (a slow disk). */
uint64_t eventstore_durable_queued(struct eventstore *es);
uint64_t eventstore_durable_done(struct eventstore *es);
void eventstore_set_durable_notify(struct eventstore *es, void (*fn)(void *ctx), void *ctx);
/* Block until everything submitted (events and account saves) so far is committed
 * (tests, shutdown).  Never waits for a writer thread that is not running: returns
 * false when something submitted could not be committed that way. */
bool eventstore_flush(struct eventstore *es);
void eventstore_close(struct eventstore **es);

/* Counters since open (for stats and tests).  Events refused because the queue was
 * full are counted in dropped (and added to the "events_dropped" counter in the
 * database); events lost to a failed transaction in failed. */
struct eventstore_stats {
	unsigned long long submitted, written, dropped, failed, batches, queued;
	unsigned long long durable_commits; /* batches committed with synchronous=FULL */
	/* Batch commit latency (JSON-lines write + SQLite transaction), for /metrics:
	 * commit_le[i] counts the batches that took at most EVENTSTORE_COMMIT_BUCKETS_US[i]
	 * (cumulative, as Prometheus histograms are); commit_us_sum their total time. */
	unsigned long long commit_le[8], commit_us_sum;
};
#define EVENTSTORE_COMMIT_BUCKETS 8
extern const unsigned long long EVENTSTORE_COMMIT_BUCKETS_US[EVENTSTORE_COMMIT_BUCKETS];
void eventstore_get_stats(struct eventstore *es, struct eventstore_stats *st);
/* An observer sees every accepted event, on the submitting thread, just before it is
 * queued (metrics, live updates): it must be quick and must not keep ev.  Set it
 * before any event is submitted; NULL removes it. */
typedef void (*eventstore_observer_fn)(void *ctx, const struct mxb_event *ev);
void eventstore_set_observer(struct eventstore *es, eventstore_observer_fn fn, void *ctx);
/* Bound of the in-memory queue (0: the default, 1,000,000 events). */
void eventstore_set_queue_limit(struct eventstore *es, unsigned long limit);
/* Bound the JSON-lines log: the log and its previous generation "<log>.1" together
 * hold at most bytes (0: no bound).  Thread-safe; takes effect at the next batch. */
void eventstore_set_log_budget(struct eventstore *es, uint64_t bytes);
/* Keep mxbait.db with its -wal and -shm within bytes (0: no bound): after each batch
 * the writer looks at the database's content, and past 3/4 of the budget deletes the
 * oldest rows (events, auth_attempts, probes, sessions: store/prune.h) down to 5/8; it
 * checkpoints its WAL at 1/8.  Thread-safe.  What it deleted is collected for the
 * maintenance job's warning: eventstore_take_pruned() hands it over and resets it
 * (stuck_r: the last pass found only rows that are never pruned above the target);
 * returns whether anything was deleted. */
void eventstore_set_db_budget(struct eventstore *es, uint64_t bytes);
struct prune_counts;
bool eventstore_take_pruned(struct eventstore *es, struct prune_counts *c, bool *stuck_r);
/* Reopen the JSON-lines log at its path before the next write (SIGHUP, after logrotate
 * renamed it): the writer thread makes the new file, 0600, between two batches, so a
 * batch's lines land whole in the old file or the new one; a failure is logged on
 * stderr and the writer keeps the old file.  A store opened without a log keeps none.
 * Thread-safe, async-signal-unsafe: call it from the loop. */
void eventstore_reopen_log(struct eventstore *es);
#endif
