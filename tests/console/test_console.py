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
  suspend  suspend/resume lines of a followed file show as "suspended <time>"
  exit     what is still buffered is printed at the end of the input and on SIGTERM
  options  a bad CLN_OTLP_CONSOLE_TIMEOUT_MS is refused; OTEL_SERVICE_NAME; LC_ALL wins

usage: test_console.py CLN_OTLP DATA_DIR CASE
"""
import difflib
import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

cln_otlp, data_dir, which = sys.argv[1:4]
capture_dir = os.path.join(data_dir, "cln-v26-startup")
capture = os.path.join(capture_dir, "lightningd-trace.32274")
passed = failed = 0

BAR = 40
LINE_COLS = 160
HEADER = re.compile(r"^trace (\S+)  (.+?)  (.+)  (\d+(?:\.\d+)? (?:s|ms|us|µs))  "
                    r"\((\d+) spans?\)(.*)$")


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}"[:2000], file=sys.stderr)


def env_for(lang, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("LC_ALL", "LC_CTYPE", "LANG") and not k.startswith("OTEL_")}
    env["LANG"] = lang
    env.update(extra)
    return env


def run(args, lang="C.UTF-8", **extra):
    return subprocess.run([cln_otlp, "--exporter", "console"] + args, capture_output=True,
                          text=True, encoding="utf-8", timeout=60, env=env_for(lang, **extra))


def spans_in(path):
    out = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("span_emit "):
            out.append(json.loads(line.split(" ", 2)[2])[0])
    return out


def blocks(text):
    """[(header match, [span lines])] in output order."""
    out = []
    for chunk in text.split("\n\n"):
        lines = [l for l in chunk.split("\n") if l]
        if not lines:
            continue
        m = HEADER.match(lines[0])
        check("header line", m, lines[0])
        if m:
            out.append((m, lines[1:]))
    return out


def parse_dur(s):
    num, unit = s.split(" ")
    return float(num) * {"s": 1e6, "ms": 1e3, "us": 1, "µs": 1}[unit], num


def dur_close(shown, real_us):
    value, _ = parse_dur(shown)
    if real_us < 1000:
        return value == real_us
    return abs(value - real_us) <= real_us * 0.005 + 1e-9


def line_fields(line, utf8):
    """(depth, name, duration text, bar text, rest) of one span line."""
    name_col = line[:44]
    depth = (len(name_col) - len(name_col.lstrip(" "))) // 2
    left, right = ("│", "│") if utf8 else ("[", "]")
    b = line.index(left, 44)
    check("bar closed", line[b + 1 + BAR] == right, line)
    return depth, name_col.strip(), line[44:b].strip(), line[b + 1:b + 1 + BAR], \
        line[b + 2 + BAR:]


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
    res = run(["--file", capture], lang="C.UTF-8" if utf8 else "C")
    mode = "utf8" if utf8 else "ascii"
    check(f"{mode}: exit 0", res.returncode == 0, res.stderr)
    out = res.stdout
    if not utf8:
        check("LANG=C: ASCII only", all(ord(c) < 128 for c in out),
              repr([c for c in out if ord(c) >= 128][:5]))
    else:
        check("UTF-8: block bars", "█" in out and "µs" in out)
    check(f"{mode}: no line over {LINE_COLS} columns",
          max(len(l) for l in out.split("\n")) <= LINE_COLS)
    spans = spans_in(capture)
    bl = blocks(out)
    traces = {s["traceId"] for s in spans}
    check(f"{mode}: one block per trace", len(bl) == len(traces), f"{len(bl)} vs {len(traces)}")
    check(f"{mode}: every span printed once", sum(len(l) for _, l in bl) == len(spans))
    check(f"{mode}: nothing marked incomplete", "INCOMPLETE" not in out)
    ell = "…" if utf8 else "..."
    for m, lines in bl:
        tid = m.group(1)
        matching = [t for t in traces if tid == t[:8] + ell + t[-4:]]
        check(f"{mode}: header names its trace {tid}", len(matching) == 1)
        check(f"{mode}: header names the process", m.group(2) == "lightningd[32274]",
              m.group(2))
        if not matching:
            continue
        tspans = [s for s in spans if s["traceId"] == matching[0]]
        root = [s for s in tspans if "parentId" not in s]
        check(f"{mode}: one root", len(root) == 1)
        want = tree_order(tspans, root[0])
        check(f"{mode}: header counts spans", int(m.group(5)) == len(tspans))
        check(f"{mode}: header names the root", m.group(3) == root[0]["name"], m.group(3))
        w0 = min(s["timestamp"] for s in tspans)
        w1 = max(s["timestamp"] + s["duration"] for s in tspans)
        check(f"{mode}: header duration", dur_close(m.group(4), w1 - w0), m.group(4))
        check(f"{mode}: {root[0]['name']}: one line a span", len(lines) == len(want))
        bad_order = bad_dur = bad_bar = 0
        for line, (s, d) in zip(lines, want):
            depth, name, dur, bar, rest = line_fields(line, utf8)
            if (depth, name) != (min(d, 16), s["name"]):
                bad_order += 1
                if bad_order < 4:
                    print(f"order: {line!r} vs {d} {s['name']}", file=sys.stderr)
            if not dur_close(dur, s["duration"]):
                bad_dur += 1
                print(f"duration: {line!r} vs {s['duration']}", file=sys.stderr)
            if bar != expected_bar(s, w0, w1, utf8):
                bad_bar += 1
                if bad_bar < 4:
                    print(f"bar: {line!r}\n vs  {expected_bar(s, w0, w1, utf8)!r}",
                          file=sys.stderr)
            tags = s["tags"]
            for k, v in tags.items():
                if len(v) < 20:
                    check(f"{mode}: tag {k} shown", f"{k}={v}" in rest, line)
        check(f"{mode}: {root[0]['name']}: order, depth and names", not bad_order)
        check(f"{mode}: {root[0]['name']}: durations", not bad_dur)
        check(f"{mode}: {root[0]['name']}: bars", not bad_bar)

    # Known lines of the startup tree, as a person reads them.
    startup = [l for m, l in bl if m.group(3) == "lightningd/startup"]
    check(f"{mode}: the startup tree is printed", len(startup) == 1)
    if startup:
        lines = startup[0]
        us = "µs" if utf8 else "us"
        known = [(0, "lightningd/startup", "290 ms"), (1, "plugins/init", "24.5 ms"),
                 (1, "test_subdaemons", "15.7 ms"), (1, "hsmd_init", "13.2 ms"),
                 (1, "wallet_new", "90.2 ms"), (2, "db_setup", "65.6 ms"),
                 (3, "db_setup", f"222 {us}"), (3, "db_query_prepared", f"175 {us}")]
        for i, (depth, name, dur) in enumerate(known):
            got = line_fields(lines[i], utf8)
            check(f"{mode}: line {i} is {name}", got[:3] == (depth, name, dur), lines[i])
        full = "█" if utf8 else "#"
        check(f"{mode}: the root's bar is full", line_fields(lines[0], utf8)[3] == full * BAR)
        # plugins/init starts 67651 us into 289798: cell 9.
        check(f"{mode}: plugins/init's bar starts at cell 9",
              line_fields(lines[1], utf8)[3].index(full) == 9, lines[1])
        sel = [l for l in lines if "setup_topology" in l]
        check(f"{mode}: setup_topology at depth 1", sel and line_fields(sel[0], utf8)[0] == 1)
        query = [l for l in lines if "query=SELECT version FROM version LIMIT 1" in l]
        check(f"{mode}: a query tag shown", len(query) == 1)
    # A child that starts with its root: bar at cell 0 (extend_tip's plugin/bitcoind).
    tip = [l for m, l in bl if m.group(3) == "extend_tip"]
    check(f"{mode}: extend_tip traces", len(tip) == 2)
    for lines in tip:
        f = line_fields(lines[1], utf8)
        check(f"{mode}: plugin/bitcoind starts at cell 0", f[1] == "plugin/bitcoind" and
              f[3][0] != " ", lines[1])


def test_startup(tmp):
    check_startup(True)
    check_startup(False)


def test_plugins(tmp):
    files = sorted(f for f in glob.glob(os.path.join(capture_dir, "lightningd-trace.*"))
                   if not f.endswith(".32274"))
    args = []
    for f in files:
        args += ["--file", f]
    res = run(args)
    check("exit 0", res.returncode == 0, res.stderr)
    spans = [s for f in files for s in spans_in(f)]
    rpc = [s for s in spans if s["tags"].get("error") == "false"]
    check("the plugin files hold error=false spans", len(rpc) >= 20, str(len(rpc)))
    lines = [l for _, ls in blocks(res.stdout) for l in ls]
    check("every plugin span printed", len(lines) == len(spans), f"{len(lines)} {len(spans)}")
    flagged = [l for l in lines if "error=false" in l]
    check("error=false kept as a tag", len(flagged) == len(rpc), f"{len(flagged)}")
    check("error=false is not an error", "ERROR" not in res.stdout)
    pids = {m.group(2) for m, _ in blocks(res.stdout)}
    check("each plugin process named", pids == {f"lightningd[{f.rsplit('.', 1)[1]}]"
                                                  for f in files if spans_in(f)}, str(pids))
    # The same spans with error=true: marked, and the tag is gone (it is the status).
    bad = os.path.join(tmp, "lightningd-trace.32290")
    text = open(os.path.join(capture_dir, "lightningd-trace.32290"), encoding="utf-8").read()
    open(bad, "w", encoding="utf-8").write(text.replace('"error":"false"', '"error":"true"'))
    res = run(["--file", bad], lang="C")
    lines = [l for _, ls in blocks(res.stdout) for l in ls]
    check("error=true spans printed", len(lines) == len(spans_in(bad)) == 4, res.stdout)
    check("error=true marked ERROR", all("]  ERROR  id=cln:init#38/" in l for l in lines),
          res.stdout)
    check("error=true not shown as a tag", "error=" not in res.stdout)


def test_golden(tmp):
    cases = sorted(glob.glob(os.path.join(data_dir, "console", "*.txt")))
    check("golden inputs exist", cases)
    for case in cases:
        base = case[:-4]
        for lang, suffix in (("C", "ascii"), ("C.UTF-8", "utf8")):
            res = run(["--file", case], lang=lang)
            want = open(f"{base}.{suffix}.out", encoding="utf-8").read()
            check(f"{os.path.basename(base)} ({suffix}): exit 0", res.returncode == 0,
                  res.stderr)
            diff = "".join(difflib.unified_diff(want.splitlines(True),
                                                res.stdout.splitlines(True),
                                                f"{base}.{suffix}.out", "got"))
            check(f"{os.path.basename(base)} ({suffix}): output as expected", not diff, diff)


def follow(tmp, timeout_ms, batch_ms=50):
    path = os.path.join(tmp, "lightningd-trace.4242")
    f = open(path, "w", encoding="utf-8")
    out = open(os.path.join(tmp, "stdout"), "w+", encoding="utf-8")
    err = open(os.path.join(tmp, "stderr"), "w+", encoding="utf-8")
    proc = subprocess.Popen([cln_otlp, "--exporter", "console", "--file", path, "--follow",
                             "--batch-delay", str(batch_ms)], stdout=out, stderr=err,
                            env=env_for("C", CLN_OTLP_CONSOLE_TIMEOUT_MS=str(timeout_ms)))
    return proc, f, out, err


def read(fobj):
    fobj.flush()
    return open(fobj.name, encoding="utf-8").read()


def wait_for(pred, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def stop(proc, out, err):
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    return proc.returncode, read(out), read(err)


def capture_lines(without_root):
    lines = open(capture, encoding="utf-8").read().splitlines(True)
    if without_root:
        lines = [l for l in lines if not l.startswith("span_emit 0f346be4b171a29b ")]
    return lines


def test_timeout(tmp):
    proc, f, out, err = follow(tmp, 700)
    time.sleep(0.3)
    # The real capture without its lightningd/startup span: that tree's root never comes.
    f.writelines(capture_lines(True))
    f.flush()
    written = time.time()
    marker = "INCOMPLETE: parent 0f346be4b171a29b never came"
    check("printed after the timeout", wait_for(lambda: marker in read(out), 15), read(err))
    waited = time.time() - written
    check("not before the timeout", waited >= 0.6, f"{waited:.3f} s")
    check("while still running", proc.poll() is None)
    bl = [b for b in blocks(read(out)) if marker in b[0].group(6)]
    check("one block for the startup's children", len(bl) == 1)
    if bl:
        m, lines = bl[0]
        check("all 566 spans of the tree", m.group(5) == "566", m.group(0))
        check("its children at depth 0", lines[0].startswith("plugins/init "), lines[0])
        check("grandchildren indented", any(l.startswith("  db_setup ") for l in lines))
    # That parent is now known as remote for this process and trace: a later span naming
    # it is printed at once, not after another timeout.
    tid = "074c67a29952a72ce3a9ce4137f3d273"
    late = ('span_emit 00000000000000aa [{"id":"00000000000000aa","name":"late-root",'
            '"timestamp":1795660314900000,"duration":1000,"localEndpoint":'
            '{"serviceName":"lightningd"},"parentId":"0f346be4b171a29b","tags":{},'
            f'"traceId":"{tid}"}}]\n')
    f.write(late)
    f.flush()
    check("a root with the remote parent printed",
          wait_for(lambda: "late-root" in read(out), 10))
    check("marked as remote", "parent 0f346be4b171a29b is remote" in read(out), read(out))
    rc, text, errtext = stop(proc, out, err)
    check("exit 0", rc == 0, errtext)
    check("the other traces complete", text.count("\ntrace ") + 1 == 12, str(text.count("trace ")))
    check("stderr counts the timed-out tree", "1 timed out" in errtext, errtext)


def test_suspend(tmp):
    proc, f, out, err = follow(tmp, 10000)

    def emit(sid, name, dur=2000000):
        return (f'span_emit {sid} [{{"id":"{sid}","name":"{name}","timestamp":'
                f'{int(time.time() * 1e6) - dur},"duration":{dur},"localEndpoint":'
                '{"serviceName":"lightningd"},"tags":{},'
                '"traceId":"5019d3b84b1607709c2c81e6e6e65df4"}]\n')

    def write_then_see(text, mark):
        """Write @text and a marker span after it; return once the marker is printed, so
        the follower has read (and stamped) everything before it."""
        f.write(text + emit(mark, mark, 1))
        f.flush()
        check(f"{mark} printed", wait_for(lambda: f"\n{mark} " in read(out), 20), read(err))

    # The file has no times: the follower stamps suspend/resume lines as it reads them.
    a, b = "00000000000000a1", "00000000000000b1"
    write_then_see(f"span_start {a} waits\nspan_suspend {a}\nspan_start {b} twice\n"
                   f"span_suspend {b}\n", "00000000000000f1")
    time.sleep(1.0)
    write_then_see(f"span_resume {a}\nspan_resume {b}\nspan_suspend {b}\n",
                   "00000000000000f2")
    time.sleep(0.6)
    write_then_see(f"span_resume {b}\nspan_end {a}\n" + emit(a, "waits") +
                   f"span_end {b}\n" + emit(b, "twice"), "00000000000000f3")
    rc, text, errtext = stop(proc, out, err)
    check("exit 0", rc == 0, errtext)
    m = re.search(r"\nwaits .*  suspended (\S+ m?s)\n", text)
    check("one suspension shown", m and 0.95e6 <= parse_dur(m.group(1))[0] <= 8e6, text)
    m = re.search(r"\ntwice .*  suspended (\S+ m?s) \(2 times\)\n", text)
    check("two suspensions summed", m and 1.55e6 <= parse_dur(m.group(1))[0] <= 12e6, text)
    check("no suspension where none was", not re.search(r"\n00000000000000f1 .*suspended", text))


def test_exit(tmp):
    # End of input: the incomplete tree is printed, marked, and the run is a success.
    path = os.path.join(tmp, "lightningd-trace.32274")
    open(path, "w", encoding="utf-8").writelines(capture_lines(True))
    res = run(["--file", path], lang="C")
    check("exit 0", res.returncode == 0, res.stderr)
    check("incomplete tree printed at the end",
          "(566 spans)  INCOMPLETE: parent 0f346be4b171a29b not seen before exit" in res.stdout,
          res.stdout[:500])
    check("every span printed", sum(len(l) for _, l in blocks(res.stdout)) == 584)
    # SIGTERM while following, long before the timeout: nothing is lost.
    proc, f, out, err = follow(tmp, 600000)
    time.sleep(0.3)
    f.writelines(capture_lines(True))
    f.flush()
    check("complete traces printed while running",
          wait_for(lambda: read(out).count("\ntrace ") + 1 >= 10, 10), read(err))
    time.sleep(0.3)
    check("the incomplete one still waits", "INCOMPLETE" not in read(out))
    rc, text, errtext = stop(proc, out, err)
    check("exit 0 after SIGTERM", rc == 0, errtext)
    check("printed at shutdown", "(566 spans)  INCOMPLETE: parent 0f346be4b171a29b not seen "
          "before exit" in text, errtext)
    check("every span printed", sum(len(l) for _, l in blocks(text)) == 584)


def test_options(tmp):
    for bad in ("abc", "-5", "10s", "99999999999"):
        res = run(["--file", capture], CLN_OTLP_CONSOLE_TIMEOUT_MS=bad)
        check(f"timeout {bad!r} refused", res.returncode == 2, res.stderr)
        check("the message names the variable", "CLN_OTLP_CONSOLE_TIMEOUT_MS" in res.stderr,
              res.stderr)
        check("nothing printed", not res.stdout)
    res = run(["--file", capture], CLN_OTLP_CONSOLE_TIMEOUT_MS="")
    check("empty timeout is unset", res.returncode == 0, res.stderr)
    res = run(["--file", capture], lang="C", OTEL_SERVICE_NAME="mynode")
    check("OTEL_SERVICE_NAME in the headers",
          all(m.group(2) == "mynode[32274]" for m, _ in blocks(res.stdout)), res.stdout[:300])
    res = run(["--file", capture], lang="en_US.UTF-8", LC_ALL="C")
    check("LC_ALL=C wins over a UTF-8 LANG", res.stdout and
          all(ord(c) < 128 for c in res.stdout))
    res = run(["--file", capture], lang="C", LC_CTYPE="C.UTF-8")
    check("LC_CTYPE UTF-8 wins over LANG=C", "█" in res.stdout)
    # The socket source knows the sender's pid (its executable label: console_unit label).
    path = os.path.join(tmp, "trace.sock")
    out = open(os.path.join(tmp, "stdout"), "w+", encoding="utf-8")
    err = open(os.path.join(tmp, "stderr"), "w+", encoding="utf-8")
    proc = subprocess.Popen([cln_otlp, "--exporter", "console", "--socket", path,
                             "--batch-delay", "50"], stdout=out, stderr=err, env=env_for("C"))
    check("socket ready", wait_for(lambda: os.path.exists(path)), read(err))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender.sendto(open(capture, encoding="utf-8").read().split("span_emit 0ff6b0fc1df3f024 ")[1]
                  .split("\n")[0].replace(',"parentId":"0f346be4b171a29b"', "").encode(), path)
    want = re.compile(rf"^trace 074c67a2\.\.\.d273  \S+\[{os.getpid()}\]( \(lightningd\))?  "
                      r"plugins/init  24\.5 ms  \(1 span\)$", re.M)
    check("header with the sender's pid", wait_for(lambda: want.search(read(out))), read(out))
    rc, _, errtext = stop(proc, out, err)
    check("exit 0", rc == 0, errtext)


with tempfile.TemporaryDirectory() as tmp:
    {"startup": test_startup, "plugins": test_plugins, "golden": test_golden,
     "timeout": test_timeout, "suspend": test_suspend, "exit": test_exit,
     "options": test_options}[which](tmp)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
