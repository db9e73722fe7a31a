#!/usr/bin/python3
"""Soak: real CLN spans through the real probe at a steady rate while the collector goes
down and up, for a long time. Reports spans fired, delivered, dropped by reason, and the
bridge's RSS over time (it must stay flat: every queue is bounded).

  bench/soak.py --build build                       10 minutes at 5,000 spans/s, flap 20 s
  bench/soak.py --build build --duration 60 --check the CI version: fails unless every span
                                                    fired was delivered and RSS stayed flat

Needs root (eBPF). The emitter replays tests/data/cln-v26-startup with unique ids; the
bridge exports http/protobuf with gzip to the mock collector, which is stopped for --flap
seconds every other --flap seconds (connections refused: the bridge retries with backoff).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
ap.add_argument("--build", default=os.path.join(ROOT, "build"), help="CMake build directory")
ap.add_argument("--duration", type=int, default=600, help="seconds of firing (default 600)")
ap.add_argument("--rate", type=int, default=5000, help="spans per second (default 5000)")
ap.add_argument("--flap", type=int, default=20, help="collector down/up period in s (default 20)")
ap.add_argument("--sample", type=int, default=5, help="RSS sample period in s (default 5)")
ap.add_argument("--check", action="store_true", help="exit 1 unless nothing was lost and RSS flat")
args = ap.parse_args()

if os.geteuid() != 0:
    sys.exit("soak: needs root (it captures through the real USDT probe with eBPF)")
cln_otlp = os.path.join(args.build, "cln-otlp")
emitter = os.path.join(args.build, "tests", "usdt", "emitter", "cln-emitter")
proto_py = os.path.join(args.build, "tests", "collector", "py")
collector = os.path.join(ROOT, "tests", "collector", "mock_collector.py")
capture = os.path.join(ROOT, "tests", "data", "cln-v26-startup", "lightningd-trace.32274")
for p in (cln_otlp, emitter, proto_py):
    if not os.path.exists(p):
        sys.exit(f"soak: {p} missing: build first (scripts/test.sh or cmake --build {args.build})")

tmp = tempfile.mkdtemp(prefix="cln-otlp-soak-")
s = socket.socket()
s.bind(("127.0.0.1", 0))
port = s.getsockname()[1]
s.close()
requests_log = os.path.join(tmp, "requests.jsonl")
coll = None


def collector_up():
    global coll
    coll = subprocess.Popen(["/usr/bin/python3", collector, "--proto-py", proto_py, "--http",
                             str(port), "--requests", requests_log],
                            stderr=open(os.path.join(tmp, "collector.log"), "a"))
    end = time.time() + 15
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit("soak: mock collector did not start")


def collector_down():
    global coll
    coll.send_signal(signal.SIGTERM)
    coll.wait(timeout=15)
    coll = None


def delivered():
    n = 0
    try:
        for line in open(requests_log):
            r = json.loads(line)
            if r.get("status") == 200:
                n += r.get("spans", 0)
    except (FileNotFoundError, json.JSONDecodeError):
        pass
    return n


def rss_kb(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


spans_per_file = sum(1 for l in open(capture) if l.startswith("span_emit"))
repeat = -(-args.duration * args.rate // spans_per_file)
fired_target = repeat * spans_per_file
# The queue holds one whole outage (flap seconds at the rate) with room to spare.
queue = 1 << (2 * args.flap * args.rate - 1).bit_length()
binary = os.path.join(tmp, "lightningd")
shutil.copy(emitter, binary)

collector_up()
bridge_err = open(os.path.join(tmp, "bridge.err"), "w+")
bridge = subprocess.Popen([cln_otlp, "--lightningd", binary, "--no-plugins", "--exporter", "otlp",
                           "--endpoint", f"http://127.0.0.1:{port}", "--compression", "gzip",
                           "--queue-size", str(queue), "--queue-bytes", "1G",
                           "--batch-delay", "200", "--shutdown-timeout", "60000",
                           "--stats-interval", "0"], stderr=bridge_err)
end = time.time() + 30
while "attached" not in open(bridge_err.name).read():
    if time.time() > end or bridge.poll() is not None:
        sys.exit("soak: cln-otlp did not attach:\n" + open(bridge_err.name).read())
    time.sleep(0.1)

t0 = time.time()
emit = subprocess.Popen([binary, capture, "--repeat", str(repeat), "--unique-ids", "--rate",
                         f"{args.rate}/s", "--emit-only"], stderr=subprocess.PIPE, text=True)
samples = []
down = False
next_flap = t0 + args.flap
next_sample = t0
outages = 0
while emit.poll() is None:
    now = time.time()
    if now >= next_flap:
        if down:
            collector_up()
        else:
            collector_down()
            outages += 1
        down = not down
        next_flap += args.flap
    if now >= next_sample:
        samples.append((round(now - t0), rss_kb(bridge.pid), delivered()))
        next_sample += args.sample
    time.sleep(0.05)
fire_s = time.time() - t0
emit_err = emit.stderr.read()
if down:
    collector_up()
# Let the backlog drain, then stop the bridge (it flushes what is left).
end = time.time() + 120
while delivered() < fired_target and time.time() < end:
    time.sleep(0.5)
samples.append((round(time.time() - t0), rss_kb(bridge.pid), delivered()))
bridge.send_signal(signal.SIGTERM)
bridge.wait(timeout=120)
collector_down()
bridge_err.seek(0)
stderr = bridge_err.read()
final = re.findall(r"done: (.*)", stderr)
stats = dict(kv.split("=") for kv in final[-1].split()) if final else {}
fired = int(re.search(r"fired \d+ probes \((\d+) span_emit\)", emit_err).group(1))
got = delivered()
drops = {k: v for k, v in stats.items() if k.startswith("drop_")}
# The queue fills during the first outage, and memory stays at that high-water mark; after
# it, RSS must not keep growing.
warm = 2 * args.flap + args.sample
rss_first = max(r for t, r, _ in samples if t <= warm)
rss_second = max([r for t, r, _ in samples if t > warm] or [rss_first])
flat = rss_second <= rss_first * 1.10 + 2048

print(f"## Soak: {args.duration} s at {args.rate} spans/s, collector down {args.flap} s of every "
      f"{2 * args.flap} s ({outages} outages)\n")
print(f"- machine: {os.cpu_count()} cores, kernel {os.uname().release}")
print(f"- bridge: `--queue-size {queue} --compression gzip`, http/protobuf to the mock collector")
print(f"- fired: {fired} spans in {fire_s:.0f} s ({fired / fire_s:.0f}/s)")
print(f"- received by the bridge: {stats.get('received', '?')}, ring-buffer losses: "
      f"{stats.get('ringbuf_lost', '?')}")
print(f"- delivered to the collector: {got} ({100.0 * got / max(fired, 1):.2f} %; over 100 % is a "
      f"batch taken by the collector just as it stopped, then retried), "
      f"exported by the bridge: {stats.get('exported', '?')}, retries: {stats.get('retries', '?')}")
print(f"- dropped: {stats.get('dropped', '?')} {drops if drops else ''}")
print(f"- RSS: max {rss_first // 1024} MiB through the first outage (t <= {warm} s), "
      f"{rss_second // 1024} MiB after it: {'flat' if flat else 'GROWING'}\n")
print("| t (s) | RSS (MiB) | delivered |")
print("|---:|---:|---:|")
step = max(1, len(samples) // 24)
for t, r, d in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
    print(f"| {t} | {r / 1024:.1f} | {d} |")
# At least once: a batch the collector took just as it was stopped is sent again.
ok = (got >= fired and int(stats.get("exported", 0)) == fired and
      int(stats.get("dropped", 1)) == 0 and flat and bridge.returncode == 0)
shutil.rmtree(tmp, ignore_errors=True)
if args.check:
    print(f"\n{1 if ok else 0} passed, {0 if ok else 1} failed")
    sys.exit(0 if ok else 1)
