/*
 * fuzz_netaddr: libFuzzer target for util/netaddr.  Properties checked, not just "no
 * crash": whatever parses formats to text that parses back to the same value (the
 * canonical form is a fixed point), its prefix contains itself, and a list parse is
 * all-or-nothing.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/netaddr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct netaddr a, b, p;
	char text[NETADDR_STRLEN], again[NETADDR_STRLEN];
	if (netaddr_parse_n((const char *)data, size, &a) == 0) {
		netaddr_format(&a, text, sizeof(text));
		if (netaddr_parse(text, &b) || !netaddr_equal(&a, &b))
			abort();
		if (strcmp(netaddr_format(&b, again, sizeof(again)), text))
			abort();
		netaddr_prefix(&a, a.bits / 2, &p);
		if (!netaddr_contains(&p, &a) || !netaddr_contains(&a, &a))
			abort();
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';
	struct netset set;
	netset_init(&set);
	const char *bad = NULL;
	size_t bad_len = 0;
	if (netset_parse_list(&set, s, &bad, &bad_len) == 0) {
		for (size_t i = 0; i < set.n; i++)
			if (!netset_contains(&set, &set.v[i]))
				abort();
	} else if (set.n != 0 || bad < s || bad + bad_len > s + size) {
		abort();
	}
	netset_free(&set);
	free(s);
	return 0;
}
