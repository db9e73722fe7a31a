#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Span metrics through the real binary: cln-otlp reads trace files (--file … --follow) and
its /metrics must hold, per (span_name, rpc_method), exactly the histogram and error count
an independent reading of the same files gives.

    test_spanmetrics.py TEST --cln-otlp PATH

capture: every file of the real capture (tests/data/cln-v26-startup);
capture_volume: the same with spans dropped and traces sampled out: the metrics count them
         all the same;
fold:    300 distinct methods and 70 distinct names (the bounds: 256 and 64);
escape:  label values with a quote, a backslash and a newline, and the error rule.
/metrics is read by prometheus_client's parser (Debian python3-prometheus-client).
"""
import http.client
import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE_DIR, Proc, check, cln_json, free_port, main,  # noqa
                     options, span_payloads, test)

(NAME,), A = options("cln-otlp")
LE = ("0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
      "0.25", "0.5", "1", "2.5", "5", "10")
LE_US = [int(round(float(le) * 1e6)) for le in LE]
HIST = "cln_otlp_span_duration_seconds"
FAMILIES = {HIST: "histogram", "cln_otlp_span_errors_total": "counter",
            "cln_otlp_span_metrics_folded_total": "counter"}


# ---- the oracle: what the metrics must say, from the trace files alone ----------------------

def rpc_method(name, tags):
    """README: the method tag of lightningd/jsonrpc, jsonrpc and plugin/* spans; for a
    plugin's jsonrpc span without one, the method its request id names; else ""."""
    if name not in ("lightningd/jsonrpc", "jsonrpc") and not name.startswith("plugin/"):
        return ""
    if "method" in tags:
        return tags["method"]
    m = re.fullmatch(r"[^/:#\s]+:([^/:#\s]+)#[0-9]+", tags.get("id", "").rsplit("/", 1)[-1])
    return m.group(1) if name == "jsonrpc" and m and len(m.group(1)) < 128 else ""


def is_error(tags):
    """otel.status_code (ERROR/OK/UNSET, any case) wins; else an error tag other than
    "false" is an error."""
    code = tags.get("otel.status_code", "").upper()
    if code in ("ERROR", "OK", "UNSET"):
        return code == "ERROR"
    return "error" in tags and tags["error"] != "false"


def oracle(paths):
    """{(span_name, rpc_method): {"durs": [us...], "errors": n}} of every span of the files."""
    want = {}
    for path in paths:
        for payload in span_payloads(path):
            sp = json.loads(payload)[0]
            tags = sp.get("tags", {})
            s = want.setdefault((sp["name"], rpc_method(sp["name"], tags)),
                                {"durs": [], "errors": 0})
            s["durs"].append(sp["duration"])
            s["errors"] += is_error(tags)
    return want


# ---- the binary ---------------------------------------------------------------------------

def scrape(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        r = conn.getresponse()
        body = r.read().decode()
    finally:
        conn.close()
    check("GET /metrics: 200", r.status == 200, body[:200])
    return body


def parse(text):
    """{(sample name, frozenset(labels)): value}, {family: type} (prometheus_client)."""
    from prometheus_client.parser import text_string_to_metric_families
    samples, types = {}, {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + "_total" if fam.type == "counter" else fam.name
        types[name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types


def run_files(tmp, paths, n_spans, *args):
    """cln-otlp following @paths until it has read @n_spans spans: the parsed /metrics."""
    port = free_port()
    argv = [A.cln_otlp, "--exporter", "none", "--follow", "--stats-interval", "0",
            "--metrics-listen", "127.0.0.1:%d" % port, *args]
    for p in paths:
        argv += ["--file", p]
    with Proc(argv, tmp, "cln-otlp") as d:
        d.wait_err("serving http://127.0.0.1:%d/metrics" % port)
        received = 'cln_otlp_spans_received_total{source="file"} %d\n' % n_spans

        def all_read():
            text = scrape(port)
            return received in text and text
        text = d.wait(all_read, 60, "%d spans read" % n_spans)
        d.stopped()
    samples, types = parse(text)
    for fam, typ in FAMILIES.items():
        check("family %s is a %s" % (fam, typ), types.get(fam) == typ, types.get(fam))
    return text, samples


def series_of(samples, sample_name):
    """{(span_name, rpc_method): {other labels or value}} of one sample name."""
    out = {}
    for (name, labels), v in samples.items():
        if name == sample_name:
            lab = dict(labels)
            key = (lab.pop("span_name"), lab.pop("rpc_method"))
            if "le" in lab:
                out.setdefault(key, {})[lab.pop("le")] = v
            else:
                out[key] = v
            check("no other label on %s: %r" % (name, lab), not lab)
    return out


def check_against(samples, want):
    """The histograms and errors in @samples are exactly @want's."""
    counts = series_of(samples, HIST + "_count")
    sums = series_of(samples, HIST + "_sum")
    buckets = series_of(samples, HIST + "_bucket")
    errors = series_of(samples, "cln_otlp_span_errors_total")
    check("the series are the (span_name, rpc_method) pairs of the files",
          set(counts) == set(want), "extra %r, missing %r"
          % (sorted(set(counts) - set(want))[:10], sorted(set(want) - set(counts))[:10]))
    check("every series has buckets, a sum and an error count",
          set(counts) == set(sums) == set(buckets) == set(errors))
    for key, w in sorted(want.items()):
        durs = w["durs"]
        check("%r: count %d" % (key, len(durs)), counts[key] == len(durs), counts[key])
        check("%r: sum %d us" % (key, sum(durs)), abs(sums[key] - sum(durs) / 1e6) < 5e-7,
              sums[key])
        got = buckets[key]
        check("%r: le %r and +Inf" % (key, LE), set(got) == set(LE) | {"+Inf"}, sorted(got))
        prev = 0
        for le, bound in zip(LE, LE_US):
            n = sum(1 for d in durs if d <= bound)
            check("%r: le=%s holds the %d spans of %d us or less" % (key, le, n, bound),
                  got[le] == n, got[le])
            check("%r: cumulative at le=%s" % (key, le), got[le] >= prev)
            prev = got[le]
        check("%r: +Inf is the count" % (key,), got["+Inf"] == len(durs), got["+Inf"])
        check("%r: %d errors" % (key, w["errors"]), errors[key] == w["errors"], errors[key])


def folded(samples, label):
    return samples[("cln_otlp_span_metrics_folded_total", frozenset({("label", label)}))]


def write_trace(path, spans):
    """A CLN trace file: one span_emit line per (id, json) of @spans."""
    with open(path, "w", encoding="utf-8") as f:
        for sid, js in spans:
            f.write("span_emit %s %s\n" % (sid, js))


def esc(v):
    """A string as the inside of a JSON string."""
    return json.dumps(v)[1:-1]


def capture_paths():
    return sorted(os.path.join(CAPTURE_DIR, f) for f in os.listdir(CAPTURE_DIR)
                  if f.startswith("lightningd-trace."))


@test("capture")
def capture(tmp):
    """Every file of the real capture: the histogram of each (span_name, rpc_method), its
    buckets and its error count equal the spans of the files counted here."""
    paths = capture_paths()
    check("several capture files", len(paths) >= 2, paths)
    want = oracle(paths)
    n = sum(len(w["durs"]) for w in want.values())
    check("the capture's 610 spans", n == 610, n)
    check("RPC methods among them", sum(1 for _, m in want if m) >= 10, sorted(want))
    check("a plugin's jsonrpc span named by its id",
          any(k[0] == "jsonrpc" and k[1] for k in want))
    _, samples = run_files(tmp, paths, n)
    check_against(samples, want)
    check("nothing folded", folded(samples, "span_name") == 0 == folded(samples, "rpc_method"))


@test("capture_volume")
def capture_volume(tmp):
    """The real capture with database spans dropped and 9 traces in 10 sampled out: the
    histograms still count every span (they are computed before those decisions)."""
    paths = capture_paths()
    want = oracle(paths)
    n = sum(len(w["durs"]) for w in want.values())
    text, samples = run_files(tmp, paths, n, "--drop-span", "db_*", "--sample", "0.1")
    exported = samples[("cln_otlp_spans_exported_total", frozenset())]
    check("the rules kept fewer spans than arrived", exported < n - 400, exported)
    check_against(samples, want)


@test("fold")
def fold(tmp):
    """300 distinct methods: 256 keep theirs, the spans of the other 44 fold into "other",
    counted; 70 distinct span names: 64 kept, 6 folded."""
    path = os.path.join(tmp, "trace.1")
    spans, n = [], 0
    for i in range(300):
        n += 1
        sid = "%016x" % n
        spans.append((sid, cln_json(sid, "lightningd/jsonrpc", dur=n,
                                    tags={"method": "method%03d" % i})))
    names = ["name%02d" % i for i in range(69)]  # with lightningd/jsonrpc: 70
    for name in names:
        n += 1
        sid = "%016x" % n
        spans.append((sid, cln_json(sid, name, dur=n * 1000)))
    write_trace(path, spans)
    _, samples = run_files(tmp, [path], n)
    # What arrives first gets a series: the file is read in order.
    want = {}
    for i in range(300):
        key = ("lightningd/jsonrpc", "method%03d" % i if i < 256 else "other")
        want.setdefault(key, {"durs": [], "errors": 0})["durs"].append(i + 1)
    for j, name in enumerate(names):
        key = (name if j < 63 else "other", "")
        want.setdefault(key, {"durs": [], "errors": 0})["durs"].append((301 + j) * 1000)
    check_against(samples, want)
    check("44 spans folded by rpc_method", folded(samples, "rpc_method") == 44,
          folded(samples, "rpc_method"))
    check("6 spans folded by span_name", folded(samples, "span_name") == 6,
          folded(samples, "span_name"))


@test("escape")
def escape(tmp):
    """Label values with a quote, a backslash, a newline come back as they were (escaped in
    the text, unescaped by the parser); errors follow the status rule."""
    path = os.path.join(tmp, "trace.1")
    odd_method, odd_name = 'say "hi"\\now\nnext', 'plugin/a"b\\c'
    tagsets = [
        (odd_name, {"method": odd_method, "error": "true"}),
        (odd_name, {"method": odd_method, "error": "false"}),
        ("jsonrpc", {"id": "cln:init#1/pay:listpays#2", "error": "something failed"}),
        ("jsonrpc", {"id": "cln:init#1/pay:listpays#3", "otel.status_code": "error"}),
        ("jsonrpc", {"id": "cln:init#1/pay:listpays#4", "error": "true",
                     "otel.status_code": "OK"}),
        ("db_exec_prepared", {"query": 'INSERT "x"'}),
    ]
    spans = []
    for i, (name, tags) in enumerate(tagsets):
        sid = "%016x" % (i + 1)
        spans.append((sid, cln_json(sid, esc(name), dur=(i + 1) * 700,
                                    tags={k: esc(v) for k, v in tags.items()})))
    write_trace(path, spans)
    want = oracle([path])
    check("the oracle sees the odd labels", (odd_name, odd_method) in want, sorted(want))
    check("errors in the oracle: 1 + 2", want[(odd_name, odd_method)]["errors"] == 1 and
          want[("jsonrpc", "listpays")]["errors"] == 2)
    text, samples = run_files(tmp, [path], len(spans))
    check("the text escapes them", 'span_name="plugin/a\\"b\\\\c",rpc_method="say \\"hi\\"'
          '\\\\now\\nnext"' in text, text[-3000:])
    check_against(samples, want)


if __name__ == "__main__":
    main([NAME])
