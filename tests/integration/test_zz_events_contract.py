"""The events contract: every line of events.jsonl that the daemons of this whole run
wrote (collected at each daemon's teardown; this file runs last) is valid JSON, carries
the common fields, and its event id and fields are exactly those of docs/events.md,
with the documented types (and, where the doc lists the values, one of them).

Run alone, it first drives a daemon through a varied session so it still has lines."""

import json
import os
import re
import smtplib
import socket

import pytest

from conftest import ALL_EVENT_LINES, DOMAIN, PASSWORD, ROOT, USER, Raw, marker, swaks

DOC = os.path.join(ROOT, "docs", "events.md")
TS_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
SESSION_RE = re.compile(r"^[0-9a-f]{16}$")
SHA_RE = re.compile(r"^[0-9a-f]{64}$")
# An event without a client session (docs/events.md, common fields).
SESSIONLESS = {"message_recovered"}


def value_max(path=DOC):
    """The bound of "Long values": a string longer than this many bytes is cut."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"## Long values.*?\*\*(\d+)\*\*", text, re.S)
    assert m, "docs/events.md has no 'Long values' bound"
    return int(m.group(1))


def parse_doc(path=DOC):
    """{event: {field: (types, allowed values or None)}} and the common fields."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    common, events = {}, {}
    current = None
    for line in text.splitlines():
        h = re.match(r"^## Common fields", line)
        if h:
            current = common
            continue
        h = re.match(r"^### `([a-z_]+)`", line)
        if h:
            current = events.setdefault(h.group(1), {})
            continue
        if line.startswith("## "):
            current = None
            continue
        row = re.match(r"^\|\s*`([a-z_0-9]+)`\s*\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|\s*$",
                       line.replace("\\|", "\x00"))
        if row and current is not None:
            name = row.group(1)
            types = tuple(t.strip() for t in row.group(2).replace("\x00", "|").split("|"))
            meaning = row.group(3).replace("\x00", "|")
            values = None
            ticks = re.findall(r"`([^`]*)`", meaning)
            # A meaning listing two or more literal values (and no "e.g.") is an enum.
            if len(ticks) >= 2 and "e.g." not in meaning and types == ("string",):
                values = set(ticks)
            current[name] = (types, values)
    return common, events


def type_ok(v, types):
    for t in types:
        if t == "string" and isinstance(v, str):
            return True
        if t == "int" and isinstance(v, int) and not isinstance(v, bool):
            return True
        if t == "bool" and isinstance(v, bool):
            return True
        if t == "null" and v is None:
            return True
        if t == "string[]" and isinstance(v, list) and all(isinstance(x, str) for x in v):
            return True
    return False


def check_line(raw, common, events):
    """Problems with one events.jsonl line (empty list when it is fine)."""
    try:
        ev = json.loads(raw)
    except ValueError as e:
        return [f"not JSON ({e})"]
    if not isinstance(ev, dict):
        return ["not a JSON object"]
    probs = []
    name = ev.get("event")
    if name not in events:
        return [f"undocumented event id {name!r}"]
    spec = dict(common)
    spec.update(events[name])
    for k in spec:
        if k not in ev:
            probs.append(f"{name}: missing field {k!r}")
    cut_max = value_max()
    for k, v in ev.items():
        if k not in spec:
            # A cut string value: <field>_length and <field>_sha256 (docs "Long values").
            base, _, suffix = k.rpartition("_")
            if suffix in ("length", "sha256") and base in spec and spec[base][0][0] == "string":
                other = f"{base}_sha256" if suffix == "length" else f"{base}_length"
                if other not in ev:
                    probs.append(f"{name}: {k} without {other}")
                elif suffix == "length" and not (isinstance(v, int) and v > cut_max):
                    probs.append(f"{name}.{k}: {v!r} is not a length above {cut_max}")
                elif suffix == "sha256" and not (isinstance(v, str) and SHA_RE.match(v)):
                    probs.append(f"{name}.{k}: {v!r} is not a hex SHA-256")
                elif isinstance(ev.get(base), str) and len(ev[base].encode()) > 2 * cut_max:
                    probs.append(f"{name}.{base}: {len(ev[base].encode())} bytes after a cut")
                continue
            probs.append(f"{name}: undocumented field {k!r}")
            continue
        if name in SESSIONLESS and ((k == "session" and v == "") or (k == "proto" and v == "")
                                    or (k == "src_ip" and v == "")):
            continue
        types, values = spec[k]
        if not type_ok(v, types):
            probs.append(f"{name}.{k}: {v!r} is not {'|'.join(types)}")
        elif values is not None and v not in values:
            probs.append(f"{name}.{k}: {v!r} not among the documented {sorted(values)}")
    if isinstance(ev.get("ts"), str) and not TS_RE.match(ev["ts"]):
        probs.append(f"ts {ev['ts']!r} is not RFC 3339 UTC with microseconds")
    sessionless = name in SESSIONLESS
    if isinstance(ev.get("session"), str) and not SESSION_RE.match(ev["session"]) and \
            not (sessionless and ev["session"] == ""):
        probs.append(f"session {ev['session']!r} is not 16 lowercase hex characters")
    # The guard's events (proto guard) may not know the port: 0 (docs/events.md); nor
    # does message_recovered.
    low = 0 if ev.get("proto") == "guard" or sessionless else 1
    if isinstance(ev.get("src_port"), int) and not low <= ev["src_port"] < 65536:
        probs.append(f"src_port {ev['src_port']} out of range")
    return probs


