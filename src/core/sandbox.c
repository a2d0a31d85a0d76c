/*
 * sandbox: capabilities, Landlock and seccomp for the analyzer child and the daemon
 * (see sandbox.h).
 *
 * Why these tools: seccomp (through libseccomp, which keeps the filter readable and
 * portable across architectures) takes away whole kernel interfaces the analyzer never
 * needs; Landlock, unlike a mount namespace or chroot, needs no privilege, works for an
 * unprivileged process started by an unprivileged daemon, and restricts by file
 * hierarchy, which is the rule we want ("write analysis.db, read the spool").  The
 * kernel headers of Debian 12 predate Landlock ABI 3, so the newer constants and the
 * larger ruleset attribute are spelt here; the ABI the kernel reports decides what is
 * asked for.
 */
#include "core/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <seccomp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include "util/buf.h"

#ifndef LANDLOCK_ACCESS_FS_REFER
#define LANDLOCK_ACCESS_FS_REFER (1ULL << 13)
#endif
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define LL_NET_BIND_TCP (1ULL << 0)
#define LL_NET_CONNECT_TCP (1ULL << 1)
#define LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define LL_SCOPE_SIGNAL (1ULL << 1)
#ifndef LANDLOCK_CREATE_RULESET_VERSION
#define LANDLOCK_CREATE_RULESET_VERSION (1U << 0)
#endif

/* struct landlock_ruleset_attr as of ABI 6; its size tells the kernel which fields
 * we fill. */
struct ll_ruleset_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};

#define LL_READ (LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR)

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define MXB_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(undefined_behavior_sanitizer)
#define MXB_SANITIZED 1
#endif
#endif

/* ---- capabilities ---- */

static unsigned cap_last(void)
{
	unsigned last = CAP_LAST_CAP;
	FILE *f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		unsigned v;
		if (fscanf(f, "%u", &v) == 1 && v < 64)
			last = v;
		fclose(f);
	}
	return last;
}

int sandbox_drop_bounding_set(unsigned *dropped_r, char **err_r)
{
	return sandbox_limit_bounding_set(0, dropped_r, err_r);
}

int sandbox_limit_bounding_set(uint64_t keep, unsigned *dropped_r, char **err_r)
{
	*err_r = NULL;
	*dropped_r = 0;
	if (prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) != 1)
		return 0;
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	if (syscall(SYS_capget, &hdr, data) != 0) {
		*err_r = buf_strf("capget: %s", strerror(errno));
		return -1;
	}
	if (!(data[0].effective & (1U << CAP_SETPCAP)))
		return 0; /* not ours to change: whoever started us decided */
	unsigned last = cap_last();
	for (unsigned c = 0; c <= last; c++) {
		int in = prctl(PR_CAPBSET_READ, c, 0, 0, 0);
		if (in != 1 || (keep & (1ULL << c)))
			continue;
		if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0) {
			*err_r = buf_strf("PR_CAPBSET_DROP(%u): %s", c, strerror(errno));
			return -1;
		}
		(*dropped_r)++;
	}
	return 0;
}

