"""The web server of `mxbait serve` (src/web/, docs/api.md), against one daemon fed with
hostile data by real SMTP sessions, the guard's Postfix policy service, `mxbait
decisions` and `mxbait report run` (webdata.py):

- every endpoint's JSON validates against its schema in tests/web/schemas/, and so does
  every example of docs/api.md (so the document cannot drift from the code);
- the API returns exactly what the CLI's --json prints (one serializer), decisions,
  reports and indicators included;
- the admin actions (allow, release a decision; hold, release, retry a report) change
  what the guard and the reporter own, are logged with the web user's name, and are
  refused without the admin role, the CSRF token, JSON, or a state they apply to;
- cursor pagination walks every row once, in order; bad parameters get 400 and a
  message; unknown paths 404, wrong methods 405;
- the raw message is message/rfc822 with Content-Disposition: attachment, byte-exact;
- every reply carries the security headers; /metrics passes `promtool check metrics`
  and counts what the daemon saw; the live stream sends ticks;
- request bounds (headers, body) and the connection cap;
- a real browser (Debian's chromium, headless, driven over the DevTools protocol) loads
  every page at desktop and phone width: no payload runs (window.__pwned stays unset,
  nothing requests /pwned), no console error, no request leaves the daemon's own
  address, the hostile text is on the page as text (decision reasons and report
  content included), the keyboard reaches the pages, an admin's button works.
  Screenshots are kept in build-asan/test-artifacts/web/ (MXBAIT_ARTIFACTS overrides).
"""

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import time
import urllib.parse

import pytest

import conftest
from conftest import ALL_EVENT_LINES, MXBAIT_BIN, ROOT, Daemon, Raw, sanitizer_env
import mmdb
import webdata

jsonschema = pytest.importorskip("jsonschema")

SCHEMAS = os.path.join(ROOT, "tests", "web", "schemas")
API_MD = os.path.join(ROOT, "docs", "api.md")
ARTIFACTS = os.environ.get("MXBAIT_ARTIFACTS") or os.path.join(ROOT, "build-asan", "test-artifacts", "web")

