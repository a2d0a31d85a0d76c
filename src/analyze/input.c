/* input: walk .eml files, mboxes and Maildirs (see input.h). */
#include "analyze/input.h"

#include <ctype.h>
#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Files up to this size are read into memory, bigger ones mapped; an_unmap tells them
 * apart by the same length. */
#define READ_MAX (1u << 20)

const void *an_map_file(const char *path, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	return an_map_fd(fd, len_r);
}

const void *an_map_fd(int fd, size_t *len_r)
{
	static const char empty[1];
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		errno = EINVAL;
		return NULL;
	}
	*len_r = (size_t)st.st_size;
	if (st.st_size == 0) {
		close(fd);
		return empty;
	}
	if ((size_t)st.st_size <= READ_MAX) {
		/* read, not mapped: for a typical message (tens of KB) mmap's page faults
		 * and munmap cost more than the copy */
		size_t want = (size_t)st.st_size, got = 0;
		char *b = malloc(want);
		while (b && got < want) {
			ssize_t n = read(fd, b + got, want - got);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			got += (size_t)n;
		}
		close(fd);
		if (!b)
			return NULL;
		if (got == 0) { /* truncated meanwhile */
			free(b);
			*len_r = 0;
			return empty;
		}
		*len_r = got;
		return b;
	}
	void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	madvise(p, (size_t)st.st_size, MADV_SEQUENTIAL);
	return p;
}

void an_unmap(const void *p, size_t len)
{
	if (p && len && len <= READ_MAX)
		free((void *)p);
	else if (p && len)
		munmap((void *)p, len);
}

/* An mbox separator is "From SENDER DATE": a sender right after "From " and a time
 * (H:MM) on the line, the way mutt's is_from() tells it from a header written
 * "From  :<addr>" or a body line "From here on" that a sloppy writer left unescaped
 * (a SpamAssassin test message with such a header was split in two). */
static bool is_from_line(const char *p, size_t left)
{
	if (left < 6 || memcmp(p, "From ", 5) != 0 || p[5] == ' ' || p[5] == '\t' ||
	    p[5] == '\r' || p[5] == '\n')
		return false;
	for (size_t i = 6; i + 3 < left && i < 256 && p[i] != '\n'; i++)
		if (p[i] == ':' && isdigit((unsigned char)p[i - 1]) &&
		    isdigit((unsigned char)p[i + 1]) && isdigit((unsigned char)p[i + 2]))
			return true;
	return false;
}

static int is_mbox(const char *d, size_t len)
{
	return is_from_line(d, len);
}

static int each_mbox(const char *path, const char *d, size_t len, an_msg_fn fn, void *arg)
{
	size_t pos = 0;
	int n = 0;
	char src[4200];
	while (pos < len) {
		/* skip the "From " separator line */
		const char *nl = memchr(d + pos, '\n', len - pos);
		size_t start = nl ? (size_t)(nl - d) + 1 : len;
		const char *f = d + start;
		while ((f = memmem(f, len - (size_t)(f - d), "\nFrom ", 6)) &&
		       !is_from_line(f + 1, len - (size_t)(f + 1 - d)))
			f += 6;
		size_t end = f ? (size_t)(f - d) + 1 : len;
		snprintf(src, sizeof(src), "%s#%d", path, ++n);
		int r = fn(arg, src, d + start, end - start);
		if (r)
			return r;
		pos = end;
	}
	return 0;
}

static int each_file(const char *path, an_msg_fn fn, void *arg)
{
	size_t len = 0;
	const void *d = an_map_file(path, &len);
	if (!d)
		return -1;
	int r = is_mbox(d, len) ? each_mbox(path, d, len, fn, arg) : fn(arg, path, d, len);
	an_unmap(d, len);
	return r;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int each_dir(const char *path, an_msg_fn fn, void *arg, int depth)
{
	DIR *dir = opendir(path);
	if (!dir)
		return -1;
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			char **nn = realloc(names, cap * sizeof(*names));
			if (!nn)
				break;
			names = nn;
		}
		names[n++] = strdup(de->d_name);
	}
	closedir(dir);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	int r = 0;
	char full[4096];
	/* a Maildir: tmp/ holds unfinished files, so only new/ and cur/ */
	bool maildir = false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], "cur") == 0 || strcmp(names[i], "new") == 0)
			maildir = true;
	for (size_t i = 0; i < n && r == 0; i++) {
		if (maildir && strcmp(names[i], "new") != 0 && strcmp(names[i], "cur") != 0)
			continue;
		snprintf(full, sizeof(full), "%s/%s", path, names[i]);
		struct stat st;
		if (lstat(full, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth < 8) /* bounded: a symlink loop is not followed (lstat) anyway */
				r = each_dir(full, fn, arg, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			int k = each_file(full, fn, arg);
			if (k > 0)
				r = k;
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

int an_input_each(const char *path, an_msg_fn fn, void *arg)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	if (S_ISDIR(st.st_mode))
		return each_dir(path, fn, arg, 0);
	return each_file(path, fn, arg);
}
