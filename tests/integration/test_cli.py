"""The CLI reads what the daemon recorded: stats, sessions, messages and show, as a
table and as JSON, after a real swaks session; clear errors for a bad data dir."""

import json
import os
import re

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
    ev = daemon.events("message", queue_id=qid)[0]
    # The database is written by a batching thread: stop the daemon so it is flushed,
    # as an operator reading after the fact would see it.  (A running daemon is read
    # in test_cli_while_running.)
    assert not daemon.stop()

    r = daemon.cli("stats")
    _ok(r, "stats")
    t = _text(r)
    assert re.search(r"^sessions\s+1\b", t, re.M) and re.search(r"^messages\s+1\b", t, re.M), t
    st = daemon.cli_json("stats")
    assert st["sessions"] == 1 and st["messages"] == 1, st
    assert st["rcpt"] == {"accepted": 1, "denied": 0}, st
    assert st["disconnect_reasons"] == {"quit": 1}, st
    assert st["message_bytes"] == ev["size"], st

    r = daemon.cli("sessions")
    _ok(r, "sessions")
    rows = [l for l in _text(r).splitlines() if l.startswith(sess)]
    assert len(rows) == 1 and "127.0.0.1" in rows[0] and "client.example.net" in rows[0] \
        and rows[0].rstrip().endswith("quit"), _text(r)
    js = daemon.cli_json("sessions")
    assert [x["session"] for x in js] == [sess], js
    assert js[0]["src_ip"] == "127.0.0.1" and js[0]["helo"] == "client.example.net" \
        and js[0]["messages"] == 1 and js[0]["reason"] == "quit", js

    r = daemon.cli("messages")
    _ok(r, "messages")
    rows = [l for l in _text(r).splitlines() if l.startswith(qid)]
    assert len(rows) == 1 and sess in rows[0] and "cli-sender@example.net" in rows[0] \
        and m in rows[0], _text(r)
    js = daemon.cli_json("messages")
    assert len(js) == 1 and js[0]["queue_id"] == qid, js
    assert js[0]["sender"] == "cli-sender@example.net" and js[0]["recipients"] == \
        [f"alice@{DOMAIN}"] and js[0]["sha256"] == ev["sha256"] and js[0]["spool"] == ev["spool"], js

    r = daemon.cli("show", qid)
    _ok(r, f"show {qid}")
    assert m in _text(r) and "cli body" in _text(r) and ev["sha256"] in _text(r), _text(r)
    js = daemon.cli_json("show", qid)
    assert js["queue_id"] == qid and js["session"] == sess and js["sha256"] == ev["sha256"], js
    assert m in json.dumps(js), js

    r = daemon.cli("show", sess)
    _ok(r, f"show {sess}")
    t = _text(r)
    for kind in ("connect", "helo", "mail", "rcpt", "message", "disconnect"):
        assert re.search(rf"^\S+\s+{kind}\b", t, re.M), f"no {kind} line in:\n{t}"
    assert "cli-sender@example.net" in t and qid in t, t
    js = daemon.cli_json("show", sess)
    assert [e["event"] for e in js] == ["connect", "helo", "mail", "rcpt", "message",
                                        "disconnect"], js
    assert all(e["session"] == sess for e in js)


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
