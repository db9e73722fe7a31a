#!/usr/bin/python3
"""Side-by-side benchmarks of cln-otlp and the usual bpftrace one-liner, in one run, as a
markdown table (figures, not pass/fail). Needs root (eBPF) and a build (scripts/test.sh).

  1. Cost per probe hit in the traced process: the emitter fires span_emit in a tight loop
     (280-byte spans) with no tracer, with cln-otlp attached, and with
     `bpftrace -e 'usdt:PATH:lightningd:span_emit {printf("%s\\n", str(arg1));}'`
     (BPFTRACE_STRLEN=200, the most Debian 12's bpftrace allows).
  2. Share of spans delivered intact (valid JSON, equal to what was fired) when the real
     capture is replayed at 10k/s, 100k/s and the emitter's maximum rate.
  3. Bridge CPU time per span and peak RSS, end to end to the mock collector with gzip.
  4. Parse + map + encode spans/s on one core (bench-encode).
  5. Volume control on the real capture (all files): spans and OTLP/JSON bytes exported with
     no rule, with --drop-span 'db_*<1ms', and with --sample 0.1 --keep-errors
     --keep-slower-than 100ms, and the CPU each run costs (--volume: this part alone, no root).
  6. The node's cost per span of each capture path: the emitter plays a node answering
     calls (3 spans per ~35 us of work, --burst 3 --work) and prints its own CPU time
     per span, with no tracer, eBPF capture (cln-otlp --lightningd), its --socket mode into
     cln-otlp --socket, and --socket with nobody listening (the bare sendto); rounds
     interleaved, medians (min-max); each beside main's cln-otlp when --main BIN (or
     --old-build DIR) is given (--node-cost: this part alone).

  7. Footprint (--footprint: this part alone): RSS and PSS (/proc/PID/smaps_rollup) at rest
     and at 1,000 spans/s, CPU (utime + stime over a fixed window) idle and at 1,000
     spans/s, attached with eBPF and exporting to the mock collector, with the defaults, with
     --ringbuf-size 16M, and with today's main (--old-build DIR or --main BIN), side by side;
     an outage (the collector killed for 30 s while spans go on at 1,000/s, then back): RSS
     before, at its end and once the queue has drained, the drain time, spans lost, and the
     bytes one queued span costs; and the bytes per queued span with the collector down, on
     the real capture replayed. Medians of --runs runs, with min-max.

usage: bench/run.py [--build DIR] [--old-build DIR] [--runs N] [--quick] [--volume]
                    [--node-cost] [--main BIN] [--footprint] [--fp-rate N] [--fp-window S]
                    [--outage S] [--outage-lead S] [--drain-timeout S] [--queued-spans N]
"""
import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import socket
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
ap.add_argument("--build", default=os.path.join(ROOT, "build"))
ap.add_argument("--runs", type=int, default=5, help="runs per figure; the median is shown")
ap.add_argument("--quick", action="store_true", help="fewer spans and runs (a smoke test)")
ap.add_argument("--volume", action="store_true", help="only the volume figures (no root needed)")
ap.add_argument("--node-cost", action="store_true", help="only the node's cost per span by path")
ap.add_argument("--main", help="cln-otlp built from main, compared in the node cost and "
                "footprint figures")
ap.add_argument("--footprint", action="store_true", help="only the footprint figures")
ap.add_argument("--old-build", help="a build directory of today's main, compared in the "
                "footprint and node cost figures (its cln-otlp; --main BIN alike)")
fp = ap.add_argument_group("footprint (--quick: the shorter value)")
fp.add_argument("--fp-rate", type=int, default=1000, help="spans/s of the busy figures and "
                "the outage (default 1000)")
fp.add_argument("--fp-window", type=float, help="seconds of each CPU window (10; 5)")
fp.add_argument("--outage", type=float, help="seconds the collector is down (30; 10)")
fp.add_argument("--outage-lead", type=float, help="seconds exporting before the outage (10; 8: "
                "a bridge holds spans up to 5 s while it looks for the node's identity)")
fp.add_argument("--drain-timeout", type=float, default=300,
                help="longest wait for the queue to drain after the outage (default 300)")
fp.add_argument("--queued-spans", type=int, help="spans queued with the collector down "
                "(30000; 10000)")
args = ap.parse_args()
if os.geteuid() != 0 and not args.volume:
    sys.exit("bench: needs root (eBPF); run scripts/test.sh first to build")
if args.quick:
    args.runs = min(args.runs, 3)
