/*
 * reload: the configuration read again on SIGHUP.
 *
 * What can change without a restart, and applies from the reload on (sessions that
 * are already open finish with the settings they started with; the idle, handshake
 * and session timeouts of open sessions follow the new values):
 *   protocol limits and timeouts (line_length_limit ... tls_handshake_timeout,
 *   login_timeout, imap_* and pop3_* limits, auth_failure_delay, auth_penalty),
 *   catch_all, vrfy, smtp_auth_on_port25, auth_cram_md5, the connection limits
 *   (max_connections, max_connections_per_ip, connection_rate_per_ip,
 *   max_connections_per_prefix), tls_cert_file and tls_key_file (and the files
 *   themselves: certificates are read again), log, the analyzer keys (analyzer,
 *   analyzer_max_*, analyzer_psl_file: the child is restarted with them),
 *   distributed_window and distributed_min_ips.
 * What needs a restart (a changed value is logged with its file:line and the running
 * value stays): RELOAD_RESTART_KEYS below: the listeners (binding needs root), the
 * identity (hostname, local_domains: the certificate and every generated mailbox
 * follow them), the credential policy (accounts, password_list, password_top_n,
 * crack_after_failures, max_accounts, account_expiry, username_list,
 * crack_distinct_sources, crack_rcpt_probed: it holds the accounts in
 * memory), data_dir,
 * event_log, spool_budget, user, analyzer_user (its launcher starts as root), the storage budgets and retention (database_budget,
 * analysis_budget, event_log_budget, retention: the storage job reads them at start),
 * and every key of the guard and of the web server, feed_public included
 * (they read their settings at start).  The other federation and hub keys are read by
 * the reporter and `mxbait hub push` at their own start, not by this daemon.
 * A key this list does not name is reloadable.  The event log and a log file are
 * reopened by every SIGHUP (logrotate), even when nothing changed.
 */
#ifndef MXB_CORE_RELOAD_H
#define MXB_CORE_RELOAD_H

#include <stddef.h>

struct mxb_config;

#define RELOAD_RESTART_KEYS                                                            \
	"hostname", "local_domains", "accounts", "smtp_listen", "submission_listen",     \
		"smtps_listen", "imap_listen", "imaps_listen", "pop3_listen",            \
		"pop3s_listen", "password_list", "password_top_n",                       \
		"crack_after_failures", "max_accounts", "account_expiry", "username_list", \
		"crack_distinct_sources", "crack_rcpt_probed", "data_dir",                \
		"event_log",                                                             \
		"spool_budget", "user", "analyzer_user",                                 \
		/* the storage job reads its budgets and retention at start */           \
		"database_budget", "analysis_budget", "event_log_budget", "retention",   \
		/* the guard and the web server read their settings at start */          \
		"dovecot_policy_listen", "dovecot_policy_api_key", "dovecot_policy_hash_nonce", \
		"dovecot_policy_hash_mech", "dovecot_policy_hash_truncate",              \
		"postfix_policy_listen", "watch_log_files", "watch_journal",             \
		"watch_journal_directory", "trusted_networks", "guard_trap_users",       \
		"guard_window", "guard_user_min_ips", "guard_pair_min_ips",              \
		"guard_ip_failures", "guard_known_user_failures", "guard_prefix_min_ips", \
		"guard_ip_unknown_rcpts", "guard_domain_unknown_rcpts", "guard_delay",   \
		"guard_max_keys", "decision_duration", "decision_max_duration",          \
		"ban_after", "divert", "divert_ports", "divert_to", "nft_path",          \
		"nft_set_size", "backend_mta", "web_listen", "web_auth",                 \
		"web_max_connections", "web_timeout", "web_threads", "web_auth_failures", \
		"geoip_file",                                                            \
		/* the web server's feed: public or behind a feed login (federation) */  \
		"feed_public"

/* Fill next from cur's file again (embedded defaults when cur had none), with every
 * restart-only key put back to cur's value (a warning for each that changed).
 * Returns the number of reloadable keys that changed (each logged), or -1 with
 * *err_r ("file:line: key: why"; next is then empty). */
int reload_config(const struct mxb_config *cur, struct mxb_config *next, char **err_r);

/* Whether the analyzer child's settings differ (it must be restarted). */
int reload_analyzer_changed(const struct mxb_config *a, const struct mxb_config *b);

#endif
