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
  socket_exe_paths  more distinct executables than the table of paths holds send, in waves,
             and exit: every span carries its own sender's process.executable.path
  follow     a trace file written while cln-otlp follows it: every span arrives; suspend/
             resume lines (no time on them) are counted, never attached with the time they
             were read; a replaced file is read anew
  follow_rewrite  a followed file truncated and rewritten with more than before, faster than
             the follower looks, again and again: every span arrives, each truncation counted,
             no byte lost; a file replaced just after a last write to the old one: both read
  sigterm    SIGTERM flushes what was read and exits 0
  signals    SIGHUP leaves the run and its queue alone (a SIGTERM afterwards delivers every
             span); SIGQUIT, SIGUSR2, SIGPWR and a real-time signal stop it as SIGTERM does:
             every queued span delivered, exit 0, the socket file removed
  truncated  spans CLN cut at its 2048-byte buffer (tail and traceId lost) are kept: the text
             before the cut, cln.truncated=true, and the traceId of their family (the parent
             emitted after them, or the children before them); one whose family never tells
             gets a traceId derived from its own ids, cln.trace_id_derived=true, counted
  cut_wide   70 cut children, each with a cut grandchild, then their parent: all 141 spans
             in the parent's trace
  cut_lone   cut spans with no family at all (a JSON-RPC call with a long id, as a real node
             cuts them): exported under <pid:8 hex>ffffffff<spanId>, marked, exit 0
  large      a valid 10 KB span (over CLN's 2048 bytes) from a file and from the socket is
             exported whole

usage: test_cli.py TEST --cln-otlp BIN [--otlp-encode BIN --proto DIR]   (capture: the
generated Python classes in $MOCK_PROTO_PY)
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, CAPTURE_DIR, TRACE as T1, Proc, attrs, check, cln_json,  # noqa
                     cln_spans, expected_otlp, main, options, otlp_spans, proto_classes, run,
                     give_to_daemon, span_fields, span_payloads, test)

(NAME,), A = options("cln-otlp", "otlp-encode", "proto", "sender")
SENT = span_payloads(CAPTURE)
IDS = {json.loads(p)[0]["id"] for p in SENT}


# ---- capture: the oracle ------------------------------------------------------------------


