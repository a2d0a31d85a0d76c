/*
 * log: daemon log lines to stderr (and syslog); see log.h.
 *
 * Lines are formatted into a bounded stack buffer and written with one write(2) so
 * concurrent writers (spool and event threads) never interleave inside a line.
 */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static bool log_syslog;
static int log_level = LOG_INFO;

void log_init(bool use_syslog, int min_level)
{
	log_syslog = use_syslog;
	log_level = min_level;
	if (use_syslog)
		openlog("mxbait", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

void log_close(void)
{
	if (log_syslog)
		closelog();
	log_syslog = false;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE:
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_msg(int level, const char *session, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char line[LOG_LINE_MAX];
	int pre = snprintf(line, sizeof(line), "mxbait[%ld]: ", (long)getpid());
	if (pre < 0)
		return;
	int n;
	if (session)
		n = snprintf(line + pre, sizeof(line) - (size_t)pre, "%s: session=%s ",
			     level_name(level), session);
	else
		n = snprintf(line + pre, sizeof(line) - (size_t)pre, "%s: ", level_name(level));
	if (n < 0)
		return;
	size_t head = (size_t)pre + (size_t)n;
	if (head > sizeof(line) - 2)
		head = sizeof(line) - 2;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	size_t len = head + (size_t)m;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	line[len] = '\0';
	if (log_syslog)
		syslog(level, "%s", line + pre);
	line[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, len);
	(void)w; /* nowhere left to report a failing stderr */
}

char *log_escape(char *out, size_t outlen, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;
	if (outlen == 0)
		return out;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char tmp[4];
		size_t tl;
		if (c == '\\' || c == '"') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			tl = 2;
		} else if (c >= 0x20 && c < 0x7f) {
			tmp[0] = (char)c;
			tl = 1;
		} else {
			tmp[0] = '\\';
			tmp[1] = 'x';
			tmp[2] = hex[c >> 4];
			tmp[3] = hex[c & 15];
			tl = 4;
		}
		if (o + tl + 4 > outlen) { /* room for "..." and NUL */
			if (outlen >= 4) {
				while (o + 4 > outlen)
					o--;
				memcpy(out + o, "...", 3);
				o += 3;
			}
			break;
		}
		memcpy(out + o, tmp, tl);
		o += tl;
	}
	out[o < outlen ? o : outlen - 1] = '\0';
	return out;
}
