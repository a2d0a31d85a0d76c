/*
 * guard: the owner of the decisions, and the glue between hooks, detection, traps,
 * the event store and the kernel (see guard.h).
 *
 * Every observation gets an id (16 hex, the `session` of its guard event) before it
 * is judged, so a decision can cite it as evidence.  Judgement order for a login:
 * trusted source (allow, nothing else) -> trap (convict now) -> detection windows ->
 * the decision now covering the source -> the answer.  Operators' requests (`mxbait
 * decisions add|del|allow`) arrive as small files in DATA_DIR/guard-requests/, read
 * once a second and deleted once applied: the CLI never writes decisions itself.
 */
#include "guard/guard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "core/config.h"
#include "core/log.h"
#include "deceive/deception.h"
#include "guard/detect.h"
#include "guard/dovecot_policy.h"
#include "guard/logparse.h"
#include "guard/logwatch.h"
#include "guard/nft.h"
#include "guard/postfix_policy.h"
#include "guard/traps.h"
#include "store/db.h"
#include "store/event.h"
#include "store/eventstore.h"
#include "util/buf.h"

#define TICK_MS 1000
#define SWEEP_EVERY 10      /* ticks between window sweeps */
#define REQUEST_MAX 4096    /* bytes of one request file */
#define REQUESTS_PER_TICK 256
#define DETAIL_MAX 200
#define REQUEST_DIR "guard-requests"

struct guard {
	const struct mxb_config *cfg;
	struct event_base *base;
	struct eventstore *es;
	struct netset trusted;
	struct decision_table *decisions;
	struct detect *detect;
	struct traps *traps;
	struct nft_client *nft;
	struct dovecot_policy *dpolicy;
	struct postfix_policy *ppolicy;
	struct logwatch *logwatch;
	struct event *tick_ev;
	struct convictions conv;
	char *request_dir;
	char *peer_traps_path;           /* federation: peers' trap hashes for us */
	struct timespec peer_traps_mtime;
	off_t peer_traps_size;
	unsigned ticks;
	int64_t dp_smtp_us, dp_other_us; /* last Dovecot policy request per kind */
	/* Postfix SASL through Dovecot logs one failure twice (Postfix's warning and
	 * Dovecot's auth line): recent log failures, to pair them */
	struct seen_fail {
		struct netaddr ip;
		uint32_t user;
		int64_t ts;
		bool postfix, paired;
	} recent[256];
	unsigned recent_next;
	/* the backend hand-off worker (guard/handoff.h), a child process */
	struct {
		pid_t pid;
		char *argv[16];
		struct buf domains;
		int64_t next_start_us;
		unsigned backoff_s;
	} ho;
};

#define PAIR_US (5 * 1000000LL)

#define HOOK_LIVE_US (600 * 1000000LL)

bool guard_configured(const struct mxb_config *cfg)
{
	return cfg->n_dovecot_policy_listen || cfg->n_postfix_policy_listen ||
	       cfg->n_watch_log_files || cfg->watch_journal || cfg->divert ||
	       (cfg->backend_mta && *cfg->backend_mta);
}

bool guard_trusted(const struct guard *g, const struct netaddr *ip)
{
	return netset_contains(&g->trusted, ip);
}

static int64_t now_us(void)
{
	return mxb_now_us();
}

/* ---- events ---- */

/* ts_us 0: now. */
static void emit_at(struct guard *g, struct mxb_event *ev, int64_t ts_us, const char *id,
		    const char *src, unsigned port)
{
	mxb_event_stamp(ev, ts_us, id, src, port, "guard");
	if (g->es)
		eventstore_submit(g->es, ev);
	else
		mxb_event_free(&ev);
}

static void emit(struct guard *g, struct mxb_event *ev, const char *id, const char *src,
		 unsigned port)
{
	emit_at(g, ev, 0, id, src, port);
}

static void str_or_null(struct mxb_event *ev, const char *key, const char *v)
{
	if (v)
		mxb_event_str(ev, key, v);
	else
		mxb_event_null(ev, key);
}

static void tri_bool(struct mxb_event *ev, const char *key, int v)
{
	if (v < 0)
		mxb_event_null(ev, key);
	else
		mxb_event_bool(ev, key, v != 0);
}

/* by: who asked (an operator's change), NULL for the guard's own decisions */
static void emit_decision(struct guard *g, const struct decision *d, const char *op,
			  const char *by, int64_t ts_us)
{
	struct mxb_event *ev = mxb_event_new("decision");
	if (!ev)
		return;
	char src[NETADDR_STRLEN];
	netaddr_format(&d->src, src, sizeof(src));
	mxb_event_str(ev, "op", op);
	mxb_event_str(ev, "action", decision_action_name(d->action));
	mxb_event_str(ev, "source", src);
	mxb_event_str(ev, "reason", d->reason);
	mxb_event_str(ev, "origin", d->origin);
	const char *evid[DECISION_EVIDENCE_MAX];
	for (size_t i = 0; i < d->n_evidence; i++)
		evid[i] = d->evidence[i];
	mxb_event_str_array(ev, "evidence", evid, d->n_evidence);
	if (d->expires_us)
		mxb_event_int(ev, "duration_ms", (d->expires_us - d->created_us) / 1000);
	else
		mxb_event_null(ev, "duration_ms");
	mxb_event_int(ev, "level", d->level);
	if (by)
		mxb_event_str(ev, "by", by);
	else
		mxb_event_null(ev, "by");
	/* at the decision's own time: the decisions table's created_us is this ts */
	emit_at(g, ev, ts_us, d->id, src, 0);
}

