/*
 * smtp: the ESMTP engine (see smtp.h for the host contract).
 *
 * The engine is three files sharing smtp_private.h: this one (state, output, events,
 * the command table with the envelope verbs, input framing, lifecycle),
 * smtp_auth.c (AUTH and its SASL exchanges) and smtp_message.c (DATA, BDAT, the
 * Received header and the commit).  Layout of this file, top to bottom:
 *   - state names and the one function that changes state;
 *   - output: replies are collected per step and leave through ops->send when the step
 *     ends, after an ops->wait when Postfix would have slept (error tarpit, failed
 *     AUTH), so a pipelined group's replies are contiguous;
 *   - events (helo, auth, mail, rcpt, vrfy, message, message_rejected, offence);
 *   - the command table: per verb flags, a check step (sequence and syntax; it answers
 *     the 4xx/5xx) and a do step;
 *   - the input side: line framing with Postfix's line_length_limit semantics, DATA
 *     (dot-unstuffing, bare-LF tolerance), BDAT chunks, AUTH continuations.
 *
 * Persona: reply texts and ordering follow Postfix 3.7 smtpd (smtpd.c,
 * smtpd_sasl_glue.c, xsasl_dovecot_server.c) and the recordings in
 * shared/persona/transcripts; docs/persona.md lists the deliberate differences.
 * Everything is bounded: the line buffer by line_length_limit (12288 for SASL
 * answers, as Postfix's smtpd_sasl_resp_limit), recipients by recipient_limit.
 */
#include "proto/proto_event.h"
#include "proto/smtp_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <strings.h>
#include <time.h>

#include "deceive/auth_policy.h"
#include "proto/smtp_parse.h"
#include "store/event.h"
#include "util/buf.h"

/* ------------------------------------------------------------------ state ---- */

static const char *state_name(const struct smtp_session *s)
{
	if (s->sess.susp == SESSION_CLOSED)
		return "closed";
	if (s->sess.susp == SESSION_TLS)
		return "starttls";
	if (s->sess.susp == SESSION_COMMIT)
		return "commit";
	switch (s->state) {
	case ST_DATA:
		return "data";
	case ST_CHUNK:
		return "bdat";
	case ST_AUTH:
		return "auth";
	case ST_CMD:
		break;
	}
	if (s->bdat_active)
		return "bdat";
	if (s->rcpt_count > 0)
		return "rcpt";
	if (s->in_mail)
		return "mail";
	if (s->have_helo)
		return "helo";
	return "connected";
}

static const char *const sstate_names[] = {"cmd", "data", "chunk", "auth"};

/* The one place the input state changes; the host sees old -> new (session_trace). */
void smtp_set_state(struct smtp_session *s, enum sstate new_state)
{
	if (s->state != new_state)
		session_trace(&s->sess, "input", sstate_names[s->state], sstate_names[new_state]);
	s->state = new_state;
}

const char *smtp_session_state_name(const struct smtp_session *s)
{
	return state_name(s);
}

void smtp_session_counters(const struct smtp_session *s, struct proto_counters *c_r)
{
	c_r->commands = s->sess.commands;
	c_r->errors = s->sess.errors;
	c_r->messages = s->sess.messages;
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->authenticated ? s->x->auth_user : NULL;
}

/* ------------------------------------------------------------------ output --- */

/* Queue one reply line.  Postfix's smtpd_chat_reply() sleeps before any reply once
 * the error count reached the soft limit; the caller's step turns delay_ms into one
 * ops->wait before the replies leave. */
void smtp_reply(struct smtp_session *s, const char *fmt, ...)
{
	char line[SMTP_REPLY_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) - 2 ? (size_t)n : sizeof(line) - 3;
	line[len++] = '\r';
	line[len++] = '\n';
	/* One sleep per step: a multi-line reply is one Postfix reply. */
	if (s->cfg->soft_error_limit > 0 && s->sess.errors >= s->cfg->soft_error_limit &&
	    !s->step_delayed) {
		s->sess.delay_ms += s->cfg->error_sleep_ms;
		s->step_delayed = true;
	}
	buf_append(&s->sess.out, line, len);
	s->last_code = atoi(line);
}

/* A 4xx/5xx answer to a command: Postfix's error_count++. */
void smtp_count_error(struct smtp_session *s)
{
	s->sess.errors++;
}

/* ------------------------------------------------------------------ events --- */

void smtp_offence(struct smtp_session *s, const char *kind, const char *detail,
		    size_t len)
{
	session_emit(&s->sess, proto_offence_event(kind, detail, len));
}

static void offence_once(struct smtp_session *s, unsigned bit, const char *kind,
			 const char *detail, size_t len)
{
	session_offence_once(&s->sess, bit, kind, detail, len);
}

/* ------------------------------------------------------------- transaction --- */

void smtp_msg_abort(struct smtp_session *s)
{
	if (s->msg_is_open) {
		s->sess.ops->msg_abort(s->sess.ctx);
		s->msg_is_open = false;
	}
}

