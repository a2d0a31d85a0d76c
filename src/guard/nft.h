/*
 * nft: enforcement of the guard's decisions by the kernel (nftables), from a small
 * privileged helper process (issue 9 item 6).
 *
 * `mxbait serve` forks the helper as root before it drops privileges, or, started as
 * its account (the systemd unit), holding CAP_NET_ADMIN and CAP_SETPCAP, which it then
 * gives up (core/startcaps.h).  The helper keeps only CAP_NET_ADMIN (bounding set,
 * permitted, effective, inheritable and ambient: the `nft` it runs gets exactly that),
 * becomes the unprivileged user when one is configured and it was root, installs the
 * ruleset (`nft -f -` of the script made before the fork: an error fails serve's
 * start), and then accepts only fixed-size binary messages over a
 * socketpair: a validated operation, set, address/prefix and timeout.  For a batch of
 * them it writes an nftables script to the stdin of `nft -f -` (never a command line,
 * never attacker text: only addresses it formatted itself).  A malformed message is a
 * bug in the daemon: the helper exits.
 *
 * Its table is `inet mxbait`:
 *   sets allow4/allow6 (never diverted: trusted networks and allow decisions),
 *        divert4/divert6 and ban4/ban6 (flags interval, timeout: the kernel expires
 *        every element, so a crash never leaves a permanent divert or ban),
 *   map trapport (real port -> honeypot port, divert_ports),
 *   chain prerouting (nat, dstnat): allowed sources return; diverted sources to a real
 *        port are redirected to the honeypot port (or dnat to divert_to),
 *   chain input (filter, priority -5): banned sources are dropped on the real and
 *        honeypot ports; the honeypot ports are reachable only through the divert
 *        (ct status dnat) or from the host itself.
 * At start the daemon lists the sets back (nft -j) and reconciles them with the
 * decisions.  Sets and table survive the daemon (kernel timeouts do the expiry); the
 * rules are rebuilt at every start from the configuration.
 */
#ifndef MXB_GUARD_NFT_H
#define MXB_GUARD_NFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"
#include "util/netaddr.h"

struct mxb_config;

enum nft_op { NFT_OP_ADD = 1, NFT_OP_DEL = 2, NFT_OP_SETUP = 3, NFT_OP_LIST = 4 };
enum nft_set { NFT_SET_NONE = 0, NFT_SET_DIVERT = 1, NFT_SET_BAN = 2, NFT_SET_ALLOW = 3 };

#define NFT_MSG_MAGIC 0x6d786e66u /* "mxnf" */
#define NFT_MAX_TIMEOUT_S (49u * 86400u)

/* The only message the helper accepts (and the reply it sends). */
struct nft_msg {
	uint32_t magic;
	uint8_t op;        /* enum nft_op */
	uint8_t set;       /* enum nft_set */
	uint8_t family;    /* 4 or 6 */
	uint8_t bits;      /* prefix length */
	uint8_t addr[16];
	uint32_t timeout_s; /* 0: no timeout (allow set only) */
	uint32_t seq;
	int32_t status;    /* replies: 0 ok, else an errno-like code */
};

/* Validate a request: 0 when the helper may act on it. */
int nft_msg_validate(const struct nft_msg *m);
/* Build a request from an address. */
void nft_msg_make(struct nft_msg *m, enum nft_op op, enum nft_set set, const struct netaddr *a,
		  uint32_t timeout_s);

/* The ruleset script for cfg (table, sets, map, chains), for `nft -f -`.  Sets are
 * declared with add (existing elements stay); chains and the map are flushed and
 * refilled; trusted networks fill the allow sets.  Exposed for tests (nft -c). */
int nft_ruleset_script(const struct mxb_config *cfg, const struct netaddr *trusted, size_t n,
		       struct buf *out);
/* The script of a batch of validated messages ("add element ...; delete element ..."). */
int nft_batch_script(const struct nft_msg *m, size_t n, struct buf *out);

/* One element of a set as the kernel holds it. */
struct nft_elem {
	enum nft_set set;
	struct netaddr addr;
	uint64_t expires_ms; /* remaining; 0: none */
};
/* Parse `nft -j list table inet mxbait` output; calls fn per element of the divert,
 * ban and allow sets.  0, or -1 when the JSON is not nft's. */
int nft_parse_listing(const char *json, size_t len,
		      void (*fn)(void *arg, const struct nft_elem *e), void *arg);

/* ---- the daemon's side ---- */
struct nft_client;
struct event_base;

/* Fork the helper (as root before the privilege drop, or as the account holding
 * CAP_NET_ADMIN and CAP_SETPCAP; cfg->user: the account root's helper becomes, unset to
 * stay root with only CAP_NET_ADMIN).  It installs the ruleset at once; an error there
 * is returned here. */
struct nft_client *nft_client_spawn(const struct mxb_config *cfg, const struct netaddr *trusted,
				    size_t n_trusted, char **err_r);
/* Read the current elements (blocking; start-up reconciliation). */
int nft_client_list(struct nft_client *c, void (*fn)(void *arg, const struct nft_elem *e),
		    void *arg, char **err_r);
/* Queue an update (non-blocking; the helper batches).  -1 when the helper is gone. */
int nft_client_update(struct nft_client *c, enum nft_op op, enum nft_set set,
		      const struct netaddr *a, uint32_t timeout_s);
/* Watch replies on base (errors are logged). */
int nft_client_attach(struct nft_client *c, struct event_base *base);
void nft_client_free(struct nft_client **c);

/* The helper's main (in the forked child); never returns. */
void nft_helper_main(int fd, const struct mxb_config *cfg) __attribute__((noreturn));

#endif
