#!/usr/bin/python3
"""Mock OTLP trace collector for the test suite: OTLP/HTTP (HTTP/1.1, protobuf or JSON, gzip
or not) and OTLP/gRPC (grpcio behind a small TCP/TLS front that can drop connections and sees
the HTTP/2 framing). It records what it receives as JSON lines and answers from a script.
README.md beside this file documents its command line, script and output files.
"""

import argparse
import base64
import email.utils
import json
import math
import os
import re
import select
import signal
import socket
import ssl
import sys
import threading
import time
import zlib
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
MAX_BODY = 64 << 20  # largest body (compressed or not) the mock accepts
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

pb = {}  # generated modules, filled by load_protos()


def log(msg):
	sys.stderr.write("mock_collector: %s\n" % msg)
	sys.stderr.flush()


def die(msg):
	log(msg)
	sys.exit(2)


def load_protos(directory):
	if not directory:
		die("no generated protobuf classes: pass --proto-py DIR or set MOCK_PROTO_PY "
		    "(build the CMake target mock_collector_py; they land in <build>/tests/collector/py)")
	probe = os.path.join(directory, "opentelemetry/proto/collector/trace/v1/trace_service_pb2.py")
	if not os.path.isfile(probe):
		die("%s not found: build the CMake target mock_collector_py first" % probe)
	sys.path.insert(0, os.path.abspath(directory))
	from google.protobuf import any_pb2, duration_pb2, json_format
	from google.rpc import status_pb2
	from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

	pb.update(json_format=json_format, Any=any_pb2.Any, Duration=duration_pb2.Duration)
	pb["Status"] = status_pb2.Status
	pb["Request"] = trace_service_pb2.ExportTraceServiceRequest
	pb["Response"] = trace_service_pb2.ExportTraceServiceResponse


# ---------------------------------------------------------------------------------------------
# Status code mappings (gRPC <-> HTTP), as the gRPC spec and grpc-gateway do it.

HTTP_TO_GRPC = {400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14}
GRPC_TO_HTTP = {0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400,
		10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401}


def http_to_grpc(status):
	return 0 if 200 <= status < 300 else HTTP_TO_GRPC.get(status, 2)


# ---------------------------------------------------------------------------------------------
# The script: one step per accepted request, then success forever.


class Step:
	"""One answer; kind: ok | status | grpc | delay | drop | partial | html | garbage."""

	def __init__(self, text, kind, status=200, grpc=0, retry_after=None, retry_date=False,
		     delay=0.0, rejected=0, location=None):
		self.__dict__.update((k, v) for k, v in locals().items() if k != "self")


OK_STEP = Step("200", "ok")
# What a web server (or a proxy's portal) answers with 200: spans recorded, no OTLP answer.
HTML_PAGE = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>\n"
GARBAGE = b"\xff\xff\xff\xff"  # no protobuf message: a field number 0 is invalid


def parse_step(text):
	s = text.strip()
	if s == "drop":
		return Step(s, "drop")
	m = re.fullmatch(r"delay=(\d+(?:\.\d*)?|\.\d+)", s)
	if m:
		return Step(s, "delay", delay=float(m.group(1)))
	m = re.fullmatch(r"partial=(-?\d+)", s)
	if m:
		return Step(s, "partial", rejected=int(m.group(1)))
	if s in ("html", "garbage"):  # 200 (gRPC OK) with no ExportTraceServiceResponse
		return Step(s, s)
	m = re.fullmatch(r"(3\d\d)(?:/loc=(\S+))?", s)
	if m:
		return Step(s, "status", status=int(m.group(1)), grpc=2, location=m.group(2))
	m = re.fullmatch(r"grpc=(\d+)(?:/ra=(\d+))?", s)
	if m:
		code = int(m.group(1))
		if code > 16:
			raise ValueError("gRPC status codes go from 0 to 16")
		ra = int(m.group(2)) if m.group(2) else None
		if code == 0:
			return Step(s, "ok")
		return Step(s, "grpc", status=GRPC_TO_HTTP.get(code, 500), grpc=code,
			    retry_after=ra)
	m = re.fullmatch(r"([2-5]\d\d)(?:/(ra|ra-date)=(-?\d+))?", s)  # 1xx are not final answers
	if m:
		status = int(m.group(1))
		ra = int(m.group(3)) if m.group(3) else None
		if 200 <= status < 300:
			return Step(s, "ok", status=status)
		return Step(s, "status", status=status, grpc=http_to_grpc(status), retry_after=ra,
			    retry_date=(m.group(2) == "ra-date"))
	raise ValueError("unknown step %r (expected 200, 503, 503/ra=2, 503/ra-date=2, "
			 "429/ra-date=-5, 301/loc=URL, delay=1.5, drop, partial=3, html, garbage, "
			 "grpc=14, grpc=14/ra=2)" % s)


