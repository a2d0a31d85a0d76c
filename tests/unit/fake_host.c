/*
 * fake_host: the one recording host of the protocol engines (see the header).
 */
#include "fake_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event_contract.h"
#include "store/event.h"

static void fh_send(void *ctx, const char *data, size_t len)
{
	struct fake_host *h = ctx;
	h->sends++;
	buf_append(&h->out, data, len);
}

static void fh_event(void *ctx, struct mxb_event *ev)
{
	struct fake_host *h = ctx;
	buf_puts(&h->events, ev->name);
	buf_putc(&h->events, '\t');
	buf_append(&h->events, ev->fields.data ? ev->fields.data : "", ev->fields.len);
	buf_putc(&h->events, '\n');
	h->n_events++;
	mxb_event_free(&ev);
}

void fake_host_qid(unsigned n, char *out, size_t outlen)
{
	snprintf(out, outlen, "2DC1A11A%03X", n & 0xfff);
}

static int fh_msg_open(void *ctx, char *queue_id_r, size_t len)
{
	struct fake_host *h = ctx;
	if (h->fail_open) {
		h->fail_open = false;
		return -1;
	}
	fake_host_qid(h->qid_counter++, h->qid, sizeof(h->qid));
	snprintf(queue_id_r, len, "%s", h->qid);
	buf_reset(&h->msg);
	h->msg_open = true;
	h->msg_opens++;
	return 0;
}

static int fh_msg_write(void *ctx, const char *data, size_t len)
{
	struct fake_host *h = ctx;
	if (!h->msg_open)
		return -1;
	if (h->write_budget >= 0) {
		if ((int64_t)len > h->write_budget)
			return -1;
		h->write_budget -= (int64_t)len;
	}
	return buf_append(&h->msg, data, len);
}

static void fh_msg_commit(void *ctx)
{
	struct fake_host *h = ctx;
	h->want_commit = true;
}

static void fh_msg_abort(void *ctx)
{
	struct fake_host *h = ctx;
	h->msg_open = false;
	h->msg_aborts++;
	buf_reset(&h->msg);
}

static void fh_starttls(void *ctx)
{
	struct fake_host *h = ctx;
	h->want_tls = true;
	h->n_starttls++;
}

static void fh_wait(void *ctx, unsigned ms)
{
	struct fake_host *h = ctx;
	h->want_wait = true;
	h->wait_total_ms += ms;
	if (h->n_waits < sizeof(h->waits) / sizeof(h->waits[0]))
		h->waits[h->n_waits++] = ms;
}

static void fh_close(void *ctx, const char *reason)
{
	struct fake_host *h = ctx;
	h->closed = true;
	snprintf(h->close_reason, sizeof(h->close_reason), "%s", reason);
}

static int64_t fh_now(void *ctx)
{
	struct fake_host *h = ctx;
	return h->now_us;
}

static void fh_trace(void *ctx, const char *line)
{
	struct fake_host *h = ctx;
	buf_puts(&h->traces, line);
	buf_putc(&h->traces, '\n');
}

const struct proto_host_ops fake_host_ops = {
	.send = fh_send,
	.event = fh_event,
	.msg_open = fh_msg_open,
	.msg_write = fh_msg_write,
	.msg_commit = fh_msg_commit,
	.msg_abort = fh_msg_abort,
	.starttls = fh_starttls,
	.wait = fh_wait,
	.close = fh_close,
	.now_us = fh_now,
	.trace = fh_trace,
};

void fake_host_init(struct fake_host *h, const struct proto_engine *eng)
{
	memset(h, 0, sizeof(*h));
	h->eng = eng;
	buf_init(&h->out, 0);
	buf_init(&h->events, 0);
	buf_init(&h->traces, 1 << 20);
	buf_init(&h->msg, 0);
	buf_init(&h->last_msg, 0);
	h->write_budget = -1;
	h->now_us = FAKE_NOW_US;
}

