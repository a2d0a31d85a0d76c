#!/usr/bin/python3
"""event-amplification: what one AUTH attempt with a long password costs the records
(issue 7: a 9 KB password of control bytes cost about 136 KB of mxbait.db + events.jsonl;
400 such attempts filled a 24 MB disk).

    bench/event-amplification.py BUILD [ATTEMPTS] [PWLEN]      (defaults 100, 9216)

Starts BUILD/src/mxbait serve on free loopback ports with its data dir in a temporary
directory (auth_failure_delay = 0, line_length_limit = 16384 so a 12 KB base64 line
passes), sends ATTEMPTS AUTH LOGIN attempts on smtps with PWLEN-byte passwords
(MODE=ctrl, the default: bytes 0x01-0x1f, each escaped as \\u00XX in JSON; MODE=text:
'p'), and prints the allocated bytes that mxbait.db (+ -wal, -shm) and events.jsonl
gained per attempt, while running and after the daemon stopped (WAL folded in).
Prints figures; not a test.  Stops the daemon it started by PID.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BIN = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "src", "mxbait")
N = int(sys.argv[2]) if len(sys.argv) > 2 else 100
PWLEN = int(sys.argv[3]) if len(sys.argv) > 3 else 9216
MODE = os.environ.get("MODE", "ctrl")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def usage(data):
    out = {}
    for n in ("mxbait.db", "mxbait.db-wal", "mxbait.db-shm", "events.jsonl", "events.jsonl.1"):
        try:
            out[n] = os.stat(os.path.join(data, n)).st_blocks * 512
        except OSError:
            out[n] = 0
    return out


def main():
    tmp = tempfile.mkdtemp(prefix="mxb-amp-")
    data = os.path.join(tmp, "data")
    ports = {r: free_port() for r in ("smtp", "smtps")}
    conf = os.path.join(tmp, "mxbait.conf")
    with open(conf, "w") as f:
        f.write(f"hostname = mail.example.test\nlocal_domains = example.test\n"
                f"data_dir = {data}\nsmtp_listen = 127.0.0.1:{ports['smtp']}\n"
                f"smtps_listen = 127.0.0.1:{ports['smtps']}\nsubmission_listen =\n"
                "imap_listen =\nimaps_listen =\npop3_listen =\npop3s_listen =\n"
                "auth_failure_delay = 0\nauth_penalty = no\nanalyzer = no\n"
                "error_sleep_time = 0\nline_length_limit = 16384\n"
                "hard_error_limit = 100000\nsoft_error_limit = 100000\n")
    daemon = subprocess.Popen([BIN, "serve", "-c", conf],
                              stderr=open(os.path.join(tmp, "stderr"), "w"))
    try:
        deadline = time.monotonic() + 30
        while b" ready: " not in open(os.path.join(tmp, "stderr"), "rb").read():
            if daemon.poll() is not None or time.monotonic() > deadline:
                sys.exit("mxbait did not start: " + open(os.path.join(tmp, "stderr")).read())
            time.sleep(0.05)
        time.sleep(0.5)
        u0 = usage(data)
        pw = bytes(1 + i % 31 for i in range(PWLEN)) if MODE == "ctrl" else b"p" * PWLEN
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        done, replies = 0, {}
        while done < N:
            with socket.create_connection(("127.0.0.1", ports["smtps"]), timeout=10) as raw:
                s = ctx.wrap_socket(raw)
                f = s.makefile("rb")

                def reply():
                    while True:
                        line = f.readline()
                        if not line or line[3:4] != b"-":
                            return line

                reply()
                s.sendall(b"EHLO amp.example.net\r\n")
                reply()
                for _ in range(5):
                    if done >= N:
                        break
                    s.sendall(b"AUTH LOGIN\r\n")
                    if not reply().startswith(b"334"):
                        break
                    s.sendall(base64.b64encode(b"user%d@example.test" % done) + b"\r\n")
                    reply()
                    s.sendall(base64.b64encode(pw[:-6] + b"%06d" % done) + b"\r\n")
                    code = reply()[:3].decode()
                    replies[code] = replies.get(code, 0) + 1
                    done += 1
        time.sleep(1.0)
        u1 = usage(data)
    finally:
        daemon.terminate()
        daemon.wait()
    u2 = usage(data)
    print(json.dumps({"binary": BIN, "attempts": N, "password_bytes": PWLEN, "mode": MODE,
                      "replies": replies,
                      "bytes_per_attempt_running": round((sum(u1.values()) - sum(u0.values())) / N),
                      "bytes_per_attempt_stopped": round((sum(u2.values()) - sum(u0.values())) / N),
                      "running": u1, "stopped": u2}, indent=1))
    shutil.rmtree(tmp)


main()
