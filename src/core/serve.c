/*
 * serve: start-up, event loop and shutdown of the daemon (see serve.h).
 *
 * Start-up order: data directory and its lock, listening sockets (the commonest
 * failure, before any state is touched), the per-installation secret, TLS (a key
 * readable only by root is read now), the guard's nft helper (divert), the
 * analyzer_user launcher (anlaunch.h), each forked while root, or with the capabilities
 * the unit grants, which serve gives up once their helper is forked, or first thing
 * when the setting is off (startcaps.h); then, with `user` set and started as root, the
 * data directory is handed to that user and the process becomes it (privdrop.h);
 * then spool, event store, the deception policy with its saved accounts, limits, the
 * analyzer child (which inherits the unprivileged uid); then the loop.  No thread
 * exists before the drop.  One deception policy answers SMTP AUTH, IMAP and POP3, so
 * an account is the same everywhere.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <strings.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "core/anlaunch.h"
#include "core/config.h"
#include "core/conn.h"
#include "core/limits.h"
#include "core/listener.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/reload.h"
#include "core/sandbox.h"
#include "core/service.h"
#include "core/startcaps.h"
#include "core/tls.h"
#include "deceive/auth_policy.h"
#include "deceive/deception.h"
#include "guard/guard.h"
#include "proto/imap.h"
#include "proto/pop3.h"
#include "proto/smtp.h"
#include "store/db.h"
#include "store/durable.h"
#include "store/eventstore.h"
#include "store/maint.h"
#include "store/spool.h"
#include "util/buf.h"
#include "util/budget.h"
#include "web/web.h"

#define SHUTDOWN_GRACE_MS 10000
#define SECRET_FILE "secret"
#define SECRET_LEN 32
#define ANALYZER_BACKOFF_MIN_MS 1000
#define ANALYZER_BACKOFF_MAX_MS 60000
#define ANALYZER_STABLE_MS 60000  /* ran this long: the next restart is quick again */
#define ANALYZER_STOP_MS 5000     /* SIGTERM, then SIGKILL after this long */

/* The child's command line: mxbait analyze --daemon -d DIR, the six limits, and
 * --psl FILE when set. */
#define ANALYZER_ARGC_MAX 24  /* 5 + 6 pairs + --psl pair + NULL = 20 */
#define ANALYZER_NUM_LEN 24  /* a decimal uint64 and its NUL */

struct analyzer_child {
	bool enabled;
	/* Made once in the parent before any fork (the child may call only
	 * async-signal-safe functions, so no formatting there), reused on every restart. */
	char *argv[ANALYZER_ARGC_MAX];
	char nums[6][ANALYZER_NUM_LEN];
	pid_t pid;                /* 0: not running */
	bool restart_now;         /* stopped for a reload: start again without backoff */
	int64_t started_ms;
	unsigned backoff_ms;
	struct event *restart_ev, *sigchld_ev;
	int launcher_fd;          /* analyzer_user: the launcher's socket (anlaunch.h); -1 */
	pid_t launcher_pid;
};

/* One generation of settings: the configuration and the engine configs made from it.
 * SIGHUP makes a new one (reload.h); a session holds the generation it started with
 * (conn_server's gen_hold), so its engine config outlives the reload. */
struct serve_gen {
	struct mxb_config own;       /* a reloaded configuration (unused in the first) */
	const struct mxb_config *cfg; /* &own, or the caller's in the first generation */
	struct smtp_config smtp_cfg[3];
	struct imap_config imap_cfg[2];
	struct pop3_config pop3_cfg[2];
	unsigned refs;               /* sessions, plus one while it is the current one */
};

struct serve {
	struct event_base *base;
	struct conn_server srv;
	struct listener_set *listeners;
	struct event *sigint_ev, *sigterm_ev, *sighup_ev, *grace_ev;
	bool stopping;
	const struct mxb_config *cfg;
	struct analyzer_child an;
	struct serve_gen *gen;       /* the current settings (the conn_server points in) */
	struct auth_policy *auth;
	struct budget imap_memory; /* imap_memory_budget, shared by every IMAP session */
	uint8_t secret[SECRET_LEN];
	struct eventstore *es;
	struct guard *guard;      /* NULL unless a guard key is configured (guard/guard.h) */
};

static void serve_reload(struct serve *sv);

