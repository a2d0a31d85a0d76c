/*
 * analyzer: the analyzer process mode.  Takes every message in <data_dir>/spool/new
 * that analysis.db has not recorded yet, analyses and stores it, then waits for new
 * arrivals (inotify on new/, or a 1 s poll when inotify is unavailable), until *stop
 * becomes non-zero (set it from a SIGTERM handler).
 *
 * Meant to run as its own unprivileged process (mxbait serve forks it; mxbait analyze
 * --daemon runs it in the foreground): hostile MIME and HTML are parsed only here, and
 * the network-facing loop never waits on it.  Idempotent: a crash or restart redoes at
 * most the message in progress, and redoing it gives the same rows.
 */
#ifndef MXB_ANALYZE_ANALYZER_H
#define MXB_ANALYZE_ANALYZER_H

#include <signal.h>
#include <stddef.h>

struct analyze_limits;

/* Returns 0 after *stop was set, -1 on a fatal error (analysis.db cannot be opened,
 * spool/new cannot be read); messages go to stderr. */
int analyzer_run(const char *data_dir, volatile sig_atomic_t *stop);
/* The same with limits from the configuration (NULL: defaults).  A newer public suffix
 * list is loaded before either call with url_psl_init(path) (analyze/url.h). */
int analyzer_run_with(const char *data_dir, const struct analyze_limits *lim,
		      volatile sig_atomic_t *stop);

/* With analyzer_user (docs/DESIGN.md, "Analyzer sandbox"): this process keeps the data
 * directory but parses nothing; each message is opened here read-only and its
 * descriptor handed to a worker running as analyzer_user, which a launcher (ctl: its
 * control socket, core/anlaunch.h) starts on request; the worker's result is decoded
 * with every bound checked (wire.h) and stored here.  A worker that dies or answers
 * wrong is replaced (backoff 1 s doubling to 60 s, reset by a success); a message on
 * which two workers failed is marked done without a row (spool_done.message 0) and
 * the next ones go on.  Call before analyzer_run_with(). */
void analyzer_set_launcher(int ctl);

/* One pass over spool/new (no waiting): how many messages were analysed, or -1. */
int analyzer_pass(const char *data_dir, const struct analyze_limits *lim);

#endif
