"""Hostile clients, each bounded in time: the daemon answers like Postfix, records the
offence, stays healthy for other clients, and never half-captures a message."""

import os
import socket
import ssl
import threading
import time

import pytest

from conftest import DOMAIN, HOSTNAME, Raw, marker, tcp_state_ok

BANNER = f"220 {HOSTNAME} ESMTP Postfix (Debian/GNU)"


def _ehlo(c, name="adv.example.net"):
    r = c.cmd(f"EHLO {name}")
    assert r[0] == f"250-{HOSTNAME}" and r[-1].startswith("250 "), r
    return r


def test_slow_client(daemon):
    """One byte every 50 ms: the command is still answered, in one piece."""
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    for b in b"EHLO slow.example.net\r\n":
        c.send(bytes([b]))
        time.sleep(0.05)
    r = c.reply()
    assert r[0] == f"250-{HOSTNAME}" and r[-1] == "250 CHUNKING", r
    for b in b"NOOP\r\n":
        c.send(bytes([b]))
        time.sleep(0.05)
    assert c.reply() == ["250 2.0.0 Ok"]
    c.close()


def test_1mb_line_without_newline(daemon):
    """1 MB with no line end: the daemon bounds its buffer, records line_too_long, keeps
    serving others; the connection either survives (then answers NOOP) or is closed."""
    rss0 = daemon.rss_kb()
    c = Raw(daemon, timeout=30)
    assert c.reply() == [BANNER]
    _ehlo(c)
    blob = b"A" * (1024 * 1024)
    closed = False
    try:
        c.send(blob)
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    # Another client is served while that line sits there.
    tcp_state_ok(daemon)
    replies = []
    if not closed:
        try:
            c.send(b"\r\n")
            replies = c.reply(15)
            r = c.cmd("NOOP", 15)
            assert r == ["250 2.0.0 Ok"], f"after the long line, NOOP got {r}"
        except (ConnectionError, BrokenPipeError, ConnectionResetError):
            closed = True
    c.close()
    if replies:
        assert replies[-1][:1] in ("4", "5"), f"a 1 MB 'command' was answered {replies}"
    assert daemon.wait_events("offence", kind="line_too_long"), \
        "no offence kind=line_too_long recorded for a 1 MB line"
    # The line ended in CRLF: a bare_lf offence would be a false signal.
    assert not daemon.events("offence", kind="bare_lf"), \
        "bare_lf offence recorded for an over-long line that ended in CRLF: " + \
        repr(daemon.events("offence", kind="bare_lf")[0]["detail"][:40])
    rss1 = daemon.rss_kb()
    if rss0 and rss1:
        assert rss1 - rss0 < 64 * 1024, f"RSS grew {rss1 - rss0} kB for one 1 MB line"
    tcp_state_ok(daemon)


def test_10000_bad_commands(make_daemon):
    """10,000 unknown commands in a stream: 500 for each until the hard error limit (20),
    slowed after the soft limit, then 421 and close; a second client is served
    meanwhile."""
    d = make_daemon(error_sleep_time="200ms")
    c = Raw(d, timeout=60)
    assert c.reply() == [BANNER]
    t0 = time.monotonic()
    sender = threading.Thread(target=lambda: _send_quietly(c, b"XYZZY\r\n" * 10000))
    sender.start()
    # While that session is being slowed down, another one is answered at once.
    time.sleep(0.5)
    t1 = time.monotonic()
    tcp_state_ok(d)
    assert time.monotonic() - t1 < 2.0, "second client waited behind the bad one"
    data = c.read_all_until_closed(timeout=60)
    sender.join(10)
    c.close()
    lines = data.decode("utf-8", "replace").split("\r\n")
    lines = [l for l in lines if l]
    n500 = sum(1 for l in lines if l == "500 5.5.2 Error: command not recognized")
    assert lines[-1] == f"421 4.7.0 {HOSTNAME} Error: too many errors", lines[-3:]
    assert n500 == 20, f"{n500} x 500 before the 421 (Postfix: hard limit 20)"
    assert time.monotonic() - t0 < 60
    disc = d.wait_events("disconnect", reason="too_many_errors")
    assert disc and disc[0]["errors"] >= 20, disc
    unk = d.events("offence", kind="unknown_command")
    assert 1 <= len(unk) <= 21, f"{len(unk)} unknown_command offences for a 20-error session"


