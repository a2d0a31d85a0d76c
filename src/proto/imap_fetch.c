/*
 * imap_fetch: message anatomy (header fields, a small bounded MIME walk, ENVELOPE and
 * BODYSTRUCTURE as Dovecot renders them) and FETCH / UID FETCH: BODY[section]<partial>,
 * BODY.PEEK, RFC822.*, ENVELOPE, BODYSTRUCTURE, FLAGS, INTERNALDATE, UID, the macros.
 *
 * Promises: the parsers read hostile messages without reading past them (MIME_MAX_PARTS,
 * MIME_MAX_DEPTH, HDR_VALUE_MAX); one FETCH produces at most FETCH_OUT_MAX bytes and
 * streams its output to the host as it grows; a non-PEEK body fetch sets \Seen unless
 * the folder is read-only.
 */
#include "proto/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MIME_MAX_PARTS 64
#define MIME_MAX_DEPTH 6
#define HDR_VALUE_MAX 8192
#define FETCH_MAX_ATTS 64
#define FETCH_OUT_MAX (64u * 1024 * 1024) /* bytes one FETCH may produce */

/* ------------------------------------------------------------ message anatomy --- */

/* Split at the blank line: hdr_len includes it (RFC 3501 HEADER). */
void imap_split_message(const char *p, size_t len, size_t *hdr_len_r)
{
	if (len >= 2 && p[0] == '\r' && p[1] == '\n') {
		*hdr_len_r = 2;
		return;
	}
	if (len >= 1 && p[0] == '\n') {
		*hdr_len_r = 1;
		return;
	}
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] != '\n')
			continue;
		if (p[i + 1] == '\n') {
			*hdr_len_r = i + 2;
			return;
		}
		if (i + 2 < len && p[i + 1] == '\r' && p[i + 2] == '\n') {
			*hdr_len_r = i + 3;
			return;
		}
	}
	*hdr_len_r = len;
}

/* Iterate header fields: returns false at the end.  Gives the name (name_len bytes)
 * and the whole field, folded lines included (field_len bytes). */
bool imap_next_field(const char *h, size_t hlen, size_t *pos, const char **name,
		     size_t *name_len, const char **field, size_t *field_len)
{
	while (*pos < hlen) {
		size_t start = *pos;
		size_t e = start;
		/* to the end of the field: a line not continued by SP/TAB */
		for (;;) {
			const char *lf = memchr(h + e, '\n', hlen - e);
			e = lf ? (size_t)(lf - h) + 1 : hlen;
			if (e >= hlen || (h[e] != ' ' && h[e] != '\t'))
				break;
		}
		*pos = e;
		const char *colon = memchr(h + start, ':', e - start);
		if (!colon || h[start] == '\r' || h[start] == '\n')
			continue; /* blank line or garbage */
		*name = h + start;
		*name_len = (size_t)(colon - (h + start));
		while (*name_len > 0 && ((*name)[*name_len - 1] == ' ' || (*name)[*name_len - 1] == '\t'))
			(*name_len)--;
		*field = h + start;
		*field_len = e - start;
		return true;
	}
	return false;
}

/* The unfolded value of the first field called name, into out (NUL-terminated).
 * Returns false when absent. */
bool imap_header_get(const char *h, size_t hlen, const char *name, char *out, size_t outlen)
{
	size_t pos = 0, nl;
	const char *n, *f;
	size_t fl;
	size_t want = strlen(name);
	while (imap_next_field(h, hlen, &pos, &n, &nl, &f, &fl)) {
		if (nl != want || strncasecmp(n, name, want) != 0)
			continue;
		const char *v = (const char *)memchr(f, ':', fl) + 1;
		size_t vl = fl - (size_t)(v - f);
		size_t o = 0;
		bool lead = true;
		for (size_t i = 0; i < vl && o + 1 < outlen; i++) {
			char c = v[i];
			if (c == '\r' || c == '\n')
				continue;
			if (lead && (c == ' ' || c == '\t'))
				continue;
			lead = false;
			out[o++] = c == '\t' ? ' ' : c;
		}
		while (o > 0 && (out[o - 1] == ' '))
			o--;
		out[o] = '\0';
		return true;
	}
	out[0] = '\0';
	return false;
}

