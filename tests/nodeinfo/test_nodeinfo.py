#!/usr/bin/python3
"""The node's identity (getinfo over lightning-rpc) on the resource, end to end through the
real binary and a fake lightning-rpc (FakeRpc below). No root needed except for "usdt" and
"privs".

  basic      every span carries service.version, cln.node.id, cln.alias, cln.network (and
             service.instance.id, derived from cln.node.id);
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
             restart, asked again as --user, and as the default user (cln-otlp or nobody,
             not the node's) a warning that says to use --user

usage: test_nodeinfo.py CLN_OTLP CASE [EMITTER]
"""
import json
import math
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, NODE_A, NODE_B, FakeRpc, Proc, check, cln_json,  # noqa
                     give_to_daemon, main, need_root, read_lines, release, span_payloads,
                     start_emitter, test, wait_for)

cln_otlp, NAME = sys.argv[1:3]
emitter = sys.argv[3] if len(sys.argv) > 3 else None
KEYS = ("service.version", "cln.node.id", "cln.alias", "cln.network")
UUID5 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
WANT = {json.loads(p)[0]["id"] for p in span_payloads(CAPTURE)}


def start(tmp, args, home=None, name="run", follow=True):
    """cln-otlp on a copy of the real capture (followed), printing spans on stdout."""
    trace = os.path.join(tmp, f"{name}-trace.32274")
    shutil.copy(CAPTURE, trace)
    os.chmod(trace, 0o644)
    d = Proc([cln_otlp, "--file", trace, "--exporter", "stdout", "--batch-delay", "200"] +
             ["--follow"] * follow + args, tmp, name, env=dict(os.environ, HOME=home or tmp))
    d.trace = trace
    return d


def resources(d):
    """span id -> its resource attributes."""
    return {sp["spanId"]: res for res, sp in d.spans()}


def wait_spans(d, ids=WANT, what="all spans printed"):
    return d.wait(lambda: ids <= set(resources(d)) and time.time(), 30, what)


def append(d, ids, tag):
    """Append spans with these ids (CLN's span_emit lines) to the followed file."""
    with open(d.trace, "a") as f:
        for i, sid in enumerate(sorted(ids)):
            f.write(f"span_emit {sid} {cln_json(sid, tag, ts=1795660400000000 + i, dur=5)}\n")


def instance_id(res):
    """service.instance.id as cln-otlp derives it (README): UUIDv5 of node/executable/pid."""
    name = "%s/%s/%s" % (res.get("cln.node.id"), res.get("process.executable.name", ""),
                         res.get("process.pid"))
    return str(uuid.uuid5(uuid.UUID("4d63009a-8d0f-11ee-aad7-4c796ed8e320"), name))


def has_node(res, node_id, alias="FAKENODE", network="regtest", version="v24.11"):
    """The node's identity, and the process's instance id derived from it."""
    return (res.get("cln.node.id"), res.get("cln.alias"), res.get("cln.network"),
            res.get("service.version")) == (node_id, alias, network, version) and \
        (res.get("service.instance.id") == instance_id(res) and
         UUID5.fullmatch(res["service.instance.id"]) is not None
         if res.get("process.pid") else "service.instance.id" not in res)


def stopped(d, what="exit 0 after SIGTERM", sig=signal.SIGTERM):
    d.stopped(sig=sig, what=what)
    return resources(d), d.err()


@test("basic")
def basic(tmp):
    sock = os.path.join(tmp, "lightning-rpc")
    with FakeRpc(sock, chunks=4) as rpc:
        d = start(tmp, ["--rpc-file", sock])
        wait_spans(d)
        got, err = stopped(d)
    check(f"{len(WANT)} spans", set(got) == WANT, len(got))
    bad = [sid for sid, res in got.items() if not has_node(res, NODE_A)]
    check("every span carries the node's identity", not bad, bad[:1] and got[bad[0]])
    one = next(iter(got.values()))
    check("service.name and process.pid kept",
          (one.get("service.name"), one.get("process.pid")) == ("lightningd", 32274), one)
    check("one getinfo request", len(rpc.requests) == 1, rpc.requests)
    check("the request", rpc.requests[0] == {"jsonrpc": "2.0", "id": "cln-otlp:getinfo#1",
                                             "method": "getinfo", "params": {}}, rpc.requests)
    check("identity logged", NODE_A in err and "FAKENODE" in err, err)
    check("no warning", "warning" not in err, err)


