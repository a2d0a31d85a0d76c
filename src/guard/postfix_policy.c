/*
 * postfix_policy: Postfix's policy delegation protocol (see postfix_policy.h).
 */
#include "guard/postfix_policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "guard/guard.h"
#include "store/event.h"
#include "util/netaddr.h"

#define CONNS_MAX 256
#define IDLE_S 300
#define PENDING_MAX 4096
#define CONFIRM_US (2 * 1000000LL)
#define KNOWN_SEEN_US (600 * 1000000LL) /* the second placement counts as configured */

/* ---- the server ---- */

struct pending {
	int64_t ts;
	struct netaddr ip;
	unsigned port;
	char instance[64];
	char recipient[512];
	char sender[512];
	const char *answer;  /* what we answered (static) */
	bool used;
};

struct pp_conn {
	struct postfix_policy *pp;
	struct bufferevent *bev;
	struct pp_parser parser;
	struct pp_conn *prev, *next;
};

struct postfix_policy {
	struct guard *g;
	const struct mxb_config *cfg;
	struct evconnlistener *lis[MXB_MAX_LISTEN];
	size_t n_lis;
	char *unix_paths[MXB_MAX_LISTEN];
	struct pp_conn *conns;
	size_t n_conns;
	struct pending *pending;   /* PENDING_MAX */
	int64_t known_seen_us;     /* last request with policy_context=known */
};

static void conn_free(struct pp_conn *c)
{
	struct postfix_policy *pp = c->pp;
	if (c->prev)
		c->prev->next = c->next;
	else
		pp->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pp->n_conns--;
	bufferevent_free(c->bev);
	free(c);
}

static int64_t now_us(void)
{
	return mxb_now_us();
}

static void resolve(struct postfix_policy *pp, struct pending *e, int known)
{
	struct guard_rcpt_obs o = {
		.origin = "postfix_policy", .recipient = e->recipient,
		.sender = e->sender[0] ? e->sender : NULL, .ip = e->ip, .port = e->port,
		.known = known, .answer = e->answer,
	};
	guard_rcpt(pp->g, &o);
	e->used = false;
}

static void handle(struct pp_conn *c, const struct pp_request *r)
{
	struct postfix_policy *pp = c->pp;
	const char *action = "DUNNO";
	struct netaddr ip;
	bool rcpt = !strcmp(r->protocol_state, "RCPT") && r->recipient[0];
	if (strcmp(r->request, "smtpd_access_policy") || netaddr_parse(r->client_address, &ip)) {
		/* not for us (or an unknown client address): no opinion */
	} else if (rcpt && !strcmp(r->policy_context, "known")) {
		pp->known_seen_us = now_us();
		for (size_t i = 0; i < PENDING_MAX; i++) {
			struct pending *e = &pp->pending[i];
			if (e->used && netaddr_equal(&e->ip, &ip) && !strcmp(e->instance, r->instance) &&
			    !strcmp(e->recipient, r->recipient)) {
				resolve(pp, e, 1);
				break;
			}
		}
	} else if (rcpt) {
		/* the answer now, the record once Postfix has judged the recipient */
		struct pending *slot = NULL, *oldest = NULL;
		for (size_t i = 0; i < PENDING_MAX && !slot; i++) {
			struct pending *e = &pp->pending[i];
			if (!e->used)
				slot = e;
			else if (!oldest || e->ts < oldest->ts)
				oldest = e;
		}
		if (!slot) {
			resolve(pp, oldest, -1);
			slot = oldest;
		}
		memset(slot, 0, sizeof(*slot));
		slot->used = true;
		slot->ts = now_us();
		slot->ip = ip;
		slot->port = (unsigned)strtoul(r->client_port, NULL, 10);
		if (slot->port > 65535)
			slot->port = 0;
		snprintf(slot->instance, sizeof(slot->instance), "%s", r->instance);
		snprintf(slot->recipient, sizeof(slot->recipient), "%s", r->recipient);
		snprintf(slot->sender, sizeof(slot->sender), "%s", r->sender);
		action = guard_rcpt_answer(pp->g, &ip, &slot->answer);
	}
	evbuffer_add_printf(bufferevent_get_output(c->bev), "action=%s\n\n", action);
}

bool postfix_policy_confirming(const struct postfix_policy *pp)
{
	return pp && pp->known_seen_us && now_us() - pp->known_seen_us < KNOWN_SEEN_US;
}

void postfix_policy_tick(struct postfix_policy *pp)
{
	int64_t now = now_us();
	bool two_placements = pp->known_seen_us && now - pp->known_seen_us < KNOWN_SEEN_US;
	for (size_t i = 0; i < PENDING_MAX; i++) {
		struct pending *e = &pp->pending[i];
		if (e->used && now - e->ts >= CONFIRM_US)
			resolve(pp, e, two_placements ? 0 : -1);
	}
}

