"""End to end in network namespaces this test creates (issue 9): the guard protecting a
real Postfix + Dovecot with nftables.

Three leaf namespaces and a server namespace, named with this process's pid so parallel
runs do not collide, joined by veth pairs carrying documentation addresses only, and no
route anywhere else (nothing leaves the machine):

   attacker 198.51.100.10, 2001:db8:a::10 ─┐
   client   203.0.113.20 ──────────────────┼── server 198.51.100.1 / 203.0.113.1 / 192.0.2.1
   mta      192.0.2.30 ────────────────────┘   real Postfix (25, 587) + Dovecot (143),
                                               mxbait (2525, 2587, 2143) with divert = yes

What it shows, in order: the client logs into its real mailbox; hydra guesses on the real
submission port and is convicted (its address lands in the kernel's divert set); its
next connections reach mxbait instead, with the protected host's banner and certificate,
where hydra's common password "works" and the message it sends is captured, with the
original port recorded (SO_ORIGINAL_DST); the client still reaches its real mailbox; an
MTA wrongly diverted on port 25 delivers to a real user and the mail arrives in the real
Dovecot mailbox (through the hand-off worker); an allowlisted address that misbehaves is
never diverted; a short decision expires in the kernel; a restart of mxbait reconciles
the kernel's sets with the decisions; the nft helper keeps only CAP_NET_ADMIN.  Every
namespace is deleted at the end, whatever happened.  About 40 s.

Dovecot's per-address auth penalty is switched off here (guard_env no_penalty) so hydra
finishes in seconds; the guard's behaviour does not depend on it.
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time

import pytest

from conftest import ALL_EVENT_LINES, MXBAIT_BIN, SANITIZER_RE, sanitizer_env
from guard_env import USERS, RealServers, have_real_servers, wait_port

PID = os.getpid()
NS = {k: f"mxbg{PID}{k[0]}" for k in ("server", "attacker", "client", "mta")}
KEY = "netns-key-" + os.urandom(4).hex()
NONCE = "netns-nonce-" + os.urandom(4).hex()


def sh(*cmd, check=True, timeout=60, ns=None, input=None):
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, timeout=timeout, input=input)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(full)} exited {r.returncode}: "
                             f"{r.stdout.decode(errors='replace')[-2000:]} "
                             f"{r.stderr.decode(errors='replace')[-2000:]}")
    return r


def nft_ready():
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"):
        return "needs root, nftables and iproute2"
    if not have_real_servers():
        return "needs Debian's postfix and dovecot-core"
    ns = f"mxbgprobe{PID}"
    try:
        if subprocess.run(["ip", "netns", "add", ns], capture_output=True).returncode != 0:
            return "cannot create network namespaces here"
        r = subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], capture_output=True,
                           input=b"add table inet probe\nadd chain inet probe p { type nat hook "
                                 b"prerouting priority dstnat; policy accept; }\nadd rule inet "
                                 b"probe p tcp dport 1 redirect to :2\n")
        if r.returncode != 0:
            return "the kernel lacks nftables NAT: " + r.stderr.decode(errors="replace")[:200]
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    return None


SKIP = nft_ready()
pytestmark = pytest.mark.skipif(SKIP is not None, reason=SKIP or "")


def make_namespaces():
    links = {"attacker": ("198.51.100", "2001:db8:a::"), "client": ("203.0.113", None),
             "mta": ("192.0.2", None)}
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
    for leaf, (v4, v6) in links.items():
        a, b = f"s{leaf[0]}{PID}"[:15], f"l{leaf[0]}{PID}"[:15]
        sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
        sh("ip", "link", "set", a, "netns", NS["server"])
        sh("ip", "link", "set", b, "netns", NS[leaf])
        sh("ip", "addr", "add", f"{v4}.1/24", "dev", a, ns=NS["server"])
        host = {"attacker": 10, "client": 20, "mta": 30}[leaf]
        sh("ip", "addr", "add", f"{v4}.{host}/24", "dev", b, ns=NS[leaf])
        if v6:
            sh("ip", "addr", "add", f"{v6}1/64", "dev", a, "nodad", ns=NS["server"])
            sh("ip", "addr", "add", f"{v6}{host}/64", "dev", b, "nodad", ns=NS[leaf])
        sh("ip", "link", "set", a, "up", ns=NS["server"])
        sh("ip", "link", "set", b, "up", ns=NS[leaf])
    # a second attacker address (for the expiry check)
    sh("ip", "addr", "add", "198.51.100.11/24", "dev", f"la{PID}"[:15], ns=NS["attacker"])


def delete_namespaces():
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


PY_SMTP = r"""
import smtplib, ssl, sys, json, hashlib
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
s = smtplib.SMTP(timeout=20, source_address=(src, 0))
code, banner = s.connect(host, port)
s._host = host  # smtplib names the TLS server after the constructor's host
banner = banner.decode()
s.ehlo("attacker.example.net")
s.starttls(context=ctx)
cert = hashlib.sha256(s.sock.getpeercert(binary_form=True)).hexdigest()
code, ehlo = s.ehlo("attacker.example.net")
out = {"banner": banner, "cert": cert, "ehlo": sorted(ehlo.decode().split("\n")[1:])}
if len(sys.argv) > 4:
    user, pw, marker = sys.argv[4], sys.argv[5], sys.argv[6]
    try:
        s.login(user, pw); out["login"] = "ok"
        s.sendmail(user, ["victim@example.net"], "Subject: " + marker + "\r\n\r\nspam\r\n")
        out["sent"] = True
    except smtplib.SMTPException as e:
        out["login"] = str(e)
