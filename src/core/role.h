/*
 * role: what a listening address is for, and which protocol engine serves it.
 *
 * A role is a port's job: smtp (25), submission (587, STARTTLS), smtps (465, implicit
 * TLS), imap (143, STARTTLS), imaps (993, implicit TLS), pop3 (110, STLS) and pop3s
 * (995, implicit TLS).  Its name is the `proto` of every event of the connection
 * (docs/events.md).  The listener, the connection layer and serve share this one list.
 */
#ifndef MXB_CORE_ROLE_H
#define MXB_CORE_ROLE_H

#include <stdbool.h>

enum mxb_role {
	MXB_ROLE_SMTP,
	MXB_ROLE_SUBMISSION,
	MXB_ROLE_SMTPS,
	MXB_ROLE_IMAP,
	MXB_ROLE_IMAPS,
	MXB_ROLE_POP3,
	MXB_ROLE_POP3S,
	MXB_ROLE_COUNT,
};

/* The protocol family of a role (which engine and persona answers it). */
enum mxb_family { MXB_FAMILY_SMTP, MXB_FAMILY_IMAP, MXB_FAMILY_POP3 };

static inline const char *mxb_role_name(enum mxb_role r)
{
	switch (r) {
	case MXB_ROLE_SMTP: return "smtp";
	case MXB_ROLE_SUBMISSION: return "submission";
	case MXB_ROLE_SMTPS: return "smtps";
	case MXB_ROLE_IMAP: return "imap";
	case MXB_ROLE_IMAPS: return "imaps";
	case MXB_ROLE_POP3: return "pop3";
	case MXB_ROLE_POP3S: return "pop3s";
	case MXB_ROLE_COUNT: break;
	}
	return "smtp";
}

static inline enum mxb_family mxb_role_family(enum mxb_role r)
{
	switch (r) {
	case MXB_ROLE_IMAP:
	case MXB_ROLE_IMAPS:
		return MXB_FAMILY_IMAP;
	case MXB_ROLE_POP3:
	case MXB_ROLE_POP3S:
		return MXB_FAMILY_POP3;
	default:
		return MXB_FAMILY_SMTP;
	}
}

/* TLS from the first byte (no banner before the handshake). */
static inline bool mxb_role_implicit_tls(enum mxb_role r)
{
	return r == MXB_ROLE_SMTPS || r == MXB_ROLE_IMAPS || r == MXB_ROLE_POP3S;
}

#endif
