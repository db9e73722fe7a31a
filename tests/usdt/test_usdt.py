#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Integration tests of the eBPF source: cln-otlp (or usdt-dump, the source alone) attached
to cln-emitter, which fires lightningd's probes like Core Lightning does.

    test_usdt.py TEST --cln-otlp PATH --emitter PATH --dump PATH --data DIR

Needs root (loads BPF programs). Without root it skips (exit 77), except with CI=true, where
it fails: a CI run must never pass without having traced anything.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
REAL_TRACE = "cln-v26-startup/lightningd-trace.32274"


class Fail(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def log(msg):
    print(msg, flush=True)


# ---- processes -------------------------------------------------------------------------


class Tracer:
    """cln-otlp (stdout exporter) or usdt-dump, started and waited for until attached."""

    def __init__(self, argv, tmp, name="tracer"):
        self.out_path = os.path.join(tmp, name + ".out")
        self.err_path = os.path.join(tmp, name + ".err")
        self.out = open(self.out_path, "wb")
        self.err = open(self.err_path, "wb")
        log("$ " + " ".join(argv))
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err)
        # The summary line, "attached N probes to M binaries (...)": with -v, per-binary
        # "attached" debug lines come first.
        self.wait_for(" binaries (", 30)

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def wait_for(self, needle, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.stderr()
            if any(needle in line for line in text.splitlines()):
                return
            if self.proc.poll() is not None:
                raise Fail("tracer exited (%d) before '%s':\n%s"
                           % (self.proc.returncode, needle, text))
            time.sleep(0.05)
        raise Fail("no '%s' from the tracer within %d s:\n%s" % (needle, timeout, self.stderr()))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Fail("tracer did not stop within 60 s of SIGTERM")
        self.out.close()
        self.err.close()
        err = self.stderr()
        sys.stdout.write("".join("  | " + l + "\n" for l in err.splitlines()[-8:]))
        check(rc == 0, "tracer exited with %d:\n%s" % (rc, err))
        with open(self.out_path, "r", encoding="utf-8", errors="surrogateescape") as f:
            return f.read()


def cln_otlp(args, tmp, *extra, name="cln-otlp"):
    return Tracer([args.cln_otlp, "--exporter", "stdout", "--batch-delay", "100",
                   "--queue-size", "1000000", "--queue-bytes", "1G"] + list(extra), tmp, name)


def run_emitter(binary, *eargs, check_rc=True):
    p = subprocess.run([binary] + list(eargs), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300)
    sys.stdout.write("  " + p.stderr.replace("\n", "\n  ").rstrip() + "\n")
    if check_rc:
        check(p.returncode == 0, "%s exited with %d" % (binary, p.returncode))
    return p


def start_emitter(binary, *eargs):
    """Start an emitter that waits for a go file; returns (proc, go_path, pid)."""
    go = tempfile.mktemp(prefix="go-")
    proc = subprocess.Popen([binary, "--wait-file", go] + list(eargs),
                            stderr=subprocess.PIPE, text=True)
    return proc, go


def release(proc, go):
    open(go, "w").close()
    _, err = proc.communicate(timeout=300)
    os.unlink(go)
    sys.stdout.write("  " + err.replace("\n", "\n  ").rstrip() + "\n")
    check(proc.returncode == 0, "emitter exited with %d" % proc.returncode)


def install(src, dst):
    """Copy @src to @dst as a new file (new inode), like an upgrade: cp to temp + mv."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".new"
    shutil.copy2(src, tmp)
    os.chmod(tmp, 0o755)
    # A fresh mtime (copy2 kept the source's): the tracer waits for files to settle.
    os.utime(tmp, None)
    os.rename(tmp, dst)


# ---- what was fired, what arrived -------------------------------------------------------


def read_log(path):
    """The emitter's --log: spans in order, and suspend/resume per span id."""
    spans, events = [], {}
    with open(path, "r", encoding="utf-8", errors="surrogateescape") as f:
        for line in f:
            line = line.rstrip("\n")
            head, _, rest = line.partition(" ")
            if head in ("span_suspend", "span_resume"):
                events.setdefault(rest, []).append(head[5:])
            else:
                spans.append((head, rest))
    return spans, events


def value_of(v):
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    raise Fail("unexpected attribute value %r" % v)


def parse_otlp(text):
    """OTLP/JSON lines -> list of (resource attrs, span)."""
    out = []
    for n, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            req = json.loads(line)
        except ValueError as e:
            raise Fail("stdout line %d is not JSON (%s): %.200s" % (n + 1, e, line))
        for rs in req.get("resourceSpans", []):
            res = {a["key"]: value_of(a["value"])
                   for a in rs.get("resource", {}).get("attributes", [])}
            for ss in rs.get("scopeSpans", []):
                for sp in ss.get("spans", []):
                    out.append((res, sp))
    return out


def compare(fired, got, pid=None, exe=None, events=None):
    """Every fired span arrived once, with the same content; nothing else arrived."""
    by_id = {}
    for res, sp in got:
        key = sp["spanId"]
        check(key not in by_id, "span %s arrived twice" % key)
        by_id[key] = (res, sp)
    check(len(got) == len(fired), "fired %d spans, %d arrived" % (len(fired), len(got)))
    n_events = 0
    for sid, payload in fired:
        cln = json.loads(payload)[0]
        check(cln["id"] == sid, "emitter log: id %s vs payload %s" % (sid, cln["id"]))
        check(sid in by_id, "span %s (%s) did not arrive" % (sid, cln["name"]))
        res, sp = by_id[sid]
        what = "span %s (%s)" % (sid, cln["name"])
        check(sp["traceId"] == cln["traceId"], what + ": traceId %s" % sp["traceId"])
        check(sp.get("parentSpanId", "") == cln.get("parentId", ""),
              what + ": parentSpanId %r" % sp.get("parentSpanId"))
        check(sp["name"] == cln["name"], what + ": name %r" % sp["name"])
        start = cln["timestamp"] * 1000
        end = (cln["timestamp"] + cln["duration"]) * 1000
        check(int(sp["startTimeUnixNano"]) == start, what + ": start %s" % sp["startTimeUnixNano"])
        check(int(sp["endTimeUnixNano"]) == end, what + ": end %s" % sp["endTimeUnixNano"])
        tags = dict(cln["tags"])
        status = sp.get("status", {}).get("code", 0)
        if tags.get("error") == "true":
            del tags["error"]
            check(status == 2, what + ": error=true but status %r" % sp.get("status"))
        attrs = {a["key"]: value_of(a["value"]) for a in sp.get("attributes", [])}
        check(attrs == tags, what + ": attributes differ:\n  got  %r\n  want %r" % (attrs, tags))
        if pid is not None:
            check(res.get("process.pid") == pid,
                  what + ": process.pid %r, want %d" % (res.get("process.pid"), pid))
        if exe is not None:
            check(res.get("process.executable.path") == exe,
                  what + ": process.executable.path %r, want %r"
                  % (res.get("process.executable.path"), exe))
        if events is not None:
            want = ["cln." + e for e in events.get(sid, [])]
            evs = sp.get("events", [])
            names = [e["name"] for e in evs]
            check(names == want, what + ": events %r, want %r" % (names, want))
            times = [int(e["timeUnixNano"]) for e in evs]
            check(times == sorted(times), what + ": events out of order %r" % times)
            now = time.time_ns()
            for t in times:
                check(abs(now - t) < 600 * 10**9, what + ": event time %d is not now" % t)
            n_events += len(evs)
    return n_events


def spans_of(got, pid):
    return [(r, s) for r, s in got if r.get("process.pid") == pid]


# ---- tests ------------------------------------------------------------------------------


def layout(tmp, emitter):
    """An installed CLN: <tmp>/bin/lightningd and its plugin directory."""
    lightningd = os.path.join(tmp, "bin", "lightningd")
    install(emitter, lightningd)
    return lightningd


def t_capture(args, tmp, extra=()):
    """The real capture (585 spans, 3 suspend/resume pairs) arrives intact."""
    lightningd = layout(tmp, args.emitter)
    fired_log = os.path.join(tmp, "fired.log")
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, *extra)
    p = run_emitter(lightningd, os.path.join(args.data, REAL_TRACE), "--log", fired_log)
    pid = int(p.stderr.split("pid ")[1].split(",")[0])
    got = parse_otlp(tr.stop())
    fired, events = read_log(fired_log)
    check(len(fired) == 585, "the real capture has 585 spans, the emitter fired %d" % len(fired))
    n = compare(fired, got, pid=pid, exe=lightningd, events=events)
    check(n == 6, "want 3 suspend/resume pairs as span events, got %d events" % n)
    log("ok: %d spans and %d events intact" % (len(got), n))


