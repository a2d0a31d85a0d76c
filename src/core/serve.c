/*
 * serve: start-up, event loop and shutdown of the daemon (see serve.h).
 */
#include "core/serve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/ssl.h>

#include "core/config.h"
#include "core/conn.h"
#include "core/limits.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/tls.h"
#include "deceive/auth_policy.h"
#include "store/eventstore.h"
#include "store/spool.h"
#include "util/buf.h"

#define SHUTDOWN_GRACE_MS 10000

struct serve {
	struct event_base *base;
	struct conn_server srv;
	struct listener_set *listeners;
	struct event *sigint_ev, *sigterm_ev, *sighup_ev, *grace_ev;
	bool stopping;
};

/* mkdir -p, mode 0700 for what it creates (captured mail is private). */
static int mkdir_p(const char *path)
{
	struct buf b;
	buf_init(&b, 0);
	buf_puts(&b, path);
	for (char *p = b.data + 1; p && *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(b.data, 0700) != 0 && errno != EEXIST) {
			buf_free(&b);
			return -1;
		}
		*p = '/';
	}
	int rc = mkdir(b.data, 0700) != 0 && errno != EEXIST ? -1 : 0;
	buf_free(&b);
	return rc;
}

/* One daemon per data directory: a second one would share the spool's tmp/ (whose
 * stale files a starting spool removes) and the database.  The lock file also holds
 * the daemon's pid, for operators. */
static int lock_data_dir(const char *data_dir)
{
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/mxbait.pid", data_dir);
	int fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "mxbait: cannot open %s: %s\n", p.data, strerror(errno));
		buf_free(&p);
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		fprintf(stderr, "mxbait: another mxbait serve is using %s (%s is locked)\n",
			data_dir, p.data);
		close(fd);
		buf_free(&p);
		return -1;
	}
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || write(fd, pid, (size_t)n) != n)
		log_msg(LOG_WARNING, NULL, "cannot write %s", p.data);
	buf_free(&p);
	return fd; /* kept open (and locked) for the daemon's life */
}

static void on_conn_freed(void *arg)
{
	struct serve *sv = arg;
	listener_set_resume(sv->listeners); /* a descriptor came free */
	if (sv->stopping && sv->srv.n_conns == 0)
		event_base_loopbreak(sv->base);
}

static void on_accept(void *arg, enum smtp_role role, evutil_socket_t fd,
		      const char *peer_ip, unsigned peer_port, const char *local_ip,
		      unsigned local_port)
{
	struct serve *sv = arg;
	conn_accept(&sv->srv, role, fd, peer_ip, peer_port, local_ip, local_port);
}

static void grace_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct serve *sv = arg;
	log_msg(LOG_WARNING, NULL, "%zu sessions still open after %d ms: stopping anyway",
		sv->srv.n_conns, SHUTDOWN_GRACE_MS);
	event_base_loopbreak(sv->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what;
	struct serve *sv = arg;
	if (sig == SIGHUP) {
		log_msg(LOG_INFO, NULL, "SIGHUP ignored (restart to reload the configuration)");
		return;
	}
	if (sv->stopping) {
		event_base_loopbreak(sv->base); /* second signal: stop now */
		return;
	}
	sv->stopping = true;
	log_msg(LOG_INFO, NULL, "%s: shutting down (%zu sessions)", strsignal((int)sig),
		sv->srv.n_conns);
	listener_set_free(&sv->listeners);
	conn_shutdown_all(&sv->srv);
	if (sv->srv.n_conns == 0) {
		event_base_loopbreak(sv->base);
		return;
	}
	struct timeval tv = { SHUTDOWN_GRACE_MS / 1000, 0 };
	event_add(sv->grace_ev, &tv);
}

static void fill_smtp_config(struct smtp_config *sc, const struct mxb_config *cfg,
			     enum smtp_role role, bool tls, struct auth_policy *auth)
{
	memset(sc, 0, sizeof(*sc));
	sc->hostname = cfg->hostname;
	sc->local_domains = (const char *const *)cfg->local_domains;
	sc->n_local_domains = cfg->n_local_domains;
	sc->catch_all = cfg->catch_all;
	sc->role = role;
	sc->tls_available = tls;
	sc->vrfy_enabled = cfg->vrfy_enabled;
	sc->auth_on_mx = cfg->auth_on_mx;
	sc->cram_md5 = cfg->cram_md5;
	sc->line_length_limit = cfg->line_length_limit;
	sc->message_size_limit = cfg->message_size_limit;
	sc->recipient_limit = cfg->recipient_limit;
	sc->command_limit = cfg->command_limit;
	sc->soft_error_limit = cfg->soft_error_limit;
	sc->hard_error_limit = cfg->hard_error_limit;
	sc->error_sleep_ms = cfg->error_sleep_ms;
	sc->auth_failure_delay_ms = cfg->auth_failure_delay_ms;
	sc->auth = auth;
}

/* Room for max_connections sockets plus the daemon's own (listeners, db, logs). */
static void raise_fd_limit(unsigned want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t need = (rlim_t)want + 64;
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need)
		log_msg(LOG_WARNING, NULL, "file descriptor limit %lu is below max_connections %u",
			(unsigned long)rl.rlim_cur, want);
}