@test("slow")
def slow(tmp):
    sock = os.path.join(tmp, "lightning-rpc")
    with FakeRpc(sock, delay=0.3, chunks=3):  # within the start-up wait (1 s)
        d = start(tmp, ["--rpc-file", sock], name="slow")
        wait_spans(d)
        got, _ = stopped(d, "exit 0")
    bad = [sid for sid, res in got.items() if not has_node(res, NODE_A)]
    check("a slow answer within the start-up wait: on every span", not bad and got,
          f"{len(bad)} of {len(got)} without")

    # Slower than the wait: start-up is bounded, the answer is heard later from the loop.
    later = {f"{0xc0ffee000000 + i:016x}" for i in range(20)}
    with FakeRpc(sock, delay=4) as rpc:
        d = start(tmp, ["--rpc-file", sock], name="slower")
        seen = wait_spans(d)
        check("spans flow without waiting for the node",
              rpc.answered_at is None or seen < rpc.answered_at, (seen, rpc.answered_at))
        check("says it goes on without", "has not answered getinfo" in d.err(), d.err())
        d.wait(lambda: NODE_A in d.err(), 30, "node heard later")
        append(d, later, "after-answer")
        wait_spans(d, later, "later spans printed")
        got, _ = stopped(d, "exit 0")
    check("early spans without the identity", WANT <= set(got) and
          all("cln.node.id" not in got[s] and "service.instance.id" not in got[s]
              for s in WANT))
    check("later spans with it", later <= set(got) and all(has_node(got[s], NODE_A)
                                                          for s in later))


def daemon_owner(tmp):
    """Started as root, cln-otlp runs as cln-otlp or nobody once set up (src/privs.h): a
    node run by that user, whose socket it can reach again after a restart. None otherwise."""
    return give_to_daemon(tmp)
@test("restart")
def restart(tmp):
    owner = daemon_owner(tmp)
    sock = os.path.join(tmp, "lightning-rpc")
    after = {f"{0xb0b0000000 + i:016x}" for i in range(30)}
    again = {f"{0xa0a0000000 + i:016x}" for i in range(10)}
    with FakeRpc(sock, node_id=NODE_A, alias="ALPHA", owner=owner) as rpc:
        d = start(tmp, ["--rpc-file", sock, "-v"])
        wait_spans(d)
    # lightningd stops; a while later (over a look at its socket, one every 2 s) a node with
    # another id starts.
    d.wait_err("lightningd closed its JSON-RPC connection")
    time.sleep(2.5)
    with FakeRpc(sock, node_id=NODE_B, alias="BRAVO", network="signet", version="v25.02",
                 owner=owner) as rpc2:
        d.wait(lambda: NODE_B in d.err(), 30, "new node asked")
        append(d, after, "after-restart")
        wait_spans(d, after, "spans after the restart printed")
    # A quick restart: the socket replaced at once (the connection closes, a new file).
    with FakeRpc(sock, node_id=NODE_A, alias="AGAIN", owner=owner) as rpc3:
        d.wait(lambda: "AGAIN" in d.err(), 30, "quick restart noticed")
        append(d, again, "after-quick-restart")
        wait_spans(d, again, "spans after the quick restart printed")
        got, err = stopped(d, "exit 0")
    check("first spans carry the first node", all(has_node(got[s], NODE_A, alias="ALPHA")
                                                   for s in WANT))
    check("spans after the restart carry the new node",
          all(has_node(got[s], NODE_B, "BRAVO", "signet", "v25.02") for s in after))
    check("spans after the quick restart carry the third",
          all(has_node(got[s], NODE_A, alias="AGAIN") for s in again))
    reqs = [rpc.requests, rpc2.requests, rpc3.requests]
    check("each node asked once", [len(r) for r in reqs] == [1, 1, 1], reqs)
    check("a stopped node is not reported as missing", "socket found" not in err, err)
    check("request ids count up", [r[0]["id"] for r in reqs] ==
          [f"cln-otlp:getinfo#{i}" for i in (1, 2, 3)], reqs)
    check("no warning", "warning" not in err, err)


