/* SPDX-License-Identifier: MIT */
/*
 * exe_paths: the table of executable paths (process.executable.path) that spans point to.
 * One copy per distinct path, so spans of a process share a pointer (otlp.c groups spans into
 * resources by pointer equality) and a span costs no string of its own.
 *
 * Entries are reference counted: whoever keeps a pointer holds a reference (each span, from
 * pipeline_ingest to span__free; a console tree node; the socket source's pid cache; a USDT
 * target, for good). An entry is freed with its last reference, so the paths of processes
 * that exited and whose spans are gone make room for new ones. The table is bounded
 * (EXE_PATHS_MAX live paths at once); a path that finds it full is not recorded: the span
 * goes out without the attribute, with a rate-limited warning (the socket source, which
 * meets new processes, counts it in stats.exe_path_lost). Single-threaded, like the rest of the pipeline.
 */
#ifndef CLN_OTLP_EXE_PATHS_H
#define CLN_OTLP_EXE_PATHS_H

#include <stdbool.h>
#include <stddef.h>

#define EXE_PATHS_MAX 256

/*
 * The table's copy of @s with one reference taken for the caller, or NULL (@s NULL, the
 * table full or out of memory: the last two warned about).
 */
const char *exe_path_get(const char *s);
/* Take one more reference to @path (from exe_path_get; NULL is fine). Returns @path. */
const char *exe_path_ref(const char *path);
/* Release one reference (NULL is fine); the entry is freed with its last one. */
void exe_path_put(const char *path);

/* Paths in the table. */
size_t exe_paths_count(void);
/* No room for a new path: a caller may release references it can spare, then retry. */
bool exe_paths_full(void);
/* Free every entry, referenced or not: only at exit, when nothing points to them any more. */
void exe_paths_reset(void);

#endif
