/*
 * log: the daemon's own log lines (not events: those go to the event store).
 *
 * One line per message, written with one write(2) so that threads never interleave
 * inside a line.  Where the lines go (the `log` key of mxbait.conf):
 *   stderr (default)  "2025-05-20T10:11:12.123456+02:00 mxbait[PID]: LEVEL: text";
 *                     when stderr is the systemd journal (JOURNAL_STREAM names it),
 *                     "<N>LEVEL: text" instead: the journal stamps time and pid, and
 *                     reads the sd-daemon priority prefix <N>;
 *   syslog            syslog(3), facility mail, ident mxbait, with the pid;
 *   /absolute/path    appended to that file (mode 0600), in the stderr format, and
 *                     reopened by log_reopen() (SIGHUP, after logrotate moved it).
 * LEVEL is error, warning, notice, info or debug.  A session's lines carry
 * "session=ID " after the level.  Attacker bytes never reach a log raw: log_escape()
 * renders them printable and cut to a bound, so a line cannot be forged or flooded.
 */
#ifndef MXB_CORE_LOG_H
#define MXB_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

enum log_target { LOG_TO_STDERR, LOG_TO_SYSLOG, LOG_TO_FILE };

/* use_syslog: also send lines to syslog(3); min_level: LOG_ERR..LOG_DEBUG.  Lines go
 * to stderr (journal-aware) until log_open() says otherwise. */
void log_init(bool use_syslog, int min_level);
/* Where lines go from now on, from the `log` key: "stderr", "syslog" or an absolute
 * file name.  0, or -1 with *err_r (malloc'd) when the file cannot be opened (the
 * previous target stays). */
int log_open(const char *spec, char **err_r);
/* Reopen the log file (after rotation); a no-op for stderr and syslog.  0 or -1. */
int log_reopen(char **err_r);
void log_close(void);
/* True when lines go to the journal (stderr is the journal stream). */
bool log_to_journal(void);

/* level is a syslog priority (LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG);
 * session may be NULL. */
void log_msg(int level, const char *session, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Render len bytes of s printable (\xNN for anything outside 0x21-0x7e except space,
 * backslash and quote escaped) into out, truncated to fit outlen (with "..." when cut).
 * Always NUL-terminates; returns out. */
char *log_escape(char *out, size_t outlen, const char *s, size_t len);

/* RFC 3339 local time with microseconds and the UTC offset, e.g.
 * 2025-05-20T10:11:12.123456+02:00, of ts_us (microseconds since the epoch). */
void log_rfc3339(int64_t ts_us, char *out, size_t outlen);

/* At most one line per interval for a recurring condition (a full spool): returns true
 * when the caller should log now, with *suppressed_r the number of calls swallowed
 * since the last line.  now_ms: a monotonic clock.  Not thread-safe (event loop). */
struct log_ratelimit {
	int64_t last_ms;
	unsigned long suppressed;
	bool started;
};
bool log_ratelimit(struct log_ratelimit *rl, int64_t now_ms, unsigned interval_ms,
		   unsigned long *suppressed_r);

#endif
