#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Secrets through the real binary: what other local users can learn of an API key.

    test_secrets.py TEST --cln-otlp PATH

cmdline: --header values and an --endpoint password are gone from /proc/PID/cmdline while
the daemon runs, and still reach the collector. header_file: --header-file works, with its
precedence between the variable and --header; a file others may read, one of another user,
or a missing one stops start-up (exit 2) saying what to do. nondumpable: a process of the
daemon's own user cannot read its /proc/PID/environ (where OTEL_EXPORTER_OTLP_HEADERS is).
finder_helper: the node finder's helper process keeps no secret in its memory, and only its
two capabilities.
header_file_reload: SIGHUP re-reads --header-file: the next requests carry the new value,
nothing queued is lost; a file now refused, or one the switched-to user cannot read, leaves
the headers in use and says why.
Tests run as root (they switch users); without root they skip, except with CI=true.
"""
import base64
import os
import pwd
import shutil
import signal
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, Collector, Proc, check, clean_env, main, need_root,  # noqa: E402
                     options, run, test)

(NAME,), A = options("cln-otlp")
N_REAL = 585  # spans in CAPTURE
KEY = "SECRET-k3y-4711"  # a header value
PASSWORD = "SECRET-pa55"  # an endpoint password


def cmdline(pid):
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        return f.read().decode("utf-8", "surrogateescape")


def export_run(tmp, mc, *args, env=None):
    """cln-otlp exports the capture to the mock collector and ends: CompletedProcess."""
    return run([A.cln_otlp, "--file", CAPTURE, "--exporter", "otlp", "--endpoint", mc.url(),
                "--batch-size", "1000", *args], env=clean_env(**(env or {})), timeout=120)


def secret_file(tmp, text, mode=0o600, name="headers"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


@test("cmdline")
def cmdline_wiped(tmp):
    """--header values and an --endpoint password leave /proc/PID/cmdline, reach the
    collector."""
    with Collector(tmp) as mc:
        url = "http://user:%s@127.0.0.1:%d" % (PASSWORD, mc.http_port)
        with Proc([A.cln_otlp, "--file", CAPTURE, "--follow", "--exporter", "otlp", "--endpoint",
                   url, "--header", "x-api-key=" + KEY, "--header=x-second=" + KEY + "2",
                   "--batch-delay", "100"], tmp, "cln-otlp", env=clean_env()) as d:
            reqs = mc.wait_requests(1)
            line = cmdline(d.pid)
            check("the header values are not in /proc/PID/cmdline", KEY not in line, line)
            check("the password is not in /proc/PID/cmdline", PASSWORD not in line, line)
            check("what is not secret stays: the header names, the user",
                  "x-api-key=" in line and "x-second=" in line and "//user:" in line, line)
            d.stopped()
    q = reqs[0]["headers"]
    check("x-api-key reached the collector", q.get("x-api-key") == KEY, q)
    check("x-second reached the collector", q.get("x-second") == KEY + "2", q)
    check("the password reached the collector (basic auth)", q.get("authorization") ==
          "Basic " + base64.b64encode(("user:" + PASSWORD).encode()).decode(), q)
    check("no secret on stderr", KEY not in d.err() and PASSWORD not in d.err(), d.err())


@test("header_file")
def header_file(tmp):
    """Headers from a 0600 file arrive; precedence: variable < file < --header."""
    path = secret_file(tmp, "# the collector's key\n\nx-file: %s\r\nx-both : from file \n"
                       "x-over: from file\n" % KEY)
    with Collector(tmp) as mc:
        p = export_run(tmp, mc, "--header-file", path, "--header", "x-over=from flag",
                       env={"OTEL_EXPORTER_OTLP_HEADERS": "x-env=e,x-both=from%20env"})
        check("exit 0", p.returncode == 0, p.stderr)
        reqs = mc.requests()
    check("requests came", reqs)
    for q in reqs:
        h = q["headers"]
        check("x-file from the file, literally", h.get("x-file") == KEY, h)
        check("x-env from the variable", h.get("x-env") == "e", h)
        check("x-both: the file wins over the variable", h.get("x-both") == "from file", h)
        check("x-over: --header wins over the file", h.get("x-over") == "from flag", h)
    check("every span exported", "exported=%d" % N_REAL in p.stderr, p.stderr)
    check("no value on stderr", KEY not in p.stderr, p.stderr)


def refused(argv, needles):
    p = run(argv, env=clean_env(), timeout=60)
    check("%s: exit 2" % " ".join(argv[-2:]), p.returncode == 2, (p.returncode, p.stderr))
    for n in needles:
        check("the message says %r" % n, n in p.stderr, p.stderr)
    check("the secret is not quoted", KEY not in p.stderr, p.stderr)
    check("nothing exported", p.stdout == "", p.stdout[:200])


@test("header_file_refused")
def header_file_refused(tmp):
    """A header file others may read or write, one of another user, a missing one: exit 2."""
    need_root("it makes a file of another user")
    base = [A.cln_otlp, "--file", CAPTURE, "--exporter", "stdout", "--header-file"]
    text = "x-api-key: %s\n" % KEY
    for mode, what in ((0o644, "readable"), (0o620, "writable"), (0o604, "readable")):
        path = secret_file(tmp, text, mode, "h%o" % mode)
        refused(base + [path], ["--header-file " + path, "readable or writable by group or "
                                "others (mode 0%o)" % mode, "chmod 600 " + path])
    other = secret_file(tmp, text, 0o600, "of-nobody")
    os.chown(other, pwd.getpwnam("nobody").pw_uid, -1)
    refused(base + [other], ["--header-file " + other, "belongs to uid %d" %
                             pwd.getpwnam("nobody").pw_uid, "chown"])
    missing = os.path.join(tmp, "no-such-file")
    refused(base + [missing], ["--header-file " + missing, "cannot open it",
                               "No such file or directory"])
    bad = secret_file(tmp, "x-ok: 1\nx-api-key=%s\n" % KEY, name="bad-line")
    refused(base + [bad], ["--header-file " + bad, "line 2 is not NAME: VALUE"])
    ok = secret_file(tmp, text, 0o600, "good")
    p = run(base + [ok], env=clean_env(), timeout=60)
    check("the same file, mode 0600 and root's: accepted", p.returncode == 0, p.stderr)


@test("nondumpable")
def nondumpable(tmp):
    """A process of the daemon's own user cannot read its environment (nor ptrace it)."""
    need_root("it runs processes as nobody")
    os.chmod(tmp, 0o755)
    trace = os.path.join(tmp, "trace")
    shutil.copy(CAPTURE, trace)
    os.chmod(trace, 0o644)
    env = clean_env(OTEL_EXPORTER_OTLP_HEADERS="x-api-key=" + KEY)
    probe = "import sys; sys.stdout.write(open('/proc/%d/environ').read())"
    # The probe works: it reads the environment of another process of its user.
    with Proc(["/usr/bin/python3", "-c", "import sys; sys.stdin.read()"], tmp, "peer",
              stdin=-1, user="nobody", env=env) as peer:
        p = run(["/usr/bin/python3", "-c", probe % peer.pid], user="nobody")
        check("nobody reads the environ of its own plain process", KEY in p.stdout, p.stderr)
        peer.proc.stdin.close()
    with Proc([A.cln_otlp, "--file", trace, "--follow", "--exporter", "stdout", "--batch-delay",
               "100"], tmp, "cln-otlp", user="nobody", env=env) as d:
        d.wait_err("privileges:")
        p = run(["/usr/bin/python3", "-c", probe % d.pid], user="nobody")
        check("nobody cannot read the daemon's environ", p.returncode != 0 and
              "Permission denied" in p.stderr and KEY not in p.stdout, (p.stdout, p.stderr))
        check("its /proc files belong to root", os.stat("/proc/%d/environ" % d.pid).st_uid == 0)
        d.stopped()


