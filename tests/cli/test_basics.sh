#!/bin/bash
# The first command's behaviour as a user sees it: exit codes, the reject summary with line
# numbers, stdin, bpftrace output, --help and --version.
# usage: test_basics.sh CLN_OTLP DATA_DIR README
set -u
bin=$1
data=$2
readme=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
failc=0
ok() { pass=$((pass + 1)); }
bad() { failc=$((failc + 1)); echo "FAIL: $*" >&2; }
check() { # check NAME CONDITION...
	local name=$1
	shift
	if "$@"; then ok; else bad "$name"; fi
}

real=$data/cln-v26-startup/lightningd-trace.32274
good=$(grep -m1 '^span_emit' "$real" | cut -d' ' -f3-)

# --help and --version
"$bin" --help >"$tmp/help" 2>&1
check "--help exits 0" test $? -eq 0
check "--help has examples" grep -qi 'example' "$tmp/help"
check "--help documents --exporter" grep -q -- '--exporter' "$tmp/help"
# --help is made from the option table: README's options table must name every option and
# variable it lists, and no option that --help does not know.
# Each list is checked not to be empty: a loop over nothing would pass.
help_opts=$(grep -oE -- '--[a-z][a-z-]+' "$tmp/help" | sort -u)
help_vars=$(grep -oE 'OTEL_[A-Z_]+' "$tmp/help" | sort -u)
readme_opts=$(sed -n '/^## Options and environment/,/^## /p' "$readme" | grep -oE '^\| `--[a-z-]+' | cut -c4- | sort -u)
check "--help lists options" test -n "$help_opts"
check "--help lists OTEL_ variables" test -n "$help_vars"
check "README has its options table" test -n "$readme_opts"
for o in $help_opts; do
	check "README documents $o" grep -q -- "\`$o" "$readme"
done
for v in $help_vars; do
	check "README documents $v" grep -q "$v" "$readme"
done
for o in $readme_opts; do
	check "--help knows README's $o" grep -q -- "$o" "$tmp/help"
done
# Examples name the current semantic convention, not the deprecated deployment.environment.
root=$(dirname "$readme")
check "--help example uses deployment.environment.name" grep -q 'deployment\.environment\.name=' "$tmp/help"
for f in "$readme" "$root/docker/compose.yaml" "$root/packaging/cln-otlp.default" "$tmp/help"; do
	check "$f exists" test -s "$f"
	check "no deprecated deployment.environment in $f" \
		sh -c "! grep -qE 'deployment\.environment([^.a-z_]|\$)' \"\$1\"" _ "$f"
done
"$bin" --version >"$tmp/ver" 2>&1
check "--version" grep -Eq '^cln-otlp [0-9]+\.[0-9]+\.[0-9]+' "$tmp/ver"

# bad options: exit 2 and a hint
"$bin" --no-such-option >"$tmp/out" 2>"$tmp/err"
check "unknown option exits 2" test $? -eq 2
check "unknown option hints at --help" grep -q -- '--help' "$tmp/err"
"$bin" --file /nonexistent/trace --exporter stdout >"$tmp/out" 2>"$tmp/err"
rc=$?
check "missing file fails" test $rc -ne 0
check "missing file named" grep -q '/nonexistent/trace' "$tmp/err"

# mixed input on stdin: trace-file lines, bare arrays (bpftrace), noise, and bad lines
{
	echo "Attaching 1 probe..."
	echo "span_start 0ff6b0fc1df3f024 plugins/init"
	echo "span_emit 0ff6b0fc1df3f024 $good"
	echo "$good" | sed 's/0ff6b0fc1df3f024/1ff6b0fc1df3f024/'
	echo "span_emit 2ff6b0fc1df3f024 [{\"id\":\"2ff6b0fc1df3f024\",\"name\":\"x\"" # cut
	echo ""
	echo "$good" | sed 's/"id":"0ff6b0fc1df3f024"/"id":"0000000000000000"/'
	echo "span_end 0ff6b0fc1df3f024"
	echo "$good" | sed 's/"tags":{}/"tags":{"query":"SELECT "x""}/;s/0ff6b0fc1df3f024/3ff6b0fc1df3f024/'
} >"$tmp/mixed"
"$bin" --file - --exporter stdout <"$tmp/mixed" >"$tmp/out" 2>"$tmp/err"
check "rejected lines still exit 0" test $? -eq 0
n=$(grep -o '"spanId"' "$tmp/out" | wc -l)
check "3 spans out of the mixed input (got $n)" test "$n" -eq 3
check "recovered unescaped quotes" grep -q 'SELECT \\"x\\"' "$tmp/out"
check "summary counts rejects" grep -q '2 rejected' "$tmp/err"
check "summary names invalid_json with its line" grep -q 'invalid_json: 1 (line 5)' "$tmp/err"
check "summary names bad_id with its line" grep -q 'bad_id: 1 (line 7)' "$tmp/err"
check "noise counted as skipped" grep -q '1 other lines skipped' "$tmp/err"

# one ExportTraceServiceRequest per line, each valid JSON
"$bin" --file "$real" --exporter stdout --batch-size 100 >"$tmp/out" 2>"$tmp/err"
check "real capture exits 0" test $? -eq 0
lines=$(wc -l <"$tmp/out")
check "585 spans in batches of 100 make 6 lines (got $lines)" test "$lines" -eq 6
check "every line is one JSON request" /usr/bin/python3 -c '
import json,sys
n=0
for l in open(sys.argv[1]):
    r=json.loads(l); n+=sum(len(s["spans"]) for rs in r["resourceSpans"] for s in rs["scopeSpans"])
sys.exit(0 if n==585 else 1)' "$tmp/out"

# a read error is an I/O error: exit 1 (a directory cannot be read)
"$bin" --file "$tmp" --exporter stdout >"$tmp/out" 2>"$tmp/err"
check "unreadable input exits 1" test $? -eq 1

echo "$pass passed, $failc failed"
test $failc -eq 0
