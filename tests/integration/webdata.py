"""Hostile data for the web tests: a real daemon is fed, through its SMTP ports, sessions,
AUTH attempts and messages whose every attacker-controlled field carries a payload
that would run script, load a resource or navigate if the dashboard ever treated it
as HTML, CSS or a URL; plus right-to-left overrides, invalid UTF-8 and a 1 MB Subject.

A payload that runs sets window.__pwned or requests /pwned: the browser test looks
for both."""

import base64
import json
import socket
import subprocess
import time

from conftest import DOMAIN, MXBAIT_BIN, Raw, sanitizer_env

# Every way a string could turn into code or a request.
PAYLOADS = [
    '<script>window.__pwned=1;fetch("/pwned?script")</script>',
    '"><img src=x onerror="window.__pwned=2;fetch(\'/pwned?img\')">',
    "'><svg onload=window.__pwned=3>",
    "javascript:window.__pwned=4",
    "</style><style>*{background:url(/pwned?css)}</style>",
    "{{constructor.constructor('window.__pwned=5')()}}",
    "<a href=\"javascript:window.__pwned=6\">x</a>",
    "<iframe src=\"/pwned?iframe\"></iframe>",
    "\u202egnp.exe\u202c",                         # right-to-left override
]
RTL = "\u202e"
INVALID_UTF8 = b"\xff\xfe\xc3(\xed\xa0\x80"


def _b(s):
    return s.encode("utf-8") if isinstance(s, str) else s


