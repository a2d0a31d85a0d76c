/*
 * html: links and text of an HTML part, in one pass of our own tokenizer (htmltok.c).
 *
 * What we take: href/src/action/formaction/background/poster/data and data-* URL
 * attributes, srcset candidates, meta refresh targets, CSS url() in style attributes
 * and <style> blocks, the visible text (for search, campaigns and URLs written as
 * text), and the anchor text, to flag links whose text shows another domain.  <base
 * href> resolves relative URLs.  Inline elements (b, i, span, font ...) do not separate
 * words, so "ht<b></b>tp://x" is read as the reader sees it.
 *
 * Why a tokenizer and not libxml2's HTML parser (used until issue 12): libxml2 builds
 * HTML the way a 2000s parser did and stops reporting content after </html> (or a stray
 * </HTML>, or an end tag before any element), drops a misplaced <body background=...>
 * with its attributes, and took 35% of the analyzer's instructions (callgrind) for a
 * tree discipline we never use.  A tokenizer has no end of document and no misplaced
 * elements: it reports every tag and all text, as a mail client's renderer reaches
 * them.  The part is tokenized as it is decoded, in pieces of at most HTML_PENDING
 * bytes, so memory stays bounded.
 */
#include "analyze/analyze_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyze/htmltok.h"
#include "analyze/url.h"

#define ANCHOR_TEXT_MAX 1024

struct an_html {
	struct an_ctx *c;
	int part;
	struct buf *text;       /* the message's text, capped */
	size_t text_start;
	struct htok tok;
	int in_style, in_script;
	int anchor;             /* link index of the open <a href>, or -1 */
	struct buf anchor_text;
	size_t anchor_tstart;   /* where the open anchor's text starts in *text */
	bool text_capped;       /* text reached its cap: offsets into it are unreliable */
	struct buf css;         /* <style> content */
	struct buf pending;     /* decoded HTML not yet given to the parser */
	bool data_uri_seen;
	char *base;             /* <base href>, absolute http(s), or NULL */
	unsigned wextra;        /* where bits added to every link (an_html_set_where) */
};

/* Decoded HTML waits in a buffer of at most HTML_PENDING bytes before it is tokenized
 * (nearly every part fits: one pass at the end); what a piece leaves unfinished (a tag
 * cut by the piece's end) stays for the next. */
#define HTML_PENDING (1u << 20)

static bool is_web_value(const char *v)
{
	if (strncasecmp(v, "http:", 5) == 0 || strncasecmp(v, "https:", 6) == 0 ||
	    strncasecmp(v, "ftp:", 4) == 0 || strncasecmp(v, "hxxp", 4) == 0 ||
	    strncmp(v, "//", 2) == 0 || strncmp(v, "\\\\", 2) == 0 ||
	    strncasecmp(v, "www.", 4) == 0)
		return true;
	return false;
}

/* Remove "." and ".." segments of an absolute URL's path (RFC 3986 5.2.4), in place;
 * the query and fragment are left alone. */
static void remove_dots(char *u)
{
	char *p = strstr(u, "://");
	p = p ? strchr(p + 3, '/') : NULL;
	if (!p)
		return;
	char *end = p + strcspn(p, "?#");
	char tail[URL_MAX_LEN + 8];
	snprintf(tail, sizeof(tail), "%s", end);
	char *o = p; /* output cursor, always after a '/' boundary */
	char *i = p;
	*end = 0;
	while (*i) {
		if (strncmp(i, "/./", 3) == 0 || strcmp(i, "/.") == 0) {
			i += 2;
			if (!*i) {
				*o++ = '/';
			}
			continue;
		}
		if (strncmp(i, "/../", 4) == 0 || strcmp(i, "/..") == 0) {
			i += 3;
			while (o > p && *--o != '/')
				;
			if (!*i)
				*o++ = '/';
			continue;
		}
		do
			*o++ = *i++;
		while (*i && *i != '/');
	}
	if (o == p)
		*o++ = '/';
	*o = 0;
	strcat(o, tail);
}

/* A relative reference resolved against <base href> (RFC 3986 5.2), into out.
 * Returns false when v is not relative (has a scheme) or is a fragment only. */
