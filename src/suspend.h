/* SPDX-License-Identifier: MIT */
/*
 * suspend: the suspend/resume times of spans not yet emitted, keyed by (pid, span id), so
 * they can become span events when the span is emitted (CLN emits a span when it ends).
 * Bounded in entries; entries expire after a TTL (spans that are never emitted). Pure.
 */
#ifndef CLN_OTLP_SUSPEND_H
#define CLN_OTLP_SUSPEND_H

#include <stddef.h>
#include <stdint.h>

#include "span.h"

struct suspend_table;

struct suspend_table *suspend_table__new(size_t max_entries, uint64_t ttl_ms);
void suspend_table__free(struct suspend_table *t);

/* Record an event; evicts the oldest entry when full (counted). Returns 0 or -ENOMEM. */
int suspend_table_add(struct suspend_table *t, uint32_t pid, uint64_t span_id,
		      enum span_event_kind kind, uint64_t time_unix_ns, uint64_t now_ms);
/* Move the events recorded for @span (its pid and id) onto it and forget them. */
void suspend_table_take(struct suspend_table *t, struct span *span);
/* Drop entries older than the TTL. */
void suspend_table_expire(struct suspend_table *t, uint64_t now_ms);

size_t suspend_table_size(const struct suspend_table *t);
/* Entries dropped unused: expired or evicted. */
uint64_t suspend_table_expired(const struct suspend_table *t);

#endif