/* Postfix mail_reset(): forget the envelope, the size and any message in progress. */
void smtp_mail_reset(struct smtp_session *s)
{
	smtp_msg_abort(s);
	s->in_mail = false;
	if (s->x) {
		s->x->sender[0] = '\0';
		s->x->bdat_reply[0] = '\0';
	}
	s->mail_smtputf8 = false;
	s->msg_size = 0;
	s->rcpt_count = 0;
	s->rcpt_overshoot = 0;
	buf_reset(&s->rcpts);
	s->msg_failed = false;
	s->msg_too_big = false;
	s->msg_bytes = 0;
	s->queue_id[0] = '\0';
	s->bdat_active = false;
	s->bdat_error = false;
	s->method_bdat = false;
}

/* ------------------------------------------------------------ command table --- */

enum {
	CMD_PRE_TLS = 1 << 0, /* allowed on submission before STARTTLS */
	CMD_LAST = 1 << 1,    /* must end a pipelined group (Postfix SMTPD_CMD_FLAG_LAST) */
	CMD_JUNK = 1 << 2,    /* counts toward smtpd_junk_command_limit */
};

struct smtp_cmd {
	const char *verb;
	unsigned flags;
	/* May it run now?  Answers the error and returns -1, or returns 0. */
	int (*check)(struct smtp_session *s, struct smtp_args *a);
	/* Do it (the check passed). */
	void (*run)(struct smtp_session *s, struct smtp_args *a);
};

bool smtp_auth_offered(const struct smtp_session *s)
{
	switch (s->cfg->role) {
	case SMTP_ROLE_SUBMISSION:
		return s->tls;
	case SMTP_ROLE_SMTPS:
		return true;
	case SMTP_ROLE_MX:
		return s->cfg->auth_on_mx;
	}
	return false;
}

static bool starttls_offered(const struct smtp_session *s)
{
	return s->cfg->tls_available && !s->tls;
}

/* Join tokens from..n with single spaces (Postfix collapse_args). */
void smtp_join_args(const struct smtp_args *a, size_t from, char *out, size_t outlen)
{
	size_t used = 0;
	out[0] = '\0';
	for (size_t k = from; k < a->n; k++) {
		size_t need = a->tok[k].len + (used ? 1 : 0);
		if (used + need + 1 > outlen)
			break;
		if (used)
			out[used++] = ' ';
		memcpy(out + used, a->tok[k].s, a->tok[k].len);
		used += a->tok[k].len;
		out[used] = '\0';
	}
}

static void helo_event(struct smtp_session *s, const char *verb)
{
	struct mxb_event *ev = mxb_event_new("helo");
	if (!ev)
		return;
	mxb_event_str(ev, "verb", verb);
	mxb_event_str(ev, "name", s->x->helo);
	session_emit(&s->sess, ev);
}

static int check_ehlo(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n < 2) {
		smtp_reply(s, "501 Syntax: EHLO hostname");
		smtp_offence(s, "bad_syntax", "EHLO", 4);
		return -1;
	}
	return 0;
}

static int check_helo(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n < 2) {
		smtp_reply(s, "501 Syntax: HELO hostname");
		smtp_offence(s, "bad_syntax", "HELO", 4);
		return -1;
	}
	return 0;
}

static void run_helo_common(struct smtp_session *s, struct smtp_args *a, bool esmtp)
{
	smtp_mail_reset(s);
	smtp_join_args(a, 1, s->x->helo, sizeof(s->x->helo));
	s->have_helo = true;
	s->esmtp = esmtp;
	helo_event(s, esmtp ? "EHLO" : "HELO");
}

static void run_ehlo(struct smtp_session *s, struct smtp_args *a)
{
	run_helo_common(s, a, true);
	const struct smtp_config *c = s->cfg;
	smtp_reply(s, "250-%s", c->hostname);
	smtp_reply(s, "250-PIPELINING");
	if (c->message_size_limit > 0)
		smtp_reply(s, "250-SIZE %llu", (unsigned long long)c->message_size_limit);
	else
		smtp_reply(s, "250-SIZE"); /* message_size_limit = 0: no limit */
	if (c->vrfy_enabled)
		smtp_reply(s, "250-VRFY");
	smtp_reply(s, "250-ETRN");
	if (starttls_offered(s))
		smtp_reply(s, "250-STARTTLS");
	if (smtp_auth_offered(s))
		smtp_reply(s, "250-AUTH PLAIN LOGIN%s", c->cram_md5 ? " CRAM-MD5" : "");
	smtp_reply(s, "250-ENHANCEDSTATUSCODES");
	smtp_reply(s, "250-8BITMIME");
	smtp_reply(s, "250-DSN");
	smtp_reply(s, "250-SMTPUTF8");
	smtp_reply(s, "250 CHUNKING");
}

static void run_helo(struct smtp_session *s, struct smtp_args *a)
{
	run_helo_common(s, a, false);
	smtp_reply(s, "250 %s", s->cfg->hostname);
}

static void mail_event(struct smtp_session *s, const struct smtp_path_req *r, bool syntax_ok)
{
	struct mxb_event *ev = mxb_event_new("mail");
	if (!ev)
		return;
	mxb_event_str(ev, "sender", syntax_ok ? r->addr : "");
	mxb_event_str(ev, "params", r->params);
	if (r->has_size && !r->size_overflow)
		mxb_event_int(ev, "size", (int64_t)r->size);
	else
		mxb_event_null(ev, "size");
	mxb_event_bool(ev, "accepted", s->last_code == 250);
	mxb_event_int(ev, "reply", s->last_code);
	session_emit(&s->sess, ev);
}

