/*
 * data_owner: an administrator's command that writes into the data directory (`mxbait
 * keys --generate`, `mxbait peers ...`) run as root acts as the account the data
 * belongs to, so what it creates (the feed key, intel.db's rows and journals) stays
 * readable and writable by the service that uses it (the reporter runs as `User=mxbait`
 * under systemd, or as `user` when started as root).
 *
 * Promise: cli_become_data_owner() returns 0 without changing anything when the process
 * is not root, or when the data directory is root's and no `user` is configured;
 * otherwise 0 after privdrop_become() to the directory's owner (or, when it does not
 * exist yet, `user`), or -1 with a message on stderr (the caller exits).
 */
#ifndef MXB_CLI_DATA_OWNER_H
#define MXB_CLI_DATA_OWNER_H

int cli_become_data_owner(const char *cmd, const char *data_dir, const char *user);

#endif
