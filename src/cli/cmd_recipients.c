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
	if (by_domain)
		return aq_run(&o, "recipients", &aq_recipient_domains, NULL, 0);
	const char *params[] = {domain};
	return aq_run(&o, "recipients", &aq_recipients, params, 1);
}
