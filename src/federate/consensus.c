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
#include "intel/intel_db.h"
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

/* ---- campaigns: a peer's campaign that is one of ours ---- */

#define MH_N 128
#define LSH_BANDS 64              /* analyze/adb.c's banding: 64 bands of 2 hashes */
#define LSH_ROWS (MH_N / LSH_BANDS)
#define SIMILAR 0.3               /* analyze/adb.c CAMPAIGN_THRESHOLD */
#define LOCAL_CAMPAIGNS_MAX 200000
#define LINKS_PER_PASS 20000

struct lcamp {
	char key[96];
	uint64_t mh[MH_N];
};

struct band_ref {
	uint64_t h; /* band hash, band number folded in */
	uint32_t idx;
};

static uint64_t band_hash(const uint64_t *mh, int b)
{
	uint64_t h = 1469598103934665603ULL ^ (uint64_t)b;
	for (int k = 0; k < LSH_ROWS; k++)
		h = (h ^ mh[b * LSH_ROWS + k]) * 1099511628211ULL;
	return h;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct band_ref *x = a, *y = b;
	return x->h < y->h ? -1 : x->h > y->h;
}

/* Link each new peer campaign entry (with its MinHash) to the most similar local
 * campaign of analysis.db, found through the analyzer's LSH banding; consensus then
 * counts it under the local campaign's key (local evidence included). */
