/* Unit tests for proto/pop3: the Dovecot 2.3 persona byte for byte where it was
 * recorded, the INBOX served from mailbox_generate(), deletions per session, STLS
 * injection, limits (bad commands, line length, TOP with a huge count), events, and
 * byte-at-a-time feeding equal to whole-buffer feeding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deceive/auth_policy.h"
#include "deceive/mailbox.h"
#include "proto/pop3.h"
#include "proto/userip.h"
#include "fake_host.h"
#include "fake_host.h"

static const uint8_t secret[32] = {7, 7, 7};
static struct auth_policy *policy;
static struct pop3_config cfg;

static void setup_cfg(bool implicit, bool tls_available)
{
	memset(&cfg, 0, sizeof(cfg));
	cfg.hostname = "mail.example.test";
	cfg.domain = "example.test";
	cfg.implicit_tls = implicit;
	cfg.tls_available = tls_available;
	cfg.auth = policy;
	cfg.secret = secret;
	cfg.auth_failure_delay_ms = 2000;
}

static int group_setup(void **state)
{
	const char *acc[] = {"alice:alice-Secret-1"};
	policy = auth_static_new(acc, 1);
	return policy ? 0 : -1;
}

static int group_teardown(void **state)
{
	auth_policy_free(&policy);
	return 0;
}

/* Run a whole conversation input and return everything the server sent. */
static char *run(struct fake_host *h, const char *input)
{
	fake_host_drive_str(h, input);
	return fake_host_take(h);
}

static void expect(struct fake_host *h, const char *input, const char *output)
{
	char *got = run(h, input);
	assert_string_equal(got, output);
	free(got);
}

#define CAPA_HEAD "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"

static void test_greeting_capa_plain(void **state)
{
	setup_cfg(false, true);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	expect(&h, "", "+OK Dovecot (Debian) ready.\r\n");
	assert_string_equal(pop3_engine.state_name(h.s), "authorization");
	expect(&h, "CAPA\r\n", CAPA_HEAD "STLS\r\nSASL\r\n.\r\n");
	expect(&h, "USER alice\r\n",
	       "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
	       "connections.\r\n");
	expect(&h, "PASS alice-Secret-1\r\n",
	       "-ERR [AUTH] Plaintext authentication disallowed on non-secure (SSL/TLS) "
	       "connections.\r\n");
	const char *f1[] = {"\"mechanism\":\"USER\"", "\"username\":\"alice\"",
			    "\"password\":\"alice-Secret-1\"", "\"result\":\"tls_required\"",
			    "\"success\":false", NULL};
	assert_true(fake_host_has_event(&h, "auth", f1));
	expect(&h, "AUTH PLAIN AGFsaWNlAGFsaWNlLVNlY3JldC0x\r\n",
	       "-ERR [AUTH] Plaintext authentication disabled.\r\n");
	const char *f2[] = {"\"mechanism\":\"PLAIN\"", "\"password\":\"alice-Secret-1\"",
			    "\"result\":\"tls_required\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", f2));
	expect(&h, "AUTH\r\n", "+OK\r\n.\r\n");
	expect(&h, "APOP alice 0123456789abcdef0123456789abcdef\r\n", "-ERR APOP not enabled.\r\n");
	expect(&h, "STAT\r\n", "-ERR Unknown command.\r\n");
	expect(&h, "FOO\r\n", "-ERR Unknown command.\r\n");
	const char *f3[] = {"\"kind\":\"unknown_command\"", "\"detail\":\"FOO\"", NULL};
	assert_true(fake_host_has_event(&h, "offence", f3));
	assert_false(h.closed);
	expect(&h, "QUIT\r\n", "+OK Logging out\r\n");
	assert_true(h.closed);
	assert_string_equal(h.close_reason, "quit");
	assert_null(pop3_engine.auth_user(h.s));
	assert_string_equal(pop3_engine.state_name(h.s), "closed");
	fake_host_free(&h);
}

