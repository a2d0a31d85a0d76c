/*
 * analyze: one message through GMime (structure, headers, charsets) into a struct
 * analysis (see analyze.h).
 *
 * Bounded memory: GMime parses from a stream over the caller's bytes without copying
 * part bodies (it keeps substreams), and every leaf part is decoded through a filter
 * stream in 64 KiB chunks: hashed and sniffed on the fly, and only text kept (capped).
 */
#include "analyze/analyze_private.h"

#include <ctype.h>
#include <gmime/gmime.h>
#include <magic.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "analyze/url.h"

#define CHUNK (64 * 1024)
#define MAGIC_BYTES (64 * 1024) /* kept for zip member names */
/* What libmagic sniffs.  It costs ~7% of the corpus time, but 16 KiB is not enough:
 * ISO 9660 images (magic at 32 KiB) and OLE documents (Word, PowerPoint, Outlook,
 * encrypted Office: the directory sectors) then come out as octet-stream or
 * x-ole-storage (measured over the corpus's 195 attachments). */
#define MAGIC_SNIFF MAGIC_BYTES
#define ATT_KEEP (16u << 20) /* bytes of a container or PDF attachment inspected */

const char *const an_where_names[] = {"text", "html_href", "html_src", "html_action",
				      "html_meta", "html_css", "html_srcset", "html_text",
				      "redirect", "header", "attachment", "subject"};

size_t an_where_count(void)
{
	return sizeof(an_where_names) / sizeof(an_where_names[0]);
}

void analyze_limits_default(struct analyze_limits *l)
{
	l->max_depth = 20;
	l->max_parts = 2000;
	l->max_decoded = 64u << 20;
	l->max_text = 4u << 20;
	l->max_links = 5000;
	l->max_recipients = 10000;
}

static magic_t g_magic;

void analyze_global_init(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	g_mime_init();
	url_psl_init(NULL);
	g_magic = magic_open(MAGIC_MIME_TYPE | MAGIC_NO_CHECK_COMPRESS | MAGIC_NO_CHECK_ELF |
			     MAGIC_ERROR);
	if (g_magic && magic_load(g_magic, NULL) != 0) {
		magic_close(g_magic);
		g_magic = NULL;
	}
}

char *an_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *an_strndup(const char *s, size_t n)
{
	return s ? strndup(s, n) : NULL;
}

void *an_grow_(void **arr, size_t *n, size_t elsize)
{
	size_t k = *n;
	if (k == 0 || (k >= 4 && (k & (k - 1)) == 0)) {
		size_t cap = k == 0 ? 4 : k * 2;
		void *na = realloc(*arr, cap * elsize);
		if (!na)
			return NULL;
		*arr = na;
	}
	char *el = (char *)*arr + k * elsize;
	memset(el, 0, elsize);
	*n = k + 1;
	return el;
}

static uint64_t fnv(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

size_t *an_map_get(struct an_map *m, const char *key, bool *added_r)
{
	*added_r = false;
	if ((m->n + 1) * 2 > m->size) {
		size_t ns = m->size ? m->size * 2 : 64;
		const char **nk = calloc(ns, sizeof(*nk));
		size_t *nv = calloc(ns, sizeof(*nv));
		if (!nk || !nv) {
			free(nk);
			free(nv);
			return NULL;
		}
		for (size_t i = 0; i < m->size; i++) {
			if (!m->keys[i])
				continue;
			size_t j = fnv(m->keys[i]) & (ns - 1);
			while (nk[j])
				j = (j + 1) & (ns - 1);
			nk[j] = m->keys[i];
			nv[j] = m->vals[i];
		}
		free(m->keys);
		free(m->vals);
		m->keys = nk;
		m->vals = nv;
		m->size = ns;
	}
	size_t j = fnv(key) & (m->size - 1);
	while (m->keys[j]) {
		if (strcmp(m->keys[j], key) == 0)
			return &m->vals[j];
		j = (j + 1) & (m->size - 1);
	}
	m->keys[j] = key;
	m->vals[j] = 0;
	m->n++;
	*added_r = true;
	return &m->vals[j];
}

size_t *an_map_find(const struct an_map *m, const char *key)
{
	if (!m->size)
		return NULL;
	size_t j = fnv(key) & (m->size - 1);
	while (m->keys[j]) {
		if (strcmp(m->keys[j], key) == 0)
			return &m->vals[j];
		j = (j + 1) & (m->size - 1);
	}
	return NULL;
}

void an_map_free(struct an_map *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof(*m));
}

