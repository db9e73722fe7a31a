// SPDX-License-Identifier: MIT
#include "suspend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct suspend_entry {
	struct suspend_entry *hnext;	   /* hash chain */
	struct suspend_entry *prev, *next; /* age order, oldest first */
	uint32_t pid;
	uint64_t span_id;
	uint64_t created_ms;
	uint32_t n, cap;
	uint32_t dropped;
	struct span_event *ev; /* grown as events come, SPAN_MAX_EVENTS at most */
};

#define SUSPEND_BUCKETS 4096

struct suspend_table {
	struct suspend_entry *buckets[SUSPEND_BUCKETS];
	struct suspend_entry *oldest, *newest;
	size_t size;
	size_t max;
	uint64_t ttl_ms;
	uint64_t expired;
	uint64_t evicted; /* events */
};

struct suspend_table *suspend_table__new(size_t max_entries, uint64_t ttl_ms)
{
	struct suspend_table *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->max = max_entries ? max_entries : 1;
	t->ttl_ms = ttl_ms;
	return t;
}

void suspend_table__free(struct suspend_table *t)
{
	struct suspend_entry *e, *next;

	if (!t)
		return;
	for (e = t->oldest; e; e = next) {
		next = e->next;
		free(e->ev);
		free(e);
	}
	free(t);
}

static size_t suspend_hash(uint32_t pid, uint64_t id)
{
	uint64_t h = (id ^ ((uint64_t)pid << 32 | pid)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 52) % SUSPEND_BUCKETS;
}

static struct suspend_entry **suspend_slot(struct suspend_table *t, uint32_t pid, uint64_t id)
{
	struct suspend_entry **pp = &t->buckets[suspend_hash(pid, id)];

	while (*pp && ((*pp)->pid != pid || (*pp)->span_id != id))
		pp = &(*pp)->hnext;
	return pp;
}

static void suspend_remove(struct suspend_table *t, struct suspend_entry *e)
{
	struct suspend_entry **pp = suspend_slot(t, e->pid, e->span_id);

	*pp = e->hnext;
	if (e->prev)
		e->prev->next = e->next;
	else
		t->oldest = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		t->newest = e->prev;
	t->size--;
	free(e->ev);
	free(e);
}

int suspend_table_add(struct suspend_table *t, uint32_t pid, uint64_t span_id,
		      enum span_event_kind kind, uint64_t time_unix_ns, uint64_t now_ms)
{
	struct suspend_entry **pp = suspend_slot(t, pid, span_id);
	struct suspend_entry *e = *pp;
	int evicted = 0;

	if (!e) {
		if (t->size >= t->max) {
			evicted = (int)(t->oldest->n + t->oldest->dropped);
			t->evicted += (uint64_t)evicted;
			suspend_remove(t, t->oldest);
			t->expired++;
			pp = suspend_slot(t, pid, span_id);
		}
		e = calloc(1, sizeof(*e));
		if (!e)
			return -ENOMEM;
		e->pid = pid;
		e->span_id = span_id;
		e->created_ms = now_ms;
		*pp = e;
		e->prev = t->newest;
		if (t->newest)
			t->newest->next = e;
		else
			t->oldest = e;
		t->newest = e;
		t->size++;
	}
	if (e->n == e->cap) {
		uint32_t cap = e->cap ? 2 * e->cap : 4;
		struct span_event *ev;

		if (cap > SPAN_MAX_EVENTS)
			cap = SPAN_MAX_EVENTS;
		ev = e->n < SPAN_MAX_EVENTS ? realloc(e->ev, cap * sizeof(*ev)) : NULL;
		if (!ev) {
			e->dropped++; /* past the limit, or out of memory */
			return evicted;
		}
		e->ev = ev;
		e->cap = cap;
	}
	e->ev[e->n].kind = kind;
	e->ev[e->n].time_unix_ns = time_unix_ns;
	e->n++;
	return evicted;
}

void suspend_table_take(struct suspend_table *t, struct span *span)
{
	uint64_t id = 0;
	struct suspend_entry *e;

	if (!t->size)
		return;
	for (int i = 0; i < 8; i++)
		id = id << 8 | span->span_id[i];
	e = *suspend_slot(t, span->pid, id);
	if (!e)
		return;
	for (uint32_t i = 0; i < e->n; i++)
		span_add_event(span, e->ev[i].kind, e->ev[i].time_unix_ns);
	span->dropped_events += e->dropped;
	suspend_remove(t, e);
}

void suspend_table_expire(struct suspend_table *t, uint64_t now_ms)
{
	while (t->oldest && now_ms - t->oldest->created_ms >= t->ttl_ms) {
		suspend_remove(t, t->oldest);
		t->expired++;
	}
}

size_t suspend_table_size(const struct suspend_table *t)
{
	return t->size;
}

uint64_t suspend_table_expired(const struct suspend_table *t)
{
	return t->expired;
}

uint64_t suspend_table_evicted(const struct suspend_table *t)
{
	return t->evicted;
}

size_t suspend_table_mem(const struct suspend_table *t)
{
	return sizeof(*t) + t->size * sizeof(struct suspend_entry);
}
