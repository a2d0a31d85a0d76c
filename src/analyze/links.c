/*
 * links: find URLs in text (schemes, www., bare domains with a public suffix, defanged
 * forms) and keep each distinct normalised link once per message, with where it was
 * seen, its flags and the redirector chain unwrapped offline.
 *
 * The scanner is a single forward pass over the bytes; every candidate is bounded by
 * URL_MAX_LEN, so its cost is linear in the text.
 */
#include "analyze/analyze_private.h"

#include <ctype.h>
#include <glib.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyze/url.h"

#define UNWRAP_DEPTH 5
#define UNWRAP_TARGETS 4 /* per wrapper; each is a substring of it, so bounded by its bytes */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int lt_find(struct an_ctx *c, const char *norm, size_t *slot_r)
{
	if (c->lt_size == 0)
		return -1;
	size_t m = c->lt_size - 1, i = fnv1a(norm) & m;
	while (c->lt[i]) {
		if (strcmp(c->a->links[c->lt[i] - 1].norm, norm) == 0)
			return (int)c->lt[i] - 1;
		i = (i + 1) & m;
	}
	*slot_r = i;
	return -1;
}

static void lt_rehash(struct an_ctx *c)
{
	size_t ns = c->lt_size ? c->lt_size * 2 : 64;
	uint32_t *nt = calloc(ns, sizeof(*nt));
	if (!nt)
		return;
	free(c->lt);
	c->lt = nt;
	c->lt_size = ns;
	for (size_t k = 0; k < c->a->n_links; k++) {
		size_t i = fnv1a(c->a->links[k].norm) & (ns - 1);
		while (nt[i])
			i = (i + 1) & (ns - 1);
		nt[i] = (uint32_t)k + 1;
	}
}

static int add_norm(struct an_ctx *c, struct url_norm *n, const char *raw, size_t rlen,
		    unsigned where, int part, int parent, int depth)
{
	size_t slot = 0;
	int idx = lt_find(c, n->norm, &slot);
	if (idx >= 0) {
		struct an_link *l = &c->a->links[idx];
		l->where |= where;
		l->flags |= n->flags;
		url_norm_clear(n);
		return idx;
	}
	if (c->a->n_links >= c->lim->max_links) {
		if (!c->links_full)
			an_finding(c->a, "links_limit", "more than %u distinct links",
				   c->lim->max_links);
		c->links_full = true;
		url_norm_clear(n);
		return -1;
	}
	if ((c->a->n_links + 1) * 2 > c->lt_size) {
		lt_rehash(c);
		lt_find(c, n->norm, &slot);
	}
	struct an_link *l = AN_PUSH(c->a->links, c->a->n_links);
	if (!l) {
		url_norm_clear(n);
		return -1;
	}
	idx = (int)c->a->n_links - 1;
	c->lt[slot] = (uint32_t)idx + 1;
	l->raw = an_strndup(raw, rlen > 2048 ? 2048 : rlen);
	l->norm = n->norm;
	l->host = n->host;
	l->host_unicode = n->host_unicode;
	l->domain = n->domain;
	free(n->scheme);
	l->flags = n->flags;
	l->where = where;
	l->part = part;
	l->parent = parent;
	if (url_is_shortener(l->host))
		l->flags |= URL_F_SHORTENER;
	memset(n, 0, sizeof(*n));
	/* unwrap a redirector offline */
	if (depth < UNWRAP_DEPTH) {
		struct url_norm tmp = {.norm = l->norm, .host = l->host, .scheme = (char *)"http"};
		const char *colon = strchr(l->norm, ':');
		char sch[8] = "http";
		if (colon && colon - l->norm < 6) {
			memcpy(sch, l->norm, (size_t)(colon - l->norm));
			sch[colon - l->norm] = 0;
		}
		tmp.scheme = sch;
		/* every target: a wrapper may carry several (?u=A&v=B), each a link */
		char *inner;
		for (unsigned k = 0; k < UNWRAP_TARGETS && (inner = url_unwrap_nth(&tmp, k)); k++) {
			struct url_norm in;
			if (url_normalise(inner, strlen(inner), &in) == URL_OK &&
			    strcmp(in.norm, c->a->links[idx].norm) != 0) {
				c->a->links[idx].flags |= URL_F_REDIRECTOR;
				in.flags |= URL_F_UNWRAPPED;
				add_norm(c, &in, inner, strlen(inner), where | AN_W_REDIRECT, part, idx,
					 depth + 1);
			} else {
				url_norm_clear(&in);
			}
			free(inner);
		}
	}
	return idx;
}

