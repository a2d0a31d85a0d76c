/*
 * libFuzzer target: the whole IMAP engine with the recording fake host.
 *
 * Input: first the limits (fuzz_limits.h, two bytes each, zeros for the defaults):
 * imap_line_length_limit, imap_literal_max, imap_bad_command_limit,
 * imap_session_memory and imap_memory_budget, anywhere in the bounds mxbait.conf
 * accepts; then byte 0 picks the listener and options, byte 1 the answers the host
 * gives (commit result, spool refusal), byte 2 the write sizes; the rest is what the
 * client sends, split into writes so that suspensions (failed-login delay, APPEND
 * commit, STARTTLS) land anywhere.  Inputs that start by logging in ("!" as the first client
 * byte) get "a LOGIN alice alice-Secret-1" prepended on an implicit-TLS listener, so
 * the fuzzer spends its time in the mailbox commands too.  The host answers every
 * suspension as a real one would; at the end the client hangs up.  ASan/UBSan catch
 * memory errors; the checks below catch broken invariants and events that break the
 * public contract, and memory charged to the budgets that is never given back or
 * that passes them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "deceive/auth_policy.h"
#include "fuzz_limits.h"
#include "proto/imap.h"
#include "util/budget.h"
#include "../unit/imap_fake_host.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = {data, size};
	uint64_t line = fuzz_limit(&in, "imap_line_length_limit", 65536);
	uint64_t litmax = fuzz_limit(&in, "imap_literal_max", 10u << 20);
	uint64_t bad = fuzz_limit(&in, "imap_bad_command_limit", 20);
	uint64_t session_mem = fuzz_limit(&in, "imap_session_memory", 32u << 20);
	struct budget memory = {.limit = fuzz_limit(&in, "imap_memory_budget", 64u << 20)};
	data = in.p;
	size = in.n;
	if (size < 3)
		return 0;
	uint8_t opt = data[0], ans = data[1], split = data[2];
	data += 3;
	size -= 3;
	static const char *acc[] = {"alice:alice-Secret-1", "tim:tanstaaftanstaaf"};
	static const uint8_t secret[32] = {1, 2, 3};
	struct auth_policy *auth = auth_static_new(acc, 2);
	bool prelogin = size > 0 && data[0] == '!';
	bool implicit = prelogin || (opt & 0x01);
	struct imap_config cfg = {
		.hostname = "mail.example.test",
		.domain = "example.test",
		.implicit_tls = implicit,
		.tls_available = opt & 0x02,
		.auth = auth,
		.secret = (opt & 0x04) ? secret : NULL,
		.line_length_limit = (size_t)line,
		.literal_max = (size_t)litmax,
		.bad_command_limit = (unsigned)bad,
		.session_memory = (size_t)session_mem,
		.memory = &memory,
		.auth_failure_delay_ms = 1,
		.auth_penalty_max_ms = (opt & 0x40) ? 5 : 0,
	};
	struct imap_fake h;
	imap_fake_init(&h);
	h.fail_open = ans & 0x01;
	h.next_commit = (enum imap_fake_commit)((ans >> 1) % 3);
	struct proto_peer peer = {.ip = (ans & 0x10) ? "2001:db8::1" : "192.0.2.1", .port = 143};
	h.s = imap_session_new(&cfg, &peer, implicit, &imap_fake_ops, &h);
	if (!h.s)
		__builtin_trap();
	if (implicit)
		imap_session_tls_started(h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	imap_session_start(h.s);
	if (prelogin) {
		static const char login[] = "a LOGIN alice alice-Secret-1\r\n";
		imap_fake_drive(&h, login, sizeof(login) - 1);
		data++;
		size--;
	}
	size_t step = (size_t)(split % 64) + 1;
	for (size_t pos = 0; pos < size && !h.closed;) {
		size_t n = size - pos < step ? size - pos : step;
		if (split & 0x80)
			n = size - pos; /* one write */
		imap_fake_drive(&h, (const char *)data + pos, n);
		pos += n;
	}
	struct proto_counters c;
	imap_session_counters(h.s, &c);
	if (c.messages != h.commits)
		__builtin_trap();
	(void)imap_session_state_name(h.s);
	(void)imap_session_auth_user(h.s);
	imap_session_hangup(h.s, (ans & 0x40) ? "timeout" : "client_closed");
	char why[256];
	if (!imap_fake_check_schema(&h, why, sizeof(why)))
		__builtin_trap();
	imap_session_free(&h.s);
	/* every message the engine opened was committed or aborted */
	if (h.msg_open && !h.want_commit)
		__builtin_trap();
	/* the budgets were never passed, and everything taken was given back */
	if (memory.peak > memory.limit || memory.used != 0)
		__builtin_trap();
	imap_fake_free(&h);
	auth_policy_free(&auth);
	return 0;
}
