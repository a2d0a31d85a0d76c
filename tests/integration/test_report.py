"""The reporter: ARF/XARF to an SMTP receiver, every API sink against a local server
speaking its documented shapes, RDAP contact lookup, RFC 6650 etiquette, TLS
verification, and exactly-once delivery across kill -9.

The base data directory comes from a real `mxbait serve` (analyzer on): failed logins
and a spam message with links through the submission port; then synthetic attackers
(auth_attempts rows) and, where a test needs many, more captured messages (rows in
messages plus copies of the real spool file) are added with sqlite3, as the event
writer would have.  Each test copies it and writes its own configuration.
"""

import base64
import email
import email.policy
import glob
import ipaddress
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time

import pytest

from conftest import (MXBAIT_BIN, SHARED, Daemon, PASSWORD, USER, psl_with_test_tlds,
                      sanitizer_env, swaks)
from report_fakes import HTTPFake, SMTPFake

VICTIM = "victim@corp.example"
BODY = ("Your account is on hold. Verify: http://login.bank-phish.test/verify?id=7\n"
        "Invoice: http://dl.malware-host.test/payload/invoice.zip\n"
        "Also http://evil-domain.test/x/pay\n")


def prefix_of(ip):
    a = ipaddress.ip_address(ip)
    return str(ipaddress.ip_network(f"{ip}/{24 if a.version == 4 else 48}", strict=False))


def add_attackers(data_dir, attackers, age_s=600):
    db = sqlite3.connect(os.path.join(data_dir, "mxbait.db"))
    t0 = int(time.time() * 1e6) - age_s * 1000000
    rows = []
    for ip, n in attackers.items():
        for k in range(n):
            rows.append((t0 + k, f"x{ip}", ip, prefix_of(ip), "smtp", "LOGIN", "admin", 0))
    db.executemany("INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto,"
                   " mechanism, username, success) VALUES(?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()


def add_messages(data_dir, ips, age_s=0):
    """One more captured message per entry of ips (copies of the real spool file)."""
    db = sqlite3.connect(os.path.join(data_dir, "mxbait.db"))
    spool = os.path.join(data_dir, "spool", "new")
    src = sorted(os.listdir(spool))[0]
    sender, rcpts = db.execute("SELECT sender, recipients FROM messages ORDER BY id"
                               " LIMIT 1").fetchone()
    now = int(time.time() * 1e6) - age_s * 1000000
    for i, ip in enumerate(ips):
        qid = f"F{random.getrandbits(40):010X}"
        name = f"{now // 1000000}.M{i}P1Q{qid}.mail.example.test"
        shutil.copy(os.path.join(spool, src), os.path.join(spool, name))
        db.execute("INSERT INTO messages(queue_id, ts_us, src_ip, spool, sha256, size, sender,"
                   " recipients, n_rcpt, method, auth_user) VALUES(?,?,?,?,?,?,?,?,1,'DATA',"
                   " 'alice')", (qid, now + i, ip, name, f"{i:064x}", 100, sender, rcpts))
    db.commit()
    db.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("reportbase"))
    d = Daemon(tmp, "test_report", auth_failure_delay="0", allowlist_own_addresses=False,
               analyzer_psl_file=psl_with_test_tlds(tmp))
    d.start()
    try:
        for _ in range(6):
            swaks(d, "--tls", "-a", "LOGIN", "--auth-user", USER, "--auth-password", "wrong",
                  "--quit-after", "AUTH", port=d.port_submission)
        swaks(d, "--tls", "-a", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
              "--from", "billing@bank-phish.test", "--to", VICTIM,
              "--header", "Subject: Account on hold", "--body", BODY,
              port=d.port_submission, check=0)
        adb = os.path.join(d.data_dir, "analysis.db")
        deadline = time.monotonic() + 60
        while True:
            try:
                with sqlite3.connect(f"file:{adb}?mode=ro", uri=True) as c:
                    if c.execute("SELECT count(*) FROM links").fetchone()[0] >= 3:
                        break
            except sqlite3.Error:
                pass
            assert time.monotonic() < deadline, "the analyzer stored no links"
            time.sleep(0.2)
    finally:
        problems = d.stop()
    assert not problems, problems
    add_attackers(d.data_dir, {"192.0.2.10": 20, "2001:db8:5::9": 15})
    return d


