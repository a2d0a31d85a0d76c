"""Issue 3, end to end: real attack tools crack an account on the running daemon, and the
cracked account is one truth on SMTP AUTH, IMAP and POP3, across restarts, in the CLI.

One daemon for the module (the tests run in file order and share what the tools found).
Its config:
  - the default credential policy: nmap-common's ranked passwords.lst, top 1000,
    crack_after_failures 2-6;
  - auth_failure_delay 100ms and auth_penalty no: these tests are about RESULTS, not
    timing (the persona test keeps the real delays), and hydra/medusa/nmap must finish
    within seconds;
  - every role on one random loopback address ADDR, the implicit-TLS roles on their
    standard ports 465/993/995: nmap's brute scripts decide "SSL first" from the port
    number (comm.tryssl); on a random port they first wait 20 s per guess for a
    plaintext banner that an implicit-TLS port never sends.

The wordlist: UNCOMMON (7 words in no list) and then ONE common password, "password"
(rank 4 of passwords.lst).  The policy lets a list password crack an account only after
that account has seen its own random 2-6 failures, so the common password must come after
at least 6 failures: 7 uncommon words guarantee it whatever the account's draw.
"""

import hashlib
import imaplib
import json
import os
import poplib
import random
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

from conftest import (ALL_EVENT_LINES, DOMAIN, STRACE_ALL, Daemon, assert_captured, marker,
                      free_ports, queue_id_from, swaks)

CTX = ssl.create_default_context()
CTX.check_hostname = False
CTX.verify_mode = ssl.CERT_NONE

COMMON = "password"
UNCOMMON = [f"zq7-unlisted-{c}" for c in "abcdefg"]
WORDS = UNCOMMON + [COMMON]
# The user name every tool attacks where consistency is checked; fresh names elsewhere.
# Every one is plausible (data/usernames.txt): a random name never cracks (the canary
# tests below), so each tool attacks a mailbox an attacker would.
SHARED_USER = "carol"
TOOL_USER = {"hydra-smtp": "sales", "hydra-imap": "support", "hydra-pop3": "office",
             "medusa-imap": "billing", "medusa-pop3": "accounts", "medusa-smtp": "marketing",
             "nmap-imaps": "webmaster", "nmap-pop3s": "contact", "nmap-smtp": "info"}
WRONG = "123456"  # a top-list password too: after the crack it must NOT work

ADDR = f"127.{random.randint(64, 250)}.{random.randint(1, 250)}.{random.randint(2, 250)}"

FAST = {"auth_failure_delay": "100ms", "auth_penalty": False}


def _config(data_dir=None):
    p_smtp, p_sub, p_imap, p_pop3 = free_ports(4)
    cfg = {
        "smtp_listen": f"{ADDR}:{p_smtp}",
        "submission_listen": f"{ADDR}:{p_sub}",
        "smtps_listen": f"{ADDR}:465",
        "imap_listen": f"{ADDR}:{p_imap}",
        "imaps_listen": f"{ADDR}:993",
        "pop3_listen": f"{ADDR}:{p_pop3}",
        "pop3s_listen": f"{ADDR}:995",
        "password_list": "/usr/share/nmap/nselib/data/passwords.lst",
        "password_top_n": 1000,
        "crack_after_failures": "2-6",
    }
    cfg.update(FAST)
    if data_dir:
        cfg["data_dir"] = data_dir
    return cfg


def _start(tmp, label, cfg):
    d = Daemon(tmp, label, strace=STRACE_ALL, **cfg)
    d.host = ADDR
    return d.start()


