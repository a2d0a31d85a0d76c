#!/bin/bash
# flood-syscalls: what one unthrottled IMAP flood costs the daemon, counted by the kernel:
# CPU time (perf's task-clock of every thread of `mxbait serve`; the analyzer child is a
# process of its own and not counted) and the system calls of the network loop
# (epoll_ctl, epoll_wait, read/readv/recvfrom, write/writev/sendto).
#
#   bench/flood-syscalls.sh MXBAIT_BINARY
#
# Environment: DUR (seconds, default 10), FLOODARGS (more bench/auth-flood.py options, e.g.
# "--per-session 0" for connections without guesses), EXTRA (one more mxbait.conf line,
# e.g. "tls_ecdsa = yes").  100 connections from 127.0.0.1-100 (STARTTLS, then LOGIN with
# random passwords as fast as answered), auth_failure_delay = 0, error_sleep_time = 0,
# auth_penalty = no.  Needs perf with the syscalls tracepoints (root).  Everything
# started here is stopped by PID.
set -u
BIN=${1:?usage: $0 MXBAIT_BINARY}
PY=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
T=$(mktemp -d /tmp/mxbait-syscalls.XXXXXX)
PID="" PERF=""
cleanup() {
	[ -n "$PERF" ] && kill -INT "$PERF" 2>/dev/null && wait "$PERF" 2>/dev/null
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
read -r P1 P2 <<<"$($PY -c "
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(('127.0.0.1', 0))
print(*[s.getsockname()[1] for s in ss])")"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 30 \
	-subj /CN=mail.example.test >/dev/null 2>&1 || { echo "openssl req failed" >&2; exit 1; }
cat >"$T/mx.conf" <<EOC
hostname = mail.example.test
local_domains = example.test
smtp_listen =
submission_listen = 127.0.0.1:$P1
smtps_listen =
imap_listen = 127.0.0.1:$P2
imaps_listen =
pop3_listen =
pop3s_listen =
web_listen =
data_dir = $T/data
tls_cert_file = $T/cert.pem
tls_key_file = $T/key.pem
auth_failure_delay = 0
error_sleep_time = 0
auth_penalty = no
max_connections = 20000
max_connections_per_ip = 0
connection_rate_per_ip = 0
max_connections_per_prefix = 0
${EXTRA:-}
EOC
"$BIN" serve -c "$T/mx.conf" >"$T/log" 2>&1 &
PID=$!
for _ in $(seq 50); do
	$PY -c "import socket; socket.create_connection(('127.0.0.1', $P2), 0.2)" 2>/dev/null && break
	sleep 0.1
done
SOURCES=$($PY -c "print(','.join('127.0.%d.%d' % (1 + i // 250, 1 + i % 250) for i in range(100)))")
perf stat -e 'task-clock,syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_read,syscalls:sys_enter_readv,syscalls:sys_enter_recvfrom,syscalls:sys_enter_write,syscalls:sys_enter_writev,syscalls:sys_enter_sendto' \
	-p "$PID" -o "$T/perf.txt" &
PERF=$!
sleep 0.5
# shellcheck disable=SC2086
$PY "$here/auth-flood.py" --label x --proto imap --port "$P2" --tls starttls --conns 100 \
	--duration "${DUR:-10}" ${FLOODARGS:-} --sources "$SOURCES" >"$T/flood.json" || exit 1
kill -INT "$PERF"
wait "$PERF"
PERF=""
$PY - "$T/flood.json" "$T/perf.txt" <<'PYEOF'
import json, re, sys
r = json.load(open(sys.argv[1]))
n = r["attempts"] or r["sessions"]
unit = "guess" if r["attempts"] else "connection"
print("%d failed guesses, %d connections; per %s:" % (r["attempts"], r["sessions"], unit))
for line in open(sys.argv[2]):
    m = re.match(r"\s*([\d.,]+)\s+(msec task-clock|syscalls:sys_enter_(\w+))", line)
    if not m:
        continue
    v = float(m.group(1).replace(",", ""))
    if m.group(2).startswith("msec"):
        print("  CPU %.1f us" % (v * 1000 / n))
    else:
        print("  %-11s %.3f" % (m.group(3), v / n))
PYEOF
