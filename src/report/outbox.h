/*
 * outbox: the durable queue of rendered reports in intel.db (table `outbox`), and its
 * send-state machine.  Every report is rendered before anything is sent, keyed by an
 * idempotency key (hash of sink, kind and subject, plus a period for periodic
 * reports): adding the same report twice keeps the first.
 *
 * States:
 *   addressing  rendered; the recipient (abuse contact) is not known yet
 *   queued      ready; sent when its sink is configured and due (next_attempt_us)
 *   held        kept back by the operator (`mxbait report hold`)
 *   manual      for a channel without an API: a human submits it
 *   sending     claimed by the reporter, the send is in flight
 *   sent        the sink accepted it
 *   duplicate   the sink already knew it ("already reported", Spamhaus 208, ...)
 *   rejected    refused for good (4xx, an etiquette rule: opt-out, victim domain)
 *   failed      retries exhausted
 *   expired     too old to be useful (not_after_us passed before it was sent)
 *   unknown     the reporter died while sending to a sink that cannot deduplicate:
 *               the report may or may not have arrived; never resent automatically
 *
 * Exactly once: queued -> sending is committed (intel.db is synchronous=FULL) before
 * the first byte goes out, and the outcome is committed right after the sink answers.
 * A crash between the two leaves `sending`.  At start, outbox_recover() turns those
 * rows back into `queued` for sinks that deduplicate on the key the report carries
 * (the webhook's Idempotency-Key header, Spamhaus and URLhaus "already known"): sending
 * again is harmless there, so every report arrives exactly once.  For the others (SMTP,
 * AbuseIPDB, Netcraft) a resend could duplicate it, so the row becomes `unknown`,
 * counted and listed: at most once is guaranteed, and nothing is lost silently; the
 * operator may `mxbait report retry` it after checking.
 */
#ifndef MXB_REPORT_OUTBOX_H
#define MXB_REPORT_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sqlite3;

struct outbox_item {
	const char *key;           /* from outbox_key() */
	const char *sink, *kind, *subject;
	const char *recipient;     /* NULL: to be resolved (state addressing) */
	const char *contact_query; /* "ip:ADDR" / "domain:NAME" */
	const char *title;
	const char *content_type;
	const void *payload;
	size_t payload_len;
	unsigned incidents;
	bool redacted;
	const char *victim_domains; /* space-separated */
	int64_t created_us, not_after_us;
	const char *state;         /* initial state */
};

/* 32 hex digits of SHA-256("mxbait-report|" parts joined by '|'). */
void outbox_key(char out[33], const char *sink, const char *kind, const char *subject,
		const char *period);
/* Insert unless the key exists.  Returns 1 added, 0 already there, -1 error. */
int outbox_add(struct sqlite3 *db, const struct outbox_item *it);
/* Crash recovery (see above).  Returns 0 or -1; counts in *requeued_r, *unknown_r. */
int outbox_recover(struct sqlite3 *db, bool (*idempotent)(const char *sink), long *requeued_r,
		   long *unknown_r);
/* queued -> sending, committed.  Returns 1 claimed, 0 not claimable, -1 error. */
int outbox_claim(struct sqlite3 *db, int64_t id, int64_t now_us);
/* sending -> state (or back to queued with next_attempt_us for a retry). */
int outbox_finish(struct sqlite3 *db, int64_t id, const char *state, const char *error,
		  const char *response, int64_t next_attempt_us, int64_t now_us);
/* Any state -> state, for operator commands; from: allowed current states,
 * space-separated.  Returns rows changed or -1. */
int outbox_move(struct sqlite3 *db, int64_t id, const char *from, const char *to);

#endif
