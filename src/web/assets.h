/*
 * assets: the dashboard's files (src/web/static/), embedded in the binary at build
 * time by embed.py (a meson custom_target; no network, no toolchain beyond Python).
 */
#ifndef MXB_WEB_ASSETS_H
#define MXB_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *name; /* file name under static/ */
	const char *type; /* Content-Type */
	const unsigned char *data;
	size_t len;
};

extern const struct web_asset web_assets[];
extern const size_t web_n_assets;

#endif
