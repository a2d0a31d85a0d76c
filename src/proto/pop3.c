/*
 * pop3: the POP3 engine (see pop3.h for the contract).
 *
 * Layout, top to bottom:
 *   - session struct, state names and the one function that changes state;
 *   - output: replies queue in s->out and leave in one ops->send at the end of a feed
 *     or resume; a failed login flushes what came before, queues its -ERR and asks
 *     for ops->wait(auth_failure_delay_ms) first, as Dovecot's auth_failure_delay;
 *   - events (auth, offence);
 *   - authentication (USER/PASS, AUTH PLAIN/LOGIN with SASL-IR and continuations),
 *     all through one auth_try() that asks the policy and opens the mailbox;
 *   - two command tables, as Dovecot has two processes: pop3-login (authorization
 *     state) and pop3 (transaction state).  Each entry has a check step (argument
 *     syntax; it answers the -ERR) and a do step;
 *   - input: line framing with Dovecot's limits, the bad-command counter.
 *
 * Persona: reply texts follow Dovecot 2.3 (src/pop3-login, src/pop3) and the
 * recordings in shared/persona/transcripts/pop3*.txt; docs/persona.md lists what is
 * emulated and what is not (the per-IP auth penalty).
 */
#include "proto/pop3.h"
#include "proto/proto_event.h"
#include "proto/session.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "proto/sasl.h"
#include "store/event.h"
#include "util/buf.h"
#include "proto/userip.h"

#define PRE_LINE_LIMIT 1024   /* Dovecot LOGIN_MAX_INBUF_SIZE */
#define SASL_LINE_LIMIT 8192  /* Dovecot LOGIN_MAX_AUTH_BUF_SIZE: AUTH lines, responses */
#define POST_LINE_LIMIT 4096  /* Dovecot pop3 MAX_INBUF_SIZE */
#define BAD_LIMIT_PRE 3       /* pop3-login CLIENT_MAX_BAD_COMMANDS (>=) */
#define BAD_LIMIT_POST 20     /* pop3 CLIENT_MAX_BAD_COMMANDS (>) */
#define USER_MAX 512
#define OUT_CAP (8u * 1024 * 1024) /* a RETR of the largest generated message fits */
#define OUT_FLUSH (64u * 1024)     /* hand long pipelined output to the host early */

enum phase { PH_AUTHORIZATION, PH_TRANSACTION };
enum input { IN_CMD, IN_SASL };
enum mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN };

enum once_offence {
	ONCE_BARE_LF = 1 << 0,
	ONCE_NUL = 1 << 1,
};

struct pop3_session {
	struct session sess;           /* output, suspension, counters, events (session.h) */
	const struct pop3_config *cfg;

	bool tls;
	enum phase phase;
	enum input input;

	/* USER/PASS: the last USER argument (Dovecot last_user). */
	bool have_user;
	char *user;                    /* malloc'd: every byte of the argument */
	size_t user_len;
	/* USER refused before TLS: still recorded with the PASS that follows. */
	bool have_refused_user;

	/* SASL exchange in progress */
	enum mech mech;
	int sasl_step;                 /* LOGIN: 0 username, 1 password */
	char *login_user;              /* malloc'd: every decoded byte */
	size_t login_user_len;
	unsigned auth_fails;           /* failed logins so far (the auth penalty) */
	bool penalty_charged;          /* this attempt already waited its penalty */

	/* Transaction state: this session's copy of the INBOX. */
	char auth_user[USER_MAX];
	bool userip_held;              /* counted in userip until the end */
	struct mbox_set *mbox;
	struct mbox_folder *inbox;
	bool *deleted;
	size_t n_msgs;                 /* message numbers are fixed at login */
	size_t n_deleted;

	/* Input framing */
	struct session_framer in;

	unsigned bad;                  /* consecutive bad commands (Dovecot bad_counter) */
};

static const uint8_t zero_secret[32];

/* ------------------------------------------------------------------ state ---- */

/* The one place the session state (phase and input mode) changes; the host sees
 * every old -> new (session_trace). */
static void set_state(struct pop3_session *s, enum phase ph, enum input in)
{
	static const char *const names[2][2] = {{"authorization/cmd", "authorization/sasl"},
						{"transaction/cmd", "transaction/sasl"}};
	if (s->phase != ph || s->input != in)
		session_trace(&s->sess, "state", names[s->phase][s->input], names[ph][in]);
	s->phase = ph;
	s->input = in;
}

const char *pop3_session_state_name(const struct pop3_session *s)
{
	switch (s->sess.susp) {
	case SESSION_CLOSED: return "closed";
	case SESSION_TLS: return "starttls";
	case SESSION_WAIT: return "wait";
	case SESSION_COMMIT:
	case SESSION_RUN: break;
	}
	if (s->input == IN_SASL)
		return "auth";
	return s->phase == PH_TRANSACTION ? "transaction" : "authorization";
}

void pop3_session_counters(const struct pop3_session *s, struct proto_counters *c_r)
{
	c_r->commands = s->sess.commands;
	c_r->errors = s->sess.errors;
	c_r->messages = 0; /* POP3 captures nothing */
}

