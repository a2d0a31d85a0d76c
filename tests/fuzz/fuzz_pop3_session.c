/*
 * libFuzzer target: the whole POP3 engine, driven by the conversation runner's
 * session driver (tests/unit/conv_runner.h), the code path every .conv file takes.
 *
 * Input: first the limits (fuzz_limits.h, two bytes each, zeros for the defaults):
 * pop3_bad_command_limit and command_limit, anywhere in the bounds mxbait.conf
 * accepts; then byte 0 picks the listener and options (110 or 995, STLS offered,
 * plaintext allowed, a short line limit), byte 1 the write sizes; the rest is what
 * the client sends, split into writes so suspensions (failure delay, STLS) land
 * anywhere.  The host answers every suspension as a real one would (STLS: the rest of
 * a write is thrown away); at the end the client hangs up and conv_session_finish()
 * checks the invariants: replies are whole CRLF lines, no more errors than commands
 * (plus the greeting's), no message counted, every event within the public contract
 * of docs/events.md.  ASan/UBSan catch memory errors.
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_limits.h"
#include "../unit/conv_runner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	static struct conv_session s;
	char err[128];
	if (!conv_session_setup(&s, (opt & 0x01) ? "pop3s" : "pop3", err, sizeof(err)) ||
	    !conv_session_set(&s, "accounts", "alice:alice-Secret-1,bob:pw", err, sizeof(err)) ||
	    !conv_session_set(&s, "ip", "192.0.2.9", err, sizeof(err)) ||
	    !conv_session_set(&s, "secret", "010203", err, sizeof(err)) ||
	    !conv_session_set_num(&s, "tls_available", opt & 0x02) ||
	    !conv_session_set_num(&s, "allow_plaintext", opt & 0x04) ||
	    !conv_session_set_num(&s, "line_limit", (opt & 0x08) ? 40 : 0) ||
	    !conv_session_set_num(&s, "bad_limit", (opt & 0x10) ? 50 : 0) ||
	    !conv_session_set_num(&s, "bad_limit_auth", bad_auth) ||
	    !conv_session_set_num(&s, "command_limit", (opt & 0x20) ? cmds : 0) ||
	    !conv_session_set_num(&s, "delay", 1) ||
	    !conv_session_set_num(&s, "penalty", opt & 0x80) || !conv_session_start(&s))
		__builtin_trap(); /* the fuzzer and the runner disagree on the settings */
	size_t step = (split & 0x80) ? 0 : (size_t)(split % 64) + 1;
	conv_session_write(&s, (const char *)data, size, step);
	char why[512];
	if (!conv_session_finish(&s, (opt & 0x40) ? "timeout" : "client_closed", why, sizeof(why)))
		__builtin_trap();
	return 0;
}
