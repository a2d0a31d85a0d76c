/*
 * fingerprint: the campaign keys of one message's text.
 *
 * The body is normalised (lower case; URLs, addresses, digits and the recipients' names
 * dropped; words only) so that personalised and hash-busted copies of one mail give the
 * same word stream.  SHA-256 of that stream finds exact duplicates; a 128 x 64-bit
 * MinHash over word 3-shingles (xxHash per shingle, then 128 cheap independent mixes)
 * estimates Jaccard similarity for near duplicates.
 *
 * A second MinHash over the *set* of distinct words (order ignored) survives rewording:
 * replacing 15% of the words kills about half of the 3-shingles (each replaced word is
 * in three) but only the replaced words of the set.
 *
 * The 128 hash functions come from two 64-bit hashes per shingle (one XXH3-128 call):
 * h_k = h1 + k * h2 (Kirsch and Mitzenmacher's double hashing, the standard MinHash
 * trick), i.e. one addition per function instead of a multiply and a fold.
 */
#include "analyze/analyze_private.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#define FP_TEXT_MAX (1u << 20)
#define NAME_WORDS 64

/* Fold one shingle (its three word hashes) into the signature.  h2 is forced odd so
 * that the 128 values of h1 + k*h2 are distinct. */
/* target_clones: the 128-way minimum vectorises with AVX-512's 64-bit unsigned min
 * where the CPU has it (picked at load time), plain code elsewhere. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MH_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define MH_CLONES
#endif

MH_CLONES static void minhash_add(uint64_t *mh, const uint64_t win[3])
{
	XXH128_hash_t h = XXH3_128bits(win, 3 * sizeof(win[0]));
	uint64_t v = h.low64, step = h.high64 | 1;
	for (int k = 0; k < AN_MINHASH; k++) {
		mh[k] = v < mh[k] ? v : mh[k];
		v += step;
	}
}

/* The same for one word of the word-set signature (its own hash space: a word and a
 * shingle never collide on purpose). */
MH_CLONES static void minhash_word(uint64_t *mh, uint64_t wh)
{
	XXH128_hash_t h = XXH3_128bits_withSeed(&wh, sizeof(wh), 0x5eed);
	uint64_t v = h.low64, step = h.high64 | 1;
	for (int k = 0; k < AN_MINHASH; k++) {
		mh[k] = v < mh[k] ? v : mh[k];
		v += step;
	}
}

/* Distinct words seen: a word repeated does not change a set's MinHash, so it is
 * folded in once (open addressing; when full, words are folded in again, which is
 * only slower). */
#define WSET 4096
struct wset {
	uint64_t h[WSET];
	unsigned n;
};

static bool wset_add(struct wset *s, uint64_t h)
{
	if (h == 0)
		h = 1;
	if (s->n >= WSET / 2)
		return true;
	size_t i = h & (WSET - 1);
	while (s->h[i]) {
		if (s->h[i] == h)
			return false;
		i = (i + 1) & (WSET - 1);
	}
	s->h[i] = h;
	s->n++;
	return true;
}

double an_minhash_similarity(const uint64_t *a, const uint64_t *b)
{
	int eq = 0;
	for (int k = 0; k < AN_MINHASH; k++)
		eq += a[k] == b[k];
	return eq / (double)AN_MINHASH;
}

struct words {
	uint64_t h[NAME_WORDS];
	int n;
};

static void add_name_words(struct words *w, const char *s)
{
	while (s && *s && w->n < NAME_WORDS) {
		while (*s && !(isalpha((unsigned char)*s) || (unsigned char)*s >= 0x80))
			s++;
		const char *st = s;
		char tmp[64];
		size_t n = 0;
		while (*s && (isalpha((unsigned char)*s) || (unsigned char)*s >= 0x80)) {
			if (n < sizeof(tmp))
				tmp[n++] = (char)tolower((unsigned char)*s);
			s++;
		}
		if (s - st >= 3)
			w->h[w->n++] = XXH3_64bits(tmp, n);
	}
}

static bool is_name(const struct words *w, uint64_t h)
{
	for (int i = 0; i < w->n; i++)
		if (w->h[i] == h)
			return true;
	return false;
}

