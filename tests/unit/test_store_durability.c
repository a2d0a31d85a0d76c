/* test_store_durability: the event store's writer thread and clocks, and what reaches
 * the disk when (issue 7):
 * - eventstore_flush() must not wait forever when the writer thread never ran;
 * - the batch timer must not follow the wall clock (a step of the clock stalled it);
 * - a batch that saves a cracked account is synced to the WAL before it counts as done
 *   (synchronous=FULL), other batches are not (NORMAL, so a failed guess costs no
 *   fsync);
 * - durable_create_file() syncs the file, then links it, then syncs the directory.
 *
 * This binary interposes pthread_create, clock_gettime, fsync and fdatasync (each
 * passes through to the real one unless a test arms it), so it is a file of its own. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deceive/deception.h"
#include "store/durable.h"
#include "store/event.h"
#include "store/eventstore.h"

/* ---- interposers ---- */

static atomic_int create_mode;      /* 1: the thread runs nothing; 2: creation fails */
static atomic_long realtime_shift;  /* seconds added to CLOCK_REALTIME */
static atomic_int record_syncs;
static pthread_mutex_t sync_mu = PTHREAD_MUTEX_INITIALIZER;
static char synced[64][256];        /* what was synced, in order: path or "dir:path" */
static atomic_int n_synced;

static void *do_nothing(void *arg)
{
	(void)arg;
	return NULL;
}

int pthread_create(pthread_t *t, const pthread_attr_t *a, void *(*fn)(void *), void *arg)
{
	static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	if (!real)
		real = (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *),
				void *))dlsym(RTLD_NEXT, "pthread_create");
	int mode = atomic_exchange(&create_mode, 0);
	if (mode == 2)
		return EAGAIN;
	return real(t, a, mode == 1 ? do_nothing : fn, mode == 1 ? NULL : arg);
}

int clock_gettime(clockid_t c, struct timespec *ts)
{
	static int (*real)(clockid_t, struct timespec *);
	if (!real)
		real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
	int r = real(c, ts);
	if (r == 0 && c == CLOCK_REALTIME)
		ts->tv_sec += atomic_load(&realtime_shift);
	return r;
}

static void note_sync(int fd)
{
	if (!atomic_load(&record_syncs))
		return;
	char link[64], path[200] = "?";
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n > 0)
		path[n] = '\0';
	struct stat st;
	bool dir = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
	pthread_mutex_lock(&sync_mu);
	int i = atomic_load(&n_synced);
	if (i < 64) {
		snprintf(synced[i], sizeof(synced[i]), "%s%s", dir ? "dir:" : "", path);
		atomic_store(&n_synced, i + 1);
	}
	pthread_mutex_unlock(&sync_mu);
}

int fsync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
	note_sync(fd);
	return real(fd);
}

int fdatasync(int fd)
{
	static int (*real)(int);
	if (!real)
		real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
	note_sync(fd);
	return real(fd);
}

static int syncs_of(const char *suffix)
{
	int k = 0;
	pthread_mutex_lock(&sync_mu);
	for (int i = 0; i < atomic_load(&n_synced); i++) {
		size_t a = strlen(synced[i]), b = strlen(suffix);
		k += a >= b && !strcmp(synced[i] + a - b, suffix);
	}
	pthread_mutex_unlock(&sync_mu);
	return k;
}

static void reset_syncs(void)
{
	pthread_mutex_lock(&sync_mu);
	atomic_store(&n_synced, 0);
	pthread_mutex_unlock(&sync_mu);
}

/* ---- helpers ---- */

struct paths {
	char dir[64], db[128], jsonl[128];
};

static void make_paths(struct paths *p)
{
	snprintf(p->dir, sizeof(p->dir), "/tmp/mxb-dur-XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->db, sizeof(p->db), "%s/mxbait.db", p->dir);
	snprintf(p->jsonl, sizeof(p->jsonl), "%s/events.jsonl", p->dir);
}

static void rm_paths(struct paths *p)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", p->dir);
	assert_int_equal(system(cmd), 0);
}

static struct mxb_event *offence(void)
{
	struct mxb_event *e = mxb_event_new("offence");
	mxb_event_stamp(e, 0, "0123456789abcdef", "192.0.2.1", 1, "smtp");
	mxb_event_str(e, "kind", "bad_syntax");
	mxb_event_str(e, "detail", "x");
	return e;
}

static int64_t rows(const char *db_path, const char *sql)
{
	sqlite3 *db;
	if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 2000);
	sqlite3_stmt *st;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void *flusher(void *arg)
{
	eventstore_flush(arg);
	return NULL;
}

/* ---- tests ---- */

/* The writer thread is created but never runs its loop (here: the thread runs
 * nothing; in life: it died before its loop).  Before the fix, eventstore_open
 * returned a store whose flush waited forever. */
