/*
 * query: the shared read queries and their JSON (see query.h).
 *
 * Promises: every statement binds its values (nothing from a request or the command
 * line is pasted into SQL); every text value goes through the JSON writer; lists are
 * bounded by their page; a failure leaves valid JSON in w only on QUERY_OK.
 */
#include "query/query.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query/spoolfile.h"
#include "store/db.h"
#include "store/event.h"

#define ADB_FILE_NAME "analysis.db" /* analyze/adb.h's ADB_FILE (query does not link it) */
#define SERIES_POINTS_MAX 2000

static int sql_fail(const struct query_db *q, sqlite3 *db, struct buf *err)
{
	(void)q;
	if (err)
		buf_printf(err, "%s", sqlite3_errmsg(db));
	return QUERY_ERROR;
}

static int bad_arg(struct buf *err, const char *what)
{
	if (err)
		buf_puts(err, what);
	return QUERY_BAD_ARG;
}

/* ---- cursors ---- */

int query_cursor_pair(const char *c, int64_t *a, int64_t *b)
{
	char *end;
	errno = 0;
	long long x = strtoll(c, &end, 10);
	if (errno || end == c || *end != '.' || !(c[0] == '-' || (c[0] >= '0' && c[0] <= '9')))
		return -1;
	const char *p = end + 1;
	if (!(*p >= '0' && *p <= '9'))
		return -1;
	long long y = strtoll(p, &end, 10);
	if (errno || *end)
		return -1;
	*a = x;
	*b = y;
	return 0;
}

int query_cursor_offset(const char *c, long *off)
{
	if (c[0] != 'o' || !(c[1] >= '0' && c[1] <= '9'))
		return -1;
	char *end;
	errno = 0;
	long v = strtol(c + 1, &end, 10);
	if (errno || *end || v < 0 || v > 100000000L)
		return -1;
	*off = v;
	return 0;
}

static bool has_cursor(const struct query_page *pg)
{
	return pg && pg->cursor && pg->cursor[0];
}

/* ---- stats ---- */

const char query_sql_offences[] =
	"SELECT coalesce(json_extract(json, '$.kind'), '?') AS k, count(*) FROM events"
	" WHERE event = 'offence' GROUP BY k ORDER BY count(*) DESC, k";
/* Messages not captured, by reason (no_space: the spool's disk budget was spent). */
const char query_sql_refused[] =
	"SELECT coalesce(json_extract(json, '$.reason'), '?') AS r, count(*) FROM events"
	" WHERE event = 'message_rejected' GROUP BY r ORDER BY count(*) DESC, r";
const char query_sql_reasons[] =
	"SELECT coalesce(reason, '(open)') AS r, count(*) FROM sessions"
	" GROUP BY r ORDER BY count(*) DESC, r";

static int64_t q_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = 0;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void scan_dir(const char *dir, uint64_t *files, uint64_t *bytes)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		struct stat st;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISREG(st.st_mode)) {
			(*files)++;
			*bytes += (uint64_t)st.st_size;
		}
	}
	closedir(d);
}

void query_spool_usage(const char *data_dir, struct query_spool_usage *u)
{
	memset(u, 0, sizeof(*u));
	const char *subs[] = {"new", "cur"};
	for (size_t i = 0; i < 2; i++) {
		char *p = NULL;
		if (asprintf(&p, "%s/%s/%s", data_dir, MXB_SPOOL_DIR, subs[i]) < 0)
			continue;
		scan_dir(p, &u->files, &u->bytes);
		free(p);
	}
	char *p = NULL;
	uint64_t tb = 0;
	if (asprintf(&p, "%s/%s/tmp", data_dir, MXB_SPOOL_DIR) >= 0)
		scan_dir(p, &u->tmp_files, &tb);
	u->bytes += tb;
	free(p);
}

void query_totals(const struct query_db *q, struct query_totals *t)
{
	sqlite3 *db = q->db;
	memset(t, 0, sizeof(*t));
	t->sessions = q_int(db, "SELECT count(*) FROM sessions");
	t->ips = q_int(db, "SELECT count(DISTINCT src_ip) FROM sessions");
	t->messages = q_int(db, "SELECT count(*) FROM messages");
	t->message_bytes = q_int(db, "SELECT coalesce(sum(size), 0) FROM messages");
	t->auth_all = q_int(db, "SELECT count(*) FROM auth_attempts");
	t->auth_ok = q_int(db, "SELECT count(*) FROM auth_attempts WHERE success = 1");
	t->rcpt_all = q_int(db, "SELECT count(*) FROM events WHERE event = 'rcpt'");
	t->rcpt_ok = q_int(db, "SELECT count(*) FROM events WHERE event = 'rcpt'"
			       " AND json_extract(json, '$.accepted') = 1");
	t->events = q_int(db, "SELECT count(*) FROM events");
	t->first_us = q_int(db, "SELECT coalesce(min(ts_us), 0) FROM events");
	t->last_us = q_int(db, "SELECT coalesce(max(ts_us), 0) FROM events");
	t->dropped = db_counter_get(db, "events_dropped");
	query_spool_usage(q->data_dir, &t->spool);
}

