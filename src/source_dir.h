/* SPDX-License-Identifier: MIT */
/*
 * source_dir: the trace files of a directory, `--file '<path>.*'` (a pattern in the last path
 * component) or `--file DIR` (every file in it whose name does not start with '.'), one
 * source_file each. CLN (CLN_DEV_TRACE_FILE=<path>) writes `<path>.<pid>` per process, so a
 * restarted node or plugin writes a new file: with follow, the directory is watched
 * (inotify) and every matching file that appears later is read from its start too.
 *
 * Limits: at most SOURCE_DIR_MAX_OPEN files are read at once; more are refused (counted as
 * files_refused, a warning) until a file changes while there is room. A followed file read to
 * its end whose writer is gone (name `.<pid>`, /proc/<pid> absent), or idle for
 * SOURCE_DIR_IDLE_CLOSE_MS, is closed, and opened again if it is written to. At most
 * SOURCE_DIR_MAX_KNOWN files are remembered (for the summary and to read each once): past
 * that, the oldest closed one is folded into an "earlier files" line, and forgotten.
 */
#ifndef CLN_OTLP_SOURCE_DIR_H
#define CLN_OTLP_SOURCE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "loop.h"
#include "pipeline.h"

#define SOURCE_DIR_MAX_OPEN	 64
#define SOURCE_DIR_MAX_KNOWN	 1024
#define SOURCE_DIR_IDLE_CLOSE_MS (10 * 60 * 1000)

struct source_dir;

/* @path is a pattern (a '*', '?' or '[' in its last component, no such file) or a directory. */
bool source_dir_wanted(const char *path);

/*
 * Read the files matching @path now (one after the other, without follow; @on_done runs once
 * they all have been read), and with @follow those that appear later too (@on_done never
 * runs). Returns NULL with a message in @err when the directory cannot be read,
 * or, without follow, when no file matches.
 */
struct source_dir *source_dir__new(struct loop *loop, struct pipeline *p, const char *path,
				   bool follow, void (*on_done)(void *ctx), void *ctx, char *err,
				   size_t err_size);
void source_dir__free(struct source_dir *d);

/* Files that could not be read (open or read errors). */
int source_dir_error(const struct source_dir *d);
/* Stop reading (signal). */
void source_dir_stop(struct source_dir *d);
/* Each file's summary (source_file_summary), refused ones and earlier forgotten ones. */
void source_dir_summary(const struct source_dir *d, FILE *out);

#endif
