/*
 * smtp: the ESMTP engine (see smtp.h for the host contract).
 *
 * Layout of this file, top to bottom:
 *   - session struct, state names and the one function that changes state;
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
#include "proto/smtp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/rand.h>

#include "deceive/auth_policy.h"
#include "proto/sasl.h"
#include "proto/smtp_parse.h"
#include "store/event.h"
#include "util/buf.h"

#define SASL_RESP_LIMIT 12288   /* Postfix smtpd_sasl_resp_limit */
#define JUNK_CMD_LIMIT 100      /* Postfix smtpd_junk_command_limit */
#define RCPT_OVERSHOOT_LIMIT 1000 /* Postfix smtpd_recipient_overshoot_limit */
#define DETAIL_MAX 200          /* offence detail cut */
#define NAME_MAX_LEN 512        /* HELO name, auth user kept for headers */

enum sstate {
	ST_CMD,   /* reading command lines */
	ST_DATA,  /* reading DATA lines */
	ST_CHUNK, /* reading BDAT chunk bytes */
	ST_AUTH,  /* reading a SASL continuation line */
};

enum susp {
	SUSP_NONE,
	SUSP_WAIT,
	SUSP_COMMIT,
	SUSP_TLS,
	SUSP_CLOSED,
};

enum auth_mech { MECH_NONE, MECH_PLAIN, MECH_LOGIN, MECH_CRAM };

/* Offences recorded at most once per session (they repeat on every line). */
enum once_offence {
	ONCE_BARE_LF = 1 << 0,
	ONCE_LINE_TOO_LONG = 1 << 1,
	ONCE_NUL = 1 << 2,
	ONCE_PIPELINING = 1 << 3,
};

struct smtp_session {
	const struct smtp_config *cfg;
	const struct smtp_host_ops *ops;
	void *ctx;
	char peer_ip[64];
	char peer_rdns[256];
	bool have_rdns;

	enum sstate state;
	enum susp susp;

	/* TLS */
	bool tls;
	char tls_version[32];
	char tls_cipher[96];
	int tls_bits;

	/* HELO/EHLO */
	bool have_helo;
	bool esmtp;
	char helo[NAME_MAX_LEN];

	/* AUTH */
	bool authenticated;
	char auth_user[NAME_MAX_LEN];
	enum auth_mech mech;
	int auth_step;               /* LOGIN: 0 username, 1 password */
	unsigned auth_failures;      /* wrong credentials so far (Dovecot's penalty) */
	unsigned char auth_tmp[512]; /* LOGIN username until the password arrives */
	size_t auth_tmp_len;
	char auth_challenge[160];    /* CRAM-MD5 challenge sent */
	char auth_last334[400];      /* text of the last 334, for Dovecot's empty-answer reply */

	/* Transaction */
	bool in_mail;
	char sender[1024];
	bool mail_smtputf8;
	uint64_t msg_size;           /* SIZE=, sticky until a reset as in Postfix */
	unsigned rcpt_count;
	unsigned rcpt_overshoot;
	struct buf rcpts;            /* accepted recipients, NUL-separated */

	/* Message being received (DATA or BDAT) */
	bool msg_is_open;
	bool msg_failed;             /* msg_write refused: answer 452 at the end */
	bool msg_too_big;
	uint64_t msg_bytes;          /* content bytes, Received header excluded */
	char queue_id[32];
	bool data_bol;
	bool bdat_active;            /* a BDAT transfer is in progress */
	bool bdat_error;             /* a chunk failed: later chunks get bdat_reply */
	char bdat_reply[SMTP_REPLY_MAX];
	uint64_t chunk_left;
	bool chunk_discard;          /* chunk bytes are read and thrown away */
	bool chunk_last;
	char chunk_reply[SMTP_REPLY_MAX]; /* reply once a discarded chunk is read */
	bool method_bdat;

	/* Input framing */
	struct buf line;
	bool skipping;               /* over-long command line: skip to LF */
	bool overflowed;             /* the line being skipped was over the limit */
	const char *feed_end;        /* set during feed: for "more input pending" */
	const char *feed_pos;

	/* Output */
	struct buf out;
	unsigned delay_ms;
	bool step_delayed;
	const char *close_reason;

	/* Counters */
	unsigned commands;
	unsigned errors;
	unsigned messages;
	unsigned junk_cmds;
	unsigned once;
	int last_code;
};

/* ------------------------------------------------------------------ state ---- */

