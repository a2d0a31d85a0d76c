/*
 * eventstore: events to SQLite and a JSON-lines log, from a writer thread (see
 * eventstore.h).
 *
 * Promises:
 * - eventstore_submit() takes a mutex, appends a pointer to an in-memory queue and
 *   signals; it never touches the disk.  The queue is bounded (default 1,000,000
 *   events, far above any sane backlog); past the bound an event is dropped, counted,
 *   and the count is written to the counters table ("events_dropped"), which
 *   `mxbait stats` shows.  Nothing is dropped silently.
 * - The writer commits batches: a batch closes 50 ms after its first event or at 512
 *   events (or at once on flush/close).  Per batch: one write(2) of all its JSON lines
 *   to the log (O_APPEND), one SQLite transaction inserting the events and updating
 *   the sessions and messages tables.
 * - The derived tables are updated from the event's own JSON with json_extract(), so
 *   what the CLI shows is exactly what the event said.
 * - eventstore_flush() returns once everything submitted before it is committed;
 *   eventstore_close() commits everything still queued.
 */
#include "store/eventstore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/db.h"
#include "deceive/deception.h"
#include "store/event.h"
#include "util/buf.h"

#define BATCH_MAX 512
#define BATCH_WAIT_NS (50 * 1000000L)
#define QUEUE_LIMIT_DEFAULT 1000000

/* Derived-table maintenance: SQL run for an event id, with ?1 = the event JSON,
 * ?2 = session, ?3 = ts_us, ?4 = src_ip.  Run after the session row exists. */
struct derived {
	const char *event;
	const char *sql;
};

static const struct derived derived_sql[] = {
	{"connect", "UPDATE sessions SET dst_ip = json_extract(?1, '$.dst_ip'),"
		    " dst_port = json_extract(?1, '$.dst_port'), started_us = ?3,"
		    " orig_dst_ip = json_extract(?1, '$.orig_dst_ip'),"
		    " orig_dst_port = json_extract(?1, '$.orig_dst_port')"
		    " WHERE session = ?2"},
	/* The guard's decisions (session = the decision id; db.c step 4 -> 5). */
	{"decision", "INSERT INTO decisions(id, source, action, reason, origin, evidence,"
		     " created_us, expires_us, level) SELECT ?2, json_extract(?1, '$.source'),"
		     " json_extract(?1, '$.action'), json_extract(?1, '$.reason'),"
		     " json_extract(?1, '$.origin'), json_extract(?1, '$.evidence'), ?3,"
		     " CASE WHEN json_extract(?1, '$.duration_ms') IS NULL THEN 0"
		     " ELSE ?3 + json_extract(?1, '$.duration_ms') * 1000 END,"
		     " json_extract(?1, '$.level') WHERE json_extract(?1, '$.op') = 'add'"
		     " ON CONFLICT(id) DO NOTHING"},
	{"decision", "UPDATE decisions SET ended_us = ?3 WHERE id = ?2"
		     " AND json_extract(?1, '$.op') = 'del' AND ended_us IS NULL"},
	{"tls", "UPDATE sessions SET tls = json_extract(?1, '$.version') WHERE session = ?2"},
	{"helo", "UPDATE sessions SET helo = json_extract(?1, '$.name') WHERE session = ?2"},
	{"auth", "UPDATE sessions SET auth_attempts = auth_attempts + 1,"
		 " auth_user = CASE WHEN json_extract(?1, '$.success')"
		 " THEN json_extract(?1, '$.username') ELSE auth_user END WHERE session = ?2"},
	{"mail", "UPDATE sessions SET mails = mails + 1 WHERE session = ?2"},
	{"rcpt", "UPDATE sessions SET rcpts = rcpts + 1 WHERE session = ?2"},
	{"offence", "UPDATE sessions SET offences = offences + 1 WHERE session = ?2"},
	{"message", "UPDATE sessions SET messages = messages + 1 WHERE session = ?2"},
	{"message", "INSERT INTO messages(queue_id, session, ts_us, src_ip, spool, sha256, size,"
		    " sender, recipients, n_rcpt, method, auth_user, tls) VALUES("
		    " coalesce(json_extract(?1, '$.queue_id'), ''), ?2, ?3, ?4,"
		    " json_extract(?1, '$.spool'), json_extract(?1, '$.sha256'),"
		    " json_extract(?1, '$.size'), json_extract(?1, '$.sender'),"
		    " json_extract(?1, '$.recipients'),"
		    " coalesce(json_extract(?1, '$.recipient_count'),"
		    " json_array_length(?1, '$.recipients'), 0),"
		    " json_extract(?1, '$.method'), json_extract(?1, '$.auth_user'),"
		    " json_extract(?1, '$.tls'))"},
	/* Brute-force intelligence (db.c step 3 -> 4 backfills the same rows). */
	{"auth", "INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto, mechanism,"
		 " username, password, success, result) VALUES(?3, ?2, ?4, mxb_prefix(?4),"
		 " json_extract(?1, '$.proto'), json_extract(?1, '$.mechanism'),"
		 " json_extract(?1, '$.username'), json_extract(?1, '$.password'),"
		 " coalesce(json_extract(?1, '$.success'), 0), json_extract(?1, '$.result'))"},
	/* A probe: RCPT or VRFY/EXPN of a session not (yet) authenticated.  The auth rows
	 * above ran first for earlier events of the batch, so auth_user is current. */
	{"rcpt", "INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address,"
		 " accepted, reply) SELECT ?3, ?2, ?4, mxb_prefix(?4), json_extract(?1, '$.proto'),"
		 " 'rcpt', json_extract(?1, '$.recipient'),"
		 " coalesce(json_extract(?1, '$.accepted'), 0), json_extract(?1, '$.reply')"
		 " WHERE (SELECT auth_user FROM sessions WHERE session = ?2) IS NULL"},
	{"vrfy", "INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address,"
		 " accepted, reply) SELECT ?3, ?2, ?4, mxb_prefix(?4), json_extract(?1, '$.proto'),"
		 " lower(coalesce(json_extract(?1, '$.verb'), 'vrfy')),"
		 " json_extract(?1, '$.argument'),"
		 " coalesce(json_extract(?1, '$.reply') BETWEEN 200 AND 299, 0),"
		 " json_extract(?1, '$.reply')"
		 " WHERE (SELECT auth_user FROM sessions WHERE session = ?2) IS NULL"},
	{"disconnect", "UPDATE sessions SET ended_us = ?3,"
		       " duration_ms = json_extract(?1, '$.duration_ms'),"
		       " reason = json_extract(?1, '$.reason'),"
		       " state = json_extract(?1, '$.state'),"
		       " commands = coalesce(json_extract(?1, '$.commands'), commands),"
		       " errors = coalesce(json_extract(?1, '$.errors'), errors),"
		       " messages = max(messages, coalesce(json_extract(?1, '$.messages'), 0))"
		       " WHERE session = ?2"},
};