/* ---- enforcement ---- */

static enum nft_set set_of(enum decision_action a)
{
	switch (a) {
	case DECISION_DIVERT: return NFT_SET_DIVERT;
	case DECISION_BAN: return NFT_SET_BAN;
	case DECISION_ALLOW: return NFT_SET_ALLOW;
	default: return NFT_SET_NONE;
	}
}

static uint32_t remaining_s(const struct decision *d, int64_t now)
{
	if (!d->expires_us)
		return 0;
	int64_t s = (d->expires_us - now + 999999) / 1000000;
	if (s < 1)
		s = 1;
	return s > NFT_MAX_TIMEOUT_S ? NFT_MAX_TIMEOUT_S : (uint32_t)s;
}

static void enforce(struct guard *g, const struct decision *d, enum nft_op op, int64_t now)
{
	enum nft_set set = set_of(d->action);
	if (!g->nft || set == NFT_SET_NONE)
		return;
	if (nft_client_update(g->nft, op, set, &d->src, op == NFT_OP_ADD ? remaining_s(d, now) : 0))
		log_msg(LOG_ERR, NULL, "guard: the nft helper is gone: decisions are no longer "
			"enforced by the kernel");
}

/* A new prefix decision takes the place, in the kernel's interval set, of the
 * addresses (and narrower prefixes) inside it: nftables refuses overlapping elements. */
struct narrower {
	struct guard *g;
	const struct decision *wide;
	int64_t now;
};

static void drop_narrower(void *arg, const struct decision *d)
{
	struct narrower *n = arg;
	if (d != n->wide && set_of(d->action) == set_of(n->wide->action) &&
	    d->src.bits > n->wide->src.bits && netaddr_contains(&n->wide->src, &d->src))
		enforce(n->g, d, NFT_OP_DEL, n->now);
}

/* Decide (and record, and enforce).  Trusted sources are never acted on.  Returns
 * the table's answer (DECIDE_FULL also for a trusted source, with *trusted_r set);
 * out_r (may be NULL) gets the new decision. */
static enum decide_result decide(struct guard *g, const struct netaddr *src,
				 enum decision_action act, const char *reason, const char *origin,
				 const char *const *ev, size_t n_ev, uint64_t duration_ms,
				 const char *by, struct decision *out_r, bool *trusted_r)
{
	if (act != DECISION_ALLOW && netset_contains(&g->trusted, src)) {
		if (trusted_r)
			*trusted_r = true;
		return DECIDE_FULL;
	}
	int64_t now = now_us();
	/* a stronger manual decision replaces the old one: end it in the record first */
	struct decision old;
	bool replaced = false;
	if (duration_ms) {
		const struct decision *cur = decision_table_get(g->decisions, src, now);
		if (cur) {
			old = *cur;
			replaced = true;
		}
	}
	struct decision d;
	enum decide_result r = decision_table_decide(g->decisions, src, act, reason, origin, ev,
						     n_ev, duration_ms, now, &d);
	if (r == DECIDE_FULL) {
		log_msg(LOG_WARNING, NULL, "guard: decision table full (guard_max_keys): %s not "
			"recorded", reason);
		return r;
	}
	if (r != DECIDE_NEW)
		return r;
	if (replaced) {
		emit_decision(g, &old, "del", by, now);
		if (set_of(old.action) != set_of(d.action))
			enforce(g, &old, NFT_OP_DEL, now);
	}
	emit_decision(g, &d, "add", by, now);
	if (g->nft && !netaddr_is_host(&d.src)) {
		const struct decision *wide = decision_table_get(g->decisions, &d.src, now);
		struct narrower n = { g, wide, now };
		if (wide)
			decision_table_active(g->decisions, now, drop_narrower, &n);
	}
	enforce(g, &d, NFT_OP_ADD, now);
	char src_s[NETADDR_STRLEN];
	log_msg(LOG_NOTICE, NULL, "guard: %s %s for %llus reason=%s level=%u id=%s",
		decision_action_name(d.action), netaddr_format(&d.src, src_s, sizeof(src_s)),
		d.expires_us ? (unsigned long long)((d.expires_us - d.created_us) / 1000000) : 0ULL,
		d.reason, d.level, d.id);
	if (out_r)
		*out_r = d;
	return r;
}

static void apply_convictions(struct guard *g)
{
	for (size_t i = 0; i < g->conv.n; i++) {
		const struct conviction *k = &g->conv.v[i];
		const char *ev[DECISION_EVIDENCE_MAX];
		for (size_t j = 0; j < k->n_evidence; j++)
			ev[j] = k->evidence[j];
		decide(g, &k->src, k->action, k->reason, "guard", ev, k->n_evidence, 0, NULL, NULL,
		       NULL);
	}
	convictions_reset(&g->conv);
}

/* The answer the decision covering ip calls for. */
static enum guard_answer answer_for(struct guard *g, const struct netaddr *ip)
{
	if (netset_contains(&g->trusted, ip))
		return GUARD_ALLOW;
	const struct decision *d = decision_table_lookup(g->decisions, ip, now_us());
	if (!d)
		return GUARD_ALLOW;
	switch (d->action) {
	case DECISION_DELAY: return GUARD_DELAY;
	case DECISION_DIVERT:
	case DECISION_BAN: return GUARD_REJECT;
	default: return GUARD_ALLOW;
	}
}

