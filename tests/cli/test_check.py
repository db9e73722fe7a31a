#!/usr/bin/python3
"""cln-otlp --check: one line per check ("✓ what", "✗ what: why — what to do", "! warning"),
exit 0 when everything needed works and 1 otherwise; only the checks the options make
relevant run, nothing is exported, nothing changed.

  all_ok             (root) eBPF on a binary with probes and a lightningd running it, a node
                     answering getinfo, the mock collector: every line ✓, exit 0; one empty
                     request reached the collector; no secret printed
  nodes              (root) no --rpc-file: each lightningd running the binary asked through
                     its own lightning-rpc: ✓ with its identity; a missing socket: ✗
  no_probe           a binary without the probe: ✗ with the rebuild advice
  unprivileged       (root, runs as nobody) attach refused: ✗ privileges and ✗ eBPF, with
                     what to do (root, setcap)
  node_missing       --rpc-file names nothing: ✗ node RPC; with --file only no eBPF check
                     and with --exporter stdout no collector check
  node_silent        the node never answers getinfo: ✗ node RPC, no answer in time
  collector_refused  nothing listens at the endpoint: ✗ with connection refused
  collector_tls      https with a private CA and no --ca-cert: ✗ certificate not trusted,
                     give --ca-cert; with it: ✓
  collector_status   a collector answering 503, 401 (HTTP) and UNAUTHENTICATED (gRPC): ✗ with
                     the status and the advice
  socket_busy        (root) a socket another process receives on: ✗; a free one: ✓ and left
                     as it was; a directory the user may not write: ✗
  qlen_root          (root) a new network namespace (qlen 10) as root: ! (raised at start),
                     and --check itself did not raise it
  qlen_user          (root) the same as nobody: ✗ with the sysctl fix

usage: test_check.py TEST --cln-otlp PATH [--emitter PATH]
"""
import json
import os
import socket
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, Collector, certs, check, free_port, install, main,  # noqa: E402
                     need_root, options, release, run, start_emitter, test)

(NAME,), A = options("cln-otlp", "emitter")
AS_NOBODY = ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups"]
NODE_ID = "02" + "c3" * 32
OK, FAIL, WARN = "✓ ", "✗ ", "! "


class FakeNode:
    """lightningd's lightning-rpc, enough for getinfo: answers (mode "ok") or never does
    ("silent"). Mode 0666 so that a run as nobody may connect."""

    def __init__(self, path, mode="ok"):
        self.path, self.mode, self.requests = path, mode, []

    def __enter__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *_):
        self.sock.close()
        os.unlink(self.path)

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf, dec = b"", json.JSONDecoder()
        with c:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                try:
                    req, _ = dec.raw_decode(buf.decode())
                except ValueError:
                    continue
                self.requests.append(req)
                buf = b""
                if self.mode == "silent":
                    continue
                c.sendall(json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": {
                    "id": NODE_ID, "alias": "CHECKNODE", "network": "regtest",
                    "version": "v26.06"}}).encode() + b"\n\n")


def check_run(argv, rc, prefix=(), **kw):
    """cln-otlp --check ARGV: its stdout lines, after checking it exits rc and every line is a
    check line."""
    p = run([*prefix, A.cln_otlp, "--check", *argv], timeout=60, **kw)
    lines = p.stdout.splitlines()
    check("--check %s exits %d" % (argv, rc), p.returncode == rc,
          "exit %d\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    check("every line is ✓, ✗ or !", lines and all(ln[:2] in (OK, FAIL, WARN) for ln in lines),
          p.stdout)
    return lines


def line(lines, mark, start, *needles):
    """The one line that starts with mark + start; check() it says every needle."""
    found = [ln for ln in lines if ln.startswith(mark + start)]
    check("a line %r" % (mark + start), len(found) == 1, "\n".join(lines))
    for n in needles:
        check("%r says %r" % (found[0][:40], n), n in found[0], found[0])
    return found[0]


