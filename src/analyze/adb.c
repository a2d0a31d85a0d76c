/*
 * adb: analysis.db schema, migrations, idempotent storage and campaign assignment
 * (see adb.h and docs/ANALYSIS.md).
 *
 * Campaigns: a message joins, in this order, (1) the campaign of a message with the
 * same normalised-body SHA-256, (2) the campaign owning one of its strong keys
 * (attachment SHA-256, spammed host + first path segment after unwrapping), (3) the
 * campaign whose *representative* MinHash is the most similar (>= 0.3 estimated
 * Jaccard) among the LSH candidates (64 bands x 2 rows), else it founds a campaign and
 * becomes its representative.  Only representatives are in the LSH index, so a
 * campaign cannot drift by chaining through its members.
 */
#include "analyze/adb.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <xxhash.h>

#include "analyze/analyze.h"
#include "analyze/url.h"
#include "util/buf.h"

#define LSH_BANDS 64
#define LSH_ROWS 2
#define CAMPAIGN_THRESHOLD 0.3
#define MAX_CANDIDATES 64

struct adb {
	sqlite3 *db;
};

static const char *const migrations[] = {
	/* 1 */
	"CREATE TABLE messages("
	" id INTEGER PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE, source TEXT, size INTEGER,"
	" analyzed_at INTEGER, subject TEXT, hdr_from TEXT, hdr_to TEXT, date TEXT,"
	" message_id TEXT, env_from TEXT, from_addr TEXT, from_name TEXT, reply_to TEXT,"
	" return_path TEXT, msgid_domain TEXT, x_mailer TEXT, user_agent TEXT, client_ip TEXT,"
	" helo TEXT, auth_user TEXT, body_sha256 TEXT, shingles INTEGER, minhash BLOB,"
	" campaign_id INTEGER REFERENCES campaigns(id));"
	"CREATE INDEX messages_body ON messages(body_sha256);"
	"CREATE INDEX messages_campaign ON messages(campaign_id);"
	"CREATE TABLE parts(message INTEGER NOT NULL, idx INTEGER NOT NULL, parent INTEGER,"
	" depth INTEGER, content_type TEXT, charset TEXT, encoding TEXT, disposition TEXT,"
	" filename TEXT, size INTEGER, truncated INTEGER, PRIMARY KEY(message, idx));"
	"CREATE TABLE links(message INTEGER NOT NULL, idx INTEGER NOT NULL, raw TEXT,"
	" url TEXT NOT NULL, host TEXT, host_unicode TEXT, domain TEXT, display_host TEXT,"
	" parent INTEGER, part INTEGER, where_bits INTEGER, flags INTEGER, wheres TEXT,"
	" flag_names TEXT, PRIMARY KEY(message, idx));"
	"CREATE INDEX links_url ON links(url);"
	"CREATE INDEX links_domain ON links(domain);"
	"CREATE TABLE recipients(message INTEGER NOT NULL, addr TEXT NOT NULL, name TEXT,"
	" domain TEXT, src INTEGER, PRIMARY KEY(message, addr));"
	"CREATE INDEX recipients_addr ON recipients(addr);"
	"CREATE TABLE attachments(message INTEGER NOT NULL, part INTEGER NOT NULL,"
	" filename TEXT, declared_type TEXT, detected_type TEXT, size INTEGER, sha256 TEXT,"
	" md5 TEXT, members TEXT, PRIMARY KEY(message, part));"
	"CREATE INDEX attachments_sha ON attachments(sha256);"
	"CREATE TABLE findings(message INTEGER NOT NULL, idx INTEGER NOT NULL, kind TEXT,"
	" detail TEXT, PRIMARY KEY(message, idx));"
	"CREATE TABLE campaigns(id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE,"
	" rep_message INTEGER NOT NULL, rep_minhash BLOB, first_seen INTEGER, subject TEXT);"
	"CREATE TABLE campaign_lsh(band INTEGER NOT NULL, hash INTEGER NOT NULL,"
	" campaign INTEGER NOT NULL, PRIMARY KEY(band, hash, campaign)) WITHOUT ROWID;"
	"CREATE TABLE campaign_keys(kind TEXT NOT NULL, value TEXT NOT NULL,"
	" campaign INTEGER NOT NULL, PRIMARY KEY(kind, value)) WITHOUT ROWID;"
	"CREATE TABLE spool_done(name TEXT PRIMARY KEY, message INTEGER, at INTEGER);"
	"CREATE VIRTUAL TABLE message_text USING fts5(subject, body);"
	"CREATE VIEW domains AS SELECT domain, count(DISTINCT message) AS messages,"
	" count(*) AS links, max(flags) AS any_flags FROM links WHERE domain IS NOT NULL"
	" GROUP BY domain;"
	"CREATE VIEW recipient_domains AS SELECT domain, count(DISTINCT addr) AS addresses,"
	" count(DISTINCT message) AS messages FROM recipients GROUP BY domain;",
	/* 2: the whole analysis as JSON (what `mxbait analyze` prints, "source" null), so
	 * that `mxbait show` and exports need one query, not seven */
	"ALTER TABLE messages ADD COLUMN analysis_json TEXT;",
	/* 3: MinHash signatures are now h1 + k*h2 (fingerprint.c), not comparable with the
	 * earlier ones: the old representatives leave the near-duplicate index (they keep
	 * their exact-body and strong keys) rather than give wrong similarities */
	("UPDATE campaigns SET rep_minhash = NULL; DELETE FROM campaign_lsh;"
	 " UPDATE messages SET minhash = NULL;"),
	/* 4: campaigns that survive rewording (a word-set MinHash, the sender's template,
	 * merges through representatives, recorded with their reason) and archive members
	 * with their hashes */
	("ALTER TABLE messages ADD COLUMN minhash_w BLOB;"
	 "ALTER TABLE messages ADD COLUMN template TEXT;"
	 "ALTER TABLE campaigns ADD COLUMN rep_minhash_w BLOB;"
	 "ALTER TABLE campaigns ADD COLUMN rep_template TEXT;"
	 "ALTER TABLE campaigns ADD COLUMN merged_into INTEGER;"
	 "CREATE TABLE campaign_merges(campaign INTEGER NOT NULL, into_campaign INTEGER NOT NULL,"
	 " message INTEGER, reason TEXT, at INTEGER);"
	 "CREATE TABLE attachment_members(message INTEGER NOT NULL, attachment INTEGER NOT NULL,"
	 " idx INTEGER NOT NULL, name TEXT, size INTEGER, sha256 TEXT,"
	 " PRIMARY KEY(message, attachment, idx));"
	 "CREATE INDEX attachment_members_sha ON attachment_members(sha256);"
	 /* attachments are keyed by their position (idx): a TNEF stream or a text part
	  * with inline uuencoded files gives several attachments in one MIME part */
	 "CREATE TABLE attachments4(message INTEGER NOT NULL, idx INTEGER NOT NULL,"
	 " part INTEGER NOT NULL, filename TEXT, declared_type TEXT, detected_type TEXT,"
	 " size INTEGER, sha256 TEXT, md5 TEXT, members TEXT, PRIMARY KEY(message, idx));"
	 "INSERT INTO attachments4 SELECT message, row_number() OVER (PARTITION BY message"
	 " ORDER BY part) - 1, part, filename, declared_type, detected_type, size, sha256, md5,"
	 " members FROM attachments;"
	 "DROP TABLE attachments;"
	 "ALTER TABLE attachments4 RENAME TO attachments;"
	 "CREATE INDEX attachments_sha ON attachments(sha256);"),
};

