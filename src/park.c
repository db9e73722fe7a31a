// SPDX-License-Identifier: MIT
#include "park.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

struct park {
	struct park_cfg cfg;
	struct park_body *head; /* oldest */
	struct park_body *tail; /* newest */
	size_t bodies;
	size_t bytes;
	size_t spans;
};

struct park *park__new(const struct park_cfg *cfg)
{
	struct park *p;

	if (!cfg->max_bodies || !cfg->max_bytes)
		return NULL;
	p = calloc(1, sizeof(*p));
	if (p)
		p->cfg = *cfg;
	return p;
}

void park__free(struct park *p)
{
	struct park_body *b;

	if (!p)
		return;
	while ((b = park_take(p)))
		free(b);
	free(p);
}

/* Deflate @req into a body of the compressed size (level 1: a batch each time slots are full). */
static struct park_body *park_deflate(const uint8_t *req, size_t len)
{
	uLongf out_len;
	struct park_body *b, *fit;

	if (len > UINT32_MAX / 2)
		return NULL;
	out_len = compressBound((uLong)len);
	b = malloc(sizeof(*b) + out_len);
	if (!b)
		return NULL;
	if (compress2(b->data, &out_len, req, (uLong)len, 1) != Z_OK) {
		free(b);
		return NULL;
	}
	/* Give back the slack of the bound: the body stays for a while. */
	fit = realloc(b, sizeof(*b) + out_len);
	b = fit ? fit : b;
	b->len = out_len;
	b->flags = PARK_F_DEFLATED;
	return b;
}

struct park_body *park_seal(const uint8_t *req, size_t len, uint32_t n_spans, bool deflate)
{
	struct park_body *b;

	if (deflate) {
		b = park_deflate(req, len);
	} else {
		b = malloc(sizeof(*b) + len);
		if (b) {
			if (len)
				memcpy(b->data, req, len);
			b->len = len;
			b->flags = 0;
		}
	}
	if (!b)
		return NULL;
	b->next = NULL;
	b->owner = NULL;
	b->n_spans = n_spans;
	b->raw_len = len;
	return b;
}

int park_open(const struct park_body *b, struct buf *out)
{
	uLongf n = (uLongf)b->raw_len;

	buf_reset(out);
	if (buf_reserve(out, b->raw_len ? b->raw_len : 1) < 0)
		return b->raw_len > out->max ? -E2BIG : -ENOMEM;
	if (!(b->flags & PARK_F_DEFLATED)) {
		if (b->len)
			memcpy(out->data, b->data, b->len);
		out->len = b->len;
		return 0;
	}
	if (uncompress(out->data, &n, b->data, (uLong)b->len) != Z_OK || n != b->raw_len)
		return -EIO;
	out->len = n;
	return 0;
}

size_t park_cost(const struct park_body *b)
{
	return sizeof(*b) + b->len;
}

int park_put(struct park *p, struct park_body *b)
{
	size_t cost = park_cost(b);

	if (p->bodies >= p->cfg.max_bodies || cost > p->cfg.max_bytes ||
	    p->bytes > p->cfg.max_bytes - cost)
		return -ENOSPC;
	b->next = NULL;
	if (p->tail)
		p->tail->next = b;
	else
		p->head = b;
	p->tail = b;
	p->bodies++;
	p->bytes += cost;
	p->spans += b->n_spans;
	return 0;
}

struct park_body *park_oldest(const struct park *p)
{
	return p->head;
}

struct park_body *park_take(struct park *p)
{
	struct park_body *b = p->head;

	if (!b)
		return NULL;
	p->head = b->next;
	if (!p->head)
		p->tail = NULL;
	b->next = NULL;
	p->bodies--;
	p->bytes -= park_cost(b);
	p->spans -= b->n_spans;
	return b;
}

size_t park_bodies(const struct park *p)
{
	return p->bodies;
}

size_t park_bytes(const struct park *p)
{
	return p->bytes;
}

size_t park_spans(const struct park *p)
{
	return p->spans;
}
