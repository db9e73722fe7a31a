#!/usr/bin/python3
"""A span of more than 2048 bytes fired through the real lightningd:span_emit probe arrives
recovered: cut at 2048 bytes, the text before the cut kept, marked cln.truncated, and with
its parent's traceId (CLN emits the parent after its children). Root (eBPF).

usage: test_truncated_usdt.py CLN_OTLP EMITTER
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import TRACE as T, Proc, attrs, check, cln_json, main, need_root, run, test  # noqa

cln_otlp, emitter = sys.argv[1:3]


@test("truncated")
def truncated(tmp):
    need_root()
    value = "INSERT INTO channels VALUES " + "(42, 'x', 7)," * 250  # ~3.3 KB
    child = cln_json("00000000000000c1", "db_exec_prepared", T, "00000000000000a1",
                     ts=1795660314655273, dur=175, tags={"query": value})
    parent = cln_json("00000000000000a1", "wallet_new", T, ts=1795660314655000, dur=900)
    check("the child is longer than CLN's buffer", len(child) > 2048)
    binary = os.path.join(tmp, "lightningd")
    shutil.copy(emitter, binary)
    trace = os.path.join(tmp, "trace.1")
    with open(trace, "w") as f:
        f.write(f"span_emit 00000000000000c1 {child}\nspan_emit 00000000000000a1 {parent}\n")
    with Proc([cln_otlp, "--lightningd", binary, "--no-plugins", "--exporter", "stdout",
               "--batch-delay", "100"], tmp, "cln-otlp") as d:
        d.wait_err(" binaries (")
        check("emitter fired", run([binary, trace]).returncode == 0)
        d.wait(lambda: len(d.spans()) == 2, 60, "both spans exported")
        check("exit 0", d.stop() == 0)
    spans = {sp["spanId"]: sp for _, sp in d.spans()}
    check("both spans arrived", set(spans) == {"00000000000000c1", "00000000000000a1"}, spans)
    c = spans["00000000000000c1"]
    a = attrs(c["attributes"])
    check("the cut span has its parent's traceId", c["traceId"] == T, c["traceId"])
    check("and its parent id", c["parentSpanId"] == "00000000000000a1")
    check("marked cln.truncated", a.get("cln.truncated") is True, a)
    q = a["query"]
    check("the value is what preceded the cut, byte for byte",
          len(q) > 1800 and value.startswith(q), len(q))
    check("2048 bytes reached the parser (the probe's whole buffer)",
          len(child[:child.index(q) + len(q)]) == 2048, len(q))
    check("counted as truncated", "truncated=1" in d.err())


main(["truncated"])
