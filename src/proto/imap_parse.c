/*
 * imap_parse: IMAP command, sequence set, fetch attribute and date parsers (see
 * imap_parse.h for what they promise).
 *
 * The grammar is the one Dovecot's imap-parser accepts: SP-separated arguments, lists
 * in parentheses, quoted strings with backslash escapes, {n} and {n+} literals, atoms
 * that keep a "[...]" section whole.  Everything is bounded by the buffer and by the
 * fixed arena; no recursion deeper than IMAP_MAX_DEPTH.
 */
#include "proto/imap_parse.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------ helpers --- */

bool imap_tag_valid(const char *tag, size_t len)
{
	if (len == 0 || len > IMAP_TAG_MAX_LEN)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)tag[i];
		if (c < 0x20 || c >= 0x7f)
			return false;
		switch (c) {
		case '+':
		case '(':
		case ')':
		case '{':
		case '/':
		case ' ':
		case '%':
		case '*':
		case '"':
		case '\\':
			return false;
		default:
			break;
		}
	}
	return true;
}

bool imap_line_literal(const char *line, size_t len, uint64_t *size_r, bool *nonsync_r,
		       bool *bad_r)
{
	*bad_r = false;
	*nonsync_r = false;
	*size_r = 0;
	if (len < 3 || line[len - 1] != '}')
		return false;
	size_t end = len - 1; /* index of '}' */
	size_t i = end;
	if (i > 0 && line[i - 1] == '+') {
		*nonsync_r = true;
		i--;
	}
	size_t digits_end = i;
	while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9')
		i--;
	if (i == 0 || line[i - 1] != '{')
		return false;
	size_t ndig = digits_end - i;
	if (ndig == 0 || ndig > 20) {
		*bad_r = true;
		return true;
	}
	uint64_t v = 0;
	for (size_t k = i; k < digits_end; k++) {
		uint64_t d = (uint64_t)(line[k] - '0');
		if (v > (UINT64_MAX - d) / 10) {
			*bad_r = true;
			return true;
		}
		v = v * 10 + d;
	}
	*size_r = v;
	return true;
}

bool imap_arg_is_nil(const struct imap_arg *a)
{
	return a && a->type == IMAP_ARG_ATOM && a->len == 3 && strcasecmp(a->s, "NIL") == 0;
}

bool imap_arg_is_atom(const struct imap_arg *a, const char *word)
{
	return a && a->type == IMAP_ARG_ATOM && a->len == strlen(word) &&
	       strcasecmp(a->s, word) == 0;
}

bool imap_arg_astring(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (!a || a->type == IMAP_ARG_LIST)
		return false;
	*s_r = a->s;
	*len_r = a->len;
	return true;
}

bool imap_arg_string(const struct imap_arg *a, const char **s_r, size_t *len_r)
{
	if (!a || (a->type != IMAP_ARG_QUOTED && a->type != IMAP_ARG_LITERAL))
		return false;
	*s_r = a->s;
	*len_r = a->len;
	return true;
}

/* ------------------------------------------------------------------ command --- */

struct pstate {
	const char *p;
	size_t len;
	size_t pos;
	struct imap_command *cmd;
	const char *error;
};

static char *store_put(struct imap_command *cmd, const char *s, size_t len)
{
	if (cmd->store_len + len + 1 > cmd->store_cap)
		return NULL; /* cannot happen: store_cap >= input length + args */
	char *dst = cmd->store + cmd->store_len;
	if (len)
		memcpy(dst, s, len);
	dst[len] = '\0';
	cmd->store_len += len + 1;
	return dst;
}

static struct imap_arg *new_arg(struct pstate *ps, enum imap_arg_type type)
{
	struct imap_command *cmd = ps->cmd;
	if (cmd->n_arena >= IMAP_MAX_ARGS) {
		ps->error = "Too many arguments";
		return NULL;
	}
	struct imap_arg *a = &cmd->arena[cmd->n_arena++];
	memset(a, 0, sizeof(*a));
	a->type = type;
	return a;
}

