/*
 * smtp_fake_host: a host for the SMTP engine in tests and fuzzers.
 *
 * Records every reply byte, every event (as "name" + its JSON field fragments), the
 * message bytes, waits, commits, STARTTLS and close; answers the suspensions the way
 * the test asks (commit ok / no space / I/O error, TLS facts).  Deterministic: the
 * clock is fixed and queue ids are sequential.
 */
#ifndef MXB_TESTS_SMTP_FAKE_HOST_H
#define MXB_TESTS_SMTP_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/smtp.h"
#include "util/buf.h"

enum fake_commit { FAKE_COMMIT_OK, FAKE_COMMIT_NOSPACE, FAKE_COMMIT_FAIL };

struct fake_host {
	struct buf out;         /* every reply byte, in order */
	struct buf events;      /* "name<TAB>fields\n" per event */
	unsigned n_events;
	struct buf msg;         /* the message being written */
	struct buf last_msg;    /* the last committed message */
	bool msg_open;
	unsigned msg_opens, msg_aborts, commits;
	bool fail_open;         /* next msg_open fails */
	int64_t write_budget;   /* -1: unlimited; msg_write fails past it */
	enum fake_commit next_commit;
	unsigned qid_counter;
	char qid[32];
	/* suspension requests seen during the last feed */
	bool want_commit, want_tls, want_wait;
	unsigned waits[64];
	unsigned n_waits;
	unsigned n_starttls;
	bool closed;
	char close_reason[64];
	struct smtp_session *s;
};

extern const struct smtp_host_ops fake_host_ops;

void fake_host_init(struct fake_host *h);
void fake_host_free(struct fake_host *h);
/* The queue id the fake gives to the n-th message (n from 0). */
void fake_host_qid(unsigned n, char *out, size_t outlen);

/* Feed bytes, answering every suspension (resume after wait, commit with
 * next_commit, STARTTLS: the rest of data is discarded as a real host must, then
 * the handshake "succeeds" with TLSv1.3).  Stops when the session closes. */
void fake_host_drive(struct fake_host *h, const char *data, size_t len);

/* True when an event named name has every fragment (NULL-terminated list). */
bool fake_host_has_event(const struct fake_host *h, const char *name,
			 const char *const *fragments);

/* Every recorded event against the catalogue (store/event_schema.h): the event id
 * exists, the fields are exactly the documented ones in order, with the documented
 * types, null only where allowed.  false: err_r says what is wrong. */
bool fake_host_check_schema(const struct fake_host *h, char *err_r, size_t errlen);

#endif