def layout(tmp):
    """<tmp>/bin/lightningd: the emitter, readable by anyone."""
    need_root()
    os.chmod(tmp, 0o755)
    ld = os.path.join(tmp, "bin", "lightningd")
    install(A.emitter, ld)
    os.chmod(os.path.dirname(ld), 0o755)
    return ld


@test("all_ok")
def all_ok(tmp):
    """Everything works: every line ✓, exit 0, no secret shown, nothing exported."""
    ld = layout(tmp)
    rpc = os.path.join(tmp, "lightning-rpc")
    with FakeNode(rpc) as node, Collector(tmp) as mc:
        e = start_emitter(tmp, ld, "--synthetic", "3")
        endpoint = mc.url().replace("://", "://someone:PASSWORD1@")
        lines = check_run(["--lightningd", ld, "--rpc-file", rpc, "--endpoint", endpoint,
                           "--header", "x-api-key=TOKEN2"], 0)
        release(e)
        text = "\n".join(lines)
        check("no ✗ line", FAIL not in text, text)
        # Other tests may run processes named lightningd: only those may give a warning.
        others = [ln for ln in lines if not ln.startswith(OK)]
        check("the only warnings are about other lightningd processes", all(
            ln.startswith(WARN + "running: lightningd pid ") and " pid %d " % e.pid not in ln
            for ln in others), text)
        line(lines, OK, "lightningd binary " + ld, "lightningd:span_emit probe")
        line(lines, OK, "running: lightningd pid %d (%s)" % (e.pid, ld), "is traced")
        line(lines, OK, "privileges: ")
        line(lines, OK, "eBPF: ", "attached", "detached")
        line(lines, OK, "node RPC " + rpc, NODE_ID, "CHECKNODE", "regtest", "v26.06")
        line(lines, OK, "collector http://127.0.0.1:%d" % mc.http_port, "answered")
        check("no secret shown", "PASSWORD1" not in text and "TOKEN2" not in text, text)
        reqs = mc.wait_requests(1)
        check("one request, no span", len(reqs) == 1 and reqs[0].get("spans") == 0, reqs)
        check("the node was asked getinfo", [r.get("method") for r in node.requests] ==
              ["getinfo"], node.requests)
        check("nothing recorded", not mc.records(), mc.records())


@test("nodes")
def nodes(tmp):
    """No --rpc-file: each lightningd running the binary is asked through its own
    lightning-rpc (found from its --lightning-dir and --network): ✓ with its identity;
    one whose socket is missing: ✗ with where it was looked for, exit 1."""
    ld = layout(tmp)
    ldir = os.path.join(tmp, "node")
    os.makedirs(os.path.join(ldir, "regtest"))
    rpc = os.path.join(ldir, "regtest", "lightning-rpc")
    with FakeNode(rpc):
        e = start_emitter(tmp, ld, "--lightning-dir", ldir, "--network=regtest",
                          "--synthetic", "1")
        lines = check_run(["--lightningd", ld, "--exporter", "stdout"], 0)
        line(lines, OK, "node RPC %s (lightningd pid %d)" % (rpc, e.pid), NODE_ID,
             "CHECKNODE")
        lost = start_emitter(tmp, ld, "--lightning-dir", os.path.join(tmp, "gone"),
                             "--synthetic", "1", name="lost")
        lines = check_run(["--lightningd", ld, "--exporter", "stdout"], 1)
        line(lines, OK, "node RPC %s (lightningd pid %d)" % (rpc, e.pid))
        line(lines, FAIL, "node RPC of lightningd pid %d: " % lost.pid,
             os.path.join(tmp, "gone", "bitcoin", "lightning-rpc"), "--rpc-file")
        release(e)
        release(lost)


@test("no_probe")
def no_probe(tmp):
    """A binary without the probe: ✗ and how to get one."""
    lines = check_run(["--lightningd", "/bin/true", "--exporter", "stdout"], 1)
    line(lines, FAIL, "lightningd binary: ", "no lightningd:span_emit probe",
         "systemtap-sdt-dev", "HAVE_USDT=1", "readelf -n")
    check("no attach without a binary", not [ln for ln in lines if "eBPF" in ln], lines)


