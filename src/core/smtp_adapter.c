/*
 * smtp_adapter: struct proto_engine over smtp_session_* (see smtp_adapter.h).
 *
 * The session handle the host holds is a small wrapper: the SMTP engine keeps the
 * pointer to its host ops for the session's life, so the converted copy lives in the
 * wrapper beside the session.
 */
#include "core/smtp_adapter.h"

#include <stdlib.h>

#include "proto/smtp.h"

struct smtp_adapter {
	struct smtp_host_ops ops;
	struct smtp_session *s;
};

static void *ad_create(const void *cfg, const struct proto_peer *peer, bool tls_active,
		       const struct proto_host_ops *ops, void *ctx)
{
	struct smtp_adapter *a = calloc(1, sizeof(*a));
	if (!a)
		return NULL;
	a->ops.send = ops->send;
	a->ops.event = ops->event;
	a->ops.msg_open = ops->msg_open;
	a->ops.msg_write = ops->msg_write;
	a->ops.msg_commit = ops->msg_commit;
	a->ops.msg_abort = ops->msg_abort;
	a->ops.starttls = ops->starttls;
	a->ops.wait = ops->wait;
	a->ops.close = ops->close;
	a->ops.now_us = ops->now_us;
	struct smtp_peer sp = { .ip = peer->ip, .port = peer->port, .rdns = peer->rdns };
	a->s = smtp_session_new(cfg, &sp, tls_active, &a->ops, ctx);
	if (!a->s) {
		free(a);
		return NULL;
	}
	return a;
}

static void ad_start(void *session)
{
	struct smtp_adapter *a = session;
	smtp_session_start(a->s);
}

static size_t ad_feed(void *session, const char *data, size_t len)
{
	struct smtp_adapter *a = session;
	return smtp_session_feed(a->s, data, len);
}

static void ad_resume(void *session)
{
	struct smtp_adapter *a = session;
	smtp_session_resume(a->s);
}

static void ad_committed(void *session, const struct proto_commit_result *r)
{
	struct smtp_adapter *a = session;
	struct smtp_commit_result sr = {
		.ok = r->ok,
		.no_space = r->no_space,
		.queue_id = r->queue_id,
		.spool_name = r->spool_name,
		.sha256 = r->sha256,
		.size = r->size,
	};
	smtp_session_committed(a->s, &sr);
}

static void ad_tls_started(void *session, const char *version, const char *cipher, int bits)
{
	struct smtp_adapter *a = session;
	smtp_session_tls_started(a->s, version, cipher, bits);
}

static void ad_hangup(void *session, const char *reason)
{
	struct smtp_adapter *a = session;
	smtp_session_hangup(a->s, reason);
}

static const char *ad_state_name(const void *session)
{
	const struct smtp_adapter *a = session;
	return smtp_session_state_name(a->s);
}

static void ad_counters(const void *session, struct proto_counters *c_r)
{
	const struct smtp_adapter *a = session;
	struct smtp_counters k = { 0, 0, 0 };
	smtp_session_counters(a->s, &k);
	c_r->commands = k.commands;
	c_r->errors = k.errors;
	c_r->messages = k.messages;
}

static const char *ad_auth_user(const void *session)
{
	const struct smtp_adapter *a = session;
	return smtp_session_auth_user(a->s);
}

static void ad_destroy(void *session)
{
	struct smtp_adapter *a = session;
	if (!a)
		return;
	smtp_session_free(&a->s);
	free(a);
}

const struct proto_engine smtp_proto_engine = {
	.name = "smtp",
	.create = ad_create,
	.start = ad_start,
	.feed = ad_feed,
	.resume = ad_resume,
	.committed = ad_committed,
	.tls_started = ad_tls_started,
	.hangup = ad_hangup,
	.state_name = ad_state_name,
	.counters = ad_counters,
	.auth_user = ad_auth_user,
	.destroy = ad_destroy,
};