static bool resolve(const char *base, const char *v, char *out, size_t outsz)
{
	size_t sl = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
	if (v[sl] == ':' || v[0] == '#' || v[0] == 0)
		return false; /* mailto:, javascript:, cid:, #top */
	const char *auth = strstr(base, "://");
	if (!auth)
		return false;
	const char *path = strchr(auth + 3, '/');
	size_t origin = path ? (size_t)(path - base) : strlen(base);
	int n;
	if (v[0] == '/') {
		n = snprintf(out, outsz, "%.*s%s", (int)origin, base, v);
	} else if (v[0] == '?') {
		size_t q = path ? (size_t)(path - base) + strcspn(path, "?#") : origin;
		n = snprintf(out, outsz, "%.*s%s%s", (int)q, base, path ? "" : "/", v);
	} else {
		size_t q = path ? (size_t)(path - base) + strcspn(path, "?#") : origin;
		size_t dir = origin;
		for (size_t k = origin; k < q; k++)
			if (base[k] == '/')
				dir = k + 1;
		n = snprintf(out, outsz, "%.*s%s%s", (int)dir, base, dir == origin ? "/" : "", v);
	}
	if (n < 0 || (size_t)n >= outsz)
		return false;
	remove_dots(out);
	return true;
}

/* Add one attribute value as a link when it is absolute (or relative to <base>). */
static int add_value(struct an_html *h, const char *v, size_t len, unsigned where)
{
	where |= h->wextra;
	while (len > 0 && (unsigned char)*v <= ' ') {
		v++;
		len--;
	}
	while (len > 0 && (unsigned char)v[len - 1] <= ' ')
		len--;
	if (len == 0)
		return -1;
	if (len > 5 && strncasecmp(v, "data:", 5) == 0) {
		if (!h->data_uri_seen)
			an_finding(h->c->a, "data_uri", "data: URI in HTML (part %d)", h->part);
		h->data_uri_seen = true;
		return -1;
	}
	char tmp[URL_MAX_LEN + 8];
	if (len > URL_MAX_LEN)
		return -1;
	memcpy(tmp, v, len);
	tmp[len] = 0;
	if (!is_web_value(tmp)) {
		char abs[URL_MAX_LEN + 8];
		if (h->base && resolve(h->base, tmp, abs, sizeof(abs)))
			return an_add_link(h->c, v, len, abs, strlen(abs), where, 0, h->part);
		return -1;
	}
	if (strncmp(tmp, "//", 2) == 0 || strncmp(tmp, "\\\\", 2) == 0) {
		char t2[URL_MAX_LEN + 16];
		int n = snprintf(t2, sizeof(t2), "http:%s", tmp);
		return an_add_link(h->c, v, len, t2, (size_t)n, where, 0, h->part);
	}
	return an_add_link(h->c, v, len, tmp, len, where, 0, h->part);
}

/* CSS: every url(...) value. */
static void scan_css(struct an_html *h, const char *s, size_t len)
{
	for (size_t i = 0; i + 4 < len; i++) {
		if ((s[i] | 32) != 'u' || s[i + 3] != '(' || strncasecmp(s + i, "url(", 4) != 0)
			continue;
		size_t j = i + 4;
		while (j < len && (s[j] == ' ' || s[j] == '\'' || s[j] == '"'))
			j++;
		size_t st = j;
		while (j < len && s[j] != ')' && s[j] != '\'' && s[j] != '"' && j - st < URL_MAX_LEN)
			j++;
		add_value(h, s + st, j - st, AN_W_HTML_CSS);
		i = j;
	}
}

/* srcset: "url 1x, url2 2x" */
static void scan_srcset(struct an_html *h, const char *s)
{
	while (*s) {
		while (*s == ' ' || *s == ',' || *s == '\t' || *s == '\n')
			s++;
		const char *st = s;
		while (*s && *s != ' ' && *s != '\t' && *s != '\n')
			s++;
		size_t n = (size_t)(s - st);
		while (n > 0 && st[n - 1] == ',')
			n--;
		if (n)
			add_value(h, st, n, AN_W_HTML_SRCSET);
		while (*s && *s != ',')
			s++;
	}
}

static void text_add(struct an_html *h, const char *s, size_t len)
{
	struct buf *t = h->text;
	if (t->cap && t->len + len + 1 > t->cap) {
		len = t->cap > t->len + 1 ? t->cap - t->len - 1 : 0;
		h->text_capped = true;
	}
	if (len)
		buf_append(t, s, len);
}

/* Element boundaries separate words, once. */
static void space(struct an_html *h)
{
	if (h->text->len > h->text_start && h->text->data[h->text->len - 1] != ' ')
		text_add(h, " ", 1);
}

