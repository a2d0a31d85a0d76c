#!/bin/bash
# idle-conns: mxbait's memory with 10,000 idle connections held (aim: RSS <= 64 MB).
#
#   bench/idle-conns.sh [BUILD_DIR]     (default: build, the release build of `make build`;
#                                        missing or sanitized: bench/out/build is built here)
#
# Environment: COUNT (connections, default 10000), SETTLE (seconds held before reading
# /proc, default 5), KINDS (default "smtp imap smtps"), KEEP=1 keeps the temp dir.
# For each listener kind (smtp: plain SMTP on the MX role; imap: plain IMAP; smtps:
# implicit TLS, so each connection also holds a finished TLS session) it starts a fresh
# `mxbait serve` with max_connections = 20000 and the per-IP/per-prefix/rate limits off,
# opens COUNT connections from 40 loopback addresses (bench/idle-conns.py), waits for
# each greeting, sends nothing, and prints VmRSS/VmHWM of the daemon before and with the
# connections held, and how many were still open at the end.  The daemon is stopped by
# PID after each kind, and on exit whatever happens (trap).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${1:-build}
COUNT=${COUNT:-10000}
SETTLE=${SETTLE:-5}
PY=/usr/bin/python3

die() { echo "idle-conns: $*" >&2; exit 1; }

# File descriptors: COUNT for the daemon, COUNT for the client, each a process of its own.
ulimit -n 30000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((COUNT + 200)) ] ||
	die "open-file limit $(ulimit -n) is below COUNT+200 ($((COUNT + 200))); lower COUNT or raise the hard limit"

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

T=$(mktemp -d /tmp/mxbait-idle.XXXXXX)
MX_PID=""
cleanup() {
	status=$?
	[ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	if [ "${KEEP:-0}" = 1 ] || [ $status -ne 0 ]; then
		echo "idle-conns: logs kept in $T" >&2
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

set -- $($PY -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
P_SMTP=$1 P_SUB=$2 P_SMTPS=$3 P_IMAP=$4
SOURCES=$($PY -c "print(','.join('127.0.2.%d' % i for i in range(1, 41)))")

wait_port() {
	i=0
	while ! $PY -c "import socket; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 150 ] && die "nothing listens on 127.0.0.1:$1 (log: $T/mxbait.log)"
		sleep 0.1
	done
}

cat >"$T/mxbait.conf" <<EOF
# bench/idle-conns.sh: $COUNT idle connections from 40 loopback addresses
hostname = mail.example.test
local_domains = example.test
smtp_listen = 127.0.0.1:$P_SMTP
submission_listen = 127.0.0.1:$P_SUB
smtps_listen = 127.0.0.1:$P_SMTPS
imap_listen = 127.0.0.1:$P_IMAP
imaps_listen =
pop3_listen =
pop3s_listen =
web_listen =
data_dir = $T/data
max_connections = 20000
max_connections_per_ip = 0
connection_rate_per_ip = 0
max_connections_per_prefix = 0
EOF

echo
echo "idle connections: $COUNT held to mxbait serve ($MXBAIT), greeting read, then silence; settle ${SETTLE}s"
printf '%-7s %6s %10s %10s %10s %10s %9s %8s\n' kind held "RSS before" "RSS held" "HWM held" "B/conn" "open s" "children"
for kind in ${KINDS:-smtp imap smtps}; do
	case $kind in
	smtp) port=$P_SMTP ;;
	imap) port=$P_IMAP ;;
	smtps) port=$P_SMTPS ;;
	esac
	"$MXBAIT" serve -c "$T/mxbait.conf" >>"$T/mxbait.log" 2>&1 &
	MX_PID=$!
	wait_port "$P_SMTP"
	sleep 1 # let start-up allocations (event store, TLS context) settle before "before"
	if [ $kind = smtps ]; then
		# The client must finish each TLS handshake: wrap the plain sockets in the client.
		out=$($PY - "$port" "$COUNT" "$MX_PID" "$SOURCES" "$SETTLE" <<'PYEOF'
import json, select, socket, ssl, sys, time, os
port, count, pid, sources, settle = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(","), float(sys.argv[5])
def st(p):
    d = {}
    for line in open("/proc/%d/status" % p):
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            d[k] = int(v.split()[0])
    return d
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
before = st(pid)
socks, bad = [], 0
t0 = time.monotonic()
try:
    for i in range(count):
        s = socket.socket()
        s.settimeout(10)
        s.bind((sources[i % len(sources)], 0))
        s.connect(("127.0.0.1", port))
        s = ctx.wrap_socket(s)
        g = s.recv(4096)
        if not g.startswith(b"220 "):
            bad += 1
        socks.append(s)
    opened = time.monotonic() - t0
    time.sleep(settle)
    after = st(pid)
    p = select.poll()
    for s in socks:
        p.register(s, select.POLLIN)
    held = len(socks) - len(p.poll(0))
finally:
    for s in socks:
        s.close()
print(json.dumps({"held": held, "bad_greetings": bad, "open_seconds": round(opened, 2),
                  "before_kb": before, "after_kb": after, "children_kb": {},
                  "per_conn_bytes": round((after["VmRSS"] - before["VmRSS"]) * 1024 / count)}))
PYEOF
		) || die "client failed ($kind)"
	else
		out=$($PY "$here/idle-conns.py" --label "$kind" --port "$port" --count "$COUNT" \
			--pid "$MX_PID" --sources "$SOURCES" --settle "$SETTLE") || die "client failed ($kind)"
	fi
	echo "$out" >>"$T/idle.jsonl"
	kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	MX_PID=""
	echo "$out" | $PY -c "
import json, sys
r = json.loads(sys.stdin.read())
mb = lambda kb: '%.1f MB' % (kb / 1024)
kids = sum(v.get('VmRSS', 0) for v in r['children_kb'].values())
print('%-7s %6d %10s %10s %10s %10d %9.2f %8s%s' % ('$kind', r['held'], mb(r['before_kb']['VmRSS']),
      mb(r['after_kb']['VmRSS']), mb(r['after_kb']['VmHWM']), r['per_conn_bytes'], r['open_seconds'],
      mb(kids) if r['children_kb'] else '-',
      '' if r['bad_greetings'] == 0 else '  bad greetings: %d' % r['bad_greetings']))
"
done
echo "(RSS: VmRSS of the mxbait serve process; children: RSS of its child processes, e.g. the analyzer; aim: RSS held <= 64 MB)"
exit 0
