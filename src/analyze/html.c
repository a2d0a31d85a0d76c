/*
 * html: links and text of an HTML part through libxml2's HTML parser, in push/SAX mode.
 *
 * Why libxml2 and SAX: it is a mature, fuzzed, recovering HTML parser (MIT) in Debian,
 * and SAX mode builds no tree, so memory stays bounded however big or broken the part
 * is; the part is fed in chunks as it is decoded.  Entities in attributes and text are
 * decoded by the parser.  What we take: href/src/action/formaction/background/poster/
 * data, srcset candidates, meta refresh targets, CSS url() in style attributes and
 * <style> blocks, the visible text (for search, campaigns and URLs written as text),
 * and the anchor text, to flag links whose text shows another domain.
 */
#include "analyze/analyze_private.h"

#include <ctype.h>
#include <libxml/HTMLparser.h>
#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "analyze/url.h"

#define ANCHOR_TEXT_MAX 1024

struct an_html {
	struct an_ctx *c;
	int part;
	struct buf *text;       /* the message's text, capped */
	size_t text_start;
	htmlParserCtxtPtr px;
	int in_style, in_script;
	int anchor;             /* link index of the open <a href>, or -1 */
	struct buf anchor_text;
	struct buf css;         /* <style> content */
	struct buf pending;     /* decoded HTML not yet given to the parser */
	bool data_uri_seen;
};

/* The decoded part is handed to libxml2 whole, with terminate set, when it fits in
 * HTML_PENDING (nearly every part): the push parser then parses straight through
 * instead of re-scanning its input for the end of each construct it cannot yet prove
 * complete.  Bigger parts go in HTML_PENDING pieces, so memory stays bounded. */
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

/* Add one attribute value as a link when it is absolute. */
static int add_value(struct an_html *h, const char *v, size_t len, unsigned where)
{
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
	if (!is_web_value(tmp))
		return -1;
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
	if (t->cap && t->len + len + 1 > t->cap)
		len = t->cap > t->len + 1 ? t->cap - t->len - 1 : 0;
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
};

static void collect(const xmlChar **atts, struct attrs *v)
{
	memset(v, 0, sizeof(*v));
	for (size_t i = 0; atts && atts[i]; i += 2) {
		const char *n = (const char *)atts[i];
		const char *val = atts[i + 1] ? (const char *)atts[i + 1] : "";
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

static void on_start(void *ud, const xmlChar *xname, const xmlChar **atts)
{
	struct an_html *h = ud;
	const char *name = (const char *)xname;
	space(h);
	if (strcasecmp(name, "style") == 0)
		h->in_style++;
	else if (strcasecmp(name, "script") == 0)
		h->in_script++;
	if (!atts)
		return;
	struct attrs v;
	collect(atts, &v);
	bool is_a = (name[0] | 32) == 'a' && name[1] == 0;
	if (v.href && (is_a || strcasecmp(name, "area") == 0)) {
		int idx = add_value(h, v.href, strlen(v.href), AN_W_HTML_HREF);
		if (is_a) {
			h->anchor = idx;
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
	}
	url_norm_clear(&n);
}

static void anchor_close(struct an_html *h)
{
	if (h->anchor < 0 || h->anchor_text.len == 0) {
		h->anchor = -1;
		return;
	}
	struct an_link *l = &h->c->a->links[h->anchor];
	struct first_url f = {0};
	an_scan_text(h->anchor_text.data, h->anchor_text.len, first_url_cb, &f);
	if (f.domain && l->domain && strcmp(f.domain, l->domain) != 0) {
		l->flags |= URL_F_DISPLAY_MISMATCH;
		if (!l->display_host)
			l->display_host = an_strdup(f.host);
	}
	free(f.domain);
	free(f.host);
	h->anchor = -1;
	buf_reset(&h->anchor_text);
}

static void on_end(void *ud, const xmlChar *xname)
{
	struct an_html *h = ud;
	const char *name = (const char *)xname;
	if (strcasecmp(name, "style") == 0 && h->in_style > 0) {
		h->in_style--;
		scan_css(h, h->css.data ? h->css.data : "", h->css.len);
		buf_reset(&h->css);
	} else if (strcasecmp(name, "script") == 0 && h->in_script > 0) {
		h->in_script--;
	} else if (strcasecmp(name, "a") == 0) {
		anchor_close(h);
	}
	space(h);
}

static void on_chars(void *ud, const xmlChar *ch, int len)
{
	struct an_html *h = ud;
	if (len <= 0)
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
	text_add(h, (const char *)ch, (size_t)len);
	if (h->anchor >= 0 && h->anchor_text.len < ANCHOR_TEXT_MAX)
		buf_append(&h->anchor_text, ch,
			   (size_t)len > ANCHOR_TEXT_MAX - h->anchor_text.len
				   ? ANCHOR_TEXT_MAX - h->anchor_text.len
				   : (size_t)len);
}

/* libxml2 reports errors through these; we ignore them (broken HTML is the norm). */
static void on_error(void *ud, const char *msg, ...)
{
}

struct an_html *an_html_new(struct an_ctx *c, int part, struct buf *text)
{
	static htmlSAXHandler sax;
	static bool sax_ready;
	if (!sax_ready) {
		memset(&sax, 0, sizeof(sax));
		sax.startElement = on_start;
		sax.endElement = on_end;
		sax.characters = on_chars;
		sax.cdataBlock = on_chars;
		sax.warning = on_error;
		sax.error = on_error;
		sax.fatalError = on_error;
		sax_ready = true;
	}
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
	h->px = htmlCreatePushParserCtxt(&sax, h, NULL, 0, NULL, XML_CHAR_ENCODING_UTF8);
	if (!h->px) {
		buf_free(&h->anchor_text);
		buf_free(&h->css);
		free(h);
		return NULL;
	}
	htmlCtxtUseOptions(h->px, HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING |
					  HTML_PARSE_NONET | HTML_PARSE_IGNORE_ENC | HTML_PARSE_COMPACT);
	return h;
}

void an_html_feed(struct an_html *h, const char *data, size_t len)
{
	while (h && len > 0) {
		size_t room = HTML_PENDING - h->pending.len;
		size_t n = len < room ? len : room;
		if (buf_append(&h->pending, data, n) < 0) /* out of memory: parse it now */
			n = 0;
		data += n;
		len -= n;
		if (h->pending.len >= HTML_PENDING || n == 0) {
			if (h->pending.len)
				htmlParseChunk(h->px, h->pending.data, (int)h->pending.len, 0);
			buf_reset(&h->pending);
			if (n == 0) {
				int k = len > HTML_PENDING ? (int)HTML_PENDING : (int)len;
				htmlParseChunk(h->px, data, k, 0);
				data += k;
				len -= (size_t)k;
			}
		}
	}
}

void an_html_free(struct an_html **hp)
{
	struct an_html *h = *hp;
	if (!h)
		return;
	htmlParseChunk(h->px, h->pending.data, (int)h->pending.len, 1);
	buf_free(&h->pending);
	anchor_close(h);
	if (h->css.len)
		scan_css(h, h->css.data, h->css.len);
	/* URLs written as visible text */
	if (h->text->len > h->text_start)
		an_scan_add(h->c, h->text->data + h->text_start, h->text->len - h->text_start,
			    AN_W_HTML_TEXT, h->part);
	htmlFreeParserCtxt(h->px);
	buf_free(&h->anchor_text);
	buf_free(&h->css);
	free(h);
	*hp = NULL;
}
