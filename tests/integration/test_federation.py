"""Signed feeds between three sensors on loopback (docs/federation.md).

Three real `mxbait serve` daemons (A, B, C), each with its own data directory and
Ed25519 key (`mxbait keys --generate`), publish feeds through their reporters
(`mxbait report run`) and serve them on their web listeners (/feed/v1/); each adds
the others with `mxbait peers add URL KEY`.  What the sensors saw is written into
their mxbait.db as the event writer would (auth_attempts rows).  Checked:
consensus thresholds (two operators, or one plus local evidence), the boundary (a
peer's entry never re-published in C's own feed, never in a sharing export, present
in C's enforcement export only with --include-peer), a contradicted peer losing
trust, trap credential hashes for a subscriber's Dovecot nonce, and the attacks: a
tampered signature, a replayed manifest and segment, and a rollback (a publisher
restored from an old backup), each refused and logged.  A last test sends real
mail and logins to a sensor and proves that its feed carries no captured password,
message body or victim address.
"""

import base64
import hashlib
import http.server
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import MXBAIT_BIN, PASSWORD, USER, Daemon, free_ports, sanitizer_env, swaks
from guard_env import dovecot_pwhash

X_AB = "198.51.100.7"      # seen by A and B: consensus on C
X_A = "198.51.100.8"       # seen by A only: no consensus on C
X_AC = "198.51.100.9"      # seen by A, and once by C itself: local evidence counts
X_TRUSTED = "198.51.100.60"  # A and B see it; C's trusted_networks has it
ALLOWED = "203.0.113.5"    # C allowlists 203.0.113.0/24; A lists it: a contradiction
NONCE_C = "c-nonce-0123456789"
API_KEY = "k-" + "7" * 20
TRAP_USER, TRAP_PW = "carol", "Carol-Trap-9"   # cracked by A's honeypot, unknown to C


def prefix_of(ip):
    return ".".join(ip.split(".")[:3]) + ".0/24"


def add_attempts(data_dir, ip, n):
    db = sqlite3.connect(os.path.join(data_dir, "mxbait.db"), timeout=30)
    t0 = int(time.time() * 1e6) - 60 * 1000000
    db.executemany("INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto, mechanism,"
                   " username, success) VALUES(?,?,?,?,?,?,?,0)",
                   [(t0 + k, f"s{ip}", ip, prefix_of(ip), "smtp", "LOGIN", "admin")
                    for k in range(n)])
    db.commit()
    db.close()


class Sensor:
    def __init__(self, tmp, label, **conf):
        os.makedirs(tmp, exist_ok=True)
        self.d = Daemon(tmp, label, feed_publish=True, allowlist_own_addresses=False,
                        report_interval="1s", peer_pull_interval="1s",
                        export_min_confidence=50, **conf)
        self.d.start()
        self.dir = self.d.data_dir
        self.url = f"http://127.0.0.1:{self.d.port_web}/feed/v1"
        k = json.loads(self.mx("keys", "--generate", "--json").stdout)
        self.key, self.id = k["public_key"], k["id"]

    def mx(self, *args, check=True):
        r = subprocess.run([MXBAIT_BIN, args[0], "-c", self.d.conf_path] + list(args[1:]),
                           capture_output=True, timeout=180, env=sanitizer_env())
        err = r.stderr.decode(errors="replace")
        assert "Sanitizer" not in err and "runtime error" not in err, err
        if check:
            assert r.returncode == 0, (args, err)
        return r

    def run(self):
        return json.loads(self.mx("report", "run", "--json").stdout)["federation"]

    def sql(self, q, args=()):
        db = sqlite3.connect(f"file:{os.path.join(self.dir, 'intel.db')}?mode=ro", uri=True,
                             timeout=30)
        try:
            return db.execute(q, args).fetchall()
        finally:
            db.close()

    def feed_text(self):
        """Every byte this sensor serves: the manifest and all its segments."""
        seg = os.path.join(self.dir, "feed", "seg")
        out = open(os.path.join(self.dir, "feed", "manifest")).read()
        for n in sorted(os.listdir(seg)):
            out += open(os.path.join(seg, n)).read()
        return out

    def entries(self):
        vals = []
        for line in self.feed_text().splitlines():
            if line.startswith("{\"k\""):
                vals.append(json.loads(line))
        return vals

    def stop(self):
        problems = self.d.stop()
        assert not problems, problems


