/*
 * session: the shared part of the protocol engines (see session.h).
 */
#include "proto/session.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/event.h"

#define OUT_SHRINK_AT (64 * 1024) /* give back the memory of a big answer */

void session_init(struct session *s, const char *proto, const struct proto_peer *peer,
		  const struct proto_host_ops *ops, void *ctx, size_t out_cap)
{
	memset(s, 0, sizeof(*s));
	s->proto = proto;
	s->ops = ops;
	s->ctx = ctx;
	snprintf(s->peer_ip, sizeof(s->peer_ip), "%s", peer && peer->ip ? peer->ip : "unknown");
	buf_init(&s->out, out_cap);
	s->susp = SESSION_RUN;
}

void session_free(struct session *s)
{
	buf_free(&s->out);
}

/* ------------------------------------------------------------------ output --- */

void session_out(struct session *s, const char *data, size_t len)
{
	buf_append(&s->out, data, len);
}

void session_puts(struct session *s, const char *str)
{
	buf_puts(&s->out, str);
}

void session_printf(struct session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&s->out, fmt, ap);
	va_end(ap);
	buf_puts(&s->out, "\r\n");
}

void session_flush(struct session *s)
{
	if (s->out.len == 0)
		return;
	s->ops->send(s->ctx, s->out.data, s->out.len);
	if (s->out.alloc > OUT_SHRINK_AT)
		buf_free(&s->out);
	else
		buf_reset(&s->out);
}

void session_flush_if_big(struct session *s)
{
	if (s->out_flush_at && s->out.len >= s->out_flush_at && s->delay_ms == 0 &&
	    s->susp == SESSION_RUN)
		session_flush(s);
}

/* -------------------------------------------------------------- suspension --- */

void session_hold(struct session *s, unsigned ms)
{
	s->delay_ms += ms;
}

void session_close_after(struct session *s, const char *reason)
{
	if (!s->close_reason)
		s->close_reason = reason;
}

static const char *const susp_names[] = {"run", "wait", "commit", "tls", "closed"};

/* The one place the suspension changes; traced like the engines' own states. */
void session_suspend(struct session *s, enum session_susp why)
{
	if (s->susp != why)
		session_trace(s, "suspension", susp_names[s->susp], susp_names[why]);
	s->susp = why;
}

bool session_running(const struct session *s)
{
	return s->susp == SESSION_RUN;
}

static void do_close(struct session *s)
{
	session_flush(s);
	session_suspend(s, SESSION_CLOSED);
	s->ops->close(s->ctx, s->close_reason ? s->close_reason : "protocol");
}

void session_end_step(struct session *s)
{
	switch (s->susp) {
	case SESSION_CLOSED:
	case SESSION_WAIT:
		return;
	case SESSION_TLS:
		/* the go-ahead reply leaves in plaintext ahead of any TLS record */
		session_flush(s);
		s->ops->starttls(s->ctx);
		return;
	case SESSION_COMMIT:
		/* msg_commit was called already; replies so far may leave now */
		session_flush(s);
		return;
	case SESSION_RUN:
		break;
	}
	if (s->delay_ms > 0) {
		unsigned ms = s->delay_ms;
		s->delay_ms = 0;
		session_suspend(s, SESSION_WAIT);
		s->ops->wait(s->ctx, ms);
		return;
	}
	if (s->close_reason) {
		do_close(s);
		return;
	}
	session_flush(s);
}

bool session_resume(struct session *s)
{
	if (s->susp != SESSION_WAIT)
		return false;
	session_suspend(s, SESSION_RUN);
	if (s->close_reason)
		do_close(s);
	else
		session_flush(s);
	return true;
}

void session_hangup(struct session *s)
{
	session_suspend(s, SESSION_CLOSED);
}

size_t session_feed(struct session *s, void *engine, session_step_fn step, const char *data,
		    size_t len)
{
	size_t pos = 0;
	s->feed_end = data + len;
	while (pos < len && s->susp == SESSION_RUN && !s->close_reason) {
		s->feed_pos = data + pos;
		pos += step(engine, data + pos, len - pos);
		/* a step that held, closed or suspended ends here: nothing after it is read */
		if (s->susp != SESSION_RUN || s->delay_ms > 0 || s->close_reason)
			session_end_step(s);
		else
			session_flush_if_big(s);
	}
	s->feed_pos = NULL;
	s->feed_end = NULL;
	if (s->susp == SESSION_RUN)
		session_flush(s);
	return pos;
}

bool session_more_input(const struct session *s)
{
	return s->feed_pos && s->feed_pos < s->feed_end;
}

const char *session_pending(const struct session *s, size_t *len_r)
{
	*len_r = session_more_input(s) ? (size_t)(s->feed_end - s->feed_pos) : 0;
	return s->feed_pos;
}

/* ---------------------------------------------------------------- framing --- */