def _send_quietly(c, data):
    try:
        c.send(data)
    except OSError:
        pass


def _garbage(n=4096):
    return b"\x16\x03\x01\x02\x00" + os.urandom(n)


def test_tls_garbage_smtps(daemon):
    s = socket.create_connection((daemon.host, daemon.port_smtps), timeout=10)
    s.sendall(_garbage())
    s.settimeout(10)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
    ev = daemon.wait_events("tls_error", mode="implicit")
    assert ev and ev[0]["proto"] == "smtps", "no tls_error (implicit) for garbage on smtps"
    assert daemon.wait_events("disconnect", proto="smtps")
    tcp_state_ok(daemon)


def test_tls_garbage_after_starttls(daemon):
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    assert c.cmd("STARTTLS") == ["220 2.0.0 Ready to start TLS"]
    c.send(_garbage())
    try:
        c.read_all_until_closed(10)
    except (OSError, TimeoutError):
        pass
    c.close()
    ev = daemon.wait_events("tls_error", mode="starttls")
    assert ev, "no tls_error (starttls) for garbage after STARTTLS"
    tcp_state_ok(daemon)


def test_starttls_injection(daemon):
    """RFC 3207: 'STARTTLS\\r\\nRSET\\r\\n' in one write: the RSET must be discarded, never
    answered inside TLS, and the injection recorded."""
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    c.send(b"STARTTLS\r\nRSET\r\n")
    assert c.reply() == ["220 2.0.0 Ready to start TLS"]
    assert c.buf == b"", f"plaintext after 220: {c.buf!r}"
    c.starttls_wrap()
    c.sock.settimeout(1.0)
    try:
        early = c.sock.recv(4096)
    except (socket.timeout, TimeoutError):
        early = b""
    assert early == b"", f"server answered the injected RSET inside TLS: {early!r}"
    r = c.cmd("NOOP")
    assert r == ["250 2.0.0 Ok"], r
    assert c.cmd("QUIT") == ["221 2.0.0 Bye"]
    c.close()
    ev = daemon.wait_events("offence", kind="starttls_injection")
    assert ev and "RSET" in ev[0]["detail"], ev
    time.sleep(0.3)  # a second record of the same injection would be in by now
    ev = daemon.events("offence", kind="starttls_injection")
    assert len(ev) == 1, f"one injection recorded {len(ev)} times: {ev}"


def test_disconnect_mid_data(daemon):
    m = marker()
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    assert c.cmd("MAIL FROM:<gone@example.net>") == ["250 2.1.0 Ok"]
    assert c.cmd(f"RCPT TO:<alice@{DOMAIN}>") == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0].startswith("354 ")
    c.send(f"Subject: {m}\r\n\r\n".encode() + b"half a message\r\n" * 5000)
    time.sleep(0.3)
    c.sock.shutdown(socket.SHUT_RDWR)
    c.close()
    rej = daemon.wait_events("message_rejected", reason="hangup")
    assert rej, "no message_rejected reason=hangup"
    assert rej[0]["reply"] is None and rej[0]["size"] > 0, rej
    assert daemon.wait_events("disconnect", reason="client_closed")
    time.sleep(0.2)
    assert not daemon.find_message(m, timeout=0.3), "half message in spool/new"
    assert daemon.spool("tmp") == [], f"leftover in spool/tmp: {daemon.spool('tmp')}"
    assert not daemon.events("message")


