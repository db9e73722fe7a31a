#!/usr/bin/python3
"""A span of more than 2048 bytes fired through the real lightningd:span_emit probe arrives
recovered: cut at 2048 bytes, the text before the cut kept, marked cln.truncated, and with
its parent's traceId (CLN emits the parent after its children). Root (eBPF).

usage: test_truncated_usdt.py CLN_OTLP EMITTER
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

cln_otlp, emitter = sys.argv[1:3]
if os.geteuid() != 0:
    if os.environ.get("CI") == "true":
        sys.exit("FAIL: CI runs as root; this test needs it (eBPF)")
    print("skip: not root")
    sys.exit(77)
T = "074c67a29952a72ce3a9ce4137f3d273"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


value = "INSERT INTO channels VALUES " + "(42, 'x', 7)," * 250  # ~3.3 KB
child = ('[{"id":"00000000000000c1","name":"db_exec_prepared","timestamp":1795660314655273,'
         '"duration":175,"localEndpoint":{"serviceName":"lightningd"},'
         '"parentId":"00000000000000a1","tags":{"query":"%s"},"traceId":"%s"}]' % (value, T))
parent = ('[{"id":"00000000000000a1","name":"wallet_new","timestamp":1795660314655000,'
          '"duration":900,"localEndpoint":{"serviceName":"lightningd"},"tags":{},'
          '"traceId":"%s"}]' % T)
assert len(child) > 2048

with tempfile.TemporaryDirectory() as tmp:
    binary = os.path.join(tmp, "lightningd")
    shutil.copy(emitter, binary)
    trace = os.path.join(tmp, "trace.1")
    with open(trace, "w") as f:
        f.write(f"span_emit 00000000000000c1 {child}\nspan_emit 00000000000000a1 {parent}\n")
    out = open(os.path.join(tmp, "out"), "w+")
    err = open(os.path.join(tmp, "err"), "w+")
    proc = subprocess.Popen([cln_otlp, "--lightningd", binary, "--no-plugins", "--exporter",
                             "stdout", "--batch-delay", "100"], stdout=out, stderr=err)
    end = time.time() + 30
    while " binaries (" not in open(err.name).read() and time.time() < end:
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    fired = subprocess.run([binary, trace], capture_output=True, text=True)
    check("emitter fired", fired.returncode == 0, fired.stderr)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=30)
    out.seek(0)
    err.seek(0)
    errtext = err.read()
    spans = {}
    for line in out.read().splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    spans[sp["spanId"]] = sp
    check("exit 0", rc == 0, errtext)
    check("both spans arrived", set(spans) == {"00000000000000c1", "00000000000000a1"},
          f"{sorted(spans)}\n{errtext}")
    c = spans.get("00000000000000c1", {})
    attrs = {a["key"]: a["value"] for a in c.get("attributes", [])}
    check("the cut span has its parent's traceId", c.get("traceId") == T, str(c.get("traceId")))
    check("and its parent id", c.get("parentSpanId") == "00000000000000a1")
    check("marked cln.truncated", attrs.get("cln.truncated") == {"boolValue": True}, str(attrs))
    q = attrs.get("query", {}).get("stringValue", "")
    check("the value is what preceded the cut, byte for byte",
          len(q) > 1800 and value.startswith(q), f"{len(q)} bytes")
    check("2048 bytes reached the parser (the probe's whole buffer)",
          len(child[:child.index(q) + len(q)]) == 2048, str(len(q)))
    check("counted as truncated", "truncated=1" in errtext, errtext)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