static bool atom_char_bad(unsigned char c)
{
	return c < 0x20 || c == 0x7f || c == '"' || c == '{';
}

static struct imap_arg *parse_atom(struct pstate *ps)
{
	size_t start = ps->pos;
	while (ps->pos < ps->len) {
		unsigned char c = (unsigned char)ps->p[ps->pos];
		if (c == ' ' || c == '(' || c == ')')
			break;
		if (c == '[') {
			/* A section: everything up to the matching ']' belongs to the atom. */
			const char *close = memchr(ps->p + ps->pos, ']', ps->len - ps->pos);
			if (!close) {
				ps->error = "Missing ']'";
				return NULL;
			}
			for (const char *q = ps->p + ps->pos; q < close; q++) {
				unsigned char d = (unsigned char)*q;
				if (d < 0x20 || d == 0x7f) {
					ps->error = "Invalid characters in atom";
					return NULL;
				}
			}
			ps->pos = (size_t)(close - ps->p) + 1;
			continue;
		}
		if (atom_char_bad(c)) {
			ps->error = "Invalid characters in atom";
			return NULL;
		}
		ps->pos++;
	}
	struct imap_arg *a = new_arg(ps, IMAP_ARG_ATOM);
	if (!a)
		return NULL;
	a->len = ps->pos - start;
	a->s = store_put(ps->cmd, ps->p + start, a->len);
	return a;
}

static struct imap_arg *parse_quoted(struct pstate *ps)
{
	ps->pos++; /* opening quote */
	char *dst = ps->cmd->store + ps->cmd->store_len;
	size_t n = 0;
	for (;;) {
		if (ps->pos >= ps->len) {
			ps->error = "Missing '\"'";
			return NULL;
		}
		char c = ps->p[ps->pos++];
		if (c == '"')
			break;
		if (c == '\\') {
			if (ps->pos >= ps->len) {
				ps->error = "Missing '\"'";
				return NULL;
			}
			c = ps->p[ps->pos++];
		}
		if (c == '\r' || c == '\n' || c == '\0') {
			ps->error = "Invalid characters in quoted string";
			return NULL;
		}
		dst[n++] = c;
	}
	struct imap_arg *a = new_arg(ps, IMAP_ARG_QUOTED);
	if (!a)
		return NULL;
	dst[n] = '\0';
	ps->cmd->store_len += n + 1;
	a->s = dst;
	a->len = n;
	return a;
}

static struct imap_arg *parse_literal(struct pstate *ps)
{
	size_t i = ps->pos + 1;
	uint64_t v = 0;
	size_t digits = 0;
	while (i < ps->len && ps->p[i] >= '0' && ps->p[i] <= '9') {
		if (++digits > 19) {
			ps->error = "Invalid literal size";
			return NULL;
		}
		v = v * 10 + (uint64_t)(ps->p[i] - '0');
		i++;
	}
	bool nonsync = false;
	if (i < ps->len && ps->p[i] == '+') {
		nonsync = true;
		i++;
	}
	if (digits == 0 || i + 3 > ps->len || ps->p[i] != '}' || ps->p[i + 1] != '\r' ||
	    ps->p[i + 2] != '\n') {
		ps->error = "Invalid literal";
		return NULL;
	}
	i += 3;
	if (v > ps->len - i) {
		ps->error = "Literal not complete";
		return NULL;
	}
	struct imap_arg *a = new_arg(ps, IMAP_ARG_LITERAL);
	if (!a)
		return NULL;
	a->len = (size_t)v;
	a->nonsync = nonsync;
	a->s = store_put(ps->cmd, ps->p + i, a->len);
	ps->pos = i + a->len;
	return a;
}

