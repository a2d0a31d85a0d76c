/* analyzer: process mode over the spool (see analyzer.h). */
#include "analyze/analyzer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <sqlite3.h>
#include <sys/stat.h>
#include <time.h>

#include "analyze/adb.h"
#include "analyze/analyze.h"
#include "analyze/input.h"
#include "analyze/worker.h"

/* How long to wait for the daemon's event writer to record a message (it batches)
 * before analysing the file without its envelope. */
#define ENVELOPE_WAIT_S 10
#define MAX_ENV_RCPTS 10000

/* The envelope of a spool file from the daemon's mxbait.db (messages + sessions). */
struct env_ctx {
	sqlite3 *db;
	sqlite3_stmt *st;
	char *sender, *ip, *helo, *auth;
	char **rcpts;
	size_t n;
};

static void env_clear(struct env_ctx *e)
{
	free(e->sender);
	free(e->ip);
	free(e->helo);
	free(e->auth);
	for (size_t i = 0; i < e->n; i++)
		free(e->rcpts[i]);
	free(e->rcpts);
	e->sender = e->ip = e->helo = e->auth = NULL;
	e->rcpts = NULL;
	e->n = 0;
}

static void env_open(struct env_ctx *e, const char *data_dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/mxbait.db", data_dir);
	if (sqlite3_open_v2(path, &e->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(e->db,
			       "SELECT m.sender, m.recipients, m.src_ip, m.auth_user, s.helo"
			       " FROM messages m LEFT JOIN sessions s ON s.session = m.session"
			       " WHERE m.spool = ?1 ORDER BY m.id DESC LIMIT 1",
			       -1, &e->st, NULL) != SQLITE_OK) {
		sqlite3_finalize(e->st);
		sqlite3_close(e->db);
		e->db = NULL;
		e->st = NULL;
		return;
	}
	sqlite3_busy_timeout(e->db, 1000);
}

static char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? strdup(s) : NULL;
}

/* The recipients column: a JSON array of strings (written by our event store). */
static void parse_rcpts(struct env_ctx *e, const char *j)
{
	if (!j || *j != '[')
		return;
	j++;
	while (*j && e->n < MAX_ENV_RCPTS) {
		while (*j == ' ' || *j == ',')
			j++;
		if (*j != '"')
			break;
		j++;
		char tmp[1024];
		size_t o = 0;
		while (*j && *j != '"') {
			char c = *j++;
			if (c == '\\' && *j) {
				c = *j++;
				if (c == 'u') { /* \u00XX: keep ASCII, else '?' */
					unsigned v = 0;
					for (int k = 0; k < 4 && *j; k++, j++)
						v = v * 16 + (unsigned)(*j <= '9' ? *j - '0' : (*j | 32) - 'a' + 10);
					c = v < 0x80 ? (char)v : '?';
				}
			}
			if (o + 1 < sizeof(tmp))
				tmp[o++] = c;
		}
		tmp[o] = 0;
		if (*j == '"')
			j++;
		char **nr = realloc(e->rcpts, (e->n + 1) * sizeof(*nr));
		if (!nr)
			break;
		e->rcpts = nr;
		e->rcpts[e->n++] = strdup(tmp);
	}
}

/* 1: found, 0: not (yet) recorded, -1: no mxbait.db. */
static int env_lookup(struct env_ctx *e, const char *name)
{
	env_clear(e);
	if (!e->st)
		return -1;
	sqlite3_reset(e->st);
	sqlite3_bind_text(e->st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(e->st) != SQLITE_ROW)
		return 0;
	e->sender = col(e->st, 0);
	parse_rcpts(e, (const char *)sqlite3_column_text(e->st, 1));
	e->ip = col(e->st, 2);
	e->auth = col(e->st, 3);
	e->helo = col(e->st, 4);
	sqlite3_reset(e->st);
	return 1;
}

static void env_close(struct env_ctx *e)
{
	env_clear(e);
	sqlite3_finalize(e->st);
	sqlite3_close(e->db);
	e->st = NULL;
	e->db = NULL;
}

/* With analyzer_user: the worker that parses, and the launcher that makes one. */
#define WORKER_BACKOFF_MIN_MS 1000
#define WORKER_BACKOFF_MAX_MS 60000
#define WORKER_TRIES 2 /* a message that kills this many workers is skipped */

