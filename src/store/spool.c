/*
 * spool: durable capture of messages in a Maildir, within a disk budget (see spool.h).
 *
 * Promises:
 * - A message reaches new/ only after its file was fsync'd, and its completion callback
 *   reports ok only after the rename into new/ and an fsync of new/ itself, so an
 *   acknowledged message survives a crash, and a crash never leaves a truncated file in
 *   new/ (a file is renamed only once its own fsync returned).
 * - Commits are made by one background thread that takes every commit queued so far as
 *   one group: the group's files are fsync'd *concurrently* (the commit thread and up
 *   to SPOOL_SYNC_WORKERS helper threads each take the next file of the group), then,
 *   once every fsync has returned, each file is renamed in queue order and new/ is
 *   fsync'd once for the group.  Completion callbacks run in queue order on the event
 *   loop thread (a pipe watched by the loop wakes it; no evthread locking is needed).
 *   Without an event base they run on the commit thread.
 * - The budget counts disk space, not file bytes: every file in tmp/, new/ and cur/
 *   costs its size rounded up to the filesystem's block size (statvfs f_frsize, 4 KiB
 *   on ext4 and tmpfs; or its allocated blocks, st_blocks, when that is more), which is
 *   what it takes on disk: counting bytes let 1 KB messages use ~4x (and tiny ones
 *   14x) the budget.  Space is reserved before bytes are written, so nothing is ever
 *   written past the budget; a failed or aborted message gives its space back.  tmp/
 *   files found at open are leftovers of a crash (never acknowledged) and are deleted.
 * - Retention (spool_expire) deletes old files through the spool, so their space
 *   returns to the budget at once; files deleted behind the spool's back (mxbait
 *   prune while the daemon runs) are noticed by spool_resync(), which recounts the
 *   directories without stopping the writers.
 *
 * Why concurrent fsyncs (measured 2026-11-27 on the bench VM, see docs/PERFORMANCE.md;
 * its / is ext4 *without* a journal on a virtio disk): fsyncing a group's files one
 * after the other costs one device round trip per file (data write, inode write,
 * cache flush; with a journal, one jbd2 commit each), so a group of 20 took 8-67 ms
 * and the spool ran at the speed of one fsync at a time.  Issued from several threads
 * at once, the writes queue together and the device overlaps them (with a journal,
 * jbd2 merges the commits): 3-11 ms for 20 in a micro-benchmark, and the daemon's
 * 1 KB median went from ~640 to ~1,000 msg/s in an A/B run.  syncfs(2) once per group
 * (one device flush) measured about the same (~1,150, within this disk's noise) but
 * writes back every dirty file of the whole filesystem (the SQLite WAL, other
 * programs' data), so its latency depends on whatever else runs on the machine: not
 * taken.  sync_file_range(2) before serial fsyncs did not help.  The renames wait for every fsync of the group, then new/ is
 * fsync'd once: one directory sync per group whatever its size.
 */
#include "store/spool.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/time.h>
#include <unistd.h>

/* Helper threads that fsync a group's files alongside the commit thread.  They spend
 * their time blocked in the kernel, not on a CPU, so more of them than cores is fine. */
#define SPOOL_SYNC_WORKERS 7
#define SPOOL_WBUF_MIN 4096
#define SPOOL_WBUF_MAX 65536

struct spool_msg {
	struct spool *sp;
	struct spool_msg *next;   /* commit / done queues */
	int fd;
	bool doomed;
	bool no_space;
	int saved_errno;
	uint64_t size;            /* bytes written */
	uint64_t reserved;        /* disk bytes counted in sp->used for this message */
	EVP_MD_CTX *md;
	/* Write-behind buffer: DATA arrives a line at a time; the bytes reach the file
	 * in one write(2) per SPOOL_WBUF_MAX (and at commit), not one per line.  It
	 * grows with what the client sent (from SPOOL_WBUF_MIN), so a connection that
	 * trickles bytes holds little memory. */
	char *wbuf;
	size_t wlen, wcap;
	char tmp_name[256];
	char new_name[256];
	char queue_id[24];
	char sha256[65];
	bool ok;                  /* commit outcome */
	spool_done_fn done;
	void *done_arg;
};

