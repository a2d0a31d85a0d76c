/*
 * htmltok: a streaming HTML tokenizer (start tags with attributes, end tags, text), for
 * the analyzer's one pass over an HTML part (html.c).  Not a tree builder.
 *
 * Promises: any bytes are accepted; element and attribute names come in ASCII lower
 * case; attribute values and text come with character references decoded (UTF-8);
 * script/style content comes as text between the start and end callbacks; work is
 * linear in the input.  Feeding: htok_run() returns how many bytes it used; the caller
 * gives the rest again with more bytes (final = false), or with final = true at the
 * end of the part, when everything is used.
 */
#ifndef MXB_ANALYZE_HTMLTOK_H
#define MXB_ANALYZE_HTMLTOK_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct htok_cb {
	/* atts: name, value pairs, NULL-terminated; NULL when the tag has none */
	void (*start)(void *ud, const char *name, const char **atts);
	void (*end)(void *ud, const char *name);
	void (*text)(void *ud, const char *s, size_t n);
};

struct htok {
	char raw_end[16];  /* "</script" while inside raw text, else "" */
	bool rcdata;       /* textarea/title: references decoded */
	struct buf scratch;
};

void htok_init(struct htok *t);
void htok_free(struct htok *t);
size_t htok_run(struct htok *t, const char *s, size_t n, bool final, const struct htok_cb *cb,
		void *ud);

#endif
