/*
 * test_web_metrics: the event observer's counting (src/web/metrics.c), field lookup in
 * hostile event JSON, and the exposition text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/event.h"
#include "store/eventstore.h"
#include "web/metrics.h"

static struct mxb_event *ev(const char *name, const char *proto)
{
	struct mxb_event *e = mxb_event_new(name);
	mxb_event_stamp(e, 1, "S1", "192.0.2.1", 1234, proto);
	return e;
}

static void observe(struct metrics *m, struct mxb_event *e)
{
	metrics_observe(m, e);
	mxb_event_free(&e);
}

static bool has_line(const struct buf *b, const char *line)
{
	char want[256];
	snprintf(want, sizeof(want), "\n%s\n", line);
	return b->data && strstr(b->data, want);
}

static void test_counts(void **state)
{
	(void)state;
	struct metrics m;
	metrics_init(&m);
	observe(&m, ev("connect", "smtp"));
	observe(&m, ev("connect", "smtp"));
	observe(&m, ev("connect", "imaps"));
	struct mxb_event *e = ev("disconnect", "smtp");
	mxb_event_str(e, "reason", "limit_per_ip");
	observe(&m, e);
	/* An auth whose username carries the text of another field: not counted as ok. */
	e = ev("auth", "submission");
	mxb_event_str(e, "username", "x\",\"result\":\"ok");
	mxb_event_bool(e, "success", false);
	mxb_event_str(e, "result", "fail");
	observe(&m, e);
	e = ev("auth", "submission");
	mxb_event_str(e, "username", "alice");
	mxb_event_bool(e, "success", true);
	mxb_event_str(e, "result", "ok");
	observe(&m, e);
	e = ev("auth", "pop3");
	mxb_event_str(e, "result", "brand_new_result");
	observe(&m, e);
	e = ev("message", "smtp");
	mxb_event_int(e, "size", 1234);
	observe(&m, e);
	e = ev("message_rejected", "smtp");
	mxb_event_str(e, "reason", "no_space");
	observe(&m, e);
	e = ev("rcpt", "smtp");
	mxb_event_bool(e, "accepted", false);
	observe(&m, e);
	observe(&m, ev("offence", "smtp"));
	observe(&m, ev("connect", "not-a-role"));

	assert_int_equal(metrics_open(&m, MXB_ROLE_SMTP), 1);
	assert_int_equal(metrics_open(&m, MXB_ROLE_IMAPS), 1);
	struct eventstore_stats es;
	memset(&es, 0, sizeof(es));
	es.queued = 7;
	es.batches = 3;
	es.commit_le[0] = 1;
	for (int i = 1; i < EVENTSTORE_COMMIT_BUCKETS; i++)
		es.commit_le[i] = 3;
	es.commit_us_sum = 4500;
	struct metrics_disk d = {.ok = true, .spool_bytes = 99, .accounts_cracked = 2,
				 .analyzer_backlog = 4, .analyzer_lag_s = 1.5};
	struct buf b;
	buf_init(&b, 0);
	metrics_render(&m, &es, &d, &b);
	assert_true(has_line(&b, "mxbait_connections_total{role=\"smtp\"} 2"));
	assert_true(has_line(&b, "mxbait_connections_total{role=\"imaps\"} 1"));
	assert_true(has_line(&b, "mxbait_connections_refused_total{role=\"smtp\",limit=\"per_ip\"} 1"));
	assert_true(has_line(&b, "mxbait_sessions_open{role=\"smtp\"} 1"));
	assert_true(has_line(&b, "mxbait_auth_attempts_total{protocol=\"submission\",result=\"fail\"} 1"));
	assert_true(has_line(&b, "mxbait_auth_attempts_total{protocol=\"submission\",result=\"ok\"} 1"));
	assert_true(has_line(&b, "mxbait_auth_attempts_total{protocol=\"pop3\",result=\"other\"} 1"));
	assert_true(has_line(&b, "mxbait_messages_captured_total{role=\"smtp\"} 1"));
	assert_true(has_line(&b, "mxbait_messages_captured_bytes_total 1234"));
	assert_true(has_line(&b, "mxbait_messages_refused_total{reason=\"no_space\"} 1"));
	assert_true(has_line(&b, "mxbait_recipients_total{outcome=\"denied\"} 1"));
	assert_true(has_line(&b, "mxbait_offences_total 1"));
	assert_true(has_line(&b, "mxbait_eventstore_queue_depth 7"));
	assert_true(has_line(&b, "mxbait_eventstore_commit_duration_seconds_bucket{le=\"0.001\"} 1"));
	assert_true(has_line(&b, "mxbait_eventstore_commit_duration_seconds_bucket{le=\"+Inf\"} 3"));
	assert_true(has_line(&b, "mxbait_eventstore_commit_duration_seconds_sum 0.004500"));
	assert_true(has_line(&b, "mxbait_spool_bytes 99"));
	assert_true(has_line(&b, "mxbait_accounts{kind=\"cracked\"} 2"));
	assert_true(has_line(&b, "mxbait_analyzer_backlog_messages 4"));
	assert_true(has_line(&b, "mxbait_analyzer_lag_seconds 1.500"));
	assert_true(has_line(&b, "mxbait_up 1"));
	buf_free(&b);
}

/* The guard's events and the outbox counts: decisions by action and origin (a del
 * counted apart), observations by answer, reports zero-filled per sink. */
