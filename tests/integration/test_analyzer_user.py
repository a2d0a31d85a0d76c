"""The analyzer's worker as its own user (issue 7 item 4, analyzer_user), from outside.

With user = nobody and analyzer_user = a temporary account (useradd, removed after),
a daemon started as root parses captured mail in a worker running as that account:
- messages sent with swaks are analysed (rows in analysis.db, `mxbait urls` lists the
  link);
- the worker runs with the account's uid and gid, no supplementary groups, no
  capability in any set, seccomp, no new privileges; the launcher that starts it keeps
  CAP_SETUID, CAP_SETGID and CAP_SETPCAP only, under its identity filter; the daemon
  side and the network process hold none;
- the worker cannot open a spool file by its path, nor a world-readable file outside
  its Landlock paths (test hook MXBAIT_TEST_WORKER_PROBE: it tries right after
  entering its sandbox and says what happened);
- a message that crashes the worker (test hook MXBAIT_TEST_WORKER_CRASH: the worker
  makes a forbidden system call when it sees the mark) kills two workers, is skipped,
  and the next message is analysed by a new worker, the daemon side never restarted;
- started the way the systemd unit starts it (as the account, no `user`, with
  CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID and CAP_SETPCAP ambient): the same,
  and serve holds no capability in any set once listening; without analyzer_user the
  three are dropped at once; with it but without the three, serve refuses to start;
- `mxbait check` refuses analyzer_user = root, = the account serve runs as (user, or
  the one checking), and warns when that account is unknown (root, no user).
Needs root (CI runs as root)."""

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time

import pytest

from conftest import (ALL_EVENT_LINES, DOMAIN, MXBAIT_BIN, Daemon, marker, proc_children,
                      proc_status, sanitizer_env, swaks)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")

KEEP_CAPS = (1 << 6) | (1 << 7) | (1 << 8)  # CAP_SETGID, CAP_SETUID, CAP_SETPCAP


