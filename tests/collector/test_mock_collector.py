#!/usr/bin/python3
"""Self-tests of the mock OTLP collector: real clients (urllib, http.client, grpcio, curl) against
it, checking what it records and how it answers.

    test_mock_collector.py [-v] GROUP      GROUP: http script grpc tls curl cli

Needs MOCK_PROTO_PY (generated classes) in the environment; CTest sets it.
"""
import email.utils
import gzip
import http.client
import json
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (Collector, Proc, attempt, certs, check, check_fields, free_port,  # noqa
                     main, mock_command, proto_classes, run, test)

PROTO_PY = os.environ.get("MOCK_PROTO_PY", "")
proto_classes()
import grpc  # noqa: E402
from google.protobuf import duration_pb2  # noqa: E402
from google.rpc import status_pb2  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT_ID, CHILD_ID = bytes.fromhex("eee19b7ec3c1b174"), bytes.fromhex("eee19b7ec3c1b173")
PB, JS = "application/x-protobuf", "application/json"
T = "/v1/traces"


def make_request(n_extra=0, name_prefix="extra"):
    """Two known spans (root + child with every field used), plus n_extra plain ones."""
    req = ts.ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, field, v in (("service.name", "string_value", "lightningd"),
                        ("process.pid", "int_value", 1234), ("x.flag", "bool_value", True)):
        kv = rs.resource.attributes.add(key=k)
        setattr(kv.value, field, v)
    ss = rs.scope_spans.add()
    ss.scope.name, ss.scope.version = "cln-otlp", "0.1.0"
    root = ss.spans.add(trace_id=TRACE_ID, span_id=ROOT_ID, name="lightningd/jsonrpc", kind=2,
                        start_time_unix_nano=1700000000123456789,
                        end_time_unix_nano=1700000000223456789, flags=0x301)
    root.attributes.add(key="method").value.string_value = "getinfo"
    root.attributes.add(key="n").value.int_value = 42
    child = ss.spans.add(trace_id=TRACE_ID, span_id=CHILD_ID, parent_span_id=ROOT_ID,
                         name="wallet/db", kind=0, start_time_unix_nano=1700000000130000000,
                         end_time_unix_nano=1700000000140000000)
    ev = child.events.add(time_unix_nano=1700000000135000000, name="cln.suspend")
    ev.attributes.add(key="why").value.string_value = "io"
    child.status.code, child.status.message = 2, "boom"
    for i in range(n_extra):
        ss.spans.add(trace_id=TRACE_ID, span_id=(i + 1).to_bytes(8, "big"),
                     name="%s-%d" % (name_prefix, i), start_time_unix_nano=1, end_time_unix_nano=2)
    return req


BODY = make_request().SerializeToString()
JSON_BODY = {"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "lightningd"}},
                                {"key": "process.pid", "value": {"intValue": 1234}}]},
    "scopeSpans": [{"scope": {"name": "cln-otlp", "version": "0.1.0"}, "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "eee19b7ec3c1b174",
        "parentSpanId": "", "name": "json-span", "kind": 3,
        "startTimeUnixNano": 1700000000123456789, "endTimeUnixNano": "1700000000223456789",
        "attributes": [{"key": "n", "value": {"intValue": "7"}}],
        "events": [{"timeUnixNano": "1700000000200000000", "name": "ev"}],
        "status": {"code": 2, "message": "bad"}, "unknownFieldIsIgnored": True}]}]}]}


