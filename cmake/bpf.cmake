# eBPF capture source: compiles bpf/source_usdt.bpf.c (the kernel side of src/source_usdt.c)
# with clang and generates its libbpf skeleton (source_usdt.skel.h) into the build tree.
# Nothing generated is committed.
# Defines the target source_usdt_skel; the top CMakeLists then builds source_usdt with
# CLN_OTLP_HAVE_BPF=1. With -DCLN_OTLP_BPF=OFF this file defines nothing.
if(NOT CLN_OTLP_BPF)
	return()
endif()

find_program(CLN_OTLP_BPF_CLANG NAMES clang clang-14 clang-15 clang-16 clang-17 clang-18)
find_program(CLN_OTLP_BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin)
pkg_check_modules(LIBELF REQUIRED IMPORTED_TARGET libelf)
if(NOT CLN_OTLP_BPF_CLANG OR NOT CLN_OTLP_BPFTOOL)
	message(FATAL_ERROR "CLN_OTLP_BPF needs clang and bpftool (Debian: apt-get install "
		"clang bpftool), or configure with -DCLN_OTLP_BPF=OFF")
endif()

# <asm/types.h> and friends live under the multiarch include directory.
execute_process(COMMAND ${CMAKE_C_COMPILER} -print-multiarch
	OUTPUT_VARIABLE CLN_OTLP_MULTIARCH OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT CLN_OTLP_MULTIARCH)
	set(CLN_OTLP_MULTIARCH "${CMAKE_SYSTEM_PROCESSOR}-linux-gnu")
endif()
if(CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$")
	set(CLN_OTLP_BPF_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^(aarch64|arm64)$")
	set(CLN_OTLP_BPF_ARCH arm64)
else()
	set(CLN_OTLP_BPF_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(CLN_OTLP_BPF_SRC ${CMAKE_SOURCE_DIR}/bpf/source_usdt.bpf.c)
set(CLN_OTLP_BPF_OBJ ${CMAKE_BINARY_DIR}/source_usdt.bpf.o)
set(CLN_OTLP_BPF_SKEL ${CMAKE_BINARY_DIR}/source_usdt.skel.h)

# -mcpu=v3: atomic fetch-and-add (the scratch buffer's busy flag); kernels >= 5.12.
add_custom_command(OUTPUT ${CLN_OTLP_BPF_OBJ}
	COMMAND ${CLN_OTLP_BPF_CLANG} -O2 -g -target bpf -mcpu=v3
		-D__TARGET_ARCH_${CLN_OTLP_BPF_ARCH} -Wall -Werror
		-I/usr/include/${CLN_OTLP_MULTIARCH} -I${CMAKE_SOURCE_DIR}/bpf
		-c ${CLN_OTLP_BPF_SRC} -o ${CLN_OTLP_BPF_OBJ}
	DEPENDS ${CLN_OTLP_BPF_SRC} ${CMAKE_SOURCE_DIR}/bpf/usdt_record.h
	COMMENT "BPF source_usdt.bpf.o"
	VERBATIM)
add_custom_command(OUTPUT ${CLN_OTLP_BPF_SKEL}
	COMMAND ${CLN_OTLP_BPFTOOL} gen skeleton ${CLN_OTLP_BPF_OBJ} name source_usdt_bpf
		> ${CLN_OTLP_BPF_SKEL}.tmp
	COMMAND ${CMAKE_COMMAND} -E rename ${CLN_OTLP_BPF_SKEL}.tmp ${CLN_OTLP_BPF_SKEL}
	DEPENDS ${CLN_OTLP_BPF_OBJ}
	COMMENT "BPF skeleton source_usdt.skel.h"
	VERBATIM)
add_custom_target(source_usdt_skel DEPENDS ${CLN_OTLP_BPF_SKEL})

# elf_notes reads .note.stapsdt with libelf. The core library is defined after this file
# is included, so link it at the end of this directory.
cmake_language(DEFER CALL target_link_libraries cln_otlp_core PUBLIC PkgConfig::LIBELF)
