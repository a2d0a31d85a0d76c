#!/bin/bash
# guard-logwatch: the log watch's tokenizer on a 1 GB mail log, side by side with
# fail2ban-regex (fail2ban's Python regexes, Debian's postfix and dovecot filters).
#
#   bench/guard-logwatch.sh [BUILD_DIR]   (default: build)
#
# SIZE_MB (default 1024) of log are generated in a temporary directory (deleted at the
# end) from the shapes of tests/guard/*.log, the lines the real Debian Postfix 3.7 and
# Dovecot 2.3 write: one line in five is an attack line (SASL failure, Dovecot auth
# failure or login line, unknown recipient, postscreen offence), the rest ordinary
# traffic (connect, disconnect, queue manager, deliveries), addresses and users varied.
# mxbait's tokenizer (bench/guard-logparse.c, linked with the build's lib_guard_pure)
# reads it all on one core; fail2ban-regex reads the first F2B_LINES lines (default
# 200000: it is far slower) once with filter postfix[mode=aggressive] and once with
# dovecot, and both figures are printed per line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
BUILD=${1:-build}
SIZE_MB=${SIZE_MB:-1024}
F2B_LINES=${F2B_LINES:-200000}
[ -f "$BUILD/src/guard/libmxb_guard_pure.a" ] || { echo "guard-logwatch: build $BUILD first (make build)" >&2; exit 1; }
T=$(mktemp -d /tmp/mxbait-logbench.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cc -O2 -I"$root/src" -o "$T/parse" "$here/guard-logparse.c" "$BUILD/src/guard/libmxb_guard_pure.a" \
	"$BUILD/src/intel/libmxb_intel.a" "$BUILD/src/util/libmxb_util.a" -lcrypto -ljansson || exit 1
/usr/bin/python3 - "$T/mail.log" "$SIZE_MB" <<'PY'
import random, sys
path, size = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
r = random.Random(7)
attack = [
 "{t} mx1 postfix/smtpd[{p}]: warning: unknown[{ip}]:{port}: SASL LOGIN authentication failed: UGFzc3dvcmQ6, sasl_username={u}@example.test",
 "{t} mx1 dovecot: auth: passwd-file({u}@example.test,{ip},<{s}>): unknown user",
 "{t} mx1 dovecot: imap-login: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<{u}@example.test>, method=PLAIN, rip={ip}, lip=192.0.2.1, TLS, session=<{s}>",
 "{t} mx1 postfix/smtpd[{p}]: NOQUEUE: reject: RCPT from unknown[{ip}]:{port}: 550 5.1.1 <{u}@example.test>: Recipient address rejected: User unknown in virtual mailbox table; from=<a@example.net> to=<{u}@example.test> proto=ESMTP helo=<x{p}.example.net>",
 "{t} mx1 postfix/postscreen[{p}]: PREGREET 24 after 0.01 from [{ip}]:{port}: EHLO x{p}.example.net\\r\\n",
]
normal = [
 "{t} mx1 postfix/smtpd[{p}]: connect from mail{p}.example.net[{ip}]:{port}",
 "{t} mx1 postfix/smtpd[{p}]: disconnect from mail{p}.example.net[{ip}]:{port} ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
 "{t} mx1 postfix/qmgr[{p}]: 4A1B2C{p:X}: from=<news@example.net>, size=4{p}, nrcpt=1 (queue active)",
 "{t} mx1 postfix/virtual[{p}]: 4A1B2C{p:X}: to=<{u}@example.test>, relay=virtual, delay=0.1, delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (delivered to maildir)",
 "{t} mx1 postfix/cleanup[{p}]: 4A1B2C{p:X}: message-id=<{s}@example.net>",
 "{t} mx1 dovecot: imap({u}@example.test)<{p}><{s}>: Disconnected: Logged out in=120 out=4{p} deleted=0 expunged=0 trashed=0 hdr_count=0 hdr_bytes=0 body_count=0 body_bytes=0",
 "{t} mx1 dovecot: imap-login: Login: user=<{u}@example.test>, method=PLAIN, rip={ip}, lip=192.0.2.1, mpid={p}, TLS, session=<{s}>",
]
with open(path, "w") as f:
    written = 0
    buf = []
    i = 0
    while written < size:
        i += 1
        t = "Dec  6 22:%02d:%02d" % ((i // 60) % 60, i % 60)
        ip = "%d.%d.%d.%d" % (r.choice((198, 203, 192)), r.randrange(256), r.randrange(256), r.randrange(1, 255))
        tpl = r.choice(attack) if r.random() < 0.2 else r.choice(normal)
        line = tpl.format(t=t, p=r.randrange(1000, 99999), ip=ip, port=r.randrange(1024, 65535),
                          u="user%d" % r.randrange(100000), s="%012x" % r.getrandbits(48)) + "\n"
        buf.append(line)
        written += len(line)
        if len(buf) >= 10000:
            f.write("".join(buf))
            buf = []
    f.write("".join(buf))
PY
bytes=$(stat -c %s "$T/mail.log")
lines=$(wc -l <"$T/mail.log")
echo "guard-logwatch: $((bytes / 1048576)) MiB, $lines lines of generated Postfix/Dovecot log"
cat "$T/mail.log" >/dev/null # in the page cache for both
echo "mxbait tokenizer, one core (taskset -c 0):"
taskset -c 0 "$T/parse" "$T/mail.log"
if command -v fail2ban-regex >/dev/null; then
	head -n "$F2B_LINES" "$T/mail.log" >"$T/slice.log"
	echo "mxbait tokenizer on the same first $F2B_LINES lines:"
	taskset -c 0 "$T/parse" "$T/slice.log"
	for filter in "postfix[mode=aggressive]" dovecot; do
		s0=$(date +%s.%N)
		out=$(taskset -c 0 fail2ban-regex "$T/slice.log" "$filter" 2>&1 | grep -E "^Lines:")
		s1=$(date +%s.%N)
		/usr/bin/python3 -c "
s = $s1 - $s0
print('fail2ban-regex %-26s %d lines in %.1f s: %.0f lines/s  (%s)' % ('$filter', $F2B_LINES, s, $F2B_LINES / s, '''$out'''.strip()))"
	done
else
	echo "fail2ban-regex not installed (scripts/install-deps.sh test): no comparison"
fi
