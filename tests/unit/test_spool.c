/* test_spool: the Maildir spool: commit, abort, budget edges, stale tmp, queue ids,
 * group commit, error paths. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "store/spool.h"

struct done_rec {
	int calls;
	struct spool_result r;
};

static void on_done(void *arg, const struct spool_result *r)
{
	struct done_rec *d = arg;
	d->calls++;
	d->r = *r;
}

static char *make_dir(void)
{
	char tmpl[] = "/tmp/mxb-spool-XXXXXX";
	char *d = mkdtemp(tmpl);
	assert_non_null(d);
	return strdup(d);
}

static void rm_rf(const char *path)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static int count_files(const char *dir, const char *sub)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	DIR *d = opendir(p);
	if (!d)
		return -1;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static void run_until(struct event_base *base, const int *calls, int want)
{
	for (int i = 0; i < 5000 && *calls < want; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(1000);
	assert_int_equal(*calls, want);
}

static void write_file(const char *path, size_t n)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	for (size_t i = 0; i < n; i++)
		fputc('x', f);
	fclose(f);
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned mdlen = 0;
	assert_int_equal(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL), 1);
	for (unsigned i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void test_commit(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	char *err = NULL;
	struct spool *sp = spool_open(dir, 0, "mx/1:test", base, &err);
	assert_non_null(sp);
	assert_null(err);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 0);
	assert_int_equal(count_files(dir, "cur"), 0);

	char qid[24];
	struct spool_msg *m = spool_msg_begin(sp, qid, sizeof(qid));
	assert_non_null(m);
	const char *a = "Received: from x\r\n", *b = "Subject: hi\r\n\r\nbody\r\n";
	assert_int_equal(spool_msg_write(m, a, strlen(a)), 0);
	assert_int_equal(spool_msg_write(m, b, strlen(b)), 0);
	assert_int_equal(spool_msg_write(m, b, 0), 0);
	assert_int_equal(count_files(dir, "tmp"), 1);
	/* Disk space: the bytes rounded up to the filesystem's block. */
	uint64_t blk = spool_block_size(sp);
	assert_true(blk >= 512);
	assert_int_equal(spool_used(sp), blk);

	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	assert_null(m);
	/* The callback runs on the loop, never inside commit. */
	assert_int_equal(d.calls, 0);
	run_until(base, &d.calls, 1);
	assert_true(d.r.ok);
	assert_false(d.r.no_space);
	assert_string_equal(d.r.queue_id, qid);
	assert_int_equal(d.r.size, strlen(a) + strlen(b));
	/* When success is reported the file is in new/, whole, and nothing in tmp/. */
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 1);
	char path[512], content[256];
	snprintf(path, sizeof(path), "%s/new/%s", dir, d.r.name);
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	size_t n = fread(content, 1, sizeof(content), f);
	fclose(f);
	assert_int_equal(n, strlen(a) + strlen(b));
	char hex[65];
	sha256_hex(content, n, hex);
	assert_string_equal(d.r.sha256, hex);

	/* Queue id: %05X of the microseconds, then %lX of the inode, upper case. */
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	char ino[24];
	snprintf(ino, sizeof(ino), "%lX", (unsigned long)st.st_ino);
	size_t ql = strlen(qid);
	assert_true(ql >= 6);
	assert_string_equal(qid + 5, ino);
	for (size_t i = 0; i < ql; i++)
		assert_true((qid[i] >= '0' && qid[i] <= '9') || (qid[i] >= 'A' && qid[i] <= 'F'));
	/* The name: <sec>.M<usec>P<pid>Q<qid>.<host>, host sanitised. */
	long usec = -1;
	const char *mp = strstr(d.r.name, ".M");
	assert_non_null(mp);
	usec = strtol(mp + 2, NULL, 10);
	char head[8];
	snprintf(head, sizeof(head), "%05lX", usec);
	assert_memory_equal(qid, head, 5);
	char want_tail[64];
	snprintf(want_tail, sizeof(want_tail), "Q%s.mx\\0571\\072test", qid);
	assert_non_null(strstr(d.r.name, want_tail));
	assert_null(strchr(d.r.name, '/'));
	assert_null(strchr(d.r.name, ':'));
	assert_int_equal(spool_used(sp), blk);
	assert_int_equal(spool_dir_fsyncs(sp), 1);

	spool_close(&sp);
	assert_null(sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

static void test_abort(void **state)
{
	char *dir = make_dir();
	struct spool *sp = spool_open(dir, 1024 * 1024, "h", NULL, NULL);
	assert_non_null(sp);
	char qid[24];
	struct spool_msg *m = spool_msg_begin(sp, qid, sizeof(qid));
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, "hello", 5), 0);
	assert_int_equal(spool_used(sp), spool_block_size(sp));
	spool_msg_abort(&m);
	assert_null(m);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 0);
	spool_msg_abort(&m); /* NULL is harmless */
	spool_close(&sp);
	rm_rf(dir);
	free(dir);
}

