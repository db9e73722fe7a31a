// SPDX-License-Identifier: MIT
#include "orphans.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define ORPHANS_KNOWN 4096 /* direct-mapped cache of (pid, parentId) -> traceId */

struct orphans_known {
	uint32_t pid;
	uint8_t parent_id[8];
	uint8_t trace_id[16];
	bool used;
	bool derived; /* the traceId was derived (orphans_derive) */
};

struct orphans_held {
	struct span *span;
	uint64_t since_ms;
};

struct orphans {
	struct orphans_known known[ORPHANS_KNOWN]; /* (pid, parentId) -> traceId */
	struct orphans_known seen[ORPHANS_KNOWN];  /* (pid, spanId) -> traceId */
	struct orphans_held *held;		   /* oldest first */
	size_t n_held;
	size_t max_held;
	struct span **ready; /* adopted, to hand out: max_held at most, like held */
	size_t n_ready, next_ready;
	uint64_t ttl_ms;
};

struct orphans *orphans__new(size_t max_held, uint64_t ttl_ms)
{
	struct orphans *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->max_held = max_held ? max_held : 1;
	o->ttl_ms = ttl_ms;
	o->held = calloc(o->max_held, sizeof(*o->held));
	o->ready = calloc(o->max_held, sizeof(*o->ready));
	if (!o->held || !o->ready) {
		free(o->held);
		free(o->ready);
		free(o);
		return NULL;
	}
	return o;
}

void orphans__free(struct orphans *o)
{
	if (!o)
		return;
	for (size_t i = 0; i < o->n_held; i++)
		span__free(o->held[i].span);
	for (size_t i = o->next_ready; i < o->n_ready; i++)
		span__free(o->ready[i]);
	free(o->held);
	free(o->ready);
	free(o);
}

static size_t orphans_slot(uint32_t pid, const uint8_t id[8])
{
	uint64_t v;

	memcpy(&v, id, 8);
	v ^= (uint64_t)pid * 0x9e3779b97f4a7c15ull;
	v *= 0xff51afd7ed558ccdull;
	return (size_t)(v >> 40) % ORPHANS_KNOWN;
}

static void orphans_put(struct orphans_known *table, uint32_t pid, const uint8_t id[8],
			const uint8_t trace_id[16], bool derived)
{
	struct orphans_known *k = &table[orphans_slot(pid, id)];

	k->used = true;
	k->derived = derived;
	k->pid = pid;
	memcpy(k->parent_id, id, 8);
	memcpy(k->trace_id, trace_id, 16);
}

static bool orphans_get(const struct orphans_known *table, uint32_t pid, const uint8_t id[8],
			struct span *span)
{
	const struct orphans_known *k = &table[orphans_slot(pid, id)];

	if (!k->used || k->pid != pid || memcmp(k->parent_id, id, 8))
		return false;
	memcpy(span->trace_id, k->trace_id, 16);
	span->trace_id_derived = k->derived;
	return true;
}

void orphans_learn(struct orphans *o, const struct span *span)
{
	if (!span->has_trace_id)
		return;
	orphans_put(o->seen, span->pid, span->span_id, span->trace_id, span->trace_id_derived);
	if (span->has_parent)
		orphans_put(o->known, span->pid, span->parent_id, span->trace_id,
			    span->trace_id_derived);
}

bool orphans_resolve(struct orphans *o, struct span *span)
{
	/* Its children told (CLN's order), or its parent came first (any other producer). */
	if (orphans_get(o->known, span->pid, span->span_id, span) ||
	    (span->has_parent && orphans_get(o->seen, span->pid, span->parent_id, span))) {
		span->has_trace_id = true;
		return true;
	}
	return false;
}

static void orphans_remove(struct orphans *o, size_t i)
{
	memmove(&o->held[i], &o->held[i + 1], (o->n_held - i - 1) * sizeof(*o->held));
	o->n_held--;
}

int orphans_hold(struct orphans *o, struct span *span, uint64_t now_ms, struct span **evicted)
{
	int err = 0;

	*evicted = NULL;
	if (o->n_held == o->max_held) {
		*evicted = o->held[0].span;
		orphans_remove(o, 0);
		err = -ENOSPC;
	}
	o->held[o->n_held].span = span;
	o->held[o->n_held].since_ms = now_ms;
	o->n_held++;
	return err;
}

/* Move the held children of @p to the ready list, with its traceId; keeps held's order. */
static void orphans_adopt_children(struct orphans *o, const struct span *p)
{
	size_t kept = 0;

	for (size_t i = 0; i < o->n_held; i++) {
		struct span *s = o->held[i].span;

		/* ready and held share the table's bound: the check only guards the array. */
		if (s->pid != p->pid || !s->has_parent || memcmp(s->parent_id, p->span_id, 8) ||
		    o->n_ready == o->max_held) {
			o->held[kept++] = o->held[i];
			continue;
		}
		memcpy(s->trace_id, p->trace_id, 16);
		s->has_trace_id = true;
		s->trace_id_derived = p->trace_id_derived;
		o->ready[o->n_ready++] = s;
	}
	o->n_held = kept;
}

size_t orphans_adopt(struct orphans *o, const struct span *parent)
{
	size_t first, done;

	if (o->next_ready == o->n_ready)
		o->next_ready = o->n_ready = 0;
	first = done = o->n_ready;
	/* Breadth first, the ready list as the queue: an adopted span may be a parent too. */
	for (const struct span *p = parent; p && o->n_held;
	     p = done < o->n_ready ? o->ready[done++] : NULL)
		orphans_adopt_children(o, p);
	return o->n_ready - first;
}

size_t orphans_take(struct orphans *o, struct span **out, size_t max)
{
	size_t n = 0;

	while (n < max && o->next_ready < o->n_ready)
		out[n++] = o->ready[o->next_ready++];
	if (o->next_ready == o->n_ready)
		o->next_ready = o->n_ready = 0;
	return n;
}

size_t orphans_expire(struct orphans *o, uint64_t now_ms, struct span **out, size_t max)
{
	size_t n = 0;

	while (o->n_held && n < max && now_ms - o->held[0].since_ms >= o->ttl_ms) {
		out[n++] = o->held[0].span;
		orphans_remove(o, 0);
	}
	return n;
}

size_t orphans_held(const struct orphans *o)
{
	return o->n_held;
}

void orphans_derive(struct span *span)
{
	uint32_t pid = span->pid;

	for (int i = 0; i < 4; i++)
		span->trace_id[i] = (uint8_t)(pid >> (24 - 8 * i));
	memset(span->trace_id + 4, 0xff, 4);
	memcpy(span->trace_id + 8, span->span_id, 8);
	span->short_trace_id = false;
	span->has_trace_id = true;
	span->trace_id_derived = true;
}
