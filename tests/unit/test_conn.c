/*
 * test_conn: the connection layer (src/core/conn.c, tls.c, limits.c) over a socketpair,
 * with a scripted fake engine standing in for src/proto/smtp.c, so that what is tested
 * is the host: one write per reply group, STARTTLS injection discard, TLS handshakes
 * (STARTTLS and implicit), commits through the real spool, waits, timeouts, EOF and
 * admission limits, refusal texts per protocol, login-dependent idle timeouts.  The
 * fake is a struct proto_engine of its own (fake_engine), so no real engine is linked
 * in.
 *
 * Fake engine script (one command per line): EHLO (a three-line reply sent with three
 * send calls), STARTTLS, WAIT (300 ms), MSG (write and commit a message), OPEN (begin a
 * message and leave it open, as a BDAT without LAST), BYEBIG (128 KiB of answer, then
 * close), QUIT, LOGIN (the session names a user from then on); any other line gets
 * "250 ok".
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/config.h"
#include "core/conn.h"
#include "core/limits.h"
#include "core/listener.h"
#include "core/tls.h"
#include "proto/proto.h"
#include "proto/smtp.h"
#include "store/event.h"
#include "store/spool.h"

/* ---- fake engine ---- */

struct smtp_session {
	const struct proto_host_ops *ops;
	void *ctx;
	unsigned commands;
	unsigned messages;
	char tls_version[32];
	bool closed;
	bool logged_in; /* after a LOGIN line */
};

static char last_tls_version[32];

static void *fake_new(const void *cfg, const struct proto_peer *peer, bool tls_active,
		      const struct proto_host_ops *ops, void *ctx)
{
	(void)cfg;
	(void)peer;
	(void)tls_active;
	struct smtp_session *s = calloc(1, sizeof(*s));
	s->ops = ops;
	s->ctx = ctx;
	return s;
}

static void fake_free(void *s)
{
	free(s);
}

static void say(struct smtp_session *s, const char *t)
{
	s->ops->send(s->ctx, t, strlen(t));
}

static void fake_start(void *sv)
{
	struct smtp_session *s = sv;
	say(s, "220 fake ESMTP\r\n");
}

static size_t fake_feed(void *sv, const char *data, size_t len)
{
	struct smtp_session *s = sv;
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(data + pos, '\n', len - pos);
		if (!nl)
			break;
		size_t ll = (size_t)(nl - (data + pos)) + 1;
		char line[64];
		size_t cl = ll < sizeof(line) ? ll : sizeof(line) - 1;
		memcpy(line, data + pos, cl);
		line[cl] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		pos += ll;
		s->commands++;
		if (!strcmp(line, "EHLO")) {
			say(s, "250-fake\r\n");
			say(s, "250-PIPELINING\r\n");
			say(s, "250 STARTTLS\r\n");
		} else if (!strcmp(line, "STARTTLS")) {
			say(s, "220 2.0.0 Ready to start TLS\r\n");
			s->ops->starttls(s->ctx);
			return pos;
		} else if (!strcmp(line, "WAIT")) {
			s->ops->wait(s->ctx, 300);
			return pos;
		} else if (!strcmp(line, "MSG")) {
			char qid[24];
			if (s->ops->msg_open(s->ctx, qid, sizeof(qid)) != 0) {
				say(s, "452 4.3.1 Insufficient system storage\r\n");
				continue;
			}
			s->ops->msg_write(s->ctx, "Subject: t\r\n\r\nhello\r\n", 22);
			s->ops->msg_commit(s->ctx);
			return pos;
		} else if (!strcmp(line, "BIG")) {
			/* 3 MiB in 64 KiB pieces: an IMAP FETCH of a big APPENDed message */
			static char piece[64 * 1024];
			memset(piece, 'b', sizeof(piece));
			for (int i = 0; i < 48; i++)
				s->ops->send(s->ctx, piece, sizeof(piece));
			say(s, "\r\nBIG done\r\n");
		} else if (!strcmp(line, "OPEN")) {
			/* a message begun and left open (BDAT without LAST) */
			char qid[24];
			if (s->ops->msg_open(s->ctx, qid, sizeof(qid)) != 0) {
				say(s, "452 4.3.1 Insufficient system storage\r\n");
				continue;
			}
			s->ops->msg_write(s->ctx, "Subject: open\r\n\r\nhalf", 21);
			say(s, "250 2.0.0 Ok: 21 octets received\r\n");
		} else if (!strcmp(line, "BYEBIG")) {
			/* a big last answer, then close: the host lingers to flush it */
			static char piece[64 * 1024];
			memset(piece, 'b', sizeof(piece));
			for (int i = 0; i < 2; i++)
				s->ops->send(s->ctx, piece, sizeof(piece));
			say(s, "\r\n221 2.0.0 Bye\r\n");
			s->closed = true;
			s->ops->close(s->ctx, "quit");
			return pos;
		} else if (!strcmp(line, "LOGIN")) {
			s->logged_in = true;
			say(s, "250 logged in\r\n");
		} else if (!strcmp(line, "QUIT")) {
			say(s, "221 2.0.0 Bye\r\n");
			s->closed = true;
			s->ops->close(s->ctx, "quit");
			return pos;
		} else {
			say(s, "250 ok\r\n");
		}
	}
	return pos;
}

static void fake_resume(void *sv)
{
	struct smtp_session *s = sv;
	say(s, "250 resumed\r\n");
}

