/*
 * cmd_prune: `mxbait prune`: apply the retention now (what the daemon's maintenance job
 * does every hour), or with --older-than another age; --dry-run counts instead;
 * --vacuum gives the freed space back to the filesystem (the daemon stopped).
 *
 * Safe beside a running daemon: spool files are only deleted in new/ and cur/ (never
 * tmp/, where messages are being received), the databases are written in short
 * transactions (store/prune.h) and the daemon recounts its spool within ten minutes.
 * The same order as the daemon: spool files, then the analysis rows that said they
 * were analysed, then the mxbait.db and analysis.db rows older than the cutoff.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/intel.h"
#include "cli/table.h"
#include "core/config.h"
#include "store/db.h"
#include "store/event.h"
#include "store/prune.h"
#include "store/spool.h"

static const char usage[] = "[OPTIONS] [--older-than DURATION] [--dry-run] [--vacuum]";

/* True when a daemon holds the data directory (its lock on mxbait.pid). */
static bool daemon_running(const char *data_dir)
{
	char *p = NULL;
	if (asprintf(&p, "%s/mxbait.pid", data_dir) < 0)
		return true;
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	if (fd < 0)
		return false;
	bool locked = flock(fd, LOCK_EX | LOCK_NB) != 0;
	if (!locked)
		flock(fd, LOCK_UN);
	close(fd);
	return locked;
}

static sqlite3 *open_adb_rw(const char *data_dir, char **err_r)
{
	char *path = NULL;
	if (asprintf(&path, "%s/analysis.db", data_dir) < 0)
		return NULL;
	struct stat st;
	sqlite3 *db = NULL;
	if (stat(path, &st) == 0 &&
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) {
		if (asprintf(err_r, "%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open") < 0)
			*err_r = NULL;
		sqlite3_close(db);
		db = NULL;
	}
	if (db)
		sqlite3_busy_timeout(db, 30000);
	free(path);
	return db;
}

static int vacuum(sqlite3 *db, const char *what)
{
	char *em = NULL;
	/* auto_vacuum=INCREMENTAL from now on (new databases have it), then rebuild. */
	if (sqlite3_exec(db, "PRAGMA auto_vacuum=INCREMENTAL; VACUUM;", NULL, NULL, &em) !=
	    SQLITE_OK) {
		fprintf(stderr, "mxbait prune: VACUUM of %s: %s\n", what, em ? em : "?");
		sqlite3_free(em);
		return -1;
	}
	return 0;
}

