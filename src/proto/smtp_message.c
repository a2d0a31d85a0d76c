/*
 * smtp_message: DATA and BDAT for the SMTP engine, and the hand-over to the spool.
 *
 * DATA lines arrive from smtp.c's framer (already cut at line_length_limit); a leading
 * dot is removed, a lone dot ends the message, line ends are stored as CRLF.  BDAT
 * chunks are stored byte for byte.  The message starts with Postfix's Received header
 * naming the true peer; over message_size_limit the rest is read and dropped, then
 * refused.  At the end the host commits (msg_commit) and the engine waits for
 * smtp_session_committed() before it answers 250 with the queue id.
 */
#include "proto/smtp_private.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event.h"

void smtp_message_rejected(struct smtp_session *s, const char *reason, int code)
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
	session_emit(&s->sess, ev);
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
	if (s->sess.ops->msg_write(s->sess.ctx, data, len) < 0) {
		s->msg_failed = true;
		return -1;
	}
	return 0;
}

/* Content bytes: counted against message_size_limit, written while under it. */
void smtp_msg_put(struct smtp_session *s, const char *data, size_t len)
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
	if (s->sess.ops->msg_open(s->sess.ctx, qid, sizeof(qid)) < 0)
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
	session_printable(helo, sizeof(helo), s->have_helo ? s->x->helo : name,
		  strlen(s->have_helo ? s->x->helo : name));
	bool v6 = strchr(s->sess.peer_ip, ':') != NULL;
	buf_printf(&h, "Received: from %s (%s [%s%s])\r\n", helo, name, v6 ? "IPv6:" : "",
		   s->sess.peer_ip);
	if (s->tls) {
		buf_printf(&h, "\t(using %s with cipher %s (%d/%d bits))\r\n", s->tls_version,
			   s->tls_cipher, s->tls_bits, s->tls_bits);
		buf_puts(&h, "\t(No client certificate requested)\r\n");
	}
	if (s->authenticated) {
		char user[NAME_MAX_LEN];
		session_printable(user, sizeof(user), s->x->auth_user, strlen(s->x->auth_user));
		buf_printf(&h, "\t(Authenticated sender: %s)\r\n", user);
	}
	char date[64];
	time_t t = (time_t)(session_now_us(&s->sess) / 1000000);
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(date, sizeof(date), "%a, %e %b %Y %H:%M:%S +0000 (UTC)", &tm);
	if (s->rcpt_count == 1) {
		char rcpt[1100];
		session_printable(rcpt, sizeof(rcpt), s->rcpts.data, strlen(s->rcpts.data));
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
		smtp_msg_abort(s);
		/* cleanup's CLEANUP_STAT_SIZE detail, as smtpd words it after DATA */
		smtp_reply(s, "552 5.3.4 Error: message file too big");
		smtp_count_error(s);
		smtp_message_rejected(s, "size", 552);
		smtp_mail_reset(s);
		return;
	}
	if (s->msg_failed || !s->msg_is_open) {
		smtp_msg_abort(s);
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		smtp_count_error(s);
		smtp_message_rejected(s, "no_space", 452);
		smtp_mail_reset(s);
		return;
	}
	session_suspend(&s->sess, SESSION_COMMIT);
	s->sess.ops->msg_commit(s->sess.ctx);
}

