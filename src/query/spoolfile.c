/* spoolfile: locate a captured message and read its Subject (see spoolfile.h). */
#include "query/spoolfile.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/db.h"

#define HEADER_SCAN_MAX (64 * 1024)
#define HEADER_VALUE_MAX 998

static bool plain_name(const char *name)
{
	return name && name[0] && name[0] != '.' && !strchr(name, '/') && strlen(name) < 512;
}

static char *existing(const char *dir, const char *name)
{
	char *p = NULL;
	struct stat st;
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
		return p;
	free(p);
	return NULL;
}

char *spoolfile_path(const char *data_dir, const char *name)
{
	if (!plain_name(name))
		return NULL;
	char *dir = NULL, *p = NULL;
	if (asprintf(&dir, "%s/%s/new", data_dir, MXB_SPOOL_DIR) < 0)
		return NULL;
	p = existing(dir, name);
	free(dir);
	if (p)
		return p;
	if (asprintf(&dir, "%s/%s/cur", data_dir, MXB_SPOOL_DIR) < 0)
		return NULL;
	p = existing(dir, name);
	if (!p) {
		/* A mail reader moved it to cur/ as NAME:2,FLAGS. */
		DIR *d = opendir(dir);
		size_t nl = strlen(name);
		struct dirent *de;
		while (d && !p && (de = readdir(d)))
			if (!strncmp(de->d_name, name, nl) && de->d_name[nl] == ':')
				p = existing(dir, de->d_name);
		if (d)
			closedir(d);
	}
	free(dir);
	return p;
}

int mail_header_value(const char *msg, size_t len, const char *name, struct buf *out)
{
	size_t nl = strlen(name);
	size_t i = 0;
	while (i < len) {
		size_t eol = i;
		while (eol < len && msg[eol] != '\n')
			eol++;
		size_t end = eol;
		if (end > i && msg[end - 1] == '\r')
			end--;
		if (end == i)
			return 0; /* blank line: end of the header */
		if (end - i > nl && !strncasecmp(msg + i, name, nl) && msg[i + nl] == ':') {
			size_t v = i + nl + 1;
			for (;;) {
				while (v < end && (msg[v] == ' ' || msg[v] == '\t'))
					v++;
				size_t room = HEADER_VALUE_MAX > out->len ? HEADER_VALUE_MAX - out->len : 0;
				size_t n = end - v < room ? end - v : room;
				buf_append(out, msg + v, n);
				/* Continuation lines (RFC 5322 folding) start with WSP. */
				size_t next = eol + 1;
				if (next >= len || (msg[next] != ' ' && msg[next] != '\t'))
					break;
				eol = next;
				while (eol < len && msg[eol] != '\n')
					eol++;
				end = eol;
				if (end > next && msg[end - 1] == '\r')
					end--;
				v = next;
				if (out->len < HEADER_VALUE_MAX)
					buf_putc(out, ' ');
			}
			return 1;
		}
		i = eol + 1;
	}
	return 0;
}

int spoolfile_subject(const char *path, struct buf *out)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	char *b = malloc(HEADER_SCAN_MAX);
	if (!b) {
		close(fd);
		return -1;
	}
	size_t len = 0;
	while (len < HEADER_SCAN_MAX) {
		ssize_t n = read(fd, b + len, HEADER_SCAN_MAX - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	int r = mail_header_value(b, len, "Subject", out);
	free(b);
	return r;
}