static int exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int64_t one_int(sqlite3 *db, const char *sql, const char *arg, int64_t arg2,
		       int64_t dflt);

/* Several processes may open a new analysis.db at once (the daemon's analyzer child,
 * `mxbait analyze --store`): each step is applied under the write lock taken up front
 * (BEGIN IMMEDIATE, waited for with the busy timeout), and the version is read inside
 * that transaction, so a second writer sees the steps the first one made instead of
 * applying them again.  The error is read before ROLLBACK, which clears it. */
static int migrate(sqlite3 *db, char **err_r)
{
	int nmig = (int)(sizeof(migrations) / sizeof(migrations[0]));
	char why[512] = "";
	for (;;) {
		if (exec(db, "BEGIN IMMEDIATE") < 0) {
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(db));
			goto fail;
		}
		sqlite3_stmt *st = NULL;
		int v = -1;
		if (exec(db, "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL)") ==
			    0 &&
		    sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM schema_version",
				       -1, &st, NULL) == SQLITE_OK &&
		    sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		if (v < 0)
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(db));
		sqlite3_finalize(st);
		if (v < 0)
			goto fail_rollback;
		if (v > nmig) {
			exec(db, "ROLLBACK");
			if (err_r && asprintf(err_r, "analysis.db schema %d is newer than this mxbait "
					      "(%d)", v, nmig) < 0)
				*err_r = NULL;
			return -1;
		}
		if (v == nmig) {
			if (exec(db, "COMMIT") == 0)
				return 0;
			snprintf(why, sizeof(why), "%s", sqlite3_errmsg(db));
			goto fail_rollback;
		}
		char ins[96];
		snprintf(ins, sizeof(ins), "INSERT INTO schema_version VALUES(%d)", v + 1);
		if (exec(db, migrations[v]) < 0 || exec(db, ins) < 0) {
			snprintf(why, sizeof(why), "step %d: %s", v + 1, sqlite3_errmsg(db));
			goto fail_rollback;
		}
		if (exec(db, "COMMIT") < 0) {
			snprintf(why, sizeof(why), "step %d: %s", v + 1, sqlite3_errmsg(db));
			goto fail_rollback;
		}
	}