static void fake_committed(void *sv, const struct proto_commit_result *r)
{
	struct smtp_session *s = sv;
	char t[128];
	if (r->ok) {
		s->messages++;
		snprintf(t, sizeof(t), "250 2.0.0 Ok: queued as %s\r\n", r->queue_id);
	} else {
		snprintf(t, sizeof(t), "451 4.3.0 Error: queue file write error\r\n");
	}
	say(s, t);
}

static void fake_tls_started(void *sv, const char *version, const char *cipher, int bits)
{
	struct smtp_session *s = sv;
	(void)cipher;
	(void)bits;
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", version);
	snprintf(last_tls_version, sizeof(last_tls_version), "%s", version);
}

static void fake_hangup(void *sv, const char *reason)
{
	struct smtp_session *s = sv;
	if (!strcmp(reason, "timeout"))
		say(s, "421 4.4.2 fake Error: timeout exceeded\r\n");
}

static const char *fake_state_name(const void *s)
{
	(void)s;
	return "fake";
}

static void fake_counters(const void *sv, struct proto_counters *c_r)
{
	const struct smtp_session *s = sv;
	c_r->commands = s->commands;
	c_r->errors = 0;
	c_r->messages = s->messages;
}

static const char *fake_auth_user(const void *sv)
{
	const struct smtp_session *s = sv;
	return s->logged_in ? "user" : NULL;
}

static const struct proto_engine fake_engine = {
	.name = "fake",
	.create = fake_new,
	.start = fake_start,
	.feed = fake_feed,
	.resume = fake_resume,
	.committed = fake_committed,
	.tls_started = fake_tls_started,
	.hangup = fake_hangup,
	.state_name = fake_state_name,
	.counters = fake_counters,
	.auth_user = fake_auth_user,
	.destroy = fake_free,
};

/* ---- harness ---- */

#define MAX_EVENTS 64

struct fixture {
	struct event_base *base;
	struct mxb_config cfg;
	struct conn_server srv;
	struct smtp_config smtp_cfg;
	SSL_CTX *ssl_ctx;
	struct spool *spool;
	char dir[64];
	char events[MAX_EVENTS][32];
	char details[MAX_EVENTS][256];
	char protos[MAX_EVENTS][16];
	size_t n_events;
};

static void hook(void *arg, struct mxb_event *ev)
{
	struct fixture *f = arg;
	if (f->n_events < MAX_EVENTS) {
		snprintf(f->events[f->n_events], sizeof(f->events[0]), "%s", ev->name);
		snprintf(f->details[f->n_events], sizeof(f->details[0]), "%s",
			 ev->fields.data ? ev->fields.data : "");
		snprintf(f->protos[f->n_events], sizeof(f->protos[0]), "%s", ev->proto);
		/* every event carries the common fields */
		assert_int_equal(strlen(ev->session), 16);
		assert_string_equal(ev->src_ip, "192.0.2.1");
		f->n_events++;
	}
	mxb_event_free(&ev);
}

/* index of the first event named name at or after from, or -1 */
static int find_event(struct fixture *f, const char *name, const char *field_substr)
{
	for (size_t i = 0; i < f->n_events; i++)
		if (!strcmp(f->events[i], name) &&
		    (!field_substr || strstr(f->details[i], field_substr)))
			return (int)i;
	return -1;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	evthread_use_pthreads();
	f->base = event_base_new();
	config_defaults(&f->cfg);
	free(f->cfg.hostname);
	f->cfg.hostname = strdup("mx.test.example");
	snprintf(f->dir, sizeof(f->dir), "/tmp/mxbait-test-conn-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	char *err = NULL;
	f->ssl_ctx = tls_server_ctx_new(NULL, NULL, f->dir, f->cfg.hostname, &err);
	if (!f->ssl_ctx)
		fprintf(stderr, "%s\n", err);
	assert_non_null(f->ssl_ctx);
	char sp[128];
	snprintf(sp, sizeof(sp), "%s/spool", f->dir);
	f->spool = spool_open(sp, 0, f->cfg.hostname, f->base, &err);
	assert_non_null(f->spool);
	f->srv.base = f->base;
	f->srv.cfg = &f->cfg;
	f->srv.ssl_ctx = f->ssl_ctx;
	f->srv.spool = f->spool;
	f->srv.emit_hook = hook;
	f->srv.emit_arg = f;
	/* the fake engine through the real adapter, as serve wires SMTP */
	for (int r = MXB_ROLE_SMTP; r <= MXB_ROLE_SMTPS; r++) {
		f->srv.engine[r] = &fake_engine;
		f->srv.engine_cfg[r] = &f->smtp_cfg;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	conn_server_teardown(&f->srv, &f->spool);
	limits_free(&f->srv.limits);
	SSL_CTX_free(f->ssl_ctx);
	config_free(&f->cfg);
	event_base_free(f->base);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void pump(struct fixture *f, unsigned ms)
{
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	event_base_loopexit(f->base, &tv);
	event_base_dispatch(f->base);
}

/* Run the loop until fd has at least want bytes to read or max_ms passed (a loaded
 * machine may deschedule the test for longer than any fixed pump). */
static void pump_until_readable(struct fixture *f, int fd, size_t want, unsigned max_ms)
{
	char peek[4096];
	for (unsigned waited = 0; waited < max_ms; waited += 10) {
		ssize_t n = recv(fd, peek, sizeof(peek), MSG_PEEK | MSG_DONTWAIT);
		if (n >= (ssize_t)want)
			return;
		pump(f, 10);
	}
}

/* One recv (what a client that reads a reply with a single recv would get). */
static ssize_t recv1(int fd, char *buf, size_t len)
{
	ssize_t n = recv(fd, buf, len - 1, MSG_DONTWAIT);
	buf[n > 0 ? n : 0] = '\0';
	return n;
}

static int connect_pair(struct fixture *f, enum mxb_role role)
{
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	conn_accept(&f->srv, role, sv[0], "192.0.2.1", 40000, "127.0.0.1", 25);
	return sv[1];
}

static void sendstr(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), 0), (ssize_t)strlen(s));
}