static const char *answer_name(enum guard_answer a)
{
	return a == GUARD_DELAY ? "delay" : a == GUARD_REJECT ? "reject" : "allow";
}

/* ---- observations ---- */

enum guard_answer guard_auth(struct guard *g, const struct guard_auth_obs *o, unsigned *delay_s_r)
{
	char id[DECISION_ID_LEN];
	decision_new_id(id);
	char ip[NETADDR_STRLEN];
	netaddr_format(&o->ip, ip, sizeof(ip));
	bool trusted = netset_contains(&g->trusted, &o->ip);
	const struct mxb_config *cfg = g->cfg;
	if (!strcmp(o->origin, "dovecot_policy")) {
		if (o->service && !strcmp(o->service, "smtp"))
			g->dp_smtp_us = now_us();
		else
			g->dp_other_us = now_us();
	}
	bool trap = false;
	const char *trap_reason = NULL;
	if (o->username && traps_user(g->traps, o->username)) {
		trap = true;
		trap_reason = "trap_user";
	} else if (o->username && o->pwhash &&
		   traps_credential(g->traps, o->username, o->pwhash, cfg->dovecot_policy_hash_mech,
				    cfg->dovecot_policy_hash_nonce,
				    cfg->dovecot_policy_hash_truncate)) {
		trap = true;
		trap_reason = "trap_credential";
	}
	int known = o->user_known;
	if (known < 0 && o->username)
		known = detect_user_known(g->detect, o->username);
	if (!trusted) {
		const char *ev[1] = { id };
		/* a trap convicts even a correct password: the pair is known to attackers */
		if (trap)
			decide(g, &o->ip, DECISION_DIVERT, trap_reason, "guard", ev, 1, 0, NULL, NULL,
			       NULL);
		if (o->success >= 0 && !o->record_only) {
			struct detect_auth a = {
				.ip = o->ip, .id = id, .username = o->username, .pwhash = o->pwhash,
				.success = o->success > 0, .user_known = o->user_known,
			};
			unsigned n = o->count ? o->count : 1;
			for (unsigned i = 0; i < n && i < 100; i++)
				detect_auth(g->detect, &a, now_us(), &g->conv);
			apply_convictions(g);
		}
	} else if (o->success > 0 && o->username) {
		/* a trusted login still teaches that the user exists */
		struct detect_auth a = { .ip = o->ip, .id = id, .username = o->username,
					 .success = true, .user_known = 1 };
		detect_auth(g->detect, &a, now_us(), &g->conv);
		convictions_reset(&g->conv);
	}
	enum guard_answer ans = answer_for(g, &o->ip);
	/* a login that succeeded is not delayed after the fact: Dovecot ignores it, and a
	 * delay is for guessing, not for the owner */
	if (delay_s_r)
		*delay_s_r = ans == GUARD_DELAY ? (cfg->guard_delay_ms + 999) / 1000 : 0;
	struct mxb_event *evt = mxb_event_new("guard_auth");
	if (evt) {
		mxb_event_str(evt, "origin", o->origin);
		mxb_event_str(evt, "stage", o->stage);
		str_or_null(evt, "service", o->service);
		str_or_null(evt, "username", o->username);
		str_or_null(evt, "pwhash", o->pwhash);
		tri_bool(evt, "success", o->success);
		tri_bool(evt, "user_known", known);
		mxb_event_bool(evt, "trap", trap);
		mxb_event_str(evt, "answer", strcmp(o->stage, "log") ? answer_name(ans) : "none");
		emit(g, evt, id, ip, o->port);
	}
	return ans;
}

const char *guard_rcpt_answer(struct guard *g, const struct netaddr *ip, const char **name_r)
{
	const char *action = "DUNNO", *name = "dunno";
	const struct decision *d = netset_contains(&g->trusted, ip) ? NULL
				   : decision_table_lookup(g->decisions, ip, now_us());
	if (d && d->action == DECISION_BAN) {
		action = "REJECT Access denied";
		name = "reject";
	} else if (d && d->action == DECISION_DIVERT) {
		/* still on the real server although diverted (an old connection): a real MTA
		 * retries, and its retry lands in the honeypot, which hands mail for the
		 * protected domains on; an enumerator learns nothing */
		action = "DEFER Service temporarily unavailable";
		name = "defer";
	}
	if (name_r)
		*name_r = name;
	return action;
}

void guard_rcpt(struct guard *g, const struct guard_rcpt_obs *o)
{
	char id[DECISION_ID_LEN];
	decision_new_id(id);
	char ip[NETADDR_STRLEN];
	netaddr_format(&o->ip, ip, sizeof(ip));
	bool trusted = netset_contains(&g->trusted, &o->ip);
	const char *at = strrchr(o->recipient, '@');
	char local[256];
	size_t ll = at ? (size_t)(at - o->recipient) : strlen(o->recipient);
	if (ll >= sizeof(local))
		ll = sizeof(local) - 1;
	memcpy(local, o->recipient, ll);
	local[ll] = '\0';
	bool trap = traps_user(g->traps, local);
	if (!trusted) {
		const char *ev[1] = { id };
		if (trap)
			decide(g, &o->ip, DECISION_DIVERT, "trap_user", "guard", ev, 1, 0, NULL, NULL,
			       NULL);
		if (o->known == 0 && !o->record_only) {
			detect_rcpt_unknown(g->detect, &o->ip, id, at ? at + 1 : NULL, now_us(),
					    &g->conv);
			apply_convictions(g);
		}
	}
	struct mxb_event *evt = mxb_event_new("guard_rcpt");
	if (evt) {
		mxb_event_str(evt, "origin", o->origin);
		mxb_event_str(evt, "recipient", o->recipient);
		str_or_null(evt, "sender", o->sender);
		tri_bool(evt, "known", o->known);
		mxb_event_bool(evt, "trap", trap);
		mxb_event_str(evt, "answer", o->answer ? o->answer : "none");
		emit(g, evt, id, ip, o->port);
	}
}