@test("discover")
def discover(tmp):
    """No source option and no lightningd on PATH: not a failure, the daemon discovers nodes
    as they start; the eBPF load and attach are still checked for real."""
    need_root()
    rpc = os.path.join(tmp, "lightning-rpc")
    with FakeNode(rpc):
        lines = check_run(["--exporter", "stdout", "--rpc-file", rpc], 0,
                          env=dict(os.environ, PATH="/usr/bin:/bin"))
    line(lines, WARN, "lightningd binary: none on PATH", "discovers every binary")
    check("no ✗ line", not [ln for ln in lines if ln.startswith(FAIL)], lines)
    line(lines, OK, "eBPF: ")


@test("unprivileged")
def unprivileged(tmp):
    """As nobody: the privileges and the attach fail, each saying what to do."""
    ld = layout(tmp)
    rpc = os.path.join(tmp, "lightning-rpc")
    with FakeNode(rpc):
        lines = check_run(["--lightningd", ld, "--exporter", "stdout", "--rpc-file", rpc], 1,
                          prefix=AS_NOBODY)
    line(lines, OK, "lightningd binary " + ld)
    line(lines, FAIL, "privileges: uid 65534 holds none", "run cln-otlp as root",
         "setcap cap_bpf,cap_perfmon,cap_sys_admin+ep")
    line(lines, FAIL, "eBPF: ", "refused", "root", "CAP_BPF", "CAP_PERFMON")
    line(lines, OK, "node RPC " + rpc)


@test("node_missing")
def node_missing(tmp):
    """No socket at --rpc-file: ✗; only the node's check runs for --file + stdout."""
    rpc = os.path.join(tmp, "nope", "lightning-rpc")
    lines = check_run(["--file", CAPTURE, "--rpc-file", rpc, "--exporter", "stdout"], 1)
    line(lines, FAIL, "node RPC: ", "no lightningd JSON-RPC socket found", rpc,
         "start lightningd", "--rpc-file")
    check("only that check ran (no eBPF, no collector)", len(lines) == 1, lines)


@test("node_silent")
def node_silent(tmp):
    """A node that never answers: ✗ within the check's wait."""
    rpc = os.path.join(tmp, "lightning-rpc")
    with FakeNode(rpc, mode="silent") as node:
        lines = check_run(["--file", CAPTURE, "--rpc-file", rpc, "--exporter", "stdout"], 1)
        check("it was asked", len(node.requests) == 1, node.requests)
    line(lines, FAIL, "node RPC " + rpc + ": ", "no answer to getinfo within", "--rpc-file")


@test("collector_refused")
def collector_refused(tmp):
    """Nothing listens: ✗ connection refused, check the endpoint; only that check ran."""
    port = free_port()
    lines = check_run(["--file", CAPTURE, "--endpoint", "http://127.0.0.1:%d" % port], 1)
    line(lines, FAIL, "collector http://127.0.0.1:%d: " % port, "connect",
         "is the collector running", "--endpoint")
    check("only that check ran", len(lines) == 1, lines)


@test("collector_tls")
def collector_tls(tmp):
    """A private CA: ✗ not trusted, give --ca-cert; with --ca-cert: ✓."""
    d = certs(tmp)
    with Collector(tmp, tls=d) as mc:
        url = mc.url(host="localhost")
        lines = check_run(["--file", CAPTURE, "--endpoint", url], 1)
        line(lines, FAIL, "collector https://localhost:%d: " % mc.http_port,
             "TLS certificate is not trusted", "give that CA with --ca-cert")
        lines = check_run(["--file", CAPTURE, "--endpoint", url, "--ca-cert", d + "/ca.crt"], 0)
        line(lines, OK, "collector https://localhost:%d" % mc.http_port, "answered")


