/*
 * handoff: the backend hand-off worker (see handoff.h).
 */
#include "guard/handoff.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <jansson.h>

#include "store/db.h"
#include "store/event.h"
#include "util/buf.h"

#define IO_TIMEOUT_MS 60000
#define RETRY_MIN_US (60LL * 1000000)
#define RETRY_MAX_US (3600LL * 1000000)
#define GIVE_UP_US (5LL * 86400 * 1000000)
#define REPLY_MAX 4096
#define MSG_MAX (64LL * 1024 * 1024)

static volatile sig_atomic_t stop_flag;

static void on_term(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "mxbait-handoff[%ld]: ", (long)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- the backend connection ---- */

struct conn {
	int fd;
	char in[REPLY_MAX];
	size_t len;
};

static int dial(const struct mxb_backend *b)
{
	int fd;
	if (b->unix_socket) {
		struct sockaddr_un un;
		memset(&un, 0, sizeof(un));
		un.sun_family = AF_UNIX;
		snprintf(un.sun_path, sizeof(un.sun_path), "%s", b->path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 && connect(fd, (struct sockaddr *)&un, sizeof(un)) != 0) {
			close(fd);
			return -1;
		}
		return fd;
	}
	/* an address literal only (the configuration checked it): no resolver */
	struct sockaddr_storage ss;
	socklen_t sl;
	memset(&ss, 0, sizeof(ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, b->host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)b->port);
		sl = sizeof(*s4);
	} else if (inet_pton(AF_INET6, b->host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)b->port);
		sl = sizeof(*s6);
	} else {
		return -1;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
	while (n) {
		struct pollfd pf = { c->fd, POLLOUT, 0 };
		if (poll(&pf, 1, IO_TIMEOUT_MS) != 1)
			return -1;
		ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One whole reply (multi-line "250-" ... "250 "); its code, -1 on error.  text_r gets
 * the last line. */
static int reply(struct conn *c, char *text_r, size_t tlen)
{
	for (;;) {
		char *nl = memchr(c->in, '\n', c->len);
		if (nl) {
			size_t ll = (size_t)(nl - c->in) + 1;
			char line[REPLY_MAX];
			memcpy(line, c->in, ll);
			line[ll] = '\0';
			memmove(c->in, c->in + ll, c->len - ll);
			c->len -= ll;
			if (ll < 4 || line[0] < '2' || line[0] > '5')
				return -1;
			if (line[3] == '-')
				continue;
			if (text_r && tlen) {
				size_t k = strcspn(line, "\r\n");
				if (k >= tlen)
					k = tlen - 1;
				memcpy(text_r, line, k);
				text_r[k] = '\0';
			}
			return (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		}
		if (c->len == sizeof(c->in))
			return -1;
		struct pollfd pf = { c->fd, POLLIN, 0 };
		if (poll(&pf, 1, IO_TIMEOUT_MS) != 1)
			return -1;
		ssize_t n = recv(c->fd, c->in + c->len, sizeof(c->in) - c->len, 0);
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
	}
}

static int cmd(struct conn *c, char *text_r, size_t tlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int cmd(struct conn *c, char *text_r, size_t tlen, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) || send_all(c, line, (size_t)n) != 0)
		return -1;
	return reply(c, text_r, tlen);
}

/* The message with dot-stuffing and CRLF line ends, then ".". */
static int send_body(struct conn *c, const char *m, size_t len)
{
	struct buf out;
	buf_init(&out, 0);
	bool bol = true;
	for (size_t i = 0; i < len; i++) {
		char ch = m[i];
		if (bol && ch == '.')
			buf_putc(&out, '.');
		if (ch == '\n' && (i == 0 || m[i - 1] != '\r'))
			buf_putc(&out, '\r');
		buf_putc(&out, ch);
		bol = ch == '\n';
		if (out.len >= 65536) {
			if (send_all(c, out.data, out.len) != 0) {
				buf_free(&out);
				return -1;
			}
			buf_reset(&out);
		}
	}
	if (!bol)
		buf_puts(&out, "\r\n");
	buf_puts(&out, ".\r\n");
	int rc = send_all(c, out.data, out.len);
	buf_free(&out);
	return rc;
}

enum outcome { DELIVERED, TEMPFAIL, PERMFAIL };

/* Deliver; *why gets the backend's word.  Each recipient either accepted or not:
 * accepted ones that the final reply confirms are delivered. */
static enum outcome deliver(const struct handoff_config *cfg, const char *sender, char **rcpts,
			    size_t n, const char *msg, size_t len, char *why, size_t wlen)
{
	struct conn c = { .fd = dial(&cfg->backend) };
	if (c.fd < 0) {
		snprintf(why, wlen, "connect: %s", strerror(errno));
		return TEMPFAIL;
	}
	enum outcome o = TEMPFAIL;
	bool lmtp = cfg->backend.lmtp;
	int code = reply(&c, why, wlen);
	if (code != 220)
		goto out;
	code = cmd(&c, why, wlen, "%s %s\r\n", lmtp ? "LHLO" : "EHLO", cfg->helo);
	if (code != 250)
		goto out;
	code = cmd(&c, why, wlen, "MAIL FROM:<%s>\r\n", sender);
	if (code != 250) {
		o = code >= 500 ? PERMFAIL : TEMPFAIL;
		goto out;
	}
	size_t ok = 0;
	bool any_temp = false;
	for (size_t i = 0; i < n; i++) {
		code = cmd(&c, why, wlen, "RCPT TO:<%s>\r\n", rcpts[i]);
		if (code == 250 || code == 251)
			ok++;
		else if (code < 0 || code < 500)
			any_temp = true;
	}
	if (!ok) {
		o = any_temp ? TEMPFAIL : PERMFAIL;
		goto out;
	}
	code = cmd(&c, why, wlen, "DATA\r\n");
	if (code != 354)
		goto out;
	if (send_body(&c, msg, len) != 0)
		goto out;
	/* LMTP answers once per accepted recipient; SMTP once */
	size_t good = 0, replies = lmtp ? ok : 1;
	for (size_t i = 0; i < replies; i++) {
		code = reply(&c, why, wlen);
		if (code == 250)
			good++;
		else if (code < 0)
			break;
	}
	o = good == replies ? DELIVERED : good ? DELIVERED : TEMPFAIL;
	cmd(&c, NULL, 0, "QUIT\r\n");
out:
	close(c.fd);
	return o;
}

/* ---- state ---- */

static bool protected_domain(const struct handoff_config *cfg, const char *addr)
{
	const char *at = strrchr(addr, '@');
	if (!at)
		return false;
	for (size_t i = 0; i < cfg->n_domains; i++)
		if (!strcasecmp(at + 1, cfg->domains[i]))
			return true;
	return false;
}

static char *read_spool(const struct handoff_config *cfg, const char *name, size_t *len_r)
{
	/* spool/new/NAME, or spool/cur/NAME:2,FLAGS once something marked it seen */
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/%s/new/%s", cfg->data_dir, MXB_SPOOL_DIR, name);
	int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s/cur/%s:2,", cfg->data_dir, MXB_SPOOL_DIR, name);
		fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	buf_free(&p);
	if (fd < 0)
		return NULL;
	struct stat st;
	char *m = NULL;
	if (fstat(fd, &st) == 0 && st.st_size <= MSG_MAX && (m = malloc((size_t)st.st_size + 1))) {
		ssize_t n = read(fd, m, (size_t)st.st_size);
		if (n != st.st_size) {
			free(m);
			m = NULL;
		} else {
			*len_r = (size_t)n;
		}
	}
	close(fd);
	return m;
}

static int exec_sql(sqlite3 *db, const char *sql)
{
	char *e = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &e) != SQLITE_OK) {
		logf_("handoff.db: %s", e ? e : "?");
		sqlite3_free(e);
		return -1;
	}
	return 0;
}

