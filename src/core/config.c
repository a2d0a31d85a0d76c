/*
 * config: mxbait.conf parser and validator (see config.h and docs/mxbait.conf.5).
 *
 * Promises: config_parse() never reads past len, accepts any bytes (NUL included) and
 * either fills cfg with validated values or leaves a message "name:line: key: why"
 * in *err_r.  On error cfg still holds a consistent (freeable) mix of defaults and the
 * values parsed so far; callers exit.  The table below is the single list of keys:
 * the man page and docs/configuration.md document the same list.
 */
#include "core/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/netaddr.h"

#define CONFIG_MAX_FILE (1024 * 1024)   /* a config file is small; refuse monsters */
#define CONFIG_MAX_LIST 1024            /* entries in local_domains / accounts */

enum key_type { K_STR, K_PATH, K_HOST, K_DOMAINS, K_ACCOUNTS, K_LISTEN, K_BOOL, K_SIZE,
		K_SIZE64, K_UINT, K_MS, K_RANGE, K_USER, K_FILE, K_LIST, K_ADDRS, K_WEBAUTH,
		K_NETLIST, K_LOG,
		K_BUDGET,  /* a uint64_t size: 0 (no limit) or min..max */
		K_MS64 };  /* a uint64_t duration in ms: 0 (off) or min..max */

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	uint64_t min, max; /* numeric bounds (bytes, count or milliseconds) */
	size_t count_off;  /* lists: offset of the element count; K_RANGE: of the upper end */
};
/* K_LIST is a malloc'd array of strings (max: most items, 0 = CONFIG_MAX_LIST);
 * K_ADDRS a fixed array of MXB_MAX_LISTEN.  Their items, and K_STR values, may have a
 * check (key_checks below): NULL when acceptable, else why not. */

static const char *check_policy_listen(const char *s);
static const char *check_network(const char *s);
static const char *check_divert_port(const char *s);
static const char *check_abs_path(const char *s);
static const char *check_token(const char *s);
static const char *check_hash_mech(const char *s);
static const char *check_backend(const char *s);
static const char *check_host_address(const char *s);
static const char *check_peer_action(const char *s);
static const char *check_sensor_name(const char *s);

#define OFF(f) offsetof(struct mxb_config, f)
#define KIB 1024ULL
#define MIB (1024ULL * 1024)
#define GIB (1024ULL * 1024 * 1024)
/* `mxbait analyze` refuses numbers above 2^40 (1t): the analyzer's sizes stop there. */
#define ANALYZER_SIZE_MAX (1ULL << 40)

