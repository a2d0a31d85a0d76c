/*
 * libFuzzer target: the whole IMAP engine, driven by the conversation runner's
 * session driver (tests/unit/conv_runner.h), the code path every .conv file takes.
 *
 * Input: first the limits (fuzz_limits.h, two bytes each, zeros for the defaults):
 * imap_line_length_limit, imap_literal_max, imap_bad_command_limit,
 * imap_session_memory and imap_memory_budget, anywhere in the bounds mxbait.conf
 * accepts; then byte 0 picks the listener and options, byte 1 the answers the host
 * gives (commit result, spool refusal), byte 2 the write sizes; the rest is what the
 * client sends, split into writes so that suspensions (failed-login delay, APPEND
 * commit, STARTTLS) land anywhere.  Inputs that start by logging in ("!" as the first
 * client byte) get "a LOGIN alice alice-Secret-1" prepended on an implicit-TLS
 * listener, so the fuzzer spends its time in the mailbox commands too.  The host
 * answers every suspension as a real one would; at the end the client hangs up and
 * conv_session_finish() checks the invariants: events within the public contract, one
 * commit per counted message, no message left open, memory charged to the budgets
 * never past them and all given back.  ASan/UBSan catch memory errors.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_limits.h"
#include "../unit/conv_runner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint64_t line = fuzz_limit(&in, "imap_line_length_limit", 65536);
	uint64_t litmax = fuzz_limit(&in, "imap_literal_max", 10u << 20);
	uint64_t bad = fuzz_limit(&in, "imap_bad_command_limit", 20);
	uint64_t session_mem = fuzz_limit(&in, "imap_session_memory", 32u << 20);
	uint64_t budget = fuzz_limit(&in, "imap_memory_budget", 64u << 20);
	data = in.p;
	size = in.n;
	if (size < 3)
		return 0;
	uint8_t opt = data[0], ans = data[1], split = data[2];
	data += 3;
	size -= 3;
	bool prelogin = size > 0 && data[0] == '!';
	bool implicit = prelogin || (opt & 0x01);
	static struct conv_session s;
	char err[128];
	if (!conv_session_setup(&s, implicit ? "imaps" : "imap", err, sizeof(err)) ||
	    !conv_session_set(&s, "accounts", "alice:alice-Secret-1,tim:tanstaaftanstaaf", err,
			      sizeof(err)) ||
	    !conv_session_set(&s, "ip", (ans & 0x10) ? "2001:db8::1" : "192.0.2.1", err,
			      sizeof(err)) ||
	    !conv_session_set(&s, "secret", (opt & 0x04) ? "010203" : "none", err, sizeof(err)) ||
	    !conv_session_set_num(&s, "tls", opt & 0x02) ||
	    !conv_session_set_num(&s, "line_max", line) ||
	    !conv_session_set_num(&s, "literal_max", litmax) ||
	    !conv_session_set_num(&s, "bad_limit", bad) ||
	    !conv_session_set_num(&s, "session_memory", session_mem) ||
	    !conv_session_set_num(&s, "memory_budget", budget) ||
	    !conv_session_set_num(&s, "delay", 1) ||
	    !conv_session_set_num(&s, "penalty", (opt & 0x40) ? 5 : 0) || !conv_session_start(&s))
		__builtin_trap(); /* the fuzzer and the runner disagree on the settings */
	s.h.fail_open = ans & 0x01;
	s.h.next_commit = (enum fake_commit)((ans >> 1) % 3);
	if (prelogin) {
		static const char login[] = "a LOGIN alice alice-Secret-1\r\n";
		conv_session_write(&s, login, sizeof(login) - 1, 0);
		data++;
		size--;
	}
	size_t step = (split & 0x80) ? 0 : (size_t)(split % 64) + 1;
	conv_session_write(&s, (const char *)data, size, step);
	char why[512];
	if (!conv_session_finish(&s, (ans & 0x40) ? "timeout" : "client_closed", why, sizeof(why)))
		__builtin_trap();
	return 0;
}
