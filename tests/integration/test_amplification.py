"""Remote amplification (issue 7): what a logged-in attacker's few bytes can make the
daemon hold, against a daemon with small budgets.

IMAP APPEND and COPY loops from several sessions at once (Python's imaplib over
IMAPS): COPY shares the message bytes, APPEND is charged to imap_session_memory and
imap_memory_budget, and past them the client gets Dovecot's
`NO [OVERQUOTA] Quota exceeded (mailbox for user is full)`.  The daemon's resident
memory must grow by less than the budget plus a fixed slack; before the fix the
same loops grew it by the size of every copy (1 MB appended: 156 MB per session).
Then the same mail FETCHed by sessions that read nothing: the answers queued for
clients are bounded by output_memory_budget.  Then huge AUTH fields (9,000-byte passwords over SMTP AUTH LOGIN, smtplib): refused
by the one credential rule, recorded as `malformed`.  Afterwards the sensor still
records: a new SMTP message is captured and new attempts are events.

bench/imap-amplification.py prints the same figures for any build (before/after)."""

import imaplib
import re
import smtplib
import socket
import ssl
import time

from conftest import PASSWORD, USER, DOMAIN, assert_captured, marker

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

SESSION_MEMORY = 1 << 20
MEMORY_BUDGET = 3 << 20
OUTPUT_BUDGET = 4 << 20
LIMITS = {
    "imap_session_memory": "1m",
    "imap_memory_budget": "3m",
    "output_memory_budget": "4m",
    "imap_literal_max": "400k",
    "auth_failure_delay": "0",
    "auth_penalty": False,
    "analyzer": False,
}
# Measure the daemon, not ASan's queue of freed blocks (256 MB by default).
ASAN = "quarantine_size_mb=4"
SESSIONS = 6
COPIES_PER_FOLDER = 30
MSG_SIZE = 256 * 1024
# What the resident size may grow by beyond the daemon-wide budget: allocator and
# sanitizer overhead, the sessions' generated mailboxes, buffers.
SLACK = 20 << 20


def message(n, tag):
    head = (f"From: spammer@evil.example\r\nTo: {USER}@{DOMAIN}\r\n"
            f"Subject: amplification {tag}\r\n\r\n").encode()
    return head + b"x" * (n - len(head) - 2) + b"\r\n"


def login(d):
    m = imaplib.IMAP4_SSL(d.host, d.port_imaps, ssl_context=CTX, timeout=30)
    m.login(USER, PASSWORD)
    return m


def test_imap_append_copy_loops_stay_in_budget(make_daemon):
    d = make_daemon(asan=ASAN, **LIMITS)
    sessions = [login(d) for _ in range(SESSIONS)]
    rss0 = d.rss_kb()
    assert rss0
    for i, m in enumerate(sessions):
        typ, data = m.append("INBOX", None, None, message(MSG_SIZE, f"s{i}"))
        assert typ == "OK", data
        uid = re.search(rb"\[APPENDUID \d+ (\d+)\]", data[0]).group(1).decode()
        typ, _ = m.select("INBOX")
        assert typ == "OK"
        for folder in ("Sent", "Drafts", "Trash", "Junk"):
            for _ in range(COPIES_PER_FOLDER):
                typ, data = m.uid("COPY", uid, folder)
                assert typ == "OK", data
        # the copies are there, at their full size, for the client
        typ, data = m.status("Trash", "(MESSAGES)")
        assert typ == "OK"
    # An APPEND the session's budget cannot take: refused before "+ OK"
    # (imaplib then sends nothing), and recorded.
    for i, m in enumerate(sessions):
        typ, data = m.append("INBOX", None, None, message(400 * 1024 - 1, f"big{i}"))
        assert typ == "NO", data
        assert b"[OVERQUOTA] Quota exceeded (mailbox for user is full)" in data[0]
    rss1 = d.rss_kb()
    grew = (rss1 - rss0) * 1024
    assert grew < MEMORY_BUDGET + SLACK, (
        f"RSS grew by {grew >> 20} MiB with {SESSIONS} sessions x "
        f"{4 * COPIES_PER_FOLDER} copies of {MSG_SIZE >> 10} KiB")
    assert d.wait_events("message_rejected", count=SESSIONS, reason="quota")
    assert len(d.wait_events("message", count=SESSIONS, method="APPEND")) == SESSIONS
    for m in sessions:
        m.logout()
    assert d.alive()
    check_still_recording(d)


