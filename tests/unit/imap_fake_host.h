/*
 * imap_fake_host: a recording host for the IMAP engine in tests and fuzzers.
 *
 * Records every reply byte, every event ("name<TAB>fields"), the APPENDed message
 * bytes, waits, commits, STARTTLS and close; answers the suspensions the way the test
 * asks (commit ok / no space / I/O error; the TLS handshake "succeeds").  The clock is
 * fixed and queue ids are sequential, so runs are reproducible.
 */
#ifndef MXB_TESTS_IMAP_FAKE_HOST_H
#define MXB_TESTS_IMAP_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/imap.h"
#include "util/buf.h"

enum imap_fake_commit { IFAKE_COMMIT_OK, IFAKE_COMMIT_NOSPACE, IFAKE_COMMIT_FAIL };

struct imap_fake {
	struct buf out;       /* every reply byte, in order */
	struct buf events;    /* "name<TAB>fields\n" per event */
	unsigned n_events;
	struct buf msg;       /* the message being written */
	struct buf last_msg;  /* the last committed message */
	bool msg_open;
	unsigned msg_opens, msg_aborts, commits;
	bool fail_open;       /* next msg_open fails */
	enum imap_fake_commit next_commit;
	unsigned qid_counter;
	char qid[32];
	bool want_commit, want_tls, want_wait;
	unsigned waits[64];
	unsigned n_waits;
	unsigned n_starttls;
	size_t discarded;     /* bytes dropped after STARTTLS (injection) */
	bool closed;
	char close_reason[64];
	int64_t now_us;       /* the fixed clock */
	struct imap_session *s;
};

extern const struct proto_host_ops imap_fake_ops;

void imap_fake_init(struct imap_fake *h);
void imap_fake_free(struct imap_fake *h);

/* Feed bytes, answering every suspension (resume after wait, commit with
 * next_commit; STARTTLS: the rest of data is discarded, then the handshake
 * succeeds).  Stops when the session closes. */
void imap_fake_drive(struct imap_fake *h, const char *data, size_t len);

/* True when an event named name has every fragment (NULL-terminated list). */
bool imap_fake_has_event(const struct imap_fake *h, const char *name,
			 const char *const *fragments);

/* Every recorded event is in the catalogue with exactly its fields, in order, with
 * values of the documented types (docs/events.md, src/store/event_schema.h). */
bool imap_fake_check_schema(const struct imap_fake *h, char *err_r, size_t errlen);

#endif
