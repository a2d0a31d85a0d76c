/*
 * cmd_campaigns: `mxbait campaigns`: campaigns (near-duplicate groups of captured
 * mail) by size, with their stable id, first-seen time, representative subject and
 * senders; `mxbait campaigns ID` lists one campaign's messages (the id of a campaign
 * merged into another lists the one it was merged into).
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
		static const char sql[] =
			"SELECT m.id, m.source, m.from_addr, m.subject, m.client_ip,"
			" (m.id = c.rep_message) AS representative"
			" FROM campaigns c JOIN messages m ON m.campaign_id = c.id"
			" WHERE c.id = (SELECT coalesce(merged_into, id) FROM campaigns WHERE key = ?2)"
			" ORDER BY m.id LIMIT ?1";
		static const struct aq_col cols[] = {{"MSG", "message", 0, true},
						     {"SOURCE", "source", 40, false},
						     {"FROM", "from", 32, false},
						     {"SUBJECT", "subject", 50, false},
						     {"CLIENT", "client_ip", 0, false},
						     {"REP", "representative", 0, true}};
		const char *params[] = {argv[o.argi]};
		return aq_run(&o, "campaigns", sql, params, 1, cols, 6, "no such campaign");
	}
	static const char sql[] =
		"SELECT c.key, count(m.id) AS messages,"
		" datetime(c.first_seen, 'unixepoch') AS first_seen, c.subject,"
		" (SELECT group_concat(f, ' ') FROM (SELECT DISTINCT m2.from_addr AS f FROM messages m2"
		"   WHERE m2.campaign_id = c.id AND m2.from_addr IS NOT NULL LIMIT 3)) AS senders"
		" FROM campaigns c JOIN messages m ON m.campaign_id = c.id"
		" GROUP BY c.id ORDER BY messages DESC, c.id LIMIT ?1";
	static const struct aq_col cols[] = {{"CAMPAIGN", "id", 0, false},
					     {"MSGS", "messages", 0, true},
					     {"FIRST SEEN (UTC)", "first_seen", 0, false},
					     {"SUBJECT", "subject", 50, false},
					     {"SENDERS", "senders", 50, false}};
	return aq_run(&o, "campaigns", sql, NULL, 0, cols, 5, "no campaigns");
}
