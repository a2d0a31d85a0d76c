/*
 * imap: the IMAP4rev1 engine's core (see imap.h for the host contract and the persona,
 * imap_private.h for how the engine is cut into files).
 *
 * This file holds, top to bottom:
 *   - state names and the one function that changes the input state;
 *   - output: untagged and tagged replies (with Dovecot's timing suffix after login),
 *     collected per step and sent when the step ends, after an ops->wait when Dovecot
 *     would have held the answer (failed login, auth penalty);
 *   - events (auth, offence) and text helpers (printable, IMAP strings, mailbox names);
 *   - pre-login commands (imap-login) other than LOGIN/AUTHENTICATE, and their table;
 *   - post-login helpers shared by the command files, the small post-login commands,
 *     UID, the post-login table and dispatch;
 *   - the input side: command framing with literals ({n} gets "+ OK", {n+} none),
 *     SASL continuation lines and IDLE; then the session's lifecycle and vtable.
 *
 * Everything an attacker sends is bounded: see imap.h.  Replies echo attacker bytes
 * only where Dovecot does (the command name, mailbox names), made printable.
 */
#include "proto/imap_private.h"

#include "util/budget.h"
#include "proto/userip.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PRELOGIN_LINE_MAX 8192    /* imap-login MAX_IMAP_LINE */
#define PRELOGIN_BAD_MAX 3        /* imap-login CLIENT_MAX_BAD_COMMANDS */
#define OUT_FLUSH_AT (256 * 1024) /* hand output to the host in pieces */
#define SESSION_MEMORY_DEFAULT (32u * 1024 * 1024)
#define OVERQUOTA_TEXT "[OVERQUOTA] Quota exceeded (mailbox for user is full)"

/* ------------------------------------------------------------------ state ---- */

static const char *state_name(const struct imap_session *s)
{
	if (s->sess.susp == SESSION_CLOSED)
		return "closed";
	if (s->sess.susp == SESSION_TLS)
		return "starttls";
	if (s->sess.susp == SESSION_COMMIT)
		return "append";
	if (s->in == IN_AUTH)
		return "auth";
	if (s->in == IN_IDLE)
		return "idle";
	switch (s->cs) {
	case CS_NOAUTH:
		return "not_authenticated";
	case CS_AUTH:
		return "authenticated";
	case CS_SELECTED:
		return "selected";
	case CS_LOGOUT:
		return "logout";
	}
	return "?";
}

static const char *const cs_names[] = {"not_authenticated", "authenticated", "selected",
					"logout"};
static const char *const in_names[] = {"line", "literal", "auth", "idle"};

/* The one place the state changes (connection state and input mode); the host sees
 * every old -> new (session_trace). */
void imap_set_state(struct imap_session *s, enum cstate cs, enum istate in)
{
	if (s->cs != cs)
		session_trace(&s->sess, "state", cs_names[s->cs], cs_names[cs]);
	if (s->in != in)
		session_trace(&s->sess, "input", in_names[s->in], in_names[in]);
	s->cs = cs;
	s->in = in;
}

void imap_set_input(struct imap_session *s, enum istate in)
{
	imap_set_state(s, s->cs, in);
}

const char *imap_session_state_name(const struct imap_session *s)
{
	return state_name(s);
}

void imap_session_counters(const struct imap_session *s, struct proto_counters *c_r)
{
	c_r->commands = s->sess.commands;
	c_r->errors = s->sess.errors;
	c_r->messages = s->sess.messages;
}

const char *imap_session_auth_user(const struct imap_session *s)
{
	return s->cs != CS_NOAUTH && s->user[0] ? s->user : NULL;
}

static bool logged_in(const struct imap_session *s)
{
	return s->cs == CS_AUTH || s->cs == CS_SELECTED;
}

/* ------------------------------------------------------------------ output --- */

static void flush_out(struct imap_session *s)
{
	session_flush(&s->sess);
}

/* Big FETCH answers leave in pieces, unless a delay holds the step's replies. */
static void out_maybe_flush(struct imap_session *s)
{
	session_flush_if_big(&s->sess);
}

void imap_out_raw(struct imap_session *s, const char *data, size_t len)
{
	buf_append(&s->sess.out, data, len);
	out_maybe_flush(s);
}

void imap_out_str(struct imap_session *s, const char *str)
{
	imap_out_raw(s, str, strlen(str));
}

/* Dovecot's imap-login does not cork its output: every reply line is one write, so
 * one TLS record each (`openssl s_client -msg` against Debian's Dovecot 2.3.19: the
 * pre-login `* CAPABILITY`, `* ID`, `* ENABLED` and `* BYE` each in a record of their
 * own, then the tagged line), where the imap process after login sends a command's
 * whole answer in one.  So before login each line is handed to the host by itself,
 * unless the step's replies are being held (a failure delay). */
static void reply_line_done(struct imap_session *s)
{
	if (s->line_writes && s->sess.delay_ms == 0 && s->sess.susp == SESSION_RUN)
		session_flush(&s->sess);
	else
		out_maybe_flush(s);
}

void imap_untagged(struct imap_session *s, const char *fmt, ...)
{
	va_list ap;
	buf_puts(&s->sess.out, "* ");
	va_start(ap, fmt);
	buf_vprintf(&s->sess.out, fmt, ap);
	va_end(ap);
	buf_puts(&s->sess.out, "\r\n");
	reply_line_done(s);
}

/* A tagged reply.  After login Dovecot's imap adds "(t + l secs)" before the final
 * dot (added when the text has none). */