void an_finding(struct analysis *a, const char *kind, const char *fmt, ...)
{
	if (a->n_findings >= 256)
		return;
	struct an_finding *f = AN_PUSH(a->findings, a->n_findings);
	if (!f)
		return;
	char tmp[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	f->kind = strdup(kind);
	f->detail = strdup(tmp);
}

/* ---- recipients and senders ---- */

static char *lower_dup(const char *s)
{
	char *d = an_strdup(s);
	for (char *p = d; p && *p; p++)
		*p = (char)tolower((unsigned char)*p);
	return d;
}

static void add_rcpt(struct an_ctx *c, const char *addr, const char *name, unsigned src)
{
	struct analysis *a = c->a;
	const char *at = addr ? strrchr(addr, '@') : NULL;
	if (!at || at == addr || !at[1]) /* "undisclosed-recipients", bare names */
		return;
	char *l = lower_dup(addr);
	if (!l)
		return;
	size_t *found = an_map_find(&c->rcpt_map, l);
	if (found) {
		struct an_rcpt *r = &a->rcpts[*found];
		r->src |= src;
		if (!r->name && name && *name)
			r->name = strdup(name);
		free(l);
		return;
	}
	if (a->n_rcpts >= c->lim->max_recipients) {
		if (!c->rcpts_noted)
			an_finding(a, "recipients_limit", "more than %u recipients",
				   c->lim->max_recipients);
		c->rcpts_noted = true;
		free(l);
		return;
	}
	bool added;
	size_t *slot = an_map_get(&c->rcpt_map, l, &added); /* key: r->addr below */
	if (!slot) {
		free(l);
		return;
	}
	*slot = a->n_rcpts;
	struct an_rcpt *r = AN_PUSH(a->rcpts, a->n_rcpts);
	if (!r) {
		free(l);
		return;
	}
	r->addr = l;
	r->name = name && *name ? strdup(name) : NULL;
	r->src = src;
}

static void walk_addrs(struct an_ctx *c, InternetAddressList *list, unsigned src, int depth)
{
	if (!list || depth > 4)
		return;
	int n = internet_address_list_length(list);
	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia))
			add_rcpt(c, internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia)),
				 internet_address_get_name(ia), src);
		else if (INTERNET_ADDRESS_IS_GROUP(ia))
			walk_addrs(c, internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)),
				   src, depth + 1);
	}
}

static const char *first_mailbox(InternetAddressList *list, const char **name_r)
{
	if (!list)
		return NULL;
	int n = internet_address_list_length(list);
	for (int i = 0; i < n; i++) {
		InternetAddress *ia = internet_address_list_get_address(list, i);
		if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
			if (name_r)
				*name_r = internet_address_get_name(ia);
			return internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
		}
	}
	return NULL;
}

static char *strip_angle(const char *s)
{
	if (!s)
		return NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	const char *lt = strchr(s, '<');
	if (lt) {
		const char *gt = strchr(lt, '>');
		return gt ? strndup(lt + 1, (size_t)(gt - lt - 1)) : strdup(lt + 1);
	}
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	return strndup(s, n);
}

/* The capture's own Received header (the first one) names the client:
 *   from HELO (rdns [IP]) ... (Authenticated sender: USER) ...
 * Only the first header is trusted: it is the one our daemon wrote. */
static void session_facts(struct analysis *a, GMimeObject *msg)
{
	GMimeHeaderList *hl = g_mime_object_get_header_list(msg);
	int n = hl ? g_mime_header_list_get_count(hl) : 0;
	for (int i = 0; i < n; i++) {
		GMimeHeader *h = g_mime_header_list_get_header_at(hl, i);
		if (strcasecmp(g_mime_header_get_name(h), "Received") != 0)
			continue;
		const char *v = g_mime_header_get_value(h);
		if (!v)
			return;
		const char *f = strstr(v, "from ");
		if (f == v || (f && f[-1] == ' ')) {
			f += 5;
			size_t k = strcspn(f, " \t\r\n(");
			if (k > 0 && k < 256)
				a->helo = strndup(f, k);
		}
		const char *b = strchr(v, '[');
		const char *e = b ? strchr(b, ']') : NULL;
		if (b && e && e - b < 64) {
			const char *ip = b + 1;
			if (strncasecmp(ip, "IPv6:", 5) == 0)
				ip += 5;
			a->client_ip = strndup(ip, (size_t)(e - ip));
		}
		const char *au = strstr(v, "Authenticated sender: ");
		if (au) {
			au += 22;
			size_t k = strcspn(au, ")\r\n ");
			if (k > 0 && k < 256)
				a->auth_user = strndup(au, k);
		}
		return;
	}
}

/* ---- the sender's template ---- */

void an_template_tag(struct an_ctx *c, const char *name)
{
	if (c->n_tags >= 256)
		return;
	c->n_tags++;
	c->tmpl_tags = XXH3_64bits_withSeed(name, strlen(name), c->tmpl_tags);
}

/* Headers a relay or our own daemon adds: not the sending tool's. */
static bool trace_header(const char *n)
{
	static const char *const trace[] = {"received", "return-path", "x-original-to",
					    "delivered-to", "authentication-results",
					    "received-spf", "arc-seal", "arc-message-signature",
					    "arc-authentication-results", "x-spam-status",
					    "x-spam-flag", "x-spam-score", "x-spam-level",
					    "x-spam-checker-version", "x-virus-scanned"};
	for (size_t i = 0; i < sizeof(trace) / sizeof(trace[0]); i++)
		if (strcasecmp(n, trace[i]) == 0)
			return true;
	return false;
}

/* The template key: what one spam tool and template give every copy, however the
 * text is varied: the order of the header names it writes, the MIME skeleton (each
 * part's depth, type and transfer encoding), X-Mailer with its digits masked, and the
 * sequence of HTML start tags. */
