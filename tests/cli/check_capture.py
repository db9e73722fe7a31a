#!/usr/bin/python3
"""Every span of the real CLN capture, mapped by an independent oracle (Python's json and
the rules of the README's "Mapping" section), must come out of

  1. `cln-otlp --file F --exporter stdout` (OTLP/JSON, one request per line), and
  2. the protobuf encoder (tests' otlp-encode), decoded by
     `protoc --decode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`,

with ids, parent, times, name, attributes, status and resource exactly as the rules say.

usage: check_capture.py CLN_OTLP OTLP_ENCODE PROTO_DIR PY_DIR DATA_DIR
"""
import glob
import json
import os
import subprocess
import sys

cln_otlp, otlp_encode, proto_dir, py_dir, data_dir = sys.argv[1:6]
sys.path.insert(0, py_dir)
from google.protobuf import text_format  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2  # noqa: E402

failures = []
checked = 0


def fail(msg):
    failures.append(msg)
    if len(failures) <= 20:
        print("FAIL", msg, file=sys.stderr)


def expected_spans(path):
    """span_id -> the OTLP fields the rules give, computed from the raw CLN JSON."""
    pid = int(path.rsplit(".", 1)[1])
    out = {}
    for line in open(path, encoding="utf-8"):
        if not line.startswith("span_emit "):
            continue
        payload = line.split(" ", 2)[2]
        (s,) = json.loads(payload)
        trace = s["traceId"].lower()
        if len(trace) == 16:
            trace = "0" * 16 + trace
        parent = s.get("parentId")
        if parent == s["id"]:
            parent = None
        attrs, code = [], 0
        for k, v in s["tags"].items():
            if k == "error" and v == "true":
                code = 2
                continue
            attrs.append((k, v))
        out[s["id"]] = {
            "traceId": trace,
            "parentSpanId": parent,
            "name": s["name"],
            "start": s["timestamp"] * 1000,
            "end": (s["timestamp"] + s["duration"]) * 1000,
            "attributes": attrs,
            "code": code,
            "kind": 0,
            "service": s["localEndpoint"]["serviceName"],
            "pid": pid,
        }
    return out


def compare(where, span_id, got, exp):
    global checked
    for key in exp:
        if got.get(key) != exp[key]:
            fail(f"{where}: span {span_id}: {key}: got {got.get(key)!r}, expected {exp[key]!r}")
            return
    checked += 1


def resource_of(attrs):
    return {a["key"]: a["value"] for a in attrs}


def from_json_request(req):
    for rs in req["resourceSpans"]:
        res = resource_of(rs["resource"]["attributes"])
        for ss in rs["scopeSpans"]:
            if ss["scope"]["name"] != "cln-otlp":
                fail(f"scope name {ss['scope']['name']!r}")
            for sp in ss["spans"]:
                yield sp["spanId"], {
                    "traceId": sp["traceId"],
                    "parentSpanId": sp.get("parentSpanId"),
                    "name": sp["name"],
                    "start": int(sp["startTimeUnixNano"]),
                    "end": int(sp["endTimeUnixNano"]),
                    "attributes": [(a["key"], a["value"]["stringValue"]) for a in sp["attributes"]],
                    "code": sp["status"]["code"],
                    "kind": sp["kind"],
                    "service": res["service.name"]["stringValue"],
                    "pid": int(res["process.pid"]["intValue"]),
                }


def from_pb_request(req):
    for rs in req.resource_spans:
        res = {kv.key: kv.value for kv in rs.resource.attributes}
        for ss in rs.scope_spans:
            for sp in ss.spans:
                yield sp.span_id.hex(), {
                    "traceId": sp.trace_id.hex(),
                    "parentSpanId": sp.parent_span_id.hex() or None,
                    "name": sp.name,
                    "start": sp.start_time_unix_nano,
                    "end": sp.end_time_unix_nano,
                    "attributes": [(a.key, a.value.string_value) for a in sp.attributes],
                    "code": sp.status.code,
                    "kind": sp.kind,
                    "service": res["service.name"].string_value,
                    "pid": res["process.pid"].int_value,
                }


files = sorted(glob.glob(os.path.join(data_dir, "lightningd-trace.*")))
if len(files) < 2:
    sys.exit(f"no capture files in {data_dir}")
total_expected = 0
all_expected = {}
for path in files:
    exp = expected_spans(path)
    total_expected += len(exp)
    all_expected.update(exp)
    # 1. the command, OTLP/JSON on stdout
    run = subprocess.run([cln_otlp, "--file", path, "--exporter", "stdout", "-q"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        fail(f"{path}: exit {run.returncode}: {run.stderr}")
        continue
    seen = set()
    for line in run.stdout.splitlines():
        for span_id, got in from_json_request(json.loads(line)):
            if span_id in seen:
                fail(f"{path}: span {span_id} twice")
            seen.add(span_id)
            if span_id not in exp:
                fail(f"{path}: unexpected span {span_id}")
                continue
            compare(f"stdout {os.path.basename(path)}", span_id, got, exp[span_id])
    missing = set(exp) - seen
    if missing:
        fail(f"{path}: {len(missing)} spans missing from stdout, e.g. {sorted(missing)[:3]}")

# 2. protobuf, decoded by protoc
pb = subprocess.run([otlp_encode] + files, capture_output=True, check=True).stdout
text = subprocess.run(
    ["protoc", f"-I{proto_dir}",
     "--decode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
     "opentelemetry/proto/collector/trace/v1/trace_service.proto"],
    input=pb, capture_output=True, check=True, cwd=proto_dir).stdout.decode()
req = text_format.Parse(text, trace_service_pb2.ExportTraceServiceRequest())
seen = set()
for span_id, got in from_pb_request(req):
    seen.add(span_id)
    if span_id not in all_expected:
        fail(f"protobuf: unexpected span {span_id}")
        continue
    compare("protoc --decode", span_id, got, all_expected[span_id])
if seen != set(all_expected):
    fail(f"protobuf: {len(set(all_expected) - seen)} spans missing")
if len(req.resource_spans) != len(files):
    fail(f"protobuf: {len(req.resource_spans)} ResourceSpans for {len(files)} processes")

print(f"{len(files)} files, {total_expected} spans, {checked} span checks")
print(f"{checked - len(failures) if not failures else 0} passed, {len(failures)} failed"
      if failures else f"{checked} passed, 0 failed")
sys.exit(1 if failures or checked != 2 * total_expected else 0)