static void tagged_v(struct imap_session *s, bool timing, const char *status,
		     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static void tagged_v(struct imap_session *s, bool timing, const char *status,
		     const char *fmt, va_list ap)
{
	char text[1200];
	vsnprintf(text, sizeof(text), fmt, ap);
	size_t tl = strlen(text);
	if (timing && tl > 0 && text[tl - 1] == '.')
		text[--tl] = '\0';
	buf_printf(&s->sess.out, "%s %s %s", s->tag[0] ? s->tag : "*", status, text);
	if (timing) {
		int64_t el = session_now_us(&s->sess) - s->cmd_start_us;
		if (el < 0)
			el = 0;
		int64_t ms = el / 1000;
		buf_printf(&s->sess.out, " (%lld.%03lld + 0.000 secs).", (long long)(ms / 1000),
			   (long long)(ms % 1000));
	}
	buf_puts(&s->sess.out, "\r\n");
	if (strcmp(status, "OK") != 0)
		s->sess.errors++;
	reply_line_done(s);
}

void imap_tagged(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged_v(s, logged_in(s) || s->cs == CS_LOGOUT, status, fmt, ap);
	va_end(ap);
}

/* Without the timing suffix ("OK Logged in" and every pre-login reply). */
void imap_tagged_plain(struct imap_session *s, const char *status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	tagged_v(s, false, status, fmt, ap);
	va_end(ap);
}

static void close_after(struct imap_session *s, const char *reason)
{
	session_close_after(&s->sess, reason);
}

/* ------------------------------------------------------------------ events --- */

void imap_emit(struct imap_session *s, struct mxb_event *ev)
{
	session_emit(&s->sess, ev);
}

static void offence(struct imap_session *s, const char *kind, const char *detail,
		    size_t len)
{
	imap_emit(s, proto_offence_event(kind, detail, len));
}

void imap_auth_event(struct imap_session *s, const struct auth_ev *a)
{
	imap_emit(s, proto_auth_event(a));
}

void imap_auth_event_simple(struct imap_session *s, const char *mech, const char *result)
{
	struct auth_ev a = {.mech = mech, .result = result};
	imap_auth_event(s, &a);
}

/* ------------------------------------------------------------ text helpers --- */

/* An IMAP string: NIL, "quoted" or a {literal} for 8-bit, CR/LF and long text. */
static void put_nstring(struct buf *b, const char *p, size_t len)
{
	if (!p) {
		buf_puts(b, "NIL");
		return;
	}
	bool literal = len > 1024;
	for (size_t i = 0; i < len && !literal; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\r' || c == '\n' || c == 0 || c >= 0x80)
			literal = true;
	}
	if (literal) {
		buf_printf(b, "{%zu}\r\n", len);
		buf_append(b, p, len);
		return;
	}
	buf_putc(b, '"');
	for (size_t i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '\\')
			buf_putc(b, '\\');
		buf_putc(b, p[i]);
	}
	buf_putc(b, '"');
}

void imap_put_string(struct buf *b, const char *str)
{
	put_nstring(b, str, strlen(str));
}

/* A mailbox name as Dovecot prints it: atom when possible, else quoted. */
void imap_put_mailbox(struct buf *b, const char *name)
{
	bool atom = name[0] != '\0';
	for (const char *p = name; *p && atom; p++) {
		unsigned char c = (unsigned char)*p;
		if (c <= 0x20 || c >= 0x7f || strchr("(){%*\"\\]", c))
			atom = false;
	}
	if (atom)
		buf_puts(b, name);
	else
		imap_put_string(b, name);
}

/* Mailbox name from the client, printable, for NO texts. */
void imap_shown_name(char *dst, size_t dstlen, const char *p, size_t len)
{
	session_printable(dst, dstlen, p, len > 200 ? 200 : len);
}

static const char *capability(const struct imap_session *s)
{
	if (logged_in(s))
		return CAP_POSTLOGIN;
	/* imap-login get_capability(): STARTTLS while possible, LOGINDISABLED without
	 * TLS (disable_plaintext_auth), AUTH= mechanisms once TLS is on. */
	if (!s->tls) {
		if (s->cfg->tls_available && !s->cfg->implicit_tls)
			return CAP_BASE " LITERAL+ STARTTLS LOGINDISABLED";
		return CAP_BASE " LITERAL+ LOGINDISABLED";
	}
	return CAP_BASE " LITERAL+ AUTH=PLAIN AUTH=LOGIN";
}

/* --------------------------------------------------------- pre-login commands --- */

/* The command table (imap-login's commands before authentication, imap's after it),
 * as SMTP's: per-command flags, a check step for what the flags cannot say (it
 * answers the BAD/NO itself) and a do step.  The state flags choose the row: a name
 * without a row for the session's state is an unknown command there, as it is in
 * Dovecot, where imap-login and imap are two processes with two tables. */
enum {
	ICMD_NOAUTH = 1 << 0,   /* imap-login: not authenticated */
	ICMD_AUTH = 1 << 1,     /* imap: authenticated (or selected) */
	ICMD_SELECTED = 1 << 2, /* needs a selected mailbox ("BAD No mailbox selected.") */
	ICMD_TLS = 1 << 3,      /* credentials: without TLS refused by its plaintext
				 * step, after the check read the arguments */
	ICMD_CLOSES = 1 << 4,   /* closes the selected mailbox even when its arguments
				 * are bad ("OK [CLOSED]" first: SELECT, EXAMINE) */
	ICMD_MESSAGE = 1 << 5,  /* its literals are a message (APPEND): framed up to
				 * imap_literal_max, charged to the memory budgets first */
};

struct imap_cmd {
	const char *name;
	unsigned flags;
	/* May it run now?  0: yes; 1: it answered; -1: invalid arguments (the caller
	 * answers the persona's BAD and counts it).  NULL: always. */
	int (*check)(struct imap_session *s, struct imap_command *c);
	/* ICMD_TLS without TLS: the refusal (answers, records what was given away). */
	void (*plaintext)(struct imap_session *s, struct imap_command *c);
	/* Returns 0 when handled, -1 for "invalid arguments" (as check). */
	int (*run)(struct imap_session *s, struct imap_command *c);
};

/* The table's generic steps: the flags say what the state must be, then the
 * command's own check, then the plaintext refusal.  0: run it; 1: answered; -1:
 * invalid arguments. */