void an_template(struct an_ctx *c, struct _GMimeObject *msg)
{
	struct analysis *a = c->a;
	XXH3_state_t *st = XXH3_createState();
	if (!st)
		return;
	XXH3_64bits_reset(st);
	GMimeHeaderList *hl = msg ? g_mime_object_get_header_list(msg) : NULL;
	int n = hl ? g_mime_header_list_get_count(hl) : 0;
	char prev[64] = "";
	for (int i = 0, k = 0; i < n && k < 48; i++) {
		const char *name = g_mime_header_get_name(g_mime_header_list_get_header_at(hl, i));
		char low[64];
		size_t j = 0;
		for (; name && name[j] && j < sizeof(low) - 1; j++)
			low[j] = (char)tolower((unsigned char)name[j]);
		low[j] = 0;
		if (trace_header(low) || strcmp(low, prev) == 0)
			continue;
		memcpy(prev, low, j + 1);
		XXH3_64bits_update(st, low, j + 1);
		k++;
	}
	XXH3_64bits_update(st, "|", 1);
	for (size_t i = 0; i < a->n_parts && i < 64; i++) {
		char sk[160];
		int l = snprintf(sk, sizeof(sk), "%u:%s:%s;", a->parts[i].depth,
				 a->parts[i].content_type ? a->parts[i].content_type : "",
				 a->parts[i].encoding ? a->parts[i].encoding : "");
		XXH3_64bits_update(st, sk, (size_t)l < sizeof(sk) ? (size_t)l : sizeof(sk) - 1);
	}
	XXH3_64bits_update(st, "|", 1);
	for (const char *m = a->x_mailer; m && *m && m - a->x_mailer < 200; m++) {
		char ch = isdigit((unsigned char)*m) ? '#' : *m;
		XXH3_64bits_update(st, &ch, 1);
	}
	XXH3_64bits_update(st, "|", 1);
	XXH3_64bits_update(st, &c->tmpl_tags, sizeof(c->tmpl_tags));
	uint64_t h = XXH3_64bits_digest(st);
	XXH3_freeState(st);
	snprintf(a->template_key, sizeof(a->template_key), "%016llx", (unsigned long long)h);
}

/* ---- parts ---- */

struct leaf {
	EVP_MD_CTX *sha, *md5;
	unsigned char magic[MAGIC_BYTES];
	size_t magic_len;
	uint64_t size;
	bool truncated;
};

static void hex(const unsigned char *d, size_t n, char *out)
{
	static const char hx[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hx[d[i] >> 4];
		out[2 * i + 1] = hx[d[i] & 15];
	}
	out[2 * n] = 0;
}

static bool is_utf8_name(const char *cs)
{
	return !cs || strcasecmp(cs, "utf-8") == 0 || strcasecmp(cs, "utf8") == 0 ||
	       strcasecmp(cs, "us-ascii") == 0 || strcasecmp(cs, "ascii") == 0;
}

static void visit(struct an_ctx *c, GMimeObject *obj, int parent, unsigned depth);

static const char *sniff_type(const unsigned char *d, size_t n);

/* An attachment record from bytes already in memory. */
size_t an_add_attachment(struct an_ctx *c, int part, const char *filename, const char *declared,
			 const unsigned char *d, size_t n)
{
	struct analysis *a = c->a;
	if (a->n_atts >= 4096)
		return (size_t)-1;
	struct an_attachment *at = AN_PUSH(a->atts, a->n_atts);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdl = 0;
	if (!at)
		return (size_t)-1;
	at->part = part;
	at->filename = an_strdup(filename);
	at->declared = an_strdup(declared);
	at->size = n;
	EVP_Digest(d, n, md, &mdl, EVP_sha256(), NULL);
	hex(md, mdl, at->sha256);
	EVP_Digest(d, n, md, &mdl, EVP_md5(), NULL);
	hex(md, mdl, at->md5);
	const char *det = sniff_type(d, n);
	at->detected = an_strdup(det ? det : "application/octet-stream");
	return a->n_atts - 1;
}

/* Inline uuencoded files in a text body ("begin 644 name" ... "end"), the way old
 * mailers and some spam tools still attach them: each becomes an attachment.  At most
 * 16 per part; the decoded size is bounded by the text kept. */
static void inline_uuencode(struct an_ctx *c, int part, const char *t, size_t len)
{
	size_t pos = 0;
	int found = 0;
	while (pos < len && found < 16) {
		const char *b = memmem(t + pos, len - pos, "begin ", 6);
		if (!b)
			return;
		size_t i = (size_t)(b - t);
		pos = i + 6;
		if (i > 0 && t[i - 1] != '\n')
			continue;
		size_t k = pos, digits = 0;
		while (k < len && t[k] >= '0' && t[k] <= '7' && digits < 5) {
			k++;
			digits++;
		}
		if (digits < 3 || k >= len || t[k] != ' ')
			continue;
		const char *nl = memchr(t + k, '\n', len - k);
		if (!nl)
			return;
		char name[256];
		size_t nlen = (size_t)(nl - (t + k + 1));
		while (nlen > 0 && (t[k + 1 + nlen - 1] == '\r' || t[k + 1 + nlen - 1] == ' '))
			nlen--;
		if (nlen == 0 || nlen >= sizeof(name))
			continue;
		memcpy(name, t + k + 1, nlen);
		name[nlen] = 0;
		/* decode lines until "end" or a line that is not uuencode */
		unsigned char *out = malloc(len - (size_t)(nl - t)); /* decoded < encoded */
		size_t o = 0;
		const char *l = nl + 1, *end = t + len;
		bool ended = false;
		while (out && l < end) {
			const char *le = memchr(l, '\n', (size_t)(end - l));
			size_t ll = le ? (size_t)(le - l) : (size_t)(end - l);
			if (ll > 0 && l[ll - 1] == '\r')
				ll--;
			if (ll >= 3 && memcmp(l, "end", 3) == 0) {
				ended = true;
				break;
			}
			if (ll == 0 || l[0] < 32 || l[0] > 96)
				break;
			size_t n = (size_t)((l[0] - 32) & 63);
			if ((n + 2) / 3 * 4 > ll - 1 + 2) /* a line shorter than it says */
				break;
			for (size_t g = 1; n > 0 && g < ll; g += 4) {
				unsigned v = 0;
				for (int q = 0; q < 4; q++) {
					char ch = g + (size_t)q < ll ? l[g + (size_t)q] : ' ';
					v = v << 6 | ((unsigned)(ch - 32) & 63);
				}
				for (int q = 2; q >= 0 && n > 0; q--, n--)
					out[o++] = (unsigned char)(v >> (8 * q));
			}
			l = le ? le + 1 : end;
		}
		if (out && (ended || o > 0)) {
			size_t idx = an_add_attachment(c, part, name, NULL, out, o);
			if (idx != (size_t)-1)
				an_attachment_inspect(c, part, idx, out, o, 1);
			found++;
		}
		free(out);
		pos = (size_t)(l - t) > pos ? (size_t)(l - t) : pos;
	}
}

