/*
 * listener: listening sockets and accept (see listener.h).
 */
#include "core/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "core/config.h"
#include "core/log.h"
#include "util/buf.h"

#define LISTEN_BACKLOG 511
#define EMFILE_PAUSE_MS 1000

struct listener {
	struct listener_set *set;
	struct evconnlistener *evl;
	enum mxb_role role;
	char addr[80];
};

struct listener_set {
	struct event_base *base;
	listener_accept_fn fn;
	void *arg;
	struct listener *l;
	size_t n;
	bool paused;
	struct event *resume_ev;
};

static const char *role_name(enum mxb_role r)
{
	return mxb_role_name(r);
}

int listener_parse_addr(const char *s, struct sockaddr_storage *ss, int *len_r)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *port_s;
	memset(ss, 0, sizeof(*ss));
	bool v6 = s[0] == '[';
	if (v6) {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		port_s = close + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
		port_s = colon + 1;
	}
	char *end;
	long port = strtol(port_s, &end, 10);
	if (*end || port <= 0 || port > 65535)
		return -1;
	if (v6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -1;
		*len_r = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") == 0)
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -1;
		*len_r = sizeof(*a);
	}
	return 0;
}

static void addr_text(const struct sockaddr *sa, char *ip, size_t iplen, unsigned *port_r)
{
	ip[0] = '\0';
	*port_r = 0;
	/* copies, not casts: a struct sockaddr * promises no alignment */
	if (sa->sa_family == AF_INET) {
		struct sockaddr_in a;
		memcpy(&a, sa, sizeof(a));
		inet_ntop(AF_INET, &a.sin_addr, ip, (socklen_t)iplen);
		*port_r = ntohs(a.sin_port);
	} else if (sa->sa_family == AF_INET6) {
		struct sockaddr_in6 a;
		memcpy(&a, sa, sizeof(a));
		inet_ntop(AF_INET6, &a.sin6_addr, ip, (socklen_t)iplen);
		*port_r = ntohs(a.sin6_port);
	} else {
		snprintf(ip, iplen, "unknown");
	}
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
		      int salen, void *arg)
{
	(void)evl;
	(void)salen;
	struct listener *l = arg;
	char peer[INET6_ADDRSTRLEN + 1], local[INET6_ADDRSTRLEN + 1];
	unsigned pport, lport;
	addr_text(sa, peer, sizeof(peer), &pport);
	struct sockaddr_storage ls;
	socklen_t lslen = sizeof(ls);
	if (getsockname(fd, (struct sockaddr *)&ls, &lslen) == 0)
		addr_text((struct sockaddr *)&ls, local, sizeof(local), &lport);
	else {
		snprintf(local, sizeof(local), "unknown");
		lport = 0;
	}
	l->set->fn(l->set->arg, l->role, fd, peer, pport, local, lport);
}

static void set_pause(struct listener_set *ls, bool pause)
{
	if (ls->paused == pause)
		return;
	ls->paused = pause;
	for (size_t i = 0; i < ls->n; i++) {
		if (pause)
			evconnlistener_disable(ls->l[i].evl);
		else
			evconnlistener_enable(ls->l[i].evl);
	}
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct listener_set *ls = arg;
	if (ls->paused)
		log_msg(LOG_INFO, NULL, "resuming accept");
	set_pause(ls, false);
}

void listener_set_resume(struct listener_set *ls)
{
	if (ls && ls->paused) {
		event_del(ls->resume_ev);
		resume_cb(-1, 0, ls);
	}
}

static void error_cb(struct evconnlistener *evl, void *arg)
{
	(void)evl;
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Out of descriptors: the connection stays in the backlog; accepting again
		 * right away would spin the loop on the same error. */
		if (!l->set->paused)
			log_msg(LOG_WARNING, NULL, "accept on %s: %s; pausing accept", l->addr,
				strerror(err));
		set_pause(l->set, true);
		struct timeval tv = { EMFILE_PAUSE_MS / 1000, (EMFILE_PAUSE_MS % 1000) * 1000 };
		event_add(l->set->resume_ev, &tv);
		return;
	}
	log_msg(LOG_WARNING, NULL, "accept on %s: %s", l->addr, strerror(err));
}

