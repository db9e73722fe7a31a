#!/usr/bin/python3
"""Spans CLN cut at its 2048-byte buffer (tail and traceId lost) are kept: the text before
the cut, cln.truncated=true, and the traceId of their family — the parent emitted after
them, or the children emitted before them. One whose family never tells is dropped and
counted, and the run says so (exit 1).

usage: test_truncated.py CLN_OTLP
"""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../lib"))
from harness import TRACE as T1, attrs, check, cln_json, main, otlp_spans, run, test  # noqa

T2 = "b8442e33d407dc0f9eff95dd1ffe1d50"


def span(sid, name, parent=None, trace=T1):
    return cln_json(sid, name, trace, parent, tags={"query": "SELECT 1"})


def cut(sid, name, parent=None):
    """What CLN's snprintf into 2048 bytes leaves of a long span: 2047 bytes, no tail."""
    full = cln_json(sid, name, T1, parent, tags={"query": "INSERT INTO t VALUES " +
                                                  "(1, 'x')," * 400})
    check("the span is longer than CLN's buffer", len(full) > 2048)
    return full[:2047]


def export(lines):
    r = run([sys.argv[1], "--file", "-", "--exporter", "stdout"], input="\n".join(lines) + "\n")
    return r, {sp["spanId"]: sp for _, sp in otlp_spans(r.stdout)}


@test("truncated")
def truncated(tmp):
    # A cut child before its parent; a cut root after its child; a cut grandchild whose cut
    # parent waits for the grandparent.
    r, spans = export([
        cut("00000000000000c1", "db_exec_prepared", parent="00000000000000a1"),
        span("00000000000000a1", "wallet_new", parent="0f346be4b171a29b"),
        span("00000000000000d1", "db_query_prepared", parent="00000000000000e1", trace=T2),
        cut("00000000000000e1", "migration"),
        cut("00000000000000f3", "db_exec_prepared", parent="00000000000000f2"),
        cut("00000000000000f2", "db_exec_prepared", parent="00000000000000f1"),
        span("00000000000000f1", "db_setup", trace=T2)])
    check("exit 0: every span delivered", r.returncode == 0)
    check("all 7 spans out", len(spans) == 7, sorted(spans))
    c1 = spans["00000000000000c1"]
    check("cut child takes its parent's traceId", c1["traceId"] == T1, c1["traceId"])
    check("cut child keeps its parent id", c1["parentSpanId"] == "00000000000000a1")
    a = attrs(c1["attributes"])
    check("cut child marked cln.truncated", a.get("cln.truncated") is True, a)
    check("the text before the cut is kept", a["query"].startswith(
        "INSERT INTO t VALUES (1, 'x'),") and len(a["query"]) > 1800, len(a["query"]))
    e1 = spans["00000000000000e1"]
    check("cut root takes the traceId its child told", e1["traceId"] == T2, e1)
    check("grandchild and parent adopted in turn", spans["00000000000000f3"]["traceId"] ==
          spans["00000000000000f2"]["traceId"] == T2)
    check("whole spans are not marked",
          "cln.truncated" not in attrs(spans["00000000000000a1"]["attributes"]))

    # Other producers may emit a parent before its children: a cut child after it is adopted.
    r, spans = export([span("00000000000000a7", "parent-first", trace=T2),
                       cut("00000000000000c7", "db_exec_prepared", parent="00000000000000a7")])
    check("cut child after its parent takes its traceId",
          spans["00000000000000c7"]["traceId"] == T2 and r.returncode == 0)

    # The parent never comes: dropped, counted, reported.
    r, spans = export([cut("00000000000000c2", "db_exec_prepared", parent="00000000000000a9"),
                       span("00000000000000b1", "other")])
    check("orphan dropped, the rest delivered", list(spans) == ["00000000000000b1"], spans)
    check("orphan counted", "drop_truncated_orphan=1" in r.stderr, r.stderr)
    check("a lost span makes the run fail", r.returncode == 1, r.returncode)


main(["truncated"])
