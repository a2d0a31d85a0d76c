/*
 * cmd_intel: what `mxbait indicators`, `mxbait export` and `mxbait report` share:
 * the configuration (allowlist, confidence floor, reporter keys) read from -c, and
 * intel.db opened with the sources attached and brought up to date.
 */
#ifndef MXB_CLI_CMD_INTEL_H
#define MXB_CLI_CMD_INTEL_H

#include <stdbool.h>

#include "core/config.h"
#include "intel/allowlist.h"

struct cli_opts;
struct sqlite3;

/* Defaults, then the -c file when given.  Returns 0, or 1 after printing the error. */
int intel_cli_config(const struct cli_opts *o, struct mxb_config *cfg);
/* Allowlist from the configuration.  Returns 0, or 1 after printing the error. */
int intel_cli_allowlist(const struct mxb_config *cfg, struct allowlist *al);
/* Open intel.db (created when missing) and, unless no_update, derive what is new
 * from mxbait.db and analysis.db.  NULL after printing the error.  When the data
 * directory is not writable, falls back to reading an existing intel.db as it is. */
struct sqlite3 *intel_cli_open(const struct cli_opts *o, bool no_update, const char *cmd);

#endif