int serve_run(const struct mxb_config *cfg)
{
	int rc = 1;
	char *err = NULL;
	struct serve sv;
	memset(&sv, 0, sizeof(sv));
	struct spool *spool = NULL;
	struct eventstore *es = NULL;
	struct auth_policy *auth = NULL;
	SSL_CTX *ssl_ctx = NULL;
	struct limits *limits = NULL;
	int lock_fd = -1;
	struct buf path;
	buf_init(&path, 0);

	log_init(false, LOG_INFO);
	signal(SIGPIPE, SIG_IGN);
	raise_fd_limit(cfg->max_connections);
	if (evthread_use_pthreads() != 0) {
		fprintf(stderr, "mxbait: libevent without thread support\n");
		goto out;
	}
	if (mkdir_p(cfg->data_dir) != 0) {
		fprintf(stderr, "mxbait: cannot create data directory %s: %s\n", cfg->data_dir,
			strerror(errno));
		goto out;
	}
	sv.base = event_base_new();
	if (!sv.base) {
		fprintf(stderr, "mxbait: cannot create the event loop\n");
		goto out;
	}
	/* Signals first: from the moment the ports accept, a SIGTERM must mean a clean
	 * stop (libevent keeps it until the loop runs). */
	sv.sigint_ev = evsignal_new(sv.base, SIGINT, on_signal, &sv);
	sv.sigterm_ev = evsignal_new(sv.base, SIGTERM, on_signal, &sv);
	sv.sighup_ev = evsignal_new(sv.base, SIGHUP, on_signal, &sv);
	sv.grace_ev = evtimer_new(sv.base, grace_cb, &sv);
	if (!sv.sigint_ev || !sv.sigterm_ev || !sv.sighup_ev || !sv.grace_ev ||
	    event_add(sv.sigint_ev, NULL) || event_add(sv.sigterm_ev, NULL) ||
	    event_add(sv.sighup_ev, NULL)) {
		fprintf(stderr, "mxbait: cannot watch signals\n");
		goto out;
	}
	if ((lock_fd = lock_data_dir(cfg->data_dir)) < 0)
		goto out;
	/* Bind before touching the spool and the database: a port in use is the most
	 * common start-up error, and it should not touch captured state.  (Nothing is
	 * accepted before the loop runs.) */
	sv.listeners = listener_set_open(sv.base, cfg, on_accept, &sv, &err);
	if (!sv.listeners) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot listen");
		goto out;
	}
	buf_printf(&path, "%s/spool", cfg->data_dir);
	spool = spool_open(path.data, cfg->spool_budget, cfg->hostname, sv.base, &err);
	if (!spool) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot open the spool");
		goto out;
	}
	buf_reset(&path);
	buf_printf(&path, "%s/mxbait.db", cfg->data_dir);
	es = eventstore_open(path.data, cfg->event_log && *cfg->event_log ? cfg->event_log : NULL,
			     &err);
	if (!es) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot open the event store");
		goto out;
	}
	auth = auth_static_new((const char *const *)cfg->accounts, cfg->n_accounts);
	ssl_ctx = tls_server_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, cfg->data_dir,
				     cfg->hostname, &err);
	if (!ssl_ctx) {
		fprintf(stderr, "mxbait: TLS: %s\n", err ? err : "cannot set up");
		goto out;
	}
	limits = limits_new(cfg->max_connections, cfg->max_connections_per_ip,
			    cfg->connection_rate_per_ip);
	if (!auth || !limits) {
		fprintf(stderr, "mxbait: out of memory\n");
		goto out;
	}

	struct conn_server *srv = &sv.srv;
	srv->base = sv.base;
	srv->cfg = cfg;
	srv->ssl_ctx = ssl_ctx;
	srv->spool = spool;
	srv->events = es;
	srv->limits = limits;
	srv->on_freed = on_conn_freed;
	srv->on_freed_arg = &sv;
	fill_smtp_config(&srv->smtp_cfg[SMTP_ROLE_MX], cfg, SMTP_ROLE_MX, true, auth);
	fill_smtp_config(&srv->smtp_cfg[SMTP_ROLE_SUBMISSION], cfg, SMTP_ROLE_SUBMISSION, true,
			 auth);
	fill_smtp_config(&srv->smtp_cfg[SMTP_ROLE_SMTPS], cfg, SMTP_ROLE_SMTPS, true, auth);

	log_msg(LOG_INFO, NULL, "mxbait %s ready: hostname=%s data_dir=%s", MXB_VERSION,
		cfg->hostname, cfg->data_dir);

	event_base_dispatch(sv.base);

	/* The loop has stopped: commits still queued complete inside spool_close (their
	 * sessions are alive to record them), then what is left is freed. */
	listener_set_free(&sv.listeners);
	spool_close(&spool);
	conn_free_all(&sv.srv);
	eventstore_flush(es);
	log_msg(LOG_INFO, NULL, "stopped");
	rc = 0;
out:
	listener_set_free(&sv.listeners);
	if (sv.srv.conns) {
		spool_close(&spool);
		conn_free_all(&sv.srv);
	}
	spool_close(&spool);
	if (es)
		eventstore_close(&es);
	if (sv.sigint_ev)
		event_free(sv.sigint_ev);
	if (sv.sigterm_ev)
		event_free(sv.sigterm_ev);
	if (sv.sighup_ev)
		event_free(sv.sighup_ev);
	if (sv.grace_ev)
		event_free(sv.grace_ev);
	limits_free(&limits);
	SSL_CTX_free(ssl_ctx);
	auth_policy_free(&auth);
	if (sv.base)
		event_base_free(sv.base);
	free(err);
	if (lock_fd >= 0) {
		/* still ours (locked): remove it so that no stale pid is left behind */
		buf_reset(&path);
		buf_printf(&path, "%s/mxbait.pid", cfg->data_dir);
		unlink(path.data);
		close(lock_fd);
	}
	buf_free(&path);
	return rc;
}