fail_rollback:
	exec(db, "ROLLBACK");
fail:
	if (err_r && asprintf(err_r, "analysis.db: %s", why[0] ? why : "cannot migrate") < 0)
		*err_r = NULL;
	return -1;
}

struct adb *adb_open(const char *data_dir, char **err_r)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", data_dir, ADB_FILE);
	struct adb *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	if (sqlite3_open_v2(path, &a->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
	    SQLITE_OK) {
		if (err_r && asprintf(err_r, "%s: %s", path, sqlite3_errmsg(a->db)) < 0)
			*err_r = NULL;
		sqlite3_close(a->db);
		free(a);
		return NULL;
	}
	/* Other writers (the analyzer child, mxbait analyze --store, the daemon's budget
	 * and retention job) hold the lock for one message at a time. */
	sqlite3_busy_timeout(a->db, 30000);
	exec(a->db, "PRAGMA journal_mode=WAL");
	/* no temporary files: the analyzer's sandbox lets it write analysis.db only */
	exec(a->db, "PRAGMA temp_store=MEMORY");
	exec(a->db, "PRAGMA synchronous=NORMAL");
	exec(a->db, "PRAGMA foreign_keys=OFF");
	if (migrate(a->db, err_r) < 0) {
		sqlite3_close(a->db);
		free(a);
		return NULL;
	}
	return a;
}

struct sqlite3 *adb_open_ro(const char *data_dir, char **err_r)
{
	char path[4096];
	sqlite3 *db = NULL;
	snprintf(path, sizeof(path), "%s/%s", data_dir, ADB_FILE);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		if (err_r && asprintf(err_r,
				      "no analysis at %s: run mxbait analyze --store -d %s, or "
				      "mxbait serve",
				      path, data_dir) < 0)
			*err_r = NULL;
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(db, "SELECT max(version) FROM schema_version", -1, &st, NULL) !=
	    SQLITE_OK) {
		if (err_r && asprintf(err_r, "%s is not an mxbait analysis database", path) < 0)
			*err_r = NULL;
		sqlite3_close(db);
		return NULL;
	}
	sqlite3_finalize(st);
	return db;
}

void adb_close(struct adb **ap)
{
	if (!*ap)
		return;
	sqlite3_close((*ap)->db);
	free(*ap);
	*ap = NULL;
}

struct sqlite3 *adb_handle(struct adb *db)
{
	return db->db;
}

/* ---- small statement helpers ---- */

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) != SQLITE_OK)
		return NULL;
	return st;
}

static void bt(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static int step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : -1;
}

static int64_t one_int(sqlite3 *db, const char *sql, const char *arg, int64_t arg2, int64_t dflt)
{
	sqlite3_stmt *st = prep(db, sql);
	int64_t v = dflt;
	if (!st)
		return dflt;
	bt(st, 1, arg);
	if (sqlite3_bind_parameter_count(st) >= 2)
		sqlite3_bind_int64(st, 2, arg2);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static char *names_of(unsigned bits, const char *const *names, size_t n)
{
	char tmp[1024];
	size_t o = 0;
	tmp[0] = 0;
	for (size_t i = 0; i < n; i++)
		if (bits & (1u << i))
			o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "%s%s", o ? "," : "", names[i]);
	return strdup(tmp);
}

/* ---- campaigns ---- */

static const char *const common_hosts[] = {
	"w3.org", "google.com", "facebook.com", "twitter.com", "x.com", "linkedin.com",
	"instagram.com", "youtube.com", "microsoft.com", "apple.com", "amazon.com",
	"gstatic.com", "schema.org", "mozilla.org", "wikipedia.org", "outlook.com", "office.com",
	"live.com", "gmail.com", "yahoo.com", "whatsapp.com", "tiktok.com", "pinterest.com",
};

/* Strong key for a link: host + first path segment, for spammed hosts only. */
static bool link_key(const struct an_link *l, char *out, size_t outsz)
{
	if (!l->host || !l->norm)
		return false;
	if (!(l->where & (AN_W_TEXT | AN_W_HTML_HREF | AN_W_HTML_TEXT | AN_W_HTML_ACTION |
			  AN_W_REDIRECT)))
		return false;
	if (l->flags & URL_F_REDIRECTOR)
		return false; /* its target is the key */
	for (size_t i = 0; i < sizeof(common_hosts) / sizeof(common_hosts[0]); i++)
		if (l->domain && strcmp(l->domain, common_hosts[i]) == 0)
			return false;
	const char *p = strstr(l->norm, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	if (!p)
		return false;
	size_t seg = strcspn(p + 1, "/?#");
	if (seg < 2)
		return false; /* a bare host says too little */
	/* an image or a static file on a hosting site is not the advertised site */
	size_t pl = strcspn(p, "?#");
	static const char *const stat[] = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg", ".css",
					   ".js", ".ico", ".bmp"};
	for (size_t i = 0; i < sizeof(stat) / sizeof(stat[0]); i++) {
		size_t el = strlen(stat[i]);
		if (pl > el && strncasecmp(p + pl - el, stat[i], el) == 0)
			return false;
	}
	snprintf(out, outsz, "%s/%.*s", l->host, (int)(seg > 200 ? 200 : seg), p + 1);
	return true;
}