s.quit()
print(json.dumps(out))
"""

PY_IMAP = r"""
import imaplib, sys
host, user, pw = sys.argv[1], sys.argv[2], sys.argv[3]
m = imaplib.IMAP4(host, 143, timeout=20)
try:
    m.login(user, pw)
except imaplib.IMAP4.error as e:
    print("FAIL", e); sys.exit(0)
m.select("INBOX")
typ, data = m.search(None, "ALL")
msgs = []
for n in data[0].split():
    typ, d = m.fetch(n, "(RFC822)")
    msgs.append(d[0][1].decode(errors="replace"))
print("OK", len(msgs))
for x in msgs:
    print(x.replace("\n", " ")[:2000])
m.logout()
"""


class Env:
    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix="mxbait-netns-")
        os.chmod(self.tmp, 0o711)
        self.mx_dir = os.path.join(self.tmp, "mx")
        os.makedirs(self.mx_dir)
        self.data = os.path.join(self.mx_dir, "data")
        self.conf = os.path.join(self.mx_dir, "mxbait.conf")
        self.proc = None
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")
        sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
           "-out", self.cert, "-days", "2", "-subj", "/CN=mail.example.test")
        os.chmod(self.key, 0o644)  # read by Postfix, Dovecot and mxbait (one persona)
        self.real = RealServers(os.path.join(self.tmp, "real"), listen="0.0.0.0",
                                ports={"imap": 143, "smtp": 25, "submission": 587},
                                policy_url="http://127.0.0.1:9080/", api_key=KEY, nonce=NONCE,
                                postfix_policy="inet:127.0.0.1:9081", netns=NS["server"],
                                tls=(self.cert, self.key), no_penalty=True,
                                mynetworks="127.0.0.0/8")
        os.makedirs(self.real.tmp)
        with open(self.conf, "w") as f:
            f.write(f"""# tests/integration/test_guard_netns.py: the protected host's persona