static int group_json(sqlite3 *db, const char *sql, const char *key, struct jw *w)
{
	sqlite3_stmt *st = NULL;
	jw_begin_object(w, key);
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			/* Keys are attacker-reachable text: the writer escapes them. */
			const char *k = (const char *)sqlite3_column_text(st, 0);
			struct buf kb;
			buf_init(&kb, 0);
			buf_append(&kb, k ? k : "", k ? (size_t)sqlite3_column_bytes(st, 0) : 0);
			jw_int(w, kb.data ? kb.data : "", (long long)sqlite3_column_int64(st, 1));
			buf_free(&kb);
		}
	}
	sqlite3_finalize(st);
	jw_end_object(w);
	return rc == SQLITE_DONE ? 0 : -1;
}

int query_stats(const struct query_db *q, struct jw *w, struct buf *err)
{
	struct query_totals t;
	query_totals(q, &t);
	jw_begin_object(w, NULL);
	jw_int(w, "sessions", t.sessions);
	jw_int(w, "distinct_ips", t.ips);
	jw_int(w, "messages", t.messages);
	jw_int(w, "message_bytes", t.message_bytes);
	jw_begin_object(w, "auth");
	jw_int(w, "ok", t.auth_ok);
	jw_int(w, "failed", t.auth_all - t.auth_ok);
	jw_end_object(w);
	jw_begin_object(w, "rcpt");
	jw_int(w, "accepted", t.rcpt_ok);
	jw_int(w, "denied", t.rcpt_all - t.rcpt_ok);
	jw_end_object(w);
	int rc = group_json(q->db, query_sql_refused, "messages_refused", w);
	rc |= group_json(q->db, query_sql_offences, "offences", w);
	rc |= group_json(q->db, query_sql_reasons, "disconnect_reasons", w);
	jw_int(w, "events", t.events);
	jw_int(w, "events_dropped", t.dropped);
	jw_time(w, "first_event", t.first_us);
	jw_time(w, "last_event", t.last_us);
	jw_begin_object(w, "spool");
	jw_int(w, "files", (long long)t.spool.files);
	jw_int(w, "bytes", (long long)t.spool.bytes);
	jw_int(w, "tmp_files", (long long)t.spool.tmp_files);
	if (q->spool_budget)
		jw_int(w, "budget", (long long)q->spool_budget);
	else
		jw_null(w, "budget");
	jw_end_object(w);
	jw_end_object(w);
	return rc ? sql_fail(q, q->db, err) : QUERY_OK;
}

/* ---- sessions ---- */

static const char *const session_cols[] = {
	"session", "started_us", "src_ip", "src_port", "proto", "helo", "tls", "auth_user",
	"commands", "messages", "duration_ms", "reason", "ended_us", "dst_port", "errors",
	"auth_attempts", "mails", "rcpts", "offences", "state"};

int query_sessions(const struct query_db *q, const char *ip, struct query_page *pg,
		   struct jw *w, struct buf *err)
{
	static const char sql[] =
		"SELECT session, started_us, src_ip, src_port, proto, helo, tls, auth_user,"
		" commands, messages, duration_ms, reason, ended_us, dst_port, errors,"
		" auth_attempts, mails, rcpts, offences, state, rowid"
		" FROM sessions WHERE (?1 IS NULL OR src_ip = ?1)"
		" AND (?3 IS NULL OR (started_us, rowid) < (?3, ?4))"
		" ORDER BY started_us DESC, rowid DESC LIMIT ?2";
	int64_t ca = 0, cb = 0;
	if (has_cursor(pg) && query_cursor_pair(pg->cursor, &ca, &cb) < 0)
		return bad_arg(err, "bad cursor");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	if (ip)
		sqlite3_bind_text(st, 1, ip, -1, SQLITE_STATIC);
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	/* One row more than asked: whether there is a next page. */
	sqlite3_bind_int64(st, 2, limit > 0 ? limit + 1 : -1);
	if (has_cursor(pg)) {
		sqlite3_bind_int64(st, 3, ca);
		sqlite3_bind_int64(st, 4, cb);
	}
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	int64_t last_a = 0, last_b = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "%" PRId64 ".%" PRId64, last_a, last_b);
			break;
		}
		jw_begin_object(w, NULL);
		for (int i = 0; i < 20; i++)
			jw_col(w, session_cols[i], st, i);
		jw_time(w, "started", sqlite3_column_int64(st, 1));
		jw_time(w, "ended", sqlite3_column_int64(st, 12));
		jw_end_object(w);
		last_a = sqlite3_column_int64(st, 1);
		last_b = sqlite3_column_int64(st, 20);
		n++;
	}
	jw_end_array(w);
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		sql_fail(q, q->db, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}