static const char *state_name(const struct smtp_session *s)
{
	if (s->susp == SUSP_CLOSED)
		return "closed";
	if (s->susp == SUSP_TLS)
		return "starttls";
	if (s->susp == SUSP_COMMIT)
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

/* The one place the input state changes.  old -> new is visible here for tracing. */
static void set_state(struct smtp_session *s, enum sstate new_state)
{
#ifdef MXB_SMTP_TRACE
	static const char *const names[] = {"cmd", "data", "chunk", "auth"};
	fprintf(stderr, "smtp: state %s -> %s\n", names[s->state], names[new_state]);
#endif
	s->state = new_state;
}

const char *smtp_session_state_name(const struct smtp_session *s)
{
	return state_name(s);
}

void smtp_session_counters(const struct smtp_session *s, struct smtp_counters *c_r)
{
	c_r->commands = s->commands;
	c_r->errors = s->errors;
	c_r->messages = s->messages;
}

const char *smtp_session_auth_user(const struct smtp_session *s)
{
	return s->authenticated ? s->auth_user : NULL;
}

/* ------------------------------------------------------------------ output --- */

static void reply(struct smtp_session *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Queue one reply line.  Postfix's smtpd_chat_reply() sleeps before any reply once
 * the error count reached the soft limit; the caller's step turns delay_ms into one
 * ops->wait before the replies leave. */
static void reply(struct smtp_session *s, const char *fmt, ...)
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
	if (s->cfg->soft_error_limit > 0 && s->errors >= s->cfg->soft_error_limit &&
	    !s->step_delayed) {
		s->delay_ms += s->cfg->error_sleep_ms;
		s->step_delayed = true;
	}
	buf_append(&s->out, line, len);
	s->last_code = atoi(line);
}

/* A 4xx/5xx answer to a command: Postfix's error_count++. */
static void error_reply_counted(struct smtp_session *s)
{
	s->errors++;
}

static void flush_out(struct smtp_session *s)
{
	if (s->out.len > 0) {
		s->ops->send(s->ctx, s->out.data, s->out.len);
		buf_reset(&s->out);
	}
}

static void do_close(struct smtp_session *s)
{
	flush_out(s);
	s->susp = SUSP_CLOSED;
	s->ops->close(s->ctx, s->close_reason ? s->close_reason : "protocol");
}

/* End of a step (a command, the end of DATA, a commit): sleep if Postfix would, then
 * send, then close if asked. */
static void finish_step(struct smtp_session *s)
{
	if (s->susp == SUSP_CLOSED)
		return;
	s->step_delayed = false;
	if (s->delay_ms > 0) {
		unsigned ms = s->delay_ms;
		s->delay_ms = 0;
		s->susp = SUSP_WAIT;
		s->ops->wait(s->ctx, ms);
		return;
	}
	if (s->close_reason) {
		do_close(s);
		return;
	}
	flush_out(s);
}

static void close_after(struct smtp_session *s, const char *reason)
{
	if (!s->close_reason)
		s->close_reason = reason;
}

/* ------------------------------------------------------------------ events --- */

static void emit(struct smtp_session *s, struct mxb_event *ev)
{
	if (ev)
		s->ops->event(s->ctx, ev);
}

static void offence(struct smtp_session *s, const char *kind, const char *detail,
		    size_t len)
{
	struct mxb_event *ev = mxb_event_new("offence");
	if (!ev)
		return;
	mxb_event_str(ev, "kind", kind);
	mxb_event_strn(ev, "detail", detail ? detail : "", len > DETAIL_MAX ? DETAIL_MAX : len);
	emit(s, ev);
}

static void offence_once(struct smtp_session *s, unsigned bit, const char *kind,
			 const char *detail, size_t len)
{
	if (s->once & bit)
		return;
	s->once |= bit;
	offence(s, kind, detail, len);
}

struct auth_ev {
	const char *mech;
	const char *user;
	size_t user_len;
	const char *pass;
	size_t pass_len;
	const char *authzid;
	size_t authzid_len;
	bool success;
	const char *result;
};

static void auth_event(struct smtp_session *s, const struct auth_ev *a)
{
	struct mxb_event *ev = mxb_event_new("auth");
	if (!ev)
		return;
	mxb_event_str(ev, "mechanism", a->mech);
	if (a->user)
		mxb_event_strn(ev, "username", a->user, a->user_len);
	else
		mxb_event_null(ev, "username");
	if (a->pass)
		mxb_event_strn(ev, "password", a->pass, a->pass_len);
	else
		mxb_event_null(ev, "password");
	if (a->authzid && a->authzid_len > 0)
		mxb_event_strn(ev, "authzid", a->authzid, a->authzid_len);
	else
		mxb_event_null(ev, "authzid");
	mxb_event_bool(ev, "success", a->success);
	mxb_event_str(ev, "result", a->result);
	emit(s, ev);
}

static void auth_event_simple(struct smtp_session *s, const char *mech, const char *result)
{
	struct auth_ev a = {.mech = mech, .result = result};
	auth_event(s, &a);
}

static void message_rejected(struct smtp_session *s, const char *reason, int code)
{
	struct mxb_event *ev = mxb_event_new("message_rejected");
	if (!ev)
		return;
	mxb_event_str(ev, "reason", reason);
	mxb_event_int(ev, "size", (int64_t)s->msg_bytes);
	if (code > 0)
		mxb_event_int(ev, "reply", code);
	else
		mxb_event_null(ev, "reply");
	emit(s, ev);
}

/* ------------------------------------------------------------- transaction --- */

static void msg_abort(struct smtp_session *s)
{
	if (s->msg_is_open) {
		s->ops->msg_abort(s->ctx);
		s->msg_is_open = false;
	}
}

/* Postfix mail_reset(): forget the envelope, the size and any message in progress. */
static void mail_reset(struct smtp_session *s)
{
	msg_abort(s);
	s->in_mail = false;
	s->sender[0] = '\0';
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
	s->bdat_reply[0] = '\0';
	s->method_bdat = false;
}

/* Postfix printable(): header-safe copy of attacker text. */
static void printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	dst[o] = '\0';
}

