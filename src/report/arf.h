/*
 * arf: abuse reports as e-mail, rendered offline (no network, no clock but the one
 * given): ARF (RFC 5965) for a captured message, XARF v4 (`connection/login_attack`)
 * for a password-guessing client, wrapped in the ARF envelope with
 * `Feedback-Type: xarf` as the XARF e-mail transport says, and the digest of a leaked
 * recipient list for the domain's abuse/postmaster role address.
 *
 * The rendered text has no To: header (the recipient is resolved later, and is added
 * by the SMTP sink); everything else, Message-ID included, is fixed at rendering so
 * a report sent twice is recognisably the same report.  Lines end in CRLF.
 *
 * Redaction (RFC 6590): each victim address becomes redacted-HMAC@domain (HMAC-SHA256
 * under the sensor's secret, 16 hex digits: stable across reports, unreadable).  In the
 * attached message every occurrence of a victim address is replaced; when the message
 * has base64 or quoted-printable parts (which could hide an address) or an address
 * survives the replacement, only its redacted header block is attached
 * (text/rfc822-headers, which RFC 5965 allows).  The finished report is searched for
 * every victim address (case-insensitively) before it is returned: a report that
 * still contains one is refused, never sent.
 */
#ifndef MXB_REPORT_ARF_H
#define MXB_REPORT_ARF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

struct report_identity {
	const char *hostname;   /* Reporting-MTA, Message-ID domain */
	const char *from;       /* report_from */
	const char *org;        /* organisation name in XARF (hostname by default) */
	const uint8_t *secret;  /* redaction key */
	size_t secret_len;
};

struct arf_message {
	const char *queue_id;
	const char *src_ip;
	unsigned src_port;          /* 0: unknown */
	int64_t arrival_us;
	const char *mail_from;      /* envelope sender, may be "" */
	const char *auth_user;      /* login used (the cracked account), may be NULL */
	const char *const *rcpts;   /* victims: envelope and header recipients */
	size_t n_rcpts;
	const char *const *uris;    /* Reported-URI */
	size_t n_uris;
	const char *const *domains; /* Reported-Domain */
	size_t n_domains;
	const char *msg;            /* the captured message, bytes as stored */
	size_t msg_len;
	unsigned incidents;         /* >= 1 */
	bool fraud;                 /* phishing: Feedback-Type fraud */
	bool redact;
};

/* ARF report into out.  key: the outbox idempotency key (Message-ID and boundary).
 * Returns 0, or -1 with *err_r (e.g. a victim address could not be redacted). */
int arf_render(const struct report_identity *id, const struct arf_message *m, const char *key,
	       int64_t now_us, struct buf *out, char **err_r);

struct xarf_login {
	const char *src_ip;
	int64_t first_us, last_us;
	long attempts, logins, probes;
	const char *protocols;      /* e.g. "smtp submission imap" */
	const char *log;            /* evidence text (attempt lines), may be NULL */
	int confidence;             /* 0-100 */
};

/* XARF v4 JSON (connection/login_attack) into json; the e-mail around it into out. */
int xarf_render_login(const struct report_identity *id, const struct xarf_login *l,
		      const char *key, int64_t now_us, struct buf *json, struct buf *out);

/* Digest of leaked addresses of one domain (opt-in; to abuse@/postmaster@ of it). */
int digest_render(const struct report_identity *id, const char *domain,
		  const char *const *addrs, size_t n, const char *key, int64_t now_us,
		  struct buf *out);

/* RFC 6590 token of one address: redacted-<16 hex>@domain. */
void arf_redact_addr(const struct report_identity *id, const char *addr, char *out,
		     size_t outlen);
/* RFC 5322 date of a time. */
void arf_date(int64_t us, char *out, size_t outlen);

#endif
