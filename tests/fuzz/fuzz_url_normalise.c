/*
 * fuzz_url_normalise: libFuzzer target for the URL normaliser, the redirector
 * unwrapper and the text scanner.  Properties checked, not just "no crash":
 * normalising a normalised URL gives it back unchanged (idempotence), the result is
 * NUL-free ASCII, and every span the scanner reports lies inside the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze_private.h"
#include "analyze/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *g_base;
static size_t g_size;

static void check(const char *s, size_t len)
{
	struct url_norm n, n2;
	if (url_normalise(s, len, &n) != URL_OK)
		return;
	for (const char *p = n.norm; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			abort(); /* the canonical form is printable ASCII */
	if (url_normalise(n.norm, strlen(n.norm), &n2) != URL_OK)
		abort();
	if (strcmp(n.norm, n2.norm) != 0) {
		fprintf(stderr, "not idempotent: %s -> %s\n", n.norm, n2.norm);
		abort();
	}
	char *u = url_unwrap(&n);
	if (u) {
		struct url_norm n3;
		if (url_normalise(u, strlen(u), &n3) == URL_OK)
			url_norm_clear(&n3);
		free(u);
	}
	url_norm_clear(&n2);
	url_norm_clear(&n);
}

static void on_span(void *arg, const char *raw, size_t rlen, const char *clean, size_t clen,
		    unsigned flags)
{
	if (raw < g_base || raw + rlen > g_base + g_size)
		abort();
	check(clean, clen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		url_psl_init(NULL);
		init = true;
	}
	check((const char *)data, size);
	if (size < 65536) {
		g_base = (const char *)data;
		g_size = size;
		an_scan_text((const char *)data, size, on_span, NULL);
	}
	return 0;
}
