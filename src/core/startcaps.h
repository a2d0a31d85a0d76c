/*
 * startcaps: the capabilities a start as a non-root account brings (systemd's User=
 * with AmbientCapabilities=, etc/mxbait.service.in), and which process each one is
 * for.  One table says it:
 *   CAP_NET_BIND_SERVICE        serve itself, until its ports are bound;
 *   CAP_SETUID, CAP_SETGID,     the analyzer launcher (anlaunch.h), with
 *   CAP_SETPCAP                 analyzer_user set;
 *   CAP_NET_ADMIN               the guard's nft helper (guard/nft.h), with divert = yes.
 * A helper's capabilities stay with serve, effective and permitted only (no longer
 * ambient or inheritable, so nothing exec'd meanwhile gets them), until that helper is
 * started, together with CAP_SETPCAP (each side empties its bounding set with it);
 * then serve gives them up from every set, bounding set first, unless a helper still
 * to start needs them.  Those of a feature that is off go at start.  Root starts are
 * not concerned: the helpers are forked while root and serve drops root after.
 */
#ifndef MXB_CORE_STARTCAPS_H
#define MXB_CORE_STARTCAPS_H

#include <stdint.h>

#include <linux/capability.h>

struct mxb_config;

#define STARTCAPS_LAUNCHER ((1ULL << CAP_SETUID) | (1ULL << CAP_SETGID) | (1ULL << CAP_SETPCAP))
#define STARTCAPS_NFT_HELPER (1ULL << CAP_NET_ADMIN)

/* The processes serve starts with a capability of its own. */
enum startcaps_helper { STARTCAPS_FOR_LAUNCHER, STARTCAPS_FOR_NFT_HELPER };

/* serve, first thing after reading its configuration: a non-root start keeps, in
 * effective and permitted only, the capabilities of every helper its configuration
 * starts (all of them: a missing one is an error naming the key that needs it), and
 * gives up every set of the others now (the bounding set emptied first while
 * CAP_SETPCAP is here).  Ambient and inheritable sets are emptied of all of them.
 * CAP_NET_BIND_SERVICE (and anything outside the table) is left to serve's final
 * drop.  0, or -1 with *err_r (malloc'd). */
int startcaps_at_start(const struct mxb_config *cfg, char **err_r);

/* serve, right after it started helper h (or found it not configured): what only h
 * needed leaves every set of serve's, bounding set first.  A no-op for root starts
 * and for a helper not kept at start.  0, or -1 with *err_r (malloc'd). */
int startcaps_handed(enum startcaps_helper h, char **err_r);

/* The process's capability sets as masks of 1 << CAP_X (capget/capset, v3). */
int startcaps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh);
int startcaps_put(uint64_t eff, uint64_t prm, uint64_t inh);

#endif
