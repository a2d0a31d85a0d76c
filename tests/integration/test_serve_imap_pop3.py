"""The daemon's wiring of issue 3 (src/core): IMAP and POP3 listeners on their own
roles, one credential policy for SMTP AUTH, IMAP and POP3 that survives a restart
(data_dir/secret, the accounts table), refusal texts per protocol, the analyzer child
process and its analyzer_* limits, and `mxbait creds -c` reading the distributed_* keys.

Real clients only: Python's imaplib, poplib and smtplib over TLS on loopback.  The
attack-tool tests (hydra, medusa, nmap) live elsewhere."""

import imaplib
import json
import os
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import time

from conftest import (MXBAIT_BIN, sanitizer_env, DOMAIN, marker, queue_id_from, swaks)

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

# Fast guessing: no failure delay, no per-session penalty.
FAST = {"auth_failure_delay": "0", "auth_penalty": False}


def recv_line(sock, timeout=5):
    sock.settimeout(timeout)
    data = b""
    while not data.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def imaps_login(d, user, password):
    m = imaplib.IMAP4_SSL(d.host, d.port_imaps, ssl_context=CTX, timeout=20)
    try:
        m.login(user, password)
        return m
    except imaplib.IMAP4.error:
        m.shutdown()
        return None


def pop3s_login(d, user, password):
    p = poplib.POP3_SSL(d.host, d.port_pop3s, context=CTX, timeout=20)
    try:
        p.user(user)
        p.pass_(password)
        return p
    except poplib.error_proto:
        p.close()
        return None


def submission_login(d, user, password):
    s = smtplib.SMTP(d.host, d.port_submission, timeout=20)
    s.starttls(context=CTX)
    try:
        s.login(user, password)
        return s
    except smtplib.SMTPAuthenticationError:
        s.close()
        return None


def crack(d, user):
    """Guess like a dictionary attack until a common password works (at most 6 wrong
    ones first, then list passwords); returns the password."""
    for i in range(6):
        assert imaps_login(d, user, f"not-in-any-list-{i}") is None
    for pw in ("123456", "password", "12345"):
        m = imaps_login(d, user, pw)
        if m:
            m.logout()
            return pw
    raise AssertionError(f"{user} was never cracked")


def test_greetings_on_every_role(daemon):
    for role, want in (("imap", b"* OK [CAPABILITY IMAP4rev1 "), ("pop3", b"+OK Dovecot (Debian) ready.")):
        with socket.create_connection((daemon.host, daemon.port(role))) as s:
            line = recv_line(s)
            assert line.startswith(want), line
            if role == "imap":
                assert line.endswith(b"Dovecot (Debian) ready.\r\n"), line
                assert b"STARTTLS" in line and b"LOGINDISABLED" in line
    for role, want in (("imaps", b"* OK [CAPABILITY IMAP4rev1 "), ("pop3s", b"+OK Dovecot")):
        with socket.create_connection((daemon.host, daemon.port(role))) as raw:
            with CTX.wrap_socket(raw) as s:
                assert recv_line(s).startswith(want)
    for proto in ("imap", "pop3", "imaps", "pop3s"):
        evs = daemon.wait_events("connect", proto=proto)
        assert evs and evs[0]["dst_port"] == daemon.port(proto)
        assert daemon.wait_events("tls" if proto.endswith("s") else "disconnect", proto=proto)


def test_one_account_everywhere_and_after_restart(make_daemon):
    d = make_daemon(**FAST)
    pw = crack(d, "payroll")
    # the same password on POP3 and SMTP submission, and the mailbox is the same INBOX
    m = imaps_login(d, "payroll", pw)
    typ, data = m.select("INBOX")
    assert typ == "OK"
    n_imap = int(data[0])
    m.logout()
    p = pop3s_login(d, "payroll", pw)
    assert p is not None
    assert p.stat()[0] == n_imap
    p.quit()
    s = submission_login(d, "PayRoll@" + DOMAIN, pw)  # canonical: the same account
    assert s is not None
    mark = "issue3-" + os.urandom(4).hex()
    s.sendmail("payroll@" + DOMAIN, ["victim@example.org"], f"Subject: {mark}\r\n\r\nspam\r\n")
    s.quit()
    ev = d.wait_events("message", auth_user="PayRoll@" + DOMAIN)
    assert ev and ev[0]["recipients"] == ["victim@example.org"]
    assert len(d.find_message(mark)) == 1
    # a second "correct" password never exists
    for other in ("password", "qwerty", pw + "1"):
        if other == pw:
            continue
        assert imaps_login(d, "payroll", other) is None
        assert pop3s_login(d, "payroll", other) is None
        assert submission_login(d, "payroll", other) is None
    secret_path = os.path.join(d.data_dir, "secret")
    st = os.stat(secret_path)
    assert st.st_size == 32 and (st.st_mode & 0o777) == 0o600
    secret = open(secret_path, "rb").read()
    assert not d.stop()
    # restart on the same data directory: the account and the secret are the same
    d2 = make_daemon(data_dir=d.data_dir, **FAST)
    assert open(secret_path, "rb").read() == secret
    m = imaps_login(d2, "payroll", pw)
    assert m is not None
    m.logout()
    assert pop3s_login(d2, "payroll", "qwerty" if pw != "qwerty" else "password") is None
    s = submission_login(d2, "payroll", pw)
    assert s is not None
    s.quit()