def t_allprobes(args, tmp):
    """--all-probes attaches span_start/span_end too and changes nothing in the output."""
    t_capture(args, tmp, ("--all-probes",))


def t_sizes(args, tmp):
    """Payloads of exact sizes up to CLN's 2048 bytes arrive byte for byte."""
    lightningd = layout(tmp, args.emitter)
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, "--no-plugins")
    fired = []
    for k, size in enumerate((250, 280, 511, 512, 1024, 2000, 2047, 2048)):
        path = os.path.join(tmp, "fired-%d.log" % size)
        run_emitter(lightningd, "--synthetic", "50", "--size", str(size), "--seed", str(k + 1),
                    "--log", path)
        f, _ = read_log(path)
        check(all(len(p.encode()) == size for _, p in f), "emitter: wrong payload size")
        fired += f
    got = parse_otlp(tr.stop())
    # compare() checks every tag value byte for byte: the 1.8 KB ones included.
    compare(fired, got, exe=lightningd)
    log("ok: %d spans of 8 sizes up to 2048 bytes intact" % len(got))


def t_dump(args, tmp):
    """The source alone hands on exactly the bytes fired (and cuts at 2048 what is longer)."""
    lightningd = layout(tmp, args.emitter)
    tr = Tracer([args.dump, "--lightningd", lightningd], tmp, "dump")
    fired = []
    for k, size in enumerate((250, 2048, 2049, 4000)):
        path = os.path.join(tmp, "fired-%d.log" % size)
        run_emitter(lightningd, "--synthetic", "20", "--size", str(size), "--seed", str(k + 1),
                    "--log", path)
        fired += read_log(path)[0]
    p = run_emitter(lightningd, os.path.join(args.data, REAL_TRACE), "--log",
                    os.path.join(tmp, "real.log"))
    pid = int(p.stderr.split("pid ")[1].split(",")[0])
    real, events = read_log(os.path.join(tmp, "real.log"))
    fired += real
    out = tr.stop().encode("utf-8", "surrogateescape").split(b"\n")
    emits = [l for l in out if l.startswith(b"emit ")]
    evs = [l.decode() for l in out if l.startswith(b"event ")]
    check(len(emits) == len(fired), "fired %d, dumped %d" % (len(fired), len(emits)))
    for (sid, payload), line in zip(fired, emits):
        _, _, exe, n, json_ = line.split(b" ", 4)
        want = payload.encode("utf-8", "surrogateescape")[:2048]
        check(exe.decode() == lightningd, "exe %r" % exe)
        check(int(n) == len(want) and json_ == want,
              "span %s: %d bytes dumped, want %d (byte for byte)" % (sid, int(n), len(want)))
    check(len(evs) == 6, "want 6 suspend/resume records, got %d" % len(evs))
    for e in evs:
        _, epid, sid, kind, _ = e.split()
        check(int(epid) == pid and kind in events.get(sid, []), "unexpected event %s" % e)
    check(b"stats ringbuf_lost=0" in out, "ring buffer losses: %r" % out[-3:])
    log("ok: %d payloads byte for byte (>2048 cut at 2048), %d events" % (len(emits), len(evs)))


