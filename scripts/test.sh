#!/bin/bash
# The test command: installs what is missing (Debian 12, as root), checks the code style,
# builds, and runs every test: unit and integration suites (the eBPF ones need root), the
# same suites under ASan+UBSan, the main paths under valgrind, and the fuzz targets for a
# fixed number of runs. A test runs once: a test that needs a second try has a bug to fix.
#   scripts/test.sh              everything
#   scripts/test.sh --quick      the normal build's tests only (no sanitizer build, no fuzzing)
# Build trees: build/ (normal), build-asan/, build-fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
case ${1:-} in
--quick) quick=1 ;;
-h | --help) sed -n '2,8p' "$0"; exit 0 ;;
"") ;;
*) echo "test.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
esac

scripts/install-deps.sh

jobs=$(nproc)
step() { printf '\n=== %s\n' "$*"; }

step "style (clang-format, .clang-format)"
if ! clang-format --dry-run -Werror src/*.[ch] bpf/*.[ch]; then
	echo "style: run clang-format -i on the files above" >&2
	exit 1
fi

step "build (RelWithDebInfo)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$jobs"

step "tests"
if [ "$(id -u)" -ne 0 ]; then
	if [ "${CI:-}" = true ]; then
		echo "CI runs as root: the eBPF tests must not be skipped" >&2
		exit 1
	fi
	echo "not root: skipping the tests labelled 'root' (eBPF); run as root for all of them"
	ctest --test-dir build --output-on-failure -LE 'root|valgrind'
else
	ctest --test-dir build --output-on-failure -LE valgrind
fi

[ $quick = 1 ] && exit 0

step "tests under ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DCLN_OTLP_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
ctest --test-dir build-asan --output-on-failure -LE 'slow|perf'

step "tests under valgrind (no errors, no leaks)"
ctest --test-dir build --output-on-failure -L valgrind

step "fuzzing (fixed number of runs)"
scripts/fuzz.sh --runs 20000
