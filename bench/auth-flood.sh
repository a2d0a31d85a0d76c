#!/bin/bash
# auth-flood: server CPU per failed AUTH guess, mxbait vs a real Postfix + Dovecot SASL,
# flooded in the same run by the same load generator (bench/auth-flood.py), plus hydra.
#
#   bench/auth-flood.sh [BUILD_DIR]     (default: build, the release build of `make build`;
#                                        missing or sanitized: bench/out/build is built here)
#
# Environment: CONNS (concurrent connections, default 100, one 127.0.x.y source address
# each), DURATION (seconds per guessing flood, default 60), CONN_DURATION (seconds of
# connections without guesses, default 10), FAST_DURATION (seconds of the unthrottled
# mxbait floods, default 15), DELAY (auth_failure_delay on both sides, default 2s = both
# defaults), HYDRA_SECONDS (default 20), KEEP=1 keeps the temp dir (logs, configs),
# REFERENCE=0 skips Postfix + Dovecot and hydra (mxbait's rows only: before/after runs).
#
# What runs, each against servers started here on free loopback high ports only:
#   1. mxbait serve (auth_failure_delay = DELAY; its default is 2s): the AUTH PLAIN flood
#      on submission after STARTTLS, the LOGIN flood on imap after STARTTLS, then the
#      same connections without any guess (connect, STARTTLS, EHLO, QUIT / LOGOUT)
#   2. the same four against Postfix 3.7 + Dovecot 2.3: a private Postfix (postfix -c
#      TMP/postfix start; config and queue directories in TMP; one smtpd on
#      127.0.0.1:PORT, default process limit 100; smtpd_sasl_type = dovecot over a unix
#      socket in TMP) and a private Dovecot (dovecot -F -c TMP/dovecot/dovecot.conf;
#      base_dir in TMP; passwd-file; auth_mechanisms = plain login; auth_failure_delay =
#      DELAY; imap-login on 127.0.0.1:PORT only, pop3 and imaps off)
#   3. mxbait with auth_failure_delay = 0, error_sleep_time = 0, auth_penalty = no: what
#      a guess costs when nothing throttles the flood (submission, smtps implicit TLS,
#      imap)
#   4. hydra (smtp module, STARTTLS, PLAIN) briefly against mxbait and Postfix+Dovecot
# Server CPU = utime+stime (+cutime+cstime: reaped children, e.g. smtpd processes that
# exited) summed over the server's whole process tree from /proc/PID/stat, before and
# after each flood.  Prints attempts/s, CPU seconds per 10,000 failed attempts and the
# ratio, and splits the cost into per connection and per guess.  Compare CPU per
# attempt, not attempts/s: Dovecot's failure delay and its per-IP auth penalty bound
# the rate of the reference, by design.
# Everything started here is stopped by PID on exit (trap), errors included.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${1:-build}
CONNS=${CONNS:-100}
DURATION=${DURATION:-60}
FAST_DURATION=${FAST_DURATION:-15}
CONN_DURATION=${CONN_DURATION:-10}
DELAY=${DELAY:-2s}
HYDRA_SECONDS=${HYDRA_SECONDS:-20}
REFERENCE=${REFERENCE:-1}
PY=/usr/bin/python3
FLOOD="$PY $here/auth-flood.py"

die() { echo "auth-flood: $*" >&2; exit 1; }
for t in postfix dovecot openssl; do
	command -v $t >/dev/null || die "$t missing (scripts/install-deps.sh test)"
done
[ "$(id -u)" -eq 0 ] || die "needs root (a private Postfix and Dovecot instance run their own users)"
[ -e /etc/postfix/main.cf ] && ! grep -q '^alternate_config_directories' /etc/postfix/main.cf &&
	echo "auth-flood: note: /etc/postfix/main.cf exists; postfix -c needs the temp dir in its alternate_config_directories" >&2

