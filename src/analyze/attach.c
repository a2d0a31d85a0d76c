/*
 * attach: what is inside an attachment, without writing anything to disk: archive
 * members listed with their names, sizes and SHA-256 (libarchive, from memory: zip,
 * rar, 7z, tar, gzip/bzip2/xz, cab, iso ...), links in Office OOXML documents (the
 * relationships' external targets and the text of the document parts), links in PDF
 * object streams (pdf.c, FlateDecode through zlib), and Outlook's TNEF (winmail.dat:
 * tnef.c) unpacked into attachments of its own.  Members that can carry links (HTML,
 * text, PDF, nested archives and TNEF) are inspected in turn.
 *
 * Every bound is a constant here: nesting depth AT_MAX_DEPTH (an archive in a TNEF in
 * an archive ...), members per archive AT_MAX_MEMBERS, bytes kept of a member for
 * inspection AT_KEEP, and the bytes expanded from containers per message
 * (an_ctx.expanded, at most AT_BUDGET and the message's max_decoded): a decompression
 * bomb costs at most that much CPU and AT_KEEP of memory, and is a finding.
 */
#include "analyze/analyze_private.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyze/url.h"

#define AT_MAX_MEMBERS 256
#define AT_KEEP (8u << 20)
#define AT_BUDGET (64u << 20)
#define AT_CHUNK (64u << 10)

static void hexs(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

bool an_expand_budget(struct an_ctx *c, size_t n)
{
	size_t cap = c->lim->max_decoded < AT_BUDGET ? c->lim->max_decoded : AT_BUDGET;
	if (c->expanded + n > cap) {
		if (!c->expand_noted)
			an_finding(c->a, "expand_limit",
				   "more than %zu bytes expanded from archives, PDF streams and TNEF",
				   cap);
		c->expand_noted = true;
		return false;
	}
	c->expanded += n;
	return true;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);
	return a >= b && strcasecmp(s + a - b, suf) == 0;
}

enum kind { K_NONE, K_PDF, K_TNEF, K_ARCHIVE, K_HTML, K_TEXT };

static enum kind sniff(const unsigned char *d, size_t n, const char *name)
{
	if (n >= 4 && d[0] == 0x78 && d[1] == 0x9F && d[2] == 0x3E && d[3] == 0x22)
		return K_TNEF;
	if (n >= 5 && memmem(d, n < 1024 ? n : 1024, "%PDF-", 5))
		return K_PDF;
	static const struct {
		const char *m;
		size_t l;
	} arch[] = {{"PK\3\4", 4}, {"PK\5\6", 4}, {"Rar!\x1a\x07", 6}, {"7z\xbc\xaf\x27\x1c", 6},
		    {"\x1f\x8b", 2}, {"BZh", 3}, {"\xfd" "7zXZ", 5}, {"MSCF", 4}};
	for (size_t i = 0; i < sizeof(arch) / sizeof(arch[0]); i++)
		if (n >= arch[i].l && memcmp(d, arch[i].m, arch[i].l) == 0)
			return K_ARCHIVE;
	if (n > 262 && memcmp(d + 257, "ustar", 5) == 0)
		return K_ARCHIVE;
	if (n > 0x8005 && memcmp(d + 0x8001, "CD001", 5) == 0)
		return K_ARCHIVE; /* ISO 9660 image */
	if (name && (has_suffix(name, ".htm") || has_suffix(name, ".html") ||
		     has_suffix(name, ".xhtml") || has_suffix(name, ".shtml")))
		return K_HTML;
	if (name && (has_suffix(name, ".txt") || has_suffix(name, ".url") ||
		     has_suffix(name, ".csv") || has_suffix(name, ".eml")))
		return K_TEXT;
	return K_NONE;
}

static void scan_html(struct an_ctx *c, int part, const unsigned char *d, size_t n)
{
	struct an_html *h = an_html_new(c, part, &c->a->text);
	if (!h)
		return;
	an_html_set_where(h, AN_W_ATTACHMENT);
	an_html_feed(h, (const char *)d, n);
	an_html_free(&h);
}

/* ---- Office OOXML ---- */

/* The value of attribute name in the XML element starting at e (up to its '>'). */
static bool xml_attr(const char *e, const char *end, const char *name, const char **v,
		     size_t *vl)
{
	size_t nl = strlen(name);
	for (const char *p = e; p + nl + 2 < end && *p != '>'; p++) {
		if ((p == e || isspace((unsigned char)p[-1])) && strncmp(p, name, nl) == 0 &&
		    p[nl] == '=' && (p[nl + 1] == '"' || p[nl + 1] == '\'')) {
			char q = p[nl + 1];
			const char *s = p + nl + 2, *t = memchr(s, q, (size_t)(end - s));
			if (!t)
				return false;
			*v = s;
			*vl = (size_t)(t - s);
			return true;
		}
	}
	return false;
}

