/*
 * cmd_recipients: `mxbait recipients`: the addresses spammers sent to through the
 * honeypot (envelope, To, Cc, Bcc; deduplicated), i.e. the leaked list they bought;
 * `--by-domain` counts them per domain.
 */
#include <stdio.h>

#include "cli/cmd_analysis.h"

static const char usage[] = "[OPTIONS] [--domain DOMAIN] [--by-domain]";

int cmd_recipients(int argc, char **argv)
{
	const char *domain = NULL, *by_domain = NULL;
	const struct cli_option extra[] = {{"domain", true, &domain},
					   {"by-domain", false, &by_domain},
					   {NULL, false, NULL}};
	struct cli_opts o;
	int r = cli_parse(argc, argv, usage, extra, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi < argc) {
		fprintf(stderr, "mxbait recipients: unexpected argument '%s'\n", argv[o.argi]);
		return 2;
	}
	if (by_domain) {
		static const char sql[] =
			"SELECT domain, count(DISTINCT addr) AS addresses,"
			" count(DISTINCT message) AS messages FROM recipients"
			" GROUP BY domain ORDER BY addresses DESC, domain LIMIT ?1";
		static const struct aq_col cols[] = {{"DOMAIN", "domain", 48, false},
						     {"ADDRESSES", "addresses", 0, true},
						     {"MSGS", "messages", 0, true}};
		return aq_run(&o, "recipients", sql, NULL, 0, cols, 3, "no recipients");
	}
	static const char sql[] =
		"SELECT addr, max(name) AS name, count(DISTINCT message) AS messages,"
		" (CASE WHEN max(src & 1) THEN 'envelope ' ELSE '' END ||"
		"  CASE WHEN max(src & 2) THEN 'to ' ELSE '' END ||"
		"  CASE WHEN max(src & 4) THEN 'cc ' ELSE '' END ||"
		"  CASE WHEN max(src & 8) THEN 'bcc' ELSE '' END) AS seen_in"
		" FROM recipients WHERE (?2 IS NULL OR domain = lower(?2))"
		" GROUP BY addr ORDER BY messages DESC, addr LIMIT ?1";
	static const struct aq_col cols[] = {{"ADDRESS", "addr", 48, false},
					     {"NAME", "name", 32, false},
					     {"MSGS", "messages", 0, true},
					     {"SEEN IN", "seen_in", 0, false}};
	const char *params[] = {domain};
	return aq_run(&o, "recipients", sql, params, 1, cols, 4, "no recipients");
}