const char *pop3_session_auth_user(const struct pop3_session *s)
{
	return s->phase == PH_TRANSACTION ? s->auth_user : NULL;
}

static bool plaintext_ok(const struct pop3_session *s)
{
	return s->tls || s->cfg->allow_plaintext;
}

/* ------------------------------------------------------------------ output --- */

static void reply(struct pop3_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* One reply line; an -ERR counts as an error. */
static void reply(struct pop3_session *s, const char *fmt, ...)
{
	struct buf *out = &s->sess.out;
	size_t start = out->len;
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(out, fmt, ap);
	va_end(ap);
	buf_puts(out, "\r\n");
	if (out->len > start && out->data[start] == '-')
		s->sess.errors++;
}

/* An -ERR that echoes attacker text, cut as Dovecot's input limit would. */
static void reply_echo(struct pop3_session *s, const char *prefix, const char *arg)
{
	reply(s, "%s%.*s", prefix, POST_LINE_LIMIT, arg);
}

static void flush_out(struct pop3_session *s)
{
	session_flush(&s->sess);
}

static void close_after(struct pop3_session *s, const char *reason)
{
	session_close_after(&s->sess, reason);
}

/* ------------------------------------------------------------------ events --- */

static void offence(struct pop3_session *s, const char *kind, const char *detail, size_t len)
{
	session_offence(&s->sess, kind, detail, len);
}

static void offence_once(struct pop3_session *s, unsigned bit, const char *kind,
			 const char *detail, size_t len)
{
	session_offence_once(&s->sess, bit, kind, detail, len);
}

static void auth_event(struct pop3_session *s, const struct auth_ev *a)
{
	session_auth_event(&s->sess, a);
}

static void auth_event_simple(struct pop3_session *s, const char *mech, const char *result)
{
	session_auth_event_simple(&s->sess, mech, result);
}

/* ---------------------------------------------------------- authentication --- */

static void default_canonical(const struct pop3_session *s, const char *user, char *out,
			      size_t outlen)
{
	size_t o = 0;
	for (const char *p = user; *p && o + 1 < outlen; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
	const char *dom = s->cfg->domain;
	char *at = strrchr(out, '@');
	if (at && dom && strcasecmp(at + 1, dom) == 0)
		*at = '\0';
}

/* The policy said yes: open this session's copy of the INBOX. */
static bool login(struct pop3_session *s, const char *user)
{
	char canon[USER_MAX];
	if (s->cfg->canonical) {
		if (s->cfg->canonical(s->cfg->auth, user, canon, sizeof(canon)) < 0)
			default_canonical(s, user, canon, sizeof(canon));
	} else {
		default_canonical(s, user, canon, sizeof(canon));
	}
	const uint8_t *secret = s->cfg->secret ? s->cfg->secret : zero_secret;
	/* Same call, same canonical form and same fallbacks as the IMAP engine, so both
	 * protocols show one INBOX. */
	int64_t since_us = auth_policy_account_since_us(s->cfg->auth, canon);
	struct mbox_set *m = mailbox_generate_at(canon,
						 s->cfg->domain ? s->cfg->domain : "localdomain",
						 s->cfg->hostname ? s->cfg->hostname : "localhost",
						 secret, since_us / 1000000);
	struct mbox_folder *in = m ? mailbox_folder(m, "INBOX") : NULL;
	bool *del = in ? calloc(in->n_msgs + 1, sizeof(*del)) : NULL;
	if (!del) {
		mailbox_free(&m);
		return false;
	}
	s->mbox = m;
	s->inbox = in;
	s->deleted = del;
	s->n_msgs = in->n_msgs;
	s->n_deleted = 0;
	snprintf(s->auth_user, sizeof(s->auth_user), "%s", canon);
	set_state(s, PH_TRANSACTION, IN_CMD);
	s->bad = 0;
	return true;
}

/* Dovecot's auth penalty (auth-penalty.c: 2 s doubled per failure, at most 15 s),
 * paid before an attempt is processed once an earlier one failed.  Dovecot keeps it
 * per IP across connections; here it is per session, and only with auth_penalty. */
static unsigned penalty_ms(const struct pop3_session *s)
{
	if (!s->cfg->auth_penalty || s->auth_fails == 0)
		return 0;
	return s->auth_fails >= 3 ? 15000u : (2000u << s->auth_fails);
}

/* An authentication request starts (PASS, or AUTH with a usable mechanism). */
static void auth_begin(struct pop3_session *s)
{
	if (s->penalty_charged)
		return;
	s->penalty_charged = true;
	unsigned ms = penalty_ms(s);
	if (ms) {
		flush_out(s); /* earlier pipelined replies are not held back */
		session_hold(&s->sess, ms);
	}
}

/* The request ended: the reply is queued.  failed: wait the failure delay too. */
static void auth_done(struct pop3_session *s, bool failed)
{
	s->penalty_charged = false;
	if (failed) {
		s->auth_fails++;
		session_hold(&s->sess, session_failure_delay(&s->sess, s->cfg->auth_failure_delay_ms,
							     s->cfg->auth_failure_jitter));
	}
}

/* One attempt through the policy.  Slices may hold any byte; a credential the one rule
 * refuses (sasl.h: a NUL byte, over 8 KiB) fails without asking the policy. */
static void auth_try(struct pop3_session *s, const char *mech, const char *user, size_t ulen,
		     const char *pass, size_t plen, const char *authzid, size_t zlen)
{
	struct sasl_slice us = {user, ulen}, ps = {pass, plen}, zs = {authzid, zlen};
	struct session_cred c = {
		.proto = s->cfg->implicit_tls ? "pop3s" : "pop3",
		.mech = mech,
		.authzid = zlen ? &zs : NULL,
		.user = &us,
		.pass = &ps,
	};
	struct sasl_cred cred;
	bool taken;
	enum auth_verdict v = session_auth_check(&s->sess, s->cfg->auth, &c, &cred, &taken);
	auth_begin(s); /* no-op when AUTH already paid the penalty */
	if (v == AUTH_OK && login(s, cred.user)) {
		sasl_cred_free(&cred);
		session_cred_event(&s->sess, &c, true, "ok");
		/* Dovecot's mail_max_userip_connections: the pop3 process refuses the session
		 * and ends it (measured on Debian's Dovecot 2.3.19) */
		if (!userip_acquire("pop3", s->auth_user, s->sess.peer_ip, s->cfg->max_userip)) {
			reply(s, "-ERR [IN-USE] Maximum number of connections from user+IP exceeded "
				 "(mail_max_userip_connections=%u)", s->cfg->max_userip);
			auth_done(s, false);
			close_after(s, "userip_limit");
			return;
		}
		s->userip_held = s->cfg->max_userip > 0;
		reply(s, "+OK Logged in.");
		auth_done(s, false);
		return;
	}
	sasl_cred_free(&cred);
	if (v == AUTH_OK || v == AUTH_TEMPFAIL) {
		/* (AUTH_OK here: out of memory building the mailbox.) */
		session_cred_event(&s->sess, &c, false, "tempfail");
		reply(s, "-ERR [SYS/TEMP] Temporary authentication failure.");
		auth_done(s, false);
		return;
	}
	session_cred_event(&s->sess, &c, false, taken ? "fail" : "malformed");
	/* Replies to earlier pipelined commands leave now; this one after the delay. */
	flush_out(s);
	reply(s, "-ERR [AUTH] Authentication failed.");
	auth_done(s, true);
}

/* A SASL answer that cannot be decoded: Dovecot's auth process fails it. */
static void auth_malformed(struct pop3_session *s, const char *mech)
{
	auth_event_simple(s, mech, "malformed");
	flush_out(s);
	reply(s, "-ERR [AUTH] Authentication failed.");
	auth_done(s, true);
}

static const char *mech_name(enum mech m)
{
	return m == MECH_LOGIN ? "LOGIN" : "PLAIN";
}

static void sasl_end(struct pop3_session *s)
{
	s->mech = MECH_NONE;
	s->sasl_step = 0;
	free(s->login_user);
	s->login_user = NULL;
	s->login_user_len = 0;
	set_state(s, s->phase, IN_CMD);
}

/* One decoded SASL message (initial response or continuation). */
static void sasl_message(struct pop3_session *s, const unsigned char *msg, size_t len)
{
	if (s->mech == MECH_PLAIN) {
		struct sasl_slice z, u, p;
		sasl_end(s);
		if (!sasl_plain_split(msg, len, &z, &u, &p)) {
			auth_malformed(s, "PLAIN");
			return;
		}
		auth_try(s, "PLAIN", u.p, u.len, p.p, p.len, z.p, z.len);
		return;
	}
	/* LOGIN */
	if (s->sasl_step == 0) {
		free(s->login_user);
		s->login_user = malloc(len ? len : 1);
		if (!s->login_user) {
			sasl_end(s);
			auth_malformed(s, "LOGIN");
			return;
		}
		if (len)
			memcpy(s->login_user, msg, len);
		s->login_user_len = len;
		s->sasl_step = 1;
		set_state(s, s->phase, IN_SASL);
		reply(s, "+ UGFzc3dvcmQ6"); /* "Password:" */
		return;
	}
	char *user = s->login_user; /* taken over from the exchange that ends here */
	size_t ulen = s->login_user_len;
	s->login_user = NULL;
	sasl_end(s);
	auth_try(s, "LOGIN", user ? user : "", ulen, (const char *)msg, len, NULL, 0);
	free(user);
}

/* Base64 text from the client (an initial response or a continuation line). */
static void sasl_input(struct pop3_session *s, const char *b64, size_t len)
{
	unsigned char dec[SASL_LINE_LIMIT];
	size_t dlen = 0;
	if (sasl_b64_decode(b64, len, dec, sizeof(dec), &dlen) < 0) {
		const char *m = mech_name(s->mech);
		sasl_end(s);
		auth_malformed(s, m);
		return;
	}
	sasl_message(s, dec, dlen);
}

static void sasl_line(struct pop3_session *s, const char *line, size_t len)
{
	if (len == 1 && line[0] == '*') {
		struct auth_ev e = {.mech = mech_name(s->mech), .result = "aborted"};
		if (s->mech == MECH_LOGIN && s->sasl_step == 1) {
			e.user = s->login_user; /* LOGIN cancelled at the password */
			e.user_len = s->login_user_len;
		}
		auth_event(s, &e);
		sasl_end(s);
		reply(s, "-ERR Authentication aborted by client.");
		auth_done(s, false);
		return;
	}
	sasl_input(s, line, len);
}

/* ------------------------------------------------------------ the commands --- */

struct pop3_args {
	const char *raw;   /* everything after the first space ("" if none), cut at a NUL */
	size_t raw_len;    /* its bytes as sent up to the end of the line, NUL included */
	unsigned msg;      /* 0-based message index, after check_msg */
	uint64_t lines;    /* TOP */
	bool have_msg;
};

struct pop3_cmd {
	const char *verb;
	/* Check arguments and state; on error queue the -ERR and return -1. */
	int (*check)(struct pop3_session *s, struct pop3_args *a);
	/* Do it; return -1 when Dovecot counts it as a bad command. */
	int (*run)(struct pop3_session *s, struct pop3_args *a);
};

static int check_none(struct pop3_session *s, struct pop3_args *a)
{
	return 0;
}

/* ---- authorization state (pop3-login) ---- */

static void capa_common(struct pop3_session *s)
{
	reply(s, "+OK");
	reply(s, "CAPA");
	reply(s, "TOP");
	reply(s, "UIDL");
	reply(s, "RESP-CODES");
	reply(s, "PIPELINING");
	reply(s, "AUTH-RESP-CODE");
}

static int run_capa_pre(struct pop3_session *s, struct pop3_args *a)
{
	capa_common(s);
	if (!s->tls && s->cfg->tls_available)
		reply(s, "STLS");
	if (plaintext_ok(s)) {
		reply(s, "USER");
		reply(s, "SASL PLAIN LOGIN");
	} else {
		reply(s, "SASL");
	}
	reply(s, ".");
	return 0;
}

static int run_user(struct pop3_session *s, struct pop3_args *a)
{
	/* every byte as sent, a NUL and what follows it included (the credential rule) */
	size_t n = a->raw_len;
	char *u = malloc(n + 1);
	if (!u) {
		reply(s, "-ERR [SYS/TEMP] Temporary authentication failure.");
		return 0;
	}
	memcpy(u, a->raw, n);
	u[n] = '\0';
	free(s->user);
	s->user = u;
	s->user_len = n;
	if (!plaintext_ok(s)) {
		s->have_user = false;
		s->have_refused_user = true;
		reply(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
			 "(SSL/TLS) connections.");
		return 0;
	}
	s->have_user = true;
	reply(s, "+OK");
	return 0;
}

static int run_pass(struct pop3_session *s, struct pop3_args *a)
{
	size_t plen = a->raw_len; /* a NUL and what follows it included */
	if (!s->have_user) {
		if (!plaintext_ok(s)) {
			struct auth_ev e = {.mech = "USER", .pass = a->raw, .pass_len = plen,
					    .result = "tls_required"};
			if (s->have_refused_user) {
				e.user = s->user;
				e.user_len = s->user_len;
			}
			auth_event(s, &e);
			s->have_refused_user = false;
			reply(s, "-ERR [AUTH] Plaintext authentication disallowed on non-secure "
				 "(SSL/TLS) connections.");
			return 0;
		}
		reply(s, "-ERR No username given.");
		return -1;
	}
	s->have_user = false; /* one PASS per USER, as Dovecot frees last_user */
	auth_begin(s);
	auth_try(s, "USER", s->user, s->user_len, a->raw, plen, NULL, 0);
	return 0;
}

static int run_auth(struct pop3_session *s, struct pop3_args *a)
{
	const char *p = a->raw;
	if (*p == '\0') {
		/* Old-style SASL discovery (Outlook): the mechanisms usable now.  pop3-login
		 * writes "+OK" line, each name and each CRLF, and "." separately (one TLS
		 * record each: `openssl s_client -msg` against Debian's Dovecot 2.3.19). */
		reply(s, "+OK");
		flush_out(s);
		if (plaintext_ok(s)) {
			static const char *const mechs[] = {"PLAIN", "LOGIN"};
			for (size_t i = 0; i < 2; i++) {
				session_puts(&s->sess, mechs[i]);
				flush_out(s);
				session_puts(&s->sess, "\r\n");
				flush_out(s);
			}
		}
		reply(s, ".");
		return 0;
	}
	const char *sp = strchr(p, ' ');
	size_t mlen = sp ? (size_t)(sp - p) : strlen(p);
	const char *ir = sp ? sp + 1 : NULL;
	enum mech m = MECH_NONE;
	if (mlen == 5 && strncasecmp(p, "PLAIN", 5) == 0)
		m = MECH_PLAIN;
	else if (mlen == 5 && strncasecmp(p, "LOGIN", 5) == 0)
		m = MECH_LOGIN;
	if (m == MECH_NONE) {
		char mech[64];
		snprintf(mech, sizeof(mech), "%.*s", (int)(mlen < 63 ? mlen : 63), p);
		auth_event_simple(s, mech, "not_enabled");
		reply(s, "-ERR [AUTH] Unsupported authentication mechanism.");
		return 0;
	}
	if (!plaintext_ok(s)) {
		/* Record what the client tried to send in the clear. */
		struct auth_ev e = {.mech = mech_name(m), .result = "tls_required"};
		unsigned char dec[SASL_LINE_LIMIT];
		size_t dlen = 0;
		struct sasl_slice z, u, pw;
		if (m == MECH_PLAIN && ir &&
		    sasl_b64_decode(ir, strlen(ir), dec, sizeof(dec), &dlen) == 0 &&
		    sasl_plain_split(dec, dlen, &z, &u, &pw)) {
			e.user = u.p;
			e.user_len = u.len;
			e.pass = pw.p;
			e.pass_len = pw.len;
			e.authzid = z.p;
			e.authzid_len = z.len;
		} else if (m == MECH_LOGIN && ir &&
			   sasl_b64_decode(ir, strlen(ir), dec, sizeof(dec), &dlen) == 0) {
			e.user = (const char *)dec;
			e.user_len = dlen;
		}
		auth_event(s, &e);
		reply(s, "-ERR [AUTH] Plaintext authentication disabled.");
		return 0;
	}
	s->mech = m;
	s->sasl_step = 0;
	auth_begin(s);
	if (ir) {
		sasl_input(s, ir, strlen(ir));
		return 0;
	}
	set_state(s, s->phase, IN_SASL);
	reply(s, m == MECH_PLAIN ? "+ " : "+ VXNlcm5hbWU6"); /* LOGIN: "Username:" */
	return 0;
}

static int run_apop(struct pop3_session *s, struct pop3_args *a)
{
	auth_event_simple(s, "APOP", "not_enabled");
	reply(s, "-ERR APOP not enabled.");
	return 0;
}

static int run_stls(struct pop3_session *s, struct pop3_args *a)
{
	if (s->tls) {
		reply(s, "-ERR TLS is already active.");
		return 0;
	}
	if (!s->cfg->tls_available) {
		reply(s, "-ERR TLS support isn't enabled.");
		return 0;
	}
	reply(s, "+OK Begin TLS negotiation now.");
	session_suspend(&s->sess, SESSION_TLS);
	return 0;
}

static int run_quit_pre(struct pop3_session *s, struct pop3_args *a)
{
	reply(s, "+OK Logging out");
	close_after(s, "quit");
	return 0;
}

static const struct pop3_cmd login_cmds[] = {
	{"CAPA", check_none, run_capa_pre},
	{"USER", check_none, run_user},
	{"PASS", check_none, run_pass},
	{"AUTH", check_none, run_auth},
	{"APOP", check_none, run_apop},
	{"STLS", check_none, run_stls},
	{"QUIT", check_none, run_quit_pre},
};

/* ---- transaction state (pop3) ---- */

/* Dovecot get_msgnum(): digits, no overflow, then end of args or (then_space) a
 * space; a message that exists and is not deleted.  Queues the -ERR itself. */
static const char *get_msgnum(struct pop3_session *s, const char *args, unsigned *idx_r,
			      bool then_space)
{
	if (*args < '0' || *args > '9') {
		reply_echo(s, "-ERR Invalid message number: ", args);
		return NULL;
	}
	uint64_t num = 0;
	const char *p = args;
	while (*p >= '0' && *p <= '9') {
		num = num * 10 + (uint64_t)(*p - '0');
		if (num > UINT32_MAX) {
			reply_echo(s, "-ERR Message number too large: ", args);
			return NULL;
		}
		p++;
	}
	if (*p != (then_space ? ' ' : '\0')) {
		reply_echo(s, "-ERR Noise after message number: ", p);
		return NULL;
	}
	if (num == 0 || num > s->n_msgs) {
		reply(s, "-ERR There's no message %u.", (unsigned)num);
		return NULL;
	}
	if (s->deleted[num - 1]) {
		reply(s, "-ERR Message is deleted.");
		return NULL;
	}
	while (*p == ' ')
		p++;
	*idx_r = (unsigned)(num - 1);
	return p;
}

static int check_msg(struct pop3_session *s, struct pop3_args *a)
{
	if (!get_msgnum(s, a->raw, &a->msg, false))
		return -1;
	a->have_msg = true;
	return 0;
}

static int check_msg_opt(struct pop3_session *s, struct pop3_args *a)
{
	if (*a->raw == '\0')
		return 0;
	return check_msg(s, a);
}

static int check_top(struct pop3_session *s, struct pop3_args *a)
{
	const char *p = get_msgnum(s, a->raw, &a->msg, true);
	if (!p)
		return -1;
	a->have_msg = true;
	if (*p < '0' || *p > '9') {
		reply_echo(s, "-ERR Invalid size: ", p);
		return -1;
	}
	uint64_t n = 0;
	const char *q = p;
	while (*q >= '0' && *q <= '9') {
		uint64_t d = (uint64_t)(*q - '0');
		if (n > (UINT64_MAX - d) / 10) {
			reply_echo(s, "-ERR Size too large: ", p);
			return -1;
		}
		n = n * 10 + d;
		q++;
	}
	if (*q != '\0') {
		reply_echo(s, "-ERR Noise after size: ", q);
		return -1;
	}
	a->lines = n;
	return 0;
}

static const struct mbox_msg *msg_at(const struct pop3_session *s, unsigned idx)
{
	return &s->inbox->msgs[idx];
}

static int run_capa_post(struct pop3_session *s, struct pop3_args *a)
{
	capa_common(s);
	reply(s, ".");
	return 0;
}

static int run_stat(struct pop3_session *s, struct pop3_args *a)
{
	uint64_t octets = 0;
	for (size_t i = 0; i < s->n_msgs; i++)
		if (!s->deleted[i])
			octets += msg_at(s, (unsigned)i)->size;
	reply(s, "+OK %zu %llu", s->n_msgs - s->n_deleted, (unsigned long long)octets);
	return 0;
}

static int run_list(struct pop3_session *s, struct pop3_args *a)
{
	if (a->have_msg) {
		reply(s, "+OK %u %zu", a->msg + 1, msg_at(s, a->msg)->size);
		return 0;
	}
	reply(s, "+OK %zu messages:", s->n_msgs - s->n_deleted);
	for (size_t i = 0; i < s->n_msgs; i++)
		if (!s->deleted[i])
			reply(s, "%zu %zu", i + 1, msg_at(s, (unsigned)i)->size);
	reply(s, ".");
	return 0;
}

/* Dovecot's default pop3_uidl_format %08Xu%08Xv: its %X prints lower-case hex
 * (Debian's Dovecot 2.3.19 answers UIDL with "1 000000016b1639e7"). */
static void uidl_of(const struct pop3_session *s, unsigned idx, char out[20])
{
	snprintf(out, 20, "%08x%08x", (unsigned)msg_at(s, idx)->uid,
		 (unsigned)s->inbox->uidvalidity);
}

static int run_uidl(struct pop3_session *s, struct pop3_args *a)
{
	char u[20];
	if (a->have_msg) {
		uidl_of(s, a->msg, u);
		reply(s, "+OK %u %s", a->msg + 1, u);
		return 0;
	}
	reply(s, "+OK");
	for (size_t i = 0; i < s->n_msgs; i++) {
		if (s->deleted[i])
			continue;
		uidl_of(s, (unsigned)i, u);
		reply(s, "%zu %s", i + 1, u);
	}
	reply(s, ".");
	return 0;
}

/* Multi-line body: byte-stuff lines that start with '.', end with CRLF "." CRLF.
 * body_lines: lines after the header's blank line (UINT64_MAX: all). */
static void put_message(struct pop3_session *s, const struct mbox_msg *m, uint64_t body_lines)
{
	const char *p = m->data, *end = m->data + m->size;
	bool in_body = false;
	uint64_t left = body_lines;
	while (p < end) {
		if (in_body && left == 0)
			break;
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *next = lf ? lf + 1 : end;
		if (*p == '.')
			buf_putc(&s->sess.out, '.');
		buf_append(&s->sess.out, p, (size_t)(next - p));
		if (!lf)
			buf_puts(&s->sess.out, "\r\n"); /* a last line without CRLF */
		bool blank = (next - p == 2 && p[0] == '\r') || (next - p == 1);
		if (in_body)
			left--;
		else if (blank)
			in_body = true;
		p = next;
	}
	buf_puts(&s->sess.out, ".\r\n");
}

static int run_retr(struct pop3_session *s, struct pop3_args *a)
{
	const struct mbox_msg *m = msg_at(s, a->msg);
	reply(s, "+OK %zu octets", m->size);
	put_message(s, m, UINT64_MAX);
	return 0;
}

static int run_top(struct pop3_session *s, struct pop3_args *a)
{
	reply(s, "+OK");
	put_message(s, msg_at(s, a->msg), a->lines);
	return 0;
}

static int run_dele(struct pop3_session *s, struct pop3_args *a)
{
	s->deleted[a->msg] = true;
	s->n_deleted++;
	reply(s, "+OK Marked to be deleted.");
	return 0;
}

static int run_rset(struct pop3_session *s, struct pop3_args *a)
{
	memset(s->deleted, 0, s->n_msgs * sizeof(*s->deleted));
	s->n_deleted = 0;
	reply(s, "+OK");
	return 0;
}

static int run_noop(struct pop3_session *s, struct pop3_args *a)
{
	reply(s, "+OK");
	return 0;
}

/* UPDATE state: the deletions of this session end with it (the mailbox is generated
 * again at the next login), but the reply is the one Dovecot gives after expunging. */
static int run_quit_post(struct pop3_session *s, struct pop3_args *a)
{
	if (s->n_deleted > 0)
		reply(s, "+OK Logging out, messages deleted.");
	else
		reply(s, "+OK Logging out.");
	close_after(s, "quit");
	return 0;
}

static const struct pop3_cmd trans_cmds[] = {
	{"CAPA", check_none, run_capa_post},
	{"STAT", check_none, run_stat},
	{"LIST", check_msg_opt, run_list},
	{"UIDL", check_msg_opt, run_uidl},
	{"RETR", check_msg, run_retr},
	{"TOP", check_top, run_top},
	{"DELE", check_msg, run_dele},
	{"RSET", check_none, run_rset},
	{"NOOP", check_none, run_noop},
	{"QUIT", check_none, run_quit_post},
};

static const struct pop3_cmd *cmd_lookup(const struct pop3_cmd *table, size_t n,
					 const char *verb)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(verb, table[i].verb) == 0)
			return &table[i];
	return NULL;
}