static int cmd_may_run(struct imap_session *s, const struct imap_cmd *cmd,
		       struct imap_command *c)
{
	if ((cmd->flags & ICMD_SELECTED) && !imap_need_selected(s))
		return 1;
	int r = cmd->check ? cmd->check(s, c) : 0;
	if (r != 0)
		return r;
	if ((cmd->flags & ICMD_TLS) && !s->tls) {
		cmd->plaintext(s, c);
		return 1;
	}
	return 0;
}

static int pre_capability(struct imap_session *s, struct imap_command *c)
{
	if (!s->starttls_done)
		s->cap_seen = true;
	imap_untagged(s, "CAPABILITY %s", capability(s));
	imap_tagged_plain(s, "OK", "Pre-login capabilities listed, post-login capabilities have more.");
	return 0;
}

static int pre_noop(struct imap_session *s, struct imap_command *c)
{
	imap_tagged_plain(s, "OK", "NOOP completed.");
	return 0;
}

static int cmd_logout(struct imap_session *s, struct imap_command *c)
{
	bool was_in = logged_in(s);
	imap_untagged(s, "BYE Logging out");
	if (was_in) {
		imap_set_state(s, CS_LOGOUT, s->in);
		imap_tagged(s, "OK", "Logout completed.");
	} else {
		imap_tagged_plain(s, "OK", "Logout completed.");
		imap_set_state(s, CS_LOGOUT, s->in);
	}
	close_after(s, "quit");
	return 0;
}

static int pre_enable(struct imap_session *s, struct imap_command *c)
{
	imap_untagged(s, "ENABLED");
	imap_tagged_plain(s, "OK", "ENABLE ignored in non-authenticated state.");
	return 0;
}

/* ID: NIL or a list of string pairs (at most 30, as RFC 2971 says). */
static bool id_args_valid(const struct imap_command *c)
{
	if (c->n_args != 1)
		return false;
	const struct imap_arg *a = c->args;
	if (imap_arg_is_nil(a))
		return true;
	if (a->type != IMAP_ARG_LIST || a->n_children % 2 != 0 || a->n_children > 60)
		return false;
	size_t i = 0;
	for (const struct imap_arg *k = a->child; k; k = k->next, i++) {
		if (k->type == IMAP_ARG_LIST)
			return false;
		if (i % 2 == 0 && k->type == IMAP_ARG_ATOM)
			return false;
		if (i % 2 == 1 && k->type == IMAP_ARG_ATOM && !imap_arg_is_nil(k))
			return false;
	}
	return true;
}

static int cmd_id(struct imap_session *s, struct imap_command *c)
{
	if (!id_args_valid(c)) {
		if (logged_in(s))
			return -1;
		imap_tagged_plain(s, "BAD", "Invalid ID parameters");
		return 0;
	}
	imap_untagged(s, "ID (\"name\" \"Dovecot\")");
	imap_tagged(s, "OK", "ID completed.");
	return 0;
}

/* imap-login's cmd_starttls(): refused before anything else is looked at. */
static int check_starttls(struct imap_session *s, struct imap_command *c)
{
	(void)c;
	if (s->tls) {
		imap_tagged_plain(s, "BAD", "TLS is already active.");
		return 1;
	}
	if (!s->cfg->tls_available || s->cfg->implicit_tls) {
		imap_tagged_plain(s, "BAD", "TLS support isn't enabled.");
		return 1;
	}
	return 0;
}

static int pre_starttls(struct imap_session *s, struct imap_command *c)
{
	(void)c;
	s->starttls_done = true;
	imap_tagged_plain(s, "OK", "Begin TLS negotiation now.");
	session_suspend(&s->sess, SESSION_TLS);
	return 0;
}

/* imap-login: a bad command is answered "BAD Error in IMAP command received by
 * server."; the third one gets "* BYE Too many invalid IMAP commands." instead. */
static void pre_bad(struct imap_session *s, const char *detail, size_t dlen, const char *kind)
{
	offence(s, kind, detail, dlen);
	if (++s->bad_prelogin >= PRELOGIN_BAD_MAX) {
		imap_untagged(s, "BYE Too many invalid IMAP commands.");
		s->sess.errors++;
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
		return;
	}
	imap_tagged_plain(s, "BAD", "Error in IMAP command received by server.");
}

static const struct imap_cmd *cmd_lookup(const struct imap_session *s, const char *name);
static const struct imap_cmd *cmd_lookup_n(const struct imap_session *s, const char *name,
					   size_t len);

static void prelogin_command(struct imap_session *s, struct imap_command *c, int pr,
			     const char *line, size_t len)
{
	if (!c->tag_valid) {
		s->tag[0] = '\0';
		pre_bad(s, line, len, "bad_syntax");
		return;
	}
	if (!c->has_name) {
		pre_bad(s, line, len, "bad_syntax");
		return;
	}
	const struct imap_cmd *cmd = cmd_lookup(s, c->name);
	if (!cmd) {
		if (strcasecmp(c->tag, "LOGIN") == 0) {
			offence(s, "unknown_command", line, len);
			imap_tagged_plain(s, "BAD", "First parameter in line is IMAP's command tag, not "
					       "the command name. Add that before the command, "
					       "like: a login user pass");
			return;
		}
		pre_bad(s, line, len, "unknown_command");
		return;
	}
	if (pr < 0) {
		/* imap-login answers the parser's message, without counting it */
		offence(s, "bad_syntax", line, len);
		imap_tagged_plain(s, "BAD", "%s", c->error);
		return;
	}
	int may = cmd_may_run(s, cmd, c);
	if (may > 0)
		return;
	if (may < 0 || cmd->run(s, c) < 0)
		pre_bad(s, line, len, "bad_syntax");
}

/* -------------------------------------------------------- post-login helpers --- */

/* imap client_send_command_error(): "BAD Error in IMAP command X: msg", counted. */
void imap_cmd_error(struct imap_session *s, const char *name, const char *msg)
{
	imap_tagged(s, "BAD", "Error in IMAP command %s: %s", name, msg);
	unsigned lim = s->cfg->bad_command_limit ? s->cfg->bad_command_limit : 20;
	if (++s->bad_row >= lim) {
		imap_untagged(s, "BYE Too many invalid IMAP commands.");
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
	}
}

