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
 * - The writer commits batches: a batch closes 50 ms after its first event (measured
 *   on CLOCK_MONOTONIC: a wall-clock step neither stalls nor rushes it) or at 512
 *   events, or at once on flush/close or when a cracked account waits to be saved.
 *   Per batch: one write(2) of all its JSON lines to the log (O_APPEND), one SQLite
 *   transaction inserting the events and updating the derived tables.
 * - The derived tables (sessions, messages, auth_attempts, probes) are defined by the
 *   event contract: each column is an SQL expression over the event's fields, written
 *   below with named parameters (:field for an event field, :_ts_us, :_session,
 *   :_src_ip, :_proto, :_prefix for the common ones).  The fields are bound directly
 *   from the event's typed copy (struct mxb_event_fv), whose text forms are what
 *   json_extract() gives for the event's JSON, so a row is exactly what the backfill
 *   over the events table (db.c) computes from the stored JSON; a unit test checks
 *   that equality.  Re-parsing each event's JSON with json_extract() was about 20% of
 *   the daemon's CPU while capturing (docs/PERFORMANCE.md).
 * - A session's row is inserted once: the writer remembers the sessions it created
 *   (a small direct-mapped cache), so most events cost one INSERT into events plus
 *   their derived statements.
 * - A batch that saves a cracked (or fixed) account is committed with
 *   synchronous=FULL, so the account survives a power loss as soon as the commit
 *   returns; other batches use WAL with synchronous=NORMAL (a crash of the machine
 *   may lose the last batches, a crash of the process loses nothing committed).
 * - The writer thread is running when eventstore_open() returns (it waits for the
 *   thread to say so), and eventstore_flush() never waits for a writer that has
 *   stopped: events submitted to a store without a writer are counted as dropped.
 * - The JSON-lines log is bounded by eventstore_set_log_budget(): when the file would
 *   pass half of the budget it is renamed to "<log>.1" (replacing the previous one)
 *   and a new file is started, so the two never hold more than the budget.
 * - eventstore_flush() returns once everything submitted before it is committed;
 *   eventstore_close() commits everything still queued.
 */
#include "store/eventstore.h"
#include "store/durable.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "store/db.h"
#include "deceive/deception.h"
#include "store/event.h"
#include "store/prune.h"
#include "util/buf.h"

#define BATCH_MAX 512
#define BATCH_BYTES_MAX (1024 * 1024) /* roughly what a batch adds to the WAL */
#define BATCH_WAIT_NS (50 * 1000000L)
#define QUEUE_LIMIT_DEFAULT 1000000
#define START_WAIT_MS 30000     /* the writer thread must say it runs within this */
#define SESSION_CACHE 4096      /* sessions whose row the writer knows exists */

/* Derived-table maintenance: the statements run for an event id, in this order, after
 * the event's own row and its session row.  Parameters: :name is the event's field
 * `name` (NULL when absent), :name__count the number of elements of an array field,
 * and the common fields :_ts_us, :_session (NULL when empty), :_src_ip, :_proto,
 * :_prefix (the /24 or /48 of src_ip, db_prefix()).  db.c's backfill (step 3 -> 4)
 * computes the same auth_attempts and probes rows from the stored JSON. */
struct derived {
	const char *event;
	const char *sql;
	/* A statement that only adds 1 to this sessions column is not run per event: the
	 * writer adds up a batch's increments per session and applies them once, before
	 * any other statement on that session's row and before the commit (the same rows,
	 * fewer statements: a guessing flood is mostly such events).  With `unless`, an
	 * event whose bool field of that name is true runs the statement itself. */
	const char *counter;
	const char *unless;
};

static const struct derived derived_sql[] = {
	{"connect", "UPDATE sessions SET dst_ip = :dst_ip, dst_port = :dst_port,"
		    " started_us = :_ts_us, orig_dst_ip = :orig_dst_ip,"
		    " orig_dst_port = :orig_dst_port WHERE session = :_session", NULL, NULL},
	/* The guard's decisions (session = the decision id; db.c step 4 -> 5). */
	{"decision", "INSERT INTO decisions(id, source, action, reason, origin, evidence,"
		     " created_us, expires_us, level) SELECT :_session, :source, :action, :reason,"
		     " :origin, :evidence, :_ts_us,"
		     " CASE WHEN :duration_ms IS NULL THEN 0 ELSE :_ts_us + :duration_ms * 1000 END,"
		     " :level WHERE :op = 'add' ON CONFLICT(id) DO NOTHING", NULL, NULL},
	{"decision", "UPDATE decisions SET ended_us = :_ts_us WHERE id = :_session"
		     " AND :op = 'del' AND ended_us IS NULL", NULL, NULL},
	{"tls", "UPDATE sessions SET tls = :version WHERE session = :_session", NULL, NULL},
	{"helo", "UPDATE sessions SET helo = :name WHERE session = :_session", NULL, NULL},
	{"auth", "UPDATE sessions SET auth_attempts = auth_attempts + 1,"
		 " auth_user = CASE WHEN :success THEN :username ELSE auth_user END"
		 " WHERE session = :_session", "auth_attempts", "success"},
	{"mail", "UPDATE sessions SET mails = mails + 1 WHERE session = :_session", "mails", NULL},
	{"rcpt", "UPDATE sessions SET rcpts = rcpts + 1 WHERE session = :_session", "rcpts", NULL},
	{"offence", "UPDATE sessions SET offences = offences + 1 WHERE session = :_session",
	 "offences", NULL},
	{"message", "UPDATE sessions SET messages = messages + 1 WHERE session = :_session",
	 "messages", NULL},
	{"message", "INSERT INTO messages(queue_id, session, ts_us, src_ip, spool, sha256, size,"
		    " sender, recipients, n_rcpt, method, auth_user, tls) VALUES("
		    " coalesce(:queue_id, ''), :_session, :_ts_us, :_src_ip, :spool, :sha256,"
		    " :size, :sender, :recipients,"
		    " coalesce(:recipient_count, :recipients__count, 0), :method,"
		    " :auth_user, :tls)", NULL, NULL},
	/* Brute-force intelligence (db.c step 3 -> 4 backfills the same rows). */
	{"auth", "INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto, mechanism,"
		 " username, password, success, result) VALUES(:_ts_us, :_session, :_src_ip,"
		 " :_prefix, :_proto, :mechanism, :username, :password, coalesce(:success, 0),"
		 " :result)", NULL, NULL},
	/* A probe: RCPT or VRFY/EXPN of a session not (yet) authenticated.  The auth rows
	 * above ran first for earlier events of the batch, so auth_user is current. */
	{"rcpt", "INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address,"
		 " accepted, reply) SELECT :_ts_us, :_session, :_src_ip, :_prefix, :_proto,"
		 " 'rcpt', :recipient, coalesce(:accepted, 0), :reply"
		 " WHERE (SELECT auth_user FROM sessions WHERE session = :_session) IS NULL", NULL, NULL},
	{"vrfy", "INSERT INTO probes(ts_us, session, src_ip, prefix, proto, kind, address,"
		 " accepted, reply) SELECT :_ts_us, :_session, :_src_ip, :_prefix, :_proto,"
		 " lower(coalesce(:verb, 'vrfy')), :argument,"
		 " coalesce(:reply BETWEEN 200 AND 299, 0), :reply"
		 " WHERE (SELECT auth_user FROM sessions WHERE session = :_session) IS NULL", NULL, NULL},
	{"disconnect", "UPDATE sessions SET ended_us = :_ts_us, duration_ms = :duration_ms,"
		       " reason = :reason, state = :state,"
		       " commands = coalesce(:commands, commands),"
		       " errors = coalesce(:errors, errors),"
		       " messages = max(messages, coalesce(:messages, 0))"
		       " WHERE session = :_session", NULL, NULL},
	/* A spool file indexed at start (store/reconcile.h): its row, at capture time. */
	{"message_recovered",
	 "INSERT INTO messages(queue_id, session, ts_us, src_ip, spool, sha256, size, sender,"
	 " recipients, n_rcpt, method, auth_user, tls) VALUES(coalesce(:queue_id, ''), NULL,"
	 " coalesce(unixepoch(:captured_ts) * 1000000"
	 " + CAST(substr(:captured_ts, 21, 6) AS INTEGER), :_ts_us),"
	 " nullif(:_src_ip, ''), :spool, :sha256, :size, NULL, '[]', 0, NULL, NULL, NULL)", NULL, NULL},
};

