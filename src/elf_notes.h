/* SPDX-License-Identifier: MIT */
/*
 * elf_notes: read the SystemTap SDT notes (`.note.stapsdt`) of an ELF file, i.e. which USDT
 * probes a binary carries. targets uses it to tell CLN binaries built with probes from those
 * built without, and C plugins (probes) from other executables (no probes); source_usdt, to
 * attach only the probes a binary has.
 */
#ifndef CLN_OTLP_ELF_NOTES_H
#define CLN_OTLP_ELF_NOTES_H

#include <stdbool.h>
#include <stdint.h>

struct elf_notes_probe {
	const char *provider;
	const char *name;
	const char *args; /* argument spec, e.g. "8@%rax 8@%rdx" */
	uint64_t pc;
	uint64_t base;
	uint64_t semaphore;
};

/* Return non-zero from the callback to stop; that value is returned. */
typedef int (*elf_notes_cb)(const struct elf_notes_probe *probe, void *ctx);

/*
 * Call @cb for every stapsdt probe of the ELF file @path. Returns 0 (also when the file has
 * no probes), the callback's non-zero value, -ENOEXEC when @path is not an ELF file, or
 * another negative errno (open failed, malformed notes: -EBADMSG).
 */
int elf_notes_for_each_probe(const char *path, elf_notes_cb cb, void *ctx);

/* Number of sites of probe @provider:@name in @path (0: none), or a negative errno as above. */
int elf_notes_count_probe(const char *path, const char *provider, const char *name);

#endif
