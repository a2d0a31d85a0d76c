/*
 * cmd_campaigns: `mxbait campaigns`: campaigns (near-duplicate groups of captured
 * mail) by size, with their stable id, first-seen time, representative subject and
 * senders; `mxbait campaigns ID` lists one campaign's messages.
 */
#include <stdio.h>

#include "cli/cmd_analysis.h"

static const char usage[] = "[OPTIONS] [CAMPAIGN_ID]";

int cmd_campaigns(int argc, char **argv)
{
	struct cli_opts o;
	int r = cli_parse_common(argc, argv, usage, &o);
	if (r)
		return r < 0 ? 0 : r;
	if (o.argi + 1 < argc) {
		fprintf(stderr, "mxbait campaigns: unexpected argument '%s'\n", argv[o.argi + 1]);
		return 2;
	}
	if (o.argi < argc) {
		const char *params[] = {argv[o.argi]};
		return aq_run(&o, "campaigns", &aq_campaign_messages, params, 1);
	}
	return aq_run(&o, "campaigns", &aq_campaigns, NULL, 0);
}
