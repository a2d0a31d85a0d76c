/*
 * test_federate: the feed format (federate/feed.h) and its boundaries.
 *
 * Keys (0600, refused when readable by others), segments written and parsed back
 * field for field, every kind of damage refused (a flipped byte, another key, a
 * count that lies, a duplicate JSON key, a non-canonical address, a control byte, a
 * line too long, a manifest passed as a segment), manifests and sealed trap
 * profiles (only the addressee opens one), trap hashes as the publisher makes them
 * matched by the guard's own trap matcher (and nothing else), peer weights, the
 * request paths the web server maps, and the one boundary of circular reporting:
 * indicators_each with IND_SHARE never returns a peer row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "core/config.h"
#include "federate/feed.h"
#include "federate/feed_path.h"
#include "federate/federate.h"
#include "guard/pwhash.h"
#include "guard/traps.h"
#include "intel/indicator.h"
#include "intel/intel_db.h"

#define ZERO64 "0000000000000000000000000000000000000000000000000000000000000000"

static char g_dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/mxbait-test-federate-XXXXXX");
	assert_non_null(mkdtemp(g_dir));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void make_key(struct fed_key *k, unsigned char seed_byte)
{
	unsigned char seed[32];
	memset(seed, seed_byte, sizeof(seed));
	memset(k, 0, sizeof(*k));
	assert_int_equal(sodium_init() >= 0, 1);
	crypto_sign_seed_keypair(k->pk, k->sk, seed);
	k->has_secret = true;
	fed_key_id(k->pk, k->id);
}

static void test_keys(void **state)
{
	(void)state;
	struct fed_key k, k2;
	char *err = NULL;
	assert_int_equal(fed_key_load(g_dir, false, &k, &err), -1); /* none yet */
	free(err);
	err = NULL;
	assert_int_equal(fed_key_load(g_dir, true, &k, &err), 0);
	char path[400];
	snprintf(path, sizeof(path), "%s/keys/feed.key", g_dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fed_key_load(g_dir, false, &k2, &err), 0);
	assert_memory_equal(k.pk, k2.pk, 32);
	assert_string_equal(k.id, k2.id);
	assert_int_equal(strlen(k.id), 16);
	char pub[80];
	uint8_t pk[32];
	fed_key_public_text(k.pk, pub, sizeof(pub));
	assert_int_equal(fed_key_parse_public(pub, pk), 0);
	assert_memory_equal(pk, k.pk, 32);
	assert_int_equal(fed_key_parse_public(pub + 8, pk), 0); /* without the prefix */
	assert_int_equal(fed_key_parse_public("ed25519:AAAA", pk), -1);
	chmod(path, 0644);
	assert_int_equal(fed_key_load(g_dir, false, &k2, &err), -1);
	assert_non_null(strstr(err, "readable by others"));
	free(err);
	fed_key_clear(&k);
	fed_key_clear(&k2);
}

struct collect {
	struct fed_entry e[8];
	size_t n;
};

static int collect(void *ctx, const struct fed_entry *e)
{
	struct collect *c = ctx;
	if (c->n < 8)
		c->e[c->n] = *e;
	c->n++;
	return 0;
}

static char *sample_segment(const struct fed_key *k, size_t *len, char hash[FEED_HASH_HEX])
{
	struct fed_writer *w = fed_writer_new(k, 7, ZERO64, 1796000000000000LL);
	assert_non_null(w);
	struct fed_entry *e = calloc(1, sizeof(*e));
	e->kind = FK_IP;
	strcpy(e->value, "198.51.100.7");
	strcpy(e->flags, "guessing trap-credential");
	e->first_us = 1;
	e->last_us = 2;
	e->expires_us = 3;
	e->guesses = 30;
	e->logins = 1;
	e->confidence = 90;
	assert_int_equal(fed_writer_add(w, e), 0);
	memset(e, 0, sizeof(*e));
	e->kind = FK_CAMPAIGN;
	strcpy(e->value, "Cabcdef012345");
	e->expires_us = 9;
	e->has_minhash = true;
	for (int i = 0; i < FEED_MINHASH_BYTES; i++)
		e->minhash[i] = (uint8_t)i;
	assert_int_equal(fed_writer_add(w, e), 0);
	memset(e, 0, sizeof(*e));
	e->kind = FK_TRAP;
	strcpy(e->value, "0abc");
	strcpy(e->to, "0123456789abcdef");
	strcpy(e->tag, "00112233445566778899aabbccddeeff");
	e->expires_us = 5;
	assert_int_equal(fed_writer_add(w, e), 0);
	/* the writer refuses what the parser would */
	memset(e, 0, sizeof(*e));
	e->kind = FK_IP;
	strcpy(e->value, "010.1.1.1");
	assert_int_equal(fed_writer_add(w, e), -1);
	strcpy(e->value, "10.0.0.0/8"); /* a prefix is not an ip */
	assert_int_equal(fed_writer_add(w, e), -1);
	e->kind = FK_DOMAIN;
	strcpy(e->value, "evil domain.test");
	assert_int_equal(fed_writer_add(w, e), -1);
	free(e);
	assert_int_equal(fed_writer_count(w), 3);
	return fed_writer_finish(&w, len, hash);
}

