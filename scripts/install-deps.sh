#!/bin/sh
# Install the Debian 12 packages mxbait needs to build, run and test, when missing.
# Idempotent: it asks apt only for what dpkg does not already have.
#   scripts/install-deps.sh run    build and run
#   scripts/install-deps.sh test   build, run and every test and benchmark tool
set -eu

RUN_PKGS="build-essential meson ninja-build pkg-config libevent-dev libssl-dev
libsqlite3-dev libcmocka-dev openssl libgmime-3.0-dev libpsl-dev libmagic-dev libxxhash-dev
libxml2-dev libidn2-dev publicsuffix nmap-common libjansson-dev libsystemd-dev libcap-dev
nftables libcrypt-dev libmaxminddb-dev libcurl4-openssl-dev zlib1g-dev libarchive-dev
libseccomp-dev swaks libnet-ssleay-perl libio-socket-inet6-perl libauthen-sasl-perl curl
netbase libsodium-dev libpq-dev"
# libcrypt-dev: crypt(3) of web_auth password hashes (libxcrypt: yescrypt, SHA-crypt,
# bcrypt); libmaxminddb-dev: countries of attackers when geoip_file is set.
# libcurl4-openssl-dev: the reporter's SMTP/HTTPS client (src/report/sink.c), on OpenSSL.
# zlib1g-dev: the analyzer inflates PDF FlateDecode streams (bounded); libarchive-dev:
# it lists archive members (zip/OOXML, rar, 7z, tar, gzip, cab, iso) with their hashes, in
# memory, never extracted to disk.
# Federation (issue 14): libsodium-dev (Ed25519 feed signatures, sealed boxes, BLAKE2b
# key ids), libpq-dev (the PostgreSQL hub's client library: `mxbait hub`).
# nmap-common: its ranked nselib/data/passwords.lst is the deception policy's
# password_list (read at run time; without it a built-in list of 20 is used).
# The guard (issue 9): libjansson-dev (Dovecot's auth-policy JSON, nft's JSON listings),
# libsystemd-dev (sd-journal for watch_journal), libcap-dev (the nft helper keeps only
# CAP_NET_ADMIN), nftables (the nft program the helper runs; GPL, never linked).
# libseccomp-dev: the analyzer child's system-call filter (src/core/sandbox.c).
# swaks and curl: the README's tour (`make run` installs what the tour uses).  apt is
# run with --no-install-recommends, so swaks's Recommends that the tour and the tests
# need are named: libnet-ssleay-perl (--tls, --tlsc: without it swaks says "TLS not
# available"), libio-socket-inet6-perl (-6, [::1]), libauthen-sasl-perl (--auth), and
# netbase (/etc/protocols: without it, on a minimal system, every swaks connection fails
# with "IO::Socket::INET6: sock_info: Bad protocol 'tcp'"; found by check-fresh.sh).
# libsystemd-dev: also sd_notify (Type=notify service, reload and stop states).
# Test tools: real clients nobody here wrote, clang for libFuzzer, and Postfix for
# smtp-source/smtp-sink (installed with "No configuration": nothing listens on 25).
TEST_PKGS="clang libclang-rt-14-dev swaks nmap curl sqlite3 python3 python3-pytest
postfix iproute2 procps strace time hydra medusa dovecot-core dovecot-imapd dovecot-pop3d
llvm-14 dpkg-dev debhelper lintian fakeroot debootstrap debian-archive-keyring
systemd passwd util-linux systemd-journal-remote fail2ban chromium fonts-dejavu-core
python3-websocket python3-jsonschema prometheus python3-aiosmtpd python3-yaml ipset
bind9-utils bind9-dnsutils rbldnsd spamassassin crowdsec postgresql-15 postgresql-client-15"
# llvm-14: llvm-symbolizer, which clang's sanitizer runtime (the fuzz build) needs to
# print symbolized stack traces (a Recommends of clang-14).
# dpkg-dev, debhelper, lintian, fakeroot: scripts/check-package.sh builds the Debian
# package (dpkg-buildpackage -us -uc -b) and runs lintian on it.
# debootstrap, debian-archive-keyring (its Recommends: the signature of the Release
# file is checked with it): scripts/check-fresh.sh and check-package.sh build a minimal
# Debian 12 root.
# systemd: systemd-analyze (verify, security --offline) on the installed unit in
# tests/integration/test_install.py.  passwd (useradd) and util-linux (setpriv,
# runuser): the file-permission test runs as a second, unprivileged user.
# postgresql-15, postgresql-client-15: the hub's tests and benchmarks start a private
# server (initdb/pg_ctl as nobody in a temporary directory, unix socket only) and use
# psql; the system cluster the package creates is stopped and its service disabled
# below (nothing listens on 5432).
# chromium (+ fonts-dejavu-core for legible screenshots), python3-websocket: the
# dashboard test drives Debian's chromium headless over the DevTools protocol;
# python3-jsonschema: the API's JSON Schemas; prometheus: its promtool checks /metrics
# (the server it ships is not wanted: its service is disabled below).
# Reporting and export tests (tests/integration/test_export.py, test_report.py): aiosmtpd
# receives the ARF reports; jsonschema checks the STIX and MISP output; nft and ipset load
# the firewall exports inside a network namespace; named-checkzone (bind9-utils) the RPZ;
# rbldnsd and dig (bind9-dnsutils) serve and query the DNSBL zones; fail2ban-regex runs
# the filter.
# crowdsec: the real consumer of `mxbait export --format crowdsec` (test_export.py runs
# crowdsec with a private config directory, local API on a loopback port and its own SQLite,
# replaying a daemon's events.jsonl through mxbait's parser and scenario).  Its postinst
# registers with the Central API (network) unless online_api_credentials.yaml exists
# beforehand (README.Debian): it is preseeded below; its service is disabled below.
# spamassassin: the reference URI extractor of bench/analyze-quality.py (its Perl API,
# get_uri_detail_list; no daemon is started, no network lookups).
# dovecot-pop3d: the POP3 half of the persona reference (tests/persona/stock-servers.py
# records Dovecot's POP3 replies and TLS profile on 110/995's roles).
# dovecot-core, dovecot-imapd: bench/auth-flood.sh's reference Dovecot SASL and IMAP; the
# bench runs a private instance (dovecot -c) on loopback high ports, so the system
# service that dovecot-imapd enables (143/993) is disabled below.  The guard's tests run
# private Postfix and Dovecot instances too (tests/integration/guard_env.py).
# systemd-journal-remote: writes the journal files the guard's journal test reads
# (no journald needed).  fail2ban: fail2ban-regex, the reference of bench/guard-logwatch.sh;
# its service (which would ban addresses from the system's logs) is disabled below.

