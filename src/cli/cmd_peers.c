/*
 * cmd_peers: the operators this sensor pulls feeds from (docs/federation.md).
 *
 *   mxbait peers add URL KEY [--trust N] [--name NAME] [--pin sha256//B64]
 *                    [--token-file FILE] [--reset]
 *   mxbait peers list [--json]
 *   mxbait peers remove ID|NAME
 *   mxbait peers log [ID|NAME] [--json] [-n N]
 *
 * add: URL is the peer's feed (https://host:port/feed/v1), KEY its public key as
 * `mxbait keys` prints it there; trust (0-10, default 1) is the peer's weight in
 * consensus.  Adding a known key again updates URL, trust, pin and token and clears
 * its contradictions (the operator vouches for it again); --reset also forgets
 * where its chain stood (after the peer restored an old backup: a rollback
 * otherwise).  remove forgets the peer and everything it said; its consensus goes at
 * the reporter's next pass.  The reporter pulls; these commands only edit intel.db.
 */
#include <ctype.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/cmd_intel.h"
#include "cli/data_owner.h"
#include "federate/federate.h"
#include "intel/intel_db.h"
#include "query/jw.h"
#include "query/table.h"
#include "store/event.h"
#include "util/buf.h"

static const char usage[] =
	"add URL KEY [--trust N] [--name NAME] [--pin sha256//B64] [--token-file FILE] [--reset]"
	" | list | remove ID|NAME | log [ID|NAME] [OPTIONS]";

static bool url_ok(const char *u)
{
	size_t n = strlen(u);
	if (n < 10 || n > 1000 || (strncmp(u, "https://", 8) && strncmp(u, "http://", 7)))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f || u[i] == '"' || u[i] == '\\')
			return false;
	return true;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return false;
	return true;
}

static bool pin_ok(const char *s)
{
	if (strncmp(s, "sha256//", 8) || strlen(s) != 52)
		return false;
	for (const char *p = s + 8; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("+/=", *p))
			return false;
	return true;
}

static sqlite3 *open_intel(const struct cli_opts *o)
{
	char *err = NULL;
	sqlite3 *db = intel_db_open(o->data_dir, false, NULL, &err);
	if (!db) {
		fprintf(stderr, "mxbait peers: %s\n", err ? err : "cannot open intel.db");
		free(err);
	}
	return db;
}

static int do_add(const struct cli_opts *o, const char *url, const char *key, const char *trust,
		  const char *name, const char *pin, const char *token, bool reset)
{
	uint8_t pk[32];
	if (!url_ok(url)) {
		fprintf(stderr, "mxbait peers: bad URL '%s' (http:// or https://, no spaces)\n", url);
		return 2;
	}
	if (fed_key_parse_public(key, pk) != 0) {
		fprintf(stderr, "mxbait peers: bad key (ed25519:BASE64 as `mxbait keys` prints it)\n");
		return 2;
	}
	double t = 1;
	if (trust) {
		char *end = NULL;
		t = strtod(trust, &end);
		if (!end || *end || t < 0 || t > 10) {
			fprintf(stderr, "mxbait peers: bad --trust '%s' (0 to 10)\n", trust);
			return 2;
		}
	}
	if (name && !name_ok(name)) {
		fprintf(stderr, "mxbait peers: bad --name (letters, digits, . _ -; 1-64)\n");
		return 2;
	}
	if (pin && !pin_ok(pin)) {
		fprintf(stderr, "mxbait peers: bad --pin (sha256//BASE64 as `mxbait keys` prints it)\n");
		return 2;
	}
	char *tokpath = NULL;
	if (token) {
		tokpath = realpath(token, NULL);
		if (!tokpath || access(tokpath, R_OK) != 0) {
			fprintf(stderr, "mxbait peers: cannot read --token-file %s\n", token);
			free(tokpath);
			return 2;
		}
	}
	char id[FEED_KEYID_LEN], pub[80];
	fed_key_id(pk, id);
	fed_key_public_text(pk, pub, sizeof(pub));
	sqlite3 *db = open_intel(o);
	if (!db) {
		free(tokpath);
		return 1;
	}
	sqlite3_stmt *st = NULL;
	int rc = 1;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO peers(id, key, url, name, trust, pin, token_file, added_us)"
			       " VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(id) DO UPDATE SET"
			       " url = excluded.url, name = coalesce(excluded.name, name),"
			       " trust = excluded.trust, pin = excluded.pin,"
			       " token_file = excluded.token_file, contradictions = 0, next_pull_us = 0,"
			       " last_seq = CASE WHEN ?9 THEN 0 ELSE last_seq END,"
			       " last_hash = CASE WHEN ?9 THEN '' ELSE last_hash END,"
			       " manifest_us = CASE WHEN ?9 THEN 0 ELSE manifest_us END,"
			       " status = CASE WHEN ?9 THEN 'new' ELSE status END",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, pub, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, url, -1, SQLITE_STATIC);
		if (name)
			sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, t);
		if (pin)
			sqlite3_bind_text(st, 6, pin, -1, SQLITE_STATIC);
		if (tokpath)
			sqlite3_bind_text(st, 7, tokpath, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 8, mxb_now_us());
		sqlite3_bind_int(st, 9, reset);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
	}
	if (rc)
		fprintf(stderr, "mxbait peers: %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (!rc) {
		st = NULL;
		if (sqlite3_prepare_v2(db, "DELETE FROM peer_contradictions WHERE peer = ?1", -1, &st,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_step(st);
		}
		sqlite3_finalize(st);
		printf("peer %s added (trust %.2g): %s\n", id, t, url);
	}
	sqlite3_close(db);
	free(tokpath);
	return rc;
}

