#!/usr/bin/python3
"""The node's identity (getinfo over lightning-rpc) on the resource, end to end through the
real binary and a fake lightning-rpc (fake_lightning_rpc.py). No root needed except for
"usdt".

  basic      every span carries service.version, service.instance.id, cln.alias, cln.network;
             the request is the documented getinfo; the answer arrives in pieces
  slow       an answer within the start-up wait: still on every span; one slower than the
             wait: the first spans go without, later ones carry it, start-up stays bounded
  restart    lightningd stops (socket gone), comes back with another node id: spans after
             it carry the new id; a quick restart (new socket at once) is noticed too
  nosocket   no socket (--rpc-file missing, or nothing under ~/.lightning): spans flow
             without the attributes and one info line says how to add them
  malformed  garbage, an error object, no result, another request's id, an answer over
             1 MiB, a hang-up: a warning, no crash, spans flow, exit 0; bad UTF-8 cleaned
  discover   no --rpc-file: found under $HOME/.lightning/<network>/ and the old layout
             $HOME/.lightning/lightning-rpc; a path longer than sun_path works
  usdt       (root) eBPF source: found through the lightningd process's directory
  privs      (root) a node run by another user (socket 0600): asked at start; after a
             restart, asked again as --user, and without --user a warning that says so

usage: test_nodeinfo.py CLN_OTLP DATA_DIR CASE [EMITTER]
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fake_lightning_rpc import FakeRpc, NODE_A, NODE_B  # noqa: E402

cln_otlp, data_dir, which = sys.argv[1:4]
emitter = sys.argv[4] if len(sys.argv) > 4 else None
capture = os.path.abspath(os.path.join(data_dir, "cln-v26-startup", "lightningd-trace.32274"))
KEYS = ("service.version", "service.instance.id", "cln.alias", "cln.network")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def span_ids(path):
    return {json.loads(l.split(" ", 2)[2])[0]["id"] for l in open(path, encoding="utf-8")
            if l.startswith("span_emit ")}


def spans_of(stdout):
    """span id -> resource attributes (key -> string value) from the stdout exporter."""
    out = {}
    for line in stdout.splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            res = {a["key"]: a["value"].get("stringValue", a["value"].get("intValue"))
                   for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    out[sp["spanId"]] = res
    return out


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


class Run:
    """cln-otlp following a copy of the real capture, printing spans on stdout."""

    def __init__(self, tmp, args, env=None, name="run", follow=True):
        self.tmp = tmp
        self.trace = os.path.join(tmp, f"{name}-trace.32274")
        shutil.copy(capture, self.trace)
        self.out = open(os.path.join(tmp, f"{name}.out"), "w+")
        self.err = open(os.path.join(tmp, f"{name}.err"), "w+")
        cmd = [cln_otlp, "--file", self.trace, "--exporter", "stdout", "--batch-delay", "200"]
        if follow:
            cmd.append("--follow")
        self.started = time.time()
        self.proc = subprocess.Popen(cmd + args, stdout=self.out, stderr=self.err, text=True,
                                     env=env)

    # Read through a fresh open: the child writes through a descriptor that shares the
    # offset of self.out/self.err, so seeking them while it runs would move its writes.
    def stdout(self):
        with open(self.out.name) as f:
            return f.read()

    def stderr(self):
        with open(self.err.name) as f:
            return f.read()

    def spans(self):
        try:
            return spans_of(self.stdout())
        except ValueError:
            return {}  # a line being written

    def wait_spans(self, ids, timeout=10):
        return wait_for(lambda: ids <= set(self.spans()), timeout)

    def append(self, ids, tag):
        """Append spans with these ids (CLN's span_emit lines) to the followed file."""
        with open(self.trace, "a") as f:
            for i, sid in enumerate(ids):
                f.write(f'span_emit {sid} [{{"id":"{sid}","name":"{tag}","timestamp":'
                        f'{1795660400000000 + i},"duration":5,"localEndpoint":'
                        f'{{"serviceName":"lightningd"}},"tags":{{}},'
                        f'"traceId":"074c67a29952a72ce3a9ce4137f3d273"}}]\n')

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        return rc, self.spans(), self.stderr()


def env_home(home):
    env = dict(os.environ)
    env["HOME"] = home
    return env


def has_node(res, node_id, alias="FAKENODE", network="regtest", version="v24.11"):
    return (res.get("service.instance.id") == node_id and res.get("cln.alias") == alias and
            res.get("cln.network") == network and res.get("service.version") == version)


def test_basic(tmp):
    sock = os.path.join(tmp, "lightning-rpc")
    rpc = FakeRpc(sock, chunks=4).start()
    want = span_ids(capture)
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp))
    check("all spans printed", run.wait_spans(want), run.stderr())
    rc, got, err = run.stop()
    rpc.stop()
    check("exit 0 after SIGTERM", rc == 0, err)
    check(f"{len(want)} spans", set(got) == want, f"got {len(got)}")
    bad = [sid for sid, res in got.items() if not has_node(res, NODE_A)]
    check("every span carries the node's identity", not bad,
          f"{len(bad)} without, e.g. {got[bad[0]] if bad else ''}")
    one = next(iter(got.values()), {})
    check("service.name and process.pid kept", one.get("service.name") == "lightningd" and
          one.get("process.pid") == "32274", str(one))
    check("one getinfo request", len(rpc.requests) == 1, str(rpc.requests))
    if rpc.requests:
        check("the request", rpc.requests[0] == {"jsonrpc": "2.0", "id": "cln-otlp:getinfo#1",
                                                 "method": "getinfo", "params": {}},
              str(rpc.requests[0]))
    check("identity logged", NODE_A in err and "FAKENODE" in err, err)
    check("no warning", "warning" not in err, err)


