/*
 * fuzz_analyze_message: libFuzzer target for the whole analysis of one message
 * (analyze_message: GMime, charsets, HTML through libxml2, link extraction and
 * normalisation, attachments, fingerprint) and its JSON rendering, and the HTML body
 * the dashboard's sandboxed view takes out (analyze_html_body, never over its bound).
 * Any bytes must give a result, never a crash, a leak, or a read out of bounds.
 * Limits are small so that each input stays fast.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool init;
	if (!init) {
		analyze_global_init();
		init = true;
	}
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	lim.max_parts = 64;
	lim.max_depth = 12;
	lim.max_decoded = 1u << 20;
	lim.max_text = 256u << 10;
	lim.max_links = 256;
	lim.max_recipients = 256;
	struct analysis *a = analyze_message(data, size, &lim, NULL);
	if (!a)
		abort();
	if (a->n_parts > lim.max_parts || a->n_links > lim.max_links ||
	    a->n_rcpts > lim.max_recipients)
		abort(); /* a limit was not kept */
	for (size_t i = 0; i < a->n_links; i++) {
		const char *u = a->links[i].norm;
		if (!u || (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0 &&
			   strncmp(u, "ftp://", 6) != 0))
			abort(); /* only web links come out */
	}
	struct buf out;
	buf_init(&out, 0);
	analysis_to_json(a, "fuzz", &out);
	buf_free(&out);
	analysis_free(&a);
	buf_init(&out, 0);
	bool cut = false;
	int h = analyze_html_body(data, size, 64u << 10, &out, &cut);
	if (h < -1 || h > 1 || out.len > (64u << 10) || (h <= 0 && out.len))
		abort();
	buf_free(&out);
	return 0;
}