static void test_no_tls_available(void **state)
{
	setup_cfg(false, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	free(fake_host_take(&h));
	expect(&h, "CAPA\r\n", CAPA_HEAD "SASL\r\n.\r\n");
	expect(&h, "STLS\r\n", "-ERR TLS support isn't enabled.\r\n");
	fake_host_free(&h);
	/* allow_plaintext: Dovecot's disable_plaintext_auth=no. */
	cfg.allow_plaintext = true;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	free(fake_host_take(&h));
	expect(&h, "CAPA\r\n", CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	expect(&h, "USER alice\r\nPASS alice-Secret-1\r\n", "+OK\r\n+OK Logged in.\r\n");
	const char *f[] = {"\"proto\"", NULL};
	assert_false(fake_host_has_event(&h, "auth", f)); /* proto is the host's field */
	fake_host_free(&h);
}

/* auth_failure_jitter: Dovecot's timing of the 2 s failure delay (session.c
 * session_failure_delay): 1.5 s when the failure falls in the second half of a
 * wall-clock second, up to 2.0 s in the first half, plus 5-45 ms; never a constant. */
static void test_failure_delay_dovecot_clock(void **state)
{
	setup_cfg(true, false);
	cfg.auth_failure_jitter = true;
	unsigned lo = UINT32_MAX, hi = 0, early_max = 0, late_max = 0;
	for (unsigned i = 0; i < 200; i++) {
		struct fake_host h;
		fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
		free(fake_host_take(&h));
		unsigned into_ms = (i * 37u) % 1000u;
		h.now_us = FAKE_NOW_US + (int64_t)into_ms * 1000 + i;
		expect(&h, "USER alice\r\nPASS wrong\r\n",
		       "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
		assert_int_equal(h.n_waits, 1);
		unsigned ms = h.waits[0];
		assert_in_range(ms, 1505, 2045);
		if (into_ms >= 500 && ms > late_max)
			late_max = ms;
		if (into_ms < 500 && ms > early_max)
			early_max = ms;
		lo = ms < lo ? ms : lo;
		hi = ms > hi ? ms : hi;
		fake_host_free(&h);
	}
	assert_true(late_max <= 1545);  /* the second half of a second: the 1.5 s tick */
	assert_true(early_max >= 1900); /* the first half: up to the 2 s tick */
	assert_true(hi - lo >= 400);
	cfg.auth_failure_jitter = false;
	(void)state;
}

/* login_latency: the greeting waits 20-65 ms (Dovecot's login process start), then
 * leaves; a command the client sent meanwhile is answered after it. */
static void test_login_latency_greeting(void **state)
{
	setup_cfg(false, true);
	cfg.login_latency = true;
	unsigned lo = UINT32_MAX, hi = 0;
	for (unsigned i = 0; i < 50; i++) {
		struct fake_host h;
		fake_host_init(&h, &pop3_engine);
		h.now_us = FAKE_NOW_US + (int64_t)i * 7919;
		static const struct proto_peer peer = {.ip = "192.0.2.9", .port = 40000};
		h.s = pop3_engine.create(&cfg, &peer, false, &fake_host_ops, &h);
		assert_non_null(h.s);
		h.owned = true;
		pop3_engine.start(h.s);
		assert_int_equal(h.n_waits, 1);
		assert_in_range(h.waits[0], 20, 65);
		lo = h.waits[0] < lo ? h.waits[0] : lo;
		hi = h.waits[0] > hi ? h.waits[0] : hi;
		char *none = fake_host_take(&h);
		assert_string_equal(none, ""); /* nothing before the delay */
		free(none);
		fake_host_drive_str(&h, "QUIT\r\n");
		char *got = fake_host_take(&h);
		assert_string_equal(got, "+OK Dovecot (Debian) ready.\r\n+OK Logging out\r\n");
		free(got);
		fake_host_free(&h);
	}
	assert_true(hi - lo >= 10); /* varied, not a constant */
	cfg.login_latency = false;
	(void)state;
}

/* mail_max_userip_connections: the 11th logged-in session of one user from one
 * address is refused as Dovecot's pop3 does, and ends; a session that ends frees its
 * place; another address is counted apart. */
static void test_userip_limit(void **state)
{
	setup_cfg(true, false);
	cfg.max_userip = 10;
	struct fake_host h[12];
	for (unsigned i = 0; i < 11; i++) {
		fake_host_start(&h[i], &pop3_engine, &cfg, NULL, true);
		free(fake_host_take(&h[i]));
		fake_host_drive_str(&h[i], "USER alice\r\nPASS alice-Secret-1\r\n");
		char *got = fake_host_take(&h[i]);
		if (i < 10)
			assert_string_equal(got, "+OK\r\n+OK Logged in.\r\n");
		else
			assert_string_equal(got, "+OK\r\n-ERR [IN-USE] Maximum number of connections "
					    "from user+IP exceeded (mail_max_userip_connections=10)\r\n");
		free(got);
	}
	assert_true(h[10].closed);
	assert_int_equal(userip_count("pop3", "alice", "192.0.2.9"), 10);
	static const struct proto_peer other = {.ip = "192.0.2.10", .port = 40001};
	fake_host_start(&h[11], &pop3_engine, &cfg, &other, true);
	free(fake_host_take(&h[11]));
	expect(&h[11], "USER alice\r\nPASS alice-Secret-1\r\n", "+OK\r\n+OK Logged in.\r\n");
	fake_host_free(&h[0]);
	fake_host_free(&h[10]);
	assert_int_equal(userip_count("pop3", "alice", "192.0.2.9"), 9);
	fake_host_start(&h[0], &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h[0]));
	expect(&h[0], "USER alice\r\nPASS alice-Secret-1\r\n", "+OK\r\n+OK Logged in.\r\n");
	for (unsigned i = 0; i < 12; i++)
		if (i != 10)
			fake_host_free(&h[i]);
	assert_int_equal(userip_count("pop3", "alice", "192.0.2.9"), 0);
	cfg.max_userip = 0;
	(void)state;
}

static void test_login_and_failure_delay(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	expect(&h, "CAPA\r\n", CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	expect(&h, "STLS\r\n", "-ERR TLS is already active.\r\n");
	expect(&h, "USER alice\r\n", "+OK\r\n");
	expect(&h, "PASS wrong-password-1\r\n", "-ERR [AUTH] Authentication failed.\r\n");
	assert_int_equal(h.n_waits, 1);
	assert_int_equal(h.waits[0], 2000);
	const char *f1[] = {"\"mechanism\":\"USER\"", "\"username\":\"alice\"",
			    "\"password\":\"wrong-password-1\"", "\"result\":\"fail\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", f1));
	/* PASS again without USER: Dovecot forgot the user. */
	expect(&h, "PASS alice-Secret-1\r\n", "-ERR No username given.\r\n");
	expect(&h, "USER alice\r\nPASS alice-Secret-1\r\n", "+OK\r\n+OK Logged in.\r\n");
	assert_int_equal(h.n_waits, 1);
	const char *f2[] = {"\"result\":\"ok\"", "\"success\":true", NULL};
	assert_true(fake_host_has_event(&h, "auth", f2));
	assert_string_equal(pop3_engine.auth_user(h.s), "alice");
	assert_string_equal(pop3_engine.state_name(h.s), "transaction");
	expect(&h, "CAPA\r\n", CAPA_HEAD ".\r\n");
	expect(&h, "USER alice\r\n", "-ERR Unknown command: USER\r\n");
	expect(&h, "STLS\r\n", "-ERR Unknown command: STLS\r\n");
	expect(&h, "LAST\r\n", "-ERR Unknown command: LAST\r\n");
	expect(&h, "NOOP\r\n", "+OK\r\n");
	expect(&h, "QUIT\r\n", "+OK Logging out.\r\n");
	assert_true(h.closed);
	fake_host_free(&h);
}

/* The failure reply leaves after the delay; replies to earlier pipelined commands
 * leave before it. */
static void test_failure_delay_ordering(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	/* Feed directly to see the suspension. */
	const char in[] = "NOOPX\r\nUSER alice\r\nPASS bad\r\nCAPA\r\n";
	size_t n = pop3_engine.feed(h.s, in, sizeof(in) - 1);
	assert_true(h.want_wait);
	assert_int_equal(n, strlen("NOOPX\r\nUSER alice\r\nPASS bad\r\n"));
	char *before = fake_host_take(&h);
	assert_string_equal(before, "-ERR Unknown command.\r\n+OK\r\n");
	free(before);
	assert_string_equal(pop3_engine.state_name(h.s), "wait");
	h.want_wait = false;
	pop3_engine.resume(h.s);
	expect(&h, "", "-ERR [AUTH] Authentication failed.\r\n");
	fake_host_drive(&h, in + n, sizeof(in) - 1 - n);
	char *rest = fake_host_take(&h);
	assert_memory_equal(rest, "+OK\r\nCAPA\r\n", 11);
	free(rest);
	fake_host_free(&h);
}

static struct mbox_set *alice_box(void)
{
	struct mbox_set *m = mailbox_generate("alice", "example.test", "mail.example.test", secret);
	assert_non_null(m);
	return m;
}

static void login_alice(struct fake_host *h)
{
	setup_cfg(true, false);
	fake_host_start(h, &pop3_engine, &cfg, NULL, true);
	expect(h, "USER alice\r\nPASS alice-Secret-1\r\n",
	       "+OK Dovecot (Debian) ready.\r\n+OK\r\n+OK Logged in.\r\n");
}

static void test_transaction_commands(void **state)
{
	struct mbox_set *m = alice_box();
	struct mbox_folder *in = mailbox_folder(m, "INBOX");
	struct fake_host h;
	login_alice(&h);
	char exp[8192];
	size_t total = 0;
	for (size_t i = 0; i < in->n_msgs; i++)
		total += in->msgs[i].size;
	snprintf(exp, sizeof(exp), "+OK %zu %zu\r\n", in->n_msgs, total);
	expect(&h, "STAT\r\n", exp);
	int o = snprintf(exp, sizeof(exp), "+OK %zu messages:\r\n", in->n_msgs);
	for (size_t i = 0; i < in->n_msgs; i++)
		o += snprintf(exp + o, sizeof(exp) - (size_t)o, "%zu %zu\r\n", i + 1, in->msgs[i].size);
	snprintf(exp + o, sizeof(exp) - (size_t)o, ".\r\n");
	expect(&h, "LIST\r\n", exp);
	snprintf(exp, sizeof(exp), "+OK 1 %zu\r\n", in->msgs[0].size);
	expect(&h, "LIST 1\r\n", exp);
	expect(&h, "list 9\r\n", "-ERR There's no message 9.\r\n");
	expect(&h, "LIST 0\r\n", "-ERR There's no message 0.\r\n");
	expect(&h, "LIST x\r\n", "-ERR Invalid message number: x\r\n");
	expect(&h, "LIST 1 2\r\n", "-ERR Noise after message number:  2\r\n");
	expect(&h, "LIST 99999999999\r\n", "-ERR Message number too large: 99999999999\r\n");
	expect(&h, "RETR\r\n", "-ERR Invalid message number: \r\n");
	/* UIDL: Dovecot's %08Xu%08Xv, lower-case hex as Dovecot prints it */
	snprintf(exp, sizeof(exp), "+OK 1 %08x%08x\r\n", 1u, in->uidvalidity);
	expect(&h, "UIDL 1\r\n", exp);
	char *u = run(&h, "UIDL\r\n");
	assert_memory_equal(u, "+OK\r\n1 00000001", 15);
	assert_non_null(strstr(u, "\r\n.\r\n"));
	free(u);
	/* RETR: the size line, the bytes (stuffed), the terminator. */
	char *r = run(&h, "RETR 1\r\n");
	snprintf(exp, sizeof(exp), "+OK %zu octets\r\n", in->msgs[0].size);
	assert_memory_equal(r, exp, strlen(exp));
	assert_memory_equal(r + strlen(exp), in->msgs[0].data, 40);
	assert_string_equal(r + strlen(r) - 5, "\r\n.\r\n");
	free(r);
	/* TOP n 0: the header and its blank line. */
	r = run(&h, "TOP 1 0\r\n");
	const char *hdr_end = strstr(in->msgs[0].data, "\r\n\r\n");
	size_t hlen = (size_t)(hdr_end - in->msgs[0].data) + 4;
	assert_memory_equal(r, "+OK\r\n", 5);
	assert_memory_equal(r + 5, in->msgs[0].data, hlen);
	assert_string_equal(r + 5 + hlen, ".\r\n");
	free(r);
	/* TOP n 1: one body line. */
	r = run(&h, "TOP 1 1\r\n");
	const char *l1 = strstr(hdr_end + 4, "\r\n");
	assert_int_equal(strlen(r), 5 + hlen + (size_t)(l1 + 2 - (hdr_end + 4)) + 3);
	free(r);
	/* TOP with a huge count: the whole message, nothing more. */
	char *whole = run(&h, "RETR 2\r\n");
	r = run(&h, "TOP 2 18446744073709551615\r\n");
	assert_string_equal(strchr(r, '\n') + 1, strchr(whole, '\n') + 1);
	free(r);
	free(whole);
	expect(&h, "TOP 2 18446744073709551616\r\n",
	       "-ERR Size too large: 18446744073709551616\r\n");
	expect(&h, "TOP 1\r\n", "-ERR Noise after message number: \r\n");
	expect(&h, "TOP 1 x\r\n", "-ERR Invalid size: x\r\n");
	expect(&h, "TOP 1 1 1\r\n", "-ERR Noise after size:  1\r\n");
	const char *f[] = {"\"kind\":\"bad_syntax\"", "\"detail\":\"TOP 1 x\"", NULL};
	assert_true(fake_host_has_event(&h, "offence", f));
	fake_host_free(&h);
	mailbox_free(&m);
}

static void test_dele_rset_quit(void **state)
{
	struct mbox_set *m = alice_box();
	struct mbox_folder *in = mailbox_folder(m, "INBOX");
	struct fake_host h;
	login_alice(&h);
	expect(&h, "DELE 1\r\n", "+OK Marked to be deleted.\r\n");
	expect(&h, "DELE 1\r\n", "-ERR Message is deleted.\r\n");
	expect(&h, "RETR 1\r\n", "-ERR Message is deleted.\r\n");
	char exp[256];
	size_t total = 0;
	for (size_t i = 1; i < in->n_msgs; i++)
		total += in->msgs[i].size;
	snprintf(exp, sizeof(exp), "+OK %zu %zu\r\n", in->n_msgs - 1, total);
	expect(&h, "STAT\r\n", exp);
	char *l = run(&h, "LIST\r\n");
	snprintf(exp, sizeof(exp), "+OK %zu messages:\r\n2 ", in->n_msgs - 1);
	assert_memory_equal(l, exp, strlen(exp));
	free(l);
	expect(&h, "RSET\r\n", "+OK\r\n");
	snprintf(exp, sizeof(exp), "+OK %zu ", in->n_msgs);
	l = run(&h, "STAT\r\n");
	assert_memory_equal(l, exp, strlen(exp));
	free(l);
	expect(&h, "DELE 2\r\nQUIT\r\n", "+OK Marked to be deleted.\r\n"
					 "+OK Logging out, messages deleted.\r\n");
	fake_host_free(&h);
	/* The next session sees every message again. */
	login_alice(&h);
	l = run(&h, "STAT\r\n");
	assert_memory_equal(l, exp, strlen(exp));
	free(l);
	fake_host_free(&h);
	mailbox_free(&m);
}

/* A user whose INBOX has a body line starting with '.' (the IT notice). */
static void test_dot_stuffing(void **state)
{
	char user[32] = "";
	struct mbox_set *m = NULL;
	size_t idx = 0;
	for (int i = 0; i < 500 && !user[0]; i++) {
		char u[32];
		snprintf(u, sizeof(u), "user%d", i);
		m = mailbox_generate(u, "example.test", "mail.example.test", secret);
		struct mbox_folder *in = mailbox_folder(m, "INBOX");
		for (size_t j = 0; j < in->n_msgs; j++)
			if (strstr(in->msgs[j].data, "\r\n.")) {
				snprintf(user, sizeof(user), "%s", u);
				idx = j;
				break;
			}
		if (!user[0])
			mailbox_free(&m);
	}
	assert_true(user[0] != '\0');
	char acc[64];
	snprintf(acc, sizeof(acc), "%s:pw", user);
	const char *accs[] = {acc};
	struct auth_policy *p = auth_static_new(accs, 1);
	setup_cfg(true, false);
	cfg.auth = p;
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	char in[128];
	snprintf(in, sizeof(in), "USER %s\r\nPASS pw\r\nRETR %zu\r\n", user, idx + 1);
	char *r = run(&h, in);
	const struct mbox_msg *msg = &mailbox_folder(m, "INBOX")->msgs[idx];
	/* Unstuff what was sent and compare with the message. */
	const char *body = strstr(r, "octets\r\n") + 8;
	struct buf un;
	buf_init(&un, 0);
	const char *p2 = body;
	bool stuffed_seen = false;
	while (*p2) {
		const char *eol = strstr(p2, "\r\n");
		assert_non_null(eol);
		if (eol - p2 == 1 && p2[0] == '.')
			break;
		if (p2[0] == '.') {
			assert_int_equal(p2[1], '.');
			stuffed_seen = true;
			p2++;
		}
		buf_append(&un, p2, (size_t)(eol + 2 - p2));
		p2 = eol + 2;
	}
	assert_true(stuffed_seen);
	assert_int_equal(un.len, msg->size);
	assert_memory_equal(un.data, msg->data, msg->size);
	buf_free(&un);
	free(r);
	fake_host_free(&h);
	auth_policy_free(&p);
	mailbox_free(&m);
}

/* Every state change goes through set_state() and the session's one suspension
 * function; the host sees each old -> new, in order. */
static void test_state_traces(void **state)
{
	setup_cfg(false, true);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	free(fake_host_take(&h));
	expect(&h, "STLS\r\n", "+OK Begin TLS negotiation now.\r\n");
	free(run(&h, "AUTH PLAIN\r\n"));
	free(run(&h, "AGFsaWNlAGFsaWNlLVNlY3JldC0x\r\nQUIT\r\n"));
	buf_putc(&h.traces, '\0');
	assert_string_equal(h.traces.data,
			    "pop3: suspension run -> tls\n"
			    "pop3: suspension tls -> run\n"
			    "pop3: state authorization/cmd -> authorization/sasl\n"
			    "pop3: state authorization/sasl -> authorization/cmd\n"
			    "pop3: state authorization/cmd -> transaction/cmd\n"
			    "pop3: suspension run -> closed\n");
	fake_host_free(&h);
}

static void test_stls_injection(void **state)
{
	setup_cfg(false, true);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	free(fake_host_take(&h));
	expect(&h, "STLS\r\nUSER alice\r\nPASS alice-Secret-1\r\n", "+OK Begin TLS negotiation now.\r\n");
	assert_int_equal(h.n_starttls, 1);
	assert_int_equal(h.discarded, strlen("USER alice\r\nPASS alice-Secret-1\r\n"));
	assert_null(pop3_engine.auth_user(h.s));
	/* Under TLS now: USER is offered, the injected login never happened. */
	expect(&h, "CAPA\r\n", CAPA_HEAD "USER\r\nSASL PLAIN LOGIN\r\n.\r\n");
	expect(&h, "PASS alice-Secret-1\r\n", "-ERR No username given.\r\n");
	expect(&h, "STLS\r\n", "-ERR TLS is already active.\r\n");
	/* A USER given in the clear before STLS is forgotten. */
	fake_host_free(&h);
	fake_host_start(&h, &pop3_engine, &cfg, NULL, false);
	free(fake_host_take(&h));
	cfg.allow_plaintext = true;
	expect(&h, "USER alice\r\n", "+OK\r\n");
	expect(&h, "STLS\r\n", "+OK Begin TLS negotiation now.\r\n");
	expect(&h, "PASS alice-Secret-1\r\n", "-ERR No username given.\r\n");
	fake_host_free(&h);
}

static void test_auth_sasl(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	expect(&h, "AUTH\r\n", "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
	expect(&h, "AUTH PLAIN AGFsaWNlAHdyb25nLXBhc3N3b3JkLTE=\r\n",
	       "-ERR [AUTH] Authentication failed.\r\n");
	assert_int_equal(h.n_waits, 1);
	expect(&h, "AUTH PLAIN\r\n", "+ \r\n");
	assert_string_equal(pop3_engine.state_name(h.s), "auth");
	expect(&h, "*\r\n", "-ERR Authentication aborted by client.\r\n");
	const char *fa[] = {"\"result\":\"aborted\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", fa));
	expect(&h, "AUTH CRAM-MD5\r\n", "-ERR [AUTH] Unsupported authentication mechanism.\r\n");
	expect(&h, "AUTH PLAIN !!!!\r\n", "-ERR [AUTH] Authentication failed.\r\n");
	const char *fm[] = {"\"result\":\"malformed\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", fm));
	expect(&h, "AUTH PLAIN\r\n", "+ \r\n");
	expect(&h, "YWxpY2U=\r\n", "-ERR [AUTH] Authentication failed.\r\n"); /* no NULs */
	expect(&h, "AUTH LOGIN\r\n", "+ VXNlcm5hbWU6\r\n");
	expect(&h, "YWxpY2U=\r\n", "+ UGFzc3dvcmQ6\r\n");
	expect(&h, "YWxpY2UtU2VjcmV0LTE=\r\n", "+OK Logged in.\r\n");
	const char *fl[] = {"\"mechanism\":\"LOGIN\"", "\"username\":\"alice\"",
			    "\"result\":\"ok\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", fl));
	expect(&h, "AUTH PLAIN\r\n", "-ERR Unknown command: AUTH\r\n");
	fake_host_free(&h);
}

