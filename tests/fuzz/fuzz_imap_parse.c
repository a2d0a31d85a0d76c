/*
 * libFuzzer target: the IMAP parsers alone (command with literals, sequence sets,
 * fetch attributes, dates, literal announcements), checking their promises: every
 * argument lies inside the command store and is NUL-terminated, lists count their
 * children, a parsed sequence set contains what its maximum says.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/imap_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk(const struct imap_command *c, const struct imap_arg *a, size_t n,
		 unsigned depth)
{
	size_t count = 0;
	if (depth > IMAP_MAX_DEPTH + 1)
		__builtin_trap();
	for (; a; a = a->next, count++) {
		if (a->type == IMAP_ARG_LIST) {
			walk(c, a->child, a->n_children, depth + 1);
			continue;
		}
		if (a->s < c->store || a->s + a->len >= c->store + c->store_cap || a->s[a->len])
			__builtin_trap();
	}
	if (count != n)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct imap_command *c = malloc(sizeof(*c));
	if (!c)
		return 0;
	c->store = NULL;
	if (imap_parse_command(s, size, c) == 0)
		walk(c, c->args, c->n_args, 0);
	if (c->tag_valid && !imap_tag_valid(c->tag, strlen(c->tag)))
		__builtin_trap();
	imap_command_clear(c);
	free(c);

	struct imap_seqset ss;
	if (imap_seqset_parse(s, size, &ss) == 0) {
		uint32_t mx = imap_seqset_max(&ss, 1000);
		if (mx == 0 || !imap_seqset_contains(&ss, mx, 1000))
			__builtin_trap();
	}
	struct imap_fetch_att att;
	if (imap_fetch_att_parse(s, size, &att) == 0) {
		if (att.n_path > IMAP_FETCH_MAX_PATH || att.n_fields > IMAP_FETCH_MAX_FIELDS)
			__builtin_trap();
		for (size_t i = 0; i < att.n_fields; i++)
			if (att.fields[i].p < s || att.fields[i].p + att.fields[i].len > s + size)
				__builtin_trap();
	}
	int64_t t;
	(void)imap_parse_date(s, size, &t);
	(void)imap_parse_datetime(s, size, &t);
	uint64_t n;
	bool ns, bad;
	(void)imap_line_literal(s, size, &n, &ns, &bad);
	return 0;
}
