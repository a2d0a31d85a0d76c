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
 *   sending     claimed by the reporter; nothing of it has left yet
 *   transmitting  its bytes are on their way (SMTP DATA or the HTTP body started)
 *   sent        the sink accepted it
 *   duplicate   the sink already knew it ("already reported", Spamhaus 208, ...)
 *   rejected    refused for good (4xx, an etiquette rule: opt-out, victim domain)
 *   failed      retries exhausted
 *   expired     too old to be useful (not_after_us passed before it was sent)
 *   unknown     the reporter died while sending to a sink that cannot deduplicate:
 *               the report may or may not have arrived; never resent automatically
 *
 * Exactly once: queued -> sending is committed (intel.db is synchronous=FULL) before
 * the connection is opened; sending -> transmitting is committed from inside the
 * transport, just before the first byte of the report itself (SMTP DATA, the HTTP
 * request body) leaves; the outcome is committed right after the sink answers.  A
 * crash leaves one of the two:
 *  - `sending`: the receiver cannot have the report (a server acts on a message after
 *    its DATA, on a POST after its body): outbox_recover() requeues it.
 *  - `transmitting`: the receiver may have it.  For sinks that deduplicate on what the
 *    report carries (the webhook's Idempotency-Key header, Spamhaus 208 and URLhaus
 *    "already known") sending again is harmless: requeued, so every report arrives
 *    exactly once.  For the others (SMTP, AbuseIPDB, Netcraft) a resend could
 *    duplicate it: the row becomes `unknown`, counted and listed; at most once is
 *    guaranteed and nothing is lost silently; `mxbait report retry` resends it after
 *    the operator has checked.
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
/* sending -> transmitting (the transport's on_transmit callback). */
int outbox_transmitting(struct sqlite3 *db, int64_t id);
/* sending/transmitting -> state (or back to queued with next_attempt_us for a retry). */
int outbox_finish(struct sqlite3 *db, int64_t id, const char *state, const char *error,
		  const char *response, int64_t next_attempt_us, int64_t now_us);
/* Any state -> state, for operator commands; from: allowed current states,
 * space-separated.  Returns rows changed or -1. */
int outbox_move(struct sqlite3 *db, int64_t id, const char *from, const char *to);

/* An operator's move of one report (the dashboard's hold/release/retry), safe against
 * a running reporter: one write transaction reads the state and moves the row only
 * when it is one of from (space-separated); *old_r (16 bytes) gets the state it was
 * in; recipient (not NULL) becomes the recipient of an e-mail report in the same
 * transaction.  The reporter's own transitions are all guarded by the state they expect, so
 * whichever commits first wins and the other changes nothing.  Returns 1 moved, 0
 * not in such a state, -1 no such report, -2 a database error (busy past the timeout
 * included). */
int outbox_operator_move(struct sqlite3 *db, int64_t id, const char *from, const char *to,
			 const char *recipient, char old_r[16]);

#endif
