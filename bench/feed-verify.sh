#!/bin/sh
# feed-verify: entries/s a subscriber verifies and parses (bench/feed-verify.c).
#   sh bench/feed-verify.sh [BUILD_DIR] [ENTRIES] [ROUNDS]     (build, 20000, 20)
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD="$root/$BUILD" ;; esac
[ -f "$BUILD/src/federate/libmxb_federate_pure.a" ] || { echo "feed-verify: build $BUILD first" >&2; exit 1; }
T=$(mktemp -d /tmp/mxbait-feedbench.XXXXXX)
trap 'rm -rf "$T"' EXIT
cc -O2 -I"$root/src" -o "$T/fv" "$here/feed-verify.c" "$BUILD/src/federate/libmxb_federate_pure.a" \
	"$BUILD/src/guard/libmxb_guard_pure.a" "$BUILD/src/store/libmxb_event.a" \
	"$BUILD/src/util/libmxb_util.a" -lsodium -ljansson -lcrypto || exit 1
"$T/fv" "${2:-20000}" "${3:-20}"