class Script:
	def __init__(self, text):
		self.steps = [parse_step(t) for t in text.split(",") if t.strip()] if text else []
		self.pos = 0
		self.lock = threading.Lock()

	def next(self):
		with self.lock:
			self.pos += 1
			return self.steps[self.pos - 1] if self.pos <= len(self.steps) else OK_STEP


# ---------------------------------------------------------------------------------------------
# Decoding and converting OTLP payloads.


class BadRequest(Exception):
	pass


def decode_content(body, encoding):
	"""Undo Content-Encoding (or grpc-encoding); returns bytes or raises BadRequest."""
	if encoding in ("", "identity"):
		return body
	if encoding != "gzip":
		raise BadRequest("unsupported content encoding %r" % encoding)
	try:
		d = zlib.decompressobj(16 + zlib.MAX_WBITS)
		out = d.decompress(body, MAX_BODY + 1)
		if len(out) > MAX_BODY:
			raise BadRequest("decompressed body larger than %d bytes" % MAX_BODY)
		if not d.eof:
			raise BadRequest("truncated %s body" % encoding)
		return out
	except zlib.error as e:
		raise BadRequest("bad %s body: %s" % (encoding, e))


def _list(obj, key):
	"""obj[key]: a list, empty if missing; obj must be a JSON object."""
	if not isinstance(obj, dict):
		raise BadRequest("expected a JSON object, got %s" % type(obj).__name__)
	v = obj.get(key, [])
	if not isinstance(v, (list, type(None))):
		raise BadRequest("%s must be a list" % key)
	return v or []


def parse_json_request(body):
	"""OTLP/JSON -> ExportTraceServiceRequest. Ids are hex in OTLP/JSON, base64 in proto3 JSON."""
	try:
		doc = json.loads(body.decode("utf-8"))
	except (UnicodeDecodeError, ValueError) as e:
		raise BadRequest("invalid JSON: %s" % e)
	for ss in (ss for rs in _list(doc, "resourceSpans") for ss in _list(rs, "scopeSpans")):
		for sp in _list(ss, "spans"):  # a span that is no object: ParseDict says so
			for k in ("traceId", "spanId", "parentSpanId") if isinstance(sp, dict) else ():
				if k in sp:
					try:
						sp[k] = base64.b64encode(bytes.fromhex(sp[k])).decode()
					except (TypeError, ValueError):
						raise BadRequest("%s is not hex: %r" % (k, sp[k]))
	try:
		return pb["json_format"].ParseDict(doc, pb["Request"](), ignore_unknown_fields=True)
	except Exception as e:  # json_format.ParseError and friends
		raise BadRequest("invalid OTLP/JSON: %s" % e)


def parse_proto_request(body):
	try:
		return pb["Request"].FromString(body)
	except Exception as e:  # DecodeError, also for invalid UTF-8 in strings
		raise BadRequest("invalid protobuf ExportTraceServiceRequest: %s" % e)


def validate_request(req):
	"""Reject what a real collector rejects: ids of the wrong length. Returns the span count."""
	spans = [sp for rs in req.resource_spans for ss in rs.scope_spans for sp in ss.spans]
	for sp in spans:
		for field, size in (("trace_id", 16), ("span_id", 8), ("parent_span_id", 8)):
			if len(getattr(sp, field)) not in (0, size):
				raise BadRequest("span %r: %s has %d bytes, expected %d"
						 % (sp.name, field, len(getattr(sp, field)), size))
	return len(spans)


def any_value(v):
	"""A scalar AnyValue (what cln-otlp sends) as a plain value."""
	which = v.WhichOneof("value")
	return which and getattr(v, which)


def span_records(req, base):
	"""One dict per span: base + resource/scope + the span as OTLP/JSON (hex ids)."""
	out = []
	to_dict = pb["json_format"].MessageToDict
	for rs in req.resource_spans:
		resource = {kv.key: any_value(kv.value) for kv in rs.resource.attributes}
		for ss in rs.scope_spans:
			scope = {"name": ss.scope.name, "version": ss.scope.version}
			for sp in ss.spans:
				d = to_dict(sp, including_default_value_fields=True,
					    use_integers_for_enums=True)
				for k in ("traceId", "spanId", "parentSpanId"):
					d[k] = base64.b64decode(d[k]).hex()
				d["status"] = dict({"code": 0, "message": ""}, **d.get("status", {}))
				out.append(dict(base, resource=resource, scope=scope, span=d))
	return out


