/* SPDX-License-Identifier: MIT */
/*
 * park: request bodies waiting in memory. While every export slot is taken (the collector
 * slow, or down and the slots backing off), full batches do not wait as spans: the exporter
 * encodes each once, keeps only its request body, compressed, here, and frees the spans. A
 * span waiting as a struct span costs several hundred bytes; inside a compressed body, a few
 * dozen. Bodies leave oldest first: into a free slot, to the spool (--spool) when memory is
 * short or at shutdown, or given up.
 *
 * A body is one allocation (the header below, then its bytes). The FIFO is bounded by bodies
 * and by bytes (park_cost(), headers included); the caller's queue budget also counts them,
 * so the bound here is a backstop. Pure: no I/O, no clock.
 */
#ifndef CLN_OTLP_PARK_H
#define CLN_OTLP_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

enum park_flag {
	PARK_F_DEFLATED = 1u << 0, /* data is zlib-deflated: inflate to raw_len bytes to send */
};

struct park_body {
	struct park_body *next;
	void *owner;	  /* the caller's (the batch the body stands for) */
	uint32_t n_spans; /* spans in the body */
	uint32_t flags;	  /* PARK_F_* */
	size_t raw_len;	  /* bytes of the request as sent */
	size_t len;	  /* bytes of data */
	uint8_t data[];
};

struct park_cfg {
	size_t max_bodies;
	size_t max_bytes; /* park_cost() of every body, at most */
};

struct park;

struct park *park__new(const struct park_cfg *cfg);
/* Frees the bodies still held (their owners stay the caller's). NULL is fine. */
void park__free(struct park *p);

/*
 * A body holding the request @req (@len bytes) for @n_spans spans: as it is, or deflated
 * when @deflate (a body the wire does not compress). The body is not in the park yet; free
 * it with free(). Returns NULL when out of memory or when deflating fails.
 */
struct park_body *park_seal(const uint8_t *req, size_t len, uint32_t n_spans, bool deflate);
/* The request @b stands for, into @out (replacing its contents). 0, -ENOMEM, -E2BIG or -EIO. */
int park_open(const struct park_body *b, struct buf *out);
/* What @b costs in memory: its header and its data. */
size_t park_cost(const struct park_body *b);

/* Keep @b, newest. 0, or -ENOSPC at a bound (@b stays the caller's). */
int park_put(struct park *p, struct park_body *b);
/* The oldest body, left in place, or NULL. */
struct park_body *park_oldest(const struct park *p);
/* Remove the oldest body and hand it to the caller (free() it), or NULL when none. */
struct park_body *park_take(struct park *p);

size_t park_bodies(const struct park *p);
size_t park_bytes(const struct park *p); /* park_cost() of them all */
size_t park_spans(const struct park *p);

#endif