for name, full, quick in (("fp_window", 10, 5), ("outage", 30, 10), ("outage_lead", 10, 8),
                          ("queued_spans", 30000, 10000)):
    if getattr(args, name) is None:
        setattr(args, name, quick if args.quick else full)
# Today's main: one binary for every comparison, from --main or --old-build.
main_bin = args.main or (os.path.join(args.old_build, "cln-otlp") if args.old_build else None)
if main_bin and not os.access(main_bin, os.X_OK):
    sys.exit(f"bench: {main_bin}: not an executable cln-otlp")

B = args.build
cln_otlp = os.path.join(B, "cln-otlp")
emitter_src = os.path.join(B, "tests", "usdt", "emitter", "cln-emitter")
bench_encode = os.path.join(B, "bench", "bench-encode")
proto_py = os.path.join(B, "tests", "collector", "py")
collector = os.path.join(ROOT, "tests", "collector", "mock_collector.py")
data = os.path.join(ROOT, "tests", "data", "cln-v26-startup")
capture = os.path.join(data, "lightningd-trace.32274")
for p in (cln_otlp,) if args.volume else (cln_otlp, emitter_src, bench_encode, proto_py):
    if not os.path.exists(p):
        sys.exit(f"bench: {p} missing: run scripts/test.sh (or cmake --build {B}) first")
bpftrace = shutil.which("bpftrace")


def tracefs_ready():
    """bpftrace 0.17 detaches uprobes through tracefs: without it, it hangs at exit. Mount it
    where it is missing (as a fresh boot of some VMs leaves it); False when that fails."""
    if os.path.exists("/sys/kernel/tracing/uprobe_events"):
        return True
    r = subprocess.run(["mount", "-t", "tracefs", "nodev", "/sys/kernel/tracing"],
                       capture_output=True, text=True)
    if r.returncode == 0 and os.path.exists("/sys/kernel/tracing/uprobe_events"):
        print("bench: mounted tracefs on /sys/kernel/tracing (bpftrace needs it to detach)",
              file=sys.stderr)
        return True
    print("bench: no tracefs (%s): the bpftrace one-liner is left out" % r.stderr.strip(),
          file=sys.stderr)
    return False


if bpftrace and not tracefs_ready():
    bpftrace = None

tmp = tempfile.mkdtemp(prefix="cln-otlp-bench-")
emitter = os.path.join(tmp, "lightningd")
shutil.copy(emitter_src, emitter)
USDT = f"usdt:{emitter}:lightningd:span_emit"
ONE_LINER = USDT + ' {printf("%s\\n", str(arg1));}'


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def emit(extra, log_file=None):
    """Run the emitter; returns (ns per probe, span_emit fired, span_emit/s achieved)."""
    argv = [emitter] + extra + (["--log", log_file] if log_file else [])
    r = subprocess.run(argv, capture_output=True, text=True, check=True)
    m = re.search(r"fired \d+ probes \((\d+) span_emit\) in [\d.]+ s: ([\d.]+) ns/probe, "
                  r"(\d+) span_emit/s", r.stderr)
    return float(m.group(2)), int(m.group(1)), int(m.group(3))


def wait_text(path, text, proc, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if text in open(path, errors="replace").read():
            return
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"bench: {proc.args[0]} did not start:\n" + open(path, errors="replace").read())


class Tracer:
    """cln-otlp or bpftrace attached to the emitter, writing to a file."""

    def __init__(self, kind, out_path, extra=(), binary=None):
        self.err_path = out_path + ".err"
        self.out = open(out_path, "w")
        self.err = open(self.err_path, "w")
        if kind == "cln-otlp":
            argv = [binary or cln_otlp, "--lightningd", emitter, "--no-plugins", "--exporter",
                    "stdout", "--batch-delay", "200", "--stats-interval", "0", *extra]
            ready = "attached"
            env = None
        elif kind == "socket":
            argv = [binary or cln_otlp, "--socket", extra[0], "--exporter", "stdout",
                    "--batch-delay", "200", "--stats-interval", "0"]
            ready = "listening on"
            env = None
        else:
            argv = [bpftrace, "-e", ONE_LINER]
            ready = "Attaching"
            env = dict(os.environ, BPFTRACE_STRLEN="200")
        self.proc = subprocess.Popen(argv, stdout=self.out, stderr=self.err, env=env)
        wait_text(self.err_path if kind in ("cln-otlp", "socket") else out_path, ready,
                  self.proc)
        time.sleep(1.0 if kind == "bpftrace" else 0.3)

    def stop(self):
        time.sleep(0.5)
        self.proc.send_signal(signal.SIGINT)
        end = time.time() + 60  # exited, not reaped yet: wait4 below wants its rusage
        while not os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT):
            if time.time() > end:
                log(f"bench: {self.proc.args[0]} did not stop within 60 s of SIGINT: killed")
                self.proc.kill()
                break
            time.sleep(0.05)
        _, status, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.out.close()
        self.err.close()
        return ru


