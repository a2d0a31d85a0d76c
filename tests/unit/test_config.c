/*
 * test_config: mxbait.conf parsing (src/core/config.c): defaults, every key, every
 * error form ("name:line: key: why"), derived defaults and cross-key checks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/anlaunch.h"
#include "core/config.h"

static int parse(struct mxb_config *cfg, const char *text, char **err_r)
{
	config_defaults(cfg);
	return config_parse(cfg, "t.conf", text, strlen(text), err_r);
}

/* Parse text expecting failure with exactly msg. */
static void expect_error(const char *text, const char *msg)
{
	struct mxb_config cfg;
	char *err = NULL;
	int rc = parse(&cfg, text, &err);
	if (rc != -1 || !err || strcmp(err, msg)) {
		fprintf(stderr, "input: %s\nwant: %s\ngot:  %s (rc %d)\n", text, msg,
			err ? err : "(null)", rc);
		fail();
	}
	free(err);
	config_free(&cfg);
}

static void test_defaults(void **state)
{
	(void)state;
	struct mxb_config cfg;
	config_defaults(&cfg);
	assert_non_null(cfg.hostname);
	assert_non_null(strchr(cfg.hostname, '.'));
	assert_true(cfg.n_local_domains >= 2);
	assert_string_equal(cfg.local_domains[0], cfg.hostname);
	assert_string_equal(cfg.local_domains[cfg.n_local_domains - 1], "example.test");
	assert_false(cfg.catch_all);
	assert_true(cfg.vrfy_enabled); /* stock Debian Postfix offers VRFY */
	assert_false(cfg.auth_on_mx);
	assert_false(cfg.cram_md5);
	assert_int_equal(cfg.n_accounts, 0);
	assert_int_equal(cfg.n_smtp_listen, 2);
	assert_string_equal(cfg.smtp_listen[0], "127.0.0.1:2525");
	assert_string_equal(cfg.smtp_listen[1], "[::1]:2525");
	assert_string_equal(cfg.submission_listen[0], "127.0.0.1:2587");
	assert_string_equal(cfg.submission_listen[1], "[::1]:2587");
	assert_string_equal(cfg.smtps_listen[0], "127.0.0.1:2465");
	assert_string_equal(cfg.smtps_listen[1], "[::1]:2465");
	assert_string_equal(cfg.data_dir, "./mxbait-data");
	assert_string_equal(cfg.tls_cert_file, "");
	assert_string_equal(cfg.tls_key_file, "");
	assert_false(cfg.tls_ecdsa); /* stock Postfix and Dovecot: the RSA snakeoil only */
	assert_string_equal(cfg.tls_eccert_file, "");
	assert_string_equal(cfg.tls_eckey_file, "");
	assert_string_equal(cfg.event_log, "./mxbait-data/events.jsonl");
	assert_int_equal(cfg.line_length_limit, 2048);
	assert_int_equal(cfg.message_size_limit, 10240000);
	assert_int_equal(cfg.recipient_limit, 1000);
	assert_int_equal(cfg.command_limit, 1000);
	assert_int_equal(cfg.soft_error_limit, 10);
	assert_int_equal(cfg.hard_error_limit, 20);
	assert_int_equal(cfg.error_sleep_ms, 1000);
	assert_int_equal(cfg.auth_failure_delay_ms, 2000);
	assert_true(cfg.auth_failure_jitter);
	assert_true(cfg.login_latency);
	assert_int_equal(cfg.mail_max_userip_connections, 10);
	assert_int_equal(cfg.idle_timeout_ms, 300000);
	assert_int_equal(cfg.session_timeout_ms, 3600000);
	assert_int_equal(cfg.tls_handshake_timeout_ms, 30000);
	assert_int_equal(cfg.max_connections, 1000);
	assert_int_equal(cfg.max_connections_per_ip, 50);
	assert_int_equal(cfg.connection_rate_per_ip, 0);
	assert_int_equal(cfg.spool_budget, 1024ULL * 1024 * 1024);
	/* issue 3: IMAP, POP3, the deception policy */
	assert_int_equal(cfg.n_imap_listen, 2);
	assert_string_equal(cfg.imap_listen[0], "127.0.0.1:2143");
	assert_string_equal(cfg.imap_listen[1], "[::1]:2143");
	assert_string_equal(cfg.imaps_listen[0], "127.0.0.1:2993");
	assert_string_equal(cfg.pop3_listen[0], "127.0.0.1:2110");
	assert_string_equal(cfg.pop3s_listen[1], "[::1]:2995");
	assert_string_equal(cfg.password_list, "/usr/share/nmap/nselib/data/passwords.lst");
	assert_int_equal(cfg.password_top_n, 1000);
	assert_int_equal(cfg.crack_fail_min, 2);
	assert_int_equal(cfg.crack_fail_max, 6);
	assert_int_equal(cfg.max_accounts, 100000);
	assert_int_equal(cfg.account_expiry_ms, 7 * 86400000U);
	assert_string_equal(cfg.username_list, MXB_DEFAULT_USERNAME_LIST);
	assert_true(strstr(cfg.username_list, "/mxbait/usernames.txt") != NULL);
	assert_int_equal(cfg.crack_distinct_sources, 3);
	assert_true(cfg.crack_rcpt_probed);
	assert_int_equal(cfg.distributed_window_ms, 3600000);
	assert_int_equal(cfg.distributed_min_ips, 5);
	assert_int_equal(cfg.max_connections_per_prefix, 50);
	assert_int_equal(cfg.login_timeout_ms, 180000);
	assert_int_equal(cfg.imap_idle_timeout_ms, 1800000);
	assert_int_equal(cfg.pop3_idle_timeout_ms, 600000);
	assert_int_equal(cfg.imap_line_length_limit, 65536);
	assert_int_equal(cfg.imap_literal_max, 10 * 1024 * 1024);
	assert_int_equal(cfg.imap_session_memory, 32 * 1024 * 1024);
	assert_int_equal(cfg.imap_memory_budget, 64 * 1024 * 1024);
	assert_int_equal(cfg.output_memory_budget, 64 * 1024 * 1024);
	assert_int_equal(cfg.imap_bad_command_limit, 20);
	assert_int_equal(cfg.pop3_bad_command_limit, 20);
	assert_true(cfg.auth_penalty);
	assert_true(cfg.analyzer);
	config_free(&cfg);
	assert_null(cfg.hostname);
}

static void test_empty_text_keeps_defaults(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "\n# only a comment\n   \n\t# indented comment\n", &err), 0);
	assert_null(err);
	assert_int_equal(cfg.line_length_limit, 2048);
	config_free(&cfg);
}

