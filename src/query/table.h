/*
 * table: terminal-safe output for the CLI: escaping, aligned tables, and a small JSON
 * writer.
 *
 * Promises: nothing that passes through here reaches the terminal raw.  Every byte
 * outside printable ASCII (and the backslash itself) is written as \xHH (\\ for the
 * backslash), so attacker bytes can never form an escape sequence, a bidi override or
 * a fake line.  Cells are cut to their column's width.  The JSON writer produces valid
 * JSON whatever the bytes (strings go through json_append_string).
 */
#ifndef MXB_CLI_TABLE_H
#define MXB_CLI_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "query/jw.h"
#include "util/buf.h"

/* Append s (len bytes) to out, escaped for a terminal.  max > 0 cuts the escaped text
 * to at most max characters, ending with "..." when cut.  Returns the bytes of s
 * consumed. */
size_t term_escape(struct buf *out, const char *s, size_t len, size_t max);

/* "2026-11-27 06:52:43" (UTC) for a timestamp in microseconds; "-" for 0. */
void cli_fmt_time(int64_t ts_us, char *out, size_t outlen);
/* "1.5 KB", "12 MB", ... */
void cli_fmt_size(uint64_t bytes, char *out, size_t outlen);

struct table;
struct table *table_new(size_t ncols, const char *const *heads);
void table_free(struct table **t);
/* Widest a column may be (escaped characters); 0 = unlimited (default 40). */
void table_set_max(struct table *t, size_t col, size_t max);
void table_set_right(struct table *t, size_t col); /* right-align (numbers) */
/* No header line (key/value listings); empty cells then print blank, not "-". */
void table_hide_header(struct table *t);
void table_add_row(struct table *t);
/* Set a cell of the last row: raw bytes (escaped here); NULL shows "-". */
void table_cell(struct table *t, size_t col, const char *s, size_t len);
void table_cells(struct table *t, size_t col, const char *s);
void table_cellf(struct table *t, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t table_rows(const struct table *t);
void table_print(const struct table *t, FILE *f);

#endif