/* XML entities of attribute values and text, the five predefined and numeric ones
 * for ASCII. */
static size_t xml_unescape(const char *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;
	for (size_t i = 0; i < n && o + 1 < cap; i++) {
		if (s[i] == '&') {
			static const struct {
				const char *e;
				char c;
			} ent[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'},
				   {"&apos;", '\''}};
			bool done = false;
			for (size_t k = 0; k < 5 && !done; k++) {
				size_t l = strlen(ent[k].e);
				if (i + l <= n && strncmp(s + i, ent[k].e, l) == 0) {
					out[o++] = ent[k].c;
					i += l - 1;
					done = true;
				}
			}
			if (!done && i + 3 < n && s[i + 1] == '#') {
				size_t j = i + 2;
				unsigned v = 0;
				bool hexa = s[j] == 'x';
				if (hexa)
					j++;
				while (j < n && j < i + 10 && isxdigit((unsigned char)s[j])) {
					int dv = isdigit((unsigned char)s[j]) ? s[j] - '0'
									      : (tolower((unsigned char)s[j]) - 'a' + 10);
					if (!hexa && dv > 9)
						break;
					v = v * (hexa ? 16u : 10u) + (unsigned)dv;
					j++;
				}
				if (j < n && s[j] == ';' && v > 0 && v < 0x80) {
					out[o++] = (char)v;
					i = j;
					done = true;
				}
			}
			if (done)
				continue;
		}
		out[o++] = s[i];
	}
	out[o] = 0;
	return o;
}

/* A relationships part: every external Target (hyperlinks, linked images, remote
 * templates: the "template injection" trick) is a link; Type URIs are namespaces. */
static void ooxml_rels(struct an_ctx *c, int part, const char *d, size_t n)
{
	const char *p = d, *end = d + n;
	int found = 0;
	while ((p = memmem(p, (size_t)(end - p), "<Relationship ", 14)) && found < 1000) {
		const char *e = memchr(p, '>', (size_t)(end - p));
		if (!e)
			break;
		const char *v, *m;
		size_t vl, ml;
		if (xml_attr(p, e, "Target", &v, &vl) && xml_attr(p, e, "TargetMode", &m, &ml) &&
		    ml == 8 && strncmp(m, "External", 8) == 0 && vl < URL_MAX_LEN) {
			char u[URL_MAX_LEN + 1];
			size_t ul = xml_unescape(v, vl, u, sizeof(u));
			an_add_link(c, u, ul, u, ul, AN_W_ATTACHMENT, 0, part);
			found++;
		}
		p = e;
	}
}

/* A document part (word/document.xml, xl/sharedStrings.xml, ppt/slides/...): the text
 * between the tags (field codes such as HYPERLINK "..." included), scanned like a
 * text part; tags and their namespace URIs are skipped. */
static void ooxml_text(struct an_ctx *c, int part, const char *d, size_t n)
{
	struct buf t;
	buf_init(&t, n + 1);
	bool in_tag = false;
	size_t run = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = d[i];
		if (ch == '<') {
			if (run) {
				char tmp[4096];
				size_t k = xml_unescape(d + i - run, run, tmp, sizeof(tmp));
				buf_append(&t, tmp, k);
			}
			run = 0;
			in_tag = true;
			/* a paragraph or a cell ends a word, a run (w:r, w:t) does not */
			if (i + 4 < n && (strncmp(d + i, "</w:p>", 6) == 0 || strncmp(d + i, "</a:p>", 6) == 0 ||
					  strncmp(d + i, "</si>", 5) == 0 || strncmp(d + i, "<w:tab", 6) == 0 ||
					  strncmp(d + i, "<w:br", 5) == 0))
				buf_putc(&t, '\n');
			continue;
		}
		if (ch == '>' && in_tag) {
			in_tag = false;
			continue;
		}
		if (!in_tag) {
			run++;
			if (run >= 4000) { /* flush long runs */
				char tmp[4096];
				size_t k = xml_unescape(d + i + 1 - run, run, tmp, sizeof(tmp));
				buf_append(&t, tmp, k);
				run = 0;
			}
		}
	}
	if (run) {
		char tmp[4096];
		size_t k = xml_unescape(d + n - run, run, tmp, sizeof(tmp));
		buf_append(&t, tmp, k);
	}
	if (t.len)
		an_scan_add(c, t.data, t.len, AN_W_ATTACHMENT, part);
	buf_free(&t);
}

