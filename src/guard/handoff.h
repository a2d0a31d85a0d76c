/*
 * handoff: nothing legitimate lost (issue 9 item 7).  A mail server that the guard
 * diverted wrongly still delivers: mail captured on a connection that was aimed at the
 * real port 25 (the connect event's orig_dst_port, SO_ORIGINAL_DST) is handed to the
 * real MTA (backend_mta: SMTP or LMTP, TCP or a unix socket) for the recipients in the
 * protected domains (local_domains) only; every other recipient, and everything that
 * came in on another port, stays captured and never leaves.
 *
 * A separate process (`mxbait handoff --daemon`, started and restarted by `mxbait
 * serve` after it dropped privileges, like the analyzer): the network-facing daemon
 * itself never connects anywhere; this worker connects only to backend_mta.  It reads
 * mxbait.db read-only (messages of diverted port-25 sessions, committed by the event
 * store) and keeps its own state in DATA_DIR/handoff.db (synchronous=FULL): a message
 * is recorded pending before any delivery, marked sending before it connects and
 * delivered only after the backend's final 250.  Temporary failures retry with backoff
 * (1 min doubling to 1 h, for 5 days, then failed); permanent ones are failed.  After a
 * crash a message found "sending" is sent again and logged as a possible duplicate:
 * the only duplicate there can be is a logged one, and nothing is lost silently.
 */
#ifndef MXB_GUARD_HANDOFF_H
#define MXB_GUARD_HANDOFF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/config.h"

struct handoff_config {
	const char *data_dir;
	struct mxb_backend backend;
	const char *helo;               /* our name in EHLO/LHLO */
	const char *const *domains;     /* the protected domains */
	size_t n_domains;
	unsigned poll_ms;               /* how often to look for new messages: 1000 */
	bool once;                      /* one pass, then return (tests) */
};

/* The worker's loop; returns at SIGTERM (0) or on a fatal error (1). */
int handoff_run(const struct handoff_config *cfg);

#endif
