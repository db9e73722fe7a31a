/* SPDX-License-Identifier: MIT */
/*
 * export_console: traces as indented trees on a terminal, for a person to read.
 *
 * CLN emits a span when it ends, so children come before their parents. The exporter copies
 * each span it is handed (the batch is finished inside submit()) and buffers it until the
 * top of its tree arrives, then prints the tree: one line per span, children under their
 * parent sorted by start time, with its duration, a bar showing where in the printed window
 * it ran, its error status, the time it spent suspended, and its tags.
 *
 * Spans are grouped by (process id, traceId): a span only ever becomes the child of a span
 * of the same process and trace. Which span is a root (its tree printed at once):
 *   - a span without a parent;
 *   - a span whose parent is a known remote parent of its (pid, traceId).
 * Every other span waits, with its siblings, for its parent. When a set of siblings has
 * waited @orphan_timeout_ms since the last of them arrived, their parent is taken as never
 * coming: they are printed, marked INCOMPLETE, and that parent id is remembered as a remote
 * parent of the (pid, traceId), so that later spans naming it are roots at once. This is
 * what CLN_TRACEPARENT produces: every root of the process then has the traceparent's span
 * as parent, a span never emitted; the first tree waits for the timeout, later ones print
 * as soon as their root ends. (A real parent that outlives its children by more than the
 * timeout is mistaken for a remote one the same way: its children print as their own tree.)
 *
 * Memory is bounded: past a cap on buffered spans or their bytes (export_console_set_limits(),
 * 100,000 spans and 64 MiB by default), the set of siblings that
 * waited longest is printed early, marked INCOMPLETE and counted. On abort() and free()
 * every buffered span is printed (marked INCOMPLETE): a shutdown loses no output.
 *
 * The timeout is 10 s; cln-otlp reads another from CLN_OTLP_CONSOLE_TIMEOUT_MS (milliseconds,
 * 0: never), mostly for tests. Spans reach the exporter in batches (--batch-delay): a tree
 * is printed when the batch holding its root arrives.
 *
 * Output is UTF-8 (block bars, "µs", "…") when the locale says so (LC_ALL, else LC_CTYPE,
 * else LANG contains "UTF-8"), plain ASCII otherwise. Widths are fixed: lines stay within
 * EXPORT_CONSOLE_LINE_COLS columns, cutting long values with an ellipsis (every character is
 * counted as one column: wide characters such as CJK or emoji push a line one column out).
 */
#ifndef CLN_OTLP_EXPORT_CONSOLE_H
#define CLN_OTLP_EXPORT_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "export.h"
#include "loop.h"
#include "otlp.h"

#define EXPORT_CONSOLE_DEFAULT_TIMEOUT_MS 10000
#define EXPORT_CONSOLE_DEFAULT_MAX_SPANS  100000
#define EXPORT_CONSOLE_DEFAULT_MAX_BYTES  (64u << 20)
#define EXPORT_CONSOLE_LINE_COLS	  160
#define EXPORT_CONSOLE_BAR_COLS		  40

/*
 * @res (service name) must outlive the exporter; @out is not closed. @orphan_timeout_ms 0:
 * spans whose parent never comes wait until the buffer cap or the end of the run.
 */
struct exporter *export_console__new(struct loop *loop, FILE *out,
				     const struct otlp_resource_cfg *res,
				     uint64_t orphan_timeout_ms);

/* Caps on buffered spans and their bytes (defaults above); 0 keeps the current value. */
void export_console_set_limits(struct exporter *ex, size_t max_spans, size_t max_bytes);
/* Force UTF-8 (true) or ASCII (false) output instead of what the locale says. */
void export_console_set_utf8(struct exporter *ex, bool utf8);

/* Whether the locale variables of @getenv_fn ask for UTF-8 (LC_ALL > LC_CTYPE > LANG). */
bool export_console_locale_utf8(const char *(*getenv_fn)(const char *name));

struct export_console_counts {
	uint64_t traces;    /* trace blocks printed, complete or not */
	uint64_t spans;	    /* span lines printed */
	uint64_t timed_out; /* blocks printed after their parent's timeout */
	uint64_t early;	    /* blocks printed early for the buffer cap */
	uint64_t at_exit;   /* blocks printed incomplete by abort()/free() */
	uint64_t lost;	    /* spans not printed: out of memory or output error */
	size_t buffered;    /* spans waiting now */
};
void export_console_counts(const struct exporter *ex, struct export_console_counts *out);

/* Parse a timeout in milliseconds ("0" .. a day). Returns 0 or -EINVAL. */
int export_console_parse_ms(const char *s, uint64_t *ms);

#endif