class Setup:
    def __init__(self, base, tmp_path, **conf):
        self.dir = str(tmp_path / "data")
        shutil.copytree(base.data_dir, self.dir)
        for f in glob.glob(os.path.join(self.dir, "intel.db*")):
            os.unlink(f)
        self.conf = str(tmp_path / "mxbait.conf")
        with open(base.conf_path) as f:
            lines = [l for l in f if not l.startswith("data_dir")]
        cfg = {"data_dir": self.dir, "report_interval": "1s", "report_smtp_rate": "6000"}
        cfg.update(conf)
        with open(self.conf, "w") as f:
            f.writelines(lines)
            for k, v in cfg.items():
                f.write(f"{k} = {v}\n")

    def mxbait(self, *args, check=True, timeout=120):
        r = subprocess.run([MXBAIT_BIN, args[0], "-c", self.conf] + list(args[1:]),
                           capture_output=True, timeout=timeout, env=sanitizer_env())
        err = r.stderr.decode(errors="replace")
        assert "Sanitizer" not in err and "runtime error" not in err, err
        if check:
            assert r.returncode == 0, (args, err)
        return r

    def run(self):
        return json.loads(self.mxbait("report", "run", "--json").stdout)

    def rows(self, **where):
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'intel.db')}?mode=ro", uri=True)
        db.row_factory = sqlite3.Row
        q = "SELECT * FROM outbox"
        if where:
            q += " WHERE " + " AND ".join(f"{k} = ?" for k in where)
        out = [dict(r) for r in db.execute(q + " ORDER BY id", list(where.values()))]
        db.close()
        return out

    def sql(self, q, args=()):
        db = sqlite3.connect(os.path.join(self.dir, "intel.db"))
        db.execute(q, args)
        db.commit()
        db.close()


@pytest.fixture
def http():
    h = HTTPFake()
    yield h
    h.close()


@pytest.fixture
def smtp():
    s = SMTPFake()
    yield s
    s.close()


def rdap_conf(http):
    # The resolver (web hosts of links, Abusix) is pinned to a loopback port nobody
    # answers on: no test depends on the machine's DNS; a web host's lookup fails at
    # once and its report waits in `addressing` (test_web_host_contact pins a real one).
    from conftest import free_ports
    return {"report_contact_lookup": "yes",
            "report_rdap_bootstrap_url": http.base + "/rdap/bootstrap/",
            "report_abusix": "no",
            "report_dns_server": f"127.0.0.1:{free_ports(1)[0]}"}


# ---------------------------------------------------------------- ARF structure