int query_session_events(const struct query_db *q, const char *sid, struct jw *w,
			 struct buf *err)
{
	sqlite3_stmt *st = NULL;
	/* json(): re-validated, compact; events as the contract defines them. */
	if (sqlite3_prepare_v2(q->db, "SELECT json(json) FROM events WHERE session = ?1"
				      " ORDER BY id", -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		jw_raw(w, NULL, (const char *)sqlite3_column_text(st, 0),
		       (size_t)sqlite3_column_bytes(st, 0));
		n++;
	}
	jw_end_array(w);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return sql_fail(q, q->db, err);
	return n ? QUERY_OK : QUERY_NOT_FOUND;
}

/* ---- messages ---- */

int query_messages(const struct query_db *q, struct query_page *pg, struct jw *w,
		   struct buf *err)
{
	static const char sql[] =
		"SELECT queue_id, ts_us, session, src_ip, sender, n_rcpt, size, spool, sha256,"
		" recipients, method, auth_user, tls, id"
		" FROM messages WHERE (?2 IS NULL OR (ts_us, id) < (?2, ?3))"
		" ORDER BY ts_us DESC, id DESC LIMIT ?1";
	static const char *const names[] = {"queue_id", "ts_us", "session", "src_ip",
					    "sender", "n_rcpt", "size", "spool", "sha256"};
	int64_t ca = 0, cb = 0;
	if (has_cursor(pg) && query_cursor_pair(pg->cursor, &ca, &cb) < 0)
		return bad_arg(err, "bad cursor");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	sqlite3_bind_int64(st, 1, limit > 0 ? limit + 1 : -1);
	if (has_cursor(pg)) {
		sqlite3_bind_int64(st, 2, ca);
		sqlite3_bind_int64(st, 3, cb);
	}
	if (pg)
		pg->next[0] = '\0';
	struct buf subj;
	buf_init(&subj, 0);
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	int64_t last_a = 0, last_b = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "%" PRId64 ".%" PRId64, last_a, last_b);
			break;
		}
		buf_reset(&subj);
		char *path = spoolfile_path(q->data_dir, (const char *)sqlite3_column_text(st, 7));
		int have_subj = path ? spoolfile_subject(path, &subj) : -1;
		jw_begin_object(w, NULL);
		for (int i = 0; i < 9; i++)
			jw_col(w, names[i], st, i);
		jw_time(w, "ts", sqlite3_column_int64(st, 1));
		/* recipients: the JSON array the event store kept. */
		const char *r = (const char *)sqlite3_column_text(st, 9);
		size_t rl = (size_t)sqlite3_column_bytes(st, 9);
		if (r && rl && r[0] == '[')
			jw_raw(w, "recipients", r, rl);
		else
			jw_null(w, "recipients");
		jw_col(w, "method", st, 10);
		jw_col(w, "auth_user", st, 11);
		jw_bool(w, "tls", sqlite3_column_int(st, 12) != 0);
		jw_cstr(w, "path", path);
		if (have_subj == 1)
			jw_str(w, "subject", subj.data ? subj.data : "", subj.len);
		else
			jw_null(w, "subject");
		jw_end_object(w);
		free(path);
		last_a = sqlite3_column_int64(st, 1);
		last_b = sqlite3_column_int64(st, 13);
		n++;
	}
	jw_end_array(w);
	buf_free(&subj);
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		sql_fail(q, q->db, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}

int query_read_file(const char *path, size_t max, struct buf *out, uint64_t *size_r,
		    char sha_r[65])
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		close(fd);
		return -1;
	}
	char chunk[65536];
	uint64_t total = 0;
	ssize_t n;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		EVP_DigestUpdate(md, chunk, (size_t)n);
		size_t keep = (size_t)n;
		if (max && total < max && total + keep > max)
			keep = (size_t)(max - total);
		if (!max || total < max)
			buf_append(out, chunk, keep);
		total += (uint64_t)n;
	}
	int saved = errno;
	close(fd);
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned dl = 0;
	EVP_DigestFinal_ex(md, d, &dl);
	EVP_MD_CTX_free(md);
	sha_r[0] = '\0';
	for (unsigned i = 0; i < dl && i < 32; i++)
		snprintf(sha_r + 2 * i, 3, "%02x", d[i]);
	*size_r = total;
	errno = saved;
	return n < 0 ? -1 : 0;
}