void smtp_session_committed(struct smtp_session *s, const struct proto_commit_result *r)
{
	if (s->sess.susp != SESSION_COMMIT)
		return;
	session_suspend(&s->sess, SESSION_RUN);
	s->step_delayed = false;
	s->msg_is_open = false; /* the spool owns it now, whatever the outcome */
	const char *qid = (r && r->queue_id && *r->queue_id) ? r->queue_id : s->queue_id;
	if (r && r->ok) {
		if (s->method_bdat)
			smtp_reply(s, "250 2.0.0 Ok: %llu bytes queued as %s",
			      (unsigned long long)s->msg_bytes, qid);
		else
			smtp_reply(s, "250 2.0.0 Ok: queued as %s", qid);
		s->sess.messages++;
		/* Postfix forgives earlier errors once a message was delivered. */
		s->sess.errors = 0;
		s->junk_cmds = 0;
		struct mxb_event *ev = mxb_event_new("message");
		if (ev) {
			mxb_event_str(ev, "queue_id", qid);
			mxb_event_str(ev, "spool", r->spool_name ? r->spool_name : "");
			mxb_event_str(ev, "sha256", r->sha256 ? r->sha256 : "");
			mxb_event_int(ev, "size", (int64_t)r->size);
			mxb_event_str(ev, "sender", s->x->sender);
			/* Every accepted recipient (recipient_limit bounds them), and
			 * their count, which stays true even if a store must shorten
			 * the list (docs/events.md). */
			size_t n = 0;
			for (size_t off = 0; off < s->rcpts.len; n++)
				off += strlen(s->rcpts.data + off) + 1;
			const char **list = calloc(n ? n : 1, sizeof(*list));
			size_t listed = 0;
			for (size_t off = 0; list && off < s->rcpts.len; listed++) {
				list[listed] = s->rcpts.data + off;
				off += strlen(list[listed]) + 1;
			}
			mxb_event_str_array(ev, "recipients", list, list ? listed : 0);
			mxb_event_int(ev, "recipient_count", (int64_t)n);
			free(list);
			mxb_event_str(ev, "method", s->method_bdat ? "BDAT" : "DATA");
			if (s->authenticated)
				mxb_event_str(ev, "auth_user", s->x->auth_user);
			else
				mxb_event_null(ev, "auth_user");
			mxb_event_bool(ev, "tls", s->tls);
			session_emit(&s->sess, ev);
		}
	} else {
		bool nospace = r && r->no_space;
		if (nospace)
			smtp_reply(s, "452 4.3.1 Insufficient system storage");
		else
			smtp_reply(s, "451 4.3.0 Error: queue file write error");
		smtp_count_error(s);
		smtp_message_rejected(s, nospace ? "no_space" : "io", nospace ? 452 : 451);
	}
	s->msg_is_open = false;
	smtp_mail_reset(s);
	smtp_set_state(s, ST_CMD);
	if (s->cfg->hard_error_limit > 0 && s->sess.errors >= s->cfg->hard_error_limit)
		smtp_error_limit(s);
	session_end_step(&s->sess);
}


int smtp_data_check(struct smtp_session *s, struct smtp_args *a)
{
	if (s->rcpt_count == 0) {
		if (!s->in_mail)
			smtp_reply(s, "503 5.5.1 Error: need RCPT command");
		else
			smtp_reply(s, "554 5.5.1 Error: no valid recipients");
		smtp_offence(s, "bad_sequence", "DATA", 4);
		return -1;
	}
	if (a->n != 1) {
		smtp_reply(s, "501 5.5.4 Syntax: DATA");
		return -1;
	}
	if (s->bdat_active) {
		smtp_reply(s, "503 5.5.1 Error: DATA after BDAT");
		smtp_offence(s, "bad_sequence", "DATA", 4);
		return -1;
	}
	return 0;
}

void smtp_data_run(struct smtp_session *s, struct smtp_args *a)
{
	if (msg_start(s, false) < 0) {
		smtp_reply(s, "452 4.3.1 Insufficient system storage");
		smtp_count_error(s);
		smtp_message_rejected(s, "no_space", 452);
		return;
	}
	smtp_reply(s, "354 End data with <CR><LF>.<CR><LF>");
	s->data_bol = true;
	smtp_set_state(s, ST_DATA);
}

/* Start reading (or skipping) count chunk bytes; the reply waits for the bytes. */
static void chunk_begin(struct smtp_session *s, uint64_t count, bool last, bool discard)
{
	s->chunk_left = count;
	s->chunk_last = last;
	s->chunk_discard = discard;
	smtp_set_state(s, ST_CHUNK);
}

