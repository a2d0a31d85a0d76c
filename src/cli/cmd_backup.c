/*
 * cmd_backup: `mxbait backup DIR`: a consistent, durable copy of a data directory,
 * taken while the daemon runs.
 *
 * What is copied, in this order (docs/operations.md, "Backup and restore"):
 *   mxbait.db, analysis.db  with SQLite's online backup API: each is one snapshot (one
 *                           read transaction over the WAL; the daemon keeps writing);
 *                           `PRAGMA quick_check` of each copy must say ok
 *   secret, tls/            what accounts, mailboxes and the self-signed certificate
 *                           derive from (without it a restored honeypot changes face)
 *   spool/new, spool/cur    the captured messages (tmp/ holds only unacknowledged ones)
 *   the event log           events.jsonl and events.jsonl.1 up to their last whole line
 *   the config file         when given with -c, as mxbait.conf
 *   BACKUP.json             what was copied, with counts and the schema versions
 * The databases are copied first: a message captured while the rest is copied is a
 * spool file without a row in the copy, which `mxbait serve` indexes at its next start
 * (event message_recovered), so a restore loses nothing the files hold.  Every file
 * and directory of the copy is fsync'd before the command reports success.  DIR must
 * not exist, or be empty; it is created 0700.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/table.h"
#include "store/db.h"
#include "store/durable.h"
#include "store/event.h"

static const char usage[] = "[OPTIONS] DIR";

struct tally {
	long files;
	uint64_t bytes;
	int64_t events, messages, analysis_messages;
	long spool_files;
};

static int fail(const char *what, const char *why)
{
	fprintf(stderr, "mxbait backup: %s: %s\n", what, why);
	return -1;
}

/* Copy src to dst (created, mode), fsync'd.  whole_lines: stop after the last newline
 * of what the file held when the copy began (an event log being appended to). */
