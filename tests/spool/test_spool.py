#!/usr/bin/python3
"""Integration tests of --spool: the real cln-otlp binary, stopped, killed and started again,
against the mock collector.

Each group is one CTest (spool_<group>): `test_spool.py -v GROUP`. Environment (set by
tests/spool/CMakeLists.txt): CLN_OTLP, MOCK_COLLECTOR, MOCK_PROTO_PY, MOCK_PYTHON.

  restart  collector down, SIGTERM (shutdown timeout: batches to the spool), started again
           with the collector up: every span once (a re-sent in-flight batch counted)
  crash    kill -9 with everything spooled, two files corrupted (a flipped payload byte, a
           truncation) and a torn .tmp: the rest delivered, the two counted
  full     a spool smaller than what is spooled: the oldest evicted, counted, the rest sent
"""
import glob
import os
import re
import shutil
import signal
import struct
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE, Collector, Proc, check, cln_spans, free_port, main,  # noqa
                     need_root, test, wait_for)

CLN_OTLP = os.environ.get("CLN_OTLP", "cln-otlp")
EXPECTED = {s["id"] for s in cln_spans(CAPTURE)}  # 585 spans
HDR = 40  # the spool file header (src/spool.h)


def metric(port, name):
    """One unlabelled sample from /metrics, or None while it cannot be read."""
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
    except OSError:
        return None
    m = re.search(r"^cln_otlp_%s (\d+)$" % name, body.decode(), re.M)
    return int(m.group(1)) if m else None


def counters(err):
    """The counters of the last "done:" line."""
    lines = [ln for ln in err.splitlines() if "info: done: " in ln]
    check("a done line", lines, err)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", lines[-1])}


def daemon(tmp, name, endpoint, source, spool, *args):
    """cln-otlp following @source, exporting to @endpoint, spooling in @spool."""
    port = free_port()
    d = Proc([CLN_OTLP, "--user", "root", "--exporter", "otlp", "--endpoint", endpoint,
              "--file", source, "--follow", "--spool", spool, "--batch-size", "50",
              "--batch-delay", "200", "--metrics-listen", "127.0.0.1:%d" % port,
              "--stats-interval", "0", *args], tmp, name)
    d.metrics = port
    return d


def capture(tmp):
    path = os.path.join(tmp, "trace")
    shutil.copy(CAPTURE, path)
    return path


def spool_files(spool):
    return sorted(glob.glob(os.path.join(spool, "*.spool")))


def spans_in(path):
    with open(path, "rb") as f:
        return struct.unpack_from("<I", f.read(HDR), 16)[0]


def replay(tmp, spool, want, name="replay"):
    """Start again on an empty file with the collector up; returns (span ids as received,
    counters) once @want spans arrived and cln-otlp stopped."""
    empty = os.path.join(tmp, "empty")
    open(empty, "w").close()
    with Collector(tmp) as mc:
        with daemon(tmp, name, mc.url(), empty, spool) as d:
            wait_for(lambda: len(mc.records()) >= want, 60, "%d spans delivered" % want)
            wait_for(lambda: not spool_files(spool), 30, "the spool emptied")
            check("exit 0", d.stop() == 0, d.err())
        ids = [r["span"]["spanId"] for r in mc.records()]
    return ids, counters(d.err())


@test("restart")
def sigterm_then_restart(tmp):
    """Down while spans are captured; SIGTERM: the shutdown timeout spools what is left;
    started again with the collector up: each span delivered once, a duplicate only for a
    batch that was in flight, counted."""
    spool = os.path.join(tmp, "spool")
    with daemon(tmp, "down", "http://127.0.0.1:%d" % free_port(), capture(tmp), spool,
                "--shutdown-timeout", "1500") as d:
        d.wait(lambda: metric(d.metrics, "spans_queued_total") == len(EXPECTED), 60,
               "every span queued")
        d.wait_err("retrying in")
        check("exit 0: nothing dropped", d.stop() == 0, d.err())
    c = counters(d.err())
    check("every span spooled, none dropped", (c.get("spooled"), c.get("dropped")) ==
          (len(EXPECTED), 0), c)
    check("files in the spool, 0600", spool_files(spool) and all(
        os.stat(f).st_mode & 0o777 == 0o600 for f in spool_files(spool)))
    check("the spool directory is 0700", os.stat(spool).st_mode & 0o777 == 0o700)
    ids, c = replay(tmp, spool, len(EXPECTED))
    check("every span delivered", set(ids) == EXPECTED, EXPECTED ^ set(ids))
    extra = len(ids) - len(set(ids))
    check("duplicates only as many as counted (%d)" % c.get("spool_duplicates", 0),
          extra <= c.get("spool_duplicates", 0), (extra, c))
    check("replayed = every span", c.get("replayed") == len(EXPECTED), c)
    check("nothing left in the spool", not spool_files(spool))