#define N_DERIVED (sizeof(derived_sql) / sizeof(derived_sql[0]))

/* What a statement parameter is bound to. */
enum param_kind { P_FIELD, P_FIELD_COUNT, P_TS_US, P_SESSION, P_SRC_IP, P_PROTO, P_PREFIX };
struct param {
	enum param_kind kind;
	char key[32]; /* P_FIELD, P_FIELD_COUNT: the event field */
};
struct derived_stmt {
	sqlite3_stmt *st;
	struct param *params; /* [0 .. n_params) = parameters 1 .. n */
	int n_params;
};

/* A saved state of a policy account, copied at eventstore_save_account() time. */
struct acct_rec {
	char *username, *password;
	unsigned failures, threshold;
	int64_t cracked_us;
	int fixed;
	int64_t updated_us;
	unsigned plausible;
};

enum writer_state { W_STARTING, W_RUNNING, W_EXITED };

/* The session counters of a batch, added up (see struct derived). */
enum { C_AUTH, C_MAILS, C_RCPTS, C_OFFENCES, C_MESSAGES, N_COUNTERS };
static const char *const counter_cols[N_COUNTERS] = {"auth_attempts", "mails", "rcpts",
						     "offences", "messages"};
#define PENDING_SLOTS 1024 /* > BATCH_MAX: a batch never fills it */
struct pending {
	char session[24];       /* "" : free */
	int64_t add[N_COUNTERS];
};

struct eventstore {
	sqlite3 *db;
	char *jsonl_path;
	int jsonl_fd;
	uint64_t jsonl_size;      /* bytes in the current log file */
	uint64_t log_budget;      /* 0: none; else the log and <log>.1 together */
	bool reopen_log;          /* eventstore_reopen_log() asked for it */
	uint64_t db_budget;       /* eventstore_set_db_budget(); 0: none */
	uint64_t wal_limit;       /* db_budget / 8: where the writer checkpoints */
	bool wal_limit_changed;
	struct prune_counts pruned; /* by the budget, not yet taken by the job's log */
	bool prune_stuck;           /* the last prune could not reach its target */
	sqlite3_stmt *page_count, *freelist_count;
	int64_t page_size;
	sqlite3_stmt *ins_event;
	sqlite3_stmt *ins_session;
	struct derived_stmt derived[N_DERIVED];
	sqlite3_stmt *upsert_account;
	/* Sessions whose row exists (direct-mapped by a hash of the id): writer only. */
	char (*known_sessions)[24];

	/* Writer-owned scratch, allocated at open so the thread cannot fail to start. */
	struct mxb_event **batch;
	size_t *offs;
	char (*ts)[32];             /* each batch event's ts, formatted once */
	struct pending *pending;    /* PENDING_SLOTS */
	unsigned *pending_used;     /* slots in use, in order */
	unsigned n_pending;
	sqlite3_stmt *add_counters;
	/* The last address's /24 or /48 (a flood comes from few addresses at a time). */
	char last_ip[64], last_prefix[64];
	bool last_has_prefix;

