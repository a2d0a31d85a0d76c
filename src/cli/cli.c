/*
 * cli: the command table and what the reading commands share: option parsing, finding
 * the data directory (from -d, or data_dir in the config file), opening the database
 * with clear errors, usage text.
 *
 * Promises: a missing data directory, a missing, foreign or corrupt database and a
 * schema from a newer mxbait each give one clear line on stderr and exit status 1;
 * usage errors give exit status 2.
 */
#include "cli/cli.h"

#include <errno.h>
#include <getopt.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "query/query.h"
#include "store/db.h"

const struct cli_command cli_commands[] = {
	{"serve", "run the honeypot (SMTP, submission, SMTPS, IMAP(S), POP3(S) listeners)", "[-c FILE]",
	 cmd_serve},
	{"stats", "totals: sessions, IPs, messages, auth attempts, offences, spool",
	 "[OPTIONS]", cmd_stats},
	{"sessions", "recent sessions", "[OPTIONS] [--ip IP]", cmd_sessions},
	{"messages", "recent captured messages", "[OPTIONS]", cmd_messages},
	{"show", "a session's transcript, or a captured message",
	 "[OPTIONS] [--full] SESSION|QUEUEID", cmd_show},
	{"analyze", "analyse mail (.eml, mbox, Maildir) into JSON; --daemon: the spool",
	 "[OPTIONS] FILE... | --daemon -d DIR", cmd_analyze},
	{"urls", "links seen in captured mail", "[OPTIONS] [--domain D] [--flag F]", cmd_urls},
	{"domains", "domains of the links seen in captured mail", "[OPTIONS]", cmd_domains},
	{"recipients", "addresses spammers sent to (the leaked lists)",
	 "[OPTIONS] [--domain D] [--by-domain]", cmd_recipients},
	{"campaigns", "campaigns of near-duplicate mail", "[OPTIONS] [CAMPAIGN_ID]",
	 cmd_campaigns},
	{"creds", "password guessing: usernames, passwords, cracked accounts, enumeration",
	 "[OPTIONS] [--top N] [--since DURATION] [--window DURATION] [--min-ips N]", cmd_creds},
	{"attackers", "attacking IPs and networks (/24, /48): attempts, logins, mail, probes",
	 "[OPTIONS] [--top N] [--since DURATION]", cmd_attackers},
	{"decisions", "the guard's decisions (divert, ban, delay, allow): list, add, del, allow",
	 "[list [--all] | add SOURCE [--action A] [--for DURATION] [--reason TEXT] | del SOURCE "
	 "| allow SOURCE [--for DURATION]] [OPTIONS]", cmd_decisions},
	{"handoff", "the backend hand-off worker (started by serve when backend_mta is set)",
	 "--daemon -d DIR --backend SPEC --helo NAME --domains D1,D2 [--once]", cmd_handoff},
	{"indicators", "indicators derived from the events and the analysis (intel.db)",
	 "[OPTIONS] [--kind K,...] [--since DURATION] [--min-confidence N] [--no-update]",
	 cmd_indicators},
	{"export", "indicators as nft, ipset, Postfix, RPZ, rbldnsd, MISP, STIX, CSV ... files",
	 "--format F [-o PATH] [OPTIONS] [--kind K,...] [--since DURATION] [--min-confidence N]",
	 cmd_export},
	{"report", "abuse reports and submissions: the outbox and the reporter process",
	 "list|show|send|retry|hold|optout|stats|run [OPTIONS] | --daemon", cmd_report},
	{"keys", "this sensor's feed signing key (Ed25519): id, public key, TLS pin",
	 "[--generate] [OPTIONS]", cmd_keys},
	{"peers", "operators whose signed feeds this sensor pulls: add, list, remove, log",
	 "add URL KEY [--trust N] [--name N] [--pin P] [--token-file F] [--reset] | list | remove ID"
	 " | log [ID] [OPTIONS]", cmd_peers},
	{"hub", "the shared PostgreSQL hub: push (the sensor's stream), migrate, stats, attackers,"
	 " creds, campaigns, prune", "push [--once] | migrate | stats | attackers | creds | campaigns"
	 " | prune [OPTIONS]", cmd_hub},
	{"check", "check the configuration, TLS files, data directory and ports; create nothing",
	 "[-c FILE] [--no-ports]", cmd_check},
	{"prune", "delete records and captured mail older than the retention (or --older-than)",
	 "[OPTIONS] [--older-than DURATION] [--dry-run] [--vacuum]", cmd_prune},
	{"backup", "a consistent copy of the data directory into DIR, while the daemon runs",
	 "[OPTIONS] DIR", cmd_backup},
	{NULL, NULL, NULL, NULL},
};