static void test_segment_roundtrip(void **state)
{
	(void)state;
	struct fed_key k;
	make_key(&k, 1);
	size_t len;
	char hash[FEED_HASH_HEX];
	char *seg = sample_segment(&k, &len, hash);
	char h2[FEED_HASH_HEX];
	fed_sha256_hex(seg, len, h2);
	assert_string_equal(hash, h2);
	struct fed_segment_header h;
	struct collect c = {.n = 0};
	const char *why = NULL;
	assert_int_equal(fed_segment_parse(k.pk, seg, len, &h, collect, &c, &why), FED_OK);
	assert_int_equal(h.seq, 7);
	assert_int_equal(h.count, 3);
	assert_string_equal(h.publisher, k.id);
	assert_string_equal(h.prev, ZERO64);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.e[0].kind, FK_IP);
	assert_string_equal(c.e[0].value, "198.51.100.7");
	assert_string_equal(c.e[0].flags, "guessing trap-credential");
	assert_int_equal(c.e[0].guesses, 30);
	assert_int_equal(c.e[0].logins, 1);
	assert_int_equal(c.e[0].confidence, 90);
	assert_int_equal(c.e[0].expires_us, 3);
	assert_true(c.e[1].has_minhash);
	assert_int_equal(c.e[1].minhash[1023], (uint8_t)1023);
	assert_string_equal(c.e[2].to, "0123456789abcdef");
	assert_string_equal(c.e[2].tag, "00112233445566778899aabbccddeeff");
	free(seg);
}

/* Re-sign text with k: the damage below is then not a signature failure. */
static char *signed_doc(const struct fed_key *k, const char *text, size_t *len)
{
	size_t tl = strlen(text);
	char *d = malloc(tl + 100);
	memcpy(d, text, tl);
	uint8_t sig[64];
	crypto_sign_detached(sig, NULL, (const unsigned char *)d, tl, k->sk);
	char b64[100];
	sodium_bin2base64(b64, sizeof(b64), sig, 64, sodium_base64_VARIANT_ORIGINAL);
	*len = (size_t)sprintf(d + tl, "sig:%s\n", b64) + tl;
	return d;
}

static int refuse(const struct fed_key *k, const char *body)
{
	size_t len;
	char *d = signed_doc(k, body, &len);
	struct fed_segment_header h;
	struct collect c = {.n = 0};
	int rc = fed_segment_parse(k->pk, d, len, &h, collect, &c, NULL);
	free(d);
	assert_int_equal(c.n, 0); /* nothing handed out */
	return rc;
}