static void test_every_key(void **state)
{
	(void)state;
	const char *text =
		"hostname = mx1.honey.example\r\n"
		"local_domains = honey.example, other.example  third.example\n"
		"catch_all = yes\n"
		"vrfy = on\n"
		"smtp_auth_on_port25 = true\n"
		"auth_cram_md5 = YES\n"
		"accounts = alice:secret bob:pa:ss\n"
		"smtp_listen = 0.0.0.0:25, [::]:25\n"
		"submission_listen = 192.0.2.1:587\n"
		"smtps_listen =\n"
		"data_dir = /var/lib/mxbait\n"
		"tls_cert_file = /etc/ssl/c.pem\n"
		"tls_key_file = /etc/ssl/k.pem\n"
		"tls_ecdsa = yes\n"
		"tls_eccert_file = /etc/ssl/ec.pem\n"
		"tls_eckey_file = /etc/ssl/eck.pem\n"
		"event_log =\n"
		"line_length_limit = 4k\n"
		"message_size_limit = 20m\n"
		"recipient_limit = 50\n"
		"command_limit = 200\n"
		"soft_error_limit = 5\n"
		"hard_error_limit = 7\n"
		"error_sleep_time = 500ms\n"
		"auth_failure_delay = 3s\n"
		"auth_failure_jitter = no\n"
		"login_latency = no\n"
		"mail_max_userip_connections = 0\n"
		"idle_timeout = 5m\n"
		"session_timeout = 2h\n"
		"tls_handshake_timeout = 10\n"
		"max_connections = 5000\n"
		"max_connections_per_ip = 0\n"
		"connection_rate_per_ip = 30\n"
		"spool_budget = 2g\n"
		"imap_listen = 0.0.0.0:143\n"
		"imaps_listen = [::]:993, 0.0.0.0:993\n"
		"pop3_listen =\n"
		"pop3s_listen = 0.0.0.0:995\n"
		"password_list = /etc/mxbait/pw.txt\n"
		"password_top_n = 200\n"
		"crack_after_failures = 3-9\n"
		"max_accounts = 500\n"
		"account_expiry = 2d\n"
		"username_list = /etc/mxbait/users.txt\n"
		"crack_distinct_sources = 5\n"
		"crack_rcpt_probed = no\n"
		"distributed_window = 30m\n"
		"distributed_min_ips = 12\n"
		"max_connections_per_prefix = 0\n"
		"login_timeout = 1m\n"
		"imap_idle_timeout = 1h\n"
		"pop3_idle_timeout = 5m\n"
		"imap_line_length_limit = 8k\n"
		"imap_literal_max = 1m\n"
		"imap_session_memory = 4m\n"
		"imap_memory_budget = 16m\n"
		"output_memory_budget = 8m\n"
		"imap_bad_command_limit = 5\n"
		"pop3_bad_command_limit = 6\n"
		"auth_penalty = no\n"
		"analyzer = no\n";
	struct mxb_config cfg;
	char *err = NULL;
	int rc = parse(&cfg, text, &err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.hostname, "mx1.honey.example");
	assert_int_equal(cfg.n_local_domains, 3);
	assert_string_equal(cfg.local_domains[2], "third.example");
	assert_true(cfg.catch_all);
	assert_true(cfg.vrfy_enabled);
	assert_true(cfg.auth_on_mx);
	assert_true(cfg.cram_md5);
	assert_int_equal(cfg.n_accounts, 2);
	assert_string_equal(cfg.accounts[1], "bob:pa:ss");
	assert_int_equal(cfg.n_smtp_listen, 2);
	assert_string_equal(cfg.smtp_listen[1], "[::]:25");
	assert_int_equal(cfg.n_submission_listen, 1);
	assert_int_equal(cfg.n_smtps_listen, 0);
	assert_string_equal(cfg.data_dir, "/var/lib/mxbait");
	assert_string_equal(cfg.tls_cert_file, "/etc/ssl/c.pem");
	assert_string_equal(cfg.tls_key_file, "/etc/ssl/k.pem");
	assert_true(cfg.tls_ecdsa);
	assert_string_equal(cfg.tls_eccert_file, "/etc/ssl/ec.pem");
	assert_string_equal(cfg.tls_eckey_file, "/etc/ssl/eck.pem");
	assert_string_equal(cfg.event_log, "");
	assert_int_equal(cfg.line_length_limit, 4096);
	assert_int_equal(cfg.message_size_limit, 20 * 1024 * 1024);
	assert_int_equal(cfg.recipient_limit, 50);
	assert_int_equal(cfg.command_limit, 200);
	assert_int_equal(cfg.soft_error_limit, 5);
	assert_int_equal(cfg.hard_error_limit, 7);
	assert_int_equal(cfg.error_sleep_ms, 500);
	assert_int_equal(cfg.auth_failure_delay_ms, 3000);
	assert_false(cfg.auth_failure_jitter);
	assert_false(cfg.login_latency);
	assert_int_equal(cfg.mail_max_userip_connections, 0);
	assert_int_equal(cfg.idle_timeout_ms, 300000);
	assert_int_equal(cfg.session_timeout_ms, 7200000);
	assert_int_equal(cfg.tls_handshake_timeout_ms, 10000);
	assert_int_equal(cfg.max_connections, 5000);
	assert_int_equal(cfg.max_connections_per_ip, 0);
	assert_int_equal(cfg.connection_rate_per_ip, 30);
	assert_int_equal(cfg.spool_budget, 2ULL * 1024 * 1024 * 1024);
	assert_int_equal(cfg.n_imap_listen, 1);
	assert_string_equal(cfg.imap_listen[0], "0.0.0.0:143");
	assert_int_equal(cfg.n_imaps_listen, 2);
	assert_int_equal(cfg.n_pop3_listen, 0);
	assert_int_equal(cfg.n_pop3s_listen, 1);
	assert_string_equal(cfg.password_list, "/etc/mxbait/pw.txt");
	assert_int_equal(cfg.password_top_n, 200);
	assert_int_equal(cfg.crack_fail_min, 3);
	assert_int_equal(cfg.crack_fail_max, 9);
	assert_int_equal(cfg.max_accounts, 500);
	assert_int_equal(cfg.account_expiry_ms, 2 * 86400000U);
	assert_string_equal(cfg.username_list, "/etc/mxbait/users.txt");
	assert_int_equal(cfg.crack_distinct_sources, 5);
	assert_false(cfg.crack_rcpt_probed);
	assert_int_equal(cfg.distributed_window_ms, 1800000);
	assert_int_equal(cfg.distributed_min_ips, 12);
	assert_int_equal(cfg.max_connections_per_prefix, 0);
	assert_int_equal(cfg.login_timeout_ms, 60000);
	assert_int_equal(cfg.imap_idle_timeout_ms, 3600000);
	assert_int_equal(cfg.pop3_idle_timeout_ms, 300000);
	assert_int_equal(cfg.imap_line_length_limit, 8192);
	assert_int_equal(cfg.imap_literal_max, 1024 * 1024);
	assert_int_equal(cfg.imap_session_memory, 4 * 1024 * 1024);
	assert_int_equal(cfg.imap_memory_budget, 16 * 1024 * 1024);
	assert_int_equal(cfg.output_memory_budget, 8 * 1024 * 1024);
	assert_int_equal(cfg.imap_bad_command_limit, 5);
	assert_int_equal(cfg.pop3_bad_command_limit, 6);
	assert_false(cfg.auth_penalty);
	assert_false(cfg.analyzer);
	config_free(&cfg);
}