def probe_cost():
    log("1/7 cost per probe hit")
    setups = [("no tracer", None), ("cln-otlp", "cln-otlp")]
    if bpftrace:
        setups.append(("bpftrace one-liner (strlen 200)", "bpftrace"))
    n = "20000" if args.quick else "50000"
    res = {}
    for name, kind in setups:
        runs = []
        for _ in range(args.runs):
            tr = Tracer(kind, os.path.join(tmp, "cost.out")) if kind else None
            runs.append(emit(["--synthetic", n, "--size", "280", "--emit-only"])[0])
            if tr:
                tr.stop()
        res[name] = statistics.median(runs)
    return res


def fired_spans(log_file):
    out = {}
    for line in open(log_file, encoding="utf-8"):
        sid, payload = line.rstrip("\n").split(" ", 1)
        if sid.startswith("span_"):
            continue
        out[sid] = payload
    return out


def mapped(payload):
    """What an intact span must look like after the mapping (README, Mapping)."""
    (s,) = json.loads(payload)
    attrs = [(k, v) for k, v in s["tags"].items() if not (k == "error" and v == "true")]
    return (s["traceId"], s.get("parentId"), s["name"], s["timestamp"] * 1000,
            (s["timestamp"] + s["duration"]) * 1000, attrs)


def intact_cln_otlp(out_path, fired):
    ok = 0
    seen = set()
    for line in open(out_path, encoding="utf-8"):
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    sid = sp["spanId"]
                    if sid in seen or sid not in fired:
                        continue
                    seen.add(sid)
                    got = (sp["traceId"], sp.get("parentSpanId"), sp["name"],
                           int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"]),
                           [(a["key"], a["value"]["stringValue"]) for a in sp["attributes"]])
                    ok += got == mapped(fired[sid])
    return ok


def intact_bpftrace(out_path, fired):
    want = set(fired.values())
    ok = 0
    for line in open(out_path, encoding="utf-8", errors="replace"):
        line = line.rstrip("\n")
        try:
            json.loads(line)
        except ValueError:
            continue
        ok += line in want
    return ok


