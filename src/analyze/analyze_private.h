/*
 * analyze_private: what the files of the analyzer share inside the module (not an API).
 */
#ifndef MXB_ANALYZE_PRIVATE_H
#define MXB_ANALYZE_PRIVATE_H

#include "analyze/analyze.h"

/* A small string -> size_t map (open addressing, FNV-1a; keys borrowed, not copied):
 * keeps recipient dedupe and per-domain counts linear in hostile input. */
struct an_map {
	const char **keys;
	size_t *vals;
	size_t size, n;
};
/* Returns a pointer to the value of key (inserted with 0 when absent, *added_r set),
 * or NULL on allocation failure. */
size_t *an_map_get(struct an_map *m, const char *key, bool *added_r);
size_t *an_map_find(const struct an_map *m, const char *key);
void an_map_free(struct an_map *m);

/* Per-analysis working state. */
struct an_ctx {
	struct analysis *a;
	const struct analyze_limits *lim;
	/* norm -> link index, open addressing (size a power of two, 0 = empty, else idx+1) */
	uint32_t *lt;
	size_t lt_size;
	bool links_full;
	size_t decoded;
	bool decoded_full;
	bool parts_noted, depth_noted, rcpts_noted;
	struct an_map rcpt_map; /* addr -> index in a->rcpts */
	char *chunk;		/* the decode buffer, shared by the message's parts */
	struct an_map seen;	/* an_add_link's inputs -> outcome (keys owned) */
	uint64_t tmpl_tags;	/* running hash of the first HTML start tags' names */
	unsigned n_tags;
	size_t expanded;	/* bytes expanded from archives, PDF streams, TNEF */
	bool expand_noted;
};

/* attach.c: containers inside attachments, at most AT_MAX_DEPTH deep. */
#define AT_MAX_DEPTH 3
/* Count n more expanded bytes; false (and a finding, once) past the budget. */
bool an_expand_budget(struct an_ctx *c, size_t n);
/* Inspect attachment att's bytes: archive members, OOXML links, PDF streams, TNEF. */
void an_attachment_inspect(struct an_ctx *c, int part, size_t att, const unsigned char *d,
			   size_t n, unsigned depth);
/* An attachment record from bytes in memory (hashes, libmagic type); its index or
 * (size_t)-1. */
size_t an_add_attachment(struct an_ctx *c, int part, const char *filename, const char *declared,
			 const unsigned char *d, size_t n);
/* tnef.c: a TNEF stream's attachments and bodies. */
void an_tnef(struct an_ctx *c, int part, const unsigned char *d, size_t n, unsigned depth);
/* Fold an HTML start tag's name into the template's tag sequence (first 256). */
void an_template_tag(struct an_ctx *c, const char *name);
/* The template key (a->template_key) from the message's headers and structure. */
struct _GMimeObject;
void an_template(struct an_ctx *c, struct _GMimeObject *msg);
void an_seen_free(struct an_ctx *c);

/* Add one found link: normalise, dedupe, unwrap redirectors, flag shorteners.
 * clean/clen is what to normalise (refanged text), raw/rlen the original bytes.
 * Returns the link index or -1 when it was not a web link / was refused. */
int an_add_link(struct an_ctx *c, const char *raw, size_t rlen, const char *clean, size_t clen,
		unsigned where, unsigned extra_flags, int part);

/* Text scanner: calls cb for every URL-looking span in s. */
typedef void (*an_url_cb)(void *arg, const char *raw, size_t rlen, const char *clean,
			  size_t clen, unsigned flags);
void an_scan_text(const char *s, size_t len, an_url_cb cb, void *arg);
/* Scan text and add every link found (where, part). */
void an_scan_add(struct an_ctx *c, const char *s, size_t len, unsigned where, int part);

/* HTML: a push parser over one part's UTF-8 bytes. */
struct an_html;
struct an_html *an_html_new(struct an_ctx *c, int part, struct buf *text);
void an_html_feed(struct an_html *h, const char *data, size_t len);
void an_html_free(struct an_html **h); /* finishes the parse */
/* Add where bits to every link this parser reports (AN_W_ATTACHMENT). */
void an_html_set_where(struct an_html *h, unsigned where);

/* PDF /URI link annotations in a PDF's bytes (pdf.c). */
void an_pdf_scan(struct an_ctx *c, int part, const char *data, size_t len);

void an_finding(struct analysis *a, const char *kind, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Campaign fingerprint of a->text (normalised body SHA-256 and MinHash). */
void an_fingerprint(struct analysis *a);

char *an_strdup(const char *s);
char *an_strndup(const char *s, size_t n);
/* Append one zeroed element to a malloc'd array of *n elements (capacity doubles at
 * powers of two).  Returns the new element or NULL. */
void *an_grow_(void **arr, size_t *n, size_t elsize);
#define AN_PUSH(arr, n) ((__typeof__(arr))an_grow_((void **)&(arr), &(n), sizeof(*(arr))))

#endif