/* The first bytes of a container or a PDF (attach.c reads them). */
static bool container_magic(const unsigned char *d, size_t n)
{
	static const struct {
		const char *m;
		size_t l;
	} mg[] = {{"%PDF-", 5}, {"\x78\x9f\x3e\x22", 4}, {"PK\3\4", 4}, {"Rar!\x1a\x07", 6},
		  {"7z\xbc\xaf\x27\x1c", 6}, {"\x1f\x8b", 2}, {"BZh", 3}, {"\xfd" "7zXZ", 5},
		  {"MSCF", 4}};
	for (size_t i = 0; i < sizeof(mg) / sizeof(mg[0]); i++)
		if (n >= mg[i].l && memcmp(d, mg[i].m, mg[i].l) == 0)
			return true;
	return (n > 262 && memcmp(d + 257, "ustar", 5) == 0) ||
	       (n > 0x8005 && memcmp(d + 0x8001, "CD001", 5) == 0) ||
	       (n >= 5 && memmem(d, n < 1024 ? n : 1024, "%PDF-", 5));
}

/* libmagic over an attachment's first bytes.  Most types show in the first 16 KiB, and
 * libmagic's text tests read all they are given, so it sees 16 KiB first and the whole
 * MAGIC_SNIFF only when the answer is one that more bytes can refine (ISO 9660 images
 * have their magic at 32 KiB; OLE documents name their kind in directory sectors). */
#define MAGIC_FIRST (16 * 1024)

static const char *sniff_type(const unsigned char *d, size_t n)
{
	if (!g_magic)
		return NULL;
	const char *det = magic_buffer(g_magic, d, n < MAGIC_FIRST ? n : MAGIC_FIRST);
	if (n > MAGIC_FIRST && det &&
	    (strcmp(det, "application/octet-stream") == 0 ||
	     strcmp(det, "application/x-ole-storage") == 0 || strcmp(det, "application/CDFV2") == 0))
		det = magic_buffer(g_magic, d, n < MAGIC_SNIFF ? n : MAGIC_SNIFF);
	return det;
}

static bool name_is_html(const char *fn)
{
	const char *dot = fn ? strrchr(fn, '.') : NULL;
	return dot && (strcasecmp(dot, ".htm") == 0 || strcasecmp(dot, ".html") == 0 ||
		       strcasecmp(dot, ".xhtml") == 0 || strcasecmp(dot, ".shtml") == 0);
}

