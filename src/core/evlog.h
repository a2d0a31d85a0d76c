/*
 * evlog: the daemon log lines that events call for, so that an operator's log tools
 * see them without reading the event store.
 *
 *   - every authentication attempt with a username that failed, at notice:
 *       auth failed: ip=203.0.113.7 port=51234 proto=imap mechanism=LOGIN
 *       user="bob" result=fail
 *     and every success at info ("auth ok: ..."), so fail2ban-style tools can count
 *     them per address (docs/operations.md gives the line format and a filter);
 *     the user name is escaped (log_escape: printable, quotes and backslashes escaped,
 *     cut to 128 bytes), so it can neither forge a line nor a field;
 *   - a message refused because the spool's disk budget is spent, as a warning at
 *     most once per EVLOG_SPOOL_INTERVAL_MS, with the count refused meanwhile.
 *
 * evlog_event() is called by the connection layer with every stamped event before it
 * goes to the event store; it only reads the event.  Event loop thread only.
 */
#ifndef MXB_CORE_EVLOG_H
#define MXB_CORE_EVLOG_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"

struct mxb_event;

#define EVLOG_SPOOL_INTERVAL_MS 60000
#define EVLOG_USER_MAX 128

void evlog_event(const struct mxb_event *ev);

/* The value of a top-level field of ev: 1 with a string's bytes (JSON escapes undone,
 * \u00XX as the byte) in *out, 2 for a literal (true, false, null, a number: as
 * written), 0 when ev has no such field. */
int evlog_field(const struct mxb_event *ev, const char *key, struct buf *out);

#endif
