#!/bin/sh
# export-1m: `mxbait export` of 1,000,000 indicators in every format (aim: under 2 s for
# the text formats on one core).  Prints one line per format: wall time, CPU time, peak
# RSS, output size, entries.  Not a test.
#   bench/export-1m.sh [BUILD_DIR] [N]
# The intel.db is made directly with SQL (600,000 IPv4 addresses spread over 200,000 /24s
# with their prefixes, 150,000 URLs, 50,000 domains), every row at confidence 80.
set -eu
BUILD=${1:-build}
N=${2:-1000000}
BIN=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/src/mxbait
DIR=$(mktemp -d /tmp/mxbait-bench-export.XXXXXX)
trap 'rm -rf "$DIR"' EXIT INT TERM
"$BIN" indicators -d "$DIR" --no-update >/dev/null
IPS=$((N * 6 / 10)); PFX=$((N / 10)); URLS=$((N * 15 / 100)); DOMS=$((N - IPS - PFX - URLS))
NOW=$(date +%s)000000
sqlite3 "$DIR/intel.db" <<SQL
PRAGMA synchronous=OFF;
BEGIN;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $IPS)
INSERT INTO indicators(kind, value, parent, first_seen_us, last_seen_us, guesses, confidence,
  flags, evidence, updated_us)
SELECT 'ip', printf('%d.%d.%d.%d', 11 + (i / 65536) % 200, (i / 256) % 256, i % 256, 1 + (i / 13107200)),
  printf('%d.%d.%d.0/24', 11 + (i / 65536) % 200, (i / 256) % 256, i % 256),
  $NOW, $NOW, 12, 80, 'guessing', 'session:s' || i, $NOW FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $PFX)
INSERT INTO indicators(kind, value, first_seen_us, last_seen_us, members, confidence, flags,
  evidence, updated_us)
SELECT 'prefix', printf('%d.%d.%d.0/24', 11 + (i / 65536) % 200, (i / 256) % 256, i % 256),
  $NOW, $NOW, 3, 80, 'guessing', '', $NOW FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $URLS)
INSERT INTO indicators(kind, value, parent, first_seen_us, last_seen_us, messages, confidence,
  flags, evidence, updated_us)
SELECT 'url', printf('http://host%d.spam%d.test/path/%d', i, i % 50000, i), printf('spam%d.test', i % 50000),
  $NOW, $NOW, 1, 80, '', 'msg:Q' || i, $NOW FROM n;
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < $DOMS)
INSERT INTO indicators(kind, value, first_seen_us, last_seen_us, messages, confidence, flags,
  evidence, updated_us)
SELECT 'domain', printf('spam%d.test', i), $NOW, $NOW, 2, 80, '', '', $NOW FROM n;
COMMIT;
SQL
echo "export of $(sqlite3 "$DIR/intel.db" 'SELECT count(*) FROM indicators') indicators" \
     "($IPS ip, $PFX prefix, $URLS url, $DOMS domain), $BUILD, one process:"
printf '%-15s %8s %8s %9s %9s  %s\n' format wall_s cpu_s rss_MB out_MB entries
for f in plain csv nft ipset postfix-cidr postfix-access rpz rbldnsd abuseipdb-csv crowdsec stix misp-feed; do
	out="$DIR/out.$f"
	extra=""
	[ "$f" = rbldnsd ] || true
	/usr/bin/time -f '%e %U %S %M' -o "$DIR/time" "$BIN" export -d "$DIR" --no-update \
		--format "$f" --min-confidence 0 -o "$out" 2>"$DIR/err" >/dev/null || {
		echo "$f: failed: $(cat "$DIR/err")"; continue; }
	set -- $(cat "$DIR/time")
	size=$(du -sm "$out" | cut -f1)
	entries=$(grep -o '[0-9]* entries written' "$DIR/err" | cut -d' ' -f1)
	printf '%-15s %8s %8.2f %9.0f %9s  %s\n' "$f" "$1" "$(echo "$2 + $3" | bc)" \
		"$(echo "$4 / 1024" | bc)" "$size" "$entries"
	rm -rf "$out"
done