static off_t file_size_in(const char *dir, const char *sub)
{
	char p[512];
	snprintf(p, sizeof(p), "%s/%s", dir, sub);
	DIR *d = opendir(p);
	assert_non_null(d);
	off_t total = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char f[1024];
		struct stat st;
		snprintf(f, sizeof(f), "%s/%s", p, de->d_name);
		assert_int_equal(stat(f, &st), 0);
		total += st.st_size;
	}
	closedir(d);
	return total;
}

static void test_budget_edges(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	/* The block size first (a spool without budget), then a budget of two blocks. */
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	assert_non_null(sp);
	const size_t B = spool_block_size(sp);
	spool_close(&sp);
	sp = spool_open(dir, 2 * B, "h", base, NULL);
	assert_non_null(sp);
	assert_int_equal(spool_budget(sp), 2 * B);
	char *buf = malloc(3 * B);
	assert_non_null(buf);
	memset(buf, 'a', 3 * B);

	/* Exactly the budget fits: 60 bytes take a block, the rest of it is free, the next
	 * block fills the budget. */
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, buf, 60), 0);
	assert_int_equal(spool_used(sp), B);
	assert_int_equal(spool_msg_write(m, buf, B - 60), 0);
	assert_int_equal(spool_used(sp), B);
	assert_int_equal(spool_msg_write(m, buf, B), 0);
	assert_int_equal(spool_used(sp), 2 * B);
	/* One byte more needs a third block: refused, and nothing of it is written (the
	 * accepted bytes may still be in the write-behind buffer). */
	errno = 0;
	assert_int_equal(spool_msg_write(m, buf, 1), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(spool_used(sp), 2 * B);
	assert_true(file_size_in(dir, "tmp") <= (off_t)(2 * B));
	/* Doomed: later writes fail too. */
	assert_int_equal(spool_msg_write(m, buf, 0), -1);
	/* The budget is spent: no new message. */
	errno = 0;
	assert_null(spool_msg_begin(sp, NULL, 0));
	assert_int_equal(errno, ENOSPC);
	/* A doomed commit completes with ok=false, no_space, and frees its space. */
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_false(d.r.ok);
	assert_true(d.r.no_space);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 0);

	/* A single write larger than the budget fails at once, file stays empty. */
	m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, buf, 2 * B + 1), -1);
	assert_int_equal(errno, ENOSPC);
	assert_int_equal(file_size_in(dir, "tmp"), 0);
	spool_msg_abort(&m);

	/* Two messages share the budget: one block committed, a second message gets the
	 * other block, then not a third. */
	m = spool_msg_begin(sp, NULL, 0);
	assert_int_equal(spool_msg_write(m, buf, B), 0);
	memset(&d, 0, sizeof(d));
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_true(d.r.ok);
	assert_int_equal(spool_used(sp), B);
	m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, buf, 1), 0);
	assert_int_equal(spool_used(sp), 2 * B);
	assert_int_equal(spool_msg_write(m, buf, B), -1);
	spool_msg_abort(&m);
	assert_int_equal(spool_used(sp), B);
	spool_close(&sp);

	/* Reopen: the committed file is counted again, as its blocks. */
	sp = spool_open(dir, 2 * B, "h", base, NULL);
	assert_non_null(sp);
	assert_int_equal(spool_used(sp), B);
	spool_close(&sp);
	free(buf);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* Issue 7: the budget counted file bytes, so small messages used many times their
 * share of the disk.  A budget of ten blocks holds ten small messages, not twenty, and
 * what the spool counts is what the files occupy on disk. */