static void visit_leaf(struct an_ctx *c, GMimePart *part, int idx)
{
	struct analysis *a = c->a;
	struct an_part *p = &a->parts[idx];
	GMimeDataWrapper *w = g_mime_part_get_content(part);
	if (!w)
		return;
	GMimeStream *raw = g_mime_data_wrapper_get_stream(w);
	if (!raw)
		return;
	g_mime_stream_reset(raw);
	GMimeStream *fs = g_mime_stream_filter_new(raw);
	GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
	if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
	    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
		GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
		g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
		g_object_unref(f);
	}
	const char *ct = p->content_type ? p->content_type : "text/plain";
	bool is_text = strncmp(ct, "text/", 5) == 0;
	/* HTML by name too: phishing attaches "offer.htm" as application/octet-stream */
	bool is_html = strcmp(ct, "text/html") == 0 || strcmp(ct, "application/xhtml+xml") == 0 ||
		       name_is_html(p->filename);
	if (is_html)
		is_text = true;
	bool is_att = (p->disposition && strcasecmp(p->disposition, "attachment") == 0) ||
		      p->filename || !is_text;
	if (is_text && !is_utf8_name(p->charset)) {
		GMimeFilter *f = g_mime_filter_charset_new(p->charset, "UTF-8");
		if (f) {
			g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
			g_object_unref(f);
		} else {
			an_finding(a, "unknown_charset", "part %d: %.100s", idx, p->charset);
		}
	}
	/* not "= {0}": that would clear the 64 KiB sniff buffer for every part */
	struct leaf lf;
	lf.sha = lf.md5 = NULL;
	lf.magic_len = 0;
	lf.size = 0;
	lf.truncated = false;
	if (is_att) {
		lf.sha = EVP_MD_CTX_new();
		lf.md5 = EVP_MD_CTX_new();
		EVP_DigestInit_ex(lf.sha, EVP_sha256(), NULL);
		EVP_DigestInit_ex(lf.md5, EVP_md5(), NULL);
	}
	struct an_html *h = is_html ? an_html_new(c, idx, &a->text) : NULL;
	/* An attachment's bytes are kept (capped) when they are a container or a PDF, for
	 * attach.c after decoding: decided on the first chunk (magic numbers), or by the
	 * declared type or name */
	bool keep = is_att && (strcmp(ct, "application/pdf") == 0 ||
			       strcmp(ct, "application/ms-tnef") == 0 ||
			       strcmp(ct, "application/vnd.ms-tnef") == 0 ||
			       (p->filename && (strcasecmp(p->filename, "winmail.dat") == 0 ||
						(strlen(p->filename) > 4 &&
						 strcasecmp(p->filename + strlen(p->filename) - 4,
							    ".pdf") == 0))));
	struct buf kept;
	buf_init(&kept, ATT_KEEP);
	size_t text_start = a->text.len;
	if (!c->chunk)
		c->chunk = malloc(CHUNK); /* one per message, not one per part */
	char *chunk = c->chunk;
	while (chunk) {
		ssize_t n = g_mime_stream_read(fs, chunk, CHUNK);
		if (n <= 0)
			break;
		if (c->decoded + (size_t)n > c->lim->max_decoded) {
			n = (ssize_t)(c->lim->max_decoded - c->decoded);
			lf.truncated = true;
			if (!c->decoded_full)
				an_finding(a, "decoded_limit", "decoded bytes over %zu (part %d)",
					   c->lim->max_decoded, idx);
			c->decoded_full = true;
		}
		c->decoded += (size_t)n;
		lf.size += (uint64_t)n;
		if (lf.sha) {
			EVP_DigestUpdate(lf.sha, chunk, (size_t)n);
			EVP_DigestUpdate(lf.md5, chunk, (size_t)n);
		}
		if (is_att && lf.magic_len < MAGIC_BYTES) { /* only attachments are sniffed */
			size_t k = (size_t)n < MAGIC_BYTES - lf.magic_len ? (size_t)n
									  : MAGIC_BYTES - lf.magic_len;
			memcpy(lf.magic + lf.magic_len, chunk, k);
			lf.magic_len += k;
		}
		if (is_att && lf.size == (uint64_t)n && container_magic((unsigned char *)chunk, (size_t)n))
			keep = true;
		if (keep && kept.len < ATT_KEEP)
			buf_append(&kept, chunk,
				   (size_t)n < ATT_KEEP - kept.len ? (size_t)n : ATT_KEEP - kept.len);
		if (h) {
			an_html_feed(h, chunk, (size_t)n);
		} else if (is_text) {
			struct buf *t = &a->text;
			size_t k = (size_t)n;
			if (t->cap && t->len + k + 2 > t->cap)
				k = t->cap > t->len + 2 ? t->cap - t->len - 2 : 0;
			if (k < (size_t)n && !lf.truncated)
				an_finding(a, "text_limit", "text over %zu bytes (part %d)",
					   c->lim->max_text, idx);
			if (k)
				buf_append(t, chunk, k);
			if (k < (size_t)n)
				lf.truncated = true;
		}
		if (lf.truncated && c->decoded_full)
			break;
	}
	g_object_unref(fs);
	if (h) {
		an_html_free(&h);
	} else if (is_text && a->text.len > text_start) {
		an_scan_add(c, a->text.data + text_start, a->text.len - text_start,
			    AN_W_TEXT | (is_att ? AN_W_ATTACHMENT : 0), idx);
		inline_uuencode(c, idx, a->text.data + text_start, a->text.len - text_start);
	}
	if (is_text && a->text.len > 0 && a->text.data[a->text.len - 1] != '\n' &&
	    (!a->text.cap || a->text.len + 1 < a->text.cap))
		buf_putc(&a->text, '\n');
	p->size = lf.size;
	p->truncated = lf.truncated;
	if (is_att) {
		struct an_attachment *at = AN_PUSH(a->atts, a->n_atts);
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdl = 0;
		if (at) {
			at->part = idx;
			at->filename = an_strdup(p->filename);
			at->declared = an_strdup(p->content_type);
			at->size = lf.size;
			EVP_DigestFinal_ex(lf.sha, md, &mdl);
			hex(md, mdl, at->sha256);
			EVP_DigestFinal_ex(lf.md5, md, &mdl);
			hex(md, mdl, at->md5);
			const char *det = sniff_type(lf.magic, lf.magic_len);
			at->detected = an_strdup(det ? det : "application/octet-stream");
			if (kept.len)
				an_attachment_inspect(c, idx, a->n_atts - 1,
						      (const unsigned char *)kept.data, kept.len, 0);
		}
	}
	buf_free(&kept);
	EVP_MD_CTX_free(lf.sha);
	EVP_MD_CTX_free(lf.md5);
}

