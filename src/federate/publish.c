/*
 * publish: this sensor's side of the feed (see federate.h, docs/federation.md).
 *
 * Order of writes, and why a crash cannot fork the chain: a segment file is written
 * under a temporary name, fsync'd and renamed before intel.db records it
 * (feed_segments); a file the database does not know (a crash in between) is adopted
 * at the next pass (its signature checked with our own key), never rewritten with
 * other bytes under the same number.  The cursor of published indicators moves only
 * after the segments are recorded: a crash republishes some entries, which is
 * harmless (an entry replaces the publisher's earlier one).  The manifest is
 * rewritten last, every pass, with a newer creation time.
 *
 * What may be published is decided in one place, indicators_each(IND_SHARE): local
 * rows only.  Then: the confidence floor, the allowlist, and victims (recipients)
 * only with feed_share_victims.  Captured passwords never appear: trap credentials
 * leave only as keyed hashes under a subscriber's own Dovecot nonce.
 */
#include "federate/federate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "federate/feed_path.h"
#include "intel/allowlist.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"
#include "util/buf.h"

#define ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"

struct seg_rec {
	uint64_t seq;
	char hash[FEED_HASH_HEX];
	int64_t created_us;
	uint32_t entries;
};

struct pub {
	const struct fed_ctx *c;
	struct fed_stats *st;
	struct fed_writer *w;
	uint64_t head;
	char head_hash[FEED_HASH_HEX];
	struct seg_rec *recs;
	size_t n_recs, cap_recs;
	int64_t max_updated;
	sqlite3_stmt *minhash;
	int error;
	char *err;
};

static int write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
	char tmp[4400];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -1;
	const char *p = data;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(fd);
			unlink(tmp);
			return -1;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static int mkdirs(const char *data_dir)
{
	char p[4200];
	snprintf(p, sizeof(p), "%s/" FEED_DIR, data_dir);
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return -1;
	snprintf(p, sizeof(p), "%s/" FEED_DIR "/seg", data_dir);
	if (mkdir(p, 0755) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static char *read_file(const char *path, size_t max, size_t *len_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return NULL;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
		close(fd);
		return NULL;
	}
	char *b = malloc((size_t)st.st_size + 1);
	size_t got = 0;
	while (b && got < (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
		if (r <= 0) {
			free(b);
			b = NULL;
			break;
		}
		got += (size_t)r;
	}
	close(fd);
	if (b) {
		b[got] = '\0';
		*len_r = got;
	}
	return b;
}

static int record_segments(sqlite3 *db, const struct seg_rec *r, size_t n)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "INSERT OR REPLACE INTO feed_segments(seq, hash, created_us,"
				   " entries) VALUES(?1, ?2, ?3, ?4)", -1, &st, NULL) != SQLITE_OK)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (sqlite3_int64)r[i].seq);
		sqlite3_bind_text(st, 2, r[i].hash, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, r[i].created_us);
		sqlite3_bind_int64(st, 4, r[i].entries);
		rc = sqlite3_step(st) == SQLITE_DONE ? 0 : -1;
	}
	sqlite3_finalize(st);
	return rc;
}

static void load_head(sqlite3 *db, uint64_t *head, char hash[FEED_HASH_HEX])
{
	*head = 0;
	snprintf(hash, FEED_HASH_HEX, "%s", ZERO_HASH);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT seq, hash FROM feed_segments ORDER BY seq DESC LIMIT 1",
			       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		*head = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(hash, FEED_HASH_HEX, "%s", (const char *)sqlite3_column_text(st, 1));
	}
	sqlite3_finalize(st);
}