static const struct key_def keys[] = {
	{ "hostname", K_HOST, OFF(hostname), 0, 0, 0 },
	{ "local_domains", K_DOMAINS, OFF(local_domains), 0, 0, OFF(n_local_domains) },
	{ "catch_all", K_BOOL, OFF(catch_all), 0, 0, 0 },
	{ "vrfy", K_BOOL, OFF(vrfy_enabled), 0, 0, 0 },
	{ "smtp_auth_on_port25", K_BOOL, OFF(auth_on_mx), 0, 0, 0 },
	{ "auth_cram_md5", K_BOOL, OFF(cram_md5), 0, 0, 0 },
	{ "accounts", K_ACCOUNTS, OFF(accounts), 0, 0, OFF(n_accounts) },
	{ "smtp_listen", K_LISTEN, OFF(smtp_listen), 0, 0, OFF(n_smtp_listen) },
	{ "submission_listen", K_LISTEN, OFF(submission_listen), 0, 0, OFF(n_submission_listen) },
	{ "smtps_listen", K_LISTEN, OFF(smtps_listen), 0, 0, OFF(n_smtps_listen) },
	{ "imap_listen", K_LISTEN, OFF(imap_listen), 0, 0, OFF(n_imap_listen) },
	{ "imaps_listen", K_LISTEN, OFF(imaps_listen), 0, 0, OFF(n_imaps_listen) },
	{ "pop3_listen", K_LISTEN, OFF(pop3_listen), 0, 0, OFF(n_pop3_listen) },
	{ "pop3s_listen", K_LISTEN, OFF(pop3s_listen), 0, 0, OFF(n_pop3s_listen) },
	{ "password_list", K_STR, OFF(password_list), 0, 0, 0 },
	{ "password_top_n", K_UINT, OFF(password_top_n), 1, 10000000, 0 },
	{ "crack_after_failures", K_RANGE, OFF(crack_fail_min), 0, 1000, OFF(crack_fail_max) },
	{ "max_accounts", K_UINT, OFF(max_accounts), 1, 100000000, 0 },
	{ "account_expiry", K_MS, OFF(account_expiry_ms), 60000, 30 * 86400000U, 0 },
	{ "username_list", K_STR, OFF(username_list), 0, 0, 0 },
	{ "crack_distinct_sources", K_UINT, OFF(crack_distinct_sources), 0, 16, 0 },
	{ "crack_rcpt_probed", K_BOOL, OFF(crack_rcpt_probed), 0, 0, 0 },
	{ "distributed_window", K_MS, OFF(distributed_window_ms), 1000, 30 * 86400000U, 0 },
	{ "distributed_min_ips", K_UINT, OFF(distributed_min_ips), 1, 1000000, 0 },
	{ "data_dir", K_PATH, OFF(data_dir), 0, 0, 0 },
	{ "tls_cert_file", K_STR, OFF(tls_cert_file), 0, 0, 0 },
	{ "tls_key_file", K_STR, OFF(tls_key_file), 0, 0, 0 },
	{ "tls_ecdsa", K_BOOL, OFF(tls_ecdsa), 0, 0, 0 },
	{ "tls_eccert_file", K_STR, OFF(tls_eccert_file), 0, 0, 0 },
	{ "tls_eckey_file", K_STR, OFF(tls_eckey_file), 0, 0, 0 },
	{ "event_log", K_STR, OFF(event_log), 0, 0, 0 },
	{ "line_length_limit", K_SIZE, OFF(line_length_limit), 512, MIB, 0 },
	{ "message_size_limit", K_SIZE64, OFF(message_size_limit), KIB, 4 * GIB, 0 },
	{ "recipient_limit", K_UINT, OFF(recipient_limit), 1, 100000, 0 },
	{ "command_limit", K_UINT, OFF(command_limit), 1, 10000000, 0 },
	{ "soft_error_limit", K_UINT, OFF(soft_error_limit), 1, 100000, 0 },
	{ "hard_error_limit", K_UINT, OFF(hard_error_limit), 1, 100000, 0 },
	{ "error_sleep_time", K_MS, OFF(error_sleep_ms), 0, 60000, 0 },
	{ "auth_failure_delay", K_MS, OFF(auth_failure_delay_ms), 0, 60000, 0 },
	{ "auth_failure_jitter", K_BOOL, OFF(auth_failure_jitter), 0, 0, 0 },
	{ "login_latency", K_BOOL, OFF(login_latency), 0, 0, 0 },
	{ "mail_max_userip_connections", K_UINT, OFF(mail_max_userip_connections), 0, 100000, 0 },
	{ "idle_timeout", K_MS, OFF(idle_timeout_ms), 1000, 86400000, 0 },
	{ "session_timeout", K_MS, OFF(session_timeout_ms), 1000, 7 * 86400000U, 0 },
	{ "tls_handshake_timeout", K_MS, OFF(tls_handshake_timeout_ms), 1000, 3600000, 0 },
	{ "login_timeout", K_MS, OFF(login_timeout_ms), 1000, 86400000, 0 },
	{ "imap_idle_timeout", K_MS, OFF(imap_idle_timeout_ms), 1000, 86400000, 0 },
	{ "pop3_idle_timeout", K_MS, OFF(pop3_idle_timeout_ms), 1000, 86400000, 0 },
	{ "imap_line_length_limit", K_SIZE, OFF(imap_line_length_limit), 1024, 16 * MIB, 0 },
	{ "imap_literal_max", K_SIZE, OFF(imap_literal_max), KIB, GIB, 0 },
	{ "imap_session_memory", K_SIZE, OFF(imap_session_memory), 64 * KIB, 4 * GIB, 0 },
	{ "imap_memory_budget", K_SIZE, OFF(imap_memory_budget), MIB, 64 * GIB, 0 },
	{ "output_memory_budget", K_SIZE, OFF(output_memory_budget), 4 * MIB, 64 * GIB, 0 },
	{ "imap_bad_command_limit", K_UINT, OFF(imap_bad_command_limit), 1, 100000, 0 },
	{ "pop3_bad_command_limit", K_UINT, OFF(pop3_bad_command_limit), 1, 100000, 0 },
	{ "auth_penalty", K_BOOL, OFF(auth_penalty), 0, 0, 0 },
	{ "max_connections", K_UINT, OFF(max_connections), 1, 1000000, 0 },
	{ "max_connections_per_ip", K_UINT, OFF(max_connections_per_ip), 0, 1000000, 0 },
	{ "connection_rate_per_ip", K_UINT, OFF(connection_rate_per_ip), 0, 1000000, 0 },
	{ "max_connections_per_prefix", K_UINT, OFF(max_connections_per_prefix), 0, 1000000, 0 },
	{ "spool_budget", K_SIZE64, OFF(spool_budget), 0, (uint64_t)1 << 50, 0 },
	{ "database_budget", K_BUDGET, OFF(database_budget), MIB, (uint64_t)1 << 50, 0 },
	{ "analysis_budget", K_BUDGET, OFF(analysis_budget), MIB, (uint64_t)1 << 50, 0 },
	{ "event_log_budget", K_BUDGET, OFF(event_log_budget), 64 * KIB, (uint64_t)1 << 50, 0 },
	{ "retention", K_MS64, OFF(retention_ms), 3600000ULL, 36500ULL * 86400000, 0 },
	{ "analyzer", K_BOOL, OFF(analyzer), 0, 0, 0 },
	{ "user", K_USER, OFF(user), 0, 0, 0 },
	{ "analyzer_user", K_USER, OFF(analyzer_user), 0, 0, 0 },
	{ "analyzer_max_depth", K_UINT, OFF(analyzer_max_depth), 1, 1000, 0 },
	{ "analyzer_max_parts", K_UINT, OFF(analyzer_max_parts), 1, 1000000, 0 },
	{ "analyzer_max_decoded", K_SIZE, OFF(analyzer_max_decoded), 1, ANALYZER_SIZE_MAX, 0 },
	{ "analyzer_max_text", K_SIZE, OFF(analyzer_max_text), 1, ANALYZER_SIZE_MAX, 0 },
	{ "analyzer_max_links", K_UINT, OFF(analyzer_max_links), 1, 1000000, 0 },
	{ "analyzer_max_recipients", K_UINT, OFF(analyzer_max_recipients), 1, 10000000, 0 },
	{ "analyzer_psl_file", K_FILE, OFF(analyzer_psl_file), 0, 0, 0 },
	/* guard (docs/deploy.md) */
	{ "dovecot_policy_listen", K_ADDRS, OFF(dovecot_policy_listen), 0, 0, OFF(n_dovecot_policy_listen) },
	{ "dovecot_policy_api_key", K_STR, OFF(dovecot_policy_api_key), 0, 0, 0 },
	{ "dovecot_policy_hash_nonce", K_STR, OFF(dovecot_policy_hash_nonce), 0, 0, 0 },
	{ "dovecot_policy_hash_mech", K_STR, OFF(dovecot_policy_hash_mech), 0, 0, 0 },
	{ "dovecot_policy_hash_truncate", K_UINT, OFF(dovecot_policy_hash_truncate), 0, 512, 0 },
	{ "postfix_policy_listen", K_ADDRS, OFF(postfix_policy_listen), 0, 0, OFF(n_postfix_policy_listen) },
	{ "watch_log_files", K_LIST, OFF(watch_log_files), 0, 64, OFF(n_watch_log_files) },
	{ "watch_journal", K_BOOL, OFF(watch_journal), 0, 0, 0 },
	{ "watch_journal_directory", K_STR, OFF(watch_journal_directory), 0, 0, 0 },
	{ "trusted_networks", K_LIST, OFF(trusted_networks), 0, CONFIG_MAX_LIST, OFF(n_trusted_networks) },
	{ "guard_trap_users", K_LIST, OFF(guard_trap_users), 0, CONFIG_MAX_LIST, OFF(n_guard_trap_users) },
	{ "guard_window", K_MS, OFF(guard_window_ms), 10000, 7 * 86400000U, 0 },
	{ "guard_user_min_ips", K_UINT, OFF(guard_user_min_ips), 2, 100000, 0 },
	{ "guard_pair_min_ips", K_UINT, OFF(guard_pair_min_ips), 2, 100000, 0 },
	{ "guard_ip_failures", K_UINT, OFF(guard_ip_failures), 1, 100000, 0 },
	{ "guard_known_user_failures", K_UINT, OFF(guard_known_user_failures), 1, 100000, 0 },
	{ "guard_prefix_min_ips", K_UINT, OFF(guard_prefix_min_ips), 2, 100000, 0 },
	{ "guard_ip_unknown_rcpts", K_UINT, OFF(guard_ip_unknown_rcpts), 1, 100000, 0 },
	{ "guard_domain_unknown_rcpts", K_UINT, OFF(guard_domain_unknown_rcpts), 2, 1000000, 0 },
	{ "guard_delay", K_MS, OFF(guard_delay_ms), 1000, 60000, 0 },
	{ "guard_max_keys", K_UINT, OFF(guard_max_keys), 100, 10000000, 0 },
	{ "decision_duration", K_MS, OFF(decision_duration_ms), 60000, 30 * 86400000U, 0 },
	{ "decision_max_duration", K_MS, OFF(decision_max_duration_ms), 60000, 49 * 86400000U, 0 },
	{ "ban_after", K_UINT, OFF(ban_after), 0, 1000, 0 },
	{ "divert", K_BOOL, OFF(divert), 0, 0, 0 },
	{ "divert_ports", K_LIST, OFF(divert_ports), 0, 16, OFF(n_divert_ports) },
	{ "divert_to", K_STR, OFF(divert_to), 0, 0, 0 },
	{ "nft_path", K_STR, OFF(nft_path), 0, 0, 0 },
	{ "nft_set_size", K_UINT, OFF(nft_set_size), 16, 16777216, 0 },
	{ "backend_mta", K_STR, OFF(backend_mta), 0, 0, 0 },
	{ "web_listen", K_LISTEN, OFF(web_listen), 0, 0, OFF(n_web_listen) },
	{ "web_auth", K_WEBAUTH, OFF(web_auth), 0, 0, OFF(n_web_auth) },
	{ "web_max_connections", K_UINT, OFF(web_max_connections), 1, 10000, 0 },
	{ "web_timeout", K_MS, OFF(web_timeout_ms), 1000, 3600000, 0 },
	{ "web_threads", K_UINT, OFF(web_threads), 1, 16, 0 },
	{ "web_auth_failures", K_UINT, OFF(web_auth_failures), 1, 100000, 0 },
	{ "geoip_file", K_FILE, OFF(geoip_file), 0, 0, 0 },
	{ "allowlist_networks", K_NETLIST, OFF(allowlist_networks), 0, 0, 0 },
	{ "allowlist_domains", K_STR, OFF(allowlist_domains), 0, 0, 0 },
	{ "allowlist_own_addresses", K_BOOL, OFF(allowlist_own_addresses), 0, 0, 0 },
	{ "export_min_confidence", K_UINT, OFF(export_min_confidence), 0, 100, 0 },
	{ "report_from", K_STR, OFF(report_from), 0, 0, 0 },
	{ "report_smtp_url", K_STR, OFF(report_smtp_url), 0, 0, 0 },
	{ "report_redact", K_BOOL, OFF(report_redact), 0, 0, 0 },
	{ "report_daily_budget", K_UINT, OFF(report_daily_budget), 1, 100000, 0 },
	{ "report_quiet_period", K_MS, OFF(report_quiet_ms), 60000, 30 * 86400000U, 0 },
	{ "report_leak_digest", K_BOOL, OFF(report_leak_digest), 0, 0, 0 },
	{ "report_xarf", K_BOOL, OFF(report_xarf), 0, 0, 0 },
	{ "report_web_hosts", K_BOOL, OFF(report_web_hosts), 0, 0, 0 },
	{ "report_interval", K_MS, OFF(report_interval_ms), 1000, 86400000, 0 },
	{ "report_expiry", K_MS, OFF(report_expiry_ms), 3600000, 30 * 86400000U, 0 },
	{ "report_contact_lookup", K_BOOL, OFF(report_contact_lookup), 0, 0, 0 },
	{ "report_rdap_bootstrap_url", K_STR, OFF(report_rdap_bootstrap_url), 0, 0, 0 },
	{ "report_contact_cache", K_MS, OFF(report_contact_cache_ms), 3600000, 30 * 86400000U, 0 },
	{ "report_ca_file", K_FILE, OFF(report_ca_file), 0, 0, 0 },
	{ "report_abusix", K_BOOL, OFF(report_abusix), 0, 0, 0 },
	{ "report_dns_server", K_STR, OFF(report_dns_server), 0, 0, 0 },
	{ "report_abuseipdb_key_file", K_FILE, OFF(report_abuseipdb_key_file), 0, 0, 0 },
	{ "report_abuseipdb_url", K_STR, OFF(report_abuseipdb_url), 0, 0, 0 },
	{ "report_spamhaus_key_file", K_FILE, OFF(report_spamhaus_key_file), 0, 0, 0 },
	{ "report_spamhaus_url", K_STR, OFF(report_spamhaus_url), 0, 0, 0 },
	{ "report_netcraft_email", K_STR, OFF(report_netcraft_email), 0, 0, 0 },
	{ "report_netcraft_url", K_STR, OFF(report_netcraft_url), 0, 0, 0 },
	{ "report_urlhaus_key_file", K_FILE, OFF(report_urlhaus_key_file), 0, 0, 0 },
	{ "report_urlhaus_url", K_STR, OFF(report_urlhaus_url), 0, 0, 0 },
	{ "report_webhook_url", K_STR, OFF(report_webhook_url), 0, 0, 0 },
	{ "report_webhook_token_file", K_FILE, OFF(report_webhook_token_file), 0, 0, 0 },
	{ "report_smtp_rate", K_UINT, OFF(report_smtp_rate), 1, 100000, 0 },
	{ "report_webhook_rate", K_UINT, OFF(report_webhook_rate), 1, 1000000, 0 },
	{ "feed_publish", K_BOOL, OFF(feed_publish), 0, 0, 0 },
	{ "feed_public", K_BOOL, OFF(feed_public), 0, 0, 0 },
	{ "feed_entry_ttl", K_MS, OFF(feed_entry_ttl_ms), 3600000, 30 * 86400000U, 0 },
	{ "feed_share_victims", K_BOOL, OFF(feed_share_victims), 0, 0, 0 },
	{ "peer_pull_interval", K_MS, OFF(peer_pull_interval_ms), 1000, 86400000, 0 },
	{ "peer_consensus", K_UINT, OFF(peer_consensus), 1, 100, 0 },
	{ "peer_action", K_STR, OFF(peer_action), 0, 0, 0 },
	{ "peer_max_entries", K_UINT, OFF(peer_max_entries), 1000, 100000000, 0 },
	{ "hub_url", K_STR, OFF(hub_url), 0, 0, 0 },
	{ "hub_sensor", K_STR, OFF(hub_sensor), 0, 0, 0 },
	{ "hub_batch", K_UINT, OFF(hub_batch), 100, 1000000, 0 },
	{ "hub_interval", K_MS, OFF(hub_interval_ms), 100, 3600000, 0 },
	{ "hub_share_passwords", K_BOOL, OFF(hub_share_passwords), 0, 0, 0 },
	{ "hub_retention_days", K_UINT, OFF(hub_retention_days), 0, 36500, 0 },
	{ "log", K_LOG, OFF(log), 0, 0, 0 },
};
#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const struct { const char *key; const char *(*check)(const char *); } key_checks[] = {
	{ "dovecot_policy_listen", check_policy_listen },
	{ "dovecot_policy_api_key", check_token },
	{ "dovecot_policy_hash_nonce", check_token },
	{ "dovecot_policy_hash_mech", check_hash_mech },
	{ "postfix_policy_listen", check_policy_listen },
	{ "watch_log_files", check_abs_path },
	{ "watch_journal_directory", check_abs_path },
	{ "trusted_networks", check_network },
	{ "guard_trap_users", check_token },
	{ "divert_ports", check_divert_port },
	{ "divert_to", check_host_address },
	{ "nft_path", check_abs_path },
	{ "backend_mta", check_backend },
	{ "peer_action", check_peer_action },
	{ "hub_sensor", check_sensor_name },
};