static int open_one(struct listener_set *ls, enum mxb_role role, const char *addr,
		    char **err_r)
{
	struct sockaddr_storage ss;
	int salen;
	struct buf e;
	buf_init(&e, 0);
	if (listener_parse_addr(addr, &ss, &salen) != 0) {
		buf_printf(&e, "bad listen address %s (%s)", addr, role_name(role));
		*err_r = buf_steal(&e, NULL);
		return -1;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	if (fd < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    (ss.ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
	    bind(fd, (struct sockaddr *)&ss, (socklen_t)salen) != 0 ||
	    listen(fd, LISTEN_BACKLOG) != 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		if (ss.ss_family == AF_INET6 && (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) {
			/* A host without IPv6 (many containers): the caller decides whether
			 * the other addresses of the role are enough. */
			buf_printf(&e, "cannot listen on %s (%s): no such IPv6 address here",
				   addr, role_name(role));
			*err_r = buf_steal(&e, NULL);
			return -2;
		}
		buf_printf(&e, "cannot listen on %s (%s): %s", addr, role_name(role),
			   strerror(err));
		*err_r = buf_steal(&e, NULL);
		return -1;
	}
	struct listener *l = &ls->l[ls->n];
	l->set = ls;
	l->role = role;
	snprintf(l->addr, sizeof(l->addr), "%s", addr);
	l->evl = evconnlistener_new(ls->base, accept_cb, l,
				    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (!l->evl) {
		close(fd);
		buf_printf(&e, "cannot watch %s (%s)", addr, role_name(role));
		*err_r = buf_steal(&e, NULL);
		return -1;
	}
	evconnlistener_set_error_cb(l->evl, error_cb);
	ls->n++;
	log_msg(LOG_INFO, NULL, "listening %s on %s", role_name(role), addr);
	return 0;
}

struct listener_set *listener_set_open(struct event_base *base, const struct mxb_config *cfg,
				       listener_accept_fn fn, void *arg, char **err_r)
{
	*err_r = NULL;
	struct listener_set *ls = calloc(1, sizeof(*ls));
	struct {
		enum mxb_role role;
		char *const *v;
		size_t n;
	} roles[] = {
		{ MXB_ROLE_SMTP, cfg->smtp_listen, cfg->n_smtp_listen },
		{ MXB_ROLE_SUBMISSION, cfg->submission_listen, cfg->n_submission_listen },
		{ MXB_ROLE_SMTPS, cfg->smtps_listen, cfg->n_smtps_listen },
		{ MXB_ROLE_IMAP, cfg->imap_listen, cfg->n_imap_listen },
		{ MXB_ROLE_IMAPS, cfg->imaps_listen, cfg->n_imaps_listen },
		{ MXB_ROLE_POP3, cfg->pop3_listen, cfg->n_pop3_listen },
		{ MXB_ROLE_POP3S, cfg->pop3s_listen, cfg->n_pop3s_listen },
	};
	size_t n_roles = sizeof(roles) / sizeof(roles[0]);
	size_t total = 0;
	for (size_t r = 0; r < n_roles; r++)
		total += roles[r].n;
	if (!ls || !(ls->l = calloc(total ? total : 1, sizeof(*ls->l))) ||
	    !(ls->resume_ev = evtimer_new(base, resume_cb, ls))) {
		if (ls)
			free(ls->l);
		free(ls);
		*err_r = strdup("out of memory");
		return NULL;
	}
	ls->base = base;
	ls->fn = fn;
	ls->arg = arg;
	for (size_t r = 0; r < n_roles; r++) {
		size_t ok = 0;
		char *soft = NULL;
		for (size_t i = 0; i < roles[r].n; i++) {
			int rc = open_one(ls, roles[r].role, roles[r].v[i], err_r);
			if (rc == 0) {
				ok++;
				continue;
			}
			if (rc == -2 && !soft) {
				soft = *err_r;
				*err_r = NULL;
				continue;
			}
			if (rc == -2) {
				free(*err_r);
				*err_r = NULL;
				continue;
			}
			free(soft);
			listener_set_free(&ls);
			return NULL;
		}
		if (soft && ok == 0) { /* IPv6 only, and no IPv6: that is an error */
			*err_r = soft;
			listener_set_free(&ls);
			return NULL;
		}
		if (soft) {
			log_msg(LOG_WARNING, NULL, "%s; serving %s on its other addresses", soft,
				role_name(roles[r].role));
			free(soft);
		}
	}
	return ls;
}

void listener_set_free(struct listener_set **lsp)
{
	struct listener_set *ls = *lsp;
	if (!ls)
		return;
	for (size_t i = 0; i < ls->n; i++)
		evconnlistener_free(ls->l[i].evl);
	if (ls->resume_ev)
		event_free(ls->resume_ev);
	free(ls->l);
	free(ls);
	*lsp = NULL;
}
