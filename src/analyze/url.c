/*
 * url: offline URL normaliser, redirector unwrapping and shortener list (see url.h).
 *
 * Why hand-written: no Debian library normalises *hostile* URLs the way a mail filter
 * must (browser-style IPv4 forms, defanging, zero-width characters); libidn2 does the
 * IDN part and libpsl the registrable domain, the rest is string work kept here, bounded
 * by URL_MAX_LEN.
 */
#include "analyze/url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <glib.h>
#include <idn2.h>
#include <libpsl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

/* buf_putc without the call and the reserve arithmetic when there is room (the
 * normaliser writes byte by byte); the same result as buf_putc, cap included. */
static inline int putc_fast(struct buf *b, char c)
{
	if (b->len + 2 <= b->alloc && (!b->cap || b->len + 1 <= b->cap)) {
		b->data[b->len++] = c;
		b->data[b->len] = '\0';
		return 0;
	}
	return buf_putc(b, c);
}

const char *const url_flag_names[] = {
	"defanged", "zero_width", "bidi", "ip", "ip_obfuscated", "idn", "userinfo", "port",
	"redirector", "unwrapped", "shortener", "display_mismatch", "no_scheme", "backslash",
	"encoded_host", "mixed_script", "data", "trimmed_host",
};

size_t url_flag_count(void)
{
	return sizeof(url_flag_names) / sizeof(url_flag_names[0]);
}

static psl_ctx_t *g_psl;

int url_psl_init(const char *path)
{
	if (g_psl)
		return 0;
	if (path)
		g_psl = psl_load_file(path);
	if (!g_psl)
		g_psl = psl_latest(NULL);
	if (!g_psl)
		g_psl = (psl_ctx_t *)psl_builtin();
	return g_psl ? 0 : -1;
}

const struct psl_ctx_st *url_psl(void)
{
	if (!g_psl)
		url_psl_init(NULL);
	return g_psl;
}

void url_norm_clear(struct url_norm *r)
{
	free(r->norm);
	free(r->host);
	free(r->host_unicode);
	free(r->domain);
	free(r->scheme);
	memset(r, 0, sizeof(*r));
}

/* Zero-width (and soft hyphen) and bidi control characters, as UTF-8.  Returns the
 * sequence length at p when it is one (setting *flag), else 0. */
static size_t invisible_at(const unsigned char *p, size_t left, unsigned *flag)
{
	if (left >= 2 && p[0] == 0xC2 && p[1] == 0xAD) {
		*flag = URL_F_ZERO_WIDTH;
		return 2;
	}
	if (left >= 3 && p[0] == 0xE2 && p[1] == 0x80) {
		if (p[2] >= 0x8B && p[2] <= 0x8D) { /* ZWSP ZWNJ ZWJ */
			*flag = URL_F_ZERO_WIDTH;
			return 3;
		}
		if (p[2] == 0x8E || p[2] == 0x8F || (p[2] >= 0xAA && p[2] <= 0xAE)) {
			*flag = URL_F_BIDI;
			return 3;
		}
	}
	if (left >= 3 && p[0] == 0xE2 && p[1] == 0x81) {
		if (p[2] == 0xA0) { /* word joiner */
			*flag = URL_F_ZERO_WIDTH;
			return 3;
		}
		if (p[2] >= 0xA6 && p[2] <= 0xA9) {
			*flag = URL_F_BIDI;
			return 3;
		}
	}
	if (left >= 3 && p[0] == 0xEF && p[1] == 0xBB && p[2] == 0xBF) {
		*flag = URL_F_ZERO_WIDTH;
		return 3;
	}
	return 0;
}

/* Defang markers that stand for a dot / colon, case-insensitive. */
static const struct {
	const char *s;
	char c;
} defangs[] = {
	{"[.]", '.'}, {"(.)", '.'}, {"{.}", '.'}, {"[dot]", '.'}, {"(dot)", '.'},
	{"{dot}", '.'}, {"[:]", ':'}, {"[://]", 0},
};

/* Unicode dots that browsers map to '.' in host names (U+3002, U+FF0E, U+FF61). */
static size_t unicode_dot_at(const unsigned char *p, size_t left)
{
	if (left >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x82)
		return 3;
	if (left >= 3 && p[0] == 0xEF && p[1] == 0xBC && p[2] == 0x8E)
		return 3;
	if (left >= 3 && p[0] == 0xEF && p[1] == 0xBD && p[2] == 0xA1)
		return 3;
	return 0;
}

