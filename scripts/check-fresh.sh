#!/bin/bash
# check-fresh: the README's commands on a fresh, minimal Debian 12, for real.
#
#   scripts/check-fresh.sh            (as root; takes 20-40 minutes)
#
# What it does:
#   1. A minimal Debian 12 root: `debootstrap --variant=minbase bookworm`, made once and
#      cached as a tarball ($MXBAIT_FRESH_CACHE, default /var/cache/mxbait-check-fresh);
#      every run unpacks a pristine copy into a temporary folder, so nothing a previous
#      run installed is there.  The host's Debian sources (bookworm, -updates, -security)
#      are used inside, as on an installed machine.  Downloaded .deb files are kept in
#      $MXBAIT_FRESH_CACHE/apt-archives between runs (download time only: every package
#      is still installed by the project's own scripts/install-deps.sh);
#      MXBAIT_FRESH_APT_CACHE=0 turns that off.
#   2. The tree: the files of the working tree that git tracks or would add (`git
#      ls-files --cached --others --exclude-standard`, with their uncommitted contents,
#      deleted files left out): what a developer's next commit holds.  Build folders
#      and other ignored files are not copied.  /work/shared (the shared reference
#      material the persona tests read) is copied beside it, as CI lays it out.
#   3. In a chroot (with /proc, /sys, /dev, /dev/pts, /dev/shm and /run mounted), after
#      the README's first step, `apt-get install make`:
#        a. `make run` on the pristine root, until the daemon says it is ready, then the
#           README's two-minute tour (scripts/readme-tour.py: every command of the tour,
#           on the packages `make run` installed and nothing else), then SIGINT;
#        b. `make test` (its last line is the summary);
#        c. `make run` again, until it listens, then SIGINT.
#      Both `make run`s run in a network namespace of their own (loopback only), so the
#      fixed ports 2525, 2143, ... cannot collide with daemons on the host; the first
#      one's package step (`make deps`, which needs the network) runs just before it.
#   4. Mounts are undone and the temporary root removed on any exit (Ctrl-C too);
#      MXBAIT_FRESH_KEEP=1 keeps the root for a look afterwards (mounts still undone).
#
# The last line is the summary, e.g.
#   check-fresh: PASS tour=ok make-test="1234 passed, 0 failed" make-run=listening (31m12s)
# Exit status 0 only when all three steps passed.
set -u

here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$here/.." && pwd)
CACHE=${MXBAIT_FRESH_CACHE:-/var/cache/mxbait-check-fresh}
WORKBASE=${MXBAIT_FRESH_WORK:-/var/tmp}
SHARED=${MXBAIT_SHARED:-$(dirname "$tree")/shared}
SUITE=bookworm
t0=$(date +%s)

die() { echo "check-fresh: $*" >&2; summary FAIL "$*"; exit 1; }
elapsed() { local s=$(( $(date +%s) - t0 )); printf '%dm%02ds' $((s / 60)) $((s % 60)); }
summary() {
	echo "check-fresh: $1 tour=${TOUR:-not-run} make-test=\"${TEST_LINE:-not-run}\"" \
	     "make-run=${RUN2:-not-run} ($(elapsed))${2:+: $2}"
}

[ "$(id -u)" -eq 0 ] || { echo "check-fresh: run as root (debootstrap, chroot, mounts)" >&2; exit 2; }
for t in debootstrap chroot unshare git tar; do
	command -v "$t" >/dev/null || { echo "check-fresh: $t missing: scripts/install-deps.sh test" >&2; exit 2; }
done

