"""The daemon never opens an outbound connection: a honeypot that delivers, relays,
calls back, or even resolves names gives itself away and can be abused.

The daemon runs under `strace -f -e trace=connect,sendto,sendmsg,sendmmsg` while real
clients drive it through every role (plain, STARTTLS, implicit TLS, AUTH, relay
attempts to foreign domains accepted after AUTH, nmap's relay probes).  Any connect()
or addressed send to an AF_INET/AF_INET6 peer fails the test (AF_UNIX and AF_NETLINK
are local).  With MXBAIT_STRACE_ALL=1 every daemon of the suite is traced the same
way and checked at its teardown.  LeakSanitizer cannot run under ptrace, so this one daemon runs with
detect_leaks=0; every other test's daemon checks leaks."""

import re
import shutil
import smtplib
import ssl
import subprocess

import pytest

from conftest import ACCEPT_RE, DOMAIN, PASSWORD, USER, marker, swaks



@pytest.mark.skipif(not shutil.which("strace"), reason="strace not installed "
                    "(scripts/install-deps.sh test installs it)")
def test_no_outbound_connection(make_daemon):
    d = make_daemon(strace=True)
    # A workload that would make a careless daemon deliver, relay or look something up.
    swaks(d, "--from", "a@example.net", "--to", f"alice@{DOMAIN}", "--header",
          "Subject: " + marker())
    swaks(d, "--from", "a@example.net", "--to", "victim@example.org")
    swaks(d, "--tls", "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
          "--from", f"{USER}@{DOMAIN}", "--to", "victim@gmail.com,other@example.org",
          "--header", "Subject: " + marker(), port=d.port_submission)
    swaks(d, "--tlsc", "--auth", "LOGIN", "--auth-user", USER, "--auth-password", PASSWORD,
          "--from", f"{USER}@{DOMAIN}", "--to", "postmaster@[192.0.2.1]",
          port=d.port_smtps)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP(d.host, d.port_smtp, timeout=20) as s:
        s.ehlo("relay-test.example.net")
        s.starttls(context=ctx)
        s.ehlo("relay-test.example.net")
        for rcpt in ("x@example.com", "x%example.com@" + DOMAIN, "example.com!x"):
            s.rset()
            s.mail("a@example.net")
            s.rcpt(rcpt)
    if shutil.which("nmap"):
        subprocess.run(["nmap", "-n", "-Pn", "-sT", "-p", str(d.port_smtp), "--script",
                        "+smtp-open-relay", d.host], capture_output=True, timeout=180)
    n_msgs = len(d.spool("new"))
    assert n_msgs >= 2, f"workload captured only {n_msgs} messages: it did not run"
    problems = d.stop()
    assert not problems, problems
    with open(d.strace_log, errors="replace") as f:
        log = f.read()
    # accept() is traced too: proof that strace saw the daemon's sockets at all.
    assert ACCEPT_RE.search(log), "strace saw no accept(): the trace is not working"
    bad = d.outbound_calls()
    assert not bad, "outbound network system calls by the daemon:\n" + "\n".join(bad[:20])