static const char *(*key_check(const char *name))(const char *)
{
	for (size_t i = 0; i < sizeof(key_checks) / sizeof(key_checks[0]); i++)
		if (!strcmp(key_checks[i].key, name))
			return key_checks[i].check;
	return NULL;
}


static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		abort(); /* out of memory at start-up: nothing sensible to do */
	return p;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);
	if (!p)
		abort();
	return p;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
}

/* The host name a stock Postfix would use: gethostname() if it is fully qualified,
 * else that name plus ".localdomain" (Postfix's $mydomain default).  Never DNS. */
static char *default_hostname(void)
{
	char h[256];
	if (gethostname(h, sizeof(h) - 1) != 0 || h[0] == '\0')
		return xstrdup("localhost.localdomain");
	h[sizeof(h) - 1] = '\0';
	for (char *p = h; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (!isalnum(c) && c != '-' && c != '.')
			return xstrdup("localhost.localdomain");
		*p = (char)tolower(c);
	}
	if (strchr(h, '.'))
		return xstrdup(h);
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s.localdomain", h);
	return buf_steal(&b, NULL);
}

/* local_domains default: the host name itself and its parent domain (what mail for a
 * honeypot named mail.example.com is addressed to: example.com), plus example.test, the
 * reserved demo domain the README's tour sends to (harmless anywhere: .test never
 * carries real mail). */
#define DEMO_DOMAIN "example.test"
static void default_local_domains(struct mxb_config *cfg)
{
	free_list(cfg->local_domains, cfg->n_local_domains);
	free(cfg->local_domains);
	cfg->local_domains = calloc(3, sizeof(char *));
	if (!cfg->local_domains)
		abort();
	cfg->n_local_domains = 0;
	cfg->local_domains[cfg->n_local_domains++] = xstrdup(cfg->hostname);
	const char *dot = strchr(cfg->hostname, '.');
	if (dot && dot[1] && strcasecmp(dot + 1, DEMO_DOMAIN) != 0)
		cfg->local_domains[cfg->n_local_domains++] = xstrdup(dot + 1);
	if (strcasecmp(cfg->hostname, DEMO_DOMAIN) != 0)
		cfg->local_domains[cfg->n_local_domains++] = xstrdup(DEMO_DOMAIN);
}

static char *join_path(const char *dir, const char *file)
{
	struct buf b;
	buf_init(&b, 0);
	buf_printf(&b, "%s/%s", dir, file);
	return buf_steal(&b, NULL);
}

static void set_listen(char **v, size_t *n, const char *a, const char *b)
{
	free_list(v, *n);
	v[0] = xstrdup(a);
	v[1] = xstrdup(b);
	*n = 2;
}

