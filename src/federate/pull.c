/*
 * pull: peers' feeds into intel.db (see federate.h, docs/federation.md).
 *
 * For each peer due: GET BASE/manifest, verify it with the peer's configured key
 * (never the key a document carries), refuse an older manifest (replay) and a head
 * below the last accepted segment or a different hash at the same head (rollback or
 * fork); then GET BASE/seg/N for N after the last accepted one, at most
 * FED_SEGMENTS_PER_PULL a pass.  Each segment must verify, carry the number asked
 * for (else: a replayed segment) and continue the hash chain from the last accepted
 * one (else: rollback/fork); it is imported, and last_seq/last_hash move, in one
 * transaction.  Segments the publisher already pruned are a gap: logged, counted,
 * and the chain starts again at the oldest segment still served (its entries would
 * have expired anyway: segments are kept as long as entries live).
 *
 * Transport: libcurl; a response over the document's bound is cut off and refused;
 * 30 s per request; no redirects; TLS verified with the CA file, or, for a peer added
 * with --pin, by the pinned public key of its certificate (a daemon's self-signed
 * certificate); a bearer token (the peer's `feed` login) only over https or to a
 * loopback address.
 */
#include "federate/federate.h"

#include <curl/curl.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "store/event.h"
#include "util/buf.h"

#define TIMEOUT_S 30L

/* ---- profiles as stored ---- */

int fed_profile_from_json(const char *json, struct fed_trap_profile *p);
int fed_profile_from_json(const char *json, struct fed_trap_profile *p)
{
	memset(p, 0, sizeof(*p));
	if (!json)
		return -1;
	json_error_t e;
	json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &e);
	const char *mech = o ? json_string_value(json_object_get(o, "mech")) : NULL;
	const char *nonce = o ? json_string_value(json_object_get(o, "nonce")) : NULL;
	json_t *tr = o ? json_object_get(o, "truncate") : NULL;
	json_t *d = o ? json_object_get(o, "domains") : NULL;
	int rc = -1;
	if (mech && nonce && json_is_integer(tr) && json_is_array(d) && strlen(mech) < sizeof(p->mech) &&
	    strlen(nonce) < sizeof(p->nonce) && json_integer_value(tr) >= 0 &&
	    json_integer_value(tr) <= 4096) {
		snprintf(p->mech, sizeof(p->mech), "%s", mech);
		snprintf(p->nonce, sizeof(p->nonce), "%s", nonce);
		p->truncate_bits = (unsigned)json_integer_value(tr);
		for (size_t i = 0; i < json_array_size(d) && p->n_domains < 16; i++) {
			const char *s = json_string_value(json_array_get(d, i));
			if (s && strlen(s) < sizeof(p->domains[0]))
				snprintf(p->domains[p->n_domains++], sizeof(p->domains[0]), "%s", s);
		}
		rc = 0;
	}
	json_decref(o);
	return rc;
}

static char *profile_to_json(const struct fed_trap_profile *p)
{
	json_t *o = json_object();
	json_t *d = json_array();
	for (size_t i = 0; i < p->n_domains; i++)
		json_array_append_new(d, json_string(p->domains[i]));
	json_object_set_new(o, "mech", json_string(p->mech));
	json_object_set_new(o, "nonce", json_string(p->nonce));
	json_object_set_new(o, "truncate", json_integer(p->truncate_bits));
	json_object_set_new(o, "domains", d);
	char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	return s;
}

/* ---- logging ---- */

void fed_log(sqlite3 *db, const char *peer, const char *what, const char *detail, int64_t now_us)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT INTO peer_log(ts_us, peer, what, detail) VALUES(?1,?2,?3,?4)",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, now_us);
		sqlite3_bind_text(st, 2, peer, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, what, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 4, detail, -1, SQLITE_STATIC);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	/* keep the log bounded */
	sqlite3_exec(db, "DELETE FROM peer_log WHERE id <= (SELECT max(id) - 10000 FROM peer_log)",
		     NULL, NULL, NULL);
	fprintf(stderr, "mxbait report: peer %s: %s: %s\n", peer, what, detail ? detail : "");
}

