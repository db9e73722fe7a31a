#!/bin/bash
# Build and run every libFuzzer target (tests/fuzz/fuzz_*.c), each with a seed corpus made
# from the test data (tests/fuzz/make_seeds.py) and its dictionary (tests/fuzz/dict/).
#   scripts/fuzz.sh                       60 s per target
#   scripts/fuzz.sh --time 3600           an hour per target
#   scripts/fuzz.sh --runs 20000          a fixed number of runs per target (what CI does)
#   scripts/fuzz.sh --only config,retry   some targets only (span trace_file config response retry
#                                         metrics_request finder spool)
#   scripts/fuzz.sh --jobs 1              targets run side by side, N at a time (default 2)
#   scripts/fuzz.sh --build DIR           build tree (default build-fuzz)
# Builds with clang, ASan and UBSan. Corpora grow in DIR/corpus/<target>, crashes land in
# DIR/crashes/<target>/, full logs in DIR/logs/. Prints one line per target; exits 1 if any
# target crashed. Replay a crash: DIR/tests/fuzz/fuzz_<target> DIR/crashes/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
mode=(-max_total_time=60)
build=build-fuzz
jobs=2
only=""
while [ $# -gt 0 ]; do
	case $1 in
	--time) mode=(-max_total_time="$2"); shift 2 ;;
	--runs) mode=(-runs="$2"); shift 2 ;;
	--only) only=${2//,/ }; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	--build) build=$2; shift 2 ;;
	-h | --help) sed -n '2,13p' "$0"; exit 0 ;;
	*) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
targets=(span trace_file config response retry metrics_request finder spool)
[ -n "$only" ] && read -r -a targets <<<"$only"
# Longest input worth trying: a span payload is at most 2048 bytes; a trace file gets a few
# lines (plus the over-long line the target makes itself); the rest are short.
declare -A max_len=([span]=4096 [trace_file]=8192 [config]=2048 [response]=2048 [retry]=512
	[metrics_request]=4096 [finder]=4096 [spool]=4096)
for t in "${targets[@]}"; do
	[ -f "tests/fuzz/fuzz_$t.c" ] || { echo "fuzz.sh: no target $t" >&2; exit 2; }
done

CC=clang cmake -S . -B "$build" -DCLN_OTLP_FUZZ=ON -DCLN_OTLP_SANITIZE=ON -DCLN_OTLP_BPF=OFF \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "${targets[@]/#/fuzz_}" >/dev/null

export ASAN_OPTIONS=detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# One target: seeds, then the fuzzer; the summary line goes to DIR/logs/<target>.summary.
run_one() {
	local t=$1 log=$build/logs/$t.log seeds=$build/seeds/$t dict=()
	local corpus=$build/corpus/$t crashes=$build/crashes/$t rc=0
	local start runs secs cov ft artifact
	rm -rf "$seeds"
	mkdir -p "$corpus" "$crashes" "$build/logs"
	/usr/bin/python3 tests/fuzz/make_seeds.py "$t" "$seeds" >/dev/null
	[ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
	start=$(date +%s)
	"$build/tests/fuzz/fuzz_$t" "${mode[@]}" "${dict[@]}" -max_len="${max_len[$t]:-4096}" \
		-timeout=30 -artifact_prefix="$crashes/" -print_final_stats=1 \
		"$corpus" "$seeds" >"$log" 2>&1 || rc=$?
	secs=$(($(date +%s) - start))
	# A target that crashes on its seeds prints no coverage: grep finding nothing is no error.
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -n 1 | cut -d' ' -f2 || true)
	if [ "$rc" = 0 ]; then
		echo "fuzz: $t: clean, ${runs:-?} runs in ${secs} s (cov ${cov:-?}, features ${ft:-?}, corpus $(find "$corpus" -type f | wc -l) inputs)"
	else
		artifact=$(sed -n 's/.*Test unit written to //p' "$log" | tail -n 1)
		echo "fuzz: $t: CRASH after ${runs:-?} runs in ${secs} s: ${artifact:-see $log} (log: $log)"
	fi >"$build/logs/$t.summary"
}

for t in "${targets[@]}"; do
	rm -f "$build/logs/$t.summary"
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
	run_one "$t" &
done
wait || true
status=0
for t in "${targets[@]}"; do
	if [ ! -s "$build/logs/$t.summary" ]; then
		echo "fuzz: $t: did not run (log: $build/logs/$t.log)"
		status=1
	elif grep -q CRASH "$build/logs/$t.summary"; then
		cat "$build/logs/$t.summary"
		status=1
	else
		cat "$build/logs/$t.summary"
	fi
done
if [ "$status" != 0 ]; then
	for t in "${targets[@]}"; do
		grep -qs CRASH "$build/logs/$t.summary" || continue
		echo "fuzz: the log of $t ends with:" >&2
		tail -n 30 "$build/logs/$t.log" >&2
	done
fi
exit "$status"