/* Arguments until the end (depth 0) or the closing ')'.  Returns the first. */
static struct imap_arg *parse_args(struct pstate *ps, unsigned depth, size_t *n_r, bool *ok_r)
{
	struct imap_arg *first = NULL, *last = NULL;
	size_t n = 0;
	*ok_r = false;
	for (;;) {
		/* separators: one or more spaces (Dovecot tolerates extra ones) */
		bool had_space = false;
		while (ps->pos < ps->len && ps->p[ps->pos] == ' ') {
			ps->pos++;
			had_space = true;
		}
		if (ps->pos >= ps->len) {
			if (depth > 0) {
				ps->error = "Missing ')'";
				return NULL;
			}
			break;
		}
		char c = ps->p[ps->pos];
		if (c == ')') {
			if (depth == 0) {
				ps->error = "Unexpected ')'";
				return NULL;
			}
			ps->pos++;
			break;
		}
		if (n > 0 && !had_space && last && last->type != IMAP_ARG_LIST && c != '(') {
			ps->error = "Missing space";
			return NULL;
		}
		struct imap_arg *a;
		if (c == '(') {
			if (depth + 1 > IMAP_MAX_DEPTH) {
				ps->error = "Too deep list nesting";
				return NULL;
			}
			a = new_arg(ps, IMAP_ARG_LIST);
			if (!a)
				return NULL;
			ps->pos++;
			bool ok;
			a->child = parse_args(ps, depth + 1, &a->n_children, &ok);
			if (!ok)
				return NULL;
		} else if (c == '"') {
			a = parse_quoted(ps);
		} else if (c == '{') {
			a = parse_literal(ps);
		} else {
			a = parse_atom(ps);
		}
		if (!a)
			return NULL;
		if (last)
			last->next = a;
		else
			first = a;
		last = a;
		n++;
	}
	*n_r = n;
	*ok_r = true;
	return first;
}

void imap_command_clear(struct imap_command *cmd)
{
	free(cmd->store);
	cmd->store = NULL;
	cmd->store_len = cmd->store_cap = 0;
	cmd->n_arena = 0;
	cmd->args = NULL;
	cmd->n_args = 0;
}

