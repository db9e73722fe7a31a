#!/usr/bin/python3
"""Trace files by pattern: `--file '<path>.*'` and `--file DIR`, with and without --follow.

CLN (CLN_DEV_TRACE_FILE=<path>) writes `<path>.<pid>` per process: a restarted node or plugin
writes a new file. The real capture (tests/data/cln-v26-startup, 20 processes) is written
into a directory while cln-otlp watches it.

  follow_pattern  started before any file exists; the capture's files then written one by
             one (created in place and appended in pieces, one renamed in), files that do not
             match among them: every span of every matching file arrives exactly once, none
             of the others; a "restart" (a new .<pid> file after the first is complete) is
             read too; the exit summary lists every file with its count
  pattern_once  without --follow: the files matching at start are read, exit 0; a pattern
             in a directory that does not exist, or matching nothing, is refused (exit 2)
  close_gone a followed file read to its end whose .<pid> process is gone is closed (the
             daemon's fds show it), one of a live process stays open; written to again, the
             closed file is opened again and the new spans arrive
  limit      a directory of more files than are read at once: the rest are refused and
             counted (files_refused), the daemon's fds stay bounded

usage: test_files.py TEST --cln-otlp BIN
"""
import collections
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import (CAPTURE_DIR, Proc, check, cln_json, give_to_daemon, main,  # noqa
                     options, otlp_spans, run, span_payloads, test)

(NAME,), A = options("cln-otlp")
CAPTURE_FILES = sorted(f for f in os.listdir(CAPTURE_DIR) if f.startswith("lightningd-trace."))
MAX_OPEN = 64  # SOURCE_DIR_MAX_OPEN (src/source_dir.h)


def trace_dir(tmp):
    give_to_daemon(tmp)
    d = os.path.join(tmp, "traces")
    os.mkdir(d, 0o755)
    os.chmod(d, 0o755)
    return d


def start(tmp, *args):
    return Proc([A.cln_otlp, "--exporter", "stdout", "--batch-delay", "100", *args], tmp,
                "cln-otlp")


def span_ids(lines):
    """Every spanId on stdout, repeated as often as it came."""
    return collections.Counter(sp["spanId"] for _, sp in otlp_spans(lines))


def ids_of(path):
    return collections.Counter(p.split('"id":"', 1)[1][:16] for p in span_payloads(path))


def emit_lines(first, n, tag):
    return "".join("span_emit %016x %s\n" % (i, cln_json("%016x" % i, "%s-%d" % (tag, i)))
                   for i in range(first, first + n))


def ids_range(first, n):
    return collections.Counter("%016x" % i for i in range(first, first + n))


def started(d):
    d.wait_err("privileges:")  # set up and running as its user: files it opens from now


def stats_value(d, key):
    """key's value in a fresh stats line (SIGUSR1), 0 when the line leaves it out."""
    before = len(d.lines("err"))
    d.proc.send_signal(signal.SIGUSR1)
    d.wait(lambda: any("queued=" in ln for ln in d.lines("err")[before:]), 30, "a stats line")
    line = next(ln for ln in d.lines("err")[before:] if "queued=" in ln)
    return int(dict(t.split("=", 1) for t in line.split() if "=" in t).get(key, 0))


def open_files(pid):
    """The paths of the regular files the process has open."""
    out = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            out.add(os.readlink(os.path.join(fd_dir, fd)))
        except OSError:
            continue
    return out


def dead_pid():
    """A pid no process has now: one that just ended."""
    p = subprocess.Popen(["true"])
    p.wait()
    check("the pid of an ended process is free", not os.path.exists("/proc/%d" % p.pid))
    return p.pid


