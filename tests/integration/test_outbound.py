"""The daemon never opens an outbound connection: a honeypot that delivers, relays,
calls back, or even resolves names gives itself away and can be abused.

The daemon runs under `strace -f -e trace=connect,sendto,sendmsg,sendmmsg` while real
clients drive it through every role (plain, STARTTLS, implicit TLS, AUTH, relay
attempts to foreign domains accepted after AUTH, nmap's relay probes).  Any connect()
or addressed send to an AF_INET/AF_INET6 peer fails the test (AF_UNIX and AF_NETLINK
are local).  With MXBAIT_STRACE_ALL=1 every daemon of the suite is traced the same
way and checked at its teardown.  The one exception the project allows, the guard's
hand-off of a wrongly diverted MTA's mail to backend_mta, is made by a separate worker
process: the second test proves that its connection to that backend is the only one
and that the daemon itself still connects nowhere.  LeakSanitizer cannot run under ptrace, so this one daemon runs with
detect_leaks=0; every other test's daemon checks leaks."""

import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from conftest import ACCEPT_RE, DOMAIN, MXBAIT_BIN, PASSWORD, USER, marker, sanitizer_env, swaks



@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed "
                    "(scripts/install-deps.sh test installs it)")
def test_no_outbound_connection(make_daemon):
    # Federation and the hub configured too: the daemon serves the signed feed the
    # reporter wrote, and never connects to peers or to the hub itself.
    d = make_daemon(strace=True, feed_publish=True,
                    hub_url="host=192.0.2.1 port=5432 dbname=mxbait connect_timeout=1")
    # A workload that would make a careless daemon deliver, relay or look something up.
    swaks(d, "--from", "a@example.net", "--to", f"alice@{DOMAIN}", "--header",
          "Subject: " + marker())
    swaks(d, "--from", "a@example.net", "--to", "victim@example.org")
    swaks(d, "--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
          "--from", f"{USER}@{DOMAIN}", "--to", "victim@gmail.com,other@example.org",
          "--header", "Subject: " + marker(), port=d.port_submission)
    swaks(d, "--tlsc", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
          "--from", f"{USER}@{DOMAIN}", "--to", "postmaster@[192.0.2.1]",
          port=d.port_smtps)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(d.host, d.port_smtp, timeout=20) as s:
        s.ehlo("relay-test.example.net")
        s.starttls(context=ctx)
        s.ehlo("relay-test.example.net")
        for rcpt in ("x@example.com", "x%example.com@" + DOMAIN, "example.com!x"):
            s.rset()
            s.mail("a@example.net")
            s.rcpt(rcpt)
    if shutil.which("nmap"):
        subprocess.run(["nmap", "-n", "-Pn", "-sT", "-p", str(d.port_smtp), "--script",
                        "+smtp-open-relay", d.host], capture_output=True, timeout=180)
    r = subprocess.run([MXBAIT_BIN, "report", "run", "-c", d.conf_path], capture_output=True,
                       timeout=180, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{d.port_web}/feed/v1/manifest",
                                timeout=20) as resp:
        assert resp.status == 200 and b"mxbait-manifest/1" in resp.read()
    n_msgs = len(d.spool("new"))
    assert n_msgs >= 2, f"workload captured only {n_msgs} messages: it did not run"
    problems = d.stop()
    assert not problems, problems
    with open(d.strace_log, errors="replace") as f:
        log = f.read()
    # accept() is traced too: proof that strace saw the daemon's sockets at all.
    assert ACCEPT_RE.search(log), "strace saw no accept(): the trace is not working"
    bad = d.outbound_calls()
    assert not bad, "outbound network system calls by the daemon:\n" + "\n".join(bad[:20])


@pytest.mark.skipif(not shutil.which("strace") or not shutil.which("smtp-sink"),
                    reason="strace and Postfix's smtp-sink needed")
def test_only_the_handoff_worker_connects(make_daemon, tmp_path):
    """With backend_mta set (issue 9: mail of a wrongly diverted MTA goes on to the real
    one), the one outbound connection allowed is the hand-off worker's, to that backend;
    the network-facing daemon itself still connects nowhere.  Loopback cannot make the
    kernel's NAT divert, so the test marks the captured session as aimed at port 25
    (what SO_ORIGINAL_DST records; tests/integration/test_guard_netns.py does it with
    real nftables)."""
    import os
    import signal
    import sqlite3
    import time
    from conftest import free_ports
    (sink_port,) = free_ports(1)
    sink = subprocess.Popen(["smtp-sink", "-u", "nobody", "-c", f"127.0.0.1:{sink_port}", "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        d = make_daemon(strace=True, backend_mta=f"127.0.0.1:{sink_port}")
        mark = marker()
        swaks(d, "--from", "partner@example.net", "--to", f"alice@{DOMAIN}", "--header",
              "Subject: " + mark, check=0)
        ev = d.wait_events("message")
        assert ev, "no message captured"
        # the worker: the daemon's child whose command line says handoff
        worker = None
        for _ in range(100):
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        with open(f"/proc/{p}/cmdline", "rb") as f:
                            cmd = f.read().split(b"\0")
                        with open(f"/proc/{p}/stat") as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except OSError:
                        continue
                    if b"handoff" in cmd and ppid == d.daemon_pid:
                        worker = int(p)
            if worker:
                break
            time.sleep(0.1)
        assert worker, "no hand-off worker child"
        d.outbound_allowed = lambda l: (l.split()[0] == str(worker) and
                                        f"htons({sink_port})" in l and "127.0.0.1" in l)
        db = sqlite3.connect(os.path.join(d.data_dir, "mxbait.db"), timeout=10)
        db.execute("UPDATE sessions SET orig_dst_ip = '192.0.2.1', orig_dst_port = 25 "
                   "WHERE session = ?", (ev[0]["session"],))
        db.commit()
        db.close()
        state = None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and state != "delivered":
            try:
                h = sqlite3.connect(os.path.join(d.data_dir, "handoff.db"), timeout=5)
                row = h.execute("SELECT state, recipients FROM handoff").fetchone()
                h.close()
                state = row[0] if row else None
            except sqlite3.Error:
                pass
            time.sleep(0.2)
        assert state == "delivered", state
        daemon_pid = d.daemon_pid
        problems = d.stop()
        assert not problems, problems
    finally:
        sink.send_signal(signal.SIGTERM)
        sink.wait(10)
    calls = d.outbound_calls()
    assert calls, "the worker's connect to the backend was not seen: the trace is not working"
    for line in calls:
        pid = int(line.split()[0])
        assert pid == worker, f"an outbound call by pid {pid}, not the worker {worker} " \
            f"(daemon {daemon_pid}): {line}"
        assert f"htons({sink_port})" in line and "127.0.0.1" in line, line
