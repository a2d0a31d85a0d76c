/*
 * nft: rules, messages and the privileged helper process (see nft.h).
 */
#include "guard/nft.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "core/config.h"
#include "core/log.h"
#include "core/privdrop.h"

#define TABLE "inet mxbait"
#define BATCH_MAX 512
#define NFT_TIMEOUT_MS 15000
#define OUTPUT_MAX (64 * 1024 * 1024) /* a listing of large sets */
static const unsigned mail_ports[] = { 25, 465, 587, 110, 143, 993, 995 };

/* ---- messages ---- */

void nft_msg_make(struct nft_msg *m, enum nft_op op, enum nft_set set, const struct netaddr *a,
		  uint32_t timeout_s)
{
	memset(m, 0, sizeof(*m));
	m->magic = NFT_MSG_MAGIC;
	m->op = (uint8_t)op;
	m->set = (uint8_t)set;
	if (a) {
		m->family = a->family == AF_INET6 ? 6 : 4;
		m->bits = a->bits;
		memcpy(m->addr, a->a, 16);
	}
	m->timeout_s = timeout_s;
}

static int msg_addr(const struct nft_msg *m, struct netaddr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = m->family == 6 ? AF_INET6 : AF_INET;
	a->bits = m->bits;
	memcpy(a->a, m->addr, 16);
	/* host bits must be clear, and nothing past an IPv4 address */
	struct netaddr c;
	netaddr_prefix(a, a->bits, &c);
	return netaddr_equal(a, &c) ? 0 : -1;
}

int nft_msg_validate(const struct nft_msg *m)
{
	if (m->magic != NFT_MSG_MAGIC)
		return -1;
	if (m->op == NFT_OP_SETUP || m->op == NFT_OP_LIST)
		return m->set == NFT_SET_NONE ? 0 : -1;
	if (m->op != NFT_OP_ADD && m->op != NFT_OP_DEL)
		return -1;
	if (m->set != NFT_SET_DIVERT && m->set != NFT_SET_BAN && m->set != NFT_SET_ALLOW)
		return -1;
	if (m->family != 4 && m->family != 6)
		return -1;
	if (m->bits > (m->family == 4 ? 32 : 128))
		return -1;
	if (m->family == 4)
		for (size_t i = 4; i < 16; i++)
			if (m->addr[i])
				return -1;
	if (m->timeout_s > NFT_MAX_TIMEOUT_S)
		return -1;
	/* the divert and ban sets always expire; allow may not */
	if (m->op == NFT_OP_ADD && m->set != NFT_SET_ALLOW && m->timeout_s == 0)
		return -1;
	struct netaddr a;
	return msg_addr(m, &a);
}

static const char *set_name(enum nft_set s, int family)
{
	static const char *const n[4][2] = {
		{ "", "" }, { "divert4", "divert6" }, { "ban4", "ban6" }, { "allow4", "allow6" }
	};
	return (unsigned)s < 4 ? n[s][family == 6] : "";
}

/* ---- scripts ---- */

static void port_list(struct buf *b, const unsigned *v, size_t n)
{
	buf_puts(b, "{ ");
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%s%u", i ? ", " : "", v[i]);
	buf_puts(b, " }");
}