static int copy_file(const char *src, const char *dst, mode_t mode, bool whole_lines,
		     struct tally *t)
{
	int in = open(src, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? 0 : fail(src, strerror(errno));
	struct stat st;
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(in);
		return fail(src, "not a regular file");
	}
	int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (out < 0) {
		close(in);
		return fail(dst, strerror(errno));
	}
	static char buf[65536];
	off_t left = st.st_size, last_nl = -1, done = 0;
	int rc = 0;
	while (left > 0) {
		ssize_t n = read(in, buf, left < (off_t)sizeof(buf) ? (size_t)left : sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break; /* truncated meanwhile: what was there */
		if (whole_lines)
			for (ssize_t i = n; i-- > 0;)
				if (buf[i] == '\n') {
					last_nl = done + i;
					break;
				}
		if (durable_write_all(out, buf, (size_t)n) < 0) {
			rc = fail(dst, strerror(errno));
			break;
		}
		done += n;
		left -= n;
	}
	if (rc == 0 && whole_lines && ftruncate(out, last_nl + 1) < 0)
		rc = fail(dst, strerror(errno));
	if (rc == 0 && fsync(out) < 0)
		rc = fail(dst, strerror(errno));
	close(in);
	if (close(out) < 0 && rc == 0)
		rc = fail(dst, strerror(errno));
	if (rc == 0) {
		t->files++;
		t->bytes += (uint64_t)(whole_lines ? last_nl + 1 : done);
	}
	return rc;
}

/* Every regular file of src_dir into dst_dir (created). */
static long copy_dir(const char *src_dir, const char *dst_dir, struct tally *t)
{
	if (mkdir(dst_dir, 0700) < 0 && errno != EEXIST)
		return fail(dst_dir, strerror(errno));
	DIR *d = opendir(src_dir);
	if (!d)
		return errno == ENOENT ? 0 : fail(src_dir, strerror(errno));
	long n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		char *a = NULL, *b = NULL;
		if (asprintf(&a, "%s/%s", src_dir, de->d_name) < 0 ||
		    asprintf(&b, "%s/%s", dst_dir, de->d_name) < 0) {
			free(a);
			closedir(d);
			return fail(dst_dir, "out of memory");
		}
		int r = copy_file(a, b, 0600, false, t);
		free(a);
		free(b);
		if (r < 0) {
			closedir(d);
			return -1;
		}
		n++;
	}
	closedir(d);
	if (durable_fsync_dir(dst_dir) < 0)
		return fail(dst_dir, strerror(errno));
	return n;
}

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* One database with the online backup API into dst (a new file), then checked. */
static int backup_db(sqlite3 *src, const char *dst_path, struct tally *t)
{
	sqlite3 *dst = NULL;
	if (sqlite3_open_v2(dst_path, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(dst);
		return fail(dst_path, "cannot create");
	}
	sqlite3_busy_timeout(dst, 10000);
	sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
	int rc = b ? SQLITE_OK : sqlite3_errcode(dst);
	if (b) {
		/* All pages in one step: one read transaction of the source, so the copy is
		 * the database at one instant, and a busy writer is never waited for (WAL). */
		do {
			rc = sqlite3_backup_step(b, -1);
			if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
				sqlite3_sleep(50);
		} while (rc == SQLITE_BUSY || rc == SQLITE_LOCKED);
		sqlite3_backup_finish(b);
	}
	if (rc != SQLITE_DONE) {
		fail(dst_path, sqlite3_errmsg(dst));
		sqlite3_close(dst);
		return -1;
	}
	/* The copy alone: its WAL folded in, the file made durable. */
	sqlite3_exec(dst, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	sqlite3_stmt *st = NULL;
	bool ok = sqlite3_prepare_v2(dst, "PRAGMA quick_check", -1, &st, NULL) == SQLITE_OK &&
		  sqlite3_step(st) == SQLITE_ROW &&
		  !strcmp((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(dst);
	if (!ok)
		return fail(dst_path, "the copy fails PRAGMA quick_check");
	int fd = open(dst_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(dst_path, strerror(errno));
	}
	struct stat sb;
	if (fstat(fd, &sb) == 0)
		t->bytes += (uint64_t)sb.st_size;
	close(fd);
	t->files++;
	return 0;
}

/* Open a source database for reading without creating anything (a WAL reader may
 * need to create the -shm file, hence READWRITE + query_only). */
static sqlite3 *open_src(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return NULL;
	sqlite3 *db = NULL;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		db = NULL;
		if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
			sqlite3_close(db);
			return NULL;
		}
	}
	sqlite3_busy_timeout(db, 10000);
	sqlite3_exec(db, "PRAGMA query_only=1", NULL, NULL, NULL);
	return db;
}

static int make_dest(const char *dest)
{
	if (mkdir(dest, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return fail(dest, strerror(errno));
	DIR *d = opendir(dest);
	if (!d)
		return fail(dest, strerror(errno));
	struct dirent *de;
	bool empty = true;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	if (!empty)
		return fail(dest, "exists and is not empty (a backup never overwrites)");
	if (chmod(dest, 0700) < 0)
		return fail(dest, strerror(errno));
	return 0;
}

static char *path2(const char *a, const char *b)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", a, b) < 0)
		return NULL;
	return p;
}

int cmd_backup(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_parse_common(argc, argv, usage, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi >= argc)
		return cli_missing_arg("backup", usage, "DIR (where the copy goes)");
	if (o.argi + 1 < argc) {
		fprintf(stderr, "mxbait backup: unexpected argument '%s'\n", argv[o.argi + 1]);
		return 2;
	}
	const char *dest = argv[o.argi];
	/* The source must be an mxbait data directory of this schema. */
	sqlite3 *db = cli_open_db(&o);
	if (!db)
		return 1;
	if (make_dest(dest) < 0) {
		sqlite3_close(db);
		return 1;
	}
	struct tally t = {0};
	int rc = 0;
	int64_t started = mxb_now_us();
	char *p = path2(dest, MXB_DB_FILE);
	if (backup_db(db, p, &t) < 0)
		rc = 1;
	free(p);
	sqlite3_close(db);
	int schema = db_schema_version();
	if (rc == 0) {
		p = path2(dest, MXB_DB_FILE);
		sqlite3 *copy = NULL;
		if (sqlite3_open_v2(p, &copy, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
			t.events = q_int(copy, "SELECT count(*) FROM events");
			t.messages = q_int(copy, "SELECT count(*) FROM messages");
		}
		sqlite3_close(copy);
		free(p);
	}
	char *src = cli_data_path(&o, "analysis.db");
	sqlite3 *adb = rc == 0 ? open_src(src) : NULL;
	if (adb) {
		p = path2(dest, "analysis.db");
		if (backup_db(adb, p, &t) < 0)
			rc = 1;
		sqlite3_close(adb);
		sqlite3 *copy = NULL;
		if (rc == 0 && sqlite3_open_v2(p, &copy, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK)
			t.analysis_messages = q_int(copy, "SELECT count(*) FROM messages");
		sqlite3_close(copy);
		free(p);
	}
	free(src);
	/* secret and TLS: the honeypot's identity. */
	if (rc == 0) {
		src = cli_data_path(&o, "secret");
		p = path2(dest, "secret");
		if (copy_file(src, p, 0600, false, &t) < 0)
			rc = 1;
		free(src);
		free(p);
	}
	if (rc == 0) {
		src = cli_data_path(&o, "tls");
		p = path2(dest, "tls");
		struct stat st;
		if (stat(src, &st) == 0 && copy_dir(src, p, &t) < 0)
			rc = 1;
		free(src);
		free(p);
	}
	/* The captured mail. */
	if (rc == 0) {
		char *sd = path2(dest, MXB_SPOOL_DIR);
		if (!sd || mkdir(sd, 0700) < 0) {
			fail(dest, strerror(errno));
			rc = 1;
		}
		const char *subs[] = {"new", "cur"};
		for (size_t i = 0; rc == 0 && i < 2; i++) {
			char *rel = NULL;
			if (asprintf(&rel, "%s/%s", MXB_SPOOL_DIR, subs[i]) < 0)
				break;
			src = cli_data_path(&o, rel);
			p = path2(sd, subs[i]);
			long n = copy_dir(src, p, &t);
			if (n < 0)
				rc = 1;
			else
				t.spool_files += n;
			free(rel);
			free(src);
			free(p);
		}
		if (rc == 0) {
			p = path2(sd, "tmp");
			if (!p || mkdir(p, 0700) < 0) {
				fail(sd, strerror(errno));
				rc = 1;
			}
			free(p);
		}
		if (rc == 0 && durable_fsync_dir(sd) < 0) {
			fail(sd, strerror(errno));
			rc = 1;
		}
		free(sd);
	}
	/* The event log, whole lines. */
	if (rc == 0) {
		char *log = o.event_log ? (o.event_log[0] ? strdup(o.event_log) : NULL)
					: cli_data_path(&o, MXB_JSONL_FILE);
		if (log) {
			char *old = NULL;
			if (asprintf(&old, "%s.1", log) >= 0) {
				p = path2(dest, MXB_JSONL_FILE ".1");
				if (copy_file(old, p, 0600, true, &t) < 0)
					rc = 1;
				free(p);
				free(old);
			}
			p = path2(dest, MXB_JSONL_FILE);
			if (rc == 0 && copy_file(log, p, 0600, true, &t) < 0)
				rc = 1;
			free(p);
			free(log);
		}
	}
	if (rc == 0 && o.config) {
		p = path2(dest, "mxbait.conf");
		if (copy_file(o.config, p, 0600, false, &t) < 0)
			rc = 1;
		free(p);
	}
	char ts[40];
	mxb_format_ts(started, ts, sizeof(ts));
	if (rc == 0) {
		struct buf b;
		buf_init(&b, 0);
		struct jw w;
		jw_init(&w, &b);
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "backup_of", o.data_dir);
		jw_cstr(&w, "started", ts);
		jw_cstr(&w, "mxbait", MXB_VERSION);
		jw_int(&w, "schema_version", schema);
		jw_int(&w, "events", t.events);
		jw_int(&w, "messages", t.messages);
		jw_int(&w, "analysis_messages", t.analysis_messages);
		jw_int(&w, "spool_files", t.spool_files);
		jw_int(&w, "files", t.files);
		jw_int(&w, "bytes", (long long)t.bytes);
		jw_end_object(&w);
		buf_putc(&b, '\n');
		if (durable_create_file(dest, "BACKUP.json", b.data, b.len, 0600) < 0 ||
		    durable_fsync_dir(dest) < 0) {
			fail(dest, strerror(errno));
			rc = 1;
		} else if (o.json) {
			fwrite(b.data, 1, b.len, stdout);
		} else {
			char sz[32];
			cli_fmt_size(t.bytes, sz, sizeof(sz));
			printf("backup of %s in %s: %lld events, %lld messages (%ld spool files), "
			       "%lld analysed messages; %ld files, %s\n", o.data_dir, dest,
			       (long long)t.events, (long long)t.messages, t.spool_files,
			       (long long)t.analysis_messages, t.files, sz);
		}
		buf_free(&b);
	}
	if (rc)
		fprintf(stderr, "mxbait backup: failed; %s is incomplete: remove it\n", dest);
	return rc;
}