static int check_mail(struct smtp_session *s, struct smtp_args *a)
{
	if (s->bdat_active) {
		smtp_reply(s, "503 5.5.1 Error: MAIL after BDAT");
		smtp_offence(s, "bad_sequence", "MAIL", 4);
		return -1;
	}
	if (s->in_mail) {
		smtp_reply(s, "503 5.5.1 Error: nested MAIL command");
		smtp_offence(s, "bad_sequence", "MAIL", 4);
		return -1;
	}
	return 0;
}

static void run_mail(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_path_req r;
	char err[SMTP_REPLY_MAX];
	struct smtp_parse_limits lim = {
		.auth_active = smtp_auth_offered(s),
		.authenticated = s->authenticated,
	};
	enum smtp_parse_result pr = smtp_parse_mail(a, &lim, &r, err);
	/* Postfix stores SIZE= while it walks the parameters, and only smtp_mail_reset()
	 * clears it: a refused MAIL leaves its SIZE behind for the next one. */
	if (r.has_size)
		s->msg_size = r.size_overflow ? 0 : r.size;
	if (pr != SMTP_PARSE_OK) {
		smtp_reply(s, "%s", err);
		smtp_count_error(s);
		mail_event(s, &r, r.addr[0] != '\0' || pr != SMTP_PARSE_REJECT);
		return;
	}
	if (s->cfg->message_size_limit > 0 && s->msg_size > s->cfg->message_size_limit) {
		smtp_reply(s, "552 5.3.4 Message size exceeds fixed limit");
		smtp_count_error(s);
		mail_event(s, &r, true);
		return;
	}
	s->in_mail = true;
	snprintf(s->x->sender, sizeof(s->x->sender), "%s", r.addr);
	s->mail_smtputf8 = r.smtputf8;
	smtp_reply(s, "250 2.1.0 Ok");
	mail_event(s, &r, true);
}

static bool domain_is_local(const struct smtp_session *s, const char *addr)
{
	const char *dom = smtp_addr_domain(addr);
	if (!dom)
		return true; /* bare local part: Postfix appends $myorigin */
	for (size_t i = 0; i < s->cfg->n_local_domains; i++)
		if (strcasecmp(dom, s->cfg->local_domains[i]) == 0)
			return true;
	if (s->cfg->hostname && strcasecmp(dom, s->cfg->hostname) == 0)
		return true;
	return false;
}

static void rcpt_event(struct smtp_session *s, const struct smtp_path_req *r, bool relay)
{
	struct mxb_event *ev = mxb_event_new("rcpt");
	if (!ev)
		return;
	mxb_event_str(ev, "recipient", r->addr);
	mxb_event_str(ev, "params", r->params);
	mxb_event_bool(ev, "accepted", s->last_code == 250);
	mxb_event_int(ev, "reply", s->last_code);
	mxb_event_bool(ev, "relay", relay);
	session_emit(&s->sess, ev);
}

static int check_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	if (!s->in_mail) {
		smtp_reply(s, "503 5.5.1 Error: need MAIL command");
		smtp_offence(s, "bad_sequence", "RCPT", 4);
		return -1;
	}
	if (s->bdat_active) {
		smtp_reply(s, "503 5.5.1 Error: RCPT after BDAT");
		smtp_offence(s, "bad_sequence", "RCPT", 4);
		return -1;
	}
	return 0;
}

static bool vrfy_said_unknown(const struct smtp_session *s, const char *addr);

static void run_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_path_req r;
	char err[SMTP_REPLY_MAX];
	struct smtp_parse_limits lim = {.smtputf8 = s->mail_smtputf8};
	enum smtp_parse_result pr = smtp_parse_rcpt(a, &lim, &r, err);
	if (!r.syntax_ok) {
		smtp_reply(s, "%s", err);
		smtp_count_error(s);
		rcpt_event(s, &r, false);
		return;
	}
	if (s->cfg->recipient_limit > 0 && s->rcpt_count >= s->cfg->recipient_limit) {
		smtp_reply(s, "452 4.5.3 Error: too many recipients");
		/* Postfix forgives the first smtpd_recipient_overshoot_limit of these. */
		if (s->rcpt_overshoot++ >= RCPT_OVERSHOOT_LIMIT)
			smtp_count_error(s);
		rcpt_event(s, &r, false);
		return;
	}
	if (pr != SMTP_PARSE_OK) {
		smtp_reply(s, "%s", err);
		smtp_count_error(s);
		rcpt_event(s, &r, false);
		return;
	}
	/* Postfix's replies show the internal (unquoted) form of the address. */
	char unq[sizeof(r.addr)], shown[1100];
	size_t u = 0;
	for (const char *q = r.addr; *q && u + 1 < sizeof(unq); q++) {
		if (*q == '"')
			continue;
		if (*q == '\\' && q[1])
			q++;
		unq[u++] = *q;
	}
	unq[u] = '\0';
	session_printable(shown, sizeof(shown), unq, u);
	/* Sender-specified routing (user%host@us, host!user) is never local to Postfix
	 * (allow_untrusted_routing = no): nmap's smtp-open-relay probes exactly that. */
	bool local = !smtp_addr_is_routed(r.addr) &&
		     (domain_is_local(s, r.addr) || smtp_addr_is_postmaster(r.addr));
	bool relay = !local;
	if (s->cfg->role != SMTP_ROLE_MX && !s->authenticated) {
		/* Debian's submission/smtps: smtpd_client_restrictions=permit_sasl_authenticated,reject
		 * shows as a recipient rejection for every address. */
		smtp_reply(s, "554 5.7.1 <%s>: Recipient address rejected: Access denied", shown);
		smtp_count_error(s);
	} else if (local && !s->authenticated && vrfy_said_unknown(s, r.addr)) {
		/* this session's VRFY called the name unknown: RCPT agrees (persona.md) */
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local "
			      "recipient table", shown);
		smtp_count_error(s);
	} else if (s->authenticated || local || s->cfg->catch_all) {
		if (buf_append(&s->rcpts, r.addr, strlen(r.addr) + 1) < 0) {
			smtp_reply(s, "452 4.5.3 Error: too many recipients");
		} else {
			s->rcpt_count++;
			smtp_reply(s, "250 2.1.5 Ok");
			/* the attack's own enumeration makes the name plausible (deception.h) */
			if (local && !s->authenticated)
				auth_policy_note_recipient(s->cfg->auth, r.addr);
		}
	} else {
		smtp_reply(s, "454 4.7.1 <%s>: Relay access denied", shown);
		smtp_count_error(s);
	}
	rcpt_event(s, &r, relay);
}

