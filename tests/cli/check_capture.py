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
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (attrs, check, cln_spans, expected_otlp, main, proto_classes, run,  # noqa
                     span_fields, test)

cln_otlp, otlp_encode, proto_dir, py_dir, data_dir = sys.argv[1:6]


def expected_spans(path):
    """span_id -> the OTLP fields the rules give, computed from the raw CLN JSON."""
    return {s["id"]: dict(expected_otlp(s), kind=0, service=s["localEndpoint"]["serviceName"],
                          pid=int(path.rsplit(".", 1)[1])) for s in cln_spans(path)}


def from_json(line):
    for rs in json.loads(line)["resourceSpans"]:
        res = attrs(rs["resource"]["attributes"])
        for ss in rs["scopeSpans"]:
            check("scope name cln-otlp", ss["scope"]["name"] == "cln-otlp", ss["scope"])
            for sp in ss["spans"]:
                yield sp["spanId"], dict(span_fields(sp), kind=sp["kind"],
                                         service=res["service.name"], pid=res["process.pid"])


def from_pb(req):
    for rs in req.resource_spans:
        res = {kv.key: kv.value for kv in rs.resource.attributes}
        for sp in (sp for ss in rs.scope_spans for sp in ss.spans):
            yield sp.span_id.hex(), {
                "traceId": sp.trace_id.hex(), "parentSpanId": sp.parent_span_id.hex(),
                "name": sp.name, "start": sp.start_time_unix_nano, "end": sp.end_time_unix_nano,
                "attributes": [(a.key, a.value.string_value) for a in sp.attributes],
                "code": sp.status.code, "kind": sp.kind,
                "service": res["service.name"].string_value, "pid": res["process.pid"].int_value}


@test("capture")
def capture(tmp):
    files = sorted(glob.glob(os.path.join(data_dir, "lightningd-trace.*")))
    check("capture files in the data directory", len(files) >= 2, data_dir)
    compared, every = 0, {}
    for path in files:
        exp = expected_spans(path)
        every.update(exp)
        r = run([cln_otlp, "--file", path, "--exporter", "stdout", "-q"])
        check(f"{path}: exit 0", r.returncode == 0, r.stderr)
        seen = set()
        for sid, got in (x for line in r.stdout.split("\n") if line for x in from_json(line)):
            check(f"{path}: span {sid} once", sid not in seen)
            check(f"{path}: span {sid} expected", sid in exp)
            seen.add(sid)
            check(f"stdout {os.path.basename(path)}: span {sid}", got == exp[sid],
                  {k: (got[k], exp[sid][k]) for k in exp[sid] if got[k] != exp[sid][k]})
            compared += 1
        check(f"{path}: every span on stdout", set(exp) == seen, sorted(set(exp) - seen)[:3])

    proto_classes(py_dir)
    from google.protobuf import text_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    pb = run([otlp_encode] + files, text=False)
    check("otlp-encode: exit 0", pb.returncode == 0, pb.stderr)
    text = run(["protoc", f"-I{proto_dir}",
                "--decode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                "opentelemetry/proto/collector/trace/v1/trace_service.proto"],
               input=pb.stdout, text=False, cwd=proto_dir)
    check("protoc --decode: exit 0", text.returncode == 0, text.stderr)
    req = text_format.Parse(text.stdout.decode(), trace_service_pb2.ExportTraceServiceRequest())
    seen = set()
    for sid, got in from_pb(req):
        seen.add(sid)
        check(f"protobuf: span {sid} expected", sid in every)
        check(f"protoc --decode: span {sid}", got == every[sid],
              {k: (got[k], every[sid][k]) for k in every[sid] if got[k] != every[sid][k]})
        compared += 1
    check("protobuf: no span missing", seen == set(every), len(set(every) - seen))
    check("protobuf: one ResourceSpans per process", len(req.resource_spans) == len(files),
          len(req.resource_spans))
    check("every span compared twice", compared == 2 * len(every), compared)


main(["capture"])
