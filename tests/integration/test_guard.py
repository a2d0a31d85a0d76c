"""The guard against the real programs (issue 9): a private Dovecot 2.3 whose
auth_policy_server_url points at mxbait, a private Postfix 3.7 using Dovecot SASL with
check_policy_service (twice: before and after reject_unlisted_recipient) pointing at
mxbait, and mxbait following both logs.  Real clients (hydra, imaplib, smtplib) attack
the real servers from loopback sources (trusted_networks is set to a documentation
address, so loopback counts as the Internet here); the tests assert the requests mxbait
received, the hash it was sent (equal to Dovecot's documented algorithm computed here
apart), and the decisions it took.  About 20 s."""

import imaplib
import os
import random
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import ALL_EVENT_LINES, STRACE_ALL, Daemon, free_ports
from guard_env import USERS, RealServers, dovecot_pwhash, have_real_servers

pytestmark = pytest.mark.skipif(not have_real_servers() or os.geteuid() != 0,
                                reason="needs root and Debian's postfix and dovecot-core")

KEY = "guard-test-key-" + os.urandom(4).hex()
NONCE = "guard-nonce-" + os.urandom(4).hex()
NET = random.randint(10, 250)  # 127.NET.x.y: this run's attacker addresses


def src(x, y):
    return f"127.{NET}.{x}.{y}"


class IMAPFrom(imaplib.IMAP4):
    """imaplib from a chosen source address."""

    def __init__(self, host, port, source):
        self._source = source
        super().__init__(host, port, timeout=10)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def imap_login(port, source, user, password, tls=False):
    try:
        m = IMAPFrom("127.0.0.1", port, source)
    except OSError as e:
        return f"connect: {e}"
    try:
        if tls:  # the honeypot, as Dovecot with disable_plaintext_auth = yes
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            m.starttls(ssl_context=ctx)
        m.login(user, password)
        m.logout()
        return "OK"
    except imaplib.IMAP4.error as e:
        return str(e)
    finally:
        try:
            m.shutdown()
        except OSError:
            pass


@pytest.fixture(scope="module")
def env():
    # not under pytest's 0700 tree: postfix and dovecot's users must traverse it
    tmp = tempfile.mkdtemp(prefix="mxbait-guard-")
    os.chmod(tmp, 0o711)
    p_dp, p_pp, p_imap, p_smtp, p_sub, p_pop3 = free_ports(6)
    real = RealServers(os.path.join(tmp, "real"), ports={"imap": p_imap, "smtp": p_smtp,
                                                         "submission": p_sub, "pop3": p_pop3},
                       policy_url=f"http://127.0.0.1:{p_dp}/", api_key=KEY, nonce=NONCE,
                       postfix_policy=f"inet:127.0.0.1:{p_pp}", no_penalty=True)
    os.makedirs(real.tmp)
    os.makedirs(os.path.join(tmp, "mx"))
    d = Daemon(os.path.join(tmp, "mx"), "guard", strace=STRACE_ALL,
               dovecot_policy_listen=f"127.0.0.1:{p_dp}", dovecot_policy_api_key=KEY,
               dovecot_policy_hash_nonce=NONCE, postfix_policy_listen=f"127.0.0.1:{p_pp}",
               watch_log_files=f"{real.dovecot_log}, {real.maillog}",
               trusted_networks="192.0.2.250/32", auth_failure_delay="100ms",
               auth_penalty=False, guard_ip_failures=5, guard_user_min_ips=5)
    d.start()
    try:
        real.start()
    except Exception:
        d.stop()
        real.stop()
        raise
    yield {"d": d, "real": real, "imap": p_imap, "smtp": p_smtp, "sub": p_sub, "tmp": tmp}
    real.stop()
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    if not problems:
        shutil.rmtree(tmp, ignore_errors=True)
    assert not problems, problems


def decisions(d, **match):
    return d.events("decision", **match)


