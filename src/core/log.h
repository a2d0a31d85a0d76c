/*
 * log: the daemon's own log lines (not events: those go to the event store).
 *
 * One line per message on stderr, "mxbait[pid]: LEVEL session=ID text key=value ...",
 * and to syslog(3) (facility mail) when enabled.  Attacker bytes never reach a log
 * raw: log_escape() renders them printable and cut to a bound, so a log line cannot
 * be forged or flooded by a client.
 */
#ifndef MXB_CORE_LOG_H
#define MXB_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

/* use_syslog: also send lines to syslog(3); min_level: LOG_ERR..LOG_DEBUG. */
void log_init(bool use_syslog, int min_level);
void log_close(void);

/* level is a syslog priority (LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG); session may
 * be NULL. */
void log_msg(int level, const char *session, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Render len bytes of s printable (\xNN for anything outside 0x21-0x7e except space,
 * backslash and quote escaped) into out, truncated to fit outlen (with "..." when cut).
 * Always NUL-terminates; returns out. */
char *log_escape(char *out, size_t outlen, const char *s, size_t len);

#endif