/* The bad-command counter of the current process (pop3-login or pop3). */
static void count_bad(struct pop3_session *s, bool bad)
{
	if (!bad) {
		s->bad = 0;
		return;
	}
	s->bad++;
	if (s->phase == PH_AUTHORIZATION) {
		unsigned lim = s->cfg->bad_command_limit ? s->cfg->bad_command_limit
							 : BAD_LIMIT_PRE;
		if (s->bad >= lim) {
			reply(s, "-ERR Too many invalid bad commands.");
			offence(s, "too_many_errors", "", 0);
			close_after(s, "too_many_errors");
		}
	} else {
		unsigned lim = s->cfg->bad_command_limit_auth ? s->cfg->bad_command_limit_auth
							      : BAD_LIMIT_POST;
		if (s->bad > lim) {
			reply(s, "-ERR Too many bad commands.");
			offence(s, "too_many_errors", "", 0);
			close_after(s, "too_many_errors");
		}
	}
}

/* One command line: CRLF removed, NUL-terminated (a NUL inside cuts it, as in
 * Dovecot's C-string line reader). */
static void command_line(struct pop3_session *s, char *line, size_t len)
{
	s->sess.commands++;
	if (s->cfg->command_limit && s->sess.commands > s->cfg->command_limit) {
		reply(s, "-ERR Too many bad commands.");
		offence(s, "command_limit", line, len);
		close_after(s, "command_limit");
		return;
	}
	char *nul = memchr(line, '\0', len);
	size_t sent = len;
	if (nul) {
		offence_once(s, ONCE_NUL, "nul_byte", line, len);
		len = (size_t)(nul - line);
	}
	char *sp = strchr(line, ' ');
	struct pop3_args a = {.raw = ""};
	if (sp) {
		*sp = '\0';
		a.raw = sp + 1;
		a.raw_len = sent - (size_t)(sp + 1 - line);
	}
	bool pre = s->phase == PH_AUTHORIZATION;
	const struct pop3_cmd *cmd =
		pre ? cmd_lookup(login_cmds, sizeof(login_cmds) / sizeof(login_cmds[0]), line)
		    : cmd_lookup(trans_cmds, sizeof(trans_cmds) / sizeof(trans_cmds[0]), line);
	if (sp)
		*sp = ' '; /* whole line for the offence detail */
	if (!cmd) {
		if (pre) {
			reply(s, "-ERR Unknown command.");
		} else {
			if (sp)
				*sp = '\0';
			reply_echo(s, "-ERR Unknown command: ", line);
			if (sp)
				*sp = ' ';
		}
		offence(s, "unknown_command", line, len);
		count_bad(s, true);
		return;
	}
	/* Pre-login lines beyond Dovecot's 1024-byte input buffer: only AUTH (SASL-IR)
	 * may be longer. */
	size_t pre_lim = s->cfg->line_length_limit ? s->cfg->line_length_limit : PRE_LINE_LIMIT;
	if (pre && len > pre_lim && strcasecmp(cmd->verb, "AUTH") != 0) {
		reply(s, "-ERR Input buffer full, aborting");
		offence(s, "line_too_long", line, len);
		close_after(s, "protocol");
		return;
	}
	int rc = cmd->check(s, &a);
	if (rc < 0)
		offence(s, "bad_syntax", line, len);
	else
		rc = cmd->run(s, &a);
	if (!s->sess.close_reason)
		count_bad(s, rc < 0);
}

