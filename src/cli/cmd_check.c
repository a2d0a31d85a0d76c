/*
 * cmd_check: `mxbait check [-c FILE] [--no-ports]`: is this configuration ready to
 * serve?  In the spirit of `postfix check` and `nginx -t`.
 *
 * Checks, creating and changing nothing (files are opened read-only, ports are bound
 * for a moment and closed): the configuration (syntax, values, users); the TLS
 * certificate and key (readable, parse, match, not expired, naming the host name);
 * the data directory (a directory, usable, not open to other users, its secret and
 * database sound, whether a daemon is running on it); the password list, the log file
 * and the event log's directory; and that every listen address can be bound (unless
 * --no-ports; an address held by the mxbait running on this data directory is fine).
 *
 * Every finding is one line "FILE:LINE: KEY: why" (LINE 0: the key was not set in the
 * file, its default is meant); warnings say "warning:" after the key and do not change
 * the exit status.  Exit 0: ready; 1: at least one error; 2: usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/anlaunch.h"
#include "core/config.h"
#include "util/buf.h"

#define CERT_WARN_DAYS 30

struct chk {
	const char *file;
	const struct mxb_config *cfg;
	unsigned errors, warnings;
	pid_t running; /* a daemon holds the data directory's lock */
};

static void say(struct chk *c, bool error, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void say(struct chk *c, bool error, const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	unsigned line = key ? config_key_line(c->cfg, key) : 0;
	fprintf(error ? stderr : stdout, "%s:%u: %s%s%s%s\n", c->file, line, key ? key : "",
		key ? ": " : "", error ? "" : "warning: ", msg);
	if (error)
		c->errors++;
	else
		c->warnings++;
}

/* ---- TLS ---- */

static void check_cert_pair(struct chk *c, const char *cert_file, const char *key_file,
			    const char *ckey, const char *kkey)
{
	BIO *b = BIO_new_file(cert_file, "r");
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	int e = errno;
	BIO_free(b);
	if (!b) {
		say(c, true, ckey, "%s: cannot read: %s", cert_file, strerror(e));
		ERR_clear_error();
		return;
	}
	if (!cert) {
		say(c, true, ckey, "%s: no PEM certificate in it", cert_file);
		ERR_clear_error();
		return;
	}
	b = BIO_new_file(key_file, "r");
	EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	e = errno;
	BIO_free(b);
	if (!b)
		say(c, true, kkey, "%s: cannot read: %s", key_file, strerror(e));
	else if (!key)
		say(c, true, kkey, "%s: no PEM private key in it (or it is encrypted)", key_file);
	else if (X509_check_private_key(cert, key) != 1)
		say(c, true, kkey, "%s does not match the certificate %s", key_file, cert_file);
	ERR_clear_error();
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	int days = 0, secs = 0;
	if (na && ASN1_TIME_diff(&days, &secs, NULL, na)) {
		if (days < 0 || (days == 0 && secs < 0))
			say(c, true, ckey, "%s: expired %d days ago", cert_file, -days);
		else if (days < CERT_WARN_DAYS)
			say(c, false, ckey, "%s: expires in %d days", cert_file, days);
	}
	if (X509_check_host(cert, c->cfg->hostname, 0, 0, NULL) != 1)
		say(c, false, ckey, "%s does not name the host name %s (clients comparing the "
			"banner and the certificate will notice)", cert_file, c->cfg->hostname);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void check_tls(struct chk *c)
{
	const struct mxb_config *cfg = c->cfg;
	if (cfg->tls_cert_file && *cfg->tls_cert_file) {
		check_cert_pair(c, cfg->tls_cert_file, cfg->tls_key_file, "tls_cert_file",
				"tls_key_file");
		return;
	}
	struct buf cp, kp;
	buf_init(&cp, 0);
	buf_init(&kp, 0);
	buf_printf(&cp, "%s/tls/cert.pem", cfg->data_dir);
	buf_printf(&kp, "%s/tls/key.pem", cfg->data_dir);
	if (access(cp.data, F_OK) == 0)
		check_cert_pair(c, cp.data, kp.data, "tls_cert_file", "tls_key_file");
	/* else: the self-signed pair is made at the first start */
	buf_free(&cp);
	buf_free(&kp);
}

/* tls_ecdsa: the ECDSA pair, checked as the RSA one. */
static void check_tls_ecdsa(struct chk *c)
{
	const struct mxb_config *cfg = c->cfg;
	if (!cfg->tls_ecdsa)
		return;
	if (cfg->tls_eccert_file && *cfg->tls_eccert_file) {
		check_cert_pair(c, cfg->tls_eccert_file, cfg->tls_eckey_file, "tls_eccert_file",
				"tls_eckey_file");
		return;
	}
	struct buf cp, kp;
	buf_init(&cp, 0);
	buf_init(&kp, 0);
	buf_printf(&cp, "%s/tls/eccert.pem", cfg->data_dir);
	buf_printf(&kp, "%s/tls/eckey.pem", cfg->data_dir);
	if (access(cp.data, F_OK) == 0)
		check_cert_pair(c, cp.data, kp.data, "tls_eccert_file", "tls_eckey_file");
	buf_free(&cp);
	buf_free(&kp);
}

/* ---- data directory ---- */

static void check_mode(struct chk *c, const char *path, const struct stat *st)
{
	if (st->st_mode & 077)
		say(c, false, "data_dir", "%s has mode %04o: other users may read it (serve "
			"tightens it to %s at start)", path, (unsigned)(st->st_mode & 07777),
			S_ISDIR(st->st_mode) ? "0700" : "0600");
}

static void check_data_files(struct chk *c, const char *dir)
{
	static const char *const entries[] = { "secret", "mxbait.db", "events.jsonl",
		"analysis.db", "spool", "spool/new", "spool/cur", "spool/tmp", "tls",
		"tls/key.pem" };
	struct buf p;
	buf_init(&p, 0);
	for (size_t i = 0; i < sizeof(entries) / sizeof(entries[0]); i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", dir, entries[i]);
		struct stat st;
		if (lstat(p.data, &st) != 0)
			continue;
		if (S_ISLNK(st.st_mode)) {
			say(c, true, "data_dir", "%s is a symbolic link (mxbait does not follow "
				"links in its data directory)", p.data);
			continue;
		}
		check_mode(c, p.data, &st);
		if (!strcmp(entries[i], "secret") && S_ISREG(st.st_mode) && st.st_size != 32)
			say(c, true, "data_dir", "%s is %lld bytes, not 32 (move it away to make a "
				"new one: accounts and mailboxes will change)", p.data,
				(long long)st.st_size);
		if ((!strcmp(entries[i], "mxbait.db") || !strcmp(entries[i], "analysis.db")) &&
		    S_ISREG(st.st_mode) && st.st_size > 0) {
			char head[16];
			int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
			ssize_t n = fd >= 0 ? read(fd, head, sizeof(head)) : -1;
			int e = errno;
			if (fd >= 0)
				close(fd);
			if (n < 0)
				say(c, true, "data_dir", "%s: cannot read: %s", p.data, strerror(e));
			else if (n != 16 || memcmp(head, "SQLite format 3", 16) != 0)
				say(c, true, "data_dir", "%s is not an SQLite database", p.data);
		}
	}
	buf_free(&p);
}

/* Is a daemon running on this data directory?  Its lock says (opened read-only: the
 * file is never created here). */
static pid_t running_daemon(const char *dir)
{
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/mxbait.pid", dir);
	int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	buf_free(&p);
	if (fd < 0)
		return 0;
	pid_t pid = 0;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
		char b[32] = "";
		ssize_t n = read(fd, b, sizeof(b) - 1);
		b[n > 0 ? n : 0] = '\0';
		pid = (pid_t)atol(b);
		if (pid <= 0)
			pid = -1;
	}
	close(fd);
	return pid;
}

static void check_data_dir(struct chk *c)
{
	const char *dir = c->cfg->data_dir;
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno != ENOENT) {
			say(c, true, "data_dir", "%s: %s", dir, strerror(errno));
			return;
		}
		/* made at the first start: its parent must be there */
		char parent[4096];
		snprintf(parent, sizeof(parent), "%s", dir);
		char *slash = strrchr(parent, '/');
		if (slash == parent)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		else
			snprintf(parent, sizeof(parent), ".");
		struct stat ps;
		if (stat(parent, &ps) != 0 || !S_ISDIR(ps.st_mode))
			say(c, true, "data_dir", "%s does not exist, nor does its parent %s", dir,
			    parent);
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		say(c, true, "data_dir", "%s is not a directory", dir);
		return;
	}
	if (access(dir, R_OK | W_OK | X_OK) != 0) {
		say(c, true, "data_dir", "%s: %s (run check as root or as the service user)", dir,
		    strerror(errno));
		return;
	}
	check_mode(c, dir, &st);
	if (c->cfg->user && *c->cfg->user) {
		struct passwd *pw = getpwnam(c->cfg->user);
		if (pw && st.st_uid != pw->pw_uid && st.st_uid != 0)
			say(c, false, "data_dir", "%s belongs to uid %ld, not to user %s (serve, "
				"started as root, hands it to %s)", dir, (long)st.st_uid,
				c->cfg->user, c->cfg->user);
	}
	check_data_files(c, dir);
	c->running = running_daemon(dir);
}

