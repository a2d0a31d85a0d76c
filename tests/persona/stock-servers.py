#!/usr/bin/python3
"""stock-servers: Debian 12's own Postfix 3.7 and Dovecot 2.3 in a private instance, configured
as the package installs them (Postfix "Internet Site" main.cf with Debian's TLS lines and
the submission/submissions services of Debian's master.cf uncommented; Dovecot with its
built-in defaults plus Debian's conf.d choices that reach the wire: ssl = yes, ssl_dh,
auth_mechanisms = plain login), so that the persona of mxbait can be recorded against the
real thing (docs/persona.md, tests/persona/README.md).

    stock-servers.py start DIR      write configs in DIR, start both, print the ports
    stock-servers.py stop DIR       stop what `start` started (by the PIDs it saved)

Only loopback high ports (never the standard ones); the certificate is made like
Debian's snakeoil (make-ssl-cert: openssl req -x509 -days 3650 -sha256 with
/usr/share/ssl-cert/ssleay.cnf) for mail.example.test.  One account alice /
alice-Secret-1 with three INBOX messages.  Everything started is stopped by PID.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

HOST = "mail.example.test"
DOMAIN = "example.test"
USER, PASSWORD = "alice", "alice-Secret-1"
ROLES = ("smtp", "submission", "smtps", "imap", "imaps", "pop3", "pop3s")


def free_ports(n):
    ss = [socket.socket() for _ in range(n)]
    for s in ss:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in ss]
    for s in ss:
        s.close()
    return ports


def snakeoil(d):
    cnf = os.path.join(d, "ssleay.cnf")
    with open("/usr/share/ssl-cert/ssleay.cnf") as f:
        t = f.read()
    with open(cnf, "w") as f:
        f.write(t.replace("@HostName@", HOST).replace("@SubjectAltName@", "DNS:" + HOST))
    cert, key = os.path.join(d, "ssl-cert-snakeoil.pem"), os.path.join(d, "ssl-cert-snakeoil.key")
    subprocess.run(["openssl", "req", "-config", cnf, "-new", "-x509", "-days", "3650", "-nodes",
                    "-sha256", "-out", cert, "-keyout", key], check=True, capture_output=True)
    os.chmod(key, 0o644)
    return cert, key


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


def start(d):
    os.makedirs(d, exist_ok=True)
    os.chmod(d, 0o755)
    p = dict(zip(ROLES, free_ports(len(ROLES))))
    cert, key = snakeoil(d)
    dv = os.path.join(d, "dovecot")
    pf = os.path.join(d, "postfix")
    for sub in (dv, os.path.join(dv, "run"), os.path.join(dv, "state"), pf,
                os.path.join(pf, "queue"), os.path.join(pf, "data"), os.path.join(d, "mail")):
        os.makedirs(sub, exist_ok=True)
    os.chmod(dv, 0o755)
    shutil.chown(os.path.join(pf, "data"), "postfix")
    maildir = os.path.join(d, "mail", USER)
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, sub), exist_ok=True)
    src = "/work/shared/persona/mailbox"
    if os.path.isdir(src):
        for i, n in enumerate(sorted(os.listdir(src))):
            shutil.copy(os.path.join(src, n), os.path.join(maildir, "cur",
                        "%d.M1P1.%s:2,S" % (1700000000 + i, HOST)))
    subprocess.run(["chown", "-R", "nobody:nogroup", os.path.join(d, "mail")], check=True)
    write(os.path.join(dv, "passwd"), f"{USER}:{{PLAIN}}{PASSWORD}::::::\n")
    protocols = "imap pop3" if os.path.exists("/usr/lib/dovecot/pop3") else "imap"
    pop3 = ""
    if "pop3" in protocols:
        pop3 = f"""service pop3-login {{
  inet_listener pop3 {{
    port = {p['pop3']}
  }}
  inet_listener pop3s {{
    port = {p['pop3s']}
    ssl = yes
  }}
}}
"""
    write(os.path.join(dv, "dovecot.conf"), f"""# tests/persona/stock-servers.py: Dovecot 2.3 as Debian 12 ships it (built-in