int cmd_prune(int argc, char **argv)
{
	const char *older = NULL, *dry = NULL, *vac = NULL;
	const struct cli_option extra[] = {
		{"older-than", true, &older},
		{"dry-run", false, &dry},
		{"vacuum", false, &vac},
		{NULL, false, NULL},
	};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait prune: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	int64_t age_us = 0;
	if (older) {
		if (intel_parse_duration(older, &age_us) < 0) {
			fprintf(stderr, "mxbait prune: bad --older-than '%s' (e.g. 90d, 12h, 30m)\n",
				older);
			return 2;
		}
	} else {
		/* The configured retention (-c), else its default. */
		struct mxb_config cfg;
		config_defaults(&cfg);
		uint64_t ms = cfg.retention_ms;
		config_free(&cfg);
		if (o.config_read)
			ms = o.retention_ms;
		if (!ms) {
			fprintf(stderr, "mxbait prune: retention is 0 (keep everything) in %s: "
					"nothing to do (use --older-than to prune anyway)\n",
				o.config ? o.config : "the configuration");
			return 0;
		}
		age_us = (int64_t)ms * 1000;
	}
	bool dry_run = dry != NULL;
	if (vac && dry_run) {
		fprintf(stderr, "mxbait prune: --vacuum and --dry-run exclude each other\n");
		return 2;
	}
	if (vac && daemon_running(o.data_dir)) {
		fprintf(stderr, "mxbait prune: --vacuum rewrites the databases: stop mxbait serve "
				"first (it holds %s)\n", o.data_dir);
		return 1;
	}
	char *path = cli_data_path(&o, MXB_DB_FILE);
	sqlite3 *db = NULL;
	char *err = NULL;
	struct stat dst;
	if (stat(o.data_dir, &dst) < 0 || !S_ISDIR(dst.st_mode)) {
		fprintf(stderr, "mxbait: no data directory at %s (run `mxbait serve` first, or use "
				"-d DIR)\n", o.data_dir);
		free(path);
		return 1;
	}
	enum db_status s = db_open_existing_rw(path, &db, &err);
	if (s != DB_OK) {
		fprintf(stderr, "mxbait: %s\n", err ? err : path);
		free(err);
		free(path);
		return 1;
	}
	sqlite3 *adb = open_adb_rw(o.data_dir, &err);
	if (err) {
		fprintf(stderr, "mxbait prune: %s\n", err);
		free(err);
		sqlite3_close(db);
		free(path);
		return 1;
	}
	int64_t cutoff = mxb_now_us() - age_us;
	struct prune_counts c = {0};
	int rc = 0;
	/* 1. spool files, 2. what said they were analysed, 3. the rows. */
	char *spool_dir = cli_data_path(&o, MXB_SPOOL_DIR);
	struct prune_names nm = {.c = &c};
	if (spool_dir_expire(spool_dir, cutoff, dry_run, prune_names_add, &nm) < 0 &&
	    errno != ENOENT) {
		fprintf(stderr, "mxbait prune: %s: %s\n", spool_dir, strerror(errno));
		rc = 1;
	}
	if (!dry_run)
		prune_names_forget(adb, &nm);
	prune_names_free(&nm);
	if (prune_db_before(db, cutoff, true, dry_run, &c, &err) < 0) {
		fprintf(stderr, "mxbait prune: %s: %s\n", path, err ? err : "?");
		free(err);
		err = NULL;
		rc = 1;
	}
	if (adb && prune_adb_before(adb, cutoff, dry_run, &c, &err) < 0) {
		fprintf(stderr, "mxbait prune: analysis.db: %s\n", err ? err : "?");
		free(err);
		err = NULL;
		rc = 1;
	}
	int64_t shrunk = 0;
	if (!dry_run && rc == 0) {
		if (vac) {
			if (vacuum(db, MXB_DB_FILE) < 0 || (adb && vacuum(adb, "analysis.db") < 0))
				rc = 1;
		} else {
			/* Pages freed by the deletions back to the filesystem, when it can. */
			shrunk = prune_shrink(db, path, 0);
		}
	}
	char ts[40];
	mxb_format_ts(cutoff, ts, sizeof(ts));
	if (o.json) {
		struct buf b;
		buf_init(&b, 0);
		struct jw w;
		jw_init(&w, &b);
		jw_begin_object(&w, NULL);
		jw_cstr(&w, "older_than", ts);
		jw_bool(&w, "dry_run", dry_run);
		jw_int(&w, "spool_files", c.spool_files);
		jw_int(&w, "spool_bytes", (long long)c.spool_bytes);
		jw_int(&w, "messages", c.messages);
		jw_int(&w, "events", c.events);
		jw_int(&w, "auth_attempts", c.auth_attempts);
		jw_int(&w, "probes", c.probes);
		jw_int(&w, "sessions", c.sessions);
		jw_int(&w, "analysis_messages", c.analysis_messages);
		jw_int(&w, "analysis_spool_done", c.spool_done);
		jw_bool(&w, "vacuum", vac != NULL && rc == 0);
		jw_end_object(&w);
		buf_putc(&b, '\n');
		fwrite(b.data, 1, b.len, stdout);
		buf_free(&b);
	} else {
		printf("%s older than %s:\n", dry_run ? "would delete" : "deleted", ts);
		const char *heads[] = {"", ""};
		struct table *t = table_new(2, heads);
		table_hide_header(t);
		table_set_right(t, 1);
		char sz[32];
		cli_fmt_size(c.spool_bytes, sz, sizeof(sz));
#define ROW(label, v) (table_add_row(t), table_cells(t, 0, label), \
		       table_cellf(t, 1, "%lld", (long long)(v)))
		ROW("spool files", c.spool_files);
		table_add_row(t);
		table_cells(t, 0, "spool space");
		table_cells(t, 1, sz);
		ROW("messages", c.messages);
		ROW("events", c.events);
		ROW("auth attempts", c.auth_attempts);
		ROW("probes", c.probes);
		ROW("sessions", c.sessions);
		ROW("analysed messages", c.analysis_messages);
#undef ROW
		table_print(t, stdout);
		table_free(&t);
		if (vac && rc == 0)
			printf("databases vacuumed\n");
		else if (shrunk > 0)
			printf("%lld free pages of %s given back to the filesystem\n",
			       (long long)shrunk, MXB_DB_FILE);
	}
	free(spool_dir);
	free(path);
	sqlite3_close(adb);
	sqlite3_close(db);
	return rc;
}
