#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Seed corpora for the fuzz targets, made at run time from the test data (never committed).

    make_seeds.py TARGET OUTDIR [TESTS_DIR]

TARGET: span, trace_file, config, response, retry, metrics_request, finder, spool. TESTS_DIR defaults to
tests/ next to this file. Each seed is one file named by its SHA-1. The input layout of each
target is described at the top of its tests/fuzz/fuzz_<target>.c.
"""
import base64
import glob
import hashlib
import json
import os
import struct
import sys


def main():
    target, out = sys.argv[1:3]
    tests = sys.argv[3] if len(sys.argv) > 3 else os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))
    seeds = []
    GENERATORS[target](tests, seeds.append)
    os.makedirs(out, exist_ok=True)
    for b in seeds:
        with open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb") as f:
            f.write(b)
    print(f"{target}: {len(seeds)} seeds in {out}")


# ---- span payloads ----------------------------------------------------------------------------

def captures(tests):
    return sorted(glob.glob(os.path.join(tests, "data", "cln-v26-startup", "*")))


def span_cases(tests):
    for c in json.load(open(os.path.join(tests, "data", "span", "cases.json"))):
        if "input" in c:
            text, times = c.get("repeat", ["", 0])
            yield c["input"].replace("@REPEAT@", text * times).encode()
        else:
            yield bytes.fromhex(c["input_hex"])


def gen_span(tests, put):
    for f in captures(tests):
        for line in open(f, "rb"):
            if line.startswith(b"span_emit "):
                put(line.split(b" ", 2)[2].rstrip(b"\n"))
    for payload in span_cases(tests):
        put(payload)


# ---- trace files ------------------------------------------------------------------------------

def gen_trace_file(tests, put):
    # byte 0: flags (bit 0 pipe+follow, bit 1 pad, bit 2 pad newline, bits 3-5 queue mode)
    # byte 1: pad length / pipe chunk parameter
    flags = [0x00, 0x01, 0x09, 0x11, 0x18, 0x19, 0x21, 0x28, 0x30, 0x31, 0x38, 0x39]
    windows = []  # each capture in pieces of whole lines, 6000 bytes at most
    for f in captures(tests):
        window = b""
        for line in open(f, "rb").read().splitlines(keepends=True):
            if len(window) + len(line) > 6000 and window:
                windows.append(window)
                window = b""
            window += line
        windows += [window] if window else []
    for k, window in enumerate(windows):
        put(bytes([flags[k % len(flags)], k * 37 % 256]) + window)
    sample = open(captures(tests)[0], "rb").read()[:3000]
    sample = sample[:sample.rfind(b"\n") + 1]  # whole lines
    put(b"\x06\x80" + sample)  # an over-long line ended, then the capture
    put(b"\x02\x80" + sample)  # an over-long line running into the first line
    put(b"\x07\x40" + sample)
    put(b"\x01\x00" + sample.replace(b"\n", b"\r\n"))
    put(b"\x00\x00" + sample.rstrip(b"\n"))  # last line without a newline
    payloads = list(span_cases(tests))
    put(b"\x00\x10" + b"Attaching 1 probe...\n" + b"\n".join(payloads[:20]) + b"\n")
    put(b"\x01\x10" + b"span_suspend 00000000000000ab\nspan_resume 00000000000000ab\n"
        b"span_emit 00000000000000ab " + payloads[0] + b"\nspan_emit x\nspan_emit\n")


# ---- configuration ----------------------------------------------------------------------------

def config_cases(tests):
    def raw(v):  # a string, or {"hex": ...} for bytes that are not UTF-8
        return bytes.fromhex(v["hex"]) if isinstance(v, dict) else v.encode()
    path = os.path.join(tests, "data", "config", "cases.json")
    for c in json.load(open(path, encoding="utf-8")):
        yield {"env": [k.encode() + b"=" + raw(v) for k, v in c.get("env", {}).items()],
               "arg": [raw(a) for a in c.get("args", [])],
               "text": [raw(c[k]) for k in ("decode", "kv") if k in c]}


def gen_config(tests, put):
    # byte 0: low 4 bits = how many elements are environment entries, high 4 bits = kv max - 1
    for i, c in enumerate(config_cases(tests)):
        env = c["env"][:15]
        elems = env + c["arg"] + c["text"]
        put(bytes([len(env) | ((i % 16) << 4)]) + b"\0".join(elems))
    put(bytes([0x21]) + b"OTEL_EXPORTER_OTLP_HEADERS=a=S3CR3T%0A,b=2\0--header\0x=S3CR3T\r\n")
    put(bytes([0x30]) + b"--endpoint=http://user:S3CR3T@host:4318\0--protocol\0grpc")


# ---- collector responses ----------------------------------------------------------------------

def varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, wire, payload):
    key = varint(num << 3 | wire)
    if wire == 0:
        return key + varint(payload)
    if wire == 2:
        return key + varint(len(payload)) + payload
    if wire == 1:
        return key + struct.pack("<Q", payload)
    return key + struct.pack("<I", payload)


def message(*fields):
    """The fields (number, wire type, value) whose value is not None, in order."""
    return b"".join(field(*f) for f in fields if f[2] is not None)


def export_response(rejected=None, msg=None):
    return field(1, 2, message((1, 0, rejected), (2, 2, msg)))


def rpc_status(code=None, msg=None, details=()):
    return message((1, 0, code), (2, 2, msg)) + b"".join(
        field(3, 2, field(1, 2, type_url) + field(2, 2, value)) for type_url, value in details)


def retry_info(seconds=None, nanos=None):
    return field(1, 2, message((1, 0, seconds), (2, 0, nanos)))


RETRY_URL = b"type.googleapis.com/google.rpc.RetryInfo"


def gen_response(tests, put):
    # byte 0: flags (bit 0 gRPC, bit 1 HTTP/2, bit 2 gzip the request, bits 3-7 body pieces);
    # bytes 1-2: HTTP status; bytes 3-10: the clock; header lines, an empty line, the body.
    # Seeds: every answer of the export_wire cases, then a few bodies of every kind.
    cases = json.load(open(os.path.join(tests, "data", "export_wire", "cases.json")))
    for k, a in enumerate(c["answer"] for c in cases if c.get("answer")):
        grpc = a.get("protocol") == "grpc"
        flags = (1 if grpc else 0) | (2 if a.get("http2", grpc) else 0) | (4 if k % 2 else 0)
        flags |= (k % 32) << 3
        body = bytes.fromhex(a["body_hex"]) if "body_hex" in a else \
            a.get("body", "").encode() * a.get("body_times", 1)
        head = b"".join(h.encode() + (b"" if h.endswith("\n") else b"\r\n") for h in a["headers"])
        put(bytes([flags]) + struct.pack("<Hq", a["status"], a.get("now", 1700000000)) +
            head + b"\n" + body[:4096])
    bodies = [
        export_response(3, b"3 spans rejected: invalid trace id"),
        export_response(1 << 62, "d\u00e9j\u00e0 vu \u26a1".encode()),
        rpc_status(3, b"invalid argument: bad span"),
        rpc_status(14, b"unavailable", [(RETRY_URL, retry_info(2, 500000000))]),
        field(1, 1, 12345) + field(2, 5, 7) + field(99, 0, 1),
    ]
    for i, b in enumerate(bodies):
        for flags in (0x00, 0x03, 0x07, 0x04):
            put(bytes([flags | (i << 3)]) + struct.pack("<Hq", 200, 0) + b"grpc-status: 0\r\n\n" +
                bytes([0]) + struct.pack(">I", len(b)) + b)
            put(bytes([flags | (i << 3)]) + struct.pack("<Hq", 503, 0) + b"\n" + b)


# ---- retry policy -----------------------------------------------------------------------------

def gen_retry(tests, put):
    # byte 0: mode (0 Retry-After, 1 a clock's time as each HTTP date form, 2 base64
    # RetryInfo, 3 RetryInfo bytes, 4 retry schedule); bytes 1-8: a clock; the rest the value
    clock = struct.pack("<Q", 784111777)  # Sun, 06 Nov 1994 08:49:37 GMT
    now2 = struct.pack("<Q", 1700000000)
    values = [b"0", b"120", b" 5 ", b"86401", b"99999999999999999999", b"-1", b"1.5",
              b"Sun, 06 Nov 1994 08:49:37 GMT", b"Sunday, 06-Nov-94 08:49:37 GMT",
              b"Sun Nov  6 08:49:37 1994", b"Wed, 29 Feb 2023 00:00:00 GMT",
              b"Tue, 14 Nov 2023 22:13:20 GMT\r\n", b"Fri, 31 Dec 9999 23:59:60 GMT",
              b"Thu, 01 Jan 1970 00:00:00 GMT", b"Mon, 32 Jan 2024 00:00:00 GMT"]
    for v in values:
        put(b"\x00" + clock + v)
        put(b"\x00" + now2 + v)
    for ahead in (0, 1, 7, 86399, 86400, 86401, 172799):
        put(b"\x01" + clock + struct.pack("<I", ahead))
        put(b"\x01" + now2 + struct.pack("<I", ahead))
    details = [
        rpc_status(14, b"unavailable", [(RETRY_URL, retry_info(2, 500000000))]),
        rpc_status(8, b"x", [(RETRY_URL, b"")]),
        rpc_status(8, b"x", [(b"type.googleapis.com/google.rpc.DebugInfo", b"\x0a\x01x"),
                             (RETRY_URL, retry_info(86400 * 3, 999999999))]),
        rpc_status(1, b"", [(RETRY_URL, retry_info(-5, -1))]),
    ]
    for d in details:
        put(b"\x02" + clock + base64.b64encode(d))
        put(b"\x02" + clock + base64.urlsafe_b64encode(d).rstrip(b"="))
        put(b"\x03" + clock + d)
    for budget in (0, 1000, 300000):
        put(b"\x04" + struct.pack("<Q", budget) + bytes(range(0, 64, 3)))


def gen_metrics_request(tests, put):
    """Request heads as scrapers and browsers send them, and some that are not."""
    for head in (b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                 b"HEAD /metrics HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
                 b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\n",
                 b"GET / HTTP/1.1\n\n", b"GET /metrics\r\n\r\n", b"\r\n\r\n"):
        put(head)


def gen_finder(tests, put):
    """/proc/PID/cgroup texts (mode 0) and lightningd command lines with a HOME (mode 1)."""
    cid = "0123456789abcdef" * 4
    for text in ("12:pids:/docker/%s\n11:memory:/docker/%s\n" % (cid, cid),
                 "0::/system.slice/docker-%s.scope\n" % cid,
                 "0::/machine.slice/libpod-%s.scope/container\n" % cid,
                 "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3d5f_1a2b"
                 ".slice/cri-containerd-%s.scope\n" % cid,
                 "11:memory:/kubepods/burstable/pod3d5f0b2e-1a2b-4c3d/%s\n" % cid.upper(),
                 "0::/kubepods.slice/crio-%s.scope\n" % cid,
                 "4:memory:/process_api/d26328edf51428ea1976beb9b5f87f25\n0::/\n",
                 "0::/user.slice/user-1000.slice/session-2.scope\n"):
        put(b"\x00" + text.encode())
    for home, args in (("/home/x", []), ("/h", ["--lightning-dir=/d", "--regtest"]),
                       ("/h", ["--lightning-dir", "/d", "--network", "signet"]),
                       ("", ["--rpc-file=/run/ln/rpc"]), ("/h", ["--rpc-file", "rpc.sock"]),
                       ("/h", ["--network=testnet", "--mainnet", "--testnet4"]),
                       ("/h", ["--lightning-dir=node", "--network=../x"])):
        cmd = b"".join(a.encode() + b"\0" for a in ["lightningd"] + args)
        put(b"\x01\x04" + bytes([len(home)]) + home.encode() + cmd)


def spool_file(payload, n_spans=1, flags=0, version=1):
    import struct
    import zlib
    head = b"CLNSPOOL" + struct.pack("<IIIIQI", version, flags, n_spans, 0, len(payload),
                                     zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def gen_spool(tests, put):
    """Spool files (src/spool.h), good and broken, for the parser (0) and the directory (1)."""
    good = [spool_file(b""), spool_file(b"\n\x04spans", 3, 1), spool_file(b"x" * 300, 7, 9)]
    bad = [good[1][:20], good[1][:-2], good[1] + b"\0", spool_file(b"abc", version=2),
           bytes([good[1][0] ^ 1]) + good[1][1:]]
    for f in good + bad:
        put(b"\x00" + f)
        put(b"\x01" + f)


GENERATORS = {"span": gen_span, "trace_file": gen_trace_file, "config": gen_config,
              "response": gen_response, "retry": gen_retry,
              "metrics_request": gen_metrics_request, "finder": gen_finder,
              "spool": gen_spool}

if __name__ == "__main__":
    main()
