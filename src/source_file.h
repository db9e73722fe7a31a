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

/*
 * Following, for the files of a directory (source_dir): close the file once it has been read
 * to its end and its writer is gone (the name ends in .<pid> and /proc/<pid> is absent) or
 * nothing was written for @idle_ms (0: never for that). @on_close runs then; the place in the
 * file is kept for source_file_reopen().
 */
void source_file_auto_close(struct source_file *src, uint64_t idle_ms, void (*on_close)(void *ctx),
			    void *ctx);
bool source_file_closed(const struct source_file *src);
/*
 * Closed by auto close and the file changed: open it again and read on from where it stopped
 * (from its start when a new file took the name). Returns 1 when reading again, 0 when there
 * is nothing new (or it is not closed), -errno when it cannot be opened.
 */
int source_file_reopen(struct source_file *src);
/* At the end of the input (source_file_done): close the fd, free the buffer; counts stay. */
void source_file_release(struct source_file *src);
/* Lines read, spans accepted, lines rejected: for a summary of many files. */
void source_file_counts(const struct source_file *src, uint64_t *lines, uint64_t *spans,
			uint64_t *rejected);

/* Print the per-reason reject summary with the first few line numbers to @out. */
void source_file_summary(const struct source_file *src, FILE *out);

#endif
