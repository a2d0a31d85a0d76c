/*
 * worker: the analysis worker and the daemon side's half of its protocol (see
 * analyzer.h, "With analyzer_user", and wire.h for the bytes).
 *
 * The worker runs as analyzer_user with no path into the data directory: it gets each
 * message as an open read-only descriptor (SCM_RIGHTS) with a request (limits and
 * envelope), analyses it, and answers with one length-prefixed result.  One request
 * at a time; end of input ends it.  The daemon side gets a fresh worker from the
 * launcher (core/anlaunch.h) over its control socket.
 */
#ifndef MXB_ANALYZE_WORKER_H
#define MXB_ANALYZE_WORKER_H

#include <sys/types.h>

#include "analyze/analyze.h"

/* A message gets this long in the worker (alarm: it is killed) and, with a margin, on
 * the daemon side (it gives up on that worker). */
#define WORKER_TIMEOUT_S 120

/* The worker's loop on socket fd.  0 at end of input, -1 on a broken request. */
int worker_serve(int fd);

/* Ask the launcher on ctl for a new worker: its socket (close-on-exec), *pid_r its pid;
 * -1 when the launcher is gone or refuses. */
int worker_spawn(int ctl, pid_t *pid_r);
/* Analyse the message open on msg_fd in the worker on sock.  The decoded, validated
 * analysis, or NULL with *err_r (static text): the worker died, timed out or sent
 * something wrong (the caller closes sock and takes a new worker). */
struct analysis *worker_analyze(int sock, int msg_fd, const struct an_envelope *env,
				const struct analyze_limits *lim, const char **err_r);

#endif