static int64_t now_us(struct smtp_session *s)
{
	if (s->ops->now_us)
		return s->ops->now_us(s->ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The protocol name Postfix puts in Received (RFC 3848). */
static const char *proto_name(const struct smtp_session *s)
{
	if (!s->esmtp)
		return "SMTP";
	if (s->tls && s->authenticated)
		return "ESMTPSA";
	if (s->tls)
		return "ESMTPS";
	if (s->authenticated)
		return "ESMTPA";
	return "ESMTP";
}

static int msg_write(struct smtp_session *s, const char *data, size_t len)
{
	if (s->msg_failed || !s->msg_is_open)
		return -1;
	if (s->ops->msg_write(s->ctx, data, len) < 0) {
		s->msg_failed = true;
		return -1;
	}
	return 0;
}

/* Content bytes: counted against message_size_limit, written while under it. */
static void msg_put(struct smtp_session *s, const char *data, size_t len)
{
	s->msg_bytes += len;
	if (s->cfg->message_size_limit > 0 && s->msg_bytes > s->cfg->message_size_limit)
		s->msg_too_big = true;
	if (!s->msg_too_big)
		msg_write(s, data, len);
}

/* Open the message and write Postfix's Received header.  -1: the spool refused. */
static int msg_start(struct smtp_session *s, bool bdat)
{
	char qid[32] = "";
	if (s->ops->msg_open(s->ctx, qid, sizeof(qid)) < 0)
		return -1;
	s->msg_is_open = true;
	s->msg_failed = false;
	s->msg_too_big = false;
	s->msg_bytes = 0;
	s->method_bdat = bdat;
	qid[sizeof(qid) - 1] = '\0';
	memcpy(s->queue_id, qid, sizeof(s->queue_id));

	struct buf h;
	buf_init(&h, 8192);
	char helo[NAME_MAX_LEN];
	const char *name = s->have_rdns ? s->peer_rdns : "unknown";
	printable(helo, sizeof(helo), s->have_helo ? s->helo : name,
		  strlen(s->have_helo ? s->helo : name));
	bool v6 = strchr(s->peer_ip, ':') != NULL;
	buf_printf(&h, "Received: from %s (%s [%s%s])\r\n", helo, name, v6 ? "IPv6:" : "",
		   s->peer_ip);
	if (s->tls) {
		buf_printf(&h, "\t(using %s with cipher %s (%d/%d bits))\r\n", s->tls_version,
			   s->tls_cipher, s->tls_bits, s->tls_bits);
		buf_puts(&h, "\t(No client certificate requested)\r\n");
	}
	if (s->authenticated) {
		char user[NAME_MAX_LEN];
		printable(user, sizeof(user), s->auth_user, strlen(s->auth_user));
		buf_printf(&h, "\t(Authenticated sender: %s)\r\n", user);
	}
	char date[64];
	time_t t = (time_t)(now_us(s) / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %e %b %Y %H:%M:%S +0000 (UTC)", &tm);
	if (s->rcpt_count == 1) {
		char rcpt[1100];
		printable(rcpt, sizeof(rcpt), s->rcpts.data, strlen(s->rcpts.data));
		buf_printf(&h, "\tby %s (Postfix) with %s id %s\r\n", s->cfg->hostname,
			   proto_name(s), s->queue_id);
		buf_printf(&h, "\tfor <%s>; %s\r\n", rcpt, date);
	} else {
		buf_printf(&h, "\tby %s (Postfix) with %s id %s;\r\n", s->cfg->hostname,
			   proto_name(s), s->queue_id);
		buf_printf(&h, "\t%s\r\n", date);
	}
	msg_write(s, h.data, h.len);
	buf_free(&h);
	return 0;
}

/* End of DATA or BDAT LAST: refuse (size, spool) or hand to the spool and suspend. */
static void msg_end(struct smtp_session *s)
{
	if (s->msg_too_big) {
		msg_abort(s);
		/* cleanup's CLEANUP_STAT_SIZE detail, as smtpd words it after DATA */
		reply(s, "552 5.3.4 Error: message file too big");
		error_reply_counted(s);
		message_rejected(s, "size", 552);
		mail_reset(s);
		return;
	}
	if (s->msg_failed || !s->msg_is_open) {
		msg_abort(s);
		reply(s, "452 4.3.1 Insufficient system storage");
		error_reply_counted(s);
		message_rejected(s, "no_space", 452);
		mail_reset(s);
		return;
	}
	s->susp = SUSP_COMMIT;
	s->ops->msg_commit(s->ctx);
}

void smtp_session_committed(struct smtp_session *s, const struct smtp_commit_result *r)
{
	if (s->susp != SUSP_COMMIT)
		return;
	s->susp = SUSP_NONE;
	s->msg_is_open = false; /* the spool owns it now, whatever the outcome */
	const char *qid = (r && r->queue_id && *r->queue_id) ? r->queue_id : s->queue_id;
	if (r && r->ok) {
		if (s->method_bdat)
			reply(s, "250 2.0.0 Ok: %llu bytes queued as %s",
			      (unsigned long long)s->msg_bytes, qid);
		else
			reply(s, "250 2.0.0 Ok: queued as %s", qid);
		s->messages++;
		/* Postfix forgives earlier errors once a message was delivered. */
		s->errors = 0;
		s->junk_cmds = 0;
		struct mxb_event *ev = mxb_event_new("message");
		if (ev) {
			mxb_event_str(ev, "queue_id", qid);
			mxb_event_str(ev, "spool", r->spool_name ? r->spool_name : "");
			mxb_event_str(ev, "sha256", r->sha256 ? r->sha256 : "");
			mxb_event_int(ev, "size", (int64_t)r->size);
			mxb_event_str(ev, "sender", s->sender);
			const char *list[1024];
			size_t n = 0;
			for (size_t off = 0; off < s->rcpts.len && n < 1024;) {
				const char *p = s->rcpts.data + off;
				list[n++] = p;
				off += strlen(p) + 1;
			}
			mxb_event_str_array(ev, "recipients", list, n);
			mxb_event_str(ev, "method", s->method_bdat ? "BDAT" : "DATA");
			if (s->authenticated)
				mxb_event_str(ev, "auth_user", s->auth_user);
			else
				mxb_event_null(ev, "auth_user");
			mxb_event_bool(ev, "tls", s->tls);
			emit(s, ev);
		}
	} else {
		bool nospace = r && r->no_space;
		if (nospace)
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		error_reply_counted(s);
		message_rejected(s, nospace ? "no_space" : "io", nospace ? 452 : 451);
	}
	s->msg_is_open = false;
	mail_reset(s);
	set_state(s, ST_CMD);
	if (s->cfg->hard_error_limit > 0 && s->errors >= s->cfg->hard_error_limit) {
		reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
	}
	finish_step(s);
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

static bool auth_offered(const struct smtp_session *s)
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
static void join_args(const struct smtp_args *a, size_t from, char *out, size_t outlen)
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
	mxb_event_str(ev, "name", s->helo);
	emit(s, ev);
}

static int check_ehlo(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n < 2) {
		reply(s, "501 Syntax: EHLO hostname");
		offence(s, "bad_syntax", "EHLO", 4);
		return -1;
	}
	return 0;
}

static int check_helo(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n < 2) {
		reply(s, "501 Syntax: HELO hostname");
		offence(s, "bad_syntax", "HELO", 4);
		return -1;
	}
	return 0;
}

static void run_helo_common(struct smtp_session *s, struct smtp_args *a, bool esmtp)
{
	mail_reset(s);
	join_args(a, 1, s->helo, sizeof(s->helo));
	s->have_helo = true;
	s->esmtp = esmtp;
	helo_event(s, esmtp ? "EHLO" : "HELO");
}

static void run_ehlo(struct smtp_session *s, struct smtp_args *a)
{
	run_helo_common(s, a, true);
	const struct smtp_config *c = s->cfg;
	reply(s, "250-%s", c->hostname);
	reply(s, "250-PIPELINING");
	if (c->message_size_limit > 0)
		reply(s, "250-SIZE %llu", (unsigned long long)c->message_size_limit);
	else
		reply(s, "250-SIZE"); /* message_size_limit = 0: no limit */
	if (c->vrfy_enabled)
		reply(s, "250-VRFY");
	reply(s, "250-ETRN");
	if (starttls_offered(s))
		reply(s, "250-STARTTLS");
	if (auth_offered(s))
		reply(s, "250-AUTH PLAIN LOGIN%s", c->cram_md5 ? " CRAM-MD5" : "");
	reply(s, "250-ENHANCEDSTATUSCODES");
	reply(s, "250-8BITMIME");
	reply(s, "250-DSN");
	reply(s, "250-SMTPUTF8");
	reply(s, "250 CHUNKING");
}

static void run_helo(struct smtp_session *s, struct smtp_args *a)
{
	run_helo_common(s, a, false);
	reply(s, "250 %s", s->cfg->hostname);
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
	emit(s, ev);
}

static int check_mail(struct smtp_session *s, struct smtp_args *a)
{
	if (s->bdat_active) {
		reply(s, "503 5.5.1 Error: MAIL after BDAT");
		offence(s, "bad_sequence", "MAIL", 4);
		return -1;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: nested MAIL command");
		offence(s, "bad_sequence", "MAIL", 4);
		return -1;
	}
	return 0;
}

static void run_mail(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_path_req r;
	char err[SMTP_REPLY_MAX];
	struct smtp_parse_limits lim = {
		.auth_active = auth_offered(s),
		.authenticated = s->authenticated,
	};
	enum smtp_parse_result pr = smtp_parse_mail(a, &lim, &r, err);
	/* Postfix stores SIZE= while it walks the parameters, and only mail_reset()
	 * clears it: a refused MAIL leaves its SIZE behind for the next one. */
	if (r.has_size)
		s->msg_size = r.size_overflow ? 0 : r.size;
	if (pr != SMTP_PARSE_OK) {
		reply(s, "%s", err);
		error_reply_counted(s);
		mail_event(s, &r, r.addr[0] != '\0' || pr != SMTP_PARSE_REJECT);
		return;
	}
	if (s->cfg->message_size_limit > 0 && s->msg_size > s->cfg->message_size_limit) {
		reply(s, "552 5.3.4 Message size exceeds fixed limit");
		error_reply_counted(s);
		mail_event(s, &r, true);
		return;
	}
	s->in_mail = true;
	snprintf(s->sender, sizeof(s->sender), "%s", r.addr);
	s->mail_smtputf8 = r.smtputf8;
	reply(s, "250 2.1.0 Ok");
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
	emit(s, ev);
}

static int check_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	if (!s->in_mail) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		offence(s, "bad_sequence", "RCPT", 4);
		return -1;
	}
	if (s->bdat_active) {
		reply(s, "503 5.5.1 Error: RCPT after BDAT");
		offence(s, "bad_sequence", "RCPT", 4);
		return -1;
	}
	return 0;
}

