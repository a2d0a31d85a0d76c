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
#      service's own command line run the way the unit runs it (as mxbait, with the
#      unit's capabilities, in a network namespace of its own) until it listens on
#      port 25, then `mxbait stats` without options (the default configuration), and
#      serve holds no capability in any set; again with analyzer_user =
#      mxbait-analyzer: a message sent over SMTP is analysed by a worker running as
#      that account (the launcher keeps CAP_SETUID, CAP_SETGID, CAP_SETPCAP only);
#      again with divert = yes (nftables installed from the mirror): the nft helper
#      keeps CAP_NET_ADMIN alone in every set, the table is in place and a decision
#      lands in the namespace's divert set;
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
# The service as the unit runs it: user mxbait, the unit's capabilities (ambient and
# bounding), no new privileges, no options.  Twice: the shipped configuration (the
# daemon drops CAP_SETUID, CAP_SETGID and CAP_SETPCAP at start), then with
# analyzer_user = mxbait-analyzer (the account the package made): a message sent over
# SMTP is analysed by a worker running as mxbait-analyzer, the launcher holds the
# three capabilities, serve none in any set; then with divert = yes: the nft helper
# holds CAP_NET_ADMIN alone (the unit grants it for that), serve none.
check test "$(in_root getent passwd mxbait-analyzer | cut -d: -f7)" = /usr/sbin/nologin
check test "$(in_root id -u mxbait-analyzer)" -lt 1000
caps=$(sed -n 's/^AmbientCapabilities=//p' "$root/lib/systemd/system/mxbait.service")
check test "$caps" = "CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_NET_ADMIN"
check grep -qx "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK" "$root/lib/systemd/system/mxbait.service"
check grep -qx "CapabilityBoundingSet=$caps" "$root/lib/systemd/system/mxbait.service"
setcaps=$(echo "$caps" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
cp "$root/etc/mxbait/mxbait.conf" "$root/tmp/analyzer.conf"
echo "analyzer_user = mxbait-analyzer" >>"$root/tmp/analyzer.conf"
chmod 644 "$root/tmp/analyzer.conf"
cp "$root/etc/mxbait/mxbait.conf" "$root/tmp/divert.conf"
printf "divert = yes\ndivert_ports = 10025:25\n" >>"$root/tmp/divert.conf"
chmod 644 "$root/tmp/divert.conf"
in_root sh -c "DEBIAN_FRONTEND=noninteractive apt-get install -y -q nftables" >>"$work/install.log" 2>&1
check test -x "$root/usr/sbin/nft"
# a network namespace of its own, its loopback up (with the host's ip: minbase has none)
in_root_net() {
	unshare -n sh -c 'ip link set lo up && exec "$@"' sh chroot "$root" /usr/bin/env -i \
		HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"
}
in_root_net bash -c '
	caps=$1
	status() { sed -n "s/^$2:[[:space:]]*//p" /proc/$1/status; }
	kids() { cat /proc/$1/task/*/children 2>/dev/null; }
	with() { for k in $(kids $1); do tr "\0" " " </proc/$k/cmdline | grep -q -- "$2" && echo $k; done; }
	serve() { # NAME [-c CONF]
		name=$1; shift
		setpriv --reuid=mxbait --regid=mxbait --init-groups --inh-caps=$caps \
			--ambient-caps=$caps --bounding-set=-all,$caps --no-new-privs \
			/usr/bin/mxbait serve "$@" >/tmp/$name.log 2>&1 &
		pid=$!
		n=0
		until grep -q " ready: " /tmp/$name.log; do
			n=$((n + 1)); [ $n -gt 200 ] && break; sleep 0.1
		done
		grep -q ":0019 00000000:0000 0A" /proc/net/tcp && echo listening25 >>/tmp/$name.ok
		for c in CapEff CapPrm CapInh CapAmb CapBnd; do
			echo "serve $c $(status $pid $c)" >>/tmp/$name.ok
		done
	}
	stop() { kill -TERM $pid; wait $pid; echo "exit=$?" >>/tmp/$name.ok; }

	serve serve
	/usr/bin/mxbait stats >/tmp/stats.out 2>&1 && echo stats >>/tmp/serve.ok
	stop

	serve analyzer -c /tmp/analyzer.conf
	url="http://check-package-$$.example.org/analysed"
	reply() { # one SMTP reply, its lines kept
		while IFS= read -r -t 30 l <&3; do
			echo "$l" >>/tmp/analyzer.smtp
			case $l in [0-9][0-9][0-9]" "*) return 0 ;; esac
		done
		return 1
	}
	exec 3<>/dev/tcp/127.0.0.1/25 && reply && {
		for c in "EHLO client.example.net" "MAIL FROM:<a@example.net>" \
			 "RCPT TO:<postmaster@mail.example.com>" DATA; do
			printf "%s\r\n" "$c" >&3 && reply
		done
		printf "Subject: check\r\n\r\n%s\r\n.\r\n" "$url" >&3 && reply
		printf "QUIT\r\n" >&3 && reply
		exec 3>&-
	}
	n=0
	until setpriv --reuid=mxbait --regid=mxbait --init-groups /usr/bin/mxbait urls \
		-d /var/lib/mxbait 2>/dev/null | grep -q "check-package-$$"; do
		n=$((n + 1)); [ $n -gt 300 ] && break; sleep 0.1
	done
	[ $n -le 300 ] && echo analysed >>/tmp/analyzer.ok
	l=$(with $pid " --launcher ")
	[ -n "$l" ] && echo "launcher $(status $l CapEff) $(status $l CapBnd)" >>/tmp/analyzer.ok
	for w in $(with "$l" " --worker "); do
		echo "worker $(status $w Uid | cut -f1) $(status $w CapEff) $(status $w CapBnd)" >>/tmp/analyzer.ok
	done
	stop

	serve divert -c /tmp/divert.conf
	nft list table inet mxbait 2>&1 | grep -q "redirect to" && echo ruleset >>/tmp/divert.ok
	h=$(sed -n "s/.*nft helper started (pid \([0-9]*\)).*/\1/p" /tmp/divert.log | head -1)
	for c in CapEff CapPrm CapInh CapAmb CapBnd; do
		[ -n "$h" ] && echo "helper $c $(status $h $c)" >>/tmp/divert.ok
	done
	setpriv --reuid=mxbait --regid=mxbait --init-groups /usr/bin/mxbait decisions \
		-d /var/lib/mxbait add 198.51.100.77 >/tmp/divert.cli 2>&1
	n=0
	until nft list set inet mxbait divert4 2>/dev/null | grep -q 198.51.100.77; do
		n=$((n + 1)); [ $n -gt 100 ] && break; sleep 0.1
	done
	[ $n -le 100 ] && echo decided >>/tmp/divert.ok
	stop' check "$setcaps"
zero=0000000000000000
for run in serve analyzer divert; do
	check grep -qx listening25 "$root/tmp/$run.ok"
	for c in CapEff CapPrm CapInh CapAmb CapBnd; do
		check grep -qx "serve $c $zero" "$root/tmp/$run.ok"
	done
	check grep -qx exit=0 "$root/tmp/$run.ok"
done
check grep -qx stats "$root/tmp/serve.ok"
check grep -q "running as\|ready: hostname=mail.example.com data_dir=/var/lib/mxbait" "$root/tmp/serve.log"
check grep -qx analysed "$root/tmp/analyzer.ok"
check grep -qx "launcher 00000000000001c0 00000000000001c0" "$root/tmp/analyzer.ok"
check grep -qx "worker $(in_root id -u mxbait-analyzer) $zero $zero" "$root/tmp/analyzer.ok"
check grep -qx ruleset "$root/tmp/divert.ok"
for c in CapEff CapPrm CapInh CapAmb CapBnd; do
	check grep -qx "helper $c 0000000000001000" "$root/tmp/divert.ok"
done
check grep -qx decided "$root/tmp/divert.ok"
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
