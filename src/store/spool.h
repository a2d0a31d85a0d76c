/*
 * spool: durable capture of messages in a Maildir, within a disk budget.
 *
 * A message is streamed into <data>/spool/tmp/ while DATA arrives (plain write(2) into
 * the page cache: cheap enough for the event loop), then committed: fsync the file,
 * rename it into new/, fsync the directory, and only then report success so the
 * session may answer 250.  Commits are made by a background thread that takes every
 * commit queued meanwhile as one group (its files fsync'd concurrently, then renamed,
 * then one directory fsync for the whole group), so concurrent sessions share the
 * cost of durability.  Completion callbacks run on the
 * event loop thread.
 *
 * The budget counts the disk space of every file in tmp/, new/ and cur/: each file's
 * size rounded up to the filesystem's block size (or its allocated blocks when more).
 * A write that would pass it fails; nothing is ever written past the budget.
 *
 * Queue ids look like Debian Postfix's short ids: five hex digits of microseconds and
 * the file's inode number in hex, upper case (e.g. 2DC1A11A199).
 */
#ifndef MXB_STORE_SPOOL_H
#define MXB_STORE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct spool;
struct spool_msg;

struct spool_result {
	bool ok;
	bool no_space;       /* failed because of the budget (or ENOSPC) */
	char queue_id[24];
	char name[256];      /* file name in new/ */
	char sha256[65];     /* hex, of the bytes on disk */
	uint64_t size;
};

typedef void (*spool_done_fn)(void *arg, const struct spool_result *r);

/* dir: the Maildir (created with tmp/ new/ cur/ when missing).  budget: bytes, 0 for
 * no limit.  hostname goes into file names.  On error returns NULL with *err_r set
 * (malloc'd message). */
struct spool *spool_open(const char *dir, uint64_t budget, const char *hostname,
			 struct event_base *base, char **err_r);
void spool_close(struct spool **sp); /* waits for queued commits */

/* Begin a message.  NULL when the budget is already spent (errno ENOSPC) or on I/O
 * error.  queue_id_r (>= 16 bytes) receives the queue id. */
struct spool_msg *spool_msg_begin(struct spool *sp, char *queue_id_r, size_t len);
/* Append bytes.  -1 when the budget would be passed (errno ENOSPC) or on I/O error;
 * the message is then doomed and only spool_msg_abort() remains.  Bytes are buffered
 * (up to 64 KiB per message) and written in large chunks, so an I/O error may be
 * reported by a later call or, for the last chunk, by the commit (ok=false); the
 * budget is always checked here, at once. */
int spool_msg_write(struct spool_msg *m, const void *data, size_t len);
/* Queue the group commit; done(arg, result) runs later on the event loop. *mp is
 * taken (set to NULL).  A doomed message completes with ok=false. */
void spool_msg_commit(struct spool_msg **mp, spool_done_fn done, void *arg);
/* Delete the partial file and release its budget. *mp is set to NULL. */
void spool_msg_abort(struct spool_msg **mp);

/* Retention: delete the files of new/ and cur/ last modified before cutoff_us
 * (microseconds since the epoch).  fn(ctx, "new" or "cur", name, disk_bytes) is
 * called for each file deleted (or, with dry_run, that would be).  Returns how many,
 * or -1 with errno.  spool_dir_expire works on a spool directory without opening the
 * spool (for `mxbait prune`; never spool_open a spool a daemon uses: it empties tmp/);
 * spool_expire gives the space back to a running spool's budget. */
typedef void (*spool_expire_fn)(void *ctx, const char *sub, const char *name,
				uint64_t disk_bytes);
long spool_dir_expire(const char *spool_dir, int64_t cutoff_us, bool dry_run,
		      spool_expire_fn fn, void *ctx);
long spool_expire(struct spool *sp, int64_t cutoff_us, spool_expire_fn fn, void *ctx);
/* Recount the space of new/ and cur/ (files deleted or added behind the spool's back),
 * while messages keep flowing.  0, or -1 with errno. */
int spool_resync(struct spool *sp);
/* The allocation unit the budget rounds to. */
uint64_t spool_block_size(const struct spool *sp);

/* Disk bytes in use and budget, for stats. */
uint64_t spool_used(const struct spool *sp);
uint64_t spool_budget(const struct spool *sp);
/* Directory fsyncs made so far (one per commit group): lets tests measure grouping. */
uint64_t spool_dir_fsyncs(const struct spool *sp);
/* Commit groups made so far and the largest group's size (messages). */
void spool_group_stats(const struct spool *sp, uint64_t *groups_r, uint64_t *max_group_r);

#endif
