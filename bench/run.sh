#!/bin/bash
# Side-by-side benchmarks (root): cln-otlp against no tracer and the bpftrace one-liner,
# printed as a markdown table. Run scripts/test.sh first (it installs and builds).
#   bench/run.sh              5 runs per figure (medians)
#   bench/run.sh --quick      3 runs, fewer spans
#   bench/run.sh --runs 9
exec /usr/bin/python3 "$(dirname "$0")/run.py" "$@"
