#!/usr/bin/python3
"""The command as a user runs it, on the real capture and on hand-made spans (no root needed).

  capture    every span of the real CLN capture, mapped by an independent oracle (Python's json
             and the rules of the README's "Mapping" section), comes out of
             `cln-otlp --exporter stdout` (OTLP/JSON) and out of the protobuf encoder
             (otlp-encode) decoded by `protoc --decode`, ids, parent, times, name,
             attributes, status and resource exactly as the rules say
  socket     every span of the capture sent as one datagram each (as CLN_TRACE_SOCKET does)
             arrives, with the sender's pid as process.pid; a stale socket file is replaced;
             a regular file at the path is refused
  follow     a trace file written while cln-otlp follows it: every span arrives, suspend/
             resume lines become cln.suspend/cln.resume events; a replaced file is read anew
  sigterm    SIGTERM flushes what was read and exits 0
  truncated  spans CLN cut at its 2048-byte buffer (tail and traceId lost) are kept: the text
             before the cut, cln.truncated=true, and the traceId of their family (the parent
             emitted after them, or the children before them); one whose family never tells
             is dropped and counted, and the run says so (exit 1)

usage: test_cli.py TEST --cln-otlp BIN [--otlp-encode BIN --proto DIR]   (capture: the
generated Python classes in $MOCK_PROTO_PY)
"""
import json
import os
import pwd
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, CAPTURE_DIR, TRACE as T1, Proc, attrs, check, cln_json,  # noqa
                     cln_spans, expected_otlp, main, options, otlp_spans, proto_classes, run,
                     span_fields, span_payloads, test)

(NAME,), A = options("cln-otlp", "otlp-encode", "proto")
SENT = span_payloads(CAPTURE)
IDS = {json.loads(p)[0]["id"] for p in SENT}


