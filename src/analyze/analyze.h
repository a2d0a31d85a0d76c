/*
 * analyze: turn one captured message (hostile bytes) into intelligence: headers
 * summary, MIME parts, links, recipients, senders, attachments, findings and the
 * campaign fingerprint.
 *
 * Promises: any input (any size, any structure) gives a result; whatever passes a limit
 * (nesting depth, number of parts, decoded bytes, links) is recorded as a finding and
 * the rest of the message is still analysed.  Memory is bounded by the limits, not by
 * the input: part bodies are decoded as streams in fixed chunks, only text kept (up to
 * max_text).  Nothing is fetched or resolved.  Single-threaded per analysis; call
 * analyze_global_init() once per process first.
 */
#ifndef MXB_ANALYZE_ANALYZE_H
#define MXB_ANALYZE_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct analyze_limits {
	unsigned max_depth;      /* message/rfc822 + multipart nesting */
	unsigned max_parts;      /* MIME parts visited */
	size_t max_decoded;      /* decoded bytes over all parts */
	size_t max_text;         /* text (plain + html text) kept for links/campaigns */
	unsigned max_links;      /* distinct links kept */
	unsigned max_recipients; /* distinct recipients kept */
};

/* Defaults: depth 20, parts 2000, decoded 64 MiB, text 4 MiB, links 5000,
 * recipients 10000. */
void analyze_limits_default(struct analyze_limits *l);

/* Where a link was found: a bit per place. */
enum an_where {
	AN_W_TEXT = 1u << 0, AN_W_HTML_HREF = 1u << 1, AN_W_HTML_SRC = 1u << 2,
	AN_W_HTML_ACTION = 1u << 3, AN_W_HTML_META = 1u << 4, AN_W_HTML_CSS = 1u << 5,
	AN_W_HTML_SRCSET = 1u << 6, AN_W_HTML_TEXT = 1u << 7, AN_W_REDIRECT = 1u << 8,
	AN_W_HEADER = 1u << 9, AN_W_ATTACHMENT = 1u << 10, AN_W_SUBJECT = 1u << 11,
};
extern const char *const an_where_names[];
size_t an_where_count(void);

struct an_link {
	char *raw;           /* first raw form seen */
	char *norm;
	char *host;
	char *host_unicode;  /* NULL unless IDN */
	char *domain;        /* registrable domain or IP, may be NULL */
	char *display_host;  /* anchor text host when it differs */
	int parent;          /* index of the redirector link it came from, or -1 */
	unsigned where;      /* enum an_where bits */
	unsigned flags;      /* enum url_flag bits */
	int part;            /* first part index it was seen in (-1: header) */
};

enum an_rcpt_src { AN_R_ENVELOPE = 1, AN_R_TO = 2, AN_R_CC = 4, AN_R_BCC = 8 };

struct an_rcpt {
	char *addr;          /* lower-cased */
	char *name;          /* display name (UTF-8), may be NULL */
	unsigned src;        /* enum an_rcpt_src bits */
};

struct an_part {
	int index;
	int parent;
	unsigned depth;
	char *content_type;  /* "type/subtype", lower case */
	char *charset;
	char *encoding;
	char *disposition;
	char *filename;
	uint64_t size;       /* decoded bytes (up to the limit) */
	bool truncated;
};

/* One member of an archive attachment (or of an archive inside it: "a.zip!/b.txt"). */
struct an_member {
	char *name;
	uint64_t size;       /* bytes read (decompressed) */
	char sha256[65];     /* empty when not read (encrypted, not a file) */
	bool encrypted;
	bool truncated;      /* damaged, or the expansion budget ran out */
};

struct an_attachment {
	int part;
	char *filename;
	char *declared;      /* declared content type */
	char *detected;      /* libmagic MIME type */
	uint64_t size;
	char sha256[65];
	char md5[33];
	char **members;      /* archive member names, NULL-terminated, may be NULL */
	struct an_member *mdet; /* the same members with sizes and hashes */
	size_t n_mdet;
};

struct an_finding {
	char *kind;          /* e.g. "depth_limit", "parts_limit", "decoded_limit" */
	char *detail;
};

#define AN_MINHASH 128

struct analysis {
	/* header summary (UTF-8, decoded) */
	char *subject, *from, *to, *date, *message_id;
	/* senders */
	char *env_from;      /* envelope sender (Return-Path or the daemon's record) */
	char *from_addr, *from_name, *reply_to, *return_path, *msgid_domain;
	char *x_mailer, *user_agent;
	char *client_ip, *helo, *auth_user; /* session facts from the capture's Received */
	/* structure */
	struct an_part *parts; size_t n_parts;
	struct an_link *links; size_t n_links;
	struct an_rcpt *rcpts; size_t n_rcpts;
	struct an_attachment *atts; size_t n_atts;
	struct an_finding *findings; size_t n_findings;
	/* text kept for search and campaigns (UTF-8) */
	struct buf text;
	/* sha256 of the raw message, of the normalised body, and the MinHash */
	char msg_sha256[65];
	char body_sha256[65];
	uint64_t minhash[AN_MINHASH];
	size_t n_shingles;
	/* MinHash over the set of distinct words (no order): what survives rewording
	 * (docs/ANALYSIS.md, "Campaigns") */
	uint64_t minhash_w[AN_MINHASH];
	size_t n_words;
	/* sender tool and template: MIME skeleton, header order, X-Mailer (digits
	 * masked), HTML tag sequence, as 16 hex digits (XXH3-64) */
	char template_key[17];
	uint64_t size;
};

void analyze_global_init(void);

/* Envelope facts known from outside the message (the daemon's event), optional. */
struct an_envelope {
	const char *sender;
	const char *const *recipients;
	size_t n_recipients;
	const char *client_ip, *helo, *auth_user;
};

/* Analyse len bytes at data.  env may be NULL.  Never fails except on allocation
 * failure (NULL). */
struct analysis *analyze_message(const void *data, size_t len, const struct analyze_limits *lim,
				 const struct an_envelope *env);
void analysis_free(struct analysis **a);

/* Analyse len bytes as one attachment named filename (may be NULL), outside any
 * message: what attach.c finds in it (archive members, OOXML and PDF links, TNEF).
 * For the fuzz targets and tests. */
struct analysis *analyze_attachment(const void *data, size_t len, const char *filename,
				    const struct analyze_limits *lim);
/* GMime alone (what analyze_html_body needs), once per process before any thread
 * calls it; cheaper than analyze_global_init (no libmagic, no PSL). */
void analyze_mime_init(void);
/* The body a mail client would show as HTML: the first text/html part that is not an
 * attachment, decoded (transfer encoding, charset to UTF-8), at most max bytes
 * appended to out (*truncated_r when cut).  The same bounds as analyze_message
 * (boundaries, depth, parts).  Returns 1 found, 0 no such part, -1 not a message.
 * The bytes are the attacker's HTML: for a sandboxed frame only (docs/api.md). */
int analyze_html_body(const void *data, size_t len, size_t max, struct buf *out,
		      bool *truncated_r);

/* One JSON object (no newline).  source: the file name (may be NULL). */
int analysis_to_json(const struct analysis *a, const char *source, struct buf *out);

/* Jaccard estimate between two MinHash signatures. */
double an_minhash_similarity(const uint64_t *a, const uint64_t *b);

#endif