#define N_DERIVED (sizeof(derived_sql) / sizeof(derived_sql[0]))

/* A saved state of a policy account, copied at eventstore_save_account() time. */
struct acct_rec {
	char *username, *password;
	unsigned failures, threshold;
	int64_t cracked_us;
	int fixed;
	int64_t updated_us;
};

struct eventstore {
	sqlite3 *db;
	int jsonl_fd;
	sqlite3_stmt *ins_event;
	sqlite3_stmt *ins_session;
	sqlite3_stmt *derived[N_DERIVED];
	sqlite3_stmt *upsert_account;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* writer waits for events */
	pthread_cond_t done_cv; /* flushers wait for progress */
	struct mxb_event **queue;
	size_t q_head, n_queue, alloc_queue; /* queue[q_head .. q_head+n_queue) */
	size_t queue_limit;
	uint64_t accepted;      /* events queued since open */
	uint64_t done;          /* events the writer finished with */
	uint64_t dropped;       /* refused by the bound, since open */
	uint64_t dropped_recorded;
	uint64_t failed;        /* lost to a failed transaction, since open */
	uint64_t batches;
	/* Account saves: a second queue, drained with every batch. */
	struct acct_rec *accts;
	size_t n_accts, alloc_accts;
	uint64_t accts_accepted, accts_done, accts_dropped, accts_dropped_recorded;
	int flushers;
	bool stop;
	/* metrics (eventstore_set_observer, commit latency) */
	eventstore_observer_fn observer;
	void *observer_ctx;
	unsigned long long commit_le[EVENTSTORE_COMMIT_BUCKETS], commit_us_sum;
	pthread_t thread;
	bool thread_started;
};

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

static void *writer_thread(void *arg);

