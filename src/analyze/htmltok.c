/*
 * htmltok: a streaming HTML tokenizer for link and text extraction (see htmltok.h).
 *
 * It follows the tokenization stage of HTML5 where it matters for what a mail client
 * shows, and builds no tree: start tags with their attributes, end tags and text, in
 * one pass over the bytes.  Character references are decoded in text and attribute
 * values (numeric ones and libxml2's table of HTML 4 names, htmlEntityLookup); script
 * and style content is raw text up to its end tag; comments, doctypes and processing
 * instructions are skipped (a "<!--" without "-->" anywhere after it ends at the next
 * '>', as SpamAssassin's parser and old mail clients read it, rather than hiding the
 * rest of the part).  There is no end of document: content after </html> or a second
 * <html> is tokenized like the rest.
 *
 * Bounds: names are cut at HTOK_NAME_MAX bytes, at most HTOK_MAX_ATTS attributes per
 * tag are reported, a tag or a comment still open at the end of a chunk waits for the
 * next chunk only up to HTOK_TAG_MAX bytes (then its '<' is taken as text), and work
 * is linear in the bytes.
 */
#include "analyze/htmltok.h"

#include <ctype.h>
#include <libxml/HTMLparser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define HTOK_NAME_MAX 64
#define HTOK_MAX_ATTS 64
#define HTOK_TAG_MAX (256u << 10)
#define HTOK_ENT_MAX 40

void htok_init(struct htok *t)
{
	memset(t, 0, sizeof(*t));
	buf_init(&t->scratch, 0);
}

void htok_free(struct htok *t)
{
	buf_free(&t->scratch);
}

static size_t utf8_put(char *o, unsigned long u)
{
	if (u == 0 || u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF))
		u = 0xFFFD;
	if (u < 0x80) {
		o[0] = (char)u;
		return 1;
	}
	if (u < 0x800) {
		o[0] = (char)(0xC0 | u >> 6);
		o[1] = (char)(0x80 | (u & 63));
		return 2;
	}
	if (u < 0x10000) {
		o[0] = (char)(0xE0 | u >> 12);
		o[1] = (char)(0x80 | ((u >> 6) & 63));
		o[2] = (char)(0x80 | (u & 63));
		return 3;
	}
	o[0] = (char)(0xF0 | u >> 18);
	o[1] = (char)(0x80 | ((u >> 12) & 63));
	o[2] = (char)(0x80 | ((u >> 6) & 63));
	o[3] = (char)(0x80 | (u & 63));
	return 4;
}

/* Names a reference may omit its ';' after (HTML's legacy list, the common part). */
static bool legacy_name(const char *n)
{
	static const char *const l[] = {"amp", "lt", "gt", "quot", "nbsp", "copy", "reg",
					"AMP", "LT", "GT", "QUOT"};
	for (size_t i = 0; i < sizeof(l) / sizeof(l[0]); i++)
		if (strcmp(n, l[i]) == 0)
			return true;
	return false;
}

/* A character reference at s ('&'), n bytes available: its UTF-8 into out (4 bytes
 * room), returns the bytes consumed (0: not a reference, the '&' is literal).
 * in_attr: HTML's attribute rule, a name without ';' followed by '=' or an alphanumeric
 * stays literal ("?a=1&copy=2"). */
