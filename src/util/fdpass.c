/* fdpass: descriptors and exact reads over Unix stream sockets (see fdpass.h). */
#include "util/fdpass.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int fdpass_write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

int64_t fdpass_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly n bytes; deadline_ms (monotonic) 0 for none.  0, 1 at end of input
 * before the first byte, -1 on error or timeout. */
int fdpass_read_all(int fd, void *p, size_t n, int64_t deadline_ms)
{
	char *c = p;
	size_t got = 0;
	while (got < n) {
		if (deadline_ms) {
			int64_t left = deadline_ms - fdpass_now_ms();
			if (left <= 0)
				return -1;
			struct pollfd pf = { .fd = fd, .events = POLLIN };
			int k = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
			if (k < 0 && errno != EINTR)
				return -1;
			if (k <= 0)
				continue;
		}
		ssize_t r = read(fd, c + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0 && got == 0)
			return 1;
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

int fdpass_send(int sock, uint32_t v, int fd)
{
	unsigned char hdr[4];
	fdpass_put_le32(hdr, v);
	struct iovec iov = { hdr, sizeof(hdr) };
	union { struct cmsghdr h; char b[CMSG_SPACE(sizeof(int))]; } cb;
	memset(&cb, 0, sizeof(cb));
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	if (fd >= 0) {
		m.msg_control = cb.b;
		m.msg_controllen = sizeof(cb.b);
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	ssize_t w;
	do
		w = sendmsg(sock, &m, MSG_NOSIGNAL);
	while (w < 0 && errno == EINTR);
	return w == (ssize_t)sizeof(hdr) ? 0 : -1;
}

int fdpass_recv(int sock, uint32_t *v_r, int *fd_r, int64_t deadline_ms)
{
	unsigned char hdr[4];
	*fd_r = -1;
	*v_r = 0;
	if (deadline_ms) {
		for (;;) {
			int64_t left = deadline_ms - fdpass_now_ms();
			if (left <= 0)
				return -1;
			struct pollfd pf = { .fd = sock, .events = POLLIN };
			int k = poll(&pf, 1, left > 1000 ? 1000 : (int)left);
			if (k > 0)
				break;
			if (k < 0 && errno != EINTR)
				return -1;
		}
	}
	struct iovec iov = { hdr, 4 };
	union { struct cmsghdr h; char b[CMSG_SPACE(4 * sizeof(int))]; } cb;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cb.b,
			    .msg_controllen = sizeof(cb.b) };
	ssize_t r;
	do
		r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); r >= 0 && c; c = CMSG_NXTHDR(&m, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			if (*fd_r < 0)
				*fd_r = fd;
			else
				close(fd);
		}
	}
	if (r == 0)
		return 1;
	if (r < 0 || (m.msg_flags & MSG_CTRUNC))
		goto bad;
	if (r < 4 && fdpass_read_all(sock, hdr + r, 4 - (size_t)r, deadline_ms) != 0)
		goto bad;
	*v_r = fdpass_get_le32(hdr);
	return 0;
bad:
	if (*fd_r >= 0)
		close(*fd_r);
	*fd_r = -1;
	return -1;
}

