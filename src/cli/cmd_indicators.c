/*
 * cmd_indicators: `mxbait indicators [--kind K,...] [--since D] [--min-confidence N]
 * [--no-update] [--json]`: the indicators derived from the event store and the
 * analysis (src/intel/indicator.h), brought up to date first, in the stable export
 * order.  Also home of the helpers the intel commands share (cmd_intel.h).
 *
 * Every value is attacker-supplied text: the table escapes it, JSON encodes it.
 * Allowlisted indicators are listed (the operator should see them) and marked.
 */
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "cli/intel.h"
#include "cli/table.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"
#include "query/reports.h"
#include "store/event.h"

int intel_cli_config(const struct cli_opts *o, struct mxb_config *cfg)
{
	config_defaults(cfg);
	if (!o->config)
		return 0;
	char *err = NULL;
	if (config_load(cfg, o->config, &err) < 0) {
		fprintf(stderr, "mxbait: %s\n", err ? err : o->config);
		free(err);
		return 1;
	}
	return 0;
}

int intel_cli_allowlist(const struct mxb_config *cfg, struct allowlist *al)
{
	char *err = NULL;
	if (allowlist_init(al, cfg->allowlist_networks, cfg->allowlist_domains,
			   cfg->allowlist_own_addresses, &err) < 0) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "bad allowlist");
		free(err);
		return 1;
	}
	return 0;
}

struct sqlite3 *intel_cli_open(const struct cli_opts *o, bool no_update, const char *cmd)
{
	struct stat st;
	if (stat(o->data_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "mxbait: no data directory at %s (run `mxbait serve` first, or use "
				"-d DIR)\n", o->data_dir);
		return NULL;
	}
	char *err = NULL;
	sqlite3 *db = NULL;
	if (access(o->data_dir, W_OK) == 0 || !no_update) {
		int sources = 0;
		db = intel_db_open(o->data_dir, !no_update, &sources, &err);
		if (db && !no_update) {
			struct intel_refresh_stats rs;
			if (indicators_refresh(db, sources, &rs, &err) < 0) {
				fprintf(stderr, "mxbait %s: %s\n", cmd, err ? err : "refresh failed");
				free(err);
				sqlite3_close(db);
				return NULL;
			}
		}
	}
	if (!db) {
		free(err);
		err = NULL;
		db = intel_db_open_ro(o->data_dir, &err);
	}
	if (!db) {
		fprintf(stderr, "mxbait %s: %s\n", cmd, err ? err : "cannot open intel.db");
		free(err);
	}
	return db;
}

struct list_ctx {
	struct table *t;
	const struct allowlist *al;
};

static int list_row(void *ctx, const struct indicator *ind)
{
	struct list_ctx *c = ctx;
	bool refused = allowlist_refuses(c->al, ind);
	struct table *t = c->t;
	table_add_row(t);
	table_cells(t, 0, indicator_kind_name(ind->kind));
	table_cells(t, 1, ind->value);
	table_cellf(t, 2, "%d", ind->confidence);
	char tb[40];
	cli_fmt_time(ind->last_seen_us, tb, sizeof(tb));
	table_cells(t, 3, tb);
	table_cellf(t, 4, "%lld", (long long)ind->guesses);
	table_cellf(t, 5, "%lld", (long long)ind->probes);
	table_cellf(t, 6, "%lld", (long long)ind->messages);
	table_cellf(t, 7, "%lld", (long long)ind->logins);
	struct buf fl;
	buf_init(&fl, 0);
	buf_puts(&fl, ind->flags);
	if (refused)
		buf_printf(&fl, "%sALLOWLISTED", fl.len ? " " : "");
	table_cell(t, 8, fl.data, fl.len);
	buf_free(&fl);
	table_cells(t, 9, ind->evidence);
	return 0;
}

static const char usage[] =
	"[OPTIONS] [--kind K,...] [--since DURATION] [--min-confidence N] [--no-update]";

int cmd_indicators(int argc, char **argv)
{
	const char *kind = NULL, *since = NULL, *minc = NULL, *noup = NULL;
	const struct cli_option extra[] = {
		{"kind", true, &kind},
		{"since", true, &since},
		{"min-confidence", true, &minc},
		{"no-update", false, &noup},
		{NULL, false, NULL},
	};
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	struct indicator_filter f = {.limit = o.limit};
	/* (--json pages through query_indicators with the same limit) */
	if (kind) {
		const char *bad = NULL;
		f.kinds = indicator_kinds_parse(kind, &bad);
		if (!f.kinds) {
			fprintf(stderr, "mxbait indicators: unknown kind '%s' (ip, prefix, url, domain, "
					"sender, sender_domain, attachment, recipient, "
					"recipient_domain, campaign)\n", bad ? bad : kind);
			return 2;
		}
	}
	if (since) {
		int64_t us;
		if (intel_parse_duration(since, &us) < 0) {
			fprintf(stderr, "mxbait indicators: bad --since '%s'\n", since);
			return 2;
		}
		f.since_us = mxb_now_us() - us;
	}
	if (minc) {
		long v;
		if (intel_parse_count(minc, 0, &v) < 0 || v > 100) {
			fprintf(stderr, "mxbait indicators: bad --min-confidence '%s' (0-100)\n", minc);
			return 2;
		}
		f.min_confidence = (int)v;
	}
	struct mxb_config cfg;
	if (intel_cli_config(&o, &cfg)) {
		config_free(&cfg);
		return 1;
	}
	struct allowlist al;
	if (intel_cli_allowlist(&cfg, &al)) {
		config_free(&cfg);
		return 1;
	}
	config_free(&cfg);
	sqlite3 *db = intel_cli_open(&o, noup != NULL, "indicators");
	if (!db) {
		allowlist_free(&al);
		return 1;
	}
	if (o.json) {
		/* the API's serializer (query/reports.h): GET /api/v1/indicators */
		struct query_db q = {.idb = db, .data_dir = o.data_dir};
		struct query_page pg = {.limit = o.limit};
		struct buf b, err;
		buf_init(&b, 0);
		buf_init(&err, 0);
		struct jw w;
		jw_init(&w, &b);
		rc = cli_print_query(query_indicators(&q, &f, &al, &pg, &w, &err), &b, &err,
				     "indicators");
		sqlite3_close(db);
		allowlist_free(&al);
		return rc;
	}
	struct list_ctx c = {.al = &al};
	static const char *const heads[] = {"KIND", "VALUE", "CONF", "LAST SEEN", "GUESSES",
					    "PROBES", "MSGS", "LOGINS", "FLAGS", "EVIDENCE"};
	c.t = table_new(10, heads);
	table_set_max(c.t, 1, 60);
	for (size_t i = 4; i < 8; i++)
		table_set_right(c.t, i);
	table_set_right(c.t, 2);
	table_set_max(c.t, 9, 50);
	rc = indicators_each(db, &f, list_row, &c);
	if (table_rows(c.t))
		table_print(c.t, stdout);
	else
		printf("(no indicators)\n");
	table_free(&c.t);
	if (rc < 0)
		fprintf(stderr, "mxbait indicators: %s\n", sqlite3_errmsg(db));
	sqlite3_close(db);
	allowlist_free(&al);
	return rc < 0 ? 1 : 0;
}
