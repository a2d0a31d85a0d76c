/*
 * fuzz_arf_render: the ARF renderer over any captured message (the attacker's bytes).
 * Input: a first line of space-separated victim addresses, then the message.
 * Properties checked on every input: the report's own header block is exactly the
 * fixed list (the message cannot add a header); the closing boundary ends the report
 * and occurs once; with redaction, no victim address is in the report (or the
 * renderer refused it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "report/arf.h"

static const uint8_t secret[32] = {9};
static const struct report_identity id = {.hostname = "sensor.example.net",
					  .from = "abuse@sensor.example.net",
					  .org = "o", .secret = secret, .secret_len = 32};

/* The report may hold NUL bytes (the attached message's): search by length. */
static const char *memcase(const char *h, size_t hl, const char *n)
{
	size_t nl = strlen(n);
	for (size_t i = 0; nl && i + nl <= hl; i++)
		if (!strncasecmp(h + i, n, nl))
			return h + i;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1 << 20))
		return 0;
	const char *nl = memchr(data, '\n', size);
	size_t vl = nl ? (size_t)(nl - (const char *)data) : 0;
	char *vline = strndup((const char *)data, vl);
	const char *victims[8];
	size_t nv = 0;
	for (char *save = NULL, *t = strtok_r(vline, " ", &save); t && nv < 8;
	     t = strtok_r(NULL, " ", &save))
		if (strlen(t) >= 3 && strchr(t, '@') && !memchr(t, 0, strlen(t)))
			victims[nv++] = t;
	const char *msg = nl ? nl + 1 : (const char *)data;
	size_t mlen = nl ? size - vl - 1 : size;
	bool redact = size && (data[0] & 1);
	struct arf_message m = {.queue_id = "Q", .src_ip = "192.0.2.1", .src_port = 1,
				.arrival_us = 1795745564000000LL, .mail_from = "s@x.test",
				.rcpts = victims, .n_rcpts = nv, .msg = msg, .msg_len = mlen,
				.incidents = 1, .redact = redact};
	struct buf out;
	buf_init(&out, 0);
	char *err = NULL;
	int rc = arf_render(&id, &m, "0123456789abcdef0123456789abcdef", 1795746000000000LL, &out,
			    &err);
	if (rc == 0) {
		buf_putc(&out, 0);
		/* fixed header block */
		const char *end = strstr(out.data, "\r\n\r\n");
		if (!end)
			abort();
		size_t lines = 0;
		for (const char *p = out.data; p < end; p++)
			lines += *p == '\n';
		if (lines != 7) /* 7 fields, one folded: 8 lines, 7 inner CRLFs */
			abort();
		/* our own parameter, on the folded Content-Type line (a Subject has no tab) */
		const char *b = strstr(out.data, "\r\n\tboundary=\"");
		if (!b)
			abort();
		b += 3;
		char term[128];
		snprintf(term, sizeof(term), "\r\n--%.*s--\r\n", (int)strcspn(b + 10, "\""), b + 10);
		size_t tl = strlen(term), len = out.len - 1;
		/* the report ends with the closing boundary, which occurs nowhere else */
		if (len < tl || memcmp(out.data + len - tl, term, tl) ||
		    memmem(out.data, len - tl, term, tl))
			abort();
		if (redact)
			for (size_t i = 0; i < nv; i++)
				if (memcase(out.data, len, victims[i]))
					abort();
	}
	free(err);
	buf_free(&out);
	free(vline);
	return 0;
}