hostname = mail.example.test
local_domains = example.test
# the real Postfix here answers VRFY (its default): so does its persona
vrfy = yes
smtp_listen = *:2525, [::]:2525
submission_listen = *:2587, [::]:2587
smtps_listen =
imap_listen = *:2143, [::]:2143
imaps_listen =
pop3_listen =
pop3s_listen =
tls_cert_file = {self.cert}
tls_key_file = {self.key}
data_dir = {self.data}
user = nobody
analyzer = no
auth_failure_delay = 100ms
auth_penalty = no
password_list = /usr/share/nmap/nselib/data/passwords.lst
dovecot_policy_listen = 127.0.0.1:9080
dovecot_policy_api_key = {KEY}
dovecot_policy_hash_nonce = {NONCE}
postfix_policy_listen = 127.0.0.1:9081
watch_log_files = {self.real.dovecot_log}, {self.real.maillog}
divert = yes
divert_ports = 25, 587, 143
backend_mta = 127.0.0.1:25
guard_ip_failures = 5
""")
        self.log = os.path.join(self.mx_dir, "mxbait.log")

    def start_mxbait(self):
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(["ip", "netns", "exec", NS["server"], MXBAIT_BIN, "serve",
                                      "-c", self.conf], stdout=self.logf, stderr=self.logf,
                                     stdin=subprocess.DEVNULL, env=sanitizer_env())
        for port in (2525, 2587, 2143, 9080):
            assert wait_port("127.0.0.1", port, netns=NS["server"]), self.mxlog()[-3000:]
        # the guard is ready once the hand-off worker is announced
        deadline = time.monotonic() + 10
        while "guard ready" not in self.mxlog() and time.monotonic() < deadline:
            time.sleep(0.1)

    def stop_mxbait(self):
        problems = []
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                problems.append("mxbait did not stop within 20 s")
        if self.proc and self.proc.returncode not in (0, None):
            problems.append(f"mxbait exited {self.proc.returncode}")
        self.logf.close()
        m = SANITIZER_RE.search(self.mxlog())
        if m:
            problems.append("sanitizer report: " + self.mxlog()[m.start():m.start() + 3000])
        return problems

    def mxlog(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def events(self, name=None, **match):
        out = []
        try:
            with open(os.path.join(self.data, "events.jsonl"), "rb") as f:
                for line in f:
                    try:
                        ev = json.loads(line)
                    except ValueError:
                        continue
                    if name and ev.get("event") != name:
                        continue
                    if all(ev.get(k) == v for k, v in match.items()):
                        out.append(ev)
        except FileNotFoundError:
            pass
        return out

    def wait(self, name, count=1, timeout=15, **match):
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events(name, **match)
            if len(evs) >= count or time.monotonic() > deadline:
                return evs
            time.sleep(0.1)

    def cli(self, *args):
        return sh(MXBAIT_BIN, *args[:1], "-d", self.data, *args[1:], ns=NS["server"])

    def set_elements(self, set_name):
        r = sh("nft", "-j", "list", "set", "inet", "mxbait", set_name, ns=NS["server"])
        out = []
        for item in json.loads(r.stdout)["nftables"]:
            for e in (item.get("set") or {}).get("elem", []) or []:
                v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
                if isinstance(v, dict) and "prefix" in v:
                    v = f"{v['prefix']['addr']}/{v['prefix']['len']}"
                out.append(v)
        return out

    def smtp(self, ns, host, port, src, *auth):
        r = sh("/usr/bin/python3", "-c", PY_SMTP, host, str(port), src, *auth, ns=NS[ns], timeout=60)
        return json.loads(r.stdout)

    def imap(self, ns, host, user, pw):
        return sh("/usr/bin/python3", "-c", PY_IMAP, host, user, pw, ns=NS[ns]).stdout.decode()


def test_no_enforcement_no_firewall():
    """The guard without divert (policy servers, log watch) changes no firewall: the
    namespace's ruleset is as empty after mxbait ran as before."""
    ns = f"mxbg{PID}n"
    tmp = tempfile.mkdtemp(prefix="mxbait-nofw-")
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    sh("ip", "netns", "add", ns)
    proc = None
    try:
        sh("ip", "link", "set", "lo", "up", ns=ns)
        assert sh("nft", "list", "ruleset", ns=ns).stdout.strip() == b""
        conf = os.path.join(tmp, "mxbait.conf")
        with open(conf, "w") as f:
            f.write(f"smtp_listen = 127.0.0.1:2525\nsubmission_listen =\nsmtps_listen =\n"
                    f"imap_listen =\nimaps_listen =\npop3_listen =\npop3s_listen =\n"
                    f"data_dir = {tmp}/data\nanalyzer = no\n"
                    f"dovecot_policy_listen = 127.0.0.1:9080\ndovecot_policy_api_key = k\n"
                    f"dovecot_policy_hash_nonce = n\nwatch_log_files = {tmp}/mail.log\n")
        log = open(os.path.join(tmp, "log"), "wb")
        proc = subprocess.Popen(["ip", "netns", "exec", ns, MXBAIT_BIN, "serve", "-c", conf],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                env=sanitizer_env())
        deadline = time.monotonic() + 30
        while b"guard ready" not in open(os.path.join(tmp, "log"), "rb").read():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        assert sh("nft", "list", "ruleset", ns=ns).stdout.strip() == b""
        proc.terminate()
        assert proc.wait(20) == 0
        log.close()
        assert not SANITIZER_RE.search(open(os.path.join(tmp, "log"), errors="replace").read())
        assert sh("nft", "list", "ruleset", ns=ns).stdout.strip() == b""
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def env():
    delete_namespaces()
    make_namespaces()
    e = Env()
    try:
        t0 = time.monotonic()
        e.start_mxbait()
        t1 = time.monotonic()
        e.real.start()
        print(f"mxbait started in {t1 - t0:.1f}s, Postfix and Dovecot in {time.monotonic() - t1:.1f}s")
        yield e
    finally:
        e.real.stop()
        problems = e.stop_mxbait() if e.proc else []
        try:
            with open(os.path.join(e.data, "events.jsonl"), "rb") as f:
                ALL_EVENT_LINES.extend(("netns", l) for l in f.read().split(b"\n") if l.strip())
        except OSError:
            pass
        delete_namespaces()
        if not problems:
            shutil.rmtree(e.tmp, ignore_errors=True)
    assert not problems, problems


