/*
 * dovecot_policy_parse: a Dovecot auth-policy request, parsed (see dovecot_policy.h).
 * Apart from the server so that tests and the fuzzer link it alone.
 */
#include "guard/dovecot_policy.h"

#include <string.h>

#include <jansson.h>

static void copy_str(json_t *root, const char *key, char *out, size_t outlen, bool *has_r)
{
	json_t *v = json_object_get(root, key);
	if (!json_is_string(v))
		return;
	size_t len = json_string_length(v);
	const char *s = json_string_value(v);
	if (memchr(s, '\0', len))
		len = strlen(s); /* an embedded NUL ends it */
	if (len >= outlen)
		len = outlen - 1;
	memcpy(out, s, len);
	out[len] = '\0';
	if (has_r)
		*has_r = true;
}

static int tri(json_t *root, const char *key)
{
	json_t *v = json_object_get(root, key);
	return json_is_boolean(v) ? json_is_true(v) : -1;
}

int dovecot_policy_parse(const char *query, const char *body, size_t len, struct dp_request *r,
			 const char **why_r)
{
	memset(r, 0, sizeof(*r));
	r->success = r->policy_reject = -1;
	*why_r = NULL;
	/* command=allow|report anywhere in the query (Dovecot appends it, after an
	 * operator's own parameters when the URL has some) */
	const char *q = query;
	while (q && *q) {
		const char *amp = strchr(q, '&');
		size_t l = amp ? (size_t)(amp - q) : strlen(q);
		if (l > 8 && !memcmp(q, "command=", 8) && l - 8 < sizeof(r->command)) {
			memcpy(r->command, q + 8, l - 8);
			r->command[l - 8] = '\0';
		}
		q = amp ? amp + 1 : NULL;
	}
	if (strcmp(r->command, "allow") && strcmp(r->command, "report")) {
		*why_r = "no command=allow or command=report";
		return -1;
	}
	if (len > DP_BODY_MAX) {
		*why_r = "body too large";
		return -1;
	}
	json_error_t err;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &err);
	if (!root) {
		*why_r = "not JSON";
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		*why_r = "not a JSON object";
		return -1;
	}
	copy_str(root, "login", r->login, sizeof(r->login), &r->has_login);
	copy_str(root, "pwhash", r->pwhash, sizeof(r->pwhash), &r->has_pwhash);
	copy_str(root, "remote", r->remote, sizeof(r->remote), NULL);
	copy_str(root, "protocol", r->protocol, sizeof(r->protocol), NULL);
	copy_str(root, "session_id", r->session_id, sizeof(r->session_id), NULL);
	r->success = tri(root, "success");
	r->policy_reject = tri(root, "policy_reject");
	json_decref(root);
	if (!r->remote[0]) {
		*why_r = "no remote address";
		return -1;
	}
	return 0;
}