def test_doc_parses():
    common, events = parse_doc()
    assert set(common) == {"event", "ts", "session", "src_ip", "src_port", "proto"}, common
    for must in ("connect", "tls", "tls_error", "helo", "auth", "mail", "rcpt", "message",
                 "message_rejected", "offence", "disconnect"):
        assert must in events, f"docs/events.md lacks event {must}"
    assert events["auth"]["result"][1] >= {"ok", "fail", "malformed"}
    assert events["message"]["recipients"][0] == ("string[]",)
    assert events["auth"]["username"][0] == ("string", "null")


def _drive(d):
    """A session touching most event kinds."""
    swaks(d, "--from", "a@example.net", "--to", f"alice@{DOMAIN}", "--header",
          "Subject: " + marker())
    swaks(d, "--from", "a@example.net", "--to", "victim@example.org")
    swaks(d, "--tls", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", "bad",
          "--to", "x@example.org", port=d.port_submission)
    c = Raw(d)
    c.reply()
    c.cmd("HELO evil\x01name")
    c.cmd("VRFY root")
    c.cmd("XYZZY \xff\xfe")
    c.cmd("MAIL FROM:<a@example.net>")
    c.cmd(f"RCPT TO:<b@{DOMAIN}>")
    c.cmd("DATA")
    c.send(b"Subject: cut\r\n\r\npartial")
    c.close()
    s = socket.create_connection((d.host, d.port_smtps), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    s.close()


def test_every_emitted_event_matches_the_doc(make_daemon):
    common, events = parse_doc()
    d = make_daemon()
    _drive(d)
    d.wait_events("disconnect", count=4)
    assert not d.stop()
    lines = list(ALL_EVENT_LINES) + [(d.label, l) for l in d.event_lines()]
    assert len(lines) >= 10, f"only {len(lines)} event lines in the whole run"
    bad = []
    seen = set()
    for label, raw in lines:
        for p in check_line(raw, common, events):
            bad.append(f"[{label}] {p}: {raw[:300]!r}")
        try:
            seen.add(json.loads(raw).get("event"))
        except (ValueError, AttributeError):
            pass
    # Group identical problems so one bug does not hide the others.
    assert not bad, f"{len(bad)} contract violations in {len(lines)} lines:\n" + \
        "\n".join(sorted(set(bad), key=bad.index)[:40])
    for must in ("connect", "helo", "mail", "rcpt", "message", "disconnect", "auth"):
        assert must in seen, f"the run never emitted a {must} event (seen: {sorted(seen)})"


def test_contract_checker_can_fail():
    """The checker itself: a wrong line is caught."""
    common, events = parse_doc()
    good = {"event": "helo", "ts": "2026-11-27T06:52:43.123456Z", "session": "0" * 16,
            "src_ip": "127.0.0.1", "src_port": 4000, "proto": "smtp", "verb": "EHLO",
            "name": "x"}
    assert check_line(json.dumps(good), common, events) == []
    for mutate in ({"verb": "SEND"}, {"extra": 1}, {"src_port": "4000"},
                   {"proto": "gopher"}, {"ts": "2026-11-27 06:52:43"}):
        assert check_line(json.dumps({**good, **mutate}), common, events)
    missing = dict(good)
    del missing["name"]
    assert check_line(json.dumps(missing), common, events)
    assert check_line("{not json", common, events)
    # A cut value's two fields: accepted together, refused alone or malformed.
    cut = {**good, "name": "x" * value_max(), "name_length": value_max() + 1,
           "name_sha256": "0" * 64}
    assert check_line(json.dumps(cut), common, events) == []
    for mutate in ({"name_length": 5}, {"name_sha256": "xyz"}, {"verb_length": 9999}):
        assert check_line(json.dumps({**cut, **mutate}), common, events)
    alone = dict(cut)
    del alone["name_sha256"]
    assert check_line(json.dumps(alone), common, events)
    # Only message_recovered may lack a session.
    assert check_line(json.dumps({**good, "session": ""}), common, events)
