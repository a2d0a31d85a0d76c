/*
 * test_pop3_fake: a recording host for the POP3 engine in tests and the fuzzer.
 *
 * Drives the engine through struct proto_engine (pop3_engine), as the connection
 * layer does.  Records every reply byte, every event ("name<TAB>fields\n"), waits,
 * STLS and close; answers suspensions at once (resume after wait; STLS: the rest of
 * the input is discarded, as a real host must, and the handshake "succeeds").
 */
#ifndef MXB_TESTS_POP3_FAKE_H
#define MXB_TESTS_POP3_FAKE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/pop3.h"
#include "util/buf.h"

struct pop3_fake {
	struct buf out;
	struct buf events;
	unsigned n_events;
	bool want_tls, want_wait;
	unsigned waits[64];
	unsigned n_waits;
	unsigned long long wait_total_ms;
	unsigned n_starttls;
	size_t discarded;      /* bytes thrown away after STLS */
	bool closed;
	char close_reason[64];
	void *s;               /* the engine session */
};

extern const struct proto_host_ops pop3_fake_ops;

/* Create the session (tls: implicit TLS) and queue the greeting. */
void pop3_fake_init(struct pop3_fake *h, const struct pop3_config *cfg, bool tls);
void pop3_fake_free(struct pop3_fake *h);
/* Feed bytes, answering every suspension; stops when the session closes. */
void pop3_fake_drive(struct pop3_fake *h, const char *data, size_t len);
void pop3_fake_drive_str(struct pop3_fake *h, const char *s);
/* Take (and clear) what was sent so far, NUL-terminated. */
char *pop3_fake_take(struct pop3_fake *h);
/* True when an event named name has every fragment (NULL-terminated list). */
bool pop3_fake_has_event(const struct pop3_fake *h, const char *name,
			 const char *const *fragments);
unsigned pop3_fake_count_events(const struct pop3_fake *h, const char *name);

#endif