static void free_stmts(struct eventstore *es)
{
	sqlite3_finalize(es->ins_event);
	sqlite3_finalize(es->ins_session);
	sqlite3_finalize(es->upsert_account);
	for (size_t i = 0; i < N_DERIVED; i++)
		sqlite3_finalize(es->derived[i]);
}

struct eventstore *eventstore_open(const char *db_path, const char *jsonl_path, char **err_r)
{
	char *dummy = NULL;
	if (!err_r)
		err_r = &dummy;
	*err_r = NULL;
	struct eventstore *es = calloc(1, sizeof(*es));
	if (!es) {
		*err_r = fmt("eventstore: out of memory");
		return NULL;
	}
	es->jsonl_fd = -1;
	es->queue_limit = QUEUE_LIMIT_DEFAULT;
	pthread_mutex_init(&es->mu, NULL);
	pthread_cond_init(&es->cv, NULL);
	pthread_cond_init(&es->done_cv, NULL);
	if (db_open_rw(db_path, &es->db, err_r) != DB_OK)
		goto fail;
	int rc = sqlite3_prepare_v2(es->db,
				    "INSERT INTO events(ts, ts_us, event, session, src_ip, src_port,"
				    " proto, json) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
				    -1, &es->ins_event, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(es->db,
					"INSERT INTO sessions(session, proto, src_ip, src_port,"
					" started_us) VALUES(?, ?, ?, ?, ?)"
					" ON CONFLICT(session) DO NOTHING",
					-1, &es->ins_session, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < N_DERIVED; i++)
		rc = sqlite3_prepare_v2(es->db, derived_sql[i].sql, -1, &es->derived[i], NULL);
	/* Latest state wins: saves are applied in the order they were made. */
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(es->db,
					"INSERT INTO accounts(username, password, failures, threshold,"
					" cracked_us, fixed, updated_us) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"
					" ON CONFLICT(username) DO UPDATE SET password = excluded.password,"
					" failures = excluded.failures, threshold = excluded.threshold,"
					" cracked_us = excluded.cracked_us, fixed = excluded.fixed,"
					" updated_us = excluded.updated_us",
					-1, &es->upsert_account, NULL);
	if (rc != SQLITE_OK) {
		*err_r = fmt("%s: %s", db_path, sqlite3_errmsg(es->db));
		goto fail;
	}
	if (jsonl_path) {
		es->jsonl_fd = open(jsonl_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (es->jsonl_fd < 0) {
			*err_r = fmt("%s: %s", jsonl_path, strerror(errno));
			goto fail;
		}
	}
	int e = pthread_create(&es->thread, NULL, writer_thread, es);
	if (e) {
		*err_r = fmt("eventstore: cannot start the writer thread: %s", strerror(e));
		goto fail;
	}
	es->thread_started = true;
	return es;
fail:
	free(dummy);
	eventstore_close(&es);
	return NULL;
}

const unsigned long long EVENTSTORE_COMMIT_BUCKETS_US[EVENTSTORE_COMMIT_BUCKETS] = {
	1000, 5000, 10000, 25000, 50000, 100000, 250000, 1000000};

void eventstore_set_observer(struct eventstore *es, eventstore_observer_fn fn, void *ctx)
{
	pthread_mutex_lock(&es->mu);
	es->observer = fn;
	es->observer_ctx = ctx;
	pthread_mutex_unlock(&es->mu);
}

void eventstore_submit(struct eventstore *es, struct mxb_event *ev)
{
	if (!ev)
		return;
	if (!es) {
		mxb_event_free(&ev);
		return;
	}
	if (!ev->ts_us)
		ev->ts_us = mxb_now_us();
	if (es->observer)
		es->observer(es->observer_ctx, ev);
	pthread_mutex_lock(&es->mu);
	if (es->n_queue >= es->queue_limit) {
		es->dropped++;
		pthread_mutex_unlock(&es->mu);
		mxb_event_free(&ev);
		return;
	}
	if (es->q_head + es->n_queue == es->alloc_queue) {
		if (es->q_head && es->q_head >= es->alloc_queue / 2) {
			/* Amortised: half the array is free at the front. */
			memmove(es->queue, es->queue + es->q_head, es->n_queue * sizeof(*es->queue));
			es->q_head = 0;
		} else {
			size_t n = es->alloc_queue ? es->alloc_queue * 2 : 1024;
			struct mxb_event **q = realloc(es->queue, n * sizeof(*q));
			if (!q) {
				es->dropped++;
				pthread_mutex_unlock(&es->mu);
				mxb_event_free(&ev);
				return;
			}
			es->queue = q;
			es->alloc_queue = n;
		}
	}
	es->queue[es->q_head + es->n_queue++] = ev;
	es->accepted++;
	/* Wake the writer for the first event of a batch and when a batch is full. */
	if (es->n_queue == 1 || es->n_queue == BATCH_MAX)
		pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
}

static void acct_rec_free(struct acct_rec *r)
{
	free(r->username);
	free(r->password);
	r->username = r->password = NULL;
}

void eventstore_save_account(struct eventstore *es, const struct deception_account *a)
{
	if (!es || !a || !a->username)
		return;
	struct acct_rec r = {
		.username = strdup(a->username),
		.password = a->password ? strdup(a->password) : NULL,
		.failures = a->failures,
		.threshold = a->threshold,
		.cracked_us = a->cracked_us,
		.fixed = a->fixed,
		.updated_us = mxb_now_us(),
	};
	pthread_mutex_lock(&es->mu);
	if (!r.username || (a->password && !r.password) || es->n_accts >= es->queue_limit)
		goto drop;
	if (es->n_accts == es->alloc_accts) {
		size_t n = es->alloc_accts ? es->alloc_accts * 2 : 64;
		struct acct_rec *q = realloc(es->accts, n * sizeof(*q));
		if (!q)
			goto drop;
		es->accts = q;
		es->alloc_accts = n;
	}
	es->accts[es->n_accts++] = r;
	es->accts_accepted++;
	if (es->n_accts == 1)
		pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
	return;
drop:
	/* Counted like dropped events ("accounts_dropped"); the policy still holds the
	 * account in memory, and its next change is saved again. */
	es->accts_dropped++;
	pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
	acct_rec_free(&r);
}

void eventstore_account_hook(void *es, const struct deception_account *a)
{
	eventstore_save_account(es, a);
}

void eventstore_flush(struct eventstore *es)
{
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	uint64_t target = es->accepted;
	uint64_t acct_target = es->accts_accepted;
	es->flushers++;
	pthread_cond_signal(&es->cv);
	while ((es->done < target || es->accts_done < acct_target) && es->thread_started)
		pthread_cond_wait(&es->done_cv, &es->mu);
	es->flushers--;
	pthread_mutex_unlock(&es->mu);
}

void eventstore_close(struct eventstore **esp)
{
	struct eventstore *es = esp ? *esp : NULL;
	if (!es)
		return;
	if (es->thread_started) {
		pthread_mutex_lock(&es->mu);
		es->stop = true;
		pthread_cond_signal(&es->cv);
		pthread_mutex_unlock(&es->mu);
		pthread_join(es->thread, NULL);
	}
	for (size_t i = 0; i < es->n_queue; i++)
		mxb_event_free(&es->queue[es->q_head + i]);
	free(es->queue);
	for (size_t i = 0; i < es->n_accts; i++)
		acct_rec_free(&es->accts[i]);
	free(es->accts);
	free_stmts(es);
	if (es->db)
		sqlite3_close(es->db);
	if (es->jsonl_fd >= 0)
		close(es->jsonl_fd);
	pthread_mutex_destroy(&es->mu);
	pthread_cond_destroy(&es->cv);
	pthread_cond_destroy(&es->done_cv);
	free(es);
	*esp = NULL;
}

void eventstore_get_stats(struct eventstore *es, struct eventstore_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	st->submitted = es->accepted + es->dropped;
	st->written = es->done - es->failed;
	st->dropped = es->dropped;
	st->failed = es->failed;
	st->batches = es->batches;
	st->queued = es->n_queue;
	memcpy(st->commit_le, es->commit_le, sizeof(st->commit_le));
	st->commit_us_sum = es->commit_us_sum;
	pthread_mutex_unlock(&es->mu);
}

void eventstore_set_queue_limit(struct eventstore *es, unsigned long limit)
{
	pthread_mutex_lock(&es->mu);
	es->queue_limit = limit ? limit : QUEUE_LIMIT_DEFAULT;
	pthread_mutex_unlock(&es->mu);
}

/* ---- writer thread ---- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int store_one(struct eventstore *es, const struct mxb_event *ev, const char *json,
		     size_t json_len)
{
	char ts[40];
	mxb_format_ts(ev->ts_us, ts, sizeof(ts));
	sqlite3_stmt *st = es->ins_event;
	sqlite3_bind_text(st, 1, ts, -1, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, ev->ts_us);
	sqlite3_bind_text(st, 3, ev->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ev->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, ev->src_ip, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, (int)ev->src_port);
	sqlite3_bind_text(st, 7, ev->proto, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, json, (int)json_len, SQLITE_STATIC);
	if (step_reset(st) < 0)
		return -1;
	if (!ev->session[0])
		return 0;
	/* The guard's events carry an observation or decision id, not a session of ours:
	 * no sessions row, only their own tables. */
	bool guard = !strcmp(ev->proto, "guard");
	st = es->ins_session;
	if (guard)
		goto derived;
	sqlite3_bind_text(st, 1, ev->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, ev->proto, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ev->src_ip, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)ev->src_port);
	sqlite3_bind_int64(st, 5, ev->ts_us);
	if (step_reset(st) < 0)
		return -1;
derived:
	for (size_t i = 0; i < N_DERIVED; i++) {
		if (strcmp(derived_sql[i].event, ev->name))
			continue;
		st = es->derived[i];
		int np = sqlite3_bind_parameter_count(st);
		sqlite3_bind_text(st, 1, json, (int)json_len, SQLITE_STATIC);
		if (np >= 2)
			sqlite3_bind_text(st, 2, ev->session, -1, SQLITE_STATIC);
		if (np >= 3)
			sqlite3_bind_int64(st, 3, ev->ts_us);
		if (np >= 4)
			sqlite3_bind_text(st, 4, ev->src_ip, -1, SQLITE_STATIC);
		if (step_reset(st) < 0)
			return -1;
	}
	return 0;
}