void guard_offence(struct guard *g, const struct netaddr *ip, unsigned port, const char *kind,
		   const char *detail, size_t detail_len)
{
	char id[DECISION_ID_LEN];
	decision_new_id(id);
	char ips[NETADDR_STRLEN];
	netaddr_format(ip, ips, sizeof(ips));
	if (!netset_contains(&g->trusted, ip)) {
		detect_offence(g->detect, ip, id, now_us(), &g->conv);
		apply_convictions(g);
	}
	struct mxb_event *evt = mxb_event_new("guard_log");
	if (evt) {
		mxb_event_str(evt, "kind", kind);
		mxb_event_strn(evt, "detail", detail, detail_len > DETAIL_MAX ? DETAIL_MAX : detail_len);
		emit(g, evt, id, ips, port);
	}
}

void guard_log_obs(struct guard *g, const struct log_obs *o)
{
	int64_t now = now_us();
	switch (o->kind) {
	case LOG_AUTH_FAIL: {
		bool postfix = !strcmp(o->origin, "postfix_log");
		/* Dovecot's hook saw it already: Postfix SASL through Dovecot is service smtp */
		bool live = postfix ? g->dp_smtp_us && now - g->dp_smtp_us < HOOK_LIVE_US
				    : g->dp_other_us && now - g->dp_other_us < HOOK_LIVE_US;
		/* the other log's line of the same failure counts once */
		uint32_t uh = 2166136261u;
		for (const char *p = o->username; *p; p++)
			uh = (uh ^ (unsigned char)*p) * 16777619u;
		bool dup = false;
		for (size_t i = 0; i < 256 && !dup; i++) {
			struct seen_fail *f = &g->recent[i];
			if (f->ts && !f->paired && f->postfix != postfix && f->user == uh &&
			    now - f->ts < PAIR_US && netaddr_equal(&f->ip, &o->ip)) {
				f->paired = dup = true;
			}
		}
		if (!dup && o->username[0]) {
			struct seen_fail *f = &g->recent[g->recent_next++ % 256];
			f->ip = o->ip;
			f->user = uh;
			f->ts = now;
			f->postfix = postfix;
			f->paired = false;
		}
		struct guard_auth_obs a = {
			.origin = o->origin, .stage = "log",
			.service = o->service[0] ? o->service : NULL,
			.username = o->username[0] ? o->username : NULL,
			.ip = o->ip, .port = o->port, .success = 0, .user_known = o->user_known,
			.count = o->attempts, .record_only = live || dup,
		};
		guard_auth(g, &a, NULL);
		break;
	}
	case LOG_RCPT_UNKNOWN: {
		struct guard_rcpt_obs r = {
			.origin = o->origin, .recipient = o->recipient, .ip = o->ip, .port = o->port,
			.known = 0, .record_only = postfix_policy_confirming(g->ppolicy),
		};
		guard_rcpt(g, &r);
		break;
	}
	case LOG_OFFENCE:
		guard_offence(g, &o->ip, o->port, o->offence, o->detail, strlen(o->detail));
		break;
	case LOG_NONE:
		break;
	}
}

void guard_account_saved(struct guard *g, const struct deception_account *a)
{
	if (g && a && a->username && a->password)
		traps_add_credential(g->traps, a->username, a->password);
}

/* ---- operators' requests ---- */

static void copy_field(char *dst, size_t n, const char *v)
{
	size_t l = strnlen(v, n - 1);
	memcpy(dst, v, l);
	dst[l] = '\0';
}

/* One request file of `mxbait decisions`: key=value lines (op, source, action,
 * duration_ms, reason), applied through guard_operator() like the web's actions. */
