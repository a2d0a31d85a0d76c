/*
 * fake_host: the one recording host of the protocol engines (SMTP, IMAP, POP3) for
 * unit tests, the conversation runner and the fuzzers.
 *
 * It implements struct proto_host_ops and drives any struct proto_engine as the
 * daemon's connection layer does: records every reply byte, every event as
 * "name<TAB>fields\n", the message bytes, waits, commits, STARTTLS/STLS, traces and
 * the close; answers the suspensions the way the test asks (a commit ok / no space /
 * I/O error; a wait resumes at once; STARTTLS discards the rest of the input, as a
 * real host must, and the handshake "succeeds" with TLSv1.3).  Deterministic: the
 * clock is fixed and queue ids are sequential.
 */
#ifndef MXB_TESTS_FAKE_HOST_H
#define MXB_TESTS_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"
#include "util/buf.h"

enum fake_commit { FAKE_COMMIT_OK, FAKE_COMMIT_NOSPACE, FAKE_COMMIT_FAIL };

#define FAKE_NOW_US 1795762363000000LL /* 2026-11-27 06:52:43 UTC */

struct fake_host {
	const struct proto_engine *eng;
	void *s;                /* the engine's session */
	bool owned;             /* made by fake_host_start: freed by fake_host_free */
	struct buf out;         /* every reply byte, in order */
	struct buf events;      /* "name<TAB>fields\n" per event */
	unsigned n_events;
	struct buf traces;      /* "proto: what old -> new\n" per state change */
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
	unsigned long long wait_total_ms;
	unsigned n_starttls;
	size_t discarded;       /* bytes dropped after STARTTLS/STLS (injection) */
	bool closed;
	char close_reason[64];
	int64_t now_us;         /* the fixed clock */
	unsigned sends;         /* ops->send calls: the engine's write boundaries */
};

extern const struct proto_host_ops fake_host_ops;

/* An empty host for eng (the test makes the session itself with &fake_host_ops and
 * sets h->s), or ... */
void fake_host_init(struct fake_host *h, const struct proto_engine *eng);
/* ... a host with a session of eng made through its vtable (implicit TLS: the
 * handshake facts first), greeting queued.  false when the engine refused. */
bool fake_host_start(struct fake_host *h, const struct proto_engine *eng, const void *cfg,
		     const struct proto_peer *peer, bool implicit_tls);
/* Frees the buffers, and the session when fake_host_start made it. */
void fake_host_free(struct fake_host *h);
/* The queue id the fake gives to the n-th message (n from 0). */
void fake_host_qid(unsigned n, char *out, size_t outlen);

/* Feed bytes, answering every suspension; stops when the session closes. */
void fake_host_drive(struct fake_host *h, const char *data, size_t len);
void fake_host_drive_str(struct fake_host *h, const char *s);
/* Take (and clear) what was sent so far, NUL-terminated, malloc'd. */
char *fake_host_take(struct fake_host *h);

/* True when an event named name has every fragment (NULL-terminated list). */
bool fake_host_has_event(const struct fake_host *h, const char *name,
			 const char *const *fragments);
unsigned fake_host_count_events(const struct fake_host *h, const char *name);

/* Every recorded event against the catalogue (store/event_schema.h): the event id
 * exists, the fields are exactly the documented ones in order, with the documented
 * types, null only where allowed.  false: err_r says what is wrong. */
bool fake_host_check_schema(const struct fake_host *h, char *err_r, size_t errlen);

#endif