static char *analysis_lookup(sqlite3 *db, const char *prefix, const char *spool,
			     const char *sha)
{
	/* The analysis store is keyed by the SHA-256 of the message bytes; by spool file
	 * name when the file changed since it was analysed: the name itself (the
	 * analyzer process) or a path ending in it (`analyze --store DIR/spool`). */
	char sql[2][512];
	snprintf(sql[0], sizeof(sql[0]),
		 "SELECT json_set(m.analysis_json, '$.campaign.id', c.key)"
		 " FROM %smessages m LEFT JOIN %scampaigns c ON c.id = m.campaign_id"
		 " WHERE m.sha256 = ?1 AND m.analysis_json IS NOT NULL", prefix, prefix);
	snprintf(sql[1], sizeof(sql[1]),
		 "SELECT json_set(m.analysis_json, '$.campaign.id', c.key)"
		 " FROM %smessages m LEFT JOIN %scampaigns c ON c.id = m.campaign_id"
		 " WHERE (m.source = ?1 OR substr(m.source, -length(?1) - 1) = '/' || ?1)"
		 " AND m.analysis_json IS NOT NULL ORDER BY m.id DESC LIMIT 1", prefix, prefix);
	const char *arg[] = {sha, spool};
	char *out = NULL;
	for (int i = 0; i < 2 && !out; i++) {
		if (!arg[i])
			continue;
		sqlite3_stmt *st = NULL;
		/* An analysis.db of schema 1 has no analysis_json: no analysis. */
		if (sqlite3_prepare_v2(db, sql[i], -1, &st, NULL) != SQLITE_OK)
			break;
		sqlite3_bind_text(st, 1, arg[i], -1, SQLITE_STATIC);
		if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
			out = strdup((const char *)sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
	}
	return out;
}

char *query_load_analysis(const struct query_db *q, const char *spool, const char *sha)
{
	if (q->adb)
		return analysis_lookup(q->adb, "", spool, sha);
	char *path = NULL;
	if (asprintf(&path, "%s/%s", q->data_dir, ADB_FILE_NAME) < 0)
		return NULL;
	struct stat sb;
	if (stat(path, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		free(path);
		return NULL;
	}
	/* The connection is query_only and was opened without SQLITE_OPEN_CREATE: the
	 * attached file is read, never written or created. */
	sqlite3_stmt *st = NULL;
	bool attached = false;
	if (sqlite3_prepare_v2(q->db, "ATTACH ?1 AS analysis", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, path, -1, SQLITE_STATIC);
		attached = sqlite3_step(st) == SQLITE_DONE;
	}
	sqlite3_finalize(st);
	free(path);
	if (!attached)
		return NULL;
	char *out = analysis_lookup(q->db, "analysis.", spool, sha);
	sqlite3_exec(q->db, "DETACH analysis", NULL, NULL, NULL);
	return out;
}

int query_message(const struct query_db *q, const char *qid, size_t text_max, struct jw *w,
		  struct buf *err)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db,
			       "SELECT queue_id, ts_us, session, src_ip, sender, recipients,"
			       " size, sha256, spool, method, auth_user, tls FROM messages"
			       " WHERE queue_id = ?1 ORDER BY id DESC LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	int rc = sqlite3_step(st);
	if (rc != SQLITE_ROW) {
		sqlite3_finalize(st);
		return rc == SQLITE_DONE ? QUERY_NOT_FOUND : sql_fail(q, q->db, err);
	}
	const char *spool = (const char *)sqlite3_column_text(st, 8);
	char *path = spoolfile_path(q->data_dir, spool);
	struct buf text;
	buf_init(&text, 0);
	uint64_t fsize = 0;
	char sha[65] = "";
	int rr = path ? query_read_file(path, text_max, &text, &fsize, sha) : -1;
	const char *want_sha = (const char *)sqlite3_column_text(st, 7);
	bool sha_ok = rr == 0 && want_sha && !strcmp(want_sha, sha);
	bool cut = rr == 0 && fsize > text.len;
	char *analysis = query_load_analysis(q, spool, want_sha);

	jw_begin_object(w, NULL);
	static const char *const names[] = {"queue_id", "ts_us", "session", "src_ip", "sender"};
	for (int i = 0; i < 5; i++)
		jw_col(w, names[i], st, i);
	jw_time(w, "ts", sqlite3_column_int64(st, 1));
	const char *r = (const char *)sqlite3_column_text(st, 5);
	if (r && r[0] == '[')
		jw_raw(w, "recipients", r, (size_t)sqlite3_column_bytes(st, 5));
	else
		jw_null(w, "recipients");
	jw_col(w, "size", st, 6);
	jw_col(w, "sha256", st, 7);
	jw_col(w, "spool", st, 8);
	jw_col(w, "method", st, 9);
	jw_col(w, "auth_user", st, 10);
	jw_bool(w, "tls", sqlite3_column_int(st, 11) != 0);
	jw_cstr(w, "path", path);
	if (rr == 0) {
		jw_bool(w, "sha256_ok", sha_ok);
		jw_str(w, "text", text.data ? text.data : "", text.len);
		jw_bool(w, "truncated", cut);
	} else {
		jw_null(w, "sha256_ok");
		jw_null(w, "text");
		jw_bool(w, "truncated", false);
	}
	if (analysis)
		jw_raw(w, "analysis", analysis, strlen(analysis));
	else
		jw_null(w, "analysis");
	jw_end_object(w);
	free(analysis);
	buf_free(&text);
	free(path);
	sqlite3_finalize(st);
	return QUERY_OK;
}

int query_message_file(const struct query_db *q, const char *qid, char **path_r,
		       int64_t *size_r)
{
	sqlite3_stmt *st = NULL;
	*path_r = NULL;
	if (sqlite3_prepare_v2(q->db, "SELECT spool, size FROM messages WHERE queue_id = ?1"
				      " ORDER BY id DESC LIMIT 1", -1, &st, NULL) != SQLITE_OK)
		return QUERY_ERROR;
	sqlite3_bind_text(st, 1, qid, -1, SQLITE_STATIC);
	int status = QUERY_NOT_FOUND;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*path_r = spoolfile_path(q->data_dir, (const char *)sqlite3_column_text(st, 0));
		*size_r = sqlite3_column_int64(st, 1);
		if (*path_r)
			status = QUERY_OK;
	}
	sqlite3_finalize(st);
	return status;
}