def t_burst(args, tmp):
    """A burst far larger than a real node's arrives without loss, with the default ring."""
    lightningd = layout(tmp, args.emitter)
    n = 100000
    path = os.path.join(tmp, "fired.log")
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, "--no-plugins")
    p = run_emitter(lightningd, "--synthetic", str(n), "--size", "280", "--emit-only",
                    "--log", path)
    got = parse_otlp(tr.stop())
    fired, _ = read_log(path)
    compare(fired, got)
    log("ok: burst of %d spans, none lost (%s)" % (n, p.stderr.strip().splitlines()[-1]))


def plugin_tree(args, tmp, lightningd_rel, plugin_dir_rel):
    root = os.path.join(tmp, "tree-" + lightningd_rel.replace("/", "_"))
    lightningd = os.path.join(root, lightningd_rel)
    install(args.emitter, lightningd)
    pay = os.path.join(root, plugin_dir_rel, "pay")
    install(args.emitter, pay)
    # Executables without probes (a Rust or Python plugin) and a non-executable file.
    install("/bin/true", os.path.join(root, plugin_dir_rel, "clnrest"))
    script = os.path.join(root, plugin_dir_rel, "summary.py")
    with open(script, "w") as f:
        f.write("#!/usr/bin/python3\n")
    os.chmod(script, 0o755)
    with open(os.path.join(root, plugin_dir_rel, "README"), "w") as f:
        f.write("not a plugin\n")
    return lightningd, pay


