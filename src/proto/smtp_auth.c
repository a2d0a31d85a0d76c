/*
 * smtp_auth: the AUTH command of the SMTP engine (PLAIN, LOGIN, CRAM-MD5).
 *
 * Postfix with Dovecot SASL as the persona: Postfix refuses what it can check itself
 * (mechanism, base64 alphabet) at once; everything else is Dovecot's answer, with its
 * failure delay before a 535 and its per-client penalty before new requests (emulated
 * per session).  Every attempt, whatever its outcome, becomes an `auth` event with the
 * decoded user name and password (any bytes); the credential decision is the
 * auth_policy's.
 */
#include "proto/proto_event.h"
#include "proto/smtp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "deceive/auth_policy.h"
#include "proto/sasl.h"
#include "store/event.h"

/* One `auth` event: slices of the decoded exchange (any bytes, NUL included). */
static void auth_event(struct smtp_session *s, const struct auth_ev *a)
{
	session_auth_event(&s->sess, a);
}

void smtp_auth_event_simple(struct smtp_session *s, const char *mech, const char *result)
{
	session_auth_event_simple(&s->sess, mech, result);
}


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

int smtp_auth_check(struct smtp_session *s, struct smtp_args *a)
{
	const char *mech = a->n > 1 ? a->tok[1].s : "";
	if (!smtp_auth_offered(s)) {
		smtp_reply(s, "503 5.5.1 Error: authentication not enabled");
		smtp_auth_event_simple(s, mech, "not_enabled");
		smtp_offence(s, "auth_not_enabled", mech, strlen(mech));
		return -1;
	}
	if (s->in_mail) {
		smtp_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
		return -1;
	}
	if (s->authenticated) {
		smtp_reply(s, "503 5.5.1 Error: already authenticated");
		return -1;
	}
	if (a->n < 2 || a->n > 3) {
		smtp_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
		return -1;
	}
	return 0;
}

/* Postfix's Dovecot client checks the alphabet before Dovecot decodes. */
static bool b64_charset(const char *p, size_t len)
{
	return sasl_b64_charset(p, len);
}

static void auth_challenge(struct smtp_session *s, const char *b64)
{
	snprintf(s->x->auth_last334, sizeof(s->x->auth_last334), "%s", b64);
	smtp_reply(s, "334 %s", b64);
	smtp_set_state(s, ST_AUTH);
}

static void auth_end(struct smtp_session *s)
{
	s->mech = MECH_NONE;
	s->auth_step = 0;
	free(s->auth_tmp);
	s->auth_tmp = NULL;
	s->auth_tmp_len = 0;
	if (s->state == ST_AUTH)
		smtp_set_state(s, ST_CMD);
}

static void auth_fail_text(struct smtp_session *s, const char *reason)
{
	smtp_reply(s, "535 5.7.8 Error: authentication failed:%s%s", *reason ? " " : "", reason);
	smtp_count_error(s);
	auth_end(s);
}


/* Dovecot's auth_failure_delay as Postfix's SASL client receives it. */
static unsigned failure_delay(struct smtp_session *s)
{
	return session_failure_delay(&s->sess, s->cfg->auth_failure_delay_ms,
				     s->cfg->auth_failure_jitter);
}

/* Ask the policy (through the session's one credential path: a NUL byte or over
 * 8 KiB fails like a wrong password, never asked about); answer 235, or wait then
 * 535/454 as Postfix+Dovecot do. */
static void auth_verify(struct smtp_session *s, const struct sasl_slice *authzid,
			const struct sasl_slice *user, const struct sasl_slice *pass,
			const char *cram_digest)
{
	struct session_cred c = {
		.proto = s->cfg->role == SMTP_ROLE_SUBMISSION ? "submission"
			 : s->cfg->role == SMTP_ROLE_SMTPS    ? "smtps"
								: "smtp",
		.mech = mech_name(s->mech),
		.authzid = authzid,
		.user = user,
		.pass = pass,
		.cram_challenge = cram_digest ? s->x->auth_challenge : NULL,
		.cram_digest = cram_digest,
	};
	struct sasl_cred cred;
	bool taken;
	enum auth_verdict v = session_auth_check(&s->sess, s->cfg->auth, &c, &cred, &taken);
	const char *result = !taken ? "malformed" : v == AUTH_OK ? "ok"
				    : v == AUTH_TEMPFAIL ? "tempfail" : "fail";
	if (taken && v == AUTH_FAIL && s->auth_failures >= 2)
		result = "tempfail"; /* answered 454 below, as recorded */
	session_cred_event(&s->sess, &c, v == AUTH_OK, result);
	if (v == AUTH_OK) {
		s->authenticated = true;
		session_printable(s->x->auth_user, sizeof(s->x->auth_user), cred.user,
				  strlen(cred.user));
		sasl_cred_free(&cred);
		smtp_reply(s, "235 2.7.0 Authentication successful");
		auth_end(s);
		return;
	}
	/* The failure delay comes before the answer (Dovecot's auth_failure_delay). */
	session_hold(&s->sess, failure_delay(s));
	s->auth_failures++;
	/* Recorded Postfix+Dovecot: from the third wrong password on, the penalised
	 * request times out and Postfix reports a temporary failure. */
	if (v == AUTH_FAIL && s->auth_failures >= 3)
		v = AUTH_TEMPFAIL;
	if (v == AUTH_TEMPFAIL) {
		smtp_reply(s, "454 4.7.0 Temporary authentication failure: "
			 "Connection lost to authentication server");
		smtp_count_error(s);
		auth_end(s);
		return;
	}
	auth_fail_text(s, "(reason unavailable)");
}