@pytest.fixture(scope="module")
def trio(tmp_path_factory):
    base = str(tmp_path_factory.mktemp("fed"))
    a = Sensor(os.path.join(base, "a"), "fed-a")
    b = Sensor(os.path.join(base, "b"), "fed-b")
    (dp_port,) = free_ports(1)
    # C protects a real server: its guard answers Dovecot's policy requests
    c = Sensor(os.path.join(base, "c"), "fed-c", allowlist_networks="203.0.113.0/24",
               dovecot_policy_listen=f"127.0.0.1:{dp_port}", dovecot_policy_api_key=API_KEY,
               dovecot_policy_hash_nonce=NONCE_C, dovecot_policy_hash_mech="sha256",
               dovecot_policy_hash_truncate=12, trusted_networks=X_TRUSTED)
    c.dp_port = dp_port
    try:
        add_attempts(a.dir, X_AB, 30)
        add_attempts(a.dir, X_A, 30)
        add_attempts(a.dir, X_AC, 30)
        add_attempts(b.dir, X_AB, 30)
        add_attempts(a.dir, X_TRUSTED, 30)
        add_attempts(b.dir, X_TRUSTED, 30)
        add_attempts(c.dir, X_AC, 1)     # confidence 40: below the floor, local evidence
        # A's honeypot "cracked" alice: a trap credential (as the event writer saves it)
        db = sqlite3.connect(os.path.join(a.dir, "mxbait.db"), timeout=30)
        db.execute("INSERT OR REPLACE INTO accounts(username, password, cracked_us, updated_us)"
                   " VALUES(?, ?, 1, 1)", (TRAP_USER, TRAP_PW))
        db.commit()
        db.close()
        for s in (a, b, c):
            for o in (a, b, c):
                if o is not s:
                    s.mx("peers", "add", o.url, o.key, "--name", o.d.label)
        # C's operator allowed X_AC: what peers agree on must not replace that
        c.mx("decisions", "allow", X_AC)
        assert c.d.wait_events("decision", source=X_AC, action="allow", timeout=15)
        yield a, b, c
    finally:
        for s in (a, b, c):
            s.d.stop()


