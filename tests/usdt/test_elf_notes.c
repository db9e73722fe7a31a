// SPDX-License-Identifier: MIT
/*
 * elf_notes against real files: the emitter (probes), /bin/true (an ELF without probes), a
 * script (not ELF) and a missing file. No root needed.
 *
 * usage: test-elf-notes EMITTER SCRIPT
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../check.h"
#include "elf_notes.h"

struct seen {
	int emit_args_ok;
	int other;
};

static int seen_cb(const struct elf_notes_probe *p, void *ctx)
{
	struct seen *s = ctx;

	if (strcmp(p->provider, "lightningd")) {
		s->other++;
		return 0;
	}
	/* span_emit(char *id, char *json): two 8-byte arguments, e.g. "8@%rax 8@%rbp" */
	if (!strcmp(p->name, "span_emit") && p->pc && strchr(p->args, ' ') &&
	    !strncmp(p->args, "8@", 2))
		s->emit_args_ok++;
	return 0;
}

static int stop_cb(const struct elf_notes_probe *p, void *ctx)
{
	(*(int *)ctx)++;
	return 42;
}

int main(int argc, char **argv)
{
	static const char *const names[] = {"span_emit", "span_start", "span_end", "span_suspend",
					    "span_resume"};
	struct seen s = {0};
	int n, calls = 0;

	if (argc != 3) {
		fprintf(stderr, "usage: test-elf-notes EMITTER SCRIPT\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		n = elf_notes_count_probe(argv[1], "lightningd", names[i]);
		CHECK_MSG(n >= 1, "%s: lightningd:%s sites = %d, want >= 1", argv[1], names[i], n);
	}
	CHECK_EQ(elf_notes_count_probe(argv[1], "lightningd", "span_nope"), 0);
	CHECK_EQ(elf_notes_count_probe(argv[1], "other", "span_emit"), 0);
	n = elf_notes_for_each_probe(argv[1], seen_cb, &s);
	CHECK_MSG(n == 0 && s.emit_args_ok >= 1 && s.other == 0,
		  "walk: ret %d, span_emit with 2 args %d, other providers %d", n, s.emit_args_ok,
		  s.other);
	n = elf_notes_for_each_probe(argv[1], stop_cb, &calls);
	/* A callback's non-zero value stops the walk and is returned. */
	CHECK_EQ(n, 42);
	CHECK_EQ(calls, 1);

	CHECK_EQ(elf_notes_count_probe("/bin/true", "lightningd", "span_emit"), 0);
	/* A script is no ELF file; a missing file is missing. */
	CHECK_EQ(elf_notes_count_probe(argv[2], "lightningd", "span_emit"), -ENOEXEC);
	CHECK_EQ(elf_notes_count_probe("/nonexistent/lightningd", "lightningd", "span_emit"),
		 -ENOENT);
	return check_summary();
}