static void test_segment_damage(void **state)
{
	(void)state;
	struct fed_key k, other;
	make_key(&k, 1);
	make_key(&other, 2);
	size_t len;
	char hash[FEED_HASH_HEX];
	char *seg = sample_segment(&k, &len, hash);
	struct fed_segment_header h;
	struct collect c = {.n = 0};
	/* another key */
	assert_int_equal(fed_segment_parse(other.pk, seg, len, &h, collect, &c, NULL),
			 FED_ERR_SIGNATURE);
	/* every single flipped byte of the signed part is caught */
	char *sig = strstr(seg, "sig:");
	for (char *p = seg; p < sig; p += 7) {
		*p ^= 0x01;
		assert_int_not_equal(fed_segment_parse(k.pk, seg, len, &h, collect, &c, NULL), FED_OK);
		*p ^= 0x01;
	}
	assert_int_equal(c.n, 0);
	/* a truncated one */
	assert_int_not_equal(fed_segment_parse(k.pk, seg, len - 10, &h, collect, &c, NULL), FED_OK);
	free(seg);

	char body[9000];
#define HDR(n) snprintf(body, sizeof(body), "{\"feed\":\"mxbait-feed/1\",\"publisher\":\"%s\"," \
			"\"seq\":1,\"prev\":\"" ZERO64 "\",\"created\":1,\"count\":%d}\n", k.id, n)
	/* the count lies */
	HDR(2);
	strcat(body, "{\"k\":\"ip\",\"v\":\"192.0.2.1\",\"x\":5}\n");
	assert_int_equal(refuse(&k, body), FED_ERR_SYNTAX);
	/* a duplicate key */
	HDR(1);
	strcat(body, "{\"k\":\"ip\",\"v\":\"192.0.2.1\",\"v\":\"192.0.2.2\",\"x\":5}\n");
	assert_int_equal(refuse(&k, body), FED_ERR_SYNTAX);
	/* values that are not what their kind says */
	const char *bad[] = {
		"{\"k\":\"ip\",\"v\":\"192.0.2.01\",\"x\":5}\n",
		"{\"k\":\"ip\",\"v\":\"192.0.2.1\\n192.0.2.2\",\"x\":5}\n",
		"{\"k\":\"domain\",\"v\":\"a..b\",\"x\":5}\n",
		"{\"k\":\"url\",\"v\":\"http://a b\",\"x\":5}\n",
		"{\"k\":\"attachment\",\"v\":\"xyz\",\"x\":5}\n",
		"{\"k\":\"ip\",\"v\":\"192.0.2.1\",\"x\":5,\"c\":101}\n",
		"{\"k\":\"ip\",\"v\":\"192.0.2.1\",\"x\":-5}\n",
		"{\"k\":\"ip\",\"v\":\"192.0.2.1\"}\n",                    /* no expiry */
		"{\"k\":\"nope\",\"v\":\"192.0.2.1\",\"x\":5}\n",
		"{\"k\":\"trap\",\"v\":\"abc\",\"x\":5}\n",              /* for nobody */
		"{\"k\":\"ip\",\"v\":\"192.0.2.1\",\"x\":5,\"fl\":\"Bad Flag\"}\n",
		"[1,2,3]\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		HDR(1);
		strcat(body, bad[i]);
		assert_int_equal(refuse(&k, body), FED_ERR_SYNTAX);
	}
	/* a line over 4 KiB */
	HDR(1);
	strcat(body, "{\"k\":\"url\",\"v\":\"http://x/");
	memset(body + strlen(body), 'a', 4200);
	body[sizeof(body) - 1] = '\0';
	strcpy(body + strlen(body) - 30, "\",\"x\":5}\n");
	assert_int_equal(refuse(&k, body), FED_ERR_SIZE);
	/* another publisher named in a document this key signed */
	snprintf(body, sizeof(body), "{\"feed\":\"mxbait-feed/1\",\"publisher\":\"%s\",\"seq\":1,"
		 "\"prev\":\"" ZERO64 "\",\"created\":1,\"count\":0}\n", other.id);
	assert_int_equal(refuse(&k, body), FED_ERR_PUBLISHER);
}

static void test_manifest_and_profiles(void **state)
{
	(void)state;
	struct fed_key a, b, c;
	make_key(&a, 1);
	make_key(&b, 2);
	make_key(&c, 3);
	struct fed_trap_profile p = {.truncate_bits = 12, .n_domains = 1};
	strcpy(p.mech, "sha256");
	strcpy(p.nonce, "the-nonce");
	strcpy(p.domains[0], "example.test");
	struct fed_manifest *m = calloc(1, sizeof(*m));
	m->created_us = 42;
	m->head = 5;
	m->oldest = 2;
	strcpy(m->head_hash, ZERO64);
	m->n_profiles = 1;
	strcpy(m->profiles[0].to, b.id);
	assert_int_equal(fed_profile_seal(&p, b.pk, m->profiles[0].box, sizeof(m->profiles[0].box)), 0);
	size_t len;
	char *text = fed_manifest_write(&a, m, &len);
	struct fed_manifest *back = calloc(1, sizeof(*back));
	assert_int_equal(fed_manifest_parse(a.pk, text, len, back, NULL), FED_OK);
	assert_int_equal(back->head, 5);
	assert_int_equal(back->oldest, 2);
	assert_int_equal(back->created_us, 42);
	assert_int_equal(back->n_profiles, 1);
	struct fed_manifest *wrong = calloc(1, sizeof(*wrong));
	assert_int_equal(fed_manifest_parse(b.pk, text, len, wrong, NULL), FED_ERR_SIGNATURE);
	free(wrong);
	/* a manifest is not a segment, whoever signed it */
	struct fed_segment_header h;
	assert_int_equal(fed_segment_parse(a.pk, text, len, &h, NULL, NULL, NULL), FED_ERR_SYNTAX);
	struct fed_trap_profile got;
	assert_int_equal(fed_profile_open(&b, back->profiles[0].box, &got), 0);
	assert_string_equal(got.nonce, "the-nonce");
	assert_int_equal(got.truncate_bits, 12);
	assert_string_equal(got.domains[0], "example.test");
	assert_int_equal(fed_profile_open(&c, back->profiles[0].box, &got), -1); /* not for c */
	free(text);
	free(m);
	free(back);
}

