/* reload: configuration reload for SIGHUP (see reload.h). */
#include "core/reload.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"

static const char *const restart_keys[] = { RELOAD_RESTART_KEYS };
#define N_RESTART (sizeof(restart_keys) / sizeof(restart_keys[0]))

static bool needs_restart(const char *key)
{
	for (size_t i = 0; i < N_RESTART; i++)
		if (!strcmp(restart_keys[i], key))
			return true;
	return false;
}

int reload_config(const struct mxb_config *cur, struct mxb_config *next, char **err_r)
{
	*err_r = NULL;
	config_defaults(next);
	if (cur->config_file && config_load(next, cur->config_file, err_r) != 0) {
		config_free(next);
		return -1;
	}
	const char *file = cur->config_file ? cur->config_file : "(defaults)";
	int changed = 0;
	for (size_t i = 0; config_key_name(i); i++) {
		const char *key = config_key_name(i);
		if (config_key_equal(cur, next, key))
			continue;
		if (needs_restart(key)) {
			log_msg(LOG_WARNING, NULL, "%s:%u: %s changed: it takes effect at the next "
				"restart (the running value stays)", file,
				config_key_line(next, key), key);
			config_key_copy(next, cur, key);
		} else {
			log_msg(LOG_INFO, NULL, "%s:%u: %s changed", file,
				config_key_line(next, key), key);
			changed++;
		}
	}
	return changed;
}

int reload_analyzer_changed(const struct mxb_config *a, const struct mxb_config *b)
{
	static const char *const keys[] = { "analyzer", "analyzer_max_depth",
		"analyzer_max_parts", "analyzer_max_decoded", "analyzer_max_text",
		"analyzer_max_links", "analyzer_max_recipients", "analyzer_psl_file" };
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!config_key_equal(a, b, keys[i]))
			return 1;
	return 0;
}
