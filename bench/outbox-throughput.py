#!/usr/bin/python3
"""outbox-throughput: how fast the reporter drains its outbox into local receivers
(aiosmtpd for SMTP, a Python HTTP server for the webhook; both in this process, on
loopback).  N reports per sink are put in the outbox with SQL (rendered, addressed,
queued), the sinks' rate limits are lifted, and one `mxbait report run` sends them all;
every report is committed `sending`, `transmitting` and `sent` on the way (fsync'd).
Prints reports per second per sink.  Not a test.
    bench/outbox-throughput.py [BUILD_DIR] [N]
"""
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from report_fakes import HTTPFake, SMTPFake  # noqa: E402

build = sys.argv[1] if len(sys.argv) > 1 else "build"
n = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
binary = os.path.join(ROOT, build, "src", "mxbait")
tmp = tempfile.mkdtemp(prefix="mxbait-bench-outbox-")
try:
    http, smtp = HTTPFake(), SMTPFake()
    conf = os.path.join(tmp, "mxbait.conf")
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    with open(conf, "w") as f:
        f.write(f"data_dir = {data}\nhostname = sensor.example.net\n"
                f"report_smtp_url = {smtp.url}\nreport_webhook_url = {http.base}/webhook\n"
                "report_smtp_rate = 100000\nreport_webhook_rate = 1000000\n"
                "report_daily_budget = 100000\nreport_xarf = no\n")
    subprocess.run([binary, "indicators", "-c", conf, "--no-update"], check=True,
                   capture_output=True)
    arf = (b"From: r@sensor.example.net\r\nSubject: FW: x\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: text/plain\r\n\r\n" + b"evidence line\r\n" * 200)
    now = int(time.time() * 1e6)
    db = sqlite3.connect(os.path.join(data, "intel.db"))
    for sink, payload, rcpt in (("smtp", arf, "abuse@isp.test"),
                                ("webhook", b'{"kind":"ip","value":"192.0.2.1"}', None)):
        db.executemany(
            "INSERT INTO outbox(key, sink, kind, subject, recipient, payload, content_type,"
            " created_us, state) VALUES(?, ?, 'bench', ?, ?, ?, 'x', ?, 'queued')",
            [(f"{sink}-{i:08d}", sink, f"s{i}", rcpt, payload, now) for i in range(n)])
    db.commit()
    db.close()
    t0 = time.monotonic()
    r = subprocess.run([binary, "report", "run", "-c", conf, "--json"], capture_output=True,
                       text=True)
    dt = time.monotonic() - t0
    print(f"outbox drain, {n} SMTP reports ({len(arf)} bytes) + {n} webhook posts, one "
          f"reporter pass, {build}: {r.stdout.strip()}")
    print(f"  total {2 * n} reports in {dt:.2f} s: {2 * n / dt:.0f} reports/s "
          f"(received: smtp {len(smtp.messages)}, webhook {len(http.fake.webhook_keys)})")
    http.close()
    smtp.close()
finally:
    shutil.rmtree(tmp, ignore_errors=True)
