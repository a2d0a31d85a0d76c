/*
 * consensus: from what peers said to what this sensor does (see federate.h and
 * docs/federation.md, "Trust and consensus").
 *
 * The weight of an entry is the sum, over the distinct peers (operators: one key
 * each) whose unexpired entry names it, of trust * 0.5^contradictions, plus 1 when
 * this sensor's own indicators have it (local evidence always counts, and counts as
 * one operator).  An entry whose weight reaches peer_consensus (K) becomes an
 * indicator row with source 'peer' (flag "consensus", evidence "peer:ID ...", the
 * highest confidence any peer gave, the largest counts), which only the operator's
 * own enforcement exports may carry (intel/indicator.h IND_SELF); an address or
 * prefix also becomes a guard decision (peer_action, for decision_duration; renewed
 * while consensus holds), through the guard's request directory: the guard stays the
 * one writer of decisions and refuses trusted sources itself.  Below K the peer row
 * goes.  Trap hashes addressed to us count only from a peer whose own weight reaches
 * K (they are one publisher's observation by nature); they go to the guard's file
 * DATA_DIR/federate/peer-traps, rewritten only when it changes.
 */
#include "federate/federate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "store/event.h"
#include "util/buf.h"
#include "util/netaddr.h"

double fed_peer_weight(double trust, long contradictions)
{
	if (trust <= 0)
		return 0;
	if (contradictions > 60)
		return 0;
	return trust * ldexp(1.0, -(int)contradictions);
}

static void sql_weight(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	(void)argc;
	sqlite3_result_double(ctx, fed_peer_weight(sqlite3_value_double(argv[0]),
						  (long)sqlite3_value_int64(argv[1])));
}

static int exec_bind(sqlite3 *db, const char *sql, int64_t a, double b, long *changes)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "mxbait report: consensus: %s\n", sqlite3_errmsg(db));
		return -1;
	}
	int n = sqlite3_bind_parameter_count(st);
	if (n >= 1)
		sqlite3_bind_int64(st, 1, a);
	if (n >= 2)
		sqlite3_bind_double(st, 2, b);
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (changes && rc == SQLITE_DONE)
		*changes += sqlite3_changes(db);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* A request the guard applies (guard.c apply_request): written under a tmp- name
 * the guard skips, then renamed. */
static int guard_request(const char *data_dir, const char *source, const char *action,
			 uint64_t duration_ms)
{
	char dir[4200], tmp[4400], path[4400];
	snprintf(dir, sizeof(dir), "%s/guard-requests", data_dir);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST)
		return -1;
	uint64_t r = (uint64_t)mxb_now_us() ^ ((uint64_t)getpid() << 40);
	static unsigned seq;
	snprintf(tmp, sizeof(tmp), "%s/tmp-peers-%llx-%u", dir, (unsigned long long)r, ++seq);
	snprintf(path, sizeof(path), "%s/req-peers-%llx-%u", dir, (unsigned long long)r, seq);
	FILE *f = fopen(tmp, "wex");
	if (!f)
		return -1;
	fprintf(f, "op=add\nsource=%s\naction=%s\nduration_ms=%llu\nreason=peer_consensus\n"
		   "origin=peers\n", source, action, (unsigned long long)duration_ms);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int act_on_addresses(const struct fed_ctx *c, struct fed_stats *st)
{
	const struct mxb_config *cfg = c->cfg;
	if (!strcmp(cfg->peer_action, "none"))
		return 0;
	int64_t renew = (int64_t)cfg->decision_duration_ms * 1000;
	sqlite3_stmt *q = NULL, *u = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT kind, value FROM consensus WHERE kind IN ('ip', 'prefix')"
				      " AND acted_us < ?1 ORDER BY kind, value LIMIT 10000", -1, &q,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "UPDATE consensus SET acted_us = ?3 WHERE kind = ?1 AND value = ?2",
			       -1, &u, NULL) != SQLITE_OK) {
		sqlite3_finalize(q);
		return -1;
	}
	sqlite3_bind_int64(q, 1, c->now_us - renew + 60 * 1000000LL);
	/* collect first: the updates must not run under the walk */
	struct item {
		char kind[8];
		char value[64];
	} *v = NULL;
	size_t n = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(q, 0);
		const char *val = (const char *)sqlite3_column_text(q, 1);
		if (!k || !val || strlen(val) >= sizeof(v->value))
			continue;
		struct item *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		snprintf(v[n].kind, sizeof(v[n].kind), "%s", k);
		snprintf(v[n].value, sizeof(v[n].value), "%s", val);
		n++;
	}
	sqlite3_finalize(q);
	for (size_t i = 0; i < n; i++) {
		struct netaddr a;
		struct indicator ind = {.kind = strcmp(v[i].kind, "ip") ? IND_PREFIX : IND_IP,
					.value = v[i].value, .source = "peer", .flags = "",
					.evidence = ""};
		if (netaddr_parse(v[i].value, &a) != 0 || allowlist_refuses(c->al, &ind))
			continue;
		if (guard_request(c->data_dir, v[i].value, cfg->peer_action,
				  cfg->decision_duration_ms) == 0) {
			st->decisions++;
			sqlite3_reset(u);
			sqlite3_bind_text(u, 1, v[i].kind, -1, SQLITE_STATIC);
			sqlite3_bind_text(u, 2, v[i].value, -1, SQLITE_STATIC);
			sqlite3_bind_int64(u, 3, c->now_us);
			sqlite3_step(u);
		}
	}
	free(v);
	sqlite3_finalize(u);
	return 0;
}