def arf_parts(raw):
    """Check the RFC 5965 structure; returns (message, feedback fields, part 3)."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "feedback-report"
    parts = msg.get_payload()
    assert len(parts) >= 2, len(parts)
    assert parts[0].get_content_type() == "text/plain"
    assert parts[1].get_content_type() == "message/feedback-report"
    fb = parts[1].get_payload()
    if isinstance(fb, list):      # the email package parses it as a message
        fields = fb[0]
    else:
        fields = email.message_from_string(fb)
    assert fields["Feedback-Type"] and fields["User-Agent"] and fields["Version"]
    third = parts[2] if len(parts) > 2 else None
    return msg, fields, third


def test_arf_checker_accepts_real_arf():
    """The structure checker above, applied to real ARF from the shared corpus: it
    accepts what real generators send (so it is not merely tuned to ours)."""
    files = sorted(glob.glob(os.path.join(SHARED, "corpus", "sisimai-arf", "**", "arf-*.eml"),
                             recursive=True))
    if not files:
        pytest.skip(f"no ARF samples under {SHARED}/corpus/sisimai-arf")
    ok = 0
    for f in files:
        with open(f, "rb") as fh:
            raw = fh.read()
        try:
            _, fields, third = arf_parts(raw)
        except AssertionError:
            continue
        assert fields["Feedback-Type"] in ("abuse", "auth-failure", "opt-out", "fraud", "other",
                                           "virus", "not-spam")
        ok += 1
    # all 13 multipart/report samples; the others are forwarded wrappers (multipart/mixed)
    # and a plain-text complaint
    assert ok == 13, f"only {ok} of {len(files)} samples pass the structure check"


def test_arf_xarf_via_rdap_to_smtp(base, tmp_path, http, smtp):
    f = http.fake
    f.rdap_ip = {"127.": "abuse@isp.test", "192.0.2.": "abuse@net2.test",
                 "2001:db8:": "abuse@v6.test"}
    f.rdap_domain = {"bank-phish.test": "abuse@registrar.test"}
    s = Setup(base, tmp_path, report_smtp_url=smtp.url, report_from="reports@sensor.test",
              **rdap_conf(http))
    st = s.run()
    assert st["sent"] >= 5, st
    by_to = {}
    for mail_from, rcpts, raw in smtp.messages:
        assert mail_from == "reports@sensor.test"
        assert VICTIM.encode() not in raw.lower(), "a victim address leaked"
        by_to.setdefault(rcpts[0], []).append(raw)
    # the submitting client's network (nested abuse entity), XARF to the guessers'
    # networks, ARF to the registrar (RDAP) and to abuse@ of a domain without RDAP
    assert set(by_to) >= {"abuse@isp.test", "abuse@net2.test", "abuse@v6.test",
                          "abuse@registrar.test", "abuse@evil-domain.test"}, set(by_to)
    msg, fields, third = arf_parts(by_to["abuse@isp.test"][0])
    assert msg["To"] == "<abuse@isp.test>" and msg["Subject"] == "FW: Account on hold"
    assert msg["Auto-Submitted"] == "auto-generated" and msg["Message-ID"]
    assert fields["Feedback-Type"] == "abuse" and fields["Source-IP"] == "127.0.0.1"
    assert fields["Version"] == "1"
    assert fields["Original-Mail-From"] == "<billing@bank-phish.test>"
    assert fields["Original-Rcpt-To"].startswith("<redacted-")
    assert fields["Original-Rcpt-To"].endswith("@corp.example>")
    assert "http://login.bank-phish.test/verify?id=7" in fields.get_all("Reported-URI")
    assert fields["Incidents"] == "1" and fields["Arrival-Date"]
    assert fields["Authentication-Results"].endswith("auth=pass smtp.auth=alice")
    assert third.get_content_type() == "message/rfc822"
    inner = third.get_payload()[0]
    assert inner["Subject"] == "Account on hold"
    assert "redacted-" in inner["To"]
    # XARF v4 login_attack inside the ARF envelope (Feedback-Type: xarf)
    msg, fields, third = arf_parts(by_to["abuse@net2.test"][0])
    assert fields["Feedback-Type"] == "xarf" and fields["Source-IP"] == "192.0.2.10"
    assert third.get_content_type() == "application/json"
    x = json.loads(base64.b64decode(third.get_payload()))
    for k in ("xarf_version", "report_id", "timestamp", "reporter", "sender",
              "source_identifier", "category", "type", "protocol", "first_seen"):
        assert k in x, k
    assert x["category"] == "connection" and x["type"] == "login_attack"
    assert x["xarf_version"].startswith("4.") and x["evidence_source"] == "honeypot"
    assert set(x["reporter"]) == {"org", "contact", "domain"}
    ev = x["evidence"][0]
    payload = base64.b64decode(ev["payload"])
    import hashlib
    assert ev["hash"] == "sha256:" + hashlib.sha256(payload).hexdigest()
    assert payload.count(b"\n") == 20
    # a second pass sends nothing again; contacts were cached
    n, lookups = len(smtp.messages), f.count("/rdap/ip/")
    st = s.run()
    assert st["sent"] == 0 and len(smtp.messages) == n and f.count("/rdap/ip/") == lookups
    stats = json.loads(s.mxbait("report", "stats", "--json").stdout)
    assert stats["smtp"]["sent"] == n and stats["smtp"]["failed"] == 0
    lst = json.loads(s.mxbait("report", "list", "--json", "--sink", "manual").stdout)
    assert lst and all(r["state"] == "manual" for r in lst)


def test_hold_during_contact_lookup_sticks(base, tmp_path, http, smtp):
    """An operator holds the reports while the reporter is looking their abuse contacts
    up (a slow RDAP server): the lookup's outcome must not overwrite the hold, and
    nothing held is sent (the CLI's `report hold` and the dashboard's action alike)."""
    f = http.fake
    f.rdap_ip = {"127.": "abuse@isp.test", "192.0.2.": "abuse@net2.test",
                 "2001:db8:": "abuse@v6.test"}
    f.rdap_domain = {"bank-phish.test": "abuse@registrar.test"}
    f.rdap_delay = 1.0
    s = Setup(base, tmp_path, report_smtp_url=smtp.url, **rdap_conf(http))
    p = subprocess.Popen([MXBAIT_BIN, "report", "run", "-c", s.conf], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, env=sanitizer_env())
    try:
        # The reporter asks RDAP only after it has read the rows in `addressing`.
        deadline = time.monotonic() + 60
        while not f.rdap_started and time.monotonic() < deadline:
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.02)
        assert f.rdap_started, "the reporter never looked a contact up"
        addressing = {r["id"] for r in s.rows(state="addressing")}
        assert addressing
        r = s.mxbait("report", "hold", "--all")
        assert r.returncode == 0
        assert p.wait(120) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    err = p.stderr.read().decode(errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    rows = {r["id"]: r for r in s.rows()}
    assert {i for i in addressing if rows[i]["state"] != "held"} == set(), \
        [(i, rows[i]["state"]) for i in addressing]
    assert not smtp.messages, "a held report was sent"


# ---------------------------------------------------------------- etiquette

def test_etiquette(base, tmp_path, http, smtp):
    f = http.fake
    f.rdap_ip = {"127.": "abuse@corp.example",       # the victim's own domain
                 "192.0.2.": "abuse@net2.test", "2001:db8:": "abuse@net2.test",
                 "198.18.": "abuse@busy.test"}
    f.rdap_domain = {"bank-phish.test": "abuse@registrar.test",
                     "evil-domain.test": "abuse@registrar.test",
                     "malware-host.test": "abuse@registrar.test"}
    s = Setup(base, tmp_path, report_smtp_url=smtp.url, report_daily_budget="2",
              **rdap_conf(http))
    # 25 messages from one source: reports for incidents 1-10 and 20 (Incidents 10)
    add_messages(s.dir, ["198.18.0.1"] * 25)
    # one from a month ago: too old to report
    add_messages(s.dir, ["198.18.0.99"], age_s=30 * 86400)
    s.mxbait("report", "optout", "@net2.test", "--reason", "asked by mail")
    st = s.run()
    rows = s.rows()
    arf = [r for r in rows if r["kind"] == "arf"]
    victim_row = [r for r in arf if r["contact_query"] == "ip:127.0.0.1"][0]
    assert victim_row["state"] == "rejected" and "victim" in victim_row["last_error"]
    busy = [r for r in arf if r["contact_query"] == "ip:198.18.0.1"]
    assert len(busy) == 11, len(busy)
    assert sorted(r["incidents"] for r in busy) == [1] * 10 + [10]
    assert not [r for r in arf if r["contact_query"] == "ip:198.18.0.99"]
    xarf = [r for r in rows if r["kind"] == "xarf" and r["contact_query"] != "ip:127.0.0.1"]
    assert len(xarf) == 2 and all(r["state"] == "rejected" and "opted out" in r["last_error"] for r in xarf)
    # budget 2 per recipient per day: two to busy.test, two to the registrar, the rest wait
    sent_to = [rc[0] for _, rc, _ in smtp.messages]
    assert sent_to.count("abuse@busy.test") == 2 and sent_to.count("abuse@registrar.test") == 2
    deferred = [r for r in rows if r["state"] == "queued" and r["recipient"] == "abuse@busy.test"]
    assert len(deferred) == 9 and all(r["next_attempt_us"] > time.time() * 1e6 for r in deferred)
    assert all("budget" in r["last_error"] for r in deferred)
    assert VICTIM.encode() not in b"".join(m for _, _, m in smtp.messages).lower()
    # an operator can hold and release, and give an address by hand
    rid = str(deferred[0]["id"])
    s.mxbait("report", "hold", rid)
    assert s.rows(id=int(rid))[0]["state"] == "held"
    s.mxbait("report", "send", rid, "--to", "noc@other.test")
    row = s.rows(id=int(rid))[0]
    assert row["state"] == "queued" and row["recipient"] == "noc@other.test"
    # expiry: a queued report past its not_after is expired, never sent
    s.sql("UPDATE outbox SET not_after_us = 1, next_attempt_us = 0 WHERE id = ?", (int(rid),))
    n = len(smtp.messages)
    s.run()
    assert s.rows(id=int(rid))[0]["state"] == "expired" and len(smtp.messages) == n
    r = s.mxbait("report", "optout", "--list", "--json")
    assert json.loads(r.stdout)[0]["address"] == "@net2.test"


# ---------------------------------------------------------------- API sinks

def write_key(tmp_path, name, value):
    p = tmp_path / name
    p.write_text(value + "\n")
    return str(p)


def test_api_sinks(base, tmp_path, http):
    f = http.fake
    s = Setup(base, tmp_path,
              report_abuseipdb_key_file=write_key(tmp_path, "aipdb", "abuseipdb-test-key"),
              report_abuseipdb_url=http.base + "/abuseipdb/api/v2/",
              report_spamhaus_key_file=write_key(tmp_path, "sh", "spamhaus-test-key"),
              report_spamhaus_url=http.base + "/spamhaus/api/v1/",
              report_netcraft_email="reports@sensor.test",
              report_netcraft_url=http.base + "/netcraft/api/v3/",
              report_urlhaus_key_file=write_key(tmp_path, "uh", "urlhaus-test-key"),
              report_urlhaus_url=http.base + "/urlhaus/api/",
              report_webhook_url=http.base + "/webhook")
    f.abuseipdb_recent.add("192.0.2.10")        # reported by someone minutes ago
    f.known.add("127.0.0.1")                      # Spamhaus already has it
    f.script["/abuseipdb/api/v2/report"] = [(429, {"Retry-After": "2"},
                                             {"errors": [{"detail": "Daily rate limit"}]})]
    f.script["/netcraft/api/v3/report/urls"] = [(503, {}, {"error": "maintenance"})]
    t0 = time.time()
    s.run()
    rows = s.rows()
    ab = [r for r in rows if r["sink"] == "abuseipdb"]
    assert {r["subject"] for r in ab} == {"127.0.0.1", "192.0.2.10", "2001:db8:5::9"}
    limited = [r for r in ab if r["state"] == "queued"]
    # the first request met 429 + Retry-After: 2; the sink then waits, so all three wait
    assert len(limited) == 3 and f.count("/abuseipdb/api/v2/report") == 1
    assert min(r["next_attempt_us"] for r in limited if r["attempts"] == 1) >= (t0 + 2) * 1e6
    sh = [r for r in rows if r["sink"] == "spamhaus"]
    assert [(r["subject"], r["state"]) for r in sh] == [("127.0.0.1", "duplicate")]
    nc = {r["subject"]: r for r in rows if r["sink"] == "netcraft"}
    assert set(nc) == {"http://login.bank-phish.test/verify?id=7",
                       "http://dl.malware-host.test/payload/invoice.zip",
                       "http://evil-domain.test/x/pay"}
    retried = [r for r in nc.values() if r["state"] == "queued"]
    assert len(retried) == 1 and retried[0]["last_error"] == "HTTP 503"
    assert retried[0]["next_attempt_us"] >= (t0 + 29) * 1e6     # backoff >= 30 s (jitter)
    uh = [r for r in rows if r["sink"] == "urlhaus"]
    assert [r["subject"] for r in uh] == ["http://dl.malware-host.test/payload/invoice.zip"]
    assert uh[0]["state"] == "sent"
    wh = [r for r in rows if r["sink"] == "webhook"]
    assert wh and all(r["state"] == "sent" for r in wh)
    assert set(f.webhook_keys) == {r["key"] for r in wh}
    body = json.loads(next(iter(f.webhook_keys.values())))
    assert body["source"] == "mxbait" and "confidence" in body
    # after Retry-After: the rest goes out; "once in 15 minutes" counts as success
    due = max(r["next_attempt_us"] for r in limited) / 1e6   # Retry-After from the 429
    assert due - t0 < 30, "Retry-After was not honoured as given"
    time.sleep(max(0, due + 0.3 - time.time()))
    s.run()
    ab = {r["subject"]: r["state"] for r in s.rows(sink="abuseipdb")}
    assert ab == {"127.0.0.1": "sent", "192.0.2.10": "duplicate", "2001:db8:5::9": "sent"}
    form = [r for r in f.requests if r[0] == "/abuseipdb/api/v2/report"][-1][2].decode()
    assert "categories=" in form and "comment=" in form and "timestamp=" in form
    # URLhaus: already known -> duplicate (a second submission of the same URL)
    s.sql("UPDATE outbox SET state = 'queued' WHERE sink = 'urlhaus'")
    s.run()
    assert s.rows(sink="urlhaus")[0]["state"] == "duplicate"
    # webhook: nothing new, nothing sent again
    n = f.webhook_attempts
    s.run()
    assert f.webhook_attempts == n
    stats = json.loads(s.mxbait("report", "stats", "--json").stdout)
    assert stats["abuseipdb"]["sent"] == 2 and stats["abuseipdb"]["duplicate"] == 1
    assert stats["webhook"]["sent"] == len(wh)


def test_abuseipdb_bulk(base, tmp_path, http):
    f = http.fake
    s = Setup(base, tmp_path,
              report_abuseipdb_key_file=write_key(tmp_path, "aipdb", "abuseipdb-test-key"),
              report_abuseipdb_url=http.base + "/abuseipdb/api/v2/")
    add_attackers(s.dir, {f"198.51.100.{i}": 12 for i in range(50, 55)})
    s.run()
    rows = {r["subject"]: r for r in s.rows(sink="abuseipdb")}
    assert len(rows) == 8 and f.count("/abuseipdb/api/v2/bulk-report") == 1
    assert f.count("/abuseipdb/api/v2/report") == 0
    assert rows["2001:db8:5::9"]["state"] == "rejected"       # an invalid row in the answer
    assert sum(r["state"] == "sent" for r in rows.values()) == 7


def test_tls_verified(base, tmp_path):
    import ssl
    key, crt = str(tmp_path / "k.pem"), str(tmp_path / "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    h = HTTPFake(ssl_context=ctx)
    try:
        s = Setup(base, tmp_path, report_webhook_url=h.base + "/webhook")
        s.run()
        wh = s.rows(sink="webhook")
        assert wh and all(r["state"] == "queued" for r in wh)
        assert "certificate" in wh[0]["last_error"].lower() or "SSL" in wh[0]["last_error"]
        assert h.fake.webhook_attempts == 0
        s2 = Setup(base, tmp_path / "ca", report_webhook_url=h.base + "/webhook",
                   report_ca_file=crt)
        s2.run()
        assert all(r["state"] == "sent" for r in s2.rows(sink="webhook"))
        assert h.fake.webhook_attempts == len(s2.rows(sink="webhook"))
    finally:
        h.close()


def test_dry_run_by_default(base, tmp_path):
    """No sink configured: reports are rendered and kept for review, nothing is sent."""
    s = Setup(base, tmp_path)
    st = s.run()
    assert st["sent"] == 0 and st["planned"] > 0
    rows = s.rows()
    assert {r["state"] for r in rows} <= {"addressing", "manual"}
    r = s.mxbait("report", "show", str(rows[0]["id"]), "--payload")
    assert b"multipart/report" in r.stdout and VICTIM.encode() not in r.stdout


# ---------------------------------------------------------------- kill -9

def waits_for_dns(r):
    """A web host's report under rdap_conf's unanswered resolver: it stays in
    `addressing` (lookup failed, retried later) and is never sent here."""
    return r["kind"] == "arf-host" and r["state"] == "addressing"


def test_kill9_exactly_once(base, tmp_path, http):
    """kill -9 the reporter at random moments while it sends (the receivers answer
    slowly), restart it, until everything is settled: the webhook (which honours
    Idempotency-Key) got every report exactly once; the SMTP receiver never got one
    twice, and every report it did not get is listed as `unknown`, none lost."""
    smtp = SMTPFake(delay=0.15)
    http.fake.delay = 0.1
    http.fake.rdap_ip = {"198.18.": "abuse@busy.test", "127.": "abuse@isp.test",
                         "192.0.2.": "abuse@net2.test", "2001:db8:": "abuse@v6.test"}
    try:
        s = Setup(base, tmp_path, report_smtp_url=smtp.url,
                  report_webhook_url=http.base + "/webhook", report_daily_budget="1000",
                  **rdap_conf(http))
        add_messages(s.dir, [f"198.18.{i}.1" for i in range(30)])
        rng = random.Random(os.getpid())
        kills = 0
        for _ in range(80):
            p = subprocess.Popen([MXBAIT_BIN, "report", "--daemon", "-c", s.conf],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=sanitizer_env("detect_leaks=0"))
            time.sleep(rng.uniform(0.3, 1.2))
            p.send_signal(signal.SIGKILL)
            p.wait()
            kills += 1
            try:
                pending = [r for r in s.rows() if r["state"] in
                           ("queued", "sending", "addressing") and not waits_for_dns(r)]
            except sqlite3.Error:
                continue
            if kills > 3 and not pending:
                break
        st = s.run()                          # a clean pass settles what is left
        rows = s.rows()
        assert not [r for r in rows if r["state"] in ("queued", "sending", "addressing")
                    and not waits_for_dns(r)], \
            [(r["id"], r["state"], r["last_error"]) for r in rows if r["state"] != "sent"]
        # webhook: every report exactly once (repeats after a kill carry the same key)
        wh = [r for r in rows if r["sink"] == "webhook"]
        assert wh and all(r["state"] == "sent" for r in wh)
        assert set(http.fake.webhook_keys) == {r["key"] for r in wh}
        # SMTP: never twice; sent rows arrived once; unknown rows at most once
        ids = []
        for _, _, raw in smtp.messages:
            m = email.message_from_bytes(raw)
            ids.append(m["Message-ID"].strip("<>").split("@")[0])
        assert len(ids) == len(set(ids)), "a report was delivered twice"
        mail = [r for r in rows if r["sink"] == "smtp" and not waits_for_dns(r)]
        for r in mail:
            if r["state"] == "sent":
                assert ids.count(r["key"]) == 1, r
            else:
                assert r["state"] in ("unknown", "rejected"), r
                assert ids.count(r["key"]) <= 1
        unknown = [r for r in mail if r["state"] == "unknown"]
        print(f"kills={kills} smtp_rows={len(mail)} delivered={len(ids)} "
              f"unknown={len(unknown)} webhook={len(wh)} attempts={http.fake.webhook_attempts}")
        assert kills >= 4
    finally:
        smtp.close()


def test_abusix_dns_fallback(base, tmp_path, http, smtp):
    """No abuse role in RDAP for 192.0.2.0/24: the Abusix Abuse Contact DB answers, here
    served by rbldnsd (a TXT record per reversed address under abuse-contacts.abusix.zone)
    on a loopback port the reporter's resolver is pinned to."""
    from conftest import free_ports
    zones = tempfile.mkdtemp(prefix="mxbt-abusix-")
    os.chmod(zones, 0o755)
    with open(os.path.join(zones, "abusix.txt"), "w") as f:
        f.write(":127.0.0.2:abuse@from-abusix.test\n192.0.2.10\n")
    os.chmod(os.path.join(zones, "abusix.txt"), 0o644)
    port = free_ports(1)[0]
    proc = subprocess.Popen(["rbldnsd", "-n", "-u", "nobody", "-b", f"127.0.0.1/{port}",
                             "-w", zones, "abuse-contacts.abusix.zone:ip4set:abusix.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            r = subprocess.run(["dig", "+short", "-p", str(port), "@127.0.0.1",
                                "10.2.0.192.abuse-contacts.abusix.zone", "TXT"],
                               capture_output=True, text=True)
            if "from-abusix" in r.stdout:
                break
            time.sleep(0.1)
        http.fake.rdap_ip = {}          # RDAP knows the network but has no abuse role
        s = Setup(base, tmp_path, report_smtp_url=smtp.url, **{
            **rdap_conf(http), "report_abusix": "yes",
            "report_dns_server": f"127.0.0.1:{port}"})
        s.run()
        xarf = {r["subject"]: r for r in s.rows(kind="xarf")}
        assert xarf["192.0.2.10"]["recipient"] == "abuse@from-abusix.test"
        assert xarf["192.0.2.10"]["state"] == "sent"
        assert xarf["2001:db8:5::9"]["state"] == "rejected"   # neither source knows it
        db = sqlite3.connect(os.path.join(s.dir, "intel.db"))
        assert db.execute("SELECT origin FROM contacts WHERE query = 'ip:192.0.2.10'"
                          ).fetchone()[0] == "abusix"
        db.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(zones, ignore_errors=True)


