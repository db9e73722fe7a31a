#!/usr/bin/python3
"""The unit suites and the binary's main paths under valgrind: no errors, no leaks.

Each scenario runs under `valgrind --error-exitcode=99 --leak-check=full
--errors-for-leak-kinds=definite,indirect` and must exit as it would natively with nothing
definitely or indirectly lost. Scenarios: the unit suites; a trace file to stdout; bad input
on stdin; the socket source; a cut span waiting for its parent; export over http/protobuf
with gzip, http/json through a 503 retry and grpc to the mock collector; eBPF capture of
the emitter (root).

usage: run_valgrind.py --cln-otlp BIN --test-unit BIN --emitter BIN --data DIR
"""
import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("--cln-otlp", required=True)
ap.add_argument("--test-unit", required=True)
ap.add_argument("--emitter")
ap.add_argument("--data", required=True)
ap.add_argument("--only", help="run the scenarios whose name contains this")
args = ap.parse_args()
sys.path.insert(0, os.environ.get("MOCK_COLLECTOR_PY_DIR",
                                  os.path.join(os.path.dirname(__file__), "..", "collector")))
from mockcoll import MockCollector  # noqa: E402

VG = ["valgrind", "--error-exitcode=99", "--leak-check=full",
      "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
      "--track-fds=no", "--quiet",
      "--suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "libbpf.supp")]
capture = os.path.join(args.data, "cln-v26-startup", "lightningd-trace.32274")
passed = failed = 0


def result(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name}\n{detail[-4000:]}", file=sys.stderr)


def vg_run(name, argv, expect_rc=0, **kw):
    kw.setdefault("stdout", subprocess.PIPE)
    r = subprocess.run(VG + argv, stderr=subprocess.PIPE, text=True, timeout=600, **kw)
    result(name, r.returncode == expect_rc and "definitely lost" not in r.stderr,
           f"exit {r.returncode} (expected {expect_rc})\n{r.stderr}")
    return r


def vg_start(argv, tmp, name):
    out = open(os.path.join(tmp, name + ".out"), "w+")
    err = open(os.path.join(tmp, name + ".err"), "w+")
    return subprocess.Popen(VG + argv, stdout=out, stderr=err), out, err


def vg_stop(name, proc, out, err, expect_rc=0, sig=signal.SIGTERM):
    if sig:
        proc.send_signal(sig)
    rc = proc.wait(timeout=300)
    err.seek(0)
    text = err.read()
    result(name, rc == expect_rc and "definitely lost" not in text,
           f"exit {rc} (expected {expect_rc})\n{text}")


def wait_for(pred, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.1)
    return False


def want(name):
    return not args.only or args.only in name


def unit(tmp):
    for suite in (["span", os.path.join(args.data, "span", "cases.json")],
                  ["otlp", os.path.join(args.data, "otlp", "cases.json")],
                  ["queue"], ["suspend"], ["pipeline"]):
        vg_run(f"unit {suite[0]}", [args.test_unit] + suite)


def file_stdout(tmp):
    vg_run("file to stdout", [args.cln_otlp, "--file", capture, "--exporter", "stdout", "-q"],
           stdout=subprocess.DEVNULL)


def bad_stdin(tmp):
    good = next(l for l in open(capture) if l.startswith("span_emit")).split(" ", 2)[2]
    lines = ["Attaching 1 probe...", "garbage", good.replace('"tags":{}', '"tags":{"q":"a"b"}'),
             good[:100], "[]", good.replace("0ff6b0fc1df3f024", "0" * 16), "x" * 70000, good]
    vg_run("bad input on stdin", [args.cln_otlp, "--file", "-", "--exporter", "stdout", "-q"],
           input="\n".join(lines) + "\n", stdout=subprocess.DEVNULL)


def truncated(tmp):
    head = ('[{"id":"00000000000000c1","name":"db","timestamp":1,"duration":1,'
            '"localEndpoint":{"serviceName":"lightningd"},"parentId":"00000000000000a1",'
            '"tags":{"query":"')
    cut = (head + "x" * 3000)[:2047]
    parent = ('[{"id":"00000000000000a1","name":"p","timestamp":1,"duration":2,'
              '"localEndpoint":{"serviceName":"lightningd"},"tags":{},'
              '"traceId":"074c67a29952a72ce3a9ce4137f3d273"}]')
    orphan = cut.replace("00000000000000c1", "00000000000000c2").replace(
        "00000000000000a1", "00000000000000a9")
    # The orphan is dropped, so the run exits 1: what matters here is memory.
    vg_run("cut spans, adopted and orphaned",
           [args.cln_otlp, "--file", "-", "--exporter", "stdout", "-q"], expect_rc=1,
           input="\n".join([cut, orphan, parent]) + "\n", stdout=subprocess.DEVNULL)


def socket_source(tmp):
    path = os.path.join(tmp, "vg.sock")
    proc, out, err = vg_start([args.cln_otlp, "--socket", path, "--exporter", "stdout",
                               "--batch-delay", "100"], tmp, "socket")
    if not wait_for(lambda: os.path.exists(path)):
        result("socket source", False, "socket never appeared")
        proc.kill()
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    for line in open(capture):
        if line.startswith("span_emit"):
            s.sendto(line.split(" ", 2)[2].rstrip("\n").encode(), path)
            time.sleep(0.001)
    s.sendto(b"not json", path)
    time.sleep(1)
    vg_stop("socket source", proc, out, err)


def export(tmp):
    files = [os.path.join(args.data, "cln-v26-startup", f)
             for f in sorted(os.listdir(os.path.join(args.data, "cln-v26-startup")))]
    cases = [("export http/protobuf gzip", ["--protocol", "http/protobuf", "--compression",
                                            "gzip"], None, False),
             ("export http/json through a 503 retry", ["--protocol", "http/json"],
              "503/ra=1", False),
             ("export grpc gzip", ["--protocol", "grpc", "--compression", "gzip"], None, True)]
    for name, extra, script, grpc in cases:
        with MockCollector(os.path.join(tmp, name.replace(" ", "_").replace("/", "_")),
                           http=not grpc, grpc=grpc, script=script) as mc:
            endpoint = (f"http://127.0.0.1:{mc.grpc_port}" if grpc else mc.http_url())
            argv = [args.cln_otlp, "--exporter", "otlp", "--endpoint", endpoint,
                    "--header", "x-api-key=secret", "-q"] + extra
            for f in files:
                argv += ["--file", f]
            vg_run(name, argv)


def usdt(tmp):
    if not args.emitter:
        result("usdt capture", False, "no --emitter")
        return
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            result("usdt capture (needs root)", False, "CI runs as root")
        else:
            print("skip usdt capture: not root")
        return
    binary = os.path.join(tmp, "lightningd")
    subprocess.run(["cp", args.emitter, binary], check=True)
    proc, out, err = vg_start([args.cln_otlp, "--lightningd", binary, "--no-plugins",
                               "--exporter", "stdout", "--batch-delay", "100"], tmp, "usdt")
    if not wait_for(lambda: "attached" in open(os.path.join(tmp, "usdt.err")).read(), 120):
        result("usdt capture", False, open(os.path.join(tmp, "usdt.err")).read())
        proc.kill()
        return
    subprocess.run([binary, capture, "--quiet"], check=True)
    time.sleep(2)
    vg_stop("usdt capture", proc, out, err)
    out.seek(0)
    n = out.read().count('"spanId"')
    result("usdt capture delivered every span under valgrind", n == 585, f"{n} spans")


with tempfile.TemporaryDirectory() as tmp:
    for fn in (unit, file_stdout, bad_stdin, truncated, socket_source, export, usdt):
        if want(fn.__name__):
            fn(tmp)
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed or not passed else 0)
