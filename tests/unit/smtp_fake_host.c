/*
 * smtp_fake_host: the recording host for engine tests and fuzzers (see the header).
 */
#include "smtp_fake_host.h"

#include <stdio.h>
#include <string.h>

#include "store/event.h"
#include "event_contract.h"

static void fh_send(void *ctx, const char *data, size_t len)
{
	struct fake_host *h = ctx;
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
	return 1795762363000000LL; /* 2026-11-27 06:52:43 UTC */
}

const struct smtp_host_ops fake_host_ops = {
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

void fake_host_init(struct fake_host *h)
{
	memset(h, 0, sizeof(*h));
	buf_init(&h->out, 0);
	buf_init(&h->events, 0);
	buf_init(&h->msg, 0);
	buf_init(&h->last_msg, 0);
	h->write_budget = -1;
}

void fake_host_free(struct fake_host *h)
{
	buf_free(&h->out);
	buf_free(&h->events);
	buf_free(&h->msg);
	buf_free(&h->last_msg);
}

/* Answer whatever the engine is waiting for.  Returns false when nothing is. */
static bool answer(struct fake_host *h)
{
	if (h->want_wait) {
		h->want_wait = false;
		smtp_session_resume(h->s);
		return true;
	}
	if (h->want_commit) {
		h->want_commit = false;
		struct smtp_commit_result r = {0};
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
		smtp_session_committed(h->s, &r);
		return true;
	}
	return false;
}

void fake_host_drive(struct fake_host *h, const char *data, size_t len)
{
	size_t pos = 0;
	for (int guard = 0; guard < 1000000 && !h->closed; guard++) {
		size_t n = smtp_session_feed(h->s, data + pos, len - pos);
		pos += n;
		if (h->closed)
			return;
		if (h->want_tls) {
			/* RFC 3207: bytes after STARTTLS are discarded, then the handshake. */
			h->want_tls = false;
			smtp_session_tls_started(h->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
			return;
		}
		bool answered = false;
		while (!h->closed && answer(h))
			answered = true;
		if (h->closed)
			return;
		if (pos >= len && !answered)
			return;
		if (pos >= len && answered)
			continue; /* replies after a resume need no more input */
	}
}

bool fake_host_has_event(const struct fake_host *h, const char *name,
			 const char *const *fragments)
{
	const char *p = h->events.data;
	if (!p)
		return false;
	size_t nlen = strlen(name);
	while (*p) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			break;
		if ((size_t)(eol - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '\t') {
			bool all = true;
			for (size_t i = 0; fragments && fragments[i]; i++) {
				size_t fl = strlen(fragments[i]);
				bool found = false;
				for (const char *q = p; q + fl <= eol; q++)
					if (memcmp(q, fragments[i], fl) == 0) {
						found = true;
						break;
					}
				if (!found) {
					all = false;
					break;
				}
			}
			if (all)
				return true;
		}
		p = eol + 1;
	}
	return false;
}

bool fake_host_check_schema(const struct fake_host *h, char *err_r, size_t errlen)
{
	return !h->events.data || event_contract_check(h->events.data, err_r, errlen);
}
