"""Operations from the outside (issue 8): SIGHUP (event log and log file rotation,
configuration and certificate reload, sessions kept), the daemon log (RFC 3339 times,
journal priorities, failed logins with address and user name, one warning per interval
for a full spool), `mxbait stats` counting refused messages, and `mxbait check`.

Every daemon is a real `mxbait serve -c CONF` (conftest's fixture) driven by real
clients (swaks, python imaplib and smtplib, openssl s_client)."""

import hashlib
import imaplib
import json
import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import time

import pytest

from conftest import (DOMAIN, MXBAIT_BIN, PASSWORD, USER, USERNAME_LIST, Daemon, _conf_value,
                      listening_ports, marker, queue_id_from, sanitizer_env, swaks)

RFC3339 = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d"


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def hup_and_wait(d, log=None):
    """SIGHUP, then wait for the daemon's "reloaded" (or "not reloaded") line in its
    stderr (or in the log file `log`, read whole: it may have been renamed)."""
    def text():
        if log is None:
            return d.stderr_text()
        try:
            return open(log).read()
        except FileNotFoundError:
            return ""
    done = len(re.findall(r"reloaded: |configuration not reloaded", text()))
    os.kill(d.pid, signal.SIGHUP)
    wait_for(lambda: len(re.findall(r"reloaded: |configuration not reloaded", text())) > done,
             what="the reload")


def rewrite_conf(d, **changes):
    d.config.update(changes)
    with open(d.conf_path, "w") as f:
        for k, v in d.config.items():
            if v is not None:
                f.write(f"{k} = {_conf_value(v)}\n")


def events_in(path, name, **match):
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                ev = json.loads(line)
                if ev.get("event") == name and all(ev.get(k) == v for k, v in match.items()):
                    out.append(ev)
    except FileNotFoundError:
        pass
    return out


def send(d, mark, port=None, size=0):
    body = mark + ("\n" + "x" * 70) * (size // 71)
    rc, out = swaks(d, "--from", "s@bad.example", "--to", f"v@{DOMAIN}", "--body", body,
                    port=port)
    return rc, out


# --------------------------------------------------------------------------- SIGHUP

def test_sighup_rotates_event_log_and_keeps_sessions(make_daemon):
    d = make_daemon()
    # A session open across the reload: logged in over IMAP (and one mid-SMTP).
    imap = imaplib.IMAP4("127.0.0.1", d.port_imap)
    imap.starttls(ssl_context=ssl._create_unverified_context())
    imap.login(USER, PASSWORD)
    smtp = smtplib.SMTP("127.0.0.1", d.port_smtp, timeout=30)
    smtp.ehlo("live.example.net")
    smtp.mail("live@bad.example")

    m1 = marker()
    rc, out = send(d, m1)
    q1 = queue_id_from(out)
    assert d.wait_events("message", queue_id=q1)
    rotated = d.events_path + ".1"
    os.rename(d.events_path, rotated)
    hup_and_wait(d)
    assert os.path.exists(d.events_path), "SIGHUP did not make a new events.jsonl"
    assert oct(os.stat(d.events_path).st_mode & 0o777) == "0o600"

    m2 = marker()
    rc, out = send(d, m2)
    q2 = queue_id_from(out)
    wait_for(lambda: events_in(d.events_path, "message", queue_id=q2), what="q2 in new file")
    assert events_in(rotated, "message", queue_id=q1)
    assert not events_in(rotated, "message", queue_id=q2), "new events went to the old file"
    assert not events_in(d.events_path, "message", queue_id=q1)

    # The sessions opened before the reload still work, and end normally.
    typ, _ = imap.noop()
    assert typ == "OK"
    typ, data = imap.select("INBOX")
    assert typ == "OK"
    imap.logout()
    smtp.rcpt(f"v@{DOMAIN}")
    code, msg = smtp.data(f"Subject: live\r\n\r\n{marker()}\r\n")
    assert code == 250, msg
    smtp.quit()
    wait_for(lambda: len(events_in(d.events_path, "disconnect")) >= 3, what="disconnects")
    reasons = [e["reason"] for e in events_in(d.events_path, "disconnect")]
    reasons += [e["reason"] for e in events_in(rotated, "disconnect")]
    assert "shutdown" not in reasons and "error" not in reasons, reasons
    assert re.search(r"reloaded: 0 settings changed, \d+ sessions kept", d.stderr_text())


def test_sighup_applies_new_settings_to_new_sessions_only(make_daemon):
    d = make_daemon(message_size_limit="100k")
    before = smtplib.SMTP("127.0.0.1", d.port_smtp, timeout=30)
    before.ehlo("early.example.net")
    rewrite_conf(d, message_size_limit="2k", hostname="other.example.test",
                 smtp_listen=f"127.0.0.1:{d.port_smtp}")
    hup_and_wait(d)
    err = d.stderr_text()
    assert re.search(r"mxbait\.conf:\d+: message_size_limit changed", err)
    assert re.search(r"mxbait\.conf:\d+: hostname changed: it takes effect at the next "
                     r"restart", err)
    # A new session: the new limit (Postfix's 552), and still the old banner name.
    rc, out = send(d, marker(), size=8000)
    assert "552 5.3.4 Error: message file too big" in out, out[-2000:]
    assert "mail.example.test ESMTP" in out
    # The session opened before keeps its settings: 8 KB still fits its 100k.
    before.mail("early@bad.example")
    before.rcpt(f"v@{DOMAIN}")
    code, msg = before.data("Subject: early\r\n\r\n" + ("y" * 70 + "\r\n") * 110)
    assert code == 250, msg
    before.quit()


def test_sighup_bad_config_keeps_running(make_daemon):
    d = make_daemon()
    with open(d.conf_path, "a") as f:
        f.write("no_such_key = 1\n")
    hup_and_wait(d)
    assert re.search(r"configuration not reloaded: .*mxbait\.conf:\d+: no_such_key: "
                     r"unknown key \(the running configuration stays\)", d.stderr_text())
    rc, out = send(d, marker())
    assert rc == 0, out


def _make_cert(tmp, name, cn):
    key, crt = os.path.join(tmp, name + ".key"), os.path.join(tmp, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    key, "-out", crt, "-days", "365", "-subj", f"/CN={cn}"],
                   check=True, capture_output=True)
    return crt, key


