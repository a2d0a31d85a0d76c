/*
 * libFuzzer target: one web request through authentication, routing, parameter
 * checks and the handlers (src/web/api.c), against an empty mxbait.db made at start.
 * Input: "PATH\nQUERY\nAUTHORIZATION\nCSRF\nBODY" (missing lines: absent; PATH starting
 * with POST: a POST of the rest; CSRF "*": the valid token of the admin "bot", so the
 * actions' body checks are reached; BODY: the rest of the input, as JSON).  Every reply
 * must have a status and, when JSON, be valid JSON (checked by SQLite's json_valid).
 * intel.db exists (empty outbox); no guard runs.
 */
#include <event2/http.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "intel/intel_db.h"
#include "store/db.h"
#include "web/api.h"
#include "web/auth.h"
#include "web/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct web_shared sh;
static struct web_worker_db wdb;
static struct mxb_config cfg;
static struct metrics metrics;
static sqlite3 *check;

static void setup(void)
{
	char tmpl[] = "/tmp/mxbait-fuzz-web-XXXXXX";
	char *dir = mkdtemp(tmpl);
	if (!dir)
		abort();
	config_defaults(&cfg);
	free(cfg.data_dir);
	cfg.data_dir = strdup(dir);
	snprintf(sh.db_path, sizeof(sh.db_path), "%s/%s", dir, MXB_DB_FILE);
	snprintf(sh.adb_path, sizeof(sh.adb_path), "%s/analysis.db", dir);
	sqlite3 *db = NULL;
	char *err = NULL;
	if (db_open_rw(sh.db_path, &db, &err) != DB_OK)
		abort();
	sqlite3_close(db);
	snprintf(sh.idb_path, sizeof(sh.idb_path), "%s/%s", dir, INTEL_DB_FILE);
	if (!(db = intel_db_open(dir, false, NULL, &err)))
		abort();
	sqlite3_close(db);
	/* "bot" with token "t"; "ops" with password "pw" (SHA-512, 1000 rounds: fast). */
	static char e1[] = "bot:admin:sha256:e3b98a4da31a127d4bde6e43033f66ba274cab0eb7eb1c70ec41402bf6273dd8";
	static char e2[] = "ops:read:$6$rounds=1000$saltsalt$nII71HJmawaDYdXrUHYtoWV/pe6ZN/eQzrZXdKjhrcMU0onLRg6A5m38udZu.lA6f53rIQturF4FMx1X99KF/0";
	char *entries[] = {e1, e2};
	const char *why = NULL;
	sh.auth = web_auth_new(entries, 2, 1000000, &why);
	if (!sh.auth)
		abort();
	metrics_init(&metrics);
	sh.cfg = &cfg;
	sh.metrics = &metrics;
	wdb.deadline_ms = INT64_MAX;
	sqlite3_open(":memory:", &check);
}

/* The next line of the input, NUL-terminated copy (NULL at the end). */
static char *line(const uint8_t **p, const uint8_t *end)
{
	if (*p >= end)
		return NULL;
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s = malloc(n + 1);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p += n + (nl ? 1 : 0);
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool ready;
	if (!ready) {
		setup();
		ready = true;
	}
	if (size > 8192)
		return 0;
	const uint8_t *p = data, *end = data + size;
	struct web_job *j = calloc(1, sizeof(*j));
	j->fd = -1;
	buf_init(&j->body, 0);
	j->path = line(&p, end);
	if (!j->path)
		j->path = strdup("/");
	j->query = line(&p, end);
	j->authz = line(&p, end);
	j->csrf = line(&p, end);
	j->method = EVHTTP_REQ_GET;
	if (!strncmp(j->path, "POST", 4)) {
		j->method = EVHTTP_REQ_POST;
		memmove(j->path, j->path + 4, strlen(j->path + 4) + 1);
		if (p < end) {
			j->body_in_len = (size_t)(end - p);
			j->body_in = malloc(j->body_in_len + 1);
			memcpy(j->body_in, p, j->body_in_len);
			j->body_in[j->body_in_len] = '\0';
		}
		j->content_type_in = strdup("application/json");
	}
	if (j->csrf && !strcmp(j->csrf, "*")) {
		char tok[65];
		web_auth_csrf(sh.auth, "bot", tok);
		free(j->csrf);
		j->csrf = strdup(tok);
	}
	j->loopback = !(size & 1);
	snprintf(j->peer, sizeof(j->peer), "192.0.2.1");
	web_api_handle(&sh, &wdb, j);
	if (j->status < 100 || j->status > 599)
		__builtin_trap();
	if (j->kind == REPLY_BODY && j->content_type && strstr(j->content_type, "json")) {
		sqlite3_stmt *st = NULL;
		sqlite3_prepare_v2(check, "SELECT json_valid(?1)", -1, &st, NULL);
		sqlite3_bind_text(st, 1, j->body.data ? j->body.data : "", (int)j->body.len,
				  SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW || sqlite3_column_int(st, 0) != 1)
			__builtin_trap();
		sqlite3_finalize(st);
	}
	if (j->fd >= 0)
		close(j->fd);
	free(j->path);
	free(j->query);
	free(j->authz);
	free(j->csrf);
	free(j->body_in);
	free(j->content_type_in);
	web_loop_action_free(&j->loop);
	free(j->disposition);
	buf_free(&j->body);
	free(j);
	return 0;
}
