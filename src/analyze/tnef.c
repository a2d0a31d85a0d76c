/*
 * tnef: Outlook's Transport Neutral Encapsulation Format (winmail.dat,
 * application/ms-tnef), read with a bounded parser of our own (libytnef is GPL).
 *
 * The stream is a signature (0x223E9F78, little-endian), a 16-bit key, then
 * attributes: level (1 message, 2 attachment), a 32-bit id (type << 16 | tag), a
 * 32-bit length, the data and a 16-bit checksum.  What we take:
 *   attAttachRendData (a new attachment), attAttachTitle (its short name),
 *   attAttachData (its bytes), attAttachment (its MAPI properties: long file name
 *   PR_ATTACH_LONG_FILENAME, MIME tag, and the data PR_ATTACH_DATA_OBJ when the
 *   bytes are there instead), attBody (plain text), attMsgProps (the message's MAPI
 *   properties: PR_BODY, PR_BODY_HTML, and PR_RTF_COMPRESSED, decompressed here:
 *   LZFu, [MS-OXRTFCP]).
 * Each attachment becomes an attachment of the message (same MIME part, name, hashes,
 * libmagic type) and is inspected like any other (attach.c); text, HTML and RTF bodies
 * are scanned for links.  Every length is checked against what is left; at most
 * TNEF_MAX_ATTS attachments, TNEF_MAX_PROPS properties per block, RTF output at most
 * TNEF_RTF_MAX bytes.
 */
#include "analyze/analyze_private.h"

#include <stdlib.h>
#include <string.h>

#define TNEF_SIGNATURE 0x223E9F78u
#define TNEF_MAX_ATTS 64
#define TNEF_MAX_PROPS 4096
#define TNEF_RTF_MAX (4u << 20)

/* attribute ids (type << 16 | tag) */
#define ATT_BODY 0x2800Cu
#define ATT_ATTACH_REND_DATA 0x69002u
#define ATT_ATTACH_TITLE 0x18010u
#define ATT_ATTACH_DATA 0x6800Fu
#define ATT_ATTACHMENT 0x69005u
#define ATT_MSG_PROPS 0x69003u

/* MAPI property tags (id) */
#define PR_BODY 0x1000
#define PR_BODY_HTML 0x1013
#define PR_RTF_COMPRESSED 0x1009
#define PR_ATTACH_DATA_OBJ 0x3701
#define PR_ATTACH_LONG_FILENAME 0x3707
#define PR_ATTACH_FILENAME 0x3704
#define PR_DISPLAY_NAME 0x3001

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

struct tnef_att {
	char name[256];
	const unsigned char *data;
	size_t len;
};

struct tnef {
	struct an_ctx *c;
	int part;
	unsigned depth;
	struct tnef_att atts[TNEF_MAX_ATTS];
	int n_atts;
	bool full;
};

/* UTF-16LE (MAPI unicode strings) to UTF-8, BMP and surrogate pairs, into out. */
static size_t utf16_to_utf8(const unsigned char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i + 1 < n && o + 4 < cap; i += 2) {
		uint32_t u = le16(s + i);
		if (u == 0)
			break;
		if (u >= 0xD800 && u < 0xDC00 && i + 3 < n) {
			uint32_t lo = le16(s + i + 2);
			if (lo >= 0xDC00 && lo < 0xE000) {
				u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
				i += 2;
			}
		}
		if (u < 0x80) {
			out[o++] = (char)u;
		} else if (u < 0x800) {
			out[o++] = (char)(0xC0 | u >> 6);
			out[o++] = (char)(0x80 | (u & 63));
		} else if (u < 0x10000) {
			out[o++] = (char)(0xE0 | u >> 12);
			out[o++] = (char)(0x80 | ((u >> 6) & 63));
			out[o++] = (char)(0x80 | (u & 63));
		} else {
			out[o++] = (char)(0xF0 | u >> 18);
			out[o++] = (char)(0x80 | ((u >> 12) & 63));
			out[o++] = (char)(0x80 | ((u >> 6) & 63));
			out[o++] = (char)(0x80 | (u & 63));
		}
	}
	out[o] = 0;
	return o;
}

static void set_name(char *dst, size_t cap, const unsigned char *s, size_t n, bool unicode)
{
	if (unicode) {
		utf16_to_utf8(s, n, dst, cap);
		return;
	}
	size_t k = 0;
	for (; k < n && k + 1 < cap && s[k]; k++)
		dst[k] = (char)s[k];
	dst[k] = 0;
}

/* ---- compressed RTF (LZFu) ---- */

static const char lzfu_dict[] =
	"{\\rtf1\\ansi\\mac\\deff0\\deftab720{\\fonttbl;}{\\f0\\fnil \\froman \\fswiss \\fmodern "
	"\\fscript \\fdecor MS Sans SerifSymbolArialTimes New RomanCourier{\\colortbl\\red0\\green0"
	"\\blue0\r\n\\par \\pard\\plain\\f0\\fs20\\b\\i\\u\\tab\\tx";