/* ID (16 hex) or NAME into the peer's id. */
static int resolve(sqlite3 *db, const char *who, char id[FEED_KEYID_LEN])
{
	sqlite3_stmt *st = NULL;
	int found = 0;
	if (sqlite3_prepare_v2(db, "SELECT id FROM peers WHERE id = ?1 OR name = ?1", -1, &st,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, who, -1, SQLITE_STATIC);
		while (sqlite3_step(st) == SQLITE_ROW) {
			snprintf(id, FEED_KEYID_LEN, "%s", (const char *)sqlite3_column_text(st, 0));
			found++;
		}
	}
	sqlite3_finalize(st);
	return found == 1 ? 0 : -1;
}

static int do_remove(const struct cli_opts *o, const char *who)
{
	sqlite3 *db = open_intel(o);
	if (!db)
		return 1;
	char id[FEED_KEYID_LEN];
	if (resolve(db, who, id) != 0) {
		fprintf(stderr, "mxbait peers: no peer '%s'\n", who);
		sqlite3_close(db);
		return 1;
	}
	static const char *const tables[] = {"peer_entries", "peer_traps", "peer_contradictions"};
	int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) == SQLITE_OK ? 0 : 1;
	for (size_t i = 0; rc == 0 && i < 4; i++) {
		char sql[96];
		snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = ?1", i < 3 ? tables[i] : "peers",
			 i < 3 ? "peer" : "id");
		sqlite3_stmt *st = NULL;
		rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK ? 0 : 1;
		if (rc == 0) {
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
		}
		sqlite3_finalize(st);
	}
	rc = rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : 1;
	if (rc) {
		fprintf(stderr, "mxbait peers: %s\n", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	} else {
		printf("peer %s removed (its consensus goes at the reporter's next pass)\n", id);
	}
	sqlite3_close(db);
	return rc;
}

static int do_list(const struct cli_opts *o)
{
	sqlite3 *db = open_intel(o);
	if (!db)
		return 1;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
			       "SELECT p.id, p.name, p.url, p.trust, p.contradictions, p.status,"
			       " p.last_seq, (SELECT count(*) FROM peer_entries e WHERE e.peer = p.id),"
			       " (SELECT count(*) FROM peer_traps t WHERE t.peer = p.id), p.pulled_us,"
			       " p.gaps, p.replays, p.rollbacks, p.bad_signatures, p.last_error,"
			       " p.profile IS NOT NULL, p.traps_sent, p.key, p.pin IS NOT NULL"
			       " FROM peers p ORDER BY p.id", -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait peers: %s\n", sqlite3_errmsg(db));
		sqlite3_close(db);
		return 1;
	}
	struct buf b;
	buf_init(&b, 0);
	struct jw w;
	static const char *const heads[] = {"ID", "NAME", "TRUST", "WEIGHT", "STATUS", "SEQ",
					    "ENTRIES", "PULLED", "URL"};
	struct table *t = o->json ? NULL : table_new(9, heads);
	if (o->json) {
		jw_init(&w, &b);
		jw_begin_array(&w, NULL);
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		double trust = sqlite3_column_double(st, 3);
		long contra = sqlite3_column_int64(st, 4);
		double weight = fed_peer_weight(trust, contra);
		if (o->json) {
			jw_begin_object(&w, NULL);
			jw_col(&w, "id", st, 0);
			jw_col(&w, "name", st, 1);
			jw_col(&w, "url", st, 2);
			jw_col(&w, "key", st, 17);
			jw_col(&w, "trust", st, 3);
			buf_printf(&b, ",\"weight\":%.4f", weight);
			jw_col(&w, "contradictions", st, 4);
			jw_col(&w, "status", st, 5);
			jw_col(&w, "last_seq", st, 6);
			jw_col(&w, "entries", st, 7);
			jw_col(&w, "trap_hashes", st, 8);
			jw_time(&w, "pulled", sqlite3_column_int64(st, 9));
			jw_col(&w, "gaps", st, 10);
			jw_col(&w, "replays", st, 11);
			jw_col(&w, "rollbacks", st, 12);
			jw_col(&w, "bad_signatures", st, 13);
			jw_col(&w, "last_error", st, 14);
			jw_bool(&w, "trap_profile", sqlite3_column_int(st, 15));
			jw_col(&w, "trap_hashes_sent", st, 16);
			jw_bool(&w, "pinned", sqlite3_column_int(st, 18));
			jw_end_object(&w);
		} else {
			char pulled[32];
			cli_fmt_time(sqlite3_column_int64(st, 9), pulled, sizeof(pulled));
			table_add_row(t);
			table_cells(t, 0, (const char *)sqlite3_column_text(st, 0));
			table_cells(t, 1, (const char *)sqlite3_column_text(st, 1));
			table_cellf(t, 2, "%.2g", trust);
			table_cellf(t, 3, "%.3g", weight);
			table_cells(t, 4, (const char *)sqlite3_column_text(st, 5));
			table_cellf(t, 5, "%lld", (long long)sqlite3_column_int64(st, 6));
			table_cellf(t, 6, "%lld", (long long)sqlite3_column_int64(st, 7));
			table_cells(t, 7, pulled);
			table_cells(t, 8, (const char *)sqlite3_column_text(st, 2));
		}
	}
	sqlite3_finalize(st);
	if (o->json) {
		jw_end_array(&w);
		printf("%s\n", b.data);
	} else {
		table_print(t, stdout);
		table_free(&t);
	}
	buf_free(&b);
	sqlite3_close(db);
	return 0;
}

