"""Python smtplib and curl against the daemon, each checked against the capture."""

import smtplib
import ssl
import subprocess

from conftest import DOMAIN, PASSWORD, USER, assert_captured, marker


def _ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _msg(m, frm="py@example.net", to=f"alice@{DOMAIN}"):
    return (f"From: <{frm}>\r\nTo: <{to}>\r\nSubject: {m}\r\nMessage-ID: <{m}@example.net>"
            f"\r\n\r\nbody {m}\r\n.leading dot line\r\n").encode()


def test_smtplib_plain(daemon):
    m = marker()
    with smtplib.SMTP(daemon.host, daemon.port_smtp, local_hostname="py.example.net",
                      timeout=20) as s:
        code, ehlo = s.ehlo()
        assert code == 250 and b"PIPELINING" in ehlo and b"SIZE 10240000" in ehlo
        assert b"AUTH" not in ehlo, "AUTH must not be offered on the MX port by default"
        assert b"VRFY" in ehlo, "VRFY is offered by default, as stock Debian Postfix"
        # answered as stock: an account that logs in exists, a random name does not
        assert s.verify("alice")[0] == 252
        code, text = s.verify("xkwqpzmt")
        assert (code, text) == (550, b"5.1.1 <xkwqpzmt>: Recipient address rejected: "
                                     b"User unknown in local recipient table"), (code, text)
        refused = s.sendmail("py@example.net", [f"alice@{DOMAIN}"], _msg(m))
        assert refused == {}
    path, data, ev = assert_captured(daemon, m, sender="py@example.net",
                                     recipients=[f"alice@{DOMAIN}"], tls=False)
    # Dot-unstuffing: the client sent "..leading", the store has ".leading".
    assert b"\r\n.leading dot line\r\n" in data and b"..leading" not in data


def test_smtplib_8bitmime_param(daemon):
    m = marker()
    with smtplib.SMTP(daemon.host, daemon.port_smtp, timeout=20) as s:
        s.ehlo("py.example.net")
        assert s.has_extn("8bitmime")
        s.sendmail("py@example.net", [f"alice@{DOMAIN}"],
                   _msg(m) + "Grüße\r\n".encode(), mail_options=["BODY=8BITMIME"])
    path, data, ev = assert_captured(daemon, m)
    assert "Grüße".encode() in data
    mail = daemon.wait_events("mail", sender="py@example.net")
    assert mail and "BODY=8BITMIME" in mail[0]["params"], mail


def test_smtplib_starttls(daemon):
    m = marker()
    with smtplib.SMTP(daemon.host, daemon.port_smtp, timeout=20) as s:
        s.ehlo("py.example.net")
        code, _ = s.starttls(context=_ctx())
        assert code == 220
        s.ehlo("py.example.net")
        s.sendmail("py@example.net", [f"alice@{DOMAIN}"], _msg(m))
    assert_captured(daemon, m, tls=True)


def test_smtplib_ssl_login(daemon):
    m = marker()
    with smtplib.SMTP_SSL(daemon.host, daemon.port_smtps, context=_ctx(), timeout=20) as s:
        s.ehlo("py.example.net")
        s.login(USER, PASSWORD)
        s.sendmail(f"{USER}@{DOMAIN}", ["someone@example.org"], _msg(m, to="someone@example.org"))
    assert_captured(daemon, m, tls=True, auth_user=USER, recipients=["someone@example.org"])
    assert daemon.wait_events("auth", success=True, username=USER, proto="smtps")


def test_smtplib_submission_login(daemon):
    m = marker()
    with smtplib.SMTP(daemon.host, daemon.port_submission, timeout=20) as s:
        s.ehlo("py.example.net")
        assert not s.has_extn("auth"), "AUTH offered on submission before STARTTLS"
        s.starttls(context=_ctx())
        s.ehlo("py.example.net")
        assert s.has_extn("auth")
        s.login(USER, PASSWORD)
        s.sendmail(f"{USER}@{DOMAIN}", ["someone@example.org"], _msg(m, to="someone@example.org"))
    assert_captured(daemon, m, tls=True, auth_user=USER)


def test_smtplib_login_bad_password(daemon):
    with smtplib.SMTP_SSL(daemon.host, daemon.port_smtps, context=_ctx(), timeout=20) as s:
        s.ehlo("py.example.net")
        try:
            s.login(USER, "not-the-password")
            raise AssertionError("login with a wrong password succeeded")
        except smtplib.SMTPAuthenticationError as e:
            assert e.smtp_code == 535, e
    evs = daemon.wait_events("auth", success=False, username=USER)
    assert evs and evs[0]["password"] == "not-the-password", evs


def _curl(args, timeout=60):
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "-v"] + args,
                       capture_output=True, timeout=timeout)
    return r.returncode, r.stderr.decode("utf-8", "replace")


def test_curl_smtp(daemon, tmp_path):
    m = marker()
    f = tmp_path / "mail.txt"
    f.write_bytes(_msg(m, frm="curl@example.net"))
    rc, err = _curl([f"smtp://{daemon.host}:{daemon.port_smtp}/curl.example.net",
                     "--mail-from", "curl@example.net", "--mail-rcpt", f"alice@{DOMAIN}",
                     "-T", str(f)])
    assert rc == 0, err[-3000:]
    assert_captured(daemon, m, sender="curl@example.net", recipients=[f"alice@{DOMAIN}"],
                    tls=False)


def test_curl_smtps(daemon, tmp_path):
    m = marker()
    f = tmp_path / "mail.txt"
    f.write_bytes(_msg(m, frm=f"{USER}@{DOMAIN}"))
    rc, err = _curl([f"smtps://{daemon.host}:{daemon.port_smtps}/curl.example.net", "-k",
                     "--user", f"{USER}:{PASSWORD}",
                     "--mail-from", f"{USER}@{DOMAIN}", "--mail-rcpt", f"alice@{DOMAIN}",
                     "-T", str(f)])
    assert rc == 0, err[-3000:]
    assert_captured(daemon, m, tls=True, auth_user=USER)