def _stop_clean(d):
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    return problems


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    if not os.path.isfile("/usr/share/nmap/nselib/data/passwords.lst"):
        pytest.skip("nmap-common's passwords.lst is missing")
    tmp = str(tmp_path_factory.mktemp("deception"))
    os.makedirs(os.path.join(tmp, "d1"))
    d = _start(os.path.join(tmp, "d1"), "deception", _config())
    work = os.path.join(tmp, "work")  # the tools' cwd: hydra.restore lands here
    os.makedirs(work)
    words = os.path.join(work, "words.txt")
    with open(words, "w") as f:
        f.write("\n".join(WORDS) + "\n")
    st = {"tmp": tmp, "daemon": d, "work": work, "words": words, "found": {},
          "problems": []}
    yield st
    st["problems"] += _stop_clean(st["daemon"])
    assert not st["problems"], st["problems"]


def run(st, cmd, timeout=120):
    r = subprocess.run(cmd, capture_output=True, timeout=timeout, cwd=st["work"],
                       stdin=subprocess.DEVNULL)
    return r.returncode, r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")


def wordlist(st, name, words):
    p = os.path.join(st["work"], name)
    with open(p, "w") as f:
        f.write("\n".join(words) + "\n")
    return p


def auth_events(d, user, **match):
    return [e for e in d.events("auth", **match) if e.get("username") == user]


def assert_cracked_by(d, user, proto_set, n_uncommon=len(UNCOMMON)):
    """The events say what the tool did: every uncommon word failed for user, then
    exactly one success, with COMMON, on one of proto_set."""
    evs = d.wait_events("auth", username=user, success=True)
    assert len(evs) >= 1, f"no successful auth event for {user}"
    assert {e["password"] for e in evs} == {COMMON}, evs
    assert {e["proto"] for e in evs} <= proto_set, evs
    failed = {e["password"] for e in auth_events(d, user) if not e["success"]}
    assert set(UNCOMMON[:n_uncommon]) <= failed, f"{user}: failures {failed}"
    assert COMMON not in failed, f"{user}: {COMMON} failed once before the crack: the " \
        f"policy cracked too early or too late"


# --------------------------------------------------------------------------- 1. tools

HYDRA_RE = r"\[{port}\]\[{svc}\] host: {host}\s+login: {user}\s+password: (\S+)"


def hydra(st, user, port, svc, *opts):
    rc, out = run(st, ["hydra", "-l", user, "-P", st["words"], "-t", "1", "-I", "-f",
                       "-s", str(port)] + list(opts) + [ADDR, svc])
    found = re.findall(HYDRA_RE.format(port=port, svc=svc, host=re.escape(ADDR),
                                       user=re.escape(user)), out)
    assert rc == 0 and found == [COMMON], f"hydra {svc} on {port} exit {rc}:\n{out[-3000:]}"
    return out


@pytest.mark.skipif(not shutil.which("hydra"), reason="hydra not installed")
@pytest.mark.parametrize("user", [TOOL_USER["hydra-smtp"], SHARED_USER])
def test_hydra_smtp_submission_starttls(state, user):
    d = state["daemon"]
    # smtp module, TLS option = STARTTLS on submission (AUTH is offered only after it)
    hydra(state, user, d.port_submission, "smtp", "-m", "TLS")
    assert_cracked_by(d, user, {"submission"} if user != SHARED_USER else
                      {"submission", "imap", "imaps", "pop3", "pop3s", "smtps"})
    state["found"][("hydra", "smtp", user)] = COMMON


@pytest.mark.skipif(not shutil.which("hydra"), reason="hydra not installed")
@pytest.mark.parametrize("user", [TOOL_USER["hydra-imap"], SHARED_USER])
def test_hydra_imap_starttls(state, user):
    d = state["daemon"]
    hydra(state, user, d.port_imap, "imap", "-m", "TLS")
    if user != SHARED_USER:
        assert_cracked_by(d, user, {"imap"})
    assert d.wait_events("auth", username=user, proto="imap", success=True,
                    password=COMMON)


