#!/usr/bin/python3
"""Smoke runs of bench/run.py (root: eBPF): its --quick footprint and node cost parts run to
the end and print every figure as a number, beside main's (the build itself stands in for
today's main here). Figures, not speed: no bound on any value is asserted.

usage: test_bench.py footprint|node_cost --build DIR
"""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import check, need_root, run, test, main, options  # noqa: E402

RUN_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../bench/run.py")
NUMBER = r"[+-]?\d[\d,]*(\.\d+)?( MiB| %| s|x)?"
FIGURE = re.compile(rf"^{NUMBER}( \({NUMBER}–{NUMBER}\))?$")
words, opt = options("build")


def table(out, first_header):
    """The markdown table whose header starts with first_header: (header, rows of cells)."""
    lines = [ln for ln in out.splitlines() if ln.startswith("|")]
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| " + first_header + " |"))
    cells = lambda ln: [c.strip() for c in ln.strip().strip("|").split("|")]  # noqa: E731
    rows = []
    for ln in lines[start + 2:]:
        if ln.startswith("| " + first_header + " |"):
            break
        rows.append(cells(ln))
    return cells(lines[start]), rows


def bench(*argv):
    p = run(["/usr/bin/python3", RUN_PY, "--build", opt.build, "--quick", "--runs", "1",
             *argv], timeout=400)
    check("bench/run.py exits 0", p.returncode == 0, p.stderr[-3000:])
    return p.stdout


@test("footprint")
def footprint(tmp):
    """--footprint --quick: every figure is a number, for the defaults and for main."""
    need_root()
    out = bench("--footprint", "--old-build", opt.build)
    head, rows = table(out, "figure")
    check("columns: defaults, --ringbuf-size 16M, main",
          head == ["figure", "defaults", "--ringbuf-size 16M", "main"], head)
    names = [r[0] for r in rows]
    for want in ("RSS at rest", "RSS at 1k/s", "CPU idle", "CPU at 1k/s",
                 "RSS before the outage (1k/s)", "RSS at the end of a 10 s outage",
                 "RSS after the drain", "bytes per queued span (outage)",
                 "spans lost (fired, never recorded by the collector)"):
        check(f"a row {want!r}", want in names, names)
    check("a row of bytes per queued span with the collector down, real spans",
          any(n.startswith("bytes per queued span (collector down") and "real CLN spans" in n
              for n in names), names)
    check("a drain time row", any(n.startswith("drain time") for n in names), names)
    for r in rows:
        for col in (1, 3):  # defaults and main: every figure measured
            check(f"{r[0]}, {head[col]}: a number", FIGURE.match(r[col]) is not None, r)
        check(f"{r[0]}, {head[2]}: a number or not run",
              r[2] == "not run" or FIGURE.match(r[2]) is not None, r)


@test("node_cost")
def node_cost(tmp):
    """--node-cost --quick: each path's ns per span beside main's."""
    need_root()
    out = bench("--node-cost", "--main", os.path.join(opt.build, "cln-otlp"))
    head, rows = table(out, "path")
    check("main's columns", "main: ns per span" in head, head)
    paths = [r[0] for r in rows]
    check("no tracer, eBPF, socket, bare sendto",
          len(rows) == 4 and paths[0] == "no tracer" and "bare" in paths[3], paths)
    i, j = head.index("ns per span"), head.index("main: ns per span")
    for r in rows:
        check(f"{r[0]}: ns per span a number", FIGURE.match(r[i]) is not None, r)
        with_main = r[0] in ("no tracer",) or "bare" in r[0]
        check(f"{r[0]}: main's figure", FIGURE.match(r[j]) is not None or
              (with_main and r[j] == "same (no cln-otlp)"), r)


main(words)