int sandbox_clear_caps(char **err_r)
{
	*err_r = NULL;
	/* EINVAL: a kernel without ambient capabilities (< 4.3) has none to clear */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
		*err_r = buf_strf("PR_CAP_AMBIENT_CLEAR_ALL: %s", strerror(errno));
		return -1;
	}
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) != 0) {
		*err_r = buf_strf("capset: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- Landlock ---- */

int sandbox_landlock_abi(void)
{
	long v = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	return v < 0 ? 0 : (int)v;
}

static uint64_t fs_rights(int abi)
{
	uint64_t r = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		     LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_READ_DIR |
		     LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
		     LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
		     LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
		     LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
		     LANDLOCK_ACCESS_FS_MAKE_SYM;
	if (abi >= 2)
		r |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		r |= LANDLOCK_ACCESS_FS_TRUNCATE;
	if (abi >= 5)
		r |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
	return r;
}

/* Allow `access` beneath path (a directory) or on it (a file).  A path that does not
 * exist is skipped: nothing there to allow. */
static int ll_allow(int ruleset, const char *path, uint64_t access, uint64_t handled,
		    char **err_r)
{
	int fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return 0;
		*err_r = buf_strf("landlock: %s: %s", path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*err_r = buf_strf("landlock: %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) /* rights that make sense on a file only */
		access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
			  LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
			  LANDLOCK_ACCESS_FS_IOCTL_DEV;
	struct landlock_path_beneath_attr pb = {
		.allowed_access = access & handled,
		.parent_fd = fd,
	};
	long rc = syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
	int e = errno;
	close(fd);
	if (rc != 0) {
		*err_r = buf_strf("landlock: rule for %s: %s", path, strerror(e));
		return -1;
	}
	return 0;
}

static int landlock_analyzer(int abi, const char *data_dir, const char *psl_file,
			     char **err_r)
{
	struct ll_ruleset_attr attr = { .handled_access_fs = fs_rights(abi) };
	size_t size = sizeof(uint64_t);
	if (abi >= 4) {
		attr.handled_access_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
		size = 2 * sizeof(uint64_t);
	}
	if (abi >= 6) {
		attr.scoped = LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL;
		size = sizeof(attr);
	}
	int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rs < 0) {
		*err_r = buf_strf("landlock_create_ruleset: %s", strerror(errno));
		return -1;
	}
	uint64_t h = attr.handled_access_fs;
	uint64_t rw = LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_WRITE_FILE |
		      LANDLOCK_ACCESS_FS_TRUNCATE;
	char self[64];
	snprintf(self, sizeof(self), "/proc/%ld", (long)getpid());
	struct buf p;
	buf_init(&p, 0);
	int rc = 0;
	/* the system: libraries loaded late (gconv for iconv), libmagic's and the public
	 * suffix list's data, time zones, locales; the process's own /proc entry and the
	 * CPU list glibc reads */
	const char *sys_read[] = { "/usr", "/etc", "/lib", "/lib64", self,
				   "/sys/devices/system/cpu", "/dev/null", "/dev/urandom" };
	for (size_t i = 0; rc == 0 && i < sizeof(sys_read) / sizeof(sys_read[0]); i++)
		rc = ll_allow(rs, sys_read[i], LL_READ, h, err_r);
	if (rc == 0 && psl_file && *psl_file)
		rc = ll_allow(rs, psl_file, LANDLOCK_ACCESS_FS_READ_FILE, h, err_r);
	/* the data directory: listable (SQLite opens it to sync), spool/new readable; the
	 * worker (no data_dir) gets no path into it at all */
	if (rc == 0 && data_dir)
		rc = ll_allow(rs, data_dir, LANDLOCK_ACCESS_FS_READ_DIR, h, err_r);
	const struct { const char *rel; uint64_t access; } data[] = {
		{ "spool/new", LL_READ },
		{ "mxbait.db", LANDLOCK_ACCESS_FS_READ_FILE },
		{ "mxbait.db-wal", LANDLOCK_ACCESS_FS_READ_FILE },
		{ "mxbait.db-shm", LANDLOCK_ACCESS_FS_READ_FILE },
		{ "analysis.db", rw },
		{ "analysis.db-wal", rw },
		{ "analysis.db-shm", rw },
	};
	for (size_t i = 0; rc == 0 && data_dir && i < sizeof(data) / sizeof(data[0]); i++) {
		buf_reset(&p);
		buf_printf(&p, "%s/%s", data_dir, data[i].rel);
		rc = ll_allow(rs, p.data, data[i].access, h, err_r);
	}
	buf_free(&p);
	if (rc == 0 && syscall(SYS_landlock_restrict_self, rs, 0) != 0) {
		*err_r = buf_strf("landlock_restrict_self: %s", strerror(errno));
		rc = -1;
	}
	close(rs);
	return rc;
}

/* ---- seccomp ---- */

/* What `mxbait analyze --daemon` calls, found with strace over the analyzer test
 * corpus, a SIGTERM and a restart: file I/O (SQLite, mmap'd messages, inotify), memory,
 * time, signals, and what glibc does on its own (futex, rseq, getrandom). */
static const char *const analyzer_syscalls[] = {
	"read", "write", "readv", "writev", "pread64", "pwrite64", "lseek", "close",
	"fstat", "newfstatat", "stat", "lstat", "statx", "openat", "open", "access",
	"faccessat", "faccessat2", "readlink", "readlinkat", "getdents64", "getdents", "getcwd",
	"fcntl", "fsync", "fdatasync", "ftruncate", "unlink", "unlinkat", "dup", "dup3",
	"fchown", /* SQLite, as root, gives a journal its database's owner (no CAP_CHOWN left) */
	"mmap", "munmap", "mremap", "mprotect", "madvise", "brk",
	"futex", "set_robust_list", "get_robust_list", "rseq", "sched_yield",
	"sched_getaffinity", "set_tid_address",
	"clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday",
	"time",
	"getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid",
	"getresuid", "getresgid", "getgroups",
	"exit", "exit_group", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn",
	"sigaltstack", "restart_syscall",
	"prlimit64", "getrlimit", "uname", "sysinfo", "getrandom", "getrusage",
	"inotify_init1", "inotify_add_watch", "inotify_rm_watch", "poll", "ppoll",
};

/* What the sanitizer runtimes of the test builds need on top: LeakSanitizer stops the
 * world from a cloned tracer with ptrace, reads /proc/self, and a report may start a
 * symbolizer.  Never in a release build. */
static const char *const sanitizer_syscalls[] = {
	"clone", "clone3", "ptrace", "wait4", "waitid", "prctl", "kill", "tgkill", "tkill",
	"pipe", "pipe2", "dup2", "execve", "vfork", "fork", "process_vm_readv",
	"sched_setaffinity", "mlock", "munlock", "setrlimit", "arch_prctl", "getpgid",
	"getsid", "personality",
};

static int seccomp_add(scmp_filter_ctx f, const char *name, unsigned *n, char **err_r)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* not a system call on this architecture */
	int rc = seccomp_rule_add(f, SCMP_ACT_ALLOW, nr, 0);
	if (rc < 0) {
		*err_r = buf_strf("seccomp: allow %s: %s", name, strerror(-rc));
		return -1;
	}
	(*n)++;
	return 0;
}

/* The worker and, with analyzer_user, the daemon side, on top: their sockets (the
 * request with the message's descriptor, the result; the launcher's answer) and the
 * alarm that bounds one analysis.  Still no socket(), so neither can open a
 * connection of its own. */
static const char *const worker_syscalls[] = {
	"recvmsg", "sendmsg", "recvfrom", "sendto", "alarm", "setitimer",
};

static int seccomp_analyzer(bool worker, unsigned *n_r, char **err_r)
{
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!f) {
		*err_r = buf_strf("seccomp_init failed");
		return -1;
	}
	unsigned n = 0;
	int rc = 0;
	for (size_t i = 0; rc == 0 && i < sizeof(analyzer_syscalls) / sizeof(char *); i++)
		rc = seccomp_add(f, analyzer_syscalls[i], &n, err_r);
	for (size_t i = 0; worker && rc == 0 && i < sizeof(worker_syscalls) / sizeof(char *); i++)
		rc = seccomp_add(f, worker_syscalls[i], &n, err_r);
#ifdef MXB_SANITIZED
	for (size_t i = 0; rc == 0 && i < sizeof(sanitizer_syscalls) / sizeof(char *); i++)
		rc = seccomp_add(f, sanitizer_syscalls[i], &n, err_r);
#else
	(void)sanitizer_syscalls;
	/* abort() and raise() signal this very thread group only */
	if (rc == 0) {
		const struct scmp_arg_cmp own = { .arg = 0, .op = SCMP_CMP_EQ,
						  .datum_a = (scmp_datum_t)getpid(), .datum_b = 0 };
		int r = seccomp_rule_add_array(f, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, &own);
		if (r < 0) {
			*err_r = buf_strf("seccomp: tgkill: %s", strerror(-r));
			rc = -1;
		} else {
			n++;
		}
	}
#endif
	/* isatty() on stderr, and nothing else of ioctl */
	if (rc == 0) {
		const struct scmp_arg_cmp tcgets = { .arg = 1, .op = SCMP_CMP_EQ,
						     .datum_a = (scmp_datum_t)TCGETS, .datum_b = 0 };
		int r = seccomp_rule_add_array(f, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, &tcgets);
		if (r < 0) {
			*err_r = buf_strf("seccomp: ioctl: %s", strerror(-r));
			rc = -1;
		} else {
			n++;
		}
	}
	if (rc == 0) {
		int r = seccomp_load(f);
		if (r < 0) {
			*err_r = buf_strf("seccomp_load: %s", strerror(-r));
			rc = -1;
		}
	}
	seccomp_release(f);
	*n_r = n;
	return rc;
}

/* ---- analysis.db before the walls go up ---- */

static sqlite3 *keep_open; /* for the process's life: SQLite keeps -wal and -shm */

static int prepare_analysis_db(const char *data_dir, char **err_r)
{
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/analysis.db", data_dir);
	int rc = -1;
	if (sqlite3_open_v2(p.data, &keep_open, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
			    NULL) != SQLITE_OK) {
		*err_r = buf_strf("%s: %s", p.data, keep_open ? sqlite3_errmsg(keep_open) : "?");
	} else {
		sqlite3_busy_timeout(keep_open, 5000);
		/* WAL first (persistent), then a read: -wal and -shm exist from now on */
		if (sqlite3_exec(keep_open, "PRAGMA journal_mode=WAL; "
					    "SELECT count(*) FROM sqlite_master",
				 NULL, NULL, NULL) != SQLITE_OK)
			*err_r = buf_strf("%s: %s", p.data, sqlite3_errmsg(keep_open));
		else
			rc = 0;
	}
	buf_free(&p);
	return rc;
}

#ifdef MXB_TEST_HOOKS
static bool test_trigger(void)
{
	const char *t = getenv("MXBAIT_TEST_SANDBOX_TRIGGER");
	return t && *t && unlink(t) == 0;
}
#endif

/* What both analyzer processes do first: not dumpable (no core, no ptrace by the same
 * uid), no new privileges by exec, an empty bounding set, no capabilities. */
static int lock_process(struct sandbox_report *r, char **err_r)
{
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		*err_r = buf_strf("PR_SET_DUMPABLE: %s", strerror(errno));
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		*err_r = buf_strf("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	if (sandbox_drop_bounding_set(&r->bounding_dropped, err_r) != 0 ||
	    sandbox_clear_caps(err_r) != 0)
		return -1;
	return 0;
}

int sandbox_enter_analyzer(const char *data_dir, const char *psl_file, bool with_worker,
			   struct sandbox_report *r, char **err_r)
{
	*err_r = NULL;
	memset(r, 0, sizeof(*r));
#ifdef MXB_TEST_HOOKS
	bool violate = test_trigger();
#endif
	if (lock_process(r, err_r) != 0)
		return -1;
	if (prepare_analysis_db(data_dir, err_r) != 0)
		return -1;
	r->landlock_abi = sandbox_landlock_abi();
	if (r->landlock_abi > 0 && landlock_analyzer(r->landlock_abi, data_dir, psl_file,
						     err_r) != 0)
		return -1;
	if (seccomp_analyzer(with_worker, &r->syscalls, err_r) != 0)
		return -1;
#ifdef MXB_TEST_HOOKS
	if (violate) {
		int s = socket(AF_INET, SOCK_STREAM, 0); /* not on the list: SIGSYS */
		if (s >= 0)
			close(s);
		*err_r = buf_strf("test hook: socket() was not stopped by the filter");
		return -1;
	}
#endif
	return 0;
}

int sandbox_enter_worker(const char *psl_file, struct sandbox_report *r, char **err_r)
{
	*err_r = NULL;
	memset(r, 0, sizeof(*r));
	/* the launcher emptied the bounding set before it changed to this uid; this only
	 * counts what may be left (nothing, unless started by hand as root) */
	if (lock_process(r, err_r) != 0)
		return -1;
	r->landlock_abi = sandbox_landlock_abi();
	if (r->landlock_abi > 0 && landlock_analyzer(r->landlock_abi, NULL, psl_file,
						     err_r) != 0)
		return -1;
	if (seccomp_analyzer(true, &r->syscalls, err_r) != 0)
		return -1;
#ifdef MXB_TEST_HOOKS
	/* MXBAIT_TEST_WORKER_PROBE=PATH[:PATH...]: try to open each PATH (a spool file; a
	 * world-readable file Landlock alone keeps out) from inside the walls and say what
	 * happened, for the test that proves it cannot */
	const char *probes = getenv("MXBAIT_TEST_WORKER_PROBE");
	for (const char *p = probes; p && *p;) {
		size_t n = strcspn(p, ":");
		char path[4096];
		snprintf(path, sizeof(path), "%.*s", (int)(n < sizeof(path) ? n : 0), p);
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			fprintf(stderr, "mxbait analyzer worker: probe: opened %s\n", path);
			close(fd);
		} else {
			fprintf(stderr, "mxbait analyzer worker: probe: open %s: %s\n", path,
				strerror(errno));
		}
		p += n + (p[n] == ':');
	}
#endif
	return 0;
}
