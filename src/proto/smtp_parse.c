/*
 * smtp_parse: Postfix-compatible tokenizer and MAIL/RCPT/BDAT argument parsers.
 *
 * Pure functions: no allocation, no globals; every output is bounded by the caller's
 * buffers.  Reply texts are those of Postfix 3.7 smtpd (mail_cmd, rcpt_cmd, bdat_cmd).
 */
#include "proto/smtp_parse.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

/* Postfix smtp_quoted(): copy through the closing delimiter, honouring nesting of
 * "..." and <...> and backslash escapes.  Returns the position after it. */
static size_t skip_quoted(const char *line, size_t i, char last, bool *error_r)
{
	char stack[64];
	size_t depth = 0;
	char wanted = last;
	while (line[i] != '\0') {
		char c = line[i++];
		if (c == '\\') {
			if (line[i] == '\0')
				break;
			i++;
		} else if (c == wanted) {
			if (depth == 0)
				return i;
			wanted = stack[--depth];
		} else if (c == '"' && wanted != '"') {
			if (depth < sizeof(stack))
				stack[depth++] = wanted;
			wanted = '"';
		} else if (c == '<' && wanted == '>') {
			if (depth < sizeof(stack))
				stack[depth++] = wanted;
			wanted = '>';
		}
	}
	*error_r = true;
	return i;
}

size_t smtp_tokenize(char *line, struct smtp_args *a_r)
{
	size_t i = 0;
	a_r->n = 0;
	a_r->truncated = false;
	for (;;) {
		while (line[i] != '\0' && is_space((unsigned char)line[i]))
			i++;
		if (line[i] == '\0')
			break;
		size_t start = i;
		bool error = false;
		while (line[i] != '\0' && !is_space((unsigned char)line[i])) {
			char c = line[i++];
			if (c == '<') {
				i = skip_quoted(line, i, '>', &error);
			} else if (c == '"') {
				i = skip_quoted(line, i, '"', &error);
			} else if (c == ':') {
				size_t n = i - start;
				if ((n == 3 && strncasecmp(line + start, "to:", 3) == 0) ||
				    (n == 5 && strncasecmp(line + start, "from:", 5) == 0))
					break;
			} else if (c == '\\') {
				if (line[i] != '\0')
					i++;
			}
		}
		size_t end = i;
		bool at_end = line[i] == '\0';
		if (a_r->n < SMTP_MAX_TOKENS) {
			struct smtp_token *t = &a_r->tok[a_r->n++];
			t->s = line + start;
			t->len = end - start;
			t->error = error;
		} else {
			a_r->truncated = true;
		}
		if (at_end)
			break;
		/* Terminate this token in place; a "FROM:" token may be followed directly
		 * by the next one, so shift nothing: remember the byte and split. */
		if (is_space((unsigned char)line[end])) {
			line[end] = '\0';
			i = end + 1;
		} else {
			/* "FROM:<x>": the next token starts at end.  Make room by noting that
			 * the colon token is fixed-length: copy it out of the line is not
			 * possible in place, so we terminate lazily below. */
			i = end;
		}
	}
	/* Tokens glued to the next ("FROM:<x>") are terminated now that all starts are
	 * known: their length is fixed, so they get a private copy in the tail.  The
	 * only such tokens are "to:" and "from:", which we point at static strings. */
	for (size_t k = 0; k < a_r->n; k++) {
		struct smtp_token *t = &a_r->tok[k];
		if (t->s[t->len] != '\0') {
			if (t->len == 3)
				t->s = (char *)(strncmp(t->s, "TO:", 3) == 0 ? "TO:" : "to:");
			else
				t->s = (char *)(strncmp(t->s, "FROM:", 5) == 0 ? "FROM:" : "from:");
		}
	}
	return a_r->n;
}

bool smtp_is_header_name(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	for (; *p; p++, n++) {
		if (*p == ':')
			return n > 0;
		if (*p < 0x21 || *p > 0x7e)
			return false;
	}
	return false;
}

