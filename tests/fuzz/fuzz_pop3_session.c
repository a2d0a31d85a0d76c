/*
 * libFuzzer target: the whole POP3 engine (through struct proto_engine) with the
 * recording fake host of the unit tests.
 *
 * Input: first the limits (fuzz_limits.h, two bytes each, zeros for the defaults):
 * pop3_bad_command_limit and command_limit, anywhere in the bounds mxbait.conf
 * accepts; then byte 0 picks the listener and options (110 or 995, STLS offered,
 * plaintext allowed, a short line limit), byte 1 the write sizes; the rest is what
 * the client sends,
 * split into writes so suspensions (failure delay, STLS) land anywhere.  The host
 * answers every suspension as a real one would (STLS: the rest of a write is thrown
 * away); at the end the client hangs up.  ASan/UBSan catch memory errors; the checks
 * below catch broken invariants: replies are whole CRLF lines, every event keeps the
 * public contract of docs/events.md, counters are sane, nothing stays buffered after
 * the handshake.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "deceive/auth_policy.h"
#include "fuzz_limits.h"
#include "proto/pop3.h"
#include "../unit/smtp_fake_host.h"
#include "../unit/test_pop3_fake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t secret[32] = {1, 2, 3};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint64_t bad_auth = fuzz_limit(&in, "pop3_bad_command_limit", 20);
	uint64_t cmds = fuzz_limit(&in, "command_limit", 1000);
	data = in.p;
	size = in.n;
	if (size < 2)
		return 0;
	uint8_t opt = data[0], split = data[1];
	data += 2;
	size -= 2;
	static const char *acc[] = {"alice:alice-Secret-1", "bob:pw"};
	struct auth_policy *auth = auth_static_new(acc, 2);
	struct pop3_config cfg = {
		.hostname = "mail.example.test",
		.domain = "example.test",
		.implicit_tls = opt & 0x01,
		.tls_available = opt & 0x02,
		.allow_plaintext = opt & 0x04,
		.auth = auth,
		.secret = secret,
		.line_length_limit = (opt & 0x08) ? 40 : 0,
		.bad_command_limit = (opt & 0x10) ? 50 : 0,
		.bad_command_limit_auth = (unsigned)bad_auth,
		.command_limit = (opt & 0x20) ? (unsigned)cmds : 0,
		.auth_failure_delay_ms = 1,
		.auth_penalty = opt & 0x80,
	};
	struct pop3_fake h;
	pop3_fake_init(&h, &cfg, cfg.implicit_tls);
	size_t step = (size_t)(split % 64) + 1;
	for (size_t pos = 0; pos < size && !h.closed;) {
		size_t n = size - pos < step ? size - pos : step;
		if (split & 0x80)
			n = size - pos; /* one write */
		pop3_fake_drive(&h, (const char *)data + pos, n);
		pos += n;
	}
	/* Replies are whole lines. */
	if (h.out.len > 0 &&
	    (h.out.len < 2 || memcmp(h.out.data + h.out.len - 2, "\r\n", 2) != 0))
		__builtin_trap();
	struct proto_counters c;
	pop3_engine.counters(h.s, &c);
	if (c.messages != 0 || c.errors > c.commands + 1)
		__builtin_trap();
	(void)pop3_engine.state_name(h.s);
	(void)pop3_engine.auth_user(h.s);
	pop3_engine.hangup(h.s, (opt & 0x40) ? "timeout" : "client_closed");
	/* Every event keeps the public contract (the SMTP fake host's checker reads the
	 * same "name<TAB>fields" records). */
	struct fake_host eh;
	memset(&eh, 0, sizeof(eh));
	eh.events = h.events;
	char why[256];
	if (!fake_host_check_schema(&eh, why, sizeof(why)))
		__builtin_trap();
	pop3_fake_free(&h);
	auth_policy_free(&auth);
	return 0;
}
