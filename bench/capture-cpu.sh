#!/bin/bash
# capture-cpu: the daemon's CPU per captured 1 KB message, per thread, with the data dir
# on tmpfs (so fsync costs nothing): Postfix's smtp-source -d -s 20 -m MSGS -l 1024
# against `mxbait serve` (analyzer off), utime+stime of each thread from /proc before and
# after.  mxbait names its threads (mxb-events: the event writer, mxb-spool and
# mxb-fsync: the spool's commit threads, mxb-maint: storage upkeep; the event loop keeps
# the process name); an older build shows one line.
#
#   bench/capture-cpu.sh BUILD [MSGS]       (MSGS default 4000; WEB=0 for a build
#                                            without the web_listen key)
# Only loopback, free high ports; the daemon is stopped by PID.  Prints figures; not a test.
set -u
BUILD=${1:-build}
MSGS=${2:-4000}
HZ=$(getconf CLK_TCK)
[ -x "$BUILD/src/mxbait" ] || { echo "no $BUILD/src/mxbait" >&2; exit 1; }
T=$(mktemp -d /dev/shm/mxb-capcpu-XXXXXX)
P=""
trap '[ -n "$P" ] && kill $P 2>/dev/null; rm -rf "$T"' EXIT INT TERM
set -- $(/usr/bin/python3 -c 'import socket
ss = [socket.socket() for _ in range(3)]
[s.bind(("127.0.0.1", 0)) for s in ss]
print(" ".join(str(s.getsockname()[1]) for s in ss))')
cat >"$T/c.conf" <<EOC
hostname = mail.example.test
local_domains = example.test
smtp_listen = 127.0.0.1:$1
submission_listen = 127.0.0.1:$2
smtps_listen = 127.0.0.1:$3
imap_listen =
imaps_listen =
pop3_listen =
pop3s_listen =
data_dir = $T/data
max_connections = 10000
max_connections_per_ip = 0
connection_rate_per_ip = 0
max_connections_per_prefix = 0
spool_budget = 8g
analyzer = no
EOC
[ "${WEB:-1}" = 1 ] && echo "web_listen =" >>"$T/c.conf"
"$BUILD/src/mxbait" serve -c "$T/c.conf" >"$T/log" 2>&1 &
P=$!
for i in $(seq 300); do grep -q " ready: " "$T/log" && break; sleep 0.1; done
thr() {
	for t in /proc/$P/task/*; do echo "$(cat "$t/comm") $(awk '{print $14 + $15}' "$t/stat")"; done |
		awk '{ c[$1] += $2 } END { for (k in c) print k, c[k] }' | sort
}
thr >"$T/t0"
/usr/sbin/smtp-source -d -s 20 -m "$MSGS" -l 1024 -f b@example.net -t alice@example.test \
	-M client.example.net "127.0.0.1:$1" || exit 1
sleep 1 # the writer's last batch
thr >"$T/t1"
n=$(ls "$T/data/spool/new" | wc -l)
echo "$BUILD: $n messages captured, CPU per message (tmpfs, load $(cut -d' ' -f1 /proc/loadavg)):"
join "$T/t0" "$T/t1" | awk -v m="$n" -v hz="$HZ" \
	'{ d = ($3 - $2) / hz / m * 1e6; t += d; printf "  %-11s %6.1f us\n", $1, d } END { printf "  %-11s %6.1f us\n", "total", t }'