@test("nosocket")
def nosocket(tmp):
    for name, args in (("missing", ["--rpc-file", os.path.join(tmp, "no-such-rpc")]),
                       ("nothing", [])):
        d = start(tmp, args, name=name)
        wait_spans(d, what=f"{name}: all spans printed")
        time.sleep(2.5)  # the socket is looked for every 2 s: the hint must not come again
        got, err = stopped(d, f"{name}: exit 0")
        check(f"{name}: no node attributes", not any(k in r for r in got.values() for k in KEYS))
        check(f"{name}: says how to add them, once", err.count("--rpc-file") == 1, err)
        check(f"{name}: no warning", "warning" not in err, err)
    # A stale socket file (lightningd stopped): nobody listens.
    sock = os.path.join(tmp, "stale-rpc")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(sock)
    d = start(tmp, ["--rpc-file", sock], name="stale")
    wait_spans(d, what="stale: all spans printed")
    got, err = stopped(d, "stale: exit 0")
    check("stale: says nobody listens", "nobody listens" in err, err)
    check("stale: no node attributes", not any(k in r for r in got.values() for k in KEYS))


@test("malformed")
def malformed(tmp):
    for mode, says in (("garbage", "not a JSON object"), ("error", "Unknown command"),
                       ("noresult", "no \"result\""), ("wrongid", "not the answer"),
                       ("huge", "larger than"), ("hangup", "closed the connection")):
        sock = os.path.join(tmp, f"{mode}-rpc")
        with FakeRpc(sock, mode=mode) as rpc:
            t0 = time.monotonic()
            d = start(tmp, ["--rpc-file", sock], name=mode)
            wait_spans(d, what=f"{mode}: all spans printed")
            d.wait(lambda: "warning" in d.err(), 30, f"{mode}: a warning")
            got, err = stopped(d, f"{mode}: exit 0")
            ran = time.monotonic() - t0
        check(f"{mode}: a warning that says why", "warning" in err and says in err, err)
        check(f"{mode}: no node attributes", not any(k in r for r in got.values() for k in KEYS))
        # Asked at once, then again after waits of 2 s, 4 s, 8 s...: attempt n+1 comes no
        # sooner than 2 (2^n - 1) s into the run, however long this one lasted.
        most = 1 + int(math.log2(ran / 2 + 1))
        check(f"{mode}: asked, at most {most} times in {ran:.1f} s",
              (len(rpc.requests) >= 1 or mode == "hangup") and len(rpc.requests) <= most,
              rpc.requests)
    sock = os.path.join(tmp, "utf8-rpc")
    with FakeRpc(sock, mode="badutf8"):
        got, _ = stopped(start(tmp, ["--rpc-file", sock], name="badutf8", follow=False),
                         "badutf8: exit 0 (end of file)", sig=None)
    aliases = {r.get("cln.alias") for r in got.values()}
    check("badutf8: alias cleaned", aliases == {"ok???end"}, aliases)


