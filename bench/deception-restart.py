#!/usr/bin/python3
"""deception-restart: how long `mxbait serve` takes to start with 100,000 saved accounts.

    bench/deception-restart.py [BUILD_DIR] [--accounts N] [--random]

BUILD_DIR holds src/mxbait (default: build, the release build of `make build`; any
older build works too, for a before/after comparison).  Prints figures; not a test.

What it does, all in a temporary directory on free loopback high ports:
  1. starts the daemon once so that it creates mxbait.db and its secret, and stops it;
  2. writes N rows (default 100,000) into the accounts table, as the daemon saves them:
     user names chosen so that the old unseeded FNV-1a table (2^18 slots for
     max_accounts = 100000) puts them all in one run of slots (what an attacker who
     guessed with such names leaves behind), or random names with --random; every tenth
     account cracked; saved over the last hour;
  3. starts the daemon again and times it from exec until its "ready" log line (the
     ports are bound first, then the saved accounts are loaded, then it is ready);
  4. stops it (SIGTERM) and prints the start-up time (wall, and the daemon's CPU
     seconds until ready, which a busy machine does not inflate) and the "saved
     accounts" count it logged.
"""

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


def fnv1a(b):
    h = 1469598103934665603
    for c in b:
        h ^= c
        h = (h * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return h


def base36(n):
    d = "0123456789abcdefghijklmnopqrstuvwxyz"
    s = ""
    while True:
        s = d[n % 36] + s
        n //= 36
        if not n:
            return s


def colliding_names(n, window=4096):
    out, i = [], 0
    mask = (1 << 18) - 1
    while len(out) < n:
        name = "c" + base36(i)
        if fnv1a(name.encode()) & mask < window:
            out.append(name)
        i += 1
    return out


def start(binary, conf, tmp):
    err = open(os.path.join(tmp, "stderr.log"), "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen([binary, "serve", "-c", conf], stdout=subprocess.DEVNULL,
                            stderr=err, stdin=subprocess.DEVNULL, cwd=tmp)
    return proc, t0, err


def wait_ready(proc, tmp, t0, timeout=600):
    path = os.path.join(tmp, "stderr.log")
    while True:
        with open(path, errors="replace") as f:
            text = f.read()
        if " ready: " in text.split("--- start")[-1]:
            return time.monotonic() - t0, text
        if proc.poll() is not None:
            sys.exit(f"mxbait exited {proc.returncode}:\n{text[-2000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            sys.exit("not ready in time")
        time.sleep(0.01)


def cpu_seconds(pid):
    """utime + stime of the process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(proc, err):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    err.close()


def main():
    args = sys.argv[1:]
    n = 100000
    rnd = False
    build = "build"
    while args:
        a = args.pop(0)
        if a == "--accounts":
            n = int(args.pop(0))
        elif a == "--random":
            rnd = True
        else:
            build = a
    binary = os.path.abspath(os.path.join(build, "src", "mxbait"))
    if not os.access(binary, os.X_OK):
        sys.exit(f"{binary}: not built (make build)")
    tmp = tempfile.mkdtemp(prefix="mxb-restart-")
    ports = free_ports(7)
    roles = ["smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s"]
    conf = os.path.join(tmp, "mxbait.conf")
    with open(conf, "w") as f:
        f.write("hostname = mail.example.test\nlocal_domains = example.test\n")
        f.write(f"data_dir = {tmp}/data\nanalyzer = no\n")
        for r, p in zip(roles, ports):
            f.write(f"{r}_listen = 127.0.0.1:{p}\n")
    with open(os.path.join(tmp, "stderr.log"), "a") as f:
        f.write("--- start 1\n")
    proc, t0, err = start(binary, conf, tmp)
    first, _ = wait_ready(proc, tmp, t0)
    first_cpu = cpu_seconds(proc.pid)
    stop(proc, err)

    t = time.monotonic()
    names = ([f"r{random.getrandbits(48):012x}" for _ in range(n)] if rnd
             else colliding_names(n))
    gen = time.monotonic() - t
    now_us = int(time.time() * 1e6)
    db = sqlite3.connect(os.path.join(tmp, "data", "mxbait.db"))
    rows = []
    for i, name in enumerate(names):
        cracked = i % 10 == 0
        rows.append((name, "123456" if cracked else None, 7 if cracked else 1, 4,
                     now_us - 3600 * 10**6 + i if cracked else 0, 0,
                     now_us - 3600 * 10**6 + i * 10))
    db.executemany("INSERT OR REPLACE INTO accounts(username, password, failures, threshold,"
                   " cracked_us, fixed, updated_us) VALUES(?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()

    with open(os.path.join(tmp, "stderr.log"), "a") as f:
        f.write("--- start 2\n")
    proc, t0, err = start(binary, conf, tmp)
    secs, text = wait_ready(proc, tmp, t0)
    cpu = cpu_seconds(proc.pid)
    stop(proc, err)
    line = [l for l in text.split("--- start 2")[-1].splitlines() if "saved accounts" in l]
    print(f"deception-restart: {binary}")
    print(f"  {n} saved accounts ({'random' if rnd else 'FNV-colliding'} names, made in "
          f"{gen:.1f} s), every tenth cracked")
    print(f"  empty start: {first:.2f} s ({first_cpu:.2f} s CPU); start with the saved "
          f"accounts: {secs:.2f} s ({cpu:.2f} s CPU)")
    if line:
        print("  " + line[-1].split("credential policy: ")[-1])
    subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
