#!/bin/bash
# Side-by-side benchmarks (root): cln-otlp against no tracer and the bpftrace one-liner,
# printed as markdown tables. Run scripts/test.sh first (it installs and builds).
#   bench/run.sh              5 runs per figure (medians, min-max beside)
#   bench/run.sh --quick      3 runs at most, fewer spans, shorter windows and outage
#   bench/run.sh --runs 9
#   bench/run.sh --footprint --old-build DIR   memory, CPU and a 30 s collector outage,
#                                              beside DIR/cln-otlp (today's main)
#   bench/run.sh --node-cost --main BIN        the node's cost per span, beside BIN's
#   bench/run.sh --help       every option
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