# The mirror: the host's first Debian URI (deb822 or one-line format).
mirror=${MXBAIT_FRESH_MIRROR:-}
if [ -z "$mirror" ]; then
	mirror=$(sed -n 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)[[:space:]]*$/\1/p' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
	[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 ~ /^bookworm$/ {print $2; exit}' \
		/etc/apt/sources.list 2>/dev/null)
	[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
fi

mkdir -p "$CACHE" || die "cannot create $CACHE"
# One run at a time: the apt download cache is shared.
exec 9>"$CACHE/lock"
flock -n 9 || { echo "check-fresh: another run holds $CACHE/lock" >&2; exit 2; }
base="$CACHE/$SUITE-minbase.tar.gz"
if [ ! -s "$base" ]; then
	echo "check-fresh: debootstrap --variant=minbase $SUITE from $mirror (cached in $base)"
	stage=$(mktemp -d "$WORKBASE/mxbait-debootstrap.XXXXXX") || die "mktemp"
	if ! debootstrap --variant=minbase "$SUITE" "$stage/root" "$mirror" \
		>"$stage/debootstrap.log" 2>&1; then
		tail -20 "$stage/debootstrap.log" >&2
		rm -rf --one-file-system "$stage"
		die "debootstrap failed"
	fi
	tar -C "$stage/root" -czf "$base.tmp" . && mv "$base.tmp" "$base" || die "cannot write $base"
	rm -rf --one-file-system "$stage"
fi

work=$(mktemp -d "$WORKBASE/mxbait-fresh.XXXXXX") || die "mktemp"
root="$work/root"
MOUNTS=""
cleanup() {
	local m
	# Whatever still runs inside the root (a daemon left by an interrupted step) goes.
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	for m in $MOUNTS; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
	MOUNTS=""
	if grep -q " $root[/ ]" /proc/self/mountinfo; then
		echo "check-fresh: mounts left under $root: not removing it" >&2
	elif [ "${MXBAIT_FRESH_KEEP:-0}" = 1 ]; then
		echo "check-fresh: root kept in $root"
	else
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT
trap 'summary FAIL interrupted; exit 130' INT TERM

mkdir -p "$root"
tar -C "$root" -xzf "$base" || die "cannot unpack $base"

# As an installed machine: the host's Debian sources and DNS.
rm -f "$root/etc/apt/sources.list"
mkdir -p "$root/etc/apt/sources.list.d"
if [ -f /etc/apt/sources.list.d/debian.sources ]; then
	cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
else
	printf 'deb %s %s main\ndeb %s %s-updates main\n' "$mirror" "$SUITE" "$mirror" "$SUITE" \
		>"$root/etc/apt/sources.list"
fi
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

# The tree, and shared/ beside it.
mkdir -p "$root/work/mxbait"
( cd "$tree" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - ) | tar -C "$root/work/mxbait" -xf - || die "cannot copy the tree"
if [ -d "$SHARED" ]; then
	# its contents ("/."): the path may be a symbolic link (worktrees have one)
	mkdir -p "$root/work/shared" && cp -a "$SHARED/." "$root/work/shared/" ||
		die "cannot copy $SHARED"
else
	echo "check-fresh: no $SHARED: the persona tests will skip" >&2
fi

mnt() { mount "$@" && MOUNTS="${!#} $MOUNTS"; }
# The root a mount point of its own, as / is on a machine: tests that make a private
# mount namespace run `mount --make-rslave /`, which fails on a plain directory.
mnt --bind "$root" "$root" || die "bind-mount the root onto itself"
mnt -t proc proc "$root/proc" || die "mount proc"
mnt -t sysfs sysfs "$root/sys" || die "mount sys"
mnt --bind /dev "$root/dev" || die "mount dev"
mnt --bind /dev/pts "$root/dev/pts" || die "mount dev/pts"
mkdir -p "$root/dev/shm"
mnt -t tmpfs -o mode=1777 shm "$root/dev/shm" || die "mount dev/shm"
mnt -t tmpfs -o mode=0755 run "$root/run" || die "mount run"
if [ "${MXBAIT_FRESH_APT_CACHE:-1}" != 0 ]; then
	mkdir -p "$CACHE/apt-archives/partial" "$root/var/cache/apt/archives"
	mnt --bind "$CACHE/apt-archives" "$root/var/cache/apt/archives" || die "mount apt cache"
fi

in_root() {
	# A clean environment, as a root login on the new machine would have.
	chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$@"
}

# `make run` in its own network namespace until ready, then (optionally) the tour,
# then SIGINT as Ctrl-C would.  $1: label, $2: "tour" or "".
make_run() {
	local label=$1 tour=$2 log=/work/make-run-$1.log
	in_root /bin/sh -c '
		cd /work/mxbait || exit 1
		make run >'"$log"' 2>&1 &
		pid=$!
		n=0
		while ! grep -q " ready: " '"$log"'; do
			kill -0 $pid 2>/dev/null || { echo "make run exited:"; tail -30 '"$log"'; exit 1; }
			n=$((n + 1)); [ $n -gt 3600 ] && { echo "not ready in 30 min"; kill -INT $pid; exit 1; }
			sleep 0.5
		done
		# It listens: the SMTP port in the kernel table (0x09DD = 2525, state 0A LISTEN).
		grep -q ":09DD 00000000:0000 0A" /proc/net/tcp || { echo "ready but not listening"; exit 1; }
		rc=0
		if [ "'"$tour"'" = tour ]; then
			/usr/bin/python3 scripts/readme-tour.py || rc=1
		fi
		# Ctrl-C: the daemon (make'"'"'s child) stops cleanly.
		daemon=$(cat mxbait-data/mxbait.pid 2>/dev/null)
		kill -INT ${daemon:-$pid} 2>/dev/null
		wait $pid
		tail -3 '"$log"'
		exit $rc' </dev/null
}

echo "check-fresh: root in $root, tree from $tree (working tree, tracked + unignored files)"
# The README's first step: make itself (the one thing the Makefile cannot install).
echo "== apt-get install make (README: the first command on a fresh machine) =="
in_root /bin/sh -c 'apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends make >/dev/null' </dev/null ||
	die "apt-get install make failed"
echo "== make run + README tour (pristine root: only what make run installs) =="
# In a network namespace of its own when the kernel allows (it does as root).
in_netns() {
	local ns=""
	unshare --net true 2>/dev/null && ns="unshare --net"
	# loopback up with the host's ip(8), before the chroot (the new root may lack it)
	$ns /bin/bash -c "ip link set lo up; $(declare -f in_root make_run); root=$(printf %q "$root"); make_run $1 $2"
}
# make run's first step, `make deps` (apt), needs the network: run on its own first,
# so that `make run` in the namespace finds everything installed, as it would have.
if in_root /bin/sh -c 'cd /work/mxbait && make deps' </dev/null && in_netns first tour; then
	TOUR=ok
else
	TOUR=FAIL
fi
echo "== make test =="
in_root /bin/sh -c 'cd /work/mxbait && make test' </dev/null 2>&1 | tee "$work/make-test.log"
test_rc=${PIPESTATUS[0]}
TEST_LINE=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$work/make-test.log" | tail -1)
[ -n "$TEST_LINE" ] || TEST_LINE="no summary line (exit $test_rc)"
echo "== make run again (after make test) =="
if in_netns second none; then RUN2=listening; else RUN2=FAIL; fi

if [ "$TOUR" = ok ] && [ "$test_rc" -eq 0 ] && [ "$RUN2" = listening ]; then
	summary PASS
	exit 0
fi
summary FAIL
exit 1
