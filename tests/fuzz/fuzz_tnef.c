/*
 * fuzz_tnef: libFuzzer target for one attachment parser path of the analyzer: TNEF (winmail.dat): attributes, MAPI property blocks, compressed RTF (LZFu), the attachments unpacked from it.
 * Any bytes must give a result within the limits, never a crash, a leak, a hang or a
 * read out of bounds.  Seeds: tests/fuzz/corpus/fuzz_tnef (written by
 * tests/analyze/attachments/make-fixtures.py).
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
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	lim.max_decoded = 4u << 20;
	lim.max_text = 256u << 10;
	lim.max_links = 256;
	struct analysis *a = analyze_attachment(data, size, "winmail.dat", &lim);
	if (!a)
		abort();
	if (a->n_links > lim.max_links)
		abort();
	for (size_t i = 0; i < a->n_links; i++)
		if (!a->links[i].norm || !strstr(a->links[i].norm, "://"))
			abort();
	struct buf out;
	buf_init(&out, 0);
	analysis_to_json(a, "fuzz", &out);
	buf_free(&out);
	analysis_free(&a);
	return 0;
}