/* The guard's trap file: "TAG HASH" lines, sorted; replaced only when different. */
static int write_trap_file(const struct fed_ctx *c, double k)
{
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT DISTINCT t.tag, t.hash FROM peer_traps t"
				      " JOIN peers p ON p.id = t.peer"
				      " WHERE t.expires_us >= ?1 AND mxb_fed_weight(p.trust,"
				      " p.contradictions) >= ?2 ORDER BY 1, 2 LIMIT 200000", -1, &q,
			       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, c->now_us);
	sqlite3_bind_double(q, 2, k);
	struct buf b;
	buf_init(&b, 0);
	while (sqlite3_step(q) == SQLITE_ROW)
		buf_printf(&b, "%s %s\n", (const char *)sqlite3_column_text(q, 0),
			   (const char *)sqlite3_column_text(q, 1));
	sqlite3_finalize(q);
	char dir[4200], path[4400], tmp[4500];
	snprintf(dir, sizeof(dir), "%s/federate", c->data_dir);
	snprintf(path, sizeof(path), "%s/" FED_PEER_TRAPS_FILE, c->data_dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		buf_free(&b);
		return -1;
	}
	/* unchanged? */
	FILE *f = fopen(path, "re");
	if (f) {
		char *old = malloc(b.len + 2);
		size_t got = old ? fread(old, 1, b.len + 1, f) : 0;
		fclose(f);
		bool same = old && got == b.len && (b.len == 0 || !memcmp(old, b.data, b.len));
		free(old);
		if (same) {
			buf_free(&b);
			return 0;
		}
	} else if (b.len == 0) {
		buf_free(&b);
		return 0;
	}
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	int rc = fd < 0 ? -1 : 0;
	if (fd >= 0) {
		if (b.len && write(fd, b.data, b.len) != (ssize_t)b.len)
			rc = -1;
		if (fsync(fd) != 0 || close(fd) != 0)
			rc = -1;
		if (rc == 0 && rename(tmp, path) != 0)
			rc = -1;
		if (rc != 0)
			unlink(tmp);
	}
	buf_free(&b);
	return rc;
}