static void test_banner_and_one_write_groups(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "220 fake ESMTP\r\n");
	sendstr(fd, "EHLO\r\n");
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	sendstr(fd, "NOOP\r\nNOOP\r\nNOOP\r\nQUIT\r\nNOOP\r\n");
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "250 ok\r\n250 ok\r\n250 ok\r\n221 2.0.0 Bye\r\n");
	pump(f, 20);
	assert_int_equal(recv1(fd, buf, sizeof(buf)), 0); /* closed after the flush */
	assert_int_equal(f->srv.n_conns, 0);
	assert_string_equal(f->events[0], "connect");
	int d = find_event(f, "disconnect", "\"reason\":\"quit\"");
	assert_true(d > 0);
	assert_non_null(strstr(f->details[d], "\"state\":\"fake\""));
	assert_non_null(strstr(f->details[d], "\"commands\":5"));
	close(fd);
}

static void test_partial_lines_and_eof(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "NO");
	pump(f, 20);
	assert_true(recv1(fd, buf, sizeof(buf)) < 0); /* nothing yet */
	sendstr(fd, "OP\r\nNOOP\r\n");
	shutdown(fd, SHUT_WR); /* half-close: still reads the answers */
	pump(f, 50);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "250 ok\r\n250 ok\r\n");
	assert_true(find_event(f, "disconnect", "\"reason\":\"client_closed\"") >= 0);
	assert_int_equal(f->srv.n_conns, 0);
	close(fd);
}

static void test_wait_resumes(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "WAIT\r\nNOOP\r\n");
	pump(f, 20);
	assert_true(recv1(fd, buf, sizeof(buf)) < 0); /* suspended (300 ms) */
	pump_until_readable(f, fd, strlen("250 resumed\r\n250 ok\r\n"), 5000);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "250 resumed\r\n250 ok\r\n");
	close(fd);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
}

static void test_commit_through_spool(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "MSG\r\nNOOP\r\n");
	for (int i = 0; i < 50 && !strstr(buf, "250 ok"); i++) {
		pump(f, 20);
		char more[1024];
		if (recv1(fd, more, sizeof(more)) > 0)
			strncat(buf, more, sizeof(buf) - strlen(buf) - 1);
	}
	assert_non_null(strstr(buf, "250 2.0.0 Ok: queued as "));
	assert_non_null(strstr(buf, "250 ok\r\n"));
	/* the client leaves while a commit is in flight: the message is still recorded */
	sendstr(fd, "MSG\r\n");
	close(fd);
	for (int i = 0; i < 50 && f->srv.n_conns; i++)
		pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
	int d = find_event(f, "disconnect", "\"messages\":2");
	assert_true(d >= 0);
}

/* Drive a client-side TLS handshake over the non-blocking socket. */
static SSL *client_tls(struct fixture *f, int fd, const char *sni)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl = SSL_new(cctx);
	SSL_CTX_free(cctx); /* ssl holds a reference */
	SSL_set_fd(ssl, fd);
	if (sni)
		SSL_set_tlsext_host_name(ssl, sni);
	for (int i = 0; i < 100; i++) {
		int r = SSL_connect(ssl);
		if (r == 1)
			return ssl;
		int e = SSL_get_error(ssl, r);
		if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
			break;
		pump(f, 10);
	}
	SSL_free(ssl);
	return NULL;
}

static void tls_read(struct fixture *f, SSL *ssl, char *buf, size_t len)
{
	buf[0] = '\0';
	for (int i = 0; i < 50; i++) {
		pump(f, 10);
		int n = SSL_read(ssl, buf, (int)len - 1);
		if (n > 0) {
			buf[n] = '\0';
			return;
		}
	}
}

static void test_starttls_injection_and_handshake(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "STARTTLS\r\nMAIL FROM:<injected@evil>\r\n");
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "220 2.0.0 Ready to start TLS\r\n");
	int o = find_event(f, "offence", "starttls_injection");
	assert_true(o >= 0);
	assert_non_null(strstr(f->details[o], "MAIL FROM:<injected@evil>"));
	SSL *ssl = client_tls(f, fd, "probe.example");
	assert_non_null(ssl);
	pump(f, 20); /* TLS 1.3: the server finishes after the client */
	int t = find_event(f, "tls", "\"mode\":\"starttls\"");
	assert_true(t >= 0);
	assert_non_null(strstr(f->details[t], "\"sni\":\"probe.example\""));
	assert_non_null(strstr(f->details[t], "TLSv1.3"));
	assert_string_equal(last_tls_version, "TLSv1.3");
	/* the injected command was not executed: the next reply answers our NOOP only */
	SSL_write(ssl, "EHLO\r\n", 6);
	tls_read(f, ssl, buf, sizeof(buf));
	assert_string_equal(buf, "250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	SSL_write(ssl, "QUIT\r\n", 6);
	tls_read(f, ssl, buf, sizeof(buf));
	assert_string_equal(buf, "221 2.0.0 Bye\r\n");
	SSL_free(ssl);
	close(fd);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
}

