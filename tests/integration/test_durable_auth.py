"""A cracked account is on disk before the client hears that its login worked.

The credential policy saves a newly cracked account from inside the engine call that
answers "235" (IMAP OK, POP3 +OK); the event store's writer commits that save with
synchronous=FULL a few ms later.  The connection layer holds the answer until then
(core/conn.c, "answers that wait for a durable account save"), so a crash can never
forget an account an attacker was told it owns.

The test hook MXBAIT_TEST_DURABLE_DELAY_MS makes the writer sleep before such a commit
(a slow disk): the success answer must wait for it, a failure must not, and a daemon
killed with SIGKILL right after the answer still has the account after a restart (with
cracking made impossible in the restarted daemon, only a saved account logs in).
Before the hold existed the answer came at once and the kill lost the account.
"""

import imaplib
import os
import poplib
import smtplib
import ssl
import time

from conftest import Daemon

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

DELAY_MS = 1500
COMMON = "123456"          # rank 1 of the password list: cracks at the first try
UNLISTED = "zq7-not-in-any-list"

# Plausible names (common mailbox names): the policy cracks only those.
CONFIG = {"crack_after_failures": 0, "auth_failure_delay": "0", "auth_penalty": False}


def _start(tmp_path, label, delay_ms=DELAY_MS, **cfg):
    sub = os.path.join(str(tmp_path), label)
    os.makedirs(sub)
    c = dict(CONFIG)
    c.update(cfg)
    d = Daemon(sub, label, **c)
    if delay_ms:
        d.extra_env["MXBAIT_TEST_DURABLE_DELAY_MS"] = str(delay_ms)
    return d.start()


def _imap_login(d, user, password):
    """Seconds until the answer, and whether it was OK."""
    m = imaplib.IMAP4_SSL("127.0.0.1", d.port_imaps, ssl_context=CTX, timeout=20)
    t0 = time.monotonic()
    try:
        m.login(user, password)
        ok = True
    except imaplib.IMAP4.error:
        ok = False
    took = time.monotonic() - t0
    try:
        m.logout()
    except (imaplib.IMAP4.error, OSError):
        pass
    return took, ok


def _pop_login(d, user, password):
    p = poplib.POP3_SSL("127.0.0.1", d.port_pop3s, context=CTX, timeout=20)
    t0 = time.monotonic()
    try:
        p.user(user)
        p.pass_(password)
        ok = True
    except poplib.error_proto:
        ok = False
    took = time.monotonic() - t0
    try:
        p.quit()
    except (poplib.error_proto, OSError):
        pass
    return took, ok


def _smtp_login(d, user, password):
    s = smtplib.SMTP("127.0.0.1", d.port_submission, timeout=20)
    s.starttls(context=CTX)
    s.ehlo()
    t0 = time.monotonic()
    try:
        s.login(user, password)
        ok = True
    except smtplib.SMTPAuthenticationError:
        ok = False
    took = time.monotonic() - t0
    try:
        s.quit()
    except (smtplib.SMTPException, OSError):
        pass
    return took, ok


def test_success_waits_for_the_durable_save_failures_do_not(tmp_path):
    d = _start(tmp_path, "durable-hold")
    try:
        for login, user in ((_imap_login, "admin"), (_pop_login, "info"),
                            (_smtp_login, "support")):
            took, ok = login(d, user, UNLISTED)
            assert not ok
            assert took < DELAY_MS / 1000 * 0.8, \
                f"{login.__name__}: a failed guess waited {took:.2f}s (nothing to save)"
            took, ok = login(d, user, COMMON)
            assert ok, f"{login.__name__}: {user}/{COMMON} did not crack"
            assert took >= DELAY_MS / 1000 * 0.9, \
                f"{login.__name__}: success answered after {took:.2f}s, before the " \
                f"{DELAY_MS} ms commit of the cracked account"
            # The same pair again is already durable: no wait.
            took, ok = login(d, user, COMMON)
            assert ok
            assert took < DELAY_MS / 1000 * 0.8, \
                f"{login.__name__}: a known account's login waited {took:.2f}s"
    finally:
        problems = d.stop()
    assert not problems, problems


def test_kill9_right_after_the_answer_keeps_the_account(tmp_path):
    d = _start(tmp_path, "durable-kill", delay_ms=1000)
    data_dir = d.data_dir
    try:
        took, ok = _imap_login(d, "admin", COMMON)
        assert ok
    finally:
        d.kill()  # SIGKILL at once: no shutdown flush
    # Restarted so that nothing can be cracked: only a saved account logs in.
    d2 = _start(tmp_path, "durable-restarted", delay_ms=0, data_dir=data_dir,
                crack_after_failures=1000)
    try:
        took, ok = _imap_login(d2, "admin", COMMON)
        assert ok, "the account the client was told it cracked is gone after kill -9"
        took, ok = _imap_login(d2, "admin", "password")
        assert not ok, "a cracked account must keep its one password"
    finally:
        problems = d2.stop()
    assert not problems, problems