def post(url, body, ctype=PB, encoding=None, headers=None, timeout=10, context=None):
    """POST with urllib; returns (status, headers, body) also for HTTP errors."""
    h = dict({"Content-Type": ctype}, **({"Content-Encoding": encoding} if encoding else {}))
    req = urllib.request.Request(url, data=body, headers=dict(h, **(headers or {})),
                                 method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def raised(what, types, fn, *args, **kw):
    """check() that fn(*args, **kw) raises one of types; the exception."""
    e = attempt(fn, *args, **kw)
    check(what, isinstance(e, types), repr(e))
    return e


def fails(code, fn, *args, timeout=10, what=None):
    """check() that a gRPC call fails with this status code (any, if None); the error."""
    e = attempt(fn, *args, timeout=timeout)
    check(what or str(code), isinstance(e, grpc.RpcError) and code in (None, e.code()), repr(e))
    return e


def check_known_spans(recs, transport):
    """The two spans of make_request(), as recorded."""
    by_name = {r["span"]["name"]: r for r in recs}
    for r in (by_name["lightningd/jsonrpc"], by_name["wallet/db"]):
        check_fields("record", r, transport=transport, resource={
            "service.name": "lightningd", "process.pid": 1234, "x.flag": True},
            scope={"name": "cln-otlp", "version": "0.1.0"})
        check_fields("span", r["span"], traceId=TRACE_ID.hex())
    check_fields("root", by_name["lightningd/jsonrpc"]["span"], spanId="eee19b7ec3c1b174",
                 parentSpanId="", kind=2, startTimeUnixNano="1700000000123456789",
                 endTimeUnixNano="1700000000223456789", flags=0x301, attributes=[
                     {"key": "method", "value": {"stringValue": "getinfo"}},
                     {"key": "n", "value": {"intValue": "42"}}], status={"code": 0, "message": ""})
    c = by_name["wallet/db"]["span"]
    check_fields("child", c, spanId="eee19b7ec3c1b173", parentSpanId="eee19b7ec3c1b174", kind=0,
                 status={"code": 2, "message": "boom"})
    check("child: one event", len(c["events"]) == 1, c["events"])
    check_fields("child's event", c["events"][0], name="cln.suspend",
                 timeUnixNano="1700000000135000000",
                 attributes=[{"key": "why", "value": {"stringValue": "io"}}])


def statuses(mc):
    return [r["status"] for r in mc.requests()]


def reqs_of(mc):
    return {r["req"] for r in mc.records()}


# ---- http ----------------------------------------------------------------------------------


@test("http")
def protobuf_recorded_and_answered(tmp):
    with Collector(tmp) as mc:
        status, hdrs, resp = post(mc.url(T), BODY, headers={"X-Api-Key": "k1"})
        check("200 with a protobuf answer", (status, hdrs["Content-Type"]) == (200, PB))
        check("no partial success",
              not ts.ExportTraceServiceResponse.FromString(resp).HasField("partial_success"))
        recs = mc.records()
        check("2 spans recorded", len(recs) == 2, recs)
        check_known_spans(recs, "http")
        for r in recs:
            check_fields("record", r, content_type=PB, content_encoding="identity")
            check("record: x-api-key", r["headers"]["x-api-key"] == "k1", r)
        (rq,) = mc.requests()
        check_fields("request", rq, transport="http", path=T, spans=2, status=200, action="200",
                     bytes=len(BODY), content_type=PB)
        check("request: x-api-key", rq["headers"]["x-api-key"] == "k1", rq)
        check("request: its time", abs(rq["t"] - time.time()) <= 30, rq)


@test("http")
def gzip_body(tmp):
    with Collector(tmp) as mc:
        raw = make_request(n_extra=50).SerializeToString()
        body = gzip.compress(raw)
        check("200", post(mc.url(T), body, encoding="gzip")[0] == 200)
        recs = mc.records()
        check("52 spans", len(recs) == 52, len(recs))
        check_known_spans(recs, "http")
        check("recorded as gzip", all(r["content_encoding"] == "gzip" for r in recs))
        (rq,) = mc.requests()
        check_fields("request", rq, content_encoding="gzip", bytes=len(body),
                     decoded_bytes=len(raw))
        check("compressed smaller", rq["bytes"] < rq["decoded_bytes"], rq)


@test("http")
def json_request_and_answer(tmp):
    with Collector(tmp) as mc:
        for enc in (None, "gzip"):
            body = json.dumps(JSON_BODY).encode()
            status, hdrs, resp = post(mc.url(T), gzip.compress(body) if enc else body, ctype=JS,
                                      encoding=enc)
            check("200 with a JSON answer", (status, hdrs["Content-Type"]) == (200, JS))
            check("the answer is {}", json.loads(resp) == {}, resp)
        recs = mc.records()
        check("2 spans", len(recs) == 2, recs)
        check("encodings", [r["content_encoding"] for r in recs] == ["identity", "gzip"], recs)
        check_fields("record", recs[0], content_type=JS,
                     resource={"service.name": "lightningd", "process.pid": 1234})
        s = recs[0]["span"]
        check_fields("span", s, traceId=TRACE_ID.hex(),  # upper-case hex in, lower-case out
                     spanId="eee19b7ec3c1b174", kind=3,
                     startTimeUnixNano="1700000000123456789",  # number in
                     endTimeUnixNano="1700000000223456789",  # string in
                     attributes=[{"key": "n", "value": {"intValue": "7"}}],
                     status={"code": 2, "message": "bad"})
        check("the event", s["events"][0]["name"] == "ev", s)


@test("http")
def keepalive(tmp):
    with Collector(tmp) as mc:
        conn = http.client.HTTPConnection("127.0.0.1", mc.http_port, timeout=10)
        socks = []
        for _ in range(3):
            conn.request("POST", T, body=BODY, headers={"Content-Type": PB})
            resp = conn.getresponse()
            resp.read()
            check("200", resp.status == 200)
            check("no Connection: close", (resp.getheader("Connection") or "").lower() != "close")
            socks.append(conn.sock)
        conn.close()
        check("the connection was kept alive", socks[0] is not None and
              all(s is socks[0] for s in socks))
        check("one peer", len({r["peer"] for r in mc.requests()}) == 1)
        check("6 spans", len(mc.records()) == 6)


@test("http")
def chunked_body(tmp):
    with Collector(tmp) as mc:
        body = make_request(n_extra=10).SerializeToString()
        conn = http.client.HTTPConnection("127.0.0.1", mc.http_port, timeout=10)
        conn.request("POST", T, body=iter([body[:7], body[7:100], body[100:]]),
                     headers={"Content-Type": PB}, encode_chunked=True)
        resp = conn.getresponse()
        resp.read()
        conn.close()
        check("200", resp.status == 200)
        (rq,) = mc.requests()
        check("transfer-encoding chunked", rq["headers"]["transfer-encoding"] == "chunked", rq)
        check("bytes", rq["bytes"] == len(body), rq)
        check("12 spans", len(mc.records()) == 12)


@test("http")
def empty_request_is_success_on_any_path(tmp):
    with Collector(tmp) as mc:
        check("200", post(mc.url(T), b"")[0] == 200)
        check("0 spans", mc.requests()[0]["spans"] == 0 and mc.records() == [])
        check("any path: 200", post(mc.url("/custom/prefix/v1/traces?x=1"), BODY)[0] == 200)
        check("the path recorded", mc.requests()[1]["path"] == "/custom/prefix/v1/traces?x=1")


@test("http")
def malformed_bodies_rejected(tmp):
    bad_len = make_request()
    bad_len.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02\x03"
    bad_hex = json.loads(json.dumps(JSON_BODY))
    bad_hex["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "xyz"
    cases = [(b"\xff\xff\xff garbage", PB, None, 400, "invalid protobuf"),
             (bad_len.SerializeToString(), PB, None, 400, "span_id has 3 bytes"),
             (b"not gzip at all", PB, "gzip", 400, "bad gzip"),
             (BODY, PB, "br", 400, "unsupported content encoding"),
             (b"{not json", JS, None, 400, "invalid JSON"),
             (json.dumps(bad_hex).encode(), JS, None, 400, "not hex"),
             (b'{"resourceSpans": 3}', JS, None, 400, "must be a list"),
             (b"{}", "text/plain", None, 415, "unsupported content type")]
    with Collector(tmp, script="503") as mc:
        for body, ctype, enc, want, text in cases:
            status, hdrs, resp = post(mc.url(T), body, ctype=ctype, encoding=enc)
            check("%s: %d" % (text, want), status == want, status)
            check("%s: answered in %s" % (text, JS if ctype == JS else PB),
                  hdrs["Content-Type"] == (JS if ctype == JS else PB))
            msg = json.loads(resp)["message"] if ctype == JS else \
                status_pb2.Status.FromString(resp).message
            check("%s: the message says so" % text, text in msg, msg)
        check("statuses", statuses(mc) == [c[3] for c in cases], statuses(mc))
        check("all rejected", all(r["action"] == "reject" for r in mc.requests()))
        check("no span recorded", mc.records() == [])
        # rejected bodies do not consume script steps: the first valid request gets the 503
        check("the script's 503 comes next", post(mc.url(T), BODY)[0] == 503)


@test("http")
def methods_and_paths(tmp):
    with Collector(tmp, args=["--http-path", T]) as mc:
        e = raised("GET: an HTTP error", urllib.error.HTTPError, urllib.request.urlopen, mc.url(T),
                   timeout=10)
        check("GET: 405", e.code == 405, e.code)
        check("another path: 404", post(mc.url("/v1/other"), BODY)[0] == 404)
        check("the path: 200", post(mc.url(T), BODY)[0] == 200)
        check("statuses", statuses(mc) == [404, 200], statuses(mc))


# ---- script ---------------------------------------------------------------------------------


@test("script")
def statuses_in_order_then_success(tmp):
    script = "503/ra=2,429,502,504,400,500,grpc=8"
    with Collector(tmp, script=script) as mc:
        got, codes = [], []
        for _ in range(9):
            status, hdrs, resp = post(mc.url(T), BODY)
            got.append((status, hdrs.get("Retry-After")))
            if status != 200:
                st = status_pb2.Status.FromString(resp)
                check("the message says scripted", "scripted" in st.message, st.message)
                codes.append(st.code)
        # google.rpc.Status codes: HTTP mapped to gRPC, and grpc=8 kept as is
        check("google.rpc.Status codes", codes == [14, 14, 14, 14, 13, 2, 8], codes)
        check("statuses and Retry-After", got == [
            (503, "2"), (429, None), (502, None), (504, None), (400, None), (500, None),
            (429, None), (200, None), (200, None)], got)
        reqs = mc.requests()
        check("actions", [r["action"] for r in reqs] == script.split(",") + ["200", "200"])
        check("statuses recorded", [r["status"] for r in reqs] == [g[0] for g in got])
        # only the two successful requests are recorded
        check("4 spans", len(mc.records()) == 4)
        check("of the last two requests", reqs_of(mc) == {reqs[7]["req"], reqs[8]["req"]})


@test("script")
def retry_after_date(tmp):
    with Collector(tmp, script="503/ra-date=2") as mc:
        before = time.time()
        status, hdrs, _ = post(mc.url(T), BODY)
        after = time.time()
    check("503", status == 503)
    when = email.utils.parsedate_to_datetime(hdrs["Retry-After"]).timestamp()
    check("an HTTP date", hdrs["Retry-After"].endswith(" GMT"), hdrs["Retry-After"])
    # the answer's second rounded up, plus 2: however long the request took
    check("2 s ahead of when it answered (whole seconds)",
          before + 2 - 1e-6 <= when <= after + 3, (before, when, after))


@test("script")
def drop(tmp):
    with Collector(tmp, script="drop") as mc:
        raised("no answer", (http.client.RemoteDisconnected, ConnectionResetError,
                             urllib.error.URLError), post, mc.url(T), BODY)
        check("then 200", post(mc.url(T), BODY)[0] == 200)
        reqs = mc.requests()
        check("drop, then 200", [(r["action"], r["status"]) for r in reqs] ==
              [("drop", None), ("200", 200)], reqs)
        check("the second recorded", reqs_of(mc) == {reqs[1]["req"]})


@test("script")
def delay_then_client_gives_up(tmp):
    with Collector(tmp, script="delay=1.2,delay=1.5") as mc:
        t0 = time.monotonic()
        status, _, _ = post(mc.url(T), BODY)
        elapsed = time.monotonic() - t0
        check("200", status == 200)
        check("after 1.2 s (within the client's 10 s timeout)", 1.2 <= elapsed, elapsed)
        check("2 spans", len(mc.records()) == 2)
        check("the action", mc.requests()[0]["action"] == "delay=1.2")
        raised("a timeout", (socket.timeout, TimeoutError, urllib.error.URLError), post,
               mc.url(T), BODY, timeout=0.4)
        rq = mc.wait_requests(2)[1]
        check("client gone", (rq["action"], rq["status"], rq.get("client_gone")) ==
              ("delay=1.5", None, True), rq)
        check("no span recorded (the client never saw a success)",
              reqs_of(mc) == {mc.requests()[0]["req"]})


@test("script")
def partial_success(tmp):
    with Collector(tmp, script="partial=3,partial=1") as mc:
        status, _, resp = post(mc.url(T), BODY)
        ps = ts.ExportTraceServiceResponse.FromString(resp).partial_success
        check("200, 3 rejected", (status, ps.rejected_spans) == (200, 3), ps)
        check("says rejected", "rejected" in ps.error_message, ps)
        status, _, resp = post(mc.url(T), json.dumps(JSON_BODY).encode(), ctype=JS)
        ps = json.loads(resp)["partialSuccess"]
        check("JSON: 200, 1 rejected", (status, int(ps["rejectedSpans"])) == (200, 1), ps)
        check("JSON: says rejected", "rejected" in ps["errorMessage"], ps)
        check("partial success still records every span", len(mc.records()) == 3)


@test("script")
def json_error_body(tmp):
    with Collector(tmp, script="503/ra=1") as mc:
        status, hdrs, resp = post(mc.url(T), json.dumps(JSON_BODY).encode(), ctype=JS)
    check("503, JSON, Retry-After 1", (status, hdrs["Content-Type"], hdrs["Retry-After"]) ==
          (503, JS, "1"))
    check("code 14, the step in the message", json.loads(resp)["code"] == 14 and
          "503/ra=1" in json.loads(resp)["message"], resp)


@test("script")
def max_requests_exits(tmp):
    with Collector(tmp, max_requests=2, script="503") as mc:
        check("503, then 200", [post(mc.url(T), BODY)[0] for _ in range(2)] == [503, 200])
        check("exit 0", mc.stop(sig=None, timeout=10) == 0)
        raised("nobody listens", (urllib.error.URLError, ConnectionError), post, mc.url(T), BODY,
               timeout=2)
        check("2 requests", len(mc.requests()) == 2)


# ---- grpc ----------------------------------------------------------------------------------


def call(mc, method=EXPORT, ca=None, cert=None):
    """A unary call to the collector's gRPC port (TLS with these test certificates)."""
    if ca:
        rd = lambda n: open(os.path.join(ca[0], n), "rb").read()  # noqa: E731
        creds = grpc.ssl_channel_credentials(rd(ca[1]), cert and rd(cert + ".key"),
                                             cert and rd(cert + ".crt"))
        ch = grpc.secure_channel("localhost:%d" % mc.grpc_port, creds)
    else:
        ch = grpc.insecure_channel("127.0.0.1:%d" % mc.grpc_port)
    return ch.unary_unary(method)


@test("grpc")
def export_recorded(tmp):
    with Collector(tmp, http=False, grpc=True) as mc:
        resp = call(mc)(BODY, metadata=[("x-api-key", "k1")], timeout=10)
        check("no partial success",
              not ts.ExportTraceServiceResponse.FromString(resp).HasField("partial_success"))
        recs = mc.records()
        check("2 spans", len(recs) == 2, recs)
        check_known_spans(recs, "grpc")
        check_fields("record", recs[0], content_type="application/grpc",
                     content_encoding="identity")
        check("x-api-key", recs[0]["headers"]["x-api-key"] == "k1", recs[0])
        check("real HTTP/2 headers, not just metadata", recs[0]["headers"]["te"] == "trailers")
        (rq,) = mc.requests()
        check_fields("request", rq, transport="grpc", path=EXPORT, status=0, spans=2,
                     bytes=len(BODY))
        check("user-agent", "grpc-python" in rq["headers"]["user-agent"], rq)


@test("grpc")
def gzip_compressed_flag(tmp):
    with Collector(tmp, http=False, grpc=True) as mc:
        body = make_request(n_extra=200).SerializeToString()
        call(mc)(body, compression=grpc.Compression.Gzip, timeout=10)
        call(mc)(body, timeout=10)
        reqs = mc.requests()
        check("encodings", [r["content_encoding"] for r in reqs] == ["gzip", "identity"], reqs)
        check("grpc-encoding gzip", reqs[0]["headers"]["grpc-encoding"] == "gzip")
        check("compressed bytes", reqs[0]["bytes"] < len(body) // 4, reqs[0])
        check("decoded bytes", reqs[0]["decoded_bytes"] == len(body), reqs[0])
        check("plain bytes", reqs[1]["bytes"] == len(body), reqs[1])
        recs = mc.records()
        check("404 spans", len(recs) == 404)
        check("recorded encodings", (recs[0]["content_encoding"], recs[-1]["content_encoding"]) ==
              ("gzip", "identity"))


@test("grpc")
def script_codes(tmp):
    with Collector(tmp, http=False, grpc=True,
                   script="grpc=14/ra=3,503,grpc=3,partial=2,200") as mc:
        export = call(mc)
        e = fails(grpc.StatusCode.UNAVAILABLE, export, BODY)
        check("the step in the details", "grpc=14/ra=3" in e.details(), e.details())
        st = status_pb2.Status.FromString(dict(e.trailing_metadata())["grpc-status-details-bin"])
        check("google.rpc.Status code 14", st.code == 14)
        anyd = st.details[0]  # a google.protobuf.Any
        check("a RetryInfo", anyd.type_url == "type.googleapis.com/google.rpc.RetryInfo")
        # RetryInfo{1: Duration}: a 1-byte tag and a 1-byte length, then the Duration
        check("RetryInfo field 1", anyd.value[0] == 0x0A)
        check("3 s", duration_pb2.Duration.FromString(anyd.value[2:]).seconds == 3)
        e = fails(grpc.StatusCode.UNAVAILABLE, export, BODY, what="503: UNAVAILABLE")
        check("no RetryInfo", "grpc-status-details-bin" not in dict(e.trailing_metadata()))
        fails(grpc.StatusCode.INVALID_ARGUMENT, export, BODY)
        ps = ts.ExportTraceServiceResponse.FromString(export(BODY, timeout=10)).partial_success
        check("2 rejected", ps.rejected_spans == 2)
        export(BODY, timeout=10)
        reqs = mc.requests()
        check("statuses", [r["status"] for r in reqs] == [14, 14, 3, 0, 0], reqs)
        check("the last two recorded", reqs_of(mc) == {reqs[3]["req"], reqs[4]["req"]})


@test("grpc")
def grpc_drop(tmp):
    with Collector(tmp, http=False, grpc=True, script="drop") as mc:
        export = call(mc)
        e = fails(grpc.StatusCode.UNAVAILABLE, export, BODY)
        check("no answer at all", "mock collector" not in (e.details() or ""), e.details())
        export(BODY, timeout=10)  # the channel reconnects
        reqs = mc.requests()
        check("drop, then 200", [(r["action"], r["status"]) for r in reqs] ==
              [("drop", None), ("200", 0)], reqs)
        check("a new connection", reqs[0]["peer"] != reqs[1]["peer"], reqs)
        check("2 spans", len(mc.records()) == 2)


@test("grpc")
def delay_and_deadline(tmp):
    with Collector(tmp, http=False, grpc=True, script="delay=1.5,delay=1") as mc:
        export = call(mc)
        fails(grpc.StatusCode.DEADLINE_EXCEEDED, export, BODY, timeout=0.4)
        t0 = time.monotonic()
        export(BODY, timeout=10)
        check("after the delay", time.monotonic() - t0 >= 1.0)
        by_action = {r["action"]: r for r in mc.wait_requests(2)}
        check("the first one's client gone", by_action["delay=1.5"].get("client_gone") and
              by_action["delay=1.5"]["status"] is None, by_action)
        check("the second answered", by_action["delay=1"]["status"] == 0, by_action)
        check("the second recorded", reqs_of(mc) == {by_action["delay=1"]["req"]})


@test("grpc")
def malformed_and_unknown_method(tmp):
    with Collector(tmp, http=False, grpc=True, script="503") as mc:
        fails(grpc.StatusCode.INVALID_ARGUMENT, call(mc), b"\xff\xff\xff garbage")
        fails(grpc.StatusCode.UNIMPLEMENTED, call(
            mc, "/opentelemetry.proto.collector.logs.v1.LogsService/Export"), b"")
        check("rejected", [(r["action"], r["status"]) for r in mc.requests()] ==
              [("reject", 3), ("reject", 12)], mc.requests())
        # the script step was not consumed by those
        fails(grpc.StatusCode.UNAVAILABLE, call(mc), BODY, what="then the scripted UNAVAILABLE")


@test("grpc")
def max_requests_exits_after_the_answer(tmp):
    with Collector(tmp, http=False, grpc=True, max_requests=2, script="grpc=14") as mc:
        export = call(mc)
        fails(None, export, BODY, what="the scripted error")
        check("the last answer still arrives", export(BODY, timeout=10) == b"")
        check("exit 0", mc.stop(sig=None, timeout=10) == 0)
        check("statuses", statuses(mc) == [14, 0], statuses(mc))


@test("grpc")
def concurrent_calls_matched_to_their_headers(tmp):
    with Collector(tmp, http=False, grpc=True) as mc:
        export, futs = call(mc), []
        for i in range(12):
            body = make_request(n_extra=100 + i, name_prefix="c%d" % i).SerializeToString()
            comp = grpc.Compression.Gzip if i % 2 == 0 else grpc.Compression.NoCompression
            futs.append(export.future(body, metadata=[("x-idx", str(i))], compression=comp,
                                      timeout=10))
        for f in futs:
            f.result()
        reqs = mc.requests()
        check("12 requests", len(reqs) == 12)
        for r in reqs:
            i = int(r["headers"]["x-idx"])
            check_fields("request %d" % i, r, spans=102 + i,
                         content_encoding="gzip" if i % 2 == 0 else "identity")
        extra = [rec for rec in mc.records() if rec["span"]["name"].startswith("c")]
        check("every extra span recorded", len(extra) == sum(100 + i for i in range(12)),
              len(extra))
        for rec in extra:
            check("span %s with its request's headers" % rec["span"]["name"],
                  rec["span"]["name"].split("-")[0] == "c" + rec["headers"]["x-idx"])


# ---- tls ----------------------------------------------------------------------------------


def client_ctx(d, ca="ca.crt", cert=None):
    ctx = ssl.create_default_context(cafile=os.path.join(d, ca))
    if cert:
        ctx.load_cert_chain(os.path.join(d, cert + ".crt"), os.path.join(d, cert + ".key"))
    return ctx


@test("tls")
def certs_made(tmp):
    d = certs(tmp)
    c = lambda n: os.path.join(d, n)  # noqa: E731
    for name in ("ca", "server", "client", "other-ca", "other-client"):
        check(name + " made", os.path.getsize(c(name + ".crt")) > 0 and
              os.path.getsize(c(name + ".key")) > 0)
    out = run(["openssl", "verify", "-CAfile", c("ca.crt"), c("server.crt"), c("client.crt")])
    check("signed by the CA", out.returncode == 0, out.stdout + out.stderr)
    out = run(["openssl", "verify", "-CAfile", c("ca.crt"), c("other-client.crt")])
    check("the other client is not", out.returncode != 0)
    out = run(["openssl", "x509", "-in", c("server.crt"), "-noout", "-ext", "subjectAltName"])
    check("SAN localhost, 127.0.0.1", "DNS:localhost" in out.stdout and "127.0.0.1" in out.stdout,
          out.stdout)


@test("tls")
def https(tmp):
    d = certs(tmp)
    with Collector(tmp, tls=d) as mc:
        for host in ("127.0.0.1", "localhost"):
            check("200 via " + host, post(mc.url(T, host), BODY, context=client_ctx(d))[0] == 200)
        e = raised("another CA: refused", urllib.error.URLError, post, mc.url(T), BODY,
                   context=client_ctx(d, ca="other-ca.crt"))
        check("a certificate error", isinstance(e.reason, ssl.SSLCertVerificationError), e)
        raised("plain HTTP to TLS: refused", (urllib.error.URLError, ConnectionError), post,
               mc.url(T).replace("https:", "http:"), BODY, timeout=3)
        check("2 requests, 4 spans", (len(mc.requests()), len(mc.records())) == (2, 4))


@test("tls")
def https_mtls(tmp):
    d = certs(tmp)
    with Collector(tmp, tls=d, mtls=True) as mc:
        check("200", post(mc.url(T), BODY, context=client_ctx(d, cert="client"))[0] == 200)
        for cert in (None, "other-client"):
            raised("client cert %s refused" % cert, (urllib.error.URLError, ConnectionError,
                                                     ssl.SSLError),
                   post, mc.url(T), BODY, context=client_ctx(d, cert=cert))
        check("1 request", len(mc.requests()) == 1)
        # logged after the alert went out: the client may see its error first
        mc.wait_err("TLS handshake", count=2)


@test("tls")
def grpc_tls(tmp):
    d = certs(tmp)
    with Collector(tmp, http=False, grpc=True, script="200,drop", tls=d) as mc:
        body = make_request(n_extra=100).SerializeToString()
        export = call(mc, ca=(d, "ca.crt"))
        export(body, compression=grpc.Compression.Gzip, timeout=10)
        fails(grpc.StatusCode.UNAVAILABLE, export, body, what="drop: UNAVAILABLE")
        export(body, timeout=10)
        fails(grpc.StatusCode.UNAVAILABLE, call(mc, ca=(d, "other-ca.crt")), body, timeout=5,
              what="another CA: UNAVAILABLE")
        reqs = mc.requests()
        check("actions", [r["action"] for r in reqs] == ["200", "drop", "200"], reqs)
        check("frames seen behind TLS", reqs[0]["content_encoding"] == "gzip", reqs[0])
        check("te: trailers", reqs[0]["headers"]["te"] == "trailers", reqs[0])
        check("204 spans", len(mc.records()) == 204)


@test("tls")
def grpc_mtls(tmp):
    d = certs(tmp)
    with Collector(tmp, http=False, grpc=True, tls=d, mtls=True) as mc:
        call(mc, ca=(d, "ca.crt"), cert="client")(BODY, timeout=10)
        for cert in (None, "other-client"):
            fails(grpc.StatusCode.UNAVAILABLE, call(mc, ca=(d, "ca.crt"), cert=cert), BODY,
                  timeout=5, what="client cert %s refused" % cert)
        check("1 request, 2 spans", (len(mc.requests()), len(mc.records())) == (1, 2))


# ---- curl (libcurl, as the exporter: the same HTTP/1.1 and HTTP/2 paths) --------------------


def curl(*args):
    return run([os.environ.get("MOCK_CURL") or shutil.which("curl"), "-sS", "--max-time", "10",
                *args])


def write(tmp, name, data):
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(data)
    return f.name


@test("curl")
def http_gzip_and_retry_after(tmp):
    with Collector(tmp, script="503/ra=2") as mc:
        hdr = os.path.join(tmp, "hdr")
        args = ["-H", "Content-Type: " + PB, "-H", "Content-Encoding: gzip", "--data-binary",
                "@" + write(tmp, "body.gz", gzip.compress(BODY)), "-D", hdr, "-o", os.devnull,
                "-w", "%{http_code} %{http_version}", mc.url(T)]
        check("503 over HTTP/1.1", curl(*args).stdout == "503 1.1")
        with open(hdr) as f:
            check("retry-after: 2", "retry-after: 2" in f.read().lower())
        check("then 200", curl(*args).stdout == "200 1.1")
        recs = mc.records()
        check("2 spans", len(recs) == 2)
        check("gzip", recs[0]["content_encoding"] == "gzip")
        check("curl's user-agent", "curl/" in recs[0]["headers"]["user-agent"])


def grpc_frame(msg, compress=False):
    payload = gzip.compress(msg) if compress else msg
    return bytes([1 if compress else 0]) + len(payload).to_bytes(4, "big") + payload


def curl_grpc(tmp, url, frame, extra=(), headers=()):
    """A gRPC call by curl: (response headers, body)."""
    hdr, out = os.path.join(tmp, "grpc-hdr"), os.path.join(tmp, "grpc-out")
    r = curl(*extra, "-X", "POST", "-H", "Content-Type: application/grpc", "-H", "TE: trailers",
             "--data-binary", "@" + write(tmp, "frame", frame), "-D", hdr, "-o", out,
             *[a for h in headers for a in ("-H", h)], url)
    check("curl exit 0", r.returncode == 0, r.stderr)
    with open(hdr) as f, open(out, "rb") as o:
        lines = [ln.strip().lower() for ln in f if ":" in ln]
        return dict(ln.split(": ", 1) for ln in lines if not ln.startswith("http/")), o.read()


@test("curl")
def grpc_over_http2_prior_knowledge(tmp):
    with Collector(tmp, http=False, grpc=True, script="grpc=14") as mc:
        url = "http://127.0.0.1:%d%s" % (mc.grpc_port, EXPORT)
        msg = make_request(n_extra=30).SerializeToString()
        h, _ = curl_grpc(tmp, url, grpc_frame(msg), ["--http2-prior-knowledge"])
        check("grpc-status 14", h.get("grpc-status") == "14", h)
        h, resp = curl_grpc(tmp, url, grpc_frame(msg, compress=True), ["--http2-prior-knowledge"],
                            ["grpc-encoding: gzip", "x-api-key: k2"])
        check("grpc-status 0", h.get("grpc-status") == "0", h)
        check("an empty ExportTraceServiceResponse", resp[:5] == b"\x00\x00\x00\x00\x00", resp)
        reqs = mc.requests()
        check("statuses and encodings", [(r["status"], r["content_encoding"]) for r in reqs] ==
              [(14, "identity"), (0, "gzip")], reqs)
        check("x-api-key", reqs[1]["headers"]["x-api-key"] == "k2")
        check("32 spans", len(mc.records()) == 32)


@test("curl")
def grpc_over_tls_with_client_cert(tmp):
    d = certs(tmp)
    with Collector(tmp, http=False, grpc=True, tls=d, mtls=True) as mc:
        url = "https://localhost:%d%s" % (mc.grpc_port, EXPORT)
        h, _ = curl_grpc(tmp, url, grpc_frame(BODY), ["--http2", "--cacert", d + "/ca.crt",
                                                      "--cert", d + "/client.crt", "--key",
                                                      d + "/client.key"])
        check("grpc-status 0", h.get("grpc-status") == "0", h)
        out = curl("--http2", "--cacert", d + "/ca.crt", "-o", os.devnull, "--data-binary", "x",
                   url)
        check("no client certificate: refused", out.returncode != 0)
        check("2 spans", len(mc.records()) == 2)


# ---- cli ----------------------------------------------------------------------------------


@test("cli")
def stderr_line_per_request_sigterm_is_clean(tmp):
    with Collector(tmp, grpc=True, script="503") as mc:
        for _ in range(3):
            post(mc.url(T), BODY)
        lines = [ln for ln in mc.err().splitlines() if " http POST " in ln or "#" in ln]
        check("3 lines", len(lines) == 3, mc.err())
        check("503, then 200", "-> 503" in lines[0] and "-> 200" in lines[1], lines)
        with open(mc.port_file) as f:
            ports = json.load(f)
        check("ports of both", set(ports) == {"http", "grpc"} and
              all(isinstance(p, int) and p > 0 for p in ports.values()), ports)
        check("no temporary port file left", sorted(os.listdir(tmp)) == sorted(
            os.path.basename(p) for p in (mc.port_file, mc.records_path, mc.requests_path,
                                          mc.out_path, mc.err_path)), os.listdir(tmp))
        check("exit 0 after SIGTERM (within 30 s)", mc.stop(timeout=30) == 0)
        check("says so", "stopped after 3 requests" in mc.err(), mc.err())
        check("4 spans", len(mc.records()) == 4)


@test("cli")
def bad_arguments_and_port_in_use(tmp):
    env = dict(os.environ, MOCK_PROTO_PY="")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    for args, text in (
            (["--proto-py", PROTO_PY, "--http", str(busy.getsockname()[1])], "cannot listen"),
            (["--proto-py", PROTO_PY, "--http", "0", "--script", "200,bogus"], "unknown step"),
            (["--proto-py", PROTO_PY, "--http", "0", "--script", "grpc=99"], "0 to 16"),
            (["--proto-py", PROTO_PY], "nothing to serve"),
            (["--http", "0"], "mock_collector_py"),
            (["--proto-py", tmp, "--http", "0"], "mock_collector_py"),
            (["--proto-py", PROTO_PY, "--http", "0", "--tls-cert", "/nonexistent"], "go together"),
            (["--proto-py", PROTO_PY, "--http", "0", "--tls-cert", "/nonexistent",
              "--tls-key", "/nonexistent"], "certs.sh")):
        out = run(mock_command(*args), env=env, timeout=15)
        check("%s: exit 2" % args, out.returncode == 2, out.returncode)
        check("%s: says %r" % (args, text), text in out.stderr, out.stderr)
    busy.close()


@test("cli")
def fixed_port_http_only_proto_dir_from_argument(tmp):
    port, port_file = free_port(), os.path.join(tmp, "p.json")
    with Proc(mock_command("--proto-py", PROTO_PY, "--http", str(port), "--port-file", port_file,
                           "--max-requests", "1"), tmp, "mock",
              env=dict(os.environ, MOCK_PROTO_PY="")) as p:
        p.wait(lambda: os.path.exists(port_file), 30, "the port file written")
        with open(port_file) as f:
            ports = json.load(f)
        check("that port, no gRPC", (ports["http"], ports["grpc"]) == (port, None), ports)
        check("200", post("http://127.0.0.1:%d%s" % (port, T), b"")[0] == 200)
        check("exit 0 after one request", p.stop(sig=None, timeout=10) == 0)


main([a for a in sys.argv[1:] if not a.startswith("-")])
