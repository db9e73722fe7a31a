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
	if (!o->held) {
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
	free(o->held);
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
			const uint8_t trace_id[16])
{
	struct orphans_known *k = &table[orphans_slot(pid, id)];

	k->used = true;
	k->pid = pid;
	memcpy(k->parent_id, id, 8);
	memcpy(k->trace_id, trace_id, 16);
}

static bool orphans_get(const struct orphans_known *table, uint32_t pid, const uint8_t id[8],
			uint8_t trace_id[16])
{
	const struct orphans_known *k = &table[orphans_slot(pid, id)];

	if (!k->used || k->pid != pid || memcmp(k->parent_id, id, 8))
		return false;
	memcpy(trace_id, k->trace_id, 16);
	return true;
}

void orphans_learn(struct orphans *o, const struct span *span)
{
	if (!span->has_trace_id)
		return;
	orphans_put(o->seen, span->pid, span->span_id, span->trace_id);
	if (span->has_parent)
		orphans_put(o->known, span->pid, span->parent_id, span->trace_id);
}

bool orphans_resolve(struct orphans *o, struct span *span)
{
	/* Its children told (CLN's order), or its parent came first (any other producer). */
	if (orphans_get(o->known, span->pid, span->span_id, span->trace_id) ||
	    (span->has_parent &&
	     orphans_get(o->seen, span->pid, span->parent_id, span->trace_id))) {
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

size_t orphans_adopt(struct orphans *o, const struct span *parent, struct span **out, size_t max)
{
	size_t n = 0, done = 0;

	if (!o->n_held)
		return 0;
	/* Breadth first: each adopted span may in turn be the parent of held spans. */
	for (const struct span *p = parent; p; p = done < n ? out[done++] : NULL) {
		for (size_t i = 0; i < o->n_held && n < max;) {
			struct span *s = o->held[i].span;

			if (s->pid != p->pid || !s->has_parent ||
			    memcmp(s->parent_id, p->span_id, 8)) {
				i++;
				continue;
			}
			memcpy(s->trace_id, p->trace_id, 16);
			s->has_trace_id = true;
			out[n++] = s;
			orphans_remove(o, i);
		}
	}
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
