"""The PostgreSQL hub (docs/scaling.md) with a real PostgreSQL 15 started here.

Three real `mxbait serve` sensors receive logins from Python's smtplib (STARTTLS, AUTH
LOGIN with wrong passwords) while a `mxbait hub push` process per sensor streams to a
private PostgreSQL (pg_env.py: initdb/pg_ctl as nobody, unix socket only).  Mid-stream
the hub is killed with SIGKILL and started again.  When the load has stopped and the
pushers caught up: every sensor's events at the hub equal its own mxbait.db rows,
one for one (the same sequence numbers, none twice), and no captured password left a
sensor (keyed hashes only, by default).  Then the cross-sensor queries.
"""

import json
import os
import smtplib
import sqlite3
import ssl
import subprocess
import threading
import time

import pytest

import pg_env
from conftest import MXBAIT_BIN, Daemon, sanitizer_env

pytestmark = pytest.mark.skipif(not pg_env.available(), reason="postgresql-15 not installed")

SECRET_PW = "Hub-Secret-" + os.urandom(4).hex()


def hammer(d, stop, user):
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    while not stop.is_set():
        try:
            with smtplib.SMTP("127.0.0.1", d.port_submission, timeout=10) as s:
                s.ehlo("client.example.net")
                s.starttls(context=ctx)
                s.ehlo("client.example.net")
                for _ in range(3):
                    try:
                        s.login(user, SECRET_PW)
                    except smtplib.SMTPAuthenticationError:
                        pass
        except (OSError, smtplib.SMTPException):
            time.sleep(0.05)


def mx(conf, *args, check=True, timeout=180):
    r = subprocess.run([MXBAIT_BIN, args[0], "-c", conf] + list(args[1:]), capture_output=True,
                       timeout=timeout, env=sanitizer_env())
    err = r.stderr.decode(errors="replace")
    assert "Sanitizer" not in err and "runtime error" not in err, err
    if check:
        assert r.returncode == 0, (args, err)
    return r