void config_defaults(struct mxb_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->hostname = default_hostname();
	default_local_domains(cfg);
	cfg->catch_all = false;
	cfg->vrfy_enabled = true;
	cfg->auth_on_mx = false;
	cfg->cram_md5 = false;
	cfg->accounts = NULL;
	cfg->n_accounts = 0;
	set_listen(cfg->smtp_listen, &cfg->n_smtp_listen, "127.0.0.1:2525", "[::1]:2525");
	set_listen(cfg->submission_listen, &cfg->n_submission_listen, "127.0.0.1:2587",
		   "[::1]:2587");
	set_listen(cfg->smtps_listen, &cfg->n_smtps_listen, "127.0.0.1:2465", "[::1]:2465");
	set_listen(cfg->imap_listen, &cfg->n_imap_listen, "127.0.0.1:2143", "[::1]:2143");
	set_listen(cfg->imaps_listen, &cfg->n_imaps_listen, "127.0.0.1:2993", "[::1]:2993");
	set_listen(cfg->pop3_listen, &cfg->n_pop3_listen, "127.0.0.1:2110", "[::1]:2110");
	set_listen(cfg->pop3s_listen, &cfg->n_pop3s_listen, "127.0.0.1:2995", "[::1]:2995");
	cfg->password_list = xstrdup(MXB_DEFAULT_PASSWORD_LIST);
	cfg->password_top_n = 1000;
	cfg->crack_fail_min = 2;
	cfg->crack_fail_max = 6;
	cfg->max_accounts = 100000;
	cfg->account_expiry_ms = 7 * 86400000U;
	cfg->username_list = xstrdup(MXB_DEFAULT_USERNAME_LIST);
	cfg->crack_distinct_sources = 3;
	cfg->crack_rcpt_probed = true;
	cfg->distributed_window_ms = 3600000;
	cfg->distributed_min_ips = 5;
	cfg->data_dir = xstrdup("./mxbait-data");
	cfg->tls_cert_file = xstrdup("");
	cfg->tls_key_file = xstrdup("");
	cfg->tls_eccert_file = xstrdup("");
	cfg->tls_eckey_file = xstrdup("");
	cfg->event_log = join_path(cfg->data_dir, "events.jsonl");
	cfg->line_length_limit = 2048;
	cfg->message_size_limit = 10240000;
	cfg->recipient_limit = 1000;
	cfg->command_limit = 1000;
	cfg->soft_error_limit = 10;
	cfg->hard_error_limit = 20;
	cfg->error_sleep_ms = 1000;
	cfg->auth_failure_delay_ms = 2000;
	cfg->auth_failure_jitter = true;
	cfg->login_latency = true;
	cfg->mail_max_userip_connections = 10;
	cfg->idle_timeout_ms = 300000;
	cfg->session_timeout_ms = 3600000;
	cfg->tls_handshake_timeout_ms = 30000;
	cfg->login_timeout_ms = 180000;
	cfg->imap_idle_timeout_ms = 1800000;
	cfg->pop3_idle_timeout_ms = 600000;
	cfg->imap_line_length_limit = 65536;
	cfg->imap_literal_max = 10 * MIB;
	cfg->imap_session_memory = 32 * MIB;
	cfg->imap_memory_budget = 64 * MIB;
	cfg->output_memory_budget = 64 * MIB;
	cfg->imap_bad_command_limit = 20;
	cfg->pop3_bad_command_limit = 20;
	cfg->auth_penalty = true;
	cfg->max_connections = 1000;
	/* Postfix's anvil defaults (smtpd_client_connection_count_limit = 50, no rate
	 * limit): a stricter setting is the operator's choice (docs/persona.md) */
	cfg->max_connections_per_ip = 50;
	cfg->connection_rate_per_ip = 0;
	cfg->max_connections_per_prefix = 50;
	cfg->spool_budget = GIB;
	cfg->database_budget = GIB;
	cfg->analysis_budget = GIB;
	cfg->event_log_budget = GIB;
	cfg->retention_ms = 90ULL * 86400000;
	cfg->analyzer = true;
	cfg->user = xstrdup("");
	cfg->analyzer_user = xstrdup("");
	/* the same values as analyze_limits_default() (core does not link the analyzer) */
	cfg->analyzer_max_depth = 20;
	cfg->analyzer_max_parts = 2000;
	cfg->analyzer_max_decoded = 64 * MIB;
	cfg->analyzer_max_text = 4 * MIB;
	cfg->analyzer_max_links = 5000;
	cfg->analyzer_max_recipients = 10000;
	cfg->analyzer_psl_file = xstrdup("");
	cfg->dovecot_policy_api_key = xstrdup("");
	cfg->dovecot_policy_hash_nonce = xstrdup("");
	cfg->dovecot_policy_hash_mech = xstrdup("sha256");
	cfg->dovecot_policy_hash_truncate = 12;
	cfg->watch_journal_directory = xstrdup("");
	cfg->guard_window_ms = 3600000;
	cfg->guard_user_min_ips = 5;
	cfg->guard_pair_min_ips = 3;
	cfg->guard_ip_failures = 5;
	cfg->guard_known_user_failures = 10;
	cfg->guard_prefix_min_ips = 8;
	cfg->guard_ip_unknown_rcpts = 5;
	cfg->guard_domain_unknown_rcpts = 20;
	cfg->guard_delay_ms = 5000;
	cfg->guard_max_keys = 100000;
	cfg->decision_duration_ms = 3600000;
	cfg->decision_max_duration_ms = 7 * 86400000U;
	cfg->ban_after = 0;
	cfg->divert = false;
	static const char *const auth_ports[] = { "587", "465", "143", "993", "110", "995" };
	cfg->divert_ports = calloc(6, sizeof(char *));
	if (!cfg->divert_ports)
		abort();
	for (size_t i = 0; i < 6; i++)
		cfg->divert_ports[i] = xstrdup(auth_ports[i]);
	cfg->n_divert_ports = 6;
	cfg->divert_to = xstrdup("");
	cfg->nft_path = xstrdup("/usr/sbin/nft");
	cfg->nft_set_size = 65536;
	cfg->backend_mta = xstrdup("");
	cfg->web_listen[0] = xstrdup("127.0.0.1:8025");
	cfg->n_web_listen = 1;
	cfg->web_max_connections = 64;
	cfg->web_timeout_ms = 30000;
	cfg->web_threads = 2;
	cfg->web_auth_failures = 10;
	cfg->geoip_file = xstrdup("");
	cfg->allowlist_networks = xstrdup("");
	cfg->allowlist_domains = xstrdup("");
	cfg->allowlist_own_addresses = true;
	cfg->export_min_confidence = 50;
	cfg->report_from = xstrdup("");
	cfg->report_smtp_url = xstrdup("");
	cfg->report_redact = true;
	cfg->report_daily_budget = 20;
	cfg->report_quiet_ms = 86400000;
	cfg->report_leak_digest = false;
	cfg->report_xarf = true;
	cfg->report_web_hosts = true;
	cfg->report_interval_ms = 60000;
	cfg->report_expiry_ms = 7 * 86400000U;
	cfg->report_contact_lookup = false;
	cfg->report_rdap_bootstrap_url = xstrdup("https://data.iana.org/rdap/");
	cfg->report_contact_cache_ms = 7 * 86400000U;
	cfg->report_ca_file = xstrdup("");
	cfg->report_abusix = true;
	cfg->report_dns_server = xstrdup("");
	cfg->report_abuseipdb_key_file = xstrdup("");
	cfg->report_abuseipdb_url = xstrdup("https://api.abuseipdb.com/api/v2/");
	cfg->report_spamhaus_key_file = xstrdup("");
	cfg->report_spamhaus_url = xstrdup("https://submit.spamhaus.org/portal/api/v1/");
	cfg->report_netcraft_email = xstrdup("");
	cfg->report_netcraft_url = xstrdup("https://report.netcraft.com/api/v3/");
	cfg->report_urlhaus_key_file = xstrdup("");
	cfg->report_urlhaus_url = xstrdup("https://urlhaus.abuse.ch/api/");
	cfg->report_webhook_url = xstrdup("");
	cfg->report_webhook_token_file = xstrdup("");
	cfg->report_smtp_rate = 60;
	cfg->report_webhook_rate = 1200;
	cfg->feed_publish = false;
	cfg->feed_public = false;
	cfg->feed_entry_ttl_ms = 7 * 86400000U;
	cfg->feed_share_victims = false;
	cfg->peer_pull_interval_ms = 300000;
	cfg->peer_consensus = 2;
	cfg->peer_action = xstrdup("divert");
	cfg->peer_max_entries = 1000000;
	cfg->hub_url = xstrdup("");
	cfg->hub_sensor = xstrdup("");
	cfg->hub_batch = 10000;
	cfg->hub_interval_ms = 1000;
	cfg->hub_share_passwords = false;
	cfg->hub_retention_days = 0;
	cfg->log = xstrdup("stderr");
}

void config_free(struct mxb_config *cfg)
{
	free(cfg->hostname);
	free_list(cfg->local_domains, cfg->n_local_domains);
	free(cfg->local_domains);
	free_list(cfg->accounts, cfg->n_accounts);
	free(cfg->accounts);
	free_list(cfg->smtp_listen, cfg->n_smtp_listen);
	free_list(cfg->submission_listen, cfg->n_submission_listen);
	free_list(cfg->smtps_listen, cfg->n_smtps_listen);
	free_list(cfg->imap_listen, cfg->n_imap_listen);
	free_list(cfg->imaps_listen, cfg->n_imaps_listen);
	free_list(cfg->pop3_listen, cfg->n_pop3_listen);
	free_list(cfg->pop3s_listen, cfg->n_pop3s_listen);
	free(cfg->password_list);
	free(cfg->username_list);
	free(cfg->data_dir);
	free(cfg->tls_cert_file);
	free(cfg->tls_key_file);
	free(cfg->tls_eccert_file);
	free(cfg->tls_eckey_file);
	free(cfg->event_log);
	free(cfg->user);
	free(cfg->analyzer_user);
	free(cfg->analyzer_psl_file);
	free_list(cfg->dovecot_policy_listen, cfg->n_dovecot_policy_listen);
	free(cfg->dovecot_policy_api_key);
	free(cfg->dovecot_policy_hash_nonce);
	free(cfg->dovecot_policy_hash_mech);
	free_list(cfg->postfix_policy_listen, cfg->n_postfix_policy_listen);
	char **lists[] = { cfg->watch_log_files, cfg->trusted_networks, cfg->guard_trap_users,
			   cfg->divert_ports };
	size_t counts[] = { cfg->n_watch_log_files, cfg->n_trusted_networks,
			    cfg->n_guard_trap_users, cfg->n_divert_ports };
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		free_list(lists[i], counts[i]);
		free(lists[i]);
	}
	free(cfg->watch_journal_directory);
	free(cfg->divert_to);
	free(cfg->nft_path);
	free(cfg->backend_mta);
	free_list(cfg->web_listen, cfg->n_web_listen);
	free_list(cfg->web_auth, cfg->n_web_auth);
	free(cfg->web_auth);
	free(cfg->geoip_file);
	char **report_strs[] = {
		&cfg->allowlist_networks, &cfg->allowlist_domains, &cfg->report_from,
		&cfg->report_smtp_url, &cfg->report_rdap_bootstrap_url, &cfg->report_ca_file,
		&cfg->report_dns_server,
		&cfg->report_abuseipdb_key_file, &cfg->report_abuseipdb_url,
		&cfg->report_spamhaus_key_file, &cfg->report_spamhaus_url,
		&cfg->report_netcraft_email, &cfg->report_netcraft_url,
		&cfg->report_urlhaus_key_file, &cfg->report_urlhaus_url,
		&cfg->report_webhook_url, &cfg->report_webhook_token_file,
		&cfg->peer_action, &cfg->hub_url, &cfg->hub_sensor,
	};
	for (size_t i = 0; i < sizeof(report_strs) / sizeof(report_strs[0]); i++)
		free(*report_strs[i]);
	free(cfg->log);
	free(cfg->config_file);
	free(cfg->key_lines);
	memset(cfg, 0, sizeof(*cfg));
}

/* ---- error reporting ---- */

struct parse_ctx {
	const char *name;
	unsigned line;
	char **err_r;
};

static int fail(struct parse_ctx *p, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Append text to b with anything unprintable escaped, so an error message quoting the
 * file cannot carry control bytes to a terminal. */
static void put_safe_max(struct buf *b, const char *s, size_t len, size_t limit)
{
	size_t max = len > limit ? limit : len;
	for (size_t i = 0; i < max; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			buf_putc(b, (char)c);
		else
			buf_printf(b, "\\x%02x", c);
	}
	if (len > max)
		buf_puts(b, "...");
}

static void put_safe(struct buf *b, const char *s, size_t len)
{
	put_safe_max(b, s, len, 64);
}

static int fail(struct parse_ctx *p, const char *key, const char *fmt, ...)
{
	struct buf b;
	buf_init(&b, 0);
	if (p->line)
		buf_printf(&b, "%s:%u: ", p->name, p->line);
	else
		buf_printf(&b, "%s: ", p->name);
	if (key) {
		put_safe(&b, key, strlen(key));
		buf_puts(&b, ": ");
	}
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (p->err_r) {
		free(*p->err_r);
		*p->err_r = buf_steal(&b, NULL);
	} else {
		buf_free(&b);
	}
	return -1;
}

/* ---- value parsers ---- */

static bool parse_u64(const char *s, uint64_t *v_r, const char **end_r)
{
	if (!isdigit((unsigned char)*s))
		return false;
	uint64_t v = 0;
	while (isdigit((unsigned char)*s)) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
		s++;
	}
	*v_r = v;
	*end_r = s;
	return true;
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *r)
{
	if (b && a > UINT64_MAX / b)
		return false;
	*r = a * b;
	return true;
}