static void test_auth_sasl_more(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	char *r = run(&h, "AUTH PLAIN\r\nAGFsaWNlAGFsaWNlLVNlY3JldC0x\r\n");
	assert_string_equal(r, "+OK Dovecot (Debian) ready.\r\n+ \r\n+OK Logged in.\r\n");
	free(r);
	fake_host_free(&h);
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	expect(&h, "AUTH LOGIN YWxpY2U=\r\n", "+ UGFzc3dvcmQ6\r\n");
	expect(&h, "d3Jvbmc=\r\n", "-ERR [AUTH] Authentication failed.\r\n");
	expect(&h, "auth login\r\n*\r\n", "+ VXNlcm5hbWU6\r\n-ERR Authentication aborted by client.\r\n");
	fake_host_free(&h);
}

static void test_bad_command_limits(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	/* The third bad command in a row ends the session (NOOP is unknown before login). */
	expect(&h, "A\r\nB\r\nNOOP\r\nCAPA\r\n", "-ERR Unknown command.\r\n-ERR Unknown command.\r\n"
					"-ERR Unknown command.\r\n-ERR Too many invalid bad commands.\r\n");
	assert_true(h.closed);
	fake_host_free(&h);
	/* A good command resets the counter. */
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	expect(&h, "A\r\nB\r\nCAPA\r\nC\r\nD\r\n",
	       "-ERR Unknown command.\r\n-ERR Unknown command.\r\n" CAPA_HEAD
	       "USER\r\nSASL PLAIN LOGIN\r\n.\r\n-ERR Unknown command.\r\n-ERR Unknown command.\r\n");
	assert_false(h.closed);
	expect(&h, "E\r\nF\r\n", "-ERR Unknown command.\r\n-ERR Too many invalid bad commands.\r\n");
	assert_int_equal(h.discarded, 0);
	assert_true(h.closed);
	assert_string_equal(h.close_reason, "too_many_errors");
	const char *f[] = {"\"kind\":\"too_many_errors\"", NULL};
	assert_true(fake_host_has_event(&h, "offence", f));
	fake_host_free(&h);
	/* After login: 20 bad commands are answered, the 21st ends the session. */
	login_alice(&h);
	struct buf in;
	buf_init(&in, 0);
	for (int i = 0; i < 30; i++)
		buf_puts(&in, i % 2 ? "RETR 99\r\n" : "XYZZY\r\n");
	fake_host_drive(&h, in.data, in.len);
	char *r = fake_host_take(&h);
	size_t n = 0;
	for (const char *p = r; (p = strstr(p, "-ERR")); p++)
		n++;
	assert_int_equal(n, 22); /* 21 answers + the final one */
	assert_non_null(strstr(r, "-ERR Too many bad commands.\r\n"));
	assert_true(h.closed);
	free(r);
	buf_free(&in);
	fake_host_free(&h);
}