def test_consensus_and_boundary(trio):
    a, b, c = trio
    # C publishes first (its manifest seals its trap profile to A and B), then A and B
    # pull it and publish, then C pulls them.
    c.run()
    fa, fb = a.run(), b.run()
    assert fa["published"] >= 3 and fb["published"] >= 1
    assert fa["trap_hashes"] >= 2, fa          # alice: "alice" and "alice@example.test"
    fc = c.run()
    assert fc["pulled_segments"] >= 2 and fc["refused"] == 0, fc
    peers = {p["name"]: p for p in json.loads(c.mx("peers", "list", "--json").stdout)}
    assert peers["fed-a"]["status"] == "ok" and peers["fed-b"]["status"] == "ok", peers

    # provenance: who said it, in which segment, when
    prov = c.sql("SELECT peer, seq, received_us, guesses FROM peer_entries"
                 " WHERE kind = 'ip' AND value = ?", (X_AB,))
    assert {p for p, *_ in prov} == {a.id, b.id}
    assert all(seq >= 1 and rec > 0 and g == 30 for _, seq, rec, g in prov)

    rows = {v: (src, flags, ev) for v, src, flags, ev in c.sql(
        "SELECT value, source, flags, evidence FROM indicators WHERE kind = 'ip'")}
    assert rows[X_AB][0] == "peer" and "consensus" in rows[X_AB][1]
    assert f"peer:{a.id}" in rows[X_AB][2] and f"peer:{b.id}" in rows[X_AB][2]
    assert X_A not in rows, "one operator (weight 1) is below peer_consensus 2"
    assert c.sql("SELECT count(*) FROM indicators WHERE kind = 'ip' AND value = ?"
                 " AND source = 'peer'", (X_AC,))[0][0] == 1, "A plus C's own evidence reach 2"

    # the guard (C's one writer of decisions) turns each consensus address into a decision
    dec = c.d.wait_events("decision", source=X_AB, timeout=15)
    assert dec[0]["origin"] == "peers" and dec[0]["reason"] == "peer_consensus", dec
    assert dec[0]["action"] == "divert"
    assert not c.d.events("decision", source=X_A)
    # a local decision in force (the operator's allow of X_AC) is left alone
    deadline = time.monotonic() + 15
    while f"peers' decision about {X_AC} left to the local decision" not in c.d.stderr_text():
        assert time.monotonic() < deadline, c.d.stderr_text()[-2000:]
        time.sleep(0.2)
    assert [e["origin"] for e in c.d.events("decision", source=X_AC)] == ["manual"]
    # peers agreeing on a source C trusts change nothing at C's guard
    assert c.sql("SELECT 1 FROM indicators WHERE value = ? AND source = 'peer'", (X_TRUSTED,))
    assert not c.d.events("decision", source=X_TRUSTED)
    assert "peers' decision about a trusted source" in c.d.stderr_text()

    # never re-published: C's feed carries its own observations only
    c.run()
    served = c.feed_text()
    assert X_AB not in served and X_A not in served
    assert "peer:" not in served
    # never in a sharing export or a report; the operator's own firewall may use it
    csv = c.mx("export", "--format", "csv", "--min-confidence", "0").stdout.decode()
    assert X_AB not in csv
    nft = c.mx("export", "--format", "nft", "--kind", "ip", "--include-peer").stdout.decode()
    assert X_AB in nft and X_A not in nft
    r = c.mx("export", "--format", "stix", "--include-peer", check=False)
    assert r.returncode == 2 and b"sharing format" in r.stderr
    outbox = c.sql("SELECT subject FROM outbox")
    assert all(X_AB not in s for (s,) in outbox)

    # trap hashes for C's guard: under C's own nonce, as C's users log in
    traps = c.sql("SELECT tag, hash FROM peer_traps WHERE peer = ?", (a.id,))
    want = {dovecot_pwhash(NONCE_C, f, TRAP_PW) for f in (TRAP_USER, f"{TRAP_USER}@example.test")}
    assert want <= {h for _, h in traps}, traps
    assert not os.path.exists(os.path.join(c.dir, "federate", "peer-traps")), \
        "one peer of trust 1 does not reach peer_consensus 2"
    assert policy(c, "192.0.2.71", f"{TRAP_USER}@example.test", TRAP_PW) == 0
    assert not c.d.events("decision", source="192.0.2.71")
    c.mx("peers", "add", a.url, a.key, "--trust", "2")
    c.run()
    pt = open(os.path.join(c.dir, "federate", "peer-traps")).read()
    assert len(pt.splitlines()) >= 2 and all(h in pt for _, h in traps)
    assert TRAP_PW not in pt and TRAP_PW not in a.feed_text() and TRAP_USER not in pt
    # the guard reloads the file and convicts the pair's use from any address at once,
    # without ever learning the password
    deadline = time.monotonic() + 15
    while True:
        policy(c, "192.0.2.72", f"{TRAP_USER}@example.test", TRAP_PW)
        dec = c.d.events("decision", source="192.0.2.72")
        if dec:
            break
        assert time.monotonic() < deadline, "the guard did not convict the peer's trap pair"
        time.sleep(0.5)
    assert dec[0]["reason"] == "trap_credential" and dec[0]["action"] == "divert", dec
    # a wrong password for the same user is no trap
    policy(c, "192.0.2.73", f"{TRAP_USER}@example.test", "not-the-trap")
    assert not c.d.events("decision", source="192.0.2.73")
    c.mx("peers", "add", a.url, a.key, "--trust", "1")


