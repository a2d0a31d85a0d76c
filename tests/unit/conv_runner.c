/*
 * conv_runner: the one conversation runner and session driver (see the header; the
 * .conv format is documented in docs/testing.md).
 */
#include "conv_runner.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "util/buf.h"

/* ------------------------------------------------------------ protocols --- */

struct conv_proto {
	const char *name;
	const struct proto_engine *engine;
	const char *listeners[4];  /* words for "# connect:"; NULL-terminated */
	const char *hostname;      /* <HOST> */
	const char *domain;        /* <DOMAIN> */
	const char *peer_ip;
	const char *accounts;      /* the fixed accounts unless accounts= says */
	const uint8_t *secret;     /* 32 bytes, mailbox generation */
	bool captures_messages;    /* commit:, msgopen:, write-budget:, expect-body ... */
	bool whole_lines;          /* every reply ends in CRLF (checked at the end) */
	bool errors_bounded;       /* errors <= commands + 1 (checked at the end) */
};

static const uint8_t imap_secret[32] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
					 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
static const uint8_t pop3_secret[32] = {0x6d, 0x78, 0x62, 0x61, 0x69, 0x74};

enum { P_SMTP, P_IMAP, P_POP3 };

static const struct conv_proto protos[] = {
	[P_SMTP] = {"smtp", &smtp_engine, {"smtp", "submission", "smtps", NULL},
		    "mail.example.com", "example.com", "192.0.2.7", "alice:alice-Secret-1",
		    NULL, true, false, false},
	[P_IMAP] = {"imap", &imap_engine, {"imap", "imaps", NULL}, "mail.example.test",
		    "example.test", "198.51.100.7", "alice:alice-Secret-1", imap_secret, true,
		    false, false},
	[P_POP3] = {"pop3", &pop3_engine, {"pop3", "pop3s", NULL}, "mail.example.test",
		    "example.test", "192.0.2.9", "alice:alice-Secret-1", pop3_secret, false,
		    true, true},
};

static size_t proto_index(const struct conv_proto *p)
{
	return (size_t)(p - protos);
}

/* Implicit TLS: smtps, imaps, pop3s (the last listener word of each). */
static bool implicit_tls(const struct conv_session *s)
{
	return s->listener > 0 && s->proto->listeners[s->listener + 1] == NULL;
}

/* ------------------------------------------------------------- settings --- */

enum kind { K_BOOL, K_UINT, K_SIZE, K_U64 };

struct setting {
	unsigned proto;
	const char *key;
	enum kind kind;
	size_t off; /* in struct conv_session */
};

#define S_OFF(f) offsetof(struct conv_session, f)
static const struct setting settings[] = {
	{P_SMTP, "tls", K_BOOL, S_OFF(cfg.smtp.tls_available)},
	{P_SMTP, "vrfy", K_BOOL, S_OFF(cfg.smtp.vrfy_enabled)},
	{P_SMTP, "auth_on_mx", K_BOOL, S_OFF(cfg.smtp.auth_on_mx)},
	{P_SMTP, "cram", K_BOOL, S_OFF(cfg.smtp.cram_md5)},
	{P_SMTP, "catch_all", K_BOOL, S_OFF(cfg.smtp.catch_all)},
	{P_SMTP, "size", K_U64, S_OFF(cfg.smtp.message_size_limit)},
	{P_SMTP, "rcpt_limit", K_UINT, S_OFF(cfg.smtp.recipient_limit)},
	{P_SMTP, "cmd_limit", K_UINT, S_OFF(cfg.smtp.command_limit)},
	{P_SMTP, "soft", K_UINT, S_OFF(cfg.smtp.soft_error_limit)},
	{P_SMTP, "hard", K_UINT, S_OFF(cfg.smtp.hard_error_limit)},
	{P_SMTP, "sleep", K_UINT, S_OFF(cfg.smtp.error_sleep_ms)},
	{P_SMTP, "authdelay", K_UINT, S_OFF(cfg.smtp.auth_failure_delay_ms)},
	{P_SMTP, "line", K_SIZE, S_OFF(cfg.smtp.line_length_limit)},
	{P_IMAP, "tls", K_BOOL, S_OFF(cfg.imap.tls_available)},
	{P_IMAP, "bad_limit", K_UINT, S_OFF(cfg.imap.bad_command_limit)},
	{P_IMAP, "literal_max", K_SIZE, S_OFF(cfg.imap.literal_max)},
	{P_IMAP, "line_max", K_SIZE, S_OFF(cfg.imap.line_length_limit)},
	{P_IMAP, "delay", K_UINT, S_OFF(cfg.imap.auth_failure_delay_ms)},
	{P_IMAP, "penalty", K_UINT, S_OFF(cfg.imap.auth_penalty_max_ms)},
	{P_IMAP, "session_memory", K_SIZE, S_OFF(cfg.imap.session_memory)},
	{P_IMAP, "memory_budget", K_U64, S_OFF(memory.limit)},
	{P_POP3, "tls_available", K_BOOL, S_OFF(cfg.pop3.tls_available)},
	{P_POP3, "allow_plaintext", K_BOOL, S_OFF(cfg.pop3.allow_plaintext)},
	{P_POP3, "delay", K_UINT, S_OFF(cfg.pop3.auth_failure_delay_ms)},
	{P_POP3, "penalty", K_BOOL, S_OFF(cfg.pop3.auth_penalty)},
	{P_POP3, "bad_limit", K_UINT, S_OFF(cfg.pop3.bad_command_limit)},
	{P_POP3, "bad_limit_auth", K_UINT, S_OFF(cfg.pop3.bad_command_limit_auth)},
	{P_POP3, "line_limit", K_SIZE, S_OFF(cfg.pop3.line_length_limit)},
	{P_POP3, "command_limit", K_UINT, S_OFF(cfg.pop3.command_limit)},
};

