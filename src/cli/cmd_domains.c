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
	static const char sql[] =
		"SELECT domain, count(DISTINCT message) AS messages, count(DISTINCT url) AS urls,"
		" group_concat(DISTINCT nullif(flag_names, '')) AS flags"
		" FROM links WHERE domain IS NOT NULL"
		" GROUP BY domain ORDER BY messages DESC, domain LIMIT ?1";
	static const struct aq_col cols[] = {{"DOMAIN", "domain", 48, false},
					     {"MSGS", "messages", 0, true},
					     {"URLS", "urls", 0, true},
					     {"FLAGS", "flags", 60, false}};
	return aq_run(&o, "domains", sql, NULL, 0, cols, 4, "no domains");
}