static void test_implicit_tls(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTPS);
	SSL *ssl = client_tls(f, fd, NULL);
	assert_non_null(ssl);
	char buf[4096];
	tls_read(f, ssl, buf, sizeof(buf));
	assert_string_equal(buf, "220 fake ESMTP\r\n");
	int t = find_event(f, "tls", "\"mode\":\"implicit\"");
	assert_true(t >= 0);
	assert_non_null(strstr(f->details[t], "\"sni\":null"));
	assert_non_null(strstr(f->details[t], "TLS_AES_256_GCM_SHA384"));
	SSL_free(ssl);
	close(fd);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
	assert_true(find_event(f, "disconnect", "client_closed") >= 0);
}

/* Replies written straight to a TLS socket that fills up: the client sends 4,000
 * pipelined commands and reads nothing until all were sent, with a 4 KB send buffer
 * on the server side, so direct SSL_write()s meet a full socket (WANT_WRITE) and the
 * bufferevent has to finish the half-sent record from its own copy.  Every reply
 * must arrive once, in order, in records the client can decrypt. */
static void test_tls_direct_write_blocked(void **state)
{
	struct fixture *f = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	int small = 4096;
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	conn_accept(&f->srv, MXB_ROLE_SMTPS, sv[0], "192.0.2.1", 40000, "127.0.0.1", 465);
	int fd = sv[1];
	SSL *ssl = client_tls(f, fd, NULL);
	assert_non_null(ssl);
	char buf[65536];
	tls_read(f, ssl, buf, sizeof(buf));
	assert_string_equal(buf, "220 fake ESMTP\r\n");
	enum { N = 4000 };
	static char cmds[N * 7];
	for (int i = 0; i < N; i++)
		memcpy(cmds + i * 7, "NUMBR\r\n", 7);
	size_t sent = 0, got = 0, want = (size_t)N * strlen("250 ok\r\n");
	static char replies[N * 8 + 1];
	for (int round = 0; round < 3000 && got < want; round++) {
		if (sent < sizeof(cmds)) {
			size_t piece = sizeof(cmds) - sent < 70 * 7 ? sizeof(cmds) - sent : 70 * 7;
			int n = SSL_write(ssl, cmds + sent, (int)piece); /* small records */
			if (n > 0)
				sent += (size_t)n;
			else
				assert_int_equal(SSL_get_error(ssl, n), SSL_ERROR_WANT_WRITE);
		} else {
			int n = SSL_read(ssl, replies + got, (int)(sizeof(replies) - 1 - got));
			if (n > 0)
				got += (size_t)n;
			else
				assert_int_equal(SSL_get_error(ssl, n), SSL_ERROR_WANT_READ);
		}
		pump(f, 1);
	}
	assert_int_equal(sent, sizeof(cmds));
	assert_int_equal(got, want);
	for (size_t i = 0; i < N; i++)
		assert_memory_equal(replies + i * 8, "250 ok\r\n", 8);
	SSL_free(ssl);
	close(fd);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
}

static void test_plaintext_on_smtps(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTPS);
	sendstr(fd, "EHLO client.example.net\r\n");
	pump(f, 50);
	int e = find_event(f, "tls_error", "\"mode\":\"implicit\"");
	assert_true(e >= 0);
	assert_true(find_event(f, "disconnect", "\"reason\":\"tls_error\"") >= 0);
	assert_int_equal(f->srv.n_conns, 0);
	/* no plaintext answer; the server closed */
	char buf[512];
	ssize_t n;
	while ((n = recv1(fd, buf, sizeof(buf))) > 0)
		assert_null(strstr(buf, "220"));
	assert_int_equal(n, 0);
	close(fd);
}

static void test_idle_timeout(void **state)
{
	struct fixture *f = *state;
	f->cfg.idle_timeout_ms = 100;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	pump(f, 250);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "421 4.4.2 fake Error: timeout exceeded\r\n");
	assert_true(find_event(f, "disconnect", "\"reason\":\"idle_timeout\"") >= 0);
	assert_int_equal(f->srv.n_conns, 0);
	close(fd);
}

/* IMAP and POP3 idle timeouts follow the login: login_timeout before, the protocol's
 * own after (Dovecot's login process hands over to imap/pop3). */
static void test_idle_timeout_after_login(void **state)
{
	struct fixture *f = *state;
	f->srv.engine[MXB_ROLE_IMAP] = &fake_engine;
	f->srv.engine_cfg[MXB_ROLE_IMAP] = &f->smtp_cfg;
	f->cfg.idle_timeout_ms = 10000; /* SMTP's: not used for IMAP */
	f->cfg.login_timeout_ms = 150;
	f->cfg.imap_idle_timeout_ms = 700;
	int fd1 = connect_pair(f, MXB_ROLE_IMAP);
	int fd2 = connect_pair(f, MXB_ROLE_IMAP);
	char buf[4096];
	pump(f, 20);
	recv1(fd1, buf, sizeof(buf));
	recv1(fd2, buf, sizeof(buf));
	sendstr(fd2, "LOGIN\r\n");
	pump(f, 400);
	assert_int_equal(f->srv.n_conns, 1); /* fd1 timed out before login */
	recv1(fd2, buf, sizeof(buf));
	assert_string_equal(buf, "250 logged in\r\n");
	pump(f, 700);
	assert_int_equal(f->srv.n_conns, 0);
	close(fd1);
	close(fd2);
}

/* One engine call may answer with megabytes (IMAP FETCH): the output leaves in order
 * while the call runs and a reading client gets all of it; on SMTP, whose replies are
 * small, that much unread output means a client that does not read: dropped. */
