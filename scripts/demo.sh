#!/bin/bash
# The main job on a built-in example: CLN spans captured whole through the real USDT probe,
# exported over OTLP, and the traces the collector received printed as trees.
#
#   scripts/demo.sh                      as root: replay the bundled real capture through the
#                                        bundled emitter's probes, export to the mock
#                                        collector, print the traces it received, exit 0
#   scripts/demo.sh --lightningd PATH    bridge that node instead (also: lightningd on PATH),
#                                        until Ctrl-C
#   scripts/demo.sh --endpoint URL       export there too (a real collector, Tempo...)
#
# Not root: falls back to replaying the trace file without eBPF, and says what that skips.
# Installs what is missing and builds into build/ first (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
node=""
endpoint=""
while [ $# -gt 0 ]; do
	case $1 in
	--lightningd) node=$2; shift 2 ;;
	--endpoint) endpoint=$2; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
	*) echo "demo.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
[ -z "$node" ] && node=$(command -v lightningd || true)

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
root=1
[ "$(id -u)" -eq 0 ] || root=0

say "installing what is missing and building"
if [ $root = 1 ]; then
	scripts/install-deps.sh
else
	scripts/install-deps.sh || {
		echo "demo.sh: run as root once (sudo scripts/demo.sh) so the packages get installed" >&2
		exit 1
	}
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
bin=build/cln-otlp
emitter=build/tests/usdt/emitter/cln-emitter
capture=tests/data/cln-v26-startup/lightningd-trace.32274
tmp=$(mktemp -d /tmp/cln-otlp-demo.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT

if [ $root = 1 ] && [ -n "$node" ] && [ -x "$node" ]; then
	say "bridging the node at $node until Ctrl-C"
	args=(--lightningd "$node")
	if [ -n "$endpoint" ]; then
		args+=(--endpoint "$endpoint")
	else
		echo "no --endpoint: printing each trace as a tree here (--exporter console)"
		args+=(--exporter console)
	fi
	exec "$bin" "${args[@]}"
fi

say "starting the mock OTLP collector"
/usr/bin/python3 tests/collector/mock_collector.py --proto-py build/tests/collector/py \
	--http 0 --port-file "$tmp/ports.json" --record "$tmp/spans.jsonl" 2>"$tmp/collector.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$tmp/ports.json" ] && break; sleep 0.1; done
port=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"])' \
	"$tmp/ports.json")
url=${endpoint:-http://127.0.0.1:$port}
echo "collector on http://127.0.0.1:$port"

if [ $root = 1 ]; then
	say "attaching cln-otlp to the bundled emitter (a stand-in for lightningd with its probes)"
	cp "$emitter" "$tmp/lightningd"
	"$bin" --lightningd "$tmp/lightningd" --no-plugins --endpoint "$url" --batch-delay 200 \
		2>"$tmp/bridge.log" &
	bridge=$!
	pids+=($bridge)
	for _ in $(seq 200); do grep -q attached "$tmp/bridge.log" && break; sleep 0.1; done
	grep attached "$tmp/bridge.log" || { cat "$tmp/bridge.log" >&2; exit 1; }
	say "replaying the real lightningd capture through the lightningd:span_emit probe"
	"$tmp/lightningd" "$capture"
	sleep 1
	kill -TERM "$bridge"
	wait "$bridge" || true
else
	say "not root: no eBPF capture — replaying the trace file directly instead"
	echo "(this skips the kernel side: the USDT probe, the ring buffer, and suspend/resume"
	echo " events, which a trace file carries without times; run as root for all of it)"
	"$bin" --file "$capture" --endpoint "$url" --batch-delay 200 2>"$tmp/bridge.log"
fi
grep -E 'done:' "$tmp/bridge.log" || true

say "traces the collector received"
/usr/bin/python3 scripts/trees.py "$tmp/spans.jsonl"
