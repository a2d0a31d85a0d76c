/*
 * fuzz_config: libFuzzer target for config_parse() (src/core/config.c).
 * Any bytes must give either a validated config or an error message, never a crash,
 * a leak or an out-of-bounds read.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mxb_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	if (config_parse(&cfg, "fuzz.conf", (const char *)data, size, &err) != 0) {
		if (!err)
			abort(); /* every failure must explain itself */
	}
	free(err);
	config_free(&cfg);
	return 0;
}