def response_body(msg, json_wanted):
	if json_wanted:
		return pb["json_format"].MessageToJson(msg, indent=None).encode()
	return msg.SerializeToString()


def status_message(code, message, json_wanted):
	return response_body(pb["Status"](code=code, message=message), json_wanted)


def retry_info_details(seconds):
	"""google.rpc.RetryInfo{retry_delay: Duration{seconds}} packed in a google.protobuf.Any."""
	duration = pb["Duration"](seconds=seconds).SerializeToString()
	return pb["Any"](type_url="type.googleapis.com/google.rpc.RetryInfo",
			 value=b"\x0a" + bytes([len(duration)]) + duration).SerializeToString()


def ok_answer(step):
	"""The ExportTraceServiceResponse of an ok, delay or partial step."""
	msg = pb["Response"]()
	if step.kind == "partial":
		msg.partial_success.rejected_spans = step.rejected
		msg.partial_success.error_message = (
			"mock collector: %d spans rejected (scripted)" % step.rejected)
	return msg


# ---------------------------------------------------------------------------------------------
# Shared state: script, output files, request counting, stop.


class App:
	def __init__(self, args):
		self.args, self.script, self.lock = args, Script(args.script), threading.Lock()
		self.seq = self.answered = 0
		self.stop = threading.Event()
		self.record = open(args.record, "a") if args.record else None
		self.requests = open(args.requests, "a") if args.requests else None
		self.http_paths = set(args.http_path or [])

	def next_seq(self):
		with self.lock:
			self.seq += 1
			return self.seq

	def write(self, spans, request):
		"""Records first, then the request line; both flushed before the answer goes out."""
		with self.lock:
			if self.record and spans:
				for r in spans:
					self.record.write(json.dumps(r, sort_keys=True) + "\n")
				self.record.flush()
			if self.requests:
				self.requests.write(json.dumps(request, sort_keys=True) + "\n")
				self.requests.flush()
		log("#%d %s %s ct=%s ce=%s bytes=%d spans=%d action=%s -> %s%s" % (
			request["req"], request["transport"], request["path"], request["content_type"] or "-",
			request["content_encoding"], request["bytes"], request["spans"], request["action"],
			request["status"], " (%s)" % request["error"] if request.get("error") else ""))

	def done(self):
		"""Called after an answer (or a drop) is complete; honours --max-requests."""
		with self.lock:
			self.answered += 1
			if self.args.max_requests and self.answered >= self.args.max_requests:
				self.stop.set()

	def close(self):
		with self.lock:
			for f in (self.record, self.requests):
				if f:
					f.close()
			self.record = self.requests = None


def joined_headers(pairs):
	out = {}
	for k, v in pairs:
		k = k.lower()
		out[k] = out[k] + ", " + v if k in out else v
	return out


# ---------------------------------------------------------------------------------------------
# OTLP/HTTP


class HttpServer(ThreadingHTTPServer):
	daemon_threads = True
	block_on_close = False
	allow_reuse_address = True

	def __init__(self, addr, app, ssl_ctx):
		self.app = app
		self.ssl_ctx = ssl_ctx
		super().__init__(addr, HttpHandler)

	def finish_request(self, request, client_address):
		# TLS handshake here, in the connection's thread, so a stuck client blocks nobody.
		if self.ssl_ctx:
			request.settimeout(10)
			try:
				request = self.ssl_ctx.wrap_socket(request, server_side=True)
			except (ssl.SSLError, OSError) as e:
				log("http: TLS handshake with %s:%d failed: %s" % (client_address[0],
										    client_address[1], e))
				return
			request.settimeout(None)
		try:
			self.RequestHandlerClass(request, client_address, self)
		finally:
			if self.ssl_ctx:
				try:
					request.close()
				except OSError:
					pass

	def handle_error(self, request, client_address):
		log("http: error on connection from %s:%d: %s" % (client_address[0], client_address[1],
								   sys.exc_info()[1]))


def client_gone(sock, is_tls):
	"""After a delay: did the client hang up (timeout) while we slept?"""
	try:
		r, _, _ = select.select([sock], [], [], 0)
		if not r:
			return False
		if is_tls:
			return True  # an HTTP/1.1 client waiting for an answer sends nothing but close
		return socket.socket.recv(sock, 1, socket.MSG_PEEK) == b""
	except OSError:
		return True


