/*
 * creds: password-guessing intelligence, the one rendering of `mxbait creds` (table or
 * --json) and GET /api/v1/credentials (the same JSON object).
 */
#ifndef MXB_QUERY_CREDS_H
#define MXB_QUERY_CREDS_H

#include <stdint.h>

#include "query/intel.h"

#define QUERY_CREDS_DEFAULT_WINDOW_US (3600LL * 1000000)
#define QUERY_CREDS_DEFAULT_MIN_IPS 5

struct query_creds_args {
	int64_t since_us;  /* 0: everything */
	int64_t window_us; /* distributed-attack window */
	long min_ips;      /* distinct IPs within a window that flag a username */
	const char *data_dir; /* for the Subject of a cracked account's last message */
};

/* Every section into out (intel_begin'd by the caller, in a read transaction).
 * Returns 0, or -1 when the statements could not be prepared (message on stderr). */
int query_creds(struct intel_out *out, const struct query_creds_args *a);

#endif
