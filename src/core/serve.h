/*
 * serve: the daemon, `mxbait serve`.
 *
 * Creates the data directory, opens the spool and the event store, makes the TLS
 * context (self-signed certificate on first start), binds every listener and runs the
 * event loop in this thread until SIGINT or SIGTERM.  Shutdown is graceful: accepting
 * stops, sessions end with disconnect reason "shutdown" (commits in flight finish
 * first), the event store is flushed and the spool closed.  The daemon never opens an
 * outbound connection.
 */
#ifndef MXB_CORE_SERVE_H
#define MXB_CORE_SERVE_H

struct mxb_config;

/* Returns the process exit code: 0 after a clean shutdown, 1 on a start-up error
 * (already printed to stderr as "mxbait: ..."). */
int serve_run(const struct mxb_config *cfg);

#endif