static void test_key_range(void **state)
{
	(void)state;
	uint64_t lo, hi;
	assert_int_equal(config_key_range("line_length_limit", &lo, &hi), 0);
	assert_int_equal(lo, 512);
	assert_int_equal(hi, 1024 * 1024);
	assert_int_equal(config_key_range("imap_memory_budget", &lo, &hi), 0);
	assert_int_equal(lo, 1024 * 1024);
	assert_int_equal(config_key_range("account_expiry", &lo, &hi), 0);
	assert_int_equal(lo, 60000);
	assert_int_equal(config_key_range("hostname", &lo, &hi), -1);
	assert_int_equal(config_key_range("no_such_key", &lo, &hi), -1);
}

static void test_derived_defaults(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	/* hostname drives local_domains; data_dir drives event_log. */
	assert_int_equal(parse(&cfg, "hostname = mail.example.org\ndata_dir = /srv/mx\n", &err), 0);
	assert_int_equal(cfg.n_local_domains, 3);
	assert_string_equal(cfg.local_domains[0], "mail.example.org");
	assert_string_equal(cfg.local_domains[1], "example.org");
	assert_string_equal(cfg.local_domains[2], "example.test");
	assert_string_equal(cfg.event_log, "/srv/mx/events.jsonl");
	config_free(&cfg);
	/* no duplicate when the host is in the demo domain */
	assert_int_equal(parse(&cfg, "hostname = mail.example.test\n", &err), 0);
	assert_int_equal(cfg.n_local_domains, 2);
	assert_string_equal(cfg.local_domains[1], "example.test");
	config_free(&cfg);
	/* An explicit local_domains wins whatever the order. */
	assert_int_equal(parse(&cfg, "local_domains = a.test\nhostname = mx.b.test\n", &err), 0);
	assert_int_equal(cfg.n_local_domains, 1);
	assert_string_equal(cfg.local_domains[0], "a.test");
	config_free(&cfg);
	/* An explicit event_log wins. */
	assert_int_equal(parse(&cfg, "event_log = /tmp/e.jsonl\ndata_dir = /x\n", &err), 0);
	assert_string_equal(cfg.event_log, "/tmp/e.jsonl");
	config_free(&cfg);
}

static void test_units(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "idle_timeout = 1d\nerror_sleep_time = 0\n"
				     "message_size_limit = 1024\nspool_budget = 0\n", &err), 0);
	assert_int_equal(cfg.idle_timeout_ms, 86400000);
	assert_int_equal(cfg.error_sleep_ms, 0);
	assert_int_equal(cfg.message_size_limit, 1024);
	assert_int_equal(cfg.spool_budget, 0);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "message_size_limit = 10M\nline_length_limit=1kb\n", &err), 0);
	assert_int_equal(cfg.message_size_limit, 10 * 1024 * 1024);
	assert_int_equal(cfg.line_length_limit, 1024);
	config_free(&cfg);
	/* no trailing newline, spaces around '=' optional */
	assert_int_equal(parse(&cfg, "catch_all=off", &err), 0);
	assert_false(cfg.catch_all);
	config_free(&cfg);
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("\n\nbogus = 1\n", "t.conf:3: bogus: unknown key");
	expect_error("catch_all = yes\n# c\ncatch_all = no\n",
		     "t.conf:3: catch_all: duplicate key (first set on line 1)");
	expect_error("just words\n", "t.conf:1: expected key = value");
	expect_error(" = 5\n", "t.conf:1: missing key before '='");
	expect_error("catch_all = maybe\n", "t.conf:1: catch_all: expected yes or no");
	expect_error("recipient_limit = 0\n", "t.conf:1: recipient_limit: out of range (1 to 100000)");
	expect_error("recipient_limit = -3\n", "t.conf:1: recipient_limit: expected a whole number");
	expect_error("recipient_limit = 12abc\n", "t.conf:1: recipient_limit: expected a whole number");
	expect_error("max_connections = 99999999999999999999999\n",
		     "t.conf:1: max_connections: expected a whole number");
	expect_error("line_length_limit = 100\n",
		     "t.conf:1: line_length_limit: out of range (512 to 1048576)");
	expect_error("message_size_limit = 10x\n",
		     "t.conf:1: message_size_limit: expected a size (number with optional k, m or g suffix)");
	expect_error("spool_budget = 18446744073709551615g\n", "t.conf:1: spool_budget: value too large");
	expect_error("idle_timeout = 5 minutes\n",
		     "t.conf:1: idle_timeout: expected a duration (number with ms, s, m, h or d suffix)");
	expect_error("idle_timeout = 10ms\n", "t.conf:1: idle_timeout: out of range (1000ms to 86400000ms)");
	expect_error("hostname = bad host\n", "t.conf:1: hostname: invalid character in host name");
	expect_error("hostname =\n", "t.conf:1: hostname: empty host name");
	expect_error("hostname = a..b\n", "t.conf:1: hostname: empty label in host name");
	expect_error("local_domains =\n", "t.conf:1: local_domains: at least one domain is needed");
	expect_error("local_domains = ok.test, b@d\n",
		     "t.conf:1: local_domains: b@d: invalid character in host name");
	expect_error("accounts = alice\n", "t.conf:1: accounts: alice: expected user:password");
	expect_error("accounts = :pw\n", "t.conf:1: accounts: :pw: empty user name");
	expect_error("accounts = bob:\n", "t.conf:1: accounts: bob:: empty password");
	expect_error("smtp_listen = 127.0.0.1\n", "t.conf:1: smtp_listen: 127.0.0.1: expected address:port");
	expect_error("smtp_listen = 127.0.0.1:0\n", "t.conf:1: smtp_listen: 127.0.0.1:0: bad port (1-65535)");
	expect_error("smtp_listen = 127.0.0.1:70000\n",
		     "t.conf:1: smtp_listen: 127.0.0.1:70000: bad port (1-65535)");
	expect_error("smtp_listen = 300.1.1.1:25\n",
		     "t.conf:1: smtp_listen: 300.1.1.1:25: bad IPv4 address (IPv6 goes in brackets: [::1]:25)");
	expect_error("smtp_listen = ::1:25\n",
		     "t.conf:1: smtp_listen: ::1:25: bad IPv4 address (IPv6 goes in brackets: [::1]:25)");
	expect_error("smtp_listen = [::1:25\n", "t.conf:1: smtp_listen: [::1:25: expected [ipv6-address]:port");
	expect_error("smtp_listen = [zz]:25\n", "t.conf:1: smtp_listen: [zz]:25: bad IPv6 address");
	expect_error("smtps_listen = 1.1.1.1:1 1.1.1.1:2 1.1.1.1:3 1.1.1.1:4 1.1.1.1:5 1.1.1.1:6 "
		     "1.1.1.1:7 1.1.1.1:8 1.1.1.1:9\n",
		     "t.conf:1: smtps_listen: too many entries (at most 8)");
	expect_error("data_dir =\n", "t.conf:1: data_dir: empty path");
	expect_error("x\n\ntls_cert_file = /c\n", "t.conf:1: expected key = value");
	expect_error("\ntls_cert_file = /c\n", "t.conf:2: tls_cert_file: tls_cert_file and tls_key_file go together");
	expect_error("tls_key_file = /k\n", "t.conf:1: tls_key_file: tls_cert_file and tls_key_file go together");
	expect_error("tls_ecdsa = yes\ntls_eckey_file = /k\n",
		     "t.conf:2: tls_eckey_file: tls_eccert_file and tls_eckey_file go together");
	expect_error("tls_eccert_file = /c\ntls_eckey_file = /k\n",
		     "t.conf:1: tls_eccert_file: set tls_ecdsa = yes to use it (the default "
		     "offers the RSA certificate only, as stock Postfix and Dovecot)");
	expect_error("hard_error_limit = 5\n\n",
		     "t.conf:1: hard_error_limit: soft_error_limit (10) above hard_error_limit (5)");
	expect_error("smtp_listen =\nsubmission_listen=\nsmtps_listen=\nimap_listen=\n"
		     "imaps_listen=\npop3_listen=\npop3s_listen=\n",
		     "t.conf: no listener configured (every *_listen key is empty)");
	/* IMAP alone is a valid daemon */
	struct mxb_config only;
	char *err1 = NULL;
	assert_int_equal(parse(&only, "smtp_listen =\nsubmission_listen=\nsmtps_listen=\n", &err1),
			 0);
	config_free(&only);
	/* crack_after_failures: a range, or one number */
	expect_error("crack_after_failures = 6-2\n",
		     "t.conf:1: crack_after_failures: the lower end is above the upper end");
	expect_error("crack_after_failures = 2-\n",
		     "t.conf:1: crack_after_failures: expected a range (e.g. 2-6)");
	expect_error("crack_after_failures = x\n",
		     "t.conf:1: crack_after_failures: expected a range (e.g. 2-6)");
	expect_error("crack_after_failures = 2-1001\n",
		     "t.conf:1: crack_after_failures: out of range (0 to 1000)");
	assert_int_equal(parse(&only, "crack_after_failures = 4\n", &err1), 0);
	assert_int_equal(only.crack_fail_min, 4);
	assert_int_equal(only.crack_fail_max, 4);
	config_free(&only);
	expect_error("password_top_n = 0\n", "t.conf:1: password_top_n: out of range (1 to 10000000)");
	expect_error("crack_distinct_sources = 17\n",
		     "t.conf:1: crack_distinct_sources: out of range (0 to 16)");
	expect_error("account_expiry = 10s\n",
		     "t.conf:1: account_expiry: out of range (60000ms to 2592000000ms)");
	expect_error("imap_session_memory = 1k\n",
		     "t.conf:1: imap_session_memory: out of range (65536 to 4294967296)");
	expect_error("imap_memory_budget = 100k\n",
		     "t.conf:1: imap_memory_budget: out of range (1048576 to 68719476736)");
	expect_error("output_memory_budget = 1m\n",
		     "t.conf:1: output_memory_budget: out of range (4194304 to 68719476736)");
	/* hostile bytes in a key are escaped in the message */
	expect_error("\x1b[31m = 1\n", "t.conf:1: \\x1b[31m: unknown key");
	/* NUL */
	struct mxb_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	assert_int_equal(config_parse(&cfg, "t.conf", "a\0b = 1\n", 8, &err), -1);
	assert_string_equal(err, "t.conf:1: NUL byte in line");
	free(err);
	config_free(&cfg);
}