# The release build (sanitizers would multiply what is measured): BUILD_DIR's when it
# is one, else bench/out/build (debugoptimized, no sanitizers), set up and built here.
if [ ! -x "$BUILD/src/mxbait" ] || grep -q __asan_init "$BUILD/src/mxbait"; then
	echo "${0##*/}: $BUILD/src/mxbait missing or a sanitizer build: using bench/out/build" >&2
	BUILD=$root/bench/out/build
	{ [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=debugoptimized \
		-Db_sanitize=none >/dev/null; } && ninja -C "$BUILD" src/mxbait >/dev/null ||
		die "build of $BUILD failed"
fi
MXBAIT=$(cd "$BUILD/src" && pwd)/mxbait

T=$(mktemp -d /tmp/mxbait-authflood.XXXXXX)
chmod 711 "$T" # smtpd (user postfix) reaches Dovecot's socket through it

MX_PID="" DOV_PID="" PF_STARTED=""
cleanup() {
	status=$?
	[ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	MX_PID=""
	if [ -n "$PF_STARTED" ]; then
		postfix -c "$T/postfix" stop >/dev/null 2>&1
		pf=$(cat "$T/postfix/queue/pid/master.pid" 2>/dev/null | tr -d ' ')
		# postfix stop waits for nothing: make sure the master PID we started is gone
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			[ -n "$pf" ] && kill -0 "$pf" 2>/dev/null || break
			sleep 0.5
		done
		[ -n "$pf" ] && kill -0 "$pf" 2>/dev/null && kill "$pf"
	fi
	[ -n "$DOV_PID" ] && kill "$DOV_PID" 2>/dev/null && wait "$DOV_PID" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
		echo "auth-flood: logs kept in $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Free loopback ports, asked of the kernel.
set -- $($PY -c '
import socket
ss = [socket.socket() for _ in range(8)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
P_MX_SUB=$1 P_MX_SMTPS=$2 P_MX_IMAP=$3 P_MX_SMTP=$4 P_PF=$5 P_DOV_IMAP=$6

# One source address per connection: a distributed flood, as real ones are, and
# Dovecot's auth penalty is per client IP (from one address it would serialise).
SOURCES=$($PY -c "print(','.join('127.0.%d.%d' % (1 + i // 250, 1 + i % 250) for i in range($CONNS)))")

# One certificate for both sides: the same handshake cost (RSA 2048).
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 30 \
	-subj /CN=mail.example.test >/dev/null 2>&1 || die "openssl req failed"
chmod 644 "$T/key.pem" # read by smtpd (postfix) and dovecot's login processes

# ---------------------------------------------------------------- process-tree CPU
# cpu_ticks PID: utime+stime+cutime+cstime summed over PID and its descendants.
cpu_ticks() {
	$PY - "$1" <<'EOF'
import os, sys
root = int(sys.argv[1])
kids, tick = {}, {}
for d in os.listdir("/proc"):
    if not d.isdigit():
        continue
    try:
        with open("/proc/%s/stat" % d) as f:
            st = f.read()
    except OSError:
        continue
    f = st[st.rindex(")") + 2:].split()
    pid, ppid = int(d), int(f[1])
    kids.setdefault(ppid, []).append(pid)
    tick[pid] = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
total, todo = 0, [root]
while todo:
    p = todo.pop()
    total += tick.get(p, 0)
    todo.extend(kids.get(p, []))
print(total)
EOF
}
HZ=$(getconf CLK_TCK)

wait_port() {
	i=0
	while ! $PY -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 150 ] && die "nothing listens on 127.0.0.1:$1 (logs in $T)"
		sleep 0.1
	done
}

# ---------------------------------------------------------------- mxbait
start_mxbait() { # DELAY_VALUE [EXTRA_CONFIG_LINE...]
	delay=$1
	shift
	mkdir -p "$T/mx"
	cat >"$T/mx/mxbait.conf" <<EOF
# bench/auth-flood.sh: an AUTH flood from $CONNS loopback addresses
hostname = mail.example.test
local_domains = example.test
smtp_listen = 127.0.0.1:$P_MX_SMTP
submission_listen = 127.0.0.1:$P_MX_SUB
smtps_listen = 127.0.0.1:$P_MX_SMTPS
imap_listen = 127.0.0.1:$P_MX_IMAP
imaps_listen =
pop3_listen =
pop3s_listen =
web_listen =
data_dir = $T/mx/data
tls_cert_file = $T/cert.pem
tls_key_file = $T/key.pem
auth_failure_delay = $delay
max_connections = 20000
max_connections_per_ip = 0
connection_rate_per_ip = 0
max_connections_per_prefix = 0
EOF
	for line in "$@"; do echo "$line" >>"$T/mx/mxbait.conf"; done
	"$MXBAIT" serve -c "$T/mx/mxbait.conf" >>"$T/mx/mxbait.log" 2>&1 &
	MX_PID=$!
	wait_port "$P_MX_SUB"
	wait_port "$P_MX_IMAP"
}
stop_mxbait() {
	kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	MX_PID=""
}

# ---------------------------------------------------------------- Postfix + Dovecot
start_reference() {
	mkdir -p "$T/postfix/queue" "$T/postfix/data" "$T/dovecot/run" "$T/dovecot/state"
	chown postfix "$T/postfix/data"
	echo 'bench@example.test:{PLAIN}S3cret-not-guessed::::::' >"$T/dovecot/passwd"
	cat >"$T/dovecot/dovecot.conf" <<EOF
# bench/auth-flood.sh: Dovecot 2.3 for Postfix SASL and IMAP, loopback high ports only
base_dir = $T/dovecot/run
state_dir = $T/dovecot/state
instance_name = mxbait-bench
protocols = imap
listen = 127.0.0.1
log_path = $T/dovecot/dovecot.log
ssl = yes
ssl_cert = <$T/cert.pem
ssl_key = <$T/key.pem
auth_mechanisms = plain login
auth_failure_delay = $DELAY
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:/nonexistent
passdb {
  driver = passwd-file
  args = scheme=PLAIN $T/dovecot/passwd
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
service auth {
  unix_listener $T/dovecot/auth-postfix {
    mode = 0666
  }
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $P_DOV_IMAP
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 0
  }
  inet_listener pop3s {
    port = 0
  }
}
EOF
	dovecot -F -c "$T/dovecot/dovecot.conf" >"$T/dovecot/stdout" 2>&1 &
	DOV_PID=$!
	cat >"$T/postfix/main.cf" <<EOF
# bench/auth-flood.sh: a private Postfix 3.7, submission-like smtpd on loopback only
compatibility_level = 3.6
queue_directory = $T/postfix/queue
data_directory = $T/postfix/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = /tmp
maillog_file = $T/postfix/maillog
myhostname = mail.example.test
inet_interfaces = loopback-only
inet_protocols = ipv4
mydestination =
alias_maps =
alias_database =
smtpd_banner = \$myhostname ESMTP Postfix (Debian/GNU)
smtpd_tls_cert_file = $T/cert.pem
smtpd_tls_key_file = $T/key.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $T/dovecot/auth-postfix
smtpd_relay_restrictions = permit_sasl_authenticated, reject
EOF
	# Only the services smtpd needs; nothing on port 25.  Default process limit (100).
	cat >"$T/postfix/master.cf" <<EOF
127.0.0.1:$P_PF inet n - n - - smtpd
postlog   unix-dgram n  -       n       -       1       postlogd
anvil     unix  -       -       n       -       1       anvil
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
scache    unix  -       -       n       -       1       scache
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
EOF
	PF_STARTED=1
	postfix -c "$T/postfix" start >"$T/postfix/start.log" 2>&1 ||
		die "postfix -c $T/postfix start failed: $(tail -3 "$T/postfix/maillog" 2>/dev/null)"
	wait_port "$P_PF"
	wait_port "$P_DOV_IMAP"
	PF_PID=$(tr -d ' ' <"$T/postfix/queue/pid/master.pid")
	[ -n "$PF_PID" ] || die "no Postfix master PID"
}

# ---------------------------------------------------------------- one measured flood
# flood LABEL PIDS FLOOD-ARGS...: runs the generator; prints one row; appends
# "label attempts sessions cpu_seconds" to $T/results.
flood() {
	label=$1 pids=$2
	shift 2
	c0=0
	for p in $pids; do c0=$((c0 + $(cpu_ticks "$p"))); done
	out=$($FLOOD --label "$label" "$@") || die "load generator failed ($label)"
	c1=0
	for p in $pids; do c1=$((c1 + $(cpu_ticks "$p"))); done
	echo "$out" >>"$T/flood.jsonl"
	echo "$out" | $PY -c "
import json, sys
r = json.loads(sys.stdin.read())
cpu = ($c1 - $c0) / $HZ
per = '%10.2f' % (cpu / r['attempts'] * 10000) if r['attempts'] else '%10s' % '-'
conn = '%8.2f' % (cpu / r['sessions'] * 1000) if r['sessions'] else '%8s' % '-'
print('%-38s %8d %8.1f %8d %8.2f %s %s   %s' % (r['label'], r['attempts'], r['rate'], r['sessions'],
      cpu, per, conn, 'ok=%d other=%s closed=%d timeouts=%d connerr=%d' % (r['ok'],
      r['other_codes'] or 0, r['closed'], r['timeouts'], r['connect_errors'] + r['tls_errors'])))
with open('$T/results', 'a') as f:
    f.write('%s\t%d\t%d\t%r\n' % (r['label'], r['attempts'], r['sessions'], cpu))
"
}

# The same floods against one server: guesses (DURATION s), then connections alone
# (CONN_DURATION s: TLS and QUIT, no guess) for the per-connection part of the cost.
floods() { # NAME PIDS SMTP_PORT IMAP_PORT
	flood "$1 submission STARTTLS" "$2" --port "$3" --tls starttls \
		--conns "$CONNS" --duration "$DURATION" --sources "$SOURCES"
	flood "$1 imap STARTTLS" "$2" --proto imap --port "$4" --tls starttls \
		--conns "$CONNS" --duration "$DURATION" --sources "$SOURCES"
	flood "$1 submission connections only" "$2" --port "$3" --tls starttls --per-session 0 \
		--conns "$CONNS" --duration "$CONN_DURATION" --sources "$SOURCES"
	flood "$1 imap connections only" "$2" --proto imap --port "$4" --tls starttls \
		--per-session 0 --conns "$CONNS" --duration "$CONN_DURATION" --sources "$SOURCES"
}

echo
echo "AUTH flood: $CONNS connections from $CONNS loopback addresses, failed guesses with random passwords,"
echo "${DURATION}s per flood; then ${CONN_DURATION}s of connections without guesses (connect, STARTTLS, EHLO, QUIT)"
echo "failure delay: mxbait auth_failure_delay = $DELAY (its default: 2s); Dovecot auth_failure_delay = $DELAY (its default: 2s)"
echo "server CPU = utime+stime(+reaped children) of the whole server process tree (/proc/PID/stat), HZ=$HZ"
echo
printf '%-38s %8s %8s %8s %8s %10s %8s\n' "flood" attempts "att/s" sessions "cpu s" "cpu s/10k" "ms/conn"

start_mxbait "$DELAY"
floods mxbait "$MX_PID" "$P_MX_SUB" "$P_MX_IMAP"
stop_mxbait

if [ "$REFERENCE" != 0 ]; then
start_reference
floods postfix+dovecot "$PF_PID $DOV_PID" "$P_PF" "$P_DOV_IMAP"
fi
# (Dovecot IMAP alone: its tree is the dovecot PID; Postfix idles meanwhile and is counted
# too, which adds nothing measurable but keeps the rows comparable.)

# No failure delay, no error sleep, no penalty: what the sensor costs at full speed.
start_mxbait 0 "error_sleep_time = 0" "auth_penalty = no"
flood "mxbait submission delay=0" "$MX_PID" --port "$P_MX_SUB" --tls starttls \
	--conns "$CONNS" --duration "$FAST_DURATION" --sources "$SOURCES"
flood "mxbait smtps implicit-TLS delay=0" "$MX_PID" --port "$P_MX_SMTPS" --tls implicit \
	--conns "$CONNS" --duration "$FAST_DURATION" --sources "$SOURCES"
flood "mxbait imap delay=0" "$MX_PID" --proto imap --port "$P_MX_IMAP" --tls starttls \
	--conns "$CONNS" --duration "$FAST_DURATION" --sources "$SOURCES"
stop_mxbait

# The connections alone again with an ECDSA P-256 certificate beside the RSA one
# (tls_ecdsa = yes, off by default for the persona): the handshake's cost when the client
# offers ECDSA, as Python's ssl (OpenSSL's defaults) does.
start_mxbait "$DELAY" "tls_ecdsa = yes"
flood "mxbait submission conns tls_ecdsa" "$MX_PID" --port "$P_MX_SUB" --tls starttls \
	--per-session 0 --conns "$CONNS" --duration "$CONN_DURATION" --sources "$SOURCES"
flood "mxbait imap conns tls_ecdsa" "$MX_PID" --proto imap --port "$P_MX_IMAP" \
	--tls starttls --per-session 0 --conns "$CONNS" --duration "$CONN_DURATION" \
	--sources "$SOURCES"
stop_mxbait

echo
$PY - "$T/results" <<'PYEOF'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, att, sess, cpu = line.rstrip("\n").split("\t")
    rows[label] = (int(att), int(sess), float(cpu))
def per10k(label):
    a, s, c = rows[label]
    return c / a * 10000 if a else None
def per_conn(label):
    a, s, c = rows[label]
    return c / s if s else None
def show(kind):
    mx, ref = "mxbait %s STARTTLS" % kind, "postfix+dovecot %s STARTTLS" % kind
    if mx not in rows or ref not in rows:
        return
    m, r = per10k(mx), per10k(ref)
    print("%s, CPU per failed attempt, mxbait / Postfix+Dovecot:" % kind)
    if m and r:
        print("  measured (same flood, same %d connections): %.2f / %.2f s per 10k = 1/%.1f  (aim: 1/50)"
              % (rows[mx][1], m, r, r / m))
    # Split: what a connection costs (TLS handshake, process, banner) and what a guess costs.
    mc, rc = per_conn("mxbait %s connections only" % kind), per_conn("postfix+dovecot %s connections only" % kind)
    if mc and rc:
        print("  per connection (TLS handshake included): %.2f / %.2f ms = 1/%.1f" % (mc * 1e3, rc * 1e3, rc / mc))
        ma = (rows[mx][2] - rows[mx][1] * mc) / rows[mx][0] if rows[mx][0] else 0
        ra = (rows[ref][2] - rows[ref][1] * rc) / rows[ref][0] if rows[ref][0] else 0
        if ma > 0 and ra > 0:
            print("  per guess beyond the connection: %.3f / %.3f ms = 1/%.1f" % (ma * 1e3, ra * 1e3, ra / ma))
        else:
            print("  per guess beyond the connection: %.3f / %.3f ms (below the resolution of this run)" % (ma * 1e3, ra * 1e3))
show("submission")
show("imap")
for label in ("mxbait submission delay=0", "mxbait smtps implicit-TLS delay=0", "mxbait imap delay=0"):
    if label in rows and rows[label][0]:
        a, s, c = rows[label]
        print("%s: %.2f s per 10k failed attempts, %.1f attempts per connection" % (label, c / a * 1e4, a / max(s, 1)))
for kind in ("submission", "imap"):
    rsa, ec = "mxbait %s connections only" % kind, "mxbait %s conns tls_ecdsa" % kind
    if rsa in rows and ec in rows and rows[rsa][1] and rows[ec][1]:
        print("mxbait %s, CPU per connection: RSA-2048 %.2f ms, with tls_ecdsa %.2f ms" %
              (kind, per_conn(rsa) * 1e3, per_conn(ec) * 1e3))
PYEOF

# ---------------------------------------------------------------- hydra, for realism
# hydra's own attack loop (smtp module: EHLO, STARTTLS, AUTH PLAIN; it reconnects as it
# likes) from one address, bounded by timeout.  Rate = its "[ATTEMPT]" lines (-V) minus
# the ones still in flight when it was stopped, over the time it ran.
if [ "$REFERENCE" != 0 ] && command -v hydra >/dev/null; then
	$PY -c "
import os
print('\n'.join('hy-' + os.urandom(5).hex() for _ in range(20000)))" >"$T/hydra-words"
	echo
	echo "hydra -t 16 (smtp module, STARTTLS, AUTH PLAIN, random passwords, ${HYDRA_SECONDS}s each, from 127.0.0.1):"
	hydra_run() { # NAME PORT
		t0=$(date +%s.%N)
		timeout "$HYDRA_SECONDS" hydra -l info@example.test -P "$T/hydra-words" -t 16 -s "$2" \
			-m "TLS PLAIN" -I -V smtp://127.0.0.1 >"$T/hydra-$1.log" 2>&1
		t1=$(date +%s.%N)
		n=$(grep -c '^\[ATTEMPT\]' "$T/hydra-$1.log")
		found=$(grep -c 'password:' "$T/hydra-$1.log")
		echo "$t0 $t1 $n $found" | awk -v name="$1" '{
			a = $3 - 16; if (a < 0) a = 0
			printf "  %-16s %6d attempts in %5.1f s: %6.1f attempts/s (credentials found: %d)\n",
				name, a, $2 - $1, a / ($2 - $1), $4 }'
	}
	start_mxbait "$DELAY"
	hydra_run mxbait "$P_MX_SUB"
	stop_mxbait
	hydra_run postfix+dovecot "$P_PF"
fi
exit 0