int imap_parse_command(const char *data, size_t len, struct imap_command *cmd)
{
	free(cmd->store);
	memset(cmd->tag, 0, sizeof(cmd->tag));
	cmd->has_tag = cmd->tag_valid = cmd->has_name = false;
	cmd->name[0] = '\0';
	cmd->args = NULL;
	cmd->n_args = 0;
	cmd->error = NULL;
	cmd->n_arena = 0;
	cmd->store_len = 0;
	/* Every argument's bytes come from the input, plus one NUL each. */
	cmd->store_cap = len + IMAP_MAX_ARGS + 1;
	cmd->store = malloc(cmd->store_cap);
	if (!cmd->store) {
		cmd->store_cap = 0;
		cmd->error = "Out of memory";
		return -1;
	}

	/* tag: the first word (Dovecot imap_parser_read_word: up to SP) */
	size_t pos = 0;
	while (pos < len && data[pos] != ' ')
		pos++;
	if (pos > 0) {
		cmd->has_tag = true;
		cmd->tag_valid = imap_tag_valid(data, pos);
		if (cmd->tag_valid)
			memcpy(cmd->tag, data, pos);
	}
	if (pos >= len) {
		cmd->error = "Missing command name";
		return -1;
	}
	pos++; /* SP */
	size_t nstart = pos;
	while (pos < len && data[pos] != ' ')
		pos++;
	size_t nlen = pos - nstart;
	if (nlen == 0) {
		cmd->error = "Missing command name";
		return -1;
	}
	cmd->has_name = true;
	size_t keep = nlen < IMAP_NAME_MAX_LEN ? nlen : IMAP_NAME_MAX_LEN;
	for (size_t i = 0; i < keep; i++) {
		unsigned char c = (unsigned char)data[nstart + i];
		cmd->name[i] = (c < 0x21 || c >= 0x7f) ? '?' : (char)toupper(c);
	}
	cmd->name[keep] = '\0';
	if (pos < len)
		pos++; /* SP before the arguments */

	struct pstate ps = {.p = data, .len = len, .pos = pos, .cmd = cmd};
	bool ok;
	cmd->args = parse_args(&ps, 0, &cmd->n_args, &ok);
	if (!ok) {
		cmd->args = NULL;
		cmd->n_args = 0;
		cmd->error = ps.error ? ps.error : "Invalid arguments";
		return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- sequence set --- */

static int seq_number(const char *s, size_t len, size_t *pos, uint32_t *v_r)
{
	if (*pos < len && s[*pos] == '*') {
		(*pos)++;
		*v_r = UINT32_MAX;
		return 0;
	}
	uint64_t v = 0;
	size_t start = *pos;
	while (*pos < len && s[*pos] >= '0' && s[*pos] <= '9') {
		v = v * 10 + (uint64_t)(s[*pos] - '0');
		if (v > 0xffffffffULL - 1)
			return -1; /* nz-number fits uint32; UINT32_MAX is '*' */
		(*pos)++;
	}
	if (*pos == start || v == 0 || s[start] == '0')
		return -1;
	*v_r = (uint32_t)v;
	return 0;
}

int imap_seqset_parse(const char *s, size_t len, struct imap_seqset *set)
{
	set->n = 0;
	size_t pos = 0;
	if (len == 0)
		return -1;
	for (;;) {
		uint32_t a, b;
		if (seq_number(s, len, &pos, &a) < 0)
			return -1;
		b = a;
		if (pos < len && s[pos] == ':') {
			pos++;
			if (seq_number(s, len, &pos, &b) < 0)
				return -1;
		}
		if (set->n >= IMAP_SEQ_MAX_RANGES)
			return -1;
		set->r[set->n].lo = a < b ? a : b;
		set->r[set->n].hi = a < b ? b : a;
		set->n++;
		if (pos == len)
			return 0;
		if (s[pos] != ',')
			return -1;
		pos++;
	}
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n, uint32_t star)
{
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == UINT32_MAX ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == UINT32_MAX ? star : set->r[i].hi;
		if (lo > hi) {
			uint32_t t = lo;
			lo = hi;
			hi = t;
		}
		if (n >= lo && n <= hi)
			return true;
	}
	return false;
}

uint32_t imap_seqset_max(const struct imap_seqset *set, uint32_t star)
{
	uint32_t m = 0;
	for (size_t i = 0; i < set->n; i++) {
		uint32_t lo = set->r[i].lo == UINT32_MAX ? star : set->r[i].lo;
		uint32_t hi = set->r[i].hi == UINT32_MAX ? star : set->r[i].hi;
		if (lo > m)
			m = lo;
		if (hi > m)
			m = hi;
	}
	return m;
}

/* ------------------------------------------------------------ fetch attribute --- */

static bool word_eq(const char *s, size_t len, const char *w)
{
	return len == strlen(w) && strncasecmp(s, w, len) == 0;
}

/* The inside of [...]: part numbers, then HEADER / HEADER.FIELDS[.NOT] (list) /
 * TEXT / MIME. */
static int parse_section(const char *s, size_t len, struct imap_fetch_att *att)
{
	size_t pos = 0;
	att->n_path = 0;
	att->text = IMAP_SECTION_ALL;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
		uint64_t v = 0;
		size_t start = pos;
		while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
			v = v * 10 + (uint64_t)(s[pos] - '0');
			if (v > 100000)
				return -1;
			pos++;
		}
		if (v == 0 || s[start] == '0' || att->n_path >= IMAP_FETCH_MAX_PATH)
			return -1;
		att->path[att->n_path++] = (unsigned)v;
		if (pos == len)
			return 0;
		if (s[pos] != '.')
			return -1;
		pos++;
		if (pos == len)
			return -1;
	}
	if (pos == len)
		return 0;
	size_t wstart = pos;
	while (pos < len && s[pos] != ' ')
		pos++;
	const char *w = s + wstart;
	size_t wl = pos - wstart;
	if (word_eq(w, wl, "HEADER")) {
		att->text = IMAP_SECTION_HEADER;
	} else if (word_eq(w, wl, "TEXT")) {
		att->text = IMAP_SECTION_TEXT;
	} else if (word_eq(w, wl, "MIME")) {
		if (att->n_path == 0)
			return -1;
		att->text = IMAP_SECTION_MIME;
	} else if (word_eq(w, wl, "HEADER.FIELDS") || word_eq(w, wl, "HEADER.FIELDS.NOT")) {
		att->text = wl == 13 ? IMAP_SECTION_HEADER_FIELDS : IMAP_SECTION_HEADER_FIELDS_NOT;
		if (pos + 2 > len || s[pos] != ' ' || s[pos + 1] != '(')
			return -1;
		pos += 2;
		att->n_fields = 0;
		for (;;) {
			while (pos < len && s[pos] == ' ')
				pos++;
			if (pos >= len)
				return -1;
			if (s[pos] == ')') {
				pos++;
				break;
			}
			size_t fs = pos;
			/* header names: printable, no ':' (RFC 5322 ftext), or quoted */
			bool quoted = s[pos] == '"';
			if (quoted) {
				pos++;
				fs = pos;
				while (pos < len && s[pos] != '"')
					pos++;
				if (pos >= len)
					return -1;
			} else {
				while (pos < len && s[pos] != ' ' && s[pos] != ')') {
					unsigned char c = (unsigned char)s[pos];
					if (c <= 0x20 || c >= 0x7f || c == ':' || c == '(')
						return -1;
					pos++;
				}
			}
			if (pos == fs || att->n_fields >= IMAP_FETCH_MAX_FIELDS)
				return -1;
			att->fields[att->n_fields].p = s + fs;
			att->fields[att->n_fields].len = pos - fs;
			att->n_fields++;
			if (quoted)
				pos++;
		}
		if (att->n_fields == 0)
			return -1;
	} else {
		return -1;
	}
	return pos == len ? 0 : -1;
}

