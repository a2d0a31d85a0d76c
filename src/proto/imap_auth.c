/*
 * imap_auth: IMAP login as Dovecot's imap-login does it: LOGIN and AUTHENTICATE
 * (PLAIN, LOGIN, SASL-IR), refused without TLS (LOGINDISABLED) but still recorded,
 * decided by the auth policy, and the growing anvil-like penalty after failures.
 *
 * Promises: every attempt gives exactly one auth event with the bytes the client
 * sent; a failure is answered only after auth_failure_delay (ops->wait); a success
 * builds the session's deceptive mailbox and answers with the post-login capability.
 * SASL lines are bounded by AUTH_LINE_MAX.
 */
#include "proto/imap_private.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "deceive/auth_policy.h"
#include "proto/sasl.h"
#include "proto/userip.h"

/* ------------------------------------------------------------------- auth --- */

const char *imap_mech_name(enum mech m)
{
	return m == MECH_PLAIN ? "PLAIN" : m == MECH_LOGIN ? "LOGIN" : "";
}

static const char *proto_name(const struct imap_session *s)
{
	return s->cfg->implicit_tls ? "imaps" : "imap";
}

/* The penalty Dovecot's anvil adds before an attempt that follows failures
 * (recorded: ~4 s after one failure, ~8 s after two, then 15 s). */
static void auth_penalty(struct imap_session *s)
{
	if (s->auth_failures == 0)
		return;
	unsigned max = s->cfg->auth_penalty_max_ms ? s->cfg->auth_penalty_max_ms : 15000;
	if (max == UINT32_MAX)
		return;
	unsigned shift = s->auth_failures > 8 ? 8 : s->auth_failures;
	unsigned ms = 2000u << shift;
	session_hold(&s->sess, ms > max ? max : ms);
}

static unsigned failure_delay(struct imap_session *s)
{
	return session_failure_delay(&s->sess, s->cfg->auth_failure_delay_ms,
				     s->cfg->auth_failure_jitter);
}