/* Strip invisibles and the tab/CR/LF that browsers drop; trim.  Result in out (empty
 * on entry).  To the fixed point, like refang() and for the same reasons: removing one
 * invisible can join the bytes around it into another ("\xE2" WJ "\x81\xA0" leaves a
 * word joiner), so the check is on the tail of out after each byte; invisibles are
 * whole UTF-8 sequences and never overlap.  Trimming comes last, as a removal can bare
 * a space at either end. */
static void strip_invisible(const char *raw, size_t len, struct buf *out, unsigned *flags)
{
	const unsigned char *p = (const unsigned char *)raw;
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
			continue;
		putc_fast(out, (char)p[i]);
		if (p[i] < 0x80)
			continue;
		for (size_t n = 2; n <= 3 && n <= out->len; n++) {
			unsigned f = 0;
			unsigned char *t = (unsigned char *)out->data + out->len - n;
			if (invisible_at(t, n, &f) == n) {
				*flags |= f;
				out->len -= n;
				out->data[out->len] = '\0';
				break;
			}
		}
	}
	/* trim ASCII whitespace and control bytes at both ends */
	while (out->len > 0 && (unsigned char)out->data[out->len - 1] <= ' ')
		out->data[--out->len] = '\0';
	size_t lead = 0;
	while (lead < out->len && (unsigned char)out->data[lead] <= ' ')
		lead++;
	buf_consume(out, lead);
}

/* Refang s into out, to the fixed point: the result holds no marker at all, so
 * refanging it again changes nothing.  Why one pass suffices: every marker opens with
 * [ ( { and closes with ] ) }, with no bracket inside, so two markers never overlap
 * and the order of replacement does not matter; a marker can only end at a closing
 * bracket, so checking the tail of out whenever one is appended finds each marker,
 * including one uncovered by an earlier replacement ("[[.]]" is "[" "." "]"), and a
 * replacement (". : ://") never ends in a bracket.  Linear in len, unlike rescanning
 * until nothing changes (a fixed round cap left deep nesting half-refanged).
 * Returns true when something was replaced. */
static bool refang(const char *s, size_t len, struct buf *out)
{
	bool changed = false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		putc_fast(out, c);
		if (c != ']' && c != ')' && c != '}')
			continue;
		for (size_t k = 0; k < sizeof(defangs) / sizeof(defangs[0]); k++) {
			size_t dl = strlen(defangs[k].s);
			if (out->len < dl ||
			    strncasecmp(out->data + out->len - dl, defangs[k].s, dl) != 0)
				continue;
			out->len -= dl;
			out->data[out->len] = '\0';
			if (defangs[k].c)
				putc_fast(out, defangs[k].c);
			else
				buf_puts(out, "://");
			changed = true;
			break;
		}
	}
	return changed;
}

/* Invisibles first (they may hide inside a marker: "(do<U+202E>t)"), then refang, so
 * that the result is a fixed point and normalising twice changes nothing. */
static void clean_input(const char *raw, size_t len, struct buf *out, unsigned *flags)
{
	struct buf a;
	buf_init(&a, out->cap);
	strip_invisible(raw, len, &a, flags);
	if (refang(a.data ? a.data : "", a.len, out))
		*flags |= URL_F_DEFANGED;
	buf_free(&a);
}