/* ---- files named by other keys ---- */

static void check_parent_writable(struct chk *c, const char *key, const char *path,
				  bool error)
{
	char parent[4096];
	snprintf(parent, sizeof(parent), "%s", path);
	char *slash = strrchr(parent, '/');
	if (!slash)
		snprintf(parent, sizeof(parent), ".");
	else if (slash == parent)
		slash[1] = '\0';
	else
		*slash = '\0';
	struct stat st;
	if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
		say(c, error, key, "%s: the directory %s does not exist", path, parent);
	else if (access(path, F_OK) == 0 ? access(path, W_OK) != 0 : access(parent, W_OK) != 0)
		say(c, error, key, "%s: cannot be written: %s", path, strerror(errno));
}

static void check_files(struct chk *c)
{
	const struct mxb_config *cfg = c->cfg;
	if (cfg->password_list && *cfg->password_list && access(cfg->password_list, R_OK) != 0)
		say(c, false, "password_list", "%s: %s (the built-in 20 passwords are used; "
			"install nmap-common)", cfg->password_list, strerror(errno));
	if (cfg->username_list && *cfg->username_list && access(cfg->username_list, R_OK) != 0)
		say(c, false, "username_list", "%s: %s (the copy of the shipped list "
			"built into mxbait is used)", cfg->username_list, strerror(errno));
	if (cfg->log && cfg->log[0] == '/')
		check_parent_writable(c, "log", cfg->log, true);
	struct stat st;
	if (cfg->event_log && *cfg->event_log && stat(cfg->data_dir, &st) == 0) {
		const char *el = cfg->event_log;
		size_t dl = strlen(cfg->data_dir);
		bool inside = !strncmp(el, cfg->data_dir, dl) && el[dl] == '/';
		if (!inside)
			check_parent_writable(c, "event_log", el, true);
	}
}

