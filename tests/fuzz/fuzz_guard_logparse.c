/* fuzz_guard_logparse: the guard's log tokenizer (src/guard/logparse.c) on any bytes,
 * as lines of a file (split on \n, one parser state across them, so the counting of
 * attempts is exercised) and as one journal entry.  Every address it reports must be a
 * valid one, and nothing may be read past a line. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "guard/logparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct logparse *lp;
	if (!lp)
		lp = logparse_new();
	const char *p = (const char *)data, *end = p + size;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		/* a copy of exactly len bytes: ASan sees any read past the line */
		char *line = malloc(len ? len : 1);
		memcpy(line, p, len);
		struct log_obs o;
		enum log_kind k = logparse_line(lp, line, len, &o);
		if (k != LOG_NONE) {
			char ip[NETADDR_STRLEN];
			netaddr_format(&o.ip, ip, sizeof(ip));
			struct netaddr back;
			if (netaddr_parse(ip, &back) != 0 || !netaddr_is_host(&back))
				abort();
			if (o.attempts == 0 || strlen(o.username) >= sizeof(o.username))
				abort();
		}
		free(line);
		p += len + 1;
	}
	size_t cut = size ? data[0] % (size + 1) : 0;
	struct log_obs o;
	logparse_entry(lp, (const char *)data, cut > 128 ? 128 : cut, (const char *)data + cut,
		       size - cut, &o);
	return 0;
}