SECURITY_HEADERS = {
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def schema(name):
    with open(os.path.join(SCHEMAS, name + ".json")) as f:
        return json.load(f)


def validate(name, doc):
    jsonschema.validate(doc, schema(name), cls=jsonschema.Draft202012Validator)


# The hostile daemon requires a login (web_auth): a reader, and an admin for actions.
READ_TOKEN = "reader-" + "r" * 30
ADMIN_TOKEN = "admin-" + "a" * 30


def bearer(tok):
    return {"Authorization": "Bearer " + tok}


class Web:
    def __init__(self, host, port, token=READ_TOKEN):
        self.host, self.port = host, port
        self.token = token

    def req(self, method, path, headers=None, body=None, timeout=30):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        h = bearer(self.token) if self.token else {}
        h.update(headers or {})
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            c.close()

    def get(self, path, **kw):
        return self.req("GET", path, **kw)

    def json(self, path, status=200):
        st, h, b = self.get(path)
        assert st == status, (path, st, b[:500])
        assert h["content-type"].startswith("application/json"), h
        return json.loads(b)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One daemon with hostile data, shared by the tests of this file."""
    tmp = str(tmp_path_factory.mktemp("web"))
    geo = os.path.join(tmp, "countries.mmdb")
    mmdb.write(geo, {"127.0.0.0/24": ("NL", "Netherlands"), "127.0.0.2/32": ("FR", "France")})
    tok = lambda t: "sha256:" + hashlib.sha256(t.encode()).hexdigest()  # noqa: E731
    d = Daemon(tmp, "test_web", auth_failure_delay="0s", crack_after_failures="2",
               web_threads=2, geoip_file=geo,
               web_auth=f"reader:read:{tok(READ_TOKEN)}, boss:admin:{tok(ADMIN_TOKEN)}",
               # a guard (its Postfix policy service on a socket of the test), and
               # reports about loopback sources (the test's attackers)
               postfix_policy_listen="unix:" + os.path.join(tmp, "policy.sock"),
               guard_trap_users="trap", allowlist_own_addresses="no")
    d.start()
    qids = webdata.populate(d)
    c = Raw(d, "smtp", src="127.0.0.2")  # one session from "France"
    c.reply()
    c.cmd("QUIT")
    c.close()
    assert len(qids) >= len(webdata.PAYLOADS), qids
    w = Web("127.0.0.1", d.port_web)
    # The analyzer child works in the background: wait until it has every message.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        st, _, b = w.get("/api/v1/campaigns")
        if st == 200 and json.loads(b)["data"]:
            _, _, mb = w.get("/metrics")
            if b"\nmxbait_analyzer_backlog_messages 0\n" in mb:
                break
        time.sleep(0.5)
    d.qids = qids
    d.web = w
    d.admin = Web("127.0.0.1", d.port_web, ADMIN_TOKEN)
    webdata.decisions_and_reports(d, os.path.join(tmp, "policy.sock"), d.admin)
    yield d
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    assert not problems, problems


# --------------------------------------------------------------------------- API

ENDPOINTS = [
    ("/api/v1", "index"),
    ("/api/v1/whoami", "whoami"),
    ("/api/v1/stats", "stats"),
    ("/api/v1/timeseries?series=auth&since=1h&step=1m", "timeseries"),
    ("/api/v1/timeseries?series=messages&since=1d&step=1h", "timeseries"),
    ("/api/v1/timeseries?series=sources", "timeseries"),
    ("/api/v1/sessions", "sessions"),
    ("/api/v1/messages", "messages"),
    ("/api/v1/auth-attempts", "auth_attempts"),
    ("/api/v1/credentials", "credentials"),
    ("/api/v1/attackers", "attackers"),
    ("/api/v1/links", "links"),
    ("/api/v1/domains", "domains"),
    ("/api/v1/recipients", "recipients"),
    ("/api/v1/recipients?by=domain", "recipient_domains"),
    ("/api/v1/campaigns", "campaigns"),
    ("/api/v1/countries", "countries"),
    ("/api/v1/decisions", "decisions"),
    ("/api/v1/decisions?all=1", "decisions"),
    ("/api/v1/reports", "reports"),
    ("/api/v1/reports?state=addressing&sink=smtp", "reports"),
    ("/api/v1/reports/stats", "report_stats"),
    ("/api/v1/indicators", "indicators"),
    ("/api/v1/indicators?kind=url,sender&min_confidence=10&since=1d", "indicators"),
]


def test_every_endpoint_matches_its_schema(hostile):
    w = hostile.web
    for path, name in ENDPOINTS:
        doc = w.json(path)
        validate(name, doc)
    # The per-item endpoints.
    msgs = w.json("/api/v1/messages")["data"]
    assert len(msgs) == len(hostile.qids)
    for m in msgs:
        one = w.json("/api/v1/messages/" + urllib.parse.quote(m["queue_id"], safe=""))
        validate("message", one)
    sess = w.json("/api/v1/sessions?limit=3")["data"]
    for s in sess:
        validate("session", w.json("/api/v1/sessions/" + urllib.parse.quote(s["session"], safe="")))
    camps = w.json("/api/v1/campaigns")["data"]
    assert camps, "the analyzer made no campaign"
    validate("campaign", w.json("/api/v1/campaigns/" + urllib.parse.quote(camps[0]["id"], safe="")))
    reps = w.json("/api/v1/reports?limit=1000")["data"]
    assert {r["sink"] for r in reps} >= {"smtp", "manual"}, reps
    for r in reps:
        validate("report", w.json(f"/api/v1/reports/{r['id']}"))
    # The hostile data reached the new lists as data.
    dec = {x["source"]: x for x in w.json("/api/v1/decisions")["data"]}
    assert dec[webdata.CLI_SOURCE]["reason"] == webdata.REASON_CLI
    assert dec[webdata.WEB_SOURCE]["reason"] == webdata.REASON_WEB
    conv = dec[webdata.CONVICTED]
    assert conv["reason"] == "trap_user" and conv["action"] == "divert" and conv["evidence"]
    ev = w.json("/api/v1/sessions/" + conv["evidence"][0])
    assert ev[0]["event"] == "guard_rcpt" and ev[0]["sender"].startswith(webdata.PAYLOADS[0])
    inds = w.json("/api/v1/indicators?limit=1000")["data"]
    assert any("<" in i["value"] for i in inds), [(i["kind"], i["value"]) for i in inds]
    st, _, b = w.get("/api/v1/nope")
    assert st == 404
    validate("error", json.loads(b))
    # What the data is: the payloads came through, as data.
    creds = w.json("/api/v1/credentials?top=100")
    names = {u["username"] for u in creds["usernames"]}
    assert webdata.PAYLOADS[0] in names, names
    assert any(c["username"] == "bob" and c["password"] == "123456" for c in creds["cracked"]), creds["cracked"]
    helos = {s["helo"] for s in w.json("/api/v1/sessions?limit=1000")["data"]}
    assert webdata.PAYLOADS[2].replace(" ", "") in helos


def test_countries_from_the_geoip_file(hostile):
    w = hostile.web
    assert w.json("/api/v1/whoami")["geoip"] is True
    deadline = time.monotonic() + 10
    while True:
        c = {x["country"]: x for x in w.json("/api/v1/countries?since=1d")["countries"]}
        if "FR" in c or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert c["FR"] == {"country": "FR", "name": "France", "ips": 1, "sessions": 1, "attempts": 0}, c
    stats = hostile.cli_json("stats")
    assert c["NL"]["ips"] == 1 and c["NL"]["sessions"] == stats["sessions"] - 1, (c, stats)
    assert c["NL"]["attempts"] == stats["auth"]["ok"] + stats["auth"]["failed"]
    assert None not in c  # every address has a country here


def test_api_md_examples_match_the_schemas():
    """Each ```json block of docs/api.md after <!-- example: NAME --> validates against
    tests/web/schemas/NAME.json, and every schema has an example."""
    with open(API_MD) as f:
        text = f.read()
    found = re.findall(r"<!-- example: (\w+) -->\s*```json\n(.*?)```", text, re.S)
    names = {n for n, _ in found}
    all_schemas = {f[:-5] for f in os.listdir(SCHEMAS) if f.endswith(".json")}
    assert all_schemas <= names, f"schemas without an example in docs/api.md: {all_schemas - names}"
    for name, body in found:
        try:
            doc = json.loads(body)
        except ValueError as e:
            pytest.fail(f"docs/api.md example {name} is not JSON: {e}")
        validate(name, doc)


def test_api_equals_cli_json(hostile):
    """One serializer: the API's data is what `mxbait CMD --json` prints."""
    w, d = hostile.web, hostile
    pairs = [
        (["sessions"], "/api/v1/sessions", True),
        (["messages"], "/api/v1/messages", True),
        (["creds"], "/api/v1/credentials", False),
        (["attackers"], "/api/v1/attackers", False),
        (["urls"], "/api/v1/links", True),
        (["domains"], "/api/v1/domains", True),
        (["recipients"], "/api/v1/recipients", True),
        (["recipients", "--by-domain"], "/api/v1/recipients?by=domain", True),
        (["campaigns"], "/api/v1/campaigns", True),
        (["decisions", "list", "-n", "1000"], "/api/v1/decisions?limit=1000", True),
        (["decisions", "list", "--all", "-n", "1000"], "/api/v1/decisions?all=1&limit=1000", True),
        (["report", "list", "-n", "1000"], "/api/v1/reports?limit=1000", True),
        (["report", "list", "--state", "manual"], "/api/v1/reports?state=manual&limit=100", True),
        (["report", "stats"], "/api/v1/reports/stats", False),
        (["indicators", "--no-update", "-c", d.conf_path, "-n", "1000"],
         "/api/v1/indicators?limit=1000", True),
    ]
    for args, path, paged in pairs:
        cli = d.cli_json(*args)
        api = w.json(path)
        if paged:
            api = api["data"]
        else:
            api.get("settings", {}).pop("since", None)
            cli.get("settings", {}).pop("since", None)
        assert api == cli, f"{path} != mxbait {' '.join(args)} --json"
    qid = hostile.qids[0]
    assert w.json("/api/v1/messages/" + qid) == d.cli_json("show", qid)
    for r in w.json("/api/v1/reports?limit=5")["data"]:
        assert w.json(f"/api/v1/reports/{r['id']}") == d.cli_json("report", "show", str(r["id"]))
    # The payload: the bytes `report show --payload` prints (not a terminal: raw).
    rid = w.json("/api/v1/reports?sink=smtp")["data"][0]["id"]
    st, h, body = w.get(f"/api/v1/reports/{rid}/payload")
    assert st == 200 and h["content-disposition"].startswith("attachment")
    assert h["content-type"] == "application/octet-stream"
    cli = d.cli("report", "show", str(rid), "--payload")
    assert cli.returncode == 0 and body == cli.stdout and b"multipart/report" in body
    st_api = w.json("/api/v1/stats")
    st_cli = d.cli_json("stats", "-c", d.conf_path)  # -c: the spool budget
    assert st_api == st_cli


def walk(w, path, key):
    seen, cursor, pages = [], None, 0
    get = key if callable(key) else (lambda r: r[key])
    while True:
        sep = "&" if "?" in path else "?"
        url = path + (sep + "cursor=" + urllib.parse.quote(cursor) if cursor else "")
        page = w.json(url)
        seen += [get(r) for r in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return seen, pages


def test_cursor_pagination(hostile):
    w = hostile.web
    for base, key in [("/api/v1/sessions", "session"), ("/api/v1/messages", "queue_id"),
                      ("/api/v1/auth-attempts", "id"), ("/api/v1/links", "url"),
                      ("/api/v1/recipients", "addr"), ("/api/v1/reports", "id"),
                      ("/api/v1/decisions?all=1", "id"),
                      ("/api/v1/indicators", lambda r: (r["kind"], r["value"], r["source"]))]:
        get = key if callable(key) else (lambda r, k=key: r[k])
        full = [get(r) for r in w.json(base + ("&" if "?" in base else "?") + "limit=1000")["data"]]
        assert len(full) >= 3, (base, full)
        paged, pages = walk(w, base + ("&" if "?" in base else "?") + "limit=2", key)
        assert paged == full, base
        assert pages == (len(full) + 1) // 2, (base, pages, len(full))
        assert len(set(paged)) == len(paged)
    # Newest first, and a cursor stays right while rows are added.
    s = w.json("/api/v1/sessions?limit=1000")["data"]
    assert [x["started_us"] for x in s] == sorted((x["started_us"] for x in s), reverse=True)
    first = w.json("/api/v1/sessions?limit=2")
    webdata.smtp_session(hostile, "late.example", "late@evil.example", ["v@example.test"],
                         b"Subject: late\r\n\r\nx\r\n")
    deadline = time.monotonic() + 10
    while len(w.json("/api/v1/sessions?limit=1000")["data"]) == len(s) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    nxt = w.json("/api/v1/sessions?limit=2&cursor=" + urllib.parse.quote(first["next_cursor"]))
    assert nxt["data"][0]["session"] == s[2]["session"]


BAD = [
    ("/api/v1/sessions?limit=0", 400, "bad limit"),
    ("/api/v1/sessions?limit=1001", 400, "bad limit"),
    ("/api/v1/sessions?limit=ten", 400, "bad limit"),
    ("/api/v1/sessions?cursor=zzz", 400, "bad cursor"),
    ("/api/v1/messages?cursor=1.x", 400, "bad cursor"),
    ("/api/v1/links?cursor=12.3", 400, "bad cursor"),
    ("/api/v1/sessions?color=red", 400, "unknown parameter 'color'"),
    ("/api/v1/credentials?since=yesterday", 400, "bad since"),
    ("/api/v1/credentials?window=-1h", 400, "bad window"),
    ("/api/v1/credentials?min_ips=0", 400, "bad min_ips"),
    ("/api/v1/attackers?top=0", 400, "bad top"),
    ("/api/v1/timeseries?series=cpu", 400, "bad series"),
    ("/api/v1/timeseries?since=30d&step=1s", 400, "too many points"),
    ("/api/v1/recipients?by=color", 400, "bad by"),
    ("/api/v1/sessions?ip=", 400, "bad ip"),
    ("/api/v1/stats?x=1&x=2", 400, "unknown parameter 'x'"),
    ("/api/v1/messages/NOSUCH", 404, "not found"),
    ("/api/v1/messages/NOSUCH/raw", 404, "no such message"),
    ("/api/v1/messages/x/y/z", 404, "no such endpoint"),
    ("/api/v1/sessions/nosuch", 404, "not found"),
    ("/api/v1/decisions?all=maybe", 400, "bad all"),
    ("/api/v1/decisions?cursor=x", 400, "bad cursor"),
    ("/api/v1/reports?state=lost", 400, "bad state"),
    ("/api/v1/reports?cursor=7", 400, "bad cursor"),
    ("/api/v1/reports/abc", 404, "no such endpoint"),
    ("/api/v1/reports/1/raw", 404, "no such endpoint"),
    ("/api/v1/reports/999999", 404, "not found"),
    ("/api/v1/reports/999999/payload", 404, "not found"),
    ("/api/v1/indicators?kind=cat", 400, "bad kind"),
    ("/api/v1/indicators?min_confidence=101", 400, "bad min_confidence"),
    ("/api/v1/indicators?cursor=1.2", 400, "bad cursor"),
    ("/api/v2/stats", 404, "no such endpoint"),
    ("/static/nope.js", 404, "no such file"),
]


def test_bad_parameters_get_400_with_a_message(hostile):
    w = hostile.web
    for path, status, msg in BAD:
        st, h, b = w.get(path)
        assert st == status, (path, st, b)
        body = json.loads(b)
        validate("error", body)
        assert msg in body["error"], (path, body)
    st, _, b = w.req("POST", "/api/v1/stats")
    assert st == 405 and json.loads(b)["error"] == "method not allowed"
    st, _, _ = w.req("PUT", "/api/v1/stats")
    assert st in (405, 501)  # libevent refuses methods it was not allowed: 501
    # The read role: actions are refused.
    st, _, b = w.req("POST", "/api/v1/actions/decision-allow", body=b"{}")
    assert st == 403 and "admin" in json.loads(b)["error"]


def test_raw_message_is_an_rfc822_attachment(hostile):
    w, d = hostile.web, hostile
    qid = hostile.qids[0]
    st, h, body = w.get("/api/v1/messages/" + qid + "/raw")
    assert st == 200
    assert h["content-type"] == "message/rfc822"
    assert h["content-disposition"] == f'attachment; filename="mxbait-{qid}.eml"'
    meta = w.json("/api/v1/messages/" + qid)
    with open(os.path.join(d.data_dir, "spool", "new", meta["spool"]), "rb") as f:
        assert body == f.read()
    for k, v in SECURITY_HEADERS.items():
        assert v in h[k]


def test_message_html_is_sandboxed(hostile):
    """/api/v1/messages/ID/html: the HTML body, decoded, with a CSP of its own that
    sandboxes it (no script, nothing fetched) even when opened directly; framed by the
    dashboard only."""
    w = hostile.web
    qid = hostile.qids[0]
    st, h, body = w.get(f"/api/v1/messages/{qid}/html")
    assert st == 200 and h["content-type"] == "text/html; charset=utf-8"
    csp = [x.strip() for x in h["content-security-policy"].split(";")]
    assert "sandbox" in csp and "default-src 'none'" in csp and "img-src data:" in csp, csp
    assert "frame-ancestors 'self'" in csp and not any("script" in x for x in csp), csp
    assert h["x-frame-options"] == "SAMEORIGIN" and h["x-content-type-options"] == "nosniff"
    assert "content-disposition" not in h
    # the HTML part itself, decoded, not the text part or the attachment
    assert body.startswith(b"<html><body onload=") and b"phish.evil.example" in body
    assert webdata.PAYLOADS[0].encode() in body and b"Visit http" not in body
    # no HTML part: 404; the main pages may frame only this origin
    big = hostile.qids[-1]
    st, h, b = w.get(f"/api/v1/messages/{big}/html")
    assert st == 404 and "no HTML part" in json.loads(b)["error"]
    assert "sandbox" not in h["content-security-policy"]
    st, h, _ = w.get("/")
    assert "frame-src 'self'" in h["content-security-policy"]


def test_security_headers_everywhere(hostile):
    w = hostile.web
    st, h, _ = w.get("/api/v1/stats")
    assert "age" in h, "a cached aggregate says how old it is"
    for path in ["/", "/static/app.js", "/static/style.css", "/favicon.svg", "/api/v1/stats",
                 "/api/v1/nope", "/api/v1/sessions?limit=0", "/metrics"]:
        st, h, _ = w.get(path)
        for k, v in SECURITY_HEADERS.items():
            assert k in h and v in h[k], (path, k, h.get(k))
        csp = h["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "require-trusted-types-for 'script'" in csp
    st, h, _ = w.get("/")
    assert h["content-type"] == "text/html; charset=utf-8"
    st, h, b = w.get("/static/app.js")
    assert h["content-type"] == "text/javascript; charset=utf-8"
    # One escaping place: the page code never hands a string to an HTML parser.
    assert b"innerHTML" not in b.replace(b"Nothing is ever assigned\n * to innerHTML", b"")
    assert b"eval(" not in b and b"document.write" not in b


def test_metrics_parse_and_count(hostile):
    w = hostile.web
    st, h, body = w.get("/metrics")
    assert st == 200 and h["content-type"].startswith("text/plain; version=0.0.4")
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian's prometheus package) is not installed"
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    text = body.decode()

    def val(name):
        m = re.search("^" + re.escape(name) + r" (\S+)$", text, re.M)
        assert m, name
        return float(m.group(1))

    # Every session and auth attempt of this daemon was seen by the observer.  (The
    # API's stats may be up to 10 s old, from the cache: the CLI reads now.)
    stats = hostile.cli_json("stats", "-c", hostile.conf_path)
    total_conn = sum(float(x) for x in re.findall(r'^mxbait_connections_total\{role="\w+"\} (\S+)$', text, re.M))
    assert total_conn == stats["sessions"], (total_conn, stats["sessions"])
    auth = sum(float(x) for x in re.findall(r"^mxbait_auth_attempts_total\{[^}]*\} (\S+)$", text, re.M))
    assert auth == stats["auth"]["ok"] + stats["auth"]["failed"]
    assert val('mxbait_auth_attempts_total{protocol="smtps",result="ok"}') == stats["auth"]["ok"]
    assert val('mxbait_messages_captured_total{role="smtp"}') == stats["messages"]
    assert val("mxbait_accounts{kind=\"cracked\"}") >= 1
    assert val("mxbait_spool_bytes") == stats["spool"]["bytes"]
    assert val("mxbait_database_bytes{db=\"mxbait\"}") > 0
    assert val("mxbait_eventstore_commit_duration_seconds_count") >= 1
    assert val("mxbait_up") == 1
    # The guard's decisions and observations, the reporter's outbox.
    assert val('mxbait_decisions_total{action="divert",origin="guard"}') >= 1
    assert val('mxbait_decisions{action="divert"}') >= 1
    active = [x for x in hostile.web.json("/api/v1/decisions?limit=1000")["data"]
              if x["state"] == "active"]
    assert sum(val(f'mxbait_decisions{{action="{a}"}}') for a in
               ("delay", "divert", "ban", "allow")) == len(active)
    rcpt = sum(float(x) for x in re.findall(r"^mxbait_guard_recipients_total\{[^}]*\} (\S+)$", text, re.M))
    assert rcpt == len(hostile.events("guard_rcpt")), rcpt
    rs = hostile.web.json("/api/v1/reports/stats")
    assert rs
    for sink, c in rs.items():
        per = re.findall(r'^mxbait_reports\{sink="' + sink + r'",state="\w+"\} (\S+)$', text, re.M)
        assert sum(float(x) for x in per) == c["total"], (sink, per, c)
        for state in ("manual", "queued", "held", "addressing", "sent"):
            assert val(f'mxbait_reports{{sink="{sink}",state="{state}"}}') == c[state]
    # Every metric the Grafana dashboard queries is exported.
    with open(os.path.join(ROOT, "contrib", "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = set(re.findall(r"mxbait_\w+", " ".join(exprs)))
    exported = set(re.findall(r"^# TYPE (mxbait_\w+)", text, re.M))
    for n in names:
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        assert n in exported or base in exported, f"grafana queries {n}, /metrics has no such metric"
    # ... among them the guard's and the reporter's; panels have their own ids and places.
    assert {"mxbait_decisions", "mxbait_decisions_total", "mxbait_reports",
            "mxbait_guard_logins_total", "mxbait_guard_recipients_total"} <= names, names
    ids = [p["id"] for p in dash["panels"] if "id" in p]
    assert len(ids) == len(set(ids)), ids
    boxes = [(p["gridPos"]["x"], p["gridPos"]["y"], p["gridPos"]["w"], p["gridPos"]["h"])
             for p in dash["panels"]]
    for i, (x, y, w_, h) in enumerate(boxes):
        assert x + w_ <= 24, boxes[i]
        for (x2, y2, w2, h2) in boxes[i + 1:]:
            assert x + w_ <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, \
                ("overlapping panels", boxes[i], (x2, y2, w2, h2))


def test_actions(hostile):
    """The admin's actions: allow and release a decision (through the guard), hold,
    release and retry a report (a guarded transaction on intel.db); each logged with
    the web user's name; refused without the admin role, the CSRF token, the same
    origin, a JSON body, or a state the action applies to."""
    d, a, w = hostile, hostile.admin, hostile.web
    origin = f"http://127.0.0.1:{d.port_web}"
    csrf = a.json("/api/v1/whoami")["csrf_token"]
    assert a.json("/api/v1/whoami")["guard"] is True
    good = {"X-CSRF-Token": csrf, "Content-Type": "application/json", "Origin": origin}

    def post(name, body, headers=None, who=a, status=200):
        h = dict(good if headers is None else headers)
        st, _, b = who.req("POST", "/api/v1/actions/" + name, headers=h,
                           body=body if isinstance(body, bytes) else json.dumps(body))
        doc = json.loads(b)
        assert st == status, (name, body, st, doc)
        validate("error" if status != 200 else "action_" + name.split("-")[0], doc)
        return doc

    src = "203.0.113.50"
    # Refusals, before anything changes.
    assert "admin" in post("decision-allow", {"source": src}, who=w, status=403)["error"]
    assert "CSRF" in post("decision-allow", {"source": src},
                          headers={"Content-Type": "application/json"}, status=403)["error"]
    post("decision-allow", {"source": src}, status=403,
         headers=dict(good, Origin="http://evil.example"))
    post("decision-allow", {"source": src}, status=403,
         headers=dict(good, **{"Sec-Fetch-Site": "cross-site"}))
    assert "JSON" in post("decision-allow", {"source": src}, status=415,
                          headers=dict(good, **{"Content-Type": "text/plain"}))["error"]
    assert "unknown key 'action'" in post("decision-allow", {"source": src, "action": "ban"},
                                          status=400)["error"]
    assert "bad source" in post("decision-allow", {"source": "<b>x</b>"}, status=400)["error"]
    assert "missing source" in post("decision-allow", {}, status=400)["error"]
    assert "bad for" in post("decision-allow", {"source": src, "for": "ever"}, status=400)["error"]
    assert "bad reason" in post("decision-allow", {"source": src, "reason": "x" * 40},
                                status=400)["error"]
    assert "not a JSON object" in post("decision-allow", b"[1,2", status=400)["error"]
    assert "no such action" in post("decision-block", {"source": src}, status=404)["error"]
    assert not d.events("decision", src_ip=src)
    # Allow: decided by the guard at once, recorded, logged with the user's name.
    r = post("decision-allow", {"source": src, "for": "1h", "reason": "web test"})
    dec = r["decision"]
    assert r["result"] == "done" and dec["action"] == "allow" and dec["source"] == src
    assert dec["origin"] == "manual" and dec["reason"] == "web test" and dec["state"] == "active"
    assert 3599e6 <= dec["expires_us"] - dec["created_us"] <= 3600e6
    ev = d.wait_events("decision", src_ip=src)
    assert ev and ev[0]["op"] == "add" and ev[0]["duration_ms"] == 3600000 and ev[0]["session"] == dec["id"]
    assert ev[0]["by"] == "web user boss from 127.0.0.1", ev[0]
    assert f"asked for by web user boss from 127.0.0.1" in d.stderr_text()
    assert post("decision-allow", {"source": src})["result"] == "unchanged"
    # The list (and the CLI) show the same object the action answered.
    deadline = time.monotonic() + 10
    while not [x for x in w.json("/api/v1/decisions")["data"] if x["id"] == dec["id"]]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert [x for x in d.cli_json("decisions", "list") if x["id"] == dec["id"]] == [dec]
    # Release: only the decision the admin saw (id), once.
    assert "no decision in force" in post("decision-release", {"source": src, "id": "0" * 16},
                                          status=404)["error"]
    r = post("decision-release", {"source": src, "id": dec["id"]})
    assert r["result"] == "done" and r["decision"]["state"] == "removed" and r["decision"]["ended_us"]
    post("decision-release", {"source": src}, status=404)
    dels = d.wait_events("decision", src_ip=src, op="del")
    assert dels and dels[0]["by"] == "web user boss from 127.0.0.1", dels
    assert f"removed by web user boss from 127.0.0.1" in d.stderr_text()

    # Reports: hold, release (with a recipient), retry.
    reps = w.json("/api/v1/reports?state=addressing&sink=smtp&limit=1000")["data"]
    assert reps, "no report in addressing"
    rid = reps[0]["id"]
    r = post("report-hold", {"id": rid})
    assert r["from"] == "addressing" and r["report"]["state"] == "held" and r["report"]["id"] == rid
    assert "is held" in post("report-hold", {"id": rid}, status=409)["error"]
    assert "is held" in post("report-retry", {"id": rid}, status=409)["error"]
    assert "bad to" in post("report-release", {"id": rid, "to": "no address"}, status=400)["error"]
    assert "bad id" in post("report-hold", {"id": str(rid)}, status=400)["error"]
    assert "no report" in post("report-hold", {"id": 999999}, status=404)["error"]
    assert "unknown key 'to'" in post("report-hold", {"id": rid, "to": "a@b.example"},
                                      status=400)["error"]
    r = post("report-release", {"id": rid, "to": "abuse@isp.example"})
    assert r["from"] == "held" and r["report"]["state"] == "queued"
    assert r["report"]["recipient"] == "abuse@isp.example"
    cli = d.cli_json("report", "show", str(rid))
    assert cli["state"] == "queued" and cli["recipient"] == "abuse@isp.example"
    # retry: a report the reporter gave up on (as it would have recorded it)
    db = sqlite3.connect(os.path.join(d.data_dir, "intel.db"))
    db.execute("UPDATE outbox SET state = 'failed', attempts = 5 WHERE id = ?", (rid,))
    db.commit()
    db.close()
    r = post("report-retry", {"id": rid})
    assert r["from"] == "failed" and r["report"]["state"] == "queued" and r["report"]["attempts"] == 0
    log = d.stderr_text()
    for what in ("held (addressing -> held)", "released (held -> queued), to abuse@isp.example",
                 "queued again (failed -> queued)"):
        assert f"web: web user boss from 127.0.0.1: report {rid} {what}" in log, what
    # put it back where the other tests expect it
    post("report-hold", {"id": rid})


def test_live_stream_sends_ticks(hostile):
    s = socket.create_connection(("127.0.0.1", hostile.port_web), timeout=10)
    try:
        s.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n"
                  b"Authorization: Bearer " + READ_TOKEN.encode() + b"\r\n\r\n")
        data, deadline = b"", time.monotonic() + 8
        while data.count(b"event: tick") < 2 and time.monotonic() < deadline:
            data += s.recv(65536)
    finally:
        s.close()
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    assert "200 OK" in head and "text/event-stream" in head and "nosniff" in head
    ticks = re.findall(rb"event: tick\r?\ndata: (\{[^\n]*\})", data)
    assert len(ticks) >= 2, data[-500:]
    t = json.loads(ticks[-1])
    assert set(t) >= {"t_us", "connections", "auth", "messages", "sessions_open"}


def test_request_bounds(hostile):
    w = hostile.web
    st, _, _ = w.get("/api/v1/stats", headers={"X-Big": "a" * 9000})
    assert st in (400, 413, 431), st
    st, _, _ = w.req("POST", "/api/v1/actions/x", body=b"a" * 20000)
    assert st == 413, st
    auth = b"Authorization: Bearer " + READ_TOKEN.encode() + b"\r\n"
    st, _, _ = w.get("/api/v1/" + "a" * 2000)
    assert st in (400, 404, 414), st
    # Clients that leave: mid-request, right after a request whose job is running, in
    # the middle of a stream.  The daemon keeps serving (and its sanitizers stay quiet:
    # checked at teardown).
    for i in range(40):
        c = socket.create_connection(("127.0.0.1", hostile.port_web), timeout=5)
        if i % 4 == 0:
            c.sendall(b"GET /api/v1/sessions?limit=1000 HTT")
        elif i % 4 == 1:
            c.sendall(b"GET /api/v1/sessions?limit=1000 HTTP/1.1\r\nHost: x\r\n" + auth + b"\r\n")
        elif i % 4 == 2:
            c.sendall(b"GET /api/v1/messages/" + hostile.qids[-1].encode() + b"/raw HTTP/1.1\r\n"
                      + auth + b"\r\n")
        else:
            c.sendall(b"GET /api/v1/stream HTTP/1.1\r\n" + auth + b"\r\n")
            c.recv(100)
        c.close()
    assert w.json("/api/v1/whoami")["role"] == "read"


def test_connection_cap(make_daemon):
    """At web_max_connections the server stops accepting; a request waits (in the
    kernel's backlog) until idle connections time out, then it is served."""
    d = make_daemon(web_max_connections=2, web_timeout="2s")
    idle = [socket.create_connection(("127.0.0.1", d.port_web)) for _ in range(2)]
    time.sleep(0.3)
    try:
        t0 = time.monotonic()
        s = socket.create_connection(("127.0.0.1", d.port_web), timeout=15)
        s.sendall(b"GET /api/v1/whoami HTTP/1.0\r\n\r\n")
        s.settimeout(0.8)
        with pytest.raises(socket.timeout):
            s.recv(100)  # not served while two connections hold the cap
        s.settimeout(15)
        reply = s.recv(100)
        waited = time.monotonic() - t0
        assert reply.startswith(b"HTTP/1.0 200"), reply
        assert waited >= 1.0, waited
        s.close()
    finally:
        for c in idle:
            c.close()


# --------------------------------------------------------------------------- browser

class CDP:
    """The Chrome DevTools protocol over a WebSocket (python3-websocket).  Frames in a
    process of their own (the sandboxed message HTML) are attached automatically
    (flat sessions): their events land in events too, with a sessionId."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n = 0
        self.events = []

    def _event(self, msg):
        if msg.get("method") == "Target.attachedToTarget":
            sid = msg["params"]["sessionId"]
            for m in ("Runtime.enable", "Log.enable", "Network.enable",
                      "Runtime.runIfWaitingForDebugger"):
                self.n += 1
                self.ws.send(json.dumps({"id": self.n, "method": m, "params": {},
                                         "sessionId": sid}))
        self.events.append(msg)

    def send(self, method, **params):
        self.n += 1
        my = self.n
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my and "sessionId" not in msg:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self._event(msg)

    def pump(self, seconds):
        """Collect events for a while."""
        end = time.monotonic() + seconds
        self.ws.settimeout(0.2)
        while time.monotonic() < end:
            try:
                msg = json.loads(self.ws.recv())
            except Exception:
                continue
            if "method" in msg:
                self._event(msg)
        self.ws.settimeout(30)

    def eval(self, expr):
        r = self.send("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    def close(self):
        self.ws.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    exe = shutil.which("chromium")
    if not exe:
        pytest.fail("chromium (Debian's) is not installed: scripts/install-deps.sh test")
    prof = str(tmp_path_factory.mktemp("chromium-profile"))
    args = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-extensions", "--disable-default-apps",
            "--no-default-browser-check", "--metrics-recording-only",
            "--disable-domain-reliability", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--user-data-dir={prof}", "--remote-debugging-port=0", "--window-size=1280,900",
            "about:blank"]
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    port_file = os.path.join(prof, "DevToolsActivePort")
    deadline = time.monotonic() + 30
    line = ""
    while time.monotonic() < deadline:  # chromium writes the file in more than one step
        try:
            with open(port_file) as f:
                line = f.readline().strip()
        except OSError:
            pass
        if line.isdigit():
            break
        time.sleep(0.1)
    try:
        port = int(line)
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("PUT", "/json/new?about:blank")
        target = json.loads(c.getresponse().read())
        cdp = CDP(target["webSocketDebuggerUrl"])
        for dom in ("Page", "Runtime", "Log", "Network"):
            cdp.send(dom + ".enable")
        cdp.send("Target.setAutoAttach", autoAttach=True, waitForDebuggerOnStart=False,
                 flatten=True)
        yield cdp
        cdp.close()
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


PAGES = ["overview", "attackers", "credentials", "messages", "links", "campaigns", "sessions",
         "decisions", "reports", "indicators"]


def _framed(text_or_url):
    """A message from (or about) the sandboxed HTML frame: its refusals are expected."""
    return bool(re.search(r"/api/v1/messages/[^/ ]+/html|sandboxed|allow-scripts", text_or_url))


def _problems(cdp, origin):
    out = []
    # requests the browser refused before they left (the frame's CSP)
    blocked = {(e.get("sessionId"), e["params"]["requestId"]) for e in cdp.events
               if e["method"] == "Network.loadingFailed" and e["params"].get("blockedReason")}
    for e in cdp.events:
        m, p = e["method"], e.get("params", {})
        if m == "Log.entryAdded" and _framed(p["entry"].get("url", "") + " " +
                                             p["entry"].get("text", "")):
            continue  # the frame's CSP and sandbox refusing the payloads: checked apart
        if m == "Network.requestWillBeSent" and (e.get("sessionId"), p["requestId"]) in blocked:
            continue
        if m == "Runtime.exceptionThrown":
            out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:400])
        elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning", "assert"):
            out.append("console: " + json.dumps(p.get("args"))[:400])
        elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
            out.append("log: " + p["entry"].get("text", "")[:400] + " " + p["entry"].get("url", ""))
        elif m == "Network.requestWillBeSent":
            url = p["request"]["url"]
            if not (url.startswith(origin + "/") or url.startswith("data:") or url == "about:blank"):
                out.append("request off the daemon: " + url)
            if "/pwned" in url:
                out.append("a payload made a request: " + url)
    return out


def _load(cdp, origin, frag, shot):
    cdp.events.clear()
    cdp.send("Page.navigate", url=origin + "/#" + frag)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        cdp.pump(0.3)
        busy = cdp.eval("(() => { const m = document.getElementById('main');"
                        " return !m || /Loading/.test(m.textContent) || m.children.length === 0; })()")
        if busy is False:
            break
    cdp.pump(0.7)  # late requests, errors, payload timers
    shot_data = cdp.send("Page.captureScreenshot", format="png", captureBeyondViewport=False)["data"]
    with open(os.path.join(ARTIFACTS, shot + ".png"), "wb") as f:
        f.write(base64.b64decode(shot_data))


def test_browser_every_page_safe(hostile, browser):
    os.makedirs(ARTIFACTS, exist_ok=True)
    origin = f"http://127.0.0.1:{hostile.port_web}"
    cdp = browser
    # As the admin: the pages show their action buttons too.
    cdp.send("Network.setExtraHTTPHeaders", headers=bearer(ADMIN_TOKEN))
    hostile_qid = hostile.qids[0]
    routes = [(p, "/" + p) for p in PAGES] + [("message", "/message/" + hostile_qid),
                                              ("message-big", "/message/" + hostile.qids[-1])]
    sess = hostile.web.json("/api/v1/sessions?limit=1000")["data"]
    routes.append(("session", "/session/" + sess[-1]["session"]))
    camp = hostile.web.json("/api/v1/campaigns")["data"][0]["id"]
    routes.append(("campaign", "/campaign/" + urllib.parse.quote(camp, safe="")))
    arf = [r for r in hostile.web.json("/api/v1/reports?sink=smtp&limit=1000")["data"]
           if r["kind"] == "arf"]
    routes += [("decisions-all", "/decisions?all=1"), ("reports-held", "/reports?state=held"),
               ("report", f"/report/{arf[0]['id']}"), ("indicators-url", "/indicators?kind=url")]
    for width, tag in ((1280, "desktop"), (390, "phone")):
        cdp.send("Emulation.setDeviceMetricsOverride", width=width, height=900,
                 deviceScaleFactor=1, mobile=width < 600)
        for name, frag in routes:
            _load(cdp, origin, frag, f"{name}-{tag}")
            probs = _problems(cdp, origin)
            assert not probs, f"{name} ({tag}): " + "\n".join(probs)
            assert cdp.eval("typeof window.__pwned") == "undefined", f"payload ran on {name}"
            err = cdp.eval("(document.querySelector('.error') || {}).textContent || ''")
            assert not err, f"{name} ({tag}) shows an error: {err}"
            # No horizontal scrolling of the page itself (tables scroll in their box).
            sw = cdp.eval("document.documentElement.scrollWidth")
            assert sw <= width + 1, f"{name} is {sw}px wide at {width}px"
            # No link the data made: every href is ours.
            hrefs = cdp.eval("[...document.querySelectorAll('[href],[src],[action],[formaction]')]"
                             ".map(e => e.getAttribute('href') || e.getAttribute('src') || '')")
            for h in hrefs:
                assert h.startswith(("#", "/")) and not h.startswith("//"), f"{name}: link {h!r}"
            # Frames: only the sandboxed message HTML.
            frames = cdp.eval("[...document.querySelectorAll('iframe')].map(f => "
                              "[f.getAttribute('sandbox'), f.getAttribute('src')])")
            for sb, src in frames:
                assert sb == "" and re.match(r"^/api/v1/messages/[^/]+/html$", src), (name, sb, src)
    # The payloads are on the page, as text.
    _load(cdp, origin, "/message/" + hostile_qid, "message-text")
    txt = cdp.eval("document.querySelector('pre.source').textContent")
    assert webdata.PAYLOADS[0] in txt and "<html><body onload" in txt
    # ... and the HTML part in its sandboxed frame: loaded, its scripts refused.
    frame = cdp.eval("(() => { const f = document.querySelector('iframe.html-view');"
                     " return f && [f.getAttribute('sandbox'), f.getAttribute('src')]; })()")
    assert frame and frame[0] == "" and frame[1].endswith("/html"), frame
    refused = [e for e in cdp.events if e["method"] == "Log.entryAdded"
               and _framed(e["params"]["entry"].get("url", "") + " " + e["params"]["entry"].get("text", ""))]
    texts = " ".join(e["params"]["entry"]["text"] for e in refused)
    assert "Blocked script execution" in texts and "img-src data:" in texts, texts[:2000]
    # (the tracker image was refused by the frame's CSP before it left: _problems)
    cells = cdp.eval("document.body.innerText")
    assert "\\u{202E}" in cells, "the RTL override is not shown as an escape"
    _load(cdp, origin, "/credentials", "credentials-text")
    assert webdata.PAYLOADS[1] in cdp.eval("document.body.innerText")
    assert cdp.eval("document.querySelectorAll('img,script:not([src]),iframe,svg image').length") == 0
    # Decision reasons, report content and indicators: there, as text.
    _load(cdp, origin, "/decisions", "decisions-text")
    page = cdp.eval("document.body.innerText")
    assert webdata.REASON_CLI in page and webdata.REASON_WEB in page, page[:2000]
    assert cdp.eval("document.querySelectorAll('main button').length") >= 1, "no admin button"
    _load(cdp, origin, f"/report/{arf[0]['id']}", "report-text")
    txt = cdp.eval("document.querySelector('pre.source').textContent")
    assert "multipart/report" in txt and "<script>" in txt, txt[:2000]
    bad = [i for i in hostile.web.json("/api/v1/indicators?limit=1000")["data"]
           if "<" in i["value"] and i["value"].isprintable() and len(i["value"]) < 90]
    assert bad
    _load(cdp, origin, "/indicators?kind=" + bad[0]["kind"], "indicators-text")
    assert bad[0]["value"] in cdp.eval("document.body.innerText"), bad[0]
    assert cdp.eval("document.querySelectorAll('img,script:not([src]),iframe,svg image').length") == 0


def test_browser_keyboard(hostile, browser):
    cdp = browser
    origin = f"http://127.0.0.1:{hostile.port_web}"
    cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
             mobile=False)
    _load(cdp, origin, "/overview", "keyboard-start")

    def key(k, code, vk):
        for t in ("rawKeyDown", "keyUp"):
            cdp.send("Input.dispatchKeyEvent", type=t, key=k, code=code,
                     windowsVirtualKeyCode=vk, nativeVirtualKeyCode=vk)

    # Tab through the page until the Messages link has the focus (the skip link,
    # the navigation, then the page's own links: all reachable without a mouse).
    seen = []
    for _ in range(20):
        key("Tab", "Tab", 9)
        seen.append(cdp.eval("document.activeElement.textContent"))
        if seen[-1] == "Messages":
            break
    assert seen[-1] == "Messages", seen
    assert "Skip to content" in seen or seen.index("Messages") <= 6, seen
    key("Enter", "Enter", 13)
    cdp.send("Input.dispatchKeyEvent", type="char", text="\r")
    cdp.pump(1.0)
    assert cdp.eval("location.hash") == "#/messages"


def test_browser_admin_releases_a_decision(hostile, browser):
    """The dashboard's own button, clicked in the browser: the CSRF token, the JSON body
    and the same-origin checks all pass as the page sends them, and the guard acts."""
    cdp = browser
    origin = f"http://127.0.0.1:{hostile.port_web}"
    cdp.send("Network.setExtraHTTPHeaders", headers=bearer(ADMIN_TOKEN))
    cdp.send("Emulation.setDeviceMetricsOverride", width=1280, height=900, deviceScaleFactor=1,
             mobile=False)
    _load(cdp, origin, "/decisions", "release-before")
    clicked = cdp.eval("(() => { const tr = [...document.querySelectorAll('tbody tr')].find("
                       "(r) => r.cells[0].textContent === " + json.dumps(webdata.WEB_SOURCE) + ");"
                       " const b = tr && tr.querySelector('button'); if (b) b.click(); return !!b; })()")
    assert clicked, "no Release button on the allowed network's row"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cdp.pump(0.3)
        st = [x for x in hostile.web.json("/api/v1/decisions?all=1&limit=1000")["data"]
              if x["source"] == webdata.WEB_SOURCE]
        if st and st[0]["state"] == "removed":
            break
    assert st and st[0]["state"] == "removed", st
    cdp.pump(1.0)
    probs = _problems(cdp, origin)
    assert not probs, probs
    assert "removed by web user boss" in hostile.stderr_text()
    assert cdp.eval("typeof window.__pwned") == "undefined"