class HttpHandler(BaseHTTPRequestHandler):
	protocol_version = "HTTP/1.1"
	server_version = "mock-otlp-collector"

	def log_message(self, fmt, *args):
		pass

	def do_GET(self):
		self.answer(405, "text/plain", b"only POST is supported\n", [("Allow", "POST")])

	do_PUT = do_DELETE = do_PATCH = do_GET

	def read_body(self):
		te = self.headers.get("Transfer-Encoding", "")
		if "chunked" in te.lower():
			chunks = []
			total = 0
			while True:
				line = self.rfile.readline(1024)
				if not line.endswith(b"\n"):
					raise BadRequest("bad chunk header")
				size = int(line.split(b";")[0].strip(), 16)
				if size == 0:
					while self.rfile.readline(8192).strip():
						pass  # trailers
					return b"".join(chunks)
				total += size
				if total > MAX_BODY:
					raise BadRequest("body larger than %d bytes" % MAX_BODY)
				data = self.rfile.read(size)
				if len(data) != size:
					raise BadRequest("truncated chunk")
				chunks.append(data)
				self.rfile.readline(8)
		try:
			n = int(self.headers.get("Content-Length", "0"))
		except ValueError:
			raise BadRequest("bad Content-Length")
		if n < 0 or n > MAX_BODY:
			raise BadRequest("Content-Length %d out of range" % n)
		data = self.rfile.read(n)
		if len(data) != n:
			raise BadRequest("truncated body")
		return data

	def answer(self, status, ctype, body, extra=()):
		self.send_response(status)
		self.send_header("Content-Type", ctype)
		self.send_header("Content-Length", str(len(body)))
		for k, v in extra:
			self.send_header(k, v)
		self.end_headers()
		self.wfile.write(body)
		self.wfile.flush()

	def do_POST(self):
		try:
			self.post()
		finally:
			self.server.app.done()  # answered, rejected, dropped or given up

	def post(self):
		app = self.server.app
		headers = joined_headers(self.headers.items())
		ctype = headers.get("content-type", "")
		media = ctype.split(";")[0].strip().lower()
		cenc = headers.get("content-encoding", "").strip().lower() or "identity"
		json_wanted = media == "application/json"
		resp_type = "application/json" if json_wanted else "application/x-protobuf"
		info = {"t": time.time(), "transport": "http", "path": self.path, "content_type": ctype,
			"content_encoding": cenc, "headers": headers, "spans": 0, "bytes": 0,
			"peer": "%s:%d" % self.client_address[:2]}

		def reject(status, msg, extra=()):
			info.update(status=status, action="reject", error=msg)
			app.write(None, info)
			self.answer(status, resp_type, status_message(
				3 if status == 400 else http_to_grpc(status), msg, json_wanted), extra)

		try:
			body = self.read_body()
		except (BadRequest, ValueError, OSError) as e:
			self.close_connection = True
			info["req"] = app.next_seq()
			return reject(400, str(e), [("Connection", "close")])
		info["bytes"] = len(body)
		info["req"] = app.next_seq()
		if app.http_paths and urlsplit(self.path).path not in app.http_paths:
			return reject(404, "no such path: %s" % self.path)
		if media not in ("application/x-protobuf", "application/json"):
			return reject(415, "unsupported content type %r" % ctype)
		try:
			raw = decode_content(body, cenc)
			info["decoded_bytes"] = len(raw)
			req = parse_json_request(raw) if json_wanted else parse_proto_request(raw)
			info["spans"] = validate_request(req)
		except BadRequest as e:
			return reject(400, str(e))

		step = app.script.next()
		info["action"] = step.text
		if step.kind == "drop":
			info["status"] = None
			app.write(None, info)
			self.close_connection = True
			try:
				self.connection.shutdown(socket.SHUT_RDWR)
			except OSError:
				pass
			return
		if step.kind == "delay":
			time.sleep(step.delay)
			if client_gone(self.connection, self.server.ssl_ctx is not None):
				info.update(status=None, client_gone=True)
				app.write(None, info)
				self.close_connection = True
				return
		if step.kind in ("ok", "delay", "partial", "html", "garbage"):
			base = {"transport": "http", "content_type": ctype, "content_encoding": cenc,
				"headers": headers, "req": info["req"]}
			info["status"] = step.status
			app.write(span_records(req, base), info)
			if step.kind == "html":
				return self.answer(200, "text/html; charset=utf-8", HTML_PAGE)
			if step.kind == "garbage":
				return self.answer(200, resp_type, GARBAGE)
			return self.answer(step.status, resp_type, response_body(ok_answer(step), json_wanted))
		# status or grpc: an error answer, spans not recorded
		extra = [("Location", step.location)] if step.location else []
		if step.retry_after is not None:
			if step.retry_date:
				when = math.ceil(time.time()) + step.retry_after
				extra.append(("Retry-After", email.utils.formatdate(when, usegmt=True)))
			else:
				extra.append(("Retry-After", str(step.retry_after)))
		info["status"] = step.status
		app.write(None, info)
		self.answer(step.status, resp_type, status_message(
			step.grpc, "mock collector: scripted %s" % step.text, json_wanted), extra)