# defaults + the conf.d lines that reach the wire), private base_dir, loopback high ports
base_dir = {dv}/run
state_dir = {dv}/state
instance_name = mxbait-persona-{os.getpid()}
protocols = {protocols}
listen = 127.0.0.1
log_path = {dv}/dovecot.log
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_client_ca_dir = /etc/ssl/certs
ssl_dh = </usr/share/dovecot/dh.pem
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
mail_location = maildir:{d}/mail/%n
first_valid_uid = 1
namespace inbox {{
  inbox = yes
  mailbox Drafts {{
    special_use = \\Drafts
  }}
  mailbox Junk {{
    special_use = \\Junk
  }}
  mailbox Trash {{
    special_use = \\Trash
  }}
  mailbox Sent {{
    special_use = \\Sent
  }}
  mailbox "Sent Messages" {{
    special_use = \\Sent
  }}
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%n {dv}/passwd
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={d}/mail/%n
}}
service auth {{
  unix_listener {dv}/auth-postfix {{
    mode = 0666
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = {p['imap']}
  }}
  inet_listener imaps {{
    port = {p['imaps']}
    ssl = yes
  }}
}}
{pop3}""")
    # Debian's main.cf after "Internet Site" (postfix.postinst) + main.cf.tls
    write(os.path.join(pf, "main.cf"), f"""# tests/persona/stock-servers.py: Debian 12's main.cf for "Internet Site"
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
smtpd_tls_cert_file={cert}
smtpd_tls_key_file={key}
smtpd_tls_security_level=may
smtp_tls_CApath=/etc/ssl/certs
smtp_tls_security_level=may
smtp_tls_session_cache_database = btree:${{data_directory}}/smtp_scache
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = {HOST}
alias_maps = hash:{pf}/aliases
alias_database = hash:{pf}/aliases
mydomain = {DOMAIN}
myorigin = {DOMAIN}
mydestination = $myhostname, {DOMAIN}, localhost.{DOMAIN}, localhost
relayhost =
mynetworks = 127.0.0.1/32 [::ffff:127.0.0.1]/128 [::1]/128
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# private instance
queue_directory = {pf}/queue
data_directory = {pf}/data
maillog_file_prefixes = /tmp
maillog_file = {pf}/maillog
smtpd_sasl_type = dovecot
smtpd_sasl_path = {dv}/auth-postfix
local_recipient_maps = proxy:unix:passwd.byname $alias_maps
""")
    # alice is a local recipient as on the host the shared recordings were made on (a
    # system user there); mail to her goes nowhere (no /var/mail is touched)
    write(os.path.join(pf, "aliases"), f"postmaster: root\nabuse: root\n{USER}: /dev/null\n")
    subprocess.run(["postalias", "-c", pf, os.path.join(pf, "aliases")], check=True)
    with open("/etc/postfix/master.cf") as f:
        master = f.read()
    master = master.replace("\nsmtp      inet  n       -       y       -       -       smtpd",
                            f"\n127.0.0.1:{p['smtp']} inet n - n - - smtpd")
    # Debian's commented submission and submissions services, enabled as an admin does
    out, in_block = [], False
    for line in master.split("\n"):
        if line.startswith("#submission inet"):
            line, in_block = f"127.0.0.1:{p['submission']} inet n - n - - smtpd", True
        elif line.startswith("#submissions     inet"):
            line, in_block = f"127.0.0.1:{p['smtps']} inet n - n - - smtpd", True
        elif in_block and line.startswith("#  -o "):
            line = line[1:]
        elif in_block and not line.startswith("#     "):
            in_block = False
        out.append(line)
    # a private instance runs unchrooted (the chroot column changes nothing on the wire)
    out = [re.sub(r"^(\S+\s+\S+\s+\S+\s+\S+\s+)y(\s)", r"\1n\2", l) if not l.startswith("#") else l
           for l in out]
    write(os.path.join(pf, "master.cf"), "\n".join(out))
    dvp = subprocess.Popen(["dovecot", "-F", "-c", os.path.join(dv, "dovecot.conf")],
                           stdout=open(os.path.join(dv, "stdout"), "wb"), stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, start_new_session=True)
    r = subprocess.run(["postfix", "-c", pf, "start"], capture_output=True, text=True)
    if r.returncode:
        print(r.stdout, r.stderr, file=sys.stderr)
    state = {"ports": p, "dovecot_pid": dvp.pid, "postfix_dir": pf}
    write(os.path.join(d, "state.json"), json.dumps(state))
    for role, port in p.items():
        if role.startswith("pop3") and "pop3" not in protocols:
            continue
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.1)
    print(",".join(f"{k}={v}" for k, v in p.items() if "pop3" in protocols or not k.startswith("pop3")))


def stop(d):
    with open(os.path.join(d, "state.json")) as f:
        st = json.load(f)
    pf = st["postfix_dir"]
    subprocess.run(["postfix", "-c", pf, "stop"], capture_output=True)
    try:
        with open(os.path.join(pf, "queue", "pid", "master.pid")) as f:
            mpid = int(f.read().strip())
    except (OSError, ValueError):
        mpid = None
    for pid in (mpid, st["dovecot_pid"]):
        if not pid:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    time.sleep(1)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        raise SystemExit(__doc__)
    (start if sys.argv[1] == "start" else stop)(sys.argv[2])