static bool ooxml_text_part(const char *name)
{
	if (!has_suffix(name, ".xml") || strstr(name, "_rels/") || strstr(name, "theme") ||
	    strstr(name, "styles") || strstr(name, "fontTable") || strstr(name, "settings") ||
	    strstr(name, "webSettings") || strstr(name, "numbering") || strstr(name, "docProps/"))
		return false;
	return strncmp(name, "word/", 5) == 0 || strncmp(name, "xl/", 3) == 0 ||
	       strncmp(name, "ppt/", 4) == 0;
}

/* ---- archives ---- */

struct member_keep {
	unsigned char *d;
	size_t n;
};

/* A member worth reading on: OOXML parts, and what can carry links. */
static bool worth_keeping(const char *name, bool ooxml)
{
	if (ooxml && (has_suffix(name, ".rels") || ooxml_text_part(name)))
		return true;
	static const char *const ext[] = {".htm", ".html", ".xhtml", ".shtml", ".txt", ".url",
					  ".pdf", ".zip", ".rar", ".7z", ".gz", ".tgz", ".tar",
					  ".bz2", ".xz", ".cab", ".iso", ".img", ".dat", ".tnef",
					  ".eml", ".docx", ".xlsx", ".pptx", ".docm", ".xlsm",
					  ".pptm", ".odt"};
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++)
		if (has_suffix(name, ext[i]))
			return true;
	return false;
}

static void add_member(struct an_attachment *at, const char *name, uint64_t size,
		       const char *sha, bool encrypted, bool truncated)
{
	struct an_member *m = AN_PUSH(at->mdet, at->n_mdet);
	if (!m)
		return;
	m->name = strdup(name);
	m->size = size;
	snprintf(m->sha256, sizeof(m->sha256), "%s", sha ? sha : "");
	m->encrypted = encrypted;
	m->truncated = truncated;
	/* the names alone, as before (members[]) */
	size_t k = 0;
	while (at->members && at->members[k])
		k++;
	char **nv = realloc(at->members, (k + 2) * sizeof(*nv));
	if (!nv)
		return;
	at->members = nv;
	nv[k] = strdup(name);
	nv[k + 1] = NULL;
}

static struct archive *open_mem(const unsigned char *d, size_t n, bool raw)
{
	struct archive *ar = archive_read_new();
	if (!ar)
		return NULL;
	archive_read_support_filter_all(ar);
	if (raw)
		archive_read_support_format_raw(ar);
	else
		archive_read_support_format_all(ar);
	if (archive_read_open_memory(ar, d, n) != ARCHIVE_OK) {
		archive_read_free(ar);
		return NULL;
	}
	return ar;
}

static void inspect(struct an_ctx *c, int part, size_t att, const unsigned char *d, size_t n,
		    const char *name, unsigned depth, const char *prefix);

/* List (and hash) an archive's members into attachment att; members that can carry
 * links are inspected (depth + 1).  prefix: "outer.zip!/" for a nested archive. */
