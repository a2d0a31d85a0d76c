#!/usr/bin/python3
"""imap-amplification: resident memory of `mxbait serve` while logged-in IMAP clients
APPEND a message and COPY it around, the attack of issue 7.

    bench/imap-amplification.py [BUILD_DIR] [--sessions N] [--size BYTES]

BUILD_DIR holds src/mxbait (default: build; any older build works too: the
configuration uses no key newer than issue 3).  Prints figures; not a test (tests/integration/test_amplification.py asserts the
bound with small budgets).

Each session (Python's imaplib over IMAPS, the fixed account of the config) APPENDs
one message of --size bytes (default 1 MB) to INBOX, then COPYs it into Sent,
Drafts, Trash and Junk until the server says NO (a folder holds 32 MiB of message
bytes, copies counted), all sessions staying logged in.  Printed: the daemon's RSS
before, after each session, and the growth per session; the defaults
imap_session_memory = 32m and imap_memory_budget = 64m apply to a new build.
"""

import imaplib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


def free_ports(n):
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main():
    args = sys.argv[1:]
    build, sessions, size = "build", 12, 1000000
    while args:
        a = args.pop(0)
        if a == "--sessions":
            sessions = int(args.pop(0))
        elif a == "--size":
            size = int(args.pop(0))
        else:
            build = a
    binary = os.path.abspath(os.path.join(build, "src", "mxbait"))
    tmp = tempfile.mkdtemp(prefix="mxb-amp-")
    roles = ["smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s"]
    ports = dict(zip(roles, free_ports(7)))
    conf = os.path.join(tmp, "mxbait.conf")
    with open(conf, "w") as f:
        f.write("hostname = mail.example.test\nlocal_domains = example.test\n")
        f.write(f"data_dir = {tmp}/data\nanalyzer = no\naccounts = alice:alice-Secret-1\n")
        f.write(f"max_connections_per_ip = {sessions + 5}\nconnection_rate_per_ip = 0\n")
        for r, p in ports.items():
            f.write(f"{r}_listen = 127.0.0.1:{p}\n")
    err = open(os.path.join(tmp, "stderr.log"), "wb")
    proc = subprocess.Popen([binary, "serve", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL, cwd=tmp)
    try:
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", ports["imaps"]), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        head = b"From: a@b.example\r\nSubject: amplification\r\n\r\n"
        msg = head + b"x" * (size - len(head) - 2) + b"\r\n"
        clients = []
        rss0 = rss_mb(proc.pid)
        print(f"imap-amplification: {binary}")
        print(f"  {sessions} sessions, one {size} B APPEND each, COPY until NO; "
              f"RSS at start {rss0:.0f} MB")
        copies_total = 0
        for i in range(sessions):
            m = imaplib.IMAP4_SSL("127.0.0.1", ports["imaps"], ssl_context=CTX, timeout=120)
            m.login("alice", "alice-Secret-1")
            typ, data = m.append("INBOX", None, None, msg)
            if typ != "OK":
                print(f"  session {i + 1}: APPEND {typ} {data[0][:80]!r}")
                clients.append(m)
                continue
            uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
            m.select("INBOX")
            copies = 0
            for folder in ("Sent", "Drafts", "Trash", "Junk"):
                while True:
                    typ, data = m.uid("COPY", uid, folder)
                    if typ != "OK":
                        break
                    copies += 1
            copies_total += copies
            clients.append(m)
            print(f"  session {i + 1}: {copies} copies, RSS {rss_mb(proc.pid):.0f} MB")
        rss1 = rss_mb(proc.pid)
        print(f"  RSS grew by {rss1 - rss0:.0f} MB in all, {(rss1 - rss0) / sessions:.1f} MB "
              f"per session ({copies_total} copies of {size} B)")
        for m in clients:
            try:
                m.logout()
            except (imaplib.IMAP4.error, OSError):
                pass
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
