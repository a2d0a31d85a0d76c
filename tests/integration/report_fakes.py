"""Local receivers for the reporter's tests: an SMTP server (aiosmtpd, Debian's
python3-aiosmtpd) and one HTTP server that speaks the documented request/response
shapes of each API the reporter submits to, plus an RDAP server with IANA-bootstrap-style
files.  All on 127.0.0.1, ports chosen by the kernel, stopped by the tests.

HTTP routes (the base URLs the test config points at):
  /abuseipdb/api/v2/report        POST form ip, categories, comment, timestamp; header Key
  /abuseipdb/api/v2/bulk-report   POST multipart "csv" (IP,Categories,ReportDate,Comment)
  /spamhaus/api/v1/submissions/add/{ip,url}   POST JSON; Authorization: Bearer; 208 when known
  /netcraft/api/v3/report/urls    POST JSON {email, urls[{url}]} -> {message, uuid}
  /urlhaus/api/                   POST JSON; Auth-Key; "already_known" when known
  /webhook                        POST JSON; honours Idempotency-Key (a repeat is a no-op)
  /rdap/bootstrap/{ipv4,ipv6,dns}.json, /rdap/ip/ADDR, /rdap/domain/NAME
Behaviour switches (per test): `script[path]` = list of (status, headers, body) answered
first, in order, before the normal answer; `delay` slows every POST, `rdap_delay` every
RDAP lookup.
"""

import email
import email.policy
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Fake:
    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []        # (path, headers dict, body bytes, time)
        self.script = {}          # path -> [(status, headers, body), ...]
        self.known = set()        # spamhaus/urlhaus objects already submitted
        self.webhook_keys = {}    # Idempotency-Key -> body (effective once)
        self.webhook_attempts = 0
        self.delay = 0.0
        self.rdap_ip = {}         # prefix string -> abuse e-mail (ip lookups)
        self.rdap_domain = {}     # domain -> registrar abuse e-mail
        self.abuseipdb_recent = set()
        self.rdap_delay = 0.0     # seconds before an RDAP ip/domain answer
        self.rdap_started = 0     # RDAP ip/domain requests received (before the delay)

    def count(self, prefix):
        with self.lock:
            return len([r for r in self.requests if r[0].startswith(prefix)])