@pytest.mark.skipif(not shutil.which("hydra"), reason="hydra not installed")
@pytest.mark.parametrize("user", [TOOL_USER["hydra-pop3"], SHARED_USER])
def test_hydra_pop3s(state, user):
    # Implicit TLS (-S on 995): hydra's pop3 "TLS" (STLS) option waits, after the
    # handshake, for a line that neither Dovecot nor we send (RFC 2595: the client speaks
    # next), until the 3-minute pre-login timeout.
    d = state["daemon"]
    hydra(state, user, 995, "pop3", "-S")
    if user != SHARED_USER:
        assert_cracked_by(d, user, {"pop3s"})
    assert d.wait_events("auth", username=user, proto="pop3s", success=True, password=COMMON)


MEDUSA_RE = r"ACCOUNT FOUND: \[{mod}\] Host: {host} User: {user} Password: (\S+) \[SUCCESS\]"


def medusa(st, user, port, mod, words=None):
    rc, out = run(st, ["medusa", "-h", ADDR, "-n", str(port), "-u", user,
                       "-P", words or st["words"], "-M", mod, "-s", "-t", "1", "-f"])
    found = re.findall(MEDUSA_RE.format(mod=mod, host=re.escape(ADDR),
                                        user=re.escape(user)), out)
    return rc, out, found


@pytest.mark.skipif(not shutil.which("medusa"), reason="medusa not installed")
@pytest.mark.parametrize("mod,port,proto", [("imap", 993, "imaps"), ("pop3", 995, "pop3s")])
@pytest.mark.parametrize("fresh", [True, False])
def test_medusa_imap_pop3(state, mod, port, proto, fresh):
    d = state["daemon"]
    user = TOOL_USER[f"medusa-{mod}"] if fresh else SHARED_USER
    rc, out, found = medusa(state, user, port, mod)
    assert rc == 0 and found == [COMMON], f"medusa {mod} exit {rc}:\n{out[-3000:]}"
    if fresh:
        assert_cracked_by(d, user, {proto})
    assert d.wait_events("auth", username=user, proto=proto, success=True, password=COMMON)


@pytest.mark.skipif(not shutil.which("medusa"), reason="medusa not installed")
def test_medusa_smtp(state):
    """Recorded Postfix+Dovecot answers the third wrong password of one SMTP session with
    454 4.7.0 (the penalised auth request times out): we keep that.  medusa's smtp module
    gives up on a 454, so on a fresh account (2-6 failures needed) it stops at the
    third guess; on the account the other tools cracked, two wrong guesses and then the
    password find it."""
    d = state["daemon"]
    rc, out, found = medusa(state, TOOL_USER["medusa-smtp"], 465, "smtp")
    assert not found, out[-2000:]
    assert "454 4.7.0 Temporary authentication failure" in out, out[-2000:]
    evs = auth_events(d, TOOL_USER["medusa-smtp"])
    assert [e["result"] for e in evs] == ["fail", "fail", "tempfail"], evs
    assert [e["password"] for e in evs] == UNCOMMON[:3]
    # The shared, already cracked account: found with a list that fits in one session.
    assert d.wait_events("auth", username=SHARED_USER, success=True), \
        "test order: hydra cracks carol first"
    words = wordlist(state, "medusa-smtp-words.txt", UNCOMMON[:2] + [COMMON])
    rc, out, found = medusa(state, SHARED_USER, 465, "smtp", words)
    assert rc == 0 and found == [COMMON], f"medusa smtp exit {rc}:\n{out[-3000:]}"
    assert d.wait_events("auth", username=SHARED_USER, proto="smtps", success=True,
                    password=COMMON)


def nmap_brute(st, script, port, user):
    users = wordlist(st, f"users-{script}.txt", [user])
    rc, out = run(st, ["nmap", "-n", "-Pn", "-sT", "-p", str(port), "--script", "+" + script,
                       "--script-args",
                       f"userdb={users},passdb={st['words']},brute.firstonly=true,"
                       "brute.threads=1,brute.start=1", ADDR], timeout=150)
    # brute.threads=1: guesses in list order, so COMMON comes after the failures
    ok = re.findall(r"\|\s+(\S+):(\S+) - Valid credentials", out)
    assert rc == 0 and ok == [(user, COMMON)], f"nmap {script} exit {rc}:\n{out[-3000:]}"
    return out