bool url_parse_ipv4(const char *s, size_t len, unsigned long *ip_r)
{
	uint64_t parts[4];
	int np = 0;
	size_t i = 0;
	if (len == 0)
		return false;
	if (s[len - 1] == '.') /* a trailing dot is allowed once */
		len--;
	while (i < len) {
		if (np == 4)
			return false;
		uint64_t v = 0;
		int base = 10;
		size_t st = i;
		if (s[i] == '0' && i + 1 < len && (s[i + 1] == 'x' || s[i + 1] == 'X')) {
			base = 16;
			i += 2;
			st = i;
		} else if (s[i] == '0' && i + 1 < len && s[i + 1] != '.') {
			base = 8;
			i++;
			st = i;
		}
		while (i < len && s[i] != '.') {
			int d;
			char c = s[i];
			if (c >= '0' && c <= '9')
				d = c - '0';
			else if (base == 16 && c >= 'a' && c <= 'f')
				d = c - 'a' + 10;
			else if (base == 16 && c >= 'A' && c <= 'F')
				d = c - 'A' + 10;
			else
				return false;
			if (d >= base)
				return false;
			v = v * (uint64_t)base + (uint64_t)d;
			if (v > 0xFFFFFFFFull)
				return false;
			i++;
		}
		if (i == st && base == 10)
			return false; /* empty part */
		parts[np++] = v;
		if (i < len) {
			i++; /* '.' */
			if (i == len)
				return false;
		}
	}
	if (np == 0)
		return false;
	uint64_t ip = 0;
	for (int k = 0; k < np - 1; k++) {
		if (parts[k] > 255)
			return false;
		ip |= parts[k] << (8 * (3 - k));
	}
	uint64_t last = parts[np - 1];
	uint64_t maxlast = np == 1 ? 0xFFFFFFFFull : (1ull << (8 * (5 - np))) - 1;
	if (last > maxlast)
		return false;
	ip |= last;
	*ip_r = (unsigned long)ip;
	return true;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool is_unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* Characters kept literally in path/query/fragment (RFC 3986 pchar + / ? plus a few
 * that browsers leave alone). */
static bool keep_literal(unsigned char c)
{
	/* c != 0: strchr() would find the terminator */
	return is_unreserved(c) || (c != 0 && strchr("!$&'()*+,;=:@/?#[]|^`{}", c) != NULL);
}

/* Percent-encoding normalisation of a path/query/fragment. */
static void norm_pct(const char *s, size_t len, struct buf *out)
{
	static const char hx[] = "0123456789ABCDEF";
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '%' && i + 2 < len + 0 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			unsigned char d = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			if (is_unreserved(d)) {
				putc_fast(out, (char)d);
			} else {
				putc_fast(out, '%');
				putc_fast(out, hx[d >> 4]);
				putc_fast(out, hx[d & 15]);
			}
			i += 2;
		} else if (c != '%' && keep_literal(c)) {
			putc_fast(out, (char)c);
		} else {
			putc_fast(out, '%');
			putc_fast(out, hx[c >> 4]);
			putc_fast(out, hx[c & 15]);
		}
	}
}

/* Userinfo or path/query/fragment: percent-encoding normalised, then refanged once
 * more.  Why again: decoding an unreserved byte can complete a marker that
 * clean_input could not see ("[%2e]" decodes to "[.]"); left in the output, the next
 * normalisation would refang it and the canonical form would not be a fixed point.
 * Decoding comes first and happens once (never decode the result again: "%252e" is
 * not "."); refanging cannot form a new %XX, since every '%' in norm_pct's output
 * starts a complete triple and markers (which start with a bracket) never cut one. */
static void norm_part(const char *s, size_t len, struct buf *out, unsigned *flags)
{
	struct buf t;
	buf_init(&t, out->cap);
	norm_pct(s, len, &t);
	if (refang(t.data ? t.data : "", t.len, out))
		*flags |= URL_F_DEFANGED;
	buf_free(&t);
}

static bool valid_utf8(const unsigned char *s, size_t len)
{
	size_t i = 0;
	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0 && c >= 0xC2)
			n = 2;
		else if ((c & 0xF0) == 0xE0)
			n = 3;
		else if ((c & 0xF8) == 0xF0 && c <= 0xF4)
			n = 4;
		else
			return false;
		if (i + n > len)
			return false;
		for (size_t k = 1; k < n; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
		i += n;
	}
	return true;
}

/* An IPv4 literal in any inet_aton form: dotted-quad host and domain, flags. */
static bool set_ipv4(struct url_norm *r, const char *s, size_t len)
{
	unsigned long ip;
	char txt[32];
	if (!url_parse_ipv4(s, len, &ip))
		return false;
	snprintf(txt, sizeof(txt), "%lu.%lu.%lu.%lu", (ip >> 24) & 255, (ip >> 16) & 255,
		 (ip >> 8) & 255, ip & 255);
	r->flags |= URL_F_IP;
	if (strlen(txt) != len || memcmp(txt, s, len) != 0)
		r->flags |= URL_F_IP_OBFUSCATED;
	r->host = strdup(txt);
	r->domain = strdup(txt);
	return true;
}