def children(pid):
    """The pids of the processes whose parent is pid."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


MEM_REGION_MAX = 1 << 30


def sanitized(binary):
    """Built with AddressSanitizer?"""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def memory_has(pid, needles):
    """The needles found in the writable memory of pid (read as root)."""
    found = set()
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for ln in maps:
            addr, perms = ln.split()[:2]
            if "w" not in perms:
                continue
            lo, hi = (int(x, 16) for x in addr.split("-"))
            if hi - lo > MEM_REGION_MAX:
                continue  # a sanitizer's shadow or reserve, not data
            for at in range(lo, hi, 1 << 20):
                try:
                    mem.seek(at)
                    data = mem.read(min(1 << 20, hi - at) + 64)
                except OSError:
                    continue
                found |= {n for n in needles if n.encode() in data}
    return found


@test("finder_helper")
def finder_helper(tmp):
    """The node finder helper (forked at start-up to look up each node's identity) keeps
    none of the secrets: no header value (flag or variable) nor the endpoint's password in
    its memory, while the daemon has them; it runs unprivileged, with exactly
    CAP_SYS_PTRACE and CAP_DAC_OVERRIDE."""
    need_root("it reads another process's memory")
    os.chmod(tmp, 0o755)
    env = clean_env(OTEL_EXPORTER_OTLP_HEADERS="x-api-key=" + KEY)
    with Collector(tmp) as mc:
        url = "http://user:%s@127.0.0.1:%d" % (PASSWORD, mc.http_port)
        with Proc([A.cln_otlp, "--socket", os.path.join(tmp, "sock"), "--exporter", "otlp",
                   "--endpoint", url, "--header", "x-second=" + KEY + "2"], tmp, "cln-otlp",
                  env=env) as d:
            d.wait_err("privileges: running as")
            helpers = children(d.pid)
            check("one helper process", len(helpers) == 1, helpers)
            with open("/proc/%d/status" % helpers[0]) as f:
                status = dict(ln.rstrip("\n").split(":\t", 1) for ln in f if ":\t" in ln)
            check("it runs as the daemon's user, not root",
                  status["Uid"].split()[1] != "0" and status["Uid"] == open(
                      "/proc/%d/status" % d.pid).read().split("Uid:\t")[1].split("\n")[0],
                  status["Uid"])
            want = (1 << 1) | (1 << 19)  # CAP_DAC_OVERRIDE, CAP_SYS_PTRACE
            check("its capabilities: CAP_DAC_OVERRIDE and CAP_SYS_PTRACE only",
                  int(status["CapEff"], 16) == want and int(status["CapPrm"], 16) == want,
                  (status["CapEff"], status["CapPrm"]))
            needles = (KEY, KEY + "2", PASSWORD)
            check("the search works: the daemon holds the secrets",
                  memory_has(d.pid, needles) == set(needles), memory_has(d.pid, needles))
            if sanitized(A.cln_otlp):
                # AddressSanitizer's runtime keeps its own copy of the environment, made
                # before main(): the variable's value is there, out of the program's reach.
                needles = (KEY + "2", PASSWORD)
            leaked = memory_has(helpers[0], needles)
            check("the helper holds none of them", not leaked, leaked)
            d.stopped()


def emit_lines(n0, n1):
    """The span_emit lines n0..n1 of the capture (a trace file of their own)."""
    with open(CAPTURE) as f:
        lines = [ln for ln in f if ln.startswith("span_emit ")]
    return "".join(lines[n0:n1]), len(lines[n0:n1])


@test("header_file_reload")
def header_file_reload(tmp):
    """SIGHUP: the header file's new value is used from the next request; a refused file
    changes nothing; every span is delivered."""
    need_root("it runs as --user root to re-read a root-owned file")
    path = secret_file(tmp, "x-api-key: %s-v1\n" % KEY)
    trace = os.path.join(tmp, "trace")
    parts = [(0, 200), (200, 400), (400, 585)]
    open(trace, "w").close()
    sent = 0
    with Collector(tmp) as mc:
        with Proc([A.cln_otlp, "--file", trace, "--follow", "--exporter", "otlp", "--endpoint",
                   mc.url(), "--header-file", path, "--user", "root", "--batch-size", "1000",
                   "--batch-delay", "100"], tmp, "cln-otlp", env=clean_env()) as d:
            d.wait_err("privileges:")  # started: signals are handled from here on

            def phase(i, want):
                nonlocal sent
                before = len(mc.requests())
                text, n = emit_lines(*parts[i])
                with open(trace, "a") as f:
                    f.write(text)
                sent += n
                d.wait(lambda: len(mc.records()) >= sent, 60, "part %d: %d spans" % (i, sent))
                got = [q["headers"].get("x-api-key") for q in
                       sorted(mc.requests(), key=lambda q: q["req"])[before:]]
                check("part %d: every request carries %s" % (i, want),
                      got and all(g == KEY + "-" + want for g in got), got)

            phase(0, "v1")
            secret_file(tmp, "# rotated\nx-api-key: %s-v2\n" % KEY)
            d.proc.send_signal(signal.SIGHUP)
            d.wait_err("SIGHUP: re-read --header-file")
            phase(1, "v2")
            os.chmod(path, 0o644)
            d.proc.send_signal(signal.SIGHUP)
            line = d.wait_err("SIGHUP: headers not reloaded")[0]
            check("it says why (the mode) and what to do", "chmod 600" in line, line)
            phase(2, "v2")
            d.stopped()
        check("every span delivered once", len(mc.records()) == N_REAL, len(mc.records()))
    check("exported=%d" % N_REAL, "exported=%d " % N_REAL in d.err(), d.err()[-600:])
    check("no value on stderr", KEY not in d.err(), d.err())


@test("header_file_reload_switched")
def header_file_reload_switched(tmp):
    """After the switch to an unprivileged user a root-owned 0600 file cannot be re-read:
    SIGHUP says so and the run goes on with the headers it has."""
    need_root("the default user switch happens when started as root")
    path = secret_file(tmp, "x-api-key: %s\n" % KEY)
    os.chmod(tmp, 0o755)
    trace = os.path.join(tmp, "trace")
    text, n = emit_lines(0, 585)
    with open(trace, "w") as f:
        f.write(text)
    os.chmod(trace, 0o644)
    with Collector(tmp) as mc:
        with Proc([A.cln_otlp, "--file", trace, "--follow", "--exporter", "otlp", "--endpoint",
                   mc.url(), "--header-file", path, "--batch-size", "1000",
                   "--batch-delay", "100"], tmp, "cln-otlp", env=clean_env()) as d:
            d.wait(lambda: len(mc.records()) >= n, 60, "every span exported")
            d.proc.send_signal(signal.SIGHUP)
            line = d.wait_err("SIGHUP: headers not reloaded")[0]
            check("it names the user and the fix", "the file must be readable by it" in line
                  and "runs as user " in line and "user root " not in line, line)
            d.stopped(what="still running after SIGHUP; SIGTERM: exit 0")
        got = {q["headers"].get("x-api-key") for q in mc.requests()}
        check("the header kept its value", got == {KEY}, got)
    check("no value on stderr", KEY not in d.err(), d.err())


main([NAME])
