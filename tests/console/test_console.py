#!/usr/bin/python3
"""The console exporter through the real binary.

  startup  the real lightningd capture: every trace printed once, the lightningd/startup tree
           line by line against a tree built here from the JSON (order, depth, names,
           durations, bar positions), in UTF-8 and in ASCII (LANG=C)
  plugins  the plugins' jsonrpc spans (error=false) are not errors; the same with
           error=true is
  golden   hand-made input (tests/data/console/*.txt) compared exactly with *.ascii.out
           (LANG=C) and *.utf8.out (LANG=C.UTF-8)
  timeout  a followed trace whose root never comes is printed after
           CLN_OTLP_CONSOLE_TIMEOUT_MS, marked; the parent is then known as remote
  suspend  suspend/resume lines of a followed file (no times) are counted, never shown
           with the time they were read
  exit     what is still buffered is printed at the end of the input and on SIGTERM
  broken_pipe  a reader that closes early: each span counted once, exported or dropped
  options  a bad CLN_OTLP_CONSOLE_TIMEOUT_MS is refused; OTEL_SERVICE_NAME; LC_ALL wins

usage: test_console.py CLN_OTLP CASE
"""
import difflib
import fcntl
import glob
import os
import re
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, CAPTURE_DIR, TESTS_DIR, Proc, check, clean_env,  # noqa: E402
                     cln_json, cln_spans, main, run, span_payloads, test)

cln_otlp, NAME = sys.argv[1:3]
BAR = 40
LINE_COLS = 160
HEADER = re.compile(r"^trace (\S+)  (.+?)  (.+)  (\d+(?:\.\d+)? (?:s|ms|us|µs))  "
                    r"\((\d+) spans?\)(.*)$")
ROOT = "0f346be4b171a29b"  # lightningd/startup in the capture


def console(args, lang="C.UTF-8", **env):
    return run([cln_otlp, "--exporter", "console"] + args, env=clean_env(lang, **env))


def blocks(text):
    """[(header match, [span lines])] of every block a blank line ends (complete ones)."""
    out, cur = [], []
    for ln in text.split("\n") if isinstance(text, str) else text:
        if ln:
            cur.append(ln)
        elif cur:
            out.append((check("header line", HEADER.match(cur[0]), cur[0]), cur[1:]))
            cur = []
    return out


def parse_dur(s):
    num, unit = s.split(" ")
    return float(num) * {"s": 1e6, "ms": 1e3, "us": 1, "µs": 1}[unit]


def dur_close(shown, real_us):
    value = parse_dur(shown)
    return value == real_us if real_us < 1000 else abs(value - real_us) <= real_us * 0.005 + 1e-9


def line_fields(line, utf8):
    """(depth, name, duration text, bar text, rest) of one span line."""
    name_col = line[:44]
    b = line.index("│" if utf8 else "[", 44)
    check("bar closed", line[b + 1 + BAR] == ("│" if utf8 else "]"), line)
    return ((len(name_col) - len(name_col.lstrip(" "))) // 2, name_col.strip(),
            line[44:b].strip(), line[b + 1:b + 1 + BAR], line[b + 2 + BAR:])


def tree_order(spans, root):
    """Depth-first, children by (start, longest first, id): what the view promises."""
    kids = {}
    for s in spans:
        kids.setdefault(s.get("parentId"), []).append(s)
    out, stack = [], [(root, 0)]
    while stack:
        s, d = stack.pop()
        out.append((s, d))
        ch = sorted(kids.get(s["id"], []),
                    key=lambda c: (c["timestamp"], -c["duration"], int(c["id"], 16)))
        stack.extend((c, d + 1) for c in reversed(ch))
    return out