/* The 20 most common passwords of nmap's ranked list, for a host without it. */
static const char *const builtin_passwords[] = {
	"123456", "12345", "123456789", "password", "iloveyou", "princess", "12345678",
	"1234567", "abc123", "nicole", "daniel", "monkey", "babygirl", "qwerty", "lovely",
	"654321", "michael", "jessica", "111111", "ashley",
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
	int fd = open(p.data, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
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

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The per-installation secret (thresholds of the deception policy, generated
 * mailboxes): made once from OpenSSL's CSPRNG, mode 0600, and reused, so accounts and
 * mailboxes stay the same across restarts.  A file of the wrong size is an error
 * rather than silently replaced (that would change every account). */
static int load_secret(const char *data_dir, uint8_t out[SECRET_LEN])
{
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/%s", data_dir, SECRET_FILE);
	int rc = -1;
	int fd = open(p.data, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		ssize_t n = read(fd, out, SECRET_LEN);
		char extra;
		if (n == SECRET_LEN && read(fd, &extra, 1) == 0)
			rc = 0;
		else
			fprintf(stderr, "mxbait: %s is not %d bytes: move it away to make a new "
					"one (accounts and mailboxes will change)\n", p.data,
				SECRET_LEN);
		close(fd);
	} else if (errno == ENOENT) {
		/* Whole and durable, directory entry included, before anything uses it
		 * (store/durable.h): a crash must not leave a short or missing secret. */
		if (RAND_bytes(out, SECRET_LEN) != 1)
			fprintf(stderr, "mxbait: no random bytes for %s\n", p.data);
		else if (durable_create_file(data_dir, SECRET_FILE, out, SECRET_LEN, 0600) != 0)
			fprintf(stderr, "mxbait: cannot create %s: %s\n", p.data, strerror(errno));
		else
			rc = 0;
		if (rc == 0)
			log_msg(LOG_INFO, NULL, "created %s", p.data);
	} else {
		fprintf(stderr, "mxbait: cannot read %s: %s\n", p.data, strerror(errno));
	}
	buf_free(&p);
	return rc;
}

/* The storage maintenance job's lines (store/maint.h) go to the daemon's log. */
static void store_log(void *ctx, int prio, const char *msg)
{
	(void)ctx;
	log_msg(prio, NULL, "%s", msg);
}

static int restore_account(void *ctx, const struct deception_account *a)
{
	/* A row the policy refuses now (e.g. its domain is no longer served) is skipped:
	 * one stale row must not stop the daemon. */
	if (deception_restore(ctx, a) != 0)
		log_msg(LOG_WARNING, NULL, "saved account not restored (no longer plausible)");
	return 0;
}

/* The policy saved an account: to the store, and to the guard (a trap credential). */
static void account_saved(void *ctx, const struct deception_account *a)
{
	struct serve *sv = ctx;
	eventstore_save_account(sv->es, a);
	guard_account_saved(sv->guard, a);
}

/* The credential policy of every protocol, with its saved accounts loaded. */
static struct auth_policy *make_policy(const struct mxb_config *cfg, struct serve *sv,
				       const uint8_t secret[SECRET_LEN], const char *db_path)
{
	char **list = NULL;
	long n = deception_list_load(cfg->password_list, cfg->password_top_n, &list);
	struct deception_config dc;
	memset(&dc, 0, sizeof(dc));
	if (n > 0) {
		dc.passwords = (const char *const *)list;
		dc.n_passwords = (size_t)n;
	} else {
		log_msg(LOG_WARNING, NULL, "password list %s %s: using the built-in 20 most "
			"common passwords (install nmap-common or set password_list)",
			cfg->password_list, n == 0 ? "is empty" : "cannot be read");
		dc.passwords = builtin_passwords;
		dc.n_passwords = sizeof(builtin_passwords) / sizeof(builtin_passwords[0]);
	}
	char **users = NULL;
	long nu = deception_list_load(cfg->username_list, DECEPTION_MAX_USERNAMES, &users);
	if (nu > 0) {
		dc.usernames = (const char *const *)users;
		dc.n_usernames = (size_t)nu;
	} else {
		log_msg(LOG_WARNING, NULL, "username list %s %s: using the built-in copy of "
			"the shipped list, %zu names (set username_list)", cfg->username_list,
			nu == 0 ? "is empty" : "cannot be read", deception_n_builtin_usernames);
		dc.usernames = deception_builtin_usernames;
		dc.n_usernames = deception_n_builtin_usernames;
	}
	dc.distinct_sources = cfg->crack_distinct_sources;
	dc.rcpt_probed = cfg->crack_rcpt_probed;
	dc.top_n = cfg->password_top_n;
	dc.fail_min = cfg->crack_fail_min;
	dc.fail_max = cfg->crack_fail_max;
	dc.domains = (const char *const *)cfg->local_domains;
	dc.n_domains = cfg->n_local_domains;
	dc.fixed = (const char *const *)cfg->accounts;
	dc.n_fixed = cfg->n_accounts;
	memcpy(dc.secret, secret, SECRET_LEN);
	dc.max_accounts = cfg->max_accounts;
	dc.account_expiry_us = (int64_t)cfg->account_expiry_ms * 1000;
	dc.save = account_saved;
	dc.save_ctx = sv;
	struct auth_policy *p = deception_new(&dc);
	OPENSSL_cleanse(dc.secret, sizeof(dc.secret));
	if (list)
		deception_list_free(&list);
	deception_list_free(&users);
	if (!p) {
		fprintf(stderr, "mxbait: out of memory (credential policy)\n");
		return NULL;
	}
	char *err = NULL;
	int loaded = db_load_accounts(db_path, restore_account, p, &err);
	if (loaded < 0) {
		fprintf(stderr, "mxbait: cannot load saved accounts: %s\n", err ? err : "?");
		free(err);
		auth_policy_free(&p);
		return NULL;
	}
	log_msg(LOG_INFO, NULL, "credential policy: %ld passwords (top %u), cracks after %u-%u "
		"failures, %zu fixed accounts, %d saved accounts; plausible names: %zu listed, "
		"RCPT-probed %s, tried from %u networks", n > 0 ? n : 20L,
		cfg->password_top_n, cfg->crack_fail_min, cfg->crack_fail_max, cfg->n_accounts,
		loaded, nu > 0 ? (size_t)nu : deception_n_builtin_usernames,
		cfg->crack_rcpt_probed ? "yes" : "no", cfg->crack_distinct_sources);
	return p;
}

/* The mail domain of generated mailboxes: the parent domain of the host name when it
 * is served (mail.example.com serves example.com), else the first served domain. */
static const char *mail_domain(const struct mxb_config *cfg)
{
	const char *dot = strchr(cfg->hostname, '.');
	for (size_t i = 0; dot && i < cfg->n_local_domains; i++)
		if (!strcasecmp(cfg->local_domains[i], dot + 1))
			return cfg->local_domains[i];
	return cfg->n_local_domains ? cfg->local_domains[0] : cfg->hostname;
}

/* ---- the analyzer child ---- */

/* The analyzer inherits the daemon's uid: the spool writes every message 0600 for that
 * user, which is what lets the child read them.  With `user` set the daemon drops to
 * it before the child starts, so both are unprivileged; without it, as root, say so. */
static void analyzer_check_user(const struct serve *sv)
{
	if (sv->an.enabled && geteuid() == 0)
		log_msg(LOG_WARNING, NULL, "running as root, and so does the analyzer child: it "
			"parses hostile mail; set user in the configuration (e.g. user = nobody "
			"or a dedicated account) to drop privileges after binding the ports");
}

/* `user` checked before anything is touched: 1 when the process must drop to it (root
 * now), 0 when it has nothing to do (no user, or already that user), -1 on error. */
static int check_user(const struct mxb_config *cfg, struct privdrop_user *u_r)
{
	if (!cfg->user || !*cfg->user)
		return 0;
	char *err = NULL;
	if (privdrop_lookup(cfg->user, u_r, &err) != 0) {
		fprintf(stderr, "mxbait: user %s: %s\n", cfg->user, err);
		free(err);
		return -1;
	}
	if (getuid() == 0 && geteuid() == 0)
		return 1;
	if (getuid() == u_r->uid && geteuid() == u_r->uid)
		return 0; /* started as the user already (e.g. by systemd's User=) */
	fprintf(stderr, "mxbait: user = %s, but mxbait runs as uid %ld, neither root nor %s: "
			"start it as root (it drops to %s after binding) or as %s\n", cfg->user,
		(long)geteuid(), cfg->user, cfg->user, cfg->user);
	return -1;
}

/* Become u (see privdrop.h): as root, after the ports are bound and the secret and
 * TLS key read. */
static int drop_privileges(const struct mxb_config *cfg, const struct privdrop_user *u)
{
	char *err = NULL;
	if (privdrop_chown_tree(cfg->data_dir, u, &err) != 0 || privdrop_become(u, &err) != 0) {
		fprintf(stderr, "mxbait: dropping privileges to %s: %s\n", u->name, err);
		free(err);
		return -1;
	}
	/* A parent directory closed to the user (e.g. created 0700 by root) shows now,
	 * with a clear message, rather than as a spool error. */
	if (access(cfg->data_dir, R_OK | W_OK | X_OK) != 0) {
		fprintf(stderr, "mxbait: data directory %s is not usable by user %s: %s (can "
				"%s traverse every parent directory?)\n", cfg->data_dir, u->name,
			strerror(errno), u->name);
		return -1;
	}
	log_msg(LOG_INFO, NULL, "running as user %s (uid %ld, gid %ld)", u->name,
		(long)u->uid, (long)u->gid);
	return 0;
}

/* Fill an->argv from the configuration: every value the child needs, as text. */
static void analyzer_argv_init(struct analyzer_child *an, const struct mxb_config *cfg)
{
	static char a0[] = "mxbait", a1[] = "analyze", a2[] = "--daemon", a3[] = "-d";
	static char o_depth[] = "--max-depth", o_parts[] = "--max-parts",
		    o_decoded[] = "--max-decoded", o_text[] = "--max-text",
		    o_links[] = "--max-links", o_rcpts[] = "--max-recipients", o_psl[] = "--psl";
	const struct { char *opt; unsigned long long v; } lim[6] = {
		{ o_depth, cfg->analyzer_max_depth },
		{ o_parts, cfg->analyzer_max_parts },
		{ o_decoded, cfg->analyzer_max_decoded },
		{ o_text, cfg->analyzer_max_text },
		{ o_links, cfg->analyzer_max_links },
		{ o_rcpts, cfg->analyzer_max_recipients },
	};
	size_t n = 0;
	an->argv[n++] = a0;
	an->argv[n++] = a1;
	an->argv[n++] = a2;
	an->argv[n++] = a3;
	an->argv[n++] = cfg->data_dir;
	for (size_t i = 0; i < 6; i++) {
		snprintf(an->nums[i], sizeof(an->nums[i]), "%llu", lim[i].v);
		an->argv[n++] = lim[i].opt;
		an->argv[n++] = an->nums[i];
	}
	if (cfg->analyzer_psl_file && *cfg->analyzer_psl_file) {
		an->argv[n++] = o_psl;
		an->argv[n++] = cfg->analyzer_psl_file;
	}
	if (an->launcher_fd >= 0) { /* the child gets it as fd 3 */
		static char o_lfd[] = "--launcher-fd", three[] = "3";
		an->argv[n++] = o_lfd;
		an->argv[n++] = three;
	}
	an->argv[n] = NULL;
}

static void analyzer_start(struct serve *sv)
{
	struct analyzer_child *an = &sv->an;
	if (!an->enabled || an->pid > 0 || sv->stopping)
		return;
	pid_t pid = fork();
	if (pid < 0) {
		log_msg(LOG_WARNING, NULL, "cannot start the analyzer: %s", strerror(errno));
		struct timeval tv = { an->backoff_ms / 1000, (an->backoff_ms % 1000) * 1000 };
		event_add(an->restart_ev, &tv);
		return;
	}
	if (pid == 0) {
		/* The child: only async-signal-safe calls until exec. */
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM); /* the daemon killed hard: go too */
		if (an->launcher_fd == 3)
			fcntl(3, F_SETFD, 0);
		else if (an->launcher_fd >= 0)
			dup2(an->launcher_fd, 3);
		close_range(an->launcher_fd >= 0 ? 4 : 3, ~0U, 0);
		execv("/proc/self/exe", an->argv);
		_exit(127);
	}
	an->pid = pid;
	an->started_ms = mono_ms();
	log_msg(LOG_INFO, NULL, "analyzer started (pid %ld)", (long)pid);
}

static void analyzer_restart_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	analyzer_start(arg);
}