static void default_config(struct conv_session *s)
{
	const struct conv_proto *p = s->proto;
	memset(&s->cfg, 0, sizeof(s->cfg));
	switch (proto_index(p)) {
	case P_SMTP:
		s->cfg.smtp.hostname = p->hostname;
		s->cfg.smtp.role = (enum smtp_role)s->listener; /* MX, submission, smtps */
		s->cfg.smtp.tls_available = true;
		s->cfg.smtp.line_length_limit = 2048;
		s->cfg.smtp.message_size_limit = 10240000;
		s->cfg.smtp.recipient_limit = 1000;
		s->cfg.smtp.soft_error_limit = 10;
		s->cfg.smtp.hard_error_limit = 20;
		s->cfg.smtp.error_sleep_ms = 1000;
		s->cfg.smtp.auth_failure_delay_ms = 2000;
		break;
	case P_IMAP:
		s->cfg.imap.hostname = p->hostname;
		s->cfg.imap.domain = p->domain;
		s->cfg.imap.tls_available = true;
		s->cfg.imap.auth_failure_delay_ms = 2000;
		break;
	case P_POP3:
		s->cfg.pop3.hostname = p->hostname;
		s->cfg.pop3.domain = p->domain;
		s->cfg.pop3.tls_available = true;
		s->cfg.pop3.auth_failure_delay_ms = 2000;
		break;
	}
}

bool conv_session_setup(struct conv_session *s, const char *listener, char *err,
			size_t errlen)
{
	memset(s, 0, sizeof(*s));
	for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
		for (unsigned l = 0; protos[i].listeners[l]; l++)
			if (strcmp(listener, protos[i].listeners[l]) == 0) {
				s->proto = &protos[i];
				s->listener = l;
			}
	if (!s->proto) {
		snprintf(err, errlen, "no listener \"%s\"", listener);
		return false;
	}
	default_config(s);
	snprintf(s->domains_text, sizeof(s->domains_text), "%s", s->proto->domain);
	snprintf(s->accounts_text, sizeof(s->accounts_text), "%s", s->proto->accounts);
	snprintf(s->ip, sizeof(s->ip), "%s", s->proto->peer_ip);
	if (s->proto->secret)
		memcpy(s->secret, s->proto->secret, sizeof(s->secret));
	snprintf(s->user, sizeof(s->user), "alice");
	return true;
}

static bool parse_number(const char *v, uint64_t *n_r)
{
	if (!*v || !isdigit((unsigned char)*v))
		return false;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	*n_r = n;
	return *end == '\0';
}

/* secret=none (the engine's zeros) or up to 64 hex digits, zero-padded. */
static bool set_secret(struct conv_session *s, const char *v)
{
	memset(s->secret, 0, sizeof(s->secret));
	s->no_secret = strcmp(v, "none") == 0;
	if (s->no_secret)
		return true;
	size_t n = strlen(v);
	if (n % 2 || n > 64)
		return false;
	for (size_t i = 0; i < n / 2; i++) {
		unsigned b;
		if (!isxdigit((unsigned char)v[2 * i]) || !isxdigit((unsigned char)v[2 * i + 1]) ||
		    sscanf(v + 2 * i, "%2x", &b) != 1)
			return false;
		s->secret[i] = (uint8_t)b;
	}
	return true;
}

bool conv_session_set(struct conv_session *s, const char *key, const char *value,
		      char *err, size_t errlen)
{
	/* the host's side, the same for every protocol */
	if (strcmp(key, "accounts") == 0) {
		snprintf(s->accounts_text, sizeof(s->accounts_text), "%s",
			 strcmp(value, "none") ? value : "");
		return true;
	}
	if (strcmp(key, "ip") == 0) {
		snprintf(s->ip, sizeof(s->ip), "%s", value);
		return true;
	}
	if (strcmp(key, "rdns") == 0) {
		snprintf(s->rdns, sizeof(s->rdns), "%s", value);
		return true;
	}
	if (strcmp(key, "user") == 0) {
		snprintf(s->user, sizeof(s->user), "%s", value);
		return true;
	}
	if (strcmp(key, "secret") == 0) {
		if (set_secret(s, value))
			return true;
		snprintf(err, errlen, "secret: \"none\" or hex bytes, not %s", value);
		return false;
	}
	if (strcmp(key, "domains") == 0 && proto_index(s->proto) == P_SMTP) {
		snprintf(s->domains_text, sizeof(s->domains_text), "%s", value);
		return true;
	}
	for (size_t i = 0; i < sizeof(settings) / sizeof(settings[0]); i++) {
		const struct setting *t = &settings[i];
		if (t->proto != proto_index(s->proto) || strcmp(t->key, key) != 0)
			continue;
		uint64_t n;
		if (!parse_number(value, &n)) {
			snprintf(err, errlen, "%s: not a number: %s", key, value);
			return false;
		}
		/* memcpy: the field's address is computed from a byte offset */
		char *f = (char *)s + t->off;
		bool b = n != 0;
		unsigned u = n > UINT32_MAX ? UINT32_MAX : (unsigned)n;
		size_t z = (size_t)n;
		switch (t->kind) {
		case K_BOOL:
			memcpy(f, &b, sizeof(b));
			break;
		case K_UINT:
			memcpy(f, &u, sizeof(u));
			break;
		case K_SIZE:
			memcpy(f, &z, sizeof(z));
			break;
		case K_U64:
			memcpy(f, &n, sizeof(n));
			break;
		}
		return true;
	}
	snprintf(err, errlen, "no setting \"%s\" for %s", key, s->proto->name);
	return false;
}

