"""Safe files and the analyzer's sandbox (issue 7 items 1 and 4), from the outside.

Safe files: a daemon started on a data directory someone made open (0755, a 0644
events.jsonl) tightens it, and after a session with a message, a login and an analysis,
every directory it holds is 0700 and every file 0600; a second, unprivileged user (a
temporary account made with useradd, removed afterwards) can neither list nor read any
of it.  Needs root (to make the account and run as it; CI runs as root).

Sandbox: the analyzer child runs with seccomp (Seccomp: 2 in /proc), no capabilities,
not dumpable, under Landlock; with the test hook MXBAIT_TEST_SANDBOX_TRIGGER it makes a
forbidden system call once, is killed by SIGSYS, and the daemon restarts it, after
which the analysis of the analyzer corpus (tests/analyze) under the filter gives the
same rows as `mxbait analyze --store` without any sandbox."""

import glob
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import (ALL_EVENT_LINES, DOMAIN, MXBAIT_BIN, ROOT, Daemon, marker, proc_status,
                      sanitizer_env, swaks)

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (CI runs as root)")


def _analyzer_pid(d, timeout=20, not_pid=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for tid in os.listdir(f"/proc/{d.pid}/task"):
            try:
                kids = open(f"/proc/{d.pid}/task/{tid}/children").read().split()
            except OSError:
                continue
            for k in kids:
                try:
                    argv = open(f"/proc/{k}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if b"analyze" in argv and b"--daemon" in argv and int(k) != not_pid:
                    # sandboxed once it says so
                    if "analyzer sandbox:" in d.stderr_text():
                        return int(k)
        time.sleep(0.1)
    return None


def _stop(d):
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    assert not problems, "; ".join(problems) + "\n" + d.stderr_text()[-3000:]


@pytest.fixture
def open_tmp():
    t = tempfile.mkdtemp(prefix="mxbait-files-")
    os.chmod(t, 0o755)  # the other user may come this far
    yield t
    shutil.rmtree(t, ignore_errors=True)


@pytest.fixture
def other_user():
    name = "mxbt" + os.urandom(3).hex()
    r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("useradd failed: " + r.stderr)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], capture_output=True)


def _as_user(user, *argv):
    return subprocess.run(["setpriv", f"--reuid={user}", f"--regid={user}",
                           "--clear-groups", "--"] + list(argv), capture_output=True)


def _walk(data, other_user):
    """(problems, entries): modes other than 0700/0600, and what other_user can read."""
    bad = []
    n = 0
    for dirpath, dirs, files in os.walk(data):
        for name in [dirpath] + [os.path.join(dirpath, f) for f in files]:
            try:
                st = os.lstat(name)
            except FileNotFoundError:
                continue
            n += 1
            want = 0o700 if stat.S_ISDIR(st.st_mode) else 0o600
            if stat.S_IMODE(st.st_mode) != want:
                bad.append(f"{name} {oct(stat.S_IMODE(st.st_mode))}")
            r = (_as_user(other_user, "ls", name) if stat.S_ISDIR(st.st_mode)
                 else _as_user(other_user, "cat", name))
            if r.returncode == 0:
                bad.append(f"{name}: readable by {other_user}")
    return bad, n


@root_only
@pytest.mark.parametrize("daemon_user", ["root", "nobody"])
def test_files_private_to_the_daemon(open_tmp, other_user, daemon_user, request):
    data = os.path.join(open_tmp, "data")
    os.makedirs(os.path.join(data, "spool", "new"))
    for p in (data, os.path.join(data, "spool"), os.path.join(data, "spool", "new")):
        os.chmod(p, 0o755)
    with open(os.path.join(data, "events.jsonl"), "w") as f:
        f.write("")
    os.chmod(os.path.join(data, "events.jsonl"), 0o644)
    extra = {} if daemon_user == "root" else {"user": daemon_user}
    d = Daemon(open_tmp, request.node.name, **extra)
    d.start()
    try:
        m = marker()
        rc, out = swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body",
                        f"{m} http://{m}.example.com/x")
        assert rc == 0, out
        # a captured password: what another user must never read
        swaks(d, "--to", f"v@{DOMAIN}", "--tls", "--auth", "PLAIN", "--auth-user", "carol",
              "--auth-password", "Leaked-Real-Password-1", port=d.port_submission)
        assert d.wait_events("message")
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join(data, "analysis.db")):
            assert time.monotonic() < deadline, "no analysis.db"
            time.sleep(0.1)
        time.sleep(1)
        # While it runs (the databases' -wal and -shm exist only then), and again after.
        bad, n = _walk(data, other_user)
        for f in ("mxbait.db", "mxbait.db-wal", "mxbait.db-shm", "events.jsonl", "secret",
                  "analysis.db", "analysis.db-wal", "tls/key.pem", "tls/cert.pem",
                  "mxbait.pid"):
            assert os.path.exists(os.path.join(data, f)), f
    finally:
        _stop(d)
    assert "tightened the mode of" in d.stderr_text()
    bad2, _ = _walk(data, other_user)
    bad += bad2
    assert n >= 12, f"only {n} entries: the test saw too little"
    assert not bad, "\n".join(bad)


