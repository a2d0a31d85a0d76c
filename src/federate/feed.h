/*
 * feed: the signed peer feed of one sensor (docs/federation.md), as bytes: keys,
 * encoding, signatures, and the strict, bounded parser every pulled byte goes through.
 *
 * A publisher (one Ed25519 key; its id is the first 8 bytes of BLAKE2b(public key)
 * in hex) writes numbered segments and a manifest:
 *
 *   segment N:  {"feed":"mxbait-feed/1","publisher":ID,"seq":N,"prev":HEX64,
 *                "created":US,"count":M}\n
 *               M entry lines (one JSON object each)\n
 *               sig:BASE64(Ed25519 over every byte above)\n
 *   manifest:   {"feed":"mxbait-manifest/1","publisher":ID,"key":B64,"created":US,
 *                "head":N,"head_hash":HEX64,"oldest":K,"profiles":[...]}\n
 *               sig:BASE64\n
 *
 * prev is the SHA-256 of the whole previous segment file (64 zeros for segment 1), so
 * the segments form a hash chain: with the sequence numbers a subscriber detects a gap
 * (a number skipped), a replay (a segment served for another number, an older
 * manifest) and a rollback or fork (a head below what it already has, a chain that
 * does not continue its last segment).  The "feed" field separates the two document
 * types, so a signed manifest can never pass as a segment or the reverse.
 *
 * Entries carry state, not deltas: kind, value, evidence flags, counts, first/last
 * seen, confidence, expiry (an entry replaces the publisher's earlier one for the same
 * kind and value).  Kinds are the indicator kinds (intel/indicator.h) plus "trap": a
 * trap credential pair as keyed hashes for one subscriber (see fed_trap_hashes()).
 *
 * Parser promises: a segment over FEED_SEGMENT_MAX bytes, a line over FEED_LINE_MAX,
 * more than FEED_ENTRIES_MAX entries, a count that disagrees, a duplicate JSON key, a
 * wrong type, a value that is not valid for its kind (an address that is not one, a
 * domain with a space, control bytes anywhere), or a bad signature refuses the whole
 * document, with a reason; nothing of a refused document is used.  Pure: no I/O.
 */
#ifndef MXB_FEDERATE_FEED_H
#define MXB_FEDERATE_FEED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FEED_SEGMENT_MAX (8u << 20)   /* bytes of one segment */
#define FEED_MANIFEST_MAX (256u << 10)
#define FEED_LINE_MAX 4096
#define FEED_ENTRIES_MAX 20000
#define FEED_VALUE_MAX 2048
#define FEED_FLAGS_MAX 256
#define FEED_PROFILES_MAX 64
#define FEED_BOX_MAX 2048             /* a sealed profile, base64 */
#define FEED_MINHASH_BYTES 1024       /* 128 x 64-bit MinHash (analyze/fingerprint.c) */
#define FEED_KEYID_LEN 17             /* 16 hex and NUL */
#define FEED_HASH_HEX 65              /* SHA-256 hex and NUL */

/* ---- keys ---- */

struct fed_key {
	uint8_t pk[32];
	uint8_t sk[64];
	bool has_secret;
	char id[FEED_KEYID_LEN];
};

/* Load DATA_DIR/keys/feed.key (the secret key, 0600) or, when create and it is
 * missing, generate and store it (directory 0700, file 0600, written under a
 * temporary name, fsync'd and renamed).  0, or -1 with *err_r (malloc'd). */
int fed_key_load(const char *data_dir, bool create, struct fed_key *k, char **err_r);
/* A public key as the operator passes it (`mxbait peers add URL KEY`): base64 of the
 * 32 bytes, optionally prefixed "ed25519:".  0, or -1. */
int fed_key_parse_public(const char *text, uint8_t pk[32]);
void fed_key_id(const uint8_t pk[32], char id[FEED_KEYID_LEN]);
/* "ed25519:BASE64" (out >= 60 bytes). */
void fed_key_public_text(const uint8_t pk[32], char *out, size_t outlen);
/* Wipe the secret. */
void fed_key_clear(struct fed_key *k);

/* ---- entries ---- */

enum fed_kind {
	FK_IP, FK_PREFIX, FK_URL, FK_DOMAIN, FK_SENDER, FK_SENDER_DOMAIN, FK_ATTACHMENT,
	FK_RECIPIENT, FK_RECIPIENT_DOMAIN, FK_CAMPAIGN, /* = enum ind_kind, in order */
	FK_TRAP,
	FK_COUNT
};
const char *fed_kind_name(enum fed_kind k);
int fed_kind_parse(const char *name); /* -1 when unknown */

struct fed_entry {
	enum fed_kind kind;
	char value[FEED_VALUE_MAX + 1];
	char flags[FEED_FLAGS_MAX + 1];   /* space-separated evidence kinds */
	int64_t first_us, last_us, expires_us;
	int64_t guesses, probes, messages, logins, members;
	int confidence;                   /* 0-100 */
	/* trap: the subscriber it is for, and the keyed tag of the user name */
	char to[FEED_KEYID_LEN];
	char tag[33];
	/* campaign: its MinHash signature, when known */
	bool has_minhash;
	uint8_t minhash[FEED_MINHASH_BYTES];
};

