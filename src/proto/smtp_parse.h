/*
 * smtp_parse: pure parsers for one SMTP command line, the way Postfix smtpd reads them.
 *
 * smtp_tokenize() splits a line like Postfix's smtpd_token(): whitespace separates
 * tokens, "<...>" and "\"...\"" are kept whole (whitespace included), "FROM:" and "TO:"
 * end a token at the colon, and an unterminated <...> marks its token as an error.
 * Tokens are substrings of the caller's line (which is NUL-terminated per token in
 * place), so nothing here allocates.  The MAIL/RCPT/BDAT parsers take the tokens and a
 * limits struct and return a tri-state (ok / reject with a Postfix reply / limit), so
 * the engine only maps results to replies and never parses by hand.
 */
#ifndef MXB_PROTO_SMTP_PARSE_H
#define MXB_PROTO_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SMTP_MAX_TOKENS 64

struct smtp_token {
	char *s;      /* NUL-terminated, points into the caller's line */
	size_t len;
	bool error;   /* unbalanced <...> or "..." (Postfix SMTPD_TOK_ERROR) */
};

struct smtp_args {
	struct smtp_token tok[SMTP_MAX_TOKENS];
	size_t n;
	bool truncated; /* more than SMTP_MAX_TOKENS tokens: the rest were dropped */
};

enum smtp_parse_result {
	SMTP_PARSE_OK,
	SMTP_PARSE_REJECT, /* syntax or unsupported: reply_r holds the Postfix reply */
	SMTP_PARSE_LIMIT,  /* a configured limit was exceeded: reply_r holds the reply */
};

struct smtp_parse_limits {
	bool smtputf8;      /* RCPT: the MAIL command declared SMTPUTF8 */
	bool auth_active;   /* MAIL: AUTH is offered, so AUTH= is a known parameter */
	bool authenticated; /* MAIL: the session has authenticated */
};

/* Replies are written into a caller buffer of at least this size. */
#define SMTP_REPLY_MAX 600

/* Split line (modified in place) into tokens.  Returns the number of tokens. */
size_t smtp_tokenize(char *line, struct smtp_args *a_r);

/* Postfix is_header(): "Name:" (printable, no space, colon) e.g. "Subject:". */
bool smtp_is_header_name(const char *s);

/* Strict UTF-8 check (what Postfix's smtputf8_enable=yes requires of a command). */
bool smtp_valid_utf8(const char *s, size_t len);

/* MAIL FROM / RCPT TO */
struct smtp_path_req {
	char addr[1024];      /* the address without <> and source route */
	char params[1024];    /* ESMTP parameters as sent, joined by single spaces */
	bool syntax_ok;       /* the "FROM:"/"TO:" part was right (Postfix checks it first) */
	/* MAIL */
	bool has_size;
	uint64_t size;
	bool size_overflow;
	bool smtputf8;
	int body;             /* 0 none, 7 7BIT, 8 8BITMIME */
	/* RCPT */
	bool has_notify, has_orcpt;
};

/* tok[0] is the verb.  On REJECT/LIMIT, reply_r (SMTP_REPLY_MAX bytes) holds the
 * Postfix reply without CRLF.  The message size limit is the engine's business:
 * Postfix compares a SIZE that outlives a failed MAIL, see smtp.c. */
enum smtp_parse_result smtp_parse_mail(const struct smtp_args *a,
				       const struct smtp_parse_limits *lim,
				       struct smtp_path_req *req_r, char *reply_r);
enum smtp_parse_result smtp_parse_rcpt(const struct smtp_args *a,
				       const struct smtp_parse_limits *lim,
				       struct smtp_path_req *req_r, char *reply_r);

/* BDAT count [LAST] */
struct smtp_bdat_req {
	uint64_t count;
	bool last;
};
/* REJECT: "521 5.5.4 Syntax: BDAT count [LAST]"; LIMIT: the count does not fit. */
enum smtp_parse_result smtp_parse_bdat(const struct smtp_args *a,
				       struct smtp_bdat_req *req_r, char *reply_r);

/* Address helpers. */
/* The domain of addr (after the last '@'), or NULL for a bare local part. */
const char *smtp_addr_domain(const char *addr);
/* True when the local part (quotes removed) carries routing operators: '@', '%' or
 * '!' (user%host@us, "user@host"@us, host!user).  Postfix's resolver marks those
 * RESOLVE_FLAG_ROUTED and, with allow_untrusted_routing = no, never treats them as
 * local: they are relay attempts. */
bool smtp_addr_is_routed(const char *addr);
/* True when addr's local part is postmaster (any case) with or without a domain. */
bool smtp_addr_is_postmaster(const char *addr);

#endif
