/* SPDX-License-Identifier: MIT */
/*
 * suspend: the suspend/resume times of spans not yet emitted, keyed by (pid, span id), so
 * they can become span events when the span is emitted (CLN emits a span when it ends).
 * Bounded in entries; entries expire after a TTL (spans that are never emitted). Pure.
 *
 * An entry is about 200 bytes (SPAN_MAX_EVENTS events inline); SUSPEND_DEFAULT_MAX entries
 * keep the table under 1 MiB, whatever ids arrive. A node has a few dozen spans suspended
 * at once: past the bound, the oldest entry goes, and its events are counted as evicted.
 */
#ifndef CLN_OTLP_SUSPEND_H
#define CLN_OTLP_SUSPEND_H

#include <stddef.h>
#include <stdint.h>

#include "span.h"

#define SUSPEND_DEFAULT_MAX 4096

struct suspend_table;

struct suspend_table *suspend_table__new(size_t max_entries, uint64_t ttl_ms);
void suspend_table__free(struct suspend_table *t);

/*
 * Record an event; evicts the oldest entry when full. Returns the number of events the
 * eviction discarded (0 when none), or -ENOMEM.
 */
int suspend_table_add(struct suspend_table *t, uint32_t pid, uint64_t span_id,
		      enum span_event_kind kind, uint64_t time_unix_ns, uint64_t now_ms);
/* Move the events recorded for @span (its pid and id) onto it and forget them. */
void suspend_table_take(struct suspend_table *t, struct span *span);
/* Drop entries older than the TTL. */
void suspend_table_expire(struct suspend_table *t, uint64_t now_ms);

size_t suspend_table_size(const struct suspend_table *t);
/* Entries dropped unused: expired or evicted. */
uint64_t suspend_table_expired(const struct suspend_table *t);
/* Events discarded with the entries evicted for room. */
uint64_t suspend_table_evicted(const struct suspend_table *t);
/* Bytes the table holds (entries and buckets). */
size_t suspend_table_mem(const struct suspend_table *t);

#endif
