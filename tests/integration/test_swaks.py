"""swaks against the daemon: every kind of submission a real client makes, each checked
against what was captured in spool/new and recorded in events.jsonl."""

import os

from conftest import (DOMAIN, HOSTNAME, PASSWORD, USER, assert_captured, marker,
                      queue_id_from, swaks)

FOREIGN = "victim@example.org"


def test_plain(daemon):
    m = marker()
    rc, out = swaks(daemon, "--from", "spammer@example.net", "--to", f"alice@{DOMAIN}",
                    "--header", f"Subject: {m}", "--body", "plain body " + m)
    assert rc == 0, out
    assert f"220 {HOSTNAME} ESMTP Postfix (Debian/GNU)" in out
    qid = queue_id_from(out)
    assert len(qid) in (10, 11, 12), f"queue id {qid} is not a short Postfix id"
    path, data, ev = assert_captured(daemon, m, queue_id=qid, sender="spammer@example.net",
                                     recipients=[f"alice@{DOMAIN}"], tls=False, auth_user=None)
    assert b"helo=client.example.net" in data.split(b"\r\n\r\n")[0] or \
        b"client.example.net" in data.split(b"\r\n\r\n")[0]
    assert daemon.wait_events("helo", verb="EHLO", name="client.example.net")
    assert daemon.wait_events("mail", sender="spammer@example.net", accepted=True, reply=250)
    assert daemon.wait_events("rcpt", recipient=f"alice@{DOMAIN}", accepted=True, relay=False)
    assert daemon.wait_events("disconnect", reason="quit")


def test_starttls_mx(daemon):
    m = marker()
    rc, out = swaks(daemon, "--tls", "--from", "spammer@example.net", "--to",
                    f"bob@{DOMAIN}", "--header", f"Subject: {m}")
    assert rc == 0, out
    assert "220 2.0.0 Ready to start TLS" in out
    qid = queue_id_from(out)
    assert_captured(daemon, m, queue_id=qid, tls=True, auth_user=None,
                    recipients=[f"bob@{DOMAIN}"])
    tls = daemon.wait_events("tls", mode="starttls", proto="smtp")
    assert tls and tls[0]["version"].startswith("TLSv1"), tls


def test_starttls_submission_auth_plain_foreign(daemon):
    """AUTH PLAIN after STARTTLS on submission; mail to a foreign domain is accepted,
    captured and never delivered."""
    m = marker()
    rc, out = swaks(daemon, "--tls", "--auth", "PLAIN", "--auth-user", USER,
                    "--auth-password", PASSWORD, "--from", f"{USER}@{DOMAIN}",
                    "--to", FOREIGN, "--header", f"Subject: {m}",
                    port=daemon.port_submission)
    assert rc == 0, out
    assert "235 2.7.0 Authentication successful" in out
    qid = queue_id_from(out)
    assert_captured(daemon, m, queue_id=qid, tls=True, auth_user=USER, recipients=[FOREIGN])
    auth = daemon.wait_events("auth", mechanism="PLAIN", success=True)
    assert auth and auth[0]["username"] == USER and auth[0]["password"] == PASSWORD, auth
    assert auth[0]["result"] == "ok" and auth[0]["proto"] == "submission"
    rc = daemon.wait_events("rcpt", recipient=FOREIGN)
    assert rc and rc[0]["accepted"] is True and rc[0]["relay"] is True, rc


def test_submission_auth_login(daemon):
    m = marker()
    rc, out = swaks(daemon, "--tls", "--auth", "LOGIN", "--auth-user", USER,
                    "--auth-password", PASSWORD, "--from", f"{USER}@{DOMAIN}",
                    "--to", FOREIGN, "--header", f"Subject: {m}",
                    port=daemon.port_submission)
    assert rc == 0, out
    assert "334 VXNlcm5hbWU6" in out and "334 UGFzc3dvcmQ6" in out
    qid = queue_id_from(out)
    assert_captured(daemon, m, queue_id=qid, tls=True, auth_user=USER)
    auth = daemon.wait_events("auth", mechanism="LOGIN")
    assert auth and auth[0]["success"] is True and auth[0]["password"] == PASSWORD, auth


def test_submission_auth_wrong_password_recorded(daemon):
    rc, out = swaks(daemon, "--tls", "--auth", "PLAIN", "--auth-user", USER,
                    "--auth-password", "wrong-pass-1", "--to", FOREIGN,
                    port=daemon.port_submission)
    assert rc != 0
    assert "535 5.7.8 Error: authentication failed" in out, out
    auth = daemon.wait_events("auth", mechanism="PLAIN")
    assert auth and auth[0]["success"] is False and auth[0]["password"] == "wrong-pass-1"
    assert auth[0]["result"] == "fail"
    assert not daemon.spool("new")


def test_implicit_tls_smtps(daemon):
    m = marker()
    rc, out = swaks(daemon, "--tlsc", "--auth", "PLAIN", "--auth-user", USER,
                    "--auth-password", PASSWORD, "--from", f"{USER}@{DOMAIN}",
                    "--to", FOREIGN, "--header", f"Subject: {m}", port=daemon.port_smtps)
    assert rc == 0, out
    qid = queue_id_from(out)
    assert_captured(daemon, m, queue_id=qid, tls=True, auth_user=USER)
    tls = daemon.wait_events("tls", mode="implicit", proto="smtps")
    assert tls, "no tls event with mode=implicit on smtps"