# ---------------------------------------------------------------------------------------------
# OTLP/gRPC: grpcio serves on an internal port; a front (TCP or TLS) forwards to it, watches the
# client's HTTP/2 frames (headers, compressed flag, wire size) and can drop a connection.

try:
	import hpack
except ImportError:  # start_grpc() says what to install
	hpack = None


class H2Observer:
	"""Follows the client->server half of an HTTP/2 connection and reports each gRPC message."""

	def __init__(self, on_message):
		self.on_message = on_message
		self.buf = bytearray()
		self.preface = True
		self.broken = False
		self.decoder = hpack.Decoder()
		self.decoder.max_allowed_table_size = 1 << 20
		self.cont = None  # (stream id, bytearray) while a header block continues
		self.streams = {}  # stream id -> {"headers": [(k, v)], "buf": bytearray}

	def feed(self, data):
		if self.broken:
			return
		self.buf += data
		if self.preface:
			if len(self.buf) < len(H2_PREFACE):
				return
			if bytes(self.buf[:len(H2_PREFACE)]) != H2_PREFACE:
				self.broken = True
				return
			del self.buf[:len(H2_PREFACE)]
			self.preface = False
		while len(self.buf) >= 9:
			length = int.from_bytes(self.buf[0:3], "big")
			if len(self.buf) < 9 + length:
				return
			ftype, flags = self.buf[3], self.buf[4]
			sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
			payload = bytes(self.buf[9:9 + length])
			del self.buf[:9 + length]
			try:
				self.frame(ftype, flags, sid, payload)
			except Exception as e:
				log("grpc: cannot follow the HTTP/2 stream any more: %s" % e)
				self.broken = True
				return

	def frame(self, ftype, flags, sid, payload):
		if ftype == 0:  # DATA
			if flags & 0x8:
				payload = payload[1:len(payload) - payload[0]]
			st = self.streams.get(sid)
			if st is None:
				return
			st["buf"] += payload
			b = st["buf"]
			while len(b) >= 5:
				n = int.from_bytes(b[1:5], "big")
				if n > MAX_BODY:
					st["buf"] = bytearray()
					return
				if len(b) < 5 + n:
					break
				self.on_message(st["headers"], b[0], bytes(b[5:5 + n]))
				del b[:5 + n]
			if flags & 0x1:
				self.streams.pop(sid, None)
		elif ftype == 1:  # HEADERS
			if flags & 0x8:
				payload = payload[1:len(payload) - payload[0]]
			if flags & 0x20:
				payload = payload[5:]
			if flags & 0x4:
				self.header_block(sid, payload, flags & 0x1)
			else:
				self.cont = (sid, bytearray(payload), flags & 0x1)
		elif ftype == 9 and self.cont:  # CONTINUATION
			self.cont[1].extend(payload)
			if flags & 0x4:
				sid, block, end = self.cont
				self.cont = None
				self.header_block(sid, bytes(block), end)
		elif ftype == 3:  # RST_STREAM
			self.streams.pop(sid, None)

	def header_block(self, sid, block, end_stream):
		headers = [(k if isinstance(k, str) else k.decode(),
			    v if isinstance(v, str) else v.decode("latin-1"))
			   for k, v in self.decoder.decode(bytes(block))]
		if sid not in self.streams and not end_stream:
			self.streams[sid] = {"headers": headers, "buf": bytearray()}
		elif end_stream:
			self.streams.pop(sid, None)