static size_t entity(const char *s, size_t n, char *out, size_t *olen, bool in_attr)
{
	if (n < 3)
		return 0;
	if (s[1] == '#') {
		size_t i = 2;
		bool hx = i < n && (s[i] == 'x' || s[i] == 'X');
		if (hx)
			i++;
		size_t st = i;
		unsigned long v = 0;
		while (i < n && i - st < 8 && (hx ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) {
			int d = isdigit((unsigned char)s[i]) ? s[i] - '0' : (tolower((unsigned char)s[i]) - 'a' + 10);
			v = v * (hx ? 16 : 10) + (unsigned long)d;
			i++;
		}
		if (i == st)
			return 0;
		while (i < n && i - st < 16 && (hx ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i]))) {
			v = 0x110000; /* too long: the replacement character */
			i++;
		}
		if (i < n && s[i] == ';')
			i++;
		*olen = utf8_put(out, v);
		return i;
	}
	char name[HTOK_ENT_MAX];
	size_t i = 1, k = 0;
	while (i < n && k + 1 < sizeof(name) && isalnum((unsigned char)s[i]))
		name[k++] = s[i++];
	name[k] = 0;
	if (k == 0)
		return 0;
	bool semi = i < n && s[i] == ';';
	if (!semi) {
		if (!legacy_name(name))
			return 0;
		if (in_attr && i < n && (s[i] == '=' || isalnum((unsigned char)s[i])))
			return 0;
	}
	const htmlEntityDesc *e = htmlEntityLookup((const xmlChar *)name);
	if (!e) {
		/* HTML5 names libxml2's HTML 4 table lacks, and that spam uses */
		static const struct {
			const char *n;
			unsigned long v;
		} x[] = {{"apos", 0x27}, {"zwnj", 0x200C}, {"zwj", 0x200D}, {"NewLine", 0x0A},
			 {"Tab", 0x09}, {"nbsp", 0xA0}, {"colon", 0x3A}, {"sol", 0x2F},
			 {"period", 0x2E}, {"lpar", 0x28}, {"rpar", 0x29}, {"commat", 0x40},
			 {"quest", 0x3F}, {"equals", 0x3D}, {"num", 0x23}, {"percnt", 0x25}};
		for (size_t q = 0; q < sizeof(x) / sizeof(x[0]); q++)
			if (strcmp(name, x[q].n) == 0) {
				*olen = utf8_put(out, x[q].v);
				return i + (semi ? 1 : 0);
			}
		return 0;
	}
	*olen = utf8_put(out, e->value);
	return i + (semi ? 1 : 0);
}

/* Decode references in s into out (appended); returns the bytes of s used, which is
 * less than n only when !final and an '&' near the end may be the start of a
 * reference cut by the chunk boundary. */