/* The attributes we read, found in one pass over the element's attributes. */
struct attrs {
	const char *href, *src, *background, *poster, *data, *action, *formaction, *srcset,
		*style, *http_equiv, *content;
	const char *data_attr[4]; /* data-* values holding an absolute URL
				   * (data-saferedirecturl, data-href, data-src ...) */
	int n_data;
};

static void collect(const char **atts, struct attrs *v)
{
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; atts && atts[i]; i += 2) {
		const char *n = atts[i];
		const char *val = atts[i + 1] ? atts[i + 1] : "";
		const char **slot = NULL;
		switch (n[0] | 32) {
		case 'h':
			if (!strcasecmp(n, "href"))
				slot = &v->href;
			else if (!strcasecmp(n, "http-equiv"))
				slot = &v->http_equiv;
			break;
		case 's':
			if (!strcasecmp(n, "src"))
				slot = &v->src;
			else if (!strcasecmp(n, "srcset"))
				slot = &v->srcset;
			else if (!strcasecmp(n, "style"))
				slot = &v->style;
			break;
		case 'b':
			if (!strcasecmp(n, "background"))
				slot = &v->background;
			break;
		case 'p':
			if (!strcasecmp(n, "poster"))
				slot = &v->poster;
			break;
		case 'd':
			if (!strcasecmp(n, "data"))
				slot = &v->data;
			else if (!strncasecmp(n, "data-", 5) && v->n_data < 4 &&
				 (!strncasecmp(val, "http://", 7) || !strncasecmp(val, "https://", 8)))
				v->data_attr[v->n_data++] = val;
			break;
		case 'a':
			if (!strcasecmp(n, "action"))
				slot = &v->action;
			break;
		case 'f':
			if (!strcasecmp(n, "formaction"))
				slot = &v->formaction;
			break;
		case 'c':
			if (!strcasecmp(n, "content"))
				slot = &v->content;
			break;
		default:
			break;
		}
		if (slot && !*slot) /* the first one wins, as in browsers */
			*slot = val;
	}
}

/* Elements that do not break a word where they start or end: "ht<b></b>tp://" shows
 * as "http://".  Not <a>: its text is a unit of its own. */
static bool is_inline(const char *n)
{
	/* libxml2 gives HTML element names in lower case; a switch on the first letter
	 * keeps this off the profile (it runs for every start and end tag) */
	static const char *const tags[] = {"b", "i", "u", "s", "em", "strong", "span", "font",
					   "small", "big", "sub", "sup", "strike", "tt", "abbr",
					   "cite", "code", "del", "ins", "kbd", "mark", "q", "samp",
					   "var", "wbr", "nobr", "dfn", "bdi", "bdo", "o:p"};
	switch (n[0]) {
	case 'a': case 'b': case 'c': case 'd': case 'e': case 'f': case 'i': case 'k':
	case 'm': case 'n': case 'o': case 'q': case 's': case 't': case 'u': case 'v':
	case 'w':
		break;
	default:
		return false;
	}
	if (n[1] == 0)
		return n[0] == 'b' || n[0] == 'i' || n[0] == 'u' || n[0] == 's' || n[0] == 'q';
	for (size_t i = 5; i < sizeof(tags) / sizeof(tags[0]); i++)
		if (tags[i][0] == n[0] && strcmp(n, tags[i]) == 0)
			return true;
	return false;
}

