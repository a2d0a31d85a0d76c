#!/usr/bin/python3
"""hub-ingest: events/s into the PostgreSQL hub from 10 simulated sensors (docs/scaling.md).

    /usr/bin/python3 bench/hub-ingest.py [BUILD_DIR] [SENSORS] [EVENTS_PER_SENSOR] [BATCH]
    (defaults: build, 10, 300000, 10000)

Each simulated sensor is a data directory whose mxbait.db holds EVENTS_PER_SENSOR auth
events (the event writer's columns and JSON, spread over two days so rows cross a
daily partition), pushed by its own `mxbait hub push --once` process, all at once,
into a private PostgreSQL 15 (tests/integration/pg_env.py; fsync on, the defaults of
Debian's package but shared_buffers 256MB).  Prints the wall time, the sustained
events/s (total rows / wall time of the whole run, connections and partition creation
included), the pushers' and the server's CPU time, and the sizes of the events heap
and of each index (what the indexes cost per row).  Prints figures; not a test.
"""

import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(here)
sys.path.insert(0, os.path.join(root, "tests", "integration"))
import pg_env  # noqa: E402

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
SENSORS = int(sys.argv[2]) if len(sys.argv) > 2 else 10
PER = int(sys.argv[3]) if len(sys.argv) > 3 else 300000
BATCH = int(sys.argv[4]) if len(sys.argv) > 4 else 10000
MX = os.path.join(root, BUILD, "src", "mxbait")

EVENTS_DDL = ("CREATE TABLE events (id INTEGER PRIMARY KEY, ts TEXT NOT NULL, ts_us INTEGER"
              " NOT NULL, event TEXT NOT NULL, session TEXT, src_ip TEXT, src_port INTEGER,"
              " proto TEXT, json TEXT NOT NULL)")


def fill(path, sensor):
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    db.execute(EVENTS_DDL)
    t0 = int(time.time() * 1e6) - 86400 * 1000000
    step = 2 * 86400 * 1000000 // PER
    rows = []
    for i in range(PER):
        ts = t0 + i * step
        ip = f"203.0.{(i * 7 + sensor) % 256}.{(i * 13) % 256}"
        ev = "auth" if i % 4 == 0 else ("rcpt" if i % 4 == 1 else "command")
        j = {"event": ev, "ts_us": ts, "session": f"s{sensor:02d}{i >> 3:013x}", "src_ip": ip}
        if ev == "auth":
            j.update(mechanism="LOGIN", username=f"user{i % 991}", password=f"pw{i % 1013}",
                     success=False)
        rows.append(("", ts, ev, j["session"], ip, 40000 + i % 20000, "smtp", json.dumps(j)))
        if len(rows) == 50000:
            db.executemany("INSERT INTO events(ts, ts_us, event, session, src_ip, src_port,"
                           " proto, json) VALUES(?,?,?,?,?,?,?,?)", rows)
            rows = []
    if rows:
        db.executemany("INSERT INTO events(ts, ts_us, event, session, src_ip, src_port, proto,"
                       " json) VALUES(?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def main():
    tmp = tempfile.mkdtemp(prefix="mxbait-hubin-")
    pg = pg_env.Postgres({"shared_buffers": "256MB", "max_wal_size": "4GB"}).start()
    try:
        confs = []
        t = time.monotonic()
        for s in range(SENSORS):
            data = os.path.join(tmp, f"s{s}")
            os.makedirs(data)
            fill(os.path.join(data, "mxbait.db"), s)
            conf = os.path.join(tmp, f"s{s}.conf")
            with open(conf, "w") as f:
                f.write(f"data_dir = {data}\nhostname = s{s}.example.test\n"
                        f"hub_url = {pg.conninfo}\nhub_sensor = sensor-{s:02d}\n"
                        f"hub_batch = {BATCH}\n")
            confs.append(conf)
        print(f"{SENSORS} sensors x {PER:,} events prepared in {time.monotonic() - t:.0f} s")
        subprocess.run([MX, "hub", "migrate", "-c", confs[0]], check=True,
                       stdout=subprocess.DEVNULL)
        srv_cpu0 = server_cpu(pg)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        procs = [subprocess.Popen([MX, "hub", "push", "--once", "--json", "-c", c],
                                  stdout=subprocess.PIPE) for c in confs]
        outs = [json.loads(p.communicate()[0]) for p in procs]
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv_cpu = server_cpu(pg) - srv_cpu0
        total = sum(o["events"] for o in outs)
        n = int(pg.psql("SELECT count(*) FROM events"))
        print(f"pushed {total:,} events ({n:,} rows at the hub) in {wall:.1f} s:"
              f" {total / wall:,.0f} events/s sustained, batch {BATCH}")
        print(f"pushers' CPU {after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime:.1f} s,"
              f" PostgreSQL backends' CPU {srv_cpu:.1f} s (2 cores, shared with other builds)")
        sizes = pg.psql(
            "SELECT sum(pg_relation_size(c.oid)) FILTER (WHERE c.relkind = 'r'),"
            " sum(pg_relation_size(c.oid)) FILTER (WHERE c.relkind = 'i' AND c.relname LIKE '%pkey'),"
            " sum(pg_relation_size(c.oid)) FILTER (WHERE c.relkind = 'i' AND c.relname NOT LIKE '%pkey')"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relname LIKE 'events%'").split("|")
        heap, pkey, brin = (int(x or 0) for x in sizes)
        print(f"events heap {heap / 1e6:.0f} MB ({heap / n:.0f} B/row); primary key"
              f" (sensor, seq, ts) {pkey / 1e6:.0f} MB ({pkey / n:.0f} B/row); BRIN on ts"
              f" {brin / 1e3:.0f} kB; partitions:"
              f" {pg.psql('SELECT count(*) FROM pg_inherits').strip()}")
    finally:
        pg.stop()
        subprocess.run(["rm", "-rf", tmp])


def server_cpu(pg):
    """CPU seconds of the postmaster and its backends so far (from /proc)."""
    pid = pg.pid()
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read().rsplit(")", 1)[1].split()
            if int(p) == pid or int(st[1]) == pid:
                total += (int(st[11]) + int(st[12]) + int(st[13]) + int(st[14])) / tick
        except (OSError, IndexError, ValueError):
            pass
    return total


if __name__ == "__main__":
    main()