static struct remote {
	int ctl;              /* the launcher's control socket; -1: analyse in-process */
	int sock;             /* the current worker; -1: none */
	pid_t pid;
	unsigned backoff_ms;  /* before the next worker; 0 after a success */
} rm = { -1, -1, 0, 0 };

/* Messages a worker failed on, and how many times: a fixed table (the oldest entry
 * makes room), so that poisonous messages between good ones are still skipped. */
#define FAILED_SLOTS 64
static struct failed_msg {
	char name[256];
	unsigned fails;
	uint64_t seq;
} failed[FAILED_SLOTS];
static uint64_t failed_seq;

static unsigned note_failure(const char *name)
{
	struct failed_msg *slot = &failed[0];
	for (size_t i = 0; i < FAILED_SLOTS; i++) {
		if (failed[i].fails && strcmp(failed[i].name, name) == 0) {
			slot = &failed[i];
			break;
		}
		if (failed[i].seq < slot->seq)
			slot = &failed[i];
	}
	if (!slot->fails || strcmp(slot->name, name) != 0) {
		snprintf(slot->name, sizeof(slot->name), "%s", name);
		slot->fails = 0;
	}
	slot->seq = ++failed_seq;
	unsigned n = ++slot->fails;
	if (n >= WORKER_TRIES)
		slot->fails = 0; /* skipped: the slot is free again */
	return n;
}

void analyzer_set_launcher(int ctl)
{
	rm.ctl = ctl;
}

static void sleep_ms(unsigned ms, volatile sig_atomic_t *stop)
{
	for (unsigned waited = 0; waited < ms && !(stop && *stop); waited += 100) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
}

/* The analysis of the spool file at path by a worker; NULL when none came (the file
 * is gone, or the worker failed: *skip_r when workers failed on this message
 * WORKER_TRIES times, so that a poisonous message does not stop the others). */
