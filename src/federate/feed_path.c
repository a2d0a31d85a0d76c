/*
 * feed_path: request paths to published feed files (see feed_path.h).
 */
#include "federate/feed_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool fed_is_feed_request(const char *path)
{
	return !strncmp(path, "/feed/", 6) || !strcmp(path, "/feed");
}

void fed_segment_file(const char *data_dir, uint64_t seq, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/" FEED_DIR "/seg/%020llu", data_dir, (unsigned long long)seq);
}

void fed_manifest_file(const char *data_dir, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/" FEED_DIR "/manifest", data_dir);
}

int fed_request_file(const char *data_dir, const char *path, char *out, size_t outlen)
{
	if (strncmp(path, FEED_URL_PREFIX, strlen(FEED_URL_PREFIX)))
		return -1;
	const char *rest = path + strlen(FEED_URL_PREFIX);
	if (!strcmp(rest, "manifest")) {
		fed_manifest_file(data_dir, out, outlen);
		return 0;
	}
	if (strncmp(rest, "seg/", 4))
		return -1;
	const char *n = rest + 4;
	size_t len = strlen(n);
	if (len == 0 || len > 20 || n[0] == '0' || strspn(n, "0123456789") != len)
		return -1;
	unsigned long long seq = strtoull(n, NULL, 10);
	char back[24];
	snprintf(back, sizeof(back), "%llu", seq);
	if (strcmp(back, n)) /* overflowed */
		return -1;
	fed_segment_file(data_dir, seq, out, outlen);
	return 0;
}
