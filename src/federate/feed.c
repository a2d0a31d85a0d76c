/*
 * feed: keys, the segment and manifest formats, signatures and the strict parser (see
 * feed.h and docs/federation.md).
 *
 * Bytes from a peer are checked in this order: size bounds; the signature over the
 * exact bytes (before any JSON is parsed, so an unsigned document costs one Ed25519
 * verification and nothing else); then each line with jansson (duplicate keys
 * refused, no NUL) and every field's type, range and syntax for its kind.
 */
#include "federate/feed.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard/pwhash.h"
#include "guard/traps.h"
#include "store/event.h"
#include "util/buf.h"
#include "util/netaddr.h"

#define SEG_TYPE "mxbait-feed/1"
#define MAN_TYPE "mxbait-manifest/1"
#define KEY_FILE_HEAD "mxbait-feed-key-1\n"
#define TIME_MAX ((int64_t)1 << 62)
#define COUNT_MAX ((int64_t)1 << 53)

static const char *const kind_names[FK_COUNT] = {
	"ip", "prefix", "url", "domain", "sender", "sender_domain", "attachment", "recipient",
	"recipient_domain", "campaign", "trap",
};

const char *fed_kind_name(enum fed_kind k)
{
	return k < FK_COUNT ? kind_names[k] : "?";
}

int fed_kind_parse(const char *name)
{
	for (int i = 0; i < FK_COUNT; i++)
		if (!strcmp(kind_names[i], name))
			return i;
	return -1;
}

static int sodium_ready(void)
{
	static int done;
	if (!done)
		done = sodium_init() >= 0 ? 1 : -1;
	return done > 0 ? 0 : -1;
}

/* ---- keys ---- */

void fed_key_id(const uint8_t pk[32], char id[FEED_KEYID_LEN])
{
	uint8_t h[8];
	crypto_generichash(h, sizeof(h), pk, 32, NULL, 0);
	sodium_bin2hex(id, FEED_KEYID_LEN, h, sizeof(h));
}

void fed_key_public_text(const uint8_t pk[32], char *out, size_t outlen)
{
	char b64[64];
	sodium_bin2base64(b64, sizeof(b64), pk, 32, sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, outlen, "ed25519:%s", b64);
}

int fed_key_parse_public(const char *text, uint8_t pk[32])
{
	if (sodium_ready() < 0 || !text)
		return -1;
	if (!strncmp(text, "ed25519:", 8))
		text += 8;
	size_t n = 0;
	const char *end = NULL;
	if (strlen(text) != 44 ||
	    sodium_base642bin(pk, 32, text, 44, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    n != 32 || (end && *end))
		return -1;
	return 0;
}

void fed_key_clear(struct fed_key *k)
{
	sodium_memzero(k->sk, sizeof(k->sk));
	k->has_secret = false;
}

static void set_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_err(char **err_r, const char *fmt, ...)
{
	if (!err_r)
		return;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(err_r, fmt, ap) < 0)
		*err_r = NULL;
	va_end(ap);
}

/* Write path whole (temporary name, fsync); replace an existing file when replace,
 * else fail with EEXIST (link(2): two processes creating a key at once cannot both
 * win). */
static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			     bool replace)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
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
	if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0 ||
	    (replace ? rename(tmp, path) : link(tmp, path)) != 0) {
		int e = errno;
		unlink(tmp);
		errno = e;
		return -1;
	}
	if (!replace)
		unlink(tmp);
	return 0;
}

