#!/usr/bin/python3
"""The ratio sampler's known answers for tests/data/volume/cases.json, computed here with exact
rational arithmetic, independently of the C code: the OpenTelemetry TraceIdRatioBased rule
(trace/sdk.md; trace/tracestate-probability-sampling.md): rejection threshold
T = 2^56 - round_half_up(ratio * 2^56), randomness R = the traceId's least significant 56 bits,
sampled when R >= T. Prints the "sample" cases as JSON lines.

usage: sample_answers.py [CAPTURE_DIR]
"""
import glob
import json
import os
import sys
from fractions import Fraction

RANGE = 1 << 56


def threshold(ratio):
    return RANGE - int(Fraction(ratio) * RANGE + Fraction(1, 2))


def sampled(trace_hex, ratio):
    return int(trace_hex.rjust(32, "0")[-14:], 16) >= threshold(ratio)


def capture_traces(d):
    out = []
    for f in sorted(glob.glob(os.path.join(d, "lightningd-trace.*"))):
        for line in open(f, encoding="utf-8", errors="replace"):
            if line.startswith("span_emit "):
                t = json.loads(line.split(" ", 2)[2])[0]["traceId"]
                if t not in out:
                    out.append(t)
    return out


EDGES = ["00000000000000000000000000000001", "ffffffffffffffffffffffffffffffff",
         "ff000000000000000000000000000000", "ffffffffffffffffff00000000000000",
         "00000000000000000080000000000000", "0000000000000000007fffffffffffff",
         "000000000000000000e6666666666666", "000000000000000000e6666666666665",
         "0000000000000000ff19999999999999", "00000000000000000019999999999999"]

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    traces = EDGES + capture_traces(sys.argv[1] if len(sys.argv) > 1 else
                                    os.path.join(here, "..", "data", "cln-v26-startup"))
    for ratio in (0, 1, 0.5, 0.1, 0.25, 0.9, 1e-6):
        print(json.dumps({"name": "sample_%s" % ratio, "ratio": ratio,
                          "threshold": str(threshold(ratio)),
                          "sampled": {t: sampled(t, ratio) for t in traces}}))