bool smtp_valid_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned char c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		size_t need;
		unsigned min;
		unsigned cp;
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1; min = 0x80; cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2; min = 0x800; cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3; min = 0x10000; cp = c & 0x07;
		} else {
			return false;
		}
		if (len - i <= need)
			return false;
		for (size_t k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

/* Postfix extract_addr(), simplified to what its replies reveal: strip one <...>,
 * strip a source route, refuse control characters, unquoted spaces and nested
 * brackets, and 8-bit bytes unless SMTPUTF8 was declared. */
enum addr_result { ADDR_OK, ADDR_BAD, ADDR_UTF8 };

static enum addr_result extract_addr(const struct smtp_token *t, bool smtputf8,
				     char *out, size_t outlen)
{
	const char *s = t->s;
	size_t len = t->len;
	if (t->error)
		return ADDR_BAD;
	if (len >= 1 && s[0] == '<') {
		if (len < 2 || s[len - 1] != '>')
			return ADDR_BAD;
		s++;
		len -= 2;
	}
	if (len > 0 && s[0] == '@') {
		const char *colon = memchr(s, ':', len);
		if (!colon)
			return ADDR_BAD;
		len -= (size_t)(colon + 1 - s);
		s = colon + 1;
	}
	if (len + 1 > outlen)
		return ADDR_BAD;
	bool quoted = false;
	bool eight = false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' && i + 1 < len) {
			i++;
			continue;
		}
		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return ADDR_BAD;
		if (c >= 0x80)
			eight = true;
		if (!quoted && (c == ' ' || c == '<' || c == '>' || c == '(' || c == ')' ||
				c == ',' || c == ';'))
			return ADDR_BAD;
	}
	if (quoted)
		return ADDR_BAD;
	if (eight && !smtputf8)
		return ADDR_UTF8;
	memcpy(out, s, len);
	out[len] = '\0';
	return ADDR_OK;
}

static void join_params(const struct smtp_args *a, size_t from, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t k = from; k < a->n; k++) {
		const struct smtp_token *t = &a->tok[k];
		size_t need = t->len + (used ? 1 : 0);
		if (used + need + 1 > outlen)
			break;
		if (used)
			out[used++] = ' ';
		memcpy(out + used, t->s, t->len);
		used += t->len;
		out[used] = '\0';
	}
}

static bool all_digits(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Decimal to uint64 with overflow detection. */
static bool parse_u64(const char *s, uint64_t *v_r)
{
	uint64_t v = 0;
	for (; *s; s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*v_r = v;
	return true;
}

/* RFC 3461 xtext: printable ASCII except '+' and '=', or "+XX" hex. */
static bool valid_xtext(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '+') {
			for (int k = 1; k <= 2; k++) {
				char h = s[k];
				if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F')))
					return false;
			}
			s += 2;
		} else if (c < 0x21 || c > 0x7e || c == '=') {
			return false;
		}
	}
	return true;
}

static void unsupported(char *reply_r, const char *arg)
{
	snprintf(reply_r, SMTP_REPLY_MAX, "555 5.5.4 Unsupported option: %.500s", arg);
}