def test_three_sensors_kill_the_hub(tmp_path):
    pg = pg_env.Postgres().start()
    sensors, pushers, loaders = [], [], []
    stop = threading.Event()
    try:
        for i in range(3):
            os.makedirs(str(tmp_path / f"s{i}"))
            d = Daemon(str(tmp_path / f"s{i}"), f"hub-s{i}", auth_failure_delay="0",
                       hub_url=pg.conninfo,
                       hub_sensor=f"sensor-{i}", hub_batch=200, hub_interval="200ms")
            d.start()
            sensors.append(d)
        for i, d in enumerate(sensors):
            err = open(os.path.join(d.tmp, "push.stderr"), "wb")
            pushers.append((subprocess.Popen([MXBAIT_BIN, "hub", "push", "-c", d.conf_path],
                                             stdout=subprocess.DEVNULL, stderr=err,
                                             env=sanitizer_env()), err))
            t = threading.Thread(target=hammer, args=(d, stop, f"user{i}"), daemon=True)
            t.start()
            loaders.append(t)
        time.sleep(4)
        # the hub dies mid-stream (rows of open transactions are lost at the hub, never
        # at the sensors), stays down while the load goes on, and comes back
        pg.kill9()
        time.sleep(3)
        pg.start()
        time.sleep(3)
        stop.set()
        for t in loaders:
            t.join(timeout=30)
        # wait until every pusher has caught up with its sensor, and the sensors are
        # quiet (sessions still closing write their last events after the load stops)
        def sensor_rows():
            out = {}
            for i, d in enumerate(sensors):
                db = sqlite3.connect(f"file:{os.path.join(d.data_dir, 'mxbait.db')}?mode=ro",
                                     uri=True, timeout=30)
                out[f"sensor-{i}"] = db.execute("SELECT count(*), max(id), sum(id) FROM events"
                                                ).fetchone()
                db.close()
            return out

        deadline = time.monotonic() + 120
        prev = None
        while True:
            want = sensor_rows()
            got = dict((r.split("|")[0], int(r.split("|")[1])) for r in
                       pg.psql("SELECT id, event_seq FROM sensors").splitlines())
            if want == prev and all(got.get(s) == w[1] for s, w in want.items()):
                break
            assert time.monotonic() < deadline, (got, want)
            prev = want
            time.sleep(1)
        for s, (n, mx_id, sum_id) in want.items():
            assert n > 100, f"{s}: too little load to mean anything ({n} events)"
            row = pg.psql(f"SELECT count(*), count(DISTINCT seq), max(seq), sum(seq) FROM events"
                          f" WHERE sensor = '{s}'").split("|")
            # equal to the sensor's own: the same rows, once each
            assert [int(x) for x in row] == [n, n, mx_id, sum_id], (s, row, (n, mx_id, sum_id))
        # pushers logged the outage and recovered
        for p, err in pushers:
            assert p.poll() is None, "a pusher died"
        text = b"".join(open(e.name, "rb").read() for _, e in pushers).decode(errors="replace")
        assert "connected again" in text, text[-2000:]

        # privacy by default: no password at the hub, keyed hashes instead
        assert pg.psql("SELECT count(*) FROM events WHERE password IS NOT NULL") == "0"
        assert int(pg.psql("SELECT count(*) FROM events WHERE pw_hash IS NOT NULL")) > 0
        assert SECRET_PW not in pg.psql("SELECT string_agg(coalesce(username, '') || '|' ||"
                                        " coalesce(pw_hash, ''), ',') FROM events")
        # daily partitions, not the default one
        assert pg.psql("SELECT count(*) FROM events_default") == "0"

        conf = sensors[0].conf_path
        stats = json.loads(mx(conf, "hub", "stats", "--json").stdout)
        assert stats["sensors"] == 3 and stats["events"] == sum(w[0] for w in want.values())
        assert stats["partitions"] >= 2
        att = json.loads(mx(conf, "hub", "attackers", "--json").stdout)
        assert att[0]["ip"] == "127.0.0.1" and att[0]["sensors"] == 3
        creds = json.loads(mx(conf, "hub", "creds", "--json").stdout)
        users = {u["username"]: u for u in creds["usernames"]}
        assert {"user0", "user1", "user2"} <= set(users)
        # one password, tried on three sensors: one keyed hash seen by all three
        assert creds["passwords"][0]["sensors"] == 3
        assert creds["passwords"][0]["password"].startswith("(hmac) ")
        assert SECRET_PW not in json.dumps(creds)
        # campaigns merge across sensors by MinHash (0.3 estimated similarity or more):
        # two sensors' near-duplicates are one campaign, an unrelated one stays apart
        import random
        rnd = random.Random(5)
        base = [rnd.getrandbits(64) for _ in range(128)]
        near = [v if k % 8 else rnd.getrandbits(64) for k, v in enumerate(base)]  # 112/128
        other = [rnd.getrandbits(64) for _ in range(128)]
        hexof = lambda mh: b"".join(v.to_bytes(8, "little") for v in mh).hex()
        pg.psql("INSERT INTO campaigns (sensor, key, messages, first_seen, minhash) VALUES"
                f" ('sensor-0', 'Caaaa', 5, now(), decode('{hexof(base)}', 'hex')),"
                f" ('sensor-1', 'Cbbbb', 7, now(), decode('{hexof(near)}', 'hex')),"
                f" ('sensor-2', 'Ccccc', 2, now(), decode('{hexof(other)}', 'hex'))")
        camps = json.loads(mx(conf, "hub", "campaigns", "--json").stdout)
        assert len(camps) == 2, camps
        assert camps[0]["sensors"] == 2 and camps[0]["messages"] == 12, camps
        assert set(camps[0]["members"]) == {"sensor-0:Caaaa", "sensor-1:Cbbbb"}, camps
        assert camps[1]["members"] == ["sensor-2:Ccccc"], camps
        table = mx(conf, "hub", "attackers").stdout.decode()
        assert "127.0.0.1" in table
    finally:
        stop.set()
        for p, err in pushers:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
            err.close()
        for d in sensors:
            problems = d.stop()
            assert not problems, problems
        pg.stop()


# ProtectSystem=strict + StateDirectory=mxbait + User=mxbait of etc/mxbait-{report,hub}.service,
# done by hand (this machine has no systemd as PID 1): a private mount namespace where
# every mount is read-only but the data directory, and an unprivileged account.
SERVICE_SANDBOX = r"""
set -e
mount --make-rprivate /
mount --bind "$MXB_RW" "$MXB_RW"
for m in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
	case "$m" in
	/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|"$MXB_RW") ;;
	*) mount -o remount,bind,ro "$m" 2>/dev/null || true ;;
	esac
done
# the sandbox is real: nothing outside the data directory is writable
for d in / /etc /tmp /var/tmp "$(dirname "$MXB_RW")"; do
	if touch "$d/.mxbait-rw-probe" 2>/dev/null; then
		rm -f "$d/.mxbait-rw-probe"; echo "sandbox: $d is writable" >&2; exit 99
	fi
done
exec setpriv --reuid=nobody --regid=nogroup --clear-groups --inh-caps=-all \
	--bounding-set=-all --no-new-privs -- "$@"
"""


def as_service(data_dir, *args):
    env = dict(sanitizer_env(), MXB_RW=data_dir, HOME="/nonexistent")
    r = subprocess.run(["unshare", "--mount", "--", "sh", "-c", SERVICE_SANDBOX, "sandbox",
                        MXBAIT_BIN] + list(args), capture_output=True, timeout=180, env=env)
    err = r.stderr.decode(errors="replace")
    assert r.returncode != 99, err
    assert "Sanitizer" not in err and "runtime error" not in err, err
    assert r.returncode == 0, (args, err)
    return r.stdout.decode(errors="replace")


