/*
 * log: daemon log lines to stderr, the journal, syslog or a file; see log.h.
 *
 * Lines are formatted into a bounded stack buffer and written with one write(2) so
 * concurrent writers (spool and event threads) never interleave inside a line.  The
 * file target is one descriptor number for the daemon's life: log_reopen() opens the
 * new file and dup2()s it onto that number, which is atomic for a thread writing at
 * that moment (its line lands in the old or the new file, whole).
 */
#include "core/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048
#define LOG_PATH_MAX 4096

static bool log_syslog;
static int log_level = LOG_INFO;
static enum log_target target = LOG_TO_STDERR;
static int file_fd = -1;
static char file_path[LOG_PATH_MAX];
static int journal = -1; /* -1: not checked yet */
static pthread_mutex_t reopen_mu = PTHREAD_MUTEX_INITIALIZER;

static char *errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *errf(const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

/* systemd connects stderr to the journal and says so in JOURNAL_STREAM="DEV:INODE";
 * the variable alone is not enough (a child whose stderr was redirected inherits it). */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	if (!js || !*js)
		return false;
	unsigned long long dev, ino;
	char tail;
	if (sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
		return false;
	struct stat st;
	if (fstat(STDERR_FILENO, &st) != 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

bool log_to_journal(void)
{
	if (journal < 0)
		journal = stderr_is_journal();
	return target == LOG_TO_STDERR && journal;
}

void log_init(bool use_syslog, int min_level)
{
	log_syslog = use_syslog;
	log_level = min_level;
	journal = stderr_is_journal();
	if (use_syslog)
		openlog("mxbait", LOG_PID | LOG_NDELAY, LOG_MAIL);
}

static int open_log_file(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
}

int log_open(const char *spec, char **err_r)
{
	*err_r = NULL;
	if (!spec || !*spec || !strcmp(spec, "stderr")) {
		if (target == LOG_TO_SYSLOG && !log_syslog)
			closelog();
		target = LOG_TO_STDERR;
		return 0;
	}
	if (!strcmp(spec, "syslog")) {
		if (target != LOG_TO_SYSLOG && !log_syslog)
			openlog("mxbait", LOG_PID | LOG_NDELAY, LOG_MAIL);
		target = LOG_TO_SYSLOG;
		return 0;
	}
	if (spec[0] != '/' || strlen(spec) >= sizeof(file_path)) {
		*err_r = errf("log: %s: expected stderr, syslog or an absolute file name", spec);
		return -1;
	}
	int fd = open_log_file(spec);
	if (fd < 0) {
		*err_r = errf("log: cannot open %s: %s", spec, strerror(errno));
		return -1;
	}
	pthread_mutex_lock(&reopen_mu);
	if (file_fd >= 0) {
		/* keep the number other threads may be writing to */
		if (dup2(fd, file_fd) < 0) {
			pthread_mutex_unlock(&reopen_mu);
			*err_r = errf("log: dup2: %s", strerror(errno));
			close(fd);
			return -1;
		}
		close(fd);
	} else {
		file_fd = fd;
	}
	snprintf(file_path, sizeof(file_path), "%s", spec);
	if (target == LOG_TO_SYSLOG && !log_syslog)
		closelog();
	target = LOG_TO_FILE;
	pthread_mutex_unlock(&reopen_mu);
	return 0;
}

int log_reopen(char **err_r)
{
	*err_r = NULL;
	if (target != LOG_TO_FILE)
		return 0;
	char path[LOG_PATH_MAX];
	pthread_mutex_lock(&reopen_mu);
	snprintf(path, sizeof(path), "%s", file_path);
	pthread_mutex_unlock(&reopen_mu);
	return log_open(path, err_r);
}

void log_close(void)
{
	if (log_syslog || target == LOG_TO_SYSLOG)
		closelog();
	log_syslog = false;
	if (file_fd >= 0)
		close(file_fd);
	file_fd = -1;
	target = LOG_TO_STDERR;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_rfc3339(int64_t ts_us, char *out, size_t outlen)
{
	time_t t = (time_t)(ts_us / 1000000);
	long us = (long)(ts_us % 1000000);
	if (us < 0) {
		us += 1000000;
		t--;
	}
	struct tm tm;
	if (outlen == 0)
		return;
	if (!localtime_r(&t, &tm)) {
		snprintf(out, outlen, "-");
		return;
	}
	long off = tm.tm_gmtoff / 60; /* minutes east of UTC */
	char sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%06ld%c%02ld:%02ld",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		 tm.tm_sec, us, sign, off / 60, off % 60);
}

void log_msg(int level, const char *session, const char *fmt, ...)
{
	if (level > log_level)
		return;
	char line[LOG_LINE_MAX];
	int pre;
	bool to_journal = log_to_journal();
	if (to_journal) {
		pre = snprintf(line, sizeof(line), "<%d>", level & 7);
	} else {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		char ts[48];
		log_rfc3339((int64_t)tv.tv_sec * 1000000 + tv.tv_usec, ts, sizeof(ts));
		pre = snprintf(line, sizeof(line), "%s mxbait[%ld]: ", ts, (long)getpid());
	}
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
	if (target == LOG_TO_SYSLOG || log_syslog)
		syslog(level, "%s", line + pre);
	if (target == LOG_TO_SYSLOG)
		return;
	line[len++] = '\n';
	int fd = target == LOG_TO_FILE && file_fd >= 0 ? file_fd : STDERR_FILENO;
	ssize_t w = write(fd, line, len);
	(void)w; /* nowhere left to report a failing log */
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

bool log_ratelimit(struct log_ratelimit *rl, int64_t now_ms, unsigned interval_ms,
		   unsigned long *suppressed_r)
{
	if (rl->started && now_ms - rl->last_ms < (int64_t)interval_ms) {
		rl->suppressed++;
		return false;
	}
	*suppressed_r = rl->suppressed;
	rl->suppressed = 0;
	rl->last_ms = now_ms;
	rl->started = true;
	return true;
}