/* ------------------------------------------------------------------ input ---- */

static size_t line_limit(const struct pop3_session *s)
{
	if (s->input == IN_SASL || s->phase == PH_AUTHORIZATION) {
		size_t pre = s->cfg->line_length_limit ? s->cfg->line_length_limit
						       : PRE_LINE_LIMIT;
		return pre > SASL_LINE_LIMIT ? pre : SASL_LINE_LIMIT;
	}
	return POST_LINE_LIMIT;
}

static void line_too_long(struct pop3_session *s, const char *p, size_t len)
{
	if (s->phase == PH_AUTHORIZATION)
		reply(s, "-ERR Input buffer full, aborting");
	else
		reply(s, "-ERR Input line too long.");
	offence(s, "line_too_long", p, len);
	close_after(s, "protocol");
}

/* One step: one line (session_frame; over the limit Dovecot answers and hangs up). */
static size_t feed_step(void *engine, const char *data, size_t len)
{
	struct pop3_session *s = engine;
	struct session_line l;
	enum session_frame_result r;
	size_t take = session_frame(&s->in, data, len, line_limit(s), FRAME_STOP, &l, &r);
	if (r == FRAME_TOO_LONG) {
		line_too_long(s, l.p, l.len);
	} else if (r == FRAME_LINE) {
		if (l.bare_lf)
			offence_once(s, ONCE_BARE_LF, "bare_lf", l.p, l.len);
		if (s->input == IN_SASL)
			sasl_line(s, l.p, l.len);
		else
			command_line(s, l.p, l.len);
	}
	return take;
}

