"""The one harness of the Python test suites.

A suite imports it by path, no install step:

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
    from harness import check, wait_for, run, Proc, test, main

registers its tests, `@test("name", ...)` over a function of a temporary directory, and calls
`main(names)`, which runs the tests registered under those names and exits 0 (passed), 1 (a
check failed or the test crashed) or 77 (skipped: every test needed root; with CI=true a
missing root is a failure instead). A test's directory is removed when it passes and kept,
path printed, when it fails (KEEP_TMP=1 keeps it always).

Processes (`Proc`, `Collector`) are context managers: they are stopped when their block ends,
whatever happens, and the runner kills any a test left; they get SIGTERM if the test process
itself dies. Their output goes to files, read through a fresh open and only as complete lines
while they run (a line without its newline is not read yet). Waiting is `wait_for`: it polls a
condition, never sleeps a fixed time.
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CAPTURE_DIR = os.path.join(TESTS_DIR, "data", "cln-v26-startup")
CAPTURE = os.path.join(CAPTURE_DIR, "lightningd-trace.32274")  # 585 spans, 3 suspensions
TRACE = "074c67a29952a72ce3a9ce4137f3d273"  # the capture's lightningd/startup trace
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
SKIP_RC = 77
DEVNULL = subprocess.DEVNULL


class Fail(Exception):
    """A check failed: the test stops there, its files are kept."""


class Skip(Exception):
    """The test cannot run here."""


def log(msg):
    print(msg, flush=True)


_now = {"checks": 0, "procs": [], "runs": []}  # the running test's


def _short(text, n=3000):
    text = str(text)
    return text if len(text) <= n else text[:n // 3] + "\n  [...]\n" + text[-2 * n // 3:]


def check(what, cond, detail=None):
    """One verified fact: Fail (what, and detail if given) unless cond is true."""
    if not cond:
        raise Fail(what if detail is None else "%s\n  %s" % (what, _short(detail)))
    _now["checks"] += 1
    return cond


def check_fields(what, got, **want):
    """check() each field of a dict: got[k] == v for every k=v (one check per field)."""
    for k, v in want.items():
        check("%s: %s is %r" % (what, k, v), got.get(k) == v, "got %r" % (got.get(k),))


def wait_for(cond, timeout, what):
    """Poll cond() until it returns something true (returned); Fail(what) after timeout s."""
    deadline, pause = time.monotonic() + timeout, 0.01
    while True:
        got = cond()
        if got:
            _now["checks"] += 1
            return got
        if time.monotonic() > deadline:
            raise Fail("%s: not within %g s" % (what, timeout))
        time.sleep(pause)
        pause = min(pause * 1.5, 0.2)


def attempt(fn, *args, **kw):
    """fn(*args, **kw), or the exception it raised: to check that a call fails, and how."""
    try:
        return fn(*args, **kw)
    except Exception as e:
        return e


def need_root(why="it loads BPF programs"):
    if os.geteuid() != 0:
        if CI:
            raise Fail("needs root (%s), and CI must not skip it" % why)
        raise Skip("needs root (%s)" % why)


def daemon_user():
    """Whom cln-otlp runs as once set up when started as root without --user (src/privs.h):
    its pwd entry (cln-otlp if that user exists, else nobody)."""
    import pwd
    try:
        return pwd.getpwnam("cln-otlp")
    except KeyError:
        return pwd.getpwnam("nobody")


def give_to_daemon(*paths):
    """Started as root, cln-otlp runs as daemon_user() once set up: make these paths its own
    (a directory it removes its socket from, files it opens later). Returns (uid, gid), or
    None when not root (cln-otlp then stays the user running the tests)."""
    if os.geteuid() != 0:
        return None
    pw = daemon_user()
    for path in paths:
        os.chown(path, pw.pw_uid, pw.pw_gid)
    return (pw.pw_uid, pw.pw_gid)


def options(*names):
    """Parse argv `WORD... --name VALUE...`: (the words, the options as attributes)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("words", nargs="*")
    for n in names:
        ap.add_argument("--" + n)
    a = ap.parse_args()
    return a.words, a