def _peer_cert_sha256(port):
    ctx = ssl._create_unverified_context()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        with ctx.wrap_socket(s) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def test_sighup_reloads_certificates(make_daemon, tmp_path):
    crt, key = _make_cert(str(tmp_path), "a", "mail.example.test")
    d = make_daemon(tls_cert_file=crt, tls_key_file=key)
    # the fixture waits for the SMTP ports; IMAPS is bound right after them
    wait_for(lambda: d.port_imaps in listening_ports(), what="imaps listening")
    first = _peer_cert_sha256(d.port_imaps)
    # A renewal: the same file names, new contents.
    crt2, key2 = _make_cert(str(tmp_path), "b", "mail.example.test")
    os.replace(crt2, crt)
    os.replace(key2, key)
    hup_and_wait(d)
    second = _peer_cert_sha256(d.port_imaps)
    assert first != second, "the certificate was not read again"
    with open(crt, "rb") as f:
        pem = f.read().decode()
    der = ssl.PEM_cert_to_DER_cert(pem)
    assert second == hashlib.sha256(der).hexdigest()
    # A broken renewal: the running certificate stays.
    with open(key, "w") as f:
        f.write("not a key\n")
    hup_and_wait(d)
    assert "SIGHUP: TLS: " in d.stderr_text()
    assert _peer_cert_sha256(d.port_imaps) == second


# --------------------------------------------------------------------------- log

def test_log_file_rfc3339_failed_logins_and_rotation(make_daemon, tmp_path):
    logf = str(tmp_path / "mxbait.log")
    d = make_daemon(log=logf)
    imap = imaplib.IMAP4("127.0.0.1", d.port_imap)
    imap.starttls(ssl_context=ssl._create_unverified_context())
    # A user name built to forge a log line: quote, space, fake field, newline.
    evil = b'eve" ip=10.6.6.6\nx'
    with pytest.raises(imaplib.IMAP4.error):
        imap.authenticate("PLAIN", lambda _: b"\0" + evil + b"\0wrong-password")
    imap.logout()
    wait_for(lambda: "auth failed" in open(logf).read(), what="auth failed line")
    text = open(logf).read()
    line = [l for l in text.splitlines() if "auth failed" in l][0]
    assert re.match(RFC3339 + r" mxbait\[\d+\]: notice: session=[0-9a-f]{16} auth failed: "
                    r"ip=127\.0\.0\.1 port=\d+ proto=imap mechanism=PLAIN "
                    r'user="eve\\" ip=10\.6\.6\.6\\x0ax" result=fail$', line), line
    # What a fail2ban failregex would take: the address is the real one.
    m = re.search(r'auth failed: ip=(?P<host>\S+) ', line)
    assert m.group("host") == "127.0.0.1"
    for l in text.splitlines():
        assert re.match(RFC3339 + r" mxbait\[\d+\]: (error|warning|notice|info|debug): ", l), l
    # logrotate: rename, SIGHUP, new lines in a new file.
    os.rename(logf, logf + ".1")
    hup_and_wait(d, logf)
    wait_for(lambda: os.path.exists(logf) and "reloaded: " in open(logf).read(),
             what="lines in the new log file")
    assert oct(os.stat(logf).st_mode & 0o777) == "0o600"
    assert "reloaded: " not in open(logf + ".1").read()