static int store_account(struct eventstore *es, const struct acct_rec *r)
{
	sqlite3_stmt *st = es->upsert_account;
	sqlite3_bind_text(st, 1, r->username, -1, SQLITE_STATIC);
	if (r->password)
		sqlite3_bind_text(st, 2, r->password, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 2);
	sqlite3_bind_int64(st, 3, r->failures);
	sqlite3_bind_int64(st, 4, r->threshold);
	sqlite3_bind_int64(st, 5, r->cracked_us);
	sqlite3_bind_int(st, 6, r->fixed ? 1 : 0);
	sqlite3_bind_int64(st, 7, r->updated_us);
	return step_reset(st);
}

struct acct_batch {
	struct acct_rec *recs;
	size_t n;
	uint64_t new_drops;
};

/* Commit one batch (events, then account saves, in one transaction); returns the
 * number of events lost (0 on success). */
static size_t commit_batch(struct eventstore *es, struct mxb_event **evs, size_t n,
			   uint64_t new_drops, const struct acct_batch *ab, struct buf *lines,
			   size_t *offs)
{
	buf_reset(lines);
	for (size_t i = 0; i < n; i++) {
		offs[i] = lines->len;
		if (mxb_event_to_json(evs[i], lines) < 0 || buf_putc(lines, '\n') < 0)
			return n; /* out of memory: nothing sensible to do but count */
	}
	offs[n] = lines->len;
	if (es->jsonl_fd >= 0 && lines->len && write_all(es->jsonl_fd, lines->data, lines->len) < 0)
		fprintf(stderr, "mxbait: eventstore: writing the JSON-lines log: %s\n",
			strerror(errno));
	if (sqlite3_exec(es->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (store_one(es, evs[i], lines->data + offs[i], offs[i + 1] - offs[i] - 1) < 0)
			goto fail;
	for (size_t i = 0; i < ab->n; i++)
		if (store_account(es, &ab->recs[i]) < 0)
			goto fail;
	if (new_drops && db_counter_add(es->db, "events_dropped", (int64_t)new_drops) < 0)
		goto fail;
	if (ab->new_drops &&
	    db_counter_add(es->db, "accounts_dropped", (int64_t)ab->new_drops) < 0)
		goto fail;
	if (sqlite3_exec(es->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "mxbait: eventstore: batch of %zu events and %zu account saves not "
		"stored: %s\n", n, ab->n, sqlite3_errmsg(es->db));
	sqlite3_exec(es->db, "ROLLBACK", NULL, NULL, NULL);
	return n;
}

static void deadline_in(struct timespec *ts, long ns)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_nsec += ns;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static void *writer_thread(void *arg)
{
	struct eventstore *es = arg;
	struct buf lines;
	buf_init(&lines, 0);
	struct mxb_event **batch = malloc(BATCH_MAX * sizeof(*batch));
	size_t *offs = malloc((BATCH_MAX + 1) * sizeof(*offs));
	pthread_mutex_lock(&es->mu);
	while (batch && offs) {
#define NOTHING_TO_DO()                                                       \
	(!es->n_queue && !es->n_accts && es->dropped == es->dropped_recorded && \
	 es->accts_dropped == es->accts_dropped_recorded)
		while (NOTHING_TO_DO() && !es->stop)
			pthread_cond_wait(&es->cv, &es->mu);
		if (NOTHING_TO_DO() && es->stop)
			break;
#undef NOTHING_TO_DO
		/* Let the batch fill for up to 50 ms, unless someone waits for it. */
		if ((es->n_queue || es->n_accts) && es->n_queue < BATCH_MAX && !es->stop &&
		    !es->flushers) {
			struct timespec dl;
			deadline_in(&dl, BATCH_WAIT_NS);
			while (es->n_queue < BATCH_MAX && !es->stop && !es->flushers)
				if (pthread_cond_timedwait(&es->cv, &es->mu, &dl) == ETIMEDOUT)
					break;
		}
		size_t n = es->n_queue < BATCH_MAX ? es->n_queue : BATCH_MAX;
		if (n)
			memcpy(batch, es->queue + es->q_head, n * sizeof(*batch));
		es->q_head += n;
		es->n_queue -= n;
		if (!es->n_queue)
			es->q_head = 0;
		uint64_t new_drops = es->dropped - es->dropped_recorded;
		/* Every pending account save goes with this batch (they are small). */
		struct acct_batch ab = {es->accts, es->n_accts,
					es->accts_dropped - es->accts_dropped_recorded};
		es->accts = NULL;
		es->n_accts = es->alloc_accts = 0;
		pthread_mutex_unlock(&es->mu);

		struct timespec c0, c1;
		clock_gettime(CLOCK_MONOTONIC, &c0);
		size_t lost = commit_batch(es, batch, n, new_drops, &ab, &lines, offs);
		clock_gettime(CLOCK_MONOTONIC, &c1);
		unsigned long long took = (unsigned long long)((c1.tv_sec - c0.tv_sec) * 1000000LL +
							       (c1.tv_nsec - c0.tv_nsec) / 1000);
		for (size_t i = 0; i < n; i++)
			mxb_event_free(&batch[i]);
		for (size_t i = 0; i < ab.n; i++)
			acct_rec_free(&ab.recs[i]);
		free(ab.recs);

		pthread_mutex_lock(&es->mu);
		/* Drops are counted in memory (eventstore_get_stats) even when the batch
		 * that should have recorded them failed. */
		es->dropped_recorded += new_drops;
		es->accts_dropped_recorded += ab.new_drops;
		es->accts_done += ab.n;
		es->done += n;
		es->failed += lost;
		es->batches++;
		for (size_t b = 0; b < EVENTSTORE_COMMIT_BUCKETS; b++)
			if (took <= EVENTSTORE_COMMIT_BUCKETS_US[b])
				es->commit_le[b]++;
		es->commit_us_sum += took;
		pthread_cond_broadcast(&es->done_cv);
	}
	pthread_mutex_unlock(&es->mu);
	free(batch);
	free(offs);
	buf_free(&lines);
	return NULL;
}

int eventstore_reopen_log(struct eventstore *es, const char *jsonl_path, char **err_r)
{
	*err_r = NULL;
	if (es->jsonl_fd < 0 || !jsonl_path || !*jsonl_path)
		return 0;
	int fd = open(jsonl_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		*err_r = fmt("%s: %s", jsonl_path, strerror(errno));
		return -1;
	}
	/* The writer thread keeps using the same descriptor number: dup2 swaps the file
	 * under it atomically (a write in progress completes on the old file). */
	int rc = dup2(fd, es->jsonl_fd) < 0 ? -1 : 0;
	if (rc)
		*err_r = fmt("%s: dup2: %s", jsonl_path, strerror(errno));
	close(fd);
	return rc;
}