/* Decompress PR_RTF_COMPRESSED into a malloc'd buffer (*out_n bytes), or NULL.
 * Header: compressed size, raw size, magic ("LZFu" compressed or "MELA" stored), CRC. */
static char *lzfu(const unsigned char *d, size_t n, size_t *out_n)
{
	if (n < 16)
		return NULL;
	uint32_t csize = le32(d), rsize = le32(d + 4), magic = le32(d + 8);
	if (rsize > TNEF_RTF_MAX)
		rsize = TNEF_RTF_MAX;
	size_t avail = csize >= 12 && csize - 12 + 16 <= n ? csize - 12 + 16 : n;
	if (magic == 0x414C454D) { /* "MELA": stored */
		size_t k = avail - 16 < rsize ? avail - 16 : rsize;
		char *o = malloc(k + 1);
		if (!o)
			return NULL;
		memcpy(o, d + 16, k);
		o[k] = 0;
		*out_n = k;
		return o;
	}
	if (magic != 0x75465A4C) /* "LZFu" */
		return NULL;
	unsigned char dict[4096];
	size_t dl = sizeof(lzfu_dict) - 1; /* 207 */
	memset(dict, 0, sizeof(dict));
	memcpy(dict, lzfu_dict, dl);
	unsigned wp = (unsigned)dl;
	char *o = malloc((size_t)rsize + 1);
	size_t on = 0;
	if (!o)
		return NULL;
	size_t i = 16;
	while (i < avail && on < rsize) {
		unsigned flags = d[i++];
		for (int b = 0; b < 8 && i < avail && on < rsize; b++, flags >>= 1) {
			if (flags & 1) {
				if (i + 1 >= avail)
					goto done;
				unsigned ref = (unsigned)d[i] << 8 | d[i + 1];
				i += 2;
				unsigned off = ref >> 4, len = (ref & 15) + 2;
				if (off == wp)
					goto done; /* the end marker */
				for (unsigned k = 0; k < len && on < rsize; k++) {
					unsigned char ch = dict[(off + k) & 4095];
					o[on++] = (char)ch;
					dict[wp] = ch;
					wp = (wp + 1) & 4095;
				}
			} else {
				unsigned char ch = d[i++];
				o[on++] = (char)ch;
				dict[wp] = ch;
				wp = (wp + 1) & 4095;
			}
		}
	}
done:
	o[on] = 0;
	*out_n = on;
	return o;
}

/* ---- MAPI properties ---- */

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* Fixed sizes of MAPI value types (0: variable length). */
static size_t fixed_size(unsigned type)
{
	switch (type) {
	case 0x0002: case 0x0003: case 0x0004: case 0x000A: case 0x000B:
		return 4;
	case 0x0005: case 0x0006: case 0x0007: case 0x0014: case 0x0040:
		return 8;
	case 0x0048:
		return 16;
	default:
		return 0;
	}
}

static void body_text(struct tnef *t, const char *s, size_t n)
{
	an_scan_add(t->c, s, n, AN_W_ATTACHMENT, t->part);
}

static void body_html(struct tnef *t, const char *s, size_t n)
{
	struct an_html *h = an_html_new(t->c, t->part, &t->c->a->text);
	if (!h)
		return;
	an_html_set_where(h, AN_W_ATTACHMENT);
	an_html_feed(h, s, n);
	an_html_free(&h);
}

/* One property's value: what we use of it. */
static void prop_value(struct tnef *t, unsigned type, unsigned id, const unsigned char *v, size_t n,
		       struct tnef_att *att)
{
	bool unicode = type == 0x001F;
	if (id == PR_BODY && (type == 0x001E || unicode)) {
		if (unicode) {
			char *u = malloc(n * 2 + 4);
			if (u) {
				size_t k = utf16_to_utf8(v, n, u, n * 2 + 4);
				body_text(t, u, k);
				free(u);
			}
		} else {
			body_text(t, (const char *)v, n);
		}
	} else if (id == PR_BODY_HTML && (type == 0x0102 || type == 0x001E)) {
		body_html(t, (const char *)v, n);
	} else if (id == PR_RTF_COMPRESSED && type == 0x0102) {
		size_t rn = 0;
		if (!an_expand_budget(t->c, n))
			return;
		char *r = lzfu(v, n, &rn);
		if (r && an_expand_budget(t->c, rn))
			body_text(t, r, rn); /* RTF: HYPERLINK "..." and URLs in text */
		free(r);
	} else if (att && (id == PR_ATTACH_LONG_FILENAME || (id == PR_ATTACH_FILENAME && !att->name[0]) ||
			   (id == PR_DISPLAY_NAME && !att->name[0])) &&
		   (type == 0x001E || unicode)) {
		set_name(att->name, sizeof(att->name), v, n, unicode);
	} else if (att && id == PR_ATTACH_DATA_OBJ && (type == 0x0102 || type == 0x000D) && !att->data) {
		if (type == 0x000D && n >= 16) { /* an object: its IID first */
			v += 16;
			n -= 16;
		}
		att->data = v;
		att->len = n;
	}
}

