/*
 * conv_runner: the one conversation runner of the protocol engines (SMTP, IMAP, POP3),
 * and the session driver the session fuzzers share with it.
 *
 * Two layers:
 *   - conv_session: one engine session on the fake host (fake_host.h), made from a
 *     listener word ("smtp", "submission", "smtps", "imap", "imaps", "pop3",
 *     "pop3s") and key=value settings; client bytes written in one write or in
 *     chunks; at the end the client hangs up and the invariants every engine keeps
 *     are checked (events within docs/events.md, one commit per counted message, no
 *     message left open, the memory budget given back, and per protocol whole reply
 *     lines and a bound on errors).  The fuzzers (tests/fuzz/fuzz_*_session.c) take
 *     their settings from the input and drive exactly this.
 *   - conv_run_file: one .conv file (the format is in docs/testing.md) through
 *     conv_session: parses the directives once for every protocol, compares the
 *     server's bytes with the S: lines at every checkpoint and reports each
 *     difference the same way.  A directive that means nothing for the session's
 *     protocol (a message check on POP3), an unknown setting or a misspelt
 *     "# expect-..." fails the file.
 */
#ifndef MXB_TESTS_CONV_RUNNER_H
#define MXB_TESTS_CONV_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fake_host.h"
#include "proto/imap.h"
#include "proto/pop3.h"
#include "proto/smtp.h"
#include "util/budget.h"

struct auth_policy;
struct conv_proto;

struct conv_session {
	const struct conv_proto *proto;
	unsigned listener; /* index into the protocol's listener words */
	union {
		struct smtp_config smtp;
		struct imap_config imap;
		struct pop3_config pop3;
	} cfg;
	/* what the config points into, owned here */
	char domains_text[256];
	const char *domains[8];
	char accounts_text[512];
	char accounts_copy[512];
	const char *accounts[8];
	size_t n_accounts;
	struct auth_policy *auth;
	char ip[64];
	char rdns[128];
	uint8_t secret[32];
	bool no_secret;
	struct budget memory;    /* IMAP: the daemon-wide budget (limit 0: none) */
	char user[128];          /* whose generated mailbox S: placeholders describe */
	struct fake_host h;
	bool started;
};

/* Fresh settings for a listener word; false (err says why) when there is none. */
bool conv_session_setup(struct conv_session *s, const char *listener, char *err,
			size_t errlen);
/* One key=value setting for the session's protocol (docs/testing.md lists them);
 * false when the key means nothing for it or the value is bad. */
bool conv_session_set(struct conv_session *s, const char *key, const char *value,
		      char *err, size_t errlen);
/* The same with a number (the fuzzers' limits). */
bool conv_session_set_num(struct conv_session *s, const char *key, uint64_t value);
/* Make the session (implicit TLS: the handshake facts first) and queue the greeting. */
bool conv_session_start(struct conv_session *s);
/* Client bytes: one write (step 0) or writes of step bytes; stops once the server
 * closed.  The host answers every suspension as fake_host_drive does. */
void conv_session_write(struct conv_session *s, const char *data, size_t len, size_t step);
/* The client hangs up (reason NULL: it does not), then the invariants; frees
 * everything.  false: why says what broke. */
bool conv_session_finish(struct conv_session *s, const char *hangup_reason, char *why,
			 size_t whylen);
const char *conv_session_proto_name(const struct conv_session *s);
const char *conv_session_hostname(const struct conv_session *s);
const char *conv_session_domain(const struct conv_session *s);

/* Run one .conv file; default_listener is the session a file without "# connect:"
 * gets.  Prints every difference on stderr; true when the file passed. */
bool conv_run_file(const char *path, const char *display_name, const char *default_listener);

#endif
