/*
 * libFuzzer target: the whole SMTP engine, driven by the conversation runner's
 * session driver (tests/unit/conv_runner.h), the code path every .conv file takes.
 *
 * Input: first the limits (fuzz_limits.h, two bytes each, zeros for the defaults):
 * line_length_limit, message_size_limit, recipient_limit, command_limit,
 * soft_error_limit, hard_error_limit, anywhere in the bounds mxbait.conf accepts (so a
 * line_length_limit of 16384 or more, with which an AUTH LOGIN password of 12,288
 * bytes once overflowed a stack buffer, is reachable); then byte 0 picks the listener
 * and options, byte 1 the answers the host gives (commit result, spool refusals), byte
 * 2 the write sizes; the rest is what the client sends, split into writes so
 * suspensions (commit, wait, STARTTLS) land anywhere.
 * The host answers every suspension as a real one would; at the end the client hangs
 * up and conv_session_finish() checks the invariants (events within the public
 * contract, one commit per counted message, no message left open).  ASan/UBSan catch
 * memory errors.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_limits.h"
#include "../unit/conv_runner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint64_t line = fuzz_limit(&in, "line_length_limit", 2048);
	uint64_t msg_size = fuzz_limit(&in, "message_size_limit", 10240000);
	uint64_t rcpts = fuzz_limit(&in, "recipient_limit", 1000);
	uint64_t cmds = fuzz_limit(&in, "command_limit", 1000);
	uint64_t soft = fuzz_limit(&in, "soft_error_limit", 10);
	uint64_t hard = fuzz_limit(&in, "hard_error_limit", 20);
	data = in.p;
	size = in.n;
	if (size < 3)
		return 0;
	uint8_t opt = data[0], ans = data[1], split = data[2];
	data += 3;
	size -= 3;
	static const char *const listeners[] = {"smtp", "submission", "smtps"};
	static struct conv_session s;
	char err[128];
	if (!conv_session_setup(&s, listeners[(opt & 0x03) % 3], err, sizeof(err)) ||
	    !conv_session_set(&s, "domains", "example.com,example.org", err, sizeof(err)) ||
	    !conv_session_set(&s, "accounts", "alice:alice-Secret-1,tim:tanstaaftanstaaf", err,
			      sizeof(err)) ||
	    !conv_session_set(&s, "ip", (ans & 0x10) ? "2001:db8::1" : "192.0.2.1", err,
			      sizeof(err)) ||
	    ((ans & 0x20) && !conv_session_set(&s, "rdns", "host.example", err, sizeof(err))) ||
	    !conv_session_set_num(&s, "catch_all", opt & 0x04) ||
	    !conv_session_set_num(&s, "tls", opt & 0x08) ||
	    !conv_session_set_num(&s, "vrfy", opt & 0x10) ||
	    !conv_session_set_num(&s, "auth_on_mx", opt & 0x20) ||
	    !conv_session_set_num(&s, "cram", opt & 0x40) ||
	    !conv_session_set_num(&s, "line", line) || !conv_session_set_num(&s, "size", msg_size) ||
	    !conv_session_set_num(&s, "rcpt_limit", rcpts) ||
	    !conv_session_set_num(&s, "cmd_limit", cmds) || !conv_session_set_num(&s, "soft", soft) ||
	    !conv_session_set_num(&s, "hard", hard) || !conv_session_set_num(&s, "sleep", 1) ||
	    !conv_session_set_num(&s, "authdelay", 1) || !conv_session_start(&s))
		__builtin_trap(); /* the fuzzer and the runner disagree on the settings */
	s.h.fail_open = ans & 0x01;
	s.h.write_budget = (ans & 0x02) ? 100 : -1;
	s.h.next_commit = (enum fake_commit)((ans >> 2) % 3);
	size_t step = (split & 0x80) ? 0 : (size_t)(split % 64) + 1;
	conv_session_write(&s, (const char *)data, size, step);
	char why[512];
	if (!conv_session_finish(&s, (ans & 0x40) ? "timeout" : "client_closed", why, sizeof(why)))
		__builtin_trap();
	return 0;
}