void session_framer_init(struct session_framer *f, size_t cap)
{
	memset(f, 0, sizeof(*f));
	buf_init(&f->line, cap);
}

void session_framer_reset(struct session_framer *f)
{
	buf_reset(&f->line);
	f->skipping = false;
	f->overflowed = false;
	f->consume_next = 0;
}

void session_framer_free(struct session_framer *f)
{
	buf_free(&f->line);
}

static void frame_complete(struct session_framer *f, struct session_line *line_r,
			   enum session_frame_result *res)
{
	/* after a line cut at the limit the CR is gone: not a bare LF */
	bool bare_lf = !f->overflowed;
	size_t l = f->line.len;
	if (l > 0 && f->line.data[l - 1] == '\r') {
		l--;
		bare_lf = false;
	}
	if (f->line.data)
		f->line.data[l] = '\0'; /* buf keeps a NUL after its data */
	line_r->p = f->line.data ? f->line.data : (char *)"";
	line_r->len = l;
	line_r->bare_lf = bare_lf;
	line_r->overflow = f->overflowed;
	f->line.len = 0; /* the bytes stay readable until the next call */
	f->overflowed = false;
	*res = FRAME_LINE;
}

size_t session_frame(struct session_framer *f, const char *data, size_t len, size_t limit,
		     enum session_frame_mode mode, struct session_line *line_r,
		     enum session_frame_result *res)
{
	if (f->consume_next) {
		buf_consume(&f->line, f->consume_next);
		f->consume_next = 0;
	}
	const char *lf = memchr(data, '\n', len);
	size_t take = lf ? (size_t)(lf - data) + 1 : len;
	size_t content = lf ? take - 1 : take;
	*res = FRAME_MORE;
	if (f->skipping) {
		if (!lf)
			return take;
		f->skipping = false;
		frame_complete(f, line_r, res);
		return take;
	}
	size_t room = limit > f->line.len ? limit - f->line.len : 0;
	switch (mode) {
	case FRAME_CUT:
		if (content > room) {
			/* a piece of the limit's size; a trailing CR waits for its LF */
			buf_append(&f->line, data, room);
			size_t out = f->line.len;
			if (out > 0 && f->line.data[out - 1] == '\r')
				out--;
			line_r->p = f->line.data;
			line_r->len = out;
			line_r->bare_lf = false;
			line_r->overflow = true;
			/* handed over; at the next call only what follows it (a CR) stays */
			f->consume_next = out;
			*res = FRAME_PIECE;
			f->overflowed = false;
			return room;
		}
		break;
	case FRAME_SKIP:
		if (content > room) {
			buf_append(&f->line, data, room);
			f->overflowed = true;
			if (!lf) {
				f->skipping = true;
				return take;
			}
			frame_complete(f, line_r, res);
			return take;
		}
		break;
	case FRAME_STOP:
		/* the limit counts the line without its CRLF: one CR may wait */
		if (f->line.len + content > limit + 1) {
			size_t r1 = limit + 1 > f->line.len ? limit + 1 - f->line.len : 0;
			buf_append(&f->line, data, r1 < content ? r1 : content);
			line_r->p = f->line.data ? f->line.data : (char *)"";
			line_r->len = f->line.len;
			line_r->bare_lf = false;
			line_r->overflow = true;
			f->line.len = 0;
			*res = FRAME_TOO_LONG;
			return take;
		}
		break;
	}
	buf_append(&f->line, data, content);
	if (!lf)
		return take;
	frame_complete(f, line_r, res);
	if (mode == FRAME_STOP && line_r->len > limit) {
		line_r->overflow = true;
		*res = FRAME_TOO_LONG;
	}
	return take;
}

/* ----------------------------------------------------------------- events --- */

void session_emit(struct session *s, struct mxb_event *ev)
{
	if (ev)
		s->ops->event(s->ctx, ev);
}

void session_offence(struct session *s, const char *kind, const char *detail, size_t len)
{
	session_emit(s, proto_offence_event(kind, detail, len));
}

void session_offence_once(struct session *s, unsigned bit, const char *kind,
			  const char *detail, size_t len)
{
	if (s->once & bit)
		return;
	s->once |= bit;
	session_offence(s, kind, detail, len);
}

void session_auth_event(struct session *s, const struct auth_ev *a)
{
	session_emit(s, proto_auth_event(a));
}

void session_auth_event_simple(struct session *s, const char *mech, const char *result)
{
	struct auth_ev a = {.mech = mech, .result = result};
	session_auth_event(s, &a);
}

void session_trace(struct session *s, const char *what, const char *old, const char *new_)
{
	if (!s->ops->trace)
		return;
	char line[160];
	snprintf(line, sizeof(line), "%s: %s %s -> %s", s->proto, what, old, new_);
	s->ops->trace(s->ctx, line);
}

/* ------------------------------------------------------------ credentials --- */