static void test_load_file(void **state)
{
	(void)state;
	char path[] = "/tmp/mxbait-test-config-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "# test\nhostname = mx.file.test\nbogus = 2\n";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct mxb_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, path, &err), -1);
	char want[128];
	snprintf(want, sizeof(want), "%s:3: bogus: unknown key", path);
	assert_string_equal(err, want);
	free(err);
	config_free(&cfg);
	unlink(path);

	config_defaults(&cfg);
	assert_int_equal(config_load(&cfg, "/nonexistent/mxbait.conf", &err), -1);
	assert_string_equal(err, "/nonexistent/mxbait.conf: cannot open: No such file or directory");
	free(err);
	config_free(&cfg);
}

/* user: an account that exists (looked up at parse time), empty to keep the uid. */
static void test_user(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_string_equal(cfg.user, ""); /* default: keep the current uid */
	config_free(&cfg);
	/* root exists everywhere; serve refuses uid 0 later, the parser only checks
	 * that the account exists */
	assert_int_equal(parse(&cfg, "user = root\n", &err), 0);
	assert_string_equal(cfg.user, "root");
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "user =\n", &err), 0);
	assert_string_equal(cfg.user, "");
	config_free(&cfg);
	expect_error("# production\nuser = mxb-no-such-user-7\n",
		     "t.conf:2: user: no such user (mxb-no-such-user-7)");
	expect_error("user = a\x01" "b\n", "t.conf:1: user: no such user (a\\x01b)");
	expect_error("user = aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		     "t.conf:1: user: user name too long (at most 63 characters)");
	expect_error("user = root\nuser = root\n",
		     "t.conf:2: user: duplicate key (first set on line 1)");
}

/* analyzer_user: an existing account, empty by default; what serve and `mxbait check`
 * refuse beside user (root, user's own uid or group, no user at all). */
static void test_analyzer_user(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_string_equal(cfg.analyzer_user, "");
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "user = nobody\nanalyzer_user = daemon\n", &err), 0);
	assert_string_equal(cfg.analyzer_user, "daemon");
	char *why = anlaunch_check_user(cfg.analyzer_user, cfg.user);
	assert_null(why);
	config_free(&cfg);
	expect_error("analyzer_user = mxb-no-such-user-7\n",
		     "t.conf:1: analyzer_user: no such user (mxb-no-such-user-7)");
	assert_null(anlaunch_check_user("", "nobody"));
	assert_null(anlaunch_check_user(NULL, NULL));
	/* the account serve runs as unknown (root, no user): only the account checked */
	assert_null(anlaunch_check_user("daemon", ""));
	assert_null(anlaunch_check_user("daemon", NULL));
	/* ... which is user when set, else the one running unless root */
	char acct[64];
	assert_true(anlaunch_daemon_account("nobody", acct, sizeof(acct)));
	assert_string_equal(acct, "nobody");
	assert_true(anlaunch_daemon_account("", acct, sizeof(acct)) == (getuid() != 0));
	const struct { const char *an, *user, *says; } bad[] = {
		{ "root", "nobody", "is root" },
		{ "nobody", "nobody", "has the uid of nobody" },
		{ "root", NULL, "is root" }, /* the account serve runs as unknown */
		{ "mxb-no-such-user-7", "nobody", "analyzer_user mxb-no-such-user-7:" },
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		why = anlaunch_check_user(bad[i].an, bad[i].user);
		assert_non_null(why);
		if (!strstr(why, bad[i].says))
			fail_msg("%s beside %s: \"%s\", expected \"%s\"", bad[i].an,
				 bad[i].user ? bad[i].user : "(none)", why, bad[i].says);
		free(why);
	}
}

