/*
 * cmd_domains: `mxbait domains`: registrable domains (or IP literals) of the links in
 * captured mail, by how many messages advertised them: the list to report.
 */
#include <stdio.h>

#include "cli/cmd_analysis.h"

static const char usage[] = "[OPTIONS]";

int cmd_domains(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_parse_common(argc, argv, usage, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait domains: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	return aq_run(&o, "domains", &aq_domains, NULL, 0);
}