static void analyzer_reaped(struct serve *sv, int status)
{
	struct analyzer_child *an = &sv->an;
	int64_t ran = mono_ms() - an->started_ms;
	an->pid = 0;
	if (sv->stopping)
		return;
	if (an->restart_now) { /* stopped by a reload: its new settings apply now */
		an->restart_now = false;
		an->backoff_ms = ANALYZER_BACKOFF_MIN_MS;
		struct timeval now = { 0, 0 };
		event_add(an->restart_ev, &now);
		return;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
		log_msg(LOG_ERR, NULL, "analyzer killed by its system-call filter (a forbidden "
			"system call: a bug, or a message that took control of it)");
	if (WIFEXITED(status))
		log_msg(LOG_WARNING, NULL, "analyzer exited with status %d after %lld ms",
			WEXITSTATUS(status), (long long)ran);
	else if (WIFSIGNALED(status))
		log_msg(LOG_WARNING, NULL, "analyzer killed by signal %d (%s) after %lld ms",
			WTERMSIG(status), strsignal(WTERMSIG(status)), (long long)ran);
	if (ran >= ANALYZER_STABLE_MS)
		an->backoff_ms = ANALYZER_BACKOFF_MIN_MS;
	log_msg(LOG_INFO, NULL, "analyzer restarts in %u ms", an->backoff_ms);
	struct timeval tv = { an->backoff_ms / 1000, (an->backoff_ms % 1000) * 1000 };
	event_add(an->restart_ev, &tv);
	an->backoff_ms = an->backoff_ms * 2 > ANALYZER_BACKOFF_MAX_MS ? ANALYZER_BACKOFF_MAX_MS
								       : an->backoff_ms * 2;
}

static void on_sigchld(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	struct serve *sv = arg;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == sv->an.pid)
			analyzer_reaped(sv, status);
		if (pid == sv->an.launcher_pid) {
			sv->an.launcher_pid = 0;
			if (!sv->stopping)
				log_msg(LOG_ERR, NULL, "the analyzer launcher ended (status 0x%x): "
					"no analysis worker can start until mxbait is restarted",
					(unsigned)status);
		}
	}
}