def test_web_host_contact(base, tmp_path, http, smtp):
    """The network hosting each spamvertised URL: the reporter resolves the URL's host
    through the pinned resolver (rbldnsd answering A records on a loopback port) and
    asks RDAP for the address's abuse contact.  A name pointing at a private address or
    at an allowlisted one accuses nobody (no RDAP query at all); answers are cached."""
    from conftest import free_ports
    zones = tempfile.mkdtemp(prefix="mxbt-webhost-")
    os.chmod(zones, 0o755)
    with open(os.path.join(zones, "hosts.txt"), "w") as f:
        f.write("login.bank-phish :198.51.100.80:web\n"
                "evil-domain :10.9.8.7:private\n"
                "dl.malware-host :192.0.2.99:allowlisted\n")
    os.chmod(os.path.join(zones, "hosts.txt"), 0o644)
    port = free_ports(1)[0]
    proc = subprocess.Popen(["rbldnsd", "-n", "-u", "nobody", "-b", f"127.0.0.1/{port}",
                             "-w", zones, "test:dnset:hosts.txt"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(50):
            r = subprocess.run(["dig", "+short", "-p", str(port), "@127.0.0.1",
                                "login.bank-phish.test", "A"], capture_output=True, text=True)
            if "198.51.100.80" in r.stdout:
                break
            time.sleep(0.1)
        assert "198.51.100.80" in r.stdout, r.stdout
        f = http.fake
        f.rdap_ip = {"127.": "abuse@isp.test", "198.51.100.": "abuse@webhost.test",
                     "192.0.2.": "abuse@net2.test", "10.": "abuse@private.test"}
        s = Setup(base, tmp_path, report_smtp_url=smtp.url, allowlist_networks="192.0.2.99",
                  **{**rdap_conf(http), "report_dns_server": f"127.0.0.1:{port}"})
        s.run()
        hosts = {r["subject"]: r for r in s.rows(kind="arf-host")}
        assert set(hosts) == {"login.bank-phish.test", "evil-domain.test",
                              "dl.malware-host.test"}, set(hosts)
        web = hosts["login.bank-phish.test"]
        assert web["contact_query"] == "host:login.bank-phish.test"
        assert web["recipient"] == "abuse@webhost.test" and web["state"] == "sent", web
        for h in ("evil-domain.test", "dl.malware-host.test"):
            assert hosts[h]["state"] == "rejected", hosts[h]
        asked = [p for p, *_ in f.requests if p.startswith("/rdap/ip/")]
        assert "/rdap/ip/198.51.100.80" in asked
        assert not [p for p in asked if p.endswith(("/10.9.8.7", "/192.0.2.99"))], asked
        raws = [raw for _, rcpts, raw in smtp.messages if rcpts == ["abuse@webhost.test"]]
        assert len(raws) == 1
        msg, fields, third = arf_parts(raws[0])
        assert "http://login.bank-phish.test/verify?id=7" in fields.get_all("Reported-URI")
        assert VICTIM.encode() not in raws[0].lower()
        db = sqlite3.connect(os.path.join(s.dir, "intel.db"))
        origin = dict(db.execute("SELECT query, origin FROM contacts WHERE query LIKE"
                                 " 'host:%'").fetchall())
        db.close()
        assert origin["host:login.bank-phish.test"] == "dns 198.51.100.80"
        assert origin["host:evil-domain.test"] == "dns 10.9.8.7(not looked up)"
        assert origin["host:dl.malware-host.test"] == "dns 192.0.2.99(not looked up)"
        # nothing again on the next pass; the contact came from the cache
        n, lookups = len(smtp.messages), f.count("/rdap/ip/")
        st = s.run()
        assert st["sent"] == 0 and len(smtp.messages) == n and f.count("/rdap/ip/") == lookups
        # report_web_hosts = no: no such report is even planned
        off = tmp_path / "off"
        off.mkdir()
        s2 = Setup(base, off, report_web_hosts="no", **rdap_conf(http))
        s2.run()
        assert s2.rows(kind="arf") and not s2.rows(kind="arf-host")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(zones, ignore_errors=True)
