/*
 * cmd_analysis: what the analysis query commands (urls, domains, recipients,
 * campaigns) share: run one SQL query over <data_dir>/analysis.db and print its rows
 * as an escaped table or as a JSON array.  ?1 is bound to the row limit, ?2.. to the
 * given text parameters (NULL binds NULL).
 */
#ifndef MXB_CLI_CMD_ANALYSIS_H
#define MXB_CLI_CMD_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"

struct aq_col {
	const char *head;   /* table heading */
	const char *json;   /* JSON key */
	size_t max;         /* widest cell, 0: table default */
	bool right;         /* right-aligned (numbers) */
};

int aq_run(const struct cli_opts *o, const char *cmd, const char *sql,
	   const char *const *params, size_t nparams, const struct aq_col *cols, size_t ncols,
	   const char *empty);

#endif
