"""IMAP and POP3 through the real daemon (src/core's TLS switch, the engines): STARTTLS/STLS
command injection is discarded and recorded, and an IMAP APPEND is captured as intel.

Injection: a client (or a man in the middle, CVE-2011-0411 style) sends the TLS command and
another command in one write.  The bytes after the command, received before the
handshake, must never be answered inside TLS: the first reply after the handshake must be
the answer to what the client sent inside TLS.
"""

import hashlib
import imaplib
import re
import socket
import ssl
import time

from conftest import PASSWORD, USER

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE


class Lines:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def line(self, timeout=10):
        self.sock.settimeout(timeout)
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"closed; pending {self.buf!r}")
            self.buf += chunk
        l, self.buf = self.buf.split(b"\r\n", 1)
        return l + b"\r\n"

    def rest(self, wait=0.5):
        """Whatever else arrives within wait seconds."""
        self.sock.settimeout(wait)
        try:
            while True:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                self.buf += chunk
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        out, self.buf = self.buf, b""
        return out


def test_imap_starttls_injection(daemon):
    s = socket.create_connection((daemon.host, daemon.port_imap), timeout=10)
    r = Lines(s)
    assert r.line().startswith(b"* OK [CAPABILITY IMAP4rev1 ")
    s.sendall(b"a1 STARTTLS\r\na2 CAPABILITY\r\n")
    assert r.line() == b"a1 OK Begin TLS negotiation now.\r\n"
    assert r.buf == b"", f"bytes after the STARTTLS answer in plaintext: {r.buf!r}"
    t = CTX.wrap_socket(s)
    r = Lines(t)
    t.sendall(b"a3 NOOP\r\n")
    first = r.line()
    assert first == b"a3 OK NOOP completed.\r\n", \
        f"first reply inside TLS is not the NOOP's: {first!r} (injected a2 answered?)"
    t.sendall(b"a4 LOGOUT\r\n")
    got = r.rest(1.0)
    assert b"a2" not in got, got
    assert got.startswith(b"* BYE Logging out\r\na4 OK Logout completed.\r\n"), got
    t.close()
    offs = daemon.wait_events("offence", kind="starttls_injection", proto="imap")
    assert len(offs) == 1 and "a2 CAPABILITY" in offs[0]["detail"], offs
    assert daemon.wait_events("tls", proto="imap", mode="starttls")


def test_pop3_stls_injection(daemon):
    s = socket.create_connection((daemon.host, daemon.port_pop3), timeout=10)
    r = Lines(s)
    assert r.line() == b"+OK Dovecot (Debian) ready.\r\n"
    s.sendall(b"STLS\r\nCAPA\r\n")
    assert r.line() == b"+OK Begin TLS negotiation now.\r\n"
    assert r.buf == b"", f"bytes after the STLS answer in plaintext: {r.buf!r}"
    t = CTX.wrap_socket(s)
    r = Lines(t)
    t.sendall(b"QUIT\r\n")
    got = r.rest(1.0)
    # CAPA's answer would start "+OK\r\nCAPA\r\n"; pop3-login says "Logging out" without
    # the dot (recorded Dovecot: pop3-greeting.txt), the logged-in pop3 process with it
    assert got == b"+OK Logging out\r\n", f"inside TLS: {got!r} (injected CAPA answered?)"
    t.close()
    offs = daemon.wait_events("offence", kind="starttls_injection", proto="pop3")
    assert len(offs) == 1 and "CAPA" in offs[0]["detail"], offs


def test_imap_append_captured(daemon):
    mark = "append-" + hashlib.sha256(str(time.time()).encode()).hexdigest()[:12]
    msg = (f"From: {USER}@example.test\r\nTo: someone@example.org\r\nSubject: {mark}\r\n"
           f"\r\nstolen draft {mark}\r\n").encode()
    m = imaplib.IMAP4_SSL(daemon.host, daemon.port_imaps, ssl_context=CTX, timeout=20)
    m.login(USER, PASSWORD)
    typ, data = m.append("Drafts", "(\\Draft)", None, msg)
    assert typ == "OK", (typ, data)
    # UIDPLUS: Dovecot answers [APPENDUID validity uid] Append completed (timing suffix)
    assert re.fullmatch(rb"\[APPENDUID \d+ \d+\] Append completed \(\d\.\d{3} \+ \d\.\d{3} "
                        rb"(\+ \d\.\d{3} )?secs\)\.", data[0]), data
    m.logout()
    evs = daemon.wait_events("message", method="APPEND")
    assert len(evs) == 1, evs
    ev = evs[0]
    assert ev["proto"] == "imaps" and ev["auth_user"] == USER, ev
    assert ev["sender"] == "" and ev["recipients"] == [], ev
    # APPEND: the client's bytes as sent (docs/events.md)
    assert ev["size"] == len(msg) and ev["sha256"] == hashlib.sha256(msg).hexdigest(), ev
    files = daemon.find_message(mark)
    assert len(files) == 1, files
    with open(files[0], "rb") as f:
        assert f.read() == msg