def test_dovecot_policy_requests_and_hash(env):
    """Dovecot asks before and reports after; its pwhash is Dovecot's algorithm."""
    d, s = env["d"], src(1, 1)
    assert imap_login(env["imap"], s, "alice@example.test", "wrong-pw-1") != "OK"
    assert imap_login(env["imap"], s, "alice@example.test", USERS["alice@example.test"]) == "OK"
    evs = d.wait_events("guard_auth", count=3, src_ip=s, origin="dovecot_policy")
    allow = [e for e in evs if e["stage"] == "allow"]
    report = [e for e in evs if e["stage"] == "report"]
    assert allow and report, evs
    want_bad = dovecot_pwhash(NONCE, "alice@example.test", "wrong-pw-1")
    want_ok = dovecot_pwhash(NONCE, "alice@example.test", USERS["alice@example.test"])
    assert {e["pwhash"] for e in evs} == {want_bad, want_ok}, evs
    assert all(e["service"] == "imap" and e["username"] == "alice@example.test" for e in evs)
    ok = [e for e in report if e["success"]]
    assert ok and ok[0]["pwhash"] == want_ok and ok[0]["user_known"] is True, report
    assert [e for e in report if e["success"] is False][0]["pwhash"] == want_bad
    assert not decisions(d, src_ip=s), "a user's one typo convicted its address"


def test_user_spray_across_sources(env):
    """One user name from five addresses, one try each: all five diverted at once."""
    d = env["d"]
    sources = [src(2, i) for i in range(1, 6)]
    for i, s in enumerate(sources):
        assert imap_login(env["imap"], s, "info@example.test", f"guess-{i}") != "OK"
    evs = d.wait_events("decision", count=5, reason="user_spray")
    got = {e["source"] for e in evs}
    assert got == set(sources), evs
    ids = {e["session"] for e in d.events("guard_auth") if e["src_ip"] in sources}
    for e in evs:
        assert e["action"] == "divert" and e["origin"] == "guard" and e["op"] == "add" and e["by"] is None
        assert e["duration_ms"] == 3600000 and e["level"] == 0
        assert e["evidence"] and set(e["evidence"]) <= ids, (e, ids)
    # the next try of any of them is refused by the policy before the password is checked
    assert imap_login(env["imap"], sources[0], "alice@example.test",
                      USERS["alice@example.test"]) != "OK"
    rej = d.wait_events("guard_auth", src_ip=sources[0], stage="allow", answer="reject")
    assert rej, d.events("guard_auth", src_ip=sources[0])
    # the real user from elsewhere is untouched
    assert imap_login(env["imap"], src(2, 99), "alice@example.test",
                      USERS["alice@example.test"]) == "OK"


def test_stale_password_is_not_escalated(env):
    """A phone retrying one wrong password for a real account: counted once, no decision."""
    d, s = env["d"], src(3, 1)
    for _ in range(12):
        assert imap_login(env["imap"], s, "bob@example.test", "old-Bob-pw") != "OK"
    d.wait_events("guard_auth", count=12, src_ip=s, stage="report")
    time.sleep(0.3)
    assert not decisions(d, src_ip=s), decisions(d, src_ip=s)


@pytest.mark.skipif(not shutil.which("hydra"), reason="hydra not installed")
def test_hydra_smtp_then_imap(env):
    """hydra guesses through Postfix SASL (which asks Dovecot, which asks mxbait), is
    convicted for its many failed pairs, and from then on even the right password is
    refused on IMAP: hydra finds nothing."""
    d, tmp = env["d"], env["tmp"]
    words = os.path.join(tmp, "words.txt")
    with open(words, "w") as f:
        f.write("\n".join([f"zq7-wrong-{i}" for i in range(6)] +
                          [USERS["alice@example.test"]]) + "\n")
    r = subprocess.run(["hydra", "-l", "ghost@example.test", "-P", words, "-t", "1", "-I",
                        "-s", str(env["smtp"]), "127.0.0.1", "smtp", "PLAIN"],
                       capture_output=True, timeout=120, cwd=tmp, stdin=subprocess.DEVNULL)
    smtp_evs = d.wait_events("guard_auth", count=5, src_ip="127.0.0.1", service="smtp",
                             stage="report")
    assert len(smtp_evs) >= 5, (r.stdout[-2000:], d.events("guard_auth", src_ip="127.0.0.1"))
    dec = d.wait_events("decision", src_ip="127.0.0.1", action="divert")
    assert dec and dec[0]["reason"] in ("ip_failures", "credential_reuse"), dec
    r = subprocess.run(["hydra", "-l", "alice@example.test", "-P", words, "-t", "1", "-I",
                        "-s", str(env["imap"]), "127.0.0.1", "imap", "PLAIN"],
                       capture_output=True, timeout=120, cwd=tmp, stdin=subprocess.DEVNULL)
    out = r.stdout.decode(errors="replace")
    assert "0 valid password" in out or "login:" not in out, out[-3000:]
    rej = d.wait_events("guard_auth", count=7, src_ip="127.0.0.1", service="imap",
                        stage="allow", answer="reject")
    assert len(rej) >= 7, d.events("guard_auth", src_ip="127.0.0.1", service="imap")[-3:]