int nft_ruleset_script(const struct mxb_config *cfg, const struct netaddr *trusted, size_t n,
		       struct buf *out)
{
	unsigned real[16], trap[16], all[32];
	size_t nr = 0, na = 0;
	for (size_t i = 0; i < cfg->n_divert_ports && nr < 16; i++) {
		if (config_divert_map(cfg, i, &real[nr], &trap[nr]) == 0)
			nr++;
	}
	if (!nr)
		return -1;
	for (size_t i = 0; i < sizeof(mail_ports) / sizeof(mail_ports[0]); i++)
		all[na++] = mail_ports[i];
	for (size_t i = 0; i < nr; i++) {
		bool dup = false;
		for (size_t j = 0; j < na; j++)
			dup |= all[j] == real[i];
		if (!dup)
			all[na++] = real[i];
		dup = false;
		for (size_t j = 0; j < na; j++)
			dup |= all[j] == trap[i];
		if (!dup)
			all[na++] = trap[i];
	}
	unsigned size = cfg->nft_set_size;
	buf_printf(out, "add table %s\n", TABLE);
	static const char *const sets[] = { "divert", "ban" };
	for (size_t i = 0; i < 2; i++) {
		buf_printf(out, "add set %s %s4 { type ipv4_addr; flags interval, timeout; size %u; }\n",
			   TABLE, sets[i], size);
		buf_printf(out, "add set %s %s6 { type ipv6_addr; flags interval, timeout; size %u; }\n",
			   TABLE, sets[i], size);
	}
	buf_printf(out, "add set %s allow4 { type ipv4_addr; flags interval, timeout; size %u; }\n",
		   TABLE, size);
	buf_printf(out, "add set %s allow6 { type ipv6_addr; flags interval, timeout; size %u; }\n",
		   TABLE, size);
	buf_printf(out, "add map %s trapport { type inet_service : inet_service; }\n", TABLE);
	/* chains: declared, emptied, refilled (rules follow the configuration) */
	buf_printf(out, "add chain %s prerouting { type nat hook prerouting priority dstnat; "
		   "policy accept; }\n", TABLE);
	buf_printf(out, "add chain %s input { type filter hook input priority -5; policy accept; }\n",
		   TABLE);
	buf_printf(out, "flush chain %s prerouting\nflush chain %s input\nflush map %s trapport\n",
		   TABLE, TABLE, TABLE);
	/* trusted networks: the configured allow elements (allow decisions are added by
	 * the daemon); a fresh start refills them */
	buf_printf(out, "flush set %s allow4\nflush set %s allow6\n", TABLE, TABLE);
	for (int fam = 4; fam <= 6; fam += 2) {
		size_t k = 0;
		for (size_t i = 0; i < n; i++) {
			if ((trusted[i].family == AF_INET6) != (fam == 6))
				continue;
			/* an interval set refuses overlaps: keep only the widest */
			bool inside = false;
			for (size_t j = 0; j < n && !inside; j++)
				inside = j != i && netaddr_contains(&trusted[j], &trusted[i]) &&
					 (trusted[j].bits < trusted[i].bits || j < i);
			if (inside)
				continue;
			char t[NETADDR_STRLEN];
			netaddr_format(&trusted[i], t, sizeof(t));
			if (k++ == 0)
				buf_printf(out, "add element %s allow%d { %s", TABLE, fam, t);
			else
				buf_printf(out, ", %s", t);
		}
		if (k)
			buf_puts(out, " }\n");
	}
	buf_printf(out, "add element %s trapport { ", TABLE);
	for (size_t i = 0; i < nr; i++)
		buf_printf(out, "%s%u : %u", i ? ", " : "", real[i], trap[i]);
	buf_puts(out, " }\n");
	buf_printf(out, "add rule %s prerouting ip saddr @allow4 return\n", TABLE);
	buf_printf(out, "add rule %s prerouting ip6 saddr @allow6 return\n", TABLE);
	struct netaddr to;
	bool dnat = cfg->divert_to && *cfg->divert_to && netaddr_parse(cfg->divert_to, &to) == 0;
	for (int fam = 4; fam <= 6; fam += 2) {
		const char *ipf = fam == 4 ? "ip" : "ip6";
		buf_printf(out, "add rule %s prerouting %s saddr @divert%d tcp dport ", TABLE, ipf, fam);
		port_list(out, real, nr);
		if (!dnat) {
			buf_puts(out, " counter redirect to :tcp dport map @trapport\n");
		} else if ((to.family == AF_INET6) == (fam == 6)) {
			char t[NETADDR_STRLEN];
			netaddr_format(&to, t, sizeof(t));
			buf_printf(out, fam == 4 ? " counter dnat ip to %s : tcp dport map @trapport\n"
						 : " counter dnat ip6 to [%s] : tcp dport map @trapport\n", t);
		} else {
			buf_puts(out, " counter drop\n"); /* no target of this family */
		}
	}
	for (int fam = 4; fam <= 6; fam += 2) {
		buf_printf(out, "add rule %s input %s saddr @ban%d tcp dport ", TABLE,
			   fam == 4 ? "ip" : "ip6", fam);
		port_list(out, all, na);
		buf_puts(out, " counter drop\n");
	}
	if (!dnat) {
		/* the honeypot ports only through the divert (or from this host) */
		buf_printf(out, "add rule %s input iifname \"lo\" tcp dport ", TABLE);
		port_list(out, trap, nr);
		buf_puts(out, " accept\n");
		buf_printf(out, "add rule %s input tcp dport ", TABLE);
		port_list(out, trap, nr);
		buf_puts(out, " ct status dnat accept\n");
		buf_printf(out, "add rule %s input tcp dport ", TABLE);
		port_list(out, trap, nr);
		buf_puts(out, " counter drop\n");
	}
	return 0;
}

