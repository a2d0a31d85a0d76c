"""Privilege separation from the outside: `mxbait serve` started as root with
`user = nobody` binds its ports, hands the data directory to nobody and drops to it
before the spool, the event store and the analyzer child start.  Checked with the
kernel's view (/proc/PID/status of the daemon and of its analyzer child), a message
sent with swaks (captured, and analysed by the child: it could read the spool's 0600
files), ownership of everything in the data directory, and a restart on the same data
directory after a root-owned leftover and a planted symbolic link.

Needs root (CI runs as root); skipped otherwise.  The data directory lives under a
fresh 0755 directory in /tmp, because pytest's own tmp_path is 0700 root and nobody
could not traverse it."""

import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import (ALL_EVENT_LINES, DOMAIN, MXBAIT_BIN, Daemon, marker, proc_children,
                      queue_id_from, sanitizer_env, swaks)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0,
    reason="privilege separation needs the daemon started as root (CI runs as root); "
           "run the integration suite as root to cover it")


def _nobody():
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user 'nobody' on this system")


def _ids(pid):
    """(uid fields, gid fields, groups, NoNewPrivs) of pid from /proc/PID/status."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return ([int(x) for x in out["Uid"]], [int(x) for x in out["Gid"]],
            out.get("Groups", []), out.get("NoNewPrivs", ["?"])[0])


def _analyzer_pid(d, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for k in proc_children(d.pid):
            try:
                with open(f"/proc/{k}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if b"analyze" in argv and b"--daemon" in argv:
                return k
        time.sleep(0.1)
    pytest.fail("no analyzer child under the daemon:\n" + d.stderr_text()[-3000:])


def _wait_ready(d, timeout=20):
    """The ports listen before the drop: wait for the daemon's "ready" line."""
    deadline = time.monotonic() + timeout
    while " ready: " not in d.stderr_text():
        if time.monotonic() > deadline or not d.alive():
            pytest.fail("daemon not ready:\n" + d.stderr_text()[-3000:])
        time.sleep(0.05)


def _assert_unprivileged(pid, pw, what):
    uids, gids, groups, nnp = _ids(pid)
    assert uids == [pw.pw_uid] * 4, f"{what}: Uid {uids}"
    assert gids == [pw.pw_gid] * 4, f"{what}: Gid {gids}"
    assert groups == [], f"{what}: supplementary groups {groups}"
    assert nnp == "1", f"{what}: NoNewPrivs {nnp}"


def _send(d, m):
    url = f"http://{m}.example.com/landing"
    rc, out = swaks(d, "--from", "spammer@bad.example", "--to", f"victim@{DOMAIN}",
                    "--header", f"Subject: {m}", "--body", f"Cheap pills at {url} now")
    assert rc == 0, out
    qid = queue_id_from(out)
    assert d.wait_events("message", queue_id=qid), "no message event for " + qid
    assert d.find_message(m), "message not in spool/new"
    return url


def _wait_url(data_dir, url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run([MXBAIT_BIN, "urls", "-d", data_dir, "--json"],
                           capture_output=True, timeout=120, env=sanitizer_env())
        if r.returncode == 0 and any(u["url"] == url for u in json.loads(r.stdout)):
            return True
        time.sleep(0.5)
    return False


def _stop(d):
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    assert not problems, "; ".join(problems) + "\n" + d.stderr_text()[-3000:]


def _not_owned_by(root, pw):
    """Entries below root (symbolic links not followed) not owned by pw."""
    bad = []
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                continue
            if (st.st_uid, st.st_gid) != (pw.pw_uid, pw.pw_gid):
                bad.append(p)
    return bad


@pytest.fixture
def open_tmp():
    """A temp directory nobody can traverse (mkdtemp makes 0700)."""
    t = tempfile.mkdtemp(prefix="mxbait-privdrop-")
    os.chmod(t, 0o755)
    yield t
    shutil.rmtree(t, ignore_errors=True)


def test_serve_drops_to_user_and_restarts(open_tmp, request):
    pw = _nobody()
    d = Daemon(open_tmp, request.node.name, user="nobody")
    d.start()
    try:
        _wait_ready(d)
        _assert_unprivileged(d.pid, pw, "daemon")
        _assert_unprivileged(_analyzer_pid(d), pw, "analyzer child")
        assert "running as user nobody" in d.stderr_text()
        url = _send(d, marker())
        # The child, as nobody, read the 0600 spool file and recorded its link.
        assert _wait_url(d.data_dir, url), "the analyzer child did not record " + url
    finally:
        _stop(d)
    assert _not_owned_by(d.data_dir, pw) == []
    for f in ("mxbait.db", "events.jsonl", "secret", "analysis.db", "tls/key.pem"):
        assert os.stat(os.path.join(d.data_dir, f)).st_uid == pw.pw_uid, f

    # A leftover of a run as root, and a link planted to a root-owned file outside.
    os.chown(os.path.join(d.data_dir, "events.jsonl"), 0, 0)
    outside = os.path.join(open_tmp, "outside")
    with open(outside, "w") as f:
        f.write("root's\n")
    os.symlink(outside, os.path.join(d.data_dir, "planted-link"))
    os.link(outside, os.path.join(d.data_dir, "planted-hardlink"))

    d2 = Daemon(open_tmp, request.node.name + "-restart", user="nobody")
    assert d2.data_dir == d.data_dir
    d2.start()
    try:
        _wait_ready(d2)
        _assert_unprivileged(d2.pid, pw, "restarted daemon")
        _assert_unprivileged(_analyzer_pid(d2), pw, "restarted analyzer child")
        url2 = _send(d2, marker())
        assert _wait_url(d2.data_dir, url2), "the analyzer child did not record " + url2
        assert _wait_url(d2.data_dir, url, timeout=1), "the first run's link is gone"
    finally:
        _stop(d2)
    st = os.stat(outside)
    assert (st.st_uid, st.st_gid) == (0, 0), "a link in the data directory was followed"
    assert os.stat(os.path.join(d.data_dir, "events.jsonl")).st_uid == pw.pw_uid


def test_unknown_user_is_a_config_error(tmp_path):
    conf = tmp_path / "mxbait.conf"
    conf.write_text(f"data_dir = {tmp_path}/data\nuser = mxb-no-such-user-7\n")
    r = subprocess.run([MXBAIT_BIN, "serve", "-c", str(conf)], capture_output=True,
                       timeout=60, env=sanitizer_env())
    assert r.returncode == 1
    assert f"{conf}:2: user: no such user (mxb-no-such-user-7)" in r.stderr.decode()
    assert not os.path.exists(tmp_path / "data"), "state touched before the config check"
