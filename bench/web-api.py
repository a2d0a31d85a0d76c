#!/usr/bin/python3
"""web-api: the web server under load (`make bench`; prints figures, not a test).

1. A database of EVENTS events (default 1,000,000): sessions of a password-guessing
   botnet over the last 24 hours (connect, EHLO, ~7 AUTH attempts, disconnect), written
   straight into mxbait.db with the schema the daemon created, the derived tables
   (sessions, auth_attempts, messages, accounts) filled the way the writer fills them.
2. `mxbait serve` on it (web on loopback).  API latency: each endpoint of the overview
   page N times, and the whole overview (its 6 requests in parallel, as the page
   makes them); p50, p99, max.  Aim: overview p99 under 50 ms.
3. The event loop's added latency: an SMTP session (connect, banner, EHLO, QUIT) timed
   N times with the web server idle, then N times while POLLERS clients poll the
   overview's endpoints without pause.

usage: bench/web-api.py [BUILD_DIR] [--events N] [--samples N] [--pollers N]
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"nothing listens on {port}")


def fill(db_path, n_events, seed=7):
    """Append n_events of a botnet's guessing to an mxbait.db the daemon created."""
    rnd = random.Random(seed)
    db = sqlite3.connect(db_path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    now = int(time.time() * 1e6)
    users = ["admin", "info", "test", "user", "support", "sales", "office", "webmaster",
             "postmaster", "contact"] + [f"user{i}" for i in range(500)]
    pwds = ["123456", "password", "admin", "12345678", "qwerty"] + [f"pw{i}" for i in range(3000)]
    ev_rows, sess_rows, auth_rows = [], [], []
    n = sid = 0
    while n < n_events:
        sid += 1
        ip = f"203.0.{rnd.randrange(0, 64)}.{rnd.randrange(1, 255)}"
        prefix = ".".join(ip.split(".")[:3]) + ".0/24"
        t = now - rnd.randrange(0, 86400 * 1000000)
        s = f"B{sid:015x}"
        proto = rnd.choice(["smtps", "submission", "imaps", "pop3s"])
        attempts = rnd.randrange(3, 10)

        def ev(name, ts, extra):
            d = {"event": name, "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1e6)) +
                 ".%06dZ" % (ts % 1000000), "session": s, "src_ip": ip, "src_port": 40000,
                 "proto": proto}
            d.update(extra)
            ev_rows.append((d["ts"], ts, name, s, ip, 40000, proto, json.dumps(d)))

        ev("connect", t, {"dst_ip": "127.0.0.1", "dst_port": 465})
        ev("helo", t + 1000, {"verb": "EHLO", "name": "client"})
        for a in range(attempts):
            u, p = rnd.choice(users), rnd.choice(pwds)
            ts = t + 2000 + a * 1000
            ev("auth", ts, {"mechanism": "LOGIN", "username": u, "password": p, "authzid": None,
                            "success": False, "result": "fail"})
            auth_rows.append((ts, s, ip, prefix, proto, "LOGIN", u, p, 0, "fail"))
        end = t + 2000 + attempts * 1000 + 1000
        ev("disconnect", end, {"reason": "quit", "duration_ms": (end - t) // 1000,
                               "state": "auth", "commands": attempts + 2, "errors": attempts,
                               "messages": 0})
        sess_rows.append((s, proto, ip, 40000, "127.0.0.1", 465, t, end, (end - t) // 1000,
                          "client", attempts, attempts + 2, attempts, "auth", "quit"))
        n += attempts + 3
        if len(ev_rows) > 50000:
            flush(db, ev_rows, sess_rows, auth_rows)
    flush(db, ev_rows, sess_rows, auth_rows)
    db.execute("INSERT OR REPLACE INTO accounts(username, password, failures, threshold,"
               " cracked_us, fixed, updated_us) VALUES('admin', '123456', 5, 3, ?, 0, ?)",
               (now - 3600 * 1000000, now))
    db.commit()
    db.execute("ANALYZE")
    db.close()
    return n, sid


def flush(db, ev_rows, sess_rows, auth_rows):
    db.executemany("INSERT INTO events(ts, ts_us, event, session, src_ip, src_port, proto, json)"
                   " VALUES(?,?,?,?,?,?,?,?)", ev_rows)
    db.executemany("INSERT INTO sessions(session, proto, src_ip, src_port, dst_ip, dst_port,"
                   " started_us, ended_us, duration_ms, helo, auth_attempts, commands, errors,"
                   " state, reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", sess_rows)
    db.executemany("INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto, mechanism,"
                   " username, password, success, result) VALUES(?,?,?,?,?,?,?,?,?,?)", auth_rows)
    db.commit()
    ev_rows.clear()
    sess_rows.clear()
    auth_rows.clear()


OVERVIEW = ["/api/v1/stats",
            "/api/v1/timeseries?series=auth&since=1h&step=1m",
            "/api/v1/timeseries?series=sessions&since=1h&step=1m",
            "/api/v1/timeseries?series=sources&since=1h&step=1m",
            "/api/v1/timeseries?series=messages&since=24h&step=1h",
            "/api/v1/credentials?top=10"]
OTHERS = ["/api/v1/attackers?top=100", "/api/v1/credentials?top=50", "/api/v1/sessions?limit=50",
          "/api/v1/auth-attempts?limit=50", "/metrics"]


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    t0 = time.perf_counter()
    c.request("GET", path)
    r = c.getresponse()
    r.read()
    dt = time.perf_counter() - t0
    c.close()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
    return dt


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def fmt(xs):
    return (f"p50 {pct(xs, 50) * 1000:7.1f} ms  p99 {pct(xs, 99) * 1000:7.1f} ms  "
            f"max {max(xs) * 1000:7.1f} ms  (n={len(xs)})")


def smtp_session(port):
    t0 = time.perf_counter()
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    f = s.makefile("rb")
    f.readline()
    s.sendall(b"EHLO bench.example\r\n")
    while True:
        line = f.readline()
        if line[3:4] != b"-":
            break
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--events", type=int, default=1000000)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--pollers", type=int, default=4)
    a = ap.parse_args()
    exe = os.path.join(ROOT, a.build, "src", "mxbait")
    tmp = tempfile.mkdtemp(prefix="mxbait-web-bench-")
    p_smtp, p_web = free_port(), free_port()
    conf = os.path.join(tmp, "mxbait.conf")
    with open(conf, "w") as f:
        f.write(f"hostname = mail.example.test\nlocal_domains = example.test\n"
                f"smtp_listen = 127.0.0.1:{p_smtp}\nsubmission_listen =\nsmtps_listen =\n"
                "imap_listen =\nimaps_listen =\npop3_listen =\npop3s_listen =\n"
                f"web_listen = 127.0.0.1:{p_web}\nanalyzer = no\nmax_connections_per_ip = 0\n"
                f"connection_rate_per_ip = 0\ndata_dir = {tmp}/data\n")
    proc = None
    try:
        def start():
            p = subprocess.Popen([exe, "serve", "-c", conf], stdout=subprocess.DEVNULL,
                                 stderr=open(os.path.join(tmp, "serve.log"), "ab"))
            wait_port(p_web)
            wait_port(p_smtp)
            return p

        def stop(p):
            p.send_signal(signal.SIGTERM)
            p.wait(60)

        stop(start())  # the schema
        t0 = time.monotonic()
        n, sessions = fill(os.path.join(tmp, "data", "mxbait.db"), a.events)
        size = os.path.getsize(os.path.join(tmp, "data", "mxbait.db"))
        print(f"web-api: {n} events, {sessions} sessions written in {time.monotonic() - t0:.0f} s "
              f"(mxbait.db {size / 1e6:.0f} MB)")
        proc = start()
        print("first request of each endpoint (aggregates: computed now, then cached):")
        for path in OVERVIEW + OTHERS:
            print(f"  {path:55s} {get(p_web, path) * 1000:9.1f} ms")
        print(f"API latency, sequential requests ({a.samples} each):")
        for path in OVERVIEW + OTHERS:
            xs = [get(p_web, path) for _ in range(a.samples)]
            print(f"  {path:55s} {fmt(xs)}")
        whole = []
        for _ in range(a.samples):
            t = time.perf_counter()
            ths = [threading.Thread(target=get, args=(p_web, p)) for p in OVERVIEW]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            whole.append(time.perf_counter() - t)
        print(f"  overview page (its 6 requests in parallel)             {fmt(whole)}")

        idle = [smtp_session(p_smtp) for _ in range(a.samples * 3)]
        stop_flag = threading.Event()
        polls = [0]

        def poller():
            i = 0
            while not stop_flag.is_set():
                get(p_web, (OVERVIEW + OTHERS)[i % (len(OVERVIEW) + len(OTHERS))])
                polls[0] += 1
                i += 1

        ths = [threading.Thread(target=poller) for _ in range(a.pollers)]
        for th in ths:
            th.start()
        time.sleep(0.5)
        t = time.monotonic()
        busy = [smtp_session(p_smtp) for _ in range(a.samples * 3)]
        el = time.monotonic() - t
        stop_flag.set()
        for th in ths:
            th.join()
        print("SMTP session (connect, banner, EHLO, QUIT) on the same event loop:")
        print(f"  web idle                                             {fmt(idle)}")
        print(f"  {a.pollers} clients polling the API without pause ({polls[0] / el:.0f} req/s) {fmt(busy)}")
        print(f"  added: p50 {(pct(busy, 50) - pct(idle, 50)) * 1000:+.1f} ms, "
              f"p99 {(pct(busy, 99) - pct(idle, 99)) * 1000:+.1f} ms")
    finally:
        if proc and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