static void elem_text(const struct nft_msg *m, char *out, size_t len)
{
	struct netaddr a;
	msg_addr(m, &a);
	netaddr_format(&a, out, len);
}

int nft_batch_script(const struct nft_msg *m, size_t n, struct buf *out)
{
	for (size_t i = 0; i < n; i++) {
		char t[NETADDR_STRLEN];
		elem_text(&m[i], t, sizeof(t));
		const char *set = set_name(m[i].set, m[i].family);
		if (m[i].op == NFT_OP_ADD) {
			/* add (exists afterwards), delete, add with the new timeout: an element
			 * already there gets the decision's time, not its old one */
			buf_printf(out, "add element %s %s { %s }\n", TABLE, set, t);
			buf_printf(out, "delete element %s %s { %s }\n", TABLE, set, t);
			if (m[i].timeout_s)
				buf_printf(out, "add element %s %s { %s timeout %us }\n", TABLE, set, t,
					   m[i].timeout_s);
			else
				buf_printf(out, "add element %s %s { %s }\n", TABLE, set, t);
		} else if (m[i].op == NFT_OP_DEL) {
			/* add first so that deleting an element the kernel already expired is
			 * not an error that would undo the whole batch */
			buf_printf(out, "add element %s %s { %s timeout 1s }\n", TABLE, set, t);
			buf_printf(out, "delete element %s %s { %s }\n", TABLE, set, t);
		}
	}
	return 0;
}

/* ---- listing ---- */

static int elem_addr(json_t *val, struct netaddr *a)
{
	if (json_is_string(val))
		return netaddr_parse(json_string_value(val), a);
	json_t *p = json_object_get(val, "prefix");
	if (!json_is_object(p))
		return -1;
	json_t *addr = json_object_get(p, "addr"), *len = json_object_get(p, "len");
	if (!json_is_string(addr) || !json_is_integer(len))
		return -1;
	char t[NETADDR_STRLEN + 8];
	snprintf(t, sizeof(t), "%s/%lld", json_string_value(addr), (long long)json_integer_value(len));
	return netaddr_parse(t, a);
}

int nft_parse_listing(const char *json, size_t len,
		      void (*fn)(void *arg, const struct nft_elem *e), void *arg)
{
	json_error_t err;
	json_t *root = json_loadb(json, len, 0, &err);
	json_t *arr = root ? json_object_get(root, "nftables") : NULL;
	if (!json_is_array(arr)) {
		json_decref(root);
		return -1;
	}
	size_t i;
	json_t *item;
	json_array_foreach(arr, i, item) {
		json_t *set = json_object_get(item, "set");
		if (!json_is_object(set))
			continue;
		const char *name = json_string_value(json_object_get(set, "name"));
		const char *table = json_string_value(json_object_get(set, "table"));
		if (!name || !table || strcmp(table, "mxbait"))
			continue;
		enum nft_set s = !strncmp(name, "divert", 6) ? NFT_SET_DIVERT
				 : !strncmp(name, "ban", 3) ? NFT_SET_BAN
				 : !strncmp(name, "allow", 5) ? NFT_SET_ALLOW : NFT_SET_NONE;
		if (s == NFT_SET_NONE)
			continue;
		json_t *elems = json_object_get(set, "elem");
		size_t j;
		json_t *e;
		json_array_foreach(elems, j, e) {
			struct nft_elem ne = { .set = s };
			json_t *val = e;
			json_t *inner = json_object_get(e, "elem");
			if (json_is_object(inner)) {
				val = json_object_get(inner, "val");
				json_t *exp = json_object_get(inner, "expires");
				if (json_is_integer(exp))
					ne.expires_ms = (uint64_t)json_integer_value(exp) * 1000;
			}
			if (elem_addr(val, &ne.addr) == 0)
				fn(arg, &ne);
		}
	}
	json_decref(root);
	return 0;
}

