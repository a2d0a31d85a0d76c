/*
 * anlaunch: the analyzer launcher, which starts analysis workers as analyzer_user
 * (docs/DESIGN.md, "Analyzer sandbox").
 *
 * Starting a process as another user takes CAP_SETUID and CAP_SETGID, and the network
 * process must never hold them.  So serve, while still root and before it drops to
 * `user`, forks and execs the launcher (`mxbait analyze --launcher`, a fresh image:
 * nothing of the daemon's memory, no secret or TLS key) with one end of a socketpair;
 * the other end is handed to every analyzer child serve starts.  The launcher:
 *   - empties its bounding set but for CAP_SETUID, CAP_SETGID and CAP_SETPCAP, becomes
 *     the daemon's user with only those three capabilities (no DAC override, no
 *     network, no ptrace), not dumpable, no new privileges;
 *   - loads a seccomp filter that kills it on any change of identity other than to
 *     analyzer_user (setresuid/setresgid only with the worker's ids, setgroups only
 *     to none, setuid/setgid and the rest of the family never): whoever took control
 *     of it could become the worker's account and no other;
 *   - reads one byte per request and parses nothing else; for each it makes a
 *     socketpair and forks: the child empties its bounding set (CAP_SETPCAP, the
 *     reason it is kept), clears its groups, becomes analyzer_user, clears every
 *     capability and execs `mxbait analyze --worker` (from a descriptor of its own
 *     binary opened at start, so no path needs to be reachable by analyzer_user); the
 *     launcher sends the other end and the worker's pid back (SCM_RIGHTS);
 *   - reaps its workers and logs how each ended ("killed by its system-call filter"
 *     for SIGSYS); it ends when the control socket closes (serve and its analyzer
 *     child gone) or its parent dies.
 * Started as its account rather than root (systemd's User= with CAP_SETUID, CAP_SETGID
 * and CAP_SETPCAP granted by the unit), serve forks the launcher the same way, the three
 * raised as ambient capabilities in the child so that they cross the exec, and then
 * drops them from every set of its own (core/startcaps.h says which capability goes
 * to which helper, and when serve gives each up).
 * The launcher cannot be restarted once serve has dropped root: if it dies, serve
 * logs it and analysis waits for a restart of the daemon.
 */
#ifndef MXB_CORE_ANLAUNCH_H
#define MXB_CORE_ANLAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct mxb_config;

/* serve, as root before dropping to cfg->user, or as its account with the three
 * capabilities: start the launcher when cfg->analyzer_user is set (analyzer on or
 * off: a reload may turn it on).  will_drop: serve runs as root and is about to become
 * cfg->user (root without it is refused).  0 with *ctl_r (-1 when nothing was started) and *pid_r, or -1 with
 * *err_r (malloc'd). */
int anlaunch_start(const struct mxb_config *cfg, bool will_drop, int *ctl_r, pid_t *pid_r,
		   char **err_r);

/* serve, at shutdown (after its analyzer child stopped): close the control socket,
 * which ends the launcher, and reap it (SIGKILL after 2 s). */
void anlaunch_stop(int *ctl, pid_t *pid);

/* The launcher process (`mxbait analyze --launcher`): ctl its control socket.
 * Returns the exit status. */
int anlaunch_main(int ctl, const char *worker_user, const char *run_as, const char *psl);

/* What `mxbait check` and serve say about analyzer_user: NULL when it is usable
 * beside daemon_user, the account mxbait runs as (NULL or "": not known, only the
 * account itself is checked), else why not (malloc'd). */
char *anlaunch_check_user(const char *analyzer_user, const char *daemon_user);

/* The account serve runs as, into name: user when set, else the one it was started as
 * unless that is root (false: serve stays root, no launcher). */
bool anlaunch_daemon_account(const char *user, char *name, size_t size);

#endif