def expected_spans(path):
    """span_id -> the OTLP fields the rules give, computed from the raw CLN JSON."""
    return {s["id"]: dict(expected_otlp(s), service=s["localEndpoint"]["serviceName"],
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


def start(tmp, *args, **kw):
    return Proc([A.cln_otlp, "--exporter", "stdout", "--batch-delay", "100", *args], tmp,
                "cln-otlp", **kw)


def ids(d):
    return {sp["spanId"] for _, sp in d.spans()}


@test("socket")
def socket_source(tmp):
    give_to_daemon(tmp)
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


@test("socket_exe_paths")
def socket_exe_paths(tmp):
    n, wave = 300, 50  # over the 256 paths the table holds at once
    bindir = os.path.join(tmp, "bin")
    os.mkdir(bindir)
    exes = [os.path.join(bindir, "sender-%d" % i) for i in range(n)]
    for exe in exes:
        try:
            os.link(A.sender, exe)  # /proc/<pid>/exe names the path it was run by
        except OSError:
            shutil.copy(A.sender, exe)
    sid = ["%016x" % (0x1000 + i) for i in range(n)]
    path = os.path.join(tmp, "trace.sock")
    with start(tmp, "--socket", path) as d:
        d.wait(lambda: os.path.exists(path) and "listening" in d.err(), 30, "socket created")
        for w in range(0, n, wave):
            senders = []
            try:
                for i in range(w, min(n, w + wave)):  # alive until their span is read
                    senders.append(subprocess.Popen(
                        [exes[i], path, cln_json(sid[i], "sender-%d" % i)],
                        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL))
                want = set(sid[w:w + wave])
                d.wait(lambda: want <= ids(d), 60, "wave %d: every span exported" % w)
            finally:
                for p in senders:
                    p.stdin.close()
                for p in senders:
                    check("a sender exits 0", p.wait(30) == 0, exes[senders.index(p)])
        d.stopped(what="exit 0 after SIGTERM")
    got = {sp["spanId"]: res.get("process.executable.path") for res, sp in d.spans()}
    wrong = [(i, got.get(sid[i])) for i in range(n)
             if got.get(sid[i]) not in (os.path.realpath(exes[i]), exes[i])]
    check("every span carries its sender's executable path", not wrong, wrong[:3])
    check("no path lost for want of room", "exe_path_lost" not in d.err(), d.err()[-500:])


@test("follow")
def follow(tmp):
    give_to_daemon(tmp)
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
    # The lines carry no time, and the time they are read is not the event's: no event on
    # any span (none outside its span's interval, in particular), each line counted.
    check("the capture has suspended spans", len(suspended) == 3, suspended)
    for sid, (sp, _) in got.items():
        for e in sp.get("events", []):
            t = int(e["timeUnixNano"])
            check("event %s of %s within its span" % (e["name"], sid),
                  int(sp["startTimeUnixNano"]) <= t <= int(sp["endTimeUnixNano"]), (t, sp))
    with_events = {sid for sid, (sp, _) in got.items() if sp.get("events")}
    check("no event attached from a file without times", not with_events, with_events)
    n_lines = sum(ln.startswith(("span_suspend ", "span_resume ")) for ln in lines)
    check("the stats line counts the %d untimed lines" % n_lines,
          "events_untimed=%d" % n_lines in d.err().split(), d.err())
    pids = {res["process.pid"] for _, res in got.values()}
    check("pid from the trace file's name", pids == {4242}, pids)


def emit_lines(first, n, tag):
    return "".join("span_emit %016x %s\n" % (i, cln_json("%016x" % i, "%s-%d" % (tag, i)))
                   for i in range(first, first + n))


def stats_line(d, key):
    """The value of key in a fresh stats line (SIGUSR1 asks for one), 0 when left out."""
    before = len(d.lines("err"))
    d.proc.send_signal(signal.SIGUSR1)
    d.wait(lambda: any("queued=" in ln for ln in d.lines("err")[before:]), 30, "a stats line")
    line = next(ln for ln in d.lines("err")[before:] if "queued=" in ln)
    vals = dict(t.split("=", 1) for t in line.split() if "=" in t)
    return int(vals.get(key, 0))


@test("follow_rewrite")
def follow_rewrite(tmp):
    give_to_daemon(tmp)  # the replaced file is opened after the switch to the daemon's user
    path = os.path.join(tmp, "lightningd-trace.4243")
    rounds, want = 6, set()
    open(path, "w").close()
    with start(tmp, "--file", path, "--follow") as d:
        d.wait_err("privileges:")  # started: SIGUSR1 is handled from here on
        for r in range(rounds):
            # Truncated and rewritten in one go, longer than before: the size alone says
            # nothing; the follower looks every 200 ms.
            first, n = 0x100 * (r + 1), 40 * (r + 1)
            with open(path, "w") as f:
                f.write(emit_lines(first, n, "round%d" % r))
            want |= {"%016x" % i for i in range(first, first + n)}
            d.wait(lambda: want <= ids(d), 60, "round %d: every span exported" % r)
        check("each truncation counted once", stats_line(d, "follow_truncated") == rounds - 1,
              d.err()[-400:])
        check("no byte lost", stats_line(d, "follow_lost_bytes") == 0, d.err()[-400:])
        # A last write to the old file, then a new file over it: the old one is finished first.
        with open(path, "a") as old:
            old.write(emit_lines(0x10000, 5, "old"))
        with open(path + ".new", "w") as f:
            f.write(emit_lines(0x20000, 5, "new"))
        os.rename(path + ".new", path)
        want |= {"%016x" % i for i in list(range(0x10000, 0x10005)) + list(range(0x20000, 0x20005))}
        d.wait(lambda: want <= ids(d), 60, "the old file's last lines and the new file")
        d.stopped(what="exit 0 after SIGTERM")
    got = [sp["spanId"] for _, sp in d.spans()]
    check("every span exactly once", sorted(got) == sorted(want), len(got) - len(want))
    check("no line rejected (none read from the middle)",
          " %d spans accepted, 0 rejected" % len(want) in d.err(), d.err()[-400:])


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


def queued_on_socket(tmp, name, n):
    """cln-otlp on a socket with n spans read and queued (a batch delay of a minute holds
    them), nothing written yet."""
    path = os.path.join(tmp, name + ".sock")
    d = Proc([A.cln_otlp, "--socket", path, "--exporter", "stdout", "--batch-delay", "60000"],
             tmp, name)
    d.wait(lambda: os.path.exists(path) and "privileges:" in d.err(), 30, "socket created")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for p in SENT[:n]:
            s.sendto(p.encode(), path)

    def all_read():  # the stats line SIGUSR1 asks for counts them
        d.proc.send_signal(signal.SIGUSR1)
        return any("queued=%d" % n in ln.split() for ln in d.lines("err"))
    d.wait(all_read, 60, "the %d spans read" % n)
    check("nothing written before the batch delay", d.spans() == [], len(d.spans()))
    return d, path


@test("signals")
def signals(tmp):
    n = 50
    give_to_daemon(tmp)
    d, path = queued_on_socket(tmp, "hup", n)
    with d:
        d.proc.send_signal(signal.SIGHUP)
        d.wait_err("SIGHUP: nothing to reload")
        d.proc.send_signal(signal.SIGUSR1)  # answered after the SIGHUP: it was handled
        d.wait_err("info: stats: ", count=2)
        check("SIGHUP did not stop the run", d.running())
        check("SIGHUP did not flush nor drop the queue", d.spans() == [], len(d.spans()))
        d.stopped(what="exit 0 after SIGHUP then SIGTERM")
    check("SIGTERM after SIGHUP delivered the %d spans" % n, len(d.spans()) == n,
          len(d.spans()))
    check("socket removed at exit", not os.path.exists(path))
    rt = signal.SIGRTMIN + 1
    for sig in (signal.SIGQUIT, signal.SIGUSR2, signal.SIGPWR, rt):
        name = "sig%d" % sig
        d, path = queued_on_socket(tmp, name, n)
        with d:
            d.stopped(sig=sig, what="exit 0 after signal %d" % sig)
        check("signal %d delivered the %d queued spans" % (sig, n), len(d.spans()) == n,
              len(d.spans()))
        check("signal %d: socket removed" % sig, not os.path.exists(path))
        check("signal %d: the stop is logged" % sig, "stopping; flushing" in d.err(), d.err())
        check("signal %d: nothing dropped" % sig, "dropped=0" in done_tokens(d.err()), d.err())


def done_tokens(err):
    lines = [ln.split("info: done: ", 1)[1].split() for ln in err.splitlines()
             if "info: done: " in ln]
    check("a done line", lines, err)
    return lines[-1]


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
    check("the text before the cut is kept", a["db.query.text"].startswith(
        "INSERT INTO t VALUES (1, 'x'),") and len(a["db.query.text"]) > 1800,
        len(a["db.query.text"]))
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

    # The parent never comes: a traceId of its own (pid unknown: 0), marked, counted.
    r, spans = export([cut("00000000000000c2", "db_exec_prepared", parent="00000000000000a9"),
                       span("00000000000000b1", "other")])
    check("orphan delivered with the rest", sorted(spans) == ["00000000000000b1",
                                                              "00000000000000c2"], spans)
    c2 = spans.get("00000000000000c2", {})
    check("orphan's traceId derived from its id",
          c2.get("traceId") == "00000000ffffffff00000000000000c2", c2)
    check("orphan keeps its parent id", c2.get("parentSpanId") == "00000000000000a9", c2)
    a = attrs(c2.get("attributes", []))
    check("orphan marked", a.get("cln.trace_id_derived") is True and
          a.get("cln.truncated") is True, a)
    check("orphan counted", "trace_id_derived=1" in r.stderr.split(), r.stderr)
    check("nothing lost: exit 0", r.returncode == 0, r.returncode)


@test("cut_wide")
def cut_wide(tmp):
    lines = []
    for i in range(70):  # CLN emits a span when it ends: grandchild, child, ..., parent
        lines.append(cut("%016x" % (0x20000 + i), "db_exec_prepared", parent="%016x" % (0x10000 + i)))
        lines.append(cut("%016x" % (0x10000 + i), "db_exec_prepared", parent="00000000000000b1"))
    lines.append(span("00000000000000b1", "wallet_new", parent="0f346be4b171a29b"))
    r, spans = export(lines)
    check("exit 0: every span delivered", r.returncode == 0, r.returncode)
    check("all 141 spans out", len(spans) == 141, len(spans))
    grand = ["%016x" % (0x20000 + i) for i in range(70)]
    lost = [g for g in grand if spans.get(g, {}).get("traceId") != T1]
    check("every grandchild gets the parent's traceId", not lost, "%d: %s" % (len(lost), lost[:5]))
    check("every span in the parent's trace",
          {sp["traceId"] for sp in spans.values()} == {T1}, {sp["traceId"] for sp in spans.values()})
    check("none derived", "trace_id_derived" not in r.stderr, r.stderr)


def rpc_cut(sid):
    """A plugin's `jsonrpc` span for a call with a long id, cut by CLN: no parent, no child."""
    full = cln_json(sid, "jsonrpc", T1, tags={"id": "cli:pay#%s/" % sid + "cln:xpay#1/" * 200,
                                              "error": "false"})
    return full[:2047]


@test("cut_lone")
def cut_lone(tmp):
    path = os.path.join(tmp, "lightningd-trace.4242")
    ids_ = ["%016x" % (0x7100 + i) for i in range(10)]
    with open(path, "w") as f:
        for sid in ids_:
            f.write("span_start %s jsonrpc\nspan_end %s\nspan_emit %s %s\n"
                    % (sid, sid, sid, rpc_cut(sid)))
        f.write("span_emit 00000000000000b1 %s\n" % span("00000000000000b1", "other"))
    r = run([A.cln_otlp, "--file", path, "--exporter", "stdout"])
    spans = {sp["spanId"]: sp for _, sp in otlp_spans(r.stdout)}
    check("exit 0: nothing lost", r.returncode == 0, (r.returncode, r.stderr))
    check("all 11 spans out", len(spans) == 11, sorted(spans))
    for sid in ids_:
        sp = spans.get(sid, {})
        check("traceId from pid 4242 and the span's id",
              sp.get("traceId") == "00001092ffffffff" + sid, sp.get("traceId"))
        a = attrs(sp.get("attributes", []))
        check("marked derived and truncated",
              a.get("cln.trace_id_derived") is True and a.get("cln.truncated") is True, a)
        rid = a.get("jsonrpc.request.id", "")
        check("the long id kept up to the cut", rid.startswith("cli:pay#") and
              len(rid) > 1800, len(rid))
    check("the whole span is not marked", "cln.trace_id_derived" not in
          attrs(spans.get("00000000000000b1", {}).get("attributes", [])))
    check("counted", "trace_id_derived=10" in r.stderr.split(), r.stderr)
    check("no drop", "drop_" not in r.stderr, r.stderr)


@test("large")
def large(tmp):
    value = "SELECT " + "x" * 10000
    big = cln_json("00000000000000f1", "db_exec_prepared", T1, tags={"query": value})
    check("the span is over CLN's 2048 bytes", len(big) > 10000, len(big))
    path = os.path.join(tmp, "lightningd-trace.4243")
    with open(path, "w") as f:
        f.write("span_emit 00000000000000f1 %s\n%s\n" % (big, span("00000000000000f2", "n")))
    r = run([A.cln_otlp, "--file", path, "--exporter", "stdout"])
    spans = {sp["spanId"]: sp for _, sp in otlp_spans(r.stdout)}
    check("file: exit 0", r.returncode == 0, (r.returncode, r.stderr))
    sp = spans.get("00000000000000f1", {})
    check("file: the 10 KB span exported whole",
          attrs(sp.get("attributes", [])).get("db.query.text") == value and
          sp.get("traceId") == T1, len(attrs(sp.get("attributes", [])).get("db.query.text", "")))
    check("file: not marked cut", "cln.truncated" not in attrs(sp.get("attributes", [])))

    sock = os.path.join(tmp, "trace.sock")
    with start(tmp, "--socket", sock) as d, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        d.wait(lambda: os.path.exists(sock) and "listening" in d.err(), 30, "socket created")
        s.sendto(big.encode(), sock)
        s.sendto(span("00000000000000f2", "n").encode(), sock)
        d.wait(lambda: {"00000000000000f1", "00000000000000f2"} <= ids(d), 60,
               "both spans exported")
        d.stopped(what="exit 0 after SIGTERM")
    got = {sp["spanId"]: sp for _, sp in d.spans()}
    check("socket: the 10 KB span exported whole",
          attrs(got["00000000000000f1"]["attributes"]).get("db.query.text") == value)


main([NAME])
