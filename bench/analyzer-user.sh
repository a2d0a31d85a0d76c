#!/bin/sh
# analyzer-user: how long `mxbait serve` takes to analyse the analyzer corpus
# (tests/analyze: labeled, independent, attachments; mbox-framed files left out) put in
# spool/new before it starts, without analyzer_user (the analyzer child parses) and with
# it (a worker as another account parses, the child stores), ROUNDS times each; and
# whether both give the same row counts.  Needs root (user = nobody, and a temporary
# account made with useradd and removed afterwards).  Not a test.
#   bench/analyzer-user.sh [BUILD_DIR] [ROUNDS]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
ROUNDS=${2:-3}
mxbait=$(cd "$BUILD" && pwd)/src/mxbait
[ -x "$mxbait" ] || { echo "analyzer-user: no $mxbait (build first)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "analyzer-user: needs root" >&2; exit 2; }
acct=mxbb$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$acct"
tmp=$(mktemp -d /tmp/mxbait-anbench-XXXXXX)
chmod 755 "$tmp"
trap 'userdel "$acct" 2>/dev/null; rm -rf "$tmp"' EXIT
q() { sqlite3 "file:$tmp/data/analysis.db?mode=ro" "$1" 2>/dev/null || echo 0; }
run() { # $1: extra configuration line
	rm -rf "$tmp/data"
	mkdir -p "$tmp/data/spool/new"
	n=0
	for f in "$here"/../tests/analyze/labeled/*.eml "$here"/../tests/analyze/independent/*.eml \
		 "$here"/../tests/analyze/attachments/*.eml; do
		head -c5 "$f" | grep -q '^From ' && continue
		n=$((n + 1))
		cp "$f" "$tmp/data/spool/new/17000000$n.M${n}P1.corpus"
	done
	port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	cat > "$tmp/c.conf" <<CONF
data_dir = $tmp/data
user = nobody
$1
smtp_listen = 127.0.0.1:$port
submission_listen =
smtps_listen =
imap_listen =
imaps_listen =
pop3_listen =
pop3s_listen =
web_listen =
hostname = mail.example.test
CONF
	"$mxbait" serve -c "$tmp/c.conf" > "$tmp/serve.log" 2>&1 &
	pid=$!
	t0=$(date +%s.%N)
	while [ "$(q 'SELECT count(*) FROM spool_done')" -lt "$n" ]; do
		kill -0 $pid 2>/dev/null || { cat "$tmp/serve.log" >&2; exit 1; }
		sleep 0.1
	done
	t1=$(date +%s.%N)
	printf '%s: %d messages in %.2f s from the start of serve; rows: messages %s links %s attachments %s findings %s\n' \
		"${1:-without analyzer_user}" "$n" "$(echo "$t1 - $t0" | bc)" \
		"$(q 'SELECT count(*) FROM messages')" "$(q 'SELECT count(*) FROM links')" \
		"$(q 'SELECT count(*) FROM attachments')" "$(q 'SELECT count(*) FROM findings')"
	kill $pid
	wait $pid || true
}
i=0
while [ $i -lt "$ROUNDS" ]; do
	run ""
	run "analyzer_user = $acct"
	i=$((i + 1))
done
