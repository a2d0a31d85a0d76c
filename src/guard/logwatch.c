/*
 * logwatch: the log-following thread (see logwatch.h).
 */
#include "guard/logwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-journal.h>

#include "core/config.h"
#include "core/log.h"
#include "guard/logparse.h"

#define POLL_MS 250
#define CHUNK (1024 * 1024)

struct wfile {
	char *path;
	int fd;
	ino_t ino;
	dev_t dev;
	off_t off;
	bool warned;
	char *partial;      /* an incomplete last line */
	size_t plen;
	/* the file's first bytes: a file truncated and rewritten past the old size (a
	 * copytruncate rotation between two polls) shows as a different beginning */
	char head[128];
	size_t head_len;
};

struct logwatch {
	struct guard *g;
	struct event *deliver_ev;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	bool stop;
	struct log_obs *queue;
	size_t n_queue;
	unsigned long long dropped;
	struct wfile *files;
	size_t n_files;
	sd_journal *journal;
	struct logparse *lp;
	char *buf;
};

static void enqueue(struct logwatch *lw, const struct log_obs *o)
{
	pthread_mutex_lock(&lw->mu);
	if (lw->n_queue >= LOGWATCH_QUEUE_MAX) {
		lw->dropped++;
	} else {
		lw->queue[lw->n_queue++] = *o;
		if (lw->n_queue == 1)
			event_active(lw->deliver_ev, EV_READ, 1);
	}
	pthread_mutex_unlock(&lw->mu);
}

static void deliver_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct logwatch *lw = arg;
	static struct log_obs batch[512];
	for (;;) {
		pthread_mutex_lock(&lw->mu);
		size_t n = lw->n_queue < 512 ? lw->n_queue : 512;
		memcpy(batch, lw->queue, n * sizeof(*batch));
		memmove(lw->queue, lw->queue + n, (lw->n_queue - n) * sizeof(*batch));
		lw->n_queue -= n;
		pthread_mutex_unlock(&lw->mu);
		if (!n)
			return;
		for (size_t i = 0; i < n; i++)
			guard_log_obs(lw->g, &batch[i]);
	}
}

static void parse_lines(struct logwatch *lw, struct wfile *f, const char *data, size_t len)
{
	size_t start = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		struct log_obs o;
		if (f->plen) {
			/* the rest of a line begun in the last read */
			size_t add = i - start;
			if (f->plen + add <= LOGPARSE_LINE_MAX) {
				memcpy(f->partial + f->plen, data + start, add);
				if (logparse_line(lw->lp, f->partial, f->plen + add, &o) != LOG_NONE)
					enqueue(lw, &o);
			}
			f->plen = 0;
		} else if (logparse_line(lw->lp, data + start, i - start, &o) != LOG_NONE) {
			enqueue(lw, &o);
		}
		start = i + 1;
	}
	size_t rest = len - start;
	if (rest) {
		if (f->plen + rest <= LOGPARSE_LINE_MAX) {
			memcpy(f->partial + f->plen, data + start, rest);
			f->plen += rest;
		} else {
			f->plen = LOGPARSE_LINE_MAX + 1; /* too long: dropped at its end */
		}
	}
}

static void read_to_end(struct logwatch *lw, struct wfile *f)
{
	for (;;) {
		ssize_t n = pread(f->fd, lw->buf, CHUNK, f->off);
		if (n <= 0)
			return;
		f->off += n;
		parse_lines(lw, f, lw->buf, (size_t)n);
	}
}

static void file_open(struct wfile *f, bool at_end)
{
	int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		if (fd >= 0)
			close(fd);
		if (!f->warned)
			log_msg(LOG_WARNING, NULL, "log watch: cannot read %s: %s (retrying)",
				f->path, strerror(errno));
		f->warned = true;
		return;
	}
	f->warned = false;
	f->fd = fd;
	f->ino = st.st_ino;
	f->dev = st.st_dev;
	f->off = at_end ? st.st_size : 0;
	f->plen = 0;
	f->head_len = 0;
}

/* Remember the beginning (up to 128 bytes), or say it changed. */
static bool head_changed(struct wfile *f)
{
	char now[sizeof(f->head)];
	ssize_t n = pread(f->fd, now, sizeof(now), 0);
	if (n < 0)
		return false;
	if ((size_t)n < f->head_len || memcmp(now, f->head, f->head_len))
		return true;
	if ((size_t)n > f->head_len) {
		memcpy(f->head, now, (size_t)n);
		f->head_len = (size_t)n;
	}
	return false;
}

static void poll_file(struct logwatch *lw, struct wfile *f)
{
	if (f->fd < 0) {
		file_open(f, false); /* appeared after start: read it all */
		if (f->fd < 0)
			return;
	}
	struct stat st, pst;
	if ((fstat(f->fd, &st) == 0 && st.st_size < f->off) || head_changed(f)) {
		f->off = 0; /* truncated */
		f->plen = 0;
		f->head_len = 0;
		head_changed(f);
	}
	read_to_end(lw, f);
	if (stat(f->path, &pst) != 0 || pst.st_ino != f->ino || pst.st_dev != f->dev) {
		/* rotated: the old file is read to its end above; the new one from its start */
		read_to_end(lw, f);
		close(f->fd);
		f->fd = -1;
		file_open(f, false);
		if (f->fd >= 0)
			read_to_end(lw, f);
	}
}

