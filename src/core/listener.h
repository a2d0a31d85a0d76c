/*
 * listener: the listening sockets of every configured address and role.
 *
 * Binds each "addr:port" / "[v6]:port" of smtp_listen, submission_listen,
 * smtps_listen, imap_listen, imaps_listen, pop3_listen and pop3s_listen (IPv6 sockets with IPV6_V6ONLY, so [::]:25 and 0.0.0.0:25 can coexist;
 * on a host without IPv6 an IPv6 address is skipped with a warning as long as the role
 * has another address, so the loopback defaults work in IPv4-only containers),
 * and hands every accepted socket, non-blocking, with both addresses as text, to the
 * accept callback.  When the process runs out of file descriptors, accepting pauses
 * (the pending connections wait in the kernel's backlog) and resumes after a second
 * or as soon as listener_set_resume() is called because a connection closed, as
 * OpenSMTPD does.
 */
#ifndef MXB_CORE_LISTENER_H
#define MXB_CORE_LISTENER_H

#include <event2/util.h>

#include "core/role.h"

struct event_base;
struct mxb_config;
struct listener_set;

typedef void (*listener_accept_fn)(void *arg, enum mxb_role role, evutil_socket_t fd,
				   const char *peer_ip, unsigned peer_port,
				   const char *local_ip, unsigned local_port);

/* Bind and listen on everything configured; prints "mxbait: listening ROLE on ADDR"
 * to stderr per socket.  NULL with *err_r ("cannot listen on 127.0.0.1:25 (smtp):
 * Address already in use") on the first failure. */
struct listener_set *listener_set_open(struct event_base *base, const struct mxb_config *cfg,
				       listener_accept_fn fn, void *arg, char **err_r);
/* Resume accepting if paused for lack of file descriptors. */
void listener_set_resume(struct listener_set *ls);
void listener_set_free(struct listener_set **ls);

/* Parse "a.b.c.d:port", "[v6]:port" or "*:port" into ss (exposed for tests). */
struct sockaddr_storage;
int listener_parse_addr(const char *s, struct sockaddr_storage *ss, int *len_r);

#endif