/* The analyzer's limits: the analyzer's own defaults, their ranges, and the public
 * suffix list file checked readable at load. */
static void test_analyzer_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(cfg.analyzer_max_depth, 20);
	assert_int_equal(cfg.analyzer_max_parts, 2000);
	assert_int_equal(cfg.analyzer_max_decoded, 64 * 1024 * 1024);
	assert_int_equal(cfg.analyzer_max_text, 4 * 1024 * 1024);
	assert_int_equal(cfg.analyzer_max_links, 5000);
	assert_int_equal(cfg.analyzer_max_recipients, 10000);
	assert_string_equal(cfg.analyzer_psl_file, "");
	config_free(&cfg);

	char path[] = "/tmp/mxbait-test-psl-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "com\n", 4), 4);
	close(fd);
	char text[512];
	snprintf(text, sizeof(text),
		 "analyzer_max_depth = 1000\nanalyzer_max_parts = 1\n"
		 "analyzer_max_decoded = 1\nanalyzer_max_text = 2k\n"
		 "analyzer_max_links = 1000000\nanalyzer_max_recipients = 10000000\n"
		 "analyzer_psl_file = %s\n", path);
	assert_int_equal(parse(&cfg, text, &err), 0);
	assert_int_equal(cfg.analyzer_max_depth, 1000);
	assert_int_equal(cfg.analyzer_max_parts, 1);
	assert_int_equal(cfg.analyzer_max_decoded, 1);
	assert_int_equal(cfg.analyzer_max_text, 2048);
	assert_int_equal(cfg.analyzer_max_links, 1000000);
	assert_int_equal(cfg.analyzer_max_recipients, 10000000);
	assert_string_equal(cfg.analyzer_psl_file, path);
	config_free(&cfg);
	unlink(path);
	assert_int_equal(parse(&cfg, "analyzer_psl_file =\nanalyzer_max_decoded = 1t\n", &err),
			 -1); /* no t suffix */
	free(err);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "analyzer_psl_file =\nanalyzer_max_decoded = 1024g\n",
			       &err), 0); /* 2^40: the most `mxbait analyze` takes */
	assert_string_equal(cfg.analyzer_psl_file, "");
	assert_int_equal(cfg.analyzer_max_decoded, 1ULL << 40);
	config_free(&cfg);

	expect_error("analyzer_max_depth = 0\n",
		     "t.conf:1: analyzer_max_depth: out of range (1 to 1000)");
	expect_error("analyzer_max_depth = 1001\n",
		     "t.conf:1: analyzer_max_depth: out of range (1 to 1000)");
	expect_error("analyzer_max_parts = 0\n",
		     "t.conf:1: analyzer_max_parts: out of range (1 to 1000000)");
	expect_error("analyzer_max_parts = 1000001\n",
		     "t.conf:1: analyzer_max_parts: out of range (1 to 1000000)");
	expect_error("analyzer_max_links = 0\n",
		     "t.conf:1: analyzer_max_links: out of range (1 to 1000000)");
	expect_error("analyzer_max_links = 1000001\n",
		     "t.conf:1: analyzer_max_links: out of range (1 to 1000000)");
	expect_error("analyzer_max_recipients = 10000001\n",
		     "t.conf:1: analyzer_max_recipients: out of range (1 to 10000000)");
	expect_error("analyzer_max_recipients = 0\n",
		     "t.conf:1: analyzer_max_recipients: out of range (1 to 10000000)");
	expect_error("analyzer_max_links = many\n",
		     "t.conf:1: analyzer_max_links: expected a whole number");
	expect_error("analyzer_max_decoded = 0\n",
		     "t.conf:1: analyzer_max_decoded: out of range (1 to 1099511627776)");
	expect_error("analyzer_max_decoded = 1025g\n",
		     "t.conf:1: analyzer_max_decoded: out of range (1 to 1099511627776)");
	expect_error("analyzer_max_text = 0\n",
		     "t.conf:1: analyzer_max_text: out of range (1 to 1099511627776)");
	expect_error("analyzer_max_text = 4q\n", "t.conf:1: analyzer_max_text: expected a size "
		     "(number with optional k, m or g suffix)");
	expect_error("# psl\n\nanalyzer_psl_file = /nonexistent/psl.dat\n",
		     "t.conf:3: analyzer_psl_file: /nonexistent/psl.dat: No such file or "
		     "directory");
	expect_error("analyzer_psl_file = /tmp\n",
		     "t.conf:1: analyzer_psl_file: /tmp: not a regular file");
	expect_error("analyzer_psl_file = /nonexistent/a\x01" "b\n",
		     "t.conf:1: analyzer_psl_file: /nonexistent/a\\x01b: No such file or "
		     "directory");
	expect_error("analyzer_max_links = 3\nanalyzer_max_links = 4\n",
		     "t.conf:2: analyzer_max_links: duplicate key (first set on line 1)");
	if (geteuid() != 0) {
		/* unreadable: root reads anything, so only checked as a user */
		char p2[] = "/tmp/mxbait-test-psl-XXXXXX";
		fd = mkstemp(p2);
		assert_true(fd >= 0);
		close(fd);
		assert_int_equal(chmod(p2, 0), 0);
		snprintf(text, sizeof(text), "analyzer_psl_file = %s\n", p2);
		char want[256];
		snprintf(want, sizeof(want), "t.conf:1: analyzer_psl_file: %s: Permission denied",
			 p2);
		expect_error(text, want);
		unlink(p2);
	}
}