static const char *parse_size(const char *s, uint64_t *v_r)
{
	uint64_t v;
	const char *e;
	if (!parse_u64(s, &v, &e))
		return "expected a size (number with optional k, m or g suffix)";
	uint64_t mul = 1;
	switch (tolower((unsigned char)*e)) {
	case 'k': mul = KIB; e++; break;
	case 'm': mul = MIB; e++; break;
	case 'g': mul = GIB; e++; break;
	default: break;
	}
	if (*e == 'b' || *e == 'B')
		e++;
	if (*e)
		return "expected a size (number with optional k, m or g suffix)";
	if (!mul_ok(v, mul, v_r))
		return "value too large";
	return NULL;
}

static const char *parse_duration(const char *s, uint64_t *ms_r)
{
	uint64_t v;
	const char *e;
	if (!parse_u64(s, &v, &e))
		return "expected a duration (number with ms, s, m, h or d suffix)";
	uint64_t mul;
	if (!strcmp(e, "ms"))
		mul = 1;
	else if (!*e || !strcmp(e, "s"))
		mul = 1000;
	else if (!strcmp(e, "m"))
		mul = 60000;
	else if (!strcmp(e, "h"))
		mul = 3600000;
	else if (!strcmp(e, "d"))
		mul = 86400000;
	else
		return "expected a duration (number with ms, s, m, h or d suffix)";
	if (!mul_ok(v, mul, ms_r))
		return "value too large";
	return NULL;
}

static const char *parse_bool(const char *s, bool *v_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	for (size_t i = 0; i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*v_r = true;
			return NULL;
		}
		if (!strcasecmp(s, no[i])) {
			*v_r = false;
			return NULL;
		}
	}
	return "expected yes or no";
}

/* A DNS name as a banner may carry it: letters, digits, hyphens, dots; labels of 1-63
 * characters, 253 in all.  Keeps CR/LF and spaces out of every reply text. */
static const char *check_dns_name(const char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return "empty host name";
	if (len > 253)
		return "host name longer than 253 characters";
	size_t label = 0;
	for (const char *p = s; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '.') {
			if (label == 0)
				return "empty label in host name";
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return "invalid character in host name";
		if (++label > 63)
			return "host name label longer than 63 characters";
	}
	if (label == 0)
		return "host name ends with a dot";
	return NULL;
}

/* "a.b.c.d:port", "[v6]:port" or "*:port" / "[::]:port" for every address. */
static const char *check_listen(const char *s)
{
	const char *colon;
	char host[INET6_ADDRSTRLEN + 1];
	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':')
			return "expected [ipv6-address]:port";
		size_t hl = (size_t)(close - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			return "bad IPv6 address";
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		struct in6_addr a6;
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return "bad IPv6 address";
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return "expected address:port";
		size_t hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(host))
			return "bad IPv4 address";
		memcpy(host, s, hl);
		host[hl] = '\0';
		struct in_addr a4;
		if (strcmp(host, "*") && inet_pton(AF_INET, host, &a4) != 1)
			return "bad IPv4 address (IPv6 goes in brackets: [::1]:25)";
	}
	uint64_t port;
	const char *e;
	if (!parse_u64(colon + 1, &port, &e) || *e || port == 0 || port > 65535)
		return "bad port (1-65535)";
	return NULL;
}

static const char *check_account(const char *s)
{
	const char *c = strchr(s, ':');
	if (!c)
		return "expected user:password";
	if (c == s)
		return "empty user name";
	if (!c[1])
		return "empty password";
	return NULL;
}

/* ---- guard value checks ---- */

/* A policy listener: "unix:/absolute/path" or an address as the listeners take it. */
static const char *check_policy_listen(const char *s)
{
	if (!strncmp(s, "unix:", 5)) {
		if (s[5] != '/')
			return "a unix socket needs an absolute path (unix:/run/mxbait/policy)";
		if (strlen(s + 5) >= 108)
			return "unix socket path longer than 107 bytes";
		return NULL;
	}
	return check_listen(s);
}

static const char *check_network(const char *s)
{
	struct netaddr a;
	return netaddr_parse(s, &a) == 0 ? NULL : "not an address or prefix (192.0.2.0/24, 2001:db8::/32)";
}

static const char *check_host_address(const char *s)
{
	struct netaddr a;
	if (!*s)
		return NULL;
	if (netaddr_parse(s, &a) != 0 || !netaddr_is_host(&a))
		return "expected one IPv4 or IPv6 address";
	return NULL;
}

static bool parse_port(const char *s, const char **end_r, unsigned *port_r)
{
	uint64_t v;
	if (!parse_u64(s, &v, end_r) || v == 0 || v > 65535)
		return false;
	*port_r = (unsigned)v;
	return true;
}

/* "PORT" or "PORT:HONEYPOT_PORT". */
static const char *check_divert_port(const char *s)
{
	const char *e;
	unsigned a, b;
	if (!parse_port(s, &e, &a))
		return "expected a port (1-65535) or port:honeypot_port";
	if (*e == ':' && (!parse_port(e + 1, &e, &b) || *e))
		return "expected a port (1-65535) or port:honeypot_port";
	if (*e && *e != ':')
		return "expected a port (1-65535) or port:honeypot_port";
	return NULL;
}

static const char *check_abs_path(const char *s)
{
	if (!*s)
		return NULL;
	if (s[0] != '/')
		return "expected an absolute path";
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return "control character in path";
	return NULL;
}

/* A secret or a user name: printable, no spaces (lists split on them). */
static const char *check_token(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return "control character or space";
	if (strlen(s) > 255)
		return "longer than 255 bytes";
	return NULL;
}

static const char *check_hash_mech(const char *s)
{
	static const char *const ok[] = { "md5", "sha1", "sha256", "sha512" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcmp(s, ok[i]))
			return NULL;
	return "expected md5, sha1, sha256 or sha512 (as Dovecot's auth_policy_hash_mech)";
}

static const char *check_peer_action(const char *s)
{
	static const char *const ok[] = { "divert", "ban", "delay", "none" };
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		if (!strcmp(s, ok[i]))
			return NULL;
	return "expected divert, ban, delay or none";
}