static int check_rset(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n != 1) {
		smtp_reply(s, "501 5.5.4 Syntax: RSET");
		return -1;
	}
	return 0;
}

static void run_rset(struct smtp_session *s, struct smtp_args *a)
{
	smtp_mail_reset(s);
	smtp_reply(s, "250 2.0.0 Ok");
}

static int check_none(struct smtp_session *s, struct smtp_args *a)
{
	return 0;
}

static void run_noop(struct smtp_session *s, struct smtp_args *a)
{
	smtp_reply(s, "250 2.0.0 Ok");
}

static void run_quit(struct smtp_session *s, struct smtp_args *a)
{
	smtp_reply(s, "221 2.0.0 Bye");
	session_close_after(&s->sess, "quit");
}

static void vrfy_event(struct smtp_session *s, const char *verb, const char *arg)
{
	struct mxb_event *ev = mxb_event_new("vrfy");
	if (!ev)
		return;
	mxb_event_str(ev, "verb", verb);
	mxb_event_str(ev, "argument", arg);
	mxb_event_int(ev, "reply", s->last_code);
	session_emit(&s->sess, ev);
}

static int check_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	char arg[2100];
	smtp_join_args(a, 1, arg, sizeof(arg));
	if (!s->cfg->vrfy_enabled) {
		smtp_reply(s, "502 5.5.1 VRFY command is disabled");
		vrfy_event(s, "VRFY", arg);
		return -1;
	}
	if (a->n < 2) {
		smtp_reply(s, "501 5.5.4 Syntax: VRFY address [SMTPUTF8]");
		vrfy_event(s, "VRFY", arg);
		return -1;
	}
	return 0;
}

/* FNV-1a of the lower-case local part of addr: what VRFY and RCPT compare. */
static uint64_t local_part_key(const char *addr)
{
	const char *at = strrchr(addr, '@');
	size_t ll = at ? (size_t)(at - addr) : strlen(addr);
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < ll; i++) {
		h ^= (unsigned char)tolower((unsigned char)addr[i]);
		h *= 0x100000001b3ULL;
	}
	return h;
}

static bool vrfy_said_unknown(const struct smtp_session *s, const char *addr)
{
	uint64_t k = local_part_key(addr);
	for (unsigned i = 0; i < s->n_vrfy_unknown; i++)
		if (s->vrfy_unknown[i] == k)
			return true;
	return false;
}

static void vrfy_remember_unknown(struct smtp_session *s, const char *addr)
{
	size_t cap = sizeof(s->vrfy_unknown) / sizeof(s->vrfy_unknown[0]);
	if (vrfy_said_unknown(s, addr))
		return;
	/* past the bound the oldest is forgotten: a prober of 16+ names is answered
	 * by RCPT as by the catch-all it then believes this is */
	s->vrfy_unknown[s->n_vrfy_unknown % cap] = local_part_key(addr);
	if (s->n_vrfy_unknown < cap)
		s->n_vrfy_unknown++;
}

/* The local recipient table VRFY answers from, as Debian's local_recipient_maps
 * (passwd.byname + aliases) has it on a Debian 12 mail host: the base-passwd system
 * users, the daemons' users of Postfix, Dovecot and their usual neighbours,
 * postmaster and abuse (aliases), and the accounts that log in (fixed ones, cracked
 * ones: the policy).  Any other name is unknown, as on a stock server (RCPT still
 * accepts it: docs/persona.md). */
static bool vrfy_local_user(const struct smtp_session *s, const char *addr)
{
	static const char *const system_users[] = {
		"postmaster", "abuse", "root", "daemon", "bin", "sys", "sync", "games", "man",
		"lp", "mail", "news", "uucp", "proxy", "www-data", "backup", "list", "irc",
		"_apt", "nobody", "systemd-network", "systemd-timesync", "messagebus", "sshd",
		"postfix", "dovecot", "dovenull"};
	const char *at = strrchr(addr, '@');
	size_t ll = at ? (size_t)(at - addr) : strlen(addr);
	for (size_t i = 0; i < sizeof(system_users) / sizeof(system_users[0]); i++)
		if (strlen(system_users[i]) == ll && strncasecmp(system_users[i], addr, ll) == 0)
			return true;
	return auth_policy_has_user(s->cfg->auth, addr);
}