static void test_big_output(void **state)
{
	struct fixture *f = *state;
	f->srv.engine[MXB_ROLE_IMAP] = &fake_engine;
	f->srv.engine_cfg[MXB_ROLE_IMAP] = &f->smtp_cfg;
	int fd = connect_pair(f, MXB_ROLE_IMAP);
	int fd2 = connect_pair(f, MXB_ROLE_SMTP);
	char buf[65536];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	recv1(fd2, buf, sizeof(buf));
	sendstr(fd, "BIG\r\n");
	sendstr(fd2, "BIG\r\n");
	size_t got = 0;
	bool done = false;
	for (int i = 0; i < 2000 && !done; i++) {
		pump(f, 5);
		ssize_t n;
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			for (ssize_t k = 0; k < n; k++)
				if (buf[k] == 'b')
					got++;
			if (memmem(buf, (size_t)n, "BIG done", 8))
				done = true;
		}
	}
	assert_true(done);
	assert_int_equal(got, 48 * 64 * 1024);
	assert_true(find_event(f, "disconnect", "\"reason\":\"error\"") >= 0); /* the SMTP one */
	assert_int_equal(f->srv.n_conns, 1);
	close(fd);
	close(fd2);
}

static void test_limits_per_ip(void **state)
{
	struct fixture *f = *state;
	f->srv.limits = limits_new(100, 1, 0);
	int fd1 = connect_pair(f, MXB_ROLE_SMTP);
	int fd2 = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd2, buf, sizeof(buf));
	assert_string_equal(buf,
			    "421 4.7.0 mx.test.example Error: too many connections from 192.0.2.1\r\n");
	assert_int_equal(recv1(fd2, buf, sizeof(buf)), 0);
	assert_true(find_event(f, "disconnect", "\"reason\":\"limit_per_ip\"") >= 0);
	assert_int_equal(f->srv.n_conns, 1);
	close(fd1);
	close(fd2);
	pump(f, 20);
	assert_int_equal(limits_active(f->srv.limits), 0);
}

/* Refusals speak the protocol of the port: Dovecot's "Connection queue full" on IMAP and
 * POP3, nothing on implicit TLS; the per-prefix cap counts across roles; a role with no
 * engine is refused; events carry the role name as proto. */
static void test_refusal_per_protocol(void **state)
{
	struct fixture *f = *state;
	for (int r = MXB_ROLE_IMAP; r <= MXB_ROLE_POP3; r++) {
		f->srv.engine[r] = &fake_engine; /* the fake speaks for every role */
		f->srv.engine_cfg[r] = &f->smtp_cfg;
	}
	f->srv.limits = limits_new(100, 0, 0);
	limits_set_per_prefix(f->srv.limits, 1);
	int fd1 = connect_pair(f, MXB_ROLE_IMAP); /* admitted: holds the /24's one slot */
	int fd2 = connect_pair(f, MXB_ROLE_IMAP);
	int fd3 = connect_pair(f, MXB_ROLE_POP3);
	int fd4 = connect_pair(f, MXB_ROLE_IMAPS);
	char buf[4096];
	pump(f, 20);
	recv1(fd1, buf, sizeof(buf));
	assert_string_equal(buf, "220 fake ESMTP\r\n");
	recv1(fd2, buf, sizeof(buf));
	assert_string_equal(buf, "* BYE Connection queue full\r\n");
	recv1(fd3, buf, sizeof(buf));
	assert_string_equal(buf, "-ERR Connection queue full\r\n");
	assert_true(recv1(fd4, buf, sizeof(buf)) <= 0); /* implicit TLS: just closed */
	int i = find_event(f, "disconnect", "\"reason\":\"limit_per_prefix\"");
	assert_true(i >= 0);
	assert_string_equal(f->protos[i], "imap");
	assert_string_equal(f->protos[0], "imap");
	assert_int_equal(f->srv.n_conns, 1);
	close(fd1);
	close(fd2);
	close(fd3);
	close(fd4);
	pump(f, 20);
	assert_int_equal(limits_active(f->srv.limits), 0);
	/* pop3s has no engine here: refused with reason error */
	f->n_events = 0;
	limits_free(&f->srv.limits);
	int fd5 = connect_pair(f, MXB_ROLE_POP3S);
	pump(f, 20);
	assert_true(recv1(fd5, buf, sizeof(buf)) <= 0);
	i = find_event(f, "disconnect", "\"reason\":\"error\"");
	assert_true(i >= 0);
	assert_string_equal(f->protos[i], "pop3s");
	assert_int_equal(f->srv.n_conns, 0);
	close(fd5);
}

static void test_handshake_timeout(void **state)
{
	struct fixture *f = *state;
	f->cfg.tls_handshake_timeout_ms = 100;
	int fd = connect_pair(f, MXB_ROLE_SMTPS);
	pump(f, 250);
	assert_true(find_event(f, "tls_error", "\"reason\":\"timeout\"") >= 0);
	assert_true(find_event(f, "disconnect", "\"reason\":\"tls_error\"") >= 0);
	assert_int_equal(f->srv.n_conns, 0);
	close(fd);
}

