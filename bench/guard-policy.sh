#!/bin/bash
# guard-policy: mxbait's Dovecot auth-policy server on one core: requests/s and latency.
#
#   bench/guard-policy.sh [BUILD_DIR]    (default: build; a sanitizer build is refused and
#                                         bench/out/build is built instead)
#
# mxbait serve runs pinned to CPU 0 (taskset: every thread, the event store's writer
# included, shares that one core) with dovecot_policy_listen on loopback; the load
# generator bench/guard-policy-load.c (built here with cc -O2) runs pinned to CPU 1 with
# CONNS keep-alive connections (default 16, Dovecot's http client keeps several), half
# command=allow and half command=report, sources rotating over 65,536 addresses.  Runs:
#   1. open loop at RATE req/s (default 5000) for SECONDS (default 20): the latency a
#      Dovecot sees at that rate (its auth_policy_server_timeout_msecs is 2000)
#   2. closed loop for SECONDS: the most the server answers on one core
# Each request is also an event (guard_auth) written to mxbait.db and events.jsonl, and
# feeds the detection windows: what is measured is the whole path.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${1:-build}
RATE=${RATE:-5000}
SECONDS_RUN=${SECONDS_RUN:-20}
CONNS=${CONNS:-16}
[ "$(nproc)" -ge 2 ] || { echo "guard-policy: needs 2 CPUs (server and load apart)" >&2; exit 1; }
if [ ! -x "$BUILD/src/mxbait" ] || grep -q __asan_init "$BUILD/src/mxbait"; then
	echo "${0##*/}: $BUILD/src/mxbait missing or a sanitizer build: using bench/out/build" >&2
	BUILD=$root/bench/out/build
	{ [ -f "$BUILD/build.ninja" ] || meson setup "$BUILD" --buildtype=debugoptimized \
		-Db_sanitize=none >/dev/null; } && ninja -C "$BUILD" src/mxbait >/dev/null ||
		{ echo "build failed" >&2; exit 1; }
fi
MXBAIT=$(cd "$BUILD/src" && pwd)/mxbait
T=$(mktemp -d /tmp/mxbait-guardpolicy.XXXXXX)
MX_PID=""
cleanup() {
	[ -n "$MX_PID" ] && kill "$MX_PID" 2>/dev/null && wait "$MX_PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cc -O2 -Wall -Werror -o "$T/load" "$here/guard-policy-load.c" || exit 1
set -- $(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')
P_POLICY=$1 P_SMTP=$2
cat >"$T/mxbait.conf" <<CONF
smtp_listen = 127.0.0.1:$P_SMTP
submission_listen =
smtps_listen =
imap_listen =
imaps_listen =
pop3_listen =
pop3s_listen =
web_listen =
data_dir = $T/data
analyzer = no
dovecot_policy_listen = 127.0.0.1:$P_POLICY
dovecot_policy_api_key = bench-key
dovecot_policy_hash_nonce = bench-nonce
trusted_networks = 192.0.2.250/32
CONF
taskset -c 0 "$MXBAIT" serve -c "$T/mxbait.conf" >"$T/mxbait.log" 2>&1 &
MX_PID=$!
for _ in $(seq 100); do
	grep -q "guard ready" "$T/mxbait.log" && break
	sleep 0.1
done
echo "guard-policy: mxbait $("$MXBAIT" --version 2>/dev/null | head -1) on CPU 0, load on CPU 1, $CONNS connections"
HZ=$(getconf CLK_TCK)
cpu() { awk '{print $14+$15}' /proc/$MX_PID/stat; }
# One run; prints the generator's JSON and the server's CPU per request (all threads):
# the figure that does not depend on what else the shared machine runs.
run() {
	c0=$(cpu)
	out=$(taskset -c 1 "$T/load" 127.0.0.1 "$P_POLICY" bench-key "$CONNS" "$SECONDS_RUN" "$1")
	c1=$(cpu)
	echo "$out"
	echo "$out" | /usr/bin/python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
cpu = ($c1 - $c0) / $HZ
if r['requests']:
    us = cpu / r['requests'] * 1e6
    print('  server CPU %.2f s for %d requests: %.1f us per request, %.0f req/s per CPU-second' % (cpu, r['requests'], us, 1e6 / us))"
}
echo "machine load now: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (figures below share them)"
echo "open loop, $RATE req/s for ${SECONDS_RUN}s:"
run "$RATE"
echo "closed loop (as fast as answered) for ${SECONDS_RUN}s:"
run 0
echo "events written: $(wc -l <"$T/data/events.jsonl" 2>/dev/null || echo 0)"