static void test_budget_counts_blocks(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	assert_non_null(sp);
	const size_t B = spool_block_size(sp);
	spool_close(&sp);
	sp = spool_open(dir, 10 * B, "h", base, NULL);
	assert_non_null(sp);
	char msg[100];
	memset(msg, 'm', sizeof(msg));
	int stored = 0;
	for (int i = 0; i < 20; i++) {
		struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
		if (!m) {
			assert_int_equal(errno, ENOSPC);
			break;
		}
		if (spool_msg_write(m, msg, sizeof(msg)) < 0) {
			assert_int_equal(errno, ENOSPC);
			spool_msg_abort(&m);
			break;
		}
		struct done_rec d = {0};
		spool_msg_commit(&m, on_done, &d);
		run_until(base, &d.calls, 1);
		assert_true(d.r.ok);
		stored++;
	}
	assert_int_equal(stored, 10);
	assert_int_equal(spool_used(sp), 10 * B);
	/* What the files take on disk (du) is what was counted. */
	char p[512];
	snprintf(p, sizeof(p), "%s/new", dir);
	DIR *dd = opendir(p);
	assert_non_null(dd);
	uint64_t on_disk = 0;
	struct dirent *de;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		assert_int_equal(fstatat(dirfd(dd), de->d_name, &st, 0), 0);
		on_disk += (uint64_t)st.st_blocks * 512;
	}
	closedir(dd);
	assert_true(on_disk <= 10 * B);
	spool_close(&sp);
	/* Reopened, the count is the same. */
	sp = spool_open(dir, 10 * B, "h", base, NULL);
	assert_non_null(sp);
	assert_int_equal(spool_used(sp), 10 * B);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

static void count_expired(void *ctx, const char *sub, const char *name, uint64_t bytes)
{
	(void)sub;
	(void)name;
	*(uint64_t *)ctx += bytes;
}

/* Retention through the spool gives the space back at once; files deleted behind its
 * back are noticed by a recount. */
static void test_expire_and_resync(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 100 * 1024 * 1024, "h", base, NULL);
	assert_non_null(sp);
	const uint64_t B = spool_block_size(sp);
	char names[3][256];
	for (int i = 0; i < 3; i++) {
		struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
		assert_non_null(m);
		assert_int_equal(spool_msg_write(m, "hello\r\n", 7), 0);
		struct done_rec d = {0};
		spool_msg_commit(&m, on_done, &d);
		run_until(base, &d.calls, 1);
		assert_true(d.r.ok);
		snprintf(names[i], sizeof(names[i]), "%s", d.r.name);
	}
	assert_int_equal(spool_used(sp), 3 * B);
	/* The first one is 100 days old. */
	char p[600];
	snprintf(p, sizeof(p), "%s/new/%s", dir, names[0]);
	struct timeval tv[2] = {{time(NULL) - 100 * 86400, 0}, {time(NULL) - 100 * 86400, 0}};
	assert_int_equal(utimes(p, tv), 0);
	int64_t cutoff = ((int64_t)time(NULL) - 90 * 86400) * 1000000;
	/* A dry run on the directory counts it and keeps it. */
	uint64_t bytes = 0;
	assert_int_equal(spool_dir_expire(dir, cutoff, true, count_expired, &bytes), 1);
	assert_int_equal(bytes, B);
	assert_int_equal(access(p, F_OK), 0);
	bytes = 0;
	assert_int_equal(spool_expire(sp, cutoff, count_expired, &bytes), 1);
	assert_int_equal(bytes, B);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(spool_used(sp), 2 * B);
	/* Deleted behind its back (mxbait prune while the daemon runs): the recount. */
	snprintf(p, sizeof(p), "%s/new/%s", dir, names[1]);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(spool_used(sp), 2 * B);
	assert_int_equal(spool_resync(sp), 0);
	assert_int_equal(spool_used(sp), B);
	/* A message being received meanwhile keeps its reservation through a recount. */
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, "x", 1), 0);
	assert_int_equal(spool_used(sp), 2 * B);
	assert_int_equal(spool_resync(sp), 0);
	assert_int_equal(spool_used(sp), 2 * B);
	spool_msg_abort(&m);
	assert_int_equal(spool_used(sp), B);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

static void test_stale_tmp(void **state)
{
	char *dir = make_dir();
	char p[512];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/new", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/cur", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/tmp/stale1", dir);
	write_file(p, 50);
	snprintf(p, sizeof(p), "%s/tmp/stale2", dir);
	write_file(p, 7);
	snprintf(p, sizeof(p), "%s/new/a", dir);
	write_file(p, 30);
	snprintf(p, sizeof(p), "%s/cur/b", dir);
	write_file(p, 20);
	struct spool *sp = spool_open(dir, 0, "h", NULL, NULL);
	assert_non_null(sp);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 1);
	/* Two small files (new/ and cur/): a block each. */
	assert_int_equal(spool_used(sp), 2 * spool_block_size(sp));
	spool_close(&sp);
	rm_rf(dir);
	free(dir);
}

