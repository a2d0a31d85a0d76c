/* libFuzzer target: the SMTP command-line parsers (tokenizer, MAIL/RCPT/BDAT, UTF-8). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char line[4096];
	if (size >= sizeof(line))
		size = sizeof(line) - 1;
	memcpy(line, data, size);
	line[size] = '\0';
	(void)smtp_valid_utf8(line, size);
	(void)smtp_is_header_name(line);

	struct smtp_args a;
	char copy[4096];
	memcpy(copy, line, size + 1);
	size_t n = smtp_tokenize(copy, &a);
	for (size_t i = 0; i < n; i++) {
		/* Every token must be a NUL-terminated string of its length. */
		if (strlen(a.tok[i].s) != a.tok[i].len && a.tok[i].len != 3 && a.tok[i].len != 5)
			__builtin_trap();
	}
	char reply[SMTP_REPLY_MAX];
	struct smtp_path_req r;
	struct smtp_parse_limits lim = {.smtputf8 = size & 1, .auth_active = size & 2,
					.authenticated = size & 4};
	if (smtp_parse_mail(&a, &lim, &r, reply) != SMTP_PARSE_OK && strlen(reply) == 0)
		__builtin_trap();
	if (strlen(r.addr) >= sizeof(r.addr))
		__builtin_trap();
	(void)smtp_addr_domain(r.addr);
	(void)smtp_addr_is_postmaster(r.addr);
	(void)smtp_parse_rcpt(&a, &lim, &r, reply);
	struct smtp_bdat_req b;
	(void)smtp_parse_bdat(&a, &b, reply);
	return 0;
}