def test_refusals_speak_the_protocol(make_daemon):
    d = make_daemon(max_connections_per_ip=1)
    with socket.create_connection((d.host, d.port_imap)) as held:
        assert recv_line(held).startswith(b"* OK")
        with socket.create_connection((d.host, d.port_imap)) as s:
            assert recv_line(s) == b"* BYE Connection queue full\r\n"
        with socket.create_connection((d.host, d.port_pop3)) as s:
            assert recv_line(s) == b"-ERR Connection queue full\r\n"
        with socket.create_connection((d.host, d.port_smtp)) as s:
            assert recv_line(s).startswith(b"421 4.7.0 ")
    assert d.wait_events("disconnect", reason="limit_per_ip", proto="imap")
    assert d.wait_events("disconnect", reason="limit_per_ip", proto="pop3")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().split(b"\0")
    except OSError:
        return []


def analyzer_pid(d, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in children(d.daemon_pid):
            if cmdline(c)[1:4] == [b"analyze", b"--daemon", b"-d"]:
                return c
        time.sleep(0.05)
    return None


def test_analyzer_child_restarted_and_stopped(make_daemon):
    d = make_daemon()
    pid = analyzer_pid(d)
    assert pid, "no analyzer child"
    assert cmdline(pid)[4] == d.data_dir.encode()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    new = None
    while time.monotonic() < deadline:
        new = analyzer_pid(d, timeout=0.2)
        if new and new != pid:
            break
        time.sleep(0.1)
    assert new and new != pid, "the analyzer was not restarted"
    assert "analyzer killed by signal 9" in d.stderr_text()
    assert not d.stop()
    assert not os.path.exists(f"/proc/{new}") or b"analyze" not in b"".join(cmdline(new))


def test_analyzer_off(make_daemon):
    d = make_daemon(analyzer=False)
    time.sleep(0.5)
    assert analyzer_pid(d, timeout=0.5) is None


PSL = "/usr/share/publicsuffix/public_suffix_list.dat"


def test_analyzer_limits_from_config(make_daemon):
    """analyzer_max_links = 1: the child gets every analyzer_* key on its command line
    (also after a restart), keeps one of three links and records a links_limit finding."""
    d = make_daemon(analyzer_max_links=1, analyzer_max_depth=7,
                    analyzer_max_decoded="2m", analyzer_psl_file=PSL)
    pid = analyzer_pid(d)
    assert pid, "no analyzer child"
    want = [b"-d", d.data_dir.encode(), b"--max-depth", b"7", b"--max-parts", b"2000",
            b"--max-decoded", b"2097152", b"--max-text", b"4194304", b"--max-links", b"1",
            b"--max-recipients", b"10000", b"--psl", PSL.encode()]
    assert cmdline(pid)[3:-1] == want, cmdline(pid)
    # restarted: the same arguments (made once, before the first fork)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    new = None
    while time.monotonic() < deadline:
        new = analyzer_pid(d, timeout=0.2)
        if new and new != pid:
            break
        time.sleep(0.1)
    assert new and new != pid, "the analyzer was not restarted"
    assert cmdline(new)[3:-1] == want, cmdline(new)

    m = marker()
    urls = [f"http://one.{m}.example.com/a", f"http://two.{m}.example.net/b",
            f"http://three.{m}.example.org/c"]
    rc, out = swaks(d, "--from", "spammer@bad.example", "--to", f"victim@{DOMAIN}",
                    "--header", f"Subject: {m}", "--body", "Visit " + " and ".join(urls))
    assert rc == 0, out
    qid = queue_id_from(out)
    a = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = subprocess.run([MXBAIT_BIN, "show", "--json", "-d", d.data_dir, qid],
                           capture_output=True, timeout=60, env=sanitizer_env())
        if r.returncode == 0:
            a = json.loads(r.stdout).get("analysis")
            if a:
                break
        time.sleep(0.3)
    assert a, "the analyzer child did not analyse the message"
    assert len(a["links"]) == 1 and a["links"][0]["url"] in urls, a["links"]
    assert [(f["kind"], f.get("detail")) for f in a["findings"]] == \
        [("links_limit", "more than 1 distinct links")], a["findings"]
    r = subprocess.run([MXBAIT_BIN, "urls", "-d", d.data_dir, "--json"],
                       capture_output=True, timeout=60, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    mine = [u for u in json.loads(r.stdout) if m in u["url"]]
    assert len(mine) == 1, mine


def test_analyzer_psl_file_checked_at_load(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text(f"data_dir = {tmp_path}/data\n\nanalyzer_psl_file = {tmp_path}/no.dat\n")
    r = subprocess.run([MXBAIT_BIN, "serve", "-c", str(conf)], capture_output=True,
                       timeout=60, env=sanitizer_env())
    assert r.returncode != 0
    assert f"{conf}:3: analyzer_psl_file: {tmp_path}/no.dat: No such file or directory" \
        in r.stderr.decode(), r.stderr
    assert not os.path.exists(f"{tmp_path}/data")


def test_creds_reads_distributed_keys(make_daemon):
    d = make_daemon(distributed_window="10m", distributed_min_ips=1, **FAST)
    assert imaps_login(d, "trent", "nope") is None
    d.wait_events("auth", username="trent")
    r = subprocess.run([MXBAIT_BIN, "creds", "-c", d.conf_path, "--json"],
                       capture_output=True, timeout=60, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    flat = json.dumps(out)
    assert '"window_s": 600' in flat and '"min_ips": 1' in flat, flat[:500]
    users = {u["username"]: u for u in out["usernames"]}
    assert users["trent"]["distributed"] is True
    # the command line still wins
    r = subprocess.run([MXBAIT_BIN, "creds", "-c", d.conf_path, "--min-ips", "3", "--json"],
                       capture_output=True, timeout=60, env=sanitizer_env())
    users = {u["username"]: u for u in json.loads(r.stdout)["usernames"]}
    assert users["trent"]["distributed"] is False