@test("discover")
def discover(tmp):
    for name, rel, net in (("network", ".lightning/testnet4/lightning-rpc", "testnet4"),
                           ("old", ".lightning/lightning-rpc", "bitcoin")):
        home = os.path.join(tmp, f"home-{name}")
        os.makedirs(os.path.dirname(os.path.join(home, rel)))
        with FakeRpc(os.path.join(home, rel), network=net):
            # Discovery is for live sources (a replayed file may come from any node): follow.
            d = start(tmp, [], home, name=name)
            d.wait(lambda: set(resources(d)) == WANT and {r.get("cln.network") for r in
                                                          resources(d).values()} == {net}, 30,
                   f"{name}: found under $HOME/{rel}")
            got, _ = stopped(d, f"{name}: exit 0")
        nets = {r.get("cln.network") for r in got.values()}
        check(f"{name}: found under $HOME/{rel}", set(got) == WANT and nets == {net}, nets)
    # A plain replay (no --follow, no --rpc-file) does not ask whatever node runs here.
    home = os.path.join(tmp, "home-replay")
    os.makedirs(os.path.join(home, ".lightning", "regtest"))
    with FakeRpc(os.path.join(home, ".lightning", "regtest", "lightning-rpc")):
        got, _ = stopped(start(tmp, [], home, name="replay", follow=False), "replay: exit 0",
                         sig=None)
    nets = {r.get("cln.network") for r in got.values()}
    check("replay: a replayed file is not given this machine's node identity",
          set(got) == WANT and nets == {None}, nets)
    # Longer than a unix socket address can hold (lightningd binds a relative name).
    sock = os.path.join(tmp, "d" * 60, "e" * 60, "lightning-rpc")
    os.makedirs(os.path.dirname(sock))
    with FakeRpc(sock):
        got, _ = stopped(start(tmp, ["--rpc-file", sock], name="long", follow=False),
                         "long path: exit 0", sig=None)
    check(f"long path ({len(sock)} bytes): asked",
          got and all(has_node(r, NODE_A) for r in got.values()))


@test("usdt")
def usdt(tmp):
    need_root()
    # A stand-in lightningd: the emitter under that name, running in its network directory
    # as lightningd does; its socket is found through the process, not through $HOME.
    netdir = os.path.join(tmp, "node", "regtest")
    os.makedirs(netdir)
    os.makedirs(os.path.join(tmp, "bin"))
    ld = os.path.join(tmp, "bin", "lightningd")
    shutil.copy(emitter, ld)
    with FakeRpc(os.path.join(netdir, "lightning-rpc"), node_id=NODE_B, alias="PROBED"):
        for name, extra in (("scan", []), ("pid", ["--pid"])):
            linger = os.path.join(tmp, name + ".linger")
            em = start_emitter(tmp, ld, "--quiet", "--linger-file", linger, CAPTURE,
                               name=f"{name}-emitter", cwd=netdir)
            d = Proc([cln_otlp, "--lightningd", ld, "--exporter", "stdout", "--batch-delay",
                      "200"] + (extra and extra + [str(em.pid)]), tmp, name,
                     env=dict(os.environ, HOME=tmp))
            d.wait(lambda: " binaries (" in d.err(), 30, f"{name}: attached")
            open(em.go, "w").close()
            wait_spans(d, what=f"{name}: every span captured")
            open(linger, "w").close()
            em.stopped(sig=None, what=f"{name}: the stand-in lightningd exited 0")
            got, err = stopped(d, f"{name}: exit 0")
            check(f"{name}: every span captured", WANT <= set(got), f"{len(got)} of {len(WANT)}")
            check(f"{name}: carry the node found through lightningd's directory",
                  got and all(has_node(r, NODE_B, alias="PROBED") for r in got.values()), err)
            check(f"{name}: the socket named as lightningd's", netdir in err, err)


def fired_ids(path):
    """Span ids an emitter fired so far (its --log file: complete '<id> <json>' lines)."""
    return {json.loads(ln.split(" ", 1)[1])[0]["id"] for ln in read_lines(path)
            if ln[:1] in "0123456789abcdef" and " " in ln}


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("Uid:"))