struct spool {
	char *dir;
	int tmp_fd;               /* directory fds */
	int new_fd;
	char host[72];            /* sanitised host name for file names */
	int pid;                  /* for file names (getpid() once, not per message) */
	uint64_t budget;
	uint64_t block;           /* the filesystem's allocation unit */

	pthread_mutex_t mu;       /* guards everything below */
	pthread_cond_t cv;        /* commit thread waits for work */
	uint64_t used;            /* disk bytes: files on disk + inflight */
	uint64_t inflight;        /* of which: reserved by messages not yet in new/ */
	unsigned seq;
	struct spool_msg *queue_head, **queue_tail;
	struct spool_msg *done_head, **done_tail;
	bool stop;
	uint64_t dir_fsyncs;
	uint64_t commits;
	uint64_t groups;
	uint64_t max_group;

	/* Concurrent fsync of one group (see the header comment).  sync_mu guards these;
	 * it is separate from mu so the event loop never waits behind an fsync. */
	pthread_mutex_t sync_mu;
	pthread_cond_t sync_cv;       /* helpers wait for files to sync */
	pthread_cond_t sync_done_cv;  /* the commit thread waits for the last one */
	struct spool_msg **sync_v;
	size_t sync_n, sync_next, sync_left;
	bool sync_stop;
	pthread_t sync_threads[SPOOL_SYNC_WORKERS];
	int nsync_threads;

	pthread_t thread;
	bool thread_started;
	struct event_base *base;
	struct event *wake_ev;
	int wake_rd, wake_wr;
};

static char *fmt_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *fmt_err(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* Maildir convention: '/' and ':' in the host name become \057 and \072; we also
 * replace anything unprintable so a file name is always plain. */
static void sanitise_host(const char *in, char *out, size_t outlen)
{
	size_t o = 0;
	if (!in || !*in)
		in = "localhost";
	for (const char *p = in; *p && o + 5 < outlen; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/') {
			memcpy(out + o, "\\057", 4);
			o += 4;
		} else if (c == ':') {
			memcpy(out + o, "\\072", 4);
			o += 4;
		} else if (c <= 0x20 || c >= 0x7F) {
			out[o++] = '_';
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = '\0';
}

static int mkdir_p(const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* Disk space of a file of size bytes with blocks 512-byte blocks allocated. */
static uint64_t disk_bytes(uint64_t block, uint64_t size, uint64_t blocks)
{
	uint64_t rounded = size ? (size + block - 1) / block * block : 0;
	uint64_t alloc = blocks * 512;
	return alloc > rounded ? alloc : rounded;
}

/* Sum the disk space of the regular files in dirfd; with remove, delete them instead. */
static int scan_dir(int dirfd, uint64_t block, bool remove, uint64_t *sum_r)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	rewinddir(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (remove)
			unlinkat(dirfd, de->d_name, 0);
		else
			*sum_r += disk_bytes(block, (uint64_t)st.st_size, (uint64_t)st.st_blocks);
	}
	closedir(d);
	return 0;
}

/* The filesystem's allocation unit (f_frsize), within sane bounds. */
static uint64_t fs_block(int fd)
{
	struct statvfs vfs;
	uint64_t b = 0;
	if (fstatvfs(fd, &vfs) == 0)
		b = vfs.f_frsize ? vfs.f_frsize : vfs.f_bsize;
	if (b < 512 || b > 1024 * 1024)
		b = 4096;
	return b;
}

static int open_subdir(const char *dir, const char *sub, char **err_r)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, sub);
	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		*err_r = fmt_err("spool: cannot create %s: %s", path, strerror(errno));
		return -1;
	}
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		*err_r = fmt_err("spool: cannot open %s: %s", path, strerror(errno));
	return fd;
}

static void *commit_thread(void *arg);
static void *sync_thread(void *arg);
static void on_wake(evutil_socket_t fd, short what, void *arg);