/* A client that talks before the banner (bytes already queued at accept time). */
static void test_pregreet(void **state)
{
	struct fixture *f = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	sendstr(sv[1], "EHLO\r\n");
	conn_accept(&f->srv, MXB_ROLE_SMTP, sv[0], "192.0.2.1", 40000, "127.0.0.1", 25);
	pump(f, 20);
	int o = find_event(f, "offence", "\"kind\":\"pregreet\"");
	assert_true(o >= 0);
	assert_non_null(strstr(f->details[o], "EHLO"));
	/* and it is still answered, banner first */
	char buf[4096];
	recv1(sv[1], buf, sizeof(buf));
	assert_string_equal(buf, "220 fake ESMTP\r\n250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	close(sv[1]);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
}

/* A client that pipelines without ever reading: output stays bounded. */
static void test_output_bounded(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	static char block[65536];
	for (size_t i = 0; i + 6 <= sizeof(block); i += 6)
		memcpy(block + i, "EHLO\r\n", 6);
	size_t sent = 0;
	for (int i = 0; i < 400 && f->srv.n_conns; i++) {
		ssize_t n = send(fd, block, sizeof(block) - sizeof(block) % 6, MSG_DONTWAIT);
		if (n > 0)
			sent += (size_t)n;
		pump(f, 5);
	}
	/* either still alive with reading paused, or dropped: never unbounded */
	if (f->srv.n_conns == 0)
		assert_true(find_event(f, "disconnect", "\"reason\":\"error\"") >= 0);
	/* 400 rounds could push 26 MB; a server that keeps reading without being read
	 * would take it all.  Paused, only socket buffers and INPUT_MAX fill up. */
	fprintf(stderr, "client managed to send %zu bytes; conns %zu\n", sent, f->srv.n_conns);
	assert_true(sent < 4u * 1024 * 1024);
	close(fd);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
}

static void test_shutdown(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	pump(f, 20);
	conn_shutdown_all(&f->srv);
	pump(f, 20);
	assert_int_equal(f->srv.n_conns, 0);
	assert_true(find_event(f, "disconnect", "\"reason\":\"shutdown\"") >= 0);
	close(fd);
}

static X509 *read_cert(const char *path)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	X509 *x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	assert_non_null(x);
	return x;
}

/* The self-signed pair: made once, key private, reused, made anew for a new name. */
static void test_self_signed_cert(void **state)
{
	struct fixture *f = *state;
	char cert[128], key[128];
	snprintf(cert, sizeof(cert), "%s/tls/cert.pem", f->dir);
	snprintf(key, sizeof(key), "%s/tls/key.pem", f->dir);
	struct stat st;
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	X509 *a = read_cert(cert);
	assert_int_equal(X509_check_host(a, "mx.test.example", 0, 0, NULL), 1);
	assert_int_equal(X509_get_version(a), 2); /* v3 */
	/* shaped like Debian's make-ssl-cert snakeoil: 3650 days, a 20-byte serial (19
	 * when the random top byte is 0), RSA 2048, and its three extensions in order */
	int days = -1, secs = -1;
	assert_int_equal(ASN1_TIME_diff(&days, &secs, X509_get0_notBefore(a), X509_get0_notAfter(a)), 1);
	assert_int_equal(days, 3650);
	assert_int_equal(secs, 0);
	const ASN1_INTEGER *sn = X509_get0_serialNumber(a);
	assert_true(ASN1_STRING_length(sn) >= 19 && ASN1_STRING_length(sn) <= 20);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(a)), 2048);
	assert_int_equal(X509_get_ext_count(a), 3);
	assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(a, 0))), NID_basic_constraints);
	assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(a, 1))), NID_subject_alt_name);
	assert_int_equal(OBJ_obj2nid(X509_EXTENSION_get_object(X509_get_ext(a, 2))), NID_subject_key_identifier);
	char *err = NULL;
	assert_int_equal(tls_ensure_self_signed(cert, key, "mx.test.example", &err), 0);
	X509 *b = read_cert(cert);
	assert_int_equal(X509_cmp(a, b), 0); /* reused */
	assert_int_equal(tls_ensure_self_signed(cert, key, "other.example", &err), 0);
	X509 *c = read_cert(cert);
	assert_int_equal(X509_check_host(c, "other.example", 0, 0, NULL), 1);
	assert_int_not_equal(X509_cmp(a, c), 0);
	X509_free(a);
	X509_free(b);
	X509_free(c);
	/* the new pair loads and matches */
	SSL_CTX *ctx = tls_server_ctx_new(cert, key, f->dir, "other.example", &err);
	assert_non_null(ctx);
	SSL_CTX_free(ctx);
	/* a key that is not there is a clear error */
	ctx = tls_server_ctx_new(cert, "/nonexistent/key.pem", f->dir, "x", &err);
	assert_null(ctx);
	assert_non_null(strstr(err, "cannot load key /nonexistent/key.pem"));
	free(err);
}

/* A handshake in memory with a client limited to sigalgs (NULL: OpenSSL's defaults);
 * returns the key type of the certificate the server sent. */
static int handshake_key_type(SSL_CTX *server_ctx, const char *sigalgs, int max_version)
{
	SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
	assert_non_null(cctx);
	if (sigalgs)
		assert_int_equal(SSL_CTX_set1_sigalgs_list(cctx, sigalgs), 1);
	SSL_CTX_set_max_proto_version(cctx, max_version);
	SSL *cl = SSL_new(cctx), *sv = SSL_new(server_ctx);
	BIO *bc = NULL, *bs = NULL;
	assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
	SSL_set_bio(cl, bc, bc);
	SSL_set_bio(sv, bs, bs);
	SSL_set_connect_state(cl);
	SSL_set_accept_state(sv);
	int done_c = 0, done_s = 0;
	for (int i = 0; i < 20 && !(done_c && done_s); i++) {
		if (!done_c)
			done_c = SSL_do_handshake(cl) == 1;
		if (!done_s)
			done_s = SSL_do_handshake(sv) == 1;
	}
	assert_true(done_c && done_s);
	X509 *peer = SSL_get1_peer_certificate(cl);
	assert_non_null(peer);
	int type = EVP_PKEY_get_base_id(X509_get0_pubkey(peer));
	X509_free(peer);
	SSL_free(cl);
	SSL_free(sv);
	SSL_CTX_free(cctx);
	return type;
}

