/* SPDX-License-Identifier: MIT */
/*
 * source_file: read spans from a file or stdin ("-"): CLN trace-file lines
 * (`span_emit <id> <json>`, `span_suspend <id>`, `span_resume <id>`; span_start/span_end
 * ignored) or bare JSON arrays, one per line (as bpftrace prints them). With follow, keep
 * reading as CLN appends, like `tail -F`.
 */
#ifndef CLN_OTLP_SOURCE_FILE_H
#define CLN_OTLP_SOURCE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "loop.h"
#include "pipeline.h"

struct source_file;

/*
 * Start reading @path ("-": standard input). @on_done runs once when the end of the input
 * has been read (never when following). Returns NULL with a message in @err when the file
 * cannot be opened.
 */
struct source_file *source_file__new(struct loop *loop, struct pipeline *p, const char *path,
				     bool follow, void (*on_done)(void *ctx), void *ctx, char *err,
				     size_t err_size);
void source_file__free(struct source_file *src);

/* End of input reached (never true when following). */
bool source_file_done(const struct source_file *src);
/* Read errors (I/O, not rejected lines). */
int source_file_error(const struct source_file *src);
/* Stop reading (signal). */
void source_file_stop(struct source_file *src);

/* Print the per-reason reject summary with the first few line numbers to @out. */
void source_file_summary(const struct source_file *src, FILE *out);

#endif