/* ---- auth attempts ---- */

int query_auth_attempts(const struct query_db *q, const char *ip, const char *username,
			struct query_page *pg, struct jw *w, struct buf *err)
{
	static const char sql[] =
		"SELECT id, ts_us, session, src_ip, prefix, proto, mechanism, username, password,"
		" success, result FROM auth_attempts"
		" WHERE (?1 IS NULL OR src_ip = ?1) AND (?2 IS NULL OR username = ?2)"
		" AND (?4 IS NULL OR (ts_us, id) < (?4, ?5))"
		" ORDER BY ts_us DESC, id DESC LIMIT ?3";
	static const char *const names[] = {"id", "ts_us", "session", "src_ip", "prefix",
					    "proto", "mechanism", "username", "password"};
	int64_t ca = 0, cb = 0;
	if (has_cursor(pg) && query_cursor_pair(pg->cursor, &ca, &cb) < 0)
		return bad_arg(err, "bad cursor");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	if (ip)
		sqlite3_bind_text(st, 1, ip, -1, SQLITE_STATIC);
	if (username)
		sqlite3_bind_text(st, 2, username, -1, SQLITE_STATIC);
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	sqlite3_bind_int64(st, 3, limit > 0 ? limit + 1 : -1);
	if (has_cursor(pg)) {
		sqlite3_bind_int64(st, 4, ca);
		sqlite3_bind_int64(st, 5, cb);
	}
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	int64_t last_a = 0, last_b = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "%" PRId64 ".%" PRId64, last_a, last_b);
			break;
		}
		jw_begin_object(w, NULL);
		for (int i = 0; i < 9; i++)
			jw_col(w, names[i], st, i);
		jw_time(w, "ts", sqlite3_column_int64(st, 1));
		jw_bool(w, "success", sqlite3_column_int(st, 9) != 0);
		jw_col(w, "result", st, 10);
		jw_end_object(w);
		last_a = sqlite3_column_int64(st, 1);
		last_b = sqlite3_column_int64(st, 0);
		n++;
	}
	jw_end_array(w);
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		sql_fail(q, q->db, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}

/* ---- time series ---- */

int query_series_parse(const char *name)
{
	static const char *const names[QS_COUNT] = {"auth", "sessions", "messages", "sources"};
	for (int i = 0; name && i < QS_COUNT; i++)
		if (!strcmp(name, names[i]))
			return i;
	return -1;
}

