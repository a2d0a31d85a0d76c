/*
 * guard-logparse: the log watch's tokenizer over a file, as the watcher thread reads it
 * (1 MiB pread chunks, lines split in place, partial lines carried over), on one core.
 *
 *   guard-logparse FILE     prints one line of JSON: lines, bytes, seconds, lines/s, MB/s
 *                           and what was found (auth failures, unknown recipients,
 *                           offences)
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guard/logparse.h"

#define CHUNK (1024 * 1024)

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s FILE\n", argv[0]);
		return 2;
	}
	int fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 1;
	}
	struct logparse *lp = logparse_new();
	char *buf = malloc(CHUNK + LOGPARSE_LINE_MAX + 1);
	size_t carry = 0;
	unsigned long long lines = 0, bytes = 0, kinds[4] = { 0 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		ssize_t n = read(fd, buf + carry, CHUNK);
		if (n <= 0)
			break;
		bytes += (unsigned long long)n;
		size_t len = carry + (size_t)n, start = 0;
		for (;;) {
			char *nl = memchr(buf + start, '\n', len - start);
			if (!nl)
				break;
			struct log_obs o;
			kinds[logparse_line(lp, buf + start, (size_t)(nl - buf) - start, &o)]++;
			lines++;
			start = (size_t)(nl - buf) + 1;
		}
		carry = len - start;
		if (carry > LOGPARSE_LINE_MAX)
			carry = 0; /* an over-long line: dropped, as the watcher does */
		memmove(buf, buf + start, carry);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("{\"lines\":%llu,\"bytes\":%llu,\"seconds\":%.3f,\"lines_per_s\":%.0f,"
	       "\"mb_per_s\":%.1f,\"auth_failures\":%llu,\"unknown_rcpts\":%llu,\"offences\":%llu}\n",
	       lines, bytes, s, lines / s, bytes / s / 1e6, kinds[LOG_AUTH_FAIL],
	       kinds[LOG_RCPT_UNKNOWN], kinds[LOG_OFFENCE]);
	logparse_free(&lp);
	free(buf);
	close(fd);
	return 0;
}