class FrontConn:
	def __init__(self, front, sock, addr):
		self.front = front
		self.cs = sock
		self.addr = addr
		self.up = None
		self.dropped = False
		self.lock = threading.Lock()
		self.messages = []  # gRPC messages seen, waiting for the handler to claim them
		self.observer = H2Observer(self.on_message)

	def on_message(self, headers, flag, payload):
		hdrs = joined_headers(headers)
		enc = hdrs.get("grpc-encoding", "identity") if flag else "identity"
		try:
			decoded = decode_content(payload, enc)
		except BadRequest:
			decoded = None
		entry = {"headers": hdrs, "encoding": enc, "wire_bytes": len(payload),
			 "decoded": decoded}
		with self.lock:
			self.messages.append(entry)
			del self.messages[:-64]

	def claim(self, message):
		with self.lock:
			for i, e in enumerate(self.messages):
				if e["decoded"] == message:
					return self.messages.pop(i)
		return None

	def drop(self):
		self.dropped = True
		for s in (self.cs, self.up):
			try:
				socket.socket.shutdown(s, socket.SHUT_RDWR)
			except (OSError, TypeError):
				pass

	def run(self):
		try:
			if self.front.ssl_ctx:
				self.cs.settimeout(10)
				try:
					self.cs = self.front.ssl_ctx.wrap_socket(self.cs, server_side=True)
				except (ssl.SSLError, OSError) as e:
					log("grpc: TLS handshake with %s:%d failed: %s" % (self.addr[0],
											    self.addr[1], e))
					return
			self.up = socket.create_connection(("127.0.0.1", self.front.upstream_port))
			port = self.up.getsockname()[1]
			with self.front.lock:
				self.front.conns[port] = self
			try:
				self.pump()
			finally:
				with self.front.lock:
					self.front.conns.pop(port, None)
		except OSError as e:
			log("grpc: connection from %s:%d: %s" % (self.addr[0], self.addr[1], e))
		finally:
			for s in (self.cs, self.up):
				if s is not None:
					try:
						s.close()
					except OSError:
						pass

	def pump(self):
		cs, up = self.cs, self.up
		tls = isinstance(cs, ssl.SSLSocket)
		cs.setblocking(False)
		up.setblocking(False)
		to_up, to_cl = bytearray(), bytearray()
		c_eof = u_eof = up_shut = False
		cap = 1 << 20
		while not self.dropped:
			rl, wl = [], []
			if not c_eof and len(to_up) < cap:
				rl.append(cs)
			if not u_eof and len(to_cl) < cap:
				rl.append(up)
			if to_up:
				wl.append(up)
			if to_cl:
				wl.append(cs)
			if not rl and not wl:
				return
			pending = tls and cs in rl and cs.pending() > 0
			r, w, _ = select.select(rl, wl, [], 0 if pending else 1.0)
			if self.dropped:
				return
			if pending and cs not in r:
				r.append(cs)
			if cs in r:
				try:
					data = cs.recv(65536)
				except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
					data = None
				except (OSError, ssl.SSLError):
					return
				if data == b"":
					c_eof = True
				elif data:
					self.observer.feed(data)
					to_up += data
			if up in r:
				try:
					data = up.recv(65536)
				except BlockingIOError:
					data = None
				except OSError:
					return
				if data == b"":
					u_eof = True
				elif data:
					to_cl += data
			if up in w:
				try:
					del to_up[:up.send(to_up[:65536])]
				except BlockingIOError:
					pass
				except OSError:
					return
			if cs in w:
				try:
					del to_cl[:cs.send(to_cl[:16384])]
				except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
					pass
				except (OSError, ssl.SSLError):
					return
			if c_eof and not to_up and not up_shut:
				up_shut = True
				try:
					up.shutdown(socket.SHUT_WR)
				except OSError:
					return
			if u_eof and not to_cl:
				return


class GrpcFront:
	def __init__(self, port, ssl_ctx, upstream_port):
		self.ssl_ctx = ssl_ctx
		self.upstream_port = upstream_port
		self.lock = threading.Lock()
		self.conns = {}  # local port of our upstream socket (grpc's peer port) -> FrontConn
		self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
		self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
		self.sock.bind(("127.0.0.1", port))
		self.sock.listen(64)
		self.port = self.sock.getsockname()[1]
		threading.Thread(target=self.accept_loop, daemon=True).start()

	def accept_loop(self):
		while True:
			try:
				s, addr = self.sock.accept()
			except OSError:
				return
			s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
			threading.Thread(target=FrontConn(self, s, addr).run, daemon=True).start()

	def conn_for(self, peer):
		# grpc peer strings look like "ipv4:127.0.0.1:54321"
		try:
			port = int(peer.rsplit(":", 1)[1])
		except (ValueError, IndexError, AttributeError):
			return None
		with self.lock:
			return self.conns.get(port)

	def close(self):
		try:
			self.sock.close()
		except OSError:
			pass