static void test_web_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	assert_int_equal(cfg.n_web_listen, 1);
	assert_string_equal(cfg.web_listen[0], "127.0.0.1:8025");
	assert_int_equal(cfg.n_web_auth, 0);
	assert_int_equal(cfg.web_max_connections, 64);
	assert_int_equal(cfg.web_timeout_ms, 30000);
	assert_int_equal(cfg.web_threads, 2);
	assert_int_equal(cfg.web_auth_failures, 10);
	assert_string_equal(cfg.geoip_file, "");
	config_free(&cfg);

	const char *ok =
		"web_listen = 192.0.2.7:443, [::1]:8025\n"
		"web_auth = ops:read:$6$abcdefgh$0123456789abcdefABCDEF./, "
		"bot:admin:sha256:" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
		"web_max_connections = 10\nweb_timeout = 5s\nweb_threads = 4\n"
		"web_auth_failures = 3\n";
	assert_int_equal(parse(&cfg, ok, &err), 0);
	assert_int_equal(cfg.n_web_listen, 2);
	assert_int_equal(cfg.n_web_auth, 2);
	assert_string_equal(cfg.web_auth[1], "bot:admin:sha256:"
			    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	assert_int_equal(cfg.web_timeout_ms, 5000);
	assert_int_equal(cfg.web_threads, 4);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "web_listen =\n", &err), 0);
	assert_int_equal(cfg.n_web_listen, 0);
	config_free(&cfg);

	assert_true(config_listen_is_loopback("127.0.0.1:8025"));
	assert_true(config_listen_is_loopback("127.9.9.9:1"));
	assert_true(config_listen_is_loopback("[::1]:8025"));
	assert_false(config_listen_is_loopback("*:8025"));
	assert_false(config_listen_is_loopback("0.0.0.0:8025"));
	assert_false(config_listen_is_loopback("[::]:8025"));
	assert_false(config_listen_is_loopback("192.0.2.1:8025"));
	assert_false(config_listen_is_loopback("[::ffff:127.0.0.1]:8025"));

	/* Off loopback without credentials: refused, naming the address. */
	expect_error("web_listen = *:8025\n",
		     "t.conf: web_listen: *:8025 is not a loopback address: set web_auth (the "
		     "dashboard and API then require TLS and a login)");
	expect_error("web_auth = ops\n", "t.conf:1: web_auth: ops: expected NAME:ROLE:HASH");
	expect_error("web_auth = ops:root:sha256:00\n",
		     "t.conf:1: web_auth: ops:root:sha256:00: role must be read, admin or feed");
	expect_error("web_auth = ops:read:sha256:00\n",
		     "t.conf:1: web_auth: ops:read:sha256:00: sha256: needs 64 hex digits");
	expect_error("web_auth = ops:read:plaintext\n",
		     "t.conf:1: web_auth: ops:read:plaintext: hash must be sha256:HEX or a crypt(3) "
		     "hash ($y$, $6$, $5$, $2b$: mkpasswd or openssl passwd -6)");
	expect_error("web_auth = <b>:read:$6$abcdefgh$0123456789abcdefABCDEF\n",
		     "t.conf:1: web_auth: <b>:read:$6$abcdefgh$0123456789abcdefABCDEF: name may "
		     "have letters, digits and . _ @ - only");
	expect_error("web_threads = 0\n", "t.conf:1: web_threads: out of range (1 to 16)");
	expect_error("web_timeout = 100ms\n",
		     "t.conf:1: web_timeout: out of range (1000ms to 3600000ms)");
	expect_error("web_max_connections = 0\n",
		     "t.conf:1: web_max_connections: out of range (1 to 10000)");
}

/* Intel, export and reporter keys (src/intel, src/report; docs/reporting.md). */
static void test_report_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_string_equal(cfg.allowlist_networks, "");
	assert_true(cfg.allowlist_own_addresses);
	assert_int_equal(cfg.export_min_confidence, 50);
	assert_string_equal(cfg.report_smtp_url, "");
	assert_true(cfg.report_redact);
	assert_int_equal(cfg.report_daily_budget, 20);
	assert_int_equal(cfg.report_quiet_ms, 86400000);
	assert_false(cfg.report_leak_digest);
	assert_true(cfg.report_xarf);
	assert_true(cfg.report_web_hosts);
	assert_int_equal(cfg.report_interval_ms, 60000);
	assert_int_equal(cfg.report_expiry_ms, 7 * 86400000U);
	assert_false(cfg.report_contact_lookup);
	assert_true(cfg.report_abusix);
	assert_string_equal(cfg.report_rdap_bootstrap_url, "https://data.iana.org/rdap/");
	assert_string_equal(cfg.report_abuseipdb_url, "https://api.abuseipdb.com/api/v2/");
	assert_string_equal(cfg.report_webhook_url, "");
	config_free(&cfg);

	assert_int_equal(parse(&cfg,
			       "allowlist_networks = 192.0.2.0/24, 2001:db8::/32 198.51.100.7\n"
			       "allowlist_domains = example.com corp.example\n"
			       "allowlist_own_addresses = no\nexport_min_confidence = 0\n"
			       "report_from = abuse@sensor.example\n"
			       "report_smtp_url = smtp://127.0.0.1:2525\nreport_redact = no\n"
			       "report_daily_budget = 100000\nreport_quiet_period = 1m\n"
			       "report_leak_digest = yes\nreport_xarf = no\nreport_interval = 1s\n"
			       "report_web_hosts = no\n"
			       "report_expiry = 1h\nreport_contact_lookup = yes\n"
			       "report_contact_cache = 30d\nreport_abusix = no\n"
			       "report_dns_server = 127.0.0.1:5353\n"
			       "report_netcraft_email = me@example.org\n"
			       "report_webhook_url = https://hook.example/x\n",
			       &err), 0);
	assert_string_equal(cfg.allowlist_networks, "192.0.2.0/24, 2001:db8::/32 198.51.100.7");
	assert_false(cfg.allowlist_own_addresses);
	assert_int_equal(cfg.export_min_confidence, 0);
	assert_false(cfg.report_redact);
	assert_int_equal(cfg.report_daily_budget, 100000);
	assert_int_equal(cfg.report_quiet_ms, 60000);
	assert_true(cfg.report_leak_digest);
	assert_false(cfg.report_xarf);
	assert_false(cfg.report_web_hosts);
	assert_int_equal(cfg.report_interval_ms, 1000);
	assert_int_equal(cfg.report_expiry_ms, 3600000);
	assert_int_equal(cfg.report_contact_cache_ms, 30 * 86400000U);
	assert_string_equal(cfg.report_dns_server, "127.0.0.1:5353");
	config_free(&cfg);

	expect_error("allowlist_networks = 192.0.2.0/24 mail.example.com\n",
		     "t.conf:1: allowlist_networks: mail.example.com: not an address or network");
	expect_error("allowlist_networks = 10.0.0.0/33\n",
		     "t.conf:1: allowlist_networks: 10.0.0.0/33: not an address or network");
	expect_error("export_min_confidence = 101\n",
		     "t.conf:1: export_min_confidence: out of range (0 to 100)");
	expect_error("report_daily_budget = 0\n",
		     "t.conf:1: report_daily_budget: out of range (1 to 100000)");
	expect_error("report_interval = 0s\n",
		     "t.conf:1: report_interval: out of range (1000ms to 86400000ms)");
	expect_error("report_expiry = 1m\n",
		     "t.conf:1: report_expiry: out of range (3600000ms to 2592000000ms)");
	expect_error("report_abuseipdb_key_file = /nonexistent/key\n",
		     "t.conf:1: report_abuseipdb_key_file: /nonexistent/key: No such file or "
		     "directory");
	expect_error("report_ca_file = /tmp\n", "t.conf:1: report_ca_file: /tmp: not a regular file");
}

