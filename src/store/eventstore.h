/*
 * eventstore: where events go (SQLite, WAL mode, plus a JSON-lines log).
 *
 * eventstore_submit() is cheap, thread-safe and never blocks on disk: the event is put
 * on a queue that a writer thread drains, committing in batches (one SQLite
 * transaction and one write(2) to the JSON-lines log per batch, every ~50 ms or 512
 * events).  Besides the raw events table the writer maintains the sessions and
 * messages tables that the CLI reads.  The schema is versioned with
 * PRAGMA user_version and migrated forward on open (see store/db.h).
 */
#ifndef MXB_STORE_EVENTSTORE_H
#define MXB_STORE_EVENTSTORE_H

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
/* Block until everything submitted (events and account saves) so far is committed
 * (tests, shutdown). */
void eventstore_flush(struct eventstore *es);
void eventstore_close(struct eventstore **es);
/* Reopen the JSON-lines log at jsonl_path (SIGHUP, after logrotate renamed it):
 * created 0600 when missing; lines of the batch being written at that moment land in
 * the old file or the new one, whole.  A store opened without a log keeps none
 * (turning the log on or off needs a restart).  0, or -1 with *err_r (malloc'd). */
int eventstore_reopen_log(struct eventstore *es, const char *jsonl_path, char **err_r);

/* Counters since open (for stats and tests).  Events refused because the queue was
 * full are counted in dropped (and added to the "events_dropped" counter in the
 * database); events lost to a failed transaction in failed. */
struct eventstore_stats {
	unsigned long long submitted, written, dropped, failed, batches, queued;
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

#endif
