/*
 * auth: who may use the web server, and how hard they may try.
 *
 * Credentials come from web_auth (NAME:ROLE:HASH): a crypt(3) hash checks HTTP Basic
 * passwords (yescrypt, SHA-crypt, bcrypt: libxcrypt), sha256:HEX checks bearer tokens
 * (`Authorization: Bearer TOKEN`, SHA-256 of the token compared).  Every comparison is
 * constant-time (CRYPTO_memcmp) and every entry is tried, so timing says nothing about
 * which names exist; an unknown Basic user still costs one crypt() of a dummy hash.
 *
 * crypt() is slow on purpose: web_auth_check() runs on a web worker thread, never on
 * the network loop.  A successful check is remembered (an HMAC of the header value, 5
 * minutes) so a polling dashboard does not pay it per request.  Failures are counted
 * per client address: past web_auth_failures in a minute the address gets 429 until
 * the minute is over, before any hash is computed.
 *
 * Roles: read (every GET) and admin (also actions: POST under /api/v1/actions/, each
 * with the CSRF token that GET /api/v1/whoami gives).  Thread-safe: a mutex guards the
 * cache and the failure table.
 */
#ifndef MXB_WEB_AUTH_H
#define MXB_WEB_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* feed: a peer's login, allowed /feed/v1/ only (docs/federation.md). */
enum web_role { WEB_ROLE_NONE = 0, WEB_ROLE_READ = 1, WEB_ROLE_ADMIN = 2, WEB_ROLE_FEED = 3 };

struct web_auth;

/* entries: web_auth values (validated by the config parser).  failures_per_min: the
 * rate limit.  NULL on out of memory or a malformed entry (*why set). */
struct web_auth *web_auth_new(char *const *entries, size_t n, unsigned failures_per_min,
			      const char **why);
void web_auth_free(struct web_auth **a);
/* Any credential configured? (Without: loopback clients get the read role.) */
bool web_auth_required(const struct web_auth *a);

/* The role an Authorization header value grants (NULL header: none).  name_r (size
 * 65) gets the credential's name.  Slow (crypt): worker threads only. */
enum web_role web_auth_check(struct web_auth *a, const char *authz, char name_r[65]);

/* Only the remembered logins (no hash computed: safe on the network loop): the role,
 * or WEB_ROLE_NONE when the header is not one that checked good recently. */
enum web_role web_auth_check_cached(struct web_auth *a, const char *authz, char name_r[65]);

/* Rate limit: true while ip has used up its failures this minute. */
bool web_auth_blocked(struct web_auth *a, const char *ip, int64_t now_ms);
void web_auth_failed(struct web_auth *a, const char *ip, int64_t now_ms);

/* The CSRF token of a credential name: hex HMAC-SHA256 under a per-process key
 * (size 65). */
void web_auth_csrf(struct web_auth *a, const char *name, char out[65]);
/* Constant-time check of a presented CSRF token. */
bool web_auth_csrf_ok(struct web_auth *a, const char *name, const char *token);

const char *web_role_name(enum web_role r);

#endif