static int do_log(const struct cli_opts *o, const char *who)
{
	sqlite3 *db = open_intel(o);
	if (!db)
		return 1;
	char id[FEED_KEYID_LEN] = "";
	if (who && resolve(db, who, id) != 0) {
		fprintf(stderr, "mxbait peers: no peer '%s'\n", who);
		sqlite3_close(db);
		return 1;
	}
	sqlite3_stmt *st = NULL;
	sqlite3_prepare_v2(db, "SELECT ts_us, peer, what, detail FROM peer_log WHERE ?1 = ''"
			       " OR peer = ?1 ORDER BY id DESC LIMIT ?2", -1, &st, NULL);
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, o->limit_given ? o->limit : 50);
	struct buf b;
	buf_init(&b, 0);
	struct jw w;
	static const char *const heads[] = {"TIME", "PEER", "WHAT", "DETAIL"};
	struct table *t = o->json ? NULL : table_new(4, heads);
	if (o->json) {
		jw_init(&w, &b);
		jw_begin_array(&w, NULL);
	} else {
		table_set_max(t, 3, 100);
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		if (o->json) {
			jw_begin_object(&w, NULL);
			jw_time(&w, "time", sqlite3_column_int64(st, 0));
			jw_col(&w, "peer", st, 1);
			jw_col(&w, "what", st, 2);
			jw_col(&w, "detail", st, 3);
			jw_end_object(&w);
		} else {
			char ts[32];
			cli_fmt_time(sqlite3_column_int64(st, 0), ts, sizeof(ts));
			table_add_row(t);
			table_cells(t, 0, ts);
			table_cells(t, 1, (const char *)sqlite3_column_text(st, 1));
			table_cells(t, 2, (const char *)sqlite3_column_text(st, 2));
			table_cells(t, 3, (const char *)sqlite3_column_text(st, 3));
		}
	}
	sqlite3_finalize(st);
	if (o->json) {
		jw_end_array(&w);
		printf("%s\n", b.data);
	} else {
		table_print(t, stdout);
		table_free(&t);
	}
	buf_free(&b);
	sqlite3_close(db);
	return 0;
}

int cmd_peers(int argc, char **argv)
{
	const char *trust = NULL, *name = NULL, *pin = NULL, *token = NULL, *reset = NULL;
	const struct cli_option extra[] = {
		{"trust", true, &trust}, {"name", true, &name}, {"pin", true, &pin},
		{"token-file", true, &token}, {"reset", false, &reset}, {NULL, false, NULL},
	};
	struct cli_opts o;
	int rc = cli_parse(argc, argv, usage, extra, &o);
	if (rc)
		return rc < 0 ? 0 : rc;
	if (o.argi >= argc)
		return cli_missing_arg("peers", usage, "add, list, remove or log");
	const char *verb = argv[o.argi];
	/* intel.db (and its journals) stay the reporter's account's: as root, become it */
	if (cli_become_data_owner("peers", o.data_dir, NULL) < 0)
		return 1;
	int nargs = argc - o.argi - 1;
	char **args = argv + o.argi + 1;
	if (!strcmp(verb, "add")) {
		if (nargs != 2)
			return cli_missing_arg("peers", usage, "URL and KEY");
		return do_add(&o, args[0], args[1], trust, name, pin, token, reset != NULL);
	}
	if (trust || name || pin || token || reset) {
		fprintf(stderr, "mxbait peers: --trust, --name, --pin, --token-file and --reset are"
				" options of add\n");
		return 2;
	}
	if (!strcmp(verb, "list") && nargs == 0)
		return do_list(&o);
	if (!strcmp(verb, "remove") && nargs == 1)
		return do_remove(&o, args[0]);
	if (!strcmp(verb, "log") && nargs <= 1)
		return do_log(&o, nargs ? args[0] : NULL);
	fprintf(stderr, "mxbait peers: usage: mxbait peers %s\n", usage);
	return 2;
}