enum smtp_parse_result smtp_parse_mail(const struct smtp_args *a,
				       const struct smtp_parse_limits *lim,
				       struct smtp_path_req *req_r, char *reply_r)
{
	memset(req_r, 0, sizeof(*req_r));
	if (a->n < 3 || strcasecmp(a->tok[1].s, "from:") != 0) {
		snprintf(reply_r, SMTP_REPLY_MAX, "501 5.5.4 Syntax: MAIL FROM:<address>");
		return SMTP_PARSE_REJECT;
	}
	req_r->syntax_ok = true;
	join_params(a, 3, req_r->params, sizeof(req_r->params));
	/* SMTPUTF8 decides which address syntax is allowed: Postfix scans it first. */
	for (size_t k = 3; k < a->n; k++)
		if (strcasecmp(a->tok[k].s, "SMTPUTF8") == 0)
			req_r->smtputf8 = true;
	switch (extract_addr(&a->tok[2], req_r->smtputf8, req_r->addr, sizeof(req_r->addr))) {
	case ADDR_OK:
		break;
	case ADDR_UTF8:
		snprintf(reply_r, SMTP_REPLY_MAX,
			 "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
		return SMTP_PARSE_REJECT;
	case ADDR_BAD:
		snprintf(reply_r, SMTP_REPLY_MAX, "501 5.1.7 Bad sender address syntax");
		return SMTP_PARSE_REJECT;
	}
	bool seen_ret = false, seen_envid = false, seen_auth = false;
	for (size_t k = 3; k < a->n; k++) {
		const char *arg = a->tok[k].s;
		if (strcasecmp(arg, "BODY=8BITMIME") == 0) {
			req_r->body = 8;
		} else if (strcasecmp(arg, "BODY=7BIT") == 0) {
			req_r->body = 7;
		} else if (strncasecmp(arg, "SIZE=", 5) == 0) {
			if (!all_digits(arg + 5)) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Bad message size syntax");
				return SMTP_PARSE_REJECT;
			}
			req_r->has_size = true;
			if (!parse_u64(arg + 5, &req_r->size) || req_r->size > INT64_MAX) {
				req_r->size_overflow = true;
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "552 5.3.4 Message size exceeds file system imposed limit");
				return SMTP_PARSE_LIMIT;
			}
		} else if (strcasecmp(arg, "SMTPUTF8") == 0) {
			req_r->smtputf8 = true;
		} else if (lim->auth_active && strncasecmp(arg, "AUTH=", 5) == 0) {
			if (seen_auth) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "503 5.5.4 Error: multiple AUTH= options");
				return SMTP_PARSE_REJECT;
			}
			seen_auth = true;
			if (!lim->authenticated) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "503 5.5.4 Error: send AUTH command first");
				return SMTP_PARSE_REJECT;
			}
		} else if (strncasecmp(arg, "RET=", 4) == 0) {
			if (seen_ret) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: multiple RET= options");
				return SMTP_PARSE_REJECT;
			}
			seen_ret = true;
			if (strcasecmp(arg + 4, "FULL") != 0 && strcasecmp(arg + 4, "HDRS") != 0) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Bad RET parameter syntax");
				return SMTP_PARSE_REJECT;
			}
		} else if (strncasecmp(arg, "ENVID=", 6) == 0) {
			if (seen_envid) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: multiple ENVID= options");
				return SMTP_PARSE_REJECT;
			}
			seen_envid = true;
			if (arg[6] == '\0' || !valid_xtext(arg + 6) || strlen(arg + 6) > 100) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Bad ENVID parameter syntax");
				return SMTP_PARSE_REJECT;
			}
		} else {
			unsupported(reply_r, arg);
			return SMTP_PARSE_REJECT;
		}
	}
	return SMTP_PARSE_OK;
}

static bool valid_notify(const char *s)
{
	if (strcasecmp(s, "NEVER") == 0)
		return true;
	if (*s == '\0')
		return false;
	while (*s) {
		const char *comma = strchr(s, ',');
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		if (!((n == 7 && strncasecmp(s, "SUCCESS", 7) == 0) ||
		      (n == 7 && strncasecmp(s, "FAILURE", 7) == 0) ||
		      (n == 5 && strncasecmp(s, "DELAY", 5) == 0)))
			return false;
		if (!comma)
			break;
		s = comma + 1;
		if (*s == '\0')
			return false;
	}
	return true;
}

static bool valid_orcpt(const char *s)
{
	const char *semi = strchr(s, ';');
	if (!semi || semi == s || semi[1] == '\0')
		return false;
	for (const char *p = s; p < semi; p++) {
		char c = *p;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-'))
			return false;
	}
	return valid_xtext(semi + 1);
}