static void test_line_limits(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	static char big[20000];
	memset(big, 'A', 20000);
	/* Over the SASL buffer without a newline: refused at once. */
	fake_host_drive(&h, big, 20000);
	char *r = fake_host_take(&h);
	assert_string_equal(r, "-ERR Input buffer full, aborting\r\n");
	free(r);
	assert_true(h.closed);
	const char *f[] = {"\"kind\":\"line_too_long\"", NULL};
	assert_true(fake_host_has_event(&h, "offence", f));
	fake_host_free(&h);
	/* A 2000-byte USER line: over Dovecot's 1024 before login. */
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	memcpy(big, "USER ", 5);
	memcpy(big + 2000, "\r\n", 2);
	fake_host_drive(&h, big, 2002);
	r = fake_host_take(&h);
	assert_string_equal(r, "-ERR Input buffer full, aborting\r\n");
	free(r);
	fake_host_free(&h);
	/* After login the limit is 4096. */
	login_alice(&h);
	memset(big, 'A', sizeof(big));
	memcpy(big, "NOOP ", 5);
	memcpy(big + 4000, "\r\n", 2);
	fake_host_drive(&h, big, 4002);
	r = fake_host_take(&h);
	assert_string_equal(r, "+OK\r\n");
	free(r);
	memset(big, 'A', 20000);
	memcpy(big + 5000, "\r\n", 2);
	fake_host_drive(&h, big, 5002);
	r = fake_host_take(&h);
	assert_string_equal(r, "-ERR Input line too long.\r\n");
	free(r);
	assert_true(h.closed);
	fake_host_free(&h);
}