def test_slow(tmp):
    # Within the start-up wait (1 s): every span still carries it.
    sock = os.path.join(tmp, "lightning-rpc")
    rpc = FakeRpc(sock, delay=0.3, chunks=3).start()
    want = span_ids(capture)
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name="slow")
    check("all spans printed", run.wait_spans(want), run.stderr())
    rc, got, err = run.stop()
    rpc.stop()
    check("exit 0", rc == 0, err)
    bad = [sid for sid, res in got.items() if not has_node(res, NODE_A)]
    check("a slow answer within the start-up wait: on every span", not bad and got,
          f"{len(bad)} of {len(got)} without")

    # Slower than the wait: start-up is bounded, the answer is heard later from the loop.
    rpc = FakeRpc(sock, delay=4).start()
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name="slower")
    first = wait_for(lambda: want <= set(run.spans()), 10)
    took = time.time() - run.started
    check("spans flow without waiting for the node", first and took < 3.5, f"{took:.2f} s")
    check("says it goes on without", "has not answered getinfo" in run.stderr(), run.stderr())
    check("node heard later", wait_for(lambda: NODE_A in run.stderr(), 10), run.stderr())
    later = {f"{0xc0ffee000000 + i:016x}" for i in range(20)}
    run.append(sorted(later), "after-answer")
    check("later spans printed", run.wait_spans(later), run.stderr())
    rc, got, err = run.stop()
    rpc.stop()
    check("exit 0", rc == 0, err)
    check("early spans without the identity",
          all("service.instance.id" not in got[s] for s in want if s in got))
    check("later spans with it", all(has_node(got[s], NODE_A) for s in later if s in got) and
          later <= set(got))


