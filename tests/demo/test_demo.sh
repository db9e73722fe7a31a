#!/bin/bash
# Runs scripts/demo.sh and checks how it ends: the lightningd/startup trace of the real
# capture, received by the collector through the real probe, printed as a tree.
set -u
src=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
pass=0 fail=0
check() { if eval "$2"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1" >&2; fi; }
"$src/scripts/demo.sh" >"$out" 2>&1
rc=$?
check "demo exits 0 (got $rc)" "[ $rc -eq 0 ]"
last_trace=$(grep -n '^trace ' "$out" | tail -1 | cut -d: -f1)
check "a trace was printed" "[ -n \"$last_trace\" ]"
tail -n +"${last_trace:-1}" "$out" >"$out.last"
check "the last trace is lightningd/startup, as its root" "sed -n 2p $out.last | grep -q '^lightningd/startup '"
check "its children are indented under it" "grep -q '^  wallet_new ' $out.last && grep -q '^    db_setup ' $out.last"
check "all 585 spans of lightningd arrived" "grep -q 'received=585 usdt=585' $out"
check "the summary counts every span" "tail -1 $out | grep -Eq '^6[0-9]{2} spans|^585 spans'"
rm -f "$out.last"
[ $fail -eq 0 ] || cat "$out" >&2
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
