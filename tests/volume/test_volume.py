#!/usr/bin/python3
"""Volume control on the real capture (tests/data/cln-v26-startup, all 20 files, 610 spans),
checked against what this test computes from the capture itself.

  drop_db        --drop-span 'db_*': exactly the db_* spans that are not roots are gone, every
                 other span is there once, its parent the nearest kept ancestor (computed
                 here); the counters say the same
  drop_db_short  --drop-span 'db_*<1ms': only those shorter than 1 ms
  drop_inner     spans with kept children dropped (wallet_new, db_setup, lightningd/jsonrpc):
                 the children move up to the nearest kept ancestor
  sample_whole   --sample 0.5, twice: the kept traces are those the TraceIdRatioBased rule
                 picks (computed here), each whole, the same in both runs; counters match
  tail_keeps     the capture with some spans marked error="true": --sample 0 --keep-errors
                 --keep-slower-than 20ms keeps exactly the error and the slow traces, whole;
                 with --sample 0.1 too, the sampled ones besides
  time_bound     a trace whose root never comes is exported at --hold-time while the daemon
                 runs (followed file), counted cut_short
  memory_bound   --hold-size 8: traces are decided early, counted, none lost

usage: test_volume.py TEST --cln-otlp BIN
"""
import fnmatch
import glob
import json
import os
import re
import signal
import sys
from fractions import Fraction

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import CAPTURE_DIR, Proc, check, main, options, otlp_spans, run, test  # noqa

(NAME,), A = options("cln-otlp")
FILES = sorted(glob.glob(os.path.join(CAPTURE_DIR, "lightningd-trace.*")))


def capture(files=FILES):
    out = []
    for f in files:
        with open(f, encoding="utf-8", errors="replace") as fh:
            out += [json.loads(ln.split(" ", 2)[2])[0] for ln in fh if ln.startswith("span_emit ")]
    return out


def daemon(tmp, files, *args):
    argv = [A.cln_otlp, "--exporter", "stdout", "--batch-delay", "50", "--stats-interval", "0"]
    for f in files:
        argv += ["--file", f]
    r = run(argv + list(args))
    check("cln-otlp %s exits 0" % " ".join(args), r.returncode == 0, r.stderr)
    spans = [sp for _, sp in otlp_spans(r.stdout)]
    return spans, done_counters(r.stderr)


def done_counters(err):
    line = [ln for ln in err.split("\n") if "info: done: " in ln]
    check("a done: stats line", len(line) == 1, err)
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)\b", line[0])}


def by_id(spans):
    ids = {}
    for sp in spans:
        check("span %s exported once" % sp["spanId"], sp["spanId"] not in ids)
        ids[sp["spanId"]] = sp
    return ids


def expected_parents(cln, dropped):
    """Each kept span's parent: up through dropped spans to the nearest kept one."""
    spans = {s["id"]: s for s in cln}
    out = {}
    for s in cln:
        if s["id"] in dropped:
            continue
        p = s.get("parentId")
        while p in dropped:
            p = spans[p].get("parentId")
        out[s["id"]] = p
    return out


def check_drop(tmp, rules, drops):
    cln = capture()
    rule = " ".join(rules)
    dropped = {s["id"] for s in cln if drops(s) and "parentId" in s}
    check("the rule %s drops something and keeps something" % rule, 0 < len(dropped) < len(cln))
    spans, c = daemon(tmp, FILES, *[a for r in rules for a in ("--drop-span", r)])
    got = by_id(spans)
    check("%s: exactly the other spans exported" % rule,
          set(got) == {s["id"] for s in cln} - dropped,
          "missing %s, extra %s" % ({s["id"] for s in cln} - dropped - set(got),
                                    set(got) & dropped))
    want = expected_parents(cln, dropped)
    wrong = {i: (got[i].get("parentSpanId"), p) for i, p in want.items()
             if (got[i].get("parentSpanId") or None) != p}
    check("%s: every kept span's parent is its nearest kept ancestor" % rule, not wrong, wrong)
    check("%s: every parent is an exported span (connected)" % rule,
          all(sp.get("parentSpanId") in got for sp in spans if sp.get("parentSpanId")))
    traces = {s["traceId"] for s in cln}
    check("%s: counters" % rule, c.get("rule_dropped") == len(dropped) and
          c.get("exported") == len(cln) - len(dropped) and c.get("kept_sampled") == len(traces)
          and c.get("received") == len(cln) and c.get("dropped") == 0 and "cut_short" not in c,
          c)
    moved = [i for i, p in want.items() if p != next(s for s in cln if s["id"] == i).get("parentId")]
    return dropped, moved


@test("drop_db")
def t_drop_db(tmp):
    dropped, _ = check_drop(tmp, ["db_*"], lambda s: fnmatch.fnmatchcase(s["name"], "db_*"))
    check("496 db spans dropped (the 3 db roots stay)", len(dropped) == 496)


@test("drop_db_short")
def t_drop_db_short(tmp):
    dropped, _ = check_drop(tmp, ["db_*<1ms"], lambda s: fnmatch.fnmatchcase(s["name"], "db_*")
                            and s["duration"] < 1000)
    check("some db spans last 1 ms or more, and stay", len(dropped) < 496)


