/* anlaunch: the analyzer launcher (see anlaunch.h). */
#include "core/anlaunch.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <linux/capability.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/privdrop.h"
#include "core/sandbox.h"
#include "core/startcaps.h"
#include "util/buf.h"
#include "util/fdpass.h"

extern char **environ;

#define KEEP_CAPS STARTCAPS_LAUNCHER /* the launcher's, in startcaps.h's table */
#define LAUNCHER_CTL_FD 3 /* in the launcher, and the worker's socket in the worker */
#define WORKER_EXE_FD 4
#define MAX_WORKERS 64    /* alive at once (each request replaces a dead one) */

char *anlaunch_check_user(const char *analyzer_user, const char *daemon_user)
{
	if (!analyzer_user || !*analyzer_user)
		return NULL;
	struct privdrop_user a, d;
	char *err = NULL;
	if (privdrop_lookup(analyzer_user, &a, &err) != 0) {
		char *e = buf_strf("analyzer_user %s: %s", analyzer_user, err);
		free(err);
		return e;
	}
	if (a.uid == 0 || a.gid == 0)
		return buf_strf("analyzer_user %s is root (uid or gid 0): the worker must be an "
			    "unprivileged account", analyzer_user);
	if (!daemon_user || !*daemon_user)
		return NULL; /* unknown here: the caller says so */
	if (privdrop_lookup(daemon_user, &d, &err) != 0) {
		char *e = buf_strf("user %s: %s", daemon_user, err);
		free(err);
		return e;
	}
	if (a.uid == d.uid)
		return buf_strf("analyzer_user %s has the uid of %s (%ld), the account mxbait runs "
			    "as: the worker must not be able to read the spool", analyzer_user,
			    daemon_user, (long)a.uid);
	if (a.gid == d.gid)
		return buf_strf("analyzer_user %s shares its primary group with %s (gid %ld), the "
			    "account mxbait runs as: give it a group of its own", analyzer_user,
			    daemon_user, (long)a.gid);
	return NULL;
}

bool anlaunch_daemon_account(const char *user, char *name, size_t size)
{
	if (user && *user) {
		snprintf(name, size, "%s", user);
		return true;
	}
	if (getuid() == 0)
		return false; /* root without user: serve stays root */
	struct passwd pw, *res = NULL;
	char tmp[4096];
	if (getpwuid_r(getuid(), &pw, tmp, sizeof(tmp), &res) != 0 || !res)
		return false;
	snprintf(name, size, "%s", res->pw_name);
	return true;
}

/* ---- serve's half ---- */

int anlaunch_start(const struct mxb_config *cfg, bool will_drop, int *ctl_r, pid_t *pid_r,
		   char **err_r)
{
	*ctl_r = -1;
	*pid_r = 0;
	*err_r = NULL;
	/* with analyzer = no too: a reload may turn the analyzer on, and it must not then
	 * parse as user because the launcher (root-only to start) is missing */
	if (!cfg->analyzer_user || !*cfg->analyzer_user)
		return 0;
	char daemon_user[64];
	if (!anlaunch_daemon_account(cfg->user, daemon_user, sizeof(daemon_user))) {
		*err_r = buf_strf("analyzer_user = %s needs user set too (mxbait started as root "
			      "drops to user; the analyzer's worker runs as analyzer_user)",
			      cfg->analyzer_user);
		return -1;
	}
	if ((*err_r = anlaunch_check_user(cfg->analyzer_user, daemon_user)))
		return -1;
	/* Two starts: root about to drop to user (the launcher drops to it too), or the
	 * account itself holding the three capabilities (systemd's User= with
	 * AmbientCapabilities): they are handed to the launcher as ambient ones. */
	bool as_root = getuid() == 0 && geteuid() == 0;
	uint64_t eff = 0, prm = 0, inh = 0;
	if (as_root ? !will_drop
		    : startcaps_get(&eff, &prm, &inh) != 0 || (eff & KEEP_CAPS) != KEEP_CAPS) {
		*err_r = buf_strf("analyzer_user = %s needs mxbait started as root (it starts the "
			      "worker's launcher before dropping to %s), or as %s with "
			      "CAP_SETUID, CAP_SETGID and CAP_SETPCAP", cfg->analyzer_user,
			      daemon_user, daemon_user);
		return -1;
	}
	/* everything the child needs, made before the fork */
	char *argv[12];
	size_t n = 0;
	argv[n++] = (char *)"mxbait";
	argv[n++] = (char *)"analyze";
	argv[n++] = (char *)"--launcher";
	argv[n++] = (char *)"--worker-user";
	argv[n++] = cfg->analyzer_user;
	argv[n++] = (char *)"--run-as";
	argv[n++] = daemon_user;
	if (cfg->analyzer_psl_file && *cfg->analyzer_psl_file) {
		argv[n++] = (char *)"--psl";
		argv[n++] = cfg->analyzer_psl_file;
	}
	argv[n] = NULL;
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) {
		*err_r = buf_strf("analyzer launcher: socketpair: %s", strerror(errno));
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		*err_r = buf_strf("analyzer launcher: fork: %s", strerror(errno));
		close(sp[0]);
		close(sp[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (dup2(sp[1], LAUNCHER_CTL_FD) < 0)
			_exit(127);
		/* not root: exactly the three cross the exec, as ambient capabilities */
		if (!as_root &&
		    ((prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 ||
		      startcaps_put(KEEP_CAPS, KEEP_CAPS, KEEP_CAPS) != 0 ||
		      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETUID, 0, 0) != 0 ||
		      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETGID, 0, 0) != 0 ||
		      prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SETPCAP, 0, 0) != 0)))
			_exit(126);
		close_range(LAUNCHER_CTL_FD + 1, ~0U, 0);
		execve("/proc/self/exe", argv, environ);
		_exit(127);
	}
	close(sp[1]);
	*ctl_r = sp[0];
	*pid_r = pid;
	return 0;
}

