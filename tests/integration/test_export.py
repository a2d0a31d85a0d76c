"""mxbait export: each format read by its real consumer.

One data directory for the module: a real `mxbait serve` (analyzer on) receives failed
logins and one spam message with links through the submission port (swaks), then its
mxbait.db gets synthetic attackers (auth_attempts rows with their /24-/48 prefix, the
way the event writer fills them) so that IPv4, IPv6, prefixes and an allowlisted address
are all present.  Consumers: nft -c/-f and ipset restore inside a network namespace
this test creates, postmap/postmap -q, named-checkzone, rbldnsd answering dig on a
loopback port, JSON Schema (tests/report/) for STIX 2.1 and the MISP feed plus
recomputed SCO ids and MD5s, fail2ban-regex on the daemon's own events.jsonl, and
crowdsec itself (a private config directory, local API on a loopback port, its own SQLite)
tailing a file those events.jsonl lines are appended to, through the exported parsers and
scenario, and importing the exported decisions.
"""

import csv
import hashlib
import io
import ipaddress
import json
import os
import sqlite3
import subprocess
import time
import uuid

import pytest

from conftest import (MXBAIT_BIN, ROOT, Daemon, PASSWORD, USER, psl_with_test_tlds,
                      sanitizer_env, swaks,
                      free_ports)

SCHEMAS = os.path.join(ROOT, "tests", "report")
ALLOWLISTED = "203.0.113.77"
FAILED_LOGINS = 5        # over the CrowdSec scenario's capacity (3): it must fire
BODY = ("Your mailbox is full. Verify now: http://login.bank-phish.test/verify?id=7\n"
        "or https://bit.ly/3aBcD and http://evil-domain.test/x/pay\n")


def prefix_of(ip):
    a = ipaddress.ip_address(ip)
    n = ipaddress.ip_network(f"{ip}/{24 if a.version == 4 else 48}", strict=False)
    return str(n)