/* A sensor name at the hub: letters, digits and . _ - (1-64), or empty (hostname). */
static const char *check_sensor_name(const char *s)
{
	size_t n = strlen(s);
	if (n > 64)
		return "at most 64 characters";
	for (const char *p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
			return "letters, digits and . _ - only";
	return NULL;
}

int config_backend_parse(const char *s, struct mxb_backend *b)
{
	memset(b, 0, sizeof(*b));
	if (!s || !*s)
		return -1;
	b->lmtp = false;
	if (!strncmp(s, "lmtp:", 5)) {
		b->lmtp = true;
		s += 5;
	} else if (!strncmp(s, "smtp:", 5)) {
		s += 5;
	}
	if (!strncmp(s, "unix:", 5)) {
		if (s[5] != '/' || strlen(s + 5) >= sizeof(b->path))
			return -1;
		b->unix_socket = true;
		snprintf(b->path, sizeof(b->path), "%s", s + 5);
		return 0;
	}
	if (check_listen(s) || s[0] == '*')
		return -1;
	const char *colon = strrchr(s, ':');
	size_t hl = (size_t)(colon - s);
	if (s[0] == '[') {
		s++;
		hl -= 2;
	}
	if (hl >= sizeof(b->host))
		return -1;
	memcpy(b->host, s, hl);
	b->host[hl] = '\0';
	b->port = (unsigned)strtoul(colon + 1, NULL, 10);
	return 0;
}

static const char *check_backend(const char *s)
{
	struct mxb_backend b;
	if (!*s)
		return NULL;
	if (config_backend_parse(s, &b) != 0)
		return "expected [smtp:|lmtp:]ADDRESS:PORT or lmtp:unix:/path (e.g. 127.0.0.1:25)";
	return NULL;
}

/* The port mxbait listens on for a role: the first listener's. 0 when none. */
static unsigned role_port(char *const *v, size_t n)
{
	if (!n)
		return 0;
	const char *colon = strrchr(v[0], ':');
	return colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 0;
}

int config_divert_map(const struct mxb_config *cfg, size_t i, unsigned *real_r,
		      unsigned *trap_r)
{
	if (i >= cfg->n_divert_ports)
		return -1;
	const char *s = cfg->divert_ports[i];
	char *e;
	*real_r = (unsigned)strtoul(s, &e, 10);
	if (*e == ':') {
		*trap_r = (unsigned)strtoul(e + 1, NULL, 10);
		return 0;
	}
	switch (*real_r) {
	case 25: *trap_r = role_port(cfg->smtp_listen, cfg->n_smtp_listen); break;
	case 587: *trap_r = role_port(cfg->submission_listen, cfg->n_submission_listen); break;
	case 465: *trap_r = role_port(cfg->smtps_listen, cfg->n_smtps_listen); break;
	case 143: *trap_r = role_port(cfg->imap_listen, cfg->n_imap_listen); break;
	case 993: *trap_r = role_port(cfg->imaps_listen, cfg->n_imaps_listen); break;
	case 110: *trap_r = role_port(cfg->pop3_listen, cfg->n_pop3_listen); break;
	case 995: *trap_r = role_port(cfg->pop3s_listen, cfg->n_pop3s_listen); break;
	default: *trap_r = 0; break;
	}
	return *trap_r ? 0 : -1;
}

/* NAME:ROLE:HASH of web_auth: a name for logs and Basic auth (letters, digits, ._@-),
 * the role (read or admin), and either a crypt(3) hash (yescrypt $y$, SHA-512 $6$,
 * SHA-256 $5$, bcrypt $2b$/$2y$) for a password, or sha256:HEX (64 hex digits) of a
 * bearer token. */
static const char *check_web_auth(const char *s)
{
	const char *c1 = strchr(s, ':');
	const char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
	if (!c1 || !c2)
		return "expected NAME:ROLE:HASH";
	if (c1 == s || c1 - s > 64)
		return "name must be 1 to 64 characters";
	for (const char *p = s; p < c1; p++)
		if (!isalnum((unsigned char)*p) && !strchr("._@-", *p))
			return "name may have letters, digits and . _ @ - only";
	size_t rl = (size_t)(c2 - c1 - 1);
	if (!((rl == 4 && !strncmp(c1 + 1, "read", 4)) || (rl == 5 && !strncmp(c1 + 1, "admin", 5)) ||
	      (rl == 4 && !strncmp(c1 + 1, "feed", 4))))
		return "role must be read, admin or feed";
	const char *h = c2 + 1;
	if (!strncmp(h, "sha256:", 7)) {
		size_t n = 0;
		for (const char *p = h + 7; *p; p++, n++)
			if (!isxdigit((unsigned char)*p))
				return "sha256: needs 64 hex digits";
		return n == 64 ? NULL : "sha256: needs 64 hex digits";
	}
	static const char *const prefixes[] = {"$y$", "$gy$", "$7$", "$6$", "$5$", "$2b$", "$2y$"};
	bool known = false;
	for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (!strncmp(h, prefixes[i], strlen(prefixes[i])))
			known = true;
	if (!known)
		return "hash must be sha256:HEX or a crypt(3) hash ($y$, $6$, $5$, $2b$: "
		       "mkpasswd or openssl passwd -6)";
	if (strlen(h) < 20 || strlen(h) > 512)
		return "hash length out of range";
	for (const char *p = h; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("$./=", *p))
			return "invalid character in hash";
	return NULL;
}

/* NULL when path opens for reading as a regular file, else why not. */
static const char *check_readable_file(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return strerror(errno);
	struct stat st;
	const char *why = NULL;
	if (fstat(fd, &st) != 0)
		why = strerror(errno);
	else if (!S_ISREG(st.st_mode))
		why = "not a regular file";
	close(fd);
	return why;
}

/* Split a list value on commas and white space into a fresh array. */
static int split_list(struct parse_ctx *p, const char *key, const char *val, char ***v_r,
		      size_t *n_r, size_t max, const char *(*check)(const char *))
{
	char **v = NULL;
	size_t n = 0;
	const char *s = val;
	while (*s) {
		while (*s == ',' || *s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		const char *e = s;
		while (*e && *e != ',' && *e != ' ' && *e != '\t')
			e++;
		if (n >= max) {
			free_list(v, n);
			free(v);
			return fail(p, key, "too many entries (at most %zu)", max);
		}
		char *item = xstrndup(s, (size_t)(e - s));
		const char *why = check ? check(item) : NULL;
		if (why) {
			struct buf b;
			buf_init(&b, 0);
			put_safe(&b, item, strlen(item));
			fail(p, key, "%s: %s", b.data ? b.data : "", why);
			buf_free(&b);
			free(item);
			free_list(v, n);
			free(v);
			return -1;
		}
		char **nv = realloc(v, (n + 1) * sizeof(char *));
		if (!nv)
			abort();
		v = nv;
		v[n++] = item;
		s = e;
	}
	*v_r = v;
	*n_r = n;
	return 0;
}

/* The field at off (via void * so that no cast claims an alignment: offsetof of a
 * member of the right type gives it). */
static void *field(struct mxb_config *cfg, size_t off)
{
	return (char *)cfg + off;
}

static int set_value(struct mxb_config *cfg, struct parse_ctx *p, const struct key_def *k,
		     const char *val)
{
	const char *why = NULL;
	uint64_t v = 0;

	switch (k->type) {
	case K_STR:
	case K_PATH:
	case K_HOST: {
		if (k->type == K_PATH && !*val)
			return fail(p, k->name, "empty path");
		if (k->type == K_HOST && (why = check_dns_name(val)))
			return fail(p, k->name, "%s", why);
		if (k->type == K_STR && key_check(k->name) && (why = key_check(k->name)(val)))
			return fail(p, k->name, "%s", why);
		char **dst = field(cfg, k->off);
		free(*dst);
		*dst = xstrdup(val);
		return 0;
	}
	case K_LOG: {
		if (strcmp(val, "stderr") && strcmp(val, "syslog") && val[0] != '/')
			return fail(p, k->name, "expected stderr, syslog or an absolute file name");
		if (strlen(val) >= PATH_MAX)
			return fail(p, k->name, "file name too long");
		char **dst = field(cfg, k->off);
		free(*dst);
		*dst = xstrdup(val);
		return 0;
	}
	case K_USER: {
		/* Looked up now, so that a typo is a configuration error naming the line
		 * rather than a failure after the ports are bound.  Empty: keep the uid. */
		if (*val) {
			if (strlen(val) > 63)
				return fail(p, k->name, "user name too long (at most 63 characters)");
			errno = 0;
			if (!getpwnam(val)) {
				struct buf b;
				buf_init(&b, 0);
				put_safe(&b, val, strlen(val));
				int e = errno;
				if (e == EIO || e == EMFILE || e == ENFILE || e == ENOMEM)
					fail(p, k->name, "cannot look up %s: %s", b.data, strerror(e));
				else
					fail(p, k->name, "no such user (%s)", b.data);
				buf_free(&b);
				return -1;
			}
		}
		char **dst = field(cfg, k->off);
		free(*dst);
		*dst = xstrdup(val);
		return 0;
	}
	case K_FILE: {
		/* Opened now (and closed), so that a typo or a permission problem is a
		 * configuration error naming the line, not an analyzer child that exits
		 * and restarts forever.  Empty: the built-in default. */
		if (*val && (why = check_readable_file(val))) {
			struct buf b;
			buf_init(&b, 0);
			put_safe_max(&b, val, strlen(val), PATH_MAX); /* a path: whole */
			fail(p, k->name, "%s: %s", b.data, why);
			buf_free(&b);
			return -1;
		}
		char **dst = field(cfg, k->off);
		free(*dst);
		*dst = xstrdup(val);
		return 0;
	}
	case K_NETLIST: {
		/* Checked now (a typo names its line), kept as text for the modules. */
		struct netset ns;
		const char *bad = NULL;
		size_t bad_len = 0;
		netset_init(&ns);
		int bad_rc = netset_parse_list(&ns, val, &bad, &bad_len);
		netset_free(&ns);
		if (bad_rc < 0) {
			struct buf b;
			buf_init(&b, 0);
			put_safe(&b, bad ? bad : "", bad ? bad_len : 0);
			fail(p, k->name, "%s: not an address or network", b.data ? b.data : "");
			buf_free(&b);
			return -1;
		}
		char **dst = field(cfg, k->off);
		free(*dst);
		*dst = xstrdup(val);
		return 0;
	}
	case K_DOMAINS:
	case K_ACCOUNTS:
	case K_WEBAUTH: {
		char **v_new = NULL;
		size_t n_new = 0;
		if (split_list(p, k->name, val, &v_new, &n_new, CONFIG_MAX_LIST,
			       k->type == K_DOMAINS ? check_dns_name
			       : k->type == K_ACCOUNTS ? check_account : check_web_auth))
			return -1;
		if (k->type == K_DOMAINS && n_new == 0) {
			free(v_new);
			return fail(p, k->name, "at least one domain is needed");
		}
		char ***dst = field(cfg, k->off);
		size_t *cnt = field(cfg, k->count_off);
		free_list(*dst, *cnt);
		free(*dst);
		*dst = v_new;
		*cnt = n_new;
		return 0;
	}
	case K_LIST: {
		char **v_new = NULL;
		size_t n_new = 0;
		if (split_list(p, k->name, val, &v_new, &n_new, k->max ? k->max : CONFIG_MAX_LIST,
			       key_check(k->name)))
			return -1;
		char ***dst = field(cfg, k->off);
		size_t *cnt = field(cfg, k->count_off);
		free_list(*dst, *cnt);
		free(*dst);
		*dst = v_new;
		*cnt = n_new;
		return 0;
	}
	case K_LISTEN:
	case K_ADDRS: {
		char **v_new = NULL;
		size_t n_new = 0;
		if (split_list(p, k->name, val, &v_new, &n_new, MXB_MAX_LISTEN,
			       k->type == K_ADDRS ? key_check(k->name) : check_listen))
			return -1;
		char **dst = field(cfg, k->off);
		size_t *cnt = field(cfg, k->count_off);
		free_list(dst, *cnt);
		for (size_t i = 0; i < n_new; i++)
			dst[i] = v_new[i];
		*cnt = n_new;
		free(v_new);
		return 0;
	}
	case K_BOOL: {
		bool b;
		if ((why = parse_bool(val, &b)))
			return fail(p, k->name, "%s", why);
		*(bool *)field(cfg, k->off) = b;
		return 0;
	}
	case K_SIZE:
	case K_SIZE64:
	case K_BUDGET:
		why = parse_size(val, &v);
		break;
	case K_UINT: {
		const char *e;
		if (!parse_u64(val, &v, &e) || *e)
			why = "expected a whole number";
		break;
	}
	case K_MS:
	case K_MS64:
		why = parse_duration(val, &v);
		break;
	case K_RANGE: {
		/* "lo-hi" or a single number (lo = hi) */
		uint64_t lo, hi;
		const char *e;
		if (!parse_u64(val, &lo, &e))
			return fail(p, k->name, "expected a range (e.g. 2-6)");
		if (*e == '-') {
			if (!parse_u64(e + 1, &hi, &e))
				return fail(p, k->name, "expected a range (e.g. 2-6)");
		} else {
			hi = lo;
		}
		if (*e)
			return fail(p, k->name, "expected a range (e.g. 2-6)");
		if (lo > hi)
			return fail(p, k->name, "the lower end is above the upper end");
		if (lo < k->min || hi > k->max)
			return fail(p, k->name, "out of range (%llu to %llu)",
				    (unsigned long long)k->min, (unsigned long long)k->max);
		*(unsigned *)field(cfg, k->off) = (unsigned)lo;
		*(unsigned *)field(cfg, k->count_off) = (unsigned)hi;
		return 0;
	}
	}
	if (why)
		return fail(p, k->name, "%s", why);
	bool zero_off = k->type == K_BUDGET || k->type == K_MS64;
	if (zero_off && v == 0) {
		/* off: no limit */
	} else if (zero_off && (v < k->min || v > k->max)) {
		if (k->type == K_MS || k->type == K_MS64)
			return fail(p, k->name, "out of range (0 for none, or %llums to %llums)",
				    (unsigned long long)k->min, (unsigned long long)k->max);
		return fail(p, k->name, "out of range (0 for none, or %llu to %llu)",
			    (unsigned long long)k->min, (unsigned long long)k->max);
	} else if (v < k->min || v > k->max) {
		if (k->type == K_MS)
			return fail(p, k->name, "out of range (%llums to %llums)",
				    (unsigned long long)k->min, (unsigned long long)k->max);
		return fail(p, k->name, "out of range (%llu to %llu)",
			    (unsigned long long)k->min, (unsigned long long)k->max);
	}
	switch (k->type) {
	case K_SIZE: *(size_t *)field(cfg, k->off) = (size_t)v; break;
	case K_SIZE64:
	case K_BUDGET:
	case K_MS64: *(uint64_t *)field(cfg, k->off) = v; break;
	default: *(unsigned *)field(cfg, k->off) = (unsigned)v; break;
	}
	return 0;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned line_of(const unsigned *set_on, const char *key)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].name, key))
			return set_on[i];
	return 0;
}