def t_plugins(args, tmp):
    """Plugins next to lightningd are found (install and build-tree layouts) and traced."""
    for ld_rel, dir_rel in (("bin/lightningd", "libexec/c-lightning/plugins"),
                            ("lightningd/lightningd", "plugins")):
        lightningd, pay = plugin_tree(args, tmp, ld_rel, dir_rel)
        tr = cln_otlp(args, tmp, "--lightningd", lightningd, "-v", name="cln-otlp-" + dir_rel[-7:])
        err = tr.stderr()
        attached = [l for l in err.splitlines() if "attached" in l and "binaries" in l]
        check(attached and "2 binaries" in attached[-1] and "1 plugins" in attached[-1],
              "want lightningd and 1 plugin attached:\n" + err)
        check("clnrest: no lightningd:span_emit probe" in err, "clnrest not skipped:\n" + err)
        p1 = run_emitter(lightningd, "--synthetic", "30", "--seed", "11", "--log",
                         os.path.join(tmp, "ld.log"))
        p2 = run_emitter(pay, "--synthetic", "20", "--seed", "12", "--log",
                         os.path.join(tmp, "pay.log"))
        pid1 = int(p1.stderr.split("pid ")[1].split(",")[0])
        pid2 = int(p2.stderr.split("pid ")[1].split(",")[0])
        got = parse_otlp(tr.stop())
        compare(read_log(os.path.join(tmp, "ld.log"))[0], spans_of(got, pid1), pid=pid1,
                exe=lightningd)
        compare(read_log(os.path.join(tmp, "pay.log"))[0], spans_of(got, pid2), pid=pid2,
                exe=pay)
        check(len(got) == 50, "want 50 spans in all, got %d" % len(got))
        log("ok: %s layout: lightningd and plugin pay traced, others skipped" % dir_rel)

    # --no-plugins: only lightningd.
    lightningd, pay = plugin_tree(args, tmp, "x/bin/lightningd", "x/libexec/c-lightning/plugins")
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, "--no-plugins", name="noplugins")
    run_emitter(pay, "--synthetic", "5")
    got = parse_otlp(tr.stop())
    check(len(got) == 0, "--no-plugins: %d plugin spans arrived" % len(got))
    log("ok: --no-plugins leaves plugins alone")