static uint64_t band_hash(const uint64_t *mh, int b)
{
	return XXH3_64bits(mh + b * LSH_ROWS, LSH_ROWS * sizeof(uint64_t));
}

/* The word-set signature's bands: 32 of 4 rows (candidates from J ~0.5 up), stored in
 * campaign_lsh as bands WORD_BAND0 + b. */
#define WORD_BANDS 32
#define WORD_ROWS 4
#define WORD_BAND0 1000

static uint64_t word_band_hash(const uint64_t *mh, int b)
{
	return XXH3_64bits(mh + b * WORD_ROWS, WORD_ROWS * sizeof(uint64_t));
}

/* A campaign merged into another answers for it (followed a few steps at most). */
static int64_t resolve(sqlite3 *db, int64_t c)
{
	for (int i = 0; c >= 0 && i < 8; i++) {
		int64_t m = one_int(db, "SELECT merged_into FROM campaigns WHERE id=?2 AND ?1 IS NULL",
				    NULL, c, -1);
		if (m < 0 || m == c)
			break;
		c = m;
	}
	return c;
}

/* What a message has in common with one campaign (its representative). */
struct cand {
	int64_t id;
	double j3, jw;     /* shingle and word-set Jaccard estimates with the representative */
	bool tmpl;         /* same sender template */
	const char *strong; /* the strong key that links them, or NULL */
};

#define MAX_MATCHED 16

static struct cand *cand_of(struct cand *v, int *n, int64_t id)
{
	for (int k = 0; k < *n; k++)
		if (v[k].id == id)
			return &v[k];
	if (*n >= MAX_CANDIDATES)
		return NULL;
	v[*n] = (struct cand){.id = id, .j3 = -1, .jw = -1};
	return &v[(*n)++];
}

/* Content similarity that makes a message a copy of a representative on its own:
 * the 3-shingle estimate (>= 0.3), or, for texts of 8+ distinct words, the word-set
 * estimate (>= WORDS_THRESHOLD: rewording keeps most words, while unrelated mail of
 * the same genre shares up to about 0.45 of them on the variant bench); the same
 * sender template lowers the word-set threshold a little (WORDS_THRESHOLD_TMPL) but
 * never links on its own, since one tool sends many campaigns. */
#define WORDS_THRESHOLD 0.6
#define WORDS_THRESHOLD_TMPL 0.55

static bool near_copy(const struct cand *c, bool words_ok)
{
	double tw = c->tmpl ? WORDS_THRESHOLD_TMPL : WORDS_THRESHOLD;
	return c->j3 >= CAMPAIGN_THRESHOLD || (words_ok && c->jw >= tw);
}

/* Strong enough to merge two existing campaigns through this message. */
static bool merge_worthy(const struct cand *c)
{
	return c->strong || c->j3 >= 0.5 || c->jw >= 0.8;
}

static double score(const struct cand *c)
{
	double a = c->j3 / CAMPAIGN_THRESHOLD, b = c->jw / WORDS_THRESHOLD;
	return (c->strong ? 10 : 0) + (a > b ? a : b) + (c->tmpl ? 0.5 : 0);
}

/* Which campaign a message joins (-1: a new one), and the campaigns to merge into it
 * (merge[], *n_merge), each with its reason. */