/* Segment files after the recorded head (a crash between rename and record). */
static void adopt_orphans(struct pub *p)
{
	for (;;) {
		char path[4400];
		fed_segment_file(p->c->data_dir, p->head + 1, path, sizeof(path));
		size_t len = 0;
		char *data = read_file(path, FEED_SEGMENT_MAX, &len);
		if (!data)
			return;
		struct fed_segment_header h;
		int rc = fed_segment_parse(p->c->key->pk, data, len, &h, NULL, NULL, NULL);
		struct seg_rec r = {.seq = p->head + 1, .created_us = h.created_us, .entries = h.count};
		fed_sha256_hex(data, len, r.hash);
		free(data);
		if (rc != FED_OK || h.seq != p->head + 1 || strcmp(h.prev, p->head_hash)) {
			/* not a continuation of our chain: set it aside, never serve it */
			char bad[4500];
			snprintf(bad, sizeof(bad), "%s.refused", path);
			rename(path, bad);
			return;
		}
		if (record_segments(p->c->db, &r, 1) != 0)
			return;
		p->head = r.seq;
		snprintf(p->head_hash, sizeof(p->head_hash), "%s", r.hash);
	}
}

static int flush_segment(struct pub *p)
{
	if (!p->w)
		return 0;
	if (fed_writer_count(p->w) == 0) {
		fed_writer_free(&p->w);
		return 0;
	}
	uint32_t n = fed_writer_count(p->w);
	struct seg_rec r = {.seq = p->head + 1, .created_us = p->c->now_us, .entries = n};
	size_t len = 0;
	char *data = fed_writer_finish(&p->w, &len, r.hash);
	if (!data)
		return -1;
	char path[4400];
	fed_segment_file(p->c->data_dir, r.seq, path, sizeof(path));
	int rc = write_atomic(path, data, len, 0644);
	free(data);
	if (rc != 0) {
		if (asprintf(&p->err, "%s: %s", path, strerror(errno)) < 0)
			p->err = NULL;
		return -1;
	}
	if (p->n_recs == p->cap_recs) {
		size_t nc = p->cap_recs ? p->cap_recs * 2 : 16;
		struct seg_rec *nr = realloc(p->recs, nc * sizeof(*nr));
		if (!nr)
			return -1;
		p->recs = nr;
		p->cap_recs = nc;
	}
	p->recs[p->n_recs++] = r;
	p->head = r.seq;
	snprintf(p->head_hash, sizeof(p->head_hash), "%s", r.hash);
	p->st->segments++;
	return 0;
}

static int add_entry(struct pub *p, const struct fed_entry *e)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		if (!p->w) {
			p->w = fed_writer_new(p->c->key, p->head + 1, p->head_hash, p->c->now_us);
			if (!p->w)
				return -1;
		}
		if (fed_writer_add(p->w, e) == 0)
			return 0;
		if (fed_writer_count(p->w) == 0)
			return 1; /* the entry itself is refused: skipped */
		if (flush_segment(p) != 0)
			return -1; /* full: a new segment */
	}
	return 1;
}

/* Indicator flags as feed flags: tokens of [a-z0-9_-], at most 16, 32 bytes each. */
static void copy_flags(char *out, size_t outlen, const char *in)
{
	size_t o = 0, tokens = 0;
	out[0] = '\0';
	for (const char *q = in ? in : ""; *q && tokens < 16;) {
		while (*q == ' ')
			q++;
		size_t n = strcspn(q, " ");
		if (!n)
			break;
		bool ok = n <= 32;
		for (size_t i = 0; ok && i < n; i++)
			ok = (q[i] >= 'a' && q[i] <= 'z') || (q[i] >= '0' && q[i] <= '9') ||
			     q[i] == '-' || q[i] == '_';
		if (ok && o + n + 2 < outlen) {
			if (o)
				out[o++] = ' ';
			memcpy(out + o, q, n);
			o += n;
			out[o] = '\0';
			tokens++;
		}
		q += n;
	}
}

