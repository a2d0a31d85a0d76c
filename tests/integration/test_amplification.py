"""Remote amplification (issue 7): what a logged-in attacker's few bytes can make the
daemon hold, against a daemon with small budgets.

IMAP APPEND and COPY loops from several sessions at once (Python's imaplib over
IMAPS): COPY shares the message bytes, APPEND is charged to imap_session_memory and
imap_memory_budget, and past them the client gets Dovecot's
`NO [OVERQUOTA] Quota exceeded (mailbox for user is full)`.  The daemon's resident
memory must grow by less than the budget plus a fixed slack; before the fix the
same loops grew it by the size of every copy (1 MB appended: 156 MB per session).
Then huge AUTH fields (9,000-byte passwords over SMTP AUTH LOGIN, smtplib): refused
by the one credential rule, recorded as `malformed`.  Afterwards the sensor still
records: a new SMTP message is captured and new attempts are events.

bench/imap-amplification.py prints the same figures for any build (before/after)."""

import imaplib
import re
import smtplib
import ssl

from conftest import PASSWORD, USER, DOMAIN, assert_captured, marker

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

SESSION_MEMORY = 1 << 20
MEMORY_BUDGET = 3 << 20
LIMITS = {
    "imap_session_memory": "1m",
    "imap_memory_budget": "3m",
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


def test_huge_auth_fields(make_daemon):
    d = make_daemon(asan=ASAN, **LIMITS)
    rss0 = d.rss_kb()
    for i in range(20):
        s = smtplib.SMTP(d.host, d.port_submission, timeout=30)
        s.starttls(context=CTX)
        s.ehlo("attacker.example")
        s.user, s.password = USER, "p" * 9000 + str(i)
        try:
            s.auth("LOGIN", s.auth_login)
            raise AssertionError("a 9,000-byte password logged in")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code in (535, 454), e
        s.close()
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
