/*
 * cli: the mxbait subcommands, git-style, one file per command (cmd_*.c).
 *
 * Every command is a table entry in cli.c: name, one-line summary, usage, and a
 * main-like function that gets argv starting at the command name.  Commands that read
 * the data directory share the helpers below, so a missing or corrupt directory gives
 * the same clear error everywhere.  Exit codes: 0 ok, 1 runtime error, 2 usage error.
 */
#ifndef MXB_CLI_CLI_H
#define MXB_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct sqlite3;

struct cli_command {
	const char *name;
	const char *summary;
	const char *usage; /* after "mxbait NAME " */
	int (*run)(int argc, char **argv);
};

extern const struct cli_command cli_commands[];

int cmd_serve(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_sessions(int argc, char **argv);
int cmd_messages(int argc, char **argv);
int cmd_show(int argc, char **argv);
/* analysis (src/analyze): cmd_analyze.c, cmd_urls.c, cmd_domains.c, ... */
int cmd_analyze(int argc, char **argv);
int cmd_urls(int argc, char **argv);
int cmd_domains(int argc, char **argv);
int cmd_recipients(int argc, char **argv);
int cmd_campaigns(int argc, char **argv);
/* brute-force intelligence (auth_attempts, probes, accounts): cmd_creds.c,
 * cmd_attackers.c, sharing intel.c */
int cmd_creds(int argc, char **argv);
int cmd_attackers(int argc, char **argv);
/* operations: cmd_check.c */
int cmd_check(int argc, char **argv);

/* The configuration file a command reads when no -c is given: $MXBAIT_CONFIG when set
 * ("" for none: the embedded defaults), else /etc/mxbait/mxbait.conf when it exists;
 * NULL for none. */
const char *cli_default_config(void);
/* the guard's decisions (src/intel/decision.h): cmd_decisions.c */
int cmd_decisions(int argc, char **argv);
/* the backend hand-off worker (src/guard/handoff.h), a child of serve: cmd_handoff.c */
int cmd_handoff(int argc, char **argv);
/* intel and reporting (src/intel, src/report): cmd_indicators.c, cmd_export.c,
 * cmd_report.c, sharing cmd_intel.h */
int cmd_indicators(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_report(int argc, char **argv);
/* federation and the hub (src/federate): cmd_keys.c, cmd_peers.c, cmd_hub.c */
int cmd_keys(int argc, char **argv);
int cmd_peers(int argc, char **argv);
int cmd_hub(int argc, char **argv);
/* storage: retention now, online backup (cmd_prune.c, cmd_backup.c) */
int cmd_prune(int argc, char **argv);
int cmd_backup(int argc, char **argv);

/* Common options of the reading commands: -d DIR / --data-dir DIR, -c FILE /
 * --config FILE (to find data_dir), --json, -n N / --limit N. */
struct cli_opts {
	const char *data_dir;
	const char *config;
	bool json;
	long limit;
	bool limit_given; /* -n/--limit was on the command line */
	int argi; /* index of the first non-option argument */
	unsigned long long spool_budget; /* from the config file; 0 when not read */
	/* distributed_window (ms) and distributed_min_ips from the config file (-c);
	 * 0 when not read */
	unsigned distributed_window_ms, distributed_min_ips;
	bool config_read;      /* -c was read: the values from it are valid */
	uint64_t retention_ms; /* from the config file (prune) */
	const char *event_log; /* from the config file ("" = none); NULL when not read */
};
/* Parse the common options (options and arguments may be mixed: arguments are moved
 * to argv[argi..]); with -c and no -d, data_dir comes from the config file.
 * Returns 0 to go on, 2 after printing a usage error, 1 when the config file is bad,
 * -1 after --help printed the usage (the command then exits 0). */
int cli_parse_common(int argc, char **argv, const char *usage, struct cli_opts *o);

/* A command's own long options, parsed together with the common ones. */
struct cli_option {
	const char *name;     /* without "--"; NULL ends the list */
	bool has_arg;
	const char **value_r; /* the argument, or "" for a flag that was given */
};
int cli_parse(int argc, char **argv, const char *usage, const struct cli_option *extra,
	      struct cli_opts *o);
/* <data_dir>/rel, malloc'd. */
char *cli_data_path(const struct cli_opts *o, const char *rel);
/* Usage error for a missing positional argument; returns 2. */
int cli_missing_arg(const char *name, const char *usage, const char *what);
/* Open <data_dir>/mxbait.db read-only and check its schema.  On failure prints a
 * clear message ("no data directory at X: run mxbait serve first", "X is not an
 * mxbait database") and returns NULL. */
struct sqlite3 *cli_open_db(const struct cli_opts *o);
void cli_usage(FILE *f, const struct cli_command *c);

/* Print the JSON a query wrote into b (status from query/query.h): on QUERY_OK the
 * text and a newline on stdout; otherwise the error on stderr ("no analysis yet" for
 * QUERY_NO_ANALYSIS).  Returns the exit status (0 or 1) and frees b and err. */
struct buf;
int cli_print_query(int status, struct buf *b, struct buf *err, const char *cmd);

#endif