@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
@pytest.mark.parametrize("script,port,proto", [("imap-brute", 993, "imaps"),
                                               ("pop3-brute", 995, "pop3s")])
@pytest.mark.parametrize("fresh", [True, False])
def test_nmap_imap_pop3_brute(state, script, port, proto, fresh):
    d = state["daemon"]
    user = TOOL_USER[f"nmap-{proto}"] if fresh else SHARED_USER
    nmap_brute(state, script, port, user)
    if fresh:
        # brute.useraspass: nmap also guesses the user name itself (one more failure)
        assert_cracked_by(d, user, {proto})
    assert d.wait_events("auth", username=user, proto=proto, success=True, password=COMMON)


@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
def test_nmap_smtp_brute(state):
    """nmap's smtp-brute guesses without EHLO in its sessions.  Recorded Postfix on smtps
    (and on submission after STARTTLS) answers AUTH before EHLO normally (persona
    transcripts smtps-session, submission-auth-before-ehlo): so do we, and it cracks.
    On port 25, where AUTH is not offered, AUTH gets Postfix's 503 and the offence is
    recorded."""
    d = state["daemon"]
    nmap_brute(state, "smtp-brute", 465, TOOL_USER["nmap-smtp"])
    assert_cracked_by(d, TOOL_USER["nmap-smtp"], {"smtps"})
    ok = d.events("auth", username=TOOL_USER["nmap-smtp"], success=True)[0]
    assert not d.events("helo", session=ok["session"]), "nmap sent no EHLO in that session"
    # port 25: AUTH before EHLO (and AUTH at all) is refused like Postfix
    s = socket.create_connection((ADDR, d.port_smtp), timeout=10)
    f = s.makefile("rb")
    assert f.readline().startswith(b"220 ")
    s.sendall(b"AUTH PLAIN AG5tYXAtc210cABwYXNzd29yZA==\r\n")
    assert f.readline() == b"503 5.5.1 Error: authentication not enabled\r\n"
    s.sendall(b"QUIT\r\n")
    assert f.readline().startswith(b"221 ")
    s.close()
    offs = d.wait_events("offence", kind="auth_not_enabled", proto="smtp")
    # detail is the mechanism the client asked for (docs/events.md says "the offending
    # command": the engine records AUTH's argument for this kind)
    assert len(offs) == 1 and offs[0]["detail"] == "PLAIN", offs


# --------------------------------------------------------------------------- 2. use it

def imap_starttls(d, user, pw):
    m = imaplib.IMAP4(ADDR, d.port_imap, timeout=20)
    m.starttls(ssl_context=CTX)
    m.login(user, pw)
    return m


def imap_ssl(d, user, pw):
    m = imaplib.IMAP4_SSL(ADDR, 993, ssl_context=CTX, timeout=20)
    m.login(user, pw)
    return m


def pop_stls(d, user, pw):
    p = poplib.POP3(ADDR, d.port_pop3, timeout=20)
    p.stls(context=CTX)
    p.user(user)
    p.pass_(pw)
    return p


def pop_ssl(d, user, pw):
    p = poplib.POP3_SSL(ADDR, 995, context=CTX, timeout=20)
    p.user(user)
    p.pass_(pw)
    return p


