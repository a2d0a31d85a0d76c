/*
 * hub: many sensors, one shared PostgreSQL (docs/scaling.md), through libpq.
 *
 * The sensor side (`mxbait hub push`, a process of its own beside the reporter: it
 * opens an outbound connection, so it is never part of the front daemon) streams
 * mxbait.db's events, intel.db's local indicators and analysis.db's campaigns to the
 * hub.  Exactly once, by construction:
 *  - the sensor's queue is mxbait.db itself: events are durable there (the event
 *    store's WAL) before the pusher sees them, so a hub that is down loses nothing,
 *    and the pusher holds one batch in memory (hub_batch rows), however long the hub
 *    stays away: bounded, and no second copy on disk;
 *  - the position is kept at the hub, in the same transaction as the rows
 *    (sensors.event_seq, row-locked FOR UPDATE): a batch and its cursor commit
 *    together or not at all, so after any crash, kill or network cut the pusher
 *    resumes exactly after the last committed row, nothing duplicated; the primary
 *    key (sensor, seq, ts) refuses a duplicate should two pushers of one sensor ever
 *    run at once;
 *  - rows go in with COPY (the fastest path into PostgreSQL), into daily range
 *    partitions of events created ahead of the rows (a default partition catches a
 *    timestamp far outside), so retention is DROP TABLE of old days, not DELETE.
 * Privacy: the hub gets event metadata, usernames, and passwords only as keyed
 * hashes (HMAC-SHA256 under a key kept in the hub, so equal passwords match across
 * sensors) unless hub_share_passwords; no message bodies, recipients or raw event
 * JSON; victims' indicators only with feed_share_victims.
 *
 * The hub side: schema migrations (ordered, under an advisory lock, version in
 * mxb_schema), and the cross-sensor queries of `mxbait hub stats|attackers|creds|
 * campaigns` (hub_query.c).
 */
#ifndef MXB_FEDERATE_HUB_H
#define MXB_FEDERATE_HUB_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

struct mxb_config;
struct buf;
typedef struct pg_conn PGconn;

struct hub_push_stats {
	long events, indicators, campaigns;   /* rows written */
	long batches, errors, reconnects;
	int64_t lag_events;                   /* rows of mxbait.db not yet at the hub */
	int64_t missing;                      /* events pruned by the sensor (retention,
					       * database_budget) before the hub had them */
};

/* Connect (NULL with *err_r); the schema is migrated when migrate is true. */
PGconn *hub_connect(const char *conninfo, bool migrate, char **err_r);
int hub_migrate(PGconn *c, char **err_r);
int hub_schema_version(void);

/* The pusher: until *stop (or one catch-up when once).  Returns 0, or 1 after
 * printing why (bad configuration; a hub that is down is retried, not an error). */
int hub_push_run(const char *data_dir, const struct mxb_config *cfg, volatile sig_atomic_t *stop,
		 bool once, struct hub_push_stats *st);

/* Drop the daily partitions older than days; returns how many, -1 on error. */
int hub_prune(PGconn *c, unsigned days, char **err_r);

/* Queries: JSON (an array or object) or a table into out.  0, or -1 with *err_r. */
struct hub_query_opts {
	bool json;
	long top;         /* rows */
	int64_t since_us; /* 0: all */
};
int hub_stats(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r);
int hub_attackers(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r);
int hub_creds(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r);
int hub_campaigns(PGconn *c, const struct hub_query_opts *o, struct buf *out, char **err_r);

/* The sensor's name at the hub: hub_sensor, else hostname. */
const char *hub_sensor_name(const struct mxb_config *cfg);

#endif
