#!/bin/sh
# smtp-throughput: capture throughput of `mxbait serve` against Postfix's smtp-sink,
# measured in the same run with the same client (Postfix's smtp-source).
#
#   bench/smtp-throughput.sh [BUILD_DIR]          (default: build; uses BUILD_DIR/src/mxbait)
#
# Environment: MSGS (messages per workload, default 2000), SESSIONS (parallel
# sessions, default 20), REPEAT (runs per workload and server, the median is shown,
# default 3), BENCH_DIR (where the daemon's data dir goes; default
# BUILD_DIR/bench-data, i.e. the disk the build lives on, not a tmpfs), WORKLOADS
# (default "1k 100k churn").
#
# Workloads, each against smtp-sink (a discarding sink: the ceiling) and then mxbait
# (every message durably captured: write, fsync, rename, directory fsync):
#   1k     SESSIONS sessions, MSGS messages of 1 KB, connections reused (smtp-source -d)
#   100k   same with 100 KB messages
#   churn  one message (1 KB) per connection: connect, EHLO, MAIL, RCPT, DATA, QUIT
# Prints messages/s for each and the mxbait/smtp-sink ratio, and checks that mxbait's
# spool/new gained exactly MSGS files per workload.  Only loopback; both servers are
# started here and stopped by PID at the end.  Prints figures; it is not a test.
set -u

BUILD=${1:-build}
MSGS=${MSGS:-2000}
SESSIONS=${SESSIONS:-20}
REPEAT=${REPEAT:-3}
WORKLOADS=${WORKLOADS:-1k 100k churn}
MXBAIT=$BUILD/src/mxbait
SOURCE=/usr/sbin/smtp-source
SINK=/usr/sbin/smtp-sink

die() { echo "smtp-throughput: $*" >&2; exit 1; }
[ -x "$MXBAIT" ] || die "no $MXBAIT (build first: make build)"
[ -x "$SOURCE" ] && [ -x "$SINK" ] || die "smtp-source/smtp-sink missing (Debian package postfix)"

BENCH_DIR=${BENCH_DIR:-$BUILD/bench-data}
rm -rf "$BENCH_DIR"
mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)

# Free loopback ports (asked of the kernel, not guessed).
ports=$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
set -- $ports
P_SMTP=$1 P_SUB=$2 P_SMTPS=$3 P_SINK=$4

cat >"$BENCH_DIR/mxbait.conf" <<EOF
# bench/smtp-throughput.sh: limits opened up for a load test from one address
hostname = mail.example.test
local_domains = example.test
smtp_listen = 127.0.0.1:$P_SMTP
submission_listen = 127.0.0.1:$P_SUB
smtps_listen = 127.0.0.1:$P_SMTPS
imap_listen =
imaps_listen =
pop3_listen =
pop3s_listen =
data_dir = $BENCH_DIR/data
max_connections = 10000
max_connections_per_ip = 0
connection_rate_per_ip = 0
spool_budget = 8g
web_listen =
EOF

MX_PID=""
SINK_PID=""
cleanup() {
	[ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null && wait "$SINK_PID" 2>/dev/null
}
trap cleanup EXIT INT TERM

"$MXBAIT" serve -c "$BENCH_DIR/mxbait.conf" >"$BENCH_DIR/mxbait.log" 2>&1 &
MX_PID=$!
sink_user=""
[ "$(id -u)" -eq 0 ] && sink_user="-u nobody"
# smtp-sink: 1024-deep listen queue; it discards what it receives.
$SINK $sink_user 127.0.0.1:$P_SINK 1024 >"$BENCH_DIR/sink.log" 2>&1 &
SINK_PID=$!

wait_port() {
	i=0
	while ! /usr/bin/python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), 1)" 2>/dev/null; do
		i=$((i + 1))
		[ $i -gt 100 ] && die "nothing listens on 127.0.0.1:$1 (see $BENCH_DIR/*.log)"
		sleep 0.1
	done
}
wait_port "$P_SMTP"
wait_port "$P_SINK"

spool_count() {
	find "$BENCH_DIR/data/spool/new" -type f 2>/dev/null | wc -l
}