/* ---- import ---- */

static long count_entries(sqlite3 *db, const char *peer)
{
	sqlite3_stmt *q = NULL;
	long n = 0;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM peer_entries WHERE peer = ?1", -1, &q,
			       NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, peer, -1, SQLITE_STATIC);
		if (sqlite3_step(q) == SQLITE_ROW)
			n = sqlite3_column_int64(q, 0);
	}
	sqlite3_finalize(q);
	return n;
}

static bool entry_exists(sqlite3 *db, const char *peer, const struct fed_entry *e)
{
	sqlite3_stmt *q = NULL;
	bool yes = false;
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM peer_entries WHERE peer = ?1 AND kind = ?2"
				   " AND value = ?3", -1, &q, NULL) == SQLITE_OK) {
		sqlite3_bind_text(q, 1, peer, -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 2, fed_kind_name(e->kind), -1, SQLITE_STATIC);
		sqlite3_bind_text(q, 3, e->value, -1, SQLITE_STATIC);
		yes = sqlite3_step(q) == SQLITE_ROW;
	}
	sqlite3_finalize(q);
	return yes;
}

int fed_import_entry(void *ctx, const struct fed_entry *e)
{
	struct fed_import *im = ctx;
	sqlite3 *db = im->db;
	int64_t exp = e->expires_us;
	if (exp > im->now_us + im->ttl_us)
		exp = im->now_us + im->ttl_us;
	if (e->kind == FK_TRAP) {
		if (strcmp(e->to, im->me)) {
			im->skipped++; /* for another subscriber */
			return 0;
		}
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, "INSERT INTO peer_traps(peer, tag, hash, expires_us, seq,"
					   " received_us) VALUES(?1,?2,?3,?4,?5,?6) ON CONFLICT DO UPDATE"
					   " SET expires_us = excluded.expires_us, seq = excluded.seq,"
					   " received_us = excluded.received_us", -1, &st, NULL) != SQLITE_OK)
			return 1;
		sqlite3_bind_text(st, 1, im->peer, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, e->tag, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, exp);
		sqlite3_bind_int64(st, 5, (sqlite3_int64)im->seq);
		sqlite3_bind_int64(st, 6, im->now_us);
		int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
		sqlite3_finalize(st);
		if (rc == 0)
			im->imported++;
		return rc;
	}
	/* a peer that lists what our allowlist protects is contradicted: it loses trust,
	 * and the entry is not kept */
	struct indicator ind = {.kind = (enum ind_kind)e->kind, .value = e->value,
				.source = "peer", .flags = e->flags, .evidence = ""};
	if (im->al && allowlist_refuses(im->al, &ind)) {
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(db, "INSERT OR IGNORE INTO peer_contradictions(peer, kind, value,"
					   " seen_us, reason) VALUES(?1,?2,?3,?4,'allowlisted')", -1, &st,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_text(st, 1, im->peer, -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 2, fed_kind_name(e->kind), -1, SQLITE_STATIC);
			sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 4, im->now_us);
			if (sqlite3_step(st) == SQLITE_DONE && sqlite3_changes(db) > 0)
				im->contradictions++;
		}
		sqlite3_finalize(st);
		return 0;
	}
	if (im->max_entries > 0) {
		/* bounded per peer: a new value beyond the bound is dropped.  The count is
		 * taken once, then estimated (every import counted as new); only near the
		 * bound is it taken again and each value checked. */
		if (im->have < 0 || im->have >= im->max_entries)
			im->have = count_entries(db, im->peer);
		if (im->have >= im->max_entries && !entry_exists(db, im->peer, e)) {
			im->skipped++;
			return 0;
		}
		im->have++;
	}
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db,
			       "INSERT INTO peer_entries(peer, kind, value, flags, first_seen_us,"
			       " last_seen_us, expires_us, confidence, guesses, probes, messages, logins,"
			       " members, minhash, seq, received_us)"
			       " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)"
			       " ON CONFLICT(peer, kind, value) DO UPDATE SET flags = excluded.flags,"
			       " first_seen_us = excluded.first_seen_us, last_seen_us = excluded.last_seen_us,"
			       " expires_us = excluded.expires_us, confidence = excluded.confidence,"
			       " guesses = excluded.guesses, probes = excluded.probes,"
			       " messages = excluded.messages, logins = excluded.logins,"
			       " members = excluded.members, minhash = coalesce(excluded.minhash, minhash),"
			       " seq = excluded.seq, received_us = excluded.received_us",
			       -1, &st, NULL) != SQLITE_OK)
		return 1;
	sqlite3_bind_text(st, 1, im->peer, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, fed_kind_name(e->kind), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, e->value, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, e->flags, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, e->first_us);
	sqlite3_bind_int64(st, 6, e->last_us);
	sqlite3_bind_int64(st, 7, exp);
	sqlite3_bind_int(st, 8, e->confidence);
	sqlite3_bind_int64(st, 9, e->guesses);
	sqlite3_bind_int64(st, 10, e->probes);
	sqlite3_bind_int64(st, 11, e->messages);
	sqlite3_bind_int64(st, 12, e->logins);
	sqlite3_bind_int64(st, 13, e->members);
	if (e->has_minhash)
		sqlite3_bind_blob(st, 14, e->minhash, FEED_MINHASH_BYTES, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 14);
	sqlite3_bind_int64(st, 15, (sqlite3_int64)im->seq);
	sqlite3_bind_int64(st, 16, im->now_us);
	int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : 1;
	sqlite3_finalize(st);
	if (rc == 0)
		im->imported++;
	return rc;
}

