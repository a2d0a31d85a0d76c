/*
 * logwatch: follow the real server's log files and the systemd journal, in a thread
 * of its own, and hand what guard/logparse.h extracts to the guard on the event loop.
 *
 * Files (watch_log_files) are read from their end at start (old lines are history,
 * not attacks in progress), polled four times a second, and followed across rotation
 * (a new file at the path: the old one is read to its end first, the new one from its
 * start) and truncation (read again from the start).  The journal (watch_journal,
 * libsystemd's sd-journal; watch_journal_directory for a directory of journal files)
 * is read from its tail, entries of Postfix and Dovecot only.  A file that cannot be
 * opened is retried every poll and logged once.  The queue to the loop is bounded
 * (LOGWATCH_QUEUE_MAX observations); beyond it observations are counted and dropped.
 */
#ifndef MXB_GUARD_LOGWATCH_H
#define MXB_GUARD_LOGWATCH_H

#include <stdint.h>

struct event_base;
struct mxb_config;
struct guard;
struct logwatch;
struct log_obs;

#define LOGWATCH_QUEUE_MAX 20000

struct logwatch *logwatch_start(const struct mxb_config *cfg, struct event_base *base,
				struct guard *g, char **err_r);
void logwatch_stop(struct logwatch **lw);

/* Defined by the guard: one observation, on the loop thread. */
void guard_log_obs(struct guard *g, const struct log_obs *o);

#endif