static void run_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	char arg[2100], shown[2100];
	/* "VRFY address [SMTPUTF8]": the option is not part of the address. */
	struct smtp_args args = *a;
	if (args.n > 2 && strcasecmp(args.tok[args.n - 1].s, "SMTPUTF8") == 0)
		args.n--;
	smtp_join_args(&args, 1, arg, sizeof(arg));
	/* Postfix parses the argument as a recipient address first. */
	struct smtp_args one = {.n = 3};
	char to[] = "to:";
	one.tok[0] = a->tok[0];
	one.tok[1] = (struct smtp_token){.s = to, .len = 3};
	one.tok[2] = (struct smtp_token){.s = arg, .len = strlen(arg),
					 .error = a->n > 1 && a->tok[1].error};
	struct smtp_path_req r;
	char err[SMTP_REPLY_MAX];
	struct smtp_parse_limits lim = {.smtputf8 = true};
	if (smtp_parse_rcpt(&one, &lim, &r, err) != SMTP_PARSE_OK) {
		smtp_reply(s, "501 5.1.3 Bad recipient address syntax");
		smtp_count_error(s);
		vrfy_event(s, "VRFY", arg);
		return;
	}
	session_printable(shown, sizeof(shown), arg, strlen(arg));
	char addr[sizeof(r.addr)];
	session_printable(addr, sizeof(addr), r.addr, strlen(r.addr));
	/* As stock Postfix: smtpd_recipient_restrictions first (a foreign domain is a relay
	 * attempt), then the local recipient table (docs/persona.md: VRFY). */
	bool local = domain_is_local(s, r.addr) || smtp_addr_is_postmaster(r.addr);
	if (s->cfg->role != SMTP_ROLE_MX && !s->authenticated) {
		/* Debian's submission/smtps client restrictions, checked with RCPT's */
		smtp_reply(s, "554 5.7.1 <%s>: Recipient address rejected: Access denied", addr);
		smtp_count_error(s);
	} else if (!local && !s->cfg->catch_all && !s->authenticated) {
		smtp_reply(s, "454 4.7.1 <%s>: Relay access denied", addr);
		smtp_count_error(s);
	} else if (local && !vrfy_local_user(s, r.addr)) {
		smtp_reply(s, "550 5.1.1 <%s>: Recipient address rejected: User unknown in local "
			      "recipient table", addr);
		smtp_count_error(s);
		vrfy_remember_unknown(s, r.addr);
	} else {
		smtp_reply(s, "252 2.0.0 %s", shown);
	}
	vrfy_event(s, "VRFY", arg);
}

static bool valid_hostname(const char *h)
{
	size_t len = strlen(h);
	if (len == 0 || len > 255)
		return false;
	size_t label = 0;
	for (const char *p = h; *p; p++) {
		char c = *p;
		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
		if (++label > 63)
			return false;
	}
	return true;
}

static int check_etrn(struct smtp_session *s, struct smtp_args *a)
{
	if (s->in_mail) {
		smtp_reply(s, "503 Error: MAIL transaction in progress");
		return -1;
	}
	if (a->n != 2) {
		smtp_reply(s, "500 Syntax: ETRN domain");
		return -1;
	}
	const char *d = a->tok[1].s;
	if (*d == '@' || *d == '#')
		d++;
	bool literal = d[0] == '[' && strlen(d) > 2 && d[strlen(d) - 1] == ']';
	if (!valid_hostname(d) && !literal) {
		smtp_reply(s, "501 Error: invalid parameter syntax");
		return -1;
	}
	return 0;
}

static void run_etrn(struct smtp_session *s, struct smtp_args *a)
{
	const char *d = a->tok[1].s;
	if (*d == '@' || *d == '#')
		d++;
	/* No fast_flush_domains: Postfix's FLUSH_STAT_DENY answer. */
	smtp_reply(s, "459 <%s>: service unavailable", d);
}

static int check_starttls(struct smtp_session *s, struct smtp_args *a)
{
	/* Postfix allows STARTTLS inside a transaction (RFC 2487 does not forbid it)
	 * and simply resets it. */
	if (a->n != 1) {
		smtp_reply(s, "501 5.5.4 Syntax: STARTTLS");
		return -1;
	}
	if (s->tls) {
		smtp_reply(s, "554 5.5.1 Error: TLS already active");
		return -1;
	}
	if (!s->cfg->tls_available) {
		smtp_reply(s, "502 5.5.1 Error: command not implemented");
		return -1;
	}
	return 0;
}

static void run_starttls(struct smtp_session *s, struct smtp_args *a)
{
	smtp_reply(s, "220 2.0.0 Ready to start TLS");
	/* What the client sent after the command is the host's to discard and record
	 * (proto.h: starttls), as for IMAP and POP3: recorded here too, it was two
	 * events for one injection. */
	session_suspend(&s->sess, SESSION_TLS);
}

