"""A private PostgreSQL 15 (Debian's postgresql-15) for the hub tests and benchmarks.

initdb and pg_ctl run as the unprivileged user `nobody` (PostgreSQL refuses root) in
a temporary directory of their own; the server listens only on a unix socket in that
directory, on a free port number, so it never meets the system cluster (which stays
stopped) or another engineer's server.  stop() ends only the postmaster this object
started, by its PID.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PG_BIN = "/usr/lib/postgresql/15/bin"


def available():
    return os.access(os.path.join(PG_BIN, "initdb"), os.X_OK)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Postgres:
    def __init__(self, extra_conf=None):
        pw = pwd.getpwnam("nobody")
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.dir = tempfile.mkdtemp(prefix="mxbait-pg-")
        os.chmod(self.dir, 0o755)
        os.chown(self.dir, self.uid, self.gid)
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = _free_port()
        self._as_nobody([os.path.join(PG_BIN, "initdb"), "-D", self.data, "-U", "mxbait",
                         "--auth=trust", "-E", "UTF8", "--no-instructions"])
        with open(os.path.join(self.data, "postgresql.conf"), "a") as f:
            f.write(f"port = {self.port}\nlisten_addresses = ''\n"
                    f"unix_socket_directories = '{self.dir}'\n")
            for k, v in (extra_conf or {}).items():
                f.write(f"{k} = {v}\n")
        self.conninfo = f"host={self.dir} port={self.port} dbname=postgres user=mxbait"

    def _as_nobody(self, cmd, check=True, timeout=120):
        r = subprocess.run(["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                            "--clear-groups"] + cmd, capture_output=True, timeout=timeout,
                           cwd=self.dir)
        if check and r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed: {r.stdout.decode()} {r.stderr.decode()}")
        return r

    def start(self):
        self._as_nobody([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-l", self.log,
                         "-w", "-t", "60", "start"])
        return self

    def pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def kill9(self):
        """The hub dies mid-stream: SIGKILL to the postmaster (its backends follow)."""
        p = self.pid()
        if p:
            os.kill(p, signal.SIGKILL)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    os.kill(p, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
            # backends of a killed postmaster exit when they notice; wait for the socket
            time.sleep(0.5)

    def psql(self, sql):
        r = subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.dir,
                            "-p", str(self.port), "-U", "mxbait", "-d", "postgres", "-c", sql],
                           capture_output=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(r.stderr.decode())
        return r.stdout.decode().strip()

    def stop(self):
        if self.pid():
            self._as_nobody([os.path.join(PG_BIN, "pg_ctl"), "-D", self.data, "-m", "fast",
                             "-w", "-t", "60", "stop"], check=False)
            p = self.pid()
            if p:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)