static int link_campaigns(const struct fed_ctx *c)
{
	if (!(c->sources & INTEL_HAS_ANALYSIS))
		return 0;
	sqlite3 *db = c->db;
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(db, "SELECT e.peer, e.value, e.minhash FROM peer_entries e"
				   " LEFT JOIN campaign_links l ON l.peer = e.peer AND l.key = e.value"
				   " WHERE e.kind = 'campaign' AND length(e.minhash) = 1024"
				   " AND l.key IS NULL LIMIT ?1", -1, &q, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int(q, 1, LINKS_PER_PASS);
	struct pending {
		char peer[FEED_KEYID_LEN];
		char key[96];
		uint64_t mh[MH_N];
	} *pv = NULL;
	size_t np = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		const char *peer = (const char *)sqlite3_column_text(q, 0);
		const char *key = (const char *)sqlite3_column_text(q, 1);
		if (!peer || !key || strlen(key) >= sizeof(pv->key))
			continue;
		struct pending *n = realloc(pv, (np + 1) * sizeof(*pv));
		if (!n)
			break;
		pv = n;
		snprintf(pv[np].peer, sizeof(pv[np].peer), "%s", peer);
		snprintf(pv[np].key, sizeof(pv[np].key), "%s", key);
		memcpy(pv[np].mh, sqlite3_column_blob(q, 2), sizeof(pv[np].mh));
		np++;
	}
	sqlite3_finalize(q);
	if (np == 0)
		return 0;
	/* the local campaigns and their bands */
	struct lcamp *lv = NULL;
	size_t nl = 0;
	q = NULL;
	if (sqlite3_prepare_v2(db, "SELECT key, rep_minhash FROM an.campaigns"
				   " WHERE length(rep_minhash) = 1024 ORDER BY id LIMIT ?1", -1, &q,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_int(q, 1, LOCAL_CAMPAIGNS_MAX);
		while (sqlite3_step(q) == SQLITE_ROW) {
			const char *key = (const char *)sqlite3_column_text(q, 0);
			if (!key || strlen(key) >= sizeof(lv->key))
				continue;
			struct lcamp *n = realloc(lv, (nl + 1) * sizeof(*lv));
			if (!n)
				break;
			lv = n;
			snprintf(lv[nl].key, sizeof(lv[nl].key), "%s", key);
			memcpy(lv[nl].mh, sqlite3_column_blob(q, 1), sizeof(lv[nl].mh));
			nl++;
		}
	}
	sqlite3_finalize(q);
	struct band_ref *refs = nl ? malloc(nl * LSH_BANDS * sizeof(*refs)) : NULL;
	size_t nr = 0;
	for (size_t i = 0; refs && i < nl; i++)
		for (int b = 0; b < LSH_BANDS; b++)
			refs[nr++] = (struct band_ref){band_hash(lv[i].mh, b), (uint32_t)i};
	if (refs)
		qsort(refs, nr, sizeof(*refs), cmp_ref);
	sqlite3_stmt *ins = NULL;
	int rc = sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO campaign_links(peer, key, local_key,"
					" similarity, linked_us) VALUES(?1, ?2, ?3, ?4, ?5)", -1, &ins,
				    NULL) == SQLITE_OK ? 0 : -1;
	for (size_t i = 0; rc == 0 && i < np; i++) {
		double best = 0;
		long best_i = -1;
		for (int b = 0; refs && b < LSH_BANDS; b++) {
			struct band_ref key = {band_hash(pv[i].mh, b), 0};
			struct band_ref *hit = bsearch(&key, refs, nr, sizeof(*refs), cmp_ref);
			if (!hit)
				continue;
			while (hit > refs && hit[-1].h == key.h)
				hit--;
			for (int k = 0; hit + k < refs + nr && hit[k].h == key.h && k < 64; k++) {
				const struct lcamp *l = &lv[hit[k].idx];
				int eq = 0;
				for (int m = 0; m < MH_N; m++)
					eq += l->mh[m] == pv[i].mh[m];
				double sim = eq / (double)MH_N;
				if (sim > best) {
					best = sim;
					best_i = hit[k].idx;
				}
			}
		}
		sqlite3_reset(ins);
		sqlite3_bind_text(ins, 1, pv[i].peer, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, pv[i].key, -1, SQLITE_STATIC);
		if (best >= SIMILAR && best_i >= 0)
			sqlite3_bind_text(ins, 3, lv[best_i].key, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(ins, 3); /* looked at: not ours (looked at again when new
						    * local campaigns make it worth it: see below) */
		sqlite3_bind_double(ins, 4, best);
		sqlite3_bind_int64(ins, 5, c->now_us);
		rc = sqlite3_step(ins) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(ins);
	free(refs);
	free(lv);
	free(pv);
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
	/* peers' campaigns that are ours by MinHash; a miss is looked at again a day later
	 * (new local campaigns may match it by then) */
	if (exec_bind(db, "DELETE FROM campaign_links WHERE local_key IS NULL AND linked_us < ?1",
		      now - 86400 * 1000000LL, 0, NULL) || link_campaigns(c) != 0)
		goto rollback;
	/* what reaches K now (a linked campaign counts under our own key) */
	if (sqlite3_exec(db, "DROP TABLE IF EXISTS temp.cons", NULL, NULL, NULL) != SQLITE_OK ||
	    exec_bind(db,
		      "CREATE TEMP TABLE cons AS"
		      /* each peer's entries, a linked campaign under our own key ... */
		      " WITH m AS (SELECT p.peer, p.kind, p.confidence, p.first_seen_us,"
		      "  p.last_seen_us, p.guesses, p.probes, p.messages, p.logins, p.members,"
		      "  CASE WHEN p.kind = 'campaign' THEN coalesce((SELECT l.local_key"
		      "   FROM campaign_links l WHERE l.peer = p.peer AND l.key = p.value), p.value)"
		      "   ELSE p.value END AS value"
		      "  FROM peer_entries p WHERE p.expires_us >= ?1),"
		      /* ... one vote per peer and value ... */
		      " v AS (SELECT m.kind, m.value, m.peer,"
		      "  mxb_fed_weight(pr.trust, pr.contradictions) AS w, max(m.confidence) AS conf,"
		      "  min(m.first_seen_us) AS f, max(m.last_seen_us) AS l, max(m.guesses) AS gu,"
		      "  max(m.probes) AS pr, max(m.messages) AS ms, max(m.logins) AS lo,"
		      "  max(m.members) AS mem"
		      "  FROM m JOIN peers pr ON pr.id = m.peer GROUP BY m.kind, m.value, m.peer)"
		      /* ... and the sum, local evidence counting as one operator */
		      " SELECT kind, value, weight, operators, conf, f, l, gu, pr, ms, lo, mem, ev"
		      " FROM (SELECT v.kind AS kind, v.value AS value,"
		      "  sum(v.w) + loc AS weight, count(*) + loc AS operators,"
		      "  max(conf) AS conf, min(f) AS f, max(l) AS l, max(gu) AS gu, max(pr) AS pr,"
		      "  max(ms) AS ms, max(lo) AS lo, max(mem) AS mem,"
		      "  group_concat('peer:' || v.peer, ' ') AS ev"
		      "  FROM (SELECT v.*, EXISTS(SELECT 1 FROM indicators i WHERE i.kind = v.kind"
		      "   AND i.value = v.value AND i.source = 'local') AS loc FROM v) v"
		      "  GROUP BY v.kind, v.value)"
		      " WHERE weight >= ?2",
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