struct spool *spool_open(const char *dir, uint64_t budget, const char *hostname,
			 struct event_base *base, char **err_r)
{
	char *dummy = NULL;
	if (!err_r)
		err_r = &dummy;
	*err_r = NULL;
	struct spool *sp = calloc(1, sizeof(*sp));
	if (!sp) {
		*err_r = fmt_err("spool: out of memory");
		return NULL;
	}
	sp->tmp_fd = sp->new_fd = sp->wake_rd = sp->wake_wr = -1;
	sp->budget = budget;
	sp->base = base;
	sp->queue_tail = &sp->queue_head;
	sp->done_tail = &sp->done_head;
	pthread_mutex_init(&sp->mu, NULL);
	pthread_cond_init(&sp->cv, NULL);
	pthread_mutex_init(&sp->sync_mu, NULL);
	pthread_cond_init(&sp->sync_cv, NULL);
	pthread_cond_init(&sp->sync_done_cv, NULL);
	sanitise_host(hostname, sp->host, sizeof(sp->host));
	sp->pid = (int)getpid();
	sp->dir = strdup(dir);
	if (!sp->dir) {
		*err_r = fmt_err("spool: out of memory");
		goto fail;
	}
	if (mkdir_p(dir) < 0) {
		*err_r = fmt_err("spool: cannot create %s: %s", dir, strerror(errno));
		goto fail;
	}
	sp->tmp_fd = open_subdir(dir, "tmp", err_r);
	if (sp->tmp_fd < 0)
		goto fail;
	sp->new_fd = open_subdir(dir, "new", err_r);
	if (sp->new_fd < 0)
		goto fail;
	int cur_fd = open_subdir(dir, "cur", err_r);
	if (cur_fd < 0)
		goto fail;
	sp->block = fs_block(sp->new_fd);
	/* A file left in tmp/ by a crash was never acknowledged: the client was told
	 * nothing or 4xx, so it will retry.  Deleting it frees its budget. */
	uint64_t used = 0;
	if (scan_dir(sp->tmp_fd, sp->block, true, &used) < 0 ||
	    scan_dir(sp->new_fd, sp->block, false, &used) < 0 ||
	    scan_dir(cur_fd, sp->block, false, &used) < 0) {
		*err_r = fmt_err("spool: cannot scan %s: %s", dir, strerror(errno));
		close(cur_fd);
		goto fail;
	}
	close(cur_fd);
	sp->used = used;

	if (base) {
		int p[2];
		if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) {
			*err_r = fmt_err("spool: pipe: %s", strerror(errno));
			goto fail;
		}
		sp->wake_rd = p[0];
		sp->wake_wr = p[1];
		sp->wake_ev = event_new(base, sp->wake_rd, EV_READ | EV_PERSIST, on_wake, sp);
		if (!sp->wake_ev || event_add(sp->wake_ev, NULL) < 0) {
			*err_r = fmt_err("spool: cannot watch the wake-up pipe");
			goto fail;
		}
	}
	/* Helpers are optional: with none (thread limits) the commit thread syncs the
	 * group alone, serially, which is slower but as durable. */
	for (int i = 0; i < SPOOL_SYNC_WORKERS; i++) {
		if (pthread_create(&sp->sync_threads[i], NULL, sync_thread, sp) != 0)
			break;
		sp->nsync_threads++;
	}
	int e = pthread_create(&sp->thread, NULL, commit_thread, sp);
	if (e) {
		*err_r = fmt_err("spool: cannot start the commit thread: %s", strerror(e));
		goto fail;
	}
	sp->thread_started = true;
	return sp;
fail:
	if (err_r == &dummy)
		free(dummy);
	spool_close(&sp);
	return NULL;
}

