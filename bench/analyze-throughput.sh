#!/bin/sh
# analyze-throughput: full analysis speed (MB/s per core) of `mxbait analyze` over every
# folder of ../shared/corpus, against the peer: the same files through Python's `email`
# package with a regex URL extractor (bench/analyze-peer.py, the Python honeypots'
# approach).  Prints both figures and the ratio.  Not a test.
#   bench/analyze-throughput.sh [BUILD_DIR] [ROUNDS]
# The corpus is read in place (phishing-pot is CC BY-NC: never copied).  Output goes to
# /dev/null, so the JSON rendering is included but not the terminal.  MB/s per core is
# bytes / (user + system CPU seconds): one process, one core.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
BUILD=${1:-build}
ROUNDS=${2:-3}
corpus=${MXB_CORPUS:-$here/../../shared/corpus}
[ -d "$corpus" ] || corpus=/work/shared/corpus
mxbait=$BUILD/src/mxbait
[ -x "$mxbait" ] || { echo "analyze-throughput: no $mxbait (build first)" >&2; exit 2; }
dirs="$corpus/phishing-pot $corpus/rspamd-test-messages $corpus/spamassassin-test-data $corpus/sisimai-arf"
bytes=$(find $dirs -type f ! -name README.md ! -name SHA256SUMS -printf '%s\n' | awk '{s+=$1} END {print s}')
msgs=$(find $dirs -type f ! -name README.md ! -name SHA256SUMS | wc -l)

# best of ROUNDS, CPU seconds (user+sys) of the child, via /usr/bin/time or bash times
cpu_of() {
	best=""
	i=0
	while [ $i -lt "$ROUNDS" ]; do
		/usr/bin/time -o "$tf" -f '%U %S' "$@" >/dev/null 2>&1
		t=$(tail -1 "$tf" | awk '{print $1+$2}')
		if [ -z "$best" ] || awk "BEGIN{exit !($t < $best)}"; then best=$t; fi
		i=$((i + 1))
	done
	echo "$best"
}
if [ ! -x /usr/bin/time ]; then
	echo "analyze-throughput: needs /usr/bin/time (Debian package 'time')" >&2
	exit 2
fi
files=$(find $dirs -type f ! -name README.md ! -name SHA256SUMS | sort)
list=$(mktemp)
tf=$(mktemp)
trap 'rm -f "$list" "$tf"' EXIT
echo "$files" > "$list"
c_cpu=$(cpu_of sh -c "xargs '$mxbait' analyze < '$list'")
p_cpu=$(cpu_of sh -c "xargs /usr/bin/python3 '$here/analyze-peer.py' < '$list'")
# The floor under mxbait's time: GMime parse + decode alone, then + libxml2's HTML parser
# over the HTML parts (bench/analyze-ceiling.c, built here with cc when pkg-config finds
# them).  mxbait no longer uses libxml2's parser (issue 12: htmltok.c); the second line
# stays as the measure of what it would cost.
ceil_bin=$(mktemp)
trap 'rm -f "$list" "$tf" "$ceil_bin"' EXIT
g_cpu="" h_cpu=""
if cc -O2 -o "$ceil_bin" "$here/analyze-ceiling.c" \
	$(pkg-config --cflags --libs gmime-3.0 libxml-2.0 2>/dev/null) 2>/dev/null; then
	g_cpu=$(cpu_of sh -c "xargs '$ceil_bin' 0 < '$list'")
	h_cpu=$(cpu_of sh -c "xargs '$ceil_bin' 1 < '$list'")
fi
awk -v b="$bytes" -v m="$msgs" -v c="$c_cpu" -v p="$p_cpu" -v g="$g_cpu" -v h="$h_cpu" 'BEGIN {
	printf "analyze: corpus %d messages, %.1f MB (all four folders of shared/corpus)\n", m, b/1e6
	printf "analyze: mxbait analyze        %6.2f s CPU  %7.1f MB/s per core  %7.0f msg/s\n", c, b/1e6/c, m/c
	printf "analyze: python email + regex  %6.2f s CPU  %7.1f MB/s per core  %7.0f msg/s\n", p, b/1e6/p, m/p
	printf "analyze: ratio mxbait/python   %.1fx\n", p/c
	if (g != "" && g > 0 && h > 0) {
		printf "analyze: ceiling, GMime parse+decode only        %6.2f s CPU  %7.1f MB/s per core\n", g, b/1e6/g
		printf "analyze: ceiling, + libxml2 SAX over HTML parts  %6.2f s CPU  %7.1f MB/s per core\n", h, b/1e6/h
	}
}'