static const struct smtp_cmd cmd_table[] = {
	{"HELO", CMD_PRE_TLS | CMD_LAST | CMD_JUNK, check_helo, run_helo},
	{"EHLO", CMD_PRE_TLS | CMD_LAST | CMD_JUNK, check_ehlo, run_ehlo},
	{"STARTTLS", CMD_PRE_TLS, check_starttls, run_starttls},
	{"AUTH", 0, smtp_auth_check, smtp_auth_run},
	{"MAIL", 0, check_mail, run_mail},
	{"RCPT", 0, check_rcpt, run_rcpt},
	{"DATA", CMD_LAST, smtp_data_check, smtp_data_run},
	{"BDAT", 0, smtp_bdat_check, smtp_bdat_run},
	{"RSET", CMD_JUNK, check_rset, run_rset},
	{"NOOP", CMD_PRE_TLS | CMD_LAST | CMD_JUNK, check_none, run_noop},
	{"VRFY", CMD_LAST | CMD_JUNK, check_vrfy, run_vrfy},
	{"ETRN", CMD_JUNK, check_etrn, run_etrn},
	{"QUIT", CMD_PRE_TLS, check_none, run_quit},
};

static const struct smtp_cmd *cmd_lookup(const char *verb)
{
	for (size_t i = 0; i < sizeof(cmd_table) / sizeof(cmd_table[0]); i++)
		if (strcasecmp(verb, cmd_table[i].verb) == 0)
			return &cmd_table[i];
	return NULL;
}

/* Postfix 3.7 smtpd_forbidden_commands default (`postconf -d`: CONNECT GET POST
 * regexp:{{/^[^A-Z]/ Bogus}}, a case-insensitive table: a verb that does not start with
 * a letter, e.g. a TLS ClientHello or JSON sent to port 25), plus its is_header()
 * test. */
static bool forbidden(const char *verb)
{
	unsigned char c0 = (unsigned char)verb[0];
	bool letter = (c0 >= 'A' && c0 <= 'Z') || (c0 >= 'a' && c0 <= 'z');
	return !letter || strcasecmp(verb, "CONNECT") == 0 || strcasecmp(verb, "GET") == 0 ||
	       strcasecmp(verb, "POST") == 0 || smtp_is_header_name(verb);
}