def _argv(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
    except OSError:
        return []


def _child_with(pid, flag):
    return [k for k in proc_children(pid) if flag in _argv(k)]


def _wait(cond, what, d, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        assert time.monotonic() < deadline, what + ":\n" + d.stderr_text()[-4000:]
        time.sleep(0.2)


def _analysed(db, needle):
    # never create it (or its -wal, -shm) as root: the daemon's account could then not
    # write it; the analyzer keeps all three while it runs
    if not os.path.exists(db + "-shm"):
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            return con.execute("SELECT count(*) FROM links WHERE url LIKE ?",
                               (f"%{needle}%",)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@pytest.fixture
def analyzer_account():
    name = "mxba" + os.urandom(3).hex()
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                        "--shell", "/usr/sbin/nologin", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("useradd failed: " + r.stderr)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


@root_only
def test_worker_runs_as_analyzer_user(analyzer_account, request, monkeypatch):
    import pwd
    tmp = tempfile.mkdtemp(prefix="mxbait-anuser-")
    os.chmod(tmp, 0o755)  # nobody (the daemon's user) comes this far
    crash = "MXBAIT-CRASH-" + marker()
    monkeypatch.setenv("MXBAIT_TEST_WORKER_CRASH", crash)
    data = os.path.join(tmp, "data")
    probe = os.path.join(data, "spool", "new", "1700000000.M1P1.probe")
    # and a file anyone may read, outside the worker's Landlock paths: kept out by
    # Landlock alone (the spool file is also kept out by its mode and owner)
    world = os.path.join(tmp, "world-readable.txt")
    with open(world, "w") as f:
        f.write("x\n")
    os.chmod(world, 0o644)
    monkeypatch.setenv("MXBAIT_TEST_WORKER_PROBE", f"{probe}:{world}")
    os.makedirs(os.path.dirname(probe))
    m0 = marker()
    with open(probe, "w") as f:  # a message already waiting: the worker's probe target
        f.write(f"From: a@bad.example\nSubject: waiting\n\nhttp://{m0}.example.com/w\n")
    d = Daemon(tmp, request.node.name, user="nobody", analyzer_user=analyzer_account)
    d.start()
    try:
        au = pwd.getpwnam(analyzer_account)
        nobody = pwd.getpwnam("nobody")
        db = os.path.join(data, "analysis.db")
        _wait(lambda: _analysed(db, m0), "the waiting message was not analysed", d)
        m1 = marker()
        swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body",
              f"{m1} http://{m1}.example.com/x", check=0)
        _wait(lambda: _analysed(db, m1), "the swaks message was not analysed", d)
        r = subprocess.run([MXBAIT_BIN, "urls", "-d", data], capture_output=True, text=True,
                           env=sanitizer_env())
        assert r.returncode == 0 and f"{m1}.example.com" in r.stdout, r.stdout + r.stderr

        # who runs what
        daemon_side = _child_with(d.pid, b"--daemon")
        launcher = _child_with(d.pid, b"--launcher")
        assert len(daemon_side) == 1 and len(launcher) == 1, d.stderr_text()[-3000:]
        workers = _child_with(launcher[0], b"--worker")
        assert len(workers) == 1, workers
        w = proc_status(workers[0])
        assert w["Uid"].split() == [str(au.pw_uid)] * 4, w["Uid"]
        assert w["Gid"].split() == [str(au.pw_gid)] * 4, w["Gid"]
        assert w["Groups"] == "", w["Groups"]
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(w[cap], 16) == 0, f"worker {cap} {w[cap]}"
        assert w["Seccomp"] == "2" and w["NoNewPrivs"] == "1", w
        lst = proc_status(launcher[0])
        assert lst["Uid"].split() == [str(nobody.pw_uid)] * 4, lst["Uid"]
        assert int(lst["CapEff"], 16) == KEEP_CAPS, lst["CapEff"]
        assert int(lst["CapPrm"], 16) == KEEP_CAPS, lst["CapPrm"]
        assert int(lst["CapBnd"], 16) == KEEP_CAPS, lst["CapBnd"]
        assert int(lst["CapInh"], 16) == 0 and int(lst["CapAmb"], 16) == 0, lst
        assert lst["Seccomp"] == "2" and lst["NoNewPrivs"] == "1", lst
        for pid in (daemon_side[0], d.pid):
            st = proc_status(pid)
            assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
            for cap in ("CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(st[cap], 16) == 0, f"pid {pid} {cap} {st[cap]}"
        # the worker could not open a spool file by its path
        assert f"probe: open {probe}: Permission denied" in d.stderr_text(), \
            d.stderr_text()[-3000:]
        if "no Landlock" not in d.stderr_text():
            assert f"probe: open {world}: Permission denied" in d.stderr_text(), \
                d.stderr_text()[-3000:]
        assert "probe: opened" not in d.stderr_text()

        # a message that kills its worker is skipped; the next one is analysed
        swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body",
              f"{crash} http://{crash.lower()}.example.com/c", check=0)
        _wait(lambda: d.stderr_text().count("killed by its system-call filter") >= 2 and
              "skipped after 2 failed workers" in d.stderr_text(),
              "the crashing message did not kill two workers", d)
        m2 = marker()
        swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body",
              f"{m2} http://{m2}.example.com/y", check=0)
        _wait(lambda: _analysed(db, m2), "no analysis after the worker crashes", d)
        assert _analysed(db, crash.lower()) == 0
        assert _child_with(d.pid, b"--daemon") == daemon_side, "the daemon side restarted"
        assert "analyzer exited" not in d.stderr_text()
    finally:
        problems = d.stop()
        ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
        shutil.rmtree(tmp, ignore_errors=True)
    assert not problems, "; ".join(problems) + "\n" + d.stderr_text()[-3000:]
    # the launcher and its workers went with the daemon
    assert not [p for p in os.listdir("/proc") if p.isdigit() and
                b"--launcher" in _argv(p) and analyzer_account.encode() in _argv(p)]


UNIT_CAPS = "+net_bind_service,+setuid,+setgid,+setpcap,+net_admin"  # etc/mxbait.service.in


def _unit_style(d, account):
    """Start d's serve the way etc/mxbait.service.in does: as account (User=, Group=),
    no supplementary groups, CAP_NET_BIND_SERVICE, CAP_SETUID, CAP_SETGID, CAP_SETPCAP
    and CAP_NET_ADMIN ambient (AmbientCapabilities=) and bounding
    (CapabilityBoundingSet=), no new privileges.  (divert is off here: CAP_NET_ADMIN
    must go at start, and never reach the launcher.)"""
    import pwd
    pw = pwd.getpwnam(account)
    os.makedirs(d.data_dir, mode=0o700)
    os.chown(d.data_dir, pw.pw_uid, pw.pw_gid)
    d.wrap = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups",
              f"--inh-caps={UNIT_CAPS}", f"--ambient-caps={UNIT_CAPS}",
              f"--bounding-set=-all,{UNIT_CAPS}", "--no-new-privs"]
    return pw