def mxbait(*args, check=True, timeout=120):
    r = subprocess.run([MXBAIT_BIN] + list(args), capture_output=True, timeout=timeout,
                       env=sanitizer_env())
    if check:
        assert r.returncode == 0, (args, r.stderr.decode(errors="replace"))
    assert b"Sanitizer" not in r.stderr, r.stderr.decode(errors="replace")
    return r


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("export"))
    d = Daemon(tmp, "test_export", auth_failure_delay="0", allowlist_own_addresses=False,
               allowlist_networks=ALLOWLISTED, analyzer_psl_file=psl_with_test_tlds(tmp))
    d.start()
    try:
        for _ in range(FAILED_LOGINS):
            swaks(d, "--tls", "-a", "LOGIN", "--auth-user", USER,
                  "--auth-password", "wrong", "--quit-after", "AUTH",
                  port=d.port_submission)
        swaks(d, "--tls", "-a", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
              "--from", "billing@bank-phish.test", "--to", "victim@corp.example",
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
        failed = len([e for e in d.events("auth") if not e.get("success")])
    finally:
        problems = d.stop()
    assert not problems, problems
    db = sqlite3.connect(os.path.join(d.data_dir, "mxbait.db"))
    rows = []
    t0 = int(time.time() * 1e6) - 3600 * 1000000
    attackers = {"192.0.2.10": 20, "2001:db8:5::9": 15, ALLOWLISTED: 30}
    attackers.update({f"198.51.100.{i}": 2 for i in range(1, 6)})
    for ip, n in attackers.items():
        for k in range(n):
            rows.append((t0 + k, f"x{ip}", ip, prefix_of(ip), "smtp", "LOGIN", "admin", 0))
    db.executemany("INSERT INTO auth_attempts(ts_us, session, src_ip, prefix, proto,"
                   " mechanism, username, success) VALUES(?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()
    return {"d": d, "dir": d.data_dir, "conf": d.conf_path, "tmp": tmp, "failed": failed}


def export(data, fmt, *extra, name=None):
    out = os.path.join(data["tmp"], name or f"out.{fmt}")
    mxbait("export", "-c", data["conf"], "--format", fmt, "-o", out, *extra)
    return out


def read(p):
    with open(p, encoding="utf-8") as f:
        return f.read()


@pytest.fixture
def netns():
    name = f"mxbt-export-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def test_indicators_cli(data):
    r = mxbait("indicators", "-c", data["conf"], "--json", "-n", "0")
    inds = json.loads(r.stdout)
    by = {(i["kind"], i["value"]): i for i in inds}
    ip = by[("ip", "192.0.2.10")]
    assert ip["guesses"] == 20 and ip["confidence"] == 60 and "guessing" in ip["flags"]
    assert by[("ip", ALLOWLISTED)]["allowlisted"] is True
    lo = by[("ip", "127.0.0.1")]
    assert lo["messages"] == 1 and lo["logins"] >= 1 and lo["guesses"] == FAILED_LOGINS
    assert lo["confidence"] == 95 and "spam" in lo["flags"]
    assert any(e.startswith("msg:") for e in lo["evidence"])
    assert by[("prefix", "198.51.100.0/24")]["members"] == 5
    assert by[("url", "http://login.bank-phish.test/verify?id=7")]["confidence"] == 80
    assert "shortener" in by[("url", "https://bit.ly/3aBcD")]["flags"]
    assert by[("recipient", "victim@corp.example")]["kind"] == "recipient"
    # --kind / --min-confidence filter; the table escapes and prints
    r = mxbait("indicators", "-c", data["conf"], "--json", "--kind", "prefix",
               "--min-confidence", "70")
    assert [i["value"] for i in json.loads(r.stdout)] == ["198.51.100.0/24"]
    r = mxbait("indicators", "-c", data["conf"], "--kind", "nope", check=False)
    assert r.returncode == 2


def test_nft_in_namespace(data, netns):
    p = export(data, "nft")
    text = read(p)
    assert ALLOWLISTED not in text and "198.51.100.3" not in text
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", "-c", "-f", p],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", p], check=True)
    subprocess.run(["ip", "netns", "exec", netns, "nft", "-f", p], check=True)  # reapply
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", "-j", "list", "set", "inet",
                        "mxbait", "blocklist4"], capture_output=True, text=True, check=True)
    elems = json.loads(r.stdout)["nftables"][1]["set"]["elem"]
    flat = json.dumps(elems)
    assert "192.0.2.10" in flat and "198.51.100.0" in flat and "127.0.0.1" in flat
    r = subprocess.run(["ip", "netns", "exec", netns, "nft", "list", "set", "inet",
                        "mxbait", "blocklist6"], capture_output=True, text=True, check=True)
    assert "2001:db8:5::9" in r.stdout