static int new_part(struct an_ctx *c, GMimeObject *obj, int parent, unsigned depth)
{
	struct analysis *a = c->a;
	if (a->n_parts >= c->lim->max_parts) {
		if (!c->parts_noted)
			an_finding(a, "parts_limit", "more than %u MIME parts", c->lim->max_parts);
		c->parts_noted = true;
		return -1;
	}
	struct an_part *p = AN_PUSH(a->parts, a->n_parts);
	if (!p)
		return -1;
	int idx = (int)a->n_parts - 1;
	p->index = idx;
	p->parent = parent;
	p->depth = depth;
	GMimeContentType *ct = g_mime_object_get_content_type(obj);
	if (ct) {
		char *mt = g_mime_content_type_get_mime_type(ct);
		p->content_type = lower_dup(mt);
		g_free(mt);
		const char *cs = g_mime_content_type_get_parameter(ct, "charset");
		p->charset = cs ? lower_dup(cs) : NULL;
	}
	const char *disp = g_mime_object_get_disposition(obj);
	p->disposition = disp ? lower_dup(disp) : NULL;
	if (GMIME_IS_PART(obj)) {
		const char *fn = g_mime_part_get_filename(GMIME_PART(obj));
		p->filename = an_strdup(fn);
		GMimeContentEncoding e = g_mime_part_get_content_encoding(GMIME_PART(obj));
		const char *es = g_mime_content_encoding_to_string(e);
		p->encoding = es ? strdup(es) : NULL;
	}
	return idx;
}

static bool parts_full(struct an_ctx *c)
{
	return c->a->n_parts >= c->lim->max_parts;
}

static void visit(struct an_ctx *c, GMimeObject *obj, int parent, unsigned depth)
{
	if (!obj)
		return;
	if (depth > c->lim->max_depth) {
		if (!c->depth_noted)
			an_finding(c->a, "depth_limit", "MIME nesting deeper than %u",
				   c->lim->max_depth);
		c->depth_noted = true;
		return;
	}
	int idx = new_part(c, obj, parent, depth);
	if (idx < 0)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		/* The preamble and epilogue are text a mail client may show (all of the
		 * body, when the delimiter lines never match the boundary): links there
		 * count; when there are no parts at all it is the body's text too. */
		const char *pro[2] = {g_mime_multipart_get_prologue(mp),
				      g_mime_multipart_get_epilogue(mp)};
		for (int k = 0; k < 2; k++) {
			size_t pl = pro[k] ? strlen(pro[k]) : 0;
			if (pl == 0)
				continue;
			if (pl > c->lim->max_text)
				pl = c->lim->max_text;
			an_scan_add(c, pro[k], pl, AN_W_TEXT, idx);
			if (n == 0) {
				struct buf *t = &c->a->text;
				size_t room = t->cap > t->len + 2 ? t->cap - t->len - 2 : 0;
				buf_append(t, pro[k], pl < room ? pl : room);
				buf_putc(t, '\n');
			}
		}
		for (int i = 0; i < n; i++) {
			if (parts_full(c)) {
				new_part(c, obj, idx, depth); /* records the finding once */
				break;
			}
			visit(c, g_mime_multipart_get_part(mp, i), idx, depth + 1);
		}
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m)
			visit(c, g_mime_message_get_mime_part(m), idx, depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		visit_leaf(c, GMIME_PART(obj), idx);
	}
}

/* GMime checks every line against the whole stack of open boundaries, so a message
 * nesting 300,000 multiparts costs minutes (measured: 30 s for 25 MB).  Before GMime
 * sees the bytes, count boundary parameters ("boundary=", any case, optional spaces,
 * RFC 2231 "boundary*0="); past MAX_BOUNDARIES the message is cut there (a finding),
 * which bounds that stack. */
#define MAX_BOUNDARIES 1000

static size_t boundary_cut(const char *d, size_t len)
{
	size_t n = 0;
	const char *p = d, *end = d + len;
	while ((p = memchr(p, '=', (size_t)(end - p)))) {
		const char *q = p;
		while (q > d && (q[-1] == ' ' || q[-1] == '\t' || q[-1] == '*' ||
				 (q[-1] >= '0' && q[-1] <= '9')))
			q--;
		if (q - d >= 8 && strncasecmp(q - 8, "boundary", 8) == 0 && ++n > MAX_BOUNDARIES)
			return (size_t)(q - 8 - d);
		p++;
	}
	return len;
}

static GMimeStream *stream_over(const void *data, size_t len)
{
	/* A memory stream that reads the caller's bytes in place: GMime's own
	 * mem_new_with_buffer would copy (50 MB messages!).  We lend a GByteArray whose
	 * data points at the caller's buffer and tell the stream it does not own it. */
	GByteArray *ba = g_byte_array_new();
	GMimeStream *s;
	ba->data = (guint8 *)data;
	ba->len = (guint)len;
	s = g_mime_stream_mem_new_with_byte_array(ba);
	g_mime_stream_mem_set_owner(GMIME_STREAM_MEM(s), FALSE);
	g_object_set_data_full(G_OBJECT(s), "mxb-ba", ba, NULL);
	return s;
}

static void release_stream(GMimeStream *s)
{
	GByteArray *ba = g_object_get_data(G_OBJECT(s), "mxb-ba");
	g_object_unref(s);
	if (ba) {
		/* give the borrowed bytes back before freeing the array header */
		ba->data = NULL;
		ba->len = 0;
		g_byte_array_free(ba, TRUE);
	}
}