/* tls_ecdsa: the ECDSA pair sits beside the RSA one in every role's context; clients
 * offering ECDSA (OpenSSL's defaults, TLS 1.3 and 1.2) get it, RSA-only clients get
 * RSA; a non-ECDSA file is refused rather than replacing the RSA certificate. */
static void test_ecdsa_alongside_rsa(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	SSL_CTX *base = tls_server_ctx_new(NULL, NULL, f->dir, "mx.test.example", &err);
	assert_non_null(base);
	assert_int_equal(tls_add_ecdsa(base, NULL, NULL, f->dir, "mx.test.example", &err), 0);
	char ecc[512], rsac[512], rsak[512];
	snprintf(ecc, sizeof(ecc), "%s/tls/eccert.pem", f->dir);
	snprintf(rsac, sizeof(rsac), "%s/tls/cert.pem", f->dir);
	snprintf(rsak, sizeof(rsak), "%s/tls/key.pem", f->dir);
	X509 *ec = read_cert(ecc);
	assert_int_equal(EVP_PKEY_get_base_id(X509_get0_pubkey(ec)), EVP_PKEY_EC);
	assert_int_equal(EVP_PKEY_get_bits(X509_get0_pubkey(ec)), 256);
	assert_int_equal(X509_check_host(ec, "mx.test.example", 0, 0, NULL), 1);
	assert_int_equal(X509_get_ext_count(ec), 3);
	X509_free(ec);
	enum tls_profile profiles[] = { TLS_PROFILE_STRICT, TLS_PROFILE_POSTFIX,
					TLS_PROFILE_DOVECOT };
	for (size_t i = 0; i < 3; i++) {
		SSL_CTX *ctx = tls_ctx_for_profile(base, profiles[i], &err);
		assert_non_null(ctx);
		assert_int_equal(handshake_key_type(ctx, NULL, TLS1_3_VERSION), EVP_PKEY_EC);
		assert_int_equal(handshake_key_type(ctx, NULL, TLS1_2_VERSION), EVP_PKEY_EC);
		assert_int_equal(handshake_key_type(ctx, "rsa_pss_rsae_sha256:RSA+SHA256",
						    TLS1_3_VERSION), EVP_PKEY_RSA);
		SSL_CTX_free(ctx);
	}
	/* without tls_ecdsa every client gets RSA, as from stock Postfix and Dovecot */
	SSL_CTX *rsa_only = tls_server_ctx_new(NULL, NULL, f->dir, "mx.test.example", &err);
	assert_non_null(rsa_only);
	assert_int_equal(handshake_key_type(rsa_only, NULL, TLS1_3_VERSION), EVP_PKEY_RSA);
	/* an RSA pair given as the ECDSA one is an error, not a silent replacement */
	assert_int_equal(tls_add_ecdsa(rsa_only, rsac, rsak, f->dir, "x", &err), -1);
	assert_non_null(strstr(err, "is not an ECDSA certificate"));
	free(err);
	assert_int_equal(handshake_key_type(rsa_only, NULL, TLS1_3_VERSION), EVP_PKEY_RSA);
	SSL_CTX_free(rsa_only);
	SSL_CTX_free(base);
}

static void accept_nothing(void *arg, enum mxb_role role, evutil_socket_t fd,
			   const char *peer_ip, unsigned peer_port, const char *local_ip,
			   unsigned local_port)
{
	(void)arg; (void)role; (void)peer_ip; (void)peer_port; (void)local_ip; (void)local_port;
	close(fd);
}

static void set_listen(char **v, size_t *n, const char *a, const char *b)
{
	for (size_t i = 0; i < *n; i++)
		free(v[i]);
	*n = 0;
	if (a)
		v[(*n)++] = strdup(a);
	if (b)
		v[(*n)++] = strdup(b);
}

/* Listeners: an address this host does not have on IPv6 is skipped when the role has
 * another; alone it is an error; a port in use is an error naming it. */
static void test_listeners(void **state)
{
	struct fixture *f = *state;
	char *err = NULL;
	set_listen(f->cfg.submission_listen, &f->cfg.n_submission_listen, NULL, NULL);
	set_listen(f->cfg.smtps_listen, &f->cfg.n_smtps_listen, NULL, NULL);
	set_listen(f->cfg.imap_listen, &f->cfg.n_imap_listen, NULL, NULL);
	set_listen(f->cfg.imaps_listen, &f->cfg.n_imaps_listen, NULL, NULL);
	set_listen(f->cfg.pop3_listen, &f->cfg.n_pop3_listen, NULL, NULL);
	set_listen(f->cfg.pop3s_listen, &f->cfg.n_pop3s_listen, NULL, NULL);
	set_listen(f->cfg.smtp_listen, &f->cfg.n_smtp_listen, "127.0.0.1:39571",
		   "[2001:db8::1]:39571");
	struct listener_set *ls = listener_set_open(f->base, &f->cfg, accept_nothing, f, &err);
	assert_non_null(ls);
	assert_null(err);
	/* the same port again: in use */
	struct listener_set *ls2 = listener_set_open(f->base, &f->cfg, accept_nothing, f, &err);
	assert_null(ls2);
	assert_string_equal(err, "cannot listen on 127.0.0.1:39571 (smtp): Address already in use");
	free(err);
	err = NULL;
	listener_set_free(&ls);
	assert_null(ls);
	set_listen(f->cfg.smtp_listen, &f->cfg.n_smtp_listen, "[2001:db8::1]:39571", NULL);
	ls = listener_set_open(f->base, &f->cfg, accept_nothing, f, &err);
	assert_null(ls);
	assert_string_equal(err, "cannot listen on [2001:db8::1]:39571 (smtp): no such IPv6 "
				 "address here");
	free(err);
}