static void archive_list(struct an_ctx *c, int part, size_t att, const unsigned char *d,
			 size_t n, unsigned depth, const char *prefix)
{
	bool raw = false;
	struct archive *ar = open_mem(d, n, false);
	struct archive_entry *e;
	int r = ar ? archive_read_next_header(ar, &e) : ARCHIVE_FATAL;
	if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
		/* a single compressed file (.gz, .bz2, .xz): the raw format after the filter */
		if (ar)
			archive_read_free(ar);
		if (!(n >= 2 && ((d[0] == 0x1f && d[1] == 0x8b) || (d[0] == 'B' && d[1] == 'Z') ||
				 d[0] == 0xfd)))
			return;
		ar = open_mem(d, n, true);
		raw = true;
		r = ar ? archive_read_next_header(ar, &e) : ARCHIVE_FATAL;
		if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
			if (ar)
				archive_read_free(ar);
			return;
		}
	}
	/* OOXML: a zip with [Content_Types].xml; known only when that member is seen, so
	 * the name decides (it is nearly always the first member) */
	bool ooxml = false;
	unsigned char *chunk = malloc(AT_CHUNK);
	int count = 0;
	while (chunk && (r == ARCHIVE_OK || r == ARCHIVE_WARN)) {
		if (count >= AT_MAX_MEMBERS) {
			an_finding(c->a, "members_limit", "more than %d archive members (part %d)",
				   AT_MAX_MEMBERS, part);
			break;
		}
		const char *nm = archive_entry_pathname_utf8(e);
		if (!nm)
			nm = archive_entry_pathname(e);
		char full[1024];
		if (raw) {
			/* a single compressed file: named after the attachment without .gz */
			const char *an = c->a->atts[att].filename ? c->a->atts[att].filename : "data";
			const char *slash = strrchr(prefix, '!');
			if (slash && slash > prefix) /* nested: "x.zip!/y.gz!/" */
				an = "data";
			size_t l = strlen(an);
			static const char *const zs[] = {".gz", ".bz2", ".xz", ".tgz"};
			for (size_t k = 0; k < 4; k++)
				if (has_suffix(an, zs[k])) {
					l -= strlen(zs[k]);
					break;
				}
			snprintf(full, sizeof(full), "%s%.*s", prefix, (int)l, an);
		} else {
			snprintf(full, sizeof(full), "%s%s", prefix, nm ? nm : "?");
		}
		if (nm && strcmp(nm, "[Content_Types].xml") == 0)
			ooxml = true;
		bool file = archive_entry_filetype(e) == AE_IFREG || raw;
		bool enc = archive_entry_is_data_encrypted(e) > 0;
		if (file && !enc) {
			EVP_MD_CTX *sha = EVP_MD_CTX_new();
			EVP_DigestInit_ex(sha, EVP_sha256(), NULL);
			bool keep = worth_keeping(full, ooxml) || raw;
			struct buf kept;
			buf_init(&kept, AT_KEEP);
			uint64_t size = 0;
			bool trunc = false;
			la_ssize_t k;
			while ((k = archive_read_data(ar, chunk, AT_CHUNK)) > 0) {
				if (!an_expand_budget(c, (size_t)k)) {
					trunc = true;
					break;
				}
				EVP_DigestUpdate(sha, chunk, (size_t)k);
				size += (uint64_t)k;
				if (keep && kept.len < AT_KEEP)
					buf_append(&kept, chunk,
						   (size_t)k < AT_KEEP - kept.len ? (size_t)k : AT_KEEP - kept.len);
			}
			if (k < 0)
				trunc = true; /* damaged or unsupported member: what was read */
			unsigned char md[EVP_MAX_MD_SIZE];
			unsigned mdl = 0;
			char hx[65];
			EVP_DigestFinal_ex(sha, md, &mdl);
			EVP_MD_CTX_free(sha);
			hexs(md, mdl, hx);
			add_member(&c->a->atts[att], full, size, size || !trunc ? hx : NULL, false, trunc);
			if (kept.len) {
				const unsigned char *kd = (const unsigned char *)kept.data;
				if (ooxml && has_suffix(full, ".rels"))
					ooxml_rels(c, part, kept.data, kept.len);
				else if (ooxml && ooxml_text_part(nm ? nm : ""))
					ooxml_text(c, part, kept.data, kept.len);
				else if (depth + 1 <= AT_MAX_DEPTH) {
					char pre[1040];
					snprintf(pre, sizeof(pre), "%s!/", full);
					inspect(c, part, att, kd, kept.len, full, depth + 1, pre);
				}
			}
			buf_free(&kept);
			if (c->expand_noted)
				break;
		} else {
			add_member(&c->a->atts[att], full, (uint64_t)archive_entry_size(e), NULL, enc,
				   false);
		}
		count++;
		if (raw)
			break;
		r = archive_read_next_header(ar, &e);
	}
	free(chunk);
	archive_read_free(ar);
}

static void inspect(struct an_ctx *c, int part, size_t att, const unsigned char *d, size_t n,
		    const char *name, unsigned depth, const char *prefix)
{
	switch (sniff(d, n, name)) {
	case K_PDF:
		an_pdf_scan(c, part, (const char *)d, n);
		break;
	case K_TNEF:
		an_tnef(c, part, d, n, depth);
		break;
	case K_ARCHIVE:
		if (depth <= AT_MAX_DEPTH)
			archive_list(c, part, att, d, n, depth, prefix);
		else
			an_finding(c->a, "attachment_depth", "containers nested deeper than %d (part %d)",
				   AT_MAX_DEPTH, part);
		break;
	case K_HTML:
		if (depth > 0) /* a MIME part named .htm was parsed as HTML already */
			scan_html(c, part, d, n);
		break;
	case K_TEXT:
		if (depth > 0)
			an_scan_add(c, (const char *)d, n, AN_W_ATTACHMENT, part);
		break;
	case K_NONE:
		break;
	}
}

void an_attachment_inspect(struct an_ctx *c, int part, size_t att, const unsigned char *d,
			   size_t n, unsigned depth)
{
	if (att >= c->a->n_atts || n == 0)
		return;
	inspect(c, part, att, d, n, c->a->atts[att].filename, depth, "");
}