def intact():
    log("2/7 spans delivered intact")
    spans_file = sum(1 for l in open(capture) if l.startswith("span_emit"))
    target = 20000 if args.quick else 100000
    repeat = -(-target // spans_file)
    rates = [("10k/s", "10000/s"), ("100k/s", "100000/s"), ("max", "0")]
    tools = ["cln-otlp"] + (["bpftrace"] if bpftrace else [])
    res = {}
    for label, rate in rates:
        for tool in tools:
            shares, achieved, lost = [], [], []
            for r in range(args.runs):
                out = os.path.join(tmp, f"intact-{tool}.out")
                fl = os.path.join(tmp, "fired.log")
                tr = Tracer(tool, out, ["--queue-size", "1048576", "--queue-bytes", "2G"]
                            if tool == "cln-otlp" else ())
                _, n, rate_got = emit([capture, "--repeat", str(repeat), "--unique-ids",
                                       "--rate", rate, "--emit-only", "--seed", str(r)], fl)
                tr.stop()
                fired = fired_spans(fl)
                got = (intact_cln_otlp if tool == "cln-otlp" else intact_bpftrace)(out, fired)
                shares.append(100.0 * got / len(fired))
                achieved.append(rate_got)
                if tool == "cln-otlp":
                    m = re.search(r"ringbuf_lost=(\d+)", open(out + ".err").read())
                    lost.append(int(m.group(1)) if m else -1)
            res[(label, tool)] = (statistics.median(shares), statistics.median(achieved),
                                  max(lost) if lost else None, len(fired))
    return res


def end_to_end():
    log("3/7 bridge CPU and RSS, end to end with gzip")
    n_target = 50000 if args.quick else 200000
    spans_file = sum(1 for l in open(capture) if l.startswith("span_emit"))
    repeat = -(-n_target // spans_file)
    cpu, rss, tput = [], [], []
    for r in range(args.runs):
        wd = os.path.join(tmp, f"e2e{r}")
        os.makedirs(wd)
        pf = os.path.join(wd, "ports.json")
        coll = subprocess.Popen(["/usr/bin/python3", collector, "--proto-py", proto_py, "--http",
                                 "0", "--port-file", pf, "--requests",
                                 os.path.join(wd, "req.jsonl")],
                                stderr=open(os.path.join(wd, "coll.err"), "w"))
        while not os.path.exists(pf):
            time.sleep(0.05)
        port = json.load(open(pf))["http"]
        err = os.path.join(wd, "bridge.err")
        bridge = subprocess.Popen([cln_otlp, "--lightningd", emitter, "--no-plugins",
                                   "--endpoint", f"http://127.0.0.1:{port}", "--compression",
                                   "gzip", "--queue-size", "1048576", "--queue-bytes", "2G",
                                   "--batch-delay", "200", "--stats-interval", "0"],
                                  stderr=open(err, "w"))
        wait_text(err, "attached", bridge)
        t0 = time.time()
        _, n, _ = emit([capture, "--repeat", str(repeat), "--unique-ids", "--rate", "0",
                        "--emit-only", "--seed", str(r)])
        delivered = 0
        while delivered < n and time.time() - t0 < 300:
            time.sleep(0.2)
            delivered = sum(json.loads(l).get("spans", 0)
                            for l in open(os.path.join(wd, "req.jsonl"))
                            if '"status": 200' in l or '"status":200' in l)
        elapsed = time.time() - t0
        hwm = [l for l in open(f"/proc/{bridge.pid}/status") if l.startswith("VmHWM")][0]
        bridge.send_signal(signal.SIGTERM)
        _, _, ru = os.wait4(bridge.pid, 0)
        coll.send_signal(signal.SIGTERM)
        coll.wait()
        cpu.append((ru.ru_utime + ru.ru_stime) * 1e9 / max(n, 1))
        rss.append(int(hwm.split()[1]) / 1024)
        tput.append(delivered / elapsed)
    return statistics.median(cpu), statistics.median(rss), statistics.median(tput), n


def encode():
    log("4/7 parse + map + encode")
    r = subprocess.run([bench_encode, "--rounds", str(max(args.runs, 5))] +
                       [os.path.join(data, f) for f in sorted(os.listdir(data))],
                       capture_output=True, text=True, check=True)
    return r.stdout


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), "?")
    bt = subprocess.run([bpftrace, "--version"], capture_output=True, text=True).stdout.strip() \
        if bpftrace else "not installed"
    return (f"{os.cpu_count()} cores ({cpu}), kernel {os.uname().release}, {bt}, "
            f"{args.runs} runs per figure (medians)")


VOLUME_RULES = (("no rule", []), ("--drop-span 'db_*<1ms'", ["--drop-span", "db_*<1ms"]),
                ("--sample 0.1 --keep-errors --keep-slower-than 100ms",
                 ["--sample", "0.1", "--keep-errors", "--keep-slower-than", "100ms"]))


def volume():
    """Spans and bytes exported, and CPU per run, with each set of volume rules."""
    import resource
    log("5/7 volume control")
    files = [a for f in sorted(os.listdir(data)) for a in ("--file", os.path.join(data, f))]
    rows = []
    for label, rule in VOLUME_RULES:
        cpu = []
        for _ in range(args.runs):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            r = subprocess.run([cln_otlp, "--exporter", "stdout", "--batch-delay", "10",
                                "--stats-interval", "0", "-q"] + files + rule,
                               capture_output=True, check=True)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                       * 1000)
        spans = sum(len(ss["spans"]) for line in r.stdout.splitlines() if line.strip()
                    for rs in json.loads(line)["resourceSpans"] for ss in rs["scopeSpans"])
        rows.append((label, spans, len(r.stdout), statistics.median(cpu)))
    return rows


def proc_mem(pid):
    """(VmRSS, PSS) in MiB."""
    rss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS"))
    pss = next(int(l.split()[1]) for l in open(f"/proc/{pid}/smaps_rollup")
               if l.startswith("Pss:"))
    return rss / 1024, pss / 1024


