/*
 * libFuzzer target: the whole SMTP engine with the recording fake host.
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
 * up.  ASan/UBSan catch memory errors; the checks below catch broken invariants.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "deceive/auth_policy.h"
#include "fuzz_limits.h"
#include "proto/smtp.h"
#include "../unit/smtp_fake_host.h"

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
	static const char *domains[] = {"example.com", "example.org"};
	static const char *acc[] = {"alice:alice-Secret-1", "tim:tanstaaftanstaaf"};
	struct auth_policy *auth = auth_static_new(acc, 2);
	struct smtp_config cfg = {
		.hostname = "mail.example.com",
		.local_domains = domains,
		.n_local_domains = 2,
		.catch_all = opt & 0x04,
		.role = (enum smtp_role)((opt & 0x03) % 3),
		.tls_available = opt & 0x08,
		.vrfy_enabled = opt & 0x10,
		.auth_on_mx = opt & 0x20,
		.cram_md5 = opt & 0x40,
		.line_length_limit = (size_t)line,
		.message_size_limit = msg_size,
		.recipient_limit = (unsigned)rcpts,
		.command_limit = (unsigned)cmds,
		.soft_error_limit = (unsigned)soft,
		.hard_error_limit = (unsigned)hard,
		.error_sleep_ms = 1,
		.auth_failure_delay_ms = 1,
		.auth = auth,
	};
	struct fake_host h;
	fake_host_init(&h);
	h.fail_open = ans & 0x01;
	h.write_budget = (ans & 0x02) ? 100 : -1;
	h.next_commit = (enum fake_commit)((ans >> 2) % 3);
	struct smtp_peer peer = {.ip = (ans & 0x10) ? "2001:db8::1" : "192.0.2.1", .port = 25,
				 .rdns = (ans & 0x20) ? "host.example" : NULL};
	bool implicit = cfg.role == SMTP_ROLE_SMTPS;
	h.s = smtp_session_new(&cfg, &peer, implicit, &fake_host_ops, &h);
	if (implicit)
		smtp_session_tls_started(h.s, "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256);
	smtp_session_start(h.s);
	size_t step = (size_t)(split % 64) + 1;
	for (size_t pos = 0; pos < size && !h.closed;) {
		size_t n = size - pos < step ? size - pos : step;
		if (split & 0x80)
			n = size - pos; /* one write */
		fake_host_drive(&h, (const char *)data + pos, n);
		pos += n;
	}
	struct smtp_counters c;
	smtp_session_counters(h.s, &c);
	if (c.messages != h.commits)
		__builtin_trap();
	(void)smtp_session_state_name(h.s);
	(void)smtp_session_auth_user(h.s);
	smtp_session_hangup(h.s, (ans & 0x40) ? "timeout" : "client_closed");
	/* Every event keeps the public contract of docs/events.md. */
	char why[256];
	if (!fake_host_check_schema(&h, why, sizeof(why)))
		__builtin_trap();
	smtp_session_free(&h.s);
	/* Every message the engine opened was committed or aborted. */
	if (h.msg_open)
		__builtin_trap();
	fake_host_free(&h);
	auth_policy_free(&auth);
	return 0;
}