/* 50 concurrent commits: fewer directory fsyncs than messages. */
static void test_grouping(void **state)
{
	enum { N = 50 };
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	assert_non_null(sp);
	struct spool_msg *m[N];
	char qids[N][24];
	for (int i = 0; i < N; i++) {
		m[i] = spool_msg_begin(sp, qids[i], sizeof(qids[i]));
		assert_non_null(m[i]);
		char line[64];
		int n = snprintf(line, sizeof(line), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		assert_int_equal(spool_msg_write(m[i], line, (size_t)n), 0);
	}
	int calls = 0;
	struct done_rec d[N];
	memset(d, 0, sizeof(d));
	for (int i = 0; i < N; i++)
		spool_msg_commit(&m[i], on_done, &d[i]);
	for (int t = 0; t < 5000; t++) {
		calls = 0;
		for (int i = 0; i < N; i++)
			calls += d[i].calls;
		if (calls == N)
			break;
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_int_equal(calls, N);
	for (int i = 0; i < N; i++) {
		assert_true(d[i].r.ok);
		assert_string_equal(d[i].r.queue_id, qids[i]);
		for (int j = 0; j < i; j++) {
			assert_string_not_equal(d[i].r.name, d[j].r.name);
			assert_string_not_equal(qids[i], qids[j]);
		}
	}
	assert_int_equal(count_files(dir, "new"), N);
	uint64_t fs = spool_dir_fsyncs(sp);
	uint64_t groups = 0, max_group = 0;
	spool_group_stats(sp, &groups, &max_group);
	printf("# %d commits, %llu directory fsyncs, %llu groups, largest %llu\n", N,
	       (unsigned long long)fs, (unsigned long long)groups, (unsigned long long)max_group);
	assert_true(fs >= 1);
	assert_true(fs < N);
	/* One directory fsync per group, and the groups account for every commit. */
	assert_int_equal(groups, fs);
	assert_true(max_group > 1);
	assert_true(max_group <= N);
	/* Every file in new/ is whole: its bytes are those written. */
	for (int i = 0; i < N; i++) {
		char path[600], want[64], got[64];
		snprintf(path, sizeof(path), "%s/new/%s", dir, d[i].r.name);
		int n = snprintf(want, sizeof(want), "Subject: %d\r\n\r\nbody %d\r\n", i, i);
		int fd = open(path, O_RDONLY);
		assert_true(fd >= 0);
		assert_int_equal(read(fd, got, sizeof(got)), n);
		close(fd);
		assert_memory_equal(got, want, (size_t)n);
		assert_int_equal(d[i].r.size, (uint64_t)n);
	}
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* A write as large as the buffer goes to the file at once: its I/O error is reported
 * by that call, and the message is doomed. */
static void test_io_error_big_write(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	static char big[65536];
	memset(big, 'b', sizeof(big));
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 1000;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(spool_msg_write(m, "Subject: x\r\n\r\n", 15), 0);
	int r = spool_msg_write(m, big, sizeof(big));
	int e = errno;
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(r, -1);
	assert_int_equal(e, EFBIG);
	assert_int_equal(spool_msg_write(m, "x", 1), -1);
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_false(d.r.ok);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 0);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* Many small writes and a few large ones land in the file in order, whole, with the
 * SHA-256 of exactly those bytes (the write-behind buffer flushes at its cap, writes
 * large pieces through, and flushes the tail at commit). */
static void test_buffered_writes(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	size_t total = 0, cap = 400000;
	unsigned char *all = malloc(cap);
	assert_non_null(all);
	unsigned seed = 7;
	for (int i = 0; total < 300000; i++) {
		size_t n = (i % 50 == 49) ? 70000 + (size_t)(i % 3) : 1 + (size_t)(i * 37 % 200);
		if (total + n > cap)
			break;
		for (size_t k = 0; k < n; k++) {
			seed = seed * 1103515245u + 12345u;
			all[total + k] = (unsigned char)(seed >> 16);
		}
		assert_int_equal(spool_msg_write(m, all + total, n), 0);
		total += n;
	}
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_true(d.r.ok);
	assert_int_equal(d.r.size, total);
	char want[65];
	sha256_hex(all, total, want);
	assert_string_equal(d.r.sha256, want);
	char path[600];
	snprintf(path, sizeof(path), "%s/new/%s", dir, d.r.name);
	unsigned char *got = malloc(total + 1);
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	size_t have = 0;
	ssize_t n;
	while ((n = read(fd, got + have, total + 1 - have)) > 0)
		have += (size_t)n;
	close(fd);
	assert_int_equal(have, total);
	assert_memory_equal(got, all, total);
	free(got);
	free(all);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* Callbacks run in commit order, also when a group's files are fsync'd by several
 * threads at once. */
static int order_next;
struct order_rec {
	int want;
	int got;
	bool ok;
};

static void on_done_order(void *arg, const struct spool_result *r)
{
	struct order_rec *o = arg;
	o->got = order_next++;
	o->ok = r->ok;
}

static void test_group_order(void **state)
{
	enum { N = 64, ROUNDS = 3 };
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	assert_non_null(sp);
	for (int round = 0; round < ROUNDS; round++) {
		struct order_rec o[N];
		order_next = 0;
		for (int i = 0; i < N; i++) {
			struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
			assert_non_null(m);
			assert_int_equal(spool_msg_write(m, "x\r\n", 3), 0);
			o[i].want = i;
			o[i].got = -1;
			o[i].ok = false;
			spool_msg_commit(&m, on_done_order, &o[i]);
		}
		run_until(base, &order_next, N);
		for (int i = 0; i < N; i++) {
			assert_int_equal(o[i].got, o[i].want);
			assert_true(o[i].ok);
		}
	}
	assert_int_equal(count_files(dir, "new"), N * ROUNDS);
	assert_int_equal(count_files(dir, "tmp"), 0);
	uint64_t groups = 0;
	spool_group_stats(sp, &groups, NULL);
	assert_int_equal(groups, spool_dir_fsyncs(sp));
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* spool_close waits for queued commits and runs their callbacks. */
static void test_close_runs_callbacks(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	struct done_rec d[3];
	memset(d, 0, sizeof(d));
	for (int i = 0; i < 3; i++) {
		struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
		assert_int_equal(spool_msg_write(m, "x\r\n", 3), 0);
		spool_msg_commit(&m, on_done, &d[i]);
	}
	spool_close(&sp);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(d[i].calls, 1);
		assert_true(d[i].r.ok);
	}
	assert_int_equal(count_files(dir, "new"), 3);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* An I/O error from write(2) (here EFBIG via RLIMIT_FSIZE) dooms the message; the
 * commit reports failure (not no_space) and the bytes are released. */
static void test_io_error(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 10;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	/* Small writes are buffered: the file size limit bites when the buffer is
	 * written, here at commit, and the commit then fails. */
	int r = spool_msg_write(m, "0123456789abcdef", 16);
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	setrlimit(RLIMIT_FSIZE, &old);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(r, 0);
	run_until(base, &d.calls, 1);
	assert_false(d.r.ok);
	assert_false(d.r.no_space);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(dir, "tmp"), 0);
	assert_int_equal(count_files(dir, "new"), 0);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

static void test_open_errors(void **state)
{
	char *dir = make_dir();
	char p[512];
	/* The spool path is a regular file. */
	snprintf(p, sizeof(p), "%s/file", dir);
	write_file(p, 1);
	char *err = NULL;
	assert_null(spool_open(p, 0, "h", NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "cannot create"));
	free(err);
	/* tmp/ is a regular file. */
	snprintf(p, sizeof(p), "%s/md", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/md/tmp", dir);
	write_file(p, 1);
	snprintf(p, sizeof(p), "%s/md", dir);
	err = NULL;
	assert_null(spool_open(p, 0, "h", NULL, &err));
	assert_non_null(err);
	assert_non_null(strstr(err, "tmp"));
	free(err);
	/* err_r may be NULL. */
	assert_null(spool_open(p, 0, "h", NULL, NULL));
	/* new/ is a file: cannot open. */
	snprintf(p, sizeof(p), "%s/md2", dir);
	mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/md2/new", dir);
	write_file(p, 1);
	snprintf(p, sizeof(p), "%s/md2", dir);
	err = NULL;
	assert_null(spool_open(p, 0, "h", NULL, &err));
	assert_non_null(strstr(err, "new"));
	free(err);
	/* A nested path is created. */
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	struct spool *sp = spool_open(p, 0, NULL, NULL, NULL);
	assert_non_null(sp);
	spool_close(&sp);
	spool_close(&sp); /* NULL is harmless */
	rm_rf(dir);
	free(dir);
}

/* begin fails cleanly when tmp/ vanished under us. */
static void test_begin_io_error(void **state)
{
	char *dir = make_dir();
	struct spool *sp = spool_open(dir, 0, "h", NULL, NULL);
	assert_non_null(sp);
	char p[512];
	snprintf(p, sizeof(p), "%s/tmp", dir);
	assert_int_equal(rmdir(p), 0);
	errno = 0;
	assert_null(spool_msg_begin(sp, NULL, 0));
	assert_int_equal(errno, ENOENT);
	assert_int_equal(spool_used(sp), 0);
	spool_close(&sp);
	rm_rf(dir);
	free(dir);
}

/* The rename fails (new/ vanished): the commit reports failure, the tmp file is
 * removed and its bytes are released. */
static void test_rename_error(void **state)
{
	char *dir = make_dir();
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(dir, 0, "h", base, NULL);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_int_equal(spool_msg_write(m, "abc", 3), 0);
	char p[512];
	snprintf(p, sizeof(p), "%s/new", dir);
	assert_int_equal(rmdir(p), 0);
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_false(d.r.ok);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(dir, "tmp"), 0);
	spool_close(&sp);
	event_base_free(base);
	rm_rf(dir);
	free(dir);
}

/* Without an event base, callbacks run on the commit thread; close still waits. */
static void test_no_base(void **state)
{
	char *dir = make_dir();
	struct spool *sp = spool_open(dir, 0, "h", NULL, NULL);
	struct done_rec d = {0};
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_int_equal(spool_msg_write(m, "abc", 3), 0);
	spool_msg_commit(&m, on_done, &d);
	spool_close(&sp);
	assert_int_equal(d.calls, 1);
	assert_true(d.r.ok);
	rm_rf(dir);
	free(dir);
}

/* ENOSPC from the filesystem itself (a 64 KiB tmpfs, no budget): handled like the
 * budget, nothing half-committed.  Needs mount(2) (root); skipped otherwise. */
static void test_fs_enospc(void **state)
{
	char *dir = make_dir();
	if (mount("tmpfs", dir, "tmpfs", 0, "size=64k") < 0) {
		printf("# tmpfs mount not permitted (%s): skipped\n", strerror(errno));
		rm_rf(dir);
		free(dir);
		skip();
	}
	char sd[512];
	snprintf(sd, sizeof(sd), "%s/spool", dir);
	struct event_base *base = event_base_new();
	struct spool *sp = spool_open(sd, 0, "h", base, NULL);
	assert_non_null(sp);
	struct spool_msg *m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	char chunk[4096];
	memset(chunk, 'z', sizeof(chunk));
	int r = 0, e = 0;
	for (int i = 0; i < 64 && r == 0; i++) {
		r = spool_msg_write(m, chunk, sizeof(chunk));
		e = errno;
	}
	assert_int_equal(r, -1);
	assert_int_equal(e, ENOSPC);
	struct done_rec d = {0};
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_false(d.r.ok);
	assert_true(d.r.no_space);
	assert_int_equal(spool_used(sp), 0);
	assert_int_equal(count_files(sd, "tmp"), 0);
	assert_int_equal(count_files(sd, "new"), 0);
	/* Space is back: a small message goes through. */
	m = spool_msg_begin(sp, NULL, 0);
	assert_non_null(m);
	assert_int_equal(spool_msg_write(m, "ok\r\n", 4), 0);
	memset(&d, 0, sizeof(d));
	spool_msg_commit(&m, on_done, &d);
	run_until(base, &d.calls, 1);
	assert_true(d.r.ok);
	spool_close(&sp);
	event_base_free(base);
	assert_int_equal(umount(dir), 0);
	rm_rf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_commit),
		cmocka_unit_test(test_abort),
		cmocka_unit_test(test_budget_edges),
		cmocka_unit_test(test_budget_counts_blocks),
		cmocka_unit_test(test_expire_and_resync),
		cmocka_unit_test(test_stale_tmp),
		cmocka_unit_test(test_grouping),
		cmocka_unit_test(test_group_order),
		cmocka_unit_test(test_io_error_big_write),
		cmocka_unit_test(test_buffered_writes),
		cmocka_unit_test(test_close_runs_callbacks),
		cmocka_unit_test(test_io_error),
		cmocka_unit_test(test_open_errors),
		cmocka_unit_test(test_begin_io_error),
		cmocka_unit_test(test_rename_error),
		cmocka_unit_test(test_no_base),
		cmocka_unit_test(test_fs_enospc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
