/* geoip: country lookups in a MaxMind DB file (see geoip.h). */
#include "web/geoip.h"

#include <maxminddb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct web_geoip {
	MMDB_s mmdb;
};

struct web_geoip *web_geoip_open(const char *path, char **err_r)
{
	*err_r = NULL;
	struct web_geoip *g = calloc(1, sizeof(*g));
	if (!g)
		return NULL;
	int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->mmdb);
	if (rc != MMDB_SUCCESS) {
		if (asprintf(err_r, "geoip_file %s: %s", path, MMDB_strerror(rc)) < 0)
			*err_r = NULL;
		free(g);
		return NULL;
	}
	return g;
}

void web_geoip_close(struct web_geoip **gp)
{
	if (!gp || !*gp)
		return;
	MMDB_close(&(*gp)->mmdb);
	free(*gp);
	*gp = NULL;
}

/* A UTF-8 string value at path, copied (cut to fit). */
static bool str_at(MMDB_entry_s *e, char *out, size_t len, const char *const *path)
{
	MMDB_entry_data_s d;
	if (MMDB_aget_value(e, &d, path) != MMDB_SUCCESS || !d.has_data ||
	    d.type != MMDB_DATA_TYPE_UTF8_STRING)
		return false;
	size_t n = d.data_size < len - 1 ? d.data_size : len - 1;
	memcpy(out, d.utf8_string, n);
	out[n] = '\0';
	return true;
}

bool web_geoip_lookup(void *arg, const char *ip, char iso[3], char *name, size_t name_len)
{
	struct web_geoip *g = arg;
	int gai = 0, mmerr = 0;
	MMDB_lookup_result_s r = MMDB_lookup_string(&g->mmdb, ip, &gai, &mmerr);
	if (gai || mmerr != MMDB_SUCCESS || !r.found_entry)
		return false;
	static const char *const p_iso[] = {"country", "iso_code", NULL};
	static const char *const p_name[] = {"country", "names", "en", NULL};
	char code[8];
	if (!str_at(&r.entry, code, sizeof(code), p_iso) || strlen(code) != 2)
		return false;
	memcpy(iso, code, 3);
	if (!str_at(&r.entry, name, name_len, p_name))
		snprintf(name, name_len, "%s", iso);
	return true;
}