static void test_guard_and_reports(void **state)
{
	(void)state;
	struct metrics m;
	metrics_init(&m);
	struct mxb_event *e = ev("decision", "guard");
	mxb_event_str(e, "op", "add");
	mxb_event_str(e, "action", "divert");
	mxb_event_str(e, "reason", "\",\"action\":\"ban");
	mxb_event_str(e, "origin", "guard");
	observe(&m, e);
	e = ev("decision", "guard");
	mxb_event_str(e, "op", "add");
	mxb_event_str(e, "action", "allow");
	mxb_event_str(e, "origin", "manual");
	observe(&m, e);
	e = ev("decision", "guard");
	mxb_event_str(e, "op", "del");
	mxb_event_str(e, "action", "allow");
	mxb_event_str(e, "origin", "manual");
	observe(&m, e);
	e = ev("decision", "guard");
	mxb_event_str(e, "op", "add");
	mxb_event_str(e, "action", "launch");
	mxb_event_str(e, "origin", "guard");
	observe(&m, e); /* an unknown action: not counted anywhere */
	e = ev("guard_auth", "guard");
	mxb_event_str(e, "answer", "reject");
	observe(&m, e);
	e = ev("guard_rcpt", "guard");
	mxb_event_str(e, "answer", "dunno");
	observe(&m, e);
	e = ev("guard_rcpt", "guard");
	mxb_event_str(e, "answer", "whatever");
	observe(&m, e);
	observe(&m, ev("guard_log", "guard"));
	struct metrics_disk d = {.ok = true, .decisions_ok = true, .intel = true, .n_reports = 3,
				 .decisions_active = {0, 5, 1, 2}};
	snprintf(d.reports[0].sink, sizeof(d.reports[0].sink), "manual");
	snprintf(d.reports[0].state, sizeof(d.reports[0].state), "manual");
	d.reports[0].n = 4;
	snprintf(d.reports[1].sink, sizeof(d.reports[1].sink), "smtp");
	snprintf(d.reports[1].state, sizeof(d.reports[1].state), "held");
	d.reports[1].n = 2;
	snprintf(d.reports[2].sink, sizeof(d.reports[2].sink), "smtp");
	snprintf(d.reports[2].state, sizeof(d.reports[2].state), "sent");
	d.reports[2].n = 9;
	struct buf b;
	buf_init(&b, 0);
	metrics_render(&m, NULL, &d, &b);
	assert_true(has_line(&b, "mxbait_decisions_total{action=\"divert\",origin=\"guard\"} 1"));
	assert_true(has_line(&b, "mxbait_decisions_total{action=\"ban\",origin=\"guard\"} 0"));
	assert_true(has_line(&b, "mxbait_decisions_total{action=\"allow\",origin=\"manual\"} 1"));
	assert_true(has_line(&b, "mxbait_decisions_removed_total 1"));
	assert_true(has_line(&b, "mxbait_guard_logins_total{answer=\"reject\"} 1"));
	assert_true(has_line(&b, "mxbait_guard_recipients_total{answer=\"dunno\"} 1"));
	assert_true(has_line(&b, "mxbait_guard_recipients_total{answer=\"other\"} 1"));
	assert_true(has_line(&b, "mxbait_guard_log_offences_total 1"));
	assert_true(has_line(&b, "mxbait_decisions{action=\"divert\"} 5"));
	assert_true(has_line(&b, "mxbait_decisions{action=\"allow\"} 2"));
	assert_true(has_line(&b, "mxbait_reports{sink=\"manual\",state=\"manual\"} 4"));
	assert_true(has_line(&b, "mxbait_reports{sink=\"manual\",state=\"sent\"} 0"));
	assert_true(has_line(&b, "mxbait_reports{sink=\"smtp\",state=\"held\"} 2"));
	assert_true(has_line(&b, "mxbait_reports{sink=\"smtp\",state=\"sent\"} 9"));
	assert_true(has_line(&b, "mxbait_reports{sink=\"smtp\",state=\"queued\"} 0"));
	/* one series per (sink, state): 2 sinks x 12 states */
	size_t n = 0;
	for (const char *p = b.data; (p = strstr(p, "\nmxbait_reports{")); p++)
		n++;
	assert_int_equal(n, 24);
	buf_free(&b);
	/* without intel.db: no mxbait_reports at all */
	d.intel = false;
	buf_init(&b, 0);
	metrics_render(&m, NULL, &d, &b);
	assert_null(strstr(b.data, "mxbait_reports"));
	buf_free(&b);
}

static void test_field(void **state)
{
	(void)state;
	struct mxb_event *e = ev("auth", "smtp");
	mxb_event_str(e, "username", "a,\"b\":c\\");
	mxb_event_int(e, "n", -5);
	mxb_event_str(e, "result", "ok");
	const char *v;
	long n = metrics_event_field(e, "result", &v);
	assert_int_equal(n, 4);
	assert_memory_equal(v, "\"ok\"", 4);
	n = metrics_event_field(e, "n", &v);
	assert_int_equal(n, 2);
	assert_memory_equal(v, "-5", 2);
	/* The key text inside the username string is not a field. */
	assert_int_equal(metrics_event_field(e, "b", &v), -1);
	assert_int_equal(metrics_event_field(e, "absent", &v), -1);
	mxb_event_free(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_guard_and_reports),
		cmocka_unit_test(test_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
