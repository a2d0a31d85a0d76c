/* fuzz_guard_policy: the guard's two policy request parsers on any bytes: Dovecot's
 * auth-policy JSON (with a query string cut from the input) and Postfix's policy
 * delegation lines (fed in pieces, several requests per input). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/dovecot_policy.h"
#include "guard/postfix_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Dovecot: the first byte chooses the query */
	static const char *const queries[] = { "command=allow", "command=report", "x=1&command=allow",
					       "", "command=", "command=allowx" };
	const char *q = size ? queries[data[0] % 6] : "";
	struct dp_request r;
	const char *why;
	char *body = malloc(size ? size : 1);
	memcpy(body, data, size);
	if (dovecot_policy_parse(q, body, size, &r, &why) == 0) {
		if (!r.remote[0] || strlen(r.login) >= sizeof(r.login))
			abort();
	}
	free(body);
	/* Postfix: fed in chunks of 1..17 bytes */
	struct pp_parser *p = malloc(sizeof(*p));
	postfix_policy_parser_init(p);
	size_t off = 0, step = size ? (size_t)(data[size - 1] % 17) + 1 : 1;
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		size_t used = 0;
		enum pp_result res = postfix_policy_feed(p, (const char *)data + off, n, &used, &why);
		if (used > n)
			abort();
		off += used;
		if (res == PP_ERROR) {
			postfix_policy_parser_init(p);
			if (!used)
				off++;
		} else if (res == PP_REQUEST) {
			memset(&p->req, 0, sizeof(p->req));
		}
	}
	free(p);
	return 0;
}