struct lines {
	char text[4096];
};

static void add_line(void *ctx, const char *tag, const char *hash)
{
	struct lines *l = ctx;
	size_t n = strlen(l->text);
	snprintf(l->text + n, sizeof(l->text) - n, "%s %s\n", tag, hash);
}

/* What the publisher computes is what the subscriber's guard matches: a Dovecot
 * policy request's (login, pwhash) for the pair, in either login form, and nothing
 * else. */
static void test_trap_hashes_match_the_guard(void **state)
{
	(void)state;
	struct fed_trap_profile p = {.truncate_bits = 12, .n_domains = 1};
	strcpy(p.mech, "sha256");
	strcpy(p.nonce, "subscriber-nonce");
	strcpy(p.domains[0], "sub.example");
	struct lines l = {.text = ""};
	assert_int_equal(fed_trap_hashes(&p, "alice", "Winter2024!", add_line, &l), 2);
	/* the publisher's account in the subscriber's domain: the same canonical user */
	assert_int_equal(fed_trap_hashes(&p, "carol@sub.example", "pw", add_line, &l), 2);
	const char *doms[] = {"sub.example"};
	struct traps *t = traps_new(doms, 1, NULL, 0);
	assert_int_equal(traps_set_peer(t, l.text, strlen(l.text)), 4);
	char h[160];
	const char *logins[] = {"alice", "alice@sub.example", "carol", "carol@sub.example"};
	const char *pws[] = {"Winter2024!", "Winter2024!", "pw", "pw"};
	for (int i = 0; i < 4; i++) {
		pwhash_dovecot("sha256", "subscriber-nonce", 12, logins[i], pws[i], h, sizeof(h));
		assert_true(traps_credential(t, logins[i], h, "sha256", "subscriber-nonce", 12));
	}
	/* another password (the 12-bit hash differs), another nonce, another user */
	pwhash_dovecot("sha256", "subscriber-nonce", 0, "alice", "Winter2025!", h, sizeof(h));
	assert_false(traps_credential(t, "alice", h, "sha256", "subscriber-nonce", 0));
	pwhash_dovecot("sha256", "other-nonce", 12, "alice", "Winter2024!", h, sizeof(h));
	assert_false(traps_credential(t, "alice", h, "sha256", "other-nonce", 12));
	pwhash_dovecot("sha256", "subscriber-nonce", 12, "bob", "Winter2024!", h, sizeof(h));
	assert_false(traps_credential(t, "bob", h, "sha256", "subscriber-nonce", 12));
	/* the file never held the password */
	assert_null(strstr(l.text, "Winter2024"));
	assert_int_equal(traps_set_peer(t, "garbage\nzz yy\n", 14), 0);
	traps_free(&t);
}

