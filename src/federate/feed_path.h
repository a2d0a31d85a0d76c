/*
 * feed_path: where the files of this sensor's published feed live, and the one
 * mapping from a request path (/feed/v1/...) to such a file, for the web server.
 *
 * DATA_DIR/feed/manifest and DATA_DIR/feed/seg/NNNNNNNNNNNNNNNNNNNN (the sequence
 * number, 20 digits) are written by the reporter (federate/publish.c) and only read
 * by the daemon's web server: the network-facing process never holds the signing key.
 * The mapping accepts exactly "/feed/v1/manifest" and "/feed/v1/seg/N" (N: 1 to 20
 * digits, no sign, no leading zero); anything else is not a feed file.
 */
#ifndef MXB_FEDERATE_FEED_PATH_H
#define MXB_FEDERATE_FEED_PATH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEED_URL_PREFIX "/feed/v1/"
#define FEED_DIR "feed"

/* Is path under the feed's URL space (then the web server answers it here)? */
bool fed_is_feed_request(const char *path);
/* The file for a request path into out; 0, or -1 when it names no feed file. */
int fed_request_file(const char *data_dir, const char *path, char *out, size_t outlen);
/* The file of segment seq, and of the manifest. */
void fed_segment_file(const char *data_dir, uint64_t seq, char *out, size_t outlen);
void fed_manifest_file(const char *data_dir, char *out, size_t outlen);

#endif