static void on_start(void *ud, const char *name, const char **atts)
{
	struct an_html *h = ud;
	an_template_tag(h->c, name);
	if (!is_inline(name))
		space(h);
	if (strcasecmp(name, "style") == 0)
		h->in_style++;
	else if (strcasecmp(name, "script") == 0)
		h->in_script++;
	if (!atts)
		return;
	struct attrs v;
	collect(atts, &v);
	if (v.href && !h->base && strcasecmp(name, "base") == 0 &&
	    (strncasecmp(v.href, "http://", 7) == 0 || strncasecmp(v.href, "https://", 8) == 0) &&
	    strlen(v.href) < URL_MAX_LEN / 2) {
		h->base = strdup(v.href);
		/* trimmed: the attribute may carry spaces and line breaks */
		size_t bl = h->base ? strlen(h->base) : 0;
		while (bl > 0 && (unsigned char)h->base[bl - 1] <= ' ')
			h->base[--bl] = 0;
	}
	bool is_a = (name[0] | 32) == 'a' && name[1] == 0;
	if (v.href && (is_a || strcasecmp(name, "area") == 0)) {
		int idx = add_value(h, v.href, strlen(v.href), AN_W_HTML_HREF);
		if (is_a) {
			h->anchor = idx;
			h->anchor_tstart = h->text->len;
			buf_reset(&h->anchor_text);
		}
	} else if (v.href) {
		add_value(h, v.href, strlen(v.href), AN_W_HTML_SRC);
	}
	if (v.src)
		add_value(h, v.src, strlen(v.src), AN_W_HTML_SRC);
	if (v.background)
		add_value(h, v.background, strlen(v.background), AN_W_HTML_SRC);
	if (v.poster)
		add_value(h, v.poster, strlen(v.poster), AN_W_HTML_SRC);
	if (v.data && strcasecmp(name, "object") == 0)
		add_value(h, v.data, strlen(v.data), AN_W_HTML_SRC);
	if (v.action)
		add_value(h, v.action, strlen(v.action), AN_W_HTML_ACTION);
	if (v.formaction)
		add_value(h, v.formaction, strlen(v.formaction), AN_W_HTML_ACTION);
	if (v.srcset)
		scan_srcset(h, v.srcset);
	for (int k = 0; k < v.n_data; k++)
		add_value(h, v.data_attr[k], strlen(v.data_attr[k]), AN_W_HTML_SRC);
	if (v.style)
		scan_css(h, v.style, strlen(v.style));
	if (v.http_equiv && v.content && strcasecmp(v.http_equiv, "refresh") == 0 &&
	    strcasecmp(name, "meta") == 0) {
		const char *u = strcasestr(v.content, "url=");
		if (u) {
			u += 4;
			while (*u == ' ' || *u == '\'' || *u == '"')
				u++;
			size_t n = strlen(u);
			while (n > 0 && (u[n - 1] == '\'' || u[n - 1] == '"' || u[n - 1] == ' '))
				n--;
			add_value(h, u, n, AN_W_HTML_META);
		}
	}
}

struct first_url {
	char *domain;
	char *host;
	const char *base; /* the scanned text, for the span's offset */
	size_t at, len;   /* where the first URL is in it */
};

static void first_url_cb(void *arg, const char *raw, size_t rlen, const char *clean, size_t clen,
			 unsigned flags)
{
	struct first_url *f = arg;
	struct url_norm n;
	if (f->domain)
		return;
	if (url_normalise(clean, clen, &n) == URL_OK && n.domain) {
		f->domain = n.domain;
		f->host = n.host;
		n.domain = n.host = NULL;
		f->at = (size_t)(raw - f->base);
		f->len = rlen;
	}
	url_norm_clear(&n);
}

/* Take the line breaks (and the blanks around them) out of text[from..]: the anchor
 * text of a wrapped URL, so that the visible-text scan sees it whole too. */
static void unwrap_text(struct buf *t, size_t from)
{
	size_t o = from;
	for (size_t i = from; i < t->len; i++) {
		if (t->data[i] == '\r' || t->data[i] == '\n') {
			while (o > from && (t->data[o - 1] == ' ' || t->data[o - 1] == '\t'))
				o--;
			while (i + 1 < t->len && (unsigned char)t->data[i + 1] <= ' ')
				i++;
			continue;
		}
		t->data[o++] = t->data[i];
	}
	t->len = o;
	t->data[o] = 0;
}

#define MAX_JOINS 16

static void anchor_close(struct an_html *h)
{
	if (h->anchor < 0 || h->anchor_text.len == 0) {
		h->anchor = -1;
		return;
	}
	struct an_link *l = &h->c->a->links[h->anchor];
	const char *t = h->anchor_text.data;
	size_t n = h->anchor_text.len;
	struct first_url f = {.base = t}, g = {0};
	an_scan_text(t, n, first_url_cb, &f);
	struct first_url *shown = &f;
	if (memchr(t, '\n', n) || memchr(t, '\r', n)) {
		/* Anchor text wrapped across lines ("www.example.o\nrg") is one URL to the
		 * reader: read it again with the line breaks (and the blanks around them)
		 * taken out; when the first URL found then spans a join, that reading is
		 * the one shown, for the comparison and for the visible text. */
		char joined[ANCHOR_TEXT_MAX + 1];
		size_t joins[MAX_JOINS], nj = 0, o = 0;
		for (size_t i = 0; i < n && o < ANCHOR_TEXT_MAX; i++) {
			if (t[i] == '\r' || t[i] == '\n') {
				while (o > 0 && (joined[o - 1] == ' ' || joined[o - 1] == '\t'))
					o--;
				while (i + 1 < n && (unsigned char)t[i + 1] <= ' ')
					i++;
				if (nj < MAX_JOINS)
					joins[nj++] = o;
				continue;
			}
			joined[o++] = t[i];
		}
		g.base = joined;
		an_scan_text(joined, o, first_url_cb, &g);
		bool spans = false;
		for (size_t k = 0; g.domain && k < nj; k++)
			spans |= joins[k] > g.at && joins[k] < g.at + g.len;
		if (spans) {
			shown = &g;
			if (h->anchor_tstart <= h->text->len && !h->text_capped)
				unwrap_text(h->text, h->anchor_tstart);
		}
	}
	if (shown->domain && l->domain && strcmp(shown->domain, l->domain) != 0) {
		l->flags |= URL_F_DISPLAY_MISMATCH;
		if (!l->display_host)
			l->display_host = an_strdup(shown->host);
	}
	free(f.domain);
	free(f.host);
	free(g.domain);
	free(g.host);
	h->anchor = -1;
	buf_reset(&h->anchor_text);
}

