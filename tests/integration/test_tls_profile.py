"""TLS profile per role: what nmap's ssl-enum-ciphers sees on mxbait's implicit-TLS
ports equals what it saw on the stock Debian 12 daemons (tests/persona/tls/*.nmap:
Postfix 3.7.11 on smtps, Dovecot 2.3.19.1 on imaps and pop3s, started privately by
tests/persona/stock-servers.py): protocol versions, every cipher suite with its key
exchange (DH group sizes, curves, RSA size), the cipher preference, compressors and
warnings.  docs/persona.md says how the profiles are set.

Record again against running stock servers (ports from `stock-servers.py start DIR`):
    /usr/bin/python3 tests/integration/test_tls_profile.py record smtps=PORT imaps=PORT pop3s=PORT
"""

import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import ALL_EVENT_LINES, Daemon

HERE = os.path.dirname(os.path.abspath(__file__))
REF = os.path.join(HERE, "..", "persona", "tls")
ROLES = {"smtps": "postfix-smtps", "imaps": "dovecot-imaps", "pop3s": "dovecot-pop3s"}


def enum_ciphers(port, host="127.0.0.1"):
    """ssl-enum-ciphers' findings for one port, one line each, without the port line."""
    r = subprocess.run(["nmap", "-n", "-Pn", "-sT", "-p", str(port), "--script",
                        "ssl-enum-ciphers", host], capture_output=True, timeout=240)
    out = r.stdout.decode("utf-8", "replace")
    lines, inside = [], False
    for l in out.splitlines():
        if l.startswith("| ssl-enum-ciphers:"):
            inside = True
            continue
        if inside:
            if not (l.startswith("|") or l.startswith("|_")):
                break
            lines.append(re.sub(r"^\|_?", "", l).rstrip())
    assert lines, f"no ssl-enum-ciphers output for port {port}:\n{out[-2000:]}"
    return lines


def reference(name):
    with open(os.path.join(REF, name + ".nmap"), encoding="utf-8") as f:
        return f.read().splitlines()


@pytest.fixture(scope="module")
def tls_daemon(tmp_path_factory):
    """One daemon for the three roles, without the per-IP connection rate limit
    (ssl-enum-ciphers opens some 300 connections; stock Postfix and Dovecot have no
    rate limit by default)."""
    d = Daemon(str(tmp_path_factory.mktemp("tls")), "tls_profile", connection_rate_per_ip=0)
    d.start()
    yield d
    problems = d.stop()
    ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    assert not problems, problems


@pytest.mark.skipif(not shutil.which("nmap"), reason="nmap not installed")
@pytest.mark.parametrize("role", sorted(ROLES))
def test_tls_profile_equals_stock(tls_daemon, role):
    got = enum_ciphers(tls_daemon.port(role))
    want = reference(ROLES[role])
    assert got == want, "\n".join(
        __import__("difflib").unified_diff(want, got, "stock", "mxbait", lineterm=""))


def peer_key(port, *sigalgs):
    """The server certificate's key as openssl s_client reports it (TLS 1.3; sigalgs:
    what the client offers, OpenSSL's defaults when none)."""
    cmd = ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-tls1_3"]
    if sigalgs:
        cmd += ["-sigalgs", ":".join(sigalgs)]
    r = subprocess.run(cmd, input=b"", capture_output=True, timeout=30)
    out = r.stdout.decode("utf-8", "replace")
    sig = re.search(r"Peer signature type: (\S+)", out)
    return sig.group(1) if sig else out[-1500:]


def test_tls_ecdsa_beside_rsa(tls_daemon, tmp_path):
    """tls_ecdsa = yes: a client offering ECDSA (OpenSSL's default) gets the ECDSA
    certificate on both personas, an RSA-only client still RSA; the default (the
    stock-profile daemon above) serves RSA to everyone, as stock Postfix and Dovecot."""
    assert peer_key(tls_daemon.port("smtps")) == "RSA-PSS"
    d = Daemon(str(tmp_path), "tls_ecdsa", connection_rate_per_ip=0, tls_ecdsa="yes")
    d.start()
    try:
        for role in ("smtps", "imaps"):
            assert peer_key(d.port(role)) == "ECDSA", role
            assert peer_key(d.port(role), "rsa_pss_rsae_sha256", "RSA+SHA256") == "RSA-PSS"
        assert os.path.exists(os.path.join(d.data_dir, "tls", "eccert.pem"))
    finally:
        problems = d.stop()
        ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
    assert not problems, problems


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "record":
    for arg in sys.argv[2:]:
        role, _, port = arg.partition("=")
        with open(os.path.join(REF, ROLES[role] + ".nmap"), "w", encoding="utf-8") as f:
            f.write("\n".join(enum_ciphers(int(port))) + "\n")
        print("recorded", ROLES[role])
