// SPDX-License-Identifier: MIT
#include "queue.h"

#include <errno.h>
#include <stdlib.h>

#include "stats.h"

/*
 * A ring of span pointers sized to max_spans, plus the arrival time of each (for the
 * schedule delay). held_* count every span the queue is answerable for: waiting in the
 * ring, or taken into a batch not yet released.
 */
struct queue {
	struct queue_cfg cfg;
	struct span **ring;
	uint64_t *arrived_ms;
	size_t head; /* oldest */
	size_t count;
	size_t held_spans;
	size_t held_bytes;
	size_t peak_spans; /* most held_spans since nothing was last held */
	size_t peak_bytes; /* most held_bytes since then */
	uint64_t now_ms;
};

struct queue *queue__new(const struct queue_cfg *cfg)
{
	struct queue *q;

	if (!cfg->max_spans || !cfg->batch_size)
		return NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return NULL;
	q->cfg = *cfg;
	q->ring = calloc(cfg->max_spans, sizeof(*q->ring));
	q->arrived_ms = calloc(cfg->max_spans, sizeof(*q->arrived_ms));
	if (!q->ring || !q->arrived_ms) {
		queue__free(q);
		return NULL;
	}
	return q;
}

void queue__free(struct queue *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->count; i++)
		span__free(q->ring[(q->head + i) % q->cfg.max_spans]);
	free(q->ring);
	free(q->arrived_ms);
	free(q);
}

int queue_push_take(struct queue *q, struct span *span)
{
	size_t bytes = span_mem_size(span);
	size_t tail;

	if (q->held_spans >= q->cfg.max_spans || q->held_bytes + bytes > q->cfg.max_bytes ||
	    q->count == q->cfg.max_spans) {
		span__free(span);
		stats.dropped[STATS_DROP_QUEUE_FULL]++;
		return -ENOSPC;
	}
	tail = (q->head + q->count) % q->cfg.max_spans;
	q->ring[tail] = span;
	q->arrived_ms[tail] = q->now_ms;
	q->count++;
	q->held_spans++;
	q->held_bytes += bytes;
	if (q->held_bytes > q->peak_bytes)
		q->peak_bytes = q->held_bytes;
	if (q->held_spans > q->peak_spans)
		q->peak_spans = q->held_spans;
	stats.queued++;
	stats.queue_spans = q->held_spans;
	stats.queue_bytes = q->held_bytes;
	return 0;
}

bool queue_nearly_full(const struct queue *q)
{
	/* An eighth of each budget stays for the sources that cannot wait. */
	size_t span_room = q->cfg.max_spans - q->held_spans;
	size_t byte_room = q->cfg.max_bytes - q->held_bytes;

	return span_room <= q->cfg.max_spans / 8 || byte_room <= q->cfg.max_bytes / 8;
}

size_t queue_waiting(const struct queue *q)
{
	return q->count;
}

uint64_t queue_oldest_ms(const struct queue *q)
{
	return q->count ? q->arrived_ms[q->head] : 0;
}

void queue_set_clock(struct queue *q, uint64_t now_ms)
{
	q->now_ms = now_ms;
}

int queue_take_batch(struct queue *q, struct queue_batch *batch)
{
	size_t n = q->count < q->cfg.batch_size ? q->count : q->cfg.batch_size;

	batch->spans = NULL;
	batch->n = 0;
	batch->bytes = 0;
	batch->rejected = 0;
	batch->owner = q;
	if (!n)
		return 0;
	batch->spans = malloc(n * sizeof(*batch->spans));
	if (!batch->spans)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct span *s = q->ring[q->head];

		batch->spans[i] = s;
		batch->bytes += span_mem_size(s);
		q->head = (q->head + 1) % q->cfg.max_spans;
	}
	q->count -= n;
	batch->n = n;
	return (int)n;
}

void queue_release_batch(struct queue *q, struct queue_batch *batch)
{
	for (size_t i = 0; batch->spans && i < batch->n; i++)
		span__free(batch->spans[i]);
	q->held_spans -= batch->n;
	q->held_bytes -= batch->bytes;
	stats.queue_spans = q->held_spans;
	stats.queue_bytes = q->held_bytes;
	free(batch->spans);
	batch->spans = NULL;
	batch->n = 0;
	batch->bytes = 0;
}

void queue_batch_shed(struct queue_batch *batch, size_t body_bytes)
{
	struct queue *q = batch->owner;

	if (!q || !batch->spans)
		return;
	for (size_t i = 0; i < batch->n; i++)
		span__free(batch->spans[i]);
	free(batch->spans);
	batch->spans = NULL;
	q->held_bytes = q->held_bytes - batch->bytes + body_bytes;
	if (q->held_bytes > q->peak_bytes) /* a body larger than its spans: keep the peak a peak */
		q->peak_bytes = q->held_bytes;
	batch->bytes = body_bytes;
	stats.queue_bytes = q->held_bytes;
}

bool queue_trim_due(struct queue *q, size_t spans, size_t bytes)
{
	bool due =
		(!q->held_spans && q->peak_spans > spans) || q->peak_bytes - q->held_bytes > bytes;

	if (due || !q->held_spans) {
		q->peak_spans = q->held_spans;
		q->peak_bytes = q->held_bytes;
	}
	return due;
}
