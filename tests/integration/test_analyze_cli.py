"""The analyzer from the outside: `mxbait analyze` on files (JSON on stdout, progress on
stderr only on a terminal, limits as findings), and the process mode `analyze --daemon`
next to a real `mxbait serve`: a message sent with swaks becomes links, envelope
recipients and session facts in analysis.db, readable with `mxbait urls/recipients/
domains/campaigns --json`."""

import json
import os
import pty
import signal
import sqlite3
import subprocess
import time

from conftest import (DOMAIN, MXBAIT_BIN, ROOT, SANITIZER_RE, marker, queue_id_from,
                      sanitizer_env, swaks)

FIX = os.path.join(ROOT, "tests", "analyze", "obfuscation")


def _run(*args, **kw):
    return subprocess.run([MXBAIT_BIN] + list(args), capture_output=True, timeout=120,
                          env=sanitizer_env(), **kw)


def test_analyze_files_json_quiet_when_piped():
    emls = sorted(os.path.join(FIX, f) for f in os.listdir(FIX) if f.endswith(".eml"))
    r = _run("analyze", *emls)
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, err
    assert err == "", "progress must stay off a pipe: " + err
    objs = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert len(objs) == len(emls)
    by = {os.path.basename(o["source"]): o for o in objs}
    urls = {l["url"] for l in by["redirectors.eml"]["links"]}
    assert "https://phish.example.com/login" in urls
    assert by["display_mismatch.eml"]["links"][0]["flags"] == ["display_mismatch"]


def test_analyze_progress_on_a_terminal():
    master, slave = pty.openpty()
    try:
        p = subprocess.run([MXBAIT_BIN, "analyze", FIX], stdout=subprocess.DEVNULL,
                           stderr=slave, timeout=120, env=sanitizer_env())
        os.close(slave)
        slave = -1
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    assert p.returncode == 0
    assert b"messages" in out and b"MB/s" in out, out


def test_analyze_limits_are_findings(tmp_path):
    body = "".join("--B\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % i for i in range(50))
    f = tmp_path / "many.eml"
    f.write_bytes(("Subject: many\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n"
                   + body + "--B--\r\n").encode())
    r = _run("analyze", "--max-parts", "10", str(f))
    assert r.returncode == 0
    o = json.loads(r.stdout)
    assert len(o["parts"]) == 10
    assert [x["kind"] for x in o["findings"]] == ["parts_limit"]
    assert _run("analyze", "--max-parts", "zero", str(f)).returncode == 2
    # every limit has a flag (what mxbait serve passes to its analyzer child)
    g = tmp_path / "many-rcpts.eml"
    g.write_bytes(("To: " + ", ".join("r%d@example.org" % i for i in range(30))
                   + "\r\nSubject: r\r\n\r\n" + "x" * 5000 + "\r\n").encode())
    r = _run("analyze", "--max-recipients", "10", "--max-text", "1000", str(g))
    assert r.returncode == 0
    o = json.loads(r.stdout)
    assert len(o["recipients"]) == 10
    assert sorted(x["kind"] for x in o["findings"]) == ["recipients_limit", "text_limit"], o


def test_analyzer_process_beside_the_daemon(daemon):
    m = marker()
    url = "http://%s.example.com/landing/page" % m
    rc, out = swaks(daemon, "--from", "spammer@bad.example", "--to",
                    f"victim1@{DOMAIN},victim2@{DOMAIN}",
                    "--header", f"Subject: {m}", "--body",
                    f"Cheap pills at {url} now, or hxxps://Shop[.]{m}.example.org/buy")
    assert rc == 0, out
    qid = queue_id_from(out)
    daemon.wait_events("message", queue_id=qid)
    # (Whether serve's own analyzer child is quicker than ours is a race; "analysis":
    # null before any analysis is asserted in tests/unit/test_cli.c.)
    an = subprocess.Popen([MXBAIT_BIN, "analyze", "--daemon", "-d", daemon.data_dir],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          env=sanitizer_env())
    try:
        found = None
        deadline = time.time() + 60
        while time.time() < deadline and not found:
            time.sleep(0.5)
            r = _run("urls", "-d", daemon.data_dir, "--json")
            if r.returncode == 0:
                found = [u for u in json.loads(r.stdout) if u["url"] == url]
        assert found, "the analyzer did not record the link"
        r = _run("recipients", "-d", daemon.data_dir, "--json")
        rcpts = {x["addr"]: x["seen_in"] for x in json.loads(r.stdout)}
        assert "envelope" in rcpts.get(f"victim2@{DOMAIN}", ""), rcpts
        db = sqlite3.connect(os.path.join(daemon.data_dir, "analysis.db"))
        row = db.execute("SELECT client_ip, helo, env_from FROM messages WHERE subject=?",
                         (m,)).fetchone()
        db.close()
        assert row == ("127.0.0.1", "client.example.net", "spammer@bad.example"), row
        # mxbait show: the message with its analysis, as JSON and as a table.
        r = _run("show", "--json", "-d", daemon.data_dir, qid)
        assert r.returncode == 0, r.stderr
        a = json.loads(r.stdout)["analysis"]
        links = {(x["raw"], x["url"], tuple(x["where"]), tuple(x["flags"]))
                 for x in a["links"]}
        assert links == {(url, url, ("text",), ()),
                         (f"hxxps://Shop[.]{m}.example.org/buy",
                          f"https://shop.{m}.example.org/buy", ("text",), ("defanged",))}, links
        assert {x["addr"] for x in a["recipients"]} == {f"victim1@{DOMAIN}", f"victim2@{DOMAIN}"}
        assert a["senders"]["envelope_from"] == "spammer@bad.example"
        assert a["senders"]["client_ip"] == "127.0.0.1"
        assert a["campaign"]["id"].startswith("C")
        assert a["attachments"] == [] and a["findings"] == []
        r = _run("show", "-d", daemon.data_dir, qid)
        assert r.returncode == 0, r.stderr
        text = r.stdout.decode()
        assert f"links (2)\n  {url}\n    raw   {url}\n    where text  flags -\n" in text, text
        assert f"    raw   hxxps://Shop[.]{m}.example.org/buy\n" in text, text
        assert "  campaign    " + a["campaign"]["id"] + "\n" in text, text
        for cmd in ("domains", "campaigns"):
            r = _run(cmd, "-d", daemon.data_dir, "--json")
            assert r.returncode == 0 and json.loads(r.stdout), cmd
    finally:
        an.send_signal(signal.SIGTERM)
        out, err = an.communicate(timeout=30)
    err = err.decode("utf-8", "replace")
    assert an.returncode == 0, err
    assert not SANITIZER_RE.search(err), err