static int each_indicator(void *ctx, const struct indicator *ind)
{
	struct pub *p = ctx;
	const struct fed_ctx *c = p->c;
	if (ind->updated_us > p->max_updated)
		p->max_updated = ind->updated_us;
	if (strcmp(ind->source, "local") || allowlist_refuses(c->al, ind))
		return 0;
	int64_t ttl = (int64_t)c->cfg->feed_entry_ttl_ms * 1000;
	if (ind->last_seen_us + ttl < c->now_us)
		return 0;
	struct fed_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -1;
	e->kind = (enum fed_kind)ind->kind;
	size_t vl = strlen(ind->value);
	if (vl > FEED_VALUE_MAX || !fed_value_ok(e->kind, ind->value, vl)) {
		free(e);
		return 0;
	}
	memcpy(e->value, ind->value, vl + 1);
	copy_flags(e->flags, sizeof(e->flags), ind->flags);
	e->first_us = ind->first_seen_us;
	e->last_us = ind->last_seen_us;
	e->expires_us = ind->last_seen_us + ttl;
	e->guesses = ind->guesses;
	e->probes = ind->probes;
	e->messages = ind->messages;
	e->logins = ind->logins;
	e->members = ind->members;
	e->confidence = ind->confidence;
	if (e->kind == FK_CAMPAIGN && p->minhash) {
		sqlite3_reset(p->minhash);
		sqlite3_bind_text(p->minhash, 1, ind->value, -1, SQLITE_STATIC);
		if (sqlite3_step(p->minhash) == SQLITE_ROW &&
		    sqlite3_column_bytes(p->minhash, 0) == FEED_MINHASH_BYTES) {
			memcpy(e->minhash, sqlite3_column_blob(p->minhash, 0), FEED_MINHASH_BYTES);
			e->has_minhash = true;
		}
	}
	int rc = add_entry(p, e);
	free(e);
	if (rc < 0)
		return -1;
	if (rc == 0)
		p->st->published++;
	return 0;
}

/* ---- trap hashes for peers ---- */

struct trap_emit {
	struct pub *p;
	const char *to;
	int64_t expires_us;
	int error;
	long n;
};

static void emit_trap(void *ctx, const char *tag, const char *hash)
{
	struct trap_emit *t = ctx;
	struct fed_entry *e = calloc(1, sizeof(*e));
	if (!e) {
		t->error = -1;
		return;
	}
	e->kind = FK_TRAP;
	snprintf(e->value, sizeof(e->value), "%s", hash);
	snprintf(e->to, sizeof(e->to), "%s", t->to);
	snprintf(e->tag, sizeof(e->tag), "%s", tag);
	e->expires_us = t->expires_us;
	int rc = add_entry(t->p, e);
	free(e);
	if (rc < 0)
		t->error = -1;
	else if (rc == 0)
		t->n++;
}

/* Parse a stored profile (JSON written by pull.c) back. */
int fed_profile_from_json(const char *json, struct fed_trap_profile *p);