/* Feeding one byte at a time gives exactly the same bytes and events. */
static void test_byte_at_a_time(void **state)
{
	const char *script =
		"CAPA\r\nAUTH\r\nUSER alice\r\nPASS nope\r\nUSER alice\nPASS alice-Secret-1\r\n"
		"STAT\r\nLIST\r\nUIDL\r\nTOP 1 3\r\nRETR 2\r\nDELE 1\r\nLIST 1\r\nRSET\r\n"
		"NOOP\r\nBOGUS\r\nQUIT\r\n";
	setup_cfg(true, false);
	struct fake_host a, b;
	fake_host_start(&a, &pop3_engine, &cfg, NULL, true);
	fake_host_drive_str(&a, script);
	fake_host_start(&b, &pop3_engine, &cfg, NULL, true);
	for (size_t i = 0; script[i]; i++)
		fake_host_drive(&b, script + i, 1);
	assert_int_equal(a.out.len, b.out.len);
	assert_memory_equal(a.out.data, b.out.data, a.out.len);
	assert_int_equal(a.events.len, b.events.len);
	assert_memory_equal(a.events.data, b.events.data, a.events.len);
	assert_true(a.closed && b.closed);
	struct proto_counters c;
	pop3_engine.counters(a.s, &c);
	assert_int_equal(c.commands, 17);
	assert_int_equal(c.errors, 3); /* PASS nope, LIST 1 (deleted), BOGUS */
	assert_int_equal(c.messages, 0);
	const char *bl[] = {"\"kind\":\"bare_lf\"", NULL};
	assert_true(fake_host_has_event(&a, "offence", bl));
	/* Every event keeps the catalogue of docs/events.md (field names and order). */
	struct fake_host eh;
	memset(&eh, 0, sizeof(eh));
	eh.events = a.events;
	char why[256] = "";
	if (!fake_host_check_schema(&eh, why, sizeof(why)))
		fail_msg("%s", why);
	fake_host_free(&a);
	fake_host_free(&b);
}

