"""The web server of `mxbait serve` (src/web/, docs/api.md), against one daemon fed with
hostile data by real SMTP sessions (webdata.py):

- every endpoint's JSON validates against its schema in tests/web/schemas/, and so does
  every example of docs/api.md (so the document cannot drift from the code);
- the API returns exactly what the CLI's --json prints (one serializer);
- cursor pagination walks every row once, in order; bad parameters get 400 and a
  message; unknown paths 404, wrong methods 405;
- the raw message is message/rfc822 with Content-Disposition: attachment, byte-exact;
- every reply carries the security headers; /metrics passes `promtool check metrics`
  and counts what the daemon saw; the live stream sends ticks;
- request bounds (headers, body) and the connection cap;
- a real browser (Debian's chromium, headless, driven over the DevTools protocol) loads
  every page at desktop and phone width: no payload runs (window.__pwned stays unset,
  nothing requests /pwned), no console error, no request leaves the daemon's own
  address, the hostile text is on the page as text, the keyboard reaches the pages.
  Screenshots are kept in build-asan/test-artifacts/web/ (MXBAIT_ARTIFACTS overrides).
"""

import base64
import http.client
import json
import os
import re
import shutil
import socket
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


class Web:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def req(self, method, path, headers=None, body=None, timeout=30):
        c = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
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
    d = Daemon(tmp, "test_web", auth_failure_delay="0s", crack_after_failures="2",
               web_threads=2, geoip_file=geo)
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
    st_api = w.json("/api/v1/stats")
    st_cli = d.cli_json("stats", "-c", d.conf_path)  # -c: the spool budget
    assert st_api == st_cli


def walk(w, path, key):
    seen, cursor, pages = [], None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = path + (sep + "cursor=" + urllib.parse.quote(cursor) if cursor else "")
        page = w.json(url)
        seen += [r[key] for r in page["data"]]
        pages += 1
        cursor = page["next_cursor"]
        if not cursor:
            return seen, pages


def test_cursor_pagination(hostile):
    w = hostile.web
    for base, key in [("/api/v1/sessions", "session"), ("/api/v1/messages", "queue_id"),
                      ("/api/v1/auth-attempts", "id"), ("/api/v1/links", "url"),
                      ("/api/v1/recipients", "addr")]:
        full = [r[key] for r in w.json(base + "?limit=1000")["data"]]
        assert len(full) >= 3, (base, full)
        paged, pages = walk(w, base + "?limit=2", key)
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
    # Anonymous (loopback, no web_auth) has the read role: actions are refused.
    st, _, b = w.req("POST", "/api/v1/actions/allow-ip", body=b"{}")
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
    # Every metric the Grafana dashboard queries is exported.
    with open(os.path.join(ROOT, "contrib", "grafana-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    names = set(re.findall(r"mxbait_\w+", " ".join(exprs)))
    exported = set(re.findall(r"^# TYPE (mxbait_\w+)", text, re.M))
    for n in names:
        base = re.sub(r"_(bucket|sum|count)$", "", n)
        assert n in exported or base in exported, f"grafana queries {n}, /metrics has no such metric"


def test_live_stream_sends_ticks(hostile):
    s = socket.create_connection(("127.0.0.1", hostile.port_web), timeout=10)
    try:
        s.sendall(b"GET /api/v1/stream HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
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
            c.sendall(b"GET /api/v1/sessions?limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        elif i % 4 == 2:
            c.sendall(b"GET /api/v1/messages/" + hostile.qids[-1].encode() + b"/raw HTTP/1.1\r\n\r\n")
        else:
            c.sendall(b"GET /api/v1/stream HTTP/1.1\r\n\r\n")
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
    """The Chrome DevTools protocol over a WebSocket (python3-websocket)."""

    def __init__(self, ws_url):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.n = 0
        self.events = []

    def send(self, method, **params):
        self.n += 1
        my = self.n
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

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
                self.events.append(msg)
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
    while not os.path.exists(port_file) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        with open(port_file) as f:
            port = int(f.readline().strip())
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("PUT", "/json/new?about:blank")
        target = json.loads(c.getresponse().read())
        cdp = CDP(target["webSocketDebuggerUrl"])
        for dom in ("Page", "Runtime", "Log", "Network"):
            cdp.send(dom + ".enable")
        yield cdp
        cdp.close()
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


PAGES = ["overview", "attackers", "credentials", "messages", "links", "campaigns", "sessions"]


def _problems(cdp, origin):
    out = []
    for e in cdp.events:
        m, p = e["method"], e.get("params", {})
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
    hostile_qid = hostile.qids[0]
    routes = [(p, "/" + p) for p in PAGES] + [("message", "/message/" + hostile_qid),
                                              ("message-big", "/message/" + hostile.qids[-1])]
    sess = hostile.web.json("/api/v1/sessions?limit=1000")["data"]
    routes.append(("session", "/session/" + sess[-1]["session"]))
    camp = hostile.web.json("/api/v1/campaigns")["data"][0]["id"]
    routes.append(("campaign", "/campaign/" + urllib.parse.quote(camp, safe="")))
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
    # The payloads are on the page, as text.
    _load(cdp, origin, "/message/" + hostile_qid, "message-text")
    txt = cdp.eval("document.querySelector('pre.source').textContent")
    assert webdata.PAYLOADS[0] in txt and "<html><body onload" in txt
    cells = cdp.eval("document.body.innerText")
    assert "\\u{202E}" in cells, "the RTL override is not shown as an escape"
    _load(cdp, origin, "/credentials", "credentials-text")
    assert webdata.PAYLOADS[1] in cdp.eval("document.body.innerText")
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