static int publish_traps(struct pub *p)
{
	const struct fed_ctx *c = p->c;
	if (!(c->sources & INTEL_HAS_EVENTS))
		return 0;
	long accounts = 0;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT count(*) FROM ev.accounts WHERE password IS NOT NULL"
				      " AND password != ''", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		accounts = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	if (accounts == 0)
		return 0;
	int64_t ttl = (int64_t)c->cfg->feed_entry_ttl_ms * 1000;
	sqlite3_stmt *peers = NULL, *acc = NULL, *upd = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT id, profile FROM peers WHERE profile IS NOT NULL"
				      " AND (traps_sent != ?1 OR traps_sent_us < ?2)", -1, &peers,
			       NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "SELECT username, password FROM ev.accounts WHERE password"
				      " IS NOT NULL AND password != '' ORDER BY username LIMIT 200000",
			       -1, &acc, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(c->db, "UPDATE peers SET traps_sent = ?2, traps_sent_us = ?3"
				      " WHERE id = ?1", -1, &upd, NULL) != SQLITE_OK) {
		sqlite3_finalize(peers);
		sqlite3_finalize(acc);
		sqlite3_finalize(upd);
		return -1;
	}
	sqlite3_bind_int64(peers, 1, accounts);
	sqlite3_bind_int64(peers, 2, c->now_us - ttl / 2);
	int rc = 0;
	/* ids first: the updates below must not run while the peers statement walks */
	char (*ids)[FEED_KEYID_LEN] = NULL;
	struct fed_trap_profile *profs = NULL;
	size_t n = 0;
	while (sqlite3_step(peers) == SQLITE_ROW && n < FEED_PROFILES_MAX) {
		void *ni = realloc(ids, (n + 1) * sizeof(*ids));
		void *np = ni ? realloc(profs, (n + 1) * sizeof(*profs)) : NULL;
		if (ni)
			ids = ni;
		if (np)
			profs = np;
		if (!ni || !np) {
			rc = -1;
			break;
		}
		snprintf(ids[n], FEED_KEYID_LEN, "%s", (const char *)sqlite3_column_text(peers, 0));
		if (fed_profile_from_json((const char *)sqlite3_column_text(peers, 1), &profs[n]) == 0)
			n++;
	}
	sqlite3_finalize(peers);
	for (size_t i = 0; rc == 0 && i < n; i++) {
		struct trap_emit t = {.p = p, .to = ids[i], .expires_us = c->now_us + ttl};
		sqlite3_reset(acc);
		while (rc == 0 && sqlite3_step(acc) == SQLITE_ROW) {
			const char *u = (const char *)sqlite3_column_text(acc, 0);
			const char *pw = (const char *)sqlite3_column_text(acc, 1);
			if (u && pw && fed_trap_hashes(&profs[i], u, pw, emit_trap, &t) < 0)
				break; /* a mechanism we cannot compute: nothing for this peer */
			rc = t.error;
		}
		p->st->trap_hashes += t.n;
		sqlite3_reset(upd);
		sqlite3_bind_text(upd, 1, ids[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(upd, 2, accounts);
		sqlite3_bind_int64(upd, 3, c->now_us);
		sqlite3_step(upd);
	}
	if (profs)
		sodium_memzero(profs, n * sizeof(*profs));
	free(profs);
	free(ids);
	sqlite3_finalize(acc);
	sqlite3_finalize(upd);
	return rc;
}

/* ---- pruning and the manifest ---- */

static void prune(struct pub *p, uint64_t *oldest_r)
{
	const struct fed_ctx *c = p->c;
	int64_t keep_after = c->now_us - (int64_t)c->cfg->feed_entry_ttl_ms * 1000;
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(c->db, "SELECT seq FROM feed_segments WHERE created_us < ?1"
				      " AND seq < ?2", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, keep_after);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)p->head);
		while (sqlite3_step(st) == SQLITE_ROW) {
			char path[4400];
			fed_segment_file(c->data_dir, (uint64_t)sqlite3_column_int64(st, 0), path,
					 sizeof(path));
			unlink(path);
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(c->db, "DELETE FROM feed_segments WHERE created_us < ?1 AND seq < ?2",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, keep_after);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)p->head);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	*oldest_r = 0;
	if (sqlite3_prepare_v2(c->db, "SELECT min(seq) FROM feed_segments", -1, &st, NULL) ==
		    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		*oldest_r = (uint64_t)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
}

static int write_manifest(struct pub *p, uint64_t oldest)
{
	const struct fed_ctx *c = p->c;
	const struct mxb_config *cfg = c->cfg;
	struct fed_manifest *m = calloc(1, sizeof(*m));
	if (!m)
		return -1;
	/* strictly increasing, even if the clock stepped back: subscribers refuse an older
	 * manifest as a replay */
	int64_t last = intel_cursor_get(c->db, "feed_manifest");
	m->created_us = c->now_us > last ? c->now_us : last + 1;
	intel_cursor_set(c->db, "feed_manifest", m->created_us);
	m->head = p->head;
	m->oldest = oldest;
	snprintf(m->head_hash, sizeof(m->head_hash), "%s", p->head_hash);
	/* our own trap profile, sealed to each peer: only when the guard sees Dovecot's
	 * password hashes (a nonce configured) */
	if (cfg->dovecot_policy_hash_nonce && *cfg->dovecot_policy_hash_nonce) {
		struct fed_trap_profile prof;
		memset(&prof, 0, sizeof(prof));
		snprintf(prof.mech, sizeof(prof.mech), "%s", cfg->dovecot_policy_hash_mech);
		snprintf(prof.nonce, sizeof(prof.nonce), "%s", cfg->dovecot_policy_hash_nonce);
		prof.truncate_bits = cfg->dovecot_policy_hash_truncate;
		for (size_t i = 0; i < cfg->n_local_domains && prof.n_domains < 16; i++)
			if (strlen(cfg->local_domains[i]) < sizeof(prof.domains[0]))
				snprintf(prof.domains[prof.n_domains++], sizeof(prof.domains[0]),
					 "%s", cfg->local_domains[i]);
		sqlite3_stmt *st = NULL;
		if (sqlite3_prepare_v2(c->db, "SELECT id, key FROM peers ORDER BY id", -1, &st,
				       NULL) == SQLITE_OK) {
			while (sqlite3_step(st) == SQLITE_ROW && m->n_profiles < FEED_PROFILES_MAX) {
				uint8_t pk[32];
				struct fed_profile_box *b = &m->profiles[m->n_profiles];
				if (fed_key_parse_public((const char *)sqlite3_column_text(st, 1), pk))
					continue;
				snprintf(b->to, sizeof(b->to), "%s",
					 (const char *)sqlite3_column_text(st, 0));
				if (fed_profile_seal(&prof, pk, b->box, sizeof(b->box)) == 0)
					m->n_profiles++;
			}
		}
		sqlite3_finalize(st);
		sodium_memzero(&prof, sizeof(prof));
	}
	size_t len = 0;
	char *text = fed_manifest_write(c->key, m, &len);
	free(m);
	if (!text)
		return -1;
	char path[4400];
	fed_manifest_file(c->data_dir, path, sizeof(path));
	int rc = write_atomic(path, text, len, 0644);
	free(text);
	return rc;
}

