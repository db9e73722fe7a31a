#!/usr/bin/python3
"""The unit suites and the binary's main paths under valgrind: no errors, no leaks.

Each scenario runs under `valgrind --error-exitcode=99 --leak-check=full
--errors-for-leak-kinds=definite,indirect` and must exit as it would natively with nothing
definitely or indirectly lost. Scenarios: the unit suites; a trace file to stdout; bad input
on stdin; the socket source; a cut span waiting for its parent; export over http/protobuf
with gzip, http/json through a 503 retry and grpc to the mock collector; eBPF capture of
the emitter (root).

usage: run_valgrind.py --cln-otlp BIN --test-unit BIN --emitter BIN [--only NAME]
"""
import os
import shutil
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, CAPTURE_DIR, DEVNULL, TESTS_DIR, Collector, Proc,  # noqa: E402
                     check, cln_json, main, need_root, options, run, span_payloads,
                     test)

_, A = options("cln-otlp", "test-unit", "emitter", "only")
VG = ["valgrind", "--error-exitcode=99", "--leak-check=full",
      "--errors-for-leak-kinds=definite,indirect", "--show-leak-kinds=definite,indirect",
      "--track-fds=no", "--quiet",
      "--suppressions=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "libbpf.supp")]
STDOUT = [A.cln_otlp, "--exporter", "stdout"]


def vg_run(name, argv, expect_rc=0, **kw):
    r = run(VG + argv, timeout=600, **kw)
    check(name, r.returncode == expect_rc and "definitely lost" not in r.stderr,
          "exit %d (expected %d)\n%s" % (r.returncode, expect_rc, r.stderr))


def vg_stopped(name, d, expect_rc=0):
    rc = d.stop(timeout=300)
    check(name, rc == expect_rc and "definitely lost" not in d.err(),
          "exit %d (expected %d)\n%s" % (rc, expect_rc, d.err()))


@test("all", "unit")
def unit(tmp):
    for suite in (["span", os.path.join(TESTS_DIR, "data", "span", "cases.json")],
                  ["otlp", os.path.join(TESTS_DIR, "data", "otlp", "cases.json")],
                  ["queue"], ["suspend"], ["pipeline"]):
        vg_run("unit " + suite[0], [A.test_unit] + suite)


@test("all", "file_stdout")
def file_stdout(tmp):
    vg_run("file to stdout", STDOUT + ["--file", CAPTURE, "-q"], stdout=DEVNULL)


@test("all", "bad_stdin")
def bad_stdin(tmp):
    good = span_payloads(CAPTURE)[0]
    lines = ["Attaching 1 probe...", "garbage", good.replace('"tags":{}', '"tags":{"q":"a"b"}'),
             good[:100], "[]", good.replace("0ff6b0fc1df3f024", "0" * 16), "x" * 70000, good]
    vg_run("bad input on stdin", STDOUT + ["--file", "-", "-q"], input="\n".join(lines) + "\n",
           stdout=DEVNULL)


@test("all", "truncated")
def truncated(tmp):
    cut = cln_json("00000000000000c1", "db", parent="00000000000000a1", ts=1, dur=1,
                   tags={"query": "x" * 3000})[:2047]
    orphan = cut.replace("00000000000000c1", "00000000000000c2").replace(
        "00000000000000a1", "00000000000000a9")
    parent = cln_json("00000000000000a1", "p", ts=1, dur=2)
    # The orphan is exported under a traceId of its own: what matters here is memory.
    vg_run("cut spans, adopted and orphaned", STDOUT + ["--file", "-", "-q"], expect_rc=0,
           input="\n".join([cut, orphan, parent]) + "\n", stdout=DEVNULL)


@test("all", "socket_source")
def socket_source(tmp):
    path = os.path.join(tmp, "vg.sock")
    d = Proc(VG + STDOUT + ["--socket", path, "--batch-delay", "100"], tmp, "socket")
    d.wait(lambda: os.path.exists(path), 120, "the socket appeared")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        for p in span_payloads(CAPTURE):
            s.sendto(p.encode(), path)  # blocks while the receiver's queue is full
        s.sendto(b"not json", path)
    d.wait(lambda: len(d.spans()) == 585, 300, "every span exported")
    vg_stopped("socket source", d)


@test("all", "export")
def export(tmp):
    files = [os.path.join(CAPTURE_DIR, f) for f in sorted(os.listdir(CAPTURE_DIR))]
    for name, extra, script, grpc in (
            ("export http/protobuf gzip", ["--protocol", "http/protobuf", "--compression",
                                           "gzip"], None, False),
            ("export http/json through a 503 retry", ["--protocol", "http/json"], "503/ra=1",
             False),
            ("export grpc gzip", ["--protocol", "grpc", "--compression", "gzip"], None, True)):
        with Collector(tmp, http=not grpc, grpc=grpc, script=script) as mc:
            vg_run(name, [A.cln_otlp, "--exporter", "otlp", "--endpoint", mc.url(grpc=grpc),
                          "--header", "x-api-key=secret", "-q"] + extra +
                   [a for f in files for a in ("--file", f)])


@test("all", "usdt")
def usdt(tmp):
    check("an --emitter", A.emitter)
    need_root()
    binary = os.path.join(tmp, "lightningd")
    shutil.copy(A.emitter, binary)
    d = Proc(VG + STDOUT + ["--lightningd", binary, "--no-plugins", "--batch-delay", "100"],
             tmp, "usdt")
    d.wait_err("attached", 120)
    check("the emitter fired", run([binary, CAPTURE, "--quiet"]).returncode == 0)
    d.wait(lambda: len(d.spans()) == 585, 300, "every span exported")
    vg_stopped("usdt capture", d)
    n = d.out().count('"spanId"')
    check("usdt capture delivered every span under valgrind", n == 585, n)


main([A.only or "all"])