static int64_t campaign_find(sqlite3 *db, const struct analysis *a, int64_t msg,
			     struct cand *merge, int *n_merge)
{
	int64_t c;
	bool has_text = a->n_shingles > 0;
	bool words_ok = a->n_words >= 8;
	*n_merge = 0;
	if (has_text) {
		c = one_int(db,
			    "SELECT campaign_id FROM messages WHERE body_sha256=?1 AND id!=?2 "
			    "AND campaign_id IS NOT NULL ORDER BY id LIMIT 1",
			    a->body_sha256, msg, -1);
		if (c >= 0)
			return resolve(db, c);
	}
	struct cand cand[MAX_CANDIDATES];
	int nc = 0;
	for (size_t i = 0; i < a->n_atts; i++) {
		if (a->atts[i].size == 0)
			continue;
		c = one_int(db, "SELECT campaign FROM campaign_keys WHERE kind='att' AND value=?1",
			    a->atts[i].sha256, 0, -1);
		struct cand *cd = c >= 0 ? cand_of(cand, &nc, resolve(db, c)) : NULL;
		if (cd && !cd->strong)
			cd->strong = "attachment";
	}
	char key[512];
	for (size_t i = 0; i < a->n_links; i++) {
		if (!link_key(&a->links[i], key, sizeof(key)))
			continue;
		c = one_int(db, "SELECT campaign FROM campaign_keys WHERE kind='link' AND value=?1",
			    key, 0, -1);
		struct cand *cd = c >= 0 ? cand_of(cand, &nc, resolve(db, c)) : NULL;
		if (cd && !cd->strong)
			cd->strong = "link";
	}
	sqlite3_stmt *st = prep(db, "SELECT campaign FROM campaign_lsh WHERE band=?1 AND hash=?2");
	for (int b = 0; has_text && b < LSH_BANDS + WORD_BANDS && st; b++) {
		bool w = b >= LSH_BANDS;
		if (w && !words_ok)
			break;
		sqlite3_reset(st);
		sqlite3_bind_int(st, 1, w ? WORD_BAND0 + b - LSH_BANDS : b);
		sqlite3_bind_int64(st, 2, (int64_t)(w ? word_band_hash(a->minhash_w, b - LSH_BANDS)
						      : band_hash(a->minhash, b)));
		while (sqlite3_step(st) == SQLITE_ROW && nc < MAX_CANDIDATES)
			cand_of(cand, &nc, sqlite3_column_int64(st, 0));
	}
	sqlite3_finalize(st);
	st = prep(db, "SELECT rep_minhash, rep_minhash_w, rep_template, merged_into FROM campaigns"
		      " WHERE id=?1");
	for (int k = 0; k < nc && st; k++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, cand[k].id);
		if (sqlite3_step(st) != SQLITE_ROW)
			continue;
		if (sqlite3_column_type(st, 3) != SQLITE_NULL) { /* merged: its target answers */
			cand[k].j3 = cand[k].jw = -1;
			continue;
		}
		uint64_t mh[AN_MINHASH];
		if (has_text && sqlite3_column_bytes(st, 0) == AN_MINHASH * 8) {
			memcpy(mh, sqlite3_column_blob(st, 0), sizeof(mh));
			cand[k].j3 = an_minhash_similarity(mh, a->minhash);
		}
		if (words_ok && sqlite3_column_bytes(st, 1) == AN_MINHASH * 8) {
			memcpy(mh, sqlite3_column_blob(st, 1), sizeof(mh));
			cand[k].jw = an_minhash_similarity(mh, a->minhash_w);
		}
		const char *t = (const char *)sqlite3_column_text(st, 2);
		cand[k].tmpl = t && a->template_key[0] && strcmp(t, a->template_key) == 0;
	}
	sqlite3_finalize(st);
	int best = -1;
	for (int k = 0; k < nc; k++) {
		if (!cand[k].strong && !near_copy(&cand[k], words_ok))
			continue;
		if (best < 0 || score(&cand[k]) > score(&cand[best]) ||
		    (score(&cand[k]) == score(&cand[best]) && cand[k].id < cand[best].id))
			best = k;
	}
	if (best < 0)
		return -1;
	/* Merge through the representative: every other campaign this message is a
	 * strong match for is the same campaign (kept: the oldest). */
	int64_t into = cand[best].id;
	for (int k = 0; k < nc; k++)
		if (k != best && cand[k].id != into && merge_worthy(&cand[k]) &&
		    (cand[k].strong || near_copy(&cand[k], words_ok)) && merge_worthy(&cand[best]) &&
		    *n_merge < MAX_MATCHED)
			merge[(*n_merge)++] = cand[k];
	for (int k = 0; k < *n_merge; k++)
		if (merge[k].id < into) {
			struct cand t = merge[k];
			merge[k] = cand[best];
			merge[k].id = into;
			into = t.id;
		}
	return into;
}

/* Merge campaign from into campaign into: its messages move, it keeps its row (its
 * id still answers, through merged_into) and leaves the indexes; the reason is
 * recorded in campaign_merges. */
static void campaign_merge(sqlite3 *db, const struct cand *from, int64_t into, int64_t msg)
{
	char reason[96];
	if (from->strong)
		snprintf(reason, sizeof(reason), "strong key (%s)", from->strong);
	else
		snprintf(reason, sizeof(reason), "content (shingles %.2f, words %.2f)", from->j3,
			 from->jw);
	char b[32];
	snprintf(b, sizeof(b), "%lld", (long long)into);
	one_int(db, "UPDATE messages SET campaign_id=CAST(?1 AS INTEGER) WHERE campaign_id=?2", b,
		from->id, 0);
	/* campaigns merged into from earlier now point at into: one step always answers */
	one_int(db, "UPDATE campaigns SET merged_into=CAST(?1 AS INTEGER) WHERE id=?2 OR merged_into=?2",
		b, from->id, 0);
	one_int(db, "UPDATE campaign_keys SET campaign=CAST(?1 AS INTEGER) WHERE campaign=?2", b,
		from->id, 0);
	one_int(db, "DELETE FROM campaign_lsh WHERE campaign=?2 AND ?1 IS NULL", NULL, from->id, 0);
	sqlite3_stmt *st = prep(db, "INSERT INTO campaign_merges VALUES(?1, ?2, ?3, ?4,"
				    " strftime('%s','now'))");
	if (!st)
		return;
	sqlite3_bind_int64(st, 1, from->id);
	sqlite3_bind_int64(st, 2, into);
	sqlite3_bind_int64(st, 3, msg);
	bt(st, 4, reason);
	step_done(st);
}