@test("drop_inner")
def t_drop_inner(tmp):
    """Spans with kept children: those children move up to the nearest kept ancestor."""
    names = ("wallet_new", "db_setup", "lightningd/jsonrpc")
    _, moved = check_drop(tmp, ["wallet_new", "db_set?p", "lightningd/*<1s"],
                          lambda s: s["name"] in names and s["duration"] < 1000000)
    check("spans were re-parented (through two dropped generations too)", len(moved) > 300,
          len(moved))


def ratio_sampled(trace, ratio):
    """TraceIdRatioBased: the low 56 bits >= 2^56 - round(ratio * 2^56)."""
    t = (1 << 56) - int(Fraction(ratio) * (1 << 56) + Fraction(1, 2))
    return int(trace[-14:], 16) >= t


def traces_of(spans, key="traceId"):
    out = {}
    for s in spans:
        out.setdefault(s[key], set()).add(s["spanId"] if "spanId" in s else s["id"])
    return out


@test("sample_whole")
def t_sample_whole(tmp):
    cln = capture()
    all_traces = traces_of(cln)
    want = {t for t in all_traces if ratio_sampled(t, 0.5)}
    check("the ratio keeps some traces and not others", 0 < len(want) < len(all_traces))
    runs = []
    for _ in range(2):
        spans, c = daemon(tmp, FILES, "--sample", "0.5")
        got = traces_of(spans)
        check("exactly the traces the rule picks", set(got) == want,
              "extra %s, missing %s" % (set(got) - want, want - set(got)))
        check("every kept trace whole", all(got[t] == all_traces[t] for t in got))
        out = sum(len(all_traces[t]) for t in all_traces if t not in want)
        check("counters", c.get("sampled_out") == out and c.get("kept_sampled") == len(want) and
              c.get("exported") == len(cln) - out, c)
        runs.append(sorted(got))
    check("two processes keep the same traces", runs[0] == runs[1])


def errored_capture(tmp):
    """The capture with the plugins' jsonrpc spans of two traces marked error="true"."""
    d = os.path.join(tmp, "cap")
    os.mkdir(d)
    marked = 0
    for f in FILES:
        with open(f, encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        if marked < 2 and '"error":"false"' in text and not f.endswith("32274"):
            text = text.replace('"error":"false"', '"error":"true"')
            marked += 1
        with open(os.path.join(d, os.path.basename(f)), "w", encoding="utf-8") as fh:
            fh.write(text)
    check("two files marked", marked == 2)
    return sorted(glob.glob(os.path.join(d, "lightningd-trace.*")))


@test("tail_keeps")
def t_tail_keeps(tmp):
    files = errored_capture(tmp)
    cln = capture(files)
    all_traces = traces_of(cln)
    err = {s["traceId"] for s in cln if s.get("tags", {}).get("error") not in (None, "false")}
    slow = {s["traceId"] for s in cln if s["duration"] >= 20000}
    check("some error and some slow traces, not all", err and slow and
          len(err | slow) < len(all_traces), (err, slow))
    for ratio in ("0", "0.1"):
        sampled = {t for t in all_traces if ratio_sampled(t, float(ratio))}
        spans, c = daemon(tmp, files, "--sample", ratio, "--keep-errors",
                          "--keep-slower-than", "20ms")
        got = traces_of(spans)
        want = sampled | err | slow
        check("--sample %s: exactly the sampled, error and slow traces" % ratio,
              set(got) == want, "extra %s, missing %s" % (set(got) - want, want - set(got)))
        check("every kept trace whole", all(got[t] == all_traces[t] for t in got))
        check("--sample %s: counters by reason" % ratio,
              c.get("kept_sampled", 0) == len(sampled) and
              c.get("kept_error", 0) == len(err - sampled) and
              c.get("kept_slow", 0) == len(slow - err - sampled) and
              c.get("sampled_out") == sum(len(all_traces[t]) for t in all_traces if t not in want),
              c)


@test("time_bound")
def t_time_bound(tmp):
    """A followed file whose trace's root never comes: exported at the hold time, running."""
    cln = [s for s in capture(FILES[:1]) if "parentId" in s][:5]
    path = os.path.join(tmp, "trace.1")
    with open(path, "w", encoding="utf-8") as f:
        for s in cln:
            f.write("span_emit %s %s\n" % (s["id"], json.dumps([s], separators=(",", ":"))))
    argv = [A.cln_otlp, "--exporter", "stdout", "--batch-delay", "50", "--stats-interval", "0",
            "--file", path, "--follow", "--drop-span", "no_such_span", "--hold-time", "300"]
    with Proc(argv, tmp, "cln-otlp") as d:
        d.wait(lambda: len([sp for _, sp in otlp_spans(d.lines())]) == len(cln), 30,
               "the held spans exported at the hold time, while running")
        check("the daemon still runs (not a flush at exit)", d.running())
        before = len(d.lines("err"))
        os.kill(d.pid, signal.SIGUSR1)
        d.wait(lambda: any("cut_short=1" in ln for ln in d.lines("err")[before:]), 30,
               "cut_short=1 on the stats line")
        d.stopped()


@test("memory_bound")
def t_memory_bound(tmp):
    cln = capture()
    spans, c = daemon(tmp, FILES, "--drop-span", "no_such_span", "--hold-size", "8")
    check("every span exported once", sorted(by_id(spans)) == sorted(s["id"] for s in cln))
    check("traces cut short by the bound, counted", c.get("cut_short", 0) > 0, c)
    _, c = daemon(tmp, FILES, "--drop-span", "no_such_span")
    check("none cut short with the default bound", "cut_short" not in c, c)


if __name__ == "__main__":
    main([NAME])