static void on_end(void *ud, const char *name)
{
	struct an_html *h = ud;
	if (strcasecmp(name, "style") == 0 && h->in_style > 0) {
		h->in_style--;
		scan_css(h, h->css.data ? h->css.data : "", h->css.len);
		buf_reset(&h->css);
	} else if (strcasecmp(name, "script") == 0 && h->in_script > 0) {
		h->in_script--;
	} else if (strcasecmp(name, "a") == 0) {
		anchor_close(h);
	}
	if (!is_inline(name))
		space(h);
}

static void on_chars(void *ud, const char *ch, size_t len)
{
	struct an_html *h = ud;
	if (len == 0)
		return;
	if (h->in_style) {
		if (buf_append(&h->css, ch, (size_t)len) < 0) {
			scan_css(h, h->css.data, h->css.len);
			buf_reset(&h->css);
		}
		return;
	}
	if (h->in_script)
		return;
	text_add(h, ch, len);
	if (h->anchor >= 0 && h->anchor_text.len < ANCHOR_TEXT_MAX)
		buf_append(&h->anchor_text, ch,
			   (size_t)len > ANCHOR_TEXT_MAX - h->anchor_text.len
				   ? ANCHOR_TEXT_MAX - h->anchor_text.len
				   : (size_t)len);
}

static const struct htok_cb tok_cb = {on_start, on_end, on_chars};

struct an_html *an_html_new(struct an_ctx *c, int part, struct buf *text)
{
	struct an_html *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->c = c;
	h->part = part;
	h->text = text;
	h->text_start = text->len;
	h->anchor = -1;
	buf_init(&h->anchor_text, ANCHOR_TEXT_MAX + 16);
	buf_init(&h->css, 1 << 20);
	buf_init(&h->pending, 0);
	htok_init(&h->tok);
	return h;
}

void an_html_set_where(struct an_html *h, unsigned where)
{
	if (h)
		h->wextra = where;
}

void an_html_feed(struct an_html *h, const char *data, size_t len)
{
	while (h && len > 0) {
		size_t room = HTML_PENDING - h->pending.len;
		size_t n = len < room ? len : room;
		if (buf_append(&h->pending, data, n) < 0)
			return; /* out of memory: the rest of the part is lost, never overrun */
		data += n;
		len -= n;
		if (h->pending.len >= HTML_PENDING) {
			size_t used = htok_run(&h->tok, h->pending.data, h->pending.len, false,
					       &tok_cb, h);
			if (used == 0) /* cannot happen (a tag is cut at HTOK_TAG_MAX): progress */
				used = h->pending.len;
			buf_consume(&h->pending, used);
		}
	}
}

void an_html_free(struct an_html **hp)
{
	struct an_html *h = *hp;
	if (!h)
		return;
	if (h->pending.len)
		htok_run(&h->tok, h->pending.data, h->pending.len, true, &tok_cb, h);
	buf_free(&h->pending);
	htok_free(&h->tok);
	free(h->base);
	anchor_close(h);
	if (h->css.len)
		scan_css(h, h->css.data, h->css.len);
	/* URLs written as visible text */
	if (h->text->len > h->text_start)
		an_scan_add(h->c, h->text->data + h->text_start, h->text->len - h->text_start,
			    AN_W_HTML_TEXT | h->wextra, h->part);
	buf_free(&h->anchor_text);
	buf_free(&h->css);
	free(h);
	*hp = NULL;
}