struct mime_part {
	const char *hdr;
	size_t hdr_len;         /* 0 for a part without headers */
	const char *body;
	size_t body_len;
	int parent;             /* index, -1 for the root */
	int first_child;        /* index or -1 */
	int next_sibling;       /* index or -1 */
	bool multipart;
	bool is_message;        /* message/rfc822 */
};

struct mime_tree {
	struct mime_part p[MIME_MAX_PARTS];
	int n;
};

static void content_type(const struct mime_part *mp, char *type, size_t tl, char *sub,
			 size_t sl, char *params, size_t pl, bool *present_r);

static const char *find_boundary(const char *p, size_t len, const char *b, size_t blen,
				 size_t from, bool *final_r, size_t *line_end_r)
{
	size_t i = from;
	while (i + 2 + blen <= len) {
		/* delimiter lines start at the body start or after an LF */
		if ((i == 0 || p[i - 1] == '\n') && p[i] == '-' && p[i + 1] == '-' &&
		    memcmp(p + i + 2, b, blen) == 0) {
			size_t e = i + 2 + blen;
			*final_r = e + 2 <= len && p[e] == '-' && p[e + 1] == '-';
			const char *lf = memchr(p + e, '\n', len - e);
			*line_end_r = lf ? (size_t)(lf - p) + 1 : len;
			return p + i;
		}
		const char *lf = memchr(p + i, '\n', len - i);
		if (!lf)
			break;
		i = (size_t)(lf - p) + 1;
	}
	return NULL;
}

static int mime_add(struct mime_tree *t, const char *p, size_t len, int parent,
		    bool has_headers, int depth);

static void mime_children(struct mime_tree *t, int idx, const char *boundary, int depth)
{
	struct mime_part *mp = &t->p[idx];
	size_t blen = strlen(boundary);
	const char *body = mp->body;
	size_t len = mp->body_len;
	bool fin;
	size_t le;
	const char *d = find_boundary(body, len, boundary, blen, 0, &fin, &le);
	int last = -1;
	while (d && !fin) {
		size_t start = le;
		size_t le2;
		bool fin2;
		const char *d2 = find_boundary(body, len, boundary, blen, start, &fin2, &le2);
		size_t end = d2 ? (size_t)(d2 - body) : len;
		/* the CRLF before the next delimiter belongs to the delimiter */
		if (d2 && end > start && body[end - 1] == '\n') {
			end--;
			if (end > start && body[end - 1] == '\r')
				end--;
		}
		int c = mime_add(t, body + start, end - start, idx, true, depth + 1);
		if (c < 0)
			return;
		if (last < 0)
			t->p[idx].first_child = c;
		else
			t->p[last].next_sibling = c;
		last = c;
		if (!d2)
			break;
		d = d2;
		fin = fin2;
		le = le2;
	}
}

static int mime_add(struct mime_tree *t, const char *p, size_t len, int parent,
		    bool has_headers, int depth)
{
	if (t->n >= MIME_MAX_PARTS)
		return -1;
	int idx = t->n++;
	struct mime_part *mp = &t->p[idx];
	memset(mp, 0, sizeof(*mp));
	mp->parent = parent;
	mp->first_child = mp->next_sibling = -1;
	size_t hl = 0;
	if (has_headers)
		imap_split_message(p, len, &hl);
	mp->hdr = p;
	mp->hdr_len = hl;
	mp->body = p + hl;
	mp->body_len = len - hl;
	char type[64], sub[64], params[1024];
	bool present;
	content_type(mp, type, sizeof(type), sub, sizeof(sub), params, sizeof(params), &present);
	if (depth < MIME_MAX_DEPTH && strcasecmp(type, "multipart") == 0) {
		/* boundary parameter */
		char hv[HDR_VALUE_MAX];
		imap_header_get(mp->hdr, mp->hdr_len, "Content-Type", hv, sizeof(hv));
		const char *b = strcasestr(hv, "boundary=");
		if (b) {
			b += 9;
			char bnd[256];
			size_t o = 0;
			if (*b == '"') {
				b++;
				while (*b && *b != '"' && o + 1 < sizeof(bnd))
					bnd[o++] = *b++;
			} else {
				while (*b && *b != ';' && *b != ' ' && o + 1 < sizeof(bnd))
					bnd[o++] = *b++;
			}
			bnd[o] = '\0';
			if (o > 0) {
				t->p[idx].multipart = true;
				mime_children(t, idx, bnd, depth);
			}
		}
	}
	return idx;
}