/* url_normalise is a pure function of its input, and mail repeats the same URL many
 * times (an HTML newsletter's hrefs, text and HTML alternatives): each input's outcome
 * (link index and normaliser flags, or refused) is remembered, so a repeat is the
 * where/flags merge that add_norm would have done, without normalising again.  Bounded:
 * inputs under SEEN_LEN bytes, at most SEEN_MAX of them per message. */
#define SEEN_LEN 2048
#define SEEN_MAX 20000
#define SEEN_REFUSED ((size_t)UINT32_MAX)

void an_seen_free(struct an_ctx *c)
{
	for (size_t i = 0; i < c->seen.size; i++)
		free((char *)c->seen.keys[i]);
	an_map_free(&c->seen);
}

int an_add_link(struct an_ctx *c, const char *raw, size_t rlen, const char *clean, size_t clen,
		unsigned where, unsigned extra_flags, int part)
{
	char key[SEEN_LEN];
	bool cache = clen < SEEN_LEN && !memchr(clean, 0, clen);
	if (cache) {
		memcpy(key, clean, clen);
		key[clen] = 0;
		size_t *v = an_map_find(&c->seen, key);
		if (v) {
			size_t idx = *v & 0xffffffffu;
			if (idx == SEEN_REFUSED)
				return -1;
			struct an_link *l = &c->a->links[idx];
			l->where |= where;
			l->flags |= (unsigned)(*v >> 32) | extra_flags;
			return (int)idx;
		}
		cache = c->seen.n < SEEN_MAX;
	}
	struct url_norm n;
	int idx = -1;
	unsigned nflags = 0;
	if (url_normalise(clean, clen, &n) == URL_OK) {
		nflags = n.flags;
		n.flags |= extra_flags;
		idx = add_norm(c, &n, raw, rlen, where, part, -1, 0);
		if (idx < 0) /* the links limit: not an outcome to remember */
			return idx;
	}
	if (cache) {
		bool added;
		char *k = strdup(key);
		size_t *v = k ? an_map_get(&c->seen, k, &added) : NULL;
		if (v)
			*v = idx < 0 ? SEEN_REFUSED : (size_t)idx | (size_t)nflags << 32;
		else
			free(k);
	}
	return idx;
}

/* ---- the text scanner ---- */

/* A letter, digit or combining mark (any script), as UTF-8 at p: returns its length,
 * or 0 when p starts something else (a symbol such as (c), punctuation such as the
 * full-width colon, a space such as NBSP, an invalid sequence).  A host label is made of
 * these and '-' '_' only, so a symbol glued to a word is never folded into an IDN. */
static size_t label_char(const unsigned char *p, size_t left)
{
	if (p[0] < 0x80)
		return isalnum(p[0]) || p[0] == '-' || p[0] == '_' ? 1 : 0;
	size_t n = (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
	if (n == 0 || n > left)
		return 0;
	gunichar u = g_utf8_get_char_validated((const char *)p, (gssize)n);
	if (u == (gunichar)-1 || u == (gunichar)-2)
		return 0;
	return g_unichar_isalnum(u) || g_unichar_ismark(u) ? n : 0;
}

/* Bytes that end a URL in running text. */
static bool url_end(const unsigned char *p, size_t left)
{
	unsigned char c = *p;
	if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == 0x7F || c == '|' || c == '`' ||
	    c == '{' || c == '}')
		return true; /* blanks, quotes and the delimiters mail clients stop at */
	if (c == 0xC2 && left > 1 && (p[1] == 0xA0 || p[1] == 0xAB || p[1] == 0xBB))
		return true; /* NBSP, guillemets */
	if (c == 0xE2 && left > 2 && p[1] == 0x80 &&
	    (p[2] == 0x9C || p[2] == 0x9D || p[2] == 0x98 || p[2] == 0x99 || p[2] == 0xA6))
		return true; /* curly quotes, ellipsis */
	if (c == 0xE3 && left > 2 && p[1] == 0x80 &&
	    (p[2] == 0x80 || p[2] == 0x81 || (p[2] >= 0x88 && p[2] <= 0x91) ||
	     (p[2] >= 0x94 && p[2] <= 0x9B)))
		return true; /* ideographic space, comma, CJK brackets */
	if (c == 0xEF && left > 2 && p[1] == 0xBC &&
	    (p[2] == 0x8C || p[2] == 0x9A || p[2] == 0x9B || p[2] == 0x81 || p[2] == 0x89))
		return true; /* full-width comma, colon, semicolon, !, ) */
	return false;
}

