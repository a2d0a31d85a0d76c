/*
 * cmd_export: `mxbait export --format F [-o PATH] [--kind K,...] [--since DURATION]
 * [--min-confidence N] [--no-update]`: the indicators in a format a firewall, MTA,
 * resolver, DNSBL server or threat-intelligence platform reads (src/report/export.h).
 * The confidence floor defaults to export_min_confidence, the allowlist comes from the
 * configuration (-c), and stdout is used unless -o is given (then the file is written
 * whole and renamed into place).
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "cli/intel.h"
#include "intel/indicator.h"
#include "report/export.h"
#include "store/event.h"

static const char usage[] = "--format F [-o PATH] [OPTIONS] [--kind K,...] [--since DURATION] "
			    "[--min-confidence N] [--no-update] [--include-peer]";

int cmd_export(int argc, char **argv)
{
	const char *format = NULL, *out = NULL, *kind = NULL, *since = NULL, *minc = NULL,
		   *noup = NULL, *peer = NULL;
	const struct cli_option extra[] = {
		{"format", true, &format}, {"output", true, &out},
		{"kind", true, &kind},     {"since", true, &since},
		{"min-confidence", true, &minc}, {"no-update", false, &noup},
		{"include-peer", false, &peer},
		{NULL, false, NULL},
	};
	/* -o is short for --output (cli_parse knows only the common short options). */
	for (int i = 1; i + 1 < argc; i++)
		if (!strcmp(argv[i], "-o")) {
			out = argv[i + 1];
			for (int j = i; j + 2 <= argc; j++)
				argv[j] = argv[j + 2];
			argc -= 2;
			break;
		}
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (!format)
		return cli_missing_arg("export", usage, "--format");
	int fmt = export_format_parse(format);
	if (fmt < 0) {
		fprintf(stderr, "mxbait export: unknown format '%s' (%s)\n", format,
			export_format_list());
		return 2;
	}
	struct export_opts eo = {.format = (enum export_format)fmt, .out_path = out,
				 .out = stdout, .data_dir = o.data_dir};
	if (peer) {
		if (!export_keeps_peer(eo.format)) {
			fprintf(stderr, "mxbait export: --include-peer: %s is a sharing format; "
					"what peers said is never passed on (docs/federation.md)\n",
				format);
			return 2;
		}
		eo.include_peer = true;
	}
	if (kind) {
		const char *bad = NULL;
		eo.kinds = indicator_kinds_parse(kind, &bad);
		if (!eo.kinds) {
			fprintf(stderr, "mxbait export: unknown kind '%s'\n", bad ? bad : kind);
			return 2;
		}
	}
	if (since) {
		int64_t us;
		if (intel_parse_duration(since, &us) < 0) {
			fprintf(stderr, "mxbait export: bad --since '%s'\n", since);
			return 2;
		}
		eo.since_us = mxb_now_us() - us;
	}
	struct mxb_config cfg;
	if (intel_cli_config(&o, &cfg)) {
		config_free(&cfg);
		return 1;
	}
	eo.min_confidence = (int)cfg.export_min_confidence;
	if (minc) {
		long v;
		if (intel_parse_count(minc, 0, &v) < 0 || v > 100) {
			fprintf(stderr, "mxbait export: bad --min-confidence '%s' (0-100)\n", minc);
			config_free(&cfg);
			return 2;
		}
		eo.min_confidence = (int)v;
	}
	struct allowlist al;
	if (intel_cli_allowlist(&cfg, &al)) {
		config_free(&cfg);
		return 1;
	}
	eo.allowlist = &al;
	eo.hostname = cfg.hostname;
	char *evlog = strdup(cfg.event_log ? cfg.event_log : "");
	if (evlog && *evlog)
		eo.event_log = evlog;
	sqlite3 *db = NULL;
	if (eo.format != EXP_FAIL2BAN) {
		db = intel_cli_open(&o, noup != NULL, "export");
		if (!db) {
			allowlist_free(&al);
			config_free(&cfg);
			free(evlog);
			return 1;
		}
	}
	struct export_stats st;
	char *err = NULL;
	rc = export_run(db, &eo, &st, &err) < 0 ? 1 : 0;
	if (rc)
		fprintf(stderr, "mxbait export: %s\n", err ? err : "failed");
	else if (out)
		fprintf(stderr, "mxbait export: %s: %ld entries written, %ld allowlisted, %ld not "
				"expressible in the format\n", out, st.written, st.refused, st.skipped);
	free(err);
	sqlite3_close(db);
	allowlist_free(&al);
	config_free(&cfg);
	free(evlog);
	return rc;
}