static void mime_parse(struct mime_tree *t, const char *p, size_t len)
{
	t->n = 0;
	mime_add(t, p, len, -1, true, 0);
}

/* Content-Type into type/subtype (lower case) and the parameters as an IMAP list
 * body ("charset" "utf-8" ...). */
static void content_type(const struct mime_part *mp, char *type, size_t tl, char *sub,
			 size_t sl, char *params, size_t pl, bool *present_r)
{
	char hv[HDR_VALUE_MAX];
	/* RFC 2045 default; multipart/digest children (message/rfc822) are not
	 * special-cased */
	*present_r = imap_header_get(mp->hdr, mp->hdr_len, "Content-Type", hv, sizeof(hv));
	snprintf(type, tl, "%s", "text");
	snprintf(sub, sl, "%s", "plain");
	struct buf pb;
	buf_init(&pb, 0);
	if (!*present_r) {
		buf_puts(&pb, "\"charset\" \"us-ascii\"");
	} else {
		const char *v = hv;
		size_t o = 0;
		char t1[64] = "", s1[64] = "";
		while (*v && *v != '/' && *v != ';' && o + 1 < sizeof(t1))
			t1[o++] = (char)tolower((unsigned char)*v++);
		t1[o] = '\0';
		o = 0;
		if (*v == '/') {
			v++;
			while (*v && *v != ';' && *v != ' ' && o + 1 < sizeof(s1))
				s1[o++] = (char)tolower((unsigned char)*v++);
		}
		s1[o] = '\0';
		while (o > 0 && s1[o - 1] == ' ')
			s1[--o] = '\0';
		if (t1[0] && s1[0]) {
			snprintf(type, tl, "%s", t1);
			snprintf(sub, sl, "%s", s1);
		}
		/* parameters: ; key=value or ; key="value" */
		bool first = true;
		while ((v = strchr(v, ';')) != NULL) {
			v++;
			while (*v == ' ' || *v == '\t')
				v++;
			char key[128], val[1024];
			size_t k = 0, w = 0;
			while (*v && *v != '=' && *v != ';' && k + 1 < sizeof(key))
				key[k++] = (char)tolower((unsigned char)*v++);
			while (k > 0 && key[k - 1] == ' ')
				k--;
			key[k] = '\0';
			if (*v != '=' || k == 0)
				continue;
			v++;
			while (*v == ' ')
				v++;
			if (*v == '"') {
				v++;
				while (*v && *v != '"' && w + 1 < sizeof(val)) {
					if (*v == '\\' && v[1])
						v++;
					val[w++] = *v++;
				}
				if (*v == '"')
					v++;
			} else {
				while (*v && *v != ';' && *v != ' ' && w + 1 < sizeof(val))
					val[w++] = *v++;
			}
			val[w] = '\0';
			/* whole pairs only, with room left for the default charset: a cut
			 * list would be a syntax error for the client */
			struct buf pair;
			buf_init(&pair, 0);
			imap_put_string(&pair, key);
			buf_putc(&pair, ' ');
			imap_put_string(&pair, val);
			if (pb.len + 1 + pair.len + 24 >= pl) {
				buf_free(&pair);
				break;
			}
			if (!first)
				buf_putc(&pb, ' ');
			first = false;
			buf_append(&pb, pair.data, pair.len);
			buf_free(&pair);
		}
	}
	buf_putc(&pb, '\0');
	/* Dovecot shows the RFC 2045 default charset of a text part that names none */
	if (strcasecmp(type, "text") == 0 && !strstr(pb.data ? pb.data : "", "\"charset\" "))
		snprintf(params, pl, "\"charset\" \"us-ascii\"%s%s",
			 pb.data && pb.data[0] ? " " : "", pb.data ? pb.data : "");
	else
		snprintf(params, pl, "%s", pb.data ? pb.data : "");
	buf_free(&pb);
}