static int64_t campaign_new(sqlite3 *db, const struct analysis *a, int64_t msg)
{
	char key[32];
	/* stable id: the representative's body hash (or message hash without text) */
	const char *src = a->n_shingles > 0 ? a->body_sha256 : a->msg_sha256;
	snprintf(key, sizeof(key), "C%.12s", src);
	if (one_int(db, "SELECT id FROM campaigns WHERE key=?1", key, 0, -1) >= 0)
		snprintf(key, sizeof(key), "C%.12s-%lld", src, (long long)msg);
	sqlite3_stmt *st = prep(db, "INSERT INTO campaigns(key, rep_message, rep_minhash, first_seen,"
				    " subject, rep_minhash_w, rep_template)"
				    " VALUES(?1, ?2, ?3, strftime('%s','now'), ?4, ?5, ?6)");
	if (!st)
		return -1;
	bt(st, 1, key);
	sqlite3_bind_int64(st, 2, msg);
	if (a->n_shingles > 0)
		sqlite3_bind_blob(st, 3, a->minhash, sizeof(a->minhash), SQLITE_TRANSIENT);
	bt(st, 4, a->subject);
	if (a->n_words > 0)
		sqlite3_bind_blob(st, 5, a->minhash_w, sizeof(a->minhash_w), SQLITE_TRANSIENT);
	bt(st, 6, a->template_key[0] ? a->template_key : NULL);
	if (step_done(st) < 0)
		return -1;
	int64_t c = sqlite3_last_insert_rowid(db);
	if (a->n_shingles > 0) {
		st = prep(db, "INSERT OR IGNORE INTO campaign_lsh VALUES(?1, ?2, ?3)");
		for (int b = 0; b < LSH_BANDS + WORD_BANDS && st; b++) {
			bool w = b >= LSH_BANDS;
			if (w && a->n_words < 8)
				break;
			sqlite3_reset(st);
			sqlite3_bind_int(st, 1, w ? WORD_BAND0 + b - LSH_BANDS : b);
			sqlite3_bind_int64(st, 2,
					   (int64_t)(w ? word_band_hash(a->minhash_w, b - LSH_BANDS)
						       : band_hash(a->minhash, b)));
			sqlite3_bind_int64(st, 3, c);
			sqlite3_step(st);
		}
		sqlite3_finalize(st);
	}
	return c;
}