void an_fingerprint(struct analysis *a)
{
	struct words names = {.n = 0};
	for (size_t i = 0; i < a->n_rcpts && names.n < NAME_WORDS; i++) {
		add_name_words(&names, a->rcpts[i].name);
		const char *at = strchr(a->rcpts[i].addr, '@');
		if (at) {
			char lp[128];
			size_t n = (size_t)(at - a->rcpts[i].addr);
			if (n >= sizeof(lp))
				n = sizeof(lp) - 1;
			memcpy(lp, a->rcpts[i].addr, n);
			lp[n] = 0;
			add_name_words(&names, lp);
		}
	}
	for (int k = 0; k < AN_MINHASH; k++)
		a->minhash[k] = a->minhash_w[k] = UINT64_MAX;
	struct wset *ws = calloc(1, sizeof(*ws));
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
	const char *s = a->text.data ? a->text.data : "";
	size_t len = a->text.len > FP_TEXT_MAX ? FP_TEXT_MAX : a->text.len;
	uint64_t win[3] = {0, 0, 0};
	size_t ntok = 0;
	size_t i = 0;
	char tok[64];
	char wbuf[4096];
	size_t wl = 0;
	while (i < len) {
		/* a whitespace-delimited chunk holding a URL or address is dropped whole */
		size_t cs = i, ce = i;
		while (ce < len && !isspace((unsigned char)s[ce]))
			ce++;
		if (ce == cs) {
			i++;
			continue;
		}
		bool drop = false;
		for (size_t k = cs; k < ce; k++)
			if (s[k] == '@' || (s[k] == ':' && k + 2 < ce && s[k + 1] == '/') ||
			    (s[k] == '.' && k + 1 < ce && isalpha((unsigned char)s[k + 1]) && k > cs &&
			     isalpha((unsigned char)s[k - 1]) && ce - cs > 4 &&
			     (strncasecmp(s + cs, "www.", 4) == 0))) {
				drop = true;
				break;
			}
		if (!drop) {
			size_t k = cs;
			while (k < ce) {
				while (k < ce && !(isalpha((unsigned char)s[k]) ||
						   (unsigned char)s[k] >= 0x80))
					k++;
				size_t n = 0;
				while (k < ce && (isalpha((unsigned char)s[k]) ||
						  (unsigned char)s[k] >= 0x80)) {
					if (n < sizeof(tok))
						tok[n++] = (char)tolower((unsigned char)s[k]);
					k++;
				}
				if (n == 0)
					continue;
				uint64_t h = XXH3_64bits(tok, n);
				if (n >= 3 && is_name(&names, h))
					continue;
				/* the word stream is hashed in 4 KiB blocks, not two
				 * EVP calls per word (the same bytes, the same digest) */
				if (wl + n + 1 > sizeof(wbuf)) {
					EVP_DigestUpdate(sha, wbuf, wl);
					wl = 0;
				}
				memcpy(wbuf + wl, tok, n);
				wbuf[wl + n] = ' ';
				wl += n + 1;
				if (!ws || wset_add(ws, h)) {
					minhash_word(a->minhash_w, h);
					a->n_words++;
				}
				win[0] = win[1];
				win[1] = win[2];
				win[2] = h;
				ntok++;
				if (ntok >= 3) {
					minhash_add(a->minhash, win);
					a->n_shingles++;
				}
			}
		}
		i = ce;
	}
	if (ntok > 0 && ntok < 3) { /* a short text is one shingle */
		minhash_add(a->minhash, win);
		a->n_shingles = 1;
	}
	free(ws);
	if (wl)
		EVP_DigestUpdate(sha, wbuf, wl);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdl = 0;
	EVP_DigestFinal_ex(sha, md, &mdl);
	EVP_MD_CTX_free(sha);
	static const char hx[] = "0123456789abcdef";
	for (unsigned k = 0; k < mdl && k < 32; k++) {
		a->body_sha256[2 * k] = hx[md[k] >> 4];
		a->body_sha256[2 * k + 1] = hx[md[k] & 15];
	}
	a->body_sha256[64] = 0;
}