size_t pop3_session_feed(struct pop3_session *s, const char *data, size_t len)
{
	return session_feed(&s->sess, s, feed_step, data, len);
}

/* ---------------------------------------------------------------- lifecycle --- */

struct pop3_session *pop3_session_new(const struct pop3_config *cfg,
				      const struct proto_peer *peer, bool tls_active,
				      const struct proto_host_ops *ops, void *ctx)
{
	struct pop3_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	session_init(&s->sess, "pop3", peer, ops, ctx, OUT_CAP);
	/* a burst of pipelined RETRs must not pile up here: the host owns output
	 * buffering and backpressure */
	s->sess.out_flush_at = OUT_FLUSH;
	s->tls = tls_active;
	size_t pre = cfg->line_length_limit ? cfg->line_length_limit : PRE_LINE_LIMIT;
	size_t cap = (pre > SASL_LINE_LIMIT ? pre : SASL_LINE_LIMIT) + 8;
	session_framer_init(&s->in, cap);
	s->phase = PH_AUTHORIZATION;
	s->input = IN_CMD;
	return s;
}

void pop3_session_free(struct pop3_session **sp)
{
	if (!sp || !*sp)
		return;
	struct pop3_session *s = *sp;
	if (s->userip_held)
		userip_release("pop3", s->auth_user, s->sess.peer_ip);
	mailbox_free(&s->mbox);
	free(s->deleted);
	free(s->user);
	free(s->login_user);
	session_framer_free(&s->in);
	session_free(&s->sess);
	free(s);
	*sp = NULL;
}