def test_end_to_end(env):
    e = env
    # the nft helper: only CAP_NET_ADMIN, as the unprivileged user
    helper = re.search(r"nft helper started \(pid (\d+)\)", e.mxlog())
    assert helper, e.mxlog()[-2000:]
    with open(f"/proc/{helper.group(1)}/status") as f:
        st = f.read()
    assert re.search(r"CapEff:\s+0000000000001000", st), st
    assert re.search(r"CapBnd:\s+0000000000001000", st), st
    assert re.search(r"Uid:\s+65534\s", st), st

    # 1. the real server, seen by everyone first
    real = e.smtp("attacker", "198.51.100.1", 587, "198.51.100.10")
    assert real["banner"].startswith("mail.example.test ESMTP Postfix"), real
    assert "OK 0" in e.imap("client", "203.0.113.1", "alice@example.test",
                            USERS["alice@example.test"])

    # 2. hydra guesses on the real submission port and is convicted
    words = os.path.join(e.tmp, "words.txt")
    with open(words, "w") as f:
        f.write("\n".join([f"zq7-unlisted-{c}" for c in "abcdefg"] + ["password"]) + "\n")
    sh("hydra", "-l", "sales@example.test", "-P", words, "-t", "1", "-I", "-s", "587",
       "-m", "TLS", "198.51.100.1", "smtp", ns=NS["attacker"], check=False, timeout=120)
    dec = e.wait("decision", src_ip="198.51.100.10", action="divert")
    assert dec, e.events("guard_auth")[-5:]
    assert "198.51.100.10" in e.set_elements("divert4")

    # 3. its next connections land in mxbait, wearing the protected host's persona
    hp = e.smtp("attacker", "198.51.100.1", 587, "198.51.100.10")
    assert hp["banner"] == real["banner"] and hp["cert"] == real["cert"], (hp, real)
    assert hp["ehlo"] == real["ehlo"], " | ".join(hp["ehlo"]) + " VS " + " | ".join(real["ehlo"])
    conn = e.wait("connect", src_ip="198.51.100.10", orig_dst_port=587)
    assert conn and conn[0]["dst_port"] == 2587 and conn[0]["orig_dst_ip"] == "198.51.100.1"
    # hydra again: its common password "works" now (the honeypot's terms)
    r = sh("hydra", "-l", "sales", "-P", words, "-t", "1", "-I", "-f", "-s", "587", "-m",
           "TLS", "198.51.100.1", "smtp", ns=NS["attacker"], check=False, timeout=120)
    assert "password: password" in r.stdout.decode(), r.stdout.decode()[-2000:]
    marker = "netns-spam-" + os.urandom(4).hex()
    sent = e.smtp("attacker", "198.51.100.1", 587, "198.51.100.10", "sales", "password", marker)
    assert sent.get("login") == "ok" and sent.get("sent"), sent
    msg = e.wait("message", src_ip="198.51.100.10")
    assert msg and msg[0]["recipients"] == ["victim@example.net"], msg
    spooled = os.listdir(os.path.join(e.data, "spool", "new"))
    assert any(marker.encode() in open(os.path.join(e.data, "spool", "new", n), "rb").read()
               for n in spooled)
    # ... and an IPv6 attacker decided about is diverted too
    e.cli("decisions", "add", "2001:db8:a::10")
    deadline = time.monotonic() + 5
    while "2001:db8:a::10" not in e.set_elements("divert6") and time.monotonic() < deadline:
        time.sleep(0.2)
    e.smtp("attacker", "2001:db8:a::1", 587, "2001:db8:a::10")
    assert e.wait("connect", src_ip="2001:db8:a::10", orig_dst_port=587)

    # 4. the legitimate client keeps its real mailbox throughout
    assert "OK" in e.imap("client", "203.0.113.1", "alice@example.test",
                          USERS["alice@example.test"])
    assert not e.events("connect", src_ip="203.0.113.20")

    # 5. an MTA wrongly diverted on port 25: its mail for a real user arrives
    e.cli("decisions", "add", "192.0.2.30")
    deadline = time.monotonic() + 5
    while "192.0.2.30" not in e.set_elements("divert4") and time.monotonic() < deadline:
        time.sleep(0.2)
    hmark = "netns-handoff-" + os.urandom(4).hex()
    sh("swaks", "--server", "192.0.2.1:25", "--from", "news@partner.example", "--to",
       "bob@example.test", "--helo", "mx.partner.example",
       "--header", f"Subject: {hmark}", "--timeout", "20", ns=NS["mta"])
    assert e.wait("connect", src_ip="192.0.2.30", orig_dst_port=25)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        box = e.imap("client", "203.0.113.1", "bob@example.test", USERS["bob@example.test"])
        if hmark in box:
            break
        time.sleep(0.5)
    assert hmark in box, (box[-2000:], e.mxlog()[-3000:])
    assert box.count(hmark) == 1  # exactly once
    # what came in on another port (the attacker's spam) never left
    assert "victim@example.net" not in e.real.read(e.real.maillog)

    # 6. an allowlisted address that misbehaves is never diverted
    e.cli("decisions", "allow", "203.0.113.20")
    e.wait("decision", src_ip="203.0.113.20", action="allow")
    for i in range(8):
        e.imap("client", "203.0.113.1", f"nosuch{i}@example.test", "x")
    e.wait("guard_auth", count=8, src_ip="203.0.113.20", stage="report")
    assert not e.events("decision", src_ip="203.0.113.20", action="divert")
    assert "203.0.113.20" not in e.set_elements("divert4")
    assert "OK" in e.imap("client", "203.0.113.1", "alice@example.test",
                          USERS["alice@example.test"])

    # 7. a decision expires in the kernel by itself
    e.cli("decisions", "add", "198.51.100.11", "--for", "3s")
    deadline = time.monotonic() + 5
    while "198.51.100.11" not in e.set_elements("divert4") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "198.51.100.11" in e.set_elements("divert4")
    time.sleep(4)
    assert "198.51.100.11" not in e.set_elements("divert4")
    assert e.smtp("attacker", "198.51.100.1", 587, "198.51.100.11")["banner"] == real["banner"]
    assert not e.events("connect", src_ip="198.51.100.11")  # the real server answered

    # 8. a restart reconciles: a stale element goes, a missing one comes back
    assert not e.stop_mxbait()
    sh("nft", "add", "element", "inet", "mxbait", "divert4", "{ 198.51.100.99 timeout 1h }",
       ns=NS["server"])
    sh("nft", "delete", "element", "inet", "mxbait", "divert4", "{ 198.51.100.10 }",
       ns=NS["server"])
    e.start_mxbait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        els = e.set_elements("divert4")
        if "198.51.100.10" in els and "198.51.100.99" not in els:
            break
        time.sleep(0.2)
    assert "198.51.100.10" in els and "198.51.100.99" not in els, els
    assert "reconciled" in e.mxlog()

    # 9. a prefix decision takes the place of the addresses inside it in the kernel's
    # interval set (nftables refuses overlapping elements)
    e.cli("decisions", "add", "198.51.100.0/24")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        els = e.set_elements("divert4")
        if "198.51.100.0/24" in els and "198.51.100.10" not in els:
            break
        time.sleep(0.2)
    assert "198.51.100.0/24" in els and "198.51.100.10" not in els, els
    assert "refused" not in e.mxlog().split("reconciled")[-1], e.mxlog()[-2000:]
    hp = e.smtp("attacker", "198.51.100.1", 587, "198.51.100.11")  # inside the /24
    assert e.wait("connect", src_ip="198.51.100.11", orig_dst_port=587)


