/*
 * spoolfile: find and read a captured message for the CLI and the web API (read-only).
 *
 * Promises: only plain file names are looked up (no '/', no dot files), inside
 * <data_dir>/spool/new or cur, so a tampered database cannot make the CLI read
 * elsewhere.  Header parsing reads a bounded prefix of the file and never trusts it.
 */
#ifndef MXB_CLI_SPOOLFILE_H
#define MXB_CLI_SPOOLFILE_H

#include <stddef.h>

#include "util/buf.h"

/* Path of the stored message (new/NAME, or cur/NAME, or cur/NAME:2,...), malloc'd;
 * NULL when absent or when name is not a plain file name. */
char *spoolfile_path(const char *data_dir, const char *name);

/* The Subject header's value (unfolded, raw bytes, at most 998 bytes) from the first
 * 64 KiB of the file.  Returns 1 when found, 0 when not, -1 on I/O error. */
int spoolfile_subject(const char *path, struct buf *out);

/* Same, from a buffer holding the start of a message. */
int mail_header_value(const char *msg, size_t len, const char *name, struct buf *out);

#endif