static size_t decode_into(const char *s, size_t n, struct buf *out, bool in_attr, bool final)
{
	size_t i = 0, run = 0;
	while (i < n) {
		const char *amp = memchr(s + i, '&', n - i);
		size_t stop = amp ? (size_t)(amp - s) : n;
		(void)run;
		if (stop > i)
			buf_append(out, s + i, stop - i);
		i = stop;
		if (!amp)
			break;
		if (!final && n - i < HTOK_ENT_MAX && !memchr(s + i, ';', n - i))
			return i; /* maybe cut: wait for more */
		char u[8];
		size_t ul = 0, used = entity(s + i, n - i, u, &ul, in_attr);
		if (used) {
			buf_append(out, u, ul);
			i += used;
		} else {
			buf_putc(out, '&');
			i++;
		}
	}
	return n;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

/* Case-insensitive search for needle (lower case) in s. */
static const char *find_ci(const char *s, size_t n, const char *needle)
{
	size_t nl = strlen(needle);
	for (const char *p = s; p + nl <= s + n; p++) {
		p = memchr(p, '<', (size_t)(s + n - p));
		if (!p || p + nl > s + n)
			return NULL;
		if (strncasecmp(p, needle, nl) == 0)
			return p;
	}
	return NULL;
}

/* A start tag at s ('<' then a letter); returns the bytes used, 0 when incomplete. */
static size_t start_tag(struct htok *t, const char *s, size_t n, const struct htok_cb *cb,
			void *ud)
{
	/* find the end: '>' outside quoted attribute values */
	size_t i = 1;
	char q = 0;
	for (; i < n; i++) {
		char c = s[i];
		if (q) {
			if (c == q)
				q = 0;
		} else if (c == '>') {
			break;
		} else if ((c == '"' || c == '\'') && i > 0 && (s[i - 1] == '=' || is_space(s[i - 1]))) {
			/* a quote opens a value only right after '=' (spaces allowed) */
			size_t b = i;
			while (b > 1 && is_space(s[b - 1]))
				b--;
			if (s[b - 1] == '=')
				q = c;
		}
	}
	if (i >= n)
		return 0;
	size_t end = i; /* s[end] == '>' */
	struct buf *sc = &t->scratch;
	buf_reset(sc); /* offsets into it, turned into pointers once it is complete */
	/* name */
	size_t k = 1;
	size_t name_at = sc->len;
	while (k < end && !is_space(s[k]) && s[k] != '/' && s[k] != '>') {
		if (k - 1 < HTOK_NAME_MAX)
			buf_putc(sc, (char)tolower((unsigned char)s[k]));
		k++;
	}
	buf_putc(sc, 0);
	size_t att_off[HTOK_MAX_ATTS * 2];
	int na = 0;
	while (k < end) {
		while (k < end && (is_space(s[k]) || s[k] == '/'))
			k++;
		if (k >= end)
			break;
		size_t an = sc->len;
		size_t ns = k;
		while (k < end && !is_space(s[k]) && s[k] != '/' && s[k] != '=' && (k == ns || s[k] != '>')) {
			if (k - ns < HTOK_NAME_MAX)
				buf_putc(sc, (char)tolower((unsigned char)s[k]));
			k++;
		}
		buf_putc(sc, 0);
		while (k < end && is_space(s[k]))
			k++;
		size_t av = sc->len;
		if (k < end && s[k] == '=') {
			k++;
			while (k < end && is_space(s[k]))
				k++;
			size_t vs = k, ve;
			if (k < end && (s[k] == '"' || s[k] == '\'')) {
				char qq = s[k++];
				vs = k;
				const char *e = memchr(s + k, qq, end - k);
				ve = e ? (size_t)(e - s) : end;
				k = e ? ve + 1 : end;
			} else {
				while (k < end && !is_space(s[k]))
					k++;
				ve = k;
			}
			decode_into(s + vs, ve - vs, sc, true, true);
		}
		buf_putc(sc, 0);
		if (na < HTOK_MAX_ATTS) {
			att_off[2 * na] = an;
			att_off[2 * na + 1] = av;
			na++;
		}
	}
	if (!sc->data)
		return end + 1; /* out of memory: the tag is dropped */
	const char *atts[HTOK_MAX_ATTS * 2 + 2];
	for (int a = 0; a < na; a++) {
		atts[2 * a] = sc->data + att_off[2 * a];
		atts[2 * a + 1] = sc->data + att_off[2 * a + 1];
	}
	atts[2 * na] = atts[2 * na + 1] = NULL;
	const char *name = sc->data + name_at;
	cb->start(ud, name, na ? atts : NULL);
	if (strcmp(name, "script") == 0 || strcmp(name, "style") == 0 ||
	    strcmp(name, "xmp") == 0 || strcmp(name, "textarea") == 0 ||
	    strcmp(name, "title") == 0) {
		/* raw text (script, style, xmp) or text without tags (textarea, title) up
		 * to the end tag; a self-closed <script/> is still open, as in browsers */
		size_t nl = strlen(name); /* at most 8: one of the names above */
		t->raw_end[0] = '<';
		t->raw_end[1] = '/';
		memcpy(t->raw_end + 2, name, nl + 1);
		t->rcdata = strcmp(name, "textarea") == 0 || strcmp(name, "title") == 0;
	}
	return end + 1;
}

size_t htok_run(struct htok *t, const char *s, size_t n, bool final, const struct htok_cb *cb,
		void *ud)
{
	size_t i = 0;
	while (i < n) {
		if (t->raw_end[0]) {
			const char *e = find_ci(s + i, n - i, t->raw_end);
			size_t el = strlen(t->raw_end);
			while (e && e + el < s + n && !(is_space(e[el]) || e[el] == '>' || e[el] == '/'))
				e = find_ci(e + 1, (size_t)(s + n - e - 1), t->raw_end);
			if (e && e + el >= s + n && !final)
				e = NULL; /* what follows decides: wait for it */
			if (!e && !final) {
				/* keep what could be the start of the end tag */
				size_t keep = n - i > el ? el : n - i;
				size_t upto = n - keep;
				if (upto > i) {
					if (t->rcdata) {
						/* a reference cut by the piece's end waits too */
						buf_reset(&t->scratch);
						upto = i + decode_into(s + i, upto - i, &t->scratch, false,
								       false);
						if (t->scratch.len)
							cb->text(ud, t->scratch.data, t->scratch.len);
					} else {
						cb->text(ud, s + i, upto - i);
					}
				}
				return upto > i ? upto : i;
			}
			size_t stop = e ? (size_t)(e - s) : n;
			if (stop > i) {
				if (t->rcdata) {
					buf_reset(&t->scratch);
					decode_into(s + i, stop - i, &t->scratch, false, true);
					cb->text(ud, t->scratch.data, t->scratch.len);
				} else {
					cb->text(ud, s + i, stop - i);
				}
			}
			i = stop;
			t->raw_end[0] = 0;
			continue;
		}
		const char *lt = memchr(s + i, '<', n - i);
		size_t tend = lt ? (size_t)(lt - s) : n;
		if (tend > i) {
			buf_reset(&t->scratch);
			size_t used = decode_into(s + i, tend - i, &t->scratch, false, final || lt);
			if (t->scratch.len)
				cb->text(ud, t->scratch.data, t->scratch.len);
			i += used;
			if (i < tend)
				return i; /* a reference cut by the chunk end */
		}
		if (!lt)
			break;
		if (i + 1 >= n) {
			if (!final)
				return i;
			cb->text(ud, "<", 1);
			i++;
			continue;
		}
		char c = s[i + 1];
		size_t used = 0;
		bool incomplete = false;
		if (c == '!') {
			if (n - i >= 4 && s[i + 2] == '-' && s[i + 3] == '-') {
				const char *e = memmem(s + i + 4, n - i - 4, "-->", 3);
				if (e) {
					used = (size_t)(e + 3 - (s + i));
				} else if (!final) {
					incomplete = true;
				} else {
					/* unterminated: the comment ends at the next '>' */
					const char *g = memchr(s + i + 4, '>', n - i - 4);
					used = g ? (size_t)(g + 1 - (s + i)) : n - i;
				}
			} else if (n - i >= 9 && memcmp(s + i, "<![CDATA[", 9) == 0) {
				const char *e = memmem(s + i + 9, n - i - 9, "]]>", 3);
				if (!e && !final) {
					incomplete = true;
				} else {
					size_t dl = e ? (size_t)(e - (s + i + 9)) : n - i - 9;
					if (dl)
						cb->text(ud, s + i + 9, dl);
					used = e ? (size_t)(e + 3 - (s + i)) : n - i;
				}
			} else {
				const char *g = memchr(s + i + 2, '>', n - i - 2);
				if (!g && !final)
					incomplete = true;
				else
					used = g ? (size_t)(g + 1 - (s + i)) : n - i;
			}
		} else if (c == '?') {
			const char *g = memchr(s + i + 2, '>', n - i - 2);
			if (!g && !final)
				incomplete = true;
			else
				used = g ? (size_t)(g + 1 - (s + i)) : n - i;
		} else if (c == '/') {
			if (i + 2 < n && isalpha((unsigned char)s[i + 2])) {
				const char *g = memchr(s + i + 2, '>', n - i - 2);
				if (!g && !final) {
					incomplete = true;
				} else if (!g) {
					used = n - i;
				} else {
					char name[HTOK_NAME_MAX + 1];
					size_t k = 0;
					for (const char *p = s + i + 2; p < g && k < HTOK_NAME_MAX &&
									!is_space(*p) && *p != '/';
					     p++)
						name[k++] = (char)tolower((unsigned char)*p);
					name[k] = 0;
					cb->end(ud, name);
					used = (size_t)(g + 1 - (s + i));
				}
			} else if (i + 2 < n && s[i + 2] == '>') {
				used = 3; /* "</>": nothing */
			} else if (i + 2 >= n && !final) {
				incomplete = true;
			} else {
				/* "</ ..." a bogus comment up to '>' */
				const char *g = memchr(s + i + 2, '>', n - i - 2);
				if (!g && !final)
					incomplete = true;
				else
					used = g ? (size_t)(g + 1 - (s + i)) : n - i;
			}
		} else if (isalpha((unsigned char)c)) {
			used = start_tag(t, s + i, n - i, cb, ud);
			if (!used) {
				if (!final)
					incomplete = true;
				else
					used = n - i; /* a tag cut by the end of the part: dropped */
			}
		} else {
			cb->text(ud, "<", 1);
			used = 1;
		}
		if (incomplete) {
			if (n - i <= HTOK_TAG_MAX)
				return i;
			cb->text(ud, "<", 1); /* too long to be a tag: text */
			used = 1;
		}
		i += used;
	}
	return n;
}