/* One command line (CRLF removed, NUL-terminated, at most line_length_limit). */
static void command_line(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_config *c = s->cfg;
	s->sess.commands++;
	s->last_code = 0;
	if (c->command_limit > 0 && s->sess.commands > c->command_limit) {
		smtp_reply(s, "421 4.7.0 %s Error: too many errors", c->hostname);
		smtp_offence(s, "command_limit", line, len);
		session_close_after(&s->sess, "command_limit");
		return;
	}
	char *nul = memchr(line, '\0', len);
	if (nul) {
		/* Postfix handles the line as a C string: it ends at the NUL. */
		offence_once(s, ONCE_NUL, "nul_byte", line, len);
		len = (size_t)(nul - line);
	}
	if (!smtp_valid_utf8(line, len)) {
		smtp_reply(s, "500 5.5.2 Error: bad UTF-8 syntax");
		smtp_count_error(s);
		smtp_offence(s, "bad_syntax", line, len);
		return;
	}
	char detail[PROTO_DETAIL_MAX + 1];
	size_t dlen = len < PROTO_DETAIL_MAX ? len : PROTO_DETAIL_MAX;
	memcpy(detail, line, dlen);
	detail[dlen] = '\0';

	struct smtp_args a;
	if (smtp_tokenize(line, &a) == 0) {
		smtp_reply(s, "500 5.5.2 Error: bad syntax");
		smtp_count_error(s);
		smtp_offence(s, "bad_syntax", detail, dlen);
		return;
	}
	const struct smtp_cmd *cmd = cmd_lookup(a.tok[0].s);
	if (!cmd) {
		if (forbidden(a.tok[0].s)) {
			smtp_reply(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
			smtp_offence(s, "forbidden_command", detail, dlen);
			session_close_after(&s->sess, "forbidden_command");
			return;
		}
		smtp_reply(s, "500 5.5.2 Error: command not recognized");
		smtp_count_error(s);
		if (strcasecmp(a.tok[0].s, "EXPN") == 0) {
			char arg[2100];
			smtp_join_args(&a, 1, arg, sizeof(arg));
			vrfy_event(s, "EXPN", arg);
		} else {
			smtp_offence(s, "unknown_command", detail, dlen);
		}
		return;
	}
	if (c->role == SMTP_ROLE_SUBMISSION && !s->tls && !(cmd->flags & CMD_PRE_TLS)) {
		smtp_reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		smtp_count_error(s);
		if (cmd->run == smtp_auth_run)
			smtp_auth_event_simple(s, a.n > 1 ? a.tok[1].s : "", "tls_required");
		return;
	}
	/* Postfix logs "improper command pipelining" when more input is already waiting
	 * after a command that must end a group, or after anything before EHLO. */
	if ((!s->esmtp || (cmd->flags & CMD_LAST)) && s->sess.feed_pos && s->sess.feed_pos < s->sess.feed_end)
		offence_once(s, ONCE_PIPELINING, "pipelining", s->sess.feed_pos,
			     (size_t)(s->sess.feed_end - s->sess.feed_pos));
	if (cmd->check(s, &a) < 0) {
		/* A BDAT whose chunk is being skipped is answered (and counted) once the
		 * chunk bytes are read. */
		if (s->last_code >= 400 && !s->sess.close_reason && s->state != ST_CHUNK)
			smtp_count_error(s);
	} else {
		cmd->run(s, &a);
	}
	if ((cmd->flags & CMD_JUNK) && s->junk_cmds++ > JUNK_CMD_LIMIT)
		s->sess.errors++;
}

/* ------------------------------------------------------------------ input ---- */

/* Postfix's smtpd loop checks the hard limit before it reads the next command, and
 * smtpd_chat_reply() sleeps before the 421 as before any reply past the soft limit: the
 * 421 comes unasked, error_sleep after the reply that reached the limit (measured on
 * Debian's Postfix 3.7: 1.0 s, tests/persona/transcripts/smtp-too-many-errors.txt).
 * When this step's replies are held already, the 421 waits for the resume; nothing
 * more is read meanwhile, since the held step ends the feed. */
void smtp_error_limit(struct smtp_session *s)
{
	smtp_offence(s, "too_many_errors", "", 0);
	if (s->step_delayed && s->sess.delay_ms > 0) {
		s->limit_421_due = true;
		return;
	}
	smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
	session_close_after(&s->sess, "too_many_errors");
}

/* After a command line, the end of DATA or a chunk: Postfix's hard error limit. */
static void after_step(struct smtp_session *s)
{
	const struct smtp_config *c = s->cfg;
	if (!s->sess.close_reason && !s->limit_421_due && s->sess.susp == SESSION_RUN &&
	    c->hard_error_limit > 0 && s->sess.errors >= c->hard_error_limit &&
	    s->state == ST_CMD)
		smtp_error_limit(s);
}

/* A complete line from the framer: content without LF; CR stripped if present. */
static void line_complete(struct smtp_session *s, char *p, size_t len, bool bare_lf)
{
	if (bare_lf)
		offence_once(s, ONCE_BARE_LF, "bare_lf", p, len);
	switch (s->state) {
	case ST_DATA:
		smtp_data_piece(s, p, len, true);
		if (s->state != ST_DATA || s->sess.susp != SESSION_RUN)
			after_step(s);
		return;
	case ST_AUTH:
		smtp_auth_line(s, p, len);
		after_step(s);
		return;
	case ST_CMD:
		command_line(s, p, len);
		after_step(s);
		return;
	case ST_CHUNK:
		break;
	}
}

static size_t line_limit(const struct smtp_session *s)
{
	size_t lim = s->cfg->line_length_limit ? s->cfg->line_length_limit : 2048;
	if (lim < 16)
		lim = 16; /* room for a CR held back between DATA pieces */
	if (s->state == ST_AUTH)
		return SASL_RESP_LIMIT > lim ? SASL_RESP_LIMIT : lim;
	return lim;
}

static size_t feed_chunk(struct smtp_session *s, const char *data, size_t len)
{
	size_t n = len;
	if ((uint64_t)n > s->chunk_left)
		n = (size_t)s->chunk_left;
	if (!s->chunk_discard && n > 0)
		smtp_msg_put(s, data, n);
	s->chunk_left -= n;
	if (s->chunk_left == 0) {
		smtp_chunk_done(s);
		after_step(s);
	}
	return n;
}

/* Line framing (session_frame): DATA lines longer than the limit are cut into pieces
 * (Postfix stores them as continuation records, never refused); command and SASL
 * lines keep their first line_length_limit bytes and skip the rest (Postfix's
 * smtp_get(..., SMTP_GET_FLAG_SKIP)).  Returns bytes consumed from data. */
static size_t feed_lines(struct smtp_session *s, const char *data, size_t len)
{
	struct session_line l;
	enum session_frame_result r;
	bool data_mode = s->state == ST_DATA;
	size_t take = session_frame(&s->in, data, len, line_limit(s),
				    data_mode ? FRAME_CUT : FRAME_SKIP, &l, &r);
	switch (r) {
	case FRAME_MORE:
		if (s->in.skipping)
			offence_once(s, ONCE_LINE_TOO_LONG, "line_too_long", s->in.line.data,
				     s->in.line.len);
		break;
	case FRAME_PIECE:
		smtp_data_piece(s, l.p, l.len, false);
		break;
	case FRAME_LINE:
		if (l.overflow && !data_mode)
			offence_once(s, ONCE_LINE_TOO_LONG, "line_too_long", l.p, l.len);
		s->overflowed = l.overflow;
		s->sess.feed_pos = data + take;
		line_complete(s, l.p, l.len, l.bare_lf);
		s->overflowed = false;
		break;
	case FRAME_TOO_LONG:
		break;
	}
	return take;
}

/* One step: one line (or piece, or chunk bytes) of input. */
static size_t feed_step(void *engine, const char *data, size_t len)
{
	struct smtp_session *s = engine;
	s->step_delayed = false; /* one error sleep per reply */
	if (s->state == ST_CHUNK)
		return feed_chunk(s, data, len);
	return feed_lines(s, data, len);
}

size_t smtp_session_feed(struct smtp_session *s, const char *data, size_t len)
{
	if (!s->x && len > 0 && s->sess.susp == SESSION_RUN) {
		s->x = calloc(1, sizeof(*s->x));
		if (!s->x) {
			session_close_after(&s->sess, "error");
			session_end_step(&s->sess);
			return len;
		}
	}
	return session_feed(&s->sess, s, feed_step, data, len);
}

/* ---------------------------------------------------------------- lifecycle --- */

struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	session_init(&s->sess, "smtp", peer, ops, ctx, 64 * 1024);
	if (peer) {
		if (peer->rdns && *peer->rdns) {
			session_printable(s->peer_rdns, sizeof(s->peer_rdns), peer->rdns,
				  strlen(peer->rdns));
			s->have_rdns = true;
		}
	}
	s->tls = tls_active;
	if (tls_active) {
		snprintf(s->tls_version, sizeof(s->tls_version), "TLS");
		snprintf(s->tls_cipher, sizeof(s->tls_cipher), "unknown");
	}
	size_t lim = cfg->line_length_limit ? cfg->line_length_limit : 2048;
	lim = lim < 16 ? 16 : lim;
	size_t cap = (lim > SASL_RESP_LIMIT ? lim : SASL_RESP_LIMIT) + 8;
	session_framer_init(&s->in, cap);
	/* Recipients: bounded by recipient_limit addresses of at most 1 KB. */
	buf_init(&s->rcpts, (size_t)(cfg->recipient_limit ? cfg->recipient_limit : 1000) * 1025);
	s->state = ST_CMD;
	return s;
}