# run_one PORT ARGS... -> prints elapsed seconds; fails loudly when smtp-source does
run_one() {
	port=$1
	shift
	t0=$(date +%s.%N)
	if ! $SOURCE "$@" -f bench@example.net -t alice@example.test -M client.example.net \
		"127.0.0.1:$port" >"$BENCH_DIR/source.log" 2>&1; then
		echo "smtp-source failed against port $port:" >&2
		tail -5 "$BENCH_DIR/source.log" >&2
		echo FAIL
		return
	fi
	t1=$(date +%s.%N)
	echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}

rate() { # msgs secs
	echo "$1 $2" | awk '{ if ($2 > 0) printf "%.0f", $1 / $2; else print "n/a" }'
}

printf '\nsmtp-source -> smtp-sink vs mxbait serve (%s), %s messages per run, %s sessions, median of %s runs\n' \
	"$MXBAIT" "$MSGS" "$SESSIONS" "$REPEAT"
printf 'mxbait data dir: %s (%s)\n\n' "$BENCH_DIR/data" "$(df -T "$BENCH_DIR" | awk 'NR==2 {print $2 " on " $1}')"
printf '%-8s %12s %12s %8s  %s\n' workload "sink msg/s" "mxbait msg/s" ratio "captured"

median() { # numbers on stdin -> the median (the lower one of the middle two)
	sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "FAIL" }'
}

status=0
for w in $WORKLOADS; do
	case $w in
	1k) args="-d -s $SESSIONS -m $MSGS -l 1024" ;;
	100k) args="-d -s $SESSIONS -m $MSGS -l 102400" ;;
	churn) args="-s $SESSIONS -m $MSGS -l 1024" ;;
	esac
	: >"$BENCH_DIR/t.sink"
	: >"$BENCH_DIR/t.mx"
	got=0
	failed=0
	r=0
	# Alternate sink and mxbait REPEAT times: both see the same disk/CPU weather.
	while [ $r -lt "$REPEAT" ]; do
		r=$((r + 1))
		# shellcheck disable=SC2086
		ts=$(run_one "$P_SINK" $args)
		before=$(spool_count)
		# shellcheck disable=SC2086
		tm=$(run_one "$P_SMTP" $args)
		# Capture is durable before the 250 reply, so the files are already there.
		after=$(spool_count)
		got=$((got + after - before))
		[ "$ts" = FAIL ] || [ "$tm" = FAIL ] && failed=1
		[ "$ts" = FAIL ] || echo "$ts" >>"$BENCH_DIR/t.sink"
		[ "$tm" = FAIL ] || echo "$tm" >>"$BENCH_DIR/t.mx"
	done
	ts=$(median <"$BENCH_DIR/t.sink")
	tm=$(median <"$BENCH_DIR/t.mx")
	want=$((MSGS * REPEAT))
	ok="$got/$want"
	[ "$got" -eq "$want" ] || { ok="$ok MISSING"; status=1; }
	if [ $failed -eq 1 ] || [ "$ts" = FAIL ] || [ "$tm" = FAIL ]; then
		printf '%-8s %12s %12s %8s  %s  (a client run failed)\n' "$w" "$ts" "$tm" "-" "$ok"
		status=1
		continue
	fi
	rs=$(rate "$MSGS" "$ts")
	rm=$(rate "$MSGS" "$tm")
	ratio=$(echo "$rm $rs" | awk '{ if ($2 > 0) printf "%.2f", $1 / $2; else print "n/a" }')
	printf '%-8s %12s %12s %8s  %s   (median of %s: sink %ss, mxbait %ss; mxbait runs: %s)\n' \
		"$w" "$rs" "$rm" "$ratio" "$ok" "$REPEAT" "$ts" "$tm" "$(tr '\n' ' ' <"$BENCH_DIR/t.mx")"
done
echo
echo "client command: $SOURCE <-d> -s $SESSIONS -m $MSGS -l <1024|102400> -f bench@example.net -t alice@example.test -M client.example.net 127.0.0.1:PORT"
exit $status
