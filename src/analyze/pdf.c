/*
 * pdf: link annotations (/URI actions) in PDF attachments, read from the bytes as they
 * are, without a PDF parser: `/URI (string)` and `/URI <hex>`, with PDF string escapes
 * (\ddd octal, \n, \(, ...) decoded, since phishing PDFs write "https\072\057\057..."
 * to hide the link from naive scanners.  Compressed object streams are not inflated,
 * so links inside them are missed (a known limit).  Bounded: each string at most
 * URL_MAX_LEN bytes, at most 256 links per PDF.
 */
#include "analyze/analyze_private.h"

#include <string.h>

#include "analyze/url.h"

#define PDF_MAX_LINKS 256

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

void an_pdf_scan(struct an_ctx *c, int part, const char *d, size_t len)
{
	char out[URL_MAX_LEN + 4];
	int found = 0;
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
}