@root_only
def test_unit_style_start_with_analyzer_user(analyzer_account, request):
    """No `user`, no root: the unit's start.  The worker runs as analyzer_user, the
    launcher keeps the three capabilities, the network process none in any set."""
    import pwd
    tmp = tempfile.mkdtemp(prefix="mxbait-anunit-")
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, request.node.name, analyzer_user=analyzer_account)
    nobody = _unit_style(d, "nobody")
    d.start()
    try:
        au = pwd.getpwnam(analyzer_account)
        db = os.path.join(d.data_dir, "analysis.db")
        m1 = marker()
        swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body",
              f"{m1} http://{m1}.example.com/x", check=0)
        _wait(lambda: _analysed(db, m1), "the swaks message was not analysed", d)
        daemon_side = _child_with(d.pid, b"--daemon")
        launcher = _child_with(d.pid, b"--launcher")
        assert len(daemon_side) == 1 and len(launcher) == 1, d.stderr_text()[-3000:]
        workers = _child_with(launcher[0], b"--worker")
        assert len(workers) == 1, workers
        w = proc_status(workers[0])
        assert w["Uid"].split() == [str(au.pw_uid)] * 4, w["Uid"]
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(w[cap], 16) == 0, f"worker {cap} {w[cap]}"
        lst = proc_status(launcher[0])
        assert lst["Uid"].split() == [str(nobody.pw_uid)] * 4, lst["Uid"]
        for cap in ("CapEff", "CapPrm", "CapBnd"):
            assert int(lst[cap], 16) == KEEP_CAPS, f"launcher {cap} {lst[cap]}"
        assert int(lst["CapInh"], 16) == 0 and int(lst["CapAmb"], 16) == 0, lst
        assert lst["Seccomp"] == "2" and lst["NoNewPrivs"] == "1", lst
        for pid in (d.pid, daemon_side[0]):
            st = proc_status(pid)
            assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
            for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
                assert int(st[cap], 16) == 0, f"pid {pid} {cap} {st[cap]}"
    finally:
        problems = d.stop()
        ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
        shutil.rmtree(tmp, ignore_errors=True)
    assert not problems, "; ".join(problems) + "\n" + d.stderr_text()[-3000:]


@root_only
def test_unit_style_start_without_analyzer_user(request):
    """The same start without analyzer_user: the three capabilities go at once, and
    nothing is left in any set once the ports are bound."""
    tmp = tempfile.mkdtemp(prefix="mxbait-anunit-")
    os.chmod(tmp, 0o755)
    d = Daemon(tmp, request.node.name)
    _unit_style(d, "nobody")
    d.start()
    try:
        st = proc_status(d.pid)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(st[cap], 16) == 0, f"serve {cap} {st[cap]}"
        assert not _child_with(d.pid, b"--launcher")
    finally:
        problems = d.stop()
        ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
        shutil.rmtree(tmp, ignore_errors=True)
    assert not problems, "; ".join(problems) + "\n" + d.stderr_text()[-3000:]
    # and with analyzer_user set, a start as the account without the three fails
    tmp = tempfile.mkdtemp(prefix="mxbait-anunit-")
    os.chmod(tmp, 0o755)
    try:
        d = Daemon(tmp, request.node.name + "-nocaps", analyzer_user="root")
        _unit_style(d, "nobody")
        r = subprocess.run([a.replace(UNIT_CAPS, "+net_bind_service") for a in d.wrap] +
                           [MXBAIT_BIN, "serve", "-c", d.conf_path], capture_output=True,
                           text=True, env=sanitizer_env(), timeout=60)
        assert r.returncode != 0 and "analyzer_user" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@root_only
def test_check_refuses_bad_analyzer_user(analyzer_account, tmp_path):
    def check(**keys):
        conf = tmp_path / "c.conf"
        conf.write_text(f"data_dir = {tmp_path}/data\n" +
                        "".join(f"{k} = {v}\n" for k, v in keys.items()))
        r = subprocess.run([MXBAIT_BIN, "check", "-c", str(conf), "--no-ports"],
                           capture_output=True, text=True, env=sanitizer_env())
        return r.returncode, r.stdout + r.stderr
    rc, out = check(user="nobody", analyzer_user="root")
    assert rc == 1 and "analyzer_user: analyzer_user root is root" in out, out
    rc, out = check(user="nobody", analyzer_user="nobody")
    assert rc == 1 and "has the uid of nobody" in out, out
    # user unset, checked as root: the account serve runs as is not known here
    rc, out = check(analyzer_user=analyzer_account)
    assert "analyzer_user: warning: user is not set" in out, out
    # ... checked as that account (as the unit runs serve): the rule applies to it
    pub = tempfile.mkdtemp(prefix="mxbait-ancheck-")  # pytest's tmp is root's only
    try:
        os.chmod(pub, 0o755)
        conf = os.path.join(pub, "c.conf")
        with open(conf, "w") as f:
            f.write(f"data_dir = {pub}/data\nanalyzer_user = nobody\n")
        os.chmod(conf, 0o644)
        r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                            MXBAIT_BIN, "check", "-c", conf, "--no-ports"],
                           capture_output=True, text=True, env=sanitizer_env())
    finally:
        shutil.rmtree(pub, ignore_errors=True)
    assert r.returncode == 1 and "has the uid of nobody" in r.stdout + r.stderr, \
        r.stdout + r.stderr
    rc, out = check(user="nobody", analyzer_user=analyzer_account)
    assert "analyzer_user" not in out, out
