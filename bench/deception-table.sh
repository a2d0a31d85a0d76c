#!/bin/sh
# deception-table: the deception policy's account table under guessing floods, hash
# collisions and a restart with 100,000 saved accounts (bench/deception-table.c says
# what each phase does).  Prints figures; not a test.
#
#   bench/deception-table.sh [SRC_DIR]      (default: this tree)
#
# SRC_DIR may be any checkout of mxbait, e.g. an older commit to compare with:
#   git archive COMMIT | tar -x -C /tmp/old && bench/deception-table.sh /tmp/old
set -eu
here=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "${1:-$here/..}" && pwd)
bin=$(mktemp /tmp/mxb-deception-table.XXXXXX)
trap 'rm -f "$bin"' EXIT INT TERM
cc -O2 -D_GNU_SOURCE -I "$SRC/src" -o "$bin" "$here/deception-table.c" \
    $(ls "$SRC"/src/deceive/deception.c "$SRC"/src/deceive/auth_static.c \
         "$SRC"/src/deceive/siphash.c "$SRC"/src/util/buf.c 2>/dev/null) -lcrypto
echo "deception-table: $SRC ($(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo 'not a git tree'))"
"$bin" "${PASSWORD_LIST:-/usr/share/nmap/nselib/data/passwords.lst}"
