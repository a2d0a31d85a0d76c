/*
 * logparse: a hand-written tokenizer for the lines of Postfix (3.7+) and Dovecot
 * (2.3, 2.4) that the guard cares about, for what the live hooks do not see.
 *
 * Accepted framings: syslog ("Dec  6 22:10:01 host prog[pid]: msg"), RFC 3339
 * ("2026-12-06T22:10:01.123456+00:00 host prog[pid]: msg"), Dovecot's own log_path
 * ("Dec 06 22:10:01 imap-login: Info: msg") and journal entries (identifier and
 * message given apart).  Postfix programs may carry an instance or service name
 * (postfix-out/smtpd, postfix/submission/smtpd).
 *
 * What it extracts (struct log_obs): failed logins (Postfix "SASL ... authentication
 * failed", with sasl_username when Postfix 3.9+ logs it; Dovecot's login processes'
 * "auth failed, N attempts" in the 2.3 and 2.4 layouts; the auth process's
 * "unknown user" / "Password mismatch" lines), unknown recipients (Postfix's "User
 * unknown" RCPT rejects) and offences (postscreen PREGREET, DNSBL, HANGUP, COMMAND
 * PIPELINING, NON-SMTP COMMAND, BARE NEWLINE, DENYLISTED/BLACKLISTED, COMMAND
 * TIME/COUNT/LENGTH LIMIT; smtpd "too many errors", "improper command pipelining",
 * rate limits).
 *
 * Defensive by construction: no regular expressions, no backtracking, every scan
 * linear; the address is taken only from its fixed place (Postfix's "host[ip]" right
 * after the fixed prefix, the *last* ", rip=" of a Dovecot login line, the field
 * after the user in "driver(user,ip,<session>): result" read from the end of the
 * line) and must parse as an address (IPv4-mapped IPv6 becomes IPv4): attacker text
 * (user names, recipients, HELO) comes before those places or is cut out, so it
 * cannot move them.  Lines carrying a password (auth_verbose_passwords) are dropped.
 * Each event is counted once: a Dovecot login line's "N attempts" counts only the
 * attempts the auth process did not already log for that address, and Postfix's
 * "disconnect ... auth=0/N" only the failures it did not log as SASL warnings.
 */
#ifndef MXB_GUARD_LOGPARSE_H
#define MXB_GUARD_LOGPARSE_H

#include <stdbool.h>
#include <stddef.h>

#include "util/netaddr.h"

#define LOGPARSE_LINE_MAX 8192

enum log_kind {
	LOG_NONE = 0,
	LOG_AUTH_FAIL,      /* a failed login */
	LOG_RCPT_UNKNOWN,   /* a recipient rejected as unknown */
	LOG_OFFENCE,        /* another offence */
};

struct log_obs {
	enum log_kind kind;
	const char *origin;      /* postfix_log, dovecot_log */
	struct netaddr ip;
	unsigned port;           /* 0 when the line has none */
	char service[24];        /* smtp, imap, pop3, submission, ... ("" unknown) */
	char username[256];      /* "" when none */
	int user_known;          /* -1, 0 (unknown user), 1 (password mismatch) */
	unsigned attempts;       /* failures this line stands for (>= 1) */
	char recipient[512];
	const char *offence;     /* kind of LOG_OFFENCE (static) */
	char detail[201];
};

struct logparse;

struct logparse *logparse_new(void);
void logparse_free(struct logparse **lp);

/* One line (without its newline; any bytes).  Returns the kind (LOG_NONE for lines
 * that are not ours or not of interest); *out is filled otherwise. */
enum log_kind logparse_line(struct logparse *lp, const char *line, size_t len,
			    struct log_obs *out);
/* A journal entry: the SYSLOG_IDENTIFIER (e.g. "postfix/smtpd", "dovecot") and the
 * MESSAGE apart. */
enum log_kind logparse_entry(struct logparse *lp, const char *ident, size_t ilen,
			     const char *msg, size_t mlen, struct log_obs *out);

#endif