def imap_view(m):
    typ, data = m.select("INBOX", readonly=True)
    assert typ == "OK"
    n = int(data[0])
    sizes, subjects = [], []
    if n:
        typ, data = m.fetch(f"1:{n}", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        for item in data:
            if isinstance(item, tuple):
                sizes.append(int(re.search(rb"RFC822\.SIZE (\d+)", item[0]).group(1)))
                subjects.append(item[1].strip())
    typ, data = m.fetch("1", "(BODY.PEEK[])")
    body1 = data[0][1]
    m.logout()
    return n, sizes, subjects, body1


def pop_view(p):
    n, _ = p.stat()
    sizes = [int(l.split()[1]) for l in p.list()[1]]
    subjects = []
    for i in range(1, n + 1):
        head = p.top(i, 0)[1]
        subjects += [l for l in head if l.lower().startswith(b"subject:")]
    body1 = b"\r\n".join(p.retr(1)[1]) + b"\r\n"
    p.quit()
    return n, sizes, subjects, body1


def test_credential_works_everywhere(state):
    d = state["daemon"]
    user = SHARED_USER
    assert d.wait_events("auth", username=user, success=True), "no tool cracked carol"
    # SMTP: swaks submits on submission after STARTTLS; captured, nothing delivered
    mark = marker()
    rc, out = swaks(d, "--port", str(d.port_submission), "-tls", "--auth", "LOGIN",
                    "--auth-user", user, "--auth-password", COMMON,
                    "--from", f"{user}@{DOMAIN}", "--to", "victim@example.org",
                    "--header", f"Subject: {mark}", "--body", "spam " + mark,
                    port=d.port_submission, check=0)
    assert "235 2.7.0 Authentication successful" in out, out[-2000:]
    qid = queue_id_from(out)
    state["mark"] = mark
    assert_captured(d, mark, queue_id=qid, sender=f"{user}@{DOMAIN}",
                    recipients=["victim@example.org"], tls=True, auth_user=user)
    views = {"imap STARTTLS": imap_view(imap_starttls(d, user, COMMON)),
             "imaps": imap_view(imap_ssl(d, user, COMMON)),
             "pop3 STLS": pop_view(pop_stls(d, user, COMMON)),
             "pop3s": pop_view(pop_ssl(d, user, COMMON))}
    first = views["imaps"]
    assert first[0] >= 1, "the INBOX of a cracked account is not empty"
    assert len(first[1]) == first[0] and len(first[2]) == first[0]
    for name, v in views.items():
        assert v[0] == first[0], f"{name}: {v[0]} messages, imaps {first[0]}"
        assert v[1] == first[1], f"{name}: sizes {v[1]} != {first[1]}"
        assert [s.split(b":", 1)[1].strip() for s in v[2]] == \
            [s.split(b":", 1)[1].strip() for s in first[2]], f"{name}: subjects"
        assert v[3] == first[3], f"{name}: message 1 bytes differ"
    assert len(first[3]) == first[1][0], "BODY[] length != RFC822.SIZE"
    state["inbox"] = first


def wrong_everywhere(d, user, pw):
    with pytest.raises(smtplib.SMTPAuthenticationError) as e:
        s = smtplib.SMTP(ADDR, d.port_submission, timeout=20)
        try:
            s.starttls(context=CTX)
            s.login(user, pw)
        finally:
            s.close()
    assert e.value.smtp_code == 535, e.value
    with pytest.raises(imaplib.IMAP4.error) as e:
        m = imaplib.IMAP4_SSL(ADDR, 993, ssl_context=CTX, timeout=20)
        try:
            m.login(user, pw)
        finally:
            m.shutdown()
    assert "[AUTHENTICATIONFAILED] Authentication failed." in str(e.value), e.value
    with pytest.raises(poplib.error_proto) as e:
        p = poplib.POP3_SSL(ADDR, 995, context=CTX, timeout=20)
        try:
            p.user(user)
            p.pass_(pw)
        finally:
            p.close()
    assert e.value.args[0] == b"-ERR [AUTH] Authentication failed.", e.value


def test_other_password_fails_everywhere(state):
    d = state["daemon"]
    # WRONG is a top-list password: a second "correct" password never exists
    wrong_everywhere(d, SHARED_USER, WRONG)
    wrong_everywhere(d, TOOL_USER["hydra-imap"], WRONG)
    fails = [e for e in auth_events(d, SHARED_USER) if e["password"] == WRONG]
    assert {e["proto"] for e in fails} == {"submission", "imaps", "pop3s"}
    assert not any(e["success"] for e in fails)


# --------------------------------------------------------------------------- 4. CLI

def test_creds_and_attackers_json(state):
    d = state["daemon"]
    auths = d.wait_events("auth")
    creds = d.cli_json("creds", "--top", "0")
    by_user = {a["username"]: a for a in creds["cracked"]}
    for u in [SHARED_USER] + [v for k, v in TOOL_USER.items() if k != "medusa-smtp"]:
        assert u in by_user, f"{u} not cracked in creds --json: {sorted(by_user)}"
        assert by_user[u]["password"] == COMMON and by_user[u]["kind"] == "cracked", by_user[u]
    assert TOOL_USER["medusa-smtp"] not in by_user, "medusa-smtp never guessed the password"
    c = by_user[SHARED_USER]
    assert c["messages"] == 1 and c["recipients"] == 1, c
    assert c["last_subject"] == state["mark"], c
    users = {u["username"]: u for u in creds["usernames"]}
    h = users[TOOL_USER["hydra-smtp"]]
    # hydra tried the 7 uncommon words and then the common one, on one protocol
    assert (h["attempts"], h["passwords"], h["successes"], h["ips"], h["protocols"]) == \
        (8, 8, 1, 1, ["submission"]), h
    m = users[TOOL_USER["medusa-smtp"]]
    assert (m["attempts"], m["passwords"], m["successes"]) == (3, 3, 0), m
    mine = [e for e in auths if e["username"] == SHARED_USER]
    cu = users[SHARED_USER]
    assert cu["attempts"] == len(mine), (cu, len(mine))
    assert cu["passwords"] == len({e["password"] for e in mine if e["password"] is not None})
    assert cu["successes"] == sum(e["success"] for e in mine), cu
    assert cu["protocols"] == sorted({e["proto"] for e in mine}), cu
    pw = {p["password"]: p for p in creds["passwords"]}
    assert pw[COMMON]["successes"] == sum(1 for e in auths if e["success"]), pw[COMMON]
    assert pw[WRONG]["successes"] == 0
    att = d.cli_json("attackers", "--top", "0")
    assert [r["ip"] for r in att["ips"]] == ["127.0.0.1"], att["ips"]
    r = att["ips"][0]
    assert r["attempts"] == len(auths), (r, len(auths))
    assert r["usernames"] == len({e["username"] for e in auths if e["username"]}), r
    assert r["successes"] == sum(1 for e in auths if e["success"]), r
    assert r["messages"] == 1, r
    assert [p["prefix"] for p in att["prefixes"]] == ["127.0.0.0/24"], att["prefixes"]
    assert att["prefixes"][0]["attempts"] == r["attempts"]


# --------------------------------------------------------------------------- 3. restart

def test_restart_keeps_the_account(state):
    d = state["daemon"]
    state["problems"] += _stop_clean(d)
    assert not state["problems"], state["problems"]
    tmp2 = os.path.join(state["tmp"], "d2")
    os.makedirs(tmp2)
    d2 = _start(tmp2, "deception-restarted", _config(data_dir=d.data_dir))
    state["daemon"] = d2
    assert imap_view(imap_ssl(d2, SHARED_USER, COMMON)) == state["inbox"], \
        "the mailbox is not the same after a restart"
    p = pop_ssl(d2, SHARED_USER, COMMON)
    assert p.stat()[0] == state["inbox"][0]
    p.quit()
    s = smtplib.SMTP(ADDR, d2.port_submission, timeout=20)
    s.starttls(context=CTX)
    assert s.login(SHARED_USER, COMMON)[0] == 235
    s.quit()
    wrong_everywhere(d2, SHARED_USER, WRONG)
    wrong_everywhere(d2, SHARED_USER, UNCOMMON[0])
