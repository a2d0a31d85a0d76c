/*
 * input: the messages inside a path, whatever its shape: one .eml file, an mbox
 * (split on "From " lines), a Maildir (new/ then cur/), or a directory of files
 * (sorted by name, recursively up to 8 levels).  Files over 1 MiB are mapped read-only,
 * not copied; smaller ones are read (cheaper than mapping).
 */
#ifndef MXB_ANALYZE_INPUT_H
#define MXB_ANALYZE_INPUT_H

#include <stddef.h>

/* Called once per message; source names it ("file", "file#N" inside an mbox).
 * A non-zero return stops the walk and is returned. */
typedef int (*an_msg_fn)(void *arg, const char *source, const void *data, size_t len);

/* Returns 0, the callback's non-zero value, or -1 when path cannot be read (errno). */
int an_input_each(const char *path, an_msg_fn fn, void *arg);

/* A whole file, read-only: read into memory up to 1 MiB, mapped above; *len_r 0
 * gives a non-NULL dummy.  Release with an_unmap(p, *len_r). */
const void *an_map_file(const char *path, size_t *len_r);
/* The same for an open descriptor (a regular file), which it closes in every case. */
const void *an_map_fd(int fd, size_t *len_r);
void an_unmap(const void *p, size_t len);

#endif
