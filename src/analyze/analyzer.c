/* analyzer: process mode over the spool (see analyzer.h). */
#include "analyze/analyzer.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "analyze/adb.h"
#include "analyze/analyze.h"
#include "analyze/input.h"

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int pass(struct adb *db, const char *newdir, const struct analyze_limits *lim,
		volatile sig_atomic_t *stop)
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
		const void *data = an_map_file(path, &len);
		if (!data) /* gone (moved to cur/ or expired): nothing to do */
			continue;
		struct analysis *a = analyze_message(data, len, lim, NULL);
		an_unmap(data, len);
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
	int r = pass(db, newdir, lim, NULL);
	adb_close(&db);
	return r;
}

int analyzer_run(const char *data_dir, volatile sig_atomic_t *stop)
{
	char newdir[4096], *err = NULL;
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	analyze_global_init();
	snprintf(newdir, sizeof(newdir), "%s/spool/new", data_dir);
	struct adb *db = adb_open(data_dir, &err);
	if (!db) {
		fprintf(stderr, "mxbait analyzer: %s\n", err ? err : "cannot open analysis.db");
		free(err);
		return -1;
	}
	int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	int wd = -1;
	int rc = 0;
	bool dirty = true;
	while (!*stop) {
		if (ifd >= 0 && wd < 0)
			wd = inotify_add_watch(ifd, newdir, IN_MOVED_TO | IN_CLOSE_WRITE);
		if (dirty || wd < 0) {
			if (pass(db, newdir, &lim, stop) < 0 && errno != ENOENT) {
				fprintf(stderr, "mxbait analyzer: %s: %s\n", newdir, strerror(errno));
				rc = -1;
				break;
			}
			dirty = false;
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
	adb_close(&db);
	return rc;
}
