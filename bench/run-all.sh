#!/bin/sh
# run-all: every benchmark, one after the other (`make bench`).  Prints figures; not a test.
#   bench/run-all.sh [BUILD_DIR]     (default: build, the release-ish build of `make build`)
set -u
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
echo "machine: $(nproc) CPU(s), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "kernel:  $(uname -r)"
status=0
sh "$here/smtp-throughput.sh" "$BUILD" || status=1
sh "$here/analyze-throughput.sh" "$BUILD" || status=1
/usr/bin/python3 "$here/analyze-quality.py" "$BUILD" || status=1
# AUTH flood vs a private Postfix + Dovecot (needs root: they run as their own users),
# and memory with 10,000 idle connections.
bash "$here/auth-flood.sh" "$BUILD" || status=1
bash "$here/idle-conns.sh" "$BUILD" || status=1
# Issue 7: the deception table under floods and collisions, a start with 100,000 saved
# accounts, IMAP APPEND + COPY memory.
sh "$here/deception-table.sh" || status=1
/usr/bin/python3 "$here/deception-restart.py" "$BUILD" || status=1
/usr/bin/python3 "$here/imap-amplification.py" "$BUILD" || status=1
# The guard: the Dovecot policy server on one core, the log watch on a 1 GB log beside
# fail2ban-regex.
bash "$here/guard-policy.sh" "$BUILD" || status=1
bash "$here/guard-logwatch.sh" "$BUILD" || status=1
# The web server: API latency with 1 M events, the loop's latency while it is polled.
/usr/bin/python3 "$here/web-api.py" "$BUILD" || status=1
# Exports of 1M indicators per format, and the reporter's outbox drain (local receivers).
sh "$here/export-1m.sh" "$BUILD" || status=1
/usr/bin/python3 "$here/outbox-throughput.py" "$BUILD" || status=1
# Federation and the hub: feed verification, hub ingest from 10 sensors (a private
# PostgreSQL 15), the sensor's queue while the hub is down (10 minutes).
sh "$here/feed-verify.sh" "$BUILD" || status=1
/usr/bin/python3 "$here/hub-ingest.py" "$BUILD" || status=1
/usr/bin/python3 "$here/hub-queue.py" "$BUILD" || status=1
exit $status