def proc_cpu(pid):
    st = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(st[11]) + int(st[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port):
    """The bridge's /metrics: {family: value}, labelled series summed per family."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            fam = name.split("{", 1)[0]
            out[fam] = out.get(fam, 0) + float(value)
    return out


def wait_until(cond, timeout):
    """Polls cond until it holds (True) or timeout seconds pass (False)."""
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def start_collector(wd, port=0, record=None):
    """The mock collector (http/protobuf); returns (process, port)."""
    pf = os.path.join(wd, f"ports-{time.monotonic_ns()}.json")
    coll = subprocess.Popen(["/usr/bin/python3", collector, "--proto-py", proto_py, "--http",
                             str(port), "--port-file", pf] +
                            (["--record", record] if record else []),
                            stderr=subprocess.DEVNULL)
    if not wait_until(lambda: os.path.exists(pf) and os.path.getsize(pf) > 0, 60):
        sys.exit("bench: the mock collector did not start")
    return coll, json.load(open(pf))["http"]


def start_bridge(binary, wd, endpoint, extra=()):
    """cln-otlp attached to the emitter, serving /metrics; returns (process, metrics port)."""
    mport = free_port()
    err = os.path.join(wd, f"bridge-{time.monotonic_ns()}.err")
    bridge = subprocess.Popen([binary, "--lightningd", emitter, "--no-plugins", "--endpoint",
                               endpoint, "--stats-interval", "0", "--metrics-listen",
                               f"127.0.0.1:{mport}", *extra], stderr=open(err, "w"))
    wait_text(err, "attached", bridge)
    return bridge, mport


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log(f"bench: {proc.args[0]} did not stop within 60 s of SIGTERM: killed")
        proc.kill()
        proc.wait()


def footprint_run(binary, extra, window):
    """One bridge attached to the emitter, exporting to the mock collector: memory and CPU
    at rest, then with the emitter at --fp-rate spans/s. Returns a dict of figures."""
    wd = tempfile.mkdtemp(dir=tmp)
    coll, port = start_collector(wd)
    err = os.path.join(wd, "bridge.err")
    bridge = subprocess.Popen([binary, "--lightningd", emitter, "--no-plugins", "--endpoint",
                               f"http://127.0.0.1:{port}", *extra], stderr=open(err, "w"))
    wait_text(err, "attached", bridge)
    time.sleep(2)  # start-up done: what stays is the footprint at rest
    f = {}
    c0 = proc_cpu(bridge.pid)
    time.sleep(window)
    f["cpu_idle"] = 100 * (proc_cpu(bridge.pid) - c0) / window
    f["rss_rest"], f["pss_rest"] = proc_mem(bridge.pid)
    n = int(args.fp_rate * (window + 3))
    em = subprocess.Popen([emitter, "--synthetic", str(n), "--size", "280", "--rate",
                           f"{args.fp_rate}/s", "--emit-only"], stderr=subprocess.DEVNULL)
    time.sleep(2)  # the rate settled
    c0 = proc_cpu(bridge.pid)
    time.sleep(window)
    f["cpu_1k"] = 100 * (proc_cpu(bridge.pid) - c0) / window
    f["rss_1k"], f["pss_1k"] = proc_mem(bridge.pid)
    em.wait()
    stop(bridge)
    stop(coll)
    return f


SPAN_ID = re.compile(r'"spanId": ?"([0-9a-f]{16})"')


def outage_run(binary, seed):
    """The bridge exporting at --fp-rate spans/s; the collector killed for --outage seconds
    while the emitter goes on; then a new one on the same port. Memory before, at the end of
    the outage and once the queue has drained; how long the drain took; spans lost."""
    wd = tempfile.mkdtemp(dir=tmp)
    rec = os.path.join(wd, "spans.jsonl")
    coll, port = start_collector(wd, 0, rec)
    bridge, mport = start_bridge(binary, wd, f"http://127.0.0.1:{port}")
    n = int(args.fp_rate * (args.outage_lead + args.outage))
    fired_log = os.path.join(wd, "fired.log")
    em = subprocess.Popen([emitter, "--synthetic", str(n), "--size", "280", "--rate",
                           f"{args.fp_rate}/s", "--emit-only", "--seed", str(seed), "--log",
                           fired_log], stderr=subprocess.DEVNULL)
    time.sleep(args.outage_lead)  # measurement window: the bridge exporting at its rate
    f = {"rss_before": proc_mem(bridge.pid)[0]}
    held = scrape(mport)["cln_otlp_queue_spans"]
    if held > args.fp_rate:
        log(f"bench: {binary} held {held:.0f} spans before the outage: not exporting yet, "
            "RSS before is not the steady state (a longer --outage-lead)")
    coll.kill()
    coll.wait()
    t_down = time.time()
    em.wait()
    f["outage_s"] = time.time() - t_down
    received = lambda: scrape(mport).get("cln_otlp_spans_received_total", 0)
    if not wait_until(lambda: received() >= n, 60):
        log(f"bench: {binary} received {received():.0f} of {n} spans fired")
    f["rss_during"] = proc_mem(bridge.pid)[0]
    f["queued"] = scrape(mport)["cln_otlp_queue_spans"]
    f["per_span_outage"] = ((f["rss_during"] - f["rss_before"]) * 1024 * 1024 / f["queued"]
                            if f["queued"] else float("nan"))
    coll, _ = start_collector(wd, port, rec)
    t_up = time.time()
    drained = wait_until(lambda: scrape(mport)["cln_otlp_queue_spans"] == 0, args.drain_timeout)
    f["drain_s"] = time.time() - t_up if drained else float("inf")
    f["rss_after"] = proc_mem(bridge.pid)[0]
    fired = {line.split(" ", 1)[0] for line in open(fired_log) if line.endswith("\n")}

    def missing():
        got = set()
        with open(rec, errors="replace") as fh:
            for line in fh:
                if line.endswith("\n"):
                    m = SPAN_ID.search(line)
                    got.add(m.group(1) if m else None)
        return len(fired - got)
    wait_until(lambda: missing() == 0, 10)  # the last answers' records flushed
    f["lost"] = missing()
    stop(bridge)
    stop(coll)
    return f


def capture_payloads():
    """The span_emit payloads of the real capture."""
    return [line.split(" ", 2)[2].rstrip("\n") for line in open(capture, errors="replace")
            if line.startswith("span_emit ")]


def queued_bytes(binary):
    """Memory per queued span with the collector down: RSS growth while the real capture,
    replayed with unique ids (--queued-spans spans at 20,000/s), waits in the queue, over the
    spans the bridge says it holds."""
    wd = tempfile.mkdtemp(dir=tmp)
    bridge, mport = start_bridge(binary, wd, "http://127.0.0.1:9")
    time.sleep(1)  # start-up done
    r0, _ = proc_mem(bridge.pid)
    repeat = -(-args.queued_spans // len(capture_payloads()))
    _, n, _ = emit([capture, "--repeat", str(repeat), "--unique-ids", "--rate", "20000/s",
                    "--emit-only"])
    wait_until(lambda: scrape(mport).get("cln_otlp_spans_received_total", 0) >= n, 60)
    r1, _ = proc_mem(bridge.pid)
    queued = scrape(mport)["cln_otlp_queue_spans"]
    stop(bridge)
    return (r1 - r0) * 1024 * 1024 / queued if queued else float("nan")


def footprint():
    log(f"7/7 footprint: RSS, PSS and CPU at rest and at {args.fp_rate} spans/s, an outage, "
        "memory per queued span")
    window = args.fp_window
    setups = [("defaults", cln_otlp, []), ("--ringbuf-size 16M", cln_otlp,
                                           ["--ringbuf-size", "16M"])]
    if main_bin:
        setups.append(("main", main_bin, []))
    figs = {label: {} for label, _, _ in setups}

    def add(label, f):
        for k, v in f.items():
            figs[label].setdefault(k, []).append(v)
    for r in range(args.runs):  # rounds interleaved: drift of the machine hits every setup
        for label, binary, extra in setups:
            log(f"  run {r + 1}/{args.runs}: {label}")
            add(label, footprint_run(binary, extra, window))
            if not extra:  # the outage and the queue: each build with its defaults
                add(label, outage_run(binary, r))
                add(label, {"per_span_queued": queued_bytes(binary)})
    return figs


def cell(values, fmt, unit=""):
    """median, and (min–max) when there are several runs; "not run" when there is none."""
    if not values:
        return "not run"
    med = statistics.median(values)
    text = f"{med:{fmt}}{unit}"
    if len(values) > 1:
        text += f" ({min(values):{fmt}}–{max(values):{fmt}})"
    return text


def print_footprint(figs):
    rate = f"{args.fp_rate / 1000:g}k/s"
    real = capture_payloads()
    mean = sum(len(p) for p in real) / len(real)
    rows = [
        ("RSS at rest", "rss_rest", ".1f", " MiB"),
        ("PSS at rest", "pss_rest", ".1f", " MiB"),
        (f"RSS at {rate}", "rss_1k", ".1f", " MiB"),
        (f"PSS at {rate}", "pss_1k", ".1f", " MiB"),
        ("CPU idle", "cpu_idle", ".2f", " %"),
        (f"CPU at {rate}", "cpu_1k", ".2f", " %"),
        (f"RSS before the outage ({rate})", "rss_before", ".1f", " MiB"),
        (f"RSS at the end of a {args.outage:g} s outage", "rss_during", ".1f", " MiB"),
        ("RSS after the drain", "rss_after", ".1f", " MiB"),
        ("spans queued at the end of the outage", "queued", ".0f", ""),
        ("bytes per queued span (outage)", "per_span_outage", ".0f", ""),
        ("drain time, collector back to `queue_spans` 0", "drain_s", ".1f", " s"),
        ("spans lost (fired, never recorded by the collector)", "lost", ".0f", ""),
        (f"bytes per queued span (collector down, {args.queued_spans:,} real CLN spans)",
         "per_span_queued", ".0f", ""),
    ]
    labels = list(figs)
    print(f"\n**Footprint**, attached with eBPF, exporting to the mock collector "
          f"(http/protobuf); medians of {args.runs} runs (min–max); CPU: share of one core "
          f"(utime + stime over {args.fp_window:g} s); main: today's main's binary, same "
          f"runs, interleaved.\n"
          f"Outage: the emitter at {rate} (synthetic 280-byte spans), the collector killed "
          f"for {args.outage:g} s after {args.outage_lead:g} s, a new one on the same port "
          f"after; bytes per queued span (outage) = (RSS at the end − RSS before) / "
          f"the bridge's `queue_spans` then. Collector down: the real capture "
          f"(`{os.path.basename(capture)}`, {len(real)} spans, {mean:.0f} bytes of JSON on "
          f"average) replayed with unique ids at 20,000/s, RSS growth / `queue_spans`.\n")
    print("| figure | " + " | ".join(labels) + " |")
    print("|---|" + "---:|" * len(labels))
    for name, key, fmt, unit in rows:
        print(f"| {name} | " + " | ".join(cell(figs[l].get(key), fmt, unit) for l in labels)
              + " |")


def print_volume(rows):
    base = rows[0]
    print("\n**Volume control** on the real capture (20 files, one run each; bytes: the "
          "OTLP/JSON the stdout exporter writes; CPU: user + system of a whole run, start-up "
          "included):\n")
    print("| rules | spans exported | bytes | of no rule | CPU ms per run |")
    print("|---|---:|---:|---:|---:|")
    for label, spans, size, cpu in rows:
        print(f"| {label} | {spans} | {size:,} | {100 * size / base[2]:.0f} % | {cpu:.1f} |")


def voluntary(pid):
    with open(f"/proc/{pid}/status") as f:
        return int([ln.split()[1] for ln in f if ln.startswith("voluntary_ctxt_switches")][0])


def node_cost():
    """The emitter's own CPU per span (ns), the median time of its sendto (ns), the reader's
    wake-ups per span, and the datagrams refused, by path."""
    log("6/7 the node's cost per span, by capture path")
    n = 3000 if args.quick else 9000
    sock = os.path.join(tmp, "trace.sock")
    nowhere = os.path.join(tmp, "nobody-listens.sock")
    setups = [("no tracer", None, None), ("eBPF capture", "cln-otlp", cln_otlp),
              ("socket into cln-otlp --socket", "socket", cln_otlp),
              ("socket, nobody listening (bare sendto)", "bare", None)]
    if main_bin:
        setups[2:2] = [("eBPF capture (main)", "cln-otlp", main_bin),
                       ("socket into cln-otlp --socket (main)", "socket", main_bin)]
    cpu = {name: [] for name, _, _ in setups}
    send = {name: [] for name, _, _ in setups}
    wakes = {name: [] for name, _, _ in setups}
    lost = {name: 0 for name, _, _ in setups}
    for r in range(args.runs):  # rounds interleaved: drift of the machine hits every path
        for name, kind, binary in setups:
            tr = Tracer(kind, os.path.join(tmp, "node.out"), (sock,) if kind == "socket" else (),
                        binary) if kind in ("cln-otlp", "socket") else None
            argv = [emitter, "--synthetic", str(n), "--emit-only", "--burst", "3", "--work",
                    "30000", "--seed", str(r)]
            if kind in ("socket", "bare"):
                argv += ["--socket", sock if kind == "socket" else nowhere]
            w0 = voluntary(tr.proc.pid) if tr else 0
            p = subprocess.run(argv, capture_output=True, text=True, check=True)
            if tr:
                wakes[name].append((voluntary(tr.proc.pid) - w0) / n)
                tr.stop()
            cpu[name].append(float(re.search(r"cpu ([\d.]+) ns/span_emit", p.stderr).group(1)))
            m = re.search(r"sendto: median (\d+) ns", p.stderr)
            if m:
                send[name].append(int(m.group(1)))
            m = re.search(r"eagain (\d+)", p.stderr)
            lost[name] += int(m.group(1)) if m else 0
    return [(name, cpu[name], send[name], wakes[name], lost[name], n * args.runs)
            for name, _, _ in setups]


def print_node_cost(rows):
    """Medians (min–max); each path beside main's cln-otlp when it was measured."""
    runs = {name: (c, s, w, lost, sent) for name, c, s, w, lost, sent in rows}
    base = statistics.median(rows[0][1])
    bare = next(statistics.median(c) for name, c, _, _, _, _ in rows if "bare" in name) - base
    bare_send = next((statistics.median(s) for name, _, s, _, _, _ in rows
                      if "bare" in name and s), None)
    have_main = any(name.endswith(" (main)") for name in runs)

    def cols(name):
        if name is None:
            return ["same (no cln-otlp)", "", "", "", "", "", ""]
        c, s, w, lost, sent = runs[name]
        added = statistics.median(c) - base
        ratio = f"{added / bare:.2f}x" if bare > 0 and name != rows[0][0] else ""
        sratio = f"{statistics.median(s) / bare_send:.2f}x" if s and bare_send else ""
        return [cell(c, ".0f"), f"{added:+.0f}", ratio, cell(s, ".0f") if s else "", sratio,
                cell(w, ".3f") if w else "", f"{lost} of {sent}" if s else ""]
    print(f"\n**The node's cost per span** by capture path: the emitter plays a node answering "
          f"calls (3 spans per ~35 us of work), its own CPU time (user + system) per "
          f"span, medians of {args.runs} runs (min–max); sendto: the median wall time of one "
          f"sendto call (steadier than the CPU of a run on a shared machine); wake-ups: the "
          f"reader's voluntary context switches per span; refused: of all the datagrams "
          f"sent by all rounds" + ("; main: today's main's cln-otlp in the same rounds"
                                   if have_main else "") + ":\n")
    head = ["ns per span", "added", "of the bare sendto (CPU)", "sendto median ns",
            "of the bare sendto", "reader wake-ups per span", "refused (EAGAIN)"]
    if have_main:
        head = [h for pair in zip(head, [f"main: {h}" for h in head]) for h in pair]
    print("| path | " + " | ".join(head) + " |")
    print("|---|" + "---:|" * len(head))
    for name in runs:
        if name.endswith(" (main)"):
            continue
        here = cols(name)
        if have_main:
            other = f"{name} (main)"
            there = cols(other if other in runs else None)
            here = [x for pair in zip(here, there) for x in pair]
        print(f"| {name} | " + " | ".join(str(x) for x in here) + " |")


if args.node_cost or args.footprint:  # these parts alone, both when both are asked
    if args.node_cost:
        print_node_cost(node_cost())
    if args.footprint:
        print_footprint(footprint())
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0)