static void apply_request(struct guard *g, const char *text, const char *name)
{
	char op[16] = "", source[NETADDR_STRLEN + 8] = "", action[16] = "", reason[DECISION_REASON_LEN] = "manual";
	char origin[DECISION_ORIGIN_LEN] = "manual"; /* manual, or peers (federation) */
	long long duration_ms = 0;
	const char *p = text;
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t ll = nl ? (size_t)(nl - p) : strlen(p);
		const char *eq = memchr(p, '=', ll);
		if (eq) {
			size_t kl = (size_t)(eq - p), vl = ll - kl - 1;
			char v[128];
			if (vl < sizeof(v)) {
				memcpy(v, eq + 1, vl);
				v[vl] = '\0';
				if (kl == 2 && !memcmp(p, "op", 2))
					copy_field(op, sizeof(op), v);
				else if (kl == 6 && !memcmp(p, "source", 6))
					copy_field(source, sizeof(source), v);
				else if (kl == 6 && !memcmp(p, "action", 6))
					copy_field(action, sizeof(action), v);
				else if (kl == 6 && !memcmp(p, "reason", 6))
					copy_field(reason, sizeof(reason), v);
				else if (kl == 6 && !memcmp(p, "origin", 6) && !strcmp(v, "peers"))
					copy_field(origin, sizeof(origin), v);
				else if (kl == 11 && !memcmp(p, "duration_ms", 11))
					duration_ms = strtoll(v, NULL, 10);
			}
		}
		p += ll + (nl ? 1 : 0);
	}
	struct guard_request rq = { .reason = reason, .duration_ms = duration_ms,
				    .origin = origin };
	if (netaddr_parse(source, &rq.src) != 0) {
		log_msg(LOG_WARNING, NULL, "guard: request %s: bad source: ignored", name);
		return;
	}
	if (!strcmp(op, "del")) {
		rq.op = GUARD_OP_DEL;
	} else if (!strcmp(op, "allow")) {
		rq.op = GUARD_OP_ALLOW;
	} else {
		rq.op = GUARD_OP_ADD;
		rq.action = decision_action_parse(action);
	}
	char by[300];
	snprintf(by, sizeof(by), "request %s", name);
	rq.by = by;
	struct decision d;
	if (guard_operator(g, &rq, &d) == GUARD_OP_BAD)
		log_msg(LOG_WARNING, NULL, "guard: request %s: bad action: ignored", name);
}

const char *guard_op_result_name(enum guard_op_result r)
{
	switch (r) {
	case GUARD_OP_DONE: return "done";
	case GUARD_OP_UNCHANGED: return "unchanged";
	case GUARD_OP_NOT_FOUND: return "not_found";
	case GUARD_OP_TRUSTED: return "trusted";
	case GUARD_OP_FULL: return "full";
	default: return "bad";
	}
}

enum guard_op_result guard_operator(struct guard *g, const struct guard_request *r,
				    struct decision *d_r)
{
	memset(d_r, 0, sizeof(*d_r));
	int64_t now = r->now_us ? r->now_us : now_us();
	char src_s[NETADDR_STRLEN];
	netaddr_format(&r->src, src_s, sizeof(src_s));
	const char *by = r->by ? r->by : "an operator";
	if (r->op == GUARD_OP_DEL) {
		const struct decision *cur = decision_table_get(g->decisions, &r->src, now);
		if (!cur || (r->expect_id && strcmp(cur->id, r->expect_id)))
			return GUARD_OP_NOT_FOUND;
		if (decision_table_remove(g->decisions, &r->src, now, d_r) != 0)
			return GUARD_OP_NOT_FOUND;
		emit_decision(g, d_r, "del", r->by, now);
		enforce(g, d_r, NFT_OP_DEL, now);
		log_msg(LOG_NOTICE, NULL, "guard: decision %s about %s (%s) removed by %s", d_r->id,
			src_s, decision_action_name(d_r->action), by);
		return GUARD_OP_DONE;
	}
	enum decision_action act = r->op == GUARD_OP_ALLOW ? DECISION_ALLOW : r->action;
	if (act == DECISION_NONE || (r->op == GUARD_OP_ADD && act == DECISION_ALLOW))
		return GUARD_OP_BAD;
	const char *origin = r->origin && !strcmp(r->origin, "peers") ? "peers" : "manual";
	if (!strcmp(origin, "peers")) {
		/* what peers agree on never touches a trusted source, never allows, and
		 * never replaces a local decision (the operator's or the guard's own) */
		if (act == DECISION_ALLOW || guard_trusted(g, &r->src)) {
			log_msg(LOG_NOTICE, NULL, "guard: %s: peers' decision about a trusted "
				"source %s ignored", by, src_s);
			return GUARD_OP_TRUSTED;
		}
		const struct decision *local = decision_table_lookup(g->decisions, &r->src, now);
		if (local && strcmp(local->origin, "peers")) {
			log_msg(LOG_INFO, NULL, "guard: %s: peers' decision about %s left to the "
				"local decision %s (%s, %s)", by, src_s, local->id,
				decision_action_name(local->action), local->origin);
			*d_r = *local;
			return GUARD_OP_UNCHANGED;
		}
	}
	/* idempotent: the same decision of the same origin in force is not made twice */
	const struct decision *cur = decision_table_get(g->decisions, &r->src, now);
	if (cur && cur->action == act && !strcmp(cur->origin, origin)) {
		*d_r = *cur;
		return GUARD_OP_UNCHANGED;
	}
	uint64_t ms = r->duration_ms < 0 ? UINT64_MAX
		      : r->duration_ms > 0 ? (uint64_t)r->duration_ms
		      : act == DECISION_ALLOW ? UINT64_MAX : g->cfg->decision_duration_ms;
	bool trusted = false;
	enum decide_result res = decide(g, &r->src, act, r->reason && *r->reason ? r->reason
							: "manual", origin, NULL, 0, ms, r->by, d_r,
					&trusted);
	if (trusted)
		return GUARD_OP_TRUSTED;
	if (res == DECIDE_FULL)
		return GUARD_OP_FULL;
	if (res != DECIDE_NEW) {
		cur = decision_table_lookup(g->decisions, &r->src, now);
		if (cur)
			*d_r = *cur;
		return GUARD_OP_UNCHANGED;
	}
	log_msg(LOG_NOTICE, NULL, "guard: decision %s (%s %s) asked for by %s", d_r->id,
		decision_action_name(d_r->action), src_s, by);
	return GUARD_OP_DONE;
}

