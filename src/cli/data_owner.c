/*
 * data_owner: see data_owner.h.  The owner of the directory wins over `user`: under
 * systemd `user` is empty and StateDirectory= made the directory the service's.
 */
#include "cli/data_owner.h"

#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/privdrop.h"

int cli_become_data_owner(const char *cmd, const char *data_dir, const char *user)
{
	if (geteuid() != 0)
		return 0;
	struct privdrop_user u = {0};
	char *err = NULL;
	struct stat st;
	if (data_dir && stat(data_dir, &st) == 0 && st.st_uid != 0) {
		u.uid = st.st_uid;
		u.gid = st.st_gid;
		const struct passwd *pw = getpwuid(st.st_uid);
		if (pw)
			snprintf(u.name, sizeof(u.name), "%s", pw->pw_name);
		else
			snprintf(u.name, sizeof(u.name), "uid %ld", (long)st.st_uid);
	} else if (user && *user) {
		if (privdrop_lookup(user, &u, &err) < 0)
			goto fail;
	} else {
		return 0; /* root's data: nothing to keep apart */
	}
	if (privdrop_become(&u, &err) == 0)
		return 0;
fail:
	fprintf(stderr, "mxbait %s: %s\n", cmd, err ? err : "cannot become the data's owner");
	free(err);
	return -1;
}
