/*
 * url: offline normalisation of one hostile URL, and what it hides.
 *
 * url_normalise() takes the bytes an extractor found (possibly defanged, with
 * zero-width or bidi characters, an obfuscated IP literal, an IDN host, a redirector
 * wrapped around the real target) and gives the canonical form an analyst reports:
 * lower-case scheme and host, A-label host (plus the Unicode form), IPv4 literals in
 * dotted-quad, default port dropped, percent-encoding normalised (unreserved bytes
 * decoded, others upper-case %XX), "/" for an empty path.  What was unusual becomes a
 * flag.  Nothing is resolved or fetched, ever.
 *
 * Promises: pure function of its input and the public suffix list; every output is
 * valid NUL-terminated UTF-8/ASCII; input of any length and content is accepted
 * (what is longer than URL_MAX_LEN is refused as URL_BAD).
 */
#ifndef MXB_ANALYZE_URL_H
#define MXB_ANALYZE_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_MAX_LEN 8192

enum url_flag {
	URL_F_DEFANGED      = 1u << 0,  /* hxxp, [.], (dot) ... */
	URL_F_ZERO_WIDTH    = 1u << 1,  /* zero-width / soft hyphen stripped */
	URL_F_BIDI          = 1u << 2,  /* bidi controls stripped */
	URL_F_IP            = 1u << 3,  /* host is an IP literal */
	URL_F_IP_OBFUSCATED = 1u << 4,  /* octal/hex/integer/short IPv4 form */
	URL_F_IDN           = 1u << 5,  /* host has a Unicode form */
	URL_F_USERINFO      = 1u << 6,  /* user@ before the host */
	URL_F_PORT          = 1u << 7,  /* non-default port */
	URL_F_REDIRECTOR    = 1u << 8,  /* wraps another URL (see unwrapped) */
	URL_F_UNWRAPPED     = 1u << 9,  /* found inside a redirector */
	URL_F_SHORTENER     = 1u << 10, /* known URL shortener */
	URL_F_DISPLAY_MISMATCH = 1u << 11, /* link text shows another domain */
	URL_F_NO_SCHEME     = 1u << 12, /* www. or bare domain form */
	URL_F_BACKSLASH     = 1u << 13, /* \ used as / */
	URL_F_ENCODED_HOST  = 1u << 14, /* %XX in the host */
	URL_F_MIXED_SCRIPT  = 1u << 15, /* IDN label mixes Latin with other letters */
	URL_F_DATA          = 1u << 16, /* data: URI */
	URL_F_TRIMMED_HOST  = 1u << 17, /* junk after the host cut off (NBSP, space) */
};

/* Names for the flags, in bit order, for JSON and the store. */
extern const char *const url_flag_names[];
size_t url_flag_count(void);

enum url_result { URL_OK = 0, URL_NOT_WEB = 1, URL_BAD = 2 };

struct url_norm {
	char *norm;          /* canonical URL (malloc'd) */
	char *host;          /* A-label or IP text, lower case */
	char *host_unicode;  /* Unicode form when IDN, else NULL */
	char *domain;        /* registrable domain (or the IP), NULL when none */
	char *scheme;        /* "http", "https", "ftp" */
	unsigned flags;
};

struct psl_ctx_st;

/* Load the public suffix list: the operator's file when path is non-NULL (a newer
 * list), else the newest of the system's and libpsl's builtin.  Safe to call more than
 * once; the first successful load wins.  Returns 0 or -1. */
int url_psl_init(const char *path);
const struct psl_ctx_st *url_psl(void);

/* Normalise raw (len bytes).  On URL_OK fills *r (free with url_norm_clear). */
enum url_result url_normalise(const char *raw, size_t len, struct url_norm *r);
void url_norm_clear(struct url_norm *r);

/* When n (a normalised URL) is a redirector/open redirect carrying another absolute
 * URL in a parameter or path, return that URL's raw text (malloc'd), else NULL. */
char *url_unwrap(const struct url_norm *n);
/* The k-th such URL (k = 0 is url_unwrap's): a wrapper may carry several parameters
 * with absolute URLs (?u=A&v=B); path, AMP and Proofpoint forms have one. */
char *url_unwrap_nth(const struct url_norm *n, unsigned k);
/* Is host a known URL shortener? */
bool url_is_shortener(const char *host);

/* Is the dotted name (lower case ASCII or UTF-8) under a public suffix with a
 * registrable part, i.e. could it be a bare domain in text? */
bool url_has_public_suffix(const char *name, size_t len);
/* Is the single label (lower case) a top-level domain of the ICANN section? */
bool url_tld_known(const char *label);
/* The registrable domain of a lower-case host (libpsl, both sections), or NULL. */
const char *url_registrable(const char *host);

/* Parse an IPv4 literal the way browsers (inet_aton) do: 1-4 parts, each decimal,
 * 0x hex or 0 octal.  Returns true and the address in *ip_r. */
bool url_parse_ipv4(const char *s, size_t len, unsigned long *ip_r);

#endif
