#!/usr/bin/python3
"""Spans CLN cut at its 2048-byte buffer (tail and traceId lost) are kept: the text before
the cut, cln.truncated=true, and the traceId of their family — the parent emitted after
them, or the children emitted before them. One whose family never tells is dropped and
counted, and the run says so (exit 1).

usage: test_truncated.py CLN_OTLP
"""
import json
import subprocess
import sys

cln_otlp = sys.argv[1]
passed = failed = 0
T1 = "074c67a29952a72ce3a9ce4137f3d273"
T2 = "b8442e33d407dc0f9eff95dd1ffe1d50"


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL {name} {detail}", file=sys.stderr)


def span(id, name, parent=None, trace=T1, query="SELECT 1"):
    s = ('[{"id":"%s","name":"%s","timestamp":1795660314655273,"duration":175,'
         '"localEndpoint":{"serviceName":"lightningd"},' % (id, name))
    if parent:
        s += '"parentId":"%s",' % parent
    return s + '"tags":{"query":"%s"},"traceId":"%s"}]' % (query, trace)


def cut(id, name, parent=None):
    """What CLN's snprintf into 2048 bytes leaves of a long span: 2047 bytes, no tail."""
    full = span(id, name, parent, query="INSERT INTO t VALUES " + "(1, 'x')," * 400)
    assert len(full) > 2048
    return full[:2047]


def run(lines, *extra):
    r = subprocess.run([cln_otlp, "--file", "-", "--exporter", "stdout", *extra],
                       input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=30)
    spans = {}
    for line in r.stdout.splitlines():
        for rs in json.loads(line)["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    spans[sp["spanId"]] = sp
    return r, spans


def attrs(sp):
    return {a["key"]: a["value"] for a in sp["attributes"]}


# A cut child before its parent; a cut root after its child; a cut grandchild whose cut
# parent waits for the grandparent.
lines = [
    cut("00000000000000c1", "db_exec_prepared", parent="00000000000000a1"),
    span("00000000000000a1", "wallet_new", parent="0f346be4b171a29b"),
    span("00000000000000d1", "db_query_prepared", parent="00000000000000e1", trace=T2),
    cut("00000000000000e1", "migration"),
    cut("00000000000000f3", "db_exec_prepared", parent="00000000000000f2"),
    cut("00000000000000f2", "db_exec_prepared", parent="00000000000000f1"),
    span("00000000000000f1", "db_setup", trace=T2),
]
r, spans = run(lines)
check("exit 0: every span delivered", r.returncode == 0, r.stderr)
check("all 7 spans out", len(spans) == 7, str(sorted(spans)))
c1 = spans.get("00000000000000c1", {})
check("cut child takes its parent's traceId", c1.get("traceId") == T1, str(c1.get("traceId")))
check("cut child keeps its parent id", c1.get("parentSpanId") == "00000000000000a1")
check("cut child marked cln.truncated", attrs(c1).get("cln.truncated") == {"boolValue": True},
      str(attrs(c1)))
q = attrs(c1).get("query", {}).get("stringValue", "")
check("the text before the cut is kept", q.startswith("INSERT INTO t VALUES (1, 'x'),") and
      len(q) > 1800, f"{len(q)} bytes")
e1 = spans.get("00000000000000e1", {})
check("cut root takes the traceId its child told", e1.get("traceId") == T2, str(e1))
check("grandchild and parent adopted in turn",
      spans.get("00000000000000f3", {}).get("traceId") == T2 and
      spans.get("00000000000000f2", {}).get("traceId") == T2)
check("whole spans are not marked", "cln.truncated" not in attrs(spans["00000000000000a1"]))

# Other producers may emit a parent before its children: a cut child after it is adopted.
r, spans = run([span("00000000000000a7", "parent-first", trace=T2),
                cut("00000000000000c7", "db_exec_prepared", parent="00000000000000a7")])
check("cut child after its parent takes its traceId",
      spans.get("00000000000000c7", {}).get("traceId") == T2 and r.returncode == 0, r.stderr)

# The parent never comes: dropped, counted, reported.
r, spans = run([cut("00000000000000c2", "db_exec_prepared", parent="00000000000000a9"),
                span("00000000000000b1", "other")])
check("orphan dropped, the rest delivered", list(spans) == ["00000000000000b1"], str(spans))
check("orphan counted", "drop_truncated_orphan=1" in r.stderr, r.stderr)
check("a lost span makes the run fail", r.returncode == 1, str(r.returncode))

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