/* SIGTERM, wait (bounded), SIGKILL if it does not go. */
static void analyzer_stop(struct serve *sv)
{
	struct analyzer_child *an = &sv->an;
	if (an->restart_ev)
		event_del(an->restart_ev);
	if (an->pid <= 0)
		return;
	kill(an->pid, SIGTERM);
	int status;
	for (int i = 0; i < ANALYZER_STOP_MS / 10; i++) {
		pid_t r = waitpid(an->pid, &status, WNOHANG);
		if (r == an->pid || (r < 0 && errno == ECHILD)) {
			an->pid = 0;
			return;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* shutdown only: the loop has stopped */
	}
	log_msg(LOG_WARNING, NULL, "analyzer did not stop in %d ms: killed", ANALYZER_STOP_MS);
	kill(an->pid, SIGKILL);
	waitpid(an->pid, &status, 0);
	an->pid = 0;
}

static void on_conn_freed(void *arg)
{
	struct serve *sv = arg;
	listener_set_resume(sv->listeners); /* a descriptor came free */
	if (sv->stopping && sv->srv.n_conns == 0)
		event_base_loopbreak(sv->base);
}

static void on_accept(void *arg, enum mxb_role role, evutil_socket_t fd,
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
		if (!sv->stopping)
			serve_reload(sv);
		return;
	}
	if (sv->stopping) {
		event_base_loopbreak(sv->base); /* second signal: stop now */
		return;
	}
	sv->stopping = true;
	log_msg(LOG_INFO, NULL, "%s: shutting down (%zu sessions)", strsignal((int)sig),
		sv->srv.n_conns);
	service_stopping();
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
	sc->auth_failure_jitter = cfg->auth_failure_jitter;
	sc->auth = auth;
}