static int set_state(sqlite3 *db, int64_t id, const char *state, int attempts, int64_t next_us,
		     const char *err)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, "UPDATE handoff SET state = ?2, attempts = ?3, next_us = ?4,"
				    " last_error = ?5, updated_us = ?6 WHERE message_id = ?1",
				    -1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, id);
		sqlite3_bind_text(st, 2, state, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, attempts);
		sqlite3_bind_int64(st, 4, next_us);
		if (err)
			sqlite3_bind_text(st, 5, err, -1, SQLITE_TRANSIENT);
		else
			sqlite3_bind_null(st, 5);
		sqlite3_bind_int64(st, 6, mxb_now_us());
		rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_OK ? 0 : -1;
}

/* New messages of diverted port-25 sessions become pending rows (or skipped: no
 * protected recipient). */
static void collect(const struct handoff_config *cfg, sqlite3 *state, const char *db_path)
{
	sqlite3 *db = NULL;
	char *err = NULL;
	if (db_open_ro(db_path, &db, &err) != DB_OK) {
		free(err);
		return; /* not there yet, or being migrated: next pass */
	}
	sqlite3_stmt *q = NULL, *ins = NULL;
	int64_t last = 0;
	sqlite3_stmt *m = NULL;
	if (sqlite3_prepare_v2(state, "SELECT coalesce(max(message_id), 0) FROM handoff", -1, &m,
			       NULL) == SQLITE_OK && sqlite3_step(m) == SQLITE_ROW)
		last = sqlite3_column_int64(m, 0);
	sqlite3_finalize(m);
	if (sqlite3_prepare_v2(db, "SELECT m.id, m.spool, m.sender, m.recipients, m.queue_id"
			       " FROM messages m JOIN sessions s ON s.session = m.session"
			       " WHERE m.id > ?1 AND s.orig_dst_port = 25 ORDER BY m.id LIMIT 1000",
			       -1, &q, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(state, "INSERT OR IGNORE INTO handoff(message_id, spool, sender,"
			       " recipients, queue_id, state, attempts, next_us, updated_us)"
			       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, 0, 0, ?7)", -1, &ins, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int64(q, 1, last);
	exec_sql(state, "BEGIN IMMEDIATE");
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *rc = (const char *)sqlite3_column_text(q, 3);
		json_error_t je;
		json_t *arr = rc ? json_loads(rc, 0, &je) : NULL;
		json_t *keep = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(arr, i, v) {
			if (json_is_string(v) && protected_domain(cfg, json_string_value(v)))
				json_array_append(keep, v);
		}
		char *kept = json_dumps(keep, JSON_COMPACT);
		sqlite3_bind_int64(ins, 1, sqlite3_column_int64(q, 0));
		sqlite3_bind_text(ins, 2, (const char *)sqlite3_column_text(q, 1), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 3, (const char *)sqlite3_column_text(q, 2), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 4, kept ? kept : "[]", -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 5, (const char *)sqlite3_column_text(q, 4), -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(ins, 6, json_array_size(keep) ? "pending" : "skipped", -1,
				  SQLITE_STATIC);
		sqlite3_bind_int64(ins, 7, mxb_now_us());
		sqlite3_step(ins);
		sqlite3_reset(ins);
		if (json_array_size(keep))
			logf_("message %s (%s): %zu recipient(s) for the backend",
			      (const char *)sqlite3_column_text(q, 4),
			      (const char *)sqlite3_column_text(q, 1), json_array_size(keep));
		free(kept);
		json_decref(keep);
		json_decref(arr);
	}
	exec_sql(state, "COMMIT");
out:
	sqlite3_finalize(q);
	sqlite3_finalize(ins);
	sqlite3_close(db);
}

static void deliver_due(const struct handoff_config *cfg, sqlite3 *state)
{
	sqlite3_stmt *q = NULL;
	int64_t now = mxb_now_us();
	if (sqlite3_prepare_v2(state, "SELECT message_id, spool, sender, recipients, attempts,"
			       " updated_us, queue_id, state FROM handoff WHERE state IN"
			       " ('pending', 'sending') AND next_us <= ?1 ORDER BY message_id"
			       " LIMIT 100", -1, &q, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(q, 1, now);
	struct job {
		int64_t id;
		char *spool, *sender, *rcpts, *qid;
		int attempts;
		bool resend;
	} jobs[100];
	size_t nj = 0;
	while (nj < 100 && sqlite3_step(q) == SQLITE_ROW) {
		struct job *j = &jobs[nj++];
		j->id = sqlite3_column_int64(q, 0);
		j->spool = strdup((const char *)sqlite3_column_text(q, 1) ?: "");
		j->sender = strdup((const char *)sqlite3_column_text(q, 2) ?: "");
		j->rcpts = strdup((const char *)sqlite3_column_text(q, 3) ?: "[]");
		j->qid = strdup((const char *)sqlite3_column_text(q, 6) ?: "");
		j->attempts = sqlite3_column_int(q, 4);
		j->resend = !strcmp((const char *)sqlite3_column_text(q, 7) ?: "", "sending");
	}
	sqlite3_finalize(q);
	for (size_t k = 0; k < nj && !stop_flag; k++) {
		struct job *j = &jobs[k];
		if (j->resend)
			logf_("message %s: a delivery was under way when the worker stopped: sent "
			      "again (the backend may receive it twice)", j->qid);
		size_t len = 0;
		char *msg = read_spool(cfg, j->spool, &len);
		if (!msg) {
			set_state(state, j->id, "failed", j->attempts, 0, "spool file gone");
			logf_("message %s: spool file %s gone: not handed off", j->qid, j->spool);
			continue;
		}
		json_error_t je;
		json_t *arr = json_loads(j->rcpts, 0, &je);
		size_t n = json_array_size(arr);
		char **rc = calloc(n ? n : 1, sizeof(char *));
		for (size_t i = 0; i < n; i++)
			rc[i] = (char *)json_string_value(json_array_get(arr, i));
		/* sending is durable before the connection: a crash now means "resend" */
		set_state(state, j->id, "sending", j->attempts + 1, 0, NULL);
		char why[512] = "";
		enum outcome o = deliver(cfg, j->sender, rc, n, msg, len, why, sizeof(why));
		int64_t first = now; /* retry schedule from the attempts made */
		(void)first;
		if (o == DELIVERED) {
			set_state(state, j->id, "delivered", j->attempts + 1, 0, why);
			logf_("message %s: handed to the backend: %s", j->qid, why);
		} else if (o == PERMFAIL) {
			set_state(state, j->id, "failed", j->attempts + 1, 0, why);
			logf_("message %s: the backend refused it: %s", j->qid, why);
		} else {
			int64_t delay = RETRY_MIN_US;
			for (int i = 0; i < j->attempts && delay < RETRY_MAX_US; i++)
				delay *= 2;
			if (delay > RETRY_MAX_US)
				delay = RETRY_MAX_US;
			bool give_up = (int64_t)j->attempts * RETRY_MAX_US > GIVE_UP_US;
			set_state(state, j->id, give_up ? "failed" : "pending", j->attempts + 1,
				  give_up ? 0 : mxb_now_us() + delay, why);
			logf_("message %s: backend unavailable (%s): %s", j->qid, why,
			      give_up ? "given up" : "will retry");
		}
		free(rc);
		json_decref(arr);
		free(msg);
	}
	for (size_t k = 0; k < nj; k++) {
		free(jobs[k].spool);
		free(jobs[k].sender);
		free(jobs[k].rcpts);
		free(jobs[k].qid);
	}
}

int handoff_run(const struct handoff_config *cfg)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/handoff.db", cfg->data_dir);
	sqlite3 *state = NULL;
	if (sqlite3_open_v2(p.data, &state, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		logf_("cannot open %s: %s", p.data, state ? sqlite3_errmsg(state) : "?");
		sqlite3_close(state);
		buf_free(&p);
		return 1;
	}
	sqlite3_busy_timeout(state, 5000);
	if (exec_sql(state, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
			    "CREATE TABLE IF NOT EXISTS handoff (message_id INTEGER PRIMARY KEY,"
			    " spool TEXT, sender TEXT, recipients TEXT, queue_id TEXT, state TEXT,"
			    " attempts INTEGER, next_us INTEGER, last_error TEXT, updated_us INTEGER)")) {
		sqlite3_close(state);
		buf_free(&p);
		return 1;
	}
	buf_reset(&p);
	buf_printf(&p, "%s/%s", cfg->data_dir, MXB_DB_FILE);
	logf_("started: backend %s%s%s%s%u", cfg->backend.lmtp ? "lmtp:" : "smtp:",
	      cfg->backend.unix_socket ? cfg->backend.path : cfg->backend.host,
	      cfg->backend.unix_socket ? "" : ":", "", cfg->backend.unix_socket ? 0 : cfg->backend.port);
	while (!stop_flag) {
		collect(cfg, state, p.data);
		deliver_due(cfg, state);
		if (cfg->once)
			break;
		struct timespec ts = { cfg->poll_ms / 1000, (long)(cfg->poll_ms % 1000) * 1000000L };
		nanosleep(&ts, NULL);
	}
	sqlite3_close(state);
	buf_free(&p);
	return 0;
}
