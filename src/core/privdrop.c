/*
 * privdrop: the switch to the configured unprivileged user (see privdrop.h).
 *
 * Why each step: chown first, while still root, so that what earlier runs (or the
 * privileged part of this one) left root-owned in the data directory stays usable;
 * no symbolic link is followed and a regular file with more than one link is left
 * alone, so a link planted in the data directory cannot hand a file elsewhere (say
 * /etc/shadow) to the user.  Then supplementary groups, gid, uid, in that order (the
 * gid cannot change once the uid is gone), each checked, because a silently failed
 * setuid would leave the process root while every log says otherwise.
 */
#include "core/privdrop.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"
#include "util/buf.h"

int privdrop_lookup(const char *name, struct privdrop_user *u_r, char **err_r)
{
	*err_r = NULL;
	memset(u_r, 0, sizeof(*u_r));
	if (strlen(name) >= sizeof(u_r->name)) {
		*err_r = buf_strf("user name too long");
		return -1;
	}
	errno = 0;
	struct passwd *pw = getpwnam(name);
	if (!pw) {
		*err_r = errno ? buf_strf("cannot look up user %s: %s", name, strerror(errno))
			       : buf_strf("no such user: %s", name);
		return -1;
	}
	u_r->uid = pw->pw_uid;
	u_r->gid = pw->pw_gid;
	snprintf(u_r->name, sizeof(u_r->name), "%s", name);
	return 0;
}

struct walk {
	const struct privdrop_user *u; /* NULL: modes only */
	dev_t dev;
	unsigned long changed, skipped, tightened;
	char *err;
};

/* Group and other bits off (0755 -> 0700, 0644 -> 0600).  A file we may not change
 * (another owner, when not root) is a warning, not an error: the daemon still runs. */
static int tighten_fd(struct walk *w, int fd, const struct stat *st, const char *what)
{
	if (!(st->st_mode & 077))
		return 0;
	if (fchmod(fd, st->st_mode & 07700) != 0) {
		log_msg(LOG_WARNING, NULL, "cannot tighten the mode of %s (%04o): %s", what,
			(unsigned)(st->st_mode & 07777), strerror(errno));
		return 0;
	}
	w->tightened++;
	return 0;
}

static int tighten_at(struct walk *w, int dirfd, const char *name, const struct stat *st,
		      const char *what)
{
	if (!(st->st_mode & 077))
		return 0;
	/* fchmodat does not follow the link it was given: the walk checked it is a
	 * regular file with one link, and O_NOFOLLOW below makes sure it still is */
	int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		if (errno != ENOENT)
			log_msg(LOG_WARNING, NULL, "cannot tighten the mode of %s: %s", what,
				strerror(errno));
		return 0;
	}
	struct stat now;
	if (fstat(fd, &now) == 0 && S_ISREG(now.st_mode) && now.st_nlink == 1 &&
	    now.st_ino == st->st_ino && now.st_dev == st->st_dev)
		tighten_fd(w, fd, &now, what);
	close(fd);
	return 0;
}

static int chown_fd_if_needed(struct walk *w, int fd, const struct stat *st, const char *what)
{
	tighten_fd(w, fd, st, what);
	if (!w->u || (st->st_uid == w->u->uid && st->st_gid == w->u->gid))
		return 0;
	if (fchown(fd, w->u->uid, w->u->gid) != 0) {
		w->err = buf_strf("cannot chown %s: %s", what, strerror(errno));
		return -1;
	}
	w->changed++;
	return 0;
}