def test_services_read_only_system_and_privacy(tmp_path):
    """The reporter (federation pass) and the hub pusher work as their systemd units run
    them (unprivileged, everything read-only but the state directory), and by default no
    captured password, message body or victim address reaches the hub: a real message
    through smtplib, the whole hub database dumped and searched."""
    import shutil
    import tempfile
    if not shutil.which("unshare") or not shutil.which("setpriv"):
        pytest.skip("unshare/setpriv missing")
    if subprocess.run(["unshare", "--mount", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespaces here")
    victim = "victim." + os.urandom(3).hex() + "@corp-victim.example"
    body_mark = "BODY-" + os.urandom(6).hex()
    base = tempfile.mkdtemp(prefix="mxbait-hubsvc-")  # nobody must reach the data dir
    os.chmod(base, 0o755)
    pg = pg_env.Postgres().start()
    d = None
    try:
        d = Daemon(base, "hub-svc", auth_failure_delay="0", hub_url=pg.conninfo,
                   hub_sensor="sensor-svc", feed_publish=True, export_min_confidence=50)
        d.start()
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", d.port_submission, timeout=30) as s:
            s.ehlo("client.example.net")
            s.starttls(context=ctx)
            s.ehlo("client.example.net")
            for _ in range(3):
                try:
                    s.login("bob", SECRET_PW)
                except smtplib.SMTPAuthenticationError:
                    pass
        from conftest import USER, PASSWORD
        with smtplib.SMTP("127.0.0.1", d.port_submission, timeout=30) as s:
            s.ehlo("client.example.net")
            s.starttls(context=ctx)
            s.ehlo("client.example.net")
            s.login(USER, PASSWORD)
            s.sendmail("billing@spam-sender.test", [victim],
                       f"From: billing@spam-sender.test\r\nTo: {victim}\r\n"
                       f"Subject: Invoice\r\n\r\n{body_mark}\r\n"
                       f"Pay at http://pay.phish-domain.example.com/x\r\n")
        adb = os.path.join(d.data_dir, "analysis.db")
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
        problems = d.stop()
        assert not problems, problems
        # two events the sensor pruned (retention, database_budget) before any push:
        # the pusher says so, and counts them
        db = sqlite3.connect(os.path.join(d.data_dir, "mxbait.db"))
        db.execute("DELETE FROM events WHERE id IN (2, 3)")
        db.commit()
        db.close()
        # the state directory belongs to the service account, as StateDirectory= makes it
        subprocess.run(["chown", "-R", "nobody:nogroup", d.data_dir], check=True)
        # the administrator makes the feed key as root (sudo mxbait keys --generate): it
        # is the service account's, or the reporter below could not read it
        mx(d.conf_path, "keys", "--generate")
        import pwd
        nobody = pwd.getpwnam("nobody").pw_uid
        for f in ("keys", "keys/feed.key"):
            assert os.stat(os.path.join(d.data_dir, f)).st_uid == nobody, f
        mx(d.conf_path, "peers", "list")
        for f in os.listdir(d.data_dir):
            assert os.stat(os.path.join(d.data_dir, f)).st_uid == nobody, f

        fed = json.loads(as_service(d.data_dir, "report", "run", "--json", "-c",
                                    d.conf_path))["federation"]
        assert fed["published"] >= 1, fed
        assert os.path.isfile(os.path.join(d.data_dir, "feed", "manifest"))
        out = json.loads(as_service(d.data_dir, "hub", "push", "--once", "--json", "-c",
                                    d.conf_path))
        db = sqlite3.connect(f"file:{os.path.join(d.data_dir, 'mxbait.db')}?mode=ro", uri=True)
        n = db.execute("SELECT count(*) FROM events").fetchone()[0]
        db.close()
        assert out["events"] == n and out["lag_events"] == 0, (out, n)
        assert out["missing_events"] == 2, out
        assert pg.psql("SELECT count(*) FROM events WHERE sensor = 'sensor-svc'") == str(n)
        assert int(pg.psql("SELECT count(*) FROM indicators")) > 0
        # the sensor itself knows the victim (so the check below can fail) ...
        idb = sqlite3.connect(f"file:{os.path.join(d.data_dir, 'intel.db')}?mode=ro", uri=True)
        assert idb.execute("SELECT count(*) FROM indicators WHERE kind = 'recipient' AND"
                           " value = ?", (victim,)).fetchone()[0] == 1
        idb.close()
        # ... and the hub has none of it: the whole database, dumped
        dump = subprocess.run([os.path.join(pg_env.PG_BIN, "pg_dump"), "-h", pg.dir, "-p",
                               str(pg.port), "-U", "mxbait", "-d", "postgres"],
                              capture_output=True, timeout=120, check=True).stdout.decode()
        assert "sensor-svc" in dump and "127.0.0.1" in dump  # the dump has the data
        for secret in (SECRET_PW, PASSWORD, body_mark, victim, "corp-victim.example"):
            assert secret not in dump, secret
    finally:
        if d and not d.stopped:
            d.stop()
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