/* A MAPI property block (attMsgProps, attAttachment). */
static void mapi_props(struct tnef *t, const unsigned char *d, size_t n, struct tnef_att *att)
{
	if (n < 4)
		return;
	uint32_t count = le32(d);
	size_t i = 4;
	for (uint32_t p = 0; p < count && p < TNEF_MAX_PROPS; p++) {
		if (i + 4 > n)
			return;
		unsigned type = le16(d + i), id = le16(d + i + 2);
		i += 4;
		if (id >= 0x8000) { /* named property: GUID, kind, id or name */
			if (i + 20 > n)
				return;
			uint32_t kind = le32(d + i + 16);
			i += 20;
			if (kind == 0) {
				i += 4;
			} else {
				if (i + 4 > n)
					return;
				uint32_t nl = le32(d + i);
				i += 4;
				if (nl > n - i)
					return;
				i += pad4(nl);
			}
		}
		bool multi = type & 0x1000;
		type &= 0x0FFF;
		size_t fs = fixed_size(type);
		uint32_t nv = 1;
		if (multi || (!fs && type != 0x0001)) {
			if (i + 4 > n)
				return;
			nv = le32(d + i);
			i += 4;
			if (nv > 65536)
				return;
		}
		for (uint32_t k = 0; k < nv; k++) {
			if (fs) {
				if (i + fs > n)
					return;
				i += fs;
			} else if (type == 0x0001) { /* PT_NULL */
				i += 4;
			} else if (type == 0x001E || type == 0x001F || type == 0x0102 || type == 0x000D) {
				if (i + 4 > n)
					return;
				uint32_t vl = le32(d + i);
				i += 4;
				if (vl > n - i)
					return;
				if (k == 0)
					prop_value(t, type, id, d + i, vl, att);
				i += pad4(vl);
			} else {
				return; /* a type we cannot size: stop here */
			}
			if (i > n)
				return;
		}
	}
}

static struct tnef_att *new_att(struct tnef *t)
{
	if (t->n_atts >= TNEF_MAX_ATTS) {
		if (!t->full)
			an_finding(t->c->a, "tnef_limit", "more than %d TNEF attachments (part %d)",
				   TNEF_MAX_ATTS, t->part);
		t->full = true;
		return NULL;
	}
	struct tnef_att *a = &t->atts[t->n_atts++];
	memset(a, 0, sizeof(*a));
	return a;
}

void an_tnef(struct an_ctx *c, int part, const unsigned char *d, size_t n, unsigned depth)
{
	if (n < 6 || le32(d) != TNEF_SIGNATURE)
		return;
	struct tnef *t = calloc(1, sizeof(*t));
	if (!t)
		return;
	t->c = c;
	t->part = part;
	t->depth = depth;
	struct tnef_att *cur = NULL;
	size_t i = 6;
	while (i + 9 <= n) {
		unsigned level = d[i];
		uint32_t id = le32(d + i + 1), len = le32(d + i + 5);
		i += 9;
		if (len > n - i) {
			an_finding(c->a, "tnef_damaged", "attribute %#x longer than the stream (part %d)",
				   id, part);
			break;
		}
		const unsigned char *v = d + i;
		if (level == 2 && id == ATT_ATTACH_REND_DATA) {
			cur = new_att(t);
		} else if (level == 2 && cur) {
			if (id == ATT_ATTACH_TITLE && !cur->name[0])
				set_name(cur->name, sizeof(cur->name), v, len, false);
			else if (id == ATT_ATTACH_DATA && !cur->data) {
				cur->data = v;
				cur->len = len;
			} else if (id == ATT_ATTACHMENT) {
				mapi_props(t, v, len, cur);
			}
		} else if (level == 1 && id == ATT_BODY) {
			body_text(t, (const char *)v, len);
		} else if (level == 1 && id == ATT_MSG_PROPS) {
			mapi_props(t, v, len, NULL);
		}
		i += len + 2; /* the checksum */
	}
	for (int k = 0; k < t->n_atts; k++) {
		struct tnef_att *a = &t->atts[k];
		if (!a->data)
			continue;
		size_t idx = an_add_attachment(c, part, a->name[0] ? a->name : "tnef-attachment",
					       NULL, a->data, a->len);
		if (idx != (size_t)-1)
			an_attachment_inspect(c, part, idx, a->data, a->len, depth + 1);
	}
	free(t);
}