def run(argv, input=None, timeout=120, **kw):
    """Run a command to its end: CompletedProcess, stdout and stderr captured as text."""
    log("$ " + " ".join(map(str, argv)))
    for k, v in (("stdout", subprocess.PIPE), ("stderr", subprocess.PIPE), ("text", True)):
        kw.setdefault(k, v)
    if kw["text"]:
        kw.setdefault("errors", "surrogateescape")
    if input is None:
        kw.setdefault("stdin", DEVNULL)
    p = subprocess.run(argv, input=input, timeout=timeout, **kw)
    _now["runs"] = _now["runs"][-2:] + [p]
    return p


def clean_env(lang=None, **extra):
    """This environment without OTEL_* (nor locale variables, given lang), plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")
           and not (lang and k in ("LC_ALL", "LC_CTYPE", "LANG"))}
    if lang:
        env["LANG"] = lang
    env.update(extra)
    return env


def free_port(host="127.0.0.1", below=None):
    """A TCP port nobody listens on now (the highest free one under `below`, if given)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for port in range(below - 1, 512, -1) if below else [0]:
        with socket.socket(family) as s:
            try:
                s.bind((host, port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise Fail("no free port below %s" % below)


def install(src, dst):
    """Copy src to dst as a new file (new inode) as an upgrade does: a copy with a fresh
    mtime (cln-otlp waits for files to settle) renamed into place."""
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy2(src, dst + ".new")
    os.chmod(dst + ".new", 0o755)
    os.utime(dst + ".new", None)
    os.rename(dst + ".new", dst)


# ---- files another process writes -------------------------------------------------------


def read_lines(path, final=False):
    """The complete lines of a file another process may still be writing: a last line
    without its newline is not read yet, unless `final` (the writer has ended)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    if not final:
        data = data[:data.rfind(b"\n") + 1]
    lines = data.decode("utf-8", "surrogateescape").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def read_jsonl(path):
    return [json.loads(line) for line in read_lines(path)]


def value_of(v):
    """An OTLP/JSON AnyValue as a plain value (intValue as an int)."""
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" not in v:
        raise Fail("an attribute value of an unexpected type: %r" % v)
    return int(v["intValue"])


def attrs(kvs):
    return {a["key"]: value_of(a["value"]) for a in kvs}


def otlp_spans(lines):
    """[(resource attributes, span)] of OTLP/JSON lines (the stdout exporter's output)."""
    out = []
    lines = lines.split("\n") if isinstance(lines, str) else lines
    for n, line in enumerate(lines):
        if line.strip():
            req = attempt(json.loads, line)
            if isinstance(req, Exception):
                raise Fail("output line %d is not JSON (%s): %.200s" % (n + 1, req, line))
            for rs in req.get("resourceSpans", []):
                res = attrs(rs.get("resource", {}).get("attributes", []))
                out += [(res, sp) for ss in rs.get("scopeSpans", []) for sp in ss.get("spans", [])]
    return out


def span_payloads(path):
    """The JSON of every span_emit line of a CLN trace file."""
    with open(path, encoding="utf-8") as f:
        return [ln.split(" ", 2)[2].rstrip("\n") for ln in f if ln.startswith("span_emit ")]


def cln_spans(path):
    return [json.loads(p)[0] for p in span_payloads(path)]


def cln_kind(name):
    """The span kind CLN's span name gives (README, "Mapping to OTLP"): the rules as stated."""
    if name == "lightningd/jsonrpc":
        return 2  # SERVER
    if name == "jsonrpc" or name.startswith("plugin/") or name.startswith("db_"):
        return 3  # CLIENT
    return 1  # INTERNAL


def expected_attributes(name, tags, db_system=None, raw=False):
    """CLN's tags as OTLP attributes: the semantic conventions' names, what they add."""
    rpc = name in ("lightningd/jsonrpc", "jsonrpc") or name.startswith("plugin/")
    renames = {}
    if rpc:
        renames["method"] = "rpc.method"
    if name == "jsonrpc":
        renames["id"] = "jsonrpc.request.id"
    if name.startswith("db_"):
        renames["query"] = "db.query.text"
    out = []
    for k, v in tags:
        to = renames.get(k)
        out.append((to if to and not raw and to not in dict(tags) else k, v))
    if raw:
        return out
    keys = {k for k, _ in out}
    if rpc and "rpc.system.name" not in keys:
        out.append(("rpc.system.name", "jsonrpc"))
    m = re.fullmatch(r"[^/:#\s]+:([^/:#\s]+)#[0-9]+", dict(tags).get("id", "").rsplit("/", 1)[-1])
    if name == "jsonrpc" and "rpc.method" not in keys and m and "id" in renames:
        out.append(("rpc.method", m.group(1)))
    if name.startswith("db_") and db_system and "db.system.name" not in keys:
        out.append(("db.system.name", db_system))
    return out


def expected_otlp(cln, db_system=None, raw=False):
    """What a CLN span becomes (README, "Mapping to OTLP"), as span_fields() reads it back.
    db_system: the node's wallet (db.system.name of db_* spans), None when not known."""
    parent = cln.get("parentId", "")
    tags = [(k, v) for k, v in cln["tags"].items() if (k, v) != ("error", "true")]
    return {"traceId": cln["traceId"].lower().rjust(32, "0"),
            "parentSpanId": "" if parent == cln["id"] else parent, "name": cln["name"],
            "kind": cln_kind(cln["name"]),
            "start": cln["timestamp"] * 1000, "end": (cln["timestamp"] + cln["duration"]) * 1000,
            "attributes": expected_attributes(cln["name"], tags, db_system, raw),
            "code": 2 if cln["tags"].get("error") == "true" else 0}


def span_fields(sp):
    """Ids, name, kind, times, attributes (in order) and status code of an OTLP/JSON span."""
    return {"traceId": sp["traceId"], "parentSpanId": sp.get("parentSpanId", ""),
            "name": sp["name"], "kind": sp.get("kind", 0), "start": int(sp["startTimeUnixNano"]),
            "end": int(sp["endTimeUnixNano"]), "code": sp.get("status", {}).get("code", 0),
            "attributes": [(a["key"], value_of(a["value"])) for a in sp.get("attributes", [])]}


def cln_json(sid, name, trace=TRACE, parent=None, ts=1795660314655273, dur=175, tags=None):
    """One span as CLN (v25.05 and later) emits it: compact, nothing escaped."""
    tags = ", ".join('"%s":"%s"' % kv for kv in (tags or {}).items())
    return ('[{"id":"%s","name":"%s","timestamp":%d,"duration":%d,"localEndpoint":'
            '{"serviceName":"lightningd"},%s"tags":{%s},"traceId":"%s"}]'
            % (sid, name, ts, dur, '"parentId":"%s",' % parent if parent else "", tags, trace))


# ---- processes ---------------------------------------------------------------------------

_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _die_with_parent():
    _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: a killed test leaves no daemon behind


class Proc:
    """A process in the background, stdout and stderr in <tmp>/<name>.out and .err."""

    def __init__(self, argv, tmp, name, stdin=DEVNULL, **kw):
        self.name, self.argv, self.rc = name, [str(a) for a in argv], None
        self.out_path, self.err_path = (os.path.join(tmp, name + e) for e in (".out", ".err"))
        log("$ " + " ".join(self.argv))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=err, stdin=stdin,
                                         preexec_fn=_die_with_parent, **kw)
        self.pid = self.proc.pid
        _now["procs"].append(self)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        try:
            self.stop(timeout=10 if exc_type else 60)
        except Fail:
            if exc_type is None:
                raise

    def running(self):
        return self.proc.poll() is None

    def lines(self, stream="out"):
        """Complete lines of stdout (or "err") so far; every line once it has ended."""
        ended = not self.running()
        return read_lines(self.err_path if stream == "err" else self.out_path, ended)

    def out(self):
        return "".join(ln + "\n" for ln in self.lines())

    def err(self):
        return "".join(ln + "\n" for ln in self.lines("err"))

    def spans(self):
        return otlp_spans(self.lines())

    def wait(self, cond, timeout, what):
        """wait_for(), failing at once if the process ends before cond() is true."""
        def poll():
            ended = not self.running()
            got = cond()
            if ended and not got:
                raise Fail("%s: %s ended first (exit %s)" % (what, self.name, self.proc.poll()))
            return got
        return wait_for(poll, timeout, what)

    def wait_err(self, needle, timeout=30, count=1):
        """Wait for `count` complete stderr lines with needle in them; returns them."""
        def hits():
            found = [ln for ln in self.lines("err") if needle in ln]
            return found if len(found) >= count else None
        return self.wait(hits, timeout, "%s says %r" % (self.name, needle))

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Send sig (None: none) unless it has ended, wait; its exit status. SIGKILL and
        Fail if it does not end within timeout s."""
        if self.rc is None:
            if self.proc.poll() is None and sig:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise Fail("%s did not end within %g s" % (self.name, timeout))
            finally:
                if self.proc.stdin:
                    self.proc.stdin.close()
            self.rc = self.proc.returncode
        return self.rc

    def stopped(self, rc=0, sig=signal.SIGTERM, timeout=60, what=None):
        """stop() and check() it exits rc; returns self (its output can still be read)."""
        check(what or "%s exited %d" % (self.name, rc), self.stop(sig, timeout) == rc,
              "exit %s, stderr:\n%s" % (self.rc, "\n".join(self.lines("err")[-20:])))
        return self


def start_emitter(tmp, binary, *args, name="emitter", **kw):
    """cln-emitter (tests/emitter), run as `binary` (a lightningd, a plugin), holding its
    probes until release(): returned once its pid file names it."""
    go, pidfile = (os.path.join(tmp, name + e) for e in (".go", ".pid"))
    e = Proc([binary, "--wait-file", go, "--pid-file", pidfile, *args], tmp, name, **kw)
    e.wait(lambda: read_lines(pidfile) == [str(e.pid)], 30, name + " runs")
    e.go = go
    return e


def release(e, timeout=300, what=None):
    """Let a start_emitter() emitter fire, and check() it exits 0."""
    open(e.go, "w").close()
    return e.stopped(sig=None, timeout=timeout, what=what)


def mock_command(*args):
    """The mock collector's command line (MOCK_PYTHON, MOCK_COLLECTOR) with these arguments."""
    return [os.environ.get("MOCK_PYTHON") or "/usr/bin/python3", os.environ.get(
        "MOCK_COLLECTOR") or os.path.join(TESTS_DIR, "collector", "mock_collector.py"), *args]


class Collector(Proc):
    """The mock OTLP collector (tests/collector/mock_collector.py, see the README there):
    http and/or grpc on free ports, answers from script; tls is a certs() directory."""

    def __init__(self, tmp, http=True, grpc=False, script=None, tls=None, mtls=False,
                 max_requests=None, http_port=0, grpc_port=0, args=(), name="mock"):
        n = sum(1 for f in os.listdir(tmp) if f.startswith(name) and f.endswith(".err"))
        name = "%s%d" % (name, n)
        base = os.path.join(tmp, name)
        self.records_path, self.requests_path = base + "-spans.jsonl", base + "-requests.jsonl"
        self.port_file, self.scheme = base + "-ports.json", "https" if tls else "http"
        argv = mock_command("--port-file", self.port_file, "--record", self.records_path,
                            "--requests", self.requests_path, *args)
        for flag, on, value in (("--http", http, http_port), ("--grpc", grpc, grpc_port),
                                ("--script", script, script),
                                ("--max-requests", max_requests, max_requests)):
            argv += [flag, str(value)] if on else []
        if tls:
            argv += ["--tls-cert", tls + "/server.crt", "--tls-key", tls + "/server.key"]
            argv += ["--client-ca", tls + "/ca.crt"] if mtls else []
        super().__init__(argv, tmp, name)
        with open(self.wait(lambda: os.path.exists(self.port_file), 60,
                            "the mock collector listens") and self.port_file) as f:
            ports = json.load(f)
        self.http_port, self.grpc_port = ports["http"], ports["grpc"]

    def url(self, path="", host="127.0.0.1", grpc=False):
        port = self.grpc_port if grpc else self.http_port
        return "%s://%s:%d%s" % (self.scheme, host, port, path)

    def records(self):
        """One dict per span received (complete lines only)."""
        return read_jsonl(self.records_path)

    def requests(self):
        return read_jsonl(self.requests_path)

    def wait_requests(self, n, timeout=30):
        return wait_for(lambda: len(self.requests()) >= n and self.requests(), timeout,
                        "%d requests at the mock collector" % n)


def certs(tmp):
    """A test CA, server and client certificates (tests/collector/certs.sh) in <tmp>/certs."""
    out = os.path.join(tmp, "certs")
    sh = os.environ.get("MOCK_CERTS_SH") or os.path.join(TESTS_DIR, "collector", "certs.sh")
    check("certs.sh made the test certificates", run(["sh", sh, out]).returncode == 0)
    return out


def proto_classes(directory=None):
    """Make the generated *_pb2 modules (CMake target mock_collector_py) importable."""
    directory = directory or os.environ.get("MOCK_PROTO_PY", "")
    check("MOCK_PROTO_PY names the generated classes (build target mock_collector_py)",
          os.path.isdir(directory), directory)
    sys.path.insert(0, directory)


# ---- the runner ------------------------------------------------------------------------

_tests = {}


def test(*names):
    """Register fn(tmp) under these names (each CTest runs one name)."""
    def add(fn):
        for n in names:
            _tests.setdefault(n, []).append(fn)
        return fn
    return add


def cases(group, fn, table):
    """Register fn(tmp, **kw) under group once per (name, kw) of table."""
    for name, kw in table:
        t = lambda tmp, kw=kw: fn(tmp, **kw)  # noqa: E731
        t.__name__, t.__doc__ = name, fn.__doc__
        test(group)(t)


def _report():
    for p in _now["procs"]:
        tail = read_lines(p.err_path, True)[-40:]
        log("--- %s (exit %s), stderr:\n%s" % (p.name, p.proc.poll(), "\n".join(tail)))
    for r in _now["runs"]:
        log("--- $ %s (exit %s), stderr:\n%s" % (" ".join(map(str, r.args)), r.returncode,
                                                 _short(r.stderr or "", 2000)))


def main(names):
    """Run the tests registered under names, one after another; exit 0, 1 or 77."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    fns = [fn for n in names for fn in _tests[n]]
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for fn in fns:
        tmp = tempfile.mkdtemp(prefix=re.sub(r"[^\w.-]+", "_", fn.__name__) + "-")
        _now.update(checks=0, procs=[], runs=[])
        log("== %s: %s" % (fn.__name__, (fn.__doc__ or "").strip().split("\n")[0]))
        outcome, stop = "failed", None
        try:
            fn(tmp)
            if not _now["checks"]:
                raise Fail("the test checked nothing")
            outcome = "passed"
            log("ok %s: %d checks" % (fn.__name__, _now["checks"]))
        except Skip as e:
            outcome = "skipped"
            log("SKIP %s: %s" % (fn.__name__, e))
        except BaseException as e:  # a failed check, a crash of the test, a signal
            if not isinstance(e, Fail):
                traceback.print_exc()
            log("FAIL %s: %s" % (fn.__name__, e))
            _report()
            stop = e if isinstance(e, (SystemExit, KeyboardInterrupt)) else None
        finally:
            for p in _now["procs"]:
                if p.running():
                    p.proc.kill()
                    p.proc.wait()
            if outcome == "failed" or os.environ.get("KEEP_TMP"):
                log("(files kept in %s)" % tmp)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        counts[outcome] += 1
        if stop:
            break
    log("%(passed)d passed, %(failed)d failed, %(skipped)d skipped" % counts)
    sys.exit(1 if counts["failed"] or not fns else
             SKIP_RC if counts["skipped"] and not counts["passed"] else 0)


NODE_A, NODE_B = "02" + "a1" * 32, "03" + "b2" * 32


class FakeRpc:
    """A stand-in for lightningd's lightning-rpc: a unix stream socket that answers getinfo
    as CLN does, one JSON object (not newline-terminated, maybe in `chunks` pieces 50 ms
    apart, after `delay` s), and keeps the connection open. mode: ok, error (an error
    object), garbage (not JSON), noresult, wrongid (another request's id), huge (over
    1 MiB), badutf8 (an alias with invalid UTF-8), silent (never answers), hangup."""

    def __init__(self, path, node_id=None, alias="FAKENODE", network="regtest",
                 version="v24.11", mode="ok", delay=0.0, chunks=1, owner=None):
        self.path, self.owner = path, owner  # owner: (uid, gid), a node run by another user
        self.node_id, self.alias, self.network, self.version = (node_id or NODE_A, alias,
                                                                 network, version)
        self.mode, self.delay, self.chunks = mode, delay, chunks
        self.requests, self.conns, self.answered_at = [], [], None
        self.lock, self.stopping = threading.Lock(), False

    def __enter__(self):
        if os.path.lexists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        d, name = os.path.split(self.path)
        cwd = os.getcwd()
        os.chdir(d)  # lightningd binds a relative name in its directory: long paths work
        try:
            self.sock.bind(name)
        finally:
            os.chdir(cwd)
        os.chmod(self.path, 0o600)
        if self.owner:
            os.chown(self.path, *self.owner)
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_):
        """lightningd going away: listening socket and connections closed, file removed."""
        self.stopping = True
        for s in [self.sock] + self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        if os.path.lexists(self.path):
            os.unlink(self.path)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def answer(self, req_id):
        if self.mode == "error":
            return json.dumps({"jsonrpc": "2.0", "id": req_id,
                               "error": {"code": -32601, "message": "Unknown command 'getinfo'"}})
        if self.mode in ("garbage", "noresult"):
            return ("<html>this is not JSON</html>" if self.mode == "garbage"
                    else json.dumps({"jsonrpc": "2.0", "id": req_id}))
        result = {"id": self.node_id, "alias": self.alias, "color": "02a1a1",
                  "num_peers": 0, "num_pending_channels": 0, "num_active_channels": 0,
                  "num_inactive_channels": 0, "address": [], "binding": [],
                  "version": self.version, "blockheight": 110, "network": self.network,
                  "fees_collected_msat": 0, "lightning-dir": os.path.dirname(self.path),
                  "our_features": {"init": "08a0000a8a5961", "node": "88a0000a8a5961"}}
        if self.mode == "huge":
            result["padding"] = "x" * (1 << 20)
        if self.mode == "badutf8":
            result["alias"] = "@@ALIAS@@"
        text = json.dumps({"jsonrpc": "2.0", "id": "someone-else#7" if self.mode == "wrongid"
                           else req_id, "result": result})
        return text.encode().replace(b"@@ALIAS@@", b"ok\xff\xfe\\u0007end")

    def _serve(self, c):
        buf, dec = b"", json.JSONDecoder()
        try:
            if self.mode == "hangup":
                return c.close()
            while not self.stopping:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                try:
                    req, end = dec.raw_decode(buf.decode())
                except ValueError:
                    continue  # not complete yet
                buf = buf[end:].lstrip()
                with self.lock:
                    self.requests.append(req)
                if self.mode == "silent":
                    continue
                time.sleep(self.delay)
                out = self.answer(req.get("id"))
                out = (out.encode() if isinstance(out, str) else out) + b"\n\n"  # as lightningd
                step = -(-len(out) // max(1, self.chunks))
                for i in range(0, len(out), step):
                    c.sendall(out[i:i + step])
                    if self.chunks > 1:
                        time.sleep(0.05)
                self.answered_at = time.time()
        except OSError:
            return
