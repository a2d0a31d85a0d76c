#!/usr/bin/python3
"""persona-timing: measure the timing a detector can see, on any server with our roles,
so that mxbait and the stock Debian 12 Postfix 3.7 + Dovecot 2.3 (tests/persona/
stock-servers.py) can be compared with the same client (docs/persona.md, "Timing").

    persona-timing.py --ports smtp=P,submission=P,smtps=P,imap=P,imaps=P,pop3=P,pop3s=P
                      [--source-net 127.0.43] [--samples 24] [--user U --password P]

Prints, per role: connect-to-greeting latency (plain ports: connect to first byte; TLS
ports: connect, handshake, first byte) as min / median / max in ms; the delay of one
failed login on a fresh source address (no per-IP penalty) for IMAP (imaps LOGIN),
POP3 (pop3s USER/PASS) and SMTP AUTH PLAIN (smtps) as min / quartiles / max in s and
how many distinct 10-ms buckets they fall in; and the SMTP error tarpit (replies 1-10,
11-20 and the unsolicited 421 after the 20th error).  Every sample uses its own source
address from --source-net (.1-.250), so per-IP state of one sample does not reach the
next.  A figure, never a pass/fail: this is a bench script.
"""
import argparse
import base64
import concurrent.futures
import socket
import ssl
import statistics
import time

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

_next = [0]


def source(net):
    _next[0] = _next[0] % 250 + 1
    return f"{net}.{_next[0]}"


def connect(port, src, tls):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(30)
    t0 = time.monotonic()
    s.connect(("127.0.0.1", port))
    if tls:
        s = CTX.wrap_socket(s)
    return s, t0


def readline(s, buf):
    while b"\n" not in buf[0]:
        d = s.recv(4096)
        if not d:
            raise EOFError("closed")
        buf[0] += d
    line, _, buf[0] = buf[0].partition(b"\n")
    return line + b"\n"


def greeting(port, src, tls):
    s, t0 = connect(port, src, tls)
    s.recv(1)
    t = time.monotonic() - t0
    s.close()
    return t


def smtp_reply(s, buf):
    while True:
        l = readline(s, buf)
        if l[3:4] != b"-":
            return l


def fail_imap(port, src, user):
    s, _ = connect(port, src, True)
    buf = [b""]
    readline(s, buf)
    t = time.monotonic()
    s.sendall(b"a1 LOGIN %s wrong-Password-9\r\n" % user.encode())
    l = readline(s, buf)
    d = time.monotonic() - t
    s.close()
    assert b"NO" in l, l
    return d


def fail_pop3(port, src, user):
    s, _ = connect(port, src, True)
    buf = [b""]
    readline(s, buf)
    s.sendall(b"USER %s\r\n" % user.encode())
    readline(s, buf)
    t = time.monotonic()
    s.sendall(b"PASS wrong-Password-9\r\n")
    l = readline(s, buf)
    d = time.monotonic() - t
    s.close()
    assert l.startswith(b"-ERR"), l
    return d


def fail_smtp(port, src, user):
    s, _ = connect(port, src, True)
    buf = [b""]
    smtp_reply(s, buf)
    s.sendall(b"EHLO client.example.net\r\n")
    smtp_reply(s, buf)
    cred = base64.b64encode(b"\0" + user.encode() + b"\0wrong-Password-9")
    t = time.monotonic()
    s.sendall(b"AUTH PLAIN " + cred + b"\r\n")
    l = smtp_reply(s, buf)
    d = time.monotonic() - t
    s.close()
    assert l.startswith(b"535"), l
    return d


def tarpit(port, src):
    s, _ = connect(port, src, False)
    buf = [b""]
    smtp_reply(s, buf)
    s.sendall(b"EHLO client.example.net\r\n")
    smtp_reply(s, buf)
    gaps = []
    for i in range(1, 21):
        t = time.monotonic()
        s.sendall(b"XYZZY%d\r\n" % i)
        smtp_reply(s, buf)
        gaps.append(time.monotonic() - t)
    t = time.monotonic()
    try:
        l = readline(s, buf)
    except (EOFError, OSError):
        l = b"(closed)"
    gaps.append(time.monotonic() - t)
    s.close()
    return gaps, l


def summary(xs, unit, scale):
    xs = sorted(x * scale for x in xs)
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return (f"n={len(xs)} min {xs[0]:.3f} q1 {q[0]:.3f} median {q[1]:.3f} q3 {q[2]:.3f} "
            f"max {xs[-1]:.3f} {unit}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ports", required=True)
    ap.add_argument("--source-net", default="127.0.43")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--user", default="alice")
    ap.add_argument("--only", default="greeting,auth,tarpit")
    a = ap.parse_args()
    ports = dict(kv.split("=") for kv in a.ports.split(","))
    ports = {k: int(v) for k, v in ports.items()}
    only = a.only.split(",")
    if "greeting" in only:
        for role, port in ports.items():
            tls = role in ("smtps", "imaps", "pop3s")
            xs = [greeting(port, source(a.source_net), tls) for _ in range(a.samples)]
            print(f"greeting {role:10s} {summary(xs, 'ms', 1000)}")
    if "auth" in only:
        for name, role, fn in (("imap", "imaps", fail_imap), ("pop3", "pop3s", fail_pop3),
                               ("smtp", "smtps", fail_smtp)):
            if role not in ports:
                continue
            srcs = [source(a.source_net) for _ in range(a.samples)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=6) as ex:
                xs = list(ex.map(lambda s: fn(ports[role], s, a.user), srcs))
            buckets = len({round(x, 2) for x in xs})
            print(f"auth-fail {name:5s} {summary(xs, 's', 1)} distinct-10ms {buckets}")
    if "tarpit" in only and "smtp" in ports:
        gaps, last = tarpit(ports["smtp"], source(a.source_net))
        print("tarpit smtp replies 1-10 max %.3f s; 11-20 min %.3f max %.3f s; "
              "after the 20th: %.3f s %r" % (max(gaps[:10]), min(gaps[10:20]), max(gaps[10:20]),
                                             gaps[20], last.strip()[:60]))


if __name__ == "__main__":
    main()
