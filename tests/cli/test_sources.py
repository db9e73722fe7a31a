#!/usr/bin/python3
"""The socket and follow sources, end to end through the real binary (no root needed).

  socket   every span of the real capture sent as one datagram each (as CLN_TRACE_SOCKET
           does) arrives, with the sender's pid as process.pid; a stale socket file is
           replaced; a regular file at the path is refused.
  follow   a trace file written while cln-otlp follows it: every span arrives, suspend/
           resume lines become cln.suspend/cln.resume events; a replaced file is read anew.
  sigterm  SIGTERM flushes what was read and exits 0.

usage: test_sources.py CLN_OTLP DATA_DIR {socket|follow|sigterm}
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import CAPTURE, Proc, check, cln_json, main, run, span_payloads, test  # noqa

cln_otlp = sys.argv[1]
SENT = span_payloads(CAPTURE)
IDS = {json.loads(p)[0]["id"] for p in SENT}


def start(tmp, *args, **kw):
    return Proc([cln_otlp, "--exporter", "stdout", "--batch-delay", "100", *args], tmp,
                "cln-otlp", **kw)


def ids(d):
    return {sp["spanId"] for _, sp in d.spans()}


@test("socket")
def socket_source(tmp):
    path = os.path.join(tmp, "trace.sock")
    open(path, "w").close()
    bad = run([cln_otlp, "--socket", path, "--exporter", "stdout"])
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
        check("exit 0 after SIGTERM", d.stop() == 0)
    check(f"all {len(IDS)} spans arrived", ids(d) == IDS, len(ids(d)))
    pids = {res["process.pid"] for res, _ in d.spans()}
    check("process.pid is the sender's pid", pids == {os.getpid()}, pids)
    exes = {res.get("process.executable.path") for res, _ in d.spans()}
    # /proc/<pid>/exe, or argv[0] when the bridge dropped the right to read it.
    check("process.executable.path is the sender's",
          exes in ({os.path.realpath(sys.executable)}, {"/usr/bin/python3"}), exes)
    check("socket removed at exit", not os.path.exists(path))


@test("follow")
def follow(tmp):
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
        check("exit 0 after SIGTERM", d.stop() == 0)
    got = {sp["spanId"]: (sp, res) for res, sp in d.spans()}
    check(f"all {len(IDS)} spans of the followed file", IDS <= set(got), IDS - set(got))
    with_events = {sid for sid, (sp, _) in got.items() if sp.get("events")}
    check("suspend/resume became events on exactly the suspended spans",
          with_events == suspended, f"{with_events} vs {suspended}")
    for sid in with_events:
        names = [e["name"] for e in got[sid][0]["events"]]
        check("event names and order", names == ["cln.suspend", "cln.resume"], names)
    pids = {res["process.pid"] for _, res in got.values()}
    check("pid from the trace file's name", pids == {4242}, pids)


@test("sigterm")
def sigterm(tmp):
    # A pipe that never closes: only the signal ends the run, and what was read is sent.
    with Proc([cln_otlp, "--file", "-", "--exporter", "stdout", "--batch-delay", "60000"],
              tmp, "cln-otlp", stdin=subprocess.PIPE) as d:
        d.proc.stdin.write(("\n".join(SENT[:50]) + "\n").encode())
        d.proc.stdin.flush()
        d.wait_err("privileges:")  # started: SIGUSR1 is handled from here on

        def all_read():  # the stats line SIGUSR1 asks for counts them
            d.proc.send_signal(signal.SIGUSR1)
            return any("queued=50" in ln.split() for ln in d.lines("err"))
        d.wait(all_read, 60, "the 50 spans read")
        check("exit 0 after SIGTERM", d.stop() == 0)
    check("spans waiting for the batch delay were flushed", len(d.spans()) == 50, len(d.spans()))


main([sys.argv[3]])
