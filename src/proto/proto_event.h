/*
 * proto_event: the events every protocol engine emits in the same shape.
 *
 * The `auth` and `offence` events are part of the public contract (docs/events.md) and
 * SMTP, IMAP and POP3 emit them alike; building them in one place keeps the three
 * engines from drifting apart.  The builders return a new event (NULL when out of
 * memory) for the engine to hand to its host.
 */
#ifndef MXB_PROTO_PROTO_EVENT_H
#define MXB_PROTO_PROTO_EVENT_H

#include <stdbool.h>
#include <stddef.h>

struct mxb_event;

/* Longest offence detail kept (attacker bytes, escaped later). */
#define PROTO_DETAIL_MAX 200

/* One authentication attempt; user/pass/authzid may hold any bytes (lengths given). */
struct auth_ev {
	const char *mech;
	const char *user;     /* NULL: the exchange never got that far */
	size_t user_len;
	const char *pass;     /* NULL: not sent (or CRAM-MD5) */
	size_t pass_len;
	const char *authzid;  /* empty or NULL: none */
	size_t authzid_len;
	bool success;
	const char *result;   /* ok, fail, tempfail, aborted, malformed, ... */
};

struct mxb_event *proto_auth_event(const struct auth_ev *a);
/* kind: see docs/events.md; detail is cut to PROTO_DETAIL_MAX bytes. */
struct mxb_event *proto_offence_event(const char *kind, const char *detail, size_t len);

#endif
