/* SPDX-License-Identifier: MIT */
/*
 * orphans: traceIds for spans CLN cut at its 2048-byte buffer. The cut takes the tail of
 * the JSON, and with it the traceId; what precedes the cut is kept. The traceId is then
 * found in the span's family, within the same process:
 *   - its children, emitted before it (CLN emits a span when it ends), name it as their
 *     parent: a small cache remembers (pid, parentId) -> traceId for recent spans;
 *   - otherwise its parent, emitted after it: the span is held until the parent comes
 *     (a parent already seen, as other producers may emit them, is remembered too).
 * Held spans are bounded in number and time. A cut span no family tells (a root no child
 * told, a span whose parent did not come within the TTL, one evicted from a full table)
 * gets a traceId derived from its own ids (orphans_derive), so it is exported rather than
 * lost. Pure: no I/O, the caller passes the clock.
 */
#ifndef CLN_OTLP_ORPHANS_H
#define CLN_OTLP_ORPHANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "span.h"

struct orphans;

struct orphans *orphans__new(size_t max_held, uint64_t ttl_ms);
void orphans__free(struct orphans *o); /* frees held spans */

/* Remember what a span with a traceId tells about its parent (call for every such span). */
void orphans_learn(struct orphans *o, const struct span *span);

/* Give @span (cut, no traceId) the traceId its children or parent told. False: not yet. */
bool orphans_resolve(struct orphans *o, struct span *span);

/*
 * Hold @span until its parent comes. Returns 0, or -ENOSPC when full (the oldest held
 * span is then handed back through *evicted for the caller to count; NULL otherwise).
 */
int orphans_hold(struct orphans *o, struct span *span, uint64_t now_ms, struct span **evicted);

/*
 * @parent has a traceId: take the held spans that name it as parent (and, in turn, their
 * own held children, all generations), give them its traceId and make them ready to hand
 * out. No limit but the table's: every held span can be adopted at once. Returns how many.
 * Take them all (orphans_take) before holding more.
 */
size_t orphans_adopt(struct orphans *o, const struct span *parent);

/* Hand out (through @out, at most @max) the spans adopted, in the order adopted. */
size_t orphans_take(struct orphans *o, struct span **out, size_t max);

/* Hand out (through @out, at most @max) spans held longer than the TTL. */
size_t orphans_expire(struct orphans *o, uint64_t now_ms, struct span **out, size_t max);

size_t orphans_held(const struct orphans *o);

/*
 * Give a cut span no family told a traceId of its own, deterministic: the pid as 8 hex
 * digits, then ffffffff, then the spanId (pid 1234, span 0123456789abcdef:
 * 000004d2ffffffff0123456789abcdef). Sets trace_id_derived (cln.trace_id_derived=true).
 */
void orphans_derive(struct span *span);

#endif