class GrpcService:
	def __init__(self, app, grpc_mod):
		self.app = app
		self.grpc = grpc_mod
		self.front = None
		self.codes = {c.value[0]: c for c in grpc_mod.StatusCode}

	def handler(self):
		svc = self
		grpc = self.grpc

		class Handler(grpc.GenericRpcHandler):
			def service(self, details):
				if details.method == EXPORT_METHOD:
					return grpc.unary_unary_rpc_method_handler(svc.export)
				method = details.method
				return grpc.unary_unary_rpc_method_handler(
					lambda req, ctx: svc.unknown(method, req, ctx))

		return Handler()

	def count_when_done(self, ctx):
		# --max-requests: count the RPC once its answer is out, not when the handler returns
		if not ctx.add_callback(self.app.done):
			self.app.done()

	def context_info(self, ctx, message, path):
		conn = self.front.conn_for(ctx.peer()) if self.front else None
		entry = conn.claim(message) if conn else None
		if entry:
			headers = {k: v for k, v in entry["headers"].items() if not k.startswith(":")}
		else:  # the message was not matched to its frames: grpc's metadata (-bin in base64)
			headers = joined_headers((k, base64.b64encode(v).decode() if isinstance(v, bytes)
						  else v) for k, v in ctx.invocation_metadata())
		info = {"t": time.time(), "transport": "grpc", "path": path,
			"content_type": headers.get("content-type", "application/grpc"),
			"content_encoding": entry["encoding"] if entry else "identity",
			"headers": headers, "spans": 0,
			"bytes": entry["wire_bytes"] if entry else len(message),
			"decoded_bytes": len(message), "peer": conn and "%s:%d" % conn.addr[:2]}
		return conn, info

	def unknown(self, method, message, ctx):
		self.count_when_done(ctx)
		conn, info = self.context_info(ctx, message, method)
		info.update(req=self.app.next_seq(), status=12, action="reject",
			    error="unknown method %s" % method)
		self.app.write(None, info)
		ctx.abort(self.grpc.StatusCode.UNIMPLEMENTED, "mock collector: unknown method %s" % method)

	def export(self, message, ctx):
		app = self.app
		self.count_when_done(ctx)
		conn, info = self.context_info(ctx, message, EXPORT_METHOD)
		info["req"] = app.next_seq()
		try:
			req = parse_proto_request(message)
			info["spans"] = validate_request(req)
		except BadRequest as e:
			info.update(status=3, action="reject", error=str(e))
			app.write(None, info)
			ctx.abort(self.grpc.StatusCode.INVALID_ARGUMENT, "mock collector: %s" % e)
		step = app.script.next()
		info["action"] = step.text
		if step.kind == "drop":
			info["status"] = None
			app.write(None, info)
			if conn:
				conn.drop()
			ctx.abort(self.grpc.StatusCode.UNAVAILABLE, "mock collector: dropped")
		if step.kind == "delay":
			time.sleep(step.delay)
			if not ctx.is_active():
				info.update(status=None, client_gone=True)
				app.write(None, info)
				return b""
		if step.kind in ("ok", "delay", "partial", "html", "garbage"):
			base = {k: info[k] for k in ("transport", "content_type", "content_encoding",
						     "headers", "req")}
			info["status"] = 0
			app.write(span_records(req, base), info)
			if step.kind in ("html", "garbage"):
				return GARBAGE if step.kind == "garbage" else HTML_PAGE
			return ok_answer(step).SerializeToString()
		code = step.grpc
		message_text = "mock collector: scripted %s" % step.text
		if step.retry_after is not None:
			st = pb["Status"](code=code, message=message_text)
			st.details.add().MergeFromString(retry_info_details(step.retry_after))
			ctx.set_trailing_metadata((("grpc-status-details-bin", st.SerializeToString()),))
		info["status"] = code
		app.write(None, info)
		ctx.abort(self.codes[code], message_text)


def start_grpc(app, args, ssl_ctx):
	try:
		import grpc
	except ImportError:
		die("--grpc needs python3-grpcio (apt-get install python3-grpcio)")
	if not hpack:
		die("--grpc needs python3-hpack (apt-get install python3-hpack)")
	svc = GrpcService(app, grpc)
	server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), handlers=[svc.handler()],
			     options=[("grpc.so_reuseport", 0)])
	upstream = server.add_insecure_port("127.0.0.1:0")
	if not upstream:
		die("grpc: cannot bind an internal port")
	server.start()
	svc.front = GrpcFront(args.grpc, ssl_ctx, upstream)
	return server, svc.front