static void readcb(struct bufferevent *bev, void *arg)
{
	struct pp_conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	for (;;) {
		size_t len = evbuffer_get_length(in);
		if (!len)
			return;
		struct evbuffer_iovec v;
		if (evbuffer_peek(in, -1, NULL, &v, 1) < 1)
			return;
		size_t used = 0;
		const char *why;
		enum pp_result r = postfix_policy_feed(&c->parser, v.iov_base, v.iov_len, &used, &why);
		evbuffer_drain(in, used);
		if (r == PP_ERROR) {
			log_msg(LOG_WARNING, NULL, "postfix policy: %s: connection closed", why);
			conn_free(c);
			return;
		}
		if (r == PP_REQUEST) {
			handle(c, &c->parser.req);
			memset(&c->parser.req, 0, sizeof(c->parser.req));
		}
	}
}

static void eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		conn_free(arg);
}

static void acceptcb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int sl,
		     void *arg)
{
	(void)l;
	(void)sa;
	(void)sl;
	struct postfix_policy *pp = arg;
	if (pp->n_conns >= CONNS_MAX) {
		evutil_closesocket(fd);
		return;
	}
	struct pp_conn *c = calloc(1, sizeof(*c));
	struct bufferevent *bev = bufferevent_socket_new(evconnlistener_get_base(l), fd,
							 BEV_OPT_CLOSE_ON_FREE);
	if (!c || !bev) {
		free(c);
		if (bev)
			bufferevent_free(bev);
		else
			evutil_closesocket(fd);
		return;
	}
	c->pp = pp;
	c->bev = bev;
	postfix_policy_parser_init(&c->parser);
	c->next = pp->conns;
	if (pp->conns)
		pp->conns->prev = c;
	pp->conns = c;
	pp->n_conns++;
	struct timeval idle = { IDLE_S, 0 };
	bufferevent_set_timeouts(bev, &idle, &idle);
	bufferevent_setwatermark(bev, EV_READ, 0, PP_REQUEST_MAX);
	bufferevent_setcb(bev, readcb, NULL, eventcb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

struct postfix_policy *postfix_policy_new(struct event_base *base, const struct mxb_config *cfg,
					  struct guard *g, char **err_r)
{
	struct postfix_policy *pp = calloc(1, sizeof(*pp));
	if (pp)
		pp->pending = calloc(PENDING_MAX, sizeof(*pp->pending));
	if (!pp || !pp->pending) {
		free(pp);
		*err_r = strdup("postfix policy: out of memory");
		return NULL;
	}
	pp->g = g;
	pp->cfg = cfg;
	for (size_t i = 0; i < cfg->n_postfix_policy_listen; i++) {
		const char *spec = cfg->postfix_policy_listen[i];
		struct sockaddr_storage ss;
		int sl = 0;
		memset(&ss, 0, sizeof(ss));
		if (!strncmp(spec, "unix:", 5)) {
			struct sockaddr_un *un = (struct sockaddr_un *)&ss;
			un->sun_family = AF_UNIX;
			snprintf(un->sun_path, sizeof(un->sun_path), "%s", spec + 5);
			sl = (int)sizeof(*un);
			unlink(spec + 5); /* a stale socket of an earlier run */
			pp->unix_paths[i] = strdup(spec + 5);
		} else if (listener_parse_addr(spec, &ss, &sl) != 0) {
			*err_r = strdup("postfix_policy_listen: bad address");
			postfix_policy_free(&pp);
			return NULL;
		}
		pp->lis[i] = evconnlistener_new_bind(base, acceptcb, pp,
						     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
						     LEV_OPT_CLOSE_ON_EXEC, 128,
						     (struct sockaddr *)&ss, sl);
		if (!pp->lis[i]) {
			char m[300];
			snprintf(m, sizeof(m), "cannot listen on %s (postfix policy): %s", spec,
				 strerror(errno));
			*err_r = strdup(m);
			postfix_policy_free(&pp);
			return NULL;
		}
		if (!pp->unix_paths[i]) {
			int one = 1; /* one small answer per request: no Nagle wait */
			setsockopt(evconnlistener_get_fd(pp->lis[i]), IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
		}
		/* Postfix's smtpd (user postfix) must reach a unix socket */
		if (pp->unix_paths[i])
			chmod(pp->unix_paths[i], 0666);
		pp->n_lis = i + 1;
		log_msg(LOG_INFO, NULL, "listening postfix-policy on %s", spec);
	}
	return pp;
}

void postfix_policy_free(struct postfix_policy **ppp)
{
	struct postfix_policy *pp = ppp ? *ppp : NULL;
	if (!pp)
		return;
	while (pp->conns)
		conn_free(pp->conns);
	for (size_t i = 0; i < MXB_MAX_LISTEN; i++) {
		if (pp->lis[i])
			evconnlistener_free(pp->lis[i]);
		if (pp->unix_paths[i]) {
			unlink(pp->unix_paths[i]);
			free(pp->unix_paths[i]);
		}
	}
	free(pp->pending);
	free(pp);
	*ppp = NULL;
}