/* ---- running nft (in the helper) ---- */

/* Run nft with argv, script on stdin; its output into out (bounded).  Returns its
 * exit status (0 ok), -1 when it could not run or timed out. */
static int run_nft(const char *path, char *const argv[], const char *script, size_t slen,
		   struct buf *out)
{
	int in[2], o[2];
	if (pipe2(in, O_CLOEXEC) != 0)
		return -1;
	if (pipe2(o, O_CLOEXEC) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		close(o[0]);
		close(o[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(o[1], 2);
		execv(path, argv);
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	fcntl(o[0], F_SETFL, O_NONBLOCK);
	size_t written = 0;
	if (!slen) {
		close(in[1]);
		in[1] = -1;
	}
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool eof = false;
	while (!eof) {
		struct pollfd pf[2] = { { o[0], POLLIN, 0 }, { in[1], POLLOUT, 0 } };
		int r = poll(pf, in[1] >= 0 ? 2 : 1, 1000);
		struct timespec t1;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if ((t1.tv_sec - t0.tv_sec) * 1000 > NFT_TIMEOUT_MS) {
			kill(pid, SIGKILL);
			break;
		}
		if (r < 0 && errno != EINTR)
			break;
		if (in[1] >= 0 && (pf[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t w = write(in[1], script + written, slen - written);
			if (w > 0)
				written += (size_t)w;
			if (w < 0 || written == slen) {
				close(in[1]);
				in[1] = -1;
			}
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			char b[65536];
			ssize_t n = read(o[0], b, sizeof(b));
			if (n > 0) {
				if (out->len + (size_t)n <= OUTPUT_MAX)
					buf_append(out, b, (size_t)n);
			} else if (n == 0 || errno != EAGAIN) {
				eof = true;
			}
		}
	}
	if (in[1] >= 0)
		close(in[1]);
	close(o[0]);
	int st;
	if (waitpid(pid, &st, 0) != pid)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int apply_script(const struct mxb_config *cfg, const char *script, size_t len,
			struct buf *err)
{
	static char a0[] = "nft", a1[] = "-f", a2[] = "-";
	char *const argv[] = { a0, a1, a2, NULL };
	buf_reset(err);
	return run_nft(cfg->nft_path, argv, script, len, err);
}

static void helper_log(const char *what, const struct buf *err)
{
	fprintf(stderr, "mxbait-nft: %s: %.*s\n", what, (int)(err->len > 2000 ? 2000 : err->len),
		err->data ? err->data : "");
}

static void reply(int fd, const struct nft_msg *m, int status)
{
	struct nft_msg r = *m;
	r.status = status;
	if (send(fd, &r, sizeof(r), MSG_NOSIGNAL) != (ssize_t)sizeof(r))
		_exit(0); /* the daemon is gone */
}

struct list_ctx {
	int fd;
};

static void send_elem(void *arg, const struct nft_elem *e)
{
	struct list_ctx *lc = arg;
	struct nft_msg m;
	nft_msg_make(&m, NFT_OP_LIST, e->set, &e->addr, (uint32_t)(e->expires_ms / 1000));
	reply(lc->fd, &m, 0);
}

/* Keep CAP_NET_ADMIN only (core/startcaps.h), as the daemon's user when there is
 * one: forked by root, or by serve started as its account holding CAP_NET_ADMIN and
 * CAP_SETPCAP (the systemd unit), with whatever else serve still held at the fork. */
static int helper_privileges(const struct mxb_config *cfg)
{
	/* the bounding set first, while CAP_SETPCAP is here (without it: refused) */
	for (cap_value_t c = 0; c <= CAP_LAST_CAP; c++)
		if (c != CAP_NET_ADMIN && cap_drop_bound(c) != 0 && errno != EINVAL)
			return -1;
	/* root becomes the daemon's user; a non-root start already is that account */
	if (geteuid() == 0 && cfg->user && *cfg->user) {
		struct privdrop_user u;
		char *err = NULL;
		if (privdrop_lookup(cfg->user, &u, &err) != 0) {
			free(err);
			return -1;
		}
		if (prctl(PR_SET_KEEPCAPS, 1) != 0 || setgroups(0, NULL) != 0 ||
		    setresgid(u.gid, u.gid, u.gid) != 0 || setresuid(u.uid, u.uid, u.uid) != 0)
			return -1;
	}
	cap_t caps = cap_init();
	cap_value_t keep[] = { CAP_NET_ADMIN }; /* STARTCAPS_NFT_HELPER (core/startcaps.h) */
	if (!caps || cap_reset_ambient() != 0 ||
	    cap_set_flag(caps, CAP_PERMITTED, 1, keep, CAP_SET) ||
	    cap_set_flag(caps, CAP_EFFECTIVE, 1, keep, CAP_SET) ||
	    cap_set_flag(caps, CAP_INHERITABLE, 1, keep, CAP_SET) || cap_set_proc(caps)) {
		cap_free(caps);
		return -1;
	}
	cap_free(caps);
	/* nft, exec'd by a non-root user, inherits the capability through the ambient set
	 * (root's exec gets it from the bounding set) */
	if (geteuid() != 0 && cap_set_ambient(CAP_NET_ADMIN, CAP_SET) != 0)
		return -1;
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	return 0;
}

/* The helper's main; ruleset: the script made by nft_client_spawn before the fork. */
static void helper_main(int fd, const struct mxb_config *cfg, const struct buf *ruleset)
	__attribute__((noreturn));

void nft_helper_main(int fd, const struct mxb_config *cfg)
{
	helper_main(fd, cfg, NULL);
}

static void helper_main(int fd, const struct mxb_config *cfg, const struct buf *ruleset)
{
	prctl(PR_SET_NAME, "mxbait-nft");
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	signal(SIGPIPE, SIG_IGN);
	struct buf script, err;
	buf_init(&script, 0);
	buf_init(&err, 0);
	static struct nft_msg batch[BATCH_MAX];
	if (helper_privileges(cfg) != 0) {
		struct nft_msg m;
		nft_msg_make(&m, NFT_OP_SETUP, NFT_SET_NONE, NULL, 0);
		fprintf(stderr, "mxbait-nft: cannot keep CAP_NET_ADMIN alone: %s\n", strerror(errno));
		reply(fd, &m, EPERM);
		_exit(1);
	}
	/* The ruleset, from here rather than from serve: whoever started serve, nft
	 * runs with CAP_NET_ADMIN alone.  Refused: said on stderr (the operator's to see
	 * at start-up) and in the setup reply. */
	if (ruleset) {
		int rc = apply_script(cfg, ruleset->data, ruleset->len, &err);
		if (rc != 0) {
			struct nft_msg m;
			nft_msg_make(&m, NFT_OP_SETUP, NFT_SET_NONE, NULL, 0);
			if (rc > 0)
				fprintf(stderr, "mxbait-nft: nft refused the ruleset (exit %d): %.*s\n",
					rc, (int)(err.len > 2000 ? 2000 : err.len),
					err.data ? err.data : "");
			else
				fprintf(stderr, "mxbait-nft: cannot run %s\n", cfg->nft_path);
			reply(fd, &m, EIO);
			_exit(1);
		}
	}
	for (;;) {
		ssize_t n = recv(fd, &batch[0], sizeof(batch[0]), 0);
		if (n == 0)
			_exit(0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		if (n != (ssize_t)sizeof(batch[0]) || nft_msg_validate(&batch[0]) != 0) {
			fprintf(stderr, "mxbait-nft: malformed message from the daemon: exiting\n");
			_exit(2);
		}
		if (batch[0].op == NFT_OP_LIST) {
			static char a0[] = "nft", a1[] = "-j", a2[] = "list", a3[] = "table",
				    a4[] = "inet", a5[] = "mxbait";
			char *const argv[] = { a0, a1, a2, a3, a4, a5, NULL };
			buf_reset(&err);
			int rc = run_nft(cfg->nft_path, argv, "", 0, &err);
			struct list_ctx lc = { fd };
			if (rc != 0 || nft_parse_listing(err.data ? err.data : "", err.len, send_elem,
							 &lc) != 0) {
				helper_log("listing the sets failed", &err);
				reply(fd, &batch[0], EIO);
			} else {
				reply(fd, &batch[0], 0); /* the end of the listing */
			}
			continue;
		}
		if (batch[0].op == NFT_OP_SETUP) {
			/* the ruleset is sent by nft_client_spawn as text in the same process
			 * memory (cfg), never from the socket */
			reply(fd, &batch[0], 0);
			continue;
		}
		size_t k = 1;
		while (k < BATCH_MAX) {
			n = recv(fd, &batch[k], sizeof(batch[k]), MSG_DONTWAIT);
			if (n <= 0)
				break;
			if (n != (ssize_t)sizeof(batch[k]) || nft_msg_validate(&batch[k]) != 0 ||
			    batch[k].op == NFT_OP_LIST || batch[k].op == NFT_OP_SETUP) {
				fprintf(stderr, "mxbait-nft: malformed message from the daemon: exiting\n");
				_exit(2);
			}
			k++;
		}
		buf_reset(&script);
		nft_batch_script(batch, k, &script);
		int rc = apply_script(cfg, script.data, script.len, &err);
		if (rc != 0 && k > 1) {
			/* one element refused must not cost the others: one by one */
			for (size_t i = 0; i < k; i++) {
				buf_reset(&script);
				nft_batch_script(&batch[i], 1, &script);
				int r1 = apply_script(cfg, script.data, script.len, &err);
				if (r1 != 0)
					helper_log("an update was refused", &err);
				reply(fd, &batch[i], r1 ? EIO : 0);
			}
			continue;
		}
		if (rc != 0)
			helper_log("an update was refused", &err);
		for (size_t i = 0; i < k; i++)
			reply(fd, &batch[i], rc ? EIO : 0);
	}
}

/* ---- the daemon's side ---- */

struct nft_client {
	int fd;
	pid_t pid;
	uint32_t seq;
	struct event *ev;
	unsigned long long failed;
};

static int recv_timeout(int fd, struct nft_msg *m, int ms)
{
	struct pollfd pf = { fd, POLLIN, 0 };
	int r = poll(&pf, 1, ms);
	if (r <= 0)
		return -1;
	ssize_t n = recv(fd, m, sizeof(*m), 0);
	return n == (ssize_t)sizeof(*m) && m->magic == NFT_MSG_MAGIC ? 0 : -1;
}

struct nft_client *nft_client_spawn(const struct mxb_config *cfg, const struct netaddr *trusted,
				    size_t n_trusted, char **err_r)
{
	struct buf script;
	buf_init(&script, 0);
	if (nft_ruleset_script(cfg, trusted, n_trusted, &script) != 0) {
		*err_r = strdup("no divert_ports to divert");
		return NULL;
	}
	if (access(cfg->nft_path, X_OK) != 0) {
		char m[300];
		snprintf(m, sizeof(m), "%s: %s (install nftables or set nft_path)", cfg->nft_path,
			 strerror(errno));
		*err_r = strdup(m);
		buf_free(&script);
		return NULL;
	}
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
		*err_r = strdup("socketpair failed");
		buf_free(&script);
		return NULL;
	}
	pid_t pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		*err_r = strdup("fork failed");
		buf_free(&script);
		return NULL;
	}
	if (pid == 0) {
		/* only the helper's end stays open */
		int keep = sv[1];
		for (int fd = 3; fd < 65536; fd++)
			if (fd != keep)
				close(fd);
		helper_main(keep, cfg, &script);
	}
	close(sv[1]);
	buf_free(&script);
	struct nft_client *c = calloc(1, sizeof(*c));
	if (!c) {
		close(sv[0]);
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
		*err_r = strdup("out of memory");
		return NULL;
	}
	c->fd = sv[0];
	c->pid = pid;
	/* the helper says it is ready (or that it could not keep its capability, or that
	 * nft refused the ruleset) */
	struct nft_msg m, r = { 0 };
	nft_msg_make(&m, NFT_OP_SETUP, NFT_SET_NONE, NULL, 0);
	m.seq = ++c->seq;
	/* (the ruleset's nft may take up to NFT_TIMEOUT_MS before the reply) */
	if (send(c->fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m) ||
	    recv_timeout(c->fd, &r, 2 * NFT_TIMEOUT_MS) != 0 || r.status != 0) {
		*err_r = strdup(r.status == EIO ? "nft refused the ruleset (see mxbait-nft's "
						  "message above)"
						: "the nft helper did not start (see its message above)");
		nft_client_free(&c);
		return NULL;
	}
	log_msg(LOG_INFO, NULL, "nft helper started (pid %ld): table inet mxbait in place",
		(long)pid);
	return c;
}

int nft_client_list(struct nft_client *c, void (*fn)(void *arg, const struct nft_elem *e),
		    void *arg, char **err_r)
{
	struct nft_msg m, r;
	nft_msg_make(&m, NFT_OP_LIST, NFT_SET_NONE, NULL, 0);
	m.seq = ++c->seq;
	if (send(c->fd, &m, sizeof(m), MSG_NOSIGNAL) != (ssize_t)sizeof(m)) {
		*err_r = strdup("the nft helper is gone");
		return -1;
	}
	for (;;) {
		if (recv_timeout(c->fd, &r, NFT_TIMEOUT_MS) != 0) {
			*err_r = strdup("the nft helper did not answer the listing");
			return -1;
		}
		if (r.op != NFT_OP_LIST)
			continue;
		if (r.set == NFT_SET_NONE) {
			if (r.status != 0) {
				*err_r = strdup("nft could not list the sets (see above)");
				return -1;
			}
			return 0;
		}
		struct nft_elem e = { .set = (enum nft_set)r.set, .expires_ms = (uint64_t)r.timeout_s * 1000 };
		msg_addr(&r, &e.addr);
		fn(arg, &e);
	}
}

int nft_client_update(struct nft_client *c, enum nft_op op, enum nft_set set,
		      const struct netaddr *a, uint32_t timeout_s)
{
	if (!c || c->fd < 0)
		return -1;
	struct nft_msg m;
	nft_msg_make(&m, op, set, a, timeout_s > NFT_MAX_TIMEOUT_S ? NFT_MAX_TIMEOUT_S : timeout_s);
	m.seq = ++c->seq;
	if (nft_msg_validate(&m) != 0)
		return 0; /* nothing the kernel should hold (e.g. a divert without time) */
	ssize_t n = send(c->fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == (ssize_t)sizeof(m))
		return 0;
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		/* the helper is behind: wait for room (bounded) rather than lose it */
		struct pollfd pf = { c->fd, POLLOUT, 0 };
		if (poll(&pf, 1, 2000) == 1 && send(c->fd, &m, sizeof(m), MSG_NOSIGNAL) ==
						   (ssize_t)sizeof(m))
			return 0;
	}
	c->failed++;
	return -1;
}

static void reply_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)what;
	struct nft_client *c = arg;
	struct nft_msg r;
	for (;;) {
		ssize_t n = recv(fd, &r, sizeof(r), MSG_DONTWAIT);
		if (n == 0) {
			log_msg(LOG_ERR, NULL, "nft helper exited: decisions are no longer enforced");
			event_del(c->ev);
			close(c->fd);
			c->fd = -1;
			return;
		}
		if (n != (ssize_t)sizeof(r))
			return;
		if (r.status) {
			struct netaddr a;
			char t[NETADDR_STRLEN];
			msg_addr(&r, &a);
			log_msg(LOG_WARNING, NULL, "nft: %s %s in %s refused (see the helper's message)",
				r.op == NFT_OP_ADD ? "adding" : "removing", netaddr_format(&a, t, sizeof(t)),
				set_name(r.set, r.family));
		}
	}
}

int nft_client_attach(struct nft_client *c, struct event_base *base)
{
	c->ev = event_new(base, c->fd, EV_READ | EV_PERSIST, reply_cb, c);
	return c->ev && event_add(c->ev, NULL) == 0 ? 0 : -1;
}

void nft_client_free(struct nft_client **cp)
{
	struct nft_client *c = cp ? *cp : NULL;
	if (!c)
		return;
	if (c->ev)
		event_free(c->ev);
	if (c->fd >= 0)
		close(c->fd);
	if (c->pid > 0) {
		/* closing the socket ends it; wait (bounded), then insist */
		for (int i = 0; i < 200; i++) {
			pid_t r = waitpid(c->pid, NULL, WNOHANG);
			if (r == c->pid || (r < 0 && errno == ECHILD)) {
				c->pid = 0; /* gone (or reaped by the daemon's SIGCHLD handler) */
				break;
			}
			struct timespec ts = { 0, 10 * 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (c->pid > 0) {
			kill(c->pid, SIGKILL);
			waitpid(c->pid, NULL, 0);
		}
	}
	free(c);
	*cp = NULL;
}