# ---------------------------------------------------------------------------------------------


def tls_context(args, alpn):
	ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
	try:
		ctx.load_cert_chain(args.tls_cert, args.tls_key)
		if args.client_ca:
			ctx.verify_mode = ssl.CERT_REQUIRED
			ctx.load_verify_locations(args.client_ca)
	except (OSError, ssl.SSLError) as e:
		die("cannot load TLS files: %s (make them with tests/collector/certs.sh DIR)" % e)
	ctx.set_alpn_protocols(alpn)
	return ctx


def write_port_file(path, ports):
	tmp = "%s.tmp.%d" % (path, os.getpid())
	with open(tmp, "w") as f:
		json.dump(ports, f)
		f.write("\n")
	os.rename(tmp, path)


def main():
	ap = argparse.ArgumentParser(description="Mock OTLP trace collector (tests only).")
	ap.add_argument("--proto-py", default=os.environ.get("MOCK_PROTO_PY"),
			help="directory of the generated *_pb2.py (default: $MOCK_PROTO_PY)")
	ap.add_argument("--http", type=int, metavar="PORT", help="OTLP/HTTP port (0 = any)")
	ap.add_argument("--grpc", type=int, metavar="PORT", help="OTLP/gRPC port (0 = any)")
	ap.add_argument("--port-file", help='write {"http": N, "grpc": N} once listening')
	ap.add_argument("--tls-cert")
	ap.add_argument("--tls-key")
	ap.add_argument("--client-ca", help="require client certificates signed by this CA")
	ap.add_argument("--record", help="append one JSON line per received span")
	ap.add_argument("--requests", help="append one JSON line per request")
	ap.add_argument("--script", default="", help="comma-separated answers, then 200 forever")
	ap.add_argument("--max-requests", type=int, default=0, help="exit 0 after N requests")
	ap.add_argument("--http-path", action="append",
			help="accept OTLP/HTTP only on this path (repeatable; default: any path)")
	args = ap.parse_args()

	if args.http is None and args.grpc is None:
		die("nothing to serve: give --http PORT and/or --grpc PORT")
	if bool(args.tls_cert) != bool(args.tls_key):
		die("--tls-cert and --tls-key go together")
	if args.client_ca and not args.tls_cert:
		die("--client-ca needs --tls-cert and --tls-key")
	try:
		Script(args.script)
	except ValueError as e:
		die("--script: %s" % e)
	load_protos(args.proto_py)

	app = App(args)
	httpd = grpc_server = front = None
	ports = {"http": None, "grpc": None}
	if args.http is not None:
		try:
			httpd = HttpServer(("127.0.0.1", args.http), app,
					   tls_context(args, ["http/1.1"]) if args.tls_cert else None)
		except OSError as e:
			die("http: cannot listen on 127.0.0.1:%d: %s" % (args.http, e))
		ports["http"] = httpd.server_address[1]
		threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
				 daemon=True).start()
	if args.grpc is not None:
		try:
			grpc_server, front = start_grpc(app, args,
							tls_context(args, ["h2"]) if args.tls_cert else None)
		except OSError as e:
			die("grpc: cannot listen on 127.0.0.1:%d: %s" % (args.grpc, e))
		ports["grpc"] = front.port

	def on_signal(signum, frame):
		app.stop.set()

	signal.signal(signal.SIGTERM, on_signal)
	signal.signal(signal.SIGINT, on_signal)
	if args.port_file:
		write_port_file(args.port_file, ports)
	log("listening: http=%s grpc=%s tls=%s mtls=%s script=%d steps" % (
		ports["http"], ports["grpc"], "yes" if args.tls_cert else "no",
		"yes" if args.client_ca else "no", len(app.script.steps)))

	while not app.stop.wait(0.2):
		pass
	if httpd:
		httpd.shutdown()
		httpd.server_close()
	if front:
		front.close()
	if grpc_server:
		grpc_server.stop(grace=0.5).wait(5)
		# grpc has closed its side of every connection: each front connection forwards what
		# it still holds, then ends. Wait for that (not for a quiet moment, which a busy
		# machine can fake) before the process goes; the deadline only stops a stuck client.
		deadline = time.monotonic() + 10
		while time.monotonic() < deadline:
			with front.lock:
				if not front.conns:
					break
			time.sleep(0.02)
	app.close()
	log("stopped after %d requests" % app.answered)
	sys.stderr.flush()
	os._exit(0)


if __name__ == "__main__":
	main()