def make_handler(fake, base_url):
    class H(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def answer(self, status, body=b"", headers=None, ctype="application/json"):
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
            elif isinstance(body, str):
                body = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def scripted(self):
            with fake.lock:
                q = fake.script.get(self.path)
                if q:
                    return q.pop(0)
            return None

        def do_GET(self):
            p = self.path
            if p.startswith("/rdap/ip/") or p.startswith("/rdap/domain/"):
                with fake.lock:
                    fake.rdap_started += 1
                if fake.rdap_delay:
                    time.sleep(fake.rdap_delay)
            if p.startswith("/rdap/bootstrap/"):
                name = p.rsplit("/", 1)[1]
                if name == "ipv4.json":
                    services = [[["127.0.0.0/8", "192.0.2.0/24", "198.51.100.0/24", "198.18.0.0/15"],
                                 [base_url + "/rdap/"]]]
                elif name == "ipv6.json":
                    services = [[["2001:db8::/32"], [base_url + "/rdap/"]]]
                else:
                    services = [[["test", "example"], [base_url + "/rdap/"]]]
                return self.answer(200, {"version": "1.0", "publication": "2026-11-01T00:00:00Z",
                                         "services": services})
            if p.startswith("/rdap/ip/"):
                with fake.lock:
                    fake.requests.append((p, dict(self.headers), b"", time.time()))
                ip = p[len("/rdap/ip/"):]
                mail = None
                for pre, m in fake.rdap_ip.items():
                    if ip.startswith(pre):
                        mail = m
                if not mail:
                    return self.answer(404, {"errorCode": 404})
                # the abuse entity nested under the registrant, as RIRs do
                return self.answer(200, {
                    "objectClassName": "ip network", "handle": "NET-TEST",
                    "entities": [{"objectClassName": "entity", "roles": ["registrant"],
                                  "vcardArray": ["vcard", [["version", {}, "text", "4.0"],
                                                           ["fn", {}, "text", "ISP"]]],
                                  "entities": [{"objectClassName": "entity",
                                                "roles": ["abuse"],
                                                "vcardArray": ["vcard", [
                                                    ["version", {}, "text", "4.0"],
                                                    ["email", {}, "text", mail]]]}]}]},
                    ctype="application/rdap+json")
            if p.startswith("/rdap/domain/"):
                with fake.lock:
                    fake.requests.append((p, dict(self.headers), b"", time.time()))
                d = p[len("/rdap/domain/"):]
                mail = fake.rdap_domain.get(d)
                if not mail:
                    return self.answer(404, {"errorCode": 404})
                return self.answer(200, {
                    "objectClassName": "domain", "ldhName": d,
                    "entities": [{"objectClassName": "entity", "roles": ["registrar"],
                                  "entities": [{"roles": ["abuse"], "vcardArray": [
                                      "vcard", [["version", {}, "text", "4.0"],
                                                ["tel", {}, "uri", "tel:+1.5555555555"],
                                                ["email", {}, "text", mail]]]}]}]},
                    ctype="application/rdap+json")
            return self.answer(404, {"error": "not found"})

        def do_POST(self):
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            p = self.path
            with fake.lock:
                fake.requests.append((p, dict(self.headers), body, time.time()))
            if fake.delay:
                time.sleep(fake.delay)
            s = self.scripted()
            if s:
                return self.answer(s[0], s[2], s[1])
            if p == "/abuseipdb/api/v2/report":
                if self.headers.get("Key") != "abuseipdb-test-key":
                    return self.answer(401, {"errors": [{"detail": "Authentication failed"}]})
                form = dict(kv.split("=", 1) for kv in body.decode().split("&"))
                ip = form["ip"].replace("%3A", ":")
                with fake.lock:
                    if ip in fake.abuseipdb_recent:
                        return self.answer(429, {"errors": [{
                            "detail": f"You can only report the same IP address (`{ip}`) once "
                                      "in 15 minutes.", "status": 429}]})
                    fake.abuseipdb_recent.add(ip)
                return self.answer(200, {"data": {"ipAddress": ip, "abuseConfidenceScore": 52}})
            if p == "/abuseipdb/api/v2/bulk-report":
                msg = email.message_from_bytes(
                    b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n" + body,
                    policy=email.policy.default)
                csvpart = [part for part in msg.iter_parts()
                           if part.get_param("name", header="content-disposition") == "csv"][0]
                lines = csvpart.get_content().splitlines()
                assert lines[0] == "IP,Categories,ReportDate,Comment", lines[0]
                invalid = [{"error": "Duplicate IP", "input": l.split(",")[0], "rowNumber": i}
                           for i, l in enumerate(lines[1:], 1) if l.startswith("2001:db8:5::9,")]
                return self.answer(200, {"data": {"savedReports": len(lines) - 1 - len(invalid),
                                                  "invalidReports": invalid}})
            if p.startswith("/spamhaus/api/v1/submissions/add/"):
                if self.headers.get("Authorization") != "Bearer spamhaus-test-key":
                    return self.answer(401, {"message": "unauthorized"})
                obj = json.loads(body)["source"]["object"]
                with fake.lock:
                    if obj in fake.known:
                        return self.answer(208, {"status": 208, "message": "already reported"})
                    fake.known.add(obj)
                return self.answer(200, {"status": 200, "id": str(uuid.uuid4())})
            if p == "/netcraft/api/v3/report/urls":
                j = json.loads(body)
                assert j["email"] and j["urls"][0]["url"]
                return self.answer(200, {"message": "Successfully reported", "uuid": uuid.uuid4().hex})
            if p == "/urlhaus/api/":
                if self.headers.get("Auth-Key") != "urlhaus-test-key":
                    return self.answer(401, "unauthorized", ctype="text/plain")
                url = json.loads(body)["submission"][0]["url"]
                with fake.lock:
                    if url in fake.known:
                        return self.answer(200, "already_known", ctype="text/plain")
                    fake.known.add(url)
                return self.answer(200, "inserted", ctype="text/plain")
            if p == "/webhook":
                key = self.headers.get("Idempotency-Key")
                with fake.lock:
                    fake.webhook_attempts += 1
                    if key and key not in fake.webhook_keys:
                        fake.webhook_keys[key] = body
                return self.answer(200, {"ok": True})
            return self.answer(404, {"error": "no such route"})
    return H


class HTTPFake:
    def __init__(self, ssl_context=None):
        self.fake = Fake()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), None)
        self.port = self.server.server_address[1]
        scheme = "https" if ssl_context else "http"
        self.base = f"{scheme}://127.0.0.1:{self.port}"
        self.server.RequestHandlerClass = make_handler(self.fake, self.base)
        if ssl_context:
            self.server.socket = ssl_context.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SMTPFake:
    """aiosmtpd on a loopback port; keeps every message it accepted."""

    def __init__(self, delay=0.0):
        from aiosmtpd.controller import Controller

        outer = self
        self.messages = []   # (mail_from, rcpt_tos, bytes)
        self.delay = delay

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                if outer.delay:
                    time.sleep(outer.delay)
                outer.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                       envelope.original_content or envelope.content))
                return "250 2.0.0 Ok: queued"

        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        self.url = f"smtp://127.0.0.1:{self.port}"

    def close(self):
        self.controller.stop()
