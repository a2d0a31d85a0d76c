/*
 * attackers: attacking IPs and networks, the one rendering of `mxbait attackers`
 * (table or --json) and GET /api/v1/attackers (the same JSON object).
 */
#ifndef MXB_QUERY_ATTACKERS_H
#define MXB_QUERY_ATTACKERS_H

#include "query/intel.h"

/* The "ips" and "prefixes" sections into out (intel_begin'd by the caller on a
 * connection with db_register_functions(), in a read transaction). */
void query_attackers(struct intel_out *out);

#endif
