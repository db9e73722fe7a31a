#!/usr/bin/python3
"""Self-tests of the mock OTLP collector: real clients (urllib, http.client, grpcio, curl) against
it, checking what it records and how it answers.

    test_mock_collector.py [-v] GROUP      GROUP: http script grpc tls curl cli (or all)

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
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from mockcoll import MockCollector, read_jsonl  # noqa: E402

PROTO_PY = os.environ.get("MOCK_PROTO_PY", "")
if not PROTO_PY or not os.path.isdir(PROTO_PY):
	sys.exit("MOCK_PROTO_PY must name the generated classes (build target mock_collector_py)")
sys.path.insert(0, PROTO_PY)
import grpc  # noqa: E402
try:
	import hpack  # noqa: E402,F401  (the collector reports gRPC's HTTP/2 headers with it)
except ImportError:
	sys.exit("python3-hpack is missing: apt-get install python3-hpack")
from google.protobuf import duration_pb2  # noqa: E402
from google.rpc import status_pb2  # noqa: E402
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts  # noqa: E402

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
TRACE_ID = bytes.fromhex("5b8efff798038103d269b633813fc60c")
ROOT_ID = bytes.fromhex("eee19b7ec3c1b174")
CHILD_ID = bytes.fromhex("eee19b7ec3c1b173")
PB = "application/x-protobuf"


def make_request(n_extra=0, name_prefix="extra"):
	"""Two known spans (root + child with every field used), plus n_extra plain ones."""
	req = ts.ExportTraceServiceRequest()
	rs = req.resource_spans.add()
	for k, field, v in (("service.name", "string_value", "lightningd"),
			    ("process.pid", "int_value", 1234), ("x.flag", "bool_value", True)):
		kv = rs.resource.attributes.add()
		kv.key = k
		setattr(kv.value, field, v)
	ss = rs.scope_spans.add()
	ss.scope.name = "cln-otlp"
	ss.scope.version = "0.1.0"
	root = ss.spans.add(trace_id=TRACE_ID, span_id=ROOT_ID, name="lightningd/jsonrpc",
			    kind=2, start_time_unix_nano=1700000000123456789,
			    end_time_unix_nano=1700000000223456789, flags=0x301)
	a = root.attributes.add()
	a.key = "method"
	a.value.string_value = "getinfo"
	a = root.attributes.add()
	a.key = "n"
	a.value.int_value = 42
	child = ss.spans.add(trace_id=TRACE_ID, span_id=CHILD_ID, parent_span_id=ROOT_ID,
			     name="wallet/db", kind=0, start_time_unix_nano=1700000000130000000,
			     end_time_unix_nano=1700000000140000000)
	ev = child.events.add(time_unix_nano=1700000000135000000, name="cln.suspend")
	a = ev.attributes.add()
	a.key = "why"
	a.value.string_value = "io"
	child.status.code = 2
	child.status.message = "boom"
	for i in range(n_extra):
		ss.spans.add(trace_id=TRACE_ID, span_id=(i + 1).to_bytes(8, "big"),
			     name="%s-%d" % (name_prefix, i), start_time_unix_nano=1, end_time_unix_nano=2)
	return req


JSON_BODY = {
	"resourceSpans": [{
		"resource": {"attributes": [
			{"key": "service.name", "value": {"stringValue": "lightningd"}},
			{"key": "process.pid", "value": {"intValue": 1234}}]},
		"scopeSpans": [{
			"scope": {"name": "cln-otlp", "version": "0.1.0"},
			"spans": [{
				"traceId": "5B8EFFF798038103D269B633813FC60C",
				"spanId": "eee19b7ec3c1b174",
				"parentSpanId": "",
				"name": "json-span",
				"kind": 3,
				"startTimeUnixNano": 1700000000123456789,
				"endTimeUnixNano": "1700000000223456789",
				"attributes": [{"key": "n", "value": {"intValue": "7"}}],
				"events": [{"timeUnixNano": "1700000000200000000", "name": "ev"}],
				"status": {"code": 2, "message": "bad"},
				"unknownFieldIsIgnored": True,
			}],
		}],
	}],
}


def post(url, body, ctype=PB, encoding=None, headers=None, timeout=10, context=None):
	"""POST with urllib; returns (status, headers, body) also for HTTP errors."""
	h = {"Content-Type": ctype}
	if encoding:
		h["Content-Encoding"] = encoding
	h.update(headers or {})
	req = urllib.request.Request(url, data=body, headers=h, method="POST")
	try:
		with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
			return resp.status, resp.headers, resp.read()
	except urllib.error.HTTPError as e:
		return e.code, e.headers, e.read()


class Base(unittest.TestCase):
	def setUp(self):
		self.tmp = tempfile.mkdtemp(prefix="mockcoll-")
		self.collectors = []

	def tearDown(self):
		for c in self.collectors:
			c.stop()
		if self._outcome_ok():
			shutil.rmtree(self.tmp, ignore_errors=True)
		else:
			for c in self.collectors:
				sys.stderr.write("--- collector stderr (%s):\n%s" % (self.tmp, c.stderr()))

	def _outcome_ok(self):
		res = getattr(self._outcome, "result", None)
		if res is None:
			return True
		return not any(t is self for t, _ in res.failures + res.errors)

	def start(self, **kw):
		c = MockCollector(self.tmp, name="c%d" % len(self.collectors), **kw)
		self.collectors.append(c)
		return c.start()

	def check_known_spans(self, recs, transport):
		"""The two spans of make_request(), as recorded."""
		by_name = {r["span"]["name"]: r for r in recs}
		root = by_name["lightningd/jsonrpc"]
		child = by_name["wallet/db"]
		for r in (root, child):
			self.assertEqual(r["transport"], transport)
			self.assertEqual(r["resource"], {"service.name": "lightningd", "process.pid": 1234,
							 "x.flag": True})
			self.assertEqual(r["scope"], {"name": "cln-otlp", "version": "0.1.0"})
			self.assertEqual(r["span"]["traceId"], TRACE_ID.hex())
		s = root["span"]
		self.assertEqual(s["spanId"], "eee19b7ec3c1b174")
		self.assertEqual(s["parentSpanId"], "")
		self.assertEqual(s["kind"], 2)
		self.assertEqual(s["startTimeUnixNano"], "1700000000123456789")
		self.assertEqual(s["endTimeUnixNano"], "1700000000223456789")
		self.assertEqual(s["flags"], 0x301)
		self.assertEqual(s["attributes"], [{"key": "method", "value": {"stringValue": "getinfo"}},
						   {"key": "n", "value": {"intValue": "42"}}])
		self.assertEqual(s["status"], {"code": 0, "message": ""})
		c = child["span"]
		self.assertEqual(c["spanId"], "eee19b7ec3c1b173")
		self.assertEqual(c["parentSpanId"], "eee19b7ec3c1b174")
		self.assertEqual(c["kind"], 0)
		self.assertEqual(c["status"], {"code": 2, "message": "boom"})
		self.assertEqual(len(c["events"]), 1)
		self.assertEqual(c["events"][0]["name"], "cln.suspend")
		self.assertEqual(c["events"][0]["timeUnixNano"], "1700000000135000000")
		self.assertEqual(c["events"][0]["attributes"],
				 [{"key": "why", "value": {"stringValue": "io"}}])


# ---------------------------------------------------------------------------------------------


class HttpTests(Base):
	def test_protobuf_recorded_and_answered(self):
		mc = self.start()
		body = make_request().SerializeToString()
		status, hdrs, resp = post(mc.http_url(), body, headers={"X-Api-Key": "k1"})
		self.assertEqual(status, 200)
		self.assertEqual(hdrs["Content-Type"], PB)
		self.assertFalse(ts.ExportTraceServiceResponse.FromString(resp).HasField("partial_success"))
		recs = mc.records()
		self.assertEqual(len(recs), 2)
		self.check_known_spans(recs, "http")
		for r in recs:
			self.assertEqual(r["content_type"], PB)
			self.assertEqual(r["content_encoding"], "identity")
			self.assertEqual(r["headers"]["x-api-key"], "k1")
		(rq,) = mc.requests()
		self.assertEqual((rq["transport"], rq["path"], rq["spans"], rq["status"], rq["action"]),
				 ("http", "/v1/traces", 2, 200, "200"))
		self.assertEqual(rq["bytes"], len(body))
		self.assertEqual(rq["content_type"], PB)
		self.assertEqual(rq["headers"]["x-api-key"], "k1")
		self.assertAlmostEqual(rq["t"], time.time(), delta=30)

	def test_gzip(self):
		mc = self.start()
		raw = make_request(n_extra=50).SerializeToString()
		body = gzip.compress(raw)
		status, _, _ = post(mc.http_url(), body, encoding="gzip")
		self.assertEqual(status, 200)
		recs = mc.records()
		self.assertEqual(len(recs), 52)
		self.check_known_spans(recs, "http")
		self.assertTrue(all(r["content_encoding"] == "gzip" for r in recs))
		(rq,) = mc.requests()
		self.assertEqual(rq["content_encoding"], "gzip")
		self.assertEqual(rq["bytes"], len(body))
		self.assertEqual(rq["decoded_bytes"], len(raw))
		self.assertLess(rq["bytes"], rq["decoded_bytes"])

	def test_json_request_and_answer(self):
		mc = self.start()
		for enc in (None, "gzip"):
			body = json.dumps(JSON_BODY).encode()
			if enc:
				body = gzip.compress(body)
			status, hdrs, resp = post(mc.http_url(), body, ctype="application/json",
						  encoding=enc)
			self.assertEqual(status, 200)
			self.assertEqual(hdrs["Content-Type"], "application/json")
			self.assertEqual(json.loads(resp), {})
		recs = mc.records()
		self.assertEqual(len(recs), 2)
		self.assertEqual([r["content_encoding"] for r in recs], ["identity", "gzip"])
		r = recs[0]
		self.assertEqual(r["content_type"], "application/json")
		self.assertEqual(r["resource"], {"service.name": "lightningd", "process.pid": 1234})
		s = r["span"]
		self.assertEqual(s["traceId"], TRACE_ID.hex())  # upper-case hex in, lower-case out
		self.assertEqual(s["spanId"], "eee19b7ec3c1b174")
		self.assertEqual(s["kind"], 3)
		self.assertEqual(s["startTimeUnixNano"], "1700000000123456789")  # number in
		self.assertEqual(s["endTimeUnixNano"], "1700000000223456789")  # string in
		self.assertEqual(s["attributes"], [{"key": "n", "value": {"intValue": "7"}}])
		self.assertEqual(s["events"][0]["name"], "ev")
		self.assertEqual(s["status"], {"code": 2, "message": "bad"})

	def test_keepalive(self):
		mc = self.start()
		conn = http.client.HTTPConnection("127.0.0.1", mc.http_port, timeout=10)
		body = make_request().SerializeToString()
		socks = []
		for _ in range(3):
			conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": PB})
			resp = conn.getresponse()
			resp.read()
			self.assertEqual(resp.status, 200)
			self.assertNotEqual((resp.getheader("Connection") or "").lower(), "close")
			socks.append(conn.sock)
		conn.close()
		self.assertIsNotNone(socks[0])
		self.assertTrue(all(s is socks[0] for s in socks), "the connection was not kept alive")
		peers = {r["peer"] for r in mc.requests()}
		self.assertEqual(len(peers), 1)
		self.assertEqual(len(mc.records()), 6)

	def test_chunked_body(self):
		mc = self.start()
		body = make_request(n_extra=10).SerializeToString()
		conn = http.client.HTTPConnection("127.0.0.1", mc.http_port, timeout=10)
		conn.request("POST", "/v1/traces", body=iter([body[:7], body[7:100], body[100:]]),
			     headers={"Content-Type": PB}, encode_chunked=True)
		resp = conn.getresponse()
		resp.read()
		conn.close()
		self.assertEqual(resp.status, 200)
		(rq,) = mc.requests()
		self.assertEqual(rq["headers"]["transfer-encoding"], "chunked")
		self.assertEqual(rq["bytes"], len(body))
		self.assertEqual(len(mc.records()), 12)

	def test_empty_request_is_success(self):
		mc = self.start()
		status, _, _ = post(mc.http_url(), b"")
		self.assertEqual(status, 200)
		self.assertEqual(mc.requests()[0]["spans"], 0)
		self.assertEqual(mc.records(), [])

	def test_malformed_bodies_rejected(self):
		mc = self.start(script="503")
		bad_len = make_request()
		bad_len.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x01\x02\x03"
		bad_hex = json.loads(json.dumps(JSON_BODY))
		bad_hex["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["traceId"] = "xyz"
		cases = [
			(b"\xff\xff\xff garbage", PB, None, 400, "invalid protobuf"),
			(bad_len.SerializeToString(), PB, None, 400, "span_id has 3 bytes"),
			(b"not gzip at all", PB, "gzip", 400, "bad gzip"),
			(make_request().SerializeToString(), PB, "br", 400, "unsupported content encoding"),
			(b"{not json", "application/json", None, 400, "invalid JSON"),
			(json.dumps(bad_hex).encode(), "application/json", None, 400, "not hex"),
			(b'{"resourceSpans": 3}', "application/json", None, 400, "must be a list"),
			(b"{}", "text/plain", None, 415, "unsupported content type"),
		]
		for body, ctype, enc, want, text in cases:
			status, hdrs, resp = post(mc.http_url(), body, ctype=ctype, encoding=enc)
			self.assertEqual(status, want, text)
			if ctype == "application/json":
				self.assertEqual(hdrs["Content-Type"], "application/json")
				msg = json.loads(resp)["message"]
			else:
				self.assertEqual(hdrs["Content-Type"], PB)
				msg = status_pb2.Status.FromString(resp).message
			self.assertIn(text, msg)
		reqs = mc.requests()
		self.assertEqual([r["status"] for r in reqs], [c[3] for c in cases])
		self.assertTrue(all(r["action"] == "reject" for r in reqs))
		self.assertEqual(mc.records(), [])
		# rejected bodies do not consume script steps: the first valid request gets the 503
		status, _, _ = post(mc.http_url(), make_request().SerializeToString())
		self.assertEqual(status, 503)

	def test_methods_and_paths(self):
		mc = self.start(extra_args=["--http-path", "/v1/traces"])
		with self.assertRaises(urllib.error.HTTPError) as cm:
			urllib.request.urlopen(mc.http_url(), timeout=10)
		self.assertEqual(cm.exception.code, 405)
		status, _, _ = post(mc.http_url("/v1/other"), make_request().SerializeToString())
		self.assertEqual(status, 404)
		status, _, _ = post(mc.http_url(), make_request().SerializeToString())
		self.assertEqual(status, 200)
		self.assertEqual([r["status"] for r in mc.requests()], [404, 200])

	def test_any_path_by_default(self):
		mc = self.start()
		status, _, _ = post(mc.http_url("/custom/prefix/v1/traces?x=1"),
				    make_request().SerializeToString())
		self.assertEqual(status, 200)
		self.assertEqual(mc.requests()[0]["path"], "/custom/prefix/v1/traces?x=1")


# ---------------------------------------------------------------------------------------------


class ScriptTests(Base):
	def test_statuses_in_order_then_success(self):
		script = "503/ra=2,429,502,504,400,500,grpc=8"
		mc = self.start(script=script)
		body = make_request().SerializeToString()
		got, codes = [], []
		for _ in range(9):
			status, hdrs, resp = post(mc.http_url(), body)
			got.append((status, hdrs.get("Retry-After")))
			if status != 200:
				st = status_pb2.Status.FromString(resp)
				self.assertIn("scripted", st.message)
				codes.append(st.code)
		# google.rpc.Status codes: HTTP mapped to gRPC, and grpc=8 kept as is
		self.assertEqual(codes, [14, 14, 14, 14, 13, 2, 8])
		self.assertEqual(got, [(503, "2"), (429, None), (502, None), (504, None), (400, None),
				       (500, None), (429, None), (200, None), (200, None)])
		reqs = mc.requests()
		self.assertEqual([r["action"] for r in reqs], script.split(",") + ["200", "200"])
		self.assertEqual([r["status"] for r in reqs], [g[0] for g in got])
		# only the two successful requests are recorded
		self.assertEqual(len(mc.records()), 4)
		self.assertEqual({r["req"] for r in mc.records()}, {reqs[7]["req"], reqs[8]["req"]})

	def test_retry_after_date(self):
		mc = self.start(script="503/ra-date=2")
		before = time.time()
		status, hdrs, _ = post(mc.http_url(), make_request().SerializeToString())
		self.assertEqual(status, 503)
		when = email.utils.parsedate_to_datetime(hdrs["Retry-After"]).timestamp()
		self.assertTrue(hdrs["Retry-After"].endswith(" GMT"), hdrs["Retry-After"])
		self.assertGreaterEqual(when - before, 2.0 - 1e-6)
		self.assertLessEqual(when - before, 4.0)

	def test_drop(self):
		mc = self.start(script="drop")
		body = make_request().SerializeToString()
		with self.assertRaises((http.client.RemoteDisconnected, ConnectionResetError,
					urllib.error.URLError)):
			post(mc.http_url(), body)
		status, _, _ = post(mc.http_url(), body)
		self.assertEqual(status, 200)
		reqs = mc.requests()
		self.assertEqual([(r["action"], r["status"]) for r in reqs], [("drop", None), ("200", 200)])
		self.assertEqual({r["req"] for r in mc.records()}, {reqs[1]["req"]})

	def test_delay(self):
		mc = self.start(script="delay=1.2")
		t0 = time.monotonic()
		status, _, _ = post(mc.http_url(), make_request().SerializeToString())
		elapsed = time.monotonic() - t0
		self.assertEqual(status, 200)
		self.assertGreaterEqual(elapsed, 1.2)
		self.assertLess(elapsed, 6)
		self.assertEqual(len(mc.records()), 2)
		self.assertEqual(mc.requests()[0]["action"], "delay=1.2")

	def test_delay_client_gives_up(self):
		mc = self.start(script="delay=1.5")
		with self.assertRaises((socket.timeout, TimeoutError, urllib.error.URLError)):
			post(mc.http_url(), make_request().SerializeToString(), timeout=0.4)
		(rq,) = mc.wait_requests(1, timeout=5)
		self.assertEqual((rq["action"], rq["status"], rq.get("client_gone")),
				 ("delay=1.5", None, True))
		self.assertEqual(mc.records(), [])  # the client never saw a success

	def test_partial_success(self):
		mc = self.start(script="partial=3,partial=1")
		status, hdrs, resp = post(mc.http_url(), make_request().SerializeToString())
		self.assertEqual(status, 200)
		ps = ts.ExportTraceServiceResponse.FromString(resp).partial_success
		self.assertEqual(ps.rejected_spans, 3)
		self.assertIn("rejected", ps.error_message)
		status, hdrs, resp = post(mc.http_url(), json.dumps(JSON_BODY).encode(),
					  ctype="application/json")
		self.assertEqual(status, 200)
		ps = json.loads(resp)["partialSuccess"]
		self.assertEqual(int(ps["rejectedSpans"]), 1)
		self.assertIn("rejected", ps["errorMessage"])
		self.assertEqual(len(mc.records()), 3)  # partial success still records every span

	def test_json_error_body(self):
		mc = self.start(script="503/ra=1")
		status, hdrs, resp = post(mc.http_url(), json.dumps(JSON_BODY).encode(),
					  ctype="application/json")
		self.assertEqual((status, hdrs["Content-Type"], hdrs["Retry-After"]),
				 (503, "application/json", "1"))
		doc = json.loads(resp)
		self.assertEqual(doc["code"], 14)
		self.assertIn("503/ra=1", doc["message"])

	def test_max_requests_exits(self):
		mc = self.start(max_requests=2, script="503")
		body = make_request().SerializeToString()
		self.assertEqual(post(mc.http_url(), body)[0], 503)
		self.assertEqual(post(mc.http_url(), body)[0], 200)
		self.assertEqual(mc.proc.wait(10), 0)
		with self.assertRaises((urllib.error.URLError, ConnectionError)):
			post(mc.http_url(), body, timeout=2)
		self.assertEqual(len(mc.requests()), 2)


# ---------------------------------------------------------------------------------------------


class GrpcTests(Base):
	def channel(self, mc):
		ch = grpc.insecure_channel("127.0.0.1:%d" % mc.grpc_port)
		self.addCleanup(ch.close)
		return ch

	def test_export_recorded(self):
		mc = self.start(http=False, grpc=True)
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request().SerializeToString()
		resp = call(body, metadata=[("x-api-key", "k1")], timeout=10)
		self.assertFalse(ts.ExportTraceServiceResponse.FromString(resp).HasField("partial_success"))
		recs = mc.records()
		self.assertEqual(len(recs), 2)
		self.check_known_spans(recs, "grpc")
		r = recs[0]
		self.assertEqual(r["content_type"], "application/grpc")
		self.assertEqual(r["content_encoding"], "identity")
		self.assertEqual(r["headers"]["x-api-key"], "k1")
		self.assertEqual(r["headers"]["te"], "trailers")  # real HTTP/2 headers, not just metadata
		(rq,) = mc.requests()
		self.assertEqual((rq["transport"], rq["path"], rq["status"], rq["spans"], rq["bytes"]),
				 ("grpc", EXPORT, 0, 2, len(body)))
		self.assertIn("grpc-python", rq["headers"]["user-agent"])

	def test_gzip_compressed_flag(self):
		mc = self.start(http=False, grpc=True)
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request(n_extra=200).SerializeToString()
		call(body, compression=grpc.Compression.Gzip, timeout=10)
		call(body, timeout=10)
		reqs = mc.requests()
		self.assertEqual([r["content_encoding"] for r in reqs], ["gzip", "identity"])
		self.assertEqual(reqs[0]["headers"]["grpc-encoding"], "gzip")
		self.assertLess(reqs[0]["bytes"], len(body) // 4)
		self.assertEqual(reqs[0]["decoded_bytes"], len(body))
		self.assertEqual(reqs[1]["bytes"], len(body))
		recs = mc.records()
		self.assertEqual(len(recs), 404)
		self.assertEqual(recs[0]["content_encoding"], "gzip")
		self.assertEqual(recs[-1]["content_encoding"], "identity")

	def test_script_codes(self):
		mc = self.start(http=False, grpc=True, script="grpc=14/ra=3,503,grpc=3,partial=2,200")
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request().SerializeToString()
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		self.assertIn("grpc=14/ra=3", cm.exception.details())
		md = dict(cm.exception.trailing_metadata())
		st = status_pb2.Status.FromString(md["grpc-status-details-bin"])
		self.assertEqual(st.code, 14)
		anyd = st.details[0]  # a google.protobuf.Any
		self.assertEqual(anyd.type_url, "type.googleapis.com/google.rpc.RetryInfo")
		# RetryInfo{1: Duration}: a 1-byte tag and a 1-byte length, then the Duration
		self.assertEqual(anyd.value[0], 0x0A)
		self.assertEqual(duration_pb2.Duration.FromString(anyd.value[2:]).seconds, 3)
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		self.assertNotIn("grpc-status-details-bin", dict(cm.exception.trailing_metadata()))
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
		ps = ts.ExportTraceServiceResponse.FromString(call(body, timeout=10)).partial_success
		self.assertEqual(ps.rejected_spans, 2)
		call(body, timeout=10)
		reqs = mc.requests()
		self.assertEqual([r["status"] for r in reqs], [14, 14, 3, 0, 0])
		self.assertEqual({r["req"] for r in mc.records()}, {reqs[3]["req"], reqs[4]["req"]})

	def test_drop(self):
		mc = self.start(http=False, grpc=True, script="drop")
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request().SerializeToString()
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		self.assertNotIn("mock collector", cm.exception.details() or "")  # no answer at all
		call(body, timeout=10)  # the channel reconnects
		reqs = mc.requests()
		self.assertEqual([(r["action"], r["status"]) for r in reqs], [("drop", None), ("200", 0)])
		self.assertNotEqual(reqs[0]["peer"], reqs[1]["peer"])  # a new connection
		self.assertEqual(len(mc.records()), 2)

	def test_delay_and_deadline(self):
		mc = self.start(http=False, grpc=True, script="delay=1.5,delay=1")
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request().SerializeToString()
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=0.4)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
		t0 = time.monotonic()
		call(body, timeout=10)
		self.assertGreaterEqual(time.monotonic() - t0, 1.0)
		reqs = mc.wait_requests(2)
		by_action = {r["action"]: r for r in reqs}
		self.assertTrue(by_action["delay=1.5"].get("client_gone"))
		self.assertIsNone(by_action["delay=1.5"]["status"])
		self.assertEqual(by_action["delay=1"]["status"], 0)
		self.assertEqual({r["req"] for r in mc.records()}, {by_action["delay=1"]["req"]})

	def test_malformed_and_unknown_method(self):
		mc = self.start(http=False, grpc=True, script="503")
		ch = self.channel(mc)
		with self.assertRaises(grpc.RpcError) as cm:
			ch.unary_unary(EXPORT)(b"\xff\xff\xff garbage", timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
		with self.assertRaises(grpc.RpcError) as cm:
			ch.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(
				b"", timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
		reqs = mc.requests()
		self.assertEqual([(r["action"], r["status"]) for r in reqs], [("reject", 3), ("reject", 12)])
		# the script step was not consumed by those
		with self.assertRaises(grpc.RpcError) as cm:
			ch.unary_unary(EXPORT)(make_request().SerializeToString(), timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)

	def test_max_requests_exits_after_the_answer(self):
		mc = self.start(http=False, grpc=True, max_requests=2, script="grpc=14")
		call = self.channel(mc).unary_unary(EXPORT)
		body = make_request().SerializeToString()
		with self.assertRaises(grpc.RpcError):
			call(body, timeout=10)
		resp = call(body, timeout=10)  # the last answer still arrives
		self.assertEqual(resp, b"")
		self.assertEqual(mc.proc.wait(10), 0)
		self.assertEqual([r["status"] for r in mc.requests()], [14, 0])

	def test_concurrent_calls_matched_to_their_headers(self):
		mc = self.start(http=False, grpc=True)
		call = self.channel(mc).unary_unary(EXPORT)
		futs = []
		for i in range(12):
			body = make_request(n_extra=100 + i, name_prefix="c%d" % i).SerializeToString()
			comp = grpc.Compression.Gzip if i % 2 == 0 else grpc.Compression.NoCompression
			futs.append(call.future(body, metadata=[("x-idx", str(i))], compression=comp,
						timeout=10))
		for f in futs:
			f.result()
		reqs = mc.requests()
		self.assertEqual(len(reqs), 12)
		for r in reqs:
			i = int(r["headers"]["x-idx"])
			self.assertEqual(r["spans"], 102 + i)
			self.assertEqual(r["content_encoding"], "gzip" if i % 2 == 0 else "identity")
		for rec in mc.records():
			name = rec["span"]["name"]
			if name.startswith("c"):
				self.assertEqual(name.split("-")[0], "c" + rec["headers"]["x-idx"])


# ---------------------------------------------------------------------------------------------


class TlsTests(Base):
	@classmethod
	def setUpClass(cls):
		cls.certs = tempfile.mkdtemp(prefix="mockcoll-certs-")
		sh = os.environ.get("MOCK_CERTS_SH") or os.path.join(HERE, "certs.sh")
		subprocess.run(["sh", sh, cls.certs], check=True)

	@classmethod
	def tearDownClass(cls):
		shutil.rmtree(cls.certs, ignore_errors=True)

	def c(self, name):
		return os.path.join(self.certs, name)

	def read(self, name):
		with open(self.c(name), "rb") as f:
			return f.read()

	def tls_args(self, mtls=False):
		kw = {"tls_cert": self.c("server.crt"), "tls_key": self.c("server.key")}
		if mtls:
			kw["client_ca"] = self.c("ca.crt")
		return kw

	def client_ctx(self, ca="ca.crt", cert=None):
		ctx = ssl.create_default_context(cafile=self.c(ca))
		if cert:
			ctx.load_cert_chain(self.c(cert + ".crt"), self.c(cert + ".key"))
		return ctx

	def test_certs_made(self):
		for name in ("ca", "server", "client", "other-ca", "other-client"):
			self.assertTrue(os.path.getsize(self.c(name + ".crt")) > 0)
			self.assertTrue(os.path.getsize(self.c(name + ".key")) > 0)
		out = subprocess.run(["openssl", "verify", "-CAfile", self.c("ca.crt"),
				      self.c("server.crt"), self.c("client.crt")],
				     capture_output=True, text=True)
		self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
		out = subprocess.run(["openssl", "verify", "-CAfile", self.c("ca.crt"),
				      self.c("other-client.crt")], capture_output=True, text=True)
		self.assertNotEqual(out.returncode, 0)
		out = subprocess.run(["openssl", "x509", "-in", self.c("server.crt"), "-noout", "-ext",
				      "subjectAltName"], capture_output=True, text=True, check=True)
		self.assertIn("DNS:localhost", out.stdout)
		self.assertIn("127.0.0.1", out.stdout)

	def test_https(self):
		mc = self.start(**self.tls_args())
		body = make_request().SerializeToString()
		for host in ("127.0.0.1", "localhost"):
			status, _, _ = post(mc.http_url(host=host), body, context=self.client_ctx())
			self.assertEqual(status, 200)
		with self.assertRaises(urllib.error.URLError) as cm:
			post(mc.http_url(), body, context=self.client_ctx(ca="other-ca.crt"))
		self.assertIsInstance(cm.exception.reason, ssl.SSLCertVerificationError)
		with self.assertRaises((urllib.error.URLError, ConnectionError)):  # plain HTTP to TLS
			post(mc.http_url().replace("https:", "http:"), body, timeout=3)
		self.assertEqual(len(mc.requests()), 2)
		self.assertEqual(len(mc.records()), 4)

	def test_https_mtls(self):
		mc = self.start(**self.tls_args(mtls=True))
		body = make_request().SerializeToString()
		status, _, _ = post(mc.http_url(), body, context=self.client_ctx(cert="client"))
		self.assertEqual(status, 200)
		for cert in (None, "other-client"):
			with self.assertRaises((urllib.error.URLError, ConnectionError, ssl.SSLError),
					       msg="client cert %s accepted" % cert):
				post(mc.http_url(), body, context=self.client_ctx(cert=cert))
		self.assertEqual(len(mc.requests()), 1)
		self.assertIn("TLS handshake", mc.stderr())

	def grpc_call(self, mc, ca="ca.crt", cert=None, script_body=None):
		creds = grpc.ssl_channel_credentials(
			root_certificates=self.read(ca),
			private_key=self.read(cert + ".key") if cert else None,
			certificate_chain=self.read(cert + ".crt") if cert else None)
		ch = grpc.secure_channel("localhost:%d" % mc.grpc_port, creds)
		self.addCleanup(ch.close)
		return ch.unary_unary(EXPORT)

	def test_grpc_tls(self):
		mc = self.start(http=False, grpc=True, script="200,drop", **self.tls_args())
		body = make_request(n_extra=100).SerializeToString()
		call = self.grpc_call(mc)
		call(body, compression=grpc.Compression.Gzip, timeout=10)
		with self.assertRaises(grpc.RpcError) as cm:
			call(body, timeout=10)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		call(body, timeout=10)
		with self.assertRaises(grpc.RpcError) as cm:
			self.grpc_call(mc, ca="other-ca.crt")(body, timeout=5)
		self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		reqs = mc.requests()
		self.assertEqual([r["action"] for r in reqs], ["200", "drop", "200"])
		self.assertEqual(reqs[0]["content_encoding"], "gzip")  # frames seen behind TLS
		self.assertEqual(reqs[0]["headers"]["te"], "trailers")
		self.assertEqual(len(mc.records()), 204)

	def test_grpc_mtls(self):
		mc = self.start(http=False, grpc=True, **self.tls_args(mtls=True))
		body = make_request().SerializeToString()
		self.grpc_call(mc, cert="client")(body, timeout=10)
		for cert in (None, "other-client"):
			with self.assertRaises(grpc.RpcError, msg="client cert %s accepted" % cert) as cm:
				self.grpc_call(mc, cert=cert)(body, timeout=5)
			self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
		self.assertEqual(len(mc.requests()), 1)
		self.assertEqual(len(mc.records()), 2)


# ---------------------------------------------------------------------------------------------


class CurlTests(Base):
	"""curl shares libcurl with the exporter: the same HTTP/1.1 and HTTP/2 (gRPC) paths."""

	def curl(self, *args):
		exe = os.environ.get("MOCK_CURL") or shutil.which("curl")
		out = subprocess.run([exe, "-sS", "--max-time", "10"] + list(args),
				     capture_output=True)
		return out

	def write(self, name, data):
		p = os.path.join(self.tmp, name)
		with open(p, "wb") as f:
			f.write(data)
		return p

	def test_http_gzip_and_retry_after(self):
		mc = self.start(script="503/ra=2")
		body = self.write("body.gz", gzip.compress(make_request().SerializeToString()))
		hdr = os.path.join(self.tmp, "hdr")
		args = ["-H", "Content-Type: " + PB, "-H", "Content-Encoding: gzip", "--data-binary",
			"@" + body, "-D", hdr, "-o", os.devnull, "-w", "%{http_code} %{http_version}",
			mc.http_url()]
		out = self.curl(*args)
		self.assertEqual(out.stdout.decode(), "503 1.1", out.stderr)
		with open(hdr) as f:
			self.assertIn("retry-after: 2", f.read().lower())
		out = self.curl(*args)
		self.assertEqual(out.stdout.decode(), "200 1.1", out.stderr)
		recs = mc.records()
		self.assertEqual(len(recs), 2)
		self.assertEqual(recs[0]["content_encoding"], "gzip")
		self.assertIn("curl/", recs[0]["headers"]["user-agent"])

	def grpc_frame(self, msg, compress=False):
		payload = gzip.compress(msg) if compress else msg
		return bytes([1 if compress else 0]) + len(payload).to_bytes(4, "big") + payload

	def curl_grpc(self, url, frame, extra=(), headers=()):
		hdr = os.path.join(self.tmp, "grpc-hdr")
		body = self.write("frame", frame)
		args = list(extra) + ["-X", "POST", "-H", "Content-Type: application/grpc", "-H",
				      "TE: trailers", "--data-binary", "@" + body, "-D", hdr, "-o",
				      os.path.join(self.tmp, "grpc-out")]
		for h in headers:
			args += ["-H", h]
		out = self.curl(*(args + [url]))
		self.assertEqual(out.returncode, 0, out.stderr)
		with open(hdr) as f:
			lines = [ln.strip().lower() for ln in f if ":" in ln]
		with open(os.path.join(self.tmp, "grpc-out"), "rb") as f:
			resp = f.read()
		return dict(ln.split(": ", 1) for ln in lines if not ln.startswith("http/")), resp

	def test_grpc_over_http2_prior_knowledge(self):
		mc = self.start(http=False, grpc=True, script="grpc=14")
		url = "http://127.0.0.1:%d%s" % (mc.grpc_port, EXPORT)
		msg = make_request(n_extra=30).SerializeToString()
		h, _ = self.curl_grpc(url, self.grpc_frame(msg), ["--http2-prior-knowledge"])
		self.assertEqual(h.get("grpc-status"), "14")
		h, resp = self.curl_grpc(url, self.grpc_frame(msg, compress=True),
					 ["--http2-prior-knowledge"],
					 ["grpc-encoding: gzip", "x-api-key: k2"])
		self.assertEqual(h.get("grpc-status"), "0")
		self.assertEqual(resp[:5], b"\x00\x00\x00\x00\x00")  # empty ExportTraceServiceResponse
		reqs = mc.requests()
		self.assertEqual([(r["status"], r["content_encoding"]) for r in reqs],
				 [(14, "identity"), (0, "gzip")])
		self.assertEqual(reqs[1]["headers"]["x-api-key"], "k2")
		self.assertEqual(len(mc.records()), 32)

	def test_grpc_over_tls_with_client_cert(self):
		certs = os.path.join(self.tmp, "certs")
		subprocess.run(["sh", os.environ.get("MOCK_CERTS_SH") or os.path.join(HERE, "certs.sh"),
				certs], check=True)
		c = lambda n: os.path.join(certs, n)  # noqa: E731
		mc = self.start(http=False, grpc=True, tls_cert=c("server.crt"), tls_key=c("server.key"),
				client_ca=c("ca.crt"))
		url = "https://localhost:%d%s" % (mc.grpc_port, EXPORT)
		msg = make_request().SerializeToString()
		h, _ = self.curl_grpc(url, self.grpc_frame(msg), ["--http2", "--cacert", c("ca.crt"),
								 "--cert", c("client.crt"), "--key",
								 c("client.key")])
		self.assertEqual(h.get("grpc-status"), "0")
		out = self.curl("--http2", "--cacert", c("ca.crt"), "-o", os.devnull, "--data-binary",
				"x", url)
		self.assertNotEqual(out.returncode, 0)  # no client certificate
		self.assertEqual(len(mc.records()), 2)


# ---------------------------------------------------------------------------------------------


class CliTests(Base):
	def run_collector(self, *args, env=None, timeout=15):
		python = os.environ.get("MOCK_PYTHON") or "/usr/bin/python3"
		collector = os.environ.get("MOCK_COLLECTOR") or os.path.join(HERE, "mock_collector.py")
		return subprocess.run([python, collector] + list(args), capture_output=True, text=True,
				      timeout=timeout, env=env)

	def test_sigterm_is_clean(self):
		mc = self.start(grpc=True)
		post(mc.http_url(), make_request().SerializeToString())
		with open(mc.port_file) as f:
			ports = json.load(f)
		self.assertEqual(set(ports), {"http", "grpc"})
		self.assertTrue(all(isinstance(p, int) and p > 0 for p in ports.values()))
		self.assertEqual(sorted(os.listdir(self.tmp)), sorted(
			os.path.basename(p) for p in (mc.port_file, mc.record_path, mc.requests_path,
						      mc.log_path)))  # no temporary port file left
		t0 = time.monotonic()
		self.assertEqual(mc.stop(), 0)
		self.assertLess(time.monotonic() - t0, 5)
		self.assertIn("stopped after 1 requests", mc.stderr())
		self.assertEqual(len(read_jsonl(mc.record_path)), 2)

	def test_stderr_line_per_request(self):
		mc = self.start(script="503")
		body = make_request().SerializeToString()
		for _ in range(3):
			post(mc.http_url(), body)
		lines = [ln for ln in mc.stderr().splitlines() if " http POST " in ln or "#" in ln]
		self.assertEqual(len(lines), 3, mc.stderr())
		self.assertIn("-> 503", lines[0])
		self.assertIn("-> 200", lines[1])

	def test_fixed_port_and_http_only(self):
		s = socket.socket()
		s.bind(("127.0.0.1", 0))
		port = s.getsockname()[1]
		s.close()
		mc = self.start(http_port=port)
		self.assertEqual((mc.http_port, mc.grpc_port), (port, None))
		self.assertEqual(post(mc.http_url(), b"")[0], 200)

	def test_port_in_use(self):
		s = socket.socket()
		s.bind(("127.0.0.1", 0))
		s.listen(1)
		self.addCleanup(s.close)
		out = self.run_collector("--proto-py", PROTO_PY, "--http", str(s.getsockname()[1]))
		self.assertEqual(out.returncode, 2)
		self.assertIn("cannot listen", out.stderr)

	def test_bad_arguments(self):
		env = dict(os.environ, MOCK_PROTO_PY="")
		cases = [
			(["--proto-py", PROTO_PY, "--http", "0", "--script", "200,bogus"], "unknown step"),
			(["--proto-py", PROTO_PY, "--http", "0", "--script", "grpc=99"], "0 to 16"),
			(["--proto-py", PROTO_PY], "nothing to serve"),
			(["--http", "0"], "mock_collector_py"),
			(["--proto-py", self.tmp, "--http", "0"], "mock_collector_py"),
			(["--proto-py", PROTO_PY, "--http", "0", "--tls-cert", "/nonexistent"],
			 "go together"),
			(["--proto-py", PROTO_PY, "--http", "0", "--tls-cert", "/nonexistent",
			  "--tls-key", "/nonexistent"], "certs.sh"),
		]
		for args, text in cases:
			out = self.run_collector(*args, env=env)
			self.assertEqual(out.returncode, 2, args)
			self.assertIn(text, out.stderr, args)

	def test_proto_dir_from_argument(self):
		env = dict(os.environ, MOCK_PROTO_PY="")
		port_file = os.path.join(self.tmp, "p.json")
		python = os.environ.get("MOCK_PYTHON") or "/usr/bin/python3"
		collector = os.environ.get("MOCK_COLLECTOR") or os.path.join(HERE, "mock_collector.py")
		p = subprocess.Popen([python, collector, "--proto-py", PROTO_PY, "--http", "0",
				      "--port-file", port_file, "--max-requests", "1"], env=env,
				     stderr=subprocess.DEVNULL)
		try:
			deadline = time.time() + 15
			while not os.path.exists(port_file) and time.time() < deadline:
				time.sleep(0.02)
			with open(port_file) as f:
				port = json.load(f)["http"]
			status, _, _ = post("http://127.0.0.1:%d/v1/traces" % port, b"")
			self.assertEqual(status, 200)
			self.assertEqual(p.wait(10), 0)
		finally:
			if p.poll() is None:
				p.kill()
				p.wait()


GROUPS = {"http": HttpTests, "script": ScriptTests, "grpc": GrpcTests, "tls": TlsTests,
	  "curl": CurlTests, "cli": CliTests}


def main():
	args = [a for a in sys.argv[1:] if not a.startswith("-")]
	verbosity = 2 if "-v" in sys.argv else 1
	names = args or ["all"]
	loader = unittest.TestLoader()
	suite = unittest.TestSuite()
	for n in names:
		for g in (GROUPS.values() if n == "all" else [GROUPS[n]]):
			suite.addTests(loader.loadTestsFromTestCase(g))
	result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
	sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)


if __name__ == "__main__":
	main()