def write_in_pieces(path, data, pieces, after_each=None):
    """Create path, append data in pieces cut anywhere (mid-line too)."""
    cut = [len(data) * k // pieces for k in range(pieces + 1)]
    with open(path, "wb") as f:
        for a, b in zip(cut, cut[1:]):
            f.write(data[a:b])
            f.flush()
            if after_each:
                after_each(data[:b])


@test("follow_pattern")
def follow_pattern(tmp):
    tdir = trace_dir(tmp)
    want, stray = collections.Counter(), collections.Counter()
    with start(tmp, "--file", os.path.join(tdir, "lightningd-trace.*"), "--follow") as d:
        started(d)
        # Not matching: no suffix, another name, a hidden temporary file (renamed in later).
        for name, first in (("lightningd-trace", 0xa000), ("notes.txt", 0xb000)):
            with open(os.path.join(tdir, name), "w") as f:
                f.write(emit_lines(first, 3, name))
            stray += ids_range(first, 3)
        for n, name in enumerate(CAPTURE_FILES):
            with open(os.path.join(CAPTURE_DIR, name), "rb") as f:
                data = f.read()
            path = os.path.join(tdir, name)
            if n == 1:  # renamed in, complete
                tmp_path = os.path.join(tdir, ".tmp-" + name)
                with open(tmp_path, "wb") as f:
                    f.write(data)
                os.rename(tmp_path, path)
            elif n == 0:  # the big one: in pieces, each read before the next comes
                def arrived(so_far):
                    lines = so_far[:so_far.rfind(b"\n") + 1].decode()
                    part = collections.Counter(
                        ln.split('"id":"', 1)[1][:16] for ln in lines.split("\n")
                        if ln.startswith("span_emit "))
                    d.wait(lambda: not (part - span_ids(d.lines())), 60,
                           "the complete lines of a piece exported")
                write_in_pieces(path, data, 7, arrived)
            else:
                write_in_pieces(path, data, 3)
            want += ids_of(path)
            if n == 0:
                # A restart: the node's file is complete, a new process writes a new file.
                with open(os.path.join(tdir, "lightningd-trace.99999"), "w") as f:
                    f.write(emit_lines(0xc000, 4, "restarted"))
                want += ids_range(0xc000, 4)
                d.wait(lambda: not (ids_range(0xc000, 4) - span_ids(d.lines())), 60,
                       "the restarted process's spans")
        check("the capture has its 610 spans", sum(want.values()) == 610 + 4,
              sum(want.values()))
        d.wait(lambda: not (want - span_ids(d.lines())), 60, "every span of every file")
        d.stopped(what="exit 0 after SIGTERM")
    got = span_ids(d.lines())
    twice = {k: v for k, v in got.items() if v > 1}
    check("every span exactly once", not twice, twice)
    check("exactly the spans of the matching files", set(got) == set(want),
          (set(got) - set(want), set(want) - set(got)))
    check("nothing of the files that do not match", not set(got) & set(stray))
    err = d.err()
    for name in CAPTURE_FILES + ["lightningd-trace.99999"]:
        n = sum(want[i] for i in (ids_of(os.path.join(tdir, name))))
        check("summary line of %s" % name,
              "%s: " % os.path.join(tdir, name) in err and
              any(ln.startswith("cln-otlp: %s: " % os.path.join(tdir, name)) and
                  " %d spans accepted" % n in ln for ln in err.split("\n")), err[-2000:])


@test("pattern_once")
def pattern_once(tmp):
    tdir = trace_dir(tmp)
    want = collections.Counter()
    for name in CAPTURE_FILES:
        with open(os.path.join(CAPTURE_DIR, name), "rb") as src, \
                open(os.path.join(tdir, name), "wb") as dst:
            dst.write(src.read())
        want += ids_of(os.path.join(tdir, name))
    with open(os.path.join(tdir, "other.log"), "w") as f:
        f.write(emit_lines(0xd000, 3, "other"))
    r = run([A.cln_otlp, "--exporter", "stdout", "--file",
             os.path.join(tdir, "lightningd-trace.*")], timeout=120)
    check("exit 0 once the files are read", r.returncode == 0, r.stderr[-2000:])
    got = span_ids(r.stdout)
    check("every span of the matching files exactly once", got == want,
          (got - want, want - got))
    for name in CAPTURE_FILES:
        check("summary line of " + name, "%s: " % os.path.join(tdir, name) in r.stderr)
    # The directory itself: every file in it, other.log too.
    r = run([A.cln_otlp, "--exporter", "stdout", "--file", tdir], timeout=120)
    check("a directory: exit 0", r.returncode == 0, r.stderr[-2000:])
    check("a directory: every file in it", span_ids(r.stdout) == want + ids_range(0xd000, 3))

    for args, what, needle in (
            (["--file", os.path.join(tmp, "nowhere", "trace.*")], "a missing directory",
             "cannot read the directory"),
            (["--file", os.path.join(tmp, "nowhere", "trace.*"), "--follow"],
             "a missing directory, following", "cannot watch the directory"),
            (["--file", os.path.join(tdir, "nothing.*")], "no match", "no file matches")):
        r = run([A.cln_otlp, "--exporter", "stdout", *args], timeout=60)
        check("%s: exit 2" % what, r.returncode == 2, (r.returncode, r.stderr))
        check("%s: says so" % what, needle in r.stderr and "--file" in r.stderr, r.stderr)


@test("close_gone")
def close_gone(tmp):
    tdir = trace_dir(tmp)
    gone = os.path.join(tdir, "trace.%d" % dead_pid())
    alive = os.path.join(tdir, "trace.%d" % os.getpid())  # this test's own process
    with start(tmp, "--file", os.path.join(tdir, "trace.*"), "--follow") as d:
        started(d)
        base = len(os.listdir("/proc/%d/fd" % d.pid))
        with open(alive, "w") as f:
            f.write(emit_lines(0x100, 5, "alive"))
        with open(gone, "w") as f:
            f.write(emit_lines(0x200, 5, "gone"))
        want = ids_range(0x100, 5) + ids_range(0x200, 5)
        d.wait(lambda: not (want - span_ids(d.lines())), 60, "both files' spans")
        # Waited for, not slept: the follower looks every 200 ms.
        d.wait(lambda: gone not in open_files(d.pid), 30, "the ended process's file closed")
        # Its fd and its timer's: the live file (and its timer) is all that is left open.
        d.wait(lambda: len(os.listdir("/proc/%d/fd" % d.pid)) <= base + 2, 30,
               "the fd count back down to the live file's")
        check("the live process's file still open", alive in open_files(d.pid),
              open_files(d.pid))
        # The writer was in another pid namespace after all: written again, read on.
        with open(gone, "a") as f:
            f.write(emit_lines(0x300, 5, "later"))
        want += ids_range(0x300, 5)
        d.wait(lambda: not (want - span_ids(d.lines())), 60, "the spans written after the close")
        d.wait(lambda: gone not in open_files(d.pid), 30, "closed again")
        d.stopped(what="exit 0 after SIGTERM")
    got = span_ids(d.lines())
    check("every span exactly once", got == want, (got - want, want - got))


@test("limit")
def limit(tmp):
    tdir = trace_dir(tmp)
    n = MAX_OPEN + 6
    with start(tmp, "--file", tdir, "--follow") as d:
        started(d)
        base = len(os.listdir("/proc/%d/fd" % d.pid))
        for i in range(n):  # no .<pid>: never closed as the file of an ended process
            with open(os.path.join(tdir, "f%03d" % i), "w") as f:
                f.write(emit_lines(0x1000 * (i + 1), 2, "f%d" % i))
        d.wait(lambda: sum(span_ids(d.lines()).values()) >= 2 * MAX_OPEN, 60,
               "the spans of the files read")
        d.wait(lambda: stats_value(d, "files_refused") == n - MAX_OPEN, 30,
               "the files past the limit refused and counted")
        files = {f for f in open_files(d.pid) if f.startswith(tdir + "/")}
        check("as many files open as the limit", len(files) == MAX_OPEN, len(files))
        fds = len(os.listdir("/proc/%d/fd" % d.pid))
        check("fds bounded: a file and its timer each", fds <= base + 2 * MAX_OPEN, (base, fds))
        check("a warning says why", "files are read at once already" in d.err())
        d.stopped(what="exit 0 after SIGTERM")
    check("only the files read, each once", sum(span_ids(d.lines()).values()) == 2 * MAX_OPEN,
          sum(span_ids(d.lines()).values()))


main([NAME])
