/*
 * wire: the analysis worker's messages (see analyzer.h, "With analyzer_user").
 *
 * A request (daemon side -> worker) carries the limits and one message's envelope (the descriptor of
 * the spool file travels beside it, SCM_RIGHTS); a result (worker -> daemon side) is
 * one whole struct analysis, so that adb_store() writes exactly what an in-process
 * analysis would.  Both are versioned: "MXAW", a version byte, a kind byte, then the
 * fields in a fixed order; integers little-endian, strings a u32 length (0xffffffff:
 * NULL) and their bytes.
 *
 * The worker parses hostile mail and may be under the attacker's control, so the
 * result decoder trusts nothing: the whole input is bounded (WIRE_RESULT_MAX), every
 * count by the analysis limits it was made with, every string by WIRE_STR_MAX (the
 * text by max_text) and has no NUL, hashes are lower-case hex of their exact length,
 * indexes (a link's parent and part, a part's parent, an attachment's part) point
 * inside the analysis, and trailing bytes are an error.  A rejected result is never
 * half-used: NULL and a reason.  tests/fuzz/fuzz_wire_result.c is its fuzz target.
 */
#ifndef MXB_ANALYZE_WIRE_H
#define MXB_ANALYZE_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "analyze/analyze.h"
#include "util/buf.h"

struct an_envelope;

#define WIRE_VERSION 1
#define WIRE_STR_MAX (1u << 20)          /* one header value, link, name, detail */
#define WIRE_RESULT_MAX (512u << 20)     /* a whole result, whatever the limits */
#define WIRE_REQUEST_MAX (16u << 20)     /* a whole request (the envelope) */
#define WIRE_ENV_RCPTS_MAX 100000
#define WIRE_FINDINGS_MAX 4096
#define WIRE_ATTACHMENTS_MAX 100000
#define WIRE_MEMBERS_MAX 65536           /* per attachment, nested archives included */

/* Append the encoded result for a to out.  0, or -1 (allocation). */
int wire_encode_result(const struct analysis *a, struct buf *out);
/* Decode a result made under the limits lim.  The analysis (free with analysis_free),
 * or NULL with *err_r (static text) saying what was wrong. */
struct analysis *wire_decode_result(const void *data, size_t len,
				    const struct analyze_limits *lim, const char **err_r);

/* A decoded request: the envelope and the strings it points to (owned). */
struct wire_request {
	struct analyze_limits lim; /* within config.c's bounds */
	int has_envelope;
	char *sender, *client_ip, *helo, *auth_user;
	char **recipients;
	size_t n_recipients;
};
/* Append the request for env (NULL: no envelope known), to be analysed under lim, to
 * out.  0, or -1. */
int wire_encode_request(const struct an_envelope *env, const struct analyze_limits *lim,
			struct buf *out);
/* 0 and *r filled, or -1 with *err_r. */
int wire_decode_request(const void *data, size_t len, struct wire_request *r,
			const char **err_r);
void wire_request_clear(struct wire_request *r);

#endif