if args.volume:
    print_volume(volume())
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0)

try:
    cost = probe_cost()
    share = intact()
    cpu, rss, tput, n_e2e = end_to_end()
    enc = encode()
    vol = volume()
    nodec = node_cost()
    foot = footprint()
finally:
    pass
base = cost["no tracer"]
print(f"### cln-otlp benchmarks\n\nMachine: {machine()}.\n")
print("**Cost per probe hit** in the traced process (emitter firing `span_emit` in a tight "
      "loop, 280-byte spans):\n")
print("| tracer | ns per hit | added by the tracer |")
print("|---|---:|---:|")
for name, ns in cost.items():
    print(f"| {name} | {ns:.0f} | {ns - base:+.0f} |")
print("\n**Spans delivered intact** (valid JSON, equal to what was fired), real capture "
      "replayed with unique ids:\n")
print("| rate asked | achieved (median) | spans | cln-otlp | bpftrace one-liner |")
print("|---|---:|---:|---:|---:|")
for label in ("10k/s", "100k/s", "max"):
    c = share[(label, "cln-otlp")]
    b = share.get((label, "bpftrace"))
    lost = f" ({c[2]} lost in the ring)" if c[2] else ""
    print(f"| {label} | {c[1]:,}/s | {c[3]:,} | {c[0]:.2f} %{lost} | "
          f"{f'{b[0]:.2f} %' if b else 'n/a'} |")
print(f"\n**End to end** to the mock collector (http/protobuf, gzip), {n_e2e:,} spans fired "
      f"as fast as the emitter can: bridge CPU **{cpu:.0f} ns per span** (user + system), "
      f"peak RSS **{rss:.0f} MiB**, delivered {tput:,.0f} spans/s.\n")
print("**Parse + map + encode** on one core (bench-encode, real payloads):\n")
print(enc[enc.index("|"):] if "|" in enc else enc)
print_volume(vol)
print_node_cost(nodec)
print_footprint(foot)
shutil.rmtree(tmp, ignore_errors=True)
