/*
 * postfix_policy_parse: Postfix's policy delegation requests, parsed (see
 * postfix_policy.h).  Apart from the server so that tests and the fuzzer link it alone.
 */
#include "guard/postfix_policy.h"

#include <stddef.h>
#include <string.h>

void postfix_policy_parser_init(struct pp_parser *p)
{
	memset(p, 0, sizeof(*p));
}

static void set_field(char *dst, size_t dlen, const char *v, size_t vl)
{
	if (vl >= dlen)
		vl = dlen - 1;
	memcpy(dst, v, vl);
	dst[vl] = '\0';
}

/* One "name=value" line (without its newline). */
static int attr(struct pp_parser *p, const char *s, size_t len, const char **why_r)
{
	const char *eq = memchr(s, '=', len);
	if (!eq || eq == s) {
		*why_r = "a line is not name=value";
		return -1;
	}
	if (++p->req.n_attrs > PP_ATTRS_MAX) {
		*why_r = "too many attributes";
		return -1;
	}
	size_t nl = (size_t)(eq - s);
	const char *v = eq + 1;
	size_t vl = len - nl - 1;
	static const struct { const char *name; size_t off, size; } fields[] = {
#define F(n) { #n, offsetof(struct pp_request, n), sizeof(((struct pp_request *)0)->n) }
		F(request), F(protocol_state), F(client_address), F(client_port), F(recipient),
		F(sender), F(instance), F(policy_context), F(sasl_username),
#undef F
	};
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		if (strlen(fields[i].name) == nl && !memcmp(fields[i].name, s, nl)) {
			set_field((char *)&p->req + fields[i].off, fields[i].size, v, vl);
			return 0;
		}
	}
	return 0; /* an attribute we do not use */
}

enum pp_result postfix_policy_feed(struct pp_parser *p, const char *data, size_t len,
				   size_t *used_r, const char **why_r)
{
	size_t i = 0;
	*why_r = NULL;
	while (i < len) {
		char c = data[i++];
		if (++p->total > PP_REQUEST_MAX) {
			*why_r = "request too large";
			*used_r = i;
			return PP_ERROR;
		}
		if (c == '\0') {
			*why_r = "NUL byte";
			*used_r = i;
			return PP_ERROR;
		}
		if (c != '\n') {
			if (p->len + 1 >= sizeof(p->line)) {
				*why_r = "line too long";
				*used_r = i;
				return PP_ERROR;
			}
			p->line[p->len++] = c;
			continue;
		}
		size_t ll = p->len;
		if (ll && p->line[ll - 1] == '\r')
			ll--;
		p->len = 0;
		if (ll == 0) {
			*used_r = i;
			if (p->req.n_attrs == 0) {
				*why_r = "empty request";
				return PP_ERROR;
			}
			p->total = 0;
			return PP_REQUEST;
		}
		if (attr(p, p->line, ll, why_r) != 0) {
			*used_r = i;
			return PP_ERROR;
		}
	}
	*used_r = i;
	return PP_MORE;
}

