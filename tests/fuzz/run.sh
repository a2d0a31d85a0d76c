#!/bin/sh
# run.sh: run one libFuzzer target for a bounded time; used by tests/run-all.py.
#
#   tests/fuzz/run.sh FUZZ_BUILD TARGET SECONDS
#
# Promises: the seed corpus tests/fuzz/corpus/TARGET/ is never modified (the fuzzer
# works on a copy in a temporary directory, removed afterwards); the dictionary is the
# first of tests/fuzz/TARGET.dict, tests/fuzz/<TARGET without fuzz_>.dict,
# tests/fuzz/<first word of that>.dict that exists; the run stops by itself after
# SECONDS (plus a hard wall-clock bound).  Exit 0 when the run ended cleanly, 1 on a
# crash, leak, timeout or out-of-memory (the reproducer is kept under
# FUZZ_BUILD/fuzz-artifacts/TARGET/ and its path printed), 2 on a usage error.
set -u

if [ $# -ne 3 ]; then
	echo "usage: $0 FUZZ_BUILD TARGET SECONDS" >&2
	exit 2
fi
build=$1
target=$2
secs=$3
here=$(cd "$(dirname "$0")" && pwd)

bin=$build/tests/fuzz/$target
if [ ! -x "$bin" ]; then
	echo "run.sh: no fuzzer binary $bin" >&2
	exit 2
fi
case $secs in
''|*[!0-9]*) echo "run.sh: SECONDS must be a number" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/mxbait-fuzz-$target.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus"
seeds=0
if [ -d "$here/corpus/$target" ]; then
	cp -R "$here/corpus/$target/." "$work/corpus/"
	seeds=$(find "$work/corpus" -type f | wc -l)
fi

short=${target#fuzz_}
first=${short%%_*}
dict=""
for d in "$here/$target.dict" "$here/$short.dict" "$here/$first.dict"; do
	if [ -f "$d" ]; then
		dict=$d
		break
	fi
done

art=$(cd "$build" && pwd)/fuzz-artifacts/$target
mkdir -p "$art"
# Artifacts from an earlier run are not this run's result.
rm -f "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*

# UBSan reports must stop the fuzzer (libFuzzer then treats them as crashes).
UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}halt_on_error=1:detect_leaks=1"
export UBSAN_OPTIONS ASAN_OPTIONS

echo "fuzz $target: ${secs}s, seed ${FUZZ_SEED:-1}, $seeds seed file(s), dict ${dict:-none}"
# A fixed seed makes `make test` reproducible: the same code and corpus explore the
# same inputs on every machine, so a red run is a real regression, never luck.  Set
# FUZZ_SEED=0 (libFuzzer: random) for exploratory runs.
set -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	-seed="${FUZZ_SEED:-1}" -artifact_prefix="$art/"
[ -n "$dict" ] && set -- "$@" -dict="$dict"

# Hard bound in case the fuzzer wedges outside libFuzzer's own timers.
timeout -k 10 $((secs + 60)) "$bin" "$@" "$work/corpus" >"$work/log" 2>&1
rc=$?

# A short digest: libFuzzer's final stats and any sanitizer report.
grep -E '^(stat::|INFO: (Loaded|seed corpus)|Done [0-9]+ runs)' "$work/log" | sed 's/^/  /'
found=$(ls "$art" 2>/dev/null | grep -E '^(crash|leak|timeout|oom|slow-unit)-' || true)

if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
	echo "fuzz $target: ok"
	exit 0
fi

echo "fuzz $target: FAILED (exit $rc)"
# The first sanitizer / libFuzzer report, bounded.
grep -E 'runtime error:|SUMMARY:' "$work/log" | head -5 | sed 's/^/  /'
# What the target printed just before dying (e.g. its own assertion message).
grep -v -E '^(#[0-9]+|INFO:|MERGE|\s*$)' "$work/log" | grep -B4 -m1 'ERROR:' | grep -v 'ERROR:' |
	head -4 | sed 's/^/  > /'
sed -n '/ERROR:/,/SUMMARY:/p' "$work/log" | head -25 | sed 's/^/  | /'
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
	echo "  the fuzzer overran its wall-clock bound of $((secs + 60))s"
fi
# Keep the whole log beside the reproducer.
cp "$work/log" "$art/run.log"
for f in $found; do
	echo "  reproducer: $art/$f"
	echo "  replay:     $bin $art/$f"
done
echo "  full log:   $art/run.log"
exit 1