/* Canonical user for the mailbox: lower case, the served domain stripped. */
static void canonical_user(const struct imap_session *s, const char *user, char *out,
			   size_t outlen)
{
	size_t o = 0;
	for (const char *p = user; *p && o + 1 < outlen; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
	char *at = strrchr(out, '@');
	if (at && s->cfg->domain && strcasecmp(at + 1, s->cfg->domain) == 0)
		*at = '\0';
}

static void login_ok(struct imap_session *s, const char *user, size_t ulen)
{
	session_printable(s->user, sizeof(s->user), user, ulen);
	char canon[USER_MAX];
	canonical_user(s, s->user, canon, sizeof(canon));
	/* Dovecot's mail_max_userip_connections: the imap process refuses the session
	 * (measured on Debian's Dovecot 2.3.19, the 11th login of alice from one address) */
	if (!s->userip_user[0]) {
		if (!userip_acquire("imap", canon, s->sess.peer_ip, s->cfg->max_userip)) {
			imap_tagged_plain(s, "NO", "[LIMIT] Maximum number of connections from user+IP "
					  "exceeded (mail_max_userip_connections=%u)", s->cfg->max_userip);
			return;
		}
		if (s->cfg->max_userip)
			snprintf(s->userip_user, sizeof(s->userip_user), "%s", canon);
	}
	static const uint8_t zero[32];
	mailbox_free(&s->mbox);
	/* dated from the crack time, as POP3 does (mailbox.h) */
	int64_t since_us = auth_policy_account_since_us(s->cfg->auth, canon);
	s->mbox = mailbox_generate_at(canon, s->cfg->domain ? s->cfg->domain : "localdomain",
				      s->cfg->hostname ? s->cfg->hostname : "localhost",
				      s->cfg->secret ? s->cfg->secret : zero, since_us / 1000000);
	imap_set_state(s, CS_AUTH, s->in);
	s->line_writes = false; /* the imap process corks: the login reply is one write */
	s->bad_row = 0;
	/* imap's client_send_login_reply(): the capability as a resp-code unless the
	 * client showed (CAPABILITY before STARTTLS) that it ignores resp-codes. */
	if (s->cap_seen) {
		imap_untagged(s, "CAPABILITY %s", CAP_POSTLOGIN);
		imap_tagged_plain(s, "OK", "Logged in");
	} else {
		imap_tagged_plain(s, "OK", "[CAPABILITY %s] Logged in", CAP_POSTLOGIN);
	}
}

/* Ask the policy (through the session's one credential path: a NUL byte or over 8 KiB
 * is not asked about and fails like a wrong password) and answer. */
static void auth_verify(struct imap_session *s, const char *mech,
			const struct sasl_slice *authzid, const struct sasl_slice *user,
			const struct sasl_slice *pass)
{
	struct session_cred c = {
		.proto = proto_name(s),
		.mech = mech,
		.authzid = authzid,
		.user = user,
		.pass = pass,
	};
	struct sasl_cred cred;
	bool taken = false;
	enum auth_verdict v = AUTH_FAIL;
	/* an empty user name is Dovecot's plain failure, not the rule's refusal */
	if (user->len > 0)
		v = session_auth_check(&s->sess, s->cfg->auth, &c, &cred, &taken);
	bool refused = user->len > 0 && !taken;
	session_cred_event(&s->sess, &c, v == AUTH_OK,
			   refused ? "malformed" : v == AUTH_OK ? "ok"
					 : v == AUTH_TEMPFAIL ? "tempfail" : "fail");
	if (v == AUTH_OK) {
		login_ok(s, cred.user, strlen(cred.user));
		sasl_cred_free(&cred);
		return;
	}
	session_hold(&s->sess, failure_delay(s));
	if (v == AUTH_TEMPFAIL) {
		imap_tagged_plain(s, "NO", "[UNAVAILABLE] Temporary authentication failure.");
		return;
	}
	s->auth_failures++;
	imap_tagged_plain(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
}

static void auth_end(struct imap_session *s)
{
	s->mech = MECH_NONE;
	s->auth_step = 0;
	free(s->auth_user_tmp);
	s->auth_user_tmp = NULL;
	s->auth_user_len = 0;
	if (s->in == IN_AUTH)
		imap_set_input(s, IN_LINE);
}

/* One decoded SASL message. */
static void auth_sasl_step(struct imap_session *s, const unsigned char *msg, size_t len)
{
	if (s->mech == MECH_PLAIN) {
		struct sasl_slice z, u, p;
		if (!sasl_plain_split(msg, len, &z, &u, &p)) {
			struct auth_ev ev = {.mech = "PLAIN", .user = len ? (const char *)msg : NULL,
					     .user_len = len, .result = "malformed"};
			imap_auth_event(s, &ev);
			session_hold(&s->sess, failure_delay(s));
			s->auth_failures++;
			imap_tagged_plain(s, "NO", "[AUTHENTICATIONFAILED] Authentication failed.");
			auth_end(s);
			return;
		}
		auth_verify(s, "PLAIN", &z, &u, &p);
		auth_end(s);
		return;
	}
	if (s->mech == MECH_LOGIN) {
		if (s->auth_step == 0) {
			size_t n = len < AUTH_LINE_MAX ? len : AUTH_LINE_MAX;
			free(s->auth_user_tmp);
			s->auth_user_tmp = malloc(n ? n : 1);
			if (!s->auth_user_tmp)
				n = 0;
			else
				memcpy(s->auth_user_tmp, msg, n);
			s->auth_user_len = n;
			s->auth_step = 1;
			imap_out_str(s, "+ UGFzc3dvcmQ6\r\n");
			imap_set_input(s, IN_AUTH);
			return;
		}
		struct sasl_slice u = {s->auth_user_tmp ? (const char *)s->auth_user_tmp : "",
				       s->auth_user_len};
		struct sasl_slice p = {(const char *)msg, len};
		auth_verify(s, "LOGIN", NULL, &u, &p);
		auth_end(s);
		return;
	}
	auth_end(s);
}

static bool b64_decode_resp(const char *b64, size_t len, unsigned char *out, size_t cap,
			    size_t *n_r)
{
	return session_b64_decode(b64, len, out, cap, n_r);
}

/* A base64 response (SASL-IR or continuation). */
static void auth_input(struct imap_session *s, const char *b64, size_t len, bool initial)
{
	unsigned char *dec = malloc(AUTH_LINE_MAX);
	size_t n = 0;
	if (!dec || !b64_decode_resp(b64, len, dec, AUTH_LINE_MAX, &n)) {
		free(dec);
		imap_auth_event_simple(s, imap_mech_name(s->mech), "malformed");
		imap_tagged_plain(s, "NO", "[ALERT] Invalid base64 data in %s response",
			     initial ? "initial" : "continued");
		auth_end(s);
		return;
	}
	auth_sasl_step(s, dec, n);
	free(dec);
}

/* A continuation line while in IN_AUTH. */
void imap_auth_line(struct imap_session *s, const char *line, size_t len)
{
	memcpy(s->tag, s->auth_tag, sizeof(s->tag));
	if (len == 1 && line[0] == '*') {
		/* cancelled at the password prompt: the user name is already intel */
		struct auth_ev ev = {.mech = imap_mech_name(s->mech), .result = "aborted"};
		if (s->mech == MECH_LOGIN && s->auth_step == 1) {
			ev.user = s->auth_user_tmp ? (const char *)s->auth_user_tmp : "";
			ev.user_len = s->auth_user_len;
		}
		imap_auth_event(s, &ev);
		imap_tagged_plain(s, "BAD", "Authentication aborted by client.");
		auth_end(s);
		return;
	}
	auth_input(s, line, len, false);
}

/* LOGIN's and AUTHENTICATE's three steps in the command table (imap.c): the check
 * reads the arguments (-1: invalid, the table's BAD) and answers what the arguments
 * alone decide; without TLS the table then calls the refusal (ICMD_TLS: imap-login
 * refuses plaintext credentials only after reading them, and records what they gave
 * away); else the run. */
static bool login_args(const struct imap_command *c, const char **u, size_t *ul,
		       const char **p, size_t *pl)
{
	return c->n_args == 2 && imap_arg_astring(c->args, u, ul) &&
	       imap_arg_astring(c->args->next, p, pl);
}

int imap_login_check(struct imap_session *s, struct imap_command *c)
{
	(void)s;
	const char *u, *p;
	size_t ul, pl;
	return login_args(c, &u, &ul, &p, &pl) ? 0 : -1;
}

void imap_login_plaintext(struct imap_session *s, struct imap_command *c)
{
	const char *u = "", *p = "";
	size_t ul = 0, pl = 0;
	login_args(c, &u, &ul, &p, &pl);
	struct auth_ev ev = {.mech = "LOGIN", .user = u, .user_len = ul, .pass = p,
			     .pass_len = pl, .result = "tls_required"};
	imap_auth_event(s, &ev);
	/* Two writes in imap-login, back to back: a client reading once gets both (as
	 * recorded in imap-prelogin-errors), so they leave together here. */
	bool line_writes = s->line_writes;
	s->line_writes = false;
	imap_untagged(s, "BAD [ALERT] Plaintext authentication not allowed without SSL/TLS, "
		    "but your client did it anyway. If anyone was listening, the "
		    "password was exposed.");
	imap_tagged_plain(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disallowed on "
			      "non-secure (SSL/TLS) connections.");
	s->line_writes = line_writes;
}

int imap_pre_login(struct imap_session *s, struct imap_command *c)
{
	const char *u, *p;
	size_t ul, pl;
	if (!login_args(c, &u, &ul, &p, &pl))
		return -1;
	auth_penalty(s);
	struct sasl_slice us = {u, ul}, ps = {p, pl};
	auth_verify(s, "LOGIN", NULL, &us, &ps);
	return 0;
}

/* AUTHENTICATE mechanism [initial-response]: MECH_NONE when unsupported. */
static bool authenticate_args(const struct imap_command *c, enum mech *mech_r,
			      const char **m, size_t *ml, const char **ir, size_t *irl)
{
	*ir = NULL;
	*irl = 0;
	if (c->n_args < 1 || c->n_args > 2 || !imap_arg_astring(c->args, m, ml) || *ml == 0)
		return false;
	if (c->n_args == 2 && !imap_arg_astring(c->args->next, ir, irl))
		return false;
	*mech_r = MECH_NONE;
	if (strcasecmp(*m, "PLAIN") == 0)
		*mech_r = MECH_PLAIN;
	else if (strcasecmp(*m, "LOGIN") == 0)
		*mech_r = MECH_LOGIN;
	return true;
}

int imap_authenticate_check(struct imap_session *s, struct imap_command *c)
{
	const char *m, *ir;
	size_t ml, irl;
	enum mech mech;
	if (!authenticate_args(c, &mech, &m, &ml, &ir, &irl))
		return -1;
	if (mech == MECH_NONE) {
		char shown[64];
		session_printable(shown, sizeof(shown), m, ml);
		imap_auth_event_simple(s, shown, "malformed");
		imap_tagged_plain(s, "NO", "[ALERT] Unsupported authentication mechanism.");
		return 1;
	}
	return 0;
}

void imap_authenticate_plaintext(struct imap_session *s, struct imap_command *c)
{
	const char *m, *ir;
	size_t ml, irl;
	enum mech mech = MECH_NONE;
	authenticate_args(c, &mech, &m, &ml, &ir, &irl);
	/* Record what a SASL-IR would have given away. */
	unsigned char dec[AUTH_LINE_MAX];
	size_t n;
	struct sasl_slice z, u, p;
	if (ir && mech == MECH_PLAIN && b64_decode_resp(ir, irl, dec, sizeof(dec), &n) &&
	    sasl_plain_split(dec, n, &z, &u, &p)) {
		struct auth_ev ev = {.mech = "PLAIN", .user = u.p, .user_len = u.len,
				     .pass = p.p, .pass_len = p.len, .authzid = z.p,
				     .authzid_len = z.len, .result = "tls_required"};
		imap_auth_event(s, &ev);
	} else {
		imap_auth_event_simple(s, imap_mech_name(mech), "tls_required");
	}
	imap_tagged_plain(s, "NO", "[PRIVACYREQUIRED] Plaintext authentication disabled.");
}

int imap_pre_authenticate(struct imap_session *s, struct imap_command *c)
{
	const char *m, *ir;
	size_t ml, irl;
	enum mech mech;
	if (!authenticate_args(c, &mech, &m, &ml, &ir, &irl) || mech == MECH_NONE)
		return -1;
	s->mech = mech;
	s->auth_step = 0;
	memcpy(s->auth_tag, s->tag, sizeof(s->auth_tag));
	auth_penalty(s);
	if (ir) {
		if (irl == 1 && ir[0] == '=')
			auth_sasl_step(s, (const unsigned char *)"", 0);
		else
			auth_input(s, ir, irl, true);
		return 0;
	}
	imap_out_str(s, mech == MECH_PLAIN ? "+ \r\n" : "+ VXNlcm5hbWU6\r\n");
	imap_set_input(s, IN_AUTH);
	return 0;
}