static void poll_requests(struct guard *g)
{
	DIR *dir = opendir(g->request_dir);
	if (!dir)
		return;
	struct dirent *de;
	unsigned n = 0;
	while ((de = readdir(dir)) && n < REQUESTS_PER_TICK) {
		if (de->d_name[0] == '.' || !strncmp(de->d_name, "tmp-", 4))
			continue;
		struct buf path;
		buf_init(&path, 0);
		buf_printf(&path, "%s/%s", g->request_dir, de->d_name);
		int fd = open(path.data, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd >= 0) {
			char text[REQUEST_MAX + 1];
			ssize_t r = read(fd, text, REQUEST_MAX);
			close(fd);
			if (r >= 0) {
				text[r] = '\0';
				apply_request(g, text, de->d_name);
			}
		}
		if (unlink(path.data) != 0 && errno != ENOENT)
			log_msg(LOG_WARNING, NULL, "guard: cannot remove %s: %s", path.data,
				strerror(errno));
		buf_free(&path);
		n++;
	}
	closedir(dir);
}

/* ---- the hand-off worker ---- */

static void handoff_argv(struct guard *g)
{
	static char a0[] = "mxbait", a1[] = "handoff", a2[] = "--daemon", a3[] = "-d",
		    a5[] = "--backend", a7[] = "--helo", a9[] = "--domains";
	const struct mxb_config *cfg = g->cfg;
	buf_init(&g->ho.domains, 0);
	for (size_t i = 0; i < cfg->n_local_domains; i++)
		buf_printf(&g->ho.domains, "%s%s", i ? "," : "", cfg->local_domains[i]);
	char **v = g->ho.argv;
	v[0] = a0; v[1] = a1; v[2] = a2; v[3] = a3; v[4] = cfg->data_dir;
	v[5] = a5; v[6] = cfg->backend_mta; v[7] = a7; v[8] = cfg->hostname;
	v[9] = a9; v[10] = g->ho.domains.data ? g->ho.domains.data : a0; v[11] = NULL;
}

static void handoff_start(struct guard *g)
{
	pid_t pid = fork();
	if (pid < 0) {
		log_msg(LOG_WARNING, NULL, "guard: cannot start the hand-off worker: %s",
			strerror(errno));
		return;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		close_range(3, ~0U, 0);
		execv("/proc/self/exe", g->ho.argv);
		_exit(127);
	}
	g->ho.pid = pid;
	log_msg(LOG_INFO, NULL, "guard: hand-off worker started (pid %ld) for backend %s",
		(long)pid, g->cfg->backend_mta);
}

/* Gone (reaped here, or by serve's SIGCHLD handler)?  Restart with backoff. */
static void handoff_watch(struct guard *g)
{
	if (!g->cfg->backend_mta || !*g->cfg->backend_mta)
		return;
	int64_t now = now_us();
	if (g->ho.pid > 0) {
		int st;
		pid_t r = waitpid(g->ho.pid, &st, WNOHANG);
		if (r == 0)
			return;
		log_msg(LOG_WARNING, NULL, "guard: hand-off worker (pid %ld) exited: restarting",
			(long)g->ho.pid);
		g->ho.pid = 0;
		g->ho.backoff_s = g->ho.backoff_s ? (g->ho.backoff_s * 2 > 60 ? 60 : g->ho.backoff_s * 2)
						  : 1;
		g->ho.next_start_us = now + (int64_t)g->ho.backoff_s * 1000000;
	}
	if (now >= g->ho.next_start_us)
		handoff_start(g);
}