/* The guard's cross-key rules: a policy server is authenticated, divert maps every port
 * to a honeypot listener, the decision bounds are ordered. */
static int config_check_guard(struct mxb_config *cfg, struct parse_ctx *p,
			      const unsigned *set_on)
{
	if (cfg->n_dovecot_policy_listen && (!*cfg->dovecot_policy_api_key ||
					     !*cfg->dovecot_policy_hash_nonce)) {
		p->line = line_of(set_on, "dovecot_policy_listen");
		return fail(p, "dovecot_policy_listen", "needs dovecot_policy_api_key and "
			    "dovecot_policy_hash_nonce (the same as Dovecot's "
			    "auth_policy_server_api_header and auth_policy_hash_nonce)");
	}
	if (cfg->decision_duration_ms > cfg->decision_max_duration_ms) {
		p->line = line_of(set_on, "decision_duration");
		return fail(p, "decision_duration", "above decision_max_duration");
	}
	if (cfg->divert) {
		if (!cfg->n_divert_ports) {
			p->line = line_of(set_on, "divert_ports");
			return fail(p, "divert_ports", "empty while divert = yes");
		}
		for (size_t i = 0; i < cfg->n_divert_ports; i++) {
			unsigned real, trap;
			if (config_divert_map(cfg, i, &real, &trap) != 0) {
				p->line = line_of(set_on, "divert_ports");
				return fail(p, "divert_ports", "%s: no honeypot port (give it as "
					    "port:honeypot_port, or configure the listener of that "
					    "role)", cfg->divert_ports[i]);
			}
		}
	}
	return 0;
}

int config_parse(struct mxb_config *cfg, const char *name, const char *text, size_t len,
		 char **err_r)
{
	struct parse_ctx p = { .name = name ? name : "config", .line = 0, .err_r = err_r };
	unsigned set_on[N_KEYS];
	memset(set_on, 0, sizeof(set_on));
	if (err_r)
		*err_r = NULL;
	if (len > CONFIG_MAX_FILE)
		return fail(&p, NULL, "file too large (more than %d bytes)", CONFIG_MAX_FILE);

	size_t pos = 0;
	while (pos < len) {
		p.line++;
		const char *ls = text + pos;
		const char *nl = memchr(ls, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - ls) : len - pos;
		pos += ll + (nl ? 1 : 0);
		if (memchr(ls, '\0', ll))
			return fail(&p, NULL, "NUL byte in line");
		/* trim */
		while (ll && is_space(ls[0])) {
			ls++;
			ll--;
		}
		while (ll && is_space(ls[ll - 1]))
			ll--;
		if (ll == 0 || ls[0] == '#')
			continue;
		const char *eq = memchr(ls, '=', ll);
		if (!eq)
			return fail(&p, NULL, "expected key = value");
		size_t kl = (size_t)(eq - ls);
		while (kl && is_space(ls[kl - 1]))
			kl--;
		if (kl == 0)
			return fail(&p, NULL, "missing key before '='");
		char *key = xstrndup(ls, kl);
		const char *vs = eq + 1;
		size_t vl = ll - (size_t)(vs - ls);
		while (vl && is_space(vs[0])) {
			vs++;
			vl--;
		}
		char *val = xstrndup(vs, vl);

		size_t ki;
		for (ki = 0; ki < N_KEYS; ki++)
			if (!strcmp(keys[ki].name, key))
				break;
		int rc = 0;
		if (ki == N_KEYS)
			rc = fail(&p, key, "unknown key");
		else if (set_on[ki])
			rc = fail(&p, key, "duplicate key (first set on line %u)", set_on[ki]);
		else {
			set_on[ki] = p.line;
			rc = set_value(cfg, &p, &keys[ki], val);
		}
		free(key);
		free(val);
		if (rc)
			return -1;
	}

	/* Cross-key checks and derived defaults. */
	size_t ki_host = 0, ki_dom = 0, ki_log = 0, ki_cert = 0, ki_key = 0, ki_soft = 0,
	       ki_hard = 0, ki_eccert = 0, ki_eckey = 0;
	for (size_t i = 0; i < N_KEYS; i++) {
		const char *n = keys[i].name;
		if (!strcmp(n, "hostname")) ki_host = i;
		else if (!strcmp(n, "local_domains")) ki_dom = i;
		else if (!strcmp(n, "event_log")) ki_log = i;
		else if (!strcmp(n, "tls_cert_file")) ki_cert = i;
		else if (!strcmp(n, "tls_key_file")) ki_key = i;
		else if (!strcmp(n, "tls_eccert_file")) ki_eccert = i;
		else if (!strcmp(n, "tls_eckey_file")) ki_eckey = i;
		else if (!strcmp(n, "soft_error_limit")) ki_soft = i;
		else if (!strcmp(n, "hard_error_limit")) ki_hard = i;
	}
	if (set_on[ki_host] && !set_on[ki_dom])
		default_local_domains(cfg);
	if (!set_on[ki_log]) {
		free(cfg->event_log);
		cfg->event_log = join_path(cfg->data_dir, "events.jsonl");
	}
	bool has_cert = cfg->tls_cert_file && *cfg->tls_cert_file;
	bool has_key = cfg->tls_key_file && *cfg->tls_key_file;
	if (has_cert != has_key) {
		p.line = has_cert ? set_on[ki_cert] : set_on[ki_key];
		return fail(&p, has_cert ? "tls_cert_file" : "tls_key_file",
			    "tls_cert_file and tls_key_file go together");
	}
	bool has_eccert = cfg->tls_eccert_file && *cfg->tls_eccert_file;
	bool has_eckey = cfg->tls_eckey_file && *cfg->tls_eckey_file;
	if (has_eccert != has_eckey) {
		p.line = has_eccert ? set_on[ki_eccert] : set_on[ki_eckey];
		return fail(&p, has_eccert ? "tls_eccert_file" : "tls_eckey_file",
			    "tls_eccert_file and tls_eckey_file go together");
	}
	if (has_eccert && !cfg->tls_ecdsa) {
		p.line = set_on[ki_eccert];
		return fail(&p, "tls_eccert_file", "set tls_ecdsa = yes to use it (the default "
			    "offers the RSA certificate only, as stock Postfix and Dovecot)");
	}
	if (cfg->soft_error_limit > cfg->hard_error_limit) {
		p.line = set_on[ki_soft] > set_on[ki_hard] ? set_on[ki_soft] : set_on[ki_hard];
		return fail(&p, set_on[ki_soft] > set_on[ki_hard] ? "soft_error_limit"
								    : "hard_error_limit",
			    "soft_error_limit (%u) above hard_error_limit (%u)",
			    cfg->soft_error_limit, cfg->hard_error_limit);
	}
	if (config_check_guard(cfg, &p, set_on) != 0)
		return -1;
	for (size_t i = 0; i < cfg->n_web_listen; i++) {
		if (!config_listen_is_loopback(cfg->web_listen[i]) && !cfg->n_web_auth) {
			p.line = 0;
			return fail(&p, "web_listen", "%s is not a loopback address: set web_auth "
				    "(the dashboard and API then require TLS and a login)",
				    cfg->web_listen[i]);
		}
	}
	if (!cfg->n_smtp_listen && !cfg->n_submission_listen && !cfg->n_smtps_listen &&
	    !cfg->n_imap_listen && !cfg->n_imaps_listen && !cfg->n_pop3_listen &&
	    !cfg->n_pop3s_listen) {
		p.line = 0;
		return fail(&p, NULL, "no listener configured (every *_listen key is empty)");
	}
	free(cfg->key_lines);
	cfg->key_lines = malloc(sizeof(set_on));
	if (!cfg->key_lines)
		abort();
	memcpy(cfg->key_lines, set_on, sizeof(set_on));
	return 0;
}