/* Is value acceptable for kind (the checks the parser applies)? */
bool fed_value_ok(enum fed_kind kind, const char *value, size_t len);

/* ---- segments ---- */

struct fed_segment_header {
	char publisher[FEED_KEYID_LEN];
	uint64_t seq;
	char prev[FEED_HASH_HEX];
	int64_t created_us;
	uint32_t count;
};

struct buf;

/* Writing: begin (the header line), add entries, finish (signs, appends sig:).  The
 * writer checks each entry as the parser will and refuses (-1) one it would refuse. */
struct fed_writer;
struct fed_writer *fed_writer_new(const struct fed_key *k, uint64_t seq, const char *prev_hex,
				  int64_t created_us);
int fed_writer_add(struct fed_writer *w, const struct fed_entry *e);
uint32_t fed_writer_count(const struct fed_writer *w);
/* The signed segment (malloc'd, *len_r) and its SHA-256 hex; frees w. */
char *fed_writer_finish(struct fed_writer **w, size_t *len_r, char hash_hex[FEED_HASH_HEX]);
void fed_writer_free(struct fed_writer **w);

enum fed_result {
	FED_OK = 0,
	FED_ERR_SIZE = -1,      /* too large, a line too long, too many entries */
	FED_ERR_SYNTAX = -2,    /* not the format (JSON, fields, types, values) */
	FED_ERR_SIGNATURE = -3, /* missing or wrong signature */
	FED_ERR_PUBLISHER = -4, /* signed by the key, but names another publisher */
};
const char *fed_result_name(enum fed_result r);

/* Verify and parse a segment signed by pk.  On FED_OK *h is the header and fn was
 * called for each entry in order; fn returning non-zero (use a positive value) stops
 * the walk and is returned.  Nothing reaches fn before the signature and every line
 * of the segment have been checked.  why_r (may be NULL) gets a static reason. */
typedef int (*fed_entry_fn)(void *ctx, const struct fed_entry *e);
int fed_segment_parse(const uint8_t pk[32], const char *data, size_t len,
		      struct fed_segment_header *h, fed_entry_fn fn, void *ctx,
		      const char **why_r);

/* SHA-256 of bytes, hex. */
void fed_sha256_hex(const void *data, size_t len, char out[FEED_HASH_HEX]);

/* ---- manifests ---- */

struct fed_profile_box {
	char to[FEED_KEYID_LEN];
	char box[FEED_BOX_MAX + 1];  /* base64 sealed box */
};

struct fed_manifest {
	char publisher[FEED_KEYID_LEN];
	uint8_t key[32];
	int64_t created_us;
	uint64_t head, oldest;       /* head 0: nothing published yet */
	char head_hash[FEED_HASH_HEX];
	size_t n_profiles;
	struct fed_profile_box profiles[FEED_PROFILES_MAX];
};

/* The signed manifest text (malloc'd). */
char *fed_manifest_write(const struct fed_key *k, const struct fed_manifest *m, size_t *len_r);
/* Verify and parse; FED_OK or an error with *why_r. */
int fed_manifest_parse(const uint8_t pk[32], const char *data, size_t len,
		       struct fed_manifest *m, const char **why_r);

/* ---- trap credential hashes ---- */

/* What a subscriber's guard sees of a login (docs/deploy.md): Dovecot's policy hash
 * parameters and the domains its users log in with.  Sealed to the publisher's key in
 * the subscriber's manifest (crypto_box_seal to the X25519 form of the Ed25519 key). */
struct fed_trap_profile {
	char mech[16];            /* sha256 ... (auth_policy_hash_mech) */
	char nonce[256];          /* auth_policy_hash_nonce */
	unsigned truncate_bits;   /* auth_policy_hash_truncate */
	size_t n_domains;
	char domains[16][254];
};
/* Seal profile p to the holder of Ed25519 public key to_pk: base64 into out. */
int fed_profile_seal(const struct fed_trap_profile *p, const uint8_t to_pk[32], char *out,
		     size_t outlen);
/* Open a box sealed to k.  0, or -1 (not ours, tampered, malformed). */
int fed_profile_open(const struct fed_key *k, const char *box_b64, struct fed_trap_profile *p);

/* The user tag: HMAC-SHA256(nonce, "mxbait-trap-user" NUL canonical_user), first 16
 * bytes in hex.  Both sides compute it: the publisher from its own account name, the
 * subscriber's guard from the canonical login of a request. */
void fed_trap_tag(const char *nonce, const char *canonical_user, char tag[33]);

/* For one trap pair (canonical user, password) and a subscriber's profile: call fn
 * with (tag, hash) for each login form the subscriber's users may send (the name,
 * and name@domain for each of its domains when the name has no domain), each hashed
 * as Dovecot hashes it (guard/pwhash.h) with the subscriber's nonce.  Returns the
 * number of hashes, -1 on a bad mechanism. */
int fed_trap_hashes(const struct fed_trap_profile *p, const char *canonical_user,
		    const char *password,
		    void (*fn)(void *ctx, const char *tag, const char *hash), void *ctx);

#endif