void pop3_session_start(struct pop3_session *s)
{
	reply(s, "+OK Dovecot (Debian) ready.");
	session_greet(&s->sess, s->cfg->login_latency);
}

void pop3_session_resume(struct pop3_session *s)
{
	session_resume(&s->sess);
}

void pop3_session_tls_started(struct pop3_session *s, const char *version, const char *cipher,
			      int bits)
{
	s->tls = true;
	if (s->sess.susp != SESSION_TLS)
		return;
	/* RFC 2595 4: forget what was said in the clear; nothing buffered survives. */
	session_framer_reset(&s->in);
	s->have_user = false;
	s->have_refused_user = false;
	sasl_end(s);
	s->penalty_charged = false;
	session_suspend(&s->sess, SESSION_RUN);
}

void pop3_session_hangup(struct pop3_session *s, const char *reason)
{
	if (s->sess.susp == SESSION_CLOSED)
		return;
	buf_reset(&s->sess.out);
	session_hangup(&s->sess);
}

/* ------------------------------------------------------------- proto_engine --- */

static void *eng_create(const void *cfg, const struct proto_peer *peer, bool tls_active,
			const struct proto_host_ops *ops, void *ctx)
{
	return pop3_session_new(cfg, peer, tls_active, ops, ctx);
}

static void eng_start(void *s)
{
	pop3_session_start(s);
}