static void poll_journal(struct logwatch *lw)
{
	int r;
	while ((r = sd_journal_next(lw->journal)) > 0) {
		const void *idv, *msgv;
		size_t il, ml;
		if (sd_journal_get_data(lw->journal, "SYSLOG_IDENTIFIER", &idv, &il) < 0 ||
		    sd_journal_get_data(lw->journal, "MESSAGE", &msgv, &ml) < 0)
			continue;
		const char *id = (const char *)idv + 18, *msg = (const char *)msgv + 8;
		il -= 18;
		ml -= 8;
		if (!(il >= 7 && (!memcmp(id, "postfix", 7) || !memcmp(id, "dovecot", 7))))
			continue;
		struct log_obs o;
		if (logparse_entry(lw->lp, id, il, msg, ml, &o) != LOG_NONE)
			enqueue(lw, &o);
	}
}

static void *thread_main(void *arg)
{
	struct logwatch *lw = arg;
	for (;;) {
		pthread_mutex_lock(&lw->mu);
		bool stop = lw->stop;
		pthread_mutex_unlock(&lw->mu);
		if (stop)
			break;
		for (size_t i = 0; i < lw->n_files; i++)
			poll_file(lw, &lw->files[i]);
		if (lw->journal) {
			poll_journal(lw);
			sd_journal_wait(lw->journal, POLL_MS * 1000);
		} else {
			struct timespec ts = { 0, POLL_MS * 1000000L };
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

struct logwatch *logwatch_start(const struct mxb_config *cfg, struct event_base *base,
				struct guard *g, char **err_r)
{
	struct logwatch *lw = calloc(1, sizeof(*lw));
	if (!lw)
		goto oom;
	lw->g = g;
	pthread_mutex_init(&lw->mu, NULL);
	lw->queue = calloc(LOGWATCH_QUEUE_MAX, sizeof(*lw->queue));
	lw->buf = malloc(CHUNK);
	lw->lp = logparse_new();
	lw->files = calloc(cfg->n_watch_log_files + 1, sizeof(*lw->files));
	lw->deliver_ev = event_new(base, -1, 0, deliver_cb, lw);
	if (!lw->queue || !lw->buf || !lw->lp || !lw->files || !lw->deliver_ev)
		goto oom;
	for (size_t i = 0; i < cfg->n_watch_log_files; i++) {
		struct wfile *f = &lw->files[lw->n_files++];
		f->fd = -1;
		f->path = strdup(cfg->watch_log_files[i]);
		f->partial = malloc(LOGPARSE_LINE_MAX + 1);
		if (!f->path || !f->partial)
			goto oom;
		file_open(f, true);
	}
	if (cfg->watch_journal) {
		int r = *cfg->watch_journal_directory
			? sd_journal_open_directory(&lw->journal, cfg->watch_journal_directory, 0)
			: sd_journal_open(&lw->journal, SD_JOURNAL_LOCAL_ONLY);
		if (r < 0 || sd_journal_seek_tail(lw->journal) < 0) {
			char m[300];
			snprintf(m, sizeof(m), "log watch: cannot open the journal%s%s: %s",
				 *cfg->watch_journal_directory ? " in " : "",
				 cfg->watch_journal_directory, strerror(-r));
			*err_r = strdup(m);
			logwatch_stop(&lw);
			return NULL;
		}
		/* at the tail: the next entry read is the first one written from now on */
		sd_journal_previous(lw->journal);
	}
	if (pthread_create(&lw->thread, NULL, thread_main, lw) != 0) {
		*err_r = strdup("log watch: cannot start its thread");
		logwatch_stop(&lw);
		return NULL;
	}
	lw->thread_started = true;
	return lw;
oom:
	*err_r = strdup("log watch: out of memory");
	logwatch_stop(&lw);
	return NULL;
}

void logwatch_stop(struct logwatch **lwp)
{
	struct logwatch *lw = lwp ? *lwp : NULL;
	if (!lw)
		return;
	if (lw->thread_started) {
		pthread_mutex_lock(&lw->mu);
		lw->stop = true;
		pthread_mutex_unlock(&lw->mu);
		pthread_join(lw->thread, NULL);
	}
	if (lw->dropped)
		log_msg(LOG_WARNING, NULL, "log watch: %llu observations dropped (queue full)",
			lw->dropped);
	for (size_t i = 0; lw->files && i < lw->n_files; i++) {
		if (lw->files[i].fd >= 0)
			close(lw->files[i].fd);
		free(lw->files[i].path);
		free(lw->files[i].partial);
	}
	free(lw->files);
	if (lw->journal)
		sd_journal_close(lw->journal);
	if (lw->deliver_ev)
		event_free(lw->deliver_ev);
	logparse_free(&lw->lp);
	free(lw->queue);
	free(lw->buf);
	pthread_mutex_destroy(&lw->mu);
	free(lw);
	*lwp = NULL;
}