/* Trim what belongs to the sentence, not the URL: punctuation, an unbalanced closing
 * bracket, and (as SpamAssassin and Thunderbird do) a dangling query separator or
 * filler: trailing '=', '&', '_', '-', '~', '+' ... ("...&i=", "id=7_8_"). */
static size_t trim_tail(const char *s, size_t len)
{
	while (len > 0) {
		char c = s[len - 1];
		if (c && strchr(".,;:!?'*=&_-~@#^+(", c)) {
			len--;
			continue;
		}
		if (c == ')' || c == ']' || c == '}') {
			char o = c == ')' ? '(' : c == ']' ? '[' : '{';
			int bal = 0;
			for (size_t k = 0; k < len; k++)
				bal += s[k] == o ? 1 : s[k] == c ? -1 : 0;
			if (bal < 0) {
				len--;
				continue;
			}
		}
		break;
	}
	return len;
}

static const char *const schemes[] = {"https://", "http://", "hxxps://", "hxxp://",
				      "ftp://", "hxxps[://]", "hxxp[://]", "https[://]",
				      "http[://]", "hxxps[:]//", "hxxp[:]//", "https[:]//",
				      "http[:]//", "hxxps:\\\\", "https:\\\\", "http:\\\\"};

/* Does a scheme start at s?  Returns its length. */
static size_t scheme_at(const char *s, size_t left)
{
	/* fast reject: every scheme above starts "ht", "hx" or "ft" */
	if (left < 6 || !(s[1] == 't' || s[1] == 'T' || s[1] == 'x' || s[1] == 'X'))
		return 0;
	for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++) {
		size_t l = strlen(schemes[k]);
		if (left >= l && strncasecmp(s, schemes[k], l) == 0)
			return l;
	}
	return 0;
}

/* "http://" or "https://" spelled out (no defanging): these may be glued to the word
 * before ("GUARANTEEDhttp://"), as SpamAssassin reads them. */
static bool plain_scheme_at(const char *s, size_t left)
{
	return (left > 7 && strncasecmp(s, "http://", 7) == 0) ||
	       (left > 8 && strncasecmp(s, "https://", 8) == 0);
}

/* "h t t p s : / /" spaced out: returns the span length, the scheme in *https_r. */
static size_t spaced_scheme_at(const char *s, size_t left, bool *https_r)
{
	const char *want = "https://";
	size_t i = 0, w = 0;
	*https_r = false;
	while (i < left && w < 8) {
		char c = (char)tolower((unsigned char)s[i]);
		if (c == want[w]) {
			w++;
			i++;
			if (w == 4 && i < left) { /* optional s */
				size_t j = i;
				while (j < left && s[j] == ' ')
					j++;
				if (j < left && tolower((unsigned char)s[j]) == 's') {
					*https_r = true;
					i = j + 1;
				}
				w = 5;
			}
			size_t sp = 0;
			while (i < left && s[i] == ' ' && sp < 2) {
				i++;
				sp++;
			}
			continue;
		}
		return 0;
	}
	return w == 8 ? i : 0;
}

/* Read a host-like run at s: labels separated by ., [.], (.), {.}, [dot], (dot), " dot ".
 * Writes the refanged host to out (cap outsz), returns bytes consumed. */
