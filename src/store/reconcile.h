/*
 * reconcile: at start, make mxbait.db index every message the spool holds.
 *
 * A message is acknowledged (250) once its file is durable in spool/new, but its
 * `message` event reaches mxbait.db with the event writer's next batch, up to 50 ms
 * later: a crash or kill -9 in between leaves a captured file without a row (issue 7:
 * 9-63 per trial under load), which `mxbait messages`, `creds` and the reports would
 * never see.  So before the daemon listens, every file in spool/new without a messages
 * row (looked up by file name) gets a `message_recovered` event (docs/events.md) with
 * what the file itself tells: its SHA-256, size, queue id (from the file name),
 * capture time (its mtime) and the client address of the Received header mxbait wrote
 * at its top; the event writer turns it into a messages row.
 */
#ifndef MXB_STORE_RECONCILE_H
#define MXB_STORE_RECONCILE_H

struct eventstore;

/* db_path: mxbait.db (read here with a connection of its own); spool_dir: the Maildir
 * (its new/ is scanned).  Submits one event per file without a row to es and waits
 * for them to be stored.  Returns how many were indexed, or -1 with *err_r (malloc'd). */
long store_reconcile(const char *db_path, const char *spool_dir, struct eventstore *es,
		     char **err_r);

#endif