/* dirfd is consumed (closedir). */
static int walk_dir(struct walk *w, int dirfd, const char *path, unsigned depth)
{
	DIR *d = fdopendir(dirfd);
	if (!d) {
		w->err = buf_strf("cannot read %s: %s", path, strerror(errno));
		close(dirfd);
		return -1;
	}
	int rc = 0;
	struct dirent *de = NULL;
	struct buf sub;
	buf_init(&sub, 0);
	while (rc == 0 && (errno = 0, de = readdir(d)) != NULL) {
		const char *n = de->d_name;
		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		buf_reset(&sub);
		buf_printf(&sub, "%s/%s", path, n);
		struct stat st;
		if (fstatat(dirfd, n, &st, AT_SYMLINK_NOFOLLOW) != 0) {
			if (errno == ENOENT)
				continue; /* gone meanwhile */
			w->err = buf_strf("cannot stat %s: %s", sub.data, strerror(errno));
			rc = -1;
			break;
		}
		if (st.st_dev != w->dev || (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) ||
		    (S_ISREG(st.st_mode) && st.st_nlink != 1)) {
			w->skipped++; /* another file system, a link, a device: not ours */
			continue;
		}
		if (S_ISREG(st.st_mode)) {
			tighten_at(w, dirfd, n, &st, sub.data);
			if (!w->u)
				continue;
			if ((st.st_uid != w->u->uid || st.st_gid != w->u->gid) &&
			    fchownat(dirfd, n, w->u->uid, w->u->gid, AT_SYMLINK_NOFOLLOW) != 0) {
				w->err = buf_strf("cannot chown %s: %s", sub.data, strerror(errno));
				rc = -1;
			} else if (st.st_uid != w->u->uid || st.st_gid != w->u->gid) {
				w->changed++;
			}
			continue;
		}
		/* a directory: open it without following a link swapped in meanwhile */
		if (depth >= PRIVDROP_MAX_DEPTH) {
			w->skipped++;
			continue;
		}
		int fd = openat(dirfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				continue;
			w->err = buf_strf("cannot open %s: %s", sub.data, strerror(errno));
			rc = -1;
			break;
		}
		struct stat dst;
		if (fstat(fd, &dst) != 0 || dst.st_dev != w->dev) {
			close(fd);
			w->skipped++;
			continue;
		}
		if (chown_fd_if_needed(w, fd, &dst, sub.data) != 0) {
			close(fd);
			rc = -1;
			break;
		}
		rc = walk_dir(w, fd, sub.data, depth + 1);
	}
	if (rc == 0 && errno != 0 && !de) {
		w->err = buf_strf("cannot read %s: %s", path, strerror(errno));
		rc = -1;
	}
	buf_free(&sub);
	closedir(d);
	return rc;
}

int privdrop_chown_tree(const char *path, const struct privdrop_user *u, char **err_r)
{
	*err_r = NULL;
	/* The top directory is the operator's path and may itself be a link (to /srv/...);
	 * nothing below it is followed. */
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*err_r = buf_strf("cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	struct walk w = { .u = u };
	struct stat st;
	if (fstat(fd, &st) != 0) {
		*err_r = buf_strf("cannot stat %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	w.dev = st.st_dev;
	if (chown_fd_if_needed(&w, fd, &st, path) != 0) {
		close(fd);
		*err_r = w.err;
		return -1;
	}
	if (walk_dir(&w, fd, path, 1) != 0) {
		*err_r = w.err;
		return -1;
	}
	if (u && (w.changed || w.skipped))
		log_msg(LOG_INFO, NULL, "%s: %lu entries handed to user %s, %lu left alone "
			"(links, other file systems, special files)", path, w.changed, u->name,
			w.skipped);
	if (w.tightened)
		log_msg(LOG_WARNING, NULL, "%s: tightened the mode of %lu entries that other "
			"users could read or enter (directories now 0700, files 0600)", path,
			w.tightened);
	return 0;
}

int privdrop_tighten_tree(const char *path, char **err_r)
{
	return privdrop_chown_tree(path, NULL, err_r);
}

int privdrop_become(const struct privdrop_user *u, char **err_r)
{
	*err_r = NULL;
	if (u->uid == 0) {
		*err_r = buf_strf("user %s has uid 0: not an unprivileged account", u->name);
		return -1;
	}
	if (setgroups(0, NULL) != 0) {
		*err_r = buf_strf("setgroups: %s", strerror(errno));
		return -1;
	}
	if (setresgid(u->gid, u->gid, u->gid) != 0) {
		*err_r = buf_strf("setresgid(%ld): %s", (long)u->gid, strerror(errno));
		return -1;
	}
	if (setresuid(u->uid, u->uid, u->uid) != 0) {
		*err_r = buf_strf("setresuid(%ld): %s", (long)u->uid, strerror(errno));
		return -1;
	}
	/* Trust nothing: read every id back and make sure root cannot be regained. */
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	if (getresuid(&ru, &eu, &su) != 0 || getresgid(&rg, &eg, &sg) != 0 ||
	    ru != u->uid || eu != u->uid || su != u->uid || rg != u->gid || eg != u->gid ||
	    sg != u->gid) {
		*err_r = buf_strf("the user and group ids did not change to %s", u->name);
		return -1;
	}
	if (getgroups(0, NULL) != 0) {
		*err_r = buf_strf("supplementary groups are still set");
		return -1;
	}
	if (setuid(0) == 0 || seteuid(0) == 0) {
		*err_r = buf_strf("setuid(0) still succeeds after dropping to %s", u->name);
		return -1;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		*err_r = buf_strf("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -1;
	}
	/* No core file of a process holding the secret and TLS key; also keeps other
	 * processes of the same user (the analyzer child) from ptrace-ing this one. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		*err_r = buf_strf("PR_SET_DUMPABLE: %s", strerror(errno));
		return -1;
	}
	return 0;
}