static void run_rcpt(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_path_req r;
	char err[SMTP_REPLY_MAX];
	struct smtp_parse_limits lim = {.smtputf8 = s->mail_smtputf8};
	enum smtp_parse_result pr = smtp_parse_rcpt(a, &lim, &r, err);
	if (!r.syntax_ok) {
		reply(s, "%s", err);
		error_reply_counted(s);
		rcpt_event(s, &r, false);
		return;
	}
	if (s->cfg->recipient_limit > 0 && s->rcpt_count >= s->cfg->recipient_limit) {
		reply(s, "452 4.5.3 Error: too many recipients");
		/* Postfix forgives the first smtpd_recipient_overshoot_limit of these. */
		if (s->rcpt_overshoot++ >= RCPT_OVERSHOOT_LIMIT)
			error_reply_counted(s);
		rcpt_event(s, &r, false);
		return;
	}
	if (pr != SMTP_PARSE_OK) {
		reply(s, "%s", err);
		error_reply_counted(s);
		rcpt_event(s, &r, false);
		return;
	}
	char shown[1100];
	printable(shown, sizeof(shown), r.addr, strlen(r.addr));
	bool local = domain_is_local(s, r.addr) || smtp_addr_is_postmaster(r.addr);
	bool relay = !local;
	if (s->cfg->role != SMTP_ROLE_MX && !s->authenticated) {
		/* Debian's submission/smtps: smtpd_client_restrictions=permit_sasl_authenticated,reject
		 * shows as a recipient rejection for every address. */
		reply(s, "554 5.7.1 <%s>: Recipient address rejected: Access denied", shown);
		error_reply_counted(s);
	} else if (s->authenticated || local || s->cfg->catch_all) {
		if (buf_append(&s->rcpts, r.addr, strlen(r.addr) + 1) < 0) {
			reply(s, "452 4.5.3 Error: too many recipients");
		} else {
			s->rcpt_count++;
			reply(s, "250 2.1.5 Ok");
		}
	} else {
		reply(s, "454 4.7.1 <%s>: Relay access denied", shown);
		error_reply_counted(s);
	}
	rcpt_event(s, &r, relay);
}

static int check_data(struct smtp_session *s, struct smtp_args *a)
{
	if (s->rcpt_count == 0) {
		if (!s->in_mail)
			reply(s, "503 5.5.1 Error: need RCPT command");
		else
			reply(s, "554 5.5.1 Error: no valid recipients");
		offence(s, "bad_sequence", "DATA", 4);
		return -1;
	}
	if (a->n != 1) {
		reply(s, "501 5.5.4 Syntax: DATA");
		return -1;
	}
	if (s->bdat_active) {
		reply(s, "503 5.5.1 Error: DATA after BDAT");
		offence(s, "bad_sequence", "DATA", 4);
		return -1;
	}
	return 0;
}

static void run_data(struct smtp_session *s, struct smtp_args *a)
{
	if (msg_start(s, false) < 0) {
		reply(s, "452 4.3.1 Insufficient system storage");
		error_reply_counted(s);
		message_rejected(s, "no_space", 452);
		return;
	}
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->data_bol = true;
	set_state(s, ST_DATA);
}

/* Start reading (or skipping) count chunk bytes; the reply waits for the bytes. */
static void chunk_begin(struct smtp_session *s, uint64_t count, bool last, bool discard)
{
	s->chunk_left = count;
	s->chunk_last = last;
	s->chunk_discard = discard;
	set_state(s, ST_CHUNK);
}

static void chunk_done(struct smtp_session *s);

static int check_bdat(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_bdat_req r;
	char err[SMTP_REPLY_MAX];
	enum smtp_parse_result pr = smtp_parse_bdat(a, &r, err);
	if (pr != SMTP_PARSE_OK) {
		/* Postfix hangs up: after a malformed BDAT it cannot know where the
		 * next command starts. */
		reply(s, "%s", err);
		offence(s, "bad_syntax", a->n > 0 ? a->tok[0].s : "", 4);
		close_after(s, "protocol");
		return -1;
	}
	if (s->rcpt_count == 0 || s->bdat_error) {
		if (s->bdat_error)
			snprintf(s->chunk_reply, sizeof(s->chunk_reply), "%s", s->bdat_reply);
		else if (!s->in_mail)
			snprintf(s->chunk_reply, sizeof(s->chunk_reply),
				 "503 5.5.1 Error: need RCPT command");
		else
			snprintf(s->chunk_reply, sizeof(s->chunk_reply),
				 "554 5.5.1 Error: no valid recipients");
		if (!s->bdat_error)
			offence(s, "bad_sequence", "BDAT", 4);
		if (r.count == 0) {
			/* Nothing to skip: answer now (counted by the caller). */
			reply(s, "%s", s->chunk_reply);
			if (r.last && s->bdat_error)
				mail_reset(s);
			return -1;
		}
		chunk_begin(s, r.count, r.last, true);
		return -1;
	}
	if (r.count == 0 && !r.last) {
		reply(s, "551 5.7.1 Null BDAT request");
		return -1;
	}
	return 0;
}

static void run_bdat(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_bdat_req r;
	char err[SMTP_REPLY_MAX];
	smtp_parse_bdat(a, &r, err);
	if (!s->bdat_active) {
		s->bdat_active = true;
		if (msg_start(s, true) < 0) {
			s->bdat_error = true;
			snprintf(s->bdat_reply, sizeof(s->bdat_reply),
				 "452 4.3.1 Insufficient system storage");
			message_rejected(s, "no_space", 452);
			snprintf(s->chunk_reply, sizeof(s->chunk_reply), "%s", s->bdat_reply);
			chunk_begin(s, r.count, r.last, true);
			if (r.count == 0)
				chunk_done(s);
			return;
		}
	}
	s->chunk_reply[0] = '\0';
	chunk_begin(s, r.count, r.last, false);
	if (r.count == 0)
		chunk_done(s);
}

static void chunk_done(struct smtp_session *s)
{
	set_state(s, ST_CMD);
	if (s->chunk_discard) {
		reply(s, "%s", s->chunk_reply);
		error_reply_counted(s);
		if (s->chunk_last && s->bdat_error)
			mail_reset(s);
		return;
	}
	if (s->msg_too_big || s->msg_failed) {
		bool big = s->msg_too_big;
		snprintf(s->bdat_reply, sizeof(s->bdat_reply), "%s",
			 big ? "552 5.3.4 Error: message file too big"
			     : "452 4.3.1 Insufficient system storage");
		reply(s, "%s", s->bdat_reply);
		error_reply_counted(s);
		message_rejected(s, big ? "size" : "no_space", big ? 552 : 452);
		msg_abort(s);
		if (s->chunk_last)
			mail_reset(s);
		else
			s->bdat_error = true;
		return;
	}
	if (s->chunk_last) {
		msg_end(s);
		return;
	}
	reply(s, "250 2.0.0 Ok: %llu bytes", (unsigned long long)s->msg_bytes);
}