bool conv_session_set_num(struct conv_session *s, const char *key, uint64_t value)
{
	char v[32], err[128];
	snprintf(v, sizeof(v), "%llu", (unsigned long long)value);
	return conv_session_set(s, key, v, err, sizeof(err));
}

const char *conv_session_proto_name(const struct conv_session *s)
{
	return s->proto->name;
}

const char *conv_session_hostname(const struct conv_session *s)
{
	return s->proto->hostname;
}

const char *conv_session_domain(const struct conv_session *s)
{
	return s->proto->domain;
}

/* ------------------------------------------------------------- sessions --- */

bool conv_session_start(struct conv_session *s)
{
	snprintf(s->accounts_copy, sizeof(s->accounts_copy), "%s", s->accounts_text);
	s->n_accounts = 0;
	char *save = NULL;
	for (char *t = strtok_r(s->accounts_copy, ",", &save);
	     t && s->n_accounts < sizeof(s->accounts) / sizeof(s->accounts[0]);
	     t = strtok_r(NULL, ",", &save))
		s->accounts[s->n_accounts++] = t;
	s->auth = auth_static_new(s->accounts, s->n_accounts);
	const uint8_t *secret = s->no_secret ? NULL : s->secret;
	bool implicit = implicit_tls(s);
	switch (proto_index(s->proto)) {
	case P_SMTP: {
		size_t n = 0;
		save = NULL;
		for (char *t = strtok_r(s->domains_text, ",", &save);
		     t && n < sizeof(s->domains) / sizeof(s->domains[0]);
		     t = strtok_r(NULL, ",", &save))
			s->domains[n++] = t;
		s->cfg.smtp.local_domains = s->domains;
		s->cfg.smtp.n_local_domains = n;
		s->cfg.smtp.auth = s->auth;
		break;
	}
	case P_IMAP:
		s->cfg.imap.implicit_tls = implicit;
		s->cfg.imap.auth = s->auth;
		s->cfg.imap.secret = secret;
		s->cfg.imap.memory = &s->memory;
		break;
	case P_POP3:
		s->cfg.pop3.implicit_tls = implicit;
		s->cfg.pop3.auth = s->auth;
		s->cfg.pop3.secret = secret;
		break;
	}
	struct proto_peer peer = {.ip = s->ip, .port = 40000, .rdns = s->rdns[0] ? s->rdns : NULL};
	s->started = fake_host_start(&s->h, s->proto->engine, &s->cfg, &peer, implicit);
	return s->started;
}

void conv_session_write(struct conv_session *s, const char *data, size_t len, size_t step)
{
	for (size_t pos = 0; pos < len && !s->h.closed;) {
		size_t n = len - pos;
		if (step && n > step)
			n = step;
		fake_host_drive(&s->h, data + pos, n);
		pos += n;
	}
}

