/*
 * test_pop3_poplib: a real POP3 client (Python's poplib) against the POP3 engine.
 *
 * A minimal loopback host (127.0.0.1, a kernel-chosen port, one connection at a
 * time, plain TCP with allow_plaintext) drives pop3_engine as the connection layer
 * would: send() writes, wait() is a timer honoured with poll(), close() closes.  A
 * Python script logs in with a wrong and then the right password, lists, reads and
 * deletes, and writes what RETR/TOP returned to files; this program then compares
 * them with mailbox_generate().  This checks framing, byte-stuffing and multi-line
 * replies with an independent parser.  Skipped (77) without /usr/bin/python3.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "proto/pop3.h"
#include "store/event.h"

static const uint8_t secret[32] = {42};

struct host {
	int fd;
	bool closed;
	unsigned wait_ms;
	bool want_tls;
	unsigned events;
};

static void h_send(void *ctx, const char *data, size_t len)
{
	struct host *h = ctx;
	while (len > 0 && !h->closed) {
		ssize_t n = write(h->fd, data, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			h->closed = true;
			return;
		}
		data += n;
		len -= (size_t)n;
	}
}

static void h_event(void *ctx, struct mxb_event *ev)
{
	((struct host *)ctx)->events++;
	mxb_event_free(&ev);
}

static int h_open(void *ctx, char *q, size_t l) { return -1; }
static int h_write(void *ctx, const char *d, size_t l) { return -1; }
static void h_nothing(void *ctx) {}
static void h_starttls(void *ctx) { ((struct host *)ctx)->want_tls = true; }
static void h_wait(void *ctx, unsigned ms) { ((struct host *)ctx)->wait_ms = ms ? ms : 1; }
static void h_close(void *ctx, const char *reason) { ((struct host *)ctx)->closed = true; }

static const struct proto_host_ops ops = {
	.send = h_send, .event = h_event, .msg_open = h_open, .msg_write = h_write,
	.msg_commit = h_nothing, .msg_abort = h_nothing, .starttls = h_starttls,
	.wait = h_wait, .close = h_close,
};

/* Serve one connection until it closes (or 20 s pass). */
static void serve_one(int cfd, const struct pop3_config *cfg)
{
	struct host h = {.fd = cfd};
	struct proto_peer peer = {.ip = "127.0.0.1", .port = 1};
	void *s = pop3_engine.create(cfg, &peer, false, &ops, &h);
	pop3_engine.start(s);
	char in[65536];
	size_t have = 0;
	time_t end = time(NULL) + 20;
	while (!h.closed && time(NULL) < end) {
		if (h.wait_ms) {
			poll(NULL, 0, (int)h.wait_ms);
			h.wait_ms = 0;
			pop3_engine.resume(s);
		} else {
			struct pollfd p = {.fd = cfd, .events = POLLIN};
			if (poll(&p, 1, 1000) <= 0)
				continue;
			ssize_t n = read(cfd, in + have, sizeof(in) - have);
			if (n <= 0) {
				pop3_engine.hangup(s, "client_closed");
				break;
			}
			have += (size_t)n;
		}
		while (have > 0 && !h.closed && !h.wait_ms && !h.want_tls) {
			size_t used = pop3_engine.feed(s, in, have);
			memmove(in, in + used, have - used);
			have -= used;
			if (used == 0)
				break;
		}
		if (h.want_tls)
			break; /* no TLS in this harness */
	}
	pop3_engine.destroy(s);
	close(cfd);
}

static const char *script =
	"import poplib, sys\n"
	"port, out = int(sys.argv[1]), sys.argv[2]\n"
	"p = poplib.POP3('127.0.0.1', port, timeout=10)\n"
	"assert p.getwelcome() == b'+OK Dovecot (Debian) ready.', p.getwelcome()\n"
	"caps = p.capa()\n"
	"assert 'USER' in caps and caps['SASL'] == ['PLAIN', 'LOGIN'], caps\n"
	"p.user('alice')\n"
	"try:\n"
	"    p.pass_('wrong')\n"
	"    sys.exit('wrong password accepted')\n"
	"except poplib.error_proto as e:\n"
	"    assert e.args[0] == b'-ERR [AUTH] Authentication failed.', e\n"
	"p.user('alice')\n"
	"assert p.pass_('alice-Secret-1') == b'+OK Logged in.'\n"
	"count, octets = p.stat()\n"
	"resp, listing, _ = p.list()\n"
	"sizes = [int(l.split()[1]) for l in listing]\n"
	"assert len(sizes) == count and sum(sizes) == octets, (count, octets, sizes)\n"
	"resp, uidls, _ = p.uidl()\n"
	"assert len(uidls) == count and len({u.split()[1] for u in uidls}) == count\n"
	"with open(out + '.count', 'w') as f: f.write('%d %d' % (count, octets))\n"
	"for i in range(1, count + 1):\n"
	"    resp, lines, n = p.retr(i)\n"
	"    assert resp == b'+OK %d octets' % sizes[i - 1], resp\n"
	"    with open('%s.%d' % (out, i), 'wb') as f: f.write(b'\\r\\n'.join(lines) + b'\\r\\n')\n"
	"resp, lines, n = p.top(1, 0)\n"
	"with open(out + '.top', 'wb') as f: f.write(b'\\r\\n'.join(lines) + b'\\r\\n')\n"
	"p.dele(1)\n"
	"assert p.stat()[0] == count - 1\n"
	"p.rset()\n"
	"assert p.stat() == (count, octets)\n"
	"p.dele(2)\n"
	"assert p.quit() == b'+OK Logging out, messages deleted.'\n"
	"p = poplib.POP3('127.0.0.1', port, timeout=10)\n"
	"p.user('alice'); p.pass_('alice-Secret-1')\n"
	"assert p.stat() == (count, octets), 'deletions persisted'\n"
	"p.quit()\n";

