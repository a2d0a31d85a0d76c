/* metrics: event counters and the Prometheus text exposition (see metrics.h). */
#include "web/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/event.h"
#include "store/eventstore.h"

static const char *const auth_results[METRICS_AUTH_RESULTS] = {
	"ok", "fail", "tempfail", "aborted", "malformed", "not_enabled", "tls_required", "other"};
static const char *const reject_reasons[METRICS_REJECT_REASONS] = {
	"size", "no_space", "io", "hangup", "timeout", "other"};
static const char *const refusals[METRICS_REFUSALS] = {
	"limit_connections", "limit_per_ip", "limit_rate", "limit_per_prefix"};

static const char *const decision_actions[METRICS_ACTIONS] = {"delay", "divert", "ban", "allow"};
static const char *const decision_origins[METRICS_ORIGINS] = {"guard", "manual"};
static const char *const guard_auth_answers[METRICS_GUARD_AUTH] = {
	"allow", "delay", "reject", "none", "other"};
static const char *const guard_rcpt_answers[METRICS_GUARD_RCPT] = {
	"dunno", "defer", "reject", "sleep", "none", "other"};
/* report/outbox.h's states, in its order */
static const char *const report_states[] = {
	"addressing", "queued", "held", "manual", "sending", "transmitting", "sent",
	"duplicate", "rejected", "failed", "expired", "unknown"};
#define N_REPORT_STATES (sizeof(report_states) / sizeof(report_states[0]))

void metrics_init(struct metrics *m)
{
	memset(m, 0, sizeof(*m));
	m->start_us = mxb_now_us();
}

long metrics_event_field(const struct mxb_event *ev, const char *key, const char **val_r)
{
	const char *s = ev->fields.data;
	size_t len = ev->fields.len;
	if (!s)
		return -1;
	char pat[64];
	int pl = snprintf(pat, sizeof(pat), ",\"%s\":", key);
	if (pl <= 0 || (size_t)pl >= sizeof(pat))
		return -1;
	const char *p = memmem(s, len, pat, (size_t)pl);
	if (!p)
		return -1;
	const char *v = p + pl, *end = s + len, *q = v;
	if (q < end && *q == '"') {
		for (q++; q < end && *q != '"'; q++)
			if (*q == '\\')
				q++;
		if (q < end)
			q++;
	} else {
		while (q < end && *q != ',')
			q++;
	}
	*val_r = v;
	return q - v;
}

static bool field_is(const struct mxb_event *ev, const char *key, const char *want)
{
	const char *v;
	long n = metrics_event_field(ev, key, &v);
	return n >= 0 && (size_t)n == strlen(want) && !memcmp(v, want, (size_t)n);
}

static int role_of(const char *proto)
{
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		if (!strcmp(proto, mxb_role_name((enum mxb_role)r)))
			return r;
	return -1;
}

/* The index of a quoted enum value in names (the last one is "other"). */
static int enum_index(const struct mxb_event *ev, const char *key, const char *const *names,
		      int n)
{
	const char *v;
	long len = metrics_event_field(ev, key, &v);
	if (len >= 2 && v[0] == '"') {
		for (int i = 0; i < n - 1; i++)
			if ((size_t)len == strlen(names[i]) + 2 && !memcmp(v + 1, names[i], (size_t)len - 2))
				return i;
	}
	return n - 1;
}

