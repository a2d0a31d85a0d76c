"""Issue 11 item 3: deception that survives a canary.

A honeypot detector tries a random user name with common passwords: on a real server it
never logs in, and it must not on mxbait either.  Only plausible accounts can be cracked
(src/deceive/deception.h): names in the username list (data/usernames.txt), names the
attacker probed with RCPT TO, names tried from several networks (/24), fixed accounts.

Real clients: Python's imaplib, poplib and smtplib over TLS, and hydra.  Every random
name gets the policy's WHOLE password list (password_top_n = 50 here, so that the list is
small enough to try in full on every protocol) after enough failures for any threshold;
a plausible name with the same guesses cracks.  Other networks are other loopback
addresses (127.0.N.2 is the /24 127.0.N.0), so the distributed rule is tested without
namespaces.
"""

import imaplib
import os
import poplib
import random
import re
import shutil
import smtplib
import socket
import ssl
import string
import subprocess
import time

import pytest

from conftest import DOMAIN, USERNAME_LIST

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

PASSWORD_LIST = "/usr/share/nmap/nselib/data/passwords.lst"
TOP_N = 50
# More failures first than any threshold of crack_after_failures 2-6.
UNCOMMON = [f"zq7-unlisted-{c}" for c in "abcdefg"]
CONFIG = {"auth_failure_delay": "0", "auth_penalty": False, "password_top_n": TOP_N,
          "crack_after_failures": "2-6", "password_list": PASSWORD_LIST,
          # hundreds of guesses from one address in seconds: no per-IP connection rate
          "connection_rate_per_ip": 0}