class RawImap:
    """An IMAPS client that writes commands and reads only when asked to."""

    def __init__(self, d):
        sock = socket.create_connection((d.host, d.port_imaps), timeout=30)
        self.s = CTX.wrap_socket(sock)
        self.buf = b""
        self.read_until(b"\r\n")

    def read_until(self, end):
        while end not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError(self.buf[-200:])
            self.buf += chunk
        head, self.buf = self.buf.split(end, 1)
        return head + end

    def cmd(self, tag, text, literal=None):
        if literal is None:
            self.s.sendall(f"{tag} {text}\r\n".encode())
        else:
            self.s.sendall(f"{tag} {text} {{{len(literal)}+}}\r\n".encode() + literal + b"\r\n")
        out = b""
        while True:
            line = self.read_until(b"\r\n")
            out += line
            if line.startswith(f"{tag} ".encode()):
                return out


def test_fetch_left_unread_stays_in_budget(make_daemon):
    """Sessions that each APPEND 256 KiB, copy it 40 times (free: shared bytes) and
    FETCH the lot (10 MiB of answer each) without reading: the daemon keeps at most
    output_memory_budget of unread answers, plus the answer being made."""
    d = make_daemon(asan=ASAN, **LIMITS)
    rss0 = d.rss_kb()
    clients = []
    for i in range(8):
        c = RawImap(d)
        assert b"OK" in c.cmd("l", f"LOGIN {USER} {PASSWORD}")
        assert b"a OK" in c.cmd("a", "APPEND INBOX", message(MSG_SIZE, f"f{i}"))
        assert b"s OK" in c.cmd("s", "SELECT INBOX")
        for k in range(40):
            assert f"c{k} OK".encode() in c.cmd(f"c{k}", "COPY * Trash")
        assert b"t OK" in c.cmd("t", "SELECT Trash")
        c.s.sendall(b"f FETCH 1:* BODY.PEEK[]\r\n")  # and read nothing
        clients.append(c)
        time.sleep(0.2)
    time.sleep(1)
    grew = (d.rss_kb() - rss0) * 1024
    one_answer = 41 * MSG_SIZE
    assert grew < MEMORY_BUDGET + OUTPUT_BUDGET + one_answer + SLACK, (
        f"RSS grew by {grew >> 20} MiB with 8 unread FETCHes of {one_answer >> 20} MiB")
    dropped = d.wait_events("disconnect", count=4, reason="error")
    assert len(dropped) >= 4, "clients that read nothing were not dropped"
    for c in clients:
        c.s.close()
    assert d.alive()
    check_still_recording(d)


def auth_login_attempt(d, password):
    s = smtplib.SMTP(d.host, d.port_submission, timeout=30)
    s.starttls(context=CTX)
    s.ehlo("attacker.example")
    s.user, s.password = USER, password
    try:
        s.auth("LOGIN", s.auth_login)
        raise AssertionError(f"a {len(password)}-byte password logged in")
    except smtplib.SMTPAuthenticationError as e:
        assert e.smtp_code in (535, 454), e
    s.close()


def test_huge_auth_fields(make_daemon):
    d = make_daemon(asan=ASAN, **LIMITS)
    # Warm up first (TLS, the event store, the allocator's size classes): what is
    # measured is what the huge fields add.
    for i in range(5):
        auth_login_attempt(d, f"short-{i}")
    d.wait_events("auth", count=5, result="fail")
    rss0 = d.rss_kb()
    for i in range(20):
        auth_login_attempt(d, "p" * 9000 + str(i))
    evs = d.wait_events("auth", count=20, result="malformed", username=USER)
    assert len(evs) == 20
    assert all(e["success"] is False for e in evs)
    grew = (d.rss_kb() - rss0) * 1024
    assert grew < SLACK, f"RSS grew by {grew >> 20} MiB after 20 huge AUTH attempts"
    check_still_recording(d)


def check_still_recording(d):
    """After the abuse: a message is still captured whole and attempts still recorded."""
    mark = marker()
    s = smtplib.SMTP(d.host, d.port_smtp, timeout=30)
    s.sendmail("sender@remote.example", [f"{USER}@{DOMAIN}"],
               f"Subject: {mark}\r\n\r\nstill recording\r\n")
    s.quit()
    assert_captured(d, mark, sender="sender@remote.example",
                    recipients=[f"{USER}@{DOMAIN}"])
    m = imaplib.IMAP4_SSL(d.host, d.port_imaps, ssl_context=CTX, timeout=30)
    try:
        m.login(USER, "wrong-" + mark)
    except imaplib.IMAP4.error:
        pass
    m.shutdown()
    assert d.wait_events("auth", password="wrong-" + mark, result="fail")