struct mbox_folder *imap_folder_by_name(struct imap_session *s, const char *name,
					size_t len)
{
	if (!s->mbox || len != strlen(name))
		return NULL;
	return mailbox_folder(s->mbox, name);
}

bool imap_need_selected(struct imap_session *s)
{
	if (s->cs == CS_SELECTED && s->sel)
		return true;
	imap_tagged(s, "BAD", "No mailbox selected.");
	return false;
}

uint32_t imap_n_msgs(const struct imap_session *s)
{
	return s->sel ? (uint32_t)s->sel->n_msgs : 0;
}

void imap_put_flags(struct buf *b, unsigned f)
{
	static const struct {
		unsigned bit;
		const char *name;
	} names[] = {{MBOX_ANSWERED, "\\Answered"}, {MBOX_FLAGGED, "\\Flagged"},
		     {MBOX_DELETED, "\\Deleted"},   {MBOX_SEEN, "\\Seen"},
		     {MBOX_DRAFT, "\\Draft"},       {MBOX_RECENT, "\\Recent"}};
	buf_putc(b, '(');
	bool first = true;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(f & names[i].bit))
			continue;
		if (!first)
			buf_putc(b, ' ');
		first = false;
		buf_puts(b, names[i].name);
	}
	buf_putc(b, ')');
}

