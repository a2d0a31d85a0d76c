/* worker: the analysis worker's loop and the daemon side's calls (see worker.h). */
#include "analyze/worker.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "analyze/input.h"
#include "analyze/wire.h"
#include "util/buf.h"
#include "util/fdpass.h"

/* ---- the worker ---- */

#ifdef MXB_TEST_HOOKS
/* MXBAIT_TEST_WORKER_CRASH=MARK: a message containing MARK makes the worker call
 * socket(), which its filter punishes (SIGSYS): the daemon side must carry on. */
static void test_crash_hook(const void *data, size_t len)
{
	const char *mark = getenv("MXBAIT_TEST_WORKER_CRASH");
	if (mark && *mark && memmem(data, len, mark, strlen(mark))) {
		int s = socket(AF_INET, SOCK_STREAM, 0);
		if (s >= 0)
			close(s);
		abort(); /* not stopped by the filter: still a crash */
	}
}
#endif

static int serve_one(int fd, int msg_fd, uint32_t len)
{
	int rc = -1;
	char *req = malloc(len ? len : 1);
	struct wire_request q;
	const char *err = NULL;
	struct buf out;
	buf_init(&out, 0);
	if (!req || fdpass_read_all(fd, req, len, 0) != 0)
		goto done;
	if (wire_decode_request(req, len, &q, &err) != 0) {
		fprintf(stderr, "mxbait analyzer worker: bad request: %s\n", err);
		goto done;
	}
	size_t mlen = 0;
	const void *data = an_map_fd(msg_fd, &mlen);
	msg_fd = -1; /* an_map_fd closed it */
	struct analysis *a = NULL;
	if (data) {
#ifdef MXB_TEST_HOOKS
		test_crash_hook(data, mlen);
#endif
		struct an_envelope env = {
			.sender = q.sender, .recipients = (const char *const *)q.recipients,
			.n_recipients = q.n_recipients, .client_ip = q.client_ip,
			.helo = q.helo, .auth_user = q.auth_user };
		alarm(WORKER_TIMEOUT_S); /* SIGALRM's default action: a hung parse ends */
		a = analyze_message(data, mlen, &q.lim, q.has_envelope ? &env : NULL);
		alarm(0);
		an_unmap(data, mlen);
	}
	wire_request_clear(&q);
	buf_append(&out, "\0\0\0\0", 4); /* the length, filled in below */
	if (a && wire_encode_result(a, &out) != 0)
		out.len = 4; /* too large to be decoded: answer "no result" */
	analysis_free(&a);
	fdpass_put_le32((unsigned char *)out.data, (uint32_t)(out.len - 4));
	rc = fdpass_write_all(fd, out.data, out.len);
done:
	if (msg_fd >= 0)
		close(msg_fd);
	free(req);
	buf_free(&out);
	return rc;
}

int worker_serve(int fd)
{
	for (;;) {
		uint32_t len;
		int msg_fd;
		int r = fdpass_recv(fd, &len, &msg_fd, 0);
		if (r == 1)
			return 0;
		if (r < 0)
			return -1;
		if (msg_fd < 0 || len > WIRE_REQUEST_MAX) {
			if (msg_fd >= 0)
				close(msg_fd);
			fprintf(stderr, "mxbait analyzer worker: bad request frame\n");
			return -1;
		}
		if (serve_one(fd, msg_fd, len) != 0)
			return -1;
	}
}

/* ---- the daemon side ---- */

int worker_spawn(int ctl, pid_t *pid_r)
{
	char want = 'W';
	if (fdpass_write_all(ctl, &want, 1) != 0)
		return -1;
	uint32_t pid;
	int fd;
	/* the launcher answers at once (a fork); 10 s covers a loaded machine */
	if (fdpass_recv(ctl, &pid, &fd, fdpass_now_ms() + 10000) != 0)
		return -1;
	*pid_r = (pid_t)pid;
	if (fd < 0 || *pid_r <= 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct analysis *worker_analyze(int sock, int msg_fd, const struct an_envelope *env,
				const struct analyze_limits *lim, const char **err_r)
{
	struct buf req;
	buf_init(&req, 0);
	wire_encode_request(env, lim, &req);
	int s = fdpass_send(sock, (uint32_t)req.len, msg_fd) == 0 &&
			fdpass_write_all(sock, req.data, req.len) == 0 ? 0 : -1;
	buf_free(&req);
	if (s != 0) {
		*err_r = "worker gone (cannot send)";
		return NULL;
	}
	int64_t deadline = fdpass_now_ms() + (WORKER_TIMEOUT_S + 10) * 1000;
	unsigned char hdr[4];
	int r = fdpass_read_all(sock, hdr, 4, deadline);
	if (r != 0) {
		*err_r = r == 1 ? "worker died" : "worker timed out or failed";
		return NULL;
	}
	uint32_t len = fdpass_get_le32(hdr);
	if (len == 0) {
		*err_r = "worker found no result (out of memory, or too large)";
		return NULL;
	}
	if (len > WIRE_RESULT_MAX) {
		*err_r = "result too large";
		return NULL;
	}
	char *data = malloc(len);
	if (!data) {
		*err_r = "out of memory";
		return NULL;
	}
	if (fdpass_read_all(sock, data, len, deadline) != 0) {
		free(data);
		*err_r = "worker died mid-result";
		return NULL;
	}
	struct analysis *a = wire_decode_result(data, len, lim, err_r);
	free(data);
	return a;
}