static size_t count_lines(const char *p, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (p[i] == '\n')
			n++;
	if (len > 0 && p[len - 1] != '\n')
		n++;
	return n;
}

static void put_hdr_nstring(struct buf *b, const struct mime_part *mp, const char *name)
{
	char v[HDR_VALUE_MAX];
	if (imap_header_get(mp->hdr, mp->hdr_len, name, v, sizeof(v)) && v[0])
		imap_put_string(b, v);
	else
		buf_puts(b, "NIL");
}

/* Content-Disposition as ("attachment" ("filename" "x")) or NIL. */
static void put_disposition(struct buf *b, const struct mime_part *mp)
{
	char v[HDR_VALUE_MAX];
	if (!imap_header_get(mp->hdr, mp->hdr_len, "Content-Disposition", v, sizeof(v)) || !v[0]) {
		buf_puts(b, "NIL");
		return;
	}
	char *semi = strchr(v, ';');
	char dtype[64];
	size_t dl = semi ? (size_t)(semi - v) : strlen(v);
	while (dl > 0 && v[dl - 1] == ' ')
		dl--;
	session_printable(dtype, sizeof(dtype), v, dl);
	for (char *q = dtype; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	buf_putc(b, '(');
	imap_put_string(b, dtype);
	buf_putc(b, ' ');
	if (!semi) {
		buf_puts(b, "NIL)");
		return;
	}
	/* reuse the Content-Type parameter syntax */
	struct mime_part fake = {0};
	char hdrbuf[HDR_VALUE_MAX + 32];
	int n = snprintf(hdrbuf, sizeof(hdrbuf), "Content-Type: x/y%s\r\n\r\n", semi);
	fake.hdr = hdrbuf;
	fake.hdr_len = n > 0 && (size_t)n < sizeof(hdrbuf) ? (size_t)n : strlen(hdrbuf);
	char t[8], sb[8], params[1024];
	bool present;
	content_type(&fake, t, sizeof(t), sb, sizeof(sb), params, sizeof(params), &present);
	if (params[0])
		buf_printf(b, "(%s))", params);
	else
		buf_puts(b, "NIL)");
}

static void put_envelope(struct buf *b, const char *h, size_t hl);

static void put_bodystructure(struct buf *b, const struct mime_tree *t, int idx, bool ext,
			      int depth)
{
	const struct mime_part *mp = &t->p[idx];
	char type[64], sub[64], params[1024];
	bool present;
	content_type(mp, type, sizeof(type), sub, sizeof(sub), params, sizeof(params), &present);
	buf_putc(b, '(');
	if (mp->multipart && mp->first_child >= 0) {
		for (int c = mp->first_child; c >= 0; c = t->p[c].next_sibling)
			put_bodystructure(b, t, c, ext, depth);
		buf_putc(b, ' ');
		imap_put_string(b, sub);
		if (ext) {
			buf_putc(b, ' ');
			if (params[0])
				buf_printf(b, "(%s)", params);
			else
				buf_puts(b, "NIL");
			buf_putc(b, ' ');
			put_disposition(b, mp);
			buf_puts(b, " NIL NIL");
		}
		buf_putc(b, ')');
		return;
	}
	imap_put_string(b, type);
	buf_putc(b, ' ');
	imap_put_string(b, sub);
	buf_putc(b, ' ');
	if (params[0])
		buf_printf(b, "(%s)", params);
	else
		buf_puts(b, "NIL");
	buf_putc(b, ' ');
	put_hdr_nstring(b, mp, "Content-ID");
	buf_putc(b, ' ');
	put_hdr_nstring(b, mp, "Content-Description");
	buf_putc(b, ' ');
	char enc[128];
	if (!imap_header_get(mp->hdr, mp->hdr_len, "Content-Transfer-Encoding", enc, sizeof(enc)) ||
	    !enc[0])
		snprintf(enc, sizeof(enc), "7bit");
	for (char *q = enc; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	imap_put_string(b, enc);
	buf_printf(b, " %zu", mp->body_len);
	if (strcasecmp(type, "text") == 0) {
		buf_printf(b, " %zu", count_lines(mp->body, mp->body_len));
	} else if (strcasecmp(type, "message") == 0 && strcasecmp(sub, "rfc822") == 0) {
		/* RFC 3501 body-type-msg: the envelope and structure of the enclosed
		 * message, then its lines (nesting bounded) */
		size_t hl;
		imap_split_message(mp->body, mp->body_len, &hl);
		buf_putc(b, ' ');
		put_envelope(b, mp->body, hl);
		buf_putc(b, ' ');
		struct mime_tree *nt = depth < 3 ? malloc(sizeof(*nt)) : NULL;
		if (nt) {
			mime_parse(nt, mp->body, mp->body_len);
			put_bodystructure(b, nt, 0, ext, depth + 1);
			free(nt);
		} else {
			buf_puts(b, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0)");
		}
		buf_printf(b, " %zu", count_lines(mp->body, mp->body_len));
	}
	if (ext) {
		buf_puts(b, " NIL ");
		put_disposition(b, mp);
		buf_puts(b, " NIL NIL");
	}
	buf_putc(b, ')');
}

/* One address list for ENVELOPE: ((name NIL mailbox host) ...) or NIL. */
static void put_addresses(struct buf *b, const char *v)
{
	if (!v || !*v) {
		buf_puts(b, "NIL");
		return;
	}
	size_t n = 0;
	const char *p = v;
	bool any = false;
	while (*p && n < 50) {
		/* one address up to a comma outside quotes and <> */
		const char *st = p;
		bool q = false;
		int angle = 0;
		while (*p) {
			if (*p == '"' && (p == st || p[-1] != '\\'))
				q = !q;
			else if (!q && *p == '<')
				angle++;
			else if (!q && *p == '>' && angle > 0)
				angle--;
			else if (!q && angle == 0 && *p == ',')
				break;
			p++;
		}
		size_t al = (size_t)(p - st);
		if (*p == ',')
			p++;
		char a[1024];
		session_printable(a, sizeof(a), st, al);
		char *lt = strchr(a, '<');
		char name[1024] = "", addr[1024] = "";
		bool have_name = false;
		if (lt) {
			char *gt = strchr(lt, '>');
			if (gt)
				*gt = '\0';
			snprintf(addr, sizeof(addr), "%s", lt + 1);
			*lt = '\0';
			char *ns = a;
			while (*ns == ' ')
				ns++;
			size_t nl = strlen(ns);
			while (nl > 0 && ns[nl - 1] == ' ')
				ns[--nl] = '\0';
			if (nl >= 2 && ns[0] == '"' && ns[nl - 1] == '"') {
				ns[nl - 1] = '\0';
				ns++;
			}
			if (*ns) {
				snprintf(name, sizeof(name), "%s", ns);
				have_name = true;
			}
		} else {
			char *as = a;
			while (*as == ' ')
				as++;
			size_t l = strlen(as);
			while (l > 0 && as[l - 1] == ' ')
				as[--l] = '\0';
			snprintf(addr, sizeof(addr), "%s", as);
		}
		if (!addr[0])
			continue;
		if (!any)
			buf_putc(b, '(');
		any = true;
		n++;
		buf_putc(b, '(');
		if (have_name)
			imap_put_string(b, name);
		else
			buf_puts(b, "NIL");
		buf_puts(b, " NIL ");
		char *at = strrchr(addr, '@');
		if (at) {
			*at = '\0';
			imap_put_string(b, addr);
			buf_putc(b, ' ');
			imap_put_string(b, at + 1);
		} else {
			imap_put_string(b, addr);
			buf_puts(b, " NIL");
		}
		buf_putc(b, ')');
	}
	if (any)
		buf_putc(b, ')');
	else
		buf_puts(b, "NIL");
}

static void put_envelope(struct buf *b, const char *h, size_t hl)
{
	char v[HDR_VALUE_MAX];
	char from[HDR_VALUE_MAX];
	buf_putc(b, '(');
	if (imap_header_get(h, hl, "Date", v, sizeof(v)))
		imap_put_string(b, v);
	else
		buf_puts(b, "NIL");
	buf_putc(b, ' ');
	if (imap_header_get(h, hl, "Subject", v, sizeof(v)))
		imap_put_string(b, v);
	else
		buf_puts(b, "NIL");
	bool have_from = imap_header_get(h, hl, "From", from, sizeof(from));
	buf_putc(b, ' ');
	put_addresses(b, have_from ? from : NULL);
	/* Sender and Reply-To default to From (RFC 3501 7.4.2) */
	buf_putc(b, ' ');
	put_addresses(b, imap_header_get(h, hl, "Sender", v, sizeof(v)) && v[0] ? v
			 : have_from ? from : NULL);
	buf_putc(b, ' ');
	put_addresses(b, imap_header_get(h, hl, "Reply-To", v, sizeof(v)) && v[0] ? v
			 : have_from ? from : NULL);
	static const char *const lists[] = {"To", "Cc", "Bcc"};
	for (size_t i = 0; i < 3; i++) {
		buf_putc(b, ' ');
		put_addresses(b, imap_header_get(h, hl, lists[i], v, sizeof(v)) ? v : NULL);
	}
	static const char *const ids[] = {"In-Reply-To", "Message-ID"};
	for (size_t i = 0; i < 2; i++) {
		buf_putc(b, ' ');
		if (imap_header_get(h, hl, ids[i], v, sizeof(v)) && v[0])
			imap_put_string(b, v);
		else
			buf_puts(b, "NIL");
	}
	buf_putc(b, ')');
}

/* ---------------------------------------------------------- post-login: FETCH --- */

/* The bytes a BODY[section] names, or false when the part does not exist. */
static bool section_bytes(const struct mbox_msg *m, const struct imap_fetch_att *att,
			  struct buf *out)
{
	struct mime_tree *t = malloc(sizeof(*t));
	if (!t)
		return false;
	mime_parse(t, m->data, m->size);
	int idx = 0;
	/* walk the part path; a single-part message's part 1 is its body */
	for (size_t i = 0; i < att->n_path; i++) {
		struct mime_part *mp = &t->p[idx];
		if (!mp->multipart) {
			if (att->path[i] != 1 || i + 1 < att->n_path) {
				free(t);
				return false;
			}
			/* part 1 of a non-multipart: the body itself, headers of the parent */
			break;
		}
		int c = mp->first_child;
		for (unsigned k = 1; c >= 0 && k < att->path[i]; k++)
			c = t->p[c].next_sibling;
		if (c < 0) {
			free(t);
			return false;
		}
		idx = c;
	}
	const struct mime_part *mp = &t->p[idx];
	bool top = att->n_path == 0;
	bool leaf_single = !top && idx == 0; /* BODY[1] of a single-part message */
	switch (att->text) {
	case IMAP_SECTION_ALL:
		if (top)
			buf_append(out, m->data, m->size);
		else
			buf_append(out, mp->body, mp->body_len);
		break;
	case IMAP_SECTION_TEXT:
		buf_append(out, mp->body, mp->body_len);
		break;
	case IMAP_SECTION_MIME:
	case IMAP_SECTION_HEADER:
		if (leaf_single && att->text == IMAP_SECTION_HEADER) {
			free(t);
			return false;
		}
		buf_append(out, mp->hdr, mp->hdr_len);
		break;
	case IMAP_SECTION_HEADER_FIELDS:
	case IMAP_SECTION_HEADER_FIELDS_NOT: {
		size_t pos = 0, nl, fl;
		const char *n, *f;
		bool want_not = att->text == IMAP_SECTION_HEADER_FIELDS_NOT;
		while (imap_next_field(mp->hdr, mp->hdr_len, &pos, &n, &nl, &f, &fl)) {
			bool listed = false;
			for (size_t k = 0; k < att->n_fields; k++)
				if (att->fields[k].len == nl &&
				    strncasecmp(att->fields[k].p, n, nl) == 0)
					listed = true;
			if (listed != want_not)
				buf_append(out, f, fl);
		}
		buf_puts(out, "\r\n");
		break;
	}
	}
	free(t);
	return true;
}

static void put_literal(struct buf *b, const char *p, size_t len)
{
	buf_printf(b, "{%zu}\r\n", len);
	buf_append(b, p, len);
}

static void fetch_one(struct imap_session *s, uint32_t seq, struct imap_fetch_att *atts,
		      size_t n_atts, bool uid_cmd)
{
	struct mbox_msg *m = &s->sel->msgs[seq - 1];
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "* %u FETCH (", seq);
	bool first = true;
	bool flags_sent = false;
	bool set_seen = false;
#define SEP()                               \
	do {                                \
		if (!first)                 \
			buf_putc(&b, ' ');  \
		first = false;              \
	} while (0)
	if (uid_cmd) {
		SEP();
		buf_printf(&b, "UID %u", m->uid);
	}
	for (size_t i = 0; i < n_atts; i++) {
		struct imap_fetch_att *a = &atts[i];
		size_t hl;
		switch (a->kind) {
		case IMAP_FETCH_UID:
			if (uid_cmd)
				break;
			SEP();
			buf_printf(&b, "UID %u", m->uid);
			break;
		case IMAP_FETCH_FLAGS:
			SEP();
			buf_puts(&b, "FLAGS ");
			flags_sent = true;
			imap_put_flags(&b, m->flags);
			break;
		case IMAP_FETCH_RFC822_SIZE:
			SEP();
			buf_printf(&b, "RFC822.SIZE %zu", m->size);
			break;
		case IMAP_FETCH_INTERNALDATE: {
			char d[64];
			imap_fmt_internaldate(m->internaldate, d, sizeof(d));
			SEP();
			buf_printf(&b, "INTERNALDATE \"%s\"", d);
			break;
		}
		case IMAP_FETCH_ENVELOPE:
			imap_split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "ENVELOPE ");
			put_envelope(&b, m->data, hl);
			break;
		case IMAP_FETCH_BODYSTRUCTURE:
		case IMAP_FETCH_BODY_NOEXT: {
			struct mime_tree *t = malloc(sizeof(*t));
			if (!t)
				break;
			mime_parse(t, m->data, m->size);
			SEP();
			buf_puts(&b, a->kind == IMAP_FETCH_BODY_NOEXT ? "BODY " : "BODYSTRUCTURE ");
			put_bodystructure(&b, t, 0, a->kind == IMAP_FETCH_BODYSTRUCTURE, 0);
			free(t);
			break;
		}
		case IMAP_FETCH_RFC822:
			SEP();
			buf_puts(&b, "RFC822 ");
			put_literal(&b, m->data, m->size);
			set_seen = true;
			break;
		case IMAP_FETCH_RFC822_HEADER:
			imap_split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "RFC822.HEADER ");
			put_literal(&b, m->data, hl);
			break;
		case IMAP_FETCH_RFC822_TEXT:
			imap_split_message(m->data, m->size, &hl);
			SEP();
			buf_puts(&b, "RFC822.TEXT ");
			put_literal(&b, m->data + hl, m->size - hl);
			set_seen = true;
			break;
		case IMAP_FETCH_BODY: {
			struct buf sec;
			buf_init(&sec, 0);
			bool ok = section_bytes(m, a, &sec);
			SEP();
			buf_printf(&b, "BODY[%s]", a->section);
			if (a->partial)
				buf_printf(&b, "<%u>", a->partial_start);
			buf_putc(&b, ' ');
			if (!ok) {
				buf_puts(&b, "NIL");
			} else {
				size_t st = 0, ln = sec.len;
				if (a->partial) {
					st = a->partial_start < sec.len ? a->partial_start : sec.len;
					ln = sec.len - st < a->partial_len ? sec.len - st
									   : a->partial_len;
				}
				put_literal(&b, sec.data ? sec.data + st : "", ln);
			}
			buf_free(&sec);
			if (!a->peek)
				set_seen = true;
			break;
		}
		}
	}
	if (set_seen && !s->sel_ro && !(m->flags & MBOX_SEEN)) {
		m->flags |= MBOX_SEEN;
		if (!flags_sent) {
			SEP();
			buf_puts(&b, "FLAGS ");
			imap_put_flags(&b, m->flags);
		}
	}