static void campaign_keys_add(sqlite3 *db, const struct analysis *a, int64_t c)
{
	sqlite3_stmt *st = prep(db, "INSERT OR IGNORE INTO campaign_keys VALUES(?1, ?2, ?3)");
	char key[512];
	if (!st)
		return;
	for (size_t i = 0; i < a->n_atts; i++) {
		if (a->atts[i].size == 0)
			continue;
		sqlite3_reset(st);
		bt(st, 1, "att");
		bt(st, 2, a->atts[i].sha256);
		sqlite3_bind_int64(st, 3, c);
		sqlite3_step(st);
	}
	for (size_t i = 0; i < a->n_links; i++) {
		if (!link_key(&a->links[i], key, sizeof(key)))
			continue;
		sqlite3_reset(st);
		bt(st, 1, "link");
		bt(st, 2, key);
		sqlite3_bind_int64(st, 3, c);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
}

/* ---- storing ---- */

static int store_children(sqlite3 *db, const struct analysis *a, int64_t m)
{
	sqlite3_stmt *st;
	st = prep(db, "INSERT INTO parts VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11)");
	for (size_t i = 0; i < a->n_parts && st; i++) {
		const struct an_part *p = &a->parts[i];
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m);
		sqlite3_bind_int(st, 2, p->index);
		sqlite3_bind_int(st, 3, p->parent);
		sqlite3_bind_int(st, 4, (int)p->depth);
		bt(st, 5, p->content_type);
		bt(st, 6, p->charset);
		bt(st, 7, p->encoding);
		bt(st, 8, p->disposition);
		bt(st, 9, p->filename);
		sqlite3_bind_int64(st, 10, (int64_t)p->size);
		sqlite3_bind_int(st, 11, p->truncated);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO links VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14)");
	for (size_t i = 0; i < a->n_links && st; i++) {
		const struct an_link *l = &a->links[i];
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m);
		sqlite3_bind_int(st, 2, (int)i);
		bt(st, 3, l->raw);
		bt(st, 4, l->norm);
		bt(st, 5, l->host);
		bt(st, 6, l->host_unicode);
		bt(st, 7, l->domain);
		bt(st, 8, l->display_host);
		if (l->parent >= 0)
			sqlite3_bind_int(st, 9, l->parent);
		else
			sqlite3_bind_null(st, 9);
		sqlite3_bind_int(st, 10, l->part);
		sqlite3_bind_int(st, 11, (int)l->where);
		sqlite3_bind_int(st, 12, (int)l->flags);
		char *w = names_of(l->where, an_where_names, an_where_count());
		char *f = names_of(l->flags, url_flag_names, url_flag_count());
		bt(st, 13, w);
		bt(st, 14, f);
		free(w);
		free(f);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO recipients VALUES(?1,?2,?3,?4,?5)");
	for (size_t i = 0; i < a->n_rcpts && st; i++) {
		const struct an_rcpt *r = &a->rcpts[i];
		const char *d = strrchr(r->addr, '@');
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m);
		bt(st, 2, r->addr);
		bt(st, 3, r->name);
		bt(st, 4, d ? d + 1 : NULL);
		sqlite3_bind_int(st, 5, (int)r->src);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO attachments(message, part, filename, declared_type,"
		      " detected_type, size, sha256, md5, members, idx)"
		      " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)");
	for (size_t i = 0; i < a->n_atts && st; i++) {
		const struct an_attachment *t = &a->atts[i];
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m);
		sqlite3_bind_int(st, 10, (int)i);
		sqlite3_bind_int(st, 2, t->part);
		bt(st, 3, t->filename);
		bt(st, 4, t->declared);
		bt(st, 5, t->detected);
		sqlite3_bind_int64(st, 6, (int64_t)t->size);
		bt(st, 7, t->sha256);
		bt(st, 8, t->md5);
		if (t->members) {
			char tmp[4096];
			size_t o = 0;
			tmp[0] = 0;
			for (size_t k = 0; t->members[k] && o < sizeof(tmp) - 1; k++)
				o += (size_t)snprintf(tmp + o, sizeof(tmp) - o, "%s%s", k ? "\n" : "",
						      t->members[k]);
			bt(st, 9, tmp);
		} else {
			sqlite3_bind_null(st, 9);
		}
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO attachment_members(message, attachment, idx, name, size, sha256)"
		      " VALUES(?1,?2,?3,?4,?5,?6)");
	for (size_t i = 0; i < a->n_atts && st; i++) {
		const struct an_attachment *t = &a->atts[i];
		for (size_t k = 0; k < t->n_mdet; k++) {
			sqlite3_reset(st);
			sqlite3_bind_int64(st, 1, m);
			/* the attachment's position (attachments.idx), not its MIME part */
			sqlite3_bind_int(st, 2, (int)i);
			sqlite3_bind_int(st, 3, (int)k);
			bt(st, 4, t->mdet[k].name);
			sqlite3_bind_int64(st, 5, (int64_t)t->mdet[k].size);
			bt(st, 6, t->mdet[k].sha256[0] ? t->mdet[k].sha256 : NULL);
			if (sqlite3_step(st) != SQLITE_DONE)
				goto fail;
		}
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO findings VALUES(?1,?2,?3,?4)");
	for (size_t i = 0; i < a->n_findings && st; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, m);
		sqlite3_bind_int(st, 2, (int)i);
		bt(st, 3, a->findings[i].kind);
		bt(st, 4, a->findings[i].detail);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto fail;
	}
	sqlite3_finalize(st);
	st = prep(db, "INSERT INTO message_text(rowid, subject, body) VALUES(?1, ?2, ?3)");
	if (!st)
		return -1;
	sqlite3_bind_int64(st, 1, m);
	bt(st, 2, a->subject);
	sqlite3_bind_text(st, 3, a->text.data ? a->text.data : "", (int)a->text.len,
			  SQLITE_TRANSIENT);
	return step_done(st);
fail:
	sqlite3_finalize(st);
	return -1;
}

/* The word-set signature and the template (schema 4), beside the message's row. */
static int store_campaign_sigs(sqlite3 *db, const struct analysis *a, int64_t m)
{
	sqlite3_stmt *st = prep(db, "UPDATE messages SET minhash_w=?1, template=?2 WHERE id=?3");
	if (!st)
		return -1;
	sqlite3_bind_blob(st, 1, a->minhash_w, sizeof(a->minhash_w), SQLITE_TRANSIENT);
	bt(st, 2, a->template_key[0] ? a->template_key : NULL);
	sqlite3_bind_int64(st, 3, m);
	return step_done(st);
}

static int store_json(sqlite3 *db, const struct analysis *a, int64_t m)
{
	struct buf j;
	buf_init(&j, 0);
	analysis_to_json(a, NULL, &j);
	sqlite3_stmt *st = prep(db, "UPDATE messages SET analysis_json=?1 WHERE id=?2");
	if (!st) {
		buf_free(&j);
		return -1;
	}
	sqlite3_bind_text(st, 1, j.data ? j.data : "{}", (int)j.len, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 2, m);
	buf_free(&j);
	return step_done(st);
}