/* Run the completion callbacks of finished commits (event loop thread). */
static void run_done(struct spool *sp)
{
	pthread_mutex_lock(&sp->mu);
	struct spool_msg *m = sp->done_head;
	sp->done_head = NULL;
	sp->done_tail = &sp->done_head;
	pthread_mutex_unlock(&sp->mu);
	while (m) {
		struct spool_msg *next = m->next;
		struct spool_result r;
		memset(&r, 0, sizeof(r));
		r.ok = m->ok;
		r.no_space = m->no_space;
		snprintf(r.queue_id, sizeof(r.queue_id), "%s", m->queue_id);
		if (m->ok) {
			snprintf(r.name, sizeof(r.name), "%s", m->new_name);
			memcpy(r.sha256, m->sha256, sizeof(r.sha256));
			r.size = m->size;
		}
		spool_done_fn done = m->done;
		void *arg = m->done_arg;
		free(m);
		if (done)
			done(arg, &r);
		m = next;
	}
}

static void on_wake(evutil_socket_t fd, short what, void *arg)
{
	char tmp[64];
	while (read(fd, tmp, sizeof(tmp)) > 0)
		;
	run_done(arg);
}

void spool_close(struct spool **spp)
{
	struct spool *sp = spp ? *spp : NULL;
	if (!sp)
		return;
	if (sp->thread_started) {
		pthread_mutex_lock(&sp->mu);
		sp->stop = true;
		pthread_cond_signal(&sp->cv);
		pthread_mutex_unlock(&sp->mu);
		pthread_join(sp->thread, NULL);
	}
	if (sp->nsync_threads) {
		pthread_mutex_lock(&sp->sync_mu);
		sp->sync_stop = true;
		pthread_cond_broadcast(&sp->sync_cv);
		pthread_mutex_unlock(&sp->sync_mu);
		for (int i = 0; i < sp->nsync_threads; i++)
			pthread_join(sp->sync_threads[i], NULL);
	}
	/* The thread finished every queued commit; report them here. */
	run_done(sp);
	if (sp->wake_ev)
		event_free(sp->wake_ev);
	if (sp->wake_rd >= 0)
		close(sp->wake_rd);
	if (sp->wake_wr >= 0)
		close(sp->wake_wr);
	if (sp->tmp_fd >= 0)
		close(sp->tmp_fd);
	if (sp->new_fd >= 0)
		close(sp->new_fd);
	pthread_mutex_destroy(&sp->mu);
	pthread_cond_destroy(&sp->cv);
	pthread_mutex_destroy(&sp->sync_mu);
	pthread_cond_destroy(&sp->sync_cv);
	pthread_cond_destroy(&sp->sync_done_cv);
	free(sp->dir);
	free(sp);
	*spp = NULL;
}

/* A message that will not reach new/ gives its space back. */
static void release(struct spool *sp, uint64_t n)
{
	pthread_mutex_lock(&sp->mu);
	sp->used = sp->used >= n ? sp->used - n : 0;
	sp->inflight = sp->inflight >= n ? sp->inflight - n : 0;
	pthread_mutex_unlock(&sp->mu);
}