static void auth_malformed(struct smtp_session *s, const char *reason)
{
	smtp_auth_event_simple(s, mech_name(s->mech), "malformed");
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
			session_hold(&s->sess, failure_delay(s));
			s->auth_failures++;
			auth_fail_text(s, "(reason unavailable)");
			return;
		}
		auth_verify(s, &z, &u, &p, NULL);
		return;
	}
	case MECH_LOGIN:
		if (s->auth_step == 0) {
			free(s->auth_tmp);
			s->auth_tmp = malloc(len ? len : 1);
			if (!s->auth_tmp) {
				auth_malformed(s, "(reason unavailable)");
				return;
			}
			if (len)
				memcpy(s->auth_tmp, msg, len);
			s->auth_tmp_len = len;
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
	if (!dec || !session_b64_decode(b64, len, dec, SASL_RESP_LIMIT, &n)) {
		free(dec);
		auth_malformed(s, initial ? "Invalid base64 data in initial response"
					  : "Invalid base64 data in continued response");
		return;
	}
	auth_step(s, dec, n);
	free(dec);
}

void smtp_auth_run(struct smtp_session *s, struct smtp_args *a)
{
	const char *m = a->tok[1].s;
	if (strcasecmp(m, "PLAIN") == 0)
		s->mech = MECH_PLAIN;
	else if (strcasecmp(m, "LOGIN") == 0)
		s->mech = MECH_LOGIN;
	else if (s->cfg->cram_md5 && strcasecmp(m, "CRAM-MD5") == 0)
		s->mech = MECH_CRAM;
	else {
		smtp_auth_event_simple(s, m, "malformed");
		smtp_reply(s, "535 5.7.8 Error: authentication failed: Invalid authentication mechanism");
		smtp_count_error(s);
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
		session_hold(&s->sess, s->cfg->auth_failure_delay_ms << shift);
	}
	if (s->mech == MECH_CRAM) {
		unsigned char rnd[8];
		unsigned long long r = 0;
		if (RAND_bytes(rnd, sizeof(rnd)) == 1)
			memcpy(&r, rnd, sizeof(r));
		snprintf(s->x->auth_challenge, sizeof(s->x->auth_challenge), "<%llu.%lld@%s>", r,
			 (long long)(session_now_us(&s->sess) / 1000000), s->cfg->hostname);
		char b64[sizeof(s->x->auth_challenge) * 2];
		sasl_b64_encode((const unsigned char *)s->x->auth_challenge,
				strlen(s->x->auth_challenge), b64);
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
void smtp_auth_line(struct smtp_session *s, const char *line, size_t len)
{
	if (s->overflowed) {
		/* Postfix smtpd_chat_query_limit() with smtpd_sasl_resp_limit */
		smtp_auth_event_simple(s, mech_name(s->mech), "malformed");
		smtp_reply(s, "500 5.5.6 SASL response limit exceeded");
		smtp_count_error(s);
		auth_end(s);
		return;
	}
	if (len == 1 && line[0] == '*') {
		smtp_auth_event_simple(s, mech_name(s->mech), "aborted");
		smtp_reply(s, "501 5.7.0 Authentication aborted");
		smtp_count_error(s);
		auth_end(s);
		return;
	}
	if (len == 0) {
		/* Dovecot fails an empty answer without a reason; Postfix then shows the
		 * text of its last challenge. */
		char last[sizeof(s->x->auth_last334)];
		snprintf(last, sizeof(last), "%s", s->x->auth_last334);
		auth_malformed(s, last);
		return;
	}
	auth_input(s, line, len, false);
}