void metrics_observe(void *ctx, const struct mxb_event *ev)
{
	struct metrics *m = ctx;
	int r = role_of(ev->proto);
	const char *name = ev->name;
	if (!strcmp(name, "connect")) {
		if (r >= 0)
			atomic_fetch_add_explicit(&m->connections[r], 1, memory_order_relaxed);
	} else if (!strcmp(name, "disconnect")) {
		if (r < 0)
			return;
		atomic_fetch_add_explicit(&m->disconnects[r], 1, memory_order_relaxed);
		for (int i = 0; i < METRICS_REFUSALS; i++) {
			char q[40];
			snprintf(q, sizeof(q), "\"%s\"", refusals[i]);
			if (field_is(ev, "reason", q))
				atomic_fetch_add_explicit(&m->refused[r][i], 1, memory_order_relaxed);
		}
	} else if (!strcmp(name, "auth")) {
		if (r >= 0) {
			int i = enum_index(ev, "result", auth_results, METRICS_AUTH_RESULTS);
			atomic_fetch_add_explicit(&m->auth[r][i], 1, memory_order_relaxed);
		}
	} else if (!strcmp(name, "message")) {
		if (r >= 0)
			atomic_fetch_add_explicit(&m->messages[r], 1, memory_order_relaxed);
		const char *v;
		long n = metrics_event_field(ev, "size", &v);
		if (n > 0 && n < 20) {
			char num[24];
			memcpy(num, v, (size_t)n);
			num[n] = '\0';
			atomic_fetch_add_explicit(&m->message_bytes, strtoull(num, NULL, 10),
						  memory_order_relaxed);
		}
	} else if (!strcmp(name, "message_rejected")) {
		int i = enum_index(ev, "reason", reject_reasons, METRICS_REJECT_REASONS);
		atomic_fetch_add_explicit(&m->rejected[i], 1, memory_order_relaxed);
	} else if (!strcmp(name, "offence")) {
		atomic_fetch_add_explicit(&m->offences, 1, memory_order_relaxed);
	} else if (!strcmp(name, "decision")) {
		if (field_is(ev, "op", "\"del\"")) {
			atomic_fetch_add_explicit(&m->decisions_removed, 1, memory_order_relaxed);
			return;
		}
		/* the names of both lists have no "other": an unknown one is not counted */
		int a = enum_index(ev, "action", decision_actions, METRICS_ACTIONS + 1);
		int o = enum_index(ev, "origin", decision_origins, METRICS_ORIGINS + 1);
		if (a < METRICS_ACTIONS && o < METRICS_ORIGINS)
			atomic_fetch_add_explicit(&m->decisions[a][o], 1, memory_order_relaxed);
	} else if (!strcmp(name, "guard_auth")) {
		int i = enum_index(ev, "answer", guard_auth_answers, METRICS_GUARD_AUTH);
		atomic_fetch_add_explicit(&m->guard_auth[i], 1, memory_order_relaxed);
	} else if (!strcmp(name, "guard_rcpt")) {
		int i = enum_index(ev, "answer", guard_rcpt_answers, METRICS_GUARD_RCPT);
		atomic_fetch_add_explicit(&m->guard_rcpt[i], 1, memory_order_relaxed);
	} else if (!strcmp(name, "guard_log")) {
		atomic_fetch_add_explicit(&m->guard_log, 1, memory_order_relaxed);
	} else if (!strcmp(name, "rcpt")) {
		if (field_is(ev, "accepted", "true"))
			atomic_fetch_add_explicit(&m->rcpt_accepted, 1, memory_order_relaxed);
		else
			atomic_fetch_add_explicit(&m->rcpt_denied, 1, memory_order_relaxed);
	}
}

uint64_t metrics_open(const struct metrics *m, enum mxb_role r)
{
	unsigned long long c = atomic_load_explicit(&m->connections[r], memory_order_relaxed);
	unsigned long long d = atomic_load_explicit(&m->disconnects[r], memory_order_relaxed);
	return c > d ? c - d : 0;
}

void metrics_http(struct metrics *m, int status)
{
	int cls = status / 100;
	if (cls >= 1 && cls <= 5)
		atomic_fetch_add_explicit(&m->http_requests[cls], 1, memory_order_relaxed);
}

static unsigned long long ld(const atomic_ullong *a)
{
	return atomic_load_explicit(a, memory_order_relaxed);
}

