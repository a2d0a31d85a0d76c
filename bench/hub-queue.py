#!/usr/bin/python3
"""hub-queue: the sensor's offline queue while the hub is down (docs/scaling.md).

    /usr/bin/python3 bench/hub-queue.py [BUILD_DIR] [DOWN_SECONDS] [EVENTS_PER_SECOND]
    (defaults: build, 600 s, 2000 events/s)

A sensor's data directory gets events at a steady rate (rows appended to mxbait.db's
events table, as the event writer appends them: auth events with JSON), while its
`mxbait hub push` process points at a PostgreSQL that is down for DOWN_SECONDS.
Every 10 s the pusher's resident memory (VmRSS) and the backlog (rows in mxbait.db
beyond the hub's position) are printed.  Then the private PostgreSQL starts
(tests/integration/pg_env.py) and the time to catch up, the ingest rate of the
catch-up and the pusher's memory after it are printed; finally the hub's row count
is compared with the sensor's (equal: nothing lost, nothing duplicated).
Prints figures; not a test.
"""

import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "integration"))
import pg_env  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
DOWN = int(sys.argv[2]) if len(sys.argv) > 2 else 600
RATE = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
MX = os.path.join(root, BUILD, "src", "mxbait")

# The events table as src/store/db.c (migration 0 -> 1) creates it.
EVENTS_DDL = ("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, ts_us INTEGER"
              " NOT NULL, event TEXT NOT NULL, session TEXT, src_ip TEXT, src_port INTEGER,"
              " proto TEXT, json TEXT NOT NULL)")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def writer(path, stop, counter):
    db = sqlite3.connect(path, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    n = 0
    t0 = time.monotonic()
    while not stop.is_set():
        due = int((time.monotonic() - t0) * RATE) - n
        if due <= 0:
            time.sleep(0.01)
            continue
        now = int(time.time() * 1e6)
        rows = []
        for k in range(min(due, 5000)):
            i = n + k
            ip = f"198.51.{(i >> 8) & 255}.{i & 255}"
            j = json.dumps({"event": "auth", "ts_us": now, "session": f"s{i >> 3:015x}",
                            "src_ip": ip, "mechanism": "LOGIN", "username": f"user{i % 997}",
                            "password": f"pw{i % 1009}", "success": False})
            rows.append(("", now, "auth", f"s{i >> 3:015x}", ip, 40000 + i % 20000, "smtp", j))
        db.executemany("INSERT INTO events(ts, ts_us, event, session, src_ip, src_port, proto,"
                       " json) VALUES(?,?,?,?,?,?,?,?)", rows)
        db.commit()
        n += len(rows)
        counter[0] = n
    db.close()


def hub_seq(pg):
    try:
        return int(pg.psql("SELECT coalesce(max(event_seq), 0) FROM sensors") or 0)
    except RuntimeError:
        return -1     # not created yet: the pusher has not reconnected


def main():
    tmp = tempfile.mkdtemp(prefix="mxbait-hubq-")
    data = os.path.join(tmp, "data")
    os.makedirs(data)
    db = sqlite3.connect(os.path.join(data, "mxbait.db"))
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(EVENTS_DDL)
    db.commit()
    db.close()
    pg = pg_env.Postgres()          # initialised, not started: the hub is down
    conf = os.path.join(tmp, "mxbait.conf")
    with open(conf, "w") as f:
        f.write(f"data_dir = {data}\nhostname = q.example.test\nhub_url = {pg.conninfo}\n"
                f"hub_sensor = queue-bench\nhub_batch = 10000\nhub_interval = 200ms\n")
    stop = threading.Event()
    counter = [0]
    wt = threading.Thread(target=writer, args=(os.path.join(data, "mxbait.db"), stop, counter))
    wt.start()
    err = open(os.path.join(tmp, "push.stderr"), "wb")
    push = subprocess.Popen([MX, "hub", "push", "-c", conf], stderr=err, stdout=subprocess.DEVNULL)
    print(f"hub down for {DOWN} s; {RATE} events/s written to the sensor's mxbait.db")
    print(f"{'t (s)':>6} {'backlog (events)':>17} {'pusher RSS (KiB)':>17}")
    t0 = time.monotonic()
    peak = 0
    try:
        while time.monotonic() - t0 < DOWN:
            time.sleep(10)
            r = rss_kb(push.pid)
            peak = max(peak, r)
            print(f"{time.monotonic() - t0:6.0f} {counter[0]:17d} {r:17d}", flush=True)
        backlog = counter[0]
        pg.start()
        t1 = time.monotonic()
        print(f"hub up: backlog {backlog} events; load continues")
        t_conn = None
        while True:
            got = hub_seq(pg)
            if got > 0 and t_conn is None:
                t_conn = time.monotonic()
            if got >= backlog:
                break
            time.sleep(0.2)
        dt = time.monotonic() - t_conn
        print(f"the pusher reconnected {t_conn - t1:.1f} s after the hub came back (its retry"
              " backoff doubles to 30 s while the hub is down)")
        r = rss_kb(push.pid)
        print(f"caught up with the backlog in {dt:.1f} s ({backlog / dt:,.0f} events/s while"
              f" {RATE} events/s kept arriving); pusher RSS {r} KiB; peak while down {peak} KiB")
        stop.set()
        wt.join()
        total = counter[0]
        deadline = time.monotonic() + 600
        while hub_seq(pg) < total:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        n, d = pg.psql("SELECT count(*), count(DISTINCT seq) FROM events").split("|")
        print(f"sensor wrote {total} events; hub has {n} rows, {d} distinct sequence numbers"
              f" ({'equal' if int(n) == int(d) == total else 'MISMATCH'})")
        print(f"mxbait.db size: {os.path.getsize(os.path.join(data, 'mxbait.db')) / 1e6:.1f} MB"
              " (the queue is the event store itself: no second copy)")
    finally:
        stop.set()
        push.terminate()
        push.wait(timeout=60)
        err.close()
        pg.stop()
        subprocess.run(["rm", "-rf", tmp])


if __name__ == "__main__":
    main()