static size_t read_host(const char *s, size_t left, char *out, size_t outsz, size_t *olen_r,
			bool *defanged_r)
{
	size_t i = 0, o = 0;
	int labels = 0;
	while (i < left) {
		size_t st = i, k;
		while (i < left && (k = label_char((const unsigned char *)s + i, left - i)) > 0) {
			if (o + k < outsz) {
				memcpy(out + o, s + i, k);
				o += k;
			}
			i += k;
		}
		if (i == st)
			break;
		labels++;
		/* a separator? */
		static const char *const seps[] = {".", "[.]", "(.)", "{.}", "[dot]", "(dot)",
						   " dot ", " [dot] ", " (dot) ", " [.] "};
		size_t got = 0, gk = 0;
		if (i < left && s[i] == '.') { /* the common case */
			if (left - i > 1 && label_char((const unsigned char *)s + i + 1, left - i - 1))
				got = 1;
		} else if (i < left && (s[i] == '[' || s[i] == '(' || s[i] == '{' || s[i] == ' ')) {
			for (size_t q = 1; q < sizeof(seps) / sizeof(seps[0]); q++) {
				if (seps[q][0] != s[i]) /* every word ends in ' ': be quick */
					continue;
				size_t l = strlen(seps[q]);
				if (left - i > l && strncasecmp(s + i, seps[q], l) == 0 &&
				    label_char((const unsigned char *)s + i + l, left - i - l)) {
					got = l;
					gk = q;
					break;
				}
			}
		}
		if (!got)
			break;
		if (gk != 0)
			*defanged_r = true;
		if (o + 1 < outsz)
			out[o++] = '.';
		i += got;
	}
	out[o < outsz ? o : outsz - 1] = 0;
	*olen_r = o;
	return labels >= 2 ? i : 0;
}

/* File-name endings that are also TLDs: a bare "report.zip" is a file, not a link. */
static const char *const file_ext[] = {
	"zip", "mov", "md", "sh", "py", "pl", "exe", "doc", "pdf", "rs", "so", "ps", "cc",
	"ai", "js", "ru", "txt", "png", "gif", "jpg", "htm", "html", "php", "asp", "aspx",
	"jsp", "cgi", "cfm", "xml", "json", "csv", "java", "pm", "ml", "cs", "kt", "go"};

static bool ext_is_file(const char *ext, size_t el)
{
	for (size_t k = 0; k < sizeof(file_ext) / sizeof(file_ext[0]); k++)
		if (strlen(file_ext[k]) == el && strncasecmp(ext, file_ext[k], el) == 0)
			return true;
	return false;
}

/* A bare name that is a file: "report.zip", "README.md"; with a line number after it
 * ("ZeroDemo1.java:72", a stack trace) even when dotted ("org.x.Main.java:72"). */
static bool file_like(const char *host, size_t len, bool line_number)
{
	const char *dot = memrchr(host, '.', len);
	if (!dot)
		return false;
	size_t el = len - (size_t)(dot - host) - 1;
	if (!ext_is_file(dot + 1, el))
		return false;
	if (line_number)
		return true;
	/* ru, cc, ai and ml are real country codes with many links: not files by name */
	if (el == 2 && (strncasecmp(dot + 1, "ru", 2) == 0 || strncasecmp(dot + 1, "cc", 2) == 0 ||
			strncasecmp(dot + 1, "ai", 2) == 0 || strncasecmp(dot + 1, "ml", 2) == 0))
		return false;
	return memchr(host, '.', (size_t)(dot - host)) == NULL;
}

/* Is the dotted name (as written, any case) a believable host written without a
 * scheme?  Its suffix must be a real ICANN public suffix (libpsl) whose last label is a
 * known TLD on its own (libpsl answers yes for some unknown multi-label names), the
 * label registered under it must have two characters or more (abbreviations such as
 * "B.Sc", "N.Delta", "D.C." are not hosts), and the TLD must not be written as a
 * capitalised word ("account.Click here", "see.Best regards": a missing space after a
 * full stop, not a domain).  www. names need the same suffix. */
static bool bare_host_ok(const char *h, size_t len, bool www)
{
	char tmp[256];
	if (len == 0 || len >= sizeof(tmp))
		return false;
	const char *dot = memrchr(h, '.', len);
	if (!dot)
		return false;
	const char *tld = dot + 1;
	size_t tl = len - (size_t)(tld - h);
	if (tl >= 2 && isupper((unsigned char)tld[0]) && islower((unsigned char)tld[1]))
		return false;
	for (size_t i = 0; i < len; i++)
		tmp[i] = (char)(h[i] >= 'A' && h[i] <= 'Z' ? h[i] + 32 : h[i]);
	tmp[len] = 0;
	if (!url_tld_known(tmp + (tld - h)))
		return false;
	if (!url_has_public_suffix(tmp, len))
		return false;
	if (www)
		return true;
	/* the label under the public suffix */
	const char *rd = url_registrable(tmp);
	if (!rd)
		return false;
	const char *rdot = strchr(rd, '.');
	return rdot && rdot - rd >= 2;
}

