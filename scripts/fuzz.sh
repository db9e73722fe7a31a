#!/bin/bash
# Run the libFuzzer targets with a seed corpus made from the real CLN captures.
#   scripts/fuzz.sh                  60 s per target
#   scripts/fuzz.sh --time 3600      an hour per target
#   scripts/fuzz.sh --runs 20000     a fixed number of runs (what CI does)
# Builds with clang, ASan and UBSan into build-fuzz/. Crashes land in build-fuzz/crashes/.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(-max_total_time=60)
while [ $# -gt 0 ]; do
	case $1 in
	--time) mode=(-max_total_time="$2"); shift 2 ;;
	--runs) mode=(-runs="$2"); shift 2 ;;
	-h | --help) sed -n '2,6p' "$0"; exit 0 ;;
	*) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
build=build-fuzz
CC=clang cmake -S . -B "$build" -DCLN_OTLP_FUZZ=ON -DCLN_OTLP_SANITIZE=ON -DCLN_OTLP_BPF=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target fuzz_span >/dev/null

# Seed corpus: every payload of the real captures, and every case of the span tests.
seeds=$build/seeds/span
mkdir -p "$seeds" "$build/corpus/span" "$build/crashes"
/usr/bin/python3 - "$seeds" tests/data <<'PY'
import glob, json, os, sys, hashlib
out, data = sys.argv[1:3]
def put(b):
    open(os.path.join(out, hashlib.sha1(b).hexdigest()), "wb").write(b)
for f in glob.glob(os.path.join(data, "cln-v26-startup", "*")):
    for line in open(f, "rb"):
        if line.startswith(b"span_emit "):
            put(line.split(b" ", 2)[2].rstrip(b"\n"))
for c in json.load(open(os.path.join(data, "span", "cases.json"))):
    put(c["input"].encode() if "input" in c else bytes.fromhex(c["input_hex"]))
PY
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
"$build/tests/fuzz/fuzz_span" "${mode[@]}" -max_len=4096 -artifact_prefix="$build/crashes/" \
	-print_final_stats=1 "$build/corpus/span" "$seeds" 2>&1 | tail -n 15
echo "fuzz: fuzz_span ran clean (${mode[*]})"