/* Federation and the hub (docs/federation.md, docs/scaling.md). */
static void test_federation_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_false(cfg.feed_publish);
	assert_false(cfg.feed_public);
	assert_false(cfg.feed_share_victims);
	assert_int_equal(cfg.feed_entry_ttl_ms, 7 * 86400000U);
	assert_int_equal(cfg.peer_pull_interval_ms, 300000);
	assert_int_equal(cfg.peer_consensus, 2);
	assert_string_equal(cfg.peer_action, "divert");
	assert_int_equal(cfg.peer_max_entries, 1000000);
	assert_string_equal(cfg.hub_url, "");
	assert_string_equal(cfg.hub_sensor, "");
	assert_int_equal(cfg.hub_batch, 10000);
	assert_int_equal(cfg.hub_interval_ms, 1000);
	assert_false(cfg.hub_share_passwords);
	assert_int_equal(cfg.hub_retention_days, 0);
	config_free(&cfg);
	assert_int_equal(parse(&cfg,
			       "feed_publish = yes\nfeed_public = yes\nfeed_entry_ttl = 1h\n"
			       "feed_share_victims = yes\npeer_pull_interval = 10s\n"
			       "peer_consensus = 3\npeer_action = ban\npeer_max_entries = 5000\n"
			       "hub_url = host=/run/pg port=5433 dbname=mxbait\nhub_sensor = edge-1\n"
			       "hub_batch = 500\nhub_interval = 250ms\nhub_share_passwords = yes\n"
			       "hub_retention_days = 90\n", &err), 0);
	assert_true(cfg.feed_publish && cfg.feed_public && cfg.feed_share_victims);
	assert_int_equal(cfg.feed_entry_ttl_ms, 3600000);
	assert_int_equal(cfg.peer_pull_interval_ms, 10000);
	assert_int_equal(cfg.peer_consensus, 3);
	assert_string_equal(cfg.peer_action, "ban");
	assert_int_equal(cfg.peer_max_entries, 5000);
	assert_string_equal(cfg.hub_url, "host=/run/pg port=5433 dbname=mxbait");
	assert_string_equal(cfg.hub_sensor, "edge-1");
	assert_int_equal(cfg.hub_batch, 500);
	assert_int_equal(cfg.hub_interval_ms, 250);
	assert_true(cfg.hub_share_passwords);
	assert_int_equal(cfg.hub_retention_days, 90);
	config_free(&cfg);
	expect_error("peer_action = reboot\n",
		     "t.conf:1: peer_action: expected divert, ban, delay or none");
	expect_error("peer_consensus = 0\n", "t.conf:1: peer_consensus: out of range (1 to 100)");
	expect_error("hub_sensor = bad name\n",
		     "t.conf:1: hub_sensor: letters, digits and . _ - only");
	expect_error("hub_batch = 10\n", "t.conf:1: hub_batch: out of range (100 to 1000000)");
	expect_error("feed_entry_ttl = 1m\n",
		     "t.conf:1: feed_entry_ttl: out of range (3600000ms to 2592000000ms)");
	expect_error("web_auth = peer:feeder:sha256:00\n",
		     "t.conf:1: web_auth: peer:feeder:sha256:00: role must be read, admin or feed");
	assert_int_equal(parse(&cfg, "web_auth = peer:feed:sha256:"
			       "0000000000000000000000000000000000000000000000000000000000000000\n",
			       &err), 0);
	config_free(&cfg);
}

/* The records' disk budgets and retention: defaults, 0 = off, lower bounds, units
 * (retention is a duration past 2^32 ms: 90 days is 7.8e9 ms). */
static void test_budget_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(cfg.database_budget, 1024ULL * 1024 * 1024);
	assert_int_equal(cfg.analysis_budget, 1024ULL * 1024 * 1024);
	assert_int_equal(cfg.event_log_budget, 1024ULL * 1024 * 1024);
	assert_int_equal(cfg.retention_ms, 90ULL * 86400 * 1000);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "database_budget = 1m\nanalysis_budget = 0\n"
				     "event_log_budget = 64k\nretention = 3650d\n", &err), 0);
	assert_int_equal(cfg.database_budget, 1024 * 1024);
	assert_int_equal(cfg.analysis_budget, 0);
	assert_int_equal(cfg.event_log_budget, 64 * 1024);
	assert_int_equal(cfg.retention_ms, 3650ULL * 86400 * 1000);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "retention = 0\ndatabase_budget = 0\nevent_log_budget = 0\n",
			       &err), 0);
	assert_int_equal(cfg.retention_ms, 0);
	assert_int_equal(cfg.database_budget, 0);
	config_free(&cfg);
	assert_int_equal(parse(&cfg, "retention = 1h\n", &err), 0);
	assert_int_equal(cfg.retention_ms, 3600000);
	config_free(&cfg);
	expect_error("database_budget = 512k\n",
		     "t.conf:1: database_budget: out of range (0 for none, or 1048576 to "
		     "1125899906842624)");
	expect_error("analysis_budget = 1\n",
		     "t.conf:1: analysis_budget: out of range (0 for none, or 1048576 to "
		     "1125899906842624)");
	expect_error("event_log_budget = 1k\n",
		     "t.conf:1: event_log_budget: out of range (0 for none, or 65536 to "
		     "1125899906842624)");
	/* A bare number is seconds: 90 would keep 90 seconds of records; refused. */
	expect_error("retention = 90\n",
		     "t.conf:1: retention: out of range (0 for none, or 3600000ms to "
		     "3153600000000ms)");
	expect_error("retention = 36501d\n",
		     "t.conf:1: retention: out of range (0 for none, or 3600000ms to "
		     "3153600000000ms)");
	expect_error("retention = forever\n", "t.conf:1: retention: expected a duration "
		     "(number with ms, s, m, h or d suffix)");
	expect_error("database_budget = lots\n", "t.conf:1: database_budget: expected a size "
		     "(number with optional k, m or g suffix)");
}

/* The shipped example must load, and say what it claims. */
static void test_example_file(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	config_defaults(&cfg);
	int rc = config_load(&cfg, MXB_SOURCE_DIR "/etc/mxbait.conf.example", &err);
	if (rc)
		fprintf(stderr, "%s\n", err);
	assert_int_equal(rc, 0);
	assert_string_equal(cfg.hostname, "mail.example.com");
	assert_string_equal(cfg.smtp_listen[0], "*:25");
	assert_string_equal(cfg.data_dir, "/var/lib/mxbait");
	assert_string_equal(cfg.event_log, "/var/lib/mxbait/events.jsonl");
	assert_int_equal(cfg.max_connections_per_ip, 50);
	assert_string_equal(cfg.imap_listen[0], "*:143");
	assert_string_equal(cfg.pop3s_listen[1], "[::]:995");
	assert_int_equal(cfg.crack_fail_max, 6);
	config_free(&cfg);
}

