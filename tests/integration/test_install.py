"""`meson install` lays out a service (issue 8 item 2): binary, man pages, the systemd
unit, sysusers.d and tmpfiles.d entries, logrotate, and the example configuration as
/etc/mxbait/mxbait.conf, which a second install never overwrites.  Installed into a
DESTDIR from the tree the suite already built (build-asan), so it takes a second.
The Debian package (build, lintian, install on a fresh root, the service started as
the unit does) is scripts/check-package.sh, outside `make test` (minutes)."""

import os
import re
import shutil
import subprocess

import pytest

from conftest import MXBAIT_BIN, USERNAME_LIST

BUILD = os.path.dirname(os.path.dirname(MXBAIT_BIN))


def _install(destdir):
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir",
                        str(destdir)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout + r.stderr


def _prefix():
    r = subprocess.run(["meson", "introspect", "--buildoptions", BUILD], capture_output=True,
                       text=True, timeout=60)
    import json
    opts = {o["name"]: o["value"] for o in json.loads(r.stdout)}
    return opts["prefix"], opts["bindir"], opts["mandir"]


def test_meson_install_lays_out_a_service(tmp_path):
    if not os.path.isfile(os.path.join(BUILD, "build.ninja")):
        pytest.skip("no meson build next to MXBAIT_BIN")
    d = tmp_path / "root"
    _install(d)
    prefix, bindir, mandir = _prefix()
    root = str(d)
    def there(p):
        return os.path.join(root, p.lstrip("/"))
    assert os.access(there(os.path.join(prefix, bindir, "mxbait")), os.X_OK)
    assert os.path.isfile(there(os.path.join(prefix, mandir, "man8", "mxbait.8")))
    assert os.path.isfile(there(os.path.join(prefix, mandir, "man5", "mxbait.conf.5")))
    # the plausible user names, where the binary's username_list default looks
    users = there(os.path.join(prefix, "share", "mxbait", "usernames.txt"))
    assert open(users).read() == open(USERNAME_LIST).read()
    with open(there(os.path.join(prefix, bindir, "mxbait")), "rb") as f:
        assert os.path.join(prefix, "share", "mxbait", "usernames.txt").encode() in f.read()
    units = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
             if f == "mxbait.service"]
    assert len(units) == 1, units
    unit = open(units[0]).read()
    exe = os.path.join(prefix, bindir, "mxbait")
    assert f"ExecStart={exe} serve -c /etc/mxbait/mxbait.conf\n" in unit
    # CAP_SETUID, CAP_SETGID and CAP_SETPCAP: for analyzer_user's launcher only,
    # CAP_NET_ADMIN for divert's nft helper only (the daemon drops them;
    # test_analyzer_user.py and test_guard_netns.py start it the way this unit does)
    caps = "CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_SETPCAP CAP_NET_ADMIN"
    for line in ("Type=notify", "User=mxbait", f"AmbientCapabilities={caps}",
                 f"CapabilityBoundingSet={caps}",
                 "StateDirectory=mxbait", "UMask=0077", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
                 "ExecReload=/bin/kill -HUP $MAINPID"):
        assert line + "\n" in unit, line
    assert re.search(r"^RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK$", unit, re.M)
    # The reporter's unit beside it: the same account and state, no capability.
    runits = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
              if f == "mxbait-report.service"]
    assert len(runits) == 1 and os.path.dirname(runits[0]) == os.path.dirname(units[0])
    runit = open(runits[0]).read()
    assert f"ExecStart={exe} report --daemon -c /etc/mxbait/mxbait.conf\n" in runit
    for line in ("User=mxbait", "StateDirectory=mxbait", "UMask=0077", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "CapabilityBoundingSet=", "AmbientCapabilities="):
        assert line + "\n" in runit, line
    # the hub pusher's unit (outbound too) as hardened, with no capability at all
    # (test_hub.py runs both the reporter and the pusher read-only but the state directory)
    side = {"mxbait-report.service": runits[0]}
    hunits = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
              if f == "mxbait-hub.service"]
    assert len(hunits) == 1 and os.path.dirname(hunits[0]) == os.path.dirname(units[0]), hunits
    side["mxbait-hub.service"] = hunits[0]
    hunit = open(hunits[0]).read()
    assert f"ExecStart={exe} hub push -c /etc/mxbait/mxbait.conf\n" in hunit
    for line in ("User=mxbait", "StateDirectory=mxbait", "UMask=0077", "ProtectSystem=strict",
                 "NoNewPrivileges=yes", "SystemCallFilter=@system-service",
                 "CapabilityBoundingSet=", "MemoryDenyWriteExecute=yes"):
        assert line + "\n" in hunit, line
    assert "AmbientCapabilities=CAP" not in hunit
    sysusers = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
                if dp.endswith("sysusers.d")]
    accounts = [l.split()[1] for l in open(sysusers[0]) if l.startswith("u ")]
    assert sorted(accounts) == ["mxbait", "mxbait-analyzer"], accounts
    tmpfiles = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs
                if dp.endswith("tmpfiles.d")]
    assert tmpfiles and "d /var/lib/mxbait 0700 mxbait mxbait" in open(tmpfiles[0]).read()
    assert "postrotate" in open(there("/etc/logrotate.d/mxbait")).read()
    conf = there("/etc/mxbait/mxbait.conf")
    assert "data_dir = /var/lib/mxbait" in open(conf).read()
    # The installed example is a configuration mxbait accepts.
    r = subprocess.run([MXBAIT_BIN, "check", "-c", conf, "--no-ports"], capture_output=True,
                       text=True, timeout=60)
    assert "data_dir" in r.stdout + r.stderr or r.returncode == 0
    assert not re.search(r"mxbait\.conf:\d+: \S+: (unknown key|expected)", r.stderr), r.stderr
    # A second install keeps the admin's file.
    with open(conf, "a") as f:
        f.write("# the admin's edit\n")
    _install(d)
    assert "the admin's edit" in open(conf).read()
    # systemd's own opinion of the unit, when systemd-analyze is there.
    if shutil.which("systemd-analyze"):
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", units[0]],
                           capture_output=True, text=True, timeout=120)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
        assert m and float(m.group(1)) <= 2.5, r.stdout[-500:]
        for path in side.values():
            r = subprocess.run(["systemd-analyze", "security", "--offline=yes", path],
                               capture_output=True, text=True, timeout=120)
            m = re.search(r"Overall exposure level for \S+: ([\d.]+)", r.stdout)
            assert m and float(m.group(1)) <= 2.5, (path, r.stdout[-500:])
