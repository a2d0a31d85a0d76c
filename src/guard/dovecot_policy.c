/*
 * dovecot_policy: Dovecot's auth-policy protocol over evhttp (see dovecot_policy.h).
 */
#include "guard/dovecot_policy.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "core/config.h"
#include "core/listener.h"
#include "core/log.h"
#include "guard/guard.h"
#include "util/netaddr.h"

#define HEADERS_MAX 8192
#define REQUEST_TIMEOUT_S 10

struct dovecot_policy {
	struct evhttp *http;
	struct guard *g;
	const struct mxb_config *cfg;
	unsigned long long requests, refused;
};

static void reply(struct evhttp_request *req, int code, int status, const char *msg)
{
	struct evbuffer *b = evbuffer_new();
	if (!b) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	if (msg)
		evbuffer_add_printf(b, "{\"status\":%d,\"msg\":\"%s\"}", status, msg);
	else
		evbuffer_add_printf(b, "{\"status\":%d}", status);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
			  "application/json");
	evhttp_send_reply(req, code, code == 200 ? "OK" : "Bad Request", b);
	evbuffer_free(b);
}

static bool key_ok(struct dovecot_policy *dp, struct evhttp_request *req)
{
	const char *k = evhttp_find_header(evhttp_request_get_input_headers(req), "X-API-Key");
	const char *want = dp->cfg->dovecot_policy_api_key;
	size_t wl = strlen(want);
	if (!k || strlen(k) != wl)
		return false;
	return CRYPTO_memcmp(k, want, wl) == 0;
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct dovecot_policy *dp = arg;
	dp->requests++;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		dp->refused++;
		evhttp_send_error(req, 405, "Method Not Allowed");
		return;
	}
	if (!key_ok(dp, req)) {
		dp->refused++;
		evhttp_send_error(req, 401, "Unauthorized");
		return;
	}
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *body = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	struct dp_request r;
	const char *why;
	if (dovecot_policy_parse(query, body ? body : "", body ? len : 0, &r, &why) != 0) {
		dp->refused++;
		log_msg(LOG_WARNING, NULL, "dovecot policy: request not used: %s", why);
		reply(req, 400, 0, NULL);
		return;
	}
	struct guard_auth_obs o = {
		.origin = "dovecot_policy",
		.stage = r.command,
		.service = r.protocol[0] ? r.protocol : NULL,
		.username = r.has_login && r.login[0] ? r.login : NULL,
		.pwhash = r.has_pwhash && r.pwhash[0] ? r.pwhash : NULL,
		.success = !strcmp(r.command, "report") ? r.success : -1,
		.user_known = !strcmp(r.command, "report") && r.success > 0 ? 1 : -1,
	};
	if (netaddr_parse(r.remote, &o.ip) != 0) {
		dp->refused++;
		log_msg(LOG_WARNING, NULL, "dovecot policy: remote is not an address");
		reply(req, 400, 0, NULL);
		return;
	}
	unsigned delay = 0;
	enum guard_answer a = guard_auth(dp->g, &o, &delay);
	if (!strcmp(r.command, "report"))
		reply(req, 200, 0, NULL); /* Dovecot does not act on a report's answer */
	else if (a == GUARD_REJECT)
		reply(req, 200, -1, "Authentication failed.");
	else if (a == GUARD_DELAY)
		reply(req, 200, (int)delay, NULL);
	else
		reply(req, 200, 0, NULL);
}

struct dovecot_policy *dovecot_policy_new(struct event_base *base, const struct mxb_config *cfg,
					  struct guard *g, char **err_r)
{
	struct dovecot_policy *dp = calloc(1, sizeof(*dp));
	if (!dp || !(dp->http = evhttp_new(base))) {
		free(dp);
		*err_r = strdup("dovecot policy: out of memory");
		return NULL;
	}
	dp->g = g;
	dp->cfg = cfg;
	evhttp_set_max_body_size(dp->http, DP_BODY_MAX);
	evhttp_set_max_headers_size(dp->http, HEADERS_MAX);
	evhttp_set_timeout(dp->http, REQUEST_TIMEOUT_S);
	evhttp_set_allowed_methods(dp->http, EVHTTP_REQ_POST | EVHTTP_REQ_GET);
	evhttp_set_gencb(dp->http, on_request, dp);
	for (size_t i = 0; i < cfg->n_dovecot_policy_listen; i++) {
		struct sockaddr_storage ss;
		int sl;
		if (listener_parse_addr(cfg->dovecot_policy_listen[i], &ss, &sl) != 0) {
			*err_r = strdup("dovecot_policy_listen: bad address");
			dovecot_policy_free(&dp);
			return NULL;
		}
		evutil_socket_t fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		int one = 1;
		if (fd >= 0) {
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			/* answers are small: no Nagle wait for the client's delayed ACK
			 * (accepted sockets inherit it) */
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (ss.ss_family == AF_INET6)
				setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		}
		if (fd < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)sl) != 0 ||
		    listen(fd, 128) != 0 || !evhttp_accept_socket_with_handle(dp->http, fd)) {
			char m[300];
			snprintf(m, sizeof(m), "cannot listen on %s (dovecot policy): %s",
				 cfg->dovecot_policy_listen[i], strerror(errno));
			if (fd >= 0)
				close(fd);
			*err_r = strdup(m);
			dovecot_policy_free(&dp);
			return NULL;
		}
		log_msg(LOG_INFO, NULL, "listening dovecot-policy on %s",
			cfg->dovecot_policy_listen[i]);
	}
	return dp;
}

void dovecot_policy_free(struct dovecot_policy **dpp)
{
	struct dovecot_policy *dp = dpp ? *dpp : NULL;
	if (!dp)
		return;
	if (dp->http)
		evhttp_free(dp->http);
	free(dp);
	*dpp = NULL;
}