int64_t adb_store_c(struct adb *adb, const struct analysis *a, const char *source,
		    int64_t *campaign_r)
{
	sqlite3 *db = adb->db;
	if (exec(db, "BEGIN IMMEDIATE") < 0)
		return -1;
	int64_t m = one_int(db, "SELECT id FROM messages WHERE sha256=?1", a->msg_sha256, 0, -1);
	int64_t camp = -1;
	if (m >= 0) {
		camp = one_int(db, "SELECT campaign_id FROM messages WHERE id=?2 AND ?1 IS NULL",
			       NULL, m, -1);
		static const char *const del[] = {
			"DELETE FROM parts WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM links WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM recipients WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM attachments WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM findings WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM attachment_members WHERE message=?2 AND ?1 IS NULL",
			"DELETE FROM message_text WHERE rowid=?2 AND ?1 IS NULL",
		};
		for (size_t i = 0; i < sizeof(del) / sizeof(del[0]); i++)
			one_int(db, del[i], NULL, m, 0);
	}
	sqlite3_stmt *st = prep(db,
		m >= 0 ? "UPDATE messages SET source=coalesce(source,?1), size=?2, subject=?4,"
			 " hdr_from=?5, hdr_to=?6, date=?7, message_id=?8, env_from=?9, from_addr=?10,"
			 " from_name=?11, reply_to=?12, return_path=?13, msgid_domain=?14,"
			 " x_mailer=?15, user_agent=?16, client_ip=?17, helo=?18, auth_user=?19,"
			 " body_sha256=?20, shingles=?21, minhash=?22 WHERE id=?23 AND ?3 IS NOT NULL"
		       : "INSERT INTO messages(source, size, analyzed_at, subject, hdr_from, hdr_to,"
			 " date, message_id, env_from, from_addr, from_name, reply_to, return_path,"
			 " msgid_domain, x_mailer, user_agent, client_ip, helo, auth_user, body_sha256,"
			 " shingles, minhash, sha256) VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,"
			 "?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?24)");
	if (!st)
		goto fail;
	bt(st, 1, source);
	sqlite3_bind_int64(st, 2, (int64_t)a->size);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	const char *cols[] = {a->subject, a->from, a->to, a->date, a->message_id, a->env_from,
			      a->from_addr, a->from_name, a->reply_to, a->return_path,
			      a->msgid_domain, a->x_mailer, a->user_agent, a->client_ip, a->helo,
			      a->auth_user, a->body_sha256};
	for (int i = 0; i < 17; i++)
		bt(st, 4 + i, cols[i]);
	sqlite3_bind_int64(st, 21, (int64_t)a->n_shingles);
	sqlite3_bind_blob(st, 22, a->minhash, sizeof(a->minhash), SQLITE_TRANSIENT);
	if (m >= 0)
		sqlite3_bind_int64(st, 23, m);
	else
		bt(st, 24, a->msg_sha256);
	if (step_done(st) < 0)
		goto fail;
	if (m < 0)
		m = sqlite3_last_insert_rowid(db);
	if (store_children(db, a, m) < 0 || store_json(db, a, m) < 0 || store_campaign_sigs(db, a, m) < 0)
		goto fail;
	if (camp < 0) {
		struct cand merge[MAX_MATCHED];
		int n_merge = 0;
		camp = campaign_find(db, a, m, merge, &n_merge);
		if (camp < 0)
			camp = campaign_new(db, a, m);
		if (camp < 0)
			goto fail;
		for (int k = 0; k < n_merge; k++)
			campaign_merge(db, &merge[k], camp, m);
		char num[32];
		snprintf(num, sizeof(num), "%lld", (long long)camp);
		one_int(db, "UPDATE messages SET campaign_id=CAST(?1 AS INTEGER) WHERE id=?2", num, m,
			0);
		campaign_keys_add(db, a, camp);
	}
	if (exec(db, "COMMIT") < 0)
		goto fail;
	if (campaign_r)
		*campaign_r = camp;
	return m;
fail:
	exec(db, "ROLLBACK");
	return -1;
}

int64_t adb_store(struct adb *db, const struct analysis *a, const char *source)
{
	return adb_store_c(db, a, source, NULL);
}

bool adb_spool_done(struct adb *db, const char *name)
{
	return one_int(db->db, "SELECT 1 FROM spool_done WHERE name=?1", name, 0, 0) == 1;
}

int adb_spool_mark(struct adb *db, const char *name, int64_t message)
{
	sqlite3_stmt *st = prep(db->db, "INSERT OR REPLACE INTO spool_done VALUES(?1, ?2, "
					"strftime('%s','now'))");
	if (!st)
		return -1;
	bt(st, 1, name);
	sqlite3_bind_int64(st, 2, message);
	return step_done(st);
}
