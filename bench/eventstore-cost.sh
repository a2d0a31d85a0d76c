#!/bin/bash
# eventstore-cost: what the event store costs (issue 8 item 6), three ways:
#   1. eventstore-bench (bench/eventstore-bench.c) built against SRC and BUILD: the
#      writer thread's CPU per event, alone (no network): failed guesses (auth events)
#      and whole SMTP sessions (6 events each), data dir on tmpfs.
#   2. the daemon under an IMAP LOGIN flood with nothing throttling
#      (auth_failure_delay = 0, auth_penalty = no; bench/auth-flood.py, STARTTLS, CONNS
#      connections from their own 127.0.x.y addresses, DURATION seconds): CPU per failed
#      guess of the whole daemon process, and per thread when the threads are named
#      (mxbait names its event writer "mxb-events").
#   3. capture of 1 KB messages with the data dir on tmpfs against smtp-sink
#      (bench/smtp-throughput.sh with WORKLOADS=1k).
#   4. what a cracked account's durable commit costs (synchronous=FULL: the WAL is
#      fsync'd) against a failure count's (NORMAL), each save committed alone, on a real
#      disk (DISK_DIR, default BUILD/bench-data): eventstore-bench crack / failure.
#
#   bench/eventstore-cost.sh BUILD [SRC]     (SRC: the source tree BUILD was built from;
#                                             default: this one)
# Environment: N (events for 1., default 100000), CONNS (default 20), DURATION (default
# 15), REPEAT (runs of 3., default 3), SKIP (space-separated step numbers to skip),
# DISK_DIR (for 4.).
# Everything runs on loopback with free high ports and tmpfs (/dev/shm) data dirs, and
# is stopped by PID on exit.  Prints figures; not a test.
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${1:-build}" && pwd)
SRC=$(cd "${2:-$here/..}" && pwd)
N=${N:-100000}
CONNS=${CONNS:-20}
DURATION=${DURATION:-15}
REPEAT=${REPEAT:-3}
SKIP=${SKIP:-}
PY=/usr/bin/python3
MXBAIT=$BUILD/src/mxbait

die() { echo "eventstore-cost: $*" >&2; exit 1; }
[ -x "$MXBAIT" ] || die "no $MXBAIT"
grep -q __asan_init "$MXBAIT" && die "$MXBAIT is a sanitizer build: measure a release build"
T=$(mktemp -d /dev/shm/mxb-escost-XXXXXX)
MX_PID=""
cleanup() {
	[ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT INT TERM
skip() { case " $SKIP " in *" $1 "*) return 0 ;; esac; return 1; }

echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "build: $BUILD (source $SRC)"

# ---- 1. the writer alone
if ! skip 1 || ! skip 4; then
	cc -O2 -D_GNU_SOURCE -I "$SRC/src" -o "$T/eventstore-bench" "$here/eventstore-bench.c" \
		"$BUILD/src/store/libmxb_store.a" "$BUILD/src/store/libmxb_event.a" \
		"$BUILD/src/util/libmxb_util.a" -lsqlite3 -lcrypto -levent -levent_pthreads \
		-lpthread || die "cannot build eventstore-bench"
fi
if ! skip 1; then
	for kind in auth session; do
		for r in 1 2 3; do
			mkdir "$T/es"
			"$T/eventstore-bench" "$T/es" "$kind" $([ $kind = auth ] && echo "$N" || echo $((N / 6)))
			rm -rf "$T/es"
		done
	done
fi

# ---- 2. the daemon under an IMAP guessing flood
free_ports() {
	$PY -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}
cpu_ticks() { # PID -> utime+stime of the process (all threads)
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}
thread_ticks() { # PID -> "name ticks" per thread
	for t in /proc/$1/task/*; do
		printf '%s %s\n' "$(cat "$t/comm")" "$(awk '{ print $14 + $15 }' "$t/stat")"
	done | awk '{ c[$1] += $2 } END { for (k in c) print k, c[k] }' | sort
}
HZ=$(getconf CLK_TCK)
if ! skip 2; then
	set -- $(free_ports 2)
	P_SMTP=$1 P_IMAP=$2
	mkdir -p "$T/mx"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=mail.example.test \
		-keyout "$T/key.pem" -out "$T/cert.pem" 2>/dev/null || die "openssl"
	cat >"$T/mx/mxbait.conf" <<EOF
hostname = mail.example.test
local_domains = example.test
smtp_listen = 127.0.0.1:$P_SMTP
submission_listen =
smtps_listen =
imap_listen = 127.0.0.1:$P_IMAP
imaps_listen =
pop3_listen =
pop3s_listen =
data_dir = $T/mx/data
tls_cert_file = $T/cert.pem
tls_key_file = $T/key.pem
auth_failure_delay = 0
auth_penalty = no
error_sleep_time = 0
analyzer = no
max_connections = 20000
max_connections_per_ip = 0
connection_rate_per_ip = 0
max_connections_per_prefix = 0
EOF
	"$MXBAIT" serve -c "$T/mx/mxbait.conf" >"$T/mx/mxbait.log" 2>&1 &
	MX_PID=$!
	for i in $(seq 100); do
		$PY -c "import socket; socket.create_connection(('127.0.0.1', $P_IMAP), 1)" 2>/dev/null && break
		sleep 0.1
	done
	SOURCES=$($PY -c "print(','.join('127.0.%d.%d' % (1 + i // 250, 1 + i % 250) for i in range($CONNS)))")
	sleep 1
	c0=$(cpu_ticks "$MX_PID")
	thread_ticks "$MX_PID" >"$T/threads0"
	$PY "$here/auth-flood.py" --port "$P_IMAP" --proto imap --tls starttls --conns "$CONNS" \
		--duration "$DURATION" --sources "$SOURCES" >"$T/flood.json" || die "auth-flood failed"
	# The writer may still be committing the last batch.
	sleep 1
	c1=$(cpu_ticks "$MX_PID")
	thread_ticks "$MX_PID" >"$T/threads1"
	attempts=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['attempts'])" "$T/flood.json")
	kill "$MX_PID"; wait "$MX_PID" 2>/dev/null; MX_PID=""
	echo
	echo "IMAP LOGIN flood, nothing throttling: $CONNS connections, ${DURATION}s, $attempts failed guesses"
	echo "$attempts $c0 $c1 $HZ" | awk '{ printf "daemon CPU %.2f s: %.1f us per failed guess\n", ($3 - $2) / $4, ($3 - $2) / $4 / $1 * 1e6 }'
	join "$T/threads0" "$T/threads1" | awk -v a="$attempts" -v hz="$HZ" \
		'{ d = $3 - $2; if (d > 0) printf "  thread %-12s %.2f s  %.1f us per guess\n", $1, d / hz, d / hz / a * 1e6 }'
fi

# ---- 3. capture on tmpfs against smtp-sink
if ! skip 3; then
	echo
	WORKLOADS=1k REPEAT=$REPEAT BENCH_DIR="$T/tp" sh "$here/smtp-throughput.sh" "$BUILD"
fi

# ---- 4. a crack's durable commit, on a real disk
if ! skip 4; then
	DISK_DIR=${DISK_DIR:-$BUILD/bench-data}
	mkdir -p "$DISK_DIR"
	D=$(mktemp -d "$DISK_DIR/escost-XXXXXX")
	echo
	echo "account saves committed one by one on $(df -T "$D" | awk 'NR==2 {print $2 " on " $1}'):"
	for kind in failure crack failure crack; do
		mkdir "$D/es"
		"$T/eventstore-bench" "$D/es" "$kind" 200
		rm -rf "$D/es"
	done
	rm -rf "$D"
fi