def test_trap_credential_from_the_honeypot(env):
    """A pair the honeypot accepted, used against the real Dovecot from any address,
    convicts at once (one attempt)."""
    d = env["d"]
    found = None
    with open("/usr/share/nmap/nselib/data/passwords.lst", errors="replace") as f:
        words = [l.strip() for l in f if l.strip() and not l.startswith("#")][:60]
    for w in words:
        if imap_login(d.port_imap, "127.0.0.1", "sales", w, tls=True) == "OK":
            found = w
            break
    assert found, "the honeypot never cracked 'sales'"
    s = src(4, 1)
    assert imap_login(env["imap"], s, "sales@example.test", found) != "OK"
    dec = d.wait_events("decision", src_ip=s)
    assert dec and dec[0]["reason"] == "trap_credential" and dec[0]["action"] == "divert", dec
    trap_ev = [e for e in d.events("guard_auth", src_ip=s) if e["trap"]]
    assert trap_ev and dec[0]["evidence"] == [trap_ev[0]["session"]], (dec, trap_ev)
    assert trap_ev[0]["answer"] == "reject"
    # a wrong password for the same user is no trap
    s2 = src(4, 2)
    assert imap_login(env["imap"], s2, "sales@example.test", found + "x") != "OK"
    d.wait_events("guard_auth", src_ip=s2, stage="report")
    assert not decisions(d, src_ip=s2)


def test_postfix_policy_enumeration(env):
    """RCPT guessing at the real Postfix: unknown recipients (not confirmed by the
    second placement) convict; a known recipient is confirmed; the convicted client's
    next RCPT is deferred."""
    d, s = env["d"], src(5, 1)
    with smtplib.SMTP("127.0.0.1", env["smtp"], timeout=10, source_address=(s, 0)) as c:
        c.ehlo("enum.example.net")
        c.mail("x@example.net")
        assert c.rcpt("alice@example.test")[0] == 250
        codes = [c.rcpt(f"nosuch{i}@example.test")[0] for i in range(5)]
        assert codes == [550] * 5, codes
    evs = d.wait_events("guard_rcpt", count=6, src_ip=s, origin="postfix_policy", timeout=15)
    known = {e["recipient"]: e["known"] for e in evs}
    assert known.get("alice@example.test") is True, evs
    assert all(known.get(f"nosuch{i}@example.test") is False for i in range(5)), evs
    dec = d.wait_events("decision", src_ip=s)
    assert dec and dec[0]["reason"] in ("recipient_enumeration", "domain_enumeration"), dec
    with smtplib.SMTP("127.0.0.1", env["smtp"], timeout=10, source_address=(s, 0)) as c:
        c.ehlo("enum.example.net")
        c.mail("x@example.net")
        code, msg = c.rcpt("alice@example.test")
        assert code == 450, (code, msg)
    # the log watch saw Postfix's rejects too, and did not count them again
    logged = d.wait_events("guard_rcpt", count=5, src_ip=s, origin="postfix_log")
    assert len(logged) >= 5 and all(e["answer"] == "none" for e in logged), logged
    assert len(decisions(d, src_ip=s)) == 1