unsigned config_key_line(const struct mxb_config *cfg, const char *key)
{
	if (!cfg->key_lines)
		return 0;
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].name, key))
			return cfg->key_lines[i];
	return 0;
}

const char *config_key_name(size_t i)
{
	return i < N_KEYS ? keys[i].name : NULL;
}

static const struct key_def *find_key(const char *name)
{
	for (size_t i = 0; i < N_KEYS; i++)
		if (!strcmp(keys[i].name, name))
			return &keys[i];
	return NULL;
}

static bool str_equal(const char *a, const char *b)
{
	return !strcmp(a ? a : "", b ? b : "");
}

/* const view of a field (the casts only drop const of the struct, as field() does) */
static const void *cfield(const struct mxb_config *cfg, size_t off)
{
	return (const char *)cfg + off;
}

bool config_key_equal(const struct mxb_config *a, const struct mxb_config *b,
		      const char *key)
{
	const struct key_def *k = find_key(key);
	if (!k)
		return true;
	switch (k->type) {
	case K_STR: case K_PATH: case K_HOST: case K_USER: case K_FILE: case K_LOG: case K_NETLIST:
		return str_equal(*(char *const *)cfield(a, k->off), *(char *const *)cfield(b, k->off));
	case K_DOMAINS: case K_ACCOUNTS: case K_LIST: case K_WEBAUTH: case K_LISTEN: case K_ADDRS: {
		size_t na = *(const size_t *)cfield(a, k->count_off);
		size_t nb = *(const size_t *)cfield(b, k->count_off);
		if (na != nb)
			return false;
		bool inline_array = k->type == K_LISTEN || k->type == K_ADDRS;
		char *const *va = inline_array ? (char *const *)cfield(a, k->off)
					       : *(char **const *)cfield(a, k->off);
		char *const *vb = inline_array ? (char *const *)cfield(b, k->off)
					       : *(char **const *)cfield(b, k->off);
		for (size_t i = 0; i < na; i++)
			if (!str_equal(va[i], vb[i]))
				return false;
		return true;
	}
	case K_BOOL:
		return *(const bool *)cfield(a, k->off) == *(const bool *)cfield(b, k->off);
	case K_SIZE:
		return *(const size_t *)cfield(a, k->off) == *(const size_t *)cfield(b, k->off);
	case K_SIZE64: case K_BUDGET: case K_MS64:
		return *(const uint64_t *)cfield(a, k->off) == *(const uint64_t *)cfield(b, k->off);
	case K_RANGE:
		if (*(const unsigned *)cfield(a, k->count_off) !=
		    *(const unsigned *)cfield(b, k->count_off))
			return false;
		return *(const unsigned *)cfield(a, k->off) == *(const unsigned *)cfield(b, k->off);
	case K_UINT: case K_MS:
		return *(const unsigned *)cfield(a, k->off) == *(const unsigned *)cfield(b, k->off);
	}
	return true;
}

void config_key_copy(struct mxb_config *dst, const struct mxb_config *src, const char *key)
{
	const struct key_def *k = find_key(key);
	if (!k)
		return;
	switch (k->type) {
	case K_STR: case K_PATH: case K_HOST: case K_USER: case K_FILE: case K_LOG: case K_NETLIST: {
		char **d = field(dst, k->off);
		const char *v = *(char *const *)cfield(src, k->off);
		free(*d);
		*d = v ? xstrdup(v) : NULL;
		return;
	}
	case K_DOMAINS: case K_ACCOUNTS: case K_LIST: case K_WEBAUTH: {
		char ***d = field(dst, k->off);
		size_t *dn = field(dst, k->count_off);
		char **const *s = cfield(src, k->off);
		size_t n = *(const size_t *)cfield(src, k->count_off);
		free_list(*d, *dn);
		free(*d);
		*d = n ? calloc(n, sizeof(char *)) : NULL;
		if (n && !*d)
			abort();
		for (size_t i = 0; i < n; i++)
			(*d)[i] = xstrdup((*s)[i]);
		*dn = n;
		return;
	}
	case K_LISTEN: case K_ADDRS: {
		char **d = field(dst, k->off);
		size_t *dn = field(dst, k->count_off);
		char *const *s = cfield(src, k->off);
		size_t n = *(const size_t *)cfield(src, k->count_off);
		free_list(d, *dn);
		for (size_t i = 0; i < n; i++)
			d[i] = xstrdup(s[i]);
		*dn = n;
		return;
	}
	case K_BOOL:
		*(bool *)field(dst, k->off) = *(const bool *)cfield(src, k->off);
		return;
	case K_SIZE:
		*(size_t *)field(dst, k->off) = *(const size_t *)cfield(src, k->off);
		return;
	case K_SIZE64: case K_BUDGET: case K_MS64:
		*(uint64_t *)field(dst, k->off) = *(const uint64_t *)cfield(src, k->off);
		return;
	case K_RANGE:
		*(unsigned *)field(dst, k->count_off) = *(const unsigned *)cfield(src, k->count_off);
		*(unsigned *)field(dst, k->off) = *(const unsigned *)cfield(src, k->off);
		return;
	case K_UINT: case K_MS:
		*(unsigned *)field(dst, k->off) = *(const unsigned *)cfield(src, k->off);
		return;
	}
}

int config_key_range(const char *key, uint64_t *min_r, uint64_t *max_r)
{
	for (size_t i = 0; i < N_KEYS; i++) {
		const struct key_def *k = &keys[i];
		if (strcmp(k->name, key) != 0)
			continue;
		if (k->type != K_SIZE && k->type != K_SIZE64 && k->type != K_UINT &&
		    k->type != K_MS && k->type != K_RANGE)
			return -1;
		*min_r = k->min;
		*max_r = k->max;
		return 0;
	}
	return -1;
}

bool config_listen_is_loopback(const char *spec)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *e;
	if (spec[0] == '[') {
		e = strchr(spec, ']');
		if (!e || (size_t)(e - spec - 1) >= sizeof(host))
			return false;
		memcpy(host, spec + 1, (size_t)(e - spec - 1));
		host[e - spec - 1] = '\0';
		struct in6_addr a6;
		return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
	}
	e = strrchr(spec, ':');
	if (!e || (size_t)(e - spec) >= sizeof(host))
		return false;
	memcpy(host, spec, (size_t)(e - spec));
	host[e - spec] = '\0';
	struct in_addr a4;
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

int config_load(struct mxb_config *cfg, const char *path, char **err_r)
{
	if (err_r)
		*err_r = NULL;
	FILE *f = fopen(path, "rb");
	struct parse_ctx p = { .name = path, .line = 0, .err_r = err_r };
	if (!f)
		return fail(&p, NULL, "cannot open: %s", strerror(errno));
	struct buf b;
	buf_init(&b, CONFIG_MAX_FILE + 1);
	char chunk[8192];
	size_t n;
	int rc = 0;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (buf_append(&b, chunk, n)) {
			rc = fail(&p, NULL, "file too large (more than %d bytes)", CONFIG_MAX_FILE);
			break;
		}
	}
	if (!rc && ferror(f))
		rc = fail(&p, NULL, "read error: %s", strerror(errno));
	fclose(f);
	if (!rc)
		rc = config_parse(cfg, path, b.data ? b.data : "", b.len, err_r);
	buf_free(&b);
	if (!rc) {
		free(cfg->config_file);
		cfg->config_file = xstrdup(path);
	}
	return rc;
}