int query_timeseries(const struct query_db *q, int series, int64_t from_us, int64_t to_us,
		     int64_t step_us, struct jw *w, struct buf *err)
{
	/* Each groups by bucket = (ts - ?1) / ?3 over an indexed time range. */
	static const char *const sql[QS_COUNT] = {
		"SELECT (ts_us - ?1) / ?3 AS b, count(*), sum(success) FROM auth_attempts"
		" WHERE ts_us >= ?1 AND ts_us < ?2 GROUP BY b",
		"SELECT (started_us - ?1) / ?3 AS b, count(*), 0 FROM sessions"
		" WHERE started_us >= ?1 AND started_us < ?2 GROUP BY b",
		"SELECT (ts_us - ?1) / ?3 AS b, count(*), coalesce(sum(size), 0) FROM messages"
		" WHERE ts_us >= ?1 AND ts_us < ?2 GROUP BY b",
		"SELECT (started_us - ?1) / ?3 AS b, count(DISTINCT src_ip), 0 FROM sessions"
		" WHERE started_us >= ?1 AND started_us < ?2 GROUP BY b",
	};
	static const char *const names[QS_COUNT] = {"auth", "sessions", "messages", "sources"};
	/* The second figure of each point: successes, -, bytes, -. */
	static const char *const second[QS_COUNT] = {"ok", NULL, "bytes", NULL};
	if (series < 0 || series >= QS_COUNT)
		return bad_arg(err, "unknown series");
	if (step_us <= 0 || to_us <= from_us)
		return bad_arg(err, "bad time range");
	int64_t npoints = (to_us - from_us + step_us - 1) / step_us;
	if (npoints > SERIES_POINTS_MAX)
		return bad_arg(err, "too many points (at most 2000: a larger step or a shorter range)");
	int64_t *count = calloc((size_t)npoints, sizeof(*count));
	int64_t *extra = calloc((size_t)npoints, sizeof(*extra));
	if (!count || !extra) {
		free(count);
		free(extra);
		if (err)
			buf_puts(err, "out of memory");
		return QUERY_ERROR;
	}
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(q->db, sql[series], -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, from_us);
		sqlite3_bind_int64(st, 2, to_us);
		sqlite3_bind_int64(st, 3, step_us);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int64_t b = sqlite3_column_int64(st, 0);
			if (b >= 0 && b < npoints) {
				count[b] = sqlite3_column_int64(st, 1);
				extra[b] = sqlite3_column_int64(st, 2);
			}
		}
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(count);
		free(extra);
		return sql_fail(q, q->db, err);
	}
	jw_begin_object(w, NULL);
	jw_cstr(w, "series", names[series]);
	jw_int(w, "step_s", step_us / 1000000);
	jw_time(w, "from", from_us);
	jw_time(w, "to", to_us);
	jw_begin_array(w, "points");
	for (int64_t i = 0; i < npoints; i++) {
		jw_begin_object(w, NULL);
		jw_time(w, "t", from_us + i * step_us);
		jw_int(w, "t_us", from_us + i * step_us);
		jw_int(w, "count", count[i]);
		if (second[series])
			jw_int(w, second[series], extra[i]);
		jw_end_object(w);
	}
	jw_end_array(w);
	jw_end_object(w);
	free(count);
	free(extra);
	return QUERY_OK;
}

/* ---- countries ---- */

struct country {
	char iso[3];
	char name[64];
	int64_t ips, sessions, attempts;
};

static int country_cmp(const void *a, const void *b)
{
	const struct country *x = a, *y = b;
	if (x->attempts != y->attempts)
		return x->attempts < y->attempts ? 1 : -1;
	if (x->sessions != y->sessions)
		return x->sessions < y->sessions ? 1 : -1;
	return strcmp(x->iso, y->iso);
}

int query_countries(const struct query_db *q, int64_t since_us, long top, query_geo_fn fn,
		    void *ctx, struct jw *w, struct buf *err)
{
	static const char sql[] =
		"WITH s AS (SELECT src_ip AS k, count(*) AS n FROM sessions"
		"  WHERE started_us >= ?1 GROUP BY src_ip),"
		" a AS (SELECT src_ip AS k, count(*) AS n FROM auth_attempts"
		"  WHERE ts_us >= ?1 GROUP BY src_ip),"
		" keys AS (SELECT k FROM s UNION SELECT k FROM a)"
		" SELECT keys.k, coalesce(s.n, 0), coalesce(a.n, 0) FROM keys"
		" LEFT JOIN s ON s.k = keys.k LEFT JOIN a ON a.k = keys.k"
		" WHERE keys.k IS NOT NULL";
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return sql_fail(q, q->db, err);
	sqlite3_bind_int64(st, 1, since_us);
	/* ISO 3166 has 249 codes: a fixed table, plus one row for "unknown". */
	enum { MAX_COUNTRIES = 400 };
	struct country *c = calloc(MAX_COUNTRIES, sizeof(*c));
	if (!c) {
		sqlite3_finalize(st);
		return QUERY_ERROR;
	}
	size_t n = 0;
	struct country unknown = {.iso = ""};
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *ip = (const char *)sqlite3_column_text(st, 0);
		char iso[3] = "", name[64] = "";
		struct country *row = &unknown;
		if (ip && fn && fn(ctx, ip, iso, name, sizeof(name))) {
			row = NULL;
			for (size_t i = 0; i < n && !row; i++)
				if (!strcmp(c[i].iso, iso))
					row = &c[i];
			if (!row && n < MAX_COUNTRIES) {
				row = &c[n++];
				memcpy(row->iso, iso, 3);
				snprintf(row->name, sizeof(row->name), "%s", name);
			}
			if (!row)
				row = &unknown;
		}
		row->ips++;
		row->sessions += sqlite3_column_int64(st, 1);
		row->attempts += sqlite3_column_int64(st, 2);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		free(c);
		return sql_fail(q, q->db, err);
	}
	qsort(c, n, sizeof(*c), country_cmp);
	jw_begin_object(w, NULL);
	jw_begin_array(w, "countries");
	for (size_t i = 0; i < n && (top <= 0 || (long)i < top); i++) {
		jw_begin_object(w, NULL);
		jw_cstr(w, "country", c[i].iso);
		jw_cstr(w, "name", c[i].name);
		jw_int(w, "ips", c[i].ips);
		jw_int(w, "sessions", c[i].sessions);
		jw_int(w, "attempts", c[i].attempts);
		jw_end_object(w);
	}
	if (unknown.ips) {
		jw_begin_object(w, NULL);
		jw_null(w, "country");
		jw_null(w, "name");
		jw_int(w, "ips", unknown.ips);
		jw_int(w, "sessions", unknown.sessions);
		jw_int(w, "attempts", unknown.attempts);
		jw_end_object(w);
	}
	jw_end_array(w);
	jw_end_object(w);
	free(c);
	return QUERY_OK;
}

