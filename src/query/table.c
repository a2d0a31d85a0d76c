/* table: terminal-safe escaping, aligned tables and a JSON writer (see table.h). */
#include "query/table.h"

#include <sqlite3.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event.h"

#define TABLE_DEFAULT_MAX 40

static size_t esc_width(unsigned char c)
{
	if (c == '\\')
		return 2;
	return c >= 0x20 && c < 0x7F ? 1 : 4;
}

size_t term_escape(struct buf *out, const char *s, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t total = 0;
	for (size_t i = 0; i < len; i++)
		total += esc_width(p[i]);
	/* When it does not fit, keep room for the "..." marker (fewer dots when the
	 * column is narrower than 3). */
	size_t mark = max && total > max ? (max < 3 ? max : 3) : 0;
	size_t limit = max ? max - mark : 0;
	size_t width = 0, i = 0;
	for (; i < len; i++) {
		size_t n = esc_width(p[i]);
		if (max && width + n > limit)
			break;
		if (n == 1)
			buf_putc(out, (char)p[i]);
		else if (n == 2)
			buf_append(out, "\\\\", 2);
		else
			buf_printf(out, "\\x%02X", p[i]);
		width += n;
	}
	if (i < len)
		buf_append(out, "...", mark);
	return i;
}

void cli_fmt_time(int64_t ts_us, char *out, size_t outlen)
{
	if (ts_us <= 0) {
		snprintf(out, outlen, "-");
		return;
	}
	time_t sec = (time_t)(ts_us / 1000000);
	struct tm tm;
	gmtime_r(&sec, &tm);
	snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void cli_fmt_size(uint64_t b, char *out, size_t outlen)
{
	if (b < 1024)
		snprintf(out, outlen, "%llu B", (unsigned long long)b);
	else if (b < 1024 * 1024)
		snprintf(out, outlen, "%.1f KB", (double)b / 1024);
	else if (b < 1024ULL * 1024 * 1024)
		snprintf(out, outlen, "%.1f MB", (double)b / (1024 * 1024));
	else
		snprintf(out, outlen, "%.1f GB", (double)b / (1024.0 * 1024 * 1024));
}

struct table {
	size_t ncols;
	char **heads;
	size_t *max;
	bool *right;
	bool no_header;
	char **cells; /* nrows * ncols, escaped; NULL = "-" */
	size_t nrows, alloc_rows;
};

struct table *table_new(size_t ncols, const char *const *heads)
{
	struct table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ncols = ncols;
	t->heads = calloc(ncols, sizeof(*t->heads));
	t->max = calloc(ncols, sizeof(*t->max));
	t->right = calloc(ncols, sizeof(*t->right));
	if (!t->heads || !t->max || !t->right) {
		table_free(&t);
		return NULL;
	}
	for (size_t i = 0; i < ncols; i++) {
		t->heads[i] = strdup(heads[i]);
		t->max[i] = TABLE_DEFAULT_MAX;
	}
	return t;
}

void table_free(struct table **tp)
{
	struct table *t = tp ? *tp : NULL;
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	for (size_t i = 0; t->heads && i < t->ncols; i++)
		free(t->heads[i]);
	free(t->cells);
	free(t->heads);
	free(t->max);
	free(t->right);
	free(t);
	*tp = NULL;
}

void table_set_max(struct table *t, size_t col, size_t max)
{
	if (t && col < t->ncols)
		t->max[col] = max;
}

void table_set_right(struct table *t, size_t col)
{
	if (t && col < t->ncols)
		t->right[col] = true;
}

void table_hide_header(struct table *t)
{
	if (t)
		t->no_header = true;
}

void table_add_row(struct table *t)
{
	if (!t)
		return;
	if (t->nrows == t->alloc_rows) {
		size_t n = t->alloc_rows ? t->alloc_rows * 2 : 16;
		char **c = realloc(t->cells, n * t->ncols * sizeof(*c));
		if (!c)
			abort(); /* a CLI out of memory has nothing better to do */
		t->cells = c;
		t->alloc_rows = n;
	}
	memset(t->cells + t->nrows * t->ncols, 0, t->ncols * sizeof(*t->cells));
	t->nrows++;
}

void table_cell(struct table *t, size_t col, const char *s, size_t len)
{
	if (!t || !t->nrows || col >= t->ncols || !s)
		return;
	struct buf b;
	buf_init(&b, 0);
	term_escape(&b, s, len, t->max[col]);
	char **c = &t->cells[(t->nrows - 1) * t->ncols + col];
	free(*c);
	*c = buf_steal(&b, NULL);
	if (!*c)
		*c = strdup("");
}

void table_cells(struct table *t, size_t col, const char *s)
{
	table_cell(t, col, s, s ? strlen(s) : 0);
}

void table_cellf(struct table *t, size_t col, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n >= 0)
		table_cell(t, col, s, (size_t)n);
	free(s);
}

size_t table_rows(const struct table *t)
{
	return t ? t->nrows : 0;
}

void table_print(const struct table *t, FILE *f)
{
	if (!t)
		return;
	size_t *w = calloc(t->ncols, sizeof(*w));
	if (!w)
		return;
	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = t->no_header ? 0 : strlen(t->heads[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : t->no_header ? 0 : 1;
			if (l > w[c])
				w[c] = l;
		}
	}
	for (size_t r = t->no_header ? 1 : 0; r <= t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = r == 0 ? t->heads[c] : t->cells[(r - 1) * t->ncols + c];
			if (!s)
				s = t->no_header ? "" : "-";
			bool last = c + 1 == t->ncols;
			if (t->right[c])
				fprintf(f, "%*s", (int)w[c], s);
			else if (last)
				fputs(s, f);
			else
				fprintf(f, "%-*s", (int)w[c], s);
			if (!last)
				fputs("  ", f);
		}
		fputc('\n', f);
	}
	free(w);
}
