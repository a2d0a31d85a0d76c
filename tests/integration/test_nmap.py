"""nmap's smtp-open-relay script must find no relay: an open relay gets a sensor
blacklisted.  Its 16 probes include the percent hack, bang paths, quoted local parts and
source routes aimed at our own host name and address literal."""

import re
import shutil
import subprocess

import pytest

OPEN_RE = re.compile(r"Server is an open relay \((\d+)/16 tests\)")
CLOSED_RE = re.compile(r"Server (doesn't seem to be|isn't) an open relay")


def run_open_relay(d, port):
    cmd = ["nmap", "-n", "-Pn", "-sT", "-p", str(port), "-d",
           "--script", "+smtp-open-relay",
           "--script-args", "smtp-open-relay.ip=127.0.0.1", "-v", "-v", d.host]
    r = subprocess.run(cmd, capture_output=True, timeout=180)
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
def test_nmap_smtp_open_relay(daemon):
    rc, out = run_open_relay(daemon, daemon.port_smtp)
    assert rc == 0, out[-3000:]
    m = OPEN_RE.search(out)
    # -v -v makes the script list every combination that worked.
    assert not m, "nmap says OPEN RELAY:\n" + "\n".join(
        l for l in out.splitlines() if "smtp-open-relay" in l or "MAIL FROM" in l)
    assert CLOSED_RE.search(out), "no smtp-open-relay verdict in nmap output:\n" + out[-3000:]
    # The script really talked to us: its relay RCPTs were refused and recorded.
    rcpts = daemon.wait_events("rcpt", count=4)
    assert len(rcpts) >= 4, f"only {len(rcpts)} rcpt events from nmap's 16 probes"
    assert not any(e["accepted"] and e["relay"] for e in rcpts), \
        [e for e in rcpts if e["accepted"] and e["relay"]]
    assert not daemon.spool("new")
