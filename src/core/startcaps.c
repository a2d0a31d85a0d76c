/* startcaps: which start-up capability goes to which helper (see startcaps.h). */
#include "core/startcaps.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/config.h"
#include "core/sandbox.h"
#include "util/buf.h"

#define SETPCAP (1ULL << CAP_SETPCAP)

/* The table (startcaps.h): what each helper runs with, and the key that wants it. */
static const struct {
	uint64_t caps;
	const char *key, *names;
} helpers[] = {
	[STARTCAPS_FOR_LAUNCHER] = { STARTCAPS_LAUNCHER, "analyzer_user",
				     "CAP_SETUID, CAP_SETGID and CAP_SETPCAP" },
	[STARTCAPS_FOR_NFT_HELPER] = { STARTCAPS_NFT_HELPER, "divert = yes",
				       "CAP_NET_ADMIN and CAP_SETPCAP" },
};
#define N_HELPERS (sizeof(helpers) / sizeof(helpers[0]))

/* Helpers kept for at start and not started yet (bit per enum startcaps_helper). */
static unsigned pending;

static bool wanted(const struct mxb_config *cfg, enum startcaps_helper h)
{
	switch (h) {
	case STARTCAPS_FOR_LAUNCHER:
		return cfg->analyzer_user && *cfg->analyzer_user;
	case STARTCAPS_FOR_NFT_HELPER:
		return cfg->divert;
	}
	return false;
}

/* What serve holds for helper h: its own, and CAP_SETPCAP for the bounding sets. */
static uint64_t held_for(unsigned h)
{
	return helpers[h].caps | SETPCAP;
}

static uint64_t held_for_pending(void)
{
	uint64_t m = 0;
	for (unsigned h = 0; h < N_HELPERS; h++)
		if (pending & (1u << h))
			m |= held_for(h);
	return m;
}

int startcaps_get(uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capget, &hdr, data) != 0)
		return -1;
	*eff = data[0].effective | (uint64_t)data[1].effective << 32;
	*prm = data[0].permitted | (uint64_t)data[1].permitted << 32;
	*inh = data[0].inheritable | (uint64_t)data[1].inheritable << 32;
	return 0;
}

int startcaps_put(uint64_t eff, uint64_t prm, uint64_t inh)
{
	struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2];
	data[0].effective = (uint32_t)eff;
	data[1].effective = (uint32_t)(eff >> 32);
	data[0].permitted = (uint32_t)prm;
	data[1].permitted = (uint32_t)(prm >> 32);
	data[0].inheritable = (uint32_t)inh;
	data[1].inheritable = (uint32_t)(inh >> 32);
	return (int)syscall(SYS_capset, &hdr, data);
}

/* Lower the ambient capabilities in mask (EINVAL: a kernel without ambient ones). */
static int lower_ambient(uint64_t mask)
{
	for (unsigned c = 0; c < 64; c++)
		if ((mask & (1ULL << c)) &&
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_LOWER, c, 0, 0) != 0 && errno != EINVAL)
			return -1;
	return 0;
}

/* Give up drop from every set.  The bounding set first,
 * while CAP_SETPCAP is effective: emptied when CAP_SETPCAP itself goes (nothing
 * later needs a capability across an exec), else only drop's. */
static int give_up(uint64_t drop, char **err_r)
{
	if (!drop)
		return 0;
	uint64_t eff, prm, inh;
	if (startcaps_get(&eff, &prm, &inh) != 0) {
		*err_r = buf_strf("capget: %s", strerror(errno));
		return -1;
	}
	if (lower_ambient(drop) != 0) {
		*err_r = buf_strf("PR_CAP_AMBIENT_LOWER: %s", strerror(errno));
		return -1;
	}
	unsigned dropped = 0;
	if (prm & SETPCAP) {
		uint64_t keep_bset = (drop & SETPCAP) ? 0 : ~drop;
		if (startcaps_put(eff | SETPCAP, prm, inh & ~drop) != 0) {
			*err_r = buf_strf("capset: %s", strerror(errno));
			return -1;
		}
		if (sandbox_limit_bounding_set(keep_bset, &dropped, err_r) != 0)
			return -1;
	}
	if (startcaps_put(eff & ~drop, prm & ~drop, inh & ~drop) != 0) {
		*err_r = buf_strf("capset: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int startcaps_at_start(const struct mxb_config *cfg, char **err_r)
{
	*err_r = NULL;
	pending = 0;
	if (getuid() == 0 || geteuid() == 0)
		return 0; /* root: helpers are forked while root, then root is dropped */
	uint64_t eff, prm, inh;
	if (startcaps_get(&eff, &prm, &inh) != 0) {
		*err_r = buf_strf("capget: %s", strerror(errno));
		return -1;
	}
	uint64_t all = 0, keep = 0;
	for (unsigned h = 0; h < N_HELPERS; h++) {
		all |= held_for(h);
		if (!wanted(cfg, (enum startcaps_helper)h))
			continue;
		if ((prm & held_for(h)) != held_for(h)) {
			*err_r = buf_strf("%s needs mxbait started as root, or as its account with "
				      "%s (the systemd unit grants them); this process has not "
				      "all of them", helpers[h].key, helpers[h].names);
			return -1;
		}
		pending |= 1u << h;
		keep |= held_for(h);
	}
	if (!(prm & all) && !(inh & all))
		return 0;
	/* No program exec'd before its helper (the guard's hand-off) inherits one. */
	if (lower_ambient(all) != 0) {
		*err_r = buf_strf("PR_CAP_AMBIENT_LOWER: %s", strerror(errno));
		return -1;
	}
	if (startcaps_put(eff | keep, prm, inh & ~all) != 0) {
		*err_r = buf_strf("capset: %s", strerror(errno));
		return -1;
	}
	return give_up(all & ~keep, err_r);
}

int startcaps_handed(enum startcaps_helper h, char **err_r)
{
	*err_r = NULL;
	if ((unsigned)h >= N_HELPERS || !(pending & (1u << h)))
		return 0;
	pending &= ~(1u << h);
	uint64_t still = held_for_pending();
	return give_up(held_for(h) & ~still, err_r);
}