/* A bare IPv4 address in text: dotted quad only, each part 0-255 without leading
 * zeros; "$19.99", "v1.2" and "3.14" are not addresses. */
static bool dotted_quad(const char *h, size_t len)
{
	int parts = 0;
	size_t i = 0;
	while (i < len) {
		size_t st = i;
		unsigned v = 0;
		while (i < len && isdigit((unsigned char)h[i]) && i - st < 4)
			v = v * 10 + (unsigned)(h[i++] - '0');
		if (i == st || i - st > 3 || v > 255 || (h[st] == '0' && i - st > 1))
			return false;
		parts++;
		if (i < len) {
			if (h[i] != '.')
				return false;
			i++;
		}
	}
	return parts == 4;
}

static bool all_digits_dots(const char *h, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)h[i]) && h[i] != '.')
			return false;
	return true;
}

/* The host of a URL written in text (s: after the scheme): 1 when it is an IP
 * literal or a name under a known TLD, -1 when it is a plain name under no known TLD
 * ("https://sender.dial" cut by a line wrap, "http://ss"): a host that does not exist
 * is not reported from text; 0 when it cannot be told here (defanged, encoded,
 * userinfo, IDN: the normaliser decides). */
static int host_verdict(const char *s, size_t n)
{
	size_t he = 0;
	while (he < n && s[he] != '/' && s[he] != '?' && s[he] != '#' && s[he] != '\\')
		he++;
	size_t hs = 0;
	for (size_t k = 0; k < he; k++)
		if (s[k] == '@')
			return 0;
	size_t pe = he;
	for (size_t k = hs; k < he; k++)
		if (s[k] == ':') {
			pe = k;
			break;
		}
	if (pe == hs)
		return 0;
	bool digits_only = true;
	for (size_t k = hs; k < pe; k++) {
		unsigned char c = (unsigned char)s[k];
		if (!(isalnum(c) || c == '-' || c == '.'))
			return 0;
		if (!(isdigit(c) || c == '.' || c == 'x' || c == 'X'))
			digits_only = false;
	}
	unsigned long ip;
	if (digits_only || url_parse_ipv4(s + hs, pe - hs, &ip))
		return 1; /* an address in some notation: the normaliser reads it */
	size_t end = pe;
	while (end > hs && s[end - 1] == '.')
		end--;
	const char *dot = memrchr(s + hs, '.', end - hs);
	if (!dot)
		return -1;
	char tld[64];
	size_t tl = (size_t)(s + end - dot - 1);
	if (tl == 0 || tl >= sizeof(tld))
		return -1;
	for (size_t k = 0; k < tl; k++)
		tld[k] = (char)tolower((unsigned char)dot[1 + k]);
	tld[tl] = 0;
	if (strncmp(tld, "xn--", 4) == 0)
		return 0;
	return url_tld_known(tld) ? 1 : -1;
}

/* A URL with an explicit scheme whose host ends in a word glued to the TLD
 * ("http://AkkaBay.comIf you...", "www.looksmart.co.ukUK"): when the last label is
 * not a TLD but a lower-case run of it, followed by a capital letter, is one, the URL
 * ends there.  Returns the length to keep (n when nothing is glued). */
static size_t unglue_tld(const char *u, size_t n, size_t host_at)
{
	size_t he = host_at;
	while (he < n && u[he] != '/' && u[he] != '?' && u[he] != '#' && u[he] != ':' &&
	       u[he] != '\\')
		he++;
	const char *dot = memrchr(u + host_at, '.', he - host_at);
	if (!dot)
		return n;
	const char *lab = dot + 1;
	size_t ll = (size_t)(u + he - lab);
	char tmp[64];
	if (ll < 3 || ll >= sizeof(tmp))
		return n;
	for (size_t i = 0; i < ll; i++) {
		if (!isalpha((unsigned char)lab[i]))
			return n;
		tmp[i] = (char)tolower((unsigned char)lab[i]);
	}
	tmp[ll] = 0;
	if (url_tld_known(tmp))
		return n;
	for (size_t k = 2; k < ll; k++) {
		if (!(islower((unsigned char)lab[k - 1]) && isupper((unsigned char)lab[k])))
			continue;
		tmp[k] = 0;
		if (url_tld_known(tmp))
			return (size_t)(lab - u) + k;
		tmp[k] = (char)tolower((unsigned char)lab[k]);
	}
	return n;
}