static void test_flush_without_writer(void **state)
{
	struct paths p;
	make_paths(&p);
	char *err = NULL;
	atomic_store(&create_mode, 1);
	struct eventstore *es = eventstore_open(p.db, NULL, &err);
	if (es) {
		/* A store came back: then a flush must still come back. */
		eventstore_submit(es, offence());
		pthread_t t;
		assert_int_equal(pthread_create(&t, NULL, flusher, es), 0);
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 5;
		if (pthread_timedjoin_np(t, NULL, &dl) != 0)
			fail_msg("eventstore_flush() still waiting after 5 s for a writer that "
				 "never ran");
		eventstore_close(&es);
	} else {
		assert_non_null(err);
		assert_non_null(strstr(err, "writer thread"));
		free(err);
		err = NULL;
	}
	/* Creation failing outright is an error, too. */
	atomic_store(&create_mode, 2);
	assert_null(eventstore_open(p.db, NULL, &err));
	assert_non_null(strstr(err, "cannot start the writer thread"));
	free(err);
	/* And a normal store still works in the same directory. */
	es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	eventstore_submit(es, offence());
	assert_true(eventstore_flush(es));
	eventstore_close(&es);
	rm_paths(&p);
}

/* The 50 ms batch timer is measured on the monotonic clock: with the wall clock an
 * hour ahead when a batch starts (as after a step of the clock backwards while it
 * waits), an event is still committed within the batch time.  Before the fix the
 * deadline was wall-clock time, and the writer slept for the hour. */
static void test_batch_timer_monotonic(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	atomic_store(&realtime_shift, 3600);
	eventstore_submit(es, offence());
	int64_t n = 0;
	for (int i = 0; i < 60 && n < 1; i++) { /* up to 3 s, no flush */
		usleep(50 * 1000);
		n = rows(p.db, "SELECT count(*) FROM events");
	}
	atomic_store(&realtime_shift, 0);
	if (n < 1)
		fail_msg("an event waited more than 3 s for its batch with the wall clock moved");
	eventstore_close(&es);
	rm_paths(&p);
}

static void save(struct eventstore *es, const char *user, const char *pass, unsigned failures)
{
	struct deception_account a = {user, pass, failures, 3, pass ? 1795000000000000 : 0, 0, 0, 0};
	eventstore_save_account(es, &a);
}

/* A cracked account is on disk when its batch is done: the WAL was synced.  A failed
 * guess (failure count only) costs no sync. */
static void test_crack_durable(void **state)
{
	struct paths p;
	make_paths(&p);
	struct eventstore *es = eventstore_open(p.db, NULL, NULL);
	assert_non_null(es);
	reset_syncs();
	atomic_store(&record_syncs, 1);
	save(es, "admin", NULL, 1);
	eventstore_submit(es, offence());
	assert_true(eventstore_flush(es));
	assert_int_equal(syncs_of("mxbait.db-wal"), 0);
	save(es, "admin", "123456", 3);
	assert_true(eventstore_flush(es));
	atomic_store(&record_syncs, 0);
	if (syncs_of("mxbait.db-wal") < 1)
		fail_msg("the batch with a cracked account was not synced to the WAL");
	struct eventstore_stats st;
	eventstore_get_stats(es, &st);
	assert_int_equal(st.durable_commits, 1);
	/* The next failed guesses are back to no sync, against the cracked account too
	 * (its password is already durable: only its failure count changes). */
	reset_syncs();
	atomic_store(&record_syncs, 1);
	save(es, "root", NULL, 1);
	save(es, "admin", "123456", 4);
	assert_true(eventstore_flush(es));
	atomic_store(&record_syncs, 0);
	assert_int_equal(syncs_of("mxbait.db-wal"), 0);
	eventstore_get_stats(es, &st);
	assert_int_equal(st.durable_commits, 1);
	eventstore_close(&es);
	rm_paths(&p);
}

/* durable_create_file: data synced, then the name linked, then the directory synced;
 * an existing name is never replaced; nothing is left behind. */
static void test_durable_create(void **state)
{
	struct paths p;
	make_paths(&p);
	reset_syncs();
	atomic_store(&record_syncs, 1);
	assert_int_equal(durable_create_file(p.dir, "secret", "0123456789", 10, 0600), 0);
	atomic_store(&record_syncs, 0);
	char path[256];
	snprintf(path, sizeof(path), "%s/secret", p.dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 10);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_nlink, 1);
	/* The file's data, then the directory. */
	int n = atomic_load(&n_synced);
	assert_true(n >= 2);
	char want_dir[200];
	snprintf(want_dir, sizeof(want_dir), "dir:%s", p.dir);
	assert_string_equal(synced[n - 1], want_dir);
	assert_null(strstr(synced[n - 2], "dir:"));
	/* Not replaced; no temporary left. */
	errno = 0;
	assert_int_equal(durable_create_file(p.dir, "secret", "x", 1, 0600), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 10);
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", p.dir);
	assert_int_equal(system(cmd), 0);
	rm_paths(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_flush_without_writer),
		cmocka_unit_test(test_batch_timer_monotonic),
		cmocka_unit_test(test_crack_durable),
		cmocka_unit_test(test_durable_create),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
