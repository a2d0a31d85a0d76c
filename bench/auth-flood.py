#!/usr/bin/python3
"""auth-flood: a bounded SMTP AUTH brute-force load generator (loopback only).

Many concurrent connections; each (SMTP) says EHLO, upgrades with STARTTLS (or starts with TLS
on an implicit-TLS port), says EHLO again, then sends AUTH PLAIN guesses with random
passwords one after the other, each as soon as the previous one is answered, and
reconnects whenever the server closes the session (421, EOF, timeout).  With
--proto imap the guesses are LOGIN commands after STARTTLS (or on an implicit-TLS
port).  It stops by itself at --duration seconds or --max-attempts answered guesses, whichever comes first.

Promises: it only connects to 127.0.0.0/8 (refuses anything else); the load is bounded
in time, connections and attempts; it prints one JSON object with what it counted:
  attempts   failed guesses the server answered (SMTP 535 or 454, IMAP NO)
  ok         guesses answered 235 / OK (the benchmark expects 0: passwords are random)
  other      other replies to AUTH (a misconfigured server shows up here)
  sessions   connections that reached the AUTH stage; closed: ended by the server
  rate       attempts per second over the measured time
With --per-session 0 it makes no guesses: connect, TLS, EHLO (SMTP), QUIT, reconnect;
that measures what a connection alone costs the server.
Used by bench/auth-flood.sh against mxbait and against Postfix + Dovecot SASL.
"""
import argparse
import asyncio
import base64
import ipaddress
import json
import os
import random
import ssl
import sys
import time

USERS = ["info", "admin", "sales", "office", "test", "support", "contact", "webmaster",
         "postmaster", "user", "mail", "noreply", "billing", "hr", "marketing"]


class Stats:
    def __init__(self):
        self.attempts = 0
        self.ok = 0
        self.other = 0
        self.sessions = 0
        self.closed = 0
        self.timeouts = 0
        self.connect_errors = 0
        self.tls_errors = 0
        self.replies = {}


async def read_reply(reader, timeout):
    """One SMTP reply (all lines); returns the last line's code as a str, '' on EOF."""
    code = ""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return ""
        code = line[:3].decode("ascii", "replace")
        if len(line) < 4 or line[3:4] != b"-":
            return code


