/*
 * test_pop3_fake: the recording host for POP3 engine tests (see the header).
 */
#include "test_pop3_fake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/event.h"

static void fk_send(void *ctx, const char *data, size_t len)
{
	struct pop3_fake *h = ctx;
	buf_append(&h->out, data, len);
}

static void fk_event(void *ctx, struct mxb_event *ev)
{
	struct pop3_fake *h = ctx;
	buf_puts(&h->events, ev->name);
	buf_putc(&h->events, '\t');
	buf_append(&h->events, ev->fields.data ? ev->fields.data : "", ev->fields.len);
	buf_putc(&h->events, '\n');
	h->n_events++;
	mxb_event_free(&ev);
}

static int fk_msg_open(void *ctx, char *q, size_t l)
{
	return -1; /* POP3 never captures */
}

static int fk_msg_write(void *ctx, const char *d, size_t l)
{
	return -1;
}

static void fk_nothing(void *ctx)
{
}

static void fk_starttls(void *ctx)
{
	struct pop3_fake *h = ctx;
	h->want_tls = true;
	h->n_starttls++;
}

static void fk_wait(void *ctx, unsigned ms)
{
	struct pop3_fake *h = ctx;
	h->want_wait = true;
	h->wait_total_ms += ms;
	if (h->n_waits < sizeof(h->waits) / sizeof(h->waits[0]))
		h->waits[h->n_waits++] = ms;
}

static void fk_close(void *ctx, const char *reason)
{
	struct pop3_fake *h = ctx;
	h->closed = true;
	snprintf(h->close_reason, sizeof(h->close_reason), "%s", reason);
}

const struct proto_host_ops pop3_fake_ops = {
	.send = fk_send,
	.event = fk_event,
	.msg_open = fk_msg_open,
	.msg_write = fk_msg_write,
	.msg_commit = fk_nothing,
	.msg_abort = fk_nothing,
	.starttls = fk_starttls,
	.wait = fk_wait,
	.close = fk_close,
	.now_us = NULL,
};

void pop3_fake_init(struct pop3_fake *h, const struct pop3_config *cfg, bool tls)
{
	memset(h, 0, sizeof(*h));
	buf_init(&h->out, 0);
	buf_init(&h->events, 0);
	struct proto_peer peer = {.ip = "192.0.2.9", .port = 40000};
	h->s = pop3_engine.create(cfg, &peer, tls, &pop3_fake_ops, h);
	if (h->s)
		pop3_engine.start(h->s);
}

void pop3_fake_free(struct pop3_fake *h)
{
	if (h->s)
		pop3_engine.destroy(h->s);
	h->s = NULL;
	buf_free(&h->out);
	buf_free(&h->events);
}

void pop3_fake_drive(struct pop3_fake *h, const char *data, size_t len)
{
	size_t pos = 0;
	for (int guard = 0; guard < 1000000 && !h->closed; guard++) {
		pos += pop3_engine.feed(h->s, data + pos, len - pos);
		if (h->closed)
			return;
		if (h->want_tls) {
			/* RFC 2595: what followed STLS is discarded, then the handshake. */
			h->want_tls = false;
			h->discarded += len - pos;
			pop3_engine.tls_started(h->s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
			return;
		}
		if (h->want_wait) {
			h->want_wait = false;
			pop3_engine.resume(h->s);
			continue;
		}
		if (pos >= len)
			return;
	}
}

void pop3_fake_drive_str(struct pop3_fake *h, const char *s)
{
	pop3_fake_drive(h, s, strlen(s));
}

char *pop3_fake_take(struct pop3_fake *h)
{
	size_t n;
	char *s = buf_steal(&h->out, &n);
	if (!s)
		s = calloc(1, 1);
	return s;
}

static bool line_has_all(const char *p, const char *eol, const char *const *fragments)
{
	for (size_t i = 0; fragments && fragments[i]; i++) {
		size_t fl = strlen(fragments[i]);
		bool found = false;
		for (const char *q = p; q + fl <= eol; q++)
			if (memcmp(q, fragments[i], fl) == 0) {
				found = true;
				break;
			}
		if (!found)
			return false;
	}
	return true;
}

static unsigned scan(const struct pop3_fake *h, const char *name, const char *const *fragments)
{
	const char *p = h->events.data;
	unsigned n = 0;
	size_t nlen = strlen(name);
	while (p && *p) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			break;
		if ((size_t)(eol - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '\t' &&
		    line_has_all(p, eol, fragments))
			n++;
		p = eol + 1;
	}
	return n;
}

bool pop3_fake_has_event(const struct pop3_fake *h, const char *name,
			 const char *const *fragments)
{
	return scan(h, name, fragments) > 0;
}

unsigned pop3_fake_count_events(const struct pop3_fake *h, const char *name)
{
	return scan(h, name, NULL);
}