def test_disk_budget(make_daemon):
    """spool_budget small: once it is reached the next message gets 452 4.3.1 and the
    spool never exceeds the budget."""
    budget = 64 * 1024
    d = make_daemon(spool_budget="64k")
    body = b"Subject: budget\r\n\r\n" + (b"y" * 78 + b"\r\n") * 200   # ~16 KB
    got452 = None
    accepted = 0
    for i in range(12):
        c = Raw(d)
        try:
            assert c.reply() == [BANNER]
            _ehlo(c)
            replies = []
            r = c.cmd("MAIL FROM:<fill@example.net>")
            replies.append(r[-1])
            if r[-1].startswith("250"):
                r = c.cmd(f"RCPT TO:<alice@{DOMAIN}>")
                replies.append(r[-1])
                r = c.cmd("DATA")
                replies.append(r[-1])
                if r[-1].startswith("354"):
                    c.send(body + b".\r\n")
                    r = c.reply(20)
                    replies.append(r[-1])
            c.cmd("QUIT")
        finally:
            c.close()
        assert d.spool_bytes() <= budget, f"spool holds {d.spool_bytes()} > budget {budget}"
        if replies[-1].startswith("250 2.0.0 Ok: queued as"):
            accepted += 1
            continue
        got452 = replies
        break
    assert got452, "budget never refused a message"
    assert got452[-1] == "452 4.3.1 Insufficient system storage", got452
    assert 1 <= accepted <= 4, f"{accepted} messages of ~16 KB fit a 64 KB budget"
    assert len(d.spool("new")) == accepted
    assert d.spool("tmp") == []
    assert d.spool_bytes() <= budget


def test_per_ip_connection_limit(make_daemon):
    d = make_daemon(max_connections_per_ip=3)
    held = []
    try:
        for _ in range(3):
            c = Raw(d, src="127.0.0.2")
            assert c.reply() == [BANNER]
            held.append(c)
        c4 = Raw(d, src="127.0.0.2")
        data = c4.read_all_until_closed(10)
        c4.close()
        assert data.startswith(b"421 4.7.0 "), f"4th connection from one IP got {data!r}"
        assert b"too many connections" in data.lower() or b"Error" in data, data
        # Another address is not affected.
        other = Raw(d, src="127.0.0.3")
        assert other.reply() == [BANNER]
        other.close()
    finally:
        for c in held:
            c.close()
    assert d.wait_events("disconnect", reason="limit_per_ip", src_ip="127.0.0.2")


def test_idle_timeout(make_daemon):
    d = make_daemon(idle_timeout="1s")
    c = Raw(d)
    assert c.reply() == [BANNER]
    t0 = time.monotonic()
    data = c.read_all_until_closed(10)
    dt = time.monotonic() - t0
    c.close()
    assert data == f"421 4.4.2 {HOSTNAME} Error: timeout exceeded\r\n".encode(), data
    assert 0.8 <= dt <= 5, f"closed after {dt:.1f}s with idle_timeout=1s"
    assert d.wait_events("disconnect", reason="idle_timeout")


def test_long_command_line_crlf_no_bare_lf(daemon):
    """A 3000-byte NOOP line (over line_length_limit 2048) in one write with CRLF: Postfix
    answers it (NOOP takes anything); the offence is line_too_long, not bare_lf."""
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    assert c.cmd("NOOP " + "A" * 3000) == ["250 2.0.0 Ok"]
    assert c.cmd("NOOP") == ["250 2.0.0 Ok"]
    c.close()
    assert daemon.wait_events("offence", kind="line_too_long")
    assert not daemon.events("offence", kind="bare_lf"), daemon.events("offence", kind="bare_lf")


def test_max_connections_total(make_daemon):
    d = make_daemon(max_connections=2)
    held = [Raw(d, src="127.0.0.11"), Raw(d, src="127.0.0.12")]
    try:
        for c in held:
            assert c.reply() == [BANNER]
        c3 = Raw(d, src="127.0.0.13")
        data = c3.read_all_until_closed(10)
        c3.close()
        assert data.startswith(b"421 4.") and data.endswith(b"\r\n"), data
    finally:
        for c in held:
            c.close()
    assert d.wait_events("disconnect", reason="limit_connections", src_ip="127.0.0.13")
    tcp_state_ok(d)