def test_restart(tmp):
    sock = os.path.join(tmp, "lightning-rpc")
    rpc = FakeRpc(sock, node_id=NODE_A, alias="ALPHA").start()
    want = span_ids(capture)
    run = Run(tmp, ["--rpc-file", sock, "-v"], env_home(tmp))
    check("all spans printed", run.wait_spans(want), run.stderr())

    # lightningd stops; a while later a node with another id starts.
    rpc.stop()
    time.sleep(2.5)
    rpc2 = FakeRpc(sock, node_id=NODE_B, alias="BRAVO", network="signet",
                   version="v25.02").start()
    check("new node asked", wait_for(lambda: NODE_B in run.stderr(), 10), run.stderr())
    after = {f"{0xb0b0000000 + i:016x}" for i in range(30)}
    run.append(sorted(after), "after-restart")
    check("spans after the restart printed", run.wait_spans(after), run.stderr())

    # A quick restart: the socket replaced at once (the connection closes, a new file).
    rpc2.stop()
    rpc3 = FakeRpc(sock, node_id=NODE_A, alias="AGAIN").start()
    check("quick restart noticed", wait_for(lambda: "AGAIN" in run.stderr(), 10),
          run.stderr())
    again = {f"{0xa0a0000000 + i:016x}" for i in range(10)}
    run.append(sorted(again), "after-quick-restart")
    check("spans after the quick restart printed", run.wait_spans(again), run.stderr())
    rc, got, err = run.stop()
    rpc3.stop()
    check("exit 0", rc == 0, err)
    check("first spans carry the first node",
          all(has_node(got[s], NODE_A, alias="ALPHA") for s in want), "")
    check("spans after the restart carry the new node",
          all(has_node(got[s], NODE_B, "BRAVO", "signet", "v25.02") for s in after),
          str([got[s] for s in after][:1]))
    check("spans after the quick restart carry the third",
          all(has_node(got[s], NODE_A, alias="AGAIN") for s in again),
          str([got[s] for s in again][:1]))
    check("each node asked once", len(rpc.requests) == len(rpc2.requests) ==
          len(rpc3.requests) == 1, f"{rpc.requests} {rpc2.requests} {rpc3.requests}")
    ids = [r["id"] for r in rpc.requests + rpc2.requests + rpc3.requests]
    check("a stopped node is not reported as missing", "socket found" not in err, err)
    check("request ids count up", ids == [f"cln-otlp:getinfo#{i}" for i in (1, 2, 3)], str(ids))
    check("no warning", "warning" not in err, err)


def test_nosocket(tmp):
    want = span_ids(capture)
    for name, args in (("missing", ["--rpc-file", os.path.join(tmp, "no-such-rpc")]),
                       ("nothing", [])):
        run = Run(tmp, args, env_home(tmp), name=name)
        check(f"{name}: all spans printed", run.wait_spans(want), run.stderr())
        time.sleep(2.5)  # a few more looks for the socket
        rc, got, err = run.stop()
        check(f"{name}: exit 0", rc == 0, err)
        check(f"{name}: no node attributes",
              not any(k in res for res in got.values() for k in KEYS), "")
        check(f"{name}: says how to add them, once", err.count("--rpc-file") == 1, err)
        check(f"{name}: no warning", "warning" not in err, err)
    # A stale socket file (lightningd stopped): nobody listens.
    sock = os.path.join(tmp, "stale-rpc")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)
    stale.close()
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name="stale")
    check("stale: all spans printed", run.wait_spans(want), run.stderr())
    rc, got, err = run.stop()
    check("stale: exit 0", rc == 0, err)
    check("stale: says nobody listens", "nobody listens" in err, err)
    check("stale: no node attributes", not any(k in r for r in got.values() for k in KEYS))