struct spool_msg *spool_msg_begin(struct spool *sp, char *queue_id_r, size_t len)
{
	pthread_mutex_lock(&sp->mu);
	bool full = sp->budget && sp->used >= sp->budget;
	unsigned seq = ++sp->seq;
	pthread_mutex_unlock(&sp->mu);
	if (full) {
		errno = ENOSPC;
		return NULL;
	}
	struct spool_msg *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->sp = sp;
	m->fd = -1;
	m->md = EVP_MD_CTX_new();
	if (!m->md || EVP_DigestInit_ex(m->md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(m->md);
		free(m);
		errno = ENOMEM;
		return NULL;
	}
	struct timeval tv;
	gettimeofday(&tv, NULL);
	/* The tmp name need not contain the queue id (the inode is known only once
	 * the file exists); pid + sequence make it unique among live writers. */
	snprintf(m->tmp_name, sizeof(m->tmp_name), "%lld.M%06ldP%dN%u.%s",
		 (long long)tv.tv_sec, (long)tv.tv_usec, sp->pid, seq, sp->host);
	m->fd = openat(sp->tmp_fd, m->tmp_name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	struct stat st;
	if (m->fd < 0 || fstat(m->fd, &st) < 0) {
		int e = errno;
		if (m->fd >= 0) {
			close(m->fd);
			unlinkat(sp->tmp_fd, m->tmp_name, 0);
		}
		EVP_MD_CTX_free(m->md);
		free(m);
		errno = e;
		return NULL;
	}
	/* Postfix short queue id: microseconds in 5 hex digits, then the inode. */
	snprintf(m->queue_id, sizeof(m->queue_id), "%05X%lX", (unsigned)tv.tv_usec,
		 (unsigned long)st.st_ino);
	snprintf(m->new_name, sizeof(m->new_name), "%lld.M%06ldP%dQ%s.%s",
		 (long long)tv.tv_sec, (long)tv.tv_usec, sp->pid, m->queue_id, sp->host);
	if (queue_id_r && len)
		snprintf(queue_id_r, len, "%s", m->queue_id);
	return m;
}

static void doom(struct spool_msg *m, int e)
{
	m->doomed = true;
	m->saved_errno = e;
	if (e == ENOSPC || e == EDQUOT)
		m->no_space = true;
}

/* write(2) all of data to the message's file and hash it; on error the message is
 * doomed and errno set. */
static int write_all(struct spool_msg *m, const char *data, size_t len)
{
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t n = write(m->fd, p, left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			doom(m, e);
			errno = e;
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	EVP_DigestUpdate(m->md, data, len);
	return 0;
}

static int flush_wbuf(struct spool_msg *m)
{
	if (m->wlen == 0)
		return 0;
	int r = write_all(m, m->wbuf, m->wlen);
	m->wlen = 0;
	return r;
}

static void free_wbuf(struct spool_msg *m)
{
	free(m->wbuf);
	m->wbuf = NULL;
	m->wlen = m->wcap = 0;
}

int spool_msg_write(struct spool_msg *m, const void *data, size_t len)
{
	if (!m) {
		errno = EINVAL;
		return -1;
	}
	if (m->doomed) {
		errno = m->saved_errno ? m->saved_errno : EIO;
		return -1;
	}
	if (len == 0)
		return 0;
	struct spool *sp = m->sp;
	/* Disk space after this write: the size rounded up to whole blocks. */
	uint64_t need = m->size + len;
	need = need > UINT64_MAX - sp->block ? UINT64_MAX
					      : (need + sp->block - 1) / sp->block * sp->block;
	uint64_t extra = need > m->reserved ? need - m->reserved : 0;
	pthread_mutex_lock(&sp->mu);
	bool over = sp->budget && extra &&
		    (extra > sp->budget || sp->used > sp->budget - extra);
	if (!over) {
		sp->used += extra;
		sp->inflight += extra;
		m->reserved += extra;
	}
	pthread_mutex_unlock(&sp->mu);
	if (over) {
		doom(m, ENOSPC);
		errno = ENOSPC;
		return -1;
	}
	m->size += len;
	if (m->wlen + len > SPOOL_WBUF_MAX && flush_wbuf(m) < 0)
		return -1;
	if (len >= SPOOL_WBUF_MAX) /* big enough on its own: no copy */
		return write_all(m, data, len);
	if (m->wlen + len > m->wcap) {
		size_t cap = m->wcap ? m->wcap : SPOOL_WBUF_MIN;
		while (cap < m->wlen + len)
			cap *= 2;
		if (cap > SPOOL_WBUF_MAX)
			cap = SPOOL_WBUF_MAX;
		char *nb = realloc(m->wbuf, cap);
		if (!nb) { /* no memory for the buffer: write through */
			if (flush_wbuf(m) < 0)
				return -1;
			return write_all(m, data, len);
		}
		m->wbuf = nb;
		m->wcap = cap;
	}
	memcpy(m->wbuf + m->wlen, data, len);
	m->wlen += len;
	return 0;
}

static void wake_loop(struct spool *sp)
{
	if (sp->wake_wr < 0)
		return;
	char c = 1;
	ssize_t n;
	do
		n = write(sp->wake_wr, &c, 1);
	while (n < 0 && errno == EINTR);
	/* EAGAIN: the pipe is full, so the loop is already due to wake up. */
}

void spool_msg_commit(struct spool_msg **mp, spool_done_fn done, void *arg)
{
	struct spool_msg *m = mp ? *mp : NULL;
	if (!m)
		return;
	*mp = NULL;
	m->done = done;
	m->done_arg = arg;
	/* The buffered tail reaches the file here, on the caller's thread; a failure
	 * dooms the message, which then completes with ok=false. */
	if (!m->doomed)
		flush_wbuf(m);
	free_wbuf(m);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	if (EVP_DigestFinal_ex(m->md, md, &mdlen) != 1 || mdlen != 32)
		doom(m, EIO);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(m->sha256 + 2 * i, 3, "%02x", md[i]);
	EVP_MD_CTX_free(m->md);
	m->md = NULL;
	struct spool *sp = m->sp;
	pthread_mutex_lock(&sp->mu);
	m->next = NULL;
	*sp->queue_tail = m;
	sp->queue_tail = &m->next;
	pthread_cond_signal(&sp->cv);
	pthread_mutex_unlock(&sp->mu);
}

void spool_msg_abort(struct spool_msg **mp)
{
	struct spool_msg *m = mp ? *mp : NULL;
	if (!m)
		return;
	*mp = NULL;
	if (m->fd >= 0)
		close(m->fd);
	unlinkat(m->sp->tmp_fd, m->tmp_name, 0);
	release(m->sp, m->reserved);
	EVP_MD_CTX_free(m->md);
	free_wbuf(m);
	free(m);
}

/* Take the next file of the group being synced and fsync it; false when none is left.
 * Called with sync_mu held; returns with it held. */
static bool sync_one(struct spool *sp)
{
	if (sp->sync_next >= sp->sync_n)
		return false;
	struct spool_msg *m = sp->sync_v[sp->sync_next++];
	pthread_mutex_unlock(&sp->sync_mu);
	/* Only this thread touches m until sync_left says it is done. */
	if (fsync(m->fd) < 0)
		doom(m, errno);
	pthread_mutex_lock(&sp->sync_mu);
	if (--sp->sync_left == 0)
		pthread_cond_signal(&sp->sync_done_cv);
	return true;
}

static void *sync_thread(void *arg)
{
	struct spool *sp = arg;
	pthread_setname_np(pthread_self(), "mxb-fsync");
	pthread_mutex_lock(&sp->sync_mu);
	for (;;) {
		while (!sp->sync_stop && sp->sync_next >= sp->sync_n)
			pthread_cond_wait(&sp->sync_cv, &sp->sync_mu);
		if (sp->sync_stop)
			break;
		while (sync_one(sp))
			;
	}
	pthread_mutex_unlock(&sp->sync_mu);
	return NULL;
}

/* fsync every file in v[0..n) concurrently; returns when all have returned (each
 * message whose fsync failed is doomed). */
static void sync_files(struct spool *sp, struct spool_msg **v, size_t n)
{
	if (n == 0)
		return;
	pthread_mutex_lock(&sp->sync_mu);
	sp->sync_v = v;
	sp->sync_n = n;
	sp->sync_next = 0;
	sp->sync_left = n;
	/* Wake as many helpers as there are files beyond the one this thread takes. */
	size_t wake = n - 1;
	if (wake >= (size_t)sp->nsync_threads)
		pthread_cond_broadcast(&sp->sync_cv);
	else
		for (size_t i = 0; i < wake; i++)
			pthread_cond_signal(&sp->sync_cv);
	while (sync_one(sp))
		;
	while (sp->sync_left)
		pthread_cond_wait(&sp->sync_done_cv, &sp->sync_mu);
	sp->sync_v = NULL;
	sp->sync_n = sp->sync_next = 0;
	pthread_mutex_unlock(&sp->sync_mu);
}

/* Commit thread: one group at a time. */
static void commit_group(struct spool *sp, struct spool_msg *group, size_t count)
{
	struct spool_msg *one[1];
	struct spool_msg **v = count > 1 ? calloc(count, sizeof(*v)) : one;
	size_t n = 0;
	for (struct spool_msg *m = group; m; m = m->next) {
		m->ok = false;
		if (m->doomed)
			continue;
		if (v)
			v[n++] = m;
		else if (fsync(m->fd) < 0) /* no memory for the array: sync it here */
			doom(m, errno);
	}
	/* Every rename below waits for every fsync of the group: a file is in new/
	 * only with its data and inode on disk. */
	sync_files(sp, v, n);
	if (v != one)
		free(v);

	bool any_renamed = false;
	for (struct spool_msg *m = group; m; m = m->next) {
		close(m->fd);
		m->fd = -1;
		if (m->doomed) {
			unlinkat(sp->tmp_fd, m->tmp_name, 0);
			continue;
		}
		int r = renameat2(sp->tmp_fd, m->tmp_name, sp->new_fd, m->new_name,
				  RENAME_NOREPLACE);
		if (r < 0 && errno == EINVAL) /* filesystem without RENAME_NOREPLACE */
			r = renameat(sp->tmp_fd, m->tmp_name, sp->new_fd, m->new_name);
		if (r < 0) {
			doom(m, errno);
			unlinkat(sp->tmp_fd, m->tmp_name, 0);
			continue;
		}
		m->ok = true;
		any_renamed = true;
	}
	if (any_renamed) {
		int r = fsync(sp->new_fd);
		int e = errno;
		pthread_mutex_lock(&sp->mu);
		sp->dir_fsyncs++;
		pthread_mutex_unlock(&sp->mu);
		if (r < 0) {
			/* The renames may not survive a crash: refuse them all (the
			 * clients get 4xx and retry) rather than acknowledge. */
			for (struct spool_msg *m = group; m; m = m->next) {
				if (!m->ok)
					continue;
				m->ok = false;
				doom(m, e);
				unlinkat(sp->new_fd, m->new_name, 0);
			}
		}
	}
	uint64_t freed = 0, landed = 0;
	for (struct spool_msg *m = group; m; m = m->next) {
		if (!m->ok)
			freed += m->reserved;
		else
			landed += m->reserved;
	}
	if (freed)
		release(sp, freed);
	if (landed) { /* now counted as files in new/, no longer in flight */
		pthread_mutex_lock(&sp->mu);
		sp->inflight = sp->inflight >= landed ? sp->inflight - landed : 0;
		pthread_mutex_unlock(&sp->mu);
	}
}

static void *commit_thread(void *arg)
{
	struct spool *sp = arg;
	pthread_setname_np(pthread_self(), "mxb-spool");
	pthread_mutex_lock(&sp->mu);
	for (;;) {
		while (!sp->queue_head && !sp->stop)
			pthread_cond_wait(&sp->cv, &sp->mu);
		if (!sp->queue_head && sp->stop)
			break;
		/* Everything queued meanwhile is one group. */
		struct spool_msg *group = sp->queue_head;
		struct spool_msg **tail = sp->queue_tail;
		sp->queue_head = NULL;
		sp->queue_tail = &sp->queue_head;
		pthread_mutex_unlock(&sp->mu);

		size_t count = 0;
		for (struct spool_msg *m = group; m; m = m->next)
			count++;
		commit_group(sp, group, count);

		pthread_mutex_lock(&sp->mu);
		sp->commits += count;
		sp->groups++;
		if (count > sp->max_group)
			sp->max_group = count;
		*sp->done_tail = group;
		sp->done_tail = tail;
		bool loop = sp->base != NULL;
		pthread_mutex_unlock(&sp->mu);
		if (loop)
			wake_loop(sp);
		else
			run_done(sp);
		pthread_mutex_lock(&sp->mu);
	}
	pthread_mutex_unlock(&sp->mu);
	return NULL;
}

/* ---- retention and recount ---- */

static long expire_dir(int dirfd, const char *sub, uint64_t block, int64_t cutoff_us,
		       bool dry_run, spool_expire_fn fn, void *ctx, uint64_t *bytes_r)
{
	int fd = dup(dirfd);
	if (fd < 0)
		return -1;
	DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -1;
	}
	long n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		int64_t mtime_us = (int64_t)st.st_mtim.tv_sec * 1000000 + st.st_mtim.tv_nsec / 1000;
		if (mtime_us >= cutoff_us)
			continue;
		uint64_t bytes = disk_bytes(block, (uint64_t)st.st_size, (uint64_t)st.st_blocks);
		if (!dry_run && unlinkat(dirfd, de->d_name, 0) < 0)
			continue;
		n++;
		*bytes_r += bytes;
		if (fn)
			fn(ctx, sub, de->d_name, bytes);
	}
	closedir(d);
	return n;
}

static long expire_at(const char *dir, uint64_t block, int64_t cutoff_us, bool dry_run,
		      spool_expire_fn fn, void *ctx, uint64_t *bytes_r)
{
	static const char *const subs[] = {"new", "cur"};
	long total = 0;
	for (size_t i = 0; i < 2; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/%s", dir, subs[i]);
		int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			return -1;
		}
		if (!block)
			block = fs_block(fd);
		long n = expire_dir(fd, subs[i], block, cutoff_us, dry_run, fn, ctx, bytes_r);
		int e = errno;
		close(fd);
		if (n < 0) {
			errno = e;
			return -1;
		}
		total += n;
	}
	return total;
}

