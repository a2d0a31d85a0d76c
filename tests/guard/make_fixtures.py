#!/usr/bin/python3
"""Make the log watch's fixtures from the real Debian Postfix 3.7 and Dovecot 2.3.

Runs a private Postfix (postfix -c TMP, one smtpd and one postscreen on loopback high
ports, Dovecot SASL) and a private Dovecot (dovecot -c TMP, passwd-file users, IMAP and,
when installed, POP3), makes them fail in every way the guard reads (wrong password,
unknown user, SASL failures, an AUTH the client abandons, unknown recipients, too many
errors, postscreen's pregreet and non-SMTP command), and writes what they logged:

  tests/guard/postfix-3.7.log    Postfix's maillog_file (syslog layout)
  tests/guard/dovecot-2.3.log    Dovecot's log_path (its own layout)

Usage (as root: the servers run their own users):  tests/guard/make_fixtures.py
The unit test tests/unit/test_logparse.c reads these files with the expectations in
tests/guard/*.expect (one line per input line).  Run it again after a Debian update and
review the diff.
"""

import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import imaplib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from guard_env import RealServers, USERS  # noqa: E402


def free_ports(n):
    ss = [socket.socket() for _ in range(n)]
    for s in ss:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in ss]
    for s in ss:
        s.close()
    return ports


class IMAPFrom(imaplib.IMAP4):
    def __init__(self, port, source):
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout):
        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def imap(port, source, user, pw):
    m = IMAPFrom(port, source)
    try:
        m.login(user, pw)
    except imaplib.IMAP4.error:
        pass
    try:
        m.logout()
    except Exception:
        pass


def main():
    tmp = tempfile.mkdtemp(prefix="mxbait-fixtures-")
    os.chmod(tmp, 0o711)
    p_imap, p_smtp, p_ps, p_pop3 = free_ports(4)
    # mynetworks without the test's sources: postscreen screens them
    real = RealServers(tmp, ports={"imap": p_imap, "smtp": p_smtp, "pop3": p_pop3},
                       no_penalty=True, mynetworks="127.0.0.1/32")
    real.write_config()
    # postscreen in front of a second smtpd
    with open(os.path.join(real.pf_dir, "master.cf"), "a") as f:
        f.write(f"127.0.0.1:{p_ps} inet n - n - 1 postscreen\n"
                "smtpd     pass  -       -       n       -       -       smtpd\n"
                "dnsblog   unix  -       -       n       -       0       dnsblog\n"
                "tlsproxy  unix  -       -       n       -       0       tlsproxy\n")
    with open(os.path.join(real.pf_dir, "main.cf"), "a") as f:
        f.write("postscreen_greet_wait = 2s\npostscreen_non_smtp_command_enable = yes\n"
                "postscreen_pipelining_enable = yes\nsmtpd_hard_error_limit = 3\n")
    orig_write = real.write_config
    real.write_config = lambda: None
    try:
        real.start()
        time.sleep(1)
        # Dovecot: wrong password (known user), unknown user, several attempts
        imap(p_imap, "127.0.0.11", "alice@example.test", "wrong-1")
        imap(p_imap, "127.0.0.12", "nosuch@example.test", "x")
        m = IMAPFrom(p_imap, "127.0.0.13")
        for pw in ("a", "b", "c"):
            try:
                m.login("bob@example.test", pw)
            except imaplib.IMAP4.error:
                pass
        m.shutdown()
        imap(p_imap, "127.0.0.14", "alice@example.test", USERS["alice@example.test"])
        if os.path.exists("/usr/lib/dovecot/pop3"):
            import poplib
            p = poplib.POP3("127.0.0.1", p_pop3, timeout=10)
            try:
                p.user("carol@example.test")
                p.pass_("nope")
            except poplib.error_proto:
                pass
            p.quit()
        # Postfix: SASL failures (via Dovecot), an abandoned AUTH, unknown recipients
        with smtplib.SMTP("127.0.0.1", p_smtp, source_address=("127.0.0.21", 0)) as c:
            c.ehlo("client.example.net")
            for pw in ("x1", "x2"):
                try:
                    c.login("ghost@example.test", pw)
                except smtplib.SMTPAuthenticationError:
                    pass
        s = socket.create_connection(("127.0.0.1", p_smtp), source_address=("127.0.0.22", 0))
        s.recv(1000)
        s.sendall(b"EHLO x\r\n")
        time.sleep(0.2)
        s.recv(1000)
        s.sendall(b"AUTH LOGIN\r\n")
        time.sleep(0.2)
        s.close()
        with smtplib.SMTP("127.0.0.1", p_smtp, source_address=("127.0.0.23", 0)) as c:
            c.ehlo("enum.example.net")
            c.mail("a@example.net")
            for r in ("nosuch1@example.test", "alice@example.test", "nosuch2@example.test"):
                c.rcpt(r)
        s = socket.create_connection(("127.0.0.1", p_smtp), source_address=("127.0.0.24", 0))
        s.recv(1000)
        for _ in range(4):
            s.sendall(b"BOGUS\r\n")
            time.sleep(0.1)
        s.close()
        # postscreen: talks before the banner; a non-SMTP command
        s = socket.create_connection(("127.0.0.1", p_ps), source_address=("127.0.0.31", 0))
        s.sendall(b"EHLO too.early.example\r\n")
        time.sleep(2.5)
        s.close()
        s = socket.create_connection(("127.0.0.1", p_ps), source_address=("127.0.0.32", 0))
        time.sleep(2.3)
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        time.sleep(0.5)
        s.close()
        time.sleep(2)
    finally:
        real.stop()
        real.write_config = orig_write
    shutil.copy(real.maillog, os.path.join(HERE, "postfix-3.7.log"))
    shutil.copy(real.dovecot_log, os.path.join(HERE, "dovecot-2.3.log"))
    print("wrote", os.path.join(HERE, "postfix-3.7.log"), os.path.join(HERE, "dovecot-2.3.log"))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