/* ---- transport ---- */

struct body {
	struct buf b;
	bool too_big;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
	struct body *bd = arg;
	if (buf_append(&bd->b, p, size * n) != 0) {
		bd->too_big = true;
		return 0;
	}
	return size * n;
}

struct peer {
	char id[FEED_KEYID_LEN];
	uint8_t pk[32];
	char url[1024];
	char pin[200];
	char token[256];
	uint64_t last_seq;
	char last_hash[FEED_HASH_HEX];
	int64_t manifest_us;
	char *profile;
};

/* GET base/rel into bd (bounded); 0 on HTTP 200, else -1 with a reason. */
static int fetch(const struct fed_ctx *c, const struct peer *p, const char *rel, size_t max,
		 struct body *bd, char *why, size_t whylen)
{
	buf_init(&bd->b, max);
	bd->too_big = false;
	CURL *h = curl_easy_init();
	if (!h) {
		snprintf(why, whylen, "no curl handle");
		return -1;
	}
	char url[1200];
	size_t ul = strlen(p->url);
	snprintf(url, sizeof(url), "%s%s%s", p->url, ul && p->url[ul - 1] == '/' ? "" : "/", rel);
	/* a token travels encrypted, or not off this host */
	bool https = !strncmp(p->url, "https://", 8) || !strncmp(p->url, "http://127.", 11) ||
		     !strncmp(p->url, "http://[::1]", 12) || !strncmp(p->url, "http://localhost", 16);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
	if (p->pin[0]) {
		/* the certificate is the peer's own (self-signed): its key is what we trust;
		 * the pin is checked whatever VERIFYPEER says */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
		curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, p->pin);
	} else {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (c->ca_file && *c->ca_file)
			curl_easy_setopt(h, CURLOPT_CAINFO, c->ca_file);
	}
	struct curl_slist *hdr = NULL;
	char auth[300];
	if (p->token[0] && https) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", p->token);
		hdr = curl_slist_append(hdr, auth);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	}
	curl_easy_setopt(h, CURLOPT_USERAGENT, "mxbait/" MXB_VERSION " (feed)");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, bd);
	CURLcode rc = curl_easy_perform(h);
	long status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(h);
	curl_slist_free_all(hdr);
	if (bd->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(why, whylen, "%s: larger than %zu bytes", rel, max);
		return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s: %s", rel, curl_easy_strerror(rc));
		return -1;
	}
	if (status != 200) {
		snprintf(why, whylen, "%s: HTTP %ld", rel, status);
		return -1;
	}
	return 0;
}