/* ---- ports ---- */

static void check_listen(struct chk *c, const char *key, const char *spec)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	socklen_t len;
	char host[64];
	const char *colon;
	int family;
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		size_t hl = close ? (size_t)(close - spec - 1) : 0;
		if (!close || hl >= sizeof(host))
			return; /* the parser accepted nothing like this */
		memcpy(host, spec + 1, hl);
		host[hl] = '\0';
		colon = close + 1;
		family = AF_INET6;
	} else {
		colon = strrchr(spec, ':');
		size_t hl = colon ? (size_t)(colon - spec) : 0;
		if (!colon || hl >= sizeof(host))
			return;
		memcpy(host, spec, hl);
		host[hl] = '\0';
		family = AF_INET;
	}
	unsigned port = (unsigned)atoi(colon + 1);
	if (family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return;
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		if (!strcmp(host, "*"))
			a->sin_addr.s_addr = htonl(INADDR_ANY);
		else if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return;
		len = sizeof(*a);
	}
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		say(c, false, key, "%s: %s (serve skips what this system cannot do)", spec,
		    strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) != 0) {
		int e = errno;
		if (e == EADDRINUSE && c->running)
			; /* ours: the daemon of this data directory listens there */
		else if (e == EADDRINUSE)
			say(c, true, key, "%s: address already in use (another server listens "
				"there)", spec);
		else if (e == EACCES)
			say(c, true, key, "%s: port %u needs root or CAP_NET_BIND_SERVICE (the "
				"systemd unit grants it)", spec, port);
		else if (e == EADDRNOTAVAIL)
			say(c, true, key, "%s: no such address on this host", spec);
		else if (e == EAFNOSUPPORT)
			say(c, false, key, "%s: %s", spec, strerror(e));
		else
			say(c, true, key, "%s: %s", spec, strerror(e));
	}
	close(fd);
}