def cgroup_v1_pids():
    """A mounted cgroup v1 hierarchy for the pids controller, or None."""
    with open("/proc/mounts") as f:
        for ln in f:
            dev, mnt, kind, opts = ln.split()[:4]
            if kind == "cgroup" and "pids" in opts.split(","):
                return mnt
    return None


def pids_cgroup(pid):
    """Where process pid is in the v1 pids hierarchy ("/..." under its mount point)."""
    with open("/proc/%d/cgroup" % pid) as f:
        return next(ln.rstrip("\n").split(":", 2)[2] for ln in f
                    if "pids" in ln.split(":")[1].split(","))


class Node:
    """A stand-in node: the emitter as <tmp>/bin/lightningd with lightningd's command line
    (--lightning-dir, --network), a child process standing in for a plugin, and its own
    FakeRpc in <dir>/regtest/lightning-rpc (root's, mode 0600). Both processes stay up
    after firing, as a node does, until end()."""
    SPANS, PLUGIN_SPANS = 40, 15

    def __init__(self, tmp, ld, name, node_id, alias, seed):
        self.tmp, self.name, self.node_id, self.alias = tmp, name, node_id, alias
        self.dir = os.path.join(tmp, name)
        os.makedirs(os.path.join(self.dir, "regtest"), exist_ok=True)
        self.rpc = FakeRpc(os.path.join(self.dir, "regtest", "lightning-rpc"),
                           node_id=node_id, alias=alias).__enter__()
        self.log, self.linger = (os.path.join(tmp, "%s-%d%s" % (name, seed, e))
                                 for e in (".log", ".linger"))
        self.em = start_emitter(tmp, ld, "--lightning-dir=" + self.dir, "--network", "regtest",
                                "--synthetic", str(self.SPANS), "--seed", str(seed),
                                "--child-synthetic", str(self.PLUGIN_SPANS), "--log",
                                self.log, "--linger-file", self.linger, "--quiet",
                                name="%s-%d" % (name, seed))

    def fire(self):
        open(self.em.go, "w").close()

    def fired(self):
        """Once both processes have fired everything: (its span ids, its plugin's)."""
        ids, child = fired_ids(self.log), fired_ids(self.log + ".child")
        return (len(ids), len(child)) == (self.SPANS, self.PLUGIN_SPANS) and (ids, child)

    def end(self):
        open(self.linger, "w").close()
        self.em.stopped(sig=None, what=self.name + ": the node and its plugin exited 0")
        self.rpc.__exit__()


