/* SPDX-License-Identifier: MIT */
/*
 * orphans: traceIds for spans CLN cut at its 2048-byte buffer. The cut takes the tail of
 * the JSON, and with it the traceId; what precedes the cut is kept. The traceId is then
 * found in the span's family, within the same process:
 *   - its children, emitted before it (CLN emits a span when it ends), name it as their
 *     parent: a small cache remembers (pid, parentId) -> traceId for recent spans;
 *   - otherwise its parent, emitted after it: the span is held until the parent comes
 *     (a parent already seen, as other producers may emit them, is remembered too).
 * Held spans are bounded in number and time; those whose parent never comes are given up
 * and counted. Pure: no I/O, the caller passes the clock.
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
 * own held children), give them its traceId, and hand them out through @out (at most
 * @max). Returns how many.
 */
size_t orphans_adopt(struct orphans *o, const struct span *parent, struct span **out, size_t max);

/* Hand out (through @out, at most @max) spans held longer than the TTL. */
size_t orphans_expire(struct orphans *o, uint64_t now_ms, struct span **out, size_t max);

size_t orphans_held(const struct orphans *o);

#endif