static void test_weights_and_paths(void **state)
{
	(void)state;
	assert_true(fed_peer_weight(1, 0) == 1.0);
	assert_true(fed_peer_weight(2, 1) == 1.0);
	assert_true(fed_peer_weight(1, 2) == 0.25);
	assert_true(fed_peer_weight(0, 0) == 0.0);
	assert_true(fed_peer_weight(10, 100) == 0.0);
	char p[300];
	assert_int_equal(fed_request_file("/d", "/feed/v1/manifest", p, sizeof(p)), 0);
	assert_string_equal(p, "/d/feed/manifest");
	assert_int_equal(fed_request_file("/d", "/feed/v1/seg/12", p, sizeof(p)), 0);
	assert_string_equal(p, "/d/feed/seg/00000000000000000012");
	const char *bad[] = {"/feed/v1/seg/0", "/feed/v1/seg/012", "/feed/v1/seg/../../x",
			     "/feed/v1/seg/", "/feed/v1/seg/1a", "/feed/v1/seg/99999999999999999999",
			     "/feed/v1/seg/-1", "/feed/v2/manifest", "/feed/v1/manifest/",
			     "/feed/v1/../mxbait.db"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(fed_request_file("/d", bad[i], p, sizeof(p)), -1);
	assert_true(fed_is_feed_request("/feed/v1/x"));
	assert_false(fed_is_feed_request("/api/v1/stats"));
}

static int count_rows(void *ctx, const struct indicator *ind)
{
	int *n = ctx;
	if (!strcmp(ind->source, "peer"))
		n[1]++;
	n[0]++;
	return 0;
}

/* The one boundary against circular reporting (intel/indicator.h). */
static void test_share_boundary(void **state)
{
	(void)state;
	char *err = NULL;
	sqlite3 *db = intel_db_open(g_dir, false, NULL, &err);
	assert_non_null(db);
	assert_int_equal(sqlite3_exec(db,
		"INSERT INTO indicators(kind, value, source, confidence, last_seen_us, updated_us)"
		" VALUES('ip', '192.0.2.1', 'local', 90, 1, 1), ('ip', '192.0.2.2', 'peer', 90, 1, 2),"
		" ('domain', 'x.test', 'peer', 90, 1, 3)", NULL, NULL, NULL), SQLITE_OK);
	int n[2] = {0, 0};
	struct indicator_filter f = {.include_peer = true, .purpose = IND_SHARE};
	assert_int_equal(indicators_each(db, &f, count_rows, n), 0);
	assert_int_equal(n[0], 1);
	assert_int_equal(n[1], 0);
	n[0] = n[1] = 0;
	f.purpose = IND_SELF;
	assert_int_equal(indicators_each(db, &f, count_rows, n), 0);
	assert_int_equal(n[0], 3);
	assert_int_equal(n[1], 2);
	n[0] = n[1] = 0;
	f.include_peer = false;
	assert_int_equal(indicators_each(db, &f, count_rows, n), 0);
	assert_int_equal(n[1], 0);
	n[0] = n[1] = 0;
	f.updated_after_us = 1; /* the publish cursor */
	f.include_peer = true;
	assert_int_equal(indicators_each(db, &f, count_rows, n), 0);
	assert_int_equal(n[0], 2);
	sqlite3_close(db);
}

static void exec_ok(sqlite3 *db, const char *sql)
{
	char *em = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &em) != SQLITE_OK)
		fail_msg("%s: %s", sql, em);
}

static void put_campaign(sqlite3 *db, const char *sql, const uint64_t *mh)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	sqlite3_bind_blob(st, 1, mh, 1024, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
}

static int64_t one_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Peers' campaigns similar to one of ours by MinHash (not by id) are counted under
 * our key; one peer with two similar campaigns votes once; an unrelated one is not
 * linked; trust-weighted consensus with local evidence. */