int fed_consensus(const struct fed_ctx *c, struct fed_stats *st, char **err_r)
{
	sqlite3 *db = c->db;
	if (sqlite3_create_function(db, "mxb_fed_weight", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
				    NULL, sql_weight, NULL, NULL) != SQLITE_OK)
		return -1;
	double k = c->cfg->peer_consensus;
	int64_t now = c->now_us;
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	/* expiry */
	if (exec_bind(db, "DELETE FROM peer_entries WHERE expires_us < ?1", now, 0, &st->expired) ||
	    exec_bind(db, "DELETE FROM peer_traps WHERE expires_us < ?1", now, 0, &st->expired))
		goto rollback;
	/* what reaches K now */
	if (sqlite3_exec(db, "DROP TABLE IF EXISTS temp.cons", NULL, NULL, NULL) != SQLITE_OK ||
	    exec_bind(db,
		      "CREATE TEMP TABLE cons AS"
		      " SELECT e.kind AS kind, e.value AS value,"
		      "  sum(mxb_fed_weight(p.trust, p.contradictions))"
		      "   + (EXISTS(SELECT 1 FROM indicators i WHERE i.kind = e.kind"
		      "      AND i.value = e.value AND i.source = 'local')) AS weight,"
		      "  count(*) + (EXISTS(SELECT 1 FROM indicators i WHERE i.kind = e.kind"
		      "      AND i.value = e.value AND i.source = 'local')) AS operators,"
		      "  max(e.confidence) AS conf, min(e.first_seen_us) AS f, max(e.last_seen_us) AS l,"
		      "  max(e.guesses) AS gu, max(e.probes) AS pr, max(e.messages) AS ms,"
		      "  max(e.logins) AS lo, max(e.members) AS mem,"
		      "  group_concat('peer:' || e.peer, ' ') AS ev"
		      " FROM peer_entries e JOIN peers p ON p.id = e.peer"
		      " WHERE e.expires_us >= ?1"
		      " GROUP BY e.kind, e.value"
		      " HAVING weight >= ?2",
		      now, k, NULL))
		goto rollback;
	int64_t stamp = now;
	{
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(db, "SELECT max(updated_us) FROM indicators", -1, &q, NULL) ==
			    SQLITE_OK && sqlite3_step(q) == SQLITE_ROW &&
		    sqlite3_column_int64(q, 0) >= stamp)
			stamp = sqlite3_column_int64(q, 0) + 1;
		sqlite3_finalize(q);
	}
	long changed = 0;
	if (exec_bind(db,
		      "INSERT INTO indicators(kind, value, source, parent, first_seen_us, last_seen_us,"
		      " guesses, probes, messages, logins, members, confidence, flags, evidence, note,"
		      " updated_us)"
		      " SELECT kind, value, 'peer', CASE WHEN kind = 'ip' THEN mxb_prefix(value) END,"
		      "  f, l, gu, pr, ms, lo, mem, conf, 'consensus', mxb_merge('', ev, 32),"
		      "  operators || ' operators, weight ' || printf('%.2f', weight), ?1"
		      " FROM temp.cons WHERE true"
		      " ON CONFLICT(kind, value, source) DO UPDATE SET"
		      "  first_seen_us = excluded.first_seen_us, last_seen_us = excluded.last_seen_us,"
		      "  guesses = excluded.guesses, probes = excluded.probes,"
		      "  messages = excluded.messages, logins = excluded.logins,"
		      "  members = excluded.members, confidence = excluded.confidence,"
		      "  evidence = excluded.evidence, note = excluded.note,"
		      "  updated_us = excluded.updated_us"
		      " WHERE evidence IS NOT excluded.evidence OR note IS NOT excluded.note"
		      "  OR confidence != excluded.confidence OR last_seen_us != excluded.last_seen_us",
		      stamp, 0, &changed) ||
	    exec_bind(db,
		      "DELETE FROM indicators WHERE source = 'peer' AND NOT EXISTS (SELECT 1 FROM"
		      " temp.cons c WHERE c.kind = indicators.kind AND c.value = indicators.value)",
		      0, 0, NULL) ||
	    exec_bind(db,
		      "DELETE FROM consensus WHERE NOT EXISTS (SELECT 1 FROM temp.cons c"
		      " WHERE c.kind = consensus.kind AND c.value = consensus.value)", 0, 0, NULL) ||
	    exec_bind(db,
		      "INSERT INTO consensus(kind, value, weight, operators, since_us)"
		      " SELECT kind, value, weight, operators, ?1 FROM temp.cons WHERE true"
		      " ON CONFLICT(kind, value) DO UPDATE SET weight = excluded.weight,"
		      " operators = excluded.operators", now, 0, NULL))
		goto rollback;
	{
		sqlite3_stmt *q = NULL;
		if (sqlite3_prepare_v2(db, "SELECT count(*) FROM temp.cons", -1, &q, NULL) == SQLITE_OK &&
		    sqlite3_step(q) == SQLITE_ROW)
			st->consensus = sqlite3_column_int64(q, 0);
		sqlite3_finalize(q);
	}
	if (act_on_addresses(c, st) != 0)
		goto rollback;
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto rollback;
	sqlite3_exec(db, "DROP TABLE IF EXISTS temp.cons", NULL, NULL, NULL);
	if (write_trap_file(c, k) != 0) {
		if (asprintf(err_r, "%s/" FED_PEER_TRAPS_FILE ": cannot write", c->data_dir) < 0)
			*err_r = NULL;
		return -1;
	}
	return 0;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
fail:
	if (asprintf(err_r, "consensus: %s", sqlite3_errmsg(db)) < 0)
		*err_r = NULL;
	return -1;
}

int federate_pass(const struct fed_ctx *c, struct fed_stats *st, char **err_r)
{
	memset(st, 0, sizeof(*st));
	*err_r = NULL;
	/* pull first: a peer's trap profile learnt now is served in this pass's segment */
	int rc = 0;
	if (fed_pull(c, st, err_r) != 0)
		rc = -1;
	if (rc == 0 && fed_consensus(c, st, err_r) != 0)
		rc = -1;
	if (rc == 0 && c->cfg->feed_publish && fed_publish(c, st, err_r) != 0)
		rc = -1;
	return rc;
}