def test_malformed(tmp):
    want = span_ids(capture)
    cases = (("garbage", "not a JSON object"), ("error", "Unknown command"),
             ("noresult", "no \"result\""), ("wrongid", "not the answer"),
             ("huge", "larger than"), ("hangup", "closed the connection"))
    for mode, says in cases:
        sock = os.path.join(tmp, f"{mode}-rpc")
        rpc = FakeRpc(sock, mode=mode).start()
        run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name=mode)
        check(f"{mode}: all spans printed", run.wait_spans(want), run.stderr())
        wait_for(lambda: "warning" in run.stderr(), 10)  # a slow fake on a loaded machine
        rc, got, err = run.stop()
        rpc.stop()
        check(f"{mode}: exit 0", rc == 0, err)
        check(f"{mode}: a warning that says why", "warning" in err and says in err, err)
        check(f"{mode}: no node attributes",
              not any(k in r for r in got.values() for k in KEYS), "")
        # Asked at once, and again after 2 s, 4 s... when the run lasts (a loaded machine).
        check(f"{mode}: asked", (len(rpc.requests) >= 1 or mode == "hangup") and
              len(rpc.requests) <= 3, str(rpc.requests))
    sock = os.path.join(tmp, "utf8-rpc")
    rpc = FakeRpc(sock, mode="badutf8").start()
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name="badutf8", follow=False)
    rc = run.proc.wait(timeout=20)
    got = run.spans()
    rpc.stop()
    check("badutf8: exit 0 (end of file)", rc == 0, run.stderr())
    aliases = {r.get("cln.alias") for r in got.values()}
    check("badutf8: alias cleaned", aliases == {"ok???end"}, str(aliases))


def test_discover(tmp):
    want = span_ids(capture)
    layouts = (("network", os.path.join(".lightning", "testnet4", "lightning-rpc")),
               ("old", os.path.join(".lightning", "lightning-rpc")))
    for name, rel in layouts:
        home = os.path.join(tmp, f"home-{name}")
        sock = os.path.join(home, rel)
        os.makedirs(os.path.dirname(sock))
        rpc = FakeRpc(sock, network="testnet4" if name == "network" else "bitcoin").start()
        # Discovery is for live sources (a replayed file may come from any node): follow.
        run = Run(tmp, [], env_home(home), name=name, follow=True)
        time.sleep(1.5)
        rc, got, _ = run.stop()
        rpc.stop()
        check(f"{name}: exit 0", rc == 0, run.stderr())
        nets = {r.get("cln.network") for r in got.values()}
        check(f"{name}: found under $HOME/{rel}", set(got) == want and
              nets == {"testnet4" if name == "network" else "bitcoin"}, f"{nets} {run.stderr()}")
    # A plain replay (no --follow, no --rpc-file) does not ask whatever node runs here.
    home = os.path.join(tmp, "home-replay")
    sock = os.path.join(home, ".lightning", "regtest", "lightning-rpc")
    os.makedirs(os.path.dirname(sock))
    rpc = FakeRpc(sock, network="regtest").start()
    run = Run(tmp, [], env_home(home), name="replay", follow=False)
    rc = run.proc.wait(timeout=20)
    got = run.spans()
    rpc.stop()
    nets = {r.get("cln.network") for r in got.values()}
    check("replay: exit 0", rc == 0, run.stderr())
    check("replay: a replayed file is not given this machine's node identity",
          set(got) == want and nets == {None}, str(nets))
    # Longer than a unix socket address can hold (lightningd binds a relative name).
    deep = os.path.join(tmp, "d" * 60, "e" * 60)
    os.makedirs(deep)
    sock = os.path.join(deep, "lightning-rpc")
    rpc = FakeRpc(sock).start()
    run = Run(tmp, ["--rpc-file", sock], env_home(tmp), name="long", follow=False)
    rc = run.proc.wait(timeout=20)
    got = run.spans()
    rpc.stop()
    check("long path: exit 0", rc == 0, run.stderr())
    check(f"long path ({len(sock)} bytes): asked",
          got and all(has_node(r, NODE_A) for r in got.values()), run.stderr())