want="$RUN_PKGS"
[ "${1:-run}" = test ] && want="$want $TEST_PKGS"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "mxbait: installing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
# Postfix must not be configured to listen: preseed "No configuration".
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
# CrowdSec must not register with its Central API (a network call from postinst that fails
# offline): an online_api_credentials.yaml holding only a comment skips it (README.Debian).
case " $missing " in *" crowdsec "*)
	if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then
		$SUDO mkdir -p /etc/crowdsec
		echo "# mxbait: no Central API registration (README.Debian)" |
			$SUDO tee /etc/crowdsec/online_api_credentials.yaml >/dev/null
	fi ;;
esac
# Wait for another apt/dpkg (a parallel build, unattended-upgrades) instead of failing.
APT_LOCK="-o DPkg::Lock::Timeout=900"
$SUDO apt-get $APT_LOCK update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get $APT_LOCK install -y -q --no-install-recommends $missing
# Services that arrive with test tools are not wanted running (only their programs are
# used: private instances, fail2ban-regex, promtool).
units=""
case " $missing " in *" dovecot-"*) units="$units dovecot.service dovecot.socket" ;; esac
case " $missing " in *" fail2ban "*) units="$units fail2ban.service" ;; esac
case " $missing " in *" prometheus "*) units="$units prometheus.service" ;; esac
case " $missing " in *" crowdsec "*) units="$units crowdsec.service" ;; esac
case " $missing " in *" postgresql-15 "*) units="$units postgresql.service" ;; esac
if [ -n "$units" ] && command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
	$SUDO systemctl disable --now $units >/dev/null 2>&1 || true
fi
# Without systemd the package's postinst starts the cluster itself: stop it, and keep
# it from starting at boot (start.conf), so no system PostgreSQL is left running.
case " $missing " in *" postgresql-15 "*)
	if command -v pg_lsclusters >/dev/null 2>&1; then
		pg_lsclusters -h 2>/dev/null | while read -r ver name _; do
			$SUDO pg_ctlcluster "$ver" "$name" stop >/dev/null 2>&1 || true
			[ -f "/etc/postgresql/$ver/$name/start.conf" ] &&
				echo disabled | $SUDO tee "/etc/postgresql/$ver/$name/start.conf" >/dev/null
		done
	fi ;;
esac