def test_ipset_in_namespace(data, netns):
    p = export(data, "ipset", "--min-confidence", "0")
    with open(p) as f:
        r = subprocess.run(["ip", "netns", "exec", netns, "ipset", "-exist", "restore"],
                           stdin=f, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for name, member, absent in (("mxbait4", "198.51.100.3", ALLOWLISTED),
                                 ("mxbait6", "2001:db8:5::9", None)):
        t = subprocess.run(["ip", "netns", "exec", netns, "ipset", "test", name, member],
                           capture_output=True)
        assert t.returncode == 0, (name, member)
        if absent:
            t = subprocess.run(["ip", "netns", "exec", netns, "ipset", "test", name, absent],
                               capture_output=True)
            assert t.returncode != 0


def test_postfix_maps(data):
    # Debian's postfix is installed with "No configuration": postmap gets an empty
    # main.cf of its own (-c DIR)
    conf = os.path.join(data["tmp"], "postfix-conf")
    os.makedirs(conf, exist_ok=True)
    open(os.path.join(conf, "main.cf"), "w").close()
    p = export(data, "postfix-access", "--min-confidence", "40")
    subprocess.run(["postmap", "-c", conf, f"hash:{p}"], check=True)
    q = lambda k, t: subprocess.run(["postmap", "-c", conf, "-q", k, f"{t}:{p}"],
                                    capture_output=True, text=True)
    r = q("192.0.2.10", "hash")
    assert r.returncode == 0 and r.stdout.startswith("REJECT 5.7.1"), r
    assert q("198.51.100", "hash").returncode == 0          # the /24 as an octet prefix
    assert q("billing@bank-phish.test", "hash").returncode == 0
    assert q(ALLOWLISTED, "hash").returncode == 1
    p = export(data, "postfix-cidr", name="clients.cidr")
    r = q("198.51.100.200", "cidr")
    assert r.returncode == 0 and "REJECT" in r.stdout
    assert q("2001:db8:5::9", "cidr").returncode == 0
    assert q(ALLOWLISTED, "cidr").returncode == 1


def test_rpz_named_checkzone(data):
    p = export(data, "rpz")
    text = read(p)
    assert "bank-phish.test\tCNAME\t.\n*.bank-phish.test\tCNAME\t." in text
    assert "bit.ly" not in text  # a shortener's domain is never listed
    r = subprocess.run(["named-checkzone", "rpz.mail.example.test", p], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK" in r.stdout


def test_rbldnsd_dig(data):
    # rbldnsd refuses to run as root: it reads the zones as nobody from a world-readable
    # directory of its own
    import shutil
    import tempfile
    zones = tempfile.mkdtemp(prefix="mxbt-rbldnsd-")
    os.chmod(zones, 0o755)
    for name, extra in (("ip4set.txt", ()), ("dnset.txt", ("--kind", "domain"))):
        shutil.copy(export(data, "rbldnsd", *extra, name=name), zones)
        os.chmod(os.path.join(zones, name), 0o644)
    port = free_ports(1)[0]
    proc = subprocess.Popen(["rbldnsd", "-n", "-u", "nobody", "-b", f"127.0.0.1/{port}",
                             "-w", zones, "bl.test:ip4set:ip4set.txt",
                             "dbl.test:dnset:dnset.txt"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def dig(name, rtype="A"):
            for _ in range(50):
                r = subprocess.run(["dig", "+short", "+time=1", "+tries=1", "-p", str(port),
                                    "@127.0.0.1", name, rtype], capture_output=True, text=True)
                if "connection refused" not in r.stdout and r.returncode == 0:
                    return r.stdout.strip()
                time.sleep(0.1)
            return None
        assert dig("10.2.0.192.bl.test") == "127.0.0.2"
        assert "Listed by mxbait" in dig("10.2.0.192.bl.test", "TXT")
        assert dig("7.100.51.198.bl.test") == "127.0.0.2"      # inside the /24
        assert dig("2.0.0.127.bl.test") == "127.0.0.2"         # RFC 5782 test point
        assert dig("77.113.0.203.bl.test") == ""               # allowlisted
        assert dig("bank-phish.test.dbl.test") == "127.0.0.2"
        assert dig("www.evil-domain.test.dbl.test") == "127.0.0.2"
        assert dig("test.dbl.test") == "127.0.0.2"
        assert dig("bit.ly.dbl.test") == ""
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(zones, ignore_errors=True)


def jcs_value(v):
    return json.dumps({"value": v}, separators=(",", ":"), ensure_ascii=False)


def test_stix_schema_and_ids(data):
    import jsonschema
    p = export(data, "stix")
    bundle = json.loads(read(p))
    with open(os.path.join(SCHEMAS, "stix21.schema.json")) as f:
        jsonschema.validate(bundle, json.load(f))
    ns = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")
    kinds = {}
    for o in bundle["objects"]:
        kinds[o["type"]] = kinds.get(o["type"], 0) + 1
        if "value" in o:
            assert o["id"] == f"{o['type']}--{uuid.uuid5(ns, jcs_value(o['value']))}"
        if o["type"] == "indicator":
            assert o["modified"] >= o["created"]
        assert ALLOWLISTED not in json.dumps(o)
        assert "victim@corp.example" not in json.dumps(o)
    assert kinds["indicator"] >= 5 and kinds["ipv4-addr"] >= 2 and kinds["url"] >= 1
    assert kinds.get("ipv6-addr") == 1 and kinds["campaign"] == 1
    # the same data gives the same objects (only the bundle id and identity time move)
    again = json.loads(read(export(data, "stix", name="again.json")))
    strip = lambda b: [o for o in b["objects"] if o["type"] != "identity"]
    assert strip(again) == strip(bundle)


def test_misp_feed_schema(data):
    import jsonschema
    out = os.path.join(data["tmp"], "misp")
    mxbait("export", "-c", data["conf"], "--format", "misp-feed", "-o", out)
    with open(os.path.join(SCHEMAS, "misp-feed.schema.json")) as f:
        schema = json.load(f)
    manifest = json.loads(read(os.path.join(out, "manifest.json")))
    jsonschema.validate(manifest, {**schema, "$ref": "#/$defs/manifest"})
    (eid, entry), = manifest.items()
    event = json.loads(read(os.path.join(out, f"{eid}.json")))
    jsonschema.validate(event, {**schema, "$ref": "#/$defs/event"})
    ev = event["Event"]
    for k in ("info", "Orgc", "timestamp", "date", "analysis", "threat_level_id"):
        assert entry[k] == ev[k], k
    lines = read(os.path.join(out, "hashes.csv")).splitlines()
    values = [a["value"] for a in ev["Attribute"]]
    assert sorted(lines) == sorted(f"{hashlib.md5(v.encode()).hexdigest()},{eid}"
                                   for v in values)
    types = {(a["type"], a["value"]) for a in ev["Attribute"]}
    assert ("ip-src", "192.0.2.10") in types and ("ip-src", "198.51.100.0/24") in types
    assert not any(ALLOWLISTED in v or "victim@" in v for v in values)
    # the event uuid is stable across exports
    mxbait("export", "-c", data["conf"], "--format", "misp-feed", "-o", out)
    assert list(json.loads(read(os.path.join(out, "manifest.json")))) == [eid]


def test_csv_plain_abuseipdb(data):
    rows = list(csv.DictReader(io.StringIO(read(export(data, "csv", "--min-confidence",
                                                       "0")), newline="")))
    assert {"kind", "value", "confidence", "evidence"} <= set(rows[0])
    assert all(r["kind"] not in ("recipient", "recipient_domain") for r in rows)
    assert [(r["kind"], r["value"]) for r in rows] == sorted(
        [(r["kind"], r["value"]) for r in rows],
        key=lambda kv: (["ip", "prefix", "url", "domain", "sender", "sender_domain",
                         "attachment", "recipient", "recipient_domain",
                         "campaign"].index(kv[0]), kv[1].encode()))
    plain = read(export(data, "plain", "--kind", "recipient", "--min-confidence", "0"))
    assert "victim@corp.example" in plain   # only when asked for, by kind
    ab = list(csv.DictReader(io.StringIO(read(export(data, "abuseipdb-csv")))))
    assert ab and set(ab[0]) == {"IP", "Categories", "ReportDate", "Comment"}
    row = {r["IP"]: r for r in ab}["192.0.2.10"]
    assert row["Categories"] == "18" and len(row["Comment"]) <= 1024


def test_fail2ban_regex(data):
    out = os.path.join(data["tmp"], "f2b")
    mxbait("export", "-c", data["conf"], "--format", "fail2ban", "-o", out)
    r = subprocess.run(["fail2ban-regex", "-v",
                        os.path.join(data["dir"], "events.jsonl"),
                        os.path.join(out, "mxbait.conf")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    import re
    m = re.search(r"Lines: \d+ lines, \d+ ignored, (\d+) matched", r.stdout)
    assert m, r.stdout
    assert int(m.group(1)) == data["failed"] > 0
    assert "127.0.0.1" in r.stdout
    assert "[mxbait]" in read(os.path.join(out, "mxbait.local"))


def test_crowdsec_files(data):
    import yaml
    out = os.path.join(data["tmp"], "cs")
    mxbait("export", "-c", data["conf"], "--format", "crowdsec", "-o", out)
    raw = yaml.safe_load(read(os.path.join(out, "mxbait-raw.yaml")))
    assert raw["filter"] == "evt.Line.Labels.type == 'mxbait'"
    parser = yaml.safe_load(read(os.path.join(out, "mxbait-logs.yaml")))
    assert parser["onsuccess"] == "next_stage" and parser["nodes"][0]["grok"]["apply_on"]
    scen = yaml.safe_load(read(os.path.join(out, "mxbait-bf.yaml")))
    assert scen["type"] == "leaky" and scen["groupby"] == "evt.Meta.source_ip"
    decisions = json.loads(read(os.path.join(out, "mxbait-decisions.json")))
    vals = {d["value"]: d for d in decisions}
    assert vals["192.0.2.10"]["scope"] == "Ip" and vals["192.0.2.10"]["type"] == "ban"
    assert ALLOWLISTED not in vals
    # the grok pattern matches the daemon's own failed-auth lines (Python re stands in
    # for grok: %{X:name} -> a named group)
    import re
    pat = parser["nodes"][0]["grok"]["pattern"]
    pat = re.sub(r"%\{TIMESTAMP_ISO8601:(\w+)\}", r"(?P<\1>[0-9T:.Z-]+)", pat)
    pat = re.sub(r"%\{WORD:(\w+)\}", r"(?P<\1>\\w+)", pat)
    pat = re.sub(r"%\{IP:(\w+)\}", r"(?P<\1>[0-9a-f.:]+)", pat)
    lines = read(os.path.join(data["dir"], "events.jsonl")).splitlines()
    hits = [l for l in lines if re.search(pat, l)]
    assert len(hits) == data["failed"]


def crowdsec_home(tmp, port):
    """A private CrowdSec configuration: nothing under /etc/crowdsec or /var/lib/crowdsec
    is read or written (the grok patterns are copied; the package's offline hub index in
    /usr/share is only read), no Central API, local API on a
    loopback port, SQLite in tmp; mxbait's parsers next to two of the hub's."""
    import shutil
    cfg = os.path.join(tmp, "cfg")
    for d in ("parsers/s00-raw", "parsers/s01-parse", "parsers/s02-enrich", "scenarios",
              "data"):
        os.makedirs(os.path.join(cfg, d), exist_ok=True)
    shutil.copytree("/etc/crowdsec/patterns", os.path.join(cfg, "patterns"))
    # as Debian enables them: syslog-logs in s00 (so a line must be accepted by some s00
    # parser to go on) and the date parser in s02 (events dated by their "ts")
    hub = "/usr/share/crowdsec/hub/parsers"
    os.symlink(f"{hub}/s00-raw/crowdsecurity/syslog-logs.yaml",
               os.path.join(cfg, "parsers/s00-raw/syslog-logs.yaml"))
    os.symlink(f"{hub}/s02-enrich/crowdsecurity/dateparse-enrich.yaml",
               os.path.join(cfg, "parsers/s02-enrich/dateparse-enrich.yaml"))
    with open(os.path.join(cfg, "profiles.yaml"), "w") as f:
        f.write("name: ip_ban\nfilters:\n - Alert.Remediation == true && "
                "Alert.GetScope() == \"Ip\"\ndecisions:\n - type: ban\n   duration: 4h\n"
                "on_success: break\n")
    with open(os.path.join(cfg, "simulation.yaml"), "w") as f:
        f.write("simulation: off\n")
    with open(os.path.join(cfg, "acquis.yaml"), "w") as f:
        f.write("# replaced by the test\n")
    conf = os.path.join(cfg, "config.yaml")
    with open(conf, "w") as f:
        f.write(f"""common:
  daemonize: false
  log_media: stdout
  log_level: info
  working_dir: {tmp}
config_paths:
  config_dir: {cfg}/
  data_dir: {cfg}/data/
  simulation_path: {cfg}/simulation.yaml
  hub_dir: /usr/share/crowdsec/hub/
  index_path: /usr/share/crowdsec/hub/.index.json
crowdsec_service:
  acquisition_path: {cfg}/acquis.yaml
  parser_routines: 1
db_config:
  type: sqlite
  db_path: {cfg}/data/crowdsec.db
  use_wal: false
api:
  client:
    credentials_path: {cfg}/local_api_credentials.yaml
  server:
    listen_uri: 127.0.0.1:{port}
    profiles_path: {cfg}/profiles.yaml
    trusted_ips: [127.0.0.1]
prometheus:
  enabled: false
""")
    return cfg, conf


def cscli(conf, *args):
    r = subprocess.run(["cscli", "-c", conf] + list(args), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_crowdsec(data):
    """CrowdSec 1.4.6 (Debian) itself, running as it is deployed (agent and local API in
    one process, tailing the file the exported acquisition names): the daemon's real
    events.jsonl lines are appended to that file, the exported s00/s01 parsers parse
    them, the scenario fires once for the FAILED_LOGINS failed logins and the local API
    bans the address; the exported decisions import into the same API."""
    import shutil
    import socket
    import yaml
    out = os.path.join(data["tmp"], "cs-run")
    mxbait("export", "-c", data["conf"], "--format", "crowdsec", "-o", out)
    tmp = os.path.join(data["tmp"], "crowdsec")
    port, = free_ports(1)
    cfg, conf = crowdsec_home(tmp, port)
    shutil.copy(os.path.join(out, "mxbait-raw.yaml"), os.path.join(cfg, "parsers/s00-raw"))
    shutil.copy(os.path.join(out, "mxbait-logs.yaml"), os.path.join(cfg, "parsers/s01-parse"))
    shutil.copy(os.path.join(out, "mxbait-bf.yaml"), os.path.join(cfg, "scenarios"))
    acquis = yaml.safe_load(read(os.path.join(out, "acquis-mxbait.yaml")))
    events = os.path.join(data["dir"], "events.jsonl")
    assert acquis["filenames"] == [events], acquis
    # the exported acquisition, pointed at a file of the test's own (the daemon's file
    # stays as it is for the other tests)
    live = os.path.join(tmp, "events.jsonl")
    open(live, "w").close()
    acquis["filenames"] = [live]
    with open(os.path.join(cfg, "acquis.yaml"), "w") as f:
        yaml.safe_dump(acquis, f)
    cscli(conf, "machines", "add", "mxbait-test", "--auto", "--force")
    logpath = os.path.join(tmp, "crowdsec.log")
    with open(logpath, "w") as logf:
        cs = subprocess.Popen(["crowdsec", "-c", conf], stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "Starting processing data" not in read(logpath):
            assert cs.poll() is None and time.monotonic() < deadline, read(logpath)
            time.sleep(0.3)
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert cs.poll() is None and time.monotonic() < deadline, read(logpath)
                time.sleep(0.3)
        log = read(logpath)
        assert "Loaded 1 parser nodes\" file=" + os.path.join(
            cfg, "parsers/s00-raw/mxbait-raw.yaml") in log, log
        lines = read(events)
        fired = []
        # The file is tailed from its end once crowdsec has opened it: lines appended
        # before that are not read, so append again if nothing came of it (the scenario
        # fires once whatever: its blackhole is 5 minutes).
        for attempt in range(4):
            time.sleep(1 + attempt)
            with open(live, "a") as f:
                f.write(lines)
            until = time.monotonic() + 15
            while time.monotonic() < until and not fired:
                alerts = json.loads(cscli(conf, "alerts", "list", "-o", "json")) or []
                fired = [a for a in alerts if a["scenario"] == "mxbait/mxbait-bf"]
                time.sleep(0.5)
            if fired:
                break
        assert len(fired) == 1, read(logpath)
        a = fired[0]
        assert a["source"]["ip"] == "127.0.0.1" and a["capacity"] == 3
        assert [(d["type"], d["value"]) for d in a["decisions"]] == [("ban", "127.0.0.1")]
        # every event it counted is one of the daemon's failed logins (the lines carry
        # their "ts", which the parser copies)
        # (compared as times: Go's RFC 3339 drops trailing zeros of the fraction)
        from datetime import datetime
        failed_ts = {datetime.fromisoformat(e["ts"]) for e in data["d"].events("auth")
                     if not e.get("success")}
        seen = [{m["key"]: m["value"] for m in e["meta"]} for e in a["events"]]
        assert len(seen) == 4 and all(m["log_type"] == "mxbait_auth_failed" and
                                      datetime.fromisoformat(m["timestamp"]) in failed_ts
                                      for m in seen), (seen, failed_ts)
        # the decisions file: imported, listed by the API, nothing allowlisted
        cscli(conf, "decisions", "import", "-i", os.path.join(out, "mxbait-decisions.json"))
        # (-a: every origin; without it cscli lists only crowdsec's own decisions)
        listed = json.loads(cscli(conf, "decisions", "list", "-a", "-o", "json", "-l", "0"))
        imported = {d["value"]: d for al in listed for d in al["decisions"]
                    if d["origin"] == "cscli-import"}
        assert imported["192.0.2.10"]["type"] == "ban" and imported["192.0.2.10"]["scope"] == "Ip"
        assert imported["2001:db8:5::9"]["scope"] == "Ip"
        assert "127.0.0.1" in imported and ALLOWLISTED not in imported
        assert len(imported) == len(json.loads(read(os.path.join(out, "mxbait-decisions.json"))))
    finally:
        cs.terminate()
        try:
            cs.wait(timeout=30)
        except subprocess.TimeoutExpired:
            cs.kill()
            cs.wait()