def test_usdt(tmp):
    if os.geteuid() != 0:
        print("usdt: needs root", file=sys.stderr)
        sys.exit(77)
    # A stand-in lightningd: the emitter under that name, running in its network directory
    # as lightningd does; its socket is found through the process, not through $HOME.
    bindir = os.path.join(tmp, "bin")
    netdir = os.path.join(tmp, "node", "regtest")
    os.makedirs(bindir)
    os.makedirs(netdir)
    ld = os.path.join(bindir, "lightningd")
    shutil.copy(emitter, ld)
    rpc = FakeRpc(os.path.join(netdir, "lightning-rpc"), node_id=NODE_B, alias="PROBED").start()
    want = span_ids(capture)
    for name, extra in (("scan", []), ("pid", ["--pid"])):
        go = os.path.join(tmp, f"go-{name}")
        pidfile = os.path.join(tmp, f"pid-{name}")
        em = subprocess.Popen([ld, "--wait-file", go, "--pid-file", pidfile, "--quiet",
                               capture], cwd=netdir, stderr=subprocess.PIPE, text=True)
        started = wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 10)
        if not started or em.poll() is not None:
            em.kill()
            check(f"{name}: the stand-in lightningd runs", False, em.communicate()[1])
            continue
        args = ["--lightningd", ld, "--exporter", "stdout", "--batch-delay", "200"]
        if extra:
            args += extra + [open(pidfile).read().strip()]
        out = open(os.path.join(tmp, f"{name}.out"), "w+")
        err = open(os.path.join(tmp, f"{name}.err"), "w+")
        proc = subprocess.Popen([cln_otlp] + args, stdout=out, stderr=err, text=True,
                                env=env_home(tmp))
        attached = wait_for(lambda: NODE_B in open(err.name).read() and
                            "attach" in open(err.name).read(), 20)
        check(f"{name}: attached and asked the node", attached, open(err.name).read())
        time.sleep(0.5)
        open(go, "w").close()
        em.wait(timeout=30)
        wait_for(lambda: want <= set(spans_of(open(out.name).read())), 10)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
        got = spans_of(open(out.name).read())
        errtext = open(err.name).read()
        check(f"{name}: exit 0", rc == 0, errtext)
        check(f"{name}: every span captured", want <= set(got), f"{len(got)} of {len(want)}")
        check(f"{name}: carry the node found through lightningd's directory",
              got and all(has_node(r, NODE_B, alias="PROBED") for r in got.values()),
              errtext)
        check(f"{name}: the socket named as lightningd's", netdir in errtext, errtext)
    rpc.stop()


def test_privs(tmp):
    if os.geteuid() != 0:
        print("privs: needs root", file=sys.stderr)
        sys.exit(77)
    nobody = (65534, 65534)
    os.chmod(tmp, 0o755)
    want = span_ids(capture)
    for name, args in (("as-user", ["--user", "nobody"]), ("root", [])):
        sock = os.path.join(tmp, f"{name}-rpc")
        rpc = FakeRpc(sock, alias="BEFORE", owner=nobody).start()
        run = Run(tmp, ["--rpc-file", sock] + args, env_home(tmp), name=name)
        os.chmod(run.trace, 0o644)
        check(f"{name}: all spans printed", run.wait_spans(want), run.stderr())
        check(f"{name}: asked at start", all(has_node(r, NODE_A, alias="BEFORE")
                                             for r in run.spans().values()), run.stderr())
        rpc.stop()
        rpc = FakeRpc(sock, node_id=NODE_B, alias="AFTER", owner=nobody).start()
        if args:
            check(f"{name}: asked again after the restart",
                  wait_for(lambda: "AFTER" in run.stderr(), 10), run.stderr())
        else:
            check(f"{name}: a warning that says to use --user",
                  wait_for(lambda: "Permission denied" in run.stderr(), 10) and
                  "--user" in run.stderr(), run.stderr())
        rc, got, err = run.stop()
        rpc.stop()
        check(f"{name}: exit 0", rc == 0, err)


with tempfile.TemporaryDirectory() as tmpdir:
    {"basic": test_basic, "slow": test_slow, "restart": test_restart,
     "nosocket": test_nosocket, "malformed": test_malformed, "discover": test_discover,
     "usdt": test_usdt, "privs": test_privs}[which](tmpdir)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