static int check_rset(struct smtp_session *s, struct smtp_args *a)
{
	if (a->n != 1) {
		reply(s, "501 5.5.4 Syntax: RSET");
		return -1;
	}
	return 0;
}

static void run_rset(struct smtp_session *s, struct smtp_args *a)
{
	mail_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static int check_none(struct smtp_session *s, struct smtp_args *a)
{
	return 0;
}

static void run_noop(struct smtp_session *s, struct smtp_args *a)
{
	reply(s, "250 2.0.0 Ok");
}

static void run_quit(struct smtp_session *s, struct smtp_args *a)
{
	reply(s, "221 2.0.0 Bye");
	close_after(s, "quit");
}

static void vrfy_event(struct smtp_session *s, const char *verb, const char *arg)
{
	struct mxb_event *ev = mxb_event_new("vrfy");
	if (!ev)
		return;
	mxb_event_str(ev, "verb", verb);
	mxb_event_str(ev, "argument", arg);
	mxb_event_int(ev, "reply", s->last_code);
	emit(s, ev);
}

static int check_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	char arg[2100];
	join_args(a, 1, arg, sizeof(arg));
	if (!s->cfg->vrfy_enabled) {
		reply(s, "502 5.5.1 VRFY command is disabled");
		vrfy_event(s, "VRFY", arg);
		return -1;
	}
	if (a->n < 2) {
		reply(s, "501 5.5.4 Syntax: VRFY address [SMTPUTF8]");
		vrfy_event(s, "VRFY", arg);
		return -1;
	}
	return 0;
}

static void run_vrfy(struct smtp_session *s, struct smtp_args *a)
{
	char arg[2100], shown[2100];
	/* "VRFY address [SMTPUTF8]": the option is not part of the address. */
	struct smtp_args args = *a;
	if (args.n > 2 && strcasecmp(args.tok[args.n - 1].s, "SMTPUTF8") == 0)
		args.n--;
	join_args(&args, 1, arg, sizeof(arg));
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
		reply(s, "501 5.1.3 Bad recipient address syntax");
		error_reply_counted(s);
		vrfy_event(s, "VRFY", arg);
		return;
	}
	printable(shown, sizeof(shown), arg, strlen(arg));
	/* One answer for every address: no user enumeration through us. */
	reply(s, "252 2.0.0 %s", shown);
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
		reply(s, "503 Error: MAIL transaction in progress");
		return -1;
	}
	if (a->n != 2) {
		reply(s, "500 Syntax: ETRN domain");
		return -1;
	}
	const char *d = a->tok[1].s;
	if (*d == '@' || *d == '#')
		d++;
	bool literal = d[0] == '[' && strlen(d) > 2 && d[strlen(d) - 1] == ']';
	if (!valid_hostname(d) && !literal) {
		reply(s, "501 Error: invalid parameter syntax");
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
	reply(s, "459 <%s>: service unavailable", d);
}

static int check_starttls(struct smtp_session *s, struct smtp_args *a)
{
	/* Postfix allows STARTTLS inside a transaction (RFC 2487 does not forbid it)
	 * and simply resets it. */
	if (a->n != 1) {
		reply(s, "501 5.5.4 Syntax: STARTTLS");
		return -1;
	}
	if (s->tls) {
		reply(s, "554 5.5.1 Error: TLS already active");
		return -1;
	}
	if (!s->cfg->tls_available) {
		reply(s, "502 5.5.1 Error: command not implemented");
		return -1;
	}
	return 0;
}

static void run_starttls(struct smtp_session *s, struct smtp_args *a)
{
	reply(s, "220 2.0.0 Ready to start TLS");
	if (s->feed_pos && s->feed_pos < s->feed_end)
		offence(s, "starttls_injection", s->feed_pos,
			(size_t)(s->feed_end - s->feed_pos));
	s->susp = SUSP_TLS;
}

/* AUTH */
static const char *mech_name(enum auth_mech m)
{
	switch (m) {
	case MECH_PLAIN:
		return "PLAIN";
	case MECH_LOGIN:
		return "LOGIN";
	case MECH_CRAM:
		return "CRAM-MD5";
	case MECH_NONE:
		break;
	}
	return "";
}

static int check_auth(struct smtp_session *s, struct smtp_args *a)
{
	const char *mech = a->n > 1 ? a->tok[1].s : "";
	if (!auth_offered(s)) {
		reply(s, "503 5.5.1 Error: authentication not enabled");
		auth_event_simple(s, mech, "not_enabled");
		offence(s, "auth_not_enabled", mech, strlen(mech));
		return -1;
	}
	if (s->in_mail) {
		reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return -1;
	}
	if (s->authenticated) {
		reply(s, "503 5.5.1 Error: already authenticated");
		return -1;
	}
	if (a->n < 2 || a->n > 3) {
		reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return -1;
	}
	return 0;
}

/* Postfix's Dovecot client checks the alphabet before Dovecot decodes. */
static bool b64_charset(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		char c = p[i];
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      c == '+' || c == '/' || c == '='))
			return false;
	}
	return true;
}

static void auth_challenge(struct smtp_session *s, const char *b64)
{
	snprintf(s->auth_last334, sizeof(s->auth_last334), "%s", b64);
	reply(s, "334 %s", b64);
	set_state(s, ST_AUTH);
}

static void auth_end(struct smtp_session *s)
{
	s->mech = MECH_NONE;
	s->auth_step = 0;
	s->auth_tmp_len = 0;
	if (s->state == ST_AUTH)
		set_state(s, ST_CMD);
}

static void auth_fail_text(struct smtp_session *s, const char *reason)
{
	reply(s, "535 5.7.8 Error: authentication failed:%s%s", *reason ? " " : "", reason);
	error_reply_counted(s);
	auth_end(s);
}