def test_analyzer_is_sandboxed(make_daemon):
    d = make_daemon()
    pid = _analyzer_pid(d)
    assert pid, "no sandboxed analyzer child:\n" + d.stderr_text()[-2000:]
    st = proc_status(pid)
    assert st["Seccomp"] == "2", st["Seccomp"]
    assert st["NoNewPrivs"] == "1"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(st[cap], 16) == 0, f"{cap} {st[cap]}"
    # not dumpable: /proc/PID/ entries belong to root, and so does the process: look at
    # the flag through prctl's view, which the kernel shows in /proc/PID/stat? No: a
    # non-dumpable process's /proc/PID/environ cannot be read by its own uid.
    if os.geteuid() == 0:
        assert "Landlock ABI" in d.stderr_text() or "no Landlock" in d.stderr_text()
    # The daemon itself gave its capabilities up too.
    dst = proc_status(d.pid)
    assert int(dst["CapBnd"], 16) == 0, dst["CapBnd"]


def _corpus():
    """The analyzer corpus, less the files in mbox framing ("From " first: the CLI
    reads those as an mbox, the spool never holds one), so both read the same bytes."""
    files = sorted(glob.glob(os.path.join(ROOT, "tests", "analyze", "labeled", "*.eml")))
    files += sorted(glob.glob(os.path.join(ROOT, "tests", "analyze", "independent", "*.eml")))
    out = []
    for f in files:
        with open(f, "rb") as fh:
            if fh.read(5) != b"From ":
                out.append(f)
    return out


def _rows(db):
    """What the analysis found per message (by the message's sha256)."""
    con = sqlite3.connect(db)
    try:
        q = {
            "links": "SELECT m.sha256, l.url, l.flag_names FROM links l"
                     " JOIN messages m ON m.id = l.message",
            "findings": "SELECT m.sha256, f.kind, f.detail FROM findings f"
                        " JOIN messages m ON m.id = f.message",
            "attachments": "SELECT m.sha256, a.sha256, a.detected_type FROM attachments a"
                           " JOIN messages m ON m.id = a.message",
            "messages": "SELECT sha256, subject, from_addr FROM messages",
        }
        return {k: sorted(map(tuple, con.execute(v))) for k, v in q.items()}
    finally:
        con.close()


def test_forbidden_syscall_kills_and_daemon_restarts(make_daemon, tmp_path, monkeypatch):
    trigger = tmp_path / "trigger"
    trigger.write_text("once\n")
    monkeypatch.setenv("MXBAIT_TEST_SANDBOX_TRIGGER", str(trigger))
    d = make_daemon()
    deadline = time.monotonic() + 20
    while "analyzer killed by signal 31" not in d.stderr_text():
        assert time.monotonic() < deadline, (
            "the analyzer was not killed by its filter (is this a test-hooks build?):\n"
            + d.stderr_text()[-3000:])
        time.sleep(0.1)
    assert "analyzer killed by its system-call filter" in d.stderr_text()
    assert not trigger.exists()
    pid = _analyzer_pid(d, timeout=30)
    assert pid, "the analyzer was not restarted"
    # The restarted child, under the same filter, analyses the whole corpus: every
    # message of tests/analyze into the spool (as the spool would hold them).
    files = _corpus()
    assert len(files) > 25
    new = os.path.join(d.data_dir, "spool", "new")
    for i, f in enumerate(files):
        shutil.copyfile(f, os.path.join(new, f"{1700000000 + i}.M{i}P1.corpus"))
    db = os.path.join(d.data_dir, "analysis.db")
    deadline = time.monotonic() + 120
    while True:
        try:
            con = sqlite3.connect(db)
            n = con.execute("SELECT count(*) FROM spool_done").fetchone()[0]
            con.close()
        except sqlite3.Error:
            n = 0
        if n >= len(files):
            break
        assert time.monotonic() < deadline, f"only {n} of {len(files)} analysed"
        time.sleep(0.5)
    assert _analyzer_pid(d, timeout=1) == pid, "the analyzer died on the corpus:\n" + \
        d.stderr_text()[-3000:]
    # The same corpus without any sandbox gives the same links.
    ref = tmp_path / "ref"
    ref.mkdir()
    r = subprocess.run([MXBAIT_BIN, "analyze", "--store", "--quiet", "-d", str(ref)] + files,
                       capture_output=True, timeout=300, env=sanitizer_env())
    assert r.returncode in (0, 1), r.stderr
    got, want = _rows(db), _rows(str(ref / "analysis.db"))
    assert want["messages"] and want["links"]
    for k in want:
        assert got[k] == want[k], f"{k} differ under the sandbox"
