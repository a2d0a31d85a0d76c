/* libFuzzer target: SASL base64 and the PLAIN / CRAM-MD5 message splits. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/sasl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static unsigned char out[16384];
	static char enc[22000];
	size_t n;
	if (size > 12288)
		size = 12288;
	if (sasl_b64_decode((const char *)data, size, out, sizeof(out), &n) == 0) {
		/* What decodes re-encodes and decodes to the same bytes. */
		size_t el = sasl_b64_encode(out, n, enc);
		static unsigned char back[16384];
		size_t bn;
		if (sasl_b64_decode(enc, el, back, sizeof(back), &bn) != 0 || bn != n ||
		    memcmp(out, back, n) != 0)
			__builtin_trap();
	}
	struct sasl_slice z, u, p, d;
	if (sasl_plain_split(data, size, &z, &u, &p)) {
		if (z.len + u.len + p.len + 2 != size)
			__builtin_trap();
	}
	if (sasl_cram_split(data, size, &u, &d)) {
		if (d.len != 32 || u.len + 33 != size)
			__builtin_trap();
	}
	return 0;
}