int fed_publish(const struct fed_ctx *c, struct fed_stats *st, char **err_r)
{
	if (mkdirs(c->data_dir) != 0) {
		if (asprintf(err_r, "%s/" FEED_DIR ": %s", c->data_dir, strerror(errno)) < 0)
			*err_r = NULL;
		return -1;
	}
	struct pub p = {.c = c, .st = st};
	load_head(c->db, &p.head, p.head_hash);
	adopt_orphans(&p);
	int64_t cursor = intel_cursor_get(c->db, "feed_published");
	p.max_updated = cursor;
	if (c->sources & INTEL_HAS_ANALYSIS)
		sqlite3_prepare_v2(c->db, "SELECT rep_minhash FROM an.campaigns WHERE key = ?1", -1,
				   &p.minhash, NULL);
	unsigned kinds = 0;
	for (int k = 0; k < IND_KIND_COUNT; k++)
		if (c->cfg->feed_share_victims || !(IND_VICTIM_KINDS & IND_BIT(k)))
			kinds |= IND_BIT(k);
	struct indicator_filter f = {
		.kinds = kinds,
		.min_confidence = (int)c->cfg->export_min_confidence,
		.purpose = IND_SHARE,
		.updated_after_us = cursor,
	};
	/* one snapshot for the walk over every kind and the cursor it moves: a derivation
	 * committing in between must not slip under the cursor unpublished */
	sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL);
	int rc = indicators_each(c->db, &f, each_indicator, &p);
	sqlite3_finalize(p.minhash);
	if (rc == 0)
		rc = publish_traps(&p);
	sqlite3_exec(c->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	if (rc == 0)
		rc = flush_segment(&p);
	fed_writer_free(&p.w);
	if (rc == 0 && p.n_recs) {
		sqlite3_exec(c->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		rc = record_segments(c->db, p.recs, p.n_recs);
		if (rc == 0)
			rc = intel_cursor_set(c->db, "feed_published", p.max_updated);
		sqlite3_exec(c->db, rc == 0 ? "COMMIT" : "ROLLBACK", NULL, NULL, NULL);
	} else if (rc == 0 && p.max_updated > cursor) {
		rc = intel_cursor_set(c->db, "feed_published", p.max_updated);
	}
	free(p.recs);
	if (rc != 0) {
		if (p.err)
			*err_r = p.err;
		else if (asprintf(err_r, "publishing: %s", sqlite3_errmsg(c->db)) < 0)
			*err_r = NULL;
		return -1;
	}
	uint64_t oldest = 0;
	prune(&p, &oldest);
	if (write_manifest(&p, oldest) != 0) {
		if (asprintf(err_r, "%s/" FEED_DIR "/manifest: cannot write", c->data_dir) < 0)
			*err_r = NULL;
		return -1;
	}
	return 0;
}