static bool broken(char *why, size_t whylen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static bool broken(char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	return false;
}

bool conv_session_finish(struct conv_session *s, const char *hangup_reason, char *why,
			 size_t whylen)
{
	bool ok = true;
	why[0] = '\0';
	if (s->started) {
		const struct proto_engine *e = s->proto->engine;
		struct fake_host *h = &s->h;
		struct proto_counters c;
		e->counters(h->s, &c);
		(void)e->state_name(h->s);
		(void)e->auth_user(h->s);
		if (c.messages != h->commits)
			ok = broken(why, whylen, "%u messages counted, %u committed", c.messages,
				    h->commits);
		if (ok && s->proto->errors_bounded && c.errors > c.commands + 1)
			ok = broken(why, whylen, "%u errors for %u commands", c.errors, c.commands);
		if (ok && s->proto->whole_lines && h->out.len > 0 &&
		    (h->out.len < 2 || memcmp(h->out.data + h->out.len - 2, "\r\n", 2) != 0))
			ok = broken(why, whylen, "the replies end inside a line");
		if (hangup_reason)
			e->hangup(h->s, hangup_reason);
		char err[256];
		if (ok && !fake_host_check_schema(h, err, sizeof(err)))
			ok = broken(why, whylen, "event outside docs/events.md: %s", err);
		e->destroy(h->s);
		h->s = NULL;
		h->owned = false;
		/* every message the engine opened was committed or aborted (one whose
		 * commit the host had not answered yet is the host's to release) */
		if (ok && h->msg_open && !h->want_commit)
			ok = broken(why, whylen, "a message was left open");
		if (ok && (s->memory.used != 0 ||
			   (s->memory.limit && s->memory.peak > s->memory.limit)))
			ok = broken(why, whylen, "memory budget: %llu bytes kept, peak %llu of %llu",
				    (unsigned long long)s->memory.used,
				    (unsigned long long)s->memory.peak,
				    (unsigned long long)s->memory.limit);
		fake_host_free(h);
	}
	auth_policy_free(&s->auth);
	s->started = false;
	return ok;
}

/* ============================================================ .conv files === */

#define PAT_ESC '\x01' /* in expected text: a wildcard follows (or a literal \x01) */

struct setting_line {
	char *key, *value;
	int lineno;
};

struct run {
	const char *name;
	int lineno;
	bool failed;
	const char *default_listener;
	struct setting_line cfg[64];
	size_t n_cfg;
	struct conv_session s;
	bool have_session; /* s is set up (started or failed to start) */
	struct buf expect;  /* S: lines as a pattern (PAT_ESC wildcards) */
	struct buf pending; /* C: bytes not written yet */
	size_t exp_done, out_done; /* compared so far */
	unsigned wait_seen;
	unsigned qid_next;
	struct mbox_set *mbox;
};

static void fail_at(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_at(struct run *r, const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s:%d: ", r->name, r->lineno);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	r->failed = true;
}

/* Bytes as .conv text (\r, \xHH), a line break after each \n, wildcards by name. */
static void show(const char *label, const char *p, size_t len, bool pattern)
{
	fprintf(stderr, "  %s (%zu bytes):\n    ", label, len);
	size_t shown = len < 8000 ? len : 8000;
	for (size_t i = 0; i < shown; i++) {
		unsigned char c = (unsigned char)p[i];
		if (pattern && c == PAT_ESC && i + 1 < len) {
			static const char *const names[] = {"<ANY>", "<NUM>", "<TIMING>", "<ANYLINES>"};
			const char *codes = "ANTL";
			const char *k = strchr(codes, p[++i]);
			if (k)
				fputs(names[k - codes], stderr);
			else
				fputs("\\x01", stderr);
		} else if (c == '\r')
			fputs("\\r", stderr);
		else if (c == '\n')
			fputs(i + 1 < shown ? "\\n\n    " : "\\n", stderr);
		else if (c == '\\')
			fputs("\\\\", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputc('\n', stderr);
}

/* ------------------------------------------------------------ decoding --- */

static const struct mbox_folder *inbox(struct run *r)
{
	if (!r->mbox)
		r->mbox = mailbox_generate(r->s.user, conv_session_domain(&r->s),
					   conv_session_hostname(&r->s),
					   r->s.no_secret ? (const uint8_t[32]){0} : r->s.secret);
	return r->mbox ? mailbox_folder(r->mbox, "INBOX") : NULL;
}

static const struct mbox_msg *msg_n(struct run *r, unsigned long n)
{
	const struct mbox_folder *f = inbox(r);
	if (!f || n == 0 || n > f->n_msgs) {
		fail_at(r, "no message %lu in %s's INBOX", n, r->s.user);
		return NULL;
	}
	return &f->msgs[n - 1];
}

/* Byte-stuffed lines of m (POP3 RETR/TOP): the header, then at most body_lines. */
static void stuffed(struct buf *out, const struct mbox_msg *m, unsigned long body_lines)
{
	const char *p = m->data, *end = m->data + m->size;
	bool body = false;
	unsigned long left = body_lines;
	while (p < end && !(body && left == 0)) {
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *next = lf ? lf + 1 : end;
		if (*p == '.')
			buf_putc(out, '.');
		buf_append(out, p, (size_t)(next - p));
		if (body)
			left--;
		else if (next - p == 2)
			body = true;
		p = next;
	}
}

/* Literal expected bytes: PAT_ESC doubled. */
static void put_literal(struct buf *out, const char *p, size_t len, bool pattern)
{
	for (size_t i = 0; i < len; i++) {
		if (pattern && p[i] == PAT_ESC)
			buf_putc(out, PAT_ESC);
		buf_putc(out, p[i]);
	}
}

/* A placeholder <NAME> at p (len bytes inside the brackets): true when it is one. */
static bool placeholder(struct run *r, const char *name, size_t len, struct buf *out,
			bool server)
{
	char tok[64];
	if (len >= sizeof(tok))
		return false;
	memcpy(tok, name, len);
	tok[len] = '\0';
	struct buf tmp;
	buf_init(&tmp, 0);
	unsigned long a = 0, b = 0;
	char extra;
	const struct mbox_folder *f;
	const struct mbox_msg *m;
	bool known = true;
	if (strcmp(tok, "HOST") == 0) {
		buf_puts(&tmp, conv_session_hostname(&r->s));
	} else if (strcmp(tok, "DOMAIN") == 0) {
		buf_puts(&tmp, conv_session_domain(&r->s));
	} else if (!server) {
		known = false;
	} else if (strcmp(tok, "ANY") == 0 || strcmp(tok, "DATE") == 0) {
		buf_putc(out, PAT_ESC);
		buf_putc(out, 'A');
	} else if (strcmp(tok, "NUM") == 0 || strcmp(tok, "UIDVALIDITY") == 0) {
		buf_putc(out, PAT_ESC);
		buf_putc(out, 'N');
	} else if (strcmp(tok, "TIMING") == 0) {
		buf_putc(out, PAT_ESC);
		buf_putc(out, 'T');
	} else if (strcmp(tok, "QUEUEID") == 0) {
		char q[32];
		fake_host_qid(r->qid_next++, q, sizeof(q));
		buf_puts(&tmp, q);
	} else if (strcmp(tok, "COUNT") == 0) {
		if ((f = inbox(r)))
			buf_printf(&tmp, "%zu", f->n_msgs);
	} else if (strcmp(tok, "OCTETS") == 0) {
		size_t t = 0;
		if ((f = inbox(r)))
			for (size_t i = 0; i < f->n_msgs; i++)
				t += f->msgs[i].size;
		buf_printf(&tmp, "%zu", t);
	} else if (sscanf(tok, "SIZE:%lu%c", &a, &extra) == 1) {
		if ((m = msg_n(r, a)))
			buf_printf(&tmp, "%zu", m->size);
	} else if (sscanf(tok, "UIDL:%lu%c", &a, &extra) == 1) {
		if ((m = msg_n(r, a)) && (f = inbox(r)))
			buf_printf(&tmp, "%08x%08x", (unsigned)m->uid, (unsigned)f->uidvalidity);
	} else if (sscanf(tok, "MSG:%lu%c", &a, &extra) == 1) {
		if ((m = msg_n(r, a)))
			stuffed(&tmp, m, (unsigned long)-1);
	} else if (sscanf(tok, "TOP:%lu:%lu%c", &a, &b, &extra) == 2) {
		if ((m = msg_n(r, a)))
			stuffed(&tmp, m, b);
	} else {
		known = false;
	}
	put_literal(out, tmp.data ? tmp.data : "", tmp.len, server);
	buf_free(&tmp);
	return known;
}

/* C:/S: text: escapes \r \n \t \0 \\ \xHH (another backslash stays as written) and
 * placeholders; server text becomes a pattern. */
static void decode(struct run *r, const char *s, struct buf *out, bool server)
{
	while (*s) {
		if (s[0] == '\\' && s[1]) {
			static const char from[] = "rnt0\\";
			static const char to[] = {'\r', '\n', '\t', '\0', '\\'};
			char c = s[1];
			const char *map = strchr(from, c);
			if (map) {
				put_literal(out, &to[map - from], 1, server);
				s += 2;
			} else if (c == 'x' && isxdigit((unsigned char)s[2]) &&
				   isxdigit((unsigned char)s[3])) {
				unsigned v;
				sscanf(s + 2, "%2x", &v);
				char b = (char)v;
				put_literal(out, &b, 1, server);
				s += 4;
			} else {
				if (c == 'x')
					fail_at(r, "bad \\x escape");
				put_literal(out, s, 2, server);
				s += 2;
			}
			continue;
		}
		if (s[0] == '<') {
			const char *e = strchr(s, '>');
			if (e && e - s > 1 && isupper((unsigned char)s[1]) &&
			    placeholder(r, s + 1, (size_t)(e - s - 1), out, server)) {
				s = e + 1;
				continue;
			}
		}
		put_literal(out, s, 1, server);
		s++;
	}
}

/* expect-event fragments are JSON text: \xHH (spaces, UTF-8) and <HOST>/<DOMAIN>
 * are decoded, every other backslash stays as JSON writes it. */
static void decode_json(struct run *r, const char *s, struct buf *out)
{
	while (*s) {
		unsigned v;
		if (s[0] == '\\' && s[1] == 'x' && isxdigit((unsigned char)s[2]) &&
		    isxdigit((unsigned char)s[3]) && sscanf(s + 2, "%2x", &v) == 1) {
			buf_putc(out, (char)v);
			s += 4;
		} else if (strncmp(s, "<DOMAIN>", 8) == 0) {
			buf_puts(out, conv_session_domain(&r->s));
			s += 8;
		} else if (strncmp(s, "<HOST>", 6) == 0) {
			buf_puts(out, conv_session_hostname(&r->s));
			s += 6;
		} else {
			buf_putc(out, *s++);
		}
	}
	buf_putc(out, '\0');
	out->len--;
}

/* ------------------------------------------------------------- matching --- */

struct lines {
	const char **p;
	size_t *len;
	size_t n;
};

static void split_lines(const char *data, size_t len, struct lines *l)
{
	l->p = calloc(len + 1, sizeof(*l->p));
	l->len = calloc(len + 1, sizeof(*l->len));
	l->n = 0;
	size_t st = 0;
	for (size_t i = 0; i < len; i++) {
		if (data[i] == '\n') {
			l->p[l->n] = data + st;
			l->len[l->n++] = i + 1 - st;
			st = i + 1;
		}
	}
	if (st < len) {
		l->p[l->n] = data + st;
		l->len[l->n++] = len - st;
	}
}

static void free_lines(struct lines *l)
{
	free(l->p);
	free(l->len);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Dovecot's timing "d.ddd + d.ddd" (a third term allowed) at text[*j]. */
static bool match_timing(const char *text, size_t n, size_t *j)
{
	for (int term = 0; term < 3; term++) {
		if (term > 0) {
			if (*j + 3 > n || memcmp(text + *j, " + ", 3) != 0)
				return term >= 2;
			*j += 3;
		}
		size_t k = *j;
		while (k < n && is_digit(text[k]))
			k++;
		if (k == *j || k + 4 > n || text[k] != '.' || !is_digit(text[k + 1]) ||
		    !is_digit(text[k + 2]) || !is_digit(text[k + 3]))
			return false;
		*j = k + 4;
	}
	return true;
}

/* One line of text against one line of pattern. */
static bool match_line(const char *pat, size_t m, const char *text, size_t n, int depth)
{
	if (depth > 64)
		return false;
	size_t i = 0, j = 0;
	while (i < m) {
		if (pat[i] == PAT_ESC && i + 1 < m && pat[i + 1] != PAT_ESC) {
			char code = pat[i + 1];
			i += 2;
			if (code == 'A') {
				for (size_t k = j; k <= n; k++)
					if (match_line(pat + i, m - i, text + k, n - k, depth + 1))
						return true;
				return false;
			}
			if (code == 'N') {
				size_t k = j;
				while (k < n && is_digit(text[k]))
					k++;
				if (k == j)
					return false;
				j = k;
				continue;
			}
			if (code == 'T') {
				if (!match_timing(text, n, &j))
					return false;
				continue;
			}
			return false;
		}
		if (pat[i] == PAT_ESC)
			i++; /* a literal \x01, doubled */
		if (j >= n || pat[i] != text[j])
			return false;
		i++;
		j++;
	}
	return j == n;
}

static bool is_anylines(const char *p, size_t len)
{
	return len >= 2 && p[0] == PAT_ESC && p[1] == 'L' && (len == 2 || (len == 3 && p[2] == '\n'));
}

static bool match_all(const struct lines *e, size_t ei, const struct lines *a, size_t ai,
		      int depth)
{
	if (depth > 32)
		return false;
	while (ei < e->n) {
		if (is_anylines(e->p[ei], e->len[ei])) {
			for (size_t k = ai; k <= a->n; k++)
				if (match_all(e, ei + 1, a, k, depth + 1))
					return true;
			return false;
		}
		if (ai >= a->n || !match_line(e->p[ei], e->len[ei], a->p[ai], a->len[ai], 0))
			return false;
		ei++;
		ai++;
	}
	return ai == a->n;
}

/* A checkpoint: what the server sent since the last one against the S: lines since
 * the last one.  A difference is reported once; the next checkpoint starts afresh. */
static void check_output(struct run *r)
{
	if (!r->s.started)
		return;
	const struct buf *out = &r->s.h.out;
	const char *ep = r->expect.data ? r->expect.data + r->exp_done : "";
	const char *ap = out->data ? out->data + r->out_done : "";
	size_t el = r->expect.len - r->exp_done, al = out->len - r->out_done;
	struct lines e, a;
	split_lines(ep, el, &e);
	split_lines(ap, al, &a);
	if (!match_all(&e, 0, &a, 0, 0)) {
		fail_at(r, "server output differs (since the last check)");
		show("expected", ep, el, true);
		show("actual", ap, al, false);
	}
	free_lines(&e);
	free_lines(&a);
	r->exp_done = r->expect.len;
	r->out_done = out->len;
}

/* ------------------------------------------------------------- sessions --- */

static void start_session(struct run *r, const char *listener)
{
	char err[256];
	if (!conv_session_setup(&r->s, listener, err, sizeof(err))) {
		fail_at(r, "connect: %s", err);
		conv_session_setup(&r->s, r->default_listener, err, sizeof(err));
	}
	for (size_t i = 0; i < r->n_cfg; i++)
		if (!conv_session_set(&r->s, r->cfg[i].key, r->cfg[i].value, err, sizeof(err)))
			fprintf(stderr, "%s:%d: config: %s\n", r->name, r->cfg[i].lineno, err),
				r->failed = true;
	buf_reset(&r->expect);
	r->exp_done = r->out_done = 0;
	r->wait_seen = 0;
	r->qid_next = 0;
	mailbox_free(&r->mbox);
	r->have_session = true;
	if (!conv_session_start(&r->s))
		fail_at(r, "the %s engine refused the session", conv_session_proto_name(&r->s));
}

static void ensure_session(struct run *r)
{
	if (!r->have_session)
		start_session(r, r->default_listener);
}

static void flush_client(struct run *r)
{
	ensure_session(r);
	if (r->pending.len && r->s.started)
		conv_session_write(&r->s, r->pending.data, r->pending.len, 0);
	buf_reset(&r->pending);
}

/* Before a new client write: the client read everything the server sent. */
static void client_bytes(struct run *r, const char *text, unsigned long times)
{
	ensure_session(r);
	if (r->pending.len == 0)
		check_output(r);
	struct buf one;
	buf_init(&one, 0);
	decode(r, text, &one, false);
	for (unsigned long i = 0; i < times; i++)
		buf_append(&r->pending, one.data ? one.data : "", one.len);
	buf_free(&one);
}

static void server_bytes(struct run *r, const char *text, unsigned long times)
{
	flush_client(r);
	struct buf one;
	buf_init(&one, 0);
	if (strcmp(text, "<ANYLINES>") == 0)
		buf_append(&one, "\x01L\n", 3);
	else
		decode(r, text, &one, true);
	for (unsigned long i = 0; i < times; i++)
		buf_append(&r->expect, one.data ? one.data : "", one.len);
	buf_free(&one);
}

static void end_session(struct run *r)
{
	if (!r->have_session)
		return;
	flush_client(r);
	check_output(r);
	char why[512];
	if (!conv_session_finish(&r->s, "client_closed", why, sizeof(why)))
		fail_at(r, "at the end of the session: %s", why);
	mailbox_free(&r->mbox);
	r->have_session = false;
}

/* ----------------------------------------------------------- directives --- */

static const char *arg_of(const char *d, size_t skip)
{
	const char *v = d + skip;
	while (*v == ' ')
		v++;
	return v;
}

static void add_config(struct run *r, char *args)
{
	char *save = NULL;
	for (char *tok = strtok_r(args, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		char *eq = strchr(tok, '=');
		if (!eq || eq == tok) {
			fail_at(r, "config: key=value, not %s", tok);
			continue;
		}
		if (r->n_cfg == sizeof(r->cfg) / sizeof(r->cfg[0])) {
			fail_at(r, "config: too many settings");
			return;
		}
		*eq = '\0';
		struct setting_line *c = &r->cfg[r->n_cfg++];
		c->key = strdup(tok);
		c->value = strdup(eq + 1);
		c->lineno = r->lineno;
	}
}

static void expect_event(struct run *r, char *rest, bool negate)
{
	char *save = NULL;
	char *name = strtok_r(rest, " ", &save);
	const char *frags[16];
	struct buf dec[16];
	size_t nf = 0;
	for (char *t = strtok_r(NULL, " ", &save); t && nf < 15; t = strtok_r(NULL, " ", &save)) {
		buf_init(&dec[nf], 0);
		decode_json(r, t, &dec[nf]);
		frags[nf] = dec[nf].data ? dec[nf].data : "";
		nf++;
	}
	frags[nf] = NULL;
	bool has = name && fake_host_has_event(&r->s.h, name, frags);
	if (has == negate) {
		fail_at(r, "%s event %s%s", negate ? "unexpected" : "missing", name ? name : "?",
			nf ? " with those fields" : "");
		const struct buf *ev = &r->s.h.events;
		show("events", ev->data ? ev->data : "", ev->len, false);
	}
	for (size_t i = 0; i < nf; i++)
		buf_free(&dec[i]);
}

/* The captured message after its Received header (and continuation lines). */
static void expect_body(struct run *r, const char *text)
{
	struct buf want;
	buf_init(&want, 0);
	decode(r, text, &want, false);
	const struct buf *lm = &r->s.h.last_msg;
	const char *m = lm->data ? lm->data : "", *end = m + lm->len, *p = m;
	if (lm->len >= 9 && strncmp(p, "Received:", 9) == 0) {
		for (;;) {
			const char *eol = memchr(p, '\n', (size_t)(end - p));
			if (!eol) {
				p = end;
				break;
			}
			p = eol + 1;
			if (p >= end || *p != '\t')
				break;
		}
	} else {
		fail_at(r, "captured message has no Received header");
	}
	size_t blen = (size_t)(end - p);
	if (blen != want.len || memcmp(p, want.data ? want.data : "", blen) != 0) {
		fail_at(r, "captured body differs");
		show("expected", want.data ? want.data : "", want.len, false);
		show("actual", p, blen, false);
	}
	buf_free(&want);
}

static void expect_msg(struct run *r, const char *text, bool whole)
{
	struct buf want;
	buf_init(&want, 0);
	decode(r, text, &want, false);
	const struct buf *lm = &r->s.h.last_msg;
	bool ok;
	if (whole)
		ok = want.len == lm->len &&
		     memcmp(want.data ? want.data : "", lm->data ? lm->data : "", want.len) == 0;
	else
		ok = want.len && lm->len && memmem(lm->data, lm->len, want.data, want.len);
	if (!ok) {
		fail_at(r, whole ? "captured message differs" : "captured message lacks the text");
		show(whole ? "expected" : "wanted", want.data ? want.data : "", want.len, false);
		show("message", lm->data ? lm->data : "", lm->len, false);
	}
	buf_free(&want);
}

static bool starts(const char *d, const char *word)
{
	return strncmp(d, word, strlen(word)) == 0;
}

/* Directives that act on the session or inspect it; everything else is a comment. */
static bool is_directive(const char *d)
{
	static const char *const words[] = {"closed by server", "commit:", "msgopen:",
					    "write-budget:", "hangup:", NULL};
	if (strcmp(d, "hangup") == 0 || strncasecmp(d, "expect", 6) == 0)
		return true;
	for (size_t i = 0; words[i]; i++)
		if (starts(d, words[i]))
			return true;
	return false;
}

static void directive(struct run *r, char *d)
{
	if (starts(d, "config:")) {
		add_config(r, d + 7);
		return;
	}
	if (starts(d, "connect:")) {
		end_session(r);
		char word[32] = "";
		sscanf(arg_of(d, 8), "%31s", word);
		start_session(r, word);
		return;
	}
	if (starts(d, "C-repeat:") || starts(d, "S-repeat:")) {
		char *p;
		unsigned long n = strtoul(d + 9, &p, 10);
		while (*p == ' ')
			p++;
		if (d[0] == 'C')
			client_bytes(r, p, n);
		else
			server_bytes(r, p, n);
		return;
	}
	if (!is_directive(d))
		return;
	/* about what happened so far: the pending client write first */
	flush_client(r);
	if (!r->s.started)
		return;
	struct fake_host *h = &r->s.h;
	const struct proto_engine *e = r->s.proto->engine;
	bool msgs = r->s.proto->captures_messages;
	if (strcmp(d, "closed by server") == 0) {
		if (!h->closed)
			fail_at(r, "expected the server to close");
	} else if (strcmp(d, "expect-open") == 0) {
		if (h->closed)
			fail_at(r, "the server closed (%s)", h->close_reason);
	} else if (starts(d, "expect-close-reason:")) {
		const char *v = arg_of(d, 20);
		if (!h->closed || strcmp(h->close_reason, v) != 0)
			fail_at(r, "close reason \"%s\", expected \"%s\"",
				h->closed ? h->close_reason : "(open)", v);
	} else if (strcmp(d, "hangup") == 0 || starts(d, "hangup:")) {
		const char *v = d[6] == ':' ? arg_of(d, 7) : "client_closed";
		e->hangup(h->s, v);
	} else if (!msgs && (starts(d, "commit:") || starts(d, "msgopen:") ||
			     starts(d, "write-budget:") || starts(d, "expect-body:") ||
			     starts(d, "expect-header:") || starts(d, "expect-msg:"))) {
		fail_at(r, "%s: %s captures no messages", d, conv_session_proto_name(&r->s));
	} else if (starts(d, "commit:")) {
		const char *v = arg_of(d, 7);
		if (strcmp(v, "ok") && strcmp(v, "nospace") && strcmp(v, "fail"))
			fail_at(r, "commit: ok, nospace or fail");
		h->next_commit = !strcmp(v, "nospace") ? FAKE_COMMIT_NOSPACE
				 : !strcmp(v, "fail")  ? FAKE_COMMIT_FAIL
						       : FAKE_COMMIT_OK;
	} else if (strcmp(d, "msgopen: fail") == 0) {
		h->fail_open = true;
	} else if (starts(d, "write-budget:")) {
		h->write_budget = strtoll(d + 13, NULL, 10);
	} else if (starts(d, "expect-event:")) {
		expect_event(r, d + 13, false);
	} else if (starts(d, "expect-no-event:")) {
		expect_event(r, d + 16, true);
	} else if (starts(d, "expect-wait:")) {
		unsigned ms = (unsigned)strtoul(d + 12, NULL, 10);
		bool found = false;
		for (unsigned i = r->wait_seen; i < h->n_waits; i++)
			found |= h->waits[i] == ms;
		if (!found)
			fail_at(r, "no wait(%u) since the last expect-wait (%u waits)", ms,
				h->n_waits - r->wait_seen);
		r->wait_seen = h->n_waits;
	} else if (strcmp(d, "expect-no-wait") == 0) {
		if (h->n_waits != r->wait_seen)
			fail_at(r, "unexpected wait(%u)", h->waits[h->n_waits - 1]);
	} else if (starts(d, "expect-body:")) {
		expect_body(r, d[12] == ' ' ? d + 13 : d + 12);
	} else if (starts(d, "expect-header:")) {
		expect_msg(r, d[14] == ' ' ? d + 15 : d + 14, false);
	} else if (starts(d, "expect-msg:")) {
		expect_msg(r, d[11] == ' ' ? d + 12 : d + 11, true);
	} else if (starts(d, "expect-state:")) {
		const char *want = arg_of(d, 13), *st = e->state_name(h->s);
		if (strcmp(st, want) != 0)
			fail_at(r, "state %s, expected %s", st, want);
	} else if (starts(d, "expect-user:")) {
		const char *want = arg_of(d, 12), *u = e->auth_user(h->s);
		if (strcmp(want, "-") == 0 ? u != NULL : (!u || strcmp(u, want) != 0))
			fail_at(r, "auth user %s, expected %s", u ? u : "(none)", want);
	} else if (starts(d, "expect-counters:")) {
		unsigned c = 0, er = 0, m = 0;
		struct proto_counters k;
		e->counters(h->s, &k);
		int n = sscanf(d + 16, "%u %u %u", &c, &er, &m);
		if (n < 2)
			fail_at(r, "expect-counters: COMMANDS ERRORS [MESSAGES]");
		else if (k.commands != c || k.errors != er || (n == 3 && k.messages != m))
			fail_at(r, "counters %u %u %u, expected %s", k.commands, k.errors,
				k.messages, arg_of(d, 16));
	} else if (strcmp(d, "expect-discarded") == 0) {
		if (h->discarded == 0)
			fail_at(r, "nothing was discarded after STARTTLS/STLS");
	} else if (starts(d, "expect-discarded:")) {
		size_t n = strtoul(d + 17, NULL, 10);
		if (h->discarded != n)
			fail_at(r, "%zu bytes discarded after STARTTLS/STLS, expected %zu",
				h->discarded, n);
	} else if (strncasecmp(d, "expect", 6) == 0) {
		/* a misspelt expectation must not pass for a comment */
		fail_at(r, "unknown directive: %s", d);
	} else {
		fail_at(r, "malformed directive: %s", d);
	}
}

bool conv_run_file(const char *path, const char *display_name, const char *default_listener)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: cannot open\n", path);
		return false;
	}
	struct run *r = calloc(1, sizeof(*r));
	if (!r) {
		fclose(f);
		return false;
	}
	r->name = display_name;
	r->default_listener = default_listener;
	buf_init(&r->expect, 0);
	buf_init(&r->pending, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	while ((n = getline(&line, &cap, f)) >= 0) {
		r->lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (strncmp(line, "C: ", 3) == 0)
			client_bytes(r, line + 3, 1);
		else if (strcmp(line, "C:") == 0)
			client_bytes(r, "", 1);
		else if (strncmp(line, "S: ", 3) == 0)
			server_bytes(r, line + 3, 1);
		else if (line[0] == '#')
			directive(r, line[1] == ' ' ? line + 2 : line + 1);
		else if (line[0] != '\0')
			fail_at(r, "neither C:, S: nor #");
	}
	free(line);
	fclose(f);
	end_session(r);
	for (size_t i = 0; i < r->n_cfg; i++) {
		free(r->cfg[i].key);
		free(r->cfg[i].value);
	}
	buf_free(&r->expect);
	buf_free(&r->pending);
	bool ok = !r->failed;
	free(r);
	return ok;
}