int fed_key_load(const char *data_dir, bool create, struct fed_key *k, char **err_r)
{
	memset(k, 0, sizeof(*k));
	if (err_r)
		*err_r = NULL;
	if (sodium_ready() < 0) {
		set_err(err_r, "libsodium cannot start");
		return -1;
	}
	char dir[4096], path[4200];
	snprintf(dir, sizeof(dir), "%s/keys", data_dir);
	snprintf(path, sizeof(path), "%s/feed.key", dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			set_err(err_r, "%s: %s", dir, strerror(errno));
			return -1;
		}
		crypto_sign_keypair(k->pk, k->sk);
		char b64[sodium_base64_ENCODED_LEN(64, sodium_base64_VARIANT_ORIGINAL)];
		sodium_bin2base64(b64, sizeof(b64), k->sk, 64, sodium_base64_VARIANT_ORIGINAL);
		struct buf t;
		buf_init(&t, 0);
		buf_printf(&t, "%s%s\n", KEY_FILE_HEAD, b64);
		int rc = write_file_atomic(path, t.data, t.len, 0600, false);
		sodium_memzero(t.data, t.len);
		sodium_memzero(b64, sizeof(b64));
		buf_free(&t);
		if (rc != 0 && errno == EEXIST) {
			/* another process made it first: that key is the key */
			fed_key_clear(k);
			return fed_key_load(data_dir, false, k, err_r);
		}
		if (rc != 0) {
			set_err(err_r, "%s: cannot write: %s", path, strerror(errno));
			fed_key_clear(k);
			return -1;
		}
		char pub[80], ppath[4200];
		fed_key_public_text(k->pk, pub, sizeof(pub));
		strcat(pub, "\n");
		snprintf(ppath, sizeof(ppath), "%s/feed.pub", dir);
		write_file_atomic(ppath, pub, strlen(pub), 0644, true);
		k->has_secret = true;
		fed_key_id(k->pk, k->id);
		return 0;
	}
	if (fd < 0) {
		set_err(err_r, "%s: %s%s", path, strerror(errno),
			errno == ENOENT ? " (no feed key yet: `mxbait keys --generate`)" : "");
		return -1;
	}
	struct stat st;
	char text[512];
	ssize_t n = -1;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = read(fd, text, sizeof(text) - 1);
	close(fd);
	if (n < 0) {
		set_err(err_r, "%s: cannot read", path);
		return -1;
	}
	if (st.st_mode & 077) {
		set_err(err_r, "%s: readable by others (mode %03o): refused, make it 0600", path,
			(unsigned)(st.st_mode & 0777));
		sodium_memzero(text, sizeof(text));
		return -1;
	}
	text[n] = '\0';
	size_t hl = strlen(KEY_FILE_HEAD), got = 0;
	const char *b = text + hl;
	size_t bl = (size_t)n > hl ? strcspn(b, "\n") : 0;
	if ((size_t)n <= hl || memcmp(text, KEY_FILE_HEAD, hl) ||
	    sodium_base642bin(k->sk, 64, b, bl, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) ||
	    got != 64) {
		sodium_memzero(text, sizeof(text));
		fed_key_clear(k);
		set_err(err_r, "%s: not an mxbait feed key", path);
		return -1;
	}
	sodium_memzero(text, sizeof(text));
	crypto_sign_ed25519_sk_to_pk(k->pk, k->sk);
	k->has_secret = true;
	fed_key_id(k->pk, k->id);
	return 0;
}

/* ---- values ---- */