@test("restart")
def spool_must_be_the_run_users(tmp):
    """Started as root without --user, cln-otlp runs as another user: a spool directory that
    user cannot write is refused at start, saying what to do."""
    need_root("only root can start as one user and run as another")
    spool = os.path.join(tmp, "spool")
    os.mkdir(spool, 0o700)
    p = Proc([CLN_OTLP, "--exporter", "otlp", "--endpoint", "http://127.0.0.1:1", "--file",
              capture(tmp), "--spool", spool], tmp, "refused")
    check("exit 2", p.stop(sig=None) == 2, p.err())
    check("it says whose it must be", "install -d -m 700 -o USER" in p.err(), p.err())
    os.chmod(spool, 0o777)
    p = Proc([CLN_OTLP, "--user", "root", "--exporter", "otlp", "--endpoint",
              "http://127.0.0.1:1", "--file", capture(tmp), "--spool", spool], tmp, "open")
    check("a world-writable spool: exit 2", p.stop(sig=None) == 2, p.err())
    check("it says chmod 700", "chmod 700" in p.err(), p.err())


def spool_all(tmp, spool, *args):
    """Collector down, retries given up fast: every span spooled; returns the daemon, still
    running."""
    d = daemon(tmp, "down", "http://127.0.0.1:%d" % free_port(), capture(tmp), spool,
               "--retry-max-elapsed", "300", *args)
    d.wait(lambda: metric(d.metrics, "spans_spooled_total") == len(EXPECTED), 60,
           "every span spooled")
    return d


@test("crash")
def kill_then_restart(tmp):
    """kill -9 once every span is in the spool: every fsynced file is delivered after a
    restart, except two corrupted on purpose, skipped and counted; a torn .tmp is removed."""
    spool = os.path.join(tmp, "spool")
    with spool_all(tmp, spool) as d:
        d.stop(sig=signal.SIGKILL)
    files = spool_files(spool)
    check("more than two files", len(files) > 2, files)
    check("every span in a file", sum(spans_in(f) for f in files) == len(EXPECTED))
    lost = spans_in(files[0]) + spans_in(files[1])
    with open(files[0], "r+b") as f:  # a flipped payload byte
        f.seek(HDR + 10)
        b = f.read(1)
        f.seek(HDR + 10)
        f.write(bytes([b[0] ^ 0x20]))
    os.truncate(files[1], os.path.getsize(files[1]) // 2)
    torn = os.path.join(spool, "%020d.tmp" % 99999)
    with open(torn, "wb") as f:
        f.write(b"CLNSPOOL")
    ids, c = replay(tmp, spool, len(EXPECTED) - lost)
    check("the rest delivered, once each", len(ids) == len(set(ids)) == len(EXPECTED) - lost,
          (len(ids), len(set(ids)), lost))
    check("only spans of the capture", set(ids) <= EXPECTED)
    check("two files counted as corrupt", c.get("spool_corrupt") == 2, c)
    check("the torn .tmp removed", not os.path.exists(torn))


@test("full")
def oldest_evicted(tmp):
    """A 64 KiB spool for ~100 KiB of batches: the oldest go, counted, the run exits 1 saying
    so, the bound holds, the rest is delivered."""
    spool = os.path.join(tmp, "spool")
    with spool_all(tmp, spool, "--spool-size", "64K") as d:
        check("exit 1: spans were lost to the bound", d.stop() == 1, d.err())
    c = counters(d.err())
    evicted = c.get("spool_evicted", 0)
    check("the run says how many", "%d evicted from a full spool" % evicted in d.err(),
          d.err()[-400:])
    check("some evicted", evicted > 0, c)
    check("the evictions said", "spool " in d.err() and "full" in d.err(), d.err())
    size = sum(os.path.getsize(f) for f in spool_files(spool))
    check("the spool within 64 KiB", size <= 65536, size)
    files = spool_files(spool)
    kept = sum(spans_in(f) for f in files)
    check("kept + evicted = every span", kept + evicted == len(EXPECTED), (kept, evicted))
    ids, c = replay(tmp, spool, kept)
    check("what was kept delivered, once each", len(ids) == len(set(ids)) == kept,
          (len(ids), kept))


main([a for a in sys.argv[1:] if not a.startswith("-")])