static void check_ports(struct chk *c)
{
	const struct mxb_config *cfg = c->cfg;
	const struct { const char *key; char *const *v; size_t n; } roles[] = {
		{ "smtp_listen", cfg->smtp_listen, cfg->n_smtp_listen },
		{ "submission_listen", cfg->submission_listen, cfg->n_submission_listen },
		{ "smtps_listen", cfg->smtps_listen, cfg->n_smtps_listen },
		{ "imap_listen", cfg->imap_listen, cfg->n_imap_listen },
		{ "imaps_listen", cfg->imaps_listen, cfg->n_imaps_listen },
		{ "pop3_listen", cfg->pop3_listen, cfg->n_pop3_listen },
		{ "pop3s_listen", cfg->pop3s_listen, cfg->n_pop3s_listen },
	};
	for (size_t r = 0; r < sizeof(roles) / sizeof(roles[0]); r++)
		for (size_t i = 0; i < roles[r].n; i++)
			check_listen(c, roles[r].key, roles[r].v[i]);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mxbait check [-c FILE] [--no-ports]\n"
		   "  check the configuration, the TLS files, the data directory and that the\n"
		   "  listen addresses are free, creating nothing; exit 0 when ready, 1 if not\n"
		   "  -c, --config FILE  the configuration (default " MXB_DEFAULT_CONFIG
		   " when it\n"
		   "                     exists, else the embedded defaults)\n"
		   "      --no-ports     do not try the listen addresses\n"
		   "\nSee mxbait(8).\n");
}

int cmd_check(int argc, char **argv)
{
	const char *conf = NULL;
	bool ports = true;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(a, "--no-ports")) {
			ports = false;
		} else if ((!strcmp(a, "-c") || !strcmp(a, "--config")) && i + 1 < argc) {
			conf = argv[++i];
		} else if (!strncmp(a, "--config=", 9)) {
			conf = a + 9;
		} else {
			fprintf(stderr, "mxbait check: unknown argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
	}
	if (!conf)
		conf = cli_default_config();
	struct mxb_config cfg;
	config_defaults(&cfg);
	struct chk c = { .file = conf ? conf : "(defaults)", .cfg = &cfg };
	if (conf) {
		char *err = NULL;
		if (config_load(&cfg, conf, &err) != 0) {
			fprintf(stderr, "%s\n", err ? err : conf);
			fprintf(stderr, "mxbait check: %s: 1 error\n", conf);
			free(err);
			config_free(&cfg);
			return 1;
		}
	}
	check_data_dir(&c);
	/* the account serve runs as: user, else the one checking unless root */
	char runs_as[64];
	bool known = anlaunch_daemon_account(cfg.user, runs_as, sizeof(runs_as));
	char *anerr = anlaunch_check_user(cfg.analyzer_user, known ? runs_as : NULL);
	if (anerr)
		say(&c, true, "analyzer_user", "%s", anerr);
	else if (*cfg.analyzer_user && !known)
		say(&c, false, "analyzer_user", "user is not set: serve must run as an account "
		    "other than %s and root (the systemd unit runs it as mxbait; started as "
		    "root, serve needs user set)", cfg.analyzer_user);
	else if (*cfg.analyzer_user && !cfg.analyzer)
		say(&c, false, "analyzer_user", "set, but analyzer = no: nothing runs as %s",
		    cfg.analyzer_user);
	free(anerr);
	check_tls(&c);
	check_tls_ecdsa(&c);
	check_files(&c);
	if (ports)
		check_ports(&c);
	if (c.running > 0 && ports)
		printf("mxbait check: mxbait is running on %s (pid %ld): its addresses are "
		       "not tried\n", cfg.data_dir, (long)c.running);
	if (c.errors)
		fprintf(stderr, "mxbait check: %s: %u error%s, %u warning%s\n", c.file, c.errors,
			c.errors == 1 ? "" : "s", c.warnings, c.warnings == 1 ? "" : "s");
	else
		printf("mxbait check: %s: ok (%u warning%s)\n", c.file, c.warnings,
		       c.warnings == 1 ? "" : "s");
	config_free(&cfg);
	return c.errors ? 1 : 0;
}