#undef SEP
	buf_puts(&b, ")\r\n");
	imap_out_raw(s, b.data, b.len);
	buf_free(&b);
}

/* Messages named by a set: sequence numbers or UIDs.  Fills sel[] (1-based seqs in
 * order).  Returns the count, or -1 for "Invalid messageset". */
int imap_do_fetch(struct imap_session *s, const char *name, const struct imap_arg *args,
		  bool uid)
{
	const char *set;
	size_t setl;
	if (imap_set_arg(args, &set, &setl) < 0 || !args->next) {
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	const struct imap_arg *items = args->next;
	if (items->next && !(items->next->type == IMAP_ARG_LIST)) {
		imap_cmd_error(s, name, "Invalid arguments.");
		return 0;
	}
	struct imap_fetch_att *atts = calloc(FETCH_MAX_ATTS, sizeof(*atts));
	if (!atts)
		return 0;
	size_t n = 0;
	const struct imap_arg *it = items->type == IMAP_ARG_LIST ? items->child : items;
	bool list = items->type == IMAP_ARG_LIST;
	const char *macro = NULL;
	if (!list && items->type == IMAP_ARG_ATOM) {
		if (imap_arg_is_atom(items, "ALL"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE";
		else if (imap_arg_is_atom(items, "FAST"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE";
		else if (imap_arg_is_atom(items, "FULL"))
			macro = "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY";
	}
	if (macro) {
		const char *p = macro;
		while (*p) {
			const char *e = strchr(p, ' ');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			imap_fetch_att_parse(p, l, &atts[n++]);
			p += l + (e ? 1 : 0);
		}
	} else {
		for (; it; it = it->next) {
			if (it->type != IMAP_ARG_ATOM || n >= FETCH_MAX_ATTS ||
			    imap_fetch_att_parse(it->s, it->len, &atts[n]) < 0) {
				char msg[128];
				char shown[64];
				session_printable(shown, sizeof(shown), it->s ? it->s : "(",
					  it->s ? it->len : 1);
				snprintf(msg, sizeof(msg), "Unknown parameter %s", shown);
				imap_cmd_error(s, name, msg);
				free(atts);
				return 0;
			}
			n++;
			if (!list)
				break;
		}
		if (n == 0) {
			imap_cmd_error(s, name, "Invalid arguments.");
			free(atts);
			return 0;
		}
	}
	uint32_t *seqs;
	long k = imap_resolve_set(s, set, setl, uid, &seqs);
	if (k < 0) {
		imap_cmd_error(s, name, k == -2 && uid ? "Invalid uidset" : "Invalid messageset");
		free(atts);
		return 0;
	}
	/* Bound the amplification (64 body sections of every message): the host has to
	 * hold what the client does not read. */
	uint64_t produced = 0;
	long i;
	for (i = 0; i < k && produced <= FETCH_OUT_MAX; i++) {
		produced += s->sel->msgs[seqs[i] - 1].size * (uint64_t)(n > 1 ? n : 1);
		fetch_one(s, seqs[i], atts, n, uid);
	}
	free(seqs);
	free(atts);
	if (i < k) {
		imap_tagged(s, "NO", "[LIMIT] Too much data requested, fetch fewer messages.");
		return 0;
	}
	imap_tagged(s, "OK", "Fetch completed.");
	s->bad_row = 0;
	return 0;
}

int imap_cmd_fetch(struct imap_session *s, struct imap_command *c)
{
	return imap_do_fetch(s, "FETCH", c->args, false);
}
