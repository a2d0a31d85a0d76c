/*
 * config: mxbait.conf, parsed and validated once at start.
 *
 * Format (documented in docs/mxbait.conf.5): one `key = value` per line, `#` comments,
 * blank lines ignored, lists separated by commas and/or white space, sizes with an
 * optional k/m/g suffix (powers of 1024), durations with ms/s/m/h/d suffixes (bare
 * number: seconds), booleans yes/no/true/false/on/off.  An unknown key, a bad value
 * or a duplicate key is an error naming the file, the line and the key.  Without a
 * file every key has its embedded default (loopback high ports, ./mxbait-data).
 */
#ifndef MXB_CORE_CONFIG_H
#define MXB_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MXB_MAX_LISTEN 8
/* Debian's nmap-common: 5000 passwords ranked by frequency in real leaks. */
#define MXB_DEFAULT_PASSWORD_LIST "/usr/share/nmap/nselib/data/passwords.lst"
/* The plausible usernames shipped in the tree (data/usernames.txt), installed in
 * DATADIR/mxbait: meson sets the path of the install prefix. */
#ifndef MXB_DEFAULT_USERNAME_LIST
#define MXB_DEFAULT_USERNAME_LIST "/usr/share/mxbait/usernames.txt"
#endif

struct mxb_config {
	/* identity and recipients */
	char *hostname;              /* hostname: gethostname() if qualified, else NAME.localdomain */
	char **local_domains;        /* local_domains: hostname, its parent domain, example.test */
	size_t n_local_domains;
	bool catch_all;              /* catch_all = no */
	bool vrfy_enabled;           /* vrfy = no */
	bool auth_on_mx;             /* smtp_auth_on_port25 = no */
	bool cram_md5;               /* auth_cram_md5 = no */
	char **accounts;             /* accounts = user:password, ... (the deception policy's
				      * fixed accounts: always that password, nothing else) */
	size_t n_accounts;

	/* deception policy (deceive/deception.h) */
	char *password_list;         /* ranked list, nmap's passwords.lst (built-in 20 if absent) */
	unsigned password_top_n;     /* password_top_n = 1000 */
	unsigned crack_fail_min;     /* crack_after_failures = 2-6 */
	unsigned crack_fail_max;
	unsigned max_accounts;       /* max_accounts = 100000 */
	unsigned account_expiry_ms;  /* account_expiry = 7d: a guessed, never cracked
				      * account untouched this long starts over */
	char *username_list;         /* username_list: plausible local parts (built-in short
				      * list if unreadable) */
	unsigned crack_distinct_sources; /* crack_distinct_sources = 3: networks (/24, /64)
					  * that make any name plausible; 0 never */
	bool crack_rcpt_probed;      /* crack_rcpt_probed = yes: RCPT-probed names plausible */
	unsigned distributed_window_ms; /* distributed_window = 1h (mxbait creds) */
	unsigned distributed_min_ips;   /* distributed_min_ips = 5 (mxbait creds) */

	/* listeners: "addr:port" / "[v6]:port" strings; empty list disables the role */
	char *smtp_listen[MXB_MAX_LISTEN];
	size_t n_smtp_listen;
	char *submission_listen[MXB_MAX_LISTEN];
	size_t n_submission_listen;
	char *smtps_listen[MXB_MAX_LISTEN];
	size_t n_smtps_listen;
	char *imap_listen[MXB_MAX_LISTEN];   /* 143: STARTTLS */
	size_t n_imap_listen;
	char *imaps_listen[MXB_MAX_LISTEN];  /* 993: implicit TLS */
	size_t n_imaps_listen;
	char *pop3_listen[MXB_MAX_LISTEN];   /* 110: STLS */
	size_t n_pop3_listen;
	char *pop3s_listen[MXB_MAX_LISTEN];  /* 995: implicit TLS */
	size_t n_pop3s_listen;

	/* state */
	char *data_dir;              /* data_dir = ./mxbait-data */
	char *tls_cert_file;         /* empty: self-signed, made in data_dir/tls/ */
	char *tls_key_file;
	bool tls_ecdsa;              /* tls_ecdsa = no: an ECDSA P-256 certificate too */
	char *tls_eccert_file;       /* empty: self-signed, data_dir/tls/eccert.pem */
	char *tls_eckey_file;
	char *event_log;             /* JSON-lines log; default data_dir/events.jsonl; "" off */

