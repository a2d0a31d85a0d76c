/*
 * durable: small files that must survive a crash whole, or not at all.
 *
 * A file is durable once its data and its directory entry are on disk: fsync(2) of
 * the file gives the first, only an fsync of the directory that holds it gives the
 * second (a crash after fsync(file) alone may lose the name).
 */
#ifndef MXB_STORE_DURABLE_H
#define MXB_STORE_DURABLE_H

#include <stddef.h>
#include <sys/types.h>

/* Write all len bytes to fd (again after EINTR and short writes).  0, or -1 with
 * errno (EIO when write(2) returned 0). */
int durable_write_all(int fd, const char *p, size_t len);

/* fsync a directory.  0, or -1 with errno. */
int durable_fsync_dir(const char *dir);

/* Create dir/name with exactly len bytes of data and mode, atomically and durably:
 * the bytes go to a temporary file in dir, which is fsync'd and then linked to name
 * (so name never exists half-written, and an existing name is never replaced: -1 with
 * errno EEXIST), the temporary name is removed and dir is fsync'd.  0, or -1 with
 * errno (nothing left behind). */
int durable_create_file(const char *dir, const char *name, const void *data, size_t len,
			mode_t mode);

#endif