def t_restart(args, tmp):
    """A lightningd started (again) after cln-otlp attached is traced: attach is by path."""
    lightningd = layout(tmp, args.emitter)
    tr = cln_otlp(args, tmp, "--lightningd", lightningd)
    fired, pids = [], []
    for k in range(3):
        path = os.path.join(tmp, "run%d.log" % k)
        p = run_emitter(lightningd, "--synthetic", "40", "--seed", str(100 + k), "--log", path)
        pids.append(int(p.stderr.split("pid ")[1].split(",")[0]))
        fired.append(read_log(path)[0])
    got = parse_otlp(tr.stop())
    for k in range(3):
        compare(fired[k], spans_of(got, pids[k]), pid=pids[k], exe=lightningd)
    check(len(got) == 120, "want 120 spans, got %d" % len(got))
    log("ok: 3 successive processes traced")


def t_replace(args, tmp):
    """An upgraded binary (new inode) is attached again; a process still running the old
    binary stays traced."""
    lightningd = layout(tmp, args.emitter)
    tr = cln_otlp(args, tmp, "--lightningd", lightningd)
    old_proc, old_go = start_emitter(lightningd, "--synthetic", "25", "--seed", "7", "--log",
                                     os.path.join(tmp, "old.log"))
    time.sleep(0.2)
    before = os.stat(lightningd).st_ino
    install(args.emitter, lightningd)
    check(os.stat(lightningd).st_ino != before, "install did not make a new inode")
    tr.wait_for("was replaced", 15)
    p = run_emitter(lightningd, "--synthetic", "30", "--seed", "8", "--log",
                    os.path.join(tmp, "new.log"))
    new_pid = int(p.stderr.split("pid ")[1].split(",")[0])
    release(old_proc, old_go)
    got = parse_otlp(tr.stop())
    compare(read_log(os.path.join(tmp, "new.log"))[0], spans_of(got, new_pid), pid=new_pid,
            exe=lightningd)
    compare(read_log(os.path.join(tmp, "old.log"))[0], spans_of(got, old_proc.pid),
            pid=old_proc.pid, exe=lightningd)
    check(len(got) == 55, "want 55 spans, got %d" % len(got))
    log("ok: replaced binary re-attached; the old process still traced")

    # Package managers write `<name>.dpkg-new` and rename it into place: the temporary file
    # may be attached first; the spans must still arrive once, named by the final path.
    lightningd, pay = plugin_tree(args, tmp, "pkg/bin/lightningd", "pkg/libexec/c-lightning/plugins")
    plugins = os.path.dirname(pay)
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, "-v", name="dpkg")
    for name in ("pay", "offers"):  # an upgraded plugin, a new one
        final = os.path.join(plugins, name)
        staged = final + ".dpkg-new"
        shutil.copy2(args.emitter, staged)
        os.utime(staged, None)
        tr.wait_for("attached 3 probes to plugin " + staged, 15)
        os.rename(staged, final)
        tr.wait_for("was replaced (installed as " + staged if name == "pay"
                    else staged + " was renamed to " + final, 15)
    fired = []
    for k, name in enumerate(("pay", "offers")):
        path = os.path.join(plugins, name)
        p = run_emitter(path, "--synthetic", "15", "--seed", str(30 + k), "--log",
                        os.path.join(tmp, name + ".log"))
        fired.append((path, int(p.stderr.split("pid ")[1].split(",")[0])))
    got = parse_otlp(tr.stop())
    for path, pid in fired:
        compare(read_log(os.path.join(tmp, os.path.basename(path) + ".log"))[0],
                spans_of(got, pid), pid=pid, exe=path)
    check(len(got) == 30, "want 30 spans, got %d (duplicates?)" % len(got))
    log("ok: plugins installed under a temporary name and renamed: traced once, right path")


