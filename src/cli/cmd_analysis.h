/*
 * cmd_analysis: what the analysis query commands (urls, domains, recipients,
 * campaigns) share: run one of the shared analysis queries (query/query.h: the same
 * SQL and JSON as the web API) over <data_dir>/analysis.db and print its rows as an
 * escaped table or as a JSON array.  ?1 is bound to the row limit, ?2.. to the given
 * text parameters (NULL binds NULL).
 */
#ifndef MXB_CLI_CMD_ANALYSIS_H
#define MXB_CLI_CMD_ANALYSIS_H

#include <stdbool.h>
#include <stddef.h>

#include "cli/cli.h"
#include "query/query.h"

/* Run one query of query/query.h (aq_urls, aq_domains, ...) over analysis.db. */
int aq_run(const struct cli_opts *o, const char *cmd, const struct aq_def *d,
	   const char *const *params, size_t nparams);

#endif