void smtp_session_start(struct smtp_session *s)
{
	smtp_reply(s, "220 %s ESMTP Postfix (Debian/GNU)", s->cfg->hostname);
	session_flush(&s->sess);
}

void smtp_session_free(struct smtp_session **sp)
{
	if (!sp || !*sp)
		return;
	struct smtp_session *s = *sp;
	if (s->msg_is_open && s->sess.susp != SESSION_COMMIT)
		s->sess.ops->msg_abort(s->sess.ctx);
	session_framer_free(&s->in);
	session_free(&s->sess);
	buf_free(&s->rcpts);
	free(s->auth_tmp);
	free(s->x);
	free(s);
	*sp = NULL;
}

void smtp_session_resume(struct smtp_session *s)
{
	if (!session_resume(&s->sess) || !s->limit_421_due || s->sess.susp != SESSION_RUN)
		return;
	/* the held reply is out; now the 421, after a sleep of its own */
	s->limit_421_due = false;
	s->step_delayed = false;
	smtp_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
	session_close_after(&s->sess, "too_many_errors");
	session_end_step(&s->sess);
}

void smtp_session_tls_started(struct smtp_session *s, const char *version,
			      const char *cipher, int bits)
{
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", version ? version : "TLS");
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher ? cipher : "unknown");
	s->tls_bits = bits;
	s->tls = true;
	if (s->sess.susp == SESSION_TLS) {
		/* RFC 3207 4.2: forget everything learned before the handshake. */
		smtp_mail_reset(s);
		s->have_helo = false;
		s->esmtp = false;
		s->authenticated = false;
		if (s->x) {
			s->x->helo[0] = '\0';
			s->x->auth_user[0] = '\0';
		}
		session_framer_reset(&s->in);
		s->overflowed = false;
		smtp_set_state(s, ST_CMD);
		session_suspend(&s->sess, SESSION_RUN);
	}
}

void smtp_session_hangup(struct smtp_session *s, const char *reason)
{
	if (s->sess.susp == SESSION_CLOSED)
		return;
	bool timeout = reason && strcmp(reason, "timeout") == 0;
	bool in_transfer = s->state == ST_DATA || s->state == ST_CHUNK ||
			   (s->bdat_active && s->msg_is_open);
	if (s->sess.susp == SESSION_COMMIT) {
		/* The spool finishes the commit on its own; nothing to abort here. */
	} else if (in_transfer) {
		smtp_msg_abort(s);
		smtp_message_rejected(s, timeout ? "timeout" : "hangup", timeout ? 421 : 0);
	}
	if (timeout) {
		buf_reset(&s->sess.out);
		smtp_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		session_flush(&s->sess);
	}
	session_hangup(&s->sess);
}

/* ----------------------------------------------------------------- vtable ---- */

static void *v_create(const void *cfg, const struct proto_peer *peer, bool tls_active,
		      const struct proto_host_ops *ops, void *ctx)
{
	return smtp_session_new(cfg, peer, tls_active, ops, ctx);
}

static void v_start(void *s)
{
	smtp_session_start(s);
}

static size_t v_feed(void *s, const char *data, size_t len)
{
	return smtp_session_feed(s, data, len);
}

static void v_resume(void *s)
{
	smtp_session_resume(s);
}

static void v_committed(void *s, const struct proto_commit_result *r)
{
	smtp_session_committed(s, r);
}

static void v_tls_started(void *s, const char *version, const char *cipher, int bits)
{
	smtp_session_tls_started(s, version, cipher, bits);
}

static void v_hangup(void *s, const char *reason)
{
	smtp_session_hangup(s, reason);
}

static const char *v_state_name(const void *s)
{
	return smtp_session_state_name(s);
}

static void v_counters(const void *s, struct proto_counters *c_r)
{
	smtp_session_counters(s, c_r);
}

static const char *v_auth_user(const void *s)
{
	return smtp_session_auth_user(s);
}

static void v_destroy(void *s)
{
	struct smtp_session *ss = s;
	smtp_session_free(&ss);
}

const struct proto_engine smtp_engine = {
	.name = "smtp",
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