	pthread_mutex_t mu;
	pthread_cond_t cv;      /* writer waits for events (CLOCK_MONOTONIC) */
	pthread_cond_t done_cv; /* flushers wait for progress; open for the start */
	struct mxb_event **queue;
	size_t q_head, n_queue, alloc_queue; /* queue[q_head .. q_head+n_queue) */
	size_t queue_limit;
	size_t queued_bytes;    /* batch_bytes() of the queued events */
	uint64_t accepted;      /* events queued since open */
	uint64_t done;          /* events the writer finished with */
	uint64_t dropped;       /* refused by the bound (or no writer), since open */
	uint64_t dropped_recorded;
	uint64_t failed;        /* lost to a failed transaction, since open */
	uint64_t batches;
	uint64_t durable_commits; /* batches committed with synchronous=FULL */
	/* Account saves: a second queue, drained with every batch. */
	struct acct_rec *accts;
	size_t n_accts, alloc_accts;
	size_t urgent_accts;    /* of them, saves that must be durable at once */
	/* (username, password) pairs known to be committed durably: a later save of the
	 * same pair (a failed guess against a cracked account) needs no fsync.  Open
	 * addressing over 64-bit hashes (0: free), guarded by mu. */
	uint64_t *durable_set;
	size_t durable_n, durable_cap;
	uint64_t accts_accepted, accts_done, accts_dropped, accts_dropped_recorded;
	/* Urgent (durable-at-once) saves numbered as queued, and how far the writer is
	 * with them (eventstore_durable_queued/done); durable_notify wakes a waiting host. */
	/* written under mu; read without it by the loop on every reply (conn.c) */
	_Atomic uint64_t urgent_seq, urgent_done;
	unsigned test_durable_delay_ms; /* MXBAIT_TEST_DURABLE_DELAY_MS (tests only) */
	void (*durable_notify)(void *ctx);
	void *durable_notify_ctx;
	int flushers;
	bool stop;
	enum writer_state writer;
	/* metrics (eventstore_set_observer, commit latency) */
	eventstore_observer_fn observer;
	void *observer_ctx;
	unsigned long long commit_le[EVENTSTORE_COMMIT_BUCKETS], commit_us_sum;
	pthread_t thread;
	bool thread_started;    /* joinable */
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

/* What an event adds to the WAL, roughly: its JSON row and its derived rows. */
static size_t batch_bytes(const struct mxb_event *e)
{
	return 2 * (e->fields.len + 256);
}

/* Bytes a batch may add to the WAL: BATCH_BYTES_MAX, or half the WAL limit. */
static size_t batch_bytes_max(const struct eventstore *es)
{
	size_t max = BATCH_BYTES_MAX;
	if (es->wal_limit && es->wal_limit / 2 < max)
		max = (size_t)(es->wal_limit / 2);
	return max;
}

static void *writer_thread(void *arg);

static void free_stmts(struct eventstore *es)
{
	sqlite3_finalize(es->ins_event);
	sqlite3_finalize(es->ins_session);
	sqlite3_finalize(es->upsert_account);
	sqlite3_finalize(es->add_counters);
	sqlite3_finalize(es->page_count);
	sqlite3_finalize(es->freelist_count);
	for (size_t i = 0; i < N_DERIVED; i++) {
		sqlite3_finalize(es->derived[i].st);
		free(es->derived[i].params);
	}
}

/* Map every parameter of a derived statement to what it is bound to. */
static int map_params(struct derived_stmt *d)
{
	int n = sqlite3_bind_parameter_count(d->st);
	d->n_params = n;
	if (n == 0)
		return 0;
	d->params = calloc((size_t)n, sizeof(*d->params));
	if (!d->params)
		return -1;
	static const struct { const char *name; enum param_kind kind; } commons[] = {
		{":_ts_us", P_TS_US}, {":_session", P_SESSION}, {":_src_ip", P_SRC_IP},
		{":_proto", P_PROTO}, {":_prefix", P_PREFIX},
	};
	for (int i = 0; i < n; i++) {
		const char *name = sqlite3_bind_parameter_name(d->st, i + 1);
		struct param *p = &d->params[i];
		if (!name || name[0] != ':')
			return -1;
		bool common = false;
		for (size_t k = 0; k < sizeof(commons) / sizeof(commons[0]); k++)
			if (!strcmp(name, commons[k].name)) {
				p->kind = commons[k].kind;
				common = true;
			}
		if (common)
			continue;
		size_t len = strlen(name + 1);
		const char *count = strstr(name + 1, "__count");
		if (count && count[7] == '\0') {
			p->kind = P_FIELD_COUNT;
			len = (size_t)(count - (name + 1));
		} else {
			p->kind = P_FIELD;
		}
		if (len == 0 || len >= sizeof(p->key))
			return -1;
		memcpy(p->key, name + 1, len);
		p->key[len] = '\0';
	}
	return 0;
}

/* The writer thread, started with a monotonic condition clock; open waits until it
 * says it runs (or ended without running). */
static int start_writer(struct eventstore *es, char **err_r)
{
	pthread_mutex_lock(&es->mu);
	es->writer = W_STARTING;
	pthread_mutex_unlock(&es->mu);
	int e = pthread_create(&es->thread, NULL, writer_thread, es);
	if (e) {
		es->writer = W_EXITED;
		*err_r = fmt("eventstore: cannot start the writer thread: %s", strerror(e));
		return -1;
	}
	es->thread_started = true;
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_mutex_lock(&es->mu);
	while (es->writer == W_STARTING) {
		struct timespec dl;
		clock_gettime(CLOCK_MONOTONIC, &dl);
		if ((dl.tv_sec - t0.tv_sec) * 1000 + (dl.tv_nsec - t0.tv_nsec) / 1000000 >
		    START_WAIT_MS)
			break;
		dl.tv_nsec += 10 * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&es->done_cv, &es->mu, &dl);
		/* A thread that ended without a word (e.g. cancelled) never signals. */
		if (es->writer == W_STARTING && pthread_tryjoin_np(es->thread, NULL) == 0) {
			es->thread_started = false;
			es->writer = W_EXITED;
		}
	}
	bool running = es->writer == W_RUNNING;
	pthread_mutex_unlock(&es->mu);
	if (!running) {
		*err_r = fmt("eventstore: the writer thread did not start");
		return -1;
	}
	return 0;
}