static size_t eng_feed(void *s, const char *data, size_t len)
{
	return pop3_session_feed(s, data, len);
}

static void eng_resume(void *s)
{
	pop3_session_resume(s);
}

static void eng_committed(void *s, const struct proto_commit_result *r)
{
	/* POP3 never opens a message. */
}

static void eng_tls_started(void *s, const char *version, const char *cipher, int bits)
{
	pop3_session_tls_started(s, version, cipher, bits);
}

static void eng_hangup(void *s, const char *reason)
{
	pop3_session_hangup(s, reason);
}

static const char *eng_state_name(const void *s)
{
	return pop3_session_state_name(s);
}

static void eng_counters(const void *s, struct proto_counters *c_r)
{
	pop3_session_counters(s, c_r);
}

static const char *eng_auth_user(const void *s)
{
	return pop3_session_auth_user(s);
}

static void eng_destroy(void *s)
{
	struct pop3_session *p = s;
	pop3_session_free(&p);
}

const struct proto_engine pop3_engine = {
	.name = "pop3",
	.create = eng_create,
	.start = eng_start,
	.feed = eng_feed,
	.resume = eng_resume,
	.committed = eng_committed,
	.tls_started = eng_tls_started,
	.hangup = eng_hangup,
	.state_name = eng_state_name,
	.counters = eng_counters,
	.auth_user = eng_auth_user,
	.destroy = eng_destroy,
};
