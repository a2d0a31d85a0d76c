/*
 * fuzz_wire_result: libFuzzer target for the decoder of the analysis worker's results
 * (analyze/wire.h): the bytes a compromised worker sends to the daemon side.
 * Any input must be refused or give an analysis that is within the limits, whose
 * indexes point inside it, that prints as JSON, and that encodes back to exactly the
 * input (the format has one encoding per analysis); never a crash, a leak, or an
 * allocation the input's length does not pay for.  The limits come from the input's
 * first bytes (within config.c's bounds, small ones most often).  Seeds:
 * tests/fuzz/corpus/fuzz_wire_result (written by tests/unit/test_wire with
 * MXBAIT_WIRE_CORPUS=DIR, prefixed by one zero byte: the default limits).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/analyze.h"
#include "analyze/wire.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	struct analyze_limits lim;
	analyze_limits_default(&lim);
	uint8_t sel = data[0];
	if (sel) { /* small limits: the bounds are reached with small inputs */
		lim.max_parts = 1u + (sel & 7u);
		lim.max_links = 1u + ((sel >> 3) & 7u);
		lim.max_recipients = 1u + ((sel >> 6) & 3u);
		lim.max_text = 64;
		lim.max_depth = 4;
	}
	data++;
	size--;
	const char *err = NULL;
	struct analysis *a = wire_decode_result(data, size, &lim, &err);
	if (!a) {
		if (!err)
			abort();
		return 0;
	}
	if (err || a->n_parts > lim.max_parts || a->n_links > lim.max_links ||
	    a->n_rcpts > lim.max_recipients || a->text.len > lim.max_text ||
	    strlen(a->msg_sha256) != 64)
		abort();
	for (size_t i = 0; i < a->n_links; i++)
		if (a->links[i].parent >= (int)a->n_links || a->links[i].parent < -1 ||
		    a->links[i].part >= (int)a->n_parts || !a->links[i].norm)
			abort();
	for (size_t i = 0; i < a->n_atts; i++)
		if (a->atts[i].part >= (int)a->n_parts)
			abort();
	struct buf out;
	buf_init(&out, 0);
	analysis_to_json(a, "fuzz", &out);
	buf_reset(&out);
	if (wire_encode_result(a, &out) != 0 || out.len != size ||
	    memcmp(out.data, data, size) != 0)
		abort();
	buf_free(&out);
	analysis_free(&a);
	return 0;
}