static struct analysis *remote_analyze(const char *path, const char *name,
				       const struct an_envelope *env,
				       const struct analyze_limits *lim,
				       volatile sig_atomic_t *stop, bool *skip_r)
{
	*skip_r = false;
	int mfd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (mfd < 0)
		return NULL;
	if (rm.sock < 0) {
		sleep_ms(rm.backoff_ms, stop);
		rm.sock = stop && *stop ? -1 : worker_spawn(rm.ctl, &rm.pid);
		if (rm.sock < 0) {
			if (!(stop && *stop))
				fprintf(stderr, "mxbait analyzer: cannot get a worker from the "
						"launcher\n");
			rm.backoff_ms = rm.backoff_ms ? rm.backoff_ms * 2 : WORKER_BACKOFF_MIN_MS;
			if (rm.backoff_ms > WORKER_BACKOFF_MAX_MS)
				rm.backoff_ms = WORKER_BACKOFF_MAX_MS;
			close(mfd);
			return NULL;
		}
		fprintf(stderr, "mxbait analyzer: worker started (pid %ld)\n", (long)rm.pid);
	}
	const char *err = NULL;
	struct analysis *a = worker_analyze(rm.sock, mfd, env, lim, &err);
	close(mfd);
	if (a) {
		rm.backoff_ms = 0;
		return a;
	}
	fprintf(stderr, "mxbait analyzer: %s: %s (worker pid %ld)\n", name, err, (long)rm.pid);
	close(rm.sock);
	rm.sock = -1;
	rm.backoff_ms = rm.backoff_ms ? rm.backoff_ms * 2 : WORKER_BACKOFF_MIN_MS;
	if (rm.backoff_ms > WORKER_BACKOFF_MAX_MS)
		rm.backoff_ms = WORKER_BACKOFF_MAX_MS;
	unsigned fails = note_failure(name);
	if (fails >= WORKER_TRIES) {
		fprintf(stderr, "mxbait analyzer: %s: skipped after %u failed workers\n", name,
			fails);
		*skip_r = true;
	}
	return NULL;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pass(struct adb *db, struct env_ctx *env, const char *newdir,
		const struct analyze_limits *lim, volatile sig_atomic_t *stop, bool *waiting_r)
{
	DIR *d = opendir(newdir);
	if (!d)
		return -1;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (adb_spool_done(db, de->d_name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				break;
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	int done = 0;
	for (size_t i = 0; i < n; i++) {
		if (stop && *stop)
			break;
		char path[4096];
		size_t len = 0;
		snprintf(path, sizeof(path), "%s/%s", newdir, names[i]);
		int found = env_lookup(env, names[i]);
		if (found == 0) {
			struct stat st;
			if (stat(path, &st) == 0 && time(NULL) - st.st_mtime < ENVELOPE_WAIT_S) {
				*waiting_r = true; /* the event writer has not caught up yet */
				continue;
			}
		}
		struct an_envelope ev = {
			.sender = env->sender, .recipients = (const char *const *)env->rcpts,
			.n_recipients = env->n, .client_ip = env->ip, .helo = env->helo,
			.auth_user = env->auth};
		struct analysis *a;
		if (rm.ctl >= 0) {
			bool skip = false;
			a = remote_analyze(path, names[i], found == 1 ? &ev : NULL, lim, stop,
					   &skip);
			if (skip) /* no row: message 0 says so */
				adb_spool_mark(db, names[i], 0);
			if (!a && !skip && *waiting_r == false)
				*waiting_r = true; /* try it again on the next pass */
		} else {
			const void *data = an_map_file(path, &len);
			if (!data) /* gone (moved to cur/ or expired): nothing to do */
				continue;
			a = analyze_message(data, len, lim, found == 1 ? &ev : NULL);
			an_unmap(data, len);
		}
		if (!a)
			continue;
		int64_t m = adb_store(db, a, names[i]);
		analysis_free(&a);
		if (m < 0) {
			fprintf(stderr, "mxbait analyzer: %s: cannot store\n", names[i]);
			continue;
		}
		adb_spool_mark(db, names[i], m);
		done++;
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return done;
}

int analyzer_pass(const char *data_dir, const struct analyze_limits *lim)
{
	char newdir[4096], *err = NULL;
	snprintf(newdir, sizeof(newdir), "%s/spool/new", data_dir);
	struct adb *db = adb_open(data_dir, &err);
	if (!db) {
		fprintf(stderr, "mxbait analyzer: %s\n", err ? err : "cannot open analysis.db");
		free(err);
		return -1;
	}
	struct env_ctx env = {0};
	bool waiting = false;
	env_open(&env, data_dir);
	int r = pass(db, &env, newdir, lim, NULL, &waiting);
	env_close(&env);
	adb_close(&db);
	return r;
}

int analyzer_run(const char *data_dir, volatile sig_atomic_t *stop)
{
	return analyzer_run_with(data_dir, NULL, stop);
}

int analyzer_run_with(const char *data_dir, const struct analyze_limits *limp,
		      volatile sig_atomic_t *stop)
{
	char newdir[4096], *err = NULL;
	struct analyze_limits lim;
	if (limp)
		lim = *limp;
	else
		analyze_limits_default(&lim);
	analyze_global_init();
	snprintf(newdir, sizeof(newdir), "%s/spool/new", data_dir);
	struct adb *db = adb_open(data_dir, &err);
	if (!db) {
		fprintf(stderr, "mxbait analyzer: %s\n", err ? err : "cannot open analysis.db");
		free(err);
		return -1;
	}
	struct env_ctx env = {0};
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int wd = -1;
	int rc = 0;
	bool dirty = true;
	while (!*stop) {
		if (ifd >= 0 && wd < 0)
			wd = inotify_add_watch(ifd, newdir, IN_MOVED_TO | IN_CLOSE_WRITE);
		bool waiting = false;
		if (dirty || wd < 0) {
			if (!env.db) /* the daemon may create mxbait.db after we start */
				env_open(&env, data_dir);
			if (pass(db, &env, newdir, &lim, stop, &waiting) < 0 && errno != ENOENT) {
				fprintf(stderr, "mxbait analyzer: %s: %s\n", newdir, strerror(errno));
				rc = -1;
				break;
			}
			dirty = waiting; /* retry files whose envelope was not recorded yet */
		}
		if (ifd >= 0 && wd >= 0) {
			struct pollfd p = {.fd = ifd, .events = POLLIN};
			int k = poll(&p, 1, 1000);
			if (k > 0) {
				char evbuf[4096];
				while (read(ifd, evbuf, sizeof(evbuf)) > 0)
					;
				dirty = true;
			}
		} else {
			sleep(1); /* no inotify (or new/ not there yet): poll */
		}
	}
	if (ifd >= 0)
		close(ifd);
	if (rm.sock >= 0)
		close(rm.sock); /* the worker sees the end of its input and exits */
	rm.sock = -1;
	env_close(&env);
	adb_close(&db);
	return rc;
}