/* Host: percent-decode, unicode dots, lower case, trailing dot, IP forms, IDN. */
static bool norm_host(const char *s, size_t len, struct url_norm *r)
{
	struct buf h;
	buf_init(&h, 1024);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t n;
		if (c == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			c = (unsigned char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			r->flags |= URL_F_ENCODED_HOST;
			i += 2;
		} else if ((n = unicode_dot_at((const unsigned char *)s + i, len - i))) {
			c = '.';
			i += n - 1;
		} else if (h.len > 0 && c == 0xC2 && i + 1 < len && (unsigned char)s[i + 1] == 0xA0) {
			/* "http://host.example&nbsp;Search": the host ends at the NBSP, the
			 * rest of the authority is junk (flagged), as SpamAssassin trims it; an
			 * ASCII space stays a broken URL */
			r->flags |= URL_F_TRIMMED_HOST;
			break;
		}
		if (c <= ' ' || c == 0x7F) /* NUL, controls, space: never in a host */
			goto bad;
		if (putc_fast(&h, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c)) < 0)
			goto bad;
	}
	while (h.len > 0 && h.data[h.len - 1] == '.')
		h.data[--h.len] = 0;
	if (h.len == 0)
		goto bad;
	if (h.data[0] == '[') { /* IPv6 literal */
		char tmp[64];
		unsigned char a6[16];
		if (h.len < 3 || h.len > 60 || h.data[h.len - 1] != ']')
			goto bad;
		memcpy(tmp, h.data + 1, h.len - 2);
		tmp[h.len - 2] = 0;
		if (inet_pton(AF_INET6, tmp, a6) != 1)
			goto bad;
		char txt[INET6_ADDRSTRLEN + 2];
		txt[0] = '[';
		inet_ntop(AF_INET6, a6, txt + 1, INET6_ADDRSTRLEN);
		strcat(txt, "]");
		r->host = strdup(txt);
		r->domain = strdup(txt);
		r->flags |= URL_F_IP;
		buf_free(&h);
		return true;
	}
	if (set_ipv4(r, h.data, h.len)) {
		buf_free(&h);
		return true;
	}
	bool ascii = true;
	for (size_t i = 0; i < h.len; i++)
		if ((unsigned char)h.data[i] >= 0x80)
			ascii = false;
	if (!ascii || strstr(h.data, "xn--")) {
		char *a = NULL, *u = NULL;
		if (!valid_utf8((const unsigned char *)h.data, h.len))
			goto bad;
		if (idn2_to_ascii_8z(h.data, &a, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK &&
		    idn2_to_ascii_8z(h.data, &a, IDN2_NFC_INPUT | IDN2_TRANSITIONAL) != IDN2_OK) {
			free(a);
			goto bad;
		}
		/* IDNA drops what it maps to nothing (U+2060, U+00AD, variation selectors):
		 * what is left must be a host by the rules applied before, or the canonical
		 * form would not survive being normalised again ("a.<U+2060>" is "a.") */
		size_t al = strlen(a);
		while (al > 0 && a[al - 1] == '.')
			a[--al] = '\0';
		if (al == 0) {
			idn2_free(a);
			goto bad;
		}
		if (idn2_to_unicode_8z8z(a, &u, 0) != IDN2_OK) {
			free(u);
			u = NULL;
		}
		/* Only letters, digits, marks and '-' in a label: a symbol or punctuation
		 * ("(c)XxxMatch.net") is text around a host, never part of an IDN (IDNA
		 * 2003's transitional mapping would fold some of them in). */
		for (const char *q = u ? u : ""; *q; q = g_utf8_next_char(q)) {
			gunichar ch = g_utf8_get_char_validated(q, -1);
			if (ch == (gunichar)-1 || ch == (gunichar)-2) {
				break;
			}
			if (!(ch == '.' || ch == '-' || ch == '_' || g_unichar_isalnum(ch) ||
			      g_unichar_ismark(ch))) {
				idn2_free(a);
				idn2_free(u);
				goto bad;
			}
		}
		/* IDNA mapping can make an IPv4 literal ("\u2080" is "0"): browsers then
		 * read it as an address, and so do we */
		if (set_ipv4(r, a, strlen(a))) {
			r->flags |= URL_F_IP_OBFUSCATED;
			idn2_free(a);
			free(u);
			buf_free(&h);
			return true;
		}
		r->host = strdup(a);
		idn2_free(a);
		if (u && strcmp(u, r->host) != 0) {
			r->host_unicode = strdup(u);
			r->flags |= URL_F_IDN;
			/* Latin letters mixed with non-ASCII letters in one label: the homograph
			 * sign.  Cheap check on the Unicode form. */
			const char *lab = u;
			while (*lab) {
				const char *e = strchr(lab, '.');
				size_t ll = e ? (size_t)(e - lab) : strlen(lab);
				bool lat = false, non = false;
				for (size_t k = 0; k < ll; k++) {
					unsigned char c = (unsigned char)lab[k];
					if (isalpha(c))
						lat = true;
					else if (c >= 0xC0)
						non = true;
				}
				if (lat && non)
					r->flags |= URL_F_MIXED_SCRIPT;
				lab += ll;
				if (*lab == '.')
					lab++;
			}
		}
		if (u)
			idn2_free(u);
	} else {
		r->host = strdup(h.data);
	}
	/* host characters: letters, digits, - _ . only */
	for (const char *c = r->host; *c; c++)
		if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '_' || *c == '.'))
			goto bad;
	if (strstr(r->host, ".."))
		goto bad;
	const char *rd = psl_registrable_domain(url_psl(), r->host);
	if (rd)
		r->domain = strdup(rd);
	buf_free(&h);
	return true;