static void handoff_stop(struct guard *g)
{
	if (g->ho.pid <= 0)
		return;
	kill(g->ho.pid, SIGTERM);
	for (int i = 0; i < 500; i++) {
		pid_t r = waitpid(g->ho.pid, NULL, WNOHANG);
		if (r == g->ho.pid || (r < 0 && errno == ECHILD)) {
			g->ho.pid = 0;
			return;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	kill(g->ho.pid, SIGKILL);
	waitpid(g->ho.pid, NULL, 0);
	g->ho.pid = 0;
}

/* DATA_DIR/federate/peer-traps (written by the reporter, federate/consensus.c):
 * reloaded when it changes, bounded by traps' own limit (40 MiB read at most). */
static void load_peer_traps(struct guard *g)
{
	struct stat st;
	if (!g->peer_traps_path)
		return;
	if (stat(g->peer_traps_path, &st) != 0) {
		if (traps_peer_count(g->traps)) {
			traps_set_peer(g->traps, "", 0);
			memset(&g->peer_traps_mtime, 0, sizeof(g->peer_traps_mtime));
		}
		return;
	}
	if (st.st_mtim.tv_sec == g->peer_traps_mtime.tv_sec &&
	    st.st_mtim.tv_nsec == g->peer_traps_mtime.tv_nsec && st.st_size == g->peer_traps_size)
		return;
	if (!S_ISREG(st.st_mode) || st.st_size > 40 * 1024 * 1024)
		return;
	int fd = open(g->peer_traps_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	char *text = malloc((size_t)st.st_size + 1);
	ssize_t got = text ? read(fd, text, (size_t)st.st_size) : -1;
	close(fd);
	if (got >= 0) {
		size_t n = traps_set_peer(g->traps, text, (size_t)got);
		g->peer_traps_mtime = st.st_mtim;
		g->peer_traps_size = st.st_size;
		log_msg(LOG_INFO, NULL, "guard: %zu trap hashes from peers", n);
	}
	free(text);
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	struct guard *g = arg;
	poll_requests(g);
	load_peer_traps(g); /* a stat(2) a second; reread only when it changed */
	if (++g->ticks % SWEEP_EVERY == 0) {
		detect_sweep(g->detect, now_us());
		decision_table_active(g->decisions, now_us(), NULL, NULL);
	}
	if (g->ppolicy)
		postfix_policy_tick(g->ppolicy);
	handoff_watch(g);
}

/* ---- start-up ---- */

static void load_decision_row(struct guard *g, sqlite3_stmt *st, int64_t now)
{
	struct decision d;
	memset(&d, 0, sizeof(d));
	const char *id = (const char *)sqlite3_column_text(st, 0);
	const char *src = (const char *)sqlite3_column_text(st, 1);
	const char *act = (const char *)sqlite3_column_text(st, 2);
	const char *reason = (const char *)sqlite3_column_text(st, 3);
	const char *origin = (const char *)sqlite3_column_text(st, 4);
	if (!id || !src || netaddr_parse(src, &d.src) != 0)
		return;
	snprintf(d.id, sizeof(d.id), "%s", id);
	d.action = decision_action_parse(act);
	snprintf(d.reason, sizeof(d.reason), "%s", reason ? reason : "");
	snprintf(d.origin, sizeof(d.origin), "%s", origin ? origin : "guard");
	d.created_us = sqlite3_column_int64(st, 5);
	d.expires_us = sqlite3_column_int64(st, 6);
	d.level = (unsigned)sqlite3_column_int(st, 7);
	if (sqlite3_column_type(st, 8) != SQLITE_NULL)
		d.action = DECISION_NONE; /* removed early: history only */
	decision_table_restore(g->decisions, &d, now);
}

/* Decisions (active ones and the history of levels) and trap credentials. */
static int load_state(struct guard *g, const char *db_path, char **err_r)
{
	sqlite3 *db = NULL;
	if (db_open_ro(db_path, &db, err_r) != DB_OK)
		return -1;
	free(*err_r);
	*err_r = NULL;
	int64_t now = now_us();
	sqlite3_stmt *st = NULL;
	int n = 0;
	/* the newest decision per source last, so it wins */
	if (sqlite3_prepare_v2(db, "SELECT id, source, action, reason, origin, created_us,"
			       " expires_us, level, ended_us FROM decisions ORDER BY created_us",
			       -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW) {
			load_decision_row(g, st, now);
			n++;
		}
	}
	sqlite3_finalize(st);
	st = NULL;
	int t = 0;
	if (sqlite3_prepare_v2(db, "SELECT username, password FROM accounts WHERE password"
			       " IS NOT NULL", -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW)
			t += traps_add_credential(g->traps, (const char *)sqlite3_column_text(st, 0),
						  (const char *)sqlite3_column_text(st, 1)) == 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	log_msg(LOG_INFO, NULL, "guard: %d decisions read (%zu in force), %d trap credentials",
		n, decision_table_active(g->decisions, now, NULL, NULL), t);
	return 0;
}

/* Kernel and decisions agree: what the kernel holds without a decision goes, what a
 * decision needs and the kernel lacks is added (with the time it has left). */
struct reconcile {
	struct guard *g;
	int64_t now;
	unsigned removed, added, kept;
};

static void reconcile_elem(void *arg, const struct nft_elem *e)
{
	struct reconcile *r = arg;
	const struct decision *d = decision_table_get(r->g->decisions, &e->addr, r->now);
	if (e->set == NFT_SET_ALLOW) {
		if (netset_contains(&r->g->trusted, &e->addr) || (d && d->action == DECISION_ALLOW)) {
			r->kept++;
			return;
		}
	} else if (d && set_of(d->action) == e->set) {
		r->kept++;
		return;
	}
	nft_client_update(r->g->nft, NFT_OP_DEL, e->set, &e->addr, 0);
	r->removed++;
}

static void reconcile_add(void *arg, const struct decision *d)
{
	struct reconcile *r = arg;
	if (set_of(d->action) == NFT_SET_NONE)
		return;
	/* add again: an element already there keeps its place (add is idempotent in nft,
	 * and the fresh timeout is the decision's remaining time) */
	enforce(r->g, d, NFT_OP_ADD, r->now);
	r->added++;
}

static int reconcile(struct guard *g, char **err_r)
{
	struct reconcile r = { .g = g, .now = now_us() };
	if (nft_client_list(g->nft, reconcile_elem, &r, err_r) != 0)
		return -1;
	decision_table_active(g->decisions, r.now, reconcile_add, &r);
	log_msg(LOG_INFO, NULL, "guard: kernel sets reconciled: %u elements removed, %u "
		"decisions (re)applied, %u kept", r.removed, r.added, r.kept);
	return 0;
}

struct guard *guard_new(const struct mxb_config *cfg, struct event_base *base, char **err_r)
{
	struct guard *g = calloc(1, sizeof(*g));
	if (!g) {
		*err_r = strdup("guard: out of memory");
		return NULL;
	}
	g->cfg = cfg;
	g->base = base;
	netset_init(&g->trusted);
	struct buf e;
	buf_init(&e, 0);
	if (cfg->n_trusted_networks) {
		for (size_t i = 0; i < cfg->n_trusted_networks; i++) {
			struct netaddr a;
			if (netaddr_parse(cfg->trusted_networks[i], &a) == 0)
				netset_add(&g->trusted, &a);
		}
	} else if (netset_add_local_addresses(&g->trusted) != 0) {
		buf_printf(&e, "guard: cannot read this host's addresses for trusted_networks");
		goto fail;
	}
	struct decision_policy dp = {
		.duration_ms = cfg->decision_duration_ms,
		.max_duration_ms = cfg->decision_max_duration_ms,
		.ban_after = cfg->ban_after,
		.max_entries = cfg->guard_max_keys,
	};
	struct detect_config dc = {
		.window_ms = cfg->guard_window_ms,
		.user_min_ips = cfg->guard_user_min_ips,
		.pair_min_ips = cfg->guard_pair_min_ips,
		.ip_failures = cfg->guard_ip_failures,
		.known_user_failures = cfg->guard_known_user_failures,
		.prefix_min_ips = cfg->guard_prefix_min_ips,
		.ip_unknown_rcpts = cfg->guard_ip_unknown_rcpts,
		.domain_unknown_rcpts = cfg->guard_domain_unknown_rcpts,
		.max_keys = cfg->guard_max_keys,
	};
	g->decisions = decision_table_new(&dp);
	g->detect = detect_new(&dc);
	g->traps = traps_new((const char *const *)cfg->local_domains, cfg->n_local_domains,
			     (const char *const *)cfg->guard_trap_users, cfg->n_guard_trap_users);
	if (!g->decisions || !g->detect || !g->traps) {
		buf_printf(&e, "guard: out of memory");
		goto fail;
	}
	char *why = NULL;
	if (cfg->n_dovecot_policy_listen &&
	    !(g->dpolicy = dovecot_policy_new(base, cfg, g, &why))) {
		buf_printf(&e, "%s", why ? why : "dovecot policy server");
		free(why);
		goto fail;
	}
	if (cfg->n_postfix_policy_listen &&
	    !(g->ppolicy = postfix_policy_new(base, cfg, g, &why))) {
		buf_printf(&e, "%s", why ? why : "postfix policy server");
		free(why);
		goto fail;
	}
	if (cfg->divert) {
		g->nft = nft_client_spawn(cfg, g->trusted.v, g->trusted.n, &why);
		if (!g->nft) {
			buf_printf(&e, "guard: enforcement (divert = yes): %s", why ? why : "?");
			free(why);
			goto fail;
		}
	}
	buf_free(&e);
	return g;
fail:
	*err_r = buf_steal(&e, NULL);
	guard_free(&g);
	return NULL;
}

int guard_start(struct guard *g, struct eventstore *es, const char *db_path, const char *data_dir,
		char **err_r)
{
	g->es = es;
	struct buf p;
	buf_init(&p, 0);
	buf_printf(&p, "%s/%s", data_dir, REQUEST_DIR);
	g->request_dir = buf_steal(&p, NULL);
	if (mkdir(g->request_dir, 0700) != 0 && errno != EEXIST) {
		*err_r = strdup("guard: cannot create the requests directory");
		return -1;
	}
	if (asprintf(&g->peer_traps_path, "%s/federate/peer-traps", data_dir) < 0)
		g->peer_traps_path = NULL;
	load_peer_traps(g);
	eventstore_flush(es); /* the decisions table is up to date */
	if (load_state(g, db_path, err_r) != 0)
		return -1;
	if (g->nft) {
		if (reconcile(g, err_r) != 0)
			return -1;
		nft_client_attach(g->nft, g->base);
	}
	if (g->cfg->n_watch_log_files || g->cfg->watch_journal) {
		g->logwatch = logwatch_start(g->cfg, g->base, g, err_r);
		if (!g->logwatch)
			return -1;
	}
	g->tick_ev = event_new(g->base, -1, EV_PERSIST, tick_cb, g);
	struct timeval tv = { TICK_MS / 1000, (TICK_MS % 1000) * 1000 };
	if (!g->tick_ev || event_add(g->tick_ev, &tv) != 0) {
		*err_r = strdup("guard: cannot start its timer");
		return -1;
	}
	poll_requests(g);
	if (g->cfg->backend_mta && *g->cfg->backend_mta) {
		handoff_argv(g);
		handoff_start(g);
	}
	log_msg(LOG_INFO, NULL, "guard ready: %zu trusted networks, dovecot policy %s, postfix "
		"policy %s, log watch %s, divert %s", g->trusted.n, g->dpolicy ? "on" : "off",
		g->ppolicy ? "on" : "off", g->logwatch ? "on" : "off", g->nft ? "on" : "off");
	return 0;
}

void guard_free(struct guard **gp)
{
	struct guard *g = gp ? *gp : NULL;
	if (!g)
		return;
	handoff_stop(g);
	buf_free(&g->ho.domains);
	logwatch_stop(&g->logwatch);
	dovecot_policy_free(&g->dpolicy);
	postfix_policy_free(&g->ppolicy);
	nft_client_free(&g->nft);
	if (g->tick_ev)
		event_free(g->tick_ev);
	decision_table_free(&g->decisions);
	detect_free(&g->detect);
	traps_free(&g->traps);
	convictions_free(&g->conv);
	netset_free(&g->trusted);
	free(g->request_dir);
	free(g->peer_traps_path);
	free(g);
	*gp = NULL;
}