static int parse_partial(const char *s, size_t len, struct imap_fetch_att *att)
{
	/* "<start.count>" */
	if (len < 5 || s[0] != '<' || s[len - 1] != '>')
		return -1;
	uint64_t a = 0, b = 0;
	size_t pos = 1;
	size_t st = pos;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
		a = a * 10 + (uint64_t)(s[pos] - '0');
		if (a > UINT32_MAX)
			return -1;
		pos++;
	}
	if (pos == st || s[pos] != '.')
		return -1;
	pos++;
	st = pos;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9') {
		b = b * 10 + (uint64_t)(s[pos] - '0');
		if (b > UINT32_MAX)
			return -1;
		pos++;
	}
	if (pos == st || pos != len - 1 || b == 0)
		return -1;
	att->partial = true;
	att->partial_start = (uint32_t)a;
	att->partial_len = (uint32_t)b;
	return 0;
}

int imap_fetch_att_parse(const char *s, size_t len, struct imap_fetch_att *att)
{
	memset(att, 0, sizeof(*att));
	static const struct {
		const char *name;
		enum imap_fetch_kind kind;
	} simple[] = {
		{"FLAGS", IMAP_FETCH_FLAGS},
		{"UID", IMAP_FETCH_UID},
		{"RFC822.SIZE", IMAP_FETCH_RFC822_SIZE},
		{"INTERNALDATE", IMAP_FETCH_INTERNALDATE},
		{"ENVELOPE", IMAP_FETCH_ENVELOPE},
		{"BODYSTRUCTURE", IMAP_FETCH_BODYSTRUCTURE},
		{"BODY", IMAP_FETCH_BODY_NOEXT},
		{"RFC822", IMAP_FETCH_RFC822},
		{"RFC822.HEADER", IMAP_FETCH_RFC822_HEADER},
		{"RFC822.TEXT", IMAP_FETCH_RFC822_TEXT},
	};
	for (size_t i = 0; i < sizeof(simple) / sizeof(simple[0]); i++) {
		if (word_eq(s, len, simple[i].name)) {
			att->kind = simple[i].kind;
			return 0;
		}
	}
	size_t pre;
	if (len >= 10 && strncasecmp(s, "BODY.PEEK[", 10) == 0) {
		att->peek = true;
		pre = 10;
	} else if (len >= 5 && strncasecmp(s, "BODY[", 5) == 0) {
		pre = 5;
	} else {
		return -1;
	}
	att->kind = IMAP_FETCH_BODY;
	const char *close = memchr(s + pre, ']', len - pre);
	if (!close)
		return -1;
	size_t slen = (size_t)(close - (s + pre));
	if (slen >= sizeof(att->section))
		return -1;
	if (parse_section(s + pre, slen, att) < 0)
		return -1;
	for (size_t i = 0; i < slen; i++)
		att->section[i] = (char)toupper((unsigned char)s[pre + i]);
	att->section[slen] = '\0';
	size_t rest = (size_t)(close - s) + 1;
	if (rest == len)
		return 0;
	return parse_partial(s + rest, len - rest, att);
}

