/*
 * userip: Dovecot's mail_max_userip_connections, the logged-in sessions one user has
 * from one address per service (imap, pop3), counted across every session of the
 * process.
 *
 * userip_acquire() counts a session in and says whether it was under the limit (0: no
 * limit, always admitted); a refused one is not counted.  Every admitted session calls
 * userip_release() once when it ends.  Entries live only while their count is above
 * zero, so memory is bounded by the logged-in sessions.  Thread-safe (one mutex).
 */
#ifndef MXB_PROTO_USERIP_H
#define MXB_PROTO_USERIP_H

#include <stdbool.h>
#include <stddef.h>

bool userip_acquire(const char *service, const char *user, const char *ip, unsigned limit);
void userip_release(const char *service, const char *user, const char *ip);
/* Sessions counted for this key now (tests). */
unsigned userip_count(const char *service, const char *user, const char *ip);

#endif