@test("nodes")
def nodes(tmp):
    """Several nodes on one binary, cln-otlp started first (as root: it switched user and
    dropped its privileges before any node started; the sockets are root's, mode 0600):
    each span carries its own node's identity, a plugin's its lightningd's; a node in a
    (cgroup-named) container gets container.id; a node stopped and another started in its
    place gets its own; a process merely named lightningd, without the probe, with its own
    socket, is never asked."""
    need_root()
    os.chmod(tmp, 0o755)
    os.makedirs(os.path.join(tmp, "bin"))
    ld = os.path.join(tmp, "bin", "lightningd")
    shutil.copy(emitter, ld)
    ids = ["02" + "%02x" % (0xc0 + k) * 32 for k in range(4)]
    fake_dir = os.path.join(tmp, "fake", "regtest")
    os.makedirs(fake_dir)
    fake_bin = os.path.join(tmp, "fake", "lightningd")
    shutil.copy("/bin/sleep", fake_bin)
    hier = cgroup_v1_pids()
    check("a cgroup v1 pids hierarchy is mounted (container.id test)", hier, "/proc/mounts")
    cid = "5e" * 32
    cg = os.path.join(hier, "docker", cid)
    got = {}

    def printed(nodes):
        """Wait until cln-otlp has printed every span the nodes fired."""
        fired = [wait_for(n.fired, 60, n.name + " fired") for n in nodes]
        want = set().union(*(a | b for a, b in fired))
        d.wait(lambda: want <= set(resources(d)), 60, "every span printed")
        for n, (a, b) in zip(nodes, fired):
            n.ids, n.child_ids = a, b

    with FakeRpc(os.path.join(fake_dir, "lightning-rpc"), node_id=NODE_A, alias="ATTACKER"), \
            Proc([fake_bin, "600"], tmp, "fake", cwd=fake_dir):
        d = Proc([cln_otlp, "--lightningd", ld, "--exporter", "stdout", "--batch-delay", "200",
                  "-v"], tmp, "run")
        d.wait(lambda: " binaries (" in d.err() and uid_of(d.pid) != 0, 30,
               "attached, then switched to an unprivileged user")
        nodes = [Node(tmp, ld, "node%d" % k, ids[k], "NODE%d" % k, 10 * (k + 1))
                 for k in range(3)]
        os.makedirs(cg, exist_ok=True)
        moved = nodes[2].em.pid
        was = pids_cgroup(moved)
        try:
            with open(os.path.join(cg, "cgroup.procs"), "w") as f:
                f.write("%d\n" % moved)
            for n in nodes:
                n.fire()
            printed(nodes)
        finally:
            if nodes[2].em.running():
                with open(os.path.join(hier + was, "cgroup.procs"), "w") as f:
                    f.write("%d\n" % moved)
            os.rmdir(cg)
        for n in nodes:
            n.end()
        # node0 has stopped; another node starts on the same binary, in the same place.
        again = Node(tmp, ld, "node0", ids[3], "REBORN", 70)
        again.fire()
        printed([again])
        again.end()
        got, err = stopped(d)
    check("nobody asked the process merely named lightningd", "ATTACKER" not in err and not any(
        r.get("cln.alias") == "ATTACKER" for r in got.values()), err)
    for n in nodes + [again]:
        for what, sids in (("its spans", n.ids), ("its plugin's spans", n.child_ids)):
            bad = [got[s] for s in sids if not has_node(got[s], n.node_id, alias=n.alias)]
            check("%s (%s): %s carry its identity" % (n.name, n.alias, what), not bad, bad[:2])
        pids = {got[s]["process.pid"] for s in n.ids | n.child_ids}
        check(n.name + ": two processes (node and plugin)", len(pids) == 2, pids)
        in_cg = {got[s].get("container.id") for s in n.ids | n.child_ids}
        check(n.name + ": container.id", in_cg == ({cid} if n is nodes[2] else {None}), in_cg)
    check("every node was asked once", [len(n.rpc.requests) for n in nodes + [again]] ==
          [1] * 4, [len(n.rpc.requests) for n in nodes + [again]])


@test("privs")
def privs(tmp):
    need_root()
    nobody, other = (65534, 65534), (4242, 4242)
    os.chmod(tmp, 0o755)
    # The node's user given as --user, and the default (cln-otlp or nobody), not the node's.
    for name, args, owner in (("as-user", ["--user", "nobody"], nobody),
                              ("default", [], other)):
        sock = os.path.join(tmp, f"{name}-rpc")
        with FakeRpc(sock, alias="BEFORE", owner=owner):
            d = start(tmp, ["--rpc-file", sock] + args, name=name)
            wait_spans(d, what=f"{name}: all spans printed")
            check(f"{name}: asked at start", all(has_node(r, NODE_A, alias="BEFORE")
                                                 for r in resources(d).values()))
        with FakeRpc(sock, node_id=NODE_B, alias="AFTER", owner=owner):
            if args:
                d.wait(lambda: "AFTER" in d.err(), 30, f"{name}: asked again after the restart")
            else:
                d.wait(lambda: "Permission denied" in d.err() and "--user" in d.err(), 30,
                       f"{name}: a warning that says to use --user")
            stopped(d, f"{name}: exit 0")


main([NAME])