static bool is_hex(const char *s, size_t len, size_t min, size_t max)
{
	if (len < min || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool dns_name_ok(const char *s, size_t len)
{
	if (len == 0 || len > 253 || s[0] == '.' || s[0] == '-' || s[len - 1] == '.')
		return false;
	size_t label = 0;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static bool printable_ok(const char *s, size_t len, size_t max)
{
	if (len == 0 || len > max)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>')
			return false;
	}
	return true;
}

bool fed_value_ok(enum fed_kind kind, const char *v, size_t len)
{
	if (!v || memchr(v, '\0', len))
		return false;
	switch (kind) {
	case FK_IP:
	case FK_PREFIX: {
		struct netaddr a;
		char canon[NETADDR_STRLEN];
		if (len >= sizeof(canon) || netaddr_parse_n(v, len, &a) != 0)
			return false;
		bool host = a.bits == netaddr_max_bits(&a);
		if (host != (kind == FK_IP))
			return false;
		netaddr_format(&a, canon, sizeof(canon));
		return strlen(canon) == len && !memcmp(canon, v, len);
	}
	case FK_DOMAIN:
	case FK_SENDER_DOMAIN:
	case FK_RECIPIENT_DOMAIN:
		return dns_name_ok(v, len);
	case FK_URL:
		return printable_ok(v, len, FEED_VALUE_MAX) && len > 7;
	case FK_SENDER:
	case FK_RECIPIENT: {
		if (!printable_ok(v, len, 320))
			return false;
		const char *at = memrchr(v, '@', len);
		return at && at > v && dns_name_ok(at + 1, len - (size_t)(at + 1 - v));
	}
	case FK_ATTACHMENT:
		return is_hex(v, len, 64, 64);
	case FK_CAMPAIGN:
		if (len == 0 || len > 80)
			return false;
		for (size_t i = 0; i < len; i++)
			if (!((v[i] >= 'A' && v[i] <= 'Z') || (v[i] >= 'a' && v[i] <= 'z') ||
			      (v[i] >= '0' && v[i] <= '9') || v[i] == '-' || v[i] == '_'))
				return false;
		return true;
	case FK_TRAP:
		return is_hex(v, len, 2, 128);
	default:
		return false;
	}
}

static bool flags_ok(const char *s)
{
	size_t len = strlen(s), tokens = 0;
	if (len > FEED_FLAGS_MAX)
		return false;
	for (size_t i = 0; i < len;) {
		size_t n = 0;
		while (i + n < len && s[i + n] != ' ') {
			char c = s[i + n];
			if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
				return false;
			n++;
		}
		if (n == 0 || n > 32 || ++tokens > 16)
			return false;
		i += n;
		if (i < len) {
			i++; /* one space */
			if (i == len)
				return false;
		}
	}
	return true;
}

static bool entry_ok(const struct fed_entry *e)
{
	if (e->kind >= FK_COUNT || !fed_value_ok(e->kind, e->value, strlen(e->value)) ||
	    !flags_ok(e->flags))
		return false;
	const int64_t t[] = {e->first_us, e->last_us, e->expires_us};
	for (size_t i = 0; i < 3; i++)
		if (t[i] < 0 || t[i] > TIME_MAX)
			return false;
	const int64_t c[] = {e->guesses, e->probes, e->messages, e->logins, e->members};
	for (size_t i = 0; i < 5; i++)
		if (c[i] < 0 || c[i] > COUNT_MAX)
			return false;
	if (e->confidence < 0 || e->confidence > 100)
		return false;
	if (e->kind == FK_TRAP)
		return is_hex(e->to, strlen(e->to), 16, 16) && is_hex(e->tag, strlen(e->tag), 32, 32);
	return !e->to[0] && !e->tag[0] && (!e->has_minhash || e->kind == FK_CAMPAIGN);
}

/* ---- writing ---- */

struct fed_writer {
	struct buf b;
	size_t count_at; /* offset of the count placeholder in the header */
	uint32_t count;
	uint8_t sk[64];
};

void fed_sha256_hex(const void *data, size_t len, char out[FEED_HASH_HEX])
{
	uint8_t h[crypto_hash_sha256_BYTES];
	crypto_hash_sha256(h, data, len);
	sodium_bin2hex(out, FEED_HASH_HEX, h, sizeof(h));
}

/* The count is written in 10 characters (right-aligned after spaces, which JSON
 * allows before a value) so the header can be patched in place. */
struct fed_writer *fed_writer_new(const struct fed_key *k, uint64_t seq, const char *prev_hex,
				  int64_t created_us)
{
	if (sodium_ready() < 0 || !k->has_secret || !prev_hex ||
	    !is_hex(prev_hex, strlen(prev_hex), 64, 64))
		return NULL;
	struct fed_writer *w = calloc(1, sizeof(*w));
	if (!w)
		return NULL;
	buf_init(&w->b, FEED_SEGMENT_MAX - 128); /* room for the signature line */
	memcpy(w->sk, k->sk, 64);
	buf_printf(&w->b, "{\"feed\":\"" SEG_TYPE "\",\"publisher\":\"%s\",\"seq\":%llu,"
		   "\"prev\":\"%s\",\"created\":%lld,\"count\":", k->id, (unsigned long long)seq,
		   prev_hex, (long long)created_us);
	w->count_at = w->b.len;
	buf_puts(&w->b, "         0}\n");
	return w;
}

uint32_t fed_writer_count(const struct fed_writer *w)
{
	return w->count;
}

static void put_kv_int(struct buf *b, const char *k, int64_t v)
{
	buf_printf(b, ",\"%s\":%lld", k, (long long)v);
}

int fed_writer_add(struct fed_writer *w, const struct fed_entry *e)
{
	if (w->count >= FEED_ENTRIES_MAX || !entry_ok(e))
		return -1;
	struct buf line;
	buf_init(&line, FEED_LINE_MAX - 1);
	int rc = buf_puts(&line, "{\"k\":\"");
	rc |= buf_puts(&line, kind_names[e->kind]);
	rc |= buf_puts(&line, "\",\"v\":");
	rc |= json_append_string(&line, e->value, strlen(e->value));
	if (e->kind == FK_TRAP) {
		rc |= buf_printf(&line, ",\"to\":\"%s\",\"u\":\"%s\"", e->to, e->tag);
		put_kv_int(&line, "x", e->expires_us);
	} else {
		if (e->flags[0]) {
			rc |= buf_puts(&line, ",\"fl\":");
			rc |= json_append_string(&line, e->flags, strlen(e->flags));
		}
		put_kv_int(&line, "f", e->first_us);
		put_kv_int(&line, "l", e->last_us);
		put_kv_int(&line, "x", e->expires_us);
		put_kv_int(&line, "c", e->confidence);
		rc |= buf_printf(&line, ",\"n\":[%lld,%lld,%lld,%lld,%lld]", (long long)e->guesses,
				 (long long)e->probes, (long long)e->messages, (long long)e->logins,
				 (long long)e->members);
		if (e->has_minhash) {
			char b64[sodium_base64_ENCODED_LEN(FEED_MINHASH_BYTES,
							   sodium_base64_VARIANT_ORIGINAL)];
			sodium_bin2base64(b64, sizeof(b64), e->minhash, FEED_MINHASH_BYTES,
					  sodium_base64_VARIANT_ORIGINAL);
			rc |= buf_printf(&line, ",\"mh\":\"%s\"", b64);
		}
	}
	rc |= buf_puts(&line, "}\n");
	if (rc != 0 || buf_append(&w->b, line.data, line.len) != 0) {
		buf_free(&line);
		return -1;
	}
	buf_free(&line);
	w->count++;
	return 0;
}

void fed_writer_free(struct fed_writer **wp)
{
	struct fed_writer *w = wp ? *wp : NULL;
	if (!w)
		return;
	sodium_memzero(w->sk, sizeof(w->sk));
	buf_free(&w->b);
	free(w);
	*wp = NULL;
}

static int append_sig(struct buf *b, const uint8_t sk[64])
{
	uint8_t sig[crypto_sign_BYTES];
	crypto_sign_detached(sig, NULL, (const unsigned char *)b->data, b->len, sk);
	char b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof(b64), sig, sizeof(sig), sodium_base64_VARIANT_ORIGINAL);
	return buf_printf(b, "sig:%s\n", b64);
}

char *fed_writer_finish(struct fed_writer **wp, size_t *len_r, char hash_hex[FEED_HASH_HEX])
{
	struct fed_writer *w = *wp;
	char digits[11];
	snprintf(digits, sizeof(digits), "%10u", w->count); /* JSON: spaces, not zeros */
	memcpy(w->b.data + w->count_at, digits, 10);
	w->b.cap = 0;
	if (append_sig(&w->b, w->sk) != 0) {
		fed_writer_free(wp);
		return NULL;
	}
	fed_sha256_hex(w->b.data, w->b.len, hash_hex);
	char *out = buf_steal(&w->b, len_r);
	fed_writer_free(wp);
	return out;
}

/* ---- parsing ---- */

const char *fed_result_name(enum fed_result r)
{
	switch (r) {
	case FED_OK: return "ok";
	case FED_ERR_SIZE: return "too large";
	case FED_ERR_SYNTAX: return "malformed";
	case FED_ERR_SIGNATURE: return "bad signature";
	case FED_ERR_PUBLISHER: return "wrong publisher";
	}
	return "?";
}

/* Split off and check the signature line: *signed_len_r is the length of the signed
 * part (every byte before "sig:").  The document must end with the sig line. */
static int check_sig(const uint8_t pk[32], const char *data, size_t len, size_t *signed_len_r,
		     const char **why_r)
{
	if (len < 2 || data[len - 1] != '\n') {
		*why_r = "does not end with a line";
		return FED_ERR_SYNTAX;
	}
	const char *last = memrchr(data, '\n', len - 1);
	size_t start = last ? (size_t)(last - data) + 1 : 0;
	if (start == 0 || len - start < 5 || memcmp(data + start, "sig:", 4)) {
		*why_r = "no signature line";
		return FED_ERR_SIGNATURE;
	}
	const char *b = data + start + 4;
	size_t bl = len - start - 5;
	uint8_t sig[crypto_sign_BYTES];
	size_t got = 0;
	const char *end = NULL;
	if (bl != 88 || sodium_base642bin(sig, sizeof(sig), b, bl, NULL, &got, &end,
					  sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    got != sizeof(sig) || end != b + bl) {
		*why_r = "malformed signature";
		return FED_ERR_SIGNATURE;
	}
	if (crypto_sign_verify_detached(sig, (const unsigned char *)data, start, pk) != 0) {
		*why_r = "signature does not verify with the publisher's key";
		return FED_ERR_SIGNATURE;
	}
	*signed_len_r = start;
	return FED_OK;
}

static json_t *load_line(const char *p, size_t n)
{
	json_error_t jerr;
	json_t *o = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
	if (o && !json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static bool get_int(json_t *o, const char *k, int64_t lo, int64_t hi, int64_t *out, bool need)
{
	json_t *v = json_object_get(o, k);
	if (!v) {
		*out = 0;
		return !need;
	}
	if (!json_is_integer(v))
		return false;
	json_int_t x = json_integer_value(v);
	if (x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static bool get_str(json_t *o, const char *k, char *out, size_t outlen, bool need)
{
	json_t *v = json_object_get(o, k);
	if (!v) {
		out[0] = '\0';
		return !need;
	}
	if (!json_is_string(v))
		return false;
	size_t n = json_string_length(v);
	if (n >= outlen)
		return false;
	const char *s = json_string_value(v);
	if (memchr(s, '\0', n))
		return false;
	memcpy(out, s, n);
	out[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			return false;
	return true;
}

static bool parse_entry(json_t *o, struct fed_entry *e)
{
	memset(e, 0, sizeof(*e));
	char kind[24];
	if (json_object_size(o) > 16 || !get_str(o, "k", kind, sizeof(kind), true))
		return false;
	int k = fed_kind_parse(kind);
	if (k < 0)
		return false;
	e->kind = (enum fed_kind)k;
	if (!get_str(o, "v", e->value, sizeof(e->value), true) ||
	    !get_str(o, "fl", e->flags, sizeof(e->flags), false) ||
	    !get_int(o, "f", 0, TIME_MAX, &e->first_us, false) ||
	    !get_int(o, "l", 0, TIME_MAX, &e->last_us, false) ||
	    !get_int(o, "x", 0, TIME_MAX, &e->expires_us, true))
		return false;
	int64_t c = 0;
	if (!get_int(o, "c", 0, 100, &c, false))
		return false;
	e->confidence = (int)c;
	json_t *n = json_object_get(o, "n");
	if (n) {
		int64_t *dst[] = {&e->guesses, &e->probes, &e->messages, &e->logins, &e->members};
		if (!json_is_array(n) || json_array_size(n) != 5)
			return false;
		for (size_t i = 0; i < 5; i++) {
			json_t *x = json_array_get(n, i);
			if (!json_is_integer(x) || json_integer_value(x) < 0 ||
			    json_integer_value(x) > COUNT_MAX)
				return false;
			*dst[i] = json_integer_value(x);
		}
	}
	if (!get_str(o, "to", e->to, sizeof(e->to), e->kind == FK_TRAP) ||
	    !get_str(o, "u", e->tag, sizeof(e->tag), e->kind == FK_TRAP))
		return false;
	json_t *mh = json_object_get(o, "mh");
	if (mh) {
		size_t got = 0;
		const char *s = json_is_string(mh) ? json_string_value(mh) : NULL;
		size_t sl = s ? json_string_length(mh) : 0;
		const char *end = NULL;
		if (!s || e->kind != FK_CAMPAIGN ||
		    sodium_base642bin(e->minhash, sizeof(e->minhash), s, sl, NULL, &got, &end,
				      sodium_base64_VARIANT_ORIGINAL) != 0 ||
		    got != FEED_MINHASH_BYTES || end != s + sl)
			return false;
		e->has_minhash = true;
	}
	return entry_ok(e);
}

int fed_segment_parse(const uint8_t pk[32], const char *data, size_t len,
		      struct fed_segment_header *h, fed_entry_fn fn, void *ctx,
		      const char **why_r)
{
	const char *why_dummy;
	if (!why_r)
		why_r = &why_dummy;
	*why_r = NULL;
	memset(h, 0, sizeof(*h));
	if (sodium_ready() < 0)
		return FED_ERR_SYNTAX;
	if (len > FEED_SEGMENT_MAX) {
		*why_r = "segment larger than 8 MiB";
		return FED_ERR_SIZE;
	}
	size_t signed_len = 0;
	int rc = check_sig(pk, data, len, &signed_len, why_r);
	if (rc != FED_OK)
		return rc;
	/* header */
	const char *p = data, *end = data + signed_len;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	if (!nl || nl - p > FEED_LINE_MAX) {
		*why_r = "header line missing or too long";
		return FED_ERR_SIZE;
	}
	json_t *o = load_line(p, (size_t)(nl - p));
	char type[32];
	int64_t seq = 0, created = 0, count = 0;
	bool ok = o && json_object_size(o) <= 16 && get_str(o, "feed", type, sizeof(type), true) &&
		  !strcmp(type, SEG_TYPE) &&
		  get_str(o, "publisher", h->publisher, sizeof(h->publisher), true) &&
		  is_hex(h->publisher, strlen(h->publisher), 16, 16) &&
		  get_int(o, "seq", 1, COUNT_MAX, &seq, true) &&
		  get_str(o, "prev", h->prev, sizeof(h->prev), true) &&
		  is_hex(h->prev, strlen(h->prev), 64, 64) &&
		  get_int(o, "created", 0, TIME_MAX, &created, true) &&
		  get_int(o, "count", 0, FEED_ENTRIES_MAX, &count, true);
	json_decref(o);
	if (!ok) {
		*why_r = "bad segment header";
		return FED_ERR_SYNTAX;
	}
	h->seq = (uint64_t)seq;
	h->created_us = created;
	h->count = (uint32_t)count;
	char id[FEED_KEYID_LEN];
	fed_key_id(pk, id);
	if (strcmp(id, h->publisher)) {
		*why_r = "the header names another publisher";
		return FED_ERR_PUBLISHER;
	}
	/* entries: first check them all, then hand them out, so a bad line anywhere
	 * refuses the whole segment */
	for (int pass = 0; pass < 2; pass++) {
		uint32_t n = 0;
		for (const char *q = nl + 1; q < end;) {
			const char *e = memchr(q, '\n', (size_t)(end - q));
			if (!e || e - q > FEED_LINE_MAX) {
				*why_r = "entry line missing its end or too long";
				return FED_ERR_SIZE;
			}
			if (++n > h->count) {
				*why_r = "more entries than the header's count";
				return FED_ERR_SYNTAX;
			}
			json_t *eo = load_line(q, (size_t)(e - q));
			struct fed_entry *ent = malloc(sizeof(*ent));
			bool good = eo && ent && parse_entry(eo, ent);
			json_decref(eo);
			if (!good) {
				free(ent);
				*why_r = "a malformed entry";
				return FED_ERR_SYNTAX;
			}
			if (pass == 1 && fn) {
				int r = fn(ctx, ent);
				if (r != 0) {
					free(ent);
					return r;
				}
			}
			free(ent);
			q = e + 1;
		}
		if (n != h->count) {
			*why_r = "fewer entries than the header's count";
			return FED_ERR_SYNTAX;
		}
	}
	return FED_OK;
}

/* ---- manifests ---- */

char *fed_manifest_write(const struct fed_key *k, const struct fed_manifest *m, size_t *len_r)
{
	if (sodium_ready() < 0 || !k->has_secret)
		return NULL;
	struct buf b;
	buf_init(&b, FEED_MANIFEST_MAX);
	char pub[80];
	fed_key_public_text(k->pk, pub, sizeof(pub));
	int rc = buf_printf(&b, "{\"feed\":\"" MAN_TYPE "\",\"publisher\":\"%s\",\"key\":\"%s\","
			    "\"created\":%lld,\"head\":%llu,\"head_hash\":\"%s\",\"oldest\":%llu,"
			    "\"profiles\":[", k->id, pub, (long long)m->created_us,
			    (unsigned long long)m->head, m->head_hash, (unsigned long long)m->oldest);
	for (size_t i = 0; i < m->n_profiles && i < FEED_PROFILES_MAX; i++)
		rc |= buf_printf(&b, "%s{\"to\":\"%s\",\"box\":\"%s\"}", i ? "," : "",
				 m->profiles[i].to, m->profiles[i].box);
	rc |= buf_puts(&b, "]}\n");
	b.cap = 0;
	if (rc != 0 || append_sig(&b, k->sk) != 0) {
		buf_free(&b);
		return NULL;
	}
	return buf_steal(&b, len_r);
}

int fed_manifest_parse(const uint8_t pk[32], const char *data, size_t len,
		       struct fed_manifest *m, const char **why_r)
{
	const char *why_dummy;
	if (!why_r)
		why_r = &why_dummy;
	*why_r = NULL;
	memset(m, 0, sizeof(*m));
	if (sodium_ready() < 0)
		return FED_ERR_SYNTAX;
	if (len > FEED_MANIFEST_MAX) {
		*why_r = "manifest larger than 256 KiB";
		return FED_ERR_SIZE;
	}
	size_t signed_len = 0;
	int rc = check_sig(pk, data, len, &signed_len, why_r);
	if (rc != FED_OK)
		return rc;
	if (memchr(data, '\n', signed_len) != data + signed_len - 1) {
		*why_r = "a manifest is one line";
		return FED_ERR_SYNTAX;
	}
	json_t *o = load_line(data, signed_len - 1);
	char type[32], key[80];
	int64_t created = 0, head = 0, oldest = 0;
	bool ok = o && json_object_size(o) <= 16 && get_str(o, "feed", type, sizeof(type), true) &&
		  !strcmp(type, MAN_TYPE) &&
		  get_str(o, "publisher", m->publisher, sizeof(m->publisher), true) &&
		  get_str(o, "key", key, sizeof(key), true) && fed_key_parse_public(key, m->key) == 0 &&
		  get_int(o, "created", 0, TIME_MAX, &created, true) &&
		  get_int(o, "head", 0, COUNT_MAX, &head, true) &&
		  get_str(o, "head_hash", m->head_hash, sizeof(m->head_hash), true) &&
		  is_hex(m->head_hash, strlen(m->head_hash), 64, 64) &&
		  get_int(o, "oldest", 0, COUNT_MAX, &oldest, true) && oldest <= head;
	json_t *pr = ok ? json_object_get(o, "profiles") : NULL;
	if (ok && pr) {
		if (!json_is_array(pr) || json_array_size(pr) > FEED_PROFILES_MAX)
			ok = false;
		for (size_t i = 0; ok && i < json_array_size(pr); i++) {
			json_t *e = json_array_get(pr, i);
			struct fed_profile_box *b = &m->profiles[m->n_profiles];
			ok = json_is_object(e) && json_object_size(e) == 2 &&
			     get_str(e, "to", b->to, sizeof(b->to), true) &&
			     is_hex(b->to, strlen(b->to), 16, 16) &&
			     get_str(e, "box", b->box, sizeof(b->box), true);
			m->n_profiles++;
		}
	}
	json_decref(o);
	if (!ok) {
		*why_r = "bad manifest";
		return FED_ERR_SYNTAX;
	}
	m->created_us = created;
	m->head = (uint64_t)head;
	m->oldest = (uint64_t)oldest;
	char id[FEED_KEYID_LEN];
	fed_key_id(pk, id);
	if (strcmp(id, m->publisher) || memcmp(m->key, pk, 32)) {
		*why_r = "the manifest names another publisher or key";
		return FED_ERR_PUBLISHER;
	}
	return FED_OK;
}

/* ---- trap profiles and hashes ---- */

int fed_profile_seal(const struct fed_trap_profile *p, const uint8_t to_pk[32], char *out,
		     size_t outlen)
{
	if (sodium_ready() < 0)
		return -1;
	uint8_t xpk[crypto_box_PUBLICKEYBYTES];
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, to_pk) != 0)
		return -1;
	struct buf j;
	buf_init(&j, 1400);
	int rc = buf_puts(&j, "{\"mech\":");
	rc |= json_append_string(&j, p->mech, strlen(p->mech));
	rc |= buf_puts(&j, ",\"nonce\":");
	rc |= json_append_string(&j, p->nonce, strlen(p->nonce));
	rc |= buf_printf(&j, ",\"truncate\":%u,\"domains\":[", p->truncate_bits);
	for (size_t i = 0; i < p->n_domains; i++) {
		rc |= buf_puts(&j, i ? "," : "");
		rc |= json_append_string(&j, p->domains[i], strlen(p->domains[i]));
	}
	rc |= buf_puts(&j, "]}");
	size_t blen = j.len + crypto_box_SEALBYTES;
	uint8_t *box = rc == 0 ? malloc(blen) : NULL;
	int ret = -1;
	if (box && crypto_box_seal(box, (const unsigned char *)j.data, j.len, xpk) == 0 &&
	    sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL) <= outlen &&
	    sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL) <= FEED_BOX_MAX + 1) {
		sodium_bin2base64(out, outlen, box, blen, sodium_base64_VARIANT_ORIGINAL);
		ret = 0;
	}
	free(box);
	sodium_memzero(j.data, j.len);
	buf_free(&j);
	return ret;
}

int fed_profile_open(const struct fed_key *k, const char *box_b64, struct fed_trap_profile *p)
{
	memset(p, 0, sizeof(*p));
	if (sodium_ready() < 0 || !k->has_secret)
		return -1;
	uint8_t box[FEED_BOX_MAX];
	size_t blen = 0;
	const char *end = NULL;
	size_t sl = strlen(box_b64);
	if (sodium_base642bin(box, sizeof(box), box_b64, sl, NULL, &blen, &end,
			      sodium_base64_VARIANT_ORIGINAL) != 0 || end != box_b64 + sl ||
	    blen <= crypto_box_SEALBYTES)
		return -1;
	uint8_t xpk[32], xsk[32];
	if (crypto_sign_ed25519_pk_to_curve25519(xpk, k->pk) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(xsk, k->sk) != 0)
		return -1;
	size_t mlen = blen - crypto_box_SEALBYTES;
	char msg[FEED_BOX_MAX];
	int rc = crypto_box_seal_open((unsigned char *)msg, box, blen, xpk, xsk);
	sodium_memzero(xsk, sizeof(xsk));
	if (rc != 0)
		return -1;
	json_t *o = load_line(msg, mlen);
	sodium_memzero(msg, sizeof(msg));
	int64_t tr = 0;
	bool ok = o && get_str(o, "mech", p->mech, sizeof(p->mech), true) &&
		  get_str(o, "nonce", p->nonce, sizeof(p->nonce), true) &&
		  get_int(o, "truncate", 0, 4096, &tr, true);
	json_t *d = ok ? json_object_get(o, "domains") : NULL;
	if (ok && (!json_is_array(d) || json_array_size(d) > 16))
		ok = false;
	for (size_t i = 0; ok && i < json_array_size(d); i++) {
		ok = json_is_string(json_array_get(d, i)) &&
		     json_string_length(json_array_get(d, i)) < sizeof(p->domains[0]) &&
		     dns_name_ok(json_string_value(json_array_get(d, i)),
				 json_string_length(json_array_get(d, i)));
		if (ok)
			snprintf(p->domains[p->n_domains++], sizeof(p->domains[0]), "%s",
				 json_string_value(json_array_get(d, i)));
	}
	json_decref(o);
	p->truncate_bits = (unsigned)tr;
	if (!ok) {
		sodium_memzero(p, sizeof(*p));
		return -1;
	}
	return 0;
}

void fed_trap_tag(const char *nonce, const char *canonical_user, char tag[33])
{
	traps_peer_tag(nonce, canonical_user, tag); /* the guard's own function: one truth */
}

int fed_trap_hashes(const struct fed_trap_profile *p, const char *canonical_user,
		    const char *password,
		    void (*fn)(void *ctx, const char *tag, const char *hash), void *ctx)
{
	if (sodium_ready() < 0)
		return -1;
	/* the subscriber's canonical form: its own domains are stripped (guard/traps.h) */
	char user[600];
	snprintf(user, sizeof(user), "%s", canonical_user);
	char *at = strrchr(user, '@');
	for (size_t i = 0; at && i < p->n_domains; i++)
		if (!strcasecmp(at + 1, p->domains[i])) {
			*at = '\0';
			break;
		}
	canonical_user = user;
	char tag[33];
	fed_trap_tag(p->nonce, canonical_user, tag);
	int n = 0;
	char h[160], form[900];
	size_t forms = strchr(canonical_user, '@') ? 1 : 1 + p->n_domains;
	for (size_t i = 0; i < forms; i++) {
		if (i == 0)
			snprintf(form, sizeof(form), "%s", canonical_user);
		else
			snprintf(form, sizeof(form), "%s@%s", canonical_user, p->domains[i - 1]);
		if (pwhash_dovecot(p->mech, p->nonce, p->truncate_bits, form, password, h,
				   sizeof(h)) != 0)
			return -1;
		fn(ctx, tag, h);
		n++;
	}
	return n;
}