bool fake_host_start(struct fake_host *h, const struct proto_engine *eng, const void *cfg,
		     const struct proto_peer *peer, bool implicit_tls)
{
	fake_host_init(h, eng);
	static const struct proto_peer dflt = {.ip = "192.0.2.9", .port = 40000};
	h->s = eng->create(cfg, peer ? peer : &dflt, implicit_tls, &fake_host_ops, h);
	if (!h->s)
		return false;
	h->owned = true;
	if (implicit_tls)
		eng->tls_started(h->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	eng->start(h->s);
	return true;
}

void fake_host_free(struct fake_host *h)
{
	if (h->owned && h->s)
		h->eng->destroy(h->s);
	h->s = NULL;
	h->owned = false;
	buf_free(&h->out);
	buf_free(&h->events);
	buf_free(&h->traces);
	buf_free(&h->msg);
	buf_free(&h->last_msg);
}

/* Answer whatever the engine is waiting for.  Returns false when nothing is. */
static bool answer(struct fake_host *h)
{
	if (h->want_wait) {
		h->want_wait = false;
		h->eng->resume(h->s);
		return true;
	}
	if (h->want_commit) {
		h->want_commit = false;
		struct proto_commit_result r = {0};
		char sha[65];
		memset(sha, 'a', 64);
		sha[64] = '\0';
		r.queue_id = h->qid;
		r.spool_name = "1795762363.M1P1.mail.example.com";
		r.sha256 = sha;
		r.size = h->msg.len;
		if (h->next_commit == FAKE_COMMIT_OK) {
			r.ok = true;
			buf_reset(&h->last_msg);
			buf_append(&h->last_msg, h->msg.data ? h->msg.data : "", h->msg.len);
			h->commits++;
		} else {
			r.no_space = h->next_commit == FAKE_COMMIT_NOSPACE;
		}
		h->next_commit = FAKE_COMMIT_OK;
		h->msg_open = false;
		h->eng->committed(h->s, &r);
		return true;
	}
	return false;
}

void fake_host_drive(struct fake_host *h, const char *data, size_t len)
{
	size_t pos = 0;
	for (int guard = 0; guard < 1000000 && !h->closed; guard++) {
		pos += h->eng->feed(h->s, data + pos, len - pos);
		if (h->closed)
			return;
		if (h->want_tls) {
			/* RFC 3207 / 3501 / 2595: what followed the command is discarded,
			 * then the handshake */
			h->want_tls = false;
			h->discarded += len - pos;
			h->eng->tls_started(h->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
			return;
		}
		bool answered = false;
		while (!h->closed && answer(h))
			answered = true;
		if (h->closed)
			return;
		if (pos >= len && !answered)
			return;
	}
}

void fake_host_drive_str(struct fake_host *h, const char *s)
{
	fake_host_drive(h, s, strlen(s));
}

char *fake_host_take(struct fake_host *h)
{
	size_t n;
	char *s = buf_steal(&h->out, &n);
	if (!s)
		s = calloc(1, 1);
	return s;
}

static bool line_has_all(const char *p, const char *eol, size_t skip,
			 const char *const *fragments)
{
	for (size_t i = 0; fragments && fragments[i]; i++) {
		size_t fl = strlen(fragments[i]);
		bool found = false;
		for (const char *q = p + skip; q + fl <= eol && !found; q++)
			found = memcmp(q, fragments[i], fl) == 0;
		if (!found)
			return false;
	}
	return true;
}

static unsigned scan(const struct fake_host *h, const char *name, const char *const *fragments,
		     bool first)
{
	const char *p = h->events.data, *end = p ? p + h->events.len : NULL;
	unsigned n = 0;
	size_t nlen = strlen(name);
	while (p && p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '\t' &&
		    line_has_all(p, eol, nlen, fragments)) {
			n++;
			if (first)
				return n;
		}
		p = eol + 1;
	}
	return n;
}

bool fake_host_has_event(const struct fake_host *h, const char *name,
			 const char *const *fragments)
{
	return scan(h, name, fragments, true) > 0;
}

unsigned fake_host_count_events(const struct fake_host *h, const char *name)
{
	return scan(h, name, NULL, false);
}

bool fake_host_check_schema(const struct fake_host *h, char *err_r, size_t errlen)
{
	return !h->events.data || event_contract_check(h->events.data, err_r, errlen);
}
