"""The guard's log watch on the systemd journal (watch_journal, libsystemd's sd-journal),
and on a log file across rotation and truncation.  The journal files are written by
systemd's own systemd-journal-remote from journal export records (no journald runs here);
mxbait reads the directory with watch_journal_directory.  Entries older than the start
are history and must not count; new ones must, each once.  About 10 s."""

import os
import shutil
import subprocess
import tempfile
import time

import pytest

JREMOTE = "/lib/systemd/systemd-journal-remote"
BOOT = "0123456789abcdef0123456789abcdef"


def write_journal(path, entries, mono0):
    """entries: (identifier, message); written with systemd-journal-remote."""
    now = int(time.time() * 1e6)
    recs = []
    for i, (ident, msg) in enumerate(entries):
        recs.append(f"__REALTIME_TIMESTAMP={now + i}\n__MONOTONIC_TIMESTAMP={mono0 + i}\n"
                    f"_BOOT_ID={BOOT}\n_HOSTNAME=mx1\nSYSLOG_IDENTIFIER={ident}\n"
                    f"MESSAGE={msg}\n\n")
    r = subprocess.run([JREMOTE, "-o", path, "-"], input="".join(recs).encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr


def guard_ready(d, timeout=20):
    """The listeners answer before the guard has started: wait for it (its log line)."""
    deadline = time.monotonic() + timeout
    while "guard ready" not in d.stderr_text():
        assert time.monotonic() < deadline, d.stderr_text()[-2000:]
        time.sleep(0.05)


def sasl(ip, user):
    return ("postfix/smtpd", f"warning: unknown[{ip}]:4444: SASL LOGIN authentication failed: "
                             f"UGFzc3dvcmQ6, sasl_username={user}")


@pytest.mark.skipif(not os.path.exists(JREMOTE), reason="systemd-journal-remote not installed")
def test_journal(make_daemon):
    jdir = tempfile.mkdtemp(prefix="mxbait-journal-")
    try:
        write_journal(os.path.join(jdir, "old.journal"), [sasl("203.0.113.8", "old")] * 6, 1000)
        d = make_daemon(watch_journal=True, watch_journal_directory=jdir,
                        trusted_networks="192.0.2.250/32", guard_ip_failures=5)
        guard_ready(d)
        write_journal(os.path.join(jdir, "new.journal"),
                      [sasl("203.0.113.9", f"user{i}") for i in range(5)] +
                      [("dovecot", "auth: passwd-file(bob,2001:db8::10,<x1>): unknown user"),
                       ("sshd", "warning: unknown[203.0.113.11]: SASL LOGIN authentication "
                                "failed: x")], 100000)
        evs = d.wait_events("guard_auth", count=6, timeout=15)
        assert not [e for e in evs if e["src_ip"] == "203.0.113.8"], "history counted"
        pf = [e for e in evs if e["src_ip"] == "203.0.113.9"]
        assert len(pf) == 5 and {e["username"] for e in pf} == {f"user{i}" for i in range(5)}
        assert all(e["origin"] == "postfix_log" for e in pf), pf
        assert all(e["src_port"] == 4444 and e["stage"] == "log" for e in pf), pf
        dv = [e for e in evs if e["src_ip"] == "2001:db8::10"]
        assert dv and dv[0]["user_known"] is False and dv[0]["origin"] == "dovecot_log", dv
        assert not [e for e in evs if e["src_ip"] == "203.0.113.11"]  # not Postfix's line
        dec = d.wait_events("decision", src_ip="203.0.113.9")
        assert dec and dec[0]["reason"] == "ip_failures", dec
        assert len(dec[0]["evidence"]) == 5
    finally:
        shutil.rmtree(jdir, ignore_errors=True)


def test_log_file_rotation(make_daemon, tmp_path):
    """A followed file: lines present at start are history; appended lines count;
    after a rotation (rename, new file) and a truncation the new lines count too."""
    log = tmp_path / "mail.log"
    line = ("Dec  6 22:10:01 mx1 postfix/smtpd[7]: warning: unknown[{ip}]:25: SASL LOGIN "
            "authentication failed: x, sasl_username={u}\n")
    log.write_text(line.format(ip="198.51.100.1", u="old"))
    d = make_daemon(watch_log_files=str(log), trusted_networks="192.0.2.250/32")
    guard_ready(d)
    with open(log, "a") as f:
        f.write(line.format(ip="198.51.100.2", u="a"))
        f.write(line.format(ip="198.51.100.3", u="b")[:40])  # half a line
    time.sleep(0.6)
    with open(log, "a") as f:
        f.write(line.format(ip="198.51.100.3", u="b")[40:])
    assert d.wait_events("guard_auth", src_ip="198.51.100.3")
    os.rename(log, str(log) + ".1")
    with open(str(log) + ".1", "a") as f:  # written to the old file before the switch
        f.write(line.format(ip="198.51.100.4", u="c"))
    log.write_text(line.format(ip="198.51.100.5", u="d"))
    assert d.wait_events("guard_auth", src_ip="198.51.100.5")
    assert d.wait_events("guard_auth", src_ip="198.51.100.4")
    time.sleep(0.5)
    # truncated and rewritten past its old size between two polls (copytruncate): seen by
    # its beginning, which changed (a later time stamp)
    log.write_text(line.format(ip="198.51.100.6", u="e").replace("22:10:01", "22:10:02") * 2)
    assert d.wait_events("guard_auth", src_ip="198.51.100.6")
    seen = [e["src_ip"] for e in d.events("guard_auth")]
    assert "198.51.100.1" not in seen, "history counted"
    for ip in ("198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"):
        assert seen.count(ip) == 1, (ip, seen)
    assert seen.count("198.51.100.6") == 2, seen