def test_journal_priority_prefix(tmp_path, request):
    """With stderr the journal's stream (JOURNAL_STREAM names it), lines carry <N>."""
    d = Daemon(str(tmp_path), request.node.name)
    err = open(d.stderr_path, "wb")
    st = os.fstat(err.fileno())
    env = sanitizer_env()
    env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
    p = subprocess.Popen([MXBAIT_BIN, "serve", "-c", d.conf_path], stdout=subprocess.DEVNULL,
                         stderr=err, env=env, cwd=str(tmp_path))
    try:
        wait_for(lambda: " ready: " in open(d.stderr_path).read(), 20, "ready")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        err.close()
    lines = [l for l in open(d.stderr_path).read().splitlines()
             if not l.startswith("mxbait analyzer") and l.strip()]
    assert any(re.match(r"<6>info: mxbait [\d.]+ ready: ", l) for l in lines), lines
    for l in lines:
        assert re.match(r"<[0-7]>(error|warning|notice|info|debug): ", l), l


def test_full_spool_warns_once_and_stats_count(make_daemon):
    d = make_daemon(spool_budget="6k")
    refused = 0
    for i in range(6):
        rc, out = send(d, marker(), size=3000)
        if "452 4.3.1 Insufficient system storage" in out:
            refused += 1
    assert refused >= 4, "the budget refused fewer messages than expected"
    wait_for(lambda: len(d.events("message_rejected", reason="no_space")) >= refused,
             what="message_rejected events")
    warnings = re.findall(r"warning: .*spool budget reached", d.stderr_text())
    assert len(warnings) == 1, warnings
    st = d.cli_json("stats")
    assert st["messages_refused"]["no_space"] == refused, st["messages_refused"]


# --------------------------------------------------------------------------- check

def _check(conf, *args):
    return subprocess.run([MXBAIT_BIN, "check", "-c", conf] + list(args),
                          capture_output=True, text=True, timeout=60, env=sanitizer_env())


def _conf(tmp_path, text, name="mxbait.conf"):
    # the tree's username list (a test build is not installed: the default path is
    # missing, which `mxbait check` rightly warns about), last so line numbers hold
    p = tmp_path / name
    p.write_text(text + f"username_list = {USERNAME_LIST}\n")
    return str(p)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _listen_lines(ports):
    roles = ["smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s"]
    return "".join(f"{r}_listen = 127.0.0.1:{p}\n" for r, p in zip(roles, ports))


def test_check_good_config_creates_nothing(tmp_path):
    data = tmp_path / "data"
    conf = _conf(tmp_path, f"hostname = mail.example.test\ndata_dir = {data}\n"
                 + _listen_lines([_free_port() for _ in range(7)]))
    r = _check(conf)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"mxbait check: {conf}: ok" in r.stdout
    assert not data.exists(), "check created the data directory"
    assert sorted(os.listdir(tmp_path)) == ["mxbait.conf"]


def test_check_bad_configs(tmp_path):
    conf = _conf(tmp_path, "hostname = mail.example.test\nmessage_size_limit = 12q\n")
    r = _check(conf)
    assert r.returncode == 1
    assert re.search(rf"^{re.escape(conf)}:2: message_size_limit: expected a size", r.stderr,
                     re.M), r.stderr

    # A port taken by someone else, a key that does not match its certificate, a log
    # file in a missing directory, an open data directory: each named with its line.
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    crt, _ = _make_cert(str(tmp_path), "c1", "mail.example.test")
    _, key2 = _make_cert(str(tmp_path), "c2", "mail.example.test")
    data = tmp_path / "open-data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    ports = [port] + [_free_port() for _ in range(6)]
    conf = _conf(tmp_path, f"hostname = mail.example.test\ndata_dir = {data}\n"
                 + _listen_lines(ports)
                 + f"tls_cert_file = {crt}\ntls_key_file = {key2}\n"
                 + f"log = {tmp_path}/no/such/dir/mxbait.log\n", "bad.conf")
    try:
        r = _check(conf)
    finally:
        busy.close()
    assert r.returncode == 1, r.stdout + r.stderr
    err = r.stderr
    assert f"{conf}:3: smtp_listen: 127.0.0.1:{port}: address already in use" in err, err
    assert f"{conf}:11: tls_key_file: {key2} does not match the certificate {crt}" in err, err
    assert f"{conf}:12: log: {tmp_path}/no/such/dir/mxbait.log: the directory" in err, err
    assert f"{conf}:2: data_dir: warning: {data} has mode 0755" in r.stdout, r.stdout
    assert re.search(rf"mxbait check: {re.escape(conf)}: 3 errors, 1 warning", err)
    assert oct(os.stat(data).st_mode & 0o777) == "0o755", "check changed a mode"


def test_check_beside_a_running_daemon(make_daemon):
    d = make_daemon()
    r = _check(d.conf_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"mxbait is running on {d.data_dir} (pid {d.pid})" in r.stdout
