/*
 * fdpass: a 4-byte header with at most one descriptor over a Unix stream socket
 * (SCM_RIGHTS), and exact reads with a deadline.  For the analyzer's launcher, daemon
 * side and worker (analyze/worker.h, core/anlaunch.h).
 *
 * Promises: a received descriptor is close-on-exec; more than one descriptor in a
 * message, or a truncated control message, never leaks one (the extras are closed,
 * a truncated one is an error).  The header is a little-endian u32.
 */
#ifndef MXB_UTIL_FDPASS_H
#define MXB_UTIL_FDPASS_H

#include <stddef.h>
#include <stdint.h>

int64_t fdpass_now_ms(void); /* CLOCK_MONOTONIC */

/* The header's byte order (little-endian u32), also for length prefixes of the data
 * that follows one. */
static inline void fdpass_put_le32(unsigned char b[4], uint32_t v)
{
	b[0] = (unsigned char)v;
	b[1] = (unsigned char)(v >> 8);
	b[2] = (unsigned char)(v >> 16);
	b[3] = (unsigned char)(v >> 24);
}

static inline uint32_t fdpass_get_le32(const unsigned char b[4])
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* Send header v with descriptor fd (-1: none).  0, or -1. */
int fdpass_send(int sock, uint32_t v, int fd);
/* Receive a header into *v_r and at most one descriptor into *fd_r (-1: none).
 * deadline_ms (fdpass_now_ms() time) 0 for none.  0, 1 at end of input, -1 on error or
 * timeout. */
int fdpass_recv(int sock, uint32_t *v_r, int *fd_r, int64_t deadline_ms);

/* Write all n bytes (no SIGPIPE).  0, or -1. */
int fdpass_write_all(int fd, const void *p, size_t n);
/* Read exactly n bytes before deadline_ms (0: none).  0, 1 at end of input before the
 * first byte, -1. */
int fdpass_read_all(int fd, void *p, size_t n, int64_t deadline_ms);

#endif
