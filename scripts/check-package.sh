#!/bin/bash
# check-package: build the Debian package, lint it, install it on a fresh Debian 12
# root and check what it installed and that the service starts from it.
#
#   scripts/check-package.sh          (as root; 5-15 minutes; not part of `make test`)
#
#   1. the tree (git ls-files: tracked and unignored files, as check-fresh.sh) is built
#      with `dpkg-buildpackage -us -uc -b` in a temporary folder;
#   2. lintian on the result: any error (E:) fails;
#   3. a pristine `debootstrap --variant=minbase bookworm` root (the tarball cached by
#      scripts/check-fresh.sh, made here when missing) gets the .deb with
#      `apt-get install ./mxbait_*.deb` (its dependencies from the Debian mirror);
#   4. checks there: the mxbait account (system, no login shell), every installed file
#      (binary, unit, sysusers.d, tmpfiles.d, logrotate, man pages, the conffile),
#      /var/lib/mxbait 0700 mxbait; `mxbait check` on the shipped configuration; the
#      service's own command line run the way the unit runs it (as mxbait, with only
#      CAP_NET_BIND_SERVICE, in a network namespace of its own) until it listens on
#      port 25, then `mxbait stats` without options (the default configuration);
#      a second install keeps an edited /etc/mxbait/mxbait.conf; purge removes the
#      state;
#   5. `systemd-analyze security --offline=yes` of the installed unit (its exposure
#      score is printed; docs/operations.md quotes it).
# Last line: `check-package: PASS ...` or `check-package: FAIL: why`.
set -u
here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$here/.." && pwd)
CACHE=${MXBAIT_FRESH_CACHE:-/var/cache/mxbait-check-fresh}
WORKBASE=${MXBAIT_FRESH_WORK:-/var/tmp}
base="$CACHE/bookworm-minbase.tar.gz"

fail() { echo "check-package: FAIL: $*"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "check-package: run as root" >&2; exit 2; }
for t in dpkg-buildpackage lintian debootstrap; do
	command -v $t >/dev/null || fail "$t missing: scripts/install-deps.sh test"
done

work=$(mktemp -d "$WORKBASE/mxbait-package.XXXXXX") || fail mktemp
root="$work/root"
MOUNTS=""
cleanup() {
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -9 "${p#/proc/}" 2>/dev/null
	done
	for m in $MOUNTS; do umount "$m" 2>/dev/null || umount -l "$m"; done
	if grep -q " $root[/ ]" /proc/self/mountinfo; then
		echo "check-package: mounts left under $root: not removing it" >&2
	elif [ "${MXBAIT_FRESH_KEEP:-0}" != 1 ]; then
		rm -rf --one-file-system "$work"
	fi
}
trap cleanup EXIT

echo "== dpkg-buildpackage -us -uc -b =="
mkdir -p "$work/src/mxbait-0.1.0"
( cd "$tree" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
	tar --null -T - -cf - ) | tar -C "$work/src/mxbait-0.1.0" -xf - || fail "copy"
( cd "$work/src/mxbait-0.1.0" && dpkg-buildpackage -us -uc -b ) >"$work/build.log" 2>&1 ||
	{ tail -40 "$work/build.log"; fail "dpkg-buildpackage"; }
deb=$(ls "$work"/src/mxbait_*.deb | head -1)
[ -f "$deb" ] || fail "no .deb built"
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes)"

echo "== lintian =="
lintian --no-tag-display-limit "$deb" "$work"/src/mxbait_*.changes | tee "$work/lintian.log"
lerr=$(grep -c '^E: ' "$work/lintian.log")
lwarn=$(grep -c '^W: ' "$work/lintian.log")
[ "$lerr" -eq 0 ] || fail "lintian: $lerr errors"

echo "== install on a fresh Debian 12 root =="
if [ ! -s "$base" ]; then
	mkdir -p "$CACHE"
	debootstrap --variant=minbase bookworm "$work/boot" http://deb.debian.org/debian \
		>"$work/debootstrap.log" 2>&1 || fail "debootstrap"
	tar -C "$work/boot" -czf "$base" . && rm -rf --one-file-system "$work/boot"
fi
mkdir -p "$root" && tar -C "$root" -xzf "$base" || fail "unpack $base"
rm -f "$root/etc/apt/sources.list"
[ -f /etc/apt/sources.list.d/debian.sources ] && cp /etc/apt/sources.list.d/debian.sources "$root/etc/apt/sources.list.d/"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
cp "$deb" "$root/tmp/"
mnt() { mount "$@" && MOUNTS="${!#} $MOUNTS"; }
mnt -t proc proc "$root/proc" && mnt -t sysfs sysfs "$root/sys" && mnt --bind /dev "$root/dev" &&
	mnt -t tmpfs run "$root/run" || fail "mounts"