/* --------------------------------------------------------------------- dates --- */

static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
				       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days since the epoch for a civil date (proleptic Gregorian). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

static int parse_dmy(const char *s, size_t len, size_t *pos_r, int64_t *days_r)
{
	size_t pos = 0;
	unsigned d = 0;
	size_t nd = 0;
	if (pos < len && s[pos] == ' ')
		pos++;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9' && nd < 2) {
		d = d * 10 + (unsigned)(s[pos] - '0');
		pos++;
		nd++;
	}
	if (nd == 0 || d < 1 || d > 31 || pos >= len || s[pos] != '-')
		return -1;
	pos++;
	if (pos + 4 > len)
		return -1;
	int m = -1;
	for (int i = 0; i < 12; i++)
		if (strncasecmp(s + pos, months[i], 3) == 0)
			m = i;
	if (m < 0 || s[pos + 3] != '-')
		return -1;
	pos += 4;
	unsigned y = 0;
	size_t ny = 0;
	while (pos < len && s[pos] >= '0' && s[pos] <= '9' && ny < 4) {
		y = y * 10 + (unsigned)(s[pos] - '0');
		pos++;
		ny++;
	}
	if (ny != 4)
		return -1;
	*days_r = days_from_civil(y, (unsigned)m + 1, d);
	*pos_r = pos;
	return 0;
}

int imap_parse_date(const char *s, size_t len, int64_t *t_r)
{
	size_t pos;
	int64_t days;
	if (parse_dmy(s, len, &pos, &days) < 0 || pos != len)
		return -1;
	*t_r = days * 86400;
	return 0;
}

int imap_parse_datetime(const char *s, size_t len, int64_t *t_r)
{
	size_t pos;
	int64_t days;
	if (parse_dmy(s, len, &pos, &days) < 0)
		return -1;
	/* " hh:mm:ss +zzzz" */
	if (len - pos != 15)
		return -1;
	const char *t = s + pos;
	if (t[0] != ' ' || t[3] != ':' || t[6] != ':' || t[9] != ' ' ||
	    (t[10] != '+' && t[10] != '-'))
		return -1;
	const int idx[] = {1, 2, 4, 5, 7, 8, 11, 12, 13, 14};
	for (size_t i = 0; i < sizeof(idx) / sizeof(idx[0]); i++)
		if (t[idx[i]] < '0' || t[idx[i]] > '9')
			return -1;
	int hh = (t[1] - '0') * 10 + (t[2] - '0');
	int mm = (t[4] - '0') * 10 + (t[5] - '0');
	int ss = (t[7] - '0') * 10 + (t[8] - '0');
	int zh = (t[11] - '0') * 10 + (t[12] - '0');
	int zm = (t[13] - '0') * 10 + (t[14] - '0');
	if (hh > 23 || mm > 59 || ss > 60 || zm > 59)
		return -1;
	int64_t off = (int64_t)(zh * 3600 + zm * 60) * (t[10] == '-' ? -1 : 1);
	*t_r = days * 86400 + hh * 3600 + mm * 60 + ss - off;
	return 0;
}
