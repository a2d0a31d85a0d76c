/*
 * fuzz_cli_escape: libFuzzer target for what the CLI does with attacker bytes: the
 * Subject parser (mail_header_value) and terminal escaping (term_escape).
 * Whatever the input: no crash, no read past the buffer, a header value of at most
 * 998 bytes, and escaped text made only of printable ASCII within its width.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "cli/spoolfile.h"
#include "cli/table.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_printable(const struct buf *b, size_t max)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] < 0x20 || (unsigned char)b->data[i] >= 0x7F)
			abort();
	if (max && b->len > max)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exact-size copy so ASan sees any overread. */
	char *msg = malloc(size ? size : 1);
	if (!msg)
		return 0;
	for (size_t i = 0; i < size; i++)
		msg[i] = (char)data[i];
	struct buf v, e;
	buf_init(&v, 0);
	buf_init(&e, 0);
	if (mail_header_value(msg, size, "Subject", &v) == 1 && v.len > 998)
		abort();
	const size_t widths[] = {0, 1, 3, 4, 5, 40, 200};
	for (size_t w = 0; w < sizeof(widths) / sizeof(widths[0]); w++) {
		buf_reset(&e);
		term_escape(&e, v.data ? v.data : "", v.len, widths[w]);
		check_printable(&e, widths[w]);
		buf_reset(&e);
		term_escape(&e, msg, size, widths[w]);
		check_printable(&e, widths[w]);
	}
	buf_free(&v);
	buf_free(&e);
	free(msg);
	return 0;
}