static void fill_imap_config(struct imap_config *ic, const struct mxb_config *cfg,
			     bool implicit_tls, struct auth_policy *auth, const uint8_t *secret,
			     struct budget *memory)
{
	memset(ic, 0, sizeof(*ic));
	ic->hostname = cfg->hostname;
	ic->domain = mail_domain(cfg);
	ic->implicit_tls = implicit_tls;
	ic->tls_available = true;
	ic->auth = auth;
	ic->secret = secret;
	ic->line_length_limit = cfg->imap_line_length_limit;
	ic->literal_max = cfg->imap_literal_max;
	ic->session_memory = cfg->imap_session_memory;
	ic->memory = memory;
	ic->bad_command_limit = cfg->imap_bad_command_limit;
	ic->auth_failure_delay_ms = cfg->auth_failure_delay_ms;
	ic->auth_failure_jitter = cfg->auth_failure_jitter;
	ic->login_latency = cfg->login_latency;
	ic->max_userip = cfg->mail_max_userip_connections;
	ic->auth_penalty_max_ms = cfg->auth_penalty ? 15000 : UINT32_MAX;
}

static void fill_pop3_config(struct pop3_config *pc, const struct mxb_config *cfg,
			     bool implicit_tls, struct auth_policy *auth, const uint8_t *secret)
{
	memset(pc, 0, sizeof(*pc));
	pc->hostname = cfg->hostname;
	pc->domain = mail_domain(cfg);
	pc->implicit_tls = implicit_tls;
	pc->tls_available = true;
	pc->allow_plaintext = false; /* Dovecot's disable_plaintext_auth = yes */
	pc->auth = auth;
	pc->secret = secret;
	pc->canonical = deception_canonical;
	pc->bad_command_limit_auth = cfg->pop3_bad_command_limit;
	pc->command_limit = cfg->command_limit;
	pc->auth_failure_delay_ms = cfg->auth_failure_delay_ms;
	pc->auth_failure_jitter = cfg->auth_failure_jitter;
	pc->login_latency = cfg->login_latency;
	pc->max_userip = cfg->mail_max_userip_connections;
	pc->auth_penalty = cfg->auth_penalty;
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

/* ---- settings generations and SIGHUP ---- */

static void gen_build(struct serve *sv, struct serve_gen *g)
{
	const struct mxb_config *cfg = g->cfg;
	fill_smtp_config(&g->smtp_cfg[0], cfg, SMTP_ROLE_MX, true, sv->auth);
	fill_smtp_config(&g->smtp_cfg[1], cfg, SMTP_ROLE_SUBMISSION, true, sv->auth);
	fill_smtp_config(&g->smtp_cfg[2], cfg, SMTP_ROLE_SMTPS, true, sv->auth);
	/* one budget for every IMAP session, whatever generation it started with */
	sv->imap_memory.limit = cfg->imap_memory_budget;
	fill_imap_config(&g->imap_cfg[0], cfg, false, sv->auth, sv->secret, &sv->imap_memory);
	fill_imap_config(&g->imap_cfg[1], cfg, true, sv->auth, sv->secret, &sv->imap_memory);
	fill_pop3_config(&g->pop3_cfg[0], cfg, false, sv->auth, sv->secret);
	fill_pop3_config(&g->pop3_cfg[1], cfg, true, sv->auth, sv->secret);
}

/* Point the connection layer at g's settings (new sessions use them). */
static void gen_install(struct serve *sv, struct serve_gen *g)
{
	const struct {
		enum mxb_role role;
		const struct proto_engine *eng;
		const void *cfg;
	} engines[] = {
		{ MXB_ROLE_SMTP, &smtp_engine, &g->smtp_cfg[0] },
		{ MXB_ROLE_SUBMISSION, &smtp_engine, &g->smtp_cfg[1] },
		{ MXB_ROLE_SMTPS, &smtp_engine, &g->smtp_cfg[2] },
		{ MXB_ROLE_IMAP, &imap_engine, &g->imap_cfg[0] },
		{ MXB_ROLE_IMAPS, &imap_engine, &g->imap_cfg[1] },
		{ MXB_ROLE_POP3, &pop3_engine, &g->pop3_cfg[0] },
		{ MXB_ROLE_POP3S, &pop3_engine, &g->pop3_cfg[1] },
	};
	for (size_t i = 0; i < sizeof(engines) / sizeof(engines[0]); i++) {
		sv->srv.engine[engines[i].role] = engines[i].eng;
		sv->srv.engine_cfg[engines[i].role] = engines[i].cfg;
	}
	sv->srv.cfg = g->cfg;
	sv->srv.output_budget = g->cfg->output_memory_budget;
	sv->cfg = g->cfg;
	sv->gen = g;
}

static void gen_unref(struct serve_gen *g)
{
	if (!g || --g->refs > 0)
		return;
	if (g->cfg == &g->own)
		config_free(&g->own);
	free(g);
}

static void *gen_hold(void *arg)
{
	struct serve *sv = arg;
	sv->gen->refs++;
	return sv->gen;
}

static void gen_release(void *arg, void *gen)
{
	(void)arg;
	gen_unref(gen);
}

/* SIGHUP: reopen the logs, read the configuration and the certificates again, apply
 * what can change without a restart (reload.h); sessions stay open. */
static void serve_reload(struct serve *sv)
{
	service_reloading();
	char *err = NULL;
	if (log_reopen(&err) != 0) {
		log_msg(LOG_ERR, NULL, "SIGHUP: %s", err);
		free(err);
		err = NULL;
	}
	log_msg(LOG_INFO, NULL, "SIGHUP: reopening the logs, reloading %s",
		sv->cfg->config_file ? sv->cfg->config_file : "the embedded defaults");
	eventstore_reopen_log(sv->srv.events); /* by the writer, before its next batch */
	struct serve_gen *g = calloc(1, sizeof(*g));
	if (!g) {
		log_msg(LOG_ERR, NULL, "SIGHUP: out of memory: configuration not reloaded");
		service_ready("running (reload failed)");
		return;
	}
	int changed = reload_config(sv->cfg, &g->own, &err);
	if (changed < 0) {
		log_msg(LOG_ERR, NULL, "SIGHUP: configuration not reloaded: %s (the running "
			"configuration stays)", err ? err : "?");
		free(err);
		free(g);
		service_ready("running (reload failed: configuration error)");
		return;
	}
	g->cfg = &g->own;
	if (!config_key_equal(sv->cfg, g->cfg, "log") && log_open(g->cfg->log, &err) != 0) {
		log_msg(LOG_ERR, NULL, "SIGHUP: %s (logging stays as it was)", err);
		free(err);
		err = NULL;
		config_key_copy(&g->own, sv->cfg, "log");
	}
	/* Certificates: read again whether or not their names changed (renewed files). */
	SSL_CTX *ctx = tls_server_ctx_new(g->cfg->tls_cert_file, g->cfg->tls_key_file,
					  g->cfg->data_dir, g->cfg->hostname, &err);
	if (ctx && g->cfg->tls_ecdsa &&
	    tls_add_ecdsa(ctx, g->cfg->tls_eccert_file, g->cfg->tls_eckey_file,
			  g->cfg->data_dir, g->cfg->hostname, &err) != 0) {
		SSL_CTX_free(ctx);
		ctx = NULL;
	}
	if (ctx) {
		SSL_CTX_free(sv->srv.ssl_ctx); /* TLS sessions open hold their own reference */
		sv->srv.ssl_ctx = ctx;
	} else {
		log_msg(LOG_ERR, NULL, "SIGHUP: TLS: %s (the running certificate stays)",
			err ? err : "?");
		free(err);
		err = NULL;
		config_key_copy(&g->own, sv->cfg, "tls_cert_file");
		config_key_copy(&g->own, sv->cfg, "tls_key_file");
		config_key_copy(&g->own, sv->cfg, "tls_ecdsa");
		config_key_copy(&g->own, sv->cfg, "tls_eccert_file");
		config_key_copy(&g->own, sv->cfg, "tls_eckey_file");
	}
	if (sv->srv.limits)
		limits_reconfigure(sv->srv.limits, g->cfg->max_connections,
				   g->cfg->max_connections_per_ip, g->cfg->connection_rate_per_ip,
				   g->cfg->max_connections_per_prefix);
	bool analyzer_changed = reload_analyzer_changed(sv->cfg, g->cfg);
	g->refs = 1;
	gen_build(sv, g);
	struct serve_gen *old = sv->gen;
	gen_install(sv, g);
	gen_unref(old); /* freed with the last session that started under it */
	/* The child's command line points into the current settings: made again. */
	analyzer_argv_init(&sv->an, g->cfg);
	if (analyzer_changed) {
		sv->an.enabled = g->cfg->analyzer;
		if (sv->an.pid > 0) {
			sv->an.restart_now = sv->an.enabled;
			kill(sv->an.pid, SIGTERM);
		} else if (sv->an.enabled) {
			event_del(sv->an.restart_ev);
			analyzer_start(sv);
		}
	}
	log_msg(LOG_INFO, NULL, "reloaded: %d setting%s changed, %zu sessions kept", changed,
		changed == 1 ? "" : "s", sv->srv.n_conns);
	service_ready("running (reloaded)");
}

int serve_run(const struct mxb_config *cfg)
{
	int rc = 1;
	char *err = NULL;
	struct serve sv;
	memset(&sv, 0, sizeof(sv));
	struct spool *spool = NULL;
	struct store_maint *maint = NULL;
	struct eventstore *es = NULL;
	struct auth_policy *auth = NULL;
	SSL_CTX *ssl_ctx = NULL;
	struct limits *limits = NULL;
	struct web *web = NULL; /* dashboard, API, metrics (src/web/) */
	int lock_fd = -1;
	struct buf path;
	buf_init(&path, 0);
	sv.cfg = cfg;
	/* Whatever this process creates is its own alone: captured passwords may be real
	 * users' (umask 077: files 0600, directories 0700). */
	umask(077);
	sv.an.enabled = cfg->analyzer;
	sv.an.launcher_fd = -1;
	analyzer_argv_init(&sv.an, cfg);
	sv.an.backoff_ms = ANALYZER_BACKOFF_MIN_MS;

	log_init(false, LOG_INFO);
	if (log_open(cfg->log, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	signal(SIGPIPE, SIG_IGN);
	struct privdrop_user user;
	int must_drop = check_user(cfg, &user);
	if (must_drop < 0)
		goto out;
	if (startcaps_at_start(cfg, &err) != 0) { /* non-root start: core/startcaps.h */
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
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
	sv.an.sigchld_ev = evsignal_new(sv.base, SIGCHLD, on_sigchld, &sv);
	sv.an.restart_ev = evtimer_new(sv.base, analyzer_restart_cb, &sv);
	if (!sv.sigint_ev || !sv.sigterm_ev || !sv.sighup_ev || !sv.grace_ev ||
	    !sv.an.sigchld_ev || !sv.an.restart_ev ||
	    event_add(sv.sigint_ev, NULL) || event_add(sv.sigterm_ev, NULL) ||
	    event_add(sv.sighup_ev, NULL) || event_add(sv.an.sigchld_ev, NULL)) {
		fprintf(stderr, "mxbait: cannot watch signals\n");
		goto out;
	}
	if ((lock_fd = lock_data_dir(cfg->data_dir)) < 0)
		goto out;
	/* A data directory made by hand, or by an older mxbait, may be open to others. */
	if (privdrop_tighten_tree(cfg->data_dir, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	/* Bind before touching the spool and the database: a port in use is the most
	 * common start-up error, and it should not touch captured state.  (Nothing is
	 * accepted before the loop runs.) */
	sv.listeners = listener_set_open(sv.base, cfg, on_accept, &sv, &err);
	if (!sv.listeners) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot listen");
		goto out;
	}
	if (load_secret(cfg->data_dir, sv.secret) != 0)
		goto out;
	ssl_ctx = tls_server_ctx_new(cfg->tls_cert_file, cfg->tls_key_file, cfg->data_dir,
				     cfg->hostname, &err);
	if (ssl_ctx && cfg->tls_ecdsa &&
	    tls_add_ecdsa(ssl_ctx, cfg->tls_eccert_file, cfg->tls_eckey_file, cfg->data_dir,
			  cfg->hostname, &err) != 0) {
		SSL_CTX_free(ssl_ctx);
		ssl_ctx = NULL;
	}
	if (!ssl_ctx) {
		fprintf(stderr, "mxbait: TLS: %s\n", err ? err : "cannot set up");
		goto out;
	}
	/* The guard binds its policy sockets and forks its nft helper while root (or with
	 * the CAP_NET_ADMIN the unit grants, which serve then gives up: startcaps.h). */
	if (guard_configured(cfg) && !(sv.guard = guard_new(cfg, sv.base, &err))) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot set up the guard");
		goto out;
	}
	if (startcaps_handed(STARTCAPS_FOR_NFT_HELPER, &err) != 0) { /* CAP_NET_ADMIN's gone */
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	web = web_open(sv.base, cfg, ssl_ctx, &err);
	if (!web && err) {
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	/* analyzer_user: the worker's launcher starts now, while root (anlaunch.h) */
	if (anlaunch_start(cfg, must_drop == 1, &sv.an.launcher_fd,
			   &sv.an.launcher_pid, &err) != 0 ||
	    startcaps_handed(STARTCAPS_FOR_LAUNCHER, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	analyzer_argv_init(&sv.an, cfg);
	/* The privileged part ends here: ports bound, secret and TLS key read.  Spool and
	 * event store (and their threads) start as the unprivileged user.  Root gives up
	 * the capability bounding set first (nothing this process or its children exec can
	 * regain a capability), and every capability is dropped (a service started with
	 * CAP_NET_BIND_SERVICE needs it no longer). */
	unsigned bset_dropped = 0;
	if (sandbox_drop_bounding_set(&bset_dropped, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err);
		goto out;
	}
	if (must_drop && drop_privileges(cfg, &user) != 0)
		goto out;
	if (geteuid() != 0 && sandbox_clear_caps(&err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err);
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
	const char *event_log = cfg->event_log && *cfg->event_log ? cfg->event_log : NULL;
	es = eventstore_open(path.data, event_log, &err);
	if (!es) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot open the event store");
		goto out;
	}
	sv.es = es;
	if (!(auth = make_policy(cfg, &sv, sv.secret, path.data)))
		goto out;
	sv.auth = auth;
	/* Index what a crash left unindexed, then budgets and retention (store/maint.h). */
	maint = store_maint_start(&(struct store_maint_config){ cfg->data_dir, event_log, es,
		spool, cfg->database_budget, cfg->analysis_budget, cfg->event_log_budget,
		cfg->spool_budget, cfg->retention_ms, store_log, NULL }, &err);
	if (!maint) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot start the storage job");
		goto out;
	}
	if (sv.guard && guard_start(sv.guard, es, path.data, cfg->data_dir, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "cannot start the guard");
		goto out;
	}
	web_set_guard(web, sv.guard); /* the dashboard's decision actions go through it */
	if (web_start(web, es, &err) != 0) {
		fprintf(stderr, "mxbait: %s\n", err ? err : "web: cannot start");
		goto out;
	}
	limits = limits_new(cfg->max_connections, cfg->max_connections_per_ip,
			    cfg->connection_rate_per_ip);
	if (!limits) {
		fprintf(stderr, "mxbait: out of memory\n");
		goto out;
	}
	limits_set_per_prefix(limits, cfg->max_connections_per_prefix);

	struct conn_server *srv = &sv.srv;
	srv->base = sv.base;
	srv->cfg = cfg;
	srv->ssl_ctx = ssl_ctx;
	srv->spool = spool;
	srv->events = es;
	srv->limits = limits;
	srv->on_freed = on_conn_freed;
	srv->on_freed_arg = &sv;
	ssl_ctx = NULL; /* the server's now (a reload replaces it) */
	srv->gen_hold = gen_hold;
	srv->gen_release = gen_release;
	srv->gen_arg = &sv;
	struct serve_gen *g0 = calloc(1, sizeof(*g0));
	if (!g0) {
		fprintf(stderr, "mxbait: out of memory\n");
		goto out;
	}
	g0->cfg = cfg; /* the caller's: not freed here */
	g0->refs = 1;
	gen_build(&sv, g0);
	gen_install(&sv, g0);

	/* The analyzer parses hostile MIME in its own process, never in this one. */
	analyzer_check_user(&sv);
	analyzer_start(&sv);

	log_msg(LOG_INFO, NULL, "mxbait %s ready: hostname=%s data_dir=%s", MXB_VERSION,
		cfg->hostname, cfg->data_dir);
	if (bset_dropped)
		log_msg(LOG_INFO, NULL, "capability bounding set emptied (%u dropped)",
			bset_dropped);
	service_ready("accepting connections");

	event_base_dispatch(sv.base);
	sv.stopping = true;
	analyzer_stop(&sv);
	anlaunch_stop(&sv.an.launcher_fd, &sv.an.launcher_pid);
	store_maint_stop(&maint);

	/* The loop has stopped: sessions still open end (their open messages go back),
	 * commits still queued complete inside the spool's close (their sessions alive to
	 * record them), then the connections are freed: conn_server_teardown(). */
	listener_set_free(&sv.listeners);
	conn_server_teardown(&sv.srv, &spool);
	eventstore_flush(es);
	log_msg(LOG_INFO, NULL, "stopped");
	rc = 0;
out:
	sv.stopping = true;
	analyzer_stop(&sv);
	anlaunch_stop(&sv.an.launcher_fd, &sv.an.launcher_pid);
	store_maint_stop(&maint);
	listener_set_free(&sv.listeners);
	conn_server_teardown(&sv.srv, &spool);
	guard_free(&sv.guard);
	web_free(&web);
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
	if (sv.an.sigchld_ev)
		event_free(sv.an.sigchld_ev);
	if (sv.an.restart_ev)
		event_free(sv.an.restart_ev);
	OPENSSL_cleanse(sv.secret, sizeof(sv.secret));
	limits_free(&limits);
	SSL_CTX_free(ssl_ctx);
	SSL_CTX_free(sv.srv.ssl_ctx);
	gen_unref(sv.gen); /* every session is gone: the last reference */
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