long spool_dir_expire(const char *spool_dir, int64_t cutoff_us, bool dry_run,
		      spool_expire_fn fn, void *ctx)
{
	uint64_t bytes = 0;
	return expire_at(spool_dir, 0, cutoff_us, dry_run, fn, ctx, &bytes);
}

long spool_expire(struct spool *sp, int64_t cutoff_us, spool_expire_fn fn, void *ctx)
{
	uint64_t bytes = 0;
	long n = expire_at(sp->dir, sp->block, cutoff_us, false, fn, ctx, &bytes);
	if (bytes) {
		pthread_mutex_lock(&sp->mu);
		sp->used = sp->used >= bytes ? sp->used - bytes : 0;
		pthread_mutex_unlock(&sp->mu);
	}
	return n;
}

int spool_resync(struct spool *sp)
{
	pthread_mutex_lock(&sp->mu);
	uint64_t on_disk_before = sp->used - (sp->inflight <= sp->used ? sp->inflight : sp->used);
	pthread_mutex_unlock(&sp->mu);
	/* Counted without the lock: commits go on meanwhile.  A file renamed into new/
	 * during the scan may be counted twice until the next recount (never missed). */
	uint64_t scanned = 0;
	int cur_fd = openat(sp->new_fd, "../cur", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc = scan_dir(sp->new_fd, sp->block, false, &scanned);
	if (rc == 0 && cur_fd >= 0)
		rc = scan_dir(cur_fd, sp->block, false, &scanned);
	if (cur_fd >= 0)
		close(cur_fd);
	if (rc < 0)
		return -1;
	pthread_mutex_lock(&sp->mu);
	if (scanned >= on_disk_before)
		sp->used += scanned - on_disk_before;
	else
		sp->used = sp->used >= on_disk_before - scanned ? sp->used - (on_disk_before - scanned)
								 : 0;
	pthread_mutex_unlock(&sp->mu);
	return 0;
}

uint64_t spool_block_size(const struct spool *sp)
{
	return sp->block;
}

uint64_t spool_used(const struct spool *sp)
{
	struct spool *s = (struct spool *)sp;
	pthread_mutex_lock(&s->mu);
	uint64_t u = s->used;
	pthread_mutex_unlock(&s->mu);
	return u;
}

uint64_t spool_budget(const struct spool *sp)
{
	return sp->budget;
}

uint64_t spool_dir_fsyncs(const struct spool *sp)
{
	struct spool *s = (struct spool *)sp;
	pthread_mutex_lock(&s->mu);
	uint64_t n = s->dir_fsyncs;
	pthread_mutex_unlock(&s->mu);
	return n;
}

void spool_group_stats(const struct spool *sp, uint64_t *groups_r, uint64_t *max_group_r)
{
	struct spool *s = (struct spool *)sp;
	pthread_mutex_lock(&s->mu);
	if (groups_r)
		*groups_r = s->groups;
	if (max_group_r)
		*max_group_r = s->max_group;
	pthread_mutex_unlock(&s->mu);
}