# ---- capture: the oracle ------------------------------------------------------------------


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
    files = sorted(os.path.join(CAPTURE_DIR, f) for f in os.listdir(CAPTURE_DIR)
                   if f.startswith("lightningd-trace."))
    check("capture files in the data directory", len(files) >= 2, CAPTURE_DIR)
    compared, every = 0, {}
    for path in files:
        exp = expected_spans(path)
        every.update(exp)
        r = run([A.cln_otlp, "--file", path, "--exporter", "stdout", "-q"])
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

    proto_classes()
    from google.protobuf import text_format
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
    pb = run([A.otlp_encode] + files, text=False)
    check("otlp-encode: exit 0", pb.returncode == 0, pb.stderr)
    text = run(["protoc", f"-I{A.proto}",
                "--decode=opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                "opentelemetry/proto/collector/trace/v1/trace_service.proto"],
               input=pb.stdout, text=False, cwd=A.proto)
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


# ---- the socket and follow sources -----------------------------------------------------------


def daemon_dir(tmp):
    """Started as root, cln-otlp runs as cln-otlp or nobody once set up: give it tmp, where
    it removes its socket at exit and opens a replaced file again."""
    if os.geteuid() == 0:
        for name in ("cln-otlp", "nobody"):
            try:
                os.chown(tmp, pwd.getpwnam(name).pw_uid, -1)
                return
            except KeyError:
                continue


def start(tmp, *args, **kw):
    return Proc([A.cln_otlp, "--exporter", "stdout", "--batch-delay", "100", *args], tmp,
                "cln-otlp", **kw)


def ids(d):
    return {sp["spanId"] for _, sp in d.spans()}


@test("socket")
def socket_source(tmp):
    daemon_dir(tmp)
    path = os.path.join(tmp, "trace.sock")
    open(path, "w").close()
    bad = run([A.cln_otlp, "--socket", path, "--exporter", "stdout"])
    check("regular file at the socket path is refused", bad.returncode == 2)
    check("the refusal says what to do", "not a socket" in bad.stderr)
    os.unlink(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stale:  # from an earlier run
        stale.bind(path)
    with start(tmp, "--socket", path) as d, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        d.wait(lambda: os.path.exists(path) and "listening" in d.err(), 30, "socket created")
        for p in SENT:
            s.sendto(p.encode(), path)  # blocks while the receiver's queue is full
        d.wait(lambda: IDS <= ids(d), 60, "every span exported")
        d.stopped(what="exit 0 after SIGTERM")
    check(f"all {len(IDS)} spans arrived", ids(d) == IDS, len(ids(d)))
    pids = {res["process.pid"] for res, _ in d.spans()}
    check("process.pid is the sender's pid", pids == {os.getpid()}, pids)
    exes = {res.get("process.executable.path") for res, _ in d.spans()}
    # /proc/<pid>/exe, or argv[0] when the bridge dropped the right to read it.
    check("process.executable.path is the sender's",
          exes in ({os.path.realpath(sys.executable)}, {"/usr/bin/python3"}), exes)
    check("socket removed at exit", not os.path.exists(path))


@test("follow")
def follow(tmp):
    daemon_dir(tmp)
    path = os.path.join(tmp, "lightningd-trace.4242")
    with open(CAPTURE, encoding="utf-8") as f:
        lines = f.readlines()
    suspended = {ln.split()[1] for ln in lines if ln.startswith("span_suspend")}
    with open(path, "w") as f, start(tmp, "--file", path, "--follow") as d:
        for i in range(0, len(lines), 50):  # written as CLN does, a few lines at a time
            f.writelines(lines[i:i + 50])
            f.flush()
            time.sleep(0.01)
        d.wait(lambda: IDS <= ids(d), 60, "every span of the followed file exported")
        # Replaced by a new file (new inode): read from its start.
        with open(path + ".new", "w") as f2:
            f2.write(cln_json("00000000000000aa", "after-rotation", ts=1, dur=1) + "\n")
        os.rename(path + ".new", path)
        d.wait(lambda: "00000000000000aa" in ids(d), 60, "the replaced file was read")
        d.stopped(what="exit 0 after SIGTERM")
    got = {sp["spanId"]: (sp, res) for res, sp in d.spans()}
    check(f"all {len(IDS)} spans of the followed file", IDS <= set(got), IDS - set(got))
    with_events = {sid for sid, (sp, _) in got.items() if sp.get("events")}
    check("suspend/resume became events on exactly the suspended spans",
          with_events == suspended, f"{with_events} vs {suspended}")
    for sid in with_events:
        names = [e["name"] for e in got[sid][0]["events"]]
        check("event names and order", names == ["cln.suspend", "cln.resume"], names)
    pids = {res["process.pid"] for _, res in got.values()}
    check("pid from the trace file's name", pids == {4242}, pids)


@test("sigterm")
def sigterm(tmp):
    # A pipe that never closes: only the signal ends the run, and what was read is sent.
    with Proc([A.cln_otlp, "--file", "-", "--exporter", "stdout", "--batch-delay", "60000"],
              tmp, "cln-otlp", stdin=subprocess.PIPE) as d:
        d.proc.stdin.write(("\n".join(SENT[:50]) + "\n").encode())
        d.proc.stdin.flush()
        d.wait_err("privileges:")  # started: SIGUSR1 is handled from here on

        def all_read():  # the stats line SIGUSR1 asks for counts them
            d.proc.send_signal(signal.SIGUSR1)
            return any("queued=50" in ln.split() for ln in d.lines("err"))
        d.wait(all_read, 60, "the 50 spans read")
        d.stopped(what="exit 0 after SIGTERM")
    check("spans waiting for the batch delay were flushed", len(d.spans()) == 50, len(d.spans()))


# ---- spans CLN cut ------------------------------------------------------------------------

T2 = "b8442e33d407dc0f9eff95dd1ffe1d50"


def span(sid, name, parent=None, trace=T1):
    return cln_json(sid, name, trace, parent, tags={"query": "SELECT 1"})


def cut(sid, name, parent=None):
    """What CLN's snprintf into 2048 bytes leaves of a long span: 2047 bytes, no tail."""
    full = cln_json(sid, name, T1, parent, tags={"query": "INSERT INTO t VALUES " +
                                                  "(1, 'x')," * 400})
    check("the span is longer than CLN's buffer", len(full) > 2048)
    return full[:2047]


def export(lines):
    r = run([A.cln_otlp, "--file", "-", "--exporter", "stdout"], input="\n".join(lines) + "\n")
    return r, {sp["spanId"]: sp for _, sp in otlp_spans(r.stdout)}


@test("truncated")
def truncated(tmp):
    # A cut child before its parent; a cut root after its child; a cut grandchild whose cut
    # parent waits for the grandparent.
    r, spans = export([
        cut("00000000000000c1", "db_exec_prepared", parent="00000000000000a1"),
        span("00000000000000a1", "wallet_new", parent="0f346be4b171a29b"),
        span("00000000000000d1", "db_query_prepared", parent="00000000000000e1", trace=T2),
        cut("00000000000000e1", "migration"),
        cut("00000000000000f3", "db_exec_prepared", parent="00000000000000f2"),
        cut("00000000000000f2", "db_exec_prepared", parent="00000000000000f1"),
        span("00000000000000f1", "db_setup", trace=T2)])
    check("exit 0: every span delivered", r.returncode == 0)
    check("all 7 spans out", len(spans) == 7, sorted(spans))
    c1 = spans["00000000000000c1"]
    check("cut child takes its parent's traceId", c1["traceId"] == T1, c1["traceId"])
    check("cut child keeps its parent id", c1["parentSpanId"] == "00000000000000a1")
    a = attrs(c1["attributes"])
    check("cut child marked cln.truncated", a.get("cln.truncated") is True, a)
    check("the text before the cut is kept", a["query"].startswith(
        "INSERT INTO t VALUES (1, 'x'),") and len(a["query"]) > 1800, len(a["query"]))
    e1 = spans["00000000000000e1"]
    check("cut root takes the traceId its child told", e1["traceId"] == T2, e1)
    check("grandchild and parent adopted in turn", spans["00000000000000f3"]["traceId"] ==
          spans["00000000000000f2"]["traceId"] == T2)
    check("whole spans are not marked",
          "cln.truncated" not in attrs(spans["00000000000000a1"]["attributes"]))

    # Other producers may emit a parent before its children: a cut child after it is adopted.
    r, spans = export([span("00000000000000a7", "parent-first", trace=T2),
                       cut("00000000000000c7", "db_exec_prepared", parent="00000000000000a7")])
    check("cut child after its parent takes its traceId",
          spans["00000000000000c7"]["traceId"] == T2 and r.returncode == 0)

    # The parent never comes: dropped, counted, reported.
    r, spans = export([cut("00000000000000c2", "db_exec_prepared", parent="00000000000000a9"),
                       span("00000000000000b1", "other")])
    check("orphan dropped, the rest delivered", list(spans) == ["00000000000000b1"], spans)
    check("orphan counted", "drop_truncated_orphan=1" in r.stderr, r.stderr)
    check("a lost span makes the run fail", r.returncode == 1, r.returncode)


main([NAME])
