#!/usr/bin/python3
"""readme-tour: run the README's "A two-minute tour" against a daemon `make run` started.

    scripts/readme-tour.py [README.md]      (from the top of the tree; the daemon runs)

The commands are read from the README itself (the ```sh blocks of the section "A
two-minute tour", `make run` left out), so the tour that is checked is the one readers
follow.  Placeholders are filled the way a reader would: QUEUEID with the last queue id
a client was given, SESSIONID with the newest session of `mxbait sessions --json`,
some.eml with a captured message copied out of the spool.

A command fails the tour when:
  - a tool says it lacks a capability (swaks "TLS not available", "requires
    Net::SSLeay", curl "Protocol ... not supported", "command not found"), whatever
    the command;
  - it exits non-zero, unless the README's comment on its line says the refusal is the
    point ("refused", "fails", "554", "denied");
  - it is an `mxbait` command and prints nothing.
The cracking loop must print "cracked: bob:123456".  One line per command, then
`readme-tour: N commands, N failed`; exit status 0 when none failed.
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

TOOL_ERRORS = re.compile(
    r"TLS not available|requires Net::SSLeay|IO::Socket::INET6|Authen::SASL|"
    r"[Pp]rotocol \"?\w+\"? not supported|command not found|not installed|"
    r"Can't locate \S+\.pm")
EXPECTED_REFUSAL = re.compile(r"#.*\b(refused|fails|554|denied)\b")


def tour_commands(readme):
    text = open(readme, encoding="utf-8").read()
    start = text.index("## A two-minute tour")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end > 0 else len(text)]
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                continue
            cmd = line
            # backslash continuations, and a for ... done loop, are one command
            while cmd.rstrip().split("#")[0].rstrip().endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd += "\n" + lines[i]
            if re.match(r"\s*for\b", cmd):
                while not re.match(r"\s*done\b", lines[i]) and i + 1 < len(lines):
                    i += 1
                    cmd += "\n" + lines[i]
            i += 1
            if re.match(r"\s*make run\b", cmd):
                continue
            cmds.append(cmd)
    return cmds


def newest_session():
    r = subprocess.run(["./build/src/mxbait", "sessions", "--json", "-n", "1"],
                       capture_output=True, text=True)
    try:
        rows = json.loads(r.stdout)
        return rows[0]["session"] if rows else None
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def main():
    readme = sys.argv[1] if len(sys.argv) > 1 else "README.md"
    cmds = tour_commands(readme)
    if not cmds:
        print("readme-tour: no commands found in the tour section")
        return 1
    tmp = tempfile.mkdtemp(prefix="readme-tour-")
    queue_id = None
    failed = 0
    cracked = False
    for cmd in cmds:
        run = cmd
        if "QUEUEID" in run:
            run = run.replace("QUEUEID", queue_id or "NO-QUEUE-ID-SEEN")
        if "SESSIONID" in run:
            run = run.replace("SESSIONID", newest_session() or "NO-SESSION-SEEN")
        if "some.eml" in run:
            msgs = sorted(glob.glob("mxbait-data/spool/new/*"))
            eml = os.path.join(tmp, "some.eml")
            if msgs:
                shutil.copyfile(msgs[-1], eml)
            run = run.replace("some.eml", eml)
        r = subprocess.run(["/bin/bash", "-c", run], capture_output=True, timeout=300)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        ids = re.findall(r"250 2\.0\.0 Ok: queued as ([0-9A-F]+)", out)
        if ids:
            queue_id = ids[-1]
        if "cracked: bob:123456" in out:
            cracked = True
        why = None
        m = TOOL_ERRORS.search(out)
        if m:
            why = f"tool error: {m.group(0)!r}"
        elif r.returncode != 0 and not EXPECTED_REFUSAL.search(cmd):
            why = f"exit {r.returncode}"
        elif "mxbait" in run.split("#")[0] and "./build/src/mxbait" in run and not out.strip():
            why = "no output"
        elif re.match(r"\s*for\b", cmd) and "cracked: bob:" not in out:
            why = "the guessing loop cracked nothing"
        first = cmd.strip().splitlines()[0][:90]
        if why:
            failed += 1
            print(f"  FAIL  {first}  ({why})")
            print("        " + out[-1500:].replace("\n", "\n        "))
        else:
            print(f"  ok    {first}")
    shutil.rmtree(tmp, ignore_errors=True)
    if not cracked:
        failed += 1
        print("  FAIL  no 'cracked: bob:123456' anywhere in the tour")
    print(f"readme-tour: {len(cmds)} commands, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