void anlaunch_stop(int *ctl, pid_t *pid)
{
	if (*ctl >= 0)
		close(*ctl);
	*ctl = -1;
	if (*pid <= 0)
		return;
	int status;
	for (int i = 0; i < 200; i++) {
		pid_t r = waitpid(*pid, &status, WNOHANG);
		if (r == *pid || (r < 0 && errno == ECHILD)) {
			*pid = 0;
			return;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL); /* shutdown only */
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, &status, 0);
	*pid = 0;
}

/* ---- the launcher ---- */

static int set_caps(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	data[0].effective = data[0].permitted = (uint32_t)keep;
	data[1].effective = data[1].permitted = (uint32_t)(keep >> 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Kill on any identity change but to the worker's uid and gid (see anlaunch.h). */
static int identity_filter(uid_t wuid, gid_t wgid, char **err_r)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
	if (!f) {
		*err_r = buf_strf("seccomp_init failed");
		return -1;
	}
	int rc = 0;
	const char *never[] = { "setuid", "setgid", "setreuid", "setregid", "setfsuid",
				"setfsgid", "setuid32", "setgid32", "setreuid32", "setregid32",
				"setfsuid32", "setfsgid32" };
	for (size_t i = 0; rc == 0 && i < sizeof(never) / sizeof(never[0]); i++) {
		int nr = seccomp_syscall_resolve_name(never[i]);
		if (nr != __NR_SCMP_ERROR)
			rc = seccomp_rule_add(f, SCMP_ACT_KILL_PROCESS, nr, 0);
	}
	const struct { const char *name; scmp_datum_t id; } only[] = {
		{ "setresuid", (scmp_datum_t)wuid }, { "setresgid", (scmp_datum_t)wgid },
		{ "setresuid32", (scmp_datum_t)wuid }, { "setresgid32", (scmp_datum_t)wgid },
	};
	for (size_t i = 0; rc == 0 && i < sizeof(only) / sizeof(only[0]); i++) {
		int nr = seccomp_syscall_resolve_name(only[i].name);
		if (nr == __NR_SCMP_ERROR)
			continue;
		for (unsigned arg = 0; rc == 0 && arg < 3; arg++) {
			struct scmp_arg_cmp ne = { .arg = arg, .op = SCMP_CMP_NE,
						   .datum_a = only[i].id, .datum_b = 0 };
			rc = seccomp_rule_add_array(f, SCMP_ACT_KILL_PROCESS, nr, 1, &ne);
		}
	}
	const char *groups[] = { "setgroups", "setgroups32" };
	for (size_t i = 0; rc == 0 && i < 2; i++) {
		int nr = seccomp_syscall_resolve_name(groups[i]);
		if (nr == __NR_SCMP_ERROR)
			continue;
		struct scmp_arg_cmp ne = { .arg = 0, .op = SCMP_CMP_NE, .datum_a = 0,
					   .datum_b = 0 };
		rc = seccomp_rule_add_array(f, SCMP_ACT_KILL_PROCESS, nr, 1, &ne);
	}
	if (rc == 0)
		rc = seccomp_load(f);
	if (rc != 0)
		*err_r = buf_strf("seccomp (launcher): %s", strerror(-rc));
	seccomp_release(f);
	return rc == 0 ? 0 : -1;
}

/* The forked child: become the worker and exec it.  Only async-signal-safe calls;
 * any failure ends the child (the daemon side sees the socket close). */
static void become_worker(int sock, int exe_fd, const struct privdrop_user *w,
			  char *const argv[])
{
	if (dup2(sock, LAUNCHER_CTL_FD) < 0 ||
	    (exe_fd != WORKER_EXE_FD && dup3(exe_fd, WORKER_EXE_FD, O_CLOEXEC) < 0))
		_exit(126);
	close_range(WORKER_EXE_FD + 1, ~0U, 0);
	/* the bounding set emptied while CAP_SETPCAP is still here */
	for (unsigned c = 0; c < 64; c++)
		if (prctl(PR_CAPBSET_READ, c, 0, 0, 0) == 1 &&
		    prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
			_exit(126);
	if (setgroups(0, NULL) != 0 || setresgid(w->gid, w->gid, w->gid) != 0 ||
	    setresuid(w->uid, w->uid, w->uid) != 0 || set_caps(0) != 0)
		_exit(126);
	prctl(PR_SET_PDEATHSIG, SIGKILL); /* after the uid change, which clears it */
	syscall(SYS_execveat, WORKER_EXE_FD, "", argv, environ, AT_EMPTY_PATH);
	_exit(127);
}

static void reap(unsigned *alive)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (*alive)
			(*alive)--;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
			log_msg(LOG_ERR, NULL, "analyzer worker (pid %ld) killed by its "
				"system-call filter (a forbidden system call: a bug, or a message "
				"that took control of it)", (long)pid);
		else if (WIFSIGNALED(status))
			log_msg(LOG_WARNING, NULL, "analyzer worker (pid %ld) killed by signal "
				"%d (%s)", (long)pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
		else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
			log_msg(LOG_WARNING, NULL, "analyzer worker (pid %ld) exited with "
				"status %d", (long)pid, WEXITSTATUS(status));
	}
}

static void on_sigchld(int sig)
{
	(void)sig; /* only to interrupt poll() */
}

int anlaunch_main(int ctl, const char *worker_user, const char *run_as, const char *psl)
{
	struct privdrop_user w, d;
	char *err = NULL;
	if ((err = anlaunch_check_user(worker_user, run_as)) ||
	    privdrop_lookup(worker_user, &w, &err) != 0 || privdrop_lookup(run_as, &d, &err) != 0)
		goto fail;
	/* as root (it becomes run_as below), or as run_as holding the three */
	uint64_t eff, prm, inh;
	if (!(getuid() == 0 && geteuid() == 0) &&
	    (getuid() != d.uid || geteuid() != d.uid || startcaps_get(&eff, &prm, &inh) != 0 ||
	     (eff & KEEP_CAPS) != KEEP_CAPS)) {
		err = buf_strf("must start as root, or as %s with CAP_SETUID, CAP_SETGID and "
			   "CAP_SETPCAP", run_as);
		goto fail;
	}
	int exe_fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	if (exe_fd < 0) {
		err = buf_strf("/proc/self/exe: %s", strerror(errno));
		goto fail;
	}
	unsigned dropped = 0;
	if (sandbox_limit_bounding_set(KEEP_CAPS, &dropped, &err) != 0)
		goto fail;
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0 || setgroups(0, NULL) != 0 ||
	    setresgid(d.gid, d.gid, d.gid) != 0 || setresuid(d.uid, d.uid, d.uid) != 0 ||
	    prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0 || set_caps(KEEP_CAPS) != 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		err = buf_strf("becoming %s with CAP_SETUID and CAP_SETGID: %s", run_as,
			   strerror(errno));
		goto fail;
	}
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1) /* serve already gone */
		return 0;
	if (identity_filter(w.uid, w.gid, &err) != 0)
		goto fail;
	struct sigaction sa = { 0 };
	sa.sa_handler = on_sigchld;
	sigaction(SIGCHLD, &sa, NULL);
	char *argv[6];
	size_t n = 0;
	argv[n++] = (char *)"mxbait";
	argv[n++] = (char *)"analyze";
	argv[n++] = (char *)"--worker";
	if (psl && *psl) {
		argv[n++] = (char *)"--psl";
		argv[n++] = (char *)psl;
	}
	argv[n] = NULL;
	log_msg(LOG_INFO, NULL, "analyzer launcher (pid %ld): user %s with CAP_SETUID, "
		"CAP_SETGID and CAP_SETPCAP only; workers run as %s (uid %ld)", (long)getpid(),
		run_as, worker_user, (long)w.uid);
	unsigned alive = 0;
	for (;;) {
		reap(&alive);
		struct pollfd p = { .fd = ctl, .events = POLLIN };
		int k = poll(&p, 1, 1000);
		if (k < 0 && errno != EINTR)
			break;
		if (k <= 0)
			continue;
		char req;
		ssize_t r = read(ctl, &req, 1);
		if (r < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0)
			break; /* serve and its analyzer child gone */
		reap(&alive);
		int sp[2] = { -1, -1 };
		pid_t pid = -1;
		if (req == 'W' && alive < MAX_WORKERS &&
		    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0) {
			pid = fork();
			if (pid == 0)
				become_worker(sp[1], exe_fd, &w, argv);
			if (pid > 0)
				alive++;
			close(sp[1]);
		}
		if (pid <= 0)
			log_msg(LOG_WARNING, NULL, "analyzer launcher: cannot start a worker: %s",
				req != 'W' ? "bad request" : alive >= MAX_WORKERS ? "too many alive"
											: strerror(errno));
		/* a refusal is a reply without a descriptor */
		fdpass_send(ctl, pid > 0 ? (uint32_t)pid : 0, pid > 0 ? sp[0] : -1);
		if (sp[0] >= 0)
			close(sp[0]);
	}
	/* the workers end when their sockets close */
	return 0;
fail:
	log_msg(LOG_ERR, NULL, "analyzer launcher: %s", err ? err : "?");
	free(err);
	return 1;
}