int smtp_bdat_check(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_bdat_req r;
	char err[SMTP_REPLY_MAX];
	enum smtp_parse_result pr = smtp_parse_bdat(a, &r, err);
	if (pr != SMTP_PARSE_OK) {
		/* Postfix hangs up: after a malformed BDAT it cannot know where the
		 * next command starts. */
		smtp_reply(s, "%s", err);
		smtp_offence(s, "bad_syntax", a->n > 0 ? a->tok[0].s : "", 4);
		session_close_after(&s->sess, "protocol");
		return -1;
	}
	if (s->rcpt_count == 0 || s->bdat_error) {
		if (s->bdat_error)
			snprintf(s->x->chunk_reply, sizeof(s->x->chunk_reply), "%s", s->x->bdat_reply);
		else if (!s->in_mail)
			snprintf(s->x->chunk_reply, sizeof(s->x->chunk_reply),
				 "503 5.5.1 Error: need RCPT command");
		else
			snprintf(s->x->chunk_reply, sizeof(s->x->chunk_reply),
				 "554 5.5.1 Error: no valid recipients");
		if (!s->bdat_error)
			smtp_offence(s, "bad_sequence", "BDAT", 4);
		if (r.count == 0) {
			/* Nothing to skip: answer now (counted by the caller). */
			smtp_reply(s, "%s", s->x->chunk_reply);
			if (r.last && s->bdat_error)
				smtp_mail_reset(s);
			return -1;
		}
		chunk_begin(s, r.count, r.last, true);
		return -1;
	}
	if (r.count == 0 && !r.last) {
		smtp_reply(s, "551 5.7.1 Null BDAT request");
		return -1;
	}
	return 0;
}

void smtp_bdat_run(struct smtp_session *s, struct smtp_args *a)
{
	struct smtp_bdat_req r;
	char err[SMTP_REPLY_MAX];
	smtp_parse_bdat(a, &r, err);
	if (!s->bdat_active) {
		s->bdat_active = true;
		if (msg_start(s, true) < 0) {
			s->bdat_error = true;
			snprintf(s->x->bdat_reply, sizeof(s->x->bdat_reply),
				 "452 4.3.1 Insufficient system storage");
			smtp_message_rejected(s, "no_space", 452);
			snprintf(s->x->chunk_reply, sizeof(s->x->chunk_reply), "%s", s->x->bdat_reply);
			chunk_begin(s, r.count, r.last, true);
			if (r.count == 0)
				smtp_chunk_done(s);
			return;
		}
	}
	s->x->chunk_reply[0] = '\0';
	chunk_begin(s, r.count, r.last, false);
	if (r.count == 0)
		smtp_chunk_done(s);
}

void smtp_chunk_done(struct smtp_session *s)
{
	smtp_set_state(s, ST_CMD);
	if (s->chunk_discard) {
		smtp_reply(s, "%s", s->x->chunk_reply);
		smtp_count_error(s);
		if (s->chunk_last && s->bdat_error)
			smtp_mail_reset(s);
		return;
	}
	if (s->msg_too_big || s->msg_failed) {
		bool big = s->msg_too_big;
		snprintf(s->x->bdat_reply, sizeof(s->x->bdat_reply), "%s",
			 big ? "552 5.3.4 Error: message file too big"
			     : "452 4.3.1 Insufficient system storage");
		smtp_reply(s, "%s", s->x->bdat_reply);
		smtp_count_error(s);
		smtp_message_rejected(s, big ? "size" : "no_space", big ? 552 : 452);
		smtp_msg_abort(s);
		if (s->chunk_last)
			smtp_mail_reset(s);
		else
			s->bdat_error = true;
		return;
	}
	if (s->chunk_last) {
		msg_end(s);
		return;
	}
	smtp_reply(s, "250 2.0.0 Ok: %llu bytes", (unsigned long long)s->msg_bytes);
}


/* DATA: one piece of a line (had_lf: the piece ends the line). */
void smtp_data_piece(struct smtp_session *s, const char *p, size_t len, bool had_lf)
{
	if (s->data_bol && had_lf && len == 1 && p[0] == '.') {
		smtp_set_state(s, ST_CMD);
		msg_end(s);
		return;
	}
	if (s->data_bol && len > 0 && p[0] == '.') {
		p++;
		len--;
	}
	if (len > 0)
		smtp_msg_put(s, p, len);
	if (had_lf)
		smtp_msg_put(s, "\r\n", 2);
	s->data_bol = had_lf;
}