enum smtp_parse_result smtp_parse_rcpt(const struct smtp_args *a,
				       const struct smtp_parse_limits *lim,
				       struct smtp_path_req *req_r, char *reply_r)
{
	memset(req_r, 0, sizeof(*req_r));
	if (a->n < 3 || strcasecmp(a->tok[1].s, "to:") != 0) {
		snprintf(reply_r, SMTP_REPLY_MAX, "501 5.5.4 Syntax: RCPT TO:<address>");
		return SMTP_PARSE_REJECT;
	}
	req_r->syntax_ok = true;
	join_params(a, 3, req_r->params, sizeof(req_r->params));
	switch (extract_addr(&a->tok[2], lim->smtputf8, req_r->addr, sizeof(req_r->addr))) {
	case ADDR_OK:
		if (req_r->addr[0] != '\0')
			break;
		/* the null address is not a recipient */
		snprintf(reply_r, SMTP_REPLY_MAX, "501 5.1.3 Bad recipient address syntax");
		return SMTP_PARSE_REJECT;
	case ADDR_BAD:
		snprintf(reply_r, SMTP_REPLY_MAX, "501 5.1.3 Bad recipient address syntax");
		return SMTP_PARSE_REJECT;
	case ADDR_UTF8:
		snprintf(reply_r, SMTP_REPLY_MAX,
			 "553 5.6.7 Must declare SMTPUTF8 to send unicode address");
		return SMTP_PARSE_REJECT;
	}
	for (size_t k = 3; k < a->n; k++) {
		const char *arg = a->tok[k].s;
		if (strncasecmp(arg, "NOTIFY=", 7) == 0) {
			if (req_r->has_notify) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: multiple NOTIFY= options");
				return SMTP_PARSE_REJECT;
			}
			req_r->has_notify = true;
			if (!valid_notify(arg + 7)) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: Bad NOTIFY parameter syntax");
				return SMTP_PARSE_REJECT;
			}
		} else if (strncasecmp(arg, "ORCPT=", 6) == 0) {
			if (req_r->has_orcpt) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: multiple ORCPT= options");
				return SMTP_PARSE_REJECT;
			}
			req_r->has_orcpt = true;
			if (!valid_orcpt(arg + 6)) {
				snprintf(reply_r, SMTP_REPLY_MAX,
					 "501 5.5.4 Error: Bad ORCPT parameter syntax");
				return SMTP_PARSE_REJECT;
			}
		} else {
			unsupported(reply_r, arg);
			return SMTP_PARSE_REJECT;
		}
	}
	return SMTP_PARSE_OK;
}

enum smtp_parse_result smtp_parse_bdat(const struct smtp_args *a,
				       struct smtp_bdat_req *req_r, char *reply_r)
{
	memset(req_r, 0, sizeof(*req_r));
	if (a->n < 2 || a->n > 3 || a->truncated || !all_digits(a->tok[1].s) ||
	    (a->n == 3 && strcasecmp(a->tok[2].s, "LAST") != 0)) {
		snprintf(reply_r, SMTP_REPLY_MAX, "521 5.5.4 Syntax: BDAT count [LAST]");
		return SMTP_PARSE_REJECT;
	}
	req_r->last = a->n == 3;
	if (!parse_u64(a->tok[1].s, &req_r->count) || req_r->count > INT64_MAX) {
		snprintf(reply_r, SMTP_REPLY_MAX, "552 5.3.4 Chunk exceeds message size limit");
		return SMTP_PARSE_LIMIT;
	}
	return SMTP_PARSE_OK;
}

const char *smtp_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');
	return at ? at + 1 : NULL;
}

bool smtp_addr_is_postmaster(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);
	return n == 10 && strncasecmp(addr, "postmaster", 10) == 0;
}

bool smtp_addr_is_routed(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t n = at ? (size_t)(at - addr) : strlen(addr);
	for (size_t i = 0; i < n; i++) {
		char c = addr[i];
		if (c == '\\' && i + 1 < n) {
			i++;
			if (addr[i] == '@' || addr[i] == '%' || addr[i] == '!')
				return true;
			continue;
		}
		if (c == '@' || c == '%' || c == '!')
			return true;
	}
	return false;
}
