"""The CLI reads what the daemon recorded: stats, sessions, messages and show, as a
table and as JSON, after a real swaks session; clear errors for a bad data dir."""

import json
import os

from conftest import DOMAIN, SANITIZER_RE, marker, queue_id_from, swaks


def _text(r):
    return r.stdout.decode("utf-8", "replace")


def _ok(r, what):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, f"mxbait {what} exited {r.returncode}: {err}"
    assert not SANITIZER_RE.search(err), err


def _session_message(daemon):
    m = marker()
    rc, out = swaks(daemon, "--from", "cli-sender@example.net", "--to", f"alice@{DOMAIN}",
                    "--header", f"Subject: {m}", "--body", "cli body " + m)
    assert rc == 0, out
    qid = queue_id_from(out)
    ev = daemon.wait_events("message", queue_id=qid)
    assert ev, "no message event"
    sess = ev[0]["session"]
    daemon.wait_events("disconnect", session=sess)
    return m, qid, sess


def test_cli_after_swaks(daemon):
    m, qid, sess = _session_message(daemon)
    # The database is written by a batching thread: stop the daemon so it is flushed,
    # as an operator reading after the fact would see it.  (A running daemon is read
    # in test_cli_while_running.)
    assert not daemon.stop()

    r = daemon.cli("stats")
    _ok(r, "stats")
    st = daemon.cli_json("stats")
    blob = json.dumps(st)
    assert "1" in blob, st
    # The stats must count our one session and one message somewhere.
    assert _has_count(st, ("messages",), 1), f"stats --json shows no messages=1: {st}"
    assert _has_count(st, ("sessions", "connections"), 1), f"stats --json: {st}"

    r = daemon.cli("sessions")
    _ok(r, "sessions")
    assert sess in _text(r) or sess[:12] in _text(r), _text(r)
    assert "127.0.0.1" in _text(r)
    js = json.dumps(daemon.cli_json("sessions"))
    assert sess in js and "127.0.0.1" in js, js

    r = daemon.cli("messages")
    _ok(r, "messages")
    assert qid in _text(r) and "cli-sender@example.net" in _text(r), _text(r)
    js = json.dumps(daemon.cli_json("messages"))
    assert qid in js and "cli-sender@example.net" in js and f"alice@{DOMAIN}" in js, js

    r = daemon.cli("show", qid)
    _ok(r, f"show {qid}")
    assert m in _text(r) and "cli body" in _text(r), _text(r)
    js = json.dumps(daemon.cli_json("show", qid))
    assert m in js, js

    r = daemon.cli("show", sess)
    _ok(r, f"show {sess}")
    t = _text(r)
    assert "EHLO" in t or "helo" in t, t
    assert "cli-sender@example.net" in t, t
    js = json.dumps(daemon.cli_json("show", sess))
    assert "cli-sender@example.net" in js and qid in js, js


def _has_count(obj, keys, n):
    """obj (nested dicts) has some key among keys with an int value >= n."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(k == key or k.startswith(key) for key in keys) and isinstance(v, int) \
                    and v >= n:
                return True
            if _has_count(v, keys, n):
                return True
    if isinstance(obj, list):
        return any(_has_count(v, keys, n) for v in obj)
    return False


def test_cli_while_running(daemon):
    m, qid, sess = _session_message(daemon)
    import time
    deadline = time.monotonic() + 10
    while True:
        r = daemon.cli("messages", "--json")
        if r.returncode == 0 and qid.encode() in r.stdout:
            break
        assert time.monotonic() < deadline, \
            f"message {qid} not visible to `mxbait messages` 10s after capture: {r}"
        time.sleep(0.2)


def test_cli_show_escapes_attacker_bytes(daemon, tmp_path):
    m = marker()
    f = tmp_path / "evil.eml"
    f.write_bytes(f"Subject: {m}\r\n\r\n".encode() + b"evil \x1b[31mred\x1b[0m \x07bell\r\n")
    rc, out = swaks(daemon, "--from", "e@example.net", "--to", f"alice@{DOMAIN}",
                    "--data", "@" + str(f))
    assert rc == 0, out
    qid = queue_id_from(out)
    assert not daemon.stop()
    r = daemon.cli("show", qid)
    _ok(r, "show")
    assert m.encode() in r.stdout
    assert b"\x1b" not in r.stdout and b"\x07" not in r.stdout, \
        "terminal escape bytes from the attacker reached the terminal: %r" % r.stdout[-300:]


def test_cli_missing_data_dir(tmp_path, daemon):
    missing = str(tmp_path / "no-such-dir")
    for cmd in ("stats", "sessions", "messages"):
        r = daemon.cli(cmd, data_dir=missing)
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode == 1, f"mxbait {cmd} -d missing: exit {r.returncode}, {err}"
        assert missing in err, f"error does not name the directory: {err!r}"
        assert not SANITIZER_RE.search(err), err
    r = daemon.cli("show", "0123456789ab", data_dir=missing)
    assert r.returncode == 1


def test_cli_corrupt_db(tmp_path, daemon):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "mxbait.db").write_bytes(b"this is not sqlite\n" * 100)
    r = daemon.cli("stats", data_dir=str(bad))
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 1, f"exit {r.returncode}: {err}"
    assert err.strip(), "no error message for a corrupt database"
    assert not SANITIZER_RE.search(err), err


def test_serve_config_errors_name_file_line_key(tmp_path):
    """`mxbait serve -c` validates at start: a bad file stops it with exit 1 and a message
    naming the file, the line and the key; nothing is left listening."""
    from conftest import MXBAIT_BIN, sanitizer_env
    import subprocess
    cases = [("hostname = mail.example.test\nno_such_key = 1\n", ":2: no_such_key:"),
             ("message_size_limit = lots\n", ":1: message_size_limit:"),
             ("idle_timeout = 5s\nidle_timeout = 6s\n", ":2: idle_timeout:"),
             ("smtp_listen = 127.0.0.1:99999\n", ":1: smtp_listen:")]
    for text, want in cases:
        conf = tmp_path / "bad.conf"
        conf.write_text(text + f"data_dir = {tmp_path / 'data'}\n")
        r = subprocess.run([MXBAIT_BIN, "serve", "-c", str(conf)], capture_output=True,
                           timeout=20, env=sanitizer_env())
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode == 1, f"{text!r}: exit {r.returncode}: {err}"
        assert str(conf) + want in err, f"{text!r}: error {err!r} lacks {want!r}"
        assert not SANITIZER_RE.search(err), err
