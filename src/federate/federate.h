/*
 * federate: signed feeds between operators (docs/federation.md), run by the reporter
 * process, the only mxbait process with outbound network (docs/DESIGN.md).
 *
 * One pass (federate_pass: pull, consensus, publish), each step its own file:
 *  - publish.c: this sensor's local indicators changed since the last segment (above
 *    export_min_confidence, not allowlisted, never victims unless feed_share_victims,
 *    never what peers said: indicators_each with IND_SHARE) and, for each peer whose
 *    trap profile we hold, our trap credentials as keyed hashes for it; one or more
 *    signed segments, then a new signed manifest (with our own trap profile sealed to
 *    each peer), written as files the daemon's web server serves at /feed/v1/.
 *  - pull.c: each peer whose time has come: its manifest, then the segments after the
 *    last one accepted, each verified (signature, publisher, sequence, hash chain)
 *    before anything is imported; a gap, replay, rollback or bad signature is refused,
 *    logged (peer_log) and counted, and the peer's status says so.
 *  - consensus.c: what at least peer_consensus trust-weighted operators said (local
 *    evidence counts as one operator) becomes a `peer` indicator row (the operator's
 *    own enforcement may export it) and, for addresses and prefixes, a guard decision
 *    (a request file, origin "peers"); trap hashes of peers that reach the threshold
 *    alone go to the guard's file; entries contradicted by the allowlist cost their
 *    peer trust; expired entries go.
 * intel.db holds it all (intel_db.c migration 2).  Bounded: per peer at most
 * peer_max_entries entries, 64 segments per pull, FEED_* bounds per document.
 */
#ifndef MXB_FEDERATE_FEDERATE_H
#define MXB_FEDERATE_FEDERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "federate/feed.h"

struct sqlite3;
struct mxb_config;
struct allowlist;

#define FED_SEGMENTS_PER_PULL 64
#define FED_PEER_TRAPS_FILE "federate/peer-traps"

struct fed_stats {
	long published, segments;             /* entries and segments written */
	long trap_hashes;                     /* trap hashes published for peers */
	long pulled_segments, imported;       /* accepted from peers */
	long refused;                         /* documents refused (see peer_log) */
	long contradictions;                  /* entries refused by the allowlist */
	long consensus, decisions, expired;   /* rows reaching the threshold, requests */
};

struct fed_ctx {
	struct sqlite3 *db;                   /* intel.db, ev (mxbait.db) attached */
	const char *data_dir;
	const struct mxb_config *cfg;
	const struct allowlist *al;
	const struct fed_key *key;
	int sources;                          /* INTEL_HAS_* */
	int64_t now_us;
	const char *ca_file;                  /* for peers without a pin */
	bool force_pull;                      /* pull every peer now */
};

/* The whole pass; errors of one peer do not stop the others.  0, or -1 with *err_r
 * on a local failure (intel.db, the feed directory). */
int federate_pass(const struct fed_ctx *c, struct fed_stats *st, char **err_r);

int fed_publish(const struct fed_ctx *c, struct fed_stats *st, char **err_r);
int fed_pull(const struct fed_ctx *c, struct fed_stats *st, char **err_r);
int fed_consensus(const struct fed_ctx *c, struct fed_stats *st, char **err_r);

/* A peer's weight: trust halved by each contradiction. */
double fed_peer_weight(double trust, long contradictions);

/* Record a security event about a peer (peer_log) and log it to stderr. */
void fed_log(struct sqlite3 *db, const char *peer, const char *what, const char *detail,
	     int64_t now_us);

/* Import one verified segment's entries for peer (used by pull.c and the tests):
 * entries replace the peer's earlier ones; allowlisted values count as
 * contradictions; trap entries are kept only when addressed to me.  Runs inside the
 * caller's transaction. */
struct fed_import {
	struct sqlite3 *db;
	const struct allowlist *al;
	const char *peer;
	const char *me;              /* my key id */
	uint64_t seq;
	int64_t now_us, ttl_us;
	long max_entries;
	long imported, contradictions, skipped;
	long have;                   /* the peer's entries, estimated (-1: not counted yet) */
};
int fed_import_entry(void *ctx, const struct fed_entry *e);

#endif
