/*
 * dovecot_policy: the Dovecot authentication policy server (auth_policy_server_url),
 * HTTP/JSON on libevent's evhttp, served by `mxbait serve` on its event loop.
 *
 * Dovecot POSTs a JSON object to URL?command=allow before it authenticates (and
 * command=report after, with "success") carrying at least login, pwhash, remote and
 * protocol (its default auth_policy_request_attributes).  The answer is
 * {"status":N,"msg":"..."}: 0 allow, N > 0 delay N seconds, N < 0 reject.  Because
 * Postfix usually authenticates through Dovecot SASL, this one hook sees SMTP AUTH,
 * IMAP and POP3 logins live.
 *
 * Bounded and authenticated: POST only, the X-API-Key header must equal
 * dovecot_policy_api_key (compared in constant time; Dovecot sends it with
 * auth_policy_server_api_header = X-API-Key: KEY), bodies over 64 KiB and headers
 * over 8 KiB are refused by evhttp, a request must arrive within 10 s, JSON is parsed
 * by jansson with duplicate keys refused, strings are cut to their field's size.  A
 * request it cannot use is answered {"status":0} (fail open, as Dovecot's own
 * auth_policy_reject_on_fail = no would) with a 400 status code.
 */
#ifndef MXB_GUARD_DOVECOT_POLICY_H
#define MXB_GUARD_DOVECOT_POLICY_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;
struct mxb_config;
struct guard;
struct dovecot_policy;

#define DP_BODY_MAX (64 * 1024)

/* One parsed request (the fields the guard uses; strings NUL-terminated). */
struct dp_request {
	char command[16];   /* allow, report */
	char login[256];
	char pwhash[160];
	char remote[64];
	char protocol[32];
	char session_id[64];
	bool has_login, has_pwhash;
	int success;        /* -1 absent, 0, 1 */
	int policy_reject;  /* -1 absent, 0, 1 */
};

/* Parse the query string (e.g. "command=allow") and body.  0, or -1 with *why_r a
 * static reason when the request cannot be used. */
int dovecot_policy_parse(const char *query, const char *body, size_t len, struct dp_request *r,
			 const char **why_r);

struct dovecot_policy *dovecot_policy_new(struct event_base *base, const struct mxb_config *cfg,
					  struct guard *g, char **err_r);
void dovecot_policy_free(struct dovecot_policy **dp);

#endif