enum auth_verdict session_auth_check(struct session *s, struct auth_policy *policy,
				     const struct session_cred *c, struct sasl_cred *cred_r,
				     bool *taken_r)
{
	struct sasl_check check = {
		.proto = c->proto,
		.mech = c->mech,
		.src_ip = s->peer_ip,
		.authzid = c->authzid,
		.user = c->user,
		.pass = c->pass,
		.cram_challenge = c->cram_challenge,
		.cram_digest = c->cram_digest,
	};
	return sasl_check(policy, &check, cred_r, taken_r);
}

void session_cred_event(struct session *s, const struct session_cred *c, bool success,
			const char *result)
{
	struct auth_ev ev = {
		.mech = c->mech,
		.user = c->user ? c->user->p : NULL,
		.user_len = c->user ? c->user->len : 0,
		.pass = c->pass ? c->pass->p : NULL,
		.pass_len = c->pass ? c->pass->len : 0,
		.authzid = c->authzid ? c->authzid->p : NULL,
		.authzid_len = c->authzid ? c->authzid->len : 0,
		.success = success,
		.result = result,
	};
	session_auth_event(s, &ev);
}

/* ---------------------------------------------------------------- helpers --- */

int64_t session_now_us(struct session *s)
{
	if (s->ops->now_us)
		return s->ops->now_us(s->ctx);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Dovecot's auth-request-handler queues a failed request and flushes the queue from a
 * timer of AUTH_FAILURE_DELAY_CHECK_MSECS (500 ms), answering a request once ioloop_time
 * (whole seconds) - last_access >= auth_failure_delay.  What a lone client measures on
 * Debian's Dovecot 2.3.19 (30 sequential IMAP failures, bench/persona-timing.py): 1.507
 * to 2.045 s, 13 near 1.5 s, 10 near 2.0 s, the rest between; never under base - 0.5 s.
 * So: the time until the wall clock's second has advanced by base (due), answered on a
 * 500 ms timer whose phase is not the failure's (the first tick at or after due, at
 * most the tick a timer started at the failure would give), never before base - 500
 * ms, plus the auth round trip. */
#define DOVECOT_FAILURE_TICK_MS 500
#define DOVECOT_AUTH_RTT_MIN_MS 5
#define DOVECOT_AUTH_RTT_SPAN_MS 41

/* splitmix64's finaliser: variation from the clock, not a secret */
static uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

#define LOGIN_LATENCY_MIN_MS 20
#define LOGIN_LATENCY_SPAN1_MS 21
#define LOGIN_LATENCY_SPAN2_MS 26

void session_greet(struct session *s, bool login_latency)
{
	if (login_latency) {
		/* two uniform parts: a triangle-like spread around 42 ms, not a constant */
		uint64_t r = mix64((uint64_t)session_now_us(s) ^ 0xD1B54A32D192ED03ULL);
		session_hold(s, LOGIN_LATENCY_MIN_MS + (unsigned)(r % LOGIN_LATENCY_SPAN1_MS) +
					(unsigned)((r >> 32) % LOGIN_LATENCY_SPAN2_MS));
		session_end_step(s);
		return;
	}
	session_flush(s);
}

unsigned session_failure_delay(struct session *s, unsigned base_ms, bool dovecot_clock)
{
	if (!dovecot_clock || base_ms < 1000 || base_ms % 1000 != 0)
		return base_ms;
	int64_t now_us = session_now_us(s);
	unsigned into_second_ms = (unsigned)((now_us / 1000) % 1000);
	unsigned due_ms = base_ms - into_second_ms;
	unsigned tick_ms = (due_ms + DOVECOT_FAILURE_TICK_MS - 1) / DOVECOT_FAILURE_TICK_MS *
			   DOVECOT_FAILURE_TICK_MS;
	uint64_t r = mix64((uint64_t)now_us + 0x9E3779B97F4A7C15ULL);
	unsigned phase_ms = (unsigned)(r % DOVECOT_FAILURE_TICK_MS);
	unsigned ms = due_ms + phase_ms < tick_ms ? due_ms + phase_ms : tick_ms;
	if (ms < base_ms - DOVECOT_FAILURE_TICK_MS)
		ms = base_ms - DOVECOT_FAILURE_TICK_MS;
	return ms + DOVECOT_AUTH_RTT_MIN_MS + (unsigned)((r >> 32) % DOVECOT_AUTH_RTT_SPAN_MS);
}

void session_printable(char *dst, size_t dstlen, const char *src, size_t len)
{
	size_t o = 0;
	for (size_t i = 0; i < len && o + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)src[i];
		dst[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (dstlen)
		dst[o] = '\0';
}

bool session_b64_decode(const char *b64, size_t len, unsigned char *out, size_t cap,
			size_t *n_r)
{
	return sasl_b64_charset(b64, len) && sasl_b64_decode(b64, len, out, cap, n_r) == 0;
}