#define DEFAULT_DATA_DIR "./mxbait-data"

const char *cli_default_config(void)
{
	const char *env = getenv("MXBAIT_CONFIG");
	if (env)
		return *env ? env : NULL;
	return access(MXB_DEFAULT_CONFIG, F_OK) == 0 ? MXB_DEFAULT_CONFIG : NULL;
}
#define DEFAULT_LIMIT 50

static const struct cli_command *find_command(const char *name)
{
	for (const struct cli_command *c = cli_commands; c->name; c++)
		if (!strcmp(c->name, name))
			return c;
	return NULL;
}

static void print_usage(FILE *f, const char *name, const char *usage)
{
	const struct cli_command *c = find_command(name);
	fprintf(f, "usage: mxbait %s %s\n", name, usage ? usage : "");
	if (c)
		fprintf(f, "  %s\n", c->summary);
	if (c && c->run == cmd_serve)
		return;
	fprintf(f, "\noptions:\n"
		   "  -d, --data-dir DIR  data directory (default " DEFAULT_DATA_DIR ")\n"
		   "  -c, --config FILE   read data_dir (and creds' distributed_*) from this mxbait.conf\n"
		   "                      (default " MXB_DEFAULT_CONFIG " when it exists)\n"
		   "  -n, --limit N       at most N rows (default %d; 0: all)\n"
		   "      --json          JSON instead of a table\n"
		   "  -h, --help          this text\n",
		   DEFAULT_LIMIT);
	if (!strcmp(name, "sessions"))
		fprintf(f, "      --ip IP         only sessions from this address\n");
	if (!strcmp(name, "show"))
		fprintf(f, "      --full          the whole message, lines uncut\n");
	if (!strcmp(name, "creds") || !strcmp(name, "attackers"))
		fprintf(f, "      --top N         rows per section (default 10; 0: all; -n N "
			   "is the same)\n"
			   "      --since DURATION  only the last DURATION (90s, 30m, 24h, 7d, 2w)\n");
	if (!strcmp(name, "decisions"))
		fprintf(f, "      --all           list: every decision ever made, not only those in force\n"
			   "      --action A      add: divert (default), ban or delay\n"
			   "      --for DURATION  add, allow: how long (default: decision_duration; "
			   "allow: until removed)\n"
			   "      --reason TEXT   add, allow: recorded as the decision's reason\n");
	if (!strcmp(name, "creds"))
		fprintf(f, "      --window DURATION  distributed-attack window (default 1h)\n"
			   "      --min-ips N     distinct IPs within a window that flag a username "
			   "DISTRIBUTED (default 5)\n");
	if (!strcmp(name, "prune"))
		fprintf(f, "      --older-than DURATION  instead of the configured retention "
			   "(90s, 30m, 24h, 7d, 2w)\n"
			   "      --dry-run       count what would go, delete nothing\n"
			   "      --vacuum        then rebuild the databases to give the space back "
			   "(mxbait serve stopped)\n");
	fprintf(f, "\nSee mxbait(8).\n");
}

void cli_usage(FILE *f, const struct cli_command *c)
{
	if (c)
		print_usage(f, c->name, c->usage);
}

int cli_parse_common(int argc, char **argv, const char *usage, struct cli_opts *o)
{
	return cli_parse(argc, argv, usage, NULL, o);
}

int cli_parse(int argc, char **argv, const char *usage, const struct cli_option *extra,
	      struct cli_opts *o)
{
	enum { OPT_JSON = 1000, OPT_EXTRA = 2000 };
	struct option longs[32];
	size_t n = 0;
	longs[n++] = (struct option){"data-dir", required_argument, NULL, 'd'};
	longs[n++] = (struct option){"config", required_argument, NULL, 'c'};
	longs[n++] = (struct option){"limit", required_argument, NULL, 'n'};
	longs[n++] = (struct option){"json", no_argument, NULL, OPT_JSON};
	longs[n++] = (struct option){"help", no_argument, NULL, 'h'};
	size_t n_extra = 0;
	for (; extra && extra[n_extra].name && n < 31; n_extra++, n++)
		longs[n] = (struct option){extra[n_extra].name,
					   extra[n_extra].has_arg ? required_argument : no_argument,
					   NULL, OPT_EXTRA + (int)n_extra};
	longs[n] = (struct option){NULL, 0, NULL, 0};

