/*
 * pdf: link annotations (/URI actions) in PDF attachments, read from the bytes without
 * a PDF parser: `/URI (string)` and `/URI <hex>`, with PDF string escapes (\ddd octal,
 * \n, \(, ...) decoded, since phishing PDFs write "https\072\057\057..." to hide the
 * link from naive scanners.  PDF 1.5 writers put the annotation dictionaries in
 * compressed object streams: every stream whose dictionary names /FlateDecode is
 * inflated with zlib and scanned the same way.  Bounded: each string at most
 * URL_MAX_LEN bytes, at most 256 links per PDF, PDF_MAX_STREAMS streams, each inflated
 * to at most PDF_STREAM_MAX bytes, all within the message's expansion budget
 * (attach.c).  Predictors and other filters are not applied (their output is not
 * scanned).
 */
#include "analyze/analyze_private.h"

#include <string.h>
#include <zlib.h>

#include "analyze/url.h"

#define PDF_MAX_LINKS 256
#define PDF_MAX_STREAMS 2000
#define PDF_STREAM_MAX (4u << 20)

static int hexv(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 32;
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A literal string starting after '(' at s: decoded into out; returns bytes used. */
static size_t literal(const char *s, size_t len, char *out, size_t *olen)
{
	size_t i = 0, o = 0;
	int depth = 1;
	while (i < len && o < URL_MAX_LEN) {
		char c = s[i++];
		if (c == '\\' && i < len) {
			char e = s[i++];
			if (e >= '0' && e <= '7') {
				int v = e - '0';
				for (int k = 0; k < 2 && i < len && s[i] >= '0' && s[i] <= '7'; k++)
					v = v * 8 + (s[i++] - '0');
				out[o++] = (char)v;
			} else if (e == 'n') {
				out[o++] = '\n';
			} else if (e == 'r') {
				out[o++] = '\r';
			} else if (e == 't') {
				out[o++] = '\t';
			} else if (e == '\r' || e == '\n') {
				if (e == '\r' && i < len && s[i] == '\n')
					i++; /* line continuation */
			} else {
				out[o++] = e; /* \( \) \\ and unknown escapes */
			}
			continue;
		}
		if (c == '(')
			depth++;
		else if (c == ')' && --depth == 0)
			break;
		out[o++] = c;
	}
	*olen = o;
	return i;
}

static int scan_uris(struct an_ctx *c, int part, const char *d, size_t len, int found)
{
	char out[URL_MAX_LEN + 4];
	const char *p = d, *end = d + len;
	while (p < end && found < PDF_MAX_LINKS) {
		const char *u = memmem(p, (size_t)(end - p), "/URI", 4);
		if (!u)
			break;
		const char *s = u + 4;
		while (s < end && (*s == ' ' || *s == '\r' || *s == '\n' || *s == '\t'))
			s++;
		size_t olen = 0;
		if (s < end && *s == '(') {
			s++;
			s += literal(s, (size_t)(end - s), out, &olen);
		} else if (s < end && *s == '<' && s + 1 < end && s[1] != '<') {
			s++;
			int hi = -1;
			while (s < end && *s != '>' && olen < URL_MAX_LEN) {
				int v = hexv((unsigned char)*s++);
				if (v < 0)
					continue;
				if (hi < 0) {
					hi = v;
				} else {
					out[olen++] = (char)(hi * 16 + v);
					hi = -1;
				}
			}
		} else {
			p = u + 4;
			continue;
		}
		if (olen > 0) {
			an_add_link(c, out, olen, out, olen, AN_W_ATTACHMENT, 0, part);
			found++;
		}
		p = s > u + 4 ? s : u + 4;
	}
	return found;
}

/* Inflate one FlateDecode stream (zlib or raw deflate) into out (capped). */
static bool inflate_stream(const unsigned char *d, size_t n, struct buf *out)
{
	z_stream z;
	memset(&z, 0, sizeof(z));
	if (inflateInit2(&z, n >= 2 && (d[0] & 0x0F) == 8 ? 15 : -15) != Z_OK)
		return false;
	unsigned char tmp[16384];
	z.next_in = (unsigned char *)d;
	z.avail_in = (uInt)(n > UINT32_MAX ? UINT32_MAX : n);
	int r = Z_OK;
	while (r == Z_OK && out->len < PDF_STREAM_MAX) {
		z.next_out = tmp;
		z.avail_out = sizeof(tmp);
		r = inflate(&z, Z_NO_FLUSH);
		size_t got = sizeof(tmp) - z.avail_out;
		if (got)
			buf_append(out, tmp, got);
		if (got == 0 && r == Z_OK)
			break; /* no progress: truncated input */
	}
	inflateEnd(&z);
	return out->len > 0;
}

/* Does the stream dictionary name the Flate filter (/FlateDecode, or /Fl abbreviated)? */
static bool names_flate(const char *dict, size_t n)
{
	static const char *const names[] = {"/FlateDecode", "/Fl ", "/Fl]", "/Fl/", "/Fl>"};
	for (size_t i = 0; dict && i < sizeof(names) / sizeof(names[0]); i++)
		if (memmem(dict, n, names[i], strlen(names[i])))
			return true;
	return false;
}

void an_pdf_scan(struct an_ctx *c, int part, const char *d, size_t len)
{
	if (!d || !len)
		return;
	int found = scan_uris(c, part, d, len, 0);
	/* every "stream" keyword whose dictionary (back to its "obj") names FlateDecode */
	const char *p = d, *end = d + len;
	int streams = 0;
	while (found < PDF_MAX_LINKS && (p = memmem(p, (size_t)(end - p), "stream", 6))) {
		const char *kw = p;
		p += 6;
		if (kw > d && kw[-1] == 'd') /* "endstream" */
			continue;
		const char *q = p; /* the data starts after CRLF or LF (or a lone CR) */
		if (q < end && *q == '\r')
			q++;
		if (q < end && *q == '\n')
			q++;
		if (q == p)
			continue; /* "streams", "stream0": not the keyword */
		const char *back = kw - (kw - d > 2048 ? 2048 : kw - d);
		const char *obj = NULL;
		for (const char *b = back; (b = memmem(b, (size_t)(kw - b), "obj", 3)); b += 3)
			obj = b;
		const char *dict = obj ? obj : back;
		if (!names_flate(dict, (size_t)(kw - dict)))
			continue;
		if (++streams > PDF_MAX_STREAMS) {
			an_finding(c->a, "pdf_streams_limit", "more than %d streams (part %d)",
				   PDF_MAX_STREAMS, part);
			break;
		}
		const char *e = memmem(q, (size_t)(end - q), "endstream", 9);
		size_t sn = e ? (size_t)(e - q) : (size_t)(end - q);
		struct buf out;
		buf_init(&out, PDF_STREAM_MAX);
		if (inflate_stream((const unsigned char *)q, sn, &out)) {
			if (an_expand_budget(c, out.len))
				found = scan_uris(c, part, out.data, out.len, found);
			else
				p = end;
		}
		buf_free(&out);
		if (e)
			p = e + 9;
	}
}