bad:
	buf_free(&h);
	return false;
}

static const struct {
	const char *name;
	const char *as;
	unsigned port;
} schemes[] = {
	{"http", "http", 80}, {"https", "https", 443}, {"hxxp", "http", 80},
	{"hxxps", "https", 443}, {"hxxp", "http", 80}, {"ftp", "ftp", 21},
	{"fxp", "ftp", 21},
};

enum url_result url_normalise(const char *raw, size_t len, struct url_norm *r)
{
	struct buf in, out;
	enum url_result res = URL_BAD;
	memset(r, 0, sizeof(*r));
	if (len > URL_MAX_LEN)
		return URL_BAD;
	buf_init(&in, 4 * URL_MAX_LEN);
	buf_init(&out, 4 * URL_MAX_LEN + 64);
	clean_input(raw, len, &in, &r->flags);
	char *s = in.data ? in.data : (char *)"";
	size_t n = in.len;
	/* scheme */
	size_t colon = 0;
	while (colon < n && (isalnum((unsigned char)s[colon]) || s[colon] == '+' ||
			     s[colon] == '-' || s[colon] == '.'))
		colon++;
	const char *scheme = NULL;
	unsigned defport = 0;
	size_t pos = 0;
	if (colon < n && colon > 0 && s[colon] == ':' && isalpha((unsigned char)s[0])) {
		for (size_t k = 0; k < sizeof(schemes) / sizeof(schemes[0]); k++)
			if (strlen(schemes[k].name) == colon &&
			    strncasecmp(s, schemes[k].name, colon) == 0) {
				scheme = schemes[k].as;
				defport = schemes[k].port;
				if (strcasecmp(schemes[k].name, schemes[k].as) != 0)
					r->flags |= URL_F_DEFANGED;
			}
		if (!scheme) {
			/* "host:port" has digits after the colon: not a scheme */
			bool digits = colon + 1 < n && isdigit((unsigned char)s[colon + 1]);
			if (!digits) {
				res = URL_NOT_WEB; /* mailto:, data:, javascript:, cid: ... */
				goto out;
			}
		} else {
			pos = colon + 1;
		}
	}
	if (!scheme) {
		scheme = "http";
		defport = 80;
		r->flags |= URL_F_NO_SCHEME;
	}
	/* slashes (any mix of / and \) */
	size_t sl = 0;
	while (pos < n && (s[pos] == '/' || s[pos] == '\\')) {
		if (s[pos] == '\\')
			r->flags |= URL_F_BACKSLASH;
		pos++;
		sl++;
	}
	/* "http:host/path" without slashes: browsers read it as http://host/path, and so
	 * do we when the host is an address or a name under a known TLD ("http:foo" stays
	 * refused: more likely a word than a host) */
	bool slashless = sl == 0 && !(r->flags & URL_F_NO_SCHEME);
	size_t aend = pos;
	while (aend < n && s[aend] != '/' && s[aend] != '?' && s[aend] != '#' && s[aend] != '\\')
		aend++;
	if (memchr(s + pos, '%', aend - pos)) {
		/* Percent-encoded delimiters in the authority ("decoy%40real.example",
		 * "%31%39%32.0.2.10%2Fpath"): decoded before it is split, the way
		 * SpamAssassin's decoded duplicate reads it, so the real host is the one
		 * after an encoded '@' and an encoded '/' starts the path.  The bytes shrink,
		 * so the rewrite fits in place. */
		size_t o = pos;
		for (size_t k = pos; k < aend; k++) {
			int hv = k + 2 < aend ? hexval(s[k + 1]) : -1, lv = hv >= 0 ? hexval(s[k + 2]) : -1;
			unsigned char d = (unsigned char)(hv * 16 + lv);
			/* control bytes stay escaped: in the host they make it invalid
			 * (norm_host decodes and refuses them), in the userinfo they stay as
			 * they are, so the canonical form is a fixed point */
			if (s[k] == '%' && hv >= 0 && lv >= 0 && d >= 0x20 && d != 0x7F) {
				s[o++] = (char)d;
				k += 2;
				r->flags |= URL_F_ENCODED_HOST;
			} else {
				s[o++] = s[k];
			}
		}
		memmove(s + o, s + aend, n - aend);
		n -= aend - o;
		s[n] = 0;
		in.len = n;
		aend = pos;
		while (aend < n && s[aend] != '/' && s[aend] != '?' && s[aend] != '#' &&
		       s[aend] != '\\')
			aend++;
	}
	const char *auth = s + pos;
	size_t alen = aend - pos;
	const char *at = NULL;
	for (size_t k = 0; k < alen; k++)
		if (auth[k] == '@')
			at = auth + k;
	const char *user = NULL;
	size_t ulen = 0;
	if (at) {
		user = auth;
		ulen = (size_t)(at - auth);
		alen -= ulen + 1;
		auth = at + 1;
		r->flags |= URL_F_USERINFO;
	}
	/* port: last ':' after any ']' */
	const char *hostp = auth;
	size_t hlen = alen;
	long port = -1;
	const char *rb = memchr(auth, ']', alen);
	const char *pc = NULL;
	for (size_t k = rb ? (size_t)(rb - auth) : 0; k < alen; k++)
		if (auth[k] == ':')
			pc = auth + k;
	if (pc) {
		hlen = (size_t)(pc - auth);
		size_t plen = alen - hlen - 1;
		if (plen > 0) {
			if (plen > 5)
				goto out;
			port = 0;
			for (size_t k = 0; k < plen; k++) {
				if (!isdigit((unsigned char)pc[1 + k]))
					goto out;
				port = port * 10 + (pc[1 + k] - '0');
			}
			if (port > 65535)
				goto out;
		}
	}
	if (!norm_host(hostp, hlen, r))
		goto out;
	if (slashless && !(r->flags & URL_F_IP)) {
		const char *tld = strrchr(r->host, '.');
		if (!tld || !r->domain || !url_tld_known(tld + 1))
			goto out;
	}
	r->scheme = strdup(scheme);
	buf_printf(&out, "%s://", scheme);
	if (user) {
		norm_part(user, ulen, &out, &r->flags);
		putc_fast(&out, '@');
	}
	buf_puts(&out, r->host);
	if (port >= 0 && (unsigned long)port != defport) {
		buf_printf(&out, ":%ld", port);
		r->flags |= URL_F_PORT;
	}
	/* path: backslashes count as slashes, the way browsers read them */
	struct buf path;
	buf_init(&path, 4 * URL_MAX_LEN);
	bool inq = false;
	for (size_t k = aend; k < n; k++) {
		char c = s[k];
		if (c == '?' || c == '#')
			inq = true;
		if (c == '\\' && !inq) {
			c = '/';
			r->flags |= URL_F_BACKSLASH;
		}
		putc_fast(&path, c);
	}
	if (path.len == 0 || path.data[0] != '/')
		putc_fast(&out, '/');
	norm_part(path.data ? path.data : "", path.len, &out, &r->flags);
	buf_free(&path);
	r->norm = buf_steal(&out, NULL);
	res = URL_OK;
out:
	if (res != URL_OK) {
		unsigned keep = r->flags;
		url_norm_clear(r);
		r->flags = keep;
	}
	buf_free(&in);
	buf_free(&out);
	return res;
}