def test_connection_rate_per_ip(make_daemon):
    d = make_daemon(connection_rate_per_ip=5)
    seen = []
    for _ in range(8):
        c = Raw(d, src="127.0.0.21")
        try:
            first = c.reply(5)[0]
            seen.append(first)
            if first.startswith("220 "):
                c.cmd("QUIT")
        except ConnectionError:
            seen.append("closed")
        finally:
            c.close()
    assert seen[:5] == [BANNER] * 5, seen
    assert all(x.startswith("421 4.") for x in seen[5:]), seen
    assert d.wait_events("disconnect", reason="limit_rate", src_ip="127.0.0.21")
    other = Raw(d, src="127.0.0.22")
    assert other.reply() == [BANNER]
    other.close()


def test_session_timeout(make_daemon):
    """A client that keeps talking is still cut at session_timeout."""
    d = make_daemon(session_timeout="2s")
    c = Raw(d)
    assert c.reply() == [BANNER]
    t0 = time.monotonic()
    last = None
    try:
        while time.monotonic() - t0 < 8:
            r = c.cmd("NOOP", 5)
            last = r[-1]
            if not last.startswith("250"):
                break
            time.sleep(0.3)
    except ConnectionError:
        pass
    dt = time.monotonic() - t0
    c.close()
    assert dt < 6, f"session still open after {dt:.1f}s with session_timeout=2s"
    assert d.wait_events("disconnect", reason="session_timeout")
    if last is not None and not last.startswith("250"):
        assert last.startswith("421 4.4.2 "), last


def test_shutdown_with_open_session(daemon):
    """SIGTERM while a client is mid-transaction: the daemon stops promptly and cleanly,
    records the session's end, and leaves nothing in spool/tmp."""
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    assert c.cmd("MAIL FROM:<a@example.net>") == ["250 2.1.0 Ok"]
    assert c.cmd(f"RCPT TO:<alice@{DOMAIN}>") == ["250 2.1.5 Ok"]
    assert c.cmd("DATA")[0].startswith("354")
    c.send(b"Subject: cut by shutdown\r\n\r\nsome text\r\n")
    time.sleep(0.2)
    t0 = time.monotonic()
    problems = daemon.stop()
    assert not problems, problems
    assert time.monotonic() - t0 < 10
    c.close()
    assert daemon.events("disconnect", reason="shutdown"), \
        [e["reason"] for e in daemon.events("disconnect")]
    assert daemon.spool("tmp") == [] and daemon.spool("new") == []


def test_ipv6_listener(make_daemon):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        port6 = s.getsockname()[1]
        s.close()
    except OSError:
        pytest.skip("no ::1 on this machine")
    d = make_daemon(smtp_listen=f"[::1]:{port6}")
    s = socket.create_connection(("::1", port6), timeout=10)
    f = s.makefile("rb")
    assert f.readline() == (BANNER + "\r\n").encode()
    s.sendall(b"QUIT\r\n")
    assert f.readline() == b"221 2.0.0 Bye\r\n"
    s.close()
    ev = d.wait_events("connect", src_ip="::1")
    assert ev and ev[0]["dst_ip"] == "::1" and ev[0]["dst_port"] == port6, ev


def test_http_request_on_smtp_port(daemon):
    """An HTTP request on the SMTP port: Postfix's smtpd_forbidden_commands answer and
    close, recorded as offence and disconnect reason forbidden_command."""
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    c.send(b"GET / HTTP/1.1\r\nHost: mail.example.test\r\n\r\n")
    data = c.read_all_until_closed(10)
    c.close()
    assert data == b"221 2.7.0 Error: I can break rules, too. Goodbye.\r\n", data
    ev = daemon.wait_events("offence", kind="forbidden_command")
    assert ev and ev[0]["detail"].startswith("GET /"), ev
    assert daemon.wait_events("disconnect", reason="forbidden_command")


def test_nul_byte_in_command(daemon):
    c = Raw(daemon)
    assert c.reply() == [BANNER]
    _ehlo(c)
    r = c.cmd("NOOP \x00\x01")
    assert r[0][:1] in ("2", "5"), r
    assert c.cmd("NOOP") == ["250 2.0.0 Ok"]
    c.close()
    assert daemon.wait_events("offence", kind="nul_byte")
