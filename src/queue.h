/* SPDX-License-Identifier: MIT */
/*
 * queue: the bounded FIFO of spans between the sources and the exporter. Bounded by spans
 * and by payload bytes; the bound covers spans waiting and spans in batches not yet
 * finished (in flight or waiting to be retried), so a collector that is down can never
 * grow memory past it. Pure: no I/O, no clock of its own.
 */
#ifndef CLN_OTLP_QUEUE_H
#define CLN_OTLP_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "span.h"

struct queue_cfg {
	size_t max_spans;  /* OTEL_BSP_MAX_QUEUE_SIZE */
	size_t max_bytes;  /* payload bytes held, waiting and in flight */
	size_t batch_size; /* OTEL_BSP_MAX_EXPORT_BATCH_SIZE */
};

struct queue;

struct queue_batch {
	struct span **spans; /* NULL once shed (queue_batch_shed) */
	size_t n;
	size_t bytes;	     /* held against the byte budget: the spans', or the body's once shed */
	size_t rejected;     /* set by the exporter: spans refused in a partial success */
	struct queue *owner; /* the queue it came from; NULL for a batch made by hand */
};

struct queue *queue__new(const struct queue_cfg *cfg);
/* Frees every span still waiting; batches handed out must have been released. */
void queue__free(struct queue *q);

/*
 * Hand @span to the queue. Returns 0, or -ENOSPC when a bound is reached: the span is then
 * freed and counted (stats.dropped[STATS_DROP_QUEUE_FULL]).
 */
int queue_push_take(struct queue *q, struct span *span);

/* Less than an eighth of the span or byte budget left. */
bool queue_nearly_full(const struct queue *q);

/* Spans waiting (not yet in a batch). */
size_t queue_waiting(const struct queue *q);
/* Monotonic ms at which the oldest waiting span arrived (0 when none). */
uint64_t queue_oldest_ms(const struct queue *q);
void queue_set_clock(struct queue *q, uint64_t now_ms); /* stamps pushes after this call */

/*
 * Take up to batch_size waiting spans into @batch (its array is allocated here). Returns
 * the number taken, 0 when none wait, or -ENOMEM.
 */
int queue_take_batch(struct queue *q, struct queue_batch *batch);
/* The batch is finished (delivered or given up): free its spans and their budget. */
void queue_release_batch(struct queue *q, struct queue_batch *batch);

/*
 * The exporter encoded @batch and keeps only its request body (@body_bytes of memory): the
 * spans are freed now, and the byte budget holds @body_bytes in their place until the batch
 * is released. Its spans stay held (in_queue): a span is held until delivered or dropped.
 * Nothing happens to a batch not from a queue (owner NULL: its spans are its maker's).
 */
void queue_batch_shed(struct queue_batch *batch, size_t body_bytes);

/*
 * True once each time the queue let go of much memory: nothing held any more after more
 * than @spans spans were (a drained backlog), or the bytes held fell more than @bytes below
 * their peak (spans shed into compact bodies). The caller may give freed memory back to the
 * system then.
 */
bool queue_trim_due(struct queue *q, size_t spans, size_t bytes);

#endif