def top_list():
    out = []
    with open(PASSWORD_LIST, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\r\n")
            if line and not line.startswith("#"):
                out.append(line)
            if len(out) == TOP_N:
                break
    return out


def listed_names():
    with open(USERNAME_LIST) as f:
        return {l.strip().lower() for l in f if l.strip() and not l.startswith("#")}


def random_name(rng):
    names = listed_names()
    while True:
        n = "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
        if n not in names:
            return n


@pytest.fixture
def d(make_daemon):
    if not os.path.isfile(PASSWORD_LIST):
        pytest.skip("nmap-common's passwords.lst is missing")
    return make_daemon(**CONFIG)


# ---- clients that keep guessing, reconnecting when the server hangs up (as Dovecot
# and Postfix do after some failures); each returns the password that worked, or None

class _Src:
    """A connect() from a chosen loopback source address (another network)."""

    def __init__(self, src):
        self.src = src

    def connect(self, host, port, timeout):
        return socket.create_connection((host, port), timeout,
                                        source_address=(self.src, 0) if self.src else None)


def _close(conn):
    """Close a client connection object, whatever state it is in."""
    if conn is None:
        return
    try:
        (conn.shutdown if isinstance(conn, imaplib.IMAP4) else conn.close)()
    except OSError:
        pass


def imap_guess(d, user, passwords, src=None):
    src_c = _Src(src)

    class IMAP(imaplib.IMAP4_SSL):
        def _create_socket(self, timeout):
            return self.ssl_context.wrap_socket(src_c.connect(self.host, self.port, timeout),
                                                server_hostname=self.host)

    m = None
    try:
        for pw in passwords:
            for _ in range(2):
                try:
                    if m is None:
                        m = IMAP(d.host, d.port_imaps, ssl_context=CTX, timeout=20)
                    m.login(user, pw)
                    m.logout()
                    return pw
                except imaplib.IMAP4.abort:
                    _close(m)  # hung up: the same guess again on a new connection
                    m = None
                    continue
                except imaplib.IMAP4.error as e:
                    assert "AUTHENTICATIONFAILED" in str(e), e
                    break
        return None
    finally:
        if m is not None:
            try:
                m.shutdown()
            except OSError:
                pass


def pop3_guess(d, user, passwords, src=None):
    src_c = _Src(src)

    class POP3(poplib.POP3_SSL):
        def _create_socket(self, timeout):
            return self.context.wrap_socket(src_c.connect(self.host, self.port, timeout),
                                            server_hostname=self.host)

    p = None
    try:
        for pw in passwords:
            for _ in range(2):
                try:
                    if p is None:
                        p = POP3(d.host, d.port_pop3s, context=CTX, timeout=20)
                    p.user(user)
                    p.pass_(pw)
                    p.quit()
                    p = None
                    return pw
                except poplib.error_proto as e:
                    if b"Authentication failed" in e.args[0]:
                        break
                    _close(p)  # a disconnect ("-ERR Disconnected ..."): reconnect
                    p = None
                except (ConnectionError, EOFError):
                    _close(p)
                    p = None
        return None
    finally:
        if p is not None:
            try:
                p.close()
            except OSError:
                pass


def smtp_guess(d, user, passwords, src=None):
    s = None
    try:
        for pw in passwords:
            for _ in range(2):
                try:
                    if s is None:
                        s = smtplib.SMTP_SSL(d.host, d.port_smtps, context=CTX, timeout=20,
                                             source_address=(src, 0) if src else None)
                        s.ehlo("client.example.net")
                    s.login(user, pw)
                    s.quit()
                    s = None
                    return pw
                except smtplib.SMTPAuthenticationError as e:
                    if e.smtp_code == 535:
                        break
                    _close(s)  # 454 from the third failure on: a new connection
                    s = None
                except (smtplib.SMTPServerDisconnected, ConnectionError):
                    _close(s)
                    s = None
        return None
    finally:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


GUESSERS = {"imaps": imap_guess, "pop3s": pop3_guess, "smtps": smtp_guess}


def successes(d, user):
    return [e for e in d.events("auth") if e.get("success")
            and (e.get("username") or "").lower().split("@")[0] == user]


# ---- the canary

def test_random_names_never_log_in(d):
    """Random names, every list password after enough failures, on IMAP, POP3 and SMTP
    AUTH, from one address and then from many addresses of one /24: never a login."""
    rng = random.Random()
    words = UNCOMMON + top_list()
    assert len(words) >= 50
    names = [random_name(rng) for _ in range(2)]
    for name in names:
        for proto, guess in GUESSERS.items():
            user = name if proto != "smtps" else f"{name}@{DOMAIN}"
            assert guess(d, user, words) is None, f"{proto}: canary {user} logged in"
    # many addresses, one network: still one source
    for i, pw in enumerate(words[:12] + top_list()):
        assert smtp_guess(d, names[0], [pw], src=f"127.0.9.{2 + i % 200}") is None
    for name in names:
        assert not successes(d, name)
        fails = [e for e in d.events("auth") if not e.get("success")
                 and (e.get("username") or "").lower().split("@")[0] == name]
        # every guess reached the policy (none dropped before it): 3 protocols at least
        assert len(fails) >= 3 * len(words), (name, len(fails))


@pytest.mark.skipif(not shutil.which("hydra"), reason="hydra not installed")
def test_hydra_canary_finds_nothing(d, tmp_path):
    """hydra with the whole list against a random name: 0 valid passwords."""
    name = random_name(random.Random())
    words = tmp_path / "words.txt"
    words.write_text("\n".join(UNCOMMON + top_list()) + "\n")
    r = subprocess.run(["hydra", "-l", name, "-P", str(words), "-t", "4", "-I",
                        "-s", str(d.port_imaps), "-S", d.host, "imap"],
                       capture_output=True, timeout=300, cwd=str(tmp_path),
                       stdin=subprocess.DEVNULL)
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    assert re.search(r"0 valid password(s)? found", out), out[-3000:]
    assert "login:" not in out, out[-3000:]
    assert not successes(d, name)
    assert len([e for e in d.events("auth", username=name)]) >= len(UNCOMMON) + TOP_N


# ---- what may be cracked

def internal_dates(d, user, pw):
    m = imaplib.IMAP4_SSL(d.host, d.port_imaps, ssl_context=CTX, timeout=20)
    m.login(user, pw)
    typ, data = m.select("INBOX", readonly=True)
    n = int(data[0])
    typ, data = m.fetch(f"1:{n}", "(INTERNALDATE)")
    m.logout()
    return [imaplib.Internaldate2tuple(x) for x in data if x]


def test_listed_name_cracks_everywhere_dated_from_the_crack(d):
    """A listed name with the same guesses cracks; the password is then the one truth
    on every protocol; the mailbox's dates count back from the crack day."""
    words = UNCOMMON + top_list()
    pw = imap_guess(d, "admin", words)
    assert pw in top_list(), pw
    assert pop3_guess(d, "admin", [pw]) == pw
    assert smtp_guess(d, f"Admin@{DOMAIN}", [pw]) == pw
    other = next(w for w in top_list() if w != pw)
    assert imap_guess(d, "admin", [other]) is None
    today = time.gmtime()
    midnight = time.mktime(time.struct_time((today.tm_year, today.tm_mon, today.tm_mday,
                                             0, 0, 0, 0, 0, 0))) - time.timezone
    dates = [time.mktime(t) for t in internal_dates(d, "admin", pw)]
    assert dates
    # imaplib gives local time tuples: compare in seconds since the epoch, with a day's
    # slack for the zone
    assert all(midnight - 46 * 86400 < t < midnight + 86400 for t in dates), dates
    assert max(dates) > midnight - 40 * 86400, dates


def test_rcpt_probed_name_cracks(d):
    """The attack's own enumeration: a random name accepted by RCPT TO on port 25 in a
    served domain becomes crackable; one probed in a domain not served does not."""
    rng = random.Random()
    probed, foreign = random_name(rng), random_name(rng)
    with smtplib.SMTP(d.host, d.port_smtp, timeout=20) as s:
        s.ehlo("probe.example.net")
        s.mail("probe@example.net")
        code, _ = s.rcpt(f"{probed}@{DOMAIN}")
        assert code == 250
        s.rset()
    words = UNCOMMON + top_list()
    assert imap_guess(d, foreign, words) is None
    pw = imap_guess(d, probed, words)
    assert pw in top_list(), pw
    assert pop3_guess(d, probed, [pw]) == pw


def test_name_from_three_networks_cracks(d):
    """A name tried from three /24s is the distributed attack: crackable.  From any
    number of addresses of two networks it is not."""
    name = random_name(random.Random())
    words = UNCOMMON + top_list()
    assert smtp_guess(d, name, words[:20], src="127.0.11.2") is None
    for i in range(3, 10):
        assert smtp_guess(d, name, [words[20 + i]], src=f"127.0.11.{i}") is None
    assert smtp_guess(d, name, words[20:], src="127.0.12.2") is None   # 2nd network
    pw = imap_guess(d, name, words, src="127.0.13.2")                   # 3rd
    assert pw in top_list(), pw
    # cracked: from anywhere, on every protocol
    assert pop3_guess(d, name, [pw]) == pw
    assert smtp_guess(d, name, [pw]) == pw


def test_unreadable_list_falls_back_to_the_shipped_names(make_daemon):
    """username_list unreadable (an uninstalled build: `make run` looks under a prefix
    where nothing was installed): the daemon warns and uses data/usernames.txt as built
    into the binary, so a given name of the list ("bob", the README tour's) cracks and a
    random name still does not."""
    if not os.path.isfile(PASSWORD_LIST):
        pytest.skip("nmap-common's passwords.lst is missing")
    cfg = dict(CONFIG)
    cfg["username_list"] = "/nonexistent/usernames.txt"
    dm = make_daemon(**cfg)
    words = UNCOMMON + top_list()
    assert "bob" in listed_names()
    assert imap_guess(dm, "bob", words) is not None, "bob did not crack with the built-in list"
    canary = random_name(random.Random())
    assert imap_guess(dm, canary, words) is None, f"canary {canary} logged in"
    assert "using the built-in copy of the shipped list" in dm.stderr_text()