	/* protocol limits (Postfix names in brackets) */
	size_t line_length_limit;    /* [line_length_limit] 2048 */
	uint64_t message_size_limit; /* [message_size_limit] 10240000 */
	unsigned recipient_limit;    /* [smtpd_recipient_limit] 1000 */
	unsigned command_limit;      /* commands per session: 1000 */
	unsigned soft_error_limit;   /* [smtpd_soft_error_limit] 10 */
	unsigned hard_error_limit;   /* [smtpd_hard_error_limit] 20 */
	unsigned error_sleep_ms;     /* [smtpd_error_sleep_time] 1s */
	unsigned auth_failure_delay_ms; /* 2s, as Dovecot's auth_failure_delay */
	bool auth_failure_jitter;      /* ... with Dovecot's timing (1.5-2.05 s): yes */
	bool login_latency;            /* IMAP/POP3 greeting after 20-65 ms, as Dovecot: yes */
	unsigned mail_max_userip_connections; /* logged-in sessions per user+IP+service: 10 */
	unsigned idle_timeout_ms;    /* [smtpd_timeout] 300s */
	unsigned session_timeout_ms; /* total session time: 1h */
	unsigned tls_handshake_timeout_ms; /* 30s */

	/* IMAP and POP3 (Dovecot 2.3 names and defaults in brackets) */
	unsigned login_timeout_ms;     /* before login: 3m (login processes) */
	unsigned imap_idle_timeout_ms; /* after login: 30m (imap autologout) */
	unsigned pop3_idle_timeout_ms; /* after login: 10m (pop3) */
	size_t imap_line_length_limit; /* [imap_max_line_length] 64k */
	size_t imap_literal_max;       /* largest APPEND: 10m */
	size_t imap_session_memory;    /* APPEND bytes one IMAP session may hold: 32m */
	size_t imap_memory_budget;     /* ... all IMAP sessions together: 64m */
	size_t output_memory_budget;   /* answers queued for clients, all together: 64m */
	unsigned imap_bad_command_limit; /* BAD replies in a row after login: 20 */
	unsigned pop3_bad_command_limit; /* bad commands in a row after login: 20 */
	bool auth_penalty;             /* Dovecot's growing per-session auth penalty: yes */

	/* resources */
	unsigned max_connections;        /* 1000 */
	unsigned max_connections_per_ip; /* [smtpd_client_connection_count_limit] 50 */
	unsigned connection_rate_per_ip; /* connections per minute per IP: 0 = off (default) */
	unsigned max_connections_per_prefix; /* per /24 (IPv4) or /48 (IPv6): 50, 0 = off */
	uint64_t spool_budget;           /* bytes for captured mail: 1g */
	/* disk budgets of the records (store/maint.h; 0: no limit): the oldest rows go
	 * when one is reached */
	uint64_t database_budget;        /* mxbait.db with its -wal and -shm: 1g (>= 1m) */
	uint64_t analysis_budget;        /* analysis.db with its -wal and -shm: 1g (>= 1m) */
	uint64_t event_log_budget;       /* event_log and its one old generation: 1g (>= 64k) */
	uint64_t retention_ms;           /* records and spool files older than this go: 90d
					  * (>= 1h; 0 keeps everything) */

	/* processes */
	bool analyzer;                   /* run the analyzer child: yes */
	char *user;                      /* user = "" (keep the uid); an account name: started
					  * as root, bind and prepare, then run as it */
	char *analyzer_user;             /* "" (the analyzer child parses as user); an
					  * account (not root, not user): hostile mail is
					  * parsed by a worker running as it, with no access
					  * to data_dir (core/anlaunch.h); needs user */

	/* analyzer limits, passed to the child's command line (analyze/analyze.h has the
	 * same defaults: analyze_limits_default()) */
	unsigned analyzer_max_depth;     /* 20 (1-1000) */
	unsigned analyzer_max_parts;     /* 2000 (1-1000000) */
	size_t analyzer_max_decoded;     /* 64m */
	size_t analyzer_max_text;        /* 4m */
	unsigned analyzer_max_links;     /* 5000 (1-1000000) */
	unsigned analyzer_max_recipients; /* 10000 (1-10000000) */
	char *analyzer_psl_file;         /* "" = the system public suffix list; else a file
					  * checked readable at load */

