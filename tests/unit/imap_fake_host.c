/*
 * imap_fake_host: the recording host for IMAP engine tests and fuzzers (see header).
 */
#include "imap_fake_host.h"

#include <stdio.h>
#include <string.h>

#include "store/event.h"
#include "event_contract.h"

static void fh_send(void *ctx, const char *data, size_t len)
{
	struct imap_fake *h = ctx;
	buf_append(&h->out, data, len);
}

static void fh_event(void *ctx, struct mxb_event *ev)
{
	struct imap_fake *h = ctx;
	buf_puts(&h->events, ev->name);
	buf_putc(&h->events, '\t');
	buf_append(&h->events, ev->fields.data ? ev->fields.data : "", ev->fields.len);
	buf_putc(&h->events, '\n');
	h->n_events++;
	mxb_event_free(&ev);
}

static int fh_msg_open(void *ctx, char *queue_id_r, size_t len)
{
	struct imap_fake *h = ctx;
	if (h->fail_open) {
		h->fail_open = false;
		return -1;
	}
	snprintf(h->qid, sizeof(h->qid), "3AC1B22B%03X", h->qid_counter++ & 0xfff);
	snprintf(queue_id_r, len, "%s", h->qid);
	buf_reset(&h->msg);
	h->msg_open = true;
	h->msg_opens++;
	return 0;
}

static int fh_msg_write(void *ctx, const char *data, size_t len)
{
	struct imap_fake *h = ctx;
	if (!h->msg_open)
		return -1;
	return buf_append(&h->msg, data, len);
}

static void fh_msg_commit(void *ctx)
{
	struct imap_fake *h = ctx;
	h->want_commit = true;
}

static void fh_msg_abort(void *ctx)
{
	struct imap_fake *h = ctx;
	h->msg_open = false;
	h->msg_aborts++;
	buf_reset(&h->msg);
}

static void fh_starttls(void *ctx)
{
	struct imap_fake *h = ctx;
	h->want_tls = true;
	h->n_starttls++;
}

static void fh_wait(void *ctx, unsigned ms)
{
	struct imap_fake *h = ctx;
	h->want_wait = true;
	if (h->n_waits < sizeof(h->waits) / sizeof(h->waits[0]))
		h->waits[h->n_waits++] = ms;
}

static void fh_close(void *ctx, const char *reason)
{
	struct imap_fake *h = ctx;
	h->closed = true;
	snprintf(h->close_reason, sizeof(h->close_reason), "%s", reason);
}

static int64_t fh_now(void *ctx)
{
	struct imap_fake *h = ctx;
	return h->now_us;
}

const struct proto_host_ops imap_fake_ops = {
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
};

void imap_fake_init(struct imap_fake *h)
{
	memset(h, 0, sizeof(*h));
	buf_init(&h->out, 0);
	buf_init(&h->events, 0);
	buf_init(&h->msg, 0);
	buf_init(&h->last_msg, 0);
	h->now_us = 1795762363000000LL; /* 2026-11-27 06:52:43 UTC */
}

void imap_fake_free(struct imap_fake *h)
{
	buf_free(&h->out);
	buf_free(&h->events);
	buf_free(&h->msg);
	buf_free(&h->last_msg);
}

static bool answer(struct imap_fake *h)
{
	if (h->want_wait) {
		h->want_wait = false;
		imap_session_resume(h->s);
		return true;
	}
	if (h->want_commit) {
		h->want_commit = false;
		struct proto_commit_result r = {0};
		char sha[65];
		memset(sha, 'a', 64);
		sha[64] = '\0';
		r.queue_id = h->qid;
		r.spool_name = "1795762363.M1P1.mail.example.test";
		r.sha256 = sha;
		r.size = h->msg.len;
		if (h->next_commit == IFAKE_COMMIT_OK) {
			r.ok = true;
			buf_reset(&h->last_msg);
			buf_append(&h->last_msg, h->msg.data ? h->msg.data : "", h->msg.len);
			h->commits++;
		} else {
			r.no_space = h->next_commit == IFAKE_COMMIT_NOSPACE;
		}
		h->next_commit = IFAKE_COMMIT_OK;
		h->msg_open = false;
		imap_session_committed(h->s, &r);
		return true;
	}
	return false;
}

void imap_fake_drive(struct imap_fake *h, const char *data, size_t len)
{
	size_t pos = 0;
	for (int guard = 0; guard < 1000000 && !h->closed; guard++) {
		size_t n = imap_session_feed(h->s, data + pos, len - pos);
		pos += n;
		if (h->closed)
			return;
		if (h->want_tls) {
			/* RFC 3501 6.2.1: bytes after STARTTLS are discarded, then the
			 * handshake. */
			h->want_tls = false;
			h->discarded += len - pos;
			imap_session_tls_started(h->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
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

bool imap_fake_has_event(const struct imap_fake *h, const char *name,
			 const char *const *fragments)
{
	const char *p = h->events.data;
	if (!p)
		return false;
	size_t nlen = strlen(name);
	while (p < h->events.data + h->events.len) {
		const char *eol = memchr(p, '\n', (size_t)(h->events.data + h->events.len - p));
		size_t llen = eol ? (size_t)(eol - p) : (size_t)(h->events.data + h->events.len - p);
		if (llen > nlen && memcmp(p, name, nlen) == 0 && p[nlen] == '\t') {
			bool all = true;
			for (const char *const *f = fragments; f && *f && all; f++) {
				size_t fl = strlen(*f);
				bool found = false;
				for (size_t i = nlen; i + fl <= llen && !found; i++)
					found = memcmp(p + i, *f, fl) == 0;
				all = found;
			}
			if (all)
				return true;
		}
		if (!eol)
			break;
		p = eol + 1;
	}
	return false;
}

/* ------------------------------------------------ the event contract check --- */

bool imap_fake_check_schema(const struct imap_fake *h, char *err_r, size_t errlen)
{
	return !h->events.data || event_contract_check(h->events.data, err_r, errlen);
}