@test("collector_status")
def collector_status(tmp):
    """Error statuses: ✗ with the status and what to do."""
    with Collector(tmp, script="503,401") as mc:
        for status, advice in (("503", "not ready or overloaded"), ("401", "credentials")):
            lines = check_run(["--file", CAPTURE, "--endpoint", mc.url()], 1)
            line(lines, FAIL, "collector http://127.0.0.1:%d: " % mc.http_port,
                 "HTTP " + status, advice)
    with Collector(tmp, http=False, grpc=True, script="grpc=16") as mc:
        lines = check_run(["--file", CAPTURE, "--protocol", "grpc", "--endpoint",
                           mc.url(grpc=True)], 1)
        line(lines, FAIL, "collector http://127.0.0.1:%d: " % mc.grpc_port, "gRPC status 16",
             "credentials")
        lines = check_run(["--file", CAPTURE, "--protocol", "grpc", "--endpoint",
                           mc.url(grpc=True)], 0)
        line(lines, OK, "collector http://127.0.0.1:%d" % mc.grpc_port, "gRPC OK")


@test("socket_busy")
def socket_busy(tmp):
    """A socket someone receives on: ✗; a free path: ✓, and --check creates nothing."""
    need_root("the socket check runs with the datagram queue as root")
    rpc, path = os.path.join(tmp, "lightning-rpc"), os.path.join(tmp, "trace.sock")
    with FakeNode(rpc):
        lines = check_run(["--socket", path, "--exporter", "stdout", "--rpc-file", rpc], 0)
        line(lines, OK, "socket " + path, "free")
        check("--check created no socket", not os.path.lexists(path))
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as other:
            other.bind(path)
            lines = check_run(["--socket", path, "--exporter", "stdout", "--rpc-file", rpc], 1)
            line(lines, FAIL, "socket: --socket " + path, "another process receives",
                 "stop it, or give this one another --socket path")
            check("the other's socket is still there", os.path.lexists(path))
        # A directory the user cannot create the socket in.
        os.unlink(path)
        os.chmod(tmp, 0o755)
        lines = check_run(["--socket", path, "--exporter", "stdout", "--rpc-file", rpc], 1,
                          prefix=AS_NOBODY)
        line(lines, FAIL, "socket: --socket " + path, "cannot create a file in " + tmp,
             "make it writable by the user cln-otlp starts as")


def qlen_lines(tmp, prefix):
    run_dir = os.path.join(tmp, "run")
    os.mkdir(run_dir)
    os.chmod(run_dir, 0o777)
    os.chmod(tmp, 0o755)
    rpc = os.path.join(tmp, "lightning-rpc")
    with FakeNode(rpc):
        p = run(["unshare", "-n", "sh", "-c", '%s "$@"; echo "rc=$?"; cat '
                 "/proc/sys/net/unix/max_dgram_qlen" % " ".join(prefix), "sh", A.cln_otlp,
                 "--check", "--socket", run_dir + "/s", "--exporter", "stdout",
                 "--rpc-file", rpc], timeout=60)
    out = p.stdout.splitlines()
    check("the shell ran", p.returncode == 0 and len(out) >= 2, p.stdout + p.stderr)
    return out[:-2], out[-2], int(out[-1])


@test("qlen_root")
def qlen_root(tmp):
    """Root in a new network namespace: a warning (raised at start), nothing changed."""
    need_root("it makes network namespaces")
    lines, rc, qlen = qlen_lines(tmp, [])
    check("exit 0: a raisable qlen is no failure", rc == "rc=0", "\n".join(lines + [rc]))
    line(lines, WARN, "net.unix.max_dgram_qlen is 10 ", "below 512",
         "raises it when it starts")
    check("--check did not raise it", qlen == 10, qlen)


@test("qlen_user")
def qlen_user(tmp):
    """Nobody in a new network namespace: ✗ with the sysctl fix."""
    need_root("it makes network namespaces and switches users")
    lines, rc, _ = qlen_lines(tmp, AS_NOBODY)
    check("exit 1", rc == "rc=1", "\n".join(lines + [rc]))
    line(lines, FAIL, "net.unix.max_dgram_qlen is 10 ", "cannot raise it",
         "sysctl -w net.unix.max_dgram_qlen=512", "sysctls: net.unix.max_dgram_qlen: 512")
    line(lines, OK, "socket ")


if __name__ == "__main__":
    main([NAME])