static void test_nul_and_hangup(void **state)
{
	setup_cfg(true, false);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	fake_host_drive(&h, "CAPA\0junk\r\n", 11);
	char *r = fake_host_take(&h);
	assert_memory_equal(r, "+OK\r\nCAPA", 9);
	free(r);
	const char *f[] = {"\"kind\":\"nul_byte\"", NULL};
	assert_true(fake_host_has_event(&h, "offence", f));
	pop3_engine.hangup(h.s, "client_closed");
	assert_string_equal(pop3_engine.state_name(h.s), "closed");
	assert_int_equal(pop3_engine.feed(h.s, "NOOP\r\n", 6), 0);
	fake_host_free(&h);
	/* No policy: every login fails. */
	setup_cfg(true, false);
	cfg.auth = NULL;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(fake_host_take(&h));
	expect(&h, "USER alice\r\nPASS alice-Secret-1\r\n",
	       "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
	fake_host_free(&h);
}

static enum auth_verdict accept_all(struct auth_policy *p, const struct auth_request *r)
{
	return AUTH_OK;
}

static int upper_canonical(const struct auth_policy *p, const char *u, char *out, size_t len)
{
	snprintf(out, len, "%s", strcmp(u, "garbage") == 0 ? "" : "bob");
	return strcmp(u, "garbage") == 0 ? -1 : 0;
}

/* Every spelling of one account opens the same INBOX (the one IMAP shows): lower
 * case, the served domain stripped; a canonical hook (the deception policy's) wins. */
static void test_canonical_user(void **state)
{
	struct auth_policy yes = {.check = accept_all};
	setup_cfg(true, false);
	cfg.auth = &yes;
	struct mbox_set *m = alice_box();
	struct mbox_folder *in = mailbox_folder(m, "INBOX");
	char exp[64];
	snprintf(exp, sizeof(exp), "+OK %zu ", in->n_msgs);
	static const char *spellings[] = {"alice", "Alice", "ALICE@example.test",
					  "alice@EXAMPLE.TEST"};
	for (size_t i = 0; i < 4; i++) {
		struct fake_host h;
		fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
		char in_[128];
		snprintf(in_, sizeof(in_), "USER %s\r\nPASS x\r\nSTAT\r\n", spellings[i]);
		char *r = run(&h, in_);
		assert_non_null(strstr(r, exp));
		assert_string_equal(pop3_engine.auth_user(h.s), "alice");
		free(r);
		fake_host_free(&h);
	}
	/* alice@other.example is another account. */
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(run(&h, "USER alice@other.example\r\nPASS x\r\n"));
	assert_string_equal(pop3_engine.auth_user(h.s), "alice@other.example");
	fake_host_free(&h);
	/* The hook decides; garbage falls back to the default form. */
	cfg.canonical = upper_canonical;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(run(&h, "USER alice\r\nPASS x\r\n"));
	assert_string_equal(pop3_engine.auth_user(h.s), "bob");
	fake_host_free(&h);
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(run(&h, "USER garbage\r\nPASS x\r\n"));
	assert_string_equal(pop3_engine.auth_user(h.s), "garbage");
	fake_host_free(&h);
	mailbox_free(&m);
}

/* Regression (issue 7, one credential rule): the line reader cut "PASS" at a NUL, so
 * the right password followed by a NUL and junk logged in.  Now it fails like a wrong
 * password, recorded as "malformed" with every byte. */
static void test_pass_with_nul_refused(void **state)
{
	setup_cfg(true, true);
	struct fake_host h;
	fake_host_start(&h, &pop3_engine, &cfg, NULL, true);
	free(run(&h, ""));
	static const char in[] = "USER alice\r\nPASS alice-Secret-1\0junk\r\n";
	fake_host_drive(&h, in, sizeof(in) - 1);
	char *got = fake_host_take(&h);
	assert_string_equal(got, "+OK\r\n-ERR [AUTH] Authentication failed.\r\n");
	free(got);
	assert_null(pop3_engine.auth_user(h.s));
	const char *f[] = {"\"password\":\"alice-Secret-1\\u0000junk\"",
			   "\"result\":\"malformed\"", NULL};
	assert_true(fake_host_has_event(&h, "auth", f));
	expect(&h, "USER alice\r\nPASS alice-Secret-1\r\n", "+OK\r\n+OK Logged in.\r\n");
	fake_host_free(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pass_with_nul_refused),
		cmocka_unit_test(test_greeting_capa_plain),
		cmocka_unit_test(test_no_tls_available),
		cmocka_unit_test(test_login_and_failure_delay),
		cmocka_unit_test(test_failure_delay_ordering),
		cmocka_unit_test(test_transaction_commands),
		cmocka_unit_test(test_dele_rset_quit),
		cmocka_unit_test(test_dot_stuffing),
		cmocka_unit_test(test_stls_injection),
		cmocka_unit_test(test_state_traces),
		cmocka_unit_test(test_auth_sasl),
		cmocka_unit_test(test_auth_sasl_more),
		cmocka_unit_test(test_bad_command_limits),
		cmocka_unit_test(test_line_limits),
		cmocka_unit_test(test_byte_at_a_time),
		cmocka_unit_test(test_nul_and_hangup),
		cmocka_unit_test(test_canonical_user),
		cmocka_unit_test(test_failure_delay_dovecot_clock),
		cmocka_unit_test(test_login_latency_greeting),
		cmocka_unit_test(test_userip_limit),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
