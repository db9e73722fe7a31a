"""Start and read the mock OTLP collector from Python tests.

    import sys; sys.path.insert(0, "<repo>/tests/collector")   # CMake: ${MOCK_COLLECTOR_PY_DIR}
    from mockcoll import MockCollector

    with MockCollector(workdir, http=True, grpc=True, script="503/ra=1,200") as mc:
        ...send to mc.http_url() or 127.0.0.1:mc.grpc_port...
        mc.wait_requests(2)
        spans = mc.records()

Paths come from the environment the CMake tests set: MOCK_COLLECTOR, MOCK_PROTO_PY and
MOCK_PYTHON (default /usr/bin/python3).
"""

import json
import os
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def read_jsonl(path):
	"""Complete JSON lines of a file (a line still being written is left out)."""
	out = []
	try:
		with open(path) as f:
			for line in f:
				if line.endswith("\n"):
					out.append(json.loads(line))
	except FileNotFoundError:
		pass
	return out


class MockCollector:
	def __init__(self, workdir, http=True, grpc=False, script=None, tls_cert=None, tls_key=None,
		     client_ca=None, max_requests=None, http_port=0, grpc_port=0, extra_args=(),
		     name="mock"):
		self.workdir = workdir
		os.makedirs(workdir, exist_ok=True)
		self.record_path = os.path.join(workdir, name + "-spans.jsonl")
		self.requests_path = os.path.join(workdir, name + "-requests.jsonl")
		self.port_file = os.path.join(workdir, name + "-ports.json")
		self.log_path = os.path.join(workdir, name + "-stderr.log")
		for p in (self.record_path, self.requests_path, self.port_file):
			if os.path.exists(p):
				os.unlink(p)
		python = os.environ.get("MOCK_PYTHON") or "/usr/bin/python3"
		collector = os.environ.get("MOCK_COLLECTOR") or os.path.join(HERE, "mock_collector.py")
		self.argv = [python, collector, "--port-file", self.port_file, "--record",
			     self.record_path, "--requests", self.requests_path]
		if http:
			self.argv += ["--http", str(http_port)]
		if grpc:
			self.argv += ["--grpc", str(grpc_port)]
		if script:
			self.argv += ["--script", script]
		if tls_cert:
			self.argv += ["--tls-cert", tls_cert, "--tls-key", tls_key]
		if client_ca:
			self.argv += ["--client-ca", client_ca]
		if max_requests:
			self.argv += ["--max-requests", str(max_requests)]
		self.argv += list(extra_args)
		self.proc = None
		self.http_port = self.grpc_port = None
		self.scheme = "https" if tls_cert else "http"

	def start(self, timeout=15):
		self.log = open(self.log_path, "ab")
		self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stderr=self.log)
		deadline = time.time() + timeout
		while not os.path.exists(self.port_file):
			if self.proc.poll() is not None:
				raise RuntimeError("mock collector exited with %d:\n%s" % (self.proc.returncode,
											  self.stderr()))
			if time.time() > deadline:
				self.stop()
				raise RuntimeError("mock collector did not start:\n" + self.stderr())
			time.sleep(0.02)
		with open(self.port_file) as f:
			ports = json.load(f)
		self.http_port, self.grpc_port = ports["http"], ports["grpc"]
		return self

	def http_url(self, path="/v1/traces", host="127.0.0.1"):
		return "%s://%s:%d%s" % (self.scheme, host, self.http_port, path)

	def records(self):
		return read_jsonl(self.record_path)

	def requests(self):
		return read_jsonl(self.requests_path)

	def stderr(self):
		try:
			with open(self.log_path, errors="replace") as f:
				return f.read()
		except FileNotFoundError:
			return ""

	def wait_requests(self, n, timeout=10):
		"""Wait until at least n requests were answered; returns them."""
		deadline = time.time() + timeout
		while True:
			reqs = self.requests()
			if len(reqs) >= n:
				return reqs
			if time.time() > deadline:
				raise AssertionError("expected %d requests, saw %d within %ss" % (n, len(reqs),
												  timeout))
			time.sleep(0.02)

	def wait_spans(self, n, timeout=10):
		deadline = time.time() + timeout
		while True:
			recs = self.records()
			if len(recs) >= n:
				return recs
			if time.time() > deadline:
				raise AssertionError("expected %d spans, saw %d within %ss" % (n, len(recs),
											       timeout))
			time.sleep(0.02)

	def stop(self, timeout=10):
		"""SIGTERM and wait; returns the exit code."""
		if self.proc is None:
			return None
		if self.proc.poll() is None:
			self.proc.send_signal(signal.SIGTERM)
			try:
				self.proc.wait(timeout)
			except subprocess.TimeoutExpired:
				self.proc.kill()
				self.proc.wait()
		self.log.close()
		return self.proc.returncode

	def __enter__(self):
		return self.start()

	def __exit__(self, *exc):
		self.stop()
