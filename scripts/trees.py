#!/usr/bin/python3
"""Print the traces a collector received as indented trees.

usage: trees.py SPANS.jsonl [--max-children N]

SPANS.jsonl is the mock collector's --record file (one span per line, OTLP/JSON with hex
ids). Each trace: its root first (a span whose parent is not in the trace), children in
start order, with duration, a bar of where in the root's time the span ran, and its
attributes, status and events.
"""
import collections
import json
import sys

WIDTH = 30
path = sys.argv[1]
max_children = 12
if "--max-children" in sys.argv:
    max_children = int(sys.argv[sys.argv.index("--max-children") + 1])


def dur(ns):
    if ns >= 1e9:
        return f"{ns / 1e9:.3f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e3:.0f} µs"


spans = []
for line in open(path, encoding="utf-8"):
    rec = json.loads(line)
    sp = rec["span"]
    sp["_res"] = rec.get("resource", {})
    spans.append(sp)
traces = collections.defaultdict(list)
for sp in spans:
    traces[sp["traceId"]].append(sp)


def show(sp, kids, depth, t0, t1, out):
    start, end = int(sp["startTimeUnixNano"]), int(sp["endTimeUnixNano"])
    span_ns = max(t1 - t0, 1)
    a = min(WIDTH - 1, (start - t0) * WIDTH // span_ns)
    b = max(a + 1, min(WIDTH, -(-(end - t0) * WIDTH // span_ns)))
    bar = " " * a + "█" * (b - a) + " " * (WIDTH - b)
    attrs = " ".join(f'{x["key"]}={next(iter(x["value"].values()))}' for x in sp["attributes"])
    if len(attrs) > 70:
        attrs = attrs[:69] + "…"
    status = " ERROR" if sp.get("status", {}).get("code") == 2 else ""
    events = " ".join(e["name"] for e in sp.get("events", []))
    name = "  " * depth + sp["name"]
    out.append(f"{name:<44} {dur(end - start):>10} |{bar}|{status} {attrs} {events}".rstrip())
    children = sorted(kids.get(sp["spanId"], []), key=lambda s: int(s["startTimeUnixNano"]))
    for i, c in enumerate(children):
        if i == max_children:
            out.append("  " * (depth + 1) + f"… {len(children) - max_children} more")
            break
        show(c, kids, depth + 1, t0, t1, out)


# Smallest first, so the largest trace (CLN's startup) ends the output.
ordered = sorted(traces.values(), key=lambda t: len(t))
for trace in ordered:
    ids = {s["spanId"] for s in trace}
    kids = collections.defaultdict(list)
    roots = []
    for s in trace:
        p = s.get("parentSpanId")
        if p and p in ids:
            kids[p].append(s)
        else:
            roots.append(s)
    for root in sorted(roots, key=lambda s: int(s["startTimeUnixNano"])):
        t0, t1 = int(root["startTimeUnixNano"]), int(root["endTimeUnixNano"])
        res = root["_res"]
        svc = res.get("service.name", "?")
        pid = res.get("process.pid", "")
        print(f"\ntrace {root['traceId']}  {svc}[{pid}]  {len(trace)} spans")
        out = []
        show(root, kids, 0, t0, t1, out)
        print("\n".join(out))
print(f"\n{len(spans)} spans in {len(traces)} traces")