	/* operations (docs/operations.md) */
	char *log;                       /* log = stderr | syslog | /absolute/file */
	char *config_file;               /* the file loaded (NULL: embedded defaults) */
	unsigned *key_lines;             /* per key of the table, the line that set it (0) */
	/* guard: protecting the real Postfix + Dovecot (src/guard/guard.h, docs/deploy.md) */
	char *dovecot_policy_listen[MXB_MAX_LISTEN]; /* addr:port of the auth-policy HTTP server */
	size_t n_dovecot_policy_listen;
	char *dovecot_policy_api_key;    /* required with a listener (X-API-Key header) */
	char *dovecot_policy_hash_nonce; /* Dovecot's auth_policy_hash_nonce */
	char *dovecot_policy_hash_mech;  /* auth_policy_hash_mech: sha256 */
	unsigned dovecot_policy_hash_truncate; /* auth_policy_hash_truncate: 12 (bits, 0 = all) */
	char *postfix_policy_listen[MXB_MAX_LISTEN]; /* addr:port or unix:/path */
	size_t n_postfix_policy_listen;
	char **watch_log_files;          /* Postfix/Dovecot log files to follow */
	size_t n_watch_log_files;
	bool watch_journal;              /* the systemd journal: no */
	char *watch_journal_directory;   /* "" = the system journal */
	char **trusted_networks;         /* never acted on; empty = loopback + own addresses */
	size_t n_trusted_networks;
	char **guard_trap_users;         /* user names whose every use convicts */
	size_t n_guard_trap_users;
	unsigned guard_window_ms;        /* detection window: 1h */
	unsigned guard_user_min_ips;     /* one user name failing from N addresses: 5 */
	unsigned guard_pair_min_ips;     /* one user+password pair from N addresses: 3 */
	unsigned guard_ip_failures;      /* failures for unknown users from one address: 5 */
	unsigned guard_known_user_failures; /* failures for a known user from one address: 10 */
	unsigned guard_prefix_min_ips;   /* failing addresses in one /24 or /64: 8 */
	unsigned guard_ip_unknown_rcpts; /* unknown recipients from one address: 5 */
	unsigned guard_domain_unknown_rcpts; /* unknown recipients of one domain: 20 */
	unsigned guard_delay_ms;         /* a delay decision's answer: 5s */
	unsigned guard_max_keys;         /* tracked keys per detector: 100000 */
	unsigned decision_duration_ms;   /* first decision: 1h, doubled on every repeat */
	unsigned decision_max_duration_ms; /* 7d */
	unsigned ban_after;              /* diverted this many times: ban (0 = never) */
	bool divert;                     /* enforcement with nftables: no */
	char **divert_ports;             /* real port[:honeypot port]; default auth ports */
	size_t n_divert_ports;
	char *divert_to;                 /* "" = redirect here; an address: dnat there */
	char *nft_path;                  /* /usr/sbin/nft */
	unsigned nft_set_size;           /* elements per set: 65536 */
	char *backend_mta;               /* "" off; host:port, lmtp:host:port, lmtp:unix:/path */
	/* web: dashboard, JSON API and /metrics (src/web/, docs/api.md) */
	char *web_listen[MXB_MAX_LISTEN]; /* 127.0.0.1:8025; empty: no web server; off
					   * loopback: TLS, and web_auth is required */
	size_t n_web_listen;
	char **web_auth;                 /* NAME:ROLE:HASH (ROLE read or admin; HASH a
					  * crypt(3) string, or sha256:HEX of a token) */
	size_t n_web_auth;
	unsigned web_max_connections;    /* 64 */
	unsigned web_timeout_ms;         /* 30s: a request must arrive and leave in it */
	unsigned web_threads;            /* 2: query threads (never the network loop) */
	unsigned web_auth_failures;      /* 10 failed logins per IP per minute, then 429 */
	char *geoip_file;                /* "": no countries; else a MaxMind/DB-IP mmdb */
	/* intel, exports and the reporter (src/intel, src/report; docs/reporting.md) */
	char *allowlist_networks;        /* "" never exported/reported (CIDRs, checked) */
	char *allowlist_domains;         /* "" (a domain covers its subdomains) */
	bool allowlist_own_addresses;    /* yes: this host's addresses and loopback too */
	unsigned export_min_confidence;  /* 50 (0-100): exports' and reports' floor */
	char *report_from;               /* "" = abuse-reports@HOSTNAME */
	char *report_smtp_url;           /* "" = no SMTP sink (ARF rendered, kept) */
	bool report_redact;              /* yes: victims' addresses redacted (RFC 6590) */
	unsigned report_daily_budget;    /* 20 reports per recipient per day */
	unsigned report_quiet_ms;        /* 1d: thinning restarts after this quiet time */
	bool report_leak_digest;         /* no: digests of leaked lists to abuse@ (opt-in) */
	bool report_xarf;                /* yes: XARF v4 login-attack reports */
	bool report_web_hosts;           /* yes: ARF to the network hosting each link's host */
	unsigned report_interval_ms;     /* 60s: reporter pass period */
	unsigned report_expiry_ms;       /* 7d: older evidence is not submitted */
	bool report_contact_lookup;      /* no: RDAP lookups of abuse contacts (network) */
	char *report_rdap_bootstrap_url; /* https://data.iana.org/rdap/ */
	unsigned report_contact_cache_ms; /* 7d */
	char *report_ca_file;            /* "" = system CAs; TLS is always verified */
	bool report_abusix;              /* yes: Abusix DNS when RDAP has no abuse role */
	char *report_dns_server;         /* "" = system resolver; ADDR[:PORT] */
	char *report_abuseipdb_key_file, *report_abuseipdb_url;
	char *report_spamhaus_key_file, *report_spamhaus_url;
	char *report_netcraft_email, *report_netcraft_url;
	char *report_urlhaus_key_file, *report_urlhaus_url;
	char *report_webhook_url, *report_webhook_token_file;
	unsigned report_smtp_rate;       /* 60 reports a minute through the smarthost */
	unsigned report_webhook_rate;    /* 1200 requests a minute */
	/* federation and the hub (src/federate; docs/federation.md, docs/scaling.md) */
	bool feed_publish;               /* no: sign and publish a feed (the reporter) */
	bool feed_public;                /* no: /feed/v1 needs a web_auth login */
	unsigned feed_entry_ttl_ms;      /* 7d: an entry's life after it was last seen */
	bool feed_share_victims;         /* no: recipients (victims) are never published */
	unsigned peer_pull_interval_ms;  /* 5m */
	unsigned peer_consensus;         /* 2: trust-weighted operators needed (K) */
	char *peer_action;               /* divert: what a consensus address becomes */
	unsigned peer_max_entries;       /* 1000000 kept per peer */
	char *hub_url;                   /* "": no hub; else a libpq connection string */
	char *hub_sensor;                /* "": the sensor's name at the hub is hostname */
	unsigned hub_batch;              /* 10000 events per transaction */
	unsigned hub_interval_ms;        /* 1s between catch-up checks */
	bool hub_share_passwords;        /* no: the hub gets keyed hashes of passwords */
	unsigned hub_retention_days;     /* 0: partitions kept; else older ones dropped */
};

