#!/usr/bin/python3
"""idle-conns: hold N idle connections to a server and report its memory (loopback only).

Opens --count connections to 127.0.0.1:--port, spread over --sources addresses, reads
each greeting (SMTP "220 ..." or IMAP "* OK ...": the first line) and then sends
nothing.  With all of them open it waits --settle seconds, reads VmRSS and VmHWM of
--pid (and of its children) from /proc, checks that every connection is still open
(none got EOF or a timeout reply), closes them all and prints one JSON object.

Promises: loopback only; at most 20,000 connections; the run is bounded (connect and
greeting timeouts, then --settle); every socket is closed before it exits.
Used by bench/idle-conns.sh.
"""
import argparse
import ipaddress
import json
import os
import select
import socket
import sys
import time


def status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                out[k] = int(v.split()[0])  # kB (Threads: a count)
    return out


def children(pid):
    kids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rindex(")") + 2:].split()[1]) == pid:
                kids.append(int(d))
    return kids


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--pid", type=int, required=True, help="the server process")
    ap.add_argument("--sources", default="127.0.0.1")
    ap.add_argument("--settle", type=float, default=5.0)
    ap.add_argument("--timeout", type=float, default=10.0)
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    srcs = [s for s in args.sources.split(",") if s]
    for s in srcs:
        if not ipaddress.ip_address(s).is_loopback:
            sys.exit("idle-conns: loopback sources only")
    if not 1 <= args.count <= 20000:
        sys.exit("idle-conns: --count 1..20000")

    before = status(args.pid)
    socks, bad = [], 0
    t0 = time.monotonic()
    try:
        for i in range(args.count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(args.timeout)
            s.bind((srcs[i % len(srcs)], 0))
            s.connect(("127.0.0.1", args.port))
            greeting = b""
            while not greeting.endswith(b"\n") and len(greeting) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                greeting += chunk
            if not (greeting.startswith(b"220 ") or greeting.startswith(b"* OK")):
                bad += 1
            socks.append(s)
        opened = time.monotonic() - t0
        time.sleep(args.settle)
        after = status(args.pid)
        kids = {}
        for k in children(args.pid):
            try:
                kids[k] = status(k)
            except OSError:
                pass
        # Still open?  An idle connection the server closed is readable (EOF or a reply).
        poller = select.poll()
        for s in socks:
            poller.register(s, select.POLLIN)
        still = len(socks) - len(poller.poll(0))
    finally:
        for s in socks:
            s.close()
    out = {"label": args.label, "port": args.port, "count": args.count,
           "held": still, "bad_greetings": bad, "open_seconds": round(opened, 2),
           "before_kb": before, "after_kb": after, "children_kb": kids,
           "per_conn_bytes": round((after["VmRSS"] - before["VmRSS"]) * 1024 / args.count)}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