void imap_fmt_internaldate(int64_t t, char *out, size_t outlen)
{
	static const char *const mon[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	snprintf(out, outlen, "%02d-%s-%04d %02d:%02d:%02d +0000", tm.tm_mday,
		 mon[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Flag name to bit (0 for keywords, which are accepted and forgotten). */
static int flag_bit(const char *f, unsigned *bit_r)
{
	static const struct {
		const char *name;
		unsigned bit;
	} names[] = {{"\\Seen", MBOX_SEEN},       {"\\Answered", MBOX_ANSWERED},
		     {"\\Flagged", MBOX_FLAGGED}, {"\\Deleted", MBOX_DELETED},
		     {"\\Draft", MBOX_DRAFT}};
	*bit_r = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcasecmp(f, names[i].name) == 0) {
			*bit_r = names[i].bit;
			return 0;
		}
	if (f[0] == '\\')
		return strcasecmp(f, "\\Recent") == 0 ? 0 : -1; /* unknown system flag */
	return 0;
}

/* Flags from a list or from a run of atoms. */
int imap_parse_flag_args(const struct imap_arg *a, unsigned *flags_r)
{
	unsigned f = 0;
	const struct imap_arg *it = a;
	bool list = a && a->type == IMAP_ARG_LIST;
	if (list)
		it = a->child;
	for (; it; it = it->next) {
		if (it->type != IMAP_ARG_ATOM)
			return -1;
		unsigned bit;
		if (flag_bit(it->s, &bit) < 0)
			return -1;
		f |= bit;
		if (list && !it->next)
			break;
	}
	*flags_r = f;
	return 0;
}

/* ---------------------------------------------------------- post-login: misc --- */

static int cmd_capability(struct imap_session *s, struct imap_command *c)
{
	imap_untagged(s, "CAPABILITY %s", CAP_POSTLOGIN);
	imap_tagged(s, "OK", "Capability completed.");
	return 0;
}

static int cmd_noop(struct imap_session *s, struct imap_command *c)
{
	imap_tagged(s, "OK", "NOOP completed.");
	return 0;
}

static int cmd_check(struct imap_session *s, struct imap_command *c)
{
	imap_tagged(s, "OK", "Check completed.");
	return 0;
}

static int cmd_namespace(struct imap_session *s, struct imap_command *c)
{
	imap_untagged(s, "NAMESPACE ((\"\" \".\")) NIL NIL");
	imap_tagged(s, "OK", "Namespace completed.");
	return 0;
}

static int cmd_enable(struct imap_session *s, struct imap_command *c)
{
	if (c->n_args == 0)
		return -1;
	/* Nothing we would have to honour (CONDSTORE/QRESYNC/UTF8) is enabled. */
	imap_untagged(s, "ENABLED");
	imap_tagged(s, "OK", "Enabled.");
	return 0;
}

static int cmd_idle(struct imap_session *s, struct imap_command *c)
{
	memcpy(s->idle_tag, s->tag, sizeof(s->idle_tag));
	imap_out_str(s, "+ idling\r\n");
	imap_set_input(s, IN_IDLE);
	return 0;
}

static void idle_line(struct imap_session *s, const char *line, size_t len)
{
	memcpy(s->tag, s->idle_tag, sizeof(s->tag));
	imap_set_input(s, IN_LINE);
	if (len == 4 && strncasecmp(line, "DONE", 4) == 0)
		imap_tagged(s, "OK", "Idle completed.");
	else
		imap_tagged(s, "BAD", "Expected DONE.");
}

static int cmd_uid(struct imap_session *s, struct imap_command *c)
{
	const struct imap_arg *sub = c->args;
	if (!sub || sub->type != IMAP_ARG_ATOM) {
		imap_cmd_error(s, "UID", "Unknown command");
		return 0;
	}
	if (imap_arg_is_atom(sub, "FETCH"))
		return imap_do_fetch(s, "UID FETCH", sub->next, true);
	if (imap_arg_is_atom(sub, "STORE"))
		return imap_do_store(s, "UID STORE", sub->next, true);
	if (imap_arg_is_atom(sub, "SEARCH"))
		return imap_do_search(s, "UID SEARCH", sub->next, true);
	if (imap_arg_is_atom(sub, "SORT"))
		return imap_do_sort(s, "UID SORT", sub->next, true);
	if (imap_arg_is_atom(sub, "THREAD"))
		return imap_do_thread(s, "UID THREAD", sub->next, true);
	if (imap_arg_is_atom(sub, "COPY"))
		return imap_do_copy(s, "UID COPY", sub->next, true, false);
	if (imap_arg_is_atom(sub, "MOVE"))
		return imap_do_copy(s, "UID MOVE", sub->next, true, true);
	if (imap_arg_is_atom(sub, "EXPUNGE")) {
		const char *set;
		size_t setl;
		if (imap_set_arg(sub->next, &set, &setl) < 0 || sub->next->next) {
			imap_cmd_error(s, "UID EXPUNGE", "Invalid arguments.");
			return 0;
		}
		if (s->sel_ro) {
			imap_tagged(s, "NO", "Mailbox is read-only.");
			return 0;
		}
		uint32_t *seqs;
		long k = imap_resolve_set(s, set, setl, true, &seqs);
		if (k < 0) {
			imap_cmd_error(s, "UID EXPUNGE", "Invalid uidset");
			return 0;
		}
		imap_expunge(s, seqs, k, false);
		free(seqs);
		imap_tagged(s, "OK", "Expunge completed.");
		return 0;
	}
	char shown[64];
	session_printable(shown, sizeof(shown), sub->s, sub->len);
	for (char *p = shown; *p; p++)
		*p = (char)toupper((unsigned char)*p);
	char nm[96];
	snprintf(nm, sizeof(nm), "UID %s", shown);
	imap_cmd_error(s, nm, "Unknown command");
	return 0;
}

/* ------------------------------------------------------- post-login dispatch --- */

#define PRE ICMD_NOAUTH
#define POST ICMD_AUTH
#define SEL (ICMD_AUTH | ICMD_SELECTED)
static const struct imap_cmd cmd_table[] = {
	/* imap-login */
	{"CAPABILITY", PRE, NULL, NULL, pre_capability},
	{"NOOP", PRE, NULL, NULL, pre_noop},
	{"LOGOUT", PRE, NULL, NULL, cmd_logout},
	{"ENABLE", PRE, NULL, NULL, pre_enable},
	{"ID", PRE, NULL, NULL, cmd_id},
	{"STARTTLS", PRE, check_starttls, NULL, pre_starttls},
	{"LOGIN", PRE | ICMD_TLS, imap_login_check, imap_login_plaintext, imap_pre_login},
	{"AUTHENTICATE", PRE | ICMD_TLS, imap_authenticate_check, imap_authenticate_plaintext,
	 imap_pre_authenticate},
	/* imap, authenticated */
	{"CAPABILITY", POST, NULL, NULL, cmd_capability},
	{"NOOP", POST, NULL, NULL, cmd_noop},
	{"LOGOUT", POST, NULL, NULL, cmd_logout},
	{"ID", POST, NULL, NULL, cmd_id},
	{"ENABLE", POST, NULL, NULL, cmd_enable},
	{"NAMESPACE", POST, NULL, NULL, cmd_namespace},
	{"IDLE", POST, NULL, NULL, cmd_idle},
	{"LIST", POST, NULL, NULL, imap_cmd_list},
	{"LSUB", POST, NULL, NULL, imap_cmd_lsub},
	{"STATUS", POST, NULL, NULL, imap_cmd_status},
	{"SELECT", POST | ICMD_CLOSES, NULL, NULL, imap_cmd_select},
	{"EXAMINE", POST | ICMD_CLOSES, NULL, NULL, imap_cmd_examine},
	{"CREATE", POST, NULL, NULL, imap_cmd_create},
	{"DELETE", POST, NULL, NULL, imap_cmd_delete},
	{"RENAME", POST, NULL, NULL, imap_cmd_rename},
	{"SUBSCRIBE", POST, NULL, NULL, imap_cmd_subscribe},
	{"UNSUBSCRIBE", POST, NULL, NULL, imap_cmd_subscribe},
	{"APPEND", POST | ICMD_MESSAGE, NULL, NULL, imap_cmd_append},
	/* imap, selected */
	{"CHECK", SEL, NULL, NULL, cmd_check},
	{"FETCH", SEL, NULL, NULL, imap_cmd_fetch},
	{"STORE", SEL, NULL, NULL, imap_cmd_store},
	{"SEARCH", SEL, NULL, NULL, imap_cmd_search},
	{"EXPUNGE", SEL, NULL, NULL, imap_cmd_expunge},
	{"CLOSE", SEL, NULL, NULL, imap_cmd_close},
	{"UNSELECT", SEL, NULL, NULL, imap_cmd_unselect},
	{"COPY", SEL, NULL, NULL, imap_cmd_copy},
	{"MOVE", SEL, NULL, NULL, imap_cmd_move},
	{"UID", SEL, NULL, NULL, cmd_uid},
	{"SORT", SEL, NULL, NULL, imap_cmd_sort},
	{"THREAD", SEL, NULL, NULL, imap_cmd_thread},
};
#undef PRE
#undef POST
#undef SEL

/* The row for name (len bytes, case-insensitive) in the session's state, or NULL. */
static const struct imap_cmd *cmd_lookup_n(const struct imap_session *s, const char *name,
					   size_t len)
{
	unsigned state = s->cs == CS_NOAUTH ? ICMD_NOAUTH : ICMD_AUTH;
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if ((cmd_table[i].flags & state) && strlen(cmd_table[i].name) == len &&
		    strncasecmp(name, cmd_table[i].name, len) == 0)
			return &cmd_table[i];
	return NULL;
}

static const struct imap_cmd *cmd_lookup(const struct imap_session *s, const char *name)
{
	return cmd_lookup_n(s, name, strlen(name));
}

static void postlogin_command(struct imap_session *s, struct imap_command *c, int pr,
			      const char *line, size_t len)
{
	if (!c->tag_valid) {
		s->tag[0] = '\0';
		offence(s, "bad_syntax", line, len);
		imap_tagged_plain(s, "BAD", "Error in IMAP command received by server.");
		return;
	}
	if (!c->has_name) {
		offence(s, "bad_syntax", line, len);
		imap_cmd_error(s, "", "Unknown command.");
		return;
	}
	const struct imap_cmd *cmd = cmd_lookup(s, c->name);
	if (!cmd) {
		offence(s, "unknown_command", line, len);
		imap_cmd_error(s, c->name, "Unknown command.");
		return;
	}
	if (pr < 0) {
		offence(s, "bad_syntax", line, len);
		if (cmd->flags & ICMD_CLOSES) {
			if (s->cs == CS_SELECTED) {
				imap_unselect(s);
				imap_untagged(s, "OK [CLOSED] Previous mailbox closed.");
			}
		}
		char msg[128];
		snprintf(msg, sizeof(msg), "%s", c->error);
		imap_cmd_error(s, c->name, msg);
		return;
	}
	unsigned errs = s->sess.errors;
	int may = cmd_may_run(s, cmd, c);
	if (may > 0)
		return;
	if (may < 0 || cmd->run(s, c) < 0) {
		offence(s, "bad_syntax", line, len);
		imap_cmd_error(s, c->name, "Invalid arguments.");
		return;
	}
	/* a command that went through resets Dovecot's bad counter */
	if (s->sess.errors == errs)
		s->bad_row = 0;
}

/* ------------------------------------------------------------------ memory --- */

static size_t session_memory(const struct imap_session *s)
{
	return s->cfg->session_memory ? s->cfg->session_memory : SESSION_MEMORY_DEFAULT;
}

bool imap_mem_take(struct imap_session *s, size_t n)
{
	if (n > session_memory(s) || s->mem_held > session_memory(s) - n)
		return false;
	if (s->cfg->memory && !budget_take(s->cfg->memory, n))
		return false;
	s->mem_held += n;
	return true;
}

static void mem_give(struct imap_session *s, size_t n)
{
	if (n > s->mem_held)
		n = s->mem_held;
	s->mem_held -= n;
	if (s->cfg->memory)
		budget_give(s->cfg->memory, n);
}

void imap_mem_settle(struct imap_session *s)
{
	size_t now = mailbox_extra_bytes(s->mbox);
	if (now < s->mbox_charged) {
		mem_give(s, s->mbox_charged - now);
	} else if (now > s->mbox_charged) {
		/* more than was taken for it (cannot happen: every growth is taken first);
		 * counted anyway so that the books stay true */
		size_t more = now - s->mbox_charged;
		s->mem_held += more;
		if (s->cfg->memory) {
			s->cfg->memory->used += more;
			if (s->cfg->memory->used > s->cfg->memory->peak)
				s->cfg->memory->peak = s->cfg->memory->used;
		}
	}
	s->mbox_charged = now;
}

void imap_message_rejected(struct imap_session *s, const char *reason, size_t size)
{
	struct mxb_event *ev = mxb_event_new("message_rejected");
	if (!ev)
		return;
	mxb_event_str(ev, "reason", reason);
	mxb_event_int(ev, "size", (int64_t)size);
	mxb_event_null(ev, "reply");
	imap_emit(s, ev);
}

void imap_release_command(struct imap_session *s)
{
	if (s->pc) {
		imap_command_clear(s->pc);
		free(s->pc);
		s->pc = NULL;
	}
	/* the command's literals (its framing buffer and parsed copy) are gone */
	if (s->lit_charge || s->lit_framing) {
		mem_give(s, s->lit_charge + s->lit_framing);
		s->lit_charge = 0;
		s->lit_framing = 0;
	}
}

/* One framed command (the buffer holds it, literals inline, no final CRLF). */
static void command(struct imap_session *s)
{
	const char *line = s->cmd.data ? s->cmd.data : "";
	size_t len = s->cmd.len;
	s->sess.commands++;
	s->cmd_start_us = session_now_us(&s->sess);
	if (!s->pc) {
		/* ~60 KiB of argument nodes: held only while a command runs, so that
		 * idle sessions stay small */
		s->pc = malloc(sizeof(*s->pc));
		if (!s->pc) {
			imap_untagged(s, "BYE Out of memory");
			close_after(s, "error");
			return;
		}
		s->pc->store = NULL;
	}
	int pr = imap_parse_command(line, len, s->pc);
	snprintf(s->tag, sizeof(s->tag), "%s", s->pc->tag_valid ? s->pc->tag : "");
	if (s->cs == CS_NOAUTH)
		prelogin_command(s, s->pc, pr, line, len);
	else
		postlogin_command(s, s->pc, pr, line, len);
	if (s->sess.susp != SESSION_COMMIT) /* an APPEND's bytes live in it until committed */
		imap_release_command(s);
}

/* ------------------------------------------------------------------ input ---- */

static size_t text_limit(const struct imap_session *s)
{
	if (s->cs == CS_NOAUTH)
		return PRELOGIN_LINE_MAX;
	return s->cfg->line_length_limit ? s->cfg->line_length_limit : 65536;
}

static size_t literal_max(const struct imap_session *s)
{
	return s->cfg->literal_max ? s->cfg->literal_max : 10 * 1024 * 1024;
}

/* Are the literals of the command being framed a message (ICMD_MESSAGE: APPEND)?
 * (tag SP name SP ...) */
static bool framing_message(const struct imap_session *s)
{
	if (!logged_in(s))
		return false;
	const char *p = s->cmd.data;
	size_t len = s->cmd.len;
	const char *sp = memchr(p, ' ', len);
	if (!sp)
		return false;
	const char *name = sp + 1;
	const char *end = memchr(name, ' ', len - (size_t)(name - p));
	if (!end)
		return false;
	const struct imap_cmd *cmd = cmd_lookup_n(s, name, (size_t)(end - name));
	return cmd && (cmd->flags & ICMD_MESSAGE);
}

static void too_long(struct imap_session *s, const char *text)
{
	offence(s, "line_too_long", s->cmd.data ? s->cmd.data : "", s->cmd.len);
	imap_untagged(s, "BYE %s", text);
	s->sess.errors++;
	close_after(s, "protocol");
	buf_reset(&s->cmd);
	s->line_text = 0;
	s->seg_start = 0;
	s->cmd_refused = false;
}

/* The tag of the command being framed (its first word), for an answer given before
 * the command is whole. */
static void framing_tag(struct imap_session *s)
{
	const char *p = s->cmd.data ? s->cmd.data : "";
	size_t n = strcspn(p, " ");
	if (n > IMAP_TAG_MAX_LEN || !imap_tag_valid(p, n))
		n = 0;
	memcpy(s->tag, p, n);
	s->tag[n] = '\0';
}

/* An APPEND the memory budgets cannot take: NO [OVERQUOTA] as a full Dovecot mailbox
 * answers.  A synchronizing literal is refused before "+ OK" (the client never sends
 * it: the command ends here); a LITERAL+ one is read and dropped, and the answer comes
 * when its command line ends. */
static void append_refuse(struct imap_session *s, uint64_t size, bool nonsync)
{
	if (!s->cmd_refused)
		imap_message_rejected(s, "quota", (size_t)size);
	if (nonsync) {
		s->cmd_refused = true;
		s->lit_discard = true;
		s->lit_left = size;
		buf_puts(&s->cmd, "\r\n");
		imap_set_input(s, IN_LITERAL);
		return;
	}
	framing_tag(s);
	s->cmd_start_us = session_now_us(&s->sess);
	s->sess.commands++;
	imap_tagged(s, "NO", OVERQUOTA_TEXT);
	buf_reset(&s->cmd);
	s->line_text = 0;
	s->seg_start = 0;
	s->cmd_refused = false;
	imap_release_command(s);
}

/* A complete command line (LF seen; CR still in the buffer). */
static void line_done(struct imap_session *s)
{
	size_t l = s->cmd.len;
	/* the CR of the line end, never the last byte of a literal before a bare LF */
	if (l > s->seg_start && s->cmd.data[l - 1] == '\r')
		l--;
	/* the part of the line after the last literal */
	uint64_t size;
	bool nonsync, bad;
	const char *d = s->cmd.data ? s->cmd.data : "";
	size_t seg = s->seg_start <= l ? s->seg_start : l;
	if (imap_line_literal(d + seg, l - seg, &size, &nonsync, &bad) && !bad) {
		bool append = framing_message(s);
		uint64_t room;
		size_t lim = text_limit(s);
		if (append) {
			/* one message literal up to literal_max, the whole command bounded */
			room = literal_max(s) + lim > s->cmd.len ? literal_max(s) + lim - s->cmd.len : 0;
			if (room > literal_max(s))
				room = literal_max(s);
		}
		else {
			room = lim > s->line_text ? lim - s->line_text : 0;
		}
		if (size > room) {
			too_long(s, "Literal size too large");
			return;
		}
		s->cmd.len = l;
		if (append) {
			/* received here, then copied by the parser: twice its size, taken
			 * before one byte of it is buffered */
			if (s->cmd_refused || size > SIZE_MAX / 2 ||
			    !imap_mem_take(s, (size_t)size * 2)) {
				append_refuse(s, size, nonsync);
				return;
			}
			s->lit_framing += (size_t)size;
			s->lit_charge += (size_t)size;
			buf_reserve_exact(&s->cmd, 2 + (size_t)size + text_limit(s));
		}
		buf_puts(&s->cmd, "\r\n");
		if (!nonsync)
			imap_out_str(s, "+ OK\r\n");
		s->lit_left = size;
		if (!append)
			s->line_text += (size_t)size;
		if (size > 0) {
			imap_set_input(s, IN_LITERAL);
			return;
		}
		/* {0}: the line goes on */
		s->seg_start = s->cmd.len;
		return;
	}
	s->cmd.len = l;
	if (s->cmd_refused) {
		/* a LITERAL+ APPEND whose message was dropped: its answer, not its run */
		framing_tag(s);
		s->cmd_start_us = session_now_us(&s->sess);
		s->sess.commands++;
		imap_tagged(s, "NO", OVERQUOTA_TEXT);
		s->cmd_refused = false;
		imap_release_command(s);
		buf_reset(&s->cmd);
		s->line_text = 0;
		s->seg_start = 0;
		return;
	}
	buf_putc(&s->cmd, '\0');
	s->cmd.len = l;
	command(s);
	if (s->cmd.alloc > 65536)
		buf_free(&s->cmd); /* a big APPEND: give the memory back */
	else
		buf_reset(&s->cmd);
	if (s->lit_framing) {
		/* the framing copy is gone; the parsed copy waits for the command's end
		 * (an APPEND waiting for its commit) */
		mem_give(s, s->lit_framing);
		s->lit_framing = 0;
	}
	s->line_text = 0;
	s->seg_start = 0;
}

/* Command text.  Returns bytes consumed. */
static size_t feed_cmd_text(struct imap_session *s, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;
	size_t lim = text_limit(s);
	if (s->line_text + content > lim + 1) {
		too_long(s, "Input buffer full, aborting");
		return take;
	}
	buf_append(&s->cmd, data, content);
	s->line_text += content;
	if (lf) {
		s->sess.feed_pos = data + take;
		line_done(s);
	}
	return take;
}

static size_t feed_literal(struct imap_session *s, const char *data, size_t len)
{
	size_t n = len;
	if ((uint64_t)n > s->lit_left)
		n = (size_t)s->lit_left;
	if (!s->lit_discard)
		buf_append(&s->cmd, data, n);
	s->lit_left -= n;
	if (s->lit_left == 0) {
		s->lit_discard = false;
		s->seg_start = s->cmd.len;
		imap_set_input(s, IN_LINE);
	}
	return n;
}

/* SASL continuation and IDLE lines. */
static size_t feed_plain_line(struct imap_session *s, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;
	if (s->line.len + content > AUTH_LINE_MAX + 1) {
		offence(s, "line_too_long", s->line.data ? s->line.data : "", s->line.len);
		buf_reset(&s->line);
		if (s->in == IN_IDLE) {
			imap_untagged(s, "BYE Input buffer full, aborting");
		} else {
			/* Dovecot drops the client: "Authentication response too large" */
			imap_auth_event_simple(s, imap_mech_name(s->mech), "malformed");
		}
		close_after(s, "protocol");
		return take;
	}
	buf_append(&s->line, data, content);
	if (!lf)
		return take;
	size_t l = s->line.len;
	if (l > 0 && s->line.data[l - 1] == '\r')
		l--;
	buf_putc(&s->line, '\0');
	s->cmd_start_us = session_now_us(&s->sess);
	if (s->in == IN_AUTH)
		imap_auth_line(s, s->line.data, l);
	else
		idle_line(s, s->line.data, l);
	buf_reset(&s->line);
	return take;
}

/* One step: command text, literal bytes, or a SASL / IDLE line. */
static size_t feed_step(void *engine, const char *data, size_t len)
{
	struct imap_session *s = engine;
	switch (s->in) {
	case IN_LITERAL:
		return feed_literal(s, data, len);
	case IN_AUTH:
	case IN_IDLE:
		return feed_plain_line(s, data, len);
	case IN_LINE:
		break;
	}
	return feed_cmd_text(s, data, len);
}

size_t imap_session_feed(struct imap_session *s, const char *data, size_t len)
{
	return session_feed(&s->sess, s, feed_step, data, len);
}

/* ---------------------------------------------------------------- lifecycle --- */

struct imap_session *imap_session_new(const struct imap_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx)
{
	struct imap_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	session_init(&s->sess, "imap", peer, ops, ctx, 0);
	s->sess.out_flush_at = OUT_FLUSH_AT;
	s->tls = tls_active;
	size_t lim = cfg->line_length_limit ? cfg->line_length_limit : 65536;
	size_t litmax = cfg->literal_max ? cfg->literal_max : 10 * 1024 * 1024;
	buf_init(&s->cmd, lim + litmax + lim + 64);
	buf_init(&s->line, AUTH_LINE_MAX + 16);
	s->cs = CS_NOAUTH;
	s->in = IN_LINE;
	return s;
}

void imap_session_start(struct imap_session *s)
{
	imap_untagged(s, "OK [CAPABILITY %s] Dovecot (Debian) ready.", capability(s));
	session_greet(&s->sess, s->cfg->login_latency);
	s->line_writes = true; /* imap-login from here until the login */
}

void imap_session_free(struct imap_session **sp)
{
	if (!sp || !*sp)
		return;
	struct imap_session *s = *sp;
	if (s->userip_user[0])
		userip_release("imap", s->userip_user, s->sess.peer_ip);
	imap_release_command(s);
	free(s->auth_user_tmp);
	mailbox_free(&s->mbox);
	mem_give(s, s->mem_held);
	buf_free(&s->cmd);
	buf_free(&s->line);
	session_free(&s->sess);
	free(s);
	*sp = NULL;
}

void imap_session_resume(struct imap_session *s)
{
	session_resume(&s->sess);
}

void imap_session_tls_started(struct imap_session *s, const char *version,
			      const char *cipher, int bits)
{
	s->tls = true;
	if (s->sess.susp == SESSION_TLS) {
		/* RFC 3501 6.2.1: nothing from before the handshake survives */
		buf_reset(&s->cmd);
		buf_reset(&s->line);
		s->line_text = 0;
		s->seg_start = 0;
		s->lit_left = 0;
		s->lit_discard = false;
		s->cmd_refused = false;
		imap_set_input(s, IN_LINE);
		session_suspend(&s->sess, SESSION_RUN);
	}
}

void imap_session_hangup(struct imap_session *s, const char *reason)
{
	if (s->sess.susp == SESSION_CLOSED)
		return;
	if (s->sess.susp == SESSION_COMMIT) {
		/* The spool finishes the commit on its own: committed() still records the
		 * message, without a reply. */
		s->hung_up = true;
		return;
	}
	if (s->in == IN_AUTH && s->mech == MECH_LOGIN && s->auth_step == 1) {
		/* left at the password prompt: keep the user name it gave */
		struct auth_ev ev = {.mech = "LOGIN", .result = "aborted",
				     .user = s->auth_user_tmp ? (const char *)s->auth_user_tmp : "",
				     .user_len = s->auth_user_len};
		imap_auth_event(s, &ev);
	}
	if (reason && strcmp(reason, "timeout") == 0) {
		buf_reset(&s->sess.out);
		imap_untagged(s, "BYE Disconnected for inactivity.");
		flush_out(s);
	} else if (reason && strcmp(reason, "shutdown") == 0) {
		buf_reset(&s->sess.out);
		imap_untagged(s, "BYE Server shutting down.");
		flush_out(s);
	}
	session_hangup(&s->sess);
}

/* ----------------------------------------------------------------- vtable ---- */

static void *v_create(const void *cfg, const struct proto_peer *peer, bool tls_active,
		      const struct proto_host_ops *ops, void *ctx)
{
	return imap_session_new(cfg, peer, tls_active, ops, ctx);
}

static void v_start(void *s)
{
	imap_session_start(s);
}

static size_t v_feed(void *s, const char *data, size_t len)
{
	return imap_session_feed(s, data, len);
}

static void v_resume(void *s)
{
	imap_session_resume(s);
}

static void v_committed(void *s, const struct proto_commit_result *r)
{
	imap_session_committed(s, r);
}

static void v_tls_started(void *s, const char *version, const char *cipher, int bits)
{
	imap_session_tls_started(s, version, cipher, bits);
}

static void v_hangup(void *s, const char *reason)
{
	imap_session_hangup(s, reason);
}

static const char *v_state_name(const void *s)
{
	return imap_session_state_name(s);
}

static void v_counters(const void *s, struct proto_counters *c_r)
{
	imap_session_counters(s, c_r);
}

static const char *v_auth_user(const void *s)
{
	return imap_session_auth_user(s);
}

static void v_destroy(void *s)
{
	struct imap_session *is = s;
	imap_session_free(&is);
}

const struct proto_engine imap_engine = {
	.name = "imap",
	.create = v_create,
	.start = v_start,
	.feed = v_feed,
	.resume = v_resume,
	.committed = v_committed,
	.tls_started = v_tls_started,
	.hangup = v_hangup,
	.state_name = v_state_name,
	.counters = v_counters,
	.auth_user = v_auth_user,
	.destroy = v_destroy,
};
