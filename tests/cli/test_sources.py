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
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

cln_otlp, data_dir, which = sys.argv[1:4]
capture = os.path.join(data_dir, "cln-v26-startup", "lightningd-trace.32274")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def payloads(path):
    out = []
    for line in open(path, encoding="utf-8"):
        if line.startswith("span_emit "):
            out.append(line.split(" ", 2)[2].rstrip("\n"))
    return out


def spans_of(stdout):
    """span id -> (span, resource attributes) from the stdout exporter's lines."""
    out = {}
    for line in stdout.splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            res = {a["key"]: a["value"] for a in rs["resource"]["attributes"]}
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    out[sp["spanId"]] = (sp, res)
    return out


def wait_for(pred, timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


def start(args, tmp):
    # Files, not pipes: a pipe nobody reads while the test sends would block the exporter.
    err = open(os.path.join(tmp, "stderr"), "w+")
    out = open(os.path.join(tmp, "stdout"), "w+")
    proc = subprocess.Popen([cln_otlp, "--exporter", "stdout", "--batch-delay", "100"] + args,
                            stdout=out, stderr=err, text=True)
    return proc, (out, err)


def stop(proc, files):
    out, err = files
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=20)
    out.seek(0)
    err.seek(0)
    return proc.returncode, out.read(), err.read()


def test_socket(tmp):
    path = os.path.join(tmp, "trace.sock")
    open(path, "w").close()
    bad = subprocess.run([cln_otlp, "--socket", path, "--exporter", "stdout"],
                         capture_output=True, text=True, timeout=10)
    check("regular file at the socket path is refused", bad.returncode == 2, bad.stderr)
    check("the refusal says what to do", "not a socket" in bad.stderr, bad.stderr)
    os.unlink(path)
    # A stale socket from an earlier run is replaced.
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()

    proc, err = start(["--socket", path], tmp)
    check("socket created", wait_for(lambda: os.path.exists(path) and
                                      open(os.path.join(tmp, "stderr")).read().count("listening")))
    sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = payloads(capture)
    for i, p in enumerate(sent):
        sender.sendto(p.encode(), path)
        if i % 100 == 99:
            time.sleep(0.01)  # CLN sends non-blocking; a real node does not fire 585 at once
    time.sleep(0.5)
    rc, out, errtext = stop(proc, err)
    check("exit 0 after SIGTERM", rc == 0, errtext)
    got = spans_of(out)
    ids = {json.loads(p)[0]["id"] for p in sent}
    check(f"all {len(ids)} spans arrived", set(got) == ids, f"got {len(got)}")
    pids = {int(res["process.pid"]["intValue"]) for _, res in got.values()}
    check("process.pid is the sender's pid", pids == {os.getpid()}, str(pids))
    exes = {res.get("process.executable.path", {}).get("stringValue") for _, res in got.values()}
    # /proc/<pid>/exe, or argv[0] when the bridge dropped the right to read it.
    check("process.executable.path is the sender's",
          exes in ({os.path.realpath(sys.executable)}, {"/usr/bin/python3"}), str(exes))
    check("socket removed at exit", not os.path.exists(path))


def test_follow(tmp):
    path = os.path.join(tmp, "lightningd-trace.4242")
    lines = [l for l in open(capture, encoding="utf-8")]
    f = open(path, "w")
    proc, err = start(["--file", path, "--follow"], tmp)
    time.sleep(0.3)
    # Written as CLN does, a few lines at a time.
    suspended = set()
    for i, line in enumerate(lines):
        f.write(line)
        if line.startswith("span_suspend"):
            suspended.add(line.split()[1])
        if i % 50 == 0:
            f.flush()
            time.sleep(0.01)
    f.flush()
    time.sleep(0.6)
    # Replaced by a new file (new inode): read from its start.
    repl = path + ".new"
    extra = ('[{"id":"00000000000000aa","name":"after-rotation","timestamp":1,"duration":1,'
             '"localEndpoint":{"serviceName":"lightningd"},"tags":{},'
             '"traceId":"074c67a29952a72ce3a9ce4137f3d273"}]\n')
    open(repl, "w").write(extra)
    os.rename(repl, path)
    time.sleep(0.8)
    rc, out, errtext = stop(proc, err)
    check("exit 0 after SIGTERM", rc == 0, errtext)
    got = spans_of(out)
    want = {json.loads(p)[0]["id"] for p in payloads(capture)}
    check(f"all {len(want)} spans of the followed file", want <= set(got),
          f"missing {len(want - set(got))}")
    check("the replaced file was read", "00000000000000aa" in got, errtext)
    with_events = {sid for sid, (sp, _) in got.items() if sp.get("events")}
    check("suspend/resume became events on exactly the suspended spans",
          with_events == suspended, f"{with_events} vs {suspended}")
    for sid in with_events:
        names = [e["name"] for e in got[sid][0]["events"]]
        check("event names and order", names == ["cln.suspend", "cln.resume"], str(names))
    pids = {int(res["process.pid"]["intValue"]) for _, res in got.values()}
    check("pid from the trace file's name", pids == {4242}, str(pids))


def test_sigterm(tmp):
    # A pipe that never closes: only the signal ends the run, and what was read is sent.
    proc = subprocess.Popen([cln_otlp, "--file", "-", "--exporter", "stdout",
                             "--batch-delay", "60000"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sent = payloads(capture)[:50]
    proc.stdin.write("\n".join(sent) + "\n")
    proc.stdin.flush()
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, errtext = proc.communicate(timeout=20)
    check("exit 0 after SIGTERM", proc.returncode == 0, errtext)
    check("spans waiting for the batch delay were flushed", len(spans_of(out)) == 50,
          str(len(spans_of(out))))


with tempfile.TemporaryDirectory() as tmp:
    {"socket": test_socket, "follow": test_follow, "sigterm": test_sigterm}[which](tmp)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