static const char *const shorteners[] = {
	"bit.ly", "bitly.com", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly",
	"rebrand.ly", "cutt.ly", "shorturl.at", "t.ly", "rb.gy", "tiny.cc", "bl.ink", "s.id",
	"lnkd.in", "qrco.de", "v.gd", "x.co", "shorte.st", "adf.ly", "tiny.one", "bit.do",
	"soo.gd", "clck.ru", "u.to", "urlz.fr", "2.gy", "shrtco.de", "short.gy", "tr.im",
	"cli.gs", "cutt.us", "db.tt", "qr.ae", "youtu.be", "amzn.to", "fb.me", "l.ead.me",
	"surl.li", "shorturl.asia", "tinu.be", "gg.gg", "1url.com", "lc.chat", "rotf.lol",
	"t.me", "href.li", "dub.sh", "ux.nu", "3.ly", "tny.im", "me2.kr", "han.gl", "vo.la",
	"url.kr", "abre.ai", "encurtador.com.br", "bitly.ws", "shorter.me", "tiny.pl",
};

bool url_is_shortener(const char *host)
{
	if (!host)
		return false;
	if (strncmp(host, "www.", 4) == 0)
		host += 4;
	for (size_t i = 0; i < sizeof(shorteners) / sizeof(shorteners[0]); i++)
		if (strcmp(host, shorteners[i]) == 0)
			return true;
	return false;
}

/* Percent-decode s (len) into a malloc'd string; '+' stays. */
static char *pct_decode(const char *s, size_t len)
{
	char *o = malloc(len + 1);
	size_t j = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '%' && i + 2 < len + 0 && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			o[j++] = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else {
			o[j++] = s[i];
		}
	}
	o[j] = 0;
	return o;
}