async def read_tagged(reader, tag, timeout):
    """IMAP: lines up to the tagged reply; returns its status word, 'BYE' or '' on EOF."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line:
            return ""
        if line.startswith(b"* BYE"):
            return "BYE"
        if line.startswith(tag + b" "):
            return line[len(tag) + 1:].split(b" ", 1)[0].decode("ascii", "replace")


async def imap_session(args, stats, deadline, reader, writer, sslctx):
    line = await asyncio.wait_for(reader.readline(), args.timeout)
    if not line.startswith(b"* OK"):
        stats.closed += 1
        return
    if args.tls == "starttls":
        writer.write(b"s STARTTLS\r\n")
        if await read_tagged(reader, b"s", args.timeout) != "OK":
            stats.closed += 1
            return
        try:
            await asyncio.wait_for(writer.start_tls(sslctx, server_hostname=None), args.timeout)
        except (OSError, ssl.SSLError):
            stats.tls_errors += 1
            return
    stats.sessions += 1
    n = 0
    if args.per_session == 0:
        writer.write(b"q LOGOUT\r\n")
        await read_tagged(reader, b"q", args.timeout)
        return
    while time.monotonic() < deadline and stats.attempts < args.max_attempts:
        n += 1
        tag = b"a%d" % n
        user = "%s@%s" % (random.choice(USERS), args.domain)
        pw = "zq-" + os.urandom(6).hex()
        writer.write(tag + b" LOGIN " + user.encode() + b" " + pw.encode() + b"\r\n")
        code = await read_tagged(reader, tag, args.timeout)
        if code == "NO":
            stats.attempts += 1
        elif code == "OK":
            stats.ok += 1
            break
        elif code in ("", "BYE"):
            stats.closed += 1
            break
        else:
            stats.other += 1
            stats.replies[code] = stats.replies.get(code, 0) + 1
            if stats.other > 1000:
                break


async def session(args, stats, deadline, src, sslctx):
    port = args.port
    local = (src, 0) if src else None
    try:
        if args.tls == "implicit":
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                args.host, port, ssl=sslctx, server_hostname=None, local_addr=local),
                args.timeout)
        else:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                args.host, port, local_addr=local), args.timeout)
    except (OSError, asyncio.TimeoutError, ssl.SSLError):
        stats.connect_errors += 1
        await asyncio.sleep(0.05)
        return
    try:
        if args.proto == "imap":
            await imap_session(args, stats, deadline, reader, writer, sslctx)
            return
        if await read_reply(reader, args.timeout) != "220":
            stats.closed += 1
            return
        writer.write(b"EHLO flood.example.net\r\n")
        if await read_reply(reader, args.timeout) != "250":
            stats.closed += 1
            return
        if args.tls == "starttls":
            writer.write(b"STARTTLS\r\n")
            if await read_reply(reader, args.timeout) != "220":
                stats.closed += 1
                return
            try:
                await asyncio.wait_for(writer.start_tls(sslctx, server_hostname=None),
                                       args.timeout)
            except (OSError, ssl.SSLError):
                stats.tls_errors += 1
                return
            writer.write(b"EHLO flood.example.net\r\n")
            if await read_reply(reader, args.timeout) != "250":
                stats.closed += 1
                return
        stats.sessions += 1
        if args.per_session == 0:
            writer.write(b"QUIT\r\n")
            await read_reply(reader, args.timeout)
            return
        while time.monotonic() < deadline and stats.attempts < args.max_attempts:
            user = "%s@%s" % (random.choice(USERS), args.domain)
            pw = "zq-" + os.urandom(6).hex()  # never in a common-password list
            blob = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode())
            writer.write(b"AUTH PLAIN " + blob + b"\r\n")
            code = await read_reply(reader, args.timeout)
            if code in ("535", "454"):
                stats.attempts += 1
            elif code == "235":
                stats.ok += 1
                break
            elif code == "" or code == "421":
                stats.closed += 1
                break
            else:
                stats.other += 1
                stats.replies[code] = stats.replies.get(code, 0) + 1
                if stats.other > 1000:
                    break
    except asyncio.TimeoutError:
        stats.timeouts += 1
    except (OSError, ssl.SSLError, EOFError):
        stats.closed += 1
    finally:
        writer.transport.abort()


async def worker(i, args, stats, deadline, sslctx):
    src = args.sources[i % len(args.sources)] if args.sources else None
    while time.monotonic() < deadline and stats.attempts < args.max_attempts:
        await session(args, stats, deadline, src, sslctx)


async def main_async(args):
    sslctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    sslctx.check_hostname = False
    sslctx.verify_mode = ssl.CERT_NONE
    stats = Stats()
    t0 = time.monotonic()
    deadline = t0 + args.duration
    tasks = [asyncio.create_task(worker(i, args, stats, deadline, sslctx))
             for i in range(args.conns)]
    # The bound: stop at the deadline or the attempt count, whatever the server does.
    while time.monotonic() < deadline and stats.attempts < args.max_attempts:
        await asyncio.sleep(0.05)
        if all(t.done() for t in tasks):
            break
    elapsed = time.monotonic() - t0
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return stats, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--proto", choices=["smtp", "imap"], default="smtp")
    ap.add_argument("--tls", choices=["starttls", "implicit", "none"], default="starttls")
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--max-attempts", type=int, default=1000000)
    ap.add_argument("--per-session", type=int, default=-1,
                    help="0: no guesses, only connect, TLS, EHLO and QUIT (the cost of a "
                    "connection); -1: guess until the server closes")
    ap.add_argument("--timeout", type=float, default=60.0, help="per reply")
    ap.add_argument("--sources", default="", help="comma list of 127.x.y.z to bind")
    ap.add_argument("--domain", default="example.test")
    ap.add_argument("--label", default="")
    args = ap.parse_args()
    if not ipaddress.ip_address(args.host).is_loopback:
        sys.exit("auth-flood: loopback only (127.0.0.0/8, ::1)")
    args.sources = [s for s in args.sources.split(",") if s]
    for s in args.sources:
        if not ipaddress.ip_address(s).is_loopback:
            sys.exit("auth-flood: loopback sources only")
    if not (1 <= args.conns <= 20000 and 0 < args.duration <= 3600):
        sys.exit("auth-flood: --conns 1..20000, --duration 0..3600 s")
    stats, elapsed = asyncio.run(main_async(args))
    out = {"label": args.label, "proto": args.proto, "port": args.port, "tls": args.tls, "conns": args.conns,
           "elapsed": round(elapsed, 3), "attempts": stats.attempts, "ok": stats.ok,
           "other": stats.other, "other_codes": stats.replies, "sessions": stats.sessions,
           "closed": stats.closed, "timeouts": stats.timeouts,
           "connect_errors": stats.connect_errors, "tls_errors": stats.tls_errors,
           "rate": round(stats.attempts / elapsed, 1) if elapsed > 0 else 0}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
