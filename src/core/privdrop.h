/*
 * privdrop: become an unprivileged user after the privileged part of start-up, the
 * way Postfix and OpenSMTPD do (bind low ports, read keys as root; then run as the
 * configured account).
 *
 * Promises: privdrop_chown_tree() hands a directory and what lies inside it to the
 * user without following a symbolic link and without leaving the file system, to a
 * bounded depth; privdrop_become() either returns 0 with real, effective and saved
 * uid and gid all the user's, no supplementary groups, setuid(0) failing, no new
 * privileges and no core dumps, or returns -1 (the caller must exit: a half-dropped
 * process is never left running).
 */
#ifndef MXB_CORE_PRIVDROP_H
#define MXB_CORE_PRIVDROP_H

#include <sys/types.h>

struct privdrop_user {
	uid_t uid;
	gid_t gid;       /* the account's primary group */
	char name[64];
};

/* Look name up (getpwnam).  0, or -1 with *err_r set. */
int privdrop_lookup(const char *name, struct privdrop_user *u_r, char **err_r);
/* chown path (a directory) and everything below it to u, with lchown semantics, at
 * most PRIVDROP_MAX_DEPTH levels deep, staying on path's file system.  0, or -1 with
 * *err_r set. */
#define PRIVDROP_MAX_DEPTH 8
int privdrop_chown_tree(const char *path, const struct privdrop_user *u, char **err_r);
/* The same walk, also done by privdrop_chown_tree(): group and other permission bits
 * removed from path and from every directory and single-link regular file below it
 * (directories 0700, files 0600), logged with the count.  u may be NULL in
 * privdrop_chown_tree() (modes only); privdrop_tighten_tree() is that call. */
int privdrop_tighten_tree(const char *path, char **err_r);
/* setgroups(0), setresgid, setresuid, then verify; PR_SET_NO_NEW_PRIVS and
 * PR_SET_DUMPABLE 0.  0, or -1 with *err_r set. */
int privdrop_become(const struct privdrop_user *u, char **err_r);

#endif