void an_scan_text(const char *s, size_t len, an_url_cb cb, void *arg)
{
	size_t i = 0;
	char clean[URL_MAX_LEN + 16];
	while (i < len) {
		unsigned char c = (unsigned char)s[i];
		bool boundary = i == 0 || !(isalnum((unsigned char)s[i - 1]) || s[i - 1] == '@' ||
					    s[i - 1] == '.' || s[i - 1] == '-' || s[i - 1] == '/' ||
					    s[i - 1] == '_' || s[i - 1] == '%' ||
					    (unsigned char)s[i - 1] >= 0x80);
		if (!boundary && i > 0 && (unsigned char)s[i - 1] >= 0x80) {
			/* after a non-ASCII character: a boundary unless it is a letter */
			size_t b = i - 1;
			while (b > 0 && i - b < 4 && ((unsigned char)s[b] & 0xC0) == 0x80)
				b--;
			boundary = label_char((const unsigned char *)s + b, i - b) == 0;
		}
		/* An explicit scheme needs only a non-alphanumeric byte before it: after '@'
		 * it is still a URL (Shift_JIS's full-width space ends in 0x40, '@', and a
		 * SpamAssassin test message puts "http://" right after one); "http://" and
		 * "https://" may even be glued to a word. */
		bool scheme_ok = (c == 'h' || c == 'H' || c == 'f' || c == 'F') &&
				 (i == 0 || !isalnum((unsigned char)s[i - 1]) ||
				  plain_scheme_at(s + i, len - i));
		if ((!boundary && !scheme_ok) || !(isalnum(c) || c >= 0x80)) {
			i++;
			continue;
		}
		size_t sl = 0;
		bool https = false;
		size_t spaced = 0;
		if (scheme_ok)
			sl = scheme_at(s + i, len - i);
		if (!boundary && !sl) { /* only a scheme may start here */
			i++;
			continue;
		}
		if (!sl && (c == 'h' || c == 'H') && i + 1 < len && s[i + 1] == ' ')
			spaced = spaced_scheme_at(s + i, len - i, &https);
		if (sl || spaced) {
			size_t st = i, e = i + (sl ? sl : spaced);
			while (e < len && e - st < URL_MAX_LEN &&
			       !url_end((const unsigned char *)s + e, len - e))
				e++;
			size_t n = trim_tail(s + st, e - st);
			if (sl) {
				n = unglue_tld(s + st, n, sl);
				int hv = host_verdict(s + st + sl, n - sl);
				if (hv < 0 && e < len && (s[e] == '\n' || s[e] == '\r')) {
					/* a plain-text line wrapped inside the host
					 * ("https://sender.dial\nogapi.no/l/5bA"): rejoined when
					 * that gives a host under a known TLD */
					size_t j = e;
					while (j < len && (s[j] == '\r' || s[j] == '\n'))
						j++;
					size_t k = j;
					while (k < len && k - j < URL_MAX_LEN / 2 &&
					       !url_end((const unsigned char *)s + k, len - k))
						k++;
					size_t tl = trim_tail(s + j, k - j);
					if (n + tl < sizeof(clean) && tl > 0) {
						memcpy(clean, s + st, n);
						memcpy(clean + n, s + j, tl);
						if (host_verdict(clean + sl, n + tl - sl) > 0) {
							cb(arg, s + st, j + tl - st, clean, n + tl, 0);
							i = j + tl;
							continue;
						}
					}
				}
				if (n > sl && hv != -1)
					cb(arg, s + st, n, s + st, n, 0);
			} else {
				size_t hl = n - spaced;
				if (hl > 0 && hl < URL_MAX_LEN) {
					size_t pl = https ? 8 : 7;
					memcpy(clean, https ? "https://" : "http://", pl);
					memcpy(clean + pl, s + st + spaced, hl);
					cb(arg, s + st, n, clean, pl + hl, 1u /* defanged */);
				}
			}
			i = e > i ? e : i + 1;
			continue;
		}
		/* www. or a bare domain */
		size_t hlen = 0;
		bool def = false;
		size_t used = read_host(s + i, len - i, clean + 6, 250, &hlen, &def);
		if (!used) {
			/* not a host: skip the word, but stop where a glued scheme starts */
			size_t k;
			while (i < len && (k = label_char((const unsigned char *)s + i, len - i)) > 0) {
				i += k;
				if (i < len && (s[i] == 'h' || s[i] == 'H') && plain_scheme_at(s + i, len - i))
					break;
			}
			if (i < len && !((s[i] == 'h' || s[i] == 'H') && plain_scheme_at(s + i, len - i)))
				i++;
			continue;
		}
		size_t e = i + used;
		/* an e-mail address or a longer dotted thing: not a link */
		if (e < len && (s[e] == '@' || (s[e] == '.' && e + 1 < len &&
						 isalnum((unsigned char)s[e + 1])))) {
			i = e + 1;
			continue;
		}
		char *host = clean + 6;
		bool www = hlen > 4 && strncasecmp(host, "www.", 4) == 0;
		bool ftp = hlen > 4 && strncasecmp(host, "ftp.", 4) == 0;
		bool line_no = e + 1 < len && s[e] == ':' && isdigit((unsigned char)s[e + 1]);
		/* a bare address is a link only with a port or a path after it: "Your IP:
		 * 203.0.113.9" and relay addresses in quoted headers are not links */
		bool ok = all_digits_dots(host, hlen)
				  ? dotted_quad(host, hlen) && e < len && (s[e] == '/' || s[e] == ':')
				  : bare_host_ok(host, hlen, www) && !file_like(host, hlen, line_no);
		if (!ok && www && !def) {
			/* "www.example.netNow": a word glued to the TLD */
			size_t m = unglue_tld(host, hlen, 0);
			if (m < hlen && bare_host_ok(host, m, true)) {
				hlen = m;
				used = m;
				e = i + used;
				host[hlen] = 0;
				ok = true;
			}
		}
		if (ok) {
			size_t ce = i;
			/* optional :port and path */
			size_t pe = e;
			if (pe < len && (s[pe] == ':' || s[pe] == '/' || s[pe] == '?' || s[pe] == '#')) {
				if (s[pe] == ':' && !(pe + 1 < len && isdigit((unsigned char)s[pe + 1]))) {
					/* "example.com: text" */
				} else {
					while (pe < len && pe - ce < URL_MAX_LEN &&
					       !url_end((const unsigned char *)s + pe, len - pe))
						pe++;
				}
			}
			size_t n = trim_tail(s + ce, pe - ce);
			if (n < used)
				n = used;
			size_t tail = n - used;
			if (hlen + tail < URL_MAX_LEN) {
				/* "ftp.example.org" is an FTP server, as SpamAssassin reads it */
				char *u = host;
				size_t ul = hlen + tail;
				memcpy(host + hlen, s + ce + used, tail);
				if (ftp) {
					u = clean;
					memcpy(clean, "ftp://", 6);
					ul += 6;
				}
				cb(arg, s + ce, n, u, ul, (def ? 1u : 0) | (ftp ? 2u : 0));
			}
			i = ce + n;
			continue;
		}
		i = e;
	}
}

struct scan_add {
	struct an_ctx *c;
	unsigned where;
	int part;
};

static void scan_add_cb(void *arg, const char *raw, size_t rlen, const char *clean, size_t clen,
			unsigned flags)
{
	struct scan_add *sa = arg;
	an_add_link(sa->c, raw, rlen, clean, clen, sa->where,
		    (flags & 1 ? URL_F_DEFANGED : 0) | (flags & 2 ? URL_F_NO_SCHEME : 0), sa->part);
}

void an_scan_add(struct an_ctx *c, const char *s, size_t len, unsigned where, int part)
{
	struct scan_add sa = {c, where, part};
	an_scan_text(s, len, scan_add_cb, &sa);
}