/* ---- one peer ---- */

static void set_status(sqlite3 *db, const struct peer *p, const char *status, const char *counter,
		       const char *error, int64_t next_us, int64_t now_us)
{
	/* counter: a column name from this file, never outside text */
	char sql[400];
	snprintf(sql, sizeof(sql), "UPDATE peers SET status = ?2, last_error = ?3, pulled_us = ?4,"
		 " next_pull_us = ?5%s%s%s%s WHERE id = ?1", counter ? ", " : "",
		 counter ? counter : "", counter ? " = 1 + " : "", counter ? counter : "");
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
		if (error)
			sqlite3_bind_text(st, 3, error, -1, SQLITE_STATIC);
		else
			sqlite3_bind_null(st, 3);
		sqlite3_bind_int64(st, 4, now_us);
		sqlite3_bind_int64(st, 5, next_us);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

static void store_profile(const struct fed_ctx *c, const struct peer *p, const struct fed_manifest *m)
{
	for (size_t i = 0; i < m->n_profiles; i++) {
		if (strcmp(m->profiles[i].to, c->key->id))
			continue;
		struct fed_trap_profile prof;
		if (fed_profile_open(c->key, m->profiles[i].box, &prof) != 0)
			return;
		char *json = profile_to_json(&prof);
		memset(&prof, 0, sizeof(prof));
		if (json && (!p->profile || strcmp(json, p->profile))) {
			sqlite3_stmt *st = NULL;
			if (sqlite3_prepare_v2(c->db, "UPDATE peers SET profile = ?2, traps_sent_us = 0"
						      " WHERE id = ?1", -1, &st, NULL) == SQLITE_OK) {
				sqlite3_bind_text(st, 1, p->id, -1, SQLITE_STATIC);
				sqlite3_bind_text(st, 2, json, -1, SQLITE_STATIC);
				sqlite3_step(st);
			}
			sqlite3_finalize(st);
		}
		free(json);
		return;
	}
}

static void pull_peer(const struct fed_ctx *c, struct peer *p, struct fed_stats *st)
{
	sqlite3 *db = c->db;
	int64_t now = c->now_us;
	int64_t next = now + (int64_t)c->cfg->peer_pull_interval_ms * 1000;
	char why[600];
	struct body bd;
	if (fetch(c, p, "manifest", FEED_MANIFEST_MAX, &bd, why, sizeof(why)) != 0) {
		buf_free(&bd.b);
		set_status(db, p, "error", NULL, why, next, now);
		return;
	}
	struct fed_manifest *m = malloc(sizeof(*m));
	const char *reason = NULL;
	int rc = m ? fed_manifest_parse(p->pk, bd.b.data ? bd.b.data : "", bd.b.len, m, &reason)
		   : FED_ERR_SIZE;
	buf_free(&bd.b);
	if (rc != FED_OK) {
		snprintf(why, sizeof(why), "manifest refused: %s", reason ? reason : fed_result_name(rc));
		fed_log(db, p->id, rc == FED_ERR_SIGNATURE ? "signature" : "malformed", why, now);
		set_status(db, p, rc == FED_ERR_SIGNATURE ? "signature" : "error",
			   rc == FED_ERR_SIGNATURE ? "bad_signatures" : NULL, why, next, now);
		st->refused++;
		free(m);
		return;
	}
	if (m->created_us < p->manifest_us) {
		snprintf(why, sizeof(why), "manifest of %lld is older than the one of %lld already seen",
			 (long long)m->created_us, (long long)p->manifest_us);
		fed_log(db, p->id, "replay", why, now);
		set_status(db, p, "replay", "replays", why, next, now);
		st->refused++;
		free(m);
		return;
	}
	if (m->head < p->last_seq ||
	    (m->head == p->last_seq && p->last_seq && strcmp(m->head_hash, p->last_hash))) {
		snprintf(why, sizeof(why), "manifest head %llu (%.12s) behind or beside segment %llu"
			 " (%.12s) already accepted", (unsigned long long)m->head, m->head_hash,
			 (unsigned long long)p->last_seq, p->last_hash);
		fed_log(db, p->id, "rollback", why, now);
		set_status(db, p, "rollback", "rollbacks", why, next, now);
		st->refused++;
		free(m);
		return;
	}
	store_profile(c, p, m);
	sqlite3_stmt *up = NULL;
	if (sqlite3_prepare_v2(db, "UPDATE peers SET manifest_us = ?2 WHERE id = ?1", -1, &up, NULL) ==
	    SQLITE_OK) {
		sqlite3_bind_text(up, 1, p->id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(up, 2, m->created_us);
		sqlite3_step(up);
	}
	sqlite3_finalize(up);
	const char *status = "ok";
	const char *counter = NULL;
	why[0] = '\0';
	uint64_t want = p->last_seq + 1;
	bool check_chain = p->last_seq > 0;
	if (m->head >= want && m->oldest > want) {
		if (p->last_seq > 0) {
			snprintf(why, sizeof(why), "segments %llu-%llu were pruned before we read them",
				 (unsigned long long)want, (unsigned long long)m->oldest - 1);
			fed_log(db, p->id, "gap", why, now);
			status = "gap";
			counter = "gaps";
		}
		want = m->oldest;
		check_chain = false;
	}
	int n = 0;
	while (want <= m->head && n < FED_SEGMENTS_PER_PULL) {
		char rel[40];
		snprintf(rel, sizeof(rel), "seg/%llu", (unsigned long long)want);
		if (fetch(c, p, rel, FEED_SEGMENT_MAX, &bd, why, sizeof(why)) != 0) {
			buf_free(&bd.b);
			status = "error";
			counter = NULL;
			break;
		}
		struct fed_segment_header h;
		char hash[FEED_HASH_HEX];
		fed_sha256_hex(bd.b.data ? bd.b.data : "", bd.b.len, hash);
		/* a dry run first: nothing is imported from a segment that fails anywhere */
		rc = fed_segment_parse(p->pk, bd.b.data ? bd.b.data : "", bd.b.len, &h, NULL, NULL,
				       &reason);
		const char *what = NULL;
		if (rc != FED_OK) {
			what = rc == FED_ERR_SIGNATURE ? "signature" : "malformed";
			snprintf(why, sizeof(why), "segment %llu refused: %s", (unsigned long long)want,
				 reason ? reason : fed_result_name(rc));
		} else if (h.seq != want) {
			what = "replay";
			snprintf(why, sizeof(why), "asked for segment %llu, got segment %llu",
				 (unsigned long long)want, (unsigned long long)h.seq);
		} else if (check_chain && strcmp(h.prev, p->last_hash)) {
			what = "rollback";
			snprintf(why, sizeof(why), "segment %llu does not continue segment %llu"
				 " (prev %.12s, have %.12s)", (unsigned long long)want,
				 (unsigned long long)p->last_seq, h.prev, p->last_hash);
		} else if (h.seq == m->head && strcmp(hash, m->head_hash)) {
			what = "rollback";
			snprintf(why, sizeof(why), "segment %llu is not the manifest's head",
				 (unsigned long long)want);
		}
		if (what) {
			buf_free(&bd.b);
			fed_log(db, p->id, what, why, now);
			st->refused++;
			status = !strcmp(what, "malformed") ? "error" : what;
			counter = !strcmp(what, "signature") ? "bad_signatures"
				  : !strcmp(what, "replay") ? "replays"
				  : !strcmp(what, "rollback") ? "rollbacks" : NULL;
			break;
		}
		struct fed_import im = {
			.db = db, .al = c->al, .peer = p->id, .me = c->key->id, .seq = want,
			.now_us = now, .ttl_us = (int64_t)c->cfg->feed_entry_ttl_ms * 1000,
			.max_entries = c->cfg->peer_max_entries, .have = -1,
		};
		sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		rc = fed_segment_parse(p->pk, bd.b.data, bd.b.len, &h, fed_import_entry, &im, &reason);
		buf_free(&bd.b);
		sqlite3_stmt *u = NULL;
		if (rc == FED_OK &&
		    sqlite3_prepare_v2(db, "UPDATE peers SET last_seq = ?2, last_hash = ?3,"
					   " contradictions = contradictions + ?4 WHERE id = ?1", -1, &u,
				       NULL) == SQLITE_OK) {
			sqlite3_bind_text(u, 1, p->id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(u, 2, (sqlite3_int64)want);
			sqlite3_bind_text(u, 3, hash, -1, SQLITE_STATIC);
			sqlite3_bind_int64(u, 4, im.contradictions);
			rc = sqlite3_step(u) == SQLITE_DONE ? FED_OK : FED_ERR_SYNTAX;
		} else if (rc == FED_OK) {
			rc = FED_ERR_SYNTAX;
		}
		sqlite3_finalize(u);
		if (rc != FED_OK || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			snprintf(why, sizeof(why), "segment %llu: cannot store: %s",
				 (unsigned long long)want, sqlite3_errmsg(db));
			status = "error";
			counter = NULL;
			break;
		}
		if (im.contradictions) {
			char d[200];
			snprintf(d, sizeof(d), "segment %llu: %ld allowlisted value(s) listed",
				 (unsigned long long)want, im.contradictions);
			fed_log(db, p->id, "contradiction", d, now);
		}
		st->imported += im.imported;
		st->contradictions += im.contradictions;
		st->pulled_segments++;
		p->last_seq = want;
		snprintf(p->last_hash, sizeof(p->last_hash), "%s", hash);
		check_chain = true;
		want++;
		n++;
	}
	if (want <= m->head && n >= FED_SEGMENTS_PER_PULL && !strcmp(status, "ok"))
		next = now; /* more waiting: next pass */
	set_status(db, p, status, counter, why[0] ? why : NULL, next, now);
	free(m);
}

int fed_pull(const struct fed_ctx *c, struct fed_stats *st, char **err_r)
{
	(void)err_r;
	sqlite3_stmt *q = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT id, key, url, coalesce(pin, ''), coalesce(token_file, ''),"
				      " last_seq, last_hash, manifest_us, profile FROM peers"
				      " WHERE next_pull_us <= ?1 OR ?2 ORDER BY id", -1, &q, NULL) !=
	    SQLITE_OK)
		return -1;
	sqlite3_bind_int64(q, 1, c->now_us);
	sqlite3_bind_int(q, 2, c->force_pull);
	struct peer *v = NULL;
	size_t n = 0;
	while (sqlite3_step(q) == SQLITE_ROW) {
		struct peer *nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		struct peer *p = &v[n];
		memset(p, 0, sizeof(*p));
		snprintf(p->id, sizeof(p->id), "%s", (const char *)sqlite3_column_text(q, 0));
		if (fed_key_parse_public((const char *)sqlite3_column_text(q, 1), p->pk) != 0)
			continue;
		snprintf(p->url, sizeof(p->url), "%s", (const char *)sqlite3_column_text(q, 2));
		snprintf(p->pin, sizeof(p->pin), "%s", (const char *)sqlite3_column_text(q, 3));
		const char *tf = (const char *)sqlite3_column_text(q, 4);
		if (tf && *tf) {
			FILE *f = fopen(tf, "re");
			if (f) {
				if (fgets(p->token, sizeof(p->token), f))
					p->token[strcspn(p->token, "\r\n")] = '\0';
				fclose(f);
			}
		}
		p->last_seq = (uint64_t)sqlite3_column_int64(q, 5);
		snprintf(p->last_hash, sizeof(p->last_hash), "%s", (const char *)sqlite3_column_text(q, 6));
		p->manifest_us = sqlite3_column_int64(q, 7);
		const char *prof = (const char *)sqlite3_column_text(q, 8);
		p->profile = prof ? strdup(prof) : NULL;
		n++;
	}
	sqlite3_finalize(q);
	for (size_t i = 0; i < n; i++) {
		pull_peer(c, &v[i], st);
		free(v[i].profile);
		memset(v[i].token, 0, sizeof(v[i].token));
	}
	free(v);
	return 0;
}