def test_pipelining(daemon):
    m = marker()
    rc, out = swaks(daemon, "--pipeline", "--from", "bulk@example.net",
                    "--to", f"a1@{DOMAIN},a2@{DOMAIN},a3@{DOMAIN}",
                    "--header", f"Subject: {m}")
    assert rc == 0, out
    qid = queue_id_from(out)
    assert_captured(daemon, m, queue_id=qid,
                    recipients=[f"a1@{DOMAIN}", f"a2@{DOMAIN}", f"a3@{DOMAIN}"])
    # The client waited for EHLO's PIPELINING: no offence may be recorded for it.
    assert not daemon.events("offence", kind="pipelining")


def test_8bit_body(daemon, tmp_path):
    """An 8-bit (UTF-8 and raw Latin-1) body arrives byte for byte."""
    m = marker()
    body = ("Subject: " + m + "\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Transfer-Encoding: 8bit\r\n\r\n").encode() + \
        "Grüße aus Köln — ünïcödé\r\n".encode("utf-8") + b"latin1 \xe9\xe8\xff\r\n"
    f = tmp_path / "8bit.eml"
    f.write_bytes(body)
    rc, out = swaks(daemon, "--from", "x@example.net", "--to", f"alice@{DOMAIN}",
                    "--data", "@" + str(f))
    assert rc == 0, out
    path, data, ev = assert_captured(daemon, m, queue_id=queue_id_from(out))
    assert "Grüße aus Köln — ünïcödé".encode() in data
    assert b"latin1 \xe9\xe8\xff\r\n" in data


def _big_body(tmp_path, m, size):
    f = tmp_path / f"big-{size}.eml"
    line = (b"x" * 76) + b"\r\n"
    head = f"Subject: {m}\r\n\r\n".encode()
    with open(f, "wb") as fh:
        fh.write(head)
        left = size - len(head)
        while left > 0:
            chunk = line * min(4096, left // len(line) + 1)
            fh.write(chunk[:left])
            left -= len(chunk[:left])
    return f


def test_10mb_message(daemon, tmp_path):
    """10,000,000 bytes: under the default message_size_limit (10240000) with our
    Received header, captured whole."""
    m = marker()
    f = _big_body(tmp_path, m, 10_000_000)
    rc, out = swaks(daemon, "--from", "big@example.net", "--to", f"alice@{DOMAIN}",
                    "--data", "@" + str(f), "--suppress-data", timeout=180)
    assert rc == 0, out[-3000:]
    path, data, ev = assert_captured(daemon, m, queue_id=queue_id_from(out))
    assert f.read_bytes()[-500:] in data
    assert len(data) >= 10_000_000


def test_over_size_limit_552(make_daemon, tmp_path):
    """Over message_size_limit without a SIZE declaration: the data is read to the end,
    then Postfix's cleanup answer after DATA, nothing captured."""
    d = make_daemon(message_size_limit="1m")
    m = marker()
    f = _big_body(tmp_path, m, 1_200_000)
    rc, out = swaks(d, "--from", "big@example.net", "--to", f"alice@{DOMAIN}",
                    "--data", "@" + str(f), "--suppress-data")
    assert rc != 0
    assert "<** 552 5.3.4 Error: message file too big" in out, out[-2000:]
    assert not d.find_message(m, timeout=0.5)
    assert not d.spool("tmp"), d.spool("tmp")
    rej = d.wait_events("message_rejected", reason="size")
    assert rej and rej[0]["reply"] == 552, rej


def test_relay_denied_unauthenticated(daemon):
    m = marker()
    rc, out = swaks(daemon, "--from", "spammer@example.net", "--to", FOREIGN,
                    "--header", f"Subject: {m}")
    assert rc != 0
    assert f"454 4.7.1 <{FOREIGN}>: Relay access denied" in out, out
    assert not daemon.spool("new")
    rcpt = daemon.wait_events("rcpt", recipient=FOREIGN)
    assert rcpt and rcpt[0]["accepted"] is False and rcpt[0]["reply"] == 454 \
        and rcpt[0]["relay"] is True, rcpt


def test_declared_size_over_limit_552(daemon):
    """SIZE= over the limit is refused at MAIL, as Postfix does (swaks 2020 cannot add
    MAIL parameters, so this one speaks by hand)."""
    from conftest import Raw
    c = Raw(daemon)
    c.reply()
    c.cmd("EHLO client.example.net")
    assert c.cmd("MAIL FROM:<big@example.net> SIZE=20000000") == \
        ["552 5.3.4 Message size exceeds fixed limit"]
    c.close()
    ev = daemon.wait_events("mail", sender="big@example.net")
    assert ev and ev[0]["accepted"] is False and ev[0]["reply"] == 552 \
        and ev[0]["size"] == 20000000, ev
