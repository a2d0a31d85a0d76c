/*
 * imap_parse: the IMAP4rev1 command parser (RFC 3501 section 9 grammar, as Dovecot's
 * imap-parser accepts it), pure functions over attacker bytes.
 *
 * A command arrives framed by the engine as one buffer: the command line with every
 * literal inline exactly as on the wire ("{n}\r\n" or "{n+}\r\n" followed by n bytes),
 * without the final CRLF.  imap_parse_command() splits it into the tag, the command
 * name and a tree of arguments (atoms, quoted strings, literals, parenthesised lists).
 * Atoms keep a "[...]" section whole, spaces and parentheses included, so that
 * BODY.PEEK[HEADER.FIELDS (FROM DATE)]<0.100> is one fetch attribute, as in Dovecot.
 *
 * Promises: never reads outside the buffer; every output is bounded (IMAP_MAX_ARGS
 * nodes, IMAP_MAX_DEPTH list nesting, sequence sets of IMAP_SEQ_MAX_RANGES ranges);
 * argument strings are NUL-terminated copies in the command's own store (a literal
 * may still contain NUL bytes: use len).  The helpers for sequence sets, fetch
 * attributes and dates are here too, so that each can be tested and fuzzed alone.
 */
#ifndef MXB_PROTO_IMAP_PARSE_H
#define MXB_PROTO_IMAP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IMAP_TAG_MAX_LEN 100   /* Dovecot IMAP_TAG_MAX_LEN */
#define IMAP_NAME_MAX_LEN 64
#define IMAP_MAX_ARGS 1024     /* argument nodes per command */
#define IMAP_MAX_DEPTH 16      /* nested parentheses */
#define IMAP_SEQ_MAX_RANGES 256
#define IMAP_FETCH_MAX_PATH 8  /* section part numbers: 1.2.3... */
#define IMAP_FETCH_MAX_FIELDS 32

enum imap_arg_type {
	IMAP_ARG_ATOM,    /* includes NIL: see imap_arg_is_nil() */
	IMAP_ARG_QUOTED,
	IMAP_ARG_LITERAL, /* {n} or {n+} */
	IMAP_ARG_LIST,
};

struct imap_arg {
	enum imap_arg_type type;
	const char *s;          /* NUL-terminated (not for lists) */
	size_t len;
	bool nonsync;           /* literal was {n+} */
	struct imap_arg *child; /* lists: first element */
	size_t n_children;
	struct imap_arg *next;  /* next sibling */
};

struct imap_command {
	char tag[IMAP_TAG_MAX_LEN + 1];
	bool has_tag;           /* a first word was there */
	bool tag_valid;         /* Dovecot's imap_is_valid_tag() and length */
	char name[IMAP_NAME_MAX_LEN + 1]; /* upper-cased, printable ('?' for others) */
	bool has_name;
	struct imap_arg *args;  /* first top-level argument, or NULL */
	size_t n_args;
	const char *error;      /* set when imap_parse_command() fails */
	/* storage */
	struct imap_arg arena[IMAP_MAX_ARGS];
	size_t n_arena;
	char *store;
	size_t store_len, store_cap;
};

/* Parse a framed command (len bytes, no final CRLF).  Returns 0, or -1 with
 * cmd->error set (tag and name are filled as far as they were read).  Release with
 * imap_command_clear() (the struct itself may be reused). */
int imap_parse_command(const char *data, size_t len, struct imap_command *cmd);
void imap_command_clear(struct imap_command *cmd);

/* Dovecot's tag rule: no CTL, 8-bit, SP or any of + ( ) { / % * " \ */
bool imap_tag_valid(const char *tag, size_t len);

/* At the end of a command line (CR/LF removed): "{n}" or "{n+}"?  Returns true and
 * the size; *bad_r when the braces are there but the number is not valid. */
bool imap_line_literal(const char *line, size_t len, uint64_t *size_r, bool *nonsync_r,
		       bool *bad_r);

/* Argument helpers. */
bool imap_arg_is_nil(const struct imap_arg *a);
bool imap_arg_is_atom(const struct imap_arg *a, const char *word); /* case-insensitive */
/* astring: atom, quoted or literal (not a list). */
bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r);
/* string: quoted or literal. */
bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r);

/* Sequence sets (RFC 3501 sequence-set); '*' is stored as UINT32_MAX. */
struct imap_seqset {
	struct {
		uint32_t lo, hi;
	} r[IMAP_SEQ_MAX_RANGES];
	size_t n;
};
int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set);
/* Is n in the set when '*' means star?  (a:b is the same as b:a.) */
bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star);
/* Largest number named, with '*' as star. */
uint32_t imap_seqset_max(const struct imap_seqset *set, uint32_t star);

/* One fetch attribute. */
enum imap_fetch_kind {
	IMAP_FETCH_FLAGS,
	IMAP_FETCH_UID,
	IMAP_FETCH_RFC822_SIZE,
	IMAP_FETCH_INTERNALDATE,
	IMAP_FETCH_ENVELOPE,
	IMAP_FETCH_BODYSTRUCTURE,
	IMAP_FETCH_BODY_NOEXT,   /* BODY without a section */
	IMAP_FETCH_BODY,         /* BODY[...] / BODY.PEEK[...] */
	IMAP_FETCH_RFC822,
	IMAP_FETCH_RFC822_HEADER,
	IMAP_FETCH_RFC822_TEXT,
};

enum imap_section_text {
	IMAP_SECTION_ALL,        /* [] or [1.2] */
	IMAP_SECTION_HEADER,
	IMAP_SECTION_HEADER_FIELDS,
	IMAP_SECTION_HEADER_FIELDS_NOT,
	IMAP_SECTION_TEXT,
	IMAP_SECTION_MIME,
};

struct imap_fetch_att {
	enum imap_fetch_kind kind;
	bool peek;
	unsigned path[IMAP_FETCH_MAX_PATH];
	size_t n_path;
	enum imap_section_text text;
	struct {
		const char *p;
		size_t len;
	} fields[IMAP_FETCH_MAX_FIELDS];
	size_t n_fields;
	bool partial;
	uint32_t partial_start, partial_len;
	/* The section as it goes back to the client ("HEADER.FIELDS (FROM DATE)"),
	 * upper-cased. */
	char section[512];
};

/* Parse one attribute (an atom such as "BODY.PEEK[1.MIME]<0.100>").  The field
 * slices point into s.  Returns 0 or -1. */
int imap_fetch_att_parse(const char *s, size_t len, struct imap_fetch_att *att);

/* "1-Feb-1994" / "01-Feb-1994": midnight UTC of that day.  Returns 0 or -1. */
int imap_parse_date(const char *s, size_t len, int64_t *t_r);
/* RFC 3501 date-time "dd-Mon-yyyy hh:mm:ss +zzzz" (day may start with a space).
 * Returns 0 or -1. */
int imap_parse_datetime(const char *s, size_t len, int64_t *t_r);

#endif
