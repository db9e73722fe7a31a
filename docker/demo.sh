#!/bin/bash
# The compose demo without a Lightning node: cln-emitter, installed as a stand-in lightningd,
# fires CLN's tracing probes replaying a real CLN capture (a node's start-up and a few RPC
# calls), and cln-otlp captures them with eBPF and exports them, as it would from a node.
#
# Every round moves the capture's timestamps to the present and gives each trace a fresh
# id, so each round shows up in Grafana as new traces of the last minutes.
#
# Arguments go to cln-otlp (e.g. --exporter console). Environment (defaults for the image):
#   DEMO_INTERVAL  seconds between rounds (30)      DEMO_ROUNDS  rounds, 0 = forever (0)
#   DEMO_RATE      spans per second while replaying (1000)
#   CLN_OTLP, DEMO_EMITTER, DEMO_CAPTURE   the daemon, the stand-in lightningd, the capture
#   OTEL_*         as for cln-otlp (compose sets OTEL_EXPORTER_OTLP_ENDPOINT)
set -euo pipefail

cln_otlp=${CLN_OTLP:-/usr/bin/cln-otlp}
emitter=${DEMO_EMITTER:-/opt/cln-demo/bin/lightningd}
capture=${DEMO_CAPTURE:-/opt/cln-demo/capture}
interval=${DEMO_INTERVAL:-30}
rounds=${DEMO_ROUNDS:-0}
rate=${DEMO_RATE:-1000}

say() { echo "demo: $*" >&2; }

shopt -s nullglob
files=("$capture"/*)
if [ ${#files[@]} -eq 0 ]; then
	say "no trace files in $capture"
	exit 1
fi

work=$(mktemp -d)
pid=
stop() {
	trap - EXIT INT TERM
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" # cln-otlp flushes what it holds, then exits
		wait "$pid" || true
	fi
	rm -rf "$work"
}
trap stop EXIT
trap 'exit 0' INT TERM

"$cln_otlp" --lightningd "$emitter" --no-plugins "$@" 2>"$work/log" &
pid=$!
tail -n +1 -f "$work/log" --pid "$pid" >&2 &

# Attached once it says so; gone if it failed (its message is already on stderr).
for _ in $(seq 300); do
	grep -q "attached" "$work/log" && break
	if ! kill -0 "$pid" 2>/dev/null; then
		wait "$pid" || rc=$?
		say "cln-otlp exited (status ${rc:-0}) before attaching"
		pid=
		exit 1
	fi
	sleep 0.1
done
grep -q "attached" "$work/log" || { say "cln-otlp did not attach within 30 s"; exit 1; }

# The earliest timestamp of the capture: it becomes "now" in every round.
first=$(perl -ne '$m = $1 if /"timestamp":\s*(\d+)/ && (!defined $m || $1 < $m);
	END { print $m // 0 }' "${files[@]}")

round=0
while :; do
	round=$((round + 1))
	now=$(date +%s%6N)
	mkdir -p "$work/round"
	# Shift every timestamp (microseconds); map each traceId to a new random one, the same
	# in every file (a trace may cross processes).
	perl -e '
		my ($off, $dir, @files) = @ARGV;
		my %new;
		for my $f (@files) {
			open(my $in, "<", $f) or die "$f: $!\n";
			(my $name = $f) =~ s{.*/}{};
			open(my $out, ">", "$dir/$name") or die "$dir/$name: $!\n";
			while (<$in>) {
				next unless /^span_/; # CLN also logs lines like "destroying span"
				s/("timestamp":\s*)(\d+)/$1 . ($2 + $off)/e;
				s{("traceId":\s*")([0-9a-f]+)"}{
					$new{$2} //= join "", map { sprintf "%08x", int rand 2**32 }
						1 .. length($2) / 8;
					"$1$new{$2}\""
				}e;
				print $out $_;
			}
			close($out) or die "$dir/$name: $!\n";
		}
	' "$((now - first))" "$work/round" "${files[@]}"
	"$emitter" --rate "$rate" --quiet "$work/round"/*
	say "round $round: replayed ${#files[@]} trace files"
	rm -rf "$work/round"
	if [ "$rounds" -gt 0 ] && [ "$round" -ge "$rounds" ]; then
		break
	fi
	sleep "$interval"
done