in_root() { chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
in_root sh -c "apt-get -q update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q /tmp/$(basename "$deb")" \
	>"$work/install.log" 2>&1 || { tail -30 "$work/install.log"; fail "apt-get install"; }

echo "== checks =="
problems=0
check() { if "$@"; then echo "  ok    $*"; else echo "  FAIL  $*"; problems=$((problems + 1)); fi; }
pw=$(in_root getent passwd mxbait)
check test -n "$pw"
check test "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin
check test "$(echo "$pw" | cut -d: -f3)" -lt 1000
for f in /usr/bin/mxbait /lib/systemd/system/mxbait.service /usr/lib/sysusers.d/mxbait.conf \
	 /usr/lib/tmpfiles.d/mxbait.conf /etc/logrotate.d/mxbait /etc/mxbait/mxbait.conf \
	 /usr/share/man/man8/mxbait.8.gz /usr/share/man/man5/mxbait.conf.5.gz; do
	check test -f "$root$f"
done
check test -f "$root/usr/share/doc/mxbait/operations.md.gz" -o -f "$root/usr/share/doc/mxbait/operations.md"
check grep -qx /etc/mxbait/mxbait.conf "$root/var/lib/dpkg/info/mxbait.conffiles"
# owners as the new system names them (its uids are not the host's)
check test "$(in_root stat -c '%a %U' /var/lib/mxbait)" = "700 mxbait"
check grep -q '^ExecStart=/usr/bin/mxbait serve -c /etc/mxbait/mxbait.conf$' "$root/lib/systemd/system/mxbait.service"
check test -L "$root/etc/systemd/system/multi-user.target.wants/mxbait.service"
# the reporter's unit: installed, not enabled (reporting is the operator's decision)
check grep -q '^ExecStart=/usr/bin/mxbait report --daemon -c /etc/mxbait/mxbait.conf$' "$root/lib/systemd/system/mxbait-report.service"
check test ! -e "$root/etc/systemd/system/multi-user.target.wants/mxbait-report.service"
check in_root unshare -n /usr/bin/mxbait check
# The service as the unit runs it: user mxbait, CAP_NET_BIND_SERVICE only, no options.
in_root unshare -n sh -c '
	ip link set lo up 2>/dev/null
	setpriv --reuid=mxbait --regid=mxbait --init-groups --inh-caps=+net_bind_service \
		--ambient-caps=+net_bind_service --bounding-set=-all,+net_bind_service \
		--no-new-privs /usr/bin/mxbait serve >/tmp/serve.log 2>&1 &
	pid=$!
	n=0
	until grep -q " ready: " /tmp/serve.log; do
		n=$((n + 1)); [ $n -gt 200 ] && break; sleep 0.1
	done
	grep -q ":0019 00000000:0000 0A" /proc/net/tcp && echo listening25 >/tmp/serve.ok
	/usr/bin/mxbait stats >/tmp/stats.out 2>&1 && echo stats >>/tmp/serve.ok
	kill -TERM $pid; wait $pid; echo "exit=$?" >>/tmp/serve.ok'
check grep -qx listening25 "$root/tmp/serve.ok"
check grep -qx stats "$root/tmp/serve.ok"
check grep -qx exit=0 "$root/tmp/serve.ok"
check grep -q "running as\|ready: hostname=mail.example.com data_dir=/var/lib/mxbait" "$root/tmp/serve.log"
check test "$(in_root stat -c '%U %a' /var/lib/mxbait/mxbait.db)" = "mxbait 600"
cp "$root/lib/systemd/system/mxbait.service" "$work/mxbait.service" # for step 5
cp "$root/lib/systemd/system/mxbait-report.service" "$work/mxbait-report.service"
# An upgrade (the same package again) keeps the admin's configuration.
echo "# edited by the admin" >>"$root/etc/mxbait/mxbait.conf"
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --reinstall -o Dpkg::Options::=--force-confold /tmp/$(basename "$deb")" >>"$work/install.log" 2>&1
check grep -q "edited by the admin" "$root/etc/mxbait/mxbait.conf"
in_root dpkg --purge mxbait >>"$work/install.log" 2>&1
check test ! -e "$root/var/lib/mxbait"
check test ! -e "$root/usr/bin/mxbait"

echo "== systemd-analyze security =="
exposure=$(systemd-analyze security --offline=yes "$work/mxbait.service" 2>&1 | tail -1)
echo "  $exposure"
echo "  $(systemd-analyze security --offline=yes "$work/mxbait-report.service" 2>&1 | tail -1)"
cp "$deb" "${MXBAIT_PACKAGE_OUT:-/var/tmp}/" 2>/dev/null || true
if [ "$problems" -eq 0 ]; then
	echo "check-package: PASS $(basename "$deb"), lintian $lerr errors $lwarn warnings, $exposure"
	exit 0
fi
fail "$problems checks failed (logs in $work with MXBAIT_FRESH_KEEP=1)"
