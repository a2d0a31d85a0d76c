"""Integration fixtures: a real `mxbait serve` on loopback, driven by real clients.

Each test that asks for `daemon` (or calls `make_daemon(...)` for special limits) gets its
own daemon: a fresh config in a temp dir (free high loopback ports for smtp, submission
and smtps; data_dir in the temp dir; hostname mail.example.test; local domain
example.test; one fixed account alice:alice-Secret-1; username_list the tree's
data/usernames.txt), started as
`$MXBAIT_BIN serve -c CONF`.  The fixture waits until the three ports accept, and at
teardown sends SIGTERM and waits: the test FAILS if the daemon does not stop, exits
non-zero, or printed an ASan/UBSan/LSan report on stderr.

Every daemon's events.jsonl is kept (ALL_EVENT_LINES) so that the events-contract test,
which runs last, checks every line the whole run produced against docs/events.md.

MXBAIT_BIN defaults to build-asan/src/mxbait; MXBAIT_SHARED to ../shared.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MXBAIT_BIN = os.path.abspath(os.environ.get("MXBAIT_BIN")
                             or os.path.join(ROOT, "build-asan", "src", "mxbait"))
SHARED = os.path.abspath(os.environ.get("MXBAIT_SHARED")
                         or os.path.join(os.path.dirname(ROOT), "shared"))

HOSTNAME = "mail.example.test"
DOMAIN = "example.test"
USERNAME_LIST = os.path.join(ROOT, "data", "usernames.txt")
USER = "alice"
PASSWORD = "alice-Secret-1"

# Sanitizer reports: any of these on the daemon's stderr fails the test.
SANITIZER_RE = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer)"
    r"|runtime error:|SUMMARY: (Address|Leak|UndefinedBehavior)Sanitizer")

# strace lines that are outbound network system calls (see test_outbound.py).
INET_RE = re.compile(r"sa_family=AF_INET6?\b")
OUT_RE = re.compile(r"\b(connect|sendto|sendmsg|sendmmsg)(\(| resumed>)")
ACCEPT_RE = re.compile(r"\baccept4?(\(| resumed>).*sa_family=AF_INET")
# MXBAIT_STRACE_ALL=1: every daemon of the run is traced and checked at teardown.
STRACE_ALL = bool(os.environ.get("MXBAIT_STRACE_ALL"))

# Every events.jsonl line of the run: (daemon label, line).  See test_zz_events_contract.
ALL_EVENT_LINES = []


def sanitizer_env(extra_asan=""):
    env = dict(os.environ)
    # Hermetic: never the machine's /etc/mxbait/mxbait.conf (a packaged install).
    env.setdefault("MXBAIT_CONFIG", "")
    env["ASAN_OPTIONS"] = ":".join(filter(None, [
        env.get("ASAN_OPTIONS", ""), "halt_on_error=1:detect_leaks=1:print_summary=1",
        extra_asan]))
    env["UBSAN_OPTIONS"] = ":".join(filter(None, [
        env.get("UBSAN_OPTIONS", ""), "halt_on_error=1:print_stacktrace=1"]))
    return env


def psl_with_test_tlds(directory):
    """A public suffix list (analyzer_psl_file) that also knows the RFC 6761 test TLDs.

    The analyzer reports a URL written in text only when its host is under a known TLD
    (a host that cannot exist is not reported); tests that need captured links under
    `.test` names give the daemon this list, the operator's way to supply a newer one.
    """
    src = "/usr/share/publicsuffix/public_suffix_list.dat"
    text = open(src, encoding="utf-8").read()
    marker = "// ===BEGIN ICANN DOMAINS===\n"
    assert marker in text, src
    path = os.path.join(directory, "psl-with-test.dat")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text.replace(marker, marker + "test\nexample\n", 1))
    return path


def free_ports(n, host="127.0.0.1"):
    """n distinct free TCP ports (held open together so they differ)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def listening_ports():
    """TCP ports in LISTEN state (IPv4 and IPv6), from /proc/net/tcp*."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except (OSError, StopIteration):
            pass
    return ports


def _conf_value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return str(v)


class Daemon:
    """One `mxbait serve` process with its own config and data dir."""

    def __init__(self, tmpdir, label, strace=False, asan="", **overrides):
        self.tmp = tmpdir
        self.asan = asan  # extra ASAN_OPTIONS for this daemon (e.g. a small quarantine)
        self.label = label
        self.data_dir = os.path.join(tmpdir, "data")
        self.conf_path = os.path.join(tmpdir, "mxbait.conf")
        (self.port_smtp, self.port_submission, self.port_smtps, self.port_imap,
         self.port_imaps, self.port_pop3, self.port_pop3s, self.port_web) = free_ports(8)
        self.host = "127.0.0.1"
        self.strace = strace
        self.strace_log = os.path.join(tmpdir, "strace.log")
        self.stderr_path = os.path.join(tmpdir, "daemon.stderr")
        self.stdout_path = os.path.join(tmpdir, "daemon.stdout")
        self.proc = None
        self.pid = None
        self.stopped = False
        self.extra_env = {}  # test hooks (MXBAIT_TEST_*) for this daemon
        self.wrap = []  # a command serve runs under (e.g. setpriv, as the unit starts it)
        cfg = {
            "hostname": HOSTNAME,
            "local_domains": DOMAIN,
            "accounts": f"{USER}:{PASSWORD}",
            # the plausible usernames of the tree (installed as DATADIR/mxbait/...)
            "username_list": USERNAME_LIST,
            "smtp_listen": f"127.0.0.1:{self.port_smtp}",
            "submission_listen": f"127.0.0.1:{self.port_submission}",
            "smtps_listen": f"127.0.0.1:{self.port_smtps}",
            "imap_listen": f"127.0.0.1:{self.port_imap}",
            "imaps_listen": f"127.0.0.1:{self.port_imaps}",
            "pop3_listen": f"127.0.0.1:{self.port_pop3}",
            "pop3s_listen": f"127.0.0.1:{self.port_pop3s}",
            # The dashboard on its own free port (the default 8025 is one per host).
            "web_listen": f"127.0.0.1:{self.port_web}",
            "data_dir": self.data_dir,
        }
        cfg.update(overrides)
        self.config = cfg
        # A test may move a listener (e.g. to [::1]): the ports are what the config says.
        for role in ("smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s"):
            spec = str(cfg.get(f"{role}_listen") or "").split(",")[0].strip()
            if spec:
                setattr(self, f"port_{role}", int(spec.rsplit(":", 1)[1]))
        with open(self.conf_path, "w") as f:
            f.write(f"# written by tests/integration/conftest.py for {label}\n")
            for k, v in cfg.items():
                if v is None:
                    continue
                f.write(f"{k} = {_conf_value(v)}\n")

    # ---- life cycle
    def start(self, timeout=20):
        if not os.access(MXBAIT_BIN, os.X_OK):
            pytest.fail(f"MXBAIT_BIN {MXBAIT_BIN} is not an executable: build it first")
        cmd = self.wrap + [MXBAIT_BIN, "serve", "-c", self.conf_path]
        env = sanitizer_env(self.asan)
        if self.strace:
            # LeakSanitizer cannot run under ptrace: leaks are checked by every other
            # daemon of the suite, this one only watches system calls.
            env = sanitizer_env(":".join(filter(None, ["detect_leaks=0", self.asan])))
            cmd = ["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg,accept,accept4",
                   "-o", self.strace_log] + cmd
        env.update(self.extra_env)
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err,
                                     stdin=subprocess.DEVNULL, cwd=self.tmp, env=env)
        self.pid = self.proc.pid
        # Readiness is read from the kernel's socket table, not by connecting: a probe
        # connection would itself be a session with events (and a tls_error on smtps).
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"mxbait serve exited {self.proc.returncode} at start:\n"
                            + self.stderr_text()[-3000:])
            listening = listening_ports()
            want = [self.port_smtp, self.port_submission, self.port_smtps]
            if str(self.config.get("web_listen") or "").strip():
                want.append(self.port_web)  # bound last
            missing = [p for p in want if p not in listening]
            if not missing:
                break
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"mxbait serve did not listen on {missing} within "
                            f"{timeout}s:\n" + self.stderr_text()[-3000:])
            time.sleep(0.05)
        return self

    @property
    def daemon_pid(self):
        """PID of mxbait itself (differs from proc.pid when run under strace)."""
        if not self.strace:
            return self.pid
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                kids = f.read().split()
            return int(kids[0]) if kids else self.pid
        except OSError:
            return self.pid

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self, timeout=20):
        """SIGTERM, wait; returns a list of problems (empty when clean)."""
        problems = []
        if self.proc is None or self.stopped:
            return problems
        self.stopped = True
        if self.proc.poll() is None:
            # Under strace, signal mxbait itself; strace exits with it.
            os.kill(self.daemon_pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                problems.append(f"did not stop within {timeout}s of SIGTERM (killed)")
        else:
            problems.append(f"had already exited ({self.proc.returncode}) before teardown")
        rc = self.proc.returncode
        if rc != 0 and not problems:
            problems.append(f"exited {rc} after SIGTERM")
        self._err.close()
        self._out.close()
        err = self.stderr_text()
        m = SANITIZER_RE.search(err)
        if m:
            start = max(0, m.start() - 200)
            problems.append("sanitizer report on stderr:\n" + err[start:start + 4000])
        return problems

    def outbound_calls(self):
        """The daemon's outbound AF_INET/AF_INET6 system calls seen by strace."""
        try:
            with open(self.strace_log, errors="replace") as f:
                log = f.read()
        except OSError:
            return ["(no strace log)"]
        return [l for l in log.splitlines() if OUT_RE.search(l) and INET_RE.search(l)]

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ---- what the daemon recorded
    @property
    def events_path(self):
        return os.path.join(self.data_dir, "events.jsonl")

    def event_lines(self):
        try:
            with open(self.events_path, "rb") as f:
                return [l for l in f.read().split(b"\n") if l.strip()]
        except FileNotFoundError:
            return []

    def events(self, _event=None, **match):
        out = []
        for line in self.event_lines():
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if _event and ev.get("event") != _event:
                continue
            if all(ev.get(k) == v for k, v in match.items()):
                out.append(ev)
        return out

    def wait_events(self, _event=None, count=1, timeout=10, **match):
        """Events are written by a writer thread: poll until count of them are there."""
        deadline = time.monotonic() + timeout
        while True:
            evs = self.events(_event, **match)
            if len(evs) >= count or time.monotonic() > deadline:
                return evs
            time.sleep(0.05)

    def spool(self, sub="new"):
        d = os.path.join(self.data_dir, "spool", sub)
        try:
            return sorted(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            return []

    def spool_bytes(self):
        total = 0
        for sub in ("new", "tmp", "cur"):
            for p in self.spool(sub):
                try:
                    total += os.path.getsize(p)
                except OSError:
                    pass
        return total

    def find_message(self, marker, timeout=5):
        """The spool/new file containing marker (bytes), polled briefly."""
        if isinstance(marker, str):
            marker = marker.encode()
        deadline = time.monotonic() + timeout
        while True:
            hits = []
            for p in self.spool("new"):
                with open(p, "rb") as f:
                    if marker in f.read():
                        hits.append(p)
            if hits or time.monotonic() > deadline:
                return hits
            time.sleep(0.05)

    def rss_kb(self):
        try:
            with open(f"/proc/{self.daemon_pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    # ---- the CLI
    def cli(self, *args, data_dir=None, timeout=30):
        cmd = [MXBAIT_BIN] + list(args[:1]) + ["-d", data_dir or self.data_dir] + list(args[1:])
        return subprocess.run(cmd, capture_output=True, timeout=timeout,
                              env=sanitizer_env())

    def cli_json(self, *args):
        r = self.cli(*args, "--json")
        assert r.returncode == 0, (f"mxbait {' '.join(args)} --json exited {r.returncode}: "
                                   f"{r.stderr.decode(errors='replace')}")
        assert not SANITIZER_RE.search(r.stderr.decode(errors="replace")), r.stderr
        try:
            return json.loads(r.stdout)
        except ValueError:
            # JSON lines are acceptable too.
            return [json.loads(l) for l in r.stdout.splitlines() if l.strip()]

    def port(self, role):
        return {"smtp": self.port_smtp, "submission": self.port_submission,
                "smtps": self.port_smtps, "imap": self.port_imap, "imaps": self.port_imaps,
                "pop3": self.port_pop3, "pop3s": self.port_pop3s}[role]


@pytest.fixture
def make_daemon(request, tmp_path):
    """Factory: make_daemon(**config_overrides) -> started Daemon (stopped at teardown)."""
    made = []

    def make(strace=False, asan="", **overrides):
        sub = tempfile.mkdtemp(prefix="d", dir=tmp_path)
        d = Daemon(sub, request.node.name, strace=strace or STRACE_ALL, asan=asan,
                   **overrides)
        made.append(d)
        return d.start()

    yield make
    failures = []
    for d in made:
        problems = d.stop()
        ALL_EVENT_LINES.extend((d.label, l) for l in d.event_lines())
        if d.strace:
            # a test that allows one connection (the guard's hand-off worker to
            # backend_mta) says which: d.outbound_allowed(line) -> bool
            allowed = getattr(d, "outbound_allowed", None)
            bad = [l for l in d.outbound_calls() if not (allowed and allowed(l))]
            if bad:
                problems.append("outbound network calls:\n" + "\n".join(bad[:10]))
        if problems:
            failures.append(f"daemon {d.label}: " + "; ".join(problems))
    if failures:
        pytest.fail("\n".join(failures), pytrace=False)


@pytest.fixture
def daemon(make_daemon):
    """A daemon with the default test config."""
    return make_daemon()


# --------------------------------------------------------------------------- clients

def swaks(d, *args, port=None, timeout=120, check=None):
    """Run swaks against d; returns (exit code, transcript text)."""
    cmd = ["swaks", "--server", f"{d.host}:{port or d.port_smtp}",
           "--helo", "client.example.net", "--timeout", "30"] + list(args)
    r = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
    if check is not None:
        assert r.returncode == check, f"swaks exited {r.returncode}:\n{out[-4000:]}"
    return r.returncode, out


QUEUED_RE = re.compile(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)")


def queue_id_from(out):
    ids = QUEUED_RE.findall(out)
    assert ids, "no '250 2.0.0 Ok: queued as ID' in the client transcript:\n" + out[-3000:]
    return ids[-1]


def marker():
    return "mxbait-test-" + os.urandom(6).hex()


def sha256_file(p):
    with open(p, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def assert_captured(d, mark, queue_id=None, sender=None, recipients=None, tls=None,
                    auth_user=None, method="DATA"):
    """The message carrying mark is in spool/new exactly once, and a `message` event
    names that very file with its sha256, size and envelope."""
    files = d.find_message(mark)
    assert len(files) == 1, f"expected one spool/new file with {mark}, found {files}"
    path = files[0]
    with open(path, "rb") as f:
        data = f.read()
    assert data.startswith(b"Received: "), \
        "captured message does not start with our Received header: %r" % data[:200]
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"127.0.0.1" in head, "Received header lacks the true peer address: %r" % head[:400]
    name = os.path.basename(path)
    evs = d.wait_events("message", spool=name)
    assert len(evs) == 1, f"expected one message event for spool file {name}, got {evs}"
    ev = evs[0]
    assert ev["sha256"] == hashlib.sha256(data).hexdigest(), "message event sha256 != file"
    assert ev["size"] == len(data), f"message event size {ev['size']} != file {len(data)}"
    assert ev["method"] == method
    if queue_id is not None:
        assert ev["queue_id"] == queue_id
    if sender is not None:
        assert ev["sender"] == sender
    if recipients is not None:
        assert sorted(ev["recipients"]) == sorted(recipients)
    if tls is not None:
        assert ev["tls"] is tls
    if auth_user is not None or tls is not None:
        assert ev["auth_user"] == auth_user
    assert not d.spool("tmp"), f"leftover in spool/tmp: {d.spool('tmp')}"
    return path, data, ev


class Raw:
    """A raw SMTP client socket: exact bytes out, exact bytes in."""

    def __init__(self, d, role="smtp", src=None, timeout=10, tls=False):
        self.sock = socket.create_connection(
            (d.host, d.port(role)), timeout=timeout,
            source_address=(src, 0) if src else None)
        if tls:
            self.starttls_wrap()
        self.buf = b""

    def starttls_wrap(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname=None)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, timeout=None):
        if timeout is not None:
            self.sock.settimeout(timeout)
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed by server")
        self.buf += chunk

    def reply(self, timeout=10):
        """One complete (possibly multi-line) reply as text lines, e.g. ['250-x', '250 y']."""
        lines = []
        deadline = time.monotonic() + timeout
        while True:
            while b"\r\n" not in self.buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no complete reply within {timeout}s; got {lines} "
                                       f"+ {self.buf[:200]!r}")
                self._fill(left)
            line, self.buf = self.buf.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return lines

    def cmd(self, line, timeout=10):
        self.send(line + "\r\n")
        return self.reply(timeout)

    def read_all_until_closed(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"server did not close within {timeout}s")
            try:
                self._fill(left)
            except ConnectionError:
                return self.buf
            except (ConnectionResetError, BrokenPipeError):
                return self.buf

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# --------------------------------------------------------------------------- /proc

def proc_status(pid):
    """/proc/PID/status as a dict of its fields (values stripped)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def proc_children(pid):
    """The child processes of every thread of pid."""
    kids = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                kids += [int(x) for x in f.read().split()]
        except OSError:
            pass
    return kids


def tcp_state_ok(d):
    """A fresh client gets the banner and a NOOP answer: the daemon is healthy."""
    c = Raw(d, timeout=5)
    try:
        b = c.reply(5)
        assert b[0].startswith("220 "), b
        assert c.cmd("NOOP", 5) == ["250 2.0.0 Ok"]
    finally:
        c.close()