static bool looks_absolute(const char *v)
{
	return strncasecmp(v, "http://", 7) == 0 || strncasecmp(v, "https://", 8) == 0 ||
	       strncasecmp(v, "hxxp://", 7) == 0 || strncasecmp(v, "hxxps://", 8) == 0 ||
	       strncasecmp(v, "http%3a", 7) == 0 || strncasecmp(v, "https%3a", 8) == 0 ||
	       strncmp(v, "//", 2) == 0;
}

/* A "www." parameter value that is a host under a known TLD, optionally with a path. */
static bool www_target(const char *v)
{
	size_t hl = strcspn(v, "/?# ");
	if (hl < 6 || hl > 253)
		return false;
	char tmp[256];
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)v[i];
		if (!(isalnum(c) || c == '-' || c == '.'))
			return false;
		tmp[i] = (char)tolower(c);
	}
	tmp[hl] = 0;
	const char *dot = strrchr(tmp, '.');
	return dot && url_tld_known(dot + 1) && url_has_public_suffix(tmp, hl);
}

/* Proofpoint URL Defense v2: u=http-3A__host_path  ("-XX" is %XX, "_" is "/"). */
static char *proofpoint_v2(const char *v)
{
	size_t len = strlen(v);
	char *o = malloc(len + 1);
	size_t j = 0;
	if (!o)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		if (v[i] == '-' && i + 2 < len && hexval(v[i + 1]) >= 0 && hexval(v[i + 2]) >= 0) {
			o[j++] = (char)(hexval(v[i + 1]) * 16 + hexval(v[i + 2]));
			i += 2;
		} else if (v[i] == '_') {
			o[j++] = '/';
		} else {
			o[j++] = v[i];
		}
	}
	o[j] = 0;
	return o;
}

/* The generic redirector shape SpamAssassin falls back on: the first "http:" or
 * "https:" (any case, then up to two slashes) anywhere after the host, in the path or
 * the query, glued to what precedes it or not ("/ *http://" without the space, "/?http://",
 * "clk;1;2;b?http://", "Redirect=http://", "q=6b-8gbZHEhttp://"), up to '&' or '#'.
 * Looked for in the bytes as they are, then percent-decoded once. */
static char *embedded_at(const char *p)
{
	for (const char *h = p; (h = strpbrk(h, "hH")); h++) {
		size_t sl = strncasecmp(h, "https:", 6) == 0 ? 6 : strncasecmp(h, "http:", 5) == 0 ? 5 : 0;
		if (!sl)
			continue;
		const char *r = h + sl;
		int slashes = 0;
		while (*r == '/' && slashes < 2) {
			r++;
			slashes++;
		}
		if (!(isalnum((unsigned char)*r) || *r == '[' || (unsigned char)*r >= 0x80))
			continue;
		size_t rl = strcspn(r, "&#");
		char *v = NULL;
		if (asprintf(&v, "%.*s//%.*s", (int)sl, h, (int)rl, r) < 0)
			return NULL;
		return v;
	}
	return NULL;
}

static char *embedded_url(const char *p)
{
	char *v = embedded_at(p + 1);
	if (v || !strchr(p, '%'))
		return v;
	char *d = pct_decode(p + 1, strlen(p + 1));
	v = d ? embedded_at(d) : NULL;
	free(d);
	return v;
}

char *url_unwrap(const struct url_norm *n)
{
	return url_unwrap_nth(n, 0);
}