static int open_log(struct eventstore *es, char **err_r)
{
	int fd = open(es->jsonl_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (err_r)
			*err_r = fmt("%s: %s", es->jsonl_path, strerror(errno));
		return -1;
	}
	struct stat st;
	es->jsonl_size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (es->jsonl_fd >= 0)
		close(es->jsonl_fd);
	es->jsonl_fd = fd;
	return 0;
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
	const char *delay = getenv("MXBAIT_TEST_DURABLE_DELAY_MS");
	if (delay && *delay)
		es->test_durable_delay_ms = (unsigned)strtoul(delay, NULL, 10) % 60000;
	es->writer = W_EXITED;
	pthread_mutex_init(&es->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&es->cv, &ca);
	pthread_cond_init(&es->done_cv, &ca);
	pthread_condattr_destroy(&ca);
	es->batch = malloc(BATCH_MAX * sizeof(*es->batch));
	es->offs = malloc((BATCH_MAX + 1) * sizeof(*es->offs));
	es->known_sessions = calloc(SESSION_CACHE, sizeof(*es->known_sessions));
	es->ts = malloc(BATCH_MAX * sizeof(*es->ts));
	es->pending = calloc(PENDING_SLOTS, sizeof(*es->pending));
	es->pending_used = malloc(PENDING_SLOTS * sizeof(*es->pending_used));
	if (!es->batch || !es->offs || !es->known_sessions || !es->ts || !es->pending ||
	    !es->pending_used) {
		*err_r = fmt("eventstore: out of memory");
		goto fail;
	}
	if (db_open_rw(db_path, &es->db, err_r) != DB_OK)
		goto fail;
	int rc = sqlite3_prepare_v3(es->db,
				    "INSERT INTO events(ts, ts_us, event, session, src_ip, src_port,"
				    " proto, json) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
				    -1, SQLITE_PREPARE_PERSISTENT, &es->ins_event, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(es->db,
					"INSERT INTO sessions(session, proto, src_ip, src_port,"
					" started_us) VALUES(?, ?, ?, ?, ?)"
					" ON CONFLICT(session) DO NOTHING",
					-1, SQLITE_PREPARE_PERSISTENT, &es->ins_session, NULL);
	for (size_t i = 0; rc == SQLITE_OK && i < N_DERIVED; i++) {
		rc = sqlite3_prepare_v3(es->db, derived_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT,
					&es->derived[i].st, NULL);
		if (rc == SQLITE_OK && map_params(&es->derived[i]) < 0) {
			*err_r = fmt("eventstore: bad parameters in %s", derived_sql[i].sql);
			goto fail;
		}
	}
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(es->db,
					"UPDATE sessions SET auth_attempts = auth_attempts + ?1,"
					" mails = mails + ?2, rcpts = rcpts + ?3, offences = offences + ?4,"
					" messages = messages + ?5 WHERE session = ?6",
					-1, SQLITE_PREPARE_PERSISTENT, &es->add_counters, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(es->db, "PRAGMA page_count", -1, SQLITE_PREPARE_PERSISTENT,
					&es->page_count, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(es->db, "PRAGMA freelist_count", -1,
					SQLITE_PREPARE_PERSISTENT, &es->freelist_count, NULL);
	/* Latest state wins: saves are applied in the order they were made. */
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v3(es->db,
					"INSERT INTO accounts(username, password, failures, threshold,"
					" cracked_us, fixed, updated_us, plausible)"
					" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
					" ON CONFLICT(username) DO UPDATE SET password = excluded.password,"
					" failures = excluded.failures, threshold = excluded.threshold,"
					" cracked_us = excluded.cracked_us, fixed = excluded.fixed,"
					" updated_us = excluded.updated_us,"
					" plausible = excluded.plausible",
					-1, SQLITE_PREPARE_PERSISTENT, &es->upsert_account, NULL);
	if (rc != SQLITE_OK) {
		*err_r = fmt("%s: %s", db_path, sqlite3_errmsg(es->db));
		goto fail;
	}
	{
		sqlite3_stmt *ps = NULL;
		es->page_size = 4096;
		if (sqlite3_prepare_v2(es->db, "PRAGMA page_size", -1, &ps, NULL) == SQLITE_OK &&
		    sqlite3_step(ps) == SQLITE_ROW)
			es->page_size = sqlite3_column_int64(ps, 0);
		sqlite3_finalize(ps);
	}
	if (jsonl_path) {
		es->jsonl_path = strdup(jsonl_path);
		if (!es->jsonl_path) {
			*err_r = fmt("eventstore: out of memory");
			goto fail;
		}
		if (open_log(es, err_r) < 0)
			goto fail;
	}
	if (start_writer(es, err_r) < 0)
		goto fail;
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
	if (es->n_queue >= es->queue_limit || es->writer != W_RUNNING) {
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
	es->queued_bytes += batch_bytes(ev);
	es->accepted++;
	/* Wake the writer for the first event of a batch and when a batch is full. */
	if (es->n_queue == 1 || es->n_queue == BATCH_MAX ||
	    (es->queued_bytes >= batch_bytes_max(es) &&
	     es->queued_bytes - batch_bytes(ev) < batch_bytes_max(es)))
		pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
}

static void acct_rec_free(struct acct_rec *r)
{
	free(r->username);
	free(r->password);
	r->username = r->password = NULL;
}

#define DURABLE_SET_MAX (1u << 22) /* pairs remembered; beyond, every such save syncs */

static uint64_t pair_hash(const char *user, const char *pass)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a over "user\0pass" */
	for (const char *p = user; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0) * 1099511628211ULL;
	for (const char *p = pass; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h ? h : 1;
}

static bool durable_known(const struct eventstore *es, uint64_t h)
{
	if (!es->durable_cap)
		return false;
	for (size_t i = h & (es->durable_cap - 1);; i = (i + 1) & (es->durable_cap - 1)) {
		if (!es->durable_set[i])
			return false;
		if (es->durable_set[i] == h)
			return true;
	}
}

/* Remember a committed pair (called with mu held). */
static void durable_add(struct eventstore *es, uint64_t h)
{
	if (durable_known(es, h))
		return;
	if (2 * (es->durable_n + 1) > es->durable_cap) {
		size_t cap = es->durable_cap ? es->durable_cap * 2 : 1024;
		if (cap > DURABLE_SET_MAX)
			return;
		uint64_t *t = calloc(cap, sizeof(*t));
		if (!t)
			return;
		for (size_t i = 0; i < es->durable_cap; i++) {
			uint64_t v = es->durable_set[i];
			if (!v)
				continue;
			size_t j = v & (cap - 1);
			while (t[j])
				j = (j + 1) & (cap - 1);
			t[j] = v;
		}
		free(es->durable_set);
		es->durable_set = t;
		es->durable_cap = cap;
	}
	size_t j = h & (es->durable_cap - 1);
	while (es->durable_set[j])
		j = (j + 1) & (es->durable_cap - 1);
	es->durable_set[j] = h;
	es->durable_n++;
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
		.plausible = a->plausible,
	};
	pthread_mutex_lock(&es->mu);
	if (!r.username || (a->password && !r.password) || es->n_accts >= es->queue_limit ||
	    es->writer != W_RUNNING)
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
	/* An account's password (cracked, or fixed) must not be forgotten by a crash: the
	 * batch that first saves it is committed at once, durably.  Later saves of the same
	 * pair (failed guesses against a cracked account) batch as usual. */
	bool urgent = r.password && !durable_known(es, pair_hash(r.username, r.password));
	if (urgent) {
		es->urgent_accts++;
		es->urgent_seq++;
	}
	if (es->n_accts == 1 || urgent)
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

uint64_t eventstore_durable_queued(struct eventstore *es)
{
	if (!es)
		return 0;
	return atomic_load(&es->urgent_seq);
}

uint64_t eventstore_durable_done(struct eventstore *es)
{
	if (!es)
		return 0;
	return atomic_load(&es->urgent_done);
}

void eventstore_set_durable_notify(struct eventstore *es, void (*fn)(void *ctx), void *ctx)
{
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	es->durable_notify = fn;
	es->durable_notify_ctx = ctx;
	pthread_mutex_unlock(&es->mu);
}

/* The writer finished with the urgent saves up to upto (mu held). */
static void durable_progress(struct eventstore *es, uint64_t upto)
{
	if (upto <= es->urgent_done)
		return;
	es->urgent_done = upto;
	if (es->durable_notify)
		es->durable_notify(es->durable_notify_ctx);
}

bool eventstore_flush(struct eventstore *es)
{
	if (!es)
		return false;
	pthread_mutex_lock(&es->mu);
	uint64_t target = es->accepted;
	uint64_t acct_target = es->accts_accepted;
	es->flushers++;
	pthread_cond_signal(&es->cv);
	while ((es->done < target || es->accts_done < acct_target) && es->writer == W_RUNNING)
		pthread_cond_wait(&es->done_cv, &es->mu);
	bool all = es->done >= target && es->accts_done >= acct_target;
	es->flushers--;
	pthread_mutex_unlock(&es->mu);
	return all;
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
	free(es->jsonl_path);
	free(es->batch);
	free(es->offs);
	free(es->known_sessions);
	free(es->ts);
	free(es->pending);
	free(es->pending_used);
	free(es->durable_set);
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
	st->durable_commits = es->durable_commits;
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

void eventstore_set_log_budget(struct eventstore *es, uint64_t bytes)
{
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	es->log_budget = bytes;
	pthread_mutex_unlock(&es->mu);
}

void eventstore_set_db_budget(struct eventstore *es, uint64_t bytes)
{
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	struct prune_marks m;
	prune_budget_marks(bytes, &m);
	es->db_budget = bytes;
	es->wal_limit = bytes ? m.wal : 0;
	es->wal_limit_changed = true;
	pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
}

bool eventstore_take_pruned(struct eventstore *es, struct prune_counts *c, bool *stuck_r)
{
	memset(c, 0, sizeof(*c));
	if (!es)
		return false;
	pthread_mutex_lock(&es->mu);
	*c = es->pruned;
	memset(&es->pruned, 0, sizeof(es->pruned));
	if (stuck_r)
		*stuck_r = es->prune_stuck;
	pthread_mutex_unlock(&es->mu);
	return c->events || c->auth_attempts || c->probes || c->sessions;
}

void eventstore_reopen_log(struct eventstore *es)
{
	if (!es)
		return;
	pthread_mutex_lock(&es->mu);
	es->reopen_log = true;
	pthread_cond_signal(&es->cv);
	pthread_mutex_unlock(&es->mu);
}

/* ---- writer thread ---- */

static int step_reset(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static uint32_t session_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a: the ids are ours (random hex), not chosen */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h % SESSION_CACHE;
}

/* Bind one derived statement's parameters from the event. */
static void bind_derived(const struct derived_stmt *d, const struct mxb_event *ev,
			 const char *prefix)
{
	sqlite3_stmt *st = d->st;
	for (int i = 0; i < d->n_params; i++) {
		const struct param *p = &d->params[i];
		int ix = i + 1;
		switch (p->kind) {
		case P_TS_US:
			sqlite3_bind_int64(st, ix, ev->ts_us);
			break;
		case P_SESSION:
			if (ev->session[0])
				sqlite3_bind_text(st, ix, ev->session, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, ix);
			break;
		case P_SRC_IP:
			sqlite3_bind_text(st, ix, ev->src_ip, -1, SQLITE_STATIC);
			break;
		case P_PROTO:
			sqlite3_bind_text(st, ix, ev->proto, -1, SQLITE_STATIC);
			break;
		case P_PREFIX:
			if (prefix)
				sqlite3_bind_text(st, ix, prefix, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(st, ix);
			break;
		case P_FIELD:
		case P_FIELD_COUNT: {
			const struct mxb_event_fv *fv = mxb_event_field(ev, p->key);
			if (!fv) {
				sqlite3_bind_null(st, ix);
				break;
			}
			if (p->kind == P_FIELD_COUNT) {
				if (fv->type == MXB_FV_ARRAY)
					sqlite3_bind_int64(st, ix, fv->i);
				else
					sqlite3_bind_null(st, ix);
				break;
			}
			size_t len;
			const char *t;
			switch (fv->type) {
			case MXB_FV_STR:
			case MXB_FV_ARRAY:
				t = mxb_event_fv_text(ev, fv, &len);
				sqlite3_bind_text(st, ix, t, (int)len, SQLITE_STATIC);
				break;
			case MXB_FV_INT:
			case MXB_FV_BOOL:
				sqlite3_bind_int64(st, ix, fv->i);
				break;
			case MXB_FV_NULL:
				sqlite3_bind_null(st, ix);
				break;
			}
			break;
		}
		}
	}
}

static struct pending *pending_slot(struct eventstore *es, const char *session, bool create)
{
	unsigned h = session_hash(session) % PENDING_SLOTS;
	for (unsigned k = 0; k < PENDING_SLOTS; k++, h = (h + 1) % PENDING_SLOTS) {
		struct pending *p = &es->pending[h];
		if (!p->session[0]) {
			if (!create)
				return NULL;
			snprintf(p->session, sizeof(p->session), "%s", session);
			memset(p->add, 0, sizeof(p->add));
			es->pending_used[es->n_pending++] = h;
			return p;
		}
		if (!strcmp(p->session, session))
			return p;
	}
	return NULL;
}

/* Apply a session's added-up counters (before another statement on its row). */
static int pending_apply(struct eventstore *es, struct pending *p)
{
	bool any = false;
	for (int c = 0; c < N_COUNTERS; c++)
		any |= p->add[c] != 0;
	if (!any)
		return 0;
	sqlite3_stmt *st = es->add_counters;
	for (int c = 0; c < N_COUNTERS; c++)
		sqlite3_bind_int64(st, c + 1, p->add[c]);
	sqlite3_bind_text(st, 6, p->session, -1, SQLITE_STATIC);
	memset(p->add, 0, sizeof(p->add));
	return step_reset(st);
}

/* Apply every session's counters and forget them (end of a batch, or its failure). */
static int pending_flush(struct eventstore *es, bool apply)
{
	int rc = 0;
	for (unsigned i = 0; i < es->n_pending; i++) {
		struct pending *p = &es->pending[es->pending_used[i]];
		if (apply && rc == 0)
			rc = pending_apply(es, p);
		p->session[0] = '\0';
	}
	es->n_pending = 0;
	return rc;
}

static int counter_index(const char *col)
{
	for (int c = 0; c < N_COUNTERS; c++)
		if (!strcmp(counter_cols[c], col))
			return c;
	return -1;
}

static int store_one(struct eventstore *es, const struct mxb_event *ev, const char *ts,
		     const char *json, size_t json_len)
{
	sqlite3_stmt *st = es->ins_event;
	sqlite3_bind_text(st, 1, ts, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ev->ts_us);
	sqlite3_bind_text(st, 3, ev->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, ev->session, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, ev->src_ip, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 6, (int)ev->src_port);
	sqlite3_bind_text(st, 7, ev->proto, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, json, (int)json_len, SQLITE_STATIC);
	if (step_reset(st) < 0)
		return -1;
	/* The guard's events carry an observation or decision id, not a session of ours:
	 * no sessions row, only their own tables. */
	bool guard = !strcmp(ev->proto, "guard");
	if (ev->session[0] && !guard) {
		char *known = es->known_sessions[session_hash(ev->session)];
		if (strcmp(known, ev->session) != 0) {
			st = es->ins_session;
			sqlite3_bind_text(st, 1, ev->session, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, ev->proto, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, ev->src_ip, -1, SQLITE_STATIC);
			sqlite3_bind_int(st, 4, (int)ev->src_port);
			sqlite3_bind_int64(st, 5, ev->ts_us);
			if (step_reset(st) < 0)
				return -1;
			snprintf(known, sizeof(es->known_sessions[0]), "%s", ev->session);
		}
	}
	bool prefix_done = false;
	for (size_t i = 0; i < N_DERIVED; i++) {
		const struct derived *d = &derived_sql[i];
		if (strcmp(d->event, ev->name))
			continue;
		bool on_session = ev->session[0] && !strncmp(d->sql, "UPDATE sessions", 15);
		if (on_session && d->counter) {
			const struct mxb_event_fv *u = d->unless ? mxb_event_field(ev, d->unless) : NULL;
			bool run_it = u && u->type == MXB_FV_BOOL && u->i;
			struct pending *p = run_it ? NULL : pending_slot(es, ev->session, true);
			int c = counter_index(d->counter);
			if (p && c >= 0) {
				p->add[c]++;
				continue;
			}
		}
		if (on_session) {
			/* Another statement on this row: its counters first, in order. */
			struct pending *p = pending_slot(es, ev->session, false);
			if (p && pending_apply(es, p) < 0)
				return -1;
		}
		if (!prefix_done) {
			if (strcmp(es->last_ip, ev->src_ip) != 0) {
				snprintf(es->last_ip, sizeof(es->last_ip), "%s", ev->src_ip);
				es->last_has_prefix = db_prefix(ev->src_ip, es->last_prefix,
								sizeof(es->last_prefix)) == 0;
			}
			prefix_done = true;
		}
		bind_derived(&es->derived[i], ev, es->last_has_prefix ? es->last_prefix : NULL);
		if (step_reset(es->derived[i].st) < 0)
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
	sqlite3_bind_int(st, 8, (int)r->plausible);
	return step_reset(st);
}

struct acct_batch {
	struct acct_rec *recs;
	size_t n;
	uint64_t new_drops;
	bool durable;  /* one of them has a password: commit with synchronous=FULL */
	uint64_t urgent_upto; /* es->urgent_seq when the batch was taken */
	/* Set by mark_superseded(): a later save of the same username in this batch wins
	 * (a guessing flood saves one account's failure count once per guess). */
	bool *superseded;
};

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a; collisions only cost a compare */
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Mark every save that a later save of the same username in the batch replaces. */
static void mark_superseded(struct acct_batch *ab)
{
	ab->superseded = NULL;
	if (ab->n < 2)
		return;
	size_t slots = 4;
	while (slots < 2 * ab->n)
		slots *= 2;
	size_t *tab = malloc(slots * sizeof(*tab)); /* index + 1, 0: free */
	ab->superseded = calloc(ab->n, sizeof(*ab->superseded));
	if (!tab || !ab->superseded) {
		free(tab);
		free(ab->superseded);
		ab->superseded = NULL; /* store them all: correct, only slower */
		return;
	}
	memset(tab, 0, slots * sizeof(*tab));
	for (size_t i = ab->n; i-- > 0;) { /* the latest first */
		size_t h = (size_t)name_hash(ab->recs[i].username) & (slots - 1);
		for (;; h = (h + 1) & (slots - 1)) {
			if (!tab[h]) {
				tab[h] = i + 1;
				break;
			}
			if (!strcmp(ab->recs[tab[h] - 1].username, ab->recs[i].username)) {
				ab->superseded[i] = true;
				break;
			}
		}
	}
	free(tab);
}

static bool account_superseded(const struct acct_batch *ab, size_t i)
{
	return ab->superseded && ab->superseded[i];
}

/* Before a batch's lines are appended: start a new file when the budget asks for it
 * (the current one becomes <log>.1), or when eventstore_reopen_log() was called. */
static void log_rotate_if_needed(struct eventstore *es, size_t adding, uint64_t budget,
				 bool reopen)
{
	if (es->jsonl_fd < 0)
		return;
	if (budget && es->jsonl_size && es->jsonl_size + adding > budget / 2) {
		char *old = fmt("%s.1", es->jsonl_path);
		if (!old || rename(es->jsonl_path, old) < 0)
			fprintf(stderr, "mxbait: eventstore: cannot rotate %s: %s\n",
				es->jsonl_path, strerror(errno));
		else
			reopen = true;
		free(old);
	}
	if (reopen && open_log(es, NULL) < 0)
		fprintf(stderr, "mxbait: eventstore: cannot reopen %s: %s (still writing to the "
			"old file)\n", es->jsonl_path, strerror(errno));
}

/* The writer's connection checkpoints its WAL at about bytes and cuts it back to that
 * afterwards (0: SQLite's defaults, 1000 pages, and 16 MiB). */
static void apply_wal_limit(struct eventstore *es, uint64_t bytes)
{
	int64_t page = es->page_size;
	int64_t pages = bytes ? (int64_t)bytes / (page > 0 ? page : 4096) : 1000;
	if (pages < 16)
		pages = 16;
	if (pages > 1000)
		pages = 1000;
	char sql[128];
	snprintf(sql, sizeof(sql), "PRAGMA wal_autocheckpoint=%lld; PRAGMA journal_size_limit=%lld",
		 (long long)pages, bytes ? (long long)bytes : 16777216LL);
	sqlite3_exec(es->db, sql, NULL, NULL, NULL);
}

/* Commit one batch (events, then account saves, in one transaction); false when it
 * was not stored (its events are counted as failed). */
static bool commit_batch(struct eventstore *es, struct mxb_event **evs, size_t n,
			   uint64_t new_drops, const struct acct_batch *ab, struct buf *lines,
			   size_t *offs, uint64_t log_budget, bool reopen)
{
	buf_reset(lines);
	for (size_t i = 0; i < n; i++) {
		offs[i] = lines->len;
		mxb_format_ts(evs[i]->ts_us, es->ts[i], sizeof(es->ts[i]));
		if (mxb_event_to_json_ts(evs[i], es->ts[i], lines) < 0 ||
		    buf_putc(lines, '\n') < 0)
			return false; /* out of memory: nothing sensible to do but count */
	}
	offs[n] = lines->len;
	log_rotate_if_needed(es, lines->len, log_budget, reopen);
	if (es->jsonl_fd >= 0 && lines->len) {
		if (durable_write_all(es->jsonl_fd, lines->data, lines->len) < 0)
			fprintf(stderr, "mxbait: eventstore: writing the JSON-lines log: %s\n",
				strerror(errno));
		else
			es->jsonl_size += lines->len;
	}
	if (ab->durable)
		sqlite3_exec(es->db, "PRAGMA synchronous=FULL", NULL, NULL, NULL);
	if (sqlite3_exec(es->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	for (size_t i = 0; i < n; i++)
		if (store_one(es, evs[i], es->ts[i], lines->data + offs[i],
			      offs[i + 1] - offs[i] - 1) < 0)
			goto fail;
	if (pending_flush(es, true) < 0)
		goto fail;
	for (size_t i = 0; i < ab->n; i++)
		if (!account_superseded(ab, i) && store_account(es, &ab->recs[i]) < 0)
			goto fail;
	if (new_drops && db_counter_add(es->db, "events_dropped", (int64_t)new_drops) < 0)
		goto fail;
	if (ab->new_drops &&
	    db_counter_add(es->db, "accounts_dropped", (int64_t)ab->new_drops) < 0)
		goto fail;
	if (sqlite3_exec(es->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (ab->durable)
		sqlite3_exec(es->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	return true;
fail:
	fprintf(stderr, "mxbait: eventstore: batch of %zu events and %zu account saves not "
		"stored: %s\n", n, ab->n, sqlite3_errmsg(es->db));
	sqlite3_exec(es->db, "ROLLBACK", NULL, NULL, NULL);
	if (ab->durable)
		sqlite3_exec(es->db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
	/* A row we cached may have been rolled back with the batch. */
	memset(es->known_sessions, 0, SESSION_CACHE * sizeof(*es->known_sessions));
	pending_flush(es, false);
	return false;
}

static int64_t step_int(sqlite3_stmt *st)
{
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

/* Keep mxbait.db's content under the budget's trigger mark: past it, delete the oldest
 * rows down to the target mark (store/prune.h, prune_budget_marks); the rest of the
 * budget is for the WAL and the -shm file.  Returns 1 (fine or done), 0 when only rows
 * that are never pruned are left above the target, -1 on error. */
static int enforce_db_budget(struct eventstore *es, uint64_t budget, struct prune_counts *c)
{
	int64_t pages = step_int(es->page_count), free_pages = step_int(es->freelist_count);
	if (pages < 0 || free_pages < 0)
		return -1;
	int64_t content = (pages - free_pages) * es->page_size;
	struct prune_marks m;
	prune_budget_marks(budget, &m);
	if ((uint64_t)content <= m.trigger)
		return 1;
	char *err = NULL;
	/* At most 10 steps per batch: a lowered budget is caught up over a few batches. */
	int r = prune_db_to_size_steps(es->db, (int64_t)m.target, 10, c, &err);
	if (r == 2)
		r = 1;
	if (r < 0)
		fprintf(stderr, "mxbait: eventstore: database_budget: %s\n", err ? err : "?");
	free(err);
	return r;
}

static void deadline_in(struct timespec *ts, long ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
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
	struct mxb_event **batch = es->batch;
	size_t *offs = es->offs;
	pthread_setname_np(pthread_self(), "mxb-events"); /* for top -H, perf, benches */
	pthread_mutex_lock(&es->mu);
	es->writer = W_RUNNING;
	pthread_cond_broadcast(&es->done_cv);
	for (;;) {
#define NOTHING_TO_DO()                                                       \
	(!es->n_queue && !es->n_accts && es->dropped == es->dropped_recorded && \
	 es->accts_dropped == es->accts_dropped_recorded && !es->reopen_log && \
	 !es->wal_limit_changed)
		while (NOTHING_TO_DO() && !es->stop)
			pthread_cond_wait(&es->cv, &es->mu);
		if (NOTHING_TO_DO() && es->stop)
			break;
#undef NOTHING_TO_DO
		/* Let the batch fill for up to 50 ms, unless someone waits for it or a
		 * cracked account waits to be made durable. */
		if ((es->n_queue || es->n_accts) && es->n_queue < BATCH_MAX && !es->stop &&
		    !es->flushers && !es->urgent_accts && es->queued_bytes < batch_bytes_max(es)) {
			struct timespec dl;
			deadline_in(&dl, BATCH_WAIT_NS);
			while (es->n_queue < BATCH_MAX && !es->stop && !es->flushers &&
			       !es->urgent_accts && es->queued_bytes < batch_bytes_max(es))
				if (pthread_cond_timedwait(&es->cv, &es->mu, &dl) == ETIMEDOUT)
					break;
		}
		/* At most BATCH_MAX events, and about BATCH_BYTES_MAX (half the WAL limit when
		 * there is one) of what they add to the WAL: a batch of big events under a
		 * small database budget must not blow the WAL past it. */
		size_t max_bytes = batch_bytes_max(es);
		size_t n = 0, bytes = 0;
		while (n < es->n_queue && n < BATCH_MAX) {
			size_t sz = batch_bytes(es->queue[es->q_head + n]);
			if (n && bytes + sz > max_bytes)
				break;
			bytes += sz;
			n++;
		}
		es->queued_bytes = es->queued_bytes >= bytes ? es->queued_bytes - bytes : 0;
		if (n)
			memcpy(batch, es->queue + es->q_head, n * sizeof(*batch));
		es->q_head += n;
		es->n_queue -= n;
		if (!es->n_queue)
			es->q_head = 0;
		uint64_t new_drops = es->dropped - es->dropped_recorded;
		/* Every pending account save goes with this batch (they are small). */
		struct acct_batch ab = {es->accts, es->n_accts,
					es->accts_dropped - es->accts_dropped_recorded,
					es->urgent_accts > 0, es->urgent_seq, NULL};
		es->accts = NULL;
		es->n_accts = es->alloc_accts = 0;
		es->urgent_accts = 0;
		uint64_t log_budget = es->log_budget;
		bool reopen = es->reopen_log;
		es->reopen_log = false;
		bool wal_changed = es->wal_limit_changed;
		uint64_t wal_limit = es->wal_limit;
		es->wal_limit_changed = false;
		pthread_mutex_unlock(&es->mu);

		if (wal_changed)
			apply_wal_limit(es, wal_limit);
		mark_superseded(&ab);
		if (ab.durable && es->test_durable_delay_ms) {
			/* Test hook: a slow disk, so tests can see who waits for the commit. */
			struct timespec d = {es->test_durable_delay_ms / 1000,
					     (long)(es->test_durable_delay_ms % 1000) * 1000000L};
			nanosleep(&d, NULL);
		}
		struct timespec c0, c1;
		clock_gettime(CLOCK_MONOTONIC, &c0);
		bool ok = commit_batch(es, batch, n, new_drops, &ab, &lines, offs, log_budget,
				       reopen);
		clock_gettime(CLOCK_MONOTONIC, &c1);
		unsigned long long took = (unsigned long long)((c1.tv_sec - c0.tv_sec) * 1000000LL +
							       (c1.tv_nsec - c0.tv_nsec) / 1000);
		size_t lost = ok ? 0 : n;
		for (size_t i = 0; i < n; i++)
			mxb_event_free(&batch[i]);

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
		if (ab.durable && ok) {
			es->durable_commits++;
			for (size_t i = 0; i < ab.n; i++)
				if (ab.recs[i].password)
					durable_add(es, pair_hash(ab.recs[i].username,
								  ab.recs[i].password));
		}
		for (size_t i = 0; i < ab.n; i++)
			acct_rec_free(&ab.recs[i]);
		free(ab.recs);
		free(ab.superseded);
		durable_progress(es, ab.urgent_upto);
		pthread_cond_broadcast(&es->done_cv);
		if (es->db_budget) {
			/* The database budget, enforced by the only writer of the events:
			 * checked after every batch, so a flood cannot outrun it. */
			uint64_t budget = es->db_budget;
			pthread_mutex_unlock(&es->mu);
			struct prune_counts c = {0};
			int r = enforce_db_budget(es, budget, &c);
			pthread_mutex_lock(&es->mu);
			es->pruned.events += c.events;
			es->pruned.auth_attempts += c.auth_attempts;
			es->pruned.probes += c.probes;
			es->pruned.sessions += c.sessions;
			if (r >= 0)
				es->prune_stuck = r == 0;
		}
		if (lines.alloc > 1024 * 1024) { /* a burst's buffer is not kept forever */
			buf_free(&lines);
			buf_init(&lines, 0);
		}
	}
	es->writer = W_EXITED;
	durable_progress(es, es->urgent_seq); /* nobody may wait for a writer that is gone */
	pthread_cond_broadcast(&es->done_cv);
	pthread_mutex_unlock(&es->mu);
	buf_free(&lines);
	return NULL;
}