static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *buf = malloc(1 << 20);
	size_t n = buf ? fread(buf, 1, (1 << 20) - 1, f) : 0;
	fclose(f);
	if (buf)
		buf[n] = '\0';
	*len_r = n;
	return buf;
}

int main(void)
{
	if (access("/usr/bin/python3", X_OK) != 0) {
		fprintf(stderr, "no /usr/bin/python3: skipped\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(lfd, 4) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &al) < 0) {
		perror("listen");
		return 1;
	}
	char dir[] = "/tmp/mxbait-poplib.XXXXXX";
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 1;
	}
	char out[256], port[16];
	snprintf(out, sizeof(out), "%s/msg", dir);
	snprintf(port, sizeof(port), "%u", (unsigned)ntohs(a.sin_port));
	pid_t pid = fork();
	if (pid == 0) {
		close(lfd);
		execl("/usr/bin/python3", "python3", "-c", script, port, out, (char *)NULL);
		_exit(127);
	}
	const char *acc[] = {"alice:alice-Secret-1"};
	struct auth_policy *pol = auth_static_new(acc, 1);
	struct pop3_config cfg = {.hostname = "mail.example.test", .domain = "example.test",
				  .allow_plaintext = true, .auth = pol, .secret = secret,
				  .auth_failure_delay_ms = 50, .auth_penalty = true};
	int status = -1;
	for (int conns = 0; conns < 2;) {
		struct pollfd p = {.fd = lfd, .events = POLLIN};
		int r = poll(&p, 1, 200);
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		if (r <= 0)
			continue;
		int cfd = accept(lfd, NULL, NULL);
		if (cfd < 0)
			continue;
		serve_one(cfd, &cfg);
		conns++;
	}
	if (status == -1)
		waitpid(pid, &status, 0);
	close(lfd);
	int rc = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "poplib script failed (status %d)\n", status);
		rc = 1;
	}
	/* What poplib read (dot-unstuffed, CRLF re-joined) is exactly the message. */
	struct mbox_set *m = mailbox_generate("alice", "example.test", "mail.example.test", secret);
	struct mbox_folder *in = mailbox_folder(m, "INBOX");
	for (size_t i = 0; rc == 0 && i < in->n_msgs; i++) {
		char path[300];
		snprintf(path, sizeof(path), "%s.%zu", out, i + 1);
		size_t len = 0;
		char *got = slurp(path, &len);
		if (!got || len != in->msgs[i].size || memcmp(got, in->msgs[i].data, len) != 0) {
			fprintf(stderr, "message %zu differs (%zu bytes read, %zu expected)\n", i + 1,
				len, in->msgs[i].size);
			rc = 1;
		}
		free(got);
		unlink(path);
	}
	char path[300];
	size_t len = 0;
	snprintf(path, sizeof(path), "%s.top", out);
	char *top = slurp(path, &len);
	const char *hend = strstr(in->msgs[0].data, "\r\n\r\n");
	if (rc == 0 && (!top || !hend || len != (size_t)(hend - in->msgs[0].data) + 4 ||
			memcmp(top, in->msgs[0].data, len) != 0)) {
		fprintf(stderr, "TOP 1 0 differs\n");
		rc = 1;
	}
	free(top);
	unlink(path);
	snprintf(path, sizeof(path), "%s.count", out);
	unlink(path);
	rmdir(dir);
	if (rc == 0)
		printf("poplib: %zu messages read, byte-identical\n", in->n_msgs);
	mailbox_free(&m);
	auth_policy_free(&pol);
	return rc;
}