/* ---- analysis.db ---- */

#define ISO_TIME(x) "strftime('%Y-%m-%dT%H:%M:%SZ', " x ", 'unixepoch')"

static const struct aq_col cols_urls[] = {{"URL", "url", 80, false, 0},
					  {"DOMAIN", "domain", 32, false, 0},
					  {"MSGS", "messages", 0, true, 0},
					  {"FLAGS", "flags", 48, false, ','},
					  {"FIRST SEEN (UTC)", "first_seen", 0, false, 0}};
const struct aq_def aq_urls = {
	"SELECT l.url, l.domain, count(DISTINCT l.message) AS messages,"
	" group_concat(DISTINCT nullif(l.flag_names, '')) AS flags,"
	" " ISO_TIME("min(m.analyzed_at)") " AS first_seen"
	" FROM links l JOIN messages m ON m.id = l.message"
	" WHERE (?2 IS NULL OR l.domain = lower(?2))"
	" AND (?3 IS NULL OR instr(',' || l.flag_names || ',', ',' || ?3 || ',') > 0)"
	" GROUP BY l.url ORDER BY messages DESC, l.url LIMIT ?1 OFFSET ?9",
	cols_urls, 5, "no links", NULL};

static const struct aq_col cols_domains[] = {{"DOMAIN", "domain", 48, false, 0},
					     {"MSGS", "messages", 0, true, 0},
					     {"URLS", "urls", 0, true, 0},
					     {"FLAGS", "flags", 60, false, ','}};
const struct aq_def aq_domains = {
	"SELECT domain, count(DISTINCT message) AS messages, count(DISTINCT url) AS urls,"
	" group_concat(DISTINCT nullif(flag_names, '')) AS flags"
	" FROM links WHERE domain IS NOT NULL"
	" GROUP BY domain ORDER BY messages DESC, domain LIMIT ?1 OFFSET ?9",
	cols_domains, 4, "no domains", NULL};

static const struct aq_col cols_rcpt[] = {{"ADDRESS", "addr", 48, false, 0},
					  {"NAME", "name", 32, false, 0},
					  {"MSGS", "messages", 0, true, 0},
					  {"SEEN IN", "seen_in", 0, false, ' '}};
const struct aq_def aq_recipients = {
	"SELECT addr, max(name) AS name, count(DISTINCT message) AS messages,"
	" (CASE WHEN max(src & 1) THEN 'envelope ' ELSE '' END ||"
	"  CASE WHEN max(src & 2) THEN 'to ' ELSE '' END ||"
	"  CASE WHEN max(src & 4) THEN 'cc ' ELSE '' END ||"
	"  CASE WHEN max(src & 8) THEN 'bcc' ELSE '' END) AS seen_in"
	" FROM recipients WHERE (?2 IS NULL OR domain = lower(?2))"
	" GROUP BY addr ORDER BY messages DESC, addr LIMIT ?1 OFFSET ?9",
	cols_rcpt, 4, "no recipients", NULL};

static const struct aq_col cols_rcpt_dom[] = {{"DOMAIN", "domain", 48, false, 0},
					      {"ADDRESSES", "addresses", 0, true, 0},
					      {"MSGS", "messages", 0, true, 0}};