# etc/mxbait.service.in's AmbientCapabilities= and CapabilityBoundingSet=
UNIT_CAPS = "+net_bind_service,+setuid,+setgid,+setpcap,+net_admin"
CAP_NET_ADMIN = 1 << 12
LAUNCHER_CAPS = (1 << 6) | (1 << 7) | (1 << 8)  # CAP_SETGID, CAP_SETUID, CAP_SETPCAP


def _caps(pid):
    with open(f"/proc/{pid}/status") as f:
        st = dict(l.split(":", 1) for l in f if ":" in l)
    return {k: int(st[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}, st


def test_unit_style_divert():
    """divert = yes under the packaged service's start: serve started as nobody (no
    `user`) with the unit's capabilities ambient and bounding, the way systemd's User=
    and AmbientCapabilities= start it, in a namespace of its own, with analyzer_user
    set too (its launcher starts after the nft helper).  The nft helper runs with
    CAP_NET_ADMIN alone in every set, the launcher with its three and never
    CAP_NET_ADMIN, serve with nothing in any set once listening; the ruleset is in place
    and a decision lands in the namespace's divert set."""
    import pwd
    ns = f"mxbg{PID}u"
    tmp = tempfile.mkdtemp(prefix="mxbait-unitdiv-")
    os.chmod(tmp, 0o755)
    nobody = pwd.getpwnam("nobody")
    account = "mxbd" + os.urandom(3).hex()
    r = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", account], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    sh("ip", "netns", "add", ns)
    proc = None
    logp = os.path.join(tmp, "log")
    try:
        sh("ip", "link", "set", "lo", "up", ns=ns)
        data = os.path.join(tmp, "data")
        os.makedirs(data, mode=0o700)
        os.chown(data, nobody.pw_uid, nobody.pw_gid)
        conf = os.path.join(tmp, "mxbait.conf")
        with open(conf, "w") as f:
            f.write(f"smtp_listen = 127.0.0.1:25\nsubmission_listen =\nsmtps_listen =\n"
                    f"imap_listen =\nimaps_listen =\npop3_listen =\npop3s_listen =\n"
                    f"data_dir = {data}\nanalyzer = no\nanalyzer_user = {account}\n"
                    f"divert = yes\ndivert_ports = 587:25\n")
        os.chmod(conf, 0o644)
        log = open(logp, "wb")
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "setpriv", f"--reuid={nobody.pw_uid}",
             f"--regid={nobody.pw_gid}", "--clear-groups", f"--inh-caps={UNIT_CAPS}",
             f"--ambient-caps={UNIT_CAPS}", f"--bounding-set=-all,{UNIT_CAPS}",
             "--no-new-privs", MXBAIT_BIN, "serve", "-c", conf],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=sanitizer_env())
        deadline = time.monotonic() + 60
        while b" ready: " not in open(logp, "rb").read():
            assert proc.poll() is None and time.monotonic() < deadline, \
                open(logp, errors="replace").read()[-3000:]
            time.sleep(0.1)
        text = open(logp, errors="replace").read()
        # ip netns exec and setpriv exec: the Popen pid is serve's
        assert b"serve" in open(f"/proc/{proc.pid}/cmdline", "rb").read()
        caps, st = _caps(proc.pid)
        assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
        assert all(v == 0 for v in caps.values()), f"serve {caps}"
        helper = re.search(r"nft helper started \(pid (\d+)\)", text)
        assert helper, text[-3000:]
        caps, st = _caps(helper.group(1))
        assert all(v == CAP_NET_ADMIN for v in caps.values()), f"nft helper {caps}"
        assert st["Uid"].split() == [str(nobody.pw_uid)] * 4, st["Uid"]
        assert st["NoNewPrivs"].strip() == "1", st["NoNewPrivs"]
        kids = open(f"/proc/{proc.pid}/task/{proc.pid}/children").read().split()
        launcher = [k for k in kids if b"--launcher" in open(f"/proc/{k}/cmdline", "rb").read()]
        assert len(launcher) == 1, kids
        caps, _ = _caps(launcher[0])
        assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == LAUNCHER_CAPS, \
            f"launcher {caps}"
        assert caps["CapInh"] == 0 and caps["CapAmb"] == 0, f"launcher {caps}"
        # the ruleset is the helper's work, and a decision reaches the kernel through it
        ruleset = sh("nft", "list", "table", "inet", "mxbait", ns=ns).stdout.decode()
        assert "redirect to" in ruleset, ruleset
        sh(MXBAIT_BIN, "decisions", "-d", data, "add", "198.51.100.77", ns=ns)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ruleset = sh("nft", "list", "table", "inet", "mxbait", ns=ns).stdout.decode()
            if "198.51.100.77" in ruleset:
                break
            time.sleep(0.2)
        assert "198.51.100.77" in ruleset, ruleset
        assert "refused" not in open(logp, errors="replace").read()
        proc.terminate()
        assert proc.wait(20) == 0, open(logp, errors="replace").read()[-3000:]
        log.close()
        assert not SANITIZER_RE.search(open(logp, errors="replace").read())
    finally:
        if proc and proc.poll() is None:
            proc.kill()
            proc.wait()
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        subprocess.run(["userdel", account], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
