#!/bin/bash
# Install the Debian 12 packages cln-otlp needs to build, test and benchmark (as root).
# Only what is missing is installed; nothing happens when all are there.
set -euo pipefail
pkgs=(
	cmake make gcc pkg-config clang llvm libclang-rt-14-dev  # build, BPF, sanitizers, fuzzing
	clang-format                                              # the style check
	libbpf-dev bpftool libelf-dev zlib1g-dev                  # eBPF capture
	libprotobuf-c-dev protobuf-c-compiler protobuf-compiler   # OTLP protobuf
	libcurl4-openssl-dev libnghttp2-dev libcjson-dev          # export, JSON
	libcap-dev                                                # privileges
	systemtap-sdt-dev                                         # the test emitter's USDT probes
	python3 python3-grpcio python3-protobuf python3-hpack openssl curl # mock collector, CA
	python3-prometheus-client                                 # parsing /metrics in tests
	bpftrace valgrind docker-compose help2man lintian         # comparisons, leaks, compose, man page, .deb check
)
missing=()
for p in "${pkgs[@]}"; do
	[ "${p:0:1}" = "#" ] && continue
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages: ${missing[*]}" >&2
	echo "install them as root: apt-get install ${missing[*]}" >&2
	exit 1
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