char *url_unwrap_nth(const struct url_norm *n, unsigned k)
{
	unsigned found = 0;
	if (!n->norm || !n->host)
		return NULL;
	const char *p = strchr(n->norm + strlen(n->scheme) + 3, '/');
	if (!p)
		return NULL;
	/* Proofpoint v3: /v3/__URL__;... */
	if (strstr(n->host, "urldefense") && strncmp(p, "/v3/__", 6) == 0) {
		const char *e = strstr(p + 6, "__;");
		if (!e)
			e = p + strlen(p);
		char *v = strndup(p + 6, (size_t)(e - p - 6));
		if (v && looks_absolute(v))
			return k == 0 ? v : (free(v), NULL);
		free(v);
	}
	/* Google AMP: https://www.google.com/amp/s/host/path (s/ = https) */
	if (strncmp(n->host, "www.google.", 11) == 0 && strncmp(p, "/amp/", 5) == 0 && p[5]) {
		if (k > 0)
			return NULL;
		const char *r = p + 5;
		bool tls = strncmp(r, "s/", 2) == 0;
		char *v = NULL;
		if (tls)
			r += 2;
		if (asprintf(&v, "%s://%s", tls ? "https" : "http", r) < 0)
			return NULL;
		return v;
	}
	/* an absolute URL in the path: https://x/redirect/https://target */
	const char *q = strchr(p, '?');
	size_t plen = q ? (size_t)(q - p) : strlen(p);
	for (size_t i = 1; i + 8 < plen; i++) {
		if (p[i - 1] == '/' && (strncasecmp(p + i, "http://", 7) == 0 ||
					strncasecmp(p + i, "https://", 8) == 0 ||
					strncasecmp(p + i, "http:/", 6) == 0))
			return k == 0 ? strndup(p + i, plen - i + (q ? strlen(q) : 0)) : NULL;
		if (p[i - 1] == '/' && (strncasecmp(p + i, "http%3A", 7) == 0 ||
					strncasecmp(p + i, "https%3A", 8) == 0))
			return k == 0 ? pct_decode(p + i, plen - i) : NULL;
	}
	if (!q)
		return k == 0 ? embedded_url(p) : NULL;
	/* any parameter whose decoded value is an absolute http(s) URL; Proofpoint v2's
	 * u= has its own encoding */
	const char *a = q + 1;
	while (*a) {
		const char *e = a;
		while (*e && *e != '&' && *e != '#')
			e++;
		const char *eq = memchr(a, '=', (size_t)(e - a));
		if (eq) {
			char *v = pct_decode(eq + 1, (size_t)(e - eq - 1));
			if (v && eq - a == 1 && a[0] == 'u' && strstr(n->host, "urldefense") &&
			    strncmp(v, "http", 4) == 0 && strchr(v, '_')) {
				char *pp = proofpoint_v2(v);
				free(v);
				if (found++ == k)
					return pp;
				free(pp);
				v = NULL;
			}
			if (v && strncasecmp(v, "www.", 4) == 0 && www_target(v)) {
				/* "?login=www.evil.example": a host given as a parameter */
				char *w = NULL;
				if (asprintf(&w, "http://%.*s", (int)strcspn(v, " "), v) < 0)
					w = NULL;
				free(v);
				v = NULL;
				if (w && found++ == k)
					return w;
				free(w);
			}
			if (v && looks_absolute(v)) {
				/* A value that is itself still percent-encoded once more */
				if (strncasecmp(v, "http%3a", 7) == 0 || strncasecmp(v, "https%3a", 8) == 0) {
					char *v2 = pct_decode(v, strlen(v));
					free(v);
					v = v2;
				}
				if (found++ == k)
					return v;
			}
			free(v);
		}
		if (*e != '&')
			break;
		a = e + 1;
	}
	return found == 0 && k == 0 ? embedded_url(p) : NULL;
}

bool url_has_public_suffix(const char *name, size_t len)
{
	char tmp[256];
	if (len == 0 || len >= sizeof(tmp))
		return false;
	memcpy(tmp, name, len);
	tmp[len] = 0;
	for (size_t i = 0; i < len; i++)
		if (tmp[i] >= 'A' && tmp[i] <= 'Z')
			tmp[i] = (char)(tmp[i] + 32);
	const char *rd = psl_registrable_domain(url_psl(), tmp);
	if (!rd)
		return false;
	/* the suffix must be a real (ICANN) one, not just the "*" default rule */
	const char *dot = strchr(rd, '.');
	if (!dot)
		return false;
	/* libpsl says yes for some unknown multi-label names ("e.m"): the last label must
	 * be a TLD on its own as well */
	const char *last = strrchr(dot + 1, '.');
	if (!url_tld_known(last ? last + 1 : dot + 1))
		return false;
	return psl_is_public_suffix2(url_psl(), dot + 1, PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE) != 0;
}

bool url_tld_known(const char *label)
{
	if (!label || !*label || strchr(label, '.') || strlen(label) > 63)
		return false;
	int t = PSL_TYPE_ICANN | PSL_TYPE_NO_STAR_RULE;
	if (psl_is_public_suffix2(url_psl(), label, t))
		return true;
	/* ccTLDs registered only at the second level (za: co.za, org.za ...) are not
	 * suffixes themselves; one of the usual second levels is.  A made-up second level
	 * must not be, or libpsl is answering from a wildcard or a quirk ("x.m"). */
	static const char *const second[] = {"co", "com", "org", "ac", "gov", "net"};
	char tmp[80];
	snprintf(tmp, sizeof(tmp), "zz-mxb-x.%s", label);
	if (psl_is_public_suffix2(url_psl(), tmp, t))
		return false;
	for (size_t i = 0; i < sizeof(second) / sizeof(second[0]); i++) {
		snprintf(tmp, sizeof(tmp), "%s.%s", second[i], label);
		if (psl_is_public_suffix2(url_psl(), tmp, t))
			return true;
	}
	return false;
}

const char *url_registrable(const char *host)
{
	return psl_registrable_domain(url_psl(), host);
}