def test_contradicted_peer_loses_trust(trio):
    a, b, c = trio
    add_attempts(a.dir, ALLOWED, 40)
    a.run()
    fc = c.run()
    assert fc["contradictions"] == 1, fc
    pa = [p for p in json.loads(c.mx("peers", "list", "--json").stdout) if p["id"] == a.id][0]
    assert pa["contradictions"] == 1 and abs(pa["weight"] - 0.5) < 1e-9, pa
    assert not c.sql("SELECT 1 FROM peer_entries WHERE value = ?", (ALLOWED,))
    # A's half weight and B's 1 no longer reach 2: the consensus entry goes
    assert not c.sql("SELECT 1 FROM indicators WHERE value = ? AND source = 'peer'", (X_AB,))
    log = json.loads(c.mx("peers", "log", "--json").stdout)
    assert any(e["what"] == "contradiction" and e["peer"] == a.id for e in log)
    # the operator vouches again: trust back, consensus back
    c.mx("peers", "add", a.url, a.key, "--trust", "1")
    add_attempts(b.dir, X_AB, 1)   # B republishes X_AB (changed)
    b.run()
    c.run()
    assert c.sql("SELECT 1 FROM indicators WHERE value = ? AND source = 'peer'", (X_AB,))


def policy(s, remote, login, password):
    """A Dovecot auth-policy request (as Dovecot sends it) to sensor s's guard."""
    import urllib.request
    body = json.dumps({"login": login, "pwhash": dovecot_pwhash(NONCE_C, login, password),
                       "remote": remote, "protocol": "imap", "session_id": "t1"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{s.dp_port}/?command=allow", data=body,
                                 headers={"X-API-Key": API_KEY,
                                          "Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())["status"]


class FakePeer:
    """Serves chosen bytes at /feed/v1/... for the attack tests."""

    def __init__(self):
        self.files = {}
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = fake.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.srv.server_address[1]}/feed/v1"
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def mirror(self, s):
        """What sensor s serves now."""
        self.files = {"/feed/v1/manifest": open(os.path.join(s.dir, "feed", "manifest"), "rb").read()}
        seg = os.path.join(s.dir, "feed", "seg")
        for n in os.listdir(seg):
            self.files[f"/feed/v1/seg/{int(n)}"] = open(os.path.join(seg, n), "rb").read()


def test_tampered_replayed_rolled_back(trio, tmp_path):
    a, b, c = trio
    fake = FakePeer()
    try:
        # D: a fourth publisher (A's data restored elsewhere would share A's key; D is
        # A's directory copied, so it signs as A), served through the fake server
        snap = str(tmp_path / "a-backup")
        shutil.copytree(a.dir, snap, ignore=shutil.ignore_patterns("*.sock", "spool"))
        add_attempts(a.dir, "198.51.100.20", 30)
        a.run()
        fake.mirror(a)
        old_manifest = fake.files["/feed/v1/manifest"]
        seen = c.sql("SELECT last_seq FROM peers WHERE id = ?", (a.id,))[0][0]
        c.mx("peers", "add", fake.url, a.key, "--name", "fed-a")    # A, through the fake
        # 1. a tampered segment: one byte of an entry changed
        head = max(int(p.rsplit("/", 1)[1]) for p in fake.files if "/seg/" in p)
        assert head > seen
        good = fake.files[f"/feed/v1/seg/{head}"]
        fake.files[f"/feed/v1/seg/{head}"] = good.replace(b"198.51.100.20", b"198.51.100.21")
        fc = c.run()
        assert fc["refused"] >= 1
        st = c.sql("SELECT status, bad_signatures FROM peers WHERE id = ?", (a.id,))[0]
        assert st[0] == "signature" and st[1] >= 1, st
        assert not c.sql("SELECT 1 FROM peer_entries WHERE value IN (?, ?)",
                         ("198.51.100.20", "198.51.100.21"))
        # 2. a replayed segment: an older one served under the new number
        fake.files[f"/feed/v1/seg/{head}"] = fake.files[f"/feed/v1/seg/{head - 1}"]
        c.run()
        st = c.sql("SELECT status, replays FROM peers WHERE id = ?", (a.id,))[0]
        assert st[0] == "replay" and st[1] >= 1, st
        # the genuine one goes through
        fake.files[f"/feed/v1/seg/{head}"] = good
        c.run()
        assert c.sql("SELECT status, last_seq FROM peers WHERE id = ?", (a.id,))[0] == ("ok", head)
        assert c.sql("SELECT 1 FROM peer_entries WHERE value = ?", ("198.51.100.20",))
        # 3. a replayed manifest (older than the one already seen)
        time.sleep(0.01)
        a.run()
        fake.mirror(a)
        c.run()
        fake.files["/feed/v1/manifest"] = old_manifest
        c.run()
        st = c.sql("SELECT status, replays FROM peers WHERE id = ?", (a.id,))[0]
        assert st[0] == "replay" and st[1] >= 2, st
        # 4. a rollback: A restored from the old backup publishes again, signed with its
        # key, a newer manifest, but its chain no longer continues what C accepted
        back = Sensor.__new__(Sensor)
        back.dir = snap
        back.d = a.d
        with open(a.d.conf_path) as f:
            conf = f.read().replace(a.dir, snap)
        bconf = str(tmp_path / "backup.conf")
        with open(bconf, "w") as f:
            f.write(conf)
        add_attempts(snap, "198.51.100.30", 30)
        r = subprocess.run([MXBAIT_BIN, "report", "run", "-c", bconf, "--json"],
                           capture_output=True, timeout=180, env=sanitizer_env())
        assert r.returncode == 0, r.stderr
        fake.mirror(back)
        c.run()
        st = c.sql("SELECT status, rollbacks FROM peers WHERE id = ?", (a.id,))[0]
        assert st[0] == "rollback" and st[1] >= 1, st
        assert not c.sql("SELECT 1 FROM peer_entries WHERE value = ?", ("198.51.100.30",))
        whats = {e["what"] for e in json.loads(c.mx("peers", "log", "--json", "-n", "100").stdout)}
        assert {"signature", "replay", "rollback"} <= whats, whats
    finally:
        fake.srv.shutdown()
        c.mx("peers", "add", a.url, a.key, "--name", "fed-a", "--reset")


def test_nothing_private_leaves_by_default(tmp_path):
    """Real logins and a real message with a victim recipient: the feed has none of
    the passwords, the body or the victim's address (default configuration)."""
    victim = "victim.person@corp-victim.example"
    body_mark = "BODY-" + os.urandom(6).hex()
    wrong_pw = "Wr0ng-" + os.urandom(4).hex()
    s = Sensor(str(tmp_path / "p"), "fed-privacy", auth_failure_delay="0")
    try:
        for _ in range(3):
            swaks(s.d, "--tls", "-a", "LOGIN", "--auth-user", "bob", "--auth-password", wrong_pw,
                  "--quit-after", "AUTH", port=s.d.port_submission)
        swaks(s.d, "--tls", "-a", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
              "--from", "billing@spam-sender.test", "--to", victim,
              "--header", "Subject: Invoice", "--body",
              f"{body_mark}\nPay at http://pay.phish-domain.example.com/x\n",
              port=s.d.port_submission, check=0)
        adb = os.path.join(s.dir, "analysis.db")
        deadline = time.monotonic() + 60
        while True:
            try:
                with sqlite3.connect(f"file:{adb}?mode=ro", uri=True) as db:
                    if db.execute("SELECT count(*) FROM recipients").fetchone()[0] >= 1:
                        break
            except sqlite3.Error:
                pass
            assert time.monotonic() < deadline, "no analysis"
            time.sleep(0.2)
        f = s.run()
        assert f["published"] >= 2, f
        text = s.feed_text()
        kinds = {e["k"] for e in s.entries()}
        assert "ip" in kinds and "domain" in kinds, kinds
        for secret in (PASSWORD, wrong_pw, body_mark, victim, "corp-victim.example"):
            assert secret not in text, secret
        # what a peer receives is exactly what the web server serves
        import urllib.request
        served = urllib.request.urlopen(s.url + "/manifest", timeout=10).read().decode()
        assert served == open(os.path.join(s.dir, "feed", "manifest")).read()
    finally:
        s.stop()


def test_feed_login(trio, tmp_path):
    """A sensor with web_auth serves /feed/v1/ to a `feed` login only (which may read
    nothing else); a peer pulls with --token-file."""
    import urllib.error
    import urllib.request
    a, b, c = trio
    token = "feed-token-" + os.urandom(8).hex()
    digest = hashlib.sha256(token.encode()).hexdigest()
    s = Sensor(str(tmp_path / "auth"), "fed-auth", web_auth=f"peer:feed:sha256:{digest}")
    try:
        add_attempts(s.dir, "198.51.100.40", 30)
        s.run()

        def get(path, auth=None):
            req = urllib.request.Request(f"http://127.0.0.1:{s.d.port_web}{path}")
            if auth:
                req.add_header("Authorization", f"Bearer {auth}")
            try:
                return urllib.request.urlopen(req, timeout=10).status
            except urllib.error.HTTPError as e:
                return e.code

        assert get("/feed/v1/manifest") == 401
        assert get("/feed/v1/manifest", token) == 200
        assert get("/feed/v1/seg/1", token) == 200
        assert get("/api/v1/stats", token) == 403      # a feed login reads feeds only
        assert get("/feed/v1/seg/0", token) == 404
        assert get("/feed/v1/../mxbait.db", token) == 404
        tf = tmp_path / "token"
        tf.write_text(token + "\n")
        c.mx("peers", "add", s.url, s.key, "--name", "fed-auth", "--token-file", str(tf))
        c.run()
        st = c.sql("SELECT status, last_seq FROM peers WHERE id = ?", (s.id,))[0]
        assert st == ("ok", 1), st
        assert c.sql("SELECT 1 FROM peer_entries WHERE peer = ? AND value = ?",
                     (s.id, "198.51.100.40"))
        c.mx("peers", "remove", "fed-auth")
        assert not c.sql("SELECT 1 FROM peer_entries WHERE peer = ?", (s.id,))
    finally:
        s.stop()


def test_gap(trio):
    """Segments pruned by the publisher before a subscriber read them: a gap, logged and
    counted; the subscriber goes on from the oldest segment still served."""
    a, b, c = trio
    c.run()
    before = c.sql("SELECT last_seq, gaps FROM peers WHERE id = ?", (b.id,))[0]
    for ip in ("198.51.100.81", "198.51.100.82", "198.51.100.83"):
        add_attempts(b.dir, ip, 30)
        b.run()
    # B's segments older than feed_entry_ttl are pruned at its next pass: age them all
    db = sqlite3.connect(os.path.join(b.dir, "intel.db"), timeout=30)
    db.execute("UPDATE feed_segments SET created_us = 0")
    db.commit()
    db.close()
    b.run()
    served = sorted(int(n) for n in os.listdir(os.path.join(b.dir, "feed", "seg")))
    assert len(served) == 1 and served[0] > before[0] + 1, (served, before)
    c.run()
    st = c.sql("SELECT status, gaps, last_seq FROM peers WHERE id = ?", (b.id,))[0]
    assert st[0] == "gap" and st[1] == before[1] + 1 and st[2] == served[0], st
    log = json.loads(c.mx("peers", "log", b.id, "--json").stdout)
    assert log[0]["what"] == "gap" and "pruned" in log[0]["detail"], log
    c.run()   # and then it is simply up to date again
    assert c.sql("SELECT status FROM peers WHERE id = ?", (b.id,))[0][0] == "ok"