def smtp_session(d, helo, mail_from, rcpts, data, role="smtp"):
    """One SMTP transaction with exact bytes (helo, addresses, data may be bytes).
    Returns the queue id or None."""
    c = Raw(d, role)
    try:
        c.reply()
        c.send(b"EHLO " + _b(helo) + b"\r\n")
        c.reply()
        c.send(b"MAIL FROM:<" + _b(mail_from) + b">\r\n")
        c.reply()
        for r in rcpts:
            c.send(b"RCPT TO:<" + _b(r) + b">\r\n")
            c.reply()
        c.send(b"DATA\r\n")
        if not c.reply()[0].startswith("354"):
            return None
        c.send(data.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        rep = c.reply(30)
        c.send(b"QUIT\r\n")
        c.reply()
        if rep and rep[-1].startswith("250"):
            return rep[-1].rsplit(" ", 1)[-1]
        return None
    finally:
        c.close()


def auth_attempts(d, pairs):
    """AUTH PLAIN over implicit TLS (smtps) for each (username, password), bytes or str."""
    c = Raw(d, "smtps", tls=True)
    try:
        c.reply()
        c.cmd("EHLO probe.example.net")
        for u, p in pairs:
            tok = base64.b64encode(b"\0" + _b(u) + b"\0" + _b(p)).decode()
            rep = c.cmd("AUTH PLAIN " + tok, timeout=20)
            if rep[0].startswith("235"):
                break
        c.send(b"QUIT\r\n")
    finally:
        c.close()


def hostile_message(i, payload):
    """A multipart message with payloads in headers, text, HTML, links and a file name."""
    subj = payload + " " + RTL + "subject " + str(i)
    body = (
        "From: " + payload + " <spam" + str(i) + "@evil.example>\r\n"
        "To: victim@" + DOMAIN + "\r\n"
        "Subject: " + subj + "\r\n"
        "Message-ID: <" + str(i) + "." + str(time.time()) + "@evil.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed; boundary=BOUND\r\n\r\n"
        "--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "Visit http://evil.example/" + str(i) + "/?q=<script>window.__pwned=7</script> now\r\n"
        + payload + "\r\n"
        "--BOUND\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        "<html><body onload=\"window.__pwned=8\"><script>window.__pwned=9;fetch('/pwned?html')"
        "</script><a href=\"javascript:window.__pwned=10\">click</a>"
        "<img src=\"http://tracker.evil.example/" + str(i) + ".gif\" onerror=\"window.__pwned=11\">"
        "<a href=\"http://phish.evil.example/login\">http://bank.example/</a>" + payload +
        "</body></html>\r\n"
        "--BOUND\r\nContent-Type: application/octet-stream\r\n"
        "Content-Disposition: attachment; filename=\"" + payload.replace('"', "'") + ".exe\"\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"MZ not really a program " + str(i).encode()).decode() + "\r\n"
        "--BOUND--\r\n")
    return body.encode("utf-8")


def big_subject_message():
    """A 1 MB Subject (folded lines), invalid UTF-8 in it and the body."""
    chunk = "A" * 900
    subject = ("\r\n ".join([chunk] * 1170)).encode()  # ~1 MB
    return (b"From: big@evil.example\r\nTo: victim@" + DOMAIN.encode() + b"\r\n"
            b"Subject: " + INVALID_UTF8 + b" " + subject + b"\r\n\r\n"
            b"body " + INVALID_UTF8 + b" <script>window.__pwned=12</script>\r\n")


def populate(d):
    """Feed d with the hostile data; returns the queue ids of the captured messages."""
    qids = []
    for i, p in enumerate(PAYLOADS):
        q = smtp_session(d, helo=p.replace(" ", "") or "x", mail_from=f"s{i}@evil.example",
                         rcpts=[f"victim{i}@{DOMAIN}"], data=hostile_message(i, p))
        if q:
            qids.append(q)
    # Envelope with payloads and invalid UTF-8 (the daemon records them as sent).
    q = smtp_session(d, helo=b"\xff\xfe<b>helo</b>" + RTL.encode(),
                     mail_from='"<script>window.__pwned=13</script>"@evil.example',
                     rcpts=['"<img src=x onerror=window.__pwned=14>"@' + DOMAIN],
                     data=hostile_message(99, PAYLOADS[1]))
    if q:
        qids.append(q)
    q = smtp_session(d, helo="big.evil.example", mail_from="big@evil.example",
                     rcpts=["victim@" + DOMAIN], data=big_subject_message())
    if q:
        qids.append(q)
    # Passwords and usernames with payloads; then a cracked account (2 failures, then a
    # list password) that sends a message with a payload subject.
    auth_attempts(d, [(p, p) for p in PAYLOADS[:5]] + [(INVALID_UTF8, INVALID_UTF8 + RTL.encode())])
    auth_attempts(d, [("bob", "wrong-1"), ("bob", "wrong-2"), ("bob", "123456"),
                      ("bob", "123456")])
    return qids


# Decision reasons are at most 31 bytes: payloads that fit.
REASON_CLI = "<img src=x onerror=__pwned=22>"
REASON_WEB = "'><svg onload=__pwned=21>"
CONVICTED = "198.51.100.66"     # the guard convicts it (a trap recipient)
CLI_SOURCE = "203.0.113.9"      # `mxbait decisions add`
WEB_SOURCE = "192.0.2.0/24"     # allowed through the API


def policy_request(sock_path, client, recipient, sender):
    """One Postfix policy request (smtpd_access_policy at RCPT) to the guard."""
    req = (b"request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
           b"client_address=" + client.encode() + b"\nclient_port=40000\nrecipient=" +
           _b(recipient) + b"\nsender=" + _b(sender) + b"\ninstance=web.1\n\n")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(sock_path)
        s.sendall(req)
        return s.recv(4096)
    finally:
        s.close()


def decisions_and_reports(d, sock_path, admin):
    """Hostile decisions (a guard conviction whose evidence carries payloads, an
    operator's decision and an admin's allow with payload reasons) and the reports and
    indicators `mxbait report run` derives from the hostile captures."""
    policy_request(sock_path, CONVICTED, "trap@" + DOMAIN, PAYLOADS[0] + "@evil.example")
    policy_request(sock_path, "198.51.100.67", PAYLOADS[1] + "@" + DOMAIN, "x@evil.example")
    r = subprocess.run([MXBAIT_BIN, "decisions", "-d", d.data_dir, "add", CLI_SOURCE, "--action",
                        "ban", "--reason", REASON_CLI], capture_output=True, timeout=30,
                       env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    csrf = json.loads(admin.get("/api/v1/whoami")[2])["csrf_token"]
    st, _, body = admin.req("POST", "/api/v1/actions/decision-allow",
                            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json",
                                     "Origin": f"http://127.0.0.1:{d.port_web}"},
                            body=json.dumps({"source": WEB_SOURCE, "reason": REASON_WEB}))
    assert st == 200, body
    deadline = time.monotonic() + 15
    while True:
        srcs = {x["source"] for x in json.loads(admin.get("/api/v1/decisions")[2])["data"]
                if x["state"] == "active"}
        if {CONVICTED, CLI_SOURCE, WEB_SOURCE} <= srcs:
            break
        assert time.monotonic() < deadline, srcs
        time.sleep(0.2)
    r = subprocess.run([MXBAIT_BIN, "report", "run", "-c", d.conf_path, "--json"],
                       capture_output=True, timeout=120, env=sanitizer_env())
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["planned"] > 0, r.stdout