	memset(o, 0, sizeof(*o));
	o->limit = DEFAULT_LIMIT;
	const char *name = argv[0];
	optind = 0; /* glibc: full re-initialisation */
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "d:c:n:h", longs, NULL)) != -1) {
		switch (c) {
		case 'd':
			o->data_dir = optarg;
			break;
		case 'c':
			o->config = optarg;
			break;
		case 'n': {
			char *end;
			errno = 0;
			long v = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || v < 0) {
				fprintf(stderr, "mxbait %s: bad --limit '%s' (a number >= 0)\n",
					name, optarg);
				return 2;
			}
			o->limit = v;
			o->limit_given = true;
			break;
		}
		case OPT_JSON:
			o->json = true;
			break;
		case 'h':
			print_usage(stdout, name, usage);
			return -1;
		case '?':
		case ':':
			if (optopt)
				fprintf(stderr, "mxbait %s: %s '-%c'\n", name,
					c == ':' || strchr("dcn", optopt) ? "missing argument for"
									  : "unknown option",
					optopt);
			else
				fprintf(stderr, "mxbait %s: unknown option or missing argument: '%s'\n",
					name, argv[optind - 1]);
			print_usage(stderr, name, usage);
			return 2;
		default:
			if (c >= OPT_EXTRA && (size_t)(c - OPT_EXTRA) < n_extra) {
				const struct cli_option *x = &extra[c - OPT_EXTRA];
				*x->value_r = x->has_arg ? optarg : "";
				break;
			}
			return 2;
		}
	}
	o->argi = optind;
	bool default_config = false;
	if (!o->config) {
		/* The server's own configuration, so that `mxbait stats` works there as it
		 * is; with -d, only when it can be read (it is optional then). */
		const char *d = cli_default_config();
		if (d && (!o->data_dir || access(d, R_OK) == 0)) {
			o->config = d;
			default_config = true;
		}
	}
	if (o->config) {
		struct mxb_config cfg;
		char *err = NULL;
		config_defaults(&cfg);
		if (config_load(&cfg, o->config, &err) < 0) {
			fprintf(stderr, "mxbait: %s%s\n", err ? err : o->config,
				default_config ? " (the default configuration; -c FILE or -d DIR "
						 "to use another)" : "");
			free(err);
			config_free(&cfg);
			return 1;
		}
		/* Lives until exit, like argv (static: no leak for LSan to report). */
		static char dir[4096];
		snprintf(dir, sizeof(dir), "%s", cfg.data_dir ? cfg.data_dir : DEFAULT_DATA_DIR);
		if (!o->data_dir) /* -d wins */
			o->data_dir = dir;
		o->spool_budget = cfg.spool_budget;
		o->distributed_window_ms = cfg.distributed_window_ms;
		o->distributed_min_ips = cfg.distributed_min_ips;
		o->retention_ms = cfg.retention_ms;
		o->config_read = true;
		static char log[4096];
		snprintf(log, sizeof(log), "%s", cfg.event_log ? cfg.event_log : "");
		o->event_log = log;
		config_free(&cfg);
	}
	if (!o->data_dir)
		o->data_dir = DEFAULT_DATA_DIR;
	return 0;
}

struct sqlite3 *cli_open_db(const struct cli_opts *o)
{
	struct stat st;
	if (stat(o->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mxbait: no data directory at %s (run `mxbait serve` first, "
				"or use -d DIR)\n", o->data_dir);
		return NULL;
	}
	char *path = NULL;
	if (asprintf(&path, "%s/%s", o->data_dir, MXB_DB_FILE) < 0)
		return NULL;
	sqlite3 *db = NULL;
	char *err = NULL;
	enum db_status s = db_open_ro(path, &db, &err);
	if (s == DB_MISSING)
		fprintf(stderr, "mxbait: no database at %s (run `mxbait serve` first, or use "
				"-d DIR)\n", path);
	else if (s != DB_OK)
		fprintf(stderr, "mxbait: %s\n", err ? err : path);
	free(err);
	free(path);
	return db;
}

char *cli_data_path(const struct cli_opts *o, const char *rel)
{
	char *p = NULL;
	if (asprintf(&p, "%s/%s", o->data_dir, rel) < 0)
		return NULL;
	return p;
}

int cli_missing_arg(const char *name, const char *usage, const char *what)
{
	fprintf(stderr, "mxbait %s: missing %s\n", name, what);
	print_usage(stderr, name, usage);
	return 2;
}

int cli_print_query(int status, struct buf *b, struct buf *err, const char *cmd)
{
	int rc = 0;
	if (status == QUERY_OK) {
		buf_putc(b, '\n');
		fwrite(b->data, 1, b->len, stdout);
	} else if (status == QUERY_NO_ANALYSIS) {
		fprintf(stderr, "mxbait %s: no analysis.db yet (the analyzer writes it when "
				"mail is captured)\n", cmd);
		rc = 1;
	} else {
		fprintf(stderr, "mxbait %s: %s\n", cmd, err->data ? err->data : "query failed");
		rc = 1;
	}
	buf_free(b);
	buf_free(err);
	return rc;
}