struct analysis *analyze_message(const void *data, size_t len, const struct analyze_limits *lim,
				 const struct an_envelope *env)
{
	struct analyze_limits dl;
	if (!lim) {
		analyze_limits_default(&dl);
		lim = &dl;
	}
	analyze_global_init();
	struct analysis *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	buf_init(&a->text, lim->max_text);
	a->size = len;
	{
		unsigned char md[EVP_MAX_MD_SIZE];
		unsigned mdl = 0;
		EVP_Digest(data, len, md, &mdl, EVP_sha256(), NULL);
		hex(md, mdl, a->msg_sha256);
	}
	struct an_ctx c = {.a = a, .lim = lim};
	if (len > (size_t)G_MAXUINT) {
		an_finding(a, "too_large", "message of %zu bytes", len);
		an_fingerprint(a);
		return a;
	}
	size_t cut = boundary_cut(data, len);
	if (cut < len)
		an_finding(a, "structure_limit", "more than %d multipart boundaries; cut at byte %zu",
			   MAX_BOUNDARIES, cut);
	GMimeStream *st = stream_over(data, cut);
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	if (!msg) {
		an_finding(a, "not_a_message", "GMime could not parse the headers");
	} else {
		GMimeObject *mo = GMIME_OBJECT(msg);
		a->subject = an_strdup(g_mime_message_get_subject(msg));
		a->date = an_strdup(g_mime_object_get_header(mo, "Date"));
		a->message_id = an_strdup(g_mime_message_get_message_id(msg));
		const char *fname = NULL;
		const char *fa = first_mailbox(g_mime_message_get_from(msg), &fname);
		a->from_addr = fa ? lower_dup(fa) : NULL;
		a->from_name = fname && *fname ? strdup(fname) : NULL;
		InternetAddressList *fl = g_mime_message_get_from(msg);
		a->from = fl ? internet_address_list_to_string(fl, NULL, FALSE) : NULL;
		InternetAddressList *tl = g_mime_message_get_to(msg);
		a->to = tl && internet_address_list_length(tl) > 0
				? internet_address_list_to_string(tl, NULL, FALSE)
				: NULL;
		const char *rt = first_mailbox(g_mime_message_get_reply_to(msg), NULL);
		a->reply_to = rt ? lower_dup(rt) : NULL;
		a->return_path = strip_angle(g_mime_object_get_header(mo, "Return-Path"));
		if (a->return_path) {
			char *l = lower_dup(a->return_path);
			free(a->return_path);
			a->return_path = l;
		}
		if (a->message_id) {
			const char *at = strrchr(a->message_id, '@');
			if (at)
				a->msgid_domain = lower_dup(at + 1);
		}
		a->x_mailer = an_strdup(g_mime_object_get_header(mo, "X-Mailer"));
		a->user_agent = an_strdup(g_mime_object_get_header(mo, "User-Agent"));
		session_facts(a, mo);
		if (env) {
			for (size_t i = 0; i < env->n_recipients; i++)
				add_rcpt(&c, env->recipients[i], NULL, AN_R_ENVELOPE);
			if (env->sender) {
				a->env_from = lower_dup(env->sender);
			}
			if (env->client_ip) {
				free(a->client_ip);
				a->client_ip = strdup(env->client_ip);
			}
			if (env->helo) {
				free(a->helo);
				a->helo = strdup(env->helo);
			}
			if (env->auth_user) {
				free(a->auth_user);
				a->auth_user = strdup(env->auth_user);
			}
		}
		if (!a->env_from && a->return_path)
			a->env_from = strdup(a->return_path);
		/* envelope recipients recorded by a delivery agent */
		const char *xo = g_mime_object_get_header(mo, "X-Original-To");
		if (xo) {
			char *x = strip_angle(xo);
			add_rcpt(&c, x, NULL, AN_R_ENVELOPE);
			free(x);
		}
		walk_addrs(&c, g_mime_message_get_to(msg), AN_R_TO, 0);
		walk_addrs(&c, g_mime_message_get_cc(msg), AN_R_CC, 0);
		walk_addrs(&c, g_mime_message_get_bcc(msg), AN_R_BCC, 0);
		/* a link in the Subject is a link the recipient sees first */
		if (a->subject)
			an_scan_add(&c, a->subject, strlen(a->subject), AN_W_SUBJECT, -1);
		/* List-Unsubscribe carries links too */
		const char *lu = g_mime_object_get_header(mo, "List-Unsubscribe");
		if (lu)
			an_scan_add(&c, lu, strlen(lu), AN_W_HEADER, -1);
		visit(&c, g_mime_message_get_mime_part(msg), -1, 0);
		an_template(&c, mo);
		g_object_unref(msg);
	}
	g_object_unref(parser);
	release_stream(st);
	free(c.lt);
	free(c.chunk);
	an_seen_free(&c);
	an_map_free(&c.rcpt_map);
	an_fingerprint(a);
	return a;
}

struct analysis *analyze_attachment(const void *data, size_t len, const char *filename,
				    const struct analyze_limits *lim)
{
	struct analyze_limits dl;
	if (!lim) {
		analyze_limits_default(&dl);
		lim = &dl;
	}
	analyze_global_init();
	struct analysis *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	buf_init(&a->text, lim->max_text);
	a->size = len;
	struct an_ctx c = {.a = a, .lim = lim};
	size_t idx = an_add_attachment(&c, 0, filename, NULL, data, len);
	if (idx != (size_t)-1)
		an_attachment_inspect(&c, 0, idx, data, len, 0);
	free(c.lt);
	free(c.chunk);
	an_seen_free(&c);
	an_map_free(&c.rcpt_map);
	return a;
}

