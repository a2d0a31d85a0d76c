/*
 * sandbox: what confines the processes after their privileged part, the analyzer
 * child above all (it parses hostile MIME, HTML and PDF).
 *
 * The analyzer child (`mxbait analyze --daemon`, exec'd by serve) calls
 * sandbox_enter_analyzer() once its libraries are loaded and before it reads a
 * message.  Afterwards, in this order of application:
 *   - it is not dumpable (no core file, no ptrace by same-uid processes: execve reset
 *     the flag the daemon had, so the child sets it again);
 *   - no new privileges, no capabilities (ambient, permitted, effective, inheritable
 *     cleared; the bounding set emptied when the process may do so);
 *   - Landlock (when the kernel has it; a warning names what is missing otherwise):
 *     it can read the system's libraries and data (/usr, /etc), its own /proc entry,
 *     the data directory's spool/new and mxbait.db (and -wal, -shm), read and write
 *     analysis.db and its -wal and -shm, and nothing else: no file can be created,
 *     removed or renamed anywhere, no TCP port bound or connected (ABI >= 4), no
 *     signal sent outside its own domain (ABI >= 6: the daemon cannot be signalled);
 *   - seccomp (libseccomp): an allow-list of the system calls the analyzer makes;
 *     any other kills the process (SIGSYS), and the daemon restarts it with its
 *     backoff.  No socket, no fork or exec, no ptrace, no mount.
 * analysis.db, -wal and -shm are made (in WAL mode) before Landlock applies, since the
 * analyzer may not create files afterwards; a connection stays open for the process's
 * life so that SQLite does not remove them.
 *
 * The daemon calls sandbox_drop_bounding_set() while it is still root (it then cannot
 * regain any capability, nor can the children it execs) and sandbox_clear_caps() once
 * its ports are bound (a daemon started with CAP_NET_BIND_SERVICE, as the systemd unit
 * does, gives it up).
 *
 * Test builds (meson -Dtest_hooks, on in sanitizer builds) honour
 * MXBAIT_TEST_SANDBOX_TRIGGER=FILE: when FILE exists at the analyzer's start it is
 * removed, and the analyzer makes a forbidden system call (socket) right after
 * entering the sandbox, so a test sees the filter kill it once.
 */
#ifndef MXB_CORE_SANDBOX_H
#define MXB_CORE_SANDBOX_H

#include <stdbool.h>
#include <stdint.h>

struct sandbox_report {
	int landlock_abi;     /* 0: not available */
	unsigned syscalls;    /* system calls allowed by the filter */
	unsigned bounding_dropped; /* capabilities removed from the bounding set */
};

/* Enter the analyzer's sandbox.  data_dir: the daemon's; psl_file: an extra file to
 * read (NULL or "" for none); with_worker: it talks to a launcher and workers
 * (analyzer_user), so sendmsg and recvmsg are allowed too.  0, or -1 with *err_r (malloc'd): the caller exits. */
int sandbox_enter_analyzer(const char *data_dir, const char *psl_file, bool with_worker,
			   struct sandbox_report *r, char **err_r);

/* The analysis worker's walls (run as analyzer_user, see analyze/worker.h): the same
 * as the analyzer's without any path into the data directory (it gets each message as
 * a descriptor), plus its socket calls (sendmsg, recvmsg) and alarm.  Test builds
 * honour MXBAIT_TEST_WORKER_PROBE=PATH[:PATH...] (the worker tries to open each PATH
 * afterwards and writes the outcome to stderr). */
int sandbox_enter_worker(const char *psl_file, struct sandbox_report *r, char **err_r);

/* Empty the capability bounding set when the process holds CAP_SETPCAP (root); the
 * count removed in *dropped_r.  0, or -1 with *err_r. */
int sandbox_drop_bounding_set(unsigned *dropped_r, char **err_r);
/* The same, keeping the capabilities whose bits are set in keep (1 << CAP_X). */
int sandbox_limit_bounding_set(uint64_t keep, unsigned *dropped_r, char **err_r);
/* Clear the ambient set and every capability of the process (permitted, effective,
 * inheritable).  0, or -1 with *err_r. */
int sandbox_clear_caps(char **err_r);

/* The Landlock ABI version of the running kernel (0: none). */
int sandbox_landlock_abi(void);

#endif