def t_pid(args, tmp):
    """--pid captures the given process only (filtered in the kernel)."""
    lightningd = layout(tmp, args.emitter)
    a, go_a = start_emitter(lightningd, "--synthetic", "30", "--seed", "21", "--log",
                            os.path.join(tmp, "a.log"))
    b, go_b = start_emitter(lightningd, "--synthetic", "30", "--seed", "22")
    tr = cln_otlp(args, tmp, "--lightningd", lightningd, "--pid", str(a.pid))
    release(a, go_a)
    release(b, go_b)
    got = parse_otlp(tr.stop())
    compare(read_log(os.path.join(tmp, "a.log"))[0], got, pid=a.pid, exe=lightningd)
    log("ok: only --pid %d captured (%d spans), %d not" % (a.pid, len(got), b.pid))

    # Without --lightningd, the binary of the --pid process is traced.
    c, go_c = start_emitter(lightningd, "--synthetic", "10", "--seed", "23", "--log",
                            os.path.join(tmp, "c.log"))
    tr = cln_otlp(args, tmp, "--pid", str(c.pid), name="pid-only")
    release(c, go_c)
    got = parse_otlp(tr.stop())
    compare(read_log(os.path.join(tmp, "c.log"))[0], got, pid=c.pid, exe=lightningd)
    log("ok: --pid alone finds the process's binary")


def expect_error(argv, needles, env=None, preexec=None, user=None):
    log("$ " + " ".join(argv))
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=60, env=env, user=user)
    sys.stdout.write("  " + p.stderr.replace("\n", "\n  ").rstrip() + "\n")
    check(p.returncode != 0, "expected a failure, got exit 0")
    for n in needles:
        check(n in p.stderr, "the message does not say %r" % n)


def t_errors(args, tmp):
    """The errors a user will hit say what to do."""
    base = [args.cln_otlp, "--exporter", "stdout"]
    expect_error(base + ["--lightningd", os.path.join(tmp, "nope", "lightningd")],
                 ["--lightningd", "No such file"])
    env = dict(os.environ, PATH=os.path.join(tmp, "empty"))
    expect_error(base, ["not found on PATH", "--lightningd"], env=env)
    expect_error(base + ["--lightningd", "/bin/true"],
                 ["no lightningd:span_emit probe", "systemtap-sdt-dev", "HAVE_USDT=1",
                  "readelf -n /usr/bin/true | grep -A2 stapsdt"])
    script = os.path.join(tmp, "lightningd")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nexec /opt/cln/lightningd \"$@\"\n")
    os.chmod(script, 0o755)
    expect_error(base + ["--lightningd", script], ["not an ELF executable", "--lightningd"])
    # Unprivileged: the kernel refuses to load; the message names root and the capabilities.
    lightningd = layout(tmp, args.emitter)
    os.chmod(tmp, 0o755)
    expect_error(base + ["--lightningd", lightningd], ["root", "CAP_BPF", "CAP_PERFMON"],
                 user=65534)
    log("ok: every error says what to do")


TESTS = {
    "capture": t_capture,
    "allprobes": t_allprobes,
    "sizes": t_sizes,
    "dump": t_dump,
    "burst": t_burst,
    "plugins": t_plugins,
    "restart": t_restart,
    "replace": t_replace,
    "pid": t_pid,
    "errors": t_errors,
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test", choices=sorted(TESTS) + ["all"])
    ap.add_argument("--cln-otlp", required=True)
    ap.add_argument("--emitter", required=True)
    ap.add_argument("--dump", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    if os.geteuid() != 0:
        msg = "the eBPF tests need root (they load BPF programs)"
        if CI:
            print("FAIL: " + msg + "; CI must run them as root", flush=True)
            return 1
        print("SKIP: " + msg, flush=True)
        return SKIP
    names = sorted(TESTS) if args.test == "all" else [args.test]
    failed = 0
    for name in names:
        tmp = tempfile.mkdtemp(prefix="usdt-%s-" % name)
        log("== %s: %s" % (name, TESTS[name].__doc__.split("\n")[0]))
        try:
            TESTS[name](args, tmp)
        except Fail as e:
            print("FAIL %s: %s" % (name, e), flush=True)
            failed += 1
        finally:
            if args.keep or failed:
                log("(files kept in %s)" % tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