static void test_campaign_consensus(void **state)
{
	(void)state;
	char path[400];
	snprintf(path, sizeof(path), "%s/analysis.db", g_dir);
	sqlite3 *an = NULL;
	assert_int_equal(sqlite3_open(path, &an), SQLITE_OK);
	exec_ok(an, "CREATE TABLE campaigns(id INTEGER PRIMARY KEY, key TEXT, rep_minhash BLOB);"
		    "CREATE TABLE links(id INTEGER); CREATE TABLE recipients(id INTEGER);"
		    "CREATE TABLE messages(id INTEGER)");
	uint64_t base[128], near[128], other[128];
	for (int i = 0; i < 128; i++) {
		base[i] = 0x9e3779b97f4a7c15ULL * (uint64_t)(i + 1);
		near[i] = i % 4 ? base[i] : base[i] ^ 0xffff;   /* 96/128 equal: 0.75 */
		other[i] = base[i] ^ 0x5555;                     /* nothing equal */
	}
	put_campaign(an, "INSERT INTO campaigns(key, rep_minhash) VALUES('Clocal', ?1)", base);
	sqlite3_close(an);
	char *err = NULL;
	int sources = 0;
	sqlite3 *db = intel_db_open(g_dir, true, &sources, &err);
	assert_non_null(db);
	assert_true(sources & INTEL_HAS_ANALYSIS);
	int64_t now = 1796000000000000LL, x = now + 3600000000LL;
	char sql[600];
	snprintf(sql, sizeof(sql),
		 "INSERT INTO peers(id, key, url, trust, added_us) VALUES"
		 " ('aaaaaaaaaaaaaaaa', 'k', 'http://x', 1, 0), ('bbbbbbbbbbbbbbbb', 'k', 'http://x', 0.5, 0);"
		 "INSERT INTO indicators(kind, value, source, confidence, updated_us)"
		 " VALUES('campaign', 'Clocal', 'local', 80, 1)");
	exec_ok(db, sql);
	const struct {
		const char *peer, *key;
		const uint64_t *mh;
	} pe[] = {
		{"aaaaaaaaaaaaaaaa", "Cpeer1", near}, {"aaaaaaaaaaaaaaaa", "Cpeer1b", base},
		{"bbbbbbbbbbbbbbbb", "Cpeer2", near}, {"bbbbbbbbbbbbbbbb", "Cother", other},
	};
	for (size_t i = 0; i < 4; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO peer_entries(peer, kind, value, expires_us,"
			 " confidence, seq, received_us, minhash) VALUES('%s', 'campaign', '%s', %lld,"
			 " 80, 1, 1, ?1)", pe[i].peer, pe[i].key, (long long)x);
		put_campaign(db, sql, pe[i].mh);
	}
	struct mxb_config cfg;
	config_defaults(&cfg);
	free(cfg.peer_action);
	cfg.peer_action = strdup("none");
	cfg.peer_consensus = 2;
	struct fed_key k;
	make_key(&k, 9);
	struct fed_ctx c = {.db = db, .data_dir = g_dir, .cfg = &cfg, .al = NULL, .key = &k,
			    .sources = sources, .now_us = now};
	struct fed_stats st;
	memset(&st, 0, sizeof(st));
	err = NULL;
	int rc = fed_consensus(&c, &st, &err);
	if (rc)
		fail_msg("%s", err ? err : "?");
	assert_int_equal(one_int(db, "SELECT count(*) FROM campaign_links WHERE local_key = 'Clocal'"), 3);
	assert_int_equal(one_int(db, "SELECT count(*) FROM campaign_links WHERE key = 'Cother'"
				     " AND local_key IS NULL"), 1);
	/* A (1) + B (0.5) + local (1) = 2.5 >= 2; A's two campaigns vote once */
	assert_int_equal(one_int(db, "SELECT operators FROM consensus WHERE value = 'Clocal'"), 3);
	assert_int_equal(one_int(db, "SELECT weight * 100 FROM consensus WHERE value = 'Clocal'"), 250);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE kind = 'campaign'"
				     " AND value = 'Clocal' AND source = 'peer'"), 1);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE value = 'Cother'"), 0);
	/* without our own evidence, A and B (1.5) do not reach 2: the peer row goes */
	exec_ok(db, "DELETE FROM indicators WHERE source = 'local'");
	assert_int_equal(fed_consensus(&c, &st, &err), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE source = 'peer'"), 0);
	/* our evidence back: the consensus row is back ... */
	exec_ok(db, "INSERT INTO indicators(kind, value, source, confidence, updated_us)"
		    " VALUES('campaign', 'Clocal', 'local', 80, 2)");
	assert_int_equal(fed_consensus(&c, &st, &err), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE source = 'peer'"), 1);
	/* ... until the peers' entries expire: then they are deleted, and what rested on
	 * them goes (our own evidence alone is one operator, below 2) */
	c.now_us = x + 1;
	memset(&st, 0, sizeof(st));
	assert_int_equal(fed_consensus(&c, &st, &err), 0);
	assert_int_equal(st.expired, 4);
	assert_int_equal(one_int(db, "SELECT count(*) FROM peer_entries"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE source = 'peer'"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM consensus"), 0);
	assert_int_equal(one_int(db, "SELECT count(*) FROM indicators WHERE source = 'local'"), 1);
	config_free(&cfg);
	sqlite3_close(db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_keys, setup, teardown),
		cmocka_unit_test(test_segment_roundtrip),
		cmocka_unit_test(test_segment_damage),
		cmocka_unit_test(test_manifest_and_profiles),
		cmocka_unit_test(test_trap_hashes_match_the_guard),
		cmocka_unit_test(test_weights_and_paths),
		cmocka_unit_test_setup_teardown(test_share_boundary, setup, teardown),
		cmocka_unit_test_setup_teardown(test_campaign_consensus, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