def test_log_watch_lines(env):
    """The log watch turned the real servers' lines into observations with the right
    address and user: Dovecot's auth and login lines, Postfix's SASL warnings."""
    d = env["d"]
    dv = [e for e in d.events("guard_auth", origin="dovecot_log") if e["src_ip"] == src(3, 1)]
    assert dv and all(e["username"] == "bob@example.test" for e in dv), dv
    assert any(e["user_known"] is True for e in dv), dv  # "Password mismatch"
    unknown = [e for e in d.events("guard_auth", origin="dovecot_log")
               if e["username"] == "info@example.test"]
    assert unknown and all(e["user_known"] is False for e in unknown if e["user_known"] is not None)
    pf = d.events("guard_auth", origin="postfix_log", src_ip="127.0.0.1")
    assert pf and all(e["service"] == "smtp" and e["success"] is False for e in pf), pf
    assert all(e["answer"] == "none" for e in dv + pf)


def test_decisions_cli(env):
    """mxbait decisions add/allow/del reach the running guard; list shows them (table and
    JSON); the policy answers follow them at once."""
    d = env["d"]
    s, net = src(6, 1), f"127.{NET}.7.0/24"
    r = d.cli("decisions", "add", s, "--for", "10m", "--reason", "operator-test")
    assert r.returncode == 0, r.stderr
    assert d.cli("decisions", "add", net, "--action", "ban").returncode == 0
    dec = d.wait_events("decision", src_ip=s, origin="manual")
    assert dec and dec[0]["action"] == "divert" and dec[0]["duration_ms"] == 600000, dec
    assert dec[0]["reason"] == "operator-test"
    d.wait_events("decision", src_ip=net, origin="manual")
    assert imap_login(env["imap"], s, "alice@example.test", USERS["alice@example.test"]) != "OK"
    assert imap_login(env["imap"], src(7, 9), "alice@example.test",
                      USERS["alice@example.test"]) != "OK"  # inside the banned /24
    rows = {x["source"]: x for x in d.cli_json("decisions", "list")}
    assert rows[s]["action"] == "divert" and rows[s]["state"] == "active", rows
    assert rows[net]["action"] == "ban", rows
    # allow wins over the ban for that one address; del ends the divert
    assert d.cli("decisions", "allow", src(7, 9)).returncode == 0
    assert d.cli("decisions", "del", s).returncode == 0
    d.wait_events("decision", src_ip=s, op="del")
    d.wait_events("decision", src_ip=src(7, 9), action="allow")
    assert imap_login(env["imap"], s, "alice@example.test", USERS["alice@example.test"]) == "OK"
    assert imap_login(env["imap"], src(7, 9), "alice@example.test",
                      USERS["alice@example.test"]) == "OK"
    table = d.cli("decisions", "list").stdout.decode()
    assert f"127.{NET}.7.0/24" in table and "ban" in table, table
    everything = {x["id"]: x["state"] for x in d.cli_json("decisions", "list", "--all")}
    assert "removed" in everything.values(), everything
    bad = d.cli("decisions", "add", "not-an-address")
    assert bad.returncode == 2 and b"not an address" in bad.stderr


def test_postfix_policy_unix_socket(make_daemon, tmp_path):
    """postfix_policy_listen = unix:/path: Postfix's request on a unix socket, several on
    one connection (as Postfix keeps it open), a malformed one closes the connection."""
    sock_path = str(tmp_path / "policy.sock")
    d = make_daemon(postfix_policy_listen=f"unix:{sock_path}",
                    trusted_networks="192.0.2.250/32")
    deadline = time.monotonic() + 20
    while not os.path.exists(sock_path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.stat(sock_path).st_mode & 0o777 == 0o666  # Postfix's smtpd must reach it
    req = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           b"client_address=198.51.100.77\nclient_port=40000\nrecipient=info@example.test\n"
           b"sender=a@example.net\ninstance=abc.1\n\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(req + req.replace(b"info@", b"sales@"))
    got = b""
    while got.count(b"\n\n") < 2:
        chunk = s.recv(4096)
        assert chunk, got
        got += chunk
    assert got == b"action=DUNNO\n\n" * 2, got
    s.sendall(b"no equals sign here\n\n")
    assert s.recv(4096) == b"", "a malformed request must close the connection"
    s.close()
    evs = d.wait_events("guard_rcpt", count=2, src_ip="198.51.100.77", timeout=10)
    assert {e["recipient"] for e in evs} == {"info@example.test", "sales@example.test"}, evs
    assert all(e["known"] is None and e["answer"] == "dunno" and e["src_port"] == 40000
               for e in evs), evs