/* Ask the policy; answer 235, or wait then 535/454 as Postfix+Dovecot do. */
static void auth_verify(struct smtp_session *s, const struct sasl_slice *authzid,
			const struct sasl_slice *user, const struct sasl_slice *pass,
			const char *cram_digest)
{
	char ubuf[SASL_RESP_LIMIT], pbuf[SASL_RESP_LIMIT], zbuf[SASL_RESP_LIMIT];
	/* C strings for the policy: cut at the first NUL (the event keeps every byte). */
	size_t ul = strnlen(user->p, user->len), pl = pass ? strnlen(pass->p, pass->len) : 0;
	size_t zl = authzid ? strnlen(authzid->p, authzid->len) : 0;
	memcpy(ubuf, user->p, ul);
	ubuf[ul] = '\0';
	if (pass)
		memcpy(pbuf, pass->p, pl);
	pbuf[pl] = '\0';
	if (authzid)
		memcpy(zbuf, authzid->p, zl);
	zbuf[zl] = '\0';
	const char *proto = s->cfg->role == SMTP_ROLE_SUBMISSION ? "submission"
			    : s->cfg->role == SMTP_ROLE_SMTPS  ? "smtps"
							       : "smtp";
	struct auth_request req = {
		.proto = proto,
		.mechanism = mech_name(s->mech),
		.src_ip = s->peer_ip,
		.authzid = zl ? zbuf : NULL,
		.username = ubuf,
		.password = pass ? pbuf : NULL,
		.cram_challenge = cram_digest ? s->auth_challenge : NULL,
		.cram_digest = cram_digest,
	};
	enum auth_verdict v = auth_policy_check(s->cfg->auth, &req);
	struct auth_ev ev = {
		.mech = mech_name(s->mech),
		.user = user->p,
		.user_len = user->len,
		.pass = pass ? pass->p : NULL,
		.pass_len = pass ? pass->len : 0,
		.authzid = authzid ? authzid->p : NULL,
		.authzid_len = authzid ? authzid->len : 0,
		.success = v == AUTH_OK,
		.result = v == AUTH_OK ? "ok" : v == AUTH_TEMPFAIL ? "tempfail" : "fail",
	};
	if (v == AUTH_FAIL && s->auth_failures >= 2) {
		ev.result = "tempfail"; /* answered 454 below, as recorded */
	}
	auth_event(s, &ev);
	if (v == AUTH_OK) {
		s->authenticated = true;
		printable(s->auth_user, sizeof(s->auth_user), user->p, ul);
		reply(s, "235 2.7.0 Authentication successful");
		auth_end(s);
		return;
	}
	/* The failure delay comes before the answer (Dovecot's auth_failure_delay). */
	s->delay_ms += s->cfg->auth_failure_delay_ms;
	s->auth_failures++;
	/* Recorded Postfix+Dovecot: from the third wrong password on, the penalised
	 * request times out and Postfix reports a temporary failure. */
	if (v == AUTH_FAIL && s->auth_failures >= 3)
		v = AUTH_TEMPFAIL;
	if (v == AUTH_TEMPFAIL) {
		reply(s, "454 4.7.0 Temporary authentication failure: "
			 "Connection lost to authentication server");
		error_reply_counted(s);
		auth_end(s);
		return;
	}
	auth_fail_text(s, "(reason unavailable)");
}

static void auth_malformed(struct smtp_session *s, const char *reason)
{
	auth_event_simple(s, mech_name(s->mech), "malformed");
	auth_fail_text(s, reason);
}

/* One decoded SASL message for the current mechanism and step. */
static void auth_step(struct smtp_session *s, const unsigned char *msg, size_t len)
{
	switch (s->mech) {
	case MECH_PLAIN: {
		struct sasl_slice z, u, p;
		if (!sasl_plain_split(msg, len, &z, &u, &p)) {
			struct sasl_slice whole = {(const char *)msg, len};
			struct auth_ev ev = {.mech = "PLAIN", .user = len ? whole.p : NULL,
					     .user_len = len, .result = "malformed"};
			auth_event(s, &ev);
			s->delay_ms += s->cfg->auth_failure_delay_ms;
			s->auth_failures++;
			auth_fail_text(s, "(reason unavailable)");
			return;
		}
		auth_verify(s, &z, &u, &p, NULL);
		return;
	}
	case MECH_LOGIN:
		if (s->auth_step == 0) {
			size_t n = len < sizeof(s->auth_tmp) ? len : sizeof(s->auth_tmp);
			memcpy(s->auth_tmp, msg, n);
			s->auth_tmp_len = n;
			s->auth_step = 1;
			auth_challenge(s, "UGFzc3dvcmQ6");
			return;
		} else {
			struct sasl_slice u = {(const char *)s->auth_tmp, s->auth_tmp_len};
			struct sasl_slice p = {(const char *)msg, len};
			auth_verify(s, NULL, &u, &p, NULL);
			return;
		}
	case MECH_CRAM: {
		struct sasl_slice u, d;
		if (!sasl_cram_split(msg, len, &u, &d)) {
			auth_malformed(s, "(reason unavailable)");
			return;
		}
		char digest[33];
		memcpy(digest, d.p, 32);
		digest[32] = '\0';
		auth_verify(s, NULL, &u, NULL, digest);
		return;
	}
	case MECH_NONE:
		break;
	}
	auth_end(s);
}

/* A base64 SASL answer (initial response or continuation). */
static void auth_input(struct smtp_session *s, const char *b64, size_t len, bool initial)
{
	unsigned char *dec = malloc(SASL_RESP_LIMIT);
	size_t n;
	if (!dec || !b64_charset(b64, len) ||
	    sasl_b64_decode(b64, len, dec, SASL_RESP_LIMIT, &n) < 0) {
		free(dec);
		auth_malformed(s, initial ? "Invalid base64 data in initial response"
					  : "Invalid base64 data in continued response");
		return;
	}
	auth_step(s, dec, n);
	free(dec);
}

static void run_auth(struct smtp_session *s, struct smtp_args *a)
{
	const char *m = a->tok[1].s;
	if (strcasecmp(m, "PLAIN") == 0)
		s->mech = MECH_PLAIN;
	else if (strcasecmp(m, "LOGIN") == 0)
		s->mech = MECH_LOGIN;
	else if (s->cfg->cram_md5 && strcasecmp(m, "CRAM-MD5") == 0)
		s->mech = MECH_CRAM;
	else {
		auth_event_simple(s, m, "malformed");
		reply(s, "535 5.7.8 Error: authentication failed: Invalid authentication mechanism");
		error_reply_counted(s);
		return;
	}
	s->auth_step = 0;
	if (a->n == 3 && !b64_charset(a->tok[2].s, a->tok[2].len)) {
		/* Refused by Postfix before Dovecot sees it: no penalty. */
		auth_malformed(s, "Invalid base64 data in initial response");
		return;
	}
	/* Dovecot's auth penalty: after a failure, every new request from the client
	 * waits (2^failures x the base delay, capped) before its first answer. */
	if (s->auth_failures > 0) {
		unsigned shift = s->auth_failures < 2 ? s->auth_failures : 2;
		s->delay_ms += s->cfg->auth_failure_delay_ms << shift;
	}
	if (s->mech == MECH_CRAM) {
		unsigned char rnd[8];
		unsigned long long r = 0;
		if (RAND_bytes(rnd, sizeof(rnd)) == 1)
			memcpy(&r, rnd, sizeof(r));
		snprintf(s->auth_challenge, sizeof(s->auth_challenge), "<%llu.%lld@%s>", r,
			 (long long)(now_us(s) / 1000000), s->cfg->hostname);
		char b64[sizeof(s->auth_challenge) * 2];
		sasl_b64_encode((const unsigned char *)s->auth_challenge,
				strlen(s->auth_challenge), b64);
		auth_challenge(s, b64);
		return;
	}
	if (a->n == 3) {
		auth_input(s, a->tok[2].s, a->tok[2].len, true);
		return;
	}
	auth_challenge(s, s->mech == MECH_PLAIN ? "" : "VXNlcm5hbWU6");
}

