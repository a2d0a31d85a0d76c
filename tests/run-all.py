#!/usr/bin/python3
"""run-all: the one entry point of `make test`.

Runs, in order, each bounded in time:
  unit        `meson test -C ASAN_BUILD --suite unit [--suite <other non-fuzz suites>]`,
              per-test results read from ASAN_BUILD/meson-logs/testlog.json
  fuzz        tests/fuzz/run.sh FUZZ_BUILD TARGET SECONDS for every libFuzzer binary in
              FUZZ_BUILD/tests/fuzz/ (a crash, leak or timeout is a failure)
  integration pytest tests/integration with MXBAIT_BIN=ASAN_BUILD/src/mxbait, per-test
              results read from its JUnit XML

Prints one section per suite and ends with exactly one line `N passed, N failed`
(`, N skipped` appended when something was skipped).  Exit status 0 only when nothing
failed and at least one test ran.

Sanitizers: ASAN_OPTIONS / UBSAN_OPTIONS / LSAN_OPTIONS are set so that a UBSan report
is fatal (halt_on_error=1) with a stack trace, and a LeakSanitizer report fails the
process (detect_leaks=1).  Every child inherits them, the daemon under test included.
"""

import argparse
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Wall-clock bounds per suite (seconds).  Each suite is killed (its whole process
# group, which we created) when it overruns, and the overrun counts as a failure.
UNIT_TIMEOUT = 900
INTEGRATION_TIMEOUT = 900
FUZZ_SLACK = 120          # per fuzz target, on top of --fuzz-seconds


class Tally:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []   # (suite, name, why)

    def ok(self, suite, name):
        self.passed += 1
        print(f"  PASS  {name}")

    def fail(self, suite, name, why=""):
        self.failed += 1
        self.failures.append((suite, name, why))
        print(f"  FAIL  {name}" + (f"  ({why})" if why else ""))

    def skip(self, suite, name, why=""):
        self.skipped += 1
        print(f"  SKIP  {name}" + (f"  ({why})" if why else ""))


def sanitizer_env(env):
    """Sanitizer settings every child inherits; existing values are extended, not lost."""
    common = "print_stacktrace=1:halt_on_error=1"
    env["ASAN_OPTIONS"] = ":".join(filter(None, [
        env.get("ASAN_OPTIONS", ""),
        "halt_on_error=1:abort_on_error=0:detect_leaks=1:print_summary=1"
        # No strict_string_checks: it treats strndup(buf, n) on a buffer without a
        # NUL as an overflow, which C allows and the parsers rely on.
        ":detect_stack_use_after_return=1"]))
    env["UBSAN_OPTIONS"] = ":".join(filter(None, [
        env.get("UBSAN_OPTIONS", ""), common + ":print_summary=1"]))
    env["LSAN_OPTIONS"] = ":".join(filter(None, [
        env.get("LSAN_OPTIONS", ""), "print_suppressions=0"]))
    return env


def section(title):
    print()
    print(f"== {title} " + "=" * max(3, 70 - len(title)))
    sys.stdout.flush()


CURRENT = set()  # the child process groups running now (killed if we are stopped)


def _on_signal(signum, frame):
    """Interrupted (Ctrl-C, SIGTERM): take the running suites' process groups with us."""
    for p in list(CURRENT):
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    sys.exit(128 + signum)


def run_bounded(cmd, timeout, env, cwd=ROOT, capture=False):
    """Run cmd in its own process group; on timeout kill that group.
    Returns (returncode or None on timeout, output or None)."""
    out = subprocess.PIPE if capture else None
    p = subprocess.Popen(cmd, cwd=cwd, env=env, start_new_session=True,
                         stdout=out, stderr=subprocess.STDOUT if capture else None,
                         text=capture)
    CURRENT.add(p)
    try:
        o, _ = p.communicate(timeout=timeout)
        return p.returncode, o
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        o, _ = p.communicate()
        return None, o
    finally:
        CURRENT.discard(p)


# --------------------------------------------------------------------------- unit

def meson_suites(build, env):
    """Suites defined in the build (besides 'unit'), from meson introspect."""
    rc, out = run_bounded(["meson", "introspect", "--tests", build], 120, env,
                          capture=True)
    suites = set()
    if rc == 0 and out:
        try:
            for t in json.loads(out):
                for s in t.get("suite", []):
                    suites.add(s.split(":", 1)[-1])
        except ValueError:
            pass
    return suites


def run_unit(args, tally, env):
    section("unit (meson test, ASan+UBSan)")
    build = args.asan_build
    if not os.path.isfile(os.path.join(build, "build.ninja")):
        tally.fail("unit", "meson-setup", f"{build}/build.ninja missing: build first")
        return
    # 'unit' always; other suites (e.g. protocol conversations) too, never fuzz/bench.
    suites = ["unit"] + sorted(s for s in meson_suites(build, env)
                               if s not in ("unit", "fuzz", "bench"))
    log = os.path.join(build, "meson-logs", "testlog.json")
    try:
        os.unlink(log)
    except FileNotFoundError:
        pass
    cmd = ["meson", "test", "-C", build, "--print-errorlogs"]
    for s in suites:
        cmd += ["--suite", s]
    print("  $ " + " ".join(cmd))
    sys.stdout.flush()
    rc, _ = run_bounded(cmd, UNIT_TIMEOUT, env)
    if rc is None:
        tally.fail("unit", "meson-test", f"timed out after {UNIT_TIMEOUT}s")
    results = []
    if os.path.isfile(log):
        with open(log, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        results.append(json.loads(line))
                    except ValueError:
                        pass
    for r in results:
        name = r.get("name", "?")
        res = r.get("result", "?")
        if res in ("OK", "EXPECTEDFAIL"):
            tally.ok("unit", name)
        elif res == "SKIP":
            tally.skip("unit", name)
        else:
            tally.fail("unit", name, f"{res}, exit {r.get('returncode')}")
    if rc not in (0, None) and not any(r.get("result") not in ("OK", "EXPECTEDFAIL", "SKIP")
                                       for r in results):
        # meson itself failed (a build error, no tests): that is a failure too.
        tally.fail("unit", "meson-test", f"meson test exited {rc} "
                   f"with {len(results)} results")


# --------------------------------------------------------------------------- fuzz

def fuzz_targets(fuzz_build):
    d = os.path.join(fuzz_build, "tests", "fuzz")
    if not os.path.isdir(d):
        return []
    out = []
    for n in sorted(os.listdir(d)):
        p = os.path.join(d, n)
        if (os.path.isfile(p) and os.access(p, os.X_OK) and "." not in n):
            out.append(n)
    return out


def run_fuzz(args, tally, env):
    section(f"fuzz (libFuzzer, {args.fuzz_seconds}s per target)")
    if args.fuzz_seconds <= 0:
        print("  fuzzing disabled (--fuzz-seconds 0)")
        return
    if not os.path.isfile(os.path.join(args.fuzz_build, "build.ninja")):
        tally.fail("fuzz", "fuzz-build", f"{args.fuzz_build}/build.ninja missing")
        return
    targets = fuzz_targets(args.fuzz_build)
    if not targets:
        print(f"  no fuzz targets in {args.fuzz_build}/tests/fuzz/")
        return
    script = os.path.join(ROOT, "tests", "fuzz", "run.sh")

    def one(t):
        cmd = ["sh", script, args.fuzz_build, t, str(args.fuzz_seconds)]
        rc, out = run_bounded(cmd, args.fuzz_seconds + FUZZ_SLACK, env, capture=True)
        return cmd, rc, out

    # Targets run --fuzz-jobs at a time (each libFuzzer process is one thread): the
    # wall time shrinks by that factor on a machine with that many cores, and every
    # target still gets its --fuzz-seconds.  Reports are printed in target order.
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.fuzz_jobs)) as ex:
        for t, (cmd, rc, out) in zip(targets, ex.map(one, targets)):
            print(f"  $ {' '.join(cmd)}")
            for line in (out or "").splitlines():
                print("    " + line)
            if rc == 0:
                tally.ok("fuzz", t)
            elif rc is None:
                tally.fail("fuzz", t, "run.sh overran its time bound")
            else:
                tally.fail("fuzz", t, f"run.sh exited {rc}")
            sys.stdout.flush()