/* The guard's keys (issue 9): defaults, values, bounds and the cross-key rules. */
static void test_guard_keys(void **state)
{
	(void)state;
	struct mxb_config cfg;
	char *err = NULL;
	assert_int_equal(parse(&cfg, "", &err), 0);
	assert_int_equal(cfg.n_dovecot_policy_listen, 0);
	assert_int_equal(cfg.n_postfix_policy_listen, 0);
	assert_string_equal(cfg.dovecot_policy_hash_mech, "sha256");
	assert_int_equal(cfg.dovecot_policy_hash_truncate, 12);
	assert_false(cfg.divert);
	assert_false(cfg.watch_journal);
	assert_int_equal(cfg.n_trusted_networks, 0);
	assert_int_equal(cfg.n_divert_ports, 6); /* the authentication ports, not 25 */
	assert_string_equal(cfg.divert_ports[0], "587");
	assert_string_equal(cfg.backend_mta, "");
	assert_int_equal(cfg.guard_window_ms, 3600000);
	assert_int_equal(cfg.decision_duration_ms, 3600000);
	assert_int_equal(cfg.decision_max_duration_ms, 7 * 86400000U);
	unsigned real, trap;
	assert_int_equal(config_divert_map(&cfg, 0, &real, &trap), 0);
	assert_int_equal(real, 587);
	assert_int_equal(trap, 2587); /* submission_listen's port */
	config_free(&cfg);

	assert_int_equal(parse(&cfg,
			       "dovecot_policy_listen = 127.0.0.1:9080, [::1]:9080\n"
			       "dovecot_policy_api_key = s3cret\n"
			       "dovecot_policy_hash_nonce = n0nce\n"
			       "dovecot_policy_hash_mech = sha512\n"
			       "dovecot_policy_hash_truncate = 0\n"
			       "postfix_policy_listen = unix:/run/mxbait/policy, 127.0.0.1:9081\n"
			       "watch_log_files = /var/log/mail.log /var/log/dovecot.log\n"
			       "watch_journal = yes\nwatch_journal_directory = /var/log/journal\n"
			       "trusted_networks = 192.0.2.0/24, 2001:db8::/32 ::ffff:198.51.100.7\n"
			       "guard_trap_users = admin, test@example.test\n"
			       "divert = yes\ndivert_ports = 25, 587, 143:12143\n"
			       "divert_to = 192.0.2.10\nbackend_mta = lmtp:unix:/run/dovecot/lmtp\n"
			       "decision_duration = 30m\ndecision_max_duration = 2d\nban_after = 3\n",
			       &err), 0);
	assert_int_equal(cfg.n_dovecot_policy_listen, 2);
	assert_string_equal(cfg.postfix_policy_listen[0], "unix:/run/mxbait/policy");
	assert_int_equal(cfg.n_watch_log_files, 2);
	assert_int_equal(cfg.n_trusted_networks, 3);
	assert_int_equal(cfg.n_guard_trap_users, 2);
	assert_true(cfg.divert);
	assert_int_equal(config_divert_map(&cfg, 0, &real, &trap), 0);
	assert_int_equal(trap, 2525);
	assert_int_equal(config_divert_map(&cfg, 2, &real, &trap), 0);
	assert_int_equal(real, 143);
	assert_int_equal(trap, 12143);
	assert_int_equal(config_divert_map(&cfg, 3, &real, &trap), -1);
	struct mxb_backend b;
	assert_int_equal(config_backend_parse(cfg.backend_mta, &b), 0);
	assert_true(b.lmtp && b.unix_socket);
	assert_string_equal(b.path, "/run/dovecot/lmtp");
	assert_int_equal(config_backend_parse("[::1]:25", &b), 0);
	assert_false(b.lmtp || b.unix_socket);
	assert_string_equal(b.host, "::1");
	assert_int_equal(b.port, 25);
	assert_int_equal(config_backend_parse("*:25", &b), -1);
	assert_int_equal(cfg.ban_after, 3);
	config_free(&cfg);

	expect_error("dovecot_policy_listen = 127.0.0.1:9080\n",
		     "t.conf:1: dovecot_policy_listen: needs dovecot_policy_api_key and "
		     "dovecot_policy_hash_nonce (the same as Dovecot's auth_policy_server_api_header "
		     "and auth_policy_hash_nonce)");
	expect_error("dovecot_policy_hash_mech = crc32\n",
		     "t.conf:1: dovecot_policy_hash_mech: expected md5, sha1, sha256 or sha512 (as "
		     "Dovecot's auth_policy_hash_mech)");
	expect_error("dovecot_policy_hash_truncate = 513\n",
		     "t.conf:1: dovecot_policy_hash_truncate: out of range (0 to 512)");
	expect_error("postfix_policy_listen = unix:relative\n",
		     "t.conf:1: postfix_policy_listen: unix:relative: a unix socket needs an absolute "
		     "path (unix:/run/mxbait/policy)");
	expect_error("trusted_networks = 192.0.2.0/33\n",
		     "t.conf:1: trusted_networks: 192.0.2.0/33: not an address or prefix "
		     "(192.0.2.0/24, 2001:db8::/32)");
	expect_error("watch_log_files = mail.log\n",
		     "t.conf:1: watch_log_files: mail.log: expected an absolute path");
	expect_error("divert_ports = 0\n",
		     "t.conf:1: divert_ports: 0: expected a port (1-65535) or port:honeypot_port");
	expect_error("divert_ports = 25:x\n",
		     "t.conf:1: divert_ports: 25:x: expected a port (1-65535) or port:honeypot_port");
	expect_error("divert = yes\ndivert_ports = 2000\n",
		     "t.conf:2: divert_ports: 2000: no honeypot port (give it as port:honeypot_port, "
		     "or configure the listener of that role)");
	expect_error("divert = yes\nsmtp_listen =\ndivert_ports = 25\n",
		     "t.conf:3: divert_ports: 25: no honeypot port (give it as port:honeypot_port, "
		     "or configure the listener of that role)");
	expect_error("divert_to = 192.0.2.0/24\n",
		     "t.conf:1: divert_to: expected one IPv4 or IPv6 address");
	expect_error("backend_mta = mail.example.com:25\n",
		     "t.conf:1: backend_mta: expected [smtp:|lmtp:]ADDRESS:PORT or lmtp:unix:/path "
		     "(e.g. 127.0.0.1:25)");
	expect_error("decision_duration = 2d\ndecision_max_duration = 1d\n",
		     "t.conf:1: decision_duration: above decision_max_duration");
	expect_error("guard_user_min_ips = 1\n",
		     "t.conf:1: guard_user_min_ips: out of range (2 to 100000)");
	expect_error("guard_trap_users = bad\x01user\n",
		     "t.conf:1: guard_trap_users: bad\\x01user: control character or space");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_empty_text_keeps_defaults),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_derived_defaults),
		cmocka_unit_test(test_key_range),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_user),
		cmocka_unit_test(test_analyzer_user),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_analyzer_keys),
		cmocka_unit_test(test_budget_keys),
		cmocka_unit_test(test_guard_keys),
		cmocka_unit_test(test_web_keys),
		cmocka_unit_test(test_report_keys),
		cmocka_unit_test(test_federation_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