void analysis_free(struct analysis **ap)
{
	struct analysis *a = *ap;
	if (!a)
		return;
	char **strs[] = {&a->subject, &a->from, &a->to, &a->date, &a->message_id, &a->env_from,
			 &a->from_addr, &a->from_name, &a->reply_to, &a->return_path,
			 &a->msgid_domain, &a->x_mailer, &a->user_agent, &a->client_ip, &a->helo,
			 &a->auth_user};
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		free(*strs[i]);
	for (size_t i = 0; i < a->n_parts; i++) {
		struct an_part *p = &a->parts[i];
		free(p->content_type);
		free(p->charset);
		free(p->encoding);
		free(p->disposition);
		free(p->filename);
	}
	free(a->parts);
	for (size_t i = 0; i < a->n_links; i++) {
		struct an_link *l = &a->links[i];
		free(l->raw);
		free(l->norm);
		free(l->host);
		free(l->host_unicode);
		free(l->domain);
		free(l->display_host);
	}
	free(a->links);
	for (size_t i = 0; i < a->n_rcpts; i++) {
		free(a->rcpts[i].addr);
		free(a->rcpts[i].name);
	}
	free(a->rcpts);
	for (size_t i = 0; i < a->n_atts; i++) {
		struct an_attachment *t = &a->atts[i];
		free(t->filename);
		free(t->declared);
		free(t->detected);
		for (char **m = t->members; m && *m; m++)
			free(*m);
		free(t->members);
		for (size_t k = 0; k < t->n_mdet; k++)
			free(t->mdet[k].name);
		free(t->mdet);
	}
	free(a->atts);
	for (size_t i = 0; i < a->n_findings; i++) {
		free(a->findings[i].kind);
		free(a->findings[i].detail);
	}
	free(a->findings);
	buf_free(&a->text);
	free(a);
	*ap = NULL;
}

/* ---- the HTML body, for the dashboard's sandboxed view ---- */

void analyze_mime_init(void)
{
	g_mime_init(); /* counted by GMime: analyze_global_init may call it too */
}

struct html_find {
	unsigned parts;
	GMimePart *found;
};

/* The first text/html leaf that is not an attachment, depth-first in MIME order
 * (inside message/rfc822 parts too: a forwarded message is shown as a client would). */
static void find_html(struct html_find *h, GMimeObject *obj, unsigned depth)
{
	if (!obj || h->found || depth > 20 || ++h->parts > 2000)
		return;
	if (GMIME_IS_MULTIPART(obj)) {
		GMimeMultipart *mp = GMIME_MULTIPART(obj);
		int n = g_mime_multipart_get_count(mp);
		for (int i = 0; i < n && !h->found; i++)
			find_html(h, g_mime_multipart_get_part(mp, i), depth + 1);
	} else if (GMIME_IS_MESSAGE_PART(obj)) {
		GMimeMessage *m = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
		if (m)
			find_html(h, g_mime_message_get_mime_part(m), depth + 1);
	} else if (GMIME_IS_PART(obj)) {
		GMimeContentType *ct = g_mime_object_get_content_type(obj);
		const char *disp = g_mime_object_get_disposition(obj);
		if (ct && g_mime_content_type_is_type(ct, "text", "html") &&
		    !(disp && !strcasecmp(disp, "attachment")) &&
		    !g_mime_part_get_filename(GMIME_PART(obj)))
			h->found = GMIME_PART(obj);
	}
}

int analyze_html_body(const void *data, size_t len, size_t max, struct buf *out,
		      bool *truncated_r)
{
	*truncated_r = false;
	if (len > (size_t)G_MAXUINT)
		len = G_MAXUINT;
	GMimeStream *st = stream_over(data, boundary_cut(data, len));
	GMimeParser *parser = g_mime_parser_new_with_stream(st);
	g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
	GMimeMessage *msg = g_mime_parser_construct_message(parser, NULL);
	int ret = -1;
	if (msg) {
		struct html_find h = {0};
		find_html(&h, g_mime_message_get_mime_part(msg), 0);
		ret = 0;
		GMimeDataWrapper *w = h.found ? g_mime_part_get_content(h.found) : NULL;
		GMimeStream *raw = w ? g_mime_data_wrapper_get_stream(w) : NULL;
		if (raw) {
			ret = 1;
			g_mime_stream_reset(raw);
			GMimeStream *fs = g_mime_stream_filter_new(raw);
			GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(w);
			if (enc == GMIME_CONTENT_ENCODING_BASE64 ||
			    enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
			    enc == GMIME_CONTENT_ENCODING_UUENCODE) {
				GMimeFilter *f = g_mime_filter_basic_new(enc, FALSE);
				g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
				g_object_unref(f);
			}
			GMimeContentType *ct = g_mime_object_get_content_type(GMIME_OBJECT(h.found));
			const char *cs = ct ? g_mime_content_type_get_parameter(ct, "charset") : NULL;
			char *lcs = cs ? lower_dup(cs) : NULL;
			if (lcs && !is_utf8_name(lcs)) {
				GMimeFilter *f = g_mime_filter_charset_new(lcs, "UTF-8");
				if (f) {
					g_mime_stream_filter_add(GMIME_STREAM_FILTER(fs), f);
					g_object_unref(f);
				}
			}
			free(lcs);
			char chunk[16384];
			ssize_t n;
			while ((n = g_mime_stream_read(fs, chunk, sizeof(chunk))) > 0) {
				size_t k = (size_t)n;
				if (out->len + k > max) {
					k = max - out->len;
					*truncated_r = true;
				}
				buf_append(out, chunk, k);
				if (*truncated_r)
					break;
			}
			g_object_unref(fs);
		}
		g_object_unref(msg);
	}
	g_object_unref(parser);
	release_stream(st);
	return ret;
}