static void head(struct buf *o, const char *name, const char *type, const char *help)
{
	buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_render(const struct metrics *m, const struct eventstore_stats *es,
		    const struct metrics_disk *d, struct buf *o)
{
	head(o, "mxbait_build_info", "gauge", "Version of the running mxbait (always 1).");
	buf_printf(o, "mxbait_build_info{version=\"%s\"} 1\n", MXB_VERSION);
	head(o, "mxbait_start_time_seconds", "gauge", "When the daemon started, Unix time.");
	buf_printf(o, "mxbait_start_time_seconds %.3f\n", (double)m->start_us / 1e6);

	head(o, "mxbait_connections_total", "counter",
	     "Connections accepted by listener role since start (refused ones included).");
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		buf_printf(o, "mxbait_connections_total{role=\"%s\"} %llu\n",
			   mxb_role_name((enum mxb_role)r), ld(&m->connections[r]));
	head(o, "mxbait_connections_refused_total", "counter",
	     "Connections refused by an admission limit, by role and limit.");
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		for (int i = 0; i < METRICS_REFUSALS; i++)
			buf_printf(o, "mxbait_connections_refused_total{role=\"%s\",limit=\"%s\"} %llu\n",
				   mxb_role_name((enum mxb_role)r),
				   refusals[i] + strlen("limit_"), /* the label: "per_ip", ... */
				   ld(&m->refused[r][i]));
	head(o, "mxbait_sessions_open", "gauge", "Sessions open now, by role.");
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		buf_printf(o, "mxbait_sessions_open{role=\"%s\"} %llu\n",
			   mxb_role_name((enum mxb_role)r),
			   (unsigned long long)metrics_open(m, (enum mxb_role)r));
	head(o, "mxbait_auth_attempts_total", "counter",
	     "Authentication attempts since start, by protocol (listener role) and result.");
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		for (int i = 0; i < METRICS_AUTH_RESULTS; i++)
			buf_printf(o, "mxbait_auth_attempts_total{protocol=\"%s\",result=\"%s\"} %llu\n",
				   mxb_role_name((enum mxb_role)r), auth_results[i],
				   ld(&m->auth[r][i]));
	head(o, "mxbait_messages_captured_total", "counter",
	     "Messages captured (on disk before the 250 reply) since start, by role.");
	for (int r = 0; r < MXB_ROLE_COUNT; r++)
		buf_printf(o, "mxbait_messages_captured_total{role=\"%s\"} %llu\n",
			   mxb_role_name((enum mxb_role)r), ld(&m->messages[r]));
	head(o, "mxbait_messages_captured_bytes_total", "counter",
	     "Bytes of the messages captured since start.");
	buf_printf(o, "mxbait_messages_captured_bytes_total %llu\n", ld(&m->message_bytes));
	head(o, "mxbait_messages_refused_total", "counter",
	     "Message transfers that ended without capture since start, by reason.");
	for (int i = 0; i < METRICS_REJECT_REASONS; i++)
		buf_printf(o, "mxbait_messages_refused_total{reason=\"%s\"} %llu\n",
			   reject_reasons[i], ld(&m->rejected[i]));
	head(o, "mxbait_recipients_total", "counter", "RCPT commands since start, by outcome.");
	buf_printf(o, "mxbait_recipients_total{outcome=\"accepted\"} %llu\n",
		   ld(&m->rcpt_accepted));
	buf_printf(o, "mxbait_recipients_total{outcome=\"denied\"} %llu\n", ld(&m->rcpt_denied));
	head(o, "mxbait_offences_total", "counter", "Protocol offences since start.");
	buf_printf(o, "mxbait_offences_total %llu\n", ld(&m->offences));

	if (es) {
		head(o, "mxbait_eventstore_queue_depth", "gauge",
		     "Events waiting for the event store's writer thread.");
		buf_printf(o, "mxbait_eventstore_queue_depth %llu\n", es->queued);
		head(o, "mxbait_eventstore_events_written_total", "counter",
		     "Events committed to mxbait.db since start.");
		buf_printf(o, "mxbait_eventstore_events_written_total %llu\n", es->written);
		head(o, "mxbait_eventstore_events_dropped_total", "counter",
		     "Events refused because the writer's queue was full (should stay 0).");
		buf_printf(o, "mxbait_eventstore_events_dropped_total %llu\n", es->dropped);
		head(o, "mxbait_eventstore_events_failed_total", "counter",
		     "Events lost to a failed transaction (should stay 0).");
		buf_printf(o, "mxbait_eventstore_events_failed_total %llu\n", es->failed);
		head(o, "mxbait_eventstore_commit_duration_seconds", "histogram",
		     "Time to commit one batch of events (log write and SQLite transaction).");
		for (int i = 0; i < EVENTSTORE_COMMIT_BUCKETS; i++)
			buf_printf(o, "mxbait_eventstore_commit_duration_seconds_bucket{le=\"%g\"} %llu\n",
				   (double)EVENTSTORE_COMMIT_BUCKETS_US[i] / 1e6, es->commit_le[i]);
		buf_printf(o, "mxbait_eventstore_commit_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
			   es->batches);
		buf_printf(o, "mxbait_eventstore_commit_duration_seconds_sum %.6f\n",
			   (double)es->commit_us_sum / 1e6);
		buf_printf(o, "mxbait_eventstore_commit_duration_seconds_count %llu\n", es->batches);
	}
	if (d && d->ok) {
		head(o, "mxbait_spool_bytes", "gauge", "Bytes of captured mail in the spool.");
		buf_printf(o, "mxbait_spool_bytes %llu\n", (unsigned long long)d->spool_bytes);
		head(o, "mxbait_spool_files", "gauge", "Captured messages in the spool.");
		buf_printf(o, "mxbait_spool_files %llu\n", (unsigned long long)d->spool_files);
		head(o, "mxbait_spool_budget_bytes", "gauge", "The spool's disk budget (spool_budget).");
		buf_printf(o, "mxbait_spool_budget_bytes %llu\n", (unsigned long long)d->spool_budget);
		head(o, "mxbait_database_bytes", "gauge",
		     "Size of each SQLite database with its write-ahead log.");
		buf_printf(o, "mxbait_database_bytes{db=\"mxbait\"} %llu\n",
			   (unsigned long long)d->db_bytes);
		buf_printf(o, "mxbait_database_bytes{db=\"analysis\"} %llu\n",
			   (unsigned long long)d->analysis_db_bytes);
		head(o, "mxbait_accounts", "gauge",
		     "Accounts of the credential policy with a password, by kind.");
		buf_printf(o, "mxbait_accounts{kind=\"cracked\"} %lld\n",
			   (long long)d->accounts_cracked);
		buf_printf(o, "mxbait_accounts{kind=\"fixed\"} %lld\n", (long long)d->accounts_fixed);
		head(o, "mxbait_analyzer_backlog_messages", "gauge",
		     "Captured messages the analyzer has not analysed yet.");
		buf_printf(o, "mxbait_analyzer_backlog_messages %lld\n",
			   (long long)d->analyzer_backlog);
		head(o, "mxbait_analyzer_lag_seconds", "gauge",
		     "Age of the oldest captured message not analysed yet (0: none waiting).");
		buf_printf(o, "mxbait_analyzer_lag_seconds %.3f\n", d->analyzer_lag_s);
		head(o, "mxbait_analyzer_messages", "gauge", "Messages in analysis.db.");
		buf_printf(o, "mxbait_analyzer_messages %lld\n", (long long)d->analysis_messages);
	}
	head(o, "mxbait_decisions_total", "counter",
	     "Decisions the guard made since start, by action and origin (guard: detection; "
	     "manual: an operator).");
	for (int a = 0; a < METRICS_ACTIONS; a++)
		for (int g = 0; g < METRICS_ORIGINS; g++)
			buf_printf(o, "mxbait_decisions_total{action=\"%s\",origin=\"%s\"} %llu\n",
				   decision_actions[a], decision_origins[g], ld(&m->decisions[a][g]));
	head(o, "mxbait_decisions_removed_total", "counter",
	     "Decisions ended before their time since start (released by an operator).");
	buf_printf(o, "mxbait_decisions_removed_total %llu\n", ld(&m->decisions_removed));
	head(o, "mxbait_guard_logins_total", "counter",
	     "Logins at the real server the guard saw since start, by its answer.");
	for (int i = 0; i < METRICS_GUARD_AUTH; i++)
		buf_printf(o, "mxbait_guard_logins_total{answer=\"%s\"} %llu\n",
			   guard_auth_answers[i], ld(&m->guard_auth[i]));
	head(o, "mxbait_guard_recipients_total", "counter",
	     "Recipients offered to the real Postfix the guard saw since start, by its answer.");
	for (int i = 0; i < METRICS_GUARD_RCPT; i++)
		buf_printf(o, "mxbait_guard_recipients_total{answer=\"%s\"} %llu\n",
			   guard_rcpt_answers[i], ld(&m->guard_rcpt[i]));
	head(o, "mxbait_guard_log_offences_total", "counter",
	     "Offences in the real server's logs (postscreen, smtpd) since start.");
	buf_printf(o, "mxbait_guard_log_offences_total %llu\n", ld(&m->guard_log));
	if (d && d->decisions_ok) {
		head(o, "mxbait_decisions", "gauge", "Decisions in force now, by action.");
		for (int a = 0; a < METRICS_ACTIONS; a++)
			buf_printf(o, "mxbait_decisions{action=\"%s\"} %lld\n", decision_actions[a],
				   (long long)d->decisions_active[a]);
	}
	if (d && d->intel) {
		head(o, "mxbait_reports", "gauge",
		     "Abuse reports in the outbox (intel.db), by sink and state.");
		/* every state of each sink present, 0 included: steady series for graphs */
		for (size_t i = 0; i < d->n_reports; i++) {
			if (i && !strcmp(d->reports[i].sink, d->reports[i - 1].sink))
				continue;
			for (size_t k = 0; k < N_REPORT_STATES; k++) {
				long long n = 0;
				for (size_t r = i; r < d->n_reports &&
						   !strcmp(d->reports[r].sink, d->reports[i].sink); r++)
					if (!strcmp(d->reports[r].state, report_states[k]))
						n = d->reports[r].n;
				buf_printf(o, "mxbait_reports{sink=\"%s\",state=\"%s\"} %lld\n",
					   d->reports[i].sink, report_states[k], n);
			}
		}
	}
	head(o, "mxbait_http_requests_total", "counter",
	     "Requests the web server answered since start, by status class.");
	for (int c = 1; c <= 5; c++)
		buf_printf(o, "mxbait_http_requests_total{code=\"%dxx\"} %llu\n", c,
			   ld(&m->http_requests[c]));
	head(o, "mxbait_http_auth_failures_total", "counter",
	     "Web requests with wrong credentials since start.");
	buf_printf(o, "mxbait_http_auth_failures_total %llu\n", ld(&m->http_auth_failures));
	head(o, "mxbait_http_rate_limited_total", "counter",
	     "Web requests refused with 429 after too many failed logins.");
	buf_printf(o, "mxbait_http_rate_limited_total %llu\n", ld(&m->http_rate_limited));
	head(o, "mxbait_up", "gauge", "1 while the daemon answers; 0 when its database cannot be read.");
	buf_printf(o, "mxbait_up %d\n", d && !d->ok ? 0 : 1);
}
