/*
 * cmd_hub: the shared PostgreSQL hub (src/federate/hub.h, docs/scaling.md).
 *
 *   mxbait hub push [--once]        the sensor's pusher: streams events, indicators and
 *                                   campaigns to hub_url; runs until SIGTERM/SIGINT
 *                                   (a service of its own, like the reporter: it makes
 *                                   outbound connections, the front daemon never does;
 *                                   started as root with `user` set, it becomes that
 *                                   account first)
 *   mxbait hub migrate              create or upgrade the hub's schema
 *   mxbait hub stats|attackers|creds|campaigns [--top N] [--since D] [--json]
 *   mxbait hub prune [--days N]     drop daily partitions older than N days
 *                                   (hub_retention_days by default)
 *
 * Every subcommand needs -c FILE with hub_url (a libpq connection string or URI).
 */
#include <libpq-fe.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "core/privdrop.h"
#include "federate/hub.h"
#include "query/intel.h"
#include "store/event.h"
#include "util/buf.h"

static const char usage[] = "push [--once] | migrate | stats | attackers | creds | campaigns"
			    " [--top N] [--since DURATION] | prune [--days N] [OPTIONS]";

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
	(void)sig;
	g_stop = 1;
}

int cmd_hub(int argc, char **argv)
{
	const char *once = NULL, *top = NULL, *since = NULL, *days = NULL;
	const struct cli_option extra[] = {
		{"once", false, &once}, {"top", true, &top}, {"since", true, &since},
		{"days", true, &days}, {NULL, false, NULL},
	};
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.argi >= argc)
		return cli_missing_arg("hub", usage, "a subcommand");
	const char *verb = argv[o.argi];
	if (argc - o.argi != 1) {
		fprintf(stderr, "mxbait hub: unexpected argument '%s'\n", argv[o.argi + 1]);
		return 2;
	}
	struct hub_query_opts q = {.json = o.json, .top = 20};
	if (top) {
		long v;
		if (intel_parse_count(top, 1, &v) < 0 || v > 100000) {
			fprintf(stderr, "mxbait hub: bad --top '%s' (1-100000)\n", top);
			return 2;
		}
		q.top = v;
	}
	if (since) {
		int64_t us;
		if (intel_parse_duration(since, &us) < 0) {
			fprintf(stderr, "mxbait hub: bad --since '%s'\n", since);
			return 2;
		}
		q.since_us = mxb_now_us() - us;
	}
	struct mxb_config cfg;
	if (intel_cli_config(&o, &cfg)) {
		config_free(&cfg);
		return 1;
	}
	if (!cfg.hub_url || !*cfg.hub_url) {
		fprintf(stderr, "mxbait hub: no hub_url in the configuration (-c FILE)\n");
		config_free(&cfg);
		return 1;
	}
	if (!strcmp(verb, "push")) {
		if (geteuid() == 0 && cfg.user && *cfg.user) {
			/* the pusher reads the daemon's data as its account, never as root */
			struct privdrop_user u;
			char *perr = NULL;
			if (privdrop_lookup(cfg.user, &u, &perr) < 0 ||
			    privdrop_become(&u, &perr) < 0) {
				fprintf(stderr, "mxbait hub: %s\n", perr ? perr : "cannot drop privileges");
				free(perr);
				config_free(&cfg);
				return 1;
			}
		} else if (geteuid() == 0 && !once) {
			fprintf(stderr, "mxbait hub: warning: running as root (set `user` in the "
					"configuration)\n");
		}
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_signal;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		signal(SIGPIPE, SIG_IGN);
		struct hub_push_stats st;
		rc = hub_push_run(o.data_dir, &cfg, &g_stop, once != NULL, &st);
		if (rc == 0 && once) {
			if (o.json)
				printf("{\"sensor\":\"%s\",\"events\":%ld,\"indicators\":%ld,\"campaigns\":%ld,"
				       "\"batches\":%ld,\"errors\":%ld,\"lag_events\":%lld,"
				       "\"missing_events\":%lld}\n",
				       hub_sensor_name(&cfg), st.events, st.indicators, st.campaigns,
				       st.batches, st.errors, (long long)st.lag_events,
				       (long long)st.missing);
			else
				printf("sensor %s: %ld events, %ld indicators, %ld campaigns pushed; "
				       "%lld events still to push\n", hub_sensor_name(&cfg), st.events,
				       st.indicators, st.campaigns, (long long)st.lag_events);
			if (st.errors && st.events == 0 && st.lag_events == 0 && st.batches == 0)
				rc = 1;
		}
		config_free(&cfg);
		return rc;
	}
	static const char *const verbs[] = {"migrate", "stats", "attackers", "creds", "campaigns",
					    "prune"};
	bool known = false;
	for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
		known |= !strcmp(verb, verbs[i]);
	if (!known) {
		fprintf(stderr, "mxbait hub: unknown subcommand '%s'\nusage: mxbait hub %s\n", verb,
			usage);
		config_free(&cfg);
		return 2;
	}
	char *err = NULL;
	PGconn *c = hub_connect(cfg.hub_url, !strcmp(verb, "migrate"), &err);
	if (!c) {
		fprintf(stderr, "mxbait hub: %s\n", err ? err : "cannot connect");
		free(err);
		config_free(&cfg);
		return 1;
	}
	struct buf out;
	buf_init(&out, 0);
	rc = 0;
	if (!strcmp(verb, "migrate")) {
		printf("hub schema at version %d\n", hub_schema_version());
	} else if (!strcmp(verb, "prune")) {
		unsigned d = cfg.hub_retention_days;
		long v;
		if (days && (intel_parse_count(days, 1, &v) < 0 || v > 36500)) {
			fprintf(stderr, "mxbait hub: bad --days '%s'\n", days);
			rc = 2;
		} else if (days) {
			d = (unsigned)v;
		}
		if (rc == 0 && d == 0) {
			fprintf(stderr, "mxbait hub: no retention (hub_retention_days = 0, no --days)\n");
			rc = 2;
		}
		int n = rc == 0 ? hub_prune(c, d, &err) : 0;
		if (n < 0)
			rc = 1;
		else if (rc == 0)
			printf("%d partitions older than %u days dropped\n", n, d);
	} else {
		int (*fn)(PGconn *, const struct hub_query_opts *, struct buf *, char **) =
			!strcmp(verb, "stats")	   ? hub_stats
			: !strcmp(verb, "attackers") ? hub_attackers
			: !strcmp(verb, "creds")     ? hub_creds
						     : hub_campaigns;
		if (fn(c, &q, &out, &err) != 0)
			rc = 1;
		else
			fwrite(out.data ? out.data : "", 1, out.len, stdout);
	}
	if (rc == 1)
		fprintf(stderr, "mxbait hub: %s\n", err ? err : "failed");
	free(err);
	buf_free(&out);
	PQfinish(c);
	config_free(&cfg);
	return rc;
}