const struct aq_def aq_recipient_domains = {
	"SELECT domain, count(DISTINCT addr) AS addresses,"
	" count(DISTINCT message) AS messages FROM recipients"
	" GROUP BY domain ORDER BY addresses DESC, domain LIMIT ?1 OFFSET ?9",
	cols_rcpt_dom, 3, "no recipients", NULL};

static const struct aq_col cols_campaigns[] = {{"CAMPAIGN", "id", 0, false, 0},
					       {"MSGS", "messages", 0, true, 0},
					       {"FIRST SEEN (UTC)", "first_seen", 0, false, 0},
					       {"SUBJECT", "subject", 50, false, 0},
					       {"SENDERS", "senders", 50, false, ' '}};
const struct aq_def aq_campaigns = {
	"SELECT c.key, count(m.id) AS messages,"
	" " ISO_TIME("c.first_seen") " AS first_seen, c.subject,"
	" (SELECT group_concat(f, ' ') FROM (SELECT DISTINCT m2.from_addr AS f FROM messages m2"
	"   WHERE m2.campaign_id = c.id AND m2.from_addr IS NOT NULL LIMIT 3)) AS senders"
	" FROM campaigns c JOIN messages m ON m.campaign_id = c.id"
	" GROUP BY c.id ORDER BY messages DESC, c.id LIMIT ?1 OFFSET ?9",
	cols_campaigns, 5, "no campaigns", NULL};

static const struct aq_col cols_campaign_msgs[] = {{"MSG", "message", 0, true, 0},
						   {"SOURCE", "source", 40, false, 0},
						   {"FROM", "from", 32, false, 0},
						   {"SUBJECT", "subject", 50, false, 0},
						   {"CLIENT", "client_ip", 0, false, 0},
						   {"REP", "representative", 0, true, 0}};
/* A campaign merged into another (analysis.db schema 4: campaigns.merged_into) answers
 * with the messages of the campaign it went into. */
const struct aq_def aq_campaign_messages = {
	"SELECT m.id, m.source, m.from_addr, m.subject, m.client_ip,"
	" (m.id = c.rep_message) AS representative"
	" FROM campaigns q JOIN campaigns c ON c.id = coalesce(q.merged_into, q.id)"
	" JOIN messages m ON m.campaign_id = c.id"
	" WHERE q.key = ?2 ORDER BY m.id LIMIT ?1 OFFSET ?9",
	cols_campaign_msgs, 6, "no such campaign",
	"SELECT m.id, m.source, m.from_addr, m.subject, m.client_ip,"
	" (m.id = c.rep_message) AS representative"
	" FROM campaigns c JOIN messages m ON m.campaign_id = c.id"
	" WHERE c.key = ?2 ORDER BY m.id LIMIT ?1 OFFSET ?9"};

int query_analysis(const struct query_db *q, const struct aq_def *d,
		   const char *const *params, size_t nparams, struct query_page *pg,
		   struct jw *w, struct buf *err)
{
	long off = 0;
	if (has_cursor(pg) && query_cursor_offset(pg->cursor, &off) < 0)
		return bad_arg(err, "bad cursor");
	if (!q->adb)
		return QUERY_NO_ANALYSIS;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(q->adb, d->sql, -1, &st, NULL) != SQLITE_OK &&
	    (!d->sql_old || sqlite3_prepare_v2(q->adb, d->sql_old, -1, &st, NULL) != SQLITE_OK))
		return sql_fail(q, q->adb, err);
	long limit = pg && pg->limit > 0 ? pg->limit : -1;
	sqlite3_bind_int64(st, 1, limit > 0 ? limit + 1 : -1);
	for (size_t i = 0; i < nparams; i++)
		if (params[i])
			sqlite3_bind_text(st, (int)i + 2, params[i], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 9, off);
	if (pg)
		pg->next[0] = '\0';
	jw_begin_array(w, NULL);
	int rc;
	long n = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (limit > 0 && n == limit) {
			snprintf(pg->next, sizeof(pg->next), "o%ld", off + n);
			break;
		}
		jw_begin_object(w, NULL);
		for (size_t i = 0; i < d->ncols; i++) {
			if (d->cols[i].list)
				jw_list(w, d->cols[i].json, (const char *)sqlite3_column_text(st, (int)i),
					(size_t)sqlite3_column_bytes(st, (int)i), d->cols[i].list);
			else
				jw_col(w, d->cols[i].json, st, (int)i);
		}
		jw_end_object(w);
		n++;
	}
	jw_end_array(w);
	bool ok = rc == SQLITE_DONE || rc == SQLITE_ROW;
	if (!ok)
		sql_fail(q, q->adb, err);
	sqlite3_finalize(st);
	return ok ? QUERY_OK : QUERY_ERROR;
}