def expected_bar(s, w0, w1, utf8):
    width = w1 - w0 or 1
    start, end = s["timestamp"] - w0, s["timestamp"] + s["duration"] - w0
    c0 = min(start * BAR // width, BAR - 1)
    c1 = min((2 * end * BAR + width) // (2 * width), BAR)
    thin = 2 * s["duration"] * BAR < width
    if thin or c1 <= c0:
        c1 = c0 + 1
    mark = ("▏" if utf8 else "|") if thin else ("█" if utf8 else "#")
    return " " * c0 + mark * (c1 - c0) + " " * (BAR - c1)


def check_startup(utf8):
    mode = "utf8" if utf8 else "ascii"
    res = console(["--file", CAPTURE], lang="C.UTF-8" if utf8 else "C")
    check(f"{mode}: exit 0", res.returncode == 0)
    out = res.stdout
    if utf8:
        check("UTF-8: block bars", "█" in out and "µs" in out)
    else:
        check("LANG=C: ASCII only", out.isascii(), [c for c in out if ord(c) >= 128][:5])
    check(f"{mode}: no line over {LINE_COLS} columns",
          max(len(ln) for ln in out.split("\n")) <= LINE_COLS)
    spans, bl = cln_spans(CAPTURE), blocks(out)
    traces = {s["traceId"] for s in spans}
    check(f"{mode}: one block per trace", len(bl) == len(traces), f"{len(bl)} vs {len(traces)}")
    check(f"{mode}: every span printed once", sum(len(ls) for _, ls in bl) == len(spans))
    check(f"{mode}: nothing marked incomplete", "INCOMPLETE" not in out)
    ell = "…" if utf8 else "..."
    for m, lines in bl:
        tid = m.group(1)
        matching = [t for t in traces if tid == t[:8] + ell + t[-4:]]
        check(f"{mode}: header names its trace {tid}", len(matching) == 1)
        check(f"{mode}: header names the process", m.group(2) == "lightningd[32274]", m.group(2))
        tspans = [s for s in spans if s["traceId"] == matching[0]]
        root = [s for s in tspans if "parentId" not in s]
        check(f"{mode}: one root", len(root) == 1)
        want, name = tree_order(tspans, root[0]), root[0]["name"]
        check(f"{mode}: header counts spans", int(m.group(5)) == len(tspans))
        check(f"{mode}: header names the root", m.group(3) == name, m.group(3))
        w0 = min(s["timestamp"] for s in tspans)
        w1 = max(s["timestamp"] + s["duration"] for s in tspans)
        check(f"{mode}: header duration", dur_close(m.group(4), w1 - w0), m.group(4))
        check(f"{mode}: {name}: one line a span", len(lines) == len(want))
        got = [(line, line_fields(line, utf8), s, d) for line, (s, d) in zip(lines, want)]
        for line, f, s, d in got:
            for k, v in s["tags"].items():
                if len(v) < 20:
                    check(f"{mode}: tag {k} shown", f"{k}={v}" in f[4], line)
        for what, bad in (
                ("order, depth and names", [x for x in got if x[1][:2] != (min(x[3], 16),
                                                                           x[2]["name"])]),
                ("durations", [x for x in got if not dur_close(x[1][2], x[2]["duration"])]),
                ("bars", [x for x in got if x[1][3] != expected_bar(x[2], w0, w1, utf8)])):
            check(f"{mode}: {name}: {what}", not bad, [(x[0], x[3], x[2]) for x in bad[:3]])

    # Known lines of the startup tree, as a person reads them.
    startup = [ls for m, ls in bl if m.group(3) == "lightningd/startup"]
    check(f"{mode}: the startup tree is printed", len(startup) == 1)
    lines, us = startup[0], "µs" if utf8 else "us"
    known = [(0, "lightningd/startup", "290 ms"), (1, "plugins/init", "24.5 ms"),
             (1, "test_subdaemons", "15.7 ms"), (1, "hsmd_init", "13.2 ms"),
             (1, "wallet_new", "90.2 ms"), (2, "db_setup", "65.6 ms"),
             (3, "db_setup", f"222 {us}"), (3, "db_query_prepared", f"175 {us}")]
    for i, (depth, name, dur) in enumerate(known):
        check(f"{mode}: line {i} is {name}", line_fields(lines[i], utf8)[:3] == (depth, name, dur),
              lines[i])
    full = "█" if utf8 else "#"
    check(f"{mode}: the root's bar is full", line_fields(lines[0], utf8)[3] == full * BAR)
    # plugins/init starts 67651 us into 289798: cell 9.
    check(f"{mode}: plugins/init's bar starts at cell 9",
          line_fields(lines[1], utf8)[3].index(full) == 9, lines[1])
    sel = [ln for ln in lines if "setup_topology" in ln]
    check(f"{mode}: setup_topology at depth 1", sel and line_fields(sel[0], utf8)[0] == 1)
    query = [ln for ln in lines if "query=SELECT version FROM version LIMIT 1" in ln]
    check(f"{mode}: a query tag shown", len(query) == 1)
    # A child that starts with its root: bar at cell 0 (extend_tip's plugin/bitcoind).
    tip = [ls for m, ls in bl if m.group(3) == "extend_tip"]
    check(f"{mode}: extend_tip traces", len(tip) == 2)
    for lines in tip:
        f = line_fields(lines[1], utf8)
        check(f"{mode}: plugin/bitcoind starts at cell 0",
              f[1] == "plugin/bitcoind" and f[3][0] != " ", lines[1])


@test("startup")
def startup(tmp):
    check_startup(True)
    check_startup(False)


@test("plugins")
def plugins(tmp):
    files = sorted(f for f in glob.glob(os.path.join(CAPTURE_DIR, "lightningd-trace.*"))
                   if f != CAPTURE)
    res = console([a for f in files for a in ("--file", f)])
    check("exit 0", res.returncode == 0)
    spans = [s for f in files for s in cln_spans(f)]
    rpc = [s for s in spans if s["tags"].get("error") == "false"]
    check("the plugin files hold error=false spans", len(rpc) >= 20, len(rpc))
    lines = [ln for _, ls in blocks(res.stdout) for ln in ls]
    check("every plugin span printed", len(lines) == len(spans), f"{len(lines)} {len(spans)}")
    check("error=false kept as a tag", len([ln for ln in lines if "error=false" in ln]) == len(rpc))
    check("error=false is not an error", "ERROR" not in res.stdout)
    pids = {m.group(2) for m, _ in blocks(res.stdout)}
    check("each plugin process named", pids == {f"lightningd[{f.rsplit('.', 1)[1]}]"
                                                for f in files if cln_spans(f)}, pids)
    # The same spans with error=true: marked, and the tag is gone (it is the status).
    bad = os.path.join(tmp, "lightningd-trace.32290")
    with open(os.path.join(CAPTURE_DIR, "lightningd-trace.32290"), encoding="utf-8") as f:
        text = f.read()
    with open(bad, "w", encoding="utf-8") as f:
        f.write(text.replace('"error":"false"', '"error":"true"'))
    res = console(["--file", bad], lang="C")
    lines = [ln for _, ls in blocks(res.stdout) for ln in ls]
    check("error=true spans printed", len(lines) == len(cln_spans(bad)) == 4, res.stdout)
    check("error=true marked ERROR", all("]  ERROR  id=cln:init#38/" in ln for ln in lines),
          res.stdout)
    check("error=true not shown as a tag", "error=" not in res.stdout)


@test("golden")
def golden(tmp):
    cases = sorted(glob.glob(os.path.join(TESTS_DIR, "data", "console", "*.txt")))
    check("golden inputs exist", cases)
    for case in cases:
        base = case[:-4]
        for lang, suffix in (("C", "ascii"), ("C.UTF-8", "utf8")):
            res = console(["--file", case], lang=lang)
            with open(f"{base}.{suffix}.out", encoding="utf-8") as f:
                want = f.read()
            name = f"{os.path.basename(base)} ({suffix})"
            check(f"{name}: exit 0", res.returncode == 0)
            diff = "".join(difflib.unified_diff(want.splitlines(True), res.stdout.splitlines(True),
                                                f"{base}.{suffix}.out", "got"))
            check(f"{name}: output as expected", not diff, diff)


def follow(tmp, timeout_ms):
    """cln-otlp --follow on an empty trace file: (the process, the file's path)."""
    path = os.path.join(tmp, "lightningd-trace.4242")
    open(path, "w").close()
    return Proc([cln_otlp, "--exporter", "console", "--file", path, "--follow",
                 "--batch-delay", "50"], tmp, "cln-otlp",
                env=clean_env("C", CLN_OTLP_CONSOLE_TIMEOUT_MS=str(timeout_ms))), path


def capture_lines(without_root):
    with open(CAPTURE, encoding="utf-8") as f:
        return [ln for ln in f if not (without_root and ln.startswith(f"span_emit {ROOT} "))]


@test("timeout")
def timeout(tmp):
    d, path = follow(tmp, 700)
    marker = f"INCOMPLETE: parent {ROOT} never came"
    with d, open(path, "a", encoding="utf-8") as f:
        # The real capture without its lightningd/startup span: that tree's root never comes.
        # Timed from before the write: the follower may read a first piece during it.
        written = time.time()
        f.writelines(capture_lines(True))
        f.flush()
        bl = d.wait(lambda: [b for b in blocks(d.lines()) if marker in b[0].group(6)], 30,
                    "printed after the timeout")
        check("not before the timeout", time.time() - written >= 0.6, time.time() - written)
        check("while still running", d.running())
        check("one block for the startup's children", len(bl) == 1)
        m, lines = bl[0]
        check("all 566 spans of the tree", m.group(5) == "566", m.group(0))
        check("its children at depth 0", lines[0].startswith("plugins/init "), lines[0])
        check("grandchildren indented", any(ln.startswith("  db_setup ") for ln in lines))
        # That parent is now known as remote for this process and trace: a later span naming
        # it is printed at once, not after another timeout.
        f.write("span_emit 00000000000000aa " + cln_json(
            "00000000000000aa", "late-root", parent=ROOT, ts=1795660314900000, dur=1000) + "\n")
        f.flush()
        d.wait(lambda: "late-root" in d.out(), 30, "a root with the remote parent printed")
        check("marked as remote", f"parent {ROOT} is remote" in d.out(), d.out())
        check("exit 0", d.stop() == 0)
    text = d.out()
    check("the other traces complete", text.count("\ntrace ") + 1 == 12, text.count("trace "))
    check("stderr counts the timed-out tree", "1 timed out" in d.err())


@test("suspend")
def suspend(tmp):
    d, path = follow(tmp, 10000)

    def emit(sid, name, dur=2000000):
        return f"span_emit {sid} " + cln_json(sid, name, "5019d3b84b1607709c2c81e6e6e65df4",
                                              ts=int(time.time() * 1e6) - dur, dur=dur) + "\n"

    # The lines have no time, and the time a follower reads them is not the event's (CLN's
    # writes are buffered): no suspension is made up from it; the lines are counted.
    a, b = "00000000000000a1", "00000000000000b1"
    with d, open(path, "a", encoding="utf-8") as f:
        f.write(f"span_start {a} waits\nspan_suspend {a}\nspan_start {b} twice\n"
                f"span_suspend {b}\nspan_resume {a}\nspan_resume {b}\nspan_suspend {b}\n"
                f"span_resume {b}\nspan_end {a}\n" + emit(a, "waits") + f"span_end {b}\n" +
                emit(b, "twice"))
        f.flush()
        d.wait(lambda: sum(ln.startswith(("waits ", "twice ")) for ln in d.lines()) == 2, 30,
               "both spans printed")
        check("exit 0", d.stop() == 0)
    text = d.out()
    check("no suspension shown from a file without times", "suspended" not in text, text)
    check("the 6 lines counted", "events_untimed=6" in d.err().split(), d.err())


@test("exit")
def exit_(tmp):
    # End of input: the incomplete tree is printed, marked, and the run is a success.
    path = os.path.join(tmp, "lightningd-trace.32274")
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(capture_lines(True))
    res = console(["--file", path], lang="C")
    check("exit 0", res.returncode == 0)
    check("incomplete tree printed at the end", f"(566 spans)  INCOMPLETE: parent {ROOT} not "
          "seen before exit" in res.stdout, res.stdout[:500])
    check("every span printed", sum(len(ls) for _, ls in blocks(res.stdout)) == 584)
    # SIGTERM while following, long before the timeout: nothing is lost.
    d, path = follow(tmp, 600000)
    with d, open(path, "a", encoding="utf-8") as f:
        f.writelines(capture_lines(True))
        f.flush()
        d.wait(lambda: len(blocks(d.lines())) >= 10, 30, "complete traces printed while running")
        check("the incomplete one still waits", "INCOMPLETE" not in d.out())
        check("exit 0 after SIGTERM", d.stop() == 0)
    text = d.out()
    check("printed at shutdown", f"(566 spans)  INCOMPLETE: parent {ROOT} not seen before exit"
          in text)
    check("every span printed", sum(len(ls) for _, ls in blocks(text)) == 584)


@test("broken_pipe")
def broken_pipe(tmp):
    # A reader that takes 100 bytes and goes (as `| head -c 100` does): what was written is
    # exported, the rest dropped as output, each span counted once, and the run says it lost
    # spans. A one-page pipe: the output (about 100 KB) cannot fit in it before the close.
    files = sorted(glob.glob(os.path.join(CAPTURE_DIR, "lightningd-trace.*")))
    rfd, wfd = os.pipe()
    fcntl.fcntl(wfd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 4096)
    err_path = os.path.join(tmp, "err")
    with open(err_path, "wb") as err:
        p = subprocess.Popen([cln_otlp, "--exporter", "console"] +
                             [a for f in files for a in ("--file", f)],
                             stdout=wfd, stderr=err, stdin=subprocess.DEVNULL,
                             env=clean_env("C"))
    os.close(wfd)
    got = b""
    while len(got) < 100:
        chunk = os.read(rfd, 100 - len(got))
        check("output before the pipe closes", chunk)
        got += chunk
    os.close(rfd)
    rc = p.wait(120)
    with open(err_path, encoding="utf-8", errors="replace") as f:
        text = f.read()
    check("exit 1: spans were lost", rc == 1, (rc, text[-2000:]))
    done = [ln.split("info: done: ", 1)[1].split() for ln in text.splitlines()
            if "info: done: " in ln]
    check("a done line", done, text[-2000:])
    n = {k: int(v) for k, v in (t.split("=", 1) for t in done[-1]) if v.isdigit()}
    check("some spans dropped as output", n.get("dropped", 0) > 0 and
          n.get("drop_output") == n["dropped"], done[-1])
    check("each span counted once: exported + dropped == queued",
          n["exported"] + n["dropped"] == n["queued"] == 610, done[-1])
    check("the write error is said", "cannot write traces" in text, text[-2000:])


@test("options")
def options(tmp):
    for bad in ("abc", "-5", "10s", "99999999999"):
        res = console(["--file", CAPTURE], CLN_OTLP_CONSOLE_TIMEOUT_MS=bad)
        check(f"timeout {bad!r} refused", res.returncode == 2)
        check("the message names the variable", "CLN_OTLP_CONSOLE_TIMEOUT_MS" in res.stderr)
        check("nothing printed", not res.stdout)
    res = console(["--file", CAPTURE], CLN_OTLP_CONSOLE_TIMEOUT_MS="")
    check("empty timeout is unset", res.returncode == 0)
    res = console(["--file", CAPTURE], lang="C", OTEL_SERVICE_NAME="mynode")
    check("OTEL_SERVICE_NAME in the headers",
          all(m.group(2) == "mynode[32274]" for m, _ in blocks(res.stdout)), res.stdout[:300])
    res = console(["--file", CAPTURE], lang="en_US.UTF-8", LC_ALL="C")
    check("LC_ALL=C wins over a UTF-8 LANG", res.stdout and res.stdout.isascii())
    res = console(["--file", CAPTURE], lang="C", LC_CTYPE="C.UTF-8")
    check("LC_CTYPE UTF-8 wins over LANG=C", "█" in res.stdout)
    # The socket source knows the sender's pid (its executable label: console_unit label).
    path = os.path.join(tmp, "trace.sock")
    span = next(p for p in span_payloads(CAPTURE) if '"id":"0ff6b0fc1df3f024"' in p)
    want = re.compile(rf"^trace 074c67a2\.\.\.d273  \S+\[{os.getpid()}\]( \(lightningd\))?  "
                      r"plugins/init  24\.5 ms  \(1 span\)$")
    with Proc([cln_otlp, "--exporter", "console", "--socket", path, "--batch-delay", "50"], tmp,
              "cln-otlp", env=clean_env("C")) as d, \
            socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        d.wait(lambda: os.path.exists(path), 30, "socket ready")
        sender.sendto(span.replace(f',"parentId":"{ROOT}"', "").encode(), path)  # a root
        d.wait(lambda: any(want.match(ln) for ln in d.lines()), 30, "header with the sender's pid")
        check("exit 0", d.stop() == 0)


main([NAME])
