#!/usr/bin/python3
"""Integration tests of the OTLP exporter: the real cln-otlp binary against the mock collector.

Each group is one CTest (export_<group>): `test_export.py -v GROUP`. Environment (set by
tests/export/CMakeLists.txt): CLN_OTLP (the binary), TRACE_DIR (tests/data/cln-v26-startup),
MOCK_COLLECTOR, MOCK_PROTO_PY, MOCK_PYTHON, MOCK_CERTS_SH, MOCK_COLLECTOR_PY_DIR.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.environ.get("MOCK_COLLECTOR_PY_DIR") or
		os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "collector"))
from mockcoll import MockCollector  # noqa: E402

CLN_OTLP = os.environ.get("CLN_OTLP", "cln-otlp")
TRACE_DIR = os.environ.get("TRACE_DIR") or os.path.join(
	os.path.dirname(os.path.abspath(__file__)), "..", "data", "cln-v26-startup")
SECRET = "s3cr3t-T0ken-value-4711"  # a header value: must never reach stderr


def trace_files():
	files = sorted(glob.glob(os.path.join(TRACE_DIR, "lightningd-trace.*")))
	if not files:
		raise RuntimeError("no trace files in %s" % TRACE_DIR)
	return files


def expected_spans():
	"""Independent reading of the capture: span id -> what the collector must see."""
	out = {}
	for path in trace_files():
		with open(path, errors="replace") as f:
			for line in f:
				if not line.startswith("span_emit "):
					continue
				_, sid, payload = line.rstrip("\n").split(" ", 2)
				try:
					s = json.loads(payload)[0]
				except ValueError:
					# CLN does not escape; keep what is certain
					out[sid] = {"id": sid, "loose": True}
					continue
				out[s["id"]] = s
	return out


EXPECTED = None


def expected():
	global EXPECTED
	if EXPECTED is None:
		EXPECTED = expected_spans()
	return EXPECTED


class Base(unittest.TestCase):
	def setUp(self):
		self.tmp = tempfile.mkdtemp(prefix="export-test-")
		self.collectors = []
		self.outputs = []

	def tearDown(self):
		for c in self.collectors:
			c.stop()
		if self._outcome_ok():
			shutil.rmtree(self.tmp, ignore_errors=True)
		else:
			for c in self.collectors:
				sys.stderr.write("--- collector stderr (%s):\n%s" % (self.tmp, c.stderr()))
			for argv, err in self.outputs:
				sys.stderr.write("--- %s\n%s" % (" ".join(argv), err))

	def _outcome_ok(self):
		res = getattr(self._outcome, "result", None)
		if res is None:
			return True
		return not any(t is self for t, _ in res.failures + res.errors)

	def start(self, **kw):
		c = MockCollector(self.tmp, name="c%d" % len(self.collectors), **kw)
		self.collectors.append(c)
		return c.start()

	def run_export(self, endpoint, protocol="http/protobuf", args=(), files=None, timeout=90,
		       env=None):
		"""Run cln-otlp on the capture; returns (exit status, stderr, seconds)."""
		argv = [CLN_OTLP, "--exporter", "otlp", "--endpoint", endpoint, "--protocol", protocol]
		for f in files or trace_files():
			argv += ["--file", f]
		argv += list(args)
		e = dict(os.environ)
		for k in list(e):
			if k.startswith("OTEL_"):
				del e[k]
		e.update(env or {})
		t0 = time.time()
		p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
				   stderr=subprocess.PIPE, timeout=timeout, env=e)
		dt = time.time() - t0
		err = p.stderr.decode(errors="replace")
		self.outputs.append((argv, err))
		return p.returncode, err, dt

	def check_all_spans(self, recs):
		"""Every span of the capture arrived once, intact."""
		exp = expected()
		got = {}
		for r in recs:
			sid = r["span"]["spanId"]
			self.assertNotIn(sid, got, "span %s delivered twice" % sid)
			got[sid] = r
		self.assertEqual(sorted(got), sorted(exp), "spans missing or unexpected")
		for sid, s in exp.items():
			if s.get("loose"):
				continue
			r = got[sid]
			sp = r["span"]
			tid = s["traceId"]
			self.assertEqual(sp["traceId"], tid.rjust(32, "0"))
			self.assertEqual(sp["parentSpanId"], s.get("parentId", "") if
					 s.get("parentId") != sid else "")
			self.assertEqual(sp["name"], s["name"])
			start = s["timestamp"] * 1000
			self.assertEqual(int(sp["startTimeUnixNano"]), start)
			self.assertEqual(int(sp["endTimeUnixNano"]), start + s["duration"] * 1000)
			attrs = {a["key"]: a["value"].get("stringValue") for a in sp["attributes"]}
			for k, v in s.get("tags", {}).items():
				if k == "error" and v == "true":
					self.assertNotIn(k, attrs)
					self.assertEqual(sp["status"]["code"], 2)
				else:
					self.assertEqual(attrs.get(k), v, "span %s tag %s" % (sid, k))
			self.assertEqual(r["resource"].get("service.name"), "lightningd")
			self.assertEqual(r["scope"]["name"], "cln-otlp")
		return got


def status_of(req):
	return req["status"]


# ---------------------------------------------------------------------------------------------


class ProtocolTests(Base):
	"""The whole capture over each protocol, gzip on and off, with a configured header."""

	def deliver(self, protocol, gzip):
		mc = self.start(http=protocol != "grpc", grpc=protocol == "grpc")
		url = ("http://127.0.0.1:%d" % mc.grpc_port if protocol == "grpc"
		       else "http://127.0.0.1:%d" % mc.http_port)
		args = ["--header", "x-test-token=" + SECRET, "--compression",
			"gzip" if gzip else "none", "--batch-size", "128"]
		rc, err, _ = self.run_export(url, protocol, args)
		self.assertEqual(rc, 0, err)
		recs = mc.records()
		self.check_all_spans(recs)
		reqs = mc.requests()
		self.assertGreaterEqual(len(reqs), 5)  # 610 spans in batches of at most 128
		for q in reqs:
			self.assertEqual(q["status"], 0 if protocol == "grpc" else 200)
			self.assertEqual(q["headers"].get("x-test-token"), SECRET)
			self.assertTrue(q["headers"].get("user-agent", "").startswith("cln-otlp/"), q)
			self.assertLessEqual(q["spans"], 128)
			self.assertEqual(q["content_encoding"], "gzip" if gzip else "identity")
			if protocol == "grpc":
				self.assertEqual(q["path"],
						 "/opentelemetry.proto.collector.trace.v1.TraceService/Export")
				self.assertTrue(q["content_type"].startswith("application/grpc"))
				if "te" in q["headers"]:  # HTTP/2 headers seen (python3-hpack present)
					self.assertEqual(q["headers"]["te"], "trailers")
					self.assertRegex(q["headers"]["grpc-timeout"], r"^\d+[mS]$")
			else:
				self.assertEqual(q["path"], "/v1/traces")
				self.assertEqual(q["content_type"], "application/json"
						 if protocol == "http/json" else "application/x-protobuf")
				if gzip:
					self.assertLess(q["bytes"], q["decoded_bytes"])
		self.assertEqual(sum(q["spans"] for q in reqs), len(expected()))
		self.assertIn("exported=%d" % len(expected()), err)
		return reqs

	def test_http_protobuf(self):
		self.deliver("http/protobuf", False)

	def test_http_protobuf_gzip(self):
		self.deliver("http/protobuf", True)

	def test_http_json(self):
		self.deliver("http/json", False)

	def test_http_json_gzip(self):
		self.deliver("http/json", True)

	def test_grpc(self):
		self.deliver("grpc", False)

	def test_grpc_gzip(self):
		self.deliver("grpc", True)

	def test_http_keepalive(self):
		"""One request at a time: every request goes over the same kept-alive connection."""
		mc = self.start(http=True)
		rc, err, _ = self.run_export(mc.http_url(""), "http/protobuf",
					     ["--batch-size", "64", "--max-inflight", "1"])
		self.assertEqual(rc, 0, err)
		reqs = mc.requests()
		self.assertGreaterEqual(len(reqs), 10)
		self.assertEqual(len({q["peer"] for q in reqs}), 1, [q["peer"] for q in reqs])

	def test_headers_from_environment(self):
		mc = self.start(http=True)
		rc, err, _ = self.run_export(mc.http_url(""), env={
			"OTEL_EXPORTER_OTLP_HEADERS": "x-env-token=" + SECRET + ",x-second=two"})
		self.assertEqual(rc, 0, err)
		for q in mc.requests():
			self.assertEqual(q["headers"].get("x-env-token"), SECRET)
			self.assertEqual(q["headers"].get("x-second"), "two")


class RetryTests(Base):
	"""What is retried, when, and what is not."""

	def one_batch(self, mc, url=None, protocol="http/protobuf", args=()):
		url = url or mc.http_url("")
		return self.run_export(url, protocol, ["--batch-size", "1000"] + list(args))

	def test_503_retry_after_seconds(self):
		mc = self.start(http=True, script="503/ra=2")
		rc, err, _ = self.one_batch(mc)
		self.assertEqual(rc, 0, err)
		reqs = mc.requests()
		self.assertEqual([q["status"] for q in reqs], [503, 200])
		gap = reqs[1]["t"] - reqs[0]["t"]
		self.assertGreaterEqual(gap, 2.0)  # the first backoff would be 1 s
		self.assertLess(gap, 4.0)
		self.check_all_spans(mc.records())
		self.assertIn("retries=1", err)

	def test_503_retry_after_date(self):
		mc = self.start(http=True, script="503/ra-date=2")
		rc, err, _ = self.one_batch(mc)
		self.assertEqual(rc, 0, err)
		reqs = mc.requests()
		self.assertEqual([q["status"] for q in reqs], [503, 200])
		gap = reqs[1]["t"] - reqs[0]["t"]
		self.assertGreaterEqual(gap, 1.9)  # an HTTP date has whole seconds
		self.assertLess(gap, 5.0)
		self.check_all_spans(mc.records())

	def test_retryable_statuses(self):
		mc = self.start(http=True, script="429,502,504")
		rc, err, _ = self.one_batch(mc, args=["--max-inflight", "1"])
		self.assertEqual(rc, 0, err)
		self.assertEqual([q["status"] for q in mc.requests()], [429, 502, 504, 200])
		self.check_all_spans(mc.records())
		# backoff: at least the initial second between attempts
		reqs = mc.requests()
		for a, b in zip(reqs, reqs[1:]):
			self.assertGreaterEqual(b["t"] - a["t"], 0.95)

	def test_400_not_retried(self):
		mc = self.start(http=True, script="400")
		rc, err, _ = self.one_batch(mc)
		self.assertNotEqual(rc, 0)
		time.sleep(0.3)
		reqs = mc.requests()
		self.assertEqual([q["status"] for q in reqs], [400])
		self.assertIn("HTTP 400", err)
		self.assertIn("mock collector: scripted 400", err)  # google.rpc.Status message
		self.assertIn("not retried", err)
		self.assertEqual(mc.records(), [])

	def test_other_errors_not_retried(self):
		for status in (401, 403, 404, 413, 500):
			mc = self.start(http=True, script=str(status))
			rc, err, _ = self.one_batch(mc)
			self.assertNotEqual(rc, 0, status)
			self.assertEqual([q["status"] for q in mc.requests()], [status])
			self.assertIn("HTTP %d" % status, err)
			mc.stop()

	def test_json_error_message(self):
		mc = self.start(http=True, script="403")
		rc, err, _ = self.one_batch(mc, protocol="http/json")
		self.assertNotEqual(rc, 0)
		self.assertIn("HTTP 403: mock collector: scripted 403", err)

	def test_drop_retried(self):
		mc = self.start(http=True, script="drop")
		rc, err, _ = self.one_batch(mc)
		self.assertEqual(rc, 0, err)
		self.assertEqual([q["status"] for q in mc.requests()], [None, 200])
		self.check_all_spans(mc.records())

	def test_grpc_drop_retried(self):
		mc = self.start(http=False, grpc=True, script="drop")
		rc, err, _ = self.one_batch(mc, "http://127.0.0.1:%d" % mc.grpc_port, "grpc")
		self.assertEqual(rc, 0, err)
		self.assertEqual([q["status"] for q in mc.requests()], [None, 0])
		self.check_all_spans(mc.records())

	def test_connection_refused_then_up(self):
		"""Nothing listens at first: connection failures are retried until it comes up."""
		probe = self.start(http=True)
		port = probe.http_port
		probe.stop()
		argv_url = "http://127.0.0.1:%d" % port
		argv = [CLN_OTLP, "--exporter", "otlp", "--endpoint", argv_url, "--batch-size", "1000"]
		for f in trace_files():
			argv += ["--file", f]
		p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		time.sleep(1.5)
		mc = self.start(http=True, http_port=port)
		try:
			_, errb = p.communicate(timeout=60)
		finally:
			if p.poll() is None:
				p.kill()
		err = errb.decode(errors="replace")
		self.outputs.append((argv, err))
		self.assertEqual(p.returncode, 0, err)
		self.assertRegex(err, r"(Couldn't connect|Connection refused|connect)")
		self.check_all_spans(mc.records())

	def test_timeout_retried(self):
		mc = self.start(http=True, script="delay=3")
		rc, err, _ = self.one_batch(mc, args=["--timeout", "1000"])
		self.assertEqual(rc, 0, err)
		self.assertIn("Timeout was reached", err)
		mc.wait_requests(2, timeout=10)  # the delayed one is logged when its delay ends
		reqs = sorted(mc.requests(), key=lambda q: q["req"])
		self.assertEqual([q["status"] for q in reqs], [None, 200])
		self.assertTrue(reqs[0].get("client_gone"))
		self.assertGreaterEqual(reqs[1]["t"] - reqs[0]["t"], 1.9)  # 1 s timeout + 1 s backoff
		self.check_all_spans(mc.records())

	def test_budget_expires(self):
		mc = self.start(http=True, script=",".join(["503"] * 20))
		rc, err, dt = self.one_batch(mc, args=["--retry-max-elapsed", "2500"])
		self.assertNotEqual(rc, 0)
		self.assertIn("giving up", err)
		self.assertLess(dt, 8)
		n = len(mc.requests())
		self.assertGreaterEqual(n, 2)
		self.assertLessEqual(n, 4)  # waits of >= 1 s in a 2.5 s budget
		self.assertEqual(mc.records(), [])


class PartialTests(Base):
	def check_partial(self, protocol):
		mc = self.start(http=protocol != "grpc", grpc=protocol == "grpc", script="partial=3")
		url = ("http://127.0.0.1:%d" % mc.grpc_port if protocol == "grpc"
		       else mc.http_url(""))
		rc, err, _ = self.run_export(url, protocol, ["--batch-size", "1000"])
		# the collector kept all but 3: counted, not retried, reported
		self.assertEqual(len(mc.requests()), 1)
		self.assertIn("rejected 3 of 610 spans", err)
		self.assertIn("mock collector: 3 spans rejected", err)
		self.assertIn("exported=607", err)
		self.assertIn("3 refused by the collector", err)
		self.assertEqual(rc, 1)

	def test_http_protobuf(self):
		self.check_partial("http/protobuf")

	def test_http_json(self):
		self.check_partial("http/json")

	def test_grpc(self):
		self.check_partial("grpc")


class GrpcStatusTests(Base):
	def grpc(self, script, args=()):
		mc = self.start(http=False, grpc=True, script=script)
		rc, err, _ = self.run_export("http://127.0.0.1:%d" % mc.grpc_port, "grpc",
					     ["--batch-size", "1000"] + list(args))
		return mc, rc, err

	def test_unavailable_retried(self):
		mc, rc, err = self.grpc("grpc=14")
		self.assertEqual(rc, 0, err)
		reqs = mc.requests()
		self.assertEqual([q["status"] for q in reqs], [14, 0])
		self.assertGreaterEqual(reqs[1]["t"] - reqs[0]["t"], 0.95)
		self.assertIn("UNAVAILABLE", err)
		self.check_all_spans(mc.records())

	def test_retryable_codes(self):
		mc, rc, err = self.grpc("grpc=1,grpc=4,grpc=10,grpc=11,grpc=15",
					["--retry-max-elapsed", "120000"])
		self.assertEqual(rc, 0, err)
		self.assertEqual([q["status"] for q in mc.requests()], [1, 4, 10, 11, 15, 0])
		self.check_all_spans(mc.records())

	def test_invalid_argument_not_retried(self):
		mc, rc, err = self.grpc("grpc=3")
		self.assertNotEqual(rc, 0)
		time.sleep(0.3)
		self.assertEqual([q["status"] for q in mc.requests()], [3])
		self.assertIn("INVALID_ARGUMENT", err)
		self.assertIn("mock collector: scripted grpc=3", err)  # grpc-message, decoded
		self.assertEqual(mc.records(), [])

	def test_resource_exhausted_with_retry_info(self):
		mc, rc, err = self.grpc("grpc=8/ra=2")
		self.assertEqual(rc, 0, err)
		reqs = mc.requests()
		self.assertEqual([q["status"] for q in reqs], [8, 0])
		self.assertGreaterEqual(reqs[1]["t"] - reqs[0]["t"], 2.0)
		self.check_all_spans(mc.records())

	def test_resource_exhausted_without_retry_info(self):
		mc, rc, err = self.grpc("grpc=8")
		self.assertNotEqual(rc, 0)
		self.assertEqual([q["status"] for q in mc.requests()], [8])
		self.assertIn("RESOURCE_EXHAUSTED", err)

	def test_unimplemented_path(self):
		"""A wrong base path gives UNIMPLEMENTED: reported, not retried."""
		mc = self.start(http=False, grpc=True)
		rc, err, _ = self.run_export("http://127.0.0.1:%d/prefix" % mc.grpc_port, "grpc",
					     ["--batch-size", "1000"])
		self.assertNotEqual(rc, 0)
		self.assertIn("UNIMPLEMENTED", err)
		self.assertEqual(len(mc.requests()), 1)


class TlsTests(Base):
	@classmethod
	def setUpClass(cls):
		cls.certs = tempfile.mkdtemp(prefix="export-certs-")
		certs_sh = os.environ.get("MOCK_CERTS_SH") or os.path.join(
			os.path.dirname(os.path.abspath(__file__)), "..", "collector", "certs.sh")
		subprocess.run(["sh", certs_sh, cls.certs], check=True)

	@classmethod
	def tearDownClass(cls):
		shutil.rmtree(cls.certs, ignore_errors=True)

	def c(self, name):
		return os.path.join(self.certs, name)

	def tls_collector(self, mtls=False, **kw):
		return self.start(tls_cert=self.c("server.crt"), tls_key=self.c("server.key"),
				  client_ca=self.c("ca.crt") if mtls else None, **kw)

	def test_https_with_ca(self):
		mc = self.tls_collector(http=True)
		rc, err, _ = self.run_export("https://localhost:%d" % mc.http_port, "http/protobuf",
					     ["--ca-cert", self.c("ca.crt")])
		self.assertEqual(rc, 0, err)
		self.check_all_spans(mc.records())

	def test_grpc_tls_with_ca(self):
		mc = self.tls_collector(http=False, grpc=True)
		rc, err, _ = self.run_export("https://localhost:%d" % mc.grpc_port, "grpc",
					     ["--ca-cert", self.c("ca.crt"), "--batch-size", "100",
					      "--compression", "gzip"])
		self.assertEqual(rc, 0, err)
		self.check_all_spans(mc.records())
		# HTTP/2 over TLS: every request multiplexed on one connection
		self.assertEqual(len({q["peer"] for q in mc.requests()}), 1)

	def test_wrong_ca_refused(self):
		for proto, port_of in (("http/protobuf", "http_port"), ("grpc", "grpc_port")):
			mc = self.tls_collector(http=True, grpc=True)
			rc, err, dt = self.run_export("https://localhost:%d" % getattr(mc, port_of), proto,
						      ["--ca-cert", self.c("other-ca.crt")])
			self.assertNotEqual(rc, 0, proto)
			self.assertIn("not trusted", err)
			self.assertIn("--ca-cert", err)
			self.assertLess(dt, 10)  # not retried
			self.assertEqual(mc.requests(), [])
			mc.stop()

	def test_no_ca_refused(self):
		"""Verification is on by default: the system store does not know the test CA."""
		mc = self.tls_collector(http=True)
		rc, err, _ = self.run_export("https://localhost:%d" % mc.http_port)
		self.assertNotEqual(rc, 0)
		self.assertIn("not trusted", err)
		self.assertEqual(mc.requests(), [])

	def test_insecure_skips_verification(self):
		mc = self.tls_collector(http=True)
		rc, err, _ = self.run_export("https://localhost:%d" % mc.http_port, "http/protobuf",
					     ["--insecure"])
		self.assertEqual(rc, 0, err)
		self.assertIn("verification is OFF", err)
		self.check_all_spans(mc.records())

	def test_mtls(self):
		for proto, port_of in (("http/protobuf", "http_port"), ("grpc", "grpc_port")):
			mc = self.tls_collector(mtls=True, http=True, grpc=True)
			rc, err, _ = self.run_export("https://localhost:%d" % getattr(mc, port_of), proto,
						     ["--ca-cert", self.c("ca.crt"), "--client-cert",
						      self.c("client.crt"), "--client-key",
						      self.c("client.key")])
			self.assertEqual(rc, 0, err)
			self.check_all_spans(mc.records())
			mc.stop()

	def test_mtls_without_client_cert_fails(self):
		mc = self.tls_collector(mtls=True, http=True)
		rc, err, dt = self.run_export("https://localhost:%d" % mc.http_port, "http/protobuf",
					      ["--ca-cert", self.c("ca.crt"), "--retry-max-elapsed",
					       "3000"])
		self.assertNotEqual(rc, 0)
		self.assertEqual(mc.records(), [])
		self.assertLess(dt, 15)

	def test_mtls_wrong_client_cert_fails(self):
		mc = self.tls_collector(mtls=True, http=True)
		rc, err, _ = self.run_export("https://localhost:%d" % mc.http_port, "http/protobuf",
					     ["--ca-cert", self.c("ca.crt"), "--client-cert",
					      self.c("other-client.crt"), "--client-key",
					      self.c("other-client.key"), "--retry-max-elapsed", "3000"])
		self.assertNotEqual(rc, 0)
		self.assertEqual(mc.records(), [])

	def test_grpc_needs_h2(self):
		"""A TLS server that only speaks HTTP/1.1 (ALPN): gRPC says so, no retry."""
		mc = self.tls_collector(http=True)
		rc, err, dt = self.run_export("https://localhost:%d" % mc.http_port, "grpc",
					      ["--ca-cert", self.c("ca.crt"), "--batch-size", "1000"])
		self.assertNotEqual(rc, 0)
		self.assertIn("HTTP/2", err)
		self.assertLess(dt, 10)
		self.assertEqual(len(mc.requests()), 1)

	def test_unreadable_files_at_start(self):
		missing = os.path.join(self.certs, "nope.crt")
		for flag in ("--ca-cert", "--client-cert", "--client-key"):
			args = [flag, missing]
			if flag == "--client-key":
				args += ["--client-cert", self.c("client.crt")]
			rc, err, dt = self.run_export("https://localhost:1", "http/protobuf", args)
			self.assertEqual(rc, 2, err)
			self.assertIn(missing, err)
			self.assertIn(flag, err)
			self.assertLess(dt, 5)


class OutageTests(Base):
	"""A collector that is down for a while (slow: about two minutes)."""

	def test_outage_60s(self):
		"""Down for 60 s, then up: every span arrives, with a bounded number of attempts."""
		probe = self.start(http=True)
		port = probe.http_port
		probe.stop()
		argv = [CLN_OTLP, "--exporter", "otlp", "--endpoint", "http://127.0.0.1:%d" % port,
			"--batch-size", "100"]
		for f in trace_files():
			argv += ["--file", f]
		t0 = time.time()
		p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		try:
			time.sleep(60)
			self.assertIsNone(p.poll(), "cln-otlp gave up during the outage")
			mc = self.start(http=True, http_port=port)
			up = time.time()
			_, errb = p.communicate(timeout=120)
		finally:
			if p.poll() is None:
				p.kill()
				p.wait()
		err = errb.decode(errors="replace")
		self.outputs.append((argv, err))
		self.assertEqual(p.returncode, 0, err)
		self.check_all_spans(mc.records())
		# the next attempt comes at most one maximum wait (30 s) after the collector is back
		self.assertLess(time.time() - up, 35)
		m = re.search(r"retries=(\d+)", err)
		self.assertIsNotNone(m, err)
		# 7 batches (4 at a time), exponential backoff: a few attempts each, not hundreds
		self.assertGreater(int(m.group(1)), 7)
		self.assertLess(int(m.group(1)), 7 * 15)
		# rate-limited: far fewer warning lines than attempts
		self.assertLess(err.count("retrying in"), 20)
		self.assertGreater(time.time() - t0, 60)

	def test_sigterm_during_outage(self):
		"""Stopped while the collector is down: gives up after the shutdown timeout."""
		probe = self.start(http=True)
		port = probe.http_port
		probe.stop()
		argv = [CLN_OTLP, "--exporter", "otlp", "--endpoint", "http://127.0.0.1:%d" % port,
			"--batch-size", "100", "--follow", "--shutdown-timeout", "2000"]
		for f in trace_files():
			argv += ["--file", f]
		p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
		try:
			time.sleep(2)
			self.assertIsNone(p.poll())
			p.send_signal(signal.SIGTERM)
			t0 = time.time()
			_, errb = p.communicate(timeout=30)
			dt = time.time() - t0
		finally:
			if p.poll() is None:
				p.kill()
				p.wait()
		err = errb.decode(errors="replace")
		self.outputs.append((argv, err))
		self.assertEqual(p.returncode, 1, err)
		self.assertGreaterEqual(dt, 1.9)  # it did try for the shutdown timeout
		self.assertLess(dt, 6)
		self.assertIn("610 spans were not delivered", err)
		self.assertRegex(err, r"drop_shutdown=\d+")


class SecretTests(Base):
	"""Header values never reach the logs, whatever happens and however verbose."""

	def check_no_secret(self, err):
		self.assertNotIn(SECRET, err)
		self.assertNotIn(SECRET[:12], err)

	def test_secret_not_logged(self):
		cases = [("http/protobuf", "200"), ("http/protobuf", "400"), ("http/json", "503/ra=1"),
			 ("http/protobuf", "drop"), ("grpc", "grpc=14"), ("grpc", "grpc=16")]
		for proto, script in cases:
			mc = self.start(http=proto != "grpc", grpc=proto == "grpc", script=script)
			url = ("http://127.0.0.1:%d" % mc.grpc_port if proto == "grpc"
			       else mc.http_url(""))
			rc, err, _ = self.run_export(url, proto, [
				"-v", "--header", "authorization=Bearer " + SECRET, "--header",
				"x-api-key=" + SECRET, "--batch-size", "1000"],
				env={"OTEL_EXPORTER_OTLP_HEADERS": "x-env-key=" + SECRET})
			self.check_no_secret(err)
			self.assertIn("x-api-key", err)  # names are fine, and shown with -v
			reqs = mc.requests()
			self.assertTrue(reqs)
			self.assertEqual(reqs[0]["headers"].get("x-api-key"), SECRET)
			self.assertEqual(reqs[0]["headers"].get("authorization"), "Bearer " + SECRET)
			mc.stop()

	def test_secret_not_logged_on_tls_failure(self):
		mc = self.start(http=True)
		# https to a plain-http port: a TLS error, logged with curl's error text
		rc, err, _ = self.run_export("https://127.0.0.1:%d" % mc.http_port, "http/protobuf", [
			"-v", "--header", "x-api-key=" + SECRET, "--retry-max-elapsed", "1500"])
		self.assertNotEqual(rc, 0)
		self.check_no_secret(err)


GROUPS = {"protocols": ProtocolTests, "retry": RetryTests, "partial": PartialTests,
	  "grpc_status": GrpcStatusTests, "tls": TlsTests, "secrets": SecretTests,
	  "outage": OutageTests}


def main():
	args = [a for a in sys.argv[1:] if not a.startswith("-")]
	verbosity = 2 if "-v" in sys.argv else 1
	names = args or ["all"]
	loader = unittest.TestLoader()
	suite = unittest.TestSuite()
	for n in names:
		if "." in n:  # GROUP.test_name
			g, t = n.split(".", 1)
			suite.addTest(GROUPS[g](t))
			continue
		for g in (GROUPS.values() if n == "all" else [GROUPS[n]]):
			suite.addTests(loader.loadTestsFromTestCase(g))
	result = unittest.TextTestRunner(verbosity=verbosity).run(suite)
	sys.exit(0 if result.wasSuccessful() and result.testsRun > 0 else 1)


if __name__ == "__main__":
	main()
