/*
 * buf: a growable byte buffer with an optional hard cap.
 *
 * Used wherever protocol code accumulates output or a line without touching a socket.
 * Every append respects buf->cap (0 = unlimited): an append that would pass the cap
 * fails with -1 and leaves the buffer unchanged, so an attacker cannot grow it past
 * what the caller allowed.  The data is always NUL-terminated for convenience; the NUL
 * is not counted in len.
 */
#ifndef MXB_UTIL_BUF_H
#define MXB_UTIL_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* 0: no cap */
};

void buf_init(struct buf *b, size_t cap);
void buf_free(struct buf *b);
void buf_reset(struct buf *b);
int buf_append(struct buf *b, const void *data, size_t len);
/* Make room for exactly extra more bytes now (within the cap), so that appending them
 * later allocates nothing and the buffer is not doubled past them: -1 when the cap or
 * memory says no. */
int buf_reserve_exact(struct buf *b, size_t extra);
int buf_puts(struct buf *b, const char *s);
int buf_putc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Drop the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Hand the data to the caller (who frees it) and reset the buffer. */
char *buf_steal(struct buf *b, size_t *len_r);
/* A new string formatted as printf(3) does, for the caller to free (error messages
 * handed back through char **err_r); NULL only when memory runs out. */
char *buf_strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