/* Regression (issue 7): at shutdown the spool was closed before the connections still
 * open (past the grace period, or lingering) were freed, and a connection freed with a
 * message open (mid-BDAT) then aborted it into the freed spool.  conn_server_teardown()
 * is the one order: sessions end and give their messages back, the spool closes
 * (queued commits complete with their sessions alive), then the connections go. */
static void test_teardown_with_open_message(void **state)
{
	struct fixture *f = *state;
	int fd = connect_pair(f, MXB_ROLE_SMTP);
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "OPEN\r\n");
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	assert_string_equal(buf, "250 2.0.0 Ok: 21 octets received\r\n");
	assert_true(spool_used(f->spool) > 0);
	/* a second connection with a commit in flight is recorded, not dropped */
	int fd2 = connect_pair(f, MXB_ROLE_SMTP);
	pump(f, 20);
	recv1(fd2, buf, sizeof(buf));
	sendstr(fd2, "MSG\r\n");
	pump(f, 1); /* read and handed to the spool, the commit not yet reported */
	conn_server_teardown(&f->srv, &f->spool);
	assert_null(f->spool);
	assert_null(f->srv.spool);
	assert_int_equal(f->srv.n_conns, 0);
	assert_true(find_event(f, "disconnect", "\"reason\":\"shutdown\"") >= 0);
	/* nothing of the open message is left in tmp/ */
	char tmpdir[128];
	snprintf(tmpdir, sizeof(tmpdir), "%s/spool/tmp", f->dir);
	char cmd[192];
	snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A %s)\"", tmpdir);
	assert_int_equal(system(cmd), 0);
	close(fd);
	close(fd2);
}

/* A connection that ends while a message is open gives it back at once, not when it
 * is freed after lingering to flush its last answer. */
static void test_closed_conn_releases_message(void **state)
{
	struct fixture *f = *state;
	int sv[2];
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	int small = 4096; /* the last answer cannot all leave at once */
	assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);
	conn_accept(&f->srv, MXB_ROLE_SMTP, sv[0], "192.0.2.1", 40000, "127.0.0.1", 25);
	int fd = sv[1];
	char buf[4096];
	pump(f, 20);
	recv1(fd, buf, sizeof(buf));
	sendstr(fd, "OPEN\r\nBYEBIG\r\n"); /* the client reads nothing more */
	pump(f, 50);
	assert_int_equal(f->srv.n_conns, 1);                  /* lingering */
	assert_true(find_event(f, "disconnect", "\"reason\":\"quit\"") >= 0);
	assert_int_equal(spool_used(f->spool), 0);            /* the message went back */
	conn_server_teardown(&f->srv, &f->spool);
	assert_int_equal(f->srv.n_conns, 0);
	close(fd);
}

/* The daemon-wide output budget (issue 7): clients that FETCH big answers and read
 * nothing cannot make the daemon hold more than output_budget (plus the answer being
 * made).  Under it, the same answer reaches a reading client whole; past it, the
 * connection holding it is dropped, and the queued bytes are given back. */
static void test_output_daemon_budget(void **state)
{
	struct fixture *f = *state;
	f->srv.engine[MXB_ROLE_IMAP] = &fake_engine;
	f->srv.engine_cfg[MXB_ROLE_IMAP] = &f->smtp_cfg;
	f->srv.output_budget = 4u << 20;
	int fd1 = connect_pair(f, MXB_ROLE_IMAP);
	int fd2 = connect_pair(f, MXB_ROLE_IMAP);
	char buf[4096];
	pump(f, 20);
	recv1(fd1, buf, sizeof(buf));
	recv1(fd2, buf, sizeof(buf));
	sendstr(fd1, "BIG\r\n"); /* 3 MiB, unread: under the budget, kept */
	pump(f, 50);
	assert_int_equal(f->srv.n_conns, 2);
	assert_true(f->srv.out_queued > 2u << 20);
	sendstr(fd2, "BIG\r\n"); /* 3 more MiB: past the budget */
	pump(f, 50);
	assert_int_equal(f->srv.n_conns, 1);
	assert_true(find_event(f, "disconnect", "\"reason\":\"error\"") >= 0);
	assert_true(f->srv.out_queued < 4u << 20);
	close(fd2);
	close(fd1);
	pump(f, 50);
	assert_int_equal(f->srv.n_conns, 0);
	assert_int_equal(f->srv.out_queued, 0);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN); /* as the daemon does */
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_banner_and_one_write_groups, setup, teardown),
		cmocka_unit_test_setup_teardown(test_partial_lines_and_eof, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wait_resumes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_through_spool, setup, teardown),
		cmocka_unit_test_setup_teardown(test_starttls_injection_and_handshake, setup, teardown),
		cmocka_unit_test_setup_teardown(test_implicit_tls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_plaintext_on_smtps, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tls_direct_write_blocked, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_limits_per_ip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refusal_per_protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(test_idle_timeout_after_login, setup, teardown),
		cmocka_unit_test_setup_teardown(test_big_output, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_daemon_budget, setup, teardown),
		cmocka_unit_test_setup_teardown(test_handshake_timeout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pregreet, setup, teardown),
		cmocka_unit_test_setup_teardown(test_output_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_shutdown, setup, teardown),
		cmocka_unit_test_setup_teardown(test_teardown_with_open_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_closed_conn_releases_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_self_signed_cert, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ecdsa_alongside_rsa, setup, teardown),
		cmocka_unit_test_setup_teardown(test_listeners, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
