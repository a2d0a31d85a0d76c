"""A private, real Postfix + Dovecot for the guard's tests (tests/integration/test_guard.py,
tests/integration/test_guard_netns.py) and for making log fixtures (tests/guard/).

Dovecot 2.3 (`dovecot -F -c DIR/dovecot.conf`): passwd-file users, IMAP (and POP3 when
installed), an auth socket for Postfix SASL, optionally `auth_policy_server_url` pointing
at mxbait; log_path in DIR.  Postfix 3.7 (`postfix -c DIR start`): one smtpd (and a
submission smtpd) using Dovecot SASL, virtual mailboxes delivered by virtual(8) into the
Maildirs Dovecot serves, optionally `check_policy_service` to mxbait twice (before and
after reject_unlisted_recipient, the second with policy_context=known), maillog_file in
DIR.  Only the addresses and ports the caller gives: loopback high ports on the host, the
standard ports inside a network namespace.  Every process is stopped by its PID.
"""

import os
import shutil
import signal
import socket
import subprocess
import time

USERS = {"alice@example.test": "Real-Alice-Pw1", "bob@example.test": "Real-Bob-Pw2"}
DOMAIN = "example.test"


def have_real_servers():
    return bool(shutil.which("dovecot") and shutil.which("postfix"))


def wait_port(host, port, timeout=15, netns=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if netns:
            r = subprocess.run(["ip", "netns", "exec", netns, "python3", "-c",
                                f"import socket; socket.create_connection(('{host}', {port}), 1)"],
                               capture_output=True)
            if r.returncode == 0:
                return True
        else:
            try:
                socket.create_connection((host, port), 1).close()
                return True
            except OSError:
                pass
        time.sleep(0.1)
    return False


class RealServers:
    """Dovecot + Postfix in tmp.  ports: dict imap, pop3, smtp, submission (0 = off)."""

    def __init__(self, tmp, listen="127.0.0.1", ports=None, policy_url=None, api_key=None,
                 nonce=None, postfix_policy=None, netns=None, tls=None, hostname="mail.example.test",
                 mynetworks="127.0.0.0/8", no_penalty=False):
        self.tmp = tmp
        self.listen = listen
        self.ports = ports or {}
        self.policy_url = policy_url
        self.api_key = api_key
        self.nonce = nonce
        self.postfix_policy = postfix_policy
        self.netns = netns
        self.tls = tls  # (cert, key) or None
        self.hostname = hostname
        self.mynetworks = mynetworks
        # Dovecot's per-address auth penalty (2 s doubling to 15 s before every
        # answer) off, for tests that must stay fast: the documented way is an anvil
        # penalty socket nobody may open
        self.no_penalty = no_penalty
        self.dv_dir = os.path.join(tmp, "dovecot")
        self.pf_dir = os.path.join(tmp, "postfix")
        self.vmail = os.path.join(tmp, "vmail")
        self.dovecot_log = os.path.join(self.dv_dir, "dovecot.log")
        self.maillog = os.path.join(self.pf_dir, "maillog")
        self.dv_proc = None
        self.pf_started = False

    def _ns(self, cmd):
        return (["ip", "netns", "exec", self.netns] + cmd) if self.netns else cmd

    def write_config(self):
        os.chmod(self.tmp, 0o755)
        for d in (self.dv_dir, os.path.join(self.dv_dir, "run"), os.path.join(self.dv_dir, "state"),
                  self.pf_dir, os.path.join(self.pf_dir, "queue"), os.path.join(self.pf_dir, "data"),
                  self.vmail):
            os.makedirs(d, exist_ok=True)
        os.chmod(self.dv_dir, 0o755)
        shutil.chown(os.path.join(self.pf_dir, "data"), "postfix")
        shutil.chown(self.vmail, "nobody", "nogroup")
        with open(os.path.join(self.dv_dir, "passwd"), "w") as f:
            for u, p in USERS.items():
                f.write(f"{u}:{{PLAIN}}{p}::::::\n")
        protocols = "imap pop3" if os.path.exists("/usr/lib/dovecot/pop3") else "imap"
        p = self.ports
        policy = ""
        if self.policy_url:
            policy = (f"auth_policy_server_url = {self.policy_url}\n"
                      f"auth_policy_server_api_header = X-API-Key: {self.api_key}\n"
                      f"auth_policy_hash_nonce = {self.nonce}\n")
        ssl = "ssl = no\n"
        if self.tls:
            ssl = f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}\n"
        pop3 = ""
        if "pop3" in protocols:
            pop3 = (f"service pop3-login {{\n  inet_listener pop3 {{\n    address = {self.listen}\n"
                    f"    port = {p.get('pop3', 0)}\n  }}\n  inet_listener pop3s {{\n    port = 0\n  }}\n}}\n")
        penalty = ""
        if self.no_penalty:
            penalty = ("service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n"
                       "  }\n}\n")
        with open(os.path.join(self.dv_dir, "dovecot.conf"), "w") as f:
            f.write(f"""# written by tests/integration/guard_env.py
base_dir = {self.dv_dir}/run
state_dir = {self.dv_dir}/state
instance_name = mxbait-guard-{os.getpid()}-{id(self)}
protocols = {protocols}
listen = {self.listen}
log_path = {self.dovecot_log}
{ssl}disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = yes
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{self.vmail}/%d/%n/Maildir
first_valid_uid = 1
{policy}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.dv_dir}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={self.vmail}/%d/%n
}}
service auth {{
  unix_listener {self.dv_dir}/auth-postfix {{
    mode = 0666
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = {self.listen}
    port = {p.get('imap', 0)}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
{pop3}{penalty}""")
        with open(os.path.join(self.pf_dir, "vmailbox"), "w") as f:
            for u in USERS:
                name, dom = u.split("@")
                f.write(f"{u} {dom}/{name}/Maildir/\n")
        restrictions = "permit_sasl_authenticated, reject_unauth_destination"
        if self.postfix_policy:
            pp = self.postfix_policy
            restrictions = (f"check_policy_service {{ {pp}, policy_context=rcpt }}, "
                            "reject_unlisted_recipient, "
                            f"check_policy_service {{ {pp}, policy_context=known }}, "
                            "permit_sasl_authenticated, reject_unauth_destination")
        tls = ""
        if self.tls:
            tls = (f"smtpd_tls_cert_file = {self.tls[0]}\nsmtpd_tls_key_file = {self.tls[1]}\n"
                   "smtpd_tls_security_level = may\n")
        with open(os.path.join(self.pf_dir, "main.cf"), "w") as f:
            f.write(f"""# written by tests/integration/guard_env.py
compatibility_level = 3.6
queue_directory = {self.pf_dir}/queue
data_directory = {self.pf_dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = /tmp
maillog_file = {self.maillog}
myhostname = {self.hostname}
mydomain = {DOMAIN}
inet_interfaces = {'all' if self.listen in ('0.0.0.0', '*') else self.listen}
inet_protocols = ipv4
mynetworks = {self.mynetworks}
mydestination =
alias_maps =
alias_database =
smtpd_banner = $myhostname ESMTP Postfix (Debian/GNU)
smtpd_client_port_logging = yes
{tls}smtpd_tls_auth_only = no
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {self.dv_dir}/auth-postfix
smtpd_recipient_restrictions = {restrictions}
virtual_mailbox_domains = {DOMAIN}
virtual_mailbox_maps = texthash:{self.pf_dir}/vmailbox
virtual_mailbox_base = {self.vmail}
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
""")
        lines = []
        if p.get("smtp"):
            lines.append(f"{self.listen}:{p['smtp']} inet n - n - - smtpd")
        if p.get("submission"):
            lines.append(f"{self.listen}:{p['submission']} inet n - n - - smtpd\n"
                         "  -o syslog_name=postfix/submission")
        lines.append("""postlog   unix-dgram n  -       n       -       1       postlogd
pickup    unix  n       -       n       60      1       pickup
anvil     unix  -       -       n       -       1       anvil
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
proxymap  unix  -       -       n       -       -       proxymap
scache    unix  -       -       n       -       1       scache
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
virtual   unix  -       n       n       -       -       virtual
tlsmgr    unix  -       -       n       1000?   1       tlsmgr""")
        with open(os.path.join(self.pf_dir, "master.cf"), "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        self.write_config()
        out = open(os.path.join(self.dv_dir, "stdout"), "wb")
        self.dv_proc = subprocess.Popen(self._ns(["dovecot", "-F", "-c",
                                                  os.path.join(self.dv_dir, "dovecot.conf")]),
                                        stdout=out, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        r = subprocess.run(self._ns(["postfix", "-c", self.pf_dir, "start"]), capture_output=True)
        self.pf_started = True
        if r.returncode != 0:
            raise RuntimeError(f"postfix start failed: {r.stdout!r} {r.stderr!r}")
        for name in ("imap", "smtp", "submission"):
            if self.ports.get(name) and not wait_port(self.listen, self.ports[name],
                                                      netns=self.netns):
                raise RuntimeError(f"{name} on {self.listen}:{self.ports[name]} did not start; "
                                   f"dovecot log: {self.read(self.dovecot_log)[-2000:]} "
                                   f"maillog: {self.read(self.maillog)[-2000:]}")
        return self

    @staticmethod
    def read(path):
        try:
            with open(path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.pf_started:
            subprocess.run(self._ns(["postfix", "-c", self.pf_dir, "stop"]), capture_output=True)
            pid_file = os.path.join(self.pf_dir, "queue", "pid", "master.pid")
            try:
                with open(pid_file) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError):
                pid = None
            for _ in range(50):
                if not pid:
                    break
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.1)
            else:
                if pid:
                    os.kill(pid, signal.SIGKILL)
            self.pf_started = False
        if self.dv_proc and self.dv_proc.poll() is None:
            self.dv_proc.send_signal(signal.SIGTERM)
            try:
                self.dv_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.dv_proc.kill()
                self.dv_proc.wait()

    def maildir_messages(self, user):
        name, dom = user.split("@")
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.vmail, dom, name, "Maildir", sub)
            try:
                for n in os.listdir(d):
                    with open(os.path.join(d, n), "rb") as f:
                        out.append(f.read())
            except OSError:
                pass
        return out


def dovecot_pwhash(nonce, login, password, bits=12, mech="sha256"):
    """Dovecot's documented auth-policy hash (src/auth/auth-policy.c), written here
    apart from mxbait's C: mech(nonce || login || NUL || password), the first `bits`
    bits, right-aligned, hex."""
    import hashlib
    d = hashlib.new(mech, nonce.encode() + login.encode() + b"\0" + password.encode()).digest()
    if bits == 0 or bits > len(d) * 8:
        return d.hex()
    v = int.from_bytes(d, "big") >> (len(d) * 8 - bits)
    return v.to_bytes((bits + 7) // 8, "big").hex()
