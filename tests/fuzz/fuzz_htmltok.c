/*
 * fuzz_htmltok: libFuzzer target for the HTML tokenizer (src/analyze/htmltok.c).
 * Property, not just "no crash": tokenizing the input in two pieces (split where the
 * first byte says, the way an_html_feed hands over what a piece left unfinished) gives
 * exactly the events of tokenizing it whole.  Events are rendered to a buffer and
 * compared.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/htmltok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Adjacent text events are one text: how the tokenizer cuts text is not an event. */
struct rec {
	struct buf out;
	bool in_text;
};

static void on_start(void *ud, const char *name, const char **atts)
{
	struct rec *r = ud;
	r->in_text = false;
	buf_printf(&r->out, "<%s", name);
	for (size_t i = 0; atts && atts[i]; i += 2)
		buf_printf(&r->out, " %s=[%s]", atts[i], atts[i + 1]);
	buf_puts(&r->out, ">\n");
}

static void on_end(void *ud, const char *name)
{
	struct rec *r = ud;
	r->in_text = false;
	buf_printf(&r->out, "</%s>\n", name);
}

static void on_text(void *ud, const char *s, size_t n)
{
	struct rec *r = ud;
	if (!r->in_text)
		buf_puts(&r->out, "T:");
	r->in_text = true;
	buf_append(&r->out, s, n);
}

static const struct htok_cb cb = {on_start, on_end, on_text};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t split = 1 + (size_t)data[0] * (size - 1) / 255;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	if (split > n)
		split = n;
	struct rec whole = {.in_text = false}, parts = {.in_text = false};
	buf_init(&whole.out, 0);
	buf_init(&parts.out, 0);
	struct htok t;
	htok_init(&t);
	if (htok_run(&t, s, n, true, &cb, &whole) != n)
		abort();
	htok_free(&t);
	htok_init(&t);
	size_t used = htok_run(&t, s, split, false, &cb, &parts);
	if (used > split)
		abort();
	/* what was left, with the rest */
	if (htok_run(&t, s + used, n - used, true, &cb, &parts) != n - used)
		abort();
	htok_free(&t);
	if (whole.out.len != parts.out.len ||
	    (whole.out.len && memcmp(whole.out.data, parts.out.data, whole.out.len) != 0)) {
		size_t d = 0;
		while (d < whole.out.len && d < parts.out.len && whole.out.data[d] == parts.out.data[d])
			d++;
		size_t from = d > 60 ? d - 60 : 0;
		fprintf(stderr, "split at %zu (used %zu) differs at event byte %zu:\n", split, used, d);
		for (size_t k = from; k < d + 40 && k < whole.out.len; k++)
			fprintf(stderr, "%02x", (unsigned char)whole.out.data[k]);
		fprintf(stderr, "\n");
		for (size_t k = from; k < d + 40 && k < parts.out.len; k++)
			fprintf(stderr, "%02x", (unsigned char)parts.out.data[k]);
		fprintf(stderr, "\n");
		abort();
	}
	buf_free(&whole.out);
	buf_free(&parts.out);
	return 0;
}