/* Where the service's configuration lives (mxbait check, serve and the reading
 * commands use it when it exists and no -c is given). */
#ifndef MXB_CONFIG_DIR
#define MXB_CONFIG_DIR "/etc/mxbait"
#endif
#define MXB_DEFAULT_CONFIG MXB_CONFIG_DIR "/mxbait.conf"

/* Fill cfg with the embedded defaults. */
void config_defaults(struct mxb_config *cfg);
/* Load path over the defaults.  Returns 0, or -1 with *err_r = "file:line: key: why". */
int config_load(struct mxb_config *cfg, const char *path, char **err_r);
/* Parse a whole config text (for tests and the fuzzer); name is used in messages. */
int config_parse(struct mxb_config *cfg, const char *name, const char *text, size_t len,
		 char **err_r);
void config_free(struct mxb_config *cfg);
/* The line of the loaded file that set key (0: not set there, or no file). */
unsigned config_key_line(const struct mxb_config *cfg, const char *key);
/* The table of keys, in order (NULL after the last): for `mxbait check` and reload. */
const char *config_key_name(size_t i);
/* Whether key has the same value in a and b (strings and lists compared by content).
 * An unknown key compares equal. */
bool config_key_equal(const struct mxb_config *a, const struct mxb_config *b,
		      const char *key);
/* Give dst src's value of key (deep copy; dst's old value freed). */
void config_key_copy(struct mxb_config *dst, const struct mxb_config *src, const char *key);
/* The bounds mxbait.conf accepts for a numeric key (bytes, a count or milliseconds):
 * 0, or -1 for an unknown or non-numeric key.  For the fuzzers, which take limits
 * from their input within these bounds. */
int config_key_range(const char *key, uint64_t *min_r, uint64_t *max_r);

/* An "addr:port" / "[v6]:port" listen value on a loopback address (127/8, ::1). */
bool config_listen_is_loopback(const char *spec);

/* divert_ports entry i as (real port, honeypot port): an explicit "25:2525", else the
 * port of the first listener of the role whose standard port it is (587 ->
 * submission_listen, ...).  -1 when i is out of range or no honeypot port exists. */
int config_divert_map(const struct mxb_config *cfg, size_t i, unsigned *real_r,
		      unsigned *trap_r);

/* backend_mta parsed: [smtp:|lmtp:]HOST:PORT, [smtp:|lmtp:]unix:/path.  -1 if bad. */
struct mxb_backend {
	bool lmtp;
	bool unix_socket;
	char host[64];
	unsigned port;
	char path[108];
};
int config_backend_parse(const char *s, struct mxb_backend *b);

#endif