/* A continuation line while in ST_AUTH. */
static void auth_line(struct smtp_session *s, const char *line, size_t len)
{
	if (s->overflowed) {
		/* Postfix smtpd_chat_query_limit() with smtpd_sasl_resp_limit */
		auth_event_simple(s, mech_name(s->mech), "malformed");
		reply(s, "500 5.5.6 SASL response limit exceeded");
		error_reply_counted(s);
		auth_end(s);
		return;
	}
	if (len == 1 && line[0] == '*') {
		auth_event_simple(s, mech_name(s->mech), "aborted");
		reply(s, "501 5.7.0 Authentication aborted");
		error_reply_counted(s);
		auth_end(s);
		return;
	}
	if (len == 0) {
		/* Dovecot fails an empty answer without a reason; Postfix then shows the
		 * text of its last challenge. */
		char last[sizeof(s->auth_last334)];
		snprintf(last, sizeof(last), "%s", s->auth_last334);
		auth_malformed(s, last);
		return;
	}
	auth_input(s, line, len, false);
}

static const struct smtp_cmd cmd_table[] = {
	{"HELO", CMD_PRE_TLS | CMD_LAST | CMD_JUNK, check_helo, run_helo},
	{"EHLO", CMD_PRE_TLS | CMD_LAST | CMD_JUNK, check_ehlo, run_ehlo},
	{"STARTTLS", CMD_PRE_TLS, check_starttls, run_starttls},
	{"AUTH", 0, check_auth, run_auth},
	{"MAIL", 0, check_mail, run_mail},
	{"RCPT", 0, check_rcpt, run_rcpt},
	{"DATA", CMD_LAST, check_data, run_data},
	{"BDAT", 0, check_bdat, run_bdat},
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

/* Postfix 3.7 smtpd_forbidden_commands default, plus its is_header() test. */
static bool forbidden(const char *verb)
{
	return strcasecmp(verb, "CONNECT") == 0 || strcasecmp(verb, "GET") == 0 ||
	       strcasecmp(verb, "POST") == 0 || smtp_is_header_name(verb);
}

/* One command line (CRLF removed, NUL-terminated, at most line_length_limit). */
static void command_line(struct smtp_session *s, char *line, size_t len)
{
	const struct smtp_config *c = s->cfg;
	s->commands++;
	s->last_code = 0;
	if (c->command_limit > 0 && s->commands > c->command_limit) {
		reply(s, "421 4.7.0 %s Error: too many errors", c->hostname);
		offence(s, "command_limit", line, len);
		close_after(s, "command_limit");
		return;
	}
	char *nul = memchr(line, '\0', len);
	if (nul) {
		/* Postfix handles the line as a C string: it ends at the NUL. */
		offence_once(s, ONCE_NUL, "nul_byte", line, len);
		len = (size_t)(nul - line);
	}
	if (!smtp_valid_utf8(line, len)) {
		reply(s, "500 5.5.2 Error: bad UTF-8 syntax");
		error_reply_counted(s);
		offence(s, "bad_syntax", line, len);
		return;
	}
	char detail[DETAIL_MAX + 1];
	size_t dlen = len < DETAIL_MAX ? len : DETAIL_MAX;
	memcpy(detail, line, dlen);
	detail[dlen] = '\0';

	struct smtp_args a;
	if (smtp_tokenize(line, &a) == 0) {
		reply(s, "500 5.5.2 Error: bad syntax");
		error_reply_counted(s);
		offence(s, "bad_syntax", detail, dlen);
		return;
	}
	const struct smtp_cmd *cmd = cmd_lookup(a.tok[0].s);
	if (!cmd) {
		if (forbidden(a.tok[0].s)) {
			reply(s, "221 2.7.0 Error: I can break rules, too. Goodbye.");
			offence(s, "forbidden_command", detail, dlen);
			close_after(s, "forbidden_command");
			return;
		}
		reply(s, "500 5.5.2 Error: command not recognized");
		error_reply_counted(s);
		if (strcasecmp(a.tok[0].s, "EXPN") == 0) {
			char arg[2100];
			join_args(&a, 1, arg, sizeof(arg));
			vrfy_event(s, "EXPN", arg);
		} else {
			offence(s, "unknown_command", detail, dlen);
		}
		return;
	}
	if (c->role == SMTP_ROLE_SUBMISSION && !s->tls && !(cmd->flags & CMD_PRE_TLS)) {
		reply(s, "530 5.7.0 Must issue a STARTTLS command first");
		error_reply_counted(s);
		if (cmd->run == run_auth)
			auth_event_simple(s, a.n > 1 ? a.tok[1].s : "", "tls_required");
		return;
	}
	/* Postfix logs "improper command pipelining" when more input is already waiting
	 * after a command that must end a group, or after anything before EHLO. */
	if ((!s->esmtp || (cmd->flags & CMD_LAST)) && s->feed_pos && s->feed_pos < s->feed_end)
		offence_once(s, ONCE_PIPELINING, "pipelining", s->feed_pos,
			     (size_t)(s->feed_end - s->feed_pos));
	if (cmd->check(s, &a) < 0) {
		/* A BDAT whose chunk is being skipped is answered (and counted) once the
		 * chunk bytes are read. */
		if (s->last_code >= 400 && !s->close_reason && s->state != ST_CHUNK)
			error_reply_counted(s);
	} else {
		cmd->run(s, &a);
	}
	if ((cmd->flags & CMD_JUNK) && s->junk_cmds++ > JUNK_CMD_LIMIT)
		s->errors++;
}

/* ------------------------------------------------------------------ input ---- */

static void after_step(struct smtp_session *s)
{
	const struct smtp_config *c = s->cfg;
	if (!s->close_reason && s->susp == SUSP_NONE && c->hard_error_limit > 0 &&
	    s->errors >= c->hard_error_limit && s->state == ST_CMD) {
		reply(s, "421 4.7.0 %s Error: too many errors", c->hostname);
		offence(s, "too_many_errors", "", 0);
		close_after(s, "too_many_errors");
	}
	if (s->susp == SUSP_TLS) {
		flush_out(s);
		s->ops->starttls(s->ctx);
		return;
	}
	if (s->susp == SUSP_COMMIT) {
		/* msg_commit was called already; replies so far may leave now. */
		flush_out(s);
		return;
	}
	finish_step(s);
}

/* DATA: one piece of a line (had_lf: the piece ends the line). */
static void data_piece(struct smtp_session *s, const char *p, size_t len, bool had_lf)
{
	if (s->data_bol && had_lf && len == 1 && p[0] == '.') {
		set_state(s, ST_CMD);
		msg_end(s);
		return;
	}
	if (s->data_bol && len > 0 && p[0] == '.') {
		p++;
		len--;
	}
	if (len > 0)
		msg_put(s, p, len);
	if (had_lf)
		msg_put(s, "\r\n", 2);
	s->data_bol = had_lf;
}

/* A complete line from the framer: content without LF; CR stripped if present. */
static void line_complete(struct smtp_session *s, char *p, size_t len, bool bare_lf)
{
	if (bare_lf)
		offence_once(s, ONCE_BARE_LF, "bare_lf", p, len);
	switch (s->state) {
	case ST_DATA:
		data_piece(s, p, len, true);
		if (s->state != ST_DATA || s->susp != SUSP_NONE)
			after_step(s);
		return;
	case ST_AUTH:
		auth_line(s, p, len);
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
		msg_put(s, data, n);
	s->chunk_left -= n;
	if (s->chunk_left == 0) {
		chunk_done(s);
		after_step(s);
	}
	return n;
}

/* Line framing.  Returns bytes consumed from data. */
static size_t feed_lines(struct smtp_session *s, const char *data, size_t len)
{
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t limit = line_limit(s);
	size_t content = lf ? take - 1 : take;

	if (s->state == ST_DATA) {
		/* DATA: long lines are cut into pieces (Postfix stores them as
		 * continuation records), never refused. */
		size_t room = limit > s->line.len ? limit - s->line.len : 0;
		if (content > room) {
			size_t cut = room;
			buf_append(&s->line, data, cut);
			/* Keep a trailing CR for the next round: it may pair with LF. */
			size_t out = s->line.len;
			if (out > 0 && s->line.data[out - 1] == '\r')
				out--;
			data_piece(s, s->line.data, out, false);
			buf_consume(&s->line, out);
			return cut;
		}
		buf_append(&s->line, data, content);
		if (!lf)
			return take;
	} else if (s->skipping) {
		if (!lf)
			return take;
		s->skipping = false;
	} else {
		size_t room = limit > s->line.len ? limit - s->line.len : 0;
		if (content > room) {
			buf_append(&s->line, data, room);
			s->overflowed = true;
			offence_once(s, ONCE_LINE_TOO_LONG, "line_too_long", s->line.data,
				     s->line.len);
			if (!lf) {
				/* Postfix smtp_get(..., SMTP_GET_FLAG_SKIP): keep the first
				 * line_length_limit bytes, drop the rest up to the newline. */
				s->skipping = true;
				return take;
			}
		} else {
			buf_append(&s->line, data, content);
		}
		if (!lf)
			return take;
	}
	/* A complete line is in s->line.  (After a cut line the CR is gone: not bare.) */
	bool bare_lf = !s->overflowed;
	size_t l = s->line.len;
	if (l > 0 && s->line.data[l - 1] == '\r') {
		l--;
		bare_lf = false;
	}
	s->line.data[l] = '\0';
	s->feed_pos = data + take;
	line_complete(s, s->line.data, l, bare_lf);
	buf_reset(&s->line);
	s->overflowed = false;
	return take;
}

size_t smtp_session_feed(struct smtp_session *s, const char *data, size_t len)
{
	size_t pos = 0;
	s->feed_end = data + len;
	while (pos < len && s->susp == SUSP_NONE) {
		s->feed_pos = data + pos;
		if (s->state == ST_CHUNK)
			pos += feed_chunk(s, data + pos, len - pos);
		else
			pos += feed_lines(s, data + pos, len - pos);
	}
	s->feed_pos = NULL;
	s->feed_end = NULL;
	if (s->susp == SUSP_NONE)
		flush_out(s);
	return pos;
}

/* ---------------------------------------------------------------- lifecycle --- */

struct smtp_session *smtp_session_new(const struct smtp_config *cfg,
				      const struct smtp_peer *peer, bool tls_active,
				      const struct smtp_host_ops *ops, void *ctx)
{
	struct smtp_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->cfg = cfg;
	s->ops = ops;
	s->ctx = ctx;
	if (peer) {
		snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer->ip ? peer->ip : "unknown");
		if (peer->rdns && *peer->rdns) {
			printable(s->peer_rdns, sizeof(s->peer_rdns), peer->rdns,
				  strlen(peer->rdns));
			s->have_rdns = true;
		}
	} else {
		snprintf(s->peer_ip, sizeof(s->peer_ip), "unknown");
	}
	s->tls = tls_active;
	if (tls_active) {
		snprintf(s->tls_version, sizeof(s->tls_version), "TLS");
		snprintf(s->tls_cipher, sizeof(s->tls_cipher), "unknown");
	}
	size_t lim = cfg->line_length_limit ? cfg->line_length_limit : 2048;
	lim = lim < 16 ? 16 : lim;
	size_t cap = (lim > SASL_RESP_LIMIT ? lim : SASL_RESP_LIMIT) + 8;
	buf_init(&s->line, cap);
	buf_init(&s->out, 64 * 1024);
	/* Recipients: bounded by recipient_limit addresses of at most 1 KB. */
	buf_init(&s->rcpts, (size_t)(cfg->recipient_limit ? cfg->recipient_limit : 1000) * 1025);
	s->state = ST_CMD;
	return s;
}

void smtp_session_start(struct smtp_session *s)
{
	reply(s, "220 %s ESMTP Postfix (Debian/GNU)", s->cfg->hostname);
	flush_out(s);
}

void smtp_session_free(struct smtp_session **sp)
{
	if (!sp || !*sp)
		return;
	struct smtp_session *s = *sp;
	if (s->msg_is_open && s->susp != SUSP_COMMIT)
		s->ops->msg_abort(s->ctx);
	buf_free(&s->line);
	buf_free(&s->out);
	buf_free(&s->rcpts);
	free(s);
	*sp = NULL;
}

void smtp_session_resume(struct smtp_session *s)
{
	if (s->susp != SUSP_WAIT)
		return;
	s->susp = SUSP_NONE;
	if (s->close_reason) {
		do_close(s);
		return;
	}
	flush_out(s);
}

void smtp_session_tls_started(struct smtp_session *s, const char *version,
			      const char *cipher, int bits)
{
	snprintf(s->tls_version, sizeof(s->tls_version), "%s", version ? version : "TLS");
	snprintf(s->tls_cipher, sizeof(s->tls_cipher), "%s", cipher ? cipher : "unknown");
	s->tls_bits = bits;
	s->tls = true;
	if (s->susp == SUSP_TLS) {
		/* RFC 3207 4.2: forget everything learned before the handshake. */
		mail_reset(s);
		s->have_helo = false;
		s->esmtp = false;
		s->helo[0] = '\0';
		s->authenticated = false;
		s->auth_user[0] = '\0';
		buf_reset(&s->line);
		s->skipping = false;
		s->overflowed = false;
		set_state(s, ST_CMD);
		s->susp = SUSP_NONE;
	}
}

void smtp_session_hangup(struct smtp_session *s, const char *reason)
{
	if (s->susp == SUSP_CLOSED)
		return;
	bool timeout = reason && strcmp(reason, "timeout") == 0;
	bool in_transfer = s->state == ST_DATA || s->state == ST_CHUNK ||
			   (s->bdat_active && s->msg_is_open);
	if (s->susp == SUSP_COMMIT) {
		/* The spool finishes the commit on its own; nothing to abort here. */
	} else if (in_transfer) {
		msg_abort(s);
		message_rejected(s, timeout ? "timeout" : "hangup", timeout ? 421 : 0);
	}
	if (timeout) {
		buf_reset(&s->out);
		reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		flush_out(s);
	}
	s->susp = SUSP_CLOSED;
}