# --------------------------------------------------------------------------- integration

def run_integration(args, tally, env):
    section("integration (pytest, real clients against the ASan daemon)")
    binp = os.path.abspath(os.path.join(args.asan_build, "src", "mxbait"))
    env = dict(env)
    env["MXBAIT_BIN"] = binp
    env.setdefault("MXBAIT_SHARED", os.path.join(os.path.dirname(ROOT), "shared"))
    tmp = tempfile.mkdtemp(prefix="mxbait-pytest-")
    junit = os.path.join(tmp, "junit.xml")
    cmd = ["/usr/bin/python3", "-m", "pytest", os.path.join(ROOT, "tests", "integration"),
           "-q", "-rfEs", "-p", "no:cacheprovider", f"--junitxml={junit}",
           "-o", "junit_family=xunit2"]
    if args.pytest_args:
        cmd += args.pytest_args.split()
    print("  $ MXBAIT_BIN=" + binp + " " + " ".join(cmd))
    sys.stdout.flush()
    rc, _ = run_bounded(cmd, INTEGRATION_TIMEOUT, env)
    if rc is None:
        tally.fail("integration", "pytest", f"timed out after {INTEGRATION_TIMEOUT}s")
    if not os.path.isfile(junit):
        tally.fail("integration", "pytest", f"no JUnit report (pytest exited {rc})")
        return
    try:
        root = ET.parse(junit).getroot()
    except ET.ParseError as e:
        tally.fail("integration", "pytest", f"unreadable JUnit report: {e}")
        return
    n = 0
    for tc in root.iter("testcase"):
        n += 1
        name = tc.get("classname", "") + "::" + tc.get("name", "?")
        name = name.replace("tests.integration.", "")
        fail = tc.find("failure")
        err = tc.find("error")
        skip = tc.find("skipped")
        if fail is not None or err is not None:
            el = fail if fail is not None else err
            msg = (el.get("message") or "").splitlines()
            tally.fail("integration", name, msg[0][:200] if msg else "")
        elif skip is not None:
            tally.skip("integration", name, (skip.get("message") or "")[:200])
        else:
            tally.ok("integration", name)
    if rc not in (0, 5, None) and n == 0:
        tally.fail("integration", "pytest", f"pytest exited {rc} and reported no test")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--asan-build", default="build-asan")
    ap.add_argument("--fuzz-build", default="build-fuzz")
    ap.add_argument("--fuzz-seconds", type=int, default=20)
    ap.add_argument("--fuzz-jobs", type=int, default=os.cpu_count() or 1,
                    help="fuzz targets run at once (default: the number of CPUs)")
    ap.add_argument("--suites", default="unit,fuzz,integration",
                    help="comma-separated subset of unit,fuzz,integration")
    ap.add_argument("--pytest-args", default="",
                    help="extra pytest arguments, e.g. \"-k swaks\"")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)

    env = sanitizer_env(dict(os.environ))
    tally = Tally()
    t0 = time.monotonic()
    suites = [s.strip() for s in args.suites.split(",") if s.strip()]
    if "unit" in suites:
        run_unit(args, tally, env)
    if "fuzz" in suites:
        run_fuzz(args, tally, env)
    if "integration" in suites:
        run_integration(args, tally, env)

    section(f"summary ({time.monotonic() - t0:.0f}s)")
    for suite, name, why in tally.failures:
        print(f"  FAILED [{suite}] {name}" + (f": {why}" if why else ""))
    if tally.passed + tally.failed == 0:
        print("  no test ran: that is a failure")
    line = f"{tally.passed} passed, {tally.failed} failed"
    if tally.skipped:
        line += f", {tally.skipped} skipped"
    sys.stdout.flush()
    print(line)
    sys.stdout.flush()
    return 1 if tally.failed or tally.passed + tally.failed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
